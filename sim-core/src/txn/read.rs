//! Reading a JSON Lines transactional history fast: each line is read by a typed
//! deserializer straight into micro-operations (no JSON tree per line), and a large file is
//! cut at line boundaries into parts read side by side, one thread each. The parts' lines are
//! then handed to one [`TxnBuilder`] in file order, so the history built, its key numbers and
//! its first error are the same whatever the number of threads.
//!
//! A line the typed reading does not take (an error to report, an unusual value) is kept as
//! text and read by the general path when its turn comes, which words every error.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::mpsc;

use super::history::{KeyTable, Mop, MopKind, TxnBuilder, TxnHistory, NIL_READ, NOT_READ};
use crate::history::{EventType, HistoryEvent};

/// Lines handed over at a time.
const BATCH_LINES: usize = 1 << 14;
/// A file smaller than this is read by one thread: splitting it would cost more than it saves.
const SPLIT_MIN_BYTES: u64 = 4 << 20;
/// Most parts a file is cut into.
const PARTS_MAX: usize = 16;

/// Reads a JSON Lines transactional history straight into a [`TxnHistory`], one line at a
/// time: no line's JSON outlives its line, so a million-transaction file costs the flat arrays
/// of the result, not a tree of JSON values per event. Blank lines are skipped; invalid UTF-8
/// is read as U+FFFD, as the whole-file reader does. Errors name the 1-based line and event.
pub fn read_txn_jsonl<R: BufRead>(r: R) -> Result<TxnHistory, String> {
    let mut reader = PartReader::new(r);
    let mut merge = Merge::default();
    while let Some(batch) = reader.next_batch() {
        merge.add(batch)?;
    }
    Ok(merge.b.finish())
}

/// [`read_txn_jsonl`] of a file, cut into up to `jobs` parts read side by side (0: one per
/// core). The result, and the error if any, do not depend on `jobs`.
pub fn read_txn_jsonl_file(path: &Path, jobs: usize) -> Result<TxnHistory, String> {
    read_file(path, jobs, SPLIT_MIN_BYTES)
}

/// [`read_txn_jsonl_file`], splitting files of at least `split_min` bytes.
pub(super) fn read_file(path: &Path, jobs: usize, split_min: u64) -> Result<TxnHistory, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    let parts = if size < split_min {
        1
    } else {
        crate::jobs(jobs).clamp(1, PARTS_MAX)
    };
    if parts == 1 {
        return read_txn_jsonl(BufReader::with_capacity(1 << 20, file));
    }
    let bounds = line_starts(&mut file, size, parts).map_err(|e| format!("cannot read: {e}"))?;
    let open_part = |i: usize| -> std::io::Result<_> {
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(bounds[i]))?;
        Ok(BufReader::with_capacity(
            1 << 20,
            f.take(bounds[i + 1] - bounds[i]),
        ))
    };
    std::thread::scope(|s| {
        // Parts after the first are read ahead on their own threads; this thread reads the
        // first and builds as it goes, then builds from the others' batches in order.
        let mut rest = Vec::new();
        for i in 1..parts {
            let (tx, rx) = mpsc::channel::<Batch>();
            let open_part = &open_part;
            s.spawn(move || match open_part(i) {
                Ok(r) => {
                    let mut reader = PartReader::new(r);
                    while let Some(batch) = reader.next_batch() {
                        if tx.send(batch).is_err() {
                            // The builder stopped at an error: nothing more is wanted.
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Batch::unreadable(1, e.to_string()));
                }
            });
            rest.push(rx);
        }
        let mut merge = Merge::default();
        let mut first = PartReader::new(open_part(0).map_err(|e| format!("cannot read: {e}"))?);
        while let Some(batch) = first.next_batch() {
            merge.add(batch)?;
        }
        for rx in rest {
            merge.next_part();
            for batch in rx {
                merge.add(batch)?;
            }
        }
        Ok(merge.b.finish())
    })
}

/// Where each of `parts` parts of the file starts (each at the start of a line), and its
/// size last.
fn line_starts(file: &mut std::fs::File, size: u64, parts: usize) -> std::io::Result<Vec<u64>> {
    let mut bounds = vec![0u64];
    let mut r = BufReader::new(file);
    let mut rest_of_line = Vec::new();
    for i in 1..parts {
        let prev = *bounds.last().expect("starts at 0");
        let at = size * i as u64 / parts as u64;
        let start = if at <= prev {
            prev
        } else {
            // The part starts after the first newline at or past `at - 1`.
            r.seek(SeekFrom::Start(at - 1))?;
            rest_of_line.clear();
            at - 1 + r.read_until(b'\n', &mut rest_of_line)? as u64
        };
        bounds.push(start.max(prev));
    }
    bounds.push(size);
    Ok(bounds)
}

/// One line as a part's reader left it.
enum Line {
    /// Read by the typed path: the event, its micro-operations at `mops[start..start + len]`
    /// of the batch.
    Typed {
        line: usize,
        event: (EventType, u64, u64),
        start: u32,
        len: u32,
    },
    /// Left to the general path.
    General { line: usize, text: String },
    /// The file could not be read here.
    Unreadable { line: usize, error: String },
}

/// Consecutive lines of one part.
struct Batch {
    lines: Vec<Line>,
    /// The typed lines' micro-operations, keys numbered by the part's own table.
    mops: Vec<Mop>,
    /// Their read results.
    read_values: Vec<i64>,
    /// Keys the part's table numbered in this batch, in order.
    new_keys: Vec<String>,
    /// Lines read, blank ones too.
    line_count: usize,
}

impl Batch {
    fn unreadable(line: usize, error: String) -> Batch {
        Batch {
            lines: vec![Line::Unreadable { line, error }],
            mops: Vec::new(),
            read_values: Vec::new(),
            new_keys: Vec::new(),
            line_count: line,
        }
    }
}

/// Reads one part of a file into batches.
struct PartReader<R> {
    r: R,
    keys: KeyTable,
    /// Lines read so far in this part.
    line: usize,
    buf: Vec<u8>,
    done: bool,
    /// The last batch's micro-operations and read values, with room to spare.
    sizes: (usize, usize),
}

impl<R: BufRead> PartReader<R> {
    fn new(r: R) -> Self {
        PartReader {
            r,
            keys: KeyTable::default(),
            line: 0,
            buf: Vec::new(),
            done: false,
            sizes: (0, 0),
        }
    }

    /// The next lines, `None` at the end.
    fn next_batch(&mut self) -> Option<Batch> {
        if self.done {
            return None;
        }
        // Sized like the last batch, so that a batch's vectors rarely grow.
        let mut b = Batch {
            lines: Vec::with_capacity(BATCH_LINES),
            mops: Vec::with_capacity(self.sizes.0),
            read_values: Vec::with_capacity(self.sizes.1),
            new_keys: Vec::new(),
            line_count: 0,
        };
        let first = self.line;
        while b.lines.len() < BATCH_LINES {
            self.buf.clear();
            match self.r.read_until(b'\n', &mut self.buf) {
                Ok(0) => {
                    self.done = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    self.done = true;
                    b.lines.push(Line::Unreadable {
                        line: self.line + 1,
                        error: e.to_string(),
                    });
                    break;
                }
            }
            self.line += 1;
            if !self.buf.trim_ascii().is_empty() {
                self.read_line(&mut b);
            }
        }
        b.line_count = self.line - first;
        self.sizes = (
            b.mops.len() + b.mops.len() / 8,
            b.read_values.len() + b.read_values.len() / 8,
        );
        if b.lines.is_empty() && b.line_count == 0 {
            return None;
        }
        Some(b)
    }

    /// Reads the line in `buf` into the batch: typed when its micro-operations have the shape
    /// the general path accepts (both then build the same transaction), as text otherwise.
    fn read_line(&mut self, b: &mut Batch) {
        if let Ok(e) = serde_json::from_slice::<FastEvent<'_>>(&self.buf) {
            if e.f == "txn" && e.mops.fits(e.kind) {
                let start = b.mops.len() as u32;
                let list = e.mops.0.as_deref().unwrap_or(&[]);
                match e.kind {
                    // A failed or unknown outcome's micro-operations are not read.
                    EventType::Fail | EventType::Info => {}
                    kind => push_mops(&mut self.keys, list, kind == EventType::Ok, b),
                }
                b.lines.push(Line::Typed {
                    line: self.line,
                    event: (e.kind, e.process, e.time_ns),
                    start,
                    len: b.mops.len() as u32 - start,
                });
                return;
            }
        }
        b.lines.push(Line::General {
            line: self.line,
            text: String::from_utf8_lossy(&self.buf).into_owned(),
        });
    }
}

/// Micro-operations that [`FastMops::fits`] accepted, as the general path reads them.
fn push_mops(keys: &mut KeyTable, list: &[FastMop<'_>], completed: bool, b: &mut Batch) {
    for m in list {
        let key = match &m.key {
            FastKey::Str(s) => keys.intern_str(s, &mut b.new_keys),
            FastKey::Int(n) => keys.intern_int(*n, &mut b.new_keys),
            FastKey::UInt(n) => keys.intern_str(&n.to_string(), &mut b.new_keys),
        };
        let value = match m.val {
            FastVal::Int(v) => v,
            _ => 0,
        };
        let (kind, read_start, read_len) = match m.f.as_str() {
            "append" => (MopKind::Append, 0, NOT_READ),
            "w" | "write" => (MopKind::Write, 0, NOT_READ),
            _ => {
                let start = b.read_values.len() as u32;
                let len = match &m.val {
                    _ if !completed => NOT_READ,
                    FastVal::Null => NIL_READ,
                    FastVal::List(items) => {
                        b.read_values.extend_from_slice(items);
                        items.len() as u32
                    }
                    FastVal::Int(x) => {
                        b.read_values.push(*x);
                        1
                    }
                };
                (MopKind::Read, start, len)
            }
        };
        b.mops.push(Mop {
            kind,
            key,
            value: if kind == MopKind::Read { 0 } else { value },
            read_start,
            read_len,
        });
    }
}

/// Builds the history from the parts' batches, in file order.
#[derive(Default)]
struct Merge {
    b: TxnBuilder,
    /// Lines of the parts before the current one.
    base: usize,
    /// Lines of the current part so far.
    seen: usize,
    /// The current part's key names, by its own numbers.
    names: Vec<String>,
    /// Its numbers mapped to the history's (`u32::MAX`: not yet).
    remap: Vec<u32>,
}

impl Merge {
    /// The next batches come from the next part.
    fn next_part(&mut self) {
        self.base += self.seen;
        self.seen = 0;
        self.names.clear();
        self.remap.clear();
    }

    fn add(&mut self, batch: Batch) -> Result<(), String> {
        self.names.extend(batch.new_keys);
        self.remap.resize(self.names.len(), u32::MAX);
        for l in &batch.lines {
            match l {
                Line::Typed {
                    line,
                    event,
                    start,
                    len,
                } => {
                    let mops = &batch.mops[*start as usize..(*start + *len) as usize];
                    self.b
                        .push_read(
                            *event,
                            mops,
                            &batch.read_values,
                            (&self.names, &mut self.remap),
                        )
                        .map_err(|e| format!("line {}: {e}", self.base + line))?;
                }
                Line::General { line, text } => {
                    let at = self.base + line;
                    let e: HistoryEvent =
                        serde_json::from_str(text).map_err(|err| format!("line {at}: {err}"))?;
                    self.b.push(&e).map_err(|err| format!("line {at}: {err}"))?;
                }
                Line::Unreadable { line, error } => {
                    return Err(format!("line {}: cannot read: {error}", self.base + line));
                }
            }
        }
        self.seen += batch.line_count;
        Ok(())
    }
}

/// One JSON Lines event read without a JSON tree: the fields of [`HistoryEvent`], with the
/// value read straight into micro-operations.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FastEvent<'a> {
    #[serde(rename = "type")]
    kind: EventType,
    process: u64,
    time_ns: u64,
    #[serde(borrow)]
    f: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    #[allow(dead_code)]
    key: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow, rename = "value")]
    mops: FastMops<'a>,
}

/// A value read as a list of `[f key value]` micro-operations (absent: not a list).
#[derive(Default)]
struct FastMops<'a>(Option<Vec<FastMop<'a>>>);

/// One micro-operation as written.
struct FastMop<'a> {
    /// The function: a string for every micro-operation the fast path takes.
    f: FastKey<'a>,
    key: FastKey<'a>,
    val: FastVal,
}

/// A key: a string, or an integer kept as its decimal text (as the general path names it).
enum FastKey<'a> {
    Str(std::borrow::Cow<'a, str>),
    Int(i64),
    UInt(u64),
}

impl FastKey<'_> {
    /// The text of a string, "" for an integer (no micro-operation is named by one).
    fn as_str(&self) -> &str {
        match self {
            FastKey::Str(s) => s,
            FastKey::Int(_) | FastKey::UInt(_) => "",
        }
    }
}

/// A micro-operation's value, in the shapes the checker uses.
enum FastVal {
    Null,
    Int(i64),
    List(Vec<i64>),
}

impl FastMops<'_> {
    /// Whether the general path would read these micro-operations without an error (so the
    /// fast path builds exactly what it would).
    fn fits(&self, kind: EventType) -> bool {
        match kind {
            // The general path reads no micro-operations of a failed or unknown outcome.
            EventType::Fail | EventType::Info => true,
            EventType::Invoke | EventType::Ok => self.0.as_ref().is_some_and(|list| {
                list.iter().all(|m| match m.f.as_str() {
                    "append" | "w" | "write" => matches!(m.val, FastVal::Int(_)),
                    "r" | "read" => true,
                    _ => false,
                })
            }),
        }
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for FastMops<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list: Vec<FastMop<'a>> = serde::Deserialize::deserialize(d)?;
        Ok(FastMops(Some(list)))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for FastMop<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = FastMop<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("[f key value]")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<FastMop<'a>, A::Error> {
                use serde::de::Error;
                let f = a.next_element()?.ok_or_else(|| A::Error::custom("short"))?;
                let key = a.next_element()?.ok_or_else(|| A::Error::custom("short"))?;
                let val = a.next_element()?.ok_or_else(|| A::Error::custom("short"))?;
                if a.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(A::Error::custom("long"));
                }
                Ok(FastMop { f, key, val })
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for FastKey<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = FastKey<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FastKey::Str(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FastKey::Str(std::borrow::Cow::Owned(v.to_string())))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(FastKey::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                // JSON's non-negative integers arrive here.
                Ok(i64::try_from(v).map_or(FastKey::UInt(v), FastKey::Int))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de> serde::Deserialize<'de> for FastVal {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FastVal;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("null, an integer or a list of integers")
            }
            fn visit_unit<E>(self) -> Result<FastVal, E> {
                Ok(FastVal::Null)
            }
            fn visit_none<E>(self) -> Result<FastVal, E> {
                Ok(FastVal::Null)
            }
            fn visit_i64<E>(self, v: i64) -> Result<FastVal, E> {
                Ok(FastVal::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<FastVal, E> {
                i64::try_from(v)
                    .map(FastVal::Int)
                    .map_err(|_| E::custom("out of range"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<FastVal, A::Error> {
                let mut out = Vec::with_capacity(a.size_hint().unwrap_or(4));
                while let Some(x) = a.next_element::<i64>()? {
                    out.push(x);
                }
                Ok(FastVal::List(out))
            }
        }
        d.deserialize_any(V)
    }
}
