//! Readers of the two allow-list exports: AWS security groups (`aws ec2
//! describe-security-groups`: allow rules only, their union, default deny) and Windows Firewall
//! (the PowerShell export of docs/audit.md: block rules win over allow rules, default inbound
//! block). Each becomes one chain whose order expresses the platform's semantics.

use serde_json::Value;

use super::{
    Action, AuditError, Base, Chain, Cond, Family, Format, Hook, Match, Rule, Ruleset, Span,
};

fn content(file: &str, what: String, hint: &str) -> AuditError {
    AuditError::Content {
        file: file.to_string(),
        what,
        hint: hint.to_string(),
    }
}

/// One chain on every hook the audit asks about: these firewalls sit in front of the host.
fn one_chain(name: &str, rules: Vec<Rule>) -> Chain {
    Chain {
        name: name.to_string(),
        base: Some(Base {
            hooks: vec![Hook::Input, Hook::Forward],
            priority: 0,
            families: vec![Family::V4, Family::V6],
            policy_accept: false,
        }),
        rules,
    }
}

pub fn read_aws(file: &str, doc: &Value) -> Result<Ruleset, AuditError> {
    const HINT: &str = "give the unmodified output of `aws ec2 describe-security-groups \
                        --group-ids sg-… --output json` for the groups of one instance";
    let groups = doc["SecurityGroups"]
        .as_array()
        .ok_or_else(|| content(file, "`SecurityGroups` is not a list".into(), HINT))?;
    let mut rules = Vec::new();
    for (g, group) in groups.iter().enumerate() {
        let id = group["GroupId"].as_str().unwrap_or("?");
        let name = group["GroupName"].as_str().unwrap_or("");
        let perms = match &group["IpPermissions"] {
            Value::Array(a) => a.as_slice(),
            Value::Null => &[],
            _ => {
                return Err(content(
                    file,
                    format!("SecurityGroups[{g}] ({id}): `IpPermissions` is not a list"),
                    HINT,
                ));
            }
        };
        for (p, perm) in perms.iter().enumerate() {
            let at = format!("SecurityGroups[{g}].IpPermissions[{p}]");
            let proto = match &perm["IpProtocol"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(content(file, format!("{at}: no `IpProtocol`"), HINT)),
            };
            let mut matches = Vec::new();
            // "-1" (all) and protocol numbers other than tcp/udp/icmp(v6) mean every port.
            let all_ports = match proto.as_str() {
                "-1" => true,
                "tcp" | "udp" | "6" | "17" => false,
                other => {
                    let n = super::nft::proto_name(other)
                        .ok_or_else(|| content(file, format!("{at}: protocol `{other}`"), HINT))?;
                    matches.push(Match::is(Cond::Proto(vec![n])));
                    true
                }
            };
            if !all_ports {
                let n = if proto == "tcp" || proto == "6" {
                    6
                } else {
                    17
                };
                matches.push(Match::is(Cond::Proto(vec![n])));
                let from = perm["FromPort"].as_i64();
                let to = perm["ToPort"].as_i64();
                match (from, to) {
                    (Some(a), Some(b)) if (0..=65535).contains(&a) && (a..=65535).contains(&b) => {
                        matches.push(Match::is(Cond::dport(vec![(a as u16, b as u16)])));
                    }
                    _ => {
                        return Err(content(
                            file,
                            format!("{at}: FromPort/ToPort missing or outside 0-65535"),
                            HINT,
                        ));
                    }
                }
            }
            let label = |what: &str, desc: &Value| {
                let d = desc
                    .as_str()
                    .map(|d| format!(" \"{d}\""))
                    .unwrap_or_default();
                format!(
                    "{id} ({name}) {proto} {}: {what}{d}",
                    if all_ports {
                        "all ports".to_string()
                    } else {
                        format!(
                            "{}-{}",
                            perm["FromPort"].as_i64().unwrap_or(0),
                            perm["ToPort"].as_i64().unwrap_or(0)
                        )
                    }
                )
            };
            let mut sources = Vec::new();
            for (key, cidr_key) in [("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6")] {
                for r in perm[key].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    let text = r[cidr_key].as_str().unwrap_or("");
                    let net: ipnet::IpNet = text.parse().map_err(|_| {
                        content(
                            file,
                            format!("{at}.{key}: `{}` is not a CIDR", super::clip(text)),
                            HINT,
                        )
                    })?;
                    sources.push((Span::net(&net.trunc()), label(text, &r["Description"])));
                }
            }
            for (s, origin) in sources {
                let mut m = matches.clone();
                m.push(Match::is(Cond::saddr(vec![s])));
                rules.push(Rule {
                    matches: m,
                    action: Action::Accept,
                    origin,
                    spec: String::new(),
                });
            }
            for (key, what) in [
                ("UserIdGroupPairs", "GroupId"),
                ("PrefixListIds", "PrefixListId"),
            ] {
                for r in perm[key].as_array().map(Vec::as_slice).unwrap_or(&[]) {
                    let reference = r[what].as_str().unwrap_or("?");
                    let mut m = matches.clone();
                    m.push(Match::is(Cond::Unknown(format!(
                        "source {reference} (the members of a referenced group or prefix list are not in the export)"
                    ))));
                    rules.push(Rule {
                        matches: m,
                        action: Action::Accept,
                        origin: label(reference, &r["Description"]),
                        spec: String::new(),
                    });
                }
            }
        }
    }
    // A union of allows: a rule the audit can evaluate decides before one it cannot, so that
    // "cannot decide" is only the answer when nothing certain accepts.
    rules.sort_by_key(has_unknown);
    Ok(Ruleset {
        format: Format::AwsJson,
        chains: vec![one_chain(
            "AWS security groups (union; default deny)",
            rules,
        )],
        families: vec![Family::V4, Family::V6],
    })
}

fn has_unknown(r: &Rule) -> bool {
    r.matches.iter().any(|m| matches!(m.cond, Cond::Unknown(_)))
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

pub fn read_windows(file: &str, doc: &Value) -> Result<Ruleset, AuditError> {
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
        let profile = strings(&o["Profile"]);
        if !any(&profile)
            && !profile.iter().all(|p| {
                let p = p.to_ascii_lowercase();
                p.contains("domain") && p.contains("private") && p.contains("public")
            })
        {
            matches.push(Match::is(Cond::Unknown(format!(
                "profile {} (which network profile is active is not known)",
                super::clip(&profile.join(","))
            ))));
        }
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
        for key in ["Program", "Service"] {
            let v = strings(&o[key]);
            if !any(&v) {
                matches.push(Match::is(Cond::Unknown(format!(
                    "{} {} (which process listens is not known)",
                    key.to_ascii_lowercase(),
                    super::clip(&v.join(","))
                ))));
            }
        }
        let rule = Rule {
            matches,
            action: if action { Action::Accept } else { Action::Drop },
            origin: format!(
                "{} rule \"{}\"",
                if action { "allow" } else { "block" },
                super::clip(name)
            ),
            // `Disable-NetFirewallRule -Name` finds a rule by it (`firewall --diff`).
            spec: o["Name"].as_str().unwrap_or("").to_string(),
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
