//! The report's fix snippets run on their own: for a flow the probe found filtered, the report's
//! nftables and iptables fixes are shell commands; applied in a namespace to our own generated
//! policy without that flow's rule, a real packet that was dropped passes, and a port next to it
//! stays shut. Needs root, iproute2, nftables and iptables (tests/common/netns.rs).

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::burst::{self, Outcome, Shot};
use common::cli;
use common::netns::{self, Netns};
use scc_ports::catalog::Transport;

const SYSTEM: &str = r#"name = "fix"

[zones.dc]
cidrs = ["10.77.0.0/24"]
roles = ["servers"]

[zones.agents]
cidrs = ["10.78.0.0/24"]
roles = ["clients"]

[nodes.APP1]
address = "10.77.0.11"
zone = "dc"

[units.CORE]
address = "10.77.0.100"
packages = ["connection-server", "web-server"]
instances = ["APP1"]
"#;

const NODE: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 11);
const UNIT: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 100);
const PC: Ipv4Addr = Ipv4Addr::new(10, 78, 0, 5);
/// The flow the probe found filtered: Connection Server's client port on the unit.
const PORT: u16 = 21002;
const LABEL: &str = "connection-server.client-port";

/// The agents' probe result: the client port filtered, nothing else tested.
fn probe_file() -> String {
    serde_json::json!({
        "format_version": 1,
        "zone": "agents",
        "sources": [PC.to_string()],
        "summary": {"verified": 0, "open": 0, "closed": 0, "filtered": 1, "error": 0},
        "results": [{
            "address": UNIT.to_string(),
            "transport": "tcp",
            "port": PORT,
            "component": "connection-server",
            "port_id": "client-port",
            "status": "filtered",
            "rtt_ms": null,
            "detail": "no answer within 500 ms"
        }],
        "unexpected": [],
        "swept": false,
        "secrets_probably_differ": false,
        "hint": null,
        "elapsed_ms": 500.0
    })
    .to_string()
}

/// The report's fix for the host firewall of APP1, for `target`.
fn fix(dir: &std::path::Path, target: &str) -> String {
    let system = dir.join("fix.toml");
    let probe = dir.join("agents.json");
    std::fs::write(&system, SYSTEM).unwrap();
    std::fs::write(&probe, probe_file()).unwrap();
    let (code, out, err) = cli(&[
        "report",
        system.to_str().unwrap(),
        probe.to_str().unwrap(),
        "--format",
        "json",
        "--target",
        target,
    ]);
    assert_eq!(code, 1, "a failed flow: exit 1\n{err}\n{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let failures = report["failures"].as_array().expect("failures");
    let failure = failures
        .iter()
        .find(|f| f["port_id"] == "client-port" && f["status"] == "filtered")
        .unwrap_or_else(|| panic!("no failure for the client port: {out}"));
    let hop = (failure["hops"].as_array().unwrap().iter())
        .find(|h| h["firewall"] == "host firewall of node APP1")
        .unwrap_or_else(|| panic!("no hop for APP1: {failure}"));
    hop["rule"].as_str().unwrap().to_string()
}

/// Our policy for APP1 without the flow's rule (nftables: its set element; iptables: its rule).
fn policy_without_the_flow(target: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("fix.toml");
    std::fs::write(&system, SYSTEM).unwrap();
    let (code, text, err) = cli(&[
        "firewall",
        system.to_str().unwrap(),
        "--target",
        target,
        "--node",
        "APP1",
    ]);
    assert_eq!(code, 0, "{err}");
    let named = |l: &&str| l.contains(LABEL) && !l.trim_start().starts_with('#');
    assert_eq!(
        text.lines().filter(named).count(),
        1,
        "one {target} line admits the flow:\n{text}"
    );
    text.lines()
        .filter(|l| !named(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// A client (agents) and APP1 (its own address and CORE's) linked; TCP responders on the
/// flow's port and the one after it on APP1.
struct Lab {
    server: Netns,
    client: Netns,
}

fn lab() -> Lab {
    let server = Netns::new().expect("namespace");
    let client = Netns::new().expect("namespace");
    let (vs, vc) =
        netns::link_named(&server, &format!("{NODE}/24"), &client, &format!("{PC}/24")).unwrap();
    server
        .ip(&["addr", "add", &format!("{UNIT}/32"), "dev", &vs])
        .unwrap();
    server
        .ip(&["route", "add", "10.78.0.0/24", "dev", &vs])
        .unwrap();
    client
        .ip(&["route", "add", "10.77.0.0/24", "dev", &vc])
        .unwrap();
    Lab { server, client }
}

/// Whether the flow's port and the port after it are reached from the PC.
fn reach(lab: &Lab) -> (Outcome, Outcome) {
    let stop = Arc::new(AtomicBool::new(false));
    let ports: std::collections::BTreeSet<u16> = [PORT, PORT + 1].into();
    let s = stop.clone();
    let responder = lab.server.spawn(move || {
        let (l, u) = burst::bind(&ports, &Default::default())?;
        burst::serve(&l, &u, &s);
        Ok::<(), std::io::Error>(())
    });
    std::thread::sleep(Duration::from_millis(100));
    let shots: Vec<Shot> = [PORT, PORT + 1]
        .iter()
        .map(|&port| Shot {
            src: None,
            dst: UNIT,
            transport: Transport::Tcp,
            port,
        })
        .collect();
    let got = lab
        .client
        .run(move || {
            burst::fire(
                &shots,
                Duration::from_millis(800),
                Duration::from_millis(200),
            )
        })
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    responder.join().unwrap().unwrap().unwrap();
    (got[0], got[1])
}

/// Loads the policy, shows the flow dropped, runs the fix as a shell script, shows it passes.
fn the_fix_opens_the_flow(target: &str, load: impl Fn(&Netns, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let snippet = fix(dir.path(), target);
    let lab = lab();
    load(&lab.server, &policy_without_the_flow(target));
    let (before, next) = reach(&lab);
    assert_ne!(
        before,
        Outcome::Reached,
        "{target}: the flow passed without its rule"
    );
    assert_ne!(next, Outcome::Reached, "{target}: port {} passed", PORT + 1);
    // Run as the report prints it: a shell script of its own.
    lab.server.exec(&["sh", "-eu"], Some(&snippet));
    let (after, next) = reach(&lab);
    assert_eq!(
        after,
        Outcome::Reached,
        "{target}: the fix did not open the flow:\n{snippet}"
    );
    assert_ne!(
        next,
        Outcome::Reached,
        "{target}: the fix opened port {} too:\n{snippet}",
        PORT + 1
    );
    eprintln!(
        "{target} fix: {before:?} → {after:?}, port {} {next:?}:\n{snippet}",
        PORT + 1
    );
}

#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn the_nftables_fix_runs_on_its_own_and_opens_the_flow() {
    if !netns::available("report fix (nftables)") {
        return;
    }
    the_fix_opens_the_flow("nftables", |ns, text| {
        ns.nft(text).expect("our policy loads");
    });
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn the_iptables_fix_runs_on_its_own_and_opens_the_flow() {
    if !netns::available("report fix (iptables)") {
        return;
    }
    the_fix_opens_the_flow("iptables", |ns, text| {
        ns.exec(&["iptables-restore"], Some(text));
    });
}
