//! `aerleon`: the plan as an Aerleon policy (`pol/*.yaml`, `def/networks.yaml`,
//! `def/services.yaml`) that Aerleon's `aclgen` renders for Cisco ASA, PAN-OS, Juniper SRX,
//! FortiGate, nftables, iptables and the Windows firewall. The one target that writes a directory.
//!
//! What the policy holds, so a network engineer can review it: networks named per zone
//! (`ZONE-AGENTS`), unit virtual IP (`UNIT-CORE`), node (`NODE-APP1`) and source role
//! (`FROM-SERVERS`); services per component port (`AGENT-SERVER-PORT`); terms whose comment names
//! `component.port_id` (or `service.NAME`); a final deny in every filter. `--network` writes one
//! policy file per `[firewalls.NAME]`, its terms being the flows that cross it
//! ([`crate::flows::Crossings`]), with one filter per zone pair for the zone-based appliances
//! (PAN-OS, SRX, FortiGate), one per ingress zone for the ASA (an interface binds one ACL), and
//! one forward filter for nftables and iptables.
//!
//! Every name is a token Aerleon accepts (letters, digits, `-`), fits the platforms' limits
//! (PAN-OS 63 characters, ASA 64, iptables' chains 24 for a term) and never collides: a name cut
//! to fit ends in a hash of the whole, and two things that would share a name are told apart by
//! their key's hash. Comments are [`Sink::RuleComment`] text (no quote, no `*/`, no line break).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use ipnet::IpNet;

use super::text::{comment_text, header, one_line, segments, span};
use super::{Generator, Mode, Request};
use crate::catalog::Transport;
use crate::deployment::{Deployment, Firewall};
use crate::flows::{Crossings, Destination, Flow};

pub struct Aerleon;

/// The longest network or service token: PAN-OS names address and service objects from them
/// (63 characters) and adds a few of its own.
const TOKEN_MAX: usize = 48;
/// The longest term name on an appliance: PAN-OS rule names stop at 63, but Aerleon names a
/// rule's service object `service-TERM-udp` (63 too); SRX policies stop at 63.
const TERM_MAX: usize = 50;
/// Aerleon's iptables prefixes chains with the filter's letter; their names stop at 24.
const IPTABLES_TERM_MAX: usize = 24;
/// A comment, within nft's 128-byte comment limit.
const COMMENT_MAX: usize = 120;

impl Generator for Aerleon {
    fn name(&self) -> &'static str {
        "aerleon"
    }

    fn about(&self) -> &'static str {
        "Aerleon policy (a directory, -o DIR) for aclgen: Cisco ASA, PAN-OS, SRX, FortiGate, nftables, iptables, Windows"
    }

    /// The files one after the other, each under a `# ==> PATH` line (a preview; the CLI writes
    /// them as a directory).
    fn generate(&self, request: &Request) -> String {
        let mut out = String::new();
        for (path, text) in files(request) {
            let _ = writeln!(out, "# ==> {path}");
            out.push_str(&text);
        }
        out
    }

    fn files(&self, request: &Request) -> Option<Vec<(String, String)>> {
        Some(files(request))
    }
}

/// Hands out tokens and term names: each key gets one name, no two keys the same.
#[derive(Default)]
struct Namer {
    by_key: HashMap<String, String>,
    taken: HashMap<String, String>,
}

impl Namer {
    /// The name of `key`: `text` as a slug of at most `max` characters (upper case for tokens),
    /// cut with a hash when longer, and with a hash of the key when another key holds it.
    fn name(&mut self, key: &str, text: &str, max: usize, upper: bool) -> String {
        if let Some(n) = self.by_key.get(key) {
            return n.clone();
        }
        let case = |s: String| if upper { s.to_ascii_uppercase() } else { s };
        let mut name = case(fit(text, max));
        if self.taken.contains_key(&name) {
            let tag = format!("{:08x}", super::fnv1a(key) as u32);
            let head = fit(text, max - 9);
            name = case(format!("{head}-{tag}"));
            let mut n = 2;
            while self.taken.contains_key(&name) {
                name = case(format!(
                    "{}-{tag}{n}",
                    fit(text, max - 10 - n.to_string().len())
                ));
                n += 1;
            }
        }
        self.taken.insert(name.clone(), key.to_string());
        self.by_key.insert(key.to_string(), name.clone());
        name
    }
}

/// `text` as a slug of at most `max` characters: cut, ending in a hash of the whole, when longer.
/// Starts with a letter (some platforms refuse a leading digit or `-`).
fn fit(text: &str, max: usize) -> String {
    let mut s = super::Request::slug(text);
    if !s.starts_with(|c: char| c.is_ascii_alphabetic()) {
        s = format!("n-{s}").trim_end_matches('-').to_string();
    }
    if s.len() <= max {
        return s;
    }
    let head = s[..max - 9].trim_end_matches('-');
    format!("{head}-{:08x}", super::fnv1a(&s) as u32)
}

/// A comment for a term or header: parts made [`Sink::RuleComment`]-safe, joined by spaces.
fn comment(parts: &[&str]) -> String {
    let text = parts
        .iter()
        .flat_map(|p| p.split_whitespace())
        .map(|w| comment_text(w.trim_matches(['(', ')']), COMMENT_MAX))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    text.chars().take(COMMENT_MAX).collect()
}

/// A network definition: its addresses and what it is.
struct Network {
    nets: Vec<IpNet>,
    comment: String,
}

/// A service definition: transport and the plain port spans.
struct Service {
    transport: Transport,
    spans: Vec<(u16, u16)>,
    comment: String,
}

/// One term: a flow from one source network to one destination on one service.
#[derive(Clone)]
struct Term {
    /// Unique in its policy file; iptables' filter cuts it to 24 characters when it is written.
    name: String,
    comment: String,
    source: String,
    destination: String,
    service: String,
    transport: Transport,
    /// Whether both ends have IPv4 addresses (ASA and iptables render IPv4 only).
    v4: bool,
    /// The zone pair (network mode): indexes into the firewall's zones.
    pair: (usize, usize),
}

/// The definitions every policy file of one run shares.
#[derive(Default)]
struct Defs {
    names: Namer,
    networks: BTreeMap<String, Network>,
    services: BTreeMap<String, Service>,
}

impl Defs {
    fn network(&mut self, key: &str, text: &str, nets: &[IpNet], what: &str) -> String {
        let name = self
            .names
            .name(&format!("net:{key}"), text, TOKEN_MAX, true);
        self.networks
            .entry(name.clone())
            .or_insert_with(|| Network {
                nets: nets.to_vec(),
                comment: comment(&[what]),
            });
        name
    }

    fn zone(&mut self, dep: &Deployment, zone: usize) -> String {
        let z = &dep.zones[zone];
        self.network(
            &format!("zone:{}", z.name),
            &format!("zone {}", z.name),
            &z.cidrs,
            &format!("zone {}", z.name),
        )
    }

    /// A flow's destination ([`Crossings::destination`]) as a network, with the words for
    /// comments and a short word for term names.
    fn destination(
        &mut self,
        crossings: &Crossings,
        dep: &Deployment,
        f: &Flow,
    ) -> (String, String, String) {
        let what = crossings.destination_words(f);
        let (key, text, short) = match crossings.destination(f) {
            Destination::Workstations(z) => {
                return (self.zone(dep, z), what, "workstations".to_string());
            }
            Destination::Unit(u) => {
                let name = &dep.units[u].name;
                (format!("unit:{name}"), format!("unit {name}"), name.clone())
            }
            Destination::Node(n) => {
                let name = &dep.nodes[n].name;
                (format!("node:{name}"), format!("node {name}"), name.clone())
            }
            Destination::Addresses => (format!("dst:{what}"), format!("host {what}"), what.clone()),
        };
        (
            self.network(&key, &text, &f.destination, &what),
            what,
            short,
        )
    }

    /// A flow's sources in one source zone: the zone itself, or for sources that are part of
    /// it (a trunk peer in the DMZ) those addresses, named after the role and the zone.
    fn sources_in(
        &mut self,
        crossings: &Crossings,
        dep: &Deployment,
        f: &Flow,
        zone: usize,
    ) -> String {
        let nets = crossings.sources_in(f, zone);
        let z = &dep.zones[zone];
        if IpNet::aggregate(&z.cidrs) == nets {
            return self.zone(dep, zone);
        }
        let role = f.source_key();
        let text = nets
            .iter()
            .map(crate::flows::net_text)
            .collect::<Vec<_>>()
            .join(" ");
        self.network(
            &format!("in:{role}:{}:{text}", z.name),
            &format!("{role} in {}", z.name),
            &nets,
            &format!("{role} sources in zone {}", z.name),
        )
    }

    /// The sources of a flow as one network (host firewalls: the role's networks).
    fn sources(&mut self, f: &Flow) -> String {
        let key = f.source_key();
        let what = format!("{} from zones {}", key, f.source_zones.join(" "));
        self.network(
            &format!("src:{key}"),
            &format!("from {key}"),
            &f.sources,
            &what,
        )
    }

    /// The service of a flow: named after its component and port ids; another flow with the
    /// same label but other ports (a unit that moved the port) gets a name of its own.
    fn service(&mut self, f: &Flow) -> String {
        let key = format!("{}/{}/{}", f.label(), f.transport.as_str(), f.ports);
        let name = self.names.name(
            &format!("svc:{key}"),
            &format!("{} {}", f.component, f.port_id_text()),
            TOKEN_MAX,
            true,
        );
        self.services
            .entry(name.clone())
            .or_insert_with(|| Service {
                transport: f.transport,
                spans: segments(f.ports),
                comment: comment(&[&f.label(), &super::text::ports_text(f)]),
            });
        name
    }

    fn has_v4(&self, token: &str) -> bool {
        self.networks
            .get(token)
            .is_some_and(|n| n.nets.iter().any(|x| matches!(x, IpNet::V4(_))))
    }
}

/// Every file of the policy: `pol/*.yaml`, then `def/networks.yaml` and `def/services.yaml`.
pub fn files(request: &Request) -> Vec<(String, String)> {
    let mut defs = Defs::default();
    let mut out = Vec::new();
    match &request.mode {
        Mode::Network => {
            let crossings = Crossings::new(request.deployment);
            // Firewalls `EDGE` and `edge` are two files (aclgen names its outputs after them).
            let mut files = Namer::default();
            for fw in &request.deployment.firewalls {
                let text = network_policy(request, fw, &crossings, &mut defs);
                let stem = files.name(&fw.name, &fw.name, TERM_MAX, false);
                out.push((format!("pol/{stem}.yaml"), text));
            }
        }
        Mode::Node { .. } | Mode::Workstations => {
            let text = host_policy(request, &mut defs);
            out.push((
                format!("pol/{}.yaml", fit(request.mode.scope(), TERM_MAX)),
                text,
            ));
        }
    }
    out.push((
        "def/networks.yaml".to_string(),
        networks_yaml(request, &defs),
    ));
    out.push((
        "def/services.yaml".to_string(),
        services_yaml(request, &defs),
    ));
    out
}

/// The file's opening comment lines.
fn preamble(request: &Request, what: &str) -> String {
    let mut s = String::new();
    for line in header(request, "aerleon", what) {
        let _ = writeln!(s, "# {line}");
    }
    s.push_str("# Render: aclgen --base_directory DIR --definitions_directory DIR/def --output_directory OUT\n");
    s
}

fn networks_yaml(request: &Request, defs: &Defs) -> String {
    let mut s = preamble(request, "Aerleon network definitions");
    // An empty table, not a null: aclgen warns about a null.
    s.push_str(if defs.networks.is_empty() {
        "networks: {}\n"
    } else {
        "networks:\n"
    });
    for (name, n) in &defs.networks {
        let _ = writeln!(s, "  {name}:");
        let _ = writeln!(s, "    values:");
        for (i, net) in n.nets.iter().enumerate() {
            let _ = writeln!(s, "      - address: {net}");
            if i == 0 {
                let _ = writeln!(s, "        comment: \"{}\"", n.comment);
            }
        }
    }
    s
}

fn services_yaml(request: &Request, defs: &Defs) -> String {
    let mut s = preamble(request, "Aerleon service definitions");
    s.push_str(if defs.services.is_empty() {
        "services: {}\n"
    } else {
        "services:\n"
    });
    for (name, svc) in &defs.services {
        let _ = writeln!(s, "  {name}:");
        for (i, seg) in svc.spans.iter().enumerate() {
            let _ = writeln!(s, "    - port: {}", span(*seg));
            let _ = writeln!(s, "      protocol: {}", svc.transport.as_str());
            if i == 0 {
                let _ = writeln!(s, "      comment: \"{}\"", svc.comment);
            }
        }
    }
    s
}

/// One filter: its header's comment and targets, its terms, and what closes it.
struct Filter<'a> {
    comment: String,
    targets: Vec<(&'static str, String)>,
    terms: Vec<&'a Term>,
    /// iptables: replies first (FORWARD sees both directions), names cut to 24.
    iptables: bool,
    /// The final deny's name and comment; None for the Windows firewall, whose block rules win
    /// over every allow rule (its inbound default already blocks).
    deny: Option<(String, String)>,
}

fn write_filter(s: &mut String, f: &Filter) {
    s.push_str("  - header:\n");
    let _ = writeln!(s, "      comment: \"{}\"", f.comment);
    s.push_str("      targets:\n");
    for (platform, options) in &f.targets {
        let _ = writeln!(s, "        {platform}: {options}");
    }
    s.push_str("    terms:\n");
    let mut names = Namer::default();
    if f.iptables {
        s.push_str("      - name: established\n");
        s.push_str(
            "        comment: \"replies and related packets of the admitted flows below\"\n",
        );
        s.push_str("        option: established\n");
        s.push_str("        action: accept\n");
        names.name("established", "established", IPTABLES_TERM_MAX, false);
    }
    for (i, t) in f.terms.iter().enumerate() {
        let name = if f.iptables {
            let text = format!("t{} {}", i + 1, t.name);
            names.name(&t.name, &text, IPTABLES_TERM_MAX, false)
        } else {
            t.name.clone()
        };
        let _ = writeln!(s, "      - name: {name}");
        let _ = writeln!(s, "        comment: \"{}\"", t.comment);
        let _ = writeln!(s, "        source-address: {}", t.source);
        let _ = writeln!(s, "        destination-address: {}", t.destination);
        let _ = writeln!(s, "        destination-port: {}", t.service);
        let _ = writeln!(s, "        protocol: {}", t.transport.as_str());
        s.push_str("        action: accept\n");
    }
    if let Some((name, text)) = &f.deny {
        let name = if f.iptables {
            names.name("deny", name, IPTABLES_TERM_MAX, false)
        } else {
            name.clone()
        };
        let _ = writeln!(s, "      - name: {name}");
        let _ = writeln!(s, "        comment: \"{text}\"");
        s.push_str("        action: deny\n");
    }
}

/// One firewall's policy: the flows that cross it, one term per (zone pair, destination,
/// service).
fn network_policy(
    request: &Request,
    fw: &Firewall,
    crossings: &Crossings,
    defs: &mut Defs,
) -> String {
    let dep = request.deployment;
    let position = |zone: usize| fw.zones.iter().position(|z| z.zone == zone);
    let mut terms: Vec<Term> = Vec::new();
    let mut names = Namer::default();
    let mut seen = std::collections::HashSet::new();
    for f in &request.flows {
        for (from, to) in crossings.through(f, fw) {
            let (Some(a), Some(b)) = (position(from), position(to)) else {
                continue;
            };
            let source = defs.sources_in(crossings, dep, f, from);
            let (destination, what, short) = defs.destination(crossings, dep, f);
            let service = defs.service(f);
            let key = format!("{a}/{b}/{destination}/{service}");
            let name = names.name(
                &key,
                &format!(
                    "{} {} {short} {} {}",
                    dep.zones[from].name,
                    dep.zones[to].name,
                    f.component,
                    f.port_id_text()
                ),
                TERM_MAX,
                false,
            );
            if !seen.insert(key) {
                continue; // the same (pair, destination, service) from another role
            }
            let v4 = defs.has_v4(&source) && defs.has_v4(&destination);
            terms.push(Term {
                name,
                comment: comment(&[&f.label(), "from", &dep.zones[from].name, "to", &what]),
                source,
                destination,
                service,
                transport: f.transport,
                v4,
                pair: (a, b),
            });
        }
    }
    // Grouped by zone pair in the order the firewall lists its zones; the flows' order within.
    terms.sort_by_key(|t| t.pair);
    let zone_words = |i: usize| {
        let z = &fw.zones[i];
        let own = &dep.zones[z.zone].name;
        if &z.name == own {
            own.clone()
        } else {
            format!("{own} as {}", z.name)
        }
    };
    let mut s = preamble(
        request,
        &format!("Aerleon policy of network firewall {}", one_line(&fw.name)),
    );
    let _ = writeln!(
        s,
        "# Zones: {}",
        one_line(
            &(0..fw.zones.len())
                .map(zone_words)
                .collect::<Vec<_>>()
                .join(", ")
        )
    );
    let _ = writeln!(s, "# Platforms: {}", fw.platforms.join(", "));
    s.push_str("filters:\n");
    let has = |p: &str| fw.platforms.iter().any(|x| x == p);
    let mut pairs: Vec<(usize, usize)> = terms.iter().map(|t| t.pair).collect();
    pairs.dedup();

    // Zone-based appliances: one filter per zone pair, ending in a deny for the pair.
    let zoned: Vec<&'static str> = ["paloalto", "srx", "fortigate"]
        .into_iter()
        .filter(|p| has(p))
        .collect();
    if !zoned.is_empty() {
        for &(a, b) in &pairs {
            let (from, to) = (&fw.zones[a].name, &fw.zones[b].name);
            let targets = zoned
                .iter()
                .map(|&p| {
                    let options = match p {
                        "fortigate" => format!("from-zone {from} to-zone {to}"),
                        _ => format!("from-zone {from} to-zone {to} mixed"),
                    };
                    (p, options)
                })
                .collect();
            let words = format!("{} to {}", zone_words(a), zone_words(b));
            write_filter(
                &mut s,
                &Filter {
                    comment: comment(&[&fw.name, "from", &words]),
                    targets,
                    terms: terms.iter().filter(|t| t.pair == (a, b)).collect(),
                    iptables: false,
                    deny: Some((
                        names.name(
                            &format!("deny/{a}/{b}"),
                            &format!("deny {from} to {to}"),
                            TERM_MAX,
                            false,
                        ),
                        comment(&["final deny: anything else from", &words]),
                    )),
                },
            );
        }
    }
    // ASA: an interface binds one ACL per direction: one filter per ingress zone.
    if has("ciscoasa") {
        let mut sources: Vec<usize> = pairs.iter().map(|p| p.0).collect();
        sources.dedup();
        for a in sources {
            let acl = format!("{}_access_in", fw.zones[a].name);
            let list: Vec<&Term> = terms.iter().filter(|t| t.pair.0 == a && t.v4).collect();
            if list.is_empty() {
                continue;
            }
            write_filter(
                &mut s,
                &Filter {
                    comment: comment(&[&fw.name, "ACL in on interface", &zone_words(a)]),
                    targets: vec![("ciscoasa", acl)],
                    terms: list,
                    iptables: false,
                    deny: Some((
                        names.name(
                            &format!("deny/{a}"),
                            &format!("deny from {}", fw.zones[a].name),
                            TERM_MAX,
                            false,
                        ),
                        comment(&["final deny: anything else in from", &zone_words(a)]),
                    )),
                },
            );
        }
    }
    // A Linux router: one forward filter over every pair.
    let all: Vec<&Term> = terms.iter().collect();
    let deny = (
        names.name("deny/forward", "deny forward", TERM_MAX, false),
        comment(&["final deny: anything else forwarded through", &fw.name]),
    );
    if has("nftables") {
        write_filter(
            &mut s,
            &Filter {
                comment: comment(&[&fw.name, "forwarded traffic, nftables"]),
                targets: vec![("nftables", "mixed forward".to_string())],
                terms: all.clone(),
                iptables: false,
                deny: Some(deny.clone()),
            },
        );
    }
    if has("iptables") {
        write_filter(
            &mut s,
            &Filter {
                comment: comment(&[&fw.name, "forwarded traffic, iptables IPv4"]),
                targets: vec![("iptables", "FORWARD DROP".to_string())],
                terms: all.into_iter().filter(|t| t.v4).collect(),
                iptables: true,
                deny: Some(deny),
            },
        );
    }
    s
}

/// A host firewall's policy (`--node`, `--workstations`): one term per flow, for nftables
/// (input), iptables (INPUT) and the Windows firewall.
fn host_policy(request: &Request, defs: &mut Defs) -> String {
    let dep = request.deployment;
    let crossings = &Crossings::new(dep);
    let mut names = Namer::default();
    let mut terms: Vec<Term> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in &request.flows {
        let source = defs.sources(f);
        let (destination, what, short) = defs.destination(crossings, dep, f);
        let service = defs.service(f);
        let key = format!("{source}/{destination}/{service}");
        let name = names.name(
            &key,
            &format!(
                "{} {short} {} {}",
                f.source_key(),
                f.component,
                f.port_id_text()
            ),
            TERM_MAX,
            false,
        );
        if !seen.insert(key) {
            continue;
        }
        let v4 = defs.has_v4(&source) && defs.has_v4(&destination);
        terms.push(Term {
            name,
            comment: comment(&[&f.label(), "from", &f.source_key(), "to", &what]),
            source,
            destination,
            service,
            transport: f.transport,
            v4,
            pair: (0, 0),
        });
    }
    let scope = request.mode.scope().to_string();
    let mut s = preamble(request, "Aerleon policy of a host firewall");
    s.push_str("filters:\n");
    let all: Vec<&Term> = terms.iter().collect();
    let deny = (
        names.name("deny/input", "deny input", TERM_MAX, false),
        comment(&["final deny: anything else inbound to", &scope]),
    );
    write_filter(
        &mut s,
        &Filter {
            comment: comment(&[&scope, "inbound, nftables"]),
            targets: vec![("nftables", "mixed input".to_string())],
            terms: all.clone(),
            iptables: false,
            deny: Some(deny.clone()),
        },
    );
    write_filter(
        &mut s,
        &Filter {
            comment: comment(&[&scope, "inbound, iptables IPv4"]),
            targets: vec![("iptables", "INPUT DROP".to_string())],
            terms: all.iter().copied().filter(|t| t.v4).collect(),
            iptables: true,
            deny: Some(deny),
        },
    );
    if all.is_empty() {
        return s; // the Windows firewall has no deny to write: a filter needs a term
    }
    write_filter(
        &mut s,
        &Filter {
            comment: comment(&[
                &scope,
                "inbound, Windows firewall: its default blocks the rest",
            ]),
            targets: vec![("windows_advfirewall", "in".to_string())],
            terms: all,
            iptables: false,
            deny: None,
        },
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_stay_distinct() {
        let mut n = Namer::default();
        let long = "x".repeat(300);
        let a = n.name("a", &format!("{long}a"), TERM_MAX, false);
        let b = n.name("b", &format!("{long}b"), TERM_MAX, false);
        assert!(a.len() <= TERM_MAX && b.len() <= TERM_MAX, "{a} {b}");
        assert_ne!(a, b);
        // Two keys whose text slugs alike ("a_b" and "a-b") get two names.
        let c = n.name("zone:a_b", "zone a_b", TOKEN_MAX, true);
        let d = n.name("zone:a-b", "zone a-b", TOKEN_MAX, true);
        assert_eq!(c, "ZONE-A-B");
        assert_ne!(c, d);
        assert!(d.len() <= TOKEN_MAX);
        assert_eq!(n.name("zone:a_b", "ignored", TOKEN_MAX, true), c);
        for len in [1, 23, 24, 25, 63, 64, 200] {
            let t = n.name(
                &format!("k{len}"),
                &"9".repeat(len),
                IPTABLES_TERM_MAX,
                false,
            );
            assert!(t.len() <= IPTABLES_TERM_MAX && t.starts_with('n'), "{t}");
        }
    }

    #[test]
    fn comments_hold_no_quote_or_line_break() {
        let c = comment(&["a\"b\nc*/d", "e\u{202e}f"]);
        assert!(
            c.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-:/ ".contains(c)),
            "{c}"
        );
        assert!(!c.contains("*/"));
    }
}
