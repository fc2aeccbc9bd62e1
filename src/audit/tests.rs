//! The evaluator's rules, one test each: chain order and priorities, every action, negation,
//! families, unknown constructs, and the interval arithmetic of the comparison.

use super::*;
use crate::catalog::Transport;

/// A new connection's first packet to the host (the readers' tests use it too).
pub(super) fn pkt(src: &str, dst: &str, t: Transport, port: u16) -> Packet {
    Packet {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        transport: t,
        sport: None,
        dport: port,
        hook: Hook::Input,
        sides: Default::default(),
    }
}

fn ipt(text: &str) -> Ruleset {
    read("t.rules", text).unwrap_or_else(|e| panic!("{e}"))
}

fn verdict(rs: &Ruleset, src: &str, port: u16) -> Outcome {
    rs.evaluate(&pkt(src, "10.0.0.1", Transport::Tcp, port))
        .outcome
}

const HEAD: &str = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:A - [0:0]\n:B - [0:0]\n";

#[test]
fn first_matching_rule_decides_and_policy_ends_the_chain() {
    let rs = ipt(&format!(
        "{HEAD}-A INPUT -p tcp -m tcp --dport 22 -j DROP\n-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 80 -j ACCEPT\nCOMMIT\n"
    ));
    assert_eq!(verdict(&rs, "10.9.9.9", 22), Outcome::Drop);
    assert_eq!(verdict(&rs, "10.9.9.9", 80), Outcome::Accept);
    let d = rs.evaluate(&pkt("10.9.9.9", "10.0.0.1", Transport::Tcp, 81));
    assert_eq!(d.outcome, Outcome::Drop);
    assert_eq!(d.rule, "filter INPUT: policy drop");
    assert_eq!(d.at, Some((0, None)));
    // UDP never matches a tcp rule.
    let u = rs.evaluate(&pkt("10.9.9.9", "10.0.0.1", Transport::Udp, 80));
    assert_eq!(u.outcome, Outcome::Drop);
}

#[test]
fn jump_return_and_goto() {
    let rs = ipt(&format!(
        "{HEAD}-A INPUT -s 10.1.0.0/16 -j A\n-A INPUT -p tcp -m tcp --dport 1 -j ACCEPT\n-A INPUT -s 10.2.0.0/16 -g B\n-A INPUT -j ACCEPT\n\
         -A A -p tcp -m tcp --dport 2 -j ACCEPT\n-A A -j RETURN\n-A A -j DROP\n-A B -p tcp -m tcp --dport 3 -j ACCEPT\nCOMMIT\n"
    ));
    assert_eq!(verdict(&rs, "10.1.0.1", 2), Outcome::Accept); // in A
    assert_eq!(verdict(&rs, "10.1.0.1", 1), Outcome::Accept); // RETURN, then INPUT goes on
    assert_eq!(verdict(&rs, "10.2.0.1", 3), Outcome::Accept); // in B
    // goto: falling off B returns to INPUT's caller, i.e. INPUT's policy, not its next rule.
    assert_eq!(verdict(&rs, "10.2.0.1", 4), Outcome::Drop);
    assert_eq!(verdict(&rs, "10.3.0.1", 4), Outcome::Accept);
}

#[test]
fn negations() {
    let rs = ipt(&format!(
        "{HEAD}-A INPUT ! -s 10.1.0.0/16 -p tcp -m tcp ! --dport 1:1024 -j ACCEPT\n-A INPUT -p tcp -m multiport --dports 22,80:81 -j ACCEPT\nCOMMIT\n"
    ));
    assert_eq!(verdict(&rs, "10.2.0.1", 2000), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.1.0.1", 2000), Outcome::Drop);
    assert_eq!(verdict(&rs, "10.2.0.1", 1000), Outcome::Drop);
    assert_eq!(verdict(&rs, "10.1.0.1", 81), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.1.0.1", 82), Outcome::Drop);
}

#[test]
fn loopback_conntrack_and_syn() {
    let rs = ipt(&format!(
        "{HEAD}-A INPUT -i lo -j ACCEPT\n-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT\n-A INPUT ! -i lo -p tcp -m tcp --dport 5 --syn -m state --state NEW -j ACCEPT\nCOMMIT\n"
    ));
    assert_eq!(verdict(&rs, "10.2.0.1", 4), Outcome::Drop);
    assert_eq!(verdict(&rs, "10.2.0.1", 5), Outcome::Accept);
}

#[test]
fn unknown_constructs_cannot_decide_unless_they_decide_nothing() {
    let rs = ipt(&format!(
        "{HEAD}-A INPUT -m set --match-set admins src -j LOG\n-A INPUT -p tcp -m tcp --dport 7 -m limit --limit 1/s -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 8 -m set --match-set admins src -j ACCEPT\n-A INPUT -i eth0 -p tcp -m tcp --dport 9 -j ACCEPT\nCOMMIT\n"
    ));
    // The LOG rule decides nothing; a known failing match (port) makes the unknown irrelevant.
    assert_eq!(verdict(&rs, "10.2.0.1", 6), Outcome::Drop);
    match verdict(&rs, "10.2.0.1", 7) {
        Outcome::Undecided(w) => assert!(w.contains("-m limit"), "{w}"),
        o => panic!("{o:?}"),
    }
    match verdict(&rs, "10.2.0.1", 8) {
        Outcome::Undecided(w) => assert!(w.contains("ipset `admins`"), "{w}"),
        o => panic!("{o:?}"),
    }
    match verdict(&rs, "10.2.0.1", 9) {
        Outcome::Undecided(w) => assert!(w.contains("eth0"), "{w}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn iptables_export_says_nothing_about_ipv6() {
    let rs = ipt(&format!("{HEAD}COMMIT\n"));
    let d = rs.evaluate(&pkt("2001:db8::1", "2001:db8::2", Transport::Tcp, 1));
    assert!(matches!(d.outcome, Outcome::Undecided(_)));
}

#[test]
fn a_loop_of_jumps_is_undecided_not_a_stack_overflow() {
    let rs = ipt(&format!(
        "{HEAD}-A INPUT -j A\n-A A -j B\n-A B -j A\nCOMMIT\n"
    ));
    assert!(matches!(verdict(&rs, "10.2.0.1", 1), Outcome::Undecided(_)));
}

fn nft(doc: serde_json::Value) -> Ruleset {
    read("t.json", &doc.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn chain(table: &str, name: &str, prio: i64, policy: &str) -> serde_json::Value {
    serde_json::json!({"chain": {"family": "inet", "table": table, "name": name, "type": "filter",
        "hook": "input", "prio": prio, "policy": policy}})
}

fn rule(table: &str, chain: &str, expr: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"rule": {"family": "inet", "table": table, "chain": chain, "handle": 4, "expr": expr}})
}

fn dport(port: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": port}})
}

#[test]
fn every_nft_base_chain_must_accept_in_priority_order() {
    let rs = nft(serde_json::json!({"nftables": [
        chain("b", "input", 10, "accept"),
        chain("a", "input", -10, "drop"),
        rule("a", "input", serde_json::json!([dport(serde_json::json!({"set": [1, {"range": [5, 9]}]})), {"accept": null}])),
        rule("b", "input", serde_json::json!([dport(serde_json::json!(6)), {"drop": null}])),
    ]}));
    assert_eq!(verdict(&rs, "10.2.0.1", 1), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.2.0.1", 6), Outcome::Drop); // accepted by a, dropped by b
    assert_eq!(verdict(&rs, "10.2.0.1", 2), Outcome::Drop); // a's policy
    let d = rs.evaluate(&pkt("10.2.0.1", "10.0.0.1", Transport::Tcp, 5));
    assert!(d.rule.starts_with("inet a input handle 4"), "{}", d.rule); // not b's policy
}

#[test]
fn nft_family_parity_and_verdict_maps() {
    let saddr = serde_json::json!({"match": {"op": "!=", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
        "right": {"prefix": {"addr": "10.1.0.0", "len": 16}}}});
    let parity = serde_json::json!({"match": {"op": "==", "left": {"&": [{"payload": {"protocol": "tcp", "field": "dport"}}, 1]}, "right": 0}});
    let vmap = serde_json::json!({"vmap": {"key": {"payload": {"protocol": "tcp", "field": "dport"}},
        "data": {"set": [[100, {"accept": null}], [{"range": [200, 210]}, {"drop": null}]]}}});
    let rs = nft(serde_json::json!({"nftables": [
        chain("a", "input", 0, "drop"),
        rule("a", "input", serde_json::json!([saddr, dport(serde_json::json!(22)), {"accept": null}])),
        rule("a", "input", serde_json::json!([dport(serde_json::json!({"range": [5000, 5010]})), parity, {"accept": null}])),
        rule("a", "input", serde_json::json!([vmap])),
        rule("a", "input", serde_json::json!([{"accept": null}])),
    ]}));
    assert_eq!(verdict(&rs, "10.2.0.1", 22), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.1.0.1", 22), Outcome::Accept); // falls to the last accept
    // `ip saddr != …` never matches IPv6, even negated.
    let v6 = rs.evaluate(&pkt("2001:db8::1", "2001:db8::2", Transport::Tcp, 200));
    assert_eq!(v6.outcome, Outcome::Drop); // the vmap
    assert_eq!(verdict(&rs, "10.1.0.1", 5002), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.1.0.1", 205), Outcome::Drop);
    assert_eq!(verdict(&rs, "10.1.0.1", 100), Outcome::Accept);
    assert!(rs.has_parity());
}

#[test]
fn spans_become_the_fewest_cidrs() {
    let s = Span {
        family: Family::V4,
        lo: addr_num(&"10.0.0.5".parse().unwrap()),
        hi: addr_num(&"10.0.0.20".parse().unwrap()),
    };
    let text: Vec<String> = s.cidrs().iter().map(|n| n.to_string()).collect();
    assert_eq!(
        text,
        [
            "10.0.0.5/32",
            "10.0.0.6/31",
            "10.0.0.8/29",
            "10.0.0.16/30",
            "10.0.0.20/32"
        ]
    );
    let all = Span {
        family: Family::V6,
        lo: 0,
        hi: u128::MAX,
    };
    assert_eq!(all.cidrs()[0].to_string(), "::/0");
    let all4 = Span {
        family: Family::V4,
        lo: 0,
        hi: Family::V4.max(),
    };
    assert_eq!(all4.to_string(), "0.0.0.0/0");
}

#[test]
fn formats_are_detected_from_the_content() {
    assert_eq!(
        read("x", "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n")
            .unwrap()
            .format,
        Format::IptablesSave
    );
    assert_eq!(
        read(
            "x",
            "# Generated by ip6tables-save\n*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n"
        )
        .unwrap()
        .format,
        Format::Ip6tablesSave
    );
    assert_eq!(
        read("x", r#"{"nftables": []}"#).unwrap().format,
        Format::NftJson
    );
    assert_eq!(
        read("x", r#"{"SecurityGroups": []}"#).unwrap().format,
        Format::AwsJson
    );
    assert_eq!(
        read("x", r#"[{"DisplayName": "a", "Action": "Allow"}]"#)
            .unwrap()
            .format,
        Format::WindowsJson
    );
    assert_eq!(
        read("x", "table inet t {\n chain c {\n }\n}\n")
            .unwrap()
            .format,
        Format::NftText
    );
    assert!(read("x", "{\"other\": 1}").is_err());
    let e = read(
        "f.rules",
        "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -q\nCOMMIT\n",
    )
    .unwrap_err();
    assert_eq!(
        e.to_string().lines().next().unwrap(),
        "f.rules:3:10: unexpected word: `-q`"
    );
}

#[test]
fn windows_block_wins_over_allow_and_default_blocks() {
    let rs = read(
        "w.json",
        r#"[{"DisplayName": "allow all", "Action": "Allow", "Protocol": "TCP", "LocalPort": "Any", "RemoteAddress": "Any"},
            {"DisplayName": "block 10.1/16", "Action": "Block", "Protocol": "Any", "LocalPort": "Any", "RemoteAddress": "10.1.0.0/255.255.0.0"},
            {"DisplayName": "off", "Action": "Allow", "Enabled": "False", "Protocol": "UDP", "LocalPort": "53"}]"#,
    )
    .unwrap();
    assert_eq!(verdict(&rs, "10.2.0.1", 80), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.1.0.1", 80), Outcome::Drop);
    let udp = rs.evaluate(&pkt("10.2.0.1", "10.0.0.1", Transport::Udp, 53));
    assert_eq!(udp.outcome, Outcome::Drop);
}

#[test]
fn aws_is_a_union_of_allows() {
    let rs = read(
        "a.json",
        r#"{"SecurityGroups": [{"GroupId": "sg-1", "IpPermissions": [
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 90, "IpRanges": [{"CidrIp": "10.1.0.0/16"}],
             "UserIdGroupPairs": [{"GroupId": "sg-2"}]},
            {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "10.2.0.0/16"}]}]}]}"#,
    )
    .unwrap();
    assert_eq!(verdict(&rs, "10.1.0.1", 85), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.2.0.1", 5), Outcome::Accept);
    // Only the referenced group could admit it: cannot decide.
    assert!(matches!(
        verdict(&rs, "10.3.0.1", 85),
        Outcome::Undecided(_)
    ));
    assert_eq!(verdict(&rs, "10.3.0.1", 95), Outcome::Drop);
}

fn flow(
    sources: &[&str],
    dst: &str,
    t: Transport,
    ports: crate::range::PortRange,
) -> crate::flows::Flow {
    crate::flows::Flow {
        role: crate::catalog::Role::Clients,
        source_zones: vec!["agents".into()].into(),
        sources: sources.iter().map(|s| s.parse().unwrap()).collect(),
        node: "N".into(),
        destination: vec![dst.parse().unwrap()],
        workstations: false,
        unit: None,
        transport: t,
        ports,
        component: "media-routing-server".into(),
        port_ids: vec!["prompt-area".into()],
        purpose: String::new(),
    }
}

#[test]
fn a_flow_is_split_at_rule_boundaries_into_ranges() {
    use crate::range::{Parity, PortRange};
    let rs = ipt(&format!(
        "{HEAD}-A INPUT -s 10.20.0.0/16 -p udp -m udp --dport 8000:8400 -j ACCEPT\n-A INPUT -s 10.21.0.0/16 -p udp -m udp --dport 8000:8800 -j ACCEPT\n-A INPUT -s 10.22.0.0/16 -p udp -m udp --dport 8790:8805 -j ACCEPT\n-A INPUT -p udp -m udp --dport 9000 -j ACCEPT\nCOMMIT\n"
    ));
    let area = flow(
        &["10.20.0.0/16", "10.21.0.0/16"],
        "10.0.0.1/32",
        Transport::Udp,
        PortRange::new(8000, 8800, None).unwrap(),
    );
    let even = flow(
        &["10.22.0.0/16"],
        "10.0.0.1/32",
        Transport::Udp,
        PortRange::new(8790, 8810, Some(Parity::Even)).unwrap(),
    );
    let scope = compare::Scope::Node(vec!["10.0.0.1".parse().unwrap()]);
    let r = compare::audit(&rs, &[area, even], &scope);
    assert_eq!(r.flows[0].status, "partial");
    assert_eq!(r.flows[0].blocked, ["8401-8800"]);
    assert_eq!(r.flows[0].blocked_sources, ["10.20.0.0/16"]);
    assert_eq!(r.flows[1].status, "partial");
    assert_eq!(r.flows[1].blocked, ["8806-8810 even"]);
    // Beyond the plan: the odd ports 8791-8805 are inside the even flow's span, but not its
    // ports; 9000 is open to everyone.
    let extra: Vec<(String, String)> = r
        .extra
        .iter()
        .map(|e| (e.source.clone(), e.ports.clone()))
        .collect();
    assert_eq!(
        extra,
        [
            ("0.0.0.0/0".to_string(), "9000".to_string()),
            ("10.22.0.0/16".to_string(), "8791-8805 odd".to_string())
        ]
    );
    assert!(!r.summary.exact);
}

#[test]
fn firewalld_zones_by_source_deny_before_allow_then_target() {
    let text = "default-zone: public\n\
public (active)\n  target: default\n  icmp-block-inversion: no\n  interfaces: eth0\n  sources: \n  services: ssh\n  ports: 8000-8010/udp\n  rich rules: \n\
\trule family=\"ipv4\" source address=\"10.1.0.0/16\" port port=\"8005\" protocol=\"udp\" accept\n\
\trule family=\"ipv4\" source address=\"10.1.2.0/24\" port port=\"8005\" protocol=\"udp\" reject\n\
trusted\n  target: ACCEPT\n  icmp-block-inversion: no\n  interfaces: \n  sources: 10.9.0.0/16\n  services: \n  ports: \n  rich rules: \n\
ssh\n  ports: 22/tcp\n  protocols: \n  destination: \n  includes: \n";
    let rs = read("fw.txt", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rs.format, Format::FirewalldText);
    let udp = |src: &str, port| {
        rs.evaluate(&pkt(src, "10.0.0.1", Transport::Udp, port))
            .outcome
    };
    assert_eq!(verdict(&rs, "10.5.0.1", 22), Outcome::Accept); // service ssh
    assert_eq!(verdict(&rs, "10.5.0.1", 23), Outcome::Drop); // target default rejects
    assert_eq!(verdict(&rs, "10.9.0.1", 23), Outcome::Accept); // trusted by source
    assert_eq!(udp("10.1.1.1", 8005), Outcome::Accept);
    assert_eq!(udp("10.1.2.1", 8005), Outcome::Drop); // deny before allow at priority 0
    assert_eq!(udp("10.1.2.1", 8004), Outcome::Accept); // the zone's ports
    // A service whose definition is not in the export cannot be decided.
    let rs = read(
        "fw.txt",
        "public\n  target: default\n  icmp-block-inversion: no\n  services: cockpit\n",
    )
    .unwrap();
    assert!(matches!(
        verdict(&rs, "10.5.0.1", 9090),
        Outcome::Undecided(_)
    ));
}

#[test]
fn ipsets_given_with_the_export_are_evaluated() {
    let text = format!(
        "create admins hash:net family inet hashsize 1024 maxelem 65536\nadd admins 10.3.0.0/24\nadd admins 10.4.0.7\n\
         create pairs hash:ip,port family inet\nadd pairs 10.5.0.1,tcp:22\n\
         {HEAD}-A INPUT -m set --match-set admins src -p tcp -m tcp --dport 22 -j ACCEPT\n\
         -A INPUT -m set ! --match-set admins src -p tcp -m tcp --dport 23 -j ACCEPT\n\
         -A INPUT -m set --match-set pairs src -j ACCEPT\nCOMMIT\n"
    );
    let rs = ipt(&text);
    assert_eq!(verdict(&rs, "10.3.0.9", 22), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.4.0.7", 22), Outcome::Accept);
    assert_eq!(verdict(&rs, "10.4.0.8", 23), Outcome::Accept);
    assert_eq!(
        verdict(&rs, "10.3.0.9", 23),
        Outcome::Undecided("ipset `pairs` (a set type other than hash:ip or hash:net)".into())
    );
}

fn concat_set(name: &str, fields: &[&str], elems: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"set": {"family": "inet", "table": "a", "name": name, "type": fields,
        "flags": ["interval"], "elem": elems}})
}

fn concat_match(op: &str, fields: serde_json::Value, set: &str) -> serde_json::Value {
    serde_json::json!({"match": {"op": op, "left": {"concat": fields}, "right": format!("@{set}")}})
}

fn daddr_dport(proto: &str) -> serde_json::Value {
    serde_json::json!([{"payload": {"protocol": "ip", "field": "daddr"}},
        {"payload": {"protocol": proto, "field": "dport"}}])
}

#[test]
fn concatenated_sets_are_unions_of_boxes() {
    // Elements as `nft -j` gives them back: a plain value, a range, a prefix, an address range.
    let elems = serde_json::json!([
        {"elem": {"val": {"concat": ["10.0.0.1", 21002]}, "comment": "c.port"}},
        {"concat": ["10.0.0.1", {"range": [8000, 8400]}]},
        {"concat": [{"prefix": {"addr": "10.0.1.0", "len": 24}}, 443]},
        {"concat": [{"range": ["10.0.2.5", "10.0.2.9"]}, {"range": [5004, 5031]}]},
    ]);
    let rs = nft(serde_json::json!({"nftables": [
        concat_set("dst", &["ipv4_addr", "inet_service"], elems),
        chain("a", "input", 0, "drop"),
        rule("a", "input", serde_json::json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "10.20.0.0", "len": 16}}}},
            concat_match("==", daddr_dport("tcp"), "dst"), {"accept": null}])),
    ]}));
    let at =
        |dst: &str, t: Transport, port: u16| rs.evaluate(&pkt("10.20.0.9", dst, t, port)).outcome;
    assert_eq!(at("10.0.0.1", Transport::Tcp, 21002), Outcome::Accept);
    assert_eq!(at("10.0.0.1", Transport::Tcp, 21003), Outcome::Drop);
    assert_eq!(at("10.0.0.2", Transport::Tcp, 21002), Outcome::Drop); // the pair, not each field
    assert_eq!(at("10.0.0.1", Transport::Tcp, 443), Outcome::Drop);
    assert_eq!(at("10.0.1.77", Transport::Tcp, 443), Outcome::Accept);
    // The decision names the element that holds.
    let d = rs.evaluate(&pkt("10.20.0.9", "10.0.2.7", Transport::Tcp, 5010));
    assert!(
        d.rule.ends_with(" [element 10.0.2.5-10.0.2.9 . 5004-5031]"),
        "{}",
        d.rule
    );
    let d = rs.evaluate(&pkt("10.20.0.9", "10.0.0.1", Transport::Tcp, 21002));
    assert!(
        d.rule
            .ends_with(" [element 10.0.0.1 . 21002 comment \"c.port\"]"),
        "{}",
        d.rule
    );
    let d = rs.evaluate(&pkt("10.20.0.9", "10.0.1.77", Transport::Tcp, 443));
    assert!(
        d.rule.ends_with(" [element 10.0.1.0/24 . 443]"),
        "{}",
        d.rule
    );
    assert_eq!(at("10.0.0.1", Transport::Tcp, 8400), Outcome::Accept);
    assert_eq!(at("10.0.0.1", Transport::Tcp, 8401), Outcome::Drop);
    assert_eq!(at("10.0.2.9", Transport::Tcp, 5031), Outcome::Accept);
    assert_eq!(at("10.0.2.10", Transport::Tcp, 5031), Outcome::Drop);
    assert_eq!(at("10.0.0.1", Transport::Udp, 21002), Outcome::Drop); // `tcp dport` implies TCP
    let v6 = rs.evaluate(&pkt("2001:db8::1", "2001:db8::2", Transport::Tcp, 443));
    assert_eq!(v6.outcome, Outcome::Drop); // `ip daddr` implies IPv4

    // A flow's ports are cut only at the boxes of its destination: exact rows.
    use crate::range::PortRange;
    let f = flow(
        &["10.20.0.0/16"],
        "10.0.0.1/32",
        Transport::Tcp,
        PortRange::new(8000, 8800, None).unwrap(),
    );
    let scope = compare::Scope::Node(vec!["10.0.0.1".parse().unwrap()]);
    let r = compare::audit(&rs, &[f], &scope);
    assert_eq!(r.flows[0].status, "partial");
    assert_eq!(r.flows[0].blocked, ["8401-8800"]);
    let extra: Vec<(String, String)> = r
        .extra
        .iter()
        .map(|e| (e.source.clone(), e.ports.clone()))
        .collect();
    assert_eq!(extra, [("10.20.0.0/16".to_string(), "21002".to_string())]);
    let mut cuts = Vec::new();
    let only = rs.relevant(&Span::net(&"10.20.0.0/16".parse().unwrap()));
    rs.port_cuts_for(
        &only,
        &Span::net(&"10.20.0.0/16".parse().unwrap()),
        &"10.0.1.5".parse().unwrap(),
        &mut cuts,
    );
    assert_eq!(cuts, [443, 444]); // only the box of 10.0.1.0/24
}

#[test]
fn concatenations_negated_with_sources_and_unknown_fields() {
    let elems = serde_json::json!([
        {"concat": [{"prefix": {"addr": "10.1.0.0", "len": 16}}, 22]},
        {"concat": ["10.2.0.1", {"range": [1000, 2000]}]},
    ]);
    let sport = serde_json::json!([{"payload": {"protocol": "ip", "field": "saddr"}},
        {"payload": {"protocol": "tcp", "field": "sport"}}]);
    let rs = nft(serde_json::json!({"nftables": [
        concat_set("src", &["ipv4_addr", "inet_service"], elems.clone()),
        concat_set("srcport", &["ipv4_addr", "inet_service"], elems),
        chain("a", "input", 0, "drop"),
        rule("a", "input", serde_json::json!([concat_match("!=", serde_json::json!([
            {"payload": {"protocol": "ip", "field": "saddr"}},
            {"payload": {"protocol": "tcp", "field": "dport"}}]), "src"), {"drop": null}])),
        rule("a", "input", serde_json::json!([concat_match("==", sport, "srcport"), {"accept": null}])),
        rule("a", "input", serde_json::json!([{"accept": null}])),
    ]}));
    // Negated: every (source, port) outside the set is dropped.
    assert_eq!(verdict(&rs, "10.3.0.1", 22), Outcome::Drop);
    assert_eq!(verdict(&rs, "10.2.0.1", 2001), Outcome::Drop);
    // Inside it: the next rule keys on the client's port, which the audit does not know.
    assert!(matches!(
        verdict(&rs, "10.2.0.1", 1500),
        Outcome::Undecided(_)
    ));
    assert!(matches!(
        verdict(&rs, "10.1.9.9", 22),
        Outcome::Undecided(_)
    ));
    // The source boxes cut the sources.
    let mut cuts = Vec::new();
    rs.addr_cuts(Family::V4, true, &mut cuts);
    cuts.sort_unstable();
    cuts.dedup();
    let ip = |s: &str| addr_num(&s.parse().unwrap());
    assert_eq!(
        cuts,
        [
            ip("10.1.0.0"),
            ip("10.2.0.0"),
            ip("10.2.0.1"),
            ip("10.2.0.2")
        ]
    );
    // A field the audit cannot read, and an ordered comparison: cannot decide, named.
    let odd = nft(serde_json::json!({"nftables": [
        concat_set("m", &["mark", "inet_service"], serde_json::json!([])),
        chain("a", "input", 0, "drop"),
        rule("a", "input", serde_json::json!([concat_match("==", serde_json::json!([
            {"meta": {"key": "mark"}}, {"payload": {"protocol": "tcp", "field": "dport"}}]), "m"), {"accept": null}])),
    ]}));
    match verdict(&odd, "10.1.0.1", 22) {
        Outcome::Undecided(what) => assert!(what.contains("meta mark . tcp dport"), "{what}"),
        o => panic!("{o:?}"),
    }
}

#[test]
fn diff_of_a_set_based_ruleset_is_set_elements() {
    use crate::range::PortRange;
    let elems = serde_json::json!([
        {"concat": ["10.0.0.1", {"range": [8000, 8041]}]},
        {"concat": ["10.0.0.9", 22]},
    ]);
    let rs = nft(serde_json::json!({"nftables": [
        concat_set("s", &["ipv4_addr", "inet_service"], elems),
        chain("a", "input", 0, "drop"),
        rule("a", "input", serde_json::json!([
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": {"prefix": {"addr": "10.20.0.0", "len": 16}}}},
            concat_match("==", daddr_dport("udp"), "s"), {"accept": null}])),
    ]}));
    // One flow to two addresses: 8000-8040 on each; 8041 is open beyond it on 10.0.0.1.
    let mut f = flow(
        &["10.20.0.0/16"],
        "10.0.0.1/32",
        Transport::Udp,
        PortRange::new(8000, 8040, None).unwrap(),
    );
    f.destination.push("10.0.0.2/32".parse().unwrap());
    let scope = compare::Scope::Node(vec![
        "10.0.0.1".parse().unwrap(),
        "10.0.0.2".parse().unwrap(),
    ]);
    let (changes, after) = diff::diff(&rs, std::slice::from_ref(&f), &scope);
    assert!(after.summary.exact, "{changes:?}");
    let el = |add: bool, elem: &str| diff::Change::Element {
        add,
        set: "inet a s".into(),
        elem: elem.into(),
    };
    assert_eq!(changes.len(), 3, "{changes:?}");
    for c in [
        el(false, "10.0.0.1 . 8000-8041"),
        el(true, "10.0.0.1 . 8000-8040"),
        el(true, "10.0.0.2 . 8000-8040"),
    ] {
        assert!(changes.contains(&c), "{c:?} not in {changes:?}");
    }
    let text = diff::render("nftables", &rs, &[f], &changes, &after, &[]).unwrap();
    let del = text
        .find("delete element inet a s { 10.0.0.1 . 8000-8041 }")
        .unwrap();
    let add = text
        .find("add element inet a s { 10.0.0.1 . 8000-8040 }")
        .unwrap();
    assert!(del < add, "{text}");
    assert!(!text.contains("insert rule"), "{text}");
}

#[test]
fn ipv6_concatenations() {
    let elems = serde_json::json!([
        {"concat": [{"prefix": {"addr": "2001:db8:1::", "len": 48}}, {"range": [5060, 5061]}]},
    ]);
    let rs = nft(serde_json::json!({"nftables": [
        concat_set("s6", &["ipv6_addr", "inet_service"], elems),
        chain("a", "input", 0, "drop"),
        rule("a", "input", serde_json::json!([concat_match("==", serde_json::json!([
            {"payload": {"protocol": "ip6", "field": "daddr"}},
            {"payload": {"protocol": "udp", "field": "dport"}}]), "s6"), {"accept": null}])),
    ]}));
    let at = |dst: &str, port: u16| {
        let src = if dst.contains(':') {
            "2001:db8:9::1"
        } else {
            "10.0.0.9"
        };
        rs.evaluate(&pkt(src, dst, Transport::Udp, port)).outcome
    };
    assert_eq!(at("2001:db8:1:ffff::1", 5061), Outcome::Accept);
    assert_eq!(at("2001:db8:2::1", 5061), Outcome::Drop);
    assert_eq!(at("2001:db8:1::1", 5062), Outcome::Drop);
    assert_eq!(at("10.0.0.1", 5060), Outcome::Drop); // `ip6 daddr` implies IPv6
}

#[test]
fn span_text_names_addresses_networks_and_ranges_and_span_start_reads_them_back() {
    let span = |a: &str, b: &str| {
        let (a, b): (IpAddr, IpAddr) = (a.parse().unwrap(), b.parse().unwrap());
        Span {
            family: Family::of(&a),
            lo: addr_num(&a),
            hi: addr_num(&b),
        }
    };
    for (lo, hi, text) in [
        ("10.88.2.7", "10.88.2.7", "10.88.2.7"),
        ("10.88.2.0", "10.88.2.255", "10.88.2.0/24"),
        ("10.88.2.5", "10.88.2.9", "10.88.2.5-10.88.2.9"),
        ("2001:db8::", "2001:db8::ffff", "2001:db8::/112"),
        ("0.0.0.0", "255.255.255.255", "0.0.0.0/0"),
    ] {
        let s = span(lo, hi);
        assert_eq!(span_text(&s), text);
        assert_eq!(span_start(text), Some(lo.parse().unwrap()), "{text}");
    }
    assert_eq!(span_start("not an address"), None);
}
