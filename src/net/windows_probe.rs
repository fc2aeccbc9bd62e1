//! The prober's Windows engine: the planned ports probed from one WSAPoll loop (nonblocking
//! connects and datagrams, `max_in_flight` at once) instead of tokio tasks, whose IOCP/AFD path
//! stalls under Wine (net::windows, docs/windows.md). Same statuses and details as the tokio path;
//! the timeout is the fixed `opts.timeout` (no adaptive shortening).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::windows::io::AsRawSocket;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use windows_sys::Win32::Networking::WinSock::{
    INVALID_SOCKET, POLLERR, POLLHUP, POLLRDNORM, POLLWRNORM, SOCKET, WSAPOLLFD, WSAPoll,
};

use super::{Key, Outcome, ProbeOptions, Status, classify_error, unspecified};
use crate::catalog::Transport;
use crate::net::Secret;
use crate::net::proto::{self, MAX_REPLY_LEN, Nonce};

enum Conn {
    /// TCP, connect in progress.
    Connecting(Socket),
    /// TCP, request sent, reading the reply.
    Reading(TcpStream),
    Udp(UdpSocket),
    /// Between two states (never polled).
    Moving,
}

struct Flight {
    index: usize,
    addr: SocketAddr,
    conn: Conn,
    start: Instant,
    deadline: Instant,
    nonces: Vec<Nonce>,
    buf: Vec<u8>,
}

fn done(f: &Flight, status: Status, rtt: bool, detail: impl Into<String>) -> Outcome {
    Outcome::new(status, rtt.then(|| f.start.elapsed()), detail)
}

fn verified(f: &Flight) -> Outcome {
    Outcome::verified(f.start.elapsed())
}

/// The next nonce and its request, or the error outcome of a failed random source.
fn request(secret: &Secret, port: u16) -> Result<(Nonce, [u8; proto::REQUEST_LEN]), Outcome> {
    let nonce = proto::new_nonce()
        .map_err(|e| Outcome::new(Status::Error, None, format!("random source: {e}")))?;
    Ok((nonce, proto::encode_request(secret, &nonce, port)))
}

fn start(index: usize, key: Key, timeout: Duration) -> Result<Flight, Outcome> {
    let addr = SocketAddr::new(key.address, key.port);
    let now = Instant::now();
    let conn = match key.transport {
        Transport::Tcp => {
            let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .map_err(|e| Outcome::new(Status::Error, None, format!("socket: {e}")))?;
            // No TIME_WAIT by the thousand: close with a reset.
            let _ = sock.set_linger(Some(Duration::ZERO));
            match sock.connect(&SockAddr::from(addr)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    let (status, detail) = classify_error(&e);
                    return Err(Outcome::new(status, None, detail));
                }
            }
            Conn::Connecting(sock)
        }
        Transport::Udp => {
            let sock = UdpSocket::bind(unspecified(&addr))
                .and_then(|s| s.connect(addr).map(|()| s))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .map_err(|e| Outcome::new(Status::Error, None, format!("socket: {e}")))?;
            Conn::Udp(sock)
        }
    };
    Ok(Flight {
        index,
        addr,
        conn,
        start: now,
        deadline: now + timeout,
        nonces: Vec::new(),
        buf: Vec::with_capacity(MAX_REPLY_LEN + 1),
    })
}

/// A UDP error as the Linux path words it: Windows reports an ICMP port unreachable on a
/// connected socket as WSAECONNRESET where Linux says ECONNREFUSED.
fn udp_error(e: &io::Error) -> (Status, String) {
    if e.kind() == io::ErrorKind::ConnectionReset {
        return (Status::Closed, "refused".into());
    }
    classify_error(e)
}

/// Advances one flight; `Some` when it has its outcome.
fn step(f: &mut Flight, secret: &Secret, opts: &ProbeOptions, revents: i16) -> Option<Outcome> {
    let port = f.addr.port();
    let timeout = opts.timeout;
    match &mut f.conn {
        Conn::Connecting(sock) => {
            // Also asked without an event: WSAPoll before Windows 10 2004 never reports a
            // refused connect.
            match sock.take_error() {
                Ok(Some(e)) => {
                    let (status, detail) = classify_error(&e);
                    return Some(done(f, status, status == Status::Closed, detail));
                }
                Err(e) => return Some(done(f, Status::Error, false, e.to_string())),
                Ok(None) => {}
            }
            if revents & (POLLWRNORM | POLLERR | POLLHUP) == 0 {
                return None;
            }
            let (Ok(local), Ok(peer)) = (sock.local_addr(), sock.peer_addr()) else {
                return Some(done(f, Status::Closed, true, "refused"));
            };
            if local == peer {
                return Some(done(
                    f,
                    Status::Closed,
                    true,
                    "self-connect (nothing listening)",
                ));
            }
            let (nonce, req) = match request(secret, port) {
                Ok(r) => r,
                Err(o) => return Some(o),
            };
            f.nonces.push(nonce);
            let Conn::Connecting(sock) = std::mem::replace(&mut f.conn, Conn::Moving) else {
                return None;
            };
            let mut stream: TcpStream = sock.into();
            let connected = f.start.elapsed();
            if let Err(e) = stream.write_all(&req) {
                return Some(Outcome::new(
                    Status::Open,
                    Some(connected),
                    format!("connected, then {e}"),
                ));
            }
            f.deadline = Instant::now() + timeout;
            f.conn = Conn::Reading(stream);
            None
        }
        Conn::Reading(stream) => {
            loop {
                let want = proto::reply_len(&f.buf)
                    .unwrap_or(MAX_REPLY_LEN)
                    .min(MAX_REPLY_LEN);
                if f.buf.len() >= want {
                    break;
                }
                let mut chunk = [0u8; MAX_REPLY_LEN];
                match stream.read(&mut chunk[..want - f.buf.len()]) {
                    Ok(0) => break,
                    Ok(k) => f.buf.extend_from_slice(&chunk[..k]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                    Err(e) => {
                        return Some(done(f, Status::Open, true, format!("connected, then {e}")));
                    }
                }
            }
            if f.buf.is_empty() {
                return Some(done(
                    f,
                    Status::Open,
                    true,
                    "connected, but closed without a reply",
                ));
            }
            Some(
                match proto::decode_reply(secret, &f.buf, &f.nonces[0], port) {
                    Ok(_) => verified(f),
                    Err(e) => done(
                        f,
                        Status::Open,
                        true,
                        format!("answer is not our token: {e}"),
                    ),
                },
            )
        }
        Conn::Moving => Some(done(f, Status::Error, false, "probe state lost")),
        Conn::Udp(sock) => {
            let mut buf = [0u8; MAX_REPLY_LEN + 1];
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let bytes = &buf[..n];
                    if f.nonces
                        .iter()
                        .any(|nonce| proto::decode_reply(secret, bytes, nonce, port).is_ok())
                    {
                        return Some(verified(f));
                    }
                    let why = f
                        .nonces
                        .first()
                        .and_then(|nonce| proto::decode_reply(secret, bytes, nonce, port).err())
                        .map_or_else(String::new, |e| e.to_string());
                    return Some(done(
                        f,
                        Status::Open,
                        true,
                        format!("answer is not our token: {why}"),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    let (status, detail) = udp_error(&e);
                    return Some(done(f, status, status == Status::Closed, detail));
                }
            }
            // Attempt i goes out at i/attempts of the timeout, each with a fresh nonce.
            let attempts = opts.udp_attempts.max(1) as usize;
            let due = f.start + timeout.mul_f64(f.nonces.len() as f64 / attempts as f64);
            if f.nonces.len() < attempts && Instant::now() >= due {
                let (nonce, req) = match request(secret, port) {
                    Ok(r) => r,
                    Err(o) => return Some(o),
                };
                f.nonces.push(nonce);
                if let Err(e) = sock.send(&req) {
                    let (status, detail) = udp_error(&e);
                    return Some(done(f, status, status == Status::Closed, detail));
                }
            }
            None
        }
    }
}

fn expired(f: &Flight, timeout: Duration) -> Outcome {
    match &f.conn {
        Conn::Reading(_) => Outcome::new(
            Status::Open,
            Some(f.start.elapsed()),
            "connected, but no reply to the token",
        ),
        _ => Outcome::new(
            Status::Filtered,
            None,
            format!("no answer within {} ms", timeout.as_millis()),
        ),
    }
}

fn raw(f: &Flight) -> SOCKET {
    (match &f.conn {
        Conn::Connecting(s) => s.as_raw_socket(),
        Conn::Reading(s) => s.as_raw_socket(),
        Conn::Udp(s) => s.as_raw_socket(),
        Conn::Moving => return INVALID_SOCKET,
    }) as SOCKET
}

/// Probes every key, `in_flight` at once; calls `finished` as each one ends.
pub(super) fn probe_all(
    keys: &[Key],
    secret: &Secret,
    opts: &ProbeOptions,
    in_flight: usize,
    finished: &mut dyn FnMut(),
) -> Vec<Option<Outcome>> {
    let mut out: Vec<Option<Outcome>> = vec![None; keys.len()];
    let mut flights: Vec<Flight> = Vec::new();
    let mut fds: Vec<WSAPOLLFD> = Vec::new();
    let mut next = 0;
    while next < keys.len() || !flights.is_empty() {
        while next < keys.len() && flights.len() < in_flight.max(1) {
            match start(next, keys[next], opts.timeout) {
                Ok(mut f) => {
                    // A datagram's first attempt goes out now, not at the next turn.
                    match step(&mut f, secret, opts, 0) {
                        Some(o) => {
                            out[f.index] = Some(o);
                            finished();
                        }
                        None => flights.push(f),
                    }
                }
                Err(o) => {
                    out[next] = Some(o);
                    finished();
                }
            }
            next += 1;
        }
        fds.clear();
        let now = Instant::now();
        let mut wait = Duration::from_millis(50);
        for f in &flights {
            wait = wait.min(f.deadline.saturating_duration_since(now));
            fds.push(WSAPOLLFD {
                fd: raw(f),
                events: if matches!(f.conn, Conn::Connecting(_)) {
                    POLLWRNORM
                } else {
                    POLLRDNORM
                },
                revents: 0,
            });
        }
        if !fds.is_empty() {
            // SAFETY: fds is a valid array of fds.len() entries for the duration of the call.
            let n = unsafe {
                WSAPoll(
                    fds.as_mut_ptr(),
                    fds.len() as u32,
                    wait.as_millis() as i32 + 1,
                )
            };
            if n < 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let now = Instant::now();
        let mut k = 0;
        flights.retain_mut(|f| {
            let revents = fds.get(k).map_or(0, |p| p.revents);
            k += 1;
            let outcome = step(f, secret, opts, revents)
                .or_else(|| (now >= f.deadline).then(|| expired(f, opts.timeout)));
            match outcome {
                Some(o) => {
                    out[f.index] = Some(o);
                    finished();
                    false
                }
                None => true,
            }
        });
    }
    out
}
