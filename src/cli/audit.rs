//! `audit`: reads a ruleset export, compares it with the plan's flows, prints the report.

use std::process::ExitCode;

use anyhow::Result;

use super::args::{AuditArgs, AuditFormat};
use super::{
    EXIT_NO, RULESET_HINT, emit, json, load_deployment, read_text, terminal_width, unknown,
};
use crate::audit::compare::{self, Opening, Report, Scope, Subject};
use crate::catalog::Catalog;
use crate::firewall::Mode;
use crate::render::{Column, Format, Grid};

/// The scope of a host or network firewall, checked against the deployment: the firewall mode
/// (to select the flows) and the audit scope (the addresses whose openings are listed).
pub(super) fn scope(
    dep: &crate::deployment::Deployment,
    plan: &crate::plan::Plan,
    node: Option<&str>,
) -> Result<(Mode, Scope)> {
    let Some(name) = node else {
        return Ok((Mode::Network, Scope::Network));
    };
    let Some(n) = dep.node(name) else {
        let known: Vec<&str> = dep.nodes.iter().map(|n| n.name.as_str()).collect();
        return Err(unknown("E011", "node", name, &known));
    };
    // The node's own address first, then its units' virtual IPs, each once (as `firewall`).
    let mut addresses = vec![n.address];
    for b in plan.for_host(name) {
        if let crate::plan::Host::Node { address, .. } = b.host {
            if !addresses.contains(&address) {
                addresses.push(address);
            }
        }
    }
    Ok((
        Mode::Node {
            name: name.to_string(),
            addresses: addresses.clone(),
        },
        Scope::Node(addresses),
    ))
}

/// Most files read from a firewalld configuration (a stock one has about 250).
const MAX_CONFIG_FILES: usize = 10_000;

/// Reads and parses a ruleset export (with its text, which a SARIF log points into), or a
/// firewalld configuration directory (no one text); unreadable input is an error (exit 2).
pub(super) fn load_ruleset(
    path: &std::path::Path,
) -> Result<(crate::audit::Ruleset, Option<std::sync::Arc<str>>)> {
    if std::fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Ok((load_firewalld_dir(path)?, None));
    }
    let source = read_text(path, RULESET_HINT)?;
    let rules = crate::audit::read(&path.display().to_string(), &source.text)?;
    Ok((rules, Some(source.text)))
}

/// A firewalld configuration: a copy of `/etc/firewalld`, or a root holding `etc/firewalld` and
/// `usr/lib/firewalld`. Only `firewalld.conf` and the `*.xml` files directly in `zones`,
/// `services`, `ipsets` and `policies` are read (no recursion, so no symlink loop); each is a regular file
/// of bounded size, and so is the sum.
fn load_firewalld_dir(path: &std::path::Path) -> Result<crate::audit::Ruleset> {
    use crate::audit::ConfigFile;
    let etc = path.join("etc/firewalld");
    let usr = path.join("usr/lib/firewalld");
    let layers: Vec<(bool, std::path::PathBuf)> = if etc.is_dir() || usr.is_dir() {
        vec![(true, usr), (false, etc)]
    } else if path.join("zones").is_dir() || path.join("firewalld.conf").is_file() {
        vec![(false, path.to_path_buf())]
    } else {
        return Err(super::not_an_input(
            path,
            format!(
                "{} is a directory, but not a firewalld configuration (no zones/, \
                 firewalld.conf, etc/firewalld or usr/lib/firewalld)",
                path.display()
            ),
            "give a copy of /etc/firewalld, or of / with etc/firewalld and usr/lib/firewalld \
             (docs/audit.md), or an export file",
        ));
    };
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let mut add = |system: bool, rel: String, file: &std::path::Path| -> Result<()> {
        if files.len() >= MAX_CONFIG_FILES {
            return Err(super::not_an_input(
                path,
                format!(
                    "{} holds more than {MAX_CONFIG_FILES} firewalld files",
                    path.display()
                ),
                "is it the right directory?",
            ));
        }
        let source = read_text(file, RULESET_HINT)?;
        total += source.text.len() as u64;
        if total > super::MAX_INPUT_BYTES {
            return Err(super::not_an_input(
                path,
                format!(
                    "the firewalld files of {} are too large (at most {} MiB in all are read)",
                    path.display(),
                    super::MAX_INPUT_BYTES >> 20
                ),
                "is it the right directory?",
            ));
        }
        files.push(ConfigFile {
            system,
            rel,
            // File names inside the directory are input too: no control character goes out.
            display: crate::audit::clean(&file.display().to_string()),
            text: source.text.to_string(),
        });
        Ok(())
    };
    for (system, dir) in layers {
        if !dir.is_dir() {
            continue;
        }
        let conf = dir.join("firewalld.conf");
        if std::fs::symlink_metadata(&conf).is_ok() {
            add(system, "firewalld.conf".into(), &conf)?;
        }
        for kind in ["zones", "services", "ipsets", "policies"] {
            let sub = dir.join(kind);
            if !sub.is_dir() {
                continue;
            }
            let list = std::fs::read_dir(&sub)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", sub.display()))?;
            let mut names: Vec<std::ffi::OsString> = Vec::new();
            for entry in list {
                let entry =
                    entry.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", sub.display()))?;
                names.push(entry.file_name());
                if names.len() > MAX_CONFIG_FILES {
                    break; // `add` says why
                }
            }
            names.sort();
            for name in names {
                let text = name.to_string_lossy();
                if !text.ends_with(".xml") {
                    continue; // firewalld reads only *.xml (backups stay out)
                }
                add(system, format!("{kind}/{text}"), &sub.join(&name))?;
            }
        }
    }
    Ok(crate::audit::read_firewalld_dir(
        &path.display().to_string(),
        &files,
    )?)
}

/// What `audit` and `firewall --diff` start from: the export, read and fit for the scope, and
/// the scope's planned flows.
struct Start {
    dep: crate::deployment::Deployment,
    rules: crate::audit::Ruleset,
    flows: Vec<crate::flows::Flow>,
    mode: Mode,
    scope: Scope,
    /// The network firewall the appliance is (`[firewalls.NAME]`).
    firewall: Option<String>,
    /// The export's text (none for a firewalld directory).
    text: Option<std::sync::Arc<str>>,
}

fn start(
    catalog: &Catalog,
    file: Option<&std::path::Path>,
    node: Option<&str>,
    ruleset: &std::path::Path,
    firewall: Option<&str>,
) -> Result<Start> {
    let dep = load_deployment(file, catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    let (mode, scope) = scope(&dep, &plan, node)?;
    let (rules, text) = load_ruleset(ruleset)?;
    let network = matches!(scope, Scope::Network);
    crate::audit::fits_scope(&ruleset.display().to_string(), &rules, network)?;
    let all = crate::flows::flows(&dep, catalog, &plan);
    let mut flows = crate::firewall::select(&dep, &all, &mode);
    // Windows rules bound to a program or service are read against the planned ports.
    let mut rules = crate::audit::windows::for_plan(rules, &flows);
    // A node that names its interfaces: its input interface tests become tests of the zones
    // behind them (docs/audit.md, Interfaces).
    if let Mode::Node { name, .. } = &mode {
        if let Some(n) = dep.node(name) {
            rules = crate::audit::interfaces::bind(&rules, &dep, n);
        }
    }
    if let (Some(_), false) = (
        firewall,
        network && crate::audit::appliance::is_appliance(rules.format),
    ) {
        return Err(super::not_an_input(
            ruleset,
            format!(
                "--firewall names an appliance, but {} is a {} export audited with {}",
                ruleset.display(),
                rules.format.as_str(),
                if network { "--network" } else { "--node" }
            ),
            "give --firewall only with --network and an appliance's configuration",
        ));
    }
    let mut name = None;
    if network && crate::audit::appliance::is_appliance(rules.format) {
        let fw;
        (rules, flows, fw) = appliance_scope(&dep, firewall, ruleset, &rules, flows)?;
        name = Some(fw);
    }
    Ok(Start {
        dep,
        rules,
        flows,
        mode,
        scope,
        firewall: name,
        text,
    })
}

/// An appliance's configuration audited as the firewall between zones: the deployment's
/// `[firewalls.NAME]` says which of its zones the appliance separates and by which names; its
/// rules are bound to those zones' addresses, and the flows are those that cross it, from the
/// zones they cross from; and the firewall's name.
fn appliance_scope(
    dep: &crate::deployment::Deployment,
    name: Option<&str>,
    path: &std::path::Path,
    rules: &crate::audit::Ruleset,
    flows: Vec<crate::flows::Flow>,
) -> Result<(crate::audit::Ruleset, Vec<crate::flows::Flow>, String)> {
    use crate::audit::appliance::bind::{bind, crossing, zones_of};
    let fw = pick_firewall(dep, name, path, rules)?;
    let zones = zones_of(dep, fw);
    let bound = bind(rules, &fw.name, &zones).map_err(|u| {
        let missing: Vec<String> = u
            .zones
            .iter()
            .map(|(zone, name)| {
                if zone == name {
                    format!("zone `{zone}`")
                } else {
                    format!("zone `{zone}` (as `{}`)", crate::audit::clip(name))
                }
            })
            .collect();
        let used: Vec<String> = u.known.iter().map(|n| crate::audit::clip(n)).collect();
        super::not_an_input(
            path,
            format!(
                "firewall {}: {} never named in this {} configuration (it names: {})",
                fw.name,
                missing.join(", "),
                rules.format.as_str(),
                if used.is_empty() { "nothing".to_string() } else { used.join(", ") }
            ),
            &format!(
                "give the appliance's name of each zone in [firewalls.{}.names] (docs/deployment.md)",
                fw.name
            ),
        )
    })?;
    Ok((bound, crossing(dep, fw, flows), fw.name.clone()))
}

/// The `[firewalls.NAME]` an appliance's configuration is: the one `--firewall` names, or the
/// deployment's only one.
fn pick_firewall<'a>(
    dep: &'a crate::deployment::Deployment,
    name: Option<&str>,
    path: &std::path::Path,
    rules: &crate::audit::Ruleset,
) -> Result<&'a crate::deployment::Firewall> {
    let known: Vec<&str> = dep.firewalls.iter().map(|f| f.name.as_str()).collect();
    Ok(match (name, dep.firewalls.as_slice()) {
        (Some(n), list) => list
            .iter()
            .find(|f| f.name == n)
            .ok_or_else(|| unknown("E033", "firewall", n, &known))?,
        (None, [one]) => one,
        (None, []) => {
            return Err(super::not_an_input(
                path,
                format!(
                    "{} is a {} configuration, but the deployment declares no [firewalls.NAME]: \
                     which of its zones the appliance separates, and by which names, is not known",
                    path.display(),
                    rules.format.as_str()
                ),
                "declare the firewall in the deployment file (docs/deployment.md, [firewalls])",
            ));
        }
        (None, _) => {
            return Err(super::not_an_input(
                path,
                format!(
                    "the deployment declares several firewalls ({}): which one is {}?",
                    known.join(", "),
                    path.display()
                ),
                "say which with --firewall NAME",
            ));
        }
    })
}

pub fn audit_cmd(catalog: &Catalog, args: AuditArgs) -> Result<ExitCode> {
    let Start {
        rules,
        flows,
        scope,
        mode,
        firewall,
        text,
        ..
    } = start(
        catalog,
        args.file.as_deref(),
        args.node.as_deref(),
        &args.ruleset,
        args.firewall.as_deref(),
    )?;
    let mut report = compare::audit(&rules, &flows, &scope);
    report.subject = Some(match mode {
        Mode::Node { name, .. } => Subject {
            kind: "node",
            name: Some(name),
        },
        _ => Subject {
            kind: "network",
            name: firewall,
        },
    });
    report.ruleset = Some(args.ruleset.display().to_string());
    let text = match args.format {
        AuditFormat::Json => json(&report)?,
        AuditFormat::Table => table(&report),
        AuditFormat::Csv => rows(&report).render(Format::Csv, usize::MAX),
        AuditFormat::Markdown => rows(&report).render(Format::Markdown, usize::MAX),
        AuditFormat::Sarif => json(&crate::render::sarif::audit(
            &report,
            &args.ruleset.display().to_string(),
            text.as_deref(),
        ))?,
    };
    emit(&text)?;
    Ok(if report.summary.exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO)
    })
}

/// The deciding rule as the table shows it: the rule itself (an engineer reads the rule, not a
/// line number), except that a set lookup too long for `room` characters is shortened to where
/// it is and the element that decides (`inet scc_ports input handle 12 [element 10.88.1.100 .
/// 21018 …]`): the element is what tells one flow from a thousand. The JSON has the whole text.
fn short_rule(rule: &str, room: usize) -> String {
    if rule.chars().count() <= room {
        return rule.to_string();
    }
    rule.split("; ")
        .map(|one| {
            let at = one.split_once(": ").map_or(one, |(at, _)| at);
            match one.rfind(" [element ") {
                Some(i) if one.ends_with(']') && at.len() < one.len() => {
                    format!("{at}{}", &one[i..])
                }
                _ => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A detail line wrapped to `width` columns: the first line indented 4, the others 6.
fn wrap_detail(detail: &str, width: usize, out: &mut String) {
    wrap_indented(detail, width, (4, 6), out);
}

/// A line wrapped to `width` columns, the first line and the others indented as given.
fn wrap_indented(text: &str, width: usize, (first, rest): (usize, usize), out: &mut String) {
    // The export's text is hostile: nothing of it reaches the terminal raw.
    let text = crate::safe::clean(crate::safe::Sink::Terminal, text);
    let lines = crate::render::table::wrap_hanging(
        &text,
        width.saturating_sub(first),
        width.saturating_sub(rest),
    );
    for (i, line) in lines.iter().enumerate() {
        out.push_str(&" ".repeat(if i == 0 { first } else { rest }));
        out.push_str(line);
        out.push('\n');
    }
}

/// What an opening's sources × addresses × ports hold that its rule does not open beyond the
/// plan: `21012 to 10.88.1.11; 8088 to 10.88.1.100 from 10.88.1.0/25` (the sources said when
/// they are not all of the opening's).
fn except_text(o: &Opening) -> String {
    o.except
        .iter()
        .map(|e| {
            let mut t = format!("{} to {}", e.ports, e.addresses.join(", "));
            if e.sources != o.sources {
                t.push_str(&format!(" from {}", e.sources.join(", ")));
            }
            t
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A grid without wrapping columns (one line per row), each row followed by its detail line.
fn with_details(grid: &Grid, details: &[String], width: usize) -> String {
    let text = grid.render(Format::Table, width);
    let mut lines = text.lines();
    let mut out = String::new();
    if let Some(header) = lines.next() {
        out.push_str(header);
        out.push('\n');
    }
    for (line, detail) in lines.zip(details) {
        out.push_str(line);
        out.push('\n');
        wrap_detail(detail, width, &mut out);
    }
    out
}

/// Every flow and every opening beyond the plan (one per rule) as one row (`kind` says which),
/// for CSV and Markdown: `from` is the flow's zones or the opening's source ranges; `except`
/// what of an opening's sources × addresses × ports its rule does not open beyond the plan.
fn rows(r: &Report) -> Grid {
    let mut g = Grid::new(
        [
            "kind",
            "status",
            "from",
            "address",
            "transport",
            "ports",
            "flow",
            "blocked",
            "rule",
            "except",
        ]
        .into_iter()
        .map(Column::new)
        .collect(),
    );
    for f in &r.flows {
        g.push(vec![
            "flow".into(),
            f.status.to_string(),
            f.zone.clone(),
            f.address.clone(),
            f.transport.to_string(),
            f.ports.clone(),
            format!("{}.{}", f.component, f.port_id),
            f.blocked.join(" "),
            f.rule.clone(),
            String::new(),
        ]);
    }
    for o in &r.openings {
        g.push(vec![
            "extra".into(),
            "extra".into(),
            o.sources.join(", "),
            o.addresses.join(", "),
            o.transport.to_string(),
            o.ports.clone(),
            String::new(),
            String::new(),
            o.rule.clone(),
            except_text(o),
        ]);
    }
    g
}

fn table(r: &Report) -> String {
    let width = terminal_width();
    let mut flows = Grid::new(vec![
        Column::new("STATUS"),
        Column::new("FROM"),
        Column::new("TO"),
        Column::new("PORTS"),
        Column::new("FLOW"),
    ]);
    let mut details = Vec::new();
    for f in &r.flows {
        let mut detail = String::new();
        if !f.blocked.is_empty() {
            detail.push_str(&format!("blocked {} ", f.blocked.join(",")));
        }
        if !f.blocked_sources.is_empty() {
            detail.push_str(&format!("from {} ", f.blocked_sources.join(", ")));
        }
        detail.push_str("by ");
        let room = width.saturating_sub(4 + detail.chars().count());
        detail.push_str(&short_rule(&f.rule, room));
        details.push(detail);
        flows.push(vec![
            f.status.to_string(),
            f.zone.clone(),
            f.address.clone(),
            format!("{}/{}", f.transport, f.ports),
            format!("{}.{}", f.component, f.port_id),
        ]);
    }
    let mut out = with_details(&flows, &details, width);
    if !r.openings.is_empty() {
        // One entry per rule: what it opens, what of that the plan (or another rule) has, and
        // the rule.
        out.push_str("\nOpen beyond the plan, by rule:\n");
        for o in &r.openings {
            let line = format!(
                "{}/{} from {} to {}",
                o.transport,
                o.ports,
                o.sources.join(", "),
                o.addresses.join(", ")
            );
            wrap_indented(&line, width, (0, 2), &mut out);
            if !o.except.is_empty() {
                wrap_detail(&format!("except {}", except_text(o)), width, &mut out);
            }
            wrap_detail(
                &format!("by {}", short_rule(&o.rule, width.saturating_sub(7))),
                width,
                &mut out,
            );
        }
    }
    let s = &r.summary;
    out.push_str(&format!(
        "\n{} flows: {} admitted, {} partial, {} blocked, {} undecided; {} extra opening{}{} ({}){}\n",
        s.flows,
        s.admitted,
        s.partial,
        s.blocked,
        s.undecided,
        s.extra,
        if s.extra == 1 { "" } else { "s" },
        match s.undecided_openings {
            0 => String::new(),
            n => format!(", {n} of them undecided"),
        },
        s.format,
        if s.exact {
            ": the ruleset admits exactly the plan"
        } else {
            ""
        }
    ));
    out
}

/// `firewall --diff RULES`: the changes that bring the exported ruleset to the plan.
pub fn diff_cmd(catalog: &Catalog, args: &super::args::FirewallArgs) -> Result<ExitCode> {
    let path = args.diff.as_deref().expect("called with --diff");
    let Start {
        dep,
        rules,
        flows,
        mode,
        scope,
        ..
    } = start(
        catalog,
        args.file.as_deref(),
        args.node.as_deref(),
        path,
        args.firewall.as_deref(),
    )?;
    if crate::audit::appliance::is_appliance(rules.format) {
        if !matches!(scope, Scope::Network) {
            return Err(super::not_an_input(
                path,
                format!(
                    "{} is a {} configuration: a firewall between zones, not a host's",
                    path.display(),
                    rules.format.as_str()
                ),
                "give --network (and --firewall NAME when the file declares several)",
            ));
        }
        return appliance_diff(&dep, &rules, &flows, args, path);
    }
    let (changes, after) = crate::audit::diff::diff(&rules, &flows, &scope);
    let header = vec![format!(
        "scc-ports firewall --diff: the changes that bring {} to the plan of {}",
        path.display(),
        match &mode {
            Mode::Node { name, .. } => format!("node {name}"),
            _ => "the network firewall".to_string(),
        }
    )];
    // The header counts the commands the script holds (render writes it).
    let text =
        crate::audit::diff::render(&args.target, &rules, &flows, &changes, &after, &header)?.text;
    match &args.output {
        Some(p) => super::write_atomically(p, &text)?,
        None => {
            emit(&text)?;
        }
    }
    // The answer is "no" when the changes cannot bring the ruleset to exactly the plan (the
    // notes say what is left).
    Ok(if after.summary.exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO)
    })
}

/// `firewall --network --diff` of an appliance's configuration: the commands, in the vendor's
/// syntax, that bring it to the plan's flows that cross it.
fn appliance_diff(
    dep: &crate::deployment::Deployment,
    rules: &crate::audit::Ruleset,
    flows: &[crate::flows::Flow],
    args: &super::args::FirewallArgs,
    path: &std::path::Path,
) -> Result<ExitCode> {
    if args.target != "aerleon" {
        return Err(super::not_an_input(
            path,
            format!(
                "{} is a {} configuration: its changes are written in the appliance's own \
                 commands, not for --target {}",
                path.display(),
                rules.format.as_str(),
                args.target
            ),
            "give --target aerleon (the target that writes the appliances' rules) with --network \
             (docs/audit.md, firewall --diff)",
        ));
    }
    let fw = pick_firewall(dep, args.firewall.as_deref(), path, rules)?;
    let zones = crate::audit::appliance::bind::zones_of(dep, fw);
    let source = read_text(path, RULESET_HINT)?;
    let header = vec![format!(
        "scc-ports firewall --diff: the changes that bring {} to the plan of firewall {}",
        path.display(),
        fw.name
    )];
    let fix = crate::audit::appliance::diff::diff(
        &path.display().to_string(),
        &source.text,
        &fw.name,
        &zones,
        flows,
        &header,
    )?;
    match &args.output {
        Some(p) => super::write_atomically(p, &fix.text)?,
        None => {
            emit(&fix.text)?;
        }
    }
    Ok(if fix.after.summary.exact {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_that_fits_is_shown_whole_and_a_long_set_lookup_by_its_element() {
        let rule = "line 12: -A INPUT -s 10.88.3.0/24 -j ACCEPT";
        assert_eq!(short_rule(rule, 80), rule);
        let set = "inet scc_ports input handle 16: ip saddr 10.88.1.0/24 ip daddr . tcp dport \
                   @servers_tcp_v4 accept comment \"from:servers/tcp\" [element 10.88.1.100 . \
                   21017]";
        assert_eq!(
            short_rule(set, 80),
            "inet scc_ports input handle 16 [element 10.88.1.100 . 21017]"
        );
        // Without an element nothing is cut: the rule is wrapped instead.
        let long = format!("{rule} {}", "-m comment --comment x ".repeat(5));
        assert_eq!(short_rule(&long, 40), long);
    }

    #[test]
    fn details_wrap_at_spaces_within_the_width() {
        let mut out = String::new();
        let words = "by line 18: -A SERVERS -d 10.88.1.101/32 -p tcp -m multiport --dports \
                     21006:21007,21010 -j ACCEPT";
        wrap_detail(words, 40, &mut out);
        for line in out.lines() {
            assert!(line.chars().count() <= 40, "{line:?}");
        }
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("    by line 18:"));
        assert!(lines[1..].iter().all(|l| l.starts_with("      ")));
        let joined: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(joined, words.split_whitespace().collect::<Vec<_>>());
    }
}
