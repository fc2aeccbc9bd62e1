//! `listen` and `probe` through the binary, on loopback addresses of their own (127.0.41.x, and
//! 127.0.52-53.x for the messages and exit codes of issues #8 and #12).

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
    /// Its stdout lines after `ready:`.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Listener {
    /// The first line after `ready:` that contains `text`, waiting at most 10 s.
    fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains(text) => return l,
                Ok(_) => {}
                Err(e) => panic!("no line with {text:?} from the listener: {e}"),
            }
        }
    }
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
        lines: rx,
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
    assert_eq!(v["secrets_probably_differ"], true, "{}", out.stdout);
    assert!(
        v["hint"]
            .as_str()
            .unwrap()
            .contains("secrets probably differ")
    );
    // The listener says so while it runs, naming the source.
    let line = _l.wait_for("wrong secret?");
    assert!(
        line.starts_with("auth: a probe from 127.0.0.1 to "),
        "{line}"
    );
    // And the table says it too.
    let out = Test::new()
        .file("lo.toml", deployment("127.0.41.2", "127.0.41.102"))
        .file("other", "not-the-secret\n")
        .args([
            "probe",
            "lo.toml",
            "--from",
            "lo",
            "--secret-file",
            "other",
            "--timeout",
            "300ms",
        ])
        .status(1)
        .run();
    assert!(
        out.stdout.contains("accepted, then closed without a reply")
            && out.stdout.contains(
                "every TCP port accepted the connection but none answered with our token: \
                 the prober's and the listener's secrets probably differ"
            ),
        "{}",
        out.stdout
    );
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

/// A deployment whose node is on loopback, with a second client zone elsewhere (`admins`).
fn two_zones(node: &str, unit: &str) -> String {
    format!(
        r#"name = "zones"
[zones.lo]
cidrs = ["127.0.0.0/8"]
roles = ["servers", "clients", "trunk"]
[zones.admins]
cidrs = ["10.98.0.0/16"]
roles = ["admins"]
[nodes.LO]
address = "{node}"
zone = "lo"
[units.CORE]
address = "{unit}"
packages = ["agent-server", "sip-bridge"]
instances = ["LO"]
"#
    )
}

#[test]
fn probe_refuses_a_zone_this_host_is_not_in() {
    let t = || {
        Test::new()
            .file("z.toml", two_zones("127.0.52.1", "127.0.52.100"))
            .file("secret", "a secret of sixteen bytes or more\n")
    };
    t().args(["probe", "z.toml", "--from", "admins", "--secret-file", "secret"])
        .status(2)
        .stderr_has("error[E041]: this host is not in zone `admins` (10.98.0.0/16): it reaches the targets from 127.0.0.1")
        .stderr_has("--source ADDR")
        .run();
    t().args([
        "probe",
        "z.toml",
        "--from",
        "admins",
        "--source",
        "192.0.2.7",
        "--secret-file",
        "secret",
    ])
    .status(2)
    .stderr_has("error[E041]: --source 192.0.2.7 is not in zone `admins` (10.98.0.0/16)")
    .run();
    // Behind NAT: the address the zone is seen as. Nothing listens: closed, exit 1, not 2.
    let out = t()
        .args([
            "probe",
            "z.toml",
            "--from",
            "admins",
            "--source",
            "10.98.0.5",
            "--secret-file",
            "secret",
            "--format",
            "json",
        ])
        .status(1)
        .run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        v["summary"]["closed"], 1,
        "hac.admin-port only: {}",
        out.stdout
    );
    // The loopback zone holds this host: no refusal.
    t().args(["probe", "z.toml", "--from", "lo", "--secret-file", "secret"])
        .status(1)
        .run();
}

#[test]
fn probe_timeouts_are_bounded() {
    for bad in ["0s", "5ms", "61s", "1h"] {
        Test::new()
            .file("z.toml", two_zones("127.0.52.2", "127.0.52.102"))
            .file("secret", "a secret of sixteen bytes or more\n")
            .args([
                "probe",
                "z.toml",
                "--from",
                "lo",
                "--secret-file",
                "secret",
                "--timeout",
                bad,
            ])
            .status(2)
            .stderr_has("error[E040]: --timeout")
            .stderr_has("is outside 10ms..60s")
            .stderr_has("hint: it is the wait for each answer")
            .run();
    }
}

#[test]
fn secret_files_are_bounded_and_weak_secrets_warned_about() {
    let t = || Test::new().file("z.toml", two_zones("127.0.52.3", "127.0.52.103"));
    for cmd in ["probe", "listen"] {
        let mut args = vec![cmd, "z.toml", "--secret-file", "/dev/zero"];
        args.extend(if cmd == "probe" {
            ["--from", "lo"]
        } else {
            ["--node", "LO"]
        });
        t().args(&args)
            .status(2)
            .stderr_has("secret file /dev/zero is a character device, not a regular file")
            .run();
    }
    t().file("big", "x".repeat(5000))
        .args(["probe", "z.toml", "--from", "lo", "--secret-file", "big"])
        .status(2)
        .stderr_has("secret file big is longer than 4096 bytes")
        .run();
    let out = t()
        .file("short", "s3cret\n")
        .args([
            "probe",
            "z.toml",
            "--from",
            "lo",
            "--secret-file",
            "short",
            "--timeout",
            "100ms",
        ])
        .status(1)
        .stderr_has("warning: the secret is only 6 bytes")
        .run();
    #[cfg(unix)]
    {
        // The harness writes files with the umask's mode (0644 here); 0600 draws no warning.
        use std::os::unix::fs::PermissionsExt;
        let p = out.dir.join("short");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let again = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
            .args(["probe", "z.toml", "--from", "lo", "--secret-file", "short"])
            .args(["--timeout", "100ms"])
            .current_dir(&out.dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(
            err.contains(
                "secret file short is readable by group and others (mode 644): chmod 600 short"
            ),
            "{err}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let quiet = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
            .args(["probe", "z.toml", "--from", "lo", "--secret-file", "short"])
            .args(["--timeout", "100ms"])
            .current_dir(&out.dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&quiet.stderr);
        assert!(!err.contains("readable by"), "{err}");
        let _ = std::fs::remove_dir_all(&out.dir);
    }
}

#[test]
fn listen_stops_at_once_when_the_addresses_are_not_on_this_host() {
    // 192.0.2.0/24 (TEST-NET-1) is on no host: binding fails, nothing is sent.
    let dep = r#"name = "elsewhere"
[zones.dc]
cidrs = ["192.0.2.0/24"]
roles = ["servers", "clients"]
[nodes.FAR]
address = "192.0.2.10"
zone = "dc"
[units.CORE]
address = "192.0.2.100"
packages = ["agent-server"]
instances = ["FAR"]
"#;
    let t0 = Instant::now();
    let out = Test::new()
        .file("far.toml", dep)
        .args(["listen", "far.toml", "--node", "FAR", "--duration", "60s"])
        .args(["--secret-file", "/dev/null"])
        .status(2)
        .run();
    assert!(
        out.stderr.contains("is a character device"),
        "{}",
        out.stderr
    );
    let out = Test::new()
        .file("far.toml", dep)
        .args(["listen", "far.toml", "--node", "FAR", "--duration", "60s"])
        .status(1)
        .stdout_has("cannot bind 192.0.2.10: not an address of this host (2 tcp, 0 udp ports); add 192.0.2.10 to this server (the node's address or a unit's virtual IP), or use --bind ADDR")
        .stdout_has("cannot bind 192.0.2.100: not an address of this host (1 tcp, 0 udp ports)")
        .stdout_has("not listening: the node's own address 192.0.2.10 is not on this host (the wrong host?)")
        .run();
    assert!(!out.stdout.contains("ready:"), "{}", out.stdout);
    // At once, not after --duration (60 s): a wide margin for a loaded machine.
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
}

#[test]
fn listen_stops_at_once_when_no_port_can_be_bound() {
    let dep = r#"name = "held"
[zones.lo]
cidrs = ["127.0.0.0/8"]
roles = ["servers", "clients"]
[nodes.SOLO]
address = "127.0.53.2"
zone = "lo"
"#;
    // The node has only HAC's two ports; hold both.
    let _a = std::net::TcpListener::bind("127.0.53.2:21012").unwrap();
    let _b = std::net::TcpListener::bind("127.0.53.2:21014").unwrap();
    let t0 = Instant::now();
    let out = Test::new()
        .file("held.toml", dep)
        .args(["listen", "held.toml", "--node", "SOLO", "--duration", "60s"])
        .status(1)
        // One line for the address, transport and reason, the ports as runs.
        .stdout_has("cannot bind 127.0.53.2 tcp 21012, 21014 (2 ports: hac.server-port, hac.admin-port): address in use")
        .stdout_has("not listening: no port could be bound")
        .run();
    assert!(!out.stdout.contains("ready:"), "{}", out.stdout);
    assert!(t0.elapsed() < Duration::from_secs(40), "{:?}", t0.elapsed());
}

#[cfg(unix)]
#[test]
fn sigterm_ends_the_listener_with_its_summary() {
    let t = Test::new().file("lo.toml", deployment("127.0.53.3", "127.0.53.103"));
    let dir = t.path();
    let mut l = listen(&dir, &[]);
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(l.child.id() as i32, libc::SIGTERM) }, 0);
    let line = l.wait_for("answered ");
    assert!(line.contains("dropped 0 unauthenticated"), "{line}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = l.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the listener did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn unexpected_ports_planned_for_other_zones_say_so() {
    // hac.admin-port (21014) is planned for the admins zone only; something listens there.
    let _admin = std::net::TcpListener::bind("127.0.53.4:21014").unwrap();
    let _stray = std::net::TcpListener::bind("127.0.53.4:21999").unwrap();
    let t = Test::new()
        .file("z.toml", two_zones("127.0.53.4", "127.0.53.104"))
        .file("secret", "a secret of sixteen bytes or more\n");
    let out = t
        .args([
            "probe",
            "z.toml",
            "--from",
            "lo",
            "--node",
            "LO",
            "--secret-file",
            "secret",
            "--unexpected",
        ])
        .status(1)
        .run();
    assert!(
        out.stdout.contains(
            "unexpected: 127.0.53.4 tcp 21014 accepts connections: not planned for this zone (hac.admin-port, planned for admins)"
        ),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "unexpected: 127.0.53.4 tcp 21999 accepts connections but is not in the plan"
        ),
        "{}",
        out.stdout
    );
}

#[cfg(target_os = "linux")]
#[cfg_attr(
    not(scc_setpriv),
    ignore = "needs root and setpriv (to become an unprivileged user)"
)]
#[test]
fn privileged_ports_as_non_root_get_a_hint() {
    let start: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024);
    if start <= 80 {
        eprintln!("skipping: ip_unprivileged_port_start is {start}, anyone may bind port 80 here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let dep = r#"name = "privileged"
[zones.lo]
cidrs = ["127.0.0.0/8"]
roles = ["servers", "clients"]
[nodes.PRIV]
address = "127.0.53.5"
zone = "lo"
[units.WEB]
address = "127.0.53.105"
packages = ["web-server"]
instances = ["PRIV"]
"#;
    std::fs::write(dir.path().join("priv.toml"), dep).unwrap();
    let bin = env!("CARGO_BIN_EXE_scc-ports");
    let args = ["listen", "priv.toml", "--node", "PRIV", "--duration", "1s"];
    // SAFETY: geteuid has no preconditions.
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        // As root, become nobody for this one command. The binary is copied beside the file, so
        // nobody can run it wherever the checkout lives (a home directory of mode 700).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let copy = dir.path().join("scc-ports");
        std::fs::copy(bin, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(copy);
        c
    } else {
        Command::new(bin)
    };
    let out = match cmd
        .args(args)
        .current_dir(dir.path())
        .env("SCC_PORTS_SECRET", "sixteen bytes or more")
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            assert!(
                std::env::var("SCC_PORTS_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
                "setpriv (util-linux) is needed: {e}"
            );
            eprintln!("skipping: cannot run setpriv: {e}");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout
            .contains("cannot bind 127.0.53.105 tcp 80, 443 (2 ports: web-server.http-port, web-server.https-port): permission denied"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hint: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability"),
        "{stdout}"
    );
}
