//! The appliance readers (Cisco ASA, PAN-OS XML and `set`, FortiOS, Junos SRX hierarchical and
//! `display set`): a differential oracle against the kernel (seeded random Aerleon policies
//! rendered by `aclgen` to nftables, loaded in a router namespace where real packets decide, and
//! to each vendor format, which the audit reads and evaluates packet by packet), goldens of
//! hand-written configurations in each vendor's own style, and hostile input.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::Rng;
use common::burst::{self, Probe};
use common::netns::{self, Netns};
use scc_ports::audit::appliance::Sides;
use scc_ports::audit::{Hook, Outcome, Packet, Ruleset};
use scc_ports::catalog::Transport;

fn seed() -> u64 {
    std::env::var("SCC_APPLIANCE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(18)
        .max(1)
}

/// The vendor renderings: Aerleon's platform, its header, the audit's sides for traffic from
/// the client to the server, and the file name `aclgen` writes.
struct Vendor {
    platform: &'static str,
    header: &'static str,
    sides: (&'static str, &'static str),
    out: &'static str,
}

const VENDORS: [Vendor; 4] = [
    Vendor {
        platform: "ciscoasa",
        header: "ciscoasa OUTSIDE_IN",
        sides: ("outside", "inside"),
        out: "ciscoasa.asa",
    },
    Vendor {
        platform: "paloalto",
        header: "paloalto from-zone untrust to-zone trust",
        sides: ("untrust", "trust"),
        out: "paloalto.xml",
    },
    Vendor {
        platform: "srx",
        header: "srx from-zone untrust to-zone trust",
        sides: ("untrust", "trust"),
        out: "srx.srx",
    },
    Vendor {
        platform: "fortigate",
        header: "fortigate from-zone port1 to-zone port2",
        sides: ("port1", "port2"),
        out: "fortigate.fgacl",
    },
];

/// What a running ASA holds besides the ACL Aerleon renders: the interfaces and the binding.
const ASA_FRAME: &str = "interface GigabitEthernet0/0\n nameif outside\n security-level 0\n!\n\
                         interface GigabitEthernet0/1\n nameif inside\n security-level 100\n!\n";
const ASA_BIND: &str = "access-group OUTSIDE_IN in interface outside\n";

/// One random policy: networks (nested, overlapping), services, terms.
struct Policy {
    defs_net: String,
    defs_svc: String,
    terms: String,
    /// Addresses worth probing: the ends of every network and a few inside.
    srcs: BTreeSet<Ipv4Addr>,
    dsts: BTreeSet<Ipv4Addr>,
    ports: BTreeSet<u16>,
}

fn random_net(rng: &mut Rng, second: u8) -> ipnet::Ipv4Net {
    let len = [16u8, 20, 22, 24, 26, 28, 30, 32][rng.below(8)];
    let addr = Ipv4Addr::new(10, second, rng.below(4) as u8, rng.below(256) as u8);
    ipnet::Ipv4Net::new(addr, len).expect("prefix").trunc()
}

fn policy(rng: &mut Rng) -> Policy {
    let mut defs_net = String::new();
    let mut srcs = BTreeSet::new();
    let mut dsts = BTreeSet::new();
    let sample = |rng: &mut Rng, n: &ipnet::Ipv4Net, out: &mut BTreeSet<Ipv4Addr>| {
        let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
        out.insert(lo.into());
        out.insert(hi.into());
        out.insert((lo + (rng.next() as u32) % (hi - lo + 1)).into());
        if hi < u32::from(Ipv4Addr::new(10, 255, 255, 255)) {
            out.insert((hi + 1).into());
        }
    };
    for (prefix, second, out) in [("SRC", 1u8, &mut srcs), ("DST", 9u8, &mut dsts)] {
        for i in 0..4 {
            let nets: Vec<ipnet::Ipv4Net> = (0..1 + rng.below(3))
                .map(|_| random_net(rng, second))
                .collect();
            let mut line = format!("{prefix}_{i} =");
            for n in &nets {
                line.push_str(&format!(" {n}"));
                sample(rng, n, out);
            }
            // Nested: a later network names an earlier one.
            if i > 0 && rng.below(2) == 0 {
                line.push_str(&format!(" {prefix}_{}", rng.below(i)));
            }
            defs_net.push_str(&line);
            defs_net.push('\n');
        }
    }
    let mut defs_svc = String::new();
    let mut ports = BTreeSet::new();
    for i in 0..4 {
        let mut line = format!("SVC_{i} =");
        for _ in 0..1 + rng.below(3) {
            let lo = 2000 + rng.below(200) as u16;
            let hi = lo + [0, 1, 5, 40][rng.below(4)];
            for p in [lo.saturating_sub(1), lo, hi, hi + 1, (lo + hi) / 2] {
                ports.insert(p);
            }
            for proto in ["tcp", "udp"] {
                if lo == hi {
                    line.push_str(&format!(" {lo}/{proto}"));
                } else {
                    line.push_str(&format!(" {lo}-{hi}/{proto}"));
                }
            }
        }
        defs_svc.push_str(&line);
        defs_svc.push('\n');
    }
    let mut terms = String::new();
    for t in 0..3 + rng.below(6) {
        let mut body = String::new();
        if rng.below(4) != 0 {
            body.push_str(&format!("  source-address:: SRC_{}\n", rng.below(4)));
        }
        if rng.below(4) != 0 {
            body.push_str(&format!("  destination-address:: DST_{}\n", rng.below(4)));
        }
        let proto = ["tcp", "udp", "tcp udp"][rng.below(3)];
        body.push_str(&format!("  protocol:: {proto}\n"));
        body.push_str(&format!("  destination-port:: SVC_{}\n", rng.below(4)));
        let action = if rng.below(3) == 0 { "deny" } else { "accept" };
        body.push_str(&format!("  action:: {action}\n"));
        terms.push_str(&format!("term t{t} {{\n{body}}}\n"));
    }
    Policy {
        defs_net,
        defs_svc,
        terms,
        srcs,
        dsts,
        ports,
    }
}

/// Every rendering of the policy: (platform, text); nftables first.
fn render(p: &Policy, dir: &Path) -> Vec<(String, String)> {
    let (pol, def, out) = (dir.join("pol"), dir.join("def"), dir.join("out"));
    for d in [&pol, &def, &out] {
        std::fs::create_dir_all(d).expect("dir");
    }
    std::fs::write(def.join("NETWORK.net"), &p.defs_net).expect("net");
    std::fs::write(def.join("SERVICES.svc"), &p.defs_svc).expect("svc");
    let mut names = vec![("nftables", "nftables inet forward", "nftables.nft")];
    names.extend(VENDORS.iter().map(|v| (v.platform, v.header, v.out)));
    let mut texts = Vec::new();
    for (platform, header, file) in names {
        let f = pol.join(format!("{platform}.pol"));
        std::fs::write(
            &f,
            format!("header {{\n  target:: {header}\n}}\n{}", p.terms),
        )
        .expect("pol");
        let o = Command::new(common::aclgen())
            .arg(format!("--base_directory={}", pol.display()))
            .arg(format!("--policy_file={}", f.display()))
            .arg(format!("--definitions_directory={}", def.display()))
            .arg(format!("--output_directory={}", out.display()))
            .output()
            .expect("run aclgen");
        assert!(
            o.status.success(),
            "aclgen {platform}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let text = std::fs::read_to_string(out.join(file))
            .unwrap_or_else(|e| panic!("aclgen wrote no {file}: {e}"));
        texts.push((platform.to_string(), text));
    }
    texts
}

/// The vendor text as the appliance holds it (the ASA's ACL needs its interfaces and binding).
fn as_config(platform: &str, text: &str) -> String {
    if platform == "ciscoasa" {
        format!("{ASA_FRAME}{text}\n{ASA_BIND}")
    } else {
        text.to_string()
    }
}

/// Junos hierarchical text as `display set` lines (comments dropped, lists one line per value).
fn junos_set_of(text: &str) -> String {
    let mut out = String::new();
    let mut path: Vec<Vec<String>> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut list: Option<Vec<String>> = None;
    let mut in_comment = false;
    for raw in text.lines() {
        let line = raw.trim();
        if in_comment {
            in_comment = !line.contains("*/");
            continue;
        }
        if line.starts_with("/*") {
            in_comment = !line.contains("*/");
            continue;
        }
        let spaced = line
            .replace('{', " { ")
            .replace('}', " } ")
            .replace(';', " ; ")
            .replace('[', " [ ")
            .replace(']', " ] ");
        for w in spaced.split_whitespace() {
            let prefix = || {
                path.iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<String>>()
                    .join(" ")
            };
            match w {
                "{" => path.push(std::mem::take(&mut words)),
                "}" => {
                    path.pop();
                }
                ";" => {
                    if !words.is_empty() {
                        out.push_str(&format!("set {} {}\n", prefix(), words.join(" ")));
                    }
                    words.clear();
                }
                "[" => list = Some(Vec::new()),
                "]" => {
                    for v in list.take().unwrap_or_default() {
                        out.push_str(&format!("set {} {} {v}\n", prefix(), words.join(" ")));
                    }
                    words.clear();
                    words.push("\u{0}".into());
                }
                "replace:" => {}
                w => match &mut list {
                    Some(l) => l.push(w.to_string()),
                    None => {
                        if words.first().is_some_and(|f| f == "\u{0}") {
                            words.clear();
                        }
                        words.push(w.to_string());
                    }
                },
            }
        }
    }
    out.lines()
        .filter(|l| !l.contains('\u{0}'))
        .map(|l| l.replace("set  ", "set ") + "\n")
        .collect()
}

fn packet(p: &Probe, sides: (&str, &str)) -> Packet {
    Packet {
        src: IpAddr::V4(p.src),
        dst: IpAddr::V4(p.dst),
        transport: p.transport,
        sport: None,
        dport: p.port,
        hook: Hook::Forward,
        sides: Sides::of(sides.0, sides.1),
    }
}

/// client (every source address) — router (the nftables rendering) — server (every
/// destination address); the sources and destinations routed as /32s through the router.
fn topology(srcs: &BTreeSet<Ipv4Addr>, dsts: &BTreeSet<Ipv4Addr>) -> (Netns, Netns, Netns) {
    let client = Netns::new().expect("client");
    let router = Netns::new().expect("router");
    let server = Netns::new().expect("server");
    let (rc, vc) =
        netns::link_named(&router, "192.168.88.1/24", &client, "192.168.88.2/24").expect("veth");
    let (rs, vs) =
        netns::link_named(&router, "192.168.89.1/24", &server, "192.168.89.2/24").expect("veth");
    for (ns, dev, via, rdev, list) in [
        (&client, &vc, "192.168.88.2", &rc, srcs),
        (&server, &vs, "192.168.89.2", &rs, dsts),
    ] {
        for a in list {
            ns.ip(&["addr", "add", &format!("{a}/32"), "dev", dev])
                .expect("address");
            router
                .ip(&["route", "add", &format!("{a}/32"), "via", via, "dev", rdev])
                .expect("route");
        }
    }
    client
        .ip(&["route", "add", "default", "via", "192.168.88.1"])
        .expect("route");
    server
        .ip(&["route", "add", "default", "via", "192.168.89.1"])
        .expect("route");
    router.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("forwarding"));
    (client, router, server)
}

/// Sends every probe at once and says which the kernel let through.
fn kernel(client: &Netns, server: &Netns, probes: &[Probe]) -> Vec<bool> {
    let (tcp, udp) = burst::listen_sets(probes);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let stop2 = stop.clone();
    let handle = server.spawn(move || -> std::io::Result<()> {
        let (l, s) = burst::bind(&tcp, &udp)?;
        let _ = tx.send(());
        burst::serve(&l, &s, &stop2);
        Ok(())
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("responder started");
    let shots: Vec<burst::Shot> = probes.iter().map(Probe::shot).collect();
    let out = client
        .run(move || {
            burst::fire(
                &shots,
                Duration::from_millis(700),
                Duration::from_millis(150),
            )
        })
        .expect("probes sent");
    stop.store(true, Ordering::SeqCst);
    handle
        .join()
        .expect("responder")
        .expect("responder ran")
        .expect("responder io");
    out.into_iter()
        .map(|o| o == burst::Outcome::Reached)
        .collect()
}

const POLICIES: usize = 4;
const PROBES: usize = 1500;

#[cfg_attr(
    not(all(scc_netns, scc_aerleon)),
    ignore = "needs root, iproute2, nftables and Aerleon's aclgen"
)]
#[test]
fn every_vendor_rendering_agrees_with_the_kernel_packet_by_packet() {
    let what = "appliance differential test";
    if !netns::available(what) {
        return;
    }
    burst::raise_fd_limit();
    let started = Instant::now();
    let mut rng = Rng(seed());
    let tmp = std::env::temp_dir().join(format!("scc-appliance-{}", std::process::id()));
    let mut total = 0;
    let mut passed = 0;
    let mut per_vendor = vec![(0usize, 0usize); VENDORS.len()];
    let mut per_set = [(0usize, 0usize); 2];
    let mut wrong = Vec::new();
    for case in 0..POLICIES {
        let p = policy(&mut rng);
        let dir = tmp.join(case.to_string());
        let texts = render(&p, &dir);
        let rulesets: Vec<Ruleset> = texts[1..]
            .iter()
            .map(|(platform, text)| {
                scc_ports::audit::read(platform, &as_config(platform, text))
                    .unwrap_or_else(|e| panic!("{platform} rendering of case {case}: {e}\n{text}"))
            })
            .collect();
        // The set formats of the same configurations, written from Aerleon's XML and tree.
        let mut set_rulesets: Vec<(&str, usize, Ruleset)> = Vec::new();
        let derived = [
            ("panos-set", common::panos_set_of(&texts[2].1), 1),
            ("srx-display-set", junos_set_of(&texts[3].1), 2),
        ];
        for (name, text, like) in &derived {
            let rs = scc_ports::audit::read(name, text)
                .unwrap_or_else(|e| panic!("{name} of case {case}: {e}\n{text}"));
            assert_ne!(
                rs.format, rulesets[*like].format,
                "{name}: read as the set format"
            );
            set_rulesets.push((*name, *like, rs));
        }
        let srcs: Vec<Ipv4Addr> = p.srcs.iter().copied().collect();
        let dsts: Vec<Ipv4Addr> = p.dsts.iter().copied().collect();
        let ports: Vec<u16> = p.ports.iter().copied().collect();
        let mut probes = Vec::new();
        let mut seen = BTreeSet::new();
        while probes.len() < PROBES && seen.len() < srcs.len() * dsts.len() * ports.len() * 2 {
            let pr = Probe {
                src: srcs[rng.below(srcs.len())],
                dst: dsts[rng.below(dsts.len())],
                transport: if rng.below(2) == 0 {
                    Transport::Tcp
                } else {
                    Transport::Udp
                },
                port: ports[rng.below(ports.len())],
            };
            if seen.insert((pr.src, pr.dst, pr.transport == Transport::Tcp, pr.port)) {
                probes.push(pr);
            }
        }
        let (client, router, server) = topology(&p.srcs, &p.dsts);
        router
            .nft(&texts[0].1)
            .expect("the nftables rendering loads");
        let reached = kernel(&client, &server, &probes);
        drop((client, router, server));
        passed += reached.iter().filter(|r| **r).count();
        for (v, (vendor, rs)) in VENDORS.iter().zip(&rulesets).enumerate() {
            for (pr, &k) in probes.iter().zip(&reached) {
                let d = rs.evaluate(&packet(pr, vendor.sides));
                per_vendor[v].0 += 1;
                if (d.outcome == Outcome::Accept) != k || matches!(d.outcome, Outcome::Undecided(_))
                {
                    per_vendor[v].1 += 1;
                    if wrong.len() < 20 {
                        wrong.push(format!(
                            "case {case} {}: {pr:?}: kernel {}, audit {:?} by {}",
                            vendor.platform,
                            if k { "passes" } else { "drops" },
                            d.outcome,
                            d.rule
                        ));
                    }
                }
            }
        }
        for (i, (name, like, rs)) in set_rulesets.iter().enumerate() {
            for (pr, &k) in probes.iter().zip(&reached) {
                let d = rs.evaluate(&packet(pr, VENDORS[*like].sides));
                per_set[i].0 += 1;
                if (d.outcome == Outcome::Accept) != k || matches!(d.outcome, Outcome::Undecided(_))
                {
                    per_set[i].1 += 1;
                    if wrong.len() < 20 {
                        wrong.push(format!(
                            "case {case} {name}: {pr:?}: kernel {k}, audit {:?} by {}",
                            d.outcome, d.rule
                        ));
                    }
                }
            }
        }
        total += probes.len();
    }
    let _ = std::fs::remove_dir_all(&tmp);
    for (v, (n, bad)) in VENDORS.iter().zip(&per_vendor) {
        eprintln!("{what}: {}: {n} packets, {bad} disagreements", v.platform);
    }
    for (name, (n, bad)) in ["panos-set", "srx-display-set"].iter().zip(&per_set) {
        eprintln!("{what}: {name}: {n} packets, {bad} disagreements");
    }
    eprintln!(
        "{what}: {total} packets through the kernel ({passed} passed), {POLICIES} policies, \
         {:.1} s (seed {})",
        started.elapsed().as_secs_f64(),
        seed()
    );
    assert!(wrong.is_empty(), "disagreements:\n{}", wrong.join("\n"));
    assert!(total >= 4000, "only {total} packets");
    // Both answers are exercised, or agreement proves nothing.
    assert!(
        passed > total / 20 && passed < total - total / 20,
        "{passed} of {total} passed"
    );
}

// ---------------------------------------------------------------------------------------------
// Goldens: hand-written configurations in each vendor's own style, evaluated for packets that
// meet each construct; the snapshot is the decision and the deciding rule per packet.

/// (from, to, source, destination, transport, port); an empty side is "not known".
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Transport,
    u16,
);

const TCP: Transport = Transport::Tcp;
const UDP: Transport = Transport::Udp;

/// The probes of the SCC-style configurations (agents reach the application servers), in the
/// vendor's names for the zones.
fn probes(agents: &'static str, inside: &'static str, other: &'static str) -> Vec<Case> {
    vec![
        (agents, inside, "10.20.1.5", "10.88.1.11", TCP, 443),
        (agents, inside, "10.20.1.5", "10.88.1.12", TCP, 21005),
        (agents, inside, "10.20.1.5", "10.88.1.12", TCP, 21011),
        (agents, inside, "10.20.1.5", "10.88.3.7", UDP, 9004),
        (agents, inside, "10.20.1.5", "10.88.3.7", UDP, 5060),
        (agents, inside, "10.20.9.7", "10.88.1.11", TCP, 443),
        (agents, inside, "10.30.0.5", "10.88.1.11", TCP, 443),
        (agents, inside, "10.20.1.5", "10.88.1.11", TCP, 22),
        (agents, inside, "10.20.1.5", "10.88.1.13", TCP, 22),
        (agents, inside, "10.20.1.5", "10.88.1.11", UDP, 123),
        (agents, inside, "10.20.1.5", "10.88.1.11", TCP, 80),
        (agents, inside, "10.20.1.5", "10.88.1.12", UDP, 30005),
        (agents, other, "10.20.1.5", "198.51.100.7", TCP, 443),
        (inside, agents, "10.88.1.11", "10.20.1.5", TCP, 3389),
        (inside, inside, "10.88.1.11", "10.88.1.12", TCP, 1433),
        ("", inside, "10.20.1.5", "10.88.1.11", TCP, 443),
    ]
}

fn golden(file: &str, cases: &[Case]) -> String {
    let path = format!("{}/tests/appliance/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("fixture");
    let rs = scc_ports::audit::read(file, &text).unwrap_or_else(|e| panic!("{e}"));
    let mut out = format!("{file}: {}\n", rs.format.as_str());
    for (from, to, s, d, t, port) in cases {
        let p = Packet {
            src: s.parse().expect("address"),
            dst: d.parse().expect("address"),
            transport: *t,
            sport: None,
            dport: *port,
            hook: Hook::Forward,
            sides: Sides::of(from, to),
        };
        let dec = rs.evaluate(&p);
        let outcome = match &dec.outcome {
            Outcome::Accept => "accept".to_string(),
            Outcome::Drop => "drop".to_string(),
            Outcome::Undecided(why) => format!("cannot decide ({why})"),
        };
        out.push_str(&format!(
            "{from:>7} -> {to:<7} {s} -> {d} {}/{port}: {outcome}\n    by {}\n",
            t.as_str(),
            dec.rule
        ));
    }
    out
}

/// A golden's decisions without its first line (the file) and the rules' line numbers: two
/// formats of one configuration must decide alike.
fn without_lines(golden: &str) -> Vec<String> {
    golden
        .lines()
        .skip(1)
        .map(|l| match l.split_once("line ") {
            Some((a, b)) => format!("{a}{}", b.split_once(": ").map_or("", |x| x.1)),
            None => l.to_string(),
        })
        .collect()
}

#[test]
fn golden_asa_object_groups() {
    let mut cases = probes("agents", "inside", "outside");
    cases.push(("outside", "inside", "203.0.113.9", "10.88.1.12", TCP, 443));
    cases.push(("outside", "inside", "172.16.5.15", "10.88.1.12", UDP, 65001));
    cases.push(("outside", "inside", "172.16.5.21", "10.88.1.12", UDP, 65001));
    cases.push(("inside", "outside", "10.88.1.11", "203.0.113.9", TCP, 443));
    cases.push(("dmz", "agents", "172.16.5.15", "10.20.1.5", TCP, 443));
    insta::assert_snapshot!("asa", golden("asa.cfg", &cases));
}

#[test]
fn golden_panos_nested_groups_xml_and_set_agree() {
    let mut cases = probes("agents", "trust", "untrust");
    cases.push(("trust", "trust", "10.88.1.11", "10.88.1.12", TCP, 5432));
    let xml = golden("panos.xml", &cases);
    let set = golden("panos.set", &cases);
    insta::assert_snapshot!("panos", xml);
    assert_eq!(
        without_lines(&xml),
        without_lines(&set),
        "the XML and the set format of one configuration decide alike"
    );
}

#[test]
fn golden_fortios() {
    insta::assert_snapshot!(
        "fortios",
        golden("fortios.conf", &probes("agents", "inside", "wan1"))
    );
}

#[test]
fn golden_srx_zone_address_books_hierarchical_and_set_agree() {
    let cases = probes("agents", "trust", "untrust");
    let tree = golden("srx.conf", &cases);
    let set = golden("srx.set", &cases);
    insta::assert_snapshot!("srx", tree);
    assert_eq!(
        without_lines(&tree),
        without_lines(&set),
        "hierarchical and display set decide alike"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile input: located errors, never a panic, bounded work.

fn read_err(text: &str) -> String {
    match scc_ports::audit::read("hostile", text) {
        Ok(rs) => panic!("read: {:?}", rs.format),
        Err(e) => e.to_string(),
    }
}

#[test]
fn object_group_cycles_and_deep_nesting_are_located_errors() {
    let asa = "object-group network A\n network-object host 10.0.0.1\n group-object B\n\
               object-group network B\n group-object A\n\
               access-list X extended permit ip object-group A any\n\
               access-group X in interface outside\n";
    let e = read_err(asa);
    assert!(
        e.contains("hostile:1:1: group `A` contains itself") && e.contains("hint:"),
        "{e}"
    );
    let mut deep = String::new();
    for i in 0..40 {
        deep.push_str(&format!("set address-group g{i} static [ g{} ]\n", i + 1));
    }
    deep.push_str("set address g40 ip-netmask 10.0.0.1\n");
    deep.push_str(
        "set rulebase security rules r source g0\nset rulebase security rules r action allow\n",
    );
    let e = read_err(&deep);
    assert!(e.contains("nested deeper than 16"), "{e}");
    // Wide groups in wide groups: 64^4 members, refused before they are built.
    let mut wide = String::from("set address a ip-netmask 10.0.0.1\n");
    let members = |g: &str| vec![g; 64].join(" ");
    wide.push_str(&format!(
        "set address-group w0 static [ {} ]\n",
        members("a")
    ));
    for i in 1..5 {
        wide.push_str(&format!(
            "set address-group w{i} static [ {} ]\n",
            members(&format!("w{}", i - 1))
        ));
    }
    wide.push_str(
        "set rulebase security rules r source w4\nset rulebase security rules r action allow\n",
    );
    let started = Instant::now();
    let e = read_err(&wide);
    assert!(e.contains("expands to more than"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn xml_entities_and_dtds_are_refused() {
    let bomb = "<?xml version=\"1.0\"?>\n<!DOCTYPE config [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>\n\
                <config><devices/></config>\n";
    let e = read_err(bomb);
    assert!(
        e.contains("hostile:1:1: not well-formed XML: XML with DTD detected")
            && e.contains("show config running"),
        "{e}"
    );
}

#[test]
fn unbalanced_and_deep_junos_blocks_are_located_errors() {
    let e = read_err("security {\n    policies {\n        global {\n");
    assert!(e.contains("never closed"), "{e}");
    let e = read_err("security {\n}\n}\n");
    assert!(e.contains("hostile:3:1: `}` without its `{`"), "{e}");
    let deep = format!("security {{\n{}", "a {\n".repeat(100));
    let e = read_err(&deep);
    assert!(e.contains("nested deeper than 64"), "{e}");
}

#[test]
fn bad_values_say_where() {
    let e = read_err(
        "access-list X extended permit tcp any host 10.0.0.999 eq 80\naccess-group X in interface outside\n",
    );
    assert!(
        e.contains("hostile:1:") && e.contains("not an address or network"),
        "{e}"
    );
    let e = read_err(
        "config firewall address\n    edit \"a\"\n        set subnet 10.0.0.0 255.0.255.0\n    next\nend\nconfig firewall policy\nend\n",
    );
    assert!(e.contains("hostile:2:1: not a subnet"), "{e}");
    let e = read_err(
        "set security policies from-zone a to-zone b policy p match source-address nowhere\n\
                      set security policies from-zone a to-zone b policy p then permit\n",
    );
    assert!(
        e.contains("`nowhere` is used but in no address book"),
        "{e}"
    );
}

mod robustness {
    use proptest::prelude::*;

    /// Lines in each vendor's words, shuffled and cut: every reader meets its own syntax broken
    /// in every way.
    fn vendor_lines() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "access-list",
            "X",
            "extended",
            "permit",
            "deny",
            "tcp",
            "udp",
            "ip",
            "any",
            "any4",
            "host",
            "10.0.0.1",
            "255.255.0.0",
            "eq",
            "range",
            "80",
            "65535",
            "object-group",
            "object",
            "network",
            "service",
            "network-object",
            "port-object",
            "group-object",
            "access-group",
            "in",
            "interface",
            "outside",
            "nameif",
            "security-level",
            "set",
            "rulebase",
            "security",
            "rules",
            "r",
            "from",
            "to",
            "source",
            "destination",
            "address",
            "address-group",
            "static",
            "[",
            "]",
            "ip-netmask",
            "10.0.0.0/8",
            "action",
            "allow",
            "config",
            "firewall",
            "policy",
            "edit",
            "next",
            "end",
            "\"a b\"",
            "srcintf",
            "srcaddr",
            "all",
            "member",
            "{",
            "}",
            ";",
            "policies",
            "from-zone",
            "to-zone",
            "match",
            "source-address",
            "application",
            "then",
            "address-book",
            "global",
            "address-set",
            "applications",
            "inactive:",
            "replace:",
            "deactivate",
            "/*",
            "*/",
            "#",
            "<config>",
            "<entry name=\"a\">",
            "</entry>",
            "\u{202e}",
            "\0",
            "-",
            "1-2",
            "99999",
            "range-address",
            "term",
            "protocol",
            "destination-port",
            "junos-http",
            "negate-source",
            "yes",
            "disabled",
        ]);
        prop::collection::vec(prop::collection::vec(words, 0..12), 0..30).prop_map(|lines| {
            lines
                .into_iter()
                .map(|l| l.join(" "))
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Any text: a ruleset or an error, never a panic; a ruleset evaluates any packet.
        #[test]
        fn no_reader_panics(body in vendor_lines(), start in 0usize..7) {
            let head = [
                "ASA Version 9.16\n", "set rulebase security rules r action allow\n",
                "config firewall policy\n", "security {\n", "set security zones\n",
                "<config>\n", "",
            ][start];
            let text = format!("{head}{body}");
            if let Ok(rs) = scc_ports::audit::read("x", &text) {
                let p = scc_ports::audit::Packet {
                    src: "10.0.0.1".parse().unwrap(),
                    dst: "10.0.0.2".parse().unwrap(),
                    transport: scc_ports::catalog::Transport::Tcp,
                    sport: None,
                    dport: 80,
                    hook: scc_ports::audit::Hook::Forward,
                    sides: scc_ports::audit::appliance::Sides::of("outside", "r"),
                };
                let _ = rs.evaluate(&p);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The appliance bound to the deployment's zones (`[firewalls.NAME]`): the lab's flows that cross
// the firewall, audited through an ASA configuration written from them.

const LAB: &str = "tests/audit/lab.toml";

/// The lab, with a firewall `EDGE` between every zone (the datacenter's `nameif` is `inside`).
fn lab_with_firewall() -> scc_ports::deployment::Deployment {
    use scc_ports::deployment::{Firewall, FirewallZone};
    let catalog = scc_ports::catalog::Catalog::embedded();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(LAB)).unwrap();
    let mut dep =
        scc_ports::deployment::parse(&scc_ports::diag::Source::new(LAB, text.as_str()), &catalog)
            .expect("lab loads");
    let loc = scc_ports::diag::Location {
        file: LAB.into(),
        line: 1,
        column: 1,
    };
    let zones = (0..dep.zones.len())
        .map(|i| FirewallZone {
            zone: i,
            name: match dep.zones[i].name.as_str() {
                "datacenter" => "inside".to_string(),
                n => n.to_string(),
            },
            location: loc.clone(),
        })
        .collect();
    dep.firewalls.push(Firewall {
        name: "EDGE".into(),
        zones,
        platforms: vec!["ciscoasa".into()],
        location: loc,
    });
    dep
}

/// An ASA running-config admitting exactly `flows`: one inbound ACL per zone's `nameif`.
fn asa_for(dep: &scc_ports::deployment::Deployment, flows: &[scc_ports::flows::Flow]) -> String {
    let fw = &dep.firewalls[0];
    let mut t = String::from("ASA Version 9.16(4)\n");
    for (i, z) in fw.zones.iter().enumerate() {
        t.push_str(&format!(
            "interface GigabitEthernet0/{i}\n nameif {}\n security-level 50\n!\n",
            z.name
        ));
    }
    let name_of = |zone: &str| {
        fw.zones
            .iter()
            .find(|z| dep.zones[z.zone].name == zone)
            .map(|z| z.name.clone())
            .expect("a firewall zone")
    };
    let mask = |n: &ipnet::IpNet| match n {
        ipnet::IpNet::V4(v) if v.prefix_len() == 32 => format!("host {}", v.addr()),
        ipnet::IpNet::V4(v) => format!("{} {}", v.network(), v.netmask()),
        ipnet::IpNet::V6(v) => format!("{v}"),
    };
    let mut acls: Vec<String> = Vec::new();
    for f in flows {
        for z in f.source_zones.iter() {
            let acl = format!("{}_IN", name_of(z));
            if !acls.contains(&acl) {
                acls.push(acl.clone());
            }
            let zone = dep.zone(z).expect("zone");
            let ports: Vec<String> = match f.ports.parity() {
                None if f.ports.lo() == f.ports.hi() => vec![format!("eq {}", f.ports.lo())],
                None => vec![format!("range {} {}", f.ports.lo(), f.ports.hi())],
                Some(_) => (f.ports.lo()..=f.ports.hi())
                    .step_by(2)
                    .map(|p| format!("eq {p}"))
                    .collect(),
            };
            for src in &zone.cidrs {
                for dst in &f.destination {
                    for p in &ports {
                        t.push_str(&format!(
                            "access-list {acl} extended permit {} {} {} {p}\n",
                            f.transport.as_str(),
                            mask(src),
                            mask(dst)
                        ));
                    }
                }
            }
        }
    }
    for acl in acls {
        let nameif = acl.trim_end_matches("_IN");
        t.push_str(&format!("access-group {acl} in interface {nameif}\n"));
    }
    t
}

#[test]
fn lab_audited_through_an_asa_bound_to_its_zones() {
    use scc_ports::audit::appliance::bind::{bind, crossing, zones_of};
    use scc_ports::audit::compare::{Scope, audit};
    let dep = lab_with_firewall();
    let catalog = scc_ports::catalog::Catalog::embedded();
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    let all = scc_ports::flows::flows(&dep, &catalog, &plan);
    let network = scc_ports::firewall::select(&dep, &all, &scc_ports::firewall::Mode::Network);
    let fw = &dep.firewalls[0];
    let flows = crossing(&dep, fw, network.clone());
    assert!(!flows.is_empty() && flows.len() <= network.len());
    let text = asa_for(&dep, &flows);
    let rs = scc_ports::audit::read("edge.cfg", &text).expect("the ASA config reads");
    let bound = bind(&rs, &fw.name, &zones_of(&dep, fw)).expect("every zone is named");
    let report = audit(&bound, &flows, &Scope::Network);
    assert!(
        report.summary.exact,
        "{:#?}\n{text}",
        serde_json::to_value(&report.summary).unwrap()
    );
    assert_eq!(report.summary.admitted, flows.len());
    eprintln!(
        "{} crossing flows of {} network flows, {} ACEs: exact",
        flows.len(),
        network.len(),
        text.lines()
            .filter(|l| l.starts_with("access-list "))
            .count()
    );
    // One ACE less: that flow is no longer admitted, and the implicit deny says so.
    let acl_of = |l: &str| l.split_whitespace().nth(1).unwrap_or("").to_string();
    let aces: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("access-list "))
        .collect();
    let line = aces
        .iter()
        .find(|l| aces.iter().filter(|m| acl_of(m) == acl_of(l)).count() > 1)
        .expect("an ACL of two entries")
        .to_string();
    let cut = text.replacen(&format!("{line}\n"), "", 1);
    let rs = scc_ports::audit::read("edge.cfg", &cut).expect("reads");
    let bound = bind(&rs, &fw.name, &zones_of(&dep, fw)).expect("bound");
    let report = audit(&bound, &flows, &Scope::Network);
    let json = serde_json::to_string(&report).unwrap();
    assert!(
        !report.summary.exact && report.summary.blocked + report.summary.partial >= 1,
        "{json}"
    );
    assert!(json.contains("implicit deny"), "{json}");
    // A zone the configuration never names is said, not guessed.
    let mut zones = zones_of(&dep, fw);
    zones[1].name = "nowhere".into();
    let e = bind(&rs, &fw.name, &zones).expect_err("unmapped");
    assert_eq!(
        e.zones,
        vec![(zones[1].zone.clone(), "nowhere".to_string())]
    );
    assert!(e.known.contains(&"inside".to_string()), "{:?}", e.known);
}

/// Through the CLI: an appliance's configuration is refused with `--node`, and with
/// `--network` when the deployment declares no firewall to map its zones (exit 2, located).
#[test]
fn cli_refuses_an_appliance_without_its_firewall() {
    for f in [
        "asa.cfg",
        "panos.xml",
        "panos.set",
        "fortios.conf",
        "srx.conf",
        "srx.set",
    ] {
        let path = format!("tests/appliance/{f}");
        let (code, out, err) = common::cli(&["audit", LAB, "--node", "APP1", "--ruleset", &path]);
        assert_eq!(code, 2, "{f}: {err}");
        assert!(
            out.is_empty() && err.contains("cannot be audited with --node"),
            "{err}"
        );
        let (code, out, err) = common::cli(&["audit", LAB, "--network", "--ruleset", &path]);
        assert_eq!(code, 2, "{f}: {err}");
        assert!(
            out.is_empty()
                && err.contains(&format!("{path}:1:1"))
                && err.contains("declares no [firewalls.NAME]"),
            "{err}"
        );
    }
    let (code, _, err) = common::cli(&[
        "audit",
        LAB,
        "--network",
        "--ruleset",
        "tests/audit/admin.save",
        "--firewall",
        "EDGE",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--firewall names an appliance"), "{err}");
}

/// The round trip: `firewall --target aerleon --network` for every example with `[firewalls]`,
/// rendered by `aclgen`; each appliance rendering audited with `--network --firewall NAME`
/// admits exactly the plan (exit 0). The ASA file gets what Aerleon does not write: the
/// interfaces' `nameif`s and the `access-group` bindings (docs/firewall.md), and an interface
/// whose zone sends nothing through the firewall an ACL that denies.
#[cfg_attr(not(scc_aerleon), ignore = "needs Aerleon's aclgen")]
#[test]
fn aerleon_renderings_of_our_network_policy_audit_exact() {
    let tmp = std::env::temp_dir().join(format!("scc-appliance-rt-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temporary directory");
    let mut audited = 0;
    for (ex, file, out, dep) in common::aerleon_examples(&tmp) {
        for fw in &dep.firewalls {
            for (ext, platform) in [
                ("asa", "ciscoasa"),
                ("xml", "paloalto"),
                ("srx", "srx"),
                ("fgacl", "fortigate"),
            ] {
                if !fw.platforms.iter().any(|p| p == platform) {
                    continue;
                }
                let path = common::aerleon_file(&out, &fw.name, ext);
                let mut config = std::fs::read_to_string(&path).unwrap();
                if ext == "asa" {
                    let names: Vec<&str> = fw.zones.iter().map(|z| z.name.as_str()).collect();
                    config = common::asa_framed(&config, &names);
                }
                let audited_path = tmp.join(ex).join(format!("{}.{ext}", fw.name));
                std::fs::write(&audited_path, &config).unwrap();
                let (code, out_text, err) = common::cli(&[
                    "audit",
                    &file,
                    "--network",
                    "--firewall",
                    &fw.name,
                    "--ruleset",
                    audited_path.to_str().unwrap(),
                    "--format",
                    "json",
                ]);
                assert_eq!(
                    code,
                    0,
                    "{ex} {} .{ext}: {err}\n{}",
                    fw.name,
                    &out_text[..out_text.len().min(3000)]
                );
                audited += 1;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!("{audited} appliance renderings audited exact");
    assert_eq!(
        audited, 18,
        "every appliance platform of every example's firewalls"
    );
}
