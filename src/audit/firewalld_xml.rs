//! Reader of firewalld's XML configuration: a copy of `/etc/firewalld` (zones, services, ipsets,
//! `firewalld.conf`) over `/usr/lib/firewalld` (the shipped definitions), or one zone file. The
//! files come in as text (the CLI reads them); they become the same [`firewalld::Config`] as the
//! text export, built into chains by the same code.

use std::collections::BTreeMap;

use super::firewalld::{self, Config, IpSet, Item, Loc, Rich, Service, Zone};
use super::{AuditError, ConfigFile, Family, Format, Ruleset};

use firewalld::XML_HINT as HINT;

/// Whether text looks like a firewalld XML file.
pub fn looks_xml(text: &str) -> bool {
    // No other export starts with `<`: the JSON ones start with `{` or `[`, the others with
    // words, `*` or `#`.
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('<')
}

fn syntax(file: &str, line: u32, col: u32, what: String) -> AuditError {
    AuditError::Syntax {
        file: file.to_string(),
        line: line as usize,
        col: col as usize,
        what,
        hint: HINT.into(),
    }
}

/// One parsed file: its document and the name it is shown by.
struct Doc<'a> {
    file: &'a str,
    doc: roxmltree::Document<'a>,
}

impl<'a> Doc<'a> {
    fn parse(file: &'a str, text: &'a str) -> Result<Doc<'a>, AuditError> {
        let doc = roxmltree::Document::parse(text).map_err(|e| {
            let p = e.pos();
            syntax(
                file,
                p.row,
                p.col,
                format!("not well-formed XML: {}", super::clip(&e.to_string())),
            )
        })?;
        Ok(Doc { file, doc })
    }

    fn loc(&self, n: roxmltree::Node) -> Loc {
        let p = self.doc.text_pos_at(n.range().start);
        Loc {
            file: self.file.to_string(),
            line: p.row as usize,
            col: p.col as usize,
        }
    }

    fn fail(&self, n: roxmltree::Node, what: String) -> AuditError {
        let l = self.loc(n);
        syntax(self.file, l.line as u32, l.col as u32, what)
    }

    /// An attribute the element must have.
    fn need<'n>(&self, n: roxmltree::Node<'n, 'n>, attr: &str) -> Result<&'n str, AuditError> {
        n.attribute(attr).ok_or_else(|| {
            self.fail(
                n,
                format!(
                    "<{}> without its `{attr}` attribute",
                    super::clip(n.tag_name().name())
                ),
            )
        })
    }

    /// The root element, which must be `kind`.
    fn root(&self, kind: &str) -> Result<roxmltree::Node<'_, '_>, AuditError> {
        let root = self.doc.root_element();
        if root.tag_name().name() != kind {
            return Err(self.fail(
                root,
                format!(
                    "expected a <{kind}> file, found <{}>",
                    super::clip(root.tag_name().name())
                ),
            ));
        }
        Ok(root)
    }
}

fn elements<'a, 'i>(n: roxmltree::Node<'a, 'i>) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children().filter(|c| c.is_element())
}

/// A zone or policy file (`kind`): its name is the file's name (as firewalld names it).
fn zone(d: &Doc, name: &str, kind: &str) -> Result<Zone, AuditError> {
    let root = d.root(kind)?;
    let loc = d.loc(root);
    let policy = kind == "policy";
    let mut z = Zone {
        name: name.to_string(),
        at: format!("{}:{}", d.file, loc.line),
        target: root
            .attribute("target")
            .unwrap_or(if policy { "CONTINUE" } else { "default" })
            .to_string(),
        priority: -1,
        ..Zone::default()
    };
    if let Some(p) = root.attribute("priority").filter(|_| policy) {
        z.priority = p.trim().parse().map_err(|_| {
            d.fail(
                root,
                format!("priority `{}` is not a number", super::clip(p)),
            )
        })?;
    }
    if let Some(p) = root.attribute("ingress-priority") {
        z.ingress_priority = p.trim().parse().map_err(|_| {
            d.fail(
                root,
                format!("ingress-priority `{}` is not a number", super::clip(p)),
            )
        })?;
    }
    for e in elements(root) {
        let item = |text: String| Item {
            text,
            loc: d.loc(e),
        };
        let port = |e: roxmltree::Node| -> Result<String, AuditError> {
            Ok(format!("{}/{}", d.need(e, "port")?, d.need(e, "protocol")?))
        };
        match e.tag_name().name() {
            "forward" => z.forward = true,
            "short" | "description" | "masquerade" | "icmp-block" | "icmp-block-inversion" => {}
            "interface" => z.interfaces.push(item(d.need(e, "name")?.to_string())),
            "ingress-zone" if policy => z.ingress_zones.push(d.need(e, "name")?.to_string()),
            "egress-zone" if policy => z.egress_zones.push(d.need(e, "name")?.to_string()),
            "source" => {
                let text = if let Some(a) = e.attribute("address") {
                    a.to_string()
                } else if let Some(s) = e.attribute("ipset") {
                    format!("ipset:{s}")
                } else if let Some(m) = e.attribute("mac") {
                    m.to_string()
                } else {
                    return Err(d.fail(e, "<source> without address, ipset or mac".into()));
                };
                z.sources.push(item(text));
            }
            "service" => z.services.push(item(d.need(e, "name")?.to_string())),
            "port" if e.attribute("port") == Some("") => {
                z.protocols.push(item(d.need(e, "protocol")?.to_string()))
            }
            "port" => z.ports.push(item(port(e)?)),
            "protocol" => z.protocols.push(item(d.need(e, "value")?.to_string())),
            "source-port" => z.source_ports.push(item(port(e)?)),
            "forward-port" => z.forward_ports.push(item(port(e)?)),
            "rule" => {
                let loc = d.loc(e);
                z.rich.push(Rich {
                    at: format!("{}:{}", d.file, loc.line),
                    loc,
                    words: rich_words(d, e)?,
                });
            }
            other => z.unknown.push(item(format!("<{other}>"))),
        }
    }
    Ok(z)
}

/// A `<rule>` element as the words of firewalld's rich rule text.
fn rich_words(d: &Doc, rule: roxmltree::Node) -> Result<Vec<(String, Option<String>)>, AuditError> {
    let mut w: Vec<(String, Option<String>)> = vec![("rule".into(), None)];
    let word = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
    for a in ["family", "priority"] {
        if let Some(v) = rule.attribute(a) {
            w.push(word(a, Some(v)));
        }
    }
    let limit = |w: &mut Vec<(String, Option<String>)>, e: roxmltree::Node| {
        for l in elements(e).filter(|l| l.tag_name().name() == "limit") {
            w.push(word("limit", None));
            w.push(word("value", l.attribute("value")));
        }
    };
    for e in elements(rule) {
        let tag = e.tag_name().name();
        match tag {
            "source" | "destination" => {
                w.push(word(tag, None));
                // firewalld writes `invert="True"` (Python's bool).
                if e.attribute("invert").is_some_and(|v| {
                    matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "1")
                }) {
                    w.push(word("NOT", None));
                }
                let mut any = false;
                for a in ["address", "ipset", "mac"] {
                    if let Some(v) = e.attribute(a) {
                        w.push(word(a, Some(v)));
                        any = true;
                    }
                }
                if !any {
                    return Err(d.fail(e, format!("<{tag}> without address, ipset or mac")));
                }
            }
            "service" => {
                w.push(word("service", None));
                w.push(word("name", Some(d.need(e, "name")?)));
            }
            "port" | "source-port" => {
                w.push(word(tag, None));
                w.push(word("port", Some(d.need(e, "port")?)));
                w.push(word("protocol", Some(d.need(e, "protocol")?)));
            }
            "protocol" => {
                w.push(word("protocol", None));
                w.push(word("value", Some(d.need(e, "value")?)));
            }
            "accept" | "reject" | "drop" | "log" | "nflog" | "audit" | "mark" | "icmp-block"
            | "icmp-type" | "forward-port" | "masquerade" | "tcp-mss-clamp" => {
                w.push(word(tag, None));
                for a in e.attributes() {
                    w.push(word(a.name(), Some(a.value())));
                }
                limit(&mut w, e);
            }
            other => {
                return Err(d.fail(
                    e,
                    format!("unexpected <{}> in a rich rule", super::clip(other)),
                ));
            }
        }
    }
    Ok(w)
}

fn service(d: &Doc) -> Result<Service, AuditError> {
    let root = d.root("service")?;
    let mut s = Service::default();
    for e in elements(root) {
        match e.tag_name().name() {
            // An empty port stands for the whole protocol (`ipsec`: ah, esp).
            "port" if e.attribute("port") == Some("") => {
                if let Some(n) = super::nft::proto_name(d.need(e, "protocol")?) {
                    s.protocols.push(n);
                }
            }
            "port" | "source-port" => {
                let text = format!("{}/{}", d.need(e, "port")?, d.need(e, "protocol")?);
                let v = firewalld::port_proto(&text)
                    .ok_or_else(|| d.fail(e, format!("port `{}`", super::clip(&text))))?;
                if e.tag_name().name() == "port" {
                    s.ports.push(v);
                } else {
                    s.source_ports.push(v);
                }
            }
            "protocol" => {
                if let Some(n) = super::nft::proto_name(d.need(e, "value")?) {
                    s.protocols.push(n);
                }
            }
            "destination" => {
                for a in ["ipv4", "ipv6"] {
                    if let Some(v) = e.attribute(a) {
                        let span = firewalld::destination(v).ok_or_else(|| {
                            d.fail(e, format!("destination `{}`", super::clip(v)))
                        })?;
                        s.destination.push(span);
                    }
                }
            }
            "include" => s.includes.push(d.need(e, "service")?.to_string()),
            _ => {} // short, description, helper, module: nothing that filters
        }
    }
    Ok(s)
}

fn ipset(d: &Doc) -> Result<IpSet, AuditError> {
    let root = d.root("ipset")?;
    let mut set = IpSet {
        kind: d.need(root, "type")?.to_string(),
        ..IpSet::default()
    };
    for e in elements(root) {
        match e.tag_name().name() {
            "option" if e.attribute("name") == Some("family") => {
                set.family = match e.attribute("value") {
                    Some("inet6") => Some(Family::V6),
                    Some("inet") | None => Some(Family::V4),
                    Some(v) => {
                        return Err(d.fail(e, format!("ipset family `{}`", super::clip(v))));
                    }
                }
            }
            "entry" => set.entries.push(e.text().unwrap_or("").to_string()),
            _ => {}
        }
    }
    Ok(set)
}

/// `DefaultZone=` of a firewalld.conf.
fn default_zone(text: &str) -> Option<String> {
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("DefaultZone="))
        .map(|z| z.trim().trim_matches('"').to_string())
        .filter(|z| !z.is_empty())
}

/// Reads a firewalld configuration from its files: for each kind (`zones`, `services`,
/// `ipsets`) and name, the file in `/etc/firewalld` overrides the one in `/usr/lib/firewalld`;
/// the default zone is `DefaultZone=` of etc's `firewalld.conf`, else usr/lib's, else `public`.
pub fn read_dir(name: &str, files: &[ConfigFile]) -> Result<Ruleset, AuditError> {
    // (kind, name) → the file that wins.
    let mut chosen: BTreeMap<(&str, String), &ConfigFile> = BTreeMap::new();
    let mut conf: [Option<&ConfigFile>; 2] = [None, None];
    for f in files {
        let rel = f.rel.trim_start_matches('/');
        if rel == "firewalld.conf" {
            conf[usize::from(!f.system)] = Some(f);
            continue;
        }
        let Some((kind, file)) = rel.split_once('/') else {
            continue;
        };
        let kind = match kind {
            "zones" => "zones",
            "services" => "services",
            "ipsets" => "ipsets",
            "policies" => "policies",
            _ => continue, // helpers, icmptypes: nothing that filters new connections
        };
        let Some(stem) = file.strip_suffix(".xml").filter(|s| !s.contains('/')) else {
            continue;
        };
        let key = (kind, stem.to_string());
        match chosen.get(&key) {
            Some(old) if !old.system && f.system => {}
            _ => {
                chosen.insert(key, f);
            }
        }
    }
    let mut config = Config {
        default_zone: conf[1]
            .and_then(|f| default_zone(&f.text))
            .or_else(|| conf[0].and_then(|f| default_zone(&f.text))),
        ..Config::default()
    };
    for ((kind, stem), f) in &chosen {
        let d = Doc::parse(&f.display, &f.text)?;
        match *kind {
            "zones" => config.zones.push(zone(&d, stem, "zone")?),
            "policies" => config.policies.push(zone(&d, stem, "policy")?),
            "services" => {
                config.services.insert(stem.clone(), service(&d)?);
            }
            _ => {
                config.ipsets.insert(stem.clone(), ipset(&d)?);
            }
        }
    }
    if config.default_zone.is_none() && config.zones.iter().any(|z| z.name == "public") {
        config.default_zone = Some("public".into());
    }
    firewalld::build(name, config, Format::FirewalldXml)
}

/// Reads one zone file: its services and ipsets are not defined, so what uses them cannot be
/// decided; it is the default zone.
pub fn read_one(name: &str, text: &str) -> Result<Ruleset, AuditError> {
    let d = Doc::parse(name, text)?;
    let root = d.doc.root_element();
    let kind = root.tag_name().name();
    if kind != "zone" {
        return Err(AuditError::Content {
            file: name.to_string(),
            what: format!(
                "a firewalld <{}> file alone is not a ruleset",
                super::clip(kind)
            ),
            hint: "give a zone file, or the whole directory (a copy of /etc/firewalld, or of / \
                   with etc/firewalld and usr/lib/firewalld)"
                .into(),
        });
    }
    let stem = std::path::Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "zone".into());
    let z = zone(&d, &stem, "zone")?;
    let config = Config {
        default_zone: Some(z.name.clone()),
        zones: vec![z],
        ..Config::default()
    };
    firewalld::build(name, config, Format::FirewalldXml)
}
