//! `firewall --diff`: the changes that bring an exported nftables, iptables or Windows Firewall
//! ruleset to the plan. Found by auditing, changing the model (remove what opens too much, insert
//! accepts where a planned flow is blocked, drop policies that accept too much) and auditing
//! again, until the model admits exactly the plan; then written in the target's own syntax.

use std::fmt::Write as _;

use super::compare::{self, Report, Scope};
use super::{Action, Cond, Family, Field, Format, Match, Outcome, Rule, Ruleset, Span};
use crate::catalog::Transport;
use crate::flows::Flow;
use crate::range::Parity;

/// One change to the exported ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Delete rule `rule` of chain `chain` (indices into the export); `origin` names it.
    Remove {
        chain: usize,
        rule: usize,
        spec: String,
        origin: String,
    },
    /// Insert accepts for flow `flow` at the top of chain `chain`.
    Add { chain: usize, flow: usize },
    /// Set the policy of base chain `chain` to drop.
    Policy { chain: usize },
    /// Add (or delete) an element of a named concatenated set (`family table name`), written as
    /// nft writes it: `10.88.1.100 . 21002`. The natural fix of a set-based ruleset.
    Element {
        add: bool,
        set: String,
        elem: String,
    },
    /// What the diff cannot fix (a construct it cannot evaluate).
    Note(String),
}

/// Why no diff is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error(
        "--diff for target {target} needs {wanted} (the export is {found})\n  hint: export the ruleset with {how}"
    )]
    Mismatch {
        target: String,
        wanted: &'static str,
        found: &'static str,
        how: &'static str,
    },
    #[error("--diff writes nftables, iptables or windows changes, not {0}")]
    Target(String),
}

/// The greatest number of audit-and-change rounds (each round fixes what the previous one
/// uncovered: an accept inserted in one base chain may meet a drop in the next).
const ROUNDS: usize = 8;

/// A set element: one closed interval per field of its concatenation.
type Elem = Vec<(u128, u128)>;

/// Where added rules are marked, so that a later round never removes them as "original".
const ADDED: &str = "\u{0}added";

/// The changes, and the audit of the changed model (exact when the diff is complete).
pub fn diff(rs: &Ruleset, flows: &[Flow], scope: &Scope) -> (Vec<Change>, Report) {
    // Windows Firewall: a block rule wins whatever the order, so a planned flow that one blocks
    // needs that rule gone (no accept can go before it), and an added allow goes after the
    // blocks (the model's chain is blocks, then allows).
    let block_wins = rs.format == Format::WindowsJson;
    let mut work = rs.clone();
    // The export's index of each working rule (None: added by us).
    let mut origin_index: Vec<Vec<Option<usize>>> = rs
        .chains
        .iter()
        .map(|c| (0..c.rules.len()).map(Some).collect())
        .collect();
    let mut changes: Vec<Change> = Vec::new();
    // Set elements added (set, box), never deleted again as "original"; the (chain, flow) pairs
    // already given elements (a second time, the flow gets a rule instead).
    let mut added: Vec<(String, Elem)> = Vec::new();
    let mut tried: Vec<(usize, usize)> = Vec::new();
    let mut report = compare::audit(&work, flows, scope);
    for _ in 0..ROUNDS {
        if report.summary.exact {
            break;
        }
        let mut removes: Vec<(usize, usize)> = Vec::new();
        let mut policies: Vec<usize> = Vec::new();
        let mut adds: Vec<(usize, usize)> = Vec::new();
        let mut notes: Vec<String> = Vec::new();
        let mut elements: Vec<(usize, usize, usize, Elem, bool)> = Vec::new();
        // A flow given elements in an earlier round and still blocked gets a rule instead (its
        // rows of this round, one per destination, all get elements).
        let tried_before = tried.clone();
        for e in &report.extra {
            let d = &e.decided_by;
            match (&d.outcome, d.at) {
                (Outcome::Accept, Some((c, Some(r))))
                    if work.chains[c].rules[r].origin != ADDED =>
                {
                    // A set element that opens it is deleted, not the rule that looks the set up.
                    match extra_boxes(&work.chains[c].rules[r], e, &added) {
                        Some(found) => {
                            for (m, b) in found {
                                elements.push((c, r, m, b, false));
                            }
                        }
                        None => removes.push((c, r)),
                    }
                }
                (Outcome::Accept, Some((c, None))) => policies.push(c),
                _ => notes.push(format!(
                    "not changed: {} {} {}/{} ({})",
                    e.source, e.address, e.transport, e.ports, e.rule
                )),
            }
        }
        for row in report.flows.iter().filter(|r| r.status != "admitted") {
            for d in &row.blocked_by {
                match (&d.outcome, d.at) {
                    // Dropped by the policy of a chain with a rule that looks up a set the flow
                    // fits: its elements are added to that set.
                    (Outcome::Drop, Some((c, None)))
                        if !tried_before.contains(&(c, row.flow))
                            && flow_elements(&work.chains[c], &flows[row.flow]).is_some() =>
                    {
                        tried.push((c, row.flow));
                        if let Some(list) = flow_elements(&work.chains[c], &flows[row.flow]) {
                            for (r, m, b) in list {
                                elements.push((c, r, m, b, true));
                            }
                        }
                    }
                    (Outcome::Drop, Some((c, Some(r))))
                        if block_wins && work.chains[c].rules[r].origin != ADDED =>
                    {
                        removes.push((c, r))
                    }
                    (Outcome::Drop, Some((c, _))) => adds.push((c, row.flow)),
                    _ => notes.push(format!(
                        "not changed: flow {}.{} to {} ({})",
                        row.component, row.port_id, row.address, row.rule
                    )),
                }
            }
        }
        removes.sort_unstable();
        removes.dedup();
        policies.sort_unstable();
        policies.dedup();
        adds.sort_unstable();
        adds.dedup();
        elements.sort_unstable();
        elements.dedup();
        // What cannot be written is not changed in the model: a note says why.
        let mut refuse = |change: Change| -> bool {
            match unwritable(rs, &change) {
                Some(why) => {
                    notes.push(format!("not written: {why}"));
                    false
                }
                None => true,
            }
        };
        removes.retain(|&(c, r)| match origin_index[c][r] {
            Some(orig) => refuse(Change::Remove {
                chain: c,
                rule: orig,
                spec: rs.chains[c].rules[orig].spec.clone(),
                origin: rs.chains[c].rules[orig].origin.clone(),
            }),
            None => true,
        });
        policies.retain(|&c| refuse(Change::Policy { chain: c }));
        adds.retain(|&(c, f)| refuse(Change::Add { chain: c, flow: f }));
        elements.retain(|(c, r, m, _, add)| {
            let Cond::Concat(cc) = &work.chains[*c].rules[*r].matches[*m].cond else {
                return true;
            };
            let Some(set) = cc.set.clone() else {
                return true;
            };
            refuse(Change::Element {
                add: *add,
                set,
                elem: String::new(),
            })
        });
        let progress =
            !removes.is_empty() || !policies.is_empty() || !adds.is_empty() || !elements.is_empty();
        // Element changes first: the indices are those of this round's model.
        for (c, r, m, b, add) in elements {
            let Cond::Concat(cc) = &mut work.chains[c].rules[r].matches[m].cond else {
                continue;
            };
            let Some(set) = cc.set.clone() else { continue };
            let family = cc.family;
            let text = super::element_text(&cc.fields, family, &b);
            if add {
                if !cc.elems.contains(&b) {
                    cc.elems.push(b.clone());
                    added.push((set.clone(), b));
                }
            } else {
                cc.elems.retain(|x| *x != b);
            }
            cc.index();
            let change = Change::Element {
                add,
                set,
                elem: text,
            };
            // Deleting what an earlier round added cancels it.
            let Change::Element { set, elem, .. } = change.clone() else {
                continue;
            };
            let opposite = Change::Element {
                add: !add,
                set,
                elem,
            };
            if let Some(i) = changes.iter().position(|x| *x == opposite) {
                changes.remove(i);
            } else if !changes.contains(&change) {
                changes.push(change);
            }
        }
        for &(c, r) in removes.iter().rev() {
            if let Some(orig) = origin_index[c][r] {
                changes.push(Change::Remove {
                    chain: c,
                    rule: orig,
                    spec: rs.chains[c].rules[orig].spec.clone(),
                    origin: rs.chains[c].rules[orig].origin.clone(),
                });
            }
            work.chains[c].rules.remove(r);
            origin_index[c].remove(r);
        }
        for &c in &policies {
            if let Some(b) = work.chains[c].base.as_mut() {
                if b.policy_accept {
                    b.policy_accept = false;
                    changes.push(Change::Policy { chain: c });
                }
            }
        }
        for &(c, f) in adds.iter().rev() {
            let at = if block_wins {
                let rules = &work.chains[c].rules;
                rules
                    .iter()
                    .take_while(|r| r.action == Action::Drop)
                    .count()
            } else {
                0
            };
            for rule in model_rules(&flows[f]) {
                work.chains[c].rules.insert(at, rule);
                origin_index[c].insert(at, None);
            }
            changes.push(Change::Add { chain: c, flow: f });
        }
        for n in notes {
            if !changes.contains(&Change::Note(n.clone())) {
                changes.push(Change::Note(n));
            }
        }
        report = compare::audit(&work, flows, scope);
        if !progress {
            break;
        }
    }
    (changes, report)
}

/// The elements (match index, box) of a rule's named concatenated sets that admit the opening
/// `e` beyond the plan; None when the opening is not admitted by a set element the diff may
/// delete (then the rule itself is removed).
fn extra_boxes(
    rule: &Rule,
    e: &compare::ExtraRow,
    added: &[(String, Elem)],
) -> Option<Vec<(usize, Elem)>> {
    let src: ipnet::IpNet = e.source.parse().ok()?;
    let dst = super::span_start(&e.address)?;
    let port: u16 = e.ports.split(['-', ' ']).next()?.parse().ok()?;
    let values = |f: Field| -> Option<u128> {
        Some(match f {
            Field::Saddr => super::addr_num(&src.network()),
            Field::Daddr => super::addr_num(&dst),
            Field::Dport => u128::from(port),
            Field::Sport => return None,
        })
    };
    let mut out = Vec::new();
    for (i, m) in rule.matches.iter().enumerate() {
        let Cond::Concat(c) = &m.cond else { continue };
        if m.negate {
            return None;
        }
        let set = c.set.as_ref()?;
        for b in &c.elems {
            let mut holds = true;
            for (f, (lo, hi)) in c.fields.iter().zip(b) {
                let v = values(*f)?;
                holds &= *lo <= v && v <= *hi;
            }
            if holds {
                if added.iter().any(|(s, x)| s == set && x == b) {
                    return None;
                }
                out.push((i, b.clone()));
            }
        }
    }
    if out.is_empty() { None } else { Some(out) }
}

/// The elements that admit flow `f` through the sets of chain `chain`: per address family, the
/// first accepting rule whose other conditions admit the whole flow and whose named set keys
/// only on addresses and the destination port. (rule, match index, box) each; None when some
/// family of the flow has no such rule or its ports are not a few set elements.
fn flow_elements(chain: &super::Chain, f: &Flow) -> Option<Vec<(usize, usize, Elem)>> {
    let proto = match f.transport {
        Transport::Tcp => 6,
        Transport::Udp => 17,
    };
    let ports: Vec<(u16, u16)> = match f.ports.parity() {
        Some(_) if !f.ports.is_single() => {
            if f.ports.count() > 64 {
                return None;
            }
            f.ports.ports().map(|p| (p, p)).collect()
        }
        _ => vec![(f.ports.lo(), f.ports.hi())],
    };
    let mut out = Vec::new();
    for (fam, src, dst) in family_spans(f) {
        let fits = |r: &Rule| -> Option<usize> {
            if r.action != Action::Accept || r.origin == ADDED {
                return None;
            }
            let mut set_at = None;
            for (i, m) in r.matches.iter().enumerate() {
                let ok = match (&m.cond, m.negate) {
                    (Cond::Family(x), false) => *x == fam,
                    (Cond::Saddr(spans), false) => src.iter().all(|s| {
                        spans
                            .iter()
                            .any(|x| x.family == fam && x.lo <= s.lo && s.hi <= x.hi)
                    }),
                    (Cond::Proto(list), false) => list.contains(&proto),
                    (Cond::Concat(c), false)
                        if set_at.is_none()
                            && c.set.is_some()
                            && c.family.is_none_or(|x| x == fam)
                            && !c.fields.contains(&Field::Sport) =>
                    {
                        set_at = Some(i);
                        true
                    }
                    _ => false,
                };
                if !ok {
                    return None;
                }
            }
            set_at
        };
        let (r, m) = chain
            .rules
            .iter()
            .enumerate()
            .find_map(|(r, rule)| fits(rule).map(|m| (r, m)))?;
        let Cond::Concat(c) = &chain.rules[r].matches[m].cond else {
            return None;
        };
        // Every combination of the fields' values: sources × destinations × ports.
        let mut boxes: Vec<Vec<(u128, u128)>> = vec![Vec::new()];
        for field in &c.fields {
            let values: Vec<(u128, u128)> = match field {
                Field::Saddr => src.iter().map(|s| (s.lo, s.hi)).collect(),
                Field::Daddr => dst.iter().map(|s| (s.lo, s.hi)).collect(),
                Field::Dport => ports
                    .iter()
                    .map(|(a, b)| (u128::from(*a), u128::from(*b)))
                    .collect(),
                Field::Sport => return None,
            };
            boxes = boxes
                .into_iter()
                .flat_map(|b| {
                    values.iter().map(move |v| {
                        let mut b = b.clone();
                        b.push(*v);
                        b
                    })
                })
                .collect();
        }
        out.extend(boxes.into_iter().map(|b| (r, m, b)));
    }
    if out.is_empty() { None } else { Some(out) }
}

/// A flow's sources and destinations as spans, per address family that has both.
fn family_spans(f: &Flow) -> Vec<(Family, Vec<Span>, Vec<Span>)> {
    [Family::V4, Family::V6]
        .into_iter()
        .filter_map(|fam| {
            let spans = |nets: &[ipnet::IpNet]| -> Vec<Span> {
                nets.iter()
                    .map(Span::net)
                    .filter(|s| s.family == fam)
                    .collect()
            };
            let (src, dst) = (spans(&f.sources), spans(&f.destination));
            (!src.is_empty() && !dst.is_empty()).then_some((fam, src, dst))
        })
        .collect()
}

/// The accepts of a flow in the model: one rule per address family with sources and
/// destinations.
fn model_rules(f: &Flow) -> Vec<Rule> {
    let mut out = Vec::new();
    for (fam, src, dst) in family_spans(f) {
        let mut matches = vec![
            Match::is(Cond::Family(fam)),
            Match::is(Cond::saddr(src)),
            Match::is(Cond::daddr(dst)),
            Match::is(Cond::Proto(vec![match f.transport {
                Transport::Tcp => 6,
                Transport::Udp => 17,
            }])),
            Match::is(Cond::dport(vec![(f.ports.lo(), f.ports.hi())])),
        ];
        if let (Some(p), false) = (f.ports.parity(), f.ports.is_single()) {
            matches.push(Match::is(Cond::DportParity(u8::from(p == Parity::Odd))));
        }
        out.push(Rule {
            matches,
            action: Action::Accept,
            origin: ADDED.into(),
            spec: String::new(),
        });
    }
    out
}

/// A name nft's own syntax can carry: its scanner's plain word, a letter, `_` or `.` and then
/// letters, digits, `/`, `-`, `_`, `.` (`srv/tcp` is one; nft 1.0 takes no quoted names).
fn nft_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | '.'))
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
}

/// Whether every word of a chain or set name (`family table name`, `table CHAIN`) can be
/// written in the export's syntax.
fn writable_name(format: Format, name: &str) -> bool {
    let nft = matches!(format, Format::NftJson | Format::NftText);
    // `family table name` or `table CHAIN`: a name with a space would read as more words.
    let words: Vec<&str> = name.split(' ').collect();
    words.len() == if nft { 3 } else { 2 }
        && words
            .iter()
            .all(|w| if nft { nft_name(w) } else { safe_name(w) })
}

/// Why a change cannot be written in the syntax of the export's tool (None: it can). A change
/// that cannot be written is not made in the model either, so that the audit after the diff,
/// its summary and its exit status are those of what is written.
fn unwritable(rs: &Ruleset, change: &Change) -> Option<String> {
    let chain_name = |c: usize| -> Option<String> {
        let name = &rs.chains[c].name;
        (!writable_name(rs.format, name)).then(|| {
            format!(
                "the chain name `{}` cannot be written in {}'s syntax",
                super::clip(name),
                tool(rs.format)
            )
        })
    };
    match change {
        Change::Remove {
            chain,
            spec,
            origin,
            ..
        } => match rs.format {
            Format::WindowsJson if spec.is_empty() => Some(format!(
                "the export gives no rule Name for `{}`",
                super::clip(origin)
            )),
            Format::WindowsJson => None,
            Format::NftJson if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_digit()) => {
                Some(format!(
                    "the export gives no rule handle for `{}`",
                    super::clip(origin)
                ))
            }
            _ => chain_name(*chain),
        },
        Change::Add { chain, .. } | Change::Policy { chain } => {
            if rs.format == Format::WindowsJson {
                None
            } else {
                chain_name(*chain)
            }
        }
        Change::Element { set, .. } => (!writable_name(rs.format, set)).then(|| {
            format!(
                "the set name `{}` cannot be written in nft's syntax",
                super::clip(set)
            )
        }),
        Change::Note(_) => None,
    }
}

fn tool(format: Format) -> &'static str {
    match format {
        Format::NftJson | Format::NftText => "nft",
        Format::Ip6tablesSave => "ip6tables",
        Format::WindowsJson => "PowerShell",
        _ => "iptables",
    }
}

/// A name from the export that may be written into a command: letters, digits, `_`, `-`, `.`.
fn safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn comment_label(f: &Flow) -> String {
    f.label()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect()
}

fn nets_of(nets: &[ipnet::IpNet], fam: Family) -> Vec<String> {
    nets.iter()
        .filter(|n| Family::of(&n.addr()) == fam)
        .map(crate::flows::net_text)
        .collect()
}

/// How many commands a rendered `--diff` holds: the lines that change the firewall (comments, the
/// shell and PowerShell preludes and a command's continuation lines are not counted), so that
/// the header's count is the script's own.
pub fn commands_in(text: &str) -> usize {
    const STARTS: &[&str] = &[
        // nft -f
        "add ",
        "insert ",
        "delete ",
        "replace ",
        "flush ",
        "create ",
        "destroy ",
        // the iptables script
        "iptables ",
        "ip6tables ",
        "ipset ",
        // PowerShell (the definition of Disable-RuleNamedExactly starts with `function`)
        "Disable-RuleNamedExactly ",
        "New-NetFirewallRule ",
        "Set-NetFirewallRule ",
        "Remove-NetFirewallRule ",
        "Disable-NetFirewallRule ",
    ];
    text.lines()
        .filter(|l| STARTS.iter().any(|s| l.starts_with(s)))
        .count()
}

/// Writes the changes in the target's syntax: an `nft -f` file, or an iptables shell script.
pub fn render(
    target: &str,
    rs: &Ruleset,
    flows: &[Flow],
    changes: &[Change],
    after: &Report,
    header: &[String],
) -> Result<String, DiffError> {
    let nft = match (target, rs.format) {
        ("windows", Format::WindowsJson) => {
            return Ok(render_windows(rs, flows, changes, after, header));
        }
        ("windows", f) => {
            return Err(DiffError::Mismatch {
                target: target.into(),
                wanted: "the Windows Firewall JSON export",
                found: f.as_str(),
                how: "the PowerShell line in docs/audit.md",
            });
        }
        ("nftables", Format::NftJson) => true,
        // `nft list ruleset` text: rules are deleted by handle, which only `nft -a` prints.
        ("nftables", Format::NftText) => {
            let unnamed = changes.iter().any(|c| {
                matches!(c, Change::Remove { spec, .. } if !spec.bytes().all(|b| b.is_ascii_digit()) || spec.is_empty())
            });
            if unnamed {
                return Err(DiffError::Mismatch {
                    target: target.into(),
                    wanted: "rule handles to delete rules, which `nft list ruleset` without `-a` does not print",
                    found: "nftables-text without handles",
                    how: "`nft -a list ruleset > rules.nft` (or `nft -j list ruleset > rules.json`)",
                });
            }
            true
        }
        ("iptables", Format::IptablesSave | Format::Ip6tablesSave) => false,
        ("nftables", f) => {
            return Err(DiffError::Mismatch {
                target: target.into(),
                wanted: "an `nft -j list ruleset` export",
                found: f.as_str(),
                how: "`nft -j list ruleset > rules.json`",
            });
        }
        ("iptables", f) => {
            return Err(DiffError::Mismatch {
                target: target.into(),
                wanted: "an `iptables-save` export",
                found: f.as_str(),
                how: "`iptables-save > rules.txt`",
            });
        }
        (t, _) => return Err(DiffError::Target(t.to_string())),
    };
    let mut out = String::new();
    if !nft {
        out.push_str("#!/bin/sh\nset -e\n");
    }
    for line in header {
        let _ = writeln!(out, "# {}", super::clean(line));
    }
    let _ = writeln!(out, "# {}", summary_line(after));
    let _ = writeln!(
        out,
        "# Apply it to the ruleset exactly as exported: {} refer to that export.",
        if nft {
            "rule handles"
        } else {
            "rule positions"
        }
    );
    if changes.is_empty() {
        out.push_str("# Nothing to change: the ruleset admits exactly the plan.\n");
        return Ok(out);
    }
    // Removals first (iptables positions in descending order, so that each stays valid), then
    // policies, then the inserted accepts.
    let mut removes: Vec<&Change> = changes
        .iter()
        .filter(|c| matches!(c, Change::Remove { .. }))
        .collect();
    removes.sort_by_key(|c| match c {
        Change::Remove { chain, rule, .. } => (*chain, std::cmp::Reverse(*rule)),
        _ => (0, std::cmp::Reverse(0)),
    });
    if !removes.is_empty() {
        out.push_str("\n# Remove: rules that open more than the plan\n");
    }
    for c in removes {
        let Change::Remove {
            chain,
            rule,
            spec,
            origin,
        } = c
        else {
            continue;
        };
        let name = &rs.chains[*chain].name;
        let _ = writeln!(out, "# {}", super::clean(origin));
        let words: Vec<&str> = name.split_whitespace().collect();
        if !writable_name(rs.format, name) {
            let _ = writeln!(out, "# (not written: the chain name is not a plain name)");
            continue;
        }
        if nft {
            if spec.chars().all(|c| c.is_ascii_digit()) && !spec.is_empty() {
                let _ = writeln!(out, "delete rule {name} handle {spec}");
            } else {
                out.push_str("# (not written: the export gives no rule handle)\n");
            }
        } else {
            let tool = if rs.format == Format::Ip6tablesSave {
                "ip6tables"
            } else {
                "iptables"
            };
            let _ = writeln!(
                out,
                "{tool} -t {} -D {} {}",
                words[0],
                words.get(1).unwrap_or(&""),
                rule + 1
            );
        }
    }
    let mut first = true;
    for adding in [false, true] {
        // deletions, then additions (one element may be replaced by a narrower one)
        for c in changes {
            let Change::Element { add, set, elem } = c else {
                continue;
            };
            if *add != adding {
                continue;
            }
            if first {
                out.push_str(
                    "\n# Set elements: the planned flows' elements added to the set that the blocking chain looks up, those opening more than the plan deleted\n",
                );
                first = false;
            }
            if !writable_name(rs.format, set) {
                let _ = writeln!(out, "# (not written: the set name is not a plain name)");
                continue;
            }
            let verb = if *add { "add" } else { "delete" };
            let _ = writeln!(out, "{verb} element {set} {{ {elem} }}");
        }
    }
    for c in changes {
        if let Change::Policy { chain } = c {
            let ch = &rs.chains[*chain];
            let words: Vec<&str> = ch.name.split_whitespace().collect();
            if !writable_name(rs.format, &ch.name) {
                continue;
            }
            let _ = writeln!(
                out,
                "\n# Policy: chain {} accepts by policy what the plan does not need",
                ch.name
            );
            let Some(b) = &ch.base else { continue };
            if nft {
                let hook = match b.hooks.first() {
                    Some(super::Hook::Input) => "input",
                    Some(super::Hook::Forward) => "forward",
                    Some(super::Hook::Prerouting) => "prerouting",
                    Some(super::Hook::Ingress) => "ingress",
                    None => "input",
                };
                let _ = writeln!(
                    out,
                    "chain {} {{ type filter hook {hook} priority {}; policy drop; }}",
                    ch.name, b.priority
                );
            } else {
                let _ = writeln!(
                    out,
                    "iptables -t {} -P {} DROP",
                    words[0],
                    words.get(1).unwrap_or(&"")
                );
            }
        }
    }
    let adds: Vec<(usize, usize)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Add { chain, flow } => Some((*chain, *flow)),
            _ => None,
        })
        .collect();
    if !adds.is_empty() {
        out.push_str("\n# Add: planned flows the ruleset blocks (inserted at the top of the chain that blocks them)\n");
    }
    for (chain, flow) in adds {
        let ch = &rs.chains[chain];
        let words: Vec<&str> = ch.name.split_whitespace().collect();
        if !writable_name(rs.format, &ch.name) {
            let _ = writeln!(out, "# (not written: the chain name is not a plain name)");
            continue;
        }
        let f = &flows[flow];
        if nft {
            add_nft(&mut out, &ch.name, words[0], f);
        } else {
            add_iptables(
                &mut out,
                words[0],
                words.get(1).unwrap_or(&""),
                rs.format,
                f,
            );
        }
    }
    notes(&mut out, changes, super::clean);
    Ok(out)
}

/// The notes: what the diff cannot change, each as a `#` comment made safe by `clean`.
fn notes(out: &mut String, changes: &[Change], clean: fn(&str) -> String) {
    let mut first = true;
    for c in changes {
        let Change::Note(n) = c else { continue };
        if first {
            out.push_str(
                "\n# Notes: what the diff cannot change (constructs it cannot evaluate)\n",
            );
            first = false;
        }
        let _ = writeln!(out, "# {}", clean(n));
    }
}

/// The after-audit line every diff starts with.
pub(crate) fn summary_line(after: &Report) -> String {
    let s = &after.summary;
    format!(
        "After these changes the audit finds: {} of {} flows admitted, {} extra openings{}.",
        s.admitted,
        s.flows,
        s.extra,
        if s.exact {
            " (exactly the plan)"
        } else {
            " (NOT exactly the plan: see the notes)"
        }
    )
}

/// Disables the one rule whose `Name` is exactly the argument. `Disable-NetFirewallRule -Name`
/// takes wildcards (a rule named `*` or `[a-z]*` would disable every rule), so the rule is
/// selected by case-sensitive equality instead, and anything but one match stops the script.
const DISABLE_EXACTLY: &str = "
function Disable-RuleNamedExactly([string]$Name) {
    $rule = @(Get-NetFirewallRule | Where-Object { $_.Name -ceq $Name })
    if ($rule.Count -ne 1) { throw \"not one rule named exactly '$Name' (found $($rule.Count))\" }
    $rule | Disable-NetFirewallRule
}
";

/// The changes as a PowerShell script: the rules that open more than the plan, and the block
/// rules that block planned flows, disabled by their exact `Name` ([`DISABLE_EXACTLY`];
/// `Enable-NetFirewallRule` undoes it); then the planned flows' allow rules, as `firewall --target windows` writes them, in its
/// group (so that a later run of the generated script replaces them).
fn render_windows(
    rs: &Ruleset,
    flows: &[Flow],
    changes: &[Change],
    after: &Report,
    header: &[String],
) -> String {
    use crate::firewall::windows::{GROUP, allow_rule, comment, ps_exact, ps_string, rule_name};
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "# {}", comment(line));
    }
    let _ = writeln!(out, "# {}", summary_line(after));
    out.push_str(
        "# Run it in an elevated PowerShell on the computer whose rules were exported: rule\n",
    );
    out.push_str("# Names refer to that export.\n");
    if changes.is_empty() {
        out.push_str("# Nothing to change: the rules admit exactly the plan.\n");
        return out;
    }
    out.push_str("#Requires -RunAsAdministrator\n$ErrorActionPreference = 'Stop'\n");
    let _ = writeln!(out, "$group = {}", ps_string(GROUP));
    let mut defined = false;
    for (block, title) in [
        (false, "Disable: allow rules that open more than the plan"),
        (true, "Disable: block rules that block planned flows"),
    ] {
        let mut first = true;
        for c in changes {
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
            if !defined {
                out.push_str(DISABLE_EXACTLY);
                defined = true;
            }
            if first {
                let _ = writeln!(out, "\n# {title}");
                first = false;
            }
            let _ = writeln!(out, "# {}", comment(&r.origin));
            if spec.is_empty() {
                out.push_str("# (not written: the export gives no rule Name)\n");
            } else {
                let _ = writeln!(out, "Disable-RuleNamedExactly {}", ps_exact(spec));
            }
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
    let adds: Vec<&Flow> = adds.into_iter().map(|f| &flows[f]).collect();
    if !adds.is_empty() {
        let _ = writeln!(out, "\n# Add: planned flows the rules block");
    }
    for f in adds {
        allow_rule(&mut out, &rule_name(f), &[f]);
    }
    notes(&mut out, changes, comment);
    out
}

fn nft_ports(f: &Flow) -> String {
    let proto = f.transport.as_str();
    match f.ports.parity() {
        Some(p) if !f.ports.is_single() => {
            if f.ports.count() <= 32 {
                let list: Vec<String> = f.ports.ports().map(|p| p.to_string()).collect();
                format!("{{ {} }}", list.join(", "))
            } else {
                format!(
                    "{}-{} {proto} dport & 1 == {}",
                    f.ports.lo(),
                    f.ports.hi(),
                    u8::from(p == Parity::Odd)
                )
            }
        }
        _ => f.ports.span_text(),
    }
}

fn add_nft(out: &mut String, chain: &str, family: &str, f: &Flow) {
    for (fam, kw) in [(Family::V4, "ip"), (Family::V6, "ip6")] {
        let (s, d) = (nets_of(&f.sources, fam), nets_of(&f.destination, fam));
        if s.is_empty() || d.is_empty() {
            continue;
        }
        let table_fam_ok = match family {
            "inet" | "netdev" => true,
            "ip" => fam == Family::V4,
            "ip6" => fam == Family::V6,
            _ => false,
        };
        if !table_fam_ok {
            let _ = writeln!(
                out,
                "# {}: its {kw} part cannot go into a {family} table",
                comment_label(f)
            );
            continue;
        }
        let set = |v: &[String]| {
            if v.len() == 1 {
                v[0].clone()
            } else {
                format!("{{ {} }}", v.join(", "))
            }
        };
        let _ = writeln!(
            out,
            "insert rule {chain} {kw} saddr {} {kw} daddr {} {} dport {} accept comment \"{}\"",
            set(&s),
            set(&d),
            f.transport.as_str(),
            nft_ports(f),
            comment_label(f)
        );
    }
}

fn add_iptables(out: &mut String, table: &str, chain: &str, format: Format, f: &Flow) {
    let fam = if format == Format::Ip6tablesSave {
        Family::V6
    } else {
        Family::V4
    };
    let tool = if fam == Family::V6 {
        "ip6tables"
    } else {
        "iptables"
    };
    let (s, d) = (nets_of(&f.sources, fam), nets_of(&f.destination, fam));
    if s.is_empty() || d.is_empty() {
        let _ = writeln!(
            out,
            "# {}: no source and destination of this address family",
            comment_label(f)
        );
        return;
    }
    let proto = f.transport.as_str();
    let groups: Vec<String> = match f.ports.parity() {
        Some(_) if !f.ports.is_single() => {
            let list: Vec<String> = f.ports.ports().map(|p| p.to_string()).collect();
            list.chunks(15)
                .map(|c| format!("-m multiport --dports {}", c.join(",")))
                .collect()
        }
        _ if f.ports.is_single() => vec![format!("-m {proto} --dport {}", f.ports.lo())],
        _ => vec![format!(
            "-m {proto} --dport {}:{}",
            f.ports.lo(),
            f.ports.hi()
        )],
    };
    for src in &s {
        for dst in &d {
            for g in &groups {
                let _ = writeln!(
                    out,
                    "{tool} -t {table} -I {chain} -s {src} -d {dst} -p {proto} {g} -m comment --comment \"{}\" -j ACCEPT",
                    comment_label(f)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::commands_in;

    /// Issue 21: the iptables header said `# 4 changes` above 7 commands. The count is the
    /// script's commands, not its comments, preludes or continuation lines.
    #[test]
    fn the_header_counts_the_commands_written() {
        let sh = "#!/bin/sh\nset -e\n# 7 commands for 4 changes\n# line 3: -A INPUT -j ACCEPT\n\
                  iptables -t filter -D INPUT 3\nipset add x 10.0.0.1\n\
                  iptables -t filter -I INPUT -s 10.0.0.0/24 -j ACCEPT\n\
                  iptables -t filter -I INPUT -s 10.0.1.0/24 -j ACCEPT\n\
                  ip6tables -t filter -I INPUT -s fd00::/64 -j ACCEPT\n\
                  iptables -t filter -P INPUT DROP\niptables -t filter -D INPUT 9\n";
        assert_eq!(commands_in(sh), 7);
        let nft = "# 3 commands\n\ndelete rule inet filter input handle 4\n\
                   add element inet t s { 10.0.0.1 . 22 }\ninsert rule inet filter input accept\n";
        assert_eq!(commands_in(nft), 3);
        let ps = "$ErrorActionPreference = 'Stop'\nfunction Disable-RuleNamedExactly([string]$Name) {\n\
                  \x20   $rule | Disable-NetFirewallRule\n}\nDisable-RuleNamedExactly '*'\n\
                  New-NetFirewallRule -Group $group `\n    -LocalPort '21012' | Out-Null\n";
        assert_eq!(commands_in(ps), 2);
    }
}
