//! Criterion benches of the pure core: parse + validate + resolve + check of generated systems.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use scc_ports::catalog::Catalog;
use scc_ports::deployment::{self, generate};
use scc_ports::diag::Source;

fn check_large(c: &mut Criterion) {
    let catalog = Catalog::embedded();
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    for (nodes, units) in [(1_000, 500), (10_000, 5_000)] {
        let text = generate::large_system(nodes, units);
        let source = Source::new("generated.toml", text);
        group.bench_with_input(
            BenchmarkId::new("parse+resolve+check", format!("{nodes}n/{units}u")),
            &source,
            |b, src| {
                b.iter(|| {
                    let dep =
                        deployment::parse(src, &catalog).expect("generated systems are valid");
                    let plan = scc_ports::plan::resolve(&dep, &catalog);
                    let findings = scc_ports::plan::check(&dep, &catalog, &plan);
                    std::hint::black_box(findings.len())
                })
            },
        );
        let dep = deployment::parse(&source, &catalog).unwrap();
        let plan = scc_ports::plan::resolve(&dep, &catalog);
        group.bench_with_input(
            BenchmarkId::new("check only", format!("{nodes}n/{units}u")),
            &(),
            |b, _| {
                b.iter(|| std::hint::black_box(scc_ports::plan::check(&dep, &catalog, &plan).len()))
            },
        );
        group.bench_with_input(
            BenchmarkId::new("flows", format!("{nodes}n/{units}u")),
            &(),
            |b, _| {
                b.iter(|| {
                    std::hint::black_box(scc_ports::flows::flows(&dep, &catalog, &plan).len())
                })
            },
        );
    }
    group.finish();
}

/// `check` alone at 1,000, 10,000 and 100,000 units: all on the same two nodes (every unit on
/// the same port: one grouped C102 per node) and spread over as many nodes (distinct ports).
fn check_scale(c: &mut Criterion) {
    let catalog = Catalog::embedded();
    let mut group = c.benchmark_group("check scale");
    group.sample_size(10);
    for units in [1_000, 10_000, 100_000] {
        for (shape, text) in [
            ("one node", generate::units_on_one_node(units)),
            ("spread", generate::large_system(units, units)),
        ] {
            let source = Source::new("generated.toml", text);
            let dep = deployment::parse(&source, &catalog).expect("generated systems are valid");
            let plan = scc_ports::plan::resolve(&dep, &catalog);
            group.bench_with_input(
                BenchmarkId::new(format!("check, {shape}"), units),
                &(),
                |b, _| {
                    b.iter(|| {
                        std::hint::black_box(scc_ports::plan::check(&dep, &catalog, &plan).len())
                    })
                },
            );
        }
    }
    group.finish();
}

fn catalog_load(c: &mut Criterion) {
    c.bench_function("catalog/embedded", |b| {
        b.iter(|| std::hint::black_box(Catalog::embedded().components.len()))
    });
}

criterion_group!(benches, check_large, check_scale, catalog_load);
criterion_main!(benches);
