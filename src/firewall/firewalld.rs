//! `firewalld`: one re-runnable shell script that writes a service XML per component and source
//! role and binds each service with rich rules restricting source and destination addresses —
//! in a zone for a host (`--node`, `--workstations`), in a policy object for a router
//! (`--network`, firewalld ≥ 0.9).
//!
//! A service per component *and source role* (not per component) because a rich rule opens all
//! of a service's ports to its source: one service holding Connection Server's client port and
//! server port would open the server port to the agents' network.

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

/// Groups the flows into services: first by (component, role, destinations), then groups with
/// the same ports are joined (the same service bound to several destinations).
fn services(request: &Request) -> Vec<Service> {
    let mut first: Vec<Service> = Vec::new();
    for f in &request.flows {
        let note = format!("{} ({}): {}", f.label(), text::ports_text(f), f.purpose);
        let found = first.iter_mut().find(|s| {
            s.component == f.component && s.role == f.role && s.destinations == f.destination
        });
        let s = match found {
            Some(s) => s,
            None => {
                first.push(Service {
                    name: String::new(),
                    component: f.component.clone(),
                    role: f.role,
                    source_zones: f.source_zones.clone(),
                    sources: f.sources.clone(),
                    ports: Vec::new(),
                    destinations: f.destination.clone(),
                    notes: Vec::new(),
                });
                first.last_mut().expect("just pushed")
            }
        };
        s.ports.push((f.transport, f.ports));
        if !s.notes.contains(&note) {
            s.notes.push(note);
        }
    }
    let mut joined: Vec<Service> = Vec::new();
    for mut s in first {
        s.ports.sort();
        s.ports.dedup();
        match joined
            .iter_mut()
            .find(|j| j.component == s.component && j.role == s.role && j.ports == s.ports)
        {
            Some(j) => {
                for d in s.destinations {
                    if !j.destinations.contains(&d) {
                        j.destinations.push(d);
                    }
                }
                for n in s.notes {
                    if !j.notes.contains(&n) {
                        j.notes.push(n);
                    }
                }
            }
            None => joined.push(s),
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

/// The rich rules of a service: every source network to every destination of the same family.
/// Only addresses and our own service name go in, so single quotes around the rule are safe.
fn rich_rules(s: &Service) -> Vec<String> {
    let mut rules = Vec::new();
    for src in &s.sources {
        for dst in &s.destinations {
            let family = match (src, dst) {
                (IpNet::V4(_), IpNet::V4(_)) => "ipv4",
                (IpNet::V6(_), IpNet::V6(_)) => "ipv6",
                _ => continue, // no packet has a source and a destination of different families
            };
            rules.push(format!(
                "rule family=\"{family}\" source address=\"{src}\" destination address=\"{}\" service name=\"{}\" accept",
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
#      every zone and policy, the policy {POLICY}, and the {PREFIX}*.xml service files;
#   2. writes one service file per component and source role (heredocs below);
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
mkdir -p "$FIREWALLD_DIR/services"
rm -f "$FIREWALLD_DIR/services/{PREFIX}"*.xml

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
        o.push_str("\n# Let firewalld read the new services before rules name them.\nreload\n\n");
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
            let rules = rich_rules(s);
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
