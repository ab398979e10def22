//! Optimistic against pessimistic concurrency control on a sharded key-value store.
//!
//! Every server is a shard; key `kN` lives on shard `N % servers`. Clients run
//! read-modify-write transactions: `incr` adds 1 to a key, `transfer` moves 1 from the
//! operation's key to another key the client draws (the total is conserved). A key starts at
//! `initial`.
//!
//! `control` in `[params]` chooses how they are kept apart:
//! - `optimistic`: read every key with its version; a one-key transaction commits with a
//!   compare-and-set on the version; a transaction over several keys prepares on every shard
//!   (each checks the versions it read are still current and marks the keys), then commits
//!   or aborts everywhere. A conflict aborts, and the client retries after an exponential,
//!   jittered backoff.
//! - `pessimistic`: strict two-phase locking: lock a key (exclusive) before reading it, write
//!   in place with an undo record, hold every lock until commit or abort. Deadlocks are
//!   handled by `deadlock`: `wait_die` (an older transaction waits, a younger one dies),
//!   `wound_wait` (an older one wounds the holder, a younger one waits) or `timeout` (a wait
//!   longer than `lock_timeout` aborts). An aborted transaction retries with its original
//!   timestamp, so it eventually becomes the oldest and wins.
//!
//! Shards do not crash in this family (atomic commitment across crashes is the commit
//! family's lesson); the faults are the network's (loss, duplication, delay), pauses, clock
//! steps and clogging. Clients resend unanswered requests every `retry`; shards answer
//! duplicates idempotently.
//!
//! Checks ([`check`]): no lost update (every key ends at its initial value plus the
//! acknowledged increments and transfers that touched it, and transfers conserve the total),
//! and no deadlock (at the end, no cycle of transactions waiting for each other's locks).
//! Clients record each transaction's reads and writes as Jepsen-style micro-operations
//! (`[["r", key, value], ["w", key, value]]`) in the completion value, for a transactional
//! checker to read.

pub mod check;
pub mod client;
pub mod shard;
mod summary;

use std::borrow::Cow;

use serde::Deserialize;
use sim_core::faults::{FaultAction, NemesisConfig, NemesisKind};
use sim_core::time::{Duration, MS};
use sim_core::{
    Ctx, Message, NodeId, Op, Process, RunOptions, RunResult, Scenario, ScenarioError, Sim,
    SimConfig, TimerId,
};

pub use check::CcChecker;
pub use client::Client;
pub use shard::Shard;

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[crate::Bug] = CcBug::ALL;

crate::bug_switches! {
    /// The concurrency-control bug switches.
    pub enum CcBug {
        /// Optimistic commits write whatever version is current.
        SkipVersionCheck = ("skip_version_check", "an optimistic write commits only if the version it read is still current (compare-and-set), or concurrent updates are lost"),
        /// Locks are released as soon as a key is written.
        EarlyLockRelease = ("early_lock_release", "strict two-phase locking holds every lock until commit or abort, or others read uncommitted data an abort then erases"),
        /// Lock waits are never broken.
        NoDeadlockHandling = ("no_deadlock_handling", "lock waits must be broken (wait-die, wound-wait or a timeout), or two transactions wait for each other for ever"),
    }
}

/// The `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[
    crate::ParamDoc {
        name: "control",
        default: "\"optimistic\"",
        doc: "optimistic (versions, compare-and-set) or pessimistic (strict 2PL)",
    },
    crate::ParamDoc {
        name: "deadlock",
        default: "\"wait_die\"",
        doc: "wait_die, wound_wait or timeout (pessimistic)",
    },
    crate::ParamDoc {
        name: "lock_timeout",
        default: "\"100ms\"",
        doc: "longest lock wait with deadlock = timeout",
    },
    crate::ParamDoc {
        name: "retry",
        default: "\"50ms\"",
        doc: "clients resend unanswered requests this often",
    },
    crate::ParamDoc {
        name: "backoff",
        default: "\"2ms\"",
        doc: "first backoff after an abort (doubled per attempt, jittered)",
    },
    crate::ParamDoc {
        name: "attempts_max",
        default: "50",
        doc: "attempts per operation before it fails",
    },
    crate::ParamDoc {
        name: "initial",
        default: "100",
        doc: "every key's starting value",
    },
    crate::ParamDoc {
        name: "bug",
        default: "none",
        doc: "a switchable bug (see bugs)",
    },
];

/// Optimistic or pessimistic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Control {
    /// Versions, compare-and-set, retry with backoff.
    Optimistic,
    /// Strict two-phase locking.
    Pessimistic,
}

/// How lock waits are kept from deadlocking.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deadlock {
    /// Older waits, younger dies.
    WaitDie,
    /// Older wounds the holder, younger waits.
    WoundWait,
    /// Every wait ends after `lock_timeout`.
    Timeout,
}

/// `[params]` of a concurrency-control scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Optimistic or pessimistic.
    pub control: Control,
    /// Deadlock handling (pessimistic).
    pub deadlock: Deadlock,
    /// Longest lock wait with `deadlock = "timeout"`.
    pub lock_timeout: Duration,
    /// Clients resend unanswered requests this often.
    pub retry: Duration,
    /// First backoff after an abort; doubled per attempt, jittered, capped at 32x.
    pub backoff: Duration,
    /// Attempts per operation before it fails.
    pub attempts_max: u32,
    /// Every key's starting value.
    pub initial: i64,
    /// A switchable bug.
    pub bug: Option<CcBug>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            control: Control::Optimistic,
            deadlock: Deadlock::WaitDie,
            lock_timeout: Duration(100 * MS),
            retry: Duration(50 * MS),
            backoff: Duration(2 * MS),
            attempts_max: 50,
            initial: 100,
            bug: None,
        }
    }
}

impl Params {
    /// Whether a bug switch is on.
    pub fn has(&self, bug: CcBug) -> bool {
        self.bug == Some(bug)
    }
}

/// A transaction's identity: the client's node in the high bits, a counter in the low ones.
pub type TxnId = u64;

/// A write's name in the history the transactional checker reads: the client node times a
/// million plus the transaction's counter, e.g. `9000012` for `n9#12`. Unique per write, so a
/// read names the one write it saw (Elle's rw-register).
pub fn write_tag(txn: TxnId) -> i64 {
    let counter = txn & 0xffff_ffff;
    assert!(
        counter < 1_000_000,
        "write tags number a client's transactions below a million"
    );
    ((txn >> 32) * 1_000_000 + counter) as i64
}

/// What a lock request got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockResult {
    /// Granted, with the key's value and the write that produced it.
    Granted(i64, Option<i64>),
    /// Wait-die: the requester is younger than the holder, so it dies.
    Died,
    /// The wait outlasted `lock_timeout`.
    TimedOut,
}

/// The messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Optimistic: read a key and its version.
    Read {
        /// The transaction.
        txn: TxnId,
        /// The key.
        key: u32,
    },
    /// A key's value and version.
    ReadReply {
        /// The transaction.
        txn: TxnId,
        /// The key.
        key: u32,
        /// Its value.
        value: i64,
        /// Its version.
        version: u64,
        /// The write that produced the value ([`write_tag`]; `None` for the initial value).
        writer: Option<i64>,
    },
    /// Optimistic, one key: write `value` if the version is still `version`.
    Cas {
        /// The transaction.
        txn: TxnId,
        /// The key.
        key: u32,
        /// The version read.
        version: u64,
        /// The new value.
        value: i64,
    },
    /// Optimistic, several keys: check the versions and mark the keys.
    Prepare {
        /// The transaction.
        txn: TxnId,
        /// (key, version read, new value) on this shard.
        writes: Vec<(u32, u64, i64)>,
    },
    /// A shard's answer to `Cas` or `Prepare`.
    Vote {
        /// The transaction.
        txn: TxnId,
        /// Committed (`Cas`) or prepared (`Prepare`).
        yes: bool,
    },
    /// Commit or abort at a shard (both controls).
    Decide {
        /// The transaction.
        txn: TxnId,
        /// Commit (true) or abort.
        commit: bool,
    },
    /// The shard applied the decision.
    Decided {
        /// The transaction.
        txn: TxnId,
    },
    /// Pessimistic: lock a key exclusively and read it.
    Lock {
        /// The transaction.
        txn: TxnId,
        /// Its timestamp (smaller is older), kept across retries.
        ts: u64,
        /// The key.
        key: u32,
    },
    /// The lock request's outcome.
    LockReply {
        /// The transaction.
        txn: TxnId,
        /// The key.
        key: u32,
        /// Granted, died or timed out.
        result: LockResult,
    },
    /// Wound-wait: an older transaction wants a lock you hold: abort.
    Wounded {
        /// The wounded transaction.
        txn: TxnId,
    },
    /// Pessimistic: write a locked key in place (an undo record keeps the old value).
    Write {
        /// The transaction.
        txn: TxnId,
        /// The key.
        key: u32,
        /// The new value.
        value: i64,
    },
    /// The write is applied.
    WriteAck {
        /// The transaction.
        txn: TxnId,
        /// The key.
        key: u32,
    },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Read { .. } => "read",
            Msg::ReadReply { .. } => "read_reply",
            Msg::Cas { .. } => "cas",
            Msg::Prepare { .. } => "prepare",
            Msg::Vote { .. } => "vote",
            Msg::Decide { .. } => "decide",
            Msg::Decided { .. } => "decided",
            Msg::Lock { .. } => "lock",
            Msg::LockReply { .. } => "lock_reply",
            Msg::Wounded { .. } => "wounded",
            Msg::Write { .. } => "write",
            Msg::WriteAck { .. } => "write_ack",
        }
    }
}

/// The shard that holds a key.
pub fn shard_of(key: u32, shards: usize) -> NodeId {
    key as usize % shards
}

/// A node: a shard or a client.
pub enum Node {
    /// A shard of the store.
    Shard(Box<Shard>),
    /// A client running transactions.
    Client(Box<Client>),
}

impl Node {
    /// The shard, if this node is one.
    pub fn shard(&self) -> Option<&Shard> {
        match self {
            Node::Shard(s) => Some(s),
            Node::Client(_) => None,
        }
    }
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, _ctx: &mut Ctx<'_, Msg>) {}

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match self {
            Node::Shard(s) => s.on_message(ctx, from, msg),
            Node::Client(c) => c.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        match self {
            Node::Shard(s) => s.on_timer(ctx, tag),
            Node::Client(c) => c.on_timer(ctx, tag),
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        if let Node::Client(c) = self {
            c.on_invoke(ctx, op);
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        summary::of(self)
    }
}

fn validate(sc: &Scenario, p: &Params) -> Result<(), ScenarioError> {
    if sc.workload.keys == 0 {
        return Err(sc.error_at(
            "keys",
            "a concurrency scenario needs keys >= 1 in [workload] (the store's key count)".into(),
        ));
    }
    if let Some(f) = sc
        .workload
        .mix
        .keys()
        .find(|f| *f != "incr" && *f != "transfer")
    {
        return Err(sc.error_at(
            "mix",
            format!("unknown operation \"{f}\": concurrency clients run `incr` and `transfer`"),
        ));
    }
    if sc.workload.mix.contains_key("transfer") && sc.workload.keys < 2 {
        return Err(sc.error_at(
            "keys",
            "`transfer` moves between two keys: use keys >= 2".into(),
        ));
    }
    if sc
        .nemesis
        .as_ref()
        .is_some_and(|n| n.kinds.contains(&NemesisKind::Crash))
    {
        return Err(sc.error_at(
            "kinds",
            "shards of the concurrency family do not crash (see docs/concurrency.md): drop \"crash\" from [nemesis] kinds".into(),
        ));
    }
    if let Some(i) = sc
        .faults
        .iter()
        .position(|f| matches!(f.action, FaultAction::Crash { .. }))
    {
        return Err(sc.error_at_table(
            "faults",
            i,
            "action",
            "shards of the concurrency family do not crash (see docs/concurrency.md): they keep \
             no log, so a crash would lose committed writes and the checker would report that \
             as an isolation anomaly; pause the shard, or cut it off with a partition"
                .into(),
        ));
    }
    for (field, d) in [
        ("lock_timeout", p.lock_timeout),
        ("retry", p.retry),
        ("backoff", p.backoff),
    ] {
        if d.0 == 0 {
            return Err(sc.error_at(field, format!("{field} must be above zero")));
        }
    }
    if p.attempts_max == 0 {
        return Err(sc.error_at("attempts_max", "attempts_max must be at least 1".into()));
    }
    let optimistic_bug = p.has(CcBug::SkipVersionCheck);
    if p.bug.is_some() && optimistic_bug != (p.control == Control::Optimistic) {
        return Err(sc.error_at(
            "bug",
            format!(
                "bug \"{}\" belongs to control = \"{}\"",
                p.bug.map_or("", |b| b.name()),
                if optimistic_bug {
                    "optimistic"
                } else {
                    "pessimistic"
                }
            ),
        ));
    }
    Ok(())
}

/// Under `--swarm`, a scenario without `[nemesis]` draws its fault mix from every kind; shards
/// do not crash here (see [`validate`]), so it draws from every kind but crash.
fn swarm_without_crashes<'a>(sc: &'a Scenario, opts: &RunOptions) -> Cow<'a, Scenario> {
    if !opts.swarm || sc.nemesis.is_some() {
        return Cow::Borrowed(sc);
    }
    let mut base = NemesisConfig::swarm_base();
    base.kinds.retain(|k| *k != NemesisKind::Crash);
    let mut sc = sc.clone();
    sc.nemesis = Some(base);
    Cow::Owned(sc)
}

/// Runs a concurrency-control scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    validate(sc, &params)?;
    let cfg = SimConfig::new(&swarm_without_crashes(sc, opts), seed, opts);
    let keys = cfg.workload.keys as u32;
    let shards = cfg.servers_count;
    let p = params.clone();
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(Box::new(Client::new(p.clone(), info.id, shards, keys)))
        } else {
            Node::Shard(Box::new(Shard::new(p.clone())))
        }
    });
    sim.add_checker(CcChecker::new(params.initial, keys));
    let mut result = sim.run();
    let m = &mut result.metrics;
    let attempts = m.get("cc.attempts").copied().unwrap_or(0.0);
    let aborts = m.get("cc.aborts").copied().unwrap_or(0.0);
    m.insert("cc.aborts".into(), aborts);
    if attempts > 0.0 {
        m.insert("cc.abort_rate".into(), aborts / attempts);
    }
    Ok(result)
}
