//! `report --compare OLD.json`: what changed since an earlier run, probe results and audits
//! alike: flows newly failing (verified or admitted before, not now), newly fixed, openings beyond
//! the plan that are new, and openings closed. Pure: two states in, the differences out.
//!
//! A port is compared with the same port from the same zone (probe results); an audited flow with
//! the same flow of the same firewall whose destination overlaps it (the parts of a network the
//! rules cut may differ between runs); an opening with the openings of the same firewall and
//! transport that cover its source and destination: its ports that none of them opened are new.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::audit::{Audit, Opening};

/// One planned port from one zone, as a run found it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PortState {
    pub zone: String,
    #[serde(default)]
    pub node: String,
    pub address: String,
    pub transport: String,
    pub port: u16,
    pub component: String,
    pub port_id: String,
    pub status: String,
}

/// What one run found: its probe results (when it had any) and its audits (when it had any).
#[derive(Debug, Clone, Default)]
pub struct State {
    pub ports: Option<Vec<PortState>>,
    pub audits: Option<Vec<Audit>>,
}

/// One thing that changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// `probes from zone agents`, or the audited firewall (`host firewall of node APP1`).
    pub place: String,
    /// The flow, ports or opening, one line.
    pub what: String,
    pub before: String,
    pub now: String,
}

impl Change {
    pub fn line(&self) -> String {
        format!(
            "{}: {} (before: {}; now: {})",
            self.place, self.what, self.before, self.now
        )
    }
}

/// The differences between an earlier run and this one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Drift {
    /// The earlier report or audit, as given.
    pub old: String,
    /// Something got worse: a flow newly failing, or an opening beyond the plan newly open.
    pub worse: bool,
    pub newly_failing: Vec<Change>,
    pub newly_fixed: Vec<Change>,
    pub newly_open: Vec<Change>,
    pub closed: Vec<Change>,
    /// What could not be compared (a firewall audited in only one of the runs, …).
    pub notes: Vec<String>,
}

impl Drift {
    /// `WORSE since old.json: 1 flow newly failing, 1 opening newly open; 0 fixed, 0 closed`, or
    /// `nothing worse since old.json: …`.
    pub fn verdict(&self) -> String {
        format!(
            "{} since {}: {} newly failing, {} newly open beyond the plan; {} newly fixed, {} closed",
            if self.worse { "WORSE" } else { "nothing worse" },
            self.old,
            self.newly_failing.len(),
            self.newly_open.len(),
            self.newly_fixed.len(),
            self.closed.len()
        )
    }
}

/// A probe status that is a failure (not verified, not untested).
fn failing(status: &str) -> bool {
    !matches!(status, "verified" | "untested")
}

/// The differences from `old` (named `name`) to `new`.
pub fn compare(name: &str, old: &State, new: &State) -> Drift {
    let mut d = Drift {
        old: name.to_string(),
        ..Drift::default()
    };
    match (&old.ports, &new.ports) {
        (Some(o), Some(n)) => probes(o, n, &mut d),
        (Some(_), None) => d
            .notes
            .push("the earlier run has probe results, this one none: probes not compared".into()),
        (None, Some(_)) => d
            .notes
            .push("this run has probe results, the earlier one none: probes not compared".into()),
        (None, None) => {}
    }
    match (&old.audits, &new.audits) {
        (Some(o), Some(n)) => audits(o, n, &mut d),
        (Some(_), None) => d
            .notes
            .push("the earlier run has audits, this one none: audits not compared".into()),
        (None, Some(_)) => d
            .notes
            .push("this run has audits, the earlier one none: audits not compared".into()),
        (None, None) => {}
    }
    d.worse = !d.newly_failing.is_empty() || !d.newly_open.is_empty();
    d
}

fn probes(old: &[PortState], new: &[PortState], d: &mut Drift) {
    let before: BTreeMap<PortKey, &str> = old
        .iter()
        .map(|p| (port_key(p), p.status.as_str()))
        .collect();
    // Ports that changed, grouped: one change per (zone, address, flow, before, now).
    // (kind, zone, address, node, transport, component, port id, the failing status)
    type Group<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
    );
    let mut groups: BTreeMap<Group, Vec<u16>> = BTreeMap::new();
    for p in new {
        let Some(&was) = before.get(&port_key(p)) else {
            continue;
        };
        let now = p.status.as_str();
        let kind = if was == "verified" && failing(now) {
            "failing"
        } else if failing(was) && now == "verified" {
            "fixed"
        } else {
            continue;
        };
        groups
            .entry((
                kind,
                &p.zone,
                &p.address,
                &p.node,
                &p.transport,
                &p.component,
                &p.port_id,
                if kind == "failing" { now } else { was },
            ))
            .or_default()
            .push(p.port);
    }
    for ((kind, zone, address, node, transport, component, port_id, status), mut ports) in groups {
        ports.sort_unstable();
        ports.dedup();
        let change = Change {
            place: format!("probes from zone {zone}"),
            what: format!(
                "{component}.{port_id} {transport} {} on {address}{}",
                super::port_runs(&ports),
                if node.is_empty() {
                    String::new()
                } else {
                    format!(" ({node})")
                }
            ),
            before: if kind == "failing" {
                "verified".into()
            } else {
                status.into()
            },
            now: if kind == "failing" {
                status.into()
            } else {
                "verified".into()
            },
        };
        if kind == "failing" {
            d.newly_failing.push(change);
        } else {
            d.newly_fixed.push(change);
        }
    }
}

type PortKey<'a> = (&'a str, &'a str, &'a str, u16, &'a str, &'a str);

fn port_key(p: &PortState) -> PortKey<'_> {
    (
        &p.zone,
        &p.address,
        &p.transport,
        p.port,
        &p.component,
        &p.port_id,
    )
}

fn audits(old: &[Audit], new: &[Audit], d: &mut Drift) {
    for a in new {
        let Some(o) = old.iter().find(|o| o.firewall == a.firewall) else {
            d.notes.push(format!(
                "{}: audited now, not in the earlier run (not compared)",
                a.firewall
            ));
            continue;
        };
        flows(o, a, d);
        d.newly_open
            .extend(uncovered(&a.firewall, &a.openings, &o.openings, true));
        d.closed
            .extend(uncovered(&a.firewall, &o.openings, &a.openings, false));
    }
    for o in old {
        if !new.iter().any(|a| a.firewall == o.firewall) {
            d.notes.push(format!(
                "{}: audited in the earlier run, not now (not compared)",
                o.firewall
            ));
        }
    }
}

/// Each flow row of `new` against the rows of the same flow in `old` whose destinations overlap
/// it: admitted by all of them before and not now is newly failing; not admitted by one of them
/// before and admitted now is newly fixed.
fn flows(old: &Audit, new: &Audit, d: &mut Drift) {
    fn key(f: &super::audit::AuditFlow) -> (&str, &str, &str, &str, &str) {
        (&f.zone, &f.transport, &f.ports, &f.component, &f.port_id)
    }
    // The earlier rows by flow, each with its destination read once.
    let mut by_flow: BTreeMap<_, Vec<(Span, &super::audit::AuditFlow)>> = BTreeMap::new();
    for o in &old.flows {
        by_flow
            .entry(key(o))
            .or_default()
            .push((Span::of(&o.address), o));
    }
    for f in &new.flows {
        let span = Span::of(&f.address);
        let before: Vec<&super::audit::AuditFlow> = by_flow
            .get(&key(f))
            .into_iter()
            .flatten()
            .filter(|(s, _)| s.overlaps(&span))
            .map(|(_, o)| *o)
            .collect();
        if before.is_empty() {
            continue;
        }
        let was_bad = before.iter().find(|o| !o.admitted());
        match (was_bad, f.admitted()) {
            (None, false) => d.newly_failing.push(Change {
                place: new.firewall.clone(),
                what: format!("{}: {}", f.line(), f.why()),
                before: "admitted".into(),
                now: f.status.clone(),
            }),
            (Some(o), true) => d.newly_fixed.push(Change {
                place: new.firewall.clone(),
                what: format!("{} by {}", f.line(), f.rule),
                before: o.status.clone(),
                now: "admitted".into(),
            }),
            _ => {}
        }
    }
}

/// The parts of the openings `these` that none of `others` (of the same transport, covering the
/// source and the destination) opened: each opening with its ports not covered, as one change.
/// `open` says which way: newly open (these are now's) or closed (these are the earlier ones).
fn uncovered(firewall: &str, these: &[Opening], others: &[Opening], open: bool) -> Vec<Change> {
    // The other openings read once: (transport, sources, addresses, ports).
    let others: Vec<(&str, Vec<Span>, Vec<Span>, Ports)> = others
        .iter()
        .map(|c| {
            (
                c.transport.as_str(),
                c.sources.iter().map(|x| Span::of(x)).collect(),
                c.addresses.iter().map(|x| Span::of(x)).collect(),
                Ports::of(&c.ports),
            )
        })
        .collect();
    let mut out = Vec::new();
    for o in these {
        let mut sources = Vec::new();
        let mut addresses = Vec::new();
        let mut left = Ports::default();
        for s in &o.sources {
            for a in &o.addresses {
                let (ss, aa) = (Span::of(s), Span::of(a));
                let mut ports = Ports::of(&o.ports);
                for (_, _, _, p) in others.iter().filter(|(t, srcs, dsts, _)| {
                    *t == o.transport
                        && srcs.iter().any(|x| x.covers(&ss))
                        && dsts.iter().any(|x| x.covers(&aa))
                }) {
                    ports = ports.minus(p);
                }
                if !ports.is_empty() {
                    if !sources.contains(s) {
                        sources.push(s.clone());
                    }
                    if !addresses.contains(a) {
                        addresses.push(a.clone());
                    }
                    left = left.union(&ports);
                }
            }
        }
        if left.is_empty() {
            continue;
        }
        let what = Opening {
            transport: o.transport.clone(),
            ports: left.text(),
            sources,
            addresses,
            rule: o.rule.clone(),
        }
        .line();
        let by = format!("open by {}", o.rule);
        out.push(Change {
            place: firewall.to_string(),
            what,
            before: if open { "closed".into() } else { by.clone() },
            now: if open { by } else { "closed".into() },
        });
    }
    out
}

/// An address, network or `a-b` range as numbers (IPv6 apart), or a text the audit wrote that
/// is none of these (compared as text).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Span {
    Range(bool, u128, u128),
    Text(String),
}

fn num(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(v) => (false, u128::from(u32::from(v))),
        IpAddr::V6(v) => (true, u128::from(v)),
    }
}

impl Span {
    fn of(text: &str) -> Span {
        let t = text.trim();
        if let Ok(a) = t.parse::<IpAddr>() {
            let (v6, n) = num(a);
            return Span::Range(v6, n, n);
        }
        if let Ok(net) = t.parse::<IpNet>() {
            let (v6, lo) = num(net.network());
            let (_, hi) = num(net.broadcast());
            return Span::Range(v6, lo, hi);
        }
        if let Some((a, b)) = t.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
                let ((f1, lo), (f2, hi)) = (num(a), num(b));
                if f1 == f2 && lo <= hi {
                    return Span::Range(f1, lo, hi);
                }
            }
        }
        Span::Text(t.to_string())
    }

    fn covers(&self, inner: &Span) -> bool {
        match (self, inner) {
            (Span::Range(f1, lo1, hi1), Span::Range(f2, lo2, hi2)) => {
                f1 == f2 && lo1 <= lo2 && hi2 <= hi1
            }
            (a, b) => a == b,
        }
    }

    fn overlaps(&self, other: &Span) -> bool {
        match (self, other) {
            (Span::Range(f1, lo1, hi1), Span::Range(f2, lo2, hi2)) => {
                f1 == f2 && lo1 <= hi2 && lo2 <= hi1
            }
            (a, b) => a == b,
        }
    }
}

/// A set of ports as sorted, disjoint, non-adjacent intervals; or a text that is no port list
/// (compared as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ports {
    runs: Vec<(u16, u16)>,
    text: Option<String>,
}

impl Ports {
    fn of(text: &str) -> Ports {
        let Some(ranges) = super::parse_port_runs(text.trim()) else {
            return Ports {
                runs: Vec::new(),
                text: Some(text.trim().to_string()),
            };
        };
        let mut runs = Vec::new();
        for r in ranges {
            if r.parity().is_some() {
                runs.extend(r.ports().map(|p| (p, p)));
            } else {
                runs.push((r.lo(), r.hi()));
            }
        }
        Ports::normal(runs)
    }

    fn normal(mut runs: Vec<(u16, u16)>) -> Ports {
        runs.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (lo, hi) in runs {
            match out.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Ports {
            runs: out,
            text: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.text.is_none()
    }

    fn union(&self, other: &Ports) -> Ports {
        let mut p = Ports::normal(self.runs.iter().chain(&other.runs).copied().collect());
        p.text = self.text.clone().or_else(|| other.text.clone());
        p
    }

    fn minus(&self, other: &Ports) -> Ports {
        let text = match (&self.text, &other.text) {
            (Some(a), Some(b)) if a == b => None,
            (a, _) => a.clone(),
        };
        let mut out = Vec::new();
        for &(lo, hi) in &self.runs {
            let mut lo = u32::from(lo);
            let hi = u32::from(hi);
            for &(olo, ohi) in &other.runs {
                let (olo, ohi) = (u32::from(olo), u32::from(ohi));
                if ohi < lo || olo > hi {
                    continue;
                }
                if olo > lo {
                    out.push((lo as u16, (olo - 1) as u16));
                }
                lo = ohi + 1;
                if lo > hi {
                    break;
                }
            }
            if lo <= hi {
                out.push((lo as u16, hi as u16));
            }
        }
        Ports { runs: out, text }
    }

    fn text(&self) -> String {
        let mut parts: Vec<String> = self
            .runs
            .iter()
            .map(|&(lo, hi)| {
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        parts.extend(self.text.clone());
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opening(sources: &[&str], addresses: &[&str], ports: &str) -> Opening {
        Opening {
            transport: "tcp".into(),
            ports: ports.into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            addresses: addresses.iter().map(|s| s.to_string()).collect(),
            rule: "line 9: -A INPUT -j ACCEPT".into(),
        }
    }

    #[test]
    fn port_sets_subtract_ranges_and_parity() {
        let p = Ports::of("1-100").minus(&Ports::of("10-20, 50"));
        assert_eq!(p.text(), "1-9, 21-49, 51-100");
        let even = Ports::of("5004-5010 even").minus(&Ports::of("5006"));
        assert_eq!(even.text(), "5004, 5008, 5010");
        assert!(Ports::of("22").minus(&Ports::of("1-65535")).is_empty());
        assert_eq!(Ports::of("any").minus(&Ports::of("any")), Ports::default());
    }

    #[test]
    fn an_opening_inside_an_earlier_wider_one_is_not_new() {
        let old = [opening(&["10.0.0.0/8"], &["10.88.1.11"], "1-65535")];
        let new = [
            opening(&["10.88.5.0/24"], &["10.88.1.11"], "1025-2000"),
            opening(&["10.88.5.0/24", "192.0.2.0/24"], &["10.88.1.11"], "22"),
        ];
        let changes = uncovered("fw", &new, &old, true);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].what, "from 192.0.2.0/24 to 10.88.1.11 tcp/22");
        // The other way: the wider earlier opening is closed (no opening now covers its
        // sources: narrower ones do not count as covering it).
        let closed = uncovered("fw", &old, &new, false);
        assert_eq!(closed[0].now, "closed");
        assert_eq!(closed[0].what, "from 10.0.0.0/8 to 10.88.1.11 tcp/1-65535");
    }

    #[test]
    fn a_port_verified_before_and_filtered_now_is_newly_failing() {
        let port = |port: u16, status: &str| PortState {
            zone: "agents".into(),
            node: "APP1".into(),
            address: "10.0.0.1".into(),
            transport: "udp".into(),
            port,
            component: "mrs".into(),
            port_id: "area".into(),
            status: status.into(),
        };
        let old = State {
            ports: Some((8000..8004).map(|p| port(p, "verified")).collect()),
            audits: None,
        };
        let new = State {
            ports: Some(
                (8000..8004)
                    .map(|p| port(p, if p >= 8002 { "filtered" } else { "verified" }))
                    .collect(),
            ),
            audits: Some(Vec::new()),
        };
        let d = compare("old.json", &old, &new);
        assert!(d.worse);
        assert_eq!(
            d.newly_failing[0].line(),
            "probes from zone agents: mrs.area udp 8002-8003 on 10.0.0.1 (APP1) (before: verified; now: filtered)"
        );
        assert_eq!(
            d.notes,
            ["this run has audits, the earlier one none: audits not compared"]
        );
        let back = compare("new.json", &new, &old);
        assert!(!back.worse);
        assert_eq!(back.newly_fixed.len(), 1);
    }

    fn holds(p: &Ports, port: u16) -> bool {
        p.runs.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    proptest::proptest! {
        #[test]
        fn minus_and_union_are_the_set_operations(
            a in proptest::collection::vec((1u16..=65535, 0u16..300), 0..6),
            b in proptest::collection::vec((1u16..=65535, 0u16..300), 0..6),
            probes in proptest::collection::vec(1u16..=65535, 0..64),
        ) {
            let set = |v: &[(u16, u16)]| Ports::normal(
                v.iter().map(|&(lo, n)| (lo, lo.saturating_add(n))).collect(),
            );
            let (pa, pb) = (set(&a), set(&b));
            let (minus, union) = (pa.minus(&pb), pa.union(&pb));
            // Back through the text, as the report writes it.
            let minus_back = Ports::of(&minus.text());
            let edges = a.iter().chain(&b).flat_map(|&(lo, n)| {
                let hi = lo.saturating_add(n);
                [lo, hi, lo.saturating_sub(1), hi.saturating_add(1)]
            });
            for port in probes.into_iter().chain(edges).filter(|&p| p > 0) {
                proptest::prop_assert_eq!(holds(&minus, port), holds(&pa, port) && !holds(&pb, port));
                proptest::prop_assert_eq!(holds(&minus_back, port), holds(&minus, port));
                proptest::prop_assert_eq!(holds(&union, port), holds(&pa, port) || holds(&pb, port));
            }
        }

        #[test]
        fn no_text_panics_the_drift(
            texts in proptest::collection::vec("\\PC{0,20}", 0..8),
        ) {
            let o: Vec<Opening> = texts
                .chunks(2)
                .map(|c| opening(&[c[0].as_str()], &[c.last().unwrap().as_str()], &c[0]))
                .collect();
            let _ = uncovered("fw", &o, &o[..o.len() / 2], true);
            for t in &texts {
                let _ = Span::of(t).covers(&Span::of(t));
                let _ = Ports::of(t).minus(&Ports::of(t)).text();
            }
        }
    }

    #[test]
    fn addresses_cover_and_overlap_by_range() {
        let net = Span::of("10.88.2.0/24");
        assert!(net.covers(&Span::of("10.88.2.5-10.88.2.9")));
        assert!(net.overlaps(&Span::of("10.88.2.128/25")));
        assert!(!net.covers(&Span::of("10.88.0.0/16")));
        assert!(!Span::of("::/0").covers(&Span::of("10.0.0.1")));
        assert!(Span::of("Any").covers(&Span::of("Any")));
    }
}
