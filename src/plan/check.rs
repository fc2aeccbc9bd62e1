//! Checks: conflicts and mistakes in a plan, each a finding with a stable code, places and a hint.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde::Serialize;

use super::{Binding, Host, Origin, Plan};
use crate::catalog::{Catalog, Role, Transport};
use crate::deployment::Deployment;
use crate::diag::{Location, Severity};
use crate::range::{PortRange, overlap_groups, overlapping_pairs};

/// The Windows dynamic (ephemeral) port range: a listener there may find its port taken.
pub const WINDOWS_DYNAMIC: (u16, u16) = (49152, 65535);

/// The checks, by code: (code, name, severity, what it finds). Documented in docs/checks.md.
pub const CHECKS: &[(&str, &str, Severity, &str)] = &[
    (
        "C101",
        "port-clash",
        Severity::Error,
        "two services listen on the same address, transport and port",
    ),
    (
        "C102",
        "node-port-clash",
        Severity::Warning,
        "one node listens on the same port on two of its addresses",
    ),
    (
        "C103",
        "duplicate-address",
        Severity::Error,
        "two nodes or units share an address",
    ),
    (
        "C104",
        "address-outside-zone",
        Severity::Warning,
        "a node's or unit's address lies outside its zone",
    ),
    (
        "C105",
        "role-without-zone",
        Severity::Warning,
        "a port is opened for a role that no zone carries",
    ),
    (
        "C106",
        "single-instance",
        Severity::Warning,
        "a unit has fewer than two instances",
    ),
    (
        "C107",
        "dynamic-range",
        Severity::Warning,
        "a port lies in the Windows dynamic range 49152-65535",
    ),
    (
        "C108",
        "unset-port",
        Severity::Info,
        "a port without a default was left unset and is not opened",
    ),
    (
        "C109",
        "instance-on-mock-node",
        Severity::Error,
        "a unit instance is placed on a node without HAC",
    ),
    (
        "C110",
        "variable-on-mock-node",
        Severity::Warning,
        "a HAC variable is set on a node without HAC",
    ),
    (
        "C111",
        "package-twice-on-node",
        Severity::Warning,
        "the same package is in two units that share a node",
    ),
    (
        "C112",
        "overlapping-zones",
        Severity::Warning,
        "the CIDRs of two zones overlap: a source is counted in both",
    ),
    (
        "C113",
        "service-clash",
        Severity::Error,
        "a site service listens on a port a component (or another service) uses",
    ),
    (
        "C114",
        "windows-excluded-range",
        Severity::Error,
        "a port lies in a Windows excluded port range of its node (windows_excluded_ports)",
    ),
    (
        "C116",
        "plain-host-outside-servers",
        Severity::Warning,
        "a node runs no SCC component, is not declared a plain host and sits outside the servers' zones",
    ),
    (
        "C117",
        "zone-without-roles",
        Severity::Warning,
        "a zone carries no role, holds no node and no service names it: nothing in it reaches anything",
    ),
    (
        "C118",
        "peer-zone-without-trunk",
        Severity::Warning,
        "a trunk peer sits in a zone that does not carry trunk: probe, report and diagram miss its flows",
    ),
];

/// Something involved in a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Place {
    pub what: String,
    pub location: Option<Location>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub name: &'static str,
    pub severity: Severity,
    pub message: String,
    pub places: Vec<Place>,
    pub hint: String,
}

fn finding(code: &'static str, message: String, places: Vec<Place>, hint: String) -> Finding {
    let &(_, name, severity, _) = CHECKS
        .iter()
        .find(|c| c.0 == code)
        .expect("known check code");
    Finding {
        code,
        name,
        severity,
        message,
        places,
        hint,
    }
}

/// Finds the file location of units, nodes and bindings by name, in constant time: a large
/// system can have a finding for every unit.
struct Locator<'d> {
    dep: &'d Deployment,
    units: std::collections::HashMap<&'d str, &'d crate::deployment::Unit>,
    nodes: std::collections::HashMap<&'d str, &'d crate::deployment::Node>,
}

impl<'d> Locator<'d> {
    fn new(dep: &'d Deployment) -> Locator<'d> {
        Locator {
            dep,
            units: dep.units.iter().map(|u| (u.name.as_str(), u)).collect(),
            nodes: dep.nodes.iter().map(|n| (n.name.as_str(), n)).collect(),
        }
    }

    fn unit(&self, name: &str) -> Place {
        let u = self.units.get(name);
        Place {
            what: format!("unit {name}"),
            location: u.map(|u| u.location.clone()),
        }
    }

    /// Where a unit names one of its packages.
    fn package(&self, unit: &str, component: &str) -> Place {
        let at = self.units.get(unit).and_then(|u| {
            let i = u.packages.iter().position(|p| p == component)?;
            Some(u.package_locations[i].clone())
        });
        Place {
            what: format!("{component}, a package of unit {unit}"),
            location: at,
        }
    }

    fn node(&self, name: &str) -> Place {
        let n = self.nodes.get(name);
        Place {
            what: format!("node {name}"),
            location: n.map(|n| n.location.clone()),
        }
    }

    /// The line that gave a binding its value: the variable, else the unit or node.
    fn binding(&self, b: &Binding) -> Place {
        let what = format!("{}.{}", b.component, b.port_id);
        if b.origin == Origin::Service {
            return service_place(self.dep, b);
        }
        // Lookups by name, not scans: a large system can have a finding per binding.
        let settings = match (&b.unit, &b.host) {
            (Some(u), _) => self.units.get(u.as_str()).map(|u| &u.variables),
            (None, Host::Node { node, .. }) => self.nodes.get(node.as_str()).map(|n| &n.variables),
            (None, Host::Workstations { .. }) => None,
        };
        let var = match &b.origin {
            Origin::UnitVariable(v) | Origin::NodeVariable(v) => v.first(),
            Origin::Default | Origin::Service | Origin::Peer => None,
        };
        if let (Some(var), Some(settings)) = (var, settings) {
            if let Some(s) = settings.iter().find(|s| &s.name == var) {
                return Place {
                    what: format!("{what} = {} ({})", b.ports, s.name),
                    location: Some(s.location.clone()),
                };
            }
        }
        if let Some(u) = b.unit.as_ref().and_then(|u| self.units.get(u.as_str())) {
            let at = u
                .packages
                .iter()
                .position(|p| *p == b.component)
                .map(|i| u.package_locations[i].clone());
            return Place {
                what: format!("{what} = {} (default; package of unit {})", b.ports, u.name),
                location: at,
            };
        }
        let owner = self.node(b.host.name());
        Place {
            what: format!("{what} = {} (default, on {})", b.ports, owner.what),
            location: owner.location,
        }
    }
}

/// Every finding about a plan, errors first, each group in the order found.
pub fn check(dep: &Deployment, catalog: &Catalog, plan: &Plan) -> Vec<Finding> {
    let loc = Locator::new(dep);
    let mut out = Vec::new();
    port_clashes(&loc, plan, &mut out);
    duplicate_addresses(dep, &mut out);
    mock_nodes(dep, &loc, &mut out);
    zones_of_addresses(dep, &loc, &mut out);
    roles_without_zone(dep, catalog, plan, &loc, &mut out);
    single_instances(dep, &loc, &mut out);
    dynamic_range(plan, &loc, &mut out);
    packages_twice_on_node(dep, &loc, &mut out);
    overlapping_zones(dep, &mut out);
    service_clashes(plan, &loc, &mut out);
    excluded_ranges(dep, plan, &loc, &mut out);
    plain_hosts(dep, &loc, &mut out);
    zones_without_roles(dep, &mut out);
    peers_outside_trunk_zones(dep, &loc, &mut out);
    for u in &plan.unset {
        out.push(finding(
            "C108",
            format!(
                "{}.{} has no default and is not set: it is not opened",
                u.component, u.port_id
            ),
            vec![loc.package(&u.unit, &u.component)],
            format!(
                "set `{}` in [units.{}.variables] if the port is used",
                u.variable, u.unit
            ),
        ));
    }
    out.sort_by_key(|f| f.severity);
    out
}

/// Bindings of catalog components on server hosts, keyed for the sweeps (site services have
/// their own check, C113).
fn server_bindings(plan: &Plan) -> impl Iterator<Item = (&str, IpAddr, &Binding)> {
    plan.bindings.iter().filter_map(|b| match &b.host {
        Host::Node { .. } if b.origin == Origin::Service => None,
        Host::Node { node, address } => Some((node.as_str(), *address, b)),
        Host::Workstations { .. } => None,
    })
}

/// How many members a grouped finding's message names; its places list every one.
const NAMED_IN_MESSAGE: usize = 12;

/// `a, b, c and 9,988 more`.
fn named_list(names: &[String]) -> String {
    let shown = names.len().min(NAMED_IN_MESSAGE);
    let mut text = names[..shown].join(", ");
    if names.len() > shown {
        text.push_str(&format!(" and {} more", names.len() - shown));
    }
    text
}

/// The distinct port sets of a group, in words: `port 443`, `ports 5004-5030 even, 5010`.
fn ports_of(group: &[&Binding]) -> String {
    let mut sets: Vec<PortRange> = group.iter().map(|b| b.ports).collect();
    sets.sort_unstable();
    sets.dedup();
    let words: Vec<String> = sets.iter().map(ToString::to_string).collect();
    match words.as_slice() {
        [one] if sets[0].is_single() => format!("port {one}"),
        _ => format!("ports {}", named_list(&words)),
    }
}

/// One service in a grouped finding: `agent-server.port (unit U7) on 10.0.0.7`.
fn service_name(b: &Binding, address: Option<IpAddr>) -> String {
    let mut s = format!("{}.{}", b.component, b.port_id);
    if let Some(u) = &b.unit {
        s.push_str(&format!(" (unit {u})"));
    }
    if let Some(a) = address {
        s.push_str(&format!(" on {a}"));
    }
    s
}

/// Keeps the first of the items with equal keys, in their order: a sort of indices, not a hash
/// set of string tuples (which dominated `check` on 100,000 units).
fn first_of_each<T, K: Ord>(items: &mut Vec<T>, key: impl Fn(&T) -> K) {
    if items.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| key(&items[a]).cmp(&key(&items[b])).then(a.cmp(&b)));
    let mut keep = vec![false; items.len()];
    keep[order[0]] = true;
    for w in order.windows(2) {
        if key(&items[w[0]]) != key(&items[w[1]]) {
            keep[w[1]] = true;
        }
    }
    let mut i = 0;
    items.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// C101 and C102. Both sweep the bindings of an address (a node) into groups of services that
/// share ports ([`overlap_groups`], O(n log n)): two services give the pair's message, more give
/// one grouped finding naming them all, so a thousand units on one port are one finding, not
/// half a million.
fn port_clashes(loc: &Locator, plan: &Plan, out: &mut Vec<Finding>) {
    // Per address: the same unit on two nodes yields the same service twice; count it once.
    let mut by_address: BTreeMap<(IpAddr, Transport), Vec<&Binding>> = BTreeMap::new();
    for (_, address, b) in server_bindings(plan) {
        by_address
            .entry((address, b.transport))
            .or_default()
            .push(b);
    }
    for group in by_address.values_mut() {
        first_of_each(group, |b| (&b.unit, &b.component, &b.port_id));
    }
    for ((address, transport), group) in &by_address {
        let ranges: Vec<PortRange> = group.iter().map(|b| b.ports).collect();
        for members in overlap_groups(&ranges) {
            let clash: Vec<&Binding> = members.iter().map(|&i| group[i]).collect();
            let mut places: Vec<Place> = clash.iter().map(|b| loc.binding(b)).collect();
            places.dedup();
            if let [a, b] = clash[..] {
                let port = a.ports.first_common(&b.ports).expect("overlapping");
                let movable: Vec<String> = [a, b]
                    .iter()
                    .map(|x| format!("`{}.{}`", x.component, x.port_id))
                    .collect();
                out.push(finding(
                    "C101",
                    format!(
                        "{}.{} and {}.{} both listen on {address} {} {}",
                        a.component, a.port_id, b.component, b.port_id, transport.as_str(), describe_common(a.ports, b.ports, port)
                    ),
                    places,
                    format!(
                        "move one to another port (set {} in the unit's variables) or put the packages in different units",
                        movable.join(" or ")
                    ),
                ));
                continue;
            }
            let names: Vec<String> = clash.iter().map(|b| service_name(b, None)).collect();
            out.push(finding(
                "C101",
                format!(
                    "{} services listen on {address} {} sharing {}: {}",
                    clash.len(),
                    transport.as_str(),
                    ports_of(&clash),
                    named_list(&names)
                ),
                places,
                "give all but one of them other ports (in the units' variables), or put the packages in different units".to_string(),
            ));
        }
    }
    // Per node across addresses: harmless while each service binds its own address only.
    let mut by_node: BTreeMap<(&str, Transport), Vec<(IpAddr, &Binding)>> = BTreeMap::new();
    for (node, address, b) in server_bindings(plan) {
        by_node
            .entry((node, b.transport))
            .or_default()
            .push((address, b));
    }
    for group in by_node.values_mut() {
        first_of_each(group, |(a, b)| (*a, &b.unit, &b.component, &b.port_id));
    }
    for ((node, transport), group) in &by_node {
        let ranges: Vec<PortRange> = group.iter().map(|(_, b)| b.ports).collect();
        for members in overlap_groups(&ranges) {
            let clash: Vec<(IpAddr, &Binding)> = members.iter().map(|&i| group[i]).collect();
            let mut addresses: Vec<IpAddr> = clash.iter().map(|(a, _)| *a).collect();
            addresses.sort_unstable();
            addresses.dedup();
            if addresses.len() < 2 {
                continue; // one address: reported per address (C101)
            }
            let hint = "they clash if either service binds all addresses of the node; give one another port if in doubt".to_string();
            if let [(aa, a), (ab, b)] = clash[..] {
                let port = a.ports.first_common(&b.ports).expect("overlapping");
                out.push(finding(
                    "C102",
                    format!(
                        "node {node}: {}.{} on {aa} and {}.{} on {ab} share {} {}",
                        a.component,
                        a.port_id,
                        b.component,
                        b.port_id,
                        transport.as_str(),
                        describe_common(a.ports, b.ports, port)
                    ),
                    vec![loc.binding(a), loc.binding(b)],
                    hint,
                ));
                continue;
            }
            let bindings: Vec<&Binding> = clash.iter().map(|(_, b)| *b).collect();
            let names: Vec<String> = clash
                .iter()
                .map(|(a, b)| service_name(b, Some(*a)))
                .collect();
            out.push(finding(
                "C102",
                format!(
                    "node {node}: {} services on {} addresses share {} {}: {}",
                    clash.len(),
                    addresses.len(),
                    transport.as_str(),
                    ports_of(&bindings),
                    named_list(&names)
                ),
                bindings.iter().map(|b| loc.binding(b)).collect(),
                "they clash if any of them binds all addresses of the node; give them distinct ports if in doubt".to_string(),
            ));
        }
    }
}

fn describe_common(a: PortRange, b: PortRange, first: u16) -> String {
    if a.is_single() || b.is_single() {
        format!("port {first}")
    } else {
        format!("ports {a} and {b} (first shared: {first})")
    }
}

fn duplicate_addresses(dep: &Deployment, out: &mut Vec<Finding>) {
    let mut all: Vec<(IpAddr, Place)> = Vec::new();
    for n in &dep.nodes {
        all.push((
            n.address,
            Place {
                what: format!("node {}", n.name),
                location: Some(n.address_location.clone()),
            },
        ));
    }
    for u in &dep.units {
        all.push((
            u.address,
            Place {
                what: format!("unit {}", u.name),
                location: Some(u.address_location.clone()),
            },
        ));
    }
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.location.cmp(&b.1.location)));
    for group in all.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        let names: Vec<&str> = group.iter().map(|(_, p)| p.what.as_str()).collect();
        out.push(finding(
            "C103",
            format!("{} share the address {}", names.join(" and "), group[0].0),
            group.iter().map(|(_, p)| p.clone()).collect(),
            "every node and every unit needs its own address".to_string(),
        ));
    }
}

fn mock_nodes(dep: &Deployment, loc: &Locator, out: &mut Vec<Finding>) {
    for u in &dep.units {
        for &n in &u.instances {
            let node = &dep.nodes[n];
            if !node.hac {
                out.push(finding(
                    "C109",
                    format!(
                        "unit {} has an instance on {}, a mock node without HAC",
                        u.name, node.name
                    ),
                    vec![loc.unit(&u.name), loc.node(&node.name)],
                    format!(
                        "place the instance on a HAC node, or remove `hac = false` from node {}",
                        node.name
                    ),
                ));
            }
        }
    }
    for n in dep.nodes.iter().filter(|n| !n.hac) {
        for s in &n.variables {
            out.push(finding(
                "C110",
                format!(
                    "node {} sets `{}` but runs no HAC (hac = false)",
                    n.name, s.name
                ),
                vec![Place {
                    what: s.name.clone(),
                    location: Some(s.location.clone()),
                }],
                "remove the variable, or the `hac = false` line".to_string(),
            ));
        }
    }
}

fn zones_of_addresses(dep: &Deployment, loc: &Locator, out: &mut Vec<Finding>) {
    for n in &dep.nodes {
        let zone = &dep.zones[n.zone];
        if !zone.cidrs.iter().any(|c| c.contains(&n.address)) {
            out.push(finding(
                "C104",
                format!(
                    "node {} has address {}, outside its zone {}",
                    n.name, n.address, zone.name
                ),
                vec![Place {
                    what: format!("node {}", n.name),
                    location: Some(n.address_location.clone()),
                }],
                format!(
                    "correct the address, or add its network to zone {}'s cidrs",
                    zone.name
                ),
            ));
        }
    }
    for u in &dep.units {
        let zones: Vec<&str> = u
            .instances
            .iter()
            .map(|&i| dep.zones[dep.nodes[i].zone].name.as_str())
            .collect();
        let inside = u.instances.iter().any(|&i| {
            dep.zones[dep.nodes[i].zone]
                .cidrs
                .iter()
                .any(|c| c.contains(&u.address))
        });
        if !u.instances.is_empty() && !inside {
            let mut zones = zones;
            zones.dedup();
            out.push(finding(
                "C104",
                format!(
                    "unit {} has address {}, outside the zones of its nodes ({})",
                    u.name,
                    u.address,
                    zones.join(", ")
                ),
                vec![loc.unit(&u.name)],
                "a virtual IP moves between its instances' servers: it belongs to their network"
                    .to_string(),
            ));
        }
    }
}

fn roles_without_zone(
    dep: &Deployment,
    catalog: &Catalog,
    plan: &Plan,
    loc: &Locator,
    out: &mut Vec<Finding>,
) {
    let carried: HashSet<Role> = dep
        .zones
        .iter()
        .flat_map(|z| z.roles.iter().copied())
        .collect();
    let peers = dep.peers().next().is_some();
    let has = |r: Role| r == Role::Servers || (r == Role::Trunk && peers) || carried.contains(&r);
    let mut seen = HashSet::new();
    for b in &plan.bindings {
        if !seen.insert((&b.component, &b.port_id)) {
            continue;
        }
        let missing: Vec<&str> = b
            .from
            .iter()
            .filter(|r| !has(**r))
            .map(|r| r.as_str())
            .collect();
        if missing.is_empty() {
            continue;
        }
        let reachable: Vec<&str> = b
            .from
            .iter()
            .filter(|r| has(**r))
            .map(|r| r.as_str())
            .collect();
        let name = catalog
            .component(&b.component)
            .map_or(b.component.as_str(), |c| c.name.as_str());
        let (sev_msg, hint) = if reachable.is_empty() {
            (
                format!(
                    "{}.{} ({name}) is opened for {} but no zone carries that role: nobody can reach it",
                    b.component,
                    b.port_id,
                    missing.join(", ")
                ),
                format!("add a zone with roles = [\"{}\"]", missing[0]),
            )
        } else {
            (
                format!(
                    "{}.{} ({name}) is opened for {} too, but no zone carries that role; only {} will reach it",
                    b.component,
                    b.port_id,
                    missing.join(", "),
                    reachable.join(", ")
                ),
                format!(
                    "add a zone with roles = [\"{}\"] if they need it",
                    missing[0]
                ),
            )
        };
        let mut f = finding("C105", sev_msg, vec![loc.binding(b)], hint);
        if !reachable.is_empty() {
            f.severity = Severity::Info;
        }
        out.push(f);
    }
}

/// C116: a node that runs no SCC component (no HAC, no unit instance) and that the file does not
/// declare a plain host, outside every zone of the servers. It is a source of none of the servers'
/// flows (only SCC hosts are); files written before plain hosts were told apart gave such a node
/// every internal port, so the change is said, and `scc = false` says it was meant.
fn plain_hosts(dep: &Deployment, loc: &Locator, out: &mut Vec<Finding>) {
    let servers: Vec<&ipnet::IpNet> = dep
        .zones_with(Role::Servers)
        .flat_map(|z| z.cidrs.iter())
        .collect();
    for n in dep.nodes.iter().filter(|n| !n.scc && !n.plain_declared) {
        if servers.iter().any(|c| c.contains(&n.address)) {
            continue;
        }
        out.push(finding(
            "C116",
            format!(
                "node {} runs no SCC component (hac = false, no unit instance) and sits outside the servers' zones: it is a plain host, a source only of the flows named for it (trunk, services), not of the servers' flows",
                n.name
            ),
            vec![loc.node(&n.name)],
            format!(
                "write `scc = false` in [nodes.{}] to say it runs no SCC component (a `trunk` table for an SBC); if it does run SCC, give it HAC or a unit instance",
                n.name
            ),
        ));
    }
}

/// C118: a trunk peer whose zone does not carry `trunk`. Its address is a trunk source in every
/// rule all the same, but `probe --from ZONE`, the report and the diagram plan per zone and role,
/// so none of them would test or draw what the peer reaches.
fn peers_outside_trunk_zones(dep: &Deployment, loc: &Locator, out: &mut Vec<Finding>) {
    for (n, _) in dep.peers() {
        let zone = &dep.zones[n.zone];
        if zone.roles.contains(&Role::Trunk) {
            continue;
        }
        out.push(finding(
            "C118",
            format!(
                "trunk peer {} sits in zone {}, which does not carry trunk: the rules admit it to the trunk's ports, but probe, the report and the diagram (per zone) miss those flows",
                n.name, zone.name
            ),
            vec![loc.node(&n.name)],
            format!(
                "add \"trunk\" to zone {}'s roles, or give the peer a zone of its own (cidrs = [\"{}\"], roles = [\"trunk\"])",
                zone.name,
                ipnet::IpNet::from(n.address)
            ),
        ));
    }
}

/// C117: `roles = []` on a zone that holds no node and that no service names: its networks are
/// the source of no flow and the destination of none.
fn zones_without_roles(dep: &Deployment, out: &mut Vec<Finding>) {
    let named: HashSet<usize> = dep
        .services
        .iter()
        .flat_map(|s| s.from_zones.iter().copied())
        .collect();
    for (i, z) in dep.zones.iter().enumerate() {
        if !z.roles.is_empty() || named.contains(&i) || dep.nodes.iter().any(|n| n.zone == i) {
            continue;
        }
        out.push(finding(
            "C117",
            format!(
                "zone {} carries no role (roles = []) and holds no node: nothing in it reaches anything",
                z.name
            ),
            vec![Place {
                what: format!("zone {}", z.name),
                location: Some(z.location.clone()),
            }],
            "give it the roles of the hosts in it: clients (agents' PCs), admins, trunk (a carrier's network), ivr, visitors; servers only for SCC servers; or name it in a service's `from`".to_string(),
        ));
    }
}

fn single_instances(dep: &Deployment, loc: &Locator, out: &mut Vec<Finding>) {
    for u in dep.units.iter().filter(|u| u.instances.len() < 2) {
        let message = if u.instances.is_empty() {
            format!("unit {} has no instance: its packages run nowhere", u.name)
        } else {
            format!(
                "unit {} has one instance only (on {}): no failover",
                u.name, dep.nodes[u.instances[0]].name
            )
        };
        out.push(finding(
            "C106",
            message,
            vec![loc.unit(&u.name)],
            "give every unit instances on at least two servers (fine for a demo system)"
                .to_string(),
        ));
    }
}

fn dynamic_range(plan: &Plan, loc: &Locator, out: &mut Vec<Finding>) {
    let dynamic = PortRange::new(WINDOWS_DYNAMIC.0, WINDOWS_DYNAMIC.1, None).expect("valid");
    let mut seen = HashSet::new();
    for b in server_bindings(plan).map(|(_, _, b)| b) {
        if let Some(p) = b.ports.first_common(&dynamic) {
            if seen.insert((&b.unit, b.host.name().to_string(), &b.component, &b.port_id)) {
                out.push(finding(
                    "C107",
                    format!(
                        "{}.{} uses {} (from {p}), inside the Windows dynamic range 49152-65535",
                        b.component, b.port_id, b.ports
                    ),
                    vec![loc.binding(b)],
                    "outgoing connections may take the port first; choose a port below 49152"
                        .to_string(),
                ));
            }
        }
    }
}

/// One transport's excluded ranges of a node, sorted by first port, with the running maximum of
/// their last ports: a binding meets a range iff the range starting at or before the binding's
/// last port that reaches furthest reaches its first port (a binary search, not a scan).
struct Excluded<'d> {
    ranges: Vec<&'d crate::deployment::ExcludedRange>,
    /// `reach[i]`: the index among `ranges[..=i]` of the one with the highest last port.
    reach: Vec<usize>,
}

impl<'d> Excluded<'d> {
    fn new(mut ranges: Vec<&'d crate::deployment::ExcludedRange>) -> Excluded<'d> {
        ranges.sort_by_key(|r| (r.ports.lo(), r.ports.hi()));
        let mut reach: Vec<usize> = Vec::with_capacity(ranges.len());
        for (i, r) in ranges.iter().enumerate() {
            let best = match reach.last() {
                Some(&j) if ranges[j].ports.hi() >= r.ports.hi() => j,
                _ => i,
            };
            reach.push(best);
        }
        Excluded { ranges, reach }
    }

    /// An excluded range holding a port of `ports` (the one reaching furthest), and that port.
    fn hit(&self, ports: &PortRange) -> Option<(&'d crate::deployment::ExcludedRange, u16)> {
        let end = self.ranges.partition_point(|r| r.ports.lo() <= ports.hi());
        let far = self.ranges[*self.reach.get(end.checked_sub(1)?)?];
        if far.ports.hi() < ports.lo() {
            return None;
        }
        if let Some(p) = ports.first_common(&far.ports) {
            return Some((far, p));
        }
        // A parity binding can touch the furthest range only on a port of the other parity
        // (a rare corner): then ask every range that starts in time.
        self.ranges[..end]
            .iter()
            .find_map(|r| ports.first_common(&r.ports).map(|q| (*r, q)))
    }
}

/// C114: a planned port on a node inside one of the node's Windows excluded port ranges of the
/// same transport: the listener's bind fails there (WSAEACCES). Site services count too: their
/// listeners are refused the same way. O((b + r) log r) for b bindings and r ranges.
fn excluded_ranges(dep: &Deployment, plan: &Plan, loc: &Locator, out: &mut Vec<Finding>) {
    if dep.nodes.iter().all(|n| n.windows_excluded.is_empty()) {
        return;
    }
    let mut by_node: std::collections::HashMap<(&str, Transport), Excluded> = Default::default();
    for n in &dep.nodes {
        for t in [Transport::Tcp, Transport::Udp] {
            let of_t: Vec<_> = n
                .windows_excluded
                .iter()
                .filter(|r| r.transport == t)
                .collect();
            if !of_t.is_empty() {
                by_node.insert((n.name.as_str(), t), Excluded::new(of_t));
            }
        }
    }
    for b in &plan.bindings {
        let Host::Node { node, address } = &b.host else {
            continue;
        };
        let Some(ex) = by_node.get(&(node.as_str(), b.transport)) else {
            continue;
        };
        let Some((range, port)) = ex.hit(&b.ports) else {
            continue;
        };
        let what = match &b.unit {
            Some(u) => format!("{}.{} (unit {u})", b.component, b.port_id),
            None => format!("{}.{}", b.component, b.port_id),
        };
        out.push(finding(
            "C114",
            format!(
                "{what} on node {node} ({address}) uses {} {} (from {port}), inside the Windows \
                 excluded port range {} of the node: the bind will fail",
                b.transport.as_str(),
                b.ports,
                range.ports,
            ),
            vec![
                loc.binding(b),
                Place {
                    what: format!(
                        "{} excluded range {} of node {node}",
                        b.transport.as_str(),
                        range.ports
                    ),
                    location: Some(range.location.clone()),
                },
            ],
            format!(
                "move the port out of {}, or free the range on {node}: `netsh int ipv4 delete \
                 excludedportrange protocol={} startport={} numberofports={}` (as administrator), \
                 or reserve the planned ports first (`netsh int ipv4 add excludedportrange`) so \
                 Hyper-V/WinNAT choose other ranges at the next reboot",
                range.ports,
                b.transport.as_str(),
                range.ports.lo(),
                u32::from(range.ports.hi()) - u32::from(range.ports.lo()) + 1,
            ),
        ));
    }
}

/// Where a site service is defined.
fn service_place(dep: &Deployment, b: &Binding) -> Place {
    let at = dep.services.iter().find(|s| s.name == b.port_id);
    Place {
        what: format!(
            "{}.{} = {} {} (site service)",
            b.component,
            b.port_id,
            b.transport.as_str(),
            b.ports
        ),
        location: at.map(|s| s.location.clone()),
    }
}

/// C111: two units holding the same package with an instance on one node. IA installs a unit's
/// packages on every node holding an instance of it, so that node runs two copies of the package
/// (inference from the IA model: packages are installed per unit, instances per node). The copies
/// need distinct ports and do not stand in for each other.
fn packages_twice_on_node(dep: &Deployment, loc: &Locator, out: &mut Vec<Finding>) {
    // (node, package) -> the first unit holding it there: one pass over instances × packages.
    let mut first: std::collections::HashMap<(usize, &str), &str> =
        std::collections::HashMap::new();
    let mut reported = HashSet::new();
    for u in &dep.units {
        for &n in &u.instances {
            for p in &u.packages {
                match first.get(&(n, p.as_str())) {
                    None => {
                        first.insert((n, p.as_str()), u.name.as_str());
                    }
                    Some(&other) if other != u.name => {
                        // One finding per (package, pair of units), naming the shared nodes.
                        if !reported.insert((p.as_str(), other, u.name.as_str())) {
                            continue;
                        }
                        let shared: Vec<&str> = u
                            .instances
                            .iter()
                            .filter(|&&i| first.get(&(i, p.as_str())) == Some(&other))
                            .map(|&i| dep.nodes[i].name.as_str())
                            .collect();
                        out.push(finding(
                            "C111",
                            format!(
                                "{p} is in units {other} and {} that both have an instance on {}",
                                u.name,
                                shared.join(", ")
                            ),
                            vec![loc.package(other, p), loc.package(&u.name, p)],
                            format!(
                                "IA installs {p} with each unit on every node holding an instance, so {} would run two copies of it: they need distinct ports (C101/C102) and are not each other's failover; keep {p} in one unit unless two copies are meant",
                                dep.nodes[n].name
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
    }
}

/// C112: zones whose CIDRs overlap. CIDRs nest or are disjoint, so one sort by (network,
/// prefix) and a stack of the enclosing networks finds every container: O(n log n) (the stack
/// holds nested networks only: at most one per prefix length and zone).
/// A zone of the whole address space (`0.0.0.0/0`, `::/0`: "anywhere", e.g. web visitors) is
/// meant to contain the others and is left out.
fn overlapping_zones(dep: &Deployment, out: &mut Vec<Finding>) {
    let mut nets: Vec<(ipnet::IpNet, usize)> = dep
        .zones
        .iter()
        .enumerate()
        .flat_map(|(z, zone)| zone.cidrs.iter().map(move |c| (*c, z)))
        .filter(|(c, _)| c.prefix_len() > 0)
        .collect();
    nets.sort_by(|a, b| {
        (a.0.network(), a.0.prefix_len(), a.1).cmp(&(b.0.network(), b.0.prefix_len(), b.1))
    });
    let mut stack: Vec<(ipnet::IpNet, usize)> = Vec::new();
    // (outer zone, inner zone) -> the first pair of networks found, in sweep order.
    let mut pairs: BTreeMap<(usize, usize), (ipnet::IpNet, ipnet::IpNet)> = BTreeMap::new();
    for &(net, z) in &nets {
        while stack.last().is_some_and(|(outer, _)| !outer.contains(&net)) {
            stack.pop();
        }
        // Every container of another zone: the stack is at most 129 deep (one network per
        // prefix length and zone at most), so this stays O(n log n).
        for &(outer, oz) in stack.iter().rev().filter(|(_, oz)| *oz != z) {
            let key = (oz.min(z), oz.max(z));
            pairs.entry(key).or_insert((outer, net));
        }
        stack.push((net, z));
    }
    for ((a, b), (outer, inner)) in pairs {
        let (za, zb) = (&dep.zones[a], &dep.zones[b]);
        let what = if outer == inner {
            format!("both list {outer}")
        } else {
            format!("{inner} lies inside {outer}")
        };
        out.push(finding(
            "C112",
            format!("zones {} and {} overlap: {what}", za.name, zb.name),
            [za, zb]
                .iter()
                .map(|z| Place {
                    what: format!("zone {}", z.name),
                    location: Some(z.location.clone()),
                })
                .collect(),
            "a source in both zones gets the flows of both (and `probe --from` tests either); give each network to one zone".to_string(),
        ));
    }
}

/// C113: a site service on a port that a component or another service uses on the same node.
/// On one address it is a clash (error); across addresses of one node it is a warning, since a
/// Windows service like RDP or SQL Server usually binds every address.
fn service_clashes(plan: &Plan, loc: &Locator, out: &mut Vec<Finding>) {
    // Only the nodes a service listens on are compared.
    let nodes: HashSet<&str> = plan
        .bindings
        .iter()
        .filter(|b| b.origin == Origin::Service)
        .map(|b| b.host.name())
        .collect();
    if nodes.is_empty() {
        return;
    }
    let mut by_node: BTreeMap<(&str, Transport), Vec<(IpAddr, &Binding)>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for b in &plan.bindings {
        if let Host::Node { node, address } = &b.host {
            if !nodes.contains(node.as_str()) {
                continue;
            }
            if seen.insert((
                node.as_str(),
                *address,
                &b.component,
                &b.port_id,
                b.transport,
            )) {
                by_node
                    .entry((node.as_str(), b.transport))
                    .or_default()
                    .push((*address, b));
            }
        }
    }
    // A unit on two nodes gives the same pair on each: report it once per address pair.
    let mut reported = HashSet::new();
    for ((node, transport), group) in &by_node {
        if !group.iter().any(|(_, b)| b.origin == Origin::Service) {
            continue;
        }
        let ranges: Vec<PortRange> = group.iter().map(|(_, b)| b.ports).collect();
        for (i, j) in overlapping_pairs(&ranges) {
            let ((aa, a), (ab, b)) = (group[i], group[j]);
            if a.origin != Origin::Service && b.origin != Origin::Service {
                continue; // components among themselves: C101, C102
            }
            // The service second, whatever order the plan has.
            let ((aa, a), (ab, b)) = if a.origin == Origin::Service && b.origin != Origin::Service {
                ((ab, b), (aa, a))
            } else {
                ((aa, a), (ab, b))
            };
            let key = (aa, ab, &a.component, &a.port_id, &b.port_id, *transport);
            if aa == ab && !reported.insert(key) {
                continue;
            }
            let port = a.ports.first_common(&b.ports).expect("overlapping");
            let mut f = if aa == ab {
                finding(
                    "C113",
                    format!(
                        "service {} and {}.{} both listen on {aa} {} port {port} (node {node})",
                        b.port_id,
                        a.component,
                        a.port_id,
                        transport.as_str()
                    ),
                    vec![loc.binding(b), loc.binding(a)],
                    if a.origin == Origin::Service {
                        format!(
                            "one port, one service: if both are the same service for different sources, make them one [services.{}] whose `from` lists every source (and `to` every destination); else move one to another port",
                            a.port_id
                        )
                    } else {
                        format!(
                            "move service {} to another port, or the other to another port",
                            b.port_id
                        )
                    },
                )
            } else {
                let mut f = finding(
                    "C113",
                    format!(
                        "node {node}: service {} on {ab} and {}.{} on {aa} share {} port {port}",
                        b.port_id,
                        a.component,
                        a.port_id,
                        transport.as_str()
                    ),
                    vec![loc.binding(b), loc.binding(a)],
                    "they clash if the service binds every address of the node (most Windows services do); give one another port if in doubt".to_string(),
                );
                f.severity = Severity::Warning;
                f
            };
            f.places.dedup();
            out.push(f);
        }
    }
}

#[cfg(test)]
mod site_tests {
    use super::*;
    use crate::deployment::Zone;
    use crate::diag::Source;

    fn dep(zones: Vec<Vec<ipnet::IpNet>>) -> Deployment {
        let loc = Location {
            file: "t".into(),
            line: 1,
            column: 1,
        };
        Deployment {
            name: "t".into(),
            source: Source::new("t", ""),
            zones: zones
                .into_iter()
                .enumerate()
                .map(|(i, cidrs)| Zone {
                    name: format!("z{i}"),
                    cidrs,
                    roles: vec![],
                    location: loc.clone(),
                })
                .collect(),
            nodes: vec![],
            units: vec![],
            services: vec![],
            firewalls: vec![],
        }
    }

    /// The sweep of C112 finds exactly the pairs of zones that a comparison of every pair of
    /// networks finds (whole-space networks left out), on many small random systems.
    #[test]
    fn overlapping_zones_sweep_matches_every_pair() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..300 {
            let zones: Vec<Vec<ipnet::IpNet>> = (0..(next() % 6 + 1))
                .map(|_| {
                    (0..(next() % 3 + 1))
                        .map(|_| {
                            let prefix = (next() % 9) as u8 + 20; // /20 to /28 inside 10.0.0.0/20
                            let addr =
                                std::net::Ipv4Addr::from(0x0a00_0000 | (next() as u32 & 0x0fff));
                            ipnet::IpNet::V4(ipnet::Ipv4Net::new(addr, prefix).unwrap().trunc())
                        })
                        .collect()
                })
                .collect();
            let d = dep(zones.clone());
            let mut out = Vec::new();
            overlapping_zones(&d, &mut out);
            let mut got: Vec<String> = out
                .iter()
                .map(|f| {
                    let z: Vec<&str> = f.places.iter().map(|p| p.what.as_str()).collect();
                    z.join("+")
                })
                .collect();
            got.sort();
            let mut want = Vec::new();
            for a in 0..zones.len() {
                for b in a + 1..zones.len() {
                    let hit = zones[a].iter().any(|x| {
                        zones[b]
                            .iter()
                            .any(|y| x.contains(&y.network()) || y.contains(&x.network()))
                    });
                    if hit {
                        want.push(format!("zone z{a}+zone z{b}"));
                    }
                }
            }
            want.sort();
            assert_eq!(got, want, "{zones:?}");
        }
    }

    #[test]
    fn whole_space_zones_are_left_out() {
        let any: ipnet::IpNet = "0.0.0.0/0".parse().unwrap();
        let lan: ipnet::IpNet = "10.1.0.0/24".parse().unwrap();
        let mut out = Vec::new();
        overlapping_zones(&dep(vec![vec![any], vec![lan]]), &mut out);
        assert!(out.is_empty(), "{out:?}");
        overlapping_zones(&dep(vec![vec![lan], vec![lan]]), &mut out);
        assert_eq!(out.len(), 1);
        assert!(
            out[0].message.contains("both list 10.1.0.0/24"),
            "{}",
            out[0].message
        );
    }
}

#[cfg(test)]
mod excluded_tests {
    use super::*;
    use crate::deployment::ExcludedRange;
    use crate::range::Parity;

    /// The binary search of C114 meets a binding exactly when some range shares a port with it
    /// (every range compared), on many small random sets of ranges, parities included.
    #[test]
    fn hit_matches_every_range() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |m: u16| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(m)) as u16
        };
        let at = Location {
            file: "t".into(),
            line: 1,
            column: 1,
        };
        for _ in 0..2000 {
            let ranges: Vec<ExcludedRange> = (0..next(6))
                .map(|_| {
                    let lo = 1 + next(60);
                    ExcludedRange {
                        transport: Transport::Tcp,
                        ports: PortRange::new(lo, lo + next(8), None).unwrap(),
                        location: at.clone(),
                    }
                })
                .collect();
            let ex = Excluded::new(ranges.iter().collect());
            for _ in 0..20 {
                let mut lo = 1 + next(70);
                let mut hi = lo + next(10);
                let parity = match next(3) {
                    0 => None,
                    1 => Some(Parity::Even),
                    _ => Some(Parity::Odd),
                };
                if let Some(p) = parity {
                    if Parity::of(lo) != p {
                        lo += 1;
                    }
                    if Parity::of(hi) != p {
                        hi += 1;
                    }
                }
                let Ok(b) = PortRange::new(lo, hi, parity) else {
                    continue;
                };
                let want = ranges.iter().any(|r| b.first_common(&r.ports).is_some());
                match ex.hit(&b) {
                    Some((r, p)) => {
                        assert!(want && r.ports.contains(p) && b.contains(p), "{b} {p}")
                    }
                    None => assert!(!want, "{b} missed in {ranges:?}"),
                }
            }
        }
    }
}
