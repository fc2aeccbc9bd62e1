//! Listener in one network namespace, prober in another, nftables dropping some ports between:
//! allowed ports verified, dropped ports filtered, unbound ports closed, strays unexpected.
//! Needs root (see tests/common/netns.rs); skips with a reason otherwise.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::netns::{self, Netns};
use scc_ports::catalog::Transport;
use scc_ports::net::listen::{self, ListenOptions, ListenReport};
use scc_ports::net::probe::{self, ProbeOptions, ProbeReport, Status};
use scc_ports::net::{Endpoint, Secret};
use scc_ports::range::PortRange;

fn ep(address: IpAddr, transport: Transport, lo: u16, hi: u16, id: &str) -> Endpoint {
    Endpoint {
        address,
        transport,
        ports: PortRange::new(lo, hi, None).unwrap(),
        component: "netns".into(),
        port_id: id.into(),
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Starts the listener inside `ns`; returns once it is ready, with a stopper.
fn listen_in(
    ns: &Netns,
    endpoints: Vec<Endpoint>,
    secret: Secret,
) -> (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<std::io::Result<ListenReport>>,
) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = ns.spawn(move || {
        // A stray service the plan does not know about, for the sweep to find.
        let stray = std::net::TcpListener::bind((endpoints[0].address, 31000)).unwrap();
        let report = rt().block_on(listen::run(
            &endpoints,
            None,
            &secret,
            ListenOptions::default(),
            |failures| {
                let _ = ready_tx.send(failures.to_vec());
            },
            async {
                let _ = stop_rx.await;
            },
        ));
        drop(stray);
        report
    });
    let failures = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("listener ready");
    assert!(failures.is_empty(), "{failures:?}");
    (stop_tx, handle)
}

fn status_of(report: &ProbeReport, transport: Transport, port: u16) -> Status {
    report
        .results
        .iter()
        .find(|r| r.transport == transport && r.port == port)
        .map(|r| r.status)
        .unwrap()
}

#[cfg_attr(
    not(scc_netns),
    ignore = "needs root, iproute2 and nftables (network namespaces)"
)]
#[test]
fn dropped_ports_are_filtered_allowed_ones_verified() {
    if !netns::available("dropped_ports_are_filtered_allowed_ones_verified") {
        return;
    }
    let srv = Netns::new().unwrap();
    let cli = Netns::new().unwrap();
    netns::link(&srv, "10.231.0.1/24", &cli, "10.231.0.2/24").unwrap();
    srv.nft(
        "table inet scc_test {
           chain input {
             type filter hook input priority 0; policy accept;
             tcp dport 30010-30019 drop
             udp dport 30110-30119 drop
           }
         }",
    )
    .unwrap();
    let server: IpAddr = "10.231.0.1".parse().unwrap();
    let secret = Secret::new("netns secret").unwrap();
    let planned = vec![
        ep(server, Transport::Tcp, 30000, 30019, "tcp"),
        ep(server, Transport::Udp, 30100, 30119, "udp"),
    ];
    let (stop, listener) = listen_in(&srv, planned.clone(), secret.clone());

    // Targets: everything planned, plus a TCP and a UDP port nobody listens on (not dropped).
    let mut targets = planned.clone();
    targets.push(ep(server, Transport::Tcp, 30500, 30500, "unbound"));
    targets.push(ep(server, Transport::Udp, 30500, 30500, "unbound"));
    let probe_secret = secret.clone();
    let report = cli.run(move || {
        // A long ceiling: the dropped ports must be classified from measured round trips,
        // not by waiting it out.
        let opts = ProbeOptions {
            timeout: Duration::from_secs(3),
            ..ProbeOptions::default()
        };
        rt().block_on(probe::run(&targets, &probe_secret, opts, |_, _| {}))
    });

    for p in 30000..30010 {
        assert_eq!(
            status_of(&report, Transport::Tcp, p),
            Status::Verified,
            "tcp {p}"
        );
        assert_eq!(
            status_of(&report, Transport::Udp, p + 100),
            Status::Verified,
            "udp {}",
            p + 100
        );
    }
    for p in 30010..30020 {
        assert_eq!(
            status_of(&report, Transport::Tcp, p),
            Status::Filtered,
            "tcp {p}"
        );
        assert_eq!(
            status_of(&report, Transport::Udp, p + 100),
            Status::Filtered,
            "udp {}",
            p + 100
        );
    }
    assert_eq!(status_of(&report, Transport::Tcp, 30500), Status::Closed);
    assert_eq!(status_of(&report, Transport::Udp, 30500), Status::Closed);
    assert!(
        report.elapsed < Duration::from_secs(2),
        "timeouts did not adapt: {:?}",
        report.elapsed
    );
    assert!(!report.passed());

    // The sweep from the client finds the stray service and nothing planned.
    let sweep_secret = secret.clone();
    let swept = cli.run(move || {
        let opts = ProbeOptions {
            unexpected: true,
            ..ProbeOptions::default()
        };
        rt().block_on(probe::run(&planned, &sweep_secret, opts, |_, _| {}))
    });
    assert_eq!(swept.unexpected, vec![(server, 31000)]);

    let _ = stop.send(());
    let done = listener.join().unwrap().unwrap();
    assert_eq!(done.bound, 40);
    assert!(done.answered[&(Transport::Tcp, 30000)] >= 1);
    assert_eq!(
        done.answered
            .get(&(Transport::Tcp, 30010))
            .copied()
            .unwrap_or(0),
        0
    );
}
