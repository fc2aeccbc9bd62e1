//! Flows: who must reach which address on which ports, derived from the plan and the zones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use crate::catalog::{Catalog, Role, Transport};
use crate::deployment::{Deployment, Firewall};
use crate::plan::{Host, Origin, Plan};
use crate::range::PortRange;

/// A list shared by every flow from the same sources: the zones of a role (thousands on a large
/// system) are built once and shared, not copied into every flow (DESIGN: a linear model).
///
/// It reads like a `Vec` (it derefs to one). Cloning a [`Flow`] shares it; `.clone()` on the
/// field itself copies the list into a `Vec` (what a generator keeping its own list wants).
/// `Shared::share` is the cheap copy.
#[derive(PartialEq, Eq, Hash)]
pub struct Shared<T>(Arc<Vec<T>>);

impl<T> Shared<T> {
    pub fn new(v: Vec<T>) -> Shared<T> {
        Shared(Arc::new(v))
    }

    /// Another handle on the same list (no copy).
    pub fn share(&self) -> Shared<T> {
        Shared(Arc::clone(&self.0))
    }

    /// Whether two handles hold the very same list.
    pub fn same(&self, other: &Shared<T>) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The identity of the list (equal for handles that are [`Shared::same`]): a map key for
    /// "already seen this list" without hashing its contents.
    fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }
}

impl<T> Deref for Shared<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T> From<Vec<T>> for Shared<T> {
    fn from(v: Vec<T>) -> Shared<T> {
        Shared::new(v)
    }
}

impl<T> FromIterator<T> for Shared<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Shared<T> {
        Shared::new(iter.into_iter().collect())
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T: Serialize> Serialize for Shared<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'a, T> IntoIterator for &'a Shared<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One permitted connection: sources of one role (or the zones a site service names) to one
/// destination, one transport, one range.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Flow {
    /// The role of the sources; [`Role::Zones`] for a site service from named zones.
    pub role: Role,
    /// The zones that carry the role (for `servers`, plus the system's own addresses), or the
    /// zones a site service names. Shared by every flow from the same sources.
    pub source_zones: Shared<String>,
    /// The sources' networks, smallest covering list, sorted. Shared like `source_zones`.
    pub sources: Shared<IpNet>,
    /// The node (or client zone) whose firewall admits the flow.
    pub node: String,
    /// The destination networks: one host address for a server, the zone's CIDRs for workstations.
    pub destination: Vec<IpNet>,
    pub workstations: bool,
    pub unit: Option<String>,
    pub transport: Transport,
    #[serde(serialize_with = "ser_range")]
    pub ports: PortRange,
    /// The catalog component, or `service` for a site service.
    pub component: String,
    /// The catalog port ids the flow carries (more than one where adjacent ranges merged); a
    /// site service's name.
    pub port_ids: Vec<String>,
    /// The catalog's usage text(s), or a site service's note.
    pub purpose: String,
}

impl Clone for Flow {
    /// Shares the source lists.
    fn clone(&self) -> Flow {
        Flow {
            role: self.role,
            source_zones: self.source_zones.share(),
            sources: self.sources.share(),
            node: self.node.clone(),
            destination: self.destination.clone(),
            workstations: self.workstations,
            unit: self.unit.clone(),
            transport: self.transport,
            ports: self.ports,
            component: self.component.clone(),
            port_ids: self.port_ids.clone(),
            purpose: self.purpose.clone(),
        }
    }
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

    /// The key of the flow's sources in [`Document::sources`]: the role's name, or
    /// `zones:A+B` for a site service from named zones.
    ///
    /// A trunk peer's flow comes only from some hosts of its role (SIP Bridge's or MRS's unit
    /// addresses): `servers:10.10.0.101`.
    pub fn source_key(&self) -> String {
        match self.role {
            Role::Zones => format!("zones:{}", self.source_zones.join("+")),
            r if self.component == crate::plan::PEER_COMPONENT => {
                let hosts: Vec<String> = self.sources.iter().map(net_text).collect();
                format!("{}:{}", r.as_str(), hosts.join("+"))
            }
            r => r.as_str().to_string(),
        }
    }
}

/// The networks a role's traffic comes from: its zones' CIDRs; for `servers` also the address of
/// every node that runs SCC components (HAC or a unit instance) and every unit's address, for
/// `trunk` every trunk peer's address, where not already inside one of those CIDRs. A plain host
/// (an SBC, a database or mail server, a jump host) is never a source of the servers' flows.
pub fn sources(dep: &Deployment, role: Role) -> (Vec<String>, Vec<IpNet>) {
    let zones: Vec<&crate::deployment::Zone> = dep.zones_with(role).collect();
    let mut nets: Vec<IpNet> = zones.iter().flat_map(|z| z.cidrs.iter().copied()).collect();
    let mut names: Vec<String> = zones.iter().map(|z| z.name.clone()).collect();
    let (own, label): (Vec<IpAddr>, &str) = match role {
        Role::Servers => (
            dep.nodes
                .iter()
                .filter(|n| n.scc)
                .map(|n| n.address)
                .chain(dep.units.iter().map(|u| u.address))
                .collect(),
            "(system addresses)",
        ),
        Role::Trunk => (
            dep.peers().map(|(n, _)| n.address).collect(),
            "(trunk peers)",
        ),
        _ => (Vec::new(), ""),
    };
    if !own.is_empty() {
        // Aggregated first, so "is this address covered" is a binary search, not a scan of
        // every zone network for every address.
        let zone_nets = IpNet::aggregate(&nets);
        let covered = |a: &IpAddr| {
            let i = zone_nets.partition_point(|n| n.network() <= *a);
            i > 0 && zone_nets[i - 1].contains(a)
        };
        let mut extra = false;
        for a in own {
            if !covered(&a) {
                nets.push(IpNet::from(a));
                extra = true;
            }
        }
        if extra {
            names.push(label.to_string());
        }
    }
    (names, IpNet::aggregate(&nets))
}

/// The networks of named zones (a site service's `from`), smallest covering list.
pub fn zone_sources(dep: &Deployment, zones: &[String]) -> Vec<IpNet> {
    let nets: Vec<IpNet> = zones
        .iter()
        .filter_map(|n| dep.zone(n))
        .flat_map(|z| z.cidrs.iter().copied())
        .collect();
    IpNet::aggregate(&nets)
}

/// The sources of a role narrowed to some of its hosts (a trunk peer's SIP Bridge and MRS unit
/// addresses): the zones carrying the role that hold them, and the addresses themselves.
pub fn host_sources(dep: &Deployment, role: Role, hosts: &[IpAddr]) -> (Vec<String>, Vec<IpNet>) {
    let holds = |z: &crate::deployment::Zone, a: &IpAddr| z.cidrs.iter().any(|c| c.contains(a));
    let mut names: Vec<String> = (dep.zones_with(role))
        .filter(|z| hosts.iter().any(|a| holds(z, a)))
        .map(|z| z.name.clone())
        .collect();
    if hosts
        .iter()
        .any(|a| !dep.zones_with(role).any(|z| holds(z, a)))
    {
        names.push("(system addresses)".to_string());
    }
    let nets: Vec<IpNet> = hosts.iter().map(|&a| IpNet::from(a)).collect();
    (names, IpNet::aggregate(&nets))
}

/// Every distinct source of the flows, built once: the role's (or named zones', or some hosts')
/// zone names and networks, shared by all its flows.
#[derive(Default)]
struct SourceTable {
    roles: HashMap<Role, usize>,
    zones: HashMap<Vec<String>, usize>,
    hosts: HashMap<(Role, Vec<IpAddr>), usize>,
    lists: Vec<(Shared<String>, Shared<IpNet>)>,
}

impl SourceTable {
    fn index(&mut self, dep: &Deployment, role: Role, zones: &[String], hosts: &[IpAddr]) -> usize {
        let found = match role {
            Role::Zones => self.zones.get(zones),
            r if !hosts.is_empty() => self.hosts.get(&(r, hosts.to_vec())),
            r => self.roles.get(&r),
        };
        if let Some(&i) = found {
            return i;
        }
        let (names, nets) = match role {
            Role::Zones => (zones.to_vec(), zone_sources(dep, zones)),
            r if !hosts.is_empty() => host_sources(dep, r, hosts),
            r => sources(dep, r),
        };
        let i = self.lists.len();
        self.lists.push((Shared::new(names), Shared::new(nets)));
        match role {
            Role::Zones => self.zones.insert(zones.to_vec(), i),
            r if !hosts.is_empty() => self.hosts.insert((r, hosts.to_vec()), i),
            r => self.roles.insert(r, i),
        };
        i
    }
}

/// Every flow of the plan, in plan order, one per (binding, role) and one per binding for the
/// zones a site service names, with adjacent ranges of one component merged (CDT's even RTP and
/// odd RTCP become 5004-5031; SIP's 5060 and 5061 over TCP become 5060-5061) when the sources are
/// the same. Site services never merge: each keeps its own name.
pub fn flows(dep: &Deployment, catalog: &Catalog, plan: &Plan) -> Vec<Flow> {
    let mut known = SourceTable::default();
    let notes: HashMap<&str, &str> = dep
        .services
        .iter()
        .map(|s| (s.name.as_str(), s.note.as_str()))
        .collect();
    let mut out: Vec<Flow> = Vec::new();
    // Earlier flows that a new one could merge with, by everything but the ports: a lookup, not a
    // scan of every flow so far (a 10,000-node system has tens of thousands of flows). A site
    // service's name is part of its key: services never merge.
    type Key = (
        usize,
        String,
        Vec<IpNet>,
        Option<String>,
        Transport,
        String,
        String,
    );
    let mut by_key: HashMap<Key, Vec<usize>> = HashMap::new();
    for b in &plan.bindings {
        let service = b.origin == Origin::Service;
        let purpose = if b.origin == Origin::Peer {
            crate::plan::peer_purpose(&b.port_id).to_string()
        } else if service {
            notes
                .get(b.port_id.as_str())
                .copied()
                .unwrap_or("")
                .to_string()
        } else {
            catalog
                .component(&b.component)
                .and_then(|c| c.port(&b.port_id))
                .map_or_else(String::new, |p| p.usage.clone())
        };
        let (destination, workstations) = match &b.host {
            Host::Node { address, .. } => (vec![IpNet::from(*address)], false),
            Host::Workstations { cidrs, .. } => (cidrs.clone(), true),
        };
        let zones_source = (!b.from_zones.is_empty()).then_some(Role::Zones);
        for role in b.from.iter().copied().chain(zones_source) {
            let hosts: &[IpAddr] = if role == Role::Zones {
                &[]
            } else {
                &b.from_hosts
            };
            let src = known.index(dep, role, &b.from_zones, hosts);
            let (zones, nets) = &known.lists[src];
            if nets.is_empty() {
                continue; // nobody carries the role: `check` reports it (C105)
            }
            let flow = Flow {
                role,
                source_zones: zones.share(),
                sources: nets.share(),
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
                src,
                flow.node.clone(),
                flow.destination.clone(),
                flow.unit.clone(),
                flow.transport,
                flow.component.clone(),
                if service {
                    b.port_id.clone()
                } else {
                    String::new()
                },
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

/// The sources of a flow list once each, for the JSON document.
#[derive(Debug, Serialize)]
pub struct SourceSet<'a> {
    pub role: Role,
    pub zones: &'a [String],
    pub cidrs: &'a [IpNet],
}

/// One flow in the JSON document: its sources by key (see [`Document`]).
#[derive(Debug, Serialize)]
pub struct FlowRow<'a> {
    pub role: Role,
    /// The key of its sources in the document's `sources`.
    pub source: String,
    pub node: &'a str,
    pub destination: &'a [IpNet],
    pub workstations: bool,
    pub unit: &'a Option<String>,
    pub transport: Transport,
    #[serde(serialize_with = "ser_range")]
    pub ports: PortRange,
    pub component: &'a str,
    pub port_ids: &'a [String],
    pub purpose: &'a str,
}

/// `flows --format json`: the sources once each (a role's zones can be thousands), then the
/// flows, each naming its sources by key. Linear in flows plus zones, never their product.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub format_version: u32,
    pub name: &'a str,
    pub sources: std::collections::BTreeMap<String, SourceSet<'a>>,
    pub flows: Vec<FlowRow<'a>>,
}

impl<'a> Document<'a> {
    pub fn new(name: &'a str, flows: &'a [Flow]) -> Document<'a> {
        let mut sources = std::collections::BTreeMap::new();
        let mut rows = Vec::with_capacity(flows.len());
        let mut last: Option<(&Shared<String>, String)> = None;
        for f in flows {
            // Consecutive flows mostly share their sources: reuse the key without rebuilding it.
            let key = match &last {
                Some((zones, key)) if zones.same(&f.source_zones) => key.clone(),
                _ => {
                    let key = f.source_key();
                    last = Some((&f.source_zones, key.clone()));
                    key
                }
            };
            sources.entry(key.clone()).or_insert_with(|| SourceSet {
                role: f.role,
                zones: &f.source_zones[..],
                cidrs: &f.sources[..],
            });
            rows.push(FlowRow {
                role: f.role,
                source: key,
                node: &f.node,
                destination: &f.destination,
                workstations: f.workstations,
                unit: &f.unit,
                transport: f.transport,
                ports: f.ports,
                component: &f.component,
                port_ids: &f.port_ids,
                purpose: &f.purpose,
            });
        }
        Document {
            format_version: crate::FORMAT_VERSION,
            name,
            sources,
            flows: rows,
        }
    }
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
                f.source_key(),
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

/// The flows a firewall between zones admits ([`crate::firewall::Mode::Network`]): each flow
/// once ([`network_flows`]), only those that cross a network firewall
/// ([`Crossings::through_any`]: a file without `[firewalls]` is one firewall between every two
/// zones), each from the zones it crosses from and their sources there
/// ([`Crossings::sources_in`]). A flow inside one zone, and sources in no zone (a system address
/// outside its zone, C104), cross none: no network firewall sees them.
pub fn crossing_flows(dep: &Deployment, flows: &[Flow]) -> Vec<Flow> {
    let crossings = Crossings::new(dep);
    // The narrowed lists, shared by every flow with the same sources crossing from the same zones
    // (as [`flows`] shares the originals): the generators group sources by list.
    type Lists = (Shared<String>, Shared<IpNet>);
    let mut narrowed: HashMap<(usize, Vec<usize>), Lists> = HashMap::new();
    let mut out = Vec::new();
    for mut f in network_flows(flows) {
        let mut from: Vec<usize> = Vec::new();
        for (z, _) in crossings.through_any(&f) {
            if !from.contains(&z) {
                from.push(z);
            }
        }
        if from.is_empty() {
            continue;
        }
        let (zones, nets) = narrowed
            .entry((f.sources.id(), from.clone()))
            .or_insert_with(|| {
                let names: Vec<String> = from.iter().map(|&z| dep.zones[z].name.clone()).collect();
                let nets: Vec<IpNet> = (from.iter())
                    .flat_map(|&z| crossings.sources_in(&f, z))
                    .collect();
                (Shared::new(names), Shared::new(IpNet::aggregate(&nets)))
            });
        if zones[..] != f.source_zones[..] {
            f.source_zones = zones.share();
        }
        if nets[..] != f.sources[..] {
            f.sources = nets.share();
        }
        out.push(f);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Which flows cross which network firewall (`[firewalls.NAME]`): answered here once; every target,
// the network team's sheet, `audit --network` and `report` ask, none recomputes it.

/// The zone pairs of flows, and which of them cross a network firewall. Built once per
/// deployment (name lookups are maps, not scans of thousands of zones).
pub struct Crossings<'a> {
    dep: &'a Deployment,
    zones: HashMap<&'a str, usize>,
    nodes: HashMap<&'a str, usize>,
    units: HashMap<&'a str, usize>,
}

/// What a flow's destination is, for the names of rules and the network team's sheet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// The agent workstations of a client zone (an index into [`Deployment::zones`]).
    Workstations(usize),
    /// A unit's virtual IP (an index into [`Deployment::units`]): held by its instance nodes.
    Unit(usize),
    /// A node's own address (an index into [`Deployment::nodes`]).
    Node(usize),
    /// Addresses that are none of these.
    Addresses,
}

impl<'a> Crossings<'a> {
    pub fn new(dep: &'a Deployment) -> Crossings<'a> {
        Crossings {
            dep,
            zones: (dep.zones.iter().enumerate())
                .map(|(i, z)| (z.name.as_str(), i))
                .collect(),
            nodes: (dep.nodes.iter().enumerate())
                .map(|(i, n)| (n.name.as_str(), i))
                .collect(),
            units: (dep.units.iter().enumerate())
                .map(|(i, u)| (u.name.as_str(), i))
                .collect(),
        }
    }

    /// What the flow's destination is: a unit's virtual IP is the unit (not the instance node
    /// the flow was planned on).
    pub fn destination(&self, flow: &Flow) -> Destination {
        if flow.workstations {
            return match self.zones.get(flow.node.as_str()) {
                Some(&z) => Destination::Workstations(z),
                None => Destination::Addresses,
            };
        }
        let one = |a: IpAddr| flow.destination == [IpNet::from(a)];
        if let Some(&u) = flow.unit.as_deref().and_then(|u| self.units.get(u)) {
            if one(self.dep.units[u].address) {
                return Destination::Unit(u);
            }
        }
        match self.nodes.get(flow.node.as_str()) {
            Some(&n) if one(self.dep.nodes[n].address) => Destination::Node(n),
            _ => Destination::Addresses,
        }
    }

    /// The destination in words: `unit CORE (virtual IP on APP1 APP2)`, `node APP1`,
    /// `workstations of agents`, or the addresses.
    pub fn destination_words(&self, flow: &Flow) -> String {
        match self.destination(flow) {
            Destination::Workstations(z) => format!("workstations of {}", self.dep.zones[z].name),
            Destination::Unit(u) => {
                let unit = &self.dep.units[u];
                let on: Vec<&str> = (unit.instances.iter())
                    .map(|&i| self.dep.nodes[i].name.as_str())
                    .collect();
                format!("unit {} (virtual IP on {})", unit.name, on.join(" "))
            }
            Destination::Node(n) => format!("node {}", self.dep.nodes[n].name),
            Destination::Addresses => (flow.destination.iter())
                .map(net_text)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    /// The zone a flow's destination sits in (an index into [`Deployment::zones`]): the zone of
    /// the node that holds the address (a unit's virtual IP lives on its instance nodes), or the
    /// client zone of a workstation flow.
    pub fn destination_zone(&self, flow: &Flow) -> Option<usize> {
        if flow.workstations {
            return self.zones.get(flow.node.as_str()).copied();
        }
        let node = self.nodes.get(flow.node.as_str())?;
        Some(self.dep.nodes[*node].zone)
    }

    /// Every (source zone, destination zone) of a flow, in the order of its source zones, those
    /// inside one zone included. Sources that are not a zone (the system's own addresses outside
    /// every zone, for role `servers`) have no pair.
    pub fn zone_pairs(&self, flow: &Flow) -> Vec<(usize, usize)> {
        let Some(to) = self.destination_zone(flow) else {
            return Vec::new();
        };
        (flow.source_zones.iter())
            .filter_map(|z| self.zones.get(z.as_str()).map(|&from| (from, to)))
            .collect()
    }

    /// A flow's sources inside one of its source zones: the zone's networks that the sources
    /// cover, and the sources inside the zone (a trunk peer's own address, not its whole zone).
    pub fn sources_in(&self, flow: &Flow, zone: usize) -> Vec<IpNet> {
        let cidrs = &self.dep.zones[zone].cidrs;
        let covered = |n: &IpNet| flow.sources.iter().any(|s| s.contains(n));
        let inside = |n: &IpNet| cidrs.iter().any(|c| c.contains(n));
        let nets: Vec<IpNet> = (cidrs.iter().filter(|c| covered(c)))
            .chain(flow.sources.iter().filter(|s| inside(s)))
            .copied()
            .collect();
        IpNet::aggregate(&nets)
    }

    /// The zone pairs of a flow that cross `firewall`: both zones among its zones, and different.
    pub fn through(&self, flow: &Flow, firewall: &Firewall) -> Vec<(usize, usize)> {
        (self.zone_pairs(flow).into_iter())
            .filter(|&(from, to)| crosses(firewall, from, to))
            .collect()
    }

    /// The zone pairs of a flow that cross some network firewall. A deployment that declares
    /// none is read as one firewall between every two zones: every pair of different zones.
    pub fn through_any(&self, flow: &Flow) -> Vec<(usize, usize)> {
        (self.zone_pairs(flow).into_iter())
            .filter(|&(from, to)| {
                from != to
                    && (self.dep.firewalls.is_empty()
                        || self.dep.firewalls.iter().any(|f| crosses(f, from, to)))
            })
            .collect()
    }
}

/// Whether traffic from zone `from` to zone `to` (indexes into [`Deployment::zones`]) crosses
/// `firewall`: both are among its zones and they differ. A flow inside one zone crosses none.
pub fn crosses(firewall: &Firewall, from: usize, to: usize) -> bool {
    from != to
        && firewall.zones.iter().any(|z| z.zone == from)
        && firewall.zones.iter().any(|z| z.zone == to)
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

    #[test]
    fn crossings_leave_out_flows_inside_one_zone() {
        use crate::deployment::Template;
        let catalog = Catalog::embedded();
        let dep = Template::Redundant.load(&catalog).unwrap();
        let plan = crate::plan::resolve(&dep, &catalog);
        let flows = network_flows(&flows(&dep, &catalog, &plan));
        let c = Crossings::new(&dep);
        let zone = |n: &str| dep.zones.iter().position(|z| z.name == n).unwrap();
        let edge = &dep.firewalls[0];
        // Agent Server on unit CORE (datacenter) from role servers (datacenter, dmz).
        let f = flows
            .iter()
            .find(|f| f.label() == "agent-server.port" && f.role == Role::Servers)
            .unwrap();
        assert_eq!(c.destination(f), Destination::Unit(0));
        assert_eq!(
            c.destination_words(f),
            "unit CORE (virtual IP on APP1 APP2)"
        );
        let (dc, dmz) = (zone("datacenter"), zone("dmz"));
        assert_eq!(c.zone_pairs(f), vec![(dc, dc), (dmz, dc)]);
        assert_eq!(c.through(f, edge), vec![(dmz, dc)]);
        assert_eq!(c.through_any(f), vec![(dmz, dc)]);
        // A firewall that does not hold the dmz: nothing of this flow crosses it.
        let mut inner = edge.clone();
        inner.zones.retain(|z| z.zone != dmz);
        assert!(c.through(f, &inner).is_empty());
        assert!(!crosses(edge, dc, dc) && crosses(edge, dmz, dc) && crosses(edge, dc, dmz));
        // Without [firewalls]: every pair of two different zones.
        let mut open = dep.clone();
        open.firewalls.clear();
        assert_eq!(Crossings::new(&open).through_any(f), vec![(dmz, dc)]);
        // What every --network target admits: the same flow from the dmz only, and no flow
        // that stays inside one zone.
        let all = super::flows(&dep, &catalog, &plan);
        let crossing = crossing_flows(&dep, &all);
        let g = (crossing.iter())
            .find(|g| g.label() == "agent-server.port" && g.role == Role::Servers)
            .unwrap();
        assert_eq!(g.source_zones[..], ["dmz".to_string()]);
        assert_eq!(g.sources[..], dep.zones[dmz].cidrs[..]);
        assert!(crossing.iter().all(|g| !c.through_any(g).is_empty()));
        assert!(crossing.iter().all(|g| {
            let pairs = c.zone_pairs(g);
            !pairs.is_empty() && pairs.iter().all(|(a, b)| a != b)
        }));
        assert!(crossing.len() < flows.len());
    }
}
