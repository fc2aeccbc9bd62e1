//! Hostile text made safe for each place it is written to (a [`Sink`]): the one place that knows
//! what a spreadsheet, a terminal, a JSON reader or a firewall file must never receive.
//!
//! Every text that comes from a user or a catalog (the system `name`, catalog `usage` and names,
//! file paths, names typed on the command line) passes through [`clean`] on its way out. The
//! rules, documented in docs/safety.md:
//!
//! - [`Sink::CsvCell`]: forbidden characters become a space; a cell whose first non-blank
//!   character is `=`, `+`, `-` or `@` gets a leading `'` (OWASP's advice against CSV
//!   injection: spreadsheets then show the text, never evaluate it). A lone `-` (our "none") is
//!   not a formula and stays.
//! - [`Sink::Terminal`]: forbidden characters become a space, so no escape sequence, no line
//!   break and no bidi reordering reaches a terminal.
//! - [`Sink::Json`]: forbidden characters become `\uXXXX` escapes (the data stays exact; a
//!   terminal showing the document sees no control or bidi character).
//! - [`Sink::Comment`]: one line of a generated firewall file (a `#` comment, a description):
//!   forbidden characters become a space, and the text is cut to [`COMMENT_MAX`] characters
//!   (ending in `...`), so no user text can make a line too long for the loader (iptables-restore
//!   splits lines longer than 10,239 bytes and parses the rest as commands).
//! - [`Sink::RuleComment`]: the text inside a double-quoted nft/iptables rule comment: ASCII
//!   letters, digits and `._+-:/` only (anything else `_`), at most [`RULE_COMMENT_MAX`] bytes
//!   (nft's comment limit is 128 bytes, iptables' comment match 256).
//! - [`Sink::Markup`]: text or an attribute value in HTML, SVG or XML 1.0 (the report's page and
//!   picture, JUnit): forbidden characters become a space, then `& < > " '` become entities.
//! - [`Sink::Markdown`]: Markdown text outside tables: forbidden characters become a space, then
//!   every character that could start markup (`` \ ` * _ [ ] < > # | ~ ``) gets a backslash.
//! - [`Sink::ShellWord`]: one word of a POSIX shell command line that a reader copies and runs (a
//!   path in a suggested command): forbidden characters become a space, then a word of anything
//!   but letters, digits and `_./:@%+=,-` (or an empty word) is single-quoted, each `'` written
//!   `'\''`, so no text can end the word, expand or redirect.
//!
//! Every sink makes one line: a line break from a file cannot start a line of its own (forge a
//! verdict) anywhere. A text whose line breaks are structure (a rule of several lines) goes
//! through [`lines`], which cleans each line and keeps the breaks.
//!
//! Forbidden everywhere: every control character (C0, DEL, C1 including U+009B CSI), the bidi
//! controls (U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069) and the Unicode line and
//! paragraph separators (U+2028, U+2029).

use std::borrow::Cow;

/// Where a text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// A cell of a CSV file that a spreadsheet may open.
    CsvCell,
    /// A line (or a table cell) shown on a terminal.
    Terminal,
    /// A serialized JSON document (whole): string contents are escaped, the structure kept.
    Json,
    /// One line of a comment or description in a generated firewall file.
    Comment,
    /// The inside of a quoted nft/iptables rule comment.
    RuleComment,
    /// Text or an attribute value in HTML, SVG or XML 1.0 (escaped: the result is markup).
    Markup,
    /// Markdown text outside tables (escaped: the result is markup).
    Markdown,
    /// One word of a POSIX shell command line (quoted when it needs to be: the result is code).
    ShellWord,
}

/// Characters of user text kept in a [`Sink::Comment`]; longer text is cut, ending in `...`.
pub const COMMENT_MAX: usize = 240;

/// Bytes of a [`Sink::RuleComment`]: within nft's 128-byte comment limit.
pub const RULE_COMMENT_MAX: usize = 128;

/// The characters that no sink may receive raw.
pub fn is_forbidden(c: char) -> bool {
    c.is_control() || is_bidi(c) || c == '\u{2028}' || c == '\u{2029}'
}

/// The bidirectional formatting controls (Trojan Source, CVE-2021-42574) and marks.
pub fn is_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Starts a formula in a spreadsheet (after leading blanks); TAB and CR are forbidden anyway.
fn is_formula_start(c: char) -> bool {
    matches!(c, '=' | '+' | '-' | '@')
}

/// `text` made safe for `sink`. Idempotent: cleaning a cleaned text changes nothing.
pub fn clean(sink: Sink, text: &str) -> Cow<'_, str> {
    match sink {
        Sink::Terminal => spaces(text),
        Sink::Comment => {
            let one = spaces(text);
            if one.chars().count() <= COMMENT_MAX {
                return one;
            }
            let mut cut: String = one.chars().take(COMMENT_MAX - 3).collect();
            cut.push_str("...");
            Cow::Owned(cut)
        }
        Sink::CsvCell => {
            let one = spaces(text);
            let first = one.trim_start().chars().next();
            if first.is_some_and(is_formula_start) && one.as_ref() != "-" {
                Cow::Owned(format!("'{one}"))
            } else {
                one
            }
        }
        Sink::Json => {
            if !text.chars().any(is_forbidden) {
                return Cow::Borrowed(text);
            }
            let mut out = String::with_capacity(text.len() + 16);
            for c in text.chars() {
                if is_forbidden(c) {
                    // Outside strings serde_json writes only ASCII structure and its own
                    // newlines and indentation, which stay; inside strings it has already
                    // escaped C0, so what is left here is inside strings.
                    if matches!(c, '\n' | ' ') {
                        out.push(c);
                    } else {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                } else {
                    out.push(c);
                }
            }
            Cow::Owned(out)
        }
        Sink::Markup => {
            let one = spaces(text);
            if !one.contains(['&', '<', '>', '"', '\'']) {
                return one;
            }
            let mut out = String::with_capacity(one.len() + 16);
            for c in one.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
            Cow::Owned(out)
        }
        Sink::Markdown => {
            let one = spaces(text);
            if !one.chars().any(is_markdown_special) {
                return one;
            }
            let mut out = String::with_capacity(one.len() + 16);
            for c in one.chars() {
                if is_markdown_special(c) {
                    out.push('\\');
                }
                out.push(c);
            }
            Cow::Owned(out)
        }
        Sink::ShellWord => {
            let one = spaces(text);
            let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c);
            if !one.is_empty() && one.chars().all(plain) {
                one
            } else {
                Cow::Owned(format!("'{}'", one.replace('\'', r"'\''")))
            }
        }
        Sink::RuleComment => Cow::Owned(
            text.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "._+-:/".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .take(RULE_COMMENT_MAX)
                .collect(),
        ),
    }
}

/// Each forbidden character as a space.
fn spaces(text: &str) -> Cow<'_, str> {
    if text.chars().any(is_forbidden) {
        Cow::Owned(
            text.chars()
                .map(|c| if is_forbidden(c) { ' ' } else { c })
                .collect(),
        )
    } else {
        Cow::Borrowed(text)
    }
}

/// Starts markup in Markdown text.
fn is_markdown_special(c: char) -> bool {
    "\\`*_[]<>#|~".contains(c)
}

/// A text whose line breaks are structure (a rule of several lines, a diagnostic with its
/// source excerpt): each line cleaned for `sink`, the line breaks kept.
pub fn lines(sink: Sink, text: &str) -> String {
    text.split('\n')
        .map(|l| clean(sink, l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`lines`] for the terminal.
pub fn terminal_lines(text: &str) -> String {
    lines(Sink::Terminal, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SINKS: [Sink; 8] = [
        Sink::CsvCell,
        Sink::Terminal,
        Sink::Json,
        Sink::Comment,
        Sink::RuleComment,
        Sink::Markup,
        Sink::Markdown,
        Sink::ShellWord,
    ];

    /// The sinks whose output is text again (the escaping ones make markup, which cleaning
    /// escapes once more, by design).
    const TEXT_SINKS: [Sink; 5] = [
        Sink::CsvCell,
        Sink::Terminal,
        Sink::Json,
        Sink::Comment,
        Sink::RuleComment,
    ];

    /// Markup back to its text (the five entities of [`Sink::Markup`]).
    fn unmarkup(text: &str) -> String {
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
    }

    /// Text rich in what attackers use: controls, C1, bidi, formula starts, quotes, long runs.
    fn hostile() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "=",
            "+",
            "-",
            "@",
            "\t",
            "\r",
            "\n",
            "\u{1b}",
            "\u{1b}]0;x\u{7}",
            "\u{7f}",
            "\u{85}",
            "\u{9b}",
            "\u{202e}",
            "\u{2066}",
            "\u{200f}",
            "\u{61c}",
            "\u{2028}",
            " ",
            "\"",
            "'",
            "a",
            "é",
            "😀",
            "HYPERLINK(",
            "\0",
        ]);
        prop_oneof![
            prop::collection::vec(pieces, 0..40).prop_map(|v| v.concat()),
            any::<String>(),
            prop::collection::vec(any::<char>(), 0..600).prop_map(|v| v.into_iter().collect()),
        ]
    }

    proptest! {
        #[test]
        fn no_sink_receives_a_forbidden_char(text in hostile()) {
            for sink in SINKS {
                let out = clean(sink, &text);
                match sink {
                    // Line breaks are JSON's own layout; none comes from the text (see below).
                    Sink::Json => prop_assert!(!out.chars().any(|c| is_forbidden(c) && c != '\n')),
                    _ => prop_assert!(!out.chars().any(is_forbidden), "{sink:?}: {out:?}"),
                }
            }
        }

        #[test]
        fn cleaning_is_idempotent(text in hostile()) {
            for sink in TEXT_SINKS {
                let once = clean(sink, &text).into_owned();
                prop_assert_eq!(clean(sink, &once), once.as_str(), "{:?}", sink);
            }
        }

        #[test]
        fn caps_hold(text in hostile()) {
            prop_assert!(clean(Sink::Comment, &text).chars().count() <= COMMENT_MAX);
            prop_assert!(clean(Sink::RuleComment, &text).len() <= RULE_COMMENT_MAX);
            prop_assert!(clean(Sink::RuleComment, &text)
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._+-:/".contains(c)));
        }

        #[test]
        fn csv_cells_never_start_a_formula(text in hostile()) {
            let out = clean(Sink::CsvCell, &text);
            let first = out.trim_start().chars().next();
            prop_assert!(out == "-" || !first.is_some_and(is_formula_start), "{out:?}");
        }

        #[test]
        fn json_stays_the_same_document(text in hostile()) {
            let doc = serde_json::to_string_pretty(&serde_json::json!({ "t": text })).unwrap();
            let safe = clean(Sink::Json, &doc);
            prop_assert!(!safe.chars().any(|c| is_forbidden(c) && c != '\n'));
            let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
            prop_assert_eq!(back["t"].as_str().unwrap(), text.as_str());
        }

        #[test]
        fn markup_is_the_terminal_text_escaped(text in hostile()) {
            let out = clean(Sink::Markup, &text);
            prop_assert!(!out.contains(['<', '>', '"', '\'', '\n']), "{out:?}");
            prop_assert_eq!(unmarkup(&out), clean(Sink::Terminal, &text));
        }

        #[test]
        fn markdown_escapes_every_special(text in hostile()) {
            let out = clean(Sink::Markdown, &text);
            let mut back = String::new();
            let mut chars = out.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    let next = chars.next();
                    prop_assert!(next.is_some_and(is_markdown_special), "{out:?}");
                    back.extend(next);
                } else {
                    prop_assert!(!is_markdown_special(c), "{out:?}");
                    back.push(c);
                }
            }
            prop_assert_eq!(back, clean(Sink::Terminal, &text));
        }

        #[test]
        fn lines_keep_only_the_breaks(text in hostile()) {
            for sink in SINKS {
                let out = lines(sink, &text);
                prop_assert_eq!(out.matches('\n').count(), text.matches('\n').count());
            }
        }

        #[test]
        fn a_shell_word_is_the_terminal_text(text in hostile()) {
            let out = clean(Sink::ShellWord, &text);
            // Read back as sh reads it: plain, or one single-quoted string with '\'' for a quote.
            let back = match out.strip_prefix('\'').and_then(|o| o.strip_suffix('\'')) {
                Some(inner) => inner.replace(r"'\''", "'"),
                None => {
                    prop_assert!(!out.contains(['\'', '"', '$', '`', ' ', ';', '|', '&', '<', '>', '*', '?', '\\']), "{out:?}");
                    out.to_string()
                }
            };
            prop_assert_eq!(back, clean(Sink::Terminal, &text));
        }

        #[test]
        fn terminal_keeps_plain_text(text in "[a-zA-Z0-9 .,:;_()=+-]{0,80}") {
            prop_assert_eq!(clean(Sink::Terminal, &text), text.as_str());
        }
    }

    #[test]
    fn examples() {
        assert_eq!(
            clean(Sink::CsvCell, "=HYPERLINK(\"http://x\",\"y\")"),
            "'=HYPERLINK(\"http://x\",\"y\")"
        );
        assert_eq!(clean(Sink::CsvCell, " @SUM(1)"), "' @SUM(1)");
        assert_eq!(clean(Sink::CsvCell, "\t=1"), "' =1");
        assert_eq!(clean(Sink::CsvCell, "-"), "-");
        assert_eq!(clean(Sink::CsvCell, "a=b"), "a=b");
        assert_eq!(
            clean(Sink::Terminal, "zone\u{1b}]0;pwned\u{7}\u{202e}x"),
            "zone ]0;pwned  x"
        );
        assert_eq!(clean(Sink::Terminal, "\u{9b}31m"), " 31m");
        assert_eq!(
            clean(Sink::Json, "\"a\u{202e}\u{9b}b\""),
            "\"a\\u202e\\u009bb\""
        );
        let long = "x".repeat(10_239);
        let c = clean(Sink::Comment, &long);
        assert_eq!(c.chars().count(), COMMENT_MAX);
        assert!(c.ends_with("..."));
        assert_eq!(clean(Sink::RuleComment, "a\"b c\n.d"), "a_b_c_.d");
        assert_eq!(terminal_lines("a\u{1b}\nb"), "a \nb");
        assert_eq!(
            clean(Sink::Markup, "<a href=\"x\">'&'\u{1b}\u{202e}</a>\nPASSED"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;  &lt;/a&gt; PASSED"
        );
        assert_eq!(clean(Sink::Markdown, "a|b*c-d\n#"), "a\\|b\\*c-d \\#");
        assert_eq!(lines(Sink::Markup, "a<\nb\u{202e}"), "a&lt;\nb ");
        assert_eq!(clean(Sink::ShellWord, "examples/a.toml"), "examples/a.toml");
        assert_eq!(
            clean(Sink::ShellWord, "my file's.toml"),
            r"'my file'\''s.toml'"
        );
        assert_eq!(clean(Sink::ShellWord, ""), "''");
        assert_eq!(clean(Sink::ShellWord, "a>b;$(x)\n"), "'a>b;$(x) '");
    }

    /// What sh makes of a quoted word is the text (forbidden characters aside).
    #[test]
    fn sh_reads_a_shell_word_back() {
        for text in [
            "plain",
            "",
            "it's",
            "a b",
            "$(touch x)`y`",
            "'\\'",
            "--x",
            "é😀",
        ] {
            let word = clean(Sink::ShellWord, text);
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {word}"))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8_lossy(&out.stdout), text, "{word}");
        }
    }
}
