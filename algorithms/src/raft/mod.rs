//! Raft (Ongaro and Ousterhout, "In Search of an Understandable Consensus Algorithm", 2014,
//! and Ongaro's thesis, 2014) driving a replicated key-value store.
//!
//! The protocol in full: randomized election timeouts; RequestVote with the log up-to-date
//! check; AppendEntries with the consistency check, conflict truncation and fast back-off
//! (conflict term and index); commitment only by counting replicas of current-term entries
//! (a new leader appends a no-op to commit earlier ones); currentTerm, votedFor and the log
//! persisted and synced before any reply that depends on them; recovery from durable state
//! after a crash; log compaction into snapshots and InstallSnapshot for followers behind the
//! leader's log; PreVote and CheckQuorum as options; single-server membership changes at
//! scripted times.
//!
//! The service: get, put and compare-and-set. Clients find the leader by redirect, retry on
//! timeout under the same (client id, sequence number), and the state machine applies each
//! command once. Reads go through the log by default; `read_mode = "read_index"` confirms
//! leadership with a round of heartbeats instead, and `read_mode = "lease"` skips even that
//! while the leader holds a lease measured on its own clock, which clock skew can break.
//!
//! The replicated state machine is pluggable ([`kv::StateMachine`]); the key-value store is
//! one implementation, and the lock family's ZooKeeper-style service ([`crate::lock::zk`]) runs
//! another on the same [`server::Server`].
//!
//! Invariants checked after every event, and the reads checked at the end: see [`checks`].
//!
//! Bug switches (`bug = "..."` under `[params]`), one line each on the rule they break: see
//! [`BUGS`].

use std::cell::RefCell;
use std::rc::Rc;

use serde::Deserialize;
use sim_core::metrics::summarize;
use sim_core::scenario::NodeIndex;
use sim_core::time::{Duration, MS};
use sim_core::{
    Ctx, NodeId, Op, Process, RunOptions, RunResult, Scenario, ScenarioError, Sim, SimConfig,
    TimerId,
};

use crate::Bug;

pub mod checks;
pub mod client;
pub mod kv;
pub mod msg;
pub mod server;

use checks::{FreshReads, Invariants, MembershipEnd, Shared};
use client::Client;
use msg::Msg;
use server::{Role, Server};

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[Bug] = RaftBug::ALL;

crate::bug_switches! {
    /// Raft's bugs.
    pub enum RaftBug {
        /// Grant votes without comparing logs.
        VoteWithoutLogCheck = ("vote_without_log_check", "a vote goes only to a candidate whose log is at least as up to date as the voter's (5.4.1)"),
        /// Commit earlier-term entries by counting replicas.
        CommitOldTerm = ("commit_old_term", "a leader commits by counting replicas only entries of its own term (5.4.2, Figure 8)"),
        /// Grant a vote without persisting votedFor.
        VoteWithoutPersist = ("vote_without_persist", "votedFor is on stable storage before the vote is granted, or a restart votes twice in one term"),
        /// Apply entries as soon as they are appended.
        ApplyBeforeCommit = ("apply_before_commit", "an entry is applied to the state machine only once it is committed"),
        /// Serve reads from local state without confirming leadership.
        ReadWithoutConfirm = ("read_without_confirm", "a leader serves a read only after confirming it still leads (a heartbeat round or a valid lease)"),
        /// Apply every copy of a retried command.
        NoDedup = ("no_dedup", "a retried command (same client id and sequence number) takes effect once"),
        /// Every election timeout is the minimum: candidates that split the vote time out
        /// together again, forever. Breaks only liveness.
        FixedElectionTimeout = ("fixed_election_timeout", "each election timeout is drawn at random from a range (5.2), so that split votes end"),
    }
}

/// How a leader serves reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    /// Through the log, like writes.
    #[default]
    Log,
    /// ReadIndex: note the commit index, confirm leadership with a heartbeat round, wait for
    /// the state machine to reach the index.
    ReadIndex,
    /// Leader lease: no round while a majority acknowledged a heartbeat less than `lease`
    /// ago on the leader's own clock (followers refuse votes for that long).
    Lease,
}

/// One scripted membership change: at `at` (on the leader's clock) add or remove a server.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembershipChange {
    /// When the leader proposes it.
    pub at: Duration,
    /// The server to add.
    #[serde(default, deserialize_with = "de_node")]
    pub add: Option<NodeId>,
    /// The server to remove.
    #[serde(default, deserialize_with = "de_node")]
    pub remove: Option<NodeId>,
}

fn de_node<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NodeId>, D::Error> {
    Ok(Some(NodeIndex::deserialize(d)?.0))
}

/// `[params]` of a Raft scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// A switchable bug.
    pub bug: Option<RaftBug>,
    /// Shortest election timeout.
    pub election_timeout_min: Duration,
    /// Longest election timeout (each timeout is drawn uniformly between the two).
    pub election_timeout_max: Duration,
    /// How often the leader sends heartbeats.
    pub heartbeat_interval: Duration,
    /// Ask for pre-votes before starting an election (thesis 9.6).
    pub pre_vote: bool,
    /// A leader that has not heard from a majority for an election timeout steps down, and
    /// followers that heard from a leader within the minimum timeout refuse votes.
    pub check_quorum: bool,
    /// How reads are served.
    pub read_mode: ReadMode,
    /// Length of the leader lease (read_mode = "lease"), on the leader's clock; keep it
    /// below election_timeout_min.
    pub lease: Duration,
    /// Compact the log into a snapshot once it holds more entries than this (0: never).
    pub snapshot_entries: usize,
    /// Most entries in one AppendEntries.
    pub batch_max: usize,
    /// A client that hears nothing for this long retries at the next server.
    pub client_retry: Duration,
    /// The first election timeout after a cold start is drawn up to this instead (so that an
    /// experiment on a narrow range starts from an elected leader); restarts use the range.
    pub startup_timeout_max: Option<Duration>,
    /// Servers in the first configuration (default: all); the rest wait to be added.
    pub initial_members: Option<usize>,
    /// Scripted single-server membership changes, in order.
    pub membership: Vec<MembershipChange>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bug: None,
            election_timeout_min: Duration(150 * MS),
            election_timeout_max: Duration(300 * MS),
            heartbeat_interval: Duration(50 * MS),
            pre_vote: false,
            check_quorum: false,
            read_mode: ReadMode::Log,
            lease: Duration(100 * MS),
            snapshot_entries: 2000,
            batch_max: 64,
            client_retry: Duration(200 * MS),
            startup_timeout_max: None,
            initial_members: None,
            membership: Vec::new(),
        }
    }
}

impl Params {
    /// The configuration the scripted membership changes lead to, as (members, changes made),
    /// folding them over the first configuration the way a leader proposes them; `None` if a
    /// change would empty the cluster (a leader never proposes it, so the script stalls there).
    pub fn scripted_config(&self, servers_count: usize) -> Option<(Vec<NodeId>, u32)> {
        let initial = self
            .initial_members
            .unwrap_or(servers_count)
            .min(servers_count);
        let mut members: Vec<NodeId> = (0..initial).collect();
        for c in &self.membership {
            if let Some(a) = c.add {
                if !members.contains(&a) {
                    members.push(a);
                    members.sort_unstable();
                }
            } else if let Some(r) = c.remove {
                members.retain(|m| *m != r);
            }
            if members.is_empty() {
                return None;
            }
        }
        Some((members, self.membership.len() as u32))
    }

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
            return e(
                "heartbeat_interval",
                "heartbeat_interval must be above zero and below election_timeout_min, or followers time out under a live leader",
            );
        }
        if self.read_mode == ReadMode::Lease && self.lease >= self.election_timeout_min {
            return e(
                "lease",
                "lease must be shorter than election_timeout_min, or a new leader can be elected while the old lease runs",
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
        if self.initial_members == Some(0) || self.initial_members.is_some_and(|m| m > sc.nodes) {
            return e(
                "initial_members",
                "initial_members must be from 1 to the number of nodes",
            );
        }
        for c in &self.membership {
            if c.add.is_some() == c.remove.is_some() {
                return e(
                    "membership",
                    "each membership change names exactly one of `add` or `remove`",
                );
            }
        }
        self.validate_members(sc, sc.nodes)
    }

    /// Membership changes name servers, not clients (node indexes past the servers are
    /// clients). Checked at load against `nodes`, and again for the cluster size a swarm run
    /// drew.
    fn validate_members(&self, sc: &Scenario, servers: usize) -> Result<(), ScenarioError> {
        match self
            .membership
            .iter()
            .filter_map(|c| c.add.or(c.remove))
            .find(|&n| n >= servers)
        {
            Some(n) => Err(sc.error_at(
                "membership",
                format!(
                    "membership change names node {n}, but this run has {servers} servers, numbered 0 to {}; name a server",
                    servers - 1
                ),
            )),
            None => Ok(()),
        }
    }
}

/// A node: a Raft server or a client.
pub enum Node {
    /// A Raft server.
    Server(Box<Server>),
    /// A client of the key-value service.
    Client(Client),
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Node::Server(s) = self {
            s.start(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match self {
            Node::Server(s) => s.message(ctx, from, msg),
            Node::Client(c) => c.message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        match self {
            Node::Server(s) => s.timer(ctx, timer, tag),
            Node::Client(c) => c.timer(ctx, tag),
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        if let Node::Client(c) = self {
            c.invoke(ctx, op);
        }
    }

    fn role_rank(&self, role: &str) -> Option<u64> {
        match (self, role) {
            (Node::Server(s), "leader") if s.role == Role::Leader => Some(s.term),
            (Node::Server(s), "follower") if s.role != Role::Leader => Some(s.term),
            _ => None,
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        match self {
            Node::Server(s) => Some(s.summary()),
            // The report shows a client's open operation from the trace.
            Node::Client(_) => None,
        }
    }
}

/// The `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[
    crate::ParamDoc {
        name: "bug",
        default: "none",
        doc: "a switchable bug (see bugs)",
    },
    crate::ParamDoc {
        name: "election_timeout_min",
        default: "\"150ms\"",
        doc: "shortest election timeout",
    },
    crate::ParamDoc {
        name: "election_timeout_max",
        default: "\"300ms\"",
        doc: "longest election timeout (each drawn uniformly between the two)",
    },
    crate::ParamDoc {
        name: "heartbeat_interval",
        default: "\"50ms\"",
        doc: "how often the leader sends heartbeats",
    },
    crate::ParamDoc {
        name: "pre_vote",
        default: "false",
        doc: "ask for pre-votes before starting an election (thesis 9.6)",
    },
    crate::ParamDoc {
        name: "check_quorum",
        default: "false",
        doc: "a leader without a majority for an election timeout steps down",
    },
    crate::ParamDoc {
        name: "read_mode",
        default: "\"log\"",
        doc: "how reads are served: log, read_index or lease",
    },
    crate::ParamDoc {
        name: "lease",
        default: "\"100ms\"",
        doc: "leader lease length for read_mode = lease (keep below election_timeout_min)",
    },
    crate::ParamDoc {
        name: "snapshot_entries",
        default: "2000",
        doc: "compact the log into a snapshot past this many entries (0: never)",
    },
    crate::ParamDoc {
        name: "batch_max",
        default: "64",
        doc: "most entries in one AppendEntries",
    },
    crate::ParamDoc {
        name: "client_retry",
        default: "\"200ms\"",
        doc: "a client that hears nothing for this long retries at the next server",
    },
    crate::ParamDoc {
        name: "startup_timeout_max",
        default: "none",
        doc: "the first election timeout after a cold start is drawn up to this instead",
    },
    crate::ParamDoc {
        name: "initial_members",
        default: "all",
        doc: "servers in the first configuration; the rest wait to be added",
    },
    crate::ParamDoc {
        name: "membership",
        default: "[]",
        doc: "scripted single-server membership changes, in order",
    },
];

/// Runs a Raft scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    params.validate(sc)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let servers_count = cfg.servers_count;
    params.validate_members(sc, servers_count)?;
    let duration_ns = cfg.duration_ns;
    let timeout_ns = cfg.workload.timeout.0;
    let retry_ns = params.client_retry.0;
    // Only scenarios that change membership get the end check on configurations.
    let membership_target = (params.initial_members.is_some() || !params.membership.is_empty())
        .then(|| params.scripted_config(servers_count));
    let p = Rc::new(params);
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(Client::new(
                info.id,
                info.servers_count,
                timeout_ns,
                retry_ns,
            ))
        } else {
            Node::Server(Box::new(Server::new(
                p.clone(),
                info.id,
                info.servers_count,
            )))
        }
    });
    let shared = Rc::new(RefCell::new(Shared::default()));
    sim.add_checker(Invariants::new(shared.clone(), servers_count));
    if sc.workload.values == 0 {
        sim.add_checker(FreshReads::new(shared.clone()));
    }
    if let Some(target) = membership_target {
        sim.add_checker(MembershipEnd::new(target));
    }
    let mut r = sim.run();
    add_metrics(&mut r, &shared.borrow(), duration_ns);
    Ok(r)
}

/// Metrics computed from what the checkers saw: time to elect after a leader crash, windows
/// without a leader, catch-up after a restart, leader changes, throughput and messages per
/// committed command.
fn add_metrics(r: &mut RunResult, sh: &Shared, duration_ns: u64) {
    let mut after_crash = Vec::new();
    // The same measure after a crash or a partition of the leader (the comparison with Paxos).
    let mut after_fault = Vec::new();
    for f in &r.fault_log {
        let Some(x) = crate::fault_target(f) else {
            continue;
        };
        let Some(&(_, term, leader)) = sh.leaders.iter().rev().find(|(t, _, _)| *t <= f.time_ns)
        else {
            continue;
        };
        if leader != x {
            continue;
        }
        // A run that ends without a new leader counts the time to its end (a censored
        // sample), so that the worst ranges are not flattered by leaving seeds out.
        let t = sh
            .leaders
            .iter()
            .find(|(t, tm, _)| *t > f.time_ns && *tm > term)
            .map(|(t, _, _)| *t)
            .unwrap_or(r.simulated_ns.max(f.time_ns));
        if f.action == "crash" {
            after_crash.push((t - f.time_ns) as f64 / 1e6);
        }
        after_fault.push((t - f.time_ns) as f64 / 1e6);
    }
    let m = &mut r.metrics;
    for (name, samples) in [
        ("election_after_crash_ms", &after_crash),
        ("election_after_fault_ms", &after_fault),
        ("leaderless_ms", &sh.leaderless_ms),
        ("catch_up_ms", &sh.catch_up_ms),
    ] {
        for (suffix, v) in summarize(samples) {
            m.insert(format!("{name}.{suffix}"), v);
        }
    }
    if let Some(&(t, _, _)) = sh.leaders.first() {
        m.insert("first_election_ms".into(), t as f64 / 1e6);
    }
    let changes = sh.leaders.windows(2).filter(|w| w[0].2 != w[1].2).count();
    m.insert("raft.leader_changes".into(), changes as f64);
    m.insert(
        "raft.commands_committed".into(),
        sh.commands_committed as f64,
    );
    let ok = m.get("ops.ok").copied().unwrap_or(0.0);
    m.insert(
        "throughput_ops_per_s".into(),
        ok / (duration_ns as f64 / 1e9).max(1e-9),
    );
    if sh.commands_committed > 0 {
        let sent = m.get("net.sent").copied().unwrap_or(0.0);
        m.insert(
            "msgs_per_command".into(),
            sent / sh.commands_committed as f64,
        );
        let syncs = m.get("disk.syncs").copied().unwrap_or(0.0);
        m.insert(
            "syncs_per_command".into(),
            syncs / sh.commands_committed as f64,
        );
    }
}
