//! The plan: every port binding of a deployment (resolve) and the findings about them (check).

pub mod check;
mod resolve;

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::catalog::{Role, Transport};
use crate::range::PortRange;

pub use check::{Finding, Place, check};
pub use resolve::{peer_purpose, peer_senders, resolve};

/// Where a binding listens.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// A server: a HAC node (or mock node) and one of its addresses.
    Node { node: String, address: IpAddr },
    /// The agent workstations of a client zone.
    Workstations { zone: String, cidrs: Vec<IpNet> },
}

impl Host {
    /// The node name, or the zone name for workstations.
    pub fn name(&self) -> &str {
        match self {
            Host::Node { node, .. } => node,
            Host::Workstations { zone, .. } => zone,
        }
    }

    pub fn address_text(&self) -> String {
        match self {
            Host::Node { address, .. } => address.to_string(),
            Host::Workstations { cidrs, .. } => cidrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

/// Where a binding's port value came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "variables", rename_all = "kebab-case")]
pub enum Origin {
    /// The catalog's default.
    Default,
    /// Installation variables of the unit (names).
    UnitVariable(Vec<String>),
    /// Deployment variables of the node (names).
    NodeVariable(Vec<String>),
    /// A site service of the deployment file (`[services.NAME]`): component `service`, port id NAME.
    Service,
    /// A trunk peer's side of the trunk (`[nodes.NAME.trunk]`): component `trunk-peer`, port ids
    /// `sip-udp`, `sip-tcp`, `sip-tls` and `media`.
    Peer,
}

impl Origin {
    /// Like [`Origin::label`], without the component prefix of the variable names.
    pub fn short_label(&self, component: &str) -> String {
        let strip = |v: &[String]| {
            v.iter()
                .map(|n| {
                    n.strip_prefix(component)
                        .and_then(|n| n.strip_prefix('.'))
                        .unwrap_or(n)
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Origin::Default => "default".into(),
            Origin::UnitVariable(v) => format!("unit: {}", strip(v)),
            Origin::NodeVariable(v) => format!("node: {}", strip(v)),
            Origin::Service => "service".into(),
            Origin::Peer => "trunk peer".into(),
        }
    }

    pub fn label(&self) -> String {
        match self {
            Origin::Default => "default".into(),
            Origin::UnitVariable(v) => format!("unit variable {}", v.join(", ")),
            Origin::NodeVariable(v) => format!("node variable {}", v.join(", ")),
            Origin::Service => "site service".into(),
            Origin::Peer => "trunk peer".into(),
        }
    }
}

/// One port (or range) that one host listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub host: Host,
    /// The virtual unit, for packages.
    pub unit: Option<String>,
    pub component: String,
    pub port_id: String,
    pub transport: Transport,
    pub ports: PortRange,
    pub origin: Origin,
    /// Who connects (the catalog's roles; a service's roles).
    pub from: Vec<Role>,
    /// Zones that connect by name (only site services name zones), in file order.
    pub from_zones: Vec<String>,
    /// When not empty, only these addresses of the roles connect: a trunk peer's SIP ports are
    /// reached from the SIP Bridge units' virtual IPs, its media range from the MRS units'
    /// (docs/deployment.md, "Trunk peers"), not from every server.
    pub from_hosts: Vec<IpAddr>,
}

/// The component name of every site-service binding: its flows and rules read `service.NAME`.
pub const SERVICE_COMPONENT: &str = "service";

/// The component name of a trunk peer's bindings: its flows and rules read `trunk-peer.sip-udp`,
/// `trunk-peer.media`.
pub const PEER_COMPONENT: &str = "trunk-peer";

impl Binding {
    /// Whether traffic from `zone` is meant to reach this binding: a role it carries, or its name.
    pub fn reachable_from(&self, zone: &crate::deployment::Zone) -> bool {
        self.reached_as(zone).is_some()
    }

    /// The role through which `zone` reaches this binding: the first of the binding's roles that
    /// the zone carries, else [`Role::Zones`] when a site service names the zone itself.
    /// A binding reached only from some hosts is reached from the zones that hold one of them.
    pub fn reached_as(&self, zone: &crate::deployment::Zone) -> Option<Role> {
        let holds = |z: &crate::deployment::Zone| {
            self.from_hosts.is_empty()
                || (self.from_hosts.iter()).any(|a| z.cidrs.iter().any(|c| c.contains(a)))
        };
        self.from
            .iter()
            .copied()
            .find(|r| zone.roles.contains(r) && holds(zone))
            .or_else(|| self.from_zones.contains(&zone.name).then_some(Role::Zones))
    }
}

impl Serialize for Binding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Binding", 12)?;
        match &self.host {
            Host::Node { node, address } => {
                st.serialize_field("node", node)?;
                st.serialize_field("kind", "server")?;
                st.serialize_field("address", address)?;
            }
            Host::Workstations { zone, cidrs } => {
                st.serialize_field("node", zone)?;
                st.serialize_field("kind", "workstations")?;
                st.serialize_field("address", cidrs)?;
            }
        }
        st.serialize_field("unit", &self.unit)?;
        st.serialize_field("component", &self.component)?;
        st.serialize_field("port_id", &self.port_id)?;
        st.serialize_field("transport", &self.transport)?;
        st.serialize_field("first_port", &self.ports.lo())?;
        st.serialize_field("last_port", &self.ports.hi())?;
        st.serialize_field("parity", &self.ports.parity())?;
        st.serialize_field("origin", &self.origin)?;
        st.serialize_field("from", &self.from)?;
        if !self.from_zones.is_empty() {
            st.serialize_field("from_zones", &self.from_zones)?;
        }
        if !self.from_hosts.is_empty() {
            st.serialize_field("from_hosts", &self.from_hosts)?;
        }
        st.end()
    }
}

/// A port with no default that nobody set: it is not opened anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unset {
    pub unit: String,
    pub component: String,
    pub port_id: String,
    pub variable: String,
}

/// Every binding of a deployment, in a stable order: nodes in file order (HAC first, then units in
/// file order, catalog order within), then client zones.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub bindings: Vec<Binding>,
    #[serde(skip)]
    pub unset: Vec<Unset>,
}

impl Plan {
    /// The bindings of one node (all its addresses) or one client zone.
    pub fn for_host<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Binding> + 'a {
        self.bindings.iter().filter(move |b| b.host.name() == name)
    }

    /// What `zone` must reach on the servers (of one node, when given): every server binding it
    /// reaches, with its address and the role it is reached as, each (address, transport, ports,
    /// component, port id) once, in plan order. What a prober in the zone probes, and what the
    /// report expects of it.
    pub fn zone_targets<'a>(
        &'a self,
        zone: &'a crate::deployment::Zone,
        node: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Binding, IpAddr, Role)> + 'a {
        let mut seen = std::collections::HashSet::new();
        self.bindings.iter().filter_map(move |b| {
            let Host::Node { node: n, address } = &b.host else {
                return None;
            };
            if node.is_some_and(|want| want != n) {
                return None;
            }
            let role = b.reached_as(zone)?;
            seen.insert((*address, b.transport, b.ports, &b.component, &b.port_id))
                .then_some((b, *address, role))
        })
    }
}
