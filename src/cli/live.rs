//! `listen` and `probe`: the live verification commands, glue between the plan and `net`.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use super::args::{ListenArgs, ProbeArgs, ProbeFormat};
use super::{EXIT_NO, emit, load_deployment, require_host, require_zone};
use crate::catalog::{Catalog, Role};
use crate::deployment::Deployment;
use crate::net::listen::{self, ListenOptions};
use crate::net::probe::{self, ProbeOptions, ProbeReport, Status};
use crate::net::{Endpoint, Secret, SecretOrigin};
use crate::plan::{Host, Plan};

/// What the listener binds and the prober tests for one binding, at `address`.
fn endpoint(address: IpAddr, b: &crate::plan::Binding) -> Endpoint {
    Endpoint {
        address,
        transport: b.transport,
        ports: b.ports,
        component: b.component.clone(),
        port_id: b.port_id.clone(),
    }
}

/// The endpoints a node listens on: every binding of the node, one per address, transport, range.
pub fn node_endpoints(plan: &Plan, node: &str) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = Vec::new();
    for b in plan.for_host(node) {
        let Host::Node { address, .. } = b.host else {
            continue;
        };
        out.push(endpoint(address, b));
    }
    out
}

/// The endpoints a prober in `zone` must reach: every server binding that one of the zone's roles
/// connects to (the role `servers` of a zone that carries it), each address once.
pub fn zone_targets(
    dep: &Deployment,
    plan: &Plan,
    zone: &str,
    node: Option<&str>,
) -> Vec<Endpoint> {
    let roles: Vec<Role> = dep.zone(zone).map(|z| z.roles.clone()).unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for b in &plan.bindings {
        let Host::Node { node: n, address } = &b.host else {
            continue;
        };
        if node.is_some_and(|want| want != n) || !b.from.iter().any(|r| roles.contains(r)) {
            continue;
        }
        if seen.insert((*address, b.transport, b.ports, &b.component, &b.port_id)) {
            out.push(endpoint(*address, b));
        }
    }
    out
}

fn secret(file: Option<&Path>) -> Result<(Secret, SecretOrigin)> {
    Ok(match file {
        Some(p) => (Secret::from_file(p)?, SecretOrigin::File),
        None => Secret::from_env_or_generate()?,
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Completes on Ctrl-C. The handler is installed by this call (within a runtime), not at the
/// first poll: `tokio::signal::ctrl_c()` registers only when first polled, which the listener
/// does after printing `ready:`, and a script's Ctrl-C in between killed it without a summary.
fn interrupt() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    #[cfg(windows)]
    let (mut signal, mut close) = (
        tokio::signal::windows::ctrl_c()?,
        // Closing the console window: Windows allows a few seconds, enough for the summary.
        tokio::signal::windows::ctrl_close()?,
    );
    Ok(async move {
        #[cfg(windows)]
        tokio::select! {
            _ = signal.recv() => {}
            _ = close.recv() => {}
        }
        #[cfg(not(windows))]
        signal.recv().await;
    })
}

pub fn listen_cmd(catalog: &Catalog, args: ListenArgs) -> Result<ExitCode> {
    let dep = load_deployment(args.file.as_deref(), catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    require_host(&dep, &plan, &args.node)?;
    let endpoints = node_endpoints(&plan, &args.node);
    let (secret, origin) = secret(args.secret_file.as_deref())?;
    let duration: Duration = args.duration.into();
    let mut out = std::io::stdout();
    if origin == SecretOrigin::Generated {
        writeln!(
            out,
            "secret: {} (give it to the prober: SCC_PORTS_SECRET or --secret-file)",
            secret.as_str()
        )?;
    }
    let ports: u32 = endpoints.iter().map(|e| e.ports.count()).sum();
    let addresses: Vec<String> = match args.bind {
        Some(a) => vec![a.to_string()],
        None => {
            let mut v: Vec<IpAddr> = endpoints.iter().map(|e| e.address).collect();
            v.sort();
            v.dedup();
            v.iter().map(ToString::to_string).collect()
        }
    };
    let rt = runtime()?;
    let interrupted = {
        let _in_runtime = rt.enter();
        interrupt().context("cannot install the Ctrl-C handler")?
    };
    let report = rt.block_on(listen::run(
        &endpoints,
        args.bind,
        &secret,
        ListenOptions::default(),
        |failures| {
            let mut out = std::io::stdout();
            for f in failures {
                let _ = writeln!(
                    out,
                    "cannot bind {} {} {} ({}.{}): {}",
                    f.address,
                    f.transport.as_str(),
                    f.port,
                    f.component,
                    f.port_id,
                    f.reason
                );
            }
            let _ = writeln!(
                out,
                "ready: {} of {ports} ports bound on {} for node {}, {} failed; answering for {}",
                u64::from(ports) - failures.len() as u64,
                addresses.join(" "),
                args.node,
                failures.len(),
                humantime::format_duration(duration)
            );
            let _ = out.flush();
        },
        async move {
            tokio::select! {
                _ = tokio::time::sleep(duration) => {}
                _ = interrupted => {}
            }
        },
    ));
    let d = report.dropped;
    let text = format!(
        "answered {} probes on {} ports; dropped {} unauthenticated, {} malformed, {} replayed, {} wrong port, {} rate-limited; refused {} sessions, closed {} idle\n",
        report.total_answered(),
        report.answered.len(),
        d.unauthenticated,
        d.malformed,
        d.replayed,
        d.wrong_port,
        d.rate_limited,
        d.sessions_refused,
        d.idle_timeouts
    );
    emit(&text)?;
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO)
    })
}

pub fn probe_cmd(catalog: &Catalog, args: ProbeArgs) -> Result<ExitCode> {
    let dep = load_deployment(args.file.as_deref(), catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    require_zone(&dep, &args.from)?;
    if let Some(n) = &args.node {
        require_host(&dep, &plan, n)?;
    }
    let targets = zone_targets(&dep, &plan, &args.from, args.node.as_deref());
    let secret = match args.secret_file.as_deref() {
        Some(p) => Secret::from_file(p)?,
        None => Secret::from_env()?.context(
            "no secret: give the listener's secret with --secret-file FILE or SCC_PORTS_SECRET",
        )?,
    };
    let opts = ProbeOptions {
        timeout: args.timeout.into(),
        unexpected: args.unexpected,
        ..ProbeOptions::default()
    };
    let bar = (args.format == ProbeFormat::Table && std::io::stderr().is_terminal()).then(|| {
        let total: u64 = targets.iter().map(|t| u64::from(t.ports.count())).sum();
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} probing {pos}/{len} ports {wide_bar} {elapsed}",
            )
            .expect("valid template"),
        );
        bar
    });
    let report = runtime()?.block_on(probe::run(&targets, &secret, opts, |done, total| {
        if let Some(b) = &bar {
            b.set_length(total);
            b.set_position(done);
        }
    }));
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let text = match args.format {
        ProbeFormat::Json => super::json(&report_json(&report))?,
        ProbeFormat::Junit => report.to_junit(),
        ProbeFormat::Table => report_table(&report),
    };
    emit(&text)?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO)
    })
}

/// The JSON of DESIGN §6: `summary`, `results`, and the sweep's `unexpected` ports.
pub fn report_json(report: &ProbeReport) -> serde_json::Value {
    serde_json::json!({
        "summary": report.summary(),
        "results": report.results,
        "unexpected": report.unexpected.iter().map(|(a, p)| serde_json::json!({"address": a, "transport": "tcp", "port": p})).collect::<Vec<_>>(),
        "swept": report.swept,
        "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0,
    })
}

/// Results for a person: consecutive ports of one endpoint with one status collapse into a range.
pub fn report_table(report: &ProbeReport) -> String {
    use crate::render::{Column, Format, Grid};
    let mut g = Grid::new(vec![
        Column::new("ADDRESS"),
        Column::new("PROTO"),
        Column::new("PORTS"),
        Column::new("STATUS"),
        Column::new("RTT"),
        Column::wrapping("COMPONENT.PORT"),
    ]);
    let mut notes = Vec::new();
    let rows = report.results.chunk_by(|a, b| {
        a.address == b.address
            && a.transport == b.transport
            && a.component == b.component
            && a.port_id == b.port_id
            && a.status == b.status
    });
    for run in rows {
        let (first, last) = (&run[0], &run[run.len() - 1]);
        let ports = if run.len() == 1 {
            first.port.to_string()
        } else {
            format!("{}-{} ({})", first.port, last.port, run.len())
        };
        let rtts: Vec<f64> = run.iter().filter_map(|r| r.rtt_ms).collect();
        let rtt = if rtts.is_empty() {
            "-".into()
        } else {
            format!("{:.1} ms", rtts.iter().sum::<f64>() / rtts.len() as f64)
        };
        if let Some(d) = first
            .detail
            .as_ref()
            .filter(|_| first.status != Status::Verified)
        {
            notes.push(format!(
                "{} {} {ports} {}: {d}\n",
                first.address,
                first.transport.as_str(),
                first.status.as_str()
            ));
        }
        g.push(vec![
            first.address.to_string(),
            first.transport.as_str().to_string(),
            ports,
            first.status.as_str().to_string(),
            rtt,
            format!("{}.{}", first.component, first.port_id),
        ]);
    }
    let mut text = g.render(Format::Table, 100);
    for n in notes {
        text.push_str(&n);
    }
    for (a, p) in &report.unexpected {
        text.push_str(&format!(
            "unexpected: {a} tcp {p} accepts connections but is not in the plan\n"
        ));
    }
    let s = report.summary();
    text.push_str(&format!(
        "{} verified, {} open, {} closed, {} filtered, {} error{} in {:.1} s\n",
        s.verified,
        s.open,
        s.closed,
        s.filtered,
        s.error,
        if report.swept {
            format!(", {} unexpected", report.unexpected.len())
        } else {
            String::new()
        },
        report.elapsed.as_secs_f64()
    ));
    text
}
