//! `firewall --target windows --diff`: the fewest changes to a Windows Firewall export. An
//! over-broad local allow rule is narrowed to the planned part it carries (`Set-NetFirewallRule`
//! on its ports, addresses or protocol), not disabled and re-added; a rule from Group Policy (or
//! another store the computer does not own) is never changed: a note says which GPO to change,
//! and how. The PowerShell it writes selects rules by their exact `Name` and can run twice.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::compare::{self, Report, Scope};
use super::diff::{Change, Narrowing, Script};
use super::windows::{Spec, Store};
use super::{Action, Chain, Cond, Family, Match, Rule, Ruleset, Span};
use crate::catalog::Transport;
use crate::flows::Flow;

fn proto_number(t: Transport) -> u8 {
    match t {
        Transport::Tcp => 6,
        Transport::Udp => 17,
    }
}

/// Sorted, merged intervals.
fn merge<T: Copy + Ord>(mut v: Vec<(T, T)>, next: fn(T) -> Option<T>) -> Vec<(T, T)> {
    v.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::new();
    for (lo, hi) in v {
        match out.last_mut() {
            Some(last) if next(last.1).is_none_or(|n| lo <= n) => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// The intersection of two sorted, merged interval lists.
fn intersect<T: Copy + Ord>(a: &[(T, T)], b: &[(T, T)]) -> Vec<(T, T)> {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let (lo, hi) = (x.0.max(y.0), x.1.min(y.1));
            if lo <= hi {
                out.push((lo, hi));
            }
        }
    }
    out.sort_unstable();
    out
}

fn port_list(v: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    merge(v, |p: u16| p.checked_add(1))
}

fn span_list(v: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        let pairs: Vec<(u128, u128)> = v
            .iter()
            .filter(|s| s.family == family)
            .map(|s| (s.lo, s.hi))
            .collect();
        out.extend(
            merge(pairs, |n: u128| n.checked_add(1))
                .into_iter()
                .map(|(lo, hi)| Span { family, lo, hi }),
        );
    }
    out
}

fn span_intersect(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        let of = |v: &[Span]| -> Vec<(u128, u128)> {
            v.iter()
                .filter(|s| s.family == family)
                .map(|s| (s.lo, s.hi))
                .collect()
        };
        out.extend(
            intersect(&of(a), &of(b))
                .into_iter()
                .map(|(lo, hi)| Span { family, lo, hi }),
        );
    }
    out
}

/// The rule narrowed to the part of `group` (flows of one transport) it admits, and what changed;
/// None when a field cannot be narrowed (another protocol, nothing in common).
fn narrowed(rule: &Rule, group: &[&Flow]) -> Option<(Narrowing, Rule)> {
    let t = group.first()?.transport;
    if group.iter().any(|f| f.transport != t) {
        return None;
    }
    let mut to = Narrowing::default();
    let mut matches: Vec<Match> = Vec::new();
    let (mut proto, mut ports, mut remote, mut local) = (false, false, false, false);
    let want_ports = port_list(
        group
            .iter()
            .flat_map(|f| crate::firewall::text::segments(f.ports))
            .collect(),
    );
    let nets = |pick: fn(&Flow) -> &[ipnet::IpNet]| -> Vec<Span> {
        span_list(
            &group
                .iter()
                .flat_map(|f| pick(f).iter().map(Span::net))
                .collect::<Vec<_>>(),
        )
    };
    let want_remote = nets(|f| &f.sources);
    let want_local = nets(|f| &f.destination);
    for m in &rule.matches {
        let cond = match (&m.cond, m.negate) {
            (Cond::Proto(l), false) => {
                proto = true;
                if !l.contains(&proto_number(t)) {
                    return None;
                }
                if l.len() > 1 {
                    to.protocol = Some(t);
                }
                Cond::Proto(vec![proto_number(t)])
            }
            (Cond::Dport(p), false) => {
                ports = true;
                let new = intersect(p.merged(), &want_ports);
                if new.is_empty() {
                    return None;
                }
                if new != p.merged() {
                    to.ports = Some(new.clone());
                }
                Cond::dport(new)
            }
            (Cond::Saddr(a), false) => {
                remote = true;
                let new = span_intersect(a.merged(), &want_remote);
                if new.is_empty() {
                    return None;
                }
                if new != a.merged() {
                    to.remote = Some(new.clone());
                }
                Cond::saddr(new)
            }
            (Cond::Daddr(a), false) => {
                local = true;
                let new = span_intersect(a.merged(), &want_local);
                if new.is_empty() {
                    return None;
                }
                if new != a.merged() {
                    to.local = Some(new.clone());
                }
                Cond::daddr(new)
            }
            _ => m.cond.clone(),
        };
        matches.push(Match::not(cond, m.negate));
    }
    // A field the rule does not restrict (Any) is set to the planned part.
    if !proto {
        to.protocol = Some(t);
        matches.push(Match::is(Cond::Proto(vec![proto_number(t)])));
    }
    if !ports {
        to.ports = Some(want_ports.clone());
        matches.push(Match::is(Cond::dport(want_ports)));
    }
    if !remote {
        to.remote = Some(want_remote.clone());
        matches.push(Match::is(Cond::saddr(want_remote)));
    }
    if !local {
        to.local = Some(want_local.clone());
        matches.push(Match::is(Cond::daddr(want_local)));
    }
    Some((
        to,
        Rule {
            matches,
            action: rule.action.clone(),
            origin: rule.origin.clone(),
            spec: rule.spec.clone(),
        },
    ))
}

/// The narrowing of allow rule `r` of chain `c` that keeps every planned flow it admits and
/// opens nothing beyond the plan, checked by auditing the narrowed rule alone: first to all the
/// flows it carries, else to the largest group of them that one rule can hold (same sources,
/// destinations and transport; the other flows are then added as rules). None: it carries no
/// planned flow, or no narrowing is exact (it is disabled instead).
pub(super) fn narrowing(
    work: &Ruleset,
    c: usize,
    r: usize,
    report: &Report,
    flows: &[Flow],
    scope: &Scope,
) -> Option<(Narrowing, Rule)> {
    let rule = &work.chains[c].rules[r];
    if rule.action != Action::Accept {
        return None;
    }
    let at = Some((c, Some(r)));
    let mut carried: Vec<usize> = report
        .flows
        .iter()
        .filter(|row| row.accepted_by.iter().any(|d| d.at == at))
        .map(|row| row.flow)
        .collect();
    carried.sort_unstable();
    carried.dedup();
    if carried.is_empty() {
        return None;
    }
    let mut groups: BTreeMap<(Vec<ipnet::IpNet>, Vec<ipnet::IpNet>, Transport), Vec<usize>> =
        BTreeMap::new();
    for &f in &carried {
        let fl = &flows[f];
        groups
            .entry((fl.sources.clone(), fl.destination.clone(), fl.transport))
            .or_default()
            .push(f);
    }
    let mut candidates: Vec<Vec<usize>> = vec![carried.clone()];
    let mut by_size: Vec<Vec<usize>> = groups.into_values().collect();
    by_size.sort_by_key(|g| std::cmp::Reverse(g.len()));
    candidates.extend(by_size);
    candidates.dedup();
    for group in candidates {
        let list: Vec<&Flow> = group.iter().map(|&f| &flows[f]).collect();
        let Some((to, rule)) = narrowed(rule, &list) else {
            continue;
        };
        let alone = Ruleset {
            format: work.format,
            chains: vec![Chain {
                name: work.chains[c].name.clone(),
                base: work.chains[c].base.clone(),
                rules: vec![rule.clone()],
            }],
            families: work.families.clone(),
        };
        if compare::audit(&alone, flows, scope).extra.is_empty() {
            return Some((to, rule));
        }
    }
    None
}

/// A Windows address text for `-RemoteAddress`/`-LocalAddress`: an address, a subnet, or a
/// range (a whole family, which Windows does not take as `/0`, as its range).
fn address(s: &Span) -> String {
    if s.lo == 0 && s.hi == s.family.max() {
        return format!(
            "{}-{}",
            super::num_addr(s.family, s.lo),
            super::num_addr(s.family, s.hi)
        );
    }
    super::span_text(s)
}

/// The `Set-NetFirewallRule` parameters of a narrowing (values from the plan, never the export).
pub(super) fn parameters(to: &Narrowing) -> String {
    let quoted = |v: Vec<String>| -> String {
        v.into_iter()
            .map(|x| format!("'{x}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = Vec::new();
    if let Some(t) = to.protocol {
        out.push(format!("-Protocol {}", t.as_str().to_ascii_uppercase()));
    }
    if let Some(p) = &to.ports {
        let list = p.iter().map(|&s| crate::firewall::text::span(s)).collect();
        out.push(format!("-LocalPort {}", quoted(list)));
    }
    if let Some(a) = &to.remote {
        out.push(format!(
            "-RemoteAddress {}",
            quoted(a.iter().map(address).collect())
        ));
    }
    if let Some(a) = &to.local {
        out.push(format!(
            "-LocalAddress {}",
            quoted(a.iter().map(address).collect())
        ));
    }
    out.join(" ")
}

/// Where a rule that the computer does not own is changed: `in GPO "NAME"`, or the store.
fn where_to_change(spec: &Spec) -> String {
    match &spec.store {
        Store::GroupPolicy if spec.source.is_empty() => "it comes from Group Policy; in its GPO \
             (`gpresult /scope computer /h gp.html` lists the GPOs that apply)"
            .to_string(),
        Store::GroupPolicy => format!(
            "it comes from Group Policy; in GPO \"{}\"",
            super::clip(&spec.source)
        ),
        Store::Other(t) => format!(
            "it comes from the {t} policy store, not the local one this script changes; where \
             it is set"
        ),
        Store::Local => String::new(),
    }
}

/// The note (lines) for a rule the diff would change but may not (a Group Policy rule, or
/// another store's): what it does, which GPO to change, and how.
pub(super) fn elsewhere_note(
    work: &Ruleset,
    c: usize,
    r: usize,
    spec: &Spec,
    narrow: Option<&Narrowing>,
    report: &Report,
) -> String {
    let rule = &work.chains[c].rules[r];
    let at = Some((c, Some(r)));
    if rule.action == Action::Accept {
        let how = match narrow {
            Some(to) => format!(
                "narrow it to the planned part it carries: {}",
                parameters(to)
            ),
            None => "disable it, or narrow it to the planned flows".to_string(),
        };
        return format!(
            "not changed: {}\nopens more than the plan; {},\n{how}",
            rule.origin,
            where_to_change(spec)
        );
    }
    let mut out = format!("not changed: {}\nblocks planned flows:", rule.origin);
    for row in report
        .flows
        .iter()
        .filter(|row| row.blocked_by.iter().any(|d| d.at == at))
    {
        out.push_str(&format!(
            "\n  {}.{} {}/{} from {} to {}",
            row.component,
            row.port_id,
            row.transport,
            row.blocked.join(","),
            if row.blocked_sources.is_empty() {
                row.zone.clone()
            } else {
                row.blocked_sources.join(",")
            },
            row.address
        ));
    }
    out.push_str(&format!(
        "\na block rule wins over every allow rule; {},\ndisable it, or take those flows out of it",
        where_to_change(spec)
    ));
    out
}

/// Selects the one rule whose `Name` is exactly the argument. The `-Name` parameter of the
/// firewall cmdlets takes wildcards (a rule named `*` or `[a-z]*` would select every rule), so the
/// rule is found by case-sensitive equality instead, and anything but one match stops the script.
/// `Get-NetFirewallRule` reads the local (persistent) store: the only rules the script changes.
const GET_EXACTLY: &str = "
function Get-RuleNamedExactly([string]$Name) {
    $rule = @(Get-NetFirewallRule | Where-Object { $_.Name -ceq $Name })
    if ($rule.Count -ne 1) { throw \"not one local rule named exactly '$Name' (found $($rule.Count))\" }
    $rule
}
";

/// The body of the script (after its header): the prelude, the narrowed and disabled rules, the
/// added flows, the notes.
pub(super) fn body(rs: &Ruleset, flows: &[Flow], changes: &[Change]) -> Script {
    use crate::firewall::windows::{GROUP, allow_rule, comment, ps_exact, ps_string, rule_name};
    let mut out = Script::default();
    out.text
        .push_str("#Requires -RunAsAdministrator\n$ErrorActionPreference = 'Stop'\n");
    let _ = writeln!(out, "$group = {}", ps_string(GROUP));
    let edits = changes
        .iter()
        .any(|c| matches!(c, Change::Remove { .. } | Change::Narrow { .. }));
    if edits {
        out.text.push_str(GET_EXACTLY);
    }
    let name_of = |spec: &str| super::windows::spec_name(spec);
    // In the export's order (the rounds found them in another).
    let mut ordered: Vec<&Change> = changes.iter().collect();
    ordered.sort_by_key(|c| match c {
        Change::Narrow { chain, rule, .. } | Change::Remove { chain, rule, .. } => (*chain, *rule),
        _ => (usize::MAX, 0),
    });
    let mut first = true;
    for c in ordered.iter().copied() {
        let Change::Narrow {
            spec, origin, to, ..
        } = c
        else {
            continue;
        };
        if first {
            out.text.push_str(
                "\n# Narrow: allow rules that open more than the plan, cut to the planned part they carry\n",
            );
            first = false;
        }
        let _ = writeln!(out, "# {}", comment(origin));
        out.command(format_args!(
            "Get-RuleNamedExactly {} | Set-NetFirewallRule {}",
            ps_exact(&name_of(spec)),
            parameters(to)
        ));
    }
    for (block, title) in [
        (
            false,
            "Disable: allow rules that open more than the plan and carry no planned flow one rule can hold",
        ),
        (true, "Disable: block rules that block planned flows"),
    ] {
        let mut first = true;
        for c in ordered.iter().copied() {
            let Change::Remove {
                chain, rule, spec, ..
            } = c
            else {
                continue;
            };
            let r = &rs.chains[*chain].rules[*rule];
            if (r.action == Action::Drop) != block {
                continue;
            }
            if first {
                let _ = writeln!(out, "\n# {title}");
                first = false;
            }
            let _ = writeln!(out, "# {}", comment(&r.origin));
            out.command(format_args!(
                "Get-RuleNamedExactly {} | Disable-NetFirewallRule",
                ps_exact(&name_of(spec))
            ));
        }
    }
    let mut adds: Vec<usize> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Add { flow, .. } => Some(*flow),
            _ => None,
        })
        .collect();
    adds.sort_unstable();
    adds.dedup();
    if !adds.is_empty() {
        let names: Vec<String> = adds
            .iter()
            .map(|&f| ps_string(&added_name(&flows[f], rule_name)))
            .collect();
        out.text.push_str("\n# Add: planned flows the rules block. A rule an earlier run of this script added (same\n# name, in the group) is replaced, so the script can run again.\n");
        let _ = writeln!(out, "$added = @(\n    {}\n)", names.join(",\n    "));
        out.command(format_args!(
            "Get-NetFirewallRule -Group $group -ErrorAction SilentlyContinue | Where-Object {{ $added -ccontains $_.DisplayName }} | Remove-NetFirewallRule"
        ));
    }
    for f in adds {
        let f = &flows[f];
        // One `New-NetFirewallRule` (after its comment lines, before its continuation lines).
        allow_rule(&mut out.text, &added_name(f, rule_name), &[f]);
        out.commands += 1;
    }
    out
}

/// The display name of a rule the diff adds: the generator's, marked as the diff's.
fn added_name(f: &Flow, rule_name: fn(&Flow) -> String) -> String {
    format!("{} (firewall --diff)", rule_name(f))
}
