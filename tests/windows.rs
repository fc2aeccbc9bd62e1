//! The Windows build under Wine, side by side with the Linux binary (issue #9).
//!
//! `.ci/before.d/10-windows.sh` cross-builds `scc-ports.exe`, puts the Wine-only stand-in
//! `bcryptprimitives.dll` beside it, warms a Wine prefix and exports `SCC_PORTS_WINDOWS_EXE`.
//! Without it these tests skip with the reason, unless `SCC_PORTS_REQUIRE_ROOT_TESTS=1` (CI), where
//! they fail, except when the CI job itself said why it could not build (`SCC_PORTS_WINDOWS_SKIP`,
//! e.g. the target's standard library cannot be fetched).
//! Loopback addresses of these tests: 127.0.60.x to 127.0.69.x only.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::netns::{self, Netns};
use common::required;

const EXAMPLES: [&str; 3] = ["all-in-one", "redundant", "large"];
const TARGETS: [&str; 6] = ["nftables", "iptables", "firewalld", "windows", "aws", "csv"];

/// The .exe and the Wine loader, or `None` (the test skips) after saying why.
fn windows(test: &str) -> Option<(PathBuf, PathBuf)> {
    let exe = std::env::var_os("SCC_PORTS_WINDOWS_EXE").map(PathBuf::from);
    let wine = std::env::var_os("SCC_PORTS_WINE")
        .map_or_else(|| PathBuf::from("/usr/lib/wine/wine64"), PathBuf::from);
    let why = match (&exe, std::env::var("SCC_PORTS_WINDOWS_SKIP")) {
        (_, Ok(reason)) => {
            // The CI job decided, and said so in its one line: not a failure of this suite.
            eprintln!("skipping {test}: {reason}");
            return None;
        }
        (None, _) => "SCC_PORTS_WINDOWS_EXE is not set (run .ci/before.d/10-windows.sh)".to_owned(),
        (Some(e), _) if !e.is_file() => format!("{} does not exist", e.display()),
        (Some(_), _) if !wine.is_file() => format!("no Wine at {}", wine.display()),
        (Some(e), _) => {
            // One Wine server for the whole run, kept a minute after its last client: without
            // it every command starts (and stops) one, 3-4 s each instead of about 0.1 s.
            let _ = Command::new(wine.with_file_name("wineserver"))
                .arg("-p60")
                // The server outlives us: it must not hold a pipe of ours (or cargo's) open.
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            // Its helper processes (services, winedevice) start with the first program and
            // inherit that program's stdio: start them here, on null, not on a test's pipes.
            let _ = Command::new(&wine)
                .arg(e)
                .arg("--version")
                .env("WINEDEBUG", "-all")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            return Some((e.clone(), wine));
        }
    };
    if required() {
        panic!("{test}: the Windows tests are required but cannot run: {why}");
    }
    eprintln!("skipping {test}: {why}");
    None
}

fn linux(args: &[String], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the Linux binary")
}

fn wine(exe: &Path, wine: &Path, args: &[String], dir: &Path) -> Output {
    Command::new(wine)
        .arg(exe)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("WINEDEBUG", "-all")
        .stdin(Stdio::null())
        .output()
        .expect("run the .exe under Wine")
}

/// Windows text with its line endings made Unix ones (the only difference allowed).
fn unix_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn node_names(example: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(example).expect("read example");
    let table: toml::Table = text.parse().expect("example is TOML");
    table
        .get("nodes")
        .and_then(|n| n.as_table())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every command of the comparison: catalog, plan, check and flows in every format, and every
/// firewall target for every node, the workstations and the network, of every example.
fn commands() -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>();
    let mut out = Vec::new();
    for f in ["table", "json", "csv", "markdown"] {
        out.push(s(&["catalog", "--format", f]));
    }
    for e in EXAMPLES {
        let file = format!("{e}.toml");
        for f in ["table", "json", "csv", "markdown"] {
            out.push(s(&["plan", &file, "--format", f]));
            out.push(s(&["flows", &file, "--format", f]));
        }
        for f in ["table", "json"] {
            out.push(s(&["check", &file, "--format", f]));
        }
        let nodes = node_names(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(&file),
        );
        assert!(!nodes.is_empty(), "{file} has nodes");
        for t in TARGETS {
            for n in &nodes {
                out.push(s(&["firewall", &file, "--target", t, "--node", n]));
            }
            out.push(s(&["firewall", &file, "--target", t, "--workstations"]));
            out.push(s(&["firewall", &file, "--target", t, "--network"]));
        }
    }
    // Errors too: the same exit code and the same message on stdout (none) either way.
    out.push(s(&["plan", "no-such-file.toml"]));
    out.push(s(&[
        "firewall",
        "redundant.toml",
        "--target",
        "csv",
        "--node",
        "NOPE",
    ]));
    out
}

#[cfg_attr(
    not(scc_wine),
    ignore = "needs the Windows build and Wine (SCC_PORTS_WINDOWS_EXE, set by .ci/before.d)"
)]
#[test]
fn every_golden_output_is_the_same_under_wine() {
    let Some((exe, loader)) = windows("every_golden_output_is_the_same_under_wine") else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let cmds = commands();
    let started = Instant::now();
    let mut differ = Vec::new();
    for args in &cmds {
        let l = linux(args, &dir);
        let mut w = wine(&exe, &loader, args, &dir);
        if l.status.code() != w.status.code() && w.stderr.is_empty() {
            // Wine on a loaded machine (the other Wine tests run beside this one) has been seen
            // to end a run with 1 and not a word; our binary always says why it fails. Once
            // more: a real difference is there again.
            eprintln!(
                "{}: silent exit {:?} under Wine, run again",
                args.join(" "),
                w.status.code()
            );
            w = wine(&exe, &loader, args, &dir);
        }
        if l.status.code() != w.status.code() {
            differ.push(format!(
                "{}: exit {:?} on Linux, {:?} under Wine ({})",
                args.join(" "),
                l.status.code(),
                w.status.code(),
                String::from_utf8_lossy(&w.stderr).trim()
            ));
        } else if l.stdout != unix_lines(&w.stdout) {
            let (a, b) = (
                String::from_utf8_lossy(&l.stdout),
                String::from_utf8_lossy(&w.stdout),
            );
            let line = a
                .lines()
                .zip(b.lines())
                .position(|(x, y)| x != y.trim_end_matches('\r'))
                .map_or_else(|| "length".to_owned(), |i| format!("line {}", i + 1));
            differ.push(format!("{}: stdout differs at {line}", args.join(" ")));
        }
        assert!(
            !l.stdout.is_empty() || !l.status.success(),
            "{} printed nothing",
            args.join(" ")
        );
    }
    eprintln!(
        "{} commands compared (Linux and Wine) in {:.1} s",
        cmds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[cfg_attr(
    not(scc_wine),
    ignore = "needs the Windows build and Wine (SCC_PORTS_WINDOWS_EXE, set by .ci/before.d)"
)]
#[test]
fn line_endings_are_the_only_allowed_difference() {
    assert_eq!(unix_lines(b"a\r\nb\n\r\nc\r"), b"a\nb\n\nc\r");
}

/// A node with both MRS areas at their default maximum (200 streams each: 401 + 1,201 UDP ports)
/// beside SIP and the HAC: 1,611 ports on two addresses.
fn node_deployment(node: &str, unit: &str) -> String {
    format!(
        r#"name = "windows-live"
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
"#
    )
}

const NODE_PORTS: u64 = 1611;

/// The tests that listen and probe under Wine run one at a time: each starts a Wine server and
/// serves or sends thousands of packets, and on two cores several at once starve each other past
/// a prober's timeout (a failure of the machine, not of the code under test).
static WINE_NET: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running listener (Linux or Wine), killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and waits for its `ready:` line; returns it and how long it took.
fn start_listener(mut cmd: Command, within: Duration) -> (Running, String, Duration) {
    let started = Instant::now();
    let mut child = Running(
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the listener"),
    );
    let stdout = child.0.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let left = within.saturating_sub(started.elapsed());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the listener prints `ready:` within {within:?}"));
        if line.starts_with("ready:") {
            return (child, line.trim_end().to_owned(), started.elapsed());
        }
    }
}

/// The Linux listener for node LO of `dir/lo.toml` with `dir/secret`, ready (within 20 s).
fn linux_listener(dir: &Path, duration: &str) -> (Running, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scc-ports"));
    cmd.args([
        "listen",
        "lo.toml",
        "--node",
        "LO",
        "--secret-file",
        "secret",
    ])
    .args(["--duration", duration])
    .current_dir(dir)
    .env_remove("SCC_PORTS_SECRET");
    let (listener, ready, _) = start_listener(cmd, Duration::from_secs(20));
    (listener, ready)
}

/// The probe JSON's summary, checked: every planned port `verified`.
fn assert_all_verified(out: &Output, who: &str) {
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{who}: probe JSON ({e}): {text}"));
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len() as u64, NODE_PORTS, "{who}");
    let not: Vec<String> = results
        .iter()
        .filter(|r| r["status"] != "verified")
        .take(5)
        .map(|r| r.to_string())
        .collect();
    assert_eq!(
        v["summary"]["verified"],
        NODE_PORTS,
        "{who}: {} not verified, e.g. {}",
        results.len() - v["summary"]["verified"].as_u64().unwrap_or(0) as usize,
        not.join("; ")
    );
    assert_eq!(out.status.code(), Some(0), "{who}");
}

/// Wine binds a UDP socket on an address that is not an interface address (127.0.60.100 on a
/// host whose lo has only 127.0.0.1) to the wildcard, so its replies leave from 127.0.0.1 and a
/// connected prober drops them (docs/windows.md, tests/wine/udpbind.c). In a namespace whose lo
/// carries the node's addresses themselves, Wine binds as Windows would.
#[cfg_attr(
    not(scc_wine),
    ignore = "needs the Windows build and Wine (SCC_PORTS_WINDOWS_EXE, set by .ci/before.d)"
)]
#[test]
fn wine_listener_answers_a_linux_prober_on_every_port() {
    let test = "wine_listener_answers_a_linux_prober_on_every_port";
    let _serial = WINE_NET.lock().unwrap_or_else(|e| e.into_inner());
    let Some((exe, loader)) = windows(test) else {
        return;
    };
    if !netns::available(test) {
        return;
    }
    let lab = WineLab::start(&exe, &loader, "127.0.60.1", "127.0.60.100");
    let probe = lab.probe();
    drop(lab);
    assert_all_verified(&probe, "Linux prober against the Wine listener");
}

/// A Wine listener for `node_deployment(node, unit)` in a namespace of its own whose lo carries
/// both addresses, with its own Wine server; stopped (listener and Wine server) when dropped.
struct WineLab {
    listener: Option<Running>,
    wineserver: PathBuf,
    prefix: PathBuf,
    ns: Netns,
    dir: tempfile::TempDir,
}

impl WineLab {
    fn start(exe: &Path, loader: &Path, node: &str, unit: &str) -> WineLab {
        let ns = Netns::new().expect("namespace");
        for a in [node, unit] {
            ns.ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])
                .expect("address on lo");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("lo.toml"), node_deployment(node, unit)).unwrap();
        std::fs::write(dir.path().join("secret"), "wine-live\n").unwrap();
        // A Wine server is per prefix and its sockets live in its namespace: a prefix of our own
        // (symbolic links to the warmed one, so no 10-30 s first run) gets one started in `ns`.
        let warm = PathBuf::from(std::env::var_os("WINEPREFIX").expect("WINEPREFIX of the CI job"));
        let prefix = dir.path().join("prefix");
        let copied = Command::new("cp")
            .arg("-as")
            .arg(&warm)
            .arg(&prefix)
            .status()
            .expect("cp");
        assert!(copied.success(), "cp -as {}", warm.display());
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns.name()])
            .arg(loader)
            .arg(exe)
            .args([
                "listen",
                "lo.toml",
                "--node",
                "LO",
                "--secret-file",
                "secret",
            ])
            .args(["--duration", "90s"])
            .current_dir(dir.path())
            .env("WINEPREFIX", &prefix)
            .env("WINEDEBUG", "-all");
        let (listener, ready, took) = start_listener(cmd, Duration::from_secs(90));
        eprintln!(
            "Wine listener: `{ready}` after {:.1} s (with a new Wine server)",
            took.as_secs_f64()
        );
        assert!(ready.contains("ready: 1611 of 1611 ports bound"), "{ready}");
        WineLab {
            listener: Some(listener),
            wineserver: loader.with_file_name("wineserver"),
            prefix,
            ns,
            dir,
        }
    }

    /// The Linux prober of zone `lo`, run in the namespace.
    fn probe(&self) -> Output {
        Command::new("ip")
            .args(["netns", "exec", self.ns.name()])
            .arg(env!("CARGO_BIN_EXE_scc-ports"))
            .args([
                "probe",
                "lo.toml",
                "--from",
                "lo",
                "--secret-file",
                "secret",
            ])
            .args(["--format", "json"])
            .current_dir(self.dir.path())
            .output()
            .expect("run the Linux prober")
    }
}

impl Drop for WineLab {
    fn drop(&mut self) {
        drop(self.listener.take());
        let _ = Command::new(&self.wineserver)
            .arg("-k")
            .env("WINEPREFIX", &self.prefix)
            .status();
    }
}

/// Keeps `n` idle TCP connections open from `sources` (round robin) to `targets` inside `ns`
/// until dropped (at most 120 s); with `reopen`, those the listener closes are opened again
/// within a quarter of a second.
struct Hog {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Hog {
    fn start(
        ns: &Netns,
        sources: Vec<std::net::IpAddr>,
        targets: Vec<std::net::SocketAddr>,
        n: usize,
        reopen: bool,
    ) -> Hog {
        use std::io::Read;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), held.clone());
        let thread = ns.spawn(move || {
            let open = |i: usize| -> Option<std::net::TcpStream> {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .ok()?;
                s.bind(&std::net::SocketAddr::new(sources[i % sources.len()], 0).into())
                    .ok()?;
                s.connect_timeout(&targets[i % targets.len()].into(), Duration::from_secs(1))
                    .ok()?;
                let s: std::net::TcpStream = s.into();
                s.set_nonblocking(true).ok()?;
                Some(s)
            };
            let mut pool: Vec<Option<std::net::TcpStream>> = (0..n).map(open).collect();
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut byte = [0u8; 1];
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                for (i, slot) in pool.iter_mut().enumerate() {
                    let closed = match slot {
                        Some(s) => !matches!(s.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                        None => true,
                    };
                    if closed {
                        *slot = if reopen { open(i) } else { None };
                    }
                }
                count.store(pool.iter().flatten().count(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Hog {
            stop,
            held,
            thread: Some(thread),
        }
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Issue #8 on the Windows serving path: more idle connections than the whole session table, from
/// the prober's own address (held) and from 50 other addresses (reopened within a quarter of a
/// second of the listener closing them), do not make a single probe fail: the per-source caps and the eviction of the
/// oldest waiting session are the tokio path's ones. (Before them, the WSAPoll loop refused every
/// connection past 256 and 7 ports failed.)
#[cfg_attr(
    not(scc_wine),
    ignore = "needs the Windows build and Wine (SCC_PORTS_WINDOWS_EXE, set by .ci/before.d)"
)]
#[test]
fn wine_listener_serves_probes_while_idle_connections_crowd_it() {
    let test = "wine_listener_serves_probes_while_idle_connections_crowd_it";
    let _serial = WINE_NET.lock().unwrap_or_else(|e| e.into_inner());
    let Some((exe, loader)) = windows(test) else {
        return;
    };
    if !netns::available(test) {
        return;
    }
    let (node, unit) = ("127.0.62.1", "127.0.62.100");
    let lab = WineLab::start(&exe, &loader, node, unit);
    let ip = |s: &str| -> std::net::IpAddr { s.parse().unwrap() };
    let targets = vec![
        std::net::SocketAddr::new(ip(unit), 21018),
        std::net::SocketAddr::new(ip(node), 21012),
    ];
    // The prober's own source (the kernel picks the node's address toward it) ...
    let same = Hog::start(&lab.ns, vec![ip(node)], targets.clone(), 400, false);
    // ... and 50 others.
    let others: Vec<std::net::IpAddr> = (10..60).map(|i| ip(&format!("127.0.63.{i}"))).collect();
    let many = Hog::start(&lab.ns, others, targets, 600, true);
    let started = Instant::now();
    while same.held.load(std::sync::atomic::Ordering::SeqCst)
        + many.held.load(std::sync::atomic::Ordering::SeqCst)
        < 900
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the idle connections did not open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let probe = lab.probe();
    let held = (
        same.held.load(std::sync::atomic::Ordering::SeqCst),
        many.held.load(std::sync::atomic::Ordering::SeqCst),
    );
    drop((same, many));
    drop(lab);
    eprintln!("idle connections held during the probe: {held:?}");
    assert_all_verified(&probe, "Linux prober against the crowded Wine listener");
}

#[cfg_attr(
    not(scc_wine),
    ignore = "needs the Windows build and Wine (SCC_PORTS_WINDOWS_EXE, set by .ci/before.d)"
)]
#[test]
fn windows_prober_verifies_a_linux_listener() {
    let test = "windows_prober_verifies_a_linux_listener";
    let _serial = WINE_NET.lock().unwrap_or_else(|e| e.into_inner());
    let Some((exe, loader)) = windows(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("lo.toml"),
        node_deployment("127.0.61.1", "127.0.61.100"),
    )
    .unwrap();
    std::fs::write(dir.path().join("secret"), "wine-live\n").unwrap();
    let (listener, ready) = linux_listener(dir.path(), "90s");
    assert!(ready.contains("ready: 1611 of 1611 ports bound"), "{ready}");
    let started = Instant::now();
    let probe = wine(
        &exe,
        &loader,
        &[
            "probe",
            "lo.toml",
            "--from",
            "lo",
            "--secret-file",
            "secret",
            "--format",
            "json",
        ]
        .map(String::from),
        dir.path(),
    );
    eprintln!("Wine prober: {:.1} s", started.elapsed().as_secs_f64());
    drop(listener);
    assert_all_verified(&probe, "Wine prober against the Linux listener");
}

/// Every TCP port in LISTEN on this host for every address (0.0.0.0 or ::) or for `address`, from
/// /proc/net/tcp and tcp6: the ports a sweep of `address` also finds besides the test's own.
fn host_listeners(address: std::net::Ipv4Addr) -> std::collections::BTreeSet<u16> {
    let mine = format!("{:08X}", u32::from_le_bytes(address.octets()));
    let mut out = std::collections::BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(&"0A")) = (f.get(1), f.get(3)) else {
                continue;
            };
            let Some((ip, port)) = local.split_once(':') else {
                continue;
            };
            if ip.chars().all(|c| c == '0') || ip == mine {
                if let Ok(p) = u16::from_str_radix(port, 16) {
                    out.insert(p);
                }
            }
        }
    }
    out
}

/// `probe --unexpected` from Wine sweeps all 65,533 unplanned TCP ports of an address with the
/// WSAPoll sweep and finds exactly the extra listeners (plus whatever listens on every address of
/// this host), settled, in bounded time (the one-connect-at-a-time fallback took minutes).
#[cfg_attr(
    not(scc_wine),
    ignore = "needs the Windows build and Wine (SCC_PORTS_WINDOWS_EXE, set by .ci/before.d)"
)]
#[test]
fn windows_sweep_finds_exactly_the_unexpected_listeners() {
    let test = "windows_sweep_finds_exactly_the_unexpected_listeners";
    let _serial = WINE_NET.lock().unwrap_or_else(|e| e.into_inner());
    let Some((exe, loader)) = windows(test) else {
        return;
    };
    let address = std::net::Ipv4Addr::new(127, 0, 62, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("lo.toml"),
        format!(
            "name = \"sweep\"\n[zones.lo]\ncidrs = [\"127.0.0.0/8\"]\nroles = [\"servers\", \"admins\"]\n\
             [nodes.LO]\naddress = \"{address}\"\nzone = \"lo\"\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("secret"), "wine-sweep-secret-0123456789\n").unwrap();
    let (listener, ready) = linux_listener(dir.path(), "120s");
    assert!(ready.contains("ready: 2 of 2 ports bound"), "{ready}");
    // Unplanned listeners, low, mid and in the dynamic range; an accepted connection stays in
    // the backlog (no accept needed).
    let extras: Vec<std::net::TcpListener> = [2222u16, 40000, 60001]
        .iter()
        .map(|&p| std::net::TcpListener::bind((address, p)).expect("bind an extra listener"))
        .collect();
    let before = host_listeners(address);
    let started = Instant::now();
    let probe = wine(
        &exe,
        &loader,
        &[
            "probe",
            "lo.toml",
            "--from",
            "lo",
            "--secret-file",
            "secret",
            "--unexpected",
            "--format",
            "json",
        ]
        .map(String::from),
        dir.path(),
    );
    let took = started.elapsed();
    let after = host_listeners(address);
    drop(extras);
    drop(listener);
    eprintln!("Wine sweep of 65,533 ports: {:.1} s", took.as_secs_f64());
    let text = String::from_utf8_lossy(&probe.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("probe JSON ({e}): {text}"));
    assert_eq!(v["summary"]["verified"], 2, "{text}");
    let found: std::collections::BTreeSet<u16> = v["unexpected"]
        .as_array()
        .expect("unexpected")
        .iter()
        .map(|u| {
            assert_eq!(u["address"], address.to_string());
            assert_eq!(u["transport"], "tcp");
            u["port"].as_u64().expect("port") as u16
        })
        .collect();
    for p in [2222, 40000, 60001] {
        assert!(found.contains(&p), "the sweep missed {p}: {found:?}");
    }
    // Nothing else but a port some other program held on every address during the sweep.
    let planned = [21012u16, 21014];
    let stray: Vec<u16> = found
        .iter()
        .copied()
        .filter(|p| ![2222, 40000, 60001].contains(p))
        .filter(|p| !(before.contains(p) || after.contains(p)) || planned.contains(p))
        .collect();
    assert!(stray.is_empty(), "ports no listener held: {stray:?}");
    let sweep = &v["sweep"]["addresses"][0];
    assert_eq!(sweep["ports"], 65_533, "{sweep}");
    assert_eq!(sweep["settled"], true, "{sweep}");
    assert_eq!(sweep["errors"], 0, "{sweep}");
    assert_eq!(v["sweep"]["inconclusive"], false, "{sweep}");
    // Unexpected listeners fail the run (exit 1), as on Linux.
    assert_eq!(probe.status.code(), Some(1));
    assert!(
        took < Duration::from_secs(90),
        "the Wine sweep took {took:?}"
    );
}
