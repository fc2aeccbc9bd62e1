//! The system report: probe results of every zone merged with the plan into one matrix (zone ×
//! node × port), each failure with its likely cause and the rule that would admit it, and the
//! renderers of that matrix (table, JSON, JUnit, Markdown, HTML with an inline SVG picture).

pub mod audit;
pub mod drift;
pub mod graph;
pub mod html;
pub mod inventory;
pub mod merged;
pub mod text;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Role, Transport};
use crate::deployment::Deployment;
use crate::firewall::{Mode, Policy, Request};
use crate::flows::Flow;
use crate::plan::{Finding, Plan};
use crate::range::PortRange;

/// The status of one planned port from one zone: the prober's five, `inconclusive` (a prober
/// that retried without a clear answer), and `untested` (no result covers it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Verified,
    Open,
    Closed,
    Filtered,
    Inconclusive,
    Error,
    Untested,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Verified,
        Status::Open,
        Status::Closed,
        Status::Filtered,
        Status::Inconclusive,
        Status::Error,
        Status::Untested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::Open => "open",
            Status::Closed => "closed",
            Status::Filtered => "filtered",
            Status::Inconclusive => "inconclusive",
            Status::Error => "error",
            Status::Untested => "untested",
        }
    }

    fn parse(word: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == word)
    }

    /// How bad, for colouring an aggregate: the worst status of its ports wins.
    pub fn rank(self) -> u8 {
        match self {
            Status::Verified => 0,
            Status::Untested => 1,
            Status::Inconclusive => 2,
            Status::Open => 3,
            Status::Closed => 4,
            Status::Error => 5,
            Status::Filtered => 6,
        }
    }
}

/// Why a report cannot be made from the given files.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{file}:{line}:{column}: not a probe result (JSON): {message}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{file}: the probe result names no zone (no top-level \"zone\"); hint: make it with `scc-ports probe FILE --from ZONE --format json` of this version"
    )]
    NoZone { file: String },
    #[error(
        "{file}: the probe result's zone `{zone}` is not a zone of the deployment; hint: {hint}"
    )]
    UnknownZone {
        file: String,
        zone: String,
        hint: String,
    },
    #[error(
        "{file}: format_version {version} is newer than this scc-ports reads ({}); hint: make the report with the scc-ports version that probed, or a newer one",
        crate::FORMAT_VERSION
    )]
    FutureVersion { file: String, version: u64 },
}

/// One probe result file: what `probe --format json` writes.
#[derive(Debug, Clone)]
pub struct ProbeFile {
    /// The file name, for messages and the report's list of inputs.
    pub name: String,
    pub zone: String,
    /// The addresses the prober sent from (`sources`; missing in files of older versions).
    pub sources: Option<Vec<IpAddr>>,
    /// The zone the file was made in by the one who ran the prober (`report --expect-zone`,
    /// which the playbook gives), when known.
    pub expected_zone: Option<String>,
    pub results: Vec<ProbeLine>,
}

/// One result line of a probe file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ProbeLine {
    pub address: IpAddr,
    pub transport: Transport,
    pub port: u16,
    pub component: String,
    pub port_id: String,
    pub status: String,
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Deserialize)]
struct RawProbe {
    #[serde(default)]
    format_version: Option<u64>,
    zone: Option<String>,
    #[serde(default)]
    sources: Option<Vec<IpAddr>>,
    results: Vec<ProbeLine>,
}

/// Reads one probe result (`name` is for messages) and checks its zone against the deployment.
pub fn parse_probe(name: &str, text: &str, dep: &Deployment) -> Result<ProbeFile, ReportError> {
    let raw: RawProbe = serde_json::from_str(text).map_err(|e| ReportError::Json {
        file: name.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    // A newer format may mean something else by the same fields: refused, never guessed at.
    if let Some(version) = raw
        .format_version
        .filter(|v| *v > u64::from(crate::FORMAT_VERSION))
    {
        return Err(ReportError::FutureVersion {
            file: name.to_string(),
            version,
        });
    }
    let zone = raw.zone.ok_or_else(|| ReportError::NoZone {
        file: name.to_string(),
    })?;
    if dep.zone(&zone).is_none() {
        let known: Vec<&str> = dep.zones.iter().map(|z| z.name.as_str()).collect();
        let hint = match crate::diag::suggest(&zone, known.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? (zones: {})", known.join(", ")),
            None => format!("zones: {}", known.join(", ")),
        };
        return Err(ReportError::UnknownZone {
            file: name.to_string(),
            zone,
            hint,
        });
    }
    Ok(ProbeFile {
        name: name.to_string(),
        zone,
        sources: raw.sources,
        expected_zone: None,
        results: raw.results,
    })
}

/// A result file that does not count for the zone it names, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejected {
    pub file: String,
    /// The zone the file names.
    pub zone: String,
    pub reason: String,
}

/// Why `f` cannot speak for the zone it names, if it cannot: the zone it was made in (when the
/// caller knows it) differs, or none of the addresses it was sent from lies in the zone, or it
/// records none. The file's own word is not enough: an agent PC's result that says `dc` would
/// turn the untested dc zone into verified.
fn zone_disagreement(dep: &Deployment, f: &ProbeFile) -> Option<String> {
    if let Some(expected) = f.expected_zone.as_deref() {
        if expected != f.zone {
            return Some(format!(
                "it names zone {} but was made in zone {expected} (--expect-zone)",
                f.zone
            ));
        }
    }
    let zone = dep.zone(&f.zone)?;
    let cidrs = || {
        zone.cidrs
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match f.sources.as_deref() {
        Some(sources) if !sources.is_empty() => {
            if sources
                .iter()
                .any(|a| zone.cidrs.iter().any(|c| c.contains(a)))
            {
                None
            } else {
                let list: Vec<String> = sources.iter().map(ToString::to_string).collect();
                Some(format!(
                    "it names zone {} but was sent from {}, outside the zone ({})",
                    f.zone,
                    list.join(", "),
                    cidrs()
                ))
            }
        }
        // An older probe records no source: only the caller's word can vouch for the zone.
        _ if f.expected_zone.is_some() => None,
        _ => Some(format!(
            "it records no source address, so its zone {} cannot be checked; hint: probe again              with this version, or state the zone it was made in with --expect-zone FILE=ZONE",
            f.zone
        )),
    }
}

/// One planned port from one zone, with what the probes found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub zone: String,
    /// The node owning the address; for a unit's virtual IP, the unit's instance nodes joined by
    /// `,` (the address moves between them).
    pub node: String,
    /// The virtual unit, for a virtual IP.
    pub unit: Option<String>,
    pub address: IpAddr,
    pub transport: Transport,
    pub port: u16,
    pub component: String,
    pub port_id: String,
    pub status: Status,
    pub detail: Option<String>,
    pub rtt_ms: Option<f64>,
    /// The result file the status came from (none for `untested`).
    pub source: Option<String>,
    /// The planned range the port belongs to, for grouping and fixes.
    #[serde(skip)]
    pub range: PortRange,
    /// The role of the zone that the port admits (for the fix's rule).
    #[serde(skip)]
    pub role: Role,
    /// For a port of agent PCs: their client zone (the address is a sample PC's).
    #[serde(skip)]
    pub workstations: Option<String>,
}

impl Row {
    /// Port `port` of binding `b` at `address`, planned from zone `zone` as `role`, not probed
    /// yet (no unit, not toward agent PCs).
    fn untested(
        zone: &str,
        b: &crate::plan::Binding,
        node: String,
        address: IpAddr,
        port: u16,
        role: Role,
    ) -> Row {
        Row {
            zone: zone.to_string(),
            node,
            unit: None,
            address,
            transport: b.transport,
            port,
            component: b.component.clone(),
            port_id: b.port_id.clone(),
            status: Status::Untested,
            detail: None,
            rtt_ms: None,
            source: None,
            range: b.ports,
            role,
            workstations: None,
        }
    }
}

/// Consecutive ports of one planned range with one status: a line of the readable matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    pub zone: String,
    pub node: String,
    pub unit: Option<String>,
    pub address: IpAddr,
    pub transport: Transport,
    #[serde(serialize_with = "ser_ports")]
    pub ports: PortRange,
    pub count: u32,
    pub component: String,
    pub port_id: String,
    pub status: Status,
    pub detail: Option<String>,
    #[serde(skip)]
    pub role: Role,
    #[serde(skip)]
    pub workstations: Option<String>,
}

fn ser_ports<S: serde::Serializer>(r: &PortRange, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&r.to_string())
}

impl Group {
    pub fn ports_text(&self) -> String {
        if self.count > 1 {
            format!("{} ({})", self.ports, self.count)
        } else {
            self.ports.to_string()
        }
    }

    pub fn label(&self) -> String {
        format!("{}.{}", self.component, self.port_id)
    }
}

/// One firewall on the path that must admit a failing flow, and its rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hop {
    /// `host firewall of node APP1` or `network firewall between zones agents and datacenter`.
    pub firewall: String,
    /// The target the rule is written for: the report's, except for a network hop when the
    /// report's target has no network mode (Windows Firewall): then the request sheet (`csv`).
    pub target: String,
    /// The rule lines that admit the flow (the generator's statements naming it).
    pub rule: String,
    /// The generator's whole output for this one flow (ready to load or merge).
    pub full: String,
}

/// A failing group with its likely cause and what would fix it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    #[serde(flatten)]
    pub group: Group,
    pub cause: String,
    pub action: String,
    /// For `filtered`: each firewall that must admit the flow, with its rule.
    pub hops: Vec<Hop>,
    /// What a listener's log said about these ports (`cannot bind …: address in use (held by
    /// pid 1234 nginx)`), when its log was given: the holder of an `open` port, by name.
    pub listener: Vec<String>,
}

/// A port a listener could not bind, read from its log (`listen`'s `cannot bind` lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindFailure {
    /// The log file, for the note.
    pub log: String,
    pub address: IpAddr,
    pub transport: Transport,
    /// The ports of the line (`listen` writes one line per address, transport and reason).
    pub ports: Vec<PortRange>,
    /// The line as the listener wrote it.
    pub line: String,
}

/// Sorted ports as runs: `5060`, `21000-21097`, `5004-5030 even` (a run of every other port),
/// joined by `, `; `listen` writes its `cannot bind` lines with them, [`parse_port_runs`] reads them back.
pub fn port_runs(ports: &[u16]) -> String {
    let mut runs: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ports.len() {
        let step = match ports.get(i + 1) {
            Some(&n) if n.wrapping_sub(ports[i]) <= 2 => n.wrapping_sub(ports[i]),
            _ => 0,
        };
        let mut j = i;
        while step > 0
            && ports
                .get(j + 1)
                .is_some_and(|&n| n.wrapping_sub(ports[j]) == step)
        {
            j += 1;
        }
        // Two ports two apart read better as two ports than as a run.
        if step == 2 && j == i + 1 {
            j = i;
        }
        let (lo, hi) = (ports[i], ports[j]);
        runs.push(match (j > i, step) {
            (false, _) => lo.to_string(),
            (true, 2) => format!("{lo}-{hi} {}", crate::range::Parity::of(lo).as_str()),
            (true, _) => format!("{lo}-{hi}"),
        });
        i = j + 1;
    }
    runs.join(", ")
}

/// Reads `listen`'s port runs back: `5060`, `21000-21097`, `5004-5030 even`, joined by `, `.
pub fn parse_port_runs(text: &str) -> Option<Vec<PortRange>> {
    text.split(", ")
        .map(|run| {
            let (span, parity) = match run.split_once(' ') {
                Some((span, "even")) => (span, Some(crate::range::Parity::Even)),
                Some((span, "odd")) => (span, Some(crate::range::Parity::Odd)),
                Some(_) => return None,
                None => (run, None),
            };
            let (lo, hi) = span.split_once('-').unwrap_or((span, span));
            PortRange::new(lo.parse().ok()?, hi.parse().ok()?, parity).ok()
        })
        .collect()
}

/// The `cannot bind ADDRESS PROTO PORTS (component.port, …): REASON` lines of a listener's log;
/// other lines are ignored (the log also holds `ready:` and the summary).
pub fn parse_listen_log(name: &str, text: &str) -> Vec<BindFailure> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cannot bind ")?;
            let mut words = rest.splitn(3, ' ');
            let address = words.next()?.parse().ok()?;
            let transport = match words.next()? {
                "tcp" => Transport::Tcp,
                "udp" => Transport::Udp,
                _ => return None,
            };
            let (runs, _) = words.next()?.split_once(" (")?;
            let ports = parse_port_runs(runs)?;
            Some(BindFailure {
                log: name.to_string(),
                address,
                transport,
                ports,
                line: line.chars().filter(|c| !c.is_control()).collect(),
            })
        })
        .collect()
}

/// Adds to each `open` or `closed` failure what the listeners' logs said about its ports: who
/// holds an `open` port, why a `closed` one was never bound.
pub fn attach_listener_logs(report: &mut Report, logs: &[BindFailure]) {
    for f in &mut report.failures {
        if !matches!(f.group.status, Status::Open | Status::Closed) {
            continue;
        }
        let g = &f.group;
        let mut notes: Vec<String> = logs
            .iter()
            .filter(|b| {
                b.address == g.address
                    && b.transport == g.transport
                    && b.ports.iter().any(|r| r.overlaps(&g.ports))
            })
            .map(|b| format!("{}: {}", b.log, b.line))
            .collect();
        notes.dedup();
        f.listener = notes;
    }
}

/// Status counts over every planned port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub planned: usize,
    pub verified: usize,
    pub open: usize,
    pub closed: usize,
    pub filtered: usize,
    pub inconclusive: usize,
    pub error: usize,
    pub untested: usize,
}

impl Summary {
    fn add(&mut self, s: Status) {
        self.planned += 1;
        match s {
            Status::Verified => self.verified += 1,
            Status::Open => self.open += 1,
            Status::Closed => self.closed += 1,
            Status::Filtered => self.filtered += 1,
            Status::Inconclusive => self.inconclusive += 1,
            Status::Error => self.error += 1,
            Status::Untested => self.untested += 1,
        }
    }

    pub fn count(&self, s: Status) -> usize {
        match s {
            Status::Verified => self.verified,
            Status::Open => self.open,
            Status::Closed => self.closed,
            Status::Filtered => self.filtered,
            Status::Inconclusive => self.inconclusive,
            Status::Error => self.error,
            Status::Untested => self.untested,
        }
    }
}

/// An input file as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Input {
    pub file: String,
    pub zone: String,
    pub results: usize,
}

/// The merged report of a whole system.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`crate::FORMAT_VERSION`].
    pub format_version: u32,
    pub name: String,
    /// The firewall target the fixes are written for.
    pub target: String,
    /// True when every planned port is verified from every zone and every result file counts.
    pub passed: bool,
    pub summary: Summary,
    /// The planned flows (zone × destination × service) by outcome: the headline's figure.
    pub flows: FlowCounts,
    /// Zones no probe result covers: each one line, not a failure per flow.
    pub untested_zones: Vec<UntestedZone>,
    pub inputs: Vec<Input>,
    /// Result files that do not count for the zone they name (their results are not used).
    pub rejected: Vec<Rejected>,
    /// Failures first, in matrix order: what to fix.
    pub failures: Vec<Failure>,
    /// The readable matrix: consecutive ports of one range with one status grouped.
    pub groups: Vec<Group>,
    /// Every planned port from every zone.
    pub rows: Vec<Row>,
    /// Results that match no planned port of their zone (the plan changed since the probe?).
    pub stray: Vec<Row>,
    /// The plan's check findings.
    pub findings: Vec<Finding>,
    /// `report --audit`: the audited firewalls ([`audit`]); `passed` then needs them exact too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<audit::Audits>,
    /// `report --compare`: what changed since an earlier report ([`drift`]); `passed` then needs
    /// nothing worse.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<drift::Drift>,
}

impl Report {
    /// The probes' own answer: every planned port verified from every zone, every result file
    /// counted (`passed` is this, and with `--audit` and `--compare` their answers too).
    pub fn probes_passed(&self) -> bool {
        self.summary.verified == self.summary.planned && self.rejected.is_empty()
    }
}

/// The ports each zone must reach: every server binding one of the zone's roles connects to, each
/// (address, transport, range, component, port id) once. A unit's binding appears once per
/// instance node in the plan; here once, naming every instance node. Workstation ports (agent PCs)
/// are [`workstation_rows`].
pub fn planned(dep: &Deployment, plan: &Plan) -> Vec<Row> {
    // A unit's bindings name every instance node (the VIP moves between them).
    let instances: std::collections::HashMap<&str, String> = dep
        .units
        .iter()
        .map(|u| {
            let names: Vec<&str> = u
                .instances
                .iter()
                .map(|&i| dep.nodes[i].name.as_str())
                .collect();
            (u.name.as_str(), names.join(","))
        })
        .collect();
    let mut out = Vec::new();
    for zone in &dep.zones {
        for (b, address, role) in plan.zone_targets(zone, None) {
            let node = match b.unit.as_deref().and_then(|u| instances.get(u)) {
                Some(names) => names.clone(),
                None => b.host.name().to_string(),
            };
            for port in b.ports.ports() {
                out.push(Row {
                    unit: b.unit.clone(),
                    ..Row::untested(&zone.name, b, node.clone(), address, port, role)
                });
            }
        }
    }
    out
}

// --- workstations and flow counts (issue 19) ---

/// The rows toward agent PCs: for each client zone's workstation binding, every zone that sends
/// to it, on each sample PC a probe result names (`probe --to-workstation ADDR`); a client zone
/// no result names gets its rows on the zone's first network address, all `untested`, so that
/// its flows count as planned and untested.
pub fn workstation_rows(dep: &Deployment, plan: &Plan, files: &[&ProbeFile]) -> Vec<Row> {
    let mut out = Vec::new();
    for zone in &dep.zones {
        for b in &plan.bindings {
            let crate::plan::Host::Workstations { zone: wz, cidrs } = &b.host else {
                continue;
            };
            let Some(role) = b.reached_as(zone) else {
                continue;
            };
            let mut samples: Vec<IpAddr> = files
                .iter()
                .flat_map(|f| &f.results)
                .filter(|r| {
                    r.component == b.component
                        && r.port_id == b.port_id
                        && cidrs.iter().any(|c| c.contains(&r.address))
                })
                .map(|r| r.address)
                .collect();
            samples.sort();
            samples.dedup();
            if samples.is_empty() {
                samples.extend(cidrs.first().map(IpNet::network));
            }
            for address in samples {
                for port in b.ports.ports() {
                    out.push(Row {
                        workstations: Some(wz.clone()),
                        ..Row::untested(&zone.name, b, format!("PCs of {wz}"), address, port, role)
                    });
                }
            }
        }
    }
    out
}

/// Planned flows (zone × destination × service: one planned range of one component from one
/// zone to one address) by outcome: `failed` when a port of it failed, else `untested` when a
/// port of it is untested, else `passed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct FlowCounts {
    pub planned: usize,
    pub passed: usize,
    pub failed: usize,
    pub untested: usize,
}

/// A zone no probe result covers at all: one line instead of one failure per flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UntestedZone {
    pub zone: String,
    pub flows: usize,
    pub ports: usize,
    pub action: String,
}

type FlowKey<'a> = (&'a str, IpAddr, Transport, &'a str, &'a str, PortRange);

fn flow_key(r: &Row) -> FlowKey<'_> {
    (
        r.zone.as_str(),
        r.address,
        r.transport,
        r.component.as_str(),
        r.port_id.as_str(),
        r.range,
    )
}

/// Each planned flow's outcome, in row order: (key, worst kind: 0 passed, 1 untested, 2 failed).
fn flow_outcomes(rows: &[Row]) -> Vec<(FlowKey<'_>, u8)> {
    let mut index: HashMap<FlowKey, usize> = HashMap::new();
    let mut out: Vec<(FlowKey, u8)> = Vec::new();
    for r in rows {
        let kind = match r.status {
            Status::Verified => 0,
            Status::Untested => 1,
            _ => 2,
        };
        let key = flow_key(r);
        match index.get(&key) {
            Some(&i) => out[i].1 = out[i].1.max(kind),
            None => {
                index.insert(key, out.len());
                out.push((key, kind));
            }
        }
    }
    out
}

pub fn count_flows(rows: &[Row]) -> FlowCounts {
    let mut c = FlowCounts::default();
    for (_, kind) in flow_outcomes(rows) {
        c.planned += 1;
        match kind {
            0 => c.passed += 1,
            1 => c.untested += 1,
            _ => c.failed += 1,
        }
    }
    c
}

/// The zones whose every planned port is untested, in file order.
pub fn untested_zones(dep: &Deployment, rows: &[Row]) -> Vec<UntestedZone> {
    let outcomes = flow_outcomes(rows);
    dep.zones
        .iter()
        .filter_map(|z| {
            let mine: Vec<&Row> = rows.iter().filter(|r| r.zone == z.name).collect();
            if mine.is_empty() || mine.iter().any(|r| r.status != Status::Untested) {
                return None;
            }
            let flows = outcomes.iter().filter(|(k, _)| k.0 == z.name).count();
            Some(UntestedZone {
                zone: z.name.clone(),
                flows,
                ports: mine.len(),
                action: format!(
                    "run `scc-ports probe FILE --from {} --format json` on a host in that zone and add its result",
                    z.name
                ),
            })
        })
        .collect()
}

// --- end of workstations and flow counts ---

/// Merges the probe files into the planned matrix and diagnoses every failure, with fixes in
/// `target`'s syntax (a name from [`crate::firewall::TARGETS`]).
pub fn build(
    dep: &Deployment,
    catalog: &Catalog,
    plan: &Plan,
    files: &[ProbeFile],
    target: &'static dyn crate::firewall::Generator,
) -> Report {
    let mut rows = planned(dep, plan);
    // Sample PCs come only from files that count: a rejected file's addresses make no rows.
    let counted: Vec<&ProbeFile> = (files.iter())
        .filter(|f| zone_disagreement(dep, f).is_none())
        .collect();
    rows.extend(workstation_rows(dep, plan, &counted));
    type Key<'a> = (&'a str, IpAddr, Transport, u16, &'a str, &'a str);
    let index: HashMap<Key, usize> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            (
                (
                    r.zone.as_str(),
                    r.address,
                    r.transport,
                    r.port,
                    r.component.as_str(),
                    r.port_id.as_str(),
                ),
                i,
            )
        })
        .collect();
    // (row, status, detail, rtt, file)
    type Update = (usize, Status, Option<String>, Option<f64>, String);
    let mut updates: Vec<Update> = Vec::new();
    let mut stray = Vec::new();
    let mut rejected = Vec::new();
    for f in files {
        if let Some(reason) = zone_disagreement(dep, f) {
            rejected.push(Rejected {
                file: f.name.clone(),
                zone: f.zone.clone(),
                reason,
            });
            continue;
        }
        for r in &f.results {
            let (status, detail) = match Status::parse(&r.status) {
                Some(Status::Untested) | None => (
                    Status::Error,
                    Some(format!("unknown status `{}` in the result", r.status)),
                ),
                Some(s) => (s, r.detail.clone()),
            };
            let key = (
                f.zone.as_str(),
                r.address,
                r.transport,
                r.port,
                r.component.as_str(),
                r.port_id.as_str(),
            );
            match index.get(&key) {
                Some(&i) => updates.push((i, status, detail, r.rtt_ms, f.name.clone())),
                None => stray.push(Row {
                    zone: f.zone.clone(),
                    node: String::new(),
                    unit: None,
                    address: r.address,
                    transport: r.transport,
                    port: r.port,
                    component: r.component.clone(),
                    port_id: r.port_id.clone(),
                    status,
                    detail: Some("not a planned port of this zone".to_string()),
                    rtt_ms: r.rtt_ms,
                    source: Some(f.name.clone()),
                    range: PortRange::single(r.port.max(1)).expect("port >= 1"),
                    role: Role::Servers,
                    workstations: None,
                }),
            }
        }
    }
    // Two probers in one zone: the port must pass from both, so the worse answer stands.
    for (i, status, detail, rtt, source) in updates {
        let row = &mut rows[i];
        if row.status == Status::Untested || status.rank() > row.status.rank() {
            row.status = status;
            row.detail = detail;
            row.rtt_ms = rtt;
            row.source = Some(source);
        }
    }
    let mut summary = Summary::default();
    for r in &rows {
        summary.add(r.status);
    }
    let groups = group(&rows);
    let flows = count_flows(&rows);
    let untested_zones = untested_zones(dep, &rows);
    // A zone nothing covers is one line (`untested_zones`), not a failure per flow.
    let failures = groups
        .iter()
        .filter(|g| g.status != Status::Verified)
        .filter(|g| !untested_zones.iter().any(|u| u.zone == g.zone))
        .map(|g| diagnose(dep, catalog, g, target))
        .collect();
    let mut inputs: Vec<Input> = files
        .iter()
        .map(|f| Input {
            file: f.name.clone(),
            zone: f.zone.clone(),
            results: f.results.len(),
        })
        .collect();
    inputs.sort_by(|a, b| (&a.zone, &a.file).cmp(&(&b.zone, &b.file)));
    let mut report = Report {
        format_version: crate::FORMAT_VERSION,
        name: dep.name.clone(),
        target: target.name().to_string(),
        passed: false,
        summary,
        flows,
        untested_zones,
        inputs,
        rejected,
        failures,
        groups,
        rows,
        stray,
        findings: crate::plan::check(dep, catalog, plan),
        audit: None,
        drift: None,
    };
    report.passed = report.probes_passed();
    report
}

/// Consecutive rows of one planned range with one status and detail become one group.
pub fn group(rows: &[Row]) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let same = i > 0 && {
            let p = &rows[i - 1];
            p.zone == r.zone
                && p.address == r.address
                && p.transport == r.transport
                && p.component == r.component
                && p.port_id == r.port_id
                && p.range == r.range
                && p.status == r.status
                && p.detail == r.detail
        };
        if same {
            let g = out.last_mut().expect("a group before");
            g.ports = PortRange::new(g.ports.lo(), r.port, r.range.parity())
                .or_else(|_| PortRange::new(g.ports.lo(), r.port, None))
                .expect("ports ascend within a range");
            g.count += 1;
        } else {
            out.push(Group {
                zone: r.zone.clone(),
                node: r.node.clone(),
                unit: r.unit.clone(),
                address: r.address,
                transport: r.transport,
                ports: PortRange::single(r.port).unwrap_or(r.range),
                count: 1,
                component: r.component.clone(),
                port_id: r.port_id.clone(),
                status: r.status,
                detail: r.detail.clone(),
                role: r.role,
                workstations: r.workstations.clone(),
            });
        }
    }
    out
}

fn diagnose(
    dep: &Deployment,
    catalog: &Catalog,
    g: &Group,
    target: &'static dyn crate::firewall::Generator,
) -> Failure {
    let where_ = format!(
        "{} {} {} on {} ({})",
        g.label(),
        g.transport.as_str(),
        g.ports,
        g.address,
        g.node
    );
    let listener = match &g.workstations {
        Some(wz) => format!("scc-ports listen FILE --workstations {wz}, on the agent PC"),
        None => format!(
            "scc-ports listen FILE --node {}",
            g.node.split(',').next().unwrap_or_default()
        ),
    };
    let (cause, action, hops) = match g.status {
        Status::Filtered => {
            let hops = hops(dep, catalog, g, target);
            let names: Vec<&str> = hops.iter().map(|h| h.firewall.as_str()).collect();
            (
                format!(
                    "a firewall on the path from zone {} drops it (no answer, no refusal)",
                    g.zone
                ),
                format!("admit it on: {}", names.join("; ")),
                hops,
            )
        }
        Status::Closed => (
            "nothing is bound on the port (refused): no listener or service runs there, or a host firewall rejects".to_string(),
            format!("start the listener for this node ({listener}) or the service, and check it bound {where_}"),
            Vec::new(),
        ),
        Status::Open => (
            "another process holds the port: it accepts connections but does not answer our token".to_string(),
            format!(
                "find the process on {} (Linux: ss -ltnup 'sport = :{}'; Windows: Get-NetTCPConnection -LocalPort {}) and stop it, or move {} to a free port",
                g.node, g.ports.lo(), g.ports.lo(), g.label()
            ),
            Vec::new(),
        ),
        Status::Inconclusive => (
            "answers were lost or late: a lossy or overloaded path".to_string(),
            "probe again with a longer --timeout; check for packet loss on the path".to_string(),
            Vec::new(),
        ),
        Status::Error => (
            "the probe itself failed on the prober (a local error)".to_string(),
            "read the detail; fix the prober host and probe again".to_string(),
            Vec::new(),
        ),
        Status::Untested => (
            format!("no probe result from zone {} covers it", g.zone),
            match &g.workstations {
                Some(wz) => format!(
                    "on an agent PC of zone {wz} run `scc-ports listen FILE --workstations {wz}`; where zone {}'s media comes from, `scc-ports probe FILE --from {} --to-workstation PC-ADDRESS --format json`, and add its result",
                    g.zone, g.zone
                ),
                None => format!(
                    "run `scc-ports probe FILE --from {} --format json` on a host in that zone and add its result",
                    g.zone
                ),
            },
            Vec::new(),
        ),
        Status::Verified => (String::new(), String::new(), Vec::new()),
    };
    Failure {
        group: g.clone(),
        cause,
        action,
        hops,
        listener: Vec::new(),
    }
}

/// The firewalls a filtered flow crosses, each with the rule that admits exactly that flow: the
/// host firewall of each node that may hold the address, and the network firewall between the
/// zones when they differ.
fn hops(
    dep: &Deployment,
    catalog: &Catalog,
    g: &Group,
    target: &'static dyn crate::firewall::Generator,
) -> Vec<Hop> {
    let Some(zone) = dep.zone(&g.zone) else {
        return Vec::new();
    };
    let purpose = catalog
        .component(&g.component)
        .and_then(|c| c.port(&g.port_id))
        .map_or_else(String::new, |p| p.usage.clone());
    // Toward agent PCs the rule admits the client zone's networks (as the generated policy does).
    let ws_cidrs = g
        .workstations
        .as_deref()
        .and_then(|wz| dep.zone(wz))
        .map(|z| z.cidrs.clone());
    // A trunk peer's port admits only the units that send to it (SIP Bridge's, MRS's address),
    // as the generated policy does; any other flow the probing zone's networks.
    let sources = if g.component == crate::plan::PEER_COMPONENT {
        let inside = |a: &IpAddr| zone.cidrs.iter().any(|c| c.contains(a));
        let hosts: Vec<IpNet> = (crate::plan::peer_senders(dep, &g.port_id).into_iter())
            .filter(inside)
            .map(IpNet::from)
            .collect();
        IpNet::aggregate(&hosts)
    } else {
        IpNet::aggregate(&zone.cidrs)
    };
    let flow_to = |node: &str| Flow {
        role: g.role,
        source_zones: vec![zone.name.clone()].into(),
        sources: sources.clone().into(),
        node: node.to_string(),
        destination: ws_cidrs
            .clone()
            .unwrap_or_else(|| vec![IpNet::from(g.address)]),
        workstations: ws_cidrs.is_some(),
        unit: g.unit.clone(),
        transport: g.transport,
        ports: g.ports,
        component: g.component.clone(),
        port_ids: vec![g.port_id.clone()],
        purpose: purpose.clone(),
    };
    let label = g.label();
    let mut out = Vec::new();
    let mut run = |firewall: String, mode: Mode, flow: Flow| {
        let target = match (&mode, target.name()) {
            (Mode::Network, "windows") => crate::firewall::target("csv").unwrap_or(target),
            _ => target,
        };
        // The fix runs on its own: shell commands that add the rule to the policy already
        // loaded (nft, iptables), or the statements with what they need (PowerShell's `$group`).
        let fix = match target.name() {
            "nftables" => Some(crate::firewall::nftables::fix_commands(&flow, &mode)),
            _ => None,
        };
        let full = target.generate(&Request {
            deployment: dep,
            mode,
            policy: Policy::Accept,
            flows: vec![flow],
        });
        let rule = match (fix, target.name()) {
            (Some(fix), _) => fix,
            (None, "iptables") => {
                crate::firewall::iptables::fix_commands(&rule_lines(&full, &label))
            }
            (None, _) => rule_lines(&full, &label),
        };
        out.push(Hop {
            firewall,
            target: target.name().to_string(),
            rule,
            full,
        });
    };
    if let Some(wz) = &g.workstations {
        run(
            format!("host firewall of the agent PCs of zone {wz}"),
            Mode::Workstations,
            flow_to(wz),
        );
    }
    for node in g.node.split(',').filter(|_| g.workstations.is_none()) {
        run(
            format!("host firewall of node {node}"),
            Mode::Node {
                name: node.to_string(),
                addresses: vec![g.address],
            },
            flow_to(node),
        );
    }
    // Whether a network firewall stands between the zones: flows answers (DESIGN §9), as for
    // every --network target: none inside one zone, none between zones no [firewalls] separates.
    let flow = flow_to(
        g.workstations
            .as_deref()
            .unwrap_or(g.node.split(',').next().unwrap_or_default()),
    );
    let crossing = crate::flows::Crossings::new(dep)
        .through_any(&flow)
        .first()
        .copied();
    if let Some((from, to)) = crossing {
        run(
            format!(
                "network firewall between zones {} and {}",
                dep.zones[from].name, dep.zones[to].name
            ),
            Mode::Network,
            flow,
        );
    }
    out
}

/// The statements of a generator's output that name `label`: comment lines dropped, a line
/// continued (`\` or PowerShell's backtick) taken with its continuation, a Terraform `resource`
/// block taken whole. Outputs whose rules do not name the flow on their own line (a firewalld
/// script names it in a service file; a CSV row in two cells) are kept whole without comments.
/// (nftables fixes are not cut from the policy: [`crate::firewall::nftables::fix_commands`].)
pub fn rule_lines(text: &str, label: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            !t.starts_with('#') && !t.starts_with("//")
        })
        .collect();
    let mut statements: Vec<Vec<&str>> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let mut st = vec![lines[i]];
        if lines[i].starts_with("resource ") && lines[i].trim_end().ends_with('{') {
            while i + 1 < lines.len() && st.last().is_none_or(|l| l.trim_end() != "}") {
                i += 1;
                st.push(lines[i]);
            }
        }
        while st
            .last()
            .is_some_and(|l| l.trim_end().ends_with('`') || l.trim_end().ends_with('\\'))
            && i + 1 < lines.len()
        {
            i += 1;
            st.push(lines[i]);
        }
        statements.push(st);
        i += 1;
    }
    let picked: Vec<String> = statements
        .into_iter()
        .filter(|st| st.iter().any(|l| l.contains(label)))
        .map(|st| st.join("\n"))
        .collect();
    // A rule is a statement of its own: a match inside a heredoc's XML is not one.
    let own = picked.iter().all(|p| !p.trim_start().starts_with('<'));
    let body = if picked.is_empty() || !own {
        lines.join("\n")
    } else {
        // A snippet runs on its own: the variables its statements use (PowerShell's `$group`)
        // are assigned first, as the whole script does.
        let mut body: Vec<String> = assignments(&lines)
            .into_iter()
            .filter(|(name, _)| picked.iter().any(|p| uses_variable(p, name)))
            .map(|(_, line)| line.to_string())
            .collect();
        body.extend(picked);
        body.join("\n")
    };
    let body = body.trim_matches('\n');
    // Without the chain around it, a rule's indentation only pushes it off the page.
    let indent = body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut s: String = body
        .lines()
        .map(|l| l.get(indent..).unwrap_or(l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n");
    s.push('\n');
    s
}

/// A script's top-level variable assignments (`$group = '…'`): the name and the line.
fn assignments<'a>(lines: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    lines
        .iter()
        .filter_map(|l| {
            let (name, _) = l.strip_prefix('$')?.split_once(" = ")?;
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
                .then_some((name, *l))
        })
        .collect()
}

/// Whether `text` uses the variable `$name` (not a longer name that starts with it).
fn uses_variable(text: &str, name: &str) -> bool {
    let needle = format!("${name}");
    text.match_indices(&needle).any(|(i, _)| {
        text[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
    })
}

/// Status counts of a list of groups' rows, by status, for a small table.
pub fn by_status(summary: &Summary) -> BTreeMap<&'static str, usize> {
    Status::ALL
        .iter()
        .map(|s| (s.as_str(), summary.count(*s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_lines_pick_statements_naming_the_flow() {
        let nft = "# c\ntable inet x {\n\tchain input {\n\t\tip daddr 1.2.3.4 tcp dport 1 accept comment \"a.b\"\n\t}\n}\n";
        let xml = "# a\ncat <<X\n<d>a.b</d>\nX\nfw --add\n";
        assert_eq!(rule_lines(xml, "a.b"), "cat <<X\n<d>a.b</d>\nX\nfw --add\n");
        assert_eq!(
            rule_lines(nft, "a.b"),
            "ip daddr 1.2.3.4 tcp dport 1 accept comment \"a.b\"\n"
        );
        let ps = "# a.b: x\nNew-NetFirewallRule -Group $g `\n    -DisplayName 'SCC a.b' `\n    -LocalPort '1' | Out-Null\n";
        assert_eq!(
            rule_lines(ps, "a.b"),
            "New-NetFirewallRule -Group $g `\n    -DisplayName 'SCC a.b' `\n    -LocalPort '1' | Out-Null\n"
        );
        // The snippet runs on its own: `$g` is assigned first (and `$gx`, unused, is not).
        let script = format!("$gx = 'y'\n$g = 'scc-ports APP1'\nGet-X -Group $g\n{ps}");
        assert_eq!(
            rule_lines(&script, "a.b"),
            format!("$g = 'scc-ports APP1'\n{}", rule_lines(ps, "a.b"))
        );
        let tf = "resource \"r\" \"x\" {\n  from_port = 1\n  description = \"a.b\"\n}\n";
        assert_eq!(rule_lines(tf, "a.b"), tf);
        assert_eq!(rule_lines("# x\nnothing here\n", "a.b"), "nothing here\n");
    }

    const SYSTEM: &str = r#"
name = "t"
[zones.dc]
cidrs = ["10.0.0.0/24"]
roles = ["servers"]
[zones.agents]
cidrs = ["10.1.0.0/24"]
roles = ["clients"]
[zones.trunk]
cidrs = ["10.2.0.0/24"]
roles = ["trunk"]
[nodes.A]
address = "10.0.0.1"
zone = "dc"
[nodes.B]
address = "10.0.0.2"
zone = "dc"
[units.V]
address = "10.0.0.100"
packages = ["connection-server", "media-routing-server"]
instances = ["B", "A"]
[units.V.variables]
"media-routing-server.max-simultaneous-prompts" = 4
"#;

    fn system() -> (Deployment, Catalog, Plan) {
        let catalog = Catalog::embedded();
        let dep = crate::deployment::parse(&crate::diag::Source::new("t.toml", SYSTEM), &catalog)
            .expect("valid");
        let plan = crate::plan::resolve(&dep, &catalog);
        (dep, catalog, plan)
    }

    fn line(address: &str, port: u16, component: &str, id: &str, status: &str) -> ProbeLine {
        ProbeLine {
            address: address.parse().unwrap(),
            transport: if id.ends_with("area") {
                Transport::Udp
            } else {
                Transport::Tcp
            },
            port,
            component: component.into(),
            port_id: id.into(),
            status: status.into(),
            rtt_ms: None,
            detail: None,
        }
    }

    /// A planned row as the prober reports it verified (its own transport, not `line`'s guess).
    fn verified(r: &Row) -> ProbeLine {
        ProbeLine {
            transport: r.transport,
            ..line(
                &r.address.to_string(),
                r.port,
                &r.component,
                &r.port_id,
                "verified",
            )
        }
    }

    /// A result file probed from inside its zone (x.x.x.50 of the zone's network).
    fn file(zone: &str, name: &str, results: Vec<ProbeLine>) -> ProbeFile {
        let net = match zone {
            "dc" => 0,
            "agents" => 1,
            _ => 2,
        };
        ProbeFile {
            name: name.into(),
            zone: zone.into(),
            sources: Some(vec![format!("10.{net}.0.50").parse().unwrap()]),
            expected_zone: None,
            results,
        }
    }

    fn nft() -> &'static dyn crate::firewall::Generator {
        crate::firewall::target("nftables").unwrap()
    }

    proptest::proptest! {
        /// `listen` writes a port set as runs; the report reads back exactly that set, and any
        /// text after `cannot bind` is a line or nothing, never a panic.
        #[test]
        fn port_runs_read_back_to_the_same_ports(
            mut ports in proptest::collection::vec(1u16.., 0..60),
            junk in ".{0,80}",
        ) {
            ports.sort_unstable();
            ports.dedup();
            let text = port_runs(&ports);
            let back: Vec<u16> = if ports.is_empty() {
                Vec::new()
            } else {
                parse_port_runs(&text)
                    .expect("listen's runs parse")
                    .iter()
                    .flat_map(|r| r.ports())
                    .collect()
            };
            proptest::prop_assert_eq!(back, ports);
            let _ = parse_listen_log("l", &format!("cannot bind {junk}"));
        }
    }

    #[test]
    fn a_rejected_file_makes_no_pc_rows() {
        let (dep, catalog, plan) = system();
        let pc = |status: &str| ProbeLine {
            transport: Transport::Udp,
            ..line("10.1.0.9", 5004, "communication-desktop", "rtp", status)
        };
        // Probed from an agent PC (10.1.0.50) but labelled dc: rejected.
        let mut forged = file("dc", "forged.json", vec![pc("verified")]);
        forged.sources = Some(vec!["10.1.0.50".parse().unwrap()]);
        let r = build(&dep, &catalog, &plan, &[forged], nft());
        assert_eq!(r.rejected.len(), 1);
        let addresses: Vec<IpAddr> = (r.rows.iter())
            .filter(|r| r.workstations.is_some())
            .map(|r| r.address)
            .collect();
        assert!(!addresses.is_empty());
        assert!(
            !addresses.contains(&"10.1.0.9".parse().unwrap()),
            "a PC named only by a rejected file got rows"
        );
        // The same result from inside dc counts: the PC gets its rows.
        let r = build(
            &dep,
            &catalog,
            &plan,
            &[file("dc", "dc.json", vec![pc("verified")])],
            nft(),
        );
        assert!(r.rejected.is_empty());
        assert!(
            (r.rows.iter())
                .any(|r| r.address.to_string() == "10.1.0.9" && r.status == Status::Verified)
        );
    }

    #[test]
    fn a_sample_pc_gets_every_zone_that_sends_to_it_and_counts_as_flows() {
        let (dep, catalog, plan) = system();
        let ws = |port: u16, status: &str| ProbeLine {
            transport: Transport::Udp,
            ..line(
                "10.1.0.7",
                port,
                "communication-desktop",
                if port % 2 == 0 { "rtp" } else { "rtcp" },
                status,
            )
        };
        let mut results: Vec<ProbeLine> = (5004..=5031).map(|p| ws(p, "verified")).collect();
        results[6] = ws(5010, "filtered");
        let r = build(
            &dep,
            &catalog,
            &plan,
            &[file("dc", "w.json", results)],
            nft(),
        );
        // dc, agents and trunk each send to the PC: 28 ports each, only dc's probed.
        let to_pc: Vec<&Row> = r.rows.iter().filter(|r| r.workstations.is_some()).collect();
        assert_eq!(to_pc.len(), 3 * 28);
        assert!(
            to_pc
                .iter()
                .all(|r| r.address.to_string() == "10.1.0.7" && r.node == "PCs of agents")
        );
        let dc: Vec<&&Row> = to_pc.iter().filter(|r| r.zone == "dc").collect();
        assert_eq!(
            dc.iter().filter(|r| r.status == Status::Verified).count(),
            27
        );
        let f = r
            .failures
            .iter()
            .find(|f| f.group.zone == "dc" && f.group.workstations.is_some())
            .expect("the filtered port is a failure");
        assert_eq!(f.group.ports.to_string(), "5010");
        let hops: Vec<&str> = f.hops.iter().map(|h| h.firewall.as_str()).collect();
        assert_eq!(
            hops,
            [
                "host firewall of the agent PCs of zone agents",
                "network firewall between zones dc and agents"
            ]
        );
        assert!(
            f.hops[0]
                .rule
                .contains("ip daddr { 10.1.0.0/24 } udp dport { 5010 } accept"),
            "{}",
            f.hops[0].rule
        );
        // Flows: the RTP and RTCP ranges from each of three zones are six of them; dc's RTP
        // (with 5010) failed, dc's RTCP passed, the other zones' four are untested.
        let ws_flows = count_flows(&to_pc.iter().map(|r| (*r).clone()).collect::<Vec<_>>());
        assert_eq!(
            ws_flows,
            FlowCounts {
                planned: 6,
                passed: 1,
                failed: 1,
                untested: 4
            }
        );
        // No PC probed at all: the zone's first address stands for them, untested.
        let none = build(&dep, &catalog, &plan, &[], nft());
        assert!(
            none.rows
                .iter()
                .filter(|r| r.workstations.is_some())
                .all(|r| r.address.to_string() == "10.1.0.0" && r.status == Status::Untested)
        );
        assert_eq!(none.untested_zones.len(), 3);
        assert!(none.failures.is_empty());
    }

    #[test]
    fn a_virtual_ip_is_planned_once_naming_every_instance_node() {
        let (dep, _, plan) = system();
        let rows = planned(&dep, &plan);
        let client: Vec<&Row> = rows.iter().filter(|r| r.port_id == "client-port").collect();
        assert_eq!(client.len(), 1, "one zone (agents) carries clients");
        assert_eq!(client[0].node, "B,A", "the unit's instance order");
        assert_eq!(client[0].unit.as_deref(), Some("V"));
        // Every zone probes only what its roles reach; workstation ports are not in the matrix.
        assert!(rows.iter().all(|r| r.component != "communication-desktop"));
        assert!(
            rows.iter()
                .filter(|r| r.zone == "dc")
                .all(|r| r.role == Role::Servers)
        );
    }

    #[test]
    fn the_worse_answer_of_two_probers_stands_and_strays_are_apart() {
        let (dep, catalog, plan) = system();
        let files = [
            file(
                "agents",
                "a1.json",
                vec![line(
                    "10.0.0.100",
                    21002,
                    "connection-server",
                    "client-port",
                    "verified",
                )],
            ),
            file(
                "agents",
                "a2.json",
                vec![
                    line(
                        "10.0.0.100",
                        21002,
                        "connection-server",
                        "client-port",
                        "filtered",
                    ),
                    line("10.0.0.9", 1, "x", "y", "verified"),
                ],
            ),
            file(
                "agents",
                "a3.json",
                vec![line(
                    "10.0.0.100",
                    21002,
                    "connection-server",
                    "client-port",
                    "verified",
                )],
            ),
        ];
        let r = build(&dep, &catalog, &plan, &files, nft());
        let row = r.rows.iter().find(|r| r.port_id == "client-port").unwrap();
        assert_eq!(
            (row.status, row.source.as_deref()),
            (Status::Filtered, Some("a2.json"))
        );
        assert_eq!(r.stray.len(), 1);
        assert!(!r.passed);
    }

    #[test]
    fn groups_split_where_the_status_changes() {
        let (dep, catalog, plan) = system();
        let area: Vec<ProbeLine> = planned(&dep, &plan)
            .into_iter()
            .filter(|r| r.zone == "agents" && r.port_id == "prompt-area")
            .map(|r| {
                let st = if r.port == 8004 { "closed" } else { "verified" };
                line(&r.address.to_string(), r.port, &r.component, &r.port_id, st)
            })
            .collect();
        assert!(area.len() > 3);
        let r = build(
            &dep,
            &catalog,
            &plan,
            &[file("agents", "a.json", area)],
            nft(),
        );
        let groups: Vec<String> = r
            .groups
            .iter()
            .filter(|g| g.zone == "agents" && g.port_id == "prompt-area")
            .map(|g| format!("{} {}", g.ports_text(), g.status.as_str()))
            .collect();
        assert_eq!(
            groups,
            [
                "8000-8003 (4) verified",
                "8004 closed",
                "8005-8008 (4) verified"
            ]
        );
    }

    #[test]
    fn a_filtered_flow_names_every_firewall_on_its_path() {
        let (dep, catalog, plan) = system();
        let files = [
            file(
                "agents",
                "a.json",
                vec![line(
                    "10.0.0.100",
                    21002,
                    "connection-server",
                    "client-port",
                    "filtered",
                )],
            ),
            file(
                "dc",
                "d.json",
                vec![line("10.0.0.1", 21012, "hac", "server-port", "filtered")],
            ),
        ];
        let r = build(&dep, &catalog, &plan, &files, nft());
        let hops = |port: &str| -> Vec<String> {
            r.failures
                .iter()
                .find(|f| f.group.port_id == port && f.group.status == Status::Filtered)
                .unwrap()
                .hops
                .iter()
                .map(|h| h.firewall.clone())
                .collect()
        };
        assert_eq!(
            hops("client-port"),
            [
                "host firewall of node B",
                "host firewall of node A",
                "network firewall between zones agents and dc"
            ]
        );
        // Within one zone there is no network firewall to cross.
        assert_eq!(hops("server-port"), ["host firewall of node A"]);
        let f = r
            .failures
            .iter()
            .find(|f| f.group.port_id == "client-port")
            .unwrap();
        assert_eq!(
            f.hops[0].rule,
            "nft 'add rule inet scc_ports input ip saddr { 10.1.0.0/24 } ip daddr { 10.0.0.100 } tcp dport { 21002 } accept comment \"connection-server.client-port\"'\n"
        );
        // A declared firewall that does not separate agents from dc: no network hop (flows'
        // Crossings decides, as for every --network target).
        let mut walled = dep.clone();
        let mut edge = walled.firewalls.first().cloned().unwrap_or_else(|| {
            crate::deployment::parse(
                &crate::diag::Source::new(
                    "f.toml",
                    format!("{SYSTEM}\n[firewalls.EDGE]\nzones = [\"dc\", \"trunk\"]\n"),
                ),
                &catalog,
            )
            .expect("valid")
            .firewalls[0]
                .clone()
        });
        edge.zones.retain(|z| walled.zones[z.zone].name != "agents");
        walled.firewalls = vec![edge];
        let r = build(&walled, &catalog, &plan, &files, nft());
        let f = (r.failures.iter())
            .find(|f| f.group.port_id == "client-port" && f.group.status == Status::Filtered)
            .unwrap();
        let names: Vec<&str> = f.hops.iter().map(|h| h.firewall.as_str()).collect();
        assert_eq!(
            names,
            ["host firewall of node B", "host firewall of node A"]
        );
    }

    #[test]
    fn unknown_statuses_are_errors_and_untested_is_not_a_result() {
        let (dep, catalog, plan) = system();
        let files = [file(
            "agents",
            "a.json",
            vec![line(
                "10.0.0.100",
                21002,
                "connection-server",
                "client-port",
                "untested",
            )],
        )];
        let r = build(&dep, &catalog, &plan, &files, nft());
        let row = r.rows.iter().find(|r| r.port_id == "client-port").unwrap();
        assert_eq!(row.status, Status::Error);
        assert!(
            row.detail
                .as_deref()
                .unwrap()
                .contains("unknown status `untested`")
        );
    }

    #[test]
    fn probe_files_need_a_known_zone() {
        let (dep, _, _) = system();
        assert!(matches!(
            parse_probe("x.json", r#"{"results": []}"#, &dep),
            Err(ReportError::NoZone { .. })
        ));
        let e = parse_probe("x.json", r#"{"zone": "agent", "results": []}"#, &dep).unwrap_err();
        assert!(e.to_string().contains("did you mean `agents`?"), "{e}");
        let e = parse_probe("x.json", "{\n\"zone\": 1}", &dep).unwrap_err();
        assert!(e.to_string().starts_with("x.json:2:"), "{e}");
        let ok = parse_probe(
            "x.json",
            r#"{"zone": "dc", "results": [], "summary": {}}"#,
            &dep,
        )
        .unwrap();
        assert_eq!(ok.zone, "dc");
    }

    #[test]
    fn newer_format_versions_are_refused() {
        let (dep, _, _) = system();
        let e = parse_probe(
            "x.json",
            r#"{"format_version": 99, "zone": "dc", "results": []}"#,
            &dep,
        )
        .unwrap_err();
        assert!(matches!(e, ReportError::FutureVersion { version: 99, .. }));
        assert!(
            e.to_string()
                .starts_with("x.json: format_version 99 is newer than this scc-ports reads (1)"),
            "{e}"
        );
        let ok = parse_probe(
            "x.json",
            r#"{"format_version": 1, "zone": "dc", "sources": ["10.0.0.9"], "results": []}"#,
            &dep,
        )
        .unwrap();
        assert_eq!(ok.sources, Some(vec!["10.0.0.9".parse().unwrap()]));
    }

    #[test]
    fn a_file_counts_only_for_the_zone_it_was_made_in() {
        let (dep, catalog, plan) = system();
        let every_dc_port: Vec<ProbeLine> = planned(&dep, &plan)
            .iter()
            .filter(|r| r.zone == "dc")
            .map(verified)
            .collect();
        let dc = |sources: Option<Vec<&str>>, expected: Option<&str>| ProbeFile {
            sources: sources.map(|v| v.iter().map(|a| a.parse().unwrap()).collect()),
            expected_zone: expected.map(str::to_string),
            ..file("dc", "dc.json", every_dc_port.clone())
        };
        let verified_dc = |f: ProbeFile| {
            let r = build(&dep, &catalog, &plan, &[f], nft());
            let n = r
                .rows
                .iter()
                .filter(|r| r.zone == "dc" && r.status == Status::Verified)
                .count();
            (n, r.rejected)
        };
        let planned_dc = every_dc_port.len();
        assert!(planned_dc > 0);
        // From inside dc: counts.
        let (n, rejected) = verified_dc(dc(Some(vec!["10.0.0.7"]), None));
        assert_eq!((n, rejected.len()), (planned_dc, 0));
        // An agent PC's result relabelled `dc`: not used, and said why.
        let (n, rejected) = verified_dc(dc(Some(vec!["10.1.0.7"]), None));
        assert_eq!(n, 0);
        assert_eq!(
            rejected[0].reason,
            "it names zone dc but was sent from 10.1.0.7, outside the zone (10.0.0.0/24)"
        );
        // The zone the playbook ran it in wins over the file's word.
        let (n, rejected) = verified_dc(dc(Some(vec!["10.0.0.7"]), Some("agents")));
        assert_eq!(n, 0);
        assert!(
            rejected[0].reason.contains("made in zone agents"),
            "{rejected:?}"
        );
        // No source recorded: unchecked, so not counted, unless the caller vouches.
        let (n, rejected) = verified_dc(dc(None, None));
        assert_eq!(n, 0);
        assert!(rejected[0].reason.contains("records no source address"));
        let (n, rejected) = verified_dc(dc(None, Some("dc")));
        assert_eq!((n, rejected.len()), (planned_dc, 0));
        // Every port verified but a file rejected: not passed.
        let mut all = vec![dc(Some(vec!["10.0.0.7"]), None)];
        for zone in ["agents", "trunk"] {
            let mine: Vec<ProbeLine> = planned(&dep, &plan)
                .iter()
                .filter(|r| r.zone == zone)
                .map(verified)
                .collect();
            all.push(file(zone, &format!("{zone}.json"), mine));
        }
        // The agents' PCs too (their rows stand on the zone's first address when none was probed).
        let pcs = workstation_rows(&dep, &plan, &all.iter().collect::<Vec<_>>());
        for f in &mut all {
            f.results
                .extend(pcs.iter().filter(|r| r.zone == f.zone).map(verified));
        }
        let r = build(&dep, &catalog, &plan, &all, nft());
        assert!(r.passed, "{}", crate::report::text::verdict(&r));
        all.push(dc(Some(vec!["10.1.0.7"]), None));
        let r = build(&dep, &catalog, &plan, &all, nft());
        assert_eq!(r.summary.verified, r.summary.planned);
        assert!(!r.passed);
        assert_eq!(
            crate::report::text::verdict(&r),
            "FAILED: 1 result file does not count for the zone it names"
        );
    }

    #[test]
    fn listener_logs_name_the_holder_of_an_open_port() {
        let (dep, catalog, plan) = system();
        let files = [file(
            "dc",
            "d.json",
            vec![line("10.0.0.2", 21012, "hac", "server-port", "open")],
        )];
        let mut r = build(&dep, &catalog, &plan, &files, nft());
        let log = "cannot bind 10.0.0.2 tcp 21012 (hac.server-port): address in use (held by pid 7 nc)\n\
                   cannot bind 10.0.0.2 udp 21012 (x.y): address in use\n\
                   cannot bind 10.0.0.2 tcp 21010-21020 even, 9 (2 ports: a.b, c.d): address in use\n\
                   cannot bind nonsense\n\
                   ready: 4 of 5 ports bound\n";
        let parsed = parse_listen_log("listen-B.log", log);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[2].ports.len(), 2);
        attach_listener_logs(&mut r, &parsed);
        let f = r
            .failures
            .iter()
            .find(|f| f.group.status == Status::Open)
            .unwrap();
        assert_eq!(
            f.listener,
            [
                "listen-B.log: cannot bind 10.0.0.2 tcp 21012 (hac.server-port): address in use (held by pid 7 nc)",
                "listen-B.log: cannot bind 10.0.0.2 tcp 21010-21020 even, 9 (2 ports: a.b, c.d): address in use"
            ]
        );
        // Untested and filtered failures take no listener notes.
        assert!(
            r.failures
                .iter()
                .filter(|f| f.group.status != Status::Open)
                .all(|f| f.listener.is_empty())
        );
    }

    #[test]
    fn worse_status_ranks_higher() {
        assert!(Status::Filtered.rank() > Status::Verified.rank());
        assert!(Status::Closed.rank() > Status::Untested.rank());
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }
}
