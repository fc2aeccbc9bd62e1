//! Resolution: from a validated deployment and the catalog to the bindings of every host.

use super::{Binding, Host, Origin, Plan, Unset};
use crate::catalog::{Catalog, Component, Placement, PortDefault};
use crate::deployment::{Deployment, Setting, area_values};
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
            });
        }
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
    for (node, units) in deployment.nodes.iter().zip(&units_of) {
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
                });
            }
        }
    }
    plan
}
