//! `report --audit`: audit results (`scc-ports audit … --format json`, of a node's host firewall or
//! of a network firewall or appliance) read into tolerant mirrors, each checked against the plan
//! and named after the firewall it audited, with the `firewall --diff` command that fixes it; and
//! the audit section of the merged report in every format.
//!
//! The audit JSON is input like a probe result: every string goes out through a
//! [`crate::safe::Sink`], lists and texts are bounded, and an audit whose flows are not the plan's
//! flows for the firewall it names (another deployment, an older plan) does not count: it is
//! listed as rejected with the reason, and the report fails, as for a probe result of another
//! zone.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};

use crate::catalog::Catalog;
use crate::deployment::Deployment;
use crate::firewall::Mode;
use crate::plan::Plan;
use crate::safe::{Sink, clean};

/// Most rows (flows, or openings) an audit file may hold; a node's audit has tens, a large
/// network firewall's a few thousand.
pub const MAX_ROWS: usize = 200_000;

/// Most items of one row's list (blocked ports, sources, addresses).
pub const MAX_ITEMS: usize = 10_000;

/// Most characters kept of one text of an audit (a rule quoted in full is rarely 1,000).
pub const MAX_TEXT: usize = 4_000;

/// Why an audit file cannot be read (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum AuditFileError {
    #[error("{file}:{line}:{column}: not an audit result (JSON): {message}\n  hint: {hint}")]
    Json {
        file: String,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },
    #[error(
        "{file}: format_version {version} is newer than this scc-ports reads ({}); hint: make the report with the scc-ports version that audited, or a newer one",
        crate::FORMAT_VERSION
    )]
    FutureVersion { file: String, version: u64 },
    #[error("{file}: {what}\n  hint: {hint}")]
    Shape {
        file: String,
        what: String,
        hint: String,
    },
}

const AUDIT_HINT: &str = "give the output of `scc-ports audit FILE (--node NAME | --network) --ruleset RULES --format json`";

// --- the audit JSON as `audit` writes it, today's and the grouped one (tolerant mirrors) ---

#[derive(Deserialize, Default)]
#[serde(default)]
struct Raw {
    format_version: Option<u64>,
    subject: Option<RawSubject>,
    ruleset: Option<String>,
    summary: Option<RawSummary>,
    #[serde(deserialize_with = "bounded")]
    flows: Option<Vec<RawFlow>>,
    #[serde(deserialize_with = "bounded")]
    extra: Option<Vec<RawExtra>>,
    /// A probe result's (to say so).
    results: Option<IgnoredAny>,
    /// A report's (to say so).
    rows: Option<IgnoredAny>,
    audit: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSubject {
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawSummary {
    format: Option<String>,
    exact: Option<bool>,
    undecided: Option<u64>,
    undecided_openings: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawFlow {
    zone: String,
    address: String,
    transport: String,
    ports: String,
    component: String,
    port_id: String,
    status: String,
    #[serde(deserialize_with = "bounded_items")]
    blocked: Vec<String>,
    #[serde(deserialize_with = "bounded_items")]
    blocked_sources: Vec<String>,
    rule: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawExtra {
    /// Today's one source and address per row; the grouped rows' lists.
    source: Option<String>,
    #[serde(deserialize_with = "bounded_items")]
    sources: Vec<String>,
    address: Option<String>,
    #[serde(deserialize_with = "bounded_items")]
    addresses: Vec<String>,
    transport: String,
    ports: String,
    rule: String,
}

/// A list of at most `max` elements, refused at the first one too many (before it is read).
fn bounded_seq<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    max: usize,
) -> Result<Vec<T>, D::Error> {
    struct Seq<T>(usize, std::marker::PhantomData<T>);
    impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Seq<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {} elements", self.0)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::new();
            while let Some(x) = seq.next_element()? {
                if out.len() == self.0 {
                    return Err(de::Error::custom(format!(
                        "more than {} elements in one list",
                        self.0
                    )));
                }
                out.push(x);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Seq(max, std::marker::PhantomData))
}

fn bounded<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Vec<T>>, D::Error> {
    bounded_seq(d, MAX_ROWS).map(Some)
}

fn bounded_items<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    bounded_seq(d, MAX_ITEMS)
}

/// A text of the audit, at most [`MAX_TEXT`] characters (cut ones end in `…`). Kept as written:
/// each sink cleans it on the way out.
fn bound(text: String) -> String {
    if text.chars().count() <= MAX_TEXT {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_TEXT - 1).collect();
    cut.push('…');
    cut
}

fn bound_all(v: Vec<String>) -> Vec<String> {
    v.into_iter().map(bound).collect()
}

// --- the audit as the report holds it ---

/// Which firewall an audit is of, and how the report knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Subject {
    /// `node`, `network` or `unknown`.
    pub kind: String,
    /// The node, or the `[firewalls.NAME]` of a network firewall (none for `--network` without
    /// `--firewall`, and for an unknown subject).
    pub name: Option<String>,
    /// Where the subject came from: `audit` (its `subject`), `file name`, `flows` (the one
    /// firewall of the plan with exactly these flows), or `unknown`.
    pub from: String,
}

impl Subject {
    fn node(name: &str, from: &str) -> Subject {
        Subject {
            kind: "node".into(),
            name: Some(name.into()),
            from: from.into(),
        }
    }

    fn network(name: Option<&str>, from: &str) -> Subject {
        Subject {
            kind: "network".into(),
            name: name.map(str::to_string),
            from: from.into(),
        }
    }

    fn unknown() -> Subject {
        Subject {
            kind: "unknown".into(),
            name: None,
            from: "unknown".into(),
        }
    }

    /// `host firewall of node APP1`, `network firewall EDGE`, `network firewall`, or for an
    /// unknown subject `firewall of FILE`: the name the report (and drift) gives it.
    pub fn firewall(&self, file: &str) -> String {
        match (self.kind.as_str(), &self.name) {
            ("node", Some(n)) => format!("host firewall of node {n}"),
            ("network", Some(n)) => format!("network firewall {n}"),
            // Several routers may each be audited as `--network` without a name: the file tells
            // them apart (and keeps a second router from reading as a duplicate).
            ("network", None) => format!("network firewall of {file}"),
            _ => format!("firewall of {file}"),
        }
    }
}

/// One planned flow of the audited firewall, as the audit found it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditFlow {
    pub zone: String,
    pub address: String,
    pub transport: String,
    pub ports: String,
    pub component: String,
    pub port_id: String,
    /// `admitted`, `blocked`, `partial`, `undecided` (or what the file says).
    pub status: String,
    pub blocked: Vec<String>,
    pub blocked_sources: Vec<String>,
    pub rule: String,
}

impl AuditFlow {
    pub fn admitted(&self) -> bool {
        self.status == "admitted"
    }

    pub fn label(&self) -> String {
        format!("{}.{}", self.component, self.port_id)
    }

    /// `agents to 10.88.1.101 udp/8000-8040 media-routing-server.prompt-area`.
    pub fn line(&self) -> String {
        format!(
            "from {} to {} {}/{} {}",
            self.zone,
            self.address,
            self.transport,
            self.ports,
            self.label()
        )
    }

    /// What is blocked and by what: `blocked 8010 from 10.88.4.0/25 by line 12: …`.
    pub fn why(&self) -> String {
        let mut s = String::new();
        if !self.blocked.is_empty() {
            let _ = write!(s, "blocked {} ", self.blocked.join(", "));
        }
        if !self.blocked_sources.is_empty() {
            let _ = write!(s, "from {} ", self.blocked_sources.join(", "));
        }
        let _ = write!(s, "by {}", self.rule);
        s
    }
}

/// An opening beyond the plan: one deciding rule's sources, addresses and ports (today's audit
/// JSON has one source and address per row; the grouped one lists them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Opening {
    pub transport: String,
    pub ports: String,
    pub sources: Vec<String>,
    pub addresses: Vec<String>,
    pub rule: String,
}

impl Opening {
    /// `from 10.88.5.0/24 to 10.88.1.11, 10.88.1.100 tcp/1025-21001`.
    pub fn line(&self) -> String {
        format!(
            "from {} to {} {}/{}",
            self.sources.join(", "),
            self.addresses.join(", "),
            self.transport,
            self.ports
        )
    }
}

/// The audit's counts, as its rows say (never as its summary claims).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counts {
    pub flows: usize,
    pub admitted: usize,
    pub not_admitted: usize,
    pub undecided: usize,
    pub openings: usize,
}

/// One audited firewall.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Audit {
    /// The audit file, as given.
    pub file: String,
    /// `host firewall of node APP1`, `network firewall EDGE`, …
    pub firewall: String,
    pub subject: Subject,
    /// The ruleset the audit read (recorded by `audit` from this version on).
    pub ruleset: Option<String>,
    /// The ruleset's format (`iptables-save`, `cisco-asa`, …).
    pub format: String,
    /// True when the firewall admits exactly the plan: every flow admitted, nothing beyond it,
    /// nothing undecided (by its rows, and by its summary when that is stricter).
    pub exact: bool,
    pub counts: Counts,
    /// The command that writes the changes bringing this firewall to the plan, shell-quoted.
    pub fix: Option<String>,
    /// What the fix needs, or why there is no command.
    pub fix_note: Option<String>,
    /// Every flow of the audit, admitted or not.
    pub flows: Vec<AuditFlow>,
    pub openings: Vec<Opening>,
}

impl Audit {
    pub fn not_admitted(&self) -> impl Iterator<Item = &AuditFlow> {
        self.flows.iter().filter(|f| !f.admitted())
    }

    /// `exact`, or `not exact: 2 of 16 flows not admitted, 3 openings beyond the plan`.
    pub fn verdict(&self) -> String {
        if self.exact {
            return format!(
                "exact: admits its {} planned flows and nothing beyond",
                self.counts.flows
            );
        }
        let c = &self.counts;
        let mut parts = vec![format!(
            "{} of {} flows not admitted",
            c.not_admitted, c.flows
        )];
        parts.push(format!(
            "{} opening{} beyond the plan",
            c.openings,
            if c.openings == 1 { "" } else { "s" }
        ));
        if c.undecided > 0 {
            parts.push(format!("{} undecided", c.undecided));
        }
        format!("not exact: {}", parts.join(", "))
    }
}

/// An audit file that does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedAudit {
    pub file: String,
    pub firewall: String,
    pub reason: String,
}

/// The audit section of the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Audits {
    /// Every audit counts and is exact.
    pub passed: bool,
    pub firewalls: usize,
    pub exact: usize,
    pub flows_not_admitted: usize,
    pub openings: usize,
    pub audits: Vec<Audit>,
    pub rejected: Vec<RejectedAudit>,
}

impl Audits {
    /// The headline: `PASSED: all 3 audited firewalls admit exactly the plan` or `FAILED: 2 of
    /// 3 audited firewalls not exact: 4 flows not admitted, 9 openings beyond the plan; 1 audit
    /// file does not count`.
    pub fn verdict(&self) -> String {
        let rejected = match self.rejected.len() {
            0 => String::new(),
            1 => "1 audit file does not count".to_string(),
            n => format!("{n} audit files do not count"),
        };
        if self.passed {
            return match self.firewalls {
                1 => "PASSED: the audited firewall admits exactly the plan".to_string(),
                n => format!("PASSED: all {n} audited firewalls admit exactly the plan"),
            };
        }
        let bad = self.firewalls - self.exact;
        let mut v = if bad > 0 {
            format!(
                "FAILED: {bad} of {} audited firewalls not exact: {} flow{} not admitted, {} opening{} beyond the plan",
                self.firewalls,
                self.flows_not_admitted,
                if self.flows_not_admitted == 1 {
                    ""
                } else {
                    "s"
                },
                self.openings,
                if self.openings == 1 { "" } else { "s" },
            )
        } else {
            format!("FAILED: {rejected}")
        };
        if bad > 0 && !rejected.is_empty() {
            let _ = write!(v, "; {rejected}");
        }
        v
    }
}

// --- reading and checking one audit file ---

/// The flows of a plan firewall by what identifies them across audits: (source zones,
/// transport, ports, component, port ids); an audit row adds the destination (or the part of a
/// network the rules cut).
type Key = (String, String, String, String, String);

fn key(zone: &str, transport: &str, ports: &str, component: &str, port_id: &str) -> Key {
    (
        zone.to_string(),
        transport.to_string(),
        ports.to_string(),
        component.to_string(),
        port_id.to_string(),
    )
}

/// A firewall of the plan that an audit can be of, with its flows' keys.
pub struct Candidate {
    pub subject: Subject,
    keys: BTreeSet<Key>,
}

/// Every firewall of the plan an audit can be of: each node's host firewall, the network
/// firewall (`--network`), and each `[firewalls.NAME]` (an appliance, `--network --firewall`).
pub fn candidates(dep: &Deployment, catalog: &Catalog, plan: &Plan) -> Vec<Candidate> {
    let all = crate::flows::flows(dep, catalog, plan);
    let keys = |flows: &[crate::flows::Flow]| -> BTreeSet<Key> {
        flows
            .iter()
            .map(|f| {
                key(
                    &f.source_zones.join(","),
                    f.transport.as_str(),
                    &f.ports.to_string(),
                    &f.component,
                    &f.port_id_text(),
                )
            })
            .collect()
    };
    let mut out = Vec::new();
    for n in &dep.nodes {
        let mode = Mode::Node {
            name: n.name.clone(),
            addresses: vec![n.address],
        };
        out.push(Candidate {
            subject: Subject::node(&n.name, ""),
            keys: keys(&crate::firewall::select(dep, &all, &mode)),
        });
    }
    let network = crate::firewall::select(dep, &all, &Mode::Network);
    out.push(Candidate {
        subject: Subject::network(None, ""),
        keys: keys(&network),
    });
    for fw in &dep.firewalls {
        let crossing = crate::audit::appliance::bind::crossing(dep, fw, network.clone());
        out.push(Candidate {
            subject: Subject::network(Some(&fw.name), ""),
            keys: keys(&crossing),
        });
    }
    out
}

/// What the report needs to place an audit: the plan's firewalls, and the command line words
/// of the fix (the deployment file as the user gave it).
pub struct Context<'a> {
    pub candidates: &'a [Candidate],
    /// The deployment file's path, as given to `report`.
    pub deployment: &'a str,
}

/// An audit file read, placed and checked: counted, or rejected with the reason.
pub enum Read {
    Counts(Audit),
    Rejected(Audit, RejectedAudit),
}

/// Reads one audit text, its size already bounded ([`read_file`]).
fn read(name: &str, text: &str, cx: &Context) -> Result<Read, AuditFileError> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| AuditFileError::Json {
        file: name.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
        hint: AUDIT_HINT.to_string(),
    })?;
    if let Some(version) = raw
        .format_version
        .filter(|v| *v > u64::from(crate::FORMAT_VERSION))
    {
        return Err(AuditFileError::FutureVersion {
            file: name.to_string(),
            version,
        });
    }
    let (Some(summary), Some(flows)) = (raw.summary, raw.flows) else {
        let (what, hint) = if raw.results.is_some() {
            (
                "a probe result, not an audit result",
                "give probe results without --audit".to_string(),
            )
        } else if raw.rows.is_some() || raw.audit.is_some() {
            (
                "a report, not an audit result",
                "give an earlier report to --compare".to_string(),
            )
        } else {
            ("no `summary` and `flows`", AUDIT_HINT.to_string())
        };
        return Err(AuditFileError::Shape {
            file: name.to_string(),
            what: format!("{what}: not an audit result"),
            hint,
        });
    };
    let flows: Vec<AuditFlow> = flows
        .into_iter()
        .map(|f| AuditFlow {
            zone: bound(f.zone),
            address: bound(f.address),
            transport: bound(f.transport),
            ports: bound(f.ports),
            component: bound(f.component),
            port_id: bound(f.port_id),
            status: bound(f.status),
            blocked: bound_all(f.blocked),
            blocked_sources: bound_all(f.blocked_sources),
            rule: bound(f.rule),
        })
        .collect();
    let openings: Vec<Opening> = raw
        .extra
        .unwrap_or_default()
        .into_iter()
        .map(|e| Opening {
            transport: bound(e.transport),
            ports: bound(e.ports),
            sources: bound_all(if e.sources.is_empty() {
                e.source.into_iter().collect()
            } else {
                e.sources
            }),
            addresses: bound_all(if e.addresses.is_empty() {
                e.address.into_iter().collect()
            } else {
                e.addresses
            }),
            rule: bound(e.rule),
        })
        .collect();
    let counts = Counts {
        flows: flows.len(),
        admitted: flows.iter().filter(|f| f.admitted()).count(),
        not_admitted: flows.iter().filter(|f| !f.admitted()).count(),
        undecided: flows.iter().filter(|f| f.status == "undecided").count(),
        openings: openings.len(),
    };
    // The rows decide; a summary that says more is undecided (or not exact) is believed too.
    let exact = counts.not_admitted == 0
        && counts.openings == 0
        && summary.exact != Some(false)
        && summary.undecided.unwrap_or(0) == 0
        && summary.undecided_openings.unwrap_or(0) == 0;
    let keys: BTreeSet<Key> = flows
        .iter()
        .map(|f| key(&f.zone, &f.transport, &f.ports, &f.component, &f.port_id))
        .collect();
    let (subject, mismatch) = place(name, raw.subject, &keys, cx);
    let ruleset = raw.ruleset.map(bound);
    let format = bound(summary.format.unwrap_or_else(|| "unknown".to_string()));
    let (fix, fix_note) = if exact {
        (None, None)
    } else {
        fix(cx.deployment, &subject, &format, ruleset.as_deref())
    };
    let audit = Audit {
        file: name.to_string(),
        firewall: subject.firewall(name),
        subject,
        ruleset,
        format,
        exact,
        counts,
        fix,
        fix_note,
        flows,
        openings,
    };
    Ok(match mismatch {
        None => Read::Counts(audit),
        Some(reason) => {
            let rejected = RejectedAudit {
                file: name.to_string(),
                firewall: audit.firewall.clone(),
                reason,
            };
            Read::Rejected(audit, rejected)
        }
    })
}

/// The audit's subject (its own word, its file name, or the one firewall of the plan with
/// exactly its flows), and why it does not count, if it does not.
fn place(
    file: &str,
    said: Option<RawSubject>,
    keys: &BTreeSet<Key>,
    cx: &Context,
) -> (Subject, Option<String>) {
    let find = |s: &Subject| {
        cx.candidates
            .iter()
            .find(|c| c.subject.kind == s.kind && c.subject.name == s.name)
    };
    let subject = match said {
        Some(RawSubject {
            kind: Some(kind),
            name,
        }) if kind == "node" || kind == "network" => {
            let s = Subject {
                kind: bound(kind),
                name: name.map(bound),
                from: "audit".into(),
            };
            if find(&s).is_none() {
                let what = if s.kind == "node" { "node" } else { "firewall" };
                let known: Vec<String> = cx
                    .candidates
                    .iter()
                    .filter(|c| c.subject.kind == s.kind)
                    .filter_map(|c| c.subject.name.clone())
                    .collect();
                let name = s.name.clone().unwrap_or_default();
                let hint = match crate::diag::suggest(&name, known.iter().map(String::as_str)) {
                    Some(best) => format!("did you mean `{best}`? ({what}s: {})", known.join(", ")),
                    None if known.is_empty() => format!("the deployment declares no {what}"),
                    None => format!("{what}s: {}", known.join(", ")),
                };
                return (
                    s,
                    Some(format!(
                        "it audits {what} `{name}`, which is not a {what} of this deployment ({hint}): was it made with another deployment file?"
                    )),
                );
            }
            Some(s)
        }
        _ => from_file_name(file, cx),
    };
    let subject = match subject {
        Some(s) => s,
        None => {
            let same: Vec<&Candidate> = cx.candidates.iter().filter(|c| &c.keys == keys).collect();
            match same.as_slice() {
                [one] => Subject {
                    from: "flows".into(),
                    ..one.subject.clone()
                },
                [] => {
                    return (
                        Subject::unknown(),
                        Some(
                            "it names no firewall, and its flows are not the plan's flows of any firewall of this deployment: was it made with another deployment file, or before the plan changed?".to_string(),
                        ),
                    );
                }
                // Two nodes with the same flows (instances of the same units): which one the
                // audit is of is not known, but its flows are the plan's.
                _ => return (Subject::unknown(), None),
            }
        }
    };
    let planned = &find(&subject).expect("a candidate's subject").keys;
    if planned == keys {
        return (subject, None);
    }
    let text = |k: &Key| format!("{}.{} {}/{} from {}", k.3, k.4, k.1, k.2, k.0);
    let missing: Vec<&Key> = planned.difference(keys).collect();
    let unplanned: Vec<&Key> = keys.difference(planned).collect();
    let mut parts = Vec::new();
    if let Some(first) = missing.first() {
        parts.push(format!(
            "{} planned flow{} missing from it (first: {})",
            missing.len(),
            if missing.len() == 1 { " is" } else { "s are" },
            text(first)
        ));
    }
    if let Some(first) = unplanned.first() {
        parts.push(format!(
            "{} of its flows {} not planned (first: {})",
            unplanned.len(),
            if unplanned.len() == 1 { "is" } else { "are" },
            text(first)
        ));
    }
    let firewall = subject.firewall(file);
    (
        subject,
        Some(format!(
            "its flows are not the plan's flows of the {firewall}: {}; was it made with another deployment file, or before the plan changed? hint: audit again with this deployment",
            parts.join("; ")
        )),
    )
}

/// A node or firewall the file name names (`app1-APP1.json`, `EDGE.audit.json`): exactly one
/// name of the deployment standing as a word of the name.
fn from_file_name(file: &str, cx: &Context) -> Option<Subject> {
    let base = std::path::Path::new(file)
        .file_name()
        .map_or(file.to_string(), |n| n.to_string_lossy().into_owned());
    let word_at = |name: &str| {
        base.match_indices(name).any(|(i, _)| {
            let before = base[..i].chars().next_back();
            let after = base[i + name.len()..].chars().next();
            let edge = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
            edge(before) && edge(after)
        })
    };
    let found: Vec<&Candidate> = cx
        .candidates
        .iter()
        .filter(|c| c.subject.name.as_deref().is_some_and(word_at))
        .collect();
    match found.as_slice() {
        [one] => Some(Subject {
            from: "file name".into(),
            ..one.subject.clone()
        }),
        _ => None,
    }
}

/// The `firewall --diff` target that reads an export of `format`.
fn diff_target(format: &str) -> Option<&'static str> {
    match format {
        "nftables-json" | "nftables-text" => Some("nftables"),
        "iptables-save" | "ip6tables-save" => Some("iptables"),
        "windows-json" => Some("windows"),
        // An appliance's changes are written for its own configuration (`--target aerleon`).
        "cisco-asa" | "panos-set" => Some("aerleon"),
        _ => None,
    }
}

/// The command that writes the changes bringing the audited firewall to the plan: `scc-ports
/// firewall DEPLOYMENT --target T (--node N | --network) --diff RULES`, every path a
/// [`Sink::ShellWord`]; and what it needs (the ruleset's path when the audit does not record it),
/// or why there is none.
fn fix(
    deployment: &str,
    subject: &Subject,
    format: &str,
    ruleset: Option<&str>,
) -> (Option<String>, Option<String>) {
    let word = |t: &str| clean(Sink::ShellWord, t).into_owned();
    let scope = match (subject.kind.as_str(), &subject.name) {
        ("node", Some(n)) => format!("--node {}", word(n)),
        ("network", Some(n)) if diff_target(format) == Some("aerleon") => {
            format!("--network --firewall {}", word(n))
        }
        ("network", _) => "--network".to_string(),
        _ => "--node NODE".to_string(),
    };
    // Windows Firewall is a host's; an appliance's configuration is a network firewall's.
    let fits = |t: &&str| match *t {
        "windows" => subject.kind != "network",
        "aerleon" => subject.kind == "network",
        _ => true,
    };
    let Some(target) = diff_target(format).filter(fits) else {
        let how = match format {
            "firewalld" | "firewalld-xml" => {
                "a firewalld zone's services are shared by other hosts: change the zone by hand (`scc-ports firewall DEPLOYMENT --target firewalld` writes the planned one)"
            }
            "aws-json" => {
                "a security group's rules are shared by other instances: change them by hand (`scc-ports firewall DEPLOYMENT --target aws` writes the planned ones)"
            }
            _ => {
                "change the configuration by hand: remove the openings and admit the flows listed (`scc-ports firewall DEPLOYMENT --target aerleon --network -o DIR` writes the planned policy)"
            }
        };
        return (
            None,
            Some(format!(
                "`firewall --diff` writes no changes for {format}: {how}"
            )),
        );
    };
    let (rules, note) = match ruleset {
        Some(r) => (word(r), None),
        None => (
            "RULES".to_string(),
            Some(
                "RULES: the export the audit read (this audit file does not record its path)"
                    .to_string(),
            ),
        ),
    };
    let note = match (subject.kind.as_str(), note) {
        ("node" | "network", n) => n,
        (_, Some(n)) => Some(format!(
            "NODE: the node whose firewall the audit read (the file does not say); {n}"
        )),
        (_, None) => {
            Some("NODE: the node whose firewall the audit read (the file does not say)".into())
        }
    };
    (
        Some(format!(
            "scc-ports firewall {} --target {target} {scope} --diff {rules}",
            word(deployment)
        )),
        note,
    )
}

/// The audit section: the audits that count (in the order given; a second audit of one firewall
/// does not), the rejected ones, the counts.
pub fn section(read: Vec<Read>) -> Audits {
    let mut audits = Vec::new();
    let mut rejected = Vec::new();
    for r in read {
        match r {
            // One audit per firewall: two would answer for it twice, and drift could not tell
            // which to compare.
            Read::Counts(a) => match audits
                .iter()
                .find(|b: &&Audit| b.subject.kind != "unknown" && b.firewall == a.firewall)
            {
                Some(first) => rejected.push(RejectedAudit {
                    reason: format!(
                        "the report already has an audit of the {} ({}): give one audit per firewall",
                        a.firewall, first.file
                    ),
                    file: a.file,
                    firewall: a.firewall,
                }),
                None => audits.push(a),
            },
            Read::Rejected(_, why) => rejected.push(why),
        }
    }
    let exact = audits.iter().filter(|a| a.exact).count();
    Audits {
        passed: exact == audits.len() && rejected.is_empty(),
        firewalls: audits.len(),
        exact,
        flows_not_admitted: audits.iter().map(|a| a.counts.not_admitted).sum(),
        openings: audits.iter().map(|a| a.counts.openings).sum(),
        audits,
        rejected,
    }
}

/// Most JSON objects, arrays and strings (counted by their opening `{`, `[` and `"` characters,
/// strings' contents included) read from one audit or earlier report: a file of empty rows
/// (`{},{},…`) would otherwise take gigabytes as rows.
pub const MAX_VALUES: usize = 4_000_000;

/// Refuses a text with more than [`MAX_VALUES`] values before it is parsed.
fn values_bounded(name: &str, text: &str) -> Result<(), AuditFileError> {
    let n = text
        .bytes()
        .filter(|b| matches!(b, b'{' | b'[' | b'"'))
        .count();
    if n > MAX_VALUES {
        return Err(AuditFileError::Shape {
            file: name.to_string(),
            what: format!("more than {MAX_VALUES} JSON values (objects, lists, strings)"),
            hint:
                "is it the right file? an audit of a large network firewall has a few thousand rows"
                    .to_string(),
        });
    }
    Ok(())
}

/// Reads one audit file (`name` is for messages and the subject's fallback), bounded.
pub fn read_file(name: &str, text: &str, cx: &Context) -> Result<Read, AuditFileError> {
    values_bounded(name, text)?;
    read(name, text, cx)
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawEarlier {
    format_version: Option<u64>,
    name: Option<String>,
    #[serde(deserialize_with = "bounded")]
    rows: Option<Vec<super::drift::PortState>>,
    audit: Option<Audits>,
    summary: Option<IgnoredAny>,
    flows: Option<IgnoredAny>,
    results: Option<IgnoredAny>,
}

/// An earlier run for `--compare`: a report's JSON (its probe rows and audits), or one audit
/// result (placed and checked as `--audit` does; one that does not match the plan is compared
/// all the same, and the note says so). A report of another system is refused.
pub fn read_earlier(
    name: &str,
    text: &str,
    cx: &Context,
    system: &str,
) -> Result<(super::drift::State, Vec<String>), AuditFileError> {
    values_bounded(name, text)?;
    let raw: RawEarlier = serde_json::from_str(text).map_err(|e| AuditFileError::Json {
        file: name.to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
        hint: "give an earlier `scc-ports report … --format json` or `scc-ports audit … --format json`"
            .to_string(),
    })?;
    if let Some(version) = raw
        .format_version
        .filter(|v| *v > u64::from(crate::FORMAT_VERSION))
    {
        return Err(AuditFileError::FutureVersion {
            file: name.to_string(),
            version,
        });
    }
    if raw.rows.is_some() || raw.audit.is_some() {
        if let Some(other) = raw.name.filter(|n| n != system) {
            return Err(AuditFileError::Shape {
                file: name.to_string(),
                what: format!(
                    "a report of system `{}`, not of `{}`",
                    crate::audit::clip(&other),
                    crate::audit::clip(system)
                ),
                hint: "compare with an earlier report of the same deployment".to_string(),
            });
        }
        // A report made from audits alone has no rows: its probe part is not compared.
        let rows = raw.rows.filter(|r| !r.is_empty());
        return Ok((
            super::drift::State {
                ports: rows,
                audits: raw.audit.map(|a| a.audits),
            },
            Vec::new(),
        ));
    }
    if raw.summary.is_some() && raw.flows.is_some() {
        let (audit, notes) = match read(name, text, cx)? {
            Read::Counts(a) => (a, Vec::new()),
            Read::Rejected(a, why) => (
                a,
                vec![format!(
                    "the earlier audit {name} does not count for this plan: {}",
                    why.reason
                )],
            ),
        };
        return Ok((
            super::drift::State {
                ports: None,
                audits: Some(vec![audit]),
            },
            notes,
        ));
    }
    Err(AuditFileError::Shape {
        file: name.to_string(),
        what: if raw.results.is_some() {
            "a probe result, not an earlier report".to_string()
        } else {
            "neither a report (`rows`, `audit`) nor an audit result (`summary`, `flows`)".to_string()
        },
        hint: "give an earlier `scc-ports report … --format json` or `scc-ports audit … --format json`"
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cx() -> Context<'static> {
        Context {
            candidates: &[],
            deployment: "d.toml",
        }
    }

    fn audit_of(text: &str) -> Audit {
        match read("a.json", text, &cx()).expect("readable") {
            Read::Counts(a) | Read::Rejected(a, _) => a,
        }
    }

    #[test]
    fn todays_rows_and_the_grouped_ones_read_alike() {
        let today = r#"{"summary": {"format": "iptables-save", "exact": false},
            "flows": [{"zone": "agents", "address": "10.0.0.1", "transport": "tcp",
                       "ports": "21002", "component": "c", "port_id": "p", "status": "admitted",
                       "blocked": [], "rule": "line 3: x"}],
            "extra": [{"source": "10.88.5.0/24", "address": "10.88.1.11", "transport": "tcp",
                       "ports": "1025-21001", "rule": "line 19: y"}]}"#;
        let grouped = r#"{"format_version": 1, "subject": {"kind": "node", "name": "APP1"},
            "ruleset": "app1.rules", "summary": {"format": "iptables-save", "undecided_openings": 0},
            "flows": [{"zone": "agents", "address": "10.0.0.1", "transport": "tcp",
                       "ports": "21002", "component": "c", "port_id": "p", "status": "admitted",
                       "blocked": [], "rule": "line 3: x", "new_field": 1}],
            "extra": [{"rule": "line 19: y", "transport": "tcp", "ports": "1025-21001",
                       "sources": ["10.88.5.0/24"], "addresses": ["10.88.1.11"]}]}"#;
        let (a, b) = (audit_of(today), audit_of(grouped));
        assert_eq!(a.openings, b.openings);
        assert_eq!(a.flows, b.flows);
        assert!(!a.exact && !b.exact);
        assert_eq!(b.ruleset.as_deref(), Some("app1.rules"));
        assert_eq!(b.subject.from, "audit");
    }

    #[test]
    fn a_summary_cannot_make_rows_exact() {
        let a = audit_of(
            r#"{"summary": {"exact": true}, "flows": [{"status": "blocked"}], "extra": []}"#,
        );
        assert!(!a.exact);
        let b = audit_of(r#"{"summary": {"exact": false}, "flows": [], "extra": []}"#);
        assert!(!b.exact, "a summary that says not exact is believed");
    }

    #[test]
    fn fixes_are_one_shell_word_per_path() {
        let node = Subject::node("APP 1", "audit");
        let (cmd, note) = fix(
            "my dir/acme.toml",
            &node,
            "nftables-json",
            Some("it's.json"),
        );
        assert_eq!(
            cmd.unwrap(),
            r"scc-ports firewall 'my dir/acme.toml' --target nftables --node 'APP 1' --diff 'it'\''s.json'"
        );
        assert_eq!(note, None);
        let edge = Subject::network(Some("EDGE"), "audit");
        let (cmd, _) = fix("a.toml", &edge, "cisco-asa", Some("edge.cfg"));
        assert_eq!(
            cmd.unwrap(),
            "scc-ports firewall a.toml --target aerleon --network --firewall EDGE --diff edge.cfg"
        );
        let (cmd, note) = fix("a.toml", &node, "firewalld", None);
        assert!(cmd.is_none() && note.unwrap().contains("firewalld"));
    }

    proptest! {
        #[test]
        fn no_text_panics_the_reader(text in "\\PC{0,300}") {
            let _ = read("x.json", &text, &cx());
            let _ = read_earlier("x.json", &text, &cx(), "s");
        }

        #[test]
        fn no_json_shape_panics_the_reader(
            flows in prop::collection::vec(("\\PC{0,12}", "\\PC{0,12}"), 0..6),
            exact in any::<Option<bool>>(),
        ) {
            let rows: Vec<serde_json::Value> = flows
                .iter()
                .map(|(s, z)| serde_json::json!({"status": s, "zone": z, "blocked": [z]}))
                .collect();
            let doc = serde_json::json!({"summary": {"exact": exact}, "flows": rows,
                "extra": [{"sources": [], "address": "x"}], "subject": {"kind": "node"}});
            let _ = read("x.json", &doc.to_string(), &cx());
        }
    }
}
