//! The merged report: probe results, audited firewalls (`--audit`) and drift (`--compare`) in one
//! document per format. Without `--audit` and `--compare` each renderer is the probe report's
//! own; with them, one verdict on top (`passed` needs every part), then each part's section.
//! Every text from a file goes out through its sink ([`crate::safe`]).

use std::fmt::Write as _;

use super::audit::{Audit, Audits};
use super::drift::{Change, Drift, PortState, State};
use super::graph::{Graph, colour, esc};
use super::text::{fence, plain};
use super::{Report, Status, text};
use crate::safe::{Sink, clean};

/// True when the report holds probe results (a report made from audits alone has no rows).
pub fn probed(r: &Report) -> bool {
    !(r.rows.is_empty() && r.inputs.is_empty())
}

/// An audit-only report: the probe part emptied (no planned port is "untested" for want of a
/// prober that nobody ran), the plan's check findings kept.
pub fn without_probes(r: &mut Report) {
    r.rows.clear();
    r.groups.clear();
    r.failures.clear();
    r.untested_zones.clear();
    r.stray.clear();
    r.summary = super::Summary::default();
    r.flows = super::FlowCounts::default();
}

/// Sets `passed` from every part: the probes' (when there are any), the audits', and nothing
/// worse since the earlier run.
pub fn finish(r: &mut Report) {
    r.passed = (!probed(r) || r.probes_passed())
        && r.audit.as_ref().is_none_or(|a| a.passed)
        && r.drift.as_ref().is_none_or(|d| !d.worse);
}

/// What this run found, for a later `--compare`.
pub fn state(r: &Report) -> State {
    State {
        ports: probed(r).then(|| {
            r.rows
                .iter()
                .map(|row| PortState {
                    zone: row.zone.clone(),
                    node: row.node.clone(),
                    address: row.address.to_string(),
                    transport: row.transport.as_str().to_string(),
                    port: row.port,
                    component: row.component.clone(),
                    port_id: row.port_id.clone(),
                    status: row.status.as_str().to_string(),
                })
                .collect()
        }),
        audits: r.audit.as_ref().map(|a| a.audits.clone()),
    }
}

fn merged(r: &Report) -> bool {
    r.audit.is_some() || r.drift.is_some()
}

/// The verdict of every part, one line each: (`probes`, …), (`audits`, …), (`drift`, …).
fn parts(r: &Report) -> Vec<(&'static str, String)> {
    let mut v = Vec::new();
    if probed(r) {
        v.push(("probes", text::verdict(r)));
    }
    if let Some(a) = &r.audit {
        v.push(("audits", a.verdict()));
    }
    if let Some(d) = &r.drift {
        v.push(("drift", d.verdict()));
    }
    v
}

fn overall(r: &Report) -> &'static str {
    if r.passed { "PASSED" } else { "FAILED" }
}

// --- table ---

pub fn table(r: &Report, width: usize) -> String {
    if !merged(r) {
        return text::table(r, width);
    }
    let mut s = format!("System {}: {}\n", plain(&r.name), overall(r));
    for (part, verdict) in parts(r) {
        let _ = writeln!(s, "  {part}: {}", plain(&verdict));
    }
    if probed(r) {
        // The probe report without its first line (its verdict is above).
        let probe = text::table(r, width);
        let _ = writeln!(s, "\nProbe results:");
        s.push_str(probe.split_once('\n').map_or("", |(_, rest)| rest));
    }
    if let Some(a) = &r.audit {
        s.push_str(&audit_table(a));
    }
    if let Some(d) = &r.drift {
        s.push_str(&drift_table(d));
    }
    s
}

fn audit_table(a: &Audits) -> String {
    let mut s = String::new();
    if !a.rejected.is_empty() {
        let _ = writeln!(
            s,
            "\nAudit files that do not count ({}; their findings are not used):",
            a.rejected.len()
        );
        for r in &a.rejected {
            let _ = writeln!(
                s,
                "  {} ({}): {}",
                plain(&r.file),
                plain(&r.firewall),
                plain(&r.reason)
            );
        }
    }
    let _ = writeln!(s, "\nAudited firewalls ({}):", a.audits.len());
    for (i, au) in a.audits.iter().enumerate() {
        let _ = writeln!(
            s,
            "\n{}. {}: {}",
            i + 1,
            plain(&au.firewall),
            plain(&au.verdict())
        );
        let _ = writeln!(s, "   audit: {}", plain(&source(au)));
        if let Some(fix) = &au.fix {
            let _ = writeln!(s, "   fix:   {}", plain(fix));
        }
        if let Some(note) = &au.fix_note {
            let _ = writeln!(s, "   note:  {}", plain(note));
        }
        let bad: Vec<_> = au.not_admitted().collect();
        if !bad.is_empty() {
            let _ = writeln!(s, "   not admitted ({}):", bad.len());
            for f in bad {
                let _ = writeln!(s, "     {} {}", plain(&f.status), plain(&f.line()));
                let _ = writeln!(s, "       {}", plain(&f.why()));
            }
        }
        if !au.openings.is_empty() {
            let _ = writeln!(s, "   open beyond the plan ({}):", au.openings.len());
            for o in &au.openings {
                let _ = writeln!(s, "     {}", plain(&o.line()));
                let _ = writeln!(s, "       by {}", plain(&o.rule));
            }
        }
    }
    s
}

/// `app1.json (iptables-save of admin.rules; subject from the file name)`.
fn source(a: &Audit) -> String {
    let mut s = format!("{} ({}", a.file, a.format);
    if let Some(r) = &a.ruleset {
        let _ = write!(s, " of {r}");
    }
    match a.subject.from.as_str() {
        "file name" => s.push_str("; the firewall taken from the file name"),
        "flows" => s.push_str("; the firewall taken from its flows"),
        "unknown" => s.push_str("; which firewall is not known: the file does not say"),
        _ => {}
    }
    s.push(')');
    s
}

/// The drift's lists, each with its title: (title, changes).
fn drift_lists(d: &Drift) -> [(&'static str, &[Change]); 4] {
    [
        ("Newly failing", &d.newly_failing),
        ("Newly open beyond the plan", &d.newly_open),
        ("Newly fixed", &d.newly_fixed),
        ("Closed openings", &d.closed),
    ]
}

fn drift_table(d: &Drift) -> String {
    let mut s = format!("\nSince {}:\n", plain(&d.old));
    for (title, list) in drift_lists(d) {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "  {title} ({}):", list.len());
        for c in list {
            let _ = writeln!(s, "    {}", plain(&c.line()));
        }
    }
    if drift_lists(d).iter().all(|(_, l)| l.is_empty()) {
        s.push_str("  nothing changed\n");
    }
    for n in &d.notes {
        let _ = writeln!(s, "  note: {}", plain(n));
    }
    s
}

// --- Markdown ---

fn md(text: &str) -> String {
    clean(Sink::Markdown, text).into_owned()
}

pub fn markdown(r: &Report) -> String {
    if !merged(r) {
        return text::markdown(r);
    }
    let mut s = format!("# scc-ports report: {}\n\n", md(&r.name));
    let _ = writeln!(s, "**{}**\n", overall(r));
    for (part, verdict) in parts(r) {
        let _ = writeln!(s, "- {part}: {}", md(&verdict));
    }
    if probed(r) {
        let probe = text::markdown(r);
        // The probe report without its title and verdict (above).
        let body = probe.splitn(3, "\n\n").nth(2).unwrap_or("");
        let _ = write!(s, "\n## Probe results\n\n{body}");
    }
    if let Some(a) = &r.audit {
        s.push_str(&audit_markdown(a));
    }
    if let Some(d) = &r.drift {
        s.push_str(&drift_markdown(d));
    }
    s
}

fn code_block(indent: &str, text: &str) -> String {
    let f = fence(text);
    format!("{indent}{f}sh\n{indent}{}\n{indent}{f}\n", plain(text))
}

fn audit_markdown(a: &Audits) -> String {
    let mut s = String::from("\n## Audited firewalls\n\n");
    s.push_str("| firewall | audit | flows | not admitted | openings beyond the plan | verdict |\n|---|---|---|---|---|---|\n");
    for au in &a.audits {
        let cell = |t: &str| clean(Sink::Markdown, t).into_owned();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} |",
            cell(&au.firewall),
            cell(&source(au)),
            au.counts.flows,
            au.counts.not_admitted,
            au.counts.openings,
            if au.exact { "exact" } else { "not exact" }
        );
    }
    if !a.rejected.is_empty() {
        s.push_str("\n### Audit files that do not count\n\n");
        for r in &a.rejected {
            let _ = writeln!(
                s,
                "- {} ({}): {}",
                md(&r.file),
                md(&r.firewall),
                md(&r.reason)
            );
        }
    }
    for au in a.audits.iter().filter(|a| !a.exact) {
        let _ = writeln!(s, "\n### {}\n\n{}\n", md(&au.firewall), md(&au.verdict()));
        if let Some(fix) = &au.fix {
            let _ = writeln!(s, "Fix:\n\n{}", code_block("", fix));
        }
        if let Some(note) = &au.fix_note {
            let _ = writeln!(s, "Note: {}\n", md(note));
        }
        let bad: Vec<_> = au.not_admitted().collect();
        if !bad.is_empty() {
            s.push_str("Not admitted:\n\n");
            for f in bad {
                let _ = writeln!(
                    s,
                    "- **{}** {}: {}",
                    md(&f.status),
                    md(&f.line()),
                    md(&f.why())
                );
            }
            s.push('\n');
        }
        if !au.openings.is_empty() {
            s.push_str("Open beyond the plan:\n\n");
            for o in &au.openings {
                let _ = writeln!(s, "- {} by {}", md(&o.line()), md(&o.rule));
            }
        }
    }
    s
}

fn drift_markdown(d: &Drift) -> String {
    let mut s = format!("\n## Since {}\n\n**{}**\n", md(&d.old), md(&d.verdict()));
    for (title, list) in drift_lists(d) {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n### {title}\n");
        for c in list {
            let _ = writeln!(s, "- {}", md(&c.line()));
        }
    }
    if !d.notes.is_empty() {
        s.push('\n');
        for n in &d.notes {
            let _ = writeln!(s, "- note: {}", md(n));
        }
    }
    s
}

// --- JUnit ---

fn xml(text: &str) -> String {
    clean(Sink::Markup, text).into_owned()
}

/// One test suite per audited firewall (a test case per flow and per opening), one for the audit
/// files that do not count, one for the drift: (tests, failures, the suites' XML).
fn junit_suites(r: &Report) -> (usize, usize, String) {
    let (mut tests, mut failures, mut x) = (0, 0, String::new());
    if let Some(a) = &r.audit {
        for au in &a.audits {
            let fix = match (&au.fix, &au.fix_note) {
                (Some(f), _) => format!("\nfix: {}", xml(f)),
                (None, Some(n)) => format!("\nfix: {}", xml(n)),
                _ => String::new(),
            };
            let bad = au.counts.not_admitted + au.counts.openings;
            let _ = writeln!(
                x,
                "  <testsuite name=\"audit: {}\" tests=\"{}\" failures=\"{bad}\" errors=\"0\" skipped=\"0\">",
                xml(&au.firewall),
                au.flows.len() + au.openings.len()
            );
            for f in &au.flows {
                let _ = write!(
                    x,
                    "    <testcase classname=\"{}\" name=\"{}\"",
                    xml(&f.component),
                    xml(&f.line())
                );
                if f.admitted() {
                    x.push_str("/>\n");
                } else {
                    let _ = writeln!(
                        x,
                        ">\n      <failure type=\"{}\" message=\"{}: {}\">{}{fix}</failure>\n    </testcase>",
                        xml(&f.status),
                        xml(&f.status),
                        xml(&f.why()),
                        xml(&f.why())
                    );
                }
            }
            for o in &au.openings {
                let _ = writeln!(
                    x,
                    "    <testcase classname=\"opening\" name=\"{}\">\n      <failure type=\"open\" message=\"open beyond the plan by {}\">{}{fix}</failure>\n    </testcase>",
                    xml(&o.line()),
                    xml(&o.rule),
                    xml(&o.rule)
                );
            }
            x.push_str("  </testsuite>\n");
            tests += au.flows.len() + au.openings.len();
            failures += bad;
        }
        if !a.rejected.is_empty() {
            let n = a.rejected.len();
            let _ = writeln!(
                x,
                "  <testsuite name=\"audit files\" tests=\"{n}\" failures=\"{n}\" errors=\"0\" skipped=\"0\">"
            );
            for rj in &a.rejected {
                let _ = writeln!(
                    x,
                    "    <testcase classname=\"audit-file\" name=\"{}\">\n      <failure type=\"plan\" message=\"does not count: {}\"/>\n    </testcase>",
                    xml(&rj.file),
                    xml(&rj.reason)
                );
            }
            x.push_str("  </testsuite>\n");
            tests += n;
            failures += n;
        }
    }
    if let Some(d) = &r.drift {
        let worse = d.newly_failing.len() + d.newly_open.len();
        let all = worse + d.newly_fixed.len() + d.closed.len();
        let _ = writeln!(
            x,
            "  <testsuite name=\"since {}\" tests=\"{all}\" failures=\"{worse}\" errors=\"0\" skipped=\"0\">",
            xml(&d.old)
        );
        for (title, list) in drift_lists(d) {
            let bad = matches!(title, "Newly failing" | "Newly open beyond the plan");
            for c in list {
                let _ = write!(
                    x,
                    "    <testcase classname=\"{}\" name=\"{}: {}\"",
                    xml(&title.to_lowercase()),
                    xml(&c.place),
                    xml(&c.what)
                );
                if bad {
                    let _ = writeln!(
                        x,
                        ">\n      <failure type=\"drift\" message=\"{}: before {}, now {}\"/>\n    </testcase>",
                        xml(&title.to_lowercase()),
                        xml(&c.before),
                        xml(&c.now)
                    );
                } else {
                    x.push_str("/>\n");
                }
            }
        }
        x.push_str("  </testsuite>\n");
        tests += all;
        failures += worse;
    }
    (tests, failures, x)
}

/// A number in the `<testsuites>` line of the probe report (`tests="12"`).
fn attribute(head: &str, name: &str) -> usize {
    head.split_once(&format!(" {name}=\""))
        .and_then(|(_, rest)| rest.split_once('"'))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or(0)
}

pub fn junit(r: &Report) -> String {
    if !merged(r) {
        return text::junit(r);
    }
    let (mut tests, mut failures, suites) = junit_suites(r);
    let mut body = String::new();
    if probed(r) {
        let probe = text::junit(r);
        // The probe report's suites: between its <testsuites …> line and </testsuites>.
        let mut it = probe.lines().skip(1);
        let head = it.next().unwrap_or_default();
        tests += attribute(head, "tests");
        failures += attribute(head, "failures");
        for l in it.filter(|l| *l != "</testsuites>") {
            body.push_str(l);
            body.push('\n');
        }
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"scc-ports report {}\" tests=\"{tests}\" failures=\"{failures}\">\n{body}{suites}</testsuites>\n",
        xml(&r.name)
    )
}

// --- HTML ---

fn audit_html(a: &Audits) -> String {
    // A section of its own: its blocks are not the probe failures' siblings (`#failures ~
    // .failure` counts those).
    let mut h = format!(
        "<section id=\"audit\">\n<h2 id=\"audits\">Audited firewalls ({})</h2>\n<p class=\"verdict {}\" id=\"audit-verdict\">{}</p>\n",
        a.audits.len(),
        if a.passed { "passed" } else { "failed" },
        esc(&a.verdict())
    );
    h.push_str("<table id=\"audit-summary\"><tr><th>firewall</th><th>audit</th><th>flows</th><th>not admitted</th><th>openings beyond the plan</th><th>verdict</th></tr>\n");
    for au in &a.audits {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"st\" style=\"color:{}\">{}</td></tr>",
            esc(&au.firewall),
            esc(&source(au)),
            au.counts.flows,
            au.counts.not_admitted,
            au.counts.openings,
            colour(Some(if au.exact {
                Status::Verified
            } else {
                Status::Filtered
            })),
            if au.exact { "exact" } else { "not exact" }
        );
    }
    h.push_str("</table>\n");
    for au in a.audits.iter().filter(|a| !a.exact) {
        let _ = writeln!(
            h,
            "<div class=\"failure audit\"><h3>{}: {}</h3>",
            esc(&au.firewall),
            esc(&au.verdict())
        );
        if let Some(fix) = &au.fix {
            let _ = writeln!(
                h,
                "<p><b>Fix</b> (writes the changes that bring it to the plan):</p>\n<pre class=\"fix\">{}</pre>",
                esc(fix)
            );
        }
        if let Some(note) = &au.fix_note {
            let _ = writeln!(h, "<p class=\"muted\">{}</p>", esc(note));
        }
        let bad: Vec<_> = au.not_admitted().collect();
        if !bad.is_empty() {
            h.push_str("<p><b>Not admitted</b></p>\n<table><tr><th>status</th><th>from</th><th>to</th><th>proto/ports</th><th>flow</th><th>why</th></tr>\n");
            for f in bad {
                let _ = writeln!(
                    h,
                    "<tr><td class=\"st\" style=\"color:{}\">{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td><td>{}</td></tr>",
                    colour(Some(Status::Filtered)),
                    esc(&f.status),
                    esc(&f.zone),
                    esc(&f.address),
                    esc(&f.transport),
                    esc(&f.ports),
                    esc(&f.label()),
                    esc(&f.why())
                );
            }
            h.push_str("</table>\n");
        }
        if !au.openings.is_empty() {
            h.push_str("<p><b>Open beyond the plan</b></p>\n<table><tr><th>sources</th><th>to</th><th>proto/ports</th><th>rule</th></tr>\n");
            for o in &au.openings {
                let _ = writeln!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}/{}</td><td>{}</td></tr>",
                    esc(&o.sources.join(", ")),
                    esc(&o.addresses.join(", ")),
                    esc(&o.transport),
                    esc(&o.ports),
                    esc(&o.rule)
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str("</div>\n");
    }
    if !a.rejected.is_empty() {
        let _ = writeln!(
            h,
            "<h3 id=\"audit-rejected\">Audit files that do not count ({})</h3>\n<p>Their findings are not used.</p>\n<table><tr><th>file</th><th>firewall</th><th>why</th></tr>",
            a.rejected.len()
        );
        for r in &a.rejected {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&r.file),
                esc(&r.firewall),
                esc(&r.reason)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</section>\n");
    h
}

fn drift_html(d: &Drift) -> String {
    let mut h = format!(
        "<section id=\"since\">\n<h2 id=\"drift\">Since {}</h2>\n<p class=\"verdict {}\" id=\"drift-verdict\">{}</p>\n",
        esc(&d.old),
        if d.worse { "failed" } else { "passed" },
        esc(&d.verdict())
    );
    for (title, list) in drift_lists(d) {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(
            h,
            "<h3>{title} ({})</h3>\n<table><tr><th>where</th><th>what</th><th>before</th><th>now</th></tr>",
            list.len()
        );
        for c in list {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&c.place),
                esc(&c.what),
                esc(&c.before),
                esc(&c.now)
            );
        }
        h.push_str("</table>\n");
    }
    if !d.notes.is_empty() {
        h.push_str("<ul class=\"muted\">\n");
        for n in &d.notes {
            let _ = writeln!(h, "<li>{}</li>", esc(n));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</section>\n");
    h
}

/// The page: the probe report's (its verdict the merged one, the audit and drift sections
/// before its matrix), or without probe results a page of the audits and the drift, with the
/// picture of the plan (`picture` drawn without rows).
pub fn html(r: &Report, picture: &Graph) -> String {
    if !merged(r) {
        return super::html::render(r, picture);
    }
    let mut sections = String::new();
    if let Some(a) = &r.audit {
        sections.push_str(&audit_html(a));
    }
    if let Some(d) = &r.drift {
        sections.push_str(&drift_html(d));
    }
    let mut verdict = overall(r).to_string();
    for (part, v) in parts(r) {
        let _ = write!(verdict, "; {part}: {v}");
    }
    let extra = super::html::Extra {
        verdict: Some((r.passed, verdict)),
        sections,
    };
    if probed(r) {
        super::html::render_with(r, picture, &extra)
    } else {
        super::html::audit_page(r, picture, &extra)
    }
}
