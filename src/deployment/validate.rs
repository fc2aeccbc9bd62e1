//! Deployment validation: the raw file into a [`Deployment`] where every name resolves and every
//! value is in range. Every problem is collected, located, with a hint; nothing is guessed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use ipnet::IpNet;
use toml::Spanned;

use super::raw::{
    RawDeployment, RawExcluded, RawFirewall, RawNode, RawService, RawTrunk, RawUnit, in_file_order,
};
use super::{
    Deployment, ExcludedRange, Firewall, FirewallZone, Interface, Node, Service, ServiceTarget,
    Setting, SipTransport, TrunkPeer, Unit, Zone,
};
use crate::catalog::{Catalog, Placement, PortDefault, Role, Transport, VariableKind};
use crate::diag::{Diagnostic, Diagnostics, Source, did_you_mean, from_toml};
use crate::range::PortRange;

struct Ctx<'a> {
    source: &'a Source,
    catalog: &'a Catalog,
    problems: Vec<Diagnostic>,
}

impl Ctx<'_> {
    fn err(
        &mut self,
        code: &'static str,
        span: Range<usize>,
        msg: String,
        hint: impl Into<Option<String>>,
    ) {
        let d = Diagnostic::error(code, msg)
            .at(self.source, &span)
            .maybe_hint(hint.into());
        self.problems.push(d);
    }
}

/// Parses and validates a deployment file against a catalog.
pub fn parse(source: &Source, catalog: &Catalog) -> Result<Deployment, Diagnostics> {
    let raw = read(source)?;
    let mut cx = Ctx {
        source,
        catalog,
        problems: vec![],
    };
    let name = raw
        .name
        .as_ref()
        .map(|n| n.get_ref().clone())
        .unwrap_or_default();

    if raw.nodes.is_empty() {
        let span = raw.name.as_ref().map_or(0..0, |n| n.span());
        cx.err(
            "E004",
            span,
            "the deployment has no nodes".into(),
            "describe at least one server under [nodes.NAME]; `scc-ports init` prints a starter file".to_string(),
        );
    }

    let zones = zones(&mut cx, raw.zones);
    let zone_index: HashMap<&str, usize> = zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.name.as_str(), i))
        .collect();
    let zone_names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();

    let mut nodes = Vec::new();
    for (key, raw_node) in in_file_order(raw.nodes) {
        if let Some(n) = node(&mut cx, &key, raw_node, &zone_index, &zone_names) {
            nodes.push(n);
        }
    }
    let node_index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let node_names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();

    let mut units = Vec::new();
    for (key, raw_unit) in in_file_order(raw.units) {
        if let Some(u) = unit(&mut cx, &key, raw_unit, &node_index, &node_names) {
            units.push(u);
        }
    }

    let names = Names {
        zones: &zone_index,
        zone_names: &zone_names,
        nodes: &node_index,
        node_names: &node_names,
        units: units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.as_str(), i))
            .collect(),
        unit_names: units.iter().map(|u| u.name.as_str()).collect(),
    };
    let mut services = Vec::new();
    for (key, raw_service) in in_file_order(raw.services) {
        if let Some(s) = service(&mut cx, &key, raw_service.into_inner(), &names) {
            services.push(s);
        }
    }
    drop(names);
    let mut firewalls = Vec::new();
    for (key, raw_firewall) in in_file_order(raw.firewalls) {
        if let Some(f) = firewall(
            &mut cx,
            &key,
            raw_firewall.into_inner(),
            &zone_index,
            &zone_names,
        ) {
            firewalls.push(f);
        }
    }
    for u in &units {
        for &i in &u.instances {
            nodes[i].scc = true;
        }
    }

    if !cx.problems.is_empty() {
        return Err(Diagnostics(cx.problems));
    }
    Ok(Deployment {
        name,
        source: source.clone(),
        zones,
        nodes,
        units,
        services,
        firewalls,
    })
}

/// The raw file, or every syntax and shape problem of it at once (in the file's words).
fn read(source: &Source) -> Result<RawDeployment, Diagnostics> {
    let (table, errors) = toml::de::DeTable::parse_recoverable(&source.text);
    let mut problems: Vec<Diagnostic> = errors
        .iter()
        .map(|e| syntax(source, table.get_ref(), e))
        .collect();
    // A table recovered from broken syntax may miss what the broken lines held: its shape is
    // checked once the syntax is right.
    if problems.is_empty() {
        super::shape::check(source, &table, &mut problems);
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.location.cmp(&b.location));
        return Err(Diagnostics(problems));
    }
    // serde reads the tree already parsed: the file is parsed once.
    use serde::Deserialize as _;
    RawDeployment::deserialize(toml::de::Deserializer::from(table))
        .map_err(|e| Diagnostics(vec![from_toml(source, &e)]))
}

/// A syntax error; a duplicate key also says where the key was first defined.
fn syntax(source: &Source, table: &toml::de::DeTable, e: &toml::de::Error) -> Diagnostic {
    let d = from_toml(source, e);
    let Some(span) = e.span() else { return d };
    if !e.message().trim_start().starts_with("duplicate key") {
        return d;
    }
    let key = source.text.get(span.clone()).unwrap_or("").trim();
    let mut d = Diagnostic::error("E001", format!("`{key}` is defined twice")).at(source, &span);
    d.hint = Some(match super::shape::first_definition(source, table, &span) {
        Some(first) => format!(
            "first defined at {}; keep one of the two",
            source.locate(&first)
        ),
        None => "keep one of the two definitions".to_string(),
    });
    d
}

fn check_name(
    cx: &mut Ctx,
    key: &Spanned<String>,
    what: &str,
    ok: fn(u8) -> bool,
    rule: &str,
) -> bool {
    let name = key.get_ref();
    if name.is_empty() || !name.bytes().all(ok) {
        let fixed: String = name
            .chars()
            .map(|c| {
                if c.is_ascii() && ok(c.to_ascii_uppercase() as u8) {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        let hint = if what == "node" && !fixed.is_empty() {
            format!("{rule}: `{fixed}`")
        } else {
            rule.to_string()
        };
        cx.err(
            "E005",
            key.span(),
            format!("{what} name `{name}` is not valid"),
            hint,
        );
        return false;
    }
    true
}

fn zones(
    cx: &mut Ctx,
    raw: std::collections::BTreeMap<Spanned<String>, Spanned<super::raw::RawZone>>,
) -> Vec<Zone> {
    let mut out = Vec::new();
    for (key, z) in in_file_order(raw) {
        let ok_name = check_name(
            cx,
            &key,
            "zone",
            |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
            "zone names use letters, digits, `-` and `_`",
        );
        let location = cx.source.locate(&key.span());
        let z = z.into_inner();
        if z.cidrs.get_ref().is_empty() {
            cx.err(
                "E015",
                z.cidrs.span(),
                format!("zone `{}` has no CIDRs", key.get_ref()),
                "list its networks, e.g. cidrs = [\"10.20.0.0/16\"]".to_string(),
            );
        }
        let mut cidrs = Vec::new();
        for c in z.cidrs.get_ref() {
            if let Some(net) = cidr(cx, c) {
                cidrs.push(net);
            }
        }
        let mut roles = Vec::new();
        for r in z.roles.get_ref() {
            match Role::parse(r.get_ref()) {
                Some(role) if roles.contains(&role) => {
                    cx.err(
                        "E021",
                        r.span(),
                        format!("role `{}` is listed twice", r.get_ref()),
                        "list each role once".to_string(),
                    );
                }
                Some(role) => roles.push(role),
                None => cx.err(
                    "E013",
                    r.span(),
                    format!("unknown role `{}`", r.get_ref()),
                    did_you_mean(r.get_ref(), Role::ALL.iter().map(|r| r.as_str())),
                ),
            }
        }
        if ok_name {
            out.push(Zone {
                name: key.into_inner(),
                cidrs,
                roles,
                location,
            });
        }
    }
    out
}

fn cidr(cx: &mut Ctx, c: &Spanned<String>) -> Option<IpNet> {
    let text = c.get_ref().trim();
    match text.parse::<IpNet>() {
        Ok(net) if net.trunc() == net => Some(net),
        Ok(net) => {
            cx.err(
                "E015",
                c.span(),
                format!("`{text}` has host bits set"),
                format!(
                    "the network is `{}`; for one host write `{}/{}`",
                    net.trunc(),
                    net.addr(),
                    net.max_prefix_len()
                ),
            );
            None
        }
        Err(_) => {
            let hint = match text.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => format!("for one host write `{a}/32`"),
                Ok(IpAddr::V6(a)) => format!("for one host write `{a}/128`"),
                Err(_) => "write a network as ADDRESS/PREFIX, e.g. `10.20.0.0/16`".to_string(),
            };
            cx.err("E015", c.span(), format!("`{text}` is not a CIDR"), hint);
            None
        }
    }
}

fn address(cx: &mut Ctx, a: &Spanned<String>) -> Option<IpAddr> {
    let text = a.get_ref().trim();
    match text.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
            cx.err(
                "E016",
                a.span(),
                format!("`{text}` cannot be a server's address"),
                "give the server's own unicast address".to_string(),
            );
            None
        }
        Ok(ip) => Some(ip),
        Err(_) => {
            let hint = if text.contains('/') {
                "an address, not a network: drop the /PREFIX".to_string()
            } else {
                "write an IPv4 or IPv6 address, e.g. `10.1.0.11`".to_string()
            };
            cx.err(
                "E016",
                a.span(),
                format!("`{text}` is not an IP address"),
                hint,
            );
            None
        }
    }
}

fn node(
    cx: &mut Ctx,
    key: &Spanned<String>,
    raw: Spanned<RawNode>,
    zones: &HashMap<&str, usize>,
    zone_names: &[&str],
) -> Option<Node> {
    let ok_name = check_name(
        cx,
        key,
        "node",
        |b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_',
        "HAC node names use A-Z, 0-9 and `_`",
    );
    let raw = raw.into_inner();
    let address = address(cx, &raw.address);
    let zone = match zones.get(raw.zone.get_ref().as_str()) {
        Some(&z) => Some(z),
        None => {
            cx.err(
                "E010",
                raw.zone.span(),
                format!("unknown zone `{}`", raw.zone.get_ref()),
                if zone_names.is_empty() {
                    "define it under [zones.NAME] with cidrs and roles".to_string()
                } else {
                    did_you_mean(raw.zone.get_ref(), zone_names.iter().copied())
                },
            );
            None
        }
    };
    let variables = settings(cx, &raw.variables, |cx, var_span, component| {
        if component.placement == Placement::Node {
            return true;
        }
        cx.err(
            "E019",
            var_span,
            format!(
                "`{}` is a package of a virtual unit, not a deployment variable of a node",
                component.id
            ),
            "set it under [units.NAME.variables] of the unit that holds the package".to_string(),
        );
        false
    });
    let plain = plain_host(cx, key, &raw);
    let excluded = raw
        .windows_excluded_ports
        .map(|e| excluded_ranges(cx, e.into_inner()));
    // None: no table; Some(None): a bad one (reported).
    let trunk = raw.trunk.map(|t| trunk_peer(cx, key, t));
    let trunk = match trunk {
        None => Some(None),
        Some(t) => t.map(Some),
    };
    let interfaces = interfaces(cx, key, &raw.interfaces, zones, zone_names);
    let hac = raw.hac.unwrap_or(!plain?);
    Some(Node {
        name: key.get_ref().clone(),
        address: address?,
        zone: zone?,
        hac,
        variables: variables?,
        windows_excluded: excluded.unwrap_or(Some(vec![]))?,
        location: cx.source.locate(&key.span()),
        address_location: cx.source.locate(&raw.address.span()),
        // Instances are counted once the units are read.
        scc: hac,
        plain_declared: plain?,
        trunk: trunk?,
        interfaces: interfaces?,
    })
    .filter(|_| ok_name)
}

/// `[nodes.NAME.interfaces]`: each key a name Linux takes for an interface (not `lo`, which is
/// implicit), each value a zone of the file or a list of them. One zone may be behind several
/// interfaces.
fn interfaces(
    cx: &mut Ctx,
    key: &Spanned<String>,
    raw: &std::collections::BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    zones: &HashMap<&str, usize>,
    zone_names: &[&str],
) -> Option<Vec<Interface>> {
    let node = key.get_ref();
    let mut out = Vec::new();
    let mut ok = true;
    let mut entries: Vec<(&Spanned<String>, &Spanned<toml::Value>)> = raw.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (name, value) in entries {
        let text = name.get_ref();
        let shown = text.escape_debug().to_string();
        if text == "lo" {
            ok = false;
            cx.err(
                "E034",
                name.span(),
                format!("node {node}: `lo` is the loopback interface"),
                "remove it: loopback is implicit, and no zone's traffic arrives on it".to_string(),
            );
        } else if let Some(why) = super::interface_name_refused(text) {
            ok = false;
            cx.err(
                "E034",
                name.span(),
                format!("node {node}: `{shown}` is not an interface name Linux accepts: {why}"),
                "write the name as `ip link` shows it (1-15 bytes, no `/`, `:` or whitespace)"
                    .to_string(),
            );
        }
        // The shape check let through a string or a list of strings; an item's span is found
        // in the value's text (toml's plain values carry none).
        let words: Vec<&str> = match value.get_ref() {
            toml::Value::String(one) => vec![one.as_str()],
            toml::Value::Array(list) => list.iter().filter_map(toml::Value::as_str).collect(),
            _ => Vec::new(),
        };
        let written = cx.source.text.get(value.span()).unwrap_or("").to_string();
        let mut from = 0;
        let mut span_of = |word: &str| {
            let quoted = format!("\"{word}\"");
            match written[from..].find(&quoted) {
                Some(at) => {
                    let start = value.span().start + from + at;
                    from += at + quoted.len();
                    start..start + quoted.len()
                }
                None => value.span(),
            }
        };
        if words.is_empty() {
            ok = false;
            cx.err(
                "E034",
                value.span(),
                format!("node {node}: interface {shown} names no zone"),
                "name the zone whose traffic arrives on it, or a list of zones".to_string(),
            );
        }
        let mut list: Vec<usize> = Vec::new();
        for word in words {
            let span = span_of(word);
            match zones.get(word) {
                Some(z) if list.contains(z) => {
                    ok = false;
                    cx.err(
                        "E034",
                        span,
                        format!("node {node}: zone `{word}` is listed twice for interface {shown}"),
                        "list each zone once".to_string(),
                    );
                }
                Some(&z) => list.push(z),
                None => {
                    ok = false;
                    cx.err(
                        "E034",
                        span,
                        format!("node {node}: interface {shown} is behind unknown zone `{word}`"),
                        if zone_names.is_empty() {
                            "define it under [zones.NAME] with cidrs and roles".to_string()
                        } else {
                            did_you_mean(word, zone_names.iter().copied())
                        },
                    );
                }
            }
        }
        out.push(Interface {
            name: text.clone(),
            zones: list,
            location: cx.source.locate(&name.span()),
        });
    }
    ok.then_some(out)
}

/// Whether a node is declared a plain host (`scc = false`, or a trunk peer), which rules out HAC
/// on it; `None` after reporting a contradiction.
fn plain_host(cx: &mut Ctx, key: &Spanned<String>, raw: &RawNode) -> Option<bool> {
    if let Some(scc) = raw.scc.as_ref().filter(|s| *s.get_ref()) {
        cx.err(
            "E026",
            scc.span(),
            format!("node {}: `scc = true` is not a setting", key.get_ref()),
            "leave it out: a node runs SCC when it has HAC or holds a unit instance; write              `scc = false` for a host that runs no SCC component"
                .to_string(),
        );
        return None;
    }
    let plain = raw.scc.is_some() || raw.trunk.is_some();
    if plain && raw.hac == Some(true) {
        let why = if raw.scc.is_some() {
            "`scc = false`"
        } else {
            "a trunk peer"
        };
        cx.err(
            "E026",
            key.span(),
            format!(
                "node {} is {why} (it runs no SCC component) but sets `hac = true`",
                key.get_ref()
            ),
            "remove `hac = true`, or the node's `scc = false` / `trunk` if it runs HAC".to_string(),
        );
        return None;
    }
    Some(plain)
}

/// `[nodes.NAME.trunk]`: at least one SIP transport, each a port or range; media a port or range.
fn trunk_peer(cx: &mut Ctx, key: &Spanned<String>, raw: Spanned<RawTrunk>) -> Option<TrunkPeer> {
    let span = raw.span();
    let raw = raw.into_inner();
    let mut ok = true;
    let mut sip = Vec::new();
    for (t, v) in [
        (SipTransport::Udp, &raw.udp),
        (SipTransport::Tcp, &raw.tcp),
        (SipTransport::Tls, &raw.tls),
    ] {
        if let Some(v) = v {
            match port_value(cx, v, "E026") {
                Some(r) => sip.push((t, r)),
                None => ok = false,
            }
        }
    }
    if sip.is_empty() && ok {
        cx.err(
            "E026",
            span.clone(),
            format!("trunk peer {} names no SIP transport", key.get_ref()),
            "give the peer's SIP port per transport it speaks: udp = 5060, tcp = 5060, tls = 5061"
                .to_string(),
        );
        ok = false;
    }
    let media = raw.media.as_ref().map(|v| port_value(cx, v, "E026"));
    let media = media.map_or(Some(None), |m| m.map(Some));
    ok.then_some(())?;
    Some(TrunkPeer {
        sip,
        media: media?,
        location: cx.source.locate(&span),
    })
}

fn unit(
    cx: &mut Ctx,
    key: &Spanned<String>,
    raw: Spanned<RawUnit>,
    nodes: &HashMap<&str, usize>,
    node_names: &[&str],
) -> Option<Unit> {
    let ok_name = check_name(
        cx,
        key,
        "unit",
        |b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
        "unit names use letters, digits, `-` and `_`",
    );
    let raw = raw.into_inner();
    let address = address(cx, &raw.address);
    let mut packages: Vec<String> = Vec::new();
    let mut package_locations = Vec::new();
    if raw.packages.get_ref().is_empty() {
        cx.err(
            "E012",
            raw.packages.span(),
            format!("unit `{}` holds no packages", key.get_ref()),
            "list the packages it holds, e.g. packages = [\"agent-server\"]".to_string(),
        );
    }
    for p in raw.packages.get_ref() {
        let id = p.get_ref();
        match cx.catalog.component(id) {
            Some(c) if c.placement == Placement::Package => {
                if packages.contains(id) {
                    cx.err(
                        "E021",
                        p.span(),
                        format!("package `{id}` is listed twice"),
                        "list each package once".to_string(),
                    );
                } else {
                    packages.push(id.clone());
                    package_locations.push(cx.source.locate(&p.span()));
                }
            }
            Some(c) => {
                let why = match c.placement {
                    Placement::Node => {
                        "it runs on every HAC node; set its ports under [nodes.NAME.variables]"
                    }
                    _ => "it runs on agent workstations in zones with the role `clients`",
                };
                cx.err(
                    "E012",
                    p.span(),
                    format!("`{id}` is not a package of a virtual unit"),
                    why.to_string(),
                );
            }
            None => {
                let hint = did_you_mean(
                    id,
                    cx.catalog
                        .components
                        .iter()
                        .filter(|c| c.placement == Placement::Package)
                        .map(|c| c.id.as_str()),
                );
                cx.err("E012", p.span(), format!("unknown package `{id}`"), hint);
            }
        }
    }
    let mut instances = Vec::new();
    for n in &raw.instances {
        match nodes.get(n.get_ref().as_str()) {
            Some(&i) if instances.contains(&i) => {
                cx.err(
                    "E021",
                    n.span(),
                    format!("node `{}` is listed twice", n.get_ref()),
                    "a node holds at most one instance of a unit".to_string(),
                );
            }
            Some(&i) => instances.push(i),
            None => cx.err(
                "E011",
                n.span(),
                format!("unknown node `{}`", n.get_ref()),
                did_you_mean(n.get_ref(), node_names.iter().copied()),
            ),
        }
    }
    let unit_name = key.get_ref().clone();
    let variables = settings(cx, &raw.variables, |cx, var_span, component| {
        if packages.contains(&component.id) {
            return true;
        }
        let hint = if component.placement == Placement::Package {
            format!(
                "add `{}` to the unit's packages, or set the variable in the unit that holds it",
                component.id
            )
        } else {
            "set deployment variables of HAC under [nodes.NAME.variables]".to_string()
        };
        cx.err(
            "E019",
            var_span,
            format!("unit `{unit_name}` does not hold `{}`", component.id),
            hint,
        );
        false
    });
    let variables = variables?;
    check_areas(cx, &raw, &packages, &variables);
    Some(Unit {
        name: unit_name,
        address: address?,
        packages,
        package_locations,
        instances,
        variables,
        location: cx.source.locate(&key.span()),
        address_location: cx.source.locate(&raw.address.span()),
    })
    .filter(|_| ok_name)
}

/// Validates a `variables` table; `fits` says whether the variable's component belongs there.
fn settings(
    cx: &mut Ctx,
    raw: &std::collections::BTreeMap<Spanned<String>, Spanned<i64>>,
    mut fits: impl FnMut(&mut Ctx, Range<usize>, &crate::catalog::Component) -> bool,
) -> Option<Vec<Setting>> {
    let catalog = cx.catalog;
    let mut out = Vec::new();
    let mut ok = true;
    let mut entries: Vec<_> = raw.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    for (key, value) in entries {
        let name = key.get_ref();
        let Some(var) = catalog.variable(name) else {
            ok = false;
            let fixed = name
                .split_once('.')
                .and_then(|(c, p)| catalog.component(c)?.port(p));
            match fixed {
                Some(port) => cx.err(
                    "E018",
                    key.span(),
                    format!("`{name}` is not configurable"),
                    format!(
                        "the source page fixes it at {} (\"Not configurable\"); remove the line",
                        port.default
                            .as_ref()
                            .map_or("-".into(), PortDefault::describe)
                    ),
                ),
                None => {
                    let names: Vec<String> = catalog.variables().map(|(n, _)| n).collect();
                    cx.err(
                        "E014",
                        key.span(),
                        format!("unknown variable `{name}`"),
                        did_you_mean(name, names.iter().map(String::as_str)),
                    );
                }
            }
            continue;
        };
        if !fits(cx, key.span(), var.component) {
            ok = false;
            continue;
        }
        let v = *value.get_ref();
        let (lo, hi, what) = match var.kind {
            VariableKind::Port | VariableKind::AreaFirstPort => (1, 65535, "a port is 1-65535"),
            VariableKind::AreaStreams => {
                (1, 65535, "the number of simultaneous streams is 1-65535")
            }
        };
        if v < lo || v > hi {
            ok = false;
            cx.err(
                "E017",
                value.span(),
                format!("{v} is out of range for `{name}`"),
                what.to_string(),
            );
            continue;
        }
        out.push(Setting {
            name: name.clone(),
            value: v as u32,
            location: cx.source.locate(&key.span()),
        });
    }
    ok.then_some(out)
}

/// An area whose end (first + multiplier × streams) passes 65535 cannot be installed.
fn check_areas(cx: &mut Ctx, raw: &RawUnit, packages: &[String], settings: &[Setting]) {
    let catalog = cx.catalog;
    for id in packages {
        let Some(component) = catalog.component(id) else {
            continue;
        };
        for port in &component.ports {
            let Some(PortDefault::Area(area)) = &port.default else {
                continue;
            };
            let a = super::area_values(component, area, settings);
            let (first, streams) = (a.first, a.streams);
            let (first_name, streams_name) = (&a.first_variable, &a.streams_variable);
            if PortRange::area(first, area.multiplier, streams).is_err() {
                let end = u64::from(first) + u64::from(area.multiplier) * u64::from(streams);
                // Point at whichever variable was set (the streams first: it is what usually grows).
                let key = raw
                    .variables
                    .keys()
                    .find(|k| k.get_ref() == streams_name)
                    .or_else(|| raw.variables.keys().find(|k| k.get_ref() == first_name));
                let span = key.map_or(0..0, |k| k.span());
                let max_streams = (65535 - u64::from(first)) / u64::from(area.multiplier);
                cx.err(
                    "E020",
                    span,
                    format!(
                        "{} area {first} + {} x {streams} ends at {end}, past 65535",
                        port.id, area.multiplier
                    ),
                    format!("lower `{streams_name}` to at most {max_streams}, or move `{first_name}` down"),
                );
            }
        }
    }
}

/// The names a service may refer to.
struct Names<'a> {
    zones: &'a HashMap<&'a str, usize>,
    zone_names: &'a [&'a str],
    nodes: &'a HashMap<&'a str, usize>,
    node_names: &'a [&'a str],
    units: HashMap<&'a str, usize>,
    unit_names: Vec<&'a str>,
}

/// The word `to` takes for every node's own address.
pub const ALL_NODES: &str = "all-nodes";

fn service(cx: &mut Ctx, key: &Spanned<String>, raw: RawService, names: &Names) -> Option<Service> {
    let ok_name = check_name(
        cx,
        key,
        "service",
        |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
        "service names use letters, digits, `-` and `_` (they name rules: `service.NAME`)",
    );
    let transport = match raw.transport.get_ref().as_str() {
        "tcp" => Some(Transport::Tcp),
        "udp" => Some(Transport::Udp),
        other => {
            let lower = other.trim().to_ascii_lowercase();
            let hint = if lower == "tcp" || lower == "udp" {
                format!("write it in lower case: \"{lower}\"")
            } else {
                "a service's transport is \"tcp\" or \"udp\" (TLS, HTTP and HTTPS run over \"tcp\"); for both, write two services".to_string()
            };
            cx.err(
                "E022",
                raw.transport.span(),
                format!("unknown transport `{other}`"),
                hint,
            );
            None
        }
    };
    let ports = service_ports(cx, &raw.ports);
    if raw.from.get_ref().is_empty() {
        cx.err(
            "E022",
            raw.from.span(),
            format!("service `{}` has no sources", key.get_ref()),
            "list the roles or zones that connect, e.g. from = [\"admins\"]".to_string(),
        );
    }
    let mut from_roles = Vec::new();
    let mut from_zones = Vec::new();
    for f in raw.from.get_ref() {
        let word = f.get_ref().as_str();
        // A role first: the sources of a role include every zone that carries it.
        if let Some(role) = Role::parse(word) {
            if from_roles.contains(&role) {
                cx.err(
                    "E021",
                    f.span(),
                    format!("`{word}` is listed twice"),
                    "list each source once".to_string(),
                );
            } else {
                from_roles.push(role);
            }
        } else if let Some(&z) = names.zones.get(word) {
            if from_zones.contains(&z) {
                cx.err(
                    "E021",
                    f.span(),
                    format!("`{word}` is listed twice"),
                    "list each source once".to_string(),
                );
            } else {
                from_zones.push(z);
            }
        } else {
            let known: Vec<&str> = Role::ALL
                .iter()
                .map(|r| r.as_str())
                .chain(names.zone_names.iter().copied())
                .collect();
            cx.err(
                "E023",
                f.span(),
                format!("`{word}` is neither a role nor a zone"),
                did_you_mean(word, known.iter().copied()),
            );
        }
    }
    if raw.to.get_ref().is_empty() {
        cx.err(
            "E022",
            raw.to.span(),
            format!("service `{}` has no destinations", key.get_ref()),
            format!("list nodes or units, or \"{ALL_NODES}\", e.g. to = [\"{ALL_NODES}\"]"),
        );
    }
    let mut to = Vec::new();
    for t in raw.to.get_ref() {
        let word = t.get_ref().as_str();
        let target = match (word, names.nodes.get(word), names.units.get(word)) {
            (ALL_NODES, _, _) => Some(ServiceTarget::AllNodes),
            (_, Some(_), Some(_)) => {
                cx.err(
                    "E023",
                    t.span(),
                    format!("`{word}` names both a node and a unit"),
                    "rename the unit: a destination must be one or the other".to_string(),
                );
                continue;
            }
            (_, Some(&n), None) => Some(ServiceTarget::Node(n)),
            (_, None, Some(&u)) => Some(ServiceTarget::Unit(u)),
            (_, None, None) => {
                let known: Vec<&str> = std::iter::once(ALL_NODES)
                    .chain(names.node_names.iter().copied())
                    .chain(names.unit_names.iter().copied())
                    .collect();
                cx.err(
                    "E023",
                    t.span(),
                    format!("`{word}` is neither a node nor a unit"),
                    did_you_mean(word, known.iter().copied()),
                );
                None
            }
        };
        if let Some(target) = target {
            if to.contains(&target) {
                cx.err(
                    "E021",
                    t.span(),
                    format!("`{word}` is listed twice"),
                    "list each destination once".to_string(),
                );
            } else {
                to.push(target);
            }
        }
    }
    Some(Service {
        name: key.get_ref().clone(),
        transport: transport?,
        ports: ports?,
        from_roles,
        from_zones,
        to,
        note: raw.note.map(|n| n.into_inner()).unwrap_or_default(),
        location: cx.source.locate(&key.span()),
    })
    .filter(|_| ok_name)
}

/// A network firewall: its zones (known, each once, at least two), its platforms (Aerleon's names
/// the policy renders for) and the appliance's name for each zone, which every platform listed
/// must accept.
fn firewall(
    cx: &mut Ctx,
    key: &Spanned<String>,
    raw: RawFirewall,
    zones: &HashMap<&str, usize>,
    zone_names: &[&str],
) -> Option<Firewall> {
    use super::{NETWORK_PLATFORMS, appliance_name_chars, appliance_name_max};
    let ok_name = check_name(
        cx,
        key,
        "firewall",
        |b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
        "firewall names use letters, digits, `-` and `_` (they name the Aerleon policy file)",
    );
    let mut ok = true;
    let mut platforms: Vec<String> = Vec::new();
    match &raw.platforms {
        None => platforms.extend(NETWORK_PLATFORMS.iter().map(|p| p.to_string())),
        Some(list) => {
            if list.get_ref().is_empty() {
                ok = false;
                cx.err(
                    "E031",
                    list.span(),
                    format!("firewall `{}` lists no platforms", key.get_ref()),
                    format!(
                        "name at least one of {}, or drop the key for all of them",
                        NETWORK_PLATFORMS.join(", ")
                    ),
                );
            }
            for p in list.get_ref() {
                let word = p.get_ref();
                if !NETWORK_PLATFORMS.contains(&word.as_str()) {
                    ok = false;
                    cx.err(
                        "E031",
                        p.span(),
                        format!("unknown platform `{word}`"),
                        did_you_mean(word, NETWORK_PLATFORMS.iter().copied()),
                    );
                } else if platforms.contains(word) {
                    ok = false;
                    cx.err(
                        "E021",
                        p.span(),
                        format!("platform `{word}` is listed twice"),
                        "list each platform once".to_string(),
                    );
                } else {
                    platforms.push(word.clone());
                }
            }
        }
    }
    let mut members: Vec<FirewallZone> = Vec::new();
    for z in raw.zones.get_ref() {
        let word = z.get_ref();
        match zones.get(word.as_str()) {
            Some(&i) if members.iter().any(|m| m.zone == i) => {
                ok = false;
                let first = members.iter().find(|m| m.zone == i).expect("found");
                cx.err(
                    "E030",
                    z.span(),
                    format!("zone `{word}` is named twice"),
                    format!("first named at {}; list each zone once", first.location),
                );
            }
            Some(&i) => members.push(FirewallZone {
                zone: i,
                name: word.clone(),
                location: cx.source.locate(&z.span()),
            }),
            None => {
                ok = false;
                cx.err(
                    "E030",
                    z.span(),
                    format!("unknown zone `{word}`"),
                    if zone_names.is_empty() {
                        "define it under [zones.NAME] with cidrs and roles".to_string()
                    } else {
                        did_you_mean(word, zone_names.iter().copied())
                    },
                );
            }
        }
    }
    if ok && members.len() < 2 {
        ok = false;
        cx.err(
            "E030",
            raw.zones.span(),
            format!(
                "firewall `{}` separates fewer than two zones",
                key.get_ref()
            ),
            "a firewall between zones names at least two, e.g. zones = [\"datacenter\", \"agents\"]"
                .to_string(),
        );
    }
    let renamed: Vec<usize> = raw
        .names
        .keys()
        .filter_map(|k| zones.get(k.get_ref().as_str()).copied())
        .collect();
    for (zone_key, name) in in_file_order(raw.names) {
        let zone = zone_key.get_ref();
        let Some(member) = zones
            .get(zone.as_str())
            .and_then(|&i| members.iter_mut().find(|m| m.zone == i))
        else {
            ok = false;
            let listed: Vec<&str> = raw
                .zones
                .get_ref()
                .iter()
                .map(|z| z.get_ref().as_str())
                .collect();
            cx.err(
                "E030",
                zone_key.span(),
                format!("`{zone}` is not a zone of firewall `{}`", key.get_ref()),
                did_you_mean(zone, listed.iter().copied()),
            );
            continue;
        };
        let text = name.get_ref();
        let refused = if appliance_name_chars(text) {
            platforms
                .iter()
                .find_map(|p| {
                    appliance_name_max(p)
                        .filter(|&max| text.len() > max)
                        .map(|max| (p, max))
                })
                .map(|(p, max)| {
                    (
                        format!(
                            "{p} does not accept the name `{text}`: longer than {max} characters"
                        ),
                        format!(
                            "shorten it to at most {max} characters (it has {})",
                            text.len()
                        ),
                    )
                })
        } else {
            Some((
                format!("no appliance accepts the name `{text}`"),
                "appliances take letters, digits, `-`, `_` and `.`, starting with a letter or digit"
                    .to_string(),
            ))
        };
        match refused {
            Some((msg, hint)) => {
                ok = false;
                cx.err("E032", name.span(), msg, hint);
            }
            None => member.name = text.clone(),
        }
    }
    // The default names (the zones' own) must fit too: a long zone name needs an appliance name.
    for m in &members {
        if renamed.contains(&m.zone) {
            continue;
        }
        if let Some((p, max)) = platforms.iter().find_map(|p| {
            appliance_name_max(p)
                .filter(|&max| m.name.len() > max)
                .map(|max| (p, max))
        }) {
            ok = false;
            let span = raw
                .zones
                .get_ref()
                .iter()
                .find(|z| z.get_ref() == &m.name)
                .map_or(raw.zones.span(), |z| z.span());
            cx.err(
                "E032",
                span,
                format!(
                    "zone name `{}` is too long for {p} ({max} characters at most)",
                    m.name
                ),
                format!(
                    "give the appliance's name under [firewalls.{}.names]: {} = \"…\"",
                    key.get_ref(),
                    m.name
                ),
            );
        }
    }
    Some(Firewall {
        name: key.get_ref().clone(),
        zones: members,
        platforms,
        location: cx.source.locate(&key.span()),
    })
    .filter(|_| ok && ok_name)
}

/// A node's `windows_excluded_ports`: each item a port `"1433"` or a range `"50000-50059"`
/// (netsh's Start Port and End Port), tcp first, then udp, each in file order.
fn excluded_ranges(cx: &mut Ctx, raw: RawExcluded) -> Option<Vec<ExcludedRange>> {
    let hint = "a port 1-65535 (\"1433\") or a range \"first-last\" of netsh's Start Port and \
                End Port (\"50000-50059\", or the row as netsh prints it)";
    let mut out = Vec::with_capacity(raw.tcp.len() + raw.udp.len());
    let mut ok = true;
    let items = (raw.tcp.iter().map(|i| (Transport::Tcp, i)))
        .chain(raw.udp.iter().map(|i| (Transport::Udp, i)));
    for (transport, item) in items {
        // As netsh prints a row: "50000       50059     *" (the star marks an administered
        // exclusion), or with the dash this file otherwise uses.
        let text = item.get_ref().trim().trim_end_matches('*').trim();
        let port = |t: &str| match t.trim().parse::<u32>() {
            Ok(p @ 1..=65535) => Ok(p as u16),
            Ok(p) => Err(format!("port {p} is out of range")),
            Err(_) => Err(format!("`{}` is not a port number", t.trim())),
        };
        let pair = text
            .split_once('-')
            .or_else(|| text.split_once(char::is_whitespace));
        let range = match pair {
            Some((a, b)) => port(a).and_then(|lo| Ok((lo, port(b)?))),
            None => port(text).map(|p| (p, p)),
        };
        match range {
            Ok((lo, hi)) if lo > hi => {
                cx.err(
                    "E024",
                    item.span(),
                    format!("the excluded range {lo}-{hi} runs backwards"),
                    format!("write it first-last: \"{hi}-{lo}\""),
                );
                ok = false;
            }
            Ok((lo, hi)) => out.push(ExcludedRange {
                transport,
                ports: PortRange::new(lo, hi, None).expect("1 <= lo <= hi"),
                location: cx.source.locate(&item.span()),
            }),
            Err(msg) => {
                cx.err(
                    "E024",
                    item.span(),
                    format!("{msg} (a Windows excluded port range)"),
                    hint.to_string(),
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}

/// A service's `ports`: a whole number, or text holding a port or a range `a-b`.
fn service_ports(cx: &mut Ctx, raw: &Spanned<toml::Value>) -> Option<PortRange> {
    port_value(cx, raw, "E022")
}

/// A port or range value (a service's `ports`, a trunk peer's SIP ports and media): a whole
/// number, or text holding a port or a range `a-b`; problems reported under `code`.
fn port_value(cx: &mut Ctx, raw: &Spanned<toml::Value>, code: &'static str) -> Option<PortRange> {
    let hint = "a port 1-65535 (\"3389\") or a range \"first-last\" (\"5985-5986\")";
    let port = |cx: &mut Ctx, text: &str| -> Option<u16> {
        match text.trim().parse::<u32>() {
            Ok(p @ 1..=65535) => Some(p as u16),
            Ok(p) => {
                cx.err(
                    code,
                    raw.span(),
                    format!("port {p} is out of range"),
                    hint.to_string(),
                );
                None
            }
            Err(_) => {
                cx.err(
                    code,
                    raw.span(),
                    format!("`{}` is not a port number", text.trim()),
                    hint.to_string(),
                );
                None
            }
        }
    };
    match raw.get_ref() {
        toml::Value::Integer(p) => port(cx, &p.to_string()).and_then(|p| PortRange::single(p).ok()),
        toml::Value::String(text) => {
            let (lo, hi) = match text.split_once('-') {
                Some((a, b)) => (port(cx, a)?, port(cx, b)?),
                None => {
                    let p = port(cx, text)?;
                    (p, p)
                }
            };
            if lo > hi {
                cx.err(
                    code,
                    raw.span(),
                    format!("the range {lo}-{hi} runs backwards"),
                    format!("write it first-last: \"{hi}-{lo}\""),
                );
                return None;
            }
            PortRange::new(lo, hi, None).ok()
        }
        other => {
            cx.err(
                "E003",
                raw.span(),
                format!(
                    "`ports` must be a string or a whole number, not {}",
                    crate::diag::toml_kind(other)
                ),
                hint.to_string(),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[zones.dmz]
cidrs = ["10.50.0.0/24"]
roles = ["trunk"]

[zones.datacenter]
cidrs = ["10.1.0.0/24"]
roles = ["servers"]

[nodes.APP1]
address = "10.1.0.11"
zone = "datacenter"

[nodes.SBC1]
address = "10.50.0.10"
zone = "dmz"
scc = false

[nodes.SBC1.interfaces]
"#;

    fn parse_with(interfaces: &str) -> Result<Deployment, Diagnostics> {
        let text = format!("{BASE}{interfaces}");
        parse(&Source::new("t.toml", text), &Catalog::embedded())
    }

    #[test]
    fn interfaces_in_file_order_with_their_zones() {
        let dep = parse_with(
            "ens224 = [\"datacenter\", \"dmz\"]\nens192 = \"dmz\"\n\"bond0.100\" = \"dmz\"\n",
        )
        .unwrap();
        let sbc = dep.node("SBC1").unwrap();
        let got: Vec<(&str, String)> = sbc
            .interfaces
            .iter()
            .map(|i| {
                let z: Vec<&str> = i
                    .zones
                    .iter()
                    .map(|&z| dep.zones[z].name.as_str())
                    .collect();
                (i.name.as_str(), z.join(","))
            })
            .collect();
        assert_eq!(
            got,
            [
                ("ens224", "datacenter,dmz".to_string()),
                ("ens192", "dmz".to_string()),
                ("bond0.100", "dmz".to_string())
            ]
        );
        let line = BASE.lines().count() + 2; // `ens192`, the second line after BASE
        assert_eq!(sbc.interfaces[1].location.line, line);
        assert!(dep.node("APP1").unwrap().interfaces.is_empty());
    }

    #[test]
    fn interface_errors_are_located_with_hints() {
        let err = parse_with(
            "ens192 = \"dmzz\"\n\"\" = \"dmz\"\nenp0s31f6abcdefg = \"dmz\"\n\"a/b\" = \"dmz\"\n\
             \"eth 0\" = \"dmz\"\n\"eth0:1\" = \"dmz\"\n\"..\" = \"dmz\"\nlo = \"dmz\"\n\
             ens224 = \"dc\"\nens256 = \"datacenter\"\n\
             ens257 = [\"dmz\", \"datacentre\", \"dmz\"]\nens258 = []\n",
        )
        .unwrap_err();
        assert!(err.0.iter().all(|d| d.code == "E034"), "{err}");
        insta::assert_snapshot!(err.to_string());
    }

    #[test]
    fn interface_zones_are_a_string_or_a_list_of_strings() {
        let err = parse_with("ens192 = 5\nens224 = [\"dmz\", 7]\n").unwrap_err();
        insta::assert_snapshot!(err.to_string());
    }

    #[test]
    fn linux_interface_names() {
        use crate::deployment::interface_name_refused as refused;
        for ok in [
            "ens192",
            "eth0",
            "bond0.100",
            "wg-site_b",
            "123456789012345",
            "é",
        ] {
            assert_eq!(refused(ok), None, "{ok}");
        }
        for bad in [
            "",
            "1234567890123456",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\u{a0}",
            "a\0",
        ] {
            assert!(refused(bad).is_some(), "{bad:?}");
        }
    }
}
