//! The concurrency-control checks, at the end of the run (the system quiet):
//! - **no lost update**: every key's committed value equals its initial value plus the
//!   changes of the acknowledged (`ok`) transactions that touched it; since a `transfer`
//!   moves 1 between two keys, this also proves the total conserved. Aborted (`fail`)
//!   transactions must have left no trace.
//! - **no deadlock**: no cycle of transactions each waiting for a lock the next one holds
//!   (a liveness failure: without deadlock handling they would wait for ever).

use std::collections::{BTreeMap, BTreeSet};

use sim_core::{Checker, EventType, Finding, History, View};

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

impl Checker<Node> for CcChecker {
    fn name(&self) -> &'static str {
        "concurrency"
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some(d) = self.deadlock(view) {
            out.push(Finding::liveness(d));
        }
        out.extend(
            self.lost_updates(view, history)
                .into_iter()
                .map(Finding::from),
        );
        out
    }
}
