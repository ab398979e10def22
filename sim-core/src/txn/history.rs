//! Transactional histories: transactions of micro-operations, read from the same files as
//! every other history (Jepsen EDN or our JSON Lines) and written back to them.
//!
//! An operation with `f` = `txn` carries a list of micro-operations as its value, Jepsen's
//! form: `[[:append 5 3] [:r 5 [1 2 3]] [:w 7 1] [:r 7 1]]`. `append` and `w` (write) carry
//! the value written; `r` (read) carries `nil` on the invocation and the value read on the
//! `ok` completion (a list for list-append, a single value or `nil` for rw-register). Keys are
//! integers or strings; values are integers. In JSON Lines the same value is written
//! `[["append",5,3],["r",5,[1,2,3]]]`.

use crate::hash::LookupMap;

use serde_json::Value;

use crate::history::{EventType, History, HistoryEvent};

/// What a micro-operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MopKind {
    /// Append `value` to the key's list (list-append).
    Append,
    /// Set the key's register to `value` (rw-register).
    Write,
    /// Read the key: a list (list-append) or one value (rw-register).
    Read,
}

/// One micro-operation. Read results live in [`TxnHistory::read_values`], so a million
/// transactions cost a few flat vectors rather than millions of small allocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mop {
    /// Append, write or read.
    pub kind: MopKind,
    /// Index into [`TxnHistory::keys`].
    pub key: u32,
    /// The value appended or written (0 for reads).
    pub value: i64,
    /// For reads: where the result starts in [`TxnHistory::read_values`].
    pub read_start: u32,
    /// For reads: the result's length; [`NOT_READ`] when the result is unknown (an `info`
    /// transaction), [`NIL_READ`] for a register read of `nil`.
    pub read_len: u32,
}

/// `read_len` of a read whose result is unknown.
pub const NOT_READ: u32 = u32::MAX;
/// `read_len` of a register read that returned `nil` (never written).
pub const NIL_READ: u32 = u32::MAX - 1;

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TxnStatus {
    /// Committed, with the results shown.
    Ok,
    /// Unknown: it may or may not have committed.
    Info,
    /// Certainly aborted.
    Fail,
}

/// One transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Txn {
    /// The process (client) that ran it.
    pub process: u64,
    /// How it ended.
    pub status: TxnStatus,
    /// Its micro-operations: `mops[mop_start .. mop_start + mop_len]` of the history.
    pub mop_start: u32,
    /// Number of micro-operations.
    pub mop_len: u32,
    /// Index of the invocation event in the source history (0-based).
    pub invoke_event: u32,
    /// Index of the completion event, if any.
    pub complete_event: Option<u32>,
    /// Invocation time (ns).
    pub invoke_ns: u64,
    /// Completion time (ns), if it completed.
    pub complete_ns: Option<u64>,
}

/// A transactional history: transactions in invocation order, their micro-operations and read
/// results in flat arrays.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnHistory {
    /// Key names, as they appear in the file (integers in decimal).
    pub keys: Vec<String>,
    /// Transactions in invocation order; `T<i>` in reports is index `i`.
    pub txns: Vec<Txn>,
    /// All micro-operations.
    pub mops: Vec<Mop>,
    /// All read results, back to back.
    pub read_values: Vec<i64>,
}

impl TxnHistory {
    /// A transaction's micro-operations.
    pub fn mops_of(&self, t: usize) -> &[Mop] {
        let x = &self.txns[t];
        &self.mops[x.mop_start as usize..(x.mop_start + x.mop_len) as usize]
    }

    /// A read's result: `None` when unknown, `Some([])` for an empty list or `nil`.
    pub fn read_of(&self, m: &Mop) -> Option<&[i64]> {
        match m.read_len {
            NOT_READ => None,
            NIL_READ => Some(&[]),
            n => Some(&self.read_values[m.read_start as usize..(m.read_start + n) as usize]),
        }
    }

    /// Builds a history in memory (for generators and tests): each transaction's process,
    /// status, micro-operations `(kind, key, value, read)` and times.
    pub fn push(
        &mut self,
        process: u64,
        status: TxnStatus,
        mops: &[(MopKind, u32, i64, Option<Vec<i64>>)],
        invoke_ns: u64,
        complete_ns: Option<u64>,
    ) {
        let mop_start = self.mops.len() as u32;
        for (kind, key, value, read) in mops {
            let (read_start, read_len) = match read {
                Some(r) => {
                    let s = self.read_values.len() as u32;
                    self.read_values.extend_from_slice(r);
                    (s, r.len() as u32)
                }
                None => (0, NOT_READ),
            };
            self.mops.push(Mop {
                kind: *kind,
                key: *key,
                value: *value,
                read_start,
                read_len,
            });
        }
        let n = self.txns.len() as u32;
        self.txns.push(Txn {
            process,
            status,
            mop_start,
            mop_len: mops.len() as u32,
            invoke_event: 2 * n,
            complete_event: complete_ns.map(|_| 2 * n + 1),
            invoke_ns,
            complete_ns,
        });
    }

    /// Converts to a plain [`History`] of `txn` operations (for writing files), ordered by
    /// time; at equal times, by transaction and invocation before completion, so a process's
    /// transactions stay in order.
    pub fn to_history(&self, register: bool) -> History {
        let mut events: Vec<(u64, usize, HistoryEvent)> = Vec::with_capacity(2 * self.txns.len());
        for (i, t) in self.txns.iter().enumerate() {
            let value = |with_reads: bool| -> Value {
                Value::Array(
                    self.mops_of(i)
                        .iter()
                        .map(|m| self.mop_json(m, with_reads, register))
                        .collect(),
                )
            };
            let event = |kind, time_ns, value| HistoryEvent {
                kind,
                process: t.process,
                time_ns,
                f: "txn".into(),
                key: None,
                value,
            };
            events.push((
                t.invoke_ns,
                2 * i,
                event(EventType::Invoke, t.invoke_ns, value(false)),
            ));
            if let Some(c) = t.complete_ns {
                let kind = match t.status {
                    TxnStatus::Ok => EventType::Ok,
                    TxnStatus::Info => EventType::Info,
                    TxnStatus::Fail => EventType::Fail,
                };
                events.push((
                    c,
                    2 * i + 1,
                    event(kind, c, value(t.status == TxnStatus::Ok)),
                ));
            }
        }
        events.sort_by_key(|(t, seq, _)| (*t, *seq));
        History {
            events: events.into_iter().map(|(_, _, e)| e).collect(),
        }
    }

    fn mop_json(&self, m: &Mop, with_reads: bool, register: bool) -> Value {
        let key = &self.keys[m.key as usize];
        let key = key
            .parse::<i64>()
            .map_or_else(|_| Value::from(key.clone()), Value::from);
        let (f, v) = match m.kind {
            MopKind::Append => ("append", Value::from(m.value)),
            MopKind::Write => ("w", Value::from(m.value)),
            MopKind::Read => {
                let v = match (with_reads, m.read_len) {
                    (false, _) | (_, NOT_READ) | (_, NIL_READ) => Value::Null,
                    _ if register => Value::from(self.read_of(m).and_then(|r| r.first().copied())),
                    _ => Value::from(self.read_of(m).unwrap_or(&[]).to_vec()),
                };
                ("r", v)
            }
        };
        Value::Array(vec![Value::from(f), key, v])
    }
}

/// Reads the transactions of a [`History`] whose operations are all `txn`. Errors name the
/// 1-based event and say what is wrong.
pub fn parse_txn_history(history: &History) -> Result<TxnHistory, String> {
    let mut b = TxnBuilder::default();
    for e in &history.events {
        b.push(e)?;
    }
    Ok(b.finish())
}

/// Builds a [`TxnHistory`] one history event at a time (the events in the order they
/// happened).
#[derive(Debug, Default)]
pub struct TxnBuilder {
    h: TxnHistory,
    key_ids: KeyTable,
    /// Per process: its outstanding transaction.
    open: LookupMap<u64, usize>,
    /// Events pushed so far.
    events: usize,
}

impl TxnBuilder {
    /// Adds the next event. Errors name the 1-based event and say what is wrong.
    pub fn push(&mut self, e: &HistoryEvent) -> Result<(), String> {
        self.push_parts(e.kind, e.process, e.time_ns, &e.f, MopsIn::Json(&e.value))
    }

    /// [`Self::push`] of a `txn` event whose micro-operations a reader already parsed: the
    /// `mops` hold keys numbered by the reader's own table (named by `names`, mapped to this
    /// history's numbers through `remap`, `u32::MAX` where not yet mapped) and reads that
    /// point into `read_values`.
    pub(super) fn push_read(
        &mut self,
        (kind, process, time_ns): (EventType, u64, u64),
        mops: &[Mop],
        read_values: &[i64],
        (names, remap): (&[String], &mut [u32]),
    ) -> Result<(), String> {
        let mops = MopsIn::Read {
            mops,
            read_values,
            names,
            remap,
        };
        self.push_parts(kind, process, time_ns, "txn", mops)
    }

    fn push_parts(
        &mut self,
        kind: EventType,
        process: u64,
        time_ns: u64,
        f: &str,
        mops: MopsIn<'_>,
    ) -> Result<(), String> {
        let i = self.events;
        self.events += 1;
        let at = |m: String| format!("event {}: {m}", i + 1);
        let h = &mut self.h;
        if f != "txn" {
            return Err(at(format!(
                "operation {:?} in a transactional history: every operation must be \"txn\" \
                 with a list of [f key value] micro-operations (or check it with a \
                 linearizability model such as --model kv)",
                f
            )));
        }
        match kind {
            EventType::Invoke => {
                if let Some(&t) = self.open.get(&process) {
                    return Err(at(format!(
                        "process {} invokes a txn while its txn from event {} is still \
                         outstanding (a process runs one transaction at a time)",
                        process,
                        h.txns[t].invoke_event + 1
                    )));
                }
                let mop_start = h.mops.len() as u32;
                let mops = mops.parse(false, h, &mut self.key_ids).map_err(at)?;
                let n = mops.len() as u32;
                h.mops.extend(mops);
                self.open.insert(process, h.txns.len());
                h.txns.push(Txn {
                    process,
                    status: TxnStatus::Info,
                    mop_start,
                    mop_len: n,
                    invoke_event: i as u32,
                    complete_event: None,
                    invoke_ns: time_ns,
                    complete_ns: None,
                });
            }
            kind => {
                let Some(t) = self.open.remove(&process) else {
                    return Err(at(format!(
                        "{} of a txn by process {}, which has no outstanding invocation",
                        kind.as_str(),
                        process
                    )));
                };
                complete(h, t, i, (kind, process, time_ns), mops, &mut self.key_ids).map_err(at)?;
            }
        }
        Ok(())
    }

    /// The history built; transactions still outstanding stay `info`.
    pub fn finish(self) -> TxnHistory {
        self.h
    }
}

/// Records a completion: the status, the time, and for `ok` the read results.
fn complete(
    h: &mut TxnHistory,
    t: usize,
    i: usize,
    (kind, process, time_ns): (EventType, u64, u64),
    mops: MopsIn<'_>,
    key_ids: &mut KeyTable,
) -> Result<(), String> {
    let inv_ns = h.txns[t].invoke_ns;
    if time_ns < inv_ns {
        return Err(format!(
            "the txn of process {} completes at time_ns {} before its invocation (event {}, \
             time_ns {}): fix the timestamps",
            process,
            time_ns,
            h.txns[t].invoke_event + 1,
            inv_ns
        ));
    }
    h.txns[t].complete_event = Some(i as u32);
    h.txns[t].complete_ns = Some(time_ns);
    h.txns[t].status = match kind {
        EventType::Ok => TxnStatus::Ok,
        EventType::Fail => TxnStatus::Fail,
        _ => TxnStatus::Info,
    };
    if kind != EventType::Ok {
        return Ok(());
    }
    // The completion repeats the micro-operations with the reads filled in: parse it and
    // replace the invocation's copy, after checking that it is the same transaction.
    let (start, len) = (h.txns[t].mop_start as usize, h.txns[t].mop_len as usize);
    let done = mops.parse(true, h, key_ids)?;
    if done.len() != len {
        return Err(format!(
            "the ok txn has {} micro-operations but its invocation had {len}",
            done.len()
        ));
    }
    for (a, b) in h.mops[start..start + len].iter().zip(&done) {
        if a.kind != b.kind || a.key != b.key || (a.kind != MopKind::Read && a.value != b.value) {
            return Err(
                "the ok txn's micro-operations differ from its invocation's (only read \
                 results may be filled in)"
                    .into(),
            );
        }
    }
    h.mops[start..start + len].copy_from_slice(&done);
    Ok(())
}

/// A value's micro-operations: a JSON tree, or already parsed by a reader.
enum MopsIn<'v> {
    Json(&'v Value),
    Read {
        mops: &'v [Mop],
        read_values: &'v [i64],
        names: &'v [String],
        remap: &'v mut [u32],
    },
}

impl MopsIn<'_> {
    fn parse(
        self,
        completed: bool,
        h: &mut TxnHistory,
        key_ids: &mut KeyTable,
    ) -> Result<Vec<Mop>, String> {
        match self {
            MopsIn::Json(v) => parse_mops(v, completed, h, key_ids),
            MopsIn::Read {
                mops,
                read_values,
                names,
                remap,
            } => Ok(mops
                .iter()
                .map(|m| {
                    let local = m.key as usize;
                    if remap[local] == u32::MAX {
                        remap[local] = key_ids.intern_str(&names[local], &mut h.keys);
                    }
                    let mut out = Mop {
                        key: remap[local],
                        ..*m
                    };
                    if m.kind == MopKind::Read {
                        // Where the result starts here, read or not (as the JSON path does).
                        out.read_start = h.read_values.len() as u32;
                        if !completed {
                            out.read_len = NOT_READ;
                        } else if m.read_len != NOT_READ && m.read_len != NIL_READ {
                            let from = m.read_start as usize;
                            h.read_values
                                .extend_from_slice(&read_values[from..from + m.read_len as usize]);
                        }
                    }
                    out
                })
                .collect()),
        }
    }
}

/// Key names and their numbers, for lookups only: names by their text, integer keys also by
/// their value, so that an integer key is numbered without writing out its decimal text.
/// An integer and the string of its decimal text are the same key.
#[derive(Debug, Default)]
pub(super) struct KeyTable {
    names: LookupMap<String, u32>,
    ints: LookupMap<i64, u32>,
}

impl KeyTable {
    /// The key's number; a new name is numbered next and pushed onto `keys`.
    pub(super) fn intern_str(&mut self, name: &str, keys: &mut Vec<String>) -> u32 {
        if let Some(&k) = self.names.get(name) {
            return k;
        }
        let k = self.names.len() as u32;
        self.names.insert(name.to_string(), k);
        keys.push(name.to_string());
        k
    }

    /// [`Self::intern_str`] of an integer key.
    pub(super) fn intern_int(&mut self, n: i64, keys: &mut Vec<String>) -> u32 {
        if let Some(&k) = self.ints.get(&n) {
            return k;
        }
        let k = self.intern_str(&n.to_string(), keys);
        self.ints.insert(n, k);
        k
    }
}

/// Parses a list of `[f key value]` micro-operations (read results go into
/// `h.read_values`, new keys into `h.keys`).
fn parse_mops(
    v: &Value,
    completed: bool,
    h: &mut TxnHistory,
    key_ids: &mut KeyTable,
) -> Result<Vec<Mop>, String> {
    let Some(list) = v.as_array() else {
        return Err(format!(
            "a txn's value must be a list of [f key value] micro-operations, found {}",
            short(v)
        ));
    };
    let mut out = Vec::with_capacity(list.len());
    for m in list {
        let Some([f, k, val]) = m.as_array().map(Vec::as_slice) else {
            return Err(format!(
                "micro-operation {} is not [f key value] (e.g. [:append 5 3] or [:r 5 nil])",
                short(m)
            ));
        };
        let key_name = match k {
            Value::String(s) => s.clone(),
            Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
            other => {
                return Err(format!(
                    "key {} must be an integer or a string",
                    short(other)
                ))
            }
        };
        let key = key_ids.intern_str(&key_name, &mut h.keys);
        let int = |x: &Value| -> Result<i64, String> {
            x.as_i64()
                .ok_or_else(|| format!("value {} in {} must be an integer", short(x), short(m)))
        };
        let mop = match f.as_str() {
            Some("append") => Mop {
                kind: MopKind::Append,
                key,
                value: int(val)?,
                read_start: 0,
                read_len: NOT_READ,
            },
            Some("w") | Some("write") => Mop {
                kind: MopKind::Write,
                key,
                value: int(val)?,
                read_start: 0,
                read_len: NOT_READ,
            },
            Some("r") | Some("read") => {
                let start = h.read_values.len() as u32;
                let len = match val {
                    _ if !completed => NOT_READ,
                    Value::Null => NIL_READ,
                    Value::Array(items) => {
                        for x in items {
                            h.read_values.push(int(x)?);
                        }
                        items.len() as u32
                    }
                    x => {
                        h.read_values.push(int(x)?);
                        1
                    }
                };
                Mop {
                    kind: MopKind::Read,
                    key,
                    value: 0,
                    read_start: start,
                    read_len: len,
                }
            }
            _ => {
                return Err(format!(
                    "micro-operation {} has function {}: use append, w or r",
                    short(m),
                    short(f)
                ))
            }
        };
        out.push(mop);
    }
    Ok(out)
}

/// A value's JSON text, cut short for error messages.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 {
        let cut = (0..=60).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        format!("{}...", &s[..cut])
    } else {
        s
    }
}
