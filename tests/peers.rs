//! Plain hosts and trunk peers (`examples/two-offices.toml`: a DMZ SBC that runs no SCC
//! component): golden output of every target and mode, the SBC's networks only in the trunk's
//! flows in every output, every target's rules inside the flow matrix, the model's rules (C116,
//! C117, E026, C113's hint), and the SBC's and a server's generated policies in the kernel with
//! real packets both ways.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::burst::{self, Outcome, Shot};
use common::cli;
use common::netns::{self, Netns};
use ipnet::IpNet;
use scc_ports::catalog::{Catalog, Role, Transport};
use scc_ports::deployment::Deployment;
use scc_ports::diag::Source;
use scc_ports::flows::Flow;

const EXAMPLE: &str = "examples/two-offices.toml";
const TARGETS: [&str; 6] = ["nftables", "iptables", "firewalld", "windows", "aws", "csv"];
const SBC: Ipv4Addr = Ipv4Addr::new(10, 50, 0, 10);
/// The SBC's DMZ: the zone carries `trunk`, so its network is the trunk's source.
const DMZ: &str = "10.50.0.";

fn load(text: &str) -> Result<Deployment, String> {
    scc_ports::deployment::parse(
        &Source::new("site.toml".to_string(), text.to_string()),
        &Catalog::embedded(),
    )
    .map_err(|d| format!("{d:?}"))
}

fn example() -> Deployment {
    let text = std::fs::read_to_string(format!("{}/{EXAMPLE}", env!("CARGO_MANIFEST_DIR")))
        .expect("the example exists");
    load(&text).expect("the example loads")
}

fn flows_of(dep: &Deployment) -> Vec<Flow> {
    let catalog = Catalog::embedded();
    let plan = scc_ports::plan::resolve(dep, &catalog);
    scc_ports::flows::flows(dep, &catalog, &plan)
}

fn codes(dep: &Deployment) -> Vec<&'static str> {
    let catalog = Catalog::embedded();
    let plan = scc_ports::plan::resolve(dep, &catalog);
    scc_ports::plan::check(dep, &catalog, &plan)
        .iter()
        .map(|f| f.code)
        .collect()
}

/// (label, mode arguments): every node, the workstations and the network.
fn modes() -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = example()
        .nodes
        .iter()
        .map(|n| {
            (
                format!("node_{}", n.name),
                vec!["--node".into(), n.name.clone()],
            )
        })
        .collect();
    out.push(("workstations".into(), vec!["--workstations".into()]));
    out.push(("network".into(), vec!["--network".into()]));
    out
}

fn firewall(target: &str, mode: &[String]) -> String {
    let mut args = vec!["firewall", EXAMPLE, "--target", target];
    args.extend(mode.iter().map(String::as_str));
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "firewall {args:?}: {err}");
    out
}

/// Every (target, mode label, output).
fn outputs() -> Vec<(&'static str, String, String)> {
    let mut all = Vec::new();
    for target in TARGETS {
        for (label, mode) in modes() {
            all.push((target, label, firewall(target, &mode)));
        }
    }
    all
}

#[test]
fn golden_every_target_and_mode() {
    for (target, label, text) in outputs() {
        insta::assert_snapshot!(format!("{target}__{label}"), text);
    }
    for args in [
        &["flows", EXAMPLE, "--color", "never"][..],
        &["check", EXAMPLE, "--color", "never"],
    ] {
        let (code, out, err) = cli(args);
        assert_eq!(code, 0, "{args:?}: {err}");
        insta::assert_snapshot!(args[0], out);
    }
}

/// The model: the SBC's address is a source only of trunk flows and a destination only of its
/// own (trunk-peer) flows and the service named for it.
#[test]
fn the_sbc_is_only_in_the_trunk_flows() {
    let dep = example();
    let flows = flows_of(&dep);
    let sbc = IpAddr::V4(SBC);
    let mut trunk_in = 0;
    let mut trunk_out = 0;
    for f in &flows {
        if f.sources.iter().any(|n| n.contains(&sbc)) {
            assert_eq!(f.role, Role::Trunk, "{f:?}");
            trunk_in += 1;
        }
        if f.destination.iter().any(|n| n.contains(&sbc)) {
            assert!(
                f.component == "trunk-peer" || f.label() == "service.ssh",
                "{f:?}"
            );
            if f.component == "trunk-peer" {
                assert_eq!(f.role, Role::Servers, "{f:?}");
                trunk_out += 1;
            }
        }
    }
    // SIP Bridge's SIP (udp; tcp+tls) and MRS's two areas on two nodes, CDT's media in two
    // offices; the SBC's SIP (udp; tcp+tls) and media.
    assert_eq!(trunk_in, 2 * 4 + 2, "{flows:#?}");
    assert_eq!(trunk_out, 3);
}

/// Each target's rules, cut into one piece per rule (a line; a PowerShell statement; a Terraform
/// resource): every piece that names the DMZ names the trunk (a trunk set or chain, a trunk
/// peer's port, the trunk role), only ports of the trunk's flows, or the SBC's SSH service.
#[test]
fn every_target_names_the_dmz_only_in_trunk_rules() {
    let flows = flows_of(&example());
    let trunk: BTreeSet<String> = flows
        .iter()
        .filter(|f| f.role == Role::Trunk)
        .flat_map(|f| {
            f.port_ids
                .iter()
                .map(|p| format!("{}.{p}", f.component))
                .collect::<Vec<_>>()
        })
        .collect();
    let others: BTreeSet<String> = flows
        .iter()
        .flat_map(|f| {
            f.port_ids
                .iter()
                .map(|p| format!("{}.{p}", f.component))
                .collect::<Vec<_>>()
        })
        .filter(|l| !trunk.contains(l))
        .collect();
    // A piece names the trunk in words, or only ports of the trunk's flows.
    let of_trunk = |piece: &str| {
        piece.contains("trunk")
            || piece.contains("ssh")
            || piece.contains("scc-ports-service-admins") // firewalld's name for service.ssh
            || (trunk.iter().any(|l| piece.contains(l.as_str()))
                && !others.iter().any(|l| piece.contains(l.as_str())))
    };
    for (target, label, text) in outputs() {
        // The headers' comments name the scope's addresses; the rules are the rest.
        let text: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let pieces: Vec<&str> = match target {
            "windows" => text.split("New-NetFirewallRule").collect(),
            "aws" => text.split("\nresource ").collect(),
            _ => text.lines().collect(),
        };
        let mut named = 0;
        for piece in pieces.iter().filter(|p| p.contains(DMZ)) {
            named += 1;
            assert!(
                of_trunk(piece),
                "{target} {label}: the DMZ outside the trunk's rules:\n{piece}"
            );
        }
        // Windows has no network rules; an AWS group is its node (no destination address).
        let none = (target == "windows" && label == "network")
            || (target == "aws" && label == "node_SBC1");
        assert!(named > 0 || none, "{target} {label}: the DMZ is in no rule");
    }
}

/// One rule as a target wrote it: sources, destinations (none: any), transport, ports.
#[derive(Debug)]
struct Rule {
    sources: Vec<IpNet>,
    destinations: Vec<IpNet>,
    transport: Transport,
    ports: Vec<(u16, u16)>,
}

fn nets(text: &str) -> Vec<IpNet> {
    text.split([',', ' ', '\'', '"'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            w.parse::<IpNet>()
                .or_else(|_| w.parse::<IpAddr>().map(IpNet::from))
                .unwrap_or_else(|_| panic!("not a network: {w}"))
        })
        .collect()
}

fn port_list(text: &str, sep: char) -> Vec<(u16, u16)> {
    text.split([',', ' ', '\''])
        .filter(|w| !w.is_empty())
        .map(|w| match w.split_once(sep) {
            Some((a, b)) => (a.parse().unwrap(), b.parse().unwrap()),
            None => (w.parse().unwrap(), w.parse().unwrap()),
        })
        .collect()
}

fn transport(text: &str) -> Transport {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Transport::Tcp,
        "udp" => Transport::Udp,
        other => panic!("transport {other}"),
    }
}

/// The value after `key` up to the end of the line (iptables: to the next space).
fn after<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let i = text.find(key)? + key.len();
    Some(text[i..].lines().next().unwrap_or("").trim())
}

fn rules_of(target: &str, text: &str, node: Option<IpAddr>) -> Vec<Rule> {
    let word = |s: &str| s.split_whitespace().next().unwrap_or("").to_string();
    match target {
        "iptables" => text
            .lines()
            .filter(|l| l.starts_with("-A SCC-PORTS") && l.contains(" -s "))
            .map(|l| Rule {
                sources: nets(&word(after(l, " -s ").unwrap())),
                destinations: after(l, " -d ").map_or(vec![], |d| nets(&word(d))),
                transport: transport(&word(after(l, " -p ").unwrap())),
                ports: after(l, "--dports ")
                    .or_else(|| after(l, "--dport "))
                    .map(|p| port_list(&word(p), ':'))
                    .unwrap(),
            })
            .collect(),
        "windows" => text
            .split("New-NetFirewallRule")
            .skip(1)
            .map(|s| Rule {
                sources: nets(after(s, "-RemoteAddress ").unwrap().trim_end_matches(" `")),
                destinations: after(s, "-LocalAddress ").map_or(vec![], |d| {
                    nets(d.trim_end_matches(" | Out-Null").trim_end_matches(" `"))
                }),
                transport: transport(&word(after(s, "-Protocol ").unwrap())),
                ports: port_list(after(s, "-LocalPort ").unwrap().trim_end_matches(" `"), '-'),
            })
            .collect(),
        "aws" => {
            // Prefix lists by name: their entries' networks.
            let mut lists = std::collections::HashMap::new();
            for r in text.split("\nresource ") {
                if let Some(rest) = r.strip_prefix("\"aws_ec2_managed_prefix_list\" \"") {
                    let name = rest.split('"').next().unwrap().to_string();
                    let cidrs: Vec<String> = r
                        .lines()
                        .filter_map(|l| l.trim().strip_prefix("cidr"))
                        .map(|v| v.trim().trim_start_matches('=').trim().to_string())
                        .collect();
                    lists.insert(name, cidrs.join(","));
                }
            }
            text.split("\nresource ")
                .filter(|r| r.starts_with("\"aws_vpc_security_group_ingress_rule\""))
                .map(|r| {
                    let value = |k: &str| after(r, k).unwrap().trim_start_matches('=').trim();
                    let source = match after(r, "prefix_list_id ") {
                        Some(p) => {
                            let name = p.trim_start_matches('=').trim();
                            let name = name.trim_start_matches("aws_ec2_managed_prefix_list.");
                            lists[name.trim_end_matches(".id")].clone()
                        }
                        None => after(r, "cidr_ipv4 ")
                            .or_else(|| after(r, "cidr_ipv6 "))
                            .unwrap()
                            .trim_start_matches('=')
                            .to_string(),
                    };
                    let (lo, hi) = (value("from_port "), value("to_port "));
                    Rule {
                        sources: nets(&source),
                        destinations: node.map_or(vec![], |a| vec![IpNet::from(a)]),
                        transport: transport(value("ip_protocol ").trim_matches('"')),
                        ports: vec![(lo.parse().unwrap(), hi.parse().unwrap())],
                    }
                })
                .collect()
        }
        "csv" => {
            // Columns by name: the network sheet has its own (source_zone, destination_address).
            let header: Vec<&str> = text.lines().next().unwrap_or("").split(',').collect();
            let col = |name: &str| header.iter().position(|h| *h == name);
            let source = col("source_cidrs").unwrap();
            let dest = col("destination_address").or(col("destination")).unwrap();
            let (proto, ports) = (col("transport").unwrap(), col("ports").unwrap());
            text.lines()
                .skip(1)
                .map(|l| {
                    let c: Vec<&str> = l.split(',').collect();
                    Rule {
                        sources: nets(c[source]),
                        destinations: nets(c[dest]),
                        transport: transport(c[proto]),
                        ports: port_list(c[ports], '-'),
                    }
                })
                .collect()
        }
        _ => unreachable!("{target}"),
    }
}

/// Whether one (source, destination, transport, ports) of a rule is inside one flow.
fn within(flows: &[Flow], src: &IpNet, dst: Option<&IpNet>, t: Transport, p: (u16, u16)) -> bool {
    flows.iter().any(|f| {
        f.transport == t
            && f.ports.lo() <= p.0
            && p.1 <= f.ports.hi()
            && f.sources.iter().any(|s| s.contains(src))
            && dst.is_none_or(|d| f.destination.iter().any(|n| n.contains(d)))
    })
}

/// No host gets a port the flow matrix does not give it: every rule of every node's policy (and
/// the network firewall's) is inside one of the flows, read back from the target's own words
/// (iptables, windows, aws, csv; nftables and firewalld are read back by the audit in the kernel
/// test and by `every_target_names_the_dmz_only_in_trunk_rules`).
#[test]
fn every_rule_is_inside_the_flow_matrix() {
    let dep = example();
    let flows = flows_of(&dep);
    for target in ["iptables", "windows", "aws", "csv"] {
        for (label, mode) in modes() {
            if label == "workstations" {
                continue; // destinations are the zones' networks: the csv covers them below
            }
            let node = dep
                .nodes
                .iter()
                .find(|n| label == format!("node_{}", n.name))
                .map(|n| n.address);
            let text = firewall(target, &mode);
            let rules = rules_of(target, &text, None);
            // Windows Firewall filters only its own computer: no network rules.
            let host_only = target == "windows" && label == "network";
            assert!(
                !rules.is_empty() || host_only,
                "{target} {label}: no rules read"
            );
            for r in &rules {
                for s in &r.sources {
                    for &p in &r.ports {
                        let dsts: Vec<Option<&IpNet>> = if r.destinations.is_empty() {
                            vec![None]
                        } else {
                            r.destinations.iter().map(Some).collect()
                        };
                        for d in dsts {
                            assert!(
                                within(&flows, s, d, r.transport, p),
                                "{target} {label}: {s} → {d:?} {:?} {p:?} is in no flow",
                                r.transport
                            );
                        }
                    }
                }
            }
            // The SBC's trunk ports admit the VOICE unit's address (SIP Bridge, MRS) and no
            // other server.
            if label == "node_SBC1" {
                let voice = dep.units.iter().find(|u| u.name == "VOICE").unwrap();
                let peer: Vec<&Rule> = (rules.iter())
                    .filter(|r| r.ports.iter().any(|&(lo, _)| lo == 5060 || lo == 16384))
                    .collect();
                assert!(!peer.is_empty(), "{target}: no trunk-peer rule");
                for r in peer {
                    assert_eq!(
                        r.sources,
                        [IpNet::from(voice.address)],
                        "{target}: the SBC's trunk ports from {:?}",
                        r.sources
                    );
                }
            }
            // And a node's own rules never admit the SBC to anything but the trunk's ports.
            if node.is_some() {
                let sbc = IpAddr::V4(SBC);
                for r in rules
                    .iter()
                    .filter(|r| r.sources.iter().any(|s| s.contains(&sbc)))
                {
                    for &p in &r.ports {
                        assert!(
                            flows.iter().any(|f| f.role == Role::Trunk
                                && f.transport == r.transport
                                && f.ports.lo() <= p.0
                                && p.1 <= f.ports.hi()),
                            "{target} {label}: the SBC admitted to {p:?}"
                        );
                    }
                }
            }
        }
    }
    let text = firewall("csv", &["--workstations".to_string()]);
    for r in rules_of("csv", &text, None) {
        for s in &r.sources {
            for &p in &r.ports {
                assert!(within(&flows, s, r.destinations.first(), r.transport, p));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The model's rules

const BASE: &str = r#"
[zones.dc]
cidrs = ["10.10.0.0/24"]
roles = ["servers"]

[zones.dmz]
cidrs = ["10.50.0.0/24"]
roles = []

[nodes.HAC1]
address = "10.10.0.11"
zone = "dc"

[units.VOICE]
address = "10.10.0.101"
packages = ["sip-bridge", "media-routing-server"]
instances = ["HAC1"]
"#;

/// A node without HAC and instances, outside the servers' zones, was a source of every servers'
/// flow; now it is none, and check says so (C116) until `scc = false` says it is meant.
#[test]
fn a_plain_host_is_no_source_of_the_servers_flows() {
    let old =
        format!("{BASE}\n[nodes.SBC1]\naddress = \"10.50.0.10\"\nzone = \"dmz\"\nhac = false\n");
    let dep = load(&old).unwrap();
    let sbc: IpAddr = "10.50.0.10".parse().unwrap();
    for f in flows_of(&dep) {
        assert!(!f.sources.iter().any(|n| n.contains(&sbc)), "{f:?}");
    }
    assert!(codes(&dep).contains(&"C116"));
    let declared = old.replace("hac = false", "scc = false");
    let dep = load(&declared).unwrap();
    assert!(!dep.nodes[1].hac && !dep.nodes[1].scc);
    assert!(!codes(&dep).contains(&"C116"), "{:?}", codes(&dep));
    // The zone holds a node: its `roles = []` is not a finding; an empty zone's is.
    assert!(!codes(&dep).contains(&"C117"));
    let empty = format!("{declared}\n[zones.offices]\ncidrs = [\"10.20.0.0/16\"]\nroles = []\n");
    assert!(codes(&load(&empty).unwrap()).contains(&"C117"));
    // A node with HAC, even outside the servers' zones, stays a source (as "system address").
    let hac = old.replace("hac = false", "");
    let flows = flows_of(&load(&hac).unwrap());
    assert!(
        flows
            .iter()
            .any(|f| f.sources.iter().any(|n| n.contains(&sbc)))
    );
}

#[test]
fn a_trunk_peer_is_a_trunk_source_and_listens_for_the_servers() {
    let peer = format!(
        "{BASE}\n[nodes.SBC1]\naddress = \"10.50.0.10\"\nzone = \"dmz\"\n\n[nodes.SBC1.trunk]\nudp = 5060\ntls = \"5061\"\nmedia = \"16384-32767\"\n"
    );
    let dep = load(&peer).unwrap();
    assert!(!dep.nodes[1].hac, "a trunk peer has no HAC");
    let sbc: IpAddr = "10.50.0.10".parse().unwrap();
    let flows = flows_of(&dep);
    let from_sbc: BTreeSet<String> = flows
        .iter()
        .filter(|f| f.sources.iter().any(|n| n.contains(&sbc)))
        .map(|f| format!("{} {} {}", f.label(), f.transport.as_str(), f.ports))
        .collect();
    assert_eq!(
        from_sbc.into_iter().collect::<Vec<_>>(),
        [
            "media-routing-server.prompt-area udp 8000-8400",
            "media-routing-server.recording-area udp 9000-10200",
            "sip-bridge.sip-tcp-port+sip-tls-port tcp 5060-5061",
            "sip-bridge.sip-udp-port udp 5060",
        ]
    );
    let to_sbc: Vec<String> = flows
        .iter()
        .filter(|f| f.node == "SBC1")
        .map(|f| {
            format!(
                "{} {} {} {}",
                f.role.as_str(),
                f.label(),
                f.transport.as_str(),
                f.ports
            )
        })
        .collect();
    assert_eq!(
        to_sbc,
        [
            "servers trunk-peer.sip-udp udp 5060",
            "servers trunk-peer.sip-tls tcp 5061",
            "servers trunk-peer.media udp 16384-32767",
        ]
    );
    // The peer's zone does not carry trunk: probe, report and diagram would miss its flows.
    assert!(codes(&dep).contains(&"C118"));
    // No zone carries trunk, yet check does not say nobody reaches the trunk's ports: the peer
    // does (C105 speaks only of the clients here).
    let catalog = Catalog::embedded();
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    for f in scc_ports::plan::check(&dep, &catalog, &plan) {
        let opened_for = f.message.split(" but ").next().unwrap_or("");
        assert!(
            !(f.code == "C105" && opened_for.contains("trunk")),
            "{}",
            f.message
        );
    }
    // Without SIP Bridge and MRS on a running unit, the peer has no ports for them.
    let idle = peer.replace("instances = [\"HAC1\"]", "instances = []");
    let flows = flows_of(&load(&idle).unwrap());
    assert!(!flows.iter().any(|f| f.node == "SBC1"), "{flows:#?}");
}

#[test]
fn contradictions_of_a_plain_host_are_input_errors() {
    let node = "\n[nodes.SBC1]\naddress = \"10.50.0.10\"\nzone = \"dmz\"\n";
    for (extra, want) in [
        ("scc = false\nhac = true\n", "sets `hac = true`"),
        ("scc = true\n", "`scc = true` is not a setting"),
        (
            "hac = true\n[nodes.SBC1.trunk]\nudp = 5060\n",
            "sets `hac = true`",
        ),
        (
            "[nodes.SBC1.trunk]\nmedia = \"1-2\"\n",
            "names no SIP transport",
        ),
        (
            "[nodes.SBC1.trunk]\nudp = 70000\n",
            "port 70000 is out of range",
        ),
        (
            "[nodes.SBC1.trunk]\nudp = 5060\nmedia = \"9-3\"\n",
            "runs backwards",
        ),
        ("[nodes.SBC1.trunk]\nsip = 5060\n", "sip"),
    ] {
        let text = format!("{BASE}{node}{extra}");
        let err = load(&text).expect_err(extra);
        assert!(err.contains(want), "{extra}: {err}");
        if !extra.contains("sip =") {
            assert!(err.contains("E026"), "{extra}: {err}");
        }
    }
}

/// Two services on one port with different sources: the hint says they are one service.
#[test]
fn c113_says_two_services_on_one_port_are_one() {
    let text = format!(
        "{BASE}\n[zones.admins]\ncidrs = [\"10.30.0.0/24\"]\nroles = [\"admins\"]\n\n[services.sip-from-scc]\ntransport = \"udp\"\nports = 5070\nfrom = [\"servers\"]\nto = [\"HAC1\"]\n\n[services.sip-from-admins]\ntransport = \"udp\"\nports = 5070\nfrom = [\"admins\"]\nto = [\"HAC1\"]\n"
    );
    let dep = load(&text).unwrap();
    let catalog = Catalog::embedded();
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    let findings = scc_ports::plan::check(&dep, &catalog, &plan);
    let f = findings.iter().find(|f| f.code == "C113").expect("C113");
    assert!(f.hint.contains("one port, one service"), "{}", f.hint);
    assert!(f.hint.contains("`from` lists every source"), "{}", f.hint);
}

// ---------------------------------------------------------------------------------------------
// In the kernel: HAC1 (with the units' addresses) and the SBC in two namespaces, each with its
// generated nftables policy; real packets both ways, every planned port of HAC1 tried from the
// SBC and every port of the SBC from the VOICE unit's address.

/// Up to three ports of a range: its ends and middle.
fn sample(lo: u16, hi: u16) -> Vec<u16> {
    let mut v = vec![lo, lo + (hi - lo) / 2, hi];
    v.dedup();
    v
}

fn v4(a: IpAddr) -> Ipv4Addr {
    match a {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => panic!("the example is IPv4"),
    }
}

/// Responders on every (address, transport, port) of `targets`, in `ns`, until `stop`.
fn respond(
    ns: &Netns,
    targets: &[(Ipv4Addr, Transport, u16)],
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<std::io::Result<std::io::Result<()>>> {
    let tcp: BTreeSet<u16> = targets
        .iter()
        .filter(|t| t.1 == Transport::Tcp)
        .map(|t| t.2)
        .collect();
    let udp: BTreeSet<(Ipv4Addr, u16)> = targets
        .iter()
        .filter(|t| t.1 == Transport::Udp)
        .map(|t| (t.0, t.2))
        .collect();
    ns.spawn(move || {
        let (l, s) = burst::bind(&tcp, &udp)?;
        burst::serve(&l, &s, &stop);
        Ok(())
    })
}

#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn kernel_the_sbc_reaches_only_the_trunk_and_the_trunk_passes_both_ways() {
    if !netns::available("peers kernel test") {
        return;
    }
    burst::raise_fd_limit();
    let dep = example();
    let flows = flows_of(&dep);
    let hac1 = dep.node("HAC1").unwrap();
    let voice = v4(dep
        .units
        .iter()
        .find(|u| u.name == "VOICE")
        .unwrap()
        .address);

    let hac = Netns::new().expect("namespace");
    let sbc = Netns::new().expect("namespace");
    let (vh, vs) = netns::link_named(
        &hac,
        &format!("{}/32", hac1.address),
        &sbc,
        &format!("{SBC}/32"),
    )
    .expect("link");
    for u in &dep.units {
        hac.ip(&["addr", "add", &format!("{}/32", u.address), "dev", &vh])
            .unwrap();
    }
    hac.ip(&["route", "add", "10.50.0.0/24", "dev", &vh])
        .unwrap();
    sbc.ip(&["route", "add", "10.10.0.0/24", "dev", &vs])
        .unwrap();
    hac.nft(&firewall("nftables", &["--node".into(), "HAC1".into()]))
        .expect("HAC1's policy loads");
    sbc.nft(&firewall("nftables", &["--node".into(), "SBC1".into()]))
        .expect("SBC1's policy loads");

    // Toward HAC1: every port of every flow to it, plus ports next to the trunk's; reached iff a
    // flow admits the SBC.
    let sbc_ip = IpAddr::V4(SBC);
    let mut to_hac: Vec<(Ipv4Addr, Transport, u16, bool)> = Vec::new();
    for f in flows.iter().filter(|f| f.node == "HAC1") {
        let dst = v4(f.destination[0].addr());
        for p in sample(f.ports.lo(), f.ports.hi()) {
            to_hac.push((dst, f.transport, p, false));
        }
        to_hac.push((dst, f.transport, f.ports.hi() + 1, false));
    }
    for t in &mut to_hac {
        t.3 = flows.iter().any(|f| {
            f.node == "HAC1"
                && f.transport == t.1
                && f.ports.contains(t.2)
                && f.destination[0].addr() == IpAddr::V4(t.0)
                && f.sources.iter().any(|n| n.contains(&sbc_ip))
        });
    }
    to_hac.sort();
    to_hac.dedup();
    // Toward the SBC, from the VOICE unit's address (SIP Bridge and MRS): its SIP and media
    // ports, and ports next to them and SSH (admins only), which stay closed.
    let mut to_sbc: Vec<(Ipv4Addr, Transport, u16, bool)> = Vec::new();
    for f in flows.iter().filter(|f| f.node == "SBC1") {
        let open = f.component == "trunk-peer";
        for p in sample(f.ports.lo(), f.ports.hi()) {
            to_sbc.push((SBC, f.transport, p, open));
        }
        to_sbc.push((SBC, f.transport, f.ports.hi() + 1, false));
        to_sbc.push((SBC, f.transport, f.ports.lo() - 1, false));
    }
    to_sbc.sort();
    to_sbc.dedup();
    // A port inside one flow and next to another is open: the first answer counts.
    to_sbc.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1 && a.2 == b.2);
    let to_sbc: Vec<_> = to_sbc
        .iter()
        .map(|&(a, t, p, _)| {
            let open = flows.iter().any(|f| {
                f.node == "SBC1"
                    && f.component == "trunk-peer"
                    && f.transport == t
                    && f.ports.contains(p)
            });
            (a, t, p, open)
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let strip = |v: &[(Ipv4Addr, Transport, u16, bool)]| -> Vec<(Ipv4Addr, Transport, u16)> {
        v.iter().map(|t| (t.0, t.1, t.2)).collect()
    };
    let r1 = respond(&hac, &strip(&to_hac), stop.clone());
    let r2 = respond(&sbc, &strip(&to_sbc), stop.clone());
    std::thread::sleep(Duration::from_millis(200));

    let shots = |v: &[(Ipv4Addr, Transport, u16, bool)], src: Option<Ipv4Addr>| -> Vec<Shot> {
        v.iter()
            .map(|&(dst, transport, port, _)| Shot {
                src,
                dst,
                transport,
                port,
            })
            .collect()
    };
    let window = Duration::from_millis(1500);
    let resend = Duration::from_millis(250);
    let from_sbc = shots(&to_hac, None);
    let got_hac = sbc
        .run(move || burst::fire(&from_sbc, window, resend))
        .unwrap();
    let from_voice = shots(&to_sbc, Some(voice));
    let got_sbc = hac
        .run(move || burst::fire(&from_voice, window, resend))
        .unwrap();
    // From HAC1's own address the same packets stay out: the SBC's trunk ports admit only the
    // unit that runs SIP Bridge and MRS, not every server.
    let from_node = shots(&to_sbc, Some(v4(hac1.address)));
    let got_node = hac
        .run(move || burst::fire(&from_node, window, resend))
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    r1.join().unwrap().unwrap().unwrap();
    r2.join().unwrap().unwrap().unwrap();

    let mut wrong = Vec::new();
    let (mut passed, mut blocked) = (0, 0);
    for (set, got, way) in [
        (&to_hac, &got_hac, "SBC → HAC1"),
        (&to_sbc, &got_sbc, "VOICE → SBC"),
    ] {
        for (t, o) in set.iter().zip(got) {
            let reached = *o == Outcome::Reached;
            if reached != t.3 {
                wrong.push(format!("{way} {}:{} {:?}: {o:?}", t.0, t.2, t.1));
            }
            if reached {
                passed += 1;
            } else {
                blocked += 1;
            }
        }
    }
    for (t, o) in to_sbc.iter().zip(&got_node) {
        if *o == Outcome::Reached {
            wrong.push(format!("HAC1 → SBC {}:{} {:?}: {o:?}", t.0, t.2, t.1));
        }
        blocked += 1;
    }
    assert!(
        wrong.is_empty(),
        "disagreements with the flows:\n{}",
        wrong.join("\n")
    );
    // What reached HAC1 from the SBC is a trunk port (the catalog's role trunk), whatever the
    // sources of the flows: never HAC's own ports, nor an internal one.
    for (t, o) in to_hac.iter().zip(&got_hac) {
        let trunk_port = flows.iter().any(|f| {
            f.node == "HAC1" && f.role == Role::Trunk && f.transport == t.1 && f.ports.contains(t.2)
        });
        assert!(
            *o != Outcome::Reached || trunk_port,
            "the SBC reached {}:{} {:?}, not a trunk port",
            t.0,
            t.2,
            t.1
        );
        if t.2 == 21012 || t.2 == 21014 {
            assert_ne!(*o, Outcome::Reached, "the SBC reached HAC's port {}", t.2);
        }
    }
    // Both ways pass, and most of HAC1's ports (every internal one) stay shut to the SBC.
    assert!(got_hac.contains(&Outcome::Reached) && got_sbc.contains(&Outcome::Reached));
    assert!(blocked > passed, "{passed} passed, {blocked} blocked");
    eprintln!(
        "peers kernel test: {} packets, {passed} passed, {blocked} blocked, as the flows say",
        to_hac.len() + 2 * to_sbc.len()
    );
    drop((hac, sbc));
}

// ---------------------------------------------------------------------------------------------
// Read back by the audit: every node's policy (and the network firewall's) admits exactly the
// flow matrix once loaded (nftables, iptables in the kernel) or applied (firewalld, offline).

fn scopes() -> Vec<Vec<String>> {
    modes()
        .into_iter()
        .filter(|(label, _)| label != "workstations")
        .map(|(_, mode)| mode)
        .collect()
}

fn audit(ruleset: &std::path::Path, scope: &[String]) -> serde_json::Value {
    let path = ruleset.to_str().unwrap();
    let mut args = vec!["audit", EXAMPLE, "--ruleset", path, "--format", "json"];
    args.extend(scope.iter().map(String::as_str));
    let (code, out, err) = cli(&args);
    assert!(code == 0 || code == 1, "audit {args:?}: {err}");
    serde_json::from_str(&out).expect("audit JSON")
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_nftables_and_iptables_admit_exactly_the_flows() {
    if !netns::available("peers audit test") {
        return;
    }
    let ns = Netns::new().expect("namespace");
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for scope in scopes() {
        for target in ["nftables", "iptables"] {
            let rules = firewall(target, &scope);
            ns.exec(&["nft", "flush", "ruleset"], None);
            let export = if target == "nftables" {
                ns.exec(&["nft", "-f", "-"], Some(&rules));
                ns.exec(&["nft", "-j", "list", "ruleset"], None)
            } else {
                ns.exec(&["iptables-restore"], Some(&rules));
                ns.exec(&["iptables-save"], None)
            };
            let path = dir.path().join(format!("{target}-{checked}"));
            std::fs::write(&path, export).unwrap();
            let report = audit(&path, &scope);
            assert_eq!(
                report["summary"]["exact"], true,
                "{target} {scope:?}: not exact:\n{report:#}"
            );
            assert!(report["summary"]["flows"].as_u64().unwrap() > 0);
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}

/// firewalld's generated script applied to a scratch configuration (firewall-offline-cmd, the
/// host's /etc/firewalld untouched): every flow admitted, and nothing beyond the plan opened by
/// our rules (the stock `public` zone's own services, e.g. ssh, are the distribution's).
#[cfg_attr(not(scc_firewalld), ignore = "needs firewalld (firewall-offline-cmd)")]
#[test]
fn firewalld_admits_the_flows_and_opens_nothing_more() {
    for scope in scopes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("firewalld.conf"), "DefaultZone=public\n").unwrap();
        let script = dir.path().join("rules.sh");
        std::fs::write(&script, firewall("firewalld", &scope)).unwrap();
        let out = std::process::Command::new("sh")
            .arg(&script)
            .env("FIREWALLD_DIR", dir.path())
            .env_remove("ZONE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{scope:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::remove_file(&script).unwrap();
        let report = audit(dir.path(), &scope);
        let s = &report["summary"];
        assert_eq!(s["admitted"], s["flows"], "{scope:?}:\n{report:#}");
        for e in report["extra"].as_array().unwrap() {
            let rule = e["rule"].as_str().unwrap();
            assert!(
                !rule.contains("scc-ports"),
                "{scope:?}: our rule opens more than the plan: {e}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The probe's plan, the report's matrix and the diagram say what the flows say.

/// For every zone and every flow to a server: the zone's networks are among the flow's sources
/// exactly when the probe's plan (`probe --from ZONE`) tests that port, and the report's planned
/// rows count the same ports; the diagram draws the DMZ only to the VOICE unit (SIP Bridge and
/// MRS) and to the offices' PCs (the trunk's media), the servers' zone to the SBC, and every
/// zone that sends media to an office's PCs to that office.
#[test]
fn probe_report_and_diagram_say_what_the_flows_say() {
    let dep = example();
    let catalog = Catalog::embedded();
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    let flows = scc_ports::flows::flows(&dep, &catalog, &plan);
    let rows = scc_ports::report::planned(&dep, &plan);
    for zone in &dep.zones {
        // The zone's networks are sources, or (a trunk peer's flows, from SIP Bridge's and
        // MRS's unit addresses only) the zone holds the flow's source hosts.
        let covered = |f: &Flow| {
            zone.cidrs
                .iter()
                .all(|c| f.sources.iter().any(|s| s.contains(c)))
                || (f.component == "trunk-peer"
                    && (f.sources.iter()).any(|s| zone.cidrs.iter().any(|c| c.contains(s))))
        };
        let from_flows: BTreeSet<(IpAddr, Transport, u16)> = flows
            .iter()
            .filter(|f| !f.workstations && covered(f))
            .flat_map(|f| {
                let a = f.destination[0].addr();
                f.ports.ports().map(move |p| (a, f.transport, p))
            })
            .collect();
        let probed: BTreeSet<(IpAddr, Transport, u16)> = plan
            .zone_targets(zone, None)
            .flat_map(|(b, a, _)| b.ports.ports().map(move |p| (a, b.transport, p)))
            .collect();
        assert_eq!(from_flows, probed, "zone {}", zone.name);
        let reported: BTreeSet<(IpAddr, Transport, u16)> = rows
            .iter()
            .filter(|r| r.zone == zone.name)
            .map(|r| (r.address, r.transport, r.port))
            .collect();
        assert_eq!(reported, probed, "zone {}", zone.name);
    }
    let g = scc_ports::report::graph::build(&dep, &plan, None);
    let name = |id: &str| {
        g.zones
            .iter()
            .chain(&g.units)
            .chain(&g.nodes)
            .find(|v| v.id == id)
            .map(|v| v.label.clone())
            .unwrap()
    };
    let edges: BTreeSet<(String, String)> = g
        .edges
        .iter()
        .filter(|e| e.kind == scc_ports::report::graph::EdgeKind::Flow)
        .map(|e| (name(&e.from), name(&e.to)))
        .collect();
    let of = |what: &str| -> Vec<&(String, String)> {
        edges
            .iter()
            .filter(|(a, b)| a == what || b == what)
            .collect()
    };
    // The DMZ reaches VOICE (SIP Bridge, MRS) and, with the catalog's trunk media toward
    // Communication Desktop, the PCs of both offices; nothing else.
    assert_eq!(
        of("dmz"),
        [
            &("dmz".to_string(), "VOICE".to_string()),
            &("dmz".to_string(), "office-north".to_string()),
            &("dmz".to_string(), "office-south".to_string()),
        ]
    );
    // Media toward the PCs: from the servers' zone, the trunk and the other office (CDT to
    // CDT); a zone's own PCs are no edge (no loops).
    for office in ["office-north", "office-south"] {
        let into: Vec<&str> = (edges.iter())
            .filter(|(_, b)| b == office)
            .map(|(a, _)| a.as_str())
            .collect();
        let other = if office == "office-north" {
            "office-south"
        } else {
            "office-north"
        };
        assert_eq!(into, ["datacenter", "dmz", other], "{office}");
    }
    assert_eq!(
        of("SBC1"),
        [
            &("admins".to_string(), "SBC1".to_string()),
            &("datacenter".to_string(), "SBC1".to_string())
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Any trunk table is an answer: a peer, or located errors; never a panic.

mod props {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            (0u32..70_000).prop_map(|n| n.to_string()),
            (0u32..70_000, 0u32..70_000).prop_map(|(a, b)| format!("\"{a}-{b}\"")),
            "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
            Just("true".to_string()),
            Just("[5060]".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        #[test]
        fn any_trunk_table_parses_or_is_refused(
            keys in prop::collection::vec(prop::sample::select(&["udp", "tcp", "tls", "media", "sip"][..]), 0..5),
            values in prop::collection::vec(value(), 5),
            scc in prop::option::of(any::<bool>()),
            hac in prop::option::of(any::<bool>()),
        ) {
            let mut text = format!("{BASE}\n[nodes.SBC1]\naddress = \"10.50.0.10\"\nzone = \"dmz\"\n");
            if let Some(s) = scc {
                text.push_str(&format!("scc = {s}\n"));
            }
            if let Some(h) = hac {
                text.push_str(&format!("hac = {h}\n"));
            }
            text.push_str("[nodes.SBC1.trunk]\n");
            let mut seen = BTreeSet::new();
            for (k, v) in keys.iter().zip(&values) {
                if seen.insert(*k) {
                    text.push_str(&format!("{k} = {v}\n"));
                }
            }
            if let Ok(dep) = load(&text) {
                let peer = dep.nodes[1].trunk.as_ref().expect("a trunk peer");
                prop_assert!(!peer.sip.is_empty());
                prop_assert!(!dep.nodes[1].hac && !dep.nodes[1].scc);
                let flows = flows_of(&dep);
                let sbc: IpAddr = "10.50.0.10".parse().unwrap();
                for f in &flows {
                    if f.sources.iter().any(|n| n.contains(&sbc)) {
                        prop_assert_eq!(f.role, Role::Trunk);
                    }
                }
            }
        }
    }
}

/// The report's fix for a trunk peer's port admits what the SBC's policy admits: the VOICE
/// unit's address, not the servers' zone.
#[test]
fn the_reports_fix_toward_the_sbc_admits_only_the_voice_unit() {
    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("dc.json");
    let result = serde_json::json!({
        "format_version": 1,
        "zone": "datacenter",
        "sources": ["10.10.0.101"],
        "summary": {"verified": 0, "open": 0, "closed": 0, "filtered": 1, "error": 0},
        "results": [{
            "address": SBC.to_string(), "transport": "udp", "port": 5060,
            "component": "trunk-peer", "port_id": "sip-udp", "status": "filtered",
            "rtt_ms": null, "detail": "no answer within 500 ms"
        }],
        "unexpected": [], "swept": false, "secrets_probably_differ": false, "hint": null,
        "elapsed_ms": 500.0
    });
    std::fs::write(&probe, result.to_string()).unwrap();
    for target in ["nftables", "iptables"] {
        let (code, out, err) = cli(&[
            "report",
            EXAMPLE,
            probe.to_str().unwrap(),
            "--format",
            "json",
            "--target",
            target,
        ]);
        assert_eq!(code, 1, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let f = (v["failures"].as_array().unwrap().iter())
            .find(|f| f["component"] == "trunk-peer" && f["status"] == "filtered")
            .unwrap_or_else(|| panic!("no failure toward the SBC: {out}"));
        let rules: Vec<&str> = (f["hops"].as_array().unwrap().iter())
            .map(|h| h["rule"].as_str().unwrap())
            .collect();
        assert!(!rules.is_empty(), "{f}");
        for r in rules {
            assert!(
                r.contains("10.10.0.101") && !r.contains("10.10.0.0/24"),
                "{target}: {r}"
            );
        }
    }
}
