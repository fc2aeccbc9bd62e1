//! The Windows build under Wine, side by side with the Linux binary (issue #9).
//!
//! `.ci/before.d/10-windows.sh` cross-builds `scc-ports.exe`, puts the Wine-only stand-in
//! `bcryptprimitives.dll` beside it, warms a Wine prefix and exports `SCC_PORTS_WINDOWS_EXE`.
//! Without it these tests skip with the reason, unless `SCC_PORTS_REQUIRE_ROOT_TESTS=1` (CI), where
//! they fail, except when the CI job itself said why it could not build (`SCC_PORTS_WINDOWS_SKIP`,
//! e.g. the target's standard library cannot be fetched).
//! Loopback addresses of these tests: 127.0.60.x to 127.0.69.x only.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const EXAMPLES: [&str; 3] = ["all-in-one", "redundant", "large"];
const TARGETS: [&str; 6] = ["nftables", "iptables", "firewalld", "windows", "aws", "csv"];

/// The .exe and the Wine loader, or `None` (the test skips) after saying why.
fn windows(test: &str) -> Option<(PathBuf, PathBuf)> {
    let exe = std::env::var_os("SCC_PORTS_WINDOWS_EXE").map(PathBuf::from);
    let wine = std::env::var_os("SCC_PORTS_WINE")
        .map_or_else(|| PathBuf::from("/usr/lib/wine/wine64"), PathBuf::from);
    let why = match (&exe, std::env::var("SCC_PORTS_WINDOWS_SKIP")) {
        (_, Ok(reason)) => {
            // The CI job decided, and said so in its one line: not a failure of this suite.
            eprintln!("skipping {test}: {reason}");
            return None;
        }
        (None, _) => "SCC_PORTS_WINDOWS_EXE is not set (run .ci/before.d/10-windows.sh)".to_owned(),
        (Some(e), _) if !e.is_file() => format!("{} does not exist", e.display()),
        (Some(_), _) if !wine.is_file() => format!("no Wine at {}", wine.display()),
        (Some(e), _) => return Some((e.clone(), wine)),
    };
    if std::env::var("SCC_PORTS_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
        panic!("{test}: the Windows tests are required but cannot run: {why}");
    }
    eprintln!("skipping {test}: {why}");
    None
}

fn linux(args: &[String], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the Linux binary")
}

fn wine(exe: &Path, wine: &Path, args: &[String], dir: &Path) -> Output {
    Command::new(wine)
        .arg(exe)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env("WINEDEBUG", "-all")
        .stdin(Stdio::null())
        .output()
        .expect("run the .exe under Wine")
}

/// Windows text with its line endings made Unix ones (the only difference allowed).
fn unix_lines(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            i += 1;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

fn node_names(example: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(example).expect("read example");
    let table: toml::Table = text.parse().expect("example is TOML");
    table
        .get("nodes")
        .and_then(|n| n.as_table())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default()
}

/// Every command of the comparison: catalog, plan, check and flows in every format, and every
/// firewall target for every node, the workstations and the network, of every example.
fn commands() -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>();
    let mut out = Vec::new();
    for f in ["table", "json", "csv", "markdown"] {
        out.push(s(&["catalog", "--format", f]));
    }
    for e in EXAMPLES {
        let file = format!("{e}.toml");
        for f in ["table", "json", "csv", "markdown"] {
            out.push(s(&["plan", &file, "--format", f]));
            out.push(s(&["flows", &file, "--format", f]));
        }
        for f in ["table", "json"] {
            out.push(s(&["check", &file, "--format", f]));
        }
        let nodes = node_names(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples")
                .join(&file),
        );
        assert!(!nodes.is_empty(), "{file} has nodes");
        for t in TARGETS {
            for n in &nodes {
                out.push(s(&["firewall", &file, "--target", t, "--node", n]));
            }
            out.push(s(&["firewall", &file, "--target", t, "--workstations"]));
            out.push(s(&["firewall", &file, "--target", t, "--network"]));
        }
    }
    // Errors too: the same exit code and the same message on stdout (none) either way.
    out.push(s(&["plan", "no-such-file.toml"]));
    out.push(s(&[
        "firewall",
        "redundant.toml",
        "--target",
        "csv",
        "--node",
        "NOPE",
    ]));
    out
}

#[test]
fn every_golden_output_is_the_same_under_wine() {
    let Some((exe, loader)) = windows("every_golden_output_is_the_same_under_wine") else {
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let cmds = commands();
    let started = Instant::now();
    let mut differ = Vec::new();
    for args in &cmds {
        let l = linux(args, &dir);
        let w = wine(&exe, &loader, args, &dir);
        if l.status.code() != w.status.code() {
            differ.push(format!(
                "{}: exit {:?} on Linux, {:?} under Wine ({})",
                args.join(" "),
                l.status.code(),
                w.status.code(),
                String::from_utf8_lossy(&w.stderr).trim()
            ));
        } else if l.stdout != unix_lines(&w.stdout) {
            let (a, b) = (
                String::from_utf8_lossy(&l.stdout),
                String::from_utf8_lossy(&w.stdout),
            );
            let line = a
                .lines()
                .zip(b.lines())
                .position(|(x, y)| x != y.trim_end_matches('\r'))
                .map_or_else(|| "length".to_owned(), |i| format!("line {}", i + 1));
            differ.push(format!("{}: stdout differs at {line}", args.join(" ")));
        }
        assert!(
            !l.stdout.is_empty() || !l.status.success(),
            "{} printed nothing",
            args.join(" ")
        );
    }
    eprintln!(
        "{} commands compared (Linux and Wine) in {:.1} s",
        cmds.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(differ.is_empty(), "{}", differ.join("\n"));
}

#[test]
fn line_endings_are_the_only_allowed_difference() {
    assert_eq!(unix_lines(b"a\r\nb\n\r\nc\r"), b"a\nb\n\nc\r");
}
