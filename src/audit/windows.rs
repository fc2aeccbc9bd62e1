//! Reader of the Windows Firewall export (the PowerShell line of docs/audit.md): block rules win
//! over allow rules, what no rule allows is blocked; one chain, blocks then allows. Also what a
//! rule's place in the policy store means for `firewall --diff` ([`Spec`]), and the reading of
//! program- and service-bound rules against the plan ([`for_plan`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cloud::{content, has_unknown, one_chain};
use super::{Action, AuditError, Concat, Cond, Family, Field, Format, Match, Rule, Ruleset, Span};
use crate::catalog::Transport;
use crate::flows::Flow;

/// The policy store a rule comes from (`PolicyStoreSourceType`): only a local rule can be
/// changed on the computer; a Group Policy rule is changed in its GPO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Store {
    /// `Local` (the persistent store), or an export without the field: the earlier export line
    /// read only the persistent store.
    Local,
    GroupPolicy,
    /// `Dynamic`, `Generated`, `Hardcoded`, `MDM`…: set by software or management at run time.
    Other(String),
}

/// What `firewall --diff` needs to know of a Windows rule, carried as JSON in [`Rule::spec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// The rule's `Name` (empty when the export gives none).
    pub name: String,
    pub store: Store,
    /// `PolicyStoreSource`: the GPO (`domain\name`) of a Group Policy rule; may be empty.
    pub source: String,
    /// Restricted to a program or a service.
    pub bound: bool,
}

/// The [`Spec`] of a rule of a Windows ruleset (None for another format's rule, or a rule the
/// diff added).
pub fn spec(rule: &Rule) -> Option<Spec> {
    serde_json::from_str(&rule.spec).ok()
}

/// Whether JSON is the Windows export: rule objects with `Action` and ports or names.
pub fn looks_windows(v: &Value) -> bool {
    let first = match v {
        Value::Array(a) => a.first(),
        o => Some(o),
    };
    first.is_some_and(|o| {
        o.get("Action").is_some()
            && (o.get("LocalPort").is_some() || o.get("DisplayName").is_some())
    })
}

/// A field that PowerShell writes as one string or a list of strings.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Number(n) => vec![n.to_string()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn any(list: &[String]) -> bool {
    list.is_empty()
        || list
            .iter()
            .any(|s| s.eq_ignore_ascii_case("any") || s == "*")
}

/// A Windows address: `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/mask`, `a-b`; keywords are not known.
fn win_addr(s: &str) -> Option<Span> {
    if let Some((a, b)) = s.split_once('-') {
        if let (Ok(a), Ok(b)) = (a.parse::<std::net::IpAddr>(), b.parse::<std::net::IpAddr>()) {
            if Family::of(&a) == Family::of(&b) {
                let (x, y) = (super::addr_num(&a), super::addr_num(&b));
                return Some(Span {
                    family: Family::of(&a),
                    lo: x.min(y),
                    hi: x.max(y),
                });
            }
            return None;
        }
    }
    let (a, m) = match s.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (s, None),
    };
    let addr: std::net::IpAddr = a.parse().ok()?;
    let len = match m {
        None => match addr {
            std::net::IpAddr::V4(_) => 32,
            std::net::IpAddr::V6(_) => 128,
        },
        Some(m) => match m.parse::<u8>() {
            Ok(l) => l,
            Err(_) => ipnet::ip_mask_to_prefix(m.parse().ok()?).ok()?,
        },
    };
    Some(Span::net(&ipnet::IpNet::new(addr, len).ok()?.trunc()))
}

fn win_addrs(list: &[String], cond: fn(Vec<Span>) -> Cond, what: &str) -> Match {
    let spans: Option<Vec<Span>> = list.iter().map(|s| win_addr(s)).collect();
    match spans {
        Some(s) => Match::is(cond(s)),
        None => Match::is(Cond::Unknown(format!(
            "{what} `{}` (a keyword such as LocalSubnet or Internet: its addresses are not in the export)",
            super::clip(&list.join(","))
        ))),
    }
}

/// The profiles a rule is restricted to, as `Domain/Private` (None: every profile). The export
/// line writes the word list (`Domain, Private`); `ConvertTo-Json` of the enum is its flags.
fn profiles(v: &Value) -> Option<String> {
    let names: Vec<String> = match v {
        Value::Number(n) => {
            let bits = n.as_u64().unwrap_or(0);
            [(1, "Domain"), (2, "Private"), (4, "Public")]
                .into_iter()
                .filter(|(b, _)| bits & b != 0)
                .map(|(_, n)| n.to_string())
                .collect()
        }
        v => strings(v)
            .iter()
            .flat_map(|s| s.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    };
    let every = ["domain", "private", "public"]
        .iter()
        .all(|p| names.iter().any(|n| n.eq_ignore_ascii_case(p)));
    if any(&names) || every {
        None
    } else {
        Some(names.join("/"))
    }
}

/// `PolicyStoreSourceType` as the line writes it (the word) or as `ConvertTo-Json` writes the
/// enum (1 local, 2 Group Policy).
fn store(v: &Value) -> Store {
    match v {
        Value::Null => Store::Local,
        Value::Number(n) => match n.as_u64() {
            Some(1) => Store::Local,
            Some(2) => Store::GroupPolicy,
            _ => Store::Other(n.to_string()),
        },
        Value::String(s) if s.is_empty() || s.eq_ignore_ascii_case("local") => Store::Local,
        Value::String(s) if s.eq_ignore_ascii_case("grouppolicy") => Store::GroupPolicy,
        Value::String(s) => Store::Other(super::clip(s)),
        other => Store::Other(super::clip(&other.to_string())),
    }
}

/// Where a rule comes from, as its text says it (empty for a local rule).
fn store_text(store: &Store, source: &str) -> Option<String> {
    match store {
        Store::Local => None,
        Store::GroupPolicy if source.is_empty() => {
            Some("GPO (its name is not in the export)".to_string())
        }
        Store::GroupPolicy => Some(format!("GPO \"{}\"", super::clip(source))),
        Store::Other(t) if source.is_empty() => Some(format!("{t} store")),
        Store::Other(t) => Some(format!("{t} store \"{}\"", super::clip(source))),
    }
}

pub fn read(file: &str, doc: &Value) -> Result<Ruleset, AuditError> {
    const HINT: &str = "give the output of the PowerShell export line in docs/audit.md";
    let objects: Vec<&Value> = match doc {
        Value::Array(a) => a.iter().collect(),
        o => vec![o],
    };
    let (mut blocks, mut allows) = (Vec::new(), Vec::new());
    for (i, o) in objects.iter().enumerate() {
        let name = o["DisplayName"]
            .as_str()
            .or_else(|| o["Name"].as_str())
            .unwrap_or("?");
        let action = match &o["Action"] {
            Value::String(s) if s.eq_ignore_ascii_case("allow") => true,
            Value::String(s) if s.eq_ignore_ascii_case("block") => false,
            Value::Number(n) if n.as_u64() == Some(2) => true,
            Value::Number(n) if n.as_u64() == Some(4) => false,
            other => {
                return Err(content(
                    file,
                    format!(
                        "rule {i} ({}): Action `{}` is neither Allow nor Block",
                        super::clip(name),
                        super::clip(&other.to_string())
                    ),
                    HINT,
                ));
            }
        };
        // Rules of other directions or disabled ones, when the export kept them, do not count.
        let inbound = match &o["Direction"] {
            Value::String(s) => s.eq_ignore_ascii_case("inbound"),
            Value::Number(n) => n.as_u64() == Some(1),
            _ => true,
        };
        let enabled = match &o["Enabled"] {
            Value::String(s) => s.eq_ignore_ascii_case("true"),
            Value::Number(n) => n.as_u64() == Some(1),
            Value::Bool(b) => *b,
            _ => true,
        };
        if !inbound || !enabled {
            continue;
        }
        let mut matches = Vec::new();
        // What the rule is restricted to beyond packets, said in its text.
        let mut bound_to: Vec<String> = Vec::new();
        let proto = strings(&o["Protocol"]);
        if !any(&proto) {
            let list: Option<Vec<u8>> = proto
                .iter()
                .map(|p| super::nft::proto_name(&p.to_ascii_lowercase()))
                .collect();
            match list {
                Some(l) => matches.push(Match::is(Cond::Proto(l))),
                None => matches.push(Match::is(Cond::Unknown(format!(
                    "protocol {}",
                    super::clip(&proto.join(","))
                )))),
            }
        }
        let remote = strings(&o["RemoteAddress"]);
        if !any(&remote) {
            matches.push(win_addrs(&remote, Cond::saddr, "remote address"));
        }
        let local = strings(&o["LocalAddress"]);
        if !any(&local) {
            matches.push(win_addrs(&local, Cond::daddr, "local address"));
        }
        let ports = strings(&o["LocalPort"]);
        if !any(&ports) {
            let list: Option<Vec<(u16, u16)>> = ports
                .iter()
                .map(|p| match p.split_once('-') {
                    Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
                    None => p.trim().parse().ok().map(|n| (n, n)),
                })
                .collect();
            match list {
                Some(l) => matches.push(Match::is(Cond::dport(l))),
                None => matches.push(Match::is(Cond::Unknown(format!(
                    "local port {} (a keyword such as RPC)",
                    super::clip(&ports.join(","))
                )))),
            }
        }
        let rports = strings(&o["RemotePort"]);
        if !any(&rports) {
            matches.push(Match::is(Cond::Unknown(format!(
                "remote port {}",
                super::clip(&rports.join(","))
            ))));
        }
        // A rule bound to a program or service opens its ports to that program only: decided
        // against the plan by `for_plan` (a planned port's listener is the SCC component).
        let mut bound = false;
        for key in ["Program", "Service"] {
            let v = strings(&o[key]);
            if !any(&v) {
                bound = true;
                bound_to.push(format!(
                    "{} {}",
                    key.to_ascii_lowercase(),
                    super::clip(&v.join(","))
                ));
            }
        }
        // A rule of some profiles is read as in force: it opens (or blocks) whenever one of
        // them is active, which the export does not say; its text names them.
        if let Some(p) = profiles(&o["Profile"]) {
            bound_to.push(format!("profile {}", super::clip(&p)));
        }
        let store = store(&o["PolicyStoreSourceType"]);
        let source = o["PolicyStoreSource"].as_str().unwrap_or("").to_string();
        if let Some(t) = store_text(&store, &source) {
            bound_to.push(t);
        }
        let rule = Rule {
            matches,
            action: if action { Action::Accept } else { Action::Drop },
            origin: format!(
                "{} rule \"{}\"{}",
                if action { "allow" } else { "block" },
                super::clip(name),
                if bound_to.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", bound_to.join(", "))
                }
            ),
            spec: serde_json::to_string(&Spec {
                // The script finds a rule by its exact Name (`firewall --diff`).
                name: o["Name"].as_str().unwrap_or("").to_string(),
                store,
                source,
                bound,
            })
            .expect("a Spec serializes"),
        };
        if action {
            allows.push(rule);
        } else {
            blocks.push(rule);
        }
    }
    // Block rules first (block wins), then allows; within each, the rules the audit can
    // evaluate first, so that "cannot decide" is only the answer when nothing certain decides.
    blocks.sort_by_key(has_unknown);
    allows.sort_by_key(has_unknown);
    blocks.extend(allows);
    Ok(Ruleset {
        format: Format::WindowsJson,
        chains: vec![one_chain(
            "Windows Firewall inbound (block wins; default block)",
            blocks,
        )],
        families: vec![Family::V4, Family::V6],
    })
}

/// The ruleset as it answers for the plan's flows: a rule bound to a program or a service (Remote
/// Desktop's `svchost.exe`, WinRM's `System`) never decides a connection to a port the plan gives
/// to an SCC component on that address and transport (the component listens there, not the
/// program), and decides the connections to every other port, as an opening for that program.
/// Other formats are returned as they are.
pub fn for_plan(mut rs: Ruleset, flows: &[Flow]) -> Ruleset {
    if rs.format != Format::WindowsJson {
        return rs;
    }
    for rule in rs.chains.iter_mut().flat_map(|c| c.rules.iter_mut()) {
        if !spec(rule).is_some_and(|s| s.bound) {
            continue;
        }
        let protos: Option<Vec<u8>> = rule.matches.iter().find_map(|m| match &m.cond {
            Cond::Proto(l) if !m.negate => Some(l.clone()),
            _ => None,
        });
        for family in [Family::V4, Family::V6] {
            let mut elems: Vec<Vec<(u128, u128)>> = Vec::new();
            for f in flows {
                let number = match f.transport {
                    Transport::Tcp => 6,
                    Transport::Udp => 17,
                };
                if protos.as_ref().is_some_and(|l| !l.contains(&number)) {
                    continue;
                }
                // A parity range's other ports are not the component's.
                let ports = crate::firewall::text::segments(f.ports);
                for d in f.destination.iter().map(Span::net) {
                    if d.family != family {
                        continue;
                    }
                    for &(lo, hi) in &ports {
                        elems.push(vec![(d.lo, d.hi), (u128::from(lo), u128::from(hi))]);
                    }
                }
            }
            if elems.is_empty() {
                continue;
            }
            elems.sort_unstable();
            elems.dedup();
            rule.matches.push(Match::not(
                Cond::Concat(Concat::new(
                    vec![Field::Daddr, Field::Dport],
                    Some(family),
                    elems,
                    None,
                )),
                true,
            ));
        }
    }
    rs
}

/// The `Name` a rule's spec carries (the spec itself when it is not a [`Spec`]).
pub fn spec_name(spec: &str) -> String {
    serde_json::from_str::<Spec>(spec).map_or_else(|_| spec.to_string(), |s| s.name)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{flow, pkt};
    use super::*;
    use crate::audit::Outcome;
    use crate::range::{Parity, PortRange};

    fn rules(json: &str) -> Ruleset {
        read("w.json", &serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn profiles_and_stores_as_the_line_or_convert_to_json_writes_them() {
        assert_eq!(profiles(&Value::from(3)), Some("Domain/Private".into()));
        assert_eq!(profiles(&Value::from(7)), None);
        assert_eq!(profiles(&Value::from("Domain, Private, Public")), None);
        assert_eq!(profiles(&Value::from("Any")), None);
        assert_eq!(profiles(&Value::from("Public")), Some("Public".into()));
        assert_eq!(store(&Value::Null), Store::Local);
        assert_eq!(store(&Value::from("Local")), Store::Local);
        assert_eq!(store(&Value::from(2)), Store::GroupPolicy);
        assert_eq!(store(&Value::from("GroupPolicy")), Store::GroupPolicy);
        assert_eq!(
            store(&Value::from("Dynamic")),
            Store::Other("Dynamic".into())
        );
    }

    #[test]
    fn a_rule_says_what_it_is_bound_to_and_where_it_comes_from() {
        let rs = rules(
            r#"[{"Name": "n1", "DisplayName": "RDP", "Action": "Allow", "Profile": "Domain",
                 "Program": "%SystemRoot%\\system32\\svchost.exe", "Service": "TermService",
                 "Protocol": "TCP", "LocalPort": "3389"},
                {"Name": "n2", "DisplayName": "base", "Action": "Block", "Profile": 0,
                 "PolicyStoreSourceType": "GroupPolicy", "PolicyStoreSource": "corp\\Base",
                 "Protocol": "TCP", "LocalPort": "445"}]"#,
        );
        let origins: Vec<&str> = rs.chains[0]
            .rules
            .iter()
            .map(|r| r.origin.as_str())
            .collect();
        assert_eq!(
            origins,
            [
                r#"block rule "base" (GPO "corp\Base")"#,
                r#"allow rule "RDP" (program %SystemRoot%\system32\svchost.exe, service TermService, profile Domain)"#,
            ]
        );
        let gpo = spec(&rs.chains[0].rules[0]).unwrap();
        assert_eq!(
            (gpo.store, gpo.name.as_str(), gpo.bound),
            (Store::GroupPolicy, "n2", false)
        );
        assert!(spec(&rs.chains[0].rules[1]).unwrap().bound);
        // Profile- and program-bound rules decide (nothing is "cannot decide").
        let d = rs.evaluate(&pkt("10.9.0.1", "10.0.0.1", Transport::Tcp, 3389));
        assert_eq!(d.outcome, Outcome::Accept);
    }

    /// A program-bound allow over every port opens the program's ports, never a port the plan
    /// gives to a component on that address and transport (nor the odd ports of an even range).
    #[test]
    fn a_program_bound_rule_decides_nothing_on_a_planned_port() {
        let rs = rules(
            r#"[{"Name": "p", "DisplayName": "svc", "Action": "Allow", "Program": "System",
                 "Protocol": "TCP", "LocalPort": "1-65535"}]"#,
        );
        let planned = [
            flow(
                &["10.9.0.0/16"],
                "10.0.0.1/32",
                Transport::Tcp,
                PortRange::new(21012, 21012, None).unwrap(),
            ),
            flow(
                &["10.9.0.0/16"],
                "10.0.0.1/32",
                Transport::Tcp,
                PortRange::new(5004, 5008, Some(Parity::Even)).unwrap(),
            ),
            flow(
                &["10.9.0.0/16"],
                "10.0.0.1/32",
                Transport::Udp,
                PortRange::new(9000, 9000, None).unwrap(),
            ),
        ];
        let rs = for_plan(rs, &planned);
        let at = |dst: &str, port: u16| {
            rs.evaluate(&pkt("10.9.0.1", dst, Transport::Tcp, port))
                .outcome
        };
        assert_eq!(at("10.0.0.1", 21012), Outcome::Drop);
        assert_eq!(at("10.0.0.1", 5006), Outcome::Drop);
        assert_eq!(at("10.0.0.1", 5005), Outcome::Accept);
        assert_eq!(at("10.0.0.1", 3389), Outcome::Accept);
        assert_eq!(at("10.0.0.2", 21012), Outcome::Accept);
        // The UDP flow's port is not taken from a TCP rule.
        assert_eq!(at("10.0.0.1", 9000), Outcome::Accept);
        // An unbound rule is left as it is.
        let plain = rules(
            r#"[{"Name": "q", "DisplayName": "all", "Action": "Allow", "Protocol": "TCP", "LocalPort": "Any"}]"#,
        );
        assert_eq!(for_plan(plain.clone(), &planned), plain);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 200, ..Default::default() })]

        /// Whatever the export says of programs, services, profiles and stores, the reader, the
        /// reading against the plan, the diff and its script never panic, and the script names
        /// no rule by a pattern.
        #[test]
        fn bound_and_stored_rules_never_panic(
            program in proptest::prelude::prop_oneof!["Any", "System", "\\PC{0,12}"],
            service in proptest::prelude::prop_oneof!["Any", "\\PC{0,12}"],
            profile in proptest::prelude::prop_oneof!["Any", "Domain", "Domain, Public", "\\PC{0,8}"],
            kind in proptest::prelude::prop_oneof!["Local", "GroupPolicy", "Dynamic", "\\PC{0,8}"],
            source in "\\PC{0,16}",
            name in "\\PC{0,12}",
            port in 1u16..=65535,
            action in proptest::prelude::prop_oneof!["Allow", "Block"],
        ) {
            let doc = serde_json::json!([{
                "Name": name, "DisplayName": name, "Action": action, "Profile": profile,
                "Program": program, "Service": service, "PolicyStoreSourceType": kind,
                "PolicyStoreSource": source, "Protocol": "TCP", "LocalPort": port.to_string(),
                "RemoteAddress": "Any"
            }]);
            let Ok(rs) = read("p.json", &doc) else { return Ok(()) };
            let planned = [flow(
                &["10.9.0.0/16"],
                "10.0.0.1/32",
                Transport::Tcp,
                PortRange::new(21012, 21013, None).unwrap(),
            )];
            let rs = for_plan(rs, &planned);
            let scope = crate::audit::compare::Scope::Node(vec!["10.0.0.1".parse().unwrap()]);
            let (changes, after) = crate::audit::diff::diff(&rs, &planned, &scope);
            let out = crate::audit::diff::render("windows", &rs, &planned, &changes, &after, &[])
                .unwrap();
            proptest::prop_assert!(out.text.is_ascii());
            proptest::prop_assert!(!out.text.contains("FirewallRule -Name"));
        }
    }
}
