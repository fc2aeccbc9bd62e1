//! The plan against a ruleset: for each planned flow `admitted`, `blocked`, `partial` or
//! `undecided`, with the deciding rule; and every opening the ruleset has beyond the plan.
//!
//! Ports and sources are split at every boundary the rules and the flows mention (interval
//! arithmetic): within one piece every condition answers the same, so one packet per piece
//! decides for all of it (two, an even and an odd port, when a rule tests parity).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use super::{Decision, Family, Hook, Outcome, Packet, Ruleset, Span, addr_num, num_addr};
use crate::catalog::Transport;
use crate::flows::Flow;
use crate::range::{Parity, PortRange};

/// Which firewall the ruleset is: one node's host firewall, or a firewall between zones.
#[derive(Debug, Clone)]
pub enum Scope {
    /// New connections to these addresses (input hook); `extra` is computed for them.
    Node(Vec<IpAddr>),
    /// Forwarded connections; `extra` is computed for the planned destinations.
    Network,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowRow {
    pub zone: String,
    pub address: String,
    pub transport: &'static str,
    pub ports: String,
    pub component: String,
    pub port_id: String,
    /// `admitted`, `blocked`, `partial` or `undecided`.
    pub status: &'static str,
    /// The ports some source of the flow cannot reach.
    pub blocked: Vec<String>,
    /// Set only when the blocking depends on the source: the sources that are blocked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_sources: Vec<String>,
    /// The deciding rule(s): the accepting rule when admitted, else the blocking one(s), or
    /// `cannot decide: …`.
    pub rule: String,
    /// The flow's index in the audited list (for `firewall --diff`).
    #[serde(skip)]
    pub flow: usize,
    /// Every decision that accepted part of the flow, and every one that blocked part of it.
    #[serde(skip)]
    pub accepted_by: Vec<Decision>,
    #[serde(skip)]
    pub blocked_by: Vec<Decision>,
}

/// One piece of an opening beyond the plan: one source CIDR, one destination, one port range
/// (what `firewall --diff` finds set elements and rules by). The report shows them grouped by
/// rule ([`Opening`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct ExtraRow {
    pub source: String,
    pub address: String,
    pub transport: &'static str,
    pub ports: String,
    pub rule: String,
    /// The decision that opens it (for `firewall --diff`).
    #[serde(skip)]
    pub decided_by: Decision,
    /// The same piece as numbers (what the grouping merges).
    #[serde(skip)]
    pub piece: Piece,
}

/// A piece as intervals: the source and destination addresses, the ports, and which of their
/// parities (bit 1 even, bit 2 odd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Piece {
    pub src: Span,
    pub dst: Span,
    pub lo: u16,
    pub hi: u16,
    pub parity: u8,
}

/// What one rule opens beyond the plan over one transport: every source, destination and port
/// of its pieces, merged into ranges. Where the rule does not open all of sources × addresses ×
/// ports (a planned flow, or another rule, decides part of it), `except` says which part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opening {
    pub rule: String,
    pub transport: &'static str,
    /// Merged port ranges: `1025-21001, 30000-30010` (a range of one parity says so: `8000-8040
    /// even`).
    pub ports: String,
    /// Merged address ranges, each a CIDR when it is exactly one, else `first-last`.
    pub sources: Vec<String>,
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<Except>,
    /// The decision that opens it (`cannot decide` when undecided).
    #[serde(skip)]
    pub decided_by: Decision,
}

/// A part of an opening's sources × addresses × ports that its rule does not open beyond the
/// plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Except {
    pub sources: Vec<String>,
    pub addresses: Vec<String>,
    pub ports: String,
}

impl Opening {
    /// Whether the opening is "cannot decide" rather than a rule that accepts.
    pub fn undecided(&self) -> bool {
        matches!(self.decided_by.outcome, Outcome::Undecided(_))
    }
}

/// Which node or network firewall a report is about (set by the command line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subject {
    /// `node` or `network`.
    pub kind: &'static str,
    /// The node, or the network firewall (`[firewalls.NAME]`; none for a host-style ruleset
    /// audited with `--network`).
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub format: &'static str,
    pub flows: usize,
    pub admitted: usize,
    pub partial: usize,
    pub blocked: usize,
    pub undecided: usize,
    /// Openings beyond the plan: one per deciding rule and transport.
    pub extra: usize,
    /// Of those, the ones decided by `cannot decide: …` (the table says "N of them undecided").
    pub undecided_openings: usize,
    /// True when the ruleset admits exactly the plan (the exit code is 0).
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// [`crate::FORMAT_VERSION`].
    pub format_version: u32,
    /// Which firewall: set by the command line (none from [`audit`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// The ruleset's path as given (set by the command line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ruleset: Option<String>,
    pub summary: Summary,
    pub flows: Vec<FlowRow>,
    /// The openings beyond the plan, one per deciding rule and transport (the JSON's `extra`).
    #[serde(rename = "extra")]
    pub openings: Vec<Opening>,
    /// The same openings in pieces (one source CIDR, destination and port range each), for
    /// `firewall --diff`.
    #[serde(skip)]
    pub extra: Vec<ExtraRow>,
}

/// Text from an export, made safe for a terminal, a table or a JSON consumer: control
/// characters escaped (the export is hostile input).
fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Which ports of a piece: both parities, only the even, only the odd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mask {
    even: bool,
    odd: bool,
}

impl Mask {
    const ALL: Mask = Mask {
        even: true,
        odd: true,
    };
    const NONE: Mask = Mask {
        even: false,
        odd: false,
    };
    const EVEN: Mask = Mask {
        even: true,
        odd: false,
    };
    const ODD: Mask = Mask {
        even: false,
        odd: true,
    };
    fn of(parity: Option<Parity>) -> Mask {
        match parity {
            None => Mask::ALL,
            Some(Parity::Even) => Mask::EVEN,
            Some(Parity::Odd) => Mask::ODD,
        }
    }
    fn any(self) -> bool {
        self.even || self.odd
    }
    fn or(self, o: Mask) -> Mask {
        Mask {
            even: self.even || o.even,
            odd: self.odd || o.odd,
        }
    }
    fn minus(self, o: Mask) -> Mask {
        Mask {
            even: self.even && !o.even,
            odd: self.odd && !o.odd,
        }
    }
    /// The mask restricted to the ports a piece really has.
    fn within(self, lo: u16, hi: u16) -> Mask {
        if lo == hi {
            let even = lo % 2 == 0;
            Mask {
                even: self.even && even,
                odd: self.odd && !even,
            }
        } else {
            self
        }
    }
}

/// The verdicts over one destination and transport: sources × ports, split at the boundaries.
/// Each source piece has its own port pieces: only the rules that can match that source cut its
/// ports (a thousand rules for a thousand sources give a thousand small rows, not a product).
/// Source pieces that every rule treats alike (one signature: [`Ruleset::source_signatures`])
/// share one row, evaluated once: a blocklist of 20,000 addresses gives two rows, not 40,000.
struct Grid {
    /// The source pieces and their signatures, shared by every grid of the family.
    shared: SourcePieces,
    /// Per source piece, its row.
    row: Vec<u32>,
    /// Per row, its port pieces.
    ports: Vec<Vec<(u16, u16)>>,
    /// Per row, per port piece: the decision for an even and for an odd port (indices into
    /// `decisions`); equal when no rule tests parity.
    cells: Vec<Vec<(u32, u32)>>,
    decisions: Vec<Decision>,
}

impl Grid {
    fn srcs(&self) -> &[Span] {
        &self.shared.0
    }

    fn cell(&self, r: usize, p: usize) -> (&Decision, &Decision) {
        let (e, o) = self.cells[r][p];
        (&self.decisions[e as usize], &self.decisions[o as usize])
    }
}

/// Splits `[lo, hi]` at the cuts (each cut starts a new piece).
fn pieces(lo: u128, hi: u128, cuts: &[u128]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    let mut start = lo;
    for &c in cuts {
        if c > start && c <= hi {
            out.push((start, c - 1));
            start = c;
        }
    }
    out.push((start, hi));
    out
}

struct Auditor<'a> {
    rs: &'a Ruleset,
    hook: Hook,
    flows: &'a [Flow],
    port_cuts: Vec<u128>,
    parity: bool,
    grids: BTreeMap<(IpAddr, Transport), Grid>,
    /// The rules relevant to each source signature, shared by every destination and transport.
    relevant: std::cell::RefCell<BTreeMap<(Family, u128), Relevant>>,
    /// Per family: the source pieces and their signatures (the same for every destination).
    src_pieces: std::cell::RefCell<BTreeMap<Family, SourcePieces>>,
    /// Rules visited by every evaluation so far (the work the grid costs).
    visits: std::cell::Cell<usize>,
}

type SourcePieces = std::rc::Rc<(Vec<Span>, Vec<u128>)>;

/// Per chain, the indices of the rules that can match a row's sources.
type Relevant = std::rc::Rc<Vec<Vec<u32>>>;

impl Auditor<'_> {
    fn grid(&mut self, dst: IpAddr, transport: Transport) -> &Grid {
        if !self.grids.contains_key(&(dst, transport)) {
            let g = self.build(dst, transport);
            self.grids.insert((dst, transport), g);
        }
        &self.grids[&(dst, transport)]
    }

    /// The source boundaries of the rules and the flows, per family (the same for every
    /// destination: computed once).
    fn source_pieces(&self, family: Family) -> SourcePieces {
        self.src_pieces
            .borrow_mut()
            .entry(family)
            .or_insert_with(|| {
                let mut cuts = Vec::new();
                self.rs.addr_cuts(family, true, &mut cuts);
                for f in self.flows {
                    for n in &f.sources {
                        let s = Span::net(n);
                        if s.family == family {
                            cuts.push(s.lo);
                            if s.hi < family.max() {
                                cuts.push(s.hi + 1);
                            }
                        }
                    }
                }
                cuts.sort_unstable();
                cuts.dedup();
                let srcs: Vec<Span> = pieces(0, family.max(), &cuts)
                    .into_iter()
                    .map(|(lo, hi)| Span { family, lo, hi })
                    .collect();
                let sigs = self.rs.source_signatures(family, &srcs);
                std::rc::Rc::new((srcs, sigs))
            })
            .clone()
    }

    /// The rules relevant to the rows of a signature (computed for every row of the family
    /// at once, the first time one is asked).
    fn relevant_for(&self, family: Family, sig: u128) -> Relevant {
        if !self.relevant.borrow().contains_key(&(family, 0)) {
            let shared = self.source_pieces(family);
            let rows = self.rs.relevant_rows(family, &shared.0, &shared.1);
            let mut map = self.relevant.borrow_mut();
            // (family, 0) marks the family as done (0 is also the signature of no set).
            map.entry((family, 0))
                .or_insert_with(|| std::rc::Rc::new(Vec::new()));
            for (k, v) in rows {
                map.insert((family, k), std::rc::Rc::new(v));
            }
        }
        self.relevant.borrow()[&(family, sig)].clone()
    }

    fn build(&self, dst: IpAddr, transport: Transport) -> Grid {
        let family = Family::of(&dst);
        let shared = self.source_pieces(family);
        let (srcs, sigs) = (&shared.0, &shared.1);
        let mut decisions: Vec<Decision> = Vec::new();
        let mut index: BTreeMap<Decision, u32> = BTreeMap::new();
        let mut intern = |d: Decision| -> u32 {
            if let Some(&i) = index.get(&d) {
                return i;
            }
            let i = decisions.len() as u32;
            decisions.push(d.clone());
            index.insert(d, i);
            i
        };
        let mut cells = Vec::new();
        let mut all_ports = Vec::new();
        let mut rows: std::collections::HashMap<u128, u32> = Default::default();
        let mut row = Vec::with_capacity(srcs.len());
        for (s, sig) in srcs.iter().zip(sigs) {
            if let Some(&r) = rows.get(sig) {
                row.push(r);
                continue;
            }
            rows.insert(*sig, cells.len() as u32);
            row.push(cells.len() as u32);
            let only = self.relevant_for(family, *sig);
            let mut cuts: Vec<u32> = Vec::new();
            self.rs.port_cuts_for(&only, s, &dst, &mut cuts);
            let mut cuts: Vec<u128> = cuts.into_iter().map(u128::from).collect();
            cuts.extend_from_slice(&self.port_cuts);
            cuts.sort_unstable();
            cuts.dedup();
            let ports: Vec<(u16, u16)> = pieces(1, 65535, &cuts)
                .into_iter()
                .map(|(a, b)| (a as u16, b as u16))
                .collect();
            let mut row = Vec::with_capacity(ports.len());
            let mut gates = PortGates::new(self.rs, &only);
            for &(lo, hi) in &ports {
                let only = gates.at(lo);
                let packet = |port: u16| Packet {
                    src: num_addr(family, s.lo),
                    dst,
                    transport,
                    sport: None,
                    dport: port,
                    hook: self.hook,
                    sides: Default::default(),
                };
                let eval = |port: u16| {
                    let (d, n) = self.rs.evaluate_counted(&packet(port), Some(&only));
                    self.visits.set(self.visits.get() + n);
                    d
                };
                let first = intern(eval(lo));
                let other = if self.parity && hi > lo {
                    intern(eval(lo + 1))
                } else {
                    first
                };
                // (even, odd)
                row.push(if lo % 2 == 0 {
                    (first, other)
                } else {
                    (other, first)
                });
            }
            cells.push(row);
            all_ports.push(ports);
        }
        Grid {
            shared: shared.clone(),
            row,
            ports: all_ports,
            cells,
            decisions,
        }
    }
}

/// The rules of a row narrowed to one piece of ports, piece after piece in ascending order: a
/// rule that tests the destination port is left out where its ports do not reach (10,000
/// rules on one port each leave one or none per piece, not 10,000 to walk).
struct PortGates<'a> {
    only: &'a [Vec<u32>],
    /// Sorted by port: (port, true to start or false to end a gate, gate index).
    events: Vec<(u32, bool, usize)>,
    next: usize,
    gates: Vec<(u32, u32)>,
    /// Per chain with gates: its rules without one, and the gated rules active now.
    always: BTreeMap<u32, Vec<u32>>,
    active: BTreeMap<u32, std::collections::BTreeSet<u32>>,
    lists: Vec<Vec<u32>>,
}

/// Fewer rules that test the port than this are walked as they are (narrowing costs more).
const GATES_MIN: usize = 64;

impl<'a> PortGates<'a> {
    fn new(rs: &Ruleset, only: &'a [Vec<u32>]) -> PortGates<'a> {
        let found = rs.dport_gates(only);
        let mut g = PortGates {
            only,
            events: Vec::new(),
            next: 0,
            gates: Vec::new(),
            always: BTreeMap::new(),
            active: BTreeMap::new(),
            lists: Vec::new(),
        };
        if found.len() < GATES_MIN {
            return g;
        }
        for (k, (c, i, ports)) in found.into_iter().enumerate() {
            for &(lo, hi) in ports.merged() {
                g.events.push((u32::from(lo), true, k));
                g.events.push((u32::from(hi) + 1, false, k));
            }
            g.gates.push((c, i));
            g.active.entry(c).or_default();
        }
        g.events.sort_unstable();
        for &c in g.active.keys() {
            let gated: std::collections::BTreeSet<u32> = g
                .gates
                .iter()
                .filter(|(gc, _)| *gc == c)
                .map(|(_, i)| *i)
                .collect();
            let rest = only[c as usize]
                .iter()
                .copied()
                .filter(|i| !gated.contains(i))
                .collect();
            g.always.insert(c, rest);
        }
        g
    }

    /// The rules per chain for the piece that starts at `lo` (pieces asked in ascending order).
    fn at(&mut self, lo: u16) -> Vec<&[u32]> {
        if self.gates.is_empty() {
            return self.only.iter().map(Vec::as_slice).collect();
        }
        while self.next < self.events.len() && self.events[self.next].0 <= u32::from(lo) {
            let (_, start, k) = self.events[self.next];
            let (c, i) = self.gates[k];
            let set = self.active.entry(c).or_default();
            if start {
                set.insert(i);
            } else {
                set.remove(&i);
            }
            self.next += 1;
        }
        self.lists = self
            .active
            .iter()
            .map(|(c, set)| {
                let mut v: Vec<u32> = self.always[c].iter().chain(set.iter()).copied().collect();
                v.sort_unstable();
                v
            })
            .collect();
        let mut out: Vec<&[u32]> = self.only.iter().map(Vec::as_slice).collect();
        for (list, c) in self.lists.iter().zip(self.active.keys()) {
            out[*c as usize] = list;
        }
        out
    }
}

/// `lo-hi` (or one port) with the parity word when a multi-port piece has only one parity.
fn ports_text(lo: u16, hi: u16, mask: Mask) -> String {
    let parity = match (mask.even, mask.odd) {
        (true, false) => Some(Parity::Even),
        (false, true) => Some(Parity::Odd),
        _ => None,
    };
    // Trim the ends to the parity so the range is a valid one.
    let (mut a, mut b) = (lo, hi);
    if let Some(p) = parity {
        if Parity::of(a) != p {
            a += 1;
        }
        if Parity::of(b) != p {
            b -= 1;
        }
    }
    match PortRange::new(a, b, if a == b { None } else { parity }) {
        Ok(r) => r.to_string(),
        Err(_) => format!("{lo}-{hi}"),
    }
}

/// The union of port pieces that may overlap (pieces of different sources): a sweep over their
/// ends, counting the even and the odd parts that cover each stretch.
fn union(list: Vec<(u16, u16, Mask)>) -> Vec<(u16, u16, Mask)> {
    sweep(list, Vec::new(), |a, _| a)
}

/// The ports of `a` that are not in `b`.
fn port_minus(a: &[(u16, u16, Mask)], b: &[(u16, u16, Mask)]) -> Vec<(u16, u16, Mask)> {
    canon(sweep(a.to_vec(), b.to_vec(), |a, b| a.minus(b)))
}

/// Two lists of port pieces that may overlap, swept together: per stretch between their ends,
/// the parts of each that cover it, combined by `f`.
fn sweep(
    a: Vec<(u16, u16, Mask)>,
    b: Vec<(u16, u16, Mask)>,
    f: impl Fn(Mask, Mask) -> Mask,
) -> Vec<(u16, u16, Mask)> {
    // (port, even, odd) counts, for a then b.
    let mut events: Vec<(u32, [i32; 4])> = Vec::with_capacity((a.len() + b.len()) * 2);
    for (k, list) in [a, b].into_iter().enumerate() {
        for (lo, hi, m) in list {
            let mut up = [0; 4];
            up[2 * k] = i32::from(m.even);
            up[2 * k + 1] = i32::from(m.odd);
            events.push((u32::from(lo), up));
            events.push((u32::from(hi) + 1, up.map(|x| -x)));
        }
    }
    events.sort_unstable();
    let mut out = Vec::new();
    let mut count = [0; 4];
    let mut i = 0;
    while i < events.len() {
        let at = events[i].0;
        while i < events.len() && events[i].0 == at {
            for (c, d) in count.iter_mut().zip(events[i].1) {
                *c += d;
            }
            i += 1;
        }
        if let Some(&(next, _)) = events.get(i) {
            let part = |k: usize| Mask {
                even: count[2 * k] > 0,
                odd: count[2 * k + 1] > 0,
            };
            let m = f(part(0), part(1));
            if m.any() && next > at {
                out.push((at as u16, (next - 1) as u16, m));
            }
        }
    }
    out
}

/// A set of ports in one form whatever pieces made it (so equal sets have equal texts): every
/// run of two or more consecutive ports as a range, and the ports left (each without a
/// neighbour) chained by parity when three or more (`5-9 odd`), else alone.
fn canon(list: Vec<(u16, u16, Mask)>) -> Vec<(u16, u16, Mask)> {
    // A block: (first, last, step) with step 1 (a run) or 2 (a chain of one parity).
    let mut runs: Vec<(u16, u16, u16)> = Vec::new();
    for (lo, hi, m) in union(list) {
        let Some((a, b, m)) = trim(lo, hi, m) else {
            continue;
        };
        let mut next = (a, b, if m == Mask::ALL { 1 } else { 2 });
        // Consecutive with the block before: the ports that touch join a run.
        if let Some(last) = runs.last_mut() {
            if u32::from(last.1) + 1 == u32::from(next.0) {
                let (l_step, n_step) = (last.2, next.2);
                let mut joint = (last.1, next.0);
                if l_step == 1 {
                    joint.0 = last.0;
                    runs.pop();
                } else if last.0 == last.1 {
                    runs.pop();
                } else {
                    last.1 -= 2;
                }
                if n_step == 1 || next.0 == next.1 {
                    joint.1 = next.1;
                    next = (0, 0, 0);
                } else {
                    next.0 += 2;
                }
                runs.push((joint.0, joint.1, 1));
            }
        }
        if next.2 != 0 {
            runs.push(next);
        }
    }
    // A single port and a chain are one chain when two apart (nothing between them).
    let mut out: Vec<(u16, u16, u16)> = Vec::new();
    for r in runs {
        let single = |x: &(u16, u16, u16)| x.0 == x.1;
        if let Some(last) = out.last_mut() {
            let chain = |x: &(u16, u16, u16)| x.2 == 2 || single(x);
            if chain(last) && chain(&r) && u32::from(last.1) + 2 == u32::from(r.0) {
                last.1 = r.1;
                last.2 = 2;
                continue;
            }
        }
        out.push(r);
    }
    // A chain of two ports reads better as the two ports (`21012, 21014`).
    out.into_iter()
        .flat_map(|(a, b, step)| match (step, b - a) {
            (1, _) | (_, 0) => vec![(a, b, Mask::ALL)],
            (_, 2) => vec![(a, a, Mask::ALL), (b, b, Mask::ALL)],
            _ => vec![(a, b, Mask::ALL.within(a, a))],
        })
        .collect()
}

/// A piece with its ends on ports of its parity (one port: whole); None when it holds none.
fn trim(lo: u16, hi: u16, m: Mask) -> Option<(u16, u16, Mask)> {
    if m == Mask::ALL {
        return Some((lo, hi, m));
    }
    let fits = |p: u16| m.within(p, p).any();
    let a = if fits(lo) { lo } else { lo.checked_add(1)? };
    let b = if fits(hi) { hi } else { hi.checked_sub(1)? };
    match a.cmp(&b) {
        std::cmp::Ordering::Greater => None,
        std::cmp::Ordering::Equal => Some((a, a, Mask::ALL)),
        std::cmp::Ordering::Less => Some((a, b, m)),
    }
}

/// Ports as one text: `1025-21001, 30000-30010`.
fn ports_list_text(list: &[(u16, u16, Mask)]) -> String {
    list.iter()
        .map(|&(lo, hi, m)| ports_text(lo, hi, m))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adjacent pieces with the same mask joined: (lo, hi, mask).
fn join(list: Vec<(u16, u16, Mask)>) -> Vec<(u16, u16, Mask)> {
    // A one-port piece is whole when its port's parity is in the mask.
    let mut list: Vec<(u16, u16, Mask)> = list
        .into_iter()
        .filter_map(|(lo, hi, m)| {
            let m = m.within(lo, hi);
            match (lo == hi, m.any()) {
                (_, false) => None,
                (true, true) => Some((lo, hi, Mask::ALL)),
                (false, true) => Some((lo, hi, m)),
            }
        })
        .collect();
    list.sort_by_key(|x| x.0);
    let mut out: Vec<(u16, u16, Mask)> = Vec::new();
    for (lo, hi, m) in list {
        if let Some(last) = out.last_mut() {
            let single_fits = |x: u16, m: Mask| m.within(x, x).any();
            if u32::from(last.1) + 1 == u32::from(lo)
                && (last.2 == m || (lo == hi && last.2 != Mask::ALL && single_fits(lo, last.2)))
            {
                last.1 = hi;
                continue;
            }
        }
        out.push((lo, hi, m));
    }
    out
}

fn rule_list(rules: &[String]) -> String {
    let mut uniq: Vec<&String> = Vec::new();
    for r in rules {
        if !uniq.contains(&r) {
            uniq.push(r);
        }
    }
    let shown: Vec<String> = uniq.iter().take(3).map(|r| clean(r)).collect();
    let mut text = shown.join("; ");
    if uniq.len() > 3 {
        text.push_str(&format!("; and {} more", uniq.len() - 3));
    }
    text
}

fn undecided_text(d: &Decision) -> String {
    match &d.outcome {
        Outcome::Undecided(what) if d.rule.is_empty() => format!("cannot decide: {what}"),
        Outcome::Undecided(what) => format!("cannot decide: {what} ({})", d.rule),
        _ => d.rule.clone(),
    }
}

/// The destinations a flow's rows are about: the pieces of a destination network that every rule
/// treats alike (cut at each boundary the rules draw inside it; a host is one piece), each as its
/// first address (what is evaluated), as the report names it, and as an interval.
fn destinations(cuts: &DestCuts, net: &ipnet::IpNet) -> Vec<(IpAddr, String, Span)> {
    let s = Span::net(net);
    let cuts = match s.family {
        Family::V4 => &cuts.0,
        Family::V6 => &cuts.1,
    };
    // Only the cuts inside the network.
    let from = cuts.partition_point(|&c| c <= s.lo);
    let to = cuts.partition_point(|&c| c <= s.hi);
    pieces(s.lo, s.hi, &cuts[from..to])
        .into_iter()
        .map(|(lo, hi)| {
            let piece = Span {
                family: s.family,
                lo,
                hi,
            };
            (num_addr(s.family, lo), super::span_text(&piece), piece)
        })
        .collect()
}

/// The destination boundaries the rules draw, IPv4 and IPv6, sorted.
type DestCuts = (Vec<u128>, Vec<u128>);

/// Audits `flows` (already selected for the scope) against the ruleset.
pub fn audit(rs: &Ruleset, flows: &[Flow], scope: &Scope) -> Report {
    let dcuts: DestCuts = {
        let cut = |family| {
            let mut v = Vec::new();
            rs.addr_cuts(family, false, &mut v);
            v.sort_unstable();
            v.dedup();
            v
        };
        (cut(Family::V4), cut(Family::V6))
    };
    let hook = match scope {
        Scope::Node(_) => Hook::Input,
        Scope::Network => Hook::Forward,
    };
    // The flows' boundaries cut every row; each rule's only the rows of sources it can match.
    let mut port_cuts: Vec<u32> = Vec::new();
    for f in flows {
        port_cuts.push(u32::from(f.ports.lo()));
        port_cuts.push(u32::from(f.ports.hi()) + 1);
    }
    let mut port_cuts: Vec<u128> = port_cuts.into_iter().map(u128::from).collect();
    port_cuts.sort_unstable();
    port_cuts.dedup();
    let mut a = Auditor {
        rs,
        hook,
        flows,
        port_cuts,
        parity: rs.has_parity(),
        grids: BTreeMap::new(),
        relevant: Default::default(),
        src_pieces: Default::default(),
        visits: Default::default(),
    };
    let mut rows = Vec::new();
    for (i, f) in flows.iter().enumerate() {
        for dnet in &f.destination {
            for (dst, text, _) in destinations(&dcuts, dnet) {
                let mut row = flow_row(&mut a, f, dst, text);
                row.flow = i;
                rows.push(row);
            }
        }
    }
    // Extra: what is accepted beyond the plan, on the scope's destinations.
    let dsts: Vec<(IpAddr, String, Span)> = match scope {
        Scope::Node(addresses) => addresses
            .iter()
            .map(|a| {
                let s = Span::net(&ipnet::IpNet::from(*a));
                (*a, a.to_string(), s)
            })
            .collect(),
        Scope::Network => {
            let mut v: Vec<(IpAddr, String, Span)> = flows
                .iter()
                .flat_map(|f| f.destination.iter())
                .flat_map(|n| destinations(&dcuts, n))
                .collect();
            v.sort();
            v.dedup();
            v
        }
    };
    let mut extra = Vec::new();
    for (dst, text, span) in dsts {
        for t in [Transport::Tcp, Transport::Udp] {
            extra.extend(extra_rows(&mut a, dst, span, &text, t));
        }
    }
    let openings = group(&extra);
    let count = |s: &str| rows.iter().filter(|r: &&FlowRow| r.status == s).count();
    let summary = Summary {
        format: rs.format.as_str(),
        flows: rows.len(),
        admitted: count("admitted"),
        partial: count("partial"),
        blocked: count("blocked"),
        undecided: count("undecided"),
        extra: openings.len(),
        undecided_openings: openings.iter().filter(|o| o.undecided()).count(),
        exact: rows.iter().all(|r| r.status == "admitted") && openings.is_empty(),
    };
    Report {
        format_version: crate::FORMAT_VERSION,
        subject: None,
        ruleset: None,
        summary,
        flows: rows,
        openings,
        extra,
    }
}

fn flow_row(a: &mut Auditor, f: &Flow, dst: IpAddr, address: String) -> FlowRow {
    let flow_spans: Vec<Span> = f.sources.iter().map(Span::net).collect();
    let want = Mask::of(f.ports.parity());
    let (flo, fhi) = (f.ports.lo(), f.ports.hi());
    let g = a.grid(dst, f.transport);
    let (mut accepted, mut dropped, mut undecided) = (Vec::new(), Vec::new(), Vec::new());
    let mut blocked: Vec<(u16, u16, Mask)> = Vec::new();
    let mut blocked_srcs: Vec<Span> = Vec::new();
    let mut any_ok = false;
    let mut all_srcs_blocked = true;
    // The pieces inside the flow's sources, found by binary search (the pieces are sorted and
    // cut at every source boundary of the flows), each once.
    let mut inside: Vec<usize> = Vec::new();
    for fs in flow_spans.iter().filter(|fs| fs.family == Family::of(&dst)) {
        let from = g.srcs().partition_point(|s| s.lo < fs.lo);
        let to = g.srcs().partition_point(|s| s.lo <= fs.hi);
        inside.extend(from..to);
    }
    inside.sort_unstable();
    inside.dedup();
    for si in inside {
        let s = &g.srcs()[si];
        let mut src_blocked = false;
        let mut src_ok = false;
        let r = g.row[si] as usize;
        for (pi, &(lo, hi)) in g.ports[r].iter().enumerate() {
            if hi < flo || lo > fhi {
                continue;
            }
            let (even, odd) = g.cell(r, pi);
            let m = want.within(lo, hi);
            let mut bad = Mask::NONE;
            for (d, part) in [(even, Mask::EVEN), (odd, Mask::ODD)] {
                if !(m.even && part.even || m.odd && part.odd) {
                    continue;
                }
                match d.outcome {
                    Outcome::Accept => {
                        accepted.push(d.clone());
                        src_ok = true;
                    }
                    Outcome::Drop => {
                        dropped.push(d.clone());
                        bad = bad.or(part);
                    }
                    Outcome::Undecided(_) => {
                        undecided.push(d.clone());
                        bad = bad.or(part);
                    }
                }
            }
            if bad.any() {
                blocked.push((lo, hi, bad));
                src_blocked = true;
            }
        }
        if src_blocked {
            blocked_srcs.push(*s);
        } else {
            all_srcs_blocked = false;
        }
        any_ok |= src_ok;
    }
    // Ports blocked for any source, joined into ranges.
    let blocked_text: Vec<String> = join(union(blocked))
        .into_iter()
        .map(|(l, h, m)| ports_text(l.max(flo), h.min(fhi), m))
        .collect();
    let texts = |v: &[Decision]| -> Vec<String> { v.iter().map(undecided_text).collect() };
    let (status, rule) = if !undecided.is_empty() {
        ("undecided", rule_list(&texts(&undecided)))
    } else if dropped.is_empty() {
        ("admitted", rule_list(&texts(&accepted)))
    } else if !any_ok {
        ("blocked", rule_list(&texts(&dropped)))
    } else {
        ("partial", rule_list(&texts(&dropped)))
    };
    dropped.extend(undecided);
    dropped.sort();
    dropped.dedup();
    accepted.sort();
    accepted.dedup();
    let blocked_sources = if status == "partial" && !all_srcs_blocked {
        join_spans(blocked_srcs)
            .iter()
            .flat_map(|s| s.cidrs())
            .map(|n| n.to_string())
            .collect()
    } else {
        Vec::new()
    };
    FlowRow {
        zone: f.source_zones.join(","),
        address,
        transport: f.transport.as_str(),
        ports: f.ports.to_string(),
        component: f.component.clone(),
        port_id: f.port_id_text(),
        status,
        blocked: if status == "admitted" {
            Vec::new()
        } else {
            blocked_text
        },
        blocked_sources,
        rule,
        flow: 0,
        accepted_by: accepted,
        blocked_by: dropped,
    }
}

fn join_spans(mut v: Vec<Span>) -> Vec<Span> {
    v.sort();
    let mut out: Vec<Span> = Vec::new();
    for s in v {
        if let Some(last) = out.last_mut() {
            if last.family == s.family && last.hi.checked_add(1) == Some(s.lo) {
                last.hi = s.hi;
                continue;
            }
        }
        out.push(s);
    }
    out
}

/// Port pieces with their parity bits (1 even, 2 odd): one opening's ports.
type PortsKey = Vec<(u16, u16, u8)>;

fn extra_rows(
    a: &mut Auditor,
    dst: IpAddr,
    dst_span: Span,
    address: &str,
    t: Transport,
) -> Vec<ExtraRow> {
    let family = Family::of(&dst);
    let covering: Vec<(Vec<Span>, PortRange)> = a
        .flows
        .iter()
        .filter(|f| f.transport == t && f.destination.iter().any(|n| n.contains(&dst)))
        .map(|f| (f.sources.iter().map(Span::net).collect(), f.ports))
        .collect();
    let g = a.grid(dst, t);
    // (rule, ports) -> source spans
    let mut found: Vec<((String, PortsKey), Vec<Span>)> = Vec::new();
    let mut slot: std::collections::HashMap<(String, PortsKey), usize> = Default::default();
    let mut decider: BTreeMap<String, Decision> = BTreeMap::new();
    // A row's openings depend on the row and on which planned flows cover the source: computed
    // once per such pair, not per source piece (a blocklist's 20,000 pieces share two rows).
    let mut done: std::collections::HashMap<(u32, Vec<usize>), Vec<usize>> = Default::default();
    for (si, s) in g.srcs().iter().enumerate() {
        if s.family != family {
            continue;
        }
        let r = g.row[si];
        let cov: Vec<usize> = covering
            .iter()
            .enumerate()
            .filter(|(_, (spans, _))| {
                spans
                    .iter()
                    .any(|fs| fs.family == family && fs.lo <= s.lo && s.hi <= fs.hi)
            })
            .map(|(i, _)| i)
            .collect();
        let key = (r, cov);
        if !done.contains_key(&key) {
            let slots = openings(g, r as usize, &key.1, &covering, &mut decider)
                .into_iter()
                .map(|k| {
                    *slot.entry(k.clone()).or_insert_with(|| {
                        found.push((k, Vec::new()));
                        found.len() - 1
                    })
                })
                .collect();
            done.insert(key.clone(), slots);
        }
        for &i in &done[&key] {
            found[i].1.push(*s);
        }
    }
    found.sort_by(|x, y| x.0.cmp(&y.0));
    let mut rows = Vec::new();
    for ((rule, ports), srcs) in found {
        for span in join_spans(srcs) {
            for net in span.cidrs() {
                for &(lo, hi, bits) in &ports {
                    let m = Mask {
                        even: bits & 1 != 0,
                        odd: bits & 2 != 0,
                    };
                    rows.push(ExtraRow {
                        source: net.to_string(),
                        address: address.to_string(),
                        transport: t.as_str(),
                        ports: ports_text(lo, hi, m),
                        rule: rule.clone(),
                        decided_by: decider[&rule].clone(),
                        piece: Piece {
                            src: Span::net(&net),
                            dst: dst_span,
                            lo,
                            hi,
                            parity: bits,
                        },
                    });
                }
            }
        }
    }
    let first_port = |p: &str| -> u32 {
        p.split(['-', ' '])
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    rows.sort_by(|x, y| {
        (addr_key(&x.source), first_port(&x.ports), &x.rule).cmp(&(
            addr_key(&y.source),
            first_port(&y.ports),
            &y.rule,
        ))
    });
    rows
}

/// The openings beyond the plan of one grid row for sources that the flows `cov` (indices into
/// `covering`) cover: (rule, ports) each.
fn openings(
    g: &Grid,
    r: usize,
    cov: &[usize],
    covering: &[(Vec<Span>, PortRange)],
    decider: &mut BTreeMap<String, Decision>,
) -> Vec<(String, PortsKey)> {
    let mut by_rule: BTreeMap<String, Vec<(u16, u16, Mask)>> = BTreeMap::new();
    for (pi, &(lo, hi)) in g.ports[r].iter().enumerate() {
        let (even, odd) = g.cell(r, pi);
        let mut covered = Mask::NONE;
        for &c in cov {
            let (_, range) = &covering[c];
            if range.lo() <= lo && hi <= range.hi() {
                covered = covered.or(Mask::of(range.parity()));
            }
        }
        for (d, part) in [(even, Mask::EVEN), (odd, Mask::ODD)] {
            let open = match d.outcome {
                Outcome::Accept => true,
                Outcome::Drop => false,
                Outcome::Undecided(_) => true,
            };
            let m = part.within(lo, hi).minus(covered);
            if open && m.any() {
                let rule = match d.outcome {
                    Outcome::Accept => clean(&d.rule),
                    _ => clean(&undecided_text(d)),
                };
                decider.entry(rule.clone()).or_insert_with(|| d.clone());
                by_rule.entry(rule).or_default().push((lo, hi, m));
            }
        }
    }
    by_rule
        .into_iter()
        .map(|(rule, list)| {
            // Even and odd parts of one piece that are both open join into the whole piece.
            let key: Vec<(u16, u16, u8)> = join(union(list))
                .into_iter()
                .map(|(l, h, m)| (l, h, u8::from(m.even) | (u8::from(m.odd) << 1)))
                .collect();
            (rule, key)
        })
        .collect()
}

fn mask_of(parity: u8) -> Mask {
    Mask {
        even: parity & 1 != 0,
        odd: parity & 2 != 0,
    }
}

/// Address intervals merged where they overlap or touch.
fn merged(spans: impl Iterator<Item = Span>) -> Vec<Span> {
    super::Addrs::new(spans.collect()).merged().to_vec()
}

/// Destinations merged, except that single addresses stay themselves (a node's addresses, each
/// its own, are not written as the CIDR two neighbours happen to make).
fn merged_dsts(spans: impl Iterator<Item = Span>) -> Vec<Span> {
    let (hosts, ranges): (Vec<Span>, Vec<Span>) = spans.partition(|s| s.lo == s.hi);
    let ranges = merged(ranges.into_iter());
    let inside = super::Addrs::new(ranges.clone());
    let mut out: Vec<Span> = hosts.into_iter().filter(|h| !inside.covers(h)).collect();
    out.extend(ranges);
    out.sort_unstable();
    out.dedup();
    out
}

fn span_texts(spans: &[Span]) -> Vec<String> {
    spans.iter().map(super::span_text).collect()
}

/// `within` (merged intervals) cut at every boundary of `spans`: each piece is wholly inside or
/// wholly outside each of `spans`.
fn elementary(within: &[Span], spans: impl Iterator<Item = Span>) -> Vec<Span> {
    let mut cuts: Vec<(Family, u128)> = Vec::new();
    for s in spans {
        cuts.push((s.family, s.lo));
        if s.hi < s.family.max() {
            cuts.push((s.family, s.hi + 1));
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for w in within {
        let from = cuts.partition_point(|&c| c <= (w.family, w.lo));
        let to = cuts.partition_point(|&c| c <= (w.family, w.hi));
        let inner: Vec<u128> = cuts[from..to].iter().map(|c| c.1).collect();
        out.extend(pieces(w.lo, w.hi, &inner).into_iter().map(|(lo, hi)| Span {
            family: w.family,
            lo,
            hi,
        }));
    }
    out
}

/// The openings in pieces grouped into one opening per deciding rule and transport, losing
/// nothing and adding nothing: its sources × addresses × ports, minus its `except`, are exactly
/// its pieces. Ordered as the rules are in the ruleset.
pub fn group(pieces: &[ExtraRow]) -> Vec<Opening> {
    let mut by: BTreeMap<(&str, &'static str), Vec<&ExtraRow>> = BTreeMap::new();
    for p in pieces {
        by.entry((p.rule.as_str(), p.transport))
            .or_default()
            .push(p);
    }
    let mut out: Vec<Opening> = by
        .into_iter()
        .map(|((rule, transport), list)| {
            let ps: Vec<&Piece> = list.iter().map(|e| &e.piece).collect();
            let ports = canon(ps.iter().map(|p| (p.lo, p.hi, mask_of(p.parity))).collect());
            let srcs = merged(ps.iter().map(|p| p.src));
            let dsts = merged_dsts(ps.iter().map(|p| p.dst));
            Opening {
                rule: rule.to_string(),
                transport,
                ports: ports_list_text(&ports),
                sources: span_texts(&srcs),
                addresses: span_texts(&dsts),
                except: holes(&ps, &srcs, &dsts, &ports),
                decided_by: list[0].decided_by.clone(),
            }
        })
        .collect();
    // The ruleset's order (a chain's policy after its rules), then undecided ones.
    let at = |o: &Opening| {
        o.decided_by.at.map_or((usize::MAX, usize::MAX), |(c, r)| {
            (c, r.unwrap_or(usize::MAX))
        })
    };
    out.sort_by(|x, y| (at(x), &x.rule, x.transport).cmp(&(at(y), &y.rule, y.transport)));
    out
}

/// Port pieces with their parities, as one set of ports.
type PortSet = Vec<(u16, u16, Mask)>;

/// What of `srcs` × `dsts` × `ports` the pieces do not cover, merged into a few parts.
fn holes(ps: &[&Piece], srcs: &[Span], dsts: &[Span], ports: &[(u16, u16, Mask)]) -> Vec<Except> {
    // (destination, missing ports) -> sources
    let mut missing: BTreeMap<(Span, String), (PortSet, Vec<Span>)> = BTreeMap::new();
    for d in elementary(dsts, ps.iter().map(|p| p.dst)) {
        let on: Vec<&&Piece> = ps
            .iter()
            .filter(|p| p.dst.family == d.family && p.dst.lo <= d.lo && d.hi <= p.dst.hi)
            .collect();
        // The ports of each source interval, then the intervals of each port set.
        let mut per_src: BTreeMap<Span, PortSet> = BTreeMap::new();
        for p in &on {
            per_src
                .entry(p.src)
                .or_default()
                .push((p.lo, p.hi, mask_of(p.parity)));
        }
        let mut by_ports: BTreeMap<String, (PortSet, Vec<Span>)> = BTreeMap::new();
        for (s, list) in per_src {
            let set = canon(list);
            by_ports
                .entry(ports_list_text(&set))
                .or_insert_with(|| (set, Vec::new()))
                .1
                .push(s);
        }
        let by_ports: Vec<(PortSet, super::Addrs)> = by_ports
            .into_values()
            .map(|(set, spans)| (set, super::Addrs::new(spans)))
            .collect();
        for e in elementary(srcs, on.iter().map(|p| p.src)) {
            let covered: PortSet = by_ports
                .iter()
                .filter(|(_, a)| a.covers(&e))
                .flat_map(|(set, _)| set.iter().copied())
                .collect();
            let hole = port_minus(ports, &canon(covered));
            if !hole.is_empty() {
                missing
                    .entry((d, ports_list_text(&hole)))
                    .or_insert_with(|| (hole, Vec::new()))
                    .1
                    .push(e);
            }
        }
    }
    // (sources, missing ports) -> destinations
    let mut parts: BTreeMap<(Vec<Span>, String), Vec<Span>> = BTreeMap::new();
    for ((d, text), (_, srcs)) in missing {
        parts
            .entry((merged(srcs.into_iter()), text))
            .or_default()
            .push(d);
    }
    let mut out: Vec<(Vec<Span>, Except)> = parts
        .into_iter()
        .map(|((srcs, ports), dsts)| {
            let dsts = merged_dsts(dsts.into_iter());
            (
                dsts.clone(),
                Except {
                    sources: span_texts(&srcs),
                    addresses: span_texts(&dsts),
                    ports,
                },
            )
        })
        .collect();
    out.sort_by(|x, y| x.0.cmp(&y.0));
    out.into_iter().map(|(_, e)| e).collect()
}

fn addr_key(cidr: &str) -> (u8, u128, String) {
    match cidr.parse::<ipnet::IpNet>() {
        Ok(n) => (
            u8::from(matches!(n, ipnet::IpNet::V6(_))),
            addr_num(&n.network()),
            cidr.to_string(),
        ),
        Err(_) => (2, 0, cidr.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether an address text of a report (an address, a CIDR, `first-last`) holds `a`.
    fn holds_addr(texts: &[String], a: IpAddr) -> bool {
        texts.iter().any(|t| match t.split_once('-') {
            Some((x, y)) => {
                let (x, y): (IpAddr, IpAddr) = (x.parse().unwrap(), y.parse().unwrap());
                Family::of(&x) == Family::of(&a)
                    && (addr_num(&x)..=addr_num(&y)).contains(&addr_num(&a))
            }
            None => match t.parse::<ipnet::IpNet>() {
                Ok(n) => n.contains(&a),
                Err(_) => t.parse::<IpAddr>().unwrap() == a,
            },
        })
    }

    /// Whether a ports text (`1025-21001, 30000-30010`, `8000-8040 even`) holds `port`.
    fn holds_port(text: &str, port: u16) -> bool {
        !text.is_empty()
            && text.split(", ").any(|one| {
                let (range, parity) = match one.split_once(' ') {
                    Some((r, p)) => (r, Some(p)),
                    None => (one, None),
                };
                let (lo, hi) = match range.split_once('-') {
                    Some((a, b)) => (a.parse::<u16>().unwrap(), b.parse::<u16>().unwrap()),
                    None => (range.parse().unwrap(), range.parse().unwrap()),
                };
                (lo..=hi).contains(&port)
                    && match parity {
                        Some("even") => port % 2 == 0,
                        Some("odd") => port % 2 == 1,
                        None => true,
                        Some(p) => panic!("parity {p}"),
                    }
            })
    }

    /// Whether an opening, as written, holds the packet: in its ranges and in none of its
    /// exceptions.
    fn opening_holds(o: &Opening, src: IpAddr, dst: IpAddr, port: u16) -> bool {
        holds_addr(&o.sources, src)
            && holds_addr(&o.addresses, dst)
            && holds_port(&o.ports, port)
            && !o.except.iter().any(|e| {
                holds_addr(&e.sources, src)
                    && holds_addr(&e.addresses, dst)
                    && holds_port(&e.ports, port)
            })
    }

    fn v4(n: u128) -> IpAddr {
        num_addr(Family::V4, n)
    }

    const SRC0: u128 = 10 << 24;
    const DST0: u128 = (10 << 24) + (1 << 16);

    /// Random pieces over a small space (32 sources, 8 destinations, ports 1-24, 3 rules, both
    /// transports), sources and destinations any interval, ports of either or both parities.
    fn piece_strategy() -> impl proptest::strategy::Strategy<Value = ExtraRow> {
        use proptest::prelude::*;
        (
            (0u128..32, 0u128..8),
            (0u128..8, 0u128..3),
            (1u16..=24, 0u16..6, 1u8..=3),
            (0usize..3, any::<bool>()),
        )
            .prop_filter("a piece holds a port", |(_, _, (lo, len, parity), _)| {
                trim(*lo, (*lo + *len).min(24), mask_of(*parity)).is_some()
            })
            .prop_map(|((s, sl), (d, dl), (lo, len, parity), (rule, udp))| {
                let src = Span {
                    family: Family::V4,
                    lo: SRC0 + s,
                    hi: SRC0 + (s + sl).min(31),
                };
                let dst = Span {
                    family: Family::V4,
                    lo: DST0 + d,
                    hi: DST0 + (d + dl).min(7),
                };
                let hi = (lo + len).min(24);
                ExtraRow {
                    source: super::super::span_text(&src),
                    address: super::super::span_text(&dst),
                    transport: if udp { "udp" } else { "tcp" },
                    ports: ports_text(lo, hi, mask_of(parity)),
                    rule: format!("rule {rule}"),
                    decided_by: Decision {
                        outcome: Outcome::Accept,
                        rule: format!("rule {rule}"),
                        at: Some((0, Some(rule))),
                    },
                    piece: Piece {
                        src,
                        dst,
                        lo,
                        hi,
                        parity,
                    },
                }
            })
    }

    fn piece_holds(p: &Piece, src: u128, dst: u128, port: u16) -> bool {
        p.src.lo <= src
            && src <= p.src.hi
            && p.dst.lo <= dst
            && dst <= p.dst.hi
            && p.lo <= port
            && port <= p.hi
            && mask_of(p.parity).within(port, port).any()
    }

    proptest::proptest! {
        /// Grouping loses nothing and adds nothing: a packet is in some piece exactly when it is
        /// in the one opening of that piece's rule and transport, as the opening is written.
        #[test]
        fn grouping_covers_exactly_the_pieces(
            pieces in proptest::collection::vec(piece_strategy(), 1..24)
        ) {
            let openings = group(&pieces);
            let keys: std::collections::BTreeSet<(&str, &str)> =
                pieces.iter().map(|p| (p.rule.as_str(), p.transport)).collect();
            proptest::prop_assert_eq!(openings.len(), keys.len(), "one opening per rule and transport");
            for o in &openings {
                let mine: Vec<&Piece> = pieces
                    .iter()
                    .filter(|p| p.rule == o.rule && p.transport == o.transport)
                    .map(|p| &p.piece)
                    .collect();
                for s in SRC0..SRC0 + 32 {
                    for d in DST0..DST0 + 8 {
                        for port in 1..=25u16 {
                            let want = mine.iter().any(|p| piece_holds(p, s, d, port));
                            let got = opening_holds(o, v4(s), v4(d), port);
                            proptest::prop_assert_eq!(
                                want, got, "{} {} {} in {:?}", v4(s), v4(d), port, o
                            );
                        }
                    }
                }
            }
        }

        /// One port set written one way, whatever pieces made it.
        #[test]
        fn equal_port_sets_have_equal_texts(
            list in proptest::collection::vec((1u16..=30, 0u16..5, 1u8..=3), 1..8)
        ) {
            let pieces: Vec<(u16, u16, Mask)> = list
                .iter()
                .map(|&(lo, len, p)| (lo, (lo + len).min(30), mask_of(p)))
                .collect();
            let text = ports_list_text(&canon(pieces.clone()));
            // The same set as single ports.
            let singles: Vec<(u16, u16, Mask)> = (1..=30u16)
                .filter(|&p| pieces.iter().any(|&(lo, hi, m)| lo <= p && p <= hi && m.within(p, p).any()))
                .map(|p| (p, p, Mask::ALL))
                .collect();
            proptest::prop_assert_eq!(&text, &ports_list_text(&canon(singles)));
            for p in 1..=31u16 {
                let want = pieces.iter().any(|&(lo, hi, m)| lo <= p && p <= hi && m.within(p, p).any());
                proptest::prop_assert_eq!(want, holds_port(&text, p), "{} in {}", p, text);
            }
        }
    }

    fn auditor(rs: &Ruleset) -> Auditor<'_> {
        Auditor {
            rs,
            hook: Hook::Input,
            flows: &[],
            port_cuts: Vec::new(),
            parity: rs.has_parity(),
            grids: BTreeMap::new(),
            relevant: Default::default(),
            src_pieces: Default::default(),
            visits: Default::default(),
        }
    }

    fn addr(i: u32) -> String {
        std::net::Ipv4Addr::from((11 << 24) + 2 * i).to_string()
    }

    /// `ip saddr @blocklist tcp dport N drop` for N in 1..=rules, on a set of `elems` addresses.
    fn rules_on_one_set(rules: usize, elems: u32) -> Ruleset {
        let mut items = vec![
            serde_json::json!({"table": {"family": "inet", "name": "f"}}),
            serde_json::json!({"chain": {"family": "inet", "table": "f", "name": "input",
                "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}),
            serde_json::json!({"set": {"family": "inet", "table": "f", "name": "blocklist",
                "type": "ipv4_addr", "elem": (0..elems).map(addr).collect::<Vec<_>>()}}),
        ];
        for n in 1..=rules {
            items.push(serde_json::json!({"rule": {"family": "inet", "table": "f",
                "chain": "input", "expr": [
                    {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                        "right": "@blocklist"}},
                    {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                        "right": n}},
                    {"drop": null}]}}));
        }
        let doc = serde_json::json!({ "nftables": items });
        super::super::read("t.json", &doc.to_string()).unwrap()
    }

    /// A blocklist of 20,000 addresses makes 40,001 source pieces and two rows (in the set, not
    /// in it): one grid row per piece was 40,001 rows.
    #[test]
    fn a_blocklist_makes_two_rows_not_one_per_address() {
        let rs = rules_on_one_set(1, 20_000);
        let mut a = auditor(&rs);
        let g = a.grid("10.0.0.1".parse().unwrap(), Transport::Tcp);
        assert_eq!(g.srcs().len(), 40_001);
        assert_eq!(g.cells.len(), 2);
    }

    /// 2,000 rules on one 2,000-element set (the 10,000 × 10,000 of issue 23, smaller): the
    /// grid holds two rows of about 4,000 port pieces (it held 4,001 × 4,001 cells), and each
    /// piece walks only the rules whose port it is (it walked up to 2,000).
    #[test]
    fn many_rules_on_one_set_make_a_small_grid_and_little_work() {
        let rs = rules_on_one_set(2_000, 2_000);
        let mut a = auditor(&rs);
        let g = a.grid("10.0.0.1".parse().unwrap(), Transport::Tcp);
        let cells: usize = g.cells.iter().map(Vec::len).sum();
        assert_eq!(g.cells.len(), 2);
        assert!(cells <= 2 * (2 * 2_000 + 2), "{cells}");
        // One rule at most per piece, and the chain's policy: a few visits per evaluation.
        assert!(a.visits.get() <= 2 * cells, "{}", a.visits.get());
        // The verdicts are those of a full walk.
        let g = a.grid("10.0.0.1".parse().unwrap(), Transport::Tcp);
        for (r, src) in [(g.row[1], 11u32 << 24), (g.row[2], (11 << 24) + 1)] {
            for (pi, &(lo, _)) in g.ports[r as usize].iter().enumerate() {
                let p = Packet {
                    src: std::net::Ipv4Addr::from(src).into(),
                    dst: "10.0.0.1".parse().unwrap(),
                    transport: Transport::Tcp,
                    sport: None,
                    dport: lo,
                    hook: Hook::Input,
                    sides: Default::default(),
                };
                assert_eq!(g.cell(r as usize, pi).0.outcome, rs.evaluate(&p).outcome);
            }
        }
    }
}
