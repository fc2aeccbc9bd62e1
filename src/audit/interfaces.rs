//! A host's ruleset bound to the interfaces its node names (`[nodes.NAME.interfaces]`): each input
//! interface test becomes a test of the source address (the zones whose traffic arrives on the
//! interfaces it names), so that the format-blind evaluator and the comparison with the plan need
//! no notion of interfaces, as [`super::appliance::bind`] does with an appliance's zones.
//!
//! Traffic from a zone arrives on the interface(s) whose zone it is. For a source in a zone
//! behind named interfaces, a rule's interface test holds when it names all of them, fails when
//! it names none, and cannot be decided when it names some (the zone arrives both ways). A
//! source in a zone behind no named interface, or in no zone, cannot be decided; nor can a test
//! that names an interface the node does not name (what arrives on it is not said).

use std::collections::BTreeMap;

use super::appliance::bind::zone_spans;
use super::{Addrs, Cond, Family, IfName, Ruleset, Span, ifnames_text};
use crate::deployment::{Deployment, Node};

/// Where the sources of one piece of addresses arrive: the zones that hold it, and the node's
/// interfaces behind those zones.
struct Piece {
    span: Span,
    zones: Vec<usize>,
    interfaces: Vec<usize>,
}

/// The node's interfaces with the address pieces they receive, ready to bind tests.
pub struct Arrivals<'a> {
    dep: &'a Deployment,
    node: &'a Node,
    pieces: Vec<Piece>,
}

impl<'a> Arrivals<'a> {
    pub fn new(dep: &'a Deployment, node: &'a Node) -> Arrivals<'a> {
        let zones: Vec<Vec<Span>> = (0..dep.zones.len()).map(|z| zone_spans(dep, z)).collect();
        let mut pieces = Vec::new();
        for family in [Family::V4, Family::V6] {
            let mut cuts: Vec<u128> = vec![0];
            for s in zones.iter().flatten().filter(|s| s.family == family) {
                cuts.push(s.lo);
                if s.hi < family.max() {
                    cuts.push(s.hi + 1);
                }
            }
            cuts.sort_unstable();
            cuts.dedup();
            for (k, &lo) in cuts.iter().enumerate() {
                let hi = cuts.get(k + 1).map_or(family.max(), |next| next - 1);
                let span = Span { family, lo, hi };
                let held: Vec<usize> = (0..zones.len())
                    .filter(|&z| {
                        zones[z]
                            .iter()
                            .any(|s| s.family == family && s.lo <= lo && lo <= s.hi)
                    })
                    .collect();
                let interfaces = (0..node.interfaces.len())
                    .filter(|&i| node.interfaces[i].zones.iter().any(|z| held.contains(z)))
                    .collect();
                pieces.push(Piece {
                    span,
                    zones: held,
                    interfaces,
                });
            }
        }
        Arrivals { dep, node, pieces }
    }

    /// The condition an input interface test of `names` becomes.
    pub fn bind(&self, all: &[IfName]) -> Cond {
        let node = &self.node.name;
        let what = ifnames_text(all);
        // No source of a zone arrives on loopback: `lo` adds nothing, and a test of `lo` alone
        // stays as it is (it never holds for such traffic).
        let names: Vec<IfName> = all.iter().filter(|n| !n.is_lo()).cloned().collect();
        if names.is_empty() {
            return Cond::Iif(all.to_vec());
        }
        let named = |n: &IfName| self.node.interfaces.iter().any(|i| n.matches(&i.name));
        if let Some(n) = names.iter().find(|n| !named(n)) {
            return Cond::Unknown(format!(
                "input interface {what} ({n} is not one of {node}'s interfaces in \
                 [nodes.{node}.interfaces]: which zone's traffic arrives on it is not said)"
            ));
        }
        let mut yes = Vec::new();
        let mut unknown: BTreeMap<String, Vec<Span>> = BTreeMap::new();
        for p in &self.pieces {
            let zone_names = || {
                p.zones
                    .iter()
                    .map(|&z| self.dep.zones[z].name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let why = if p.zones.is_empty() {
                Some(format!(
                    "input interface {what} (the source is in no zone of the deployment: which of \
                     {node}'s interfaces it arrives on is not known)"
                ))
            } else if p.interfaces.is_empty() {
                Some(format!(
                    "input interface {what} (zone {} is behind none of {node}'s interfaces in \
                     [nodes.{node}.interfaces])",
                    zone_names()
                ))
            } else {
                let hit = |&i: &usize| {
                    let iface = &self.node.interfaces[i].name;
                    names.iter().any(|n| n.matches(iface))
                };
                let hits = p.interfaces.iter().filter(|i| hit(i)).count();
                if hits == p.interfaces.len() {
                    yes.push(p.span);
                    None
                } else if hits == 0 {
                    None
                } else {
                    let list: Vec<&str> = p
                        .interfaces
                        .iter()
                        .map(|&i| self.node.interfaces[i].name.as_str())
                        .collect();
                    Some(format!(
                        "input interface {what} (zone {} arrives on {} of {node}, which the rule \
                         does not treat alike)",
                        zone_names(),
                        list.join(" and ")
                    ))
                }
            };
            if let Some(why) = why {
                unknown.entry(why).or_default().push(p.span);
            }
        }
        Cond::IifZones {
            yes: Addrs::new(yes),
            unknown: unknown
                .into_iter()
                .map(|(why, spans)| (Addrs::new(spans), why))
                .collect(),
        }
    }
}

/// The ruleset with every input interface test bound to the zones behind `node`'s interfaces
/// (unchanged when the node names none: such tests stay "cannot decide"). Rules keep their
/// place, origin and spec, so decisions and `firewall --diff` name the export's rules.
pub fn bind(rs: &Ruleset, dep: &Deployment, node: &Node) -> Ruleset {
    let mut out = rs.clone();
    if node.interfaces.is_empty() {
        return out;
    }
    let arrivals = Arrivals::new(dep, node);
    // One bound condition per distinct test: a thousand `iifname "ens192"` share their sets.
    let mut done: Vec<(Vec<IfName>, Cond)> = Vec::new();
    for m in out
        .chains
        .iter_mut()
        .flat_map(|c| &mut c.rules)
        .flat_map(|r| &mut r.matches)
    {
        let Cond::Iif(names) = &m.cond else { continue };
        let bound = match done.iter().find(|(n, _)| n == names) {
            Some((_, c)) => c.clone(),
            None => {
                let c = arrivals.bind(names);
                done.push((names.clone(), c.clone()));
                c
            }
        };
        m.cond = bound;
    }
    out
}
