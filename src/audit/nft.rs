//! Reader of `nft -j list ruleset`: tables, base chains (hook, priority, policy), named sets, and
//! rules into the audit's model; what it cannot evaluate becomes a named [`Cond::Unknown`].

use std::collections::HashMap;

use serde_json::Value;

use super::{
    Action, Addrs, AuditError, Base, Chain, Concat, Cond, Family, Field, Format, Hook, IfName,
    Match, Ports, Rule, Ruleset, Span,
};

type Key = (String, String, String); // family, table, name

pub fn read(file: &str, doc: &Value) -> Result<Ruleset, AuditError> {
    let bad = |what: String| AuditError::Content {
        file: file.to_string(),
        what,
        hint: "give the unmodified output of `nft -j list ruleset`".into(),
    };
    let items = doc
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("`nftables` is not a list".into()))?;
    let mut chains: Vec<Chain> = Vec::new();
    let mut index: HashMap<Key, usize> = HashMap::new();
    let mut sets: HashMap<Key, Value> = HashMap::new();
    let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    // First the chains and sets (rules may name them before their definition in a hand edit).
    for (n, item) in items.iter().enumerate() {
        if let Some(c) = item.get("chain") {
            let key = (text(c, "family"), text(c, "table"), text(c, "name"));
            if key.2.is_empty() {
                return Err(bad(format!("item {n}: a chain without a name")));
            }
            let families = match key.0.as_str() {
                "ip" => vec![Family::V4],
                "ip6" => vec![Family::V6],
                // netdev ingress sees both families; arp and bridge never see routed IP traffic.
                "inet" | "netdev" => vec![Family::V4, Family::V6],
                _ => vec![],
            };
            let hook = match c.get("hook").and_then(Value::as_str) {
                Some("input") => Some(Hook::Input),
                Some("forward") => Some(Hook::Forward),
                Some("prerouting") => Some(Hook::Prerouting),
                Some("ingress") if key.0 == "netdev" => Some(Hook::Ingress),
                _ => None,
            };
            let kind = text(c, "type");
            // nat chains see only a connection's first packet and do not filter; route chains sit
            // on output. Both are left out.
            let base = match hook {
                Some(h) if kind == "filter" && !families.is_empty() => Some(Base {
                    hooks: vec![h],
                    priority: priority(c.get("prio")),
                    families,
                    policy_accept: c.get("policy").and_then(Value::as_str) != Some("drop"),
                }),
                _ => None,
            };
            index.insert(key.clone(), chains.len());
            chains.push(Chain {
                name: format!("{} {} {}", key.0, key.1, key.2),
                base,
                rules: Vec::new(),
            });
        } else if let Some(s) = item.get("set").or_else(|| item.get("map")) {
            let key = (text(s, "family"), text(s, "table"), text(s, "name"));
            sets.insert(key, s.clone());
        }
    }
    let read = ReadSets::default();
    for (n, item) in items.iter().enumerate() {
        let Some(r) = item.get("rule") else { continue };
        let key = (text(r, "family"), text(r, "table"), text(r, "chain"));
        let Some(&at) = index.get(&key) else {
            return Err(bad(format!(
                "item {n}: a rule of chain `{} {} {}`, which is not defined",
                key.0, key.1, key.2
            )));
        };
        let ctx = Ctx {
            family: &key.0,
            table: &key.1,
            sets: &sets,
            index: &index,
            read: &read,
        };
        let exprs = r
            .get("expr")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut rule = ctx.rule(&exprs);
        let words: Vec<String> = exprs.iter().map(expr_text).collect();
        let mut origin = format!("{} {} {}", key.0, key.1, key.2);
        if let Some(h) = r.get("handle").and_then(Value::as_u64) {
            origin.push_str(&format!(" handle {h}"));
            rule.spec = h.to_string();
        }
        origin.push_str(": ");
        origin.push_str(&words.join(" "));
        if let Some(c) = r.get("comment").and_then(Value::as_str) {
            origin.push_str(&format!(" comment \"{c}\""));
        }
        rule.origin = origin;
        chains[at].rules.push(rule);
    }
    Ok(Ruleset {
        format: Format::NftJson,
        chains,
        families: vec![Family::V4, Family::V6],
    })
}

fn priority(v: Option<&Value>) -> i32 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0).clamp(-100_000, 100_000) as i32,
        Some(Value::String(s)) => match s.as_str() {
            "raw" => -300,
            "mangle" => -150,
            "dstnat" => -100,
            "security" => 50,
            "srcnat" => 100,
            _ => 0,
        },
        _ => 0,
    }
}

struct Ctx<'a> {
    family: &'a str,
    table: &'a str,
    sets: &'a HashMap<Key, Value>,
    index: &'a HashMap<Key, usize>,
    read: &'a ReadSets,
}

/// Named sets already read as addresses or as ports: each is read once and shared by every
/// rule that looks it up (10,000 rules on one 10,000-element set hold it once).
#[derive(Default)]
struct ReadSets {
    addrs: std::cell::RefCell<HashMap<Key, Option<Addrs>>>,
    ports: std::cell::RefCell<HashMap<Key, Option<Ports>>>,
}

/// Statements that decide nothing: evaluation goes on.
const NO_OPS: &[&str] = &[
    "counter",
    "log",
    "mangle",
    "meta",
    "ct",
    "notrack",
    "set",
    "flow",
    "dup",
    "fwd",
    "nat",
    "snat",
    "dnat",
    "masquerade",
    "redirect",
    "tproxy",
    "secmark",
];

impl Ctx<'_> {
    fn chain(&self, target: &str) -> Option<usize> {
        self.index
            .get(&(
                self.family.to_string(),
                self.table.to_string(),
                target.to_string(),
            ))
            .copied()
    }

    fn verdict(&self, key: &str, v: &Value) -> Option<Action> {
        Some(match key {
            "accept" => Action::Accept,
            "drop" => Action::Drop,
            "reject" => Action::Reject,
            "return" => Action::Return,
            "continue" => Action::Continue,
            "jump" | "goto" => {
                let target = v.get("target").and_then(Value::as_str).unwrap_or("");
                match self.chain(target) {
                    Some(i) if key == "jump" => Action::Jump(i),
                    Some(i) => Action::Goto(i),
                    None => Action::Unknown(format!("{key} to undefined chain `{target}`")),
                }
            }
            "queue" => Action::Unknown("queue to user space".into()),
            super::nft_text::UNPARSED_VERDICT => {
                Action::Unknown("the verdict of a rule that was not parsed".into())
            }
            _ => return None,
        })
    }

    fn rule(&self, exprs: &[Value]) -> Rule {
        let mut matches = Vec::new();
        let mut action = Action::Continue;
        for e in exprs {
            let Some((key, v)) = e.as_object().and_then(|o| o.iter().next()) else {
                matches.push(Match::is(Cond::Unknown(format!(
                    "expression {}",
                    expr_text(e)
                ))));
                continue;
            };
            if let Some(a) = self.verdict(key, v) {
                action = a;
                break;
            }
            match key.as_str() {
                "match" => self.matched(v, &mut matches),
                "vmap" => action = self.vmap(v, &mut matches),
                "limit" | "quota" | "connlimit" => {
                    matches.push(Match::is(Cond::Unknown(format!("{key} (a rate or quota)"))))
                }
                super::nft_text::UNPARSED => matches.push(Match::is(Cond::Unknown(format!(
                    "`{}` (not parsed)",
                    super::clip(v.as_str().unwrap_or(""))
                )))),
                "xt" => matches.push(Match::is(Cond::Unknown(
                    "xt extension (an iptables-nft compat match)".into(),
                ))),
                k if NO_OPS.contains(&k) => {}
                k => matches.push(Match::is(Cond::Unknown(format!("statement `{k}`")))),
            }
            if !matches!(action, Action::Continue) {
                break;
            }
        }
        Rule {
            matches,
            action,
            origin: String::new(),
            spec: String::new(),
        }
    }

    fn vmap(&self, v: &Value, matches: &mut Vec<Match>) -> Action {
        let key = v.get("key").unwrap_or(&Value::Null);
        if key.pointer("/ct/key").and_then(Value::as_str) == Some("state") {
            return self.ct_state_vmap(v.get("data").unwrap_or(&Value::Null));
        }
        let proto = match payload(key) {
            Some((p, "dport")) => l4(p),
            _ => None,
        };
        let Some(proto) = proto else {
            return Action::Unknown(format!("verdict map on {}", expr_text(key)));
        };
        matches.push(Match::is(Cond::Proto(proto)));
        let data = v.get("data").unwrap_or(&Value::Null);
        let Some(elems) = self.elements(data) else {
            return Action::Unknown("verdict map of an unknown shape".into());
        };
        let mut out = Vec::new();
        for el in elems {
            let (k, verdict) = match &el {
                Value::Array(pair) if pair.len() == 2 => (&pair[0], &pair[1]),
                _ => return Action::Unknown("verdict map element of an unknown shape".into()),
            };
            let Some(ports) = self.ports(k) else {
                return Action::Unknown(format!("verdict map key {}", expr_text(k)));
            };
            let Some((vk, vv)) = verdict.as_object().and_then(|o| o.iter().next()) else {
                return Action::Unknown("verdict map value".into());
            };
            let Some(a) = self.verdict(vk, vv) else {
                return Action::Unknown(format!("verdict map value `{vk}`"));
            };
            for &r in ports.iter() {
                out.push((r, a.clone()));
            }
        }
        Action::DportMap(out)
    }

    /// `ct state vmap { established : accept, invalid : drop, new : jump x }`: a new connection
    /// takes the verdict of `new`, and goes on when the map has none.
    fn ct_state_vmap(&self, data: &Value) -> Action {
        let Some(elems) = self.elements(data) else {
            return Action::Unknown("verdict map of an unknown shape".into());
        };
        for el in elems {
            let Value::Array(pair) = &el else {
                return Action::Unknown("verdict map element of an unknown shape".into());
            };
            let [k, verdict] = pair.as_slice() else {
                return Action::Unknown("verdict map element of an unknown shape".into());
            };
            let k = k.get("elem").and_then(|e| e.get("val")).unwrap_or(k);
            let Some(states) = self.elements(k) else {
                return Action::Unknown("verdict map key".into());
            };
            if !states.iter().all(Value::is_string) {
                return Action::Unknown(format!("verdict map key {}", expr_text(k)));
            }
            if states.iter().any(|s| s.as_str() == Some("new")) {
                let Some((vk, vv)) = verdict.as_object().and_then(|o| o.iter().next()) else {
                    return Action::Unknown("verdict map value".into());
                };
                return self
                    .verdict(vk, vv)
                    .unwrap_or_else(|| Action::Unknown(format!("verdict map value `{vk}`")));
            }
        }
        Action::Continue
    }

    fn named(&self, name: &str) -> Option<&Value> {
        self.sets.get(&(
            self.family.to_string(),
            self.table.to_string(),
            name.to_string(),
        ))
    }

    /// The elements of a right-hand side: a value, a `{"set": [...]}`, a list, or `@name`.
    fn elements(&self, right: &Value) -> Option<Vec<Value>> {
        match right {
            Value::String(s) if s.starts_with('@') => {
                let set = self.named(&s[1..])?;
                Some(match set.get("elem") {
                    Some(Value::Array(a)) => a.clone(),
                    Some(other) => vec![other.clone()],
                    None => Vec::new(),
                })
            }
            Value::Object(o) if o.contains_key("set") => match &o["set"] {
                Value::Array(a) => Some(a.clone()),
                other => Some(vec![other.clone()]),
            },
            Value::Array(a) => Some(a.clone()),
            v => Some(vec![v.clone()]),
        }
    }

    /// The key of a named set (`@name`), None for any other right-hand side.
    fn set_key(&self, right: &Value) -> Option<Key> {
        let name = right.as_str()?.strip_prefix('@')?;
        Some((
            self.family.to_string(),
            self.table.to_string(),
            name.to_string(),
        ))
    }

    fn ports(&self, right: &Value) -> Option<Ports> {
        let read = || -> Option<Ports> {
            let mut out = Vec::new();
            for el in self.elements(right)? {
                let el = el.get("elem").and_then(|e| e.get("val")).unwrap_or(&el);
                out.push(port_span(el)?);
            }
            Some(Ports::new(out))
        };
        match self.set_key(right) {
            Some(k) => self
                .read
                .ports
                .borrow_mut()
                .entry(k)
                .or_insert_with(read)
                .clone(),
            None => read(),
        }
    }

    fn addrs(&self, right: &Value) -> Option<Addrs> {
        let read = || -> Option<Addrs> {
            let mut out = Vec::new();
            for el in self.elements(right)? {
                let el = el.get("elem").and_then(|e| e.get("val")).unwrap_or(&el);
                out.push(addr_span(el)?);
            }
            Some(Addrs::new(out))
        };
        match self.set_key(right) {
            Some(k) => self
                .read
                .addrs
                .borrow_mut()
                .entry(k)
                .or_insert_with(read)
                .clone(),
            None => read(),
        }
    }

    /// `ip daddr . tcp dport @set` (or an anonymous set): the fields of the concatenation and
    /// each element as one interval per field; None for a field or element it cannot read.
    fn concat(&self, left: &[Value], right: &Value) -> Option<(Vec<Match>, Cond)> {
        let mut fields = Vec::new();
        let mut family = None;
        let mut protos: Option<Vec<u8>> = None;
        for f in left {
            let (proto, field) = payload(f)?;
            let field = match (proto, field) {
                ("ip" | "ip6", "saddr" | "daddr") => {
                    let fam = if proto == "ip" {
                        Family::V4
                    } else {
                        Family::V6
                    };
                    if family.is_some_and(|f| f != fam) {
                        return None;
                    }
                    family = Some(fam);
                    if field == "saddr" {
                        Field::Saddr
                    } else {
                        Field::Daddr
                    }
                }
                (p, "dport" | "sport") => {
                    let list = l4(p)?;
                    // `tcp dport . udp sport` can never match one packet: keep what both allow.
                    protos = Some(match protos {
                        None => list,
                        Some(prev) => prev.into_iter().filter(|x| list.contains(x)).collect(),
                    });
                    if field == "dport" {
                        Field::Dport
                    } else {
                        Field::Sport
                    }
                }
                _ => return None,
            };
            fields.push(field);
        }
        if fields.is_empty() {
            return None;
        }
        let mut elems = Vec::new();
        let mut comments = std::collections::BTreeMap::new();
        for item in self.elements(right)? {
            let el = item.get("elem").and_then(|e| e.get("val")).unwrap_or(&item);
            let comment = item
                .get("elem")
                .and_then(|e| e.get("comment"))
                .and_then(Value::as_str);
            let parts = el.get("concat")?.as_array()?;
            if parts.len() != fields.len() {
                return None;
            }
            let mut box_ = Vec::with_capacity(parts.len());
            for (f, v) in fields.iter().zip(parts) {
                box_.push(match f {
                    Field::Saddr | Field::Daddr => {
                        let s = addr_span(v)?;
                        if Some(s.family) != family {
                            return None;
                        }
                        (s.lo, s.hi)
                    }
                    Field::Sport | Field::Dport => {
                        let (lo, hi) = port_span(v)?;
                        (u128::from(lo), u128::from(hi))
                    }
                });
            }
            if let Some(c) = comment {
                comments.insert(box_.clone(), c.to_string());
            }
            elems.push(box_);
        }
        let mut implied = Vec::new();
        if let Some(f) = family {
            implied.push(Match::is(Cond::Family(f)));
        }
        if let Some(p) = protos {
            implied.push(Match::is(Cond::Proto(p)));
        }
        let set = match right {
            Value::String(s) if s.starts_with('@') => {
                Some(format!("{} {} {}", self.family, self.table, &s[1..]))
            }
            _ => None,
        };
        let mut c = Concat::new(fields, family, elems, set);
        c.comments = comments;
        Some((implied, Cond::Concat(c)))
    }

    fn matched(&self, m: &Value, out: &mut Vec<Match>) {
        let left = m.get("left").unwrap_or(&Value::Null);
        let right = m.get("right").unwrap_or(&Value::Null);
        let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
        let negate = op == "!=";
        let unknown = |out: &mut Vec<Match>| {
            out.push(Match::is(Cond::Unknown(format!(
                "{} {} {}",
                expr_text(left),
                op,
                expr_text(right)
            ))))
        };
        if !matches!(op, "==" | "!=" | "in" | "<" | "<=" | ">" | ">=") {
            return unknown(out);
        }
        let ordered = matches!(op, "<" | "<=" | ">" | ">=");
        if let Some(Value::Array(parts)) = left.get("concat") {
            match self.concat(parts, right) {
                Some((implied, c)) if !ordered => {
                    out.extend(implied);
                    out.push(Match::not(c, negate));
                }
                _ => unknown(out),
            }
            return;
        }
        if let Some((proto, field)) = payload(left) {
            match (proto, field) {
                ("ip" | "ip6", "saddr" | "daddr") if !ordered => {
                    let fam = if proto == "ip" {
                        Family::V4
                    } else {
                        Family::V6
                    };
                    let Some(spans) = self.addrs(right) else {
                        return unknown(out);
                    };
                    out.push(Match::is(Cond::Family(fam)));
                    let c = if field == "saddr" {
                        Cond::saddr(spans)
                    } else {
                        Cond::daddr(spans)
                    };
                    out.push(Match::not(c, negate));
                }
                ("ip", "protocol") | ("ip6", "nexthdr") if !ordered => {
                    let fam = if proto == "ip" {
                        Family::V4
                    } else {
                        Family::V6
                    };
                    let Some(list) = self.protos(right) else {
                        return unknown(out);
                    };
                    out.push(Match::is(Cond::Family(fam)));
                    out.push(Match::not(Cond::Proto(list), negate));
                }
                (p, "dport" | "sport") if l4(p).is_some() => {
                    let list = if ordered {
                        port_value(right).map(|n| {
                            Ports::new(match op {
                                "<" if n > 0 => vec![(0, n - 1)],
                                "<=" => vec![(0, n)],
                                ">" if n < u16::MAX => vec![(n + 1, u16::MAX)],
                                ">=" => vec![(n, u16::MAX)],
                                _ => vec![],
                            })
                        })
                    } else {
                        self.ports(right)
                    };
                    let Some(list) = list else {
                        return unknown(out);
                    };
                    out.push(Match::is(Cond::Proto(l4(p).unwrap_or_default())));
                    let c = if field == "dport" {
                        Cond::dport(list)
                    } else {
                        Cond::sport(list)
                    };
                    out.push(Match::not(c, negate));
                }
                (p, _) => {
                    // A header field implies its protocol: `icmp type …` never matches TCP.
                    match p {
                        "ip" => out.push(Match::is(Cond::Family(Family::V4))),
                        "ip6" => out.push(Match::is(Cond::Family(Family::V6))),
                        "icmp" => out.push(Match::is(Cond::Proto(vec![1]))),
                        "icmpv6" => out.push(Match::is(Cond::Proto(vec![58]))),
                        _ => {
                            if let Some(list) = l4(p) {
                                out.push(Match::is(Cond::Proto(list)));
                            }
                        }
                    }
                    unknown(out)
                }
            }
            return;
        }
        if ordered {
            return unknown(out);
        }
        if let Some(key) = left
            .get("meta")
            .and_then(|m| m.get("key"))
            .and_then(Value::as_str)
        {
            match key {
                "l4proto" => match self.protos(right) {
                    Some(list) => out.push(Match::not(Cond::Proto(list), negate)),
                    None => unknown(out),
                },
                "nfproto" | "protocol" => {
                    let fams: Option<Vec<Family>> = self
                        .elements(right)
                        .unwrap_or_default()
                        .iter()
                        .map(|v| match v.as_str() {
                            Some("ipv4" | "ip") => Some(Family::V4),
                            Some("ipv6" | "ip6") => Some(Family::V6),
                            _ => None,
                        })
                        .collect();
                    match fams.as_deref() {
                        Some([one]) => out.push(Match::not(Cond::Family(*one), negate)),
                        // both families: always true, or never when negated
                        Some([_, _]) if negate => out.push(Match::is(Cond::Proto(vec![]))),
                        Some([_, _]) => {}
                        _ => unknown(out),
                    }
                }
                "iif" | "iifname" | "oif" | "oifname" => {
                    // Names only (`iif 2`, an index, is not one); a set is any of its names.
                    let names: Option<Vec<IfName>> = self
                        .elements(right)
                        .unwrap_or_default()
                        .iter()
                        .map(|v| v.as_str().map(if_name))
                        .collect();
                    let Some(names) = names.filter(|n| !n.is_empty()) else {
                        return unknown(out);
                    };
                    let c = if key.starts_with('i') {
                        Cond::Iif(names)
                    } else {
                        Cond::Oif(names)
                    };
                    out.push(Match::not(c, negate));
                }
                _ => unknown(out),
            }
            return;
        }
        if left
            .get("ct")
            .and_then(|c| c.get("key"))
            .and_then(Value::as_str)
            == Some("state")
        {
            let states: Vec<String> = self
                .elements(right)
                .unwrap_or_default()
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            out.push(Match::not(Cond::CtState(states), negate));
            return;
        }
        // `tcp dport & 1 == 0`: the parity test the generator writes for large parity ranges.
        if let Some(Value::Array(parts)) = left.get("&") {
            let port = parts.first().and_then(payload);
            let mask = parts.get(1).and_then(Value::as_u64);
            if let (Some((p, "dport")), Some(1), Some(bit)) = (port, mask, right.as_u64()) {
                if let (Some(list), true) = (l4(p), bit <= 1 && !negate) {
                    out.push(Match::is(Cond::Proto(list)));
                    out.push(Match::is(Cond::DportParity(bit as u8)));
                    return;
                }
            }
        }
        unknown(out)
    }

    fn protos(&self, right: &Value) -> Option<Vec<u8>> {
        self.elements(right)?
            .iter()
            .map(|v| match v {
                Value::Number(n) => u8::try_from(n.as_u64()?).ok(),
                Value::String(s) => proto_name(s),
                _ => None,
            })
            .collect()
    }
}

/// A protocol name as nft and iptables write it.
/// An interface name as nft writes it: a final `*` makes it a prefix (`eth*`), `\*` is a literal
/// star.
pub fn if_name(s: &str) -> IfName {
    if let Some(literal) = s.strip_suffix("\\*") {
        IfName {
            name: format!("{literal}*"),
            prefix: false,
        }
    } else if let Some(prefix) = s.strip_suffix('*') {
        IfName {
            name: prefix.to_string(),
            prefix: true,
        }
    } else {
        IfName::exact(s)
    }
}

pub fn proto_name(s: &str) -> Option<u8> {
    Some(match s {
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "icmpv6" | "ipv6-icmp" => 58,
        "sctp" => 132,
        "udplite" => 136,
        "dccp" => 33,
        "esp" => 50,
        "ah" => 51,
        "gre" => 47,
        other => return other.parse().ok(),
    })
}

/// A port or port range of a set element or a match.
fn port_span(v: &Value) -> Option<(u16, u16)> {
    match v {
        Value::Object(o) if o.contains_key("range") => {
            let r = o["range"].as_array()?;
            let lo = port_value(r.first()?)?;
            let hi = port_value(r.get(1)?)?;
            Some((lo.min(hi), lo.max(hi)))
        }
        v => {
            let p = port_value(v)?;
            Some((p, p))
        }
    }
}

/// An address, prefix or address range of a set element or a match.
fn addr_span(v: &Value) -> Option<Span> {
    match v {
        Value::String(s) => {
            let a: std::net::IpAddr = s.parse().ok()?;
            Some(Span::net(&ipnet::IpNet::from(a)))
        }
        Value::Object(o) if o.contains_key("prefix") => {
            let p = &o["prefix"];
            let a: std::net::IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
            let len = u8::try_from(p.get("len")?.as_u64()?).ok()?;
            Some(Span::net(&ipnet::IpNet::new(a, len).ok()?.trunc()))
        }
        Value::Object(o) if o.contains_key("range") => {
            let r = o["range"].as_array()?;
            let lo: std::net::IpAddr = r.first()?.as_str()?.parse().ok()?;
            let hi: std::net::IpAddr = r.get(1)?.as_str()?.parse().ok()?;
            if Family::of(&lo) != Family::of(&hi) {
                return None;
            }
            let (a, b) = (super::addr_num(&lo), super::addr_num(&hi));
            Some(Span {
                family: Family::of(&lo),
                lo: a.min(b),
                hi: a.max(b),
            })
        }
        _ => None,
    }
}

fn payload(v: &Value) -> Option<(&str, &str)> {
    let p = v.get("payload")?;
    Some((p.get("protocol")?.as_str()?, p.get("field")?.as_str()?))
}

/// The layer-4 protocols a `PROTO dport` match implies.
fn l4(proto: &str) -> Option<Vec<u8>> {
    Some(match proto {
        "tcp" => vec![6],
        "udp" => vec![17],
        "sctp" => vec![132],
        "udplite" => vec![136],
        "dccp" => vec![33],
        // th: any transport header with ports
        "th" => vec![6, 17, 33, 132, 136],
        _ => return None,
    })
}

fn port_value(v: &Value) -> Option<u16> {
    match v {
        Value::Number(n) => u16::try_from(n.as_u64()?).ok(),
        Value::String(s) => service(s),
        _ => None,
    }
}

/// Port numbers, and the service names `nft -j` may print instead (without `-n`).
fn service(name: &str) -> Option<u16> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    Some(match name {
        "ssh" => 22,
        "domain" => 53,
        "http" => 80,
        "https" => 443,
        "ntp" => 123,
        "snmp" => 161,
        "ldap" => 389,
        "ldaps" => 636,
        "ms-wbt-server" => 3389,
        "sip" => 5060,
        "sip-tls" => 5061,
        _ => return None,
    })
}

/// A rule expression as nft text, near enough for a person to find the rule.
pub fn expr_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(a) => a.iter().map(expr_text).collect::<Vec<_>>().join(", "),
        Value::Object(o) => {
            let Some((k, inner)) = o.iter().next() else {
                return String::new();
            };
            let at = |key: &str| expr_text(inner.get(key).unwrap_or(&Value::Null));
            let pair = |sep: &str| match inner.as_array().map(Vec::as_slice) {
                Some([a, b]) => format!("{}{sep}{}", expr_text(a), expr_text(b)),
                _ => k.clone(),
            };
            match k.as_str() {
                "match" => {
                    let op = match inner.get("op").and_then(Value::as_str).unwrap_or("==") {
                        "==" | "in" => " ".to_string(),
                        other => format!(" {other} "),
                    };
                    format!("{}{op}{}", at("left"), at("right"))
                }
                "payload" => format!("{} {}", at("protocol"), at("field")),
                "meta" | "ct" => format!("{k} {}", at("key")),
                "fib" => {
                    let flags: Vec<String> = match inner.get("flags") {
                        Some(Value::Array(a)) => a.iter().map(expr_text).collect(),
                        Some(v) => vec![expr_text(v)],
                        None => Vec::new(),
                    };
                    format!("fib {} {}", flags.join(" . "), at("result"))
                }
                "set" => format!("{{ {} }}", expr_text(inner)),
                "range" => pair("-"),
                "prefix" => format!("{}/{}", at("addr"), at("len")),
                "&" => pair(" & "),
                "jump" | "goto" => format!("{k} {}", at("target")),
                "vmap" => format!("{} vmap {}", at("key"), at("data")),
                "concat" => match inner.as_array() {
                    Some(a) => a.iter().map(expr_text).collect::<Vec<_>>().join(" . "),
                    None => k.clone(),
                },
                "elem" => at("val"),
                "reject" | "counter" | "log" | "limit" => k.clone(),
                other => other.to_string(),
            }
        }
    }
}
