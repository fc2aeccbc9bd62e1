//! The prober: sends token probes to planned ports, classifies each, and sweeps for unplanned
//! TCP ports that accept.
//!
//! Timeouts adapt per destination address: until a round trip is measured a probe may wait the
//! full `timeout`; after that, waiting probes are woken with a shorter deadline derived from the
//! measured round trips (as nmap does). Every probe asks again (a fresh connect, a fresh
//! datagram) each time that deadline passes unanswered, up to its number of attempts, so a lost
//! packet costs one round of waiting, not a false verdict; `filtered` means every attempt went
//! unanswered. The probes in flight form a window that grows with the answers (see [`Window`]).
//! A TCP port that looks `open` (connected, no token) is probed again alone before being
//! reported, so a connection between two of the prober's own sockets on loopback cannot pass
//! for a service.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, UdpSocket};
use tokio::sync::watch;
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
    /// Requests sent before the status was sure (TCP connects or UDP datagrams, each fresh).
    pub attempts: u32,
    /// Time until the status was known (connect or reply) on the attempt that answered;
    /// `None` for filtered and error.
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
    /// Probes of planned ports in flight at first; the window grows from here with the answers.
    pub initial_in_flight: usize,
    /// The most probes in flight the window may grow to (it also stays within the open-file
    /// limit).
    pub max_in_flight: usize,
    /// TCP connects per port at most (each a fresh socket), one adapted timeout apart.
    pub tcp_attempts: u32,
    /// UDP requests per port at most (each with a fresh nonce), one adapted timeout apart.
    pub udp_attempts: u32,
    /// Also sweep every TCP port of `sweep_ports` not planned on each destination address and
    /// on each of `sweep_addresses`.
    pub unexpected: bool,
    /// Addresses to sweep besides the targets' own: those the prober has no planned port on
    /// (a node that plans nothing for this zone, a node whose only planned ports are on unit
    /// addresses held elsewhere).
    pub sweep_addresses: Vec<IpAddr>,
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
            initial_in_flight: 512,
            max_in_flight: 16_384,
            // With 1% loss each way a TCP exchange is lost about 4% of the time: four tries
            // leave about 3 in a million, for a node's 1,626 ports about 1 run in 200.
            tcp_attempts: 4,
            udp_attempts: 4,
            unexpected: false,
            sweep_addresses: Vec::new(),
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

/// What the sweep of one destination address could tell.
///
/// A port is `unanswered` when no pass got an answer from it (accept, refusal or unreachable).
/// Passes after the first ask only the silent ports again, with a longer timeout; the sweep of
/// an address is `settled` when it has no silent port left or when a pass asked again and not
/// one port answered (what is left is consistently silent: dropped by a firewall, which is a
/// fine answer: nothing accepts there). It is inconclusive when answers still came in on the
/// last pass allowed (the path loses or delays too much to tell), when ports could not be
/// tried at all (local errors), or when the address could not be swept (`swept` false, with
/// the `reason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SweepSummary {
    pub address: IpAddr,
    /// Ports swept (every TCP port of the range not planned on the address).
    pub ports: u64,
    pub unanswered: u64,
    /// Ports not tried, for local reasons (out of descriptors or ephemeral ports).
    pub errors: u64,
    pub passes: u32,
    pub settled: bool,
    /// Whether anything was learned about the address; if not, `reason` says why.
    pub swept: bool,
    pub reason: Option<String>,
}

impl SweepSummary {
    pub fn conclusive(&self) -> bool {
        self.swept && self.settled && self.errors == 0
    }

    /// An address the sweep could not cover, and why.
    fn not_swept(address: IpAddr, ports: u64, reason: String) -> SweepSummary {
        SweepSummary {
            address,
            ports,
            unanswered: 0,
            errors: 0,
            passes: 0,
            settled: false,
            swept: false,
            reason: Some(reason),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ProbeReport {
    /// One per planned port, in the order of the targets.
    pub results: Vec<ProbeResult>,
    /// Unplanned TCP ports that accepted connections (only filled when sweeping).
    pub unexpected: Vec<(IpAddr, u16)>,
    /// Whether the unexpected-port sweep was asked for (see [`ProbeReport::swept`]).
    pub sweep_asked: bool,
    /// Sweep connections that failed locally (not counted as anything about the target).
    pub sweep_errors: u64,
    /// The sweep of each address it was asked to cover, swept or not (empty unless asked).
    pub sweep: Vec<SweepSummary>,
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

    /// Every planned port verified, nothing unexpected accepts, and the sweep (if it ran) is
    /// conclusive.
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.status == Status::Verified)
            && self.unexpected.is_empty()
            && !self.inconclusive()
    }

    /// Whether the sweep could not tell for some ports or addresses (see
    /// [`SweepSummary::conclusive`]); a sweep asked for over no address at all tells nothing.
    pub fn inconclusive(&self) -> bool {
        self.sweep.iter().any(|s| !s.conclusive()) || (self.sweep_asked && !self.swept())
    }

    /// Whether the sweep covered at least one address.
    pub fn swept(&self) -> bool {
        self.sweep.iter().any(|s| s.swept)
    }

    /// The addresses the sweep could not cover, with the reason.
    pub fn not_swept(&self) -> impl Iterator<Item = (IpAddr, &str)> {
        self.sweep
            .iter()
            .filter(|s| !s.swept)
            .map(|s| (s.address, s.reason.as_deref().unwrap_or("not swept")))
    }

    /// What makes the sweep inconclusive, in a few words: unanswered ports, addresses not swept.
    pub fn inconclusive_why(&self) -> String {
        let not_swept = self.not_swept().count();
        let mut why = vec![format!("{} ports unanswered", self.unanswered())];
        if not_swept > 0 {
            why.push(format!(
                "{not_swept} address{} not swept",
                if not_swept == 1 { "" } else { "es" }
            ));
        }
        if self.sweep_asked && self.sweep.is_empty() {
            why.push("no address to sweep".into());
        }
        why.join(", ")
    }

    /// Swept ports that never answered, over every address.
    pub fn unanswered(&self) -> u64 {
        self.sweep.iter().map(|s| s.unanswered).sum()
    }

    /// JUnit XML: one test case per planned port, plus one for the sweep when it ran.
    pub fn to_junit(&self) -> String {
        let s = self.summary();
        let failures = self.results.len() - s.verified
            + usize::from(!self.unexpected.is_empty() || self.inconclusive());
        let tests = self.results.len() + usize::from(self.sweep_asked);
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
        if self.sweep_asked {
            x += "    <testcase classname=\"unexpected\" name=\"no unplanned TCP port accepts\"";
            if self.unexpected.is_empty() && self.inconclusive() {
                x += &format!(
                    ">\n      <failure type=\"inconclusive\" message=\"{}\"/>\n    </testcase>\n",
                    xml_escape(&format!("inconclusive: {}", self.inconclusive_why()))
                );
            } else if self.unexpected.is_empty() {
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

impl ProbeReport {
    /// The sweep's part of the JSON: whether it is conclusive, and per address what it saw
    /// (or why it could not be swept).
    pub fn sweep_json(&self) -> serde_json::Value {
        serde_json::json!({
            "inconclusive": self.inconclusive(),
            "unanswered": self.unanswered(),
            "not_swept": self.not_swept().count(),
            "addresses": self.sweep,
        })
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
    /// `{"summary": {...}, "results": [...], "unexpected": [{"address","transport","port"}]}`,
    /// and when the sweep ran `"sweep": {"inconclusive", "unanswered", "addresses": [...]}`.
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("summary", &self.summary())?;
        m.serialize_entry("results", &self.results)?;
        m.serialize_entry("unexpected", &Unexpected(&self.unexpected))?;
        if self.sweep_asked {
            m.serialize_entry("sweep", &self.sweep_json())?;
        }
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
    pub attempts: u32,
}

impl Outcome {
    fn new(status: Status, rtt: Option<Duration>, detail: impl Into<String>) -> Outcome {
        Outcome {
            status,
            rtt,
            detail: Some(detail.into()),
            attempts: 1,
        }
    }

    fn verified(rtt: Duration) -> Outcome {
        Outcome {
            status: Status::Verified,
            rtt: Some(rtt),
            detail: None,
            attempts: 1,
        }
    }

    fn tried(mut self, attempts: u32) -> Outcome {
        self.attempts = attempts.max(1);
        self
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

/// `open` detail: the connection was accepted, then reset before any reply. Something accepted
/// it (a service, a full listener, a proxy), so the port is reachable: never `closed`.
pub const ACCEPTED_THEN_RESET: &str = "accepted, then reset without a reply";
/// `open` detail: the connection was accepted, then closed (FIN) before any reply; our own
/// listener does this to a request that does not verify (another secret).
pub const ACCEPTED_THEN_CLOSED: &str = "accepted, then closed without a reply";
/// `open` detail: connected, but nothing came back in time.
pub const CONNECTED_NO_REPLY: &str = "connected, but no reply to the token";

/// What a failed TCP connect says. A reset during connect means the handshake completed (a
/// refused SYN gives "refused"): the connection was accepted, then reset.
pub fn classify_connect_error(e: &io::Error) -> (Status, String) {
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
            (Status::Open, ACCEPTED_THEN_RESET.into())
        }
        _ => classify_error(e),
    }
}

/// The `open` detail for an error after the connection was accepted.
pub fn after_accept_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => ACCEPTED_THEN_RESET.into(),
        io::ErrorKind::UnexpectedEof => ACCEPTED_THEN_CLOSED.into(),
        _ => format!("connected, then {e}"),
    }
}

fn unspecified(addr: &SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    }
}

/// What one TCP attempt found.
enum TcpTry {
    /// A verdict no retry can change: our token, a refusal, a foreign answer, a local error.
    Sure(Outcome),
    /// Connected, then the session ended without our token (closed or reset): a lost segment
    /// or a busy listener can do that, so the probe asks again; `open` if every attempt ends so.
    Unsure(Outcome),
}

/// One connect-and-token exchange, without a timeout of its own: [`probe_tcp`] decides how long
/// to wait and when to ask again. Sets `connected` once the handshake completes.
async fn tcp_attempt(
    addr: SocketAddr,
    secret: &Secret,
    adaptive: &Adaptive,
    connected: &AtomicBool,
) -> TcpTry {
    let sock = match if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    } {
        Ok(s) => s,
        Err(e) => return TcpTry::Sure(Outcome::new(Status::Error, None, format!("socket: {e}"))),
    };
    // Close with a reset: a probe must not leave TIME_WAIT entries behind by the thousand.
    // (A zero linger never blocks on drop, unlike the nonzero ones tokio warns about.)
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    let start = Instant::now();
    let mut stream = match sock.connect(addr).await {
        Err(e) => {
            let (status, detail) = classify_connect_error(&e);
            if status == Status::Open {
                // Reset during the handshake: something accepted, then dropped us. A busy
                // listener can do that too, so ask again; `open` if every attempt ends so.
                adaptive.sample(start.elapsed());
                return TcpTry::Unsure(Outcome::new(status, Some(start.elapsed()), detail));
            }
            if status == Status::Closed {
                adaptive.sample(start.elapsed());
                return TcpTry::Sure(Outcome::new(status, Some(start.elapsed()), detail));
            }
            return TcpTry::Sure(Outcome::new(status, None, detail));
        }
        Ok(s) => s,
    };
    adaptive.sample(start.elapsed());
    connected.store(true, Ordering::Relaxed);
    if let (Ok(l), Ok(p)) = (stream.local_addr(), stream.peer_addr()) {
        if l == p {
            // Simultaneous open with itself: nothing listens there.
            return TcpTry::Sure(Outcome::new(
                Status::Closed,
                Some(start.elapsed()),
                "self-connect (nothing listening)",
            ));
        }
    }
    let connected_after = start.elapsed();
    let nonce: Nonce = match proto::new_nonce() {
        Ok(n) => n,
        Err(e) => {
            return TcpTry::Sure(Outcome::new(
                Status::Error,
                None,
                format!("random source: {e}"),
            ));
        }
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
    match exchange.await {
        Err(e) => TcpTry::Unsure(Outcome::new(
            Status::Open,
            Some(connected_after),
            after_accept_error(&e),
        )),
        Ok(bytes) if bytes.is_empty() => TcpTry::Unsure(Outcome::new(
            Status::Open,
            Some(connected_after),
            ACCEPTED_THEN_CLOSED,
        )),
        Ok(bytes) => match proto::decode_reply(secret, &bytes, &nonce, addr.port()) {
            Ok(_) => {
                adaptive.sample(sent.elapsed());
                TcpTry::Sure(Outcome::verified(start.elapsed()))
            }
            Err(e) => TcpTry::Sure(Outcome::new(
                Status::Open,
                Some(connected_after),
                format!("answer is not our token: {e}"),
            )),
        },
    }
}

type Attempt<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The first of `live` to finish (removed from the list); pending while the list is empty.
fn first_of<'a, 'b, T>(live: &'b mut Vec<Attempt<'a, T>>) -> impl Future<Output = T> + 'b {
    std::future::poll_fn(move |cx| {
        for i in 0..live.len() {
            if let Poll::Ready(v) = live[i].as_mut().poll(cx) {
                drop(live.remove(i));
                return Poll::Ready(v);
            }
        }
        Poll::Pending
    })
}

/// A TCP probe: a fresh connect each time the adapted timeout passes without a sure verdict, up
/// to `attempts`; the previous attempt stays alive beside the new one (the kernel may still
/// complete it by retransmitting), so a probe holds at most two sockets. `filtered` only when
/// no attempt got any answer.
async fn probe_tcp(
    addr: SocketAddr,
    secret: &Secret,
    adaptive: &Adaptive,
    attempts: u32,
) -> Outcome {
    let attempts = attempts.max(1);
    let connected = AtomicBool::new(false);
    let mut live: Vec<Attempt<'_, TcpTry>> = Vec::with_capacity(2);
    let mut sent = 0u32;
    let first = Instant::now();
    let mut last = first;
    let mut unsure: Option<Outcome> = None;
    let mut rx = adaptive.tx.subscribe();
    loop {
        let timeout = *rx.borrow_and_update();
        let due = adaptive.base(last) + timeout;
        let now = Instant::now();
        // A retry waits for the adapted timeout even after an attempt that ended at once
        // (accepted, then reset): a full listener frees room only as its idle sessions age, and
        // asking again at once would only be turned away again.
        if sent < attempts && (sent == 0 || now >= due) {
            if live.len() >= 2 {
                drop(live.remove(0));
            }
            live.push(Box::pin(tcp_attempt(addr, secret, adaptive, &connected)));
            sent += 1;
            last = now;
            continue;
        }
        if sent >= attempts && (live.is_empty() || now >= due) {
            let out = match unsure {
                Some(o) => o,
                None if connected.load(Ordering::Relaxed) => {
                    Outcome::new(Status::Open, None, CONNECTED_NO_REPLY)
                }
                None => Outcome::new(
                    Status::Filtered,
                    None,
                    format!(
                        "no answer to {sent} attempts in {} ms",
                        first.elapsed().as_millis()
                    ),
                ),
            };
            return out.tried(sent);
        }
        tokio::select! {
            biased;
            got = first_of(&mut live), if !live.is_empty() => match got {
                TcpTry::Sure(o) => return o.tried(sent),
                TcpTry::Unsure(o) => unsure = Some(o),
            },
            _ = sleep_until(due) => {}
            Ok(()) = rx.changed() => {}
        }
    }
}

/// A UDP probe: a fresh nonce each time the adapted timeout passes unanswered, up to `attempts`
/// requests; a reply to any of them verifies. `filtered` only when none was answered.
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
    // Each request's nonce and send time: a reply is timed from the request it answers.
    let mut sent: Vec<(Nonce, Instant)> = Vec::with_capacity(attempts as usize);
    let first = Instant::now();
    let mut rx = adaptive.tx.subscribe();
    let mut buf = [0u8; MAX_REPLY_LEN + 1];
    loop {
        let timeout = *rx.borrow_and_update();
        let due = sent
            .last()
            .map_or(first, |&(_, at)| adaptive.base(at) + timeout);
        let now = Instant::now();
        let tries = sent.len() as u32;
        if now >= due && tries < attempts {
            let nonce = match proto::new_nonce() {
                Ok(n) => n,
                Err(e) => {
                    return Outcome::new(Status::Error, None, format!("random source: {e}"))
                        .tried(tries);
                }
            };
            let req = proto::encode_request(secret, &nonce, addr.port());
            sent.push((nonce, now));
            if let Err(e) = sock.send(&req).await {
                let (status, detail) = classify_error(&e);
                let rtt = (status == Status::Closed).then(|| first.elapsed());
                return Outcome::new(status, rtt, detail).tried(tries + 1);
            }
            continue;
        }
        if now >= due {
            return Outcome::new(
                Status::Filtered,
                None,
                format!(
                    "no answer to {tries} attempts in {} ms",
                    first.elapsed().as_millis()
                ),
            )
            .tried(tries);
        }
        tokio::select! {
            biased;
            got = sock.recv(&mut buf) => match got {
                Ok(n) => {
                    let bytes = &buf[..n];
                    if let Some(&(_, at)) = sent.iter().find(|(nonce, _)| proto::decode_reply(secret, bytes, nonce, addr.port()).is_ok()) {
                        adaptive.sample(at.elapsed());
                        return Outcome::verified(at.elapsed()).tried(tries);
                    }
                    let why = sent
                        .first()
                        .and_then(|(nonce, _)| proto::decode_reply(secret, bytes, nonce, addr.port()).err())
                        .map_or_else(String::new, |e| e.to_string());
                    return Outcome::new(Status::Open, Some(first.elapsed()), format!("answer is not our token: {why}")).tried(tries);
                }
                Err(e) => {
                    let (status, detail) = classify_error(&e);
                    if status == Status::Closed {
                        let rtt = sent.last().map_or(first, |&(_, at)| at).elapsed();
                        adaptive.sample(rtt);
                        return Outcome::new(status, Some(rtt), detail).tried(tries);
                    }
                    return Outcome::new(status, None, detail).tried(tries);
                }
            },
            _ = sleep_until(due) => {}
            Ok(()) = rx.changed() => {}
        }
    }
}

/// Whether `address` is one of this host's own (only those can reach our own sockets).
fn is_local(address: IpAddr) -> bool {
    // Binding succeeds only on a local address; nothing is sent.
    address.is_loopback() || std::net::UdpSocket::bind(SocketAddr::new(address, 0)).is_ok()
}

/// Why `address` cannot be swept, if so: a connect scan reaches unicast addresses only.
fn unsweepable(address: IpAddr) -> Option<&'static str> {
    let broadcast = matches!(address, IpAddr::V4(a) if a.is_broadcast());
    if address.is_unspecified() {
        Some("the unspecified address is no host to connect to")
    } else if address.is_multicast() || broadcast {
        Some("a multicast or broadcast address: TCP connects only to one host")
    } else {
        None
    }
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

/// The probes in flight, as a window that grows with the path (bandwidth times delay, found the
/// way TCP's slow start finds it): every answered probe widens it by one, so it doubles each
/// round trip while answers keep coming; every attempt that had to be repeated narrows it by
/// one. It stays between its initial size and its cap (the open-file budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    size: usize,
    floor: usize,
    cap: usize,
    peak: usize,
}

impl Window {
    pub fn new(initial: usize, cap: usize) -> Window {
        let cap = cap.max(1);
        let size = initial.clamp(1, cap);
        Window {
            size,
            floor: size,
            cap,
            peak: size,
        }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The largest the window has been.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// A probe finished after `attempts` attempts; `answered` when something answered it.
    pub fn finished(&mut self, attempts: u32, answered: bool) {
        let repeats = attempts.saturating_sub(1) as usize;
        self.size = self.size.saturating_sub(repeats).max(self.floor);
        if answered {
            self.size = (self.size + 1).min(self.cap);
        }
        self.peak = self.peak.max(self.size);
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
    // A TCP probe holds up to two sockets (its current attempt and the one before).
    let mut window = Window::new(
        opts.initial_in_flight,
        opts.max_in_flight.clamp(1, (fd_budget / 2).max(1)),
    );

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
    // Every address the sweep covers: the targets' and the extra ones, each once, in order.
    let mut not_swept: Vec<SweepSummary> = Vec::new();
    let mut sweep_addresses: Vec<IpAddr> = Vec::new();
    if opts.unexpected {
        let mut seen = std::collections::HashSet::new();
        for a in keys
            .iter()
            .map(|k| k.address)
            .chain(opts.sweep_addresses.iter().copied())
        {
            if !seen.insert(a) {
                continue;
            }
            match unsweepable(a) {
                Some(why) => not_swept.push(SweepSummary::not_swept(a, 0, why.into())),
                None => sweep_addresses.push(a),
            }
        }
    }
    let mut adaptive: BTreeMap<IpAddr, Arc<Adaptive>> = BTreeMap::new();
    for a in keys
        .iter()
        .map(|k| k.address)
        .chain(sweep_addresses.iter().copied())
    {
        adaptive
            .entry(a)
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
    let mut planned_tcp: HashMap<IpAddr, std::collections::HashSet<u16>> = HashMap::new();
    for k in keys.iter().filter(|k| k.transport == Transport::Tcp) {
        planned_tcp.entry(k.address).or_default().insert(k.port);
    }
    let sweep_plan: Vec<(IpAddr, Vec<u16>)> = sweep_addresses
        .iter()
        .map(|&a| {
            let planned = planned_tcp.get(&a);
            let ports = opts
                .sweep_ports
                .clone()
                .filter(|p| *p != 0 && !planned.is_some_and(|s| s.contains(p)))
                .collect();
            (a, ports)
        })
        .collect();
    let total = keys.len() as u64 + sweep_plan.iter().map(|(_, p)| p.len() as u64).sum::<u64>();
    let mut done = 0u64;
    progress(0, total);

    let secret = Arc::new(secret.clone());
    let mut tasks = JoinSet::new();
    let mut outcomes: Vec<Option<Outcome>> = vec![None; keys.len()];
    let mut next = 0;
    // Each probe may use every attempt, one timeout each, before its verdict.
    let attempts = opts.tcp_attempts.max(opts.udp_attempts).max(1);
    let deadline = started
        + total_deadline(
            opts.timeout.saturating_mul(attempts),
            keys.len(),
            opts.initial_in_flight,
        );
    // The planned ports get all but the confirmation budget (see `total_deadline`).
    let main_deadline = deadline - opts.timeout.saturating_mul(2);
    let mut past_deadline = false;
    // Windows probes from one WSAPoll loop (windows_probe.rs says why); the loop below then
    // has nothing left to do.
    #[cfg(windows)]
    {
        outcomes = windows_probe::probe_all(&keys, &secret, &opts, window.size(), &mut || {
            done += 1;
            progress(done, total);
        });
        next += keys.len();
    }
    while next < keys.len() || !tasks.is_empty() {
        // Spawn only while the window has room, so thousands of ports cost a window of sockets.
        while next < keys.len() && tasks.len() < window.size() {
            let key = keys[next];
            let (secret, ad) = (secret.clone(), adaptive[&key.address].clone());
            let (tcp_attempts, udp_attempts) = (opts.tcp_attempts, opts.udp_attempts);
            tasks.spawn(async move {
                let addr = SocketAddr::new(key.address, key.port);
                let out = match key.transport {
                    Transport::Tcp => probe_tcp(addr, &secret, &ad, tcp_attempts).await,
                    Transport::Udp => probe_udp(addr, &secret, &ad, udp_attempts).await,
                };
                (next, out)
            });
            next += 1;
        }
        // A panicked probe leaves its outcome empty and is reported as an error below.
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok((i, out))) => {
                    window.finished(out.attempts, out.rtt.is_some());
                    outcomes[i] = Some(out);
                    done += 1;
                    progress(done, total);
                }
                Some(Err(_)) => {
                    done += 1;
                    progress(done, total);
                }
                None => {}
            },
            _ = sleep_until(main_deadline) => {
                past_deadline = true;
                break;
            }
        }
    }
    if past_deadline {
        tasks.abort_all();
        settle_past_deadline(&mut outcomes, next, deadline - started);
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
            let again = tokio::time::timeout_at(
                deadline,
                probe_tcp(
                    SocketAddr::new(k.address, k.port),
                    &secret,
                    &adaptive[&k.address],
                    opts.tcp_attempts,
                ),
            )
            .await;
            // Past the deadline the first outcome stands.
            match again {
                Ok(again) => outcomes[i] = Some(again),
                Err(_) => break,
            }
        }
    }

    let mut unexpected = Vec::new();
    let mut sweep_errors = 0;
    let mut sweep_discarded = 0;
    let mut sweep = Vec::new();
    let threads = if opts.sweep_threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.sweep_threads
    };
    let sweep_window = opts.sweep_in_flight.clamp(threads, fd_budget.max(threads));
    if !sweep_plan.is_empty() {
        // One timeout for the whole sweep: the slowest address's.
        let timeout = sweep_plan
            .iter()
            .map(|(a, _)| adaptive[a].current())
            .max()
            .unwrap_or(opts.timeout);
        let counts: Vec<(IpAddr, u64)> = sweep_plan
            .iter()
            .map(|(a, p)| (*a, p.len() as u64))
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let plan = sweep_plan;
        let worker = std::thread::Builder::new()
            .name("scc-sweep".into())
            .spawn(move || {
                super::sweep::sweep(&plan, &is_local, timeout, sweep_window, threads, &|n| {
                    let _ = tx.send(n);
                })
            });
        let outs = match worker {
            Ok(worker) => {
                while let Some(n) = rx.recv().await {
                    done += n;
                    progress(done, total);
                }
                worker.join().ok()
            }
            Err(_) => None,
        };
        match outs {
            Some(outs) => {
                for ((address, ports), out) in counts.into_iter().zip(outs) {
                    unexpected.extend(out.accepted.iter().map(|&p| (address, p)));
                    sweep_errors += out.errors;
                    sweep_discarded += out.discarded;
                    sweep.push(SweepSummary {
                        address,
                        ports,
                        unanswered: out.unanswered,
                        errors: out.errors,
                        passes: out.passes,
                        settled: out.settled,
                        swept: out.not_swept.is_none(),
                        reason: out.not_swept,
                    });
                }
            }
            None => {
                // The sweep thread could not start or panicked: nothing is known.
                for (address, ports) in counts {
                    sweep_errors += ports;
                    sweep.push(SweepSummary {
                        errors: ports,
                        ..SweepSummary::not_swept(
                            address,
                            ports,
                            "the sweep thread could not start or failed".into(),
                        )
                    });
                }
            }
        }
    }

    sweep.extend(not_swept);

    let results = rows
        .into_iter()
        .map(|(key, ep)| {
            let o = outcomes[index[&key]]
                .clone()
                .unwrap_or_else(|| Outcome::new(Status::Error, None, "probe task failed"));
            ProbeResult {
                address: key.address,
                transport: key.transport,
                port: key.port,
                component: ep.component.clone(),
                port_id: ep.port_id.clone(),
                status: o.status,
                attempts: o.attempts,
                rtt_ms: o.rtt.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
                detail: o.detail,
            }
        })
        .collect();
    ProbeReport {
        results,
        unexpected,
        sweep_asked: opts.unexpected,
        sweep_errors,
        sweep_discarded,
        sweep,
        elapsed: started.elapsed(),
    }
}

/// How long a probe run (its planned ports; the `--unexpected` sweep comes after) may take.
///
/// A TCP probe waits at most `timeout` for the connection and `timeout` for the reply, and
/// `in_flight` probes run at once, so the planned ports get `2 × timeout` per wave of
/// `in_flight` probes, plus a fixed 10 s for scheduling on a loaded machine; confirming `open`
/// ports on a local address gets a further `2 × timeout`. Probes still waiting at the deadline
/// are `filtered` ("no answer before the run's deadline"), probes never started are `error`.
pub fn total_deadline(timeout: Duration, probes: usize, in_flight: usize) -> Duration {
    let waves = probes.div_ceil(in_flight.max(1)).max(1);
    let waves = u32::try_from(waves).unwrap_or(u32::MAX);
    timeout
        .saturating_mul(2)
        .saturating_mul(waves)
        .saturating_add(timeout.saturating_mul(2))
        .saturating_add(Duration::from_secs(10))
}

/// Outcomes of the probes the deadline cut: started ones waited and got nothing, the rest were
/// never sent.
fn settle_past_deadline(outcomes: &mut [Option<Outcome>], started: usize, deadline: Duration) {
    for (i, o) in outcomes.iter_mut().enumerate() {
        if o.is_none() {
            *o = Some(if i < started {
                Outcome::new(
                    Status::Filtered,
                    None,
                    format!(
                        "no answer before the run's deadline ({} s)",
                        deadline.as_secs()
                    ),
                )
            } else {
                Outcome::new(
                    Status::Error,
                    None,
                    format!(
                        "not probed: the run's deadline ({} s) passed",
                        deadline.as_secs()
                    ),
                )
            });
        }
    }
}

impl ProbeReport {
    /// Every TCP port accepted the connection, yet nothing (TCP or UDP) returned our token:
    /// our listener closes on a request that does not verify, so the prober's and the
    /// listener's secrets probably differ.
    pub fn secrets_probably_differ(&self) -> bool {
        let mut tcp = self
            .results
            .iter()
            .filter(|r| r.transport == Transport::Tcp)
            .peekable();
        tcp.peek().is_some()
            && tcp.all(|r| r.status == Status::Open)
            && self.results.iter().all(|r| r.status != Status::Verified)
    }
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

    fn swept(settled: bool, errors: u64, unanswered: u64) -> ProbeReport {
        ProbeReport {
            results: vec![ProbeResult {
                address: "10.1.0.11".parse().unwrap(),
                transport: Transport::Tcp,
                port: 22,
                component: "c".into(),
                port_id: "p".into(),
                status: Status::Verified,
                attempts: 2,
                rtt_ms: Some(80.0),
                detail: None,
            }],
            sweep_asked: true,
            sweep: vec![SweepSummary {
                address: "10.1.0.11".parse().unwrap(),
                ports: 65_534,
                unanswered,
                errors,
                passes: 5,
                settled,
                swept: true,
                reason: None,
            }],
            ..ProbeReport::default()
        }
    }

    #[test]
    fn an_unsettled_sweep_or_local_errors_are_inconclusive_and_fail() {
        let clean = swept(true, 0, 0);
        assert!(!clean.inconclusive() && clean.passed());
        // Consistently silent ports (a firewall) settle: not a failure.
        let filtered = swept(true, 0, 65_534);
        assert!(!filtered.inconclusive() && filtered.passed());
        assert_eq!(filtered.unanswered(), 65_534);
        for r in [swept(false, 0, 3), swept(true, 12, 0)] {
            assert!(r.inconclusive() && !r.passed());
            let x = r.to_junit();
            assert!(x.contains("failure type=\"inconclusive\""), "{x}");
            let json = serde_json::to_value(&r).unwrap();
            assert_eq!(json["sweep"]["inconclusive"], true);
            assert_eq!(json["sweep"]["addresses"][0]["passes"], 5);
            assert_eq!(json["results"][0]["attempts"], 2);
        }
        assert_eq!(
            serde_json::to_value(swept(false, 0, 3)).unwrap()["sweep"]["unanswered"],
            3
        );
    }

    #[test]
    fn an_address_not_swept_or_a_sweep_over_nothing_fails_and_says_why() {
        let mut r = swept(true, 0, 0);
        r.sweep.push(SweepSummary::not_swept(
            "10.1.0.12".parse().unwrap(),
            65_535,
            "network unreachable: 65535 of 65535 ports had no route from this host".into(),
        ));
        assert!(r.swept() && r.inconclusive() && !r.passed());
        assert_eq!(
            r.not_swept().collect::<Vec<_>>(),
            vec![(
                "10.1.0.12".parse().unwrap(),
                "network unreachable: 65535 of 65535 ports had no route from this host"
            )]
        );
        assert_eq!(
            r.inconclusive_why(),
            "0 ports unanswered, 1 address not swept"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["sweep"]["not_swept"], 1);
        assert_eq!(json["sweep"]["addresses"][0]["swept"], true);
        assert_eq!(json["sweep"]["addresses"][1]["swept"], false);
        assert!(
            json["sweep"]["addresses"][1]["reason"]
                .as_str()
                .unwrap()
                .starts_with("network unreachable")
        );
        assert!(
            r.to_junit()
                .contains("inconclusive: 0 ports unanswered, 1 address not swept")
        );
        // Asked for, over no address at all: never a clean pass.
        let nothing = ProbeReport {
            sweep_asked: true,
            ..ProbeReport::default()
        };
        assert!(!nothing.swept() && nothing.inconclusive() && !nothing.passed());
        assert_eq!(
            nothing.inconclusive_why(),
            "0 ports unanswered, no address to sweep"
        );
        assert!(unsweepable("0.0.0.0".parse().unwrap()).is_some());
        assert!(unsweepable("224.0.0.1".parse().unwrap()).is_some());
        assert!(unsweepable("255.255.255.255".parse().unwrap()).is_some());
        assert!(unsweepable("ff02::1".parse().unwrap()).is_some());
        assert!(unsweepable("10.1.0.11".parse().unwrap()).is_none());
    }

    #[test]
    fn window_grows_per_answer_shrinks_per_retry_within_its_bounds() {
        let mut w = Window::new(512, 2_000);
        assert_eq!(w.size(), 512);
        for _ in 0..600 {
            w.finished(1, true);
        }
        assert_eq!(w.size(), 1_112);
        // A probe that needed 4 attempts: three repeats off, one answer on.
        w.finished(4, true);
        assert_eq!(w.size(), 1_110);
        for _ in 0..5_000 {
            w.finished(1, true);
        }
        assert_eq!(w.size(), 2_000, "never past the open-file budget");
        for _ in 0..5_000 {
            w.finished(4, false);
        }
        assert_eq!(w.size(), 512, "never below where it started");
        assert_eq!(w.peak(), 2_000);
        assert_eq!(Window::new(512, 100).size(), 100);
    }

    #[test]
    fn a_reset_after_the_handshake_is_open_not_closed() {
        let c = |k| classify_connect_error(&io::Error::from(k));
        assert_eq!(c(io::ErrorKind::ConnectionReset).0, Status::Open);
        assert_eq!(c(io::ErrorKind::ConnectionReset).1, ACCEPTED_THEN_RESET);
        assert_eq!(c(io::ErrorKind::ConnectionRefused).0, Status::Closed);
        let a = |k| after_accept_error(&io::Error::from(k));
        assert_eq!(a(io::ErrorKind::ConnectionReset), ACCEPTED_THEN_RESET);
        assert_eq!(a(io::ErrorKind::BrokenPipe), ACCEPTED_THEN_RESET);
        assert_eq!(a(io::ErrorKind::UnexpectedEof), ACCEPTED_THEN_CLOSED);
    }

    #[test]
    fn the_total_deadline_grows_with_waves_not_with_open_ports() {
        let t = Duration::from_secs(60);
        assert_eq!(total_deadline(t, 1, 512), Duration::from_secs(250));
        assert_eq!(total_deadline(t, 512, 512), Duration::from_secs(250));
        assert_eq!(total_deadline(t, 1602, 512), Duration::from_secs(610));
        assert_eq!(
            total_deadline(Duration::from_millis(500), 61, 512),
            Duration::from_secs(12)
        );
        assert_eq!(total_deadline(t, 0, 0), Duration::from_secs(250));
        let mut o = vec![None, Some(Outcome::new(Status::Open, None, "x")), None];
        settle_past_deadline(&mut o, 2, Duration::from_secs(12));
        assert_eq!(o[0].as_ref().unwrap().status, Status::Filtered);
        assert_eq!(o[1].as_ref().unwrap().status, Status::Open);
        assert_eq!(o[2].as_ref().unwrap().status, Status::Error);
    }

    #[test]
    fn secrets_differ_when_every_tcp_port_connects_and_nothing_verifies() {
        let row = |transport, status| ProbeResult {
            address: "127.0.0.1".parse().unwrap(),
            transport,
            port: 1,
            component: "c".into(),
            port_id: "p".into(),
            status,
            attempts: 1,
            rtt_ms: None,
            detail: None,
        };
        let report = |rows| ProbeReport {
            results: rows,
            ..ProbeReport::default()
        };
        use Transport::{Tcp, Udp};
        assert!(
            report(vec![row(Tcp, Status::Open), row(Udp, Status::Filtered)])
                .secrets_probably_differ()
        );
        assert!(
            !report(vec![row(Tcp, Status::Open), row(Tcp, Status::Closed)])
                .secrets_probably_differ()
        );
        assert!(
            !report(vec![row(Tcp, Status::Open), row(Udp, Status::Verified)])
                .secrets_probably_differ()
        );
        assert!(!report(vec![row(Udp, Status::Filtered)]).secrets_probably_differ());
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
                attempts: 4,
                rtt_ms: None,
                detail: Some("no \"answer\"\u{1}".into()),
            }],
            unexpected: vec![("127.0.0.1".parse().unwrap(), 22)],
            sweep_asked: true,
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
