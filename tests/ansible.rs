//! ansible/verify.yml with local hosts on loopback: two nodes and two probers on one machine
//! (tests/ansible/system.toml, addresses 127.0.74-75.x), one planned port held by a stranger
//! process. The report must name exactly that failure and its fix, the playbook must exit
//! non-zero, and no listener may be left running.
//!
//! Needs `ansible-playbook` (ansible-core): without it the test explains and passes, unless
//! SCC_PORTS_REQUIRE_ROOT_TESTS=1 (CI), then it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn required() -> bool {
    std::env::var("SCC_PORTS_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A local inventory: every host runs on this machine, each in its own work directory.
fn inventory(work: &Path) -> String {
    let host = |name: &str, var: &str, value: &str| {
        format!(
            "        {name}:\n          ansible_connection: local\n          ansible_python_interpreter: auto_silent\n          {var}: {value}\n          scc_remote_dir: {}\n",
            work.join(format!("work-{name}")).display()
        )
    };
    format!(
        "all:\n  children:\n    scc_nodes:\n      hosts:\n{}{}    scc_probers:\n      hosts:\n{}{}",
        host("APP1", "scc_node", "APP1"),
        host("APP2", "scc_node", "APP2"),
        host("prober-dc", "scc_zone", "dc"),
        host("prober-agents", "scc_zone", "agents"),
    )
}

#[test]
fn local_playbook_names_the_held_port_and_leaves_nothing_running() {
    if !have("ansible-playbook") {
        assert!(
            !required(),
            "ansible-playbook is missing, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires this test"
        );
        eprintln!("skipped: ansible-playbook is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    std::fs::write(work.join("inventory.yml"), inventory(work)).unwrap();
    std::fs::write(work.join("secret"), "ansible-test-secret-0123456789abcdef\n").unwrap();
    let results = work.join("results");
    // The stranger: holds APP2's HAC port before the listeners start.
    let stranger = std::net::TcpListener::bind("127.0.74.12:21012").expect("bind the stranger");
    let started = Instant::now();
    let out = Command::new("ansible-playbook")
        .arg("-i")
        .arg(work.join("inventory.yml"))
        .arg(root().join("ansible/verify.yml"))
        .arg("-e")
        .arg(format!(
            "scc_deployment={}",
            root().join("tests/ansible/system.toml").display()
        ))
        .arg("-e")
        .arg(format!("scc_secret_file={}", work.join("secret").display()))
        .arg("-e")
        .arg(format!("scc_results={}", results.display()))
        .arg("-e")
        .arg(format!("scc_binary={}", env!("CARGO_BIN_EXE_scc-ports")))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_HOME", work.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", work.join("ansible-tmp"))
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .output()
        .expect("run ansible-playbook");
    let elapsed = started.elapsed();
    let log = String::from_utf8_lossy(&out.stdout);
    eprintln!("playbook run: {:.1} s", elapsed.as_secs_f64());
    drop(stranger);
    assert_ne!(out.status.code(), Some(0), "the playbook must fail:\n{log}");
    assert!(
        log.contains("FAILED: 1 of 5 planned ports not verified (1 open)"),
        "{log}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["summary"]["planned"], 5, "{report:#}");
    assert_eq!(report["summary"]["verified"], 4, "{report:#}");
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report:#}");
    let f = &failures[0];
    assert_eq!(
        (
            f["zone"].as_str(),
            f["node"].as_str(),
            f["address"].as_str(),
            f["ports"].as_str(),
            f["status"].as_str()
        ),
        (
            Some("dc"),
            Some("APP2"),
            Some("127.0.74.12"),
            Some("21012"),
            Some("open")
        )
    );
    assert!(f["cause"].as_str().unwrap().contains("another process holds the port"));
    assert!(f["action"].as_str().unwrap().contains("ss -ltnup 'sport = :21012'"));

    let junit = std::fs::read_to_string(results.join("report.xml")).unwrap();
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
    assert!(junit.contains("127.0.74.12 tcp/21012 server-port (APP2)"));
    let html = std::fs::read_to_string(results.join("report.html")).unwrap();
    assert!(html.contains("hac.server-port tcp 21012 to 127.0.74.12 on APP2"));
    for zone in ["dc-prober-dc.json", "agents-prober-agents.json"] {
        assert!(results.join(zone).is_file(), "{zone} fetched");
    }

    // Nothing left behind: no listener of ours, no work directory (the secret with it).
    let ours = Command::new("pgrep")
        .args(["-f", &work.display().to_string()])
        .output()
        .unwrap();
    assert!(
        ours.stdout.is_empty(),
        "listeners left running: {}",
        String::from_utf8_lossy(&ours.stdout)
    );
    let ss = Command::new("ss").args(["-Htlnu"]).output().unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(
        !ss.contains("127.0.74.") && !ss.contains("127.0.75."),
        "sockets left: {ss}"
    );
    for host in ["APP1", "APP2", "prober-dc", "prober-agents"] {
        assert!(!work.join(format!("work-{host}")).exists(), "{host} cleaned");
    }
    // The listeners' summaries: stopped by SIGINT, not killed.
    let log2 = std::fs::read_to_string(results.join("listen-APP2.log")).unwrap();
    assert!(log2.contains("cannot bind 127.0.74.12 tcp 21012 (hac.server-port)"));
    assert!(log2.contains("answered "), "{log2}");
}
