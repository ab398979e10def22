//! The family's checks, over each reporter's measurements as views change: the balance and
//! movement figures stated as limits that a run can break.

use std::collections::BTreeMap;

use sim_core::{Checker, Finding, History, LivenessPhase, NodeId, View};

use super::membership::{disagreeing, not_converged};
use super::node::{ChangeReport, Node};

/// Limits a placement must respect.
pub struct PlacementChecks {
    /// Largest allowed load over mean (per unit of weight), with two or more members.
    pub max_load_ratio: f64,
    /// Bounded loads only: largest allowed keys moved over the ideal.
    pub max_moved_ratio: f64,
    /// Whether the strategy is bounded loads (which may move more than the minimum).
    pub bounded: bool,
    /// Reports already judged, per server instance (reset when a server restarts).
    seen: BTreeMap<NodeId, usize>,
}

impl PlacementChecks {
    /// Checks with these limits.
    pub fn new(max_load_ratio: f64, max_moved_ratio: f64, bounded: bool) -> Self {
        PlacementChecks {
            max_load_ratio,
            max_moved_ratio,
            bounded,
            seen: BTreeMap::new(),
        }
    }

    fn judge(&self, node: NodeId, r: &ChangeReport) -> Option<String> {
        let members = |m: &[usize]| {
            m.iter()
                .map(|x| format!("n{x}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        if r.after.len() >= 2 && r.load.max_over_mean > self.max_load_ratio {
            return Some(format!(
                "load imbalance: with members {{{}}} (n{node}'s view) n{} holds {} keys, {:.3}x the mean, over the limit {:.3} (stddev/mean {:.3})",
                members(&r.after),
                r.max_node.0,
                r.max_node.1,
                r.load.max_over_mean,
                self.max_load_ratio,
                r.load.cv
            ));
        }
        if let Some(cap) = r.cap {
            if r.max_node.1 > cap {
                return Some(format!(
                    "bounded loads broken: n{} holds {} keys, over the capacity {cap}",
                    r.max_node.0, r.max_node.1
                ));
            }
        }
        let m = r.movement?;
        if !self.bounded && m.unnecessary > 0 {
            return Some(format!(
                "keys moved that did not have to: going from {{{}}} to {{{}}} moved {} of {} keys ({:.1}%, {:.2}x the ideal {:.1}%), {} of them between servers that stayed",
                members(&r.before),
                members(&r.after),
                m.moved,
                m.keys,
                100.0 * m.fraction(),
                m.over_ideal(),
                100.0 * m.ideal_fraction,
                m.unnecessary
            ));
        }
        if self.bounded && m.over_ideal() > self.max_moved_ratio {
            return Some(format!(
                "bounded loads moved too much: going from {{{}}} to {{{}}} moved {:.1}% of the keys, {:.2}x the ideal {:.1}% (limit {:.2}x)",
                members(&r.before),
                members(&r.after),
                100.0 * m.fraction(),
                m.over_ideal(),
                100.0 * m.ideal_fraction,
                self.max_moved_ratio
            ));
        }
        None
    }
}

impl Checker<Node> for PlacementChecks {
    fn name(&self) -> &'static str {
        "hashing-placement"
    }

    fn after_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<Finding> {
        let Some(Node::Server(s)) = view.node(node) else {
            return None;
        };
        let seen = self.seen.entry(node).or_insert(0);
        if s.reports.len() < *seen {
            // A restarted server starts a fresh list.
            *seen = 0;
        }
        let from = *seen;
        *seen = s.reports.len();
        s.reports[from..].iter().find_map(|r| {
            let msg = self.judge(node, r)?;
            let mut nodes = vec![node, r.max_node.0];
            nodes.extend(r.before.iter().chain(&r.after));
            nodes.sort_unstable();
            nodes.dedup();
            Some(Finding::new(msg).nodes(nodes))
        })
    }
}

/// The liveness phase's progress predicate: by the deadline every server and client sees as
/// members exactly the servers that are up and meant to be in the cluster (so keys route to
/// where they live again). The engine checks besides that operations complete.
#[derive(Default)]
pub struct ViewsConverge;

impl Checker<Node> for ViewsConverge {
    fn name(&self) -> &'static str {
        "hashing-views-converge"
    }

    fn at_liveness(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        let expected = view
            .servers()
            .filter(|(_, n)| matches!(n, Node::Server(s) if s.is_member()))
            .map(|(i, _)| i)
            .collect();
        let clients = view.servers_count()..view.servers_count() + view.clients_count();
        let views = view
            .servers()
            .chain(clients.filter_map(|c| view.node(c).map(|n| (c, n))))
            .map(|(i, n)| match n {
                Node::Server(s) => (i, s.view_members()),
                Node::Client(c) => (i, c.view_members()),
            });
        let wrong = disagreeing(&expected, views);
        if wrong.is_empty() {
            return Vec::new();
        }
        vec![not_converged(&expected, &wrong, phase)]
    }
}
