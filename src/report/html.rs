//! The HTML report: one self-contained page (no scripts, fonts or images from anywhere), readable
//! without JavaScript and printable: verdict, the SVG picture, failures with their fixes, the
//! matrix, the check findings and the inputs. Every text from a file goes through [`esc`]
//! (`safe.rs`'s [`crate::safe::Sink::Markup`]).

use std::fmt::Write as _;

use super::graph::{self, Graph, colour, esc};
use super::{Report, Status};

const STYLE: &str = "
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 24px; color: #111827; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d1d5db; padding-bottom: 4px; }
.verdict { font-size: 16px; font-weight: 600; padding: 8px 12px; border-radius: 6px; display: inline-block; }
.passed { background: #dcfce7; color: #14532d; }
.failed { background: #fee2e2; color: #7f1d1d; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d1d5db; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
td.num { text-align: right; }
.st { font-weight: 600; }
.failure { border: 1px solid #fca5a5; border-left: 6px solid #dc2626; border-radius: 6px; padding: 8px 12px; margin: 10px 0; break-inside: avoid; }
.failure.open, .failure.inconclusive { border-color: #fdba74; border-left-color: #ea580c; }
.failure.untested { border-color: #d1d5db; border-left-color: #9ca3af; }
.failure h3 { font-size: 15px; margin: 0 0 6px; }
pre { background: #f9fafb; border: 1px solid #e5e7eb; padding: 8px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; font-size: 12px; }
.legend span { display: inline-block; margin-right: 14px; }
.legend svg { vertical-align: middle; margin-right: 4px; }
.picture { overflow-x: auto; }
.muted { color: #6b7280; }
@media print {
  body { margin: 0; font-size: 11px; }
  .picture svg { max-width: 100%; height: auto; }
  pre { white-space: pre-wrap; font-size: 9px; }
  h2 { break-after: avoid; }
  tr, .failure { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
";

fn status_cell(st: Status) -> String {
    format!(
        "<td class=\"st {}\" style=\"color:{}\">{}</td>",
        st.as_str(),
        colour(Some(st)),
        st.as_str()
    )
}

/// What the merged report (`--audit`, `--compare`) adds to the page: its verdict instead of the
/// probes', and its sections (before the matrix).
#[derive(Debug, Default)]
pub struct Extra {
    pub verdict: Option<(bool, String)>,
    /// Markup already (each text escaped by its writer).
    pub sections: String,
}

/// The page's head, up to and with `<body>`.
fn head(name: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n<title>scc-ports report: {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        esc(name)
    )
}

fn verdict_line(passed: bool, text: &str) -> String {
    format!(
        "<p class=\"verdict {}\" id=\"verdict\">{}</p>\n",
        if passed { "passed" } else { "failed" },
        esc(text)
    )
}

/// The page's end: what the fixes are written for (the probe fixes for `target`; an audit's fix
/// for its export's own format), and the version.
fn foot(target: Option<&str>, audits: bool) -> String {
    let fixes = match (target, audits) {
        (Some(t), false) => format!("Fixes are written for target {}. ", esc(t)),
        (Some(t), true) => format!(
            "Probe fixes are written for target {}; an audited firewall's fix for its own export's format. ",
            esc(t)
        ),
        (None, _) => {
            "Each audited firewall's fix is written for its own export's format. ".to_string()
        }
    };
    format!(
        "<p class=\"muted\">{fixes}Made by scc-ports {}.</p>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// A page without probe results: the audits and the drift ([`Extra`]), then the picture of the
/// plan (`picture` made without rows: every curve the plan's, grey).
pub fn audit_page(report: &Report, picture: &Graph, extra: &Extra) -> String {
    let mut h = head(&report.name);
    let _ = writeln!(h, "<h1>Firewall audit of system {}</h1>", esc(&report.name));
    let (passed, text) = extra
        .verdict
        .clone()
        .unwrap_or_else(|| (report.passed, String::new()));
    h.push_str(&verdict_line(passed, &text));
    h.push_str(&extra.sections);
    let _ = writeln!(
        h,
        "<h2 id=\"picture\">The plan: zones, units, nodes and flows</h2>\n<p class=\"muted\">Each curve is every planned port of a zone to a unit's virtual IP or a node's address; hover for counts.</p>\n<div class=\"picture\">\n{}</div>",
        graph::svg(picture)
    );
    h.push_str(&foot(None, report.audit.is_some()));
    h
}

/// The whole page.
pub fn render(report: &Report, picture: &Graph) -> String {
    render_with(report, picture, &Extra::default())
}

/// The whole page, with the merged report's verdict and sections.
pub fn render_with(report: &Report, picture: &Graph, extra: &Extra) -> String {
    let mut h = head(&report.name);
    let _ = writeln!(
        h,
        "<h1>Network verification of system {}</h1>",
        esc(&report.name)
    );
    match &extra.verdict {
        Some((passed, text)) => h.push_str(&verdict_line(*passed, text)),
        None => h.push_str(&verdict_line(
            report.probes_passed(),
            &super::text::verdict(report),
        )),
    }
    h.push_str("<table id=\"summary\"><tr><th>status</th><th>ports</th></tr>\n");
    for st in Status::ALL {
        let _ = writeln!(
            h,
            "<tr>{}<td class=\"num\">{}</td></tr>",
            status_cell(st),
            report.summary.count(st)
        );
    }
    let _ = writeln!(
        h,
        "<tr><th>planned</th><td class=\"num\">{}</td></tr></table>",
        report.summary.planned
    );

    let untested = super::text::untested_zone_lines(report);
    if !untested.is_empty() {
        h.push_str("<h2 id=\"untested\">Untested zones</h2>\n<ul>\n");
        for l in &untested {
            let _ = writeln!(h, "<li>{}</li>", esc(l));
        }
        h.push_str("</ul>\n");
    }

    h.push_str("<h2 id=\"picture\">Zones, units, nodes and flows</h2>\n<p class=\"legend\">");
    for st in Status::ALL {
        let _ = write!(h, "<span>{}{}</span>", graph::swatch(Some(st)), st.as_str());
    }
    let _ = writeln!(h, "<span>{}unit instance</span></p>", graph::swatch(None));
    let _ = writeln!(
        h,
        "<p class=\"muted\">Each curve is every planned port of a zone to a unit's virtual IP or a node's address, coloured and patterned by its worst status; hover for counts.</p>\n<div class=\"picture\">\n{}</div>",
        graph::svg(picture)
    );

    let _ = writeln!(
        h,
        "<h2 id=\"failures\">Failures and their fixes ({})</h2>",
        report.failures.len()
    );
    if report.failures.is_empty() {
        h.push_str("<p>None: every planned port was verified from every zone.</p>\n");
    }
    for f in &report.failures {
        let g = &f.group;
        let _ = writeln!(
            h,
            "<div class=\"failure {}\"><h3><span style=\"color:{}\">{}</span> {} {} {} to {} on {}{} from zone {}</h3>",
            g.status.as_str(),
            colour(Some(g.status)),
            g.status.as_str(),
            esc(&g.label()),
            g.transport.as_str(),
            esc(&g.ports_text()),
            g.address,
            esc(&g.node),
            g.unit
                .as_ref()
                .map_or(String::new(), |u| format!(" (unit {})", esc(u))),
            esc(&g.zone)
        );
        if let Some(d) = &g.detail {
            let _ = writeln!(h, "<p><b>Detail:</b> {}</p>", esc(d));
        }
        for l in &f.listener {
            let _ = writeln!(h, "<p><b>Listener:</b> {}</p>", esc(l));
        }
        let _ = writeln!(
            h,
            "<p><b>Likely cause:</b> {}</p>\n<p><b>Fix:</b> {}</p>",
            esc(&f.cause),
            esc(&f.action)
        );
        for hop in &f.hops {
            let _ = writeln!(
                h,
                "<p><b>{}</b> ({}):</p>\n<pre class=\"rule\">{}</pre>",
                esc(&hop.firewall),
                esc(&hop.target),
                crate::safe::lines(crate::safe::Sink::Markup, &hop.rule)
            );
        }
        h.push_str("</div>\n");
    }

    h.push_str(&extra.sections);
    let _ = writeln!(
        h,
        "<h2 id=\"matrix\">Matrix</h2>\n<p class=\"muted\">Consecutive ports of one range with one status are one line; report.json lists every port.</p>\n<table><tr><th>zone</th><th>node</th><th>address</th><th>proto</th><th>ports</th><th>status</th><th>component.port</th><th>detail</th></tr>"
    );
    for g in &report.groups {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{}<td>{}</td><td>{}</td></tr>",
            esc(&g.zone),
            esc(&g.node),
            g.address,
            g.transport.as_str(),
            esc(&g.ports_text()),
            status_cell(g.status),
            esc(&g.label()),
            esc(g.detail.as_deref().unwrap_or(""))
        );
    }
    h.push_str("</table>\n");

    let _ = writeln!(
        h,
        "<h2 id=\"findings\">Check findings ({})</h2>",
        report.findings.len()
    );
    if report.findings.is_empty() {
        h.push_str("<p>None.</p>\n");
    } else {
        h.push_str("<table><tr><th>code</th><th>severity</th><th>message</th><th>where</th><th>hint</th></tr>\n");
        for f in &report.findings {
            let places: Vec<String> = f
                .places
                .iter()
                .map(|p| match &p.location {
                    Some(l) => format!("{} ({l})", p.what),
                    None => p.what.clone(),
                })
                .collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(f.code),
                f.severity.as_str(),
                esc(&f.message),
                esc(&places.join("; ")),
                esc(&f.hint)
            );
        }
        h.push_str("</table>\n");
    }

    if !report.rejected.is_empty() {
        let _ = writeln!(
            h,
            "<h2 id=\"rejected\">Result files that do not count ({})</h2>\n<p>Their results are not used.</p>\n<table><tr><th>file</th><th>zone it names</th><th>why</th></tr>",
            report.rejected.len()
        );
        for r in &report.rejected {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.file),
                esc(&r.zone),
                esc(&r.reason)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2 id=\"inputs\">Probe results read</h2>\n");
    if report.inputs.is_empty() {
        h.push_str("<p>None: every planned port is untested.</p>\n");
    } else {
        h.push_str("<table><tr><th>file</th><th>zone</th><th>results</th></tr>\n");
        for i in &report.inputs {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
                esc(&i.file),
                esc(&i.zone),
                i.results
            );
        }
        h.push_str("</table>\n");
    }
    if !report.stray.is_empty() {
        let _ = writeln!(
            h,
            "<p>{} results match no planned port of their zone (was the plan changed after probing?).</p>",
            report.stray.len()
        );
    }
    h.push_str(&foot(Some(&report.target), report.audit.is_some()));
    h
}
