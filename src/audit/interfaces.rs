//! A host's ruleset bound to the interfaces its node names (`[nodes.NAME.interfaces]`): each input
//! interface test becomes a test of the source address (the zones whose traffic arrives on the
//! interfaces it names), so that the format-blind evaluator and the comparison with the plan need
//! no notion of interfaces, as [`super::appliance::bind`] does with an appliance's zones.
//!
//! Traffic from a zone arrives on the interface(s) whose zones include it. For a source in a zone
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
struct Arrivals<'a> {
    dep: &'a Deployment,
    node: &'a Node,
    pieces: Vec<Piece>,
}

impl<'a> Arrivals<'a> {
    fn new(dep: &'a Deployment, node: &'a Node) -> Arrivals<'a> {
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
    fn bind(&self, all: &[IfName]) -> Cond {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Outcome, read};
    use crate::catalog::{Catalog, Transport};
    use crate::diag::Source;

    const DEP: &str = r#"
[zones.dmz]
cidrs = ["10.50.0.0/24"]
roles = ["trunk"]
[zones.datacenter]
cidrs = ["10.1.0.0/16"]
roles = ["servers"]
[zones.admins]
cidrs = ["10.1.9.0/24"]
roles = ["admins"]
[zones.agents]
cidrs = ["10.20.0.0/16"]
roles = ["clients"]
[zones.carrier]
cidrs = ["10.60.0.0/24"]
roles = ["trunk"]
[nodes.SBC1]
address = "10.50.0.10"
zone = "dmz"
scc = false
[nodes.SBC1.interfaces]
ens192 = "dmz"
ens224 = ["datacenter", "admins"]
ens256 = "carrier"
ens257 = "carrier"
"#;

    /// The verdict for TCP to `port` from `src`, as the audit decides it (no interface said).
    fn audit(rules: &str, src: &str, port: u16) -> Outcome {
        let dep = crate::deployment::parse(&Source::new("d.toml", DEP), &Catalog::embedded())
            .unwrap_or_else(|e| panic!("{e}"));
        let text = format!(
            "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n{rules}\nCOMMIT\n"
        );
        let rs = read("t.rules", &text).unwrap_or_else(|e| panic!("{e}"));
        let bound = bind(&rs, &dep, dep.node("SBC1").unwrap());
        bound
            .evaluate(&crate::audit::tests::pkt(
                src,
                "10.50.0.10",
                Transport::Tcp,
                port,
            ))
            .outcome
    }

    fn undecided(o: Outcome) -> String {
        match o {
            Outcome::Undecided(why) => why,
            other => panic!("decided: {other:?}"),
        }
    }

    #[test]
    fn a_zone_arrives_on_its_interfaces() {
        let r = "-A INPUT -i ens192 -p tcp --dport 5060 -j ACCEPT\n\
                 -A INPUT ! -i ens192 -p tcp --dport 22 -j ACCEPT";
        assert_eq!(audit(r, "10.50.0.7", 5060), Outcome::Accept);
        assert_eq!(audit(r, "10.1.0.7", 5060), Outcome::Drop);
        // The most specific zone: admins inside the datacenter's /16, both behind ens224.
        assert_eq!(audit(r, "10.1.9.7", 22), Outcome::Accept);
        assert_eq!(audit(r, "10.50.0.7", 22), Outcome::Drop);
        // Both of the carrier's interfaces are named by a prefix: decided.
        let p = "-A INPUT -i ens25+ -p tcp --dport 5060 -j ACCEPT";
        assert_eq!(audit(p, "10.60.0.1", 5060), Outcome::Accept);
        assert_eq!(audit(p, "10.50.0.1", 5060), Outcome::Drop);
        // `lo` never holds for a zone's traffic, and does not make a test undecided.
        let lo = "-A INPUT -i lo -j ACCEPT";
        assert_eq!(audit(lo, "8.8.8.8", 1), Outcome::Drop);
    }

    #[test]
    fn what_stays_undecided_says_why() {
        let r = "-A INPUT -i ens256 -p tcp --dport 5060 -j ACCEPT";
        // The carrier arrives on ens256 and ens257: the rule names only one.
        let why = undecided(audit(r, "10.60.0.1", 5060));
        assert!(
            why.contains("zone carrier arrives on ens256 and ens257"),
            "{why}"
        );
        // The agents are behind no named interface.
        let why = undecided(audit(r, "10.20.0.1", 5060));
        assert!(
            why.starts_with("input interface ens256 (zone agents is behind none"),
            "{why}"
        );
        // An address in no zone.
        let why = undecided(audit(r, "8.8.8.8", 5060));
        assert!(why.contains("in no zone of the deployment"), "{why}");
        // The datacenter is decided: it never arrives on ens256.
        assert_eq!(audit(r, "10.1.0.1", 5060), Outcome::Drop);
        // An interface the node does not name, even for a zone whose interfaces are known.
        let why = undecided(audit(
            "-A INPUT -i docker0 -p tcp --dport 80 -j ACCEPT",
            "10.1.0.1",
            80,
        ));
        assert!(
            why.starts_with("input interface docker0 (docker0 is not one of SBC1's"),
            "{why}"
        );
        // A rule that cannot match the port decides nothing either way.
        assert_eq!(audit(r, "8.8.8.8", 80), Outcome::Drop);
    }

    #[test]
    fn a_node_without_interfaces_keeps_its_tests() {
        let dep = crate::deployment::parse(
            &Source::new(
                "d.toml",
                DEP.replace("[nodes.SBC1.interfaces]", "[nodes.SBC1.x]")
                    .split("[nodes.SBC1.x]")
                    .next()
                    .unwrap()
                    .to_string(),
            ),
            &Catalog::embedded(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let rs = read(
            "t.rules",
            "*filter\n:INPUT DROP [0:0]\n-A INPUT -i ens192 -j ACCEPT\nCOMMIT\n",
        )
        .unwrap();
        assert_eq!(bind(&rs, &dep, dep.node("SBC1").unwrap()), rs);
    }
}
