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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub format: &'static str,
    pub flows: usize,
    pub admitted: usize,
    pub partial: usize,
    pub blocked: usize,
    pub undecided: usize,
    pub extra: usize,
    /// True when the ruleset admits exactly the plan (the exit code is 0).
    pub exact: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// [`crate::FORMAT_VERSION`].
    pub format_version: u32,
    pub summary: Summary,
    pub flows: Vec<FlowRow>,
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
    let mut events: Vec<(u32, i32, i32)> = Vec::with_capacity(list.len() * 2);
    for (lo, hi, m) in list {
        let (e, o) = (i32::from(m.even), i32::from(m.odd));
        events.push((u32::from(lo), e, o));
        events.push((u32::from(hi) + 1, -e, -o));
    }
    events.sort_unstable();
    let mut out = Vec::new();
    let (mut ce, mut co) = (0, 0);
    let mut i = 0;
    while i < events.len() {
        let at = events[i].0;
        while i < events.len() && events[i].0 == at {
            ce += events[i].1;
            co += events[i].2;
            i += 1;
        }
        if let Some(&(next, _, _)) = events.get(i) {
            let m = Mask {
                even: ce > 0,
                odd: co > 0,
            };
            if m.any() && next > at {
                out.push((at as u16, (next - 1) as u16, m));
            }
        }
    }
    out
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
/// first address (what is evaluated) and as the report names it.
fn destinations(cuts: &DestCuts, net: &ipnet::IpNet) -> Vec<(IpAddr, String)> {
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
            (num_addr(s.family, lo), super::span_text(&piece))
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
            for (dst, text) in destinations(&dcuts, dnet) {
                let mut row = flow_row(&mut a, f, dst, text);
                row.flow = i;
                rows.push(row);
            }
        }
    }
    // Extra: what is accepted beyond the plan, on the scope's destinations.
    let dsts: Vec<(IpAddr, String)> = match scope {
        Scope::Node(addresses) => addresses.iter().map(|a| (*a, a.to_string())).collect(),
        Scope::Network => {
            let mut v: Vec<(IpAddr, String)> = flows
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
    for (dst, text) in dsts {
        for t in [Transport::Tcp, Transport::Udp] {
            extra.extend(extra_rows(&mut a, dst, &text, t));
        }
    }
    let count = |s: &str| rows.iter().filter(|r: &&FlowRow| r.status == s).count();
    let summary = Summary {
        format: rs.format.as_str(),
        flows: rows.len(),
        admitted: count("admitted"),
        partial: count("partial"),
        blocked: count("blocked"),
        undecided: count("undecided"),
        extra: extra.len(),
        exact: rows.iter().all(|r| r.status == "admitted") && extra.is_empty(),
    };
    Report {
        format_version: crate::FORMAT_VERSION,
        summary,
        flows: rows,
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

fn extra_rows(a: &mut Auditor, dst: IpAddr, address: &str, t: Transport) -> Vec<ExtraRow> {
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
