//! `iptables`: `iptables-restore` input for the filter table, the flows in their own chain
//! (`SCC-PORTS` jumped to from INPUT, `SCC-PORTS-FWD` from FORWARD); IPv4 only.

use std::fmt::Write as _;

use super::nftables::header;
use super::text::{comment_text, split_families};
use super::{Generator, Mode, Policy, Request};
use crate::flows::Flow;
use crate::range::PortRange;

pub struct Iptables;

/// The chain of host firewalls (node, workstations).
pub const CHAIN: &str = "SCC-PORTS";
/// The chain of a firewall between zones.
pub const CHAIN_FORWARD: &str = "SCC-PORTS-FWD";

/// `-m multiport` takes at most 15 ports per rule.
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
        for flow in &request.flows {
            rules(&mut out, chain, flow);
        }
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

/// One rule per IPv4 source network × destination × port group; IPv6 parts as comments, since
/// iptables-restore input is one address family.
fn rules(out: &mut String, chain: &str, flow: &Flow) {
    let label = comment_text(&flow.label(), COMMENT_MAX);
    let (s4, s6) = split_families(&flow.sources);
    let (d4, d6) = split_families(&flow.destination);
    let proto = flow.transport.as_str();
    let groups = port_matches(proto, flow.ports);
    if s4.is_empty() || d4.is_empty() {
        if d6.is_empty() || s6.is_empty() {
            let _ = writeln!(
                out,
                "# {label}: no source of the destination's address family, nothing to admit"
            );
        }
    } else {
        for s in &s4 {
            for d in &d4 {
                for ports in &groups {
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
        let _ = writeln!(
            out,
            "# IPv6, not loaded by iptables (use ip6tables or the nftables target): {label} {} -> {} {proto} {}",
            list(&s6),
            list(&d6),
            flow.ports
        );
    }
}

/// The port matches of a range: one `--dport`, or for parity ranges every port listed in
/// `-m multiport` groups of at most 15.
fn port_matches(proto: &str, ports: PortRange) -> Vec<String> {
    if ports.parity().is_none() || ports.is_single() {
        let span = if ports.is_single() {
            ports.lo().to_string()
        } else {
            format!("{}:{}", ports.lo(), ports.hi())
        };
        return vec![format!("-m {proto} --dport {span}")];
    }
    let list: Vec<String> = ports.ports().map(|p| p.to_string()).collect();
    list.chunks(MULTIPORT_MAX)
        .map(|chunk| format!("-m multiport --dports {}", chunk.join(",")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::range::Parity;

    #[test]
    fn parity_expands_in_groups_of_fifteen() {
        let even = PortRange::new(5004, 5064, Some(Parity::Even)).unwrap();
        let groups = port_matches("udp", even);
        assert_eq!(groups.len(), 3); // 31 ports
        assert!(groups[0].ends_with(
            "5004,5006,5008,5010,5012,5014,5016,5018,5020,5022,5024,5026,5028,5030,5032"
        ));
        assert_eq!(groups[2], "-m multiport --dports 5064");
        let plain = PortRange::new(8000, 8400, None).unwrap();
        assert_eq!(port_matches("udp", plain), ["-m udp --dport 8000:8400"]);
    }
}
