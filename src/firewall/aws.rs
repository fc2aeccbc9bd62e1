//! `aws`: Terraform for AWS security groups, one `aws_security_group` per node (`--node`: that
//! node; `--network`: every node with flows; `--workstations`: one per client zone), each
//! ingress rule its own `aws_vpc_security_group_ingress_rule` (the AWS provider's recommended
//! style since v5; one CIDR per resource).
//!
//! A security group cannot match a destination address: it admits to every address of the
//! interfaces it is attached to, so a node's group holds the flows to the node and to the
//! virtual IPs of its units' instances, whichever instance is active.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use ipnet::IpNet;

use super::text::{self, one_line, segments};
use super::{Generator, Mode, Request};
use crate::catalog::Transport;
use crate::flows::Flow;

pub struct Aws;

/// AWS's default quota of inbound rules per security group.
const RULE_QUOTA: usize = 60;
/// Descriptions of groups and rules are at most 255 characters.
const DESCRIPTION_MAX: usize = 255;

/// One ingress rule: what AWS compares for duplicates, plus what made it.
#[derive(Clone)]
struct Rule {
    transport: Transport,
    from: u16,
    to: u16,
    cidr: IpNet,
    /// `component.port-id` of the flows it carries (two components can share a port, e.g. HTTPS
    /// of two web units on one node: AWS rejects a duplicate rule, so they share one).
    labels: Vec<String>,
    role: String,
}

struct Group {
    /// The node or client zone.
    name: String,
    ident: String,
    rules: Vec<Rule>,
}

/// An HCL identifier: lowercase letters, digits and `_`, starting with a letter.
fn ident(text: &str) -> String {
    let s = Request::slug(text).replace('-', "_");
    if s.starts_with(|c: char| c.is_ascii_lowercase()) {
        s
    } else {
        format!("x_{s}")
    }
}

/// Text AWS accepts in a group or rule description (`a-zA-Z0-9. _-:/()#,@[]+=&;{}!$*`), at most
/// 255 characters: dashes become `-`, anything else outside the set a space.
fn aws_description(text: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c);
    let mapped: String = text
        .chars()
        .map(|c| match c {
            c if allowed(c) => c,
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            _ => ' ',
        })
        .collect();
    let words: Vec<&str> = mapped.split_whitespace().collect();
    let mut s = words.join(" ");
    if s.len() > DESCRIPTION_MAX {
        // ASCII only by now, so any byte index is a character boundary.
        s.truncate(DESCRIPTION_MAX - 3);
        s.push_str("...");
    }
    s
}

/// An HCL quoted string: escapes, and `${`/`%{` doubled so nothing is interpolated.
fn hcl(text: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The groups a flow belongs to: for `--network` a flow to a unit's virtual IP goes to every
/// instance node of the unit (the flow list names only one), so failover keeps working.
fn owners(request: &Request, f: &Flow) -> Vec<String> {
    if matches!(request.mode, Mode::Network) {
        if let Some(unit) = f.unit.as_ref().and_then(|u| {
            request
                .deployment
                .units
                .iter()
                .find(|x| &x.name == u && f.destination.contains(&IpNet::from(x.address)))
        }) {
            let nodes: Vec<String> = unit
                .instances
                .iter()
                .filter_map(|&i| request.deployment.nodes.get(i).map(|n| n.name.clone()))
                .collect();
            if !nodes.is_empty() {
                return nodes;
            }
        }
    }
    vec![f.node.clone()]
}

fn groups(request: &Request) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    // `--node` always gives the node its group, even without flows: it then admits nothing.
    if let Mode::Node { name, .. } = &request.mode {
        groups.push(Group {
            name: name.clone(),
            ident: String::new(),
            rules: Vec::new(),
        });
    }
    for f in &request.flows {
        for owner in owners(request, f) {
            let g = match groups.iter().position(|g| g.name == owner) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group {
                        ident: String::new(),
                        name: owner,
                        rules: Vec::new(),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            for (from, to) in segments(f.ports) {
                for &cidr in &f.sources {
                    let found = g.rules.iter_mut().find(|r| {
                        (r.transport, r.from, r.to, r.cidr) == (f.transport, from, to, cidr)
                    });
                    match found {
                        Some(r) => {
                            if !r.labels.contains(&f.label()) {
                                r.labels.push(f.label());
                            }
                        }
                        None => g.rules.push(Rule {
                            transport: f.transport,
                            from,
                            to,
                            cidr,
                            labels: vec![f.label()],
                            role: f.role.as_str().to_string(),
                        }),
                    }
                }
            }
        }
    }
    // Nodes in file order, then client zones in file order, whatever order the flows came in.
    let dep = request.deployment;
    let rank = |name: &str| {
        dep.nodes
            .iter()
            .position(|n| n.name == name)
            .or_else(|| {
                dep.zones
                    .iter()
                    .position(|z| z.name == name)
                    .map(|i| dep.nodes.len() + i)
            })
            .unwrap_or(usize::MAX)
    };
    groups.sort_by_key(|g| rank(&g.name));
    // Node and zone names may differ only in case or punctuation: make identifiers unique.
    let mut used = BTreeSet::new();
    for g in &mut groups {
        let base = ident(&g.name);
        let mut id = base.clone();
        let mut n = 1;
        while !used.insert(id.clone()) {
            n += 1;
            id = format!("{base}_{n}");
        }
        g.ident = id;
    }
    groups
}

/// A stable rule name from what the rule is (not its position), so adding a flow never renames
/// the others and Terraform never replaces rules needlessly.
fn rule_ident(group: &str, r: &Rule) -> String {
    let ports = if r.from == r.to {
        r.from.to_string()
    } else {
        format!("{}_{}", r.from, r.to)
    };
    ident(&format!(
        "{group}_{}_{}_{}_{ports}_{}",
        r.labels[0],
        r.role,
        r.transport.as_str(),
        r.cidr
    ))
}

impl Generator for Aws {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn about(&self) -> &'static str {
        "Terraform: an aws_security_group per node (or client zone) with one aws_vpc_security_group_ingress_rule per flow and CIDR"
    }

    fn generate(&self, request: &Request) -> String {
        let mut o = String::new();
        for line in text::header(request, self.name(), "AWS security groups (Terraform)") {
            let _ = writeln!(o, "# {line}");
        }
        let _ = write!(
            o,
            r#"#
# terraform init && terraform apply -var vpc_id=vpc-...; attach each group to its instances'
# network interfaces (output `security_group_ids`). A security group admits to every address
# of the interfaces it is attached to, so flows to a unit's virtual IP are in the group of each
# instance node. Outbound traffic stays open (AWS's default, which Terraform would remove).

terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }}
  }}
}}

variable "vpc_id" {{
  description = "The VPC of the Contact Center servers and workstations"
  type        = string
}}
"#
        );
        let groups = groups(request);
        let system = Request::slug(&request.deployment.name);
        for g in &groups {
            let what = if request.deployment.node(&g.name).is_some() {
                format!("node {}", g.name)
            } else {
                format!("agent workstations of client zone {}", g.name)
            };
            let _ = writeln!(
                o,
                "\n# {}: {} ingress rules",
                one_line(&what),
                g.rules.len()
            );
            if g.rules.len() > RULE_QUOTA {
                let _ = writeln!(
                    o,
                    "# More than AWS's default quota of {RULE_QUOTA} inbound rules per security group: ask for a\n# higher quota (Service Quotas, \"Inbound or outbound rules per security group\")."
                );
            }
            let group_name = if system.is_empty() {
                format!("scc-{}", Request::slug(&g.name))
            } else {
                format!("scc-{system}-{}", Request::slug(&g.name))
            };
            let description = aws_description(&format!(
                "Sinch Contact Center {}: {}",
                request.deployment.name, what
            ));
            let _ = write!(
                o,
                r#"resource "aws_security_group" "{id}" {{
  name        = {name}
  description = {description}
  vpc_id      = var.vpc_id

  tags = {{
    Name = {name}
  }}
}}

resource "aws_vpc_security_group_egress_rule" "{id}_all_ipv4" {{
  security_group_id = aws_security_group.{id}.id
  description       = "All outbound (AWS default)"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}}

resource "aws_vpc_security_group_egress_rule" "{id}_all_ipv6" {{
  security_group_id = aws_security_group.{id}.id
  description       = "All outbound (AWS default)"
  ip_protocol       = "-1"
  cidr_ipv6         = "::/0"
}}
"#,
                id = g.ident,
                name = hcl(&group_name),
                description = hcl(&description),
            );
            let mut used = BTreeSet::new();
            for r in &g.rules {
                let base = rule_ident(&g.ident, r);
                let mut id = base.clone();
                let mut n = 1;
                while !used.insert(id.clone()) {
                    n += 1;
                    id = format!("{base}_{n}");
                }
                let description = aws_description(&format!(
                    "{} from {} {} {}",
                    r.labels.join(" + "),
                    r.role,
                    r.transport.as_str(),
                    text::span((r.from, r.to))
                ));
                let (cidr_key, cidr) = match r.cidr {
                    IpNet::V4(c) => ("cidr_ipv4", c.to_string()),
                    IpNet::V6(c) => ("cidr_ipv6", c.to_string()),
                };
                let _ = write!(
                    o,
                    r#"
resource "aws_vpc_security_group_ingress_rule" "{id}" {{
  security_group_id = aws_security_group.{gid}.id
  description       = {description}
  ip_protocol       = "{proto}"
  from_port         = {from}
  to_port           = {to}
  {cidr_key:<17} = "{cidr}"
}}
"#,
                    gid = g.ident,
                    description = hcl(&description),
                    proto = r.transport.as_str(),
                    from = r.from,
                    to = r.to,
                );
            }
        }
        o.push_str("\noutput \"security_group_ids\" {\n  value = {\n");
        // Keys aligned as `terraform fmt` aligns them (by characters; names are ASCII).
        let keys: Vec<String> = groups.iter().map(|g| hcl(&g.name)).collect();
        let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
        for (g, key) in groups.iter().zip(&keys) {
            let _ = writeln!(o, "    {key:<width$} = aws_security_group.{}.id", g.ident);
        }
        o.push_str("  }\n}\n");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_use_the_allowed_characters() {
        assert_eq!(
            aws_description("OII \u{2013} Agent Server's \"x\"\n"),
            "OII - Agent Server s x"
        );
        assert_eq!(aws_description(&"a".repeat(300)).len(), 255);
    }

    #[test]
    fn hcl_strings_never_interpolate() {
        assert_eq!(hcl("a\"b\\${x}%{y}\n"), r#""a\"b\\$${x}%%{y}\n""#);
    }

    #[test]
    fn identifiers_start_with_a_letter() {
        assert_eq!(ident("APP_A1"), "app_a1");
        assert_eq!(ident("1st"), "x_1st");
        assert_eq!(ident(""), "x_");
    }
}
