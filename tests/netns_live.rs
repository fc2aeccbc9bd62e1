//! The real binary end to end, in network namespaces: `scc-ports firewall` writes the rules,
//! `nft -f` loads them, `scc-ports listen` answers on the server, `scc-ports probe` runs in the
//! client zones, each command under `ip netns exec`.
//!
//! The lab: a router namespace between a server namespace (node SRV 10.78.1.11, unit addresses
//! 10.78.1.100 and 10.78.1.101) and one namespace per client zone (10.78.N.10, N = 2 agents,
//! 3 admins, 4 carrier). Every address lives inside the test's namespaces; nothing else is sent
//! anywhere. Needs root, `ip` and `nft` (see tests/common/netns.rs); skips with a reason
//! otherwise, unless `SCC_PORTS_REQUIRE_ROOT_TESTS=1`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::netns::{self, Netns};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_scc-ports");
const NODE: &str = "SRV";
const NODE_ADDRESS: &str = "10.78.1.11";
const CORE: &str = "10.78.1.100";
const VOICE: &str = "10.78.1.101";
/// The client zones of the lab: name and subnet number (10.78.N.0/24, client 10.78.N.10).
const ZONES: [(&str, u8); 3] = [("agents", 2), ("admins", 3), ("carrier", 4)];
/// How long the listener may take to print `ready:`, and a probe or a stop to finish.
const READY_WITHIN: Duration = Duration::from_secs(10);
const PROBE_WITHIN: Duration = Duration::from_secs(20);
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// The deployment: `client_port` sets `connection-server.client-port` (else its default),
/// `prompts` the MRS prompt area (2 ports per prompt); the recording area stays small too.
fn deployment(client_port: Option<u16>, prompts: u32) -> String {
    let client_port = client_port
        .map(|p| format!("\"connection-server.client-port\" = {p}\n"))
        .unwrap_or_default();
    format!(
        r#"# netns_live lab: every address lives inside the test's own namespaces.
name = "netns live lab"

[zones.datacenter]
cidrs = ["10.78.1.0/24"]
roles = ["servers"]

[zones.agents]
cidrs = ["10.78.2.0/24"]
roles = ["clients"]

[zones.admins]
cidrs = ["10.78.3.0/24"]
roles = ["admins"]

[zones.carrier]
cidrs = ["10.78.4.0/24"]
roles = ["trunk"]

[nodes.{NODE}]
address = "{NODE_ADDRESS}"
zone = "datacenter"

[units.CORE]
address = "{CORE}"
packages = ["agent-server", "connection-server"]
instances = ["{NODE}"]

[units.CORE.variables]
{client_port}
[units.VOICE]
address = "{VOICE}"
packages = ["sip-bridge", "media-routing-server"]
instances = ["{NODE}"]

[units.VOICE.variables]
"media-routing-server.max-simultaneous-prompts" = {prompts}
"media-routing-server.max-simultaneous-recordings" = 10
"#
    )
}

// ---------------------------------------------------------------------------------------------
// Processes: bounded runs, and a listener that is always killed.

/// Reads a pipe to its end on a thread of its own.
fn collect(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = r.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` at most `limit`; kills it (and returns None) past that.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `scc-ports ARGS` inside `ns` (or on the host when None), bounded: (exit code, stdout, stderr).
fn scc(ns: Option<&Netns>, args: &[&str], limit: Duration) -> (i32, String, String) {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns.name(), BIN]);
            c
        }
        None => Command::new(BIN),
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start scc-ports");
    let out = collect(child.stdout.take().expect("piped"));
    let err = collect(child.stderr.take().expect("piped"));
    let status = wait_bounded(&mut child, limit);
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    let Some(status) = status else {
        panic!("scc-ports {args:?} did not finish within {limit:?}\n{out}\n{err}");
    };
    (status.code().unwrap_or(-1), out, err)
}

/// `scc-ports listen` in the server namespace; killed when dropped.
struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every stdout line so far.
    out: Vec<String>,
    stderr: PathBuf,
}

impl Listener {
    fn start(ns: &Netns, file: &Path, secret: &Path, stderr: PathBuf) -> Listener {
        Listener::start_with(ns, file, secret, stderr, &[])
    }

    fn start_with(
        ns: &Netns,
        file: &Path,
        secret: &Path,
        stderr: PathBuf,
        extra: &[&str],
    ) -> Listener {
        let mut args = vec!["--node", NODE];
        args.extend_from_slice(extra);
        Listener::start_as(ns, file, secret, stderr, &args)
    }

    /// `listen FILE ARGS` (ARGS name the host: `--node NAME` or `--workstations ZONE`).
    fn start_as(
        ns: &Netns,
        file: &Path,
        secret: &Path,
        stderr: PathBuf,
        args: &[&str],
    ) -> Listener {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns.name(), BIN, "listen"])
            .arg(file)
            .arg("--secret-file")
            .arg(secret)
            .args(["--duration", "30s"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(&stderr).expect("stderr file"),
            ))
            .spawn()
            .expect("start scc-ports listen");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Listener {
            child,
            lines,
            out: Vec::new(),
            stderr,
        }
    }

    fn context(&self) -> String {
        format!(
            "listener stdout:\n{}\nlistener stderr:\n{}",
            self.out.join("\n"),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Waits (bounded) for the `ready:` line; returns the lines before it and the line itself.
    fn ready(&mut self) -> (Vec<String>, String) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("ready:");
                    self.out.push(line.clone());
                    if done {
                        let before = self.out[..self.out.len() - 1].to_vec();
                        return (before, line);
                    }
                }
                Err(e) => panic!("no `ready:` line ({e:?})\n{}", self.context()),
            }
        }
    }

    /// Ctrl-C (SIGINT), then waits (bounded) for the exit; returns it and every stdout line.
    fn stop(&mut self) -> (ExitStatus, Vec<String>) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill with a pid this test started and has not reaped yet.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let Some(status) = wait_bounded(&mut self.child, STOP_WITHIN) else {
            panic!("listener ignored SIGINT\n{}", self.context());
        };
        // The reader thread ends at the end of the pipe.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.out.push(line);
        }
        (status, self.out.clone())
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The lab.

struct Lab {
    dir: tempfile::TempDir,
    router: Netns,
    server: Netns,
    /// (zone, namespace)
    clients: Vec<(&'static str, Netns)>,
}

impl Lab {
    /// The router, the server, and a client namespace for each of `zones`.
    fn new(zones: &[&str]) -> Lab {
        let router = Netns::new().expect("router namespace");
        let server = Netns::new().expect("server namespace");
        let (_, eth) = netns::link_named(&router, "10.78.1.1/24", &server, "10.78.1.11/24")
            .expect("link server");
        for a in [CORE, VOICE] {
            server
                .ip(&["addr", "add", &format!("{a}/24"), "dev", &eth])
                .expect("unit address");
        }
        server
            .ip(&["route", "add", "10.78.0.0/16", "via", "10.78.1.1"])
            .expect("server route");
        let mut clients = Vec::new();
        for &(zone, n) in ZONES.iter().filter(|(z, _)| zones.contains(z)) {
            let ns = Netns::new().expect("client namespace");
            netns::link(
                &router,
                &format!("10.78.{n}.1/24"),
                &ns,
                &format!("10.78.{n}.10/24"),
            )
            .expect("link client");
            ns.ip(&[
                "route",
                "add",
                "10.78.0.0/16",
                "via",
                &format!("10.78.{n}.1"),
            ])
            .expect("client route");
            clients.push((zone, ns));
        }
        // Forwarding only inside the router namespace (the sysctl is per namespace).
        router
            .run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
            .expect("enable forwarding in the router namespace");
        Lab {
            dir: tempfile::tempdir().expect("temp dir"),
            router,
            server,
            clients,
        }
    }

    fn client(&self, zone: &str) -> &Netns {
        &self
            .clients
            .iter()
            .find(|(z, _)| *z == zone)
            .expect("client zone in the lab")
            .1
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write lab file");
        p
    }

    fn secret(&self) -> PathBuf {
        self.write("secret", "netns live secret\n")
    }

    fn listen(&self, file: &Path) -> Listener {
        Listener::start(
            &self.server,
            file,
            &self.secret(),
            self.dir.path().join("listen.stderr"),
        )
    }

    /// `scc-ports probe FILE --from ZONE --format json` in the zone's namespace.
    fn probe(&self, file: &Path, zone: &str) -> Probe {
        let secret = self.secret();
        let args = [
            "probe",
            path(file),
            "--from",
            zone,
            "--secret-file",
            path(&secret),
            "--format",
            "json",
        ];
        let (code, out, err) = scc(Some(self.client(zone)), &args, PROBE_WITHIN);
        let json: Value = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("probe from {zone}: not JSON ({e}): {out}\n{err}"));
        Probe {
            zone: zone.to_owned(),
            code,
            json,
            stderr: err,
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// `scc-ports firewall FILE --target nftables ARGS` (pure; runs on the host).
fn firewall(file: &Path, args: &[&str]) -> String {
    let mut all = vec!["firewall", path(file), "--target", "nftables"];
    all.extend_from_slice(args);
    let (code, out, err) = scc(None, &all, PROBE_WITHIN);
    assert_eq!(code, 0, "scc-ports {all:?}: {err}");
    out
}

/// One planned port as the probe reports it.
type Port = (IpAddr, String, u16);

/// Every (address, transport, port) that a prober in `zone` must reach, expanded from
/// `scc-ports flows --from ZONE --format json` (another path through the plan than the probe's).
fn planned_from(file: &Path, zone: &str) -> BTreeSet<Port> {
    let (code, out, err) = scc(
        None,
        &["flows", path(file), "--from", zone, "--format", "json"],
        PROBE_WITHIN,
    );
    assert_eq!(code, 0, "flows: {err}");
    let v: Value = serde_json::from_str(&out).expect("flows JSON");
    let mut set = BTreeSet::new();
    for f in v["flows"].as_array().expect("flows array") {
        if f["workstations"].as_bool() == Some(true) {
            continue;
        }
        let transport = f["transport"].as_str().expect("transport").to_owned();
        let (first, last) = (
            f["ports"]["first"].as_u64().expect("first"),
            f["ports"]["last"].as_u64().expect("last"),
        );
        let parity = f["ports"]["parity"].as_str();
        for d in f["destination"].as_array().expect("destination") {
            let net: ipnet::IpNet = d.as_str().expect("CIDR").parse().expect("CIDR");
            assert_eq!(
                net.prefix_len(),
                net.max_prefix_len(),
                "a node address: {d}"
            );
            for p in first..=last {
                let keep = match parity {
                    Some("even") => p % 2 == 0,
                    Some("odd") => p % 2 == 1,
                    _ => true,
                };
                if keep {
                    set.insert((net.addr(), transport.clone(), p as u16));
                }
            }
        }
    }
    set
}

struct Probe {
    zone: String,
    code: i32,
    json: Value,
    stderr: String,
}

impl Probe {
    /// Status per port; panics on a port reported twice.
    fn statuses(&self) -> BTreeMap<Port, String> {
        let results = self.json["results"].as_array().expect("results");
        let mut map = BTreeMap::new();
        for r in results {
            let key = (
                r["address"].as_str().expect("address").parse().expect("IP"),
                r["transport"].as_str().expect("transport").to_owned(),
                u16::try_from(r["port"].as_u64().expect("port")).expect("u16"),
            );
            let status = r["status"].as_str().expect("status").to_owned();
            if status == "verified" {
                assert!(r["rtt_ms"].as_f64().is_some(), "verified without rtt: {r}");
            }
            assert!(map.insert(key, status).is_none(), "reported twice: {r}");
        }
        map
    }

    fn summary(&self, status: &str) -> u64 {
        self.json["summary"][status]
            .as_u64()
            .expect("summary count")
    }

    /// Every planned port of the zone reported, each with the status `expected` gives it
    /// (default `verified`), and the summary agreeing.
    fn assert_statuses(&self, planned: &BTreeSet<Port>, expected: &BTreeMap<Port, &str>) {
        let got = self.statuses();
        let keys: BTreeSet<Port> = got.keys().cloned().collect();
        assert_eq!(
            &keys, planned,
            "from {}: the probe's ports are not the planned flows",
            self.zone
        );
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut wrong = Vec::new();
        for (port, status) in &got {
            let want = expected.get(port).copied().unwrap_or("verified");
            *counts.entry(want).or_default() += 1;
            if status != want {
                wrong.push(format!("{port:?}: {status}, expected {want}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "from {}:\n{}\n{}",
            self.zone,
            wrong.join("\n"),
            self.stderr
        );
        for s in ["verified", "open", "closed", "filtered", "error"] {
            assert_eq!(
                self.summary(s),
                counts.get(s).copied().unwrap_or(0),
                "from {}: summary {s}",
                self.zone
            );
        }
    }
}

/// What a plain TCP connect from `ns` to `addr` gives within half a second.
fn connect_from(ns: &Netns, addr: SocketAddr) -> std::io::Result<()> {
    ns.run(move || TcpStream::connect_timeout(&addr, Duration::from_millis(500)).map(drop))
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

/// The number in the listener's final "answered N probes" line.
fn answered(lines: &[String]) -> u64 {
    let line = lines
        .iter()
        .find(|l| l.starts_with("answered "))
        .unwrap_or_else(|| panic!("no summary line:\n{}", lines.join("\n")));
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the count: {line}"))
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// The host firewall generated for the node, loaded on the server: every flow from the agents,
/// carrier and admins zones is verified (exit 0), and the rules really drop the rest.
#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn allowed_zones_verify_every_flow() {
    if !netns::available("allowed_zones_verify_every_flow") {
        return;
    }
    let lab = Lab::new(&["agents", "admins", "carrier"]);
    let file = lab.write("deployment.toml", &deployment(Some(21102), 20));
    lab.server
        .nft(&firewall(&file, &["--node", NODE]))
        .expect("load the node's rules");

    let mut listener = lab.listen(&file);
    let (before, ready) = listener.ready();
    assert!(
        before.is_empty(),
        "unexpected lines before ready: {before:?}"
    );
    assert!(ready.contains(", 0 failed;"), "{ready}");
    assert!(ready.contains(&format!("for node {NODE}")), "{ready}");

    let mut verified = 0;
    for zone in ["agents", "carrier", "admins"] {
        let planned = planned_from(&file, zone);
        assert!(!planned.is_empty(), "{zone} has flows");
        let probe = lab.probe(&file, zone);
        probe.assert_statuses(&planned, &BTreeMap::new());
        assert_eq!(probe.code, 0, "from {zone}: {}", probe.stderr);
        verified += planned.len() as u64;
    }

    // The rules are loaded and do drop: the carrier may not reach the agents' port (which the
    // listener holds, as the agents' probe verified).
    let blocked = connect_from(lab.client("carrier"), sock(CORE, 21102));
    assert_eq!(
        blocked.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::TimedOut),
        "carrier -> {CORE}:21102 must be dropped by the node's rules"
    );

    let (status, lines) = listener.stop();
    assert!(status.success(), "{status:?}\n{}", listener.context());
    assert!(answered(&lines) >= verified, "{lines:?}");
}

/// Rules generated from an older version of the deployment (the clients' port moved since, and
/// the prompt area grew): the new plan's extra ports are `filtered` from the agents' zone,
/// everything else verified, and the probe exits 1.
#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn stale_rules_leave_the_new_ports_filtered() {
    if !netns::available("stale_rules_leave_the_new_ports_filtered") {
        return;
    }
    let lab = Lab::new(&["agents"]);
    let old = lab.write("old.toml", &deployment(None, 20));
    let new = lab.write("new.toml", &deployment(Some(21102), 30));
    lab.server
        .nft(&firewall(&old, &["--node", NODE]))
        .expect("load the stale rules");

    // What the old rules do not admit from the agents' zone: computed from the two plans.
    let planned = planned_from(&new, "agents");
    let admitted = planned_from(&old, "agents");
    let missing: BTreeSet<Port> = planned.difference(&admitted).cloned().collect();
    // The computation sees both changes: the moved port and the 20 ports the prompt area grew.
    assert!(missing.contains(&(CORE.parse().unwrap(), "tcp".into(), 21102)));
    let grown: Vec<u16> = missing
        .iter()
        .filter(|(a, t, _)| *a == VOICE.parse::<IpAddr>().unwrap() && t == "udp")
        .map(|p| p.2)
        .collect();
    assert_eq!(grown, (8041..=8060).collect::<Vec<u16>>());
    assert_eq!(missing.len(), 21, "{missing:?}");

    let mut listener = lab.listen(&new);
    let (before, ready) = listener.ready();
    assert!(before.is_empty(), "{before:?}");
    assert!(ready.contains(", 0 failed;"), "{ready}");

    let probe = lab.probe(&new, "agents");
    let expected: BTreeMap<Port, &str> = missing.iter().map(|p| (p.clone(), "filtered")).collect();
    probe.assert_statuses(&planned, &expected);
    assert_eq!(probe.code, 1, "{}", probe.stderr);

    let (status, _) = listener.stop();
    assert!(status.success(), "{status:?}\n{}", listener.context());
}

/// Holds a TCP port in the namespace (this test process is the holder) and answers connections
/// with a banner that is not our token; counts them. Stops when dropped.
struct Holder {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU32>,
    handle: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Holder {
    fn start(ns: &Netns, addr: SocketAddr) -> Holder {
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU32::new(0));
        let (tx, rx) = mpsc::channel();
        let (flag, count) = (stop.clone(), accepted.clone());
        let handle = ns.spawn(move || {
            let l = match std::net::TcpListener::bind(addr).and_then(|l| {
                l.set_nonblocking(true)?;
                Ok(l)
            }) {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            // Bounded: the test stops it; the deadline only guards against a lost stop.
            let deadline = Instant::now() + Duration::from_secs(60);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                match l.accept() {
                    Ok((mut s, _)) => {
                        count.fetch_add(1, Ordering::SeqCst);
                        let _ = s.set_nonblocking(false);
                        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                        let mut buf = [0u8; 256];
                        let _ = s.read(&mut buf);
                        let _ = s.write_all(b"SSH-2.0-NotTheListener\r\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(())) => {}
            other => panic!("holder cannot bind {addr}: {other:?}"),
        }
        Holder {
            stop,
            accepted,
            handle: Some(handle),
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Another process holds a planned port: the listener names it (with the holder's pid) before
/// `ready:` and exits 1; the prober reports that port `open` (something answers, not our
/// token), verifies the rest, and exits 1.
#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn port_held_by_another_process_is_reported_open() {
    if !netns::available("port_held_by_another_process_is_reported_open") {
        return;
    }
    let lab = Lab::new(&["agents"]);
    let file = lab.write("deployment.toml", &deployment(Some(21102), 20));
    lab.server
        .nft(&firewall(&file, &["--node", NODE]))
        .expect("load the node's rules");
    let held = sock(CORE, 21102);
    let holder = Holder::start(&lab.server, held);

    let mut listener = lab.listen(&file);
    let (before, ready) = listener.ready();
    let prefix = format!(
        "cannot bind {CORE} tcp 21102 (connection-server.client-port): address in use (held by pid {}",
        std::process::id()
    );
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(
        before[0].starts_with(&prefix),
        "{:?}\nwant {prefix}",
        before[0]
    );
    assert!(ready.contains(", 1 failed;"), "{ready}");

    let planned = planned_from(&file, "agents");
    let key: Port = (held.ip(), "tcp".into(), held.port());
    assert!(planned.contains(&key));
    let probe = lab.probe(&file, "agents");
    probe.assert_statuses(&planned, &BTreeMap::from([(key, "open")]));
    assert_eq!(probe.code, 1, "{}", probe.stderr);
    assert!(
        holder.accepted.load(Ordering::SeqCst) >= 1,
        "the probe reached the holder"
    );

    let (status, _) = listener.stop();
    assert_eq!(status.code(), Some(1), "{}", listener.context());
    drop(holder);
}

/// `--network`: the rules between zones loaded on the router, no host firewall on the server;
/// agents and carrier verify every flow, and the router drops what the plan does not need.
#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn network_rules_on_the_router_pass_every_flow() {
    if !netns::available("network_rules_on_the_router_pass_every_flow") {
        return;
    }
    let lab = Lab::new(&["agents", "carrier"]);
    let file = lab.write("deployment.toml", &deployment(Some(21102), 20));
    lab.router
        .nft(&firewall(&file, &["--network"]))
        .expect("load the network rules on the router");

    let mut listener = lab.listen(&file);
    let (before, ready) = listener.ready();
    assert!(before.is_empty(), "{before:?}");
    assert!(ready.contains(", 0 failed;"), "{ready}");

    for zone in ["agents", "carrier"] {
        let planned = planned_from(&file, zone);
        let probe = lab.probe(&file, zone);
        probe.assert_statuses(&planned, &BTreeMap::new());
        assert_eq!(probe.code, 0, "from {zone}: {}", probe.stderr);
    }
    let blocked = connect_from(lab.client("carrier"), sock(CORE, 21102));
    assert_eq!(
        blocked.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::TimedOut),
        "carrier -> {CORE}:21102 must be dropped by the router"
    );

    let (status, _) = listener.stop();
    assert!(status.success(), "{status:?}\n{}", listener.context());
}

/// Scripts wait for `ready:` and may stop the listener at once: a Ctrl-C right after that line
/// must still end it cleanly (exit 0, its summary printed), never kill it.
#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn ctrl_c_right_after_ready_ends_the_listener_cleanly() {
    if !netns::available("ctrl_c_right_after_ready_ends_the_listener_cleanly") {
        return;
    }
    // A namespace of its own, the listener on its loopback: no lab needed.
    let ns = Netns::new().expect("namespace");
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("deployment.toml");
    std::fs::write(&file, deployment(Some(21102), 20)).expect("write");
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "netns live secret\n").expect("write");
    for round in 0..10 {
        let mut listener = Listener::start_with(
            &ns,
            &file,
            &secret,
            dir.path().join("listen.stderr"),
            &["--bind", "127.0.0.1"],
        );
        listener.ready();
        let (status, lines) = listener.stop();
        assert!(
            status.success(),
            "round {round}: {status:?}\n{}",
            listener.context()
        );
        assert_eq!(answered(&lines), 0, "round {round}: {lines:?}");
    }
}

/// Issue 22: `probe --unexpected` sweeps every node's address whatever the node plans. DB is a
/// mock node with no units (it plans nothing at all), SPARE a mock node whose only planned
/// ports are on unit VOICE's address, held by SRV; both have a stray listener. GHOST's address
/// has no route from the client: it cannot be swept, and that is said (exit 1), never passed
/// over as "nothing else open".
#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn the_sweep_covers_every_node_address_and_names_what_it_cannot() {
    const TEST: &str = "the_sweep_covers_every_node_address_and_names_what_it_cannot";
    if !netns::available(TEST) {
        return;
    }
    const DB: &str = "10.78.1.12";
    const SPARE: &str = "10.78.1.13";
    const GHOST: &str = "192.0.2.77";
    let lab = Lab::new(&["admins"]);
    let shown = Command::new("ip")
        .args([
            "-n",
            lab.server.name(),
            "-o",
            "-4",
            "addr",
            "show",
            "to",
            NODE_ADDRESS,
        ])
        .output()
        .expect("ip addr show");
    let shown = String::from_utf8_lossy(&shown.stdout);
    let eth = shown
        .split_whitespace()
        .nth(1)
        .expect("link name")
        .to_owned();
    for a in [DB, SPARE] {
        lab.server
            .ip(&["addr", "add", &format!("{a}/24"), "dev", &eth])
            .expect("node address");
    }
    let text = deployment(None, 20).replace(
        "instances = [\"SRV\"]\n\n[units.VOICE.variables]",
        "instances = [\"SRV\", \"SPARE\"]\n\n[units.VOICE.variables]",
    ) + &format!(
        "\n[nodes.DB]\naddress = \"{DB}\"\nzone = \"datacenter\"\nhac = false\n\
         \n[nodes.SPARE]\naddress = \"{SPARE}\"\nzone = \"datacenter\"\nhac = false\n\
         \n[nodes.GHOST]\naddress = \"{GHOST}\"\nzone = \"datacenter\"\nhac = false\n"
    );
    let file = lab.write("deployment.toml", &text);
    let _db = Holder::start(&lab.server, sock(DB, 2222));
    let _spare = Holder::start(&lab.server, sock(SPARE, 3333));
    let secret = lab.secret();
    let sweep = |node: Option<&str>, format: &str| {
        let mut args = vec!["probe", path(&file), "--from", "admins"];
        if let Some(n) = node {
            args.extend(["--node", n]);
        }
        if node == Some("GHOST") {
            // The zone guard refuses a probe with no route to any target; --source vouches.
            args.extend(["--source", "10.78.3.10"]);
        }
        args.extend(["--secret-file", path(&secret), "--unexpected"]);
        args.extend(["--format", format]);
        scc(Some(lab.client("admins")), &args, Duration::from_secs(120))
    };
    let by_address = |json: &Value| -> BTreeMap<String, Value> {
        json["sweep"]["addresses"]
            .as_array()
            .expect("sweep addresses")
            .iter()
            .map(|a| (a["address"].as_str().unwrap().to_owned(), a.clone()))
            .collect()
    };
    let unexpected = |json: &Value| -> BTreeSet<(String, u64)> {
        json["unexpected"]
            .as_array()
            .expect("unexpected")
            .iter()
            .map(|u| {
                (
                    u["address"].as_str().unwrap().to_owned(),
                    u["port"].as_u64().unwrap(),
                )
            })
            .collect()
    };

    // A node that plans nothing: swept all the same, its stray found.
    let (code, out, err) = sweep(Some("DB"), "json");
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(json["results"].as_array().unwrap().len(), 0, "{out}");
    assert_eq!(json["swept"], true, "{out}");
    let swept = by_address(&json);
    assert_eq!(swept.keys().collect::<Vec<_>>(), [DB], "{out}");
    assert_eq!(swept[DB]["swept"], true);
    assert_eq!(swept[DB]["ports"], 65_535);
    assert_eq!(
        unexpected(&json),
        BTreeSet::from([(DB.to_owned(), 2222)]),
        "{out}"
    );

    // A node whose planned ports are all on a unit address held by SRV: its own address too.
    let (code, out, err) = sweep(Some("SPARE"), "json");
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(code, 1, "{out}\n{err}");
    let swept = by_address(&json);
    assert!(
        swept.contains_key(SPARE) && swept.contains_key(VOICE),
        "{out}"
    );
    assert!(swept.values().all(|a| a["swept"] == true), "{out}");
    assert_eq!(
        unexpected(&json),
        BTreeSet::from([(SPARE.to_owned(), 3333)]),
        "{out}"
    );

    // An address with no route: not swept, said, exit 1; "swept" false when nothing else was.
    let (code, out, err) = sweep(Some("GHOST"), "json");
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(json["swept"], false, "{out}");
    assert_eq!(json["sweep"]["inconclusive"], true, "{out}");
    assert_eq!(json["sweep"]["not_swept"], 1, "{out}");
    let ghost = &by_address(&json)[GHOST];
    assert_eq!(ghost["swept"], false, "{out}");
    assert!(
        ghost["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("network unreachable")),
        "{out}"
    );
    let (code, out, _) = sweep(Some("GHOST"), "table");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("sweep {GHOST} not swept: network unreachable")),
        "{out}"
    );
    assert!(
        out.contains("sweep inconclusive (0 ports unanswered, 1 address not swept)"),
        "{out}"
    );

    // The whole zone at once: every node and unit address in one sweep.
    let (code, out, err) = sweep(None, "table");
    assert_eq!(code, 1, "{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("swept "))
        .unwrap_or_else(|| panic!("no `swept` line: {out}"));
    for a in [NODE_ADDRESS, CORE, VOICE, DB, SPARE] {
        assert!(line.contains(a), "{a} not swept: {line}");
    }
    assert!(
        out.contains(&format!("unexpected: {DB} tcp 2222 accepts connections")),
        "{out}"
    );
    assert!(
        out.contains(&format!("unexpected: {SPARE} tcp 3333 accepts connections")),
        "{out}"
    );
    assert!(out.contains(&format!("sweep {GHOST} not swept")), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Workstations (issue 19): an agent PC's listener, probed from where the media comes from.

/// The agent PC of the lab: the agents' namespace (10.78.2.10).
const AGENT_PC: &str = "10.78.2.10";

/// `probe --from datacenter --to-workstation AGENT_PC` in the server namespace: the prober runs
/// where the media comes from.
fn probe_workstation(lab: &Lab, file: &Path) -> Probe {
    probe_workstation_with(lab, file, &[])
}

/// As [`probe_workstation`], with more arguments (`--unexpected`).
fn probe_workstation_with(lab: &Lab, file: &Path, more: &[&str]) -> Probe {
    let secret = lab.secret();
    let mut args = vec![
        "probe",
        path(file),
        "--from",
        "datacenter",
        "--to-workstation",
        AGENT_PC,
        "--secret-file",
        path(&secret),
        "--timeout",
        "200ms",
        "--format",
        "json",
    ];
    args.extend_from_slice(more);
    let (code, out, err) = scc(Some(&lab.server), &args, PROBE_WITHIN);
    let json: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("probe to the workstation: not JSON ({e}): {out}\n{err}"));
    Probe {
        zone: "datacenter".to_owned(),
        code,
        json,
        stderr: err,
    }
}

/// The agent PC runs `listen --workstations agents` behind the generated `--workstations`
/// nftables policy; the server sends from the media unit's address (VOICE, the MRS unit), as MRS
/// does: every Communication Desktop port (5004-5031, RTP even, RTCP odd) is verified, the
/// packets came from VOICE (a counter in the PC's namespace), and with the rule for one port
/// taken out of the policy that port, and only it, is filtered.
#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn a_workstation_listener_verifies_every_media_port_from_the_mrs_unit() {
    if !netns::available("a_workstation_listener_verifies_every_media_port_from_the_mrs_unit") {
        return;
    }
    let lab = Lab::new(&["agents"]);
    let file = lab.write("deployment.toml", &deployment(None, 20));
    let pc = lab.client("agents");
    pc.nft(&firewall(&file, &["--workstations"]))
        .expect("load the workstations' rules");
    // Counts what reaches the PC's media ports from the MRS unit's address, before the policy.
    pc.nft(&format!(
        "table inet scc_test {{\n chain c {{\n  type filter hook input priority -10; policy accept;\n  \
         ip saddr {VOICE} udp dport 5004-5031 counter\n }}\n}}\n"
    ))
    .expect("load the counter");
    // The media leaves the server from the MRS unit's address.
    lab.server
        .ip(&[
            "route",
            "replace",
            "10.78.0.0/16",
            "via",
            "10.78.1.1",
            "src",
            VOICE,
        ])
        .expect("media route from the unit's address");

    let mut listener = Listener::start_as(
        pc,
        &file,
        &lab.secret(),
        lab.dir.path().join("listen-pc.stderr"),
        &["--workstations", "agents"],
    );
    let (before, ready) = listener.ready();
    assert!(before.is_empty(), "{before:?}");
    assert!(
        ready.starts_with(
            "ready: 28 of 28 ports bound on 0.0.0.0 for workstations of zone agents, 0 failed;"
        ),
        "{ready}"
    );

    let planned: BTreeSet<Port> = (5004..=5031)
        .map(|p| (AGENT_PC.parse().unwrap(), "udp".to_owned(), p))
        .collect();
    let probe = probe_workstation(&lab, &file);
    probe.assert_statuses(&planned, &BTreeMap::new());
    assert_eq!(probe.code, 0, "{}", probe.stderr);
    let counted = pc.exec(&["nft", "list", "table", "inet", "scc_test"], None);
    let packets: u64 = counted
        .split("packets ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter: {counted}"));
    assert!(packets >= 28, "from {VOICE}: {packets} packets\n{counted}");

    // One rule less: port 5010 is no longer admitted from the servers' zone.
    pc.exec(
        &["nft", "-f", "-"],
        Some(
            "delete element inet scc_ports servers_udp_v4 { 10.78.2.0/24 . 5004-5031 }\n\
             add element inet scc_ports servers_udp_v4 { 10.78.2.0/24 . 5004-5009, 10.78.2.0/24 . 5011-5031 }\n",
        ),
    );
    let probe = probe_workstation(&lab, &file);
    let one: BTreeMap<Port, &str> = BTreeMap::from([(
        (AGENT_PC.parse().unwrap(), "udp".to_owned(), 5010),
        "filtered",
    )]);
    probe.assert_statuses(&planned, &one);
    assert_eq!(probe.code, 1, "{}", probe.stderr);

    // --unexpected sweeps the PC's address, not the nodes': a service the PC's admins opened
    // (RDP, 3389) is found there, and no node address is swept.
    pc.accept_tcp(3389);
    let _rdp = Holder::start(pc, format!("{AGENT_PC}:3389").parse().unwrap());
    let swept = probe_workstation_with(&lab, &file, &["--unexpected"]);
    assert_eq!(
        swept.json["sweep"]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["address"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        [AGENT_PC],
        "{}",
        swept.json["sweep"]
    );
    let found: Vec<(String, u64)> = (swept.json["unexpected"].as_array().unwrap().iter())
        .map(|u| {
            (
                u["address"].as_str().unwrap().to_owned(),
                u["port"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, [(AGENT_PC.to_owned(), 3389)], "{}", swept.json);
    assert_eq!(swept.code, 1, "{}", swept.stderr);

    let (status, lines) = listener.stop();
    assert!(status.success(), "{status:?}\n{}", listener.context());
    assert!(answered(&lines) >= 28 + 27, "{lines:?}");
}
