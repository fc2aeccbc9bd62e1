//! Firewall generators: one file per target, each a [`Generator`], registered in [`TARGETS`].

mod aerleon;
mod aws;
mod csv;
mod firewalld;
pub(crate) mod iptables;
pub(crate) mod nftables;
pub(crate) mod text;
pub(crate) mod windows;

use std::net::IpAddr;

use crate::deployment::Deployment;
use crate::flows::Flow;

/// Which firewall the rules are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// The host firewall of one server: inbound rules for every binding on the node.
    Node {
        name: String,
        addresses: Vec<IpAddr>,
    },
    /// The agent workstations' firewall (Communication Desktop's ports).
    Workstations,
    /// A firewall between zones: the zone-to-zone flows, forwarded.
    Network,
}

impl Mode {
    /// A short name for comments and group names: the node, `workstations` or `network`.
    pub fn scope(&self) -> &str {
        match self {
            Mode::Node { name, .. } => name,
            Mode::Workstations => "workstations",
            Mode::Network => "network",
        }
    }
}

/// For host firewalls: a complete policy (default drop) or only the allow rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    /// Default drop; established, loopback and essential ICMP accepted; then the flows
    Drop,
    /// Only the allow rules, to merge into an existing policy
    Accept,
}

/// What every generator takes: the flows selected for the mode, and the context to name them.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub deployment: &'a Deployment,
    pub mode: Mode,
    pub policy: Policy,
    /// The flows this firewall admits, in a stable order; each names its component and port ids.
    pub flows: Vec<Flow>,
}

impl Request<'_> {
    /// A name safe in every target's identifiers: lowercase letters, digits and `-`, at most
    /// [`SLUG_MAX`] characters (a longer one keeps its start and ends in a hash of the whole, so
    /// two long names stay distinct; AWS caps group names at 255).
    pub fn slug(text: &str) -> String {
        let s: String = text
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let s = s
            .split('-')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        if s.len() <= SLUG_MAX {
            return s;
        }
        let hash = fnv1a(&s);
        let head = s[..SLUG_MAX - 17].trim_end_matches('-');
        format!("{head}-{hash:016x}")
    }
}

/// FNV-1a of a text: stable across versions and platforms, unlike std's hasher (the hash that
/// keeps cut names distinct).
pub(crate) fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The longest identifier [`Request::slug`] makes.
pub const SLUG_MAX: usize = 200;

/// One firewall target.
pub trait Generator: Sync {
    /// The name on the command line (`--target NAME`).
    fn name(&self) -> &'static str;
    /// One line for `--help`.
    fn about(&self) -> &'static str;
    /// The rules, deterministic: the same request gives the same bytes.
    fn generate(&self, request: &Request) -> String;
    /// A target that writes a directory (`-o DIR`): its files, as paths relative to DIR and
    /// their text; None for a target that writes one file.
    fn files(&self, _request: &Request) -> Option<Vec<(String, String)>> {
        None
    }
}

/// Every target; the CLI's `--target` choices come from here.
pub const TARGETS: &[&dyn Generator] = &[
    &nftables::Nftables,
    &iptables::Iptables,
    &firewalld::Firewalld,
    &windows::Windows,
    &aws::Aws,
    &csv::Csv,
    &csv::Markdown,
    &aerleon::Aerleon,
];

pub fn target(name: &str) -> Option<&'static dyn Generator> {
    TARGETS.iter().copied().find(|t| t.name() == name)
}

/// The flows a firewall in `mode` admits: a node's, the workstations', or for `--network` those
/// that cross a network firewall, from the zones they cross from ([`crate::flows::crossing_flows`]).
pub fn select(dep: &Deployment, flows: &[Flow], mode: &Mode) -> Vec<Flow> {
    match mode {
        Mode::Node { name, .. } => flows
            .iter()
            .filter(|f| !f.workstations && &f.node == name)
            .cloned()
            .collect(),
        Mode::Workstations => flows.iter().filter(|f| f.workstations).cloned().collect(),
        Mode::Network => crate::flows::crossing_flows(dep, flows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_short_and_distinct() {
        assert_eq!(Request::slug("All-in-one Demo!"), "all-in-one-demo");
        let a = Request::slug(&format!("{}a", "n".repeat(10_000)));
        let b = Request::slug(&format!("{}b", "n".repeat(10_000)));
        assert!(a.len() <= SLUG_MAX && b.len() <= SLUG_MAX, "{a}");
        assert_ne!(a, b);
        assert_eq!(Request::slug(&"x".repeat(SLUG_MAX)), "x".repeat(SLUG_MAX));
    }
}
