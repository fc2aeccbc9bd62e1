//! The firewalld XML configuration as audit input: the configuration our own `firewalld` target
//! writes (offline, with `firewall-offline-cmd`) audits exact; its text export and its XML files
//! give the same verdict packet by packet (also after hand-made changes); goldens for a
//! hand-written `/etc/firewalld` over `/usr/lib/firewalld` and for unreadable input; no XML makes
//! the reader panic.
//!
//! The tests that run `firewall-offline-cmd` need root and firewalld; they are ignored where the
//! build found neither (build.rs, `scc_firewalld`), and fail when SCC_PORTS_REQUIRE_ROOT_TESTS=1
//! (CI) and the tool is missing.

mod common;

use common::{Rng, cli, required};

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use scc_ports::audit::{self, ConfigFile, Family, Hook, Outcome, Packet, Ruleset};
use scc_ports::catalog::Transport;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const LAB: &str = "tests/audit/lab.toml";
const FIXTURE: &str = "tests/audit/firewalld-xml";

/// (deployment, node) of the generated configurations: the lab and every example (the ones with
/// more than one network per source role get ipsets).
const GENERATED: [(&str, &str); 5] = [
    (LAB, "APP1"),
    ("examples/all-in-one.toml", "SCC1"),
    ("examples/redundant.toml", "APP1"),
    ("examples/large.toml", "APP_A1"),
    ("examples/services.toml", "DB1"),
];

/// Whether firewall-offline-cmd can run here (prints why not; panics when it is required).
fn offline_usable() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let tool = Command::new("firewall-offline-cmd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = if !root {
        "firewall-offline-cmd needs root"
    } else if !tool {
        "firewall-offline-cmd is not installed (Debian package firewalld)"
    } else {
        return true;
    };
    assert!(!required(), "{why} (SCC_PORTS_REQUIRE_ROOT_TESTS=1)");
    eprintln!("skipped: {why}");
    false
}

/// The files of a configuration as the CLI reads them: `firewalld.conf` and the XML files of
/// `zones`, `services` and `ipsets`, in `usr/lib/firewalld` (system) and `etc/firewalld`.
fn config_files(root: &Path) -> Vec<ConfigFile> {
    let mut out = Vec::new();
    for (system, dir) in [(true, "usr/lib/firewalld"), (false, "etc/firewalld")] {
        let dir = root.join(dir);
        let conf = dir.join("firewalld.conf");
        if conf.is_file() {
            out.push(ConfigFile {
                system,
                rel: "firewalld.conf".into(),
                display: conf.display().to_string(),
                text: std::fs::read_to_string(&conf).unwrap(),
            });
        }
        for kind in ["zones", "services", "ipsets", "policies"] {
            let Ok(list) = std::fs::read_dir(dir.join(kind)) else {
                continue;
            };
            let mut names: Vec<String> = list
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".xml"))
                .collect();
            names.sort();
            for n in names {
                let p = dir.join(kind).join(&n);
                out.push(ConfigFile {
                    system,
                    rel: format!("{kind}/{n}"),
                    display: p.display().to_string(),
                    text: std::fs::read_to_string(&p).unwrap(),
                });
            }
        }
    }
    out
}

/// Copies the regular files of a directory tree (symlinks followed, as firewalld reads them).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else if p.is_file() {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// A scratch firewalld configuration in root layout: `etc/firewalld` (what the generated script
/// and `firewall-offline-cmd --system-config` write) and a copy of this machine's
/// `/usr/lib/firewalld` (what `firewall-offline-cmd` reads the shipped zones and services from).
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc/firewalld");
        std::fs::create_dir_all(&etc).unwrap();
        // firewall-offline-cmd --system-config wants a firewalld.conf there.
        std::fs::write(etc.join("firewalld.conf"), "DefaultZone=public\n").unwrap();
        copy_tree(
            Path::new("/usr/lib/firewalld"),
            &dir.path().join("usr/lib/firewalld"),
        );
        Scratch { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn etc(&self) -> PathBuf {
        self.dir.path().join("etc/firewalld")
    }

    fn offline(&self, args: &[&str]) -> String {
        let out = Command::new("firewall-offline-cmd")
            .arg("--system-config")
            .arg(self.etc())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "firewall-offline-cmd {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the script `firewall --target firewalld --node NODE` writes, offline into etc.
    fn apply(&self, deployment: &str, node: &str) {
        let (code, script, err) = cli(&[
            "firewall",
            deployment,
            "--target",
            "firewalld",
            "--node",
            node,
        ]);
        assert_eq!(code, 0, "{err}");
        self.run_script(&script, &format!("{deployment} {node}"));
    }

    /// Runs a generated firewalld script offline into etc.
    fn run_script(&self, script: &str, what: &str) {
        let file = self.root().join("rules.sh");
        std::fs::write(&file, script).unwrap();
        let out = Command::new("sh")
            .arg(&file)
            .env("FIREWALLD_DIR", self.etc())
            .env_remove("ZONE")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{what}: the script failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The text export of docs/audit.md, made with `firewall-offline-cmd`. Only the services the
    /// zones name (and what those include) are exported: one call per service costs 0.2 s, and
    /// the reader needs no others.
    fn text_export(&self) -> String {
        let mut text = format!(
            "default-zone: {}",
            self.offline(&["--get-default-zone"]).trim()
        );
        text.push('\n');
        let mut zones = self.offline(&["--list-all-zones"]);
        zones.push_str(&self.offline(&["--list-all-policies"]));
        text.push_str(&zones);
        let mut todo: Vec<String> = Vec::new();
        for line in zones.lines() {
            let t = line.trim();
            if let Some(list) = t.strip_prefix("services:") {
                todo.extend(list.split_whitespace().map(str::to_string));
            }
            if let Some(i) = t.find("service name=\"") {
                let rest = &t[i + 14..];
                todo.push(rest[..rest.find('"').unwrap()].to_string());
            }
        }
        let mut done = BTreeSet::new();
        while let Some(s) = todo.pop() {
            if !done.insert(s.clone()) {
                continue;
            }
            let info = self.offline(&[&format!("--info-service={s}")]);
            for line in info.lines() {
                if let Some(list) = line.trim().strip_prefix("includes:") {
                    todo.extend(list.split_whitespace().map(str::to_string));
                }
            }
            text.push_str(&info);
        }
        for set in self.offline(&["--get-ipsets"]).split_whitespace() {
            text.push_str(&self.offline(&[&format!("--info-ipset={set}")]));
        }
        text
    }

    fn xml(&self) -> Ruleset {
        let files = config_files(self.root());
        audit::read_firewalld_dir("scratch", &files).unwrap_or_else(|e| panic!("{e}"))
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Our own generated configuration audits exact.

/// The audit's JSON report of a configuration directory.
fn audit_json(deployment: &str, node: &str, ruleset: &Path) -> (i32, serde_json::Value) {
    let (code, out, err) = cli(&[
        "audit",
        deployment,
        "--node",
        node,
        "--ruleset",
        &ruleset.display().to_string(),
        "--format",
        "json",
    ]);
    assert!(code == 0 || code == 1, "{deployment} {node}: {err}");
    (code, serde_json::from_str(&out).unwrap())
}

/// The generated rich rules admit every flow and nothing else, except what the default zone
/// `public` ships with: `ssh` from everywhere (and `dhcpv6-client`, which only IPv6 link-local
/// destinations see). With those two removed from the zone, the audit is exact (exit 0).
#[cfg_attr(
    not(scc_firewalld),
    ignore = "needs root and firewalld (firewall-offline-cmd)"
)]
#[test]
fn generated_configuration_audits_exact() {
    if !offline_usable() {
        return;
    }
    for (deployment, node) in GENERATED {
        let what = format!("{deployment} --node {node}");
        let s = Scratch::new();
        s.apply(deployment, node);
        let (code, report) = audit_json(deployment, node, s.root());
        let summary = &report["summary"];
        assert_eq!(summary["format"], "firewalld-xml", "{what}");
        assert!(summary["flows"].as_u64().unwrap() > 0, "{what}");
        assert_eq!(summary["admitted"], summary["flows"], "{what}: {summary}");
        assert_eq!(summary["undecided"], 0, "{what}");
        // The extras are exactly ssh (tcp/22) from everywhere to each of the node's addresses,
        // opened by the zone's service.
        let extra = report["extra"].as_array().unwrap();
        assert!(!extra.is_empty(), "{what}: the zone's ssh is open");
        // One row: the rule opens it to every address of the node.
        assert_eq!(extra.len(), 1, "{what}: {extra:?}");
        for e in extra {
            assert!(e.get("except").is_none(), "{what}: {e}");
            assert_eq!(
                (e["transport"].as_str(), e["ports"].as_str()),
                (Some("tcp"), Some("22")),
                "{what}: {e}"
            );
            assert!(
                e["rule"].as_str().unwrap().ends_with(": service ssh"),
                "{what}: {e}"
            );
        }
        let sources: BTreeSet<&str> = extra
            .iter()
            .flat_map(|e| e["sources"].as_array().unwrap())
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(sources, BTreeSet::from(["0.0.0.0/0"]), "{what}");
        assert_eq!(code, 1, "{what}");

        s.offline(&[
            "--zone=public",
            // `--remove-service` alone is firewall-offline-cmd's lokkit option.
            "--remove-service-from-zone=ssh",
            "--remove-service-from-zone=dhcpv6-client",
        ]);
        let (code, out, err) = cli(&[
            "audit",
            deployment,
            "--node",
            node,
            "--ruleset",
            &s.root().display().to_string(),
        ]);
        assert_eq!(code, 0, "{what}: {out}{err}");
        assert!(
            out.contains("the ruleset admits exactly the plan"),
            "{what}: {out}"
        );
        // An /etc/firewalld copy alone (no usr/lib): the services the zone names are all ours.
        let (code, out, err) = cli(&[
            "audit",
            deployment,
            "--node",
            node,
            "--ruleset",
            &s.etc().display().to_string(),
        ]);
        assert_eq!(code, 0, "{what} (etc only): {out}{err}");

        // The network firewall: a policy from ANY to ANY; the zones forward nothing else.
        let s = Scratch::new();
        let (code, script, err) =
            cli(&["firewall", deployment, "--target", "firewalld", "--network"]);
        assert_eq!(code, 0, "{err}");
        s.run_script(&script, &what);
        let (code, out, err) = cli(&[
            "audit",
            deployment,
            "--network",
            "--ruleset",
            &s.root().display().to_string(),
        ]);
        assert_eq!(code, 0, "{what} --network: {out}{err}");
        assert!(
            out.contains("the ruleset admits exactly the plan"),
            "{what}: {out}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 2. The text export and the XML files agree.

impl Rng {
    fn pick<T: Copy>(&mut self, list: &[T]) -> T {
        list[self.below(list.len())]
    }

    /// A new connection's first packet: a source of `sources`, a destination of its family (or
    /// itself), TCP or UDP, one of `ports` (one time in eight any port), to the host or through it
    /// (`--network`).
    fn packet(&mut self, sources: &[IpAddr], dests: &[IpAddr], ports: &[u16]) -> Packet {
        let src = self.pick(sources);
        let same: Vec<IpAddr> = dests
            .iter()
            .copied()
            .filter(|d| d.is_ipv4() == src.is_ipv4())
            .collect();
        Packet {
            src,
            dst: if same.is_empty() {
                src
            } else {
                self.pick(&same)
            },
            transport: if self.below(2) == 0 {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            sport: None,
            dport: if self.below(8) == 0 {
                1 + self.below(65535) as u16
            } else {
                self.pick(ports)
            },
            hook: if self.below(2) == 0 {
                Hook::Input
            } else {
                Hook::Forward
            },
            // Where it enters: the interfaces the last of [`mutations`] binds to zones, or
            // another (the default zone's).
            sides: audit::appliance::Sides::of(
                self.pick(&["eth0", "ens192", "ens224", "ens256", "ens2240"]),
                "",
            ),
        }
    }
}

fn num_addr(family: Family, n: u128) -> IpAddr {
    audit::num_addr(family, n)
}

/// Addresses worth probing: every boundary either reader's rules mention and its neighbour.
fn addresses(rulesets: &[&Ruleset], source: bool) -> Vec<IpAddr> {
    let mut out = BTreeSet::new();
    for rs in rulesets {
        for family in [Family::V4, Family::V6] {
            let mut cuts = Vec::new();
            rs.addr_cuts(family, source, &mut cuts);
            for c in cuts {
                out.insert(num_addr(family, c));
                out.insert(num_addr(family, c.saturating_sub(1)));
            }
        }
    }
    out.into_iter().collect()
}

fn kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Accept => "accept",
        Outcome::Drop => "drop",
        Outcome::Undecided(_) => "cannot decide",
    }
}

/// Compares both readers on `count` sampled packets; returns (packets, accepted, dropped,
/// undecided).
fn agree(text: &Ruleset, xml: &Ruleset, what: &str, seed: u64, count: usize) -> [usize; 4] {
    let both = [text, xml];
    let mut sources = addresses(&both, true);
    let mut dests = addresses(&both, false);
    let mut rng = Rng(seed.max(1));
    for _ in 0..16 {
        sources.push(IpAddr::V4((rng.next() as u32).into()));
        dests.push(IpAddr::V4((rng.next() as u32).into()));
    }
    for a in [
        "10.88.1.11",
        "10.88.1.100",
        "10.88.1.101",
        "fe80::1",
        "fd00::1",
    ] {
        dests.push(a.parse().unwrap());
        sources.push(a.parse().unwrap());
    }
    let mut cuts = Vec::new();
    text.port_cuts(&mut cuts);
    xml.port_cuts(&mut cuts);
    let mut ports: Vec<u16> = cuts
        .iter()
        .flat_map(|&c| [c, c.saturating_sub(1)])
        .filter_map(|c| u16::try_from(c).ok())
        .filter(|&p| p > 0)
        .collect();
    ports.extend([22, 546, 5353, 9090]);
    let mut tally = [0; 4];
    for _ in 0..count {
        let p = rng.packet(&sources, &dests, &ports);
        let (a, b) = (text.evaluate(&p), xml.evaluate(&p));
        assert_eq!(
            kind(&a.outcome),
            kind(&b.outcome),
            "{what}: {p:?}\n  text: {a:?}\n  xml:  {b:?}"
        );
        tally[0] += 1;
        tally[match a.outcome {
            Outcome::Accept => 1,
            Outcome::Drop => 2,
            Outcome::Undecided(_) => 3,
        }] += 1;
    }
    tally
}

/// A packet and the verdict a change must give it: (source, destination, transport, port,
/// accept / drop / cannot decide).
type Spot = (&'static str, &'static str, Transport, u16, &'static str);

/// Per step of [`mutations`], packets whose verdict shows the step took effect.
fn spots() -> Vec<Vec<Spot>> {
    use Transport::{Tcp, Udp};
    let (ext, app, core, voice) = ("203.0.113.9", "10.88.1.11", "10.88.1.100", "10.88.1.101");
    vec![
        vec![
            (ext, app, Tcp, 21003, "accept"),
            (ext, app, Udp, 7005, "accept"),
            (ext, app, Udp, 7011, "cannot decide"), // source port 7100/udp
            (ext, app, Tcp, 7011, "drop"),
        ],
        vec![
            ("10.88.2.70", core, Tcp, 21002, "drop"),
            ("10.88.2.7", core, Tcp, 21002, "accept"),
            ("10.88.1.5", core, Tcp, 21017, "drop"),
            ("10.88.1.200", core, Tcp, 21017, "accept"),
            (ext, voice, Tcp, 8050, "accept"),
        ],
        vec![
            ("10.88.2.130", app, Tcp, 12345, "accept"),
            ("10.88.9.7", app, Udp, 9050, "accept"),
            ("10.88.4.9", app, Tcp, 22, "drop"),
            ("fd00::5", "fd00::1", Tcp, 22, "drop"),
        ],
        vec![
            ("10.88.2.5", core, Tcp, 21002, "drop"),
            ("10.88.2.20", core, Tcp, 21002, "accept"),
            (ext, app, Tcp, 12345, "accept"),
            ("10.88.4.9", app, Tcp, 22, "accept"),
        ],
        vec![],
        vec![
            (ext, app, Tcp, 8443, "cannot decide"),
            ("10.88.6.7", app, Tcp, 4000, "cannot decide"),
        ],
        // Without its input interface, a packet from no source zone goes to a zone by interface
        // or to the default zone: which is not known; a source zone still decides.
        vec![
            (ext, app, Tcp, 9300, "cannot decide"),
            ("10.88.2.130", app, Tcp, 9300, "accept"),
        ],
    ]
}

/// Hand-made changes on top of the lab's generated configuration, applied in turn (each step
/// keeps the ones before): (what, firewall-offline-cmd calls).
fn mutations() -> Vec<(&'static str, Vec<Vec<&'static str>>)> {
    vec![
        (
            "an added port and a source port",
            vec![
                vec!["--zone=public", "--add-port=21003/tcp"],
                vec!["--zone=public", "--add-port=7000-7010/udp"],
                vec!["--zone=public", "--add-source-port=7100/udp"],
            ],
        ),
        (
            "rich rules that drop and reject, one with NOT, one with a priority",
            vec![vec![
                "--zone=public",
                "--add-rich-rule=rule family=\"ipv4\" source address=\"10.88.2.64/26\" drop",
                "--add-rich-rule=rule priority=\"-5\" family=\"ipv4\" source address=\"10.88.1.0/25\" port port=\"21000-21020\" protocol=\"tcp\" reject",
                "--add-rich-rule=rule family=\"ipv4\" source NOT address=\"10.88.1.0/24\" destination address=\"10.88.1.100\" port port=\"21017\" protocol=\"tcp\" drop",
                "--add-rich-rule=rule priority=\"5\" family=\"ipv4\" port port=\"8000-8100\" protocol=\"tcp\" accept",
            ]],
        ),
        (
            "zones by source address and by ipset (hash:net, hash:ip, IPv6)",
            vec![
                vec!["--zone=trusted", "--add-source=10.88.2.128/26"],
                vec!["--new-ipset=adm", "--type=hash:net"],
                vec![
                    "--ipset=adm",
                    "--add-entry=10.88.3.0/25",
                    "--add-entry=10.88.9.0/24",
                ],
                vec!["--new-ipset=one", "--type=hash:ip"],
                vec!["--ipset=one", "--add-entry=10.88.4.9"],
                vec![
                    "--new-ipset=six",
                    "--type=hash:net",
                    "--option=family=inet6",
                ],
                vec!["--ipset=six", "--add-entry=fd00::/64"],
                vec!["--zone=work", "--add-source=ipset:adm"],
                vec!["--zone=work", "--add-port=9000-9100/udp"],
                vec![
                    "--zone=drop",
                    "--add-source=ipset:one",
                    "--add-source=ipset:six",
                ],
                vec![
                    "--zone=public",
                    "--add-rich-rule=rule family=\"ipv4\" source ipset=\"adm\" destination address=\"10.88.1.101\" service name=\"ssh\" accept",
                    "--add-rich-rule=rule family=\"ipv6\" source ipset=\"six\" service name=\"mdns\" accept",
                ],
            ],
        ),
        (
            "policies to the host: from a zone by ipset, from ANY with a reject before the zones",
            vec![
                vec!["--new-policy=mgmt"],
                vec!["--policy=mgmt", "--add-ingress-zone=work"],
                vec!["--policy=mgmt", "--add-egress-zone=HOST"],
                vec!["--policy=mgmt", "--set-priority=10"],
                vec!["--policy=mgmt", "--add-port=9200/tcp"],
                vec!["--new-policy=early"],
                vec!["--policy=early", "--add-ingress-zone=ANY"],
                vec!["--policy=early", "--add-egress-zone=HOST"],
                vec!["--policy=early", "--set-priority=-50"],
                vec![
                    "--policy=early",
                    "--add-rich-rule=rule family=\"ipv4\" source address=\"10.88.2.0/28\" reject",
                ],
                vec!["--new-policy=late"],
                vec!["--policy=late", "--add-ingress-zone=ANY"],
                vec!["--policy=late", "--add-egress-zone=HOST"],
                vec!["--policy=late", "--set-target=ACCEPT"],
                vec!["--policy=late", "--set-priority=100"],
            ],
        ),
        (
            "forwarded traffic: a policy between zones, a zone that forwards to its own sources",
            vec![
                vec!["--new-policy=fwd"],
                vec!["--policy=fwd", "--add-ingress-zone=work"],
                vec!["--policy=fwd", "--add-egress-zone=trusted"],
                vec!["--policy=fwd", "--set-priority=-20"],
                vec!["--policy=fwd", "--add-port=6000-6100/tcp"],
                vec!["--zone=internal", "--add-source=10.88.7.0/24"],
                vec!["--new-policy=fwd-late"],
                vec!["--policy=fwd-late", "--add-ingress-zone=ANY"],
                vec!["--policy=fwd-late", "--add-egress-zone=internal"],
                vec!["--policy=fwd-late", "--set-target=DROP"],
            ],
        ),
        (
            "what neither reader decides: a hash:ip,port set, a forward port, a limit",
            vec![
                vec!["--new-ipset=pp", "--type=hash:ip,port"],
                vec!["--ipset=pp", "--add-entry=10.88.4.9,udp:5062"],
                vec![
                    "--zone=public",
                    "--add-forward-port=port=8443:proto=tcp:toport=443",
                ],
                vec![
                    "--zone=public",
                    "--add-rich-rule=rule family=\"ipv4\" source ipset=\"pp\" accept",
                    "--add-rich-rule=rule family=\"ipv4\" source address=\"10.88.6.0/24\" port port=\"4000\" protocol=\"tcp\" accept limit value=\"5/m\"",
                ],
            ],
        ),
        (
            "zones by input interface: two interfaces into one zone, one into another",
            vec![
                vec!["--zone=internal", "--add-interface=ens224"],
                vec!["--zone=internal", "--add-port=9300-9310/tcp"],
                vec!["--zone=dmz", "--add-interface=ens192"],
                vec!["--zone=dmz", "--add-interface=ens256"],
                vec!["--zone=dmz", "--add-port=9400/udp"],
                vec!["--zone=dmz", "--add-port=9300/tcp"],
            ],
        ),
    ]
}

#[cfg_attr(
    not(scc_firewalld),
    ignore = "needs root and firewalld (firewall-offline-cmd)"
)]
#[test]
fn text_and_xml_agree_packet_by_packet() {
    if !offline_usable() {
        return;
    }
    const PACKETS: usize = 4000;
    let mut total = [0; 4];
    let mut check = |s: &Scratch, what: &str, seed: u64, spots: &[Spot]| {
        let export = s.text_export();
        let text = audit::read("export.txt", &export).unwrap_or_else(|e| panic!("{what}: {e}"));
        let xml = s.xml();
        // The change took effect, in both (so agreeing is not both ignoring it).
        for &(src, dst, t, port, want) in spots {
            for rs in [&text, &xml] {
                let got = verdict(rs, src, dst, t, port);
                assert_eq!(
                    kind(&got),
                    want,
                    "{what}: {src} -> {dst} {t:?}/{port} ({}): {got:?}",
                    rs.format.as_str()
                );
            }
        }
        assert_eq!(text.format.as_str(), "firewalld");
        assert_eq!(xml.format.as_str(), "firewalld-xml");
        let t = agree(&text, &xml, what, seed, PACKETS);
        assert!(
            t[1] > 0 && t[2] > 0,
            "{what}: a sample that never accepts or never drops: {t:?}"
        );
        for (a, b) in total.iter_mut().zip(t) {
            *a += b;
        }
    };
    for (i, (deployment, node)) in GENERATED.iter().enumerate() {
        let s = Scratch::new();
        s.apply(deployment, node);
        check(
            &s,
            &format!("{deployment} --node {node}"),
            11 + i as u64,
            &[],
        );
    }
    // The hand-written /etc/firewalld of the goldens, over this machine's /usr/lib/firewalld.
    let s = Scratch::new();
    copy_tree(
        &Path::new(ROOT).join(FIXTURE).join("etc/firewalld"),
        &s.etc(),
    );
    s.offline(&["--check-config"]);
    check(&s, "the goldens' /etc/firewalld", 7, &[]);
    let s = Scratch::new();
    s.apply(LAB, "APP1");
    for (i, ((what, calls), spots)) in mutations().into_iter().zip(spots()).enumerate() {
        for c in calls {
            s.offline(&c);
        }
        check(&s, what, 101 + i as u64, &spots);
    }
    eprintln!(
        "text and XML agree on {} packets ({} accepted, {} dropped, {} cannot decide)",
        total[0], total[1], total[2], total[3]
    );
    assert!(total[3] > 0, "the undecidable constructs were reached");
}

// ---------------------------------------------------------------------------------------------
// 2b. The XML reader agrees with firewalld itself.

/// firewalld run on a configuration in a network namespace of its own, on a private D-Bus
/// (the host's firewall and bus are never touched): what it compiled, as `nft -j list ruleset`.
/// The rules `ct status dnat accept` are left out: they admit connections that firewalld's own
/// destination NAT rewrote, which no packet of the comparison is.
fn firewalld_compiles(s: &Scratch) -> Ruleset {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus");
    // The system bus configuration (which lets firewalld own its name), on a socket of ours.
    let conf = std::fs::read_to_string("/usr/share/dbus-1/system.conf")
        .unwrap()
        .replace("<user>messagebus</user>", "")
        .replace("<pidfile>/run/dbus/pid</pidfile>", "")
        .replace("<type>system</type>", "<type>custom</type>")
        .replace(
            "<listen>unix:path=/run/dbus/system_bus_socket</listen>",
            &format!("<listen>unix:path={}</listen>", socket.display()),
        )
        .replace(
            "<includedir>system.d</includedir>",
            "<includedir>/usr/share/dbus-1/system.d</includedir>",
        );
    std::fs::write(dir.path().join("bus.conf"), conf).unwrap();
    /// Kills and reaps a child on every way out.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _bus = Reap(
        Command::new("dbus-daemon")
            .arg(format!(
                "--config-file={}",
                dir.path().join("bus.conf").display()
            ))
            .args(["--nofork", "--nopidfile"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let address = format!("unix:path={}", socket.display());
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "dbus-daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let ns = common::netns::Netns::new().unwrap();
    let log = dir.path().join("firewalld.log");
    let _fw = Reap(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "firewalld",
                "--nofork",
                "--nopid",
            ])
            .arg("--system-config")
            .arg(s.etc())
            .arg("--default-config")
            .arg(s.root().join("usr/lib/firewalld"))
            .args(["--log-target", "file", "--log-file"])
            .arg(&log)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Running when firewall-cmd (on the same bus) says so; the rules are in place then.
    let start = Instant::now();
    loop {
        let state = Command::new("ip")
            .args(["netns", "exec", ns.name(), "firewall-cmd", "--state"])
            .env("DBUS_SYSTEM_BUS_ADDRESS", &address)
            .output()
            .unwrap();
        if String::from_utf8_lossy(&state.stdout).trim() == "running" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "firewalld did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), "nft", "-j", "list", "ruleset"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dnat = serde_json::json!({"ct": {"key": "status"}});
    json["nftables"].as_array_mut().unwrap().retain(|o| {
        !o["rule"]["expr"]
            .as_array()
            .is_some_and(|e| e.iter().any(|x| x["match"]["left"] == dnat))
    });
    audit::read("firewalld.json", &json.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

/// Compares where both decide: (compared, left out because one of them cannot decide).
fn agree_where_decided(live: &Ruleset, xml: &Ruleset, what: &str, seed: u64) -> (usize, usize) {
    let both = [live, xml];
    let mut sources = addresses(&both, true);
    let mut dests = addresses(&both, false);
    let mut rng = Rng(seed);
    for _ in 0..16 {
        sources.push(IpAddr::V4((rng.next() as u32).into()));
    }
    for a in [
        "10.88.1.11",
        "10.88.1.100",
        "10.88.1.101",
        "10.1.0.21",
        "10.1.0.11",
    ] {
        dests.push(a.parse().unwrap());
    }
    let mut cuts = Vec::new();
    xml.port_cuts(&mut cuts);
    let ports: Vec<u16> = cuts
        .iter()
        .flat_map(|&c| [c, c.saturating_sub(1)])
        .filter_map(|c| u16::try_from(c).ok())
        .filter(|&p| p > 0)
        .chain([22, 546, 9090, 9100])
        .collect();
    let (mut compared, mut left) = (0, 0);
    for _ in 0..4000 {
        let p = rng.packet(&sources, &dests, &ports);
        let (a, b) = (live.evaluate(&p), xml.evaluate(&p));
        if matches!(a.outcome, Outcome::Undecided(_)) || matches!(b.outcome, Outcome::Undecided(_))
        {
            left += 1;
            continue;
        }
        assert_eq!(
            a.outcome, b.outcome,
            "{what}: {p:?}\n  firewalld: {a:?}\n  xml:       {b:?}"
        );
        compared += 1;
    }
    (compared, left)
}

/// The XML reader's model of firewalld against firewalld itself: the configurations of the
/// tests above, loaded by a real firewalld, exported from the kernel, and read by the nftables
/// reader (which tests/audit.rs checks against real packets); wherever both decide, the same
/// verdict.
#[cfg_attr(
    not(all(scc_firewalld, scc_netns)),
    ignore = "needs root, firewalld, dbus-daemon, iproute2 and nftables"
)]
#[test]
fn xml_agrees_with_firewalld_itself() {
    if !offline_usable() || !common::netns::available("xml_agrees_with_firewalld_itself") {
        return;
    }
    let mut total = (0, 0);
    let mut check = |s: &Scratch, what: &str, seed: u64| {
        let live = firewalld_compiles(s);
        let xml = s.xml();
        let (c, l) = agree_where_decided(&live, &xml, what, seed);
        // The last configuration has a source port on the zone: most UDP cannot be decided.
        assert!(
            c >= 500,
            "{what}: only {c} packets decided by both ({l} left out)"
        );
        total.0 += c;
        total.1 += l;
    };
    let s = Scratch::new();
    s.apply(LAB, "APP1");
    check(&s, "the lab's generated configuration", 21);
    let s = Scratch::new();
    s.apply("examples/services.toml", "DB1");
    check(&s, "services DB1 (an ipset)", 22);
    let s = Scratch::new();
    let (code, script, err) = cli(&["firewall", LAB, "--target", "firewalld", "--network"]);
    assert_eq!(code, 0, "{err}");
    s.run_script(&script, "the lab's --network");
    check(
        &s,
        "the lab's generated network configuration (a policy ANY to ANY)",
        25,
    );
    let s = Scratch::new();
    copy_tree(
        &Path::new(ROOT).join(FIXTURE).join("etc/firewalld"),
        &s.etc(),
    );
    check(&s, "the goldens' /etc/firewalld", 23);
    let s = Scratch::new();
    s.apply(LAB, "APP1");
    for (_, calls) in mutations() {
        for c in calls {
            s.offline(&c);
        }
    }
    check(&s, "the lab after every hand-made change", 24);
    eprintln!(
        "firewalld and the XML reader agree on {} packets ({} left out: one of them cannot decide)",
        total.0, total.1
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Goldens and the rules of precedence.

#[test]
fn golden_firewalld_xml() {
    for format in ["table", "json"] {
        let (code, out, err) = cli(&[
            "audit",
            LAB,
            "--node",
            "APP1",
            "--ruleset",
            FIXTURE,
            "--format",
            format,
        ]);
        assert_eq!(code, 1, "{err}");
        insta::assert_snapshot!(format!("audit_firewalld_xml_dir_{format}"), out);
    }
    // One zone file alone: the services it names are not defined, so they cannot be decided.
    let zone = "tests/audit/firewalld-zone.xml";
    let (code, out, err) = cli(&["audit", LAB, "--node", "APP1", "--ruleset", zone]);
    assert_eq!(code, 1, "{err}");
    insta::assert_snapshot!("audit_firewalld_xml_one_zone", out);
}

#[test]
fn golden_firewalld_xml_bad_inputs() {
    for bad in [
        "bad/firewalld-malformed.xml",
        "bad/firewalld-service.xml",
        "bad/firewalld-port",
        "bad/firewalld-rule",
        "bad/firewalld-nodefault",
        "bad",
    ] {
        let path = format!("tests/audit/{bad}");
        let (code, out, err) = cli(&["audit", LAB, "--node", "APP1", "--ruleset", &path]);
        assert_eq!(code, 2, "{bad}: {out}");
        assert!(out.is_empty(), "{bad}: output on bad input");
        let name = bad.replace(['/', '.', '-'], "_");
        insta::assert_snapshot!(format!("audit_firewalld_xml_{name}"), err);
    }
}

/// The text export's ipset blocks (`--info-ipset`), tab-continued lists (`forward-ports:`), a
/// limit on a log (not on the verdict), and the types and entries an ipset may have.
#[test]
fn text_export_ipsets_and_continued_lists() {
    let text = [
        "default-zone: public",
        "public (active)",
        "  target: default",
        "  icmp-block-inversion: no",
        "  interfaces: ",
        "  sources: ",
        "  services: ",
        "  ports: ",
        "  forward-ports: ",
        "\tport=8443:proto=tcp:toport=443:toaddr=",
        "  source-ports: ",
        "  rich rules: ",
        "\trule family=\"ipv4\" source ipset=\"admins\" port port=\"22\" protocol=\"tcp\" log prefix=\"ssh \" level=\"info\" limit value=\"1/m\" accept",
        "\trule family=\"ipv4\" source ipset=\"pairs\" port port=\"23\" protocol=\"tcp\" accept",
        "\trule family=\"ipv4\" source ipset=\"bad\" port port=\"24\" protocol=\"tcp\" accept",
        "\trule family=\"ipv4\" source address=\"10.9.0.0/16\" port port=\"25\" protocol=\"tcp\" accept limit value=\"1/m\"",
        "trusted",
        "  target: ACCEPT",
        "  icmp-block-inversion: no",
        "  sources: ipset:six",
        "admins",
        "  type: hash:net",
        "  options: ",
        "  entries: 10.3.0.0/24 10.4.0.8/31",
        "six",
        "  type: hash:ip",
        "  options: family=inet6 maxelem=65536",
        "  entries: fd00::1 fd00::2",
        "pairs",
        "  type: hash:ip,port",
        "  options: ",
        "  entries: 10.5.0.1,tcp:23",
        "bad",
        "  type: hash:net",
        "  options: ",
        "  entries: 10.6.0.1-10.6.0.9",
    ]
    .join("\n");
    let rs = audit::read("fw.txt", &text).unwrap_or_else(|e| panic!("{e}"));
    let tcp = Transport::Tcp;
    let undecided = |o: Outcome| matches!(o, Outcome::Undecided(_));
    assert_eq!(
        verdict(&rs, "10.3.0.7", "10.0.0.1", tcp, 22),
        Outcome::Accept
    );
    assert_eq!(
        verdict(&rs, "10.4.0.9", "10.0.0.1", tcp, 22),
        Outcome::Accept
    );
    assert_eq!(
        verdict(&rs, "10.4.0.10", "10.0.0.1", tcp, 22),
        Outcome::Drop
    );
    assert!(undecided(verdict(&rs, "10.5.0.1", "10.0.0.1", tcp, 23)));
    // A range entry: firewalld's nftables backend fails to load it (and falls back to its stock
    // configuration), so what the set decides cannot be decided.
    assert!(undecided(verdict(&rs, "10.6.0.1", "10.0.0.1", tcp, 24)));
    // A limit on the verdict cannot be decided; elsewhere the rule does not match.
    assert!(undecided(verdict(&rs, "10.9.0.1", "10.0.0.1", tcp, 25)));
    assert_eq!(verdict(&rs, "10.8.0.1", "10.0.0.1", tcp, 25), Outcome::Drop);
    // The forward port, from the line after `forward-ports:`.
    assert!(undecided(verdict(&rs, "10.8.0.1", "10.0.0.1", tcp, 8443)));
    // An IPv6 hash:ip set as a zone source.
    assert_eq!(
        verdict(&rs, "fd00::2", "fd00::9", tcp, 1234),
        Outcome::Accept
    );
    assert_eq!(verdict(&rs, "fd00::3", "fd00::9", tcp, 1234), Outcome::Drop);
}

/// Names and text from the files never reach the terminal raw: a zone file named with an escape
/// sequence, a rich rule value with one.
#[cfg(unix)]
#[test]
fn hostile_names_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir_all(&zones).unwrap();
    std::fs::write(
        dir.path().join("firewalld.conf"),
        "DefaultZone=x\u{1b}]0;pwned\u{7}\n",
    )
    .unwrap();
    let zone = "<zone><rule><source address=\"10.88.1.0/24\"/><log prefix=\"\u{9b}31m\u{202e}\"/><accept/></rule></zone>";
    std::fs::write(zones.join("x\u{1b}]0;pwned\u{7}.xml"), zone).unwrap();
    for format in ["table", "json"] {
        let (code, out, err) = cli(&[
            "audit",
            LAB,
            "--node",
            "APP1",
            "--ruleset",
            &dir.path().display().to_string(),
            "--format",
            format,
        ]);
        assert_eq!(code, 1, "{err}");
        assert!(out.contains("pwned"), "{out}");
        for c in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}'] {
            assert!(!out.contains(c), "{c:?} in {out}");
        }
    }
}

/// A configuration directory is read within bounds: a FIFO, a device, a symlink loop or a
/// directory in the place of a file is an error naming it (exit 2), never a hang; backups and
/// subdirectories are not read.
#[cfg(unix)]
#[test]
fn directory_input_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let zones = dir.path().join("zones");
    std::fs::create_dir_all(zones.join("nested")).unwrap();
    let zone = "<zone><port port=\"21012\" protocol=\"tcp\"/></zone>";
    std::fs::write(zones.join("public.xml"), zone).unwrap();
    // Not read: a backup and a file in a subdirectory (both malformed, so reading them fails).
    std::fs::write(zones.join("public.xml.old"), "<zone>").unwrap();
    std::fs::write(zones.join("nested/x.xml"), "<zone>").unwrap();
    let audit = |what: &str| {
        eprintln!("case: {what}");
        cli(&[
            "audit",
            LAB,
            "--node",
            "APP1",
            "--ruleset",
            &dir.path().display().to_string(),
        ])
    };
    let (code, out, err) = audit("a clean directory");
    assert_eq!(code, 1, "{err}");
    assert!(out.contains("firewalld-xml"), "{out}");
    let bad = zones.join("bad.xml");
    let fifo = std::ffi::CString::new(bad.display().to_string()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let (code, _, err) = audit("a FIFO");
    assert_eq!(code, 2);
    assert!(
        err.contains("bad.xml") && err.contains("not a regular file"),
        "{err}"
    );
    std::fs::remove_file(&bad).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &bad).unwrap();
    let (code, _, err) = audit("a device");
    assert_eq!(code, 2);
    assert!(err.contains("not a regular file"), "{err}");
    std::fs::remove_file(&bad).unwrap();
    std::os::unix::fs::symlink(&bad, &bad).unwrap();
    let (code, _, err) = audit("a symlink loop");
    assert_eq!(code, 2);
    assert!(err.contains("bad.xml"), "{err}");
    std::fs::remove_file(&bad).unwrap();
    std::fs::create_dir(&bad).unwrap();
    let (code, _, err) = audit("a directory");
    assert_eq!(code, 2);
    assert!(err.contains("not a regular file"), "{err}");
}

fn fixture() -> Ruleset {
    audit::read_firewalld_dir(FIXTURE, &config_files(&Path::new(ROOT).join(FIXTURE)))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn verdict(rs: &Ruleset, src: &str, dst: &str, t: Transport, port: u16) -> Outcome {
    rs.evaluate(&Packet {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        transport: t,
        sport: None,
        dport: port,
        hook: Hook::Input,
        sides: Default::default(),
    })
    .outcome
}

/// etc/firewalld overrides usr/lib/firewalld, file by file; DefaultZone comes from etc.
#[test]
fn etc_overrides_usr_lib() {
    let rs = fixture();
    let (tcp, udp) = (Transport::Tcp, Transport::Udp);
    let (accept, drop) = (Outcome::Accept, Outcome::Drop);
    // (source, destination, transport, port, verdict, why)
    #[rustfmt::skip]
    let cases = [
        ("10.88.5.5", "10.88.1.11", tcp, 22, &drop,
         "the shipped public zone opens ssh to everyone; the site's copy does not"),
        ("10.88.3.200", "10.88.1.11", tcp, 22, &accept,
         "ssh from the admins zone (an ipset of two networks)"),
        ("10.88.3.5", "10.88.1.11", tcp, 22, &accept, "the ipset's other network"),
        ("10.88.3.5", "10.88.1.100", tcp, 9091, &accept,
         "the site's cockpit is 9091, not the shipped 9090"),
        ("10.88.3.5", "10.88.1.100", tcp, 9090, &drop, "the shipped cockpit port"),
        ("10.88.3.5", "10.88.1.11", tcp, 9091, &drop,
         "cockpit not to 10.88.1.11 (NOT destination)"),
        ("fe80::1", "fe80::2", udp, 546, &accept,
         "the default zone is etc's `public` (dhcpv6-client), not usr/lib's `drop`"),
        ("fd00:88:3::9", "fd00::1", tcp, 22, &accept,
         "an IPv6 ipset source (admins6) sends its addresses to the admins zone"),
        ("fd00:88:4::9", "fd00::1", tcp, 22, &drop, "outside admins6"),
    ];
    for (src, dst, t, port, want, why) in cases {
        assert_eq!(
            &verdict(&rs, src, dst, t, port),
            want,
            "{why}: {src} -> {dst} {t:?}/{port}"
        );
    }
    // Without etc, usr/lib alone: DefaultZone=drop, the shipped public with ssh is not default.
    let system: Vec<ConfigFile> = config_files(&Path::new(ROOT).join(FIXTURE))
        .into_iter()
        .filter(|f| f.system)
        .collect();
    let rs = audit::read_firewalld_dir("usr", &system).unwrap();
    assert_eq!(
        verdict(&rs, "10.88.5.5", "10.88.1.11", tcp, 22),
        Outcome::Drop
    );
    assert!(
        rs.chains[0]
            .rules
            .last()
            .unwrap()
            .origin
            .ends_with("default zone drop")
    );
}

// ---------------------------------------------------------------------------------------------
// 4. No XML makes the reader panic.

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Fragments that reach deep into the reader when spliced into real files.
    const FRAGMENTS: &[&str] = &[
        "<",
        ">",
        "/>",
        "\"",
        "=",
        "&amp;",
        "&bogus;",
        "<rule>",
        "</rule>",
        "<rule family=\"ipv6\" priority=\"x\">",
        "<source ipset=\"nosuch\"/>",
        "<source address=\"10.0.0.0/33\"/>",
        "<source mac=\"00:11:22:33:44:55\"/>",
        "<destination ipset=\"admins\" invert=\"True\"/>",
        "<port port=\"65536\" protocol=\"tcp\"/>",
        "<port port=\"\" protocol=\"esp\"/>",
        "<port port=\"9-1\" protocol=\"udp\"/>",
        "<source-port port=\"1-65535\" protocol=\"udp\"/>",
        "<protocol value=\"gre\"/>",
        "<service name=\"scc-ports-hac-admins\"/>",
        "<include service=\"ssh\"/>",
        "<include service=\"cockpit\"/>",
        "<entry>10.1.1.1-10.1.1.0</entry>",
        "<entry>::1</entry>",
        "<option name=\"family\" value=\"inet7\"/>",
        "<accept><limit value=\"1/m\"/></accept>",
        "<reject type=\"icmp-host-prohibited\"/>",
        "<log prefix=\"x\"><limit value=\"1/s\"/></log>",
        "<mark set=\"1\"/>",
        "<zone target=\"ACCEPT\" ingress-priority=\"-9999999999999999999999\">",
        "<interface name=\"eth0\"/>",
        "<forward-port port=\"80\" protocol=\"tcp\" to-port=\"8080\"/>",
        "<!DOCTYPE zone [<!ENTITY a \"aaaaaaaa\">]>",
        "<unknown/>",
        "\u{0}",
        "é",
        "\u{feff}",
    ];

    fn mutate(text: &str, edits: &[(usize, usize, usize)]) -> String {
        let mut s = text.to_string();
        for &(at, cut, frag) in edits {
            let mut at = at % (s.len() + 1);
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            let mut end = (at + cut % 24).min(s.len());
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.replace_range(at..end, FRAGMENTS[frag % FRAGMENTS.len()]);
        }
        s
    }

    fn evaluate_some(rs: &Ruleset) {
        for src in ["10.88.3.5", "10.88.1.20", "fd00:88:3::1", "203.0.113.9"] {
            for port in [22, 5062, 9091, 21002] {
                let dst = if src.contains(':') {
                    "fd00::1"
                } else {
                    "10.88.1.11"
                };
                for t in [Transport::Tcp, Transport::Udp] {
                    let _ = verdict(rs, src, dst, t, port);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn mutated_xml_never_panics(
            file in 0usize..64,
            edits in prop::collection::vec((0usize..4096, 0usize..64, 0usize..64), 1..6),
        ) {
            let mut files = config_files(&Path::new(ROOT).join(FIXTURE));
            let i = file % files.len();
            files[i].text = mutate(&files[i].text, &edits);
            if let Ok(rs) = audit::read_firewalld_dir("x", &files) {
                evaluate_some(&rs);
            }
            if let Ok(rs) = audit::read("one.xml", &files[i].text) {
                evaluate_some(&rs);
            }
        }

        #[test]
        fn arbitrary_text_as_a_zone_file_never_panics(text in "\\PC{0,200}") {
            let doc = format!("<?xml version=\"1.0\"?>\n<zone>{text}</zone>");
            if let Ok(rs) = audit::read("z.xml", &doc) {
                evaluate_some(&rs);
            }
        }
    }
}
