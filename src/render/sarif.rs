//! SARIF 2.1.0 logs of `check`'s findings and `audit`'s answers, for GitHub and GitLab code
//! scanning: stable rule ids, locations in the deployment file or the ruleset, fingerprints.
//!
//! The rule ids are the codes `check` prints (C1xx findings, E0xx/C0xx input errors, described by
//! docs/checks.md's tables, which are read here so the two never disagree) and the audit finding
//! kinds [`AUDIT_RULES`] (`SCC-A001`…). The audit log is made from the audit's own report (the
//! rows `audit --format json` prints), not from its JSON read back.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::audit::compare::{Report, Subject};
use crate::diag::{Diagnostic, Location, Severity};
use crate::plan::check::{CHECKS, Finding};

/// The schema the logs follow (the `$id` of the OASIS schema vendored in tests/sarif/).
pub const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The key of our fingerprint in `partialFingerprints`; the version changes only if the
/// identity of a finding is ever computed differently.
const FINGERPRINT: &str = "sccPortsFinding/v1";

/// The audit finding kinds: (id, name, level, short description, what to do). Documented in
/// docs/audit.md (§SARIF); ids are never reused for another meaning.
pub const AUDIT_RULES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "SCC-A001",
        "flow-blocked",
        "error",
        "a planned flow is blocked by the ruleset",
        "Open the flow: `scc-ports firewall --diff RULESET` writes the rule to add; the location is the rule (or chain policy) that blocks it.",
    ),
    (
        "SCC-A002",
        "flow-partial",
        "error",
        "part of a planned flow (some ports or some sources) is blocked by the ruleset",
        "The message names the blocked ports and sources; `scc-ports firewall --diff RULESET` writes what opens them; the location is the blocking rule.",
    ),
    (
        "SCC-A003",
        "flow-undecided",
        "warning",
        "whether the ruleset admits a planned flow cannot be decided from the export",
        "The rule matches on something the export does not settle (an interface, a program, a profile): docs/audit.md, \"What cannot decide covers\".",
    ),
    (
        "SCC-A004",
        "open-beyond-plan",
        "warning",
        "the ruleset opens a port the plan does not need",
        "Narrow or remove the rule at the location (`scc-ports firewall --diff RULESET` writes the change), or add the service to the deployment if it is meant.",
    ),
    (
        "SCC-A005",
        "opening-undecided",
        "warning",
        "a port may be open beyond the plan: the rule that would open it cannot be decided",
        "The rule matches on something the export does not settle (an interface, a program, a profile); check it by hand or make it explicit.",
    ),
];

/// docs/checks.md: the tables of codes, read for the rules' descriptions.
const CODES_DOC: &str = include_str!("../../docs/checks.md");

/// Every code of docs/checks.md's tables and its description (the last cell of its row).
pub fn documented_codes() -> Vec<(&'static str, &'static str)> {
    CODES_DOC
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line
                .strip_prefix("| ")?
                .strip_suffix(" |")?
                .split(" | ")
                .collect();
            let code = *cells.first()?;
            let is_code = code.len() == 4
                && matches!(code.as_bytes()[0], b'C' | b'E')
                && code[1..].bytes().all(|b| b.is_ascii_digit());
            (is_code && cells.len() >= 2).then(|| (code, *cells.last().expect("two cells")))
        })
        .collect()
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "note",
    }
}

/// Markdown's inline code marks out of a description, for the plain-text form.
fn plain(text: &str) -> String {
    text.replace('`', "")
}

fn rule(id: &str, name: &str, level: &str, short: &str, full: &str, help: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "shortDescription": {"text": plain(short)},
        "fullDescription": {"text": plain(full), "markdown": full},
        "help": {"text": plain(help), "markdown": help},
        "defaultConfiguration": {"level": level},
    })
}

/// The rules of a `check` log: every check (C1xx), then every input error code (E0xx, and the
/// catalog's C0xx), in a fixed order so that rule indexes are stable.
fn check_rules() -> Vec<Value> {
    let docs = documented_codes();
    let doc = |code: &str| docs.iter().find(|(c, _)| *c == code).map(|(_, d)| *d);
    let mut rules: Vec<Value> = CHECKS
        .iter()
        .map(|&(code, name, severity, what)| {
            rule(
                code,
                name,
                level(severity),
                what,
                doc(code).unwrap_or(what),
                &format!(
                    "docs/checks.md, {code} ({name}). Each finding's message ends with its own hint."
                ),
            )
        })
        .collect();
    for &(code, what) in &docs {
        if CHECKS.iter().any(|c| c.0 == code) {
            continue;
        }
        let short = what.split(';').next().unwrap_or(what);
        rules.push(rule(
            code,
            &format!("input-error-{}", code.to_ascii_lowercase()),
            "error",
            short,
            what,
            &format!(
                "docs/checks.md, {code}: the file cannot be used until it is fixed (exit 2). The message ends with the hint."
            ),
        ));
    }
    rules
}

fn audit_rules() -> Vec<Value> {
    AUDIT_RULES
        .iter()
        .map(|&(id, name, level, short, help)| rule(id, name, level, short, short, help))
        .collect()
}

/// A relative or absolute path as a URI reference: `\` becomes `/`, and every byte that may not
/// stand in a path segment is percent-encoded.
pub fn uri(path: &str) -> String {
    let mut out = String::new();
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn physical(file: &str, line: usize, column: Option<usize>) -> Value {
    let mut region = json!({"startLine": line.max(1)});
    if let Some(c) = column {
        region["startColumn"] = json!(c.max(1));
    }
    json!({"physicalLocation": {"artifactLocation": {"uri": uri(file)}, "region": region}})
}

fn fingerprint(parts: &[&str]) -> Value {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    json!({ FINGERPRINT: hex })
}

fn log(category: &str, rules: Vec<Value>, results: Vec<Value>) -> Value {
    json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "scc-ports",
                "version": env!("CARGO_PKG_VERSION"),
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "automationDetails": {"id": category},
            "columnKind": "unicodeCodePoints",
            "results": results,
        }]
    })
}

fn rule_index(rules: &[Value], id: &str) -> usize {
    rules
        .iter()
        .position(|r| r["id"] == id)
        .expect("every result's rule is listed")
}

fn with_hint(message: &str, hint: Option<&str>) -> String {
    match hint {
        Some(h) if !h.is_empty() => format!("{message}. Hint: {h}"),
        _ => message.to_string(),
    }
}

/// The log of `check`: one result per finding, at the first place the file names, the other
/// places as related locations. `file` is the deployment's name (for a finding with no place).
pub fn check(findings: &[Finding], file: &str) -> Value {
    let rules = check_rules();
    let results = findings
        .iter()
        .map(|f| {
            let located: Vec<(&str, &Location)> = f
                .places
                .iter()
                .filter_map(|p| Some((p.what.as_str(), p.location.as_ref()?)))
                .collect();
            let primary = match located.first() {
                Some((_, l)) => physical(&l.file, l.line, Some(l.column)),
                None => physical(file, 1, None),
            };
            let related: Vec<Value> = located
                .iter()
                .enumerate()
                .skip(1)
                .map(|(i, (what, l))| {
                    let mut v = physical(&l.file, l.line, Some(l.column));
                    v["id"] = json!(i);
                    v["message"] = json!({"text": what});
                    v
                })
                .collect();
            // The identity of a finding is what it is about, not where the file says it: lines
            // move when the file is edited above them.
            let mut key: Vec<&str> = vec![f.code];
            key.extend(f.places.iter().map(|p| p.what.as_str()));
            let mut r = json!({
                "ruleId": f.code,
                "ruleIndex": rule_index(&rules, f.code),
                "level": level(f.severity),
                "message": {"text": with_hint(&f.message, Some(&f.hint))},
                "locations": [primary],
                "partialFingerprints": fingerprint(&key),
            });
            if !related.is_empty() {
                r["relatedLocations"] = json!(related);
            }
            r
        })
        .collect();
    log("scc-ports/check/", rules, results)
}

/// The log of a file that cannot be used (E0xx, C0xx): one result per diagnostic, at its
/// location.
pub fn diagnostics(diags: &[Diagnostic], file: &str) -> Value {
    let rules = check_rules();
    let results = diags
        .iter()
        .map(|d| {
            let at = match &d.location {
                Some(l) => physical(&l.file, l.line, Some(l.column)),
                None => physical(file, 1, None),
            };
            let mut r = json!({
                "ruleId": d.code,
                "level": level(d.severity),
                "message": {"text": with_hint(&d.message, d.hint.as_deref())},
                "locations": [at],
                "partialFingerprints": fingerprint(&[d.code, &d.message]),
            });
            if let Some(i) = rules.iter().position(|r| r["id"] == d.code) {
                r["ruleIndex"] = json!(i);
            }
            r
        })
        .collect();
    log("scc-ports/check/", rules, results)
}

/// Where a rule is, as far as its text says: a line of the ruleset (or of one of its files), and
/// the rule's name for a logical location.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleAt {
    /// A file of a firewalld configuration directory, when the rule names it (`zones/x.xml:10:`).
    pub file: Option<String>,
    pub line: Option<usize>,
    /// What names the rule in the ruleset: `inet filter input handle 19`, `rule "SCC clients"`,
    /// `filter INPUT` (a chain's policy).
    pub name: String,
}

/// Where `sep` first stands outside parentheses: `Windows Firewall inbound (block wins; default
/// block): policy drop` is one rule.
fn outside_parentheses(s: &str, sep: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 && s[i..].starts_with(sep) => return Some(i),
            _ => {}
        }
    }
    None
}

/// Digits at the start of `s`, as a number, and what follows them.
fn number(s: &str) -> Option<(usize, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// Reads the deciding rule's text as the readers write it (docs/audit.md): iptables-save, nft text
/// without handles, ASA, PAN-OS, FortiOS and SRX say `line N`, firewalld's text `(line N)`, its
/// XML files `PATH.xml:N:`; nft says `handle N`, Windows and AWS name the rule. Of several
/// deciding rules (`; `) the first is taken.
pub fn rule_at(rule: &str) -> RuleAt {
    let rule = rule.strip_prefix("cannot decide: ").unwrap_or(rule);
    let first = outside_parentheses(rule, "; ").map_or(rule, |i| &rule[..i]);
    let head = outside_parentheses(first, ": ").map_or(first, |i| &first[..i]);
    let mut at = RuleAt {
        file: None,
        line: None,
        name: crate::audit::clip(head),
    };
    // `line N` as a word: at the start, after a space or a parenthesis, followed by `:` or `)`.
    let mut from = 0;
    while let Some(i) = first[from..].find("line ") {
        let i = from + i;
        from = i + 5;
        let before = first[..i].chars().next_back();
        if !matches!(before, None | Some(' ' | '(')) {
            continue;
        }
        if let Some((n, rest)) = number(&first[i + 5..]) {
            if rest.starts_with(':') || rest.starts_with(')') {
                at.line = Some(n);
                return at;
            }
        }
    }
    // A firewalld XML file: `zone public DIR/zones/public.xml:10: rule …`, or `(…xml:2)`.
    for word in first.split(' ') {
        let word = word.trim_start_matches('(');
        if let Some((path, rest)) = word.split_once(".xml:") {
            if let Some((n, ":" | ")" | "):")) = number(rest) {
                at.file = Some(format!("{path}.xml"));
                at.line = Some(n);
                return at;
            }
        }
    }
    at
}

/// The line of `text` (from 1) where the rule named by `at` stands, when the export says it:
/// nft's `"handle": N` (JSON) or `# handle N` (text), a Windows rule's quoted name.
fn find_line(text: &str, name: &str) -> Option<usize> {
    let needles: Vec<String> = if let Some(i) = name.rfind("handle ") {
        let (n, _) = number(&name[i + 7..])?;
        vec![
            format!("\"handle\": {n}"),
            format!("\"handle\":{n}"),
            format!("# handle {n}"),
        ]
    } else if let Some(q) = name.find('"') {
        let quoted = &name[q..];
        let end = quoted[1..].find('"')? + 2;
        vec![quoted[..end].to_string()]
    } else {
        // A chain's policy: iptables-save's `:INPUT DROP [0:0]`, nft text's `chain input {`.
        let words: Vec<&str> = name.split(' ').collect();
        match words.as_slice() {
            [_, chain] => vec![format!(":{chain} ")],
            [_, _, chain] => vec![format!("chain {chain} {{")],
            _ => return None,
        }
    };
    text.lines()
        .position(|l| {
            needles.iter().any(|n| {
                l.match_indices(n.as_str()).any(|(i, _)| {
                    // `handle 1` must not match `handle 12`.
                    !l[i + n.len()..].starts_with(|c: char| c.is_ascii_digit())
                })
            })
        })
        .map(|i| i + 1)
}

/// `found` remembers each rule name's line: an export is searched once per rule, not once per
/// result (a rule opens many ports; an nft export can be megabytes on one line).
fn ruleset_location(
    rule: &str,
    ruleset: &str,
    text: Option<&str>,
    found: &mut std::collections::HashMap<String, Option<usize>>,
) -> Value {
    let at = rule_at(rule);
    let line = at.line.or_else(|| {
        *found
            .entry(at.name.clone())
            .or_insert_with(|| find_line(text?, &at.name))
    });
    let file = at.file.as_deref().unwrap_or(ruleset);
    // Code scanning shows a result only at a line: where the export does not say, the first
    // (a `nft -j` export is one line), and the logical location names the rule.
    let mut loc = physical(file, line.unwrap_or(1), None);
    loc["logicalLocations"] = json!([{"fullyQualifiedName": at.name, "kind": "object"}]);
    loc
}

/// The log of `audit`: one result per flow not admitted and per opening beyond the plan, at the
/// deciding rule in the ruleset. `ruleset` is the export's path as given, `text` its content
/// (to find an nft handle's or a named rule's line).
pub fn audit(report: &Report, ruleset: &str, text: Option<&str>) -> Value {
    let ruleset = report.ruleset.as_deref().unwrap_or(ruleset);
    let rules = audit_rules();
    // Who the ruleset is: a node's or a network firewall's name (stable across runs, unlike a
    // path that may be a temporary copy), else the ruleset's path.
    let who = match &report.subject {
        Some(Subject {
            kind,
            name: Some(n),
        }) => format!("{kind} {n}"),
        Some(Subject { kind, name: None }) => kind.to_string(),
        None => ruleset.to_string(),
    };
    let mut results = Vec::new();
    let mut found = std::collections::HashMap::new();
    let mut push = |id: &str, message: String, key: Vec<&str>, rule: &str| {
        let rule_def = AUDIT_RULES.iter().find(|r| r.0 == id).expect("known id");
        let mut parts = vec![id, who.as_str()];
        parts.extend(key);
        results.push(json!({
            "ruleId": id,
            "ruleIndex": rule_index(&rules, id),
            "level": rule_def.2,
            "message": {"text": message},
            "locations": [ruleset_location(rule, ruleset, text, &mut found)],
            "partialFingerprints": fingerprint(&parts),
        }));
    };
    for f in &report.flows {
        let id = match f.status {
            "blocked" => "SCC-A001",
            "partial" => "SCC-A002",
            "undecided" => "SCC-A003",
            _ => continue,
        };
        let mut m = format!(
            "{}.{}: {} {} from {} to {} is {}",
            f.component, f.port_id, f.transport, f.ports, f.zone, f.address, f.status
        );
        if f.status == "partial" && !f.blocked.is_empty() {
            m.push_str(&format!(" (ports {} blocked", f.blocked.join(", ")));
            if !f.blocked_sources.is_empty() {
                m.push_str(&format!(" from {}", f.blocked_sources.join(", ")));
            }
            m.push(')');
        }
        m.push_str(&format!(" by {}", f.rule));
        push(
            id,
            m,
            vec![&f.component, &f.port_id, &f.zone, &f.address, &f.transport],
            &f.rule,
        );
    }
    for e in &report.openings {
        let undecided = e.undecided();
        let id = if undecided { "SCC-A005" } else { "SCC-A004" };
        let (sources, addresses) = (e.sources.join(", "), e.addresses.join(", "));
        let except: Vec<String> = e
            .except
            .iter()
            .map(|x| {
                format!(
                    "{} to {} from {}",
                    x.ports,
                    x.addresses.join(", "),
                    x.sources.join(", ")
                )
            })
            .collect();
        let m = format!(
            "{} {} to {} from {}{} {} beyond the plan, by {}",
            e.transport,
            e.ports,
            addresses,
            sources,
            if except.is_empty() {
                String::new()
            } else {
                format!(" (except {})", except.join("; "))
            },
            if undecided { "may be open" } else { "is open" },
            e.rule
        );
        push(
            id,
            m,
            vec![e.transport, &e.ports, &sources, &addresses],
            &e.rule,
        );
    }
    let category = format!("scc-ports/audit/{}/", who.replace(' ', "-"));
    log(&category, rules, results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::compare::{Except, Opening, Summary};
    use crate::audit::{Decision, Outcome};

    #[test]
    fn the_readers_rule_texts_give_their_lines() {
        let at = |r: &str| {
            let a = rule_at(r);
            (a.file, a.line, a.name)
        };
        assert_eq!(
            at("line 19: -A INPUT -s 10.88.5.0/24 -j ACCEPT"),
            (None, Some(19), "line 19".into())
        );
        assert_eq!(
            at("zone public (line 92): service ssh").1,
            Some(92),
            "firewalld text"
        );
        assert_eq!(
            at("inet filter input line 12: tcp dport 22 accept").1,
            Some(12),
            "nft text without handles"
        );
        assert_eq!(
            at("line 40: access-list OUTSIDE extended permit tcp any any").1,
            Some(40)
        );
        assert_eq!(
            at("zone public d/etc/firewalld/zones/public.xml:10: rule family=\"ipv4\" accept"),
            (
                Some("d/etc/firewalld/zones/public.xml".into()),
                Some(10),
                "zone public d/etc/firewalld/zones/public.xml:10".into()
            )
        );
        let nft = at("inet filter input handle 19: tcp dport 9000 accept");
        assert_eq!(nft, (None, None, "inet filter input handle 19".into()));
        assert_eq!(at("inet filter input: policy drop").2, "inet filter input");
        assert_eq!(
            at("Windows Firewall inbound (block wins; default block): policy drop").2,
            "Windows Firewall inbound (block wins; default block)"
        );
        assert_eq!(
            at("zone public (d/zones/public.xml:2): target default").1,
            Some(2)
        );
        assert_eq!(
            at("cannot decide: profile Domain (allow rule \"RDP\")").1,
            None
        );
        // `baseline 5:` or `online 3)` is no line number.
        assert_eq!(at("rule \"offline 5: x\"").1, None);
    }

    #[test]
    fn handles_and_names_are_found_in_the_export() {
        let json = "{\"rule\": {\"handle\": 12}},\n{\"rule\": {\"handle\": 1}}\n";
        assert_eq!(find_line(json, "inet filter input handle 1"), Some(2));
        assert_eq!(find_line(json, "inet filter input handle 12"), Some(1));
        let text = "table inet f {\n  chain input {\n    tcp dport 22 accept # handle 7\n";
        assert_eq!(find_line(text, "inet f input handle 7"), Some(3));
        let win = "[\n {\"DisplayName\": \"SCC clients\",\n";
        assert_eq!(find_line(win, "allow rule \"SCC clients\""), Some(2));
        assert_eq!(find_line(win, "filter INPUT"), None);
        let save = "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n";
        assert_eq!(find_line(save, "filter INPUT"), Some(2));
        assert_eq!(find_line(text, "inet f input"), Some(2));
    }

    proptest::proptest! {
        /// Rule texts are the export's (hostile): reading them never panics, and a line found is
        /// a line of the text.
        #[test]
        fn any_rule_text_is_read_without_panic(
            rule in "[ -~é\"();:]{0,60}",
            text in "[ -~é\"#\n]{0,80}",
        ) {
            let at = rule_at(&rule);
            if let Some(n) = find_line(&text, &at.name) {
                proptest::prop_assert!(n >= 1 && n <= text.lines().count());
            }
            let log = audit(&report(None, None, vec![opening(&rule, "1", &[], &[])]), "r", Some(&text));
            proptest::prop_assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 1);
        }
    }

    /// An opening of `rule` (an accept), as the audit groups them.
    fn opening(rule: &str, ports: &str, sources: &[&str], addresses: &[&str]) -> Opening {
        let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        Opening {
            rule: rule.into(),
            transport: "tcp",
            ports: ports.into(),
            sources: list(sources),
            addresses: list(addresses),
            except: Vec::new(),
            decided_by: Decision {
                outcome: Outcome::Accept,
                rule: rule.into(),
                at: None,
            },
        }
    }

    fn report(node: Option<&str>, ruleset: Option<&str>, openings: Vec<Opening>) -> Report {
        Report {
            format_version: crate::FORMAT_VERSION,
            subject: node.map(|n| Subject {
                kind: "node",
                name: Some(n.into()),
            }),
            ruleset: ruleset.map(Into::into),
            summary: Summary {
                format: "iptables-save",
                flows: 0,
                admitted: 0,
                partial: 0,
                blocked: 0,
                undecided: 0,
                extra: openings.len(),
                undecided_openings: 0,
                exact: openings.is_empty(),
            },
            flows: Vec::new(),
            openings,
            extra: Vec::new(),
        }
    }

    #[test]
    fn grouped_openings_and_the_subject_are_read() {
        let doc = report(
            Some("APP1"),
            Some("app1.save"),
            vec![opening(
                "line 19: -A INPUT -s 10.88.5.0/24 -p tcp -m tcp ! --dport 1:1024 -j ACCEPT",
                "1025-21001",
                &["10.88.5.0/24"],
                &["10.88.1.11", "10.88.1.100"],
            )],
        );
        let mut excepted = doc.clone();
        excepted.openings[0].except = vec![Except {
            sources: vec!["10.88.5.0/24".into()],
            addresses: vec!["10.88.1.100".into()],
            ports: "8080".into(),
        }];
        let text = audit(&excepted, "x", None)["runs"][0]["results"][0]["message"]["text"].clone();
        assert!(
            text.as_str().unwrap().starts_with(
                "tcp 1025-21001 to 10.88.1.11, 10.88.1.100 from 10.88.5.0/24 (except 8080 to \
                 10.88.1.100 from 10.88.5.0/24) is open beyond the plan"
            ),
            "{text}"
        );
        let log = audit(&doc, "ignored-path", None);
        let run = &log["runs"][0];
        assert_eq!(run["automationDetails"]["id"], "scc-ports/audit/node-APP1/");
        let r = &run["results"][0];
        assert_eq!(r["ruleId"], "SCC-A004");
        assert_eq!(
            r["message"]["text"],
            "tcp 1025-21001 to 10.88.1.11, 10.88.1.100 from 10.88.5.0/24 is open beyond the plan, \
             by line 19: -A INPUT -s 10.88.5.0/24 -p tcp -m tcp ! --dport 1:1024 -j ACCEPT"
        );
        let at = &r["locations"][0]["physicalLocation"];
        assert_eq!(at["artifactLocation"]["uri"], "app1.save");
        assert_eq!(at["region"]["startLine"], 19);
        // The same opening of another node is another alert; of the same node, the same one.
        let mut other = doc.clone();
        other.subject.as_mut().unwrap().name = Some("APP2".into());
        let fp = |l: &Value| l["runs"][0]["results"][0]["partialFingerprints"].clone();
        assert_ne!(fp(&audit(&other, "x", None)), fp(&log));
        assert_eq!(fp(&audit(&doc, "moved/elsewhere", None)), fp(&log));
    }

    #[test]
    fn paths_become_uri_references() {
        assert_eq!(uri("examples/all-in-one.toml"), "examples/all-in-one.toml");
        assert_eq!(uri("<all-in-one>"), "%3Call-in-one%3E");
        assert_eq!(uri("C:\\fw\\a b.json"), "C%3A/fw/a%20b.json");
    }

    #[test]
    fn every_check_and_input_code_is_documented_once() {
        let docs = documented_codes();
        for (code, ..) in CHECKS {
            assert_eq!(
                docs.iter().filter(|(c, _)| c == code).count(),
                1,
                "{code} in docs/checks.md"
            );
        }
        assert!(docs.iter().any(|(c, _)| *c == "E001"));
        let rules = check_rules();
        let ids: std::collections::HashSet<&str> =
            rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), rules.len(), "rule ids are unique");
    }
}
