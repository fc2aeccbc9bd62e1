//! `listen` and `probe` through the binary, on loopback addresses of their own (127.0.41.x).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Test;

fn deployment(node: &str, unit: &str) -> String {
    format!(
        r#"name = "loopback"
[zones.lo]
cidrs = ["127.0.0.0/8"]
roles = ["servers", "clients", "admins", "trunk"]
[nodes.LO]
address = "{node}"
zone = "lo"
[units.CORE]
address = "{unit}"
packages = ["agent-server", "sip-bridge", "media-routing-server"]
instances = ["LO"]
[units.CORE.variables]
"media-routing-server.max-simultaneous-prompts" = 10
"media-routing-server.max-simultaneous-recordings" = 5
"#
    )
}

/// A running `scc-ports listen`, killed when dropped.
struct Listener {
    child: Child,
    before_ready: Vec<String>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listen(dir: &std::path::Path, args: &[&str]) -> Listener {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args(["listen", "lo.toml", "--node", "LO", "--duration", "20s"])
        .args(args)
        .current_dir(dir)
        .env_remove("SCC_PORTS_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start listener");
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut before_ready = vec![];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("listener prints `ready:` within 10 s");
        if line.starts_with("ready:") {
            break;
        }
        before_ready.push(line);
    }
    Listener {
        child,
        before_ready,
    }
}

#[test]
fn listen_then_probe_verifies_every_planned_port() {
    let t = Test::new()
        .file("lo.toml", deployment("127.0.41.1", "127.0.41.100"))
        .file("secret", "s3cret\n");
    let dir = t.path();
    let _l = listen(&dir, &["--secret-file", "secret"]);
    let out = t
        .args([
            "probe",
            "lo.toml",
            "--from",
            "lo",
            "--secret-file",
            "secret",
            "--format",
            "json",
        ])
        .run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    // TCP: HAC 2, agent 1, SIP 4, MRS 1; UDP: SIP 1, prompt area 21, recording area 31.
    assert_eq!(v["summary"]["verified"], 61, "{}", out.stdout);
    assert_eq!(v["results"].as_array().unwrap().len(), 61);
    let r = &v["results"][0];
    for key in [
        "address",
        "transport",
        "port",
        "component",
        "port_id",
        "status",
        "rtt_ms",
    ] {
        assert!(r.get(key).is_some(), "result has {key}: {r}");
    }
}

#[test]
fn a_wrong_secret_never_verifies() {
    let t = Test::new()
        .file("lo.toml", deployment("127.0.41.2", "127.0.41.102"))
        .file("secret", "s3cret\n")
        .file("other", "not-the-secret\n");
    let dir = t.path();
    let _l = listen(&dir, &["--secret-file", "secret"]);
    let out = t
        .args([
            "probe",
            "lo.toml",
            "--from",
            "lo",
            "--secret-file",
            "other",
            "--timeout",
            "300ms",
            "--format",
            "json",
        ])
        .status(1)
        .run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["summary"]["verified"], 0, "{}", out.stdout);
    // TCP connects (something answers, not with our token); UDP stays silent.
    assert_eq!(v["summary"]["open"], 8, "{}", out.stdout);
    assert_eq!(v["summary"]["filtered"], 53, "{}", out.stdout);
}

#[test]
fn nothing_listening_is_closed_and_exit_1() {
    let out = Test::new()
        .file("lo.toml", deployment("127.0.41.3", "127.0.41.103"))
        .file("secret", "s3cret\n")
        .args([
            "probe",
            "lo.toml",
            "--from",
            "lo",
            "--node",
            "LO",
            "--secret-file",
            "secret",
            "--format",
            "junit",
        ])
        .status(1)
        .stdout_has("<testsuites name=\"scc-ports probe\" tests=\"61\"")
        .run();
    assert!(out.stdout.contains("closed"), "{}", out.stdout);
}

#[test]
fn a_generated_secret_is_printed_and_a_held_port_is_reported() {
    // Hold agent-server's port before the listener starts.
    let held = std::net::TcpListener::bind("127.0.41.104:21018").expect("bind the port first");
    let t = Test::new().file("lo.toml", deployment("127.0.41.4", "127.0.41.104"));
    let dir = t.path();
    let l = listen(&dir, &[]);
    let secret_line = l
        .before_ready
        .iter()
        .find(|l| l.starts_with("secret: "))
        .expect("a generated secret is printed");
    let secret = secret_line["secret: ".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let failure = l
        .before_ready
        .iter()
        .find(|l| l.starts_with("cannot bind"))
        .expect("the held port is reported");
    assert!(
        failure.contains("127.0.41.104 tcp 21018 (agent-server.port): address in use"),
        "{failure}"
    );
    assert!(
        failure.contains(&format!("pid {}", std::process::id())),
        "names the holder: {failure}"
    );
    std::fs::write(dir.join("secret"), &secret).unwrap();
    let out = t
        .args([
            "probe",
            "lo.toml",
            "--from",
            "lo",
            "--secret-file",
            "secret",
        ])
        .status(1)
        .run();
    assert!(
        out.stdout
            .contains("127.0.41.104  tcp    21018           open"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("127.0.41.104 tcp 21018 open: connected, but no reply to the token"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("60 verified, 1 open, 0 closed, 0 filtered, 0 error"),
        "{}",
        out.stdout
    );
    drop(held);
}

#[test]
fn probe_needs_a_secret_and_a_known_zone() {
    Test::new()
        .file("lo.toml", deployment("127.0.41.5", "127.0.41.105"))
        .args(["probe", "lo.toml", "--from", "lo"])
        .status(2)
        .stderr_has(
            "no secret: give the listener's secret with --secret-file FILE or SCC_PORTS_SECRET",
        )
        .run();
    Test::new()
        .file("lo.toml", deployment("127.0.41.5", "127.0.41.105"))
        .args(["probe", "lo.toml", "--from", "low", "--secret-file", "x"])
        .status(2)
        .stderr_has("unknown zone `low`")
        .run();
    Test::new()
        .args(["listen", "--node", "NOPE", "--duration", "1s"])
        .status(2)
        .stderr_has("unknown node `NOPE`")
        .run();
}
