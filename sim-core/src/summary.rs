//! Per-node state summaries for the report's step-through timeline.
//!
//! An algorithm describes a node's state in a few fields through
//! [`crate::Process::state_summary`] (role, term, log length, lock held, and a line of its own).
//! When the run keeps its trace, the engine asks after every callback of that node and keeps a
//! [`SummaryPoint`] each time the answer changes, tied to the index of the trace event that
//! caused the callback. Summaries are kept only, never hashed: asking for them cannot change a
//! run, and a run's hash does not depend on whether they were kept.

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

/// The summaries kept during a run: a point each time a node's summary changes.
#[derive(Clone, Debug, Default)]
pub struct Summaries {
    last: Vec<Option<StateSummary>>,
    points: Vec<SummaryPoint>,
}

impl Summaries {
    /// Keeps `summary` as `node`'s state from trace event `trace_index` on, if it changed.
    pub fn record(
        &mut self,
        trace_index: usize,
        time_ns: Nanos,
        node: NodeId,
        summary: Option<StateSummary>,
    ) {
        let Some(summary) = summary else {
            return;
        };
        if self.last.len() <= node {
            self.last.resize(node + 1, None);
        }
        if self.last[node].as_ref() == Some(&summary) {
            return;
        }
        self.last[node] = Some(summary.clone());
        self.points.push(SummaryPoint {
            trace_index,
            time_ns,
            node,
            summary,
        });
    }

    /// Forgets `node`'s last summary (it crashed), so that its next one is kept even if equal.
    pub fn forget(&mut self, node: NodeId) {
        if let Some(s) = self.last.get_mut(node) {
            *s = None;
        }
    }

    /// Takes the points kept, in trace order.
    pub fn take_points(&mut self) -> Vec<SummaryPoint> {
        std::mem::take(&mut self.points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(term: u64) -> Option<StateSummary> {
        Some(StateSummary {
            term: Some(term),
            ..StateSummary::default()
        })
    }

    #[test]
    fn only_changes_are_kept_and_a_crash_forgets() {
        let mut k = Summaries::default();
        k.record(0, 0, 2, s(1));
        k.record(3, 5, 2, s(1));
        k.record(4, 6, 2, None);
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
