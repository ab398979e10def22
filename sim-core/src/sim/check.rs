//! What checkers see and return: the read-only [`View`], the [`Checker`] trait, and
//! [`Finding`], a failed check as data (the nodes, operations, values and keys it involves),
//! which the engine turns into a typed [`crate::result::Violation`]. Reports draw from that
//! data, never from the prose.

use crate::history::History;
use crate::process::{NodeId, Process};
pub use crate::result::ViolationKind;
use crate::time::Nanos;

/// A failed check: what went wrong in a sentence a person reads, and what it involves as data.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Finding {
    /// What went wrong, naming the nodes, operations and times involved.
    pub message: String,
    /// Safety (the default), liveness, assertion, ...
    pub kind: ViolationKind,
    /// Nodes involved.
    pub nodes: Vec<NodeId>,
    /// Operations involved: indices into the run's history events (their invoke events).
    pub ops: Vec<usize>,
    /// Values involved (a written value, a token, a ballot).
    pub values: Vec<serde_json::Value>,
    /// Keys involved.
    pub keys: Vec<String>,
}

impl Finding {
    /// A safety finding with nothing attached yet.
    pub fn new(message: impl Into<String>) -> Self {
        Finding {
            message: message.into(),
            ..Finding::default()
        }
    }

    /// A liveness finding: the system failed to make progress it had to make.
    pub fn liveness(message: impl Into<String>) -> Self {
        Finding::new(message).kind(ViolationKind::Liveness)
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: ViolationKind) -> Self {
        self.kind = kind;
        self
    }

    /// Attaches nodes.
    pub fn nodes(mut self, nodes: impl IntoIterator<Item = NodeId>) -> Self {
        self.nodes.extend(nodes);
        self
    }

    /// Attaches operations (indices of their invoke events in the history).
    pub fn ops(mut self, ops: impl IntoIterator<Item = usize>) -> Self {
        self.ops.extend(ops);
        self
    }

    /// Attaches values.
    pub fn values(mut self, values: impl IntoIterator<Item = serde_json::Value>) -> Self {
        self.values.extend(values);
        self
    }

    /// Attaches keys.
    pub fn keys(mut self, keys: impl IntoIterator<Item = String>) -> Self {
        self.keys.extend(keys);
        self
    }
}

impl From<String> for Finding {
    fn from(message: String) -> Self {
        Finding::new(message)
    }
}

impl From<&str> for Finding {
    fn from(message: &str) -> Self {
        Finding::new(message)
    }
}

/// The liveness phase: from the start of the quiet period (faults healed, crashed servers
/// restarted) to the deadline by which the system must have made progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LivenessPhase {
    /// When the quiet period began.
    pub start_ns: Nanos,
    /// When progress must have been made.
    pub deadline_ns: Nanos,
}

/// A read-only view of every node, for invariants.
pub struct View<'a, P: Process> {
    /// True time.
    pub now: Nanos,
    pub(crate) procs: &'a [Option<P>],
    pub(crate) paused: &'a [bool],
    pub(crate) servers_count: usize,
    pub(crate) clients_count: usize,
    pub(crate) liveness: Option<LivenessPhase>,
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
    /// Number of clients (nodes after the servers).
    pub fn clients_count(&self) -> usize {
        self.clients_count
    }
    /// The client node that ran a history process (a client continues under a fresh process
    /// id after an `info`, so several processes map to one client).
    pub fn client_of(&self, process: u64) -> NodeId {
        self.servers_count + (process % self.clients_count.max(1) as u64) as usize
    }
    /// The servers that are up, with their states, in index order.
    pub fn servers(&self) -> impl Iterator<Item = (NodeId, &P)> {
        self.procs[..self.servers_count]
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p)))
    }
    /// The liveness phase, once it has begun (and only when the scenario has one), so that
    /// `after_event` can note when progress happened.
    pub fn liveness(&self) -> Option<LivenessPhase> {
        self.liveness
    }
}

/// An invariant or end-of-run check over the global state, which the simulator can see whole.
pub trait Checker<P: Process> {
    /// The check's name, shown with its violations.
    fn name(&self) -> &'static str;
    /// After every event handled at `node`: a finding if the invariant is broken.
    fn after_event(&mut self, _view: &View<'_, P>, _node: NodeId) -> Option<Finding> {
        None
    }
    /// Once at the end, with the client history: what is broken.
    fn at_end(&mut self, _view: &View<'_, P>, _history: &History) -> Vec<Finding> {
        Vec::new()
    }
    /// Once at the liveness deadline (when the scenario has a liveness phase), with the history
    /// so far: the progress the algorithm had to make and did not (use [`Finding::liveness`]).
    fn at_liveness(
        &mut self,
        _view: &View<'_, P>,
        _phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        Vec::new()
    }
}
