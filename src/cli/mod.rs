//! The command-line front end: runs a parsed command against the core and prints. The only printer.

pub mod args;
mod audit;
mod live;
mod report;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

pub use args::Cli;
use args::{
    CatalogArgs, CheckArgs, CheckFormat, ColorWhen, Command, FirewallArgs, FlowsArgs, PlanArgs,
};

use crate::catalog::Catalog;
use crate::deployment::{Deployment, Template};
use crate::diag::Diagnostic;
use crate::diag::{Diagnostics, Source};
use crate::plan::Plan;
use crate::render::{self, Format};
use crate::safe::{self, Sink};

/// Exit code for "the answer is no".
pub const EXIT_NO: u8 = 1;
/// Exit code for bad input or invocation.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Parses the process arguments, runs, and maps every outcome to an exit code. The one place
/// errors become exit codes.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_BAD_INPUT } else { 0 });
        }
    };
    match cli.color {
        ColorWhen::Auto => {}
        ColorWhen::Always => anstream::ColorChoice::Always.write_global(),
        ColorWhen::Never => anstream::ColorChoice::Never.write_global(),
    }
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            report(&err);
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn report(err: &anyhow::Error) {
    let red = anstyle::Style::new()
        .fg_color(Some(anstyle::AnsiColor::Red.into()))
        .bold();
    let mut stderr = anstream::stderr();
    // Located diagnostics carry their own "error[code]" prefix; other errors get one.
    if let Some(d) = err.downcast_ref::<Diagnostics>() {
        for (i, one) in d.0.iter().enumerate() {
            if i > 0 {
                let _ = writeln!(stderr);
            }
            let _ = writeln!(stderr, "{}", safe::terminal_lines(&one.to_string()));
        }
        return;
    }
    // Messages quote names and paths from the command line and the files: cleaned for the terminal.
    let _ = write!(
        stderr,
        "{red}error{red:#}: {}",
        safe::terminal_lines(&err.to_string())
    );
    for cause in err.chain().skip(1) {
        let _ = write!(
            stderr,
            "\n  caused by: {}",
            safe::terminal_lines(&cause.to_string())
        );
    }
    let _ = writeln!(stderr);
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let catalog = load_catalog(cli.catalog.as_deref())?;
    match cli.command {
        Command::Catalog(args) => catalog_cmd(&catalog, args),
        Command::Init { template } => emit(template.text()),
        Command::Plan(args) => plan_cmd(&catalog, args),
        Command::Check(args) => check_cmd(&catalog, args),
        Command::Flows(args) => flows_cmd(&catalog, args),
        Command::Firewall(args) => firewall_cmd(&catalog, args),
        Command::Listen(args) => live::listen_cmd(&catalog, args),
        Command::Probe(args) => live::probe_cmd(&catalog, args),
        Command::Report(args) => report::report_cmd(&catalog, args),
        Command::Diagram(args) => report::diagram_cmd(&catalog, args),
        Command::Inventory { file } => report::inventory_cmd(&catalog, file.as_deref()),
        Command::Audit(args) => audit::audit_cmd(&catalog, args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, "scc-ports", &mut out);
            emit(&String::from_utf8_lossy(&out))
        }
    }
}

/// The largest deployment or catalog file read: a generated system of 100,000 nodes and as many
/// units is about 30 MB.
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// An input file that cannot be one: a device, a directory, a FIFO, or too large.
fn not_an_input(path: &Path, what: String, hint: &str) -> anyhow::Error {
    let mut d = Diagnostic::error("E001", what).hint(hint);
    d.location = Some(crate::diag::Location {
        file: path.display().to_string(),
        line: 1,
        column: 1,
    });
    Diagnostics(vec![d]).into()
}

/// Reads a regular file of at most [`MAX_INPUT_BYTES`]: `/dev/zero`, a FIFO or a huge file is
/// refused before it is read, and a file that grows while read is cut off at the cap.
fn read_bounded(path: &Path, hint: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    // Asked before opening: opening a FIFO would wait for a writer.
    let before =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file = if before.is_file() {
        Some(std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?)
    } else {
        None
    };
    let meta = match &file {
        Some(f) => f
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?,
        None => before,
    };
    let Some(file) = file.filter(|_| meta.is_file()) else {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a device, FIFO or socket"
        };
        return Err(not_an_input(
            path,
            format!("{} is not a regular file ({kind})", path.display()),
            hint,
        ));
    };
    let too_large = |size: String| {
        not_an_input(
            path,
            format!(
                "{} is too large ({size}; at most {} MiB are read)",
                path.display(),
                MAX_INPUT_BYTES >> 20
            ),
            "is it the right file? a deployment of 100,000 nodes is about 30 MB",
        )
    };
    if meta.len() > MAX_INPUT_BYTES {
        return Err(too_large(format!("{} bytes", meta.len())));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(too_large("it grew while read".to_string()));
    }
    Ok(bytes)
}

fn read_file(path: &Path) -> Result<Source> {
    read_text(path, TOML_HINT)
}

const TOML_HINT: &str = "a TOML text file";

/// A ruleset export is not TOML: what its errors advise instead.
const RULESET_HINT: &str = "a ruleset export (the text or JSON file docs/audit.md names)";

/// Reads a UTF-8 text file without NUL bytes; `expected` names the kind of file asked for (the
/// hints say it).
fn read_text(path: &Path, expected: &str) -> Result<Source> {
    let bytes = read_bounded(path, &format!("give the path of {expected}"))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let source = Source::new(
            path.display().to_string(),
            String::from_utf8_lossy(&e.into_bytes()[..at]).into_owned(),
        );
        Diagnostics(vec![
            crate::diag::Diagnostic::error("E001", "the file is not UTF-8 text")
                .at(&source, &(at..at))
                .hint("save the file as UTF-8 text; is it the right file?"),
        ])
    })?;
    if let Some(at) = text.find('\0') {
        let source = Source::new(path.display().to_string(), text[..at].to_string());
        return Err(Diagnostics(vec![
            crate::diag::Diagnostic::error(
                "E001",
                "the file contains NUL bytes: is it a binary file?",
            )
            .at(&source, &(at..at))
            .hint(format!("give {expected}")),
        ])
        .into());
    }
    Ok(Source::new(path.display().to_string(), text))
}

fn load_catalog(path: Option<&Path>) -> Result<Catalog> {
    match path {
        None => Ok(Catalog::embedded()),
        Some(p) => Ok(Catalog::parse(&read_file(p)?)?),
    }
}

/// Writes to stdout. A closed pipe (EPIPE) surfaces as an error that `main` turns into a quiet
/// exit; any other failure (a full disk, a closed stdout) is an error with exit 2.
fn emit(text: &str) -> Result<ExitCode> {
    stdout_is_open()?;
    let mut out = anstream::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("cannot write to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// Whether descriptor 1 was closed when the process started. Rust's runtime reopens a closed
/// standard descriptor on `/dev/null` before `main`, so output would be lost with exit 0; this
/// runs earlier, as an ELF constructor, and remembers.
#[cfg(target_os = "linux")]
mod closed_at_start {
    use std::sync::atomic::{AtomicBool, Ordering};

    static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

    extern "C" fn probe() {
        // SAFETY: F_GETFD on a descriptor number has no memory effects.
        if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
    }

    #[used]
    #[unsafe(link_section = ".init_array")]
    static PROBE: extern "C" fn() = probe;

    pub fn stdout() -> bool {
        STDOUT_CLOSED.load(Ordering::Relaxed)
    }
}

/// A closed stdout (EBADF) is an error, not a silent success.
fn stdout_is_open() -> Result<()> {
    #[cfg(target_os = "linux")]
    if closed_at_start::stdout() {
        return Err(anyhow::anyhow!(
            "cannot write to standard output: it was closed when scc-ports started"
        ));
    }
    #[cfg(unix)]
    {
        // SAFETY: F_GETFD on a descriptor number has no memory effects.
        if unsafe { libc::fcntl(1, libc::F_GETFD) } == -1 {
            return Err(anyhow::Error::new(std::io::Error::last_os_error())
                .context("cannot write to standard output (is it closed?)"));
        }
    }
    Ok(())
}

/// Writes `text` to `path` atomically: into a new file in the same directory, flushed to disk,
/// then renamed over `path`. On any failure the old file is intact and the new one removed.
pub(super) fn write_atomically(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .with_context(|| format!("cannot write {}: not a file name", path.display()))?;
    let unchanged = || format!("cannot write {} (the file is unchanged)", path.display());
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        // A replaced file keeps its permissions (a script stays executable).
        if let Ok(old) = std::fs::metadata(path) {
            if old.is_file() {
                f.set_permissions(old.permissions())?;
            }
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(anyhow::Error::new(e).context(unchanged()));
    }
    Ok(())
}

/// Writes a directory of `files` (paths relative to `dir`) atomically: into a new directory beside
/// it, flushed, then renamed into place. An existing `dir` is replaced only when it holds nothing
/// but what this writes (its top-level entries); on any failure `dir` is as it was.
pub(super) fn write_dir_atomically(dir: &Path, files: &[(String, String)]) -> Result<()> {
    let parent = match dir.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = dir
        .file_name()
        .with_context(|| format!("cannot write {}: not a directory name", dir.display()))?;
    let ours: Vec<&str> = files
        .iter()
        .filter_map(|(p, _)| p.split('/').next())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let e = e.with_context(|| format!("cannot read {}", dir.display()))?;
            let entry = e.file_name();
            if !ours.iter().any(|o| std::ffi::OsStr::new(o) == entry) {
                anyhow::bail!(
                    "{} exists and holds {} which scc-ports did not write: nothing was written\n  hint: give a new directory, or remove it first",
                    dir.display(),
                    std::path::Path::new(&entry).display()
                );
            }
        }
    } else if dir.exists() {
        anyhow::bail!(
            "{} exists and is not a directory: nothing was written",
            dir.display()
        );
    }
    let side = |what: &str| {
        let mut n = std::ffi::OsString::from(".");
        n.push(name);
        n.push(format!(".{}.{what}", std::process::id()));
        parent.join(n)
    };
    let (tmp, old) = (side("tmp"), side("old"));
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir(&tmp)?;
        for (path, text) in files {
            let target = tmp.join(path);
            if let Some(d) = target.parent() {
                std::fs::create_dir_all(d)?;
            }
            let mut f = std::fs::File::create(&target)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
        }
        if dir.exists() {
            std::fs::rename(dir, &old)?;
            if let Err(e) = std::fs::rename(&tmp, dir) {
                let _ = std::fs::rename(&old, dir);
                return Err(e);
            }
            // The new directory is in place; a leftover old one is only litter.
            let _ = std::fs::remove_dir_all(&old);
            Ok(())
        } else {
            std::fs::rename(&tmp, dir)
        }
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(anyhow::Error::new(e)
            .context(format!("cannot write {} (it is unchanged)", dir.display())));
    }
    Ok(())
}

/// The width of the terminal on stdout (TIOCGWINSZ), else `COLUMNS`, else 100; at least 40.
fn terminal_width() -> usize {
    #[cfg(unix)]
    if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ fills the winsize we own; nothing else is touched.
        if unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
            return usize::from(ws.ws_col).max(40);
        }
    }
    if let Some(w) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|&w| w > 0)
    {
        return w.max(40);
    }
    100
}

pub use crate::FORMAT_VERSION;

/// A JSON document, pretty-printed, with control and bidi characters in strings escaped
/// ([`Sink::Json`]) so that it is safe on a terminal and still the same data.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    let mut s = safe::clean(Sink::Json, &serde_json::to_string_pretty(value)?).into_owned();
    s.push('\n');
    Ok(s)
}

fn catalog_cmd(catalog: &Catalog, args: CatalogArgs) -> Result<ExitCode> {
    let only = match &args.component {
        Some(id) => Some(catalog.require_component(id)?),
        None => None,
    };
    let components = render::catalog::select(catalog, only);
    let text = match args.format {
        Format::Json => json(&components)?,
        f => render::catalog::grid(&components, f).render(f, terminal_width()),
    };
    emit(&text)
}

/// The deployment in `path`, or the embedded all-in-one demo.
fn load_deployment(path: Option<&Path>, catalog: &Catalog) -> Result<Deployment> {
    let source = match path {
        Some(p) => read_file(p)?,
        None => Template::AllInOne.source(),
    };
    Ok(crate::deployment::parse(&source, catalog)?)
}

/// A name given on the command line that the system does not have: the nearest, and all of them.
fn unknown(code: &'static str, what: &str, name: &str, known: &[&str]) -> anyhow::Error {
    let hint = match crate::diag::suggest(name, known.iter().copied()) {
        Some(best) => format!("did you mean `{best}`? (valid: {})", known.join(", ")),
        None => format!("valid: {}", known.join(", ")),
    };
    Diagnostics(vec![
        Diagnostic::error(code, format!("unknown {what} `{name}`")).hint(hint),
    ])
    .into()
}

/// The name of a node or client zone given on the command line, checked.
fn require_host(dep: &Deployment, plan: &Plan, name: &str) -> Result<()> {
    if dep.node(name).is_some() || plan.bindings.iter().any(|b| b.host.name() == name) {
        return Ok(());
    }
    let mut known: Vec<&str> = dep.nodes.iter().map(|n| n.name.as_str()).collect();
    for b in &plan.bindings {
        if matches!(b.host, crate::plan::Host::Workstations { .. })
            && !known.contains(&b.host.name())
        {
            known.push(b.host.name());
        }
    }
    Err(unknown("E011", "node", name, &known))
}

fn plan_cmd(catalog: &Catalog, args: PlanArgs) -> Result<ExitCode> {
    let dep = load_deployment(args.file.as_deref(), catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    if let Some(n) = &args.node {
        require_host(&dep, &plan, n)?;
    }
    let selected: Vec<&crate::plan::Binding> = plan
        .bindings
        .iter()
        .filter(|b| args.node.as_deref().is_none_or(|n| b.host.name() == n))
        .collect();
    let text = match args.format {
        Format::Json => json(&serde_json::json!({
            "format_version": FORMAT_VERSION,
            "name": dep.name,
            "bindings": selected
        }))?,
        f => render::plan::grid(selected, f).render(f, terminal_width()),
    };
    emit(&text)
}

fn check_cmd(catalog: &Catalog, args: CheckArgs) -> Result<ExitCode> {
    let file = args.file.as_deref().map_or_else(
        || Template::AllInOne.source().name.to_string(),
        |p| p.display().to_string(),
    );
    let dep = match load_deployment(args.file.as_deref(), catalog) {
        Ok(dep) => dep,
        Err(e) => {
            // Code scanning shows a file that cannot be used at its errors; the exit stays 2.
            if let (CheckFormat::Sarif, Some(d)) = (args.format, e.downcast_ref::<Diagnostics>()) {
                emit(&json(&render::sarif::diagnostics(&d.0, &file))?)?;
            }
            return Err(e);
        }
    };
    let plan = crate::plan::resolve(&dep, catalog);
    let findings = crate::plan::check(&dep, catalog, &plan);
    let text = match args.format {
        CheckFormat::Json => {
            let summary: serde_json::Map<String, serde_json::Value> =
                render::plan::summary(&findings)
                    .iter()
                    .map(|(s, n)| (s.as_str().to_string(), (*n).into()))
                    .collect();
            json(&serde_json::json!({
                "format_version": FORMAT_VERSION,
                "summary": summary,
                "findings": findings
            }))?
        }
        CheckFormat::Sarif => json(&render::sarif::check(&findings, &file))?,
        CheckFormat::Table => {
            let styled =
                anstream::AutoStream::choice(&std::io::stdout()) != anstream::ColorChoice::Never;
            render::plan::findings_text(&findings, styled)
        }
    };
    emit(&text)?;
    let errors = findings
        .iter()
        .any(|f| f.severity == crate::diag::Severity::Error);
    Ok(if errors {
        ExitCode::from(EXIT_NO)
    } else {
        ExitCode::SUCCESS
    })
}

fn require_zone(dep: &Deployment, name: &str) -> Result<()> {
    if dep.zone(name).is_some() {
        return Ok(());
    }
    let known: Vec<&str> = dep.zones.iter().map(|z| z.name.as_str()).collect();
    Err(unknown("E010", "zone", name, &known))
}

fn flows_cmd(catalog: &Catalog, args: FlowsArgs) -> Result<ExitCode> {
    let dep = load_deployment(args.file.as_deref(), catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    if let Some(n) = &args.node {
        require_host(&dep, &plan, n)?;
    }
    if let Some(z) = &args.from {
        require_zone(&dep, z)?;
    }
    let flows: Vec<crate::flows::Flow> = crate::flows::flows(&dep, catalog, &plan)
        .into_iter()
        .filter(|f| args.node.as_deref().is_none_or(|n| f.node == n))
        .filter(|f| {
            args.from
                .as_deref()
                .is_none_or(|z| f.source_zones.iter().any(|s| s == z))
        })
        .collect();
    let text = match args.format {
        Format::Json => json(&crate::flows::Document::new(&dep.name, &flows))?,
        f => render::flows::grid(&flows, f).render(f, terminal_width()),
    };
    emit(&text)
}

fn firewall_cmd(catalog: &Catalog, args: FirewallArgs) -> Result<ExitCode> {
    use crate::firewall::{Mode, Request};
    if args.diff.is_some() {
        return audit::diff_cmd(catalog, &args);
    }
    let dep = load_deployment(args.file.as_deref(), catalog)?;
    let plan = crate::plan::resolve(&dep, catalog);
    let mode = match &args.node {
        Some(name) => {
            let Some(node) = dep.node(name) else {
                let known: Vec<&str> = dep.nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(unknown("E011", "node", name, &known));
            };
            // The node's own address first, then its units' virtual IPs, each once.
            let mut addresses = vec![node.address];
            for b in plan.for_host(name) {
                if let crate::plan::Host::Node { address, .. } = b.host {
                    if !addresses.contains(&address) {
                        addresses.push(address);
                    }
                }
            }
            Mode::Node {
                name: name.clone(),
                addresses,
            }
        }
        None if args.workstations => Mode::Workstations,
        None => Mode::Network,
    };
    let all = crate::flows::flows(&dep, catalog, &plan);
    let flows = crate::firewall::select(&dep, &all, &mode);
    let generator = crate::firewall::target(&args.target).expect("clap checked the target");
    let network = mode == Mode::Network;
    let request = Request {
        deployment: &dep,
        mode,
        policy: args.policy,
        flows,
    };
    if let Some(files) = generator.files(&request) {
        // A target that writes a directory: checked before anything is written.
        let Some(dir) = &args.output else {
            anyhow::bail!(
                "--target {} writes a directory (pol/, def/): give it with -o DIR\n  hint: scc-ports firewall FILE --target {} --network -o policy",
                args.target,
                args.target
            );
        };
        if network && dep.firewalls.is_empty() {
            anyhow::bail!(
                "{} declares no network firewall: --target {} --network renders the policy of each [firewalls.NAME]\n  hint: add one, e.g.\n    [firewalls.EDGE]\n    zones = [\"{}\"]",
                dep.source.name,
                args.target,
                dep.zones
                    .iter()
                    .map(|z| z.name.as_str())
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\", \"")
            );
        }
        write_dir_atomically(dir, &files)?;
        return Ok(ExitCode::SUCCESS);
    }
    let text = generator.generate(&request);
    match &args.output {
        Some(path) => {
            write_atomically(path, &text)?;
            Ok(ExitCode::SUCCESS)
        }
        None => emit(&text),
    }
}
