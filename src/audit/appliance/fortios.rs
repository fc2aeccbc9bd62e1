//! Reader of a FortiOS configuration (a backup, or `show firewall …`): `config firewall
//! address/address6/addrgrp/addrgrp6/service custom/service group/policy`, with `srcintf` /
//! `dstintf`, negations, `status disable`, `set action`, and the implicit deny (policy 0).

use std::collections::BTreeMap;

use super::{Addrs, Entry, Groups, Svc, err, final_rule, port_span, span_mask, span_of, whole};
use crate::audit::{Action, AuditError, Family, Format, Ruleset, clip};

const HINT: &str = "give the unmodified configuration backup or `show full-configuration \
                    firewall …` output (docs/audit.md)";

pub fn looks_fortios(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("config firewall policy"))
}

/// The words of a line, quotes removed (`set member "a b" "c"`).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let mut w = String::new();
            let mut esc = false;
            let mut end = r.len();
            for (i, c) in r.char_indices() {
                if esc {
                    w.push(c);
                    esc = false;
                } else if c == '\\' {
                    esc = true;
                } else if c == '"' {
                    end = i + 1;
                    break;
                } else {
                    w.push(c);
                }
            }
            out.push(w);
            rest = r[end.min(r.len())..].trim_start();
        } else {
            let (a, b) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            out.push(a.to_string());
            rest = b.trim_start();
        }
    }
    out
}

/// One `edit` block: its settings (key → values) and line.
struct Edit {
    line: usize,
    name: String,
    set: BTreeMap<String, Vec<String>>,
}

pub fn read(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    // section path ("firewall policy") → its edits in order
    let mut sections: BTreeMap<String, Vec<Edit>> = BTreeMap::new();
    let mut stack: Vec<String> = Vec::new(); // config sections
    let mut edit: Option<(String, Edit)> = None;
    for (i, raw) in text.lines().enumerate() {
        let l = i + 1;
        let w = words(raw);
        let Some(first) = w.first() else { continue };
        match first.as_str() {
            "config" => {
                if stack.len() >= 16 {
                    return Err(err(
                        file,
                        l,
                        1,
                        "config sections nested deeper than 16".into(),
                        HINT,
                    ));
                }
                stack.push(w[1..].join(" "));
            }
            "edit" => {
                let name = w.get(1).cloned().unwrap_or_default();
                edit = Some((
                    stack.last().cloned().unwrap_or_default(),
                    Edit {
                        line: l,
                        name,
                        set: BTreeMap::new(),
                    },
                ));
            }
            "set" => {
                if let (Some((sec, e)), Some(k)) = (&mut edit, w.get(1)) {
                    if stack.last() == Some(sec) {
                        e.set.insert(k.clone(), w[2..].to_vec());
                    }
                }
            }
            "next" => {
                if let Some((sec, e)) = edit.take() {
                    sections.entry(sec).or_default().push(e);
                }
            }
            "end" => {
                if let Some((sec, e)) = edit.take() {
                    sections.entry(sec).or_default().push(e);
                }
                stack.pop();
            }
            _ => {}
        }
    }
    let get = |e: &Edit, k: &str| -> Vec<String> { e.set.get(k).cloned().unwrap_or_default() };
    let one =
        |e: &Edit, k: &str| -> Option<String> { e.set.get(k).and_then(|v| v.first().cloned()) };
    let fail = |l: usize, what: String| err(file, l, 1, what, HINT);
    let mut addrs: Groups<Addrs> = Groups::default();
    let any = Addrs::any();
    addrs.defs.insert("all".into(), (0, vec![Ok(any.clone())]));
    addrs
        .defs
        .insert("none".into(), (0, vec![Ok(Addrs::default())]));
    for sec in ["firewall address", "firewall address6"] {
        for e in sections.get(sec).into_iter().flatten() {
            let kind = one(e, "type").unwrap_or_else(|| "ipmask".into());
            let a = match kind.as_str() {
                "ipmask" if sec == "firewall address6" || e.set.contains_key("ip6") => {
                    let v = one(e, "ip6").unwrap_or_else(|| "::/0".into());
                    span_of(&v).ok_or_else(|| {
                        fail(e.line, format!("not an IPv6 prefix: `{}`", clip(&v)))
                    })?
                }
                "ipmask" => {
                    let v = get(e, "subnet");
                    let sp = match v.as_slice() {
                        [] => Some(whole(Family::V4)),
                        [a, m] => span_mask(a, m),
                        [c] => span_of(c),
                        _ => None,
                    };
                    sp.ok_or_else(|| {
                        fail(e.line, format!("not a subnet: `{}`", clip(&v.join(" "))))
                    })?
                }
                "iprange" => {
                    let (a, b) = (
                        one(e, "start-ip").unwrap_or_default(),
                        one(e, "end-ip").unwrap_or_default(),
                    );
                    span_of(&format!("{a}-{b}")).ok_or_else(|| {
                        fail(e.line, format!("not a range: `{} {}`", clip(&a), clip(&b)))
                    })?
                }
                k => {
                    addrs.defs.insert(
                        e.name.clone(),
                        (
                            e.line,
                            vec![Ok(Addrs {
                                spans: Vec::new(),
                                unknown: Some(format!(
                                    "address {} of type {}",
                                    clip(&e.name),
                                    clip(k)
                                )),
                            })],
                        ),
                    );
                    continue;
                }
            };
            addrs.defs.insert(
                e.name.clone(),
                (
                    e.line,
                    vec![Ok(Addrs {
                        spans: vec![a],
                        unknown: None,
                    })],
                ),
            );
        }
    }
    for sec in ["firewall addrgrp", "firewall addrgrp6"] {
        for e in sections.get(sec).into_iter().flatten() {
            addrs.defs.insert(
                e.name.clone(),
                (e.line, get(e, "member").into_iter().map(Err).collect()),
            );
        }
    }
    let mut svcs: Groups<Svc> = Groups::default();
    let pre = |p: u8, lo: u16, hi: u16| vec![Ok(Svc::proto(p, Some(vec![(lo, hi)])))];
    svcs.defs.insert("ALL".into(), (0, vec![Ok(Svc::any())]));
    svcs.defs.insert("ALL_TCP".into(), (0, pre(6, 1, 65535)));
    svcs.defs.insert("ALL_UDP".into(), (0, pre(17, 1, 65535)));
    svcs.defs.insert("HTTP".into(), (0, pre(6, 80, 80)));
    svcs.defs.insert("HTTPS".into(), (0, pre(6, 443, 443)));
    svcs.defs.insert("SSH".into(), (0, pre(6, 22, 22)));
    svcs.defs.insert(
        "DNS".into(),
        (0, [pre(6, 53, 53), pre(17, 53, 53)].concat()),
    );
    svcs.defs.insert(
        "NTP".into(),
        (0, [pre(6, 123, 123), pre(17, 123, 123)].concat()),
    );
    svcs.defs.insert("SMTP".into(), (0, pre(6, 25, 25)));
    svcs.defs.insert("LDAP".into(), (0, pre(6, 389, 389)));
    svcs.defs.insert("RDP".into(), (0, pre(6, 3389, 3389)));
    svcs.defs.insert("SIP".into(), (0, pre(17, 5060, 5060)));
    for e in sections
        .get("firewall service custom")
        .into_iter()
        .flatten()
    {
        let mut list = Vec::new();
        let proto = one(e, "protocol").unwrap_or_else(|| "TCP/UDP/SCTP".into());
        if proto == "TCP/UDP/SCTP" || proto == "TCP/UDP/UDP-Lite/SCTP" {
            for (key, num) in [
                ("tcp-portrange", 6u8),
                ("udp-portrange", 17),
                ("sctp-portrange", 132),
            ] {
                for r in get(e, key) {
                    // `dst[:src]`, each `lo[-hi]`
                    let (d, s) = r
                        .split_once(':')
                        .map_or((r.as_str(), None), |(d, s)| (d, Some(s)));
                    let bad = || fail(e.line, format!("not a port range: `{}`", clip(&r)));
                    let dport = port_span(d).ok_or_else(bad)?;
                    let sport = match s {
                        Some(s) => Some(vec![port_span(s).ok_or_else(bad)?]),
                        None => None,
                    };
                    list.push(Ok(Svc {
                        proto: Some(vec![num]),
                        sport,
                        dport: Some(vec![dport]),
                        unknown: None,
                    }));
                }
            }
        } else {
            let p = match proto.as_str() {
                "ICMP" => Some(vec![1]),
                "ICMP6" => Some(vec![58]),
                "IP" => match one(e, "protocol-number").and_then(|n| n.parse::<u8>().ok()) {
                    Some(0) | None => None,
                    Some(n) => Some(vec![n]),
                },
                _ => Some(Vec::new()),
            };
            list.push(Ok(Svc {
                proto: p,
                ..Svc::any()
            }));
        }
        svcs.defs.insert(e.name.clone(), (e.line, list));
    }
    for e in sections.get("firewall service group").into_iter().flatten() {
        svcs.defs.insert(
            e.name.clone(),
            (e.line, get(e, "member").into_iter().map(Err).collect()),
        );
    }
    let mut rules = Vec::new();
    for e in sections.get("firewall policy").into_iter().flatten() {
        if one(e, "status").as_deref() == Some("disable") {
            continue;
        }
        let resolve = |k: &str| -> Result<Addrs, AuditError> {
            let mut out = Addrs::default();
            for n in get(e, k) {
                for a in addrs.resolve(&n, &mut Vec::new(), file, HINT)? {
                    out.add(&a);
                }
            }
            Ok(out)
        };
        let mut src = resolve("srcaddr")?;
        src.add(&resolve("srcaddr6")?);
        let mut dst = resolve("dstaddr")?;
        dst.add(&resolve("dstaddr6")?);
        let mut services = Vec::new();
        for n in get(e, "service") {
            services.extend(svcs.resolve(&n, &mut Vec::new(), file, HINT)?);
        }
        let intf = |k: &str| -> Option<Vec<String>> {
            let v = get(e, k);
            (!v.is_empty() && !v.iter().any(|i| i == "any")).then_some(v)
        };
        let action = match one(e, "action").as_deref() {
            Some("accept") => Action::Accept,
            Some("deny") | None => Action::Drop,
            Some(a) => Action::Unknown(format!("action {}", clip(a))),
        };
        let negated = |k: &str| one(e, k).as_deref() == Some("enable");
        let unknown = if negated("service-negate") {
            Some("service-negate".to_string())
        } else {
            match one(e, "schedule").as_deref() {
                Some("always") | None => None,
                Some(s) => Some(format!("schedule {} (a time of day)", clip(s))),
            }
        };
        let name = one(e, "name")
            .map(|n| format!(" \"{}\"", clip(&n)))
            .unwrap_or_default();
        rules.extend(
            Entry {
                from: intf("srcintf"),
                to: intf("dstintf"),
                src,
                dst,
                negate_src: negated("srcaddr-negate"),
                negate_dst: negated("dstaddr-negate"),
                services,
                action,
                origin: format!("line {}: policy {}{name}", e.line, clip(&e.name)),
                unknown,
            }
            .rules(),
        );
    }
    rules.push(final_rule(
        Vec::new(),
        Action::Drop,
        "policy 0: implicit deny".into(),
    ));
    Ok(super::ruleset(
        Format::FortiOs,
        vec![super::chain("FortiOS firewall policy", 0, rules, false)],
    ))
}
