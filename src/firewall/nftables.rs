//! `nftables`: an `nft -f` file with its own `inet scc_ports` table, replaced atomically; also the
//! host-policy header that iptables shares (policy and the warning about what it drops).

use std::fmt::Write as _;

use ipnet::IpNet;

use super::text::{self, comment_text, split_families};
use super::{Generator, Mode, Policy, Request};
use crate::catalog::Transport;
use crate::flows::Flow;
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
        for flow in &request.flows {
            rules(&mut out, flow);
        }
        out.push_str("\t}\n}\n");
        out
    }
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
\t\t# accept here does not override a drop in another table: to merge, copy these lines into
\t\t# your own input (or forward) chain.
";

/// The rules of one flow: one per address family that has both a source and a destination.
fn rules(out: &mut String, flow: &Flow) {
    let label = comment_text(&flow.label(), COMMENT_MAX);
    let (s4, s6) = split_families(&flow.sources);
    let (d4, d6) = split_families(&flow.destination);
    let proto = flow.transport.as_str();
    let ports = port_match(flow.transport, flow.ports);
    let mut any = false;
    if !s4.is_empty() && !d4.is_empty() {
        let _ = writeln!(
            out,
            "\t\tip saddr {} ip daddr {} {proto} dport {ports} accept comment \"{label}\"",
            addr_set(&s4),
            addr_set(&d4),
        );
        any = true;
    }
    if !s6.is_empty() && !d6.is_empty() {
        let _ = writeln!(
            out,
            "\t\tip6 saddr {} ip6 daddr {} {proto} dport {ports} accept comment \"{label}\"",
            addr_set(&s6),
            addr_set(&d6),
        );
        any = true;
    }
    if !any {
        let _ = writeln!(
            out,
            "\t\t# {label}: no source of the destination's address family, nothing to admit"
        );
    }
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

/// One network, or an anonymous set of them; host networks written as plain addresses.
fn addr_set<N: std::fmt::Display + Copy + Into<IpNet>>(nets: &[N]) -> String {
    let text = |n: &N| {
        let net: IpNet = (*n).into();
        if net.prefix_len() == net.max_prefix_len() {
            net.addr().to_string()
        } else {
            net.to_string()
        }
    };
    match nets {
        [one] => text(one),
        _ => format!(
            "{{ {} }}",
            nets.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
    }
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
        assert_eq!(addr_set(&v4), "10.0.0.0/8");
    }
}
