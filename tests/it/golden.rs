//! Golden outputs (insta) of every renderer over every example deployment.

use crate::support::{Test, example};

const EXAMPLES: [&str; 3] = ["all-in-one", "redundant", "large"];

#[test]
fn catalog_every_format() {
    for format in ["table", "json", "csv", "markdown"] {
        let out = Test::new().args(["catalog", "--format", format]).run();
        insta::assert_snapshot!(format!("catalog_{format}"), out.stdout);
    }
}

#[test]
fn plan_every_format_every_example() {
    for e in EXAMPLES {
        for format in ["table", "json", "csv", "markdown"] {
            let out = Test::new()
                .args(["plan", &example(e), "--format", format])
                .run();
            insta::assert_snapshot!(format!("plan_{e}_{format}"), out.stdout);
        }
    }
}

#[test]
fn check_every_format_every_example() {
    for e in EXAMPLES {
        for format in ["table", "json"] {
            let status = if e == "all-in-one" { 1 } else { 0 };
            let out = Test::new()
                .args(["check", &example(e), "--format", format])
                .status(status)
                .run();
            // File names differ by checkout; the snapshot keeps them relative.
            let text = out
                .stdout
                .replace(&format!("{}/", env!("CARGO_MANIFEST_DIR")), "");
            insta::assert_snapshot!(format!("check_{e}_{format}"), text);
        }
    }
}

#[test]
fn flows_every_format_every_example() {
    for e in EXAMPLES {
        for format in ["table", "json", "csv", "markdown"] {
            let out = Test::new()
                .args(["flows", &example(e), "--format", format])
                .run();
            insta::assert_snapshot!(format!("flows_{e}_{format}"), out.stdout);
        }
    }
}

#[test]
fn csv_firewall_every_mode_every_example() {
    for e in EXAMPLES {
        let first = if e == "all-in-one" {
            "SCC1"
        } else if e == "redundant" {
            "APP1"
        } else {
            "APP_A1"
        };
        for (mode, args) in [
            ("node", vec!["--node", first]),
            ("workstations", vec!["--workstations"]),
            ("network", vec!["--network"]),
        ] {
            let out = Test::new()
                .args(["firewall", &example(e), "--target", "csv"])
                .args(args)
                .run();
            insta::assert_snapshot!(format!("firewall_csv_{e}_{mode}"), out.stdout);
        }
    }
}

/// The site services example through every listing command: `service.NAME` bindings with origin
/// `service`, their flows (RDP to every node, SQL Server to the mock database node, IMAP from a
/// zone named in `from`, WinRM to a unit's virtual IP), and the checks.
#[test]
fn services_example_plan_check_flows() {
    let e = "services";
    for format in ["table", "json", "csv"] {
        for command in ["plan", "flows"] {
            let out = Test::new()
                .args([command, &example(e), "--format", format])
                .run();
            assert!(
                out.stdout.contains("rdp"),
                "{command} {format}: {}",
                out.stdout
            );
            insta::assert_snapshot!(format!("{command}_{e}_{format}"), out.stdout);
        }
    }
    for format in ["table", "json"] {
        let out = Test::new()
            .args(["check", &example(e), "--format", format])
            .run();
        let text = out
            .stdout
            .replace(&format!("{}/", env!("CARGO_MANIFEST_DIR")), "");
        insta::assert_snapshot!(format!("check_{e}_{format}"), text);
    }
    let out = Test::new()
        .args(["firewall", &example(e), "--target", "csv", "--node", "DB1"])
        .run();
    insta::assert_snapshot!("firewall_csv_services_node_DB1", out.stdout);
}
