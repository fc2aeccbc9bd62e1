//! Flows: who must reach which address on which ports, derived from the plan and the zones.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::catalog::{Catalog, Role, Transport};
use crate::deployment::Deployment;
use crate::plan::{Host, Plan};
use crate::range::PortRange;

/// One permitted connection: sources of one role to one destination, one transport, one range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flow {
    pub role: Role,
    /// The zones that carry the role (for `servers`, plus the system's own addresses).
    pub source_zones: Vec<String>,
    /// The role's networks, smallest covering list, sorted.
    pub sources: Vec<IpNet>,
    /// The node (or client zone) whose firewall admits the flow.
    pub node: String,
    /// The destination networks: one host address for a server, the zone's CIDRs for workstations.
    pub destination: Vec<IpNet>,
    pub workstations: bool,
    pub unit: Option<String>,
    pub transport: Transport,
    #[serde(serialize_with = "ser_range")]
    pub ports: PortRange,
    pub component: String,
    /// The catalog port ids the flow carries (more than one where adjacent ranges merged).
    pub port_ids: Vec<String>,
    /// The catalog's usage text(s).
    pub purpose: String,
}

fn ser_range<S: serde::Serializer>(r: &PortRange, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Ports", 3)?;
    st.serialize_field("first", &r.lo())?;
    st.serialize_field("last", &r.hi())?;
    st.serialize_field("parity", &r.parity())?;
    st.end()
}

/// An address for people and rules: a host network without its prefix length, any other as
/// `addr/len`.
pub fn net_text(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

impl Flow {
    pub fn port_id_text(&self) -> String {
        self.port_ids.join("+")
    }

    /// `component.port-id` (joined with `+` for merged flows): what every generated rule names.
    pub fn label(&self) -> String {
        format!("{}.{}", self.component, self.port_id_text())
    }
}

/// The networks a role's traffic comes from: its zones' CIDRs, and for `servers` every node and
/// unit address not already inside one of them.
pub fn sources(dep: &Deployment, role: Role) -> (Vec<String>, Vec<IpNet>) {
    let zones: Vec<&crate::deployment::Zone> = dep.zones_with(role).collect();
    let mut nets: Vec<IpNet> = zones.iter().flat_map(|z| z.cidrs.iter().copied()).collect();
    let mut names: Vec<String> = zones.iter().map(|z| z.name.clone()).collect();
    if role == Role::Servers {
        let covered = |a: &IpAddr, nets: &[IpNet]| nets.iter().any(|n| n.contains(a));
        let zone_nets = nets.clone();
        let mut extra = false;
        let own = dep
            .nodes
            .iter()
            .map(|n| n.address)
            .chain(dep.units.iter().map(|u| u.address));
        for a in own {
            if !covered(&a, &zone_nets) {
                nets.push(IpNet::from(a));
                extra = true;
            }
        }
        if extra {
            names.push("(system addresses)".to_string());
        }
    }
    (names, IpNet::aggregate(&nets))
}

/// Every flow of the plan, in plan order, one per (binding, role), with adjacent ranges of one
/// component merged (CDT's even RTP and odd RTCP become 5004-5031; SIP's 5060 and 5061 over TCP
/// become 5060-5061) when the sources are the same.
pub fn flows(dep: &Deployment, catalog: &Catalog, plan: &Plan) -> Vec<Flow> {
    let mut role_sources: BTreeMap<Role, (Vec<String>, Vec<IpNet>)> = BTreeMap::new();
    let mut out: Vec<Flow> = Vec::new();
    // Earlier flows that a new one could merge with, by everything but the ports: a lookup, not a
    // scan of every flow so far (a 10,000-node system has tens of thousands of flows).
    type Key = (Role, String, Vec<IpNet>, Option<String>, Transport, String);
    let mut by_key: HashMap<Key, Vec<usize>> = HashMap::new();
    for b in &plan.bindings {
        let purpose = catalog
            .component(&b.component)
            .and_then(|c| c.port(&b.port_id))
            .map_or_else(String::new, |p| p.usage.clone());
        let (destination, workstations) = match &b.host {
            Host::Node { address, .. } => (vec![IpNet::from(*address)], false),
            Host::Workstations { cidrs, .. } => (cidrs.clone(), true),
        };
        for &role in &b.from {
            let (zones, nets) = role_sources
                .entry(role)
                .or_insert_with(|| sources(dep, role))
                .clone();
            if nets.is_empty() {
                continue; // nobody carries the role: `check` reports it (C105)
            }
            let flow = Flow {
                role,
                source_zones: zones,
                sources: nets,
                node: b.host.name().to_string(),
                destination: destination.clone(),
                workstations,
                unit: b.unit.clone(),
                transport: b.transport,
                ports: b.ports,
                component: b.component.clone(),
                port_ids: vec![b.port_id.clone()],
                purpose: purpose.clone(),
            };
            let key: Key = (
                role,
                flow.node.clone(),
                flow.destination.clone(),
                flow.unit.clone(),
                flow.transport,
                flow.component.clone(),
            );
            let candidates = by_key.entry(key).or_default();
            let merged = candidates
                .iter()
                .rev()
                .find_map(|&i| union(out[i].ports, flow.ports).map(|u| (i, u)));
            if let Some((i, ports)) = merged {
                let prev = &mut out[i];
                prev.ports = ports;
                prev.port_ids.push(b.port_id.clone());
                if prev.purpose != flow.purpose {
                    prev.purpose = format!("{}; {}", prev.purpose, flow.purpose);
                }
                continue;
            }
            candidates.push(out.len());
            out.push(flow);
        }
    }
    out
}

/// The union of two ranges when it is itself one range: adjacent or overlapping plain ranges, or
/// an even and an odd range that interleave into one plain range.
pub fn union(a: PortRange, b: PortRange) -> Option<PortRange> {
    let plain = |r: PortRange| r.parity().is_none() || r.is_single();
    let (lo, hi) = (a.lo().min(b.lo()), a.hi().max(b.hi()));
    if plain(a) && plain(b) {
        let (first, second) = if a.lo() <= b.lo() { (a, b) } else { (b, a) };
        if u32::from(second.lo()) <= u32::from(first.hi()) + 1 {
            return PortRange::new(lo, hi, None).ok();
        }
        return None;
    }
    match (a.parity(), b.parity()) {
        (Some(pa), Some(pb)) if pa != pb => {
            let close = a.lo().abs_diff(b.lo()) == 1 && a.hi().abs_diff(b.hi()) == 1;
            close.then(|| PortRange::new(lo, hi, None).ok()).flatten()
        }
        _ => None,
    }
}

/// The flows a network firewall between zones needs: the same flow to a unit's virtual IP appears
/// once per instance node in [`flows`]; here once.
pub fn network_flows(flows: &[Flow]) -> Vec<Flow> {
    let mut seen = std::collections::HashSet::new();
    flows
        .iter()
        .filter(|f| {
            seen.insert((
                f.role,
                f.destination.clone(),
                f.transport,
                f.ports,
                f.component.clone(),
                f.port_ids.clone(),
            ))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::Parity;

    #[test]
    fn unions() {
        let even = PortRange::new(5004, 5030, Some(Parity::Even)).unwrap();
        let odd = PortRange::new(5005, 5031, Some(Parity::Odd)).unwrap();
        assert_eq!(union(even, odd).unwrap().to_string(), "5004-5031");
        let p = |n| PortRange::single(n).unwrap();
        assert_eq!(union(p(5060), p(5061)).unwrap().to_string(), "5060-5061");
        assert_eq!(union(p(5060), p(5062)), None);
        assert_eq!(union(even, p(5031)), None);
    }
}
