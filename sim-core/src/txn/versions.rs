//! Version orders, and the anomalies visible without a graph.
//!
//! list-append: every committed read of a key is a prefix of the key's final list, so the
//! longest read is the key's version order, and two reads that are not prefixes of one another
//! are an incompatible order. rw-register: `nil` precedes every write, and a transaction that
//! reads `a` and later writes `b` to the same key puts `a` before `b`; nothing else is
//! inferred.
//!
//! Anomalies found here: aborted reads (G1a), intermediate reads (G1b), reads of values nobody
//! wrote, duplicate appends or writes, internal inconsistency, incompatible orders.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

use super::history::{Mop, MopKind, TxnHistory, TxnStatus, NIL_READ};
use super::{Anomaly, AnomalyKind, TxnModel};
use crate::linearizability::FastHasher;

/// A hash map with the checker's fast hasher; used for lookups only, never iterated, so
/// nothing observable depends on its order.
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// A map from (key, value) to a transaction or position: per key, a vector sorted by value.
/// Keys hold few values each (Jepsen retires a key after a few dozen appends), so a binary
/// search in a short vector beats hashing, and building it is one sort per key.
#[derive(Default)]
pub(crate) struct KeyIndex {
    by_key: Vec<Vec<(i64, u32)>>,
}

impl KeyIndex {
    fn new(keys: usize) -> KeyIndex {
        KeyIndex {
            by_key: vec![Vec::new(); keys],
        }
    }

    fn push(&mut self, key: u32, value: i64, to: u32) {
        self.by_key[key as usize].push((value, to));
    }

    /// Sorts every key's entries and keeps the first (lowest `to`) of each value; returns the
    /// dropped duplicates as (key, value, kept, dropped).
    fn finish(&mut self) -> Vec<(u32, i64, u32, u32)> {
        let mut dups = Vec::new();
        for (k, entries) in self.by_key.iter_mut().enumerate() {
            entries.sort_unstable();
            let mut kept: Option<(i64, u32)> = None;
            entries.retain(|&(x, t)| match kept {
                Some((kx, kt)) if kx == x => {
                    dups.push((k as u32, x, kt, t));
                    false
                }
                _ => {
                    kept = Some((x, t));
                    true
                }
            });
        }
        dups
    }

    /// The entry for `(key, value)`.
    pub fn get(&self, kv: &(u32, i64)) -> Option<&u32> {
        let entries = self.by_key.get(kv.0 as usize)?;
        let i = entries.binary_search_by_key(&kv.1, |e| e.0).ok()?;
        Some(&entries[i].1)
    }

    /// Whether `(key, value)` has an entry.
    pub fn contains_key(&self, kv: &(u32, i64)) -> bool {
        self.get(kv).is_some()
    }
}

/// What the reads say about each key.
pub(crate) struct Versions {
    /// The data model.
    pub model: TxnModel,
    /// list-append: per key, the longest committed read (the observed version order).
    pub order: Vec<Vec<i64>>,
    /// (key, value) -> the committed or unknown-outcome transaction that wrote it.
    pub writer: KeyIndex,
    /// list-append: (key, value) -> its position in `order[key]`.
    pub pos: KeyIndex,
    /// list-append: per key, committed appends that no read shows, in transaction order.
    pub unobserved: Vec<Vec<(i64, u32)>>,
    /// rw-register: per key, every write (value, writer), in transaction order.
    pub writes: Vec<Vec<(i64, u32)>>,
    /// rw-register: (key, value read, or None for nil) -> committed readers, in order.
    pub readers: FastMap<(u32, Option<i64>), Vec<u32>>,
    /// rw-register: (key, a read (None = nil), b, the transaction that read a then wrote b).
    pub read_then_wrote: Vec<(u32, Option<i64>, i64, u32)>,
    /// Anomalies found without the graph.
    pub anomalies: Vec<Anomaly>,
}

fn anomaly(kind: AnomalyKind, txns: Vec<usize>, key: &str, explanation: String) -> Anomaly {
    Anomaly {
        kind,
        realtime: false,
        txns,
        keys: vec![key.to_owned()],
        cycle: Vec::new(),
        explanation,
    }
}

/// Formats a list read: `[1 2 3]`, shortened in the middle when long.
pub(crate) fn fmt_list(l: &[i64]) -> String {
    let items: Vec<String> = if l.len() > 12 {
        let mut v: Vec<String> = l[..4].iter().map(i64::to_string).collect();
        v.push(format!("...({} more)...", l.len() - 8));
        v.extend(l[l.len() - 4..].iter().map(i64::to_string));
        v
    } else {
        l.iter().map(i64::to_string).collect()
    };
    format!("[{}]", items.join(" "))
}

/// Builds the version orders and the graph-free anomalies.
pub(crate) fn build(h: &TxnHistory, model: TxnModel) -> Versions {
    let nkeys = h.keys.len();
    let mut v = Versions {
        model,
        order: vec![Vec::new(); nkeys],
        writer: KeyIndex::new(nkeys),
        pos: KeyIndex::new(nkeys),
        unobserved: vec![Vec::new(); nkeys],
        writes: vec![Vec::new(); nkeys],
        readers: FastMap::default(),
        read_then_wrote: Vec::new(),
        anomalies: Vec::new(),
    };
    let failed = writers(h, &mut v);
    internal(h, &mut v);
    match model {
        TxnModel::ListAppend => list_orders(h, &mut v, &failed),
        TxnModel::RwRegister => register_reads(h, &mut v, &failed),
    }
    v
}

/// Records who wrote what; returns the aborted writes. Reports duplicate writes.
fn writers(h: &TxnHistory, v: &mut Versions) -> KeyIndex {
    let mut failed = KeyIndex::new(h.keys.len());
    for (t, txn) in h.txns.iter().enumerate() {
        for m in h.mops_of(t).iter().filter(|m| m.kind != MopKind::Read) {
            if txn.status == TxnStatus::Fail {
                failed.push(m.key, m.value, t as u32);
                continue;
            }
            v.writer.push(m.key, m.value, t as u32);
            v.writes[m.key as usize].push((m.value, t as u32));
        }
    }
    failed.finish();
    for (k, x, first, t) in v.writer.finish() {
        let key = &h.keys[k as usize];
        v.anomalies.push(anomaly(
            AnomalyKind::Duplicate,
            vec![first as usize, t as usize],
            key,
            format!(
                "T{first} and T{t} both wrote {x} to key {key}: values must be unique per key \
                 for the version order to be known"
            ),
        ));
    }
    failed
}

/// Internal consistency: within a committed transaction, a read must agree with the
/// transaction's own earlier reads and writes of that key.
fn internal(h: &TxnHistory, v: &mut Versions) {
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status != TxnStatus::Ok {
            continue;
        }
        let mops = h.mops_of(t);
        // A transaction that touches each key once cannot contradict itself.
        if mops
            .iter()
            .enumerate()
            .all(|(i, m)| mops[..i].iter().all(|p| p.key != m.key))
        {
            continue;
        }
        // Per key: (what the transaction knows the value is, its appends before any read).
        let mut seen: Vec<(u32, Option<Vec<i64>>, Vec<i64>)> = Vec::new();
        for (j, m) in mops.iter().enumerate() {
            if m.kind == MopKind::Read {
                future_read(h, v, t, j);
            }
            let i = match seen.iter().position(|s| s.0 == m.key) {
                Some(i) => i,
                None => {
                    seen.push((m.key, None, Vec::new()));
                    seen.len() - 1
                }
            };
            let (_, known, own) = &mut seen[i];
            match m.kind {
                MopKind::Append => match known {
                    Some(k) => k.push(m.value),
                    None => own.push(m.value),
                },
                MopKind::Write => *known = Some(vec![m.value]),
                MopKind::Read => {
                    let Some(read) = h.read_of(m) else { continue };
                    let read = if v.model == TxnModel::RwRegister && m.read_len == NIL_READ {
                        Vec::new()
                    } else {
                        read.to_vec()
                    };
                    let bad = match known {
                        Some(k) => *k != read,
                        None => !read.ends_with(own),
                    };
                    if bad {
                        let expected = match known {
                            Some(k) => format!("= {}", fmt_list(k)),
                            None => format!("to end with {}", fmt_list(own)),
                        };
                        let key = &h.keys[m.key as usize];
                        v.anomalies.push(anomaly(
                            AnomalyKind::Internal,
                            vec![t],
                            key,
                            format!(
                                "T{t} read key {key} = {} but its own earlier operations \
                                 make it {expected}",
                                fmt_list(&read)
                            ),
                        ));
                    }
                    *known = Some(read);
                }
            }
        }
    }
}

/// Reports a read that shows a value its own transaction writes to that key only later.
fn future_read(h: &TxnHistory, v: &mut Versions, t: usize, j: usize) {
    let mops = h.mops_of(t);
    let m = &mops[j];
    let Some(read) = h.read_of(m) else { return };
    let later = mops[j + 1..]
        .iter()
        .find(|w| w.kind != MopKind::Read && w.key == m.key && read.contains(&w.value));
    if let Some(w) = later {
        let key = &h.keys[m.key as usize];
        v.anomalies.push(anomaly(
            AnomalyKind::Internal,
            vec![t],
            key,
            format!(
                "T{t} read key {key} = {} before it wrote {} there itself",
                fmt_list(read),
                w.value
            ),
        ));
    }
}

/// The (key, value) pairs a transaction appended to a key and then appended after again:
/// intermediate versions, which no other transaction may read.
fn intermediate(h: &TxnHistory) -> FastSet<(u32, i64)> {
    let mut set = FastSet::default();
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status == TxnStatus::Fail {
            continue;
        }
        let mops = h.mops_of(t);
        for (i, m) in mops.iter().enumerate() {
            if m.kind != MopKind::Read
                && mops[i + 1..]
                    .iter()
                    .any(|n| n.kind != MopKind::Read && n.key == m.key)
            {
                set.insert((m.key, m.value));
            }
        }
    }
    set
}

/// Reports a read of `value` from `key` by `reader` that no committed write explains.
fn check_source(
    h: &TxnHistory,
    v: &mut Versions,
    failed: &KeyIndex,
    reader: usize,
    key: u32,
    value: i64,
) {
    if v.writer.contains_key(&(key, value)) {
        return;
    }
    let name = &h.keys[key as usize];
    let a = match failed.get(&(key, value)) {
        Some(&w) => anomaly(
            AnomalyKind::G1a,
            vec![w as usize, reader],
            name,
            format!(
                "T{reader} read {value} from key {name}, written by T{w}, which aborted \
                 (an aborted read)"
            ),
        ),
        None => anomaly(
            AnomalyKind::GarbageRead,
            vec![reader],
            name,
            format!("T{reader} read {value} from key {name}, which no transaction wrote"),
        ),
    };
    v.anomalies.push(a);
}

/// Reports an intermediate read: the reader saw `value` last, but its writer wrote the key
/// again later in the same transaction.
fn check_intermediate(
    h: &TxnHistory,
    v: &mut Versions,
    inter: &FastSet<(u32, i64)>,
    reader: usize,
    key: u32,
    value: i64,
) {
    let Some(&w) = v.writer.get(&(key, value)) else {
        return;
    };
    if w as usize != reader && inter.contains(&(key, value)) {
        let name = &h.keys[key as usize];
        v.anomalies.push(anomaly(
            AnomalyKind::G1b,
            vec![w as usize, reader],
            name,
            format!(
                "T{reader} read key {name} ending at {value}, an intermediate version: T{w} \
                 wrote key {name} again after {value} in the same transaction"
            ),
        ));
    }
}

/// list-append: the longest read per key, incompatible orders, garbage and aborted reads,
/// intermediate reads, and the committed appends no read shows.
fn list_orders(h: &TxnHistory, v: &mut Versions, failed: &KeyIndex) {
    let inter = intermediate(h);
    // Per key: the reader of the longest read so far, and whether an incompatibility was
    // already reported (one per key is enough to explain it).
    let mut longest_by: Vec<Option<(usize, Mop)>> = vec![None; h.keys.len()];
    let mut incompatible = vec![false; h.keys.len()];
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status != TxnStatus::Ok {
            continue;
        }
        for m in h.mops_of(t).iter().filter(|m| m.kind == MopKind::Read) {
            let Some(read) = h.read_of(m) else { continue };
            let k = m.key as usize;
            if let Some(&last) = read.last() {
                check_intermediate(h, v, &inter, t, m.key, last);
            }
            let longest = longest_by[k].map_or(&[][..], |(_, lm)| h.read_of(&lm).unwrap_or(&[]));
            let (short, long) = if read.len() > longest.len() {
                (longest, read)
            } else {
                (read, longest)
            };
            if !long.starts_with(short) {
                if !incompatible[k] {
                    incompatible[k] = true;
                    let other = longest_by[k].map_or(t, |(o, _)| o);
                    let name = &h.keys[k];
                    v.anomalies.push(anomaly(
                        AnomalyKind::IncompatibleOrder,
                        vec![other, t],
                        name,
                        format!(
                            "T{other} read key {name} = {} and T{t} read {}: neither is a \
                             prefix of the other, so no single order of appends explains both",
                            fmt_list(longest),
                            fmt_list(read)
                        ),
                    ));
                }
            } else if read.len() > longest.len() {
                longest_by[k] = Some((t, *m));
            }
        }
    }
    let mut longest_reader = vec![0usize; h.keys.len()];
    for (k, longest) in longest_by.iter().enumerate() {
        let Some((reader, m)) = *longest else {
            continue;
        };
        let order = h.read_of(&m).unwrap_or(&[]).to_vec();
        for (i, &x) in order.iter().enumerate() {
            v.pos.push(k as u32, x, i as u32);
            check_source(h, v, failed, reader, k as u32, x);
        }
        v.order[k] = order;
        longest_reader[k] = reader;
    }
    for (k, x, prev, i) in v.pos.finish() {
        let name = &h.keys[k as usize];
        let reader = longest_reader[k as usize];
        v.anomalies.push(anomaly(
            AnomalyKind::Duplicate,
            vec![reader],
            name,
            format!(
                "T{reader} read key {name} = {} with {x} at positions {prev} and {i}: an \
                 append took effect twice",
                fmt_list(&v.order[k as usize])
            ),
        ));
    }
    for k in 0..h.keys.len() {
        let unseen: Vec<(i64, u32)> = v.writes[k]
            .iter()
            .copied()
            .filter(|&(x, w)| {
                h.txns[w as usize].status == TxnStatus::Ok && !v.pos.contains_key(&(k as u32, x))
            })
            .collect();
        v.unobserved[k] = unseen;
    }
}

/// rw-register: who read what, garbage, aborted and intermediate reads, and the version pairs
/// a read followed by a write of the same key establishes.
fn register_reads(h: &TxnHistory, v: &mut Versions, failed: &KeyIndex) {
    let inter = intermediate(h);
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status == TxnStatus::Fail {
            continue;
        }
        // Per key, the first thing this transaction did to it: Some(read value) or None for
        // a write first.
        let mut first: Vec<(u32, Option<Option<i64>>)> = Vec::new();
        for m in h.mops_of(t) {
            let earlier = first.iter().find(|f| f.0 == m.key).map(|f| f.1);
            match m.kind {
                MopKind::Read => {
                    let Some(read) = h.read_of(m) else {
                        first.push((m.key, None));
                        continue;
                    };
                    let value = read.first().copied();
                    if earlier.is_some() {
                        continue;
                    }
                    first.push((m.key, Some(value)));
                    if txn.status != TxnStatus::Ok {
                        continue;
                    }
                    v.readers.entry((m.key, value)).or_default().push(t as u32);
                    if let Some(x) = value {
                        check_source(h, v, failed, t, m.key, x);
                        check_intermediate(h, v, &inter, t, m.key, x);
                    }
                }
                _ => match earlier {
                    Some(Some(a)) => v.read_then_wrote.push((m.key, a, m.value, t as u32)),
                    Some(None) => {}
                    None => first.push((m.key, None)),
                },
            }
        }
    }
}
