//! What the plots are drawn from: operations paired from the history, fault windows paired from
//! the fault log, and the operations the linearizability checker could not place.

use std::collections::{BTreeMap, BTreeSet};

use sim_core::result::{FaultRecord, Violation};
use sim_core::{EventType, History};

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Took effect.
    Ok,
    /// Certainly took no effect.
    Fail,
    /// Unknown (timeout, crash).
    Info,
    /// Never completed before the run ended.
    Pending,
}

impl Outcome {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
            Outcome::Pending => "pending",
        }
    }
}

/// One operation: an invoke and its completion (if any).
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// 0-based index in invocation order: the i-th `invoke` event of the history.
    pub index: usize,
    /// The logical client.
    pub process: u64,
    /// The function ("read", "write", ...).
    pub f: String,
    /// The key, for keyed models.
    pub key: Option<String>,
    /// Invocation time.
    pub invoke_ns: u64,
    /// Completion time (None while pending).
    pub complete_ns: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
    /// The invocation's argument.
    pub arg: serde_json::Value,
    /// The completion's value.
    pub result: serde_json::Value,
}

impl Op {
    /// Latency in milliseconds, when the operation completed.
    pub fn latency_ms(&self) -> Option<f64> {
        self.complete_ns
            .map(|c| c.saturating_sub(self.invoke_ns) as f64 / 1e6)
    }

    /// A short label such as `write 3` or `read -> 3`.
    pub fn label(&self) -> String {
        let show = |v: &serde_json::Value| match v {
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
        let arg = show(&self.arg);
        let res = show(&self.result);
        match self.outcome {
            Outcome::Ok if !res.is_empty() && res != arg => {
                format!("{} {arg}->{res}", self.f).replace("  ", " ")
            }
            _ => format!("{} {arg}", self.f).trim().to_string(),
        }
    }
}

/// Pairs each invoke with the next completion by the same process.
pub fn ops_of(history: &History) -> Vec<Op> {
    let mut ops: Vec<Op> = Vec::new();
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    for e in &history.events {
        match e.kind {
            EventType::Invoke => {
                open.insert(e.process, ops.len());
                ops.push(Op {
                    index: ops.len(),
                    process: e.process,
                    f: e.f.clone(),
                    key: e.key.clone(),
                    invoke_ns: e.time_ns,
                    complete_ns: None,
                    outcome: Outcome::Pending,
                    arg: e.value.clone(),
                    result: serde_json::Value::Null,
                });
            }
            kind => {
                if let Some(i) = open.remove(&e.process) {
                    let op = &mut ops[i];
                    op.complete_ns = Some(e.time_ns);
                    op.result = e.value.clone();
                    op.outcome = match kind {
                        EventType::Ok => Outcome::Ok,
                        EventType::Fail => Outcome::Fail,
                        _ => Outcome::Info,
                    };
                }
            }
        }
    }
    ops
}

/// A stretch of time during which a fault held (or an instant, when `start_ns == end_ns`).
#[derive(Clone, Debug, PartialEq)]
pub struct FaultWindow {
    /// When it began.
    pub start_ns: u64,
    /// When it ended (the run's end if it never did).
    pub end_ns: u64,
    /// "partition", "crash", "pause", "clog", "clock_step", "clock_drift", "swizzle".
    pub kind: String,
    /// The servers it touched.
    pub nodes: Vec<usize>,
    /// A readable description.
    pub detail: String,
}

impl FaultWindow {
    /// A short label for the plots: `crash n2`, `partition`.
    pub fn label(&self) -> String {
        if self.nodes.is_empty() || self.kind == "partition" || self.kind == "swizzle" {
            self.kind.clone()
        } else {
            let ns: Vec<String> = self.nodes.iter().map(|n| format!("n{n}")).collect();
            format!("{} {}", self.kind, ns.join(","))
        }
    }
}

/// Pairs starts with ends: partition/heal (a partition ends at a heal or at the next
/// partition, which replaces it), crash/restart,
/// pause/resume and clog/unclog per node. Other actions are instants. A window still open at
/// the end of the run ends at `end_ns`.
pub fn fault_windows(log: &[FaultRecord], end_ns: u64) -> Vec<FaultWindow> {
    let mut out = Vec::new();
    let mut open_partitions: Vec<FaultWindow> = Vec::new();
    // (kind, node) -> open window
    let mut open: BTreeMap<(&'static str, usize), FaultWindow> = BTreeMap::new();
    let start_of = |a: &str| -> Option<&'static str> {
        match a {
            "crash" => Some("crash"),
            "pause" => Some("pause"),
            "clog" => Some("clog"),
            _ => None,
        }
    };
    let end_of = |a: &str| -> Option<&'static str> {
        match a {
            "restart" => Some("crash"),
            "resume" => Some("pause"),
            "unclog" => Some("clog"),
            _ => None,
        }
    };
    for f in log {
        let a = f.action.as_str();
        if a == "partition" {
            // A partition replaces the one before it (the engine heals the links first).
            for mut w in open_partitions.drain(..) {
                w.end_ns = f.time_ns;
                out.push(w);
            }
            open_partitions.push(FaultWindow {
                start_ns: f.time_ns,
                end_ns,
                kind: "partition".into(),
                nodes: f.nodes.clone(),
                detail: f.detail.clone(),
            });
        } else if a == "heal" {
            for mut w in open_partitions.drain(..) {
                w.end_ns = f.time_ns;
                out.push(w);
            }
        } else if let Some(kind) = start_of(a) {
            for &n in &f.nodes {
                open.entry((kind, n)).or_insert(FaultWindow {
                    start_ns: f.time_ns,
                    end_ns,
                    kind: kind.into(),
                    nodes: vec![n],
                    detail: f.detail.clone(),
                });
            }
        } else if let Some(kind) = end_of(a) {
            for &n in &f.nodes {
                if let Some(mut w) = open.remove(&(kind, n)) {
                    w.end_ns = f.time_ns;
                    out.push(w);
                }
            }
        } else if a == "quiet" || f.detail.starts_with("skipped") {
            // Not a fault: the start of the quiet period, or a scripted fault with no target.
        } else {
            out.push(FaultWindow {
                start_ns: f.time_ns,
                end_ns: f.time_ns,
                kind: a.to_string(),
                nodes: f.nodes.clone(),
                detail: f.detail.clone(),
            });
        }
    }
    out.extend(open_partitions);
    out.extend(open.into_values());
    out.sort_by(|a, b| (a.start_ns, &a.kind, &a.nodes).cmp(&(b.start_ns, &b.kind, &b.nodes)));
    out
}

/// The operations the linearizability checker could not place, read from its JSON report.
///
/// Accepted shapes (all fields optional, so a report of any other shape just highlights
/// nothing): sim-core's `CheckReport`, whose `parts[].failure.cannot_place[].event` are
/// 1-based event positions in `history`; or an object with one of the arrays `unplaced`,
/// `unplaced_ops` or
/// `non_linearizable_ops`, whose elements are operation indices (the i-th `invoke` of the
/// history, 0-based) or objects carrying such an index as `op` or `index`. Returns `None`
/// when no such list is present.
pub fn unplaced_ops(lin: Option<&serde_json::Value>, history: &History) -> Option<BTreeSet<usize>> {
    let lin = lin?;
    // sim-core's checker: parts[].failure.cannot_place[].event, 1-based positions in the
    // history's events, mapped here to operation indices.
    if let Some(parts) = lin.get("parts").and_then(|p| p.as_array()) {
        let op_of_event = op_index_of_events(history);
        return Some(
            parts
                .iter()
                .filter_map(|p| p.get("failure")?.get("cannot_place")?.as_array())
                .flatten()
                .filter_map(|o| o.get("event")?.as_u64())
                .filter_map(|e| {
                    op_of_event
                        .get((e as usize).checked_sub(1)?)
                        .copied()
                        .flatten()
                })
                .collect(),
        );
    }
    let list = ["unplaced", "unplaced_ops", "non_linearizable_ops"]
        .iter()
        .find_map(|k| lin.get(*k).and_then(|v| v.as_array()))?;
    Some(
        list.iter()
            .filter_map(|v| {
                v.as_u64()
                    .or_else(|| v.get("op").and_then(|x| x.as_u64()))
                    .or_else(|| v.get("index").and_then(|x| x.as_u64()))
                    .map(|x| x as usize)
            })
            .collect(),
    )
}

/// For each event of the history, the index of the operation it belongs to (the same
/// numbering as [`ops_of`]).
pub fn op_index_of_events(history: &History) -> Vec<Option<usize>> {
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut next = 0;
    history
        .events
        .iter()
        .map(|e| match e.kind {
            EventType::Invoke => {
                open.insert(e.process, next);
                next += 1;
                Some(next - 1)
            }
            _ => open.remove(&e.process),
        })
        .collect()
}

/// The operations the run's typed violations point at, read from their data, never from
/// their prose: `ops` (indices of invoke events in the history) map straight to operations;
/// a violation that names no operation but names client nodes points at the operations those
/// clients had open at the moment of the violation (a lock's stale write: the paused client's
/// pending operation, and the new holder's; the written value alone is ambiguous, since a lost
/// update writes the same value twice); failing that, at the operations (of the named clients,
/// or of all when it names none) whose argument or result (or the result's `wrote`, as locks
/// answer) is one of its `values`. `servers` and `clients` number the nodes as the engine
/// does (`View::client_of`: client node = servers + process % clients).
pub fn violation_ops(
    violations: &[Violation],
    history: &History,
    ops: &[Op],
    servers: usize,
    clients: usize,
) -> BTreeSet<usize> {
    let op_of_event = op_index_of_events(history);
    let mut out = BTreeSet::new();
    for v in violations {
        let direct: Vec<usize> = v
            .ops
            .iter()
            .filter_map(|e| op_of_event.get(*e).copied().flatten())
            .collect();
        if !direct.is_empty() {
            out.extend(direct);
            continue;
        }
        let node_of = |op: &Op| servers + (op.process % clients.max(1) as u64) as usize;
        let named: BTreeSet<usize> = v.nodes.iter().copied().filter(|n| *n >= servers).collect();
        // What the named clients were doing when the rule broke: their open operations.
        let open: Vec<usize> = ops
            .iter()
            .filter(|op| named.contains(&node_of(op)))
            .filter(|op| op.invoke_ns <= v.time_ns)
            .filter(|op| op.complete_ns.is_none_or(|c| c >= v.time_ns))
            .map(|op| op.index)
            .collect();
        if !open.is_empty() {
            out.extend(open);
            continue;
        }
        let of_named = |op: &&Op| named.is_empty() || named.contains(&node_of(op));
        out.extend(
            ops.iter()
                .filter(of_named)
                .filter(|op| v.values.iter().any(|val| carries(op, val)))
                .map(|op| op.index),
        );
    }
    out
}

/// Whether `op` carries `value`: as its argument, its result, or a field of an object result.
fn carries(op: &Op, value: &serde_json::Value) -> bool {
    if value.is_null() {
        return false;
    }
    op.arg == *value
        || op.result == *value
        || op
            .result
            .as_object()
            .is_some_and(|o| o.get("wrote") == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::HistoryEvent;

    fn ev(kind: EventType, process: u64, time_ns: u64) -> HistoryEvent {
        HistoryEvent {
            kind,
            process,
            time_ns,
            f: "write".into(),
            key: None,
            value: serde_json::json!(1),
        }
    }

    fn violation(time_ns: u64, nodes: Vec<usize>, ops: Vec<usize>, values: Vec<u64>) -> Violation {
        Violation {
            time_ns,
            source: "test".into(),
            kind: sim_core::ViolationKind::Safety,
            message: "value 7 op #0 (prose is not read)".into(),
            nodes,
            ops,
            values: values.into_iter().map(|v| serde_json::json!(v)).collect(),
            keys: vec![],
        }
    }

    #[test]
    fn violations_point_at_ops_by_their_typed_data() {
        // Two servers, two clients: process 0 is n2, process 1 is n3.
        let mut h = History::default();
        let mut at = |kind, process, time_ns, value: u64| {
            let mut e = ev(kind, process, time_ns);
            e.value = serde_json::json!(value);
            h.events.push(e);
        };
        at(EventType::Invoke, 0, 10, 5); // event 0, op 0
        at(EventType::Invoke, 1, 20, 7); // event 1, op 1
        at(EventType::Ok, 0, 30, 5); // event 2
        at(EventType::Invoke, 0, 40, 9); // event 3, op 2 (pending)
        let ops = ops_of(&h);
        let got = |v: Violation| violation_ops(&[v], &h, &ops, 2, 2);
        // Event indices of invokes map to their operations (a completion's index to its own).
        assert_eq!(got(violation(0, vec![], vec![3], vec![])), [2].into());
        assert_eq!(got(violation(0, vec![], vec![2], vec![])), [0].into());
        // Values pick the operations carrying them, restricted to the named clients.
        assert_eq!(got(violation(0, vec![], vec![], vec![7])), [1].into());
        assert!(got(violation(0, vec![2], vec![], vec![]))
            .iter()
            .all(|i| ops[*i].process == 0));
        // Named clients: their operations open at the violation's time, before any value.
        assert_eq!(got(violation(50, vec![0, 2], vec![], vec![5])), [2].into());
        assert_eq!(got(violation(25, vec![3], vec![], vec![99])), [1].into());
        // Nothing open: the value, among the named client's operations.
        assert_eq!(got(violation(35, vec![2], vec![], vec![5])), [0].into());
        // The message's prose ("value 7", "op #0") is never read.
        assert!(got(violation(0, vec![], vec![], vec![])).is_empty());
    }

    #[test]
    fn ops_pair_by_process_and_keep_pending() {
        let h = History {
            events: vec![
                ev(EventType::Invoke, 0, 10),
                ev(EventType::Invoke, 1, 20),
                ev(EventType::Ok, 1, 30),
                ev(EventType::Info, 0, 40),
                ev(EventType::Invoke, 2, 50),
            ],
        };
        let ops = ops_of(&h);
        assert_eq!(ops.len(), 3);
        assert_eq!(
            (ops[0].outcome, ops[0].complete_ns),
            (Outcome::Info, Some(40))
        );
        assert_eq!(
            (ops[1].outcome, ops[1].complete_ns),
            (Outcome::Ok, Some(30))
        );
        assert_eq!(ops[2].outcome, Outcome::Pending);
    }

    #[test]
    fn fault_windows_pair_starts_and_ends() {
        let r = |t, a: &str, n: Vec<usize>| FaultRecord {
            time_ns: t,
            action: a.into(),
            nodes: n,
            detail: String::new(),
        };
        let log = vec![
            r(1, "partition", vec![0, 1]),
            r(2, "crash", vec![3]),
            r(3, "clock_step", vec![2]),
            r(4, "heal", vec![]),
            r(5, "restart", vec![3]),
            r(6, "pause", vec![1]),
        ];
        let w = fault_windows(&log, 100);
        let got: Vec<(u64, u64, &str)> = w
            .iter()
            .map(|w| (w.start_ns, w.end_ns, w.kind.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 4, "partition"),
                (2, 5, "crash"),
                (3, 3, "clock_step"),
                (6, 100, "pause")
            ]
        );
    }

    #[test]
    fn a_partition_ends_where_the_next_replaces_it() {
        let r = |t, a: &str| FaultRecord {
            time_ns: t,
            action: a.into(),
            nodes: vec![0, 1],
            detail: String::new(),
        };
        let log = vec![
            r(0, "partition"),
            r(13, "partition"),
            r(14, "partition"),
            r(22, "heal"),
            r(30, "partition"),
        ];
        let w = fault_windows(&log, 100);
        let got: Vec<(u64, u64)> = w.iter().map(|w| (w.start_ns, w.end_ns)).collect();
        assert_eq!(got, vec![(0, 13), (13, 14), (14, 22), (30, 100)]);
    }

    #[test]
    fn unplaced_reads_indices_and_objects() {
        let v = serde_json::json!({"unplaced": [3, {"op": 5}, {"index": 7}, "x"]});
        assert_eq!(
            unplaced_ops(Some(&v), &History::default()),
            Some([3, 5, 7].into_iter().collect())
        );
        assert_eq!(
            unplaced_ops(
                Some(&serde_json::json!({"valid": true})),
                &History::default()
            ),
            None
        );
        assert_eq!(unplaced_ops(None, &History::default()), None);
    }
}
