//! Reader of `nft list ruleset` text (and `nft -a`, and hand-written `/etc/nftables.conf`): a
//! tokenizer and a recursive-descent parser that build the document `nft -j list ruleset` would
//! print, read by [`super::nft::read`], so that text and JSON of one ruleset get the same verdicts
//! by construction. What the parser does not understand in a rule becomes a named "cannot decide"
//! (never a guess); broken structure is a located [`AuditError::Syntax`].

use std::borrow::{Borrow, Cow};
use std::collections::HashMap;

use serde_json::{Value, json};

use super::{AuditError, Format, Ruleset};

const HINT: &str = "give the unmodified output of `nft list ruleset` (or `nft -a list ruleset`, \
                    with handles), or `nft -j list ruleset`";

/// `$NAME` expansions may make at most this many tokens, or four times the file's own if more
/// (definitions that nest ten by ten explode: a 1.4 MB file once took 1.6 GB before its refusal).
const MIN_TOKEN_LIMIT: usize = 1_000_000;
/// The deepest nesting of `{ }` inside a rule or a set's elements.
const MAX_NESTING: usize = 32;

/// The families nft knows; a table without one is `ip`.
const FAMILIES: &[&str] = &["ip", "ip6", "inet", "arp", "bridge", "netdev"];

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Word(String),
    Str(String),
    /// One of `{ } ; , ( )`.
    Sym(char),
    Newline,
    /// `# handle N` (what `nft -a` prints after a rule).
    Handle(u64),
}

#[derive(Debug, Clone)]
struct Tok {
    kind: Kind,
    line: usize,
    col: usize,
    /// Byte offsets of the token in the text (a `$NAME` expansion keeps the `$NAME`'s).
    start: usize,
    end: usize,
}

impl Tok {
    fn word(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) => Some(w),
            _ => None,
        }
    }
    fn is_word(&self, w: &str) -> bool {
        self.word() == Some(w)
    }
    fn is_sym(&self, c: char) -> bool {
        self.kind == Kind::Sym(c)
    }
    fn name(&self) -> Option<&str> {
        match &self.kind {
            Kind::Word(w) | Kind::Str(w) if !w.is_empty() => Some(w),
            _ => None,
        }
    }
}

struct Reader<'a> {
    file: &'a str,
    text: &'a str,
}

impl Reader<'_> {
    fn err_at(&self, line: usize, col: usize, what: String, hint: &str) -> AuditError {
        AuditError::Syntax {
            file: self.file.to_string(),
            line,
            col,
            what,
            hint: hint.to_string(),
        }
    }

    fn err(&self, t: &Tok, what: String) -> AuditError {
        self.err_at(t.line, t.col, what, HINT)
    }

    /// The source text of a run of tokens, on one line (whitespace runs as one space).
    fn source<T: std::borrow::Borrow<Tok>>(&self, toks: &[T]) -> String {
        let (Some(a), Some(b)) = (
            toks.first().map(Borrow::borrow),
            toks.last().map(Borrow::borrow),
        ) else {
            return String::new();
        };
        let (lo, hi) = (a.start.min(b.start), a.end.max(b.end));
        let text = self.text.get(lo..hi).unwrap_or("");
        super::clean(&text.split_whitespace().collect::<Vec<_>>().join(" "))
    }

    fn tokenize(&self) -> Result<Vec<Tok>, AuditError> {
        let mut out = Vec::new();
        let mut chars = self.text.char_indices().peekable();
        let (mut line, mut line_start) = (1usize, 0usize);
        // The column of the last position seen: counted on from there (a huge line stays linear).
        let mut seen = (0usize, 1usize);
        while let Some(&(at, c)) = chars.peek() {
            if seen.0 < line_start {
                seen = (line_start, 1);
            }
            let here = seen.1 + self.text[seen.0..at].chars().count();
            seen = (at, here);
            let tok = |kind, end| Tok {
                kind,
                line,
                col: here,
                start: at,
                end,
            };
            match c {
                '\n' => {
                    chars.next();
                    out.push(tok(Kind::Newline, at + 1));
                    line += 1;
                    line_start = at + 1;
                }
                '\\' if self.text[at + 1..].starts_with('\n') => {
                    // a line continuation
                    chars.next();
                    chars.next();
                    line += 1;
                    line_start = at + 2;
                }
                c if c.is_whitespace() => {
                    chars.next();
                }
                '#' => {
                    let end = self.text[at..]
                        .find('\n')
                        .map_or(self.text.len(), |n| at + n);
                    let comment = self.text[at + 1..end].trim();
                    if let Some(n) = comment
                        .strip_prefix("handle ")
                        .and_then(|n| n.trim().parse().ok())
                    {
                        out.push(tok(Kind::Handle(n), end));
                    }
                    while chars.peek().is_some_and(|&(i, _)| i < end) {
                        chars.next();
                    }
                }
                '"' => {
                    chars.next();
                    let mut s = String::new();
                    let mut closed = None;
                    while let Some(&(i, ch)) = chars.peek() {
                        if ch == '\n' {
                            break;
                        }
                        chars.next();
                        if ch == '"' {
                            closed = Some(i + 1);
                            break;
                        }
                        if ch == '\\' {
                            if let Some(&(_, next)) = chars.peek() {
                                if next == '"' || next == '\\' {
                                    chars.next();
                                    s.push(next);
                                    continue;
                                }
                            }
                        }
                        s.push(ch);
                    }
                    let Some(end) = closed else {
                        return Err(self.err_at(
                            line,
                            here,
                            "unterminated string".into(),
                            "close the string with `\"` on the same line",
                        ));
                    };
                    out.push(tok(Kind::Str(s), end));
                }
                '{' | '}' | ';' | ',' | '(' | ')' => {
                    chars.next();
                    out.push(tok(Kind::Sym(c), at + 1));
                }
                '=' | '!' | '<' | '>' => {
                    chars.next();
                    let mut w = c.to_string();
                    if let Some(&(_, n)) = chars.peek() {
                        if n == '=' || (n == c && (c == '<' || c == '>')) {
                            chars.next();
                            w.push(n);
                        }
                    }
                    out.push(tok(Kind::Word(w.clone()), at + w.len()));
                }
                _ => {
                    let mut end = at;
                    while let Some(&(i, ch)) = chars.peek() {
                        if ch.is_whitespace()
                            || matches!(
                                ch,
                                '{' | '}'
                                    | ';'
                                    | ','
                                    | '('
                                    | ')'
                                    | '"'
                                    | '#'
                                    | '='
                                    | '!'
                                    | '<'
                                    | '>'
                            )
                        {
                            break;
                        }
                        chars.next();
                        end = i + ch.len_utf8();
                    }
                    out.push(tok(Kind::Word(self.text[at..end].to_string()), end));
                }
            }
        }
        Ok(out)
    }

    /// `define NAME = …` (to the end of its line, braces may span lines) is taken out and every
    /// `$NAME` replaced by its tokens.
    fn expand(&self, toks: Vec<Tok>) -> Result<Vec<Tok>, AuditError> {
        let special = |t: &Tok| {
            t.word().is_some_and(|w| {
                w.starts_with('$') || matches!(w, "define" | "redefine" | "undefine")
            })
        };
        if !toks.iter().any(special) {
            return Ok(toks);
        }
        let limit = toks.len().saturating_mul(4).max(MIN_TOKEN_LIMIT);
        let mut defs: HashMap<String, Vec<Tok>> = HashMap::new();
        let mut out: Vec<Tok> = Vec::with_capacity(toks.len());
        let mut i = 0;
        let mut line_start = true;
        while i < toks.len() {
            let t = &toks[i];
            let starts = line_start;
            line_start = matches!(t.kind, Kind::Newline | Kind::Sym(';' | '{' | '}'));
            if starts && (t.is_word("define") || t.is_word("redefine")) {
                let Some(name) = toks.get(i + 1).and_then(Tok::word) else {
                    return Err(self.err(t, "`define` without a name".into()));
                };
                if !toks.get(i + 2).is_some_and(|t| t.is_word("=")) {
                    return Err(self.err(t, format!("`define {}` without `=`", clip(name))));
                }
                let mut j = i + 3;
                let mut depth = 0i32;
                let mut value: Vec<Tok> = Vec::new();
                let too_big = |name: &str| {
                    self.err_at(
                        t.line,
                        t.col,
                        format!(
                            "`define {}` expands to more than {limit} tokens",
                            clip(name)
                        ),
                        "a ruleset export has no such definitions: give `nft list ruleset`",
                    )
                };
                while j < toks.len() {
                    let v = &toks[j];
                    match v.kind {
                        Kind::Newline | Kind::Sym(';') if depth <= 0 => break,
                        Kind::Sym('{') => depth += 1,
                        Kind::Sym('}') => depth -= 1,
                        _ => {}
                    }
                    if v.kind != Kind::Newline {
                        let grown = match v.word().and_then(|w| w.strip_prefix('$')) {
                            Some(n) => defs.get(n).map_or(1, Vec::len),
                            None => 1,
                        };
                        // Checked before copying: the copies are what would exhaust memory.
                        if value.len() + grown > limit {
                            return Err(too_big(name));
                        }
                        value.extend(self.substitute(v, &defs)?);
                    }
                    j += 1;
                }
                if value.is_empty() {
                    return Err(self.err(t, format!("`define {}` has no value", clip(name))));
                }
                defs.insert(name.to_string(), value);
                i = j;
                line_start = true;
                continue;
            }
            if starts && t.is_word("undefine") {
                if let Some(name) = toks.get(i + 1).and_then(Tok::word) {
                    defs.remove(name);
                }
                i += 2;
                continue;
            }
            let grown = match t.word().and_then(|w| w.strip_prefix('$')) {
                Some(name) => defs.get(name).map_or(1, Vec::len),
                None => 1,
            };
            if out.len() + grown > limit {
                return Err(self.err_at(
                    t.line,
                    t.col,
                    format!("the definitions expand to more than {limit} tokens"),
                    "a ruleset export has no such definitions: give `nft list ruleset`",
                ));
            }
            out.extend(self.substitute(t, &defs)?);
            i += 1;
        }
        Ok(out)
    }

    fn substitute(
        &self,
        t: &Tok,
        defs: &HashMap<String, Vec<Tok>>,
    ) -> Result<Vec<Tok>, AuditError> {
        let Some(name) = t.word().and_then(|w| w.strip_prefix('$')) else {
            return Ok(vec![t.clone()]);
        };
        let Some(value) = defs.get(name) else {
            return Err(self.err_at(
                t.line,
                t.col,
                format!("`${}` is not defined", clip(name)),
                "define it before its use: `define NAME = VALUE`",
            ));
        };
        Ok(value
            .iter()
            .map(|v| Tok {
                kind: v.kind.clone(),
                line: t.line,
                col: t.col,
                start: t.start,
                end: t.end,
            })
            .collect())
    }
}

/// The statements of a block (or the file): split at newlines and `;` outside braces; each
/// statement's nested blocks stay in it. `}` without `{` and a `{` never closed are errors.
fn split<'t>(r: &Reader, toks: &'t [Tok]) -> Result<Vec<&'t [Tok]>, AuditError> {
    let mut out = Vec::new();
    let mut open: Vec<&Tok> = Vec::new();
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t.kind {
            Kind::Sym('{') => open.push(t),
            Kind::Sym('}') if open.pop().is_none() => {
                return Err(r.err(t, "`}` without a matching `{`".into()));
            }
            Kind::Newline | Kind::Sym(';') if open.is_empty() => {
                let st = &toks[start..i];
                if st.iter().any(|t| !matches!(t.kind, Kind::Handle(_))) {
                    out.push(st);
                }
                start = i + 1;
                continue;
            }
            _ => {}
        }
    }
    if let Some(t) = open.first() {
        return Err(r.err(t, "`{` is never closed".into()));
    }
    let st = &toks[start.min(toks.len())..];
    if st.iter().any(|t| !matches!(t.kind, Kind::Handle(_))) {
        out.push(st);
    }
    Ok(out)
}

/// A statement of the form `KEYWORD … { BODY }` (perhaps followed by `# handle N`): the words
/// before the block and the body's tokens.
fn block<'t>(r: &Reader, st: &'t [Tok]) -> Result<(&'t [Tok], Option<&'t [Tok]>), AuditError> {
    let Some(open) = st.iter().position(|t| t.is_sym('{')) else {
        return Ok((st, None));
    };
    let mut depth = 0;
    for (i, t) in st.iter().enumerate().skip(open) {
        match t.kind {
            Kind::Sym('{') => depth += 1,
            Kind::Sym('}') => {
                depth -= 1;
                if depth == 0 {
                    if let Some(extra) = st[i + 1..]
                        .iter()
                        .find(|t| !matches!(t.kind, Kind::Handle(_)))
                    {
                        return Err(r.err(extra, format!("unexpected {} after `}}`", shown(extra))));
                    }
                    return Ok((&st[..open], Some(&st[open + 1..i])));
                }
            }
            _ => {}
        }
    }
    Err(r.err(&st[open], "`{` is never closed".into()))
}

fn shown(t: &Tok) -> String {
    match &t.kind {
        Kind::Word(w) => format!("`{}`", clip(w)),
        Kind::Str(s) => format!("\"{}\"", clip(s)),
        Kind::Sym(c) => format!("`{c}`"),
        Kind::Newline => "end of line".into(),
        Kind::Handle(_) => "`# handle`".into(),
    }
}

fn clip(s: &str) -> String {
    super::clip(s)
}

type Key = (String, String, String);

#[derive(Default)]
struct ChainItem {
    props: serde_json::Map<String, Value>,
    rules: Vec<RuleItem>,
}

struct RuleItem {
    exprs: Vec<Value>,
    handle: Option<u64>,
    comment: Option<String>,
    /// `handle 7: tcp dport 22 accept`, `line 12: …`.
    origin: String,
}

#[derive(Default)]
struct Doc {
    tables: Vec<(String, String)>,
    table_set: std::collections::HashSet<(String, String)>,
    chains: Vec<(Key, ChainItem)>,
    chain_at: HashMap<Key, usize>,
    sets: Vec<(Key, serde_json::Map<String, Value>)>,
    set_at: HashMap<Key, usize>,
}

impl Doc {
    fn table(&mut self, family: &str, name: &str) {
        let t = (family.to_string(), name.to_string());
        if self.table_set.insert(t.clone()) {
            self.tables.push(t);
        }
    }

    fn delete_table(&mut self, family: &str, name: &str) {
        let other = |k: &Key| k.0 != family || k.1 != name;
        self.tables.retain(|(f, n)| f != family || n != name);
        self.table_set
            .remove(&(family.to_string(), name.to_string()));
        self.chains.retain(|(k, _)| other(k));
        self.sets.retain(|(k, _)| other(k));
        self.chain_at = self
            .chains
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
        self.set_at = self
            .sets
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.clone(), i))
            .collect();
    }

    fn chain(&mut self, key: &Key) -> &mut ChainItem {
        self.table(&key.0, &key.1);
        let at = match self.chain_at.get(key) {
            Some(&at) => at,
            None => {
                self.chain_at.insert(key.clone(), self.chains.len());
                self.chains.push((key.clone(), ChainItem::default()));
                self.chains.len() - 1
            }
        };
        &mut self.chains[at].1
    }

    fn set(&mut self, key: &Key, map: bool) -> &mut serde_json::Map<String, Value> {
        self.table(&key.0, &key.1);
        let at = match self.set_at.get(key) {
            Some(&at) => at,
            None => {
                self.set_at.insert(key.clone(), self.sets.len());
                let mut m = serde_json::Map::new();
                m.insert("family".into(), key.0.clone().into());
                m.insert("name".into(), key.2.clone().into());
                m.insert("table".into(), key.1.clone().into());
                if map {
                    m.insert("map".into(), Value::Null);
                }
                self.sets.push((key.clone(), m));
                self.sets.len() - 1
            }
        };
        &mut self.sets[at].1
    }

    /// The JSON document, and each chain's rule names (in the document's order).
    fn into_json(self) -> (Value, HashMap<Key, Vec<String>>) {
        let mut names = HashMap::new();
        let mut items = Vec::new();
        for (f, n) in self.tables {
            items.push(json!({"table": {"family": f, "name": n}}));
        }
        for (_, mut s) in self.sets {
            let kind = if s.contains_key("map") { "map" } else { "set" };
            if s.get("map") == Some(&Value::Null) {
                s.remove("map");
            }
            items.push(obj([(kind, Value::Object(s))]));
        }
        let mut rules = Vec::new();
        for ((f, t, n), c) in self.chains {
            let mut props = c.props;
            props.insert("family".into(), f.clone().into());
            props.insert("table".into(), t.clone().into());
            props.insert("name".into(), n.clone().into());
            items.push(obj([("chain", Value::Object(props))]));
            let mut origins = Vec::with_capacity(c.rules.len());
            for r in c.rules {
                let mut o = obj([
                    ("family", f.clone().into()),
                    ("table", t.clone().into()),
                    ("chain", n.clone().into()),
                    ("expr", Value::Array(r.exprs)),
                ]);
                if let Some(h) = r.handle {
                    o["handle"] = h.into();
                }
                if let Some(c) = r.comment {
                    o["comment"] = c.into();
                }
                rules.push(obj([("rule", o)]));
                origins.push(r.origin);
            }
            names.insert((f, t, n), origins);
        }
        items.extend(rules);
        (obj([("nftables", Value::Array(items))]), names)
    }
}

/// Whether the text looks like nft's: a line opening with `table`, `flush ruleset`, `define`,
/// `include`, `add table`/`add rule`, or nft's shebang.
pub fn looks_nft(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start();
        [
            "table ",
            "flush ruleset",
            "define ",
            "include ",
            "add table ",
            "add rule ",
        ]
        .iter()
        .any(|p| l.starts_with(p))
            || (l.starts_with("#!") && l.contains("nft"))
    })
}

/// Reads `nft list ruleset` text.
pub fn read(file: &str, text: &str) -> Result<Ruleset, AuditError> {
    let r = Reader { file, text };
    let toks = r.expand(r.tokenize()?)?;
    let mut doc = Doc::default();
    for st in split(&r, &toks)? {
        r.command(st, &mut doc)?;
    }
    let (json, names) = doc.into_json();
    let mut rs = super::nft::read(file, &json)?;
    rs.format = Format::NftText;
    // The same chains in the same order, and their rules: name each by its own text.
    for chain in rs.chains.iter_mut() {
        let mut words = chain.name.splitn(3, ' ');
        let key: Key = (
            words.next().unwrap_or("").to_string(),
            words.next().unwrap_or("").to_string(),
            words.next().unwrap_or("").to_string(),
        );
        let Some(origins) = names.get(&key) else {
            continue;
        };
        for (rule, origin) in chain.rules.iter_mut().zip(origins) {
            rule.origin = format!("{} {origin}", chain.name);
        }
    }
    Ok(rs)
}

fn family_and_name(words: &[Tok]) -> Option<(String, &Tok, &[Tok])> {
    let first = words.first()?;
    match (first.word(), words.get(1)) {
        (Some(f), Some(name)) if FAMILIES.contains(&f) && name.name().is_some() => {
            Some((f.to_string(), name, &words[2..]))
        }
        (Some(f), _) if FAMILIES.contains(&f) => None,
        _ if first.name().is_some() => Some(("ip".to_string(), first, &words[1..])),
        _ => None,
    }
}

/// Tokens without the `# handle N` comments.
fn plain(toks: &[Tok]) -> Cow<'_, [Tok]> {
    if !toks.iter().any(|t| matches!(t.kind, Kind::Handle(_))) {
        return Cow::Borrowed(toks);
    }
    toks.iter()
        .filter(|t| !matches!(t.kind, Kind::Handle(_)))
        .cloned()
        .collect()
}

impl Reader<'_> {
    fn command(&self, st: &[Tok], doc: &mut Doc) -> Result<(), AuditError> {
        let Some(head) = st.first() else {
            return Ok(());
        };
        let word = head.word().unwrap_or("");
        match word {
            "table" => self.table(head, &st[1..], doc),
            "add" | "create" | "insert" => self.add(head, &st[1..], doc),
            "flush" => self.flush(head, &st[1..], doc),
            "include" => Err(self.err_at(
                head.line,
                head.col,
                "`include` is not read (the included files are not in the export)".into(),
                "give the whole ruleset as one file: `nft list ruleset > rules.nft` on the host",
            )),
            _ if head.word().is_some_and(|w| w.starts_with("#!")) => Ok(()),
            "delete" | "destroy" if st.get(1).is_some_and(|t| t.is_word("table")) => {
                // `table inet t {}` + `delete table inet t`: the idiom that replaces one table
                let (family, name, _) = family_and_name(&st[2..])
                    .ok_or_else(|| self.err(head, format!("`{word} table` without a name")))?;
                doc.delete_table(&family, name.name().unwrap_or(""));
                Ok(())
            }
            "delete" | "destroy" | "replace" | "reset" | "rename" | "list" | "monitor"
            | "describe" | "export" | "import" => {
                Err(self.err(head, format!("the command `{word}` is not read")))
            }
            "chain" | "set" | "map" => Err(self.err(head, format!("`{word}` outside a table"))),
            _ => Err(self.err(
                head,
                format!(
                    "unexpected {} at the top level (a rule outside a chain?)",
                    shown(head)
                ),
            )),
        }
    }

    fn flush(&self, head: &Tok, rest: &[Tok], doc: &mut Doc) -> Result<(), AuditError> {
        let what = rest.first().and_then(Tok::word).unwrap_or("");
        match what {
            "ruleset" => {
                *doc = Doc::default();
                Ok(())
            }
            "table" | "chain" | "set" | "map" => {
                let (family, name, more) = family_and_name(&rest[1..])
                    .ok_or_else(|| self.err(head, format!("`flush {what}` without a name")))?;
                let name = name.name().unwrap_or("").to_string();
                if what == "table" {
                    for ((f, t, _), c) in doc.chains.iter_mut() {
                        if *f == family && *t == name {
                            c.rules.clear();
                        }
                    }
                    for ((f, t, _), s) in doc.sets.iter_mut() {
                        if *f == family && *t == name {
                            s.remove("elem");
                        }
                    }
                    return Ok(());
                }
                let obj = more.first().and_then(Tok::name).unwrap_or("").to_string();
                let key = (family, name, obj);
                if what == "chain" {
                    if let Some(&at) = doc.chain_at.get(&key) {
                        doc.chains[at].1.rules.clear();
                    }
                } else if let Some(&at) = doc.set_at.get(&key) {
                    doc.sets[at].1.remove("elem");
                }
                Ok(())
            }
            _ => Err(self.err(
                head,
                "only `flush ruleset`, `flush table`, `flush chain` and `flush set` are read"
                    .into(),
            )),
        }
    }

    /// `add table|chain|set|map|rule|element …`, `create …`, `insert rule …`.
    fn add(&self, head: &Tok, rest: &[Tok], doc: &mut Doc) -> Result<(), AuditError> {
        let what = rest.first().and_then(Tok::word).unwrap_or("");
        let args = &rest[rest.len().min(1)..];
        match what {
            "table" => self.table(head, args, doc),
            "chain" | "set" | "map" | "element" | "rule" => {
                let (family, table, more) = family_and_name(args)
                    .ok_or_else(|| self.err(head, format!("`{what}` without a table")))?;
                let table = table.name().unwrap_or("").to_string();
                let Some(obj) = more.first().filter(|t| t.name().is_some()) else {
                    return Err(self.err(head, format!("`{what}` without a name")));
                };
                let key = (family, table, obj.name().unwrap_or("").to_string());
                let body = &more[1..];
                match what {
                    "chain" => {
                        doc.chain(&key);
                        if !body.is_empty() {
                            let (_, inner) = block(self, body)?;
                            self.chain_body(&key, inner.unwrap_or(&[]), doc)?;
                        }
                        Ok(())
                    }
                    "set" | "map" => {
                        let (_, inner) = block(self, body)?;
                        self.set_body(&key, what == "map", inner.unwrap_or(&[]), doc)
                    }
                    "element" => {
                        let (_, inner) = block(self, body)?;
                        let Some(&at) = doc.set_at.get(&key) else {
                            return Err(self.err(
                                obj,
                                format!("elements of set `{}`, which is not defined", clip(&key.2)),
                            ));
                        };
                        let elems = self.elements(inner.unwrap_or(&[]))?;
                        append_elems(&mut doc.sets[at].1, elems);
                        Ok(())
                    }
                    _ => {
                        if !doc.chain_at.contains_key(&key) {
                            return Err(self.err(
                                obj,
                                format!("a rule of chain `{}`, which is not defined", clip(&key.2)),
                            ));
                        }
                        let mut body = body;
                        if body.first().is_some_and(|t| {
                            t.is_word("position") || t.is_word("index") || t.is_word("handle")
                        }) {
                            return Err(self.err(
                                &body[0],
                                format!(
                                    "`{} rule … {}` is not read (the position is not known)",
                                    head.word().unwrap_or(""),
                                    body[0].word().unwrap_or("")
                                ),
                            ));
                        }
                        if body.is_empty() {
                            body = &[];
                        }
                        let item = self.rule(body, head.line);
                        let chain = doc.chain(&key);
                        if head.is_word("insert") {
                            chain.rules.insert(0, item);
                        } else {
                            chain.rules.push(item);
                        }
                        Ok(())
                    }
                }
            }
            _ => Err(self.err(
                head,
                format!("`{} {}` is not read", head.word().unwrap_or(""), clip(what)),
            )),
        }
    }

    fn table(&self, head: &Tok, rest: &[Tok], doc: &mut Doc) -> Result<(), AuditError> {
        let (words, body) = block(self, rest)?;
        let Some((family, name, more)) = family_and_name(words) else {
            return Err(self.err_at(
                head.line,
                head.col,
                "`table` without a name".into(),
                "write `table FAMILY NAME { … }` (FAMILY: ip, ip6, inet, arp, bridge, netdev)",
            ));
        };
        if let Some(t) = more.first() {
            return Err(self.err(t, format!("unexpected {} in the table's name", shown(t))));
        }
        let name = name.name().unwrap_or("").to_string();
        doc.table(&family, &name);
        let Some(body) = body else { return Ok(()) };
        for st in split(self, body)? {
            let Some(h) = st.first() else { continue };
            let kw = h.word().unwrap_or("");
            match kw {
                "chain" | "set" | "map" => {
                    let (words, inner) = block(self, &st[1..])?;
                    let Some(n) = words.first().and_then(Tok::name) else {
                        return Err(self.err(h, format!("`{kw}` without a name")));
                    };
                    if let Some(t) = words.get(1) {
                        return Err(self.err(t, format!("unexpected {} after the name", shown(t))));
                    }
                    let key = (family.clone(), name.clone(), n.to_string());
                    if kw == "chain" {
                        doc.chain(&key);
                        self.chain_body(&key, inner.unwrap_or(&[]), doc)?;
                    } else {
                        self.set_body(&key, kw == "map", inner.unwrap_or(&[]), doc)?;
                    }
                }
                // objects the audit does not evaluate: their blocks are skipped
                "flowtable" | "counter" | "quota" | "limit" | "secmark" | "synproxy" | "ct" => {
                    block(self, st)?;
                }
                "flags" | "comment" => {}
                _ => {
                    return Err(self.err(
                        h,
                        format!(
                            "unexpected {} in a table (a rule outside a chain?)",
                            shown(h)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn chain_body(&self, key: &Key, body: &[Tok], doc: &mut Doc) -> Result<(), AuditError> {
        for raw in split(self, body)? {
            let handle = raw.iter().find_map(|t| match t.kind {
                Kind::Handle(h) => Some(h),
                _ => None,
            });
            let st = &plain(raw)[..];
            let Some(h) = st.first() else { continue };
            match h.word().unwrap_or("") {
                "type" => {
                    let chain = doc.chain(key);
                    let mut i = 1;
                    while i < st.len() {
                        let w = st[i].word().unwrap_or("");
                        match w {
                            "hook" => {
                                let v = st.get(i + 1).and_then(Tok::name).unwrap_or("");
                                chain.props.insert("hook".into(), v.into());
                                i += 2;
                            }
                            "priority" => {
                                let (p, used) = priority(&st[i + 1..]).ok_or_else(|| {
                                    self.err(
                                        &st[i],
                                        "a priority that is not a number or a name".into(),
                                    )
                                })?;
                                chain.props.insert("prio".into(), p.into());
                                i += 1 + used;
                            }
                            "device" => {
                                let v = st.get(i + 1).and_then(Tok::name).unwrap_or("");
                                chain.props.insert("dev".into(), v.into());
                                i += 2;
                            }
                            "devices" => {
                                // `devices = { a, b }`
                                let close = st[i..]
                                    .iter()
                                    .position(|t| t.is_sym('}'))
                                    .map_or(st.len(), |n| i + n + 1);
                                i = close;
                            }
                            _ if i == 1 => {
                                chain.props.insert("type".into(), w.into());
                                i += 1;
                            }
                            _ => {
                                return Err(self.err(
                                    &st[i],
                                    format!("unexpected {} in the chain's type", shown(&st[i])),
                                ));
                            }
                        }
                    }
                }
                "policy" => {
                    let v = st.get(1).and_then(Tok::word).unwrap_or("");
                    if !matches!(v, "accept" | "drop") {
                        return Err(self.err(h, "a policy other than `accept` or `drop`".into()));
                    }
                    doc.chain(key).props.insert("policy".into(), v.into());
                }
                "devices" => {}
                "comment" if st.len() == 2 => {}
                _ => {
                    let mut item = self.rule(st, h.line);
                    if let Some(n) = handle {
                        item.handle = Some(n);
                        item.origin = format!("handle {n}: {}", self.source(st));
                    }
                    doc.chain(key).rules.push(item);
                }
            }
        }
        Ok(())
    }

    fn set_body(
        &self,
        key: &Key,
        map: bool,
        body: &[Tok],
        doc: &mut Doc,
    ) -> Result<(), AuditError> {
        let set = doc.set(key, map);
        for st in split(self, body)? {
            let st = &plain(st)[..];
            let Some(h) = st.first() else { continue };
            match h.word().unwrap_or("") {
                "type" | "typeof" => {
                    let words: Vec<&str> = st[1..].iter().filter_map(Tok::name).collect();
                    let (k, v) = match words.iter().position(|w| *w == ":") {
                        Some(at) => (&words[..at], Some(&words[at + 1..])),
                        None => (&words[..], None),
                    };
                    let list = |w: &[&str]| -> Value {
                        let parts: Vec<&str> = w.iter().copied().filter(|x| *x != ".").collect();
                        match parts.as_slice() {
                            [one] => (*one).into(),
                            _ => parts.into(),
                        }
                    };
                    set.insert("type".into(), list(k));
                    if let Some(v) = v {
                        set.insert("map".into(), list(v));
                    }
                }
                "flags" => {
                    let flags: Vec<&str> = st[1..].iter().filter_map(Tok::word).collect();
                    set.insert("flags".into(), flags.into());
                }
                "elements" => {
                    let (_, inner) = block(self, st)?;
                    let elems = self.elements(inner.unwrap_or(&[]))?;
                    append_elems(set, elems);
                }
                _ => {} // size, timeout, gc-interval, policy, auto-merge, comment, counter
            }
        }
        Ok(())
    }

    /// The elements of a `{ … }` (set elements, map elements): nested braces are flattened.
    fn elements(&self, toks: &[Tok]) -> Result<Vec<Value>, AuditError> {
        let toks: Vec<&Tok> = toks
            .iter()
            .filter(|t| !matches!(t.kind, Kind::Newline | Kind::Handle(_)))
            .collect();
        let mut p = Parser {
            toks,
            at: 0,
            depth: 0,
        };
        p.elements().map_err(|at| {
            let t = p.toks.get(at).or(p.toks.last());
            match t {
                Some(t) => self.err(
                    t,
                    format!("a set element that is not understood at {}", shown(t)),
                ),
                None => self.err_at(1, 1, "an empty set element".into(), HINT),
            }
        })
    }

    /// One rule: its expressions as `nft -j` writes them. What is not understood from some
    /// statement on becomes one "not parsed" expression, with the verdict kept when one is plain.
    fn rule(&self, st: &[Tok], line: usize) -> RuleItem {
        let toks: Vec<&Tok> = st
            .iter()
            .filter(|t| !matches!(t.kind, Kind::Newline | Kind::Handle(_)))
            .collect();
        let mut p = Parser {
            toks: toks.clone(),
            at: 0,
            depth: 0,
        };
        let mut exprs = Vec::new();
        let mut comment = None;
        while p.at < toks.len() {
            let start = p.at;
            if p.peek_word() == Some("comment") {
                if let Some(Kind::Str(s)) = toks.get(p.at + 1).map(|t| &t.kind) {
                    comment = Some(s.clone());
                    p.at += 2;
                    continue;
                }
            }
            match p.statement() {
                Ok(Some(e)) => {
                    // nft loads `reject with tcp reset` with the TCP test it implies (and prints it)
                    if e.pointer("/reject/type").and_then(Value::as_str) == Some("tcp reset")
                        && !exprs.iter().any(tests_tcp)
                    {
                        exprs.push(json!({"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "tcp"}}));
                    }
                    exprs.push(e)
                }
                Ok(None) => {}
                Err(_) => {
                    let rest = &toks[start..];
                    let text = self.source(rest);
                    exprs.push(json!({ UNPARSED: text }));
                    if let Some(v) = verdict_of(rest) {
                        exprs.push(v);
                    }
                    if let Some(at) = rest.iter().position(|t| t.is_word("comment")) {
                        if let Some(Kind::Str(s)) = rest.get(at + 1).map(|t| &t.kind) {
                            comment = Some(s.clone());
                        }
                    }
                    break;
                }
            }
        }
        RuleItem {
            exprs,
            handle: None,
            comment,
            origin: format!("line {line}: {}", self.source(st)),
        }
    }
}

/// The key of the expression that [`super::nft`] reads as a "not parsed" condition.
pub const UNPARSED: &str = "x-scc-unparsed";
/// The key of the verdict that [`super::nft`] reads as an unknown action.
pub const UNPARSED_VERDICT: &str = "x-scc-unparsed-verdict";

/// The verdict of tokens the parser did not understand: one plain verdict word outside braces,
/// else an unknown verdict when anything may decide (`vmap`, several verdicts), else none.
fn verdict_of(toks: &[&Tok]) -> Option<Value> {
    let mut depth = 0i32;
    let mut found = Vec::new();
    let mut risky = false;
    for (i, t) in toks.iter().enumerate() {
        match &t.kind {
            Kind::Sym('{' | '(') => depth += 1,
            Kind::Sym('}' | ')') => depth -= 1,
            Kind::Word(w) if depth == 0 => match w.as_str() {
                "accept" | "drop" | "reject" | "return" | "continue" | "queue" => {
                    found.push(json!({ w.as_str(): null }))
                }
                "jump" | "goto" => match toks.get(i + 1).and_then(|t| t.name()) {
                    Some(target) => found.push(json!({ w.as_str(): {"target": target} })),
                    None => risky = true,
                },
                "vmap" | "map" | "tproxy" | "dnat" | "snat" | "masquerade" | "redirect" | "fwd" => {
                    risky = true
                }
                _ => {}
            },
            _ => {}
        }
    }
    match found.len() {
        1 if !risky => found.pop(),
        0 if !risky => None,
        _ => Some(json!({ UNPARSED_VERDICT: "" })),
    }
}

/// Whether a match tests for TCP (`tcp …`, `meta l4proto tcp`).
fn tests_tcp(e: &Value) -> bool {
    let Some(left) = e.pointer("/match/left") else {
        return false;
    };
    left.pointer("/payload/protocol").and_then(Value::as_str) == Some("tcp")
        || (left.pointer("/meta/key").and_then(Value::as_str) == Some("l4proto")
            && e.pointer("/match/right").and_then(Value::as_str) == Some("tcp"))
}

/// An object of owned values (`json!` would copy each value by serializing it).
fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Value {
    Value::Object(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn append_elems(set: &mut serde_json::Map<String, Value>, elems: Vec<Value>) {
    match set.get_mut("elem") {
        Some(Value::Array(a)) => a.extend(elems),
        _ => {
            set.insert("elem".into(), elems.into());
        }
    }
}

/// A chain priority: a number, a name, or `NAME + N` / `NAME - N`; with the tokens used.
fn priority(toks: &[Tok]) -> Option<(i64, usize)> {
    let first = toks.first()?.word()?;
    let base = match first {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        "out" => 100,
        w => return Some((w.parse::<i64>().ok()?.clamp(-100_000, 100_000), 1)),
    };
    match (
        toks.get(1).and_then(Tok::word),
        toks.get(2).and_then(Tok::word),
    ) {
        (Some("+"), Some(n)) => Some((base + n.parse::<i64>().ok()?.clamp(-100_000, 100_000), 3)),
        (Some("-"), Some(n)) => Some((base - n.parse::<i64>().ok()?.clamp(-100_000, 100_000), 3)),
        (Some(w), _) if w.starts_with('+') || w.starts_with('-') => {
            Some((base + w.parse::<i64>().ok()?.clamp(-100_000, 100_000), 2))
        }
        _ => Some((base, 1)),
    }
}

/// The protocol words whose next word is a header field.
const PROTOCOLS: &[&str] = &[
    "ip", "ip6", "tcp", "udp", "udplite", "sctp", "dccp", "th", "icmp", "icmpv6", "igmp", "ah",
    "esp", "comp", "ether", "vlan", "arp", "gre", "geneve", "vxlan", "ipip", "ipip6",
];

/// Meta keys nft writes without `meta`.
const BARE_META: &[&str] = &[
    "iif",
    "iifname",
    "oif",
    "oifname",
    "iiftype",
    "oiftype",
    "iifgroup",
    "oifgroup",
    "mark",
    "skuid",
    "skgid",
    "rtclassid",
    "nftrace",
    "l4proto",
    "nfproto",
    "pkttype",
    "cpu",
    "cgroup",
    "ibrname",
    "obrname",
    "ibriport",
    "obriport",
    "ibrpvid",
    "ibrvproto",
    "time",
    "day",
    "hour",
];

/// Words that end a value: a verdict is never a match's operand.
const VERDICTS: &[&str] = &[
    "accept", "drop", "reject", "return", "continue", "jump", "goto", "queue",
];

const OPS: &[(&str, &str)] = &[
    ("==", "=="),
    ("eq", "=="),
    ("!=", "!="),
    ("ne", "!="),
    ("<", "<"),
    ("lt", "<"),
    (">", ">"),
    ("gt", ">"),
    ("<=", "<="),
    ("le", "<="),
    (">=", ">="),
    ("ge", ">="),
];

/// A cursor over one rule's (or one set's) tokens; an error is the index of the token it stopped at.
struct Parser<'t> {
    toks: Vec<&'t Tok>,
    at: usize,
    /// How deep in nested `{ }` the parser is.
    depth: usize,
}

type Parsed<T> = Result<T, usize>;

impl<'t> Parser<'t> {
    fn peek(&self) -> Option<&'t Tok> {
        self.toks.get(self.at).copied()
    }
    fn peek_word(&self) -> Option<&'t str> {
        self.peek().and_then(Tok::word)
    }
    fn word(&mut self) -> Parsed<String> {
        match self.peek().and_then(Tok::word) {
            Some(w) => {
                let w = w.to_string();
                self.at += 1;
                Ok(w)
            }
            None => Err(self.at),
        }
    }
    fn eat(&mut self, w: &str) -> bool {
        if self.peek_word() == Some(w) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn eat_sym(&mut self, c: char) -> bool {
        if self.peek().is_some_and(|t| t.is_sym(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }
    fn number(&mut self) -> Parsed<u64> {
        let at = self.at;
        let w = self.word()?;
        w.parse().map_err(|_| at)
    }
    /// Skips words while `keep` says so.
    fn skip_while(&mut self, keep: impl Fn(&str) -> bool) {
        while self.peek_word().is_some_and(&keep) {
            self.at += 1;
        }
    }

    /// One statement or match of a rule (None: nothing to record, e.g. a bare `counter`).
    fn statement(&mut self) -> Parsed<Option<Value>> {
        let start = self.at;
        let Some(w) = self.peek_word().map(str::to_string) else {
            return Err(self.at);
        };
        let value = match w.as_str() {
            "accept" | "drop" | "continue" | "return" => {
                self.at += 1;
                json!({ w.as_str(): null })
            }
            "jump" | "goto" => {
                self.at += 1;
                let target = self.peek().and_then(Tok::name).ok_or(self.at)?.to_string();
                self.at += 1;
                json!({ w.as_str(): {"target": target} })
            }
            "queue" => {
                self.at += 1;
                self.skip_while(|w| {
                    matches!(w, "num" | "bypass" | "fanout" | "flags" | "to")
                        || w.chars().all(|c| c.is_ascii_digit() || c == '-')
                });
                json!({"queue": {}})
            }
            "reject" => {
                self.at += 1;
                let mut o = serde_json::Map::new();
                if self.eat("with") {
                    let kind = self.word()?;
                    if kind == "tcp" {
                        if !self.eat("reset") {
                            return Err(self.at);
                        }
                        o.insert("type".into(), "tcp reset".into());
                    } else {
                        self.eat("type");
                        let code = self.word()?;
                        o.insert("type".into(), kind.into());
                        o.insert("expr".into(), code.into());
                    }
                }
                obj([("reject", Value::Object(o))])
            }
            "counter" => {
                self.at += 1;
                let mut o = serde_json::Map::new();
                if self.eat("name") {
                    let n = self.peek().and_then(Tok::name).ok_or(self.at)?.to_string();
                    self.at += 1;
                    return Ok(Some(json!({"counter": n})));
                }
                for key in ["packets", "bytes"] {
                    if self.eat(key) {
                        o.insert(key.into(), self.number()?.into());
                    }
                }
                obj([("counter", Value::Object(o))])
            }
            "log" => {
                self.at += 1;
                let mut o = serde_json::Map::new();
                loop {
                    match self.peek_word() {
                        Some(
                            k @ ("prefix" | "level" | "group" | "snaplen" | "queue-threshold"),
                        ) => {
                            let k = k.to_string();
                            self.at += 1;
                            let v = self.peek().and_then(Tok::name).ok_or(self.at)?.to_string();
                            self.at += 1;
                            o.insert(k, v.into());
                        }
                        Some("flags") => {
                            // `flags all`, `flags tcp sequence,options`, `flags ip options`
                            self.at += 1;
                            self.word()?;
                            loop {
                                if self.eat_sym(',')
                                    || self.peek_word().is_some_and(|w| {
                                        matches!(w, "sequence" | "options" | "skuid" | "ether")
                                    })
                                {
                                    self.word()?;
                                    continue;
                                }
                                break;
                            }
                        }
                        _ => break,
                    }
                }
                obj([("log", Value::Object(o))])
            }
            "limit" => {
                self.at += 1;
                if !self.eat("rate") {
                    return Err(self.at);
                }
                let inv = self.eat("over");
                self.eat("until");
                let rate = self.word()?;
                if !rate.contains('/') {
                    // `limit rate 10 mbytes/second`
                    self.word()?;
                }
                if self.eat("burst") {
                    self.number()?;
                    self.skip_while(|w| matches!(w, "packets" | "bytes" | "kbytes" | "mbytes"));
                }
                json!({"limit": {"rate": rate, "inv": inv}})
            }
            "quota" => {
                self.at += 1;
                let inv = self.eat("over");
                self.eat("until");
                self.number()?;
                self.word()?;
                if self.eat("used") {
                    self.number()?;
                    self.word()?;
                }
                json!({"quota": {"inv": inv}})
            }
            "notrack" => {
                self.at += 1;
                json!({"notrack": null})
            }
            "ct" if self
                .toks
                .get(self.at + 1)
                .is_some_and(|t| t.is_word("count")) =>
            {
                self.at += 2;
                let inv = self.eat("over");
                self.number()?;
                json!({"ct count": {"inv": inv}})
            }
            "dnat" | "snat" | "masquerade" | "redirect" | "tproxy" | "dup" | "fwd" | "synproxy" => {
                // Address translation and packet copies decide nothing here: to the end (or the
                // comment).
                self.at += 1;
                while let Some(t) = self.peek() {
                    if t.is_word("comment") {
                        break;
                    }
                    self.at += 1;
                }
                json!({ w.as_str(): {} })
            }
            "add" | "update" | "delete"
                if self
                    .toks
                    .get(self.at + 1)
                    .and_then(|t| t.word())
                    .is_some_and(|w| w.starts_with('@')) =>
            {
                // `add @set { ip saddr }`: a dynamic set update
                self.at += 2;
                self.braces()?;
                json!({"set": {"op": w}})
            }
            _ => {
                let left = self.concat_lhs()?;
                if self.eat("set") {
                    self.operand()?;
                    return Ok(Some(obj([("mangle", obj([("key", left)]))])));
                }
                if self.eat("vmap") {
                    let data = self.rhs()?;
                    return Ok(Some(obj([("vmap", obj([("key", left), ("data", data)]))])));
                }
                let op = match self.peek_word() {
                    Some(w) => OPS.iter().find(|(k, _)| *k == w).map(|(_, v)| *v),
                    None => None,
                };
                if op.is_some() {
                    self.at += 1;
                }
                let right = self.rhs()?;
                let op = op.unwrap_or(if right.is_array() { "in" } else { "==" });
                let mut left = left;
                if self.eat("/") {
                    // `tcp flags syn / syn,ack`: the flags under the mask, as `nft -j` writes it
                    let mask = self.rhs()?;
                    left = obj([("&", Value::Array(vec![left, mask]))]);
                }
                obj([(
                    "match",
                    obj([("op", op.into()), ("left", left), ("right", right)]),
                )])
            }
        };
        if self.at == start {
            return Err(self.at);
        }
        Ok(Some(value))
    }

    /// Skips a balanced `{ … }`.
    fn braces(&mut self) -> Parsed<()> {
        if !self.eat_sym('{') {
            return Err(self.at);
        }
        let mut depth = 1;
        while let Some(t) = self.peek() {
            self.at += 1;
            match t.kind {
                Kind::Sym('{') => depth += 1,
                Kind::Sym('}') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
        Err(self.at)
    }

    /// `ip daddr . tcp dport`, or one selector, with binary operations (`tcp dport & 1`).
    fn concat_lhs(&mut self) -> Parsed<Value> {
        let first = self.selector_ops()?;
        if self.peek_word() != Some(".") {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(".") {
            parts.push(self.selector_ops()?);
        }
        Ok(obj([("concat", Value::Array(parts))]))
    }

    fn selector_ops(&mut self) -> Parsed<Value> {
        let mut left = self.selector()?;
        while let Some(op) = self.peek_word().and_then(|w| match w {
            "&" | "and" => Some("&"),
            "|" | "or" => Some("|"),
            "^" | "xor" => Some("^"),
            ">>" => Some(">>"),
            "<<" => Some("<<"),
            _ => None,
        }) {
            self.at += 1;
            let right = self.value()?;
            left = obj([(op, Value::Array(vec![left, right]))]);
        }
        Ok(left)
    }

    /// A packet field: `PROTO FIELD`, `meta KEY`, a bare meta key, `ct [DIR] KEY`.
    fn selector(&mut self) -> Parsed<Value> {
        let at = self.at;
        let w = self.word()?;
        if PROTOCOLS.contains(&w.as_str()) {
            let field = self.word()?;
            if !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(self.at - 1);
            }
            return Ok(json!({"payload": {"protocol": w, "field": field}}));
        }
        if w == "fib" {
            // `fib daddr type`, `fib saddr . iif oif`: the flags, then the result
            let mut flags = vec![Value::from(self.word()?)];
            while self.eat(".") {
                flags.push(self.word()?.into());
            }
            let result = self.word()?;
            if !matches!(result.as_str(), "oif" | "oifname" | "type") {
                return Err(self.at - 1);
            }
            return Ok(obj([(
                "fib",
                obj([("result", result.into()), ("flags", Value::Array(flags))]),
            )]));
        }
        if matches!(w.as_str(), "rt" | "socket") {
            // `rt mtu`, `rt nexthop`, `socket transparent`: one key, never evaluated
            let key = self.word()?;
            return Ok(obj([(w.as_str(), obj([("key", key.into())]))]));
        }
        if w == "meta" {
            let key = self.word()?;
            return Ok(json!({"meta": {"key": key}}));
        }
        if BARE_META.contains(&w.as_str()) {
            return Ok(json!({"meta": {"key": w}}));
        }
        if w == "ct" {
            let mut key = self.word()?;
            let mut o = serde_json::Map::new();
            if matches!(key.as_str(), "original" | "reply") {
                o.insert("dir".into(), key.clone().into());
                key = self.word()?;
                if matches!(key.as_str(), "ip" | "ip6") {
                    o.insert("family".into(), key.into());
                    key = self.word()?;
                }
            }
            if key == "count" {
                return Err(at);
            }
            o.insert("key".into(), key.into());
            return Ok(obj([("ct", Value::Object(o))]));
        }
        Err(at)
    }

    /// What `set` assigns: a selector or a value, with binary operations.
    fn operand(&mut self) -> Parsed<()> {
        let at = self.at;
        if self.selector().is_err() {
            self.at = at;
            self.value()?;
        }
        while self
            .peek_word()
            .is_some_and(|w| matches!(w, "&" | "and" | "|" | "or" | "^" | "xor" | ">>" | "<<"))
        {
            self.at += 1;
            self.value()?;
        }
        Ok(())
    }

    /// The right-hand side of a match or a `vmap`: `{ … }`, `@set`, or a value (a comma list
    /// is a list, as `nft -j` writes `ct state established,related`).
    fn rhs(&mut self) -> Parsed<Value> {
        if self.peek().is_some_and(|t| t.is_sym('{')) {
            self.at += 1;
            let elems = self.elements()?;
            if !self.eat_sym('}') {
                return Err(self.at);
            }
            return Ok(obj([("set", Value::Array(elems))]));
        }
        let first = self.concat_value()?;
        if !self.peek().is_some_and(|t| t.is_sym(',')) {
            return Ok(first);
        }
        let mut list = vec![first];
        while self.eat_sym(',') {
            list.push(self.concat_value()?);
        }
        Ok(Value::Array(list))
    }

    /// Elements up to (not including) a closing `}` or the end: `a`, `a . b`, `a : verdict`,
    /// with `comment`, `timeout`, `expires`, `counter` options; nested `{ }` flattened.
    fn elements(&mut self) -> Parsed<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            while self.eat_sym(',') {}
            match self.peek() {
                None => return Ok(out),
                Some(t) if t.is_sym('}') => return Ok(out),
                Some(t) if t.is_sym('{') => {
                    if self.depth >= MAX_NESTING {
                        return Err(self.at);
                    }
                    self.at += 1;
                    self.depth += 1;
                    let inner = self.elements();
                    self.depth -= 1;
                    out.extend(inner?);
                    if !self.eat_sym('}') {
                        return Err(self.at);
                    }
                    continue;
                }
                _ => {}
            }
            let key = self.concat_value()?;
            let mut opts = self.elem_options()?;
            let data = if self.eat(":") {
                let d = self.map_value()?;
                opts.extend(self.elem_options()?);
                Some(d)
            } else {
                None
            };
            let key = if opts.is_empty() {
                key
            } else {
                opts.insert("val".into(), key);
                obj([("elem", Value::Object(opts))])
            };
            out.push(match data {
                Some(d) => Value::Array(vec![key, d]),
                None => key,
            });
            match self.peek() {
                None => return Ok(out),
                Some(t) if t.is_sym(',') || t.is_sym('}') => {}
                Some(_) => return Err(self.at),
            }
        }
    }

    fn elem_options(&mut self) -> Parsed<serde_json::Map<String, Value>> {
        let mut o = serde_json::Map::new();
        loop {
            match self.peek_word() {
                Some(k @ ("comment" | "timeout" | "expires")) => {
                    let k = k.to_string();
                    self.at += 1;
                    let v = self.peek().and_then(Tok::name).ok_or(self.at)?.to_string();
                    self.at += 1;
                    o.insert(k, v.into());
                }
                Some("counter") => {
                    self.at += 1;
                    for key in ["packets", "bytes"] {
                        if self.eat(key) {
                            self.number()?;
                        }
                    }
                }
                _ => return Ok(o),
            }
        }
    }

    fn map_value(&mut self) -> Parsed<Value> {
        match self.peek_word() {
            Some(v @ ("accept" | "drop" | "continue" | "return" | "reject" | "queue")) => {
                let v = v.to_string();
                self.at += 1;
                Ok(json!({ v: null }))
            }
            Some(v @ ("jump" | "goto")) => {
                let v = v.to_string();
                self.at += 1;
                let target = self.peek().and_then(Tok::name).ok_or(self.at)?.to_string();
                self.at += 1;
                Ok(json!({ v: {"target": target} }))
            }
            _ => self.concat_value(),
        }
    }

    fn concat_value(&mut self) -> Parsed<Value> {
        let first = self.value()?;
        if self.peek_word() != Some(".") {
            return Ok(first);
        }
        let mut parts = vec![first];
        while self.eat(".") {
            parts.push(self.value()?);
        }
        Ok(obj([("concat", Value::Array(parts))]))
    }

    /// One value: a number, an address, a prefix, a range, a name, a string, `@set`, `( … )`.
    fn value(&mut self) -> Parsed<Value> {
        let Some(t) = self.peek() else {
            return Err(self.at);
        };
        match &t.kind {
            Kind::Str(s) => {
                self.at += 1;
                Ok(s.clone().into())
            }
            Kind::Sym('(') => {
                // `(syn|ack)`: kept as its words
                self.at += 1;
                let mut words = Vec::new();
                while let Some(t) = self.peek() {
                    self.at += 1;
                    if t.is_sym(')') {
                        return Ok(words.join(" ").into());
                    }
                    words.push(t.name().unwrap_or(",").to_string());
                }
                Err(self.at)
            }
            Kind::Word(w) => {
                if matches!(w.as_str(), "." | ":" | "=" | "==" | "!=" | "&" | "|" | "^")
                    || OPS.iter().any(|(k, _)| k == w)
                    || VERDICTS.contains(&w.as_str())
                {
                    return Err(self.at);
                }
                self.at += 1;
                Ok(atom(w))
            }
            _ => Err(self.at),
        }
    }
}

/// A word as `nft -j` writes the value: numbers as numbers, `addr/len` as a prefix, `a-b` of
/// numbers or addresses as a range, anything else as a string.
fn atom(w: &str) -> Value {
    if let Some(n) = number(w) {
        return n.into();
    }
    if let Some((a, len)) = w.split_once('/') {
        if a.parse::<std::net::IpAddr>().is_ok() {
            if let Ok(len) = len.parse::<u8>() {
                return json!({"prefix": {"addr": a, "len": len}});
            }
        }
    }
    if let Some((a, b)) = w.split_once('-') {
        if let (Some(x), Some(y)) = (number(a), number(b)) {
            return json!({"range": [x, y]});
        }
        let ip = |s: &str| s.parse::<std::net::IpAddr>().is_ok();
        if ip(a) && ip(b) {
            return json!({"range": [a, b]});
        }
    }
    w.into()
}

fn number(w: &str) -> Option<u64> {
    if let Some(hex) = w.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok();
    }
    if w.is_empty() || !w.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    w.parse().ok()
}

#[cfg(test)]
mod tests;
