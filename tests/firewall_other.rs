//! The `firewalld`, `windows` and `aws` targets: golden output for every example × mode, and each
//! output checked by the program that reads it where that program is installed (firewalld's
//! `firewall-offline-cmd`, Python's XML parser, `terraform fmt`), otherwise by structural checks.
//!
//! A test that needs a missing tool prints why and passes, unless SCC_PORTS_REQUIRE_ROOT_TESTS=1
//! (CI), where a missing Debian-installable tool (firewalld, python3) or root is a failure.
//! Terraform and PowerShell are not Debian packages, so their checks always only skip.

mod common;

use common::required;

use std::path::{Path, PathBuf};
use std::process::Command;

const EXAMPLES: [&str; 3] = ["all-in-one", "redundant", "large"];
const TARGETS: [&str; 3] = ["firewalld", "windows", "aws"];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The first node of an example, read with the library the CLI uses.
fn first_node(example: &str) -> String {
    let path = format!("examples/{example}.toml");
    let text = std::fs::read_to_string(root().join(&path)).unwrap();
    let catalog = scc_ports::catalog::Catalog::embedded();
    let dep = scc_ports::deployment::parse(&scc_ports::diag::Source::new(path, text), &catalog)
        .expect("the example loads");
    dep.nodes[0].name.clone()
}

/// (label, mode arguments) of the three modes for an example.
fn modes(example: &str) -> Vec<(String, Vec<String>)> {
    let node = first_node(example);
    vec![
        (
            format!("node-{node}"),
            vec!["--node".to_string(), node.clone()],
        ),
        ("workstations".to_string(), vec!["--workstations".into()]),
        ("network".to_string(), vec!["--network".into()]),
    ]
}

/// Runs `scc-ports firewall ARGS` from the crate root (so headers name `examples/…`).
fn scc(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .current_dir(root())
        .arg("firewall")
        .args(args)
        .output()
        .expect("scc-ports runs");
    assert!(
        out.status.success(),
        "scc-ports firewall {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn generate(example: &str, target: &str, mode: &[String]) -> String {
    let file = format!("examples/{example}.toml");
    let mut args = vec![file.as_str(), "--target", target];
    args.extend(mode.iter().map(String::as_str));
    scc(&args)
}

/// Every (example, mode label, output) of one target.
fn outputs(target: &str) -> Vec<(String, String, String)> {
    let mut all = Vec::new();
    for example in EXAMPLES {
        for (label, mode) in modes(example) {
            let text = generate(example, target, &mode);
            all.push((example.to_string(), label, text));
        }
    }
    all
}

/// Skips (prints the reason, returns true) or, when the checks are required, fails.
fn skip(reason: &str) -> bool {
    assert!(
        !required(),
        "{reason}, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires this check"
    );
    eprintln!("skipped: {reason}");
    true
}

fn have(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------------
// Golden output

#[test]
fn golden_firewalld() {
    for (example, mode, text) in outputs("firewalld") {
        insta::assert_snapshot!(format!("firewalld__{example}__{mode}"), text);
    }
}

#[test]
fn golden_windows() {
    for (example, mode, text) in outputs("windows") {
        insta::assert_snapshot!(format!("windows__{example}__{mode}"), text);
    }
}

#[test]
fn golden_aws() {
    for (example, mode, text) in outputs("aws") {
        insta::assert_snapshot!(format!("aws__{example}__{mode}"), text);
    }
}

#[test]
fn targets_are_listed_in_order_and_deterministic() {
    let names: Vec<&str> = scc_ports::firewall::TARGETS
        .iter()
        .map(|t| t.name())
        .collect();
    assert_eq!(
        names,
        [
            "nftables",
            "iptables",
            "firewalld",
            "windows",
            "aws",
            "csv",
            "markdown",
            "aerleon"
        ]
    );
    for target in TARGETS {
        let mode = ["--network".to_string()];
        assert_eq!(
            generate("redundant", target, &mode),
            generate("redundant", target, &mode),
            "{target} output is not deterministic"
        );
    }
}

#[test]
fn every_output_names_system_scope_and_command() {
    for target in TARGETS {
        for (example, label, text) in outputs(target) {
            let head: String = text.lines().take(6).collect::<Vec<_>>().join("\n");
            assert!(
                head.contains(&format!("System: {example}")),
                "{target} {label}"
            );
            assert!(head.contains("Scope: "), "{target} {label}");
            assert!(
                head.contains(&format!(
                    "Generated by: scc-ports firewall examples/{example}.toml --target {target}"
                )),
                "{target} {example} {label}:\n{head}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A deployment whose free text tries to break out of every language, with an IPv6 client
// network, and a catalog whose RTP range stays even-only (its RTCP range removed) so the
// parity range is not merged away.

struct Hostile {
    _dir: tempfile::TempDir,
    deployment: PathBuf,
    catalog: PathBuf,
}

const EVIL: &str = "'q' \u{2019}s\u{2019} \"dq\" ${x} %{y} $(touch /tmp/scc-pwned) `id` </description> ]]> & \u{2013} M\u{fc}ller";

fn hostile() -> Hostile {
    let dir = tempfile::tempdir().unwrap();
    let toml_text = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let example = std::fs::read_to_string(root().join("examples/all-in-one.toml")).unwrap();
    let mut deployment = String::new();
    for line in example.lines() {
        if line.starts_with("name = ") {
            deployment.push_str(&format!("name = \"{}\\n# injected\"\n", toml_text(EVIL)));
        } else if line == r#"cidrs = ["10.20.0.0/16"]"# {
            deployment.push_str("cidrs = [\"10.20.0.0/16\", \"2001:db8:20::/48\"]\n");
        } else {
            deployment.push_str(line);
            deployment.push('\n');
        }
    }
    assert!(
        deployment.contains("2001:db8:20::/48"),
        "the example changed"
    );
    let catalog = std::fs::read_to_string(root().join("data/catalog.toml")).unwrap();
    let rtcp = catalog.find("id = \"rtcp\"").expect("rtcp in the catalog");
    let start = catalog[..rtcp].rfind("[[components.ports]]").unwrap();
    let end = rtcp + catalog[rtcp..].find("[[components]]").unwrap();
    let catalog = format!("{}{}", &catalog[..start], &catalog[end..]).replace(
        "usage = \"RTP\"",
        &format!("usage = \"RTP {}\\r\\n#x\"", toml_text(EVIL)),
    );
    let d = dir.path().join("evil deployment's.toml");
    let c = dir.path().join("catalog.toml");
    std::fs::write(&d, deployment).unwrap();
    std::fs::write(&c, catalog).unwrap();
    Hostile {
        _dir: dir,
        deployment: d,
        catalog: c,
    }
}

fn hostile_outputs(target: &str) -> Vec<(String, String)> {
    let h = hostile();
    let mut all = Vec::new();
    for (label, mode) in [
        ("node", vec!["--node", "SCC1"]),
        ("workstations", vec!["--workstations"]),
        ("network", vec!["--network"]),
    ] {
        let mut args = vec![
            h.deployment.to_str().unwrap(),
            "--catalog",
            h.catalog.to_str().unwrap(),
            "--target",
            target,
        ];
        args.extend(mode);
        all.push((label.to_string(), scc(&args)));
    }
    all
}

/// Every output of a target, named: each example in each mode, then the hostile deployment's.
fn every_output(target: &str) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = outputs(target)
        .into_iter()
        .map(|(e, m, text)| (format!("{e}-{m}"), text))
        .collect();
    all.extend(
        hostile_outputs(target)
            .into_iter()
            .map(|(m, text)| (format!("hostile-{m}"), text)),
    );
    all
}

/// The parity range is opened port by port: 5004, 5006 … 5030, never 5005.
#[test]
fn parity_ranges_are_expanded_exactly() {
    let ws = |t: &str| {
        hostile_outputs(t)
            .into_iter()
            .find(|(l, _)| l == "workstations")
            .unwrap()
            .1
    };
    let firewalld = ws("firewalld");
    assert!(firewalld.contains(r#"<port protocol="udp" port="5030"/>"#));
    assert!(!firewalld.contains(r#"port="5005""#));
    assert!(!firewalld.contains(r#"port="5004-"#));
    let windows = ws("windows");
    assert!(windows.contains("-LocalPort '5004', '5006', '5008',"));
    assert!(!windows.contains("'5005'") && !windows.contains("-LocalPort '5004-"));
    let aws = ws("aws");
    assert!(aws.contains("from_port         = 5030\n  to_port           = 5030\n"));
    assert!(!aws.contains("= 5005\n") && !aws.contains("to_port           = 5031"));
}

// ---------------------------------------------------------------------------------------------
// firewalld

/// The service files of a firewalld script: (name, XML) from its heredocs.
fn heredocs(script: &str) -> Vec<(String, String)> {
    heredocs_in(script, "services")
}

/// The files of one kind (`services`, `ipsets`) of a firewalld script: (name, XML).
fn heredocs_in(script: &str, kind: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = script.lines();
    let prefix = format!("cat > \"$FIREWALLD_DIR/{kind}/");
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix(&prefix) else {
            continue;
        };
        let name = rest
            .split(".xml\"")
            .next()
            .expect("a file name")
            .to_string();
        assert!(line.ends_with("<<'SCC_PORTS_XML'"), "{line}");
        let mut xml = String::new();
        for l in lines.by_ref() {
            if l == "SCC_PORTS_XML" {
                break;
            }
            xml.push_str(l);
            xml.push('\n');
        }
        out.push((name, xml));
    }
    out
}

fn check_firewalld_structure(script: &str, what: &str) {
    let services = heredocs(script);
    let mut names: Vec<&str> = services.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    let count = names.len();
    names.dedup();
    assert_eq!(count, names.len(), "{what}: duplicate service names");
    for (name, xml) in &services {
        assert!(name.starts_with("scc-ports-"), "{what}: {name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{what}: firewalld rejects the service name {name}"
        );
        assert!(xml.contains("<port "), "{what}: {name} opens no port");
    }
    let sets = heredocs_in(script, "ipsets");
    let ipsets: Vec<&str> = sets.iter().map(|(n, _)| n.as_str()).collect();
    for (name, xml) in &sets {
        assert!(
            name.starts_with("scc-ports-") && name.len() <= 31,
            "{what}: ipset name {name}"
        );
        assert!(
            xml.contains("<ipset type=\"hash:net\">") && xml.matches("<entry>").count() >= 2,
            "{what}: ipset {name}: {xml}"
        );
    }
    for line in script.lines().filter(|l| l.contains("--add-rich-rule=")) {
        let service = line
            .split("service name=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("rich rules name a service");
        assert!(names.contains(&service), "{what}: {service} has no file");
        match line.split("source ipset=\"").nth(1) {
            Some(rest) => {
                let set = rest.split('"').next().unwrap();
                assert!(ipsets.contains(&set), "{what}: ipset {set} has no file");
            }
            None => assert!(line.contains("source address=\""), "{what}: {line}"),
        }
        assert_eq!(line.matches('\'').count(), 2, "{what}: {line}");
    }
    // The comment lines hold the user's text on one line each: every other line is ours.
    let first_code = script.lines().position(|l| l == "set -eu").unwrap();
    assert!(script.lines().take(first_code).all(|l| l.starts_with('#')));
}

#[test]
fn firewalld_structure() {
    for (example, mode, script) in outputs("firewalld") {
        check_firewalld_structure(&script, &format!("{example} {mode}"));
    }
    for (mode, script) in hostile_outputs("firewalld") {
        check_firewalld_structure(&script, &format!("hostile {mode}"));
    }
}

/// Every service XML parses with Python's XML parser (a real parser, not ours).
#[cfg_attr(not(scc_python3), ignore = "needs python3")]
#[test]
fn firewalld_xml_parses() {
    if !have("python3", &["-c", "import xml.dom.minidom"]) && skip("python3 is not installed") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let all = every_output("firewalld");
    for (what, script) in &all {
        for (name, xml) in heredocs(script) {
            let path = dir.path().join(format!("{what}--{name}.xml"));
            std::fs::write(&path, xml).unwrap();
            files.push(path);
        }
    }
    assert!(files.len() > 50, "too few services: {}", files.len());
    let out = Command::new("python3")
        .arg("-c")
        .arg(
            "import sys, xml.dom.minidom\n\
             for f in sys.argv[1:]:\n\
             \x20   d = xml.dom.minidom.parse(f)\n\
             \x20   assert d.documentElement.tagName == 'service', f\n\
             \x20   assert len(d.getElementsByTagName('port')) > 0, f\n",
        )
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A digest of a directory tree (names and contents), to prove the host's config is untouched.
fn tree_digest(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(tree_digest(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
        }
    }
    out
}

fn firewall_offline(config: &Path, args: &[&str]) -> String {
    let out = Command::new("firewall-offline-cmd")
        .arg("--system-config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "firewall-offline-cmd {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a generated script against a temporary firewalld configuration (FIREWALLD_DIR: offline,
/// the host's /etc/firewalld is never touched), checks it with `--check-config`, counts the rich
/// rules it bound, runs it again and checks that nothing changed.
fn run_firewalld(script: &str, what: &str, twice: bool) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path();
    std::fs::write(config.join("firewalld.conf"), "DefaultZone=public\n").unwrap();
    let file = dir.path().join("rules.sh");
    std::fs::write(&file, script).unwrap();
    let run = || {
        let out = Command::new("sh")
            .arg(&file)
            .env("FIREWALLD_DIR", config)
            .env_remove("ZONE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: the script failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    firewall_offline(config, &["--check-config"]);
    let place = if script.contains("\nfw --new-policy=scc-ports") {
        "--policy=scc-ports"
    } else {
        "--zone=public"
    };
    let rules = |place: &str| {
        let mut r: Vec<String> = firewall_offline(config, &[place, "--list-rich-rules"])
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        r.sort();
        r
    };
    let bound = rules(place);
    let expected = script.matches("--add-rich-rule=").count();
    assert_eq!(bound.len(), expected, "{what}: rich rules bound");
    let services = tree_digest(&config.join("services"));
    assert_eq!(
        services.len(),
        heredocs(script).len(),
        "{what}: service files"
    );
    if twice {
        run();
        firewall_offline(config, &["--check-config"]);
        assert_eq!(
            rules(place),
            bound,
            "{what}: a second run changed the rules"
        );
        assert_eq!(
            tree_digest(&config.join("services")),
            services,
            "{what}: a second run changed the services"
        );
    }
}

fn firewalld_usable() -> bool {
    if !is_root() {
        return !skip("firewall-offline-cmd needs root");
    }
    if !have("firewall-offline-cmd", &["--version"]) {
        return !skip("firewall-offline-cmd is not installed (Debian package firewalld)");
    }
    true
}

#[cfg_attr(
    not(scc_firewalld),
    ignore = "needs root and firewalld (firewall-offline-cmd)"
)]
#[test]
fn firewalld_offline_check_config() {
    if !firewalld_usable() {
        return;
    }
    let host_before = tree_digest(Path::new("/etc/firewalld"));
    for (example, mode, script) in outputs("firewalld") {
        // The redundant example also runs twice: the script must be re-runnable.
        run_firewalld(
            &script,
            &format!("{example} {mode}"),
            example == "redundant",
        );
    }
    for (mode, script) in hostile_outputs("firewalld") {
        run_firewalld(&script, &format!("hostile {mode}"), false);
    }
    assert!(
        !Path::new("/tmp/scc-pwned").exists(),
        "text from the file was run"
    );
    assert_eq!(
        tree_digest(Path::new("/etc/firewalld")),
        host_before,
        "the host's firewalld configuration changed"
    );
}

/// A script of one mode replaces what a script of another mode installed (the policy and the
/// services of `--network` are gone after a `--node` run).
#[cfg_attr(
    not(scc_firewalld),
    ignore = "needs root and firewalld (firewall-offline-cmd)"
)]
#[test]
fn firewalld_replaces_an_earlier_run() {
    if !firewalld_usable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path();
    std::fs::write(config.join("firewalld.conf"), "DefaultZone=public\n").unwrap();
    for mode in [
        vec!["--network".to_string()],
        modes("redundant")[0].1.clone(),
    ] {
        let script = generate("redundant", "firewalld", &mode);
        let file = dir.path().join("rules.sh");
        std::fs::write(&file, &script).unwrap();
        let out = Command::new("sh")
            .arg(&file)
            .env("FIREWALLD_DIR", config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let policies = firewall_offline(config, &["--get-policies"]);
    assert!(!policies.split_whitespace().any(|p| p == "scc-ports"));
    let node = generate("redundant", "firewalld", &modes("redundant")[0].1);
    assert_eq!(
        tree_digest(&config.join("services")).len(),
        heredocs(&node).len()
    );
    firewall_offline(config, &["--check-config"]);
}

// ---------------------------------------------------------------------------------------------
// windows

/// The statements of a PowerShell script: comment lines dropped, backtick continuations joined.
fn ps_statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in script.lines() {
        if current.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#')) {
            continue;
        }
        match line.strip_suffix(" `") {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    assert!(current.is_empty(), "a continuation ends the script");
    out
}

/// The single-quoted strings of a statement, `''` read as one quote; None when one is open at
/// the end (or a double-quoted string is).
fn ps_single_quoted(statement: &str) -> Option<Vec<String>> {
    let mut strings = Vec::new();
    let mut chars = statement.chars().peekable();
    let mut in_double = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => in_double = !in_double,
            '\'' if !in_double => {
                let mut s = String::new();
                loop {
                    match chars.next()? {
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            s.push('\'');
                        }
                        '\'' => break,
                        c => s.push(c),
                    }
                }
                strings.push(s);
            }
            _ => {}
        }
    }
    (!in_double).then_some(strings)
}

fn check_windows_structure(script: &str, what: &str, network: bool) {
    assert!(script.is_ascii(), "{what}: not ASCII");
    let statements = ps_statements(script);
    for s in &statements {
        assert!(
            ps_single_quoted(s).is_some(),
            "{what}: unbalanced quotes in {s}"
        );
    }
    let rules: Vec<&String> = statements
        .iter()
        .filter(|s| s.starts_with("New-NetFirewallRule"))
        .collect();
    if network {
        assert!(rules.is_empty(), "{what}: rules for a network firewall");
        assert!(statements.iter().any(|s| s.starts_with("throw '")));
        return;
    }
    let remove = statements
        .iter()
        .position(|s| {
            s == "Get-NetFirewallRule -Group $group -ErrorAction SilentlyContinue | Remove-NetFirewallRule"
        })
        .unwrap_or_else(|| panic!("{what}: no removal of the group"));
    // Before the removal only the settings; every rule after it.
    assert_eq!(
        &statements[..remove],
        &[
            "$ErrorActionPreference = 'Stop'".to_string(),
            "$group = 'Sinch Contact Center (scc-ports)'".to_string()
        ],
        "{what}"
    );
    let first_rule = statements
        .iter()
        .position(|s| s.starts_with("New-NetFirewallRule"));
    assert!(first_rule.is_none_or(|i| i > remove), "{what}");
    let mut names = std::collections::HashSet::new();
    for r in &rules {
        for part in [
            "New-NetFirewallRule -Group $group ",
            " -DisplayName ",
            " -Description ",
            " -Direction Inbound -Action Allow -Profile Any -Protocol ",
            " -LocalPort '",
            " -RemoteAddress '",
            " -LocalAddress '",
        ] {
            assert!(r.contains(part), "{what}: `{part}` missing in {r}");
        }
        assert!(r.ends_with("| Out-Null"), "{what}: {r}");
        assert!(
            r.contains("-Protocol TCP ") || r.contains("-Protocol UDP "),
            "{what}: {r}"
        );
        let display = r
            .split(" -DisplayName ")
            .nth(1)
            .and_then(|s| s.split(" -Description ").next())
            .unwrap();
        assert!(names.insert(display.to_string()), "{what}: {display} twice");
        // The display name and the description name the component and the port id.
        let description = r.split(" -Description ").nth(1).unwrap();
        assert!(description.contains(" port id "), "{what}: {r}");
        assert!(
            display.starts_with("'SCC ") && display.contains('.'),
            "{what}: {r}"
        );
    }
    assert_eq!(
        statements.last().map(String::as_str),
        Some(
            format!(
                "Write-Host \"scc-ports: {} rules in group '$group'\"",
                rules.len()
            )
            .as_str()
        ),
        "{what}"
    );
}

#[test]
fn windows_structure() {
    for (example, mode, script) in outputs("windows") {
        check_windows_structure(&script, &format!("{example} {mode}"), mode == "network");
    }
    for (mode, script) in hostile_outputs("windows") {
        check_windows_structure(&script, &format!("hostile {mode}"), mode == "network");
        if mode == "workstations" {
            // The hostile text is inside strings, whole: `$(…)` and backticks stay literal.
            assert!(script.contains(" $(touch /tmp/scc-pwned) `id` </description>"));
            assert!(script.contains("RTP ''q'' ' + [char]0x2019 + 's' + [char]0x2019"));
            assert!(script.contains("2001:db8:20::/48"));
        }
    }
}

/// PowerShell is not a Debian package: when `pwsh` happens to be installed, parse the scripts
/// with its own parser.
#[cfg_attr(
    not(scc_pwsh),
    ignore = "needs pwsh (PowerShell; not a Debian package)"
)]
#[test]
fn windows_parses_with_pwsh() {
    if !have("pwsh", &["-NoProfile", "-Command", "exit 0"]) {
        eprintln!("skipped: pwsh is not installed (not a Debian package)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The generated scripts, and the `--diff` scripts for Windows exports (exit 1 when a Group
    // Policy rule stays: the script is written all the same).
    let mut scripts = outputs("windows");
    for (deployment, node, export) in [
        ("tests/audit/lab.toml", "APP1", "tests/audit/windows.json"),
        (
            "examples/large.toml",
            "APP_A1",
            "tests/audit/windows-newcomer.json",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
            .current_dir(root())
            .args([
                "firewall", deployment, "--target", "windows", "--node", node,
            ])
            .args(["--diff", export])
            .output()
            .unwrap();
        assert!(out.status.code().is_some_and(|c| c <= 1), "{export}");
        let script = String::from_utf8(out.stdout).unwrap();
        scripts.push((node.to_string(), "diff".to_string(), script));
    }
    for (example, mode, script) in scripts {
        let path = dir.path().join(format!("{example}-{mode}.ps1"));
        std::fs::write(&path, script).unwrap();
        let check = format!(
            "$e = $null; [void][System.Management.Automation.Language.Parser]::ParseFile('{}', [ref]$null, [ref]$e); if ($e.Count) {{ $e; exit 1 }}",
            path.display()
        );
        let out = Command::new("pwsh")
            .args(["-NoProfile", "-Command", &check])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{example} {mode}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// aws

/// Braces balance outside strings, no string is left open, and no string interpolates (`${`
/// and `%{` are always doubled).
fn check_hcl_lexically(text: &str, what: &str) {
    let mut depth = 0i64;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let mut chars = line.chars().peekable();
        let mut in_string = false;
        while let Some(c) = chars.next() {
            if in_string {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => in_string = false,
                    // `$${` and `%%{` are the escapes; a single `${` or `%{` interpolates.
                    '$' | '%' if chars.peek() == Some(&c) => {
                        chars.next();
                        chars.next_if_eq(&'{');
                    }
                    '$' | '%' if chars.peek() == Some(&'{') => {
                        panic!("{what}: line {}: interpolation in {line}", n + 1)
                    }
                    _ => {}
                }
            } else {
                match c {
                    '"' => in_string = true,
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            assert!(depth >= 0, "{what}: line {}: too many }}", n + 1);
        }
        assert!(!in_string, "{what}: line {}: open string", n + 1);
    }
    assert_eq!(depth, 0, "{what}: unbalanced braces");
}

fn check_aws_structure(text: &str, what: &str) {
    check_hcl_lexically(text, what);
    let mut resources = std::collections::HashSet::new();
    let mut groups = std::collections::HashSet::new();
    for line in text.lines().filter(|l| l.starts_with("resource ")) {
        let words: Vec<&str> = line.split('"').collect();
        let (kind, name) = (words[1], words[3]);
        assert!(
            name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{what}: resource name {name}"
        );
        assert!(
            resources.insert((kind.to_string(), name.to_string())),
            "{what}: {kind}.{name} twice"
        );
        if kind == "aws_security_group" {
            groups.insert(name.to_string());
        }
    }
    assert!(text.contains("variable \"vpc_id\""), "{what}");
    // Prefix lists: name to max_entries, which must hold the entries and fit a group's quota.
    let mut lists = std::collections::HashMap::new();
    for b in text
        .split("\nresource \"aws_ec2_managed_prefix_list\" ")
        .skip(1)
    {
        let b = &b[..b.find("\n}\n").unwrap()];
        let name = b.split('"').nth(1).unwrap().to_string();
        let max: usize = b
            .lines()
            .find_map(|l| l.trim().strip_prefix("max_entries"))
            .unwrap_or_else(|| panic!("{what}: no max_entries in {b}"))
            .trim_start()
            .trim_start_matches('=')
            .trim()
            .parse()
            .unwrap();
        let entries = b.matches("entry {").count();
        assert!(
            entries >= 1 && entries <= max,
            "{what}: {name}: {entries} entries, max {max}"
        );
        assert!(
            max <= 60,
            "{what}: {name}: more entries than a group's quota"
        );
        lists.insert(name, max);
    }
    // Rule quota per group: a prefix list counts as its maximum entries.
    let mut used: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let blocks: Vec<&str> = text
        .split("\nresource \"aws_vpc_security_group_ingress_rule\" ")
        .skip(1)
        .collect();
    let mut seen = std::collections::HashSet::new();
    for b in &blocks {
        let b = &b[..b.find("\n}\n").unwrap()];
        let field = |key: &str| {
            b.lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(key)
                        .map(|r| r.trim_start().trim_start_matches('=').trim().to_string())
                })
                .unwrap_or_else(|| panic!("{what}: no {key} in {b}"))
        };
        let group = field("security_group_id");
        let gid = group
            .strip_prefix("aws_security_group.")
            .and_then(|g| g.strip_suffix(".id"))
            .unwrap();
        assert!(groups.contains(gid), "{what}: {group} is not defined");
        let description = field("description");
        let description = description.trim_matches('"');
        assert!(description.len() <= 255, "{what}: {description}");
        assert!(
            description
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c)),
            "{what}: AWS rejects the description {description}"
        );
        assert!(
            description.contains('.'),
            "{what}: component.port-id in {description}"
        );
        let proto = field("ip_protocol");
        assert!(proto == "\"tcp\"" || proto == "\"udp\"", "{what}: {proto}");
        let from: u16 = field("from_port").parse().unwrap();
        let to: u16 = field("to_port").parse().unwrap();
        assert!(from <= to, "{what}: {from}-{to}");
        // A CIDR or a prefix list that the file defines.
        let cidr = b
            .lines()
            .find(|l| {
                let l = l.trim_start();
                l.starts_with("cidr_ipv") || l.starts_with("prefix_list_id")
            })
            .unwrap_or_else(|| panic!("{what}: no CIDR or prefix list in {b}"))
            .to_string();
        let weight = match cidr.split_once("aws_ec2_managed_prefix_list.") {
            Some((_, list)) => {
                let list = list.trim_end_matches(".id");
                *lists
                    .get(list)
                    .unwrap_or_else(|| panic!("{what}: prefix list {list} is not defined"))
            }
            None => 1,
        };
        *used.entry(gid.to_string()).or_insert(0) += weight;
        // AWS refuses a duplicate rule in one group.
        assert!(
            seen.insert((gid.to_string(), proto, from, to, cidr)),
            "{what}: duplicate rule {b}"
        );
    }
    for (group, used) in used {
        assert!(
            used <= 60,
            "{what}: group {group} uses {used} of AWS's 60 rules"
        );
    }
}

#[test]
fn aws_structure() {
    for (example, mode, text) in outputs("aws") {
        check_aws_structure(&text, &format!("{example} {mode}"));
    }
    for (mode, text) in hostile_outputs("aws") {
        check_aws_structure(&text, &format!("hostile {mode}"));
        if mode == "workstations" {
            assert!(text.contains("cidr_ipv6         = \"2001:db8:20::/48\""));
        }
    }
}

/// `--network` gives every instance node of a unit the flows to the unit's virtual IP, so the
/// group of either instance admits them after a failover.
#[test]
fn aws_network_covers_every_instance() {
    let text = generate("redundant", "aws", &["--network".to_string()]);
    for node in ["app1", "app2"] {
        assert!(
            text.contains(&format!(
                "resource \"aws_vpc_security_group_ingress_rule\" \"{node}_agent_server_port_servers_tcp_21018_10_2_0_0_24\""
            )),
            "{node} lacks the CORE unit's agent server"
        );
    }
}

/// Terraform is not a Debian package: when it is installed, `terraform fmt -check` parses the
/// output (a syntax check that needs no provider download) and finds it formatted.
#[cfg_attr(not(scc_terraform), ignore = "needs terraform (not a Debian package)")]
#[test]
fn aws_terraform_fmt() {
    if !have("terraform", &["version"]) {
        eprintln!("skipped: terraform is not installed (not a Debian package)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let all = every_output("aws");
    for (what, text) in all {
        let path = dir.path().join(format!("{what}.tf"));
        std::fs::write(&path, &text).unwrap();
        let out = Command::new("terraform")
            .args(["fmt", "-no-color", "-check", "-diff"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: terraform fmt:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The online path, for real: in private mount, network and PID namespaces (the host's
/// /etc/firewalld, /run and firewall are not touched, and every process started there ends with
/// the namespace), a system D-Bus and firewalld run; the `--node` script is applied twice
/// through `firewall-cmd`, then the `--network` script, and the runtime and permanent
/// configurations hold exactly the script's rules.
#[cfg_attr(
    not(all(scc_firewalld, scc_netns)),
    ignore = "needs root, firewalld and D-Bus (a private firewalld)"
)]
#[test]
fn firewalld_online_in_namespace() {
    if !firewalld_usable() {
        return;
    }
    for program in ["unshare", "dbus-daemon", "firewalld", "firewall-cmd"] {
        if !have("sh", &["-c", &format!("command -v {program}")])
            && skip(&format!("{program} is not installed"))
        {
            return;
        }
    }
    if !Path::new("/etc/firewalld").is_dir()
        && skip("/etc/firewalld is missing (package firewalld)")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = generate("redundant", "firewalld", &modes("redundant")[0].1);
    let network = generate("redundant", "firewalld", &["--network".to_string()]);
    std::fs::write(dir.path().join("node.sh"), &node).unwrap();
    std::fs::write(dir.path().join("network.sh"), &network).unwrap();
    let harness = r#"set -eu
cd "$1"
mount --make-rprivate /
mount -t tmpfs tmpfs /run
mkdir -p /run/dbus
mount -t tmpfs tmpfs /etc/firewalld
echo DefaultZone=public > /etc/firewalld/firewalld.conf
ip link set lo up 2>/dev/null || true
dbus-daemon --system --fork --nopidfile
firewalld --nofork --nopid --log-target=console > firewalld.log 2>&1 &
i=0
until firewall-cmd --state >/dev/null 2>&1; do
    i=$((i + 1))
    if [ "$i" -gt 150 ]; then echo "firewalld did not start" >&2; cat firewalld.log >&2; exit 1; fi
    sleep 0.2
done
count() { firewall-cmd "$@" --list-rich-rules | grep -c . || true; }
sh node.sh
echo "node1_runtime=$(count --zone=public)"
echo "node1_permanent=$(count --permanent --zone=public)"
sh node.sh
echo "node2_runtime=$(count --zone=public)"
echo "node2_permanent=$(count --permanent --zone=public)"
echo "node2_nft_21018=$(nft list ruleset | grep -c 'dport 21018' || true)"
sh network.sh
echo "network_zone=$(count --zone=public)"
echo "network_policy=$(count --policy=scc-ports)"
echo "network_services=$(ls /etc/firewalld/services | grep -c '^scc-ports-' || true)"
"#;
    std::fs::write(dir.path().join("harness.sh"), harness).unwrap();
    let out = Command::new("timeout")
        .args(["300", "unshare", "--mount", "--net", "--pid", "--fork"])
        .arg("--mount-proc")
        .args(["sh", "harness.sh"])
        .arg(dir.path())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the namespace harness failed:\n{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = |key: &str| -> usize {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key} in:\n{stdout}"))
            .trim()
            .parse()
            .unwrap()
    };
    let node_rules = node.matches("--add-rich-rule=").count();
    for key in [
        "node1_runtime",
        "node1_permanent",
        "node2_runtime",
        "node2_permanent",
    ] {
        assert_eq!(value(key), node_rules, "{key}:\n{stdout}");
    }
    assert!(value("node2_nft_21018") > 0, "no kernel rule for 21018");
    assert_eq!(value("network_zone"), 0, "the network run left node rules");
    assert_eq!(
        value("network_policy"),
        network.matches("--add-rich-rule=").count()
    );
    assert_eq!(value("network_services"), heredocs(&network).len());
}

/// python-hcl2 (PyPI, not Debian) is a real HCL2 parser: when it is installed, every output
/// parses, holds as many resources as the text declares, and each ingress rule has its fields.
#[cfg_attr(
    not(scc_py_hcl2),
    ignore = "needs the Python module hcl2 (pip install python-hcl2)"
)]
#[test]
fn aws_parses_with_python_hcl2() {
    if !have("python3", &["-c", "import hcl2"]) {
        eprintln!("skipped: python-hcl2 is not installed (pip install python-hcl2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    let all = every_output("aws");
    for (what, text) in &all {
        let path = dir.path().join(format!("{what}.tf"));
        std::fs::write(&path, text).unwrap();
        let declared = text
            .lines()
            .filter(|l| l.starts_with("resource \""))
            .count();
        files.push(path.display().to_string());
        files.push(declared.to_string());
    }
    let check = r#"
import sys, hcl2
args = sys.argv[1:]
for path, declared in zip(args[0::2], args[1::2]):
    with open(path) as f:
        doc = hcl2.load(f)
    resources = doc.get("resource", [])
    assert len(resources) == int(declared), (path, len(resources), declared)
    assert doc["variable"], path
    for r in resources:
        for kind, named in r.items():
            for name, body in named.items():
                if "ingress_rule" in kind:
                    for key in ("security_group_id", "description", "ip_protocol", "from_port", "to_port"):
                        assert key in body, (path, name, key)
                    assert ("cidr_ipv4" in body) != ("cidr_ipv6" in body), (path, name)
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(check)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every node of every example, including nodes without flows (a database mock node): each
/// target writes a well-formed file, and `--node` in aws still gives the node its (empty) group.
#[test]
fn every_node_of_every_example() {
    let catalog = scc_ports::catalog::Catalog::embedded();
    for example in EXAMPLES {
        let path = format!("examples/{example}.toml");
        let text = std::fs::read_to_string(root().join(&path)).unwrap();
        let dep = scc_ports::deployment::parse(&scc_ports::diag::Source::new(path, text), &catalog)
            .unwrap();
        for node in &dep.nodes {
            let mode = ["--node".to_string(), node.name.clone()];
            let what = format!("{example} {}", node.name);
            check_firewalld_structure(&generate(example, "firewalld", &mode), &what);
            check_windows_structure(&generate(example, "windows", &mode), &what, false);
            let aws = generate(example, "aws", &mode);
            check_aws_structure(&aws, &what);
            assert_eq!(
                aws.matches("resource \"aws_security_group\" ").count(),
                1,
                "{what}"
            );
        }
    }
}
