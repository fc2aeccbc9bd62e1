//! `report`, `diagram` and `inventory` through the binary: goldens of every format over fixed
//! probe results (tests/report/: one filtered, one closed, one open, a zone with no result), the
//! exit code, the errors for bad result files, and hostile names escaped in every output.

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
    let mut args = vec!["report".to_string(), "system.toml".to_string()];
    for (zone, results) in &zones {
        let name = format!("{zone}.json");
        std::fs::write(
            dir.path().join(&name),
            serde_json::json!({ "zone": zone, "results": results }).to_string(),
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

/// The HTML report in headless Chromium (tests/browser/check.mjs, playwright-core driving
/// /usr/bin/chromium): no console errors, no network requests, the failures and the SVG present.
/// The screenshot is a test artifact: target/test-artifacts/report.png.
#[cfg_attr(
    not(scc_chromium),
    ignore = "needs chromium and node (with playwright-core in tests/browser)"
)]
#[test]
fn html_report_renders_in_headless_chromium() {
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
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let mut args = vec!["report"];
    args.extend(RESULTS);
    args.extend(["--format", "html", "-o", html.to_str().unwrap()]);
    let (code, _, err) = run(&fixtures(), &args);
    assert_eq!(code, 1, "{err}");
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report.png");
    let _ = std::fs::remove_file(&shot);
    // Eight failure groups in the fixtures: closed, open, two filtered, and the agents' PCs
    // (RTP and RTCP) untested from dc and from agents; the carrier zone, untested as a whole, is
    // one line of its own.
    let out = Command::new("node")
        .arg(browser.join("check.mjs"))
        .arg(&html)
        .arg(&shot)
        .arg("8")
        .env("CHROMIUM", &chromium)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
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
