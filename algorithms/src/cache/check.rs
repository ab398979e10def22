//! Bounded staleness: once a write has completed and `bound` has passed, no read invoked
//! later returns an older value. A bound of 0 is read-your-writes for every client.

use std::collections::BTreeMap;

use sim_core::time::{fmt_ns, Nanos};
use sim_core::{Checker, EventType, Finding, History, LivenessPhase, NodeId, View};

use super::Node;
use crate::hashing::placement::key_index;

/// The staleness check. It mirrors the database's write log as the run goes (so that a
/// database down at the end does not hide it) and judges the history at the end.
pub struct Staleness {
    /// The staleness bound.
    pub bound: Nanos,
    /// The database's node id.
    pub db: NodeId,
    log: Vec<(u32, u64)>,
}

impl Staleness {
    /// A check with this bound.
    pub fn new(bound: Nanos, db: NodeId) -> Self {
        Staleness {
            bound,
            db,
            log: Vec::new(),
        }
    }
}

/// A completed write: (completion time, version, op index, value, invoke event index).
type Write = (Nanos, u64, usize, u64, usize);

/// One operation of the history.
struct HOp {
    index: usize,
    /// The invoke's position in the history's events.
    event: usize,
    f: String,
    key: u32,
    arg: serde_json::Value,
    invoked: Nanos,
    done: Option<(EventType, Nanos, serde_json::Value)>,
}

fn ops_of(history: &History) -> Vec<HOp> {
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut ops: Vec<HOp> = Vec::new();
    for (event, e) in history.events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            open.insert(e.process, ops.len());
            ops.push(HOp {
                index: ops.len(),
                event,
                f: e.f.clone(),
                key: e.key.as_deref().and_then(key_index).unwrap_or(usize::MAX) as u32,
                arg: e.value.clone(),
                invoked: e.time_ns,
                done: None,
            });
        } else if let Some(i) = open.remove(&e.process) {
            ops[i].done = Some((e.kind, e.time_ns, e.value.clone()));
        }
    }
    ops
}

impl Checker<Node> for Staleness {
    fn name(&self) -> &'static str {
        "cache-staleness"
    }

    fn after_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<Finding> {
        if node == self.db {
            if let Some(Node::Db(d)) = view.node(self.db) {
                if d.log.len() > self.log.len() {
                    self.log.extend_from_slice(&d.log[self.log.len()..]);
                }
                // The database's log only grows (it is durable): a shorter one is a lost write.
                debug_assert!(d.log.len() >= self.log.len() || d.log.is_empty());
            }
        }
        None
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        // Versions per key in database order; a value never written has none.
        let mut version: BTreeMap<(u32, u64), u64> = BTreeMap::new();
        let mut per_key: BTreeMap<u32, u64> = BTreeMap::new();
        for (k, v) in &self.log {
            let n = per_key.entry(*k).or_insert(0);
            *n += 1;
            version.insert((*k, *v), *n);
        }
        let ops = ops_of(history);
        let key = |k: u32| format!("k{k}");
        // Completed writes per key: (completion time, version, op index, value, event).
        let mut writes: BTreeMap<u32, Vec<Write>> = BTreeMap::new();
        for o in &ops {
            if let (Some((EventType::Ok, t, _)), "put") = (&o.done, o.f.as_str()) {
                let v = o.arg.as_u64().unwrap_or(0);
                let ver = version.get(&(o.key, v)).copied().unwrap_or(0);
                writes
                    .entry(o.key)
                    .or_default()
                    .push((*t, ver, o.index, v, o.event));
            }
        }
        for w in writes.values_mut() {
            w.sort();
        }
        let mut out = Vec::new();
        let mut stale = 0usize;
        for o in ops.iter().filter(|o| o.f == "get") {
            let Some((EventType::Ok, t_done, result)) = &o.done else {
                continue;
            };
            let got = match result.as_u64() {
                None => 0,
                Some(v) => match version.get(&(o.key, v)) {
                    Some(ver) => *ver,
                    None => {
                        let msg = format!(
                            "op #{} (get k{}) returned value {v}, which was never written to the database",
                            o.index, o.key
                        );
                        out.push(
                            Finding::new(msg)
                                .nodes([view.client_of(history.events[o.event].process)])
                                .ops([o.event])
                                .values([result.clone()])
                                .keys([key(o.key)]),
                        );
                        continue;
                    }
                },
            };
            let Some(ws) = writes.get(&o.key) else {
                continue;
            };
            let deadline = o.invoked.saturating_sub(self.bound);
            let newest = ws
                .iter()
                .take_while(|w| w.0 <= deadline && o.invoked >= self.bound)
                .max_by_key(|w| w.1);
            if let Some(&(t_w, ver_w, idx_w, v_w, ev_w)) = newest {
                if got < ver_w {
                    stale += 1;
                    if out.len() < 3 {
                        let msg = format!(
                            "stale read: op #{} (get k{}) invoked at {} returned {} (version {got}), but op #{idx_w} had written value {v_w} (version {ver_w}) and completed at {}, more than the bound {} earlier; read completed at {}",
                            o.index,
                            o.key,
                            fmt_ns(o.invoked),
                            result,
                            fmt_ns(t_w),
                            fmt_ns(self.bound),
                            fmt_ns(*t_done)
                        );
                        let reader = view.client_of(history.events[o.event].process);
                        let writer = view.client_of(history.events[ev_w].process);
                        out.push(
                            Finding::new(msg)
                                .nodes([reader, writer])
                                .ops([o.event, ev_w])
                                .values([result.clone(), serde_json::json!(v_w)])
                                .keys([key(o.key)]),
                        );
                    }
                }
            }
        }
        if stale > 3 {
            out.push(Finding::new(format!("... {stale} stale reads in all")));
        }
        out
    }
}

/// The liveness phase's progress predicate: by the deadline every cache server and client
/// sees as members exactly the cache servers that are up and meant to be in the cluster, so
/// that reads reach the cache again instead of the database. The engine checks besides that
/// operations complete.
#[derive(Default)]
pub struct ViewsConverge;

impl Checker<Node> for ViewsConverge {
    fn name(&self) -> &'static str {
        "cache-views-converge"
    }

    fn at_liveness(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        use crate::hashing::membership::{disagreeing, not_converged};
        let expected = view
            .servers()
            .filter(|(_, n)| matches!(n, Node::Cache(c) if c.is_member()))
            .map(|(i, _)| i)
            .collect();
        let clients = view.servers_count()..view.servers_count() + view.clients_count();
        let views = view
            .servers()
            .chain(clients.filter_map(|c| view.node(c).map(|n| (c, n))))
            .filter_map(|(i, n)| match n {
                Node::Cache(c) => Some((i, c.view_members())),
                Node::Client(c) => Some((i, c.view_members())),
                Node::Db(_) => None,
            });
        let wrong = disagreeing(&expected, views);
        if wrong.is_empty() {
            return Vec::new();
        }
        vec![not_converged(&expected, &wrong, phase)]
    }
}
