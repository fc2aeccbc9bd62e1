//! Reader of `iptables-save` / `ip6tables-save`: tables, built-in chains with their policies, user
//! chains, and every rule's matches (`-s/-d`, `-i/-o`, `-p`, tcp/udp ports, multiport, conntrack
//! and state, iprange, comment, negations) and targets (ACCEPT, DROP, REJECT, RETURN, jumps, goto).

use std::collections::HashMap;
use std::net::IpAddr;

use super::{
    Action, Addrs, AuditError, Base, Chain, Cond, Family, Format, Hook, Match, Rule, Ruleset, Span,
};

/// Targets that only log, mark or count: evaluation goes on with the next rule.
const NO_OP_TARGETS: &[&str] = &[
    "LOG",
    "NFLOG",
    "ULOG",
    "MARK",
    "CONNMARK",
    "CT",
    "NOTRACK",
    "TRACE",
    "TCPMSS",
    "CLASSIFY",
    "DSCP",
    "TOS",
    "TTL",
    "HL",
    "AUDIT",
    "SECMARK",
    "CONNSECMARK",
];

struct Tok<'a> {
    text: String,
    col: usize,
    raw: &'a str,
}

/// Splits a line into words, honouring the double quotes iptables-save writes around comments.
fn words(line: &str) -> Result<Vec<Tok<'_>>, (usize, String)> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut text = String::new();
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i] == b'"' {
                i += 1;
                loop {
                    if i >= b.len() {
                        return Err((start + 1, "unterminated quoted string".into()));
                    }
                    match b[i] {
                        b'"' => {
                            i += 1;
                            break;
                        }
                        b'\\' if i + 1 < b.len() => {
                            text.push(char::from(b[i + 1]));
                            i += 2;
                        }
                        _ => {
                            let ch = line[i..].chars().next().unwrap_or(' ');
                            text.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
            } else {
                let ch = line[i..].chars().next().unwrap_or(' ');
                text.push(ch);
                i += ch.len_utf8();
            }
        }
        out.push(Tok {
            text,
            col: start + 1,
            raw: &line[start..i],
        });
    }
    Ok(out)
}

fn table_priority(table: &str) -> Option<i32> {
    Some(match table {
        "raw" => -300,
        "mangle" => -150,
        "filter" => 0,
        "security" => 50,
        _ => return None, // nat does not filter
    })
}

pub fn read(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    let err = |line: usize, col: usize, what: String, hint: &str| AuditError::Syntax {
        file: file.to_string(),
        line,
        col,
        what,
        hint: hint.to_string(),
    };
    // The header names the tool (and so the family) of the whole file; without one, a file is
    // IPv6 only when every address it holds is. One IPv6 address in an IPv4 file is that rule's
    // problem (see `parse_rule`), never a switch of the whole file to the other family.
    let v6 = if text.contains("ip6tables-save") {
        true
    } else if text.contains("iptables-save") {
        false
    } else {
        let (v4, v6) = address_families(text);
        v6 && !v4
    };
    let family = if v6 { Family::V6 } else { Family::V4 };
    let mut chains: Vec<Chain> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    // Pass 1: tables and chain declarations, so that rules can name any chain of their table.
    let mut table: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(t) = l.strip_prefix('*') {
            table = Some(t.trim().to_string());
        } else if l == "COMMIT" {
            table = None;
        } else if let Some(decl) = l.strip_prefix(':') {
            let Some(t) = &table else {
                return Err(err(
                    n + 1,
                    1,
                    "a chain declared outside a table".into(),
                    "iptables-save output starts each table with `*filter` (or another name)",
                ));
            };
            let mut parts = decl.split_whitespace();
            let name = parts.next().unwrap_or("").to_string();
            let policy = parts.next().unwrap_or("-");
            if name.is_empty() {
                return Err(err(
                    n + 1,
                    2,
                    "a chain without a name".into(),
                    "`:NAME POLICY [0:0]`",
                ));
            }
            let hook = match name.as_str() {
                "PREROUTING" => Some(Hook::Prerouting),
                "INPUT" => Some(Hook::Input),
                "FORWARD" => Some(Hook::Forward),
                _ => None,
            };
            let base = match (hook, table_priority(t)) {
                (Some(h), Some(prio)) => Some(Base {
                    hooks: vec![h],
                    priority: prio,
                    families: vec![family],
                    policy_accept: policy != "DROP",
                }),
                _ => None,
            };
            index.insert((t.clone(), name.clone()), chains.len());
            chains.push(Chain {
                name: format!("{t} {name}"),
                base,
                rules: Vec::new(),
            });
        }
    }
    let sets = ipsets(text);
    // Pass 2: the rules.
    let mut table: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(':') {
            continue;
        }
        if let Some(t) = l.strip_prefix('*') {
            table = Some(t.trim().to_string());
            continue;
        }
        if l == "COMMIT" {
            table = None;
            continue;
        }
        if table.is_none() && (l.starts_with("create ") || l.starts_with("add ")) {
            continue; // `ipset save` lines, read by `ipsets`
        }
        let toks = words(line).map_err(|(col, what)| {
            err(
                lineno,
                col,
                what,
                "close the quote (iptables-save escapes \\\")",
            )
        })?;
        let Some(t) = table.clone() else {
            return Err(err(
                lineno,
                1,
                format!("a rule outside a table: `{}`", crate::audit::clip(l)),
                "iptables-save output starts each table with `*filter` and ends it with COMMIT",
            ));
        };
        if toks.first().map(|t| t.text.as_str()) != Some("-A") || toks.len() < 2 {
            return Err(err(
                lineno,
                toks.first().map_or(1, |t| t.col),
                format!("expected `-A CHAIN ...`, found `{}`", crate::audit::clip(l)),
                "give the unmodified output of iptables-save",
            ));
        }
        let Some(&at) = index.get(&(t.clone(), toks[1].text.clone())) else {
            return Err(err(
                lineno,
                toks[1].col,
                format!("chain `{}` is not declared in table {t}", toks[1].text),
                "iptables-save declares every chain (`:NAME POLICY`) before the rules",
            ));
        };
        let mut rule =
            parse_rule(&toks[2..], &t, &index, &sets, family).map_err(|(col, what)| {
                err(
                    lineno,
                    col,
                    what,
                    "give the unmodified output of iptables-save",
                )
            })?;
        rule.origin = format!("line {lineno}: {}", l);
        let end = toks[1].col - 1 + toks[1].raw.len();
        rule.spec = line.get(end..).unwrap_or("").trim().to_string();
        chains[at].rules.push(rule);
    }
    Ok(Ruleset {
        format: if v6 {
            Format::Ip6tablesSave
        } else {
            Format::IptablesSave
        },
        chains,
        families: vec![family],
    })
}

/// Whether the text holds IPv4 addresses, and whether it holds IPv6 ones (in `-s`, `-d`,
/// ranges and lists).
fn address_families(text: &str) -> (bool, bool) {
    let (mut v4, mut v6) = (false, false);
    for w in text.split([' ', '\t', '\n', ',', '-']) {
        match w.split('/').next().unwrap_or("").parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => v4 = true,
            Ok(IpAddr::V6(_)) if w.contains(':') => v6 = true,
            _ => {}
        }
    }
    (v4, v6)
}

/// Whether the text looks like `iptables-save` output: a table, a chain policy or a rule line.
pub fn looks_save(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        l.starts_with('*') || l.starts_with(":INPUT") || l.starts_with("-A ")
    })
}

/// `a`, `a:b`, `:b`, `a:` as a port interval.
fn port_span(s: &str) -> Option<(u16, u16)> {
    match s.split_once(':') {
        None => {
            let p = s.parse().ok()?;
            Some((p, p))
        }
        Some((a, b)) => {
            let lo = if a.is_empty() { 0 } else { a.parse().ok()? };
            let hi = if b.is_empty() {
                u16::MAX
            } else {
                b.parse().ok()?
            };
            Some((lo.min(hi), lo.max(hi)))
        }
    }
}

/// An address, `addr/len` or `addr/dotted-mask`, or a comma-separated list of them.
fn addr_list(s: &str) -> Option<Vec<Span>> {
    s.split(',')
        .map(|one| {
            let (a, m) = match one.split_once('/') {
                Some((a, m)) => (a, Some(m)),
                None => (one, None),
            };
            let addr: IpAddr = a.parse().ok()?;
            let len: u8 = match m {
                None => match addr {
                    IpAddr::V4(_) => 32,
                    IpAddr::V6(_) => 128,
                },
                Some(m) => match m.parse::<u8>() {
                    Ok(l) => l,
                    Err(_) => {
                        let mask: IpAddr = m.parse().ok()?;
                        ipnet::ip_mask_to_prefix(mask).ok()?
                    }
                },
            };
            Some(Span::net(&ipnet::IpNet::new(addr, len).ok()?.trunc()))
        })
        .collect()
}

fn addr_range(s: &str) -> Option<Span> {
    let (a, b) = s.split_once('-')?;
    let (a, b): (IpAddr, IpAddr) = (a.parse().ok()?, b.parse().ok()?);
    if Family::of(&a) != Family::of(&b) {
        return None;
    }
    let (x, y) = (super::addr_num(&a), super::addr_num(&b));
    Some(Span {
        family: Family::of(&a),
        lo: x.min(y),
        hi: x.max(y),
    })
}

/// The sets of an `ipset save` given with the export (`{ ipset save; iptables-save; }`): name →
/// members, or None for a set type whose members are not plain addresses or networks.
fn ipsets(text: &str) -> HashMap<String, Option<Addrs>> {
    let mut sets: HashMap<String, Option<Vec<Span>>> = HashMap::new();
    let mut in_table = false;
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('*') {
            in_table = true;
        } else if l == "COMMIT" {
            in_table = false;
        } else if !in_table {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("create"), Some(name), Some(kind)) => {
                    let plain = matches!(kind, "hash:ip" | "hash:net");
                    sets.insert(name.to_string(), plain.then(Vec::new));
                }
                (Some("add"), Some(name), Some(member)) => {
                    let span = addr_list(member)
                        .and_then(|v| v.into_iter().next())
                        .or_else(|| addr_range(member));
                    match (sets.get_mut(name), span) {
                        (Some(Some(list)), Some(s)) => list.push(s),
                        (Some(entry), None) => *entry = None,
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
    // Each set is built once and shared by every rule that matches it.
    sets.into_iter()
        .map(|(name, members)| (name, members.map(Addrs::new)))
        .collect()
}

fn parse_rule(
    toks: &[Tok],
    table: &str,
    index: &HashMap<(String, String), usize>,
    sets: &HashMap<String, Option<Addrs>>,
    family: Family,
) -> Result<Rule, (usize, String)> {
    // An address of the other family cannot be in this file (the tool refuses it): the rule
    // cannot be decided, and the rest of the file still is.
    let of_family = |spans: Vec<Span>, text: &str, c: fn(Vec<Span>) -> Cond| {
        if spans.iter().all(|s| s.family == family) {
            c(spans)
        } else {
            Cond::Unknown(format!(
                "`{}`: an {} address in an {} file",
                crate::audit::clip(text),
                if family == Family::V4 { "IPv6" } else { "IPv4" },
                if family == Family::V4 {
                    "iptables-save (IPv4)"
                } else {
                    "ip6tables-save (IPv6)"
                }
            ))
        }
    };
    let mut matches = Vec::new();
    let mut action = Action::Continue;
    let mut negate = false;
    let mut unknown_module = false;
    let mut i = 0;
    let value = |i: usize| -> Result<&Tok, (usize, String)> {
        toks.get(i + 1)
            .ok_or_else(|| (toks[i].col, format!("`{}` needs a value", toks[i].text)))
    };
    let bad = |t: &Tok, what: &str| (t.col, format!("{what}: `{}`", t.text));
    while i < toks.len() {
        let t = &toks[i];
        let word = t.text.as_str();
        if word == "!" {
            negate = true;
            i += 1;
            continue;
        }
        let neg = std::mem::take(&mut negate);
        match word {
            "-s" | "--source" | "-d" | "--destination" => {
                let v = value(i)?;
                let spans = addr_list(&v.text).ok_or_else(|| bad(v, "not an address"))?;
                let c = if word.starts_with("-s") || word == "--source" {
                    of_family(spans, &v.text, Cond::saddr)
                } else {
                    of_family(spans, &v.text, Cond::daddr)
                };
                matches.push(Match::not(c, neg));
                i += 2;
            }
            "-p" | "--protocol" => {
                let v = value(i)?;
                let name = v.text.to_ascii_lowercase();
                if name != "all" && name != "0" {
                    let n =
                        super::nft::proto_name(&name).ok_or_else(|| bad(v, "unknown protocol"))?;
                    matches.push(Match::not(Cond::Proto(vec![n]), neg));
                } else if neg {
                    matches.push(Match::is(Cond::Proto(vec![])));
                }
                i += 2;
            }
            "-i" | "--in-interface" | "-o" | "--out-interface" => {
                let v = value(i)?;
                // A final `+` makes the name a prefix (`eth+`; `+` alone: any interface).
                let name = match v.text.strip_suffix('+') {
                    Some(prefix) => super::IfName {
                        name: prefix.to_string(),
                        prefix: true,
                    },
                    None => super::IfName::exact(&v.text),
                };
                let c = if word == "-i" || word == "--in-interface" {
                    Cond::Iif(vec![name])
                } else {
                    Cond::Oif(vec![name])
                };
                matches.push(Match::not(c, neg));
                i += 2;
            }
            "-m" | "--match" => {
                let v = value(i)?;
                unknown_module = !matches!(
                    v.text.as_str(),
                    "tcp"
                        | "udp"
                        | "multiport"
                        | "comment"
                        | "conntrack"
                        | "state"
                        | "iprange"
                        | "set"
                        | "icmp"
                        | "icmp6"
                );
                if unknown_module {
                    matches.push(Match::is(Cond::Unknown(format!("-m {}", v.text))));
                }
                i += 2;
            }
            "--dport" | "--destination-port" | "--sport" | "--source-port" => {
                let v = value(i)?;
                let span = port_span(&v.text).ok_or_else(|| bad(v, "not a port or range"))?;
                let c = if word.contains('d') {
                    Cond::dport(vec![span])
                } else {
                    Cond::sport(vec![span])
                };
                matches.push(Match::not(c, neg));
                i += 2;
            }
            "--dports" | "--destination-ports" | "--sports" | "--source-ports" => {
                let v = value(i)?;
                let list: Option<Vec<(u16, u16)>> = v.text.split(',').map(port_span).collect();
                let list = list.ok_or_else(|| bad(v, "not a port list"))?;
                let c = if word.contains('d') {
                    Cond::dport(list)
                } else {
                    Cond::sport(list)
                };
                matches.push(Match::not(c, neg));
                i += 2;
            }
            "--ctstate" | "--state" => {
                let v = value(i)?;
                let states = v.text.split(',').map(|s| s.to_ascii_lowercase()).collect();
                matches.push(Match::not(Cond::CtState(states), neg));
                i += 2;
            }
            "--src-range" | "--dst-range" => {
                let v = value(i)?;
                let span = addr_range(&v.text).ok_or_else(|| bad(v, "not an address range"))?;
                let c = if word == "--src-range" {
                    of_family(vec![span], &v.text, Cond::saddr)
                } else {
                    of_family(vec![span], &v.text, Cond::daddr)
                };
                matches.push(Match::not(c, neg));
                i += 2;
            }
            "--match-set" => {
                let v = value(i)?;
                let dir = toks.get(i + 2).map_or("", |t| t.text.as_str());
                let c = match (sets.get(&v.text), dir) {
                    (Some(Some(members)), "src") => Cond::saddr(members.clone()),
                    (Some(Some(members)), "dst") => Cond::daddr(members.clone()),
                    (Some(Some(_)), _) => Cond::Unknown(format!("ipset `{}` {dir}", v.text)),
                    (Some(None), _) => Cond::Unknown(format!(
                        "ipset `{}` (a set type other than hash:ip or hash:net)",
                        v.text
                    )),
                    (None, _) => Cond::Unknown(format!(
                        "ipset `{}` {dir} (the set's members are not in the export: give `ipset save` with it)",
                        v.text
                    )),
                };
                matches.push(Match::not(c, neg));
                i += 3;
            }
            "--comment" => i += 2,
            "--syn" => {
                matches.push(Match::not(Cond::Syn, neg));
                i += 1;
            }
            "--icmp-type" | "--icmpv6-type" | "--tcp-flags" | "--tcp-option" | "--ports" => {
                let n = if word == "--tcp-flags" { 3 } else { 2 };
                matches.push(Match::is(Cond::Unknown(word.to_string())));
                i += n;
            }
            "-f" | "--fragment" => {
                matches.push(Match::is(Cond::Unknown("fragment match".into())));
                i += 1;
            }
            "-4" | "--ipv4" | "-6" | "--ipv6" => i += 1,
            "-j" | "--jump" | "-g" | "--goto" => {
                let v = value(i)?;
                let target = v.text.as_str();
                let jump = word == "-j" || word == "--jump";
                action = match target {
                    "ACCEPT" => Action::Accept,
                    "DROP" => Action::Drop,
                    "REJECT" => Action::Reject,
                    "RETURN" => Action::Return,
                    t if NO_OP_TARGETS.contains(&t) => Action::Continue,
                    t => match index.get(&(table.to_string(), t.to_string())) {
                        Some(&c) if jump => Action::Jump(c),
                        Some(&c) => Action::Goto(c),
                        None => Action::Unknown(format!("target {t}")),
                    },
                };
                // The target's own options (--reject-with, --log-prefix…) follow; they decide
                // nothing the audit models.
                break;
            }
            w if w.starts_with("--") && unknown_module => {
                // An option of a module already reported as unknown; skip it and its values.
                i += 1;
                while i < toks.len() && !toks[i].text.starts_with('-') && toks[i].text != "!" {
                    i += 1;
                }
            }
            _ => return Err(bad(t, "unexpected word")),
        }
    }
    Ok(Rule {
        matches,
        action,
        origin: String::new(),
        spec: String::new(),
    })
}
