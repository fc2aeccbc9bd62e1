//! Real packets for the kernel tests: every probe of a burst sent at once from the calling
//! thread's namespace (TCP handshakes, UDP datagrams echoed back), and the responder that
//! answers them (TCP accept-and-close, UDP echo), both bounded in time.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use scc_ports::catalog::Transport;

/// One probe: from `src` (None: the namespace's own address) to `dst`.
#[derive(Debug, Clone, Copy)]
pub struct Shot {
    pub src: Option<Ipv4Addr>,
    pub dst: Ipv4Addr,
    pub transport: Transport,
    pub port: u16,
}

/// A packet a kernel test sends through a lab's rules: from `src` to `dst:port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Probe {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub transport: Transport,
    pub port: u16,
}

impl Probe {
    /// The probe as [`fire`] sends it: from its own source address.
    pub fn shot(&self) -> Shot {
        Shot {
            src: Some(self.src),
            dst: self.dst,
            transport: self.transport,
            port: self.port,
        }
    }
}

/// What the server side listens on to answer `probes` ([`bind`]): every TCP port (all
/// addresses), every UDP (address, port).
pub fn listen_sets(probes: &[Probe]) -> (BTreeSet<u16>, BTreeSet<(Ipv4Addr, u16)>) {
    let tcp = probes
        .iter()
        .filter(|p| p.transport == Transport::Tcp)
        .map(|p| p.port)
        .collect();
    let udp = probes
        .iter()
        .filter(|p| p.transport == Transport::Udp)
        .map(|p| (p.dst, p.port))
        .collect();
    (tcp, udp)
}

/// The ports to probe in a planned range: all of it when it holds at most `whole` ports, else
/// both ends and the two in the middle; and the ports just before and after it.
pub fn sample(r: scc_ports::range::PortRange, whole: u32) -> Vec<u16> {
    let mut v: Vec<u16> = if r.count() <= whole {
        r.ports().collect()
    } else {
        let mid = r.lo() + (r.hi() - r.lo()) / 2;
        [r.lo(), r.lo() + 1, mid, mid + 1, r.hi() - 1, r.hi()]
            .into_iter()
            .filter(|p| r.contains(*p))
            .collect()
    };
    v.extend(r.lo().checked_sub(1).filter(|p| *p > 0));
    v.extend(r.hi().checked_add(1));
    v
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The TCP handshake completed, or the UDP echo came back.
    Reached,
    /// A reset or an ICMP error.
    Refused,
    /// Nothing within the window (a drop).
    Timeout,
}

/// Sends every shot at once and waits at most `window`; unanswered UDP is resent every `resend`.
pub fn fire(shots: &[Shot], window: Duration, resend: Duration) -> std::io::Result<Vec<Outcome>> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    enum Sock {
        Tcp(Socket),
        Udp(UdpSocket, [u8; 8]),
    }
    let mut socks = Vec::with_capacity(shots.len());
    for (i, p) in shots.iter().enumerate() {
        let to = SocketAddr::new(IpAddr::V4(p.dst), p.port);
        let from = SocketAddr::new(IpAddr::V4(p.src.unwrap_or(Ipv4Addr::UNSPECIFIED)), 0);
        match p.transport {
            Transport::Tcp => {
                let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
                if p.src.is_some() {
                    s.bind(&SockAddr::from(from))?;
                }
                s.set_nonblocking(true)?;
                match s.connect(&SockAddr::from(to)) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                    Err(e) => return Err(e),
                }
                socks.push(Sock::Tcp(s));
            }
            Transport::Udp => {
                let s = UdpSocket::bind(from)?;
                s.connect(to)?;
                s.set_nonblocking(true)?;
                let mut payload = *b"scc\0\0\0\0\0";
                payload[4..].copy_from_slice(&(i as u32).to_be_bytes());
                let _ = s.send(&payload);
                socks.push(Sock::Udp(s, payload));
            }
        }
    }
    let mut out = vec![Outcome::Timeout; shots.len()];
    let mut done = vec![false; shots.len()];
    let start = Instant::now();
    let mut last_send = start;
    let mut buf = [0u8; 64];
    while start.elapsed() < window && done.iter().any(|d| !d) {
        let open: Vec<usize> = (0..socks.len()).filter(|&i| !done[i]).collect();
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|&i| match &socks[i] {
                Sock::Tcp(s) => libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                },
                Sock::Udp(s, _) => libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            })
            .collect();
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 50) };
        for (k, &i) in open.iter().enumerate() {
            if fds[k].revents == 0 {
                continue;
            }
            match &socks[i] {
                Sock::Tcp(s) => {
                    out[i] = match s.take_error() {
                        Ok(None) => Outcome::Reached,
                        _ => Outcome::Refused,
                    };
                    done[i] = true;
                }
                Sock::Udp(s, payload) => match s.recv(&mut buf) {
                    Ok(n) if buf[..n] == payload[..] => {
                        out[i] = Outcome::Reached;
                        done[i] = true;
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        out[i] = Outcome::Refused;
                        done[i] = true;
                    }
                },
            }
        }
        if last_send.elapsed() >= resend {
            last_send = Instant::now();
            for (i, s) in socks.iter().enumerate() {
                if let (false, Sock::Udp(s, payload)) = (done[i], s) {
                    let _ = s.send(payload);
                }
            }
        }
    }
    Ok(out)
}

/// Nonblocking TCP listeners on every port of `tcp` (all addresses) and UDP sockets on every
/// (address, port) of `udp`, in the calling thread's namespace.
pub fn bind(
    tcp: &BTreeSet<u16>,
    udp: &BTreeSet<(Ipv4Addr, u16)>,
) -> std::io::Result<(Vec<TcpListener>, Vec<UdpSocket>)> {
    let mut listeners = Vec::new();
    for &p in tcp {
        let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, p))?;
        l.set_nonblocking(true)?;
        listeners.push(l);
    }
    let mut sockets = Vec::new();
    for &(a, p) in udp {
        let s = UdpSocket::bind((a, p))?;
        s.set_nonblocking(true)?;
        sockets.push(s);
    }
    Ok((listeners, sockets))
}

/// Accepts and closes every connection and echoes every datagram until `stop` (or 60 s, which
/// only guards against a lost stop).
pub fn serve(listeners: &[TcpListener], sockets: &[UdpSocket], stop: &AtomicBool) {
    let mut fds: Vec<libc::pollfd> = listeners
        .iter()
        .map(|l| l.as_raw_fd())
        .chain(sockets.iter().map(|s| s.as_raw_fd()))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let mut buf = [0u8; 64];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        // SAFETY: fds is a valid array of pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 20) };
        if n <= 0 {
            continue;
        }
        // At most 64 per socket and wake, so that one busy socket cannot starve the rest.
        for l in listeners {
            for _ in 0..64 {
                match l.accept() {
                    Ok((stream, _)) => drop(stream),
                    Err(_) => break,
                }
            }
        }
        for s in sockets {
            for _ in 0..64 {
                match s.recv_from(&mut buf) {
                    Ok((len, from)) => {
                        let _ = s.send_to(&buf[..len], from);
                    }
                    Err(_) => break,
                }
            }
        }
    }
}

/// A burst opens many sockets at once: lift the soft descriptor limit to the hard one (at most
/// 65,536).
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
