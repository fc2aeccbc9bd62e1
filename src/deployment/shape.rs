//! The shape of the deployment file (which keys, which kinds of value), checked on the parsed
//! TOML tree before serde sees it, so that every problem of a file is reported at once and in the
//! file's words ("a whole number", "a list of strings", "a table"), never serde's.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, Source};

/// What a value must be.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    Text,
    Whole,
    Bool,
    /// A service's `ports`: `"3389"`, `"5985-5986"` or `3389`.
    TextOrWhole,
    /// A node interface's zones: `"dmz"` or `["datacenter", "admins"]`.
    TextOrTexts,
    ListOf(&'static Shape),
    Table(&'static [Field]),
    /// A table of user-chosen names (`[nodes.NAME]`), each value of one shape.
    MapOf(&'static Shape),
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub key: &'static str,
    pub shape: Shape,
    pub required: bool,
}

const fn req(key: &'static str, shape: Shape) -> Field {
    Field {
        key,
        shape,
        required: true,
    }
}

const fn opt(key: &'static str, shape: Shape) -> Field {
    Field {
        key,
        shape,
        required: false,
    }
}

const TEXTS: Shape = Shape::ListOf(&Shape::Text);
const VARIABLES: Shape = Shape::MapOf(&Shape::Whole);

const ZONE: &[Field] = &[req("cidrs", TEXTS), req("roles", TEXTS)];
const NODE: &[Field] = &[
    req("address", Shape::Text),
    req("zone", Shape::Text),
    opt("hac", Shape::Bool),
    opt("variables", VARIABLES),
    opt("windows_excluded_ports", Shape::Table(EXCLUDED)),
    opt("scc", Shape::Bool),
    opt("trunk", Shape::Table(TRUNK)),
    opt("interfaces", Shape::MapOf(&Shape::TextOrTexts)),
];
/// A trunk peer's SIP port per transport and its media range (`[nodes.NAME.trunk]`).
const TRUNK: &[Field] = &[
    opt("udp", Shape::TextOrWhole),
    opt("tcp", Shape::TextOrWhole),
    opt("tls", Shape::TextOrWhole),
    opt("media", Shape::TextOrWhole),
];
/// `netsh` lists a node's excluded ranges per transport.
const EXCLUDED: &[Field] = &[opt("tcp", TEXTS), opt("udp", TEXTS)];
const UNIT: &[Field] = &[
    req("address", Shape::Text),
    req("packages", TEXTS),
    opt("instances", TEXTS),
    opt("variables", VARIABLES),
];
const SERVICE: &[Field] = &[
    req("transport", Shape::Text),
    req("ports", Shape::TextOrWhole),
    req("from", TEXTS),
    req("to", TEXTS),
    opt("note", Shape::Text),
];

const FIREWALL: &[Field] = &[
    req("zones", TEXTS),
    opt("platforms", TEXTS),
    opt("names", Shape::MapOf(&Shape::Text)),
];

/// The whole file.
pub const DEPLOYMENT: &[Field] = &[
    opt("name", Shape::Text),
    opt("zones", Shape::MapOf(&Shape::Table(ZONE))),
    opt("nodes", Shape::MapOf(&Shape::Table(NODE))),
    opt("units", Shape::MapOf(&Shape::Table(UNIT))),
    opt("services", Shape::MapOf(&Shape::Table(SERVICE))),
    opt("firewalls", Shape::MapOf(&Shape::Table(FIREWALL))),
];

impl Shape {
    /// The shape in the file's words: "a string", "a list of strings", "a table".
    pub fn words(&self) -> String {
        match self {
            Shape::Text => "a string".into(),
            Shape::Whole => "a whole number".into(),
            Shape::Bool => "true or false".into(),
            Shape::TextOrWhole => "a string or a whole number".into(),
            Shape::TextOrTexts => "a string or a list of strings".into(),
            Shape::ListOf(Shape::Text) => "a list of strings".into(),
            Shape::ListOf(inner) => format!("a list of {}", inner.words()),
            Shape::Table(_) | Shape::MapOf(_) => "a table".into(),
        }
    }

    fn accepts(&self, v: &DeValue) -> bool {
        matches!(
            (self, v),
            (Shape::Text, DeValue::String(_))
                | (Shape::Whole, DeValue::Integer(_))
                | (Shape::Bool, DeValue::Boolean(_))
                | (Shape::TextOrWhole, DeValue::String(_) | DeValue::Integer(_))
                | (Shape::TextOrTexts, DeValue::String(_) | DeValue::Array(_))
                | (Shape::ListOf(_), DeValue::Array(_))
                | (Shape::Table(_) | Shape::MapOf(_), DeValue::Table(_))
        )
    }
}

/// What a parsed value is, in the file's words.
pub fn kind(v: &DeValue) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "a whole number",
        DeValue::Float(_) => "a decimal number",
        DeValue::Boolean(_) => "true or false",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "a list",
        DeValue::Table(_) => "a table",
    }
}

/// A hint for a value of the wrong kind.
fn fix(want: &Shape, got: &DeValue, written: &str) -> String {
    match (want, got) {
        (Shape::Text, DeValue::Integer(_) | DeValue::Float(_)) => {
            format!("put it in quotes: \"{}\"", written.trim())
        }
        (Shape::TextOrWhole, DeValue::Float(_)) => {
            "write a port (3389) or a range in quotes (\"5985-5986\")".into()
        }
        (Shape::ListOf(_), DeValue::String(_)) => {
            "write a list in brackets, even for one item: [\"…\"]".into()
        }
        (Shape::Whole, DeValue::String(_)) => "write the number without quotes".into(),
        (Shape::Whole, DeValue::Float(_)) => "write a whole number, without a decimal point".into(),
        (Shape::Bool, _) => "write true or false, without quotes".into(),
        (Shape::Table(_) | Shape::MapOf(_), _) => {
            "write it as a section: [KEY.NAME] on a line of its own, then its keys".into()
        }
        _ => format!("write {}", want.words()),
    }
}

/// Every shape problem under `table` (the file at `path` = ""), in no particular order.
pub fn check(source: &Source, table: &Spanned<DeTable>, out: &mut Vec<Diagnostic>) {
    check_table(source, "", table.span(), table.get_ref(), DEPLOYMENT, out);
}

fn join(path: &str, key: &str) -> String {
    // A key that is not bare (spaces, dots) is shown quoted, as the file must write it.
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let key = if bare {
        key.to_string()
    } else {
        format!("\"{}\"", key.replace('\\', "\\\\").replace('"', "\\\""))
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn check_table(
    source: &Source,
    path: &str,
    span: Range<usize>,
    table: &DeTable,
    fields: &[Field],
    out: &mut Vec<Diagnostic>,
) {
    let place = if path.is_empty() {
        "at the top of the file".to_string()
    } else {
        format!("in [{path}]")
    };
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        match fields.iter().find(|f| f.key == name) {
            Some(f) => check_value(source, &join(path, name), value, &f.shape, out),
            None => {
                let expected: Vec<&str> = fields.iter().map(|f| f.key).collect();
                let hint = match crate::diag::suggest(name, expected.iter().copied()) {
                    Some(best) => format!(
                        "did you mean `{best}`? (keys here: {})",
                        expected.join(", ")
                    ),
                    None => format!("keys here: {}", expected.join(", ")),
                };
                out.push(
                    Diagnostic::error("E002", format!("unknown key `{name}` {place}"))
                        .at(source, &key.span())
                        .hint(hint),
                );
            }
        }
    }
    for f in fields.iter().filter(|f| f.required) {
        if !table.iter().any(|(k, _)| k.get_ref() == f.key) {
            // The header is a better place for "has no `address`" than the table's first key;
            // found only now, when something is missing (a scan of the file per table would make
            // a large file quadratic).
            let at = if path.is_empty() {
                span.clone()
            } else {
                key_span_of(source, path).unwrap_or_else(|| span.clone())
            };
            out.push(
                Diagnostic::error("E003", format!("[{path}] has no `{}`", f.key))
                    .at(source, &at)
                    .hint(format!("add `{} = …` ({})", f.key, f.shape.words())),
            );
        }
    }
}

fn check_value(
    source: &Source,
    path: &str,
    value: &Spanned<DeValue>,
    shape: &Shape,
    out: &mut Vec<Diagnostic>,
) {
    let v = value.get_ref();
    if !shape.accepts(v) {
        out.push(
            Diagnostic::error(
                "E003",
                format!("`{path}` must be {}, not {}", shape.words(), kind(v)),
            )
            .at(source, &value.span())
            .hint(fix(shape, v, source.text.get(value.span()).unwrap_or(""))),
        );
        return;
    }
    match (shape, v) {
        (Shape::ListOf(inner), DeValue::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                if !inner.accepts(item.get_ref()) {
                    out.push(
                        Diagnostic::error(
                            "E003",
                            format!(
                                "`{path}` must be {}, but item {} is {}",
                                shape.words(),
                                i + 1,
                                kind(item.get_ref())
                            ),
                        )
                        .at(source, &item.span())
                        .hint(fix(
                            inner,
                            item.get_ref(),
                            source.text.get(item.span()).unwrap_or(""),
                        )),
                    );
                }
            }
        }
        (Shape::TextOrTexts, DeValue::Array(_)) => {
            check_value(source, path, value, &TEXTS, out);
        }
        (Shape::Table(fields), DeValue::Table(t)) => {
            check_table(source, path, value.span(), t, fields, out);
        }
        (Shape::MapOf(inner), DeValue::Table(t)) => {
            for (key, v) in t.iter() {
                check_value(source, &join(path, key.get_ref()), v, inner, out);
            }
        }
        _ => {}
    }
}

/// Where `[path]` is written as a header, for locating a table's missing keys.
fn key_span_of(source: &Source, path: &str) -> Option<Range<usize>> {
    let header = format!("[{path}]");
    let text: &str = &source.text;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with(&header) {
            let offset = at + (line.len() - line.trim_start().len());
            return Some(offset..offset + header.len());
        }
        at += line.len();
    }
    None
}

/// For a duplicate key at `span`: where the key was first defined, found in the parsed tree by
/// the path of the table the duplicate stands in (its nearest `[header]` above, or the header
/// itself when the header is the duplicate).
pub fn first_definition(
    source: &Source,
    table: &DeTable,
    span: &Range<usize>,
) -> Option<Range<usize>> {
    let text: &str = &source.text;
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let key_text = text.get(span.clone())?.trim().trim_matches('"').to_string();
    let header_dup = line.trim_start().starts_with('[');
    let mut full = String::new();
    let (mut path, key): (Vec<String>, String) = if header_dup {
        let mut p = header_path(line)?;
        full = p.iter().fold(String::new(), |acc, k| join(&acc, k));
        let last = p.pop()?;
        (p, last)
    } else {
        // The nearest header above.
        let above = &text[..line_start];
        let header = above
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('['));
        let p = match header {
            Some(h) => header_path(h)?,
            None => Vec::new(),
        };
        (p, key_text)
    };
    let mut t = table;
    for seg in path.drain(..) {
        let (_, v) = t.iter().find(|(k, _)| *k.get_ref() == seg)?;
        match v.get_ref() {
            DeValue::Table(inner) => t = inner,
            _ => return None,
        }
    }
    let header = header_dup.then(|| key_span_of(source, &full)).flatten();
    if let Some(first) = header.filter(|h| h.start < span.start) {
        return Some(first);
    }
    let (k, _) = t.iter().find(|(k, _)| *k.get_ref() == key)?;
    (k.span().start < span.start).then(|| k.span())
}

/// `[a.b."c d"]` → ["a", "b", "c d"] (`[[…]]` too).
fn header_path(line: &str) -> Option<Vec<String>> {
    let inner = line.trim().trim_start_matches('[');
    let end = inner.find(']')?;
    let inner = &inner[..end];
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in inner.chars() {
        match c {
            '"' | '\'' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_split_on_unquoted_dots() {
        assert_eq!(
            header_path("[units.CORE.variables]").unwrap(),
            ["units", "CORE", "variables"]
        );
        assert_eq!(
            header_path(" [ nodes.\"A.B\" ] # x").unwrap(),
            ["nodes", "A.B"]
        );
    }

    #[test]
    fn words_are_the_files() {
        assert_eq!(Shape::ListOf(&Shape::Text).words(), "a list of strings");
        assert_eq!(Shape::Whole.words(), "a whole number");
        assert_eq!(Shape::Table(ZONE).words(), "a table");
    }
}
