//! `audit`'s openings beyond the plan, grouped by rule: a newcomer's SBC export (a forgotten
//! rule, `--dport 10000:65535` to everyone, a broad `! --dport 1:1024` from one network) on a node
//! with three addresses, and a network firewall whose rule admits sources outside its zones. One
//! row per rule and transport in every format, and the rows hold exactly what the pieces hold.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use common::cli;
use scc_ports::audit::compare::{self, Scope};

const LAB: &str = "tests/audit/lab.toml";
const SBC: &str = "tests/audit_grouped/sbc.save";
const APP1: [Ipv4Addr; 3] = [
    Ipv4Addr::new(10, 88, 1, 11),
    Ipv4Addr::new(10, 88, 1, 100),
    Ipv4Addr::new(10, 88, 1, 101),
];

fn audit(args: &[&str]) -> (i32, String) {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    let (code, out, err) = cli(&all);
    assert!(err.is_empty(), "{err}");
    (code, out)
}

fn sbc_report() -> compare::Report {
    let text = std::fs::read_to_string(SBC).unwrap();
    let rs = scc_ports::audit::read(SBC, &text).unwrap();
    let flows = common::lab_flows(LAB, &APP1, false);
    let scope = Scope::Node(APP1.iter().map(|a| IpAddr::V4(*a)).collect());
    compare::audit(&rs, &flows, &scope)
}

/// The SBC's export as a newcomer reads it: 26 pieces before, one row per rule now (8 rules
/// open more than the plan), in each format.
#[test]
fn golden_sbc_one_row_per_rule() {
    for format in ["table", "json", "csv", "markdown"] {
        let (code, out) = audit(&[LAB, "--node", "APP1", "--ruleset", SBC, "--format", format]);
        assert_eq!(code, 1, "{format}: the media areas are blocked");
        insta::assert_snapshot!(format!("sbc_{format}"), out);
    }
    let report = sbc_report();
    assert_eq!(
        report.extra.len(),
        26,
        "the pieces (what the report listed before)"
    );
    assert_eq!(report.openings.len(), 8, "one row per rule");
    let rules: BTreeSet<(&str, &str)> = report
        .openings
        .iter()
        .map(|o| (o.rule.as_str(), o.transport))
        .collect();
    assert_eq!(
        rules.len(),
        report.openings.len(),
        "each rule and transport once"
    );
    // The broad rule applies to the node's three addresses: one row, all three.
    let broad = report
        .openings
        .iter()
        .find(|o| o.rule.contains("! --dport 1:1024"))
        .unwrap();
    assert_eq!(
        broad.addresses,
        ["10.88.1.11", "10.88.1.100", "10.88.1.101"]
    );
    assert_eq!(broad.sources, ["10.88.5.0/24"]);
    assert_eq!(broad.ports, "1025-65535");
    let media = report
        .openings
        .iter()
        .find(|o| o.rule.contains("--dport 10000:65535"))
        .unwrap();
    assert_eq!(
        (media.ports.as_str(), media.transport),
        ("10000-65535", "udp")
    );
    assert_eq!(media.sources, ["0.0.0.0/0"]);
}

/// Every packet of the pieces is in its rule's row, and no other: sources × addresses × ports
/// minus the exceptions, as written, over a sample of every source boundary and port the
/// ruleset and the plan draw.
#[test]
fn the_rows_hold_exactly_the_pieces() {
    let report = sbc_report();
    let srcs: Vec<Ipv4Addr> = [
        "0.0.0.0",
        "10.88.1.0",
        "10.88.1.77",
        "10.88.1.255",
        "10.88.2.9",
        "10.88.3.200",
        "10.88.4.1",
        "10.88.5.0",
        "10.88.5.255",
        "10.88.6.7",
        "192.0.2.1",
        "255.255.255.255",
    ]
    .iter()
    .map(|s| s.parse().unwrap())
    .collect();
    let ports: Vec<u16> = [
        1, 22, 1024, 1025, 5060, 5061, 8000, 8088, 9999, 10000, 21000, 21002, 21006, 21010, 21012,
        21014, 21017, 21030, 21031, 65535,
    ]
    .to_vec();
    let mut checked = 0;
    for o in &report.openings {
        let mine: Vec<&compare::ExtraRow> = report
            .extra
            .iter()
            .filter(|e| e.rule == o.rule && e.transport == o.transport)
            .collect();
        for &s in &srcs {
            for &d in &APP1 {
                for &p in &ports {
                    let in_pieces = mine.iter().any(|e| {
                        e.source
                            .parse::<ipnet::IpNet>()
                            .unwrap()
                            .contains(&IpAddr::V4(s))
                            && e.address == d.to_string()
                            && in_ports(&e.ports, p)
                    });
                    assert_eq!(
                        in_pieces,
                        holds(&o.sources, &o.addresses, &o.ports, s, d, p)
                            && !o
                                .except
                                .iter()
                                .any(|x| { holds(&x.sources, &x.addresses, &x.ports, s, d, p) }),
                        "{s} -> {d} {}/{p}: {o:?}",
                        o.transport
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 5000, "{checked}");
}

fn in_ports(text: &str, port: u16) -> bool {
    text.split(", ").any(|one| {
        let (range, parity) = one
            .split_once(' ')
            .map_or((one, None), |(r, p)| (r, Some(p)));
        let (lo, hi) = range.split_once('-').map_or((range, range), |x| x);
        (lo.parse::<u16>().unwrap()..=hi.parse::<u16>().unwrap()).contains(&port)
            && match parity {
                Some("even") => port % 2 == 0,
                Some("odd") => port % 2 == 1,
                _ => true,
            }
    })
}

fn in_addrs(list: &[String], a: Ipv4Addr) -> bool {
    list.iter().any(|t| match t.split_once('-') {
        Some((x, y)) => {
            (x.parse::<Ipv4Addr>().unwrap()..=y.parse::<Ipv4Addr>().unwrap()).contains(&a)
        }
        None => match t.parse::<ipnet::Ipv4Net>() {
            Ok(n) => n.contains(&a),
            Err(_) => t.parse::<Ipv4Addr>().unwrap() == a,
        },
    })
}

fn holds(srcs: &[String], dsts: &[String], ports: &str, s: Ipv4Addr, d: Ipv4Addr, p: u16) -> bool {
    in_addrs(srcs, s) && in_addrs(dsts, d) && in_ports(ports, p)
}

/// JSON: `subject` and `ruleset` at the top, `extra` rows as the contract has them, and the
/// summary counting the undecided openings the rows show.
#[test]
fn json_shape_and_undecided_counts_agree_with_the_rows() {
    let (_, out) = audit(&[LAB, "--node", "APP1", "--ruleset", SBC, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["subject"],
        serde_json::json!({"kind": "node", "name": "APP1"})
    );
    assert_eq!(v["ruleset"], SBC);
    for e in v["extra"].as_array().unwrap() {
        let keys: BTreeSet<&str> = e.as_object().unwrap().keys().map(String::as_str).collect();
        let want: BTreeSet<&str> = ["rule", "transport", "ports", "sources", "addresses"].into();
        assert!(keys.is_superset(&want), "{e}");
        assert!(keys.difference(&want).all(|k| *k == "except"), "{e}");
    }
    // Exports with openings that cannot be decided: the summary counts each row that says so.
    for (ruleset, node) in [
        ("tests/audit/windows.json", "APP1"),
        ("tests/audit/handwritten.nft", "APP1"),
        ("tests/audit/aws.json", "APP1"),
        ("tests/audit/firewalld-zone.xml", "APP1"),
    ] {
        let (_, out) = audit(&[
            LAB,
            "--node",
            node,
            "--ruleset",
            ruleset,
            "--format",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let rows = v["extra"].as_array().unwrap();
        let undecided = rows
            .iter()
            .filter(|e| e["rule"].as_str().unwrap().starts_with("cannot decide: "))
            .count();
        assert!(undecided > 0, "{ruleset}: the fixture has one");
        assert_eq!(v["summary"]["undecided_openings"], undecided, "{ruleset}");
        assert_eq!(v["summary"]["extra"], rows.len(), "{ruleset}");
        let flows = v["flows"].as_array().unwrap();
        let undecided_flows = flows
            .iter()
            .filter(|f| f["rule"].as_str().unwrap().contains("cannot decide: "))
            .count();
        assert_eq!(v["summary"]["undecided"], undecided_flows, "{ruleset}");
    }
}

/// A network firewall: a PAN-OS rule `from any` admits sources in none of the firewall's zones,
/// and the audit lists them (it listed only the agents' network).
#[test]
fn network_openings_from_outside_the_zones_are_listed() {
    let (code, out) = audit(&[
        "tests/audit_grouped/edge.toml",
        "--network",
        "--ruleset",
        "tests/audit_grouped/edge.set",
        "--format",
        "json",
    ]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["subject"],
        serde_json::json!({"kind": "network", "name": "EDGE"})
    );
    let rows = v["extra"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0]["sources"],
        serde_json::json!(["0.0.0.0-10.88.0.255", "10.88.2.0-255.255.255.255"]),
        "every source but the datacenter's own (inside its zone: not through the firewall)"
    );
    let (_, table) = audit(&[
        "tests/audit_grouped/edge.toml",
        "--network",
        "--ruleset",
        "tests/audit_grouped/edge.set",
    ]);
    insta::assert_snapshot!("edge_table", table);
    // A host-style ruleset audited with --network names no firewall.
    let (_, out) = audit(&[
        LAB,
        "--network",
        "--ruleset",
        "tests/audit/admin-router.rules",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["subject"],
        serde_json::json!({"kind": "network", "name": null})
    );
}
