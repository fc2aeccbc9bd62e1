//! `listen` and `probe`: the live verification commands, glue between the plan and `net`.

use std::io::{IsTerminal, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::args::{ListenArgs, ProbeArgs, ProbeFormat};
use super::{EXIT_NO, emit, load_deployment, require_host, require_zone};
use crate::catalog::{Catalog, Transport};
use crate::deployment::{Deployment, Zone};
use crate::diag::{Diagnostic, Diagnostics};
use crate::net::listen::{
    self, BindFailure, BindFailureKind, EventSink, ListenEvent, ListenOptions,
};
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

// --- workstations (issue 19): listen on an agent PC, probe it from where the media comes from ---

/// The endpoints an agent PC of client zone `zone` listens on: the zone's workstation bindings,
/// on `bind` or on the unspecified address of each family of the zone's networks (a PC's address
/// is not in the model: DHCP gives it, so every address of the PC answers).
pub fn workstation_endpoints(plan: &Plan, zone: &Zone, bind: Option<IpAddr>) -> Vec<Endpoint> {
    let mut addresses: Vec<IpAddr> = match bind {
        Some(a) => vec![a],
        None => zone
            .cidrs
            .iter()
            .map(|c| match c {
                ipnet::IpNet::V4(_) => IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED),
                ipnet::IpNet::V6(_) => IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED),
            })
            .collect(),
    };
    addresses.sort();
    addresses.dedup();
    let mut out = Vec::new();
    for b in &plan.bindings {
        if !matches!(&b.host, Host::Workstations { zone: z, .. } if *z == zone.name) {
            continue;
        }
        for &a in &addresses {
            out.push(endpoint(a, b));
        }
    }
    out
}

/// The endpoints a prober in `zone` must reach on the agent PCs at `addresses`: each PC's
/// workstation bindings (of the client zone whose networks hold it) that `zone` sends to. A PC
/// in no client zone, or one `zone` sends nothing to, is refused (E043, exit 2).
pub fn workstation_targets(
    dep: &Deployment,
    plan: &Plan,
    zone: &Zone,
    addresses: &[IpAddr],
) -> Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    for &a in addresses {
        let mut held = None;
        let mut found = 0;
        for b in &plan.bindings {
            let Host::Workstations { zone: wz, cidrs } = &b.host else {
                continue;
            };
            if !cidrs.iter().any(|c| c.contains(&a)) {
                continue;
            }
            held = Some(wz.clone());
            if b.reachable_from(zone)
                && !out.iter().any(|e: &Endpoint| {
                    e.address == a && e.transport == b.transport && e.ports == b.ports
                })
            {
                out.push(endpoint(a, b));
                found += 1;
            }
        }
        let problem = match held {
            None => {
                let clients: Vec<String> = dep
                    .zones
                    .iter()
                    .filter(|z| plan.bindings.iter().any(|b| matches!(&b.host, Host::Workstations { zone: n, .. } if *n == z.name)))
                    .map(|z| format!("{} ({})", z.name, z.cidrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")))
                    .collect();
                Some((
                    format!("--to-workstation {a} is in no client zone's networks"),
                    format!(
                        "give the address of an agent PC; the client zones: {}",
                        if clients.is_empty() {
                            "none".to_owned()
                        } else {
                            clients.join("; ")
                        }
                    ),
                ))
            }
            Some(wz) if found == 0 => Some((
                format!(
                    "zone `{}` sends nothing to the workstations of zone `{wz}` ({a})",
                    zone.name
                ),
                format!(
                    "`scc-ports flows FILE --node {wz}` lists the zones that do; probe from one of them"
                ),
            )),
            Some(_) => None,
        };
        if let Some((message, hint)) = problem {
            return Err(Diagnostics(vec![Diagnostic::error("E043", message).hint(hint)]).into());
        }
    }
    Ok(out)
}

// --- end of workstations ---

/// The endpoints a prober in `zone` must reach: every server binding that one of the zone's roles
/// connects to (the role `servers` of a zone that carries it), each address once.
pub fn zone_targets(
    dep: &Deployment,
    plan: &Plan,
    zone: &str,
    node: Option<&str>,
) -> Vec<Endpoint> {
    let Some(zone) = dep.zone(zone) else {
        return Vec::new();
    };
    plan.zone_targets(zone, node)
        .map(|(b, address, _)| endpoint(address, b))
        .collect()
}

/// Every address `probe --unexpected` sweeps besides the targets': each node's own address,
/// whatever it plans for the zone (a database or an SBC may plan nothing at all), and each
/// unit's virtual address; with `--node`, that node's address and the units it holds an
/// instance of.
pub fn sweep_addresses(dep: &Deployment, node: Option<&str>) -> Vec<IpAddr> {
    let mut seen = std::collections::HashSet::new();
    let chosen = |i: usize| node.is_none_or(|want| dep.nodes[i].name == want);
    let nodes = (0..dep.nodes.len()).filter(|&i| chosen(i));
    let units = dep
        .units
        .iter()
        .filter(|u| node.is_none() || u.instances.iter().any(|&i| chosen(i)));
    nodes
        .map(|i| dep.nodes[i].address)
        .chain(units.map(|u| u.address))
        .filter(|a| seen.insert(*a))
        .collect()
}

fn secret(file: Option<&Path>) -> Result<(Secret, SecretOrigin)> {
    let (secret, origin) = match file {
        Some(p) => (Secret::from_file(p)?, SecretOrigin::File),
        None => Secret::from_env_or_generate()?,
    };
    warn_all(&secret_warnings(&secret, file));
    Ok((secret, origin))
}

/// Secrets shorter than this draw a warning: a captured probe lets anyone test guesses of the
/// secret offline, as fast as they can compute HMACs.
pub const MIN_SECRET_LEN: usize = 16;

/// What is weak about a secret and the file it came from (each a line for a person).
pub fn secret_warnings(secret: &Secret, file: Option<&Path>) -> Vec<String> {
    let mut out = Vec::new();
    let len = secret.key().len();
    if len < MIN_SECRET_LEN {
        out.push(format!(
            "the secret is only {len} bytes: a captured probe lets anyone try guesses offline; \
             use {MIN_SECRET_LEN} or more (a listener without one makes a 64-digit secret)"
        ));
    }
    #[cfg(unix)]
    if let Some(p) = file {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(p) {
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_file() && mode & 0o044 != 0 {
                out.push(format!(
                    "secret file {} is readable by {} (mode {mode:03o}): chmod 600 {}",
                    p.display(),
                    if mode & 0o040 != 0 && mode & 0o004 != 0 {
                        "group and others"
                    } else if mode & 0o040 != 0 {
                        "its group"
                    } else {
                        "others"
                    },
                    p.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = file;
    out
}

fn warn_all(warnings: &[String]) {
    let mut err = anstream::stderr();
    let yellow = anstyle::Style::new()
        .fg_color(Some(anstyle::AnsiColor::Yellow.into()))
        .bold();
    for w in warnings {
        let _ = writeln!(err, "{yellow}warning{yellow:#}: {w}");
    }
}

/// The `--timeout` bounds: below 10 ms even loopback answers are late; past 60 s a run of
/// filtered ports takes hours.
pub const MIN_TIMEOUT: Duration = Duration::from_millis(10);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);

fn check_timeout(t: Duration) -> Result<Duration> {
    if (MIN_TIMEOUT..=MAX_TIMEOUT).contains(&t) {
        return Ok(t);
    }
    Err(Diagnostics(vec![
        Diagnostic::error(
            "E040",
            format!(
                "--timeout {} is outside 10ms..60s",
                humantime::format_duration(t)
            ),
        )
        .hint(
            "it is the wait for each answer: 500ms (the default) suits a LAN, 2s a slow WAN; \
             the whole run ends within (2 x waves of 512 probes + 2) x 4 attempts x timeout + 10 s",
        ),
    ])
    .into())
}

/// The address this host sends from toward `target`: routing decides, nothing is sent (a UDP
/// socket's connect only picks the route).
fn source_toward(target: IpAddr) -> Option<IpAddr> {
    let any: SocketAddr = if target.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(any).ok()?;
    s.connect((target, 9)).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

/// The zone guard: a probe proves something about `zone` only when it is sent from the zone.
/// With `--source` (the address the zone is seen as, behind NAT), that address must be in the
/// zone; else the address this host reaches at least one target from must be. Returns the
/// targets reached from outside the zone (to warn about), or the refusal.
pub fn zone_guard(
    zone: &Zone,
    targets: &[IpAddr],
    source: Option<IpAddr>,
    route: impl Fn(IpAddr) -> Option<IpAddr>,
) -> Result<Vec<(IpAddr, IpAddr)>> {
    let cidrs: Vec<String> = zone.cidrs.iter().map(ToString::to_string).collect();
    let inside = |a: IpAddr| zone.cidrs.iter().any(|c| c.contains(&a));
    if let Some(a) = source {
        if inside(a) {
            return Ok(Vec::new());
        }
        return Err(Diagnostics(vec![
            Diagnostic::error(
                "E041",
                format!(
                    "--source {a} is not in zone `{}` ({})",
                    zone.name,
                    cidrs.join(", ")
                ),
            )
            .hint("--source is the address the zone's hosts are seen as (behind NAT); it must be inside the zone"),
        ])
        .into());
    }
    let mut addresses: Vec<IpAddr> = targets.to_vec();
    addresses.sort();
    addresses.dedup();
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let routes: Vec<(IpAddr, Option<IpAddr>)> = addresses.iter().map(|&a| (a, route(a))).collect();
    if routes.iter().any(|(_, s)| s.is_some_and(inside)) {
        return Ok(routes
            .into_iter()
            .filter_map(|(t, s)| s.filter(|s| !inside(*s)).map(|s| (t, s)))
            .collect());
    }
    let mut from: Vec<String> = routes
        .iter()
        .filter_map(|(_, s)| s.map(|s| s.to_string()))
        .collect();
    from.sort();
    from.dedup();
    let from = if from.is_empty() {
        "no route to any target".to_owned()
    } else {
        format!("it reaches the targets from {}", from.join(", "))
    };
    Err(Diagnostics(vec![
        Diagnostic::error(
            "E041",
            format!(
                "this host is not in zone `{}` ({}): {from}, so a probe from here proves nothing about the zone",
                zone.name,
                cidrs.join(", ")
            ),
        )
        .hint(format!(
            "run the probe on a host of zone `{}`; behind NAT, give --source ADDR, the address the zone's hosts are seen as",
            zone.name
        )),
    ])
    .into())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Completes on Ctrl-C or SIGTERM (a service manager's stop, `kill`), so both end with the
/// summary. The handlers are installed by this call (within a runtime), not at the first poll:
/// `tokio::signal::ctrl_c()` registers only when first polled, which the listener does after
/// printing `ready:`, and a script's Ctrl-C in between killed it without a summary.
fn interrupt() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    let (mut int, mut term) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        )
    };
    #[cfg(windows)]
    let (mut signal, mut close) = (
        tokio::signal::windows::ctrl_c()?,
        // Closing the console window: Windows allows a few seconds, enough for the summary.
        tokio::signal::windows::ctrl_close()?,
    );
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        #[cfg(windows)]
        tokio::select! {
            _ = signal.recv() => {}
            _ = close.recv() => {}
        }
    })
}

/// The lines for ports that could not be bound: one per address that is not on this host (with
/// what to do), one per other failure, and a hint for privileged ports.
pub fn bind_failure_lines(
    failures: &[BindFailure],
    bind: Option<IpAddr>,
    root: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut missing: Vec<(IpAddr, usize, usize)> = Vec::new();
    for f in failures
        .iter()
        .filter(|f| f.kind == BindFailureKind::AddressNotAvailable)
    {
        let i = match missing.iter().position(|m| m.0 == f.address) {
            Some(i) => i,
            None => {
                missing.push((f.address, 0, 0));
                missing.len() - 1
            }
        };
        match f.transport {
            Transport::Tcp => missing[i].1 += 1,
            Transport::Udp => missing[i].2 += 1,
        }
    }
    for (address, tcp, udp) in &missing {
        let what = if bind.is_some() {
            "give --bind an address of this host".to_owned()
        } else {
            format!(
                "add {address} to this server (the node's address or a unit's virtual IP), or use --bind ADDR"
            )
        };
        lines.push(format!(
            "cannot bind {address}: not an address of this host ({tcp} tcp, {udp} udp ports); {what}"
        ));
    }
    // Ports the open-file limit left unbound share one reason: said once, with the count.
    let nofile = |f: &&BindFailure| f.reason.starts_with(listen::NOFILE_REASON);
    let short = failures.iter().filter(nofile).count();
    if let Some(f) = failures.iter().find(nofile) {
        lines.push(format!("cannot bind {short} ports: {}", f.reason));
    }
    let mut privileged = false;
    // One line per address, transport and reason (a port range held by one process, or a whole
    // area refused, is one line), in the order of their first port.
    let mut grouped: Vec<(&BindFailure, Vec<u16>, Vec<String>)> = Vec::new();
    for f in failures
        .iter()
        .filter(|f| f.kind != BindFailureKind::AddressNotAvailable && !nofile(f))
    {
        privileged |= f.kind == BindFailureKind::PermissionDenied && f.port < 1024;
        let id = format!("{}.{}", f.component, f.port_id);
        match grouped.iter_mut().find(|(g, ..)| {
            g.address == f.address && g.transport == f.transport && g.reason == f.reason
        }) {
            Some((_, ports, ids)) => {
                ports.push(f.port);
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            None => grouped.push((f, vec![f.port], vec![id])),
        }
    }
    for (f, mut ports, ids) in grouped {
        ports.sort_unstable();
        ports.dedup();
        let count = if ports.len() > 1 {
            format!("{} ports: ", ports.len())
        } else {
            String::new()
        };
        // The reason can carry another process's name (the holder of a busy port): its text
        // is that process's to choose, so it reaches the terminal cleaned.
        lines.push(format!(
            "cannot bind {} {} {} ({count}{}): {}",
            f.address,
            f.transport.as_str(),
            crate::report::port_runs(&ports),
            ids.join(", "),
            crate::safe::clean(crate::safe::Sink::Terminal, &f.reason)
        ));
    }
    if privileged && !root {
        lines.push(
            "hint: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability \
             (run as root, or: sudo setcap cap_net_bind_service=+ep \"$(command -v scc-ports)\")"
                .to_owned(),
        );
    }
    lines
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Why the listener stops at once instead of answering: the node's own address (`own`; `None`
/// with `--bind`) is not on this host, so this is the wrong host; or nothing could be bound.
/// A unit's virtual IP that is missing is not a reason: HAC holds it on the node running the
/// active instance, so a passive instance node lacks it, rightly, and still answers for the rest.
pub fn fail_fast(failures: &[BindFailure], bound: u64, own: Option<IpAddr>) -> Option<String> {
    if let Some(own) = own {
        let missing = failures
            .iter()
            .any(|f| f.kind == BindFailureKind::AddressNotAvailable && f.address == own);
        if missing {
            return Some(format!(
                "not listening: the node's own address {own} is not on this host (the wrong host?)"
            ));
        }
    }
    (bound == 0).then(|| "not listening: no port could be bound".to_owned())
}

/// The live line for a listener event.
pub fn event_line(e: &ListenEvent) -> String {
    match e {
        ListenEvent::AuthFailed {
            source,
            transport,
            port,
            more,
        } => {
            let more = if *more > 0 {
                format!(" ({more} more failed since the last such line)")
            } else {
                String::new()
            };
            format!(
                "auth: a probe from {source} to {} {port} does not verify: wrong secret?{more}",
                transport.as_str()
            )
        }
    }
}

pub fn listen_cmd(catalog: &Catalog, args: ListenArgs) -> Result<ExitCode> {
    let dep = load_deployment(args.file.as_deref(), catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    // One name for the ready line: `node APP1` or `workstations of zone agents`.
    let (endpoints, host) = match (&args.node, &args.workstations) {
        (Some(node), _) => {
            require_host(&dep, &plan, node)?;
            (node_endpoints(&plan, node), format!("node {node}"))
        }
        (None, Some(zone)) => {
            require_zone(&dep, zone)?;
            let z = dep.zone(zone).expect("zone checked above");
            let endpoints = workstation_endpoints(&plan, z, args.bind);
            if endpoints.is_empty() {
                return Err(Diagnostics(vec![
                    Diagnostic::error(
                        "E042",
                        format!("zone `{zone}` has no workstation ports: nothing to listen on"),
                    )
                    .hint("workstation ports are planned for zones with the role `clients` (agent PCs); `scc-ports flows FILE` lists them"),
                ])
                .into());
            }
            (endpoints, format!("workstations of zone {zone}"))
        }
        (None, None) => unreachable!("clap requires --node or --workstations"),
    };
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
    // Distinct sockets, as the listener binds them (with --bind, one address takes them all).
    let ports = {
        let mut distinct = std::collections::HashSet::new();
        for e in &endpoints {
            for p in e.ports.ports() {
                distinct.insert((args.bind.unwrap_or(e.address), e.transport, p));
            }
        }
        distinct.len() as u64
    };
    let addresses: Vec<String> = match args.bind {
        Some(a) => vec![a.to_string()],
        None => {
            let mut v: Vec<IpAddr> = endpoints.iter().map(|e| e.address).collect();
            v.sort();
            v.dedup();
            v.iter().map(ToString::to_string).collect()
        }
    };
    let own = match (args.bind, &args.node) {
        (None, Some(node)) => dep
            .nodes
            .iter()
            .find(|n| &n.name == node)
            .map(|n| n.address),
        _ => None,
    };
    // A workstation's endpoints already carry --bind (or the unspecified address).
    let bind = args.bind.filter(|_| args.node.is_some());
    let rt = runtime()?;
    let interrupted = {
        let _in_runtime = rt.enter();
        interrupt().context("cannot install the Ctrl-C handler")?
    };
    let opts = ListenOptions {
        events: Some(EventSink(Arc::new(|e| {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{}", event_line(&e));
            let _ = out.flush();
        }))),
        ..ListenOptions::default()
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut stopped = None;
    let report = rt.block_on(listen::run(
        &endpoints,
        bind,
        &secret,
        opts,
        |failures| {
            let mut out = std::io::stdout();
            for line in bind_failure_lines(failures, bind, is_root()) {
                let _ = writeln!(out, "{line}");
            }
            let bound = ports.saturating_sub(failures.len() as u64);
            match fail_fast(failures, bound, own) {
                Some(why) => {
                    let _ = writeln!(out, "{why}");
                    stopped = Some(why);
                    let _ = stop_tx.send(());
                }
                None => {
                    let _ = writeln!(
                        out,
                        "ready: {bound} of {ports} ports bound on {} for {host}, {} failed; answering for {}",
                        addresses.join(" "),
                        failures.len(),
                        humantime::format_duration(duration)
                    );
                }
            }
            let _ = out.flush();
        },
        async move {
            tokio::select! {
                _ = tokio::time::sleep(duration) => {}
                _ = interrupted => {}
                // Only a sent stop counts: the sender is dropped when on_ready returns.
                Ok(()) = stop_rx => {}
            }
        },
    ));
    if stopped.is_some() {
        return Ok(ExitCode::from(EXIT_NO));
    }
    let d = report.dropped;
    let text = format!(
        "answered {} probes on {} ports; dropped {} unauthenticated, {} malformed, {} replayed, {} wrong port, {} rate-limited; refused {} sessions, evicted {} waiting, closed {} idle\n",
        report.total_answered(),
        report.answered.len(),
        d.unauthenticated,
        d.malformed,
        d.replayed,
        d.wrong_port,
        d.rate_limited,
        d.sessions_refused,
        d.sessions_evicted,
        d.idle_timeouts
    );
    let text = if d.unauthenticated > 0 && report.total_answered() == 0 {
        format!(
            "{text}no probe verified, {} did not: does the prober use this listener's secret?\n",
            d.unauthenticated
        )
    } else {
        text
    };
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
    let timeout = check_timeout(args.timeout.into())?;
    let zone = dep.zone(&args.from).expect("zone checked above");
    let targets = if args.to_workstation.is_empty() {
        zone_targets(&dep, &plan, &args.from, args.node.as_deref())
    } else {
        workstation_targets(&dep, &plan, zone, &args.to_workstation)?
    };
    // Toward agent PCs the sweep is of the PCs themselves: what else they accept.
    let swept = match (args.unexpected, args.to_workstation.is_empty()) {
        (false, _) => Vec::new(),
        (true, true) => sweep_addresses(&dep, args.node.as_deref()),
        (true, false) => {
            let mut pcs: Vec<IpAddr> = Vec::new();
            for a in &args.to_workstation {
                if !pcs.contains(a) {
                    pcs.push(*a);
                }
            }
            pcs
        }
    };
    let addresses: Vec<IpAddr> = targets
        .iter()
        .map(|t| t.address)
        .chain(swept.iter().copied())
        .collect();
    let outside = zone_guard(zone, &addresses, args.source, source_toward)?;
    let secret = match args.secret_file.as_deref() {
        Some(p) => Secret::from_file(p)?,
        None => Secret::from_env()?.context(
            "no secret: give the listener's secret with --secret-file FILE or SCC_PORTS_SECRET",
        )?,
    };
    warn_all(&secret_warnings(&secret, args.secret_file.as_deref()));
    if !outside.is_empty() {
        let list: Vec<String> = outside
            .iter()
            .map(|(t, s)| format!("{t} (from {s})"))
            .collect();
        warn_all(&[format!(
            "some targets are reached from outside zone `{}`: {}; their results do not speak for the zone",
            zone.name,
            list.join(", ")
        )]);
    }
    let opts = ProbeOptions {
        timeout,
        unexpected: args.unexpected,
        sweep_addresses: swept,
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
    let elsewhere = planned_elsewhere(&dep, &plan, zone, &report.unexpected);
    // What the report checks the file's zone against: the addresses this probe was sent from.
    let sources: Vec<IpAddr> = match args.source {
        Some(a) => vec![a],
        None => {
            let mut to: Vec<IpAddr> = targets.iter().map(|t| t.address).collect();
            to.sort();
            to.dedup();
            let mut v: Vec<IpAddr> = to.into_iter().filter_map(source_toward).collect();
            v.sort();
            v.dedup();
            v
        }
    };
    let text = match args.format {
        ProbeFormat::Json => super::json(&report_json(&report, &args.from, &sources, &elsewhere))?,
        ProbeFormat::Junit => report.to_junit(),
        ProbeFormat::Table => report_table(&report, &elsewhere),
    };
    emit(&text)?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO)
    })
}

/// An unexpected open port that the plan has on that address for other zones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedElsewhere {
    /// `component.port_id` of each binding covering the port.
    pub ids: Vec<String>,
    /// The zones whose roles connect to it.
    pub zones: Vec<String>,
}

/// For each unexpected port (in order): the plan's bindings of that address and port, when the
/// plan has it for zones other than `zone`.
pub fn planned_elsewhere(
    dep: &Deployment,
    plan: &Plan,
    zone: &Zone,
    unexpected: &[(IpAddr, u16)],
) -> Vec<Option<PlannedElsewhere>> {
    // The plan's TCP bindings by address: a sweep may find many ports on a node of thousands.
    let mut by_address: std::collections::HashMap<IpAddr, Vec<&crate::plan::Binding>> =
        Default::default();
    for b in &plan.bindings {
        if let (Host::Node { address, .. }, Transport::Tcp) = (&b.host, b.transport) {
            by_address.entry(*address).or_default().push(b);
        }
    }
    unexpected
        .iter()
        .map(|&(address, port)| {
            let mut ids = Vec::new();
            let mut zones = Vec::new();
            for b in by_address.get(&address).into_iter().flatten() {
                if !b.ports.contains(port) {
                    continue;
                }
                ids.push(format!("{}.{}", b.component, b.port_id));
                for z in &dep.zones {
                    if z.name != zone.name && b.reachable_from(z) && !zones.contains(&z.name) {
                        zones.push(z.name.clone());
                    }
                }
            }
            ids.dedup();
            (!ids.is_empty()).then_some(PlannedElsewhere { ids, zones })
        })
        .collect()
}

const SECRETS_DIFFER: &str = "every TCP port accepted the connection but none answered with our token: \
     the prober's and the listener's secrets probably differ (same --secret-file or SCC_PORTS_SECRET on both?)";

/// The JSON of DESIGN §6: `summary`, `results`, the sweep's `unexpected` ports (with what the
/// plan has there for other zones), and whether the secrets probably differ.
pub fn report_json(
    report: &ProbeReport,
    zone: &str,
    sources: &[IpAddr],
    elsewhere: &[Option<PlannedElsewhere>],
) -> serde_json::Value {
    let unexpected: Vec<serde_json::Value> = report
        .unexpected
        .iter()
        .enumerate()
        .map(|(i, (a, p))| {
            let mut v = serde_json::json!({"address": a, "transport": "tcp", "port": p});
            if let Some(Some(e)) = elsewhere.get(i) {
                v["note"] = "not planned for this zone".into();
                v["planned_as"] = e.ids.clone().into();
                v["planned_for"] = e.zones.clone().into();
            }
            v
        })
        .collect();
    let differ = report.secrets_probably_differ();
    let mut v = serde_json::json!({
        "format_version": crate::FORMAT_VERSION,
        "zone": zone,
        "sources": sources,
        "summary": report.summary(),
        "results": report.results,
        "unexpected": unexpected,
        "swept": report.swept(),
        "secrets_probably_differ": differ,
        "hint": if differ { serde_json::Value::from(SECRETS_DIFFER) } else { serde_json::Value::Null },
        "elapsed_ms": report.elapsed.as_secs_f64() * 1000.0,
    });
    if report.sweep_asked {
        v["sweep"] = report.sweep_json();
    }
    v
}

/// Results for a person: consecutive ports of one endpoint with one status collapse into a range.
pub fn report_table(report: &ProbeReport, elsewhere: &[Option<PlannedElsewhere>]) -> String {
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
    for (i, (a, p)) in report.unexpected.iter().enumerate() {
        match elsewhere.get(i) {
            Some(Some(e)) => text.push_str(&format!(
                "unexpected: {a} tcp {p} accepts connections: not planned for this zone ({}{})\n",
                e.ids.join(", "),
                if e.zones.is_empty() {
                    String::new()
                } else {
                    format!(", planned for {}", e.zones.join(", "))
                }
            )),
            _ => text.push_str(&format!(
                "unexpected: {a} tcp {p} accepts connections but is not in the plan\n"
            )),
        }
    }
    text.push_str(&sweep_lines(report));
    let s = report.summary();
    text.push_str(&format!(
        "{} verified, {} open, {} closed, {} filtered, {} error{} in {:.1} s\n",
        s.verified,
        s.open,
        s.closed,
        s.filtered,
        s.error,
        if report.inconclusive() {
            format!(
                ", {} unexpected, sweep inconclusive ({})",
                report.unexpected.len(),
                report.inconclusive_why()
            )
        } else if report.sweep_asked {
            format!(", {} unexpected", report.unexpected.len())
        } else {
            String::new()
        },
        report.elapsed.as_secs_f64()
    ));
    if report.secrets_probably_differ() {
        text.push_str(SECRETS_DIFFER);
        text.push('\n');
    }
    text
}

/// The sweep's own lines: the addresses swept, those that could not be and why, and per
/// address the ports that never answered and whether that settles.
fn sweep_lines(report: &ProbeReport) -> String {
    let mut text = String::new();
    let swept: Vec<&probe::SweepSummary> = report.sweep.iter().filter(|s| s.swept).collect();
    if !swept.is_empty() {
        let list: Vec<String> = swept.iter().map(|s| s.address.to_string()).collect();
        text.push_str(&format!(
            "swept {} ports of {}: {}\n",
            swept.iter().map(|s| s.ports).sum::<u64>(),
            if swept.len() == 1 {
                "1 address".to_owned()
            } else {
                format!("{} addresses", swept.len())
            },
            list.join(", ")
        ));
    }
    for (address, why) in report.not_swept() {
        text.push_str(&format!("sweep {address} not swept: {why}\n"));
    }
    if report.sweep_asked && report.sweep.is_empty() {
        text.push_str("sweep: no address to sweep\n");
    }
    for s in swept {
        if s.conclusive() && s.unanswered == 0 {
            continue;
        }
        let why = if s.errors > 0 {
            format!("{} ports could not be tried (local errors)", s.errors)
        } else if s.settled {
            "consistently silent: filtered".to_owned()
        } else {
            "answers still came in on the last pass: loss or delay too high to tell".to_owned()
        };
        text.push_str(&format!(
            "sweep {} {}: {} of {} ports unanswered after {} passes ({why})\n",
            s.address,
            if s.conclusive() {
                "settled"
            } else {
                "inconclusive"
            },
            s.unanswered,
            s.ports,
            s.passes
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(
        address: &str,
        transport: Transport,
        port: u16,
        kind: BindFailureKind,
    ) -> BindFailure {
        BindFailure {
            address: address.parse().unwrap(),
            transport,
            port,
            component: "c".into(),
            port_id: "p".into(),
            kind,
            reason: "why".into(),
        }
    }

    #[test]
    fn missing_addresses_are_one_line_each_and_privileged_ports_get_a_hint() {
        use BindFailureKind::*;
        let f = vec![
            failure("192.0.2.1", Transport::Tcp, 443, AddressNotAvailable),
            failure("192.0.2.1", Transport::Udp, 5000, AddressNotAvailable),
            failure("192.0.2.1", Transport::Udp, 5001, AddressNotAvailable),
            failure("10.0.0.1", Transport::Tcp, 80, PermissionDenied),
            failure("10.0.0.1", Transport::Tcp, 8080, InUse),
        ];
        let mut f = f;
        f[4].reason = "in use".into();
        let lines = bind_failure_lines(&f, None, false);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert_eq!(
            lines[0],
            "cannot bind 192.0.2.1: not an address of this host (1 tcp, 2 udp ports); add 192.0.2.1 to this server (the node's address or a unit's virtual IP), or use --bind ADDR"
        );
        assert_eq!(lines[1], "cannot bind 10.0.0.1 tcp 80 (c.p): why");
        assert_eq!(lines[2], "cannot bind 10.0.0.1 tcp 8080 (c.p): in use");
        assert!(lines[3].starts_with(
            "hint: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability"
        ));
        // As root, or without a privileged port, no hint.
        assert_eq!(bind_failure_lines(&f, None, true).len(), 3);
        assert_eq!(bind_failure_lines(&f[4..], None, false).len(), 1);
        // With --bind the advice is about --bind.
        assert!(
            bind_failure_lines(&f[..1], Some("192.0.2.1".parse().unwrap()), false)[0]
                .ends_with("; give --bind an address of this host")
        );
        let own = Some("192.0.2.1".parse().unwrap());
        assert_eq!(
            fail_fast(&f, 10, own).as_deref(),
            Some(
                "not listening: the node's own address 192.0.2.1 is not on this host (the wrong host?)"
            )
        );
        // A missing virtual IP (a passive instance node) or --bind: the rest is answered.
        assert_eq!(fail_fast(&f, 10, Some("10.0.0.1".parse().unwrap())), None);
        assert_eq!(fail_fast(&f, 10, None), None);
        assert_eq!(fail_fast(&f[3..], 10, own), None);
        assert_eq!(
            fail_fast(&f[3..], 0, own).as_deref(),
            Some("not listening: no port could be bound")
        );
    }

    #[test]
    fn failures_with_one_reason_are_one_line_of_port_runs() {
        use BindFailureKind::*;
        let mut f: Vec<BindFailure> = (5004..=5031)
            .map(|p| failure("10.0.0.1", Transport::Udp, p, InUse))
            .collect();
        f[27].port_id = "q".into();
        f.push(failure("10.0.0.1", Transport::Tcp, 5004, InUse));
        let mut other = failure("10.0.0.1", Transport::Udp, 6000, InUse);
        other.reason = "held by pid 9 x".into();
        f.push(other);
        let lines = bind_failure_lines(&f, None, true);
        assert_eq!(
            lines,
            [
                "cannot bind 10.0.0.1 udp 5004-5031 (28 ports: c.p, c.q): why",
                "cannot bind 10.0.0.1 tcp 5004 (c.p): why",
                "cannot bind 10.0.0.1 udp 6000 (c.p): held by pid 9 x",
            ]
        );
        assert_eq!(
            crate::report::port_runs(&[7, 8, 5004, 5006, 5008, 5010]),
            "7-8, 5004-5010 even"
        );
        assert_eq!(crate::report::port_runs(&[1, 3, 9]), "1, 3, 9");
        assert_eq!(crate::report::port_runs(&[]), "");
    }

    fn zone(cidrs: &[&str]) -> Zone {
        Zone {
            name: "agents".into(),
            cidrs: cidrs.iter().map(|c| c.parse().unwrap()).collect(),
            roles: vec![],
            location: crate::diag::Location {
                file: "t.toml".into(),
                line: 1,
                column: 1,
            },
        }
    }

    fn target(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn the_zone_guard_wants_the_source_inside_the_zone() {
        let z = zone(&["10.1.0.0/16"]);
        let t = [target("192.168.0.1"), target("192.168.0.2")];
        let from = |s: &'static str| move |_| s.parse().ok();
        let err = zone_guard(&z, &t, None, from("172.16.0.9")).unwrap_err();
        assert!(err.to_string().contains(
            "this host is not in zone `agents` (10.1.0.0/16): it reaches the targets from 172.16.0.9"
        ), "{err}");
        assert!(
            zone_guard(&z, &t, None, from("10.1.2.3"))
                .unwrap()
                .is_empty()
        );
        assert!(zone_guard(&z, &t, None, |_| None).is_err());
        // Behind NAT: --source names the address the zone is seen as; no route is asked.
        assert!(zone_guard(&z, &t, Some("10.1.9.9".parse().unwrap()), |_| panic!()).is_ok());
        let err = zone_guard(&z, &t, Some("10.2.0.1".parse().unwrap()), |_| None).unwrap_err();
        assert!(
            err.to_string()
                .contains("--source 10.2.0.1 is not in zone `agents`"),
            "{err}"
        );
        // Some targets reached from the zone, one not: allowed, and named for a warning.
        let split = |a: IpAddr| {
            Some(
                if a.to_string() == "192.168.0.1" {
                    "10.1.0.5"
                } else {
                    "172.16.0.9"
                }
                .parse()
                .unwrap(),
            )
        };
        let outside = zone_guard(&z, &t, None, split).unwrap();
        assert_eq!(
            outside,
            vec![(
                "192.168.0.2".parse().unwrap(),
                "172.16.0.9".parse().unwrap()
            )]
        );
        // Nothing to probe: nothing to refuse.
        assert!(zone_guard(&z, &[], None, |_| None).is_ok());
    }

    #[test]
    fn short_secrets_are_warned_about() {
        let w = secret_warnings(&Secret::new("abc").unwrap(), None);
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("the secret is only 3 bytes"), "{w:?}");
        assert!(secret_warnings(&Secret::new("0123456789abcdef").unwrap(), None).is_empty());
    }

    #[test]
    fn timeouts_outside_the_bounds_are_refused() {
        assert!(check_timeout(Duration::from_millis(10)).is_ok());
        assert!(check_timeout(Duration::from_secs(60)).is_ok());
        assert!(check_timeout(Duration::from_millis(9)).is_err());
        assert!(check_timeout(Duration::from_secs(3600)).is_err());
    }

    #[test]
    fn auth_events_name_the_source_and_the_likely_cause() {
        let e = ListenEvent::AuthFailed {
            source: "10.0.0.7".parse().unwrap(),
            transport: Transport::Udp,
            port: 5060,
            more: 3,
        };
        assert_eq!(
            event_line(&e),
            "auth: a probe from 10.0.0.7 to udp 5060 does not verify: wrong secret? (3 more failed since the last such line)"
        );
    }
}
