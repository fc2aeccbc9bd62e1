//! The PowerShell that `firewall --target windows --diff` writes, carried out on the JSON export
//! it was made from (no Windows host runs it here): the tests audit the result.

/// A PowerShell string expression at the start of `s` (`'a''b'` or `('a' + [char]0x0009 + 'b')`,
/// as `ps_exact` writes them): its value, and the text after it.
pub fn ps_value(s: &str) -> (String, &str) {
    fn unquote(s: &str) -> String {
        let s = s.trim();
        assert!(
            s.len() >= 2 && s.starts_with('\'') && s.ends_with('\''),
            "a plain quoted string: {s}"
        );
        s[1..s.len() - 1].replace("''", "'")
    }
    let s = s.trim_start();
    // The end of the expression: the closing quote (a doubled one is a quote inside), or the
    // parenthesis that closes it outside quotes.
    let bytes = s.as_bytes();
    let (mut i, mut quoted, mut depth) = (0, false, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\'' if quoted && bytes.get(i + 1) == Some(&b'\'') => i += 1,
            b'\'' => {
                quoted = !quoted;
                if !quoted && depth == 0 {
                    i += 1;
                    break;
                }
            }
            b'(' if !quoted => depth += 1,
            b')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    i += 1;
                    break;
                }
            }
            _ => {}
        }
        i += 1;
    }
    let (expr, rest) = s.split_at(i);
    let Some(inner) = expr.strip_prefix('(').and_then(|s| s.strip_suffix(')')) else {
        return (unquote(expr), rest);
    };
    let mut units: Vec<u16> = Vec::new();
    for part in inner.split(" + ") {
        match part.strip_prefix("[char]0x") {
            Some(hex) => units.push(u16::from_str_radix(hex, 16).expect("a [char]")),
            None => units.extend(unquote(part).encode_utf16()),
        }
    }
    (String::from_utf16(&units).expect("UTF-16"), rest)
}

/// A cmdlet's parameters `-Key value[, value…]`: values are words, quoted strings ('' inside is
/// a quote) or a parenthesised `('…' + [char]0x2013 + '…')` (kept as it is).
pub fn ps_params(args: &str) -> Vec<(String, Vec<String>)> {
    let chars: Vec<char> = args.chars().collect();
    let mut i = 0;
    let mut key = String::new();
    let mut values: Vec<String> = Vec::new();
    let mut params: Vec<(String, Vec<String>)> = Vec::new();
    while i < chars.len() {
        match chars[i] {
            ' ' | ',' => i += 1,
            '-' if chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) => {
                if !key.is_empty() {
                    params.push((std::mem::take(&mut key), std::mem::take(&mut values)));
                }
                let start = i + 1;
                while i < chars.len() && chars[i] != ' ' {
                    i += 1;
                }
                key = chars[start..i].iter().collect();
            }
            '\'' | '(' => {
                let rest: String = chars[i..].iter().collect();
                let (v, after) = ps_value(&rest);
                values.push(v);
                i = chars.len() - after.chars().count();
            }
            _ => {
                let start = i;
                while i < chars.len() && !matches!(chars[i], ' ' | ',') {
                    i += 1;
                }
                values.push(chars[start..i].iter().collect());
            }
        }
    }
    if !key.is_empty() {
        params.push((key, values));
    }
    params
}

/// The PowerShell that `firewall --target windows --diff` writes, carried out on the JSON export
/// it was made from: `Get-RuleNamedExactly 'X' | Disable-NetFirewallRule` sets rule X's
/// `Enabled` to false (and fails unless exactly one rule, a local one, is named exactly X),
/// `… | Set-NetFirewallRule -Key value…` sets its fields, the removal of the rules an earlier run
/// added removes those, and each `New-NetFirewallRule … ` call (its backtick-continued lines)
/// becomes a rule object of the export's shape. Only the forms the diff writes are understood;
/// anything else fails.
pub fn apply_windows_diff(export: &serde_json::Value, script: &str) -> serde_json::Value {
    const GROUP: &str = "Sinch Contact Center (scc-ports)";
    let mut rules = export.as_array().expect("a list of rules").clone();
    let mut added: Vec<String> = Vec::new();
    let mut listing = false;
    let mut call = String::new();
    for line in script.lines() {
        assert!(
            !line.contains("FirewallRule -Name"),
            "-Name takes wildcards: {line}"
        );
        if let Some(rest) = line.strip_prefix("Get-RuleNamedExactly ") {
            // The script's function: exactly one local rule of exactly this Name.
            let (name, rest) = ps_value(rest);
            let mut found = rules.iter_mut().filter(|r| {
                r["Name"] == name.as_str()
                    && r["PolicyStoreSourceType"]
                        .as_str()
                        .is_none_or(|t| t == "Local")
            });
            let rule = found
                .next()
                .unwrap_or_else(|| panic!("no local rule named {name:?}"));
            assert!(found.next().is_none(), "two rules named {name:?}");
            let rest = rest.trim();
            if rest == "| Disable-NetFirewallRule" {
                rule["Enabled"] = false.into();
            } else if let Some(args) = rest.strip_prefix("| Set-NetFirewallRule ") {
                for (key, values) in ps_params(args) {
                    match key.as_str() {
                        "LocalPort" | "RemoteAddress" | "LocalAddress" => {
                            rule[key.as_str()] = values.into()
                        }
                        "Protocol" => rule["Protocol"] = values[0].clone().into(),
                        other => panic!("Set-NetFirewallRule -{other}"),
                    }
                }
            } else {
                panic!("an unknown use of the rule: {line}");
            }
            continue;
        }
        // `$added = @(` then one name a line, then `)`.
        if line == "$added = @(" {
            listing = true;
            continue;
        }
        if listing {
            if line == ")" {
                listing = false;
            } else {
                added.push(ps_value(line.trim().trim_end_matches(',')).0);
            }
            continue;
        }
        if line.starts_with("Get-NetFirewallRule -Group $group ") {
            assert!(
                line.ends_with(
                    "| Where-Object { $added -ccontains $_.DisplayName } | Remove-NetFirewallRule"
                ),
                "{line}"
            );
            rules.retain(|r| {
                !(r["Group"] == GROUP && added.iter().any(|a| r["DisplayName"] == a.as_str()))
            });
            continue;
        }
        if line.starts_with("New-NetFirewallRule") || !call.is_empty() {
            call.push_str(line.trim_end_matches('`'));
            call.push(' ');
            if line.ends_with('`') {
                continue;
            }
            let args = call.trim().trim_end_matches("| Out-Null").to_string();
            call.clear();
            let mut rule = serde_json::json!({"RemotePort": "Any", "Group": GROUP});
            for (key, values) in ps_params(&args) {
                match key.as_str() {
                    "LocalPort" | "RemoteAddress" | "LocalAddress" => {
                        rule[key.as_str()] = values.into();
                    }
                    "Group" | "Description" => {}
                    _ => rule[key.as_str()] = values[0].clone().into(),
                }
            }
            rule["Name"] = format!("added-{}", rules.len()).into();
            rules.push(rule);
        }
    }
    assert!(call.is_empty(), "an unfinished New-NetFirewallRule");
    serde_json::Value::Array(rules)
}
