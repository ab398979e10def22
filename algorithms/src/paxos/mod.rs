//! Paxos: the Synod protocol (single-decree Paxos, Lamport's "The Part-Time Parliament",
//! 1998, and "Paxos Made Simple", 2001) and a Multi-Paxos replicated key-value store in the
//! style of "Paxos Made Simple" §3 and van Renesse and Altinbuken's "Paxos Made Moderately
//! Complex" (2015).
//!
//! Two algorithms share this module, its ballots, its acceptor and its bug switches:
//!
//! - `paxos-synod` ([`synod`]): every server proposes, accepts and learns; clients propose
//!   values and learn the one chosen. Ballots are (round, proposer); promises and accepts are
//!   synced before any reply; a preempted proposer retries with a higher ballot after a
//!   randomised backoff.
//! - `paxos` ([`server`], [`leader`], [`replica`]): a distinguished leader elected by ballots
//!   (phase 1 once for every open slot), heartbeats, phase 2 per slot with pipelining and
//!   batching, re-proposal of every value reported in phase 1 and no-ops in the gaps,
//!   replicas that apply slots in order, snapshots, client commands deduplicated by (client,
//!   seq), reads through the log or under a leader lease shortened for clock drift. The
//!   clients and the key-value state machine are Raft's ([`crate::raft::client`],
//!   [`crate::raft::kv`]), so the same workloads run on both.
//!
//! Invariants and progress predicates: see [`checks`]. Bug switches: [`PaxosBug`], each
//! variant with the rule it breaks.

use std::cell::RefCell;
use std::rc::Rc;

use serde::Deserialize;
use sim_core::metrics::summarize;
use sim_core::time::{Duration, MS};
use sim_core::{
    Ctx, NodeId, Op, Process, RunOptions, RunResult, Scenario, ScenarioError, Sim, SimConfig,
    TimerId,
};

use crate::Bug;

pub mod acceptor;
pub mod checks;
pub mod client;
pub mod leader;
pub mod msg;
pub mod replica;
pub mod server;
mod summary;
pub mod synod;

use checks::{MultiChecks, Shared, SynodChecks};
use client::SynodClient;
use msg::Msg;
use server::{Role, Server};
use synod::{Phase, SynodServer};

/// Paxos's switchable bugs. Each variant's [`PaxosBug::bug`] names it and states the rule it
/// breaks; [`BUGS`] is built from them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaxosBug {
    /// An acceptor accepts a proposal whose ballot is below its promise.
    AcceptBelowPromise,
    /// A proposer proposes its own value whatever the promises report.
    IgnorePromiseValues,
    /// An acceptor replies to a prepare before its promise is synced.
    PromiseWithoutSync,
    /// A proposer retries at once when preempted, outbidding instead of backing off.
    NoBackoff,
    /// A new leader treats values reported in phase 1 as chosen instead of re-proposing them.
    SkipRepropose,
    /// A new leader leaves the slots nobody reported empty instead of filling them with no-ops.
    NoGapFill,
    /// A leader serves lease reads for the whole lease, with no margin for clock drift.
    LeaseWithoutMargin,
    /// Replicas apply every copy of a retried command.
    NoDedup,
}

impl PaxosBug {
    /// Every bug, in order.
    pub const ALL: [PaxosBug; 8] = [
        PaxosBug::AcceptBelowPromise,
        PaxosBug::IgnorePromiseValues,
        PaxosBug::PromiseWithoutSync,
        PaxosBug::NoBackoff,
        PaxosBug::SkipRepropose,
        PaxosBug::NoGapFill,
        PaxosBug::LeaseWithoutMargin,
        PaxosBug::NoDedup,
    ];

    /// The switch's name (`bug = "..."`) and the rule it breaks.
    pub const fn bug(self) -> Bug {
        let (name, rule) = match self {
            PaxosBug::AcceptBelowPromise => ("accept_below_promise", "an acceptor accepts a proposal only if its ballot is at least the highest ballot it promised (P1a)"),
            PaxosBug::IgnorePromiseValues => ("ignore_promise_values", "a proposer proposes the value of the highest-ballot proposal reported in the promises, its own only if none (P2c)"),
            PaxosBug::PromiseWithoutSync => ("promise_without_sync", "an acceptor's promise is on stable storage before it replies, or a restarted acceptor promises twice"),
            PaxosBug::NoBackoff => ("no_backoff", "a preempted proposer waits a randomised backoff before trying a higher ballot, or two proposers duel forever (liveness)"),
            PaxosBug::SkipRepropose => ("skip_repropose", "a new leader re-proposes in its own ballot every value reported in phase 1; accepted by some is not chosen"),
            PaxosBug::NoGapFill => ("no_gap_fill", "a new leader fills every slot below its first free slot that nobody reported with a no-op, or replicas stall at the gap"),
            PaxosBug::LeaseWithoutMargin => ("lease_without_margin", "a leader's lease is shortened by a margin for clock drift, or a deposed leader serves stale reads"),
            PaxosBug::NoDedup => ("no_dedup", "a retried command (same client id and sequence number) takes effect once"),
        };
        Bug { name, rule }
    }

    /// Which algorithm the bug lives in: `true` for both, `false` for Multi-Paxos only.
    pub const fn in_synod(self) -> bool {
        matches!(
            self,
            PaxosBug::AcceptBelowPromise
                | PaxosBug::IgnorePromiseValues
                | PaxosBug::PromiseWithoutSync
                | PaxosBug::NoBackoff
        )
    }
}

const fn all_bugs() -> [Bug; 8] {
    let mut out = [Bug { name: "", rule: "" }; 8];
    let mut i = 0;
    while i < 8 {
        out[i] = PaxosBug::ALL[i].bug();
        i += 1;
    }
    out
}

const ALL_BUGS: [Bug; 8] = all_bugs();

/// Multi-Paxos's bug switches (every [`PaxosBug`]).
pub const BUGS: &[Bug] = &ALL_BUGS;

const SYNOD_BUGS_ARR: [Bug; 4] = [
    PaxosBug::ALL[0].bug(),
    PaxosBug::ALL[1].bug(),
    PaxosBug::ALL[2].bug(),
    PaxosBug::ALL[3].bug(),
];

/// The Synod protocol's bug switches (the first four [`PaxosBug`]s).
pub const SYNOD_BUGS: &[Bug] = &SYNOD_BUGS_ARR;

const fn doc(name: &'static str, default: &'static str, doc: &'static str) -> crate::ParamDoc {
    crate::ParamDoc { name, default, doc }
}

/// Multi-Paxos's `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[
    doc("bug", "none", "a switchable bug (see bugs)"),
    doc(
        "election_timeout_min",
        "\"150ms\"",
        "shortest silence before a server runs phase 1",
    ),
    doc(
        "election_timeout_max",
        "\"300ms\"",
        "longest (drawn uniformly between the two)",
    ),
    doc(
        "startup_timeout_max",
        "none",
        "the first timeout after a cold start is drawn up to this",
    ),
    doc(
        "heartbeat_interval",
        "\"50ms\"",
        "leader heartbeats, which also resend proposals not yet chosen",
    ),
    doc("read_mode", "\"log\"", "\"log\" or \"lease\""),
    doc(
        "lease",
        "\"100ms\"",
        "leader lease, on the acceptors' clocks",
    ),
    doc(
        "lease_drift",
        "0.05",
        "the clock drift the lease margin allows for",
    ),
    doc(
        "snapshot_slots",
        "1000",
        "take a snapshot every this many applied slots (0: never)",
    ),
    doc("batch_max", "64", "most proposals in one accept message"),
    doc(
        "client_retry",
        "\"200ms\"",
        "a silent server makes the client try the next",
    ),
];

/// The Synod protocol's `[params]` fields, for `distsim list`.
pub const SYNOD_PARAMS: &[crate::ParamDoc] = &[
    doc(
        "bug",
        "none",
        "a switchable bug (the first four of paxos's)",
    ),
    doc(
        "backoff",
        "\"10ms\"",
        "base of the randomised backoff after a preempted attempt",
    ),
    doc(
        "attempt_timeout",
        "\"100ms\"",
        "an attempt that hears nothing this long counts as preempted",
    ),
    doc(
        "client_retry",
        "\"300ms\"",
        "a silent server makes the client try the next",
    ),
];

/// How the Multi-Paxos leader serves reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Through the log, like writes.
    #[default]
    Log,
    /// From the leader's state while its lease runs (acceptors refuse other ballots' prepares
    /// for `lease` after hearing from the leader).
    Lease,
}

/// `[params]` of a Multi-Paxos (`paxos`) scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// A switchable bug.
    pub bug: Option<PaxosBug>,
    /// Shortest time without a heartbeat before a server runs phase 1.
    pub election_timeout_min: Duration,
    /// Longest (each timeout is drawn uniformly between the two).
    pub election_timeout_max: Duration,
    /// The first timeout after a cold start is drawn up to this instead.
    pub startup_timeout_max: Option<Duration>,
    /// How often the leader sends heartbeats (and retransmits proposals not yet chosen).
    pub heartbeat_interval: Duration,
    /// How reads are served.
    pub read_mode: ReadMode,
    /// Length of the leader lease, on the acceptors' clocks.
    pub lease: Duration,
    /// The largest clock drift the lease allows for (0.05 = 5%).
    pub lease_drift: f64,
    /// Take a snapshot every this many applied slots (0: never).
    pub snapshot_slots: u64,
    /// Most proposals in one accept message.
    pub batch_max: usize,
    /// A client that hears nothing for this long retries at the next server.
    pub client_retry: Duration,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bug: None,
            election_timeout_min: Duration(150 * MS),
            election_timeout_max: Duration(300 * MS),
            startup_timeout_max: None,
            heartbeat_interval: Duration(50 * MS),
            read_mode: ReadMode::Log,
            lease: Duration(100 * MS),
            lease_drift: 0.05,
            snapshot_slots: 1000,
            batch_max: 64,
            client_retry: Duration(200 * MS),
        }
    }
}

impl Params {
    fn validate(&self, sc: &Scenario) -> Result<(), ScenarioError> {
        let e = |field: &str, msg: &str| Err(sc.error_at(field, msg.to_string()));
        if self.election_timeout_min.0 == 0 {
            return e(
                "election_timeout_min",
                "election_timeout_min must be above zero, e.g. \"150ms\"",
            );
        }
        if self.election_timeout_max < self.election_timeout_min {
            return e(
                "election_timeout_max",
                "election_timeout_max is below election_timeout_min; make the range low..high",
            );
        }
        if self.heartbeat_interval.0 == 0 || self.heartbeat_interval >= self.election_timeout_min {
            return e("heartbeat_interval", "heartbeat_interval must be above zero and below election_timeout_min, or followers time out under a live leader");
        }
        if !(0.0..0.5).contains(&self.lease_drift) {
            return e(
                "lease_drift",
                "lease_drift is a rate from 0 to 0.5 (0.05 = 5%)",
            );
        }
        if self.read_mode == ReadMode::Lease && self.lease.0 == 0 {
            return e(
                "lease",
                "lease must be above zero with read_mode = \"lease\"",
            );
        }
        if self.batch_max == 0 {
            return e("batch_max", "batch_max must be at least 1");
        }
        if self.client_retry.0 == 0 {
            return e(
                "client_retry",
                "client_retry must be above zero, e.g. \"200ms\"",
            );
        }
        Ok(())
    }
}

/// `[params]` of a Synod (`paxos-synod`) scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynodParams {
    /// A switchable bug (only the first four [`PaxosBug`]s apply to one decision).
    pub bug: Option<PaxosBug>,
    /// Base of the randomised backoff after a preempted attempt (it doubles with each
    /// failure, up to 64 times the base).
    pub backoff: Duration,
    /// An attempt that hears nothing for this long counts as preempted (messages lost).
    pub attempt_timeout: Duration,
    /// A client that hears nothing for this long asks the next server.
    pub client_retry: Duration,
}

impl Default for SynodParams {
    fn default() -> Self {
        SynodParams {
            bug: None,
            backoff: Duration(10 * MS),
            attempt_timeout: Duration(100 * MS),
            client_retry: Duration(300 * MS),
        }
    }
}

impl SynodParams {
    fn validate(&self, sc: &Scenario) -> Result<(), ScenarioError> {
        let e = |field: &str, msg: String| Err(sc.error_at(field, msg));
        if let Some(b) = self.bug {
            if !b.in_synod() {
                return e("bug", format!("bug \"{}\" is a Multi-Paxos bug; use algorithm = \"paxos\", or one of the Synod's: accept_below_promise, ignore_promise_values, promise_without_sync, no_backoff", b.bug().name));
            }
        }
        if self.backoff.0 < 2 || self.attempt_timeout.0 == 0 || self.client_retry.0 == 0 {
            return e(
                "backoff",
                "backoff, attempt_timeout and client_retry must be above zero, e.g. \"10ms\""
                    .into(),
            );
        }
        Ok(())
    }
}

/// A node of either Paxos algorithm.
pub enum Node {
    /// A Synod server (proposer, acceptor, learner).
    Synod(Box<SynodServer>),
    /// A Synod client.
    SynodClient(SynodClient),
    /// A Multi-Paxos server.
    Multi(Box<Server>),
    /// A key-value client (Raft's, speaking Paxos's messages).
    Client(crate::raft::client::Client<Msg>),
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        match self {
            Node::Synod(s) => s.start(ctx),
            Node::Multi(s) => s.start(ctx),
            _ => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match self {
            Node::Synod(s) => s.message(ctx, from, msg),
            Node::SynodClient(c) => c.message(ctx, msg),
            Node::Multi(s) => s.message(ctx, from, msg),
            Node::Client(c) => c.message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        match self {
            Node::Synod(s) => s.timer(ctx, timer, tag),
            Node::SynodClient(c) => c.timer(ctx, tag),
            Node::Multi(s) => s.timer(ctx, timer, tag),
            Node::Client(c) => c.timer(ctx, tag),
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        match self {
            Node::SynodClient(c) => c.invoke(ctx, op),
            Node::Client(c) => c.invoke(ctx, op),
            _ => {}
        }
    }

    fn role_rank(&self, role: &str) -> Option<u64> {
        match (self, role) {
            (Node::Multi(s), "leader") if s.role == Role::Leader => Some(s.ballot.round),
            (Node::Multi(s), "follower") if s.role != Role::Leader => Some(s.ballot.round),
            (Node::Synod(s), "proposer") if s.phase != Phase::Idle => Some(s.ballot.round),
            _ => None,
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        summary::of(self)
    }
}

/// The default bound of Multi-Paxos's liveness phase (`[liveness] within`): progress must show
/// this long after the faults heal. Longer than the 1 s client timeout of every scenario, so
/// that an operation stranded at a dead leader when the faults heal can time out and be
/// retried inside the phase, and long enough for a few election timeouts.
pub const LIVENESS_WITHIN: Duration = Duration(1_500 * MS);

/// The default bound of the Synod protocol's liveness phase: longer than its scenarios' 500 ms
/// client timeout and a few backoffs.
pub const SYNOD_LIVENESS_WITHIN: Duration = Duration(750 * MS);

/// Runs a Synod (`paxos-synod`) scenario.
pub fn run_synod(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: SynodParams = sc.params()?;
    params.validate(sc)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let (servers_count, timeout_ns) = (cfg.servers_count, cfg.workload.timeout.0);
    let retry_ns = params.client_retry.0;
    let p = Rc::new(params);
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::SynodClient(SynodClient::new(
                info.id,
                info.servers_count,
                timeout_ns,
                retry_ns,
            ))
        } else {
            Node::Synod(Box::new(SynodServer::new(
                p.clone(),
                info.id,
                info.servers_count,
            )))
        }
    });
    let shared = Rc::new(RefCell::new(Shared::default()));
    sim.add_checker(SynodChecks::new(servers_count, shared.clone()));
    let mut r = sim.run();
    let m = &mut r.metrics;
    m.insert(
        "paxos.chosen".into(),
        shared.borrow().commands_chosen as f64,
    );
    Ok(r)
}

/// Runs a Multi-Paxos (`paxos`) scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    params.validate(sc)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let (servers_count, duration_ns) = (cfg.servers_count, cfg.duration_ns);
    let timeout_ns = cfg.workload.timeout.0;
    let retry_ns = params.client_retry.0;
    let p = Rc::new(params);
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(crate::raft::client::Client::new(
                info.id,
                info.servers_count,
                timeout_ns,
                retry_ns,
            ))
        } else {
            Node::Multi(Box::new(Server::new(
                p.clone(),
                info.id,
                info.servers_count,
            )))
        }
    });
    let shared = Rc::new(RefCell::new(Shared::default()));
    sim.add_checker(MultiChecks::new(servers_count, shared.clone()));
    let mut r = sim.run();
    add_metrics(&mut r, &shared.borrow(), duration_ns);
    Ok(r)
}

/// The figures the comparison with Raft reads: time without a leader after the leader
/// crashed or was isolated, leaderless windows, catch-up, messages, syncs and throughput per
/// committed command.
fn add_metrics(r: &mut RunResult, sh: &Shared, duration_ns: u64) {
    let mut after_fault = Vec::new();
    for f in &r.fault_log {
        let Some(x) = crate::fault_target(f) else {
            continue;
        };
        let Some(&(_, b, leader)) = sh.leaders.iter().rev().find(|(t, _, _)| *t <= f.time_ns)
        else {
            continue;
        };
        if leader != x {
            continue;
        }
        let t = sh
            .leaders
            .iter()
            .find(|(t, nb, _)| *t > f.time_ns && *nb > b)
            .map(|(t, _, _)| *t)
            .unwrap_or(r.simulated_ns.max(f.time_ns));
        after_fault.push((t - f.time_ns) as f64 / 1e6);
    }
    let m = &mut r.metrics;
    for (name, samples) in [
        ("election_after_fault_ms", &after_fault),
        ("leaderless_ms", &sh.leaderless_ms),
        ("catch_up_ms", &sh.catch_up_ms),
    ] {
        for (suffix, v) in summarize(samples) {
            m.insert(format!("{name}.{suffix}"), v);
        }
    }
    let changes = sh.leaders.windows(2).filter(|w| w[0].2 != w[1].2).count();
    m.insert("paxos.leader_changes".into(), changes as f64);
    m.insert("paxos.commands_committed".into(), sh.commands_chosen as f64);
    let ok = m.get("ops.ok").copied().unwrap_or(0.0);
    m.insert(
        "throughput_ops_per_s".into(),
        ok / (duration_ns as f64 / 1e9).max(1e-9),
    );
    if sh.commands_chosen > 0 {
        let per = |m: &std::collections::BTreeMap<String, f64>, k: &str| {
            m.get(k).copied().unwrap_or(0.0) / sh.commands_chosen as f64
        };
        let msgs = per(m, "net.sent");
        let syncs = per(m, "disk.syncs");
        m.insert("msgs_per_command".into(), msgs);
        m.insert("syncs_per_command".into(), syncs);
    }
}
