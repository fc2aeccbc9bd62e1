//! Reader of a Palo Alto PAN-OS configuration, as XML (`show config running`, an exported
//! `running-config.xml`) or in the `set` format: `address`, static and dynamic `address-group`,
//! `service`, `service-group`, the security rules in order (pre-rulebase, rulebase,
//! post-rulebase) with their zones, negations, `disabled`, applications, and the default
//! intrazone-allow / interzone-deny rules.

use std::collections::BTreeMap;

use super::{Addrs, Entry, Groups, Svc, err, final_rule, port_span, span_of};
use crate::audit::{Action, AuditError, Format, Match, Ruleset, clip};

const HINT: &str = "give the unmodified output of `show config running` (XML) or of `show` in \
                    `set cli config-output-format set` (docs/audit.md)";

/// The XML configuration: its root is `<config …>` (or a `<response>` holding it).
pub fn looks_xml(text: &str) -> bool {
    let t = text.trim_start_matches('\u{feff}').trim_start();
    let t = t
        .strip_prefix("<?xml")
        .and_then(|r| r.split_once("?>"))
        .map_or(t, |(_, r)| r.trim_start());
    // A DTD before the root is refused by the reader, with this format's hint.
    let t = if t.starts_with("<!DOCTYPE config") {
        "<config"
    } else {
        t
    };
    t.starts_with("<config") || t.starts_with("<response")
}

/// The `set` format: the commands only PAN-OS writes.
pub fn looks_set(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        [
            "set rulebase ",
            "set pre-rulebase ",
            "set post-rulebase ",
            "set address-group ",
            "set service-group ",
            "set deviceconfig ",
            "set zone ",
        ]
        .iter()
        .any(|p| l.starts_with(p))
            || (l.starts_with("set vsys ") && l.contains(" rulebase "))
    })
}

#[derive(Default)]
struct Rule {
    name: String,
    line: usize,
    rank: u8,
    from: Vec<String>,
    to: Vec<String>,
    source: Vec<String>,
    destination: Vec<String>,
    negate_source: bool,
    negate_destination: bool,
    service: Vec<String>,
    application: Vec<String>,
    source_user: Vec<String>,
    action: String,
    disabled: bool,
}

#[derive(Default)]
struct Conf {
    addrs: Groups<Addrs>,
    svcs: Groups<Svc>,
    rules: Vec<Rule>,
    /// `intrazone-default` / `interzone-default` overridden: name → action.
    defaults: BTreeMap<String, (String, usize)>,
}

impl Conf {
    fn addr(&mut self, name: &str, line: usize, a: Addrs) {
        self.addrs
            .defs
            .insert(name.to_string(), (line, vec![Ok(a)]));
    }
}

fn addr_value(kind: &str, value: &str) -> Option<Addrs> {
    let spans = match kind {
        "ip-netmask" | "ip-range" => vec![span_of(value)?],
        _ => {
            return Some(Addrs {
                spans: Vec::new(),
                unknown: Some(format!("address {kind} {}", clip(value))),
            });
        }
    };
    Some(Addrs {
        spans,
        unknown: None,
    })
}

fn ports(text: &str) -> Option<Vec<(u16, u16)>> {
    text.split(',').map(|p| port_span(p.trim())).collect()
}

// ---------------------------------------------------------------------------------------------
// XML

pub fn read_xml(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| {
        let p = e.pos();
        err(
            file,
            p.row as usize,
            p.col as usize,
            format!("not well-formed XML: {}", clip(&e.to_string())),
            HINT,
        )
    })?;
    // roxmltree's text_pos_at counts from the start each time: lines are looked up in a table
    // of line starts instead (a 10,000-rule export has as many entries).
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let pos = |n: roxmltree::Node| -> (usize, usize) {
        let at = n.range().start;
        let row = starts.partition_point(|&s| s <= at);
        let col = text[starts[row - 1]..at].chars().count() + 1;
        (row, col)
    };
    let line = |n: roxmltree::Node| pos(n).0;
    let fail = |n: roxmltree::Node, what: String| {
        let (row, col) = pos(n);
        err(file, row, col, what, HINT)
    };
    let child = |n: roxmltree::Node<'_, '_>, tag: &str| -> Option<String> {
        n.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let members = |n: roxmltree::Node<'_, '_>, tag: &str| -> Vec<String> {
        n.children()
            .filter(|c| c.has_tag_name(tag))
            .flat_map(|c| c.children().filter(|m| m.has_tag_name("member")))
            .filter_map(|m| m.text().map(|t| t.trim().to_string()))
            .collect()
    };
    let mut c = Conf::default();
    for n in doc.descendants().filter(|n| n.has_tag_name("entry")) {
        let Some(parent) = n.parent_element() else {
            continue;
        };
        let Some(name) = n.attribute("name") else {
            continue;
        };
        let l = line(n);
        match parent.tag_name().name() {
            "address" => {
                let Some(kind) = n.children().find(|k| {
                    k.is_element()
                        && k.tag_name().name() != "description"
                        && k.tag_name().name() != "tag"
                }) else {
                    continue;
                };
                let k = kind.tag_name().name();
                let v = kind.text().unwrap_or("").trim();
                let a = addr_value(k, v)
                    .ok_or_else(|| fail(kind, format!("not an address: `{}`", clip(v))))?;
                c.addr(name, l, a);
            }
            "address-group" => {
                let stat = members(n, "static");
                let m = if n.children().any(|k| k.has_tag_name("dynamic")) {
                    vec![Ok(Addrs {
                        spans: Vec::new(),
                        unknown: Some(format!(
                            "dynamic address group {} (its members are known only at run time)",
                            clip(name)
                        )),
                    })]
                } else {
                    stat.into_iter().map(Err).collect()
                };
                c.addrs.defs.insert(name.to_string(), (l, m));
            }
            "service" => {
                let Some(proto) = n.children().find(|k| k.has_tag_name("protocol")) else {
                    continue;
                };
                let mut list = Vec::new();
                for p in proto.children().filter(|k| k.is_element()) {
                    let num = match p.tag_name().name() {
                        "tcp" => 6,
                        "udp" => 17,
                        "sctp" => 132,
                        _ => continue,
                    };
                    let port = child(p, "port").unwrap_or_default();
                    let dport = ports(&port)
                        .ok_or_else(|| fail(p, format!("not a port list: `{}`", clip(&port))))?;
                    let sport =
                        match child(p, "source-port") {
                            Some(s) => Some(ports(&s).ok_or_else(|| {
                                fail(p, format!("not a port list: `{}`", clip(&s)))
                            })?),
                            None => None,
                        };
                    list.push(Ok(Svc {
                        proto: Some(vec![num]),
                        sport,
                        dport: Some(dport),
                        unknown: None,
                    }));
                }
                c.svcs.defs.insert(name.to_string(), (l, list));
            }
            "service-group" => {
                let m = members(n, "members");
                c.svcs
                    .defs
                    .insert(name.to_string(), (l, m.into_iter().map(Err).collect()));
            }
            "rules" => {
                let Some(kind) = parent.parent_element() else {
                    continue;
                };
                if kind.has_tag_name("default-security-rules") {
                    if let Some(a) = child(n, "action") {
                        c.defaults.insert(name.to_string(), (a, l));
                    }
                    continue;
                }
                if !kind.has_tag_name("security") {
                    continue;
                }
                let rank = match kind.parent_element().map(|b| b.tag_name().name()) {
                    Some("pre-rulebase") => 0,
                    Some("post-rulebase") => 2,
                    _ => 1,
                };
                c.rules.push(Rule {
                    name: name.to_string(),
                    line: l,
                    rank,
                    from: members(n, "from"),
                    to: members(n, "to"),
                    source: members(n, "source"),
                    destination: members(n, "destination"),
                    negate_source: child(n, "negate-source").as_deref() == Some("yes"),
                    negate_destination: child(n, "negate-destination").as_deref() == Some("yes"),
                    service: members(n, "service"),
                    application: members(n, "application"),
                    source_user: members(n, "source-user"),
                    action: child(n, "action").unwrap_or_default(),
                    disabled: child(n, "disabled").as_deref() == Some("yes"),
                });
            }
            _ => {}
        }
    }
    build(file, c, Format::PanosXml)
}

// ---------------------------------------------------------------------------------------------
// set format

/// The words of a `set` line: quoted words kept whole, `[ a b ]` as one list word.
pub(super) fn words(line: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut list: Option<Vec<String>> = None;
    let mut chars = line.chars().peekable();
    while let Some(&ch) = chars.peek() {
        if ch.is_whitespace() {
            chars.next();
            continue;
        }
        let word: String = if ch == '"' || ch == '\'' {
            chars.next();
            let w: String = chars.by_ref().take_while(|c| *c != ch).collect();
            w
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
            if w == "[" {
                list = Some(Vec::new());
                continue;
            }
            if w == "]" {
                out.push(list.take().unwrap_or_default());
                continue;
            }
            w
        };
        match &mut list {
            Some(l) => l.push(word),
            None => out.push(vec![word]),
        }
    }
    if let Some(l) = list {
        out.push(l);
    }
    out
}

pub fn read_set(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    let mut c = Conf::default();
    let mut rules: BTreeMap<(u8, String), usize> = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let l = i + 1;
        let w = words(raw.trim());
        let one =
            |k: usize| -> Option<&str> { w.get(k).and_then(|v| v.first()).map(String::as_str) };
        if one(0) != Some("set") {
            continue;
        }
        let mut k = 1;
        // `set vsys vsys1 …`, `set shared …`, `set device-group DG …`
        match one(1) {
            Some("vsys" | "device-group" | "template") => k = 3,
            Some("shared") => k = 2,
            _ => {}
        }
        let fail = |what: String| err(file, l, 1, what, HINT);
        let values = |k: usize| -> Vec<String> { w.get(k).cloned().unwrap_or_default() };
        match one(k) {
            Some("address") => {
                let (Some(name), Some(kind), Some(v)) = (one(k + 1), one(k + 2), one(k + 3)) else {
                    continue;
                };
                if matches!(kind, "description" | "tag") {
                    continue;
                }
                let a = addr_value(kind, v)
                    .ok_or_else(|| fail(format!("not an address: `{}`", clip(v))))?;
                c.addr(name, l, a);
            }
            Some("address-group") => {
                let Some(name) = one(k + 1) else { continue };
                let m = match one(k + 2) {
                    Some("static") => values(k + 3).into_iter().map(Err).collect(),
                    Some("dynamic") => vec![Ok(Addrs {
                        spans: Vec::new(),
                        unknown: Some(format!(
                            "dynamic address group {} (its members are known only at run time)",
                            clip(name)
                        )),
                    })],
                    _ => continue,
                };
                let e = c.addrs.members(name, l);
                e.extend(m);
            }
            Some("service") => {
                let (Some(name), Some("protocol"), Some(p)) = (one(k + 1), one(k + 2), one(k + 3))
                else {
                    continue;
                };
                let num = match p {
                    "tcp" => 6,
                    "udp" => 17,
                    "sctp" => 132,
                    _ => continue,
                };
                let e = c.svcs.members(name, l);
                let mut svc = match e.iter_mut().rev().find_map(|m| match m {
                    Ok(s) if s.proto.as_deref() == Some(&[num][..]) => Some(s.clone()),
                    _ => None,
                }) {
                    Some(s) => s,
                    None => Svc::proto(num, None),
                };
                match (one(k + 4), one(k + 5)) {
                    (Some("port"), Some(v)) => {
                        svc.dport = Some(
                            ports(v)
                                .ok_or_else(|| fail(format!("not a port list: `{}`", clip(v))))?,
                        );
                    }
                    (Some("source-port"), Some(v)) => {
                        svc.sport = Some(
                            ports(v)
                                .ok_or_else(|| fail(format!("not a port list: `{}`", clip(v))))?,
                        );
                    }
                    _ => {}
                }
                e.retain(|m| !matches!(m, Ok(s) if s.proto.as_deref() == Some(&[num][..])));
                e.push(Ok(svc));
            }
            Some("service-group") => {
                let (Some(name), Some("members")) = (one(k + 1), one(k + 2)) else {
                    continue;
                };
                let e = c.svcs.members(name, l);
                e.extend(values(k + 3).into_iter().map(Err));
            }
            Some(base @ ("rulebase" | "pre-rulebase" | "post-rulebase")) => {
                let kind = one(k + 1);
                let (Some("rules"), Some(name), Some(attr)) = (one(k + 2), one(k + 3), one(k + 4))
                else {
                    continue;
                };
                if kind == Some("default-security-rules") {
                    if attr == "action" {
                        if let Some(a) = one(k + 5) {
                            c.defaults.insert(name.to_string(), (a.to_string(), l));
                        }
                    }
                    continue;
                }
                if kind != Some("security") {
                    continue;
                }
                let rank = match base {
                    "pre-rulebase" => 0,
                    "post-rulebase" => 2,
                    _ => 1,
                };
                let at = *rules.entry((rank, name.to_string())).or_insert_with(|| {
                    c.rules.push(Rule {
                        name: name.to_string(),
                        line: l,
                        rank,
                        ..Rule::default()
                    });
                    c.rules.len() - 1
                });
                let r = &mut c.rules[at];
                let v = values(k + 5);
                let yes = v.first().is_some_and(|s| s == "yes");
                match attr {
                    "from" => r.from.extend(v),
                    "to" => r.to.extend(v),
                    "source" => r.source.extend(v),
                    "destination" => r.destination.extend(v),
                    "service" => r.service.extend(v),
                    "application" => r.application.extend(v),
                    "source-user" => r.source_user.extend(v),
                    "negate-source" => r.negate_source = yes,
                    "negate-destination" => r.negate_destination = yes,
                    "disabled" => r.disabled = yes,
                    "action" => r.action = v.into_iter().next().unwrap_or_default(),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    build(file, c, Format::PanosSet)
}

// ---------------------------------------------------------------------------------------------

/// Predefined services (`service-http`, `service-https`).
fn predefined(name: &str) -> Option<Vec<Svc>> {
    Some(match name {
        "service-http" => vec![Svc::proto(6, Some(vec![(80, 80), (8080, 8080)]))],
        "service-https" => vec![Svc::proto(6, Some(vec![(443, 443)]))],
        _ => return None,
    })
}

fn build(file: &str, mut c: Conf, format: Format) -> Result<Ruleset, AuditError> {
    c.rules.sort_by_key(|r| r.rank);
    let resolve_addrs = |list: &[String]| -> Result<Addrs, AuditError> {
        if list.is_empty() || list.iter().any(|m| m == "any") {
            return Ok(Addrs::any());
        }
        let mut out = Addrs::default();
        for m in list {
            if c.addrs.defs.contains_key(m) {
                for a in c.addrs.resolve(m, &mut Vec::new(), file, HINT)? {
                    out.add(&a);
                }
            } else if let Some(s) = span_of(m) {
                out.spans.push(s); // a literal address in the rule
            } else {
                out.add(&Addrs {
                    spans: Vec::new(),
                    unknown: Some(format!(
                        "address `{}` (not defined in this file: shared or a region?)",
                        clip(m)
                    )),
                });
            }
        }
        Ok(out)
    };
    let mut rules = Vec::new();
    for r in &c.rules {
        if r.disabled {
            continue;
        }
        let origin = format!("line {}: security rule \"{}\"", r.line, clip(&r.name));
        let zones = |l: &[String]| -> Option<Vec<String>> {
            (!l.is_empty() && !l.iter().any(|z| z == "any")).then(|| l.to_vec())
        };
        let mut services = Vec::new();
        for s in &r.service {
            match s.as_str() {
                "any" => services.push(Svc::any()),
                "application-default" => services.push(Svc::unknown(
                    "service application-default (the applications' own ports: App-ID is not a \
                     port)"
                        .into(),
                )),
                n => match predefined(n) {
                    Some(p) if !c.svcs.defs.contains_key(n) => services.extend(p),
                    _ => services.extend(c.svcs.resolve(n, &mut Vec::new(), file, HINT)?),
                },
            }
        }
        if r.service.is_empty() {
            services.push(Svc::any());
        }
        let apps: Vec<&String> = r.application.iter().filter(|a| *a != "any").collect();
        let users: Vec<&String> = r.source_user.iter().filter(|a| *a != "any").collect();
        let unknown = if !apps.is_empty() {
            Some(format!(
                "application {} (App-ID is not a port)",
                clip(
                    &apps
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            ))
        } else if !users.is_empty() {
            Some("source-user (User-ID is not an address)".to_string())
        } else {
            None
        };
        let action = match r.action.as_str() {
            "allow" => Action::Accept,
            "deny" | "drop" | "reset-client" | "reset-server" | "reset-both" => Action::Drop,
            a => {
                return Err(err(
                    file,
                    r.line,
                    1,
                    format!("security rule \"{}\": action `{}`", clip(&r.name), clip(a)),
                    HINT,
                ));
            }
        };
        rules.extend(
            Entry {
                from: zones(&r.from),
                to: zones(&r.to),
                src: resolve_addrs(&r.source)?,
                dst: resolve_addrs(&r.destination)?,
                negate_src: r.negate_source,
                negate_dst: r.negate_destination,
                services,
                action,
                origin,
                unknown,
            }
            .rules(),
        );
    }
    let default = |name: &str, allow: bool| -> (Action, String) {
        match c.defaults.get(name) {
            Some((a, l)) => (
                if a == "allow" {
                    Action::Accept
                } else {
                    Action::Drop
                },
                format!("line {l}: {name} (action {})", clip(a)),
            ),
            None => (
                if allow { Action::Accept } else { Action::Drop },
                format!("{name} (default: {})", if allow { "allow" } else { "deny" }),
            ),
        }
    };
    let (a, o) = default("intrazone-default", true);
    rules.push(final_rule(vec![Match::is(super::same_side())], a, o));
    let (a, o) = default("interzone-default", false);
    rules.push(final_rule(Vec::new(), a, o));
    Ok(super::ruleset(
        format,
        vec![super::chain("PAN-OS security rules", 0, rules, false)],
    ))
}
