//! Catch-up after a restart, measured the same way for every replicated log (Raft and
//! Multi-Paxos report it as `catch_up_ms`): from the first event of a server that was down
//! until it has applied as far as the furthest up server had applied at that moment.

use std::collections::BTreeMap;

use sim_core::time::Nanos;
use sim_core::{NodeId, Process, View};

/// Which servers were up after the previous event, and the catch-ups under way.
#[derive(Debug)]
pub struct CatchUp {
    up: Vec<bool>,
    /// Per server back up and behind: when it came back, and how far the others had applied.
    rejoin: BTreeMap<NodeId, (Nanos, u64)>,
}

impl CatchUp {
    /// The tracker for `servers_count` servers, all up.
    pub fn new(servers_count: usize) -> Self {
        CatchUp {
            up: vec![true; servers_count],
            rejoin: BTreeMap::new(),
        }
    }

    /// After an event at server `node`: `applied` reads a server's applied index (`None` for
    /// a node of another kind). Returns the catch-up time in ms when `node` has just caught
    /// up.
    pub fn after_event<P: Process>(
        &mut self,
        view: &View<'_, P>,
        node: NodeId,
        applied: impl Fn(&P) -> Option<u64>,
    ) -> Option<f64> {
        // A crash is no event at the crashed node: look at every server.
        for i in 0..view.servers_count() {
            if view.node(i).is_none() {
                self.up[i] = false;
            }
        }
        let mine = view.node(node).and_then(&applied)?;
        if !self.up[node] {
            self.up[node] = true;
            let target = view
                .servers()
                .filter_map(|(_, n)| applied(n))
                .max()
                .unwrap_or(0);
            if mine < target {
                self.rejoin.insert(node, (view.now, target));
            }
        }
        let &(since, target) = self.rejoin.get(&node)?;
        if mine < target {
            return None;
        }
        self.rejoin.remove(&node);
        Some((view.now - since) as f64 / 1e6)
    }
}
