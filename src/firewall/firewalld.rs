//! `firewalld`: one re-runnable shell script that writes a service XML per component and source
//! role and binds each service with rich rules restricting source and destination addresses —
//! in a zone for a host (`--node`, `--workstations`), in a policy object for a router
//! (`--network`, firewalld ≥ 0.9).
//!
//! A service per component *and source role* (not per component) because a rich rule opens all
//! of a service's ports to its source: one service holding Connection Server's client port and
//! server port would open the server port to the agents' network.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use ipnet::IpNet;

use super::text::{self, one_line, segments, span};
use super::{Generator, Mode, Request};
use crate::catalog::{Role, Transport};
use crate::flows::net_text as net;
use crate::range::PortRange;

pub struct Firewalld;

/// Every name this script owns starts with this, so a re-run can find and remove them.
const PREFIX: &str = "scc-ports-";
/// The policy object of `--network` (firewalld limits policy names to 17 characters).
const POLICY: &str = "scc-ports";
/// The heredoc delimiter: no line of our XML can equal it (each starts with `<` or spaces).
const EOF: &str = "SCC_PORTS_XML";

/// One service: the ports of one component that one role reaches, and where it is bound.
struct Service {
    name: String,
    component: String,
    role: Role,
    source_zones: Vec<String>,
    sources: Vec<IpNet>,
    /// Sorted and deduplicated.
    ports: Vec<(Transport, PortRange)>,
    /// The destination addresses, in order of first appearance.
    destinations: Vec<IpNet>,
    /// `component.port-id (tcp 21018): purpose` per flow, for the description and comments.
    notes: Vec<String>,
}

/// Groups the flows into services: first by (component, role, sources, destinations), then groups
/// with the same ports are joined (the same service bound to several destinations). The sources
/// are part of the key because one role can stand for different networks: site services from
/// different named zones share the role `zones`.
fn services(request: &Request) -> Vec<Service> {
    // Lookups by key, not scans: a 10,000-node system has tens of thousands of flows.
    let mut first: Vec<Service> = Vec::new();
    type FirstKey<'f> = (&'f str, Role, &'f [IpNet], &'f [IpNet]);
    let mut first_at: HashMap<FirstKey, usize> = HashMap::new();
    let mut notes_seen: Vec<HashSet<String>> = Vec::new();
    for f in &request.flows {
        let note = format!("{} ({}): {}", f.label(), text::ports_text(f), f.purpose);
        let key = (
            f.component.as_str(),
            f.role,
            &f.sources[..],
            &f.destination[..],
        );
        let i = match first_at.get(&key) {
            Some(&i) => i,
            None => {
                first_at.insert(key, first.len());
                notes_seen.push(HashSet::new());
                first.push(Service {
                    name: String::new(),
                    component: f.component.clone(),
                    role: f.role,
                    source_zones: f.source_zones.to_vec(),
                    sources: f.sources.to_vec(),
                    ports: Vec::new(),
                    destinations: f.destination.to_vec(),
                    notes: Vec::new(),
                });
                first.len() - 1
            }
        };
        let s = &mut first[i];
        s.ports.push((f.transport, f.ports));
        if notes_seen[i].insert(note.clone()) {
            s.notes.push(note);
        }
    }
    let mut joined: Vec<Service> = Vec::new();
    type JoinKey = (String, Role, Vec<IpNet>, Vec<(Transport, PortRange)>);
    let mut joined_at: HashMap<JoinKey, usize> = HashMap::new();
    let mut seen: Vec<(HashSet<IpNet>, HashSet<String>)> = Vec::new();
    for mut s in first {
        s.ports.sort();
        s.ports.dedup();
        let key = (
            s.component.clone(),
            s.role,
            s.sources.clone(),
            s.ports.clone(),
        );
        match joined_at.get(&key) {
            Some(&i) => {
                let j = &mut joined[i];
                for d in s.destinations {
                    if seen[i].0.insert(d) {
                        j.destinations.push(d);
                    }
                }
                for n in s.notes {
                    if seen[i].1.insert(n.clone()) {
                        j.notes.push(n);
                    }
                }
            }
            None => {
                joined_at.insert(key, joined.len());
                seen.push((
                    s.destinations.iter().copied().collect(),
                    s.notes.iter().cloned().collect(),
                ));
                joined.push(s);
            }
        }
    }
    // Names: `scc-ports-COMPONENT-ROLE`, numbered from the second service of one component and
    // role (different ports to different destinations); unique whatever the component ids are.
    let mut used = std::collections::HashSet::new();
    for s in &mut joined {
        let base = format!(
            "{PREFIX}{}-{}",
            Request::slug(&s.component),
            s.role.as_str()
        );
        let mut name = base.clone();
        let mut n = 1;
        while !used.insert(name.clone()) {
            n += 1;
            name = format!("{base}-{n}");
        }
        s.name = name;
    }
    joined
}

/// Text for XML character data and attribute values: escaped, on one line, and without the
/// characters XML 1.0 forbids.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in one_line(text).chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\u{FFFE}' | '\u{FFFF}' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn service_xml(request: &Request, s: &Service) -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<service>\n");
    let _ = writeln!(
        x,
        "  <short>{}</short>",
        xml(&format!("SCC {} from {}", s.component, s.role.as_str()))
    );
    let description = format!(
        "Sinch Contact Center ({}, {}): {} from {} ({}). {}",
        request.deployment.name,
        request.mode.scope(),
        s.component,
        s.role.as_str(),
        s.source_zones.join(", "),
        s.notes.join("; ")
    );
    let _ = writeln!(x, "  <description>{}</description>", xml(&description));
    for (transport, range) in &s.ports {
        for seg in segments(*range) {
            let _ = writeln!(
                x,
                "  <port protocol=\"{}\" port=\"{}\"/>",
                transport.as_str(),
                span(seg)
            );
        }
    }
    x.push_str("</service>\n");
    x
}

/// A firewalld ipset (`hash:net`): the networks of one source list of one family, named by its
/// roles, so a service needs one rich rule per destination instead of one per source network.
struct IpSet {
    name: String,
    family: &'static str,
    roles: String,
    zones: Vec<String>,
    entries: Vec<IpNet>,
}

/// A rich rule's source: one network, or an ipset (by index).
#[derive(Debug, Clone, Copy)]
enum Src {
    Net(IpNet),
    Set(usize),
}

/// ipset names are at most 31 bytes (the kernel's limit).
const IPSET_NAME_MAX: usize = 31;

/// The ipsets of the services' source lists: one per family with more than one network; and per
/// source list (by its networks) the rich-rule sources that stand for it.
fn ipsets(services: &[Service]) -> (Vec<IpSet>, HashMap<Vec<IpNet>, Vec<Src>>) {
    let mut sets: Vec<IpSet> = Vec::new();
    let mut by_sources: HashMap<Vec<IpNet>, Vec<Src>> = HashMap::new();
    let mut roles_of: HashMap<&[IpNet], Vec<&str>> = HashMap::new();
    for s in services {
        let roles = roles_of.entry(&s.sources[..]).or_default();
        if !roles.contains(&s.role.as_str()) {
            roles.push(s.role.as_str());
        }
    }
    let mut used = HashSet::new();
    for s in services {
        if by_sources.contains_key(&s.sources) {
            continue;
        }
        let roles = roles_of[&s.sources[..]].join("-");
        let (v4, v6) = text::split_families(&s.sources);
        let families: [(&'static str, &str, Vec<IpNet>); 2] = [
            ("inet", "v4", v4.into_iter().map(IpNet::V4).collect()),
            ("inet6", "v6", v6.into_iter().map(IpNet::V6).collect()),
        ];
        let mut srcs = Vec::new();
        for (family, suffix, nets) in families {
            match nets.as_slice() {
                [] => {}
                [one] => srcs.push(Src::Net(*one)),
                _ => {
                    let mut name = format!("{PREFIX}{roles}-{suffix}");
                    if name.len() > IPSET_NAME_MAX {
                        name = format!("{PREFIX}src-{suffix}");
                    }
                    let base = name.clone();
                    let mut n = 1;
                    while !used.insert(name.clone()) {
                        n += 1;
                        name = format!("{base}-{n}");
                    }
                    srcs.push(Src::Set(sets.len()));
                    sets.push(IpSet {
                        name,
                        family,
                        roles: roles.replace('-', ", "),
                        zones: s.source_zones.clone(),
                        entries: nets,
                    });
                }
            }
        }
        by_sources.insert(s.sources.clone(), srcs);
    }
    (sets, by_sources)
}

fn ipset_xml(request: &Request, set: &IpSet) -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<ipset type=\"hash:net\">\n");
    let _ = writeln!(
        x,
        "  <short>{}</short>",
        xml(&format!("SCC sources of role {}", set.roles))
    );
    let _ = writeln!(
        x,
        "  <description>{}</description>",
        xml(&format!(
            "Sinch Contact Center ({}, {}): the networks of role {} (zones {})",
            request.deployment.name,
            request.mode.scope(),
            set.roles,
            set.zones.join(", ")
        ))
    );
    if set.family == "inet6" {
        x.push_str("  <option name=\"family\" value=\"inet6\"/>\n");
    }
    for e in &set.entries {
        let _ = writeln!(x, "  <entry>{e}</entry>");
    }
    x.push_str("</ipset>\n");
    x
}

/// The rich rules of a service: every source (network or ipset) to every destination of the same
/// family. Only addresses and our own service and ipset names go in, so single quotes around the
/// rule are safe.
fn rich_rules(s: &Service, srcs: &[Src], sets: &[IpSet]) -> Vec<String> {
    let mut rules = Vec::new();
    for src in srcs {
        let (v6, source) = match src {
            Src::Net(n) => (matches!(n, IpNet::V6(_)), format!("address=\"{n}\"")),
            Src::Set(i) => (
                sets[*i].family == "inet6",
                format!("ipset=\"{}\"", sets[*i].name),
            ),
        };
        for dst in &s.destinations {
            if matches!(dst, IpNet::V6(_)) != v6 {
                continue; // no packet has a source and a destination of different families
            }
            let family = if v6 { "ipv6" } else { "ipv4" };
            rules.push(format!(
                "rule family=\"{family}\" source {source} destination address=\"{}\" service name=\"{}\" accept",
                net(dst),
                s.name
            ));
        }
    }
    rules
}

impl Generator for Firewalld {
    fn name(&self) -> &'static str {
        "firewalld"
    }

    fn about(&self) -> &'static str {
        "shell script: a firewalld service XML per component and source role, bound by rich rules restricting sources (zone for a host, policy for --network)"
    }

    fn generate(&self, request: &Request) -> String {
        let services = services(request);
        let (sets, by_sources) = ipsets(&services);
        let network = matches!(request.mode, Mode::Network);
        let mut o = String::new();
        o.push_str("#!/bin/sh\n");
        for line in text::header(request, self.name(), "firewalld rules") {
            let _ = writeln!(o, "# {line}");
        }
        let target = if network {
            format!(
                "the policy `{POLICY}` (forwarded traffic; ingress and egress zones from INGRESS_ZONES and EGRESS_ZONES, default ANY)"
            )
        } else {
            "the zone ZONE (default: firewalld's default zone)".to_string()
        };
        let _ = write!(
            o,
            r#"#
# Run as root. Every run does the same, so it is safe to run again after a change:
#   1. removes what an earlier run installed: the rich rules naming {PREFIX}* services from
#      every zone and policy, the policy {POLICY}, and the {PREFIX}*.xml service and ipset files;
#   2. writes one service file per component and source role, and one ipset (hash:net) per
#      source role with more than one network (heredocs below);
#   3. binds each service with rich rules restricting source and destination addresses in
#      {target}.
# With firewalld running the permanent configuration is changed and reloaded; without it the
# configuration is written offline (firewall-offline-cmd). Environment:
#   ZONE=NAME           the zone for the rich rules (default: firewalld's default zone)
#   FIREWALLD_DIR=PATH  write an offline copy of the configuration in PATH instead of
#                       /etc/firewalld (staging, images, review); firewalld is not touched
set -eu

FIREWALLD_DIR="${{FIREWALLD_DIR:-/etc/firewalld}}"
if [ "$FIREWALLD_DIR" = /etc/firewalld ] && firewall-cmd --state >/dev/null 2>&1; then
    ONLINE=1
    DEFAULT_ZONE=$(firewall-cmd --get-default-zone)
else
    ONLINE=0
    # A new offline copy starts from this host's settings (or firewalld's default zone):
    # without a firewalld.conf, firewall-offline-cmd prints ERROR on every call.
    if [ "$FIREWALLD_DIR" != /etc/firewalld ] && [ ! -e "$FIREWALLD_DIR/firewalld.conf" ]; then
        mkdir -p "$FIREWALLD_DIR"
        if [ -f /etc/firewalld/firewalld.conf ]; then
            cp /etc/firewalld/firewalld.conf "$FIREWALLD_DIR/firewalld.conf"
        else
            echo DefaultZone=public >"$FIREWALLD_DIR/firewalld.conf"
        fi
    fi
    DEFAULT_ZONE=$(firewall-offline-cmd --system-config "$FIREWALLD_DIR" --get-default-zone)
fi
ZONE="${{ZONE:-$DEFAULT_ZONE}}"

fw() {{
    if [ "$ONLINE" = 1 ]; then
        firewall-cmd --permanent "$@"
    else
        firewall-offline-cmd --system-config "$FIREWALLD_DIR" "$@"
    fi
}}

reload() {{
    if [ "$ONLINE" = 1 ]; then
        firewall-cmd --reload >/dev/null
    fi
}}

# Removes the rich rules naming our services from one zone or policy ($1 = --zone or --policy).
unbind() {{
    fw "$1=$2" --list-rich-rules | grep -F 'service name="{PREFIX}' | while IFS= read -r rule; do
        fw "$1=$2" --remove-rich-rule="$rule" >/dev/null
    done
}}

# 1. Remove what an earlier run installed.
for zone in $(fw --get-zones); do
    unbind --zone "$zone"
done
for policy in $(fw --get-policies); do
    if [ "$policy" = {POLICY} ]; then
        fw --delete-policy={POLICY} >/dev/null
    else
        unbind --policy "$policy"
    fi
done
mkdir -p "$FIREWALLD_DIR/services" "$FIREWALLD_DIR/ipsets"
rm -f "$FIREWALLD_DIR/services/{PREFIX}"*.xml "$FIREWALLD_DIR/ipsets/{PREFIX}"*.xml

# 2. The services: one per component and source role.
"#
        );
        for s in &services {
            let _ = writeln!(
                o,
                "cat > \"$FIREWALLD_DIR/services/{}.xml\" <<'{EOF}'",
                s.name
            );
            o.push_str(&service_xml(request, s));
            let _ = writeln!(o, "{EOF}");
        }
        if !sets.is_empty() {
            o.push_str(
                "\n# The ipsets: the networks of each source role with more than one network.\n",
            );
        }
        for set in &sets {
            let _ = writeln!(
                o,
                "cat > \"$FIREWALLD_DIR/ipsets/{}.xml\" <<'{EOF}'",
                set.name
            );
            o.push_str(&ipset_xml(request, set));
            let _ = writeln!(o, "{EOF}");
        }
        o.push_str(
            "\n# Let firewalld read the new services and ipsets before rules name them.\nreload\n\n",
        );
        let bind = if network {
            let _ = write!(
                o,
                r#"# 3. The policy for forwarded traffic, and its rich rules.
fw --new-policy={POLICY} >/dev/null
for zone in ${{INGRESS_ZONES:-ANY}}; do
    fw --policy={POLICY} --add-ingress-zone="$zone" >/dev/null
done
for zone in ${{EGRESS_ZONES:-ANY}}; do
    fw --policy={POLICY} --add-egress-zone="$zone" >/dev/null
done
"#
            );
            format!("--policy={POLICY}")
        } else {
            o.push_str("# 3. The rich rules: each service from its sources to its destinations.\n");
            "--zone=\"$ZONE\"".to_string()
        };
        // The rules are collected in the positional parameters and added by one call below.
        o.push_str("set --\n");
        let mut total = 0;
        for s in &services {
            let rules = rich_rules(s, &by_sources[&s.sources], &sets);
            let _ = writeln!(
                o,
                "\n# {}: from {} ({}) to {}",
                s.name,
                s.role.as_str(),
                one_line(&s.source_zones.join(", ")),
                s.destinations
                    .iter()
                    .map(net)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for n in &s.notes {
                let _ = writeln!(o, "#   {}", one_line(n));
            }
            if rules.is_empty() {
                o.push_str("#   (no source of the destinations' address family: no rule)\n");
                continue;
            }
            total += rules.len();
            for r in &rules {
                let _ = writeln!(o, "set -- \"$@\" --add-rich-rule='{r}'");
            }
        }
        // One call for every rule: one configuration load (offline) or one D-Bus round trip.
        let _ = writeln!(
            o,
            "\nif [ \"$#\" -gt 0 ]; then\n    fw {bind} \"$@\" >/dev/null\nfi"
        );
        let place = if network {
            format!("policy {POLICY}")
        } else {
            "zone $ZONE".to_string()
        };
        let _ = write!(
            o,
            "\nreload\necho \"scc-ports: {} services, {total} rich rules in {place}\"\n",
            services.len()
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_and_stays_on_one_line() {
        assert_eq!(
            xml("a<b>&\"c'\nd\u{FFFF}"),
            "a&lt;b&gt;&amp;&quot;c&apos; d "
        );
    }
}
