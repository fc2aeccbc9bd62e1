//! An appliance's ruleset bound to the deployment's zones (`[firewalls.NAME]`): each of its
//! names (security zone, `nameif`, interface) becomes the addresses of the deployment zones
//! mapped to it, so that the format-blind evaluator and the comparison with the plan need no
//! notion of zones. Traffic that does not cross the firewall (inside one zone, or from or to
//! addresses outside its zones) is said to be outside it.

use std::collections::BTreeSet;

use super::{daddr, saddr};
use crate::audit::{Action, Cond, Match, Rule, Ruleset, Span};
use crate::deployment::{Deployment, Firewall};
use crate::flows::{Crossings, Flow, Shared};

/// One zone the firewall separates: the deployment's name, the appliance's, its addresses.
#[derive(Debug, Clone)]
pub struct BoundZone {
    pub zone: String,
    pub name: String,
    pub spans: Vec<Span>,
}

/// Why a ruleset cannot be bound: a zone whose appliance name the configuration never uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmapped {
    /// (deployment zone, appliance name looked for)
    pub zones: Vec<(String, String)>,
    /// Every name the configuration uses, sorted.
    pub known: Vec<String>,
}

/// The names (zones, `nameif`s, interfaces) the ruleset's rules test.
pub fn names(rs: &Ruleset) -> BTreeSet<String> {
    rs.chains
        .iter()
        .flat_map(|c| &c.rules)
        .flat_map(|r| &r.matches)
        .filter_map(|m| match &m.cond {
            Cond::Side { names, .. } => Some(names.iter().cloned()),
            _ => None,
        })
        .flatten()
        .collect()
}

/// The ruleset with every side condition replaced by the addresses of the zones mapped to it,
/// and, first in each base chain, rules that set aside what does not cross the firewall.
pub fn bind(rs: &Ruleset, firewall: &str, zones: &[BoundZone]) -> Result<Ruleset, Unmapped> {
    let known = names(rs);
    let missing: Vec<(String, String)> = zones
        .iter()
        .filter(|z| !known.contains(&z.name))
        .map(|z| (z.zone.clone(), z.name.clone()))
        .collect();
    if !missing.is_empty() {
        return Err(Unmapped {
            zones: missing,
            known: known.into_iter().collect(),
        });
    }
    let spans_of = |names: &[String]| -> Vec<Span> {
        zones
            .iter()
            .filter(|z| names.contains(&z.name))
            .flat_map(|z| z.spans.iter().copied())
            .collect()
    };
    let all: Vec<Span> = zones.iter().flat_map(|z| z.spans.iter().copied()).collect();
    let outside = |m: Vec<Match>, why: String| Rule {
        matches: m,
        action: Action::Drop,
        origin: why,
        spec: String::new(),
    };
    let mut out = rs.clone();
    for chain in &mut out.chains {
        let mut rules = Vec::with_capacity(chain.rules.len() + zones.len() + 2);
        if chain.base.is_some() {
            // A source in none of its zones is left to the rules: a permit from `any` opens to
            // it too (an opening the audit lists), and a zone's rules do not match it.
            rules.push(outside(
                vec![Match::not(daddr(all.clone()), true)],
                format!("not through firewall {firewall}: the destination is in none of its zones"),
            ));
            for z in zones {
                rules.push(outside(
                    vec![
                        Match::is(saddr(z.spans.clone())),
                        Match::is(daddr(z.spans.clone())),
                    ],
                    format!("not through firewall {firewall}: inside zone {}", z.zone),
                ));
            }
        }
        for r in &chain.rules {
            // What the appliance does with traffic entering where no rule says (an ASA
            // interface without an access-group) is not known; for a source in none of its
            // zones that is where it would enter, so such a source stays outside it, as a
            // packet that the deployment does not route through it.
            let enters = |m: &Match| matches!(m.cond, Cond::Side { output: false, .. });
            if matches!(r.action, Action::Unknown(_)) && !r.matches.iter().any(enters) {
                rules.push(outside(
                    vec![Match::not(saddr(all.clone()), true)],
                    format!("not through firewall {firewall}: the source is in none of its zones"),
                ));
            }
            // A same-side test becomes one rule per zone: from it and to it.
            if r.matches.iter().any(|m| m.cond == Cond::SameSide) {
                for z in zones {
                    let mut copy = r.clone();
                    copy.matches.retain(|m| m.cond != Cond::SameSide);
                    copy.matches.push(Match::is(saddr(z.spans.clone())));
                    copy.matches.push(Match::is(daddr(z.spans.clone())));
                    rules.push(copy);
                }
                continue;
            }
            let mut copy = r.clone();
            for m in &mut copy.matches {
                if let Cond::Side { output, names } = &m.cond {
                    let spans = spans_of(names);
                    m.cond = if *output { daddr(spans) } else { saddr(spans) };
                }
            }
            rules.push(copy);
        }
        chain.rules = rules;
    }
    Ok(out)
}

/// The zones `firewall` separates, with the appliance's names and the zones' addresses. An
/// address belongs to the most specific zone that holds it: a zone of `0.0.0.0/0` (the internet)
/// is every address but those of the zones inside it.
pub fn zones_of(dep: &Deployment, firewall: &Firewall) -> Vec<BoundZone> {
    firewall
        .zones
        .iter()
        .map(|z| BoundZone {
            zone: dep.zones[z.zone].name.clone(),
            name: z.name.clone(),
            spans: zone_spans(dep, z.zone),
        })
        .collect()
}

/// The intervals with `cut` taken out.
/// The addresses of zone `zone` (an index into [`Deployment::zones`]): its networks but those
/// of the zones inside them (an address belongs to the most specific zone that holds it).
pub fn zone_spans(dep: &Deployment, zone: usize) -> Vec<Span> {
    let own = &dep.zones[zone].cidrs;
    let mut spans: Vec<Span> = own.iter().map(Span::net).collect();
    for inner in dep.zones.iter().flat_map(|z| &z.cidrs) {
        if own
            .iter()
            .any(|o| o.contains(inner) && o.prefix_len() < inner.prefix_len())
        {
            spans = minus(&spans, &Span::net(inner));
        }
    }
    spans
}

/// `spans` without the addresses of `cut`.
pub fn minus(spans: &[Span], cut: &Span) -> Vec<Span> {
    let mut out = Vec::with_capacity(spans.len() + 1);
    for s in spans {
        if s.family != cut.family || cut.hi < s.lo || cut.lo > s.hi {
            out.push(*s);
            continue;
        }
        if cut.lo > s.lo {
            out.push(Span {
                hi: cut.lo - 1,
                ..*s
            });
        }
        if cut.hi < s.hi {
            out.push(Span {
                lo: cut.hi + 1,
                ..*s
            });
        }
    }
    out
}

/// The flows that cross `firewall`, each from its sources in the zones it crosses from (a
/// flow from several zones, one of them the destination's own, keeps only the others; a zone's
/// addresses are those of [`zones_of`], so the internet's are not the other zones').
pub fn crossing(dep: &Deployment, firewall: &Firewall, flows: Vec<Flow>) -> Vec<Flow> {
    let crossings = Crossings::new(dep);
    let bound = zones_of(dep, firewall);
    let mut out = Vec::new();
    for f in flows {
        let pairs = crossings.through(&f, firewall);
        if pairs.is_empty() {
            continue;
        }
        let mut from: Vec<String> = Vec::new();
        for (z, _) in pairs {
            let n = &dep.zones[z].name;
            if !from.contains(n) {
                from.push(n.clone());
            }
        }
        // The zone's addresses that are the flow's sources: all of them for a role's flow, only
        // the hosts for a flow from some hosts (a trunk peer's, from SIP Bridge's unit address).
        // CIDRs either nest or are apart: their intersection is the smaller one.
        let nets: Vec<ipnet::IpNet> = bound
            .iter()
            .filter(|b| from.contains(&b.zone))
            .flat_map(|b| b.spans.iter().flat_map(|s| s.cidrs()))
            .flat_map(|z| {
                (f.sources.iter()).filter_map(move |s| {
                    if z.contains(s) {
                        Some(*s)
                    } else if s.contains(&z) {
                        Some(z)
                    } else {
                        None
                    }
                })
            })
            .collect();
        let nets = ipnet::IpNet::aggregate(&nets);
        let mut g = f.clone();
        if nets[..] != f.sources[..] {
            g.sources = Shared::new(nets);
        }
        if from.len() < f.source_zones.len() {
            g.source_zones = Shared::new(from);
        }
        out.push(g);
    }
    out
}
