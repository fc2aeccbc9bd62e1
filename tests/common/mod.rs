//! Helpers shared by integration tests.
#![allow(dead_code)]

pub mod burst;
pub mod netns;
pub mod windows;

/// A small deterministic generator (xorshift64*): the kernel tests' policies, mutations and
/// samples are reproducible from their seed.
pub struct Rng(pub u64);

impl Rng {
    /// A generator seeded with `seed` (0, which xorshift never leaves, counts as 1).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % (n as u64).max(1)) as usize
    }
}

/// Whether CI requires the tests that need root or a tool: they fail instead of skipping
/// (`.ci/run` sets `SCC_PORTS_REQUIRE_ROOT_TESTS=1`).
pub fn required() -> bool {
    std::env::var("SCC_PORTS_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

/// A Python with the `jsonschema` module (drafts 4 and 2020-12), or None after saying why; a panic
/// when CI requires the tools. `what` names the test for the message.
pub fn python_jsonschema(what: &str) -> Option<std::path::PathBuf> {
    for p in ["python3", "/usr/bin/python3"] {
        let ok = std::process::Command::new(p)
            .args([
                "-c",
                "import jsonschema; jsonschema.Draft202012Validator; jsonschema.Draft4Validator",
            ])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(std::path::PathBuf::from(p));
        }
    }
    let why = "no python3 with the `jsonschema` module (Debian: python3-jsonschema)";
    if required() {
        panic!("{what}: {why}, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires it");
    }
    eprintln!("skipping {what}: {why}");
    None
}

/// Each of `docs` checked against the JSON schema `schema` by Python's `jsonschema` with
/// `validator` (its class for the schema's draft): "valid", or "invalid: MESSAGE at PATH" of the
/// first error; None when the module is missing (skipped, see `python_jsonschema`).
pub fn jsonschema_verdicts(
    what: &str,
    schema: &std::path::Path,
    validator: &str,
    docs: &[(String, serde_json::Value)],
) -> Option<Vec<String>> {
    let py = python_jsonschema(what)?;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.json");
    let list: Vec<&serde_json::Value> = docs.iter().map(|(_, d)| d).collect();
    std::fs::write(&input, serde_json::to_string(&list).unwrap()).unwrap();
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
v = getattr(jsonschema, sys.argv[3])(schema)
for d in json.load(open(sys.argv[2])):
    errors = sorted(v.iter_errors(d), key=lambda e: list(e.path))
    print("valid" if not errors else "invalid: %s at %s" % (errors[0].message.replace("\n", " "), list(errors[0].path)))
"#;
    let out = std::process::Command::new(py)
        .args(["-c", script])
        .arg(schema)
        .arg(&input)
        .arg(validator)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

/// The schema checks' verdicts: the first `valid` documents pass, every one after (the broken
/// ones, each named by its label) is refused.
pub fn assert_first_valid(docs: &[(String, serde_json::Value)], verdicts: &[String], valid: usize) {
    assert_eq!(verdicts.len(), docs.len());
    for (i, ((what, _), verdict)) in docs.iter().zip(verdicts).enumerate() {
        if i < valid {
            assert_eq!(verdict, "valid", "{what}");
        } else {
            assert!(verdict.starts_with("invalid"), "{what} passed the schema");
        }
    }
}

/// `audit LAB --node APP1 --ruleset RULESET --format FORMAT`: the audit tests' one question.
pub fn audit_app1_args<'a>(lab: &'a str, ruleset: &'a str, format: &'a str) -> [&'a str; 8] {
    [
        "audit",
        lab,
        "--node",
        "APP1",
        "--ruleset",
        ruleset,
        "--format",
        format,
    ]
}

/// Runs the built `scc-ports` from the crate's root: (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run scc-ports");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The examples with network firewalls, one by one: (name, file, the directory under `dir` where
/// `aclgen` rendered its network policy, the deployment).
pub fn aerleon_examples(
    dir: &std::path::Path,
) -> impl Iterator<
    Item = (
        &'static str,
        String,
        std::path::PathBuf,
        scc_ports::deployment::Deployment,
    ),
> + '_ {
    [
        "all-in-one",
        "redundant",
        "large",
        "services",
        "two-offices",
    ]
    .into_iter()
    .map(move |ex| {
        let file = format!("examples/{ex}.toml");
        let out = aerleon_network(&file, &dir.join(ex));
        let dep = load_deployment(&file);
        (ex, file, out, dep)
    })
}

/// Every example deployment (`examples/*.toml`), sorted.
pub fn example_files() -> Vec<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut examples: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    examples
}

/// The deployment `file` (a path from the crate root), which must load.
pub fn load_deployment(file: &str) -> scc_ports::deployment::Deployment {
    let catalog = scc_ports::catalog::Catalog::embedded();
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap();
    scc_ports::deployment::parse(&scc_ports::diag::Source::new(file, text.as_str()), &catalog)
        .unwrap_or_else(|e| panic!("{file} loads: {e:?}"))
}

/// The flows the lab deployment `lab` (a path from the crate root) plans through the firewall of
/// APP1 (whose addresses are `app1`), or with `network` through the network firewalls.
pub fn lab_flows(
    lab: &str,
    app1: &[std::net::Ipv4Addr],
    network: bool,
) -> Vec<scc_ports::flows::Flow> {
    let catalog = scc_ports::catalog::Catalog::embedded();
    let dep = load_deployment(lab);
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    let all = scc_ports::flows::flows(&dep, &catalog, &plan);
    let mode = if network {
        scc_ports::firewall::Mode::Network
    } else {
        scc_ports::firewall::Mode::Node {
            name: "APP1".into(),
            addresses: app1.iter().map(|a| std::net::IpAddr::V4(*a)).collect(),
        }
    };
    scc_ports::firewall::select(&dep, &all, &mode)
}

/// Aerleon's `aclgen`: `SCC_PORTS_ACLGEN` (CI's venv, .ci/before.d/30-aerleon.sh) or the PATH's.
pub fn aclgen() -> std::path::PathBuf {
    std::env::var_os("SCC_PORTS_ACLGEN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "aclgen".into())
}

/// PAN-OS XML as the `set` commands that make the same configuration (written here from the
/// XML tree, so that the set reader is checked against the kernel too).
pub fn panos_set_of(xml: &str) -> String {
    let doc = roxmltree::Document::parse(xml).expect("aclgen's XML");
    let q = |s: &str| {
        if s.contains(' ') {
            format!("\"{s}\"")
        } else {
            s.to_string()
        }
    };
    let members = |n: roxmltree::Node, tag: &str| -> Vec<String> {
        n.children()
            .filter(|c| c.has_tag_name(tag))
            .flat_map(|c| c.children().filter(|m| m.has_tag_name("member")))
            .filter_map(|m| m.text().map(|t| q(t.trim())))
            .collect()
    };
    let mut out = String::new();
    for e in doc.descendants().filter(|n| n.has_tag_name("entry")) {
        let (Some(parent), Some(name)) = (e.parent_element(), e.attribute("name")) else {
            continue;
        };
        let name = q(name);
        match parent.tag_name().name() {
            "address" => {
                for k in e
                    .children()
                    .filter(|k| k.has_tag_name("ip-netmask") || k.has_tag_name("ip-range"))
                {
                    out.push_str(&format!(
                        "set address {name} {} {}\n",
                        k.tag_name().name(),
                        k.text().unwrap_or("").trim()
                    ));
                }
            }
            "address-group" => {
                out.push_str(&format!(
                    "set address-group {name} static [ {} ]\n",
                    members(e, "static").join(" ")
                ));
            }
            "service" => {
                for p in e
                    .descendants()
                    .filter(|p| p.has_tag_name("tcp") || p.has_tag_name("udp"))
                {
                    let port = p
                        .children()
                        .find(|c| c.has_tag_name("port"))
                        .and_then(|c| c.text())
                        .unwrap_or("");
                    out.push_str(&format!(
                        "set service {name} protocol {} port {port}\n",
                        p.tag_name().name()
                    ));
                }
            }
            "rules" => {
                let r = format!("set rulebase security rules {name}");
                for tag in [
                    "from",
                    "to",
                    "source",
                    "destination",
                    "service",
                    "application",
                ] {
                    out.push_str(&format!("{r} {tag} [ {} ]\n", members(e, tag).join(" ")));
                }
                for tag in ["action", "negate-source", "negate-destination", "disabled"] {
                    if let Some(v) = e
                        .children()
                        .find(|c| c.has_tag_name(tag))
                        .and_then(|c| c.text())
                    {
                        out.push_str(&format!("{r} {tag} {}\n", v.trim()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `firewall --target aerleon --network` of the deployment `file` (a path from the crate root)
/// into `dir`, rendered by `aclgen`: the directory of the vendor files.
pub fn aerleon_network(file: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let (code, _, err) = cli(&[
        "firewall",
        file,
        "--target",
        "aerleon",
        "--network",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{file}: {err}");
    let out = dir.join("out");
    let o = std::process::Command::new(aclgen())
        .arg(format!("--base_directory={}", dir.display()))
        .arg(format!(
            "--definitions_directory={}",
            dir.join("def").display()
        ))
        .arg(format!("--output_directory={}", out.display()))
        .output()
        .expect("aclgen");
    assert!(
        o.status.success(),
        "{file}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// Aerleon's ASA ACLs as a running-config holds them: each zone's interface with its `nameif`
/// (the zone's appliance name), the `access-group` bindings (docs/firewall.md), and an ACL that
/// denies for a zone that sends nothing through the firewall.
pub fn asa_framed(acls: &str, nameifs: &[&str]) -> String {
    let mut head = String::new();
    let mut tail = String::new();
    for (i, z) in nameifs.iter().enumerate() {
        head.push_str(&format!(
            "interface Port-channel1.{i}\n nameif {z}\n security-level 0\n!\n"
        ));
        let acl = format!("{z}_access_in");
        if !acls.contains(&format!("access-list {acl} ")) {
            tail.push_str(&format!("access-list {acl} extended deny ip any any\n"));
        }
        tail.push_str(&format!("access-group {acl} in interface {z}\n"));
    }
    format!("{head}{acls}\n{tail}")
}

/// The file `aclgen` wrote into `out` for firewall `name` with extension `ext` (`asa`, `xml`,
/// `srx`, `fgacl`).
pub fn aerleon_file(out: &std::path::Path, name: &str, ext: &str) -> std::path::PathBuf {
    std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|x| x == ext)
                && p.file_stem()
                    .is_some_and(|s| s.to_string_lossy().eq_ignore_ascii_case(name))
        })
        .unwrap_or_else(|| panic!("no .{ext} for firewall {name} in {}", out.display()))
}
