//! Transactional consistency checking in the manner of Elle (Kingsbury & Alvaro, VLDB 2020):
//! infer the version order of every key from what transactions read, build the dependency
//! graph of the transactions (Adya's write-write, write-read and read-write edges, plus
//! process and real-time order for strict serializability), find its cycles, and name each
//! anomaly by Adya's classes, explained edge by edge.
//!
//! # Models of data
//!
//! - **list-append** ([`TxnModel::ListAppend`]): each key holds a list; a transaction appends
//!   unique integers and reads whole lists. Every read is a prefix of the key's final list, so
//!   the longest read gives the key's version order directly.
//! - **rw-register** ([`TxnModel::RwRegister`]): each key holds one integer; writes are unique
//!   per key. The version order is only partly known: `nil` comes first, and a transaction
//!   that reads `a` and then writes `b` puts `a` before `b`. Cycles found are real; some
//!   anomalies a list-append history would show stay hidden.
//!
//! # Pipeline (one file per concept)
//!
//! [`history`] reads transactions from EDN or JSON Lines; `versions` builds version orders
//! and reports the anomalies visible without a graph (aborted and intermediate reads, garbage
//! reads, duplicates, internal inconsistency, incompatible orders); `graph` builds the
//! dependency graph in compressed adjacency form; `cycles` finds strongly connected
//! components and a shortest cycle of each class in each; `explain` says why each edge of a
//! cycle exists. [`generate`] makes valid and anomalous histories for tests and benchmarks.
//!
//! # Real time
//!
//! For strict serializability, T1 precedes T2 in real time when T1 completed `ok` strictly
//! before T2 was invoked (by `time_ns`; equal times count as concurrent). Only a transitive
//! reduction of that order enters the graph: each transaction gets edges from the completed
//! transactions that no other completed transaction followed when it was invoked.

mod cycles;
mod explain;
pub mod generate;
mod graph;
pub mod history;
mod read;
#[cfg(test)]
mod tests;
mod versions;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

pub use generate::{generate_txn_history, TxnGenOptions};
pub use history::{parse_txn_history, Mop, MopKind, Txn, TxnBuilder, TxnHistory, TxnStatus};
pub use read::{read_txn_jsonl, read_txn_jsonl_file};

/// What the keys hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxnModel {
    /// Lists of unique appended integers (Elle's list-append).
    ListAppend,
    /// Registers of unique written integers (Elle's rw-register).
    RwRegister,
}

impl TxnModel {
    /// The model named by `--model`, if it is transactional.
    pub fn by_name(name: &str) -> Option<TxnModel> {
        match name {
            "list-append" => Some(TxnModel::ListAppend),
            "rw-register" => Some(TxnModel::RwRegister),
            _ => None,
        }
    }

    /// The name used by `--model`.
    pub fn as_str(self) -> &'static str {
        match self {
            TxnModel::ListAppend => "list-append",
            TxnModel::RwRegister => "rw-register",
        }
    }
}

/// A consistency model to hold a history to, weakest first: each forbids everything the
/// ones before it forbid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    /// Forbids G0 (write cycles).
    ReadUncommitted,
    /// Also forbids G1a, G1b, G1c.
    ReadCommitted,
    /// Also forbids G-single and G-nonadjacent (cycles whose anti-dependency edges are never
    /// adjacent, such as a long fork).
    SnapshotIsolation,
    /// Also forbids G2 (every dependency cycle).
    Serializable,
    /// Also forbids cycles through real-time and process order.
    StrictSerializable,
}

/// Every consistency model, weakest first.
pub const CONSISTENCIES: [Consistency; 5] = [
    Consistency::ReadUncommitted,
    Consistency::ReadCommitted,
    Consistency::SnapshotIsolation,
    Consistency::Serializable,
    Consistency::StrictSerializable,
];

impl Consistency {
    /// The name used by `--consistency`.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::ReadUncommitted => "read-uncommitted",
            Consistency::ReadCommitted => "read-committed",
            Consistency::SnapshotIsolation => "snapshot-isolation",
            Consistency::Serializable => "serializable",
            Consistency::StrictSerializable => "strict-serializable",
        }
    }

    /// Parses a `--consistency` name.
    pub fn by_name(name: &str) -> Option<Consistency> {
        CONSISTENCIES.into_iter().find(|c| c.as_str() == name)
    }
}

/// The class of an anomaly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum AnomalyKind {
    /// A cycle of write-write edges only (dirty write).
    G0,
    /// A read of a value written by an aborted transaction.
    G1a,
    /// A read of a value its writer later overwrote within the same transaction.
    G1b,
    /// A cycle of write-write and write-read edges (circular information flow).
    G1c,
    /// A cycle with exactly one read-write (anti-dependency) edge: read skew, lost update.
    #[serde(rename = "G-single")]
    GSingle,
    /// A cycle with several read-write edges, no two adjacent (e.g. a long fork).
    #[serde(rename = "G-nonadjacent")]
    GNonadjacent,
    /// Any other cycle with read-write edges (e.g. write skew).
    G2,
    /// A transaction read something its own earlier operations contradict.
    #[serde(rename = "internal")]
    Internal,
    /// The same value appended (or written) twice to a key, or read twice in one list.
    #[serde(rename = "duplicate")]
    Duplicate,
    /// A read of a value nobody wrote.
    #[serde(rename = "garbage-read")]
    GarbageRead,
    /// Two reads of a key that are not prefixes of one another.
    #[serde(rename = "incompatible-order")]
    IncompatibleOrder,
}

impl AnomalyKind {
    /// The name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::G0 => "G0",
            AnomalyKind::G1a => "G1a",
            AnomalyKind::G1b => "G1b",
            AnomalyKind::G1c => "G1c",
            AnomalyKind::GSingle => "G-single",
            AnomalyKind::GNonadjacent => "G-nonadjacent",
            AnomalyKind::G2 => "G2",
            AnomalyKind::Internal => "internal",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::GarbageRead => "garbage-read",
            AnomalyKind::IncompatibleOrder => "incompatible-order",
        }
    }

    /// The weakest model this anomaly rules out (with `realtime`, only strict
    /// serializability; with no model broken by data alone).
    pub fn weakest_ruled_out(self, realtime: bool) -> Consistency {
        if realtime {
            return Consistency::StrictSerializable;
        }
        match self {
            AnomalyKind::G1a | AnomalyKind::G1b | AnomalyKind::G1c => Consistency::ReadCommitted,
            AnomalyKind::GSingle | AnomalyKind::GNonadjacent => Consistency::SnapshotIsolation,
            AnomalyKind::G2 => Consistency::Serializable,
            // A write cycle, and a history no database could have produced, break every model.
            _ => Consistency::ReadUncommitted,
        }
    }
}

/// Why one transaction must come before another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    /// Write-write: the target overwrote (appended after) the source's write.
    Ww,
    /// Write-read: the target read the source's write.
    Wr,
    /// Read-write (anti-dependency): the target overwrote what the source read.
    Rw,
    /// The same process ran the source, then the target.
    Process,
    /// The source completed before the target was invoked.
    Realtime,
}

impl EdgeKind {
    /// The short name used in explanations: `ww`, `wr`, `rw`, `process`, `rt`.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Ww => "ww",
            EdgeKind::Wr => "wr",
            EdgeKind::Rw => "rw",
            EdgeKind::Process => "process",
            EdgeKind::Realtime => "rt",
        }
    }
}

/// One edge of a cycle, with its reason.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CycleEdge {
    /// Source transaction (index into [`TxnHistory::txns`]; `T<from>` in text).
    pub from: usize,
    /// Target transaction.
    pub to: usize,
    /// Why the source precedes the target.
    pub kind: EdgeKind,
    /// The key the edge is about (none for process and real-time edges).
    pub key: Option<String>,
    /// The reason in words, e.g. "T12 read key 5 = [1 2] and T40 appended 3 after 2".
    pub why: String,
}

/// One anomaly: its class, the transactions involved, and for cycles the cycle edge by edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// The class.
    pub kind: AnomalyKind,
    /// True when the cycle needs real-time or process edges (the anomaly then only rules
    /// out strict serializability).
    pub realtime: bool,
    /// Transactions involved, in the order the explanation names them.
    pub txns: Vec<usize>,
    /// Keys involved.
    pub keys: Vec<String>,
    /// For cycle anomalies, the cycle: each edge's target is the next edge's source, and the
    /// last edge returns to the first source. Empty for the others.
    pub cycle: Vec<CycleEdge>,
    /// The explanation in words.
    pub explanation: String,
}

impl Anomaly {
    /// The class name, with `-realtime` for cycles that need real-time order.
    pub fn name(&self) -> String {
        if self.realtime {
            format!("{}-realtime", self.kind.as_str())
        } else {
            self.kind.as_str().to_owned()
        }
    }

    /// The weakest consistency model this anomaly rules out.
    pub fn weakest_ruled_out(&self) -> Consistency {
        self.kind.weakest_ruled_out(self.realtime)
    }
}

/// What to check.
#[derive(Clone, Copy, Debug)]
pub struct TxnCheckOptions {
    /// What the keys hold.
    pub model: TxnModel,
    /// The consistency model the verdict is about. Real-time edges are built only for
    /// strict serializability.
    pub consistency: Consistency,
    /// How many edges a cycle search may start from in one component before it settles for
    /// a weaker class; bounds the time spent on a large tangled component.
    pub max_cycle_searches: usize,
}

impl Default for TxnCheckOptions {
    fn default() -> Self {
        TxnCheckOptions {
            model: TxnModel::ListAppend,
            consistency: Consistency::StrictSerializable,
            max_cycle_searches: 2_000,
        }
    }
}

/// A transaction named in a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxnRef {
    /// `T<index>`: its position in invocation order.
    pub index: usize,
    /// The process that ran it.
    pub process: u64,
    /// ok, info or fail.
    pub status: TxnStatus,
    /// 1-based invocation event in the file.
    pub event: usize,
    /// Invocation time (ns).
    pub invoke_ns: u64,
    /// Completion time (ns).
    pub complete_ns: Option<u64>,
    /// Its micro-operations as written, e.g. `[append 5 3] [r 5 [1 2 3]]`.
    pub ops: String,
}

/// The result of [`check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxnReport {
    /// list-append or rw-register.
    pub model: TxnModel,
    /// The model the verdict is about.
    pub consistency: Consistency,
    /// True when no anomaly found rules out `consistency`.
    pub valid: bool,
    /// Transactions in the history.
    pub txn_count: usize,
    /// Of which committed, unknown and aborted.
    pub ok_count: usize,
    /// Unknown outcome.
    pub info_count: usize,
    /// Aborted.
    pub fail_count: usize,
    /// Edges in the dependency graph (after merging parallel edges).
    pub edge_count: usize,
    /// Strongly connected components with more than one transaction.
    pub cyclic_components: usize,
    /// Every anomaly found, at most one cycle per component, in a stable order.
    pub anomalies: Vec<Anomaly>,
    /// Count of anomalies by name.
    pub anomaly_counts: BTreeMap<String, usize>,
    /// The consistency models the anomalies rule out, weakest first.
    pub ruled_out: Vec<Consistency>,
    /// The transactions the anomalies name, for the report.
    pub txns: Vec<TxnRef>,
}

/// Checks a transactional history. Never fails: a history whose structure is wrong is
/// refused earlier, by [`parse_txn_history`].
pub fn check(h: &TxnHistory, opts: &TxnCheckOptions) -> TxnReport {
    let count = |s: TxnStatus| h.txns.iter().filter(|t| t.status == s).count();
    let v = versions::build(h, opts.model);
    let mut anomalies = v.anomalies.clone();
    let strict = opts.consistency == Consistency::StrictSerializable;
    let g = graph::build(h, &v, strict);
    let found = cycles::find(&g, opts.max_cycle_searches);
    let cyclic_components = found.components;
    for c in found.cycles {
        anomalies.push(explain::cycle_anomaly(h, &v, &c));
    }
    anomalies.sort_by(|a, b| {
        (a.weakest_ruled_out(), a.kind, &a.txns).cmp(&(b.weakest_ruled_out(), b.kind, &b.txns))
    });
    let mut anomaly_counts = BTreeMap::new();
    for a in &anomalies {
        *anomaly_counts.entry(a.name()).or_insert(0) += 1;
    }
    let weakest = anomalies.iter().map(Anomaly::weakest_ruled_out).min();
    let ruled_out: Vec<Consistency> = CONSISTENCIES
        .into_iter()
        .filter(|c| weakest.is_some_and(|w| *c >= w))
        .collect();
    let mut named: Vec<usize> = anomalies.iter().flat_map(|a| a.txns.clone()).collect();
    named.sort_unstable();
    named.dedup();
    TxnReport {
        model: opts.model,
        consistency: opts.consistency,
        valid: !ruled_out.contains(&opts.consistency),
        txn_count: h.txns.len(),
        ok_count: count(TxnStatus::Ok),
        info_count: count(TxnStatus::Info),
        fail_count: count(TxnStatus::Fail),
        edge_count: g.edge_count(),
        cyclic_components,
        anomalies,
        anomaly_counts,
        ruled_out,
        txns: named
            .into_iter()
            .map(|t| explain::txn_ref(h, t, opts.model))
            .collect(),
    }
}

impl TxnReport {
    /// A human rendering: the verdict, what it rules out, then each anomaly edge by edge.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} (model {}, consistency {}): {} txns ({} ok, {} info, {} fail); {} dependency \
             edges, {} cyclic component(s)",
            if self.valid { "valid" } else { "NOT valid" },
            self.model.as_str(),
            self.consistency.as_str(),
            self.txn_count,
            self.ok_count,
            self.info_count,
            self.fail_count,
            self.edge_count,
            self.cyclic_components
        );
        if self.anomalies.is_empty() {
            let _ = writeln!(out, "no anomalies found");
            return out;
        }
        let counts: Vec<String> = self
            .anomaly_counts
            .iter()
            .map(|(k, n)| format!("{k} x{n}"))
            .collect();
        let ruled: Vec<&str> = self.ruled_out.iter().map(|c| c.as_str()).collect();
        let _ = writeln!(out, "anomalies: {}", counts.join(", "));
        let _ = writeln!(out, "ruled out: {}", ruled.join(", "));
        const SHOWN: usize = 10;
        for a in self.anomalies.iter().take(SHOWN) {
            let _ = writeln!(out, "{}: {}", a.name(), a.explanation);
            for e in &a.cycle {
                let _ = writeln!(
                    out,
                    "    T{} -{}-> T{}: {}",
                    e.from,
                    e.kind.as_str(),
                    e.to,
                    e.why
                );
            }
        }
        if self.anomalies.len() > SHOWN {
            let _ = writeln!(out, "... and {} more", self.anomalies.len() - SHOWN);
        }
        out
    }
}
