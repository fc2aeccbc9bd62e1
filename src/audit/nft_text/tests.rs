//! The text reader's rules: nft's own text reads as the same ruleset as nft's JSON, hand-written
//! files (define, comments, `add rule`), what becomes "cannot decide", and the located errors.

use super::*;
use crate::audit::tests::pkt;
use crate::audit::{Action, Cond, Hook, Outcome, Packet};
use crate::catalog::Transport;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/audit/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn text(t: &str) -> Ruleset {
    read("t.nft", t).unwrap_or_else(|e| panic!("{e}"))
}

fn err(t: &str) -> String {
    match read("t.nft", t) {
        Ok(_) => panic!("read:\n{t}"),
        Err(e) => e.to_string(),
    }
}

/// A chain's name, base and rules (conditions and action as text).
type Shape = (
    String,
    Option<crate::audit::Base>,
    Vec<(Vec<String>, String)>,
);
/// Where a decision was made: a chain, and a rule in it (None: the policy).
type Place = Option<(usize, Option<usize>)>;

/// The model without the words that name things for a person (origins, unknown constructs'
/// texts): what evaluation depends on.
fn shape(rs: &Ruleset) -> Vec<Shape> {
    // The kernel sorts set elements: the order in a hand-written file does not matter.
    let cond = |c: &Cond| match c.clone() {
        Cond::Unknown(_) => "unknown".to_string(),
        Cond::Dport(l) | Cond::Sport(l) => {
            let mut l = l.to_vec();
            l.sort();
            format!("ports {l:?}")
        }
        Cond::Saddr(l) | Cond::Daddr(l) => {
            // and merges overlapping intervals (`auto-merge`)
            let mut l = l.to_vec();
            l.sort();
            let mut merged: Vec<crate::audit::Span> = Vec::new();
            for x in l {
                match merged.last_mut() {
                    Some(m) if m.family == x.family && x.lo <= m.hi.saturating_add(1) => {
                        m.hi = m.hi.max(x.hi)
                    }
                    _ => merged.push(x),
                }
            }
            format!("{} {merged:?}", matches!(c, Cond::Saddr(_)))
        }
        Cond::Proto(mut l) => {
            l.sort();
            format!("proto {l:?}")
        }
        Cond::CtState(mut l) => {
            l.sort();
            format!("ct {l:?}")
        }
        other => format!("{other:?}"),
    };
    let action = |a: &Action| match a {
        Action::Unknown(_) => "unknown".to_string(),
        Action::DportMap(list) => format!(
            "{:?}",
            list.iter()
                .map(|(r, a)| (r, matches!(a, Action::Unknown(_))))
                .collect::<Vec<_>>()
        ),
        other => format!("{other:?}"),
    };
    rs.chains
        .iter()
        .map(|c| {
            let rules = c
                .rules
                .iter()
                .map(|r| {
                    let mut m: Vec<String> = r
                        .matches
                        .iter()
                        .map(|m| format!("{} {}", m.negate, cond(&m.cond)))
                        .collect();
                    // Several unknown parts of one rule say the same as one.
                    m.dedup();
                    (m, action(&r.action))
                })
                .collect();
            (c.name.clone(), c.base.clone(), rules)
        })
        .collect()
}

fn outcomes(rs: &Ruleset) -> Vec<(Outcome, Place)> {
    let mut out = Vec::new();
    for src in [
        "10.88.1.50",
        "10.88.2.10",
        "10.88.3.7",
        "10.88.4.1",
        "10.88.5.5",
        "10.88.6.6",
        "10.0.0.1",
        "1.2.3.5",
        "2001:db8::1",
        "fe80::1",
    ] {
        let src: std::net::IpAddr = src.parse().unwrap();
        let dsts: &[&str] = if src.is_ipv4() {
            &["10.88.1.11", "10.88.1.100", "10.88.1.101", "10.0.0.2"]
        } else {
            &["2001:db8::2", "::1"]
        };
        for dst in dsts {
            for transport in [Transport::Tcp, Transport::Udp] {
                for port in [
                    1, 22, 53, 80, 85, 1023, 1024, 5060, 8000, 8010, 8041, 9000, 9001, 21002,
                    21012, 21014, 21030, 21999, 65535,
                ] {
                    for hook in [Hook::Input, Hook::Forward] {
                        let d = rs.evaluate(&Packet {
                            src,
                            dst: dst.parse().unwrap(),
                            transport,
                            sport: None,
                            dport: port,
                            hook,
                            sides: Default::default(),
                        });
                        let o = match d.outcome {
                            Outcome::Undecided(_) => Outcome::Undecided(String::new()),
                            o => o,
                        };
                        out.push((o, d.at));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn nft_text_reads_as_the_same_ruleset_as_nft_json() {
    for (t, j) in [
        ("admin.nft-text", "admin.json"),
        ("admin.nft", "admin.json"),
        ("constructs.nft-text", "constructs.json"),
        ("constructs.nft", "constructs.json"),
        ("sets.nft-text", "sets.json"),
        // a hand-written file, and what the kernel made of it
        ("handwritten.nft", "handwritten.json"),
    ] {
        let a = read(t, &fixture(t)).unwrap_or_else(|e| panic!("{e}"));
        let b = crate::audit::read(j, &fixture(j)).unwrap();
        assert_eq!(a.format, Format::NftText);
        let (sa, sb) = (shape(&a), shape(&b));
        assert_eq!(sa.len(), sb.len(), "{t}: chains");
        for (ca, cb) in sa.iter().zip(&sb) {
            assert_eq!(ca.0, cb.0, "{t}");
            assert_eq!(ca.1, cb.1, "{t}: {}", ca.0);
            assert_eq!(ca.2.len(), cb.2.len(), "{t}: {}: rules", ca.0);
            for (i, (ra, rb)) in ca.2.iter().zip(&cb.2).enumerate() {
                assert_eq!(ra, rb, "{t}: {} rule {i}", ca.0);
            }
        }
        assert_eq!(outcomes(&a), outcomes(&b), "{t}");
        // `nft -a` prints the handles: the same as the JSON's, for `firewall --diff`.
        if t.ends_with("-text") {
            for (ca, cb) in a.chains.iter().zip(&b.chains) {
                for (ra, rb) in ca.rules.iter().zip(&cb.rules) {
                    assert_eq!(ra.spec, rb.spec, "{t}");
                    assert!(!ra.spec.is_empty());
                }
            }
        }
    }
}

#[test]
fn rules_are_named_by_their_text_with_handle_or_line() {
    let rs = read("admin.nft-text", &fixture("admin.nft-text")).unwrap();
    assert_eq!(
        rs.chains[0].rules[3].origin,
        "inet filter input handle 9: ip saddr 10.88.1.0/24 ip daddr 10.88.1.11 tcp dport 21012 accept"
    );
    let rs = text(
        "table inet f {\n  chain c {\n    tcp dport 22 accept comment \"ssh\" # for admins\n  }\n}\n",
    );
    assert_eq!(
        rs.chains[0].rules[0].origin,
        "inet f c line 3: tcp dport 22 accept comment \"ssh\""
    );
    assert_eq!(rs.chains[0].rules[0].spec, "");
}

fn outcome(rs: &Ruleset, src: &str, port: u16) -> Outcome {
    rs.evaluate(&pkt(src, "10.0.0.1", Transport::Tcp, port))
        .outcome
}

#[test]
fn hand_written_files_define_add_rule_flush_and_reopened_tables() {
    let rs = text(
        "#!/usr/sbin/nft -f\n\
         flush ruleset\n\
         define NETS = { 10.1.0.0/16, 10.2.0.0/16 }  # two sites\n\
         define SSH = 22\n\
         table inet f {\n\
           chain c { type filter hook input priority 0; policy accept; }\n\
         }\n\
         table inet old { chain c { type filter hook input priority 0; policy drop; } }\n\
         flush ruleset\n\
         table inet f {\n\
           set nets { type ipv4_addr; flags interval; elements = { $NETS, 10.3.0.0/16 } }\n\
           chain c {\n\
             type filter hook input priority 0\n\
             policy accept\n\
             ip saddr @nets tcp dport $SSH accept; tcp dport $SSH drop\n\
             tcp dport {\n\
               80,\n\
               443\n\
             } drop\n\
           }\n\
         }\n\
         table inet f { chain c { policy drop; } }\n\
         add rule inet f c tcp dport 8080 accept\n\
         insert rule inet f c tcp dport 8080 drop\n\
         add element inet f nets { 10.4.0.0/16 }\n",
    );
    assert_eq!(rs.chains.len(), 1, "flush ruleset forgets what came before");
    let base = rs.chains[0].base.as_ref().unwrap();
    assert!(
        !base.policy_accept,
        "a reopened chain takes the later policy"
    );
    assert_eq!(outcome(&rs, "10.3.1.1", 22), Outcome::Accept);
    assert_eq!(outcome(&rs, "10.4.1.1", 22), Outcome::Accept);
    assert_eq!(outcome(&rs, "10.9.1.1", 22), Outcome::Drop);
    assert_eq!(outcome(&rs, "10.9.1.1", 443), Outcome::Drop);
    assert_eq!(
        outcome(&rs, "10.9.1.1", 8080),
        Outcome::Drop,
        "insert puts first"
    );
    assert_eq!(outcome(&rs, "10.9.1.1", 8081), Outcome::Drop);
    assert_eq!(rs.chains[0].rules.len(), 5);
    // `$SSH` is named by the text as written
    assert!(
        rs.chains[0].rules[1]
            .origin
            .ends_with("line 15: ip saddr @nets tcp dport $SSH accept")
    );
}

#[test]
fn priorities_and_families() {
    let rs = text(
        "table ip a { chain c { type filter hook input priority filter + 10; policy drop; } }\n\
         table ip6 b { chain c { type filter hook input priority -150; policy accept; } }\n\
         table c { chain c { type filter hook prerouting priority mangle - 5; policy accept; } }\n\
         table netdev d { chain c { type filter hook ingress devices = { lo, eth0 } priority -500; policy accept; } }\n\
         table bridge e { chain c { type filter hook input priority 0; policy drop; } }\n\
         table inet n { chain c { type nat hook prerouting priority dstnat; policy accept; dnat ip to 10.0.0.1:8080; } }\n",
    );
    let prio: Vec<Option<i32>> = rs
        .chains
        .iter()
        .map(|c| c.base.as_ref().map(|b| b.priority))
        .collect();
    assert_eq!(
        prio,
        [Some(10), Some(-150), Some(-155), Some(-500), None, None]
    );
    assert_eq!(
        rs.chains[2].name, "ip c c",
        "a table without a family is ip"
    );
    assert_eq!(outcome(&rs, "10.0.0.9", 1), Outcome::Drop);
}

#[test]
fn what_is_not_understood_is_cannot_decide_and_keeps_its_verdict() {
    let rs = text(
        "table inet f {\n chain c {\n type filter hook input priority 0; policy drop;\n\
         ip saddr 10.1.0.0/16 osf name \"Linux\" accept\n\
         ip saddr 10.2.0.0/16 @th,16,16 22 drop\n\
         ip saddr 10.3.0.0/16 ip6 hbh nexthdr 6 counter\n\
         ip saddr 10.4.0.0/16 frobnicate { a : b } vmap x\n\
         tcp dport 22 accept\n }\n}\n",
    );
    let rules = &rs.chains[0].rules;
    assert_eq!(rules[0].action, Action::Accept);
    assert!(
        rules[0]
            .matches
            .iter()
            .any(|m| m.cond == Cond::Unknown("`osf name \"Linux\" accept` (not parsed)".into()))
    );
    assert_eq!(rules[1].action, Action::Drop);
    assert_eq!(rules[2].action, Action::Continue);
    assert!(matches!(rules[3].action, Action::Unknown(_)));
    // The known source test still applies: other sources are not held up.
    assert_eq!(outcome(&rs, "10.9.0.1", 22), Outcome::Accept);
    match outcome(&rs, "10.1.0.1", 22) {
        Outcome::Undecided(w) => assert!(w.contains("osf name"), "{w}"),
        o => panic!("{o:?}"),
    }
    assert!(matches!(
        outcome(&rs, "10.2.0.1", 22),
        Outcome::Undecided(_)
    ));
    // a rule without a verdict decides nothing, whatever it matches
    assert_eq!(outcome(&rs, "10.3.0.1", 22), Outcome::Accept);
    assert!(matches!(
        outcome(&rs, "10.4.0.1", 22),
        Outcome::Undecided(_)
    ));
}

#[test]
fn statements_that_decide_nothing_and_nat_chains() {
    let rs = text(
        "table inet f {\n\
         counter hits { packets 0 bytes 0 }\n\
         quota q { 25 mbytes }\n\
         ct helper ftp { type \"ftp\" protocol tcp; }\n\
         flowtable ft { hook ingress priority 0; devices = { lo }; }\n\
         chain c {\n type filter hook input priority 0; policy drop;\n\
         ct state established,related counter packets 5 bytes 300 accept\n\
         meta mark set 0x1 ct mark set meta mark counter name \"hits\"\n\
         log prefix \"in: \" level info flags all\n\
         notrack\n\
         add @seen { ip saddr }\n\
         iif \"lo\" accept\n\
         meta l4proto tcp tcp flags syn / syn,ack ct state new tcp dport 22 log prefix \"ssh \" accept comment \"ssh\"\n\
         udp dport 53 reject with icmpx type port-unreachable\n\
         tcp dport 23 reject with tcp reset\n\
         tcp dport 24 log flags tcp sequence,options level warn accept\n\
         }\n}\n",
    );
    assert_eq!(outcome(&rs, "10.9.0.1", 25), Outcome::Drop);
    // the SYN test is not evaluated: "cannot decide", never a guess
    assert!(matches!(
        outcome(&rs, "10.9.0.1", 22),
        Outcome::Undecided(_)
    ));
    assert_eq!(outcome(&rs, "10.9.0.1", 23), Outcome::Drop);
    assert_eq!(outcome(&rs, "10.9.0.1", 24), Outcome::Accept);
    let r = &rs.chains[0].rules[6];
    assert!(r.origin.ends_with("comment \"ssh\""), "{}", r.origin);
}

#[test]
fn verdict_maps_and_concatenations() {
    let rs = text(
        "table inet f {\n\
         map ports { type inet_service : verdict; elements = { 22 : accept, 23 : drop, 80 : jump web } }\n\
         set svc { type ipv4_addr . inet_service; flags interval; elements = { 10.0.0.1 . 8000-8010 comment \"x\", 10.0.0.2 . 9000 } }\n\
         chain web { ip saddr 10.5.0.0/16 accept }\n\
         chain c { type filter hook input priority 0; policy drop;\n\
         ct state vmap { established : accept, related : accept, invalid : drop }\n\
         ip daddr . tcp dport @svc accept\n\
         ip daddr . tcp dport { 10.0.0.1 . 7000, 10.0.0.1 . 7001 } accept\n\
         tcp dport vmap @ports\n\
         tcp dport & 1 == 0 tcp dport 6000-6010 accept\n\
         tcp dport != { 1-1023 } tcp dport <= 2000 accept\n }\n}\n",
    );
    assert_eq!(outcome(&rs, "10.9.0.1", 8005), Outcome::Accept);
    assert_eq!(outcome(&rs, "10.9.0.1", 7001), Outcome::Accept);
    assert_eq!(outcome(&rs, "10.9.0.1", 22), Outcome::Accept);
    assert_eq!(outcome(&rs, "10.5.0.1", 80), Outcome::Accept);
    assert_eq!(outcome(&rs, "10.9.0.1", 80), Outcome::Drop);
    assert_eq!(outcome(&rs, "10.9.0.1", 6002), Outcome::Accept);
    assert_eq!(outcome(&rs, "10.9.0.1", 6003), Outcome::Drop);
    assert_eq!(outcome(&rs, "10.9.0.1", 1500), Outcome::Accept);
    assert_eq!(outcome(&rs, "10.9.0.1", 2001), Outcome::Drop);
    assert_eq!(outcome(&rs, "10.9.0.1", 1000), Outcome::Drop);
}

#[test]
fn structural_errors_are_located() {
    for (t, at, what) in [
        ("table inet f {\n chain c {\n", "1:14", "never closed"),
        ("table inet f { }\n}\n", "2:1", "without a matching"),
        (
            "table inet f {\n chain c { iifname \"eth0 accept }\n}\n",
            "2:20",
            "unterminated string",
        ),
        ("table {\n}\n", "1:1", "without a name"),
        ("table inet {\n}\n", "1:1", "without a name"),
        ("tcp dport 22 accept\n", "1:1", "outside a chain"),
        (
            "table inet f {\n tcp dport 22 accept\n}\n",
            "2:2",
            "outside a chain",
        ),
        ("include \"/etc/nft/*.nft\"\n", "1:1", "include"),
        (
            "define X = 1\ntable inet f { chain c { tcp dport $Y accept } }\n",
            "2:36",
            "`$Y` is not defined",
        ),
        ("define X\n", "1:1", "without `=`"),
        (
            "table inet f { chain c { type filter hook input priority nope; } }\n",
            "1:49",
            "priority",
        ),
        (
            "table inet f { chain c { policy maybe; } }\n",
            "1:26",
            "policy",
        ),
        (
            "table inet f { set s { elements = { 1 2 } } }\n",
            "1:39",
            "set element",
        ),
        (
            "add rule inet f c tcp dport 22 accept\n",
            "1:17",
            "not defined",
        ),
        ("delete rule inet f c handle 3\n", "1:1", "not read"),
        ("table inet f { chain c { } } x\n", "1:30", "after `}`"),
        ("chain c { }\n", "1:1", "outside a table"),
    ] {
        let e = err(t);
        assert!(e.starts_with(&format!("t.nft:{at}: ")), "{t:?}: {e}");
        assert!(e.contains(what) && e.contains("hint: "), "{t:?}: {e}");
    }
}

#[test]
fn hostile_text_is_escaped_in_names() {
    let rs = text(
        "table inet f { chain c { type filter hook input priority 0; iifname \"a\u{1b}[31m\" accept; } }\n",
    );
    let o = &rs.chains[0].rules[0].origin;
    assert!(!o.contains('\u{1b}'), "{o}");
}

mod robustness {
    use super::*;
    use proptest::prelude::*;

    /// Words of nft's syntax, to reach deep into the parser rather than fail on line one.
    const WORDS: &[&str] = &[
        "table",
        "inet",
        "ip",
        "f",
        "chain",
        "c",
        "set",
        "map",
        "s",
        "{",
        "}",
        ";",
        ",",
        "\n",
        "type",
        "filter",
        "hook",
        "input",
        "priority",
        "0",
        "-150",
        "+",
        "policy",
        "drop",
        "accept",
        "jump",
        "goto",
        "return",
        "tcp",
        "udp",
        "dport",
        "sport",
        "saddr",
        "daddr",
        "10.0.0.0/8",
        "1.2.3.4-1.2.3.9",
        "::1",
        "22",
        "80-90",
        ".",
        ":",
        "@s",
        "$X",
        "define",
        "X",
        "=",
        "==",
        "!=",
        "<",
        "&",
        "1",
        "ct",
        "state",
        "new",
        "established",
        "meta",
        "l4proto",
        "iif",
        "\"lo\"",
        "\"",
        "#",
        "# handle 3",
        "vmap",
        "elements",
        "flags",
        "interval",
        "counter",
        "log",
        "prefix",
        "limit",
        "rate",
        "5/second",
        "reject",
        "with",
        "tcp reset",
        "comment",
        "(",
        ")",
        "/",
        "flush",
        "ruleset",
        "add",
        "rule",
        "insert",
        "element",
        "include",
        "é",
        "\\\n",
        "ipv4_addr",
        "inet_service",
        "typeof",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(t in "\\PC{0,300}") {
            if let Ok(rs) = read("x", &t) {
                for src in ["10.0.0.1", "::1"] {
                    let _ = rs.evaluate(&pkt(src, if src == "::1" { "::2" } else { "10.0.0.2" }, Transport::Tcp, 22));
                }
            }
        }

        #[test]
        fn nft_like_text_never_panics(words in prop::collection::vec(prop::sample::select(WORDS), 0..120)) {
            let t = format!("table inet f {{ chain c {{ type filter hook input priority 0; {} }} }}\n", words.join(" "));
            for t in [t, words.join(" ")] {
                if let Ok(rs) = read("x", &t) {
                    let _ = rs.evaluate(&pkt("10.0.0.1", "10.0.0.2", Transport::Tcp, 22));
                }
            }
        }

        /// nft's own text, cut, with a character deleted, inserted or duplicated anywhere:
        /// an answer (a ruleset or a located error), never a panic.
        #[test]
        fn mutated_nft_text_never_panics(
            file in prop::sample::select(&["admin.nft-text", "constructs.nft-text", "sets.nft-text", "handwritten.nft"][..]),
            at in 0usize..4000,
            len in 0usize..40,
            insert in prop::sample::select(&["", "{", "}", "\"", ";", "\n", "#", "$X", ",", " . ", " : ", "@", "é"][..]),
        ) {
            let src = fixture(file);
            let mut chars: Vec<char> = src.chars().collect();
            let at = at % (chars.len() + 1);
            let end = (at + len).min(chars.len());
            chars.splice(at..end, insert.chars());
            let t: String = chars.into_iter().collect();
            match read("x", &t) {
                Ok(rs) => { let _ = rs.evaluate(&pkt("10.88.2.10", "10.88.1.100", Transport::Tcp, 21002)); }
                Err(AuditError::Syntax { line, col, .. }) => prop_assert!(line >= 1 && col >= 1),
                Err(AuditError::Content { .. }) => {}
            }
        }

        /// Text that nft prints from JSON and the JSON itself: the same verdict for any packet.
        #[test]
        fn text_and_json_agree_on_any_packet(
            a in 0u32..=u32::MAX,
            port in 1u16..=65535,
            udp in any::<bool>(),
            pair in prop::sample::select(&[("admin.nft-text", "admin.json"), ("constructs.nft-text", "constructs.json"), ("sets.nft-text", "sets.json")][..]),
        ) {
            let t = read(pair.0, &fixture(pair.0)).unwrap();
            let j = crate::audit::read(pair.1, &fixture(pair.1)).unwrap();
            let src = std::net::Ipv4Addr::from(a).to_string();
            let transport = if udp { Transport::Udp } else { Transport::Tcp };
            for dst in ["10.88.1.100", "10.88.1.101", "10.0.0.2"] {
                let p = pkt(&src, dst, transport, port);
                let (x, y) = (t.evaluate(&p), j.evaluate(&p));
                prop_assert_eq!(std::mem::discriminant(&x.outcome), std::mem::discriminant(&y.outcome));
                prop_assert_eq!(x.at, y.at);
            }
        }
    }
}

#[test]
fn ct_state_vmap_gives_a_new_connection_the_verdict_of_new() {
    let rs = text(
        "table inet f { chain c { type filter hook input priority 0; policy accept;\n\
         ct state vmap { established : accept, new : jump n, invalid : drop }\n }\n\
         chain n { tcp dport 22 drop; }\n}\n",
    );
    assert_eq!(outcome(&rs, "10.9.0.1", 22), Outcome::Drop);
    assert_eq!(outcome(&rs, "10.9.0.1", 23), Outcome::Accept);
    let rs = text(
        "table inet f { chain c { type filter hook input priority 0; policy accept;\n ct state vmap { new : drop }\n }\n}\n",
    );
    assert_eq!(outcome(&rs, "10.9.0.1", 23), Outcome::Drop);
    let rs = text(
        "table inet f { chain c { type filter hook input priority 0; policy accept;\n ct state vmap { 1 : drop }\n }\n}\n",
    );
    assert!(matches!(
        outcome(&rs, "10.9.0.1", 23),
        Outcome::Undecided(_)
    ));
}

#[test]
fn the_generators_own_files_read_delete_table_included() {
    let rs = text(
        "table inet t { chain old { type filter hook input priority 0; policy drop; } }\n\
         table inet keep { chain c { type filter hook input priority 5; policy accept; } }\n\
         table inet t {}\ndelete table inet t\n\
         table inet t { chain c { type filter hook input priority 0; policy accept; } }\n",
    );
    let names: Vec<&str> = rs.chains.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["inet keep c", "inet t c"]);
    assert_eq!(outcome(&rs, "10.9.0.1", 22), Outcome::Accept);
}

/// The reading time of a large export (docs/performance.md): `SCC_NFT_TEXT=FILE cargo test
/// --release --lib read_time -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: needs SCC_NFT_TEXT=FILE"]
fn read_time() {
    let path = std::env::var("SCC_NFT_TEXT").expect("SCC_NFT_TEXT=FILE");
    let t = std::fs::read_to_string(&path).unwrap();
    let start = std::time::Instant::now();
    let rs = crate::audit::read(&path, &t).unwrap_or_else(|e| panic!("{e}"));
    let rules: usize = rs.chains.iter().map(|c| c.rules.len()).sum();
    eprintln!(
        "{path}: {} bytes, {} chains, {rules} rules, read in {:.3} s ({})",
        t.len(),
        rs.chains.len(),
        start.elapsed().as_secs_f64(),
        rs.format.as_str()
    );
}

#[test]
fn hostile_sizes_are_refused_not_exhausted() {
    // definitions that nest ten by ten: a located error, not a billion tokens
    let mut t = String::from("define A0 = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 }\n");
    for i in 1..12 {
        let p = i - 1;
        t.push_str(&format!("define A{i} = {{ $A{p}, $A{p}, $A{p}, $A{p}, $A{p}, $A{p}, $A{p}, $A{p}, $A{p}, $A{p} }}\n"));
    }
    assert!(err(&t).contains("expands to more than"));
    // one large definition used in many rules: refused before the copies are made (a 1.4 MB
    // file of this shape once took 1.6 GB before its refusal)
    let list: Vec<String> = (0..100_000).map(|i| (1 + i % 60_000).to_string()).collect();
    let mut t = format!(
        "define P = {{ {} }}\ntable inet f {{ chain c {{\n",
        list.join(", ")
    );
    for _ in 0..30 {
        t.push_str("tcp dport $P accept\n");
    }
    t.push_str("} }\n");
    assert!(err(&t).contains("expand to more than"), "{}", err(&t));
    // deep nesting: "cannot decide" or an error, never a stack overflow
    let deep = format!(
        "table inet f {{ chain c {{ tcp dport {}22{} accept; }} }}\n",
        "{ ".repeat(100_000),
        " }".repeat(100_000)
    );
    if let Ok(rs) = read("t.nft", &deep) {
        assert!(matches!(
            outcome(&rs, "10.0.0.1", 22),
            Outcome::Accept | Outcome::Undecided(_)
        ));
    }
    let deep = format!(
        "table inet f {{ set s {{ elements = {}22{} }} }}\n",
        "{ ".repeat(100_000),
        " }".repeat(100_000)
    );
    let _ = read("t.nft", &deep);
    // one huge line reads in linear time
    let long = format!(
        "table inet f {{ chain c {{ tcp dport {{ {} }} accept; }} }}\n",
        (1..60_000)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let start = std::time::Instant::now();
    text(&long);
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
}
