//! Hostile text through every output: a catalog and a deployment whose texts carry spreadsheet
//! formulas, terminal escapes, bidi controls, line breaks and a 10,239-character name. Every
//! output is checked for forbidden characters, every CSV cell for formulas, and the nft and
//! iptables outputs are parsed by the real tools. Also: tables fit the terminal, JSON carries
//! `format_version`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use scc_ports::safe::is_forbidden;

use crate::support::{Test, example};

/// A text with everything an attacker would put in a name or a usage (TOML escapes).
const HOSTILE: &str = r#"=HYPERLINK(\"http://evil.example\",\"click\") \u001b]0;pwned\u0007 \u202eevil\u202c\nline two\r\u009b31m\u0085 @cmd|' /C calc'!A0"#;

/// The embedded catalog with agent-server's name and usage made hostile.
fn hostile_catalog() -> String {
    let text = std::fs::read_to_string(format!("{}/data/catalog.toml", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    let text = text.replacen(
        "name = \"Agent Server\"",
        &format!("name = \"-Agent {HOSTILE}\""),
        1,
    );
    let at = text.find("id = \"agent-server\"").unwrap();
    let usage = at + text[at..].find("usage = \"Internal\"").unwrap();
    format!(
        "{}usage = \"{HOSTILE}\"{}",
        &text[..usage],
        &text[usage + "usage = \"Internal\"".len()..]
    )
}

/// The all-in-one demo named with the hostile text and 10,239 more characters.
fn hostile_deployment() -> String {
    let text = std::fs::read_to_string(example("all-in-one")).unwrap();
    let long = "N".repeat(10_239);
    text.replacen(
        "name = \"all-in-one demo\"",
        &format!("name = \"+{HOSTILE} {long}\""),
        1,
    )
}

fn hostile() -> Test {
    Test::new()
        .file("catalog.toml", hostile_catalog())
        .file("sys.toml", hostile_deployment())
}

/// No forbidden character except the layout's own line breaks (and tabs in script files).
fn assert_clean(what: &str, text: &str, layout: &[char]) {
    if let Some((i, c)) = text
        .char_indices()
        .find(|&(_, c)| is_forbidden(c) && !layout.contains(&c))
    {
        let from = text[..i].char_indices().rev().nth(40).map_or(0, |(j, _)| j);
        panic!(
            "{what}: forbidden {c:?} at byte {i}, after {:?}",
            &text[from..i]
        );
    }
}

/// Every cell of a CSV document: never a formula (first non-blank `= + - @`), except a lone `-`.
fn assert_csv_cells(what: &str, text: &str) {
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    let mut cells = 0;
    for record in r.records() {
        for cell in record.unwrap().iter() {
            cells += 1;
            let first = cell.trim_start().chars().next();
            assert!(
                cell == "-" || !matches!(first, Some('=' | '+' | '-' | '@' | '\t' | '\r')),
                "{what}: a formula cell {cell:?}"
            );
        }
    }
    assert!(cells > 0, "{what}: no cells");
}

#[test]
fn csv_outputs_never_hold_a_formula() {
    let cases: Vec<Vec<&str>> = vec![
        vec!["catalog", "--format", "csv"],
        vec!["plan", "sys.toml", "--format", "csv"],
        vec!["flows", "sys.toml", "--format", "csv"],
        vec!["firewall", "sys.toml", "--target", "csv", "--network"],
        vec!["firewall", "sys.toml", "--target", "csv", "--node", "SCC1"],
        vec!["firewall", "sys.toml", "--target", "csv", "--workstations"],
    ];
    for args in cases {
        let mut all = vec!["--catalog", "catalog.toml"];
        all.extend(&args);
        let out = hostile().args(&all).run();
        assert_clean(&args.join(" "), &out.stdout, &['\n']);
        assert_csv_cells(&args.join(" "), &out.stdout);
        // The text is kept, made inert: the formula is there, behind a quote.
        if args[0] == "catalog" || args[0] == "flows" || args.contains(&"--node") {
            assert!(
                out.stdout.contains("'=HYPERLINK("),
                "{args:?}: {}",
                out.stdout
            );
        }
    }
}

#[test]
fn terminal_outputs_carry_no_control_or_bidi_character() {
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (vec!["catalog"], 0),
        (vec!["catalog", "--format", "markdown"], 0),
        (vec!["catalog", "--component", "agent-server"], 0),
        (vec!["plan", "sys.toml"], 0),
        (vec!["plan", "sys.toml", "--format", "markdown"], 0),
        (vec!["flows", "sys.toml"], 0),
        (vec!["flows", "sys.toml", "--format", "markdown"], 0),
        (vec!["check", "sys.toml"], 1),
        (vec!["check", "sys.toml", "--format", "json"], 1),
        (vec!["plan", "sys.toml", "--format", "json"], 0),
        (vec!["flows", "sys.toml", "--format", "json"], 0),
        (vec!["catalog", "--format", "json"], 0),
    ];
    for (args, status) in cases {
        let mut all = vec!["--catalog", "catalog.toml", "--color", "never"];
        all.extend(&args);
        let out = hostile().args(&all).status(status).run();
        assert_clean(&args.join(" "), &out.stdout, &['\n']);
        if args.contains(&"json") && args[0] != "check" {
            // Still the same data: the escapes decode to the hostile text.
            let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            assert!(v.to_string().contains("\\u001b]0;pwned"), "{args:?}");
        }
    }
}

#[test]
fn hostile_names_in_errors_reach_the_terminal_cleaned() {
    // A name typed on the command line, echoed in the "unknown zone" error.
    let out = Test::new()
        .args(["flows", "--from", "agents\u{1b}]0;pwned\u{7}\u{202e}"])
        .status(2)
        .stderr_has("unknown zone")
        .run();
    assert_clean("unknown zone", &out.stderr, &['\n']);
    // A zone name in the file, echoed with its source line in the diagnostic.
    let bad = std::fs::read_to_string(example("all-in-one"))
        .unwrap()
        .replacen("[zones.servers]", "[zones.\"serv\\u001b[2Jers\\u202e\"]", 1);
    let out = Test::new()
        .file("bad.toml", bad)
        .args(["check", "bad.toml"])
        .status(2)
        .run();
    assert!(out.stderr.contains("error["), "{}", out.stderr);
    assert_clean("bad zone name", &out.stderr, &['\n']);
}

/// Whether the root-only validators can run: their paths, or None after printing why not (a
/// panic instead when `SCC_PORTS_REQUIRE_ROOT_TESTS=1`).
fn validators() -> Option<(PathBuf, PathBuf)> {
    let find = |tool: &str| {
        let path = std::env::var("PATH").unwrap_or_default();
        path.split(':')
            .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.is_file())
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let reason = if unsafe { libc::geteuid() } != 0 {
        Some("not running as root".to_string())
    } else if find("nft").is_none() || find("iptables-restore").is_none() {
        Some("nft or iptables-restore not found".to_string())
    } else {
        None
    };
    match reason {
        None => Some((find("nft").unwrap(), find("iptables-restore").unwrap())),
        Some(r) => {
            if std::env::var("SCC_PORTS_REQUIRE_ROOT_TESTS").as_deref() == Ok("1") {
                panic!(
                    "hostile firewall validation: {r}, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires it"
                );
            }
            eprintln!("skipping the validators of the hostile firewall test: {r}");
            None
        }
    }
}

#[cfg_attr(
    not(all(scc_nft, scc_iptables)),
    ignore = "needs root, nft and iptables-restore (the validators)"
)]
#[test]
fn every_firewall_target_contains_hostile_names() {
    let tools = validators();
    let scopes: [&[&str]; 3] = [&["--node", "SCC1"], &["--workstations"], &["--network"]];
    for target in ["nftables", "iptables", "firewalld", "windows", "aws", "csv"] {
        for scope in scopes {
            let mut args = vec![
                "--catalog",
                "catalog.toml",
                "firewall",
                "sys.toml",
                "--target",
                target,
                "-o",
                "out.txt",
            ];
            args.extend(scope);
            let out = hostile().args(&args).run();
            let file = out.dir.join("out.txt");
            let text = std::fs::read_to_string(&file).unwrap();
            let what = format!("{target} {scope:?}");
            assert_clean(&what, &text, &['\n', '\t']);
            // No line grows with the 10,239-character name: every user text is capped.
            let longest = text.lines().map(str::len).max().unwrap_or(0);
            assert!(longest < 2_000, "{what}: a line of {longest} bytes");
            assert!(
                !text.contains("line two\n"),
                "{what}: a line break survived"
            );
            if let Some((nft, restore)) = &tools {
                let check = match target {
                    "nftables" => Some(Command::new(nft).args(["-c", "-f"]).arg(&file).output()),
                    "iptables" => Some(Command::new(restore).arg("--test").arg(&file).output()),
                    _ => None,
                };
                if let Some(result) = check {
                    let result = result.unwrap();
                    assert!(
                        result.status.success(),
                        "{what}: the tool rejects the output: {}",
                        String::from_utf8_lossy(&result.stderr)
                    );
                }
            }
            let _ = std::fs::remove_dir_all(&out.dir);
        }
    }
}

#[test]
fn a_long_name_on_one_comment_line_is_what_iptables_restore_would_split() {
    // The test above would pass vacuously if iptables-restore accepted long comment lines: show
    // that an uncapped 10,239-character comment line is indeed rejected (split into a command).
    let Some((_, restore)) = validators() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.rules");
    let rules = format!(
        "# {}-A INPUT -j DROP\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n",
        "N".repeat(10_236)
    );
    std::fs::write(&file, rules).unwrap();
    let out = Command::new(restore)
        .arg("--test")
        .arg(&file)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "iptables-restore accepted a 10,239-byte comment line; the cap is then not what guards it"
    );
}

#[test]
fn tables_fit_the_width_of_columns() {
    let init = Test::new().args(["init", "--template", "redundant"]).run();
    std::fs::write(init.dir.join("redundant.toml"), &init.stdout).unwrap();
    for (width, command) in [
        (100, "plan"),
        (100, "flows"),
        (80, "plan"),
        (100, "catalog"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
            .args([command])
            .args((command != "catalog").then_some("redundant.toml"))
            .current_dir(&init.dir)
            .env("COLUMNS", width.to_string())
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for line in text.lines() {
            assert!(
                line.chars().count() <= width,
                "{command} at {width} columns: {line:?}"
            );
        }
        // Nothing is lost: the longest component name still appears, whole or wrapped at a `-`.
        assert!(
            text.contains("synchronization-") || command == "flows",
            "{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&init.dir);
}

#[test]
fn tables_take_the_width_of_the_real_terminal() {
    // A pseudo-terminal of 90 columns on stdout; COLUMNS says 200 and must lose to the terminal.
    let mut master = 0;
    let mut slave = 0;
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 90,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes the two descriptors we pass; the winsize is ours.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let mut child = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args(["plan", &example("redundant"), "--color", "never"])
        .env("COLUMNS", "200")
        .stdin(Stdio::null())
        .stdout(Stdio::from(slave))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(master);
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        use std::io::Read;
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the child closed the terminal
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    assert!(child.wait().unwrap().success());
    let text = String::from_utf8(bytes).unwrap().replace('\r', "");
    assert!(text.contains("node APP1"), "{text}");
    let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(
        widest <= 90,
        "a line of {widest} columns on a 90-column terminal"
    );
    assert!(
        widest > 80,
        "the table should use the terminal's width: {widest}"
    );
}

#[test]
fn json_objects_carry_a_format_version_and_the_catalog_stays_an_array() {
    for args in [
        vec!["plan", "--format", "json"],
        vec!["flows", "--format", "json"],
        vec!["check", "--format", "json"],
    ] {
        let status = if args[0] == "check" { 1 } else { 0 };
        let out = Test::new().args(&args).status(status).run();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["format_version"], 1, "{args:?}");
    }
    let out = Test::new().args(["catalog", "--format", "json"]).run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v.is_array());
}
