//! The engine: a single-threaded discrete-event loop over virtual time.
//!
//! Events are ordered by (time, insertion sequence), so ties break the same way every run. The
//! loop owns the processes and the [`World`] (network, clocks, storage, randomness, history,
//! metrics, trace); a process acts only through its [`Ctx`] during its own callback.
//!
//! Invariants at this boundary: nothing observable depends on wall time, thread scheduling,
//! hash iteration order, addresses or the environment; every random draw comes from a stream
//! derived from the seed ([`crate::rng`]); a crashed node has no process instance and no live
//! timers; a paused node runs nothing until it resumes.

mod asserts;
mod bites;
mod check;
mod config;
mod finish;
mod inject;
mod liveness;
mod nemesis;
mod partition;
mod queue;
mod workload;
mod world;

pub use check::{Checker, Finding, LivenessPhase, View};
pub use config::{RunOptions, SimConfig};
use nemesis::exp_draw;
use queue::{Event, QueueKey};
use workload::WorkloadGen;
pub use world::World;
use world::{ClientState, NetStats};

use std::collections::{BTreeMap, BinaryHeap, HashSet};

use rand::Rng;

use crate::clock::Clock;
use crate::faults::FaultAction;
use crate::history::{EventType, History, HistoryEvent};
use crate::metrics::Metrics;
use crate::network::Links;
use crate::process::{Ctx, Message, NodeId, Process, TimerId};
use crate::result::{RunResult, ViolationKind};
use crate::rng::{stream, Stream};
use crate::scenario::{Scenario, ScenarioError};
use crate::storage::Storage;
use crate::time::{fmt_ns, Nanos};
use crate::trace::{Trace, TraceKind};

/// What a factory is told about the node it builds.
#[derive(Clone, Copy, Debug)]
pub struct NodeInfo {
    /// The node's index.
    pub id: NodeId,
    /// Number of servers.
    pub servers_count: usize,
    /// Number of clients.
    pub clients_count: usize,
    /// Whether this node is a client.
    pub is_client: bool,
}

/// One simulation: processes of type `P` in a [`World`].
pub struct Sim<P: Process> {
    world: World<P::Msg>,
    procs: Vec<Option<P>>,
    factory: Box<dyn FnMut(&NodeInfo) -> P>,
    checkers: Vec<Box<dyn Checker<P>>>,
    cfg: SimConfig,
    events: u64,
    asserts: Vec<asserts::AssertState>,
    /// Whether any temporal assertion needs watching after each event.
    watch: bool,
}

impl<P: Process> Sim<P> {
    /// Builds a simulation; `factory` makes a node's process at start and at each restart.
    pub fn new(cfg: SimConfig, factory: impl FnMut(&NodeInfo) -> P + 'static) -> Self {
        let n = cfg.nodes_count();
        let seed = cfg.seed;
        let mut clock_rng = stream(seed, Stream::Clocks);
        let clocks_cfg = &cfg.scenario.clocks;
        let mut clocks: Vec<Clock> = (0..n)
            .map(|i| {
                if i >= cfg.servers_count {
                    return Clock::new(0, 0.0);
                }
                let om = clocks_cfg.offset_max.0 as i64;
                let offset = if om > 0 {
                    clock_rng.random_range(-om..=om)
                } else {
                    0
                };
                let dm = clocks_cfg.drift_max.0;
                let drift = if dm > 0.0 {
                    clock_rng.random_range(-dm..=dm)
                } else {
                    0.0
                };
                Clock::new(offset, drift)
            })
            .collect();
        for nc in &clocks_cfg.node {
            if nc.node.0 < n {
                clocks[nc.node.0] = Clock::new(nc.offset.0, nc.drift.0);
            }
        }
        let world = World {
            now: 0,
            seq: 0,
            queue: BinaryHeap::with_capacity(1024),
            slab: Vec::with_capacity(1024),
            free: Vec::new(),
            servers_count: cfg.servers_count,
            clients_count: cfg.workload.clients,
            clocks,
            storage: (0..n).map(|_| Storage::default()).collect(),
            node_rngs: (0..n).map(|i| stream(seed, Stream::Node(i))).collect(),
            net_rng: stream(seed, Stream::Network),
            fault_rng: stream(seed, Stream::Faults),
            workload_rng: stream(seed, Stream::Workload),
            net: cfg.network.clone(),
            links: Links::new(n),
            up: vec![false; n],
            paused: vec![false; n],
            epoch: vec![0; n],
            held_paused: (0..n).map(|_| Vec::new()).collect(),
            held_clog: Vec::new(),
            cancelled_timers: HashSet::new(),
            next_timer: 0,
            next_msg: 0,
            history: Vec::new(),
            clients: (0..cfg.workload.clients)
                .map(|i| ClientState {
                    process: i as u64,
                    current: None,
                    done: 0,
                })
                .collect(),
            workload: WorkloadGen::new(cfg.workload.clone()),
            accepting_ops: true,
            nemesis_on: cfg.nemesis.is_some(),
            metrics: Metrics::default(),
            summaries: Default::default(),
            trace: Trace::with_bytes_max(
                cfg.options.keep_trace,
                cfg.options
                    .trace_bytes_max
                    .unwrap_or(crate::trace::TRACE_BYTES_MAX_DEFAULT),
            ),
            violations: Vec::new(),
            fault_log: Vec::new(),
            applied: Vec::new(),
            coverage: BTreeMap::new(),
            partition_label: None,
            partition_gen: 0,
            stats: NetStats::default(),
            liveness: None,
            quiet_started: false,
            warnings: Vec::new(),
            bites: bites::Bites::new(cfg.scenario.faults.len(), n),
        };
        Sim {
            world,
            procs: (0..n).map(|_| None).collect(),
            factory: Box::new(factory),
            checkers: Vec::new(),
            asserts: asserts::AssertState::all(&cfg.scenario, cfg.duration_ns),
            watch: cfg.scenario.asserts.iter().any(|a| a.condition().is_some()),
            cfg,
            events: 0,
        }
    }

    /// Adds an invariant or end check.
    pub fn add_checker(&mut self, checker: impl Checker<P> + 'static) {
        self.checkers.push(Box::new(checker));
    }

    /// The resolved configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    fn info(&self, id: NodeId) -> NodeInfo {
        NodeInfo {
            id,
            servers_count: self.world.servers_count,
            clients_count: self.world.clients_count,
            is_client: id >= self.world.servers_count,
        }
    }

    fn schedule_initial(&mut self) {
        let n = self.procs.len();
        for i in 0..n {
            self.world.push(0, Event::Start(i));
        }
        if !self.world.workload.mix.is_empty() {
            let start = self.cfg.workload.start.0;
            for c in 0..self.world.clients_count {
                let jitter = self.world.workload.think(&mut self.world.workload_rng);
                self.world
                    .push(start + jitter, Event::Invoke(self.world.servers_count + c));
            }
        }
        let script = &self.cfg.scenario.faults;
        let mut order: Vec<usize> = (0..script.len()).collect();
        order.sort_by_key(|i| script[*i].at);
        for i in order {
            self.world.push(script[i].at.0 .0, Event::Scripted(i));
        }
        if let Some(nem) = &self.cfg.nemesis {
            if !nem.kinds.is_empty() {
                let gap = exp_draw(&mut self.world.fault_rng, nem.interval.0);
                self.world.push(nem.start.0 + gap, Event::NemesisTick);
            }
        }
        if self.cfg.quiet_ns < self.cfg.duration_ns {
            self.world.push(self.cfg.quiet_ns, Event::Quiet);
        }
        self.schedule_asserts();
    }

    /// Runs to the end and judges the run.
    pub fn run(mut self) -> RunResult {
        self.schedule_initial();
        let duration = self.cfg.duration_ns;
        let mut unknown_reason = None;
        let after = self.cfg.options.run_after_violation_ns;
        while let Some(t) = self.world.peek_time() {
            if t > duration {
                break;
            }
            if let (Some(after), Some(v)) = (after, self.world.violations.first()) {
                if t > v.time_ns.saturating_add(after) {
                    break;
                }
            }
            if self.events >= self.cfg.max_events {
                unknown_reason = Some(format!(
                    "the run hit its budget of {} events at {}; raise max_events or shorten the run",
                    self.cfg.max_events,
                    fmt_ns(self.world.now)
                ));
                break;
            }
            let (time, ev) = self.world.pop().expect("peeked");
            self.world.now = time;
            self.events += 1;
            self.dispatch(ev);
            if let Some(why) = self.world.trace.full() {
                unknown_reason = Some(why.to_string());
                break;
            }
            if self.watch {
                self.watch_asserts();
            }
            if !self.world.violations.is_empty()
                && !self.cfg.options.continue_after_violation
                && after.is_none()
            {
                break;
            }
        }
        if self.world.violations.is_empty() || self.cfg.options.continue_after_violation {
            self.world.now = self.world.now.max(if unknown_reason.is_none() {
                duration
            } else {
                0
            });
        }
        self.finish(unknown_reason)
    }

    fn dispatch(&mut self, ev: Event<P::Msg>) {
        match ev {
            Event::Start(node) => self.start_node(node, false),
            Event::Deliver { from, to, msg, id } => self.deliver(from, to, msg, id),
            Event::Timer {
                node,
                epoch,
                id,
                tag,
            } => {
                if epoch != self.world.epoch[node] || !self.world.up[node] {
                    return;
                }
                if self.world.cancelled_timers.remove(&id) {
                    return;
                }
                if self.world.paused[node] {
                    self.world.held_paused[node].push(Event::Timer {
                        node,
                        epoch,
                        id,
                        tag,
                    });
                    self.world.stats.held_pause += 1;
                    self.world.bites.paused(node);
                    return;
                }
                self.world.trace.record(
                    self.world.now,
                    TraceKind::Timer,
                    node,
                    None,
                    "timer",
                    Some(tag),
                );
                self.call(node, |p, ctx| p.on_timer(ctx, TimerId(id), tag));
            }
            Event::Invoke(client) if self.world.paused[client] => {
                // A paused client does nothing, not even start its next operation.
                self.world.held_paused[client].push(Event::Invoke(client));
            }
            Event::Invoke(client) => self.invoke(client),
            Event::Fault(action) => {
                // A fault the nemesis scheduled earlier (a swizzle's later clogs) must not
                // strike once the quiet period has healed everything; undos still run.
                if self.world.quiet_started && action.harms() {
                    return;
                }
                self.apply_fault(action, false)
            }
            Event::Scripted(i) => {
                let action = self.cfg.scenario.faults[i].action.clone();
                self.world.bites.current = Some(i);
                self.apply_fault(action, true);
                self.world.bites.current = None;
            }
            Event::HealIf(gen) => {
                if gen == self.world.partition_gen && self.world.links.any_cut() {
                    self.heal("the partition's time is up");
                }
            }
            Event::DriftReset(node, drift) => {
                self.set_drift(node, drift, "back to");
                let at = self.world.now;
                self.world.record_applied(
                    at,
                    FaultAction::ClockDrift {
                        node: crate::faults::NodeRef::Index(node),
                        drift: crate::scenario::Drift(drift),
                    },
                );
            }
            Event::NemesisTick => self.nemesis_tick(),
            Event::Quiet => self.quiet(),
            Event::LivenessDeadline => self.liveness_deadline(),
            Event::AssertDeadline(i) => self.assert_deadline(i),
        }
    }

    fn call(&mut self, node: NodeId, f: impl FnOnce(&mut P, &mut Ctx<'_, P::Msg>)) {
        let Some(p) = self.procs[node].as_mut() else {
            return;
        };
        let mut ctx = Ctx {
            world: &mut self.world,
            node,
            restart: false,
        };
        f(p, &mut ctx);
        summarize(&mut self.world, node, p);
        self.run_checkers(node);
    }

    fn run_checkers(&mut self, node: NodeId) {
        if self.checkers.is_empty() {
            return;
        }
        let view = view_of(&self.procs, &self.world);
        let mut found = Vec::new();
        for c in &mut self.checkers {
            if let Some(msg) = c.after_event(&view, node) {
                found.push((c.name().to_string(), msg));
            }
        }
        for (name, msg) in found {
            self.world.report_violation(name, msg);
        }
    }

    fn start_node(&mut self, node: NodeId, restart: bool) {
        let info = self.info(node);
        let mut p = (self.factory)(&info);
        self.world.up[node] = true;
        self.world.trace.record(
            self.world.now,
            TraceKind::Start,
            node,
            None,
            if restart { "restart" } else { "start" },
            None,
        );
        let mut ctx = Ctx {
            world: &mut self.world,
            node,
            restart,
        };
        p.on_start(&mut ctx);
        summarize(&mut self.world, node, &p);
        self.procs[node] = Some(p);
        self.run_checkers(node);
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: P::Msg, id: u64) {
        let w = &mut self.world;
        if w.links.is_cut(from, to) {
            w.drop_cut(from, to, msg.label(), id);
            return;
        }
        if w.links.is_clogged(from) || w.links.is_clogged(to) {
            w.stats.held_clog += 1;
            w.cover_messages("clog", 1);
            w.bites.clogged(from, to);
            w.held_clog.push((from, to, msg, id));
            return;
        }
        if !w.up[to] {
            w.stats.dropped_down += 1;
            w.cover_messages("crash", 1);
            w.bites.down(to);
            w.trace.record(
                w.now,
                TraceKind::DropDown,
                from,
                Some(to),
                msg.label(),
                Some(id),
            );
            return;
        }
        if w.paused[to] {
            w.stats.held_pause += 1;
            w.cover_messages("pause", 1);
            w.bites.paused(to);
            w.held_paused[to].push(Event::Deliver { from, to, msg, id });
            return;
        }
        w.stats.delivered += 1;
        w.trace.record(
            w.now,
            TraceKind::Deliver,
            to,
            Some(from),
            msg.label(),
            Some(id),
        );
        self.call(to, |p, ctx| p.on_message(ctx, from, msg));
    }

    fn invoke(&mut self, client: NodeId) {
        let w = &mut self.world;
        if !w.accepting_ops {
            return;
        }
        let ci = client - w.servers_count;
        if w.clients[ci].current.is_some() {
            return;
        }
        let op = w.workload.next(&mut w.workload_rng);
        w.history.push(HistoryEvent {
            kind: EventType::Invoke,
            process: w.clients[ci].process,
            time_ns: w.now,
            f: op.f.clone(),
            key: op.key.clone(),
            value: op.value.clone(),
        });
        w.clients[ci].current = Some((op.clone(), w.now));
        w.metrics.count("ops.invoked", 1.0);
        w.trace
            .record(w.now, TraceKind::Invoke, client, None, &op.f, None);
        self.call(client, |p, ctx| p.on_invoke(ctx, op));
    }
}

/// Parses a scenario's algorithm parameters or returns a located error; a convenience for
/// algorithm modules.
pub fn params_of<T: serde::de::DeserializeOwned + Default>(
    sc: &Scenario,
) -> Result<T, ScenarioError> {
    sc.params::<T>()
}

/// Keeps `node`'s state summary after a callback, when the trace is kept: tied to the event
/// that caused the callback, recorded just before it (start, delivery, timer, invocation).
fn summarize<P: Process>(world: &mut World<P::Msg>, node: NodeId, p: &P) {
    if !world.trace.keeps() || world.trace.full().is_some() {
        return;
    }
    let at = world.trace.kept_len().saturating_sub(1);
    let bytes = world
        .summaries
        .record(at, world.now, node, p.state_summary());
    if bytes > 0 {
        world.trace.charge(bytes, world.now, node);
    }
}

/// The read-only view checkers get of every node.
fn view_of<'a, P: Process>(procs: &'a [Option<P>], world: &'a World<P::Msg>) -> View<'a, P> {
    View {
        now: world.now,
        procs,
        paused: &world.paused,
        servers_count: world.servers_count,
        clients_count: world.clients_count,
        liveness: world.liveness,
    }
}
