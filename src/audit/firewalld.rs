//! Reader of a firewalld export: `firewall-cmd --list-all-zones` followed by the definitions of
//! the services the zones use (`firewall-cmd --info-service=NAME`), optionally preceded by
//! `default-zone: NAME` (docs/audit.md has the line). Zones become chains, entered by source
//! address, else the default zone; inside a zone: rich rules by priority (deny before allow at
//! priority 0), services and ports, then the zone's target.

use std::collections::HashMap;

use super::{
    Action, AuditError, Base, Chain, Cond, Family, Format, Hook, Match, Rule, Ruleset, Span,
};

#[derive(Debug, Default)]
struct Zone {
    name: String,
    line: usize,
    default: bool,
    fields: HashMap<String, String>,
    rich: Vec<(usize, String)>,
}

#[derive(Debug, Default, Clone)]
struct Service {
    ports: Vec<(u16, u16, u8)>,
    protocols: Vec<u8>,
    destination: Vec<Span>,
    includes: Vec<String>,
}

/// Whether text looks like `firewall-cmd --list-all-zones` output.
pub fn looks_firewalld(text: &str) -> bool {
    text.lines().any(|l| l.trim_start().starts_with("target:"))
        && text
            .lines()
            .any(|l| l.trim_start().starts_with("icmp-block-inversion:"))
}

fn err(file: &str, line: usize, col: usize, what: String) -> AuditError {
    AuditError::Syntax {
        file: file.to_string(),
        line,
        col,
        what,
        hint: "give the unmodified output of the firewalld export line in docs/audit.md".into(),
    }
}

fn port_proto(s: &str) -> Option<(u16, u16, u8)> {
    let (ports, proto) = s.split_once('/')?;
    let proto = super::nft::proto_name(proto)?;
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let p = ports.parse().ok()?;
            (p, p)
        }
    };
    Some((lo, hi, proto))
}

fn addr(s: &str) -> Option<Span> {
    let net: ipnet::IpNet = s
        .parse()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))?;
    Some(Span::net(&net.trunc()))
}

/// A block of the export: its line, its name line, and its indented (line, text) lines.
type Block = (usize, String, Vec<(usize, String)>);

pub fn read(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    let mut zones: Vec<Zone> = Vec::new();
    let mut services: HashMap<String, Service> = HashMap::new();
    let mut default_zone: Option<String> = None;
    // Blocks: a name at column 0, then indented `key: value` lines; rich rules indented further.
    let mut blocks: Vec<Block> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(z) = line.strip_prefix("default-zone:") {
            default_zone = Some(z.trim().to_string());
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
        let mut fields = HashMap::new();
        let mut rich = Vec::new();
        let mut in_rich = false;
        for (n, l) in &body {
            let t = l.trim();
            if in_rich && t.starts_with("rule") {
                rich.push((*n, t.to_string()));
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
            fields.insert(k.to_string(), v.trim().to_string());
        }
        if fields.contains_key("target") {
            zones.push(Zone {
                name,
                line,
                default: marks.contains("default"),
                fields,
                rich,
            });
        } else {
            let mut s = Service::default();
            for p in fields
                .get("ports")
                .map(String::as_str)
                .unwrap_or("")
                .split_whitespace()
            {
                s.ports.push(port_proto(p).ok_or_else(|| {
                    err(
                        file,
                        line,
                        1,
                        format!("service {name}: port `{}`", super::clip(p)),
                    )
                })?);
            }
            for p in fields
                .get("protocols")
                .map(String::as_str)
                .unwrap_or("")
                .split_whitespace()
            {
                if let Some(n) = super::nft::proto_name(p) {
                    s.protocols.push(n);
                }
            }
            for d in fields
                .get("destination")
                .map(String::as_str)
                .unwrap_or("")
                .split_whitespace()
            {
                let a =
                    d.split_once(':').map_or(
                        d,
                        |(fam, a)| {
                            if fam == "ipv4" || fam == "ipv6" { a } else { d }
                        },
                    );
                if let Some(span) = addr(a) {
                    s.destination.push(span);
                }
            }
            s.includes = fields
                .get("includes")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default();
            services.insert(name, s);
        }
    }
    if zones.is_empty() {
        return Err(AuditError::Content {
            file: file.to_string(),
            what: "no zone (a block with `target:`) in the firewalld export".into(),
            hint: "give the output of the firewalld export line in docs/audit.md".into(),
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
                "the default zone `{}` is not in the export",
                super::clip(&default)
            ),
            hint: "export every zone (`--list-all-zones`)".into(),
        });
    };

    let mut chains: Vec<Chain> = Vec::new();
    // Chains 0 and 1: the dispatch on input, and forwarded traffic (policies are not read).
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
        rules: vec![Rule {
            matches: vec![Match::is(Cond::Unknown(
                "forwarded traffic (firewalld policies are not read)".into(),
            ))],
            action: Action::Drop,
            origin: "firewalld forward".into(),
            spec: String::new(),
        }],
    });
    for z in &zones {
        chains.push(zone_chain(file, z, &services)?);
    }
    let zone_index = |i: usize| i + 2;
    let mut dispatch = Vec::new();
    for (i, z) in zones.iter().enumerate() {
        let sources: Vec<&str> = z
            .fields
            .get("sources")
            .map(String::as_str)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if sources.is_empty() {
            continue;
        }
        let spans: Option<Vec<Span>> = sources.iter().map(|s| addr(s)).collect();
        let cond = match spans {
            Some(s) => Cond::Saddr(s),
            None => Cond::Unknown(format!(
                "zone {} sources `{}`",
                z.name,
                super::clip(&sources.join(" "))
            )),
        };
        dispatch.push(Rule {
            matches: vec![Match::is(cond)],
            action: Action::Goto(zone_index(i)),
            origin: format!(
                "zone {} (line {}): sources {}",
                z.name,
                z.line,
                sources.join(" ")
            ),
            spec: String::new(),
        });
    }
    let with_ifaces: Vec<&Zone> = zones
        .iter()
        .filter(|z| {
            !z.fields
                .get("interfaces")
                .map(String::as_str)
                .unwrap_or("")
                .trim()
                .is_empty()
        })
        .collect();
    let only_default = with_ifaces.iter().all(|z| z.name == default);
    dispatch.push(Rule {
        matches: if only_default {
            Vec::new()
        } else {
            vec![Match::is(Cond::Unknown(format!(
                "the zone of the input interface ({} have interfaces)",
                with_ifaces
                    .iter()
                    .map(|z| z.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))]
        },
        action: Action::Goto(zone_index(default_at)),
        origin: format!("default zone {default}"),
        spec: String::new(),
    });
    chains[0].rules = dispatch;
    Ok(Ruleset {
        format: Format::FirewalldText,
        chains,
        families: vec![Family::V4, Family::V6],
    })
}

/// The rules a service admits: one per protocol, with its ports and destination.
fn service_rules(
    name: &str,
    services: &HashMap<String, Service>,
    depth: usize,
) -> Result<Vec<Vec<Match>>, String> {
    let Some(s) = services.get(name) else {
        return Err(format!(
            "service {name} (its definition is not in the export)"
        ));
    };
    let mut out = Vec::new();
    let mut by_proto: Vec<(u8, Vec<(u16, u16)>)> = Vec::new();
    for &(lo, hi, p) in &s.ports {
        match by_proto.iter_mut().find(|(q, _)| *q == p) {
            Some((_, v)) => v.push((lo, hi)),
            None => by_proto.push((p, vec![(lo, hi)])),
        }
    }
    let dest = |m: &mut Vec<Match>| {
        if !s.destination.is_empty() {
            m.push(Match::is(Cond::Daddr(s.destination.clone())));
        }
    };
    for (p, ports) in by_proto {
        let mut m = vec![
            Match::is(Cond::Proto(vec![p])),
            Match::is(Cond::Dport(ports)),
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
            out.extend(service_rules(inc, services, depth + 1)?);
        }
    }
    Ok(out)
}

fn zone_chain(
    file: &str,
    z: &Zone,
    services: &HashMap<String, Service>,
) -> Result<Chain, AuditError> {
    let at = |what: &str| format!("zone {} (line {}): {what}", z.name, z.line);
    let field = |k: &str| z.fields.get(k).map(String::as_str).unwrap_or("");
    let mut rules: Vec<(i64, u8, Rule)> = Vec::new(); // (priority, class, rule): class 0 deny, 1 allow, 2 service/port
    for (n, text) in &z.rich {
        let (prio, class, list) = rich_rule(text, services).map_err(|e| err(file, *n, 1, e))?;
        for mut r in list {
            r.origin = format!("zone {} line {n}: {}", z.name, super::clean(text));
            rules.push((prio, class, r));
        }
    }
    let mut plain = Vec::new();
    for s in field("services").split_whitespace() {
        match service_rules(s, services, 0) {
            Ok(list) => {
                for m in list {
                    plain.push(Rule {
                        matches: m,
                        action: Action::Accept,
                        origin: at(&format!("service {s}")),
                        spec: String::new(),
                    });
                }
            }
            Err(what) => plain.push(Rule {
                matches: vec![Match::is(Cond::Unknown(what))],
                action: Action::Accept,
                origin: at(&format!("service {s}")),
                spec: String::new(),
            }),
        }
    }
    for p in field("ports").split_whitespace() {
        let Some((lo, hi, proto)) = port_proto(p) else {
            return Err(err(
                file,
                z.line,
                1,
                format!("zone {}: port `{}`", z.name, super::clip(p)),
            ));
        };
        plain.push(Rule {
            matches: vec![
                Match::is(Cond::Proto(vec![proto])),
                Match::is(Cond::Dport(vec![(lo, hi)])),
            ],
            action: Action::Accept,
            origin: at(&format!("port {p}")),
            spec: String::new(),
        });
    }
    for p in field("protocols").split_whitespace() {
        if let Some(n) = super::nft::proto_name(p) {
            plain.push(Rule {
                matches: vec![Match::is(Cond::Proto(vec![n]))],
                action: Action::Accept,
                origin: at(&format!("protocol {p}")),
                spec: String::new(),
            });
        }
    }
    for p in field("source-ports").split_whitespace() {
        plain.push(Rule {
            matches: vec![Match::is(Cond::Unknown(format!("source port {p}")))],
            action: Action::Accept,
            origin: at(&format!("source-port {p}")),
            spec: String::new(),
        });
    }
    rules.extend(plain.into_iter().map(|r| (0, 2, r)));
    // firewalld's order: negative priorities, then at 0 deny before allow before services and
    // ports, then positive priorities; the order of the export within one class.
    rules.sort_by_key(|(p, c, _)| (*p, if *p == 0 { *c } else { 0 }));
    let mut out: Vec<Rule> = rules.into_iter().map(|(_, _, r)| r).collect();
    let target = field("target");
    let action = match target {
        "ACCEPT" => Action::Accept,
        "DROP" => Action::Drop,
        // `default` and %%REJECT%% reject what the zone does not admit.
        _ => Action::Reject,
    };
    out.push(Rule {
        matches: Vec::new(),
        action,
        origin: at(&format!("target {target}")),
        spec: String::new(),
    });
    Ok(Chain {
        name: format!("firewalld zone {}", z.name),
        base: None,
        rules: out,
    })
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

/// One rich rule: (priority, class, its rules without origin: one per protocol of a service).
fn rich_rule(
    text: &str,
    services: &HashMap<String, Service>,
) -> Result<(i64, u8, Vec<Rule>), String> {
    let words = rich_words(text)?;
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
            ("address", Some(a)) => {
                let span = addr(a).ok_or_else(|| format!("address `{}`", super::clip(a)))?;
                let c = if element == "source" {
                    Cond::Saddr(vec![span])
                } else {
                    Cond::Daddr(vec![span])
                };
                matches.push(Match::not(c, negate));
            }
            ("ipset" | "mac", Some(x)) => {
                matches.push(Match::is(Cond::Unknown(format!("{k} {x}"))))
            }
            ("service", None) | ("port", None) | ("protocol", None) | ("source-port", None) => {
                element = k.as_str()
            }
            ("name", Some(s)) if element == "service" => {
                service_alts = Some(
                    service_rules(s, services, 0)
                        .unwrap_or_else(|what| vec![vec![Match::is(Cond::Unknown(what))]]),
                );
            }
            ("port", Some(p)) if element == "port" || element == "source-port" => {
                let proto = words
                    .get(i + 1)
                    .filter(|w| w.0 == "protocol")
                    .and_then(|w| w.1.clone())
                    .unwrap_or_default();
                let (lo, hi, n) = port_proto(&format!("{p}/{proto}"))
                    .ok_or_else(|| format!("port `{}`", super::clip(p)))?;
                if element == "source-port" {
                    matches.push(Match::is(Cond::Unknown(format!("source-port {p}"))));
                } else {
                    matches.push(Match::is(Cond::Proto(vec![n])));
                    matches.push(Match::is(Cond::Dport(vec![(lo, hi)])));
                }
                i += 1;
            }
            ("value", Some(p)) if element == "protocol" => match super::nft::proto_name(p) {
                Some(n) => matches.push(Match::is(Cond::Proto(vec![n]))),
                None => matches.push(Match::is(Cond::Unknown(format!("protocol {p}")))),
            },
            ("accept", None) => action = Action::Accept,
            ("reject", None) => {
                action = Action::Reject;
                class = 0;
            }
            ("drop", None) => {
                action = Action::Drop;
                class = 0;
            }
            ("limit", None) => limited = true,
            ("log" | "audit" | "nflog", None) => element = "log",
            ("mark", None) => element = "mark",
            (
                "icmp-block" | "icmp-type" | "forward-port" | "masquerade" | "tcp-mss-clamp",
                None,
            ) => {
                matches.push(Match::is(Cond::Unknown(format!("rich rule element {k}"))));
            }
            (_, Some(_)) if matches!(element, "log" | "mark") || limited => {}
            ("type", Some(_)) => {} // reject type
            _ => return Err(format!("unexpected `{}` in a rich rule", super::clip(k))),
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
