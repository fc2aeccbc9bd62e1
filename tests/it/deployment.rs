//! Broken deployment files: each gets a located message (file:line:column), a code and a hint.

use crate::support::Test;

const GOOD: &str = r#"name = "t"

[zones.dc]
cidrs = ["10.1.0.0/24"]
roles = ["servers"]

[zones.agents]
cidrs = ["10.20.0.0/16"]
roles = ["clients"]

[nodes.APP1]
address = "10.1.0.11"
zone = "dc"

[nodes.APP2]
address = "10.1.0.12"
zone = "dc"

[units.CORE]
address = "10.1.0.100"
packages = ["agent-server", "media-routing-server"]
instances = ["APP1", "APP2"]

[units.CORE.variables]
"media-routing-server.max-simultaneous-prompts" = 100
"#;

/// `check` on GOOD with `find` replaced: the exit code and every expected piece of stderr/stdout.
fn case(find: &str, replace: &str, status: i32, want: &[&str]) {
    assert!(GOOD.contains(find), "{find:?} is in GOOD");
    let text = GOOD.replacen(find, replace, 1);
    let out = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .status(status)
        .run();
    let all = format!("{}{}", out.stdout, out.stderr);
    for w in want {
        assert!(
            all.contains(w),
            "for {replace:?}: output lacks {w:?}:\n{all}"
        );
    }
}

#[test]
fn good_file_is_clean() {
    Test::new()
        .file("t.toml", GOOD)
        .args(["check", "t.toml"])
        .stdout_has("0 errors, 1 warning")
        .run();
}

#[test]
fn syntax_unclosed_string() {
    case(
        "zone = \"dc\"\n\n[nodes.APP2]",
        "zone = \"dc\n\n[nodes.APP2]",
        2,
        &[
            "t.toml:13:11: error[E001]: invalid basic string",
            "13 | zone = \"dc",
        ],
    );
}

#[test]
fn syntax_unclosed_table_header() {
    case(
        "[nodes.APP2]",
        "[nodes.APP2",
        2,
        &["t.toml:15:", "error[E001]"],
    );
}

#[test]
fn syntax_duplicate_key() {
    case(
        "zone = \"dc\"\n\n[nodes.APP2]",
        "zone = \"dc\"\nzone = \"dc\"\n\n[nodes.APP2]",
        2,
        &[
            "t.toml:14:1: error[E001]: `zone` is defined twice",
            "first defined at t.toml:13:1",
        ],
    );
}

#[test]
fn wrong_type_address() {
    case(
        "address = \"10.1.0.11\"",
        "address = 10",
        2,
        &[
            "t.toml:12:11: error[E003]",
            "`nodes.APP1.address` must be a string, not a whole number",
            "put it in quotes: \"10\"",
        ],
    );
}

#[test]
fn wrong_type_packages() {
    case(
        "packages = [\"agent-server\", \"media-routing-server\"]",
        "packages = \"agent-server\"",
        2,
        &[
            "t.toml:21:12: error[E003]",
            "`units.CORE.packages` must be a list of strings, not a string",
        ],
    );
}

#[test]
fn wrong_type_hac() {
    case(
        "zone = \"dc\"\n\n[nodes.APP2]",
        "zone = \"dc\"\nhac = \"no\"\n\n[nodes.APP2]",
        2,
        &["t.toml:14:7: error[E003]: `nodes.APP1.hac` must be true or false, not a string"],
    );
}

#[test]
fn wrong_type_variable_value() {
    case(
        "= 100",
        "= \"100\"",
        2,
        &[
            "t.toml:25:51: error[E003]",
            "must be a whole number, not a string",
            "write the number without quotes",
        ],
    );
}

#[test]
fn unknown_top_level_key() {
    case(
        "name = \"t\"",
        "nmae = \"t\"",
        2,
        &[
            "t.toml:1:1: error[E002]",
            "unknown key `nmae` at the top of the file",
            "did you mean `name`? (keys here: name, zones, nodes, units, services, firewalls)",
        ],
    );
}

#[test]
fn unknown_node_key() {
    case(
        "address = \"10.1.0.12\"",
        "adress = \"10.1.0.12\"",
        2,
        &[
            "t.toml:16:1: error[E002]: unknown key `adress` in [nodes.APP2]",
            "did you mean `address`?",
        ],
    );
}

#[test]
fn unknown_unit_key() {
    case(
        "instances = [",
        "instance = [",
        2,
        &[
            "t.toml:22:1: error[E002]: unknown key `instance` in [units.CORE]",
            "did you mean `instances`?",
        ],
    );
}

#[test]
fn missing_zone_of_node() {
    case(
        "zone = \"dc\"\n\n[nodes.APP2]",
        "\n[nodes.APP2]",
        2,
        &[
            "t.toml:11:1: error[E003]: [nodes.APP1] has no `zone`",
            "add `zone = …` (a string)",
        ],
    );
}

#[test]
fn unknown_zone() {
    case(
        "zone = \"dc\"\n\n[nodes.APP2]",
        "zone = \"dcc\"\n\n[nodes.APP2]",
        2,
        &[
            "t.toml:13:8: error[E010]: unknown zone `dcc`",
            "hint: did you mean `dc`?",
        ],
    );
}

#[test]
fn unknown_node_in_instances() {
    case(
        "[\"APP1\", \"APP2\"]",
        "[\"APP1\", \"APP3\"]",
        2,
        &[
            "t.toml:22:22: error[E011]: unknown node `APP3`",
            "did you mean `APP1`?",
        ],
    );
}

#[test]
fn unknown_package() {
    case(
        "\"agent-server\", \"media",
        "\"agent-servr\", \"media",
        2,
        &[
            "t.toml:21:13: error[E012]: unknown package `agent-servr`",
            "did you mean `agent-server`?",
        ],
    );
}

#[test]
fn hac_is_not_a_package() {
    case(
        "\"agent-server\", \"media",
        "\"hac\", \"media",
        2,
        &[
            "t.toml:21:13: error[E012]: `hac` is not a package of a virtual unit",
            "runs on every HAC node",
        ],
    );
}

#[test]
fn cdt_is_not_a_package() {
    case(
        "\"agent-server\", \"media",
        "\"communication-desktop\", \"media",
        2,
        &[
            "t.toml:21:13",
            "`communication-desktop` is not a package",
            "agent workstations",
        ],
    );
}

#[test]
fn duplicate_package() {
    case(
        "\"agent-server\", \"media-routing-server\"",
        "\"agent-server\", \"agent-server\", \"media-routing-server\"",
        2,
        &["t.toml:21:29: error[E021]: package `agent-server` is listed twice"],
    );
}

#[test]
fn unknown_role() {
    case(
        "roles = [\"clients\"]",
        "roles = [\"client\"]",
        2,
        &[
            "t.toml:9:10: error[E013]: unknown role `client`",
            "did you mean `clients`?",
        ],
    );
}

#[test]
fn unknown_variable() {
    case(
        "\"media-routing-server.max-simultaneous-prompts\"",
        "\"media-routing-server.max-simultaneous-prompt\"",
        2,
        &[
            "t.toml:25:1: error[E014]: unknown variable `media-routing-server.max-simultaneous-prompt`",
            "did you mean `media-routing-server.max-simultaneous-prompts`?",
        ],
    );
}

#[test]
fn bad_cidr_prefix() {
    case(
        "10.20.0.0/16",
        "10.20.0.0/33",
        2,
        &["t.toml:8:10: error[E015]: `10.20.0.0/33` is not a CIDR"],
    );
}

#[test]
fn cidr_with_host_bits() {
    case(
        "10.20.0.0/16",
        "10.20.0.1/16",
        2,
        &[
            "t.toml:8:10: error[E015]: `10.20.0.1/16` has host bits set",
            "the network is `10.20.0.0/16`",
        ],
    );
}

#[test]
fn bare_address_as_cidr() {
    case(
        "10.20.0.0/16",
        "10.20.0.1",
        2,
        &[
            "t.toml:8:10",
            "`10.20.0.1` is not a CIDR",
            "write `10.20.0.1/32`",
        ],
    );
}

#[test]
fn empty_cidrs() {
    case(
        "cidrs = [\"10.20.0.0/16\"]",
        "cidrs = []",
        2,
        &["t.toml:8:9: error[E015]: zone `agents` has no CIDRs"],
    );
}

#[test]
fn bad_address() {
    case(
        "10.1.0.11\"",
        "10.1.0.300\"",
        2,
        &["t.toml:12:11: error[E016]: `10.1.0.300` is not an IP address"],
    );
}

#[test]
fn address_with_prefix() {
    case(
        "10.1.0.11\"",
        "10.1.0.11/24\"",
        2,
        &["t.toml:12:11", "is not an IP address", "drop the /PREFIX"],
    );
}

#[test]
fn unspecified_address() {
    case(
        "10.1.0.100",
        "0.0.0.0",
        2,
        &["t.toml:20:11: error[E016]: `0.0.0.0` cannot be a server's address"],
    );
}

#[test]
fn port_out_of_range() {
    case(
        "\"media-routing-server.max-simultaneous-prompts\" = 100",
        "\"agent-server.port\" = 70000",
        2,
        &[
            "t.toml:25:23: error[E017]: 70000 is out of range for `agent-server.port`",
            "a port is 1-65535",
        ],
    );
}

#[test]
fn port_zero() {
    case(
        "\"media-routing-server.max-simultaneous-prompts\" = 100",
        "\"agent-server.port\" = 0",
        2,
        &["t.toml:25:23: error[E017]: 0 is out of range"],
    );
}

#[test]
fn negative_streams() {
    case(
        "= 100",
        "= -5",
        2,
        &[
            "t.toml:25:51: error[E017]: -5 is out of range",
            "simultaneous streams",
        ],
    );
}

#[test]
fn variable_on_a_fixed_port() {
    case(
        "\"media-routing-server.max-simultaneous-prompts\" = 100",
        "\"media-routing-server.max-simultaneous-prompts\" = 100\n\"agent-server.port\" = 21118",
        0,
        &[],
    );
    let text = GOOD
        .replace("\"agent-server\", \"media", "\"cem-server\", \"media")
        .replace("= 100", "= 100\n\"cem-server.uq-rest-port\" = 9088");
    Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .status(2)
        .stderr_has("t.toml:26:1: error[E018]: `cem-server.uq-rest-port` is not configurable")
        .stderr_has("the source page fixes it at 8088")
        .run();
}

#[test]
fn prompt_area_past_65535() {
    case(
        "= 100",
        "= 30000",
        2,
        &[
            "t.toml:25:1: error[E020]: prompt-area area 8000 + 2 x 30000 ends at 68000, past 65535",
            "lower `media-routing-server.max-simultaneous-prompts` to at most 28767",
        ],
    );
}

#[test]
fn recording_area_past_65535() {
    case(
        "= 100",
        "= 100\n\"media-routing-server.first-port-of-recording-area\" = 65000",
        2,
        &[
            "t.toml:26:1: error[E020]: recording-area area 65000 + 6 x 200 ends at 66200, past 65535",
        ],
    );
}

#[test]
fn package_variable_on_a_node() {
    case(
        "zone = \"dc\"\n\n[nodes.APP2]",
        "zone = \"dc\"\nvariables = { \"agent-server.port\" = 21118 }\n\n[nodes.APP2]",
        2,
        &[
            "t.toml:14:15: error[E019]",
            "set it under [units.NAME.variables]",
        ],
    );
}

#[test]
fn variable_of_a_package_the_unit_lacks() {
    case(
        "= 100",
        "= 100\n\"sip-bridge.sip-udp-port\" = 5070",
        2,
        &[
            "t.toml:26:1: error[E019]: unit `CORE` does not hold `sip-bridge`",
            "add `sip-bridge` to the unit's packages",
        ],
    );
}

#[test]
fn node_name_not_hac_style() {
    case(
        "[nodes.APP1]",
        "[nodes.app1]",
        2,
        &[
            "t.toml:11:8: error[E005]: node name `app1` is not valid",
            "`APP1`",
        ],
    );
}

#[test]
fn empty_file() {
    Test::new()
        .file("t.toml", "")
        .args(["check", "t.toml"])
        .status(2)
        .stderr_has("t.toml:1:1: error[E004]: the deployment has no nodes")
        .stderr_has("scc-ports init")
        .run();
}

#[test]
fn zones_but_no_nodes() {
    Test::new()
        .file(
            "t.toml",
            "name = \"x\"\n[zones.a]\ncidrs = [\"10.0.0.0/8\"]\nroles = [\"servers\"]\n",
        )
        .args(["plan", "t.toml"])
        .status(2)
        .stderr_has("t.toml:1:8: error[E004]")
        .run();
}

#[test]
fn binary_file() {
    Test::new()
        .file("t.toml", b"\x00\x01\x02\xff\xfe garbage")
        .args(["check", "t.toml"])
        .status(2)
        .stderr_has("t.toml:1:4: error[E001]: the file is not UTF-8 text")
        .run();
    Test::new()
        .file("t.toml", b"\x00\x01\x02 nul bytes")
        .args(["check", "t.toml"])
        .status(2)
        .stderr_has("t.toml:1:1: error[E001]: the file contains NUL bytes")
        .run();
}

#[test]
fn duplicate_addresses_are_a_check_error() {
    case(
        "10.1.0.12",
        "10.1.0.11",
        1,
        &[
            "error[C103] duplicate-address: node APP1 and node APP2 share the address 10.1.0.11",
            "t.toml:12:11",
            "t.toml:16:11",
        ],
    );
}

#[test]
fn instance_on_a_mock_node() {
    case(
        "zone = \"dc\"\n\n[units",
        "zone = \"dc\"\nhac = false\n\n[units",
        1,
        &["error[C109] instance-on-mock-node: unit CORE has an instance on APP2"],
    );
}

#[test]
fn several_problems_are_all_reported() {
    let text = GOOD
        .replace(
            "zone = \"dc\"\n\n[nodes.APP2]",
            "zone = \"dcc\"\n\n[nodes.APP2]",
        )
        .replace("\"APP2\"]", "\"APP9\"]");
    Test::new()
        .file("t.toml", &text)
        .args(["plan", "t.toml"])
        .status(2)
        .stderr_has("unknown zone `dcc`")
        .stderr_has("unknown node `APP9`")
        .run();
}

#[test]
fn checks_find_what_they_promise() {
    // A port in the dynamic range, a single instance, an address outside its zone, a role nobody carries.
    let text = GOOD
        .replace("= 100", "= 100\n\"agent-server.port\" = 50000")
        .replace("[\"APP1\", \"APP2\"]", "[\"APP1\"]")
        .replace("10.1.0.12", "10.9.0.12")
        .replace("roles = [\"clients\"]", "roles = [\"admins\"]");
    let out = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .run();
    for want in [
        "warning[C107] dynamic-range: agent-server.port uses 50000",
        "t.toml:26:1  agent-server.port = 50000 (agent-server.port)",
        "warning[C106] single-instance: unit CORE has one instance only (on APP1)",
        "warning[C104] address-outside-zone: node APP2 has address 10.9.0.12, outside its zone dc",
        "warning[C105] role-without-zone: media-routing-server.prompt-area (Media Routing Server (MRS)) is opened for clients, trunk but no zone carries that role",
    ] {
        assert!(out.stdout.contains(want), "lacks {want:?}:\n{}", out.stdout);
    }
}

#[test]
fn clash_between_units_on_one_node_is_a_warning() {
    let text = format!(
        "{GOOD}\n[units.EXTRA]\naddress = \"10.1.0.101\"\npackages = [\"agent-server\"]\ninstances = [\"APP1\", \"APP2\"]\n"
    );
    let out = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .run();
    assert!(out.stdout.contains("warning[C102] node-port-clash: node APP1: agent-server.port on 10.1.0.100 and agent-server.port on 10.1.0.101 share tcp port 21018"), "{}", out.stdout);
}

#[test]
fn overlapping_areas_clash() {
    let text = GOOD.replace(
        "= 100",
        "= 100\n\"media-routing-server.first-port-of-recording-area\" = 8100",
    );
    let out = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .status(1)
        .run();
    assert!(out.stdout.contains("media-routing-server.prompt-area and media-routing-server.recording-area both listen on 10.1.0.100 udp ports 8000-8200 and 8100-9300 (first shared: 8100)"), "{}", out.stdout);
}

#[test]
fn generated_large_systems_are_valid_and_clean() {
    use scc_ports::catalog::Catalog;
    use scc_ports::diag::{Severity, Source};
    let catalog = Catalog::embedded();
    for (nodes, units) in [(1, 1), (3, 8), (50, 30)] {
        let text = scc_ports::deployment::generate::large_system(nodes, units);
        let dep =
            scc_ports::deployment::parse(&Source::new("gen.toml", text), &catalog).expect("valid");
        assert_eq!((dep.nodes.len(), dep.units.len()), (nodes, units));
        let plan = scc_ports::plan::resolve(&dep, &catalog);
        let findings = scc_ports::plan::check(&dep, &catalog, &plan);
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert!(errors.is_empty(), "{nodes}/{units}: {errors:#?}");
    }
}

mod no_panics {
    use proptest::prelude::*;
    use scc_ports::catalog::Catalog;
    use scc_ports::diag::Source;

    const EXAMPLES: [&str; 4] = [
        include_str!("../../examples/all-in-one.toml"),
        include_str!("../../examples/redundant.toml"),
        include_str!("../../examples/large.toml"),
        include_str!("../../examples/services.toml"),
    ];

    /// An example file with a few characters deleted, replaced or inserted: near-valid input is
    /// where a validator's assumptions break.
    fn mutated() -> impl Strategy<Value = String> {
        let edit = (
            any::<prop::sample::Index>(),
            0u8..3,
            prop::sample::select(vec![
                '"', '[', ']', '=', '.', ',', '0', '9', '\n', 'A', '-', 'é', '\0', ' ',
            ]),
        );
        (0usize..EXAMPLES.len(), prop::collection::vec(edit, 1..6)).prop_map(|(which, edits)| {
            let mut chars: Vec<char> = EXAMPLES[which].chars().collect();
            for (at, kind, c) in edits {
                let i = at
                    .index(chars.len().max(1))
                    .min(chars.len().saturating_sub(1));
                match kind {
                    0 if !chars.is_empty() => {
                        chars.remove(i);
                    }
                    1 if !chars.is_empty() => chars[i] = c,
                    _ => chars.insert(i, c),
                }
            }
            chars.into_iter().collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
        #[test]
        fn parse_resolve_check_never_panic(text in mutated()) {
            let catalog = Catalog::embedded();
            match scc_ports::deployment::parse(&Source::new("m.toml", text), &catalog) {
                Ok(dep) => {
                    let plan = scc_ports::plan::resolve(&dep, &catalog);
                    let _ = scc_ports::plan::check(&dep, &catalog, &plan);
                    let _ = scc_ports::flows::flows(&dep, &catalog, &plan);
                }
                Err(d) => {
                    let text = d.to_string();
                    prop_assert!(text.contains("m.toml:"), "located: {text}");
                }
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let catalog = Catalog::embedded();
            let _ = scc_ports::deployment::parse(&Source::new("a.toml", text.clone()), &catalog);
            let _ = Catalog::parse(&Source::new("c.toml", text));
        }
    }
}

/// Every type problem of a file at once, each located, in the file's words: no serde or Rust
/// terms ("invalid type", "integer", "sequence", "u16", "i64", "struct").
#[test]
fn every_type_problem_at_once_in_the_files_words() {
    let text = GOOD
        .replacen("name = \"t\"", "name = 5", 1)
        .replacen("cidrs = [\"10.20.0.0/16\"]", "cidrs = \"10.20.0.0/16\"", 1)
        .replacen("roles = [\"clients\"]", "roles = [\"clients\", 3]", 1)
        .replacen("address = \"10.1.0.12\"", "address = 10", 1)
        .replacen(
            "zone = \"dc\"\n\n[units",
            "zone = \"dc\"\nhac = \"no\"\n\n[units",
            1,
        )
        .replacen("= 100", "= 1.5", 1);
    let out = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .status(2)
        .run();
    for want in [
        "t.toml:1:8: error[E003]: `name` must be a string, not a whole number",
        "t.toml:8:9: error[E003]: `zones.agents.cidrs` must be a list of strings, not a string",
        "write a list in brackets, even for one item",
        "t.toml:9:21: error[E003]: `zones.agents.roles` must be a list of strings, but item 2 is a whole number",
        "t.toml:16:11: error[E003]: `nodes.APP2.address` must be a string, not a whole number",
        "t.toml:18:7: error[E003]: `nodes.APP2.hac` must be true or false, not a string",
        "error[E003]: `units.CORE.variables.\"media-routing-server.max-simultaneous-prompts\"` must be a whole number, not a decimal number",
    ] {
        assert!(out.stderr.contains(want), "lacks {want:?}:\n{}", out.stderr);
    }
    assert_eq!(
        out.stderr.matches("error[E003]").count(),
        6,
        "{}",
        out.stderr
    );
    for serde_word in [
        "invalid type",
        "integer",
        "sequence",
        "i64",
        "u16",
        "struct",
        "expected a",
    ] {
        assert!(
            !out.stderr.contains(serde_word),
            "{serde_word}:\n{}",
            out.stderr
        );
    }
}

/// A table defined twice points at the first definition.
#[test]
fn duplicate_table_points_at_the_first() {
    let text = format!("{GOOD}\n[nodes.APP1]\naddress = \"10.1.0.13\"\nzone = \"dc\"\n");
    let out = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .status(2)
        .run();
    assert!(
        out.stderr.contains("`APP1` is defined twice"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("first defined at t.toml:11:1"),
        "{}",
        out.stderr
    );
}

#[test]
fn windows_excluded_ports_bad_items() {
    case(
        "zone = \"dc\"",
        "zone = \"dc\"\nwindows_excluded_ports = { tcp = [\"50059-50000\", \"1433x\"], udp = [\"0\", 5] }",
        2,
        &[
            "t.toml:14:72: error[E003]: `nodes.APP1.windows_excluded_ports.udp` must be a list of strings, but item 2 is a whole number",
        ],
    );
    case(
        "zone = \"dc\"",
        "zone = \"dc\"\nwindows_excluded_ports = { tcp = [\"50059-50000\", \"1433x\"], udp = [\"0\", \"70000\"] }",
        2,
        &[
            "t.toml:14:35: error[E024]: the excluded range 50059-50000 runs backwards",
            "write it first-last: \"50000-50059\"",
            "t.toml:14:50: error[E024]: `1433x` is not a port number (a Windows excluded port range)",
            "error[E024]: port 0 is out of range",
            "error[E024]: port 70000 is out of range",
            "of netsh's Start Port and End Port",
        ],
    );
    case(
        "zone = \"dc\"",
        "zone = \"dc\"\nwindows_excluded_ports = { sctp = [\"1-2\"] }",
        2,
        &[
            "error[E002]: unknown key `sctp` in [nodes.APP1.windows_excluded_ports]",
            "keys here: tcp, udp",
        ],
    );
    case(
        "zone = \"dc\"",
        "zone = \"dc\"\nwindows_excluded_ports = [\"50000-50059\"]",
        2,
        &["`nodes.APP1.windows_excluded_ports` must be a table, not a list"],
    );
}

/// Rows pasted as `netsh int ipv4 show excludedportrange` prints them (Start Port, End Port, a
/// star for an administered exclusion) are ranges too.
#[test]
fn windows_excluded_ports_take_netsh_rows() {
    let text = GOOD.replacen(
        "zone = \"dc\"",
        "zone = \"dc\"\nwindows_excluded_ports = { tcp = [\"     21000       21099     *\", \"  5357        5357\"] }",
        1,
    );
    let out = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .status(1)
        .run();
    assert!(
        out.stdout
            .contains("inside the Windows excluded port range 21000-21099 of the node"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("E024"), "{}", out.stdout);
}

/// C114: a planned port inside an excluded range of its node and transport is an error naming the
/// node, the binding, the port and the range; the other node, the other transport and ranges
/// beside the ports are quiet.
#[test]
fn windows_excluded_range_is_an_error() {
    let text = GOOD.replacen(
        "zone = \"dc\"",
        "zone = \"dc\"\nwindows_excluded_ports = { tcp = [\"50000-50059\", \"21000-21099\", \"8000-8200\"], udp = [\"8150-8160\", \"1-100\"] }",
        1,
    );
    let out = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml"])
        .status(1)
        .run();
    let errors: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("[C114]"))
        .collect();
    // HAC's two ports on APP1, two packages' tcp ports, the prompt area over udp.
    assert_eq!(errors.len(), 5, "{}", out.stdout);
    for want in [
        "error[C114] windows-excluded-range: agent-server.port (unit CORE) on node APP1 (10.1.0.100) uses tcp 21018 (from 21018), inside the Windows excluded port range 21000-21099 of the node: the bind will fail",
        "error[C114] windows-excluded-range: media-routing-server.prompt-area (unit CORE) on node APP1 (10.1.0.100) uses udp 8000-8200 (from 8150), inside the Windows excluded port range 8150-8160 of the node",
        "t.toml:14:50  tcp excluded range 21000-21099 of node APP1",
        "error[C114] windows-excluded-range: hac.server-port on node APP1 (10.1.0.11) uses tcp 21012",
        "netsh int ipv4 delete excludedportrange protocol=tcp startport=21000 numberofports=100",
    ] {
        assert!(out.stdout.contains(want), "lacks {want:?}:\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("node APP2"), "{}", out.stdout);
    // JSON carries the same finding.
    let json = Test::new()
        .file("t.toml", &text)
        .args(["check", "t.toml", "--format", "json"])
        .status(1)
        .run();
    assert!(
        json.stdout.contains("\"code\": \"C114\""),
        "{}",
        json.stdout
    );
}
