//! Site services (`[services.NAME]`) through every firewall target, their input errors, and a
//! kernel test: a node policy with RDP from the admins and SQL Server to the database node,
//! loaded with nftables and with iptables in a namespace, probed with real packets.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::netns::{self, Netns};
use common::required;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_scc-ports")
}

fn example(name: &str) -> String {
    format!("{}/examples/{name}.toml", env!("CARGO_MANIFEST_DIR"))
}

fn cli(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run scc-ports")
}

fn stdout_of(args: &[&str]) -> String {
    let out = cli(args);
    assert!(
        out.status.success(),
        "scc-ports {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `check`-style run of a deployment text: (exit code, stdout, stderr).
fn run_text(text: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("site.toml");
    std::fs::write(&path, text).expect("write");
    let mut all = vec![args[0], path.to_str().expect("UTF-8 path")];
    all.extend_from_slice(&args[1..]);
    let out = cli(&all);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const TARGETS: [&str; 6] = ["nftables", "iptables", "firewalld", "windows", "aws", "csv"];

#[test]
fn every_target_names_each_service_where_it_listens() {
    let file = example("services");
    // (node, the services that listen there)
    let expect: [(&str, &[&str]); 4] = [
        ("APP1", &["service.rdp", "service.winrm"]),
        ("APP2", &["service.rdp", "service.winrm"]),
        ("DB1", &["service.rdp", "service.sql-server"]),
        ("MAIL1", &["service.rdp", "service.imap"]),
    ];
    let all = ["rdp", "winrm", "sql-server", "imap"];
    for target in TARGETS {
        for (node, here) in expect {
            let text = stdout_of(&["firewall", &file, "--target", target, "--node", node]);
            for s in all {
                // csv has a component and a port id column: `service,rdp`.
                let named = if target == "csv" {
                    text.contains(&format!(",service,{s},"))
                } else {
                    text.contains(&format!("service.{s}"))
                };
                let wanted = here.contains(&format!("service.{s}").as_str());
                assert_eq!(
                    named, wanted,
                    "{target} --node {node}: service.{s} expected {wanted}\n{text}"
                );
            }
        }
        if target == "windows" {
            continue; // Windows Firewall filters its own host only: no --network rules
        }
        let network = stdout_of(&["firewall", &file, "--target", target, "--network"]);
        for s in all {
            let named = network.contains(&format!("service.{s}"))
                || network.contains(&format!(",service,{s},"));
            // Every --network target holds only what crosses a zone boundary (they all ask
            // flows::Crossings): SQL Server runs from the datacenter to DB1 in the datacenter.
            let wanted = s != "sql-server";
            assert_eq!(
                named, wanted,
                "{target} --network: service.{s} expected {wanted}\n{network}"
            );
        }
    }
}

#[test]
fn services_reach_plan_flows_and_probe_targets() {
    let file = example("services");
    let plan = stdout_of(&["plan", &file, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&plan).expect("plan JSON");
    let rows = v["bindings"].as_array().expect("bindings");
    let rdp: Vec<&serde_json::Value> = rows.iter().filter(|b| b["port_id"] == "rdp").collect();
    // Every node, mock nodes included, on its own address.
    assert_eq!(rdp.len(), 4, "{plan}");
    assert!(
        rdp.iter()
            .all(|b| b["origin"]["kind"] == "service" && b["first_port"] == 3389)
    );
    let sql: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|b| b["port_id"] == "sql-server")
        .collect();
    assert_eq!(sql.len(), 1);
    assert_eq!(sql[0]["node"], "DB1");
    assert_eq!(sql[0]["address"], "10.1.0.21");
    // A unit target binds the unit's virtual IP on each instance node.
    let winrm: Vec<&serde_json::Value> = rows.iter().filter(|b| b["port_id"] == "winrm").collect();
    assert_eq!(winrm.len(), 2);
    assert!(
        winrm
            .iter()
            .all(|b| b["address"] == "10.1.0.100" && b["unit"] == "CORE")
    );
    assert_eq!(
        (
            winrm[0]["first_port"].clone(),
            winrm[0]["last_port"].clone()
        ),
        (5985.into(), 5986.into())
    );
    // A zone named in `from`.
    let imap = rows.iter().find(|b| b["port_id"] == "imap").expect("imap");
    assert_eq!(imap["from_zones"], serde_json::json!(["datacenter"]));

    let flows = stdout_of(&["flows", &file, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&flows).expect("flows JSON");
    let f = v["flows"].as_array().expect("flows");
    let imap = f
        .iter()
        .find(|f| f["port_ids"] == serde_json::json!(["imap"]))
        .expect("imap flow");
    assert_eq!(imap["role"], "zones");
    let key = imap["source"].as_str().expect("source key");
    assert_eq!(
        v["sources"][key]["cidrs"],
        serde_json::json!(["10.1.0.0/24"])
    );
    // `flows --from ZONE` sees a service from that zone by name.
    let from = stdout_of(&["flows", &file, "--from", "datacenter", "--format", "csv"]);
    assert!(from.contains("imap"), "{from}");
    let from = stdout_of(&["flows", &file, "--from", "agents", "--format", "csv"]);
    assert!(!from.contains("imap") && !from.contains("rdp"), "{from}");
}

#[test]
fn service_errors_are_located_with_the_nearest_name() {
    let base = std::fs::read_to_string(example("services")).expect("example");
    let cases: [(&str, &str, &str); 8] = [
        (
            "from = [\"admins\"]\nto = [\"all-nodes\"]",
            "from = [\"admin\"]\nto = [\"all-nodes\"]",
            "`admin` is neither a role nor a zone",
        ),
        (
            "to = [\"DB1\"]",
            "to = [\"DB2\"]",
            "`DB2` is neither a node nor a unit",
        ),
        ("to = [\"CORE\"]", "to = [\"COR\"]", "did you mean `CORE`?"),
        (
            "ports = \"3389\"",
            "ports = \"3389-80\"",
            "the range 3389-80 runs backwards",
        ),
        (
            "ports = \"1433\"",
            "ports = \"70000\"",
            "port 70000 is out of range",
        ),
        (
            "ports = \"143\"",
            "ports = \"imap\"",
            "`imap` is not a port number",
        ),
        (
            "transport = \"tcp\"\nports = \"3389\"",
            "transport = \"TCP\"\nports = \"3389\"",
            "write it in lower case: \"tcp\"",
        ),
        (
            "note = \"Remote Desktop for the administrators\"",
            "note = \"x\"\nport = 1",
            "unknown key `port` in [services.rdp]",
        ),
    ];
    for (from, to, want) in cases {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let (code, _, err) = run_text(&text, &["check"]);
        assert_eq!(code, 2, "{to}: {err}");
        assert!(err.contains(want), "{to}: wanted {want:?} in\n{err}");
        assert!(err.contains("site.toml:"), "{to}: not located\n{err}");
    }
    // A zone and the admin role's zone spelled close: the nearest of roles and zones.
    let text = base.replacen("from = [\"datacenter\"]", "from = [\"datacentre\"]", 1);
    let (_, _, err) = run_text(&text, &["check"]);
    assert!(err.contains("did you mean `datacenter`?"), "{err}");
}

#[test]
fn new_checks_fire() {
    let base = std::fs::read_to_string(example("services")).expect("example");
    // C113: RDP moved onto HAC's server port on every node; SQL Server onto CEM's port on the
    // core unit's address.
    let clash = base
        .replacen("ports = \"3389\"", "ports = \"21010-21013\"", 1)
        .replacen("ports = \"5985-5986\"", "ports = \"21019\"", 1);
    let (code, out, _) = run_text(&clash, &["check"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error[C113] service-clash: service rdp and hac.server-port both listen on 10.1.0.11 tcp port 21012"), "{out}");
    assert!(out.contains("error[C113] service-clash: service winrm and cem-server.port both listen on 10.1.0.100 tcp port 21019"), "{out}");
    // Across addresses of one node: a warning.
    let across = base.replacen("ports = \"3389\"", "ports = \"21018\"", 1);
    let (_, out, _) = run_text(&across, &["check"]);
    assert!(out.contains("warning[C113] service-clash: node APP1: service rdp on 10.1.0.11 and agent-server.port on 10.1.0.100 share tcp port 21018"), "{out}");
    // C112: the admins' network inside the datacenter's.
    let overlap = base.replacen(
        "cidrs = [\"10.30.0.0/24\"]",
        "cidrs = [\"10.1.0.128/25\"]",
        1,
    );
    let (_, out, _) = run_text(&overlap, &["check"]);
    assert!(out.contains("warning[C112] overlapping-zones: zones datacenter and admins overlap: 10.1.0.128/25 lies inside 10.1.0.0/24"), "{out}");
    // C111: agent-server in a second unit on the same nodes.
    let twice = format!(
        "{base}\n[units.AGENT2]\naddress = \"10.1.0.102\"\npackages = [\"agent-server\"]\ninstances = [\"APP2\"]\n[units.AGENT2.variables]\n\"agent-server.port\" = 21118\n"
    );
    let (_, out, _) = run_text(&twice, &["check"]);
    assert!(out.contains("warning[C111] package-twice-on-node: agent-server is in units CORE and AGENT2 that both have an instance on APP2"), "{out}");
    // None of them on the clean example.
    let (code, out, _) = run_text(&base, &["check"]);
    assert_eq!(code, 0, "{out}");
    for c in ["C111", "C112", "C113"] {
        assert!(!out.contains(c), "{c} on the clean example:\n{out}");
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel: the node policy of DB1 loaded in a namespace, real connections from three zones.

/// A database server DB1 with RDP from the admins and SQL Server from the datacenter's servers.
const KERNEL_SITE: &str = r#"
name = "kernel"
[zones.datacenter]
cidrs = ["10.1.0.0/24"]
roles = ["servers"]
[zones.agents]
cidrs = ["10.20.0.0/16"]
roles = ["clients"]
[zones.admins]
cidrs = ["10.30.0.0/24"]
roles = ["admins"]
[nodes.APP1]
address = "10.1.0.11"
zone = "datacenter"
[nodes.DB1]
address = "10.1.0.21"
zone = "datacenter"
hac = false
[services.rdp]
transport = "tcp"
ports = "3389"
from = ["admins"]
to = ["all-nodes"]
[services.sql-server]
transport = "tcp"
ports = "1433"
from = ["servers"]
to = ["DB1"]
"#;

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Whether the kernel test can run; prints why not, or panics when root tests are required.
fn kernel_ready(test: &str, tool: &str) -> bool {
    if !netns::available(test) {
        return false;
    }
    if which(tool).is_none() {
        if required() {
            panic!("{test}: `{tool}` not found, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires it");
        }
        eprintln!("skipping {test}: `{tool}` not found");
        return false;
    }
    true
}

fn load_iptables(ns: &Netns, rules: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), "iptables-restore"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("iptables-restore");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(rules.as_bytes())
        .expect("write rules");
    let out = child.wait_with_output().expect("iptables-restore");
    assert!(
        out.status.success(),
        "iptables-restore: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether a TCP connection from inside `ns` to `to` is accepted (a dropped SYN times out).
fn connects(ns: &Netns, to: SocketAddr) -> bool {
    ns.run(move || TcpStream::connect_timeout(&to, Duration::from_millis(400)).is_ok())
}

fn kernel_db_node(target: &str, tool: &str) {
    let test = format!("kernel test of services with {target}");
    if !kernel_ready(&test, tool) {
        return;
    }
    let (code, rules, err) = run_text(
        KERNEL_SITE,
        &["firewall", "--target", target, "--node", "DB1"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        rules.contains("service.rdp") && rules.contains("service.sql-server"),
        "{rules}"
    );

    let server = Netns::new().expect("namespace");
    let admin = Netns::new().expect("namespace");
    let agent = Netns::new().expect("namespace");
    let app = Netns::new().expect("namespace");
    server
        .ip(&["addr", "add", "10.1.0.21/32", "dev", "lo"])
        .expect("DB1 address");
    netns::link(&admin, "10.30.0.5/24", &server, "10.30.0.1/24").expect("admins link");
    netns::link(&agent, "10.20.0.5/16", &server, "10.20.0.1/16").expect("agents link");
    netns::link(&app, "10.1.0.11/24", &server, "10.1.0.1/24").expect("datacenter link");
    admin
        .ip(&["route", "add", "10.1.0.21/32", "via", "10.30.0.1"])
        .expect("route");
    agent
        .ip(&["route", "add", "10.1.0.21/32", "via", "10.20.0.1"])
        .expect("route");

    // Listeners on DB1 for the two services and one port nobody planned.
    let ports = [3389u16, 1433, 8080];
    let listeners = server.run(move || {
        ports
            .iter()
            .map(|p| TcpListener::bind(("0.0.0.0", *p)).expect("bind"))
            .collect::<Vec<_>>()
    });
    let db = |p: u16| SocketAddr::from(([10, 1, 0, 21], p));
    // Before the policy, everything connects: the lab itself works.
    for ns in [&admin, &agent, &app] {
        for p in ports {
            assert!(
                connects(ns, db(p)),
                "{target}: no connection to {p} before the policy"
            );
        }
    }
    match target {
        "nftables" => server.nft(&rules).expect("nft -f"),
        _ => load_iptables(&server, &rules),
    }
    let expect = [
        ("admins", &admin, 3389, true),
        ("admins", &admin, 1433, false),
        ("admins", &admin, 8080, false),
        ("agents", &agent, 3389, false),
        ("agents", &agent, 1433, false),
        ("datacenter", &app, 1433, true),
        ("datacenter", &app, 3389, false),
        ("datacenter", &app, 8080, false),
    ];
    for (zone, ns, port, pass) in expect {
        assert_eq!(
            connects(ns, db(port)),
            pass,
            "{target}: from {zone} to DB1:{port} should {}",
            if pass { "pass" } else { "be dropped" }
        );
    }
    drop(listeners);
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_services_nftables() {
    kernel_db_node("nftables", "nft");
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables)),
    ignore = "needs root, iproute2, nftables and iptables (network namespaces)"
)]
#[test]
fn kernel_services_iptables() {
    kernel_db_node("iptables", "iptables-restore");
}
