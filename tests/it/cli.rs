//! The command line, read as a spec: what each invocation prints and how it exits.

use crate::support::{Test, example};

#[test]
fn version_and_help() {
    Test::new()
        .args(["--version"])
        .stdout_has("scc-ports ")
        .run();
    Test::new()
        .args(["--help"])
        .stdout_has("Examples:")
        .stdout_has("Exit codes")
        .run();
    for cmd in [
        "catalog",
        "init",
        "plan",
        "check",
        "flows",
        "firewall",
        "completions",
    ] {
        Test::new()
            .args([cmd, "--help"])
            .stdout_has("Examples:")
            .run();
    }
}

#[test]
fn no_command_is_bad_invocation() {
    Test::new().status(2).stderr_has("Usage:").run();
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        Test::new()
            .args(["completions", shell])
            .stdout_has("scc-ports")
            .run();
    }
    Test::new()
        .args(["completions", "tcsh"])
        .status(2)
        .stderr_has("possible values")
        .run();
}

#[test]
fn catalog_component_filter() {
    let out = Test::new()
        .args(["catalog", "--component", "sip-bridge", "--format", "csv"])
        .run();
    assert_eq!(
        out.stdout.lines().count(),
        6,
        "a header and five SIP Bridge rows:\n{}",
        out.stdout
    );
}

#[test]
fn catalog_unknown_component_suggests_the_nearest() {
    Test::new()
        .args(["catalog", "--component", "sip-brige"])
        .status(2)
        .stderr_has("error[E012]: unknown component `sip-brige`")
        .stderr_has("did you mean `sip-bridge`?")
        .run();
}

#[test]
fn catalog_table_fits_100_columns() {
    let out = Test::new().args(["catalog"]).run();
    for line in out.stdout.lines() {
        assert!(
            line.chars().count() <= 100,
            "line wider than 100 columns: {line:?}"
        );
    }
}

#[test]
fn catalog_json_reproduces_the_design_shape() {
    let out = Test::new()
        .args(["catalog", "--format", "json", "--component", "cem-server"])
        .run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let cem = &v[0];
    assert_eq!(cem["id"], "cem-server");
    assert_eq!(cem["name"], "CEM Server");
    assert_eq!(cem["placement"], "package");
    let p = &cem["ports"];
    assert_eq!(p[0]["default"], serde_json::json!({"port": 21019}));
    assert_eq!(p[1]["default"], serde_json::Value::Null);
    assert_eq!(p[1]["from"], serde_json::json!(["ivr"]));
    assert_eq!(p[2]["since"], "1611");
    assert_eq!(p[2]["configurable"], false);
    assert_eq!(
        p[2]["usage"],
        "For restful communication from Universal Queue to CEM Server."
    );
    let out = Test::new().args(["catalog", "--format", "json"]).run();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let find = |c: &str, port: &str| {
        v.as_array().unwrap().iter().find(|x| x["id"] == c).unwrap()["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == port)
            .unwrap()
            .clone()
    };
    assert_eq!(
        find("communication-desktop", "rtp")["default"],
        serde_json::json!({"range": [5004, 5030], "parity": "even"})
    );
    assert_eq!(
        find("media-routing-server", "prompt-area")["default"],
        serde_json::json!({"area": {"first_port": 8000, "multiplier": 2, "streams": 200}})
    );
}

#[test]
fn init_prints_each_template_as_in_examples() {
    for t in ["all-in-one", "redundant", "large"] {
        let out = Test::new().args(["init", "--template", t]).run();
        assert_eq!(
            out.stdout,
            std::fs::read_to_string(example(t)).unwrap(),
            "init --template {t}"
        );
    }
    let plain = Test::new().args(["init"]).run();
    assert_eq!(
        plain.stdout,
        std::fs::read_to_string(example("all-in-one")).unwrap()
    );
}

#[test]
fn plan_on_the_embedded_default() {
    Test::new()
        .args(["plan"])
        .stdout_has("node SCC1")
        .stdout_has("media-routing-server")
        .stdout_has("8000-8400")
        .stdout_has("9000-10200")
        .stdout_has("zone clients (workstations)")
        .run();
}

#[test]
fn plan_node_filter_and_unknown_node() {
    let out = Test::new()
        .args([
            "plan",
            &example("redundant"),
            "--node",
            "WEB1",
            "--format",
            "csv",
        ])
        .run();
    assert!(
        out.stdout.lines().skip(1).all(|l| l.starts_with("WEB1,")),
        "{}",
        out.stdout
    );
    Test::new()
        .args(["plan", &example("redundant"), "--node", "APP3"])
        .status(2)
        .stderr_has("unknown node `APP3`")
        .stderr_has("did you mean `APP1`?")
        .run();
}

#[test]
fn plan_shows_where_values_came_from() {
    let out = Test::new()
        .args([
            "plan",
            &example("large"),
            "--node",
            "VOICE_A",
            "--format",
            "csv",
        ])
        .run();
    assert!(
        out.stdout.contains(
            "prompt-area,udp,8000-8800,unit variable media-routing-server.max-simultaneous-prompts"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("recording-area,udp,10000-13600,\"unit variable media-routing-server.first-port-of-recording-area, media-routing-server.max-simultaneous-recordings\""), "{}", out.stdout);
}

#[test]
fn check_default_reports_the_documented_443_clash() {
    Test::new()
        .args(["check"])
        .status(1)
        .stdout_has("error[C101] port-clash: ecf-web-server.https-port and web-server.https-port both listen on 10.1.0.100 tcp port 443")
        .stdout_has("<all-in-one>:53:3")
        .stdout_has("hint: move one to another port")
        .stdout_has("1 error")
        .run();
}

#[test]
fn check_clean_examples_exit_zero() {
    for e in ["redundant", "large"] {
        let out = Test::new()
            .args(["check", &example(e), "--format", "json"])
            .run();
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["summary"]["error"], 0, "{e}: {}", out.stdout);
    }
}

#[test]
fn flows_filters() {
    let out = Test::new()
        .args([
            "flows",
            &example("redundant"),
            "--from",
            "carrier",
            "--format",
            "csv",
        ])
        .run();
    assert!(
        out.stdout
            .lines()
            .skip(1)
            .all(|l| l.contains(",trunk,carrier,")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("sip-bridge,sip-tcp-port+sip-tls-port"),
        "SIP 5060/5061 over TCP merge:\n{}",
        out.stdout
    );
    Test::new()
        .args(["flows", &example("redundant"), "--from", "agent"])
        .status(2)
        .stderr_has("unknown zone `agent`")
        .stderr_has("did you mean `agents`?")
        .run();
}

#[test]
fn firewall_needs_a_scope_and_a_known_target() {
    Test::new()
        .args(["firewall", "--target", "csv"])
        .status(2)
        .stderr_has("--node <NAME>")
        .run();
    Test::new()
        .args(["firewall", "--target", "pf", "--network"])
        .status(2)
        .stderr_has("possible values")
        .run();
    Test::new()
        .args([
            "firewall",
            &example("redundant"),
            "--target",
            "csv",
            "--node",
            "APP9",
        ])
        .status(2)
        .stderr_has("unknown node `APP9`")
        .stderr_has("valid: APP1, APP2, WEB1, WEB2, DB1")
        .run();
}

#[test]
fn firewall_writes_to_a_file() {
    let out = Test::new()
        .args([
            "firewall",
            "--target",
            "csv",
            "--network",
            "-o",
            "rules.csv",
        ])
        .run();
    assert_eq!(out.stdout, "");
    let text = std::fs::read_to_string(out.dir.join("rules.csv")).unwrap();
    assert!(text.starts_with("scope,firewalls,source_zone,destination_zone"));
}

#[test]
fn broken_pipe_exits_quietly() {
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args(["catalog", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert!(out.status.success() || out.status.code() == Some(0));
}

#[test]
fn colours_only_when_asked_or_on_a_terminal() {
    let plain = Test::new().args(["check"]).status(1).run();
    assert!(!plain.stdout.contains('\x1b'), "no escapes when piped");
    let coloured = Test::new()
        .args(["--color", "always", "check"])
        .status(1)
        .run();
    assert!(
        coloured.stdout.contains("\x1b["),
        "escapes with --color always"
    );
}
