//! `nftables`: an `nft -f` file with its own `inet scc_ports` table, replaced atomically; also the
//! host-policy header that iptables shares (policy and the warning about what it drops).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use ipnet::IpNet;

use super::text::{self, comment_text, segments, span, split_families};
use super::{Generator, Mode, Policy, Request};
use crate::catalog::{Role, Transport};
use crate::flows::{Flow, net_text};
use crate::range::{Parity, PortRange};

pub struct Nftables;

/// The table every generated file owns; nothing else in the ruleset is touched.
pub const TABLE: &str = "scc_ports";

/// Up to this many ports a parity range is written as the set of its ports (readable); above it,
/// as the range plus a parity test on the port's lowest bit (compact). Both are exact.
const PARITY_SET_MAX: u32 = 32;

/// nft keeps at most 128 bytes of a rule comment.
const COMMENT_MAX: usize = 128;

impl Generator for Nftables {
    fn name(&self) -> &'static str {
        "nftables"
    }

    fn about(&self) -> &'static str {
        "nft -f file: own inet table replaced atomically; complete host policy or forward rules"
    }

    fn generate(&self, request: &Request) -> String {
        let mut out = String::new();
        for line in header(request, self.name()) {
            let _ = writeln!(out, "# {line}");
        }
        out.push_str(LOAD_NOTE);
        let _ = writeln!(out, "table inet {TABLE} {{}}");
        let _ = writeln!(out, "delete table inet {TABLE}");
        out.push('\n');
        let _ = writeln!(out, "table inet {TABLE} {{");
        let plan = SetPlan::new(&request.flows);
        for set in &plan.sets {
            set.write(&mut out);
        }
        let forward = request.mode == Mode::Network;
        let (chain, hook) = if forward {
            ("forward", "forward")
        } else {
            ("input", "input")
        };
        let policy = match request.policy {
            Policy::Drop => "drop",
            Policy::Accept => "accept",
        };
        let _ = writeln!(out, "\tchain {chain} {{");
        let _ = writeln!(
            out,
            "\t\ttype filter hook {hook} priority filter; policy {policy};"
        );
        if request.policy == Policy::Drop {
            out.push_str("\t\tct state established,related accept\n");
            out.push_str("\t\tct state invalid drop\n");
            if !forward {
                out.push_str(HOST_ESSENTIALS);
            }
        } else {
            out.push_str(ACCEPT_NOTE);
        }
        if request.flows.is_empty() {
            out.push_str("\t\t# no Contact Center flows for this scope\n");
        }
        for line in &plan.rules {
            out.push_str(line);
        }
        out.push_str("\t}\n}\n");
        out
    }
}

/// The commands that admit one flow in a policy of ours already loaded (`table inet scc_ports`,
/// chain `input`, or `forward` for `--network`): one `nft 'add rule …'` per address family, with
/// anonymous sets of the flow's sources, destinations and port spans (an even/odd range is its
/// ports). What the report's fix gives: each line runs on its own in a shell, whether or not the
/// policy's named sets still hold the flow's source group. The comment is the flow's label, made
/// safe ([`comment_text`]: no quote can close the shell's or nft's quoting).
pub fn fix_commands(flow: &Flow, mode: &Mode) -> String {
    let chain = if *mode == Mode::Network {
        "forward"
    } else {
        "input"
    };
    let (s4, s6) = split_families(&flow.sources);
    let (d4, d6) = split_families(&flow.destination);
    let list = |items: Vec<String>| format!("{{ {} }}", items.join(", "));
    let ports = list(segments(flow.ports).into_iter().map(span).collect());
    let proto = flow.transport.as_str();
    let label = comment_text(&flow.label(), 128);
    let mut out = String::new();
    let families: [(Family, Vec<String>, Vec<String>); 2] = [
        (
            Family::V4,
            s4.iter().map(|n| net_text(&IpNet::V4(*n))).collect(),
            d4.iter().map(|n| net_text(&IpNet::V4(*n))).collect(),
        ),
        (
            Family::V6,
            s6.iter().map(|n| net_text(&IpNet::V6(*n))).collect(),
            d6.iter().map(|n| net_text(&IpNet::V6(*n))).collect(),
        ),
    ];
    for (family, src, dst) in families {
        if src.is_empty() || dst.is_empty() {
            continue;
        }
        let key = family.keyword();
        let _ = writeln!(
            out,
            "nft 'add rule inet {TABLE} {chain} {key} saddr {} {key} daddr {} {proto} dport {ports} accept comment \"{label}\"'",
            list(src),
            list(dst)
        );
    }
    out
}

const LOAD_NOTE: &str = "\
# One transaction: the first line creates the table if it is missing, so that the delete cannot
# fail, and the definition below recreates it. Only this table changes; never `flush ruleset`.

";

/// Inbound basics of a host policy: loopback, and the ICMP a host needs to work (path MTU
/// discovery needs destination-unreachable/fragmentation-needed and packet-too-big; IPv6 needs
/// neighbour discovery and router advertisements).
const HOST_ESSENTIALS: &str = "\
\t\tiif \"lo\" accept
\t\t# destination-unreachable includes fragmentation-needed (path MTU discovery)
\t\ticmp type { echo-request, destination-unreachable, time-exceeded, parameter-problem } accept
\t\ticmpv6 type { echo-request, destination-unreachable, packet-too-big, time-exceeded, parameter-problem, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept
";

const ACCEPT_NOTE: &str = "\
\t\t# --policy accept: only the allow rules. nftables runs every base chain of a hook, so an
\t\t# accept here does not override a drop in another table: to merge, copy the sets above into
\t\t# your own table and these lines into its input (or forward) chain.
";

/// The address family of a set or match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Family {
    V4,
    V6,
}

impl Family {
    /// The match keyword: `ip saddr`, `ip6 daddr`.
    fn keyword(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn addr_type(self) -> &'static str {
        match self {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }
}

/// One element of a named set: an address or network, in a concatenated set with a port span,
/// and the `component.port-id` of every flow it carries (its comment).
#[derive(Debug, Clone)]
struct Element {
    net: IpNet,
    ports: Option<(u16, u16)>,
    labels: Vec<String>,
}

/// A named set, written before the chain that uses it.
#[derive(Debug)]
struct NamedSet {
    name: String,
    /// One line of `#` comment (safe text) saying what the set holds.
    about: String,
    /// `ipv4_addr`, `ipv4_addr . inet_service`, ….
    kind: String,
    elements: Vec<Element>,
}

impl NamedSet {
    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "\t# {}", self.about);
        let _ = writeln!(out, "\tset {} {{", self.name);
        let _ = writeln!(out, "\t\ttype {}; flags interval;", self.kind);
        out.push_str("\t\telements = {\n");
        for e in &self.elements {
            out.push_str("\t\t\t");
            out.push_str(&net_text(&e.net));
            if let Some(seg) = e.ports {
                out.push_str(" . ");
                out.push_str(&text::span(seg));
            }
            if !e.labels.is_empty() {
                let _ = write!(
                    out,
                    " comment \"{}\"",
                    comment_text(&e.labels.join("+"), COMMENT_MAX)
                );
            }
            out.push_str(",\n");
        }
        out.push_str("\t\t}\n\t}\n\n");
    }
}

/// Flows with the same source networks: one source set, one rule per family and transport.
struct SourceGroup<'f> {
    nets: &'f [IpNet],
    roles: Vec<Role>,
    zones: Vec<String>,
    flows: Vec<&'f Flow>,
}

/// Source lists numbered without hashing them: a system of 200 sites has source lists of 200
/// networks, and hashing one per flow made generation quadratic. Candidates are found by role
/// (real flows have one source list per role), then compared by address (shared lists) or, failing
/// that, element by element.
#[derive(Default)]
pub(super) struct SourceLists<'f> {
    by_role: HashMap<Role, Vec<(&'f [IpNet], usize)>>,
    count: usize,
}

impl<'f> SourceLists<'f> {
    /// The number of the flow's source list (0, 1, … in order of first appearance), and whether
    /// it is the first flow with that list.
    pub(super) fn number(&mut self, f: &'f Flow) -> (usize, bool) {
        let sources: &'f [IpNet] = &f.sources[..];
        let candidates = self.by_role.entry(f.role).or_default();
        for &(list, n) in candidates.iter() {
            if std::ptr::eq(list, sources) || list == sources {
                return (n, false);
            }
        }
        candidates.push((sources, self.count));
        self.count += 1;
        (self.count - 1, true)
    }
}

/// A port span with the label of the flow it comes from.
type Span = (u16, u16, String);

/// The sets and rules of a policy: flows grouped by their sources; per group, family and
/// transport one concatenated `address . port` set and one rule; parity ranges too wide to list
/// (more than [`PARITY_SET_MAX`] ports) one rule per distinct range with a destination set.
struct SetPlan {
    sets: Vec<NamedSet>,
    /// Chain lines, each ending in a newline.
    rules: Vec<String>,
}

/// Up to this many zone names in a source set's comment; the rest are counted.
const ZONES_SHOWN: usize = 6;

impl SetPlan {
    fn new(flows: &[Flow]) -> SetPlan {
        let mut groups: Vec<SourceGroup> = Vec::new();
        let mut lists = SourceLists::default();
        for f in flows {
            let (i, new) = lists.number(f);
            if new {
                groups.push(SourceGroup {
                    nets: &f.sources[..],
                    roles: Vec::new(),
                    zones: Vec::new(),
                    flows: Vec::new(),
                });
            }
            let g = &mut groups[i];
            if !g.roles.contains(&f.role) {
                g.roles.push(f.role);
                for z in f.source_zones.iter() {
                    if !g.zones.contains(z) {
                        g.zones.push(z.clone());
                    }
                }
            }
            g.flows.push(f);
        }
        let mut plan = SetPlan {
            sets: Vec::new(),
            rules: Vec::new(),
        };
        let mut names = HashSet::new();
        for g in &groups {
            let roles: Vec<&str> = g.roles.iter().map(|r| r.as_str()).collect();
            let base = roles.join("_");
            let mut name = base.clone();
            let mut n = 1;
            while !names.insert(name.clone()) {
                n += 1;
                name = format!("{base}_{n}");
            }
            plan.group(g, &name, &roles.join(", "));
        }
        plan
    }

    /// The sets and rules of one source group; `roles` in words for the comments.
    fn group(&mut self, g: &SourceGroup, name: &str, roles: &str) {
        let (s4, s6) = split_families(g.nets);
        let sources: [(Family, Vec<IpNet>); 2] = [
            (Family::V4, s4.into_iter().map(IpNet::V4).collect()),
            (Family::V6, s6.into_iter().map(IpNet::V6).collect()),
        ];
        let mut admitted = vec![false; g.flows.len()];
        let dests: Vec<(Vec<IpNet>, Vec<IpNet>)> = g
            .flows
            .iter()
            .map(|f| {
                let (d4, d6) = split_families(&f.destination);
                (
                    d4.into_iter().map(IpNet::V4).collect(),
                    d6.into_iter().map(IpNet::V6).collect(),
                )
            })
            .collect();
        let zones = {
            let shown: Vec<String> = g
                .zones
                .iter()
                .take(ZONES_SHOWN)
                .map(|z| text::one_line(z))
                .collect();
            let more = g.zones.len().saturating_sub(ZONES_SHOWN);
            match (shown.is_empty(), more) {
                (true, _) => String::new(),
                (false, 0) => format!(" (zones {})", shown.join(", ")),
                (false, m) => format!(" (zones {} and {m} more)", shown.join(", ")),
            }
        };
        for (family, src) in &sources {
            if src.is_empty() {
                continue;
            }
            let fam = family.suffix();
            let key = family.keyword();
            let saddr = if let [one] = src.as_slice() {
                net_text(one)
            } else {
                let set = format!("from_{name}_{fam}");
                self.sets.push(NamedSet {
                    about: format!("{set}: the networks of role {}{zones}", roles),
                    name: set.clone(),
                    kind: family.addr_type().to_string(),
                    elements: src
                        .iter()
                        .map(|&net| Element {
                            net,
                            ports: None,
                            labels: Vec::new(),
                        })
                        .collect(),
                });
                format!("@{set}")
            };
            for transport in [Transport::Tcp, Transport::Udp] {
                let proto = transport.as_str();
                // Concatenated elements per destination, in order of first appearance.
                let mut by_dest: Vec<(IpNet, Vec<Span>)> = Vec::new();
                let mut dest_index: HashMap<IpNet, usize> = HashMap::new();
                // Wide parity ranges: (lo, hi, parity bit) -> destinations with labels.
                let mut wide: Vec<(PortRange, Vec<(IpNet, String)>)> = Vec::new();
                let mut wide_index: HashMap<(u16, u16, u8), usize> = HashMap::new();
                for (i, f) in g.flows.iter().enumerate() {
                    if f.transport != transport {
                        continue;
                    }
                    let d = match family {
                        Family::V4 => &dests[i].0,
                        Family::V6 => &dests[i].1,
                    };
                    if d.is_empty() {
                        continue;
                    }
                    admitted[i] = true;
                    let label = f.label();
                    match f.ports.parity() {
                        Some(parity)
                            if !f.ports.is_single() && f.ports.count() > PARITY_SET_MAX =>
                        {
                            let bit = match parity {
                                Parity::Even => 0,
                                Parity::Odd => 1,
                            };
                            let k = (f.ports.lo(), f.ports.hi(), bit);
                            let w = *wide_index.entry(k).or_insert_with(|| {
                                wide.push((f.ports, Vec::new()));
                                wide.len() - 1
                            });
                            for &net in d {
                                wide[w].1.push((net, label.clone()));
                            }
                        }
                        _ => {
                            for &net in d {
                                let j = *dest_index.entry(net).or_insert_with(|| {
                                    by_dest.push((net, Vec::new()));
                                    by_dest.len() - 1
                                });
                                for (lo, hi) in segments(f.ports) {
                                    by_dest[j].1.push((lo, hi, label.clone()));
                                }
                            }
                        }
                    }
                }
                if !by_dest.is_empty() {
                    let items: Vec<(IpNet, Vec<Element>)> = by_dest
                        .into_iter()
                        .map(|(net, spans)| {
                            let elements = disjoint(spans)
                                .into_iter()
                                .map(|(lo, hi, labels)| Element {
                                    net,
                                    ports: Some((lo, hi)),
                                    labels,
                                })
                                .collect();
                            (net, elements)
                        })
                        .collect();
                    for (b, bin) in bins(items).into_iter().enumerate() {
                        let set = numbered(&format!("{name}_{proto}_{fam}"), b);
                        let mut elements: Vec<Element> =
                            bin.into_iter().flat_map(|(_, e)| e).collect();
                        elements.sort_by_key(|e| (e.net, e.ports));
                        self.sets.push(NamedSet {
                            about: format!(
                                "{set}: what role {} reaches over {proto}: destination . port, each element naming its component and port id",
                                roles
                            ),
                            name: set.clone(),
                            kind: format!("{} . inet_service", family.addr_type()),
                            elements,
                        });
                        self.rules.push(format!(
                            "\t\t{key} saddr {saddr} {key} daddr . {proto} dport @{set} accept comment \"{}\"\n",
                            comment_text(&format!("from:{}/{proto}", name.replace('_', "+")), COMMENT_MAX)
                        ));
                    }
                }
                for (range, list) in wide {
                    // One element per destination, its labels merged.
                    let mut merged: Vec<(IpNet, Vec<Element>)> = Vec::new();
                    let mut at: HashMap<IpNet, usize> = HashMap::new();
                    for (net, label) in list {
                        let j = *at.entry(net).or_insert_with(|| {
                            merged.push((
                                net,
                                vec![Element {
                                    net,
                                    ports: None,
                                    labels: Vec::new(),
                                }],
                            ));
                            merged.len() - 1
                        });
                        let labels = &mut merged[j].1[0].labels;
                        if !labels.contains(&label) {
                            labels.push(label);
                        }
                    }
                    let parity = if range.lo() % 2 == 0 { "even" } else { "odd" };
                    for (b, bin) in bins(merged).into_iter().enumerate() {
                        let set = numbered(
                            &format!(
                                "{name}_{proto}_{}_{}_{parity}_{fam}",
                                range.lo(),
                                range.hi()
                            ),
                            b,
                        );
                        let mut elements: Vec<Element> =
                            bin.into_iter().flat_map(|(_, e)| e).collect();
                        elements.sort_by_key(|e| (e.net, e.ports));
                        self.sets.push(NamedSet {
                            about: format!(
                                "{set}: the destinations role {} reaches on {proto} {range}",
                                roles
                            ),
                            name: set.clone(),
                            kind: family.addr_type().to_string(),
                            elements,
                        });
                        self.rules.push(format!(
                            "\t\t{key} saddr {saddr} {key} daddr @{set} {proto} dport {} accept comment \"{}\"\n",
                            port_match(transport, range),
                            comment_text(
                                &format!(
                                    "from:{}/{proto}/{}-{}-{parity}",
                                    name.replace('_', "+"),
                                    range.lo(),
                                    range.hi()
                                ),
                                COMMENT_MAX
                            )
                        ));
                    }
                }
            }
        }
        for (f, admitted) in g.flows.iter().zip(admitted) {
            if !admitted {
                self.rules.push(format!(
                    "\t\t# {}: no source of the destination's address family, nothing to admit\n",
                    comment_text(&f.label(), COMMENT_MAX)
                ));
            }
        }
    }
}

/// `base` for the first set of a kind, `base_2`, `base_3` … for the sets that hold what would
/// overlap in the first.
fn numbered(base: &str, bin: usize) -> String {
    if bin == 0 {
        base.to_string()
    } else {
        format!("{base}_{}", bin + 1)
    }
}

/// Port spans of one destination made disjoint (nft rejects overlapping elements in an interval
/// set), each piece with the labels of every span covering it; pieces with the same labels that
/// touch are joined. Sorted by port.
fn disjoint(spans: Vec<(u16, u16, String)>) -> Vec<(u16, u16, Vec<String>)> {
    let mut bounds: Vec<u32> = spans
        .iter()
        .flat_map(|&(lo, hi, _)| [u32::from(lo), u32::from(hi) + 1])
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    let mut out: Vec<(u16, u16, Vec<String>)> = Vec::new();
    for w in bounds.windows(2) {
        let (lo, hi) = (w[0], w[1] - 1);
        let mut labels: Vec<String> = Vec::new();
        for (a, b, label) in &spans {
            if u32::from(*a) <= lo && hi <= u32::from(*b) && !labels.contains(label) {
                labels.push(label.clone());
            }
        }
        if labels.is_empty() {
            continue;
        }
        // Bounds come from u16 ports, so lo and hi fit.
        let (lo, hi) = (lo as u16, hi as u16);
        match out.last_mut() {
            Some(last) if u32::from(last.1) + 1 == u32::from(lo) && last.2 == labels => last.1 = hi,
            _ => out.push((lo, hi, labels)),
        }
    }
    out
}

/// The first and last address of a network as numbers, to compare networks of one family.
fn bounds(net: &IpNet) -> (u128, u128) {
    match net {
        IpNet::V4(n) => (
            u128::from(u32::from(n.network())),
            u128::from(u32::from(n.broadcast())),
        ),
        IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
    }
}

/// Spreads items over as few sets as needed so that no two networks in one set overlap (two
/// CIDR networks overlap only when one contains the other; nft rejects overlapping elements).
/// Distinct networks that never overlap — every host address, every disjoint zone — stay in one
/// set, in their order.
fn bins<T>(items: Vec<(IpNet, T)>) -> Vec<Vec<(IpNet, T)>> {
    let mut sorted: Vec<(u128, u128)> = items.iter().map(|(n, _)| bounds(n)).collect();
    sorted.sort_unstable();
    let nested = sorted.windows(2).any(|w| w[1].0 <= w[0].1);
    if !nested {
        return vec![items];
    }
    let mut out: Vec<Vec<(IpNet, T)>> = Vec::new();
    for (net, item) in items {
        let (lo, hi) = bounds(&net);
        let free = out.iter().position(|bin| {
            bin.iter().all(|(other, _)| {
                let (a, b) = bounds(other);
                hi < a || b < lo
            })
        });
        match free {
            Some(i) => out[i].push((net, item)),
            None => out.push(vec![(net, item)]),
        }
    }
    out
}

/// The port part of a match after `tcp dport ` / `udp dport `: exact for parity ranges.
fn port_match(transport: Transport, ports: PortRange) -> String {
    match ports.parity() {
        Some(parity) if !ports.is_single() => {
            if ports.count() <= PARITY_SET_MAX {
                let list: Vec<String> = ports.ports().map(|p| p.to_string()).collect();
                format!("{{ {} }}", list.join(", "))
            } else {
                let bit = match parity {
                    Parity::Even => 0,
                    Parity::Odd => 1,
                };
                format!(
                    "{}-{} {} dport & 1 == {bit}",
                    ports.lo(),
                    ports.hi(),
                    transport.as_str()
                )
            }
        }
        _ => ports.span_text(),
    }
}

/// Whether the plan admits SSH (tcp 22) to this host, so the header need not warn it is dropped.
fn ssh_admitted(request: &Request) -> bool {
    request
        .flows
        .iter()
        .any(|f| f.transport == Transport::Tcp && f.ports.contains(22))
}

/// The header lines (without the comment marker) of a generated file: system, scope, policy, and
/// the command that writes the file again.
pub(super) fn header(request: &Request, target: &str) -> Vec<String> {
    let dep = request.deployment;
    let policy = match request.policy {
        Policy::Drop => "drop (complete policy: everything not admitted below is dropped)",
        Policy::Accept => "accept (only the allow rules, to merge into an existing policy)",
    };
    let mut lines = vec![
        format!(
            "scc-ports {target} rules for system \"{}\"",
            text::one_line(&dep.name)
        ),
        format!("Scope: {}", text::one_line(&text::scope(request))),
        format!("Policy: {policy}"),
        format!(
            "Generated by: {}",
            text::one_line(&text::command(request, target))
        ),
        format!(
            "{} flows; each rule's comment names its component and port id",
            request.flows.len()
        ),
    ];
    if request.mode == Mode::Workstations {
        // Matching the destination zone keeps the rules exact and lets one file serve the PCs of
        // every client zone (a PC's own address is inside its zone's networks).
        lines.push(
            "Each rule matches its client zone's networks as destination: one file serves every zone."
                .into(),
        );
    }
    if request.policy == Policy::Drop {
        let warning: [&str; 2] = match request.mode {
            Mode::Network => [
                "WARNING: every other forwarded connection is dropped; add the site's other",
                "forwarded traffic before loading (traffic to the firewall itself is not touched).",
            ],
            // SSH modelled as a site service ([services.ssh]) is admitted like any flow.
            _ if ssh_admitted(request) => [
                "WARNING: only the flows below are admitted inbound (SSH among them, from its",
                "planned sources); other services (RDP and the rest) are dropped unless added.",
            ],
            _ => [
                "WARNING: only Contact Center flows are admitted inbound; remote administration",
                "(SSH, RDP) and other services are dropped unless you add them before loading.",
            ],
        };
        lines.extend(warning.map(String::from));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_is_exact() {
        let even = PortRange::new(5004, 5030, Some(Parity::Even)).unwrap();
        assert_eq!(
            port_match(Transport::Udp, even),
            "{ 5004, 5006, 5008, 5010, 5012, 5014, 5016, 5018, 5020, 5022, 5024, 5026, 5028, 5030 }"
        );
        let odd = PortRange::new(7001, 7201, Some(Parity::Odd)).unwrap();
        assert_eq!(
            port_match(Transport::Tcp, odd),
            "7001-7201 tcp dport & 1 == 1"
        );
        let plain = PortRange::new(8000, 8400, None).unwrap();
        assert_eq!(port_match(Transport::Udp, plain), "8000-8400");
    }

    #[test]
    fn comments_are_safe() {
        assert_eq!(comment_text("a\"b c\n.d", 128), "a_b_c_.d");
        assert_eq!(comment_text(&"x".repeat(300), 128).len(), 128);
    }

    #[test]
    fn families_split_and_aggregate() {
        let nets: Vec<IpNet> = ["10.0.0.0/8", "2001:db8::/32", "10.1.0.0/16", "10.0.0.1/8"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let (v4, v6) = split_families(&nets);
        assert_eq!(v4.len(), 1);
        assert_eq!(v6.len(), 1);
    }

    #[test]
    fn overlapping_port_spans_become_disjoint_pieces() {
        let spans = vec![
            (80, 90, "a.x".to_string()),
            (85, 95, "b.y".to_string()),
            (85, 95, "b.y".to_string()),
            (100, 100, "c.z".to_string()),
            (101, 101, "c.z".to_string()),
        ];
        let pieces = disjoint(spans);
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pieces,
            vec![
                (80, 84, l(&["a.x"])),
                (85, 90, l(&["a.x", "b.y"])),
                (91, 95, l(&["b.y"])),
                (100, 101, l(&["c.z"])),
            ]
        );
        assert_eq!(
            disjoint(vec![(65535, 65535, "p".into())]),
            vec![(65535, 65535, l(&["p"]))]
        );
    }

    #[test]
    fn nested_networks_go_to_separate_sets() {
        let n = |s: &str| -> IpNet { s.parse().unwrap() };
        let flat = bins(vec![
            (n("10.0.0.1/32"), 1),
            (n("10.0.0.2/32"), 2),
            (n("10.1.0.0/16"), 3),
        ]);
        assert_eq!(flat.len(), 1);
        assert_eq!(flat[0].iter().map(|x| x.1).collect::<Vec<_>>(), [1, 2, 3]);
        let nested = bins(vec![
            (n("10.0.0.0/8"), 1),
            (n("10.1.0.0/16"), 2),
            (n("10.1.2.3/32"), 3),
            (n("192.168.0.0/24"), 4),
        ]);
        let ids: Vec<Vec<i32>> = nested
            .iter()
            .map(|b| b.iter().map(|x| x.1).collect())
            .collect();
        assert_eq!(ids, vec![vec![1, 4], vec![2], vec![3]]);
    }
}
