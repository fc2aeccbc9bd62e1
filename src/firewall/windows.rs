//! `windows`: a re-runnable PowerShell script of `New-NetFirewallRule` calls in one `-Group`
//! (it removes the group first), one inbound rule per (sources, destinations, transport) with the
//! array of its flows' ports. For `--network` the script only stops
//! with an explanation: Windows Firewall filters traffic to and from its own computer, never
//! traffic routed between zones.
//!
//! The script is pure ASCII so Windows PowerShell 5.1, which reads a file without a byte order
//! mark in the ANSI code page, reads it as written: user text with other characters becomes
//! `[char]` expressions inside strings, and is transliterated in comments.

use std::collections::HashMap;
use std::fmt::Write as _;

use ipnet::IpNet;

use super::text::{self, one_line, segments, span};
use super::{Generator, Mode, Request};
use crate::catalog::Transport;
use crate::flows::{Flow, net_text as net};

pub struct Windows;

/// The one group every rule belongs to; removing it undoes the script.
pub const GROUP: &str = "Sinch Contact Center (scc-ports)";

/// PowerShell treats these as single quotes too: inside a single-quoted string each is doubled.
fn is_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}')
}

/// A PowerShell string expression for user text: `'text'` with quotes doubled, or, when the text
/// holds non-ASCII characters, `('text' + [char]0x2013 + 'more')` so the file stays ASCII.
pub(crate) fn ps_string(text: &str) -> String {
    ps_exact(&one_line(text))
}

/// A PowerShell string expression whose value is exactly `text`, whatever it holds: printable
/// ASCII in single quotes (quotes doubled), every other character (control characters
/// included) as a `[char]` of its UTF-16 units, so that a name from an export is carried as it
/// is, never rewritten.
pub(crate) fn ps_exact(text: &str) -> String {
    let plain = |c: char| (' '..='~').contains(&c);
    if text.chars().all(plain) {
        return format!("'{}'", text.replace('\'', "''"));
    }
    // Starts with a string literal so `+` concatenates strings even when a [char] comes first.
    let mut parts: Vec<String> = Vec::new();
    let mut literal = String::new();
    for c in text.chars() {
        if plain(c) {
            if is_quote(c) {
                literal.push('\'');
            }
            literal.push(c);
        } else {
            parts.push(format!("'{literal}'"));
            literal.clear();
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                parts.push(format!("[char]0x{u:04X}"));
            }
        }
    }
    parts.push(format!("'{literal}'"));
    parts.retain(|p| p != "''");
    if parts.first().is_none_or(|p| !p.starts_with('\'')) {
        parts.insert(0, "''".to_string());
    }
    format!("({})", parts.join(" + "))
}

/// User text for a `#` comment: one line, ASCII (dashes and quotes transliterated, anything
/// else `?`).
pub(crate) fn comment(text: &str) -> String {
    one_line(text)
        .chars()
        .map(|c| match c {
            c if c.is_ascii() => c,
            '\u{2010}'..='\u{2015}' | '\u{2212}' => '-',
            '\u{2018}'..='\u{201B}' => '\'',
            '\u{201C}'..='\u{201F}' => '"',
            '\u{00A0}' => ' ',
            _ => '?',
        })
        .collect()
}

/// An address for `-RemoteAddress`/`-LocalAddress`. Windows takes addresses, subnets and
/// ranges; a `/0` network is written as the range it covers.
fn address(n: &IpNet) -> String {
    match n {
        IpNet::V4(v4) if v4.prefix_len() == 0 => "0.0.0.0-255.255.255.255".to_string(),
        IpNet::V6(v6) if v6.prefix_len() == 0 => {
            "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".to_string()
        }
        n => net(n),
    }
}

fn list(items: impl IntoIterator<Item = String>) -> String {
    items
        .into_iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The display name of one flow's rule: `SCC hac.admin-port tcp 21014 from admins`.
pub(crate) fn rule_name(f: &Flow) -> String {
    format!(
        "SCC {} {} from {}",
        f.label(),
        text::ports_text(f),
        f.role.as_str()
    )
}

/// One inbound allow rule of `$group` for flows that share sources, destinations and transport
/// (its `-LocalPort` is the array of their ports, its description names every flow), after a
/// comment line per flow.
pub(crate) fn allow_rule(o: &mut String, name: &str, flows: &[&Flow]) {
    let Some(&f) = flows.first() else { return };
    let mut ports: Vec<String> = Vec::new();
    for g in flows {
        for p in segments(g.ports).into_iter().map(span) {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    let what: Vec<String> = flows
        .iter()
        .map(|g| {
            format!(
                "{} port id {}, {} {} from {} ({}): {}",
                g.component,
                g.port_id_text(),
                g.transport.as_str(),
                g.ports,
                g.role.as_str(),
                g.source_zones.join(", "),
                g.purpose
            )
        })
        .collect();
    let description = format!("Sinch Contact Center: {}", what.join("; "));
    for g in flows {
        let _ = writeln!(
            o,
            "{}# {}: {} from {} ({}) to {}",
            if std::ptr::eq(*g, f) { "\n" } else { "" },
            comment(&g.label()),
            text::ports_text(g),
            g.role.as_str(),
            comment(&g.source_zones.join(", ")),
            g.destination.iter().map(net).collect::<Vec<_>>().join(", ")
        );
    }
    let _ = writeln!(o, "New-NetFirewallRule -Group $group `");
    let _ = writeln!(o, "    -DisplayName {} `", ps_string(name));
    let _ = writeln!(o, "    -Description {} `", ps_string(&description));
    let _ = writeln!(
        o,
        "    -Direction Inbound -Action Allow -Profile Any -Protocol {} `",
        f.transport.as_str().to_ascii_uppercase()
    );
    let _ = writeln!(o, "    -LocalPort {} `", list(ports));
    let _ = writeln!(
        o,
        "    -RemoteAddress {} `",
        list(f.sources.iter().map(address))
    );
    let _ = writeln!(
        o,
        "    -LocalAddress {} | Out-Null",
        list(f.destination.iter().map(address))
    );
}

fn network_script(o: &mut String) {
    o.push_str(
        r#"
# Windows Firewall filters the traffic to and from its own computer, never traffic routed
# between zones, so it cannot be the firewall between zones. This script stops without
# changing anything. For the servers, run `--node NAME` per server; for the agent PCs
# `--workstations`; for the network firewall use --target csv (request sheet), nftables,
# iptables, firewalld or aws.
throw 'scc-ports: Windows Firewall cannot filter traffic between zones; generate --node NAME or --workstations rules instead (nothing was changed).'
"#,
    );
}

impl Generator for Windows {
    fn name(&self) -> &'static str {
        "windows"
    }

    fn about(&self) -> &'static str {
        "PowerShell script: New-NetFirewallRule inbound rules in one group, removed first (re-runnable)"
    }

    fn generate(&self, request: &Request) -> String {
        let mut o = String::new();
        for line in text::header(request, self.name(), "Windows Firewall rules") {
            let _ = writeln!(o, "# {}", comment(&line));
        }
        if matches!(request.mode, Mode::Network) {
            network_script(&mut o);
            return o;
        }
        let _ = write!(
            o,
            r#"#
# Run in an elevated PowerShell (Windows PowerShell 5.1 or PowerShell 7, NetSecurity module):
#   powershell -ExecutionPolicy Bypass -File .\THIS-SCRIPT.ps1   (the name it was saved under)
# Re-runnable: it first removes every rule of its group, then adds the rules below; to undo,
# run the first command alone. Rules are inbound allow rules for all profiles.
#Requires -RunAsAdministrator
$ErrorActionPreference = 'Stop'
$group = '{GROUP}'

Get-NetFirewallRule -Group $group -ErrorAction SilentlyContinue | Remove-NetFirewallRule
"#
        );
        // Flows with the same sources, destinations and transport share one rule: its
        // -LocalPort is the array of their ports, its description names every flow.
        let mut groups: Vec<Vec<&Flow>> = Vec::new();
        let mut at: HashMap<(&[IpNet], &[IpNet], Transport), usize> = HashMap::new();
        for f in &request.flows {
            let key = (&f.sources[..], &f.destination[..], f.transport);
            let i = *at.entry(key).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[i].push(f);
        }
        let mut names = std::collections::HashSet::new();
        let mut count = 0;
        let workstations = matches!(request.mode, Mode::Workstations);
        for flows in &groups {
            let f = flows[0];
            let mut ports: Vec<String> = Vec::new();
            for g in flows {
                for p in segments(g.ports).into_iter().map(span) {
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
            }
            let mut name = match flows.as_slice() {
                [one] => rule_name(one),
                many => {
                    let mut roles: Vec<&str> = Vec::new();
                    for g in many {
                        if !roles.contains(&g.role.as_str()) {
                            roles.push(g.role.as_str());
                        }
                    }
                    format!(
                        "SCC {} and {} more, {} ports, {} from {}",
                        f.label(),
                        many.len() - 1,
                        ports.len(),
                        f.transport.as_str(),
                        roles.join("+")
                    )
                }
            };
            if workstations {
                // One PC may belong to either client zone's rules; say which.
                let _ = write!(name, " to {}", f.node);
            }
            let base = name.clone();
            let mut n = 1;
            while !names.insert(name.clone()) {
                n += 1;
                name = format!("{base} ({n})");
            }
            allow_rule(&mut o, &name, flows);
            count += 1;
        }
        let _ = write!(
            o,
            "\nWrite-Host \"scc-ports: {count} rules in group '$group'\"\n"
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_and_ascii() {
        assert_eq!(ps_string("it's"), "'it''s'");
        assert_eq!(ps_string("a\u{2019}b"), "('a' + [char]0x2019 + 'b')");
        assert_eq!(
            ps_string("\u{2013} x \u{1F600}"),
            "('' + [char]0x2013 + ' x ' + [char]0xD83D + [char]0xDE00)"
        );
        assert_eq!(ps_string("line\nbreak"), "'line break'");
    }

    #[test]
    fn comments_are_ascii() {
        assert_eq!(comment("OII \u{2013} M\u{fc}ller\n#x"), "OII - M?ller #x");
    }

    #[test]
    fn whole_networks_are_ranges() {
        assert_eq!(
            address(&"0.0.0.0/0".parse().unwrap()),
            "0.0.0.0-255.255.255.255"
        );
        assert_eq!(address(&"10.1.0.0/24".parse().unwrap()), "10.1.0.0/24");
        assert_eq!(address(&"10.1.0.5/32".parse().unwrap()), "10.1.0.5");
    }
}
