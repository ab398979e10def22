//! History files: Jepsen/Knossos EDN histories (read and write) and format detection.
//!
//! An EDN history is a sequence of maps, one per line as Jepsen writes them, or a vector or
//! list of maps as Knossos's test data has them:
//!
//! ```text
//! {:type :invoke, :f :write, :value 3, :process 0, :time 123}
//! {:type :ok, :f :write, :value 3, :process 0, :time 456}
//! ```
//!
//! `:type`, `:f` and `:process` are required; `:time` (nanoseconds) defaults to the previous
//! event's; `:key` is optional; every other field (`:index`, `:error`, ...) is ignored. Lines of
//! `:process :nemesis` are skipped. Keywords become strings (`:x` reads as `"x"`), `nil`
//! becomes `null`, vectors, lists and sets become arrays, maps become objects.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use crate::history::{EventType, History, HistoryEvent};

/// An EDN value (the subset histories use, plus enough to skip the rest). Keywords, symbols
/// and strings without escapes borrow from the input: a history has millions of them.
#[derive(Clone, Debug, PartialEq)]
enum Edn<'a> {
    Nil,
    Bool(bool),
    Int(i64),
    /// Integers above `i64::MAX` (Jepsen writes u64 ids and hashes).
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    Keyword(&'a str),
    Symbol(&'a str),
    Char(char),
    Vector(Vec<Edn<'a>>),
    List(Vec<Edn<'a>>),
    Set(Vec<Edn<'a>>),
    Map(Vec<(Edn<'a>, Edn<'a>)>),
}

/// Nesting deeper than this is refused rather than risking the stack on hostile input.
const MAX_DEPTH: usize = 128;

/// A byte-level reader: every delimiter in EDN is ASCII, so multi-byte characters only ever
/// appear inside tokens and strings, which are sliced out whole.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    line: usize,
}

fn is_delimiter(b: u8) -> bool {
    b.is_ascii_whitespace()
        || matches!(
            b,
            b',' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'"' | b';'
        )
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            line: 1,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.pos += 1;
        if b == b'\n' {
            self.line += 1;
        }
        Some(b)
    }

    fn err<T>(&self, msg: impl std::fmt::Display) -> Result<T, String> {
        Err(format!("line {}: {msg}", self.line))
    }

    /// Skips whitespace, commas, `;` comments and `#_` discarded forms.
    fn skip_ws(&mut self, depth: usize) -> Result<(), String> {
        loop {
            match self.peek() {
                Some(b) if b.is_ascii_whitespace() || b == b',' => {
                    self.bump();
                }
                Some(b';') => {
                    while let Some(b) = self.bump() {
                        if b == b'\n' {
                            break;
                        }
                    }
                }
                Some(b'#') if self.bytes.get(self.pos + 1) == Some(&b'_') => {
                    self.pos += 2;
                    self.skip_ws(depth)?;
                    self.form(depth + 1)?;
                }
                _ => return Ok(()),
            }
        }
    }

    /// The token starting here: up to the next delimiter (never splits a UTF-8 character,
    /// since delimiters are ASCII).
    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.pos < self.bytes.len() && !is_delimiter(self.bytes[self.pos]) {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    /// Parses forms until `close`; the opening delimiter is already consumed.
    fn seq(&mut self, close: u8, depth: usize) -> Result<Vec<Edn<'a>>, String> {
        let open_line = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_ws(depth)?;
            match self.peek() {
                None => {
                    return self.err(format!(
                    "end of input inside a collection opened on line {open_line} (missing '{}')",
                    close as char
                ))
                }
                Some(b) if b == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(b @ (b')' | b']' | b'}')) => {
                    return self.err(format!(
                        "unexpected '{}', expected '{}'",
                        b as char, close as char
                    ))
                }
                Some(_) => items.push(self.form(depth + 1)?),
            }
        }
    }

    /// Parses one form; whitespace before it is already skipped.
    fn form(&mut self, depth: usize) -> Result<Edn<'a>, String> {
        if depth > MAX_DEPTH {
            return self.err("collections nested too deeply");
        }
        let Some(b) = self.peek() else {
            return self.err("unexpected end of input");
        };
        match b {
            b'(' => {
                self.bump();
                Ok(Edn::List(self.seq(b')', depth)?))
            }
            b'[' => {
                self.bump();
                Ok(Edn::Vector(self.seq(b']', depth)?))
            }
            b'{' => {
                self.bump();
                let line = self.line;
                let items = self.seq(b'}', depth)?;
                if items.len() % 2 != 0 {
                    return Err(format!(
                        "line {line}: a map needs an even number of forms (a value for every key)"
                    ));
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                Ok(Edn::Map(pairs))
            }
            b')' | b']' | b'}' => self.err(format!("unexpected '{}'", b as char)),
            b'"' => self.string(),
            b':' => {
                self.bump();
                let name = self.token();
                if name.is_empty() {
                    return self.err("a ':' must be followed by a keyword name");
                }
                Ok(Edn::Keyword(name))
            }
            b'\\' => {
                self.bump();
                // The character itself may be a delimiter (`\(`) or multi-byte (`\é`).
                let Some(first) = self.text[self.pos..].chars().next() else {
                    return self.err("a '\\' must be followed by a character");
                };
                self.pos += first.len_utf8();
                let rest = self.token();
                match (first, rest) {
                    (c, "") => Ok(Edn::Char(c)),
                    ('n', "ewline") => Ok(Edn::Char('\n')),
                    ('s', "pace") => Ok(Edn::Char(' ')),
                    ('t', "ab") => Ok(Edn::Char('\t')),
                    ('r', "eturn") => Ok(Edn::Char('\r')),
                    _ => self.err(format!("unknown character literal \\{first}{rest}")),
                }
            }
            b'#' => {
                self.bump();
                if self.peek() == Some(b'{') {
                    self.bump();
                    return Ok(Edn::Set(self.seq(b'}', depth)?));
                }
                // A tagged literal such as #inst "..." or #uuid "...": keep the value.
                if self.token().is_empty() {
                    return self.err("a '#' must be followed by '{', '_' or a tag");
                }
                self.skip_ws(depth)?;
                self.form(depth + 1)
            }
            _ => {
                let tok = self.token();
                if tok.is_empty() {
                    return self.err(format!("unexpected '{}'", b as char));
                }
                self.atom(tok)
            }
        }
    }

    fn string(&mut self) -> Result<Edn<'a>, String> {
        let start_line = self.line;
        self.bump();
        let start = self.pos;
        // Fast path: no escapes, borrow the text.
        while let Some(&b) = self.bytes.get(self.pos) {
            match b {
                b'"' => {
                    self.pos += 1;
                    return Ok(Edn::Str(Cow::Borrowed(&self.text[start..self.pos - 1])));
                }
                b'\\' => break,
                b'\n' => {
                    self.line += 1;
                    self.pos += 1;
                }
                _ => self.pos += 1,
            }
        }
        let mut s = String::from(&self.text[start..self.pos]);
        loop {
            let run = self.pos;
            while let Some(&b) = self.bytes.get(self.pos) {
                if b == b'"' || b == b'\\' {
                    break;
                }
                if b == b'\n' {
                    self.line += 1;
                }
                self.pos += 1;
            }
            s.push_str(&self.text[run..self.pos]);
            match self.bump() {
                None => {
                    return Err(format!(
                        "line {start_line}: string never closed (missing '\"')"
                    ))
                }
                Some(b'"') => return Ok(Edn::Str(Cow::Owned(s))),
                _ => match self.bump() {
                    Some(b'n') => s.push('\n'),
                    Some(b't') => s.push('\t'),
                    Some(b'r') => s.push('\r'),
                    Some(b'"') => s.push('"'),
                    Some(b'\\') => s.push('\\'),
                    Some(b'u') => {
                        let hex = self.text.get(self.pos..self.pos + 4).unwrap_or("");
                        match u32::from_str_radix(hex, 16).ok().and_then(char::from_u32) {
                            Some(c) => {
                                s.push(c);
                                self.pos += 4;
                            }
                            None => {
                                return self.err("bad \\u escape in a string (need 4 hex digits)")
                            }
                        }
                    }
                    Some(_) => {
                        let c = self.text[self.pos - 1..].chars().next().unwrap_or('?');
                        return self.err(format!("unknown escape \\{c} in a string"));
                    }
                    None => {
                        return Err(format!(
                            "line {start_line}: string never closed (missing '\"')"
                        ))
                    }
                },
            }
        }
    }

    fn atom(&self, tok: &'a str) -> Result<Edn<'a>, String> {
        match tok {
            "nil" => return Ok(Edn::Nil),
            "true" => return Ok(Edn::Bool(true)),
            "false" => return Ok(Edn::Bool(false)),
            _ => {}
        }
        let b = tok.as_bytes();
        let numeric = b[0].is_ascii_digit()
            || (matches!(b[0], b'+' | b'-') && b.get(1).is_some_and(u8::is_ascii_digit));
        if !numeric {
            return Ok(Edn::Symbol(tok));
        }
        let int = tok.strip_suffix('N').unwrap_or(tok);
        if int.bytes().skip(1).all(|c| c.is_ascii_digit()) {
            return match (int.parse::<i64>(), int.parse::<u64>()) {
                (Ok(i), _) => Ok(Edn::Int(i)),
                (_, Ok(u)) => Ok(Edn::UInt(u)),
                _ => self.err(format!("integer {tok} does not fit in 64 bits")),
            };
        }
        let float = tok.strip_suffix('M').unwrap_or(tok);
        match float.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Edn::Float(f)),
            _ => self.err(format!("{tok:?} is not a number")),
        }
    }
}

/// Converts an EDN value to JSON: keywords and symbols to strings, collections to arrays,
/// maps to objects whose keys are the keys' names.
fn to_json(e: Edn) -> Value {
    match e {
        Edn::Nil => Value::Null,
        Edn::Bool(b) => Value::Bool(b),
        Edn::Int(i) => Value::from(i),
        Edn::UInt(u) => Value::from(u),
        // The parser accepts only finite floats, which JSON can hold.
        Edn::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Edn::Str(s) => Value::String(s.into_owned()),
        Edn::Keyword(s) | Edn::Symbol(s) => Value::String(s.to_owned()),
        Edn::Char(c) => Value::String(c.to_string()),
        Edn::Vector(v) | Edn::List(v) | Edn::Set(v) => {
            Value::Array(v.into_iter().map(to_json).collect())
        }
        Edn::Map(pairs) => {
            let mut m = Map::new();
            for (k, v) in pairs {
                let key = match to_json(k) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
    }
}

fn describe(e: &Edn) -> String {
    match e {
        Edn::Nil => "nil".to_owned(),
        Edn::Bool(b) => b.to_string(),
        Edn::Int(i) => i.to_string(),
        Edn::UInt(u) => u.to_string(),
        Edn::Float(f) => f.to_string(),
        Edn::Str(s) => format!("{s:?}"),
        Edn::Keyword(k) => format!(":{k}"),
        Edn::Symbol(s) => (*s).to_owned(),
        Edn::Char(c) => format!("\\{c}"),
        Edn::Vector(_) => "a vector".to_owned(),
        Edn::List(_) => "a list".to_owned(),
        Edn::Set(_) => "a set".to_owned(),
        Edn::Map(_) => "a map".to_owned(),
    }
}

/// Turns one EDN map into an event; `Ok(None)` for nemesis lines.
/// The name of a keyword, symbol or string.
fn name_of<'e>(e: &'e Edn<'_>) -> Option<&'e str> {
    match e {
        Edn::Keyword(s) | Edn::Symbol(s) => Some(s),
        Edn::Str(s) => Some(s),
        _ => None,
    }
}

fn event_of(
    line: usize,
    pairs: Vec<(Edn<'_>, Edn<'_>)>,
    last_time: u64,
) -> Result<Option<HistoryEvent>, String> {
    let at = |msg: String| format!("line {line}: {msg}");
    let (mut kind, mut f, mut process, mut time, mut key, mut value) =
        (None, None, None, None, None, Value::Null);
    for (k, v) in pairs {
        let Edn::Keyword(k) = k else {
            continue;
        };
        match k {
            "type" => {
                kind = Some(match name_of(&v) {
                    Some("invoke") => EventType::Invoke,
                    Some("ok") => EventType::Ok,
                    Some("fail") => EventType::Fail,
                    Some("info") => EventType::Info,
                    _ => {
                        return Err(at(format!(
                            ":type must be :invoke, :ok, :fail or :info, found {}",
                            describe(&v)
                        )))
                    }
                })
            }
            "f" => {
                f = Some(match name_of(&v) {
                    Some(name) => name.to_owned(),
                    None => {
                        return Err(at(format!(
                            ":f must be a keyword or a string, found {}",
                            describe(&v)
                        )))
                    }
                })
            }
            "process" => {
                process = Some(match v {
                    Edn::Int(p) if p >= 0 => p as u64,
                    Edn::UInt(p) => p,
                    Edn::Keyword("nemesis") => return Ok(None),
                    other => {
                        return Err(at(format!(
                            ":process must be a non-negative integer or :nemesis, found {}",
                            describe(&other)
                        )))
                    }
                })
            }
            "time" => {
                time = Some(match v {
                    Edn::Int(t) if t >= 0 => t as u64,
                    Edn::UInt(t) => t,
                    other => {
                        return Err(at(format!(
                            ":time must be a non-negative integer (nanoseconds), found {}",
                            describe(&other)
                        )))
                    }
                })
            }
            "key" => {
                key = match v {
                    Edn::Nil => None,
                    Edn::Str(s) => Some(s.into_owned()),
                    Edn::Keyword(s) | Edn::Symbol(s) => Some(s.to_owned()),
                    Edn::Int(i) => Some(i.to_string()),
                    Edn::UInt(u) => Some(u.to_string()),
                    other => {
                        return Err(at(format!(
                            ":key must be a keyword, string or integer, found {}",
                            describe(&other)
                        )))
                    }
                }
            }
            "value" => value = to_json(v),
            _ => {}
        }
    }
    let kind = kind.ok_or_else(|| at("missing :type".to_owned()))?;
    let f = f.ok_or_else(|| at("missing :f".to_owned()))?;
    let process = process.ok_or_else(|| at("missing :process".to_owned()))?;
    Ok(Some(HistoryEvent {
        kind,
        process,
        time_ns: time.unwrap_or(last_time),
        f,
        key,
        value,
    }))
}

/// Parses an EDN history. Errors name the 1-based line and what is wrong.
pub fn parse_edn(text: &str) -> Result<History, String> {
    let mut p = Parser::new(text);
    let mut events = Vec::new();
    let mut last_time = 0u64;
    let mut take = |line: usize, form: Edn<'_>| -> Result<(), String> {
        let Edn::Map(pairs) = form else {
            return Err(format!(
                "line {line}: expected an event map {{:type ..., :f ..., :process ...}}, found {}",
                describe(&form)
            ));
        };
        if let Some(e) = event_of(line, pairs, last_time)? {
            last_time = e.time_ns;
            events.push(e);
        }
        Ok(())
    };
    loop {
        p.skip_ws(0)?;
        let Some(b) = p.peek() else { break };
        if let Some(close) = match b {
            b'[' => Some(b']'),
            b'(' => Some(b')'),
            _ => None,
        } {
            // A top-level vector or list of events (Knossos's test data): read its elements
            // one by one so that errors name each element's own line.
            let open_line = p.line;
            p.bump();
            loop {
                p.skip_ws(1)?;
                match p.peek() {
                    None => {
                        return p.err(format!(
                            "end of input inside the list of events opened on line {open_line} (missing '{}')",
                            close as char
                        ))
                    }
                    Some(c) if c == close => {
                        p.bump();
                        break;
                    }
                    Some(_) => {
                        let line = p.line;
                        let form = p.form(1)?;
                        take(line, form)?;
                    }
                }
            }
        } else {
            let line = p.line;
            let form = p.form(0)?;
            take(line, form)?;
        }
    }
    Ok(History { events })
}

/// True when `s` can be written as an EDN keyword that reads back as the same string.
fn keyword_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = match (chars.next(), chars.next()) {
        (None, _) => false,
        // `-1` and `+1` would read back as numbers.
        (Some('-' | '+'), Some(c)) => !c.is_ascii_digit(),
        (Some(c), _) => c.is_ascii_alphabetic() || "*!_?-+<>=".contains(c),
    };
    first_ok
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "*!_?-+<>=./".contains(c))
}

fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("nil"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, k);
                out.push(' ');
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

/// Writes a history as Jepsen-style EDN, one map per line. String values stay strings (not
/// keywords), so [`parse_edn`] reads back exactly the same history.
pub fn to_edn(history: &History) -> String {
    let mut out = String::with_capacity(history.events.len() * 80);
    for e in &history.events {
        out.push_str("{:type :");
        out.push_str(e.kind.as_str());
        out.push_str(", :f ");
        if keyword_safe(&e.f) {
            out.push(':');
            out.push_str(&e.f);
        } else {
            write_str(&mut out, &e.f);
        }
        if let Some(k) = &e.key {
            out.push_str(", :key ");
            write_str(&mut out, k);
        }
        out.push_str(", :value ");
        write_value(&mut out, &e.value);
        out.push_str(&format!(
            ", :process {}, :time {}}}\n",
            e.process, e.time_ns
        ));
    }
    out
}

/// Reads a history file in either format. The format comes from the extension (`.edn`;
/// `.jsonl`, `.ndjson`, `.json`) or, failing that, from the content: a first form `{"` is JSON
/// Lines, `{:`, `[`, `(` or `;` is EDN. Errors read `PATH: line N: what is wrong`.
pub fn parse_history_file(path_display: &str, text: &str) -> Result<History, String> {
    let lower = path_display.to_ascii_lowercase();
    let edn = if lower.ends_with(".edn") {
        true
    } else if lower.ends_with(".jsonl") || lower.ends_with(".ndjson") || lower.ends_with(".json") {
        false
    } else {
        let mut rest = text.trim_start();
        match rest.chars().next() {
            None => return Ok(History::default()),
            Some('{') => {
                rest = rest[1..].trim_start();
                match rest.chars().next() {
                    Some('"') | Some('}') => false,
                    Some(':') | Some('#') => true,
                    _ => {
                        return Err(format!(
                            "{path_display}: cannot tell the format: expected JSON Lines ({{\"type\":...}}) or EDN ({{:type ...}}); name the file .jsonl or .edn"
                        ))
                    }
                }
            }
            Some('[' | '(' | ';') => true,
            Some(_) => {
                return Err(format!(
                    "{path_display}: cannot tell the format: expected JSON Lines ({{\"type\":...}}) or EDN ({{:type ...}}); name the file .jsonl or .edn"
                ))
            }
        }
    };
    let parsed = if edn {
        parse_edn(text)
    } else {
        History::from_jsonl(text)
    };
    parsed.map_err(|e| format!("{path_display}: {e}"))
}
