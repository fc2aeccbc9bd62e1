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
    /// Whether the node runs SCC components: HAC, or an instance of a unit. A node that runs none
    /// is a plain host (an SBC, a database, a mail or jump host): a source only of the flows
    /// named for it (a trunk peer's, site services'), never of the servers' flows.
    pub scc: bool,
    /// Whether the file says so (`scc = false`, or a `trunk` table): check C116 asks otherwise.
    pub plain_declared: bool,
    /// `[nodes.NAME.trunk]`: the node is a SIP trunk peer.
    pub trunk: Option<TrunkPeer>,
    /// `[nodes.NAME.interfaces]`: the node's network interfaces and the zone behind each, in
    /// file order (empty: not said). Loopback (`lo`) is implicit and never listed.
    pub interfaces: Vec<Interface>,
}

/// A node's network interface and the zones whose traffic arrives on it: `audit --node` decides
/// the rules that match an input interface with it (docs/audit.md, Interfaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The name as Linux has it (`ens192`): 1-15 bytes, no `/`, `:` or whitespace.
    pub name: String,
    /// Indexes into [`Deployment::zones`], in file order, each once, at least one.
    pub zones: Vec<usize>,
    pub location: Location,
}

/// Why Linux refuses an interface name (`dev_valid_name`: `ip link` and the kernel say the same),
/// or None when it takes it.
pub fn interface_name_refused(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name.len() > 15 {
        Some("it is longer than 15 bytes (IFNAMSIZ is 16, with the final NUL)")
    } else if name == "." || name == ".." {
        Some("`.` and `..` are not interface names")
    } else if name.contains('/') {
        Some("it contains `/`")
    } else if name.contains(':') {
        Some("it contains `:` (an alias label, not an interface)")
    } else if name.bytes().any(|b| b == 0) {
        Some("it contains a NUL")
    } else if name
        .bytes()
        .any(|b| matches!(b, b' ' | b'\t'..=b'\r' | 0xa0))
    {
        // The kernel's isspace(): ASCII whitespace and Latin-1's no-break space byte.
        Some("it contains whitespace")
    } else {
        None
    }
}

/// The SIP transports a trunk peer speaks: TLS runs over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipTransport {
    Udp,
    Tcp,
    Tls,
}

impl SipTransport {
    pub fn transport(self) -> Transport {
        match self {
            SipTransport::Udp => Transport::Udp,
            SipTransport::Tcp | SipTransport::Tls => Transport::Tcp,
        }
    }

    /// The key in `[nodes.NAME.trunk]`.
    pub fn key(self) -> &'static str {
        match self {
            SipTransport::Udp => "udp",
            SipTransport::Tcp => "tcp",
            SipTransport::Tls => "tls",
        }
    }
}

/// An SBC or a carrier's SIP peer (`[nodes.NAME.trunk]`): its side of the trunk. Its address is a
/// source of the catalog's trunk ports (SIP Bridge's SIP, MRS's media areas, CDT's media), and it
/// listens on its SIP ports and media range for SIP Bridge and MRS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkPeer {
    /// Its SIP port (or range) per transport, in the order udp, tcp, tls.
    pub sip: Vec<(SipTransport, crate::range::PortRange)>,
    /// Its RTP/RTCP ports (UDP), when given.
    pub media: Option<crate::range::PortRange>,
    pub location: Location,
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

/// A network firewall (appliance) between zones (`[firewalls.NAME]`): which zones it separates,
/// the appliance's name for each, and the Aerleon platforms to render its policy for. Which
/// flows cross it is answered in [`crate::flows::crossings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    pub name: String,
    /// The zones it separates, in file order, each once, at least two.
    pub zones: Vec<FirewallZone>,
    /// Validated Aerleon platform names, defaults filled in.
    pub platforms: Vec<String>,
    pub location: Location,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallZone {
    /// Index into [`Deployment::zones`].
    pub zone: usize,
    /// The appliance's name for it (security zone, nameif, interface or ACL name); default: the
    /// zone's name.
    pub name: String,
    pub location: Location,
}

/// The Aerleon platforms a `--network` policy renders for, in the order of [`Firewall::platforms`]
/// when the file gives none.
pub const NETWORK_PLATFORMS: [&str; 6] = [
    "ciscoasa",
    "paloalto",
    "srx",
    "fortigate",
    "nftables",
    "iptables",
];

/// The longest appliance name a platform accepts for a zone (its security zone, `nameif` or
/// interface), or None when the platform does not use the name (nftables and iptables match the
/// zones' addresses). PAN-OS zone names stop at 31 characters, FortiOS zones at 35, ASA `nameif`
/// at 48, SRX zones at 63.
pub fn appliance_name_max(platform: &str) -> Option<usize> {
    match platform {
        "paloalto" => Some(31),
        "fortigate" => Some(35),
        "ciscoasa" => Some(48),
        "srx" => Some(63),
        _ => None,
    }
}

/// Whether every platform takes `name` for a zone: letters, digits, `-`, `_` and `.`, starting
/// with a letter or digit (the characters PAN-OS, FortiOS, ASA and SRX share).
pub fn appliance_name_chars(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
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
    /// Network firewalls between zones, in file order.
    pub firewalls: Vec<Firewall>,
}

impl Deployment {
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The trunk peers: nodes with a `trunk` table.
    pub fn peers(&self) -> impl Iterator<Item = (&Node, &TrunkPeer)> {
        self.nodes
            .iter()
            .filter_map(|n| n.trunk.as_ref().map(|t| (n, t)))
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
