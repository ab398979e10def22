//! The sans-IO process interface: what an algorithm implements, and the context through which
//! it acts on the simulated world.

use crate::history::EventType;
use crate::rng::SimRng;
use crate::sim::{Finding, World};
use crate::storage::Storage;
use crate::time::Nanos;

/// A node's index: servers are `0..servers_count`, clients follow them.
pub type NodeId = usize;

/// A pending timer, for cancelling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerId(pub u64);

/// A message type: cloneable (the network may duplicate it) and printable in traces.
pub trait Message: Clone + std::fmt::Debug + 'static {
    /// A short name for traces, plots and the trace hash ("append_entries").
    fn label(&self) -> &'static str;
}

/// An operation the workload asks a client to perform.
#[derive(Clone, Debug, PartialEq)]
pub struct Op {
    /// The function: "read", "write", "cas", "add", ...
    pub f: String,
    /// The key, for keyed workloads.
    pub key: Option<String>,
    /// The argument (`null` for reads, `[from, to]` for cas).
    pub value: serde_json::Value,
}

/// A node's behaviour, as a state machine over callbacks. It acts only through the context.
pub trait Process: Sized + 'static {
    /// The messages nodes of this algorithm exchange.
    type Msg: Message;

    /// Called when the node starts, and again after each restart (on a fresh instance built by
    /// the factory; `ctx.is_restart()` tells which), with durable storage intact.
    fn on_start(&mut self, ctx: &mut Ctx<'_, Self::Msg>);

    /// Called when a message arrives.
    fn on_message(&mut self, ctx: &mut Ctx<'_, Self::Msg>, from: NodeId, msg: Self::Msg);

    /// Called when a timer set with [`Ctx::set_timer`] fires.
    fn on_timer(&mut self, ctx: &mut Ctx<'_, Self::Msg>, timer: TimerId, tag: u64);

    /// Clients only: the workload asks for an operation. The client later calls
    /// [`Ctx::complete`] exactly once for it.
    fn on_invoke(&mut self, _ctx: &mut Ctx<'_, Self::Msg>, _op: Op) {}

    /// Whether this node holds `role` ("leader"), with a rank to break ties (the term): a
    /// fault that names a role picks the up server with the highest rank.
    fn role_rank(&self, _role: &str) -> Option<u64> {
        None
    }

    /// This node's state in a few fields for the report's step-through timeline (role, term,
    /// log length, lock held, a line of the algorithm's own); `None` leaves the report to what
    /// the trace shows (up, crashed, paused, the operation a client has open). Asked after
    /// every callback when the trace is kept, never otherwise; it must not change the node.
    fn state_summary(&self) -> Option<crate::summary::StateSummary> {
        None
    }
}

/// The world as one node sees it during a callback.
pub struct Ctx<'a, M: Message> {
    pub(crate) world: &'a mut World<M>,
    pub(crate) node: NodeId,
    pub(crate) restart: bool,
}

impl<M: Message> Ctx<'_, M> {
    /// This node's index.
    #[inline]
    pub fn id(&self) -> NodeId {
        self.node
    }

    /// Number of servers (they are nodes `0..servers_count`).
    #[inline]
    pub fn servers_count(&self) -> usize {
        self.world.servers_count
    }

    /// Number of clients (they are nodes `servers_count..`).
    #[inline]
    pub fn clients_count(&self) -> usize {
        self.world.clients_count
    }

    /// Whether this start is a restart after a crash.
    pub fn is_restart(&self) -> bool {
        self.restart
    }

    /// This node's local clock reading.
    #[inline]
    pub fn now_local(&self) -> Nanos {
        self.world.clocks[self.node].local(self.world.now)
    }

    /// This node's monotonic clock reading (like `CLOCK_MONOTONIC`): it runs at the local
    /// clock's rate, drift included, and keeps running while the node is paused, but clock
    /// steps do not move it. For measuring intervals such as leases.
    #[inline]
    pub fn now_monotonic(&self) -> Nanos {
        self.world.clocks[self.node].monotonic(self.world.now)
    }

    /// Sends a message; the network decides its fate.
    #[inline]
    pub fn send(&mut self, to: NodeId, msg: M) {
        self.world.send(self.node, to, msg);
    }

    /// Sends a copy of `msg` to every other server.
    pub fn send_to_servers(&mut self, msg: &M) {
        for to in 0..self.world.servers_count {
            if to != self.node {
                self.world.send(self.node, to, msg.clone());
            }
        }
    }

    /// Sets a timer that fires after `after_local` of this node's clock; `tag` comes back in
    /// [`Process::on_timer`].
    #[inline]
    pub fn set_timer(&mut self, after_local: Nanos, tag: u64) -> TimerId {
        self.world.set_timer(self.node, after_local, tag)
    }

    /// Cancels a pending timer; cancelling a fired or unknown timer does nothing.
    #[inline]
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.world.cancelled_timers.insert(id.0);
    }

    /// This node's own random stream.
    #[inline]
    pub fn rng(&mut self) -> &mut SimRng {
        &mut self.world.node_rngs[self.node]
    }

    /// This node's durable storage.
    #[inline]
    pub fn storage(&mut self) -> &mut Storage {
        &mut self.world.storage[self.node]
    }

    /// Clients only: completes the current operation with `ok`, `fail` or `info` and the
    /// result value. The engine records it in the history and schedules the next operation.
    pub fn complete(&mut self, outcome: EventType, value: serde_json::Value) {
        self.world.complete(self.node, outcome, value);
    }

    /// Adds to a counter metric.
    #[inline]
    pub fn count(&mut self, name: &'static str, by: f64) {
        self.world.metrics.count(name, by);
    }

    /// Records one sample of a distribution metric (a latency, a size).
    pub fn observe(&mut self, name: &'static str, value: f64) {
        self.world.metrics.observe(name, value);
    }

    /// Whether this run keeps its trace, which it does when a report (or a trace file) is
    /// wanted: a series only a report draws, and costly on every run, is recorded only then.
    /// Series never reach the trace hash, so a run's hash does not depend on this.
    #[inline]
    pub fn keeps_trace(&self) -> bool {
        self.world.trace.keeps()
    }

    /// Records a point of a per-node time series (a term, a holder) for reports.
    pub fn series(&mut self, name: &'static str, value: f64) {
        let now = self.world.now;
        self.world.metrics.series(name, now, self.node, value);
    }

    /// Reports a safety violation that the node itself detected.
    pub fn violation(&mut self, message: String) {
        self.report(Finding::new(message));
    }

    /// Reports a violation the node itself detected, with the nodes, operations and values it
    /// involves (this node is added to the nodes).
    pub fn report(&mut self, finding: Finding) {
        let mut finding = finding;
        if !finding.nodes.contains(&self.node) {
            finding.nodes.insert(0, self.node);
        }
        self.world
            .report_violation(format!("n{}", self.node), finding);
    }

    /// Adds a note to the trace (kept only when tracing is on).
    pub fn note(&mut self, text: impl FnOnce() -> String) {
        if self.world.trace.keeps() {
            let now = self.world.now;
            self.world.trace.note(now, self.node, text());
        }
    }
}
