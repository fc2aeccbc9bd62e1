//! The report as text: a terminal table, Markdown, and JUnit XML (one test case per group).

use std::fmt::Write as _;

use super::{Failure, Report, Status};
use crate::render::{Column, Format, Grid};
use crate::safe::{Sink, clean, lines};

/// One line for the terminal ([`Sink::Terminal`]): a line break or bidi control from a result
/// file cannot forge a line (a verdict) of its own.
pub(super) fn plain(text: &str) -> String {
    clean(Sink::Terminal, text).into_owned()
}

fn matrix(report: &Report) -> Grid {
    let mut g = Grid::new(vec![
        Column::new("ZONE"),
        Column::new("NODE"),
        Column::new("ADDRESS"),
        Column::new("PROTO"),
        Column::new("PORTS"),
        Column::new("STATUS"),
        Column::wrapping("COMPONENT.PORT"),
    ]);
    for grp in &report.groups {
        g.push(vec![
            plain(&grp.zone),
            plain(&grp.node),
            grp.address.to_string(),
            grp.transport.as_str().to_string(),
            grp.ports_text(),
            grp.status.as_str().to_string(),
            plain(&grp.label()),
        ]);
    }
    g
}

/// One line, flows first and ports second: `FAILED: 12 planned flows: 9 passed, 1 failed, 2
/// untested (ports: 3 of 120 not verified: 1 filtered, 2 untested)` or `PASSED: …`.
pub fn verdict(report: &Report) -> String {
    let s = &report.summary;
    let f = &report.flows;
    let parts: Vec<String> = Status::ALL
        .iter()
        .filter(|st| **st != Status::Verified && s.count(**st) > 0)
        .map(|st| format!("{} {}", s.count(*st), st.as_str()))
        .collect();
    let rejected = match report.rejected.len() {
        0 => String::new(),
        1 => "1 result file does not count for the zone it names".to_string(),
        n => format!("{n} result files do not count for the zones they name"),
    };
    if report.probes_passed() {
        format!(
            "PASSED: all {} planned flows verified from every zone ({} ports)",
            f.planned, s.planned
        )
    } else if s.verified == s.planned {
        format!("FAILED: {rejected}")
    } else {
        let mut v = format!(
            "FAILED: {} planned flows: {} passed, {} failed, {} untested (ports: {} of {} not verified{})",
            f.planned,
            f.passed,
            f.failed,
            f.untested,
            s.planned - s.verified,
            s.planned,
            if parts.is_empty() {
                String::new()
            } else {
                format!(": {}", parts.join(", "))
            }
        );
        if !rejected.is_empty() {
            v = format!("{v}; {rejected}");
        }
        v
    }
}

/// One line per result file that does not count: the file, the zone it names, why.
fn rejected_lines(report: &Report) -> Vec<String> {
    report
        .rejected
        .iter()
        .map(|r| format!("{}: {}", r.file, r.reason))
        .collect()
}

/// One line per zone no result covers: `carrier: 12 flows, 32770 ports untested: run …`.
pub fn untested_zone_lines(report: &Report) -> Vec<String> {
    report
        .untested_zones
        .iter()
        .map(|u| {
            format!(
                "zone {}: {} flows, {} ports untested: {}",
                u.zone, u.flows, u.ports, u.action
            )
        })
        .collect()
}

fn failure_heading(f: &Failure) -> String {
    let g = &f.group;
    format!(
        "{} from zone {} to {} {} {} on {} ({}): {}",
        g.label(),
        g.zone,
        g.address,
        g.transport.as_str(),
        g.ports_text(),
        g.node,
        match (&g.unit, &g.workstations) {
            (Some(u), _) => format!("unit {u}"),
            (None, Some(_)) => "a sample agent PC".into(),
            (None, None) => "node address".into(),
        },
        g.status.as_str()
    )
}

/// The terminal report: verdict, each failure with cause and fix, the grouped matrix.
pub fn table(report: &Report, width: usize) -> String {
    let mut s = format!("System {}: {}\n", plain(&report.name), verdict(report));
    if !report.rejected.is_empty() {
        let _ = writeln!(
            s,
            "\nResult files that do not count ({}; their results are not used):",
            report.rejected.len()
        );
        for l in rejected_lines(report) {
            let _ = writeln!(s, "  {}", plain(&l));
        }
    }
    let untested = untested_zone_lines(report);
    if !untested.is_empty() {
        let _ = writeln!(s, "\nUntested zones (no probe result covers them):");
        for l in &untested {
            let _ = writeln!(s, "  {}", plain(l));
        }
    }
    if !report.failures.is_empty() {
        let _ = writeln!(s, "\nFailures ({}):", report.failures.len());
        for (i, f) in report.failures.iter().enumerate() {
            let _ = writeln!(s, "\n{}. {}", i + 1, plain(&failure_heading(f)));
            if let Some(d) = &f.group.detail {
                let _ = writeln!(s, "   detail: {}", plain(d));
            }
            for l in &f.listener {
                let _ = writeln!(s, "   listener: {}", plain(l));
            }
            let _ = writeln!(s, "   cause:  {}", plain(&f.cause));
            let _ = writeln!(s, "   fix:    {}", plain(&f.action));
            for h in &f.hops {
                let _ = writeln!(s, "   {} ({}):", plain(&h.firewall), h.target);
                for line in h.rule.lines() {
                    let _ = writeln!(s, "      {}", plain(line));
                }
            }
        }
    }
    if !report.stray.is_empty() {
        let _ = writeln!(
            s,
            "\n{} results match no planned port of their zone (was the plan changed after probing?)",
            report.stray.len()
        );
    }
    let _ = writeln!(s, "\nMatrix (consecutive ports with one status grouped):");
    s.push_str(&matrix(report).render(Format::Table, width));
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == crate::diag::Severity::Error)
        .count();
    if !report.findings.is_empty() {
        let _ = writeln!(
            s,
            "\nCheck: {} findings ({errors} errors); `scc-ports check FILE` shows them",
            report.findings.len()
        );
    }
    s
}

/// A fence longer than any backtick run in `text`, so rule text cannot close it.
pub(super) fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

/// Markdown text outside tables ([`Sink::Markdown`]).
fn md(text: &str) -> String {
    clean(Sink::Markdown, text).into_owned()
}

/// Markdown for a wiki or a ticket: verdict, failures with fixes, the matrix, findings.
pub fn markdown(report: &Report) -> String {
    let mut s = format!("# scc-ports report: {}\n\n", md(&report.name));
    let _ = writeln!(s, "**{}**\n", md(&verdict(report)));
    let _ = writeln!(s, "| status | ports |\n|---|---|");
    for st in Status::ALL {
        let _ = writeln!(s, "| {} | {} |", st.as_str(), report.summary.count(st));
    }
    if !report.rejected.is_empty() {
        let _ = writeln!(s, "\n## Result files that do not count\n");
        for l in rejected_lines(report) {
            let _ = writeln!(s, "- {}", md(&l));
        }
    }
    let untested = untested_zone_lines(report);
    if !untested.is_empty() {
        let _ = writeln!(s, "\n## Untested zones\n");
        for l in &untested {
            let _ = writeln!(s, "- {}", md(l));
        }
    }
    if !report.failures.is_empty() {
        let _ = writeln!(s, "\n## Failures\n");
        for (i, f) in report.failures.iter().enumerate() {
            let _ = writeln!(s, "{}. **{}**", i + 1, md(&failure_heading(f)));
            if let Some(d) = &f.group.detail {
                let _ = writeln!(s, "   - detail: {}", md(d));
            }
            for l in &f.listener {
                let _ = writeln!(s, "   - listener: {}", md(l));
            }
            let _ = writeln!(s, "   - cause: {}", md(&f.cause));
            let _ = writeln!(s, "   - fix: {}", md(&f.action));
            for h in &f.hops {
                let fence = fence(&h.rule);
                let _ = writeln!(
                    s,
                    "   - {} ({}):\n\n     {fence}\n{}     {fence}",
                    md(&h.firewall),
                    h.target,
                    h.rule
                        .lines()
                        .map(|l| format!("     {}\n", plain(l)))
                        .collect::<String>()
                );
            }
        }
    }
    let _ = writeln!(s, "\n## Matrix\n");
    s.push_str(&matrix(report).render(Format::Markdown, 0));
    if !report.findings.is_empty() {
        let _ = writeln!(s, "\n## Check findings\n");
        let mut g = Grid::new(vec![
            Column::new("code"),
            Column::new("severity"),
            Column::new("message"),
            Column::new("hint"),
        ]);
        for f in &report.findings {
            g.push(vec![
                f.code.to_string(),
                f.severity.as_str().to_string(),
                plain(&f.message),
                plain(&f.hint),
            ]);
        }
        s.push_str(&g.render(Format::Markdown, 0));
    }
    s
}

/// Text safe in XML 1.0 content and attributes ([`Sink::Markup`], one line).
fn xml(text: &str) -> String {
    clean(Sink::Markup, text).into_owned()
}

/// JUnit XML: one test suite per zone, one test case per matrix group; failures carry the cause
/// and the rules, untested groups are skipped.
pub fn junit(report: &Report) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let fails = report
        .groups
        .iter()
        .filter(|g| !matches!(g.status, Status::Verified | Status::Untested))
        .count()
        + report.rejected.len();
    let _ = writeln!(
        x,
        "<testsuites name=\"scc-ports report {}\" tests=\"{}\" failures=\"{fails}\">",
        xml(&report.name),
        report.groups.len() + report.rejected.len()
    );
    let mut zones: Vec<&str> = report.groups.iter().map(|g| g.zone.as_str()).collect();
    zones.dedup();
    let mut seen = std::collections::HashSet::new();
    zones.retain(|z| seen.insert(*z));
    for zone in zones {
        let groups: Vec<(usize, &super::Group)> = report
            .groups
            .iter()
            .enumerate()
            .filter(|(_, g)| g.zone == zone)
            .collect();
        let zf = groups
            .iter()
            .filter(|(_, g)| !matches!(g.status, Status::Verified | Status::Untested))
            .count();
        let skipped = groups
            .iter()
            .filter(|(_, g)| g.status == Status::Untested)
            .count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"zone {}\" tests=\"{}\" failures=\"{zf}\" errors=\"0\" skipped=\"{skipped}\">",
            xml(zone),
            groups.len()
        );
        for (_, g) in groups {
            let name = format!(
                "{} {}/{} {} ({})",
                g.address,
                g.transport.as_str(),
                g.ports,
                g.port_id,
                g.node
            );
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml(&g.component),
                xml(&name)
            );
            match g.status {
                Status::Verified => x.push_str("/>\n"),
                Status::Untested => {
                    let _ = writeln!(
                        x,
                        ">\n      <skipped message=\"untested: no probe result from zone {}\"/>\n    </testcase>",
                        xml(zone)
                    );
                }
                st => {
                    let f = report
                        .failures
                        .iter()
                        .find(|f| &f.group == g)
                        .expect("every failing group is diagnosed");
                    // Markup already: each text one line, only the rules keep their breaks.
                    let mut body = String::new();
                    if let Some(d) = &g.detail {
                        let _ = writeln!(body, "detail: {}", xml(d));
                    }
                    for l in &f.listener {
                        let _ = writeln!(body, "listener: {}", xml(l));
                    }
                    let _ = writeln!(body, "cause: {}\nfix: {}", xml(&f.cause), xml(&f.action));
                    for h in &f.hops {
                        let _ = write!(
                            body,
                            "{} ({}):\n{}",
                            xml(&h.firewall),
                            xml(&h.target),
                            lines(Sink::Markup, &h.rule)
                        );
                    }
                    let _ = writeln!(
                        x,
                        ">\n      <failure type=\"{}\" message=\"{}: {}\">{}</failure>\n    </testcase>",
                        st.as_str(),
                        st.as_str(),
                        xml(&f.cause),
                        body
                    );
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    if !report.rejected.is_empty() {
        let _ = writeln!(
            x,
            "  <testsuite name=\"result files\" tests=\"{n}\" failures=\"{n}\" errors=\"0\" skipped=\"0\">",
            n = report.rejected.len()
        );
        for r in &report.rejected {
            let _ = writeln!(
                x,
                "    <testcase classname=\"result-file\" name=\"{}\">\n      <failure type=\"zone\" message=\"does not count: {}\"/>\n    </testcase>",
                xml(&r.file),
                xml(&r.reason)
            );
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_outrun_backticks_and_markdown_escapes() {
        assert_eq!(fence("a ``` b"), "````");
        assert_eq!(fence("plain"), "```");
        assert_eq!(md("a|b*c-d\n"), "a\\|b\\*c-d ");
        assert_eq!(plain("a\u{1b}[31m\nPASSED"), "a [31m PASSED");
    }
}
