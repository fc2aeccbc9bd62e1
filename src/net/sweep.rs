//! The unexpected-port sweep: non-blocking TCP connects to thousands of ports, driven by one
//! raw epoll loop per thread (Linux), then a lone re-connect to confirm each port that accepted.
//!
//! Why not tokio: a 65,535-port sweep is bound by syscalls, and the reactor's per-socket
//! registration and task wake-ups cost about as much as the connects themselves; this loop
//! matches nmap's connect scan per core and splits the ports over the cores.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use super::probe::SweepOutcome;

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
}

/// How one connect ended.
enum Ended {
    Accepted,
    NotOpen,
    /// Connected to itself (simultaneous open on loopback): nothing listens there.
    SelfConnect,
    /// Out of local resources (descriptors, ephemeral ports): try the port again later.
    Retry,
    /// No answer before the timeout: lost, or dropped by a firewall (a later pass asks again).
    Silent,
    Error,
}

fn errno_ended(e: &io::Error) -> Ended {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED | libc::ECONNRESET | libc::EHOSTUNREACH | libc::ENETUNREACH) => {
            Ended::NotOpen
        }
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

fn new_socket(domain: Domain) -> io::Result<Socket> {
    Socket::new(domain, Type::STREAM.nonblocking(), None)
}

/// Only a connected socket can leave a TIME_WAIT behind; this one closes with a reset instead.
/// (Set at close time, saving a syscall on each of the thousands of refused ports.)
fn abort(sock: Socket) {
    let _ = sock.set_linger(Some(Duration::ZERO));
    drop(sock);
}

struct Epoll(OwnedFd);

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

/// The connects one thread keeps in flight, adapted to the path: a burst larger than a queue
/// on the way (a TUN device holds 500 packets) is partly dropped, and every drop costs a whole
/// timeout and a retry. Judged per batch of answers: while the share of silent connects stays
/// near the lowest share seen (random loss, or a firewall dropping everything: that share is
/// the path's, not ours), the window doubles up to `max`; when it rises clearly above, the
/// window halves (never below `MIN`).
struct Congestion {
    size: usize,
    max: usize,
    /// The lowest silent share of a batch so far.
    base: f64,
    batch_done: u64,
    batch_silent: u64,
}

impl Congestion {
    const MIN: usize = 32;
    const INITIAL: usize = 256;

    fn new(max: usize) -> Congestion {
        Congestion {
            size: Congestion::INITIAL.min(max).max(1),
            max: max.max(1),
            base: 1.0,
            batch_done: 0,
            batch_silent: 0,
        }
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

/// One thread's share of one pass: connects to every target, `window` at a time; a target that
/// stays silent is asked once more in the same pass before it counts as silent.
fn worker(
    targets: &[SocketAddr],
    timeout: Duration,
    window: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Pass {
    let mut out = Pass::default();
    let Ok(ep) = Epoll::new() else {
        out.errors = targets.to_vec();
        progress(targets.len() as u64);
        return out;
    };
    let window = window.max(1);
    let mut slots: Vec<Slot> = Vec::with_capacity(window);
    let mut free: Vec<usize> = Vec::new();
    let mut expiry: VecDeque<(Instant, usize, u64)> = VecDeque::new();
    let mut todo: VecDeque<SocketAddr> = targets.iter().copied().collect();
    // Targets already asked twice in this pass, and how many were put back for it.
    let mut asked_again: std::collections::HashSet<SocketAddr> = std::collections::HashSet::new();
    let mut requeued = 0u64;
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut live = 0usize;
    let mut cc = Congestion::new(window);
    let mut limit = cc.size();
    let mut done = 0u64;
    let mut reported = 0u64;
    let mut generation = 0u64;
    // Resource shortages retry with backoff; a bounded number of times in total.
    let mut retries_left = targets.len() * 2 + 64;

    let finish = |ended: Ended, target: SocketAddr, out: &mut Pass, done: &mut u64| {
        *done += 1;
        match ended {
            Ended::Accepted => out.accepted.push(target),
            Ended::NotOpen => {}
            Ended::SelfConnect => out.discarded.push(target),
            Ended::Silent => out.silent.push(target),
            Ended::Error | Ended::Retry => out.errors.push(target),
        }
    };

    loop {
        let mut starved = false;
        // Start a bounded batch per turn: harvesting answers often keeps their timers honest.
        let mut batch = 0;
        while live < limit && batch < 256 {
            batch += 1;
            let Some(target) = todo.pop_front() else {
                break;
            };
            let sock = match new_socket(Domain::for_address(target)) {
                Ok(s) => s,
                Err(e) => {
                    if matches!(errno_ended(&e), Ended::Retry) && retries_left > 0 {
                        retries_left -= 1;
                        todo.push_front(target);
                        limit = live.max(1);
                        starved = true;
                        break;
                    }
                    finish(Ended::Error, target, &mut out, &mut done);
                    continue;
                }
            };
            match sock.connect(&SockAddr::from(target)) {
                Ok(()) => {
                    finish(accepted(&sock), target, &mut out, &mut done);
                    abort(sock);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    // On loopback the answer is usually in before connect() returns: take it
                    // now and skip epoll for this socket.
                    if let Ok(Some(e)) = sock.take_error() {
                        finish(errno_ended(&e), target, &mut out, &mut done);
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
                        finish(Ended::Error, target, &mut out, &mut done);
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
                Err(e) => match errno_ended(&e) {
                    Ended::Retry if retries_left > 0 => {
                        retries_left -= 1;
                        todo.push_back(target);
                        limit = live.max(1);
                        starved = true;
                        break;
                    }
                    ended => finish(ended, target, &mut out, &mut done),
                },
            }
        }
        if live == 0 && todo.is_empty() {
            break;
        }
        if live == 0 && starved {
            // Out of ephemeral ports or descriptors with nothing of ours in flight: wait a bit.
            std::thread::sleep(Duration::from_millis(5));
            limit = cc.size();
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
                Ok(Some(e)) => errno_ended(&e),
                Err(_) => Ended::Error,
            };
            finish(ended, slot.target, &mut out, &mut done);
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
                        Ok(Some(e)) => errno_ended(&e),
                        Ok(None) if sock.peer_addr().is_ok() => accepted(&sock),
                        _ => Ended::Silent,
                    };
                    let target = slots[idx].target;
                    if matches!(ended, Ended::Silent) && asked_again.insert(target) {
                        // Once more within this pass, at the back of the queue: a lost SYN or
                        // reset costs no pass of its own.
                        todo.push_back(target);
                        requeued += 1;
                    } else {
                        finish(ended, target, &mut out, &mut done);
                    }
                    abort(sock);
                }
                free.push(idx);
                live -= 1;
            }
        }
        if limit < window && !starved {
            limit = (limit * 2).min(cc.size());
        }
        cc.observe(done + requeued, out.silent.len() as u64 + requeued);
        limit = limit.min(cc.size());
        if done - reported >= 1024 {
            progress(done - reported);
            reported = done;
        }
    }
    if done > reported {
        progress(done - reported);
    }
    out
}

/// One pass over `targets` with `threads` threads and `window` connects in flight in all.
fn pass(
    targets: &[SocketAddr],
    timeout: Duration,
    window: usize,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Pass {
    // Small passes (retries, confirmations) need no second thread.
    let threads = threads.clamp(1, 64).min(targets.len().div_ceil(256).max(1));
    let per_thread = (window / threads).max(1);
    let mut total = Pass::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share: Vec<SocketAddr> =
                    targets.iter().copied().skip(t).step_by(threads).collect();
                s.spawn(move || worker(&share, timeout, per_thread, progress))
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(o) => {
                    total.accepted.extend(o.accepted);
                    total.silent.extend(o.silent);
                    total.errors.extend(o.errors);
                    total.discarded.extend(o.discarded);
                }
                // A panicked thread's share was not swept: an error for each of its ports.
                Err(_) => total.errors.push(SocketAddr::new(targets[0].ip(), 0)),
            }
        }
    });
    total
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
/// confirms each port that accepted: one outcome per address, in `plan`'s order.
pub(crate) fn sweep(
    plan: &[(IpAddr, Vec<u16>)],
    local: &dyn Fn(IpAddr) -> bool,
    timeout: Duration,
    window: usize,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
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
        for (list, field) in [(&p.errors, 0), (&p.discarded, 1)] {
            for t in list {
                if let Some(i) = slot(t.ip()) {
                    if field == 0 {
                        outcomes[i].errors += 1;
                    } else {
                        outcomes[i].discarded += 1;
                    }
                }
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
    for (o, (_, ports)) in outcomes.iter_mut().zip(plan) {
        if ports.is_empty() {
            o.settled = true;
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
}
