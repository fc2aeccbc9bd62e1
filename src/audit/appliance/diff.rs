//! `firewall --diff` for an appliance's configuration (a Cisco ASA `show running-config`, a
//! PAN-OS `set` export): the commands that make the firewall admit exactly the plan's flows that
//! cross it. Found in rounds on the configuration text itself: read it with the audit's reader,
//! bind it to the deployment's zones, audit, change the text as the commands would, and read it
//! again, so that the audit after the diff is the audit of what the commands produce.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::bind::{BoundZone, bind};
use crate::audit::compare::{self, Report, Scope};
use crate::audit::{Action, AuditError, Chain, Cond, Format, Match, Outcome, Rule, Ruleset, Span};
use crate::flows::Flow;

/// The greatest number of audit-and-change rounds (a permit added to an inbound ACL may meet a
/// deny in an outbound one; a removed rule's planned flows are added back in the next round).
const ROUNDS: usize = 8;

/// The vendors whose changes can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Asa,
    PanosSet,
}

impl Vendor {
    /// The vendor of an export's format (None: no `--diff` for it).
    pub fn of(format: Format) -> Option<Vendor> {
        match format {
            Format::CiscoAsa => Some(Vendor::Asa),
            Format::PanosSet => Some(Vendor::PanosSet),
            _ => None,
        }
    }

    /// The comment mark of the vendor's command stream.
    fn mark(self) -> &'static str {
        match self {
            Vendor::Asa => "!",
            Vendor::PanosSet => "#",
        }
    }
}

/// The written diff: the file, how many commands it holds, and the audit after it.
pub struct Fix {
    pub text: String,
    pub commands: usize,
    pub after: Report,
}

/// How many commands a rendered appliance diff holds: the lines that are neither comments nor
/// an object-group's indented members.
pub fn commands_in(text: &str) -> usize {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with(['!', '#', ' ']))
        .count()
}

/// The intervals of both lists at once.
fn intersect(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            if x.family == y.family && x.lo <= y.hi && y.lo <= x.hi {
                out.push(Span {
                    family: x.family,
                    lo: x.lo.max(y.lo),
                    hi: x.hi.min(y.hi),
                });
            }
        }
    }
    out
}

fn covered(inner: &[Span], outer: &[Span]) -> bool {
    let set = crate::audit::Addrs::new(outer.to_vec());
    inner.iter().all(|s| set.covers(s))
}

fn nets(spans: &[Span]) -> Vec<ipnet::IpNet> {
    let all: Vec<ipnet::IpNet> = spans.iter().flat_map(|s| s.cidrs()).collect();
    ipnet::IpNet::aggregate(&all)
}

fn spans(nets: &[ipnet::IpNet]) -> Vec<Span> {
    nets.iter().map(Span::net).collect()
}

/// `line N: …` → the 0-based line of the working text.
fn origin_line(origin: &str) -> Option<usize> {
    let rest = origin.strip_prefix("line ")?;
    let (n, _) = rest.split_once(':')?;
    n.parse::<usize>().ok()?.checked_sub(1)
}

/// A protocol list (None: any) and destination port intervals (None: any).
type Service = (Option<Vec<u8>>, Option<Vec<(u16, u16)>>);

/// What one rule of the export admits or drops, from the reader's model (every rule of one
/// entry: one per service).
struct Entry {
    /// The entry's own sources, destinations (None: any), and per rule its protocol and ports.
    src: Option<Vec<Span>>,
    dst: Option<Vec<Span>>,
    services: Vec<Service>,
    /// The sides it tests (PAN-OS from / to zones).
    from: Option<Vec<String>>,
    to: Option<Vec<String>>,
    /// A condition the diff cannot write back (a negation, source ports, …).
    odd: bool,
}

/// The rules of one export rule (one per service), by their common origin.
fn by_origin<'a>(rs: &'a Ruleset, origin: &str) -> Vec<&'a Rule> {
    rs.chains
        .iter()
        .flat_map(|c| &c.rules)
        .filter(|r| r.origin == origin)
        .collect()
}

fn entry_of(rules: &[&Rule]) -> Entry {
    let mut e = Entry {
        src: None,
        dst: None,
        services: Vec::new(),
        from: None,
        to: None,
        odd: false,
    };
    for r in rules {
        let (mut proto, mut ports) = (None, None);
        for m in &r.matches {
            match (&m.cond, m.negate) {
                (Cond::Saddr(a), false) => e.src = Some(a.merged().to_vec()),
                (Cond::Daddr(a), false) => e.dst = Some(a.merged().to_vec()),
                (Cond::Proto(p), false) => proto = Some(p.clone()),
                (Cond::Dport(p), false) => ports = Some(p.merged().to_vec()),
                (Cond::Side { output, names }, false) => {
                    if *output {
                        e.to = Some(names.clone());
                    } else {
                        e.from = Some(names.clone());
                    }
                }
                _ => e.odd = true,
            }
        }
        e.services.push((proto, ports));
    }
    e
}

/// Where a change goes: before the export's line (an ACL entry, a security rule), or at the
/// end of an ACL (ASA) or of the rulebase (PAN-OS, `""`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Spot {
    Line(usize),
    End(String),
}

/// What is inserted at a spot: a planned flow's permit, or the deny that narrows entry `line`
/// to what is outside the plan's destinations.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Insert {
    Permit(usize),
    Deny(usize, String),
}

/// The changes of one round, on the text of that round.
#[derive(Default)]
struct Round {
    remove: BTreeSet<usize>,
    insert: BTreeMap<Spot, Vec<Insert>>,
}

/// The diff: rounds of audit and change on `text` until the configuration admits exactly the
/// plan (or nothing more can be changed), then written with `header` lines.
pub fn diff(
    file: &str,
    text: &str,
    firewall: &str,
    zones: &[BoundZone],
    flows: &[Flow],
    header: &[String],
) -> Result<Fix, AuditError> {
    let first = crate::audit::read(file, text)?;
    let Some(vendor) = Vendor::of(first.format) else {
        return Err(AuditError::Content {
            file: file.to_string(),
            what: format!(
                "firewall --diff writes changes for a Cisco ASA running-config or a PAN-OS set \
                 export, not {}",
                first.format.as_str()
            ),
            hint: "export a PAN-OS configuration in set format (`set cli config-output-format \
                   set`, `configure`, `show`); FortiOS and SRX have no --diff (docs/audit.md)"
                .into(),
        });
    };
    let mut w = Work {
        vendor,
        lines: text.lines().map(str::to_string).collect(),
        out: Vec::new(),
        notes: Vec::new(),
        names: BTreeSet::new(),
        made: BTreeMap::new(),
        zones,
        flows,
    };
    let plan_dst: Vec<Span> = {
        let all: Vec<ipnet::IpNet> = flows.iter().flat_map(|f| f.destination.clone()).collect();
        spans(&ipnet::IpNet::aggregate(&all))
    };
    let names: Vec<String> = zones.iter().map(|z| z.name.clone()).collect();
    let mut refused: BTreeSet<usize> = BTreeSet::new();
    let mut report;
    let mut round = 0;
    loop {
        let mut raw = crate::audit::read(file, &w.lines.join("\n"))?;
        // A zone the changes stopped naming (its last rule deleted) is still the appliance's:
        // an unreachable chain keeps every mapped name in the configuration for the binding.
        raw.chains.push(Chain {
            name: "\u{0}zones".into(),
            base: None,
            rules: vec![Rule {
                matches: vec![Match::is(super::side(false, names.clone()))],
                action: Action::Drop,
                origin: String::new(),
                spec: String::new(),
            }],
        });
        let bound = bind(&raw, firewall, zones).map_err(|u| AuditError::Content {
            file: file.to_string(),
            what: format!("zones not named: {:?}", u.zones),
            hint: "map the zones in [firewalls.NAME.names]".into(),
        })?;
        report = compare::audit(&bound, flows, &Scope::Network);
        if report.summary.exact || round == ROUNDS {
            break;
        }
        round += 1;
        let mut r = Round::default();
        let mut narrowed: BTreeMap<usize, String> = BTreeMap::new();
        for e in &report.extra {
            let d = &e.decided_by;
            match (&d.outcome, origin_line(&d.rule)) {
                (Outcome::Accept, Some(n)) if !refused.contains(&n) => {
                    narrowed.insert(n, d.rule.clone());
                }
                _ => w.note(format!(
                    "not changed: {}/{} beyond the plan, by {}",
                    e.transport, e.ports, d.rule
                )),
            }
        }
        for (&n, origin) in &narrowed {
            let entry = entry_of(&by_origin(&raw, origin));
            if let Some(why) = w.unwritable(n) {
                refused.insert(n);
                w.note(format!("not written: {why}"));
                continue;
            }
            if entry.odd {
                refused.insert(n);
                w.note(format!(
                    "not changed: {origin} (a negation or source ports the diff does not rewrite)"
                ));
                continue;
            }
            let carried: BTreeSet<usize> = report
                .flows
                .iter()
                .filter(|row| row.accepted_by.iter().any(|d| d.rule == *origin))
                .map(|row| row.flow)
                .collect();
            let list = r.insert.entry(Spot::Line(n)).or_default();
            list.extend(carried.into_iter().map(Insert::Permit));
            // Destinations all planned: the entry is replaced by its planned part; else it
            // stays for the others, and a deny before it takes the plan's destinations out.
            match &entry.dst {
                Some(dst) if covered(dst, &plan_dst) => {
                    r.remove.insert(n);
                }
                _ => list.push(Insert::Deny(n, origin.clone())),
            }
        }
        for row in report.flows.iter().filter(|r| r.status != "admitted") {
            for d in &row.blocked_by {
                let spot = match (&d.outcome, origin_line(&d.rule)) {
                    (Outcome::Drop, Some(n)) if w.is_rule_line(n) => Some(Spot::Line(n)),
                    (Outcome::Drop, _) => w.end_of(&d.rule),
                    _ => None,
                };
                match spot {
                    Some(s) => {
                        let list = r.insert.entry(s).or_default();
                        if !list.contains(&Insert::Permit(row.flow)) {
                            list.push(Insert::Permit(row.flow));
                        }
                    }
                    None => w.note(format!(
                        "not changed: flow {}.{} to {} ({})",
                        row.component, row.port_id, row.address, d.rule
                    )),
                }
            }
        }
        // One permit per flow and spot group, at the earliest spot of its ACL or rulebase.
        let mut seen: BTreeSet<(String, Insert)> = BTreeSet::new();
        for (spot, list) in r.insert.iter_mut() {
            let scope = w.scope_of(spot);
            list.retain(|i| seen.insert((scope.clone(), i.clone())));
            list.sort();
        }
        r.insert.retain(|_, l| !l.is_empty());
        if r.remove.is_empty() && r.insert.is_empty() {
            break;
        }
        let before = w.out.len();
        w.apply(&r, &raw, &plan_dst);
        if w.out.len() == before {
            break;
        }
    }
    Ok(w.finish(header, report))
}

struct Work<'a> {
    vendor: Vendor,
    lines: Vec<String>,
    /// The commands written so far, with their comments.
    out: Vec<String>,
    notes: Vec<String>,
    /// Names created (object-groups, services, rules).
    names: BTreeSet<String>,
    /// The object-groups made, by kind and members.
    made: BTreeMap<String, String>,
    zones: &'a [BoundZone],
    flows: &'a [Flow],
}

impl Work<'_> {
    fn note(&mut self, n: String) {
        if !self.notes.contains(&n) {
            self.notes.push(n);
        }
    }

    fn words(&self, n: usize) -> Vec<String> {
        match self.vendor {
            Vendor::Asa => self
                .lines
                .get(n)
                .map(|l| l.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
            Vendor::PanosSet => self
                .lines
                .get(n)
                .map(|l| {
                    super::panos::words(l.trim())
                        .into_iter()
                        .map(|w| w.join(" "))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The PAN-OS rule of a line: the words before `security rules` and its name.
    fn pan_rule(&self, n: usize) -> Option<(Vec<String>, String)> {
        let w = self.lines.get(n).map(|l| super::panos::words(l.trim()))?;
        let one = |k: usize| w.get(k).and_then(|v| v.first()).map(String::as_str);
        if one(0) != Some("set") {
            return None;
        }
        let i =
            (1..w.len()).find(|&i| one(i) == Some("security") && one(i + 1) == Some("rules"))?;
        if !matches!(
            one(i - 1),
            Some("rulebase" | "pre-rulebase" | "post-rulebase")
        ) {
            return None;
        }
        let prefix = (0..i).filter_map(|k| one(k).map(str::to_string)).collect();
        Some((prefix, one(i + 2)?.to_string()))
    }

    fn is_rule_line(&self, n: usize) -> bool {
        match self.vendor {
            Vendor::Asa => {
                let w = self.words(n);
                w.first().is_some_and(|x| x == "access-list") && w.iter().any(|x| x == "extended")
            }
            Vendor::PanosSet => self.pan_rule(n).is_some(),
        }
    }

    /// The spot at the end of what a default rule closes: an ASA ACL's implicit deny, PAN-OS's
    /// `interzone-default`.
    fn end_of(&self, rule: &str) -> Option<Spot> {
        match self.vendor {
            Vendor::Asa => {
                let rest = rule.strip_prefix("access-list ")?;
                let (acl, tail) = rest.split_once(" (")?;
                tail.ends_with("implicit deny")
                    .then(|| Spot::End(acl.to_string()))
            }
            Vendor::PanosSet => rule
                .contains("interzone-default")
                .then(|| Spot::End(String::new())),
        }
    }

    /// The ACL (ASA) or rulebase (PAN-OS: one) a spot is in.
    fn scope_of(&self, spot: &Spot) -> String {
        match (self.vendor, spot) {
            (Vendor::PanosSet, _) => String::new(),
            (Vendor::Asa, Spot::End(acl)) => acl.clone(),
            (Vendor::Asa, Spot::Line(n)) => self.words(*n).get(1).cloned().unwrap_or_default(),
        }
    }

    /// Why the rule at line `n` cannot be named in a command (None: it can).
    fn unwritable(&self, n: usize) -> Option<String> {
        match self.vendor {
            Vendor::Asa => {
                let line = self.lines.get(n)?;
                let same = |l: &String| l.split_whitespace().eq(line.split_whitespace());
                if !line.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                    Some(format!(
                        "line {}: the entry holds characters an ASA command cannot carry",
                        n + 1
                    ))
                } else if self.lines.iter().filter(|l| same(l)).count() > 1 {
                    Some(format!(
                        "line {}: the entry appears twice (an ASA holds one of each): remove \
                         it by its exact text",
                        n + 1
                    ))
                } else {
                    None
                }
            }
            Vendor::PanosSet => match self.pan_rule(n) {
                Some((_, name)) if pan_word(&name).is_some() => None,
                Some((_, name)) => Some(format!(
                    "line {}: the rule name `{}` cannot be quoted in a set command",
                    n + 1,
                    crate::audit::clip(&name)
                )),
                None => Some(format!("line {}: not a security rule", n + 1)),
            },
        }
    }

    fn apply(&mut self, r: &Round, raw: &Ruleset, plan_dst: &[Span]) {
        match self.vendor {
            Vendor::Asa => self.apply_asa(r, raw, plan_dst),
            Vendor::PanosSet => self.apply_panos(r, raw, plan_dst),
        }
    }

    fn finish(self, header: &[String], after: Report) -> Fix {
        let m = self.vendor.mark();
        let mut text = String::new();
        for h in header {
            let _ = writeln!(
                text,
                "{m} {}",
                crate::safe::clean(crate::safe::Sink::Comment, h)
            );
        }
        let commands = commands_in(&self.out.join("\n"));
        let _ = writeln!(
            text,
            "{m} {commands} command{}",
            if commands == 1 { "" } else { "s" }
        );
        let _ = writeln!(text, "{m} {}", crate::audit::diff::summary_line(&after));
        match self.vendor {
            Vendor::Asa => text.push_str(
                "! Paste in configuration mode on the ASA whose running-config was exported, in \
                 this order:\n! the line numbers refer to that config as the commands above \
                 them leave it.\n",
            ),
            Vendor::PanosSet => text.push_str(
                "# In configure mode on the firewall whose configuration was exported, without \
                 the\n# comment lines (grep -v '^#'), then commit.\n",
            ),
        }
        if self.out.is_empty() {
            let _ = writeln!(
                text,
                "{m} Nothing to change{}",
                if after.summary.exact {
                    ": the configuration admits exactly the plan."
                } else {
                    "."
                }
            );
        }
        for l in &self.out {
            text.push_str(l);
            text.push('\n');
        }
        if !self.notes.is_empty() {
            let _ = writeln!(
                text,
                "\n{m} Notes: what the diff does not change (constructs it cannot evaluate or write)"
            );
            for n in &self.notes {
                let _ = writeln!(
                    text,
                    "{m} {}",
                    crate::safe::clean(crate::safe::Sink::Comment, n)
                );
            }
        }
        Fix {
            text,
            commands,
            after,
        }
    }

    /// A name not used in the configuration nor by an earlier change: `base`, or `base_2`, ….
    fn fresh(&mut self, base: &str, max: usize) -> String {
        let base: String = base.chars().take(max.saturating_sub(4)).collect();
        let taken = |s: &Self, n: &str| {
            s.names.contains(n)
                || s.lines.iter().any(|l| {
                    l.split(|c: char| c.is_whitespace() || c == '"')
                        .any(|w| w == n)
                })
        };
        let mut name = base.clone();
        let mut i = 2;
        while taken(self, &name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.names.insert(name.clone());
        name
    }

    /// The sources of flow `f` through the spot's ACL: those of the zones on whose interface
    /// the ACL is bound inbound (all of them for an outbound or global ACL).
    fn asa_sources(&self, acl: &str, f: &Flow) -> Vec<ipnet::IpNet> {
        let mut ifaces = Vec::new();
        for l in &self.lines {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["access-group", a, "in", "interface", i] if *a == acl => ifaces.push(*i),
                ["access-group", a, ..] if *a == acl => return f.sources.to_vec(),
                _ => {}
            }
        }
        let zone: Vec<Span> = self
            .zones
            .iter()
            .filter(|z| ifaces.contains(&z.name.as_str()))
            .flat_map(|z| z.spans.iter().copied())
            .collect();
        nets(&intersect(&spans(&f.sources), &zone))
    }

    fn apply_asa(&mut self, r: &Round, raw: &Ruleset, plan_dst: &[Span]) {
        // Bottom-up, so that the working lines of this round stay valid; each command's ACL line
        // number is counted in the text as the commands before it leave it.
        // Each spot's ACL, named before any line moves.
        let mut spots: Vec<(usize, Option<(&Spot, String)>)> = Vec::new();
        for s in r.insert.keys() {
            let at = match s {
                Spot::Line(n) => *n,
                Spot::End(acl) => self.acl_end(acl),
            };
            spots.push((at, Some((s, self.scope_of(s)))));
        }
        for &n in &r.remove {
            spots.push((n, None));
        }
        // At one line: the insertion before it first, then the removal (an ACL never goes
        // empty on the way: the ASA would drop its access-group with its last entry).
        spots.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.is_some().cmp(&a.1.is_some())));
        let mut groups: Vec<String> = Vec::new();
        let mut cmds: Vec<String> = Vec::new();
        // (line, how many lines were inserted before it)
        let mut inserted: (usize, usize) = (usize::MAX, 0);
        for (at, spot) in spots {
            let Some((spot, acl)) = spot else {
                let at = if inserted.0 == at {
                    at + inserted.1
                } else {
                    at
                };
                let line = self.lines[at].clone();
                let w: Vec<&str> = line.split_whitespace().collect();
                let skip = if w.get(2) == Some(&"line") { 4 } else { 2 };
                let rest = w.get(skip..).unwrap_or_default().join(" ");
                cmds.push(
                    "! opens more than the plan (its planned part is inserted before it)".into(),
                );
                cmds.push(format!(
                    "no access-list {} {rest}",
                    w.get(1).copied().unwrap_or_default()
                ));
                self.lines.remove(at);
                continue;
            };
            let before = self.lines.len();
            if !asa_word(&acl) {
                self.note(format!(
                    "not written: the ACL name `{}` cannot be written in a command",
                    crate::audit::clip(&acl)
                ));
                continue;
            }
            // (what each is for, the entry): one entry for two flows of the same ports.
            let mut entries: Vec<(Vec<String>, String)> = Vec::new();
            let mut push =
                |label: String, text: String| match entries.iter_mut().find(|(_, t)| *t == text) {
                    Some((labels, _)) if !labels.contains(&label) => labels.push(label),
                    Some(_) => {}
                    None => entries.push((vec![label], text)),
                };
            for i in &r.insert[spot] {
                match i {
                    Insert::Permit(fi) => {
                        let f = &self.flows[*fi];
                        let src = self.asa_sources(&acl, f);
                        if src.is_empty() {
                            self.note(format!(
                                "not written: flow {}: none of its sources enters by the \
                                 interface of ACL {acl}",
                                f.label()
                            ));
                            continue;
                        }
                        let label = label(f);
                        let s = self.asa_addr(&src, &format!("SCC_{label}_SRC"), &mut groups);
                        let d =
                            self.asa_addr(&f.destination, &format!("SCC_{label}_DST"), &mut groups);
                        let p = self.asa_ports(
                            f.transport.as_str(),
                            &flow_ports(f),
                            &format!("SCC_{label}_PORTS"),
                            &mut groups,
                        );
                        push(
                            remark_text(&f.label()),
                            format!("extended permit {} {s} {d}{p}", f.transport.as_str()),
                        );
                    }
                    Insert::Deny(_, origin) => {
                        let e = entry_of(&by_origin(raw, origin));
                        let dst = match &e.dst {
                            Some(d) => intersect(d, plan_dst),
                            None => plan_dst.to_vec(),
                        };
                        let base = "SCC_NARROW".to_string();
                        let s = match &e.src {
                            Some(s) => self.asa_addr(&nets(s), &format!("{base}_SRC"), &mut groups),
                            None => "any".into(),
                        };
                        let d = self.asa_addr(&nets(&dst), &format!("{base}_DST"), &mut groups);
                        for (proto, ports) in &e.services {
                            let protos: Vec<String> = match proto {
                                None => vec!["ip".into()],
                                Some(list) => list.iter().map(|p| proto_text(*p)).collect(),
                            };
                            for pr in protos {
                                let p = match ports {
                                    Some(list) if pr == "tcp" || pr == "udp" => self.asa_ports(
                                        &pr,
                                        list,
                                        &format!("{base}_PORTS"),
                                        &mut groups,
                                    ),
                                    _ => String::new(),
                                };
                                push(
                                    "the plan's destinations taken out of the entry after these"
                                        .to_string(),
                                    format!("extended deny {pr} {s} {d}{p}"),
                                );
                            }
                        }
                    }
                }
            }
            let (mut k, append) = match spot {
                Spot::Line(n) => (self.acl_index(&acl, *n), false),
                Spot::End(_) => (0, true),
            };
            let mut last_remark = String::new();
            for (labels, entry) in entries {
                let mut put = |work: &mut Self, text: String| {
                    // Past the ACL's last line (its last entry is being replaced): appended.
                    let append = append || k >= work.acl_index(&acl, work.lines.len());
                    let at = if append {
                        work.acl_end(&acl)
                    } else {
                        work.acl_line(&acl, k)
                    };
                    cmds.push(if append {
                        format!("access-list {acl} {text}")
                    } else {
                        format!("access-list {acl} line {} {text}", k + 1)
                    });
                    work.lines.insert(at, format!("access-list {acl} {text}"));
                    k += 1;
                };
                // An ASA remark holds at most 100 characters.
                let remark: String = format!("scc-ports: {}", labels.join(", "))
                    .chars()
                    .take(100)
                    .collect();
                if remark != last_remark {
                    put(self, format!("remark {remark}"));
                    last_remark = remark;
                }
                put(self, entry);
            }
            let count = self.lines.len() - before;
            inserted = if inserted.0 == at {
                (at, inserted.1 + count)
            } else {
                (at, count)
            };
        }
        if !groups.is_empty() {
            let at = self
                .lines
                .iter()
                .position(|l| l.starts_with("access-list "))
                .unwrap_or(self.lines.len());
            for (i, g) in groups.iter().enumerate() {
                self.lines.insert(at + i, g.clone());
            }
            self.out.extend(groups);
        }
        self.out.extend(cmds);
    }

    /// The index in its ACL (0-based, remarks counted as the ASA counts them) of line `n`.
    fn acl_index(&self, acl: &str, n: usize) -> usize {
        self.lines[..n]
            .iter()
            .filter(|l| is_acl_line(l, acl))
            .count()
    }

    /// The working line of the `k`-th (0-based) line of an ACL (its end when past it).
    fn acl_line(&self, acl: &str, k: usize) -> usize {
        self.lines
            .iter()
            .enumerate()
            .filter(|(_, l)| is_acl_line(l, acl))
            .nth(k)
            .map_or_else(|| self.acl_end(acl), |(i, _)| i)
    }

    /// The working line after an ACL's last line.
    fn acl_end(&self, acl: &str) -> usize {
        self.lines
            .iter()
            .rposition(|l| is_acl_line(l, acl))
            .map_or(self.lines.len(), |i| i + 1)
    }

    /// An object-group of these members (`kind`: `network`, or `service {} tcp` with `{}` for
    /// the name): one this diff already made with the same members, or a new one.
    fn group(
        &mut self,
        base: &str,
        kind: &str,
        members: Vec<String>,
        groups: &mut Vec<String>,
    ) -> String {
        let key = format!("{kind}\n{}", members.join("\n"));
        if let Some(name) = self.made.get(&key) {
            return name.clone();
        }
        let name = self.fresh(base, 64);
        let head = if kind.contains("{}") {
            kind.replace("{}", &name)
        } else {
            format!("{kind} {name}")
        };
        groups.push(format!("object-group {head}"));
        groups.extend(members);
        self.made.insert(key, name.clone());
        name
    }

    /// Addresses as an ACE writes them; more than one network becomes an object-group.
    fn asa_addr(&mut self, list: &[ipnet::IpNet], base: &str, groups: &mut Vec<String>) -> String {
        let one = |n: &ipnet::IpNet| -> String {
            match n {
                ipnet::IpNet::V4(v) if v.prefix_len() == 32 => format!("host {}", v.addr()),
                ipnet::IpNet::V4(v) if v.prefix_len() == 0 => "any4".into(),
                ipnet::IpNet::V4(v) => format!("{} {}", v.network(), v.netmask()),
                ipnet::IpNet::V6(v) if v.prefix_len() == 128 => format!("host {}", v.addr()),
                ipnet::IpNet::V6(v) if v.prefix_len() == 0 => "any6".into(),
                ipnet::IpNet::V6(v) => format!("{}/{}", v.network(), v.prefix_len()),
            }
        };
        match list {
            [n] => one(n),
            _ => {
                let members: Vec<String> = list
                    .iter()
                    .map(|n| format!(" network-object {}", one(n)))
                    .collect();
                let name = self.group(base, "network", members, groups);
                format!("object-group {name}")
            }
        }
    }

    /// Destination ports as an ACE writes them (with a leading space); several intervals become
    /// a service object-group.
    fn asa_ports(
        &mut self,
        proto: &str,
        list: &[(u16, u16)],
        base: &str,
        groups: &mut Vec<String>,
    ) -> String {
        let one = |(a, b): (u16, u16)| -> String {
            if a == b {
                format!("eq {a}")
            } else {
                format!("range {a} {b}")
            }
        };
        match list {
            [(0, 65535)] => String::new(),
            [p] => format!(" {}", one(*p)),
            _ => {
                let members: Vec<String> = list
                    .iter()
                    .map(|p| format!(" port-object {}", one(*p)))
                    .collect();
                let name = self.group(base, &format!("service {{}} {proto}"), members, groups);
                format!(" object-group {name}")
            }
        }
    }

    fn apply_panos(&mut self, r: &Round, raw: &Ruleset, plan_dst: &[Span]) {
        let default_prefix: Vec<String> = (0..self.lines.len())
            .rev()
            .find_map(|n| self.pan_rule(n))
            .map_or_else(|| vec!["set".into(), "rulebase".into()], |(p, _)| p);
        let mut services: Vec<String> = Vec::new();
        let mut sets: Vec<String> = Vec::new();
        let mut moves: Vec<String> = Vec::new();
        let mut deletes: Vec<String> = Vec::new();
        // Text changes, applied after the commands are written: (rule lines, before rule).
        let mut new_rules: Vec<(Vec<String>, Option<String>)> = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        for (spot, list) in &r.insert {
            let (prefix, before) = match spot {
                Spot::Line(n) => match self.pan_rule(*n) {
                    Some((_, name)) if pan_word(&name).is_none() => {
                        self.note(format!(
                            "not written: the rule name `{}` cannot be quoted in a set command",
                            crate::audit::clip(&name)
                        ));
                        continue;
                    }
                    Some((p, name)) => (p, Some(name)),
                    None => continue,
                },
                Spot::End(_) => (default_prefix.clone(), None),
            };
            let Some(prefix_text) = prefix
                .iter()
                .map(|w| pan_word(w))
                .collect::<Option<Vec<_>>>()
            else {
                self.note("not written: the rulebase's path cannot be quoted".into());
                continue;
            };
            let prefix_text = prefix_text.join(" ");
            for i in list {
                let (name, attrs, desc) = match i {
                    Insert::Permit(fi) => {
                        let f = &self.flows[*fi];
                        let from: Vec<String> = self
                            .zones
                            .iter()
                            .filter(|z| f.source_zones.contains(&z.zone))
                            .map(|z| z.name.clone())
                            .collect();
                        let dst = spans(&f.destination);
                        let to: Vec<String> = self
                            .zones
                            .iter()
                            .filter(|z| !intersect(&z.spans, &dst).is_empty())
                            .map(|z| z.name.clone())
                            .collect();
                        let svc =
                            self.pan_service(f.transport.as_str(), &flow_ports(f), &mut services);
                        let name = format!("scc-{}", label(f));
                        let texts = |v: &[ipnet::IpNet]| -> Vec<String> {
                            v.iter().map(crate::flows::net_text).collect()
                        };
                        (
                            name,
                            vec![
                                ("from", from),
                                ("to", to),
                                ("source", texts(&f.sources)),
                                ("destination", texts(&f.destination)),
                                ("service", vec![svc]),
                                ("application", vec!["any".into()]),
                                ("action", vec!["allow".into()]),
                            ],
                            remark_text(&f.label()),
                        )
                    }
                    Insert::Deny(n, origin) => {
                        let e = entry_of(&by_origin(raw, origin));
                        let dst = match &e.dst {
                            Some(d) => intersect(d, plan_dst),
                            None => plan_dst.to_vec(),
                        };
                        let texts = |v: &[Span]| -> Vec<String> {
                            nets(v).iter().map(crate::flows::net_text).collect()
                        };
                        let mut svcs: Vec<String> = Vec::new();
                        for (proto, ports) in &e.services {
                            match (proto.as_deref(), ports) {
                                (Some(list), Some(p)) => {
                                    for pr in list {
                                        let t = proto_text(*pr);
                                        if t == "tcp" || t == "udp" {
                                            let s = self.pan_service(&t, p, &mut services);
                                            svcs.push(s);
                                        } else {
                                            svcs = vec!["any".into()];
                                        }
                                    }
                                }
                                _ => svcs = vec!["any".into()],
                            }
                            if svcs.iter().any(|s| s == "any") {
                                svcs = vec!["any".into()];
                                break;
                            }
                        }
                        svcs.dedup();
                        let of = self
                            .pan_rule(*n)
                            .map(|(_, x)| label_text(&x))
                            .unwrap_or_default();
                        let name = format!("scc-narrow-{of}");
                        (
                            name,
                            vec![
                                ("from", e.from.unwrap_or_else(|| vec!["any".into()])),
                                ("to", e.to.unwrap_or_else(|| vec!["any".into()])),
                                (
                                    "source",
                                    e.src.as_deref().map_or_else(|| vec!["any".into()], texts),
                                ),
                                ("destination", texts(&dst)),
                                ("service", svcs),
                                ("application", vec!["any".into()]),
                                ("action", vec!["deny".into()]),
                            ],
                            format!("the plan's destinations taken out of rule {of}"),
                        )
                    }
                };
                // The same rule for two flows (two port ids on one port) is written once.
                let key = format!("{attrs:?} {before:?} {prefix_text}");
                if let Some(p) = pending.iter_mut().find(|p| p.key == key) {
                    if !p.descs.contains(&desc) {
                        p.descs.push(desc);
                    }
                    continue;
                }
                pending.push(Pending {
                    key,
                    base: name,
                    attrs,
                    descs: vec![desc],
                    before: before.clone(),
                    prefix: prefix_text.clone(),
                });
            }
        }
        for p in pending {
            let name = self.fresh(&p.base, 63);
            let mut desc = format!("scc-ports: {}", p.descs.join(", "));
            desc.truncate(200);
            let mut lines = Vec::new();
            let mut ok = true;
            for (attr, values) in p.attrs {
                let Some(vals) = values
                    .iter()
                    .map(|v| pan_word(v))
                    .collect::<Option<Vec<String>>>()
                else {
                    ok = false;
                    break;
                };
                let v = match vals.as_slice() {
                    [one] => one.clone(),
                    many => format!("[ {} ]", many.join(" ")),
                };
                lines.push(format!("{} security rules {name} {attr} {v}", p.prefix));
            }
            if !ok {
                self.note(format!(
                    "not written: rule {name}: a zone name cannot be quoted in a set command"
                ));
                continue;
            }
            lines.push(format!(
                "{} security rules {name} description \"{desc}\"",
                p.prefix
            ));
            sets.extend(lines.iter().cloned());
            if let Some(b) = &p.before {
                let mv = p.prefix.replacen("set", "move", 1);
                moves.push(format!(
                    "{mv} security rules {name} before {}",
                    pan_word(b).unwrap_or_default()
                ));
            }
            new_rules.push((lines, p.before));
        }
        for &n in &r.remove {
            if let Some((prefix, name)) = self.pan_rule(n) {
                let p: Vec<String> = prefix.iter().filter_map(|w| pan_word(w)).collect();
                let del = p.join(" ").replacen("set", "delete", 1);
                deletes.push(format!(
                    "{del} security rules {}",
                    pan_word(&name).unwrap_or_default()
                ));
            }
        }
        // The text as the commands leave it: new rules, each moved before its rule, then the
        // deleted rules' lines gone.
        let removed: Vec<String> = r
            .remove
            .iter()
            .filter_map(|&n| self.pan_rule(n).map(|(_, name)| name))
            .collect();
        self.lines.extend(services.iter().cloned());
        for (lines, before) in new_rules {
            let at = before
                .and_then(|b| {
                    (0..self.lines.len()).find(|&i| self.pan_rule(i).is_some_and(|(_, x)| x == b))
                })
                .unwrap_or(self.lines.len());
            for (i, l) in lines.into_iter().enumerate() {
                self.lines.insert(at + i, l);
            }
        }
        let keep: Vec<bool> = (0..self.lines.len())
            .map(|i| !self.pan_rule(i).is_some_and(|(_, x)| removed.contains(&x)))
            .collect();
        let mut i = 0;
        self.lines.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        for (title, list) in [
            ("Services of the planned ports", services),
            (
                "Rules: planned flows the rulebase blocks, and denies that narrow rules opening more than the plan",
                sets,
            ),
            ("Each new rule before the rule it must precede", moves),
            (
                "Delete: rules whose destinations are all planned and that open more than the plan (their planned part is added above)",
                deletes,
            ),
        ] {
            if !list.is_empty() {
                self.out.push(format!("# {title}"));
                self.out.extend(list);
            }
        }
    }

    /// A `set service` object for these ports (created once per round and name).
    fn pan_service(&mut self, proto: &str, ports: &[(u16, u16)], out: &mut Vec<String>) -> String {
        if ports == [(0, 65535)] {
            return "any".into();
        }
        let list: Vec<String> = ports
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect();
        let joined = list.join(",");
        let want = format!("protocol {proto} port {joined}");
        // Reuse a service this diff made for the same ports.
        for l in out.iter().chain(self.lines.iter()) {
            if let Some(rest) = l.strip_prefix("set service scc-") {
                if let Some((name, def)) = rest.split_once(' ') {
                    if def == want {
                        return format!("scc-{name}");
                    }
                }
            }
        }
        let short: String = joined.chars().take(40).collect();
        let name = self.fresh(&format!("scc-{proto}-{}", short.replace(',', "_")), 63);
        out.push(format!("set service {name} {want}"));
        name
    }
}

/// A PAN-OS rule to be written: its attributes, what it is for, where it goes.
struct Pending {
    key: String,
    base: String,
    attrs: Vec<(&'static str, Vec<String>)>,
    descs: Vec<String>,
    before: Option<String>,
    prefix: String,
}

fn is_acl_line(l: &str, acl: &str) -> bool {
    let mut w = l.split_whitespace();
    w.next() == Some("access-list") && w.next() == Some(acl)
}

/// An ASA word (an ACL or object name) that a command can carry as is.
fn asa_word(s: &str) -> bool {
    !s.is_empty() && s.len() <= 241 && s.chars().all(|c| c.is_ascii_graphic())
}

/// A PAN-OS word as a `set` command carries it: bare when plain, else in double quotes; None
/// when it cannot be quoted (a double quote or a control character in it).
fn pan_word(s: &str) -> Option<String> {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
    {
        return Some(s.to_string());
    }
    (!s.is_empty()
        && s.chars()
            .all(|c| !c.is_control() && !crate::safe::is_forbidden(c) && c != '"'))
    .then(|| format!("\"{s}\""))
}

/// A flow's label as a name part.
fn label(f: &Flow) -> String {
    label_text(&f.label())
}

/// Text as a name part: letters, digits, `.`, `-`, `_`, at most 40 characters.
fn label_text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect()
}

/// Remark text: what a rule comment may hold, at most 80 characters.
fn remark_text(s: &str) -> String {
    crate::safe::clean(crate::safe::Sink::RuleComment, s)
        .chars()
        .take(80)
        .collect()
}

/// The ports of a flow as intervals: each port of a parity range, else the range.
fn flow_ports(f: &Flow) -> Vec<(u16, u16)> {
    match f.ports.parity() {
        Some(_) if !f.ports.is_single() => f.ports.ports().map(|p| (p, p)).collect(),
        _ => vec![(f.ports.lo(), f.ports.hi())],
    }
}

fn proto_text(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        1 => "icmp".into(),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_words_are_bare_quoted_or_refused() {
        assert_eq!(pan_word("agents-web").as_deref(), Some("agents-web"));
        assert_eq!(pan_word("carriers in").as_deref(), Some("\"carriers in\""));
        assert_eq!(pan_word("a\"b"), None);
        assert_eq!(pan_word("ev\u{1b}]0;il"), None);
        assert_eq!(pan_word("rtl\u{202e}"), None);
        assert_eq!(pan_word(""), None);
    }

    #[test]
    fn asa_words_are_printable_ascii_without_spaces() {
        assert!(asa_word("outside_access_in"));
        assert!(!asa_word("IN\u{1b}[31m"));
        assert!(!asa_word("a b"));
        assert!(!asa_word(""));
    }

    #[test]
    fn commands_are_counted_without_comments_or_group_members() {
        let text = "! header\nobject-group network G\n network-object host 10.0.0.1\n\
                    no access-list A extended permit ip any any\n# a note\n\
                    move rulebase security rules x before y\n";
        assert_eq!(commands_in(text), 3);
    }

    #[test]
    fn origins_give_their_line_and_intervals_intersect() {
        assert_eq!(
            origin_line("line 12: access-list A extended deny ip any any"),
            Some(11)
        );
        assert_eq!(
            origin_line("access-list A (access-group in interface x): implicit deny"),
            None
        );
        let net = |s: &str| Span::net(&s.parse().unwrap());
        let cut = intersect(
            &[net("10.0.0.0/8")],
            &[net("10.1.0.0/16"), net("192.0.2.0/24")],
        );
        assert_eq!(cut, vec![net("10.1.0.0/16")]);
        assert!(covered(&[net("10.1.2.0/24")], &[net("10.1.0.0/16")]));
        assert!(!covered(&[net("10.0.0.0/8")], &[net("10.1.0.0/16")]));
    }
}
