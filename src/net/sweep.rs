//! The unexpected-port sweep: non-blocking TCP connects to every port of any number of
//! addresses at once, driven by one raw epoll loop per thread (Linux) or one WSAPoll loop per
//! thread (Windows), then a re-connect to confirm each port that accepted. The passes, what
//! settles an address, what says it could not be swept and the confirmation ([`sweep_with`])
//! are the same everywhere; only the connect engine (`worker`, around the shared [`Engine`]
//! state) differs, and elsewhere a portable one connects one port at a time.
//!
//! Why not tokio: a 65,535-port sweep is bound by syscalls, and the reactor's per-socket
//! registration and task wake-ups cost about as much as the connects themselves; this loop
//! matches nmap's connect scan per core and splits the ports over the cores. (On Windows, tokio's
//! IOCP/AFD readiness also stalls under Wine: docs/windows.md.)

use std::collections::{HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
#[cfg(target_os = "linux")]
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
#[cfg(any(target_os = "linux", windows))]
use std::sync::Mutex;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

/// What the sweep of one address found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Ports that accepted and were confirmed, ascending.
    pub accepted: Vec<u16>,
    /// Ports not tried, for local reasons (out of descriptors or ephemeral ports).
    pub errors: u64,
    /// Connections that were the sweep's own doing (self-connects, pairs of its sockets).
    pub discarded: u64,
    /// Ports that never answered.
    pub unanswered: u64,
    pub passes: u32,
    /// No silent port left, or what is left stayed silent when asked again ([`settles`]).
    pub settled: bool,
    /// Why nothing could be learned about the address, when so: every port ended in a local
    /// error or "network unreachable". Such an address is not swept, whatever else it says.
    pub not_swept: Option<String>,
}

#[cfg(target_os = "linux")]
struct Slot {
    sock: Option<Socket>,
    target: SocketAddr,
    generation: u64,
}

/// What one pass of connects found, per target socket address.
#[derive(Debug, Default)]
struct Pass {
    accepted: Vec<SocketAddr>,
    silent: Vec<SocketAddr>,
    errors: Vec<SocketAddr>,
    discarded: Vec<SocketAddr>,
    /// "Network unreachable": no route from this host (or a router says so).
    no_route: Vec<SocketAddr>,
}

impl Pass {
    /// Files one connect's end under its outcome (both engines, Linux's and Windows').
    fn record(&mut self, ended: Ended, target: SocketAddr) {
        match ended {
            Ended::Accepted => self.accepted.push(target),
            Ended::NotOpen => {}
            Ended::SelfConnect => self.discarded.push(target),
            Ended::Silent => self.silent.push(target),
            Ended::NoRoute => self.no_route.push(target),
            Ended::Error | Ended::Retry => self.errors.push(target),
        }
    }

    fn extend(&mut self, o: Pass) {
        self.accepted.extend(o.accepted);
        self.silent.extend(o.silent);
        self.errors.extend(o.errors);
        self.discarded.extend(o.discarded);
        self.no_route.extend(o.no_route);
    }
}

/// How one connect ended.
enum Ended {
    Accepted,
    NotOpen,
    /// Network unreachable: says nothing about the address's ports.
    NoRoute,
    /// Connected to itself (simultaneous open on loopback): nothing listens there.
    SelfConnect,
    /// Out of local resources (descriptors, ephemeral ports): try the port again later.
    Retry,
    /// No answer before the timeout: lost, or dropped by a firewall (a later pass asks again).
    Silent,
    Error,
}

#[cfg(target_os = "linux")]
fn errno_ended(e: &io::Error) -> Ended {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED | libc::ECONNRESET | libc::EHOSTUNREACH) => Ended::NotOpen,
        Some(libc::ENETUNREACH) => Ended::NoRoute,
        Some(libc::EAGAIN | libc::EADDRNOTAVAIL | libc::EMFILE | libc::ENFILE | libc::ENOBUFS) => {
            Ended::Retry
        }
        _ => Ended::Error,
    }
}

/// A connected socket is a real listener unless it is connected to itself.
fn accepted(sock: &Socket) -> Ended {
    match (sock.local_addr(), sock.peer_addr()) {
        (Ok(l), Ok(p)) if l == p => Ended::SelfConnect,
        (Ok(_), Ok(_)) => Ended::Accepted,
        _ => Ended::NotOpen,
    }
}

#[cfg(target_os = "linux")]
fn new_socket(domain: Domain) -> io::Result<Socket> {
    Socket::new(domain, Type::STREAM.nonblocking(), None)
}

#[cfg(not(target_os = "linux"))]
fn new_socket(domain: Domain) -> io::Result<Socket> {
    let sock = Socket::new(domain, Type::STREAM, None)?;
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// How a connect ended, from a Winsock error code (`WSAE*`; pure, so tested everywhere).
#[cfg(any(windows, test))]
fn wsa_ended(code: Option<i32>) -> Ended {
    match code {
        // WSAECONNREFUSED, WSAECONNRESET, WSAEHOSTUNREACH
        Some(10061 | 10054 | 10065) => Ended::NotOpen,
        // WSAENETUNREACH
        Some(10051) => Ended::NoRoute,
        // WSAETIMEDOUT: the stack gave up on its own SYN retransmissions.
        Some(10060) => Ended::Silent,
        // WSAEWOULDBLOCK, WSAEADDRNOTAVAIL, WSAEMFILE, WSAENOBUFS, WSAEADDRINUSE (out of
        // ephemeral ports)
        Some(10035 | 10049 | 10024 | 10055 | 10048) => Ended::Retry,
        _ => Ended::Error,
    }
}

/// Only a connected socket can leave a TIME_WAIT behind; this one closes with a reset instead.
/// (Set at close time, saving a syscall on each of the thousands of refused ports.)
fn abort(sock: Socket) {
    let _ = sock.set_linger(Some(Duration::ZERO));
    drop(sock);
}

/// Returns a socket whose connect failed to the unconnected state (a connect to `AF_UNSPEC`),
/// so it can connect again; false if the kernel refuses.
#[cfg(target_os = "linux")]
fn disconnect(sock: &Socket) -> bool {
    // SAFETY: a zeroed sockaddr with family AF_UNSPEC, valid for the length given.
    let mut unspec: libc::sockaddr = unsafe { std::mem::zeroed() };
    unspec.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    // SAFETY: the descriptor is open; the address lives across the call.
    let rc = unsafe {
        libc::connect(
            sock.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(target_os = "linux")]
struct Epoll(OwnedFd);

#[cfg(target_os = "linux")]
impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: plain syscall; the result is checked before being owned.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn add(&self, fd: i32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLOUT | libc::EPOLLERR | libc::EPOLLHUP) as u32,
            u64: token,
        };
        // SAFETY: both descriptors are open; ev lives across the call.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        // SAFETY: the buffer is valid for events.len() entries.
        let n = unsafe {
            libc::epoll_wait(
                self.0.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as i32,
                timeout_ms,
            )
        };
        usize::try_from(n).unwrap_or(0)
    }
}

/// The connects a pass keeps in flight, over all its threads and addresses, adapted to the
/// path: a burst larger than a queue on the way (a TUN device holds 500 packets) is partly
/// dropped, and every drop costs a whole timeout and a retry. Judged per batch of answers:
/// while the share of silent connects stays near the lowest share seen (random loss, or a
/// firewall dropping everything: that share is the path's, not ours), the window doubles up to
/// `max`; when it rises clearly above, the window halves (never below `MIN`). One window for
/// the pass, shared by its threads ([`Engine::end_turn`] reports to it), so every address and
/// every thread sees the same path.
struct Congestion {
    size: usize,
    max: usize,
    /// The lowest silent share of a batch so far.
    base: f64,
    batch_done: u64,
    batch_silent: u64,
    /// Connects ended so far over every thread, and how many of them silent.
    done: u64,
    silent: u64,
}

impl Congestion {
    const MIN: usize = 32;
    const INITIAL: usize = 256;

    #[cfg(test)]
    fn new(max: usize) -> Congestion {
        Congestion::starting_at(Congestion::INITIAL, max)
    }

    fn starting_at(initial: usize, max: usize) -> Congestion {
        Congestion {
            size: initial.min(max).max(1),
            max: max.max(1),
            base: 1.0,
            batch_done: 0,
            batch_silent: 0,
            done: 0,
            silent: 0,
        }
    }

    /// One thread's `done` more connects ended, `silent` of them without an answer.
    fn add(&mut self, done: u64, silent: u64) {
        self.done += done;
        self.silent += silent;
        self.observe(self.done, self.silent);
    }

    fn size(&self) -> usize {
        self.size
    }

    /// `done` connects ended so far, `silent` of them without an answer.
    fn observe(&mut self, done: u64, silent: u64) {
        let n = done - self.batch_done;
        if n < self.size.max(Congestion::MIN) as u64 {
            return;
        }
        let share = (silent - self.batch_silent) as f64 / n as f64;
        self.base = self.base.min(share);
        if share > self.base + 0.10 {
            self.size = (self.size / 2).max(Congestion::MIN.min(self.max));
        } else if share <= self.base + 0.05 {
            self.size = (self.size * 2).min(self.max);
        }
        self.batch_done = done;
        self.batch_silent = silent;
    }
}

/// The window of one pass: `in_flight` connects at most over its `threads` threads, adapted
/// to the path in one [`Congestion`] they share.
#[cfg(any(target_os = "linux", windows))]
struct Window {
    cc: Mutex<Congestion>,
    threads: usize,
    per_thread: usize,
}

#[cfg(any(target_os = "linux", windows))]
impl Window {
    fn new(in_flight: usize, threads: usize) -> Window {
        let threads = threads.max(1);
        let per_thread = (in_flight / threads).max(1);
        Window {
            // Each thread starts where a window of its own used to.
            cc: Mutex::new(Congestion::starting_at(
                Congestion::INITIAL * threads,
                per_thread * threads,
            )),
            threads,
            per_thread,
        }
    }

    /// One thread's share of the window now.
    fn share(&self) -> usize {
        let size = self.cc.lock().unwrap_or_else(|e| e.into_inner()).size();
        (size / self.threads).clamp(1, self.per_thread)
    }
}

/// What a connect engine keeps across its loop, the same on Linux and Windows: the targets
/// still to connect to, the connects allowed in flight (the congestion window and the limit a
/// shortage of local resources imposes), the second ask of silent targets, the bounded retries
/// and the progress reports. Each engine adds only its own readiness mechanism.
#[cfg(any(target_os = "linux", windows))]
struct Engine<'a> {
    out: Pass,
    todo: VecDeque<SocketAddr>,
    /// Targets already asked twice in this pass, and how many were put back for it.
    asked_again: HashSet<SocketAddr>,
    requeued: u64,
    /// This thread's most connects in flight: its share of the pass's window.
    window: usize,
    /// The pass's window, shared by its threads; `share` of it is this thread's.
    cc: &'a Mutex<Congestion>,
    threads: usize,
    share: usize,
    /// Connects ended and silent already reported to `cc`.
    reported_done: u64,
    reported_silent: u64,
    limit: usize,
    /// Connects started in this turn (a bounded batch per turn: harvesting answers often keeps
    /// their timers honest).
    batch: usize,
    /// Out of local resources in this turn.
    starved: bool,
    done: u64,
    reported: u64,
    /// Resource shortages retry with backoff; a bounded number of times in total.
    retries_left: usize,
    progress: &'a (dyn Fn(u64) + Sync),
}

#[cfg(any(target_os = "linux", windows))]
impl<'a> Engine<'a> {
    const BATCH: usize = 256;

    fn new(targets: &[SocketAddr], window: &'a Window, progress: &'a (dyn Fn(u64) + Sync)) -> Self {
        let share = window.share();
        Engine {
            out: Pass::default(),
            todo: targets.iter().copied().collect(),
            asked_again: HashSet::new(),
            requeued: 0,
            window: window.per_thread,
            cc: &window.cc,
            threads: window.threads,
            share,
            reported_done: 0,
            reported_silent: 0,
            limit: share,
            batch: 0,
            starved: false,
            done: 0,
            reported: 0,
            retries_left: targets.len() * 2 + 64,
            progress,
        }
    }

    /// The next target to connect to, while `live` connects leave room in this turn.
    fn next(&mut self, live: usize) -> Option<SocketAddr> {
        if live >= self.limit || self.batch >= Engine::BATCH {
            return None;
        }
        self.batch += 1;
        self.todo.pop_front()
    }

    fn finish(&mut self, ended: Ended, target: SocketAddr) {
        self.done += 1;
        self.out.record(ended, target);
    }

    /// A connect to `target` could not start for lack of local resources (descriptors,
    /// ephemeral ports): put it back and start nothing more this turn, while retries last.
    /// Returns false when they are used up (the caller ends it as an error).
    fn short_of_resources(&mut self, target: SocketAddr, live: usize) -> bool {
        if self.retries_left == 0 {
            return false;
        }
        self.retries_left -= 1;
        self.todo.push_back(target);
        self.limit = live.max(1);
        self.starved = true;
        true
    }

    /// A connect ended silent (out of time, or the stack gave up on its SYN): the first time,
    /// it is asked again at the back of the queue (a lost SYN or reset costs no pass of its
    /// own); otherwise it ends as `ended`.
    fn timed_out(&mut self, ended: Ended, target: SocketAddr) {
        if matches!(ended, Ended::Silent) && self.asked_again.insert(target) {
            self.todo.push_back(target);
            self.requeued += 1;
        } else {
            self.finish(ended, target);
        }
    }

    /// Whether the loop is over (nothing in flight, nothing to do); while it is starved of
    /// resources with nothing in flight, it waits a little here first.
    fn idle(&mut self, live: usize) -> bool {
        if live == 0 && self.todo.is_empty() {
            return true;
        }
        if live == 0 && self.starved {
            std::thread::sleep(Duration::from_millis(5));
            self.limit = self.share;
        }
        false
    }

    /// After a turn's answers: the window follows them, progress is reported.
    fn end_turn(&mut self) {
        if self.limit < self.window && !self.starved {
            self.limit = (self.limit * 2).min(self.share);
        }
        let (done, silent) = (
            self.done + self.requeued,
            self.out.silent.len() as u64 + self.requeued,
        );
        if done > self.reported_done {
            let size = {
                let mut cc = self.cc.lock().unwrap_or_else(|e| e.into_inner());
                cc.add(done - self.reported_done, silent - self.reported_silent);
                cc.size()
            };
            self.share = (size / self.threads).clamp(1, self.window);
            (self.reported_done, self.reported_silent) = (done, silent);
        }
        self.limit = self.limit.min(self.share);
        if self.done - self.reported >= 1024 {
            (self.progress)(self.done - self.reported);
            self.reported = self.done;
        }
        self.batch = 0;
        self.starved = false;
    }

    fn into_pass(self) -> Pass {
        if self.done > self.reported {
            (self.progress)(self.done - self.reported);
        }
        self.out
    }
}

/// One thread's share of one pass: connects to every target, `window` at a time, watched by
/// one epoll; a target that stays silent is asked once more in the same pass before it counts
/// as silent.
#[cfg(target_os = "linux")]
fn worker(
    targets: &[SocketAddr],
    timeout: Duration,
    window: &Window,
    progress: &(dyn Fn(u64) + Sync),
) -> Pass {
    let mut e = Engine::new(targets, window, progress);
    let Ok(ep) = Epoll::new() else {
        for &t in targets {
            e.finish(Ended::Error, t);
        }
        return e.into_pass();
    };
    let mut slots: Vec<Slot> = Vec::with_capacity(e.window);
    let mut free: Vec<usize> = Vec::new();
    let mut expiry: VecDeque<(Instant, usize, u64)> = VecDeque::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut live = 0usize;
    let mut generation = 0u64;

    // A socket refused at once is disconnected and used for the next connect: socket() and
    // close() cost about as much as the loopback connect itself.
    let mut spare: Option<(Domain, Socket)> = None;

    loop {
        while let Some(target) = e.next(live) {
            let domain = Domain::for_address(target);
            let reused = spare.take().filter(|(d, _)| *d == domain).map(|(_, s)| s);
            let sock = match reused.map_or_else(|| new_socket(domain), Ok) {
                Ok(s) => s,
                Err(err) => {
                    if !(matches!(errno_ended(&err), Ended::Retry)
                        && e.short_of_resources(target, live))
                    {
                        e.finish(Ended::Error, target);
                    }
                    if e.starved {
                        break;
                    }
                    continue;
                }
            };
            match sock.connect(&SockAddr::from(target)) {
                Ok(()) => {
                    e.finish(accepted(&sock), target);
                    abort(sock);
                }
                Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {
                    // On loopback the answer is usually in before connect() returns: take it
                    // now and skip epoll for this socket.
                    if let Ok(Some(err)) = sock.take_error() {
                        let ended = errno_ended(&err);
                        if matches!(ended, Ended::NotOpen) && disconnect(&sock) {
                            spare = Some((domain, sock));
                        }
                        e.finish(ended, target);
                        continue;
                    }
                    let idx = free.pop().unwrap_or_else(|| {
                        slots.push(Slot {
                            sock: None,
                            target,
                            generation: 0,
                        });
                        slots.len() - 1
                    });
                    generation += 1;
                    if ep.add(sock.as_raw_fd(), idx as u64).is_err() {
                        free.push(idx);
                        e.finish(Ended::Error, target);
                        continue;
                    }
                    slots[idx] = Slot {
                        sock: Some(sock),
                        target,
                        generation,
                    };
                    expiry.push_back((Instant::now() + timeout, idx, generation));
                    live += 1;
                }
                Err(err) => match errno_ended(&err) {
                    Ended::Retry if e.short_of_resources(target, live) => break,
                    ended => e.finish(ended, target),
                },
            }
        }
        if e.idle(live) {
            break;
        }
        if live == 0 && e.starved {
            e.end_turn();
            continue;
        }
        let now = Instant::now();
        let wait = expiry.front().map_or(0, |(at, _, _)| {
            at.saturating_duration_since(now).as_millis().min(1000) as i32 + 1
        });
        let n = ep.wait(&mut events, wait);
        for ev in &events[..n] {
            let idx = ev.u64 as usize;
            let Some(slot) = slots.get_mut(idx) else {
                continue;
            };
            let Some(sock) = slot.sock.take() else {
                continue;
            };
            let ended = match sock.take_error() {
                Ok(None) => accepted(&sock),
                Ok(Some(err)) => errno_ended(&err),
                Err(_) => Ended::Error,
            };
            e.finish(ended, slot.target);
            abort(sock);
            free.push(idx);
            live -= 1;
        }
        let now = Instant::now();
        while let Some(&(at, idx, generation)) = expiry.front() {
            let stale = slots[idx].generation != generation || slots[idx].sock.is_none();
            if !stale && at > now {
                break;
            }
            expiry.pop_front();
            if !stale {
                // Out of time, but its answer may be sitting unharvested in the epoll queue:
                // ask the socket itself before calling it silent.
                if let Some(sock) = slots[idx].sock.take() {
                    let ended = match sock.take_error() {
                        Ok(Some(err)) => errno_ended(&err),
                        Ok(None) if sock.peer_addr().is_ok() => accepted(&sock),
                        _ => Ended::Silent,
                    };
                    e.timed_out(ended, slots[idx].target);
                    abort(sock);
                }
                free.push(idx);
                live -= 1;
            }
        }
        e.end_turn();
    }
    e.into_pass()
}

/// Asks Windows not to retransmit a refused SYN (`SIO_TCP_INITIAL_RTO` with
/// `TCP_INITIAL_RTO_NO_SYN_RETRANSMISSIONS`, Windows 10 1703 and later): by default a connect
/// answered by a reset is tried again for about 2 s, so every closed port would look silent.
/// The sweep's own passes ask lost SYNs again. Where the call is refused (older Windows, Wine)
/// it is not asked again.
#[cfg(windows)]
fn no_syn_retransmissions(sock: &Socket) {
    use std::os::windows::io::AsRawSocket;
    use std::sync::atomic::{AtomicBool, Ordering};
    use windows_sys::Win32::Networking::WinSock::{
        SIO_TCP_INITIAL_RTO, SOCKET, TCP_INITIAL_RTO_PARAMETERS, WSAIoctl,
    };
    static REFUSED: AtomicBool = AtomicBool::new(false);
    if REFUSED.load(Ordering::Relaxed) {
        return;
    }
    let params = TCP_INITIAL_RTO_PARAMETERS {
        // TCP_INITIAL_RTO_UNSPECIFIED_RTT ((USHORT)-1) and TCP_INITIAL_RTO_NO_SYN_RETRANSMISSIONS
        // ((UCHAR)-2), as mstcpip.h defines them.
        Rtt: u16::MAX,
        MaxSynRetransmissions: 0xFE,
    };
    let mut returned = 0u32;
    // SAFETY: params and returned live across the call; no overlapped I/O, no output buffer.
    let rc = unsafe {
        WSAIoctl(
            sock.as_raw_socket() as SOCKET,
            SIO_TCP_INITIAL_RTO,
            std::ptr::from_ref(&params).cast(),
            std::mem::size_of::<TCP_INITIAL_RTO_PARAMETERS>() as u32,
            std::ptr::null_mut(),
            0,
            &mut returned,
            std::ptr::null_mut(),
            None,
        )
    };
    if rc != 0 {
        REFUSED.store(true, Ordering::Relaxed);
    }
}

/// One thread's share of one pass on Windows: nonblocking connects, at most `window` in flight,
/// watched by one `WSAPoll` over all of them (net::windows says why not IOCP); a target that
/// stays silent is asked once more in the same pass before it counts as silent, as on Linux.
/// Before Windows 10 2004 `WSAPoll` does not report a refused connect, so a socket out of time
/// is asked its `SO_ERROR` before it counts as silent.
#[cfg(windows)]
fn worker(
    targets: &[SocketAddr],
    timeout: Duration,
    window: &Window,
    progress: &(dyn Fn(u64) + Sync),
) -> Pass {
    use std::os::windows::io::AsRawSocket;
    use windows_sys::Win32::Networking::WinSock::{
        POLLERR, POLLHUP, POLLWRNORM, SOCKET, WSAPOLLFD, WSAPoll,
    };

    struct Flight {
        sock: Socket,
        target: SocketAddr,
        deadline: Instant,
    }

    let mut e = Engine::new(targets, window, progress);
    // In start order; every connect has the same timeout, so also in deadline order.
    let mut flights: Vec<Flight> = Vec::with_capacity(e.window);
    let mut fds: Vec<WSAPOLLFD> = Vec::with_capacity(e.window);

    loop {
        while let Some(target) = e.next(flights.len()) {
            let sock = match new_socket(Domain::for_address(target)) {
                Ok(s) => s,
                Err(err) => {
                    if !(matches!(wsa_ended(err.raw_os_error()), Ended::Retry)
                        && e.short_of_resources(target, flights.len()))
                    {
                        e.finish(Ended::Error, target);
                    }
                    if e.starved {
                        break;
                    }
                    continue;
                }
            };
            no_syn_retransmissions(&sock);
            match sock.connect(&SockAddr::from(target)) {
                Ok(()) => {
                    e.finish(accepted(&sock), target);
                    abort(sock);
                }
                // WSAEWOULDBLOCK: in progress.
                Err(err) if err.raw_os_error() == Some(10035) => flights.push(Flight {
                    sock,
                    target,
                    deadline: Instant::now() + timeout,
                }),
                Err(err) => match wsa_ended(err.raw_os_error()) {
                    Ended::Retry if e.short_of_resources(target, flights.len()) => break,
                    ended => e.finish(ended, target),
                },
            }
        }
        if e.idle(flights.len()) {
            break;
        }
        if flights.is_empty() && e.starved {
            e.end_turn();
            continue;
        }
        fds.clear();
        fds.extend(flights.iter().map(|f| WSAPOLLFD {
            fd: f.sock.as_raw_socket() as SOCKET,
            events: POLLWRNORM,
            revents: 0,
        }));
        let now = Instant::now();
        let wait = flights.first().map_or(0, |f| {
            f.deadline
                .saturating_duration_since(now)
                .as_millis()
                .min(1000) as i32
                + 1
        });
        // SAFETY: fds is a valid array of fds.len() entries for the duration of the call.
        let n = unsafe { WSAPoll(fds.as_mut_ptr(), fds.len() as u32, wait) };
        if n < 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let now = Instant::now();
        let mut kept = Vec::with_capacity(flights.len().max(e.limit));
        for (f, pfd) in flights.drain(..).zip(&fds) {
            let ended = if pfd.revents & (POLLWRNORM | POLLERR | POLLHUP) != 0 {
                match f.sock.take_error() {
                    Ok(None) => accepted(&f.sock),
                    Ok(Some(err)) => wsa_ended(err.raw_os_error()),
                    Err(_) => Ended::Error,
                }
            } else if now >= f.deadline {
                match f.sock.take_error() {
                    Ok(Some(err)) => wsa_ended(err.raw_os_error()),
                    Ok(None) if f.sock.peer_addr().is_ok() => accepted(&f.sock),
                    _ => Ended::Silent,
                }
            } else {
                kept.push(f);
                continue;
            };
            // Only a connected socket needs the reset on close (no TIME_WAIT); under Wine every
            // socket call is a round trip to the Wine server, so refused ones skip it.
            let connected = matches!(ended, Ended::Accepted | Ended::SelfConnect);
            e.timed_out(ended, f.target);
            if connected {
                abort(f.sock);
            }
        }
        flights = kept;
        e.end_turn();
    }
    e.into_pass()
}

/// One pass over `targets` with `threads` threads and `window` connects in flight in all.
#[cfg(any(target_os = "linux", windows))]
fn pass(
    targets: &[SocketAddr],
    timeout: Duration,
    window: usize,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Pass {
    // Small passes (retries, confirmations) need no second thread.
    let threads = threads.clamp(1, 64).min(targets.len().div_ceil(256).max(1));
    let window = Window::new(window, threads);
    let mut total = Pass::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share: Vec<SocketAddr> =
                    targets.iter().copied().skip(t).step_by(threads).collect();
                let window = &window;
                s.spawn(move || worker(&share, timeout, window, progress))
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(o) => total.extend(o),
                // A panicked thread's share was not swept: an error for each of its ports.
                Err(_) => total.errors.push(SocketAddr::new(targets[0].ip(), 0)),
            }
        }
    });
    total
}

/// The portable engine: one blocking connect at a time (slow, but the same passes, settling
/// and confirmation as the others).
#[cfg(not(any(target_os = "linux", windows)))]
fn pass(
    targets: &[SocketAddr],
    timeout: Duration,
    _window: usize,
    _threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Pass {
    let mut out = Pass::default();
    for &t in targets {
        let ended = match Socket::new(Domain::for_address(t), Type::STREAM, None) {
            Ok(sock) => {
                let ended = match sock.connect_timeout(&SockAddr::from(t), timeout) {
                    Ok(()) => accepted(&sock),
                    Err(e) => match e.kind() {
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Ended::Silent,
                        io::ErrorKind::NetworkUnreachable => Ended::NoRoute,
                        io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::HostUnreachable => Ended::NotOpen,
                        _ => Ended::Error,
                    },
                };
                abort(sock);
                ended
            }
            Err(_) => Ended::Error,
        };
        out.record(ended, t);
        progress(1);
    }
    out
}

/// How the sweep asks again: passes after the first go to the ports that stayed silent, each
/// with a longer timeout; the sweep stops when a pass turns up no answer (what is left is
/// consistently silent: filtered) or after `MAX_PASSES`.
pub(crate) const MAX_PASSES: u32 = 5;
const CONFIRM_ATTEMPTS: u32 = 4;

/// A pass's timeout: the first pass waits the probes' adapted timeout (at least 150 ms); later
/// passes, asking ports that were silent, wait half as long again (answers queued on the path
/// may have come just too late).
fn retry_timeout(adapted: Duration, pass: u32) -> Duration {
    let first = adapted.max(Duration::from_millis(150));
    if pass <= 1 { first } else { first.mul_f64(1.5) }
}

/// Whether a pass that asked `asked` ports of an address and left `still` of them silent ends
/// that address's sweep: nothing left, or (on a pass that asked again) not one answer, so what
/// is left is consistently silent. Otherwise the next pass asks again; past `MAX_PASSES` the
/// address stays unsettled (inconclusive).
pub(crate) fn settles(pass: u32, asked: u64, still: u64) -> bool {
    still == 0 || (pass > 1 && still == asked)
}

/// Sweeps `ports` of every address of `plan` at once (the addresses' ports interleaved over
/// `threads` threads, `window` connects in flight in all), asks the silent ports again, and
/// confirms each port that accepted: one outcome per address, in `plan`'s order. `local` says
/// which addresses are this host's own (their confirmations go one at a time).
pub fn sweep(
    plan: &[(IpAddr, Vec<u16>)],
    local: &dyn Fn(IpAddr) -> bool,
    timeout: Duration,
    window: usize,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Vec<SweepOutcome> {
    sweep_with(plan, local, timeout, window, threads, progress, &pass)
}

/// One pass of connects: (targets, timeout, window, threads, progress) to what they did.
type PassFn<'a> =
    dyn Fn(&[SocketAddr], Duration, usize, usize, &(dyn Fn(u64) + Sync)) -> Pass + Sync + 'a;

/// [`sweep`] with the connect engine given: the passes and confirmations are the platform's
/// `pass`, or a stand-in in tests.
fn sweep_with(
    plan: &[(IpAddr, Vec<u16>)],
    local: &dyn Fn(IpAddr) -> bool,
    timeout: Duration,
    window: usize,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
    pass: &PassFn<'_>,
) -> Vec<SweepOutcome> {
    // Round robin over the addresses, so each sees an even share of the window.
    let longest = plan.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
    let mut targets = Vec::with_capacity(plan.iter().map(|(_, p)| p.len()).sum());
    for i in 0..longest {
        for (a, ports) in plan {
            if let Some(&p) = ports.get(i) {
                targets.push(SocketAddr::new(*a, p));
            }
        }
    }
    let mut outcomes: Vec<SweepOutcome> = plan.iter().map(|_| SweepOutcome::default()).collect();
    let slot = |a: IpAddr| plan.iter().position(|(x, _)| *x == a);
    let mut found: Vec<SocketAddr> = Vec::new();
    let mut no_route = vec![0u64; plan.len()];
    let mut silent = targets;
    let mut passes = 0;
    while passes < MAX_PASSES && !silent.is_empty() {
        passes += 1;
        let quiet = |_: u64| {};
        let p = pass(
            &silent,
            retry_timeout(timeout, passes),
            window,
            threads,
            if passes == 1 { progress } else { &quiet },
        );
        found.extend(p.accepted);
        let mut asked = vec![0u64; plan.len()];
        let mut still = vec![0u64; plan.len()];
        for t in &silent {
            if let Some(i) = slot(t.ip()) {
                asked[i] += 1;
            }
        }
        for t in &p.silent {
            if let Some(i) = slot(t.ip()) {
                still[i] += 1;
            }
        }
        for t in &p.errors {
            if let Some(i) = slot(t.ip()) {
                outcomes[i].errors += 1;
            }
        }
        for t in &p.discarded {
            if let Some(i) = slot(t.ip()) {
                outcomes[i].discarded += 1;
            }
        }
        for t in &p.no_route {
            if let Some(i) = slot(t.ip()) {
                no_route[i] += 1;
            }
        }
        for (i, o) in outcomes.iter_mut().enumerate() {
            if asked[i] == 0 {
                continue;
            }
            o.passes = passes;
            if settles(passes, asked[i], still[i]) {
                o.settled = true;
                o.unanswered = still[i];
            }
        }
        silent = p
            .silent
            .into_iter()
            .filter(|t| slot(t.ip()).is_some_and(|i| !outcomes[i].settled))
            .collect();
    }
    for t in &silent {
        if let Some(i) = slot(t.ip()) {
            outcomes[i].unanswered += 1;
        }
    }
    for ((o, (_, ports)), &no_route) in outcomes.iter_mut().zip(plan).zip(&no_route) {
        if ports.is_empty() {
            o.settled = true;
        }
        // Not one port reached: the address says nothing, whatever settled.
        let ports = ports.len() as u64;
        if ports > 0 && o.errors + no_route >= ports {
            o.not_swept = Some(if no_route > 0 {
                format!(
                    "network unreachable: {no_route} of {ports} ports had no route from this host{}",
                    if o.errors > 0 {
                        format!(", {} could not be tried (local errors)", o.errors)
                    } else {
                        String::new()
                    }
                )
            } else {
                format!("none of its {ports} ports could be tried (local errors)")
            });
        }
    }

    // Every sweep socket is closed now. On this host two of them could have connected to each
    // other (each one's ephemeral port being the other's target): alone, a connect can only
    // reach a real listener or itself, so local addresses are confirmed one at a time. A remote
    // address cannot reach our sockets: confirmed all at once, asking again while silent.
    let (near, far): (Vec<SocketAddr>, Vec<SocketAddr>) =
        found.into_iter().partition(|t| local(t.ip()));
    let confirm = timeout.max(Duration::from_millis(200));
    let mut confirmed: Vec<SocketAddr> = near
        .iter()
        .copied()
        .filter(|&t| {
            let Ok(sock) = new_socket(Domain::for_address(t)) else {
                return false;
            };
            let _ = sock.set_nonblocking(false);
            let ok = match sock.connect_timeout(&SockAddr::from(t), confirm) {
                Ok(()) => matches!(accepted(&sock), Ended::Accepted),
                Err(_) => false,
            };
            abort(sock);
            ok
        })
        .collect();
    let mut ask = far.clone();
    for attempt in 1..=CONFIRM_ATTEMPTS {
        if ask.is_empty() {
            break;
        }
        let p = pass(
            &ask,
            retry_timeout(timeout, attempt),
            window,
            threads,
            &|_| {},
        );
        confirmed.extend(p.accepted);
        ask = p.silent;
    }
    // A port that accepted once and stays silent to every confirmation is still reported:
    // it accepted from us, which only a listener does on a remote address.
    confirmed.extend(ask);
    for t in near.iter().chain(&far) {
        if let Some(i) = slot(t.ip()) {
            outcomes[i].discarded += 1;
        }
    }
    for t in &confirmed {
        if let Some(i) = slot(t.ip()) {
            outcomes[i].discarded -= 1;
        }
    }
    for t in confirmed {
        if let Some(i) = slot(t.ip()) {
            outcomes[i].accepted.push(t.port());
        }
    }
    for o in &mut outcomes {
        o.accepted.sort_unstable();
        o.accepted.dedup();
    }
    outcomes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_settles_when_nothing_is_silent_or_nothing_more_answers() {
        assert!(settles(1, 65_534, 0), "every port answered at once");
        assert!(
            !settles(1, 65_534, 65_534),
            "one pass cannot tell silence from loss"
        );
        assert!(
            settles(2, 65_534, 65_534),
            "asked again, not one answered: filtered"
        );
        assert!(!settles(2, 1_300, 26), "answers still coming: ask again");
        assert!(settles(3, 26, 0));
        assert!(settles(3, 26, 26));
        assert!(
            !settles(MAX_PASSES, 26, 1),
            "unsettled on the last pass: inconclusive"
        );
    }

    #[test]
    fn congestion_window_grows_on_answers_and_halves_on_a_rise_in_silence() {
        let mut c = Congestion::new(4096);
        assert_eq!(c.size(), 256);
        // Random loss: 4 of 256 silent, then 2%: the window doubles each batch.
        c.observe(256, 4);
        assert_eq!(c.size(), 512);
        c.observe(256 + 512, 4 + 10);
        assert_eq!(c.size(), 1024);
        // A third silent: the queue on the path overflowed.
        c.observe(768 + 1024, 14 + 340);
        assert_eq!(c.size(), 512);
        // Not a full batch yet: no change.
        c.observe(1792 + 100, 354);
        assert_eq!(c.size(), 512);
        // A firewall dropping everything: silence is the path's, the window still grows.
        let mut f = Congestion::new(4096);
        for i in 1..=10 {
            f.observe(i * 4096, i * 4096);
        }
        assert_eq!(f.size(), 4096);
        let mut small = Congestion::new(8);
        assert_eq!(small.size(), 8);
        small.observe(64, 64);
        small.observe(128, 64);
        small.observe(192, 128);
        assert!(small.size() >= 1 && small.size() <= 8);
    }

    #[test]
    fn threads_share_one_window() {
        // Two threads' answers add up in the one window of the pass.
        let w = Window::new(4096, 2);
        assert_eq!(
            w.share(),
            256,
            "each thread starts where a window of its own did"
        );
        w.cc.lock().unwrap().add(300, 3);
        assert_eq!(w.share(), 256, "half a batch: no change yet");
        w.cc.lock().unwrap().add(300, 3);
        assert_eq!(
            w.share(),
            512,
            "a batch of both threads' answers, little silence"
        );
        w.cc.lock().unwrap().add(1024, 600);
        assert_eq!(w.share(), 256, "a rise in silence halves it for both");
        assert_eq!(Window::new(8, 16).share(), 1);
    }

    #[test]
    fn winsock_errors_end_connects_as_errnos_do_on_linux() {
        assert!(matches!(wsa_ended(Some(10061)), Ended::NotOpen), "refused");
        assert!(matches!(wsa_ended(Some(10054)), Ended::NotOpen), "reset");
        assert!(matches!(wsa_ended(Some(10065)), Ended::NotOpen));
        assert!(matches!(wsa_ended(Some(10051)), Ended::NoRoute));
        assert!(matches!(wsa_ended(Some(10060)), Ended::Silent), "timed out");
        for busy in [10035, 10049, 10024, 10055, 10048] {
            assert!(matches!(wsa_ended(Some(busy)), Ended::Retry), "{busy}");
        }
        assert!(
            matches!(wsa_ended(Some(10013)), Ended::Error),
            "access denied"
        );
        assert!(matches!(wsa_ended(None), Ended::Error));
    }

    /// The passes, settling and confirmation over a stand-in engine: what a Windows or Linux
    /// engine reports becomes the same outcomes (accepted, unanswered, passes, settled).
    #[test]
    fn passes_settle_and_confirm_over_any_engine() {
        use std::collections::HashMap;
        use std::sync::Mutex;
        let a: IpAddr = "192.0.2.1".parse().unwrap(); // two open ports
        let b: IpAddr = "192.0.2.2".parse().unwrap(); // a firewall: all silent
        let c: IpAddr = "192.0.2.3".parse().unwrap(); // two lost SYNs, answered on pass 2
        let d: IpAddr = "192.0.2.4".parse().unwrap(); // one port silent for good
        let e: IpAddr = "192.0.2.5".parse().unwrap(); // port k answers on pass k only
        let plan: Vec<(IpAddr, Vec<u16>)> = vec![
            (a, (1..=100).collect()),
            (b, (1..=50).collect()),
            (c, (1..=20).collect()),
            (d, vec![1, 2, 3]),
            (e, (1..=7).collect()),
            (a, vec![]),
        ];
        let asked: Mutex<HashMap<SocketAddr, u32>> = Mutex::new(HashMap::new());
        let engine = |targets: &[SocketAddr],
                      _: Duration,
                      _: usize,
                      _: usize,
                      progress: &(dyn Fn(u64) + Sync)|
         -> Pass {
            let mut out = Pass::default();
            let mut asked = asked.lock().unwrap();
            for &t in targets {
                let n = asked.entry(t).or_insert(0);
                *n += 1;
                let (ip, port, n) = (t.ip(), t.port(), *n);
                let silent = ip == b
                    || (ip == c && (port == 5 || port == 9) && n == 1)
                    || (ip == d && port == 1)
                    || (ip == e && u32::from(port) != n);
                let open = (ip == a && (port == 22 || port == 80)) || (ip == c && port == 9);
                let ended = if silent {
                    Ended::Silent
                } else if open {
                    Ended::Accepted
                } else {
                    Ended::NotOpen
                };
                match ended {
                    Ended::Accepted => out.accepted.push(t),
                    Ended::Silent => out.silent.push(t),
                    _ => {}
                }
            }
            progress(targets.len() as u64);
            out
        };
        let seen = std::sync::atomic::AtomicU64::new(0);
        let outs = sweep_with(
            &plan,
            &|_| false,
            Duration::from_millis(150),
            64,
            1,
            &|n| {
                seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            },
            &engine,
        );
        assert_eq!(
            seen.into_inner(),
            100 + 50 + 20 + 3 + 7,
            "progress of the first pass"
        );
        let got: Vec<(Vec<u16>, u64, u32, bool)> = outs
            .iter()
            .map(|o| (o.accepted.clone(), o.unanswered, o.passes, o.settled))
            .collect();
        assert_eq!(
            got,
            vec![
                (vec![22, 80], 0, 1, true),
                (vec![], 50, 2, true),
                (vec![9], 0, 2, true),
                (vec![], 1, 2, true),
                (vec![], 2, MAX_PASSES, false),
                (vec![], 0, 0, true),
            ]
        );
        // Each accepted port was asked again to confirm it (remote addresses: one more pass).
        let asked = asked.into_inner().unwrap();
        assert_eq!(asked[&SocketAddr::new(a, 22)], 2);
        assert_eq!(asked[&SocketAddr::new(c, 9)], 3);
        assert_eq!(asked[&SocketAddr::new(a, 23)], 1);
    }

    /// An address no port of which could be reached (no route) or tried (local errors) is not
    /// swept, with the reason: never "nothing open" over nothing.
    #[test]
    fn an_address_no_port_reached_is_not_swept() {
        let a: IpAddr = "192.0.2.1".parse().unwrap(); // no route
        let b: IpAddr = "192.0.2.2".parse().unwrap(); // every socket fails locally
        let c: IpAddr = "192.0.2.3".parse().unwrap(); // refused: swept, nothing open
        let plan: Vec<(IpAddr, Vec<u16>)> = vec![
            (a, (1..=10).collect()),
            (b, (1..=5).collect()),
            (c, (1..=5).collect()),
        ];
        let engine = |targets: &[SocketAddr],
                      _: Duration,
                      _: usize,
                      _: usize,
                      _: &(dyn Fn(u64) + Sync)|
         -> Pass {
            let mut out = Pass::default();
            for &t in targets {
                let ended = match t.ip() {
                    ip if ip == a => Ended::NoRoute,
                    ip if ip == b => Ended::Error,
                    _ => Ended::NotOpen,
                };
                out.record(ended, t);
            }
            out
        };
        let outs = sweep_with(
            &plan,
            &|_| false,
            Duration::from_millis(150),
            64,
            1,
            &|_| {},
            &engine,
        );
        assert_eq!(
            outs[0].not_swept.as_deref(),
            Some("network unreachable: 10 of 10 ports had no route from this host")
        );
        assert_eq!(
            outs[1].not_swept.as_deref(),
            Some("none of its 5 ports could be tried (local errors)")
        );
        assert_eq!(outs[1].errors, 5);
        assert_eq!(outs[2].not_swept, None);
        assert!(outs[2].settled && outs[2].accepted.is_empty());
    }
}
