//! Per-node state summaries for the report's step-through timeline.
//!
//! An algorithm describes a node's state in a few fields through
//! [`crate::Process::state_summary`] (role, term, log length, lock held, and a line of its own).
//! When the run keeps its trace, the engine asks after every callback of that node and keeps a
//! [`SummaryPoint`] each time the answer changes, tied to the index of the trace event that
//! caused the callback. Summaries are kept only, never hashed: asking for them cannot change a
//! run, and a run's hash does not depend on whether they were kept.

use std::fmt::Write as _;

use serde::Serialize;

use crate::process::NodeId;
use crate::time::Nanos;

/// A node's state in a few fields, as a student reads it beside the space-time diagram. Every
/// field is optional: an algorithm fills what it has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StateSummary {
    /// The node's role: "leader", "follower", "primary", "holder", ...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    /// The term, ballot, epoch or view the node is in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// How many entries its log holds (the last index, snapshots included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_len: Option<u64>,
    /// The lock it holds or grants, in words ("token 7", "held by n5 until 1.2 s").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    /// Anything else the algorithm wants shown ("commit 12, applied 11").
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// A node's summary from one trace event on, until its next point (or a crash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SummaryPoint {
    /// The index in the kept trace of the event whose callback produced this state (the
    /// start, delivery, timer or invocation).
    pub trace_index: usize,
    /// True time.
    pub time_ns: Nanos,
    /// The node.
    pub node: NodeId,
    /// Its state after that callback.
    pub summary: StateSummary,
}

/// What the timeline keeps beside the trace during a run: a summary point each time a node's
/// summary changes, and the messages a crash dropped unseen.
#[derive(Clone, Debug, Default)]
pub struct Summaries {
    /// Per node, its last point (an index into `points`), to compare the next summary with.
    last: Vec<Option<usize>>,
    points: Vec<SummaryPoint>,
    lost: Vec<(usize, u64)>,
}

/// Estimated heap bytes of one kept point: the point and its two strings.
fn point_bytes(s: &StateSummary) -> u64 {
    let strings = s.lock.as_ref().map_or(0, |l| l.capacity()) + s.detail.capacity();
    (std::mem::size_of::<SummaryPoint>() + strings) as u64
}

impl Summaries {
    /// Keeps `summary` as `node`'s state from trace event `trace_index` on, if it changed;
    /// returns the estimated bytes that took (0 when nothing was kept), which the engine
    /// counts against the kept trace's memory bound.
    pub fn record(
        &mut self,
        trace_index: usize,
        time_ns: Nanos,
        node: NodeId,
        summary: Option<StateSummary>,
    ) -> u64 {
        let Some(mut summary) = summary else {
            return 0;
        };
        if self.last.len() <= node {
            self.last.resize(node + 1, None);
        }
        if let Some(i) = self.last[node] {
            if self.points[i].summary == summary {
                return 0;
            }
        }
        // Summaries write into strings with room to spare; a kept one keeps only its text.
        summary.detail.shrink_to_fit();
        if let Some(l) = &mut summary.lock {
            l.shrink_to_fit();
        }
        let bytes = point_bytes(&summary);
        self.last[node] = Some(self.points.len());
        self.points.push(SummaryPoint {
            trace_index,
            time_ns,
            node,
            summary,
        });
        bytes
    }

    /// Notes that the crash logged as fault `fault_index` dropped the messages `ids`, which
    /// were held at its paused node: no trace event says so (the trace and its hash stay what
    /// they were), so the timeline learns here that they are no longer in flight. A message
    /// held twice (duplicated) is listed twice.
    pub fn lost_at_crash(&mut self, fault_index: usize, ids: impl Iterator<Item = u64>) {
        self.lost.extend(ids.map(|id| (fault_index, id)));
    }

    /// Takes the messages lost at crashes: (index in the fault log, message id), in order.
    pub fn take_lost(&mut self) -> Vec<(usize, u64)> {
        std::mem::take(&mut self.lost)
    }

    /// Forgets `node`'s last summary (it crashed), so that its next one is kept even if equal.
    pub fn forget(&mut self, node: NodeId) {
        if let Some(s) = self.last.get_mut(node) {
            *s = None;
        }
    }

    /// Takes the points kept, in trace order.
    pub fn take_points(&mut self) -> Vec<SummaryPoint> {
        self.last.clear();
        std::mem::take(&mut self.points)
    }
}

/// Writes at most `max` of `items` to `out`, each by `each`, separated by ", ", then
/// "+N more" for the rest of `len`: a summary names the first few of a list (transactions
/// open, locks held) and counts the others, so that it stays one short line however long the
/// list grows. Summaries are made after every callback of a run whose trace is kept, so they
/// write into one string rather than format a string per item.
pub fn write_few<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    len: usize,
    max: usize,
    mut each: impl FnMut(&mut String, T),
) {
    let mut n = 0;
    for item in items.into_iter().take(max) {
        if n > 0 {
            out.push_str(", ");
        }
        each(out, item);
        n += 1;
    }
    if len > n {
        if n > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "+{} more", len - n);
    }
}

/// [`write_few`] into a new string, each item by its `Display`.
pub fn first_few<T: std::fmt::Display>(
    items: impl IntoIterator<Item = T>,
    len: usize,
    max: usize,
) -> String {
    let mut out = String::new();
    write_few(&mut out, items, len, max, |o, t| {
        let _ = write!(o, "{t}");
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_list_names_its_first_few_and_counts_the_rest() {
        let names = |n: usize| (0..n).map(|i| format!("t{i}"));
        assert_eq!(first_few(names(0), 0, 3), "");
        assert_eq!(first_few(names(2), 2, 3), "t0, t1");
        assert_eq!(first_few(names(3), 3, 3), "t0, t1, t2");
        assert_eq!(first_few(names(7), 7, 3), "t0, t1, t2, +4 more");
        assert_eq!(first_few(names(0), 2, 0), "+2 more");
        let mut out = String::from("locks: ");
        write_few(&mut out, [3, 5, 8], 3, 2, |o, k| {
            o.push_str(&format!("k{k}"))
        });
        assert_eq!(out, "locks: k3, k5, +1 more");
    }

    fn s(term: u64) -> Option<StateSummary> {
        Some(StateSummary {
            term: Some(term),
            ..StateSummary::default()
        })
    }

    #[test]
    fn only_changes_are_kept_and_a_crash_forgets() {
        let mut k = Summaries::default();
        assert!(k.record(0, 0, 2, s(1)) >= std::mem::size_of::<SummaryPoint>() as u64);
        assert_eq!(k.record(3, 5, 2, s(1)), 0, "unchanged: nothing kept");
        assert_eq!(k.record(4, 6, 2, None), 0);
        k.record(7, 9, 2, s(2));
        k.forget(2);
        k.record(9, 12, 2, s(2));
        let p = k.take_points();
        let at: Vec<(usize, u64)> = p
            .iter()
            .map(|p| (p.trace_index, p.summary.term.unwrap()))
            .collect();
        assert_eq!(at, vec![(0, 1), (7, 2), (9, 2)]);
    }
}
