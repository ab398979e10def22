//! The concurrency-control checks.
//!
//! **No deadlock**: no cycle of transactions each waiting for a lock the next one holds;
//! without deadlock handling they would wait for ever. Judged at the liveness deadline when
//! no operation was answered in the phase (the cycle is then why, and the finding names it),
//! and at the end of the run.
//!
//! At the end of the run (the system quiet):
//! - **serializable**: the clients' history, read as Elle's rw-register (each write's value is
//!   its [`write_tag`](super::write_tag), so a read names the one write it saw), is judged by
//!   the transactional checker (`sim_core::txn`): aborted reads (G1a), intermediate reads
//!   (G1b), and dependency cycles (G0, G1c, G-single, G2), each explained edge by edge.
//!   Aborted attempts that wrote in place are in the history as `fail` transactions, and an
//!   attempt the run ended in the middle of as `info`.
//! - **no lost update**: every key's committed value equals its initial value plus the
//!   changes of the acknowledged (`ok`) transactions that touched it; since a `transfer`
//!   moves 1 between two keys, this also proves the total conserved. Aborted (`fail`)
//!   transactions must have left no trace.

use std::collections::{BTreeMap, BTreeSet};

use sim_core::time::fmt_ns;
use sim_core::txn::{self, Consistency, MopKind, TxnCheckOptions, TxnHistory, TxnModel, TxnStatus};
use sim_core::{Checker, EventType, Finding, History, LivenessPhase, View};

use super::{shard_of, Node, TxnId};

/// The concurrency-control checker.
pub struct CcChecker {
    initial: i64,
    keys: u32,
}

/// A transaction's name for people: client node and its counter.
pub fn txn_name(t: TxnId) -> String {
    format!("n{}#{}", t >> 32, t & 0xffff_ffff)
}

impl CcChecker {
    /// A checker for a store of `keys` keys starting at `initial`.
    pub fn new(initial: i64, keys: u32) -> Self {
        CcChecker { initial, keys }
    }

    fn lost_updates(&self, view: &View<'_, Node>, history: &History) -> Vec<String> {
        let mut expect: BTreeMap<u32, (i64, u64)> = BTreeMap::new();
        for e in history.events.iter().filter(|e| e.kind == EventType::Ok) {
            let Some(keys) = e.value.get("keys").and_then(|k| k.as_array()) else {
                continue;
            };
            for kd in keys {
                let k = kd[0].as_u64().unwrap_or(0) as u32;
                let d = kd[1].as_i64().unwrap_or(0);
                let x = expect.entry(k).or_insert((self.initial, 0));
                x.0 += d;
                x.1 += 1;
            }
        }
        let shards = view.servers_count();
        let mut out = Vec::new();
        let (mut total, mut want_total) = (0i64, 0i64);
        for k in 0..self.keys {
            let Some(shard) = view.node(shard_of(k, shards)).and_then(|n| n.shard()) else {
                return Vec::new(); // a shard is down: nothing can be judged
            };
            let got = shard.committed(k);
            let (want, n) = expect.get(&k).copied().unwrap_or((self.initial, 0));
            total += got;
            want_total += want;
            if got != want && out.len() < 4 {
                out.push(format!(
                    "lost update on key k{k}: its committed value is {got}, but {n} acknowledged transactions on it account for {want} (from {})",
                    self.initial
                ));
            }
        }
        if !out.is_empty() {
            out.push(format!(
                "the keys total {total}; acknowledged increments and transfers account for {want_total}"
            ));
        }
        out
    }

    fn deadlock(&self, view: &View<'_, Node>) -> Option<String> {
        // waits-for: waiter -> (holder, key, shard)
        let mut edges: BTreeMap<TxnId, Vec<(TxnId, u32, usize)>> = BTreeMap::new();
        for (sid, n) in view.servers() {
            let Some(s) = n.shard() else { continue };
            for (k, l) in &s.locks {
                let Some(h) = l.holder else { continue };
                for w in &l.queue {
                    edges.entry(w.txn).or_default().push((h.txn, *k, sid));
                }
            }
        }
        for start in edges.keys() {
            if let Some(cycle) = find_cycle(&edges, *start) {
                let steps: Vec<String> = cycle
                    .iter()
                    .map(|(t, h, k, s)| {
                        format!(
                            "{} waits for k{k} (shard {s}) held by {}",
                            txn_name(*t),
                            txn_name(*h)
                        )
                    })
                    .collect();
                return Some(format!(
                    "deadlock: {} transactions wait for each other for ever: {}",
                    cycle.len(),
                    steps.join("; ")
                ));
            }
        }
        None
    }
}

type Step = (TxnId, TxnId, u32, usize);

/// A cycle through `start` in the waits-for graph, as (waiter, holder, key, shard) steps.
fn find_cycle(
    edges: &BTreeMap<TxnId, Vec<(TxnId, u32, usize)>>,
    start: TxnId,
) -> Option<Vec<Step>> {
    let mut path: Vec<Step> = Vec::new();
    let mut seen: BTreeSet<TxnId> = BTreeSet::new();
    fn dfs(
        edges: &BTreeMap<TxnId, Vec<(TxnId, u32, usize)>>,
        at: TxnId,
        start: TxnId,
        path: &mut Vec<Step>,
        seen: &mut BTreeSet<TxnId>,
    ) -> bool {
        for &(h, k, s) in edges.get(&at).map(|v| v.as_slice()).unwrap_or(&[]) {
            path.push((at, h, k, s));
            if h == start || (seen.insert(h) && dfs(edges, h, start, path, seen)) {
                return true;
            }
            path.pop();
        }
        false
    }
    seen.insert(start);
    dfs(edges, start, start, &mut path, &mut seen).then_some(path)
}

/// What a transaction of the checked history stands for: its history operation (invoke event
/// index), client node, function and keys, and whether it was an aborted attempt.
struct TxnSource {
    invoke: usize,
    node: usize,
    f: String,
    keys: Vec<u32>,
    attempt: &'static str,
}

fn keys_of(v: &serde_json::Value) -> Vec<u32> {
    v.get("keys")
        .and_then(|k| k.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|kd| kd[0].as_u64())
                .map(|k| k as u32)
                .collect()
        })
        .unwrap_or_default()
}

/// Aborted attempts `[[tag, [keys]], ...]` as `fail` transactions of writes.
fn push_aborted(
    h: &mut TxnHistory,
    src: &mut Vec<TxnSource>,
    process: u64,
    aborted: &[(i64, Vec<u32>)],
    span: (u64, Option<u64>),
    of: &TxnSource,
) {
    for (tag, keys) in aborted {
        let mops: Vec<_> = keys
            .iter()
            .map(|k| (MopKind::Write, *k, *tag, None))
            .collect();
        h.push(process, TxnStatus::Fail, &mops, span.0, span.1);
        src.push(TxnSource {
            keys: keys.clone(),
            attempt: "an aborted attempt of ",
            f: of.f.clone(),
            ..*of
        });
    }
}

fn parse_aborted(v: &serde_json::Value) -> Vec<(i64, Vec<u32>)> {
    serde_json::from_value(v.get("aborted").cloned().unwrap_or_default()).unwrap_or_default()
}

impl CcChecker {
    /// The clients' transactions as an rw-register history, with what each stands for.
    fn txn_history(
        &self,
        view: &View<'_, Node>,
        history: &History,
    ) -> (TxnHistory, Vec<TxnSource>) {
        let mut h = TxnHistory {
            keys: (0..self.keys).map(|k| format!("k{k}")).collect(),
            ..TxnHistory::default()
        };
        let mut src = Vec::new();
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, e) in history.events.iter().enumerate() {
            if e.kind == EventType::Invoke {
                open.insert(e.process, i);
                continue;
            }
            let Some(inv) = open.remove(&e.process) else {
                continue;
            };
            let start = history.events[inv].time_ns;
            let me = TxnSource {
                invoke: inv,
                node: view.client_of(e.process),
                f: e.f.clone(),
                keys: keys_of(&e.value),
                attempt: "",
            };
            let span = (start, Some(e.time_ns));
            push_aborted(
                &mut h,
                &mut src,
                e.process,
                &parse_aborted(&e.value),
                span,
                &me,
            );
            if e.kind != EventType::Ok {
                continue;
            }
            let mops: Vec<_> = e.value["txn"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let k = m[1].as_u64()? as u32;
                    match m[0].as_str()? {
                        "r" => Some((
                            MopKind::Read,
                            k,
                            0,
                            Some(m[2].as_i64().into_iter().collect()),
                        )),
                        _ => Some((MopKind::Write, k, m[2].as_i64()?, None)),
                    }
                })
                .collect();
            h.push(e.process, TxnStatus::Ok, &mops, start, Some(e.time_ns));
            src.push(me);
        }
        // Operations the run ended in the middle of: their aborted attempts, and the open
        // attempt's writes as `info` (they may or may not take effect).
        for (process, inv) in open {
            let node = view.client_of(process);
            let Some(Node::Client(c)) = view.node(node) else {
                continue;
            };
            let e = &history.events[inv];
            let me = TxnSource {
                invoke: inv,
                node,
                f: e.f.clone(),
                keys: Vec::new(),
                attempt: "the unfinished attempt of ",
            };
            let (aborted, current) = c.unfinished();
            push_aborted(&mut h, &mut src, process, aborted, (e.time_ns, None), &me);
            if let Some((tag, keys)) = current {
                let mops: Vec<_> = keys
                    .iter()
                    .map(|k| (MopKind::Write, *k, tag, None))
                    .collect();
                h.push(process, TxnStatus::Info, &mops, e.time_ns, None);
                src.push(TxnSource { keys, ..me });
            }
        }
        // A read of the initial value is a register read of nil.
        for m in h.mops.iter_mut() {
            if m.kind == MopKind::Read && m.read_len == 0 {
                m.read_len = txn::history::NIL_READ;
            }
        }
        (h, src)
    }

    /// The transactional checker's verdict on the clients' history: one finding per anomaly
    /// (at most two), its class, its cycle edge by edge, and which operation each
    /// transaction was.
    fn serializable(&self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let (h, src) = self.txn_history(view, history);
        let opts = TxnCheckOptions {
            model: TxnModel::RwRegister,
            consistency: Consistency::Serializable,
            ..TxnCheckOptions::default()
        };
        let report = txn::check(&h, &opts);
        if report.valid {
            return Vec::new();
        }
        report
            .anomalies
            .iter()
            .filter(|a| a.weakest_ruled_out() <= Consistency::Serializable)
            .take(2)
            .map(|a| {
                let legend: Vec<String> = a
                    .txns
                    .iter()
                    .map(|t| {
                        let s = &src[*t];
                        let keys: Vec<String> = s.keys.iter().map(|k| format!("k{k}")).collect();
                        format!(
                            "T{t} = {}{} by client n{} on {} (invoked at {})",
                            s.attempt,
                            s.f,
                            s.node,
                            keys.join(" "),
                            fmt_ns(h.txns[*t].invoke_ns)
                        )
                    })
                    .collect();
                let edges: Vec<&str> = a.cycle.iter().map(|e| e.why.as_str()).collect();
                let edges = if edges.is_empty() {
                    String::new()
                } else {
                    format!(" Edge by edge: {}.", edges.join("; "))
                };
                Finding::new(format!(
                    "not serializable: {} ({}); {}.{edges} Where {}",
                    a.name(),
                    what_it_is(a.kind),
                    a.explanation.trim_end_matches('.'),
                    legend.join("; ")
                ))
                .ops(a.txns.iter().map(|t| src[*t].invoke))
                .nodes(a.txns.iter().map(|t| src[*t].node))
                .keys(a.keys.iter().cloned())
            })
            .collect()
    }
}

/// The anomaly class in the words of the lesson.
fn what_it_is(kind: txn::AnomalyKind) -> &'static str {
    use txn::AnomalyKind::*;
    match kind {
        G0 => "dirty write: a cycle of overwrites",
        G1a => "aborted read: a transaction read a write that was rolled back",
        G1b => "intermediate read",
        G1c => "circular information flow: each transaction read the other's write",
        GSingle => "read skew or lost update: a cycle with one anti-dependency",
        GNonadjacent | G2 => {
            "lost update or write skew: each transaction overwrote what the other read"
        }
        _ => "a history no store could have produced",
    }
}

impl Checker<Node> for CcChecker {
    fn name(&self) -> &'static str {
        "concurrency"
    }

    /// A waits-for cycle is a deadlock only if it lasts: with wait-die, wound-wait or a lock
    /// timeout one forms now and then and is broken within a round trip or `lock_timeout`.
    /// So a cycle is reported here when no operation was answered in the whole phase: then
    /// it is why nothing moved, and it says more than the engine's "no operation answered".
    /// A deadlock that stops only some clients is left to the end check (after the deadline
    /// no new operation starts, so by the end of the run every breakable wait is broken).
    fn at_liveness(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        history: &History,
    ) -> Vec<Finding> {
        let answered = history.events.iter().any(|e| {
            e.time_ns >= phase.start_ns && matches!(e.kind, EventType::Ok | EventType::Fail)
        });
        if answered {
            return Vec::new();
        }
        self.deadlock(view)
            .map(Finding::liveness)
            .into_iter()
            .collect()
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some(d) = self.deadlock(view) {
            out.push(Finding::liveness(d));
        }
        out.extend(self.serializable(view, history));
        out.extend(
            self.lost_updates(view, history)
                .into_iter()
                .map(Finding::from),
        );
        out
    }
}
