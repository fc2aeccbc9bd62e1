//! Windows: the listener's socket loop (WSAPoll), who holds a busy port (the TCP/UDP owner tables)
//! and the excluded port ranges (`netsh`). The parsers and decoders are plain functions, tested on
//! every OS; only the system calls are behind `cfg(windows)`.
//!
//! Why a WSAPoll loop and not tokio for the listener: tokio (mio) waits on Windows sockets through
//! IOCP and one `IOCTL_AFD_POLL` per socket. Under Wine 8 that path stops delivering readiness
//! after a few hundred events when hundreds of sockets are registered (tests/wine/udpmany: 500
//! UDP sockets answer 61 datagrams, then nothing), while one WSAPoll over all of them keeps going
//! (tests/wine/udppoll.c: 1,602 sockets, 8,010 answers). WSAPoll is an ordinary Winsock call on
//! real Windows too, so the listener runs one code path, the one the Wine tests exercise.
//! docs/windows.md has the measurements.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::catalog::Transport;

/// One row of a Windows TCP or UDP owner table (`GetExtendedTcpTable` / `GetExtendedUdpTable`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRow {
    pub address: IpAddr,
    pub port: u16,
    /// TCP only: the row is a listening socket (`MIB_TCP_STATE_LISTEN`).
    pub listening: bool,
    pub pid: u32,
}

const MIB_TCP_STATE_LISTEN: u32 = 2;

type RowDecoder = fn(&[u8]) -> Option<TableRow>;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// A port as the tables store it: network byte order in the low 16 bits of a DWORD.
fn port_at(b: &[u8], at: usize) -> Option<u16> {
    let raw = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([raw[0], raw[1]]))
}

fn v6_at(b: &[u8], at: usize) -> Option<IpAddr> {
    let raw: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(IpAddr::V6(Ipv6Addr::from(raw)))
}

fn v4_at(b: &[u8], at: usize) -> Option<IpAddr> {
    let raw: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(raw)))
}

/// Decodes a `MIB_TCPTABLE_OWNER_PID` (IPv4) or `MIB_TCP6TABLE_OWNER_PID` (IPv6) buffer: a DWORD
/// count, then rows of 24 (IPv4) or 56 (IPv6) bytes. A short or inconsistent buffer yields the
/// rows that are whole, never a panic.
pub fn decode_tcp_table(buf: &[u8], v6: bool) -> Vec<TableRow> {
    let Some(n) = u32_at(buf, 0) else {
        return Vec::new();
    };
    let (size, row): (usize, RowDecoder) = if v6 {
        // ucLocalAddr[16] dwLocalScopeId dwLocalPort ucRemoteAddr[16] dwRemoteScopeId
        // dwRemotePort dwState dwOwningPid
        (56, |r| {
            Some(TableRow {
                address: v6_at(r, 0)?,
                port: port_at(r, 20)?,
                listening: u32_at(r, 48)? == MIB_TCP_STATE_LISTEN,
                pid: u32_at(r, 52)?,
            })
        })
    } else {
        // dwState dwLocalAddr dwLocalPort dwRemoteAddr dwRemotePort dwOwningPid
        (24, |r| {
            Some(TableRow {
                address: v4_at(r, 4)?,
                port: port_at(r, 8)?,
                listening: u32_at(r, 0)? == MIB_TCP_STATE_LISTEN,
                pid: u32_at(r, 20)?,
            })
        })
    };
    rows(buf, n, size, row)
}

/// Decodes a `MIB_UDPTABLE_OWNER_PID` (rows of 12 bytes) or `MIB_UDP6TABLE_OWNER_PID` (28).
pub fn decode_udp_table(buf: &[u8], v6: bool) -> Vec<TableRow> {
    let Some(n) = u32_at(buf, 0) else {
        return Vec::new();
    };
    let (size, row): (usize, RowDecoder) = if v6 {
        // ucLocalAddr[16] dwLocalScopeId dwLocalPort dwOwningPid
        (28, |r| {
            Some(TableRow {
                address: v6_at(r, 0)?,
                port: port_at(r, 20)?,
                listening: false,
                pid: u32_at(r, 24)?,
            })
        })
    } else {
        // dwLocalAddr dwLocalPort dwOwningPid
        (12, |r| {
            Some(TableRow {
                address: v4_at(r, 0)?,
                port: port_at(r, 4)?,
                listening: false,
                pid: u32_at(r, 8)?,
            })
        })
    };
    rows(buf, n, size, row)
}

fn rows(buf: &[u8], n: u32, size: usize, row: RowDecoder) -> Vec<TableRow> {
    // IPv6 rows are DWORD-aligned after the DWORD count; so are IPv4 rows.
    buf.get(4..)
        .unwrap_or_default()
        .chunks_exact(size)
        .take(n as usize)
        .filter_map(row)
        .collect()
}

fn covers(bound: IpAddr, wanted: IpAddr) -> bool {
    bound == wanted || bound.is_unspecified() || wanted.is_unspecified()
}

/// The pids holding `(address, transport, port)` in `rows`: a TCP bind conflicts with listeners
/// first (as on Linux, where the listener is what a reused address meets).
pub fn holder_pids(
    rows: &[TableRow],
    address: IpAddr,
    transport: Transport,
    port: u16,
) -> Vec<u32> {
    let matching: Vec<&TableRow> = rows
        .iter()
        .filter(|r| r.port == port && covers(r.address, address))
        .collect();
    let listening = transport == Transport::Tcp && matching.iter().any(|r| r.listening);
    let mut pids: Vec<u32> = matching
        .iter()
        .filter(|r| !listening || r.listening)
        .map(|r| r.pid)
        .filter(|&p| p != 0)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// The file name of an image path (`C:\Windows\System32\inetsrv\w3wp.exe` -> `w3wp.exe`).
pub fn image_name(path: &str) -> &str {
    path.rsplit(['\\', '/']).next().unwrap_or(path)
}

/// A range of ports Windows keeps for itself (Hyper-V, WinNAT, Docker): binds there fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExcludedRange {
    pub first: u16,
    pub last: u16,
    /// Marked `*` by netsh: an administered exclusion (`add excludedportrange`).
    pub administered: bool,
}

/// Parses `netsh interface ipv4 show excludedportrange protocol=tcp` (or udp): the rows of two
/// port numbers under the dashed rule, `*` marking administered ones. Headers, the footnote and
/// anything else are skipped, so a localized Windows (other header words) parses the same.
pub fn parse_excluded_ranges(text: &str) -> Vec<ExcludedRange> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(a), Some(b)) = (words.next(), words.next()) else {
            continue;
        };
        let (Ok(first), Ok(last)) = (a.parse::<u16>(), b.parse::<u16>()) else {
            continue;
        };
        let rest: Vec<&str> = words.collect();
        if first > last || rest.iter().any(|w| *w != "*") {
            continue;
        }
        out.push(ExcludedRange {
            first,
            last,
            administered: rest.contains(&"*"),
        });
    }
    out
}

/// The excluded range holding `port`, if any.
pub fn excluded_range_of(ranges: &[ExcludedRange], port: u16) -> Option<ExcludedRange> {
    ranges
        .iter()
        .copied()
        .find(|r| (r.first..=r.last).contains(&port))
}

/// The words a failed bind gets when the port is in an excluded range.
pub fn excluded_reason(r: ExcludedRange, transport: Transport) -> String {
    format!(
        "in a Windows excluded port range {}-{} ({}; see `netsh interface ipv4 show excludedportrange protocol={}`)",
        r.first,
        r.last,
        if r.administered {
            "an administered exclusion"
        } else {
            "reserved by Hyper-V/WinNAT or another service"
        },
        transport.as_str()
    )
}

#[cfg(windows)]
pub use sys::*;

#[cfg(windows)]
mod sys {
    use std::collections::HashMap;
    use std::io::{self, Read, Write};
    use std::net::{IpAddr, Shutdown, TcpListener, TcpStream, UdpSocket};
    use std::os::windows::io::AsRawSocket;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use windows_sys::Win32::Foundation::{CloseHandle, ERROR_INSUFFICIENT_BUFFER, NO_ERROR};
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        GetExtendedTcpTable, GetExtendedUdpTable, TCP_TABLE_OWNER_PID_ALL, UDP_TABLE_OWNER_PID,
    };
    use windows_sys::Win32::Networking::WinSock::{
        AF_INET, AF_INET6, POLLERR, POLLHUP, POLLRDNORM, POLLWRNORM, SOCKET, WSAPOLLFD, WSAPoll,
    };
    use windows_sys::Win32::System::Threading::{
        OpenProcess, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
        QueryFullProcessImageNameW,
    };

    use super::{ExcludedRange, TableRow, decode_tcp_table, decode_udp_table, holder_pids};
    use crate::catalog::Transport;
    use crate::net::listen::{Admission, Peek, SessionTable};
    use crate::net::sysinfo::Holder;

    /// The owner table of one transport and address family, or empty.
    fn table(transport: Transport, v6: bool) -> Vec<TableRow> {
        let family = u32::from(if v6 { AF_INET6 } else { AF_INET });
        let mut size: u32 = 0;
        let mut buf: Vec<u32> = Vec::new();
        // The table can grow between the size query and the read: a few tries.
        for _ in 0..4 {
            // SAFETY: buf holds `size` bytes (u32s keep the rows aligned); the calls write at most
            // that and report the size they need.
            let rc = unsafe {
                let p = buf.as_mut_ptr().cast();
                match transport {
                    Transport::Tcp => {
                        GetExtendedTcpTable(p, &mut size, 0, family, TCP_TABLE_OWNER_PID_ALL, 0)
                    }
                    Transport::Udp => {
                        GetExtendedUdpTable(p, &mut size, 0, family, UDP_TABLE_OWNER_PID, 0)
                    }
                }
            };
            if rc == NO_ERROR {
                // SAFETY: the u32 buffer viewed as the bytes the call filled.
                let bytes =
                    unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len() * 4) };
                let bytes = &bytes[..(size as usize).min(bytes.len())];
                return match transport {
                    Transport::Tcp => decode_tcp_table(bytes, v6),
                    Transport::Udp => decode_udp_table(bytes, v6),
                };
            }
            if rc != ERROR_INSUFFICIENT_BUFFER {
                break;
            }
            buf = vec![0u32; (size as usize).div_ceil(4) + 64];
            size = (buf.len() * 4) as u32;
        }
        Vec::new()
    }

    /// The image file name of a process (`w3wp.exe`), or empty where access is denied.
    fn process_name(pid: u32) -> String {
        // SAFETY: a query-only handle, closed below; the buffer size is passed in and out.
        unsafe {
            let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
            if h.is_null() {
                return String::new();
            }
            let mut buf = [0u16; 1024];
            let mut len = buf.len() as u32;
            let ok = QueryFullProcessImageNameW(h, PROCESS_NAME_WIN32, buf.as_mut_ptr(), &mut len);
            CloseHandle(h);
            if ok == 0 {
                return String::new();
            }
            let path = String::from_utf16_lossy(&buf[..len as usize]);
            super::image_name(&path).to_owned()
        }
    }

    /// For each query, the processes holding that port, from the Windows owner tables.
    pub fn holders(queries: &[(IpAddr, Transport, u16)]) -> Vec<Vec<Holder>> {
        if queries.is_empty() {
            return Vec::new();
        }
        let mut tables: HashMap<Transport, Vec<TableRow>> = HashMap::new();
        for t in [Transport::Tcp, Transport::Udp] {
            let mut rows = table(t, false);
            rows.extend(table(t, true));
            tables.insert(t, rows);
        }
        let mut names: HashMap<u32, String> = HashMap::new();
        queries
            .iter()
            .map(|&(address, transport, port)| {
                holder_pids(&tables[&transport], address, transport, port)
                    .into_iter()
                    .map(|pid| Holder {
                        pid,
                        name: names
                            .entry(pid)
                            .or_insert_with(|| process_name(pid))
                            .clone(),
                    })
                    .collect()
            })
            .collect()
    }

    /// The excluded port ranges of `transport` (IPv4 and IPv6), read from `netsh` (no shell).
    pub fn excluded_ranges(transport: Transport) -> Vec<ExcludedRange> {
        let mut out = Vec::new();
        for family in ["ipv4", "ipv6"] {
            let run = std::process::Command::new("netsh")
                .args([
                    "interface",
                    family,
                    "show",
                    "excludedportrange",
                    &format!("protocol={}", transport.as_str()),
                ])
                .stdin(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .output();
            if let Ok(o) = run {
                out.extend(super::parse_excluded_ranges(&String::from_utf8_lossy(
                    &o.stdout,
                )));
            }
        }
        out.sort_by_key(|r| (r.first, r.last));
        out.dedup();
        out
    }

    /// A socket the poll loop serves.
    pub(crate) enum Sock {
        Tcp(TcpListener),
        Udp(UdpSocket),
    }

    /// What the loop tells its caller, who keeps the counters.
    pub(crate) enum Note {
        /// A valid request answered on socket `n`.
        Answered(usize),
        Malformed,
        IdleTimeout,
        SessionRefused,
        /// A waiting session closed to make room (the caps of [`SessionTable`]).
        SessionEvicted,
    }

    /// The listener's limits, as on the tokio path (`ListenOptions`).
    pub(crate) struct PollOptions {
        pub request_len: usize,
        pub first_byte_timeout: Duration,
        pub idle_timeout: Duration,
    }

    struct Session {
        /// Its place in the [`SessionTable`].
        id: u64,
        stream: TcpStream,
        sock: usize,
        buf: Vec<u8>,
        reply: Option<(Vec<u8>, usize)>,
        /// No first byte by then: closed (a held-open idle connection).
        first_byte: Instant,
        /// Worth a read or write: new, or the last poll said so. Only such sessions are stepped,
        /// so hundreds of idle ones cost nothing per pass (under Wine every refused read is a
        /// round trip to the Wine server).
        ready: bool,
        deadline: Instant,
    }

    impl Session {
        /// When it times out: the first-byte deadline until a byte came, then the whole one.
        fn due(&self) -> Instant {
            if self.buf.is_empty() && self.reply.is_none() {
                self.first_byte.min(self.deadline)
            } else {
                self.deadline
            }
        }
    }

    const WSAEMSGSIZE: i32 = 10040;

    /// The reply to a request on socket `n` (the UDP source given), or `None`.
    pub(crate) type Answer<'a> = dyn Fn(usize, &[u8], Option<IpAddr>) -> Option<Vec<u8>> + 'a;

    /// Serves `socks` until `stop` is set: UDP requests are answered in place, TCP sessions are
    /// read, answered and closed within the loop. `answer(n, request, udp_source)` gives the
    /// reply to a request on socket `n`, or `None` (it counts its own reasons).
    ///
    /// TCP is served first and again after every [`UDP_CHUNK`] datagrams: a node's 1,603 UDP
    /// probes arrive at once, and a TCP session must not wait for all of them (a prober on a
    /// LAN gives it a few hundred milliseconds).
    ///
    /// TCP sessions are admitted through `table`, the listener's one [`SessionTable`] (the same
    /// caps and eviction as the tokio path: one host's idle connections only ever evict its own,
    /// so a prober's connection is always served).
    pub(crate) fn serve(
        socks: &[Sock],
        opts: &PollOptions,
        table: &mut SessionTable,
        answer: &Answer<'_>,
        note: &dyn Fn(Note),
        stop: &AtomicBool,
    ) {
        let tcp: Vec<(usize, &TcpListener)> = socks
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Sock::Tcp(l) => Some((i, l)),
                Sock::Udp(_) => None,
            })
            .collect();
        let mut sessions: Vec<Session> = Vec::new();
        let mut fds: Vec<WSAPOLLFD> = Vec::with_capacity(socks.len());
        let mut buf = vec![0u8; opts.request_len + 1];
        while !stop.load(Ordering::Relaxed) {
            fds.clear();
            for s in socks {
                let raw = match s {
                    Sock::Tcp(l) => l.as_raw_socket(),
                    Sock::Udp(u) => u.as_raw_socket(),
                };
                fds.push(WSAPOLLFD {
                    fd: raw as SOCKET,
                    events: POLLRDNORM,
                    revents: 0,
                });
            }
            let now = Instant::now();
            let mut wait = Duration::from_millis(100);
            for s in &sessions {
                wait = wait.min(s.due().saturating_duration_since(now));
                fds.push(WSAPOLLFD {
                    fd: s.stream.as_raw_socket() as SOCKET,
                    events: if s.reply.is_some() {
                        POLLWRNORM
                    } else {
                        POLLRDNORM
                    },
                    revents: 0,
                });
            }
            // SAFETY: fds is a valid array of fds.len() entries for the duration of the call.
            let n = unsafe {
                WSAPoll(
                    fds.as_mut_ptr(),
                    fds.len() as u32,
                    wait.as_millis() as i32 + 1,
                )
            };
            if n < 0 {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            for (s, fd) in sessions.iter_mut().zip(&fds[socks.len()..]) {
                s.ready |= fd.revents != 0;
            }
            tcp_pass(&tcp, &mut sessions, table, opts, answer, note);
            let mut since = 0;
            for (i, s) in socks.iter().enumerate() {
                let Sock::Udp(u) = s else { continue };
                if n == 0 || fds[i].revents & (POLLRDNORM | POLLERR | POLLHUP) == 0 {
                    continue;
                }
                since += udp_pass(u, i, &mut buf, opts, answer, note);
                if since >= UDP_CHUNK {
                    tcp_pass(&tcp, &mut sessions, table, opts, answer, note);
                    since = 0;
                }
            }
            tcp_pass(&tcp, &mut sessions, table, opts, answer, note);
            let now = Instant::now();
            sessions.retain(|s| {
                let alive = now < s.due();
                if !alive {
                    note(Note::IdleTimeout);
                    table.remove(s.id);
                }
                alive
            });
        }
    }

    /// Datagrams answered between two passes over the TCP sockets.
    const UDP_CHUNK: usize = 128;

    /// Answers what waits on one UDP socket (at most 64 datagrams, so one flooded port cannot
    /// starve the others); returns how many it read.
    fn udp_pass(
        u: &UdpSocket,
        i: usize,
        buf: &mut [u8],
        opts: &PollOptions,
        answer: &Answer<'_>,
        note: &dyn Fn(Note),
    ) -> usize {
        let mut read = 0;
        for _ in 0..64 {
            match u.recv_from(buf) {
                Ok((len, peer)) if len == opts.request_len => {
                    read += 1;
                    if let Some(reply) = answer(i, &buf[..len], Some(peer.ip())) {
                        if u.send_to(&reply, peer).is_ok() {
                            note(Note::Answered(i));
                        }
                    }
                }
                Ok(_) => {
                    read += 1;
                    note(Note::Malformed);
                }
                Err(e) if e.raw_os_error() == Some(WSAEMSGSIZE) => {
                    read += 1;
                    note(Note::Malformed);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                // A port-unreachable for an earlier reply (WSAECONNRESET), or the like: go on.
                Err(_) => read += 1,
            }
        }
        read
    }

    /// Accepts on every TCP listener and advances every session (nonblocking: a socket with
    /// nothing to do costs one refused call).
    fn tcp_pass(
        tcp: &[(usize, &TcpListener)],
        sessions: &mut Vec<Session>,
        table: &mut SessionTable,
        opts: &PollOptions,
        answer: &Answer<'_>,
        note: &dyn Fn(Note),
    ) {
        // Reset, not FIN: a refused or evicted connection leaves no TIME_WAIT behind.
        let reset = |s: &TcpStream| {
            let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
        };
        for &(i, l) in tcp {
            for _ in 0..64 {
                let Ok((stream, peer)) = l.accept() else {
                    break;
                };
                if stream.set_nonblocking(true).is_err() {
                    note(Note::SessionRefused);
                    reset(&stream);
                    continue;
                }
                let now = tokio::time::Instant::now();
                // The session's own socket: its entry leaves the table before the stream closes
                // (eviction inside `admit`, `remove` before every drop below).
                let socket = Some(Peek::Raw(stream.as_raw_socket()));
                let (id, gone) = match table.admit(peer.ip(), now, socket).0 {
                    Admission::Admitted(id, gone) => (id, gone),
                    Admission::Refused => {
                        note(Note::SessionRefused);
                        reset(&stream);
                        continue;
                    }
                };
                if !gone.is_empty() {
                    sessions.retain(|s| {
                        let keep = !gone.contains(&s.id);
                        if !keep {
                            note(Note::SessionEvicted);
                            reset(&s.stream);
                        }
                        keep
                    });
                }
                let now = Instant::now();
                sessions.push(Session {
                    id,
                    stream,
                    sock: i,
                    buf: Vec::with_capacity(opts.request_len),
                    reply: None,
                    first_byte: now + opts.first_byte_timeout,
                    deadline: now + opts.idle_timeout,
                    ready: true,
                });
            }
        }
        sessions.retain_mut(|s| {
            if !s.ready {
                return true;
            }
            let had_reply = s.reply.is_some();
            let done = step(s, opts, answer, note);
            if done {
                table.remove(s.id);
            } else if !had_reply && s.reply.is_some() {
                table.answering(s.id);
            }
            !done
        });
    }

    /// Advances one session; `true` when it is finished (answered, refused or broken).
    fn step(s: &mut Session, opts: &PollOptions, answer: &Answer<'_>, note: &dyn Fn(Note)) -> bool {
        if s.reply.is_none() {
            let mut chunk = [0u8; 256];
            let want = opts.request_len - s.buf.len();
            match s.stream.read(&mut chunk[..want.min(256)]) {
                Ok(0) => {
                    note(Note::Malformed);
                    return true;
                }
                Ok(k) => s.buf.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.ready = false;
                    return false;
                }
                Err(_) => {
                    note(Note::Malformed);
                    return true;
                }
            }
            if s.buf.len() < opts.request_len {
                return false;
            }
            match answer(s.sock, &s.buf, None) {
                Some(reply) => s.reply = Some((reply, 0)),
                None => return true,
            }
        }
        let Some((reply, sent)) = &mut s.reply else {
            return true;
        };
        loop {
            match s.stream.write(&reply[*sent..]) {
                Ok(0) => return true,
                Ok(k) => {
                    *sent += k;
                    if *sent == reply.len() {
                        note(Note::Answered(s.sock));
                        let _ = s.stream.shutdown(Shutdown::Write);
                        return true;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    s.ready = false;
                    return false;
                }
                Err(_) => return true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp4_row(state: u32, addr: [u8; 4], port: u16, pid: u32) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend(state.to_ne_bytes());
        r.extend(addr);
        r.extend([(port >> 8) as u8, port as u8, 0, 0]);
        r.extend([0u8; 4]);
        r.extend([0u8; 4]);
        r.extend(pid.to_ne_bytes());
        r
    }

    #[test]
    fn decodes_tcp4_and_udp4_owner_tables() {
        let mut buf = 2u32.to_ne_bytes().to_vec();
        buf.extend(tcp4_row(2, [127, 0, 60, 1], 443, 4242));
        buf.extend(tcp4_row(5, [0, 0, 0, 0], 8080, 7));
        let rows = decode_tcp_table(&buf, false);
        assert_eq!(
            rows[0],
            TableRow {
                address: "127.0.60.1".parse().unwrap(),
                port: 443,
                listening: true,
                pid: 4242
            }
        );
        assert_eq!(
            (rows[1].port, rows[1].listening, rows[1].pid),
            (8080, false, 7)
        );
        // A count larger than the buffer yields the whole rows only.
        let mut short = 9u32.to_ne_bytes().to_vec();
        short.extend(tcp4_row(2, [10, 0, 0, 1], 21012, 1));
        short.extend([1, 2, 3]);
        assert_eq!(decode_tcp_table(&short, false).len(), 1);
        assert!(decode_tcp_table(&[1, 2], false).is_empty());

        let mut udp = 1u32.to_ne_bytes().to_vec();
        udp.extend([10, 0, 0, 5]);
        udp.extend([0x1f, 0x40, 0, 0]);
        udp.extend(99u32.to_ne_bytes());
        let rows = decode_udp_table(&udp, false);
        assert_eq!(
            (rows[0].address.to_string(), rows[0].port, rows[0].pid),
            ("10.0.0.5".to_owned(), 8000, 99)
        );
    }

    #[test]
    fn decodes_ipv6_owner_tables() {
        let mut buf = 1u32.to_ne_bytes().to_vec();
        let mut addr = [0u8; 16];
        addr[15] = 1;
        buf.extend(addr); // local
        buf.extend(0u32.to_ne_bytes()); // scope
        buf.extend([0x13, 0xc4, 0, 0]); // port 5060
        buf.extend([0u8; 16]); // remote
        buf.extend(0u32.to_ne_bytes());
        buf.extend(0u32.to_ne_bytes());
        buf.extend(2u32.to_ne_bytes()); // listen
        buf.extend(321u32.to_ne_bytes());
        let rows = decode_tcp_table(&buf, true);
        assert_eq!(
            rows,
            vec![TableRow {
                address: "::1".parse().unwrap(),
                port: 5060,
                listening: true,
                pid: 321
            }]
        );
        let mut udp = 1u32.to_ne_bytes().to_vec();
        udp.extend([0u8; 16]);
        udp.extend(0u32.to_ne_bytes());
        udp.extend([0x23, 0x28, 0, 0]); // 9000
        udp.extend(55u32.to_ne_bytes());
        let rows = decode_udp_table(&udp, true);
        assert_eq!((rows[0].port, rows[0].pid), (9000, 55));
        assert!(rows[0].address.is_unspecified());
    }

    #[test]
    fn holders_prefer_listeners_and_cover_wildcards() {
        let r = |a: &str, port, listening, pid| TableRow {
            address: a.parse().unwrap(),
            port,
            listening,
            pid,
        };
        let rows = [
            r("0.0.0.0", 443, true, 10),
            r("10.0.0.1", 443, false, 11),
            r("10.0.0.2", 80, true, 12),
            r("10.0.0.3", 80, false, 0),
        ];
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            holder_pids(&rows, a("10.0.0.1"), Transport::Tcp, 443),
            vec![10]
        );
        assert_eq!(
            holder_pids(&rows, a("10.0.0.1"), Transport::Udp, 443),
            vec![10, 11]
        );
        assert!(holder_pids(&rows, a("10.0.0.1"), Transport::Tcp, 80).is_empty());
        assert_eq!(
            holder_pids(&rows, a("0.0.0.0"), Transport::Tcp, 80),
            vec![12]
        );
        assert_eq!(
            image_name(r"C:\Windows\System32\inetsrv\w3wp.exe"),
            "w3wp.exe"
        );
        assert_eq!(image_name("System"), "System");
    }

    #[test]
    fn parses_netsh_excluded_port_ranges() {
        // As printed by Windows Server 2022 (with Hyper-V), CRLF line ends included.
        let text = "\r\nProtocol tcp Port Exclusion Ranges\r\n\r\nStart Port    End Port\r\n----------    --------\r\n      5357        5357\r\n     50000       50059     *\r\n     53380       53479\r\n\r\n* - Administered port exclusions.\r\n\r\n";
        let r = parse_excluded_ranges(text);
        assert_eq!(
            r,
            vec![
                ExcludedRange {
                    first: 5357,
                    last: 5357,
                    administered: false
                },
                ExcludedRange {
                    first: 50000,
                    last: 50059,
                    administered: true
                },
                ExcludedRange {
                    first: 53380,
                    last: 53479,
                    administered: false
                },
            ]
        );
        assert_eq!(excluded_range_of(&r, 50010), Some(r[1]));
        assert_eq!(excluded_range_of(&r, 50060), None);
        assert!(excluded_reason(r[2], Transport::Udp).contains("53380-53479"));
        assert!(excluded_reason(r[2], Transport::Udp).contains("protocol=udp"));
        // Nothing that is not two ports (and an optional star) is a range.
        for junk in [
            "70000 70001",
            "9 8",
            "1 2 x",
            "Start Port End Port",
            "",
            "42",
        ] {
            assert!(parse_excluded_ranges(junk).is_empty(), "{junk}");
        }
    }
}
