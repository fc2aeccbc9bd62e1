//! The system model: zones, HAC nodes and virtual units, validated from the deployment file.

pub mod generate;
pub mod raw;
pub mod shape;
mod validate;

use std::net::IpAddr;

use ipnet::IpNet;

use crate::catalog::{Area, Catalog, Component, Role, Transport};
use crate::diag::{Diagnostics, Location, Source};

pub use validate::parse;

/// The embedded default system and the starter files of `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Every package in one unit on one server: the demo setup (the embedded default)
    AllInOne,
    /// Two application servers, two web servers, a mock database node
    Redundant,
    /// Two sites, one package per unit, large MRS areas, IVR and web visitors
    Large,
}

impl Template {
    pub const ALL: [Template; 3] = [Template::AllInOne, Template::Redundant, Template::Large];

    pub fn name(self) -> &'static str {
        match self {
            Template::AllInOne => "all-in-one",
            Template::Redundant => "redundant",
            Template::Large => "large",
        }
    }

    /// The commented starter file, the same text as `examples/<name>.toml`.
    pub fn text(self) -> &'static str {
        match self {
            Template::AllInOne => include_str!("../../examples/all-in-one.toml"),
            Template::Redundant => include_str!("../../examples/redundant.toml"),
            Template::Large => include_str!("../../examples/large.toml"),
        }
    }

    pub fn source(self) -> Source {
        Source::new(format!("<{}>", self.name()), self.text())
    }

    pub fn load(self, catalog: &Catalog) -> Result<Deployment, Diagnostics> {
        parse(&self.source(), catalog)
    }
}

/// An installation or deployment variable set in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `component.variable`
    pub name: String,
    pub value: u32,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub cidrs: Vec<IpNet>,
    pub roles: Vec<Role>,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub address: IpAddr,
    /// Index into [`Deployment::zones`].
    pub zone: usize,
    /// False for a mock node (database or DMZ server without HAC software).
    pub hac: bool,
    pub variables: Vec<Setting>,
    /// `windows_excluded_ports`: ranges Windows reserves on this node (Hyper-V, WinNAT), in file
    /// order; check C114 finds planned ports inside them.
    pub windows_excluded: Vec<ExcludedRange>,
    pub location: Location,
    pub address_location: Location,
}

/// A Windows excluded port range of a node, as `netsh interface ipv4 show excludedportrange
/// protocol=tcp|udp` prints it: no listener of that transport can bind there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludedRange {
    pub transport: Transport,
    pub ports: crate::range::PortRange,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    pub address: IpAddr,
    /// Component ids of `package` placement, in file order, each once.
    pub packages: Vec<String>,
    /// Where each package is named in the file (parallel to `packages`).
    pub package_locations: Vec<Location>,
    /// Indexes into [`Deployment::nodes`], each once.
    pub instances: Vec<usize>,
    pub variables: Vec<Setting>,
    pub location: Location,
    pub address_location: Location,
}

/// Where a site service listens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceTarget {
    /// Every node's own address (mock nodes included).
    AllNodes,
    /// One node's address: an index into [`Deployment::nodes`].
    Node(usize),
    /// A unit's virtual IP on each of its instance nodes: an index into [`Deployment::units`].
    Unit(usize),
}

/// A site service (`[services.NAME]`): a flow the catalog does not know, e.g. RDP to every node
/// from the admins, SQL Server to the database node. Its bindings have origin `service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub transport: Transport,
    pub ports: crate::range::PortRange,
    /// The roles that connect, in file order, each once.
    pub from_roles: Vec<Role>,
    /// The zones that connect (indexes into [`Deployment::zones`]), in file order, each once.
    pub from_zones: Vec<usize>,
    /// Where it listens, in file order, each once.
    pub to: Vec<ServiceTarget>,
    pub note: String,
    pub location: Location,
}

/// A validated system model: every name it refers to exists, every value is in range.
#[derive(Debug, Clone)]
pub struct Deployment {
    pub name: String,
    pub source: Source,
    pub zones: Vec<Zone>,
    pub nodes: Vec<Node>,
    pub units: Vec<Unit>,
    /// Site services, in file order.
    pub services: Vec<Service>,
}

impl Deployment {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn zone(&self, name: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name == name)
    }

    /// The zones that carry `role`.
    pub fn zones_with(&self, role: Role) -> impl Iterator<Item = &Zone> {
        self.zones.iter().filter(move |z| z.roles.contains(&role))
    }
}

/// An area's first port and streams in force in a unit: its variables where set, else the
/// catalog's defaults. Validation and resolution both read areas through this one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaValues {
    pub first: u16,
    pub streams: u32,
    /// `component.first-port-variable` and `component.streams-variable`.
    pub first_variable: String,
    pub streams_variable: String,
    /// The variables of the two that the unit sets, in that order.
    pub set: Vec<String>,
}

pub fn area_values(component: &Component, area: &Area, settings: &[Setting]) -> AreaValues {
    let first_variable = format!("{}.{}", component.id, area.first_port_variable);
    let streams_variable = format!("{}.{}", component.id, area.streams_variable);
    let get = |name: &str| settings.iter().find(|s| s.name == name).map(|s| s.value);
    let mut set = Vec::new();
    // Settings are validated into 1-65535 before they are kept, so the first port fits.
    let first = match get(&first_variable) {
        Some(v) => {
            set.push(first_variable.clone());
            u16::try_from(v).unwrap_or(u16::MAX)
        }
        None => area.first_port,
    };
    let streams = match get(&streams_variable) {
        Some(v) => {
            set.push(streams_variable.clone());
            v
        }
        None => area.streams,
    };
    AreaValues {
        first,
        streams,
        first_variable,
        streams_variable,
        set,
    }
}
