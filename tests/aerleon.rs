//! The `aerleon` target: golden policies for every example, Aerleon's `aclgen` rendering each for
//! every platform without a warning, bad input refused with nothing written, and in the kernel
//! (network namespaces, real TCP/UDP packets): Aerleon's nftables and iptables renderings of our
//! `--node` and `--network` policies admit exactly what our own generators admit.
//!
//! The aclgen tests need Aerleon (`SCC_PORTS_ACLGEN`, .ci/before.d/30-aerleon.sh); the kernel
//! tests also root, `ip`, `nft` and `iptables`. Without them they are ignored with the reason, and
//! fail under `SCC_PORTS_REQUIRE_ROOT_TESTS=1`.

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::burst::{self, Outcome, Probe};
use common::cli;
use common::netns::{self, Netns};
use scc_ports::catalog::{Catalog, Transport};
use scc_ports::diag::Source;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every example and the nodes whose host policy is covered (one holding units, one without).
const EXAMPLES: [(&str, &[&str]); 5] = [
    ("all-in-one", &["SCC1"]),
    ("redundant", &["APP1", "WEB1", "DB1"]),
    ("large", &["APP_A1", "VOICE_A"]),
    ("services", &["APP1", "DB1"]),
    ("two-offices", &["HAC1", "SBC1"]),
];

/// Every example is covered: a new one must be added above.
#[test]
fn every_example_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("examples"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".toml").map(str::to_string))
        .collect();
    files.sort();
    let mut covered: Vec<String> = EXAMPLES.iter().map(|(e, _)| e.to_string()).collect();
    covered.sort();
    assert_eq!(files, covered);
}

/// (snapshot name, deployment file, scope arguments) of every case.
fn cases() -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for (example, nodes) in EXAMPLES {
        let file = format!("examples/{example}.toml");
        out.push((
            format!("{example}__network"),
            file.clone(),
            vec!["--network".into()],
        ));
        out.push((
            format!("{example}__workstations"),
            file.clone(),
            vec!["--workstations".into()],
        ));
        for n in nodes {
            out.push((
                format!("{example}__node_{n}"),
                file.clone(),
                vec!["--node".into(), n.to_string()],
            ));
        }
    }
    out
}

/// Writes the policy of `file` and `scope` into `dir` (which must not exist yet).
fn write_policy(file: &str, scope: &[String], dir: &Path) {
    let mut args = vec![
        "firewall",
        file,
        "--target",
        "aerleon",
        "-o",
        dir.to_str().unwrap(),
    ];
    args.extend(scope.iter().map(String::as_str));
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "scc-ports {args:?}: {err}");
    assert_eq!(out, "", "a directory target prints nothing");
}

/// Every file under `dir`, relative paths sorted, each under a `==> PATH` line.
fn listing(dir: &Path) -> String {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, base, out);
            } else {
                let rel = p.strip_prefix(base).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|(p, t)| format!("==> {p}\n{t}"))
        .collect()
}

#[test]
fn golden_every_example_and_scope() {
    for (name, file, scope) in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("policy");
        write_policy(&file, &scope, &dir);
        insta::assert_snapshot!(name, listing(&dir));
    }
}

/// The network team's sheet as a Markdown table (the CSV one is in tests/it's goldens).
#[test]
fn golden_network_sheet_markdown() {
    for (example, _) in EXAMPLES {
        let file = format!("examples/{example}.toml");
        let (code, out, err) = cli(&["firewall", &file, "--target", "markdown", "--network"]);
        assert_eq!(code, 0, "{err}");
        insta::assert_snapshot!(format!("sheet_markdown__{example}"), out);
    }
}

/// The platforms a case renders and the file each one writes (Aerleon's suffixes).
fn expected_outputs(file: &str, scope: &[String], dir: &Path) -> Vec<String> {
    let suffix = |p: &str| match p {
        "ciscoasa" => ".asa",
        "paloalto" => ".xml",
        "srx" => ".srx",
        "fortigate" => ".fgacl",
        "nftables" => ".nft",
        "iptables" => "",
        "windows_advfirewall" => ".bat",
        other => panic!("no suffix for {other}"),
    };
    let mut out = Vec::new();
    if scope[0] == "--network" {
        let catalog = Catalog::embedded();
        let text = std::fs::read_to_string(Path::new(ROOT).join(file)).unwrap();
        let dep = scc_ports::deployment::parse(&Source::new(file, text.as_str()), &catalog)
            .expect("example loads");
        assert!(!dep.firewalls.is_empty(), "{file} declares a firewall");
        for fw in &dep.firewalls {
            let stem = fw.name.to_ascii_lowercase();
            for p in &fw.platforms {
                out.push(format!("{stem}{}", suffix(p)));
            }
        }
    } else {
        let pol = std::fs::read_dir(dir.join("pol")).unwrap().next().unwrap();
        let path = pol.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        for p in ["nftables", "iptables", "windows_advfirewall"] {
            // The Windows firewall has no filter when no flow reaches the host.
            if text.contains(&format!("        {p}: ")) {
                out.push(format!("{stem}{}", suffix(p)));
            }
        }
        assert!(out.len() >= 2, "{text}");
    }
    out.sort();
    out
}

/// Runs aclgen over a policy directory; returns the output directory's file names. Fails on a
/// non-zero exit or any warning or error line (absl's `W`, `E`, `F` prefixes), except the line
/// where aclgen lists the `pol` directory it found, which it always logs as a warning.
fn aclgen(dir: &Path, out: &Path) -> Vec<String> {
    std::fs::create_dir_all(out).unwrap();
    let run = Command::new(common::aclgen())
        .arg("--base_directory")
        .arg(dir)
        .arg("--definitions_directory")
        .arg(dir.join("def"))
        .arg("--output_directory")
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", common::aclgen().display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "aclgen failed:\n{text}");
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with(['W', 'E', 'F']) || l.contains("Traceback"))
        .filter(|l| !l.ends_with("pol files found)"))
        .collect();
    assert!(
        warnings.is_empty(),
        "aclgen warned:\n{}\n(all output:\n{text})",
        warnings.join("\n")
    );
    let mut names: Vec<String> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg_attr(
    not(scc_aerleon),
    ignore = "needs Aerleon's aclgen (SCC_PORTS_ACLGEN, .ci/before.d/30-aerleon.sh)"
)]
#[test]
fn aclgen_renders_every_example_for_every_platform_without_a_warning() {
    for (name, file, scope) in cases() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("policy");
        write_policy(&file, &scope, &dir);
        let rendered = aclgen(&dir, &tmp.path().join("out"));
        assert_eq!(
            rendered,
            expected_outputs(&file, &scope, &dir),
            "{name}: the files aclgen wrote"
        );
        for f in &rendered {
            let text = std::fs::read_to_string(tmp.path().join("out").join(f)).unwrap();
            assert!(text.len() > 100, "{name}: {f} is nearly empty:\n{text}");
        }
    }
}

/// The appliance renderings: names within the platforms' limits, a comment naming
/// `component.port_id` on every rule, and the final deny.
#[cfg_attr(
    not(scc_aerleon),
    ignore = "needs Aerleon's aclgen (SCC_PORTS_ACLGEN, .ci/before.d/30-aerleon.sh)"
)]
#[test]
fn appliance_rules_are_named_commented_and_end_in_a_deny() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("policy");
    write_policy("examples/redundant.toml", &["--network".into()], &dir);
    let out = tmp.path().join("out");
    aclgen(&dir, &out);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    // PAN-OS: rule names at most 63 characters, each rule described, the last of each zone pair
    // a deny.
    let xml = read("edge.xml");
    let doc = roxmltree::Document::parse(&xml).unwrap();
    let rules: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("entry") && n.parent().is_some_and(|p| p.has_tag_name("rules")))
        .collect();
    assert!(rules.len() > 20, "{} PAN-OS rules", rules.len());
    let mut denies = 0;
    for r in &rules {
        let name = r.attribute("name").unwrap();
        assert!(name.len() <= 63, "PAN-OS rule name {name}");
        let text = |tag: &str| {
            r.descendants()
                .find(|n| n.has_tag_name(tag))
                .and_then(|n| n.text())
                .unwrap_or("")
                .to_string()
        };
        if text("action") == "deny" {
            denies += 1;
            assert!(text("description").starts_with("final deny"), "{name}");
        } else {
            let d = text("description");
            let label = d.split(' ').next().unwrap();
            assert!(
                label.contains('.') && !label.starts_with('.'),
                "{name}: description {d:?} names no component.port_id"
            );
        }
    }
    let xml_pairs = xml.matches("<from>").count() / 2; // from and to zones are listed per rule
    assert!(denies > 1 && denies <= xml_pairs, "{denies} denies");
    // ASA: one ACL per ingress interface, each ending in a deny, every permit after its remark.
    let asa = read("edge.asa");
    let acls: BTreeSet<&str> = asa
        .lines()
        .filter_map(|l| l.strip_prefix("access-list "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(
        acls.contains("inside_access_in") && acls.contains("agents_access_in"),
        "{acls:?}"
    );
    for acl in &acls {
        assert!(acl.len() <= 64, "ASA ACL name {acl}");
        let last = asa
            .lines()
            .rfind(|l| l.starts_with(&format!("access-list {acl} extended")))
            .unwrap();
        assert!(last.ends_with("extended deny ip any any"), "{acl}: {last}");
    }
    let lines: Vec<&str> = asa.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.contains(" extended permit ") {
            let remarks: Vec<&&str> = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.contains(" remark "))
                .collect();
            assert!(
                remarks.iter().any(|r| r.contains(" from ")),
                "ASA permit without its component.port_id remark: {l}"
            );
        }
    }
    // FortiGate and SRX: every policy names a zone pair the firewall separates.
    let srx = read("edge.srx");
    assert!(
        srx.contains("from-zone inside to-zone dmz"),
        "SRX zone pair"
    );
    let fgt = read("edge.fgacl");
    assert!(
        fgt.contains("set srcintf \"agents\""),
        "FortiGate interface"
    );
}

/// Bad input: a located error, exit 2, and nothing written into DIR (a new DIR is not created,
/// an existing one is byte for byte unchanged).
#[test]
fn bad_input_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(Path::new(ROOT).join("examples/redundant.toml")).unwrap();
    let cases: [(&str, &str, &str, &[&str]); 4] = [
        (
            "unknown zone",
            "zones = [\"datacenter\", \"dmz\", \"agents\", \"admins\", \"carrier\", \"internet\"]",
            "zones = [\"datacenter\", \"dmz\", \"agentz\", \"admins\", \"carrier\", \"internet\"]",
            &[
                "error[E030]: unknown zone `agentz`",
                "did you mean `agents`?",
            ],
        ),
        (
            "a zone named twice",
            "zones = [\"datacenter\", \"dmz\", \"agents\", \"admins\", \"carrier\", \"internet\"]",
            "zones = [\"datacenter\", \"dmz\", \"agents\", \"admins\", \"carrier\", \"dmz\"]",
            &["error[E030]: zone `dmz` is named twice", "first named at"],
        ),
        (
            "a name no platform accepts",
            "internet = \"outside\"",
            "internet = \"out side\"",
            &["error[E032]: no appliance accepts the name `out side`"],
        ),
        (
            "an unknown platform",
            "# platforms = [\"ciscoasa\", \"paloalto\"]",
            "platforms = [\"ciscoasa\", \"paloalt\"]",
            &[
                "error[E031]: unknown platform `paloalt`",
                "did you mean `paloalto`?",
            ],
        ),
    ];
    let existing = tmp.path().join("existing");
    write_policy("examples/redundant.toml", &["--network".into()], &existing);
    let before = listing(&existing);
    for (what, find, replace, want) in cases {
        assert!(good.contains(find), "{what}: {find}");
        let file = tmp.path().join(format!("{}.toml", what.replace(' ', "-")));
        std::fs::write(&file, good.replacen(find, replace, 1)).unwrap();
        for dir in [tmp.path().join("new"), existing.clone()] {
            let (code, out, err) = cli(&[
                "firewall",
                file.to_str().unwrap(),
                "--target",
                "aerleon",
                "--network",
                "-o",
                dir.to_str().unwrap(),
            ]);
            assert_eq!(code, 2, "{what}: {err}");
            assert_eq!(out, "");
            for w in want {
                assert!(err.contains(w), "{what}: stderr lacks {w:?}:\n{err}");
            }
            assert!(err.contains(".toml:"), "{what}: located: {err}");
        }
        assert!(
            !tmp.path().join("new").exists(),
            "{what}: a new DIR appeared"
        );
        assert_eq!(listing(&existing), before, "{what}: DIR changed");
    }
    // No -o; no firewall to render; a DIR holding something else: refused, nothing written.
    let (code, _, err) = cli(&[
        "firewall",
        "examples/redundant.toml",
        "--target",
        "aerleon",
        "--network",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("give it with -o DIR"), "{err}");
    let no_fw = tmp.path().join("no-firewall.toml");
    let cut = good.find("[firewalls.EDGE]").unwrap();
    let end = good.find("# Site services").unwrap();
    std::fs::write(&no_fw, format!("{}{}", &good[..cut], &good[end..])).unwrap();
    let dir = tmp.path().join("none");
    let (code, _, err) = cli(&[
        "firewall",
        no_fw.to_str().unwrap(),
        "--target",
        "aerleon",
        "--network",
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("declares no network firewall") && err.contains("[firewalls.EDGE]"),
        "{err}"
    );
    assert!(!dir.exists());
    let foreign = tmp.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let (code, _, err) = cli(&[
        "firewall",
        "examples/redundant.toml",
        "--target",
        "aerleon",
        "--network",
        "-o",
        foreign.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("notes.txt"), "{err}");
    assert_eq!(listing(&foreign), "==> notes.txt\nmine");
    // Written again over its own earlier output: replaced, no temporary left beside it.
    write_policy("examples/redundant.toml", &["--network".into()], &existing);
    assert_eq!(listing(&existing), before);
    let litter: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(litter.is_empty(), "{litter:?}");
}

/// Names from the file that are long, or alike once made tokens, stay within the limits and
/// distinct, and the system's hostile name stays inside comments.
#[cfg_attr(
    not(scc_aerleon),
    ignore = "needs Aerleon's aclgen (SCC_PORTS_ACLGEN, .ci/before.d/30-aerleon.sh)"
)]
#[test]
fn long_and_alike_names_fit_and_stay_distinct() {
    let long = "z".repeat(120);
    let text = format!(
        r#"name = "=cmd|' /C calc'!A0 \u001b]0;x\u0007 \u202e {long}"

[zones.dc_a]
cidrs = ["10.1.0.0/24"]
roles = ["servers"]

[zones.dc-a]
cidrs = ["10.2.0.0/24"]
roles = ["servers"]

[zones.{long}]
cidrs = ["10.20.0.0/16"]
roles = ["clients"]

[nodes.N1]
address = "10.1.0.11"
zone = "dc_a"

[nodes.N_1]
address = "10.2.0.11"
zone = "dc-a"

[units.{long}]
address = "10.1.0.100"
packages = ["agent-server", "connection-server"]
instances = ["N1", "N_1"]

[firewalls.{long}]
zones = ["dc_a", "dc-a", "{long}"]

[firewalls.{long}.names]
{long} = "agents"

[firewalls.{upper}]
zones = ["dc_a", "dc-a", "{long}"]

[firewalls.{upper}.names]
{long} = "agents"
"#,
        upper = long.to_ascii_uppercase()
    );
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("long.toml");
    std::fs::write(&file, text).unwrap();
    let dir = tmp.path().join("policy");
    write_policy(file.to_str().unwrap(), &["--network".into()], &dir);
    let networks = std::fs::read_to_string(dir.join("def/networks.yaml")).unwrap();
    let tokens: Vec<&str> = networks
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("   ") && l.ends_with(':'))
        .map(|l| l.trim().trim_end_matches(':'))
        .collect();
    let distinct: BTreeSet<&&str> = tokens.iter().collect();
    assert_eq!(distinct.len(), tokens.len(), "{tokens:?}");
    assert!(
        tokens.contains(&"ZONE-DC-A") && tokens.len() >= 5,
        "{tokens:?}"
    );
    for t in &tokens {
        assert!(t.len() <= 48, "{t}");
    }
    for (_, text) in std::fs::read_dir(dir.join("pol"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), std::fs::read_to_string(p).unwrap()))
    {
        for l in text.lines() {
            assert!(!l.contains('\u{1b}') && !l.contains('\u{202e}'), "{l:?}");
            if let Some(name) = l.trim().strip_prefix("- name: ") {
                assert!(name.len() <= 50, "{name}");
            }
        }
    }
    let out = tmp.path().join("out");
    // Two firewalls whose names differ only in case: two policies, two sets of renderings.
    assert_eq!(std::fs::read_dir(dir.join("pol")).unwrap().count(), 2);
    let rendered = aclgen(&dir, &out);
    assert_eq!(rendered.len(), 12, "{rendered:?}");
}

// ---------------------------------------------------------------------------------------------
// Kernel: our own nftables/iptables rules and Aerleon's renderings of our policy, each loaded in a
// fresh lab (client -- router -- server), probed with the same packets; the answers must agree.

const LAB: &str = "tests/aerleon/lab.toml";
const SERVER: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 66, 1, 11),
    Ipv4Addr::new(10, 66, 1, 100),
    Ipv4Addr::new(10, 66, 1, 101),
];
/// The client namespace's address in each zone other than the servers' own (traffic inside one
/// zone crosses no network firewall), and the datacenter's for the host policy.
const CLIENTS: [Ipv4Addr; 5] = [
    Ipv4Addr::new(10, 66, 5, 10),
    Ipv4Addr::new(10, 66, 2, 10),
    Ipv4Addr::new(10, 66, 3, 10),
    Ipv4Addr::new(10, 66, 4, 10),
    Ipv4Addr::new(10, 66, 6, 10),
];
const DATACENTER_CLIENT: Ipv4Addr = Ipv4Addr::new(10, 66, 1, 50);
/// The agent PC the workstations' flows reach (in the client namespace).
const AGENT: Ipv4Addr = Ipv4Addr::new(10, 66, 2, 10);
const WINDOW: Duration = Duration::from_millis(700);

static LOCK: Mutex<()> = Mutex::new(());

fn kernel_ready(what: &str) -> bool {
    if !netns::available(what) {
        return false;
    }
    for t in ["iptables", "iptables-restore"] {
        let found = Command::new(t)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            assert!(!common::required(), "{what}: `{t}` not found");
            eprintln!("skipping {what}: `{t}` not found");
            return false;
        }
    }
    true
}

/// client (every zone's address) -- router -- server (APP1 and the units' virtual IPs), all
/// addresses /32s routed through the router.
struct Lab {
    server: Netns,
    client: Netns,
    router: Netns,
}

fn lab(clients: &[Ipv4Addr]) -> Lab {
    let server = Netns::new().expect("server namespace");
    let client = Netns::new().expect("client namespace");
    let router = Netns::new().expect("router namespace");
    let (rc, vc) =
        netns::link_named(&router, "192.168.66.1/24", &client, "192.168.66.2/24").expect("veth");
    let (rs, vs) =
        netns::link_named(&router, "192.168.67.1/24", &server, "192.168.67.2/24").expect("veth");
    let route = |ns: &Netns, a: &Ipv4Addr, via: &str, dev: &str| {
        ns.ip(&["route", "add", &format!("{a}/32"), "via", via, "dev", dev])
            .expect("route");
    };
    for a in &SERVER {
        server
            .ip(&["addr", "add", &format!("{a}/32"), "dev", &vs])
            .expect("server address");
        route(&router, a, "192.168.67.2", &rs);
    }
    for a in clients {
        client
            .ip(&["addr", "add", &format!("{a}/32"), "dev", &vc])
            .expect("client address");
        route(&router, a, "192.168.66.2", &rc);
    }
    server
        .ip(&["route", "add", "default", "via", "192.168.67.1"])
        .expect("server route");
    client
        .ip(&["route", "add", "default", "via", "192.168.66.1"])
        .expect("client route");
    router.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("forwarding"));
    Lab {
        server,
        client,
        router,
    }
}

/// How a ruleset is loaded.
#[derive(Clone, Copy, Debug)]
enum Loader {
    /// `nft -f`
    Nft,
    /// `iptables-restore`
    Restore,
    /// One `iptables ARGS` per line (Aerleon's iptables output)
    Commands,
}

fn load(ns: &Netns, loader: Loader, rules: &str) {
    let (program, args, input): (&str, Vec<&str>, String) = match loader {
        Loader::Nft => ("nft", vec!["-f", "-"], rules.to_string()),
        Loader::Restore => ("iptables-restore", vec![], rules.to_string()),
        Loader::Commands => {
            let script: String = rules
                .lines()
                .filter(|l| l.starts_with('-'))
                .map(|l| format!("iptables -w {l}\n"))
                .collect();
            ("sh", vec!["-e", "-s"], script)
        }
    };
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name(), program])
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the loader");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "loading with {loader:?} failed: {}\n{rules}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every probe: each client address to each server address on every sampled port of every flow
/// and a few ports no flow has; for `--network` also the server to the agent PC on the
/// workstations' ports. (client → server probes, server → agent probes)
fn probes(network: bool) -> (Vec<Probe>, Vec<Probe>) {
    let flows = common::lab_flows(LAB, &SERVER, network);
    let mut ports: BTreeSet<(Transport, u16)> = BTreeSet::new();
    let mut agent_ports: BTreeSet<u16> = BTreeSet::new();
    for f in &flows {
        for p in burst::sample(f.ports, 40) {
            if f.workstations {
                agent_ports.insert(p);
            } else {
                ports.insert((f.transport, p));
            }
        }
    }
    ports.extend([
        (Transport::Tcp, 22),
        (Transport::Tcp, 21999),
        (Transport::Udp, 8999),
    ]);
    let mut clients = CLIENTS.to_vec();
    if !network {
        clients.push(DATACENTER_CLIENT);
    }
    let mut to_server = Vec::new();
    for &src in &clients {
        for dst in SERVER {
            for &(transport, port) in &ports {
                to_server.push(Probe {
                    src,
                    dst,
                    transport,
                    port,
                });
            }
        }
    }
    let to_agent = agent_ports
        .into_iter()
        .map(|port| Probe {
            src: SERVER[0],
            dst: AGENT,
            transport: Transport::Udp,
            port,
        })
        .collect();
    (to_server, to_agent)
}

fn responder(
    ns: &Netns,
    probes: &[Probe],
    stop: std::sync::Arc<AtomicBool>,
) -> std::thread::JoinHandle<std::io::Result<()>> {
    let (tcp, udp) = burst::listen_sets(probes);
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = ns.spawn(move || {
        let (listeners, sockets) = match burst::bind(&tcp, &udp) {
            Ok(v) => {
                let _ = tx.send(Ok(()));
                v
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        burst::serve(&listeners, &sockets, &stop);
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("responder: {e}"),
        Err(e) => panic!("responder did not start: {e}"),
    }
    handle
}

fn fire(ns: &Netns, probes: &[Probe]) -> Vec<bool> {
    let shots: Vec<burst::Shot> = probes.iter().map(Probe::shot).collect();
    ns.run(move || burst::fire(&shots, WINDOW, Duration::from_millis(150)))
        .expect("probes sent")
        .into_iter()
        .map(|o| o == Outcome::Reached)
        .collect()
}

/// A fresh lab with `rules` loaded into the router (`--network`) or the server: which probes
/// came through.
fn admitted(network: bool, loader: Loader, rules: &str) -> Vec<bool> {
    let (to_server, to_agent) = probes(network);
    let mut clients = CLIENTS.to_vec();
    if !network {
        clients.push(DATACENTER_CLIENT);
    }
    let lab = lab(&clients);
    load(
        if network { &lab.router } else { &lab.server },
        loader,
        rules,
    );
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let server = responder(&lab.server, &to_server, stop.clone());
    let agent = (!to_agent.is_empty()).then(|| responder(&lab.client, &to_agent, stop.clone()));
    let mut got = fire(&lab.client, &to_server);
    if !to_agent.is_empty() {
        got.extend(fire(&lab.server, &to_agent));
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    server.join().unwrap().unwrap();
    if let Some(a) = agent {
        a.join().unwrap().unwrap();
    }
    got
}

/// Our own generator's rules for the lab.
fn ours(target: &str, network: bool) -> String {
    let scope: &[&str] = if network {
        &["--network"]
    } else {
        &["--node", "APP1"]
    };
    let mut args = vec!["firewall", LAB, "--target", target];
    args.extend_from_slice(scope);
    let (code, out, err) = cli(&args);
    assert_eq!(code, 0, "{err}");
    out
}

/// Aerleon's rendering of our policy for the lab: (nftables, iptables).
fn theirs(network: bool) -> (String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("policy");
    let scope: Vec<String> = if network {
        vec!["--network".into()]
    } else {
        vec!["--node".into(), "APP1".into()]
    };
    write_policy(LAB, &scope, &dir);
    let out = tmp.path().join("out");
    let files = aclgen(&dir, &out);
    let stem = if network { "edge" } else { "app1" };
    assert!(files.contains(&format!("{stem}.nft")), "{files:?}");
    let read = |f: String| std::fs::read_to_string(out.join(f)).unwrap();
    (read(format!("{stem}.nft")), read(stem.to_string()))
}

/// Aerleon's nftables and iptables renderings admit exactly what our nftables and iptables
/// rules admit, probe by probe.
fn agree(network: bool) {
    let what = if network { "--network" } else { "--node APP1" };
    if !kernel_ready(&format!("aerleon kernel {what}")) {
        return;
    }
    let _serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    burst::raise_fd_limit();
    let (to_server, to_agent) = probes(network);
    let all: Vec<Probe> = to_server.into_iter().chain(to_agent).collect();
    let (nft, ipt) = theirs(network);
    let runs = [
        (
            "our nftables",
            admitted(network, Loader::Nft, &ours("nftables", network)),
        ),
        (
            "our iptables",
            admitted(network, Loader::Restore, &ours("iptables", network)),
        ),
        ("Aerleon's nftables", admitted(network, Loader::Nft, &nft)),
        (
            "Aerleon's iptables",
            admitted(network, Loader::Commands, &ipt),
        ),
    ];
    let reference = &runs[0].1;
    let reached = reference.iter().filter(|r| **r).count();
    assert!(
        reached > 20 && reached < all.len() - 20,
        "{what}: the probes must see both outcomes ({reached} of {} reached)",
        all.len()
    );
    for (name, got) in &runs[1..] {
        let wrong: Vec<String> = all
            .iter()
            .zip(reference.iter().zip(got))
            .filter(|(_, (a, b))| a != b)
            .map(|(p, (a, _))| {
                format!(
                    "{} -> {} {}/{}: our nftables {}, {name} {}",
                    p.src,
                    p.dst,
                    p.transport.as_str(),
                    p.port,
                    if *a { "admits" } else { "blocks" },
                    if *a { "blocks" } else { "admits" },
                )
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{what}: {} of {} probes disagree:\n{}",
            wrong.len(),
            all.len(),
            wrong.join("\n")
        );
    }
    eprintln!(
        "aerleon kernel {what}: {} probes, {reached} admitted and {} blocked by each of: {}",
        all.len(),
        all.len() - reached,
        runs.iter().map(|r| r.0).collect::<Vec<_>>().join(", ")
    );
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables, scc_aerleon)),
    ignore = "needs root, iproute2, nftables, iptables and Aerleon's aclgen"
)]
#[test]
fn kernel_aerleon_node_admits_what_ours_admit() {
    agree(false);
}

#[cfg_attr(
    not(all(scc_netns, scc_iptables, scc_aerleon)),
    ignore = "needs root, iproute2, nftables, iptables and Aerleon's aclgen"
)]
#[test]
fn kernel_aerleon_network_admits_what_ours_admit() {
    agree(true);
}

/// The negative control: Aerleon's nftables rendering with one port moved (agent-server's 21018
/// to 21999) disagrees with ours on exactly the probes to those two ports.
#[cfg_attr(
    not(all(scc_netns, scc_iptables, scc_aerleon)),
    ignore = "needs root, iproute2, nftables, iptables and Aerleon's aclgen"
)]
#[test]
fn kernel_catches_a_moved_port() {
    if !kernel_ready("aerleon kernel negative control") {
        return;
    }
    let _serial = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    burst::raise_fd_limit();
    let (to_server, to_agent) = probes(true);
    let all: Vec<Probe> = to_server.into_iter().chain(to_agent).collect();
    let (nft, _) = theirs(true);
    assert!(nft.contains("tcp dport 21018 "), "{nft}");
    let moved = nft.replace("tcp dport 21018 ", "tcp dport 21999 ");
    let reference = admitted(true, Loader::Nft, &ours("nftables", true));
    let got = admitted(true, Loader::Nft, &moved);
    let differ: BTreeSet<u16> = all
        .iter()
        .zip(reference.iter().zip(&got))
        .filter(|(_, (a, b))| a != b)
        .map(|(p, _)| p.port)
        .collect();
    assert_eq!(
        differ,
        BTreeSet::from([21018, 21999]),
        "the moved port went unnoticed"
    );
}

mod no_panics {
    use proptest::prelude::*;
    use scc_ports::catalog::Catalog;
    use scc_ports::diag::Source;
    use scc_ports::firewall::{Mode, Policy, Request};

    const BASE: &str = include_str!("../examples/redundant.toml");

    /// Words a firewall table may hold: zones, near misses, hostile and long text.
    fn word() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "datacenter".to_string(),
            "dmz".into(),
            "agents".into(),
            "admins".into(),
            "carrier".into(),
            "internet".into(),
            "agentz".into(),
            "".into(),
            "in side".into(),
            "a\\u001b]0;x".into(),
            "x".repeat(70),
            "ciscoasa".into(),
            "paloalto".into(),
            "srx".into(),
            "fortigate".into(),
            "nftables".into(),
            "iptables".into(),
            "juniper".into(),
        ])
    }

    fn list(words: &[String]) -> String {
        let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
        format!("[{}]", quoted.join(", "))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]
        /// Any firewall table: a located error, or a policy and a sheet whose names are tokens
        /// within the limits; never a panic.
        #[test]
        fn any_firewall_table(
            zones in prop::collection::vec(word(), 0..6),
            platforms in prop::option::of(prop::collection::vec(word(), 0..4)),
            names in prop::collection::vec((word(), word()), 0..3),
        ) {
            let start = BASE.find("[firewalls.EDGE]").unwrap();
            let end = BASE.find("# Site services").unwrap();
            let mut table = format!("[firewalls.EDGE]\nzones = {}\n", list(&zones));
            if let Some(p) = &platforms {
                table.push_str(&format!("platforms = {}\n", list(p)));
            }
            if !names.is_empty() {
                table.push_str("\n[firewalls.EDGE.names]\n");
                let mut seen = std::collections::HashSet::new();
                for (k, v) in &names {
                    if seen.insert(k.clone()) {
                        table.push_str(&format!("\"{k}\" = \"{v}\"\n"));
                    }
                }
            }
            let text = format!("{}{table}\n{}", &BASE[..start], &BASE[end..]);
            let catalog = Catalog::embedded();
            match scc_ports::deployment::parse(&Source::new("f.toml", text), &catalog) {
                Err(d) => prop_assert!(d.to_string().contains("f.toml:"), "located: {d}"),
                Ok(dep) => {
                    let plan = scc_ports::plan::resolve(&dep, &catalog);
                    let all = scc_ports::flows::flows(&dep, &catalog, &plan);
                    let flows = scc_ports::firewall::select(&dep, &all, &Mode::Network);
                    let request = Request { deployment: &dep, mode: Mode::Network, policy: Policy::Drop, flows };
                    let files = scc_ports::firewall::target("aerleon").unwrap().files(&request).unwrap();
                    prop_assert_eq!(files.len(), dep.firewalls.len() + 2);
                    for (_, body) in &files {
                        for l in body.lines().filter(|l| !l.starts_with('#')) {
                            if let Some(name) = l.trim().strip_prefix("- name: ") {
                                prop_assert!(name.len() <= 50 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'), "{}", name);
                            }
                            prop_assert!(!l.contains('\u{1b}'), "{}", l);
                        }
                    }
                    let _ = scc_ports::firewall::target("csv").unwrap().generate(&request);
                }
            }
        }
    }
}
