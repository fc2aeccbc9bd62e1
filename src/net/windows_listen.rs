//! The listener's Windows serving path: the same binding, checks and report as [`super::run`],
//! with the bound sockets served by one WSAPoll thread (`net::windows`) instead of tokio tasks
//! (why: the `net::windows` module notes and docs/windows.md).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{
    BindFailure, Bound, Counters, ListenOptions, ListenReport, RateLimiter, Shared, bind_all, bump,
};
use crate::net::windows::{Note, PollOptions, Sock, serve};
use crate::net::{Endpoint, Secret, proto};

pub(super) async fn run(
    endpoints: &[Endpoint],
    bind_override: Option<IpAddr>,
    secret: &Secret,
    opts: ListenOptions,
    on_ready: impl FnOnce(&[BindFailure]),
    shutdown: impl Future<Output = ()>,
) -> ListenReport {
    let started = std::time::Instant::now();
    let (bound, failures) = bind_all(endpoints, bind_override, opts.tcp_backlog);
    let shared = Arc::new(Shared {
        secret: secret.clone(),
        replay: Mutex::new(proto::ReplayCache::new(opts.replay_cache)),
        rates: Mutex::new(RateLimiter {
            rate: f64::from(opts.udp_replies_per_source_per_sec),
            max_sources: opts.max_udp_sources.max(1),
            buckets: HashMap::new(),
        }),
        // Held by the WSAPoll thread for as long as it serves.
        sessions: Mutex::new(super::SessionTable::new(
            opts.max_tcp_sessions,
            opts.max_tcp_sessions_per_source,
            opts.evict_min_age,
        )),
        auth_log: Mutex::new(super::AuthLog {
            sink: opts.events.clone(),
            interval: opts.event_interval,
            last: None,
            more: 0,
        }),
        counters: Counters::default(),
        first_byte_timeout: opts.first_byte_timeout.min(opts.idle_timeout),
        idle_timeout: opts.idle_timeout,
    });
    let (socks, infos): (Vec<Sock>, Vec<_>) = bound
        .into_iter()
        .map(|(b, info)| {
            let s = match b {
                Bound::Tcp(l) => Sock::Tcp(l),
                Bound::Udp(u) => Sock::Udp(u),
            };
            (s, info)
        })
        .unzip();
    let infos = Arc::new(infos);
    let stop = Arc::new(AtomicBool::new(false));
    let poll_opts = PollOptions {
        request_len: proto::REQUEST_LEN,
        first_byte_timeout: opts.first_byte_timeout.min(opts.idle_timeout),
        idle_timeout: opts.idle_timeout,
    };
    let server = {
        let (shared, infos, stop) = (shared.clone(), infos.clone(), stop.clone());
        std::thread::Builder::new()
            .name("scc-listen".into())
            .spawn(move || {
                let answer = |i: usize, req: &[u8], src: Option<IpAddr>| {
                    let udp = infos[i].transport == crate::catalog::Transport::Udp;
                    let src = src.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
                    shared.answer(req, &infos[i], src, udp)
                };
                let c = &shared.counters;
                let note = |n: Note| match n {
                    Note::Answered(i) => {
                        infos[i].answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Note::Malformed => bump(&c.malformed),
                    Note::IdleTimeout => bump(&c.idle_timeouts),
                    Note::SessionRefused => bump(&c.sessions_refused),
                    Note::SessionEvicted => bump(&c.sessions_evicted),
                };
                let mut table = super::lock(&shared.sessions);
                serve(&socks, &poll_opts, &mut table, &answer, &note, &stop);
            })
    };
    let mut failures = failures;
    explain(&mut failures);
    let serving = server.is_ok();
    if let Err(e) = &server {
        // No thread, no answers: every port is a failure, said once per port.
        for info in infos.iter() {
            failures.push(BindFailure {
                address: info.address,
                transport: info.transport,
                port: info.port,
                component: info.component.clone(),
                port_id: info.port_id.clone(),
                kind: super::BindFailureKind::Other,
                reason: format!("cannot start the serving thread: {e}"),
            });
        }
    }
    let bind_time = started.elapsed();
    on_ready(&failures);
    shutdown.await;
    stop.store(true, Ordering::Relaxed);
    if let Ok(t) = server {
        let _ = t.join();
    }
    let c = &shared.counters;
    let mut answered = BTreeMap::new();
    for info in infos.iter() {
        *answered.entry((info.transport, info.port)).or_insert(0) +=
            info.answered.load(Ordering::Relaxed);
    }
    ListenReport {
        bound: if serving { infos.len() } else { 0 },
        failures,
        answered,
        dropped: c.dropped(),
        bind_time,
    }
}

/// Names the holder of each busy port (the Windows owner tables; /proc is Linux's) and explains
/// the failures inside a Windows excluded port range.
fn explain(failures: &mut [BindFailure]) {
    use super::BindFailureKind::{InUse, PermissionDenied};
    use crate::net::windows;
    let busy: Vec<usize> = (0..failures.len())
        .filter(|&i| failures[i].kind == InUse)
        .collect();
    let queries: Vec<_> = busy
        .iter()
        .map(|&i| (failures[i].address, failures[i].transport, failures[i].port))
        .collect();
    for (&i, holders) in busy.iter().zip(windows::holders(&queries)) {
        if holders.is_empty() {
            continue;
        }
        let who: Vec<String> = holders
            .iter()
            .map(|h| match h.name.as_str() {
                "" => format!("pid {}", h.pid),
                name => format!("pid {} {name}", h.pid),
            })
            .collect();
        failures[i].reason = format!("address in use (held by {})", who.join(", "));
    }
    // Windows refuses a bind inside an excluded range with WSAEACCES (or, on some builds,
    // WSAEADDRINUSE with no holder): say which range, once per transport asked.
    let mut ranges = HashMap::new();
    for f in failures.iter_mut() {
        if !matches!(f.kind, InUse | PermissionDenied) || f.reason.contains("held by") {
            continue;
        }
        let r = ranges
            .entry(f.transport)
            .or_insert_with(|| windows::excluded_ranges(f.transport));
        if let Some(range) = windows::excluded_range_of(r, f.port) {
            f.reason = format!(
                "{}: {}",
                f.reason,
                windows::excluded_reason(range, f.transport)
            );
        }
    }
}
