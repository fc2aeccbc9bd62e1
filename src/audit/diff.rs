//! `firewall --diff`: the changes that bring an exported nftables, iptables or Windows Firewall
//! ruleset to the plan. Found by auditing, changing the model (remove what opens too much, insert
//! accepts where a planned flow is blocked, drop policies that accept too much; for Windows,
//! narrow an over-broad rule first) and auditing again, until the model admits exactly the plan;
//! then written in the target's own syntax, with the number of commands written.

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
    /// Narrow a Windows allow rule (`rule` of `chain`, indices into the export) to the planned
    /// part it carries: the fields of `to` that are set are replaced.
    Narrow {
        chain: usize,
        rule: usize,
        spec: String,
        origin: String,
        to: Narrowing,
    },
    /// What the diff cannot fix (a construct it cannot evaluate, a rule it may not change).
    Note(String),
}

/// The new values of a narrowed Windows rule's fields (None: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Narrowing {
    pub protocol: Option<Transport>,
    /// Merged port intervals.
    pub ports: Option<Vec<(u16, u16)>>,
    /// Merged address intervals (`-RemoteAddress`, `-LocalAddress`).
    pub remote: Option<Vec<Span>>,
    pub local: Option<Vec<Span>>,
}

/// A rendered diff: the text, and the number of commands in it (the header says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub commands: usize,
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
        // Windows: an over-broad local allow is narrowed to the planned part it carries; a rule
        // of another store (a GPO's) is not changed, and a note says where to change it.
        let mut narrows: Vec<(usize, usize, Narrowing, Rule)> = Vec::new();
        if block_wins {
            removes.retain(|&(c, r)| {
                let Some(orig) = origin_index[c][r] else {
                    return true;
                };
                let narrow = super::diff_windows::narrowing(&work, c, r, &report, flows, scope);
                match super::windows::spec(&rs.chains[c].rules[orig]) {
                    Some(spec) if spec.store != super::windows::Store::Local => {
                        notes.push(super::diff_windows::elsewhere_note(
                            &work,
                            c,
                            r,
                            &spec,
                            narrow.as_ref().map(|n| &n.0),
                            &report,
                        ));
                        false
                    }
                    // A rule without a Name cannot be selected: the removal's note says so.
                    Some(spec) if spec.name.is_empty() => true,
                    _ => match narrow {
                        Some((to, rule)) => {
                            narrows.push((c, r, to, rule));
                            false
                        }
                        None => true,
                    },
                }
            });
        }
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
        let progress = !removes.is_empty()
            || !policies.is_empty()
            || !adds.is_empty()
            || !elements.is_empty()
            || !narrows.is_empty();
        // Narrowings first: the indices are those of this round's model. A rule narrowed again
        // keeps one change, the last (each sets the fields anew).
        for (c, r, to, rule) in narrows {
            let Some(orig) = origin_index[c][r] else {
                continue;
            };
            changes.retain(|x| !matches!(x, Change::Narrow { chain, rule, .. } if (*chain, *rule) == (c, orig)));
            changes.push(Change::Narrow {
                chain: c,
                rule: orig,
                spec: rs.chains[c].rules[orig].spec.clone(),
                origin: rs.chains[c].rules[orig].origin.clone(),
                to,
            });
            work.chains[c].rules[r] = rule;
        }
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
            Format::WindowsJson if super::windows::spec_name(spec).is_empty() => Some(format!(
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
        Change::Narrow { .. } | Change::Note(_) => None,
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

/// A script being written: its text, and the number of commands it holds, counted as each is
/// written (the header says it; comments, preludes and continuation lines are not commands).
#[derive(Default)]
pub(super) struct Script {
    pub text: String,
    pub commands: usize,
}

impl Script {
    /// Writes one command (with its continuation lines, if any) and counts it.
    pub fn command(&mut self, line: std::fmt::Arguments) {
        let _ = writeln!(self.text, "{line}");
        self.commands += 1;
    }
}

impl std::fmt::Write for Script {
    /// Text that is not a command: comments, preludes.
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.text.push_str(s);
        Ok(())
    }
}

/// The header's count line: the commands written, the changes, and those not made.
fn count_line(changes: &[Change], commands: usize) -> String {
    // Notes are what is not written: counted apart from the changes.
    let notes = changes
        .iter()
        .filter(|c| matches!(c, Change::Note(_)))
        .count();
    format!(
        "{commands} command{} for {} change{}{}",
        if commands == 1 { "" } else { "s" },
        changes.len() - notes,
        if changes.len() - notes == 1 { "" } else { "s" },
        match notes {
            0 => String::new(),
            n => format!("; {n} not made or not written (see the notes)"),
        }
    )
}

/// Writes the changes in the target's syntax: an `nft -f` file, an iptables shell script or a
/// PowerShell script; `header` lines first, then the count of the commands it holds.
pub fn render(
    target: &str,
    rs: &Ruleset,
    flows: &[Flow],
    changes: &[Change],
    after: &Report,
    header: &[String],
) -> Result<Rendered, DiffError> {
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
    let mut head = String::new();
    if !nft {
        head.push_str("#!/bin/sh\nset -e\n");
    }
    for line in header {
        let _ = writeln!(head, "# {}", super::clean(line));
    }
    let Script {
        text: out,
        commands,
    } = body(rs, flows, changes, nft);
    let _ = writeln!(head, "# {}", count_line(changes, commands));
    let _ = writeln!(head, "# {}", summary_line(after));
    let _ = writeln!(
        head,
        "# Apply it to the ruleset exactly as exported: {} refer to that export.",
        if nft {
            "rule handles"
        } else {
            "rule positions"
        }
    );
    if changes.is_empty() {
        head.push_str("# Nothing to change: the ruleset admits exactly the plan.\n");
    }
    head.push_str(&out);
    Ok(Rendered {
        text: head,
        commands,
    })
}

/// The nft or iptables commands of the changes, and the notes.
fn body(rs: &Ruleset, flows: &[Flow], changes: &[Change], nft: bool) -> Script {
    let mut out = Script::default();
    if changes.is_empty() {
        return out;
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
        out.text
            .push_str("\n# Remove: rules that open more than the plan\n");
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
                out.command(format_args!("delete rule {name} handle {spec}"));
            } else {
                out.text
                    .push_str("# (not written: the export gives no rule handle)\n");
            }
        } else {
            let tool = if rs.format == Format::Ip6tablesSave {
                "ip6tables"
            } else {
                "iptables"
            };
            out.command(format_args!(
                "{tool} -t {} -D {} {}",
                words[0],
                words.get(1).unwrap_or(&""),
                rule + 1
            ));
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
                out.text.push_str(
                    "\n# Set elements: the planned flows' elements added to the set that the blocking chain looks up, those opening more than the plan deleted\n",
                );
                first = false;
            }
            if !writable_name(rs.format, set) {
                let _ = writeln!(out, "# (not written: the set name is not a plain name)");
                continue;
            }
            let verb = if *add { "add" } else { "delete" };
            out.command(format_args!("{verb} element {set} {{ {elem} }}"));
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
                out.command(format_args!(
                    "chain {} {{ type filter hook {hook} priority {}; policy drop; }}",
                    ch.name, b.priority
                ));
            } else {
                out.command(format_args!(
                    "iptables -t {} -P {} DROP",
                    words[0],
                    words.get(1).unwrap_or(&"")
                ));
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
        out.text.push_str("\n# Add: planned flows the ruleset blocks (inserted at the top of the chain that blocks them)\n");
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
    notes(&mut out.text, changes, super::clean);
    out
}

/// The notes: what the diff cannot change, each as a `#` comment made safe by `clean`.
fn notes(out: &mut String, changes: &[Change], clean: fn(&str) -> String) {
    let mut first = true;
    for c in changes {
        let Change::Note(n) = c else { continue };
        if first {
            out.push_str(
                "\n# Notes: what the diff does not change (constructs it cannot evaluate, rules it may not change)\n",
            );
            first = false;
        }
        // A note's first line, then its continuation lines, each made safe on its own.
        for (i, line) in n.lines().enumerate() {
            let _ = writeln!(out, "#{} {}", if i == 0 { "" } else { "  " }, clean(line));
        }
    }
}

/// The after-audit line every diff starts with.
fn summary_line(after: &Report) -> String {
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

/// The changes as a PowerShell script (`diff_windows`): over-broad rules narrowed or disabled
/// by their exact `Name`, the block rules that block planned flows disabled, the planned flows no
/// rule admits added as `firewall --target windows` writes them, in its group.
fn render_windows(
    rs: &Ruleset,
    flows: &[Flow],
    changes: &[Change],
    after: &Report,
    header: &[String],
) -> Rendered {
    use crate::firewall::windows::comment;
    let mut body = Script::default();
    if !changes.is_empty() {
        body = super::diff_windows::body(rs, flows, changes);
        notes(&mut body.text, changes, comment);
    }
    let Script {
        text: body,
        commands,
    } = body;
    let mut out = String::new();
    for line in header {
        let _ = writeln!(out, "# {}", comment(line));
    }
    let _ = writeln!(out, "# {}", count_line(changes, commands));
    let _ = writeln!(out, "# {}", summary_line(after));
    out.push_str(
        "# Run it in an elevated PowerShell on the computer whose rules were exported: rule\n",
    );
    out.push_str("# Names refer to that export.\n");
    if changes.is_empty() {
        out.push_str("# Nothing to change: the rules admit exactly the plan.\n");
    }
    out.push_str(&body);
    Rendered {
        text: out,
        commands,
    }
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

fn add_nft(out: &mut Script, chain: &str, family: &str, f: &Flow) {
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
        out.command(format_args!(
            "insert rule {chain} {kw} saddr {} {kw} daddr {} {} dport {} accept comment \"{}\"",
            set(&s),
            set(&d),
            f.transport.as_str(),
            nft_ports(f),
            comment_label(f)
        ));
    }
}

fn add_iptables(out: &mut Script, table: &str, chain: &str, format: Format, f: &Flow) {
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
                out.command(format_args!(
                    "{tool} -t {table} -I {chain} -s {src} -d {dst} -p {proto} {g} -m comment --comment \"{}\" -j ACCEPT",
                    comment_label(f)
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21: the iptables header said `# 4 changes` above 7 commands; issue 20: the Windows
    /// header was patched after rendering. The count is of the commands written, one change
    /// taking one or several (a rule per source and destination), and no comment counts.
    #[test]
    fn the_header_counts_the_commands_written() {
        let rs = super::super::read(
            "t.rules",
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n",
        )
        .unwrap();
        let mut f = crate::audit::tests::flow(
            &["10.1.0.0/24", "10.2.0.0/24"],
            "10.0.0.1/32",
            Transport::Tcp,
            crate::range::PortRange::new(21012, 21012, None).unwrap(),
        );
        f.destination.push("10.0.0.2/32".parse().unwrap());
        let scope = Scope::Node(vec![
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
        ]);
        let (changes, after) = diff(&rs, std::slice::from_ref(&f), &scope);
        let out = render("iptables", &rs, &[f], &changes, &after, &[]).unwrap();
        let written = out
            .text
            .lines()
            .filter(|l| l.starts_with("iptables "))
            .count();
        // The accept rule removed, the policy set, one rule per source x destination.
        assert_eq!((out.commands, written), (6, 6), "{}", out.text);
        assert!(
            out.text
                .contains(&format!("# 6 commands for {} changes\n", changes.len())),
            "{}",
            out.text
        );
    }
}
