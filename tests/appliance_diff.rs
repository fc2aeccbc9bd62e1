//! `firewall --network --diff` of an appliance's configuration (Cisco ASA running-config, PAN-OS
//! `set`): the Aerleon renderings of every example's network policy, mutated (a planned rule
//! removed, a port range widened, permits beyond the plan added, an unrelated rule added), are
//! diffed; the diff's commands are carried out on the configuration text by the appliers below
//! (one per command form the diff writes) and the result is audited again: exactly the plan,
//! with the unrelated rule still there. Goldens of hand-written configurations in each vendor's
//! style, and hostile names.

mod common;

use std::path::Path;

/// A rule to an address outside every plan: never touched by a diff.
const UNRELATED: &str = "198.51.100.77";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Vendor {
    Asa,
    Panos,
}

// ---------------------------------------------------------------------------------------------
// Appliers: the command forms the diff writes, carried out on the configuration's text.

/// The words of a PAN-OS `set` line, double-quoted words kept whole (quotes dropped).
fn pan_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
        } else if c == '"' {
            chars.next();
            out.push(chars.by_ref().take_while(|x| *x != '"').collect());
        } else {
            let mut w = String::new();
            while let Some(&x) = chars.peek() {
                if x == ' ' {
                    break;
                }
                w.push(x);
                chars.next();
            }
            out.push(w);
        }
    }
    out
}

/// The rule a PAN-OS line belongs to (`… security rules NAME …`).
fn pan_rule(line: &str) -> Option<String> {
    let w = pan_words(line);
    let i = w
        .windows(2)
        .position(|p| p[0] == "security" && p[1] == "rules")?;
    w.get(i + 2).cloned()
}

fn apply_panos(config: &str, fix: &str) -> String {
    let mut lines: Vec<String> = config.lines().map(str::to_string).collect();
    for cmd in fix.lines() {
        if cmd.is_empty() || cmd.starts_with('#') {
            continue;
        }
        let w = pan_words(cmd);
        match w[0].as_str() {
            "set" => lines.push(cmd.to_string()),
            "delete" => {
                let name = pan_rule(cmd).expect("delete names a rule");
                let before = lines.len();
                lines.retain(|l| !l.starts_with("set ") || pan_rule(l).as_deref() != Some(&name));
                assert!(
                    lines.len() < before,
                    "delete of a rule that is not there: {cmd}"
                );
            }
            "move" => {
                let name = pan_rule(cmd).expect("move names a rule");
                assert_eq!(w[w.len() - 2], "before", "{cmd}");
                let other = w[w.len() - 1].clone();
                let (moved, mut rest): (Vec<String>, Vec<String>) = lines
                    .into_iter()
                    .partition(|l| pan_rule(l).as_deref() == Some(&name));
                assert!(!moved.is_empty(), "move of a rule that is not there: {cmd}");
                let at = rest
                    .iter()
                    .position(|l| pan_rule(l).as_deref() == Some(&other))
                    .unwrap_or_else(|| panic!("move before a rule that is not there: {cmd}"));
                for (i, l) in moved.into_iter().enumerate() {
                    rest.insert(at + i, l);
                }
                lines = rest;
            }
            _ => panic!("a PAN-OS command the applier does not know: {cmd}"),
        }
    }
    lines.join("\n") + "\n"
}

fn acl_of(line: &str) -> Option<&str> {
    let mut w = line.split_whitespace();
    (w.next() == Some("access-list"))
        .then(|| w.next())
        .flatten()
}

fn apply_asa(config: &str, fix: &str) -> String {
    let mut lines: Vec<String> = config.lines().map(str::to_string).collect();
    let mut group: Vec<String> = Vec::new();
    let flush = |lines: &mut Vec<String>, group: &mut Vec<String>| {
        let at = lines
            .iter()
            .position(|l| l.starts_with("access-list "))
            .unwrap_or(lines.len());
        for (i, l) in group.drain(..).enumerate() {
            lines.insert(at + i, l);
        }
    };
    for cmd in fix.lines() {
        if cmd.starts_with(' ') {
            assert!(!group.is_empty(), "a member outside an object-group: {cmd}");
            group.push(cmd.to_string());
            continue;
        }
        flush(&mut lines, &mut group);
        if cmd.is_empty() || cmd.starts_with('!') {
            continue;
        }
        let w: Vec<&str> = cmd.split_whitespace().collect();
        match w.as_slice() {
            ["object-group", ..] => group.push(cmd.to_string()),
            ["no", "access-list", ..] => {
                let entry = w[1..].join(" ");
                let found: Vec<usize> = (0..lines.len())
                    .filter(|&i| lines[i].split_whitespace().collect::<Vec<_>>().join(" ") == entry)
                    .collect();
                assert_eq!(found.len(), 1, "`{cmd}` matches {} lines", found.len());
                lines.remove(found[0]);
            }
            ["access-list", acl, "line", k, rest @ ..] => {
                let k: usize = k.parse().expect("a line number");
                let of_acl: Vec<usize> = (0..lines.len())
                    .filter(|&i| acl_of(&lines[i]) == Some(acl))
                    .collect();
                assert!(
                    k >= 1 && k <= of_acl.len(),
                    "`{cmd}`: ACL {acl} has {} lines",
                    of_acl.len()
                );
                lines.insert(
                    of_acl[k - 1],
                    format!("access-list {acl} {}", rest.join(" ")),
                );
            }
            ["access-list", acl, ..] => {
                let at = lines
                    .iter()
                    .rposition(|l| acl_of(l) == Some(acl))
                    .map_or(lines.len(), |i| i + 1);
                lines.insert(at, cmd.to_string());
            }
            _ => panic!("an ASA command the applier does not know: {cmd}"),
        }
    }
    flush(&mut lines, &mut group);
    lines.join("\n") + "\n"
}

// ---------------------------------------------------------------------------------------------
// Mutations

/// The mutations of a configuration: (name, text, the unrelated rule's text if it holds one).
fn mutations(vendor: Vendor, config: &str) -> Vec<(&'static str, String, Option<String>)> {
    let lines: Vec<&str> = config.lines().collect();
    let mut out = Vec::new();
    match vendor {
        Vendor::Asa => {
            let first = lines
                .iter()
                .position(|l| l.contains(" extended permit "))
                .expect("a permit");
            let acl = acl_of(lines[first]).unwrap().to_string();
            let host = lines[first]
                .split_whitespace()
                .skip_while(|w| *w != "host")
                .nth(1)
                .map(str::to_string);
            let removed: Vec<&str> = lines
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != first)
                .map(|(_, l)| *l)
                .collect();
            out.push(("remove", removed.join("\n"), None));
            let widen = (0..lines.len()).find(|&i| {
                i != first
                    && lines[i].contains(" extended permit ")
                    && lines[i].split_whitespace().any(|w| w == "range")
            });
            if let Some(i) = widen {
                let w: Vec<&str> = lines[i].split_whitespace().collect();
                let r = w.iter().position(|x| *x == "range").unwrap();
                let hi: u32 = w[r + 2].parse().expect("a numeric range");
                let wider = lines[i].replace(
                    &format!("range {} {}", w[r + 1], w[r + 2]),
                    &format!("range {} {}", w[r + 1], (hi + 100).min(65535)),
                );
                let mut l = lines.clone();
                l[i] = &wider;
                out.push(("widen", l.join("\n"), None));
            }
            let at_top = |extra: &[String]| -> String {
                let mut l: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
                let i = l
                    .iter()
                    .position(|x| acl_of(x) == Some(&acl) && x.contains(" extended "))
                    .unwrap();
                for (k, e) in extra.iter().enumerate() {
                    l.insert(i + k, e.clone());
                }
                l.join("\n")
            };
            let mut extra = vec![format!(
                "access-list {acl} extended permit udp any any range 40000 40100"
            )];
            if let Some(h) = &host {
                extra.push(format!(
                    "access-list {acl} extended permit tcp any host {h} eq 3389"
                ));
            }
            out.push(("extra", at_top(&extra), None));
            let unrelated =
                format!("access-list {acl} extended permit tcp any host {UNRELATED} eq 22");
            out.push((
                "unrelated",
                at_top(std::slice::from_ref(&unrelated)),
                Some(unrelated.clone()),
            ));
            // All at once.
            let mut all: Vec<String> = removed.iter().map(|s| s.to_string()).collect();
            if let Some(i) = widen {
                let i = if i > first { i - 1 } else { i };
                all[i] = out[1].1.lines().nth(widen.unwrap()).unwrap().to_string();
            }
            let i = all
                .iter()
                .position(|x| acl_of(x) == Some(&acl) && x.contains(" extended "))
                .unwrap();
            let mut e = vec![unrelated.clone()];
            e.extend(extra);
            for (k, x) in e.into_iter().enumerate() {
                all.insert(i + k, x);
            }
            out.push(("all", all.join("\n"), Some(unrelated)));
        }
        Vendor::Panos => {
            let allow = lines
                .iter()
                .find(|l| l.ends_with(" action allow"))
                .and_then(|l| pan_rule(l))
                .expect("an allow rule");
            let dest = lines
                .iter()
                .find(|l| pan_rule(l).as_deref() == Some(&allow) && l.contains(" destination "))
                .map(|l| l.split(" destination ").nth(1).unwrap().to_string())
                .unwrap();
            let without = |name: &str| -> Vec<String> {
                lines
                    .iter()
                    .filter(|l| pan_rule(l).as_deref() != Some(name))
                    .map(|s| s.to_string())
                    .collect()
            };
            out.push(("remove", without(&allow).join("\n"), None));
            let svc = lines.iter().position(|l| {
                l.starts_with("set service ")
                    && l.split(" port ")
                        .nth(1)
                        .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit() || c == '-'))
            });
            let widened = |lines: &[String]| -> Vec<String> {
                let mut l = lines.to_vec();
                if let Some(i) = l.iter().position(|x| {
                    x.starts_with("set service ")
                        && x.split(" port ")
                            .nth(1)
                            .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit() || c == '-'))
                }) {
                    let (head, port) = l[i].split_once(" port ").unwrap();
                    let (a, b) = port.split_once('-').unwrap_or((port, port));
                    let hi: u32 = b.parse().unwrap();
                    l[i] = format!("{head} port {a}-{}", (hi + 100).min(65535));
                }
                l
            };
            let all_lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
            if svc.is_some() {
                out.push(("widen", widened(&all_lines).join("\n"), None));
            }
            let rule = |name: &str, dst: &str, svc: &str| -> Vec<String> {
                let r = format!("set rulebase security rules {name}");
                vec![
                    format!("{r} from [ any ]"),
                    format!("{r} to [ any ]"),
                    format!("{r} source [ any ]"),
                    format!("{r} destination {dst}"),
                    format!("{r} service [ {svc} ]"),
                    format!("{r} application [ any ]"),
                    format!("{r} action allow"),
                ]
            };
            let services = vec![
                "set service mut-rdp protocol tcp port 3389".to_string(),
                "set service mut-high protocol udp port 40000-40100".to_string(),
                "set service mut-ssh protocol tcp port 22".to_string(),
            ];
            let mut extra = rule("extra-rdp", &dest, "mut-rdp");
            extra.extend(rule("extra-any", "[ any ]", "mut-high"));
            let unrelated = rule("unrelated-ssh", &format!("[ {UNRELATED} ]"), "mut-ssh");
            let with = |front: &[String], base: &[String]| -> String {
                let mut l = services.clone();
                l.extend(front.iter().cloned());
                l.extend(base.iter().cloned());
                l.join("\n")
            };
            out.push(("extra", with(&extra, &all_lines), None));
            out.push((
                "unrelated",
                with(&unrelated, &all_lines),
                Some(unrelated.join("\n")),
            ));
            let mut front = unrelated.clone();
            front.extend(extra);
            out.push((
                "all",
                with(&front, &widened(&without(&allow))),
                Some(unrelated.join("\n")),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------

struct Tally {
    configs: usize,
    mutations: usize,
    commands: usize,
    exact: usize,
}

/// Diffs the configuration at `path` (whose text is `config`), applies the commands, audits the
/// result (exactly the plan); returns the number of commands, the applied text and the diff.
fn diff_apply_audit(
    file: &str,
    firewall: &str,
    vendor: Vendor,
    path: &Path,
    config: &str,
    what: &str,
) -> (usize, String, String) {
    let (code, fix, err) = common::cli(&[
        "firewall",
        file,
        "--network",
        "--firewall",
        firewall,
        "--target",
        "aerleon",
        "--diff",
        path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{what}: the diff is not complete: {err}\n{fix}");
    assert!(
        !fix.contains(UNRELATED),
        "{what}: the diff touches the unrelated rule:\n{fix}"
    );
    let applied = match vendor {
        Vendor::Asa => apply_asa(config, &fix),
        Vendor::Panos => apply_panos(config, &fix),
    };
    let after = std::env::temp_dir().join(format!(
        "scc-appliance-diff-{}-{}.applied",
        std::process::id(),
        what.replace(' ', "-")
    ));
    std::fs::write(&after, &applied).unwrap();
    let (code, out, err) = common::cli(&[
        "audit",
        file,
        "--network",
        "--firewall",
        firewall,
        "--ruleset",
        after.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(&after);
    assert_eq!(
        code, 0,
        "{what}: after the diff the audit is not exact: {err}\n{out}\nthe diff:\n{fix}"
    );
    let commands = fix
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with(['!', '#', ' ']))
        .count();
    // The header's count is the file's.
    assert!(
        fix.contains(&format!("{commands} command")),
        "{what}: the header does not count {commands} commands:\n{fix}"
    );
    (commands, applied, fix)
}

#[cfg_attr(not(scc_aerleon), ignore = "needs Aerleon's aclgen")]
#[test]
fn mutated_aerleon_renderings_are_brought_back_to_exactly_the_plan() {
    let tmp = std::env::temp_dir().join(format!("scc-appliance-diff-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let mut t = Tally {
        configs: 0,
        mutations: 0,
        commands: 0,
        exact: 0,
    };
    for (ex, file, out, dep) in common::aerleon_examples(&tmp) {
        for fw in &dep.firewalls {
            for (platform, vendor) in [("ciscoasa", Vendor::Asa), ("paloalto", Vendor::Panos)] {
                if !fw.platforms.iter().any(|p| p == platform) {
                    continue;
                }
                let config = match vendor {
                    Vendor::Asa => {
                        let acls =
                            std::fs::read_to_string(common::aerleon_file(&out, &fw.name, "asa"))
                                .unwrap();
                        let names: Vec<&str> = fw.zones.iter().map(|z| z.name.as_str()).collect();
                        common::asa_framed(&acls, &names)
                    }
                    Vendor::Panos => common::panos_set_of(
                        &std::fs::read_to_string(common::aerleon_file(&out, &fw.name, "xml"))
                            .unwrap(),
                    ),
                };
                t.configs += 1;
                let path = tmp.join(format!("{ex}-{}-{platform}.cfg", fw.name));
                // Unchanged: nothing to do.
                std::fs::write(&path, &config).unwrap();
                let (n, _, _) = diff_apply_audit(
                    &file,
                    &fw.name,
                    vendor,
                    &path,
                    &config,
                    &format!("{ex} {} {platform} as rendered", fw.name),
                );
                assert_eq!(
                    n, 0,
                    "{ex} {} {platform}: the rendering needs no change",
                    fw.name
                );
                for (what, mutated, unrelated) in mutations(vendor, &config) {
                    let label = format!("{ex} {} {platform} {what}", fw.name);
                    let (code, _, _) = common::cli(&[
                        "audit",
                        &file,
                        "--network",
                        "--firewall",
                        &fw.name,
                        "--ruleset",
                        {
                            std::fs::write(&path, &mutated).unwrap();
                            path.to_str().unwrap()
                        },
                    ]);
                    if unrelated.is_none() || what == "all" {
                        assert_eq!(
                            code, 1,
                            "{label}: the mutation changes nothing the audit sees"
                        );
                    }
                    let (n, applied, _) =
                        diff_apply_audit(&file, &fw.name, vendor, &path, &mutated, &label);
                    if let Some(u) = unrelated {
                        assert!(
                            applied.contains(&u),
                            "{label}: the unrelated rule is gone:\n{applied}"
                        );
                    }
                    t.mutations += 1;
                    t.commands += n;
                    t.exact += 1;
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "{} configurations, {} mutated configurations, {} commands, {} exact after the diff",
        t.configs, t.mutations, t.commands, t.exact
    );
    assert!(
        t.configs >= 6,
        "ASA and PAN-OS of every example's firewalls"
    );
    assert_eq!(t.exact, t.mutations);
}

/// Hand-written configurations in each vendor's own style for the all-in-one example: the ASA
/// with network objects, nested object-groups and port groups (a media group wider than the plan,
/// a port group of every port for the admins, RDP from any, SSH to a jump host outside the plan,
/// an ACL with `any4`, a management interface's ACL that permits everything); PAN-OS `set`
/// with nested address groups, a service group, a rule name with a space, a rule to any
/// destination, a rule from a management zone. The diffs are goldens, and applied they leave exactly
/// the plan with the jump host's rules in place.
#[test]
fn golden_diffs_of_hand_written_configurations() {
    for (name, vendor) in [("asa.cfg", Vendor::Asa), ("panos.set", Vendor::Panos)] {
        let path = format!("tests/appliance_diff/{name}");
        let config =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(&path)).unwrap();
        let (_, applied, fix) = diff_apply_audit(
            "examples/all-in-one.toml",
            "EDGE",
            vendor,
            Path::new(&path),
            &config,
            name,
        );
        // The jump host is outside the plan; the management interface or zone is none of the
        // firewall's zones in the deployment: their rules stay as they are.
        for l in config
            .lines()
            .filter(|l| l.contains("jump") || l.contains("mgmt"))
        {
            assert!(applied.contains(l), "{name}: `{l}` is gone");
        }
        insta::assert_snapshot!(name.replace('.', "_"), fix);
    }
}

/// Names and entries that a command cannot carry (control characters) are not written: a note
/// says so (escaped), the exit status is 1, and nothing raw reaches the output.
#[test]
fn hostile_names_are_refused_not_written_raw() {
    let tmp = std::env::temp_dir().join(format!("scc-appliance-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let asa = "interface G0\n nameif servers\n!\ninterface G1\n nameif clients\n!\n\
               interface G2\n nameif admins\n!\ninterface G3\n nameif trunk\n!\n\
               access-list IN\u{1b}[31m extended permit tcp any host 10.1.0.100 eq 3389\n\
               access-group IN\u{1b}[31m in interface clients\n\
               access-list X extended deny ip any any\n\
               access-group X in interface servers\naccess-group X in interface admins\n\
               access-group X in interface trunk\n";
    let panos = "set rulebase security rules \"ev\u{1b}]0;il\" from [ clients servers admins trunk ]\n\
                 set rulebase security rules \"ev\u{1b}]0;il\" to any\n\
                 set rulebase security rules \"ev\u{1b}]0;il\" source any\n\
                 set rulebase security rules \"ev\u{1b}]0;il\" destination any\n\
                 set rulebase security rules \"ev\u{1b}]0;il\" service service-https\n\
                 set rulebase security rules \"ev\u{1b}]0;il\" application any\n\
                 set rulebase security rules \"ev\u{1b}]0;il\" action allow\n";
    for (name, text) in [("hostile.cfg", asa), ("hostile.set", panos)] {
        let path = tmp.join(name);
        std::fs::write(&path, text).unwrap();
        let (code, fix, err) = common::cli(&[
            "firewall",
            "examples/all-in-one.toml",
            "--network",
            "--target",
            "aerleon",
            "--diff",
            path.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{name}: {err}\n{fix}");
        assert!(
            !fix.contains('\u{1b}'),
            "{name}: raw escape in the output:\n{fix}"
        );
        assert!(fix.contains("not written"), "{name}: no note:\n{fix}");
        assert!(
            fix.contains("\\u{1b}"),
            "{name}: the note does not show the name:\n{fix}"
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The invocation's errors: another target, `--node`, a vendor without `--diff`.
#[test]
fn appliance_diff_invocation_errors_exit_2_with_a_hint() {
    let asa = "tests/appliance_diff/asa.cfg";
    // (scope, target, --diff file, what the error must say; "" for the exit alone)
    let cases: [(&[&str], &str, &str, &str); 3] = [
        (&["--network"], "nftables", asa, "--target aerleon"),
        (&["--node", "SCC1"], "aerleon", asa, "--network"),
        (&["--network"], "aerleon", "tests/appliance/srx.set", ""),
    ];
    for (scope, target, diff, hint) in cases {
        let mut args = vec!["firewall", "examples/all-in-one.toml"];
        args.extend(scope);
        args.extend(["--target", target, "--diff", diff]);
        let (code, _, err) = common::cli(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(hint), "{args:?}: {err}");
    }
}

/// The all-in-one example's firewall EDGE: its zones as the appliance names them, and the
/// planned flows that cross it (what `firewall --network --diff` computes).
fn edge() -> (
    Vec<scc_ports::audit::appliance::bind::BoundZone>,
    Vec<scc_ports::flows::Flow>,
) {
    use scc_ports::audit::appliance::bind::{crossing, zones_of};
    let file = "examples/all-in-one.toml";
    let catalog = scc_ports::catalog::Catalog::embedded();
    let dep = common::load_deployment(file);
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    let all = scc_ports::flows::flows(&dep, &catalog, &plan);
    let flows = scc_ports::firewall::select(&dep, &all, &scc_ports::firewall::Mode::Network);
    let fw = &dep.firewalls[0];
    (zones_of(&dep, fw), crossing(&dep, fw, flows))
}

/// Whether `text` admits exactly the plan of EDGE (None: it cannot be read or bound).
fn exact(
    text: &str,
    zones: &[scc_ports::audit::appliance::bind::BoundZone],
    flows: &[scc_ports::flows::Flow],
) -> Option<bool> {
    let rs = scc_ports::audit::read("applied", text).ok()?;
    let bound = scc_ports::audit::appliance::bind::bind(&rs, "EDGE", zones).ok()?;
    let report =
        scc_ports::audit::compare::audit(&bound, flows, &scc_ports::audit::compare::Scope::Network);
    Some(report.summary.exact)
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    /// Words a mutation puts into a line: addresses, ports, actions, groups of the goldens.
    const WORDS: &[&str] = &[
        "any",
        "any4",
        "host 10.1.0.100",
        "host 10.1.0.11",
        "10.20.0.0 255.255.0.0",
        "eq 22",
        "eq 5060",
        "range 1 65535",
        "range 8000 8400",
        "permit",
        "deny",
        "udp",
        "tcp",
        "ip",
        "object-group MEDIA",
        "object UNIT-ALL",
        "[ any ]",
        "allow",
        "agents",
        "10.1.0.0/24",
        "\"a b\"",
        "inactive",
        "\u{1b}[2J",
    ];

    /// A configuration mutated: lines deleted, duplicated, or a word replaced.
    fn mutate(text: &str, ops: &[(u8, usize, usize, usize)]) -> String {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        for &(op, at, word, with) in ops {
            if lines.is_empty() {
                break;
            }
            let i = at % lines.len();
            match op % 3 {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert((at / 7) % lines.len(), l);
                }
                _ => {
                    let mut w: Vec<String> = lines[i].split(' ').map(str::to_string).collect();
                    let k = word % w.len();
                    w[k] = WORDS[with % WORDS.len()].to_string();
                    lines[i] = w.join(" ");
                }
            }
        }
        lines.join("\n") + "\n"
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever the configuration, the diff does not panic; when it says the result is
        /// exactly the plan, the commands carried out on the text make it so, and no escape
        /// character of the input reaches the output.
        #[test]
        fn a_diff_that_says_exact_is_exact_when_applied(
            asa in any::<bool>(),
            ops in proptest::collection::vec((any::<u8>(), any::<usize>(), any::<usize>(), any::<usize>()), 1..6),
        ) {
            let (name, vendor) = if asa {
                ("asa.cfg", Vendor::Asa)
            } else {
                ("panos.set", Vendor::Panos)
            };
            let base = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/appliance_diff").join(name),
            )
            .unwrap();
            let text = mutate(&base, &ops);
            let (zones, flows) = edge();
            let Ok(fix) = scc_ports::audit::appliance::diff::diff(
                "mutated", &text, "EDGE", &zones, &flows, &[],
            ) else {
                return Ok(());
            };
            prop_assert!(!fix.text.contains('\u{1b}'), "{}", fix.text);
            let applied = match vendor {
                Vendor::Asa => apply_asa(&text, &fix.text),
                Vendor::Panos => apply_panos(&text, &fix.text),
            };
            if fix.after.summary.exact {
                prop_assert_eq!(exact(&applied, &zones, &flows), Some(true), "{}\n---\n{}", text, fix.text);
            }
        }
    }
}
