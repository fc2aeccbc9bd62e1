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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    /// TCP sessions served at once; connections past it are closed unanswered.
    pub max_tcp_sessions: usize,
    /// How long a TCP session may take to deliver its request (and take its reply).
    pub idle_timeout: Duration,
    /// UDP replies per second to one source address (a bucket of this many, refilled steadily).
    pub udp_replies_per_source_per_sec: u32,
    /// Source addresses tracked by the UDP rate limiter; new sources past it get no reply
    /// until old entries expire.
    pub max_udp_sources: usize,
    /// Nonces remembered to refuse replays.
    pub replay_cache: usize,
    pub tcp_backlog: i32,
}

impl Default for ListenOptions {
    fn default() -> ListenOptions {
        ListenOptions {
            max_tcp_sessions: 256,
            idle_timeout: Duration::from_secs(5),
            // One probe run sends a node's 1,602 MRS ports at once and retries some, and
            // scripts run probes back to back; replies are never larger than requests, so
            // this bounds work, not amplification.
            udp_replies_per_source_per_sec: 20_000,
            max_udp_sources: 4_096,
            replay_cache: 1 << 16,
            tcp_backlog: 1_024,
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
    /// TCP connections closed because `max_tcp_sessions` were busy.
    pub sessions_refused: u64,
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
    idle_timeouts: AtomicU64,
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
                return false;
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

struct Shared {
    secret: Secret,
    replay: Mutex<ReplayCache>,
    rates: Mutex<RateLimiter>,
    counters: Counters,
    idle_timeout: Duration,
}

impl Shared {
    /// The reply to `bytes` received on `info`'s port, or `None` (and a counted reason).
    fn answer(&self, bytes: &[u8], info: &PortInfo, source: Option<IpAddr>) -> Option<Vec<u8>> {
        let req = match proto::decode_request(&self.secret, bytes) {
            Ok(r) => r,
            Err(ProtoError::Mac | ProtoError::Padding) => {
                bump(&self.counters.unauthenticated);
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
        if let Some(ip) = source {
            let ok = lock(&self.rates).allow(ip, Instant::now());
            if !ok {
                bump(&self.counters.rate_limited);
                return None;
            }
        }
        if !lock(&self.replay).insert(req.nonce) {
            bump(&self.counters.replayed);
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
    super::raise_nofile_limit();
    let started = std::time::Instant::now();
    let (bound, failures) = bind_all(endpoints, bind_override, opts.tcp_backlog);
    let shared = Arc::new(Shared {
        secret: secret.clone(),
        replay: Mutex::new(ReplayCache::new(opts.replay_cache)),
        rates: Mutex::new(RateLimiter {
            rate: f64::from(opts.udp_replies_per_source_per_sec),
            max_sources: opts.max_udp_sources.max(1),
            buckets: HashMap::new(),
        }),
        counters: Counters::default(),
        idle_timeout: opts.idle_timeout,
    });
    let sessions = Arc::new(Semaphore::new(opts.max_tcp_sessions));
    let mut tasks = JoinSet::new();
    let mut infos = Vec::with_capacity(bound.len());
    let mut failures = failures;
    for (sock, info) in bound {
        // Registration with the reactor fails only when the process is out of resources.
        let handed = match sock {
            Bound::Tcp(l) => TcpListener::from_std(l)
                .map(|l| tasks.spawn(serve_tcp(l, info.clone(), shared.clone(), sessions.clone()))),
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
        dropped: Dropped {
            malformed: c.malformed.load(Ordering::Relaxed),
            unauthenticated: c.unauthenticated.load(Ordering::Relaxed),
            replayed: c.replayed.load(Ordering::Relaxed),
            wrong_port: c.wrong_port.load(Ordering::Relaxed),
            rate_limited: c.rate_limited.load(Ordering::Relaxed),
            sessions_refused: c.sessions_refused.load(Ordering::Relaxed),
            idle_timeouts: c.idle_timeouts.load(Ordering::Relaxed),
        },
        bind_time,
    }
}

async fn serve_tcp(
    listener: TcpListener,
    info: Arc<PortInfo>,
    shared: Arc<Shared>,
    sessions: Arc<Semaphore>,
) {
    // Owning the sessions here means aborting this task closes them too.
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => match sessions.clone().try_acquire_owned() {
                    Ok(permit) => {
                        running.spawn(serve_session(stream, info.clone(), shared.clone(), permit));
                    }
                    Err(_) => {
                        bump(&shared.counters.sessions_refused);
                        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
                    }
                },
                // Out of descriptors or a connection reset before accept: wait, do not spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    }
}

async fn serve_session(
    mut stream: TcpStream,
    info: Arc<PortInfo>,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let mut buf = [0u8; REQUEST_LEN];
    match timeout(shared.idle_timeout, stream.read_exact(&mut buf)).await {
        Err(_) => {
            bump(&shared.counters.idle_timeouts);
            return;
        }
        Ok(Err(_)) => {
            bump(&shared.counters.malformed);
            return;
        }
        Ok(Ok(_)) => {}
    }
    let Some(reply) = shared.answer(&buf, &info, None) else {
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
        let Some(reply) = shared.answer(&buf[..n], &info, Some(peer.ip())) else {
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
        // Bounded sources: a third one waits until the others are idle a second.
        assert!(r.allow("127.0.0.2".parse().unwrap(), Instant::now()));
        assert!(!r.allow("127.0.0.3".parse().unwrap(), Instant::now()));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(r.allow("127.0.0.3".parse().unwrap(), Instant::now()));
    }
}
