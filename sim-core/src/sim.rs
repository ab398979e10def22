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

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use rand::seq::SliceRandom;
use rand::Rng;

use crate::clock::Clock;
use crate::faults::{FaultAction, NemesisConfig, NemesisKind, NodeRef, PartitionKind};
use crate::history::{EventType, History, HistoryEvent};
use crate::metrics::Metrics;
use crate::network::{self, Links, NetworkConfig, Probability, SendFate};
use crate::process::{Ctx, Message, NodeId, Op, Process, TimerId};
use crate::result::{FaultCounts, FaultRecord, RunResult, Verdict, Violation};
use crate::rng::{stream, SimRng, Stream};
use crate::scenario::{Expect, Scenario, ScenarioError, WorkloadConfig};
use crate::storage::Storage;
use crate::time::{fmt_ns, fmt_signed_ns, Duration, Nanos, MS};
use crate::trace::{Trace, TraceKind};

/// How a run is carried out (not what it simulates).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Keep every trace event (for `--trace FILE` and reports).
    pub keep_trace: bool,
    /// Let the seed draw the fault mix and cluster size within the scenario's bounds.
    pub swarm: bool,
    /// Keep running after the first violation (by default the run stops there).
    pub continue_after_violation: bool,
}

/// The resolved configuration of one run: the scenario, possibly changed by swarm testing.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The scenario's name.
    pub name: String,
    /// The scenario file.
    pub path: String,
    /// The algorithm.
    pub algorithm: String,
    /// The seed.
    pub seed: u64,
    /// Number of servers.
    pub servers_count: usize,
    /// End of the run.
    pub duration_ns: Nanos,
    /// Start of the quiet period.
    pub quiet_ns: Nanos,
    /// Whether the quiet period restarts crashed nodes.
    pub quiet_restarts: bool,
    /// Event budget.
    pub max_events: u64,
    /// Network behaviour.
    pub network: NetworkConfig,
    /// Clients.
    pub workload: WorkloadConfig,
    /// Random faults.
    pub nemesis: Option<NemesisConfig>,
    /// What the scenario expects.
    pub expect: Expect,
    /// Swarm: the drawn configuration, readable.
    pub derived: Option<String>,
    /// The scenario as loaded.
    pub scenario: Scenario,
    /// Run options.
    pub options: RunOptions,
}

impl SimConfig {
    /// Resolves a scenario for one seed; with `options.swarm` the seed also draws the fault
    /// mix and the cluster size.
    pub fn new(sc: &Scenario, seed: u64, options: &RunOptions) -> SimConfig {
        let mut cfg = SimConfig {
            name: sc.name.clone(),
            path: sc.path().to_string(),
            algorithm: sc.algorithm.clone(),
            seed,
            servers_count: sc.nodes,
            duration_ns: sc.duration.0,
            quiet_ns: sc.duration.0 - sc.quiet.0,
            quiet_restarts: sc.quiet_restarts,
            max_events: sc.max_events,
            network: sc.network.clone(),
            workload: sc.workload.clone(),
            nemesis: sc.nemesis.clone(),
            expect: sc.expect,
            derived: None,
            scenario: sc.clone(),
            options: options.clone(),
        };
        if options.swarm {
            cfg.draw_swarm();
        }
        cfg
    }

    /// Swarm testing (as in TigerBeetle's VOPR): each seed switches fault kinds on and off and
    /// scales their rates, so that different seeds explore different mixes.
    fn draw_swarm(&mut self) {
        let mut rng = stream(self.seed, Stream::Swarm);
        if let Some([lo, hi]) = self.scenario.swarm.nodes {
            self.servers_count = rng.random_range(lo..=hi);
        }
        let base = self.nemesis.clone().unwrap_or(NemesisConfig {
            kinds: NemesisKind::ALL.to_vec(),
            interval: Duration(2 * crate::time::SEC),
            duration: Duration(crate::time::SEC),
            start: Duration(0),
            clock_step_max: Duration(crate::time::SEC),
            drift_max: crate::scenario::Drift(0.05),
        });
        let offered = if base.kinds.is_empty() {
            NemesisKind::ALL.to_vec()
        } else {
            base.kinds.clone()
        };
        let mut kinds: Vec<NemesisKind> = offered
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.5))
            .collect();
        if kinds.is_empty() {
            kinds.push(offered[rng.random_range(0..offered.len())]);
        }
        let scale = |rng: &mut SimRng, d: Duration| {
            Duration(((d.0 as f64) * 2f64.powf(rng.random_range(-2.0..=2.0))) as Nanos)
        };
        let interval = scale(&mut rng, base.interval);
        let duration = scale(&mut rng, base.duration);
        let loss = (self.network.loss.0 * rng.random_range(0.0..=2.0)).min(1.0);
        self.network.loss = Probability(loss);
        let names: Vec<&str> = kinds.iter().map(|k| kind_name(*k)).collect();
        self.derived = Some(format!(
            "nodes={} nemesis=[{}] interval={} fault_duration={} loss={:.4}",
            self.servers_count,
            names.join(","),
            fmt_ns(interval.0),
            fmt_ns(duration.0),
            loss
        ));
        self.nemesis = Some(NemesisConfig {
            kinds,
            interval,
            duration,
            ..base
        });
    }

    /// Total nodes: servers then clients.
    pub fn nodes_count(&self) -> usize {
        self.servers_count + self.workload.clients
    }
}

fn kind_name(k: NemesisKind) -> &'static str {
    match k {
        NemesisKind::Partition => "partition",
        NemesisKind::Crash => "crash",
        NemesisKind::Pause => "pause",
        NemesisKind::Clock => "clock",
        NemesisKind::Clog => "clog",
        NemesisKind::Swizzle => "swizzle",
    }
}

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

/// A read-only view of every node, for invariants.
pub struct View<'a, P: Process> {
    /// True time.
    pub now: Nanos,
    procs: &'a [Option<P>],
    paused: &'a [bool],
    servers_count: usize,
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

#[derive(Clone, Copy, PartialEq, Eq)]
struct QueueKey {
    time: Nanos,
    seq: u64,
    slot: u32,
}

impl Ord for QueueKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}
impl PartialOrd for QueueKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

enum Event<M> {
    Start(NodeId),
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: M,
        id: u64,
    },
    Timer {
        node: NodeId,
        epoch: u32,
        id: u64,
        tag: u64,
    },
    Invoke(NodeId),
    Fault(FaultAction),
    HealIf(u64),
    DriftReset(NodeId, f64),
    NemesisTick,
    Quiet,
}

struct ClientState {
    process: u64,
    current: Option<(Op, Nanos)>,
    done: u64,
}

/// Hot counters kept as plain integers; they become metrics at the end.
#[derive(Default)]
struct NetStats {
    sent: u64,
    delivered: u64,
    dropped_cut: u64,
    dropped_loss: u64,
    dropped_down: u64,
    duplicated: u64,
    reordered: u64,
    held_clog: u64,
    held_pause: u64,
}

/// Everything but the processes: what a [`Ctx`] reaches into.
pub struct World<M: Message> {
    pub(crate) now: Nanos,
    seq: u64,
    queue: BinaryHeap<Reverse<QueueKey>>,
    slab: Vec<Option<Event<M>>>,
    free: Vec<u32>,
    pub(crate) servers_count: usize,
    pub(crate) clients_count: usize,
    pub(crate) clocks: Vec<Clock>,
    pub(crate) storage: Vec<Storage>,
    pub(crate) node_rngs: Vec<SimRng>,
    net_rng: SimRng,
    fault_rng: SimRng,
    workload_rng: SimRng,
    net: NetworkConfig,
    links: Links,
    up: Vec<bool>,
    paused: Vec<bool>,
    epoch: Vec<u32>,
    held_paused: Vec<Vec<Event<M>>>,
    held_clog: Vec<(NodeId, NodeId, M, u64)>,
    pub(crate) cancelled_timers: HashSet<u64>,
    next_timer: u64,
    next_msg: u64,
    history: Vec<HistoryEvent>,
    clients: Vec<ClientState>,
    workload: WorkloadGen,
    accepting_ops: bool,
    nemesis_on: bool,
    pub(crate) metrics: Metrics,
    pub(crate) trace: Trace,
    violations: Vec<Violation>,
    fault_log: Vec<FaultRecord>,
    coverage: BTreeMap<String, FaultCounts>,
    partition_label: Option<String>,
    partition_gen: u64,
    stats: NetStats,
}

impl<M: Message> World<M> {
    fn push(&mut self, time: Nanos, ev: Event<M>) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.queue.push(Reverse(QueueKey {
            time,
            seq: self.seq,
            slot,
        }));
    }

    fn pop(&mut self) -> Option<(Nanos, Event<M>)> {
        let Reverse(k) = self.queue.pop()?;
        let ev = self.slab[k.slot as usize]
            .take()
            .expect("queued slot holds an event");
        self.free.push(k.slot);
        Some((k.time, ev))
    }

    fn peek_time(&self) -> Option<Nanos> {
        self.queue.peek().map(|Reverse(k)| k.time)
    }

    pub(crate) fn send(&mut self, from: NodeId, to: NodeId, msg: M) {
        assert!(
            to < self.up.len(),
            "n{from} sent {} to n{to}, which does not exist ({} nodes)",
            msg.label(),
            self.up.len()
        );
        self.next_msg += 1;
        let id = self.next_msg;
        self.stats.sent += 1;
        self.trace.record(
            self.now,
            TraceKind::Send,
            from,
            Some(to),
            msg.label(),
            Some(id),
        );
        match network::decide(&self.net, &self.links, &mut self.net_rng, from, to) {
            SendFate::Cut => self.drop_cut(from, to, msg.label(), id),
            SendFate::Lost => {
                self.stats.dropped_loss += 1;
                self.trace.record(
                    self.now,
                    TraceKind::DropLoss,
                    from,
                    Some(to),
                    msg.label(),
                    Some(id),
                );
            }
            SendFate::Deliver {
                delay,
                dup_delay,
                reordered,
            } => {
                if reordered {
                    self.stats.reordered += 1;
                }
                if let Some(d) = dup_delay {
                    self.stats.duplicated += 1;
                    self.trace.record(
                        self.now,
                        TraceKind::Duplicate,
                        from,
                        Some(to),
                        msg.label(),
                        Some(id),
                    );
                    self.push(
                        self.now + d,
                        Event::Deliver {
                            from,
                            to,
                            msg: msg.clone(),
                            id,
                        },
                    );
                }
                self.push(self.now + delay, Event::Deliver { from, to, msg, id });
            }
        }
    }

    fn drop_cut(&mut self, from: NodeId, to: NodeId, label: &str, id: u64) {
        self.stats.dropped_cut += 1;
        if let Some(p) = &self.partition_label {
            self.coverage.entry(p.clone()).or_default().messages += 1;
        }
        self.trace.record(
            self.now,
            TraceKind::DropCut,
            from,
            Some(to),
            label,
            Some(id),
        );
    }

    pub(crate) fn set_timer(&mut self, node: NodeId, after_local: Nanos, tag: u64) -> TimerId {
        self.next_timer += 1;
        let id = self.next_timer;
        let delay = self.clocks[node].true_span(after_local);
        let epoch = self.epoch[node];
        self.push(
            self.now.saturating_add(delay),
            Event::Timer {
                node,
                epoch,
                id,
                tag,
            },
        );
        TimerId(id)
    }

    pub(crate) fn complete(&mut self, node: NodeId, outcome: EventType, value: serde_json::Value) {
        let ci = node - self.servers_count;
        let client = &mut self.clients[ci];
        let (op, invoked) = client.current.take().unwrap_or_else(|| {
            panic!("client n{node} completed an operation it was not asked for")
        });
        assert!(
            outcome != EventType::Invoke,
            "client n{node} completed with `invoke`"
        );
        self.history.push(HistoryEvent {
            kind: outcome,
            process: client.process,
            time_ns: self.now,
            f: op.f,
            key: op.key,
            value,
        });
        client.done += 1;
        if outcome == EventType::Info {
            // Its operation may still take effect later: continue under a fresh identity.
            client.process += self.clients_count as u64;
        }
        let latency_ms = (self.now - invoked) as f64 / MS as f64;
        match outcome {
            EventType::Ok => {
                self.metrics.count("ops.ok", 1.0);
                self.metrics.observe("op_latency_ms", latency_ms);
            }
            EventType::Fail => self.metrics.count("ops.fail", 1.0),
            _ => self.metrics.count("ops.info", 1.0),
        }
        self.trace.record(
            self.now,
            TraceKind::Complete,
            node,
            None,
            outcome.as_str(),
            None,
        );
        let limit = self.workload.cfg.limit;
        if self.accepting_ops && (limit == 0 || client.done < limit) {
            let think = self.workload.think(&mut self.workload_rng);
            self.push(self.now + think, Event::Invoke(node));
        }
    }

    pub(crate) fn report_violation(&mut self, source: String, message: String) {
        self.trace
            .record(self.now, TraceKind::Violation, 0, None, &message, None);
        self.violations.push(Violation {
            time_ns: self.now,
            source,
            message,
        });
    }

    fn log_fault(&mut self, action: &str, nodes: Vec<usize>, detail: String) {
        let label = format!("{action}: {detail}");
        self.trace.record(
            self.now,
            TraceKind::Fault,
            nodes.first().copied().unwrap_or(0),
            None,
            &label,
            None,
        );
        self.fault_log.push(FaultRecord {
            time_ns: self.now,
            action: action.to_string(),
            nodes,
            detail,
        });
    }

    fn cover(&mut self, key: &str) {
        self.coverage.entry(key.to_string()).or_default().fired += 1;
    }

    fn cover_messages(&mut self, key: &str, n: u64) {
        self.coverage.entry(key.to_string()).or_default().messages += n;
    }

    fn servers_up(&self) -> Vec<NodeId> {
        (0..self.servers_count).filter(|i| self.up[*i]).collect()
    }
}

/// Generates client operations from the `[workload]` table.
struct WorkloadGen {
    cfg: WorkloadConfig,
    mix: Vec<(String, f64)>,
    total_weight: f64,
    next_value: u64,
    last_written: BTreeMap<Option<String>, serde_json::Value>,
}

impl WorkloadGen {
    fn new(cfg: WorkloadConfig) -> Self {
        let mix: Vec<(String, f64)> = cfg
            .mix
            .iter()
            .filter(|(_, w)| **w > 0.0)
            .map(|(k, w)| (k.clone(), *w))
            .collect();
        let total_weight = mix.iter().map(|(_, w)| w).sum();
        WorkloadGen {
            cfg,
            mix,
            total_weight,
            next_value: 0,
            last_written: BTreeMap::new(),
        }
    }

    fn think(&self, rng: &mut SimRng) -> Nanos {
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        (-(self.cfg.think.0 as f64) * u.ln()) as Nanos
    }

    fn fresh_value(&mut self, rng: &mut SimRng) -> serde_json::Value {
        if self.cfg.values == 0 {
            self.next_value += 1;
            serde_json::Value::from(self.next_value)
        } else {
            serde_json::Value::from(rng.random_range(0..self.cfg.values))
        }
    }

    fn next(&mut self, rng: &mut SimRng) -> Op {
        let mut x = rng.random::<f64>() * self.total_weight;
        let mut f = self.mix[self.mix.len() - 1].0.clone();
        for (name, w) in &self.mix {
            if x < *w {
                f = name.clone();
                break;
            }
            x -= w;
        }
        let key = if self.cfg.keys == 0 {
            None
        } else {
            Some(format!("k{}", rng.random_range(0..self.cfg.keys)))
        };
        let value = match f.as_str() {
            // Reads carry no argument.
            "read" | "get" | "dequeue" | "acquire" | "release" => serde_json::Value::Null,
            "cas" => {
                let from = match self.last_written.get(&key) {
                    Some(v) if rng.random_bool(0.7) => v.clone(),
                    _ => self.fresh_value(rng),
                };
                let to = self.fresh_value(rng);
                self.last_written.insert(key.clone(), to.clone());
                serde_json::json!([from, to])
            }
            // Writes and everything else carry a value (fresh by default).
            _ => {
                let v = self.fresh_value(rng);
                self.last_written.insert(key.clone(), v.clone());
                v
            }
        };
        Op { f, key, value }
    }
}

/// One simulation: processes of type `P` in a [`World`].
pub struct Sim<P: Process> {
    world: World<P::Msg>,
    procs: Vec<Option<P>>,
    factory: Box<dyn FnMut(&NodeInfo) -> P>,
    checkers: Vec<Box<dyn Checker<P>>>,
    cfg: SimConfig,
    events: u64,
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
            trace: Trace::new(cfg.options.keep_trace),
            violations: Vec::new(),
            fault_log: Vec::new(),
            coverage: BTreeMap::new(),
            partition_label: None,
            partition_gen: 0,
            stats: NetStats::default(),
        };
        Sim {
            world,
            procs: (0..n).map(|_| None).collect(),
            factory: Box::new(factory),
            checkers: Vec::new(),
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
        let mut script = self.cfg.scenario.faults.clone();
        script.sort_by_key(|f| f.at);
        for f in script {
            self.world.push(f.at.0 .0, Event::Fault(f.action));
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
    }

    /// Runs to the end and judges the run.
    pub fn run(mut self) -> RunResult {
        self.schedule_initial();
        let duration = self.cfg.duration_ns;
        let mut unknown_reason = None;
        while let Some(t) = self.world.peek_time() {
            if t > duration {
                break;
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
            if !self.world.violations.is_empty() && !self.cfg.options.continue_after_violation {
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
            Event::Fault(action) => self.apply_fault(action),
            Event::HealIf(gen) => {
                if gen == self.world.partition_gen && self.world.links.any_cut() {
                    self.heal("the partition's time is up");
                }
            }
            Event::DriftReset(node, drift) => self.set_drift(node, drift, "back to"),
            Event::NemesisTick => self.nemesis_tick(),
            Event::Quiet => self.quiet(),
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
        self.run_checkers(node);
    }

    fn run_checkers(&mut self, node: NodeId) {
        if self.checkers.is_empty() {
            return;
        }
        let view = View {
            now: self.world.now,
            procs: &self.procs,
            paused: &self.world.paused,
            servers_count: self.world.servers_count,
        };
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
            w.held_clog.push((from, to, msg, id));
            return;
        }
        if !w.up[to] {
            w.stats.dropped_down += 1;
            w.cover_messages("crash", 1);
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

    // ---- faults -------------------------------------------------------------------------

    fn resolve(&mut self, node: &NodeRef) -> Option<NodeId> {
        match node {
            // Clients (nodes servers_count..) may be named too: a client can pause (a GC
            // stall), have its clock stepped or its traffic clogged.
            NodeRef::Index(i) => (*i < self.procs.len()).then_some(*i),
            NodeRef::Role(r) if r == "random" => {
                let up = self.world.servers_up();
                (!up.is_empty()).then(|| up[self.world.fault_rng.random_range(0..up.len())])
            }
            NodeRef::Role(r) => {
                let mut best: Option<(u64, NodeId)> = None;
                for i in 0..self.world.servers_count {
                    if let Some(rank) = self.procs[i].as_ref().and_then(|p| p.role_rank(r)) {
                        if best.is_none_or(|(b, _)| rank > b) {
                            best = Some((rank, i));
                        }
                    }
                }
                best.map(|(_, i)| i)
            }
        }
    }

    fn apply_fault(&mut self, action: FaultAction) {
        let name = action.name();
        let target = match &action {
            FaultAction::Partition { node: Some(n), .. }
            | FaultAction::Crash { node: n, .. }
            | FaultAction::Restart { node: n }
            | FaultAction::Pause { node: n, .. }
            | FaultAction::Resume { node: n }
            | FaultAction::ClockStep { node: n, .. }
            | FaultAction::ClockDrift { node: n, .. }
            | FaultAction::Clog { node: n, .. }
            | FaultAction::Unclog { node: n } => match self.resolve(n) {
                Some(i) => Some(i),
                None => {
                    self.world
                        .log_fault(name, vec![], format!("skipped: no server is {n}"));
                    return;
                }
            },
            _ => None,
        };
        let node = target.unwrap_or(0);
        if matches!(
            action,
            FaultAction::Crash { .. } | FaultAction::Restart { .. }
        ) && node >= self.world.servers_count
        {
            // A client's history would be left with an operation that never completes; crash
            // the servers it talks to instead, or pause the client.
            self.world.log_fault(
                name,
                vec![node],
                format!(
                    "skipped: n{node} is a client, and clients do not crash (pause it instead)"
                ),
            );
            return;
        }
        match action {
            FaultAction::Partition {
                kind, cut, for_, ..
            } => {
                self.partition(kind, target, &cut);
                if let Some(d) = for_ {
                    self.world.push(
                        self.world.now + d.0,
                        Event::HealIf(self.world.partition_gen),
                    );
                }
            }
            FaultAction::Heal => self.heal("scripted"),
            FaultAction::Crash { for_, .. } => {
                self.crash(node);
                self.undo_after(
                    for_.map(|d| d.0),
                    FaultAction::Restart {
                        node: NodeRef::Index(node),
                    },
                );
            }
            FaultAction::Restart { .. } => self.restart(node),
            FaultAction::Pause { for_, .. } => {
                self.pause(node);
                self.undo_after(
                    for_.map(|d| d.0),
                    FaultAction::Resume {
                        node: NodeRef::Index(node),
                    },
                );
            }
            FaultAction::Resume { .. } => self.resume(node),
            FaultAction::ClockStep { by, .. } => self.step_clock(node, by.0),
            FaultAction::ClockDrift { drift, .. } => {
                self.world.cover("clock_drift");
                self.set_drift(node, drift.0, "set to");
            }
            FaultAction::Clog { for_, .. } => {
                self.clog(node);
                self.undo_after(
                    for_.map(|d| d.0),
                    FaultAction::Unclog {
                        node: NodeRef::Index(node),
                    },
                );
            }
            FaultAction::Unclog { .. } => self.unclog(node),
            FaultAction::Swizzle { count, step, hold } => self.swizzle(count, step.0, hold.0),
        }
    }

    /// Schedules the fault that undoes another, `after` from now (when given).
    fn undo_after(&mut self, after: Option<Nanos>, undo: FaultAction) {
        if let Some(d) = after {
            self.world.push(self.world.now + d, Event::Fault(undo));
        }
    }

    fn step_clock(&mut self, node: NodeId, by_ns: i64) {
        let now = self.world.now;
        self.world.clocks[node].step(now, by_ns);
        self.world.cover("clock_step");
        let detail = format!("n{node} clock jumps {}", fmt_signed_ns(by_ns as i128));
        self.world.log_fault("clock_step", vec![node], detail);
    }

    fn set_drift(&mut self, node: NodeId, drift: f64, verb: &str) {
        let now = self.world.now;
        self.world.clocks[node].set_drift(now, drift);
        let detail = format!("n{node} drift {verb} {drift:.4}");
        self.world.log_fault("clock_drift", vec![node], detail);
    }

    fn partition(&mut self, kind: PartitionKind, node: Option<NodeId>, cut: &[[usize; 2]]) {
        let n = self.world.servers_count;
        let rng = &mut self.world.fault_rng;
        let pick = |rng: &mut SimRng| node.unwrap_or_else(|| rng.random_range(0..n));
        // side[i]: 0 or 1 for two-sided shapes; 2 = the bridge, which reaches both sides.
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        let detail;
        let two_sides = |side: &[u8], cuts: &mut Vec<(usize, usize)>| {
            for a in 0..n {
                for b in 0..n {
                    if side[a] != 2 && side[b] != 2 && side[a] != side[b] {
                        cuts.push((a, b));
                    }
                }
            }
        };
        let describe = |side: &[u8]| {
            let group = |s: u8| {
                side.iter()
                    .enumerate()
                    .filter(|(_, x)| **x == s)
                    .map(|(i, _)| format!("n{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!("{{{}}} | {{{}}}", group(0), group(1))
        };
        match kind {
            PartitionKind::Isolate => {
                let x = pick(rng);
                let side: Vec<u8> = (0..n).map(|i| (i == x) as u8).collect();
                two_sides(&side, &mut cuts);
                detail = format!("isolate n{x}");
            }
            PartitionKind::Split | PartitionKind::Halves => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(rng);
                let small = if kind == PartitionKind::Split {
                    (n - 1) / 2
                } else {
                    n / 2
                };
                if let (Some(x), PartitionKind::Split) = (node, kind) {
                    order.retain(|i| *i != x);
                    order.insert(0, x);
                }
                let mut side = vec![1u8; n];
                for i in order.iter().take(small.max(1)) {
                    side[*i] = 0;
                }
                two_sides(&side, &mut cuts);
                detail = format!(
                    "{} {}",
                    if kind == PartitionKind::Split {
                        "split"
                    } else {
                        "halves"
                    },
                    describe(&side)
                );
            }
            PartitionKind::Bridge => {
                let x = pick(rng);
                let mut others: Vec<usize> = (0..n).filter(|i| *i != x).collect();
                others.shuffle(rng);
                let mut side = vec![1u8; n];
                for i in others.iter().take(others.len() / 2) {
                    side[*i] = 0;
                }
                side[x] = 2;
                two_sides(&side, &mut cuts);
                detail = format!("bridge n{x} between {}", describe(&side));
            }
            PartitionKind::OneWay => {
                let x = pick(rng);
                cuts.extend((0..n).filter(|b| *b != x).map(|b| (x, b)));
                detail = format!("one-way: nothing n{x} sends reaches the other servers");
            }
            PartitionKind::Links => {
                cuts.extend(cut.iter().map(|[a, b]| (*a, *b)));
                detail = format!(
                    "cut links {}",
                    cut.iter()
                        .map(|[a, b]| format!("n{a}->n{b}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        self.world.links.heal();
        let mut touched: Vec<usize> = Vec::new();
        // Shapes cut only server-server links; `links` may also name clients (a client cut off
        // from some servers, as in Redlock's "D and E are unreachable").
        let reach = if kind == PartitionKind::Links {
            self.procs.len()
        } else {
            n
        };
        for (a, b) in cuts {
            if a < reach && b < reach {
                self.world.links.set_cut(a, b, true);
                touched.push(a);
                touched.push(b);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        self.world.partition_gen += 1;
        let label = format!("partition:{}", partition_name(kind));
        self.world.cover(&label);
        self.world.partition_label = Some(label);
        self.world.log_fault("partition", touched, detail);
    }

    fn heal(&mut self, why: &str) {
        self.world.links.heal();
        self.world.partition_label = None;
        self.world.partition_gen += 1;
        self.world.log_fault("heal", vec![], why.to_string());
    }

    fn crash(&mut self, node: NodeId) {
        if !self.world.up[node] {
            return;
        }
        let w = &mut self.world;
        w.up[node] = false;
        w.paused[node] = false;
        w.held_paused[node].clear();
        w.epoch[node] += 1;
        let lost = w.storage[node].crash();
        self.procs[node] = None;
        w.cover("crash");
        w.log_fault(
            "crash",
            vec![node],
            format!("n{node} crashes ({lost} unsynced writes lost)"),
        );
    }

    fn restart(&mut self, node: NodeId) {
        if self.world.up[node] {
            return;
        }
        self.world.cover("restart");
        self.world.log_fault(
            "restart",
            vec![node],
            format!("n{node} restarts from durable storage"),
        );
        self.start_node(node, true);
    }

    fn pause(&mut self, node: NodeId) {
        if !self.world.up[node] || self.world.paused[node] {
            return;
        }
        self.world.paused[node] = true;
        self.world.cover("pause");
        self.world
            .log_fault("pause", vec![node], format!("n{node} stops the world"));
    }

    fn resume(&mut self, node: NodeId) {
        if !self.world.paused[node] {
            return;
        }
        self.world.paused[node] = false;
        let held = std::mem::take(&mut self.world.held_paused[node]);
        self.world.log_fault(
            "resume",
            vec![node],
            format!("n{node} resumes ({} events waited)", held.len()),
        );
        let now = self.world.now;
        for ev in held {
            self.world.push(now, ev);
        }
    }

    fn clog(&mut self, node: NodeId) {
        self.world.links.set_clogged(node, true);
        self.world.cover("clog");
        self.world.log_fault(
            "clog",
            vec![node],
            format!("n{node} clogged: its traffic waits"),
        );
    }

    fn unclog(&mut self, node: NodeId) {
        if !self.world.links.is_clogged(node) {
            return;
        }
        self.world.links.set_clogged(node, false);
        self.world
            .log_fault("unclog", vec![node], format!("n{node} unclogged"));
        self.release_clogged();
    }

    fn release_clogged(&mut self) {
        let held = std::mem::take(&mut self.world.held_clog);
        for (from, to, msg, id) in held {
            let w = &mut self.world;
            if w.links.is_clogged(from) || w.links.is_clogged(to) {
                w.held_clog.push((from, to, msg, id));
            } else {
                let delay = w.net.latency.sample(&mut w.net_rng);
                w.push(w.now + delay, Event::Deliver { from, to, msg, id });
            }
        }
    }

    fn swizzle(&mut self, count: Option<usize>, step: Nanos, hold: Nanos) {
        let n = self.world.servers_count;
        let count = count.unwrap_or(n / 2 + 1).min(n);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.world.fault_rng);
        order.truncate(count);
        let now = self.world.now;
        for (i, node) in order.iter().enumerate() {
            self.world.push(
                now + i as Nanos * step,
                Event::Fault(FaultAction::Clog {
                    node: NodeRef::Index(*node),
                    for_: None,
                }),
            );
        }
        let mut back = order.clone();
        back.shuffle(&mut self.world.fault_rng);
        let unclog_start = now + count.saturating_sub(1) as Nanos * step + hold;
        for (i, node) in back.iter().enumerate() {
            self.world.push(
                unclog_start + i as Nanos * step,
                Event::Fault(FaultAction::Unclog {
                    node: NodeRef::Index(*node),
                }),
            );
        }
        self.world.cover("swizzle");
        self.world.log_fault(
            "swizzle",
            order.clone(),
            format!(
                "clog {count} servers {} apart, hold {}, unclog in random order",
                fmt_ns(step),
                fmt_ns(hold)
            ),
        );
    }

    fn nemesis_tick(&mut self) {
        if !self.world.nemesis_on {
            return;
        }
        let Some(nem) = self.cfg.nemesis.clone() else {
            return;
        };
        let rng = &mut self.world.fault_rng;
        let kind = nem.kinds[rng.random_range(0..nem.kinds.len())];
        let span = (nem.duration.0 as f64 * rng.random_range(0.5..1.5)) as Nanos;
        let n = self.world.servers_count;
        let down = (0..n)
            .filter(|i| !self.world.up[*i] || self.world.paused[*i])
            .count();
        let may_take_down = down < (n - 1) / 2 + usize::from(n <= 2) && n > 1;
        let now = self.world.now;
        match kind {
            NemesisKind::Partition => {
                let kinds = [
                    PartitionKind::Isolate,
                    PartitionKind::Split,
                    PartitionKind::Bridge,
                    PartitionKind::OneWay,
                    PartitionKind::Halves,
                ];
                let k = kinds[self.world.fault_rng.random_range(0..kinds.len())];
                self.partition(k, None, &[]);
                self.world
                    .push(now + span, Event::HealIf(self.world.partition_gen));
            }
            NemesisKind::Crash if may_take_down => {
                if let Some(x) = self.resolve(&NodeRef::Role("random".into())) {
                    self.crash(x);
                    self.undo_after(
                        Some(span),
                        FaultAction::Restart {
                            node: NodeRef::Index(x),
                        },
                    );
                }
            }
            NemesisKind::Pause if may_take_down => {
                if let Some(x) = self.resolve(&NodeRef::Role("random".into())) {
                    self.pause(x);
                    self.undo_after(
                        Some(span),
                        FaultAction::Resume {
                            node: NodeRef::Index(x),
                        },
                    );
                }
            }
            NemesisKind::Clock => {
                let x = self.world.fault_rng.random_range(0..n);
                if self.world.fault_rng.random_bool(0.5) {
                    let m = nem.clock_step_max.0 as i64;
                    let by = self.world.fault_rng.random_range(-m..=m);
                    self.step_clock(x, by);
                } else {
                    let dm = nem.drift_max.0;
                    let d = if dm > 0.0 {
                        self.world.fault_rng.random_range(-dm..=dm)
                    } else {
                        0.0
                    };
                    let old = self.world.clocks[x].drift();
                    self.world.cover("clock_drift");
                    self.set_drift(x, d, "set to");
                    self.world.push(now + span, Event::DriftReset(x, old));
                }
            }
            NemesisKind::Clog => {
                let x = self.world.fault_rng.random_range(0..n);
                self.clog(x);
                self.undo_after(
                    Some(span),
                    FaultAction::Unclog {
                        node: NodeRef::Index(x),
                    },
                );
            }
            NemesisKind::Swizzle => self.swizzle(None, (span / 10).max(MS), span),
            NemesisKind::Crash | NemesisKind::Pause => {}
        }
        let gap = exp_draw(&mut self.world.fault_rng, nem.interval.0);
        self.world.push(now + gap.max(1), Event::NemesisTick);
    }

    fn quiet(&mut self) {
        let w = &mut self.world;
        w.accepting_ops = false;
        w.nemesis_on = false;
        w.log_fault("quiet", vec![], "faults healed, no new operations".into());
        if w.links.any_cut() {
            self.heal("quiet period");
        }
        for node in 0..self.world.servers_count {
            self.unclog(node);
            self.resume(node);
            if self.cfg.quiet_restarts && !self.world.up[node] {
                self.restart(node);
            }
        }
        for node in self.world.servers_count..self.procs.len() {
            self.unclog(node);
            self.resume(node);
        }
    }

    fn finish(mut self, unknown_reason: Option<String>) -> RunResult {
        let history = History {
            events: std::mem::take(&mut self.world.history),
        };
        if self.world.violations.is_empty() || self.cfg.options.continue_after_violation {
            let view = View {
                now: self.world.now,
                procs: &self.procs,
                paused: &self.world.paused,
                servers_count: self.world.servers_count,
            };
            let mut found = Vec::new();
            for c in &mut self.checkers {
                for msg in c.at_end(&view, &history) {
                    found.push((c.name().to_string(), msg));
                }
            }
            for (name, msg) in found {
                self.world.report_violation(name, msg);
            }
        }
        let mut unknown_reason = unknown_reason;
        let lin_report = self.check_linearizability(&history, &mut unknown_reason);
        let w = &mut self.world;
        // The history is part of what the hash proves identical.
        for e in &history.events {
            w.trace
                .mix(e.time_ns ^ (e.process << 40) ^ ((e.kind as u64) << 60));
            w.trace.mix_json(&e.value);
        }
        let syncs: u64 = w.storage.iter().map(|s| s.syncs_count()).sum();
        let s = &w.stats;
        for (k, v) in [
            ("disk.syncs", syncs),
            ("net.sent", s.sent),
            ("net.delivered", s.delivered),
            ("net.dropped_cut", s.dropped_cut),
            ("net.dropped_loss", s.dropped_loss),
            ("net.dropped_down", s.dropped_down),
            ("net.duplicated", s.duplicated),
            ("net.reordered", s.reordered),
            ("net.held_clog", s.held_clog),
            ("net.held_pause", s.held_pause),
        ] {
            w.metrics.count(k, v as f64);
        }
        if s.dropped_loss > 0 {
            w.coverage.entry("loss".into()).or_default().messages += s.dropped_loss;
        }
        if s.duplicated > 0 {
            w.coverage.entry("duplicate".into()).or_default().messages += s.duplicated;
        }
        if s.reordered > 0 {
            w.coverage.entry("reorder".into()).or_default().messages += s.reordered;
        }
        let verdict = if !w.violations.is_empty() {
            Verdict::Violation
        } else if unknown_reason.is_some() {
            Verdict::Unknown
        } else {
            Verdict::Pass
        };
        RunResult {
            scenario: self.cfg.name.clone(),
            path: self.cfg.path.clone(),
            algorithm: self.cfg.algorithm.clone(),
            seed: self.cfg.seed,
            swarm: self.cfg.options.swarm,
            derived: self.cfg.derived.clone(),
            verdict,
            expected: self.cfg.expect,
            unknown_reason,
            trace_hash: format!("{:016x}", w.trace.hash()),
            events: self.events,
            simulated_ns: w.now,
            wall_ns: 0,
            servers: w.servers_count,
            clients: w.clients_count,
            metrics: w.metrics.summary(),
            violations: std::mem::take(&mut w.violations),
            faults: std::mem::take(&mut w.coverage),
            fault_log: std::mem::take(&mut w.fault_log),
            linearizability: lin_report,
            history,
            trace: w.trace.take_events(),
            series: w.metrics.all_series(),
        }
    }
}

impl<P: Process> Sim<P> {
    /// Checks the client history against the scenario's model, when it names one. A
    /// non-linearizable history is a violation; a check that runs out of budget makes the
    /// verdict unknown (never a pass).
    fn check_linearizability(
        &mut self,
        history: &History,
        unknown_reason: &mut Option<String>,
    ) -> Option<serde_json::Value> {
        use crate::linearizability as lin;
        let checks = &self.cfg.scenario.checks;
        let name = checks.linearizability.as_deref()?;
        let model = lin::model_by_name(name)?;
        let opts = lin::CheckOptions {
            timeout: Some(std::time::Duration::from_nanos(checks.timeout.0)),
            max_states: Some(lin::DEFAULT_MAX_STATES),
            // One thread: sweeps already run one simulation per core.
            threads: 1,
        };
        let report = match lin::check(history, model.as_ref(), &opts) {
            Ok(r) => r,
            Err(e) => {
                // The algorithm's clients wrote a history the model cannot read: a bug in the
                // algorithm's client, reported as a violation so that it is seen.
                self.world.report_violation(
                    "linearizability".into(),
                    format!("the client history is malformed for model {name}: {e}"),
                );
                return None;
            }
        };
        match report.verdict() {
            lin::Verdict::Linearizable => {}
            lin::Verdict::NotLinearizable => {
                let text = report.render_text();
                self.world
                    .report_violation("linearizability".into(), text.trim_end().to_string());
            }
            lin::Verdict::Unknown => {
                if unknown_reason.is_none() {
                    *unknown_reason = Some(format!(
                        "the linearizability check ran out of budget: {}",
                        report.render_text().trim_end()
                    ));
                }
            }
        }
        self.world
            .metrics
            .count("lin.visited_states", report.visited_states as f64);
        serde_json::to_value(&report).ok()
    }
}

fn partition_name(k: PartitionKind) -> &'static str {
    match k {
        PartitionKind::Isolate => "isolate",
        PartitionKind::Split => "split",
        PartitionKind::Bridge => "bridge",
        PartitionKind::OneWay => "one_way",
        PartitionKind::Halves => "halves",
        PartitionKind::Links => "links",
    }
}

fn exp_draw(rng: &mut SimRng, mean: Nanos) -> Nanos {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    (-(mean as f64) * u.ln()) as Nanos
}

/// Parses a scenario's algorithm parameters or returns a located error; a convenience for
/// algorithm modules.
pub fn params_of<T: serde::de::DeserializeOwned + Default>(
    sc: &Scenario,
) -> Result<T, ScenarioError> {
    sc.params::<T>()
}
