//! The catalog against the source page, and every validation rule against a broken catalog.

use scc_ports::catalog::{Catalog, PortDefault};
use scc_ports::diag::Source;

use crate::support::Test;

/// The 37 rows of "Default Ports of Sinch Contact Center Components", typed in by hand from the
/// page: (component, transport, default as the page gives it, configurable).
const PAGE: &[(&str, &str, &str, bool)] = &[
    ("agent-server", "tcp", "21018", true),
    ("alarm-server", "tcp", "21013", true),
    ("call-dispatcher", "tcp", "21000", true),
    ("cem-server", "tcp", "21019", true),
    ("cem-server", "tcp", "none", true),
    ("cem-server", "tcp", "8088", false),
    ("chat-server", "tcp", "21004", true),
    ("chat-portal-server", "tcp", "21020", true),
    ("communication-desktop", "udp", "5004-5030 even", false),
    ("communication-desktop", "udp", "5005-5031 odd", false),
    ("connection-server", "tcp", "21002", true),
    ("connection-server", "tcp", "21017", true),
    ("data-collector", "tcp", "21009", true),
    ("directory-server", "tcp", "21021", true),
    ("ecf-web-server", "tcp", "none", true),
    ("ecf-web-server", "tcp", "443", true),
    ("ecf-web-server", "tcp", "21024", true),
    ("external-terminal-controller", "tcp", "21015", true),
    ("file-replication-server", "tcp", "21008", true),
    ("h323-bridge", "tcp", "21003", true),
    ("h323-bridge", "tcp", "1720", false),
    ("hac", "tcp", "21012", true),
    ("hac", "tcp", "21014", true),
    ("media-routing-server", "tcp", "21010", true),
    ("media-routing-server", "udp", "8000 + 2 x 200", true),
    ("media-routing-server", "udp", "9000 + 6 x 200", true),
    ("online-interaction-interface", "tcp", "21097", true),
    ("presence-synchronization-interface", "tcp", "21022", true),
    ("quality-monitoring-server", "tcp", "21016", true),
    ("sip-bridge", "tcp", "21006", true),
    ("sip-bridge", "tcp", "21007", true),
    ("sip-bridge", "udp", "5060", true),
    ("sip-bridge", "tcp", "5060", true),
    ("sip-bridge", "tcp", "5061", true),
    ("terminal-server", "tcp", "21023", true),
    ("web-server", "tcp", "80", true),
    ("web-server", "tcp", "443", true),
];

fn page_default(d: Option<&PortDefault>) -> String {
    match d {
        None => "none".into(),
        Some(PortDefault::Port(p)) => p.to_string(),
        Some(PortDefault::Range(r)) => r.to_string(),
        Some(PortDefault::Area(a)) => {
            format!("{} + {} x {}", a.first_port, a.multiplier, a.streams)
        }
    }
}

#[test]
fn catalog_holds_every_row_of_the_source_page_and_no_other() {
    let catalog = Catalog::embedded();
    let rows: Vec<(String, String, String, bool)> = catalog
        .components
        .iter()
        .flat_map(|c| {
            c.ports.iter().map(move |p| {
                (
                    c.id.clone(),
                    p.transport.as_str().to_string(),
                    page_default(p.default.as_ref()),
                    p.configurable,
                )
            })
        })
        .collect();
    let page: Vec<(String, String, String, bool)> = PAGE
        .iter()
        .map(|(c, t, d, k)| (c.to_string(), t.to_string(), d.to_string(), *k))
        .collect();
    assert_eq!(
        rows, page,
        "the catalog must be the page's 37 rows, in the page's order"
    );
    assert_eq!(catalog.components.len(), 22);
}

#[test]
fn catalog_lists_are_well_formed() {
    let catalog = Catalog::embedded();
    let mut ids: Vec<&str> = catalog.component_ids().collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "component ids are unique");
    for c in &catalog.components {
        let mut ports: Vec<&str> = c.ports.iter().map(|p| p.id.as_str()).collect();
        ports.sort();
        ports.dedup();
        assert_eq!(
            ports.len(),
            c.ports.len(),
            "port ids of {} are unique",
            c.id
        );
        // No two rows of one component describe the same transport and port.
        let mut rows: Vec<_> = c
            .ports
            .iter()
            .filter_map(|p| p.default.as_ref().map(|d| (p.transport, d.range())))
            .collect();
        let before = rows.len();
        rows.sort();
        rows.dedup();
        assert_eq!(rows.len(), before, "{} has a duplicate port row", c.id);
    }
    let vars: Vec<String> = catalog.variables().map(|(n, _)| n).collect();
    let mut unique = vars.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), vars.len(), "variables are unique");
    for v in [
        "media-routing-server.first-port-of-prompt-area",
        "media-routing-server.max-simultaneous-prompts",
        "media-routing-server.first-port-of-recording-area",
        "media-routing-server.max-simultaneous-recordings",
        "hac.server-port",
        "connection-server.client-port",
    ] {
        assert!(vars.iter().any(|x| x == v), "variable {v} exists");
    }
}

#[test]
fn page_quirks_are_noted_where_they_apply() {
    let c = Catalog::embedded();
    let note = |comp: &str, port: &str| {
        c.component(comp)
            .unwrap()
            .port(port)
            .unwrap()
            .note
            .clone()
            .unwrap_or_default()
    };
    assert!(note("hac", "server-port").contains("read as TCP"));
    assert!(note("sip-bridge", "sip-tls-port").contains("TLS runs over TCP"));
    assert!(note("ecf-web-server", "http-port").contains("no HTTP port unless"));
    assert!(note("cem-server", "external-ivr-port").contains("no default"));
    assert!(note("media-routing-server", "prompt-area").contains("end included"));
    assert!(note("communication-desktop", "rtp").contains("14 ports"));
}

/// A minimal valid catalog, to break one rule at a time.
const GOOD: &str = r#"
[[components]]
id = "agent-server"
name = "Agent Server"
placement = "package"

[[components.ports]]
id = "port"
transport = "tcp"
protocol = "TCP"
default = { port = 21018 }
configurable = true
usage = "Internal"
from = ["servers"]
"#;

fn broken(find: &str, replace: &str) -> String {
    assert!(GOOD.contains(find), "{find} in GOOD");
    GOOD.replacen(find, replace, 1)
}

fn assert_rejected(text: &str, want: &[&str]) {
    let err = Catalog::parse(&Source::new("bad.toml", text)).expect_err("rejected");
    let msg = err.to_string();
    for w in want {
        assert!(msg.contains(w), "message lacks {w:?}:\n{msg}");
    }
    // Through the CLI: exit 2 and the same located message.
    Test::new()
        .file("bad.toml", text)
        .args(["--catalog", "bad.toml", "catalog"])
        .status(2)
        .stderr_has(want[0])
        .run();
}

#[test]
fn good_catalog_loads() {
    Catalog::parse(&Source::new("good.toml", GOOD)).expect("valid");
}

#[test]
fn broken_catalog_syntax() {
    assert_rejected(
        &broken("id = \"port\"", "id = \"port"),
        &["bad.toml:8:11", "error[E001]", "invalid basic string"],
    );
}

#[test]
fn broken_catalog_duplicate_component() {
    let text = format!("{GOOD}\n{}", GOOD.trim_start());
    assert_rejected(
        &text,
        &["bad.toml:17:6", "component id `agent-server` appears twice"],
    );
}

#[test]
fn broken_catalog_duplicate_port() {
    let port = &GOOD[GOOD.find("[[components.ports]]").unwrap()..];
    let text = format!("{GOOD}\n{port}");
    assert_rejected(
        &text,
        &[
            "bad.toml:",
            "port id `port` appears twice in `agent-server`",
        ],
    );
}

#[test]
fn broken_catalog_component_not_kebab() {
    assert_rejected(
        &broken("\"agent-server\"", "\"Agent_Server\""),
        &[
            "bad.toml:3:6",
            "component id `Agent_Server` is not kebab-case",
        ],
    );
}

#[test]
fn broken_catalog_port_not_kebab() {
    assert_rejected(
        &broken("id = \"port\"", "id = \"client port\""),
        &["bad.toml:8:6", "port id `client port` is not kebab-case"],
    );
}

#[test]
fn broken_catalog_port_out_of_range() {
    assert_rejected(
        &broken("{ port = 21018 }", "{ port = 70000 }"),
        &["bad.toml:11:20", "port 70000 is outside 1-65535"],
    );
    assert_rejected(
        &broken("{ port = 21018 }", "{ port = 0 }"),
        &["bad.toml:11:20", "port 0 is outside 1-65535"],
    );
}

#[test]
fn broken_catalog_range_reversed() {
    assert_rejected(
        &broken("{ port = 21018 }", "{ range = [5030, 5004] }"),
        &["bad.toml:11:21", "range 5030-5004 ends before it starts"],
    );
}

#[test]
fn broken_catalog_range_parity() {
    assert_rejected(
        &broken(
            "{ port = 21018 }",
            "{ range = [5004, 5031], parity = \"even\" }",
        ),
        &[
            "bad.toml:11:21",
            "range 5004-5031 is marked even but 5031 is not even",
        ],
    );
}

#[test]
fn broken_catalog_parity_without_range() {
    assert_rejected(
        &broken("{ port = 21018 }", "{ port = 21018, parity = \"odd\" }"),
        &["bad.toml:11:11", "`parity` goes only with `range`"],
    );
}

#[test]
fn broken_catalog_area_overflow() {
    assert_rejected(
        &broken(
            "{ port = 21018 }",
            "{ area = { first_port = 65000, multiplier = 6, streams = 200 } }\nfirst_port_variable = \"first\"\nstreams_variable = \"streams\"",
        ),
        &[
            "bad.toml:11:20",
            "area 65000 + 6 x 200 = 66200 ends past 65535",
        ],
    );
}

#[test]
fn broken_catalog_area_without_variables() {
    assert_rejected(
        &broken(
            "{ port = 21018 }",
            "{ area = { first_port = 8000, multiplier = 2, streams = 200 } }",
        ),
        &[
            "bad.toml:11:20",
            "an area needs `first_port_variable` and `streams_variable`",
        ],
    );
}

#[test]
fn broken_catalog_duplicate_variable() {
    let text = broken(
        "{ port = 21018 }",
        "{ area = { first_port = 8000, multiplier = 2, streams = 200 } }\nfirst_port_variable = \"port\"\nstreams_variable = \"streams\"",
    );
    let text = format!(
        "{text}\n[[components.ports]]\nid = \"port2\"\ntransport = \"tcp\"\nprotocol = \"TCP\"\ndefault = {{ port = 1 }}\nconfigurable = true\nusage = \"x\"\nfrom = [\"servers\"]\n"
    );
    // `agent-server.port` is both the area's first-port variable and... not a port id here; make
    // a true clash: a port whose id equals the area variable.
    let text = text.replace("id = \"port2\"", "id = \"streams\"");
    assert_rejected(
        &text,
        &[
            "bad.toml:",
            "variable `agent-server.streams` is defined twice",
        ],
    );
}

#[test]
fn broken_catalog_unknown_key() {
    assert_rejected(
        &broken(
            "usage = \"Internal\"",
            "usage = \"Internal\"\ncolour = \"red\"",
        ),
        &["bad.toml:14:1", "error[E002]", "unknown key `colour`"],
    );
}

#[test]
fn broken_catalog_wrong_type() {
    assert_rejected(
        &broken("configurable = true", "configurable = \"yes\""),
        &[
            "bad.toml:12:16",
            "error[E003]",
            "this value must be true or false, not a string (\"yes\")",
        ],
    );
}

#[test]
fn broken_catalog_unknown_role() {
    assert_rejected(
        &broken("from = [\"servers\"]", "from = [\"sevrers\"]"),
        &["bad.toml:14:9", "unknown value `sevrers`"],
    );
}

#[test]
fn broken_catalog_transport_mismatch() {
    assert_rejected(
        &broken("transport = \"tcp\"", "transport = \"udp\""),
        &["bad.toml:9:13", "protocol TCP runs over tcp, not udp"],
    );
}

#[test]
fn broken_catalog_empty_from_and_usage() {
    assert_rejected(
        &broken("from = [\"servers\"]", "from = []"),
        &["bad.toml:14:8", "has no roles in `from`"],
    );
    assert_rejected(
        &broken("usage = \"Internal\"", "usage = \"\""),
        &["bad.toml:13:9", "has an empty usage"],
    );
}

#[test]
fn broken_catalog_fixed_port_without_default() {
    assert_rejected(
        &broken(
            "default = { port = 21018 }\nconfigurable = true",
            "configurable = false",
        ),
        &["bad.toml:8:6", "has no default and is not configurable"],
    );
}

#[test]
fn broken_catalog_binary_file() {
    Test::new()
        .file("bad.bin", [0x7f, b'E', b'L', b'F', 0xff, 0xfe, 0, 1])
        .args(["--catalog", "bad.bin", "catalog"])
        .status(2)
        .stderr_has("bad.bin:1:5: error[E001]: the file is not UTF-8 text")
        .run();
}

#[test]
fn missing_catalog_file() {
    Test::new()
        .args(["--catalog", "nope.toml", "catalog"])
        .status(2)
        .stderr_has("cannot read nope.toml")
        .run();
}
