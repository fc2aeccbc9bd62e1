//! The text reader's rules: nft's own text reads as the same ruleset as nft's JSON, hand-written
//! files (define, comments, `add rule`), what becomes "cannot decide", and the located errors.

use super::*;
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

/// The model without the words that name things for a person (origins, unknown constructs'
/// texts): what evaluation depends on.
fn shape(
    rs: &Ruleset,
) -> Vec<(
    String,
    Option<crate::audit::Base>,
    Vec<(Vec<String>, String)>,
)> {
    // The kernel sorts set elements: the order in a hand-written file does not matter.
    let cond = |c: &Cond| match c.clone() {
        Cond::Unknown(_) => "unknown".to_string(),
        Cond::Dport(mut l) | Cond::Sport(mut l) => {
            l.sort();
            format!("ports {l:?}")
        }
        Cond::Saddr(mut l) | Cond::Daddr(mut l) => {
            l.sort();
            format!("{} {l:?}", matches!(c, Cond::Saddr(_)))
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

fn outcomes(rs: &Ruleset) -> Vec<(Outcome, Option<(usize, Option<usize>)>)> {
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
