//! The prober: sends token probes to planned ports, classifies each, and sweeps for unplanned
//! TCP ports that accept.
//!
//! Timeouts adapt per destination address: until a round trip is measured a probe may wait the
//! full `timeout`; after that, waiting probes are woken with a shorter deadline derived from the
//! measured round trips (as nmap does). A TCP port that looks `open` (connected, no token) is
//! probed again alone before being reported, so a connection between two of the prober's own
//! sockets on loopback cannot pass for a service.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use super::proto::{self, MAX_REPLY_LEN, Nonce};
use super::{Endpoint, Secret};
use crate::catalog::Transport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Our token came back.
    Verified,
    /// Something answers (TCP connected, or a UDP reply) but not with our token.
    Open,
    /// Refused, or ICMP unreachable.
    Closed,
    /// No answer in time.
    Filtered,
    /// The probe itself failed (local error).
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Open => "open",
            Status::Closed => "closed",
            Status::Filtered => "filtered",
            Status::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    pub address: IpAddr,
    pub transport: Transport,
    pub port: u16,
    pub component: String,
    pub port_id: String,
    pub status: Status,
    /// Time until the status was known (connect or reply); `None` for filtered and error.
    pub rtt_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// The longest a probe waits for an answer (before any round trip is measured).
    pub timeout: Duration,
    /// The shortest a probe waits once timeouts adapt to measured round trips.
    pub min_timeout: Duration,
    /// Probes of planned ports in flight at once.
    pub max_in_flight: usize,
    /// UDP requests sent per port (each with a fresh nonce), spread over the timeout.
    pub udp_attempts: u32,
    /// Also sweep every TCP port of `sweep_ports` not planned on each destination address.
    pub unexpected: bool,
    pub sweep_ports: RangeInclusive<u16>,
    /// Sweep connections in flight at once (across all sweep threads).
    pub sweep_in_flight: usize,
    /// Sweep threads; 0 = one per CPU.
    pub sweep_threads: usize,
}

impl Default for ProbeOptions {
    fn default() -> ProbeOptions {
        ProbeOptions {
            timeout: Duration::from_millis(500),
            // Twice nmap -T5's floor: a reply also waits for the listener to be scheduled.
            min_timeout: Duration::from_millis(100),
            max_in_flight: 512,
            udp_attempts: 2,
            unexpected: false,
            sweep_ports: 1..=65535,
            sweep_in_flight: 4096,
            sweep_threads: 0,
        }
    }
}

/// How many results have each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub verified: usize,
    pub open: usize,
    pub closed: usize,
    pub filtered: usize,
    pub error: usize,
}

#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    /// One per planned port, in the order of the targets.
    pub results: Vec<ProbeResult>,
    /// Unplanned TCP ports that accepted connections (only filled when sweeping).
    pub unexpected: Vec<(IpAddr, u16)>,
    /// Whether the unexpected-port sweep ran.
    pub swept: bool,
    /// Sweep connections that failed locally (not counted as anything about the target).
    pub sweep_errors: u64,
    /// Sweep connections discarded as the prober's own doing: loopback self-connects, and
    /// connections that did not survive the lone re-check (two of its sockets paired up).
    pub sweep_discarded: u64,
    pub elapsed: Duration,
}

impl ProbeReport {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for r in &self.results {
            match r.status {
                Status::Verified => s.verified += 1,
                Status::Open => s.open += 1,
                Status::Closed => s.closed += 1,
                Status::Filtered => s.filtered += 1,
                Status::Error => s.error += 1,
            }
        }
        s
    }

    /// Every planned port verified and nothing unexpected accepts.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.status == Status::Verified) && self.unexpected.is_empty()
    }

    /// JUnit XML: one test case per planned port, plus one for the sweep when it ran.
    pub fn to_junit(&self) -> String {
        let s = self.summary();
        let failures = self.results.len() - s.verified + usize::from(!self.unexpected.is_empty());
        let tests = self.results.len() + usize::from(self.swept);
        let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        x += &format!(
            "<testsuites name=\"scc-ports probe\" tests=\"{tests}\" failures=\"{failures}\" time=\"{:.3}\">\n",
            self.elapsed.as_secs_f64()
        );
        x += &format!(
            "  <testsuite name=\"scc-ports probe\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">\n",
            self.elapsed.as_secs_f64()
        );
        for r in &self.results {
            let name = format!(
                "{} {}/{} {}",
                r.address,
                r.transport.as_str(),
                r.port,
                r.port_id
            );
            let time = r.rtt_ms.unwrap_or(0.0) / 1000.0;
            x += &format!(
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{time:.6}\"",
                xml_escape(&r.component),
                xml_escape(&name)
            );
            if r.status == Status::Verified {
                x += "/>\n";
            } else {
                let msg = match &r.detail {
                    Some(d) => format!("{}: {d}", r.status.as_str()),
                    None => r.status.as_str().to_owned(),
                };
                x += &format!(
                    ">\n      <failure type=\"{}\" message=\"{}\"/>\n    </testcase>\n",
                    r.status.as_str(),
                    xml_escape(&msg)
                );
            }
        }
        if self.swept {
            x += "    <testcase classname=\"unexpected\" name=\"no unplanned TCP port accepts\"";
            if self.unexpected.is_empty() {
                x += "/>\n";
            } else {
                let list: Vec<String> = self
                    .unexpected
                    .iter()
                    .map(|(a, p)| SocketAddr::new(*a, *p).to_string())
                    .collect();
                x += &format!(
                    ">\n      <failure type=\"unexpected\" message=\"{}\"/>\n    </testcase>\n",
                    xml_escape(&format!("accepting: {}", list.join(" ")))
                );
            }
        }
        x += "  </testsuite>\n</testsuites>\n";
        x
    }
}

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 cannot carry most control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

struct Unexpected<'a>(&'a [(IpAddr, u16)]);

impl Serialize for Unexpected<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        struct One(IpAddr, u16);
        impl Serialize for One {
            fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                let mut s = ser.serialize_struct("Unexpected", 3)?;
                s.serialize_field("address", &self.0)?;
                s.serialize_field("transport", &Transport::Tcp)?;
                s.serialize_field("port", &self.1)?;
                s.end()
            }
        }
        ser.collect_seq(self.0.iter().map(|&(a, p)| One(a, p)))
    }
}

impl Serialize for ProbeReport {
    /// `{"summary": {...}, "results": [...], "unexpected": [{"address","transport","port"}]}`.
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(3))?;
        m.serialize_entry("summary", &self.summary())?;
        m.serialize_entry("results", &self.results)?;
        m.serialize_entry("unexpected", &Unexpected(&self.unexpected))?;
        m.end()
    }
}

/// Round-trip statistics of one destination address (RFC 6298 style) and the timeout they give.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttEstimator {
    srtt: f64,
    rttvar: f64,
    max: f64,
    samples: u32,
}

impl Default for RttEstimator {
    fn default() -> Self {
        RttEstimator::new()
    }
}

impl RttEstimator {
    pub fn new() -> RttEstimator {
        RttEstimator {
            srtt: 0.0,
            rttvar: 0.0,
            max: 0.0,
            samples: 0,
        }
    }

    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64();
        if self.samples == 0 {
            self.srtt = r;
            self.rttvar = r / 2.0;
        } else {
            self.rttvar = 0.75 * self.rttvar + 0.25 * (self.srtt - r).abs();
            self.srtt = 0.875 * self.srtt + 0.125 * r;
        }
        self.max = self.max.max(r);
        self.samples = self.samples.saturating_add(1);
    }

    /// `ceiling` until a sample exists; then the larger of srtt + 4·rttvar and twice the slowest
    /// answer seen (answers queue behind each other at a busy listener), within the bounds.
    pub fn timeout(&self, floor: Duration, ceiling: Duration) -> Duration {
        if self.samples == 0 {
            return ceiling;
        }
        let t = (self.srtt + 4.0 * self.rttvar).max(2.0 * self.max);
        Duration::from_secs_f64(t).clamp(floor.min(ceiling), ceiling)
    }
}

/// The shared, self-publishing timeout of one destination address.
///
/// A probe gives up `timeout` after the later of its own start and the address's last answer:
/// while a busy listener is still answering earlier probes, later ones are queued behind them,
/// not lost. Shrinking the timeout wakes waiting probes (watch channel); the last-answer time
/// only ever extends deadlines, so it is read lazily when a deadline fires.
struct Adaptive {
    est: Mutex<(RttEstimator, Option<Instant>)>,
    tx: watch::Sender<Duration>,
    floor: Duration,
    ceiling: Duration,
}

impl Adaptive {
    fn new(floor: Duration, ceiling: Duration) -> Adaptive {
        Adaptive {
            est: Mutex::new((RttEstimator::new(), None)),
            tx: watch::Sender::new(ceiling),
            floor,
            ceiling,
        }
    }

    fn sample(&self, rtt: Duration) {
        let t = {
            let mut e = self.est.lock().unwrap_or_else(|e| e.into_inner());
            e.0.sample(rtt);
            e.1 = Some(Instant::now());
            e.0.timeout(self.floor, self.ceiling)
        };
        // Wake the waiting probes only on a real change: each wake-up costs every waiter a poll.
        let cur = *self.tx.borrow();
        if t.as_secs_f64() < cur.as_secs_f64() * 0.9 || t.as_secs_f64() > cur.as_secs_f64() * 1.1 {
            self.tx.send_replace(t);
        }
    }

    fn current(&self) -> Duration {
        *self.tx.borrow()
    }

    /// Where the waiting of a probe started at `start` counts from.
    fn base(&self, start: Instant) -> Instant {
        let last = self.est.lock().unwrap_or_else(|e| e.into_inner()).1;
        last.map_or(start, |l| l.max(start))
    }
}

/// Runs `fut` until it completes or the address's current timeout passes (see [`Adaptive`]).
async fn within<F: Future>(fut: F, start: Instant, adaptive: &Adaptive) -> Option<F::Output> {
    let mut rx = adaptive.tx.subscribe();
    tokio::pin!(fut);
    loop {
        let deadline = adaptive.base(start) + *rx.borrow_and_update();
        tokio::select! {
            // An answer and the deadline due together: the answer wins.
            biased;
            out = &mut fut => return Some(out),
            _ = sleep_until(deadline) => {
                if Instant::now() >= adaptive.base(start) + *rx.borrow() {
                    return None;
                }
            }
            Ok(()) = rx.changed() => {}
        }
    }
}

/// A probe's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub rtt: Option<Duration>,
    pub detail: Option<String>,
}

impl Outcome {
    fn new(status: Status, rtt: Option<Duration>, detail: impl Into<String>) -> Outcome {
        Outcome {
            status,
            rtt,
            detail: Some(detail.into()),
        }
    }
}

/// What a failed connect or receive says about the port.
pub fn classify_error(e: &io::Error) -> (Status, String) {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => (Status::Closed, "refused".into()),
        io::ErrorKind::HostUnreachable => (Status::Closed, "host unreachable".into()),
        io::ErrorKind::NetworkUnreachable => (Status::Closed, "network unreachable".into()),
        io::ErrorKind::ConnectionReset => (Status::Closed, "reset".into()),
        io::ErrorKind::PermissionDenied => (
            Status::Error,
            "not permitted locally (a local firewall?)".into(),
        ),
        _ => (Status::Error, e.to_string()),
    }
}

fn unspecified(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

async fn probe_tcp(addr: SocketAddr, secret: &Secret, adaptive: &Adaptive) -> Outcome {
    let sock = match if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    } {
        Ok(s) => s,
        Err(e) => return Outcome::new(Status::Error, None, format!("socket: {e}")),
    };
    // Close with a reset: a probe must not leave TIME_WAIT entries behind by the thousand.
    // (A zero linger never blocks on drop, unlike the nonzero ones tokio warns about.)
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    let start = Instant::now();
    let mut stream = match within(sock.connect(addr), start, adaptive).await {
        None => {
            return Outcome::new(
                Status::Filtered,
                None,
                format!("no answer within {} ms", adaptive.current().as_millis()),
            );
        }
        Some(Err(e)) => {
            let (status, detail) = classify_error(&e);
            if status == Status::Closed {
                adaptive.sample(start.elapsed());
                return Outcome::new(status, Some(start.elapsed()), detail);
            }
            return Outcome::new(status, None, detail);
        }
        Some(Ok(s)) => s,
    };
    adaptive.sample(start.elapsed());
    if let (Ok(l), Ok(p)) = (stream.local_addr(), stream.peer_addr()) {
        if l == p {
            // Simultaneous open with itself: nothing listens there.
            return Outcome::new(
                Status::Closed,
                Some(start.elapsed()),
                "self-connect (nothing listening)",
            );
        }
    }
    let nonce: Nonce = match proto::new_nonce() {
        Ok(n) => n,
        Err(e) => return Outcome::new(Status::Error, None, format!("random source: {e}")),
    };
    let request = proto::encode_request(secret, &nonce, addr.port());
    let sent = Instant::now();
    let exchange = async {
        stream.write_all(&request).await?;
        let mut buf = [0u8; MAX_REPLY_LEN];
        let mut got = 0;
        loop {
            let want = proto::reply_len(&buf[..got])
                .unwrap_or(MAX_REPLY_LEN)
                .min(MAX_REPLY_LEN);
            if got >= want {
                break;
            }
            let n = stream.read(&mut buf[got..want]).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        Ok::<_, io::Error>(buf[..got].to_vec())
    };
    let connected = start.elapsed();
    match within(exchange, sent, adaptive).await {
        None => Outcome::new(
            Status::Open,
            Some(connected),
            "connected, but no reply to the token",
        ),
        Some(Err(e)) => Outcome::new(
            Status::Open,
            Some(connected),
            format!("connected, then {e}"),
        ),
        Some(Ok(bytes)) if bytes.is_empty() => Outcome::new(
            Status::Open,
            Some(connected),
            "connected, but closed without a reply",
        ),
        Some(Ok(bytes)) => match proto::decode_reply(secret, &bytes, &nonce, addr.port()) {
            Ok(_) => {
                adaptive.sample(sent.elapsed());
                Outcome {
                    status: Status::Verified,
                    rtt: Some(start.elapsed()),
                    detail: None,
                }
            }
            Err(e) => Outcome::new(
                Status::Open,
                Some(connected),
                format!("answer is not our token: {e}"),
            ),
        },
    }
}

async fn probe_udp(
    addr: SocketAddr,
    secret: &Secret,
    adaptive: &Adaptive,
    attempts: u32,
) -> Outcome {
    let sock = match UdpSocket::bind(unspecified(&addr)).await {
        Ok(s) => s,
        Err(e) => return Outcome::new(Status::Error, None, format!("socket: {e}")),
    };
    // Connected, so an ICMP port unreachable comes back as ECONNREFUSED.
    if let Err(e) = sock.connect(addr).await {
        let (status, detail) = classify_error(&e);
        return Outcome::new(status, None, detail);
    }
    let attempts = attempts.max(1);
    let mut nonces: Vec<Nonce> = Vec::with_capacity(attempts as usize);
    let start = Instant::now();
    let mut rx = adaptive.tx.subscribe();
    let mut buf = [0u8; MAX_REPLY_LEN + 1];
    loop {
        let timeout = *rx.borrow_and_update();
        let base = adaptive.base(start);
        // Attempt i goes out at i/attempts of the timeout; fresh nonces, as the listener
        // refuses replays.
        let due = base + timeout.mul_f64(nonces.len() as f64 / f64::from(attempts));
        if nonces.len() < attempts as usize && Instant::now() >= due {
            let nonce = match proto::new_nonce() {
                Ok(n) => n,
                Err(e) => return Outcome::new(Status::Error, None, format!("random source: {e}")),
            };
            let req = proto::encode_request(secret, &nonce, addr.port());
            nonces.push(nonce);
            if let Err(e) = sock.send(&req).await {
                let (status, detail) = classify_error(&e);
                let rtt = (status == Status::Closed).then(|| start.elapsed());
                return Outcome::new(status, rtt, detail);
            }
            continue;
        }
        let deadline = base + timeout;
        let next = if nonces.len() < attempts as usize {
            due.min(deadline)
        } else {
            deadline
        };
        if Instant::now() >= deadline {
            return Outcome::new(
                Status::Filtered,
                None,
                format!("no answer within {} ms", timeout.as_millis()),
            );
        }
        tokio::select! {
            biased;
            got = sock.recv(&mut buf) => match got {
                Ok(n) => {
                    let bytes = &buf[..n];
                    if nonces.iter().any(|nonce| proto::decode_reply(secret, bytes, nonce, addr.port()).is_ok()) {
                        adaptive.sample(start.elapsed());
                        return Outcome { status: Status::Verified, rtt: Some(start.elapsed()), detail: None };
                    }
                    let why = nonces
                        .first()
                        .and_then(|nonce| proto::decode_reply(secret, bytes, nonce, addr.port()).err())
                        .map_or_else(String::new, |e| e.to_string());
                    return Outcome::new(Status::Open, Some(start.elapsed()), format!("answer is not our token: {why}"));
                }
                Err(e) => {
                    let (status, detail) = classify_error(&e);
                    if status == Status::Closed {
                        adaptive.sample(start.elapsed());
                        return Outcome::new(status, Some(start.elapsed()), detail);
                    }
                    return Outcome::new(status, None, detail);
                }
            },
            _ = sleep_until(next) => {}
            Ok(()) = rx.changed() => {}
        }
    }
}

/// Whether `address` is one of this host's own (only those can reach our own sockets).
fn is_local(address: IpAddr) -> bool {
    // Binding succeeds only on a local address; nothing is sent.
    address.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(address, 0)).is_ok()
}

/// Ports the round-trip pings try (the first two the plan does not use): tcpmux, the top
/// port and echo, which almost never run on a contact-center node.
const PING_PORTS: [u16; 3] = [1, 65535, 7];

/// Connects once to measure the round trip; any answer (accept or reset) is a sample.
async fn rtt_ping(addr: SocketAddr, adaptive: &Adaptive) {
    let Ok(sock) = (if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }) else {
        return;
    };
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    let start = Instant::now();
    match within(sock.connect(addr), start, adaptive).await {
        Some(Ok(_)) => adaptive.sample(start.elapsed()),
        Some(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
            adaptive.sample(start.elapsed())
        }
        _ => {}
    }
}

#[cfg(windows)]
#[path = "windows_probe.rs"]
mod windows_probe;

/// A distinct thing to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    address: IpAddr,
    transport: Transport,
    port: u16,
}

/// Probes every port of `targets` and, with `opts.unexpected`, sweeps the other TCP ports of
/// each destination address. `progress(done, total)` is called as probes finish.
///
/// Must be called within a tokio runtime.
pub async fn run(
    targets: &[Endpoint],
    secret: &Secret,
    opts: ProbeOptions,
    progress: impl Fn(u64, u64),
) -> ProbeReport {
    let started = Instant::now();
    let nofile = super::raise_nofile_limit().unwrap_or(1024);
    // Leave room for the process's other descriptors (and a listener in the same process).
    let fd_budget = usize::try_from(nofile)
        .unwrap_or(usize::MAX)
        .saturating_sub(256)
        .max(16);
    let in_flight = opts.max_in_flight.clamp(1, fd_budget);

    let mut keys: Vec<Key> = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut rows: Vec<(Key, &Endpoint)> = Vec::new();
    for ep in targets {
        for port in ep.ports.ports() {
            let key = Key {
                address: ep.address,
                transport: ep.transport,
                port,
            };
            index.entry(key).or_insert_with(|| {
                keys.push(key);
                keys.len() - 1
            });
            rows.push((key, ep));
        }
    }
    let mut adaptive: BTreeMap<IpAddr, Arc<Adaptive>> = BTreeMap::new();
    for k in &keys {
        adaptive
            .entry(k.address)
            .or_insert_with(|| Arc::new(Adaptive::new(opts.min_timeout, opts.timeout)));
    }
    // Round-trip pings: a connect to an unplanned port usually meets a reset at once, which
    // measures the path even when every planned port of the address is dropped (nmap gets the
    // same from its host discovery).
    let mut pings = JoinSet::new();
    for (&address, ad) in &adaptive {
        let planned = |p: &u16| {
            keys.iter()
                .any(|k| k.address == address && k.transport == Transport::Tcp && k.port == *p)
        };
        for port in PING_PORTS.into_iter().filter(|p| !planned(p)).take(2) {
            let ad = ad.clone();
            pings.spawn(async move { rtt_ping(SocketAddr::new(address, port), &ad).await });
        }
    }
    let sweep_plan: Vec<(IpAddr, Vec<u16>)> = if opts.unexpected {
        adaptive
            .keys()
            .map(|&a| {
                let planned: std::collections::HashSet<u16> = keys
                    .iter()
                    .filter(|k| k.address == a && k.transport == Transport::Tcp)
                    .map(|k| k.port)
                    .collect();
                let ports = opts
                    .sweep_ports
                    .clone()
                    .filter(|p| *p != 0 && !planned.contains(p))
                    .collect();
                (a, ports)
            })
            .collect()
    } else {
        Vec::new()
    };
    let total = keys.len() as u64 + sweep_plan.iter().map(|(_, p)| p.len() as u64).sum::<u64>();
    let mut done = 0u64;
    progress(0, total);

    let secret = Arc::new(secret.clone());
    let limit = Arc::new(Semaphore::new(in_flight));
    let mut tasks = JoinSet::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; keys.len()];
    let mut next = 0;
    // Windows probes from one WSAPoll loop (windows_probe.rs says why); the loop below then
    // has nothing left to do.
    #[cfg(windows)]
    {
        outcomes = windows_probe::probe_all(&keys, &secret, &opts, in_flight, &mut || {
            done += 1;
            progress(done, total);
        });
        next += keys.len();
    }
    while next < keys.len() || !tasks.is_empty() {
        // Spawn only as permits free up, so thousands of ports cost `in_flight` sockets at most.
        while next < keys.len() {
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                break;
            };
            let key = keys[next];
            let (secret, ad) = (secret.clone(), adaptive[&key.address].clone());
            let attempts = opts.udp_attempts;
            tasks.spawn(async move {
                let addr = SocketAddr::new(key.address, key.port);
                let out = match key.transport {
                    Transport::Tcp => probe_tcp(addr, &secret, &ad).await,
                    Transport::Udp => probe_udp(addr, &secret, &ad, attempts).await,
                };
                drop(permit);
                (next, out)
            });
            next += 1;
        }
        // A panicked probe leaves its outcome empty and is reported as an error below.
        if let Some(Ok((i, out))) = tasks.join_next().await {
            outcomes[i] = Some(out);
            done += 1;
            progress(done, total);
        }
    }

    pings.abort_all();

    // Confirm each "open" TCP port of a local address alone: with no other probe socket of
    // ours alive, a connection can only be a real listener (or a self-connect, which probe_tcp
    // catches). A remote address cannot connect to our own sockets.
    let mut local: HashMap<IpAddr, bool> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        if k.transport == Transport::Tcp
            && outcomes[i]
                .as_ref()
                .is_some_and(|o| o.status == Status::Open)
            && *local
                .entry(k.address)
                .or_insert_with(|| is_local(k.address))
        {
            let again = probe_tcp(
                SocketAddr::new(k.address, k.port),
                &secret,
                &adaptive[&k.address],
            )
            .await;
            outcomes[i] = Some(again);
        }
    }

    let mut unexpected = Vec::new();
    let mut sweep_errors = 0;
    let mut sweep_discarded = 0;
    let swept = opts.unexpected;
    let threads = if opts.sweep_threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.sweep_threads
    };
    let sweep_window = opts.sweep_in_flight.clamp(threads, fd_budget.max(threads));
    for (address, ports) in sweep_plan {
        let timeout = adaptive[&address].current();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let worker = std::thread::Builder::new()
            .name("scc-sweep".into())
            .spawn(move || {
                sweep_ports(address, &ports, timeout, sweep_window, threads, &|n| {
                    let _ = tx.send(n);
                })
            });
        let Ok(worker) = worker else {
            sweep_errors += 1;
            continue;
        };
        while let Some(n) = rx.recv().await {
            done += n;
            progress(done, total);
        }
        match worker.join() {
            Ok(out) => {
                unexpected.extend(out.accepted.into_iter().map(|p| (address, p)));
                sweep_errors += out.errors;
                sweep_discarded += out.discarded;
            }
            Err(_) => sweep_errors += 1,
        }
    }

    let results = rows
        .into_iter()
        .map(|(key, ep)| {
            let o = outcomes[index[&key]].clone().unwrap_or(Outcome {
                status: Status::Error,
                rtt: None,
                detail: Some("probe task failed".into()),
            });
            ProbeResult {
                address: key.address,
                transport: key.transport,
                port: key.port,
                component: ep.component.clone(),
                port_id: ep.port_id.clone(),
                status: o.status,
                rtt_ms: o.rtt.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
                detail: o.detail,
            }
        })
        .collect();
    ProbeReport {
        results,
        unexpected,
        swept,
        sweep_errors,
        sweep_discarded,
        elapsed: started.elapsed(),
    }
}

/// What a sweep of one address found.
#[derive(Debug, Default)]
pub(crate) struct SweepOutcome {
    pub accepted: Vec<u16>,
    pub errors: u64,
    /// Connections that were the sweep's own doing (self-connects, pairs of its sockets).
    pub discarded: u64,
}

#[cfg(target_os = "linux")]
fn sweep_ports(
    address: IpAddr,
    ports: &[u16],
    timeout: Duration,
    window: usize,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> SweepOutcome {
    super::sweep::sweep(address, ports, timeout, window, threads, progress)
}

/// Portable fallback: one blocking connect at a time per thread (slow, but correct).
#[cfg(not(target_os = "linux"))]
fn sweep_ports(
    address: IpAddr,
    ports: &[u16],
    timeout: Duration,
    _window: usize,
    _threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> SweepOutcome {
    let mut out = SweepOutcome::default();
    for &p in ports {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&SocketAddr::new(address, p), timeout) {
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            if s.local_addr().ok() != s.peer_addr().ok() {
                out.accepted.push(p);
            }
        }
        progress(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimator_uses_ceiling_until_measured_then_adapts() {
        let floor = Duration::from_millis(50);
        let ceil = Duration::from_millis(500);
        let mut e = RttEstimator::new();
        assert_eq!(e.timeout(floor, ceil), ceil);
        e.sample(Duration::from_micros(100));
        assert_eq!(e.timeout(floor, ceil), floor);
        e.sample(Duration::from_millis(40));
        assert_eq!(e.timeout(floor, ceil), Duration::from_millis(80));
        e.sample(Duration::from_secs(3));
        assert_eq!(e.timeout(floor, ceil), ceil);
    }

    #[test]
    fn errors_classify_as_the_design_says() {
        let c = |k| classify_error(&io::Error::from(k)).0;
        assert_eq!(c(io::ErrorKind::ConnectionRefused), Status::Closed);
        assert_eq!(c(io::ErrorKind::HostUnreachable), Status::Closed);
        assert_eq!(c(io::ErrorKind::PermissionDenied), Status::Error);
        assert_eq!(c(io::ErrorKind::OutOfMemory), Status::Error);
    }

    #[test]
    fn junit_escapes_and_counts() {
        let r = ProbeReport {
            results: vec![ProbeResult {
                address: "127.0.0.1".parse().unwrap(),
                transport: Transport::Tcp,
                port: 1,
                component: "a<b>".into(),
                port_id: "p&q".into(),
                status: Status::Filtered,
                rtt_ms: None,
                detail: Some("no \"answer\"\u{1}".into()),
            }],
            unexpected: vec![("127.0.0.1".parse().unwrap(), 22)],
            swept: true,
            ..ProbeReport::default()
        };
        let x = r.to_junit();
        assert!(x.contains("tests=\"2\" failures=\"2\""), "{x}");
        assert!(
            x.contains("a&lt;b&gt;") && x.contains("p&amp;q") && x.contains("&quot;answer&quot;?")
        );
        assert!(x.contains("127.0.0.1:22"));
        assert!(!r.passed());
    }
}
