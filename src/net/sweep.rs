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
    port: u16,
    generation: u64,
}

/// How one connect ended.
enum Ended {
    Accepted,
    NotOpen,
    /// Connected to itself (simultaneous open on loopback): nothing listens there.
    SelfConnect,
    /// Out of local resources (descriptors, ephemeral ports): try the port again later.
    Retry,
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

/// One thread's share of the sweep.
fn worker(
    address: IpAddr,
    ports: &[u16],
    timeout: Duration,
    window: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> SweepOutcome {
    let mut out = SweepOutcome::default();
    let Ok(ep) = Epoll::new() else {
        out.errors = ports.len() as u64;
        progress(ports.len() as u64);
        return out;
    };
    let domain = Domain::for_address(SocketAddr::new(address, 0));
    let window = window.max(1);
    let mut slots: Vec<Slot> = Vec::with_capacity(window);
    let mut free: Vec<usize> = Vec::new();
    let mut expiry: VecDeque<(Instant, usize, u64)> = VecDeque::new();
    let mut todo: VecDeque<u16> = ports.iter().copied().collect();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut live = 0usize;
    let mut limit = window;
    let mut done = 0u64;
    let mut reported = 0u64;
    let mut generation = 0u64;
    // Resource shortages retry with backoff; a bounded number of times in total.
    let mut retries_left = ports.len() * 2 + 64;

    let finish = |ended: Ended, port: u16, out: &mut SweepOutcome, done: &mut u64| match ended {
        Ended::Accepted => {
            out.accepted.push(port);
            *done += 1;
        }
        Ended::NotOpen => *done += 1,
        Ended::SelfConnect => {
            out.discarded += 1;
            *done += 1;
        }
        Ended::Error | Ended::Retry => {
            out.errors += 1;
            *done += 1;
        }
    };

    loop {
        let mut starved = false;
        // Start a bounded batch per turn: harvesting answers often keeps their timers honest.
        let mut batch = 0;
        while live < limit && batch < 256 {
            batch += 1;
            let Some(port) = todo.pop_front() else { break };
            let sock = match new_socket(domain) {
                Ok(s) => s,
                Err(e) => {
                    if matches!(errno_ended(&e), Ended::Retry) && retries_left > 0 {
                        retries_left -= 1;
                        todo.push_front(port);
                        limit = live.max(1);
                        starved = true;
                        break;
                    }
                    finish(Ended::Error, port, &mut out, &mut done);
                    continue;
                }
            };
            let target = SockAddr::from(SocketAddr::new(address, port));
            match sock.connect(&target) {
                Ok(()) => {
                    finish(accepted(&sock), port, &mut out, &mut done);
                    abort(sock);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
                    // On loopback the answer is usually in before connect() returns: take it
                    // now and skip epoll for this socket.
                    if let Ok(Some(e)) = sock.take_error() {
                        finish(errno_ended(&e), port, &mut out, &mut done);
                        continue;
                    }
                    let idx = free.pop().unwrap_or_else(|| {
                        slots.push(Slot {
                            sock: None,
                            port: 0,
                            generation: 0,
                        });
                        slots.len() - 1
                    });
                    generation += 1;
                    if ep.add(sock.as_raw_fd(), idx as u64).is_err() {
                        free.push(idx);
                        finish(Ended::Error, port, &mut out, &mut done);
                        continue;
                    }
                    slots[idx] = Slot {
                        sock: Some(sock),
                        port,
                        generation,
                    };
                    expiry.push_back((Instant::now() + timeout, idx, generation));
                    live += 1;
                }
                Err(e) => match errno_ended(&e) {
                    Ended::Retry if retries_left > 0 => {
                        retries_left -= 1;
                        todo.push_back(port);
                        limit = live.max(1);
                        starved = true;
                        break;
                    }
                    ended => finish(ended, port, &mut out, &mut done),
                },
            }
        }
        if live == 0 && todo.is_empty() {
            break;
        }
        if live == 0 && starved {
            // Out of ephemeral ports or descriptors with nothing of ours in flight: wait a bit.
            std::thread::sleep(Duration::from_millis(5));
            limit = window;
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
            let ended = if matches!(ended, Ended::Retry) {
                Ended::Error
            } else {
                ended
            };
            finish(ended, slot.port, &mut out, &mut done);
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
                // ask the socket itself before calling it filtered.
                if let Some(sock) = slots[idx].sock.take() {
                    let ended = match sock.take_error() {
                        Ok(Some(e)) => errno_ended(&e),
                        Ok(None) if sock.peer_addr().is_ok() => accepted(&sock),
                        _ => Ended::NotOpen,
                    };
                    let ended = if matches!(ended, Ended::Retry) {
                        Ended::Error
                    } else {
                        ended
                    };
                    finish(ended, slots[idx].port, &mut out, &mut done);
                    abort(sock);
                }
                free.push(idx);
                live -= 1;
            }
        }
        if limit < window && !starved {
            limit = (limit * 2).min(window);
        }
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

/// Sweeps `ports` of `address` with `threads` threads and `window` connects in flight in all;
/// returns the ports that accepted a connection from nobody but a real listener.
pub(crate) fn sweep(
    address: IpAddr,
    ports: &[u16],
    timeout: Duration,
    window: usize,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> SweepOutcome {
    let threads = threads.clamp(1, 64);
    let shares: Vec<Vec<u16>> = (0..threads)
        .map(|t| ports.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    let per_thread = (window / threads).max(1);
    let mut total = SweepOutcome::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .iter()
            .map(|share| s.spawn(move || worker(address, share, timeout, per_thread, progress)))
            .collect();
        for h in handles {
            match h.join() {
                Ok(o) => {
                    total.accepted.extend(o.accepted);
                    total.errors += o.errors;
                    total.discarded += o.discarded;
                }
                Err(_) => total.errors += 1,
            }
        }
    });
    // Every sweep socket is closed now. Two of them could have connected to each other on
    // loopback (each one's ephemeral port being the other's target); alone, a connect can only
    // reach a real listener or itself.
    let confirm = timeout.max(Duration::from_millis(200));
    let before = total.accepted.len();
    total.accepted.retain(|&port| {
        let Ok(sock) = new_socket(Domain::for_address(SocketAddr::new(address, port))) else {
            return false;
        };
        let _ = sock.set_nonblocking(false);
        let ok =
            match sock.connect_timeout(&SockAddr::from(SocketAddr::new(address, port)), confirm) {
                Ok(()) => matches!(accepted(&sock), Ended::Accepted),
                Err(_) => false,
            };
        abort(sock);
        ok
    });
    total.discarded += (before - total.accepted.len()) as u64;
    total.accepted.sort_unstable();
    total.accepted.dedup();
    total
}
