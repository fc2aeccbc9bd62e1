//! Reader of a Juniper SRX configuration, hierarchical (`show configuration`) or as
//! `display set`: both become one list of statements (paths of words), read once: address
//! books (global, named and attached, per zone), address sets, `applications` and
//! `application-set` (and the predefined `junos-*` that SCC touches), zone-pair and global
//! policies in order, `then permit|deny|reject`, `default-policy`.

use std::collections::BTreeMap;

use super::{Addrs, Entry, Groups, Svc, err, final_rule, port_span, span_of};
use crate::audit::{Action, AuditError, Format, Ruleset, clip};

const HINT: &str = "give the unmodified output of `show configuration` or of `show configuration \
                    | display set` (docs/audit.md)";

/// Hierarchical: a `security {` or `policies {` block; `display set`: `set security …` lines.
pub fn looks_hierarchical(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        let l = l.strip_prefix("replace: ").unwrap_or(l);
        l.starts_with("security {") || l.starts_with("applications {")
    })
}

pub fn looks_set(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("set security ") || l.starts_with("set applications "))
}

/// One statement: its words from the top of the hierarchy, and its line.
struct Stmt {
    line: usize,
    path: Vec<String>,
}

/// The hierarchical text as statements: `a { b c; d [ e f ]; }` gives `a b c`, `a d e`, `a d f`.
fn flatten(file: &str, text: &str) -> Result<Vec<Stmt>, AuditError> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, bool)> = Vec::new(); // (words pushed, inactive)
    let mut path: Vec<String> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut list: Option<Vec<String>> = None;
    let mut inactive_next = false;
    let mut inactive = 0usize; // depth inside an inactive block
    let mut chars = text.char_indices().peekable();
    let mut line = 1;
    let mut start_line = 1;
    while let Some((_, ch)) = chars.next() {
        match ch {
            '\n' => line += 1,
            c if c.is_whitespace() => {}
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '/' if chars.peek().map(|p| p.1) == Some('*') => {
                chars.next();
                let mut prev = ' ';
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '{' => {
                if stack.len() >= 64 {
                    return Err(err(
                        file,
                        line,
                        1,
                        "blocks nested deeper than 64".into(),
                        HINT,
                    ));
                }
                let n = words.len();
                let off = inactive_next || inactive > 0;
                path.append(&mut words);
                stack.push((n, off));
                if off {
                    inactive += 1;
                }
                inactive_next = false;
            }
            '}' => {
                let Some((n, off)) = stack.pop() else {
                    return Err(err(file, line, 1, "`}` without its `{`".into(), HINT));
                };
                path.truncate(path.len() - n);
                if off {
                    inactive -= 1;
                }
                words.clear();
            }
            ';' => {
                if inactive == 0 && !inactive_next && !words.is_empty() {
                    let mut p = path.clone();
                    p.append(&mut words);
                    out.push(Stmt {
                        line: start_line,
                        path: p,
                    });
                }
                words.clear();
                inactive_next = false;
            }
            '[' => list = Some(Vec::new()),
            ']' => {
                let l = list.take().unwrap_or_default();
                if inactive == 0 && !inactive_next {
                    for v in l {
                        let mut p = path.clone();
                        p.extend(words.iter().cloned());
                        p.push(v);
                        out.push(Stmt {
                            line: start_line,
                            path: p,
                        });
                    }
                }
                words.push("\u{0}list".into());
            }
            _ => {
                let mut w = String::new();
                if ch == '"' {
                    let mut esc = false;
                    for (_, c) in chars.by_ref() {
                        if c == '\n' {
                            line += 1;
                        }
                        if esc {
                            w.push(c);
                            esc = false;
                        } else if c == '\\' {
                            esc = true;
                        } else if c == '"' {
                            break;
                        } else {
                            w.push(c);
                        }
                    }
                } else {
                    w.push(ch);
                    while let Some(&(_, c)) = chars.peek() {
                        if c.is_whitespace() || matches!(c, ';' | '{' | '}' | '[' | ']') {
                            break;
                        }
                        w.push(c);
                        chars.next();
                    }
                }
                if words.is_empty() && list.is_none() {
                    start_line = line;
                    match w.as_str() {
                        "replace:" | "protect:" => continue,
                        "inactive:" => {
                            inactive_next = true;
                            continue;
                        }
                        _ => {}
                    }
                }
                match &mut list {
                    Some(l) => l.push(w),
                    None => words.push(w),
                }
            }
        }
    }
    if !stack.is_empty() {
        return Err(err(file, line, 1, "a `{` is never closed".into(), HINT));
    }
    // A list statement was pushed per value; drop the marker statements.
    out.retain(|s| !s.path.iter().any(|w| w == "\u{0}list"));
    Ok(out)
}

/// `display set`: `set …` lines as statements, `deactivate …` lines taking theirs out.
fn set_lines(text: &str) -> Vec<Stmt> {
    let mut out = Vec::new();
    let mut off: Vec<Vec<String>> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let mut w: Vec<String> = Vec::new();
        let mut rest = raw.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('"') {
                let (q, after) = r.split_once('"').unwrap_or((r, ""));
                w.push(q.to_string());
                rest = after.trim_start();
            } else {
                let (a, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                w.push(a.to_string());
                rest = after.trim_start();
            }
        }
        match w.first().map(String::as_str) {
            Some("set") => out.push(Stmt {
                line: i + 1,
                path: w[1..].to_vec(),
            }),
            Some("deactivate") => off.push(w[1..].to_vec()),
            _ => {}
        }
    }
    out.retain(|s| !off.iter().any(|o| s.path.starts_with(o)));
    out
}

pub fn read_hierarchical(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    let stmts = flatten(file, text)?;
    build(file, &stmts, Format::Junos)
}

pub fn read_set(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    build(file, &set_lines(text), Format::JunosSet)
}

/// The predefined applications SCC's flows meet (Junos's own definitions).
fn predefined(name: &str) -> Option<Vec<Svc>> {
    let t = |p: u16| Svc::proto(6, Some(vec![(p, p)]));
    let u = |p: u16| Svc::proto(17, Some(vec![(p, p)]));
    Some(match name {
        "any" => vec![Svc::any()],
        "junos-http" => vec![t(80)],
        "junos-https" => vec![t(443)],
        "junos-http-ext" => vec![t(7001)],
        "junos-ssh" => vec![t(22)],
        "junos-telnet" => vec![t(23)],
        "junos-ftp" => vec![t(21)],
        "junos-smtp" => vec![t(25)],
        "junos-dns-udp" => vec![u(53)],
        "junos-dns-tcp" => vec![t(53)],
        "junos-ntp" => vec![u(123)],
        "junos-ldap" => vec![t(389)],
        "junos-ms-sql" => vec![t(1433)],
        "junos-sip" => vec![u(5060), t(5060)],
        "junos-snmp-agentx" => vec![t(705)],
        "junos-syslog" => vec![u(514)],
        "junos-radius" => vec![u(1812)],
        "junos-rdp" => vec![t(3389)],
        "junos-smb" => vec![t(139), t(445)],
        "junos-ping" | "junos-icmp-all" => vec![Svc {
            proto: Some(vec![1]),
            ..Svc::any()
        }],
        _ => return None,
    })
}

#[derive(Default)]
struct Policy {
    line: usize,
    name: String,
    from: Option<Vec<String>>,
    to: Option<Vec<String>>,
    src: Vec<String>,
    dst: Vec<String>,
    negate_src: bool,
    negate_dst: bool,
    apps: Vec<String>,
    dynamic_apps: Vec<String>,
    action: Option<Action>,
    global: bool,
}

fn build(file: &str, stmts: &[Stmt], format: Format) -> Result<Ruleset, AuditError> {
    // Address books: "" is the global one; a zone's name its own.
    let mut books: BTreeMap<String, Groups<Addrs>> = BTreeMap::new();
    let mut attach: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut apps: Groups<Svc> = Groups::default();
    let mut app_terms: BTreeMap<(String, String), Svc> = BTreeMap::new();
    let mut policies: Vec<Policy> = Vec::new();
    let mut index: BTreeMap<(Option<String>, Option<String>, String), usize> = BTreeMap::new();
    let mut default_permit: Option<(bool, usize)> = None;
    let fail = |line: usize, what: String| err(file, line, 1, what, HINT);
    for s in stmts {
        let p: Vec<&str> = s.path.iter().map(String::as_str).collect();
        let book_stmt = |book: &str,
                         rest: &[&str],
                         books: &mut BTreeMap<String, Groups<Addrs>>|
         -> Result<(), AuditError> {
            let g = books.entry(book.to_string()).or_default();
            match rest {
                ["address", name, "range-address", a, "to", b, ..] => {
                    let sp = span_of(&format!("{a}-{b}")).ok_or_else(|| {
                        fail(s.line, format!("not a range: `{} to {}`", clip(a), clip(b)))
                    })?;
                    g.members(name, s.line).push(Ok(Addrs {
                        spans: vec![sp],
                        unknown: None,
                    }));
                }
                ["address", name, "dns-name", ..] | ["address", name, "wildcard-address", ..] => {
                    g.members(name, s.line).push(Ok(Addrs {
                        spans: Vec::new(),
                        unknown: Some(format!("address {} is a DNS name or wildcard", clip(name))),
                    }));
                }
                ["address", name, "description", ..] => {
                    g.members(name, s.line);
                }
                ["address", name, value, ..] => {
                    let sp = span_of(value).ok_or_else(|| {
                        fail(s.line, format!("not an address: `{}`", clip(value)))
                    })?;
                    g.members(name, s.line).push(Ok(Addrs {
                        spans: vec![sp],
                        unknown: None,
                    }));
                }
                ["address-set", name, "address" | "address-set", member, ..] => {
                    g.members(name, s.line).push(Err(member.to_string()));
                }
                _ => {}
            }
            Ok(())
        };
        match p.as_slice() {
            ["security", "address-book", book, "attach", "zone", z, ..] => {
                attach
                    .entry(z.to_string())
                    .or_default()
                    .push(book.to_string());
            }
            ["security", "address-book", book, rest @ ..] => {
                let key = if *book == "global" { "" } else { book };
                book_stmt(key, rest, &mut books)?;
            }
            [
                "security",
                "zones",
                "security-zone",
                z,
                "address-book",
                rest @ ..,
            ] => {
                book_stmt(z, rest, &mut books)?;
            }
            ["applications", "application", name, rest @ ..] => {
                let (term, rest) = match rest {
                    ["term", t, rest @ ..] => (t.to_string(), rest),
                    _ => (String::new(), rest),
                };
                let svc = app_terms
                    .entry((name.to_string(), term))
                    .or_insert_with(Svc::any);
                let mut it = rest.iter();
                while let Some(k) = it.next() {
                    let v = it.next().copied().unwrap_or("");
                    match *k {
                        "protocol" => {
                            svc.proto = super::proto_name(v).ok_or_else(|| {
                                fail(s.line, format!("unknown protocol `{}`", clip(v)))
                            })?;
                        }
                        "destination-port" | "source-port" => {
                            let r = port_span(v).ok_or_else(|| {
                                fail(s.line, format!("not a port: `{}`", clip(v)))
                            })?;
                            if *k == "destination-port" {
                                svc.dport = Some(vec![r]);
                            } else {
                                svc.sport = Some(vec![r]);
                            }
                        }
                        "application-protocol" | "alg" => {}
                        _ => {}
                    }
                }
            }
            [
                "applications",
                "application-set",
                name,
                "application" | "application-set",
                member,
                ..,
            ] => {
                apps.members(name, s.line).push(Err(member.to_string()));
            }
            ["security", "policies", "default-policy", action, ..] => {
                default_permit = Some((*action == "permit-all", s.line));
            }
            ["security", "policies", rest @ ..] => {
                let (from, to, global, rest) = match rest {
                    ["from-zone", f, "to-zone", t, "policy", rest @ ..] => (
                        Some(vec![f.to_string()]),
                        Some(vec![t.to_string()]),
                        false,
                        rest,
                    ),
                    ["global", "policy", rest @ ..] => (None, None, true, rest),
                    _ => continue,
                };
                let [name, rest @ ..] = rest else { continue };
                let key = (
                    from.as_ref().map(|f| f[0].clone()),
                    to.as_ref().map(|t| t[0].clone()),
                    name.to_string(),
                );
                let at = *index.entry(key).or_insert_with(|| {
                    policies.push(Policy {
                        line: s.line,
                        name: name.to_string(),
                        from: from.clone(),
                        to: to.clone(),
                        global,
                        ..Policy::default()
                    });
                    policies.len() - 1
                });
                let pol = &mut policies[at];
                match rest {
                    ["match", "source-address", a, ..] => pol.src.push(a.to_string()),
                    ["match", "destination-address", a, ..] => pol.dst.push(a.to_string()),
                    ["match", "source-address-excluded", ..] => pol.negate_src = true,
                    ["match", "destination-address-excluded", ..] => pol.negate_dst = true,
                    ["match", "application", a, ..] => pol.apps.push(a.to_string()),
                    ["match", "dynamic-application", a, ..] => pol.dynamic_apps.push(a.to_string()),
                    ["match", "from-zone", z, ..] => {
                        pol.from.get_or_insert_with(Vec::new).push(z.to_string())
                    }
                    ["match", "to-zone", z, ..] => {
                        pol.to.get_or_insert_with(Vec::new).push(z.to_string())
                    }
                    ["then", "permit", ..] => pol.action = Some(Action::Accept),
                    ["then", "deny" | "reject", ..] => pol.action = Some(Action::Drop),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for ((name, _), svc) in app_terms {
        apps.defs
            .entry(name)
            .or_insert((0, Vec::new()))
            .1
            .push(Ok(svc));
    }
    // Zone-pair policies first (in order), then global ones.
    policies.sort_by_key(|p| p.global);
    let merged_books: std::cell::RefCell<BTreeMap<Vec<String>, Groups<Addrs>>> = Default::default();
    let resolve = |names: &[String], zones: &Option<Vec<String>>| -> Result<Addrs, AuditError> {
        if names.is_empty() || names.iter().any(|n| n == "any") {
            return Ok(Addrs::any());
        }
        let mut out = Addrs::default();
        for n in names {
            if n == "any-ipv4" {
                out.spans.push(super::whole(crate::audit::Family::V4));
                continue;
            }
            if n == "any-ipv6" {
                out.spans.push(super::whole(crate::audit::Family::V6));
                continue;
            }
            // A zone's own book (or a book attached to it) first, then the global one.
            let mut searched: Vec<&str> = Vec::new();
            for z in zones.iter().flatten() {
                searched.push(z);
                for b in attach.get(z).into_iter().flatten() {
                    searched.push(b);
                }
            }
            searched.push("");
            if !searched
                .iter()
                .any(|b| books.get(*b).is_some_and(|g| g.defs.contains_key(n)))
            {
                return Err(AuditError::Content {
                    file: file.to_string(),
                    what: format!("address `{}` is used but in no address book", clip(n)),
                    hint: HINT.to_string(),
                });
            }
            // Sets may name entries of the global book from a zone's book: the books searched,
            // merged once per list of books.
            let key: Vec<String> = searched.iter().map(|b| b.to_string()).collect();
            let mut cache = merged_books.borrow_mut();
            let merged = cache.entry(key).or_insert_with(|| {
                let mut m: Groups<Addrs> = Groups::default();
                for b in searched.iter().rev() {
                    if let Some(g) = books.get(*b) {
                        m.defs.extend(g.defs.clone());
                    }
                }
                m
            });
            for a in merged.resolve(n, &mut Vec::new(), file, HINT)? {
                out.add(&a);
            }
        }
        Ok(out)
    };
    let mut rules = Vec::new();
    for pol in &policies {
        let Some(action) = pol.action.clone() else {
            continue;
        };
        let mut services = Vec::new();
        for a in &pol.apps {
            match predefined(a) {
                Some(list) if !apps.defs.contains_key(a) => services.extend(list),
                _ if a.starts_with("junos-") && !apps.defs.contains_key(a) => {
                    services.push(Svc::unknown(format!(
                        "predefined application {} (not among those the audit knows)",
                        clip(a)
                    )))
                }
                _ => services.extend(apps.resolve(a, &mut Vec::new(), file, HINT)?),
            }
        }
        if pol.apps.is_empty() {
            services.push(Svc::any());
        }
        let dynamic: Vec<&String> = pol
            .dynamic_apps
            .iter()
            .filter(|a| *a != "any" && *a != "none")
            .collect();
        rules.extend(
            Entry {
                from: pol.from.clone(),
                to: pol.to.clone(),
                src: resolve(&pol.src, &pol.from)?,
                dst: resolve(&pol.dst, &pol.to)?,
                negate_src: pol.negate_src,
                negate_dst: pol.negate_dst,
                services,
                action,
                origin: format!(
                    "line {}: policy {}{}",
                    pol.line,
                    match (&pol.from, &pol.to, pol.global) {
                        (Some(f), Some(t), false) => format!(
                            "from-zone {} to-zone {} ",
                            clip(&f.join(",")),
                            clip(&t.join(","))
                        ),
                        _ => "global ".to_string(),
                    },
                    clip(&pol.name)
                ),
                unknown: (!dynamic.is_empty()).then(|| {
                    format!(
                        "dynamic-application {} (AppID is not a port)",
                        clip(dynamic[0])
                    )
                }),
            }
            .rules(),
        );
    }
    let (permit, origin) = match default_permit {
        Some((p, l)) => (
            p,
            format!(
                "line {l}: default-policy {}",
                if p { "permit-all" } else { "deny-all" }
            ),
        ),
        None => (false, "default-policy deny-all (the default)".to_string()),
    };
    rules.push(final_rule(
        Vec::new(),
        if permit { Action::Accept } else { Action::Drop },
        origin,
    ));
    Ok(super::ruleset(
        format,
        vec![super::chain("SRX security policies", 0, rules, false)],
    ))
}
