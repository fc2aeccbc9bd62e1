//! `report`, `diagram` and `inventory` through the binary: goldens of every format over fixed
//! probe results (tests/report/: one filtered, one closed, one open, a zone with no result), the
//! exit code, the errors for bad result files, and hostile names escaped in every output; and
//! `report --audit` / `--compare` over audits that `scc-ports audit` makes in the test (goldens,
//! exit codes, audits that do not count, hostile audit text, drift both ways).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::required;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/report")
}

/// Runs the binary in the fixture directory (so file names in the output are short).
fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args(args)
        .current_dir(dir)
        .env("COLUMNS", "100")
        .env_remove("SCC_PORTS_SECRET")
        .output()
        .expect("run scc-ports");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("utf-8 stdout"),
        String::from_utf8(out.stderr).expect("utf-8 stderr"),
    )
}

const RESULTS: [&str; 3] = ["system.toml", "dc.json", "agents.json"];

#[test]
fn every_report_format_matches_its_golden() {
    for format in ["table", "json", "junit", "markdown", "html"] {
        let mut args = vec!["report"];
        args.extend(RESULTS);
        args.extend(["--format", format, "--listen-log", "listen-APP2.log"]);
        let (code, out, err) = run(&fixtures(), &args);
        assert_eq!(code, 1, "{format}: failures exit 1; stderr: {err}");
        // The open port's holder, from the listener's log; the closed port's line too.
        assert!(out.contains("held by pid 4242 nginx"), "{format}");
        insta::assert_snapshot!(format!("report_{format}"), out);
    }
}

#[test]
fn fixes_follow_the_target() {
    for target in ["iptables", "windows", "aws", "csv"] {
        let mut args = vec!["report"];
        args.extend(RESULTS);
        args.extend(["--format", "markdown", "--target", target]);
        let (code, out, _) = run(&fixtures(), &args);
        assert_eq!(code, 1);
        let failures = out.split("## Matrix").next().unwrap().to_string();
        insta::assert_snapshot!(format!("report_fixes_{target}"), failures);
    }
}

#[test]
fn json_keeps_every_planned_port_and_names_the_failures() {
    let mut args = vec!["report"];
    args.extend(RESULTS);
    args.extend(["--format", "json"]);
    let (_, out, _) = run(&fixtures(), &args);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(
        rows.len(),
        v["summary"]["planned"].as_u64().unwrap() as usize
    );
    for key in [
        "zone",
        "node",
        "address",
        "transport",
        "port",
        "component",
        "port_id",
        "status",
        "detail",
    ] {
        assert!(
            rows.iter().all(|r| r.get(key).is_some()),
            "every row has {key}"
        );
    }
    let count = |st: &str| rows.iter().filter(|r| r["status"] == st).count();
    assert_eq!(count("open"), 1);
    assert_eq!(count("closed"), 1);
    assert_eq!(count("filtered"), 6); // one client port and five of the recording area
    assert!(count("untested") > 0);
    // Untested: the carrier's zone (no result), and the agents' PCs (no PC probed).
    assert!(
        rows.iter()
            .filter(|r| r["status"] == "untested")
            .all(|r| r["zone"] == "carrier" || r["node"] == "PCs of agents")
    );
    assert_eq!(
        v["flows"],
        serde_json::json!({"planned": 21, "passed": 6, "failed": 4, "untested": 11})
    );
    assert_eq!(
        v["untested_zones"],
        serde_json::json!([{"zone": "carrier", "flows": 7, "ports": 65,
            "action": "run `scc-ports probe FILE --from carrier --format json` on a host in that zone and add its result"}])
    );
    // An untested zone is one line, not a failure per flow.
    assert!(
        v["failures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["zone"] != "carrier")
    );
    let filtered = v["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["status"] == "filtered" && f["port_id"] == "client-port")
        .unwrap();
    let hops: Vec<&str> = filtered["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["firewall"].as_str().unwrap())
        .collect();
    assert_eq!(
        hops,
        [
            "host firewall of node APP1",
            "host firewall of node APP2",
            "network firewall between zones agents and dc"
        ]
    );
    assert_eq!(v["passed"], false);
}

#[test]
fn all_verified_exits_zero_and_no_results_is_all_untested() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("system.toml"),
        dir.path().join("system.toml"),
    )
    .unwrap();
    // Every planned port of every zone, verified.
    let (_, out, _) = run(dir.path(), &["report", "system.toml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut zones = std::collections::BTreeMap::<String, Vec<serde_json::Value>>::new();
    for r in v["rows"].as_array().unwrap() {
        let mut r = r.clone();
        r["status"] = "verified".into();
        zones
            .entry(r["zone"].as_str().unwrap().to_string())
            .or_default()
            .push(r);
    }
    assert_eq!(v["summary"]["untested"], v["summary"]["planned"]);
    // Where each zone's prober sent from (inside the zone, as `probe` records it).
    let source = |zone: &str| match zone {
        "dc" => "127.0.70.200",
        "agents" => "127.0.71.200",
        _ => "127.0.72.200",
    };
    let mut args = vec!["report".to_string(), "system.toml".to_string()];
    for (zone, results) in &zones {
        let name = format!("{zone}.json");
        std::fs::write(
            dir.path().join(&name),
            serde_json::json!({ "zone": zone, "sources": [source(zone)], "results": results })
                .to_string(),
        )
        .unwrap();
        args.push(name);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, _) = run(dir.path(), &args);
    assert_eq!(code, 0, "{out}");
    // The agents' PCs too (a sample PC's results, here at the zone's first address).
    assert!(
        out.starts_with(
            "System loop: PASSED: all 21 planned flows verified from every zone (163 ports)"
        ),
        "{out}"
    );
}

#[test]
fn bad_result_files_are_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(fixtures().join("system.toml"), d.join("system.toml")).unwrap();
    std::fs::write(d.join("nozone.json"), r#"{"results": []}"#).unwrap();
    std::fs::write(d.join("typo.json"), r#"{"zone": "agent", "results": []}"#).unwrap();
    std::fs::write(
        d.join("broken.json"),
        "{\n  \"zone\": \"dc\",\n  \"results\": [1]\n}",
    )
    .unwrap();
    let (code, _, err) = run(d, &["report", "system.toml", "nozone.json"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("nozone.json: the probe result names no zone"),
        "{err}"
    );
    let (code, _, err) = run(d, &["report", "system.toml", "typo.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("zone `agent` is not a zone"), "{err}");
    assert!(err.contains("did you mean `agents`?"), "{err}");
    let (code, _, err) = run(d, &["report", "system.toml", "broken.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("broken.json:3:"), "{err}");
    let (code, _, err) = run(d, &["report", "system.toml", "missing.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.json"), "{err}");
}

#[test]
fn output_file_is_written_and_exit_still_says_no() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report.html");
    let mut args = vec!["report"];
    args.extend(RESULTS);
    let o = out.to_str().unwrap();
    args.extend(["--format", "html", "-o", o]);
    let (code, stdout, _) = run(&fixtures(), &args);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    // Self-contained: nothing is fetched from anywhere.
    for needle in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(needle), "the page contains {needle}");
    }
}

#[test]
fn diagram_and_inventory_match_their_goldens() {
    for format in ["mermaid", "dot", "svg"] {
        let (code, out, err) = run(&fixtures(), &["diagram", "system.toml", "--format", format]);
        assert_eq!(code, 0, "{err}");
        insta::assert_snapshot!(format!("diagram_{format}"), out);
    }
    let (code, out, _) = run(&fixtures(), &["inventory", "system.toml"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("inventory", out);
}

/// A deployment whose every name a file can choose is markup in some output language.
const HOSTILE: &str = r#"
name = "<script>alert(1)</script>\"]-->x`|*"
[zones.dc]
cidrs = ["127.0.70.0/24"]
roles = ["servers"]
[nodes.APP1]
address = "127.0.70.11"
zone = "dc"
"#;

#[test]
fn hostile_names_are_escaped_in_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("h.toml"), HOSTILE).unwrap();
    let (code, html, err) = run(d, &["report", "h.toml", "--format", "html"]);
    assert_eq!(code, 1, "{err}");
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let (_, junit, _) = run(d, &["report", "h.toml", "--format", "junit"]);
    assert!(!junit.contains("<script>"));
    let (_, svg, _) = run(d, &["diagram", "h.toml", "--format", "svg"]);
    assert!(!svg.contains("<script>"));
    let (_, mmd, _) = run(d, &["diagram", "h.toml", "--format", "mermaid"]);
    assert!(!mmd.contains("\"]-->x"), "{mmd}");
    let (_, dot, _) = run(d, &["diagram", "h.toml", "--format", "dot"]);
    assert!(dot.starts_with("digraph \"<script>alert(1)</script>\\\"]-->x`|*\" {"));
    let (_, inv, _) = run(d, &["inventory", "h.toml"]);
    assert!(
        inv.contains(r#""<script>alert(1)</script>\"]-->x`|*""#),
        "{inv}"
    );
}

/// Opens `html` in headless Chromium (tests/browser/check.mjs), expecting `failures` failure
/// blocks; what it found, or `None` when Chromium or node is missing (CI requires them).
/// The screenshot is a test artifact: target/test-artifacts/SHOT.
/// Runs `report ARGS --format html -o HTML` in `dir`; every page the browser checks comes from
/// inputs that fail, so it must exit 1.
fn failing_html_report(dir: &Path, args: &[&str], html: &Path) {
    let mut all = vec!["report"];
    all.extend(args);
    all.extend(["--format", "html", "-o", html.to_str().unwrap()]);
    let (code, _, err) = run(dir, &all);
    assert_eq!(code, 1, "{err}");
}

fn chromium_check(html: &Path, shot: &str, failures: usize) -> Option<serde_json::Value> {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let required = required();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing = if !browser.join("node_modules/playwright-core").is_dir() {
        Some("tests/browser/node_modules is missing (npm ci in tests/browser)")
    } else if !Path::new(&chromium).exists() {
        Some("chromium is not installed")
    } else {
        None
    };
    if let Some(why) = missing {
        assert!(
            !required,
            "{why}, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires this test"
        );
        eprintln!("skipped: {why}");
        return None;
    }
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join(shot);
    let _ = std::fs::remove_file(&shot);
    let out = Command::new("node")
        .arg(browser.join("check.mjs"))
        .arg(html)
        .arg(&shot)
        .arg(failures.to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    found["screenshot"] = shot.display().to_string().into();
    Some(found)
}

/// The HTML report in headless Chromium (tests/browser/check.mjs, playwright-core driving
/// /usr/bin/chromium): no console errors, no network requests, the failures and the SVG present.
/// The screenshot is a test artifact: target/test-artifacts/report.png.
#[cfg_attr(
    not(scc_chromium),
    ignore = "needs chromium and node (with playwright-core in tests/browser)"
)]
#[test]
fn html_report_renders_in_headless_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    failing_html_report(&fixtures(), &RESULTS, &html);
    // Eight failure groups in the fixtures: closed, open, two filtered, and the agents' PCs
    // (RTP and RTCP) untested from dc and from agents; the carrier zone, untested as a whole, is
    // one line of its own.
    let Some(found) = chromium_check(&html, "report.png", 8) else {
        return;
    };
    let shot = PathBuf::from(found["screenshot"].as_str().unwrap());
    assert_eq!(found["console_errors"], serde_json::json!([]));
    assert_eq!(found["requests"], serde_json::json!([]));
    assert_eq!(found["svg"], 1);
    // Three zones, two units, two nodes; a flow edge per (zone, destination) and 4 instances.
    assert_eq!(found["svg_boxes"], 7);
    assert!(
        found["verdict"]
            .as_str()
            .unwrap()
            .starts_with("FAILED: 21 planned flows: 6 passed, 4 failed, 11 untested")
    );
    assert!(found["pdf_bytes"].as_u64().unwrap() > 10_000, "printable");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "a screenshot"
    );
    eprintln!("screenshot: {}", shot.display());
}

/// A detail a result file could carry to forge the report: line breaks, a fake verdict, and a
/// right-to-left override that reorders what follows on screen.
const FORGED: &str = "refused\n\nMatrix: every planned port verified.\nSystem loop: PASSED: all 79 planned ports verified from every zone\u{202e}DELIAF\u{2028}x";

/// The fixtures with `FORGED` as the detail of dc.json's closed port; returns the directory.
fn forged_fixtures() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in ["system.toml", "agents.json"] {
        std::fs::copy(fixtures().join(f), dir.path().join(f)).unwrap();
    }
    let mut dc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("dc.json")).unwrap())
            .unwrap();
    let closed = dc["results"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["status"] == "closed")
        .unwrap();
    closed["detail"] = FORGED.into();
    std::fs::write(dir.path().join("dc.json"), dc.to_string()).unwrap();
    // And an agent PC's empty result that names zone dc.
    std::fs::write(
        dir.path().join("agent-pc.json"),
        r#"{"format_version": 1, "zone": "dc", "sources": ["127.0.71.23"], "results": []}"#,
    )
    .unwrap();
    dir
}

fn is_bidi_or_break(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// Issue 23, item 5: a detail cannot start a line of its own (a forged verdict) in the terminal
/// table, Markdown or JUnit, and no bidi control or line separator reaches any output raw.
#[test]
fn a_result_file_cannot_forge_lines_or_reorder_text() {
    let dir = forged_fixtures();
    for format in ["table", "markdown", "junit", "html", "json"] {
        let mut args = vec!["report"];
        args.extend(RESULTS);
        args.extend(["--format", format]);
        let (code, out, err) = run(dir.path(), &args);
        assert_eq!(code, 1, "{format}: {err}");
        assert!(
            !out.chars().any(is_bidi_or_break),
            "{format}: a bidi control or line separator:\n{out}"
        );
        for line in out.lines() {
            let l = line.trim_start_matches([' ', '-', '*', '#', '>']);
            assert!(
                !l.starts_with("System loop: PASSED") && !l.starts_with("Matrix: every planned"),
                "{format}: a forged line: {line:?}"
            );
        }
        // The text is still there, on the detail's own line (the JSON keeps it exact).
        assert!(
            out.contains("PASSED: all 79 planned ports verified"),
            "{format}"
        );
    }
    let (_, table, _) = run(
        dir.path(),
        &["report", "system.toml", "dc.json", "agents.json"],
    );
    assert!(
        table.starts_with("System loop: FAILED: 21 planned flows"),
        "{table}"
    );
    assert!(
        table.contains(
            "   detail: refused  Matrix: every planned port verified. System loop: PASSED: all 79 planned ports verified from every zone DELIAF x\n"
        ),
        "{table}"
    );
}

/// Issue 23, item 5, in the browser: the page shows no bidi control, the real verdict, and the
/// file that does not count.
#[cfg_attr(
    not(scc_chromium),
    ignore = "needs chromium and node (with playwright-core in tests/browser)"
)]
#[test]
fn a_forged_detail_shows_as_text_in_headless_chromium() {
    let dir = forged_fixtures();
    let html = dir.path().join("report.html");
    let mut args = RESULTS.to_vec();
    args.push("agent-pc.json");
    failing_html_report(dir.path(), &args, &html);
    let Some(found) = chromium_check(&html, "report-forged.png", 8) else {
        return;
    };
    assert_eq!(found["bidi"], 0, "{found}");
    assert_eq!(
        found["verdict"],
        "FAILED: 21 planned flows: 6 passed, 4 failed, 11 untested (ports: 129 of 163 not verified: 1 open, 1 closed, 6 filtered, 121 untested); 1 result file does not count for the zone it names",
        "{found}"
    );
    assert_eq!(found["rejected_rows"], 1, "{found}");
}

/// Issue 23, item 5: an agent PC's result relabelled `"zone": "dc"` does not turn the dc zone
/// verified; the report says which file does not count and why, and exits 1. The zone the
/// playbook ran a prober in (`--expect-zone`) overrides the file's word.
#[test]
fn a_result_file_counts_only_for_the_zone_it_was_made_in() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(fixtures().join("system.toml"), d.join("system.toml")).unwrap();
    // Every dc port verified, as the forger would write it, sent from an agents address.
    let (_, out, _) = run(d, &["report", "system.toml", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let dc: Vec<serde_json::Value> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["zone"] == "dc")
        .map(|r| {
            let mut r = r.clone();
            r["status"] = "verified".into();
            r
        })
        .collect();
    let forged = |sources: serde_json::Value| {
        serde_json::json!({ "format_version": 1, "zone": "dc", "sources": sources, "results": dc })
            .to_string()
    };
    std::fs::write(
        d.join("agent-pc.json"),
        forged(serde_json::json!(["127.0.71.23"])),
    )
    .unwrap();
    std::fs::write(d.join("nosource.json"), forged(serde_json::json!([]))).unwrap();
    std::fs::write(
        d.join("honest.json"),
        forged(serde_json::json!(["127.0.70.23"])),
    )
    .unwrap();
    let verified_dc = |args: &[&str]| -> (i32, usize, String) {
        let mut a = vec!["report", "system.toml"];
        a.extend(args);
        a.extend(["--format", "json"]);
        let (code, out, err) = run(d, &a);
        assert!(code == 0 || code == 1, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let n = v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["zone"] == "dc" && r["status"] == "verified")
            .count();
        (code, n, v["rejected"].to_string())
    };
    let planned_dc = dc.len();
    assert_eq!(verified_dc(&["honest.json"]).1, planned_dc);
    let (code, n, rejected) = verified_dc(&["agent-pc.json"]);
    assert_eq!((code, n), (1, 0), "{rejected}");
    assert!(
        rejected.contains(
            "it names zone dc but was sent from 127.0.71.23, outside the zone (127.0.70.0/24)"
        ),
        "{rejected}"
    );
    let (code, n, rejected) = verified_dc(&["nosource.json"]);
    assert_eq!((code, n), (1, 0), "{rejected}");
    assert!(rejected.contains("records no source address"), "{rejected}");
    // The playbook's word: the honest-looking file was made in zone agents.
    let (code, n, rejected) = verified_dc(&["honest.json", "--expect-zone", "honest.json=agents"]);
    assert_eq!((code, n), (1, 0), "{rejected}");
    assert!(rejected.contains("was made in zone agents"), "{rejected}");
    assert_eq!(
        verified_dc(&["nosource.json", "--expect-zone", "nosource.json=dc"]).1,
        planned_dc
    );
    // Said in every format a person reads.
    let (_, table, _) = run(d, &["report", "system.toml", "agent-pc.json"]);
    assert!(
        table.contains("Result files that do not count (1; their results are not used):\n  agent-pc.json: it names zone dc but was sent from 127.0.71.23"),
        "{table}"
    );
    let (_, junit, _) = run(
        d,
        &[
            "report",
            "system.toml",
            "agent-pc.json",
            "--format",
            "junit",
        ],
    );
    assert!(junit.contains("<testcase classname=\"result-file\" name=\"agent-pc.json\">"));
    let (_, md, _) = run(
        d,
        &[
            "report",
            "system.toml",
            "agent-pc.json",
            "--format",
            "markdown",
        ],
    );
    assert!(md.contains("## Result files that do not count\n\n- agent-pc.json: it names zone dc"));
    // An --expect-zone for a file that is not given is a mistake of the invocation.
    let (code, _, err) = run(
        d,
        &[
            "report",
            "system.toml",
            "honest.json",
            "--expect-zone",
            "other.json=dc",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--expect-zone names other.json, which is not among the result files"),
        "{err}"
    );
}

/// Issue 23, item 5: a result of a newer format is refused (exit 2), never read as if it were ours.
#[test]
fn a_newer_result_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(fixtures().join("system.toml"), d.join("system.toml")).unwrap();
    std::fs::write(
        d.join("future.json"),
        r#"{"format_version": 99, "zone": "dc", "sources": ["127.0.70.9"], "results": []}"#,
    )
    .unwrap();
    let (code, out, err) = run(d, &["report", "system.toml", "future.json"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        err.contains(
            "future.json: format_version 99 is newer than this scc-ports reads (1); hint:"
        ),
        "{err}"
    );
}

// --- report --audit and --compare (issues 18 and 20): the audits are made by `scc-ports audit`
// itself, on the fixtures of tests/audit/ and tests/appliance/, never written by hand ---

/// Runs `scc-ports audit ARGS --format json` in `dir`, expecting exit `code`, and writes its
/// output to `dir/out`.
fn audit_to(dir: &Path, args: &[&str], out: &str, code: i32) {
    let mut all = vec!["audit"];
    all.extend(args);
    all.extend(["--format", "json"]);
    let (c, json, err) = run(dir, &all);
    assert_eq!(c, code, "audit {args:?}: {err}");
    std::fs::write(dir.join(out), json).unwrap();
}

fn copy(from: &Path, dir: &Path, to: &str) {
    std::fs::copy(from, dir.join(to)).unwrap_or_else(|e| panic!("{}: {e}", from.display()));
}

/// The fleet, in a fresh directory: the audit lab with its network firewall EDGE (fleet.toml),
/// a probe result from the agents (agents.json: two ports filtered), and two audits: APP1's
/// host firewall (tests/audit/admin.rules, an iptables-save with a blocked port and openings
/// beyond the plan) and EDGE, a Cisco ASA (tests/appliance/asa.cfg).
fn fleet() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy(&fixtures().join("fleet.toml"), d, "fleet.toml");
    copy(&fixtures().join("fleet-agents.json"), d, "agents.json");
    copy(&root.join("tests/audit/admin.rules"), d, "APP1.rules");
    copy(&root.join("tests/appliance/asa.cfg"), d, "EDGE.cfg");
    audit_to(
        d,
        &["fleet.toml", "--node", "APP1", "--ruleset", "APP1.rules"],
        "APP1.json",
        1,
    );
    audit_to(
        d,
        &[
            "fleet.toml",
            "--network",
            "--firewall",
            "EDGE",
            "--ruleset",
            "EDGE.cfg",
        ],
        "EDGE.json",
        1,
    );
    dir
}

const FLEET: [&str; 6] = [
    "fleet.toml",
    "agents.json",
    "--audit",
    "APP1.json",
    "--audit",
    "EDGE.json",
];

#[test]
fn the_fleet_report_matches_its_golden_in_every_format() {
    let dir = fleet();
    for format in ["table", "json", "junit", "markdown", "html"] {
        let mut args = vec!["report"];
        args.extend(FLEET);
        args.extend(["--format", format]);
        let (code, out, err) = run(dir.path(), &args);
        assert_eq!(code, 1, "{format}: {err}");
        // Both firewalls, each with what it does not admit and what it opens beyond the plan.
        for needle in [
            "host firewall of node APP1",
            "network firewall EDGE",
            "media-routing-server.prompt-area",
            "10.88.5.0/24",
            "scc-ports firewall fleet.toml --target iptables --node APP1 --diff",
        ] {
            assert!(out.contains(needle), "{format}: {needle}");
        }
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["passed"], false);
            // The probe part is the probe report's: every planned port of every zone.
            assert_eq!(
                v["rows"].as_array().unwrap().len(),
                v["summary"]["planned"].as_u64().unwrap() as usize
            );
            let a = &v["audit"];
            assert_eq!(
                (a["firewalls"].as_u64(), a["exact"].as_u64()),
                (Some(2), Some(0))
            );
            insta::assert_json_snapshot!("report_audit_json", a);
        } else {
            insta::assert_snapshot!(format!("report_audit_{format}"), out);
        }
    }
}

/// The fleet's planned iptables rules for APP1, as `firewall` prints them.
fn app1_iptables(d: &Path) -> String {
    let (code, out, err) = run(
        d,
        &[
            "firewall",
            "fleet.toml",
            "--target",
            "iptables",
            "--node",
            "APP1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn an_audit_alone_makes_a_report_and_an_exact_one_exits_zero() {
    let dir = fleet();
    let d = dir.path();
    let out = app1_iptables(d);
    std::fs::write(d.join("good.rules"), out).unwrap();
    audit_to(
        d,
        &["fleet.toml", "--node", "APP1", "--ruleset", "good.rules"],
        "good.json",
        0,
    );
    for format in ["table", "json", "junit", "markdown", "html"] {
        let (code, out, err) = run(
            d,
            &[
                "report",
                "fleet.toml",
                "--audit",
                "good.json",
                "--format",
                format,
            ],
        );
        assert_eq!(code, 0, "{format}: {err}\n{out}");
        // No probe result: no port stands untested for want of one (the JSON's counts are 0,
        // the page's style names the class), and no matrix.
        assert!(
            matches!(format, "json" | "html") || !out.contains("untested"),
            "{format}: no probe, no untested port"
        );
        assert!(!out.contains("id=\"matrix\""), "{format}");
        if format == "table" {
            assert_eq!(
                out.lines().take(2).collect::<Vec<_>>(),
                [
                    "System audit lab: PASSED",
                    "  audits: PASSED: the audited firewall admits exactly the plan"
                ]
            );
        }
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["passed"], true);
            assert_eq!(v["rows"], serde_json::json!([]));
            assert_eq!(v["audit"]["audits"][0]["subject"]["name"], "APP1");
            assert_eq!(v["audit"]["audits"][0]["fix"], serde_json::Value::Null);
        }
    }
    // The appliance's audit alone: not exact, exit 1.
    let (code, out, _) = run(d, &["report", "fleet.toml", "--audit", "EDGE.json"]);
    assert_eq!(code, 1);
    assert!(out.starts_with("System audit lab: FAILED\n  audits: FAILED: 1 of 1 audited firewalls not exact: 3 flows not admitted"), "{out}");
}

#[test]
fn unreadable_audit_files_are_located_errors_exit_2() {
    let dir = fleet();
    let d = dir.path();
    let cases: [(&str, String, &str); 5] = [
        (
            "broken.json",
            "{\n  \"summary\": {},\n  \"flows\": [1,\n".to_string(),
            "broken.json:3:",
        ),
        (
            "probe.json",
            std::fs::read_to_string(d.join("agents.json")).unwrap(),
            "a probe result, not an audit result",
        ),
        (
            "typed.json",
            "{\"summary\": {}, \"flows\": [{\"blocked\": 7}]}".to_string(),
            "typed.json:1:",
        ),
        (
            "future.json",
            "{\"format_version\": 99, \"summary\": {}, \"flows\": []}".to_string(),
            "format_version 99 is newer",
        ),
        (
            "huge.json",
            format!(
                "{{\"summary\": {{}}, \"flows\": [{}{{}}]}}",
                "{},".repeat(4_000_001)
            ),
            "more than 4000000 JSON values",
        ),
    ];
    for (name, text, expect) in cases {
        std::fs::write(d.join(name), text).unwrap();
        let (code, out, err) = run(d, &["report", "fleet.toml", "--audit", name]);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(out.is_empty(), "{name}");
        assert!(err.contains(expect), "{name}: {err}");
        assert!(err.contains("hint"), "{name}: {err}");
    }
    let (code, _, err) = run(d, &["report", "fleet.toml", "--audit", "missing.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.json"), "{err}");
}

/// An audit of another deployment, or one naming a node the deployment lacks, does not count: it
/// is listed with the reason, its findings are not merged, and the report fails.
#[test]
fn an_audit_of_another_plan_does_not_count() {
    let dir = fleet();
    let d = dir.path();
    copy(&fixtures().join("system.toml"), d, "system.toml");
    // The same ruleset audited as node APP1 of another system (tests/report/system.toml).
    audit_to(
        d,
        &["system.toml", "--node", "APP1", "--ruleset", "APP1.rules"],
        "other-APP1.json",
        1,
    );
    let (code, out, err) = run(d, &["report", "fleet.toml", "--audit", "other-APP1.json"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        out.contains("Audit files that do not count (1; their findings are not used):\n  other-APP1.json (host firewall of node APP1): its flows are not the plan's flows of the host firewall of node APP1: "),
        "{out}"
    );
    assert!(out.contains("Audited firewalls (0):"), "{out}");
    // A subject the deployment does not have (the grouped audit JSON names it).
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("APP1.json")).unwrap()).unwrap();
    v["subject"] = serde_json::json!({"kind": "node", "name": "APP2"});
    std::fs::write(d.join("renamed.json"), v.to_string()).unwrap();
    let (code, out, _) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "--audit",
            "renamed.json",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let reason = v["audit"]["rejected"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "it audits node `APP2`, which is not a node of this deployment (did you mean `APP1`?"
        ),
        "{reason}"
    );
    assert_eq!(v["audit"]["audits"], serde_json::json!([]));
    // Two audits of one firewall: the second does not count.
    std::fs::copy(d.join("APP1.json"), d.join("APP1-again.json")).unwrap();
    let (code, out, _) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "--audit",
            "APP1.json",
            "--audit",
            "APP1-again.json",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["audit"]["firewalls"], 1);
    assert_eq!(
        v["audit"]["rejected"][0]["reason"],
        "the report already has an audit of the host firewall of node APP1 (APP1.json): give one audit per firewall"
    );
}

/// Hostile text in an audit (a rule, a zone, the ruleset's path) reaches no output raw: no
/// control or bidi character, no markup, and the fix's path stays one shell word.
#[test]
fn hostile_audit_text_is_cleaned_for_every_sink() {
    let dir = fleet();
    let d = dir.path();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("APP1.json")).unwrap()).unwrap();
    let evil = "x\u{1b}[2J\n\nSystem audit lab: PASSED\u{202e}<script>alert(1)</script>|*`";
    let bad = v["flows"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["status"] != "admitted")
        .unwrap();
    bad["rule"] = evil.into();
    v["extra"][0]["rule"] = evil.into();
    v["ruleset"] = "it's $(reboot)\n.rules".into();
    std::fs::write(d.join("APP1.json"), v.to_string()).unwrap();
    for format in ["table", "json", "junit", "markdown", "html"] {
        let (code, out, err) = run(
            d,
            &[
                "report",
                "fleet.toml",
                "--audit",
                "APP1.json",
                "--format",
                format,
            ],
        );
        assert_eq!(code, 1, "{format}: {err}");
        assert!(
            !out.chars()
                .any(|c| c != '\n' && (c.is_control() || is_bidi_or_break(c))),
            "{format}: a control or bidi character"
        );
        assert!(
            !out.lines()
                .any(|l| l.trim_start().starts_with("System audit lab: PASSED")),
            "{format}: a forged line"
        );
        match format {
            "html" | "junit" => assert!(!out.contains("<script>"), "{format}"),
            "json" => {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(
                    v["audit"]["audits"][0]["ruleset"], "it's $(reboot)\n.rules",
                    "the data stays exact"
                );
            }
            "table" => assert!(
                out.contains("--diff 'it'\\''s $(reboot) .rules'"),
                "one shell word: {out}"
            ),
            _ => {}
        }
    }
}

/// Two runs: between them one planned flow breaks (its rule removed) and one opening beyond the
/// plan appears (tcp 2222 from the agents); `--compare` names both and exits 1, and the reverse
/// says fixed and closed, exit 0. The earlier run may be a report's JSON or a bare audit.
#[test]
fn drift_names_what_broke_and_what_opened_and_the_reverse_what_was_fixed() {
    let dir = fleet();
    let d = dir.path();
    let good = app1_iptables(d);
    let client = good
        .lines()
        .find(|l| l.contains("\"connection-server.client-port\""))
        .expect("the client port's rule");
    let bad = good.replace(
        client,
        "-A SCC-PORTS -s 10.88.2.0/24 -d 10.88.1.11/32 -p tcp -m tcp --dport 2222 -j ACCEPT",
    );
    std::fs::write(d.join("good.rules"), &good).unwrap();
    std::fs::write(d.join("bad.rules"), &bad).unwrap();
    audit_to(
        d,
        &["fleet.toml", "--node", "APP1", "--ruleset", "good.rules"],
        "good.json",
        0,
    );
    audit_to(
        d,
        &["fleet.toml", "--node", "APP1", "--ruleset", "bad.rules"],
        "bad.json",
        1,
    );
    for (audit, out) in [("good.json", "before.json"), ("bad.json", "after.json")] {
        let (_, _, err) = run(
            d,
            &[
                "report",
                "fleet.toml",
                "--audit",
                audit,
                "--format",
                "json",
                "-o",
                out,
            ],
        );
        assert!(err.is_empty(), "{err}");
    }
    // Worse: from the earlier report, and from the earlier bare audit alike.
    for old in ["before.json", "good.json"] {
        for format in ["table", "json", "junit", "markdown", "html"] {
            let (code, out, err) = run(
                d,
                &[
                    "report",
                    "fleet.toml",
                    "--audit",
                    "bad.json",
                    "--compare",
                    old,
                    "--format",
                    format,
                ],
            );
            assert_eq!(code, 1, "{old} {format}: {err}");
            if format == "json" {
                let v: serde_json::Value = serde_json::from_str(&out).unwrap();
                let drift = &v["drift"];
                assert_eq!(drift["worse"], true);
                let failing: Vec<&str> = drift["newly_failing"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["what"].as_str().unwrap())
                    .collect();
                assert_eq!(failing.len(), 1, "{failing:?}");
                assert!(failing[0].starts_with("from agents to 10.88.1.100 tcp/21002 connection-server.client-port: blocked 21002 by "), "{failing:?}");
                let open: Vec<&str> = drift["newly_open"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c["what"].as_str().unwrap())
                    .collect();
                assert_eq!(open, ["from 10.88.2.0/24 to 10.88.1.11 tcp/2222"]);
                assert_eq!(drift["newly_fixed"], serde_json::json!([]));
                assert_eq!(drift["closed"], serde_json::json!([]));
                if old == "before.json" {
                    insta::assert_json_snapshot!("report_drift_worse_json", drift);
                }
            } else if old == "before.json" {
                insta::assert_snapshot!(format!("report_drift_worse_{format}"), out);
            }
        }
    }
    // The reverse: fixed and closed, nothing worse, and the firewall exact: exit 0.
    let (code, out, err) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "--audit",
            "good.json",
            "--compare",
            "after.json",
        ],
    );
    assert_eq!(code, 0, "{err}\n{out}");
    assert!(out.contains("  drift: nothing worse since after.json: 0 newly failing, 0 newly open beyond the plan; 1 newly fixed, 1 closed"), "{out}");
    assert!(out.contains("Newly fixed (1):\n    host firewall of node APP1: from agents to 10.88.1.100 tcp/21002 connection-server.client-port by "), "{out}");
    assert!(out.contains("Closed openings (1):\n    host firewall of node APP1: from 10.88.2.0/24 to 10.88.1.11 tcp/2222 (before: open by line "), "{out}");
    // Nothing changed: exit as the audit says.
    let (code, out, _) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "--audit",
            "good.json",
            "--compare",
            "before.json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing changed"), "{out}");
    // An earlier report of another system is refused.
    let (code, _, err) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "--audit",
            "good.json",
            "--compare",
            "../does-not-exist.json",
        ],
    );
    assert_eq!(code, 2, "{err}");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("before.json")).unwrap()).unwrap();
    v["name"] = "elsewhere".into();
    std::fs::write(d.join("elsewhere.json"), v.to_string()).unwrap();
    let (code, _, err) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "--audit",
            "good.json",
            "--compare",
            "elsewhere.json",
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("a report of system `elsewhere`, not of `audit lab`"),
        "{err}"
    );
}

/// Probe results compared too: a port verified before and filtered now is newly failing.
#[test]
fn drift_of_probe_results() {
    let dir = fleet();
    let d = dir.path();
    let (_, _, err) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "agents.json",
            "--format",
            "json",
            "-o",
            "before.json",
        ],
    );
    assert!(err.is_empty(), "{err}");
    let text = std::fs::read_to_string(d.join("agents.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    for r in v["results"].as_array_mut().unwrap() {
        if r["port"] == 21002 {
            r["status"] = "filtered".into();
        }
        if r["port"] == 8010 {
            r["status"] = "verified".into();
        }
    }
    std::fs::write(d.join("agents.json"), v.to_string()).unwrap();
    let (code, out, _) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "agents.json",
            "--compare",
            "before.json",
        ],
    );
    assert_eq!(code, 1);
    assert!(out.contains("Newly failing (1):\n    probes from zone agents: connection-server.client-port tcp 21002 on 10.88.1.100 (APP1) (before: verified; now: filtered)"), "{out}");
    assert!(out.contains("Newly fixed (1):\n    probes from zone agents: media-routing-server.prompt-area udp 8010 on 10.88.1.101 (APP1) (before: filtered; now: verified)"), "{out}");
}

/// The merged page in headless Chromium: the probe report's page with the audit and drift
/// sections, no console error, no request, the probe failures counted as before.
#[cfg_attr(
    not(scc_chromium),
    ignore = "needs chromium and node (with playwright-core in tests/browser)"
)]
#[test]
fn the_fleet_report_renders_in_headless_chromium() {
    let dir = fleet();
    let html = dir.path().join("fleet.html");
    let mut args = FLEET.to_vec();
    args.extend(["--compare", "APP1.json"]);
    failing_html_report(dir.path(), &args, &html);
    // Probe failures: the two filtered ports of the prompt area, and the zones' PCs untested.
    let Some(found) = chromium_check(&html, "fleet-report.png", 3) else {
        return;
    };
    assert_eq!(found["console_errors"], serde_json::json!([]));
    assert_eq!(found["requests"], serde_json::json!([]));
    assert!(
        found["verdict"]
            .as_str()
            .unwrap()
            .starts_with("FAILED; probes: FAILED"),
        "{found}"
    );
    // The audits alone (what the fleet playbook writes): its own page, with the plan's picture.
    let html = dir.path().join("audits.html");
    failing_html_report(
        dir.path(),
        &["fleet.toml", "--audit", "APP1.json", "--audit", "EDGE.json"],
        &html,
    );
    let found = chromium_check(&html, "fleet-audits.png", 0).expect("checked above");
    assert_eq!(found["console_errors"], serde_json::json!([]));
    assert_eq!(found["requests"], serde_json::json!([]));
    assert_eq!(found["svg"], 1);
    // (How many openings depends on how the audit groups them: not asserted here.)
    assert!(
        found["verdict"].as_str().unwrap().starts_with(
            "FAILED; audits: FAILED: 2 of 2 audited firewalls not exact: 5 flows not admitted, "
        ),
        "{found}"
    );
}

/// The fix line runs as printed: copied into `sh`, it writes the diff that brings APP1 to the
/// plan (exit 0), even for a ruleset whose name needs quoting. (An audit that does not record its
/// ruleset says `RULES`: the test puts the path there, quoted as a reader would.)
#[test]
fn the_fix_line_runs_as_printed() {
    let dir = fleet();
    let d = dir.path();
    std::fs::copy(d.join("APP1.rules"), d.join("it's here.rules")).unwrap();
    audit_to(
        d,
        &[
            "fleet.toml",
            "--node",
            "APP1",
            "--ruleset",
            "it's here.rules",
        ],
        "quoted.json",
        1,
    );
    let (_, out, _) = run(
        d,
        &[
            "report",
            "fleet.toml",
            "--audit",
            "quoted.json",
            "--format",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let fix = v["audit"]["audits"][0]["fix"].as_str().unwrap();
    let line = match fix.strip_suffix(" --diff RULES") {
        Some(head) => format!(r"{head} --diff 'it'\''s here.rules'"),
        None => fix.to_string(),
    };
    assert_eq!(
        line,
        r"scc-ports firewall fleet.toml --target iptables --node APP1 --diff 'it'\''s here.rules'"
    );
    let bin = Path::new(env!("CARGO_BIN_EXE_scc-ports")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .current_dir(d)
        .env("PATH", path)
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{script}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(script.starts_with("#!/bin/sh\n"), "{script}");
    assert!(script.contains("(exactly the plan)"), "{script}");
}
