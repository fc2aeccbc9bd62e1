//! Plans and findings as text: the binding grid and the check report.

use std::fmt::Write;

use super::{Column, Format, Grid};
use crate::diag::Severity;
use crate::plan::{Binding, Finding};
use crate::safe::{Sink, clean};

pub fn ports_cell(b: &Binding) -> String {
    b.ports.to_string()
}

pub fn grid<'a>(bindings: impl IntoIterator<Item = &'a Binding>, format: Format) -> Grid {
    let columns = vec![
        Column::new(if format == Format::Table {
            "node"
        } else {
            "Node"
        }),
        Column::new("Address"),
        Column::new("Unit"),
        Column::new("Component"),
        Column::new("Port id"),
        Column::new("Transport"),
        Column::new("Ports"),
        Column::new("Origin"),
    ];
    let table = format == Format::Table;
    let columns = if table {
        columns
            .into_iter()
            .map(|c| Column {
                title: upper(c.title),
                ..c
            })
            .collect()
    } else {
        columns
    };
    let mut g = Grid::new(columns);
    for b in bindings {
        let node = if table {
            match &b.host {
                crate::plan::Host::Node { node, .. } => format!("node {node}"),
                crate::plan::Host::Workstations { zone, .. } => {
                    format!("zone {zone} (workstations)")
                }
            }
        } else {
            b.host.name().to_string()
        };
        g.push(vec![
            node,
            b.host.address_text(),
            b.unit.clone().unwrap_or_else(|| "-".into()),
            b.component.clone(),
            b.port_id.clone(),
            b.transport.as_str().to_string(),
            ports_cell(b),
            if table {
                b.origin.short_label(&b.component)
            } else {
                b.origin.label()
            },
        ]);
    }
    if table { g.grouped(1) } else { g }
}

fn upper(title: &'static str) -> &'static str {
    match title {
        "Address" => "ADDRESS",
        "Unit" => "UNIT",
        "Component" => "COMPONENT",
        "Port id" => "PORT ID",
        "Transport" => "PROTO",
        "Ports" => "PORTS",
        "Origin" => "ORIGIN",
        other => other,
    }
}

/// Counts of findings per severity.
pub fn summary(findings: &[Finding]) -> [(Severity, usize); 3] {
    [Severity::Error, Severity::Warning, Severity::Info]
        .map(|s| (s, findings.iter().filter(|f| f.severity == s).count()))
}

pub fn summary_line(findings: &[Finding]) -> String {
    let parts: Vec<String> = summary(findings)
        .iter()
        .map(|(s, n)| {
            let word = match (s, n) {
                (Severity::Error, 1) => "error",
                (Severity::Error, _) => "errors",
                (Severity::Warning, 1) => "warning",
                (Severity::Warning, _) => "warnings",
                (Severity::Info, _) => "info",
            };
            format!("{n} {word}")
        })
        .collect();
    parts.join(", ")
}

/// The check report for a person: one block per finding, then the summary. Names and file paths
/// in the findings are cleaned for the terminal ([`Sink::Terminal`]) before any styling is added.
pub fn findings_text(findings: &[Finding], styled: bool) -> String {
    let t = |text: &str| clean(Sink::Terminal, text).into_owned();
    let mut out = String::new();
    for f in findings {
        let style = match f.severity {
            Severity::Error => anstyle::AnsiColor::Red.on_default().bold(),
            Severity::Warning => anstyle::AnsiColor::Yellow.on_default().bold(),
            Severity::Info => anstyle::AnsiColor::Cyan.on_default().bold(),
        };
        let (on, off) = if styled {
            (style.render().to_string(), style.render_reset().to_string())
        } else {
            Default::default()
        };
        let _ = writeln!(
            out,
            "{on}{}[{}]{off} {}: {}",
            f.severity.as_str(),
            f.code,
            f.name,
            t(&f.message)
        );
        for p in &f.places {
            match &p.location {
                Some(l) => {
                    let _ = writeln!(out, "  --> {}  {}", t(&l.to_string()), t(&p.what));
                }
                None => {
                    let _ = writeln!(out, "  --> {}", t(&p.what));
                }
            }
        }
        let _ = writeln!(out, "  = hint: {}\n", t(&f.hint));
    }
    let _ = writeln!(out, "{}", summary_line(findings));
    out
}
