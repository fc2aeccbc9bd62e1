//! `iptables`: `iptables-restore` input for the filter table, the flows in their own chain
//! (`SCC-PORTS` jumped to from INPUT, `SCC-PORTS-FWD` from FORWARD); IPv4 only.

use std::fmt::Write as _;

use std::collections::HashMap;

use ipnet::IpNet;

use super::nftables::header;
use super::text::{comment_text, segments, split_families};
use super::{Generator, Mode, Policy, Request};
use crate::catalog::Transport;
use crate::flows::Flow;

pub struct Iptables;

/// The chain of host firewalls (node, workstations).
pub const CHAIN: &str = "SCC-PORTS";
/// The chain of a firewall between zones.
pub const CHAIN_FORWARD: &str = "SCC-PORTS-FWD";

/// The rules of a policy of ours (`-A SCC-PORTS …` lines of `iptables-restore` input) as
/// commands that add them to the chain already loaded: `iptables -I SCC-PORTS …` (inserted first,
/// so that no later rule of the chain decides before it). What the report's fix gives: each line
/// runs on its own in a shell. Other lines (a comment for an IPv6 flow) are kept as they are.
pub fn fix_commands(rules: &str) -> String {
    rules
        .lines()
        .map(|l| match l.strip_prefix("-A ") {
            Some(rest) => format!("iptables -I {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

/// `-m multiport` takes at most 15 ports per rule (a range `a:b` counts as two).
const MULTIPORT_MAX: usize = 15;

/// The comment match keeps at most 255 bytes.
const COMMENT_MAX: usize = 255;

impl Generator for Iptables {
    fn name(&self) -> &'static str {
        "iptables"
    }

    fn about(&self) -> &'static str {
        "iptables-restore input (IPv4): own chain jumped to from INPUT or FORWARD"
    }

    fn generate(&self, request: &Request) -> String {
        let forward = request.mode == Mode::Network;
        let (chain, hook) = if forward {
            (CHAIN_FORWARD, "FORWARD")
        } else {
            (CHAIN, "INPUT")
        };
        let mut out = String::new();
        for line in header(request, self.name()) {
            let _ = writeln!(out, "# {line}");
        }
        match request.policy {
            Policy::Drop => {
                let _ = writeln!(
                    out,
                    "# Load: iptables-restore FILE. This replaces the whole filter table (other tables\n\
                     # such as nat stay); {hook} drops what is not admitted, the other built-in chains accept."
                );
            }
            Policy::Accept => {
                let _ = writeln!(
                    out,
                    "# Load: iptables-restore --noflush FILE (creates or empties only chain {chain}),\n\
                     # then once: iptables -C {hook} -j {chain} || iptables -I {hook} -j {chain}"
                );
            }
        }
        out.push_str("*filter\n");
        if request.policy == Policy::Drop {
            let policy = |c: &str| if c == hook { "DROP" } else { "ACCEPT" };
            for builtin in ["INPUT", "FORWARD", "OUTPUT"] {
                let _ = writeln!(out, ":{builtin} {} [0:0]", policy(builtin));
            }
        }
        let _ = writeln!(out, ":{chain} - [0:0]");
        if request.policy == Policy::Drop {
            if !forward {
                out.push_str("-A INPUT -i lo -j ACCEPT\n");
            }
            let _ = writeln!(
                out,
                "-A {hook} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
                 -A {hook} -m conntrack --ctstate INVALID -j DROP"
            );
            if !forward {
                out.push_str(HOST_ICMP);
            }
            let _ = writeln!(out, "-A {hook} -j {chain}");
        }
        if request.flows.is_empty() {
            out.push_str("# no Contact Center flows for this scope\n");
        }
        rules(&mut out, chain, &request.flows);
        out.push_str("COMMIT\n");
        out
    }
}

/// The ICMP a host needs (destination-unreachable includes fragmentation-needed, for path MTU
/// discovery).
const HOST_ICMP: &str = "\
-A INPUT -p icmp -m icmp --icmp-type echo-request -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type destination-unreachable -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type time-exceeded -j ACCEPT
-A INPUT -p icmp -m icmp --icmp-type parameter-problem -j ACCEPT
";

/// The flows with one source list, destination list and transport: their ports share rules.
struct PortGroup<'f> {
    flows: Vec<&'f Flow>,
}

/// Flows with the same (sources, destinations, transport) share `-m multiport` rules of at most
/// 15 ports (a range counts as two); one rule per IPv4 source network × destination × port
/// group. IPv6 parts as comments, since iptables-restore input is one address family.
fn rules(out: &mut String, chain: &str, flows: &[Flow]) {
    let mut groups: Vec<PortGroup> = Vec::new();
    let mut at: HashMap<(&[IpNet], &[IpNet], Transport), usize> = HashMap::new();
    for f in flows {
        let key = (&f.sources[..], &f.destination[..], f.transport);
        let i = *at.entry(key).or_insert_with(|| {
            groups.push(PortGroup { flows: Vec::new() });
            groups.len() - 1
        });
        groups[i].flows.push(f);
    }
    for g in &groups {
        let first = g.flows[0];
        let (s4, s6) = split_families(&first.sources);
        let (d4, d6) = split_families(&first.destination);
        let proto = first.transport.as_str();
        if s4.is_empty() || d4.is_empty() {
            if d6.is_empty() || s6.is_empty() {
                for f in &g.flows {
                    let _ = writeln!(
                        out,
                        "# {}: no source of the destination's address family, nothing to admit",
                        comment_text(&f.label(), COMMENT_MAX)
                    );
                }
            }
        } else {
            let matches = port_matches(proto, &g.flows);
            for s in &s4 {
                for d in &d4 {
                    for (ports, label) in &matches {
                        let _ = writeln!(
                            out,
                            "-A {chain} -s {s} -d {d} -p {proto} {ports} -m comment --comment \"{label}\" -j ACCEPT"
                        );
                    }
                }
            }
        }
        if !s6.is_empty() && !d6.is_empty() {
            let list = |v: &[ipnet::Ipv6Net]| {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for f in &g.flows {
                let _ = writeln!(
                    out,
                    "# IPv6, not loaded by iptables (use ip6tables or the nftables target): {} {} -> {} {proto} {}",
                    comment_text(&f.label(), COMMENT_MAX),
                    list(&s6),
                    list(&d6),
                    f.ports
                );
            }
        }
    }
}

/// The port matches of a group of flows, each with its comment: the ports of every flow (parity
/// ranges port by port, so no port outside the plan opens) in `-m multiport` rules of at most 15
/// ports, a range counting as two; a lone port or range as a plain `--dport`.
fn port_matches(proto: &str, flows: &[&Flow]) -> Vec<(String, String)> {
    // Spans in order of first appearance, each with the labels of its flows.
    let mut spans: Vec<((u16, u16), Vec<String>)> = Vec::new();
    let mut at: HashMap<(u16, u16), usize> = HashMap::new();
    for f in flows {
        let label = f.label();
        for seg in segments(f.ports) {
            let i = *at.entry(seg).or_insert_with(|| {
                spans.push((seg, Vec::new()));
                spans.len() - 1
            });
            if !spans[i].1.contains(&label) {
                spans[i].1.push(label.clone());
            }
        }
    }
    let text = |(lo, hi): (u16, u16), sep: char| {
        if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}{sep}{hi}")
        }
    };
    let mut out = Vec::new();
    let mut chunk: Vec<&((u16, u16), Vec<String>)> = Vec::new();
    let mut slots = 0;
    let mut flush = |chunk: &mut Vec<&((u16, u16), Vec<String>)>| {
        if chunk.is_empty() {
            return;
        }
        let mut labels: Vec<&str> = Vec::new();
        for (_, ls) in chunk.iter() {
            for l in ls {
                if !labels.contains(&l.as_str()) {
                    labels.push(l);
                }
            }
        }
        let comment = comment_text(&labels.join("+"), COMMENT_MAX);
        let ports = match chunk.as_slice() {
            [one] => format!("-m {proto} --dport {}", text(one.0, ':')),
            many => format!(
                "-m multiport --dports {}",
                many.iter()
                    .map(|(seg, _)| text(*seg, ':'))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        };
        out.push((ports, comment));
        chunk.clear();
    };
    const NAMED_MAX: usize = if COMMENT_MAX < crate::safe::RULE_COMMENT_MAX {
        COMMENT_MAX
    } else {
        crate::safe::RULE_COMMENT_MAX
    };
    // A rule ends at 15 ports, or where its comment would no longer name every flow it admits
    // (the comment is capped: past the cap it would be cut, and the rule's flows unnamed).
    let mut named: Vec<&str> = Vec::new();
    let mut comment_len = 0;
    for span in &spans {
        let cost = if span.0.0 == span.0.1 { 1 } else { 2 };
        let new: Vec<&str> = span
            .1
            .iter()
            .map(String::as_str)
            .filter(|l| !named.contains(l))
            .collect();
        let more: usize = new.iter().map(|l| l.len() + 1).sum();
        if !chunk.is_empty() && (slots + cost > MULTIPORT_MAX || comment_len + more > NAMED_MAX + 1)
        {
            flush(&mut chunk);
            slots = 0;
            named.clear();
            comment_len = 0;
        }
        for l in &span.1 {
            if !named.contains(&l.as_str()) {
                named.push(l);
                comment_len += l.len() + 1;
            }
        }
        chunk.push(span);
        slots += cost;
    }
    flush(&mut chunk);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::{Parity, PortRange};

    // `.into()` keeps this test building whether the lists are owned or shared.
    #[allow(clippy::useless_conversion)]
    fn flow(ports: PortRange, port_id: &str) -> Flow {
        Flow {
            role: crate::catalog::Role::Clients,
            source_zones: vec!["z".to_string()].into(),
            sources: vec!["10.0.0.0/8".parse().unwrap()].into(),
            node: "n".into(),
            destination: vec!["10.1.0.1/32".parse().unwrap()].into(),
            workstations: false,
            unit: None,
            transport: Transport::Udp,
            ports,
            component: "c".into(),
            port_ids: vec![port_id.into()],
            purpose: String::new(),
        }
    }

    #[test]
    fn parity_expands_in_groups_of_fifteen() {
        let even = PortRange::new(5004, 5064, Some(Parity::Even)).unwrap();
        let f = flow(even, "rtp");
        let groups = port_matches("udp", &[&f]);
        assert_eq!(groups.len(), 3); // 31 ports
        assert!(groups[0].0.ends_with(
            "5004,5006,5008,5010,5012,5014,5016,5018,5020,5022,5024,5026,5028,5030,5032"
        ));
        assert_eq!(groups[2].0, "-m udp --dport 5064");
        let plain = PortRange::new(8000, 8400, None).unwrap();
        let f = flow(plain, "area");
        assert_eq!(
            port_matches("udp", &[&f]),
            [("-m udp --dport 8000:8400".to_string(), "c.area".to_string())]
        );
    }

    #[test]
    fn flows_share_multiport_rules_a_range_counting_two() {
        let one = |p| PortRange::new(p, p, None).unwrap();
        let ranges: Vec<Flow> = (0..7)
            .map(|i| flow(PortRange::new(100 * i + 1, 100 * i + 2, None).unwrap(), "r"))
            .collect();
        let mut all: Vec<&Flow> = ranges.iter().collect();
        let single = flow(one(9999), "s");
        let twice = flow(one(9999), "t");
        all.push(&single);
        all.push(&twice);
        let rules = port_matches("udp", &all);
        // 7 ranges (14 slots) + 1 port = 15 slots: one rule; the port twice is one element
        // with both labels.
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert!(rules[0].0.ends_with(",601:602,9999"), "{rules:?}");
        assert_eq!(rules[0].1, "c.r+c.s+c.t");
        let extra = flow(one(7777), "x");
        all.push(&extra);
        assert_eq!(port_matches("udp", &all).len(), 2);
    }
}
