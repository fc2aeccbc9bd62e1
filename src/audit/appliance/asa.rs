//! Reader of a Cisco ASA `show running-config`: interfaces (`nameif`, `security-level`),
//! `object network` / `object service`, `object-group network|service|protocol` (nested),
//! `access-list NAME extended` and `access-group NAME in|out interface IF` / `global`, with the
//! implicit deny and the security-level rule for interfaces without an ACL.

use std::collections::BTreeMap;

use super::{Addrs, Entry, Groups, Svc, chain, err, final_rule, port_name, proto_name, side};
use crate::audit::{Action, AuditError, Format, Match, Rule, Ruleset, clip};

const HINT: &str = "give the unmodified output of `show running-config` (docs/audit.md)";

/// A running-config: ACL lines, or the words only an ASA (or IOS) config has.
pub fn looks_asa(text: &str) -> bool {
    text.lines().any(|l| {
        l.starts_with("ASA Version")
            || (l.starts_with("access-list ")
                && l.split_whitespace()
                    .nth(2)
                    .is_some_and(|w| matches!(w, "extended" | "remark" | "standard" | "line")))
            || l.starts_with("access-group ")
    })
}

struct Iface {
    level: Option<u8>,
}

#[derive(Default)]
struct Conf {
    /// nameif → its security level.
    ifaces: BTreeMap<String, Iface>,
    /// The nameif of the `interface` block being read.
    current: Option<String>,
    same_security_inter: bool,
    nets: Groups<Addrs>,
    /// `object service` and `object-group service` (both kinds: ports only, or whole services).
    svcs: Groups<Svc>,
    /// `object-group service NAME tcp|udp|tcp-udp`: port groups and their protocol.
    port_groups: Groups<(u16, u16)>,
    protos: Groups<u8>,
    /// ACL name → its entries, in order, with their line.
    acls: BTreeMap<String, Vec<(usize, String)>>,
    /// (ACL, direction out?, interface or None for global, line)
    groups: Vec<(String, bool, Option<String>, usize)>,
}

struct Cursor<'a> {
    file: &'a str,
    line: usize,
    words: Vec<&'a str>,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let w = self.words.get(self.at).copied();
        self.at += 1;
        w
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.at).copied()
    }

    fn fail(&self, what: String) -> AuditError {
        err(self.file, self.line, self.col(), what, HINT)
    }

    fn col(&self) -> usize {
        // Columns of words: the line is split on single spaces in a running-config.
        self.words
            .iter()
            .take(self.at.min(self.words.len()))
            .map(|w| w.chars().count() + 1)
            .sum::<usize>()
            .saturating_sub(
                self.words
                    .get(self.at.saturating_sub(1))
                    .map_or(0, |w| w.chars().count() + 1),
            )
            + 1
    }

    fn need(&mut self, what: &str) -> Result<&'a str, AuditError> {
        self.next()
            .ok_or_else(|| self.fail(format!("{what} expected at the end of the line")))
    }
}

pub fn read(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    let mut c = Conf::default();
    let mut block: Option<(String, String)> = None; // (kind, name)
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let indented = raw.starts_with(' ');
        let words: Vec<&str> = raw.split_whitespace().collect();
        if words.is_empty() || words[0] == "!" || words[0] == ":" {
            if !indented {
                block = None;
            }
            continue;
        }
        let mut cur = Cursor {
            file,
            line,
            words,
            at: 0,
        };
        if indented {
            if let Some((kind, name)) = &block {
                sub_line(&mut c, kind, name, &mut cur)?;
            }
            continue;
        }
        block = None;
        let first = cur.need("a command")?;
        match first {
            "interface" => {
                c.current = None;
                block = Some(("interface".into(), String::new()));
            }
            "object" => {
                let kind = cur.need("`network` or `service`")?;
                let name = cur.need("the object's name")?.to_string();
                match kind {
                    "network" => {
                        c.nets.defs.insert(name.clone(), (line, Vec::new()));
                    }
                    "service" => {
                        c.svcs.defs.insert(name.clone(), (line, Vec::new()));
                    }
                    _ => continue,
                }
                block = Some((format!("object {kind}"), name));
            }
            "object-group" => {
                let kind = cur.need("the group's kind")?;
                let name = cur.need("the group's name")?.to_string();
                match kind {
                    "network" => {
                        c.nets.defs.insert(name.clone(), (line, Vec::new()));
                    }
                    "service" => match cur.next() {
                        None => {
                            c.svcs.defs.insert(name.clone(), (line, Vec::new()));
                        }
                        Some(p) => {
                            let proto = match proto_name(p) {
                                Some(Some(p)) => p,
                                _ => {
                                    return Err(cur.fail(format!("unknown protocol `{}`", clip(p))));
                                }
                            };
                            c.port_groups.defs.insert(name.clone(), (line, Vec::new()));
                            // The group as a whole service too (`permit tcp … object-group G`
                            // reads its ports; `permit object-group G` its services).
                            c.svcs.defs.insert(
                                name.clone(),
                                (line, vec![Err(format!("\u{0}ports {name}"))]),
                            );
                            c.svcs.defs.insert(
                                format!("\u{0}ports {name}"),
                                (
                                    line,
                                    vec![Ok(Svc {
                                        proto: Some(proto),
                                        ..Svc::any()
                                    })],
                                ),
                            );
                        }
                    },
                    "protocol" => {
                        c.protos.defs.insert(name.clone(), (line, Vec::new()));
                    }
                    _ => continue,
                }
                block = Some((format!("object-group {kind}"), name));
            }
            "same-security-traffic" => {
                c.same_security_inter |= cur.words[1..] == ["permit", "inter-interface"];
            }
            "access-list" => {
                let name = cur.need("the ACL's name")?.to_string();
                let rest = cur.words[cur.at..].join(" ");
                c.acls.entry(name).or_default().push((line, rest));
            }
            "access-group" => {
                let name = cur.need("the ACL's name")?.to_string();
                match cur.need("`in`, `out` or `global`")? {
                    "global" => c.groups.push((name, false, None, line)),
                    dir @ ("in" | "out") => {
                        if cur.need("`interface`")? != "interface" {
                            return Err(cur.fail("`interface` expected".into()));
                        }
                        let iface = cur.need("the interface's nameif")?.to_string();
                        c.groups.push((name, dir == "out", Some(iface), line));
                    }
                    w => {
                        return Err(cur.fail(format!(
                            "`in`, `out` or `global` expected, not `{}`",
                            clip(w)
                        )));
                    }
                }
            }
            _ => {}
        }
    }
    // A port group's ports are also its services' ports.
    let pg_names: Vec<String> = c.port_groups.defs.keys().cloned().collect();
    for name in pg_names {
        let ports = c.port_groups.resolve(&name, &mut Vec::new(), file, HINT)?;
        if let Some((_, members)) = c.svcs.defs.get_mut(&format!("\u{0}ports {name}")) {
            for m in members.iter_mut().flatten() {
                m.dport = Some(ports.clone());
            }
        }
    }
    build(file, &c)
}

/// A line inside `interface`, `object` or `object-group`.
fn sub_line(c: &mut Conf, kind: &str, name: &str, cur: &mut Cursor) -> Result<(), AuditError> {
    let first = cur.need("a command")?;
    match (kind, first) {
        ("interface", "nameif") => {
            let n = cur.need("the nameif")?.to_string();
            let level = c
                .current
                .take()
                .and_then(|o| c.ifaces.remove(&o))
                .and_then(|i| i.level);
            c.ifaces.insert(n.clone(), Iface { level });
            c.current = Some(n);
        }
        ("interface", "security-level") => {
            let v: u8 = cur
                .need("the level")?
                .parse()
                .ok()
                .filter(|v| *v <= 100)
                .ok_or_else(|| cur.fail("a security level is 0 to 100".into()))?;
            // `security-level` may come before `nameif`: kept under a placeholder until then.
            let n = c.current.get_or_insert_with(|| "\u{0}".into()).clone();
            c.ifaces.entry(n).or_insert(Iface { level: None }).level = Some(v);
        }
        ("object network", "host" | "subnet" | "range" | "fqdn") => {
            let a = match first {
                "host" => one_addr(cur, true)?,
                "subnet" => one_addr(cur, false)?,
                "range" => {
                    let a = cur.need("the first address")?;
                    let b = cur.need("the last address")?;
                    Addrs {
                        spans: vec![super::span_of(&format!("{a}-{b}")).ok_or_else(|| {
                            cur.fail(format!("not a range: `{} {}`", clip(a), clip(b)))
                        })?],
                        unknown: None,
                    }
                }
                _ => Addrs {
                    spans: Vec::new(),
                    unknown: Some(format!("object network {} is an FQDN", clip(name))),
                },
            };
            push(&mut c.nets, name, Ok(a));
        }
        ("object-group network", "network-object") => {
            let m = match cur.peek() {
                Some("object") => {
                    cur.next();
                    Err(cur.need("the object's name")?.to_string())
                }
                Some("host") => {
                    cur.next();
                    Ok(one_addr(cur, true)?)
                }
                _ => Ok(one_addr(cur, false)?),
            };
            push(&mut c.nets, name, m);
        }
        (
            "object-group network" | "object-group service" | "object-group protocol",
            "group-object",
        ) => {
            let g = cur.need("the group's name")?.to_string();
            match kind {
                "object-group network" => push(&mut c.nets, name, Err(g)),
                "object-group protocol" => push(&mut c.protos, name, Err(g)),
                _ => {
                    if c.port_groups.defs.contains_key(name) {
                        push(&mut c.port_groups, name, Err(g));
                    } else {
                        push(&mut c.svcs, name, Err(g));
                    }
                }
            }
        }
        ("object-group service", "port-object") => {
            let ports = port_op(cur)?;
            for p in ports {
                push(&mut c.port_groups, name, Ok(p));
            }
        }
        ("object-group service", "service-object") | ("object service", "service") => {
            if cur.peek() == Some("object") {
                cur.next();
                let o = cur.need("the object's name")?.to_string();
                push(&mut c.svcs, name, Err(o));
            } else {
                let s = service(cur)?;
                push(&mut c.svcs, name, Ok(s));
            }
        }
        ("object-group protocol", "protocol-object") => {
            let p = cur.need("a protocol")?;
            match proto_name(p) {
                Some(Some(list)) => {
                    for n in list {
                        push(&mut c.protos, name, Ok(n));
                    }
                }
                Some(None) => push(&mut c.protos, name, Ok(0)),
                None => return Err(cur.fail(format!("unknown protocol `{}`", clip(p)))),
            }
        }
        _ => {}
    }
    Ok(())
}

fn push<V>(g: &mut Groups<V>, name: &str, m: Result<V, String>) {
    if let Some((_, members)) = g.defs.get_mut(name) {
        members.push(m);
    }
}

/// `A` (host) or `A MASK` / `A/len` (network).
fn one_addr(cur: &mut Cursor, host: bool) -> Result<Addrs, AuditError> {
    let a = cur.need("an address")?;
    let span = if host || a.contains('/') {
        super::span_of(a)
    } else {
        let m = cur.need("a mask")?;
        super::span_mask(a, m)
    };
    let span = span.ok_or_else(|| cur.fail(format!("not an address or network: `{}`", clip(a))))?;
    Ok(Addrs {
        spans: vec![span],
        unknown: None,
    })
}

/// `eq P`, `neq P`, `lt P`, `gt P`, `range A B` as port intervals.
fn port_op(cur: &mut Cursor) -> Result<Vec<(u16, u16)>, AuditError> {
    let op = cur.need("`eq`, `neq`, `lt`, `gt` or `range`")?;
    let port = |cur: &mut Cursor| -> Result<u16, AuditError> {
        let p = cur.need("a port")?;
        port_name(p).ok_or_else(|| cur.fail(format!("unknown port `{}`", clip(p))))
    };
    Ok(match op {
        "eq" => {
            let p = port(cur)?;
            vec![(p, p)]
        }
        "neq" => {
            let p = port(cur)?;
            let mut v = Vec::new();
            if p > 0 {
                v.push((0, p - 1));
            }
            if p < 65535 {
                v.push((p + 1, 65535));
            }
            v
        }
        "lt" => {
            let p = port(cur)?;
            if p == 0 { Vec::new() } else { vec![(0, p - 1)] }
        }
        "gt" => {
            let p = port(cur)?;
            if p == 65535 {
                Vec::new()
            } else {
                vec![(p + 1, 65535)]
            }
        }
        "range" => {
            let a = port(cur)?;
            let b = port(cur)?;
            if a > b {
                return Err(cur.fail(format!("range {a} {b} ends before it starts")));
            }
            vec![(a, b)]
        }
        w => {
            return Err(cur.fail(format!(
                "`eq`, `neq`, `lt`, `gt` or `range` expected, not `{}`",
                clip(w)
            )));
        }
    })
}

fn is_port_op(w: Option<&str>) -> bool {
    matches!(w, Some("eq" | "neq" | "lt" | "gt" | "range"))
}

/// `PROTO [source OP] [destination OP]` of `service` / `service-object` (or `PROTO OP` of an
/// older `service-object tcp eq 80`).
fn service(cur: &mut Cursor) -> Result<Svc, AuditError> {
    let p = cur.need("a protocol")?;
    let proto = proto_name(p).ok_or_else(|| cur.fail(format!("unknown protocol `{}`", clip(p))))?;
    let mut s = Svc {
        proto,
        ..Svc::any()
    };
    loop {
        match cur.peek() {
            Some("source") => {
                cur.next();
                s.sport = Some(port_op(cur)?);
            }
            Some("destination") => {
                cur.next();
                s.dport = Some(port_op(cur)?);
            }
            w if is_port_op(w) => s.dport = Some(port_op(cur)?),
            _ => break,
        }
    }
    Ok(s)
}

/// An address of an ACE: `any`, `any4`, `any6`, `host A`, `A MASK`, `A/len`, `object O`,
/// `object-group G`, `interface IF`.
fn ace_addr(c: &Conf, cur: &mut Cursor) -> Result<Addrs, AuditError> {
    let w = cur.need("an address")?;
    let fam = |f| Addrs {
        spans: vec![super::whole(f)],
        unknown: None,
    };
    Ok(match w {
        "any" => Addrs::any(),
        "any4" => fam(crate::audit::Family::V4),
        "any6" => fam(crate::audit::Family::V6),
        "host" => one_addr(cur, true)?,
        "object" | "object-group" => {
            let n = cur.need("the object's name")?;
            let mut out = Addrs::default();
            for a in c.nets.resolve(n, &mut Vec::new(), cur.file, HINT)? {
                out.add(&a);
            }
            out
        }
        "interface" => {
            let n = cur.need("the interface's nameif")?;
            Addrs {
                spans: Vec::new(),
                unknown: Some(format!("the address of interface {}", clip(n))),
            }
        }
        _ => {
            cur.at -= 1;
            one_addr(cur, false)?
        }
    })
}

/// Port conditions after an address: an operator, or `object-group` of ports.
fn ace_ports(c: &Conf, cur: &mut Cursor) -> Result<Option<Vec<(u16, u16)>>, AuditError> {
    if is_port_op(cur.peek()) {
        return Ok(Some(port_op(cur)?));
    }
    if cur.peek() == Some("object-group") {
        let save = cur.at;
        cur.next();
        let n = cur.need("the group's name")?;
        if c.port_groups.defs.contains_key(n) {
            return Ok(Some(c.port_groups.resolve(
                n,
                &mut Vec::new(),
                cur.file,
                HINT,
            )?));
        }
        cur.at = save;
    }
    Ok(None)
}

/// One `access-list NAME …` entry (the words after the name) as an [`Entry`]; None for a
/// remark or an inactive entry.
fn ace(c: &Conf, cur: &mut Cursor, acl: &str, text: &str) -> Result<Option<Entry>, AuditError> {
    if cur.peek() == Some("line") {
        cur.next();
        cur.need("the line number")?;
    }
    match cur.need("`extended` or `remark`")? {
        "remark" => return Ok(None),
        "extended" => {}
        "standard" | "webtype" | "ethertype" => return Ok(None),
        w => return Err(cur.fail(format!("`extended` expected, not `{}`", clip(w)))),
    }
    if cur.words.last() == Some(&"inactive") {
        return Ok(None);
    }
    let action = match cur.need("`permit` or `deny`")? {
        "permit" => Action::Accept,
        "deny" => Action::Drop,
        w => return Err(cur.fail(format!("`permit` or `deny` expected, not `{}`", clip(w)))),
    };
    let p = cur.need("a protocol")?;
    let mut services: Vec<Svc> = match p {
        "object" | "object-group" => {
            let n = cur.need("the object's name")?;
            if c.protos.defs.contains_key(n) {
                let list = c.protos.resolve(n, &mut Vec::new(), cur.file, HINT)?;
                if list.contains(&0) {
                    vec![Svc::any()]
                } else {
                    vec![Svc {
                        proto: Some(list),
                        ..Svc::any()
                    }]
                }
            } else {
                c.svcs.resolve(n, &mut Vec::new(), cur.file, HINT)?
            }
        }
        _ => vec![Svc {
            proto: proto_name(p)
                .ok_or_else(|| cur.fail(format!("unknown protocol `{}`", clip(p))))?,
            ..Svc::any()
        }],
    };
    let src = ace_addr(c, cur)?;
    let sport = ace_ports(c, cur)?;
    let dst = ace_addr(c, cur)?;
    let dport = ace_ports(c, cur)?;
    let mut unknown = None;
    while let Some(w) = cur.next() {
        match w {
            "log" | "interval" | "disable" | "default" | "informational" | "debugging"
            | "notifications" | "warnings" | "errors" | "critical" | "alerts" | "emergencies" => {}
            "time-range" => {
                let t = cur.need("the time range's name")?;
                unknown = Some(format!("time-range {} (a schedule)", clip(t)));
            }
            w if w.parse::<u32>().is_ok() => {}
            w => return Err(cur.fail(format!("unexpected `{}` in an access-list entry", clip(w)))),
        }
    }
    for s in &mut services {
        if sport.is_some() {
            s.sport.clone_from(&sport);
        }
        if dport.is_some() {
            s.dport.clone_from(&dport);
        }
    }
    Ok(Some(Entry {
        from: None,
        to: None,
        src,
        dst,
        negate_src: false,
        negate_dst: false,
        services,
        action,
        origin: format!("line {}: access-list {acl} {}", cur.line, clip(text)),
        unknown,
    }))
}

fn build(file: &str, c: &Conf) -> Result<Ruleset, AuditError> {
    let entries = |acl: &str, line: usize| -> Result<Vec<Rule>, AuditError> {
        let Some(list) = c.acls.get(acl) else {
            return Err(err(
                file,
                line,
                1,
                format!(
                    "access-group names ACL `{}`, which has no entries",
                    clip(acl)
                ),
                HINT,
            ));
        };
        let mut out = Vec::new();
        for (l, text) in list {
            let mut cur = Cursor {
                file,
                line: *l,
                words: text.split_whitespace().collect(),
                at: 0,
            };
            if let Some(e) = ace(c, &mut cur, acl, text)? {
                out.extend(e.rules());
            }
        }
        Ok(out)
    };
    let mut inbound = Vec::new();
    let mut outbound = Vec::new();
    let mut bound_in: Vec<String> = Vec::new();
    let global = c.groups.iter().find(|g| g.2.is_none());
    for (acl, out, iface, line) in &c.groups {
        let Some(i) = iface else { continue };
        let on = Match::is(side(*out, vec![i.clone()]));
        let mut rules = entries(acl, *line)?;
        for r in &mut rules {
            r.matches.insert(0, on.clone());
        }
        let deny = final_rule(
            vec![on],
            Action::Drop,
            format!(
                "access-list {acl} (access-group {} interface {i}): implicit deny",
                if *out { "out" } else { "in" }
            ),
        );
        if *out {
            outbound.extend(rules);
            outbound.push(deny);
        } else {
            bound_in.push(i.clone());
            inbound.extend(rules);
            // With a global ACL, an interface's own falls through to it.
            if global.is_none() {
                inbound.push(deny);
            }
        }
    }
    if let Some((acl, _, _, line)) = global {
        inbound.extend(entries(acl, *line)?);
        inbound.push(final_rule(
            Vec::new(),
            Action::Drop,
            format!("access-list {acl} (access-group global): implicit deny"),
        ));
    } else {
        // Interfaces without an inbound ACL: from a higher security level to a lower one only.
        for (from, fi) in c.ifaces.iter().filter(|(n, _)| !n.starts_with('\u{0}')) {
            if bound_in.contains(from) {
                continue;
            }
            for (to, ti) in c.ifaces.iter().filter(|(n, _)| !n.starts_with('\u{0}')) {
                let (Some(a), Some(b)) = (fi.level, ti.level) else {
                    continue;
                };
                if to == from {
                    continue;
                }
                let on = vec![
                    Match::is(side(false, vec![from.clone()])),
                    Match::is(side(true, vec![to.clone()])),
                ];
                let (action, why) = if a > b {
                    (
                        Action::Accept,
                        "from a higher security level to a lower one",
                    )
                } else if a < b {
                    (Action::Drop, "from a lower security level to a higher one")
                } else if c.same_security_inter {
                    (
                        Action::Accept,
                        "same security level, same-security-traffic permit inter-interface",
                    )
                } else {
                    // A running-config taken from a context or a partial `show` may omit it.
                    (
                        Action::Unknown(format!(
                            "interfaces {from} and {to} share security-level {a} and the config \
                             does not say same-security-traffic permit inter-interface"
                        )),
                        "same security level",
                    )
                };
                inbound.push(final_rule(
                    on,
                    action,
                    format!(
                        "interface {from} (security-level {a}) to {to} (security-level {b}): {why}"
                    ),
                ));
            }
        }
        inbound.push(final_rule(
            Vec::new(),
            Action::Unknown(
                "an interface without an access-group or a security-level: what the ASA does \
                 with its traffic is not in the config"
                    .into(),
            ),
            "no access-group for this interface".into(),
        ));
    }
    let mut chains = vec![chain("ASA access-group in", 0, inbound, false)];
    if !outbound.is_empty() {
        chains.push(chain("ASA access-group out", 1, outbound, true));
    }
    Ok(super::ruleset(Format::CiscoAsa, chains))
}
