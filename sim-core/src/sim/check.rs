//! What checkers see and return: the read-only [`View`] and the [`Checker`] trait.

use crate::history::History;
use crate::process::{NodeId, Process};
use crate::time::Nanos;

/// A read-only view of every node, for invariants.
pub struct View<'a, P: Process> {
    /// True time.
    pub now: Nanos,
    pub(crate) procs: &'a [Option<P>],
    pub(crate) paused: &'a [bool],
    pub(crate) servers_count: usize,
}

impl<P: Process> View<'_, P> {
    /// A node's state, or `None` when it is crashed.
    pub fn node(&self, id: NodeId) -> Option<&P> {
        self.procs[id].as_ref()
    }
    /// Whether a node is paused.
    pub fn is_paused(&self, id: NodeId) -> bool {
        self.paused[id]
    }
    /// Number of servers.
    pub fn servers_count(&self) -> usize {
        self.servers_count
    }
    /// The servers that are up, with their states, in index order.
    pub fn servers(&self) -> impl Iterator<Item = (NodeId, &P)> {
        self.procs[..self.servers_count]
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }
}

/// An invariant or end-of-run check over the global state, which the simulator can see whole.
pub trait Checker<P: Process> {
    /// The check's name, shown with its violations.
    fn name(&self) -> &'static str;
    /// After every event handled at `node`: an explanation if the invariant is broken.
    fn after_event(&mut self, _view: &View<'_, P>, _node: NodeId) -> Option<String> {
        None
    }
    /// Once at the end, with the client history: explanations of what is broken.
    fn at_end(&mut self, _view: &View<'_, P>, _history: &History) -> Vec<String> {
        Vec::new()
    }
}
