//! `report`, `diagram` and `inventory`: the whole system's matrix and pictures, glue to `report`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::args::{DiagramArgs, DiagramFormat, ReportArgs, ReportFormat};
use super::{EXIT_NO, emit, json, load_deployment, read_file, terminal_width};
use crate::catalog::Catalog;
use crate::report::{self, audit, drift, graph, merged};

/// What an audit result or an earlier report is, for the messages about it.
const AUDIT_FILE: &str = "an audit result (`scc-ports audit … --format json`)";

/// `--audit` and `--compare`: the audits read, placed and checked against the plan; the earlier
/// run compared; `passed` made of every part.
fn merge(
    catalog: &Catalog,
    args: &ReportArgs,
    dep: &crate::deployment::Deployment,
    plan: &crate::plan::Plan,
    rep: &mut report::Report,
) -> Result<()> {
    if args.results.is_empty() && !args.audit.is_empty() {
        merged::without_probes(rep);
    }
    let candidates = audit::candidates(dep, catalog, plan);
    let deployment = args.file.display().to_string();
    let cx = audit::Context {
        candidates: &candidates,
        deployment: &deployment,
    };
    if !args.audit.is_empty() {
        let mut read = Vec::new();
        for path in &args.audit {
            let source = super::read_text(path, AUDIT_FILE)?;
            read.push(audit::read_file(&source.name, &source.text, &cx)?);
        }
        rep.audit = Some(audit::section(read));
    }
    if let Some(path) = &args.compare {
        let source = super::read_text(path, AUDIT_FILE)?;
        let (old, notes) = audit::read_earlier(&source.name, &source.text, &cx, &dep.name)?;
        let mut d = drift::compare(&source.name, &old, &merged::state(rep));
        d.notes.extend(notes);
        rep.drift = Some(d);
    }
    merged::finish(rep);
    Ok(())
}

pub fn report_cmd(catalog: &Catalog, args: ReportArgs) -> Result<ExitCode> {
    let dep = load_deployment(Some(&args.file), catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    if let Some((file, _)) = args
        .expect_zone
        .iter()
        .find(|(f, _)| !args.results.contains(f))
    {
        anyhow::bail!(
            "--expect-zone names {}, which is not among the result files; hint: give the same path as a result file",
            crate::safe::clean(crate::safe::Sink::Terminal, &file.display().to_string())
        );
    }
    let mut files = Vec::new();
    for path in &args.results {
        let source = read_file(path)?;
        let mut file = report::parse_probe(&source.name, &source.text, &dep)?;
        file.expected_zone = args
            .expect_zone
            .iter()
            .find(|(f, _)| f == path)
            .map(|(_, z)| z.clone());
        files.push(file);
    }
    let target = crate::firewall::target(&args.target).expect("clap checked the target");
    let mut rep = report::build(&dep, catalog, &plan, &files, target);
    let mut binds = Vec::new();
    for path in &args.listen_log {
        let source = read_file(path)?;
        binds.extend(report::parse_listen_log(&source.name, &source.text));
    }
    report::attach_listener_logs(&mut rep, &binds);
    if !args.audit.is_empty() || args.compare.is_some() {
        merge(catalog, &args, &dep, &plan, &mut rep)?;
    }
    let text = match args.format {
        ReportFormat::Table => merged::table(&rep, terminal_width()),
        ReportFormat::Json => json(&rep)?,
        ReportFormat::Junit => merged::junit(&rep),
        ReportFormat::Markdown => merged::markdown(&rep),
        ReportFormat::Html => {
            // Without probe results the picture is the plan's alone.
            let rows = merged::probed(&rep).then_some(rep.rows.as_slice());
            let picture = graph::build(&dep, &plan, rows);
            merged::html(&rep, &picture)
        }
    };
    match &args.output {
        Some(path) => super::write_atomically(path, &text)?,
        None => {
            emit(&text)?;
        }
    }
    Ok(if rep.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NO)
    })
}

pub fn diagram_cmd(catalog: &Catalog, args: DiagramArgs) -> Result<ExitCode> {
    let dep = load_deployment(args.file.as_deref(), catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    let g = graph::build(&dep, &plan, None);
    emit(&match args.format {
        DiagramFormat::Mermaid => graph::mermaid(&g),
        DiagramFormat::Dot => graph::dot(&g),
        DiagramFormat::Svg => graph::svg(&g),
    })
}

pub fn inventory_cmd(catalog: &Catalog, file: Option<&Path>) -> Result<ExitCode> {
    let dep = load_deployment(file, catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    emit(&report::inventory::inventory(&dep, &plan))
}
