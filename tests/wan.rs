//! Probes and the sweep over a WAN path: two network namespaces joined by `delayline`
//! (bench/delayline.c, built here with gcc: two TUN devices, a fixed one-way delay,
//! seeded random loss), 80 ms round trip and 1% loss each way. And the listener under an
//! open-file limit too small for its ports.
//!
//! The server namespace holds node APP1 of examples/redundant.toml at its own addresses (node
//! 10.1.0.11, units CORE 10.1.0.100 and VOICE 10.1.0.101, on its loopback), the client is
//! 10.1.0.200; nothing is sent outside the two namespaces. Needs root, `ip`, `nft` (see
//! tests/common/netns.rs), gcc and /dev/net/tun; skips with a reason otherwise, and fails
//! instead when `SCC_PORTS_REQUIRE_ROOT_TESTS=1` (CI), also when delayline.c is missing.
#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::netns::{self, Netns};
use common::required;
use scc_ports::catalog::Transport;
use scc_ports::net::probe::{self, ProbeOptions};
use scc_ports::net::{Endpoint, Secret};
use scc_ports::range::PortRange;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_scc-ports");
const SERVER_ADDRESSES: [&str; 3] = ["10.1.0.11", "10.1.0.100", "10.1.0.101"];
const CLIENT: &str = "10.1.0.200";
/// One-way delay (ms) and loss (percent, each way) of the path.
const DELAY_MS: &str = "40";
const LOSS_PERCENT: &str = "1";

/// The WAN tests run one at a time: two delay lines and a sweep at once compete for the same
/// cores, and the timings they check are for one path.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn skip_or_fail(test: &str, why: &str) -> bool {
    if required() {
        panic!("{test}: WAN tests are required but cannot run: {why}");
    }
    eprintln!("skipping {test}: {why}");
    false
}

/// Where delayline.c is: `SCC_PORTS_DELAYLINE_C`, else the repository's own copy in bench/.
fn delayline_source() -> Option<PathBuf> {
    let src = std::env::var_os("SCC_PORTS_DELAYLINE_C").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/delayline.c"),
        PathBuf::from,
    );
    src.is_file().then_some(src)
}

/// Builds delayline once per test process; the error says why it cannot be had.
fn delayline() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let src = delayline_source()
                .ok_or("bench/delayline.c is missing (the WAN path's delay line)".to_owned())?;
            let out = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("delayline-{}", std::process::id()));
            let built = Command::new("gcc")
                .arg("-O2")
                .arg("-o")
                .arg(&out)
                .arg(&src)
                .output()
                .map_err(|e| format!("gcc not found ({e})"))?;
            if !built.status.success() {
                return Err(format!(
                    "gcc could not build {}: {}",
                    src.display(),
                    String::from_utf8_lossy(&built.stderr).trim()
                ));
            }
            Ok(out)
        })
        .clone()
}

/// Whether a WAN test can run here (prints why not, or panics when required).
fn available(test: &str) -> Option<PathBuf> {
    if !netns::available(test) {
        return None;
    }
    if !Path::new("/dev/net/tun").exists() {
        skip_or_fail(test, "/dev/net/tun is missing (TUN devices)");
        return None;
    }
    match delayline() {
        Ok(p) => Some(p),
        Err(why) => {
            skip_or_fail(test, &why);
            None
        }
    }
}

/// Server and client namespaces over the delay line; the delay line is killed on drop (before
/// the namespaces go).
struct Wan {
    line: Child,
    // Declared after `line`: dropped after it.
    server: Netns,
    client: Netns,
}

impl Wan {
    fn new(delayline: &Path) -> Wan {
        let server = Netns::new().expect("server namespace");
        let client = Netns::new().expect("client namespace");
        let mut line = Command::new(delayline)
            .args([
                server.name(),
                "wan0",
                client.name(),
                "wan0",
                DELAY_MS,
                LOSS_PERCENT,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start delayline");
        let stdout = line.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(first);
        });
        let up = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let wan = Wan {
            line,
            server,
            client,
        };
        assert_eq!(up.trim(), "up", "delayline did not come up");
        for ns in [&wan.server, &wan.client] {
            ns.ip(&["link", "set", "wan0", "up"]).expect("wan0 up");
        }
        for a in SERVER_ADDRESSES {
            wan.server
                .ip(&["addr", "add", &format!("{a}/32"), "dev", "lo"])
                .expect("server address");
        }
        wan.server
            .ip(&["route", "add", &format!("{CLIENT}/32"), "dev", "wan0"])
            .expect("route to client");
        wan.client
            .ip(&["addr", "add", &format!("{CLIENT}/32"), "dev", "wan0"])
            .expect("client address");
        wan.client
            .ip(&["route", "add", "10.1.0.0/24", "dev", "wan0", "src", CLIENT])
            .expect("route to server");
        wan
    }

    /// `scc-ports ARGS` in `ns`, bounded in time: (exit code, stdout, stderr, wall time).
    fn scc(ns: &Netns, args: &[&str], limit: Duration) -> (i32, String, String, Duration) {
        let t0 = Instant::now();
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), BIN])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run scc-ports");
        let out = collect(child.stdout.take().expect("piped"));
        let err = collect(child.stderr.take().expect("piped"));
        let code = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s.code().unwrap_or(-1);
            }
            if t0.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("scc-ports {args:?} ran past {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let wall = t0.elapsed();
        (
            code,
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
            wall,
        )
    }
}

impl Drop for Wan {
    fn drop(&mut self) {
        let _ = self.line.kill();
        let _ = self.line.wait();
    }
}

fn collect(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = r.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The redundant example, both MRS areas at their maximum, the datacenter zone carrying every
/// role that connects to APP1: one probe covers the node's 1,626 ports.
fn deployment() -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/redundant.toml"
    ))
    .expect("examples/redundant.toml");
    let capped = "\"media-routing-server.max-simultaneous-recordings\" = 100\n";
    assert!(text.contains(capped), "the example's recording cap moved");
    text.replace(capped, "").replacen(
        "roles = [\"servers\"]",
        "roles = [\"servers\", \"clients\", \"admins\", \"trunk\"]",
        1,
    )
}

/// A listener process, killed on drop.
struct Listener(Child);

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listen(ns: &Netns, file: &Path, secret: &Path) -> Listener {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), BIN, "listen"])
        .arg(file)
        .args(["--node", "APP1", "--duration", "5m", "--secret-file"])
        .arg(secret)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start listener");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let listener = Listener(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("listener ready in time");
        if line.starts_with("ready:") {
            assert!(line.contains(" 0 failed"), "{line}");
            return listener;
        }
    }
}

#[cfg_attr(
    not(all(scc_netns, scc_gcc)),
    ignore = "needs root, iproute2, nftables and gcc (the delay line)"
)]
#[test]
fn probes_over_80ms_with_1pct_loss_are_all_verified() {
    let test = "probes_over_80ms_with_1pct_loss_are_all_verified";
    let _one = serial();
    let Some(delayline) = available(test) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("wan.toml");
    std::fs::write(&file, deployment()).expect("write deployment");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "wan secret\n").expect("write secret");
    let wan = Wan::new(&delayline);
    let _listener = listen(&wan.server, &file, &secret);
    let args = [
        "probe",
        file.to_str().expect("UTF-8 path"),
        "--from",
        "datacenter",
        "--node",
        "APP1",
        "--secret-file",
        secret.to_str().expect("UTF-8 path"),
        "--format",
        "json",
    ];
    // Three runs keep CI's cost bounded; bench/wanbench.py runs ten.
    let mut retries = 0;
    for run in 1..=3 {
        let (code, out, err, wall) = Wan::scc(&wan.client, &args, Duration::from_secs(30));
        let json: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("run {run}: not JSON ({e}): {out}\n{err}"));
        let results = json["results"].as_array().expect("results");
        assert_eq!(results.len(), 1626, "run {run}: every port of APP1");
        let wrong: Vec<String> = results
            .iter()
            .filter(|r| r["status"] != "verified")
            .map(|r| {
                format!(
                    "{}/{} {} after {} attempts: {}",
                    r["transport"], r["port"], r["status"], r["attempts"], r["detail"]
                )
            })
            .collect();
        assert!(wrong.is_empty(), "run {run}: false results {wrong:#?}");
        assert_eq!(code, 0, "run {run}: {err}");
        let repeats = results
            .iter()
            .map(|r| r["attempts"].as_u64().expect("attempts") - 1)
            .sum::<u64>();
        eprintln!("probe run {run}: {wall:?}, all 1,626 verified, {repeats} retries");
        retries += repeats;
    }
    // 1% loss each way over 3 x 1,626 exchanges: retries must have happened, and succeeded.
    assert!(retries > 0, "no retries: is the path lossy at all?");
}

#[cfg_attr(
    not(all(scc_netns, scc_gcc)),
    ignore = "needs root, iproute2, nftables and gcc (the delay line)"
)]
#[test]
fn sweep_over_80ms_finds_all_200_unexpected_ports() {
    let test = "sweep_over_80ms_finds_all_200_unexpected_ports";
    let _one = serial();
    let Some(delayline) = available(test) else {
        return;
    };
    let wan = Wan::new(&delayline);
    let server: IpAddr = SERVER_ADDRESSES[0].parse().expect("IP");
    let extra: BTreeSet<u16> = (40000..40200).collect();
    // 200 services the plan does not know, held open in the server namespace until told.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ports = extra.clone();
    let holder = wan.server.spawn(move || {
        let held: Vec<TcpListener> = ports
            .iter()
            .map(|&p| TcpListener::bind(SocketAddr::new(server, p)).expect("bind extra"))
            .collect();
        let _ = ready_tx.send(());
        let _ = stop_rx.recv();
        drop(held);
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("extra listeners up");
    // One planned port (nothing listens there: closed); the sweep covers the 65,534 others.
    let planned = vec![Endpoint {
        address: server,
        transport: Transport::Tcp,
        ports: PortRange::new(22, 22, None).expect("port"),
        component: "wan".into(),
        port_id: "planned".into(),
    }];
    let secret = Secret::new("wan secret").expect("secret");
    for run in 1..=2 {
        let (targets, secret) = (planned.clone(), secret.clone());
        let report = wan.client.run(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let opts = ProbeOptions {
                unexpected: true,
                ..ProbeOptions::default()
            };
            rt.block_on(probe::run(&targets, &secret, opts, |_, _| {}))
        });
        let found: BTreeSet<u16> = report
            .unexpected
            .iter()
            .filter(|(a, _)| *a == server)
            .map(|(_, p)| *p)
            .collect();
        let missing: Vec<&u16> = extra.difference(&found).collect();
        let strays: Vec<&u16> = found.difference(&extra).collect();
        assert!(
            missing.is_empty() && strays.is_empty(),
            "run {run}: missing {missing:?}, not ours {strays:?}, sweep {:?}",
            report.sweep
        );
        assert!(
            !report.inconclusive(),
            "run {run}: inconclusive: {:?}",
            report.sweep
        );
        assert_eq!(report.results[0].status, probe::Status::Closed);
        eprintln!(
            "sweep run {run}: {:?}, all 200 found, {:?}",
            report.elapsed, report.sweep
        );
    }
    let _ = stop_tx.send(());
    let _ = holder.join();
}

/// Sets a process's open-file limit (soft and hard) before it runs, and takes from it the
/// capability to raise the hard limit again (CAP_SYS_RESOURCE, which root has): the listener
/// must say what it could not bind, and why.
fn limited(cmd: &mut Command, nofile: u64) -> &mut Command {
    const CAP_SYS_RESOURCE: libc::c_ulong = 24;
    // SAFETY: only async-signal-safe calls (setrlimit, prctl) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: nofile as libc::rlim_t,
                rlim_max: nofile as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Out of the bounding set, root's next program starts without it.
            if libc::geteuid() == 0
                && libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_RESOURCE, 0, 0, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

#[cfg_attr(
    not(all(scc_netns, scc_gcc)),
    ignore = "needs root, iproute2, nftables and gcc (the delay line)"
)]
#[test]
fn listener_under_a_small_open_file_limit_says_how_many_ports_are_missing() {
    // Loopback 127.0.55.x (this suite's block); no namespace needed.
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("fd.toml");
    std::fs::write(
        &file,
        r#"name = "open-file limit"

[zones.datacenter]
cidrs = ["127.0.55.0/24"]
roles = ["servers"]

[nodes.N1]
address = "127.0.55.1"
zone = "datacenter"
hac = false

[units.VOICE]
address = "127.0.55.2"
packages = ["media-routing-server"]
instances = ["N1"]
"#,
    )
    .expect("write deployment");
    let mut cmd = Command::new(BIN);
    cmd.arg("listen")
        .arg(&file)
        .args(["--node", "N1", "--duration", "1s"])
        .env("SCC_PORTS_SECRET", "fd secret")
        .stdin(Stdio::null());
    let out = limited(&mut cmd, 300).output().expect("run listener");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    let ready = lines
        .iter()
        .position(|l| l.starts_with("ready:"))
        .unwrap_or_else(|| panic!("no ready line: {stdout}"));
    let said = lines[..ready]
        .iter()
        .find(|l| l.starts_with("cannot bind ") && l.contains("open-file limit"))
        .unwrap_or_else(|| panic!("no open-file limit line before ready: {stdout}"));
    // "cannot bind N ports: open-file limit: N of M ports not bound, the soft limit is 300 ..."
    let n: u64 = said
        .split_whitespace()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    assert!(said.contains(&format!("{n} of ")), "{said}");
    assert!(said.contains("the soft limit is 300"), "{said}");
    assert!(n > 1000 && n < 1700, "{said}");
    assert!(
        lines[ready].contains(&format!(", {n} failed")),
        "{}",
        lines[ready]
    );
    // One line for all of them, not one per port.
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("open-file limit"))
            .count(),
        1,
        "{stdout}"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "ports missing: the answer is no"
    );
}
