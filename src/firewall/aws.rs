//! `aws`: Terraform for AWS security groups, one `aws_security_group` per node (`--node`: that
//! node; `--network`: every node with flows; `--workstations`: one per client zone), each
//! ingress rule its own `aws_vpc_security_group_ingress_rule` (the AWS provider's recommended
//! style since v5; one CIDR per resource).
//!
//! A security group cannot match a destination address: it admits to every address of the
//! interfaces it is attached to, so a node's group holds the flows to the node and to the
//! virtual IPs of its units' instances, whichever instance is active.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;

use ipnet::IpNet;

use super::nftables::SourceLists;
use super::text::{self, one_line, segments};
use super::{Generator, Mode, Request};
use crate::catalog::Transport;
use crate::flows::Flow;

pub struct Aws;

/// AWS's default quota of inbound rules per security group.
const RULE_QUOTA: usize = 60;
/// AWS's default quota of entries per customer-managed prefix list.
const PREFIX_LIST_MAX: usize = 1000;
/// Lists are split at this size: a reference counts as the list's entries against a group's rule
/// quota, so a longer list could not be used in any group at the default quotas.
const LIST_SPLIT: usize = if RULE_QUOTA < PREFIX_LIST_MAX {
    RULE_QUOTA
} else {
    PREFIX_LIST_MAX
};
/// AWS's default quota of security groups per network interface.
const GROUPS_PER_ENI: usize = 5;
/// Descriptions of groups and rules are at most 255 characters.
const DESCRIPTION_MAX: usize = 255;

/// Where an ingress rule admits from: one CIDR, or a managed prefix list (see [`PrefixList`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Src {
    Cidr(IpNet),
    List(usize),
}

/// One ingress rule: what AWS compares for duplicates, plus what made it.
#[derive(Clone)]
struct Rule {
    transport: Transport,
    from: u16,
    to: u16,
    source: Src,
    /// `component.port-id` of the flows it carries (two components can share a port, e.g. HTTPS
    /// of two web units on one node: AWS rejects a duplicate rule, so they share one).
    labels: Vec<String>,
    role: String,
}

struct Group {
    /// The node or client zone.
    name: String,
    ident: String,
    /// 1 for the first group of a node, 2, 3 … for the groups its rules overflow into.
    part: usize,
    rules: Vec<Rule>,
}

/// A customer-managed prefix list: the networks of one source list (the zones of a role) of
/// one address family, so that a group needs one rule per port span instead of one per network.
struct PrefixList {
    ident: String,
    name: String,
    /// The roles whose sources these are, in words.
    roles: String,
    zones: Vec<String>,
    entries: Vec<IpNet>,
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

/// What the groups are built from, looked up by name instead of scanned (a 10,000-node system
/// has tens of thousands of flows).
struct Index<'d> {
    /// Unit name to its instance nodes' names.
    units: HashMap<&'d str, (&'d crate::deployment::Unit, Vec<&'d str>)>,
    /// Node (and then client zone) name to its position in the file.
    rank: HashMap<&'d str, usize>,
    nodes: HashSet<&'d str>,
}

impl<'d> Index<'d> {
    fn new(dep: &'d crate::deployment::Deployment) -> Index<'d> {
        let units = dep
            .units
            .iter()
            .map(|u| {
                let nodes = u
                    .instances
                    .iter()
                    .filter_map(|&i| dep.nodes.get(i).map(|n| n.name.as_str()))
                    .collect();
                (u.name.as_str(), (u, nodes))
            })
            .collect();
        let mut rank = HashMap::new();
        for (i, n) in dep.nodes.iter().enumerate() {
            rank.entry(n.name.as_str()).or_insert(i);
        }
        for (i, z) in dep.zones.iter().enumerate() {
            rank.entry(z.name.as_str()).or_insert(dep.nodes.len() + i);
        }
        let nodes = dep.nodes.iter().map(|n| n.name.as_str()).collect();
        Index { units, rank, nodes }
    }

    /// The groups a flow belongs to: for `--network` a flow to a unit's virtual IP goes to every
    /// instance node of the unit (the flow list names only one), so failover keeps working.
    fn owners<'f>(&self, request: &Request, f: &'f Flow) -> Vec<&'f str>
    where
        'd: 'f,
    {
        if matches!(request.mode, Mode::Network) {
            if let Some((_, nodes)) =
                f.unit
                    .as_deref()
                    .and_then(|u| self.units.get(u))
                    .filter(|(unit, nodes)| {
                        !nodes.is_empty() && f.destination.contains(&IpNet::from(unit.address))
                    })
            {
                return nodes.clone();
            }
        }
        vec![f.node.as_str()]
    }
}

/// The prefix lists of the flows' source lists, for each source list the rule sources that stand
/// for it, and each flow's source list number. The rule sources: a list per family with more than one network (split at
/// [`PREFIX_LIST_MAX`] entries), a plain CIDR for a family with one.
fn prefix_lists(request: &Request) -> (Vec<PrefixList>, Vec<Vec<Src>>, Vec<usize>) {
    let system = Request::slug(&request.deployment.name);
    let mut lists: Vec<PrefixList> = Vec::new();
    // Per source list (numbered in order of first appearance): its rule sources and roles.
    let mut numbers = SourceLists::default();
    let mut of_flow: Vec<usize> = Vec::with_capacity(request.flows.len());
    let mut firsts: Vec<&Flow> = Vec::new();
    let mut roles_of: Vec<Vec<&str>> = Vec::new();
    for f in &request.flows {
        let (n, new) = numbers.number(f);
        if new {
            firsts.push(f);
            roles_of.push(Vec::new());
        }
        if !roles_of[n].contains(&f.role.as_str()) {
            roles_of[n].push(f.role.as_str());
        }
        of_flow.push(n);
    }
    let mut used = BTreeSet::new();
    let mut by_list: Vec<Vec<Src>> = Vec::new();
    for (f, roles) in firsts.iter().zip(&roles_of) {
        let roles = roles.join("-");
        let (v4, v6) = text::split_families(&f.sources);
        let families: [(&str, Vec<IpNet>); 2] = [
            ("ipv4", v4.into_iter().map(IpNet::V4).collect()),
            ("ipv6", v6.into_iter().map(IpNet::V6).collect()),
        ];
        let mut srcs = Vec::new();
        for (family, nets) in families {
            if let [one] = nets.as_slice() {
                srcs.push(Src::Cidr(*one));
                continue;
            }
            let chunks = nets.chunks(LIST_SPLIT).count();
            for (k, chunk) in nets.chunks(LIST_SPLIT).enumerate() {
                let part = if chunks > 1 {
                    format!("-{}", k + 1)
                } else {
                    String::new()
                };
                let mut name = if system.is_empty() {
                    format!("scc-{roles}-{family}{part}")
                } else {
                    format!("scc-{system}-{roles}-{family}{part}")
                };
                let base = name.clone();
                let mut n = 1;
                while !used.insert(name.clone()) {
                    n += 1;
                    name = format!("{base}-{n}");
                }
                srcs.push(Src::List(lists.len()));
                lists.push(PrefixList {
                    ident: ident(&name),
                    name,
                    roles: roles.replace('-', ", "),
                    zones: f.source_zones.to_vec(),
                    entries: chunk.to_vec(),
                });
            }
        }
        by_list.push(srcs);
    }
    (lists, by_list, of_flow)
}

/// How much of a group's rule quota a rule uses: 1, or a referenced prefix list's maximum
/// entries (AWS counts a prefix list reference as that many rules).
fn weight(r: &Rule, lists: &[PrefixList]) -> usize {
    match r.source {
        Src::Cidr(_) => 1,
        Src::List(i) => lists[i].entries.len(),
    }
}

fn groups(
    request: &Request,
    index: &Index,
    lists: &[PrefixList],
    sources: &[Vec<Src>],
    of_flow: &[usize],
) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    // Per group: (transport, from, to, source) to the rule's position.
    type Key = (Transport, u16, u16, Src);
    let mut rule_at: Vec<HashMap<Key, usize>> = Vec::new();
    // `--node` always gives the node its group, even without flows: it then admits nothing.
    if let Mode::Node { name, .. } = &request.mode {
        by_name.insert(name.clone(), 0);
        groups.push(Group {
            name: name.clone(),
            ident: String::new(),
            part: 1,
            rules: Vec::new(),
        });
        rule_at.push(HashMap::new());
    }
    for (f, &list) in request.flows.iter().zip(of_flow) {
        let label = f.label();
        let srcs = &sources[list];
        for owner in index.owners(request, f) {
            let gi = *by_name.entry(owner.to_string()).or_insert_with(|| {
                groups.push(Group {
                    ident: String::new(),
                    name: owner.to_string(),
                    part: 1,
                    rules: Vec::new(),
                });
                rule_at.push(HashMap::new());
                groups.len() - 1
            });
            let g = &mut groups[gi];
            for (from, to) in segments(f.ports) {
                for &source in srcs {
                    let key = (f.transport, from, to, source);
                    match rule_at[gi].get(&key) {
                        Some(&i) => {
                            let r = &mut g.rules[i];
                            if !r.labels.contains(&label) {
                                r.labels.push(label.clone());
                            }
                        }
                        None => {
                            rule_at[gi].insert(key, g.rules.len());
                            g.rules.push(Rule {
                                transport: f.transport,
                                from,
                                to,
                                source,
                                labels: vec![label.clone()],
                                role: f.role.as_str().to_string(),
                            });
                        }
                    }
                }
            }
        }
    }
    // Nodes in file order, then client zones in file order, whatever order the flows came in.
    groups.sort_by_key(|g| {
        index
            .rank
            .get(g.name.as_str())
            .copied()
            .unwrap_or(usize::MAX)
    });
    // Past the quota of rules per group, the rules go on in a second group of the node, and so
    // on.
    // First fit: each rule goes to the first of the node's groups with room for it.
    let mut split: Vec<Group> = Vec::new();
    for g in groups {
        let mut parts: Vec<(usize, Group)> = Vec::new();
        for r in g.rules {
            let w = weight(&r, lists);
            let room = parts.iter().position(|(used, _)| used + w <= RULE_QUOTA);
            let i = room.unwrap_or_else(|| {
                parts.push((
                    0,
                    Group {
                        name: g.name.clone(),
                        ident: String::new(),
                        part: parts.len() + 1,
                        rules: Vec::new(),
                    },
                ));
                parts.len() - 1
            });
            parts[i].0 += w;
            parts[i].1.rules.push(r);
        }
        if parts.is_empty() {
            split.push(Group {
                rules: Vec::new(),
                ..g
            });
        } else {
            split.extend(parts.into_iter().map(|(_, p)| p));
        }
    }
    // Node and zone names may differ only in case or punctuation: make identifiers unique.
    let mut used = BTreeSet::new();
    for g in &mut split {
        let base = if g.part == 1 {
            ident(&g.name)
        } else {
            format!("{}_part{}", ident(&g.name), g.part)
        };
        let mut id = base.clone();
        let mut n = 1;
        while !used.insert(id.clone()) {
            n += 1;
            id = format!("{base}_{n}");
        }
        g.ident = id;
    }
    split
}

/// A prefix list: its entries (each with the zones of the source list in its description) and
/// its maximum size (exactly its entries: the quota counts the maximum, not the entries used).
fn write_prefix_list(o: &mut String, l: &PrefixList) {
    let family = if matches!(l.entries.first(), Some(IpNet::V6(_))) {
        "IPv6"
    } else {
        "IPv4"
    };
    let shown: Vec<&str> = l.zones.iter().take(6).map(String::as_str).collect();
    let zones = match l.zones.len().saturating_sub(shown.len()) {
        0 => one_line(&shown.join(", ")),
        more => format!("{} and {more} more", one_line(&shown.join(", "))),
    };
    let _ = write!(
        o,
        r#"
# The networks of role {roles} ({zones}): {n} entries
resource "aws_ec2_managed_prefix_list" "{id}" {{
  name           = {name}
  address_family = "{family}"
  max_entries    = {n}
"#,
        roles = one_line(&l.roles),
        id = l.ident,
        name = hcl(&l.name),
        n = l.entries.len(),
    );
    for e in &l.entries {
        let _ = write!(
            o,
            "\n  entry {{\n    cidr        = \"{e}\"\n    description = {}\n  }}\n",
            hcl(&aws_description(&format!("role {}", l.roles)))
        );
    }
    o.push_str("}\n");
}

/// A stable rule name from what the rule is (not its position), so adding a flow never renames
/// the others and Terraform never replaces rules needlessly.
fn rule_ident(group: &str, r: &Rule, lists: &[PrefixList]) -> String {
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
        match r.source {
            Src::Cidr(c) => c.to_string(),
            Src::List(i) => lists[i].name.clone(),
        }
    ))
}

impl Generator for Aws {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn about(&self) -> &'static str {
        "Terraform: aws_security_groups per node (or client zone), split at AWS's rule quota, one ingress rule per port span and source; prefix lists for sources of several networks"
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
#
# AWS limits (default quotas, all adjustable in Service Quotas): {RULE_QUOTA} inbound rules per
# security group, a prefix list reference counting as its maximum entries; {PREFIX_LIST_MAX} entries per
# prefix list; {GROUPS_PER_ENI} security groups per network interface. A source of several networks is
# one customer-managed prefix list (split at {LIST_SPLIT} entries, so that each fits in a group);
# a node whose rules exceed one group's quota gets further groups (`NAME_part2` …), all listed
# in its `security_group_ids`.

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
        let index = Index::new(request.deployment);
        let (lists, sources, of_flow) = prefix_lists(request);
        let groups = groups(request, &index, &lists, &sources, &of_flow);
        let system = Request::slug(&request.deployment.name);
        for l in &lists {
            write_prefix_list(&mut o, l);
        }
        let mut parts: HashMap<&str, usize> = HashMap::new();
        for g in &groups {
            *parts.entry(g.name.as_str()).or_default() += 1;
        }
        for g in &groups {
            let what = if index.nodes.contains(g.name.as_str()) {
                format!("node {}", g.name)
            } else {
                format!("agent workstations of client zone {}", g.name)
            };
            let total = parts[g.name.as_str()];
            let part = if total > 1 {
                format!(" (group {} of {total})", g.part)
            } else {
                String::new()
            };
            let used: usize = g.rules.iter().map(|r| weight(r, &lists)).sum();
            let _ = writeln!(
                o,
                "\n# {}{part}: {} ingress rules, {used} of the quota of {RULE_QUOTA}",
                one_line(&what),
                g.rules.len()
            );
            if used > RULE_QUOTA {
                let _ = writeln!(
                    o,
                    "# More than AWS's default quota of {RULE_QUOTA} inbound rules per security group (a prefix list\n# counts as its entries): ask for a higher quota (Service Quotas, \"Inbound or outbound rules\n# per security group\"; rules per group x groups per interface stay within 1,000)."
                );
            }
            if g.part == 1 && total > GROUPS_PER_ENI {
                let _ = writeln!(
                    o,
                    "# {total} security groups: more than AWS's default of {GROUPS_PER_ENI} per network interface; ask for\n# a higher quota (\"Security groups per network interface\", at most 16) or a higher rule quota."
                );
            }
            let suffix = if g.part > 1 {
                format!("-part{}", g.part)
            } else {
                String::new()
            };
            let group_name = if system.is_empty() {
                format!("scc-{}{suffix}", Request::slug(&g.name))
            } else {
                format!("scc-{system}-{}{suffix}", Request::slug(&g.name))
            };
            let description = aws_description(&format!(
                "Sinch Contact Center {}: {what}{part}",
                request.deployment.name
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
                let base = rule_ident(&g.ident, r, &lists);
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
                let (cidr_key, cidr) = match r.source {
                    Src::Cidr(IpNet::V4(c)) => ("cidr_ipv4", format!("\"{c}\"")),
                    Src::Cidr(IpNet::V6(c)) => ("cidr_ipv6", format!("\"{c}\"")),
                    Src::List(i) => (
                        "prefix_list_id",
                        format!("aws_ec2_managed_prefix_list.{}.id", lists[i].ident),
                    ),
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
  {cidr_key:<17} = {cidr}
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
        // Per node (or client zone) the list of its groups, to attach all of them.
        let mut names: Vec<&str> = Vec::new();
        let mut ids: HashMap<&str, Vec<&str>> = HashMap::new();
        for g in &groups {
            let list = ids.entry(g.name.as_str()).or_default();
            if list.is_empty() {
                names.push(&g.name);
            }
            list.push(&g.ident);
        }
        // Keys aligned as `terraform fmt` aligns them (by characters; names are ASCII).
        let keys: Vec<String> = names.iter().map(|n| hcl(n)).collect();
        let width = keys.iter().map(|k| k.chars().count()).max().unwrap_or(0);
        for (name, key) in names.iter().zip(&keys) {
            let refs: Vec<String> = ids[name]
                .iter()
                .map(|id| format!("aws_security_group.{id}.id"))
                .collect();
            let _ = writeln!(o, "    {key:<width$} = [{}]", refs.join(", "));
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
