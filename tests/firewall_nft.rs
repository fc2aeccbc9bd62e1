//! The `nftables` and `iptables` targets: golden snapshots over the examples, the tools' own
//! validators, and end-to-end proof in the kernel (network namespaces, real TCP/UDP traffic).
//!
//! The kernel tests need root, `ip`, `nft` and `iptables-restore`; without them they print why and
//! pass, unless `SCC_PORTS_REQUIRE_ROOT_TESTS=1` makes them mandatory.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::burst::{self, Outcome};
use common::required;
use ipnet::IpNet;
use scc_ports::catalog::{Catalog, Role, Transport};
use scc_ports::deployment::Deployment;
use scc_ports::diag::Source;
use scc_ports::firewall::{Mode, Policy, Request};
use scc_ports::flows::Flow;
use scc_ports::range::{Parity, PortRange};

const BIN: &str = env!("CARGO_BIN_EXE_scc-ports");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TARGETS: [&str; 2] = ["nftables", "iptables"];

/// Runs `scc-ports firewall ARGS` from the crate root (so the file name in the header is stable)
/// and returns stdout.
fn cli(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .current_dir(ROOT)
        .arg("firewall")
        .args(args)
        .output()
        .expect("run scc-ports");
    assert!(
        out.status.success(),
        "scc-ports firewall {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Every (snapshot name, CLI arguments) the golden and validator tests cover: both targets × node
/// (the first node of each example, plus a node holding other units or none) / workstations /
/// network, and the accept policy for one node and the network.
fn cases() -> Vec<(String, Vec<String>)> {
    let examples: [(&str, &[&str]); 3] = [
        ("all-in-one", &["SCC1"]),
        ("redundant", &["APP1", "WEB1", "DB1"]),
        ("large", &["APP_A1", "VOICE_A"]),
    ];
    let mut out = Vec::new();
    for target in TARGETS {
        for (example, nodes) in examples {
            let file = format!("examples/{example}.toml");
            let base = |extra: &[&str]| {
                let mut v = vec![file.clone(), "--target".into(), target.into()];
                v.extend(extra.iter().map(|s| s.to_string()));
                v
            };
            for node in nodes {
                out.push((
                    format!("{target}_{example}_node_{node}"),
                    base(&["--node", node]),
                ));
            }
            out.push((
                format!("{target}_{example}_workstations"),
                base(&["--workstations"]),
            ));
            out.push((format!("{target}_{example}_network"), base(&["--network"])));
            if example == "redundant" {
                out.push((
                    format!("{target}_{example}_node_APP1_accept"),
                    base(&["--node", "APP1", "--policy", "accept"]),
                ));
                out.push((
                    format!("{target}_{example}_network_accept"),
                    base(&["--network", "--policy", "accept"]),
                ));
            }
        }
    }
    out
}

fn generate(args: &[String]) -> String {
    cli(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn golden_every_example_mode_and_target() {
    for (name, args) in cases() {
        let text = generate(&args);
        assert_eq!(text, generate(&args), "{name}: output is not deterministic");
        insta::assert_snapshot!(name, text);
    }
}

// ---------------------------------------------------------------------------------------------
// A synthetic request: what the examples do not have (IPv6, mixed families, parity ranges).

fn net(s: &str) -> IpNet {
    s.parse().expect("test network")
}

fn flow(
    sources: &[&str],
    destination: &[&str],
    transport: Transport,
    ports: PortRange,
    port_id: &str,
) -> Flow {
    Flow {
        role: Role::Clients,
        source_zones: vec!["mixed".into()].into(),
        sources: sources.iter().map(|s| net(s)).collect(),
        node: "DUAL".into(),
        destination: destination.iter().map(|s| net(s)).collect(),
        workstations: false,
        unit: None,
        transport,
        ports,
        component: "test-component".into(),
        port_ids: vec![port_id.into()],
        purpose: "synthetic".into(),
    }
}

fn synthetic_flows() -> Vec<Flow> {
    let even = PortRange::new(5004, 5030, Some(Parity::Even)).unwrap();
    let odd_big = PortRange::new(7001, 7201, Some(Parity::Odd)).unwrap();
    let area = PortRange::new(8000, 8400, None).unwrap();
    vec![
        flow(
            &["10.1.0.0/24", "2001:db8:1::/64"],
            &["10.1.0.11/32"],
            Transport::Tcp,
            PortRange::single(21012).unwrap(),
            "v4-destination",
        ),
        flow(
            &["10.1.0.0/24", "2001:db8:1::/64"],
            &["2001:db8::11/128"],
            Transport::Tcp,
            PortRange::single(21012).unwrap(),
            "v6-destination",
        ),
        flow(
            &["0.0.0.0/0", "::/0"],
            &["10.1.0.11/32", "2001:db8::11/128"],
            Transport::Udp,
            even,
            "rtp \"quoted\"",
        ),
        flow(
            &["10.20.0.0/16"],
            &["10.1.0.11/32"],
            Transport::Udp,
            odd_big,
            "odd-area",
        ),
        flow(
            &["2001:db8:20::/48"],
            &["10.1.0.11/32"],
            Transport::Udp,
            area,
            "v6-source-only",
        ),
    ]
}

fn synthetic(policy: Policy, mode: Mode, dep: &Deployment) -> Vec<(String, String)> {
    TARGETS
        .iter()
        .map(|t| {
            let g = scc_ports::firewall::target(t).expect("registered");
            let req = Request {
                deployment: dep,
                mode: mode.clone(),
                policy,
                flows: synthetic_flows(),
            };
            (t.to_string(), g.generate(&req))
        })
        .collect()
}

fn example_deployment() -> Deployment {
    let catalog = Catalog::embedded();
    let text = std::fs::read_to_string(Path::new(ROOT).join("examples/redundant.toml")).unwrap();
    scc_ports::deployment::parse(
        &Source::new("examples/redundant.toml", text.as_str()),
        &catalog,
    )
    .expect("example loads")
}

fn synthetic_cases() -> Vec<(String, String)> {
    let dep = example_deployment();
    let node = Mode::Node {
        name: "DUAL".into(),
        addresses: vec![
            "10.1.0.11".parse().unwrap(),
            "2001:db8::11".parse().unwrap(),
        ],
    };
    let mut out = Vec::new();
    for (t, text) in synthetic(Policy::Drop, node, &dep) {
        out.push((format!("{t}_synthetic_node"), text));
    }
    for (t, text) in synthetic(Policy::Accept, Mode::Network, &dep) {
        out.push((format!("{t}_synthetic_network_accept"), text));
    }
    out
}

#[test]
fn golden_ipv6_and_parity() {
    for (name, text) in synthetic_cases() {
        insta::assert_snapshot!(name, text);
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Any flows (families mixed, parity ranges of any size): no panic, and every flow is named.
    #[test]
    fn any_flows_generate(
        specs in proptest::collection::vec(
            (proptest::bool::ANY, proptest::bool::ANY, 1u16..65000, 0u16..300, 0u8..3, 0u8..33),
            0..8,
        )
    ) {
        let dep = example_deployment();
        let flows: Vec<Flow> = specs
            .iter()
            .enumerate()
            .map(|(i, &(src6, dst6, lo, span, parity, prefix))| {
                let parity = [None, Some(Parity::Even), Some(Parity::Odd)][usize::from(parity)];
                let lo = match parity {
                    Some(p) if Parity::of(lo) != p => lo + 1,
                    _ => lo,
                };
                let hi = lo.saturating_add(span);
                let hi = match parity {
                    Some(p) if Parity::of(hi) != p => hi - 1,
                    _ => hi,
                };
                let ports = PortRange::new(lo, hi.max(lo), parity)
                    .unwrap_or_else(|_| PortRange::single(lo).unwrap());
                let src = if src6 { format!("2001:db8::/{}", prefix + 32) } else { format!("10.0.0.0/{prefix}") };
                let dst = if dst6 { "2001:db8::1/128" } else { "10.9.9.9/32" };
                let transport = if i % 2 == 0 { Transport::Tcp } else { Transport::Udp };
                flow(&[src.as_str()], &[dst], transport, ports, &format!("p{i}"))
            })
            .collect();
        for t in TARGETS {
            for (mode, policy) in [
                (Mode::Workstations, Policy::Drop),
                (Mode::Network, Policy::Accept),
            ] {
                let req = Request { deployment: &dep, mode, policy, flows: flows.clone() };
                let text = scc_ports::firewall::target(t).unwrap().generate(&req);
                for i in 0..flows.len() {
                    let label = format!("test-component.p{i}");
                    proptest::prop_assert!(text.contains(&label), "{t}: {label} missing");
                }
            }
        }
    }
}

#[test]
fn targets_are_registered_first_nftables_then_iptables() {
    let names: Vec<&str> = scc_ports::firewall::TARGETS
        .iter()
        .map(|t| t.name())
        .collect();
    assert_eq!(&names[..2], &["nftables", "iptables"]);
}

#[test]
fn every_rule_names_component_and_port_id() {
    for (name, args) in cases() {
        let text = generate(&args);
        for line in text.lines() {
            let rule = line.trim_start();
            let iptables_rule = rule.ends_with("-j ACCEPT") && rule.contains(" -s ");
            let nft_rule = rule.contains(" dport ") && rule.contains(" accept");
            let is_rule = iptables_rule || nft_rule;
            if is_rule {
                assert!(
                    rule.contains("comment"),
                    "{name}: rule without comment: {line}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Validators: each target's own tool parses the output.

/// Whether root-only tests can run: the tools' paths, or None after printing why not (a panic
/// instead when `SCC_PORTS_REQUIRE_ROOT_TESTS=1`).
fn ready(what: &str, tools: &[&str]) -> Option<Vec<PathBuf>> {
    let mut reason = None;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        reason = Some("not running as root".to_string());
    }
    let mut paths = Vec::new();
    for tool in tools {
        match which(tool) {
            Some(p) => paths.push(p),
            None => {
                reason.get_or_insert(format!("`{tool}` not found"));
            }
        }
    }
    skip_unless(what, reason).then_some(paths)
}

/// True when there is no reason to skip; otherwise prints it and returns false, or panics when
/// `SCC_PORTS_REQUIRE_ROOT_TESTS=1`.
fn skip_unless(what: &str, reason: Option<String>) -> bool {
    match reason {
        None => true,
        Some(r) => {
            if required() {
                panic!("{what}: {r}, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires this test");
            }
            eprintln!("skipping {what}: {r}");
            false
        }
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

fn run(tool: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", tool.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{} {args:?}: {}{}",
            tool.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[cfg_attr(
    not(all(scc_nft, scc_iptables)),
    ignore = "needs root, nft and iptables-restore (the validators)"
)]
#[test]
fn validators_accept_every_output() {
    let Some(tools) = ready("validator test", &["nft", "iptables-restore"]) else {
        return;
    };
    let (nft, restore) = (&tools[0], &tools[1]);
    let dir = tempfile::tempdir().unwrap();
    let mut all: Vec<(String, String)> = cases()
        .into_iter()
        .map(|(name, args)| (name, generate(&args)))
        .collect();
    all.extend(synthetic_cases());
    let mut failures = Vec::new();
    for (name, text) in &all {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let f = file.to_str().unwrap();
        let result = if name.starts_with("nftables") {
            run(nft, &["-c", "-f", f])
        } else {
            run(restore, &["--test", f])
        };
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Kernel end to end: namespaces, the generated rules loaded, real traffic.

/// One lab at a time: they are cheap, and serial runs keep the file-descriptor count low.
static LAB_LOCK: Mutex<()> = Mutex::new(());
static NS_COUNTER: AtomicUsize = AtomicUsize::new(0);
const NS_PREFIX: &str = "scc-fw-";
/// How long a probe waits for its answer: a dropped SYN or datagram is "blocked" after this.
const PROBE_WINDOW: Duration = Duration::from_millis(1500);

const LAB_TOML: &str = r#"# The kernel lab: every address lives inside the test's own namespaces.
name = "kernel lab"

[zones.datacenter]
cidrs = ["10.77.1.0/24"]
roles = ["servers"]

[zones.dmz]
cidrs = ["10.77.5.0/24"]
roles = ["servers"]

[zones.agents]
cidrs = ["10.77.2.0/24"]
roles = ["clients"]

[zones.admins]
cidrs = ["10.77.3.0/24"]
roles = ["admins"]

[zones.carrier]
cidrs = ["10.77.4.0/24"]
roles = ["trunk"]

[zones.ivr]
cidrs = ["10.77.6.0/24"]
roles = ["ivr"]

[nodes.APP1]
address = "10.77.1.11"
zone = "datacenter"

[units.CORE]
address = "10.77.1.100"
packages = ["agent-server", "connection-server", "cem-server"]
instances = ["APP1"]

[units.CORE.variables]
"cem-server.external-ivr-port" = 21030

[units.VOICE]
address = "10.77.1.101"
packages = ["sip-bridge", "media-routing-server"]
instances = ["APP1"]

[units.VOICE.variables]
"media-routing-server.max-simultaneous-prompts" = 20
"media-routing-server.max-simultaneous-recordings" = 10
"#;

/// The client zones of the lab: name, subnet number (10.77.N.0/24), the client's address 10.77.N.10.
const LAB_ZONES: [(&str, u8); 5] = [
    ("dmz", 5),
    ("agents", 2),
    ("admins", 3),
    ("carrier", 4),
    ("ivr", 6),
];
const SERVER_ADDRESSES: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 77, 1, 11),
    Ipv4Addr::new(10, 77, 1, 100),
    Ipv4Addr::new(10, 77, 1, 101),
];
/// Ports no flow of the lab has, with a responder listening, so that only the firewall blocks.
const OUTSIDE_TCP: [u16; 2] = [22, 21999];
const OUTSIDE_UDP: [u16; 2] = [5061, 8999];

/// Namespaces created by this test, deleted when dropped (also on panic).
struct Namespaces {
    ip: PathBuf,
    names: Vec<String>,
}

impl Namespaces {
    fn add(&mut self, role: &str) -> String {
        let n = NS_COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("{NS_PREFIX}{}-{n}", std::process::id());
        run(&self.ip, &["netns", "add", &name]).unwrap_or_else(|e| panic!("{role}: {e}"));
        self.names.push(name.clone());
        self.ip_in(&name, &["link", "set", "lo", "up"]);
        name
    }

    fn ip_in(&self, ns: &str, args: &[&str]) {
        let mut all = vec!["-n", ns];
        all.extend_from_slice(args);
        run(&self.ip, &all).unwrap_or_else(|e| panic!("{e}"));
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in self.names.drain(..).rev() {
            let _ = run(&self.ip, &["netns", "del", &name]);
        }
    }
}

/// Removes namespaces with our prefix whose process is gone (a run killed before its guards).
fn clean_leftovers(ip: &Path) {
    let Ok(list) = run(ip, &["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = run(ip, &["netns", "del", name]);
        }
    }
}

/// Moves the calling thread into a named network namespace (only this thread).
fn enter(ns: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(Path::new("/run/netns").join(ns))?;
    // SAFETY: setns on a valid namespace fd; it changes only the calling thread's namespace.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The lab: a router namespace between the server and one namespace per client zone.
struct Lab {
    /// Held only for its drop: deleting the namespaces.
    _namespaces: Namespaces,
    router: String,
    server: String,
    /// (zone, namespace, client address)
    clients: Vec<(String, String, Ipv4Addr)>,
}

fn build_lab(ip: &Path) -> Lab {
    let mut ns = Namespaces {
        ip: ip.to_path_buf(),
        names: Vec::new(),
    };
    let router = ns.add("router");
    let server = ns.add("server");
    ns.ip_in(
        &router,
        &[
            "link", "add", "s0", "type", "veth", "peer", "name", "eth0", "netns", &server,
        ],
    );
    ns.ip_in(&router, &["addr", "add", "10.77.1.1/24", "dev", "s0"]);
    ns.ip_in(&router, &["link", "set", "s0", "up"]);
    for a in SERVER_ADDRESSES {
        ns.ip_in(&server, &["addr", "add", &format!("{a}/24"), "dev", "eth0"]);
    }
    ns.ip_in(&server, &["link", "set", "eth0", "up"]);
    ns.ip_in(
        &server,
        &["route", "add", "10.77.0.0/16", "via", "10.77.1.1"],
    );
    let mut clients = Vec::new();
    for (zone, n) in LAB_ZONES {
        let client = ns.add(zone);
        let ifname = format!("z{n}");
        ns.ip_in(
            &router,
            &[
                "link", "add", &ifname, "type", "veth", "peer", "name", "eth0", "netns", &client,
            ],
        );
        ns.ip_in(
            &router,
            &["addr", "add", &format!("10.77.{n}.1/24"), "dev", &ifname],
        );
        ns.ip_in(&router, &["link", "set", &ifname, "up"]);
        ns.ip_in(
            &client,
            &["addr", "add", &format!("10.77.{n}.10/24"), "dev", "eth0"],
        );
        ns.ip_in(&client, &["link", "set", "eth0", "up"]);
        ns.ip_in(
            &client,
            &[
                "route",
                "add",
                "10.77.0.0/16",
                "via",
                &format!("10.77.{n}.1"),
            ],
        );
        clients.push((zone.to_string(), client, Ipv4Addr::new(10, 77, n, 10)));
    }
    // Forwarding only inside the router namespace; the namespaces have no link to the host.
    let forward = std::thread::scope(|s| {
        s.spawn(|| -> std::io::Result<()> {
            enter(&router)?;
            std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        })
        .join()
        .expect("thread")
    });
    forward.expect("enable forwarding in the router namespace");
    Lab {
        _namespaces: ns,
        router,
        server,
        clients,
    }
}

/// Plain TCP listeners (accept and close) and UDP echo sockets in one namespace, served by one
/// thread until dropped.
struct Responder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn start_responder(ns: &str, tcp: &BTreeSet<u16>, udp: &BTreeSet<(Ipv4Addr, u16)>) -> Responder {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let (ns, tcp, udp, flag) = (ns.to_string(), tcp.clone(), udp.clone(), stop.clone());
    let handle = std::thread::spawn(move || {
        let (listeners, sockets) = match enter(&ns).and_then(|()| burst::bind(&tcp, &udp)) {
            Ok(v) => {
                let _ = tx.send(Ok(()));
                v
            }
            Err(e) => {
                let _ = tx.send(Err(format!("responder in {ns}: {e}")));
                return;
            }
        };
        burst::serve(&listeners, &sockets, &flag);
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(e) => panic!("responder did not start: {e}"),
    }
    Responder {
        stop,
        handle: Some(handle),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Probe {
    dst: Ipv4Addr,
    transport: Transport,
    port: u16,
}

/// Sends every probe at once from inside `ns` and waits at most [`PROBE_WINDOW`]: TCP reached =
/// handshake completed; UDP reached = the echo came back. UDP is resent every 300 ms.
fn probe_all(ns: &str, probes: &[Probe]) -> std::io::Result<Vec<Outcome>> {
    enter(ns)?;
    let shots: Vec<burst::Shot> = probes
        .iter()
        .map(|p| burst::Shot {
            src: None,
            dst: p.dst,
            transport: p.transport,
            port: p.port,
        })
        .collect();
    burst::fire(&shots, PROBE_WINDOW, Duration::from_millis(300))
}

/// The truth the rules must implement: the plan's flows, not the generated text.
fn planned(flows: &[Flow], src: Ipv4Addr, p: &Probe) -> bool {
    flows.iter().any(|f| {
        f.transport == p.transport
            && f.ports.contains(p.port)
            && f.destination.iter().any(|n| n.contains(&IpAddr::V4(p.dst)))
            && f.sources.iter().any(|n| n.contains(&IpAddr::V4(src)))
    })
}

fn lab_flows(mode: &Mode) -> Vec<Flow> {
    let catalog = Catalog::embedded();
    let dep = scc_ports::deployment::parse(&Source::new("lab.toml", LAB_TOML), &catalog)
        .expect("lab deployment loads");
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    let all = scc_ports::flows::flows(&dep, &catalog, &plan);
    scc_ports::firewall::select(&dep, &all, mode)
}

/// Builds the lab, loads the generated rules of `target` into the server (`--node APP1`) or the
/// router (`--network`), probes from every client zone and returns the probes that disagree with
/// the plan (None when skipped). `tamper` edits the rules before loading (the negative control).
fn kernel_lab(target: &str, network: bool, tamper: Option<(&str, &str)>) -> Option<Vec<String>> {
    let what = format!(
        "kernel test {target} {}{}",
        if network { "network" } else { "node" },
        if tamper.is_some() {
            " (negative control)"
        } else {
            ""
        }
    );
    let loader = if target == "nftables" {
        "nft"
    } else {
        "iptables-restore"
    };
    let tools = ready(&what, &["ip", loader])?;
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (ip, load) = (&tools[0], &tools[1]);
    burst::raise_fd_limit();
    clean_leftovers(ip);
    // Root without the capability to make namespaces (some containers) is a reason to skip too.
    let trial = format!("{NS_PREFIX}{}-trial", std::process::id());
    let refused = run(ip, &["netns", "add", &trial]).err();
    let _ = run(ip, &["netns", "del", &trial]);
    if !skip_unless(
        &what,
        refused.map(|e| format!("cannot create a namespace: {e}")),
    ) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let lab_file = dir.path().join("lab.toml");
    std::fs::write(&lab_file, LAB_TOML).unwrap();
    let mode_arg: &[&str] = if network {
        &["--network"]
    } else {
        &["--node", "APP1"]
    };
    let mut args = vec![lab_file.to_str().unwrap(), "--target", target];
    args.extend_from_slice(mode_arg);
    let mut rules = cli(&args);
    if let Some((from, to)) = tamper {
        assert!(rules.contains(from), "tamper: `{from}` not in the rules");
        rules = rules.replace(from, to);
    }
    let rules_file = dir.path().join("rules");
    std::fs::write(&rules_file, &rules).unwrap();
    let mode = if network {
        Mode::Network
    } else {
        Mode::Node {
            name: "APP1".into(),
            addresses: SERVER_ADDRESSES.iter().map(|a| IpAddr::V4(*a)).collect(),
        }
    };
    let flows = lab_flows(&mode);

    // Probes: every planned port (sampled for large ranges) and its neighbours at every server
    // address, the outside ports, and for --network the workstations' CDT ports on the agent PC.
    let mut ports: BTreeSet<(Transport, u16)> = BTreeSet::new();
    let mut agent_ports: BTreeSet<u16> = BTreeSet::new();
    let agent = Ipv4Addr::new(10, 77, 2, 10);
    for f in &flows {
        for p in burst::sample(f.ports, 64) {
            if f.workstations {
                agent_ports.insert(p);
            } else {
                ports.insert((f.transport, p));
            }
        }
    }
    ports.extend(OUTSIDE_TCP.iter().map(|p| (Transport::Tcp, *p)));
    ports.extend(OUTSIDE_UDP.iter().map(|p| (Transport::Udp, *p)));
    let mut probes: Vec<Probe> = Vec::new();
    for dst in SERVER_ADDRESSES {
        for &(transport, port) in &ports {
            probes.push(Probe {
                dst,
                transport,
                port,
            });
        }
    }
    let agent_probes: Vec<Probe> = agent_ports
        .iter()
        .map(|&port| Probe {
            dst: agent,
            transport: Transport::Udp,
            port,
        })
        .collect();
    assert_eq!(
        agent_probes.is_empty(),
        !network,
        "CDT flows only in --network"
    );

    let lab = build_lab(ip);
    let holder = if network { &lab.router } else { &lab.server };
    let loaded = if target == "nftables" {
        run(
            ip,
            &[
                "netns",
                "exec",
                holder,
                load.to_str().unwrap(),
                "-f",
                rules_file.to_str().unwrap(),
            ],
        )
    } else {
        run(
            ip,
            &[
                "netns",
                "exec",
                holder,
                load.to_str().unwrap(),
                rules_file.to_str().unwrap(),
            ],
        )
    };
    loaded.unwrap_or_else(|e| panic!("loading the generated rules: {e}\n{rules}"));

    let tcp: BTreeSet<u16> = ports
        .iter()
        .filter(|(t, _)| *t == Transport::Tcp)
        .map(|(_, p)| *p)
        .collect();
    let udp: BTreeSet<(Ipv4Addr, u16)> = SERVER_ADDRESSES
        .iter()
        .flat_map(|a| {
            ports
                .iter()
                .filter(|(t, _)| *t == Transport::Udp)
                .map(move |(_, p)| (*a, *p))
        })
        .collect();
    let _server_responder = start_responder(&lab.server, &tcp, &udp);
    let _agent_responder = network.then(|| {
        let udp: BTreeSet<(Ipv4Addr, u16)> = agent_ports.iter().map(|p| (agent, *p)).collect();
        let agent_ns = &lab.clients.iter().find(|c| c.0 == "agents").unwrap().1;
        start_responder(agent_ns, &BTreeSet::new(), &udp)
    });

    // Every prober at once: each client zone to the server, and in --network every other zone
    // and the server to the agent PC.
    let mut jobs: Vec<(String, String, Ipv4Addr, Vec<Probe>)> = lab
        .clients
        .iter()
        .map(|(zone, ns, src)| {
            let mut list = probes.clone();
            if zone != "agents" {
                list.extend(agent_probes.iter().copied());
            }
            (zone.clone(), ns.clone(), *src, list)
        })
        .collect();
    if network {
        jobs.push((
            "datacenter (server)".into(),
            lab.server.clone(),
            SERVER_ADDRESSES[0],
            agent_probes.clone(),
        ));
    }
    let results: Vec<std::io::Result<Vec<Outcome>>> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(_, ns, _, list)| s.spawn(move || probe_all(ns, list)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("probe thread"))
            .collect()
    });

    let mut wrong = Vec::new();
    let (mut reached, mut blocked) = (0, 0);
    for ((zone, _, src, list), result) in jobs.iter().zip(results) {
        let outcomes = result.unwrap_or_else(|e| panic!("probing from {zone}: {e}"));
        // Every zone must see both outcomes, or the lab proves nothing about it.
        assert!(
            outcomes.contains(&Outcome::Reached) && outcomes.iter().any(|o| *o != Outcome::Reached),
            "{what}: zone {zone} saw only one outcome"
        );
        for (p, got) in list.iter().zip(outcomes) {
            let expect = planned(&flows, *src, p);
            if (got == Outcome::Reached) != expect {
                wrong.push(format!(
                    "{zone} {src} -> {} {}/{}: planned {}, got {got:?}",
                    p.dst,
                    p.transport.as_str(),
                    p.port,
                    if expect { "open" } else { "closed" }
                ));
            }
            if got == Outcome::Reached {
                reached += 1;
            } else {
                blocked += 1;
            }
        }
    }
    eprintln!(
        "{what}: {reached} probes reached, {blocked} blocked, {} disagree with the plan",
        wrong.len()
    );
    if !wrong.is_empty() && tamper.is_none() {
        eprintln!("{what}: the rules were:\n{rules}");
    }
    Some(wrong)
}

/// The generated rules admit exactly the planned flows.
fn kernel_exact(target: &str, network: bool) {
    if let Some(wrong) = kernel_lab(target, network, None) {
        assert!(
            wrong.is_empty(),
            "{target}: {} probes disagree with the plan:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}

/// The negative control: one port too many in the rules is caught, and only that port.
fn kernel_catches(target: &str, network: bool, from: &str, to: &str, port: u16) {
    if let Some(wrong) = kernel_lab(target, network, Some((from, to))) {
        assert!(!wrong.is_empty(), "{target}: a widened rule went unnoticed");
        let needle = format!("/{port}: planned closed, got Reached");
        assert!(
            wrong.iter().all(|w| w.ends_with(&needle)),
            "{target}: unexpected disagreements:\n{}",
            wrong.join("\n")
        );
    }
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_nftables_node() {
    kernel_exact("nftables", false);
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_iptables_node() {
    kernel_exact("iptables", false);
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_nftables_network() {
    kernel_exact("nftables", true);
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_iptables_network() {
    kernel_exact("iptables", true);
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_nftables_catches_a_widened_area() {
    kernel_catches(
        "nftables",
        false,
        " . 8000-8040 comment",
        " . 8000-8041 comment",
        8041,
    );
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_iptables_catches_a_widened_area() {
    kernel_catches("iptables", true, "9000:9060", "9000:9061", 9061);
}

// ---------------------------------------------------------------------------------------------
// Set-based rules at scale: a multi-site system (sites of 50 nodes, each with its own server and
// agent zone) loads as a handful of rules over named sets, quickly, and the kernel's sets hold
// exactly the planned (destination, port) pairs.

/// The system of `bench/nftload.py` and `benches/firewall.rs`: `nodes` nodes in sites of 50.
fn sites(nodes: usize) -> String {
    use std::fmt::Write as _;
    const PACKAGES: [&str; 4] = [
        "agent-server",
        "alarm-server",
        "call-dispatcher",
        "chat-server",
    ];
    let mut s = String::from("name = \"sites\"\n\n");
    s.push_str("[zones.admins]\ncidrs = [\"192.168.0.0/24\"]\nroles = [\"admins\"]\n\n");
    let dc =
        |site: usize, host: usize| format!("10.{}.{}.{host}", (2 * site) >> 8, (2 * site) & 0xff);
    for site in 0..nodes.div_ceil(50) {
        let _ = write!(
            s,
            "[zones.dc{site}]\ncidrs = [\"{}/24\"]\nroles = [\"servers\"]\n\n\
             [zones.agents{site}]\ncidrs = [\"172.{}.{}.0/24\"]\nroles = [\"clients\"]\n\n",
            dc(site, 0),
            16 + ((2 * site) >> 8),
            (2 * site) & 0xff
        );
    }
    for i in 0..nodes {
        let _ = write!(
            s,
            "[nodes.N{i}]\naddress = \"{}\"\nzone = \"dc{}\"\n\n",
            dc(i / 50, 1 + i % 50),
            i / 50
        );
    }
    for u in 0..nodes / 2 {
        let pkg = PACKAGES[u % PACKAGES.len()];
        let _ = write!(
            s,
            "[units.U{u}]\naddress = \"{}\"\npackages = [\"{pkg}\"]\ninstances = [\"N{}\", \"N{}\"]\n\n\
             [units.U{u}.variables]\n\"{pkg}.port\" = {}\n\n",
            dc((2 * u) / 50, 100 + (2 * u) % 50 / 2),
            2 * u,
            2 * u + 1,
            1024 + u
        );
    }
    s
}

/// The elements of each named set of an nft file, as written (`addr`, `addr . port`).
fn set_elements(rules: &str) -> std::collections::HashMap<String, Vec<String>> {
    let mut sets = std::collections::HashMap::new();
    let mut current: Option<String> = None;
    for line in rules.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("set ").and_then(|r| r.strip_suffix(" {")) {
            current = Some(name.to_string());
            sets.insert(name.to_string(), Vec::new());
        } else if t == "}" && line.starts_with("\t}") {
            current = None;
        } else if let Some(name) = &current {
            if !t.starts_with("type ") && !t.starts_with("elements") && t != "}" {
                let element = t.split(" comment ").next().unwrap().trim_end_matches(',');
                sets.get_mut(name).unwrap().push(element.to_string());
            }
        }
    }
    sets
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_nftables_sets_at_scale() {
    let what = "kernel test nftables sets at scale";
    let Some(tools) = ready(what, &["ip", "nft"]) else {
        return;
    };
    let (ip, nft) = (&tools[0], &tools[1]);
    let _serial = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    clean_leftovers(ip);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sites.toml");
    let text = sites(2_000);
    std::fs::write(&file, &text).unwrap();
    let rules = cli(&[file.to_str().unwrap(), "--target", "nftables", "--network"]);
    let rules_file = dir.path().join("rules.nft");
    std::fs::write(&rules_file, &rules).unwrap();

    // One rule per source group and transport, not per node: flows inside one datacenter cross
    // no firewall, so each datacenter is reached by the servers of the other ones (a source group
    // per datacenter), besides the admins and the clients.
    let accepts: Vec<&str> = rules
        .lines()
        .filter(|l| l.starts_with("\t\t") && l.contains(" accept comment "))
        .collect();
    let datacenters = 2_000 / 50;
    assert!(
        !accepts.is_empty() && accepts.len() <= 2 * (datacenters + 2),
        "{} rules:\n{}",
        accepts.len(),
        accepts.join("\n")
    );
    let sets = set_elements(&rules);

    let ns = format!("{NS_PREFIX}{}-sets", std::process::id());
    if !skip_unless(
        what,
        run(ip, &["netns", "add", &ns])
            .err()
            .map(|e| format!("cannot create a namespace: {e}")),
    ) {
        return;
    }
    struct Gone<'a>(&'a Path, String);
    impl Drop for Gone<'_> {
        fn drop(&mut self) {
            let _ = run(self.0, &["netns", "del", &self.1]);
        }
    }
    let _gone = Gone(ip, ns.clone());
    let nft_in = |args: &[&str]| {
        let mut all = vec!["netns", "exec", &ns, nft.to_str().unwrap()];
        all.extend_from_slice(args);
        run(ip, &all)
    };
    let started = Instant::now();
    nft_in(&["-f", rules_file.to_str().unwrap()]).unwrap_or_else(|e| panic!("load: {e}"));
    let load = started.elapsed();
    eprintln!(
        "{what}: {} rules, {} set elements, loaded in {load:?}",
        accepts.len(),
        sets.values().map(Vec::len).sum::<usize>()
    );
    assert!(load < Duration::from_secs(5), "nft -f took {load:?}");

    // The kernel's sets: every planned (destination, port) of a sample of flows is an element of
    // the set its source group's rule names, and a port next to it that no flow plans is not.
    let catalog = Catalog::embedded();
    let dep = scc_ports::deployment::parse(&Source::new("sites.toml", text), &catalog).unwrap();
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    let all = scc_ports::flows::flows(&dep, &catalog, &plan);
    let flows = scc_ports::firewall::select(&dep, &all, &Mode::Network);
    let planned: BTreeSet<(String, Transport, u16)> = flows
        .iter()
        .flat_map(|f| {
            f.destination.iter().flat_map(move |d| {
                f.ports
                    .ports()
                    .map(move |p| (scc_ports::flows::net_text(d), f.transport, p))
            })
        })
        .collect();
    let mut checked = 0;
    for f in flows.iter().step_by(flows.len() / 40 + 1) {
        let proto = f.transport.as_str();
        // The rule of this flow's sources: single network inline, or a set of exactly them.
        let sources: Vec<String> = f.sources.iter().map(scc_ports::flows::net_text).collect();
        let rule = accepts
            .iter()
            .find(|r| {
                let saddr = r
                    .split("ip saddr ")
                    .nth(1)
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap();
                r.contains(&format!(". {proto} dport @"))
                    && match saddr.strip_prefix('@') {
                        Some(set) => sets[set] == sources,
                        None => sources == [saddr],
                    }
            })
            .unwrap_or_else(|| panic!("no rule for {} from {sources:?}", f.label()));
        let set = rule
            .split(" dport @")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap();
        let dest = scc_ports::flows::net_text(&f.destination[0]);
        let port = f.ports.lo();
        let element = format!("{{ {dest} . {port} }}");
        nft_in(&["get", "element", "inet", "scc_ports", set, &element])
            .unwrap_or_else(|e| panic!("{} not in {set}: {e}", f.label()));
        let unplanned = (1..=20)
            .map(|d| port.wrapping_add(d))
            .find(|p| *p != 0 && !planned.contains(&(dest.clone(), f.transport, *p)))
            .unwrap();
        let element = format!("{{ {dest} . {unplanned} }}");
        assert!(
            nft_in(&["get", "element", "inet", "scc_ports", set, &element]).is_err(),
            "{dest} . {unplanned} is in {set} but no flow plans it"
        );
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} flows checked");
}
