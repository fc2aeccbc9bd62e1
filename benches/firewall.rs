//! Criterion benches of the firewall generators: every target's `--network` policy (and the
//! nftables host policy of one node) on generated multi-site systems of 1,000 and 10,000 nodes;
//! 100,000 with `SCC_BENCH_100K=1` (the flows of that system take long to derive).
//!
//! The systems are those of `bench/nftload.py`: sites of 50 nodes, each with its own server and
//! agent zone (so the sources of `servers` and `clients` grow with the system), one admin zone,
//! one unit per two nodes.

use std::fmt::Write as _;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scc_ports::catalog::Catalog;
use scc_ports::deployment;
use scc_ports::diag::Source;
use scc_ports::firewall::{Mode, Policy, Request, TARGETS, select};

const SITE: usize = 50;
const PACKAGES: [&str; 8] = [
    "agent-server",
    "alarm-server",
    "call-dispatcher",
    "chat-server",
    "data-collector",
    "directory-server",
    "file-replication-server",
    "quality-monitoring-server",
];

/// The same system as `bench/nftload.py --write-system NODES` writes.
fn sites(nodes: usize) -> String {
    let sites = nodes.div_ceil(SITE).max(1);
    let mut s = String::from("name = \"sites\"\n\n");
    s.push_str("[zones.admins]\ncidrs = [\"192.168.0.0/24\"]\nroles = [\"admins\"]\n\n");
    let dc = |site: usize, host: usize| {
        let n = 2 * site;
        format!("10.{}.{}.{host}", (n >> 8) & 0xff, n & 0xff)
    };
    for site in 0..sites {
        let n = 2 * site;
        let _ = write!(
            s,
            "[zones.dc{site}]\ncidrs = [\"{}/24\"]\nroles = [\"servers\"]\n\n\
             [zones.agents{site}]\ncidrs = [\"172.{}.{}.0/24\"]\nroles = [\"clients\"]\n\n",
            dc(site, 0),
            16 + ((n >> 8) & 0xf),
            n & 0xff
        );
    }
    for i in 0..nodes {
        let (site, k) = (i / SITE, i % SITE);
        let _ = write!(
            s,
            "[nodes.N{i}]\naddress = \"{}\"\nzone = \"dc{site}\"\n\n",
            dc(site, 1 + k)
        );
    }
    for u in 0..nodes / 2 {
        let pkg = PACKAGES[u % PACKAGES.len()];
        let (a, b) = (2 * u, 2 * u + 1);
        let (site, k) = (a / SITE, a % SITE);
        let _ = write!(
            s,
            "[units.U{u}]\naddress = \"{}\"\npackages = [\"{pkg}\"]\ninstances = [\"N{a}\", \"N{b}\"]\n\n\
             [units.U{u}.variables]\n\"{pkg}.port\" = {}\n\n",
            dc(site, 100 + k / 2),
            1024 + u % 40000
        );
    }
    s
}

fn generators(c: &mut Criterion) {
    let catalog = Catalog::embedded();
    let mut sizes = vec![1_000, 10_000];
    if std::env::var_os("SCC_BENCH_100K").is_some() {
        sizes.push(100_000);
    }
    let mut group = c.benchmark_group("firewall");
    group.sample_size(10);
    for nodes in sizes {
        let source = Source::new("sites.toml", sites(nodes));
        let dep = deployment::parse(&source, &catalog).expect("generated systems are valid");
        let plan = scc_ports::plan::resolve(&dep, &catalog);
        let all = scc_ports::flows::flows(&dep, &catalog, &plan);
        let network = select(&dep, &all, &Mode::Network);
        for target in TARGETS {
            let request = Request {
                deployment: &dep,
                mode: Mode::Network,
                policy: Policy::Drop,
                flows: network.clone(),
            };
            group.bench_with_input(
                BenchmarkId::new(format!("{} --network", target.name()), nodes),
                &request,
                |b, r| b.iter(|| std::hint::black_box(target.generate(r).len())),
            );
        }
        let node = &dep.nodes[0];
        let mode = Mode::Node {
            name: node.name.clone(),
            addresses: vec![node.address],
        };
        let request = Request {
            deployment: &dep,
            flows: select(&dep, &all, &mode),
            mode,
            policy: Policy::Drop,
        };
        group.bench_with_input(
            BenchmarkId::new("nftables --node N0", nodes),
            &request,
            |b, r| {
                let nft = scc_ports::firewall::target("nftables").unwrap();
                b.iter(|| std::hint::black_box(nft.generate(r).len()))
            },
        );
    }
    group.finish();
}

criterion_group!(benches, generators);
criterion_main!(benches);
