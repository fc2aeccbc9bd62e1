//! The port catalog: every component and every documented port, loaded from TOML and validated.

use std::collections::HashSet;
use std::ops::Range;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use toml::Spanned;

use crate::diag::{Diagnostic, Diagnostics, Source, did_you_mean, from_toml};
use crate::range::{Parity, PortRange, RangeError, port_number};

/// The catalog shipped in the binary: `data/catalog.toml`.
pub const EMBEDDED: &str = include_str!("../data/catalog.toml");
pub const EMBEDDED_NAME: &str = "<embedded catalog>";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// The protocol word of the source page's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "TLS")]
    Tls,
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Tls => "TLS",
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
        }
    }

    /// The transport this protocol runs over.
    pub fn transport(self) -> Transport {
        match self {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        }
    }
}

/// Where a component runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// Installed in a virtual unit; binds on the unit's virtual IP.
    Package,
    /// Runs on every HAC node; binds on the node's address.
    Node,
    /// Runs on agent PCs in client zones.
    Workstation,
}

impl Placement {
    pub fn as_str(self) -> &'static str {
        match self {
            Placement::Package => "package",
            Placement::Node => "node",
            Placement::Workstation => "workstation",
        }
    }
}

/// Who connects to a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Servers,
    Clients,
    Admins,
    Trunk,
    Ivr,
    Visitors,
    /// Not a catalog role: the sources of a site service that names zones (`from = ["dmz"]`).
    /// Never read from a file; not in [`Role::ALL`].
    #[serde(skip_deserializing)]
    Zones,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Servers,
        Role::Clients,
        Role::Admins,
        Role::Trunk,
        Role::Ivr,
        Role::Visitors,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Servers => "servers",
            Role::Clients => "clients",
            Role::Admins => "admins",
            Role::Trunk => "trunk",
            Role::Ivr => "ivr",
            Role::Visitors => "visitors",
            Role::Zones => "zones",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// An MRS-style area: `first_port` to `first_port + multiplier × streams`, end included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Area {
    pub first_port: u16,
    pub multiplier: u16,
    pub streams: u32,
    /// IA's variable names (without the component prefix).
    pub first_port_variable: String,
    pub streams_variable: String,
}

impl Area {
    pub fn range(&self) -> PortRange {
        PortRange::area(self.first_port, self.multiplier, self.streams)
            .expect("validated when the catalog was loaded")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortDefault {
    Port(u16),
    Range(PortRange),
    Area(Area),
}

impl PortDefault {
    pub fn range(&self) -> PortRange {
        match self {
            PortDefault::Port(p) => PortRange::single(*p).expect("validated port"),
            PortDefault::Range(r) => *r,
            PortDefault::Area(a) => a.range(),
        }
    }

    /// How the source page would write it: `21018`, `5004-5030 even`, `8000 + 2 x 200 (8000-8400)`.
    pub fn describe(&self) -> String {
        match self {
            PortDefault::Port(p) => p.to_string(),
            PortDefault::Range(r) => r.to_string(),
            PortDefault::Area(a) => {
                format!(
                    "{} + {} x {} ({})",
                    a.first_port,
                    a.multiplier,
                    a.streams,
                    a.range()
                )
            }
        }
    }
}

impl Serialize for PortDefault {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct AreaJson {
            first_port: u16,
            multiplier: u16,
            streams: u32,
        }
        let mut map = s.serialize_map(None)?;
        match self {
            PortDefault::Port(p) => map.serialize_entry("port", p)?,
            PortDefault::Range(r) => {
                map.serialize_entry("range", &[r.lo(), r.hi()])?;
                if let Some(p) = r.parity() {
                    map.serialize_entry("parity", &p)?;
                }
            }
            PortDefault::Area(a) => map.serialize_entry(
                "area",
                &AreaJson {
                    first_port: a.first_port,
                    multiplier: a.multiplier,
                    streams: a.streams,
                },
            )?,
        }
        map.end()
    }
}

/// One row of the source page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub id: String,
    pub transport: Transport,
    pub protocol: Protocol,
    pub configurable: bool,
    pub default: Option<PortDefault>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    pub usage: String,
    pub from: Vec<Role>,
    /// The installation variables that set this port (empty when not configurable).
    pub variables: Vec<String>,
    /// How the tool reads a quirk of the source page's row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    pub id: String,
    pub name: String,
    pub placement: Placement,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub ports: Vec<Port>,
}

impl Component {
    pub fn port(&self, id: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.id == id)
    }
}

/// The validated catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    pub source: Option<String>,
    pub components: Vec<Component>,
}

/// What an installation variable of the catalog sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableKind {
    /// The port itself (`<component>.<port id>`).
    Port,
    /// The first port of an area.
    AreaFirstPort,
    /// The number of streams of an area.
    AreaStreams,
}

/// An installation variable: which component and port it belongs to, and what it sets.
#[derive(Debug, Clone, Copy)]
pub struct Variable<'a> {
    pub component: &'a Component,
    pub port: &'a Port,
    pub kind: VariableKind,
}

impl Catalog {
    /// The catalog shipped in the binary.
    pub fn embedded() -> Catalog {
        Catalog::parse(&Source::new(EMBEDDED_NAME, EMBEDDED))
            .expect("the embedded catalog is valid (tested)")
    }

    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.id == id)
    }

    pub fn component_ids(&self) -> impl Iterator<Item = &str> + Clone {
        self.components.iter().map(|c| c.id.as_str())
    }

    /// A component by id, or an error naming the closest valid id.
    pub fn require_component(&self, id: &str) -> Result<&Component, Diagnostics> {
        self.component(id).ok_or_else(|| {
            Diagnostics(vec![
                Diagnostic::error("E012", format!("unknown component `{id}`"))
                    .hint(did_you_mean(id, self.component_ids())),
            ])
        })
    }

    /// Every variable the catalog defines, as `component.name`, in catalog order.
    pub fn variables(&self) -> impl Iterator<Item = (String, Variable<'_>)> + '_ {
        self.components.iter().flat_map(|c| {
            c.ports.iter().flat_map(move |p| {
                variable_names(c, p).into_iter().map(move |(name, kind)| {
                    (
                        name,
                        Variable {
                            component: c,
                            port: p,
                            kind,
                        },
                    )
                })
            })
        })
    }

    /// The variable named `name` (`component.variable`), if the catalog has it.
    pub fn variable(&self, name: &str) -> Option<Variable<'_>> {
        self.variables().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Parses and validates a catalog; every problem found is reported, located.
    pub fn parse(source: &Source) -> Result<Catalog, Diagnostics> {
        let raw: RawCatalog =
            toml::from_str(&source.text).map_err(|e| Diagnostics(vec![from_toml(source, &e)]))?;
        validate(source, raw)
    }
}

/// The variables of one port: itself when configurable; an area's two.
fn variable_names(c: &Component, p: &Port) -> Vec<(String, VariableKind)> {
    match &p.default {
        Some(PortDefault::Area(a)) => vec![
            (
                format!("{}.{}", c.id, a.first_port_variable),
                VariableKind::AreaFirstPort,
            ),
            (
                format!("{}.{}", c.id, a.streams_variable),
                VariableKind::AreaStreams,
            ),
        ],
        _ if p.configurable => vec![(format!("{}.{}", c.id, p.id), VariableKind::Port)],
        _ => vec![],
    }
}

// ---- the raw serde mirror of the file ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    source: Option<String>,
    components: Vec<RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComponent {
    id: Spanned<String>,
    name: String,
    placement: Placement,
    note: Option<String>,
    ports: Spanned<Vec<RawPort>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    id: Spanned<String>,
    transport: Spanned<Transport>,
    protocol: Protocol,
    default: Option<Spanned<RawDefault>>,
    first_port_variable: Option<Spanned<String>>,
    streams_variable: Option<Spanned<String>>,
    configurable: bool,
    usage: Spanned<String>,
    since: Option<String>,
    from: Spanned<Vec<Role>>,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefault {
    port: Option<Spanned<i64>>,
    range: Option<Spanned<Vec<i64>>>,
    parity: Option<Parity>,
    area: Option<Spanned<RawArea>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArea {
    first_port: Spanned<i64>,
    multiplier: Spanned<i64>,
    streams: Spanned<i64>,
}

// ---- validation ----

/// Lowercase ASCII words joined by single hyphens: `agent-server`.
pub fn is_kebab_case(s: &str) -> bool {
    !s.is_empty()
        && s.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && s.as_bytes()[0].is_ascii_lowercase()
}

struct Validator<'s> {
    source: &'s Source,
    problems: Vec<Diagnostic>,
}

impl Validator<'_> {
    fn err(&mut self, code: &'static str, span: Range<usize>, msg: String, hint: &str) {
        let d = Diagnostic::error(code, msg).at(self.source, &span);
        self.problems
            .push(if hint.is_empty() { d } else { d.hint(hint) });
    }

    fn port(&mut self, v: &Spanned<i64>) -> Option<u16> {
        match port_number(*v.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                self.err("C003", v.span(), e.to_string(), "ports are 1-65535");
                None
            }
        }
    }

    fn default(&mut self, raw: &RawPort) -> Option<PortDefault> {
        let d = raw.default.as_ref()?;
        let span = d.span();
        let d = d.get_ref();
        let given = [d.port.is_some(), d.range.is_some(), d.area.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            self.err(
                "C004",
                span,
                "a default needs exactly one of `port`, `range` or `area`".into(),
                "write { port = N }, { range = [LO, HI] } or { area = { first_port, multiplier, streams } }",
            );
            return None;
        }
        if d.parity.is_some() && d.range.is_none() {
            self.err("C004", span, "`parity` goes only with `range`".into(), "");
            return None;
        }
        if let Some(p) = &d.port {
            return self.port(p).map(PortDefault::Port);
        }
        if let Some(r) = &d.range {
            let ends = r.get_ref();
            if ends.len() != 2 {
                self.err(
                    "C004",
                    r.span(),
                    format!("a range has two ends, this one has {}", ends.len()),
                    "write range = [LO, HI]",
                );
                return None;
            }
            let lo = port_number(ends[0]);
            let hi = port_number(ends[1]);
            let built = lo.and_then(|lo| hi.and_then(|hi| PortRange::new(lo, hi, d.parity)));
            return match built {
                Ok(r) => Some(PortDefault::Range(r)),
                Err(e) => {
                    let hint = match e {
                        RangeError::Parity { .. } => {
                            "both ends of an even or odd range have that parity"
                        }
                        RangeError::Reversed(..) => "write the lower port first",
                        _ => "ports are 1-65535",
                    };
                    self.err("C005", r.span(), e.to_string(), hint);
                    None
                }
            };
        }
        let area = d.area.as_ref().expect("one of three was given");
        let a = area.get_ref();
        let first = self.port(&a.first_port)?;
        let multiplier = match u16::try_from(*a.multiplier.get_ref()) {
            Ok(m) if m >= 1 => m,
            _ => {
                self.err(
                    "C005",
                    a.multiplier.span(),
                    "an area's multiplier is 1-65535".into(),
                    "",
                );
                return None;
            }
        };
        let Ok(streams) = u32::try_from(*a.streams.get_ref()) else {
            self.err(
                "C005",
                a.streams.span(),
                "an area's streams cannot be negative".into(),
                "",
            );
            return None;
        };
        if let Err(e) = PortRange::area(first, multiplier, streams) {
            self.err(
                "C005",
                area.span(),
                e.to_string(),
                "lower the first port or the streams",
            );
            return None;
        }
        let names = (
            raw.first_port_variable.as_ref(),
            raw.streams_variable.as_ref(),
        );
        let (Some(fv), Some(sv)) = names else {
            self.err(
                "C006",
                area.span(),
                "an area needs `first_port_variable` and `streams_variable`".into(),
                "name the installation variables that set the area's first port and streams",
            );
            return None;
        };
        for v in [fv, sv] {
            if !is_kebab_case(v.get_ref()) {
                self.err(
                    "C001",
                    v.span(),
                    format!("variable `{}` is not kebab-case", v.get_ref()),
                    "",
                );
            }
        }
        Some(PortDefault::Area(Area {
            first_port: first,
            multiplier,
            streams,
            first_port_variable: fv.get_ref().clone(),
            streams_variable: sv.get_ref().clone(),
        }))
    }
}

fn validate(source: &Source, raw: RawCatalog) -> Result<Catalog, Diagnostics> {
    let mut v = Validator {
        source,
        problems: vec![],
    };
    let mut component_ids = HashSet::new();
    let mut variables: HashSet<String> = HashSet::new();
    let mut components = Vec::new();
    for rc in raw.components {
        let id = rc.id.get_ref();
        if !is_kebab_case(id) {
            v.err(
                "C001",
                rc.id.span(),
                format!("component id `{id}` is not kebab-case"),
                "write ids like `agent-server`",
            );
        }
        if !component_ids.insert(id.clone()) {
            v.err(
                "C002",
                rc.id.span(),
                format!("component id `{id}` appears twice"),
                "component ids are unique",
            );
        }
        if rc.ports.get_ref().is_empty() {
            v.err(
                "C007",
                rc.ports.span(),
                format!("component `{id}` has no ports"),
                "",
            );
        }
        let mut port_ids = HashSet::new();
        let mut ports = Vec::new();
        for rp in rc.ports.get_ref() {
            let pid = rp.id.get_ref();
            if !is_kebab_case(pid) {
                v.err(
                    "C001",
                    rp.id.span(),
                    format!("port id `{pid}` is not kebab-case"),
                    "write ids like `client-port`",
                );
            }
            if !port_ids.insert(pid.clone()) {
                v.err(
                    "C002",
                    rp.id.span(),
                    format!("port id `{pid}` appears twice in `{id}`"),
                    "port ids are unique within a component",
                );
            }
            if rp.protocol.transport() != *rp.transport.get_ref() {
                v.err(
                    "C008",
                    rp.transport.span(),
                    format!(
                        "protocol {} runs over {}, not {}",
                        rp.protocol.as_str(),
                        rp.protocol.transport().as_str(),
                        rp.transport.get_ref().as_str()
                    ),
                    "",
                );
            }
            if rp.from.get_ref().is_empty() {
                v.err(
                    "C007",
                    rp.from.span(),
                    format!("port `{id}.{pid}` has no roles in `from`"),
                    "name who connects: servers, clients, admins, trunk, ivr, visitors",
                );
            }
            if rp.usage.get_ref().trim().is_empty() {
                v.err(
                    "C007",
                    rp.usage.span(),
                    format!("port `{id}.{pid}` has an empty usage"),
                    "copy the page's usage text",
                );
            }
            let default = v.default(rp);
            let is_area = matches!(default, Some(PortDefault::Area(_)));
            if !is_area {
                for var in [&rp.first_port_variable, &rp.streams_variable]
                    .into_iter()
                    .flatten()
                {
                    v.err(
                        "C006",
                        var.span(),
                        "area variables go only with an area default".into(),
                        "",
                    );
                }
            }
            if rp.default.is_none() && !rp.configurable {
                v.err(
                    "C004",
                    rp.id.span(),
                    format!("port `{id}.{pid}` has no default and is not configurable"),
                    "a fixed port needs a default",
                );
            }
            let port = Port {
                id: pid.clone(),
                transport: *rp.transport.get_ref(),
                protocol: rp.protocol,
                configurable: rp.configurable,
                default,
                since: rp.since.clone(),
                usage: rp.usage.get_ref().clone(),
                from: rp.from.get_ref().clone(),
                variables: vec![],
                note: rp.note.clone(),
            };
            ports.push((port, rp.id.span()));
        }
        let mut component = Component {
            id: id.clone(),
            name: rc.name,
            placement: rc.placement,
            note: rc.note,
            ports: vec![],
        };
        for (mut port, span) in ports {
            let names: Vec<String> = variable_names(&component, &port)
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            for name in &names {
                if !variables.insert(name.clone()) {
                    v.err(
                        "C002",
                        span.clone(),
                        format!("variable `{name}` is defined twice"),
                        "variables are unique in a catalog",
                    );
                }
            }
            port.variables = names;
            component.ports.push(port);
        }
        components.push(component);
    }
    if v.problems.is_empty() {
        Ok(Catalog {
            source: raw.source,
            components,
        })
    } else {
        Err(Diagnostics(v.problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid() {
        let c = Catalog::embedded();
        assert_eq!(c.components.len(), 22);
        assert_eq!(
            c.components.iter().map(|c| c.ports.len()).sum::<usize>(),
            37
        );
    }

    #[test]
    fn kebab() {
        assert!(is_kebab_case("agent-server"));
        assert!(is_kebab_case("h323-bridge"));
        assert!(!is_kebab_case("Agent-server"));
        assert!(!is_kebab_case("agent--server"));
        assert!(!is_kebab_case("-agent"));
        assert!(!is_kebab_case("agent_server"));
        assert!(!is_kebab_case("1agent"));
    }
}
