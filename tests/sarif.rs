//! `check --format sarif` and `audit --format sarif`: every log valid against the OASIS SARIF
//! 2.1.0 schema (vendored in tests/sarif/, validated by Python's `jsonschema`), goldens, results
//! at the lines the findings name, and fingerprints that survive lines moving.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const LAB: &str = "tests/audit/lab.toml";

/// The audit's rulesets of the lab, one per reader with a file of its own.
const RULESETS: &[&str] = &[
    "admin.rules",
    "admin.json",
    "admin.nft-text",
    "windows.json",
    "firewalld.txt",
    "firewalld-xml",
    "aws.json",
];

/// The log `scc-ports ARGS` prints, with the exit code.
fn sarif(args: &[&str]) -> (i32, Value) {
    let (code, out, err) = common::cli(args);
    let log: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{err}"));
    (code, log)
}

fn audit(ruleset: &str) -> (i32, Value) {
    let path = format!("tests/audit/{ruleset}");
    sarif(&common::audit_app1_args(LAB, &path, "sarif"))
}

fn results(log: &Value) -> &Vec<Value> {
    log["runs"][0]["results"].as_array().expect("results")
}

/// Every log the two commands write for the examples, the lab's rulesets and a broken file.
fn every_log() -> Vec<(String, Value)> {
    let mut logs = Vec::new();
    let examples = common::example_files();
    for p in &examples {
        let rel = p.strip_prefix(root()).unwrap().display().to_string();
        let (code, log) = sarif(&["check", &rel, "--format", "sarif"]);
        assert!(code == 0 || code == 1, "{rel}: exit {code}");
        logs.push((format!("check {rel}"), log));
    }
    let (_, log) = sarif(&["check", "--format", "sarif"]);
    logs.push(("check (the embedded demo)".into(), log));
    for r in RULESETS {
        let (code, log) = audit(r);
        assert_eq!(code, 1, "{r}: the lab's rulesets are not exact");
        logs.push((format!("audit {r}"), log));
    }
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[nodes.A]\nzone = \"x\"\naddress = 5\n").unwrap();
    let (code, log) = sarif(&["check", bad.to_str().unwrap(), "--format", "sarif"]);
    assert_eq!(code, 2, "a file that cannot be used exits 2");
    logs.push(("check of a broken file".into(), log));
    logs
}

/// Validates each log against the vendored schema; one line per log: "valid" or the first error.
#[cfg_attr(
    not(scc_py_jsonschema),
    ignore = "needs the Python module jsonschema (python3-jsonschema)"
)]
#[test]
fn every_log_is_valid_sarif_2_1_0_and_a_broken_one_is_not() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/sarif/sarif-schema-2.1.0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        schema["id"],
        scc_ports::render::sarif::SCHEMA,
        "the logs name the vendored schema"
    );
    let mut logs = every_log();
    let valid = logs.len();
    // The validator is not a yes-machine: a level SARIF does not know, and a result without its
    // message, are refused.
    let mut bad_level = logs[0].1.clone();
    bad_level["runs"][0]["results"][0]["level"] = "fatal".into();
    logs.push(("level fatal".into(), bad_level));
    let mut no_message = logs[0].1.clone();
    no_message["runs"][0]["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("message");
    logs.push(("result without message".into(), no_message));
    let schema = root().join("tests/sarif/sarif-schema-2.1.0.json");
    let Some(verdicts) =
        common::jsonschema_verdicts("SARIF schema validation", &schema, "Draft4Validator", &logs)
    else {
        return; // skipped, with the reason printed
    };
    common::assert_first_valid(&logs, &verdicts, valid);
}

/// The logs' shape that code scanning needs: every result's rule listed at its index, a level,
/// one location with a line, a fingerprint.
#[test]
fn every_result_names_a_listed_rule_and_a_line() {
    for (what, log) in every_log() {
        let run = &log["runs"][0];
        assert_eq!(log["version"], "2.1.0");
        let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
        for r in results(&log) {
            let id = r["ruleId"].as_str().unwrap();
            let i = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[i]["id"], id, "{what}");
            assert!(rules[i]["shortDescription"]["text"].is_string());
            assert!(rules[i]["help"]["text"].is_string());
            assert!(["error", "warning", "note"].contains(&r["level"].as_str().unwrap()));
            let locs = r["locations"].as_array().unwrap();
            assert_eq!(locs.len(), 1, "{what}");
            assert!(
                locs[0]["physicalLocation"]["region"]["startLine"]
                    .as_u64()
                    .unwrap()
                    >= 1
            );
            assert!(r["partialFingerprints"].as_object().unwrap().len() == 1);
        }
    }
}

/// Goldens: the check log of the demo and the audit logs of the iptables and nft exports (the
/// version is left out, so a release does not change them).
#[test]
fn goldens() {
    let text = |mut log: Value| {
        log["runs"][0]["tool"]["driver"]["version"] = "VERSION".into();
        log["runs"][0]["tool"]["driver"]["semanticVersion"] = "VERSION".into();
        serde_json::to_string_pretty(&log).unwrap()
    };
    let (_, check) = sarif(&["check", "examples/all-in-one.toml", "--format", "sarif"]);
    insta::assert_snapshot!("check_all_in_one", text(check));
    for r in ["admin.rules", "admin.json"] {
        let (_, log) = audit(r);
        insta::assert_snapshot!(format!("audit_{r}"), text(log));
    }
}

/// An audit result stands at the deciding rule's line: iptables-save's `line N` is the rule's
/// line in the file, an nft handle is found in the JSON export.
#[test]
fn audit_results_stand_at_the_deciding_rules_line() {
    for r in [
        "admin.rules",
        "admin.json",
        "admin.nft-text",
        "firewalld.txt",
    ] {
        let text = std::fs::read_to_string(root().join("tests/audit").join(r)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (_, log) = audit(r);
        let mut located = 0;
        for res in results(&log) {
            let loc = &res["locations"][0];
            let line = loc["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap() as usize;
            assert_eq!(
                loc["physicalLocation"]["artifactLocation"]["uri"],
                format!("tests/audit/{r}")
            );
            let name = loc["logicalLocations"][0]["fullyQualifiedName"]
                .as_str()
                .unwrap();
            let message = res["message"]["text"].as_str().unwrap();
            if let Some(n) = name
                .rsplit("handle ")
                .next()
                .filter(|_| name.contains("handle "))
            {
                // nft: the line holds the handle (JSON `"handle": N`, text `# handle N`).
                let l = lines[line - 1];
                assert!(
                    l.contains(&format!("\"handle\": {n}")) || l.contains(&format!("# handle {n}")),
                    "{r}: {name} at line {line}: {l}"
                );
                located += 1;
            } else if let Some(rest) = message.split(" by line ").nth(1) {
                // iptables-save: `line N: RULE` is line N of the file.
                let (n, rule) = rest.split_once(": ").unwrap();
                assert_eq!(n.parse::<usize>().unwrap(), line, "{r}");
                assert_eq!(lines[line - 1], rule.split("; ").next().unwrap(), "{r}");
                located += 1;
            } else if message.contains("(line ") {
                assert!(
                    message.contains(&format!("(line {line})")),
                    "{r}: {message}"
                );
                located += 1;
            }
        }
        assert!(located > 0, "{r}: no result at a rule's line");
    }
}

/// The same input gives the same fingerprints; a finding keeps its fingerprint when lines are
/// added above it (its line moves), so code scanning keeps one alert.
#[test]
fn fingerprints_are_stable_across_runs_and_moved_lines() {
    let fp = |log: &Value| -> Vec<(String, String, u64)> {
        results(log)
            .iter()
            .map(|r| {
                (
                    r["ruleId"].as_str().unwrap().to_string(),
                    r["partialFingerprints"]["sccPortsFinding/v1"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    r["locations"][0]["physicalLocation"]["region"]["startLine"]
                        .as_u64()
                        .unwrap(),
                )
            })
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("examples/all-in-one.toml")).unwrap();
    let a = dir.path().join("a.toml");
    std::fs::write(&a, &text).unwrap();
    let b = dir.path().join("b.toml");
    std::fs::write(&b, format!("# one\n# two\n# three\n{text}")).unwrap();
    let run = |p: &Path| sarif(&["check", p.to_str().unwrap(), "--format", "sarif"]).1;
    let (first, again, moved) = (fp(&run(&a)), fp(&run(&a)), fp(&run(&b)));
    assert!(!first.is_empty());
    assert_eq!(first, again, "the same file, the same log");
    let distinct: std::collections::HashSet<&String> = first.iter().map(|f| &f.1).collect();
    assert_eq!(distinct.len(), first.len(), "one fingerprint per finding");
    for (x, y) in first.iter().zip(&moved) {
        assert_eq!((&x.0, &x.1), (&y.0, &y.1), "the fingerprint stays");
        assert_eq!(x.2 + 3, y.2, "the line moves");
    }
    // Audit: the same export twice, the same fingerprints; each distinct.
    let (_, one) = audit("admin.rules");
    let (_, two) = audit("admin.rules");
    assert_eq!(fp(&one), fp(&two));
    let distinct: std::collections::HashSet<String> = fp(&one).into_iter().map(|f| f.1).collect();
    assert_eq!(distinct.len(), results(&one).len());
}

/// A file that cannot be used: its errors as results at their line, E-codes as rules, exit 2,
/// and the errors still on stderr.
#[test]
fn a_broken_deployment_gives_its_errors_as_results() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[nodes.A]\nzone = \"x\"\naddress = 5\n").unwrap();
    let (code, out, err) = common::cli(&["check", bad.to_str().unwrap(), "--format", "sarif"]);
    assert_eq!(code, 2);
    assert!(err.contains("error[E003]"), "{err}");
    let log: Value = serde_json::from_str(&out).unwrap();
    let r = &results(&log)[0];
    assert_eq!(r["ruleId"], "E003");
    assert_eq!(r["level"], "error");
    assert_eq!(
        r["locations"][0]["physicalLocation"]["region"]["startLine"],
        3
    );
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(
        rules[r["ruleIndex"].as_u64().unwrap() as usize]["id"],
        "E003"
    );
}
