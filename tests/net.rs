//! Listener and prober end to end on loopback, through the library API only.
//!
//! Each test uses its own 127.0.x.y address, so tests running in parallel never see each other's
//! ports. The `bench_driver` test (ignored) is the binary the scripts in `bench/` run.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use scc_ports::catalog::Transport;
use scc_ports::net::listen::{self, BindFailure, BindFailureKind, ListenOptions, ListenReport};
use scc_ports::net::probe::{self, ProbeOptions, Status};
use scc_ports::net::proto;
use scc_ports::net::{Endpoint, Secret};
use scc_ports::range::PortRange;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ep(address: &str, transport: Transport, lo: u16, hi: u16, id: &str) -> Endpoint {
    Endpoint {
        address: ip(address),
        transport,
        ports: PortRange::new(lo, hi, None).unwrap(),
        component: "test".into(),
        port_id: id.into(),
    }
}

fn secret() -> Secret {
    Secret::new("test secret").unwrap()
}

struct Running {
    failures: Vec<BindFailure>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<ListenReport>,
}

impl Running {
    async fn stop(self) -> ListenReport {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

async fn start(endpoints: Vec<Endpoint>, secret: Secret, opts: ListenOptions) -> Running {
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        listen::run(
            &endpoints,
            None,
            &secret,
            opts,
            |f| {
                let _ = ready_tx.send(f.to_vec());
            },
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    let failures = ready_rx.await.unwrap();
    Running {
        failures,
        stop,
        task,
    }
}

fn quick() -> ProbeOptions {
    ProbeOptions {
        timeout: Duration::from_millis(400),
        ..ProbeOptions::default()
    }
}

/// A valid request for `port`, with a fresh nonce.
fn request(secret: &Secret, port: u16) -> [u8; proto::REQUEST_LEN] {
    proto::encode_request(secret, &proto::new_nonce().unwrap(), port)
}

fn udp_client(to: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.connect(to).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    s
}

/// Every datagram that comes back within the read timeout.
fn drain(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = s.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    got
}

#[tokio::test]
async fn verifies_planned_ports_and_sees_closed_ones() {
    let a = "127.0.20.1";
    let eps = vec![
        ep(a, Transport::Tcp, 21001, 21003, "tcp-a"),
        ep(a, Transport::Udp, 21100, 21299, "rtp"),
    ];
    let l = start(eps.clone(), secret(), ListenOptions::default()).await;
    assert!(l.failures.is_empty(), "{:?}", l.failures);
    let mut targets = eps.clone();
    targets.push(ep(a, Transport::Tcp, 21010, 21010, "nothing-tcp"));
    targets.push(ep(a, Transport::Udp, 21010, 21010, "nothing-udp"));
    let calls = std::cell::Cell::new(0u64);
    let report = probe::run(&targets, &secret(), quick(), |done, total| {
        assert!(done <= total);
        calls.set(calls.get() + 1);
    })
    .await;
    let s = report.summary();
    assert_eq!((s.verified, s.closed), (203, 2), "{:#?}", report.results);
    assert!(calls.get() >= 205);
    for r in &report.results {
        match r.port {
            21010 => assert_eq!(r.status, Status::Closed),
            _ => {
                assert_eq!(r.status, Status::Verified, "{r:?}");
                assert!(r.rtt_ms.is_some());
            }
        }
    }
    assert!(!report.passed());
    let json = serde_json::to_value(&report).unwrap();
    let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["results", "summary", "unexpected"]);
    assert_eq!(json["summary"]["verified"], 203);
    assert_eq!(json["summary"]["filtered"], 0);
    let first = json["results"][0].as_object().unwrap();
    for k in [
        "address",
        "transport",
        "port",
        "component",
        "port_id",
        "status",
        "attempts",
        "rtt_ms",
    ] {
        assert!(first.contains_key(k), "{k} missing in {first:?}");
    }
    // On loopback nothing is lost: one attempt each.
    assert!(
        report.results.iter().all(|r| r.attempts == 1),
        "{:?}",
        report.results.iter().find(|r| r.attempts != 1)
    );
    assert_eq!(json["results"][0]["status"], "verified");
    assert_eq!(json["results"][0]["transport"], "tcp");
    assert_eq!(json["results"][0]["address"], a);
    let junit = report.to_junit();
    assert!(junit.contains("tests=\"205\" failures=\"2\""));

    let done = l.stop().await;
    assert_eq!(done.bound, 203);
    // UDP retries (fresh nonces) may be answered too.
    assert!(done.total_answered() >= 203);
    assert_eq!(done.answered[&(Transport::Tcp, 21001)], 1);
}

#[tokio::test]
async fn wrong_secret_is_never_verified_and_never_answered() {
    let a = "127.0.20.2";
    let eps = vec![
        ep(a, Transport::Tcp, 21001, 21001, "t"),
        ep(a, Transport::Udp, 21002, 21002, "u"),
    ];
    let l = start(eps.clone(), secret(), ListenOptions::default()).await;
    let other = Secret::new("not the secret").unwrap();
    let opts = ProbeOptions {
        timeout: Duration::from_millis(200),
        ..ProbeOptions::default()
    };
    let report = probe::run(&eps, &other, opts, |_, _| {}).await;
    // Our own listener, asked with the wrong key, is just "something that is not ours".
    assert_eq!(report.results[0].status, Status::Open);
    assert_eq!(report.results[1].status, Status::Filtered);
    let done = l.stop().await;
    assert_eq!(done.total_answered(), 0);
    assert!(done.dropped.unauthenticated >= 3, "{:?}", done.dropped);
}

#[tokio::test]
async fn udp_drops_junk_truncated_replayed_and_misdirected_datagrams() {
    let a = "127.0.20.3";
    let port = 21001;
    let l = start(
        vec![ep(a, Transport::Udp, port, port, "u")],
        secret(),
        ListenOptions::default(),
    )
    .await;
    let to = SocketAddr::new(ip(a), port);
    // Blocking client I/O runs off the runtime thread the listener needs.
    tokio::task::spawn_blocking(move || {
        let c = udp_client(to);
        let valid = request(&secret(), port);
        for junk in [
            &b""[..],
            b"hello",
            &[0u8; proto::REQUEST_LEN][..],
            &valid[..proto::REQUEST_LEN - 1],
        ] {
            c.send(junk).unwrap();
        }
        let mut oversized = valid.to_vec();
        oversized.push(0);
        c.send(&oversized).unwrap();
        c.send(&request(&secret(), port + 1)).unwrap();
        c.send(&request(&Secret::new("other").unwrap(), port))
            .unwrap();
        assert!(
            drain(&c).is_empty(),
            "nothing unauthenticated or malformed is answered"
        );

        c.send(&valid).unwrap();
        let replies = drain(&c);
        assert_eq!(replies.len(), 1);
        assert!(
            replies[0].len() <= valid.len(),
            "a reply is never longer than its request"
        );
        let nonce: proto::Nonce = valid[6..22].try_into().unwrap();
        let reply = proto::decode_reply(&secret(), &replies[0], &nonce, port).unwrap();
        assert_eq!(reply.id, "test/u");

        c.send(&valid).unwrap();
        assert!(drain(&c).is_empty(), "a replayed request is not answered");
    })
    .await
    .unwrap();

    let done = l.stop().await;
    assert_eq!(done.total_answered(), 1);
    assert_eq!(done.dropped.replayed, 1);
    assert_eq!(done.dropped.wrong_port, 1);
    assert_eq!(done.dropped.unauthenticated, 1);
    assert_eq!(done.dropped.malformed, 5);
}

#[tokio::test]
async fn tcp_answers_only_valid_requests_and_closes_idle_sessions() {
    let a = "127.0.20.4";
    let port = 21001;
    let opts = ListenOptions {
        idle_timeout: Duration::from_millis(300),
        ..ListenOptions::default()
    };
    let l = start(vec![ep(a, Transport::Tcp, port, port, "t")], secret(), opts).await;
    let to = SocketAddr::new(ip(a), port);
    let exchange = |bytes: Vec<u8>| {
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(to).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            s.write_all(&bytes).unwrap();
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        })
    };
    let valid = request(&secret(), port);
    let got = exchange(valid.to_vec()).await.unwrap();
    assert!(!got.is_empty() && got.len() <= valid.len());
    let nonce: proto::Nonce = valid[6..22].try_into().unwrap();
    assert!(proto::decode_reply(&secret(), &got, &nonce, port).is_ok());

    assert!(exchange(valid.to_vec()).await.unwrap().is_empty(), "replay");
    assert!(
        exchange(vec![0x55; proto::REQUEST_LEN])
            .await
            .unwrap()
            .is_empty(),
        "junk"
    );
    let wrong = request(&Secret::new("other").unwrap(), port).to_vec();
    assert!(exchange(wrong).await.unwrap().is_empty(), "wrong secret");

    // Silent and half-sent sessions are closed after the idle timeout.
    let t0 = std::time::Instant::now();
    assert!(exchange(Vec::new()).await.unwrap().is_empty());
    assert!(exchange(valid[..100].to_vec()).await.unwrap().is_empty());
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(550) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    let done = l.stop().await;
    assert_eq!(done.total_answered(), 1);
    assert_eq!(done.dropped.idle_timeouts, 2);
    assert_eq!(done.dropped.replayed, 1);
}

#[tokio::test]
async fn tcp_sessions_are_bounded() {
    let a = "127.0.20.5";
    let port = 21001;
    // Sessions are never evicted here (too young): the table takes twice its cap, then refuses.
    let opts = ListenOptions {
        max_tcp_sessions: 2,
        evict_min_age: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(5),
        ..ListenOptions::default()
    };
    let l = start(vec![ep(a, Transport::Tcp, port, port, "t")], secret(), opts).await;
    let to = SocketAddr::new(ip(a), port);
    let held: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(to).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fifth = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(to).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let t0 = std::time::Instant::now();
        let mut buf = [0u8; 8];
        let r = s.read(&mut buf);
        (r.map_err(|e| e.kind()), t0.elapsed())
    })
    .await
    .unwrap();
    // Closed at once (EOF or reset), not kept waiting for the idle timeout.
    assert!(
        matches!(fifth.0, Ok(0) | Err(std::io::ErrorKind::ConnectionReset)),
        "{fifth:?}"
    );
    assert!(fifth.1 < Duration::from_secs(1));
    drop(held);
    let done = l.stop().await;
    assert_eq!(done.dropped.sessions_refused, 1);
}

#[tokio::test]
async fn udp_replies_per_source_are_bounded() {
    let a = "127.0.20.6";
    let port = 21001;
    let opts = ListenOptions {
        udp_replies_per_source_per_sec: 5,
        ..ListenOptions::default()
    };
    let l = start(vec![ep(a, Transport::Udp, port, port, "u")], secret(), opts).await;
    let to = SocketAddr::new(ip(a), port);
    let replies = tokio::task::spawn_blocking(move || {
        let c = udp_client(to);
        for _ in 0..20 {
            c.send(&request(&secret(), port)).unwrap();
        }
        drain(&c).len()
    })
    .await
    .unwrap();
    // A bucket of 5, refilled at 5/s over the few hundred ms this takes.
    assert!((5..=7).contains(&replies), "{replies} replies");
    let done = l.stop().await;
    assert_eq!(done.dropped.rate_limited as usize + replies, 20);
}

/// Hands a bound socket to a `sleep` child as its fd 3, so another process holds the port.
fn hold_in_child(fd: std::os::fd::RawFd) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("sleep");
    cmd.arg("30");
    // SAFETY: only dup2, async-signal-safe, runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().unwrap()
}

#[tokio::test]
async fn port_held_by_another_process_is_named_and_probed_open() {
    use std::os::fd::AsRawFd;
    let a = "127.0.20.7";
    let (tp, up) = (21001, 21002);
    let tcp = std::net::TcpListener::bind((ip(a), tp)).unwrap();
    let udp = UdpSocket::bind((ip(a), up)).unwrap();
    let mut tchild = hold_in_child(tcp.as_raw_fd());
    let mut uchild = hold_in_child(udp.as_raw_fd());
    drop((tcp, udp));
    let eps = vec![
        ep(a, Transport::Tcp, tp, tp, "t"),
        ep(a, Transport::Udp, up, up, "u"),
    ];
    let l = start(eps.clone(), secret(), ListenOptions::default()).await;
    let report = probe::run(&eps, &secret(), quick(), |_, _| {}).await;
    let _ = (tchild.kill(), uchild.kill(), tchild.wait(), uchild.wait());
    let done = l.stop().await;

    assert_eq!(l_failures(&done), 2);
    let f: &BindFailure = &done.failures[0];
    assert_eq!(
        (f.transport, f.port, f.kind),
        (Transport::Tcp, tp, BindFailureKind::InUse)
    );
    assert_eq!(
        f.reason,
        format!("address in use (held by pid {} sleep)", tchild.id())
    );
    let f = &done.failures[1];
    assert_eq!((f.transport, f.port), (Transport::Udp, up));
    assert_eq!(
        f.reason,
        format!("address in use (held by pid {} sleep)", uchild.id())
    );
    // Something accepts the TCP port, but it is not us.
    assert_eq!(
        report.results[0].status,
        Status::Open,
        "{:?}",
        report.results[0]
    );
    assert_eq!(report.results[1].status, Status::Filtered);
}

fn l_failures(r: &ListenReport) -> usize {
    r.failures.len()
}

/// Ports that /proc says are listening on `address` (or on the IPv4 wildcard).
fn listening_v4(address: IpAddr) -> Vec<u16> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let IpAddr::V4(v4) = address else { panic!() };
    let mine = format!("{:08X}", u32::from_ne_bytes(v4.octets()));
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, port) = f[1].split_once(':')?;
            (f[3] == "0A" && (addr == mine || addr == "00000000"))
                .then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

#[tokio::test]
async fn unexpected_sweep_lists_unplanned_listeners_only() {
    let a = "127.0.20.8";
    let eps = vec![ep(a, Transport::Tcp, 21001, 21001, "t")];
    let l = start(eps.clone(), secret(), ListenOptions::default()).await;
    let stray = std::net::TcpListener::bind((ip(a), 21005)).unwrap();
    let opts = ProbeOptions {
        unexpected: true,
        ..quick()
    };
    let last = std::cell::Cell::new((0, 0));
    let report = probe::run(&eps, &secret(), opts, |d, t| last.set((d, t))).await;
    drop(stray);
    l.stop().await;
    assert_eq!(report.results[0].status, Status::Verified);
    assert!(report.swept());
    assert_eq!(last.get(), (65535, 65535));
    let found: Vec<u16> = report.unexpected.iter().map(|(_, p)| *p).collect();
    assert!(found.contains(&21005), "{found:?}");
    assert!(!found.contains(&21001), "planned ports are not unexpected");
    let real = listening_v4(ip(a));
    assert!(
        found.iter().all(|p| *p == 21005 || real.contains(p)),
        "{found:?} vs {real:?}"
    );
    let json = serde_json::to_value(&report).unwrap();
    assert!(
        json["unexpected"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["port"] == 21005 && u["transport"] == "tcp")
    );
    assert!(!report.passed());
}

#[tokio::test]
async fn sweeping_loopback_ephemeral_ports_finds_no_self_connects() {
    // On 127.0.0.1 the sweep's own sockets live in the very ports it sweeps: self-connects and
    // pairs of its own sockets must not pass for listeners.
    let a = ip("127.0.0.1");
    let opts = ProbeOptions {
        unexpected: true,
        sweep_ports: 32768..=60999,
        sweep_in_flight: 8192,
        ..quick()
    };
    let targets = vec![ep("127.0.0.1", Transport::Udp, 9, 9, "discard")];
    let report = probe::run(&targets, &secret(), opts, |_, _| {}).await;
    let real = listening_v4(a);
    let fake: Vec<u16> = report
        .unexpected
        .iter()
        .map(|(_, p)| *p)
        .filter(|p| !real.contains(p))
        .collect();
    assert!(
        fake.is_empty(),
        "ports reported open with no listener: {fake:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn silent_udp_port_is_filtered_after_the_adapted_timeout() {
    let silent = tokio::net::UdpSocket::bind("127.0.20.9:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let t0 = tokio::time::Instant::now();
    let opts = ProbeOptions {
        timeout: Duration::from_secs(3),
        udp_attempts: 3,
        ..ProbeOptions::default()
    };
    let report = probe::run(
        &[ep("127.0.20.9", Transport::Udp, port, port, "u")],
        &secret(),
        opts,
        |_, _| {},
    )
    .await;
    let r = &report.results[0];
    assert_eq!(r.status, Status::Filtered);
    assert_eq!(r.rtt_ms, None);
    // Every attempt went unanswered, each after the adapted wait: the round-trip ping (a reset
    // from an unplanned TCP port) shrank it to the 100 ms floor, so 3 attempts, not 3 s each.
    assert_eq!(r.attempts, 3);
    assert!(
        r.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("no answer to 3 attempts in ")),
        "{:?}",
        r.detail
    );
    assert!(t0.elapsed() >= Duration::from_millis(300) && t0.elapsed() < Duration::from_secs(3));
    // Every attempt carried a fresh, valid request.
    let mut buf = [0u8; 512];
    let mut nonces = std::collections::HashSet::new();
    for _ in 0..3 {
        let n = silent.try_recv(&mut buf).unwrap();
        let req = proto::decode_request(&secret(), &buf[..n]).unwrap();
        assert_eq!(req.port, port);
        nonces.insert(req.nonce);
    }
    assert_eq!(nonces.len(), 3);
}

#[tokio::test]
async fn listener_binds_both_mrs_areas() {
    let a = "127.0.20.10";
    let eps = vec![
        ep(a, Transport::Udp, 8000, 8400, "mrs-a"),
        ep(a, Transport::Udp, 9000, 10200, "mrs-b"),
        ep(a, Transport::Tcp, 21001, 21020, "tcp"),
        ep(a, Transport::Tcp, 21001, 21001, "duplicate"),
    ];
    let l = start(eps.clone(), secret(), ListenOptions::default()).await;
    assert!(l.failures.is_empty());
    let report = probe::run(&eps, &secret(), ProbeOptions::default(), |_, _| {}).await;
    let done = l.stop().await;
    assert_eq!(done.bound, 1622);
    assert_eq!(report.results.len(), 1623);
    assert_eq!(
        report.summary().verified,
        1623,
        "{:?}",
        report.results.iter().find(|r| r.status != Status::Verified)
    );
    assert_eq!(
        done.answered[&(Transport::Tcp, 21001)],
        1,
        "a duplicate target is probed once"
    );
}

/// Not a test: the driver the `bench/` scripts run (`--ignored --exact bench_driver`), set up by
/// environment variables:
/// - `NETBENCH_MODE`: `listen` (prints `ready:` and serves `NETBENCH_SECONDS`, default 60) or
///   `probe` (prints one JSON line: elapsed_ms, summary, unexpected ports, peak RSS in kB).
/// - `NETBENCH_ADDR`, `NETBENCH_TCP` / `NETBENCH_UDP` (port lists like `80,443,8000-8400`),
///   `NETBENCH_SECRET`, `NETBENCH_UNEXPECTED=1`, `NETBENCH_TIMEOUT_MS`.
#[test]
#[ignore]
fn bench_driver() {
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let addr = var("NETBENCH_ADDR");
    let secret = Secret::new(&var("NETBENCH_SECRET")).unwrap_or_else(|_| secret());
    let mut eps = Vec::new();
    for (transport, list) in [
        (Transport::Tcp, var("NETBENCH_TCP")),
        (Transport::Udp, var("NETBENCH_UDP")),
    ] {
        for part in list.split(',').filter(|p| !p.is_empty()) {
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            eps.push(ep(
                &addr,
                transport,
                lo.parse().unwrap(),
                hi.parse().unwrap(),
                part,
            ));
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match var("NETBENCH_MODE").as_str() {
        "listen" => {
            let secs: u64 = var("NETBENCH_SECONDS").parse().unwrap_or(60);
            let t0 = std::time::Instant::now();
            let report = rt.block_on(listen::run(
                &eps,
                None,
                &secret,
                ListenOptions::default(),
                |failures| {
                    for f in failures {
                        println!(
                            "failed: {} {}/{} {}",
                            f.address,
                            f.transport.as_str(),
                            f.port,
                            f.reason
                        );
                    }
                    // Bind and hand-off to tokio, as a user waits for it.
                    println!("ready: {:.3} ms", t0.elapsed().as_secs_f64() * 1e3);
                    let _ = std::io::stdout().flush();
                },
                async move { tokio::time::sleep(Duration::from_secs(secs)).await },
            ));
            println!(
                "{{\"bound\":{},\"bind_ms\":{:.3},\"answered\":{},\"dropped\":\"{:?}\"}}",
                report.bound,
                report.bind_time.as_secs_f64() * 1e3,
                report.total_answered(),
                report.dropped
            );
        }
        "probe" => {
            let mut opts = ProbeOptions {
                unexpected: var("NETBENCH_UNEXPECTED") == "1",
                ..ProbeOptions::default()
            };
            if let Ok(ms) = var("NETBENCH_TIMEOUT_MS").parse() {
                opts.timeout = Duration::from_millis(ms);
            }
            if let Ok(n) = var("NETBENCH_SWEEP_THREADS").parse() {
                opts.sweep_threads = n;
            }
            if let Ok(n) = var("NETBENCH_SWEEP_IN_FLIGHT").parse() {
                opts.sweep_in_flight = n;
            }
            let t0 = std::time::Instant::now();
            let report = rt.block_on(probe::run(&eps, &secret, opts, |_, _| {}));
            let elapsed = t0.elapsed();
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0);
            let not_verified: Vec<String> = report
                .results
                .iter()
                .filter(|r| r.status != Status::Verified)
                .map(|r| format!("{}/{}={}", r.transport.as_str(), r.port, r.status.as_str()))
                .take(20)
                .collect();
            let out = serde_json::json!({
                "elapsed_ms": elapsed.as_secs_f64() * 1e3,
                "summary": report.summary(),
                "unexpected": report.unexpected.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
                "not_verified": not_verified,
                "max_rss_kb": hwm,
                "sweep_discarded": report.sweep_discarded,
                "sweep_errors": report.sweep_errors,
            });
            println!("{out}");
        }
        other => panic!("NETBENCH_MODE must be listen or probe, not {other:?}"),
    }
}

/// Ports that /proc says are listening on ::1 or the IPv6 wildcard.
fn listening_v6_loopback() -> Vec<u16> {
    let text = std::fs::read_to_string("/proc/net/tcp6").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (addr, port) = f.get(1)?.split_once(':')?;
            let ours =
                addr == "00000000000000000000000001000000" || addr.bytes().all(|b| b == b'0');
            (f.get(3) == Some(&"0A") && ours).then(|| u16::from_str_radix(port, 16).ok())?
        })
        .collect()
}

#[tokio::test]
async fn ipv6_loopback_verifies_and_sweeps_without_self_connects() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback here");
        return;
    }
    let eps = vec![
        ep("::1", Transport::Tcp, 21001, 21001, "t6"),
        ep("::1", Transport::Udp, 21001, 21001, "u6"),
    ];
    let l = start(eps.clone(), secret(), ListenOptions::default()).await;
    assert!(l.failures.is_empty(), "{:?}", l.failures);
    // ::1 has no second loopback address: the sweep's sockets share it with their targets.
    let opts = ProbeOptions {
        unexpected: true,
        sweep_ports: 21000..=60999,
        sweep_in_flight: 8192,
        ..quick()
    };
    let report = probe::run(&eps, &secret(), opts, |_, _| {}).await;
    l.stop().await;
    assert!(
        report.results.iter().all(|r| r.status == Status::Verified),
        "{:?}",
        report.results
    );
    let real = listening_v6_loopback();
    let fake: Vec<u16> = report
        .unexpected
        .iter()
        .map(|(_, p)| *p)
        .filter(|p| !real.contains(p))
        .collect();
    assert!(
        fake.is_empty(),
        "ports reported open with no listener: {fake:?}"
    );
}

#[tokio::test]
async fn bind_override_serves_the_plan_on_another_address() {
    // Planned on an address this host does not have (TEST-NET-1); served on loopback instead.
    let planned = vec![
        ep("192.0.2.1", Transport::Tcp, 21001, 21001, "t"),
        ep("192.0.2.1", Transport::Udp, 21001, 21002, "u"),
    ];
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop, stop_rx) = oneshot::channel::<()>();
    let eps = planned.clone();
    let task = tokio::spawn(async move {
        listen::run(
            &eps,
            Some(ip("127.0.20.12")),
            &secret(),
            ListenOptions::default(),
            |f| {
                let _ = ready_tx.send(f.to_vec());
            },
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });
    assert!(ready_rx.await.unwrap().is_empty());
    let targets: Vec<Endpoint> = planned
        .into_iter()
        .map(|e| Endpoint {
            address: ip("127.0.20.12"),
            ..e
        })
        .collect();
    let report = probe::run(&targets, &secret(), quick(), |_, _| {}).await;
    let _ = stop.send(());
    let done = task.await.unwrap();
    assert_eq!(report.summary().verified, 3, "{:?}", report.results);
    assert!(report.passed());
    assert_eq!(done.bound, 3);
}
