//! Resolution: from a validated deployment and the catalog to the bindings of every host.

use super::{Binding, Host, Origin, Plan, Unset};
use crate::catalog::{Catalog, Component, Placement, PortDefault, Role, Transport};
use crate::deployment::{Deployment, Service, ServiceTarget, Setting, TrunkPeer, area_values};
use crate::range::PortRange;

/// The effective port of `port` given the settings in force, or `None` when it has no value.
fn effective(
    component: &Component,
    port: &crate::catalog::Port,
    settings: &[Setting],
) -> Option<(PortRange, Vec<String>)> {
    let get = |name: &str| settings.iter().find(|s| s.name == name).map(|s| s.value);
    match &port.default {
        Some(PortDefault::Area(area)) => {
            let a = area_values(component, area, settings);
            // Validation rejected areas past 65535, so this holds.
            PortRange::area(a.first, area.multiplier, a.streams)
                .ok()
                .map(|r| (r, a.set))
        }
        default => {
            let name = format!("{}.{}", component.id, port.id);
            match get(&name) {
                Some(v) if port.configurable => {
                    PortRange::single(v as u16).ok().map(|r| (r, vec![name]))
                }
                _ => default.as_ref().map(|d| (d.range(), vec![])),
            }
        }
    }
}

/// The bindings of `components` on `host`, their values from `settings` (named by `origin`).
fn bind<'c>(
    plan: &mut Plan,
    host: &Host,
    unit: Option<&String>,
    components: impl Iterator<Item = &'c Component>,
    settings: &[Setting],
    origin: fn(Vec<String>) -> Origin,
) {
    for c in components {
        for p in &c.ports {
            let Some((ports, used)) = effective(c, p, settings) else {
                continue;
            };
            plan.bindings.push(Binding {
                host: host.clone(),
                unit: unit.cloned(),
                component: c.id.clone(),
                port_id: p.id.clone(),
                transport: p.transport,
                ports,
                origin: if used.is_empty() {
                    Origin::Default
                } else {
                    origin(used)
                },
                from: p.from.clone(),
                from_zones: Vec::new(),
                from_hosts: Vec::new(),
            });
        }
    }
}

/// A trunk peer's side of the trunk: its SIP ports for SIP Bridge and its media range for MRS,
/// each only when some unit with an instance runs that package. Who connects is `servers`, and
/// of them only the virtual IPs of the units that run the package: SIP Bridge and MRS listen and
/// send on their unit's address, which HAC moves between the instance nodes, so the peer's
/// trunk configuration names that address and never a node's own (docs/deployment.md).
fn peer_bindings(plan: &mut Plan, deployment: &Deployment, host: &Host, peer: &TrunkPeer) {
    let mut push = |port_id: String, transport, ports, from_hosts: &[std::net::IpAddr]| {
        plan.bindings.push(Binding {
            host: host.clone(),
            unit: None,
            component: super::PEER_COMPONENT.to_string(),
            port_id,
            transport,
            ports,
            origin: Origin::Peer,
            from: vec![Role::Servers],
            from_zones: Vec::new(),
            from_hosts: from_hosts.to_vec(),
        });
    };
    let sip = peer_senders(deployment, "sip-udp");
    if !sip.is_empty() {
        for &(t, ports) in &peer.sip {
            push(format!("sip-{}", t.key()), t.transport(), ports, &sip);
        }
    }
    let mrs = peer_senders(deployment, "media");
    if let (Some(media), false) = (peer.media, mrs.is_empty()) {
        push("media".to_string(), Transport::Udp, media, &mrs);
    }
}

/// Who sends to a trunk peer's port (`sip-udp`, `sip-tcp`, `sip-tls`, `media`): the virtual IPs
/// of the units with an instance that run SIP Bridge (SIP) or MRS (media), sorted, each once.
pub fn peer_senders(deployment: &Deployment, port_id: &str) -> Vec<std::net::IpAddr> {
    let package = if port_id == "media" {
        "media-routing-server"
    } else {
        "sip-bridge"
    };
    let mut out: Vec<std::net::IpAddr> = (deployment.units.iter())
        .filter(|u| !u.instances.is_empty() && u.packages.iter().any(|p| p == package))
        .map(|u| u.address)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What a trunk peer's port is for, in rule descriptions.
pub fn peer_purpose(port_id: &str) -> &'static str {
    match port_id {
        "sip-udp" => "SIP from SIP Bridge (UDP)",
        "sip-tcp" => "SIP from SIP Bridge (TCP)",
        "sip-tls" => "SIP over TLS from SIP Bridge",
        _ => "RTP/RTCP from MRS",
    }
}

/// Every binding of the deployment.
pub fn resolve(deployment: &Deployment, catalog: &Catalog) -> Plan {
    let mut plan = Plan::default();
    let mut units_of = vec![Vec::new(); deployment.nodes.len()];
    for unit in &deployment.units {
        for &n in &unit.instances {
            units_of[n].push(unit);
        }
    }
    // Site services per node, with the address each binds there: one pass over the targets.
    let mut services_of: Vec<Vec<(&Service, std::net::IpAddr, Option<&String>)>> =
        vec![Vec::new(); deployment.nodes.len()];
    for s in &deployment.services {
        for t in &s.to {
            match *t {
                ServiceTarget::AllNodes => {
                    for (i, n) in deployment.nodes.iter().enumerate() {
                        services_of[i].push((s, n.address, None));
                    }
                }
                ServiceTarget::Node(i) => {
                    services_of[i].push((s, deployment.nodes[i].address, None));
                }
                ServiceTarget::Unit(u) => {
                    let unit = &deployment.units[u];
                    for &i in &unit.instances {
                        services_of[i].push((s, unit.address, Some(&unit.name)));
                    }
                }
            }
        }
    }
    for ((node, units), services) in deployment.nodes.iter().zip(&units_of).zip(&services_of) {
        let here = |address| Host::Node {
            node: node.name.clone(),
            address,
        };
        if node.hac {
            let hac = catalog
                .components
                .iter()
                .filter(|c| c.placement == Placement::Node);
            let host = here(node.address);
            bind(
                &mut plan,
                &host,
                None,
                hac,
                &node.variables,
                Origin::NodeVariable,
            );
        }
        for unit in units {
            let packages = catalog
                .components
                .iter()
                .filter(|c| unit.packages.contains(&c.id));
            let host = here(unit.address);
            bind(
                &mut plan,
                &host,
                Some(&unit.name),
                packages,
                &unit.variables,
                Origin::UnitVariable,
            );
        }
        if let Some(peer) = &node.trunk {
            peer_bindings(&mut plan, deployment, &here(node.address), peer);
        }
        let mut seen = std::collections::HashSet::new();
        for &(s, address, unit) in services {
            // `to = ["all-nodes", "DB1"]` names DB1 twice: one binding.
            if !seen.insert((&s.name, address, unit)) {
                continue;
            }
            plan.bindings.push(Binding {
                host: here(address),
                unit: unit.cloned(),
                component: super::SERVICE_COMPONENT.to_string(),
                port_id: s.name.clone(),
                transport: s.transport,
                ports: s.ports,
                origin: Origin::Service,
                from: s.from_roles.clone(),
                from_zones: s
                    .from_zones
                    .iter()
                    .map(|&z| deployment.zones[z].name.clone())
                    .collect(),
                from_hosts: Vec::new(),
            });
        }
    }
    for unit in &deployment.units {
        for c in catalog
            .components
            .iter()
            .filter(|c| unit.packages.contains(&c.id))
        {
            for p in c.ports.iter().filter(|p| p.default.is_none()) {
                if effective(c, p, &unit.variables).is_none() {
                    plan.unset.push(Unset {
                        unit: unit.name.clone(),
                        component: c.id.clone(),
                        port_id: p.id.clone(),
                        variable: format!("{}.{}", c.id, p.id),
                    });
                }
            }
        }
    }
    for zone in deployment
        .zones
        .iter()
        .filter(|z| z.roles.contains(&crate::catalog::Role::Clients))
    {
        for c in catalog
            .components
            .iter()
            .filter(|c| c.placement == Placement::Workstation)
        {
            for p in &c.ports {
                let Some(default) = &p.default else { continue };
                plan.bindings.push(Binding {
                    host: Host::Workstations {
                        zone: zone.name.clone(),
                        cidrs: zone.cidrs.clone(),
                    },
                    unit: None,
                    component: c.id.clone(),
                    port_id: p.id.clone(),
                    transport: p.transport,
                    ports: default.range(),
                    origin: Origin::Default,
                    from: p.from.clone(),
                    from_zones: Vec::new(),
                    from_hosts: Vec::new(),
                });
            }
        }
    }
    plan
}
