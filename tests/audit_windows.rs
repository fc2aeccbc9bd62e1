//! Windows Firewall as a newcomer has it (issue 20): built-in Remote Desktop and WinRM rules bound
//! to a program or service, a Group Policy block rule, and eight site rules on a five-address
//! node (APP_A1 of examples/large.toml: its address and four unit addresses). Goldens of `audit`
//! and of `firewall --target windows --diff`, and the diff carried out on the export and audited
//! again: exactly the plan except what the Group Policy rule prevents, which the diff says.

mod common;

use common::cli;
use common::windows::apply_windows_diff;

const DEPLOYMENT: &str = "examples/large.toml";
const EXPORT: &str = "tests/audit/windows-newcomer.json";

fn audit(ruleset: &str, format: &str) -> (i32, String, String) {
    cli(&[
        "audit",
        DEPLOYMENT,
        "--node",
        "APP_A1",
        "--ruleset",
        ruleset,
        "--format",
        format,
    ])
}

fn diff(ruleset: &str) -> (i32, String, String) {
    cli(&[
        "firewall", DEPLOYMENT, "--target", "windows", "--node", "APP_A1", "--diff", ruleset,
    ])
}

fn export() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(EXPORT))
            .unwrap(),
    )
    .unwrap()
}

/// The lines of a script that change the firewall (what the header counts).
fn commands(script: &str) -> usize {
    script
        .lines()
        .filter(|l| {
            [
                "Get-RuleNamedExactly ",
                "Get-NetFirewallRule ",
                "New-NetFirewallRule ",
            ]
            .iter()
            .any(|c| l.starts_with(c))
        })
        .count()
}

#[test]
fn golden_audit_of_the_newcomer_export() {
    let (code, table, err) = audit(EXPORT, "table");
    assert_eq!(code, 1, "{err}");
    insta::assert_snapshot!("windows_newcomer_audit_table", table);
    let (code, json, err) = audit(EXPORT, "json");
    assert_eq!(code, 1, "{err}");
    insta::assert_snapshot!("windows_newcomer_audit_json", json);
    // Bound rules are decided as openings for their program, service or profile, said so; the
    // Group Policy rule is named as such; nothing is left "cannot decide".
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rules: Vec<&str> = report["extra"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    for text in [
        r#"allow rule "Remote Desktop - User Mode (TCP-In)" (program %SystemRoot%\system32\svchost.exe, service TermService)"#,
        r#"allow rule "Windows Remote Management (HTTP-In)" (program System, profile Domain/Private)"#,
        r#"allow rule "Temp test web 8080" (profile Private)"#,
    ] {
        assert!(rules.contains(&text), "{text} in {rules:?}");
    }
    assert!(!json.contains("cannot decide"), "{json}");
    assert_eq!(report["summary"]["undecided"], 0);
    assert!(
        table.contains(r#"(GPO "corp.example.com\Server Baseline")"#),
        "{table}"
    );
    // A program-bound rule never admits a planned flow: the planned ports' listener is the SCC
    // component (the flows' rows name the site rules only).
    for row in report["flows"].as_array().unwrap() {
        let rule = row["rule"].as_str().unwrap();
        assert!(!rule.contains("program"), "{rule}");
    }
}

#[test]
fn golden_diff_of_the_newcomer_export_and_the_result_audited() {
    let (code, script, err) = diff(EXPORT);
    // The Group Policy rule stays: not exactly the plan, and the notes say which GPO to change.
    assert_eq!(code, 1, "{err}\n{script}");
    insta::assert_snapshot!("windows_newcomer_diff", script);
    // Windows PowerShell 5.1 reads a file without a byte order mark in the ANSI code page: the
    // script is ASCII, and no statement leaves a string open (pwsh parses it in
    // tests/firewall_other.rs where it is installed).
    assert!(script.is_ascii());
    for line in script.lines().filter(|l| !l.starts_with('#')) {
        assert_eq!(line.matches('\'').count() % 2, 0, "{line}");
    }
    let header = script.lines().nth(1).unwrap();
    let n = commands(&script);
    assert!(
        header.starts_with(&format!("# {n} commands for ")),
        "{header}: {n} commands written"
    );
    assert!(
        script.contains(r#"in GPO "corp.example.com\Server Baseline","#),
        "{script}"
    );
    assert!(
        !script.contains("{3F2A7C11-5B0D-4E8A-9C61-0A1B2C3D4E5F}"),
        "{script}"
    );
    // Over-broad site rules are narrowed, not disabled and added again.
    assert!(
        script.contains(
            "Get-RuleNamedExactly '{7D1E0C2A-0004-4B7C-8F00-5CC000000004}' | Set-NetFirewallRule -LocalPort '21000', '21009', '21013'"
        ),
        "{script}"
    );
    assert!(!script.contains("New-NetFirewallRule"), "{script}");
    // Carried out on the export: every flow admitted but the part the GPO rule blocks, nothing
    // open beyond the plan.
    let dir = tempfile::tempdir().unwrap();
    let after = apply_windows_diff(&export(), &script);
    let path = dir.path().join("after.json");
    std::fs::write(&path, after.to_string()).unwrap();
    let (code, json, err) = audit(path.to_str().unwrap(), "json");
    assert_eq!(code, 1, "{err}");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(report["extra"].as_array().unwrap().len(), 0, "{json}");
    let not_admitted: Vec<&serde_json::Value> = report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] != "admitted")
        .collect();
    assert_eq!(not_admitted.len(), 1, "{json}");
    let qms = not_admitted[0];
    assert_eq!(qms["component"], "quality-monitoring-server");
    assert_eq!(qms["blocked_sources"], serde_json::json!(["10.11.0.0/24"]));
    assert!(
        qms["rule"].as_str().unwrap().contains("GPO"),
        "{}",
        qms["rule"]
    );
    // Once the GPO's owner takes the rule out, a second diff completes it: the flow it blocked
    // is added, and the result is exactly the plan.
    let mut local = after.clone();
    local
        .as_array_mut()
        .unwrap()
        .retain(|r| r["PolicyStoreSourceType"] != "GroupPolicy");
    std::fs::write(&path, local.to_string()).unwrap();
    let (code, second, err) = diff(path.to_str().unwrap());
    assert_eq!(code, 0, "{err}\n{second}");
    assert!(
        second.starts_with("# scc-ports firewall --diff"),
        "{second}"
    );
    assert_eq!(commands(&second), 2, "{second}");
    std::fs::write(&path, apply_windows_diff(&local, &second).to_string()).unwrap();
    let (code, out, err) = audit(path.to_str().unwrap(), "table");
    assert_eq!(code, 0, "{err}\n{out}");
    // Run twice, the script changes nothing more (it is re-runnable).
    let twice = apply_windows_diff(&after, &script);
    assert_eq!(twice, after);
}

/// A planned flow that only a program-bound rule would admit is blocked (the component, not
/// the program, listens there), and the diff adds it; the program's own port stays its opening.
#[test]
fn a_program_bound_rule_admits_no_planned_flow() {
    let mut rules = export();
    for r in rules.as_array_mut().unwrap() {
        if r["Name"] == "{7D1E0C2A-0006-4B7C-8F00-5CC000000006}" {
            // QMS's rule bound to a program, on its port and Remote Desktop's.
            r["Program"] = "C:\\Program Files\\Other\\other.exe".into();
            r["LocalPort"] = serde_json::json!(["21016", "3390"]);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bound.json");
    std::fs::write(&path, rules.to_string()).unwrap();
    let (_, json, err) = audit(path.to_str().unwrap(), "json");
    let report: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|_| panic!("{err}"));
    let qms = report["flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["component"] == "quality-monitoring-server")
        .unwrap();
    assert_eq!(qms["status"], "blocked", "{qms}");
    let opened = report["extra"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["ports"] == "3390" && e["rule"].as_str().unwrap().contains("other.exe"));
    assert!(opened, "{json}");
    let (_, script, _) = diff(path.to_str().unwrap());
    assert!(
        script.contains(
            "'SCC quality-monitoring-server.port tcp 21016 from servers (firewall --diff)'"
        ),
        "{script}"
    );
}
