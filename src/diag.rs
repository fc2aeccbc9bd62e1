//! Located diagnostics: a problem in an input file, with file, line, column, a stable code and a hint.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;

/// The text of an input file and the name to show for it.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: Arc<str>,
    pub text: Arc<str>,
    /// Byte offset of the start of every line, so that locating is a binary search, not a scan:
    /// a 10,000-node file is located tens of thousands of times.
    line_starts: Arc<[usize]>,
}

impl Source {
    pub fn new(name: impl Into<Arc<str>>, text: impl Into<Arc<str>>) -> Source {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(
                text.bytes()
                    .enumerate()
                    .filter(|(_, b)| *b == b'\n')
                    .map(|(i, _)| i + 1),
            )
            .collect();
        Source {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// Line and column (both from 1, columns in characters) of a byte offset.
    pub fn locate(&self, span: &Range<usize>) -> Location {
        let at = floor_char_boundary(&self.text, span.start.min(self.text.len()));
        let line = self.line_starts.partition_point(|&start| start <= at);
        let line_start = self.line_starts[line - 1];
        let column = self.text[line_start..at].chars().count() + 1;
        Location {
            file: self.name.to_string(),
            line,
            column,
        }
    }

    /// The line a location stands on, for showing under a message.
    pub fn line_text(&self, line: usize) -> Option<&str> {
        self.text.lines().nth(line.checked_sub(1)?)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub file: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One problem found in an input file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub location: Option<Location>,
    /// The source line the location points into, to show under the message.
    #[serde(skip)]
    pub excerpt: Option<String>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            location: None,
            excerpt: None,
            hint: None,
        }
    }

    pub fn at(mut self, source: &Source, span: &Range<usize>) -> Diagnostic {
        let loc = source.locate(span);
        self.excerpt = source.line_text(loc.line).map(str::to_owned);
        self.location = Some(loc);
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    pub fn maybe_hint(mut self, hint: Option<String>) -> Diagnostic {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        write!(
            f,
            "{}[{}]: {}",
            self.severity.as_str(),
            self.code,
            self.message
        )?;
        if let (Some(loc), Some(line)) = (&self.location, &self.excerpt) {
            let width = loc.line.to_string().len();
            write!(f, "\n{:width$} |\n{} | {}", "", loc.line, line)?;
            let pad: String = line
                .chars()
                .take(loc.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "\n{:width$} | {pad}^", "")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  = hint: {hint}")?;
        }
        Ok(())
    }
}

/// One or more problems that stop an input from being used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// A TOML syntax or type error, located.
pub fn from_toml(source: &Source, err: &toml::de::Error) -> Diagnostic {
    let message = in_file_words(err.message().trim());
    let raw = err.message().trim();
    let code = if raw.starts_with("unknown field") {
        "E002"
    } else if raw.starts_with("invalid type")
        || raw.starts_with("invalid value")
        || raw.starts_with("invalid length")
        || raw.starts_with("unknown variant")
        || raw.starts_with("missing field")
    {
        "E003"
    } else {
        "E001"
    };
    let hint = match code {
        "E002" => {
            Some("remove the key, or check its spelling against the expected ones".to_string())
        }
        "E001" => Some("see https://toml.io for the syntax".to_string()),
        _ => None,
    };
    let d = Diagnostic::error(code, message).maybe_hint(hint);
    match err.span() {
        Some(span) => d.at(source, &span),
        None => d,
    }
}

/// A message of the TOML parser or of serde in the words of the file: "a whole number", "a
/// string", "a list", "a table", never Rust's or serde's types ("integer", "u16", "sequence",
/// "map", "struct"). The one place these words are translated.
pub fn in_file_words(message: &str) -> String {
    fn thing(t: &str) -> String {
        let t = t.trim();
        let (word, rest) = t.split_once(' ').unwrap_or((t, ""));
        let value = rest.trim();
        let value = value.strip_prefix("point").unwrap_or(value).trim();
        let shown = |w: &str| {
            if value.is_empty() {
                w.to_string()
            } else {
                format!("{w} ({})", value.trim_matches('`'))
            }
        };
        match word {
            "integer" | "i64" | "u64" | "i32" | "u32" | "u16" | "u8" => shown("a whole number"),
            "floating" | "f64" | "f32" => shown("a decimal number"),
            "string" => shown("a string"),
            "boolean" => shown("true or false"),
            "sequence" => "a list".into(),
            "map" | "struct" => "a table".into(),
            "a" | "an" => thing(rest),
            _ => t.to_string(),
        }
    }
    let m = message.trim();
    if let Some(rest) = m
        .strip_prefix("invalid type: ")
        .or_else(|| m.strip_prefix("invalid value: "))
    {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!(
                "this value must be {}, not {}",
                thing(expected),
                thing(found)
            );
        }
    }
    const WORDS: &[(&str, &str)] = &[
        ("unknown variant", "unknown value"),
        ("missing field", "missing key"),
        ("unknown field", "unknown key"),
        ("duplicate field", "duplicate key"),
        ("expected one of", "expected one of"),
    ];
    let mut out = m.to_string();
    for (from, to) in WORDS {
        out = out.replace(from, to);
    }
    out
}

/// What a TOML value is, in the file's words.
pub fn toml_kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Float(_) => "a decimal number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// The known name closest to `word`, when one is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for k in known {
        let score = strsim::jaro_winkler(word, k);
        // Strictly better only: on a tie the name listed first wins.
        if score > 0.8 && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, k));
        }
    }
    best.map(|(_, k)| k)
}

/// "did you mean `x`?" or the list of valid names.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str> + Clone) -> String {
    match suggest(word, known.clone()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => {
            let all: Vec<&str> = known.into_iter().collect();
            format!("valid names: {}", all.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_words_become_the_files() {
        assert_eq!(
            in_file_words("invalid type: integer `5`, expected a string"),
            "this value must be a string, not a whole number (5)"
        );
        assert_eq!(
            in_file_words("invalid type: string \"yes\", expected a boolean"),
            "this value must be true or false, not a string (\"yes\")"
        );
        assert_eq!(
            in_file_words("invalid type: sequence, expected u16"),
            "this value must be a whole number, not a list"
        );
        assert_eq!(
            in_file_words("invalid type: floating point `3.5`, expected i64"),
            "this value must be a whole number, not a decimal number (3.5)"
        );
        assert_eq!(
            in_file_words("unknown field `colour`, expected one of `a`, `b`"),
            "unknown key `colour`, expected one of `a`, `b`"
        );
        let m = in_file_words("invalid type: integer `5`, expected u16");
        for serde_word in ["integer", "u16", "invalid type"] {
            assert!(!m.contains(serde_word), "{m}");
        }
    }

    #[test]
    fn locate_lines_and_columns() {
        let s = Source::new("f", "ab\ncé d\n\nx");
        let at = |i| {
            let l = s.locate(&(i..i));
            (l.line, l.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(2), (1, 3));
        assert_eq!(at(3), (2, 1));
        assert_eq!(at(6), (2, 3)); // after the two-byte é
        assert_eq!(at(9), (3, 1));
        assert_eq!(at(10), (4, 1));
        assert_eq!(at(99), (4, 2));
        assert_eq!(Source::new("e", "").locate(&(0..0)).line, 1);
    }
}
