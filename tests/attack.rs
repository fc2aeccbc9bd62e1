//! Attacks on the listener and the prober, on loopback, with the probe's verdict asserted
//! while each attack runs (issue #8). Addresses: 127.0.50.x for listeners, 127.0.51-54.x as
//! the attackers' many source addresses (all of 127/8 is local on Linux, so a socket can bind
//! any of them: about 1,000 real, distinct sources without a namespace).
//!
//! Each test is bounded: the floods stop when the probe is done or after a fixed count, and
//! every assertion is on verdicts and counters, not on timing. One test runs in a network
//! namespace of its own (root; see tests/common/netns.rs), where all of 127/8 is free: 4,500
//! sources against the listener's default tables.

// Binding any 127/8 source address and network namespaces are Linux's.
#![cfg(target_os = "linux")]

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scc_ports::catalog::Transport;
use scc_ports::net::listen::{self, EventSink, ListenEvent, ListenOptions, ListenReport};
use scc_ports::net::probe::{self, ProbeOptions, Status};
use scc_ports::net::proto;
use scc_ports::net::{Endpoint, Secret};
use scc_ports::range::PortRange;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(address: &str, transport: Transport, lo: u16, hi: u16) -> Endpoint {
    Endpoint {
        address: ip(address),
        transport,
        ports: PortRange::new(lo, hi, None).unwrap(),
        component: "attack".into(),
        port_id: format!("{}-{lo}", transport.as_str()),
    }
}

fn secret() -> Secret {
    Secret::new("attack test secret, long enough").unwrap()
}

/// The attackers' source addresses: 127.0.51.1 .. 127.0.54.254.
fn sources() -> Vec<IpAddr> {
    (51..=54u8)
        .flat_map(|c| (1..=254u8).map(move |d| IpAddr::V4(Ipv4Addr::new(127, 0, c, d))))
        .collect()
}

/// `n` source addresses 127.1.0.1, 127.1.0.2, ... (only inside a namespace of the test's own).
fn many_sources(n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| {
            let i = u32::try_from(i).unwrap() + 1;
            IpAddr::V4(Ipv4Addr::from(0x7f01_0000 + (i / 250) * 256 + i % 250 + 1))
        })
        .collect()
}

/// A listener on its own thread and current-thread runtime, as `scc-ports listen` runs it.
struct Listener {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<ListenReport>>,
}

impl Listener {
    fn start(endpoints: Vec<Endpoint>, opts: ListenOptions) -> Listener {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(listen::run(
                &endpoints,
                None,
                &secret(),
                opts,
                |f| {
                    let _ = ready_tx.send(f.len());
                },
                async {
                    let _ = stop_rx.await;
                },
            ))
        });
        let failures = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("listener ready");
        assert_eq!(failures, 0, "every port bound");
        Listener {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A listener with the default options whose live events are kept, for the test to read.
    fn recording(endpoints: Vec<Endpoint>) -> (Listener, Arc<Mutex<Vec<ListenEvent>>>) {
        let events = Arc::new(Mutex::new(Vec::new()));
        let seen = events.clone();
        let opts = ListenOptions {
            events: Some(EventSink(Arc::new(move |e| seen.lock().unwrap().push(e)))),
            ..ListenOptions::default()
        };
        (Listener::start(endpoints, opts), events)
    }

    fn stop(mut self) -> ListenReport {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn probe(targets: &[Endpoint], secret: &Secret) -> probe::ProbeReport {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = ProbeOptions {
        // Generous: the verdicts, not the speed, are under test on a busy machine.
        timeout: Duration::from_secs(2),
        ..ProbeOptions::default()
    };
    rt.block_on(probe::run(targets, secret, opts, |_, _| {}))
}

fn statuses(report: &probe::ProbeReport) -> Vec<(u16, Status, Option<String>)> {
    report
        .results
        .iter()
        .filter(|r| r.status != Status::Verified)
        .map(|r| (r.port, r.status, r.detail.clone()))
        .collect()
}

/// Sends `datagram` to `to` from every socket, round after round, until `stop` (or `rounds`).
fn flood_udp(
    socks: Arc<Vec<UdpSocket>>,
    to: SocketAddr,
    datagram: Vec<u8>,
    stop: Arc<AtomicBool>,
    rounds: usize,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut sent = 0u64;
        for round in 0..rounds {
            for (i, s) in socks.iter().enumerate() {
                if s.send_to(&datagram, to).is_ok() {
                    sent += 1;
                }
                // Paced below what the listener drains, so the kernel does not drop most of
                // the flood before the listener sees it (the attack must reach its tables).
                if i % 16 == 15 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            // At least a few rounds, so every source gets through a busy listener's buffer.
            if round >= 3 && stop.load(Ordering::Relaxed) {
                break;
            }
        }
        sent
    })
}

fn udp_sockets(from: &[IpAddr]) -> Arc<Vec<UdpSocket>> {
    Arc::new(
        from.iter()
            .map(|a| {
                let s = UdpSocket::bind(SocketAddr::new(*a, 0)).expect("bind a source");
                s.set_nonblocking(true).unwrap();
                s
            })
            .collect(),
    )
}

#[test]
fn a_replayed_udp_request_from_a_thousand_sources_leaves_every_port_verified() {
    let a = "127.0.50.1";
    let eps = vec![
        ep(a, Transport::Udp, 31000, 31099),
        ep(a, Transport::Tcp, 31000, 31001),
    ];
    let sources = sources();
    // The default table tracks 4,096 sources; loopback gives us about 1,000, so the table is
    // scaled down with the attack (same code path: the attack has more sources than the table).
    let opts = ListenOptions {
        max_udp_sources: sources.len() / 2,
        ..ListenOptions::default()
    };
    let l = Listener::start(eps.clone(), opts);
    // "Sniff" one real request: another prober (not this test's, so the probe below starts as
    // a new source) sent it, and it was answered.
    let to = SocketAddr::new(ip(a), 31000);
    let sniffed = proto::encode_request(&secret(), &proto::new_nonce().unwrap(), 31000);
    let real = UdpSocket::bind("127.0.50.200:0").unwrap();
    real.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    real.send_to(&sniffed, to).unwrap();
    let mut buf = [0u8; 512];
    assert!(
        real.recv(&mut buf).is_ok(),
        "the original request is answered"
    );

    let socks = udp_sockets(&sources);
    let stop = Arc::new(AtomicBool::new(false));
    // One full round first, so every source has replayed before the probe starts.
    flood_udp(
        socks.clone(),
        to,
        sniffed.to_vec(),
        Arc::new(AtomicBool::new(true)),
        1,
    )
    .join()
    .unwrap();
    let flood = flood_udp(socks, to, sniffed.to_vec(), stop.clone(), 200);
    let report = probe(&eps, &secret());
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    let done = l.stop();

    assert_eq!(
        statuses(&report),
        vec![],
        "every port verified during the replay flood"
    );
    assert_eq!(report.summary().verified, 102);
    assert!(sent >= sources.len() as u64);
    assert!(
        done.dropped.replayed >= sources.len() as u64,
        "the replays reached the listener: {:?}",
        done.dropped
    );
    assert_eq!(done.dropped.rate_limited, 0, "{:?}", done.dropped);
}

#[test]
fn a_wrong_secret_flood_from_a_thousand_sources_is_reported_at_most_once_a_second() {
    let a = "127.0.50.2";
    let eps = vec![
        ep(a, Transport::Udp, 31000, 31049),
        ep(a, Transport::Tcp, 31000, 31001),
    ];
    let (l, events) = Listener::recording(eps.clone());
    let to = SocketAddr::new(ip(a), 31000);
    let wrong = Secret::new("not the listener's secret").unwrap();
    let forged = proto::encode_request(&wrong, &proto::new_nonce().unwrap(), 31000);
    let sources = sources();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let flood = flood_udp(
        udp_sockets(&sources),
        to,
        forged.to_vec(),
        stop.clone(),
        200,
    );
    let report = probe(&eps, &secret());
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let done = l.stop();
    let elapsed = started.elapsed();

    assert_eq!(
        statuses(&report),
        vec![],
        "every port verified during the flood"
    );
    assert!(done.dropped.unauthenticated >= sources.len() as u64);
    let events = events.lock().unwrap();
    assert!(!events.is_empty(), "the failures are reported live");
    assert!(
        events.len() as u64 <= elapsed.as_secs() + 2,
        "{} events in {elapsed:?}",
        events.len()
    );
    let ListenEvent::AuthFailed { source, port, .. } = &events[0];
    assert!(sources.contains(source), "names a real source: {source}");
    assert_eq!(*port, 31000);
    let more: u64 = events
        .iter()
        .map(|e| match e {
            ListenEvent::AuthFailed { more, .. } => *more,
        })
        .sum();
    assert!(more + events.len() as u64 <= done.dropped.unauthenticated);
}

/// Opens `n` idle TCP connections to `to` from `from` (round robin), keeping those that connect.
fn idle_connections(from: &[IpAddr], to: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|i| {
            let src = from[i % from.len()];
            let s =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).ok()?;
            s.bind(&SocketAddr::new(src, 0).into()).ok()?;
            s.connect_timeout(&to.into(), Duration::from_secs(2)).ok()?;
            Some(s.into())
        })
        .collect()
}

#[test]
fn thousands_of_idle_tcp_connections_do_not_make_probes_fail() {
    let a = "127.0.50.3";
    let eps = vec![ep(a, Transport::Tcp, 31000, 31009)];
    let l = Listener::start(eps.clone(), ListenOptions::default());
    // From the prober's own source address, to one port ...
    let same = idle_connections(&[ip("127.0.0.1")], SocketAddr::new(ip(a), 31000), 1500);
    // ... and from a thousand others, to another.
    let many = idle_connections(&sources(), SocketAddr::new(ip(a), 31001), 1016);
    assert!(
        same.len() >= 500 && many.len() >= 500,
        "{} {}",
        same.len(),
        many.len()
    );
    // Older than the listener's eviction age, younger than its first-byte deadline.
    std::thread::sleep(Duration::from_millis(500));
    let report = probe(&eps, &secret());
    let done = l.stop();
    let held = same.len() + many.len();
    drop((same, many));

    assert_eq!(
        statuses(&report),
        vec![],
        "every port verified with the idle connections held"
    );
    // The table holds at most 512 sessions: the rest were pushed out (or timed out, on a
    // machine slow enough to take the first-byte deadline to set the attack up). Half, for
    // connections a loaded listener had not accepted yet.
    let d = done.dropped;
    assert!(
        d.sessions_evicted + d.sessions_refused + d.idle_timeouts >= (held as u64 - 512) / 2,
        "{held} held: {d:?}"
    );
}

#[test]
fn idle_connections_opened_right_before_the_probe_do_not_make_it_fail() {
    let a = "127.0.50.8";
    let eps = vec![ep(a, Transport::Tcp, 31000, 31009)];
    let l = Listener::start(eps.clone(), ListenOptions::default());
    // 300 idle connections from the prober's own address, and the probe at once after them.
    let held = idle_connections(&[ip("127.0.0.1")], SocketAddr::new(ip(a), 31000), 300);
    let report = probe(&eps, &secret());
    let done = l.stop();
    assert!(held.len() >= 256, "{}", held.len());
    drop(held);
    assert_eq!(
        statuses(&report),
        vec![],
        "every port verified: {:?}",
        done.dropped
    );
}

#[test]
fn a_silent_connection_is_closed_at_the_first_byte_deadline() {
    let a = "127.0.50.4";
    let opts = ListenOptions {
        first_byte_timeout: Duration::from_millis(200),
        idle_timeout: Duration::from_secs(30),
        ..ListenOptions::default()
    };
    let l = Listener::start(vec![ep(a, Transport::Tcp, 31000, 31000)], opts);
    let mut s = TcpStream::connect((ip(a), 31000)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 8];
    let r = s.read(&mut buf);
    assert!(
        matches!(r, Ok(0))
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    // Far below the 30 s idle timeout, whatever the machine's load.
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    let done = l.stop();
    assert_eq!(done.dropped.idle_timeouts, 1);
}

/// A TCP server on `to` that accepts every connection, then resets it (`reset`) or closes it
/// (FIN) without a byte, until dropped.
struct Rude {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Rude {
    fn start(to: SocketAddr, reset: bool) -> Rude {
        let l = std::net::TcpListener::bind(to).unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        if reset {
                            let _ = socket2::SockRef::from(&c).set_linger(Some(Duration::ZERO));
                        }
                        drop(c);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Rude {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Rude {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn accept_then_reset_is_open_never_closed() {
    let a = "127.0.50.5";
    let _reset = Rude::start(SocketAddr::new(ip(a), 31000), true);
    let _close = Rude::start(SocketAddr::new(ip(a), 31001), false);
    let eps = vec![ep(a, Transport::Tcp, 31000, 31001)];
    let report = probe(&eps, &secret());
    let r = &report.results;
    assert_eq!(r[0].status, Status::Open, "{r:?}");
    assert_eq!(r[0].detail.as_deref(), Some(probe::ACCEPTED_THEN_RESET));
    assert_eq!(r[1].status, Status::Open, "{r:?}");
    assert!(
        matches!(
            r[1].detail.as_deref(),
            Some(probe::ACCEPTED_THEN_CLOSED | probe::ACCEPTED_THEN_RESET)
        ),
        "{r:?}"
    );
    // Every TCP port connected, none returned a token: the hint about secrets applies.
    assert!(report.secrets_probably_differ());
}

#[test]
fn a_prober_with_another_secret_is_told_the_secrets_probably_differ() {
    let a = "127.0.50.6";
    let eps = vec![
        ep(a, Transport::Tcp, 31000, 31002),
        ep(a, Transport::Udp, 31000, 31002),
    ];
    let (l, events) = Listener::recording(eps.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let opts = ProbeOptions {
        timeout: Duration::from_millis(300),
        ..ProbeOptions::default()
    };
    let other = Secret::new("the prober's other secret").unwrap();
    let report = rt.block_on(probe::run(&eps, &other, opts, |_, _| {}));
    // Seen while the listener runs, not only at its exit.
    let live = events.lock().unwrap().clone();
    let done = l.stop();
    assert!(report.secrets_probably_differ(), "{:?}", report.results);
    for r in report
        .results
        .iter()
        .filter(|r| r.transport == Transport::Tcp)
    {
        assert_eq!(r.status, Status::Open);
        assert_eq!(r.detail.as_deref(), Some(probe::ACCEPTED_THEN_CLOSED));
    }
    assert_eq!(done.total_answered(), 0);
    assert!(!live.is_empty());
    let ListenEvent::AuthFailed { source, .. } = &live[0];
    assert!(source.is_loopback());
}
#[test]
fn a_full_tcp_session_table_evicts_its_oldest_waiting_session() {
    let a = "127.0.50.7";
    let port = 31000;
    let opts = ListenOptions {
        max_tcp_sessions: 2,
        evict_min_age: Duration::from_millis(50),
        idle_timeout: Duration::from_secs(5),
        first_byte_timeout: Duration::from_secs(5),
        ..ListenOptions::default()
    };
    let l = Listener::start(vec![ep(a, Transport::Tcp, port, port)], opts);
    let to = SocketAddr::new(ip(a), port);
    let held: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(to).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let valid = proto::encode_request(&secret(), &proto::new_nonce().unwrap(), port);
    let mut s = TcpStream::connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(&valid).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    let nonce: proto::Nonce = valid[6..22].try_into().unwrap();
    assert!(proto::decode_reply(&secret(), &got, &nonce, port).is_ok());
    let mut first = &held[0];
    first
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let mut buf = [0u8; 8];
    let r = first.read(&mut buf).map_err(|e| e.kind());
    assert!(
        matches!(r, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "the oldest waiting session was closed: {r:?}"
    );
    let done = l.stop();
    assert_eq!(done.dropped.sessions_evicted, 1);
    assert_eq!(done.total_answered(), 1);
}

#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn a_replay_from_4500_sources_against_the_default_tables_leaves_every_port_verified() {
    if !common::netns::available("a_replay_from_4500_sources") {
        return;
    }
    let ns = common::netns::Netns::new().expect("namespace");
    let a = "127.0.50.1";
    let eps = vec![
        ep(a, Transport::Udp, 31000, 31099),
        ep(a, Transport::Tcp, 31000, 31001),
    ];
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let listen_eps = eps.clone();
    let listener = ns.spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(listen::run(
            &listen_eps,
            None,
            &secret(),
            ListenOptions::default(),
            |f| {
                let _ = ready_tx.send(f.len());
            },
            async {
                let _ = stop_rx.await;
            },
        ))
    });
    assert_eq!(ready_rx.recv_timeout(Duration::from_secs(20)).unwrap(), 0);
    let sources = many_sources(4500);
    assert!(sources.len() > ListenOptions::default().max_udp_sources);
    let report = ns.run(move || {
        let to = SocketAddr::new(ip(a), 31000);
        let sniffed = proto::encode_request(&secret(), &proto::new_nonce().unwrap(), 31000);
        let real = UdpSocket::bind("127.0.50.200:0").unwrap();
        real.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        real.send_to(&sniffed, to).unwrap();
        let mut buf = [0u8; 512];
        assert!(
            real.recv(&mut buf).is_ok(),
            "the original request is answered"
        );
        let socks = udp_sockets(&sources);
        flood_udp(
            socks.clone(),
            to,
            sniffed.to_vec(),
            Arc::new(AtomicBool::new(true)),
            4,
        )
        .join()
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flood = flood_udp(socks, to, sniffed.to_vec(), stop.clone(), 100);
        let report = probe(&eps, &secret());
        stop.store(true, Ordering::Relaxed);
        flood.join().unwrap();
        report
    });
    let _ = stop_tx.send(());
    let done = listener.join().unwrap().unwrap();
    assert_eq!(
        statuses(&report),
        vec![],
        "every port verified during the replay flood"
    );
    assert!(done.dropped.replayed >= 4500, "{:?}", done.dropped);
    assert_eq!(done.dropped.rate_limited, 0, "{:?}", done.dropped);
}
