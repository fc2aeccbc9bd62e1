//! The listener: binds every planned port of a node and answers authenticated probes on them.
//!
//! Sockets are bound synchronously (socket2), then handed to tokio: one task per TCP port, one
//! per UDP socket. Measured (bench/netbench.py): 1,602 UDP + 20 TCP ports bound and served in
//! about 50 ms on a loaded 2-core machine, so a task per socket is cheap enough. Every rule
//! that keeps the listener from being a reflector lives here: unauthenticated, malformed,
//! replayed or misdirected requests get no answer, a reply is never longer than its request,
//! TCP sessions are bounded and time out, and UDP replies are rate limited per source address.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use super::proto::{self, ProtoError, REQUEST_LEN, ReplayCache};
use super::{Endpoint, Secret, sysinfo};
use crate::catalog::Transport;

// Windows serves the same sockets from a WSAPoll thread (net::windows explains why).
#[cfg(windows)]
#[path = "windows_listen.rs"]
mod windows_listen;

#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// TCP sessions held at once (all ports). Past it, a new connection evicts the oldest session
    /// that is still waiting for its request (see [`SessionTable`]); the table never holds more
    /// than twice this.
    pub max_tcp_sessions: usize,
    /// TCP sessions of one source address held at once; past it, a new connection from that
    /// source evicts that source's oldest waiting session, so one host cannot fill the table.
    pub max_tcp_sessions_per_source: usize,
    /// A waiting session younger than this is not evicted; new connections then go over the
    /// soft caps, up to twice them. A session whose request has arrived but was not read yet
    /// (a prober's burst to many ports is accepted before any session runs) is never evicted,
    /// whatever its age.
    pub evict_min_age: Duration,
    /// How long a new TCP session may stay silent before it is closed.
    pub first_byte_timeout: Duration,
    /// How long a TCP session may take to deliver its request (and take its reply).
    pub idle_timeout: Duration,
    /// UDP replies per second to one source address (a bucket of this many, refilled steadily).
    pub udp_replies_per_source_per_sec: u32,
    /// Source addresses tracked by the UDP rate limiter; past it, the least recently served
    /// source is forgotten (only authenticated, fresh requests reach the limiter).
    pub max_udp_sources: usize,
    /// Nonces remembered to refuse replays.
    pub replay_cache: usize,
    pub tcp_backlog: i32,
    /// Live events (requests failing authentication), at most one per `event_interval`.
    pub events: Option<EventSink>,
    pub event_interval: Duration,
}

/// Something a person watching the listener should know now, not only in the summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenEvent {
    /// A well-formed request whose MAC does not verify: most likely a prober with another
    /// secret. `more` failures (from any source) were not reported since the last event.
    AuthFailed {
        source: IpAddr,
        transport: Transport,
        port: u16,
        more: u64,
    },
}

/// Where [`ListenEvent`]s go (the CLI prints them).
#[derive(Clone)]
pub struct EventSink(pub Arc<dyn Fn(ListenEvent) + Send + Sync>);

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            max_tcp_sessions: 256,
            // A prober sends one connection per planned TCP port at once; a node has dozens.
            max_tcp_sessions_per_source: 128,
            // Room for a prober to write its request once connected (a loaded prober's task
            // may run late); the unread-data check covers the listener's own lateness.
            evict_min_age: Duration::from_millis(20),
            // A prober writes its request as soon as it is connected: the first byte arrives
            // with (or right after) the handshake's last ACK.
            first_byte_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(5),
            // One probe run sends a node's 1,602 MRS ports at once and retries some, and
            // scripts run probes back to back; replies are never larger than requests, so
            // this bounds work, not amplification.
            udp_replies_per_source_per_sec: 20_000,
            max_udp_sources: 4_096,
            replay_cache: 1 << 16,
            tcp_backlog: 1_024,
            events: None,
            event_interval: Duration::from_secs(1),
        }
    }
}

/// Why a port could not be bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindFailureKind {
    InUse,
    PermissionDenied,
    AddressNotAvailable,
    Other,
}

/// A planned port the listener could not bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindFailure {
    /// The address the bind was tried on (`bind_override` when given).
    pub address: IpAddr,
    pub transport: Transport,
    pub port: u16,
    pub component: String,
    pub port_id: String,
    pub kind: BindFailureKind,
    /// For people: "address in use (held by pid 123 nginx)", "permission denied", ...
    pub reason: String,
}

/// Requests that got no answer, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Wrong length (truncated or oversized), magic, version or kind.
    pub malformed: u64,
    /// Well formed but the MAC does not verify (wrong secret, altered bytes).
    pub unauthenticated: u64,
    /// Authenticated, but the nonce was already answered.
    pub replayed: u64,
    /// Authenticated, but for another port than the one it arrived on.
    pub wrong_port: u64,
    /// UDP replies withheld by the per-source rate limit.
    pub rate_limited: u64,
    /// TCP connections closed at once: the session table was full of sessions too young to
    /// evict or already answering.
    pub sessions_refused: u64,
    /// Waiting TCP sessions closed to make room for a new connection (oldest first).
    pub sessions_evicted: u64,
    /// TCP sessions closed for sending nothing (or too little) within `idle_timeout`.
    pub idle_timeouts: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ListenReport {
    /// Sockets bound (one per distinct address, transport and port).
    pub bound: usize,
    pub failures: Vec<BindFailure>,
    /// Valid probes answered, per transport and port.
    pub answered: BTreeMap<(Transport, u16), u64>,
    pub dropped: Dropped,
    /// How long binding took.
    pub bind_time: Duration,
}

impl ListenReport {
    pub fn total_answered(&self) -> u64 {
        self.answered.values().sum()
    }
}

#[derive(Default)]
struct Counters {
    malformed: AtomicU64,
    unauthenticated: AtomicU64,
    replayed: AtomicU64,
    wrong_port: AtomicU64,
    rate_limited: AtomicU64,
    sessions_refused: AtomicU64,
    sessions_evicted: AtomicU64,
    idle_timeouts: AtomicU64,
}

impl Counters {
    /// What was dropped so far, for the report.
    fn dropped(&self) -> Dropped {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Dropped {
            malformed: n(&self.malformed),
            unauthenticated: n(&self.unauthenticated),
            replayed: n(&self.replayed),
            wrong_port: n(&self.wrong_port),
            rate_limited: n(&self.rate_limited),
            sessions_refused: n(&self.sessions_refused),
            sessions_evicted: n(&self.sessions_evicted),
            idle_timeouts: n(&self.idle_timeouts),
        }
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What one bound socket answers for.
struct PortInfo {
    address: IpAddr,
    component: String,
    port_id: String,
    transport: Transport,
    port: u16,
    id: String,
    answered: AtomicU64,
}

/// Per-source token buckets.
///
/// Only authenticated, fresh requests reach it (see [`Shared::answer`]), so neither junk nor a
/// replayed request from spoofed sources takes a bucket. It stays bounded anyway: past
/// `max_sources`, buckets idle for a second (full again) are dropped, else the least recently
/// served source is forgotten, so a new source always gets a bucket.
struct RateLimiter {
    rate: f64,
    max_sources: usize,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_sources {
            // A bucket idle for a second is full again: forgetting it changes nothing.
            self.buckets
                .retain(|_, (_, last)| now.duration_since(*last) < Duration::from_secs(1));
            if self.buckets.len() >= self.max_sources {
                let oldest = self
                    .buckets
                    .iter()
                    .min_by_key(|(_, (_, last))| *last)
                    .map(|(k, _)| *k);
                if let Some(k) = oldest {
                    self.buckets.remove(&k);
                }
            }
        }
        let (tokens, last) = self.buckets.entry(ip).or_insert((self.rate, now));
        let elapsed = now.duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.rate);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// At most one authentication-failure event per interval; the rest are counted into the next.
/// O(1) state, so a flood from any number of sources cannot grow it.
struct AuthLog {
    sink: Option<EventSink>,
    interval: Duration,
    last: Option<Instant>,
    more: u64,
}

impl AuthLog {
    fn failed(&mut self, source: IpAddr, transport: Transport, port: u16, now: Instant) {
        let Some(sink) = &self.sink else {
            return;
        };
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < self.interval)
        {
            self.more += 1;
            return;
        }
        self.last = Some(now);
        let more = std::mem::take(&mut self.more);
        (sink.0)(ListenEvent::AuthFailed {
            source,
            transport,
            port,
            more,
        });
    }
}

/// Who holds the TCP sessions, oldest first, so a full table evicts the oldest one still
/// waiting for its request instead of refusing newcomers.
///
/// Caps are soft: past one, a new connection evicts the oldest idle session (of its own source
/// for the per-source cap, of anyone for the global one): still waiting for its request, at
/// least `min_age` old, and with nothing unread in its socket. When none is, it is admitted
/// anyway up to twice the cap, and refused past that. A host holding thousands of idle
/// connections therefore only ever evicts its own, and a prober's fresh connection, whose
/// request is already there, is never taken for idle.
pub(crate) struct SessionTable {
    max_total: usize,
    max_per_source: usize,
    min_age: Duration,
    next: u64,
    live: BTreeMap<u64, SessionEntry>,
    per_source: HashMap<IpAddr, usize>,
}

struct SessionEntry {
    source: IpAddr,
    since: Instant,
    waiting: bool,
    /// A way into the session's socket, to see whether its request has arrived but not been
    /// read yet (a session not polled yet is not idle, however old it is).
    socket: Option<Peek>,
    /// Dropping it tells the session it was evicted.
    _evict: tokio::sync::oneshot::Sender<()>,
}

#[cfg(unix)]
type SessionSocket = std::os::fd::OwnedFd;
#[cfg(windows)]
type SessionSocket = std::os::windows::io::OwnedSocket;

/// A second handle on a stream's socket, for [`has_unread_data`].
#[cfg(unix)]
fn session_socket(stream: &impl std::os::fd::AsFd) -> Option<SessionSocket> {
    stream.as_fd().try_clone_to_owned().ok()
}

/// A second handle on a stream's socket, for [`has_unread_data`].
#[cfg(windows)]
fn session_socket(stream: &impl std::os::windows::io::AsSocket) -> Option<SessionSocket> {
    stream.as_socket().try_clone_to_owned().ok()
}

/// How the table looks into a session's socket.
pub(crate) enum Peek {
    /// A second handle (the tokio path: the session's task owns the stream).
    Dup(SessionSocket),
    /// The socket itself, of a stream owned by a caller that removes the session from the table
    /// before it closes the stream (the Windows poll loop: under Wine a duplicate costs more
    /// than the rest of an accept, and a crowd of them stalled the loop).
    #[cfg(windows)]
    Raw(std::os::windows::io::RawSocket),
}

/// Whether bytes wait in the socket (the session reads eagerly, so only a session that has not
/// been polled since they came has any). Every session socket is non-blocking (tokio's, and the
/// Windows loop's), so this never waits.
fn has_unread_data(socket: &Peek) -> bool {
    let mut one = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    let got = match socket {
        Peek::Dup(s) => socket2::SockRef::from(s).peek(&mut one),
        #[cfg(windows)]
        Peek::Raw(raw) => {
            // SAFETY: the session is still in the table, so its stream is open (the owner
            // removes it from the table before closing it, see `Peek::Raw`).
            let s = unsafe { std::os::windows::io::BorrowedSocket::borrow_raw(*raw) };
            socket2::SockRef::from(&s).peek(&mut one)
        }
    };
    matches!(got, Ok(n) if n > 0)
}

impl SessionEntry {
    /// Still waiting for its request, old enough, and nothing unread: evictable.
    fn idle(&self, now: Instant, min_age: Duration) -> bool {
        self.waiting
            && now.duration_since(self.since) >= min_age
            && !self.socket.as_ref().is_some_and(has_unread_data)
    }
}

/// What [`SessionTable::admit`] decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Admitted as this id, after evicting these waiting sessions.
    Admitted(u64, Vec<u64>),
    Refused,
}

impl SessionTable {
    pub(crate) fn new(max_total: usize, max_per_source: usize, min_age: Duration) -> SessionTable {
        SessionTable {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            min_age,
            next: 0,
            live: BTreeMap::new(),
            per_source: HashMap::new(),
        }
    }

    fn evict_oldest(&mut self, now: Instant, of: Option<IpAddr>) -> Option<u64> {
        let victim = self
            .live
            .iter()
            .take_while(|(_, e)| now.duration_since(e.since) >= self.min_age)
            .find(|(_, e)| of.is_none_or(|ip| e.source == ip) && e.idle(now, self.min_age))
            .map(|(id, _)| *id);
        if let Some(id) = victim {
            self.remove(id);
        }
        victim
    }

    /// Makes room for a connection from `source` and registers it; the receiver completes
    /// (with an error) when the session is evicted. The evicted sessions' ids are returned too,
    /// for a caller that owns its sessions (the Windows poll loop) rather than waiting on them.
    pub(crate) fn admit(
        &mut self,
        source: IpAddr,
        now: Instant,
        socket: Option<Peek>,
    ) -> (Admission, Option<tokio::sync::oneshot::Receiver<()>>) {
        // Back under each soft cap when old enough waiting sessions allow it (a burst admitted
        // over it shrinks back), else within twice the cap.
        let mut evicted = Vec::new();
        while self.of_source(source) >= self.max_per_source {
            match self.evict_oldest(now, Some(source)) {
                Some(id) => evicted.push(id),
                None => break,
            }
        }
        if self.of_source(source) >= 2 * self.max_per_source {
            return (Admission::Refused, None);
        }
        while self.live.len() >= self.max_total {
            match self.evict_oldest(now, None) {
                Some(id) => evicted.push(id),
                None => break,
            }
        }
        if self.live.len() >= 2 * self.max_total {
            return (Admission::Refused, None);
        }
        let id = self.next;
        self.next += 1;
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.live.insert(
            id,
            SessionEntry {
                source,
                since: now,
                waiting: true,
                socket,
                _evict: tx,
            },
        );
        *self.per_source.entry(source).or_insert(0) += 1;
        (Admission::Admitted(id, evicted), Some(rx))
    }

    /// The session has its request: it is answering now and is no longer evictable.
    pub(crate) fn answering(&mut self, id: u64) {
        if let Some(e) = self.live.get_mut(&id) {
            e.waiting = false;
        }
    }

    pub(crate) fn remove(&mut self, id: u64) {
        if let Some(e) = self.live.remove(&id) {
            if let Some(n) = self.per_source.get_mut(&e.source) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&e.source);
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    fn of_source(&self, source: IpAddr) -> usize {
        self.per_source.get(&source).copied().unwrap_or(0)
    }
}

struct Shared {
    secret: Secret,
    replay: Mutex<ReplayCache>,
    rates: Mutex<RateLimiter>,
    sessions: Mutex<SessionTable>,
    auth_log: Mutex<AuthLog>,
    counters: Counters,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
}

impl Shared {
    /// The reply to `bytes` received on `info`'s port from `source`, or `None` (and a counted
    /// reason). The order matters: everything a sender without the secret can produce (junk,
    /// a wrong MAC, a replay of a sniffed request from any number of spoofed sources) is
    /// dropped before any per-source state is touched; only then the UDP rate limit applies.
    fn answer(
        &self,
        bytes: &[u8],
        info: &PortInfo,
        source: IpAddr,
        rate_limited: bool,
    ) -> Option<Vec<u8>> {
        let req = match proto::decode_request(&self.secret, bytes) {
            Ok(r) => r,
            Err(e @ (ProtoError::Mac | ProtoError::Padding)) => {
                bump(&self.counters.unauthenticated);
                if e == ProtoError::Mac {
                    lock(&self.auth_log).failed(source, info.transport, info.port, Instant::now());
                }
                return None;
            }
            Err(_) => {
                bump(&self.counters.malformed);
                return None;
            }
        };
        if req.port != info.port {
            bump(&self.counters.wrong_port);
            return None;
        }
        if !lock(&self.replay).insert(req.nonce) {
            bump(&self.counters.replayed);
            return None;
        }
        if rate_limited && !lock(&self.rates).allow(source, Instant::now()) {
            bump(&self.counters.rate_limited);
            return None;
        }
        let reply = proto::encode_reply(&self.secret, &req, &info.id);
        // The no-amplification rule, enforced here whatever the protocol module does.
        (reply.len() <= bytes.len()).then_some(reply)
    }
}

/// A poisoned lock only means another task panicked mid-update of a cache; keep serving.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum Bound {
    Tcp(std::net::TcpListener),
    Udp(std::net::UdpSocket),
}

fn bind_one(addr: SocketAddr, transport: Transport, backlog: i32) -> io::Result<Bound> {
    let domain = Domain::for_address(addr);
    let sock = match transport {
        Transport::Tcp => Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?,
        Transport::Udp => Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?,
    };
    if addr.is_ipv6() {
        // So a wildcard "::" does not also take the IPv4 port.
        sock.set_only_v6(true)?;
    }
    if transport == Transport::Tcp {
        // A restarted listener must not wait for its old sessions' TIME_WAIT.
        sock.set_reuse_address(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(match transport {
        Transport::Tcp => {
            sock.listen(backlog)?;
            Bound::Tcp(sock.into())
        }
        Transport::Udp => Bound::Udp(sock.into()),
    })
}

fn failure_kind(e: &io::Error) -> BindFailureKind {
    match e.kind() {
        io::ErrorKind::AddrInUse => BindFailureKind::InUse,
        io::ErrorKind::PermissionDenied => BindFailureKind::PermissionDenied,
        io::ErrorKind::AddrNotAvailable => BindFailureKind::AddressNotAvailable,
        _ => BindFailureKind::Other,
    }
}

type BoundPorts = Vec<(Bound, Arc<PortInfo>)>;

/// Binds every distinct (address, transport, port) of `endpoints`; the first endpoint naming a
/// port gives its id.
fn bind_all(
    endpoints: &[Endpoint],
    bind_override: Option<IpAddr>,
    backlog: i32,
) -> (BoundPorts, Vec<BindFailure>) {
    let mut seen = HashSet::new();
    let mut bound = Vec::new();
    let mut failures = Vec::new();
    for ep in endpoints {
        let address = bind_override.unwrap_or(ep.address);
        for port in ep.ports.ports() {
            if !seen.insert((address, ep.transport, port)) {
                continue;
            }
            match bind_one(SocketAddr::new(address, port), ep.transport, backlog) {
                Ok(sock) => bound.push((
                    sock,
                    Arc::new(PortInfo {
                        address,
                        component: ep.component.clone(),
                        port_id: ep.port_id.clone(),
                        transport: ep.transport,
                        port,
                        id: proto::reply_id(&ep.component, &ep.port_id),
                        answered: AtomicU64::new(0),
                    }),
                )),
                Err(e) => failures.push(BindFailure {
                    address,
                    transport: ep.transport,
                    port,
                    component: ep.component.clone(),
                    port_id: ep.port_id.clone(),
                    kind: failure_kind(&e),
                    reason: match failure_kind(&e) {
                        BindFailureKind::InUse => "address in use".to_owned(),
                        BindFailureKind::PermissionDenied => "permission denied".to_owned(),
                        BindFailureKind::AddressNotAvailable => {
                            "address not available on this host".to_owned()
                        }
                        BindFailureKind::Other => e.to_string(),
                    },
                }),
            }
        }
    }
    name_holders(&mut failures);
    (bound, failures)
}

/// Adds "(held by pid N name)" to in-use failures where the OS tells.
fn name_holders(failures: &mut [BindFailure]) {
    let queries: Vec<(usize, (IpAddr, Transport, u16))> = failures
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == BindFailureKind::InUse)
        .map(|(i, f)| (i, (f.address, f.transport, f.port)))
        .collect();
    let q: Vec<(IpAddr, Transport, u16)> = queries.iter().map(|(_, q)| *q).collect();
    for ((i, _), holders) in queries.iter().zip(sysinfo::holders(&q)) {
        if holders.is_empty() {
            continue;
        }
        let who: Vec<String> = holders
            .iter()
            .map(|h| {
                if h.name.is_empty() {
                    format!("pid {}", h.pid)
                } else {
                    format!("pid {} {}", h.pid, h.name)
                }
            })
            .collect();
        failures[*i].reason = format!("address in use (held by {})", who.join(", "));
    }
}

/// Makes room for one descriptor per distinct port (raising the soft open-file limit, and the
/// hard one where allowed); returns the limit in force and the ports wanted.
fn raise_nofile_for(
    endpoints: &[Endpoint],
    bind_override: Option<IpAddr>,
) -> Option<(sysinfo::NofileLimit, u64)> {
    let distinct: HashSet<(IpAddr, Transport, u16)> = endpoints
        .iter()
        .flat_map(|ep| {
            let address = bind_override.unwrap_or(ep.address);
            ep.ports.ports().map(move |p| (address, ep.transport, p))
        })
        .collect();
    let ports = distinct.len() as u64;
    super::raise_nofile_limit();
    sysinfo::raise_nofile_to(ports + sysinfo::NOFILE_RESERVE).map(|l| (l, ports))
}

/// The prefix of the reason given to every port the open-file limit left unbound.
pub const NOFILE_REASON: &str = "open-file limit";

/// Replaces "too many open files" on each port it left unbound with how many ports are missing
/// and how to raise the limit (the same text for all, so they print as one line).
fn explain_nofile(failures: &mut [BindFailure], limit: Option<(sysinfo::NofileLimit, u64)>) {
    let emfile = [libc::EMFILE, libc::ENFILE].map(|e| io::Error::from_raw_os_error(e).to_string());
    let missing = failures
        .iter()
        .filter(|f| emfile.contains(&f.reason))
        .count();
    if missing == 0 {
        return;
    }
    let why = match limit {
        Some((l, ports)) => format!(
            "{NOFILE_REASON}: {missing} of {ports} ports not bound, the soft limit is {} (hard {}) \
             and each port needs a descriptor; raise it to {} (ulimit -n, or LimitNOFILE= for a \
             service) or run as root",
            l.soft,
            l.hard,
            ports + sysinfo::NOFILE_RESERVE
        ),
        None => format!("{NOFILE_REASON}: {missing} ports not bound (out of file descriptors)"),
    };
    for f in failures.iter_mut().filter(|f| emfile.contains(&f.reason)) {
        f.reason = why.clone();
    }
}

/// Binds every TCP and UDP port of `endpoints` (on each endpoint's address, or on
/// `bind_override`), calls `on_ready` once with the ports that failed when every port is bound or
/// has failed, answers probes until `shutdown` completes, and returns what it did.
///
/// Must be called within a tokio runtime.
pub async fn run(
    endpoints: &[Endpoint],
    bind_override: Option<IpAddr>,
    secret: &Secret,
    opts: ListenOptions,
    on_ready: impl FnOnce(&[BindFailure]),
    shutdown: impl Future<Output = ()>,
) -> ListenReport {
    #[cfg(windows)]
    return windows_listen::run(endpoints, bind_override, secret, opts, on_ready, shutdown).await;
    #[allow(unreachable_code)]
    let limit = raise_nofile_for(endpoints, bind_override);
    let started = std::time::Instant::now();
    let (bound, mut failures) = bind_all(endpoints, bind_override, opts.tcp_backlog);
    explain_nofile(&mut failures, limit);
    let shared = Arc::new(Shared {
        secret: secret.clone(),
        replay: Mutex::new(ReplayCache::new(opts.replay_cache)),
        rates: Mutex::new(RateLimiter {
            rate: f64::from(opts.udp_replies_per_source_per_sec),
            max_sources: opts.max_udp_sources.max(1),
            buckets: HashMap::new(),
        }),
        sessions: Mutex::new(SessionTable::new(
            opts.max_tcp_sessions,
            opts.max_tcp_sessions_per_source,
            opts.evict_min_age,
        )),
        auth_log: Mutex::new(AuthLog {
            sink: opts.events.clone(),
            interval: opts.event_interval,
            last: None,
            more: 0,
        }),
        counters: Counters::default(),
        first_byte_timeout: opts.first_byte_timeout.min(opts.idle_timeout),
        idle_timeout: opts.idle_timeout,
    });
    let mut tasks = JoinSet::new();
    let mut infos = Vec::with_capacity(bound.len());
    for (sock, info) in bound {
        // Registration with the reactor fails only when the process is out of resources.
        let handed = match sock {
            Bound::Tcp(l) => TcpListener::from_std(l)
                .map(|l| tasks.spawn(serve_tcp(l, info.clone(), shared.clone()))),
            Bound::Udp(s) => UdpSocket::from_std(s)
                .map(|s| tasks.spawn(serve_udp(s, info.clone(), shared.clone()))),
        };
        match handed {
            Ok(_) => infos.push(info),
            Err(e) => failures.push(BindFailure {
                address: info.address,
                transport: info.transport,
                port: info.port,
                component: info.component.clone(),
                port_id: info.port_id.clone(),
                kind: BindFailureKind::Other,
                reason: e.to_string(),
            }),
        }
    }
    let bind_time = started.elapsed();
    on_ready(&failures);
    shutdown.await;
    tasks.shutdown().await;

    let c = &shared.counters;
    let mut answered = BTreeMap::new();
    for info in &infos {
        *answered.entry((info.transport, info.port)).or_insert(0) +=
            info.answered.load(Ordering::Relaxed);
    }
    ListenReport {
        bound: infos.len(),
        failures,
        answered,
        dropped: c.dropped(),
        bind_time,
    }
}

async fn serve_tcp(listener: TcpListener, info: Arc<PortInfo>, shared: Arc<Shared>) {
    // Owning the sessions here means aborting this task closes them too.
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let socket = session_socket(&stream).map(Peek::Dup);
                    let (admission, evicted) =
                        lock(&shared.sessions).admit(peer.ip(), Instant::now(), socket);
                    match (admission, evicted) {
                        (Admission::Admitted(id, gone), Some(evicted)) => {
                            for _ in 0..gone.len() {
                                bump(&shared.counters.sessions_evicted);
                            }
                            let session = Session { id, shared: shared.clone() };
                            running.spawn(serve_session(stream, peer.ip(), info.clone(), session, evicted));
                        }
                        _ => {
                            bump(&shared.counters.sessions_refused);
                            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                        }
                    }
                }
                // Out of descriptors or a connection reset before accept: wait, do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

/// A session's place in the [`SessionTable`], given back when the session ends however it ends.
struct Session {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Session {
    fn drop(&mut self) {
        lock(&self.shared.sessions).remove(self.id);
    }
}

async fn serve_session(
    mut stream: TcpStream,
    source: IpAddr,
    info: Arc<PortInfo>,
    session: Session,
    evicted: tokio::sync::oneshot::Receiver<()>,
) {
    let shared = session.shared.clone();
    let mut buf = [0u8; REQUEST_LEN];
    let started = Instant::now();
    let read = async {
        // The first byte within the first-byte deadline, the whole request within the idle one.
        let n = match timeout(shared.first_byte_timeout, stream.read(&mut buf)).await {
            Err(_) => return Err(true),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(false),
            Ok(Ok(n)) => n,
        };
        let left = shared.idle_timeout.saturating_sub(started.elapsed());
        match timeout(left, stream.read_exact(&mut buf[n..])).await {
            Err(_) => Err(true),
            Ok(Err(_)) => Err(false),
            Ok(Ok(_)) => Ok(()),
        }
    };
    let got = tokio::select! {
        got = read => got,
        _ = evicted => {
            // Reset, not FIN: an evicted idle connection leaves no TIME_WAIT behind.
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            return;
        }
    };
    match got {
        Err(true) => {
            bump(&shared.counters.idle_timeouts);
            return;
        }
        Err(false) => {
            bump(&shared.counters.malformed);
            return;
        }
        Ok(()) => {}
    }
    lock(&shared.sessions).answering(session.id);
    let Some(reply) = shared.answer(&buf, &info, source, false) else {
        return;
    };
    if let Ok(Ok(())) = timeout(shared.idle_timeout, stream.write_all(&reply)).await {
        info.answered.fetch_add(1, Ordering::Relaxed);
        let _ = timeout(shared.idle_timeout, stream.shutdown()).await;
    }
}

async fn serve_udp(sock: UdpSocket, info: Arc<PortInfo>, shared: Arc<Shared>) {
    // One byte more than a request, so an oversized datagram shows as such.
    let mut buf = [0u8; REQUEST_LEN + 1];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        if n != REQUEST_LEN {
            bump(&shared.counters.malformed);
            continue;
        }
        let Some(reply) = shared.answer(&buf[..n], &info, peer.ip(), true) else {
            continue;
        };
        if sock.send_to(&reply, peer).await.is_ok() {
            info.answered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_errors_are_named() {
        let k = |e| failure_kind(&io::Error::from(e));
        assert_eq!(k(io::ErrorKind::AddrInUse), BindFailureKind::InUse);
        assert_eq!(
            k(io::ErrorKind::PermissionDenied),
            BindFailureKind::PermissionDenied
        );
        assert_eq!(
            k(io::ErrorKind::AddrNotAvailable),
            BindFailureKind::AddressNotAvailable
        );
        assert_eq!(k(io::ErrorKind::Other), BindFailureKind::Other);
    }

    #[tokio::test]
    async fn unavailable_address_is_reported_not_fatal() {
        // 192.0.2.1 (TEST-NET-1) is not on this host; binding it fails, nothing is sent.
        let eps = [Endpoint {
            address: "192.0.2.1".parse().unwrap(),
            transport: Transport::Udp,
            ports: crate::range::PortRange::new(9000, 9001, None).unwrap(),
            component: "c".into(),
            port_id: "p".into(),
        }];
        let secret = Secret::new("s").unwrap();
        let mut seen = None;
        let report = run(
            &eps,
            None,
            &secret,
            ListenOptions::default(),
            |f| seen = Some(f.len()),
            async {},
        )
        .await;
        assert_eq!(seen, Some(2));
        assert_eq!(report.bound, 0);
        assert_eq!(
            report.failures[0].kind,
            BindFailureKind::AddressNotAvailable
        );
        assert_eq!(
            report.failures[0].reason,
            "address not available on this host"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limiter_refills_per_second() {
        let mut r = RateLimiter {
            rate: 3.0,
            max_sources: 2,
            buckets: HashMap::new(),
        };
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert!((0..3).all(|_| r.allow(a, t0)));
        assert!(!r.allow(a, t0));
        tokio::time::advance(Duration::from_millis(340)).await;
        assert!(r.allow(a, Instant::now()));
        assert!(!r.allow(a, Instant::now()));
        // Bounded sources: a third one takes the place of the least recently served.
        tokio::time::advance(Duration::from_millis(10)).await;
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        assert!(r.allow(b, Instant::now()));
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(r.allow("127.0.0.3".parse().unwrap(), Instant::now()));
        assert_eq!(r.buckets.len(), 2);
        assert!(!r.buckets.contains_key(&a) && r.buckets.contains_key(&b));
        // A flood of new sources never locks a new one out.
        for i in 0..1000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            assert!(r.allow(ip, Instant::now()));
        }
        assert!(r.allow(a, Instant::now()));
        assert_eq!(r.buckets.len(), 2);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn session_table_evicts_the_oldest_waiting_session_of_the_crowding_source() {
        let mut t = SessionTable::new(4, 2, Duration::from_millis(100));
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let now = Instant::now();
        let (first, mut rx1) = t.admit(a, now, None);
        assert_eq!(first, Admission::Admitted(0, vec![]));
        assert!(matches!(t.admit(a, now, None).0, Admission::Admitted(1, _)));
        // Too young to evict: admitted over the soft cap, up to twice it.
        assert!(matches!(t.admit(a, now, None).0, Admission::Admitted(2, _)));
        assert!(matches!(t.admit(a, now, None).0, Admission::Admitted(3, _)));
        assert_eq!(t.admit(a, now, None).0, Admission::Refused);
        tokio::time::advance(Duration::from_millis(150)).await;
        let now = Instant::now();
        // Old enough: a's next connection evicts a's oldest waiting ones, back under its cap.
        assert_eq!(
            t.admit(a, now, None).0,
            Admission::Admitted(4, vec![0, 1, 2])
        );
        assert!(rx1.as_mut().unwrap().try_recv().is_err(), "id 0 was told");
        assert_eq!(t.of_source(a), 2);
        assert_eq!(t.admit(b, now, None).0, Admission::Admitted(5, vec![]));
        assert_eq!(t.admit(b, now, None).0, Admission::Admitted(6, vec![]));
        tokio::time::advance(Duration::from_millis(150)).await;
        // The table is full (4): c's connection evicts the oldest waiting one, a's id 3.
        let c = ip("10.0.0.3");
        assert_eq!(
            t.admit(c, Instant::now(), None).0,
            Admission::Admitted(7, vec![3])
        );
        assert!(!t.live.contains_key(&3));
        assert_eq!((t.of_source(a), t.of_source(b), t.of_source(c)), (1, 2, 1));
        // A session that has its request is never evicted.
        t.answering(4);
        tokio::time::advance(Duration::from_millis(150)).await;
        let admitted = (0..10)
            .filter(|_| matches!(t.admit(a, Instant::now(), None).0, Admission::Admitted(..)))
            .count();
        // b's and c's old sessions made room for three; then a is at twice its cap.
        assert_eq!(admitted, 3);
        assert!(t.live.contains_key(&4));
        assert_eq!((t.of_source(a), t.len()), (4, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn auth_failures_are_reported_at_most_once_per_interval() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut log = AuthLog {
            sink: Some(EventSink(Arc::new(move |e| s2.lock().unwrap().push(e)))),
            interval: Duration::from_secs(1),
            last: None,
            more: 0,
        };
        for i in 0..500u32 {
            let src = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            log.failed(src, Transport::Udp, 5060, Instant::now());
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        log.failed(ip("10.9.9.9"), Transport::Tcp, 443, Instant::now());
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(
            seen[1],
            ListenEvent::AuthFailed {
                source: ip("10.9.9.9"),
                transport: Transport::Tcp,
                port: 443,
                more: 499
            }
        );
    }
}
