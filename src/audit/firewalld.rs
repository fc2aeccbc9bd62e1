//! firewalld: the model both of its front ends feed (zones, services, ipsets, the default zone)
//! and the one builder that turns it into chains; and the front end for the text export
//! (`firewall-cmd --list-all-zones` followed by `--info-service=NAME` and `--info-ipset=NAME`
//! blocks and `--list-all-policies`, optionally preceded by `default-zone: NAME`: docs/audit.md
//! has the line). The XML front end is [`super::firewalld_xml`]. Zones become chains, entered by
//! source address (or ipset), else the default zone; inside a zone: the policies to the host of
//! negative priority, rich rules by priority (deny before allow at priority 0), services and
//! ports, the other policies to the host, then the zone's target. Forwarded traffic enters each
//! zone's forward chain the same way: the forward policies around the zone's own forwarding,
//! then its target.

use std::collections::HashMap;

use super::{
    Action, AuditError, Base, Chain, Cond, Family, Format, Hook, Match, Rule, Ruleset, Span,
};

/// Where an item of the configuration is: the file (for messages), line and column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Loc {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

/// One word of a zone's list (a source, a service, `8000-8010/udp`…) and where it is.
#[derive(Debug, Clone, Default)]
pub(super) struct Item {
    pub text: String,
    pub loc: Loc,
}

/// A rich rule as words (`rule`, `family="ipv4"`, `source`, `NOT`, `address="…"`, …): what the
/// text export writes, and what the XML front end makes of a `<rule>` element.
#[derive(Debug, Clone, Default)]
pub(super) struct Rich {
    /// How the report names where the rule is: `line 95`, `etc/firewalld/zones/public.xml:12`.
    pub at: String,
    pub loc: Loc,
    pub words: Vec<(String, Option<String>)>,
}

impl Rich {
    /// The rule in firewalld's own text syntax (values quoted, as `--list-rich-rules`).
    pub fn text(&self) -> String {
        let words: Vec<String> = self
            .words
            .iter()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}=\"{v}\""),
                None => k.clone(),
            })
            .collect();
        super::clean(&words.join(" "))
    }
}

#[derive(Debug, Default)]
pub(super) struct Zone {
    pub name: String,
    /// How the report names where the zone is: `line 93`, `etc/firewalld/zones/public.xml:2`.
    pub at: String,
    /// Marked `(default)` in the text export.
    pub default: bool,
    /// `default`, `ACCEPT`, `DROP`, `%%REJECT%%` (or anything else, read as a reject).
    pub target: String,
    /// Addresses, networks, `ipset:NAME`, MAC addresses.
    pub sources: Vec<Item>,
    pub interfaces: Vec<Item>,
    pub services: Vec<Item>,
    /// `PORT[-PORT]/PROTO`
    pub ports: Vec<Item>,
    pub protocols: Vec<Item>,
    pub source_ports: Vec<Item>,
    /// `PORT[-PORT]/PROTO` of destination NAT entries.
    pub forward_ports: Vec<Item>,
    pub rich: Vec<Rich>,
    /// Elements the reader does not know, each "cannot decide" for the zone's traffic.
    pub unknown: Vec<Item>,
    /// `ingress-priority` (firewalld 2): the order of source dispatch, lowest first.
    pub ingress_priority: i64,
    /// `forward` (`<forward/>`, `forward: yes`): forwarding between the zone's own sources.
    pub forward: bool,
    /// A policy's priority (negative: before the zone's own rules, else after them).
    pub priority: i64,
    /// A policy's ingress and egress zones (`ANY`, `HOST` or zone names); empty for a zone.
    pub ingress_zones: Vec<String>,
    pub egress_zones: Vec<String>,
}

#[derive(Debug, Default, Clone)]
pub(super) struct Service {
    pub ports: Vec<(u16, u16, u8)>,
    pub protocols: Vec<u8>,
    pub source_ports: Vec<(u16, u16, u8)>,
    pub destination: Vec<Span>,
    pub includes: Vec<String>,
}

/// An ipset as firewalld defines it: `hash:net`, `hash:ip`, … with its family and entries.
#[derive(Debug, Default, Clone)]
pub(super) struct IpSet {
    pub kind: String,
    pub family: Option<Family>,
    pub entries: Vec<String>,
}

impl IpSet {
    /// The addresses of a `hash:ip` or `hash:net` set; Err(why not) for the other types and for
    /// entries the audit cannot read (ranges, options such as `nomatch`, another family).
    fn spans(&self, name: &str) -> Result<Vec<Span>, String> {
        if self.kind != "hash:ip" && self.kind != "hash:net" {
            return Err(format!(
                "ipset {} of type {} (only hash:ip and hash:net are evaluated)",
                super::clip(name),
                super::clip(&self.kind)
            ));
        }
        let family = self.family.unwrap_or(Family::V4);
        let mut out = Vec::new();
        for e in &self.entries {
            // firewalld 1.3 with its nftables backend fails to load a range entry and falls
            // back to its stock configuration: what is in force then is not this one.
            if e.contains('-') {
                return Err(format!(
                    "ipset {} entry `{}` (a range, which firewalld's nftables backend fails to \
                     load)",
                    super::clip(name),
                    super::clip(e.trim())
                ));
            }
            let span = addr(e.trim())
                .filter(|s| s.family == family)
                .ok_or_else(|| {
                    format!(
                        "ipset {} entry `{}`",
                        super::clip(name),
                        super::clip(e.trim())
                    )
                })?;
            out.push(span);
        }
        Ok(out)
    }
}

/// The configuration both front ends read, in the order the sources give it.
#[derive(Debug, Default)]
pub(super) struct Config {
    pub zones: Vec<Zone>,
    /// Policies (firewalld ≥ 0.9), read like zones; `target` is CONTINUE, ACCEPT, DROP or REJECT.
    pub policies: Vec<Zone>,
    pub services: HashMap<String, Service>,
    pub ipsets: HashMap<String, IpSet>,
    /// The default zone, when the input names it (`default-zone:`, `DefaultZone=`).
    pub default_zone: Option<String>,
}

/// Whether text looks like `firewall-cmd --list-all-zones` output.
pub fn looks_firewalld(text: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with("target:"))
        && text
            .lines()
            .any(|l| l.trim_start().starts_with("icmp-block-inversion:"))
}

const TEXT_HINT: &str = "give the unmodified output of the firewalld export line in docs/audit.md";
pub(super) const XML_HINT: &str = "give firewalld's own files (a copy of /etc/firewalld, and \
                                   of /usr/lib/firewalld): docs/audit.md has the line";

fn err(file: &str, line: usize, col: usize, what: String) -> AuditError {
    AuditError::Syntax {
        file: file.to_string(),
        line,
        col,
        what,
        hint: TEXT_HINT.into(),
    }
}

fn err_at(loc: &Loc, format: Format, what: String) -> AuditError {
    AuditError::Syntax {
        file: loc.file.clone(),
        line: loc.line,
        col: loc.col,
        what,
        hint: if format == Format::FirewalldXml {
            XML_HINT
        } else {
            TEXT_HINT
        }
        .into(),
    }
}

pub(super) fn port_proto(s: &str) -> Option<(u16, u16, u8)> {
    let (ports, proto) = s.split_once('/')?;
    let proto = super::nft::proto_name(proto)?;
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let p = ports.parse().ok()?;
            (p, p)
        }
    };
    if lo > hi {
        return None;
    }
    Some((lo, hi, proto))
}

pub(super) fn addr(s: &str) -> Option<Span> {
    let net: ipnet::IpNet = s
        .parse()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))?;
    Some(Span::net(&net.trunc()))
}

/// A service's destination `ipv4:ADDR` / `ipv6:ADDR` (text) or an address (XML attribute).
pub(super) fn destination(d: &str) -> Option<Span> {
    let a = d.split_once(':').map_or(
        d,
        |(fam, a)| {
            if fam == "ipv4" || fam == "ipv6" { a } else { d }
        },
    );
    addr(a)
}

/// A block of the export: its line, its name line, and its indented (line, text) lines.
type Block = (usize, String, Vec<(usize, String)>);

/// The words of a text field with their columns (1-based).
fn items(file: &str, line: usize, raw: &str, value: &str) -> Vec<Item> {
    // The value follows the key's `:`; a tab-continued line is all value.
    let start = if raw.trim() == value {
        raw.len() - raw.trim_start().len()
    } else {
        let after = raw.find(':').map_or(0, |i| i + 1);
        raw[after..].find(value).map_or(after, |i| after + i)
    };
    let mut out = Vec::new();
    let mut col = start;
    for w in value.split_whitespace() {
        let at = value[col - start..].find(w).map_or(col, |i| col + i);
        out.push(Item {
            text: w.to_string(),
            loc: Loc {
                file: file.to_string(),
                line,
                col: at + 1,
            },
        });
        col = at + w.len();
    }
    out
}

/// Reads the text export.
pub fn read(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    let mut config = Config::default();
    // Blocks: a name at column 0, then indented `key: value` lines; rich rules indented further.
    let mut blocks: Vec<Block> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(z) = line.strip_prefix("default-zone:") {
            config.default_zone = Some(z.trim().to_string());
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            blocks.push((n + 1, line.trim().to_string(), Vec::new()));
        } else if let Some(b) = blocks.last_mut() {
            b.2.push((n + 1, line.to_string()));
        } else {
            return Err(err(
                file,
                n + 1,
                1,
                "an indented line before any zone".into(),
            ));
        }
    }
    for (line, header, body) in blocks {
        let mut words = header.split_whitespace();
        let name = words.next().unwrap_or("").to_string();
        let marks = header[name.len()..].to_string();
        let mut fields: HashMap<String, Vec<Item>> = HashMap::new();
        let mut rich = Vec::new();
        let mut in_rich = false;
        let mut last_key: Option<String> = None;
        for (n, l) in &body {
            let t = l.trim();
            // Lists of one item per line (`forward-ports:`) go on indented by a tab.
            if !in_rich && l.starts_with('\t') {
                if let Some(k) = &last_key {
                    let more = items(file, *n, l, t);
                    fields.entry(k.clone()).or_default().extend(more);
                    continue;
                }
            }
            if in_rich && t.starts_with("rule") {
                let words = rich_words(t).map_err(|e| err(file, *n, 1, e))?;
                rich.push(Rich {
                    at: format!("line {n}"),
                    loc: Loc {
                        file: file.to_string(),
                        line: *n,
                        col: l.len() - l.trim_start().len() + 1,
                    },
                    words,
                });
                continue;
            }
            let Some((k, v)) = t.split_once(':') else {
                return Err(err(
                    file,
                    *n,
                    1,
                    format!("expected `key: value`, found `{}`", super::clip(t)),
                ));
            };
            in_rich = k == "rich rules";
            last_key = Some(k.to_string());
            fields.insert(k.to_string(), items(file, *n, l, v.trim()));
        }
        let is_policy = fields.contains_key("ingress-zones");
        let is_zone = fields.contains_key("target");
        let is_ipset = fields.contains_key("type");
        let mut take = |k: &str| fields.remove(k).unwrap_or_default();
        if is_zone || is_policy {
            let target = take("target");
            let priority = match take("priority").first() {
                Some(p) => p.text.parse().map_err(|_| {
                    err_at(
                        &p.loc,
                        Format::FirewalldText,
                        format!("policy {name}: priority `{}`", super::clip(&p.text)),
                    )
                })?,
                None => -1,
            };
            let words = |list: Vec<Item>| list.into_iter().map(|i| i.text).collect();
            let forward = take("forward").first().is_some_and(|i| i.text == "yes");
            let ingress_zones = words(take("ingress-zones"));
            let egress_zones = words(take("egress-zones"));
            let list = if is_policy {
                &mut config.policies
            } else {
                &mut config.zones
            };
            list.push(Zone {
                name,
                at: format!("line {line}"),
                default: marks.contains("default"),
                target: target
                    .iter()
                    .map(|i| i.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                sources: take("sources"),
                interfaces: take("interfaces"),
                services: take("services"),
                ports: take("ports"),
                protocols: take("protocols"),
                source_ports: take("source-ports"),
                forward_ports: take("forward-ports")
                    .into_iter()
                    .map(|mut i| {
                        // `port=80:proto=tcp:toport=8080:toaddr=`
                        let get = |k: &str| {
                            i.text
                                .split(':')
                                .find_map(|kv| kv.strip_prefix(k))
                                .unwrap_or("")
                                .to_string()
                        };
                        i.text = format!("{}/{}", get("port="), get("proto="));
                        i
                    })
                    .collect(),
                rich,
                unknown: Vec::new(),
                ingress_priority: 0,
                forward,
                priority,
                ingress_zones,
                egress_zones,
            });
        } else if is_ipset {
            let kind = take("type")
                .first()
                .map(|i| i.text.clone())
                .unwrap_or_default();
            let family = take("options")
                .iter()
                .any(|o| o.text == "family=inet6")
                .then_some(Family::V6);
            let entries = take("entries").into_iter().map(|i| i.text).collect();
            config.ipsets.insert(
                name,
                IpSet {
                    kind,
                    family,
                    entries,
                },
            );
        } else {
            let mut s = Service::default();
            for (key, list) in [("ports", false), ("source-ports", true)] {
                for p in take(key) {
                    let v = port_proto(&p.text).ok_or_else(|| {
                        err_at(
                            &p.loc,
                            Format::FirewalldText,
                            format!("service {name}: port `{}`", super::clip(&p.text)),
                        )
                    })?;
                    if list {
                        s.source_ports.push(v);
                    } else {
                        s.ports.push(v);
                    }
                }
            }
            for p in take("protocols") {
                if let Some(n) = super::nft::proto_name(&p.text) {
                    s.protocols.push(n);
                }
            }
            for d in take("destination") {
                if let Some(span) = destination(&d.text) {
                    s.destination.push(span);
                }
            }
            s.includes = take("includes").into_iter().map(|i| i.text).collect();
            config.services.insert(name, s);
        }
    }
    build(file, config, Format::FirewalldText)
}

/// The one builder of both front ends: chains from zones, services and ipsets.
pub(super) fn build(file: &str, config: Config, format: Format) -> Result<Ruleset, AuditError> {
    let Config {
        zones,
        mut policies,
        services,
        ipsets,
        default_zone,
    } = config;
    if zones.is_empty() {
        return Err(AuditError::Content {
            file: file.to_string(),
            what: if format == Format::FirewalldXml {
                "no zone in the firewalld configuration".into()
            } else {
                "no zone (a block with `target:`) in the firewalld export".into()
            },
            hint: if format == Format::FirewalldXml {
                XML_HINT
            } else {
                "give the output of the firewalld export line in docs/audit.md"
            }
            .into(),
        });
    }
    let default = default_zone
        .or_else(|| zones.iter().find(|z| z.default).map(|z| z.name.clone()))
        .or_else(|| {
            zones
                .iter()
                .find(|z| z.name == "public")
                .map(|z| z.name.clone())
        })
        .unwrap_or_else(|| zones[0].name.clone());
    let Some(default_at) = zones.iter().position(|z| z.name == default) else {
        return Err(AuditError::Content {
            file: file.to_string(),
            what: format!(
                "the default zone `{}` is not in the {}",
                super::clip(&default),
                if format == Format::FirewalldXml {
                    "configuration"
                } else {
                    "export"
                }
            ),
            hint: if format == Format::FirewalldXml {
                "give the zones directories too (etc/firewalld/zones, usr/lib/firewalld/zones)"
            } else {
                "export every zone (`--list-all-zones`)"
            }
            .into(),
        });
    };
    let model = Model {
        services: &services,
        ipsets: &ipsets,
        format,
    };

    let mut chains: Vec<Chain> = Vec::new();
    // Chains 0 and 1: the dispatch of traffic to the host, and of forwarded traffic.
    chains.push(Chain {
        name: "firewalld input (zone dispatch)".into(),
        base: Some(Base {
            hooks: vec![Hook::Input],
            priority: 0,
            families: vec![Family::V4, Family::V6],
            policy_accept: false,
        }),
        rules: Vec::new(),
    });
    chains.push(Chain {
        name: "firewalld forward".into(),
        base: Some(Base {
            hooks: vec![Hook::Forward],
            priority: 0,
            families: vec![Family::V4, Family::V6],
            policy_accept: false,
        }),
        rules: Vec::new(), // the dispatch of forwarded traffic, once the zones are known
    });
    // The policies to the host (egress `HOST`) from a zone or from `ANY`: firewalld jumps to them
    // from every zone's chain, those of negative priority first, the others before the target.
    // The policies between zones (neither side `HOST`) are for forwarded traffic.
    let host = |list: &[String]| list.iter().any(|z| z == "HOST");
    let mut forward: Vec<Zone> = Vec::new();
    for p in std::mem::take(&mut policies) {
        if host(&p.egress_zones) && p.ingress_zones.iter().any(|z| z != "HOST") {
            policies.push(p);
        } else if !host(&p.egress_zones) && !host(&p.ingress_zones) {
            forward.push(p);
        }
    }
    policies.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    forward.sort_by(|a, b| (a.priority, &a.name).cmp(&(b.priority, &b.name)));
    let n = zones.len();
    let (pre_at, post_at) = (n + 2, n + 3);
    let has_pre = policies.iter().any(|p| p.priority < 0);
    let has_post = policies.iter().any(|p| p.priority >= 0);
    for z in &zones {
        let jump = |at: usize, which: &str| Rule {
            matches: Vec::new(),
            action: Action::Jump(at),
            origin: format!("zone {} ({}): policies {which}", z.name, z.at),
            spec: String::new(),
        };
        let mut chain = model.zone_chain(z)?;
        if has_post {
            let target = chain.rules.len() - 1;
            chain.rules.insert(target, jump(post_at, "after the zone"));
        }
        if has_pre {
            chain.rules.insert(0, jump(pre_at, "before the zone"));
        }
        chains.push(chain);
    }
    if !policies.is_empty() {
        let mut pre = Vec::new();
        let mut post = Vec::new();
        for (i, p) in policies.iter().enumerate() {
            let at = post_at + 1 + i;
            let origin = format!(
                "policy {} ({}): ingress {}",
                p.name,
                p.at,
                p.ingress_zones.join(" ")
            );
            let mut rules = Vec::new();
            if p.ingress_zones.iter().any(|z| z == "ANY") {
                rules.push(Vec::new());
            } else {
                for name in &p.ingress_zones {
                    let Some(z) = zones.iter().find(|z| &z.name == name) else {
                        continue; // a zone that does not exist sends nothing
                    };
                    rules.push(vec![Match::is(model.zone_cond(z, &default, true))]);
                }
            }
            let list = if p.priority < 0 { &mut pre } else { &mut post };
            list.extend(rules.into_iter().map(|matches| Rule {
                matches,
                action: Action::Jump(at),
                origin: origin.clone(),
                spec: String::new(),
            }));
        }
        chains.push(Chain {
            name: "firewalld input policies (pre)".into(),
            base: None,
            rules: pre,
        });
        chains.push(Chain {
            name: "firewalld input policies (post)".into(),
            base: None,
            rules: post,
        });
        for p in &policies {
            let mut chain = model.zone_chain(p)?;
            chain.name = format!("firewalld policy {}", super::clean(&p.name));
            chains.push(chain);
        }
    }
    let zone_index = |i: usize| i + 2;
    let mut dispatch: Vec<(i64, Rule)> = Vec::new();
    for (i, z) in zones.iter().enumerate() {
        if z.sources.is_empty() {
            continue;
        }
        let words: Vec<&str> = z.sources.iter().map(|s| s.text.as_str()).collect();
        let origin = super::clean(&format!(
            "zone {} ({}): sources {}",
            z.name,
            z.at,
            words.join(" ")
        ));
        // The addresses the audit can read in one rule; each other source in its own.
        let mut spans = Vec::new();
        let mut unknown = Vec::new();
        for s in &z.sources {
            match s.text.strip_prefix("ipset:") {
                Some(set) => match model.ipset(set) {
                    Ok(list) => spans.extend(list),
                    Err(what) => unknown.push(what),
                },
                None => match addr(&s.text) {
                    Some(span) => spans.push(span),
                    None => {
                        unknown.push(format!("zone {} source `{}`", z.name, super::clip(&s.text)))
                    }
                },
            }
        }
        let goto = |cond| Rule {
            matches: vec![Match::is(cond)],
            action: Action::Goto(zone_index(i)),
            origin: origin.clone(),
            spec: String::new(),
        };
        if !spans.is_empty() {
            dispatch.push((z.ingress_priority, goto(Cond::saddr(spans))));
        }
        for what in unknown {
            dispatch.push((z.ingress_priority, goto(Cond::Unknown(what))));
        }
    }
    // firewalld 2 orders source dispatch by the zones' ingress priority; stable otherwise.
    dispatch.sort_by_key(|(p, _)| *p);
    let mut dispatch: Vec<Rule> = dispatch.into_iter().map(|(_, r)| r).collect();
    // Then by input interface: a zone's interfaces (a final `+` is a prefix, as firewalld
    // writes `eth+`); the default zone takes the rest, so its own interfaces need no rule.
    for (i, z) in zones.iter().enumerate() {
        if z.interfaces.is_empty() || z.name == default {
            continue;
        }
        let names: Vec<super::IfName> = z
            .interfaces
            .iter()
            .map(|n| match n.text.strip_suffix('+') {
                Some(prefix) => super::IfName {
                    name: prefix.to_string(),
                    prefix: true,
                },
                None => super::IfName::exact(&n.text),
            })
            .collect();
        let words: Vec<&str> = z.interfaces.iter().map(|n| n.text.as_str()).collect();
        dispatch.push(Rule {
            matches: vec![Match::is(Cond::Iif(names))],
            action: Action::Goto(zone_index(i)),
            origin: super::clean(&format!(
                "zone {} ({}): interfaces {}",
                z.name,
                z.at,
                words.join(" ")
            )),
            spec: String::new(),
        });
    }
    dispatch.push(Rule {
        matches: Vec::new(),
        action: Action::Goto(zone_index(default_at)),
        origin: format!("default zone {default}"),
        spec: String::new(),
    });
    // Forwarded traffic: the same dispatch by source into each zone's forward chain.
    let fwd_zones = chains.len();
    let fwd_pre = fwd_zones + zones.len();
    let fwd_post = fwd_pre + 1;
    let has_pre = forward.iter().any(|p| p.priority < 0);
    let has_post = forward.iter().any(|p| p.priority >= 0);
    for z in &zones {
        let at = |what: &str| super::clean(&format!("zone {} ({}): {what}", z.name, z.at));
        let mut rules = Vec::new();
        if has_pre {
            rules.push(Rule {
                matches: Vec::new(),
                action: Action::Jump(fwd_pre),
                origin: at("forward policies before the zone"),
                spec: String::new(),
            });
        }
        // `forward`: to the zone's own sources (and interfaces, which are not known).
        if z.forward && (!z.sources.is_empty() || !z.interfaces.is_empty()) {
            rules.push(Rule {
                matches: vec![Match::is(model.zone_cond(z, &default, false))],
                action: Action::Accept,
                origin: at("forward (within the zone)"),
                spec: String::new(),
            });
        }
        if has_post {
            rules.push(Rule {
                matches: Vec::new(),
                action: Action::Jump(fwd_post),
                origin: at("forward policies after the zone"),
                spec: String::new(),
            });
        }
        rules.push(Rule {
            matches: Vec::new(),
            action: match z.target.as_str() {
                "ACCEPT" => Action::Accept,
                "DROP" => Action::Drop,
                _ => Action::Reject,
            },
            origin: at(&format!("target {} (forwarded)", super::clean(&z.target))),
            spec: String::new(),
        });
        chains.push(Chain {
            name: format!("firewalld forward zone {}", super::clean(&z.name)),
            base: None,
            rules,
        });
    }
    let mut pre = Vec::new();
    let mut post = Vec::new();
    for (i, p) in forward.iter().enumerate() {
        let at = fwd_post + 1 + i;
        let side = |names: &[String], ingress: bool| -> Vec<Vec<Match>> {
            if names.iter().any(|z| z == "ANY") {
                return vec![Vec::new()];
            }
            names
                .iter()
                .filter_map(|n| zones.iter().find(|z| &z.name == n))
                .map(|z| vec![Match::is(model.zone_cond(z, &default, ingress))])
                .collect()
        };
        let origin = super::clean(&format!(
            "policy {} ({}): {} to {}",
            p.name,
            p.at,
            p.ingress_zones.join(" "),
            p.egress_zones.join(" ")
        ));
        let list = if p.priority < 0 { &mut pre } else { &mut post };
        for a in side(&p.ingress_zones, true) {
            for b in side(&p.egress_zones, false) {
                list.push(Rule {
                    matches: a.iter().chain(&b).cloned().collect(),
                    action: Action::Jump(at),
                    origin: origin.clone(),
                    spec: String::new(),
                });
            }
        }
    }
    for (name, rules) in [("pre", pre), ("post", post)] {
        chains.push(Chain {
            name: format!("firewalld forward policies ({name})"),
            base: None,
            rules,
        });
    }
    for p in &forward {
        let mut chain = model.zone_chain(p)?;
        chain.name = format!("firewalld policy {}", super::clean(&p.name));
        chains.push(chain);
    }
    // firewalld.conf's RFC3964_IPv4 (on unless it says no, which an export does not show)
    // rejects forwarding to IPv4-compatible, IPv4-mapped and 6to4 addresses of private ranges.
    let rfc3964: Vec<Span> = [
        "::/96",
        "::ffff:0.0.0.0/96",
        "2002::/24",
        "2002:a00::/24",
        "2002:7f00::/24",
        "2002:a9fe::/32",
        "2002:ac10::/28",
        "2002:c0a8::/32",
        "2002:e000::/19",
    ]
    .iter()
    .filter_map(|a| addr(a))
    .collect();
    let mut fwd = vec![Rule {
        matches: vec![
            Match::is(Cond::daddr(rfc3964)),
            Match::is(Cond::Unknown(
                "RFC3964_IPv4 of firewalld.conf (forwarding to IPv4-mapped and 6to4 addresses)"
                    .into(),
            )),
        ],
        action: Action::Reject,
        origin: "firewalld forward: RFC3964_IPv4".into(),
        spec: String::new(),
    }];
    fwd.extend(dispatch.iter().map(|r| {
        let mut r = r.clone();
        if let Action::Goto(z) = r.action {
            r.action = Action::Goto(z - 2 + fwd_zones);
        }
        r
    }));
    chains[1].rules = fwd;
    chains[0].rules = dispatch;
    Ok(Ruleset {
        format,
        chains,
        families: vec![Family::V4, Family::V6],
    })
}

/// What a zone's rules refer to by name.
struct Model<'a> {
    services: &'a HashMap<String, Service>,
    ipsets: &'a HashMap<String, IpSet>,
    format: Format,
}

impl Model<'_> {
    /// "The packet comes from zone `z`" (`ingress`), or "goes to it", as a policy's dispatch
    /// tests it: its source (destination) addresses; a zone bound by interface (or the default
    /// zone, which takes what no other zone does) cannot be decided.
    fn zone_cond(&self, z: &Zone, default: &str, ingress: bool) -> Cond {
        let mut spans = Vec::new();
        for s in &z.sources {
            let got = match s.text.strip_prefix("ipset:") {
                Some(set) => self.ipset(set).ok(),
                None => addr(&s.text).map(|a| vec![a]),
            };
            match got {
                Some(list) => spans.extend(list),
                None => {
                    return Cond::Unknown(format!(
                        "zone {} source `{}` (zone dispatch of a policy or a forward)",
                        z.name,
                        super::clip(&s.text)
                    ));
                }
            }
        }
        if !z.interfaces.is_empty() || z.name == default {
            return Cond::Unknown(format!(
                "whether the packet {} zone {} (by interface)",
                if ingress { "comes from" } else { "goes to" },
                z.name
            ));
        }
        if ingress {
            Cond::saddr(spans)
        } else {
            Cond::daddr(spans)
        }
    }

    fn ipset(&self, name: &str) -> Result<Vec<Span>, String> {
        match self.ipsets.get(name) {
            Some(set) => set.spans(name),
            None => Err(format!(
                "ipset {} (its definition is not in the {})",
                super::clip(name),
                if self.format == Format::FirewalldXml {
                    "configuration"
                } else {
                    "export"
                }
            )),
        }
    }

    /// The rules a service admits: one per protocol, with its ports and destination.
    fn service_rules(&self, name: &str, depth: usize) -> Result<Vec<Vec<Match>>, String> {
        let Some(s) = self.services.get(name) else {
            return Err(format!(
                "service {} (its definition is not in the {})",
                super::clip(name),
                if self.format == Format::FirewalldXml {
                    "configuration"
                } else {
                    "export"
                }
            ));
        };
        let mut out = Vec::new();
        let group = |list: &[(u16, u16, u8)]| {
            let mut by_proto: Vec<(u8, Vec<(u16, u16)>)> = Vec::new();
            for &(lo, hi, p) in list {
                match by_proto.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, v)) => v.push((lo, hi)),
                    None => by_proto.push((p, vec![(lo, hi)])),
                }
            }
            by_proto
        };
        let dest = |m: &mut Vec<Match>| {
            if !s.destination.is_empty() {
                m.push(Match::is(Cond::daddr(s.destination.clone())));
            }
        };
        for (p, ports) in group(&s.ports) {
            let mut m = vec![
                Match::is(Cond::Proto(vec![p])),
                Match::is(Cond::dport(ports)),
            ];
            dest(&mut m);
            out.push(m);
        }
        // A service's source ports open every destination port to packets from those ports.
        for (p, ports) in group(&s.source_ports) {
            let mut m = vec![
                Match::is(Cond::Proto(vec![p])),
                Match::is(Cond::sport(ports)),
            ];
            dest(&mut m);
            out.push(m);
        }
        if !s.protocols.is_empty() {
            let mut m = vec![Match::is(Cond::Proto(s.protocols.clone()))];
            dest(&mut m);
            out.push(m);
        }
        if depth < 8 {
            for inc in &s.includes {
                out.extend(self.service_rules(inc, depth + 1)?);
            }
        }
        Ok(out)
    }

    fn zone_chain(&self, z: &Zone) -> Result<Chain, AuditError> {
        let kind = if z.ingress_zones.is_empty() && z.egress_zones.is_empty() {
            "zone"
        } else {
            "policy"
        };
        let at = |what: &str| super::clean(&format!("{kind} {} ({}): {what}", z.name, z.at));
        let fail = |loc: &Loc, what: String| err_at(loc, self.format, what);
        let mut rules: Vec<(i64, u8, Rule)> = Vec::new(); // (priority, class, rule): class 0 deny, 1 allow, 2 service/port
        for item in &z.unknown {
            rules.push((
                i64::MIN,
                0,
                Rule {
                    matches: vec![Match::is(Cond::Unknown(format!(
                        "{kind} {} element {}",
                        z.name,
                        super::clip(&item.text)
                    )))],
                    action: Action::Unknown(format!("element {}", super::clip(&item.text))),
                    origin: format!(
                        "{kind} {} ({}:{}): {}",
                        z.name,
                        item.loc.file,
                        item.loc.line,
                        super::clip(&item.text)
                    ),
                    spec: String::new(),
                },
            ));
        }
        for r in &z.rich {
            let (prio, class, list) = self
                .rich_rule(&r.words)
                .map_err(|e| fail(&r.loc, format!("{kind} {}: {e}", z.name)))?;
            let text = r.text();
            for mut rule in list {
                rule.origin = super::clean(&format!("{kind} {} {}: {}", z.name, r.at, text));
                rules.push((prio, class, rule));
            }
        }
        let mut plain = Vec::new();
        for s in &z.services {
            let s = s.text.as_str();
            match self.service_rules(s, 0) {
                Ok(list) => {
                    for m in list {
                        plain.push(Rule {
                            matches: m,
                            action: Action::Accept,
                            origin: at(&format!("service {}", super::clean(s))),
                            spec: String::new(),
                        });
                    }
                }
                Err(what) => plain.push(Rule {
                    matches: vec![Match::is(Cond::Unknown(what))],
                    action: Action::Accept,
                    origin: at(&format!("service {}", super::clean(s))),
                    spec: String::new(),
                }),
            }
        }
        for p in &z.ports {
            let Some((lo, hi, proto)) = port_proto(&p.text) else {
                return Err(fail(
                    &p.loc,
                    format!(
                        "{kind} {}: port `{}` (PORT or FIRST-LAST, 1-65535, then /PROTOCOL)",
                        z.name,
                        super::clip(&p.text)
                    ),
                ));
            };
            plain.push(Rule {
                matches: vec![
                    Match::is(Cond::Proto(vec![proto])),
                    Match::is(Cond::dport(vec![(lo, hi)])),
                ],
                action: Action::Accept,
                origin: at(&format!("port {}", super::clean(&p.text))),
                spec: String::new(),
            });
        }
        for p in &z.protocols {
            if let Some(n) = super::nft::proto_name(&p.text) {
                plain.push(Rule {
                    matches: vec![Match::is(Cond::Proto(vec![n]))],
                    action: Action::Accept,
                    origin: at(&format!("protocol {}", super::clean(&p.text))),
                    spec: String::new(),
                });
            }
        }
        // A source port opens every destination port to packets from it: whether the client
        // uses that port is not known.
        for p in &z.source_ports {
            let Some((lo, hi, proto)) = port_proto(&p.text) else {
                return Err(fail(
                    &p.loc,
                    format!("{kind} {}: source port `{}`", z.name, super::clip(&p.text)),
                ));
            };
            plain.push(Rule {
                matches: vec![
                    Match::is(Cond::Proto(vec![proto])),
                    Match::is(Cond::sport(vec![(lo, hi)])),
                ],
                action: Action::Accept,
                origin: at(&format!("source-port {}", super::clean(&p.text))),
                spec: String::new(),
            });
        }
        // A destination NAT entry sends the port elsewhere: what happens there is not modelled.
        for p in &z.forward_ports {
            let mut m = Vec::new();
            if let Some((lo, hi, proto)) = port_proto(&p.text) {
                m.push(Match::is(Cond::Proto(vec![proto])));
                m.push(Match::is(Cond::dport(vec![(lo, hi)])));
            }
            m.push(Match::is(Cond::Unknown(format!(
                "forward-port {} (destination NAT is not evaluated)",
                super::clip(&p.text)
            ))));
            rules.push((
                i64::MIN,
                0,
                Rule {
                    matches: m,
                    action: Action::Accept,
                    origin: at(&format!("forward-port {}", super::clean(&p.text))),
                    spec: String::new(),
                },
            ));
        }
        rules.extend(plain.into_iter().map(|r| (0, 2, r)));
        // firewalld's order: negative priorities, then at 0 deny before allow before services
        // and ports, then positive priorities; the order of the input within one class.
        rules.sort_by_key(|(p, c, _)| (*p, if *p == 0 { *c } else { 0 }));
        let mut out: Vec<Rule> = rules.into_iter().map(|(_, _, r)| r).collect();
        let target = z.target.as_str();
        let action = match target {
            "ACCEPT" => Action::Accept,
            "DROP" => Action::Drop,
            // A policy's default: on to what comes after it.
            "CONTINUE" => Action::Return,
            // `default` and %%REJECT%% reject what the zone does not admit.
            _ => Action::Reject,
        };
        out.push(Rule {
            matches: Vec::new(),
            action,
            origin: at(&format!("target {}", super::clean(target))),
            spec: String::new(),
        });
        Ok(Chain {
            name: format!("firewalld zone {}", super::clean(&z.name)),
            base: None,
            rules: out,
        })
    }

    /// One rich rule: (priority, class, its rules without origin: one per protocol of a service).
    fn rich_rule(
        &self,
        words: &[(String, Option<String>)],
    ) -> Result<(i64, u8, Vec<Rule>), String> {
        let mut matches = Vec::new();
        let mut prio = 0i64;
        let mut action = Action::Continue;
        let mut class = 1u8;
        let mut i = 0;
        let mut element = "";
        let mut negate = false;
        let mut limited = false;
        let mut service_alts: Option<Vec<Vec<Match>>> = None;
        while i < words.len() {
            let (k, v) = (&words[i].0, words[i].1.as_deref());
            match (k.as_str(), v) {
                ("rule", None) => {}
                ("family", Some(f)) => matches.push(Match::is(Cond::Family(if f == "ipv6" {
                    Family::V6
                } else {
                    Family::V4
                }))),
                ("priority", Some(p)) => {
                    prio = p
                        .parse()
                        .map_err(|_| format!("priority `{}`", super::clip(p)))?
                }
                ("source" | "destination", None) => {
                    element = if k == "source" {
                        "source"
                    } else {
                        "destination"
                    };
                    negate = false;
                }
                ("NOT", None) => negate = true,
                ("address" | "ipset", Some(a))
                    if element == "source" || element == "destination" =>
                {
                    let spans = if k == "address" {
                        addr(a)
                            .map(|s| vec![s])
                            .ok_or_else(|| format!("address `{}` in a rich rule", super::clip(a)))?
                    } else {
                        match self.ipset(a) {
                            Ok(s) => s,
                            Err(what) => {
                                matches.push(Match::is(Cond::Unknown(what)));
                                i += 1;
                                continue;
                            }
                        }
                    };
                    let c = if element == "source" {
                        Cond::saddr(spans)
                    } else {
                        Cond::daddr(spans)
                    };
                    matches.push(Match::not(c, negate));
                }
                ("mac", Some(x)) => {
                    matches.push(Match::is(Cond::Unknown(format!("mac {}", super::clip(x)))))
                }
                ("service", None) | ("port", None) | ("protocol", None) | ("source-port", None) => {
                    element = k.as_str()
                }
                ("name", Some(s)) if element == "service" => {
                    service_alts = Some(
                        self.service_rules(s, 0)
                            .unwrap_or_else(|what| vec![vec![Match::is(Cond::Unknown(what))]]),
                    );
                }
                ("port", Some(p)) if element == "port" || element == "source-port" => {
                    let proto = words
                        .get(i + 1)
                        .filter(|w| w.0 == "protocol")
                        .and_then(|w| w.1.clone())
                        .unwrap_or_default();
                    let (lo, hi, n) = port_proto(&format!("{p}/{proto}")).ok_or_else(|| {
                        format!(
                            "port `{}` protocol `{}`",
                            super::clip(p),
                            super::clip(&proto)
                        )
                    })?;
                    if element == "source-port" {
                        matches.push(Match::is(Cond::Proto(vec![n])));
                        matches.push(Match::is(Cond::sport(vec![(lo, hi)])));
                    } else {
                        matches.push(Match::is(Cond::Proto(vec![n])));
                        matches.push(Match::is(Cond::dport(vec![(lo, hi)])));
                    }
                    i += 1;
                }
                ("value", Some(p)) if element == "protocol" => match super::nft::proto_name(p) {
                    Some(n) => matches.push(Match::is(Cond::Proto(vec![n]))),
                    None => matches.push(Match::is(Cond::Unknown(format!(
                        "protocol {}",
                        super::clip(p)
                    )))),
                },
                ("accept", None) => {
                    action = Action::Accept;
                    element = "action";
                }
                ("reject", None) => {
                    action = Action::Reject;
                    class = 0;
                    element = "action";
                }
                ("drop", None) => {
                    action = Action::Drop;
                    class = 0;
                    element = "action";
                }
                // A limit on a log only limits the logging; on the verdict, the verdict.
                ("limit", None) if matches!(element, "log" | "mark") => {}
                ("limit", None) => limited = true,
                ("log" | "audit" | "nflog", None) => element = "log",
                ("mark", None) => element = "mark",
                // ICMP only: never a TCP or UDP connection.
                ("icmp-block" | "icmp-type", None) => {
                    element = "other";
                    matches.push(Match::is(Cond::Proto(vec![1, 58])));
                }
                ("forward-port" | "masquerade" | "tcp-mss-clamp", None) => {
                    element = "other";
                    matches.push(Match::is(Cond::Unknown(format!("rich rule element {k}"))));
                }
                (_, Some(_)) if matches!(element, "log" | "mark" | "other") || limited => {}
                ("type", Some(_)) => {} // reject type
                _ => {
                    return Err(format!("unexpected `{}` in a rich rule", super::clip(k)));
                }
            }
            i += 1;
        }
        if limited {
            matches.push(Match::is(Cond::Unknown("rich rule limit".into())));
        }
        let rule = |extra: Vec<Match>| {
            let mut m = matches.clone();
            m.extend(extra);
            Rule {
                matches: m,
                action: action.clone(),
                origin: String::new(),
                spec: String::new(),
            }
        };
        // A service with several protocols (or ports per protocol) is one rule per alternative.
        let list = match service_alts {
            Some(alts) => alts.into_iter().map(rule).collect(),
            None => vec![rule(Vec::new())],
        };
        Ok((prio, class, list))
    }
}

/// Splits a rich rule into words, keeping `key="value with spaces"` together.
fn rich_words(text: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.peek() == Some(&'=') {
            chars.next();
            let mut value = String::new();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => value.push(c),
                        None => return Err("unterminated quoted value in a rich rule".into()),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
            out.push((key, Some(value)));
        } else {
            out.push((key, None));
        }
    }
    Ok(out)
}
