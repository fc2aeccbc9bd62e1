//! Reader of AWS security groups (`aws ec2 describe-security-groups`: allow rules only, their
//! union, default deny), as one chain whose order expresses that union; and the one-chain shape
//! the Windows reader (`windows.rs`) shares.

use serde_json::Value;

use super::{
    Action, AuditError, Base, Chain, Cond, Family, Format, Hook, Match, Rule, Ruleset, Span,
};

pub(super) fn content(file: &str, what: String, hint: &str) -> AuditError {
    AuditError::Content {
        file: file.to_string(),
        what,
        hint: hint.to_string(),
    }
}

/// One chain on every hook the audit asks about: these firewalls sit in front of the host.
pub(super) fn one_chain(name: &str, rules: Vec<Rule>) -> Chain {
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

pub(super) fn has_unknown(r: &Rule) -> bool {
    r.matches.iter().any(|m| matches!(m.cond, Cond::Unknown(_)))
}
