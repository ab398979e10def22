//! Atomic commit: two-phase commit, three-phase commit and Paxos Commit over the same
//! participants, workload and checks.
//!
//! One algorithm, `commit`, with `protocol = "2pc" | "3pc" | "paxos_commit"` in `[params]`: the
//! three share the resource managers (keyed data, locks from prepare to outcome, a write-ahead
//! log whose prepared record is synced before a yes vote, recovery from it), the clients and
//! the checks, and differ only in how the outcome is reached, which is the lesson.
//!
//! - Servers `0..nodes` are the participants (resource managers). Account `a` and register `r`
//!   live on participant `a % nodes` and `r % nodes`. Each transaction is coordinated by its
//!   lowest-numbered participant (Gray and Lamport's "coordinator on a participant's machine").
//! - `2pc` ([`two_pc`]): presumed abort (only commit records are logged, synced before the
//!   decision leaves), the decision retransmitted until acknowledged, a vote timeout that
//!   aborts, and the cooperative termination protocol (an uncertain participant asks the
//!   coordinator and its peers). It blocks when the coordinator is gone and every peer is
//!   uncertain.
//! - `3pc` ([`three_pc`]): Skeen's pre-commit phase and termination protocol (the
//!   lowest-ranked live participant collects states and decides). Non-blocking when nodes only
//!   crash and messages arrive in time; under a partition the two sides decide differently.
//! - `paxos_commit` ([`paxos_commit`]): each participant's vote is decided by a Paxos instance
//!   on `2f + 1` acceptors (nodes `0..2f+1`); in the normal case a participant sends its vote
//!   to `f + 1` of them at ballot 0 and each acceptor sends one bundled phase 2b to the leader.
//!   An uncertain participant becomes a recovery leader (a higher ballot, phase 1 on a
//!   majority, aborted for any instance with no vote), so the outcome is known while at most
//!   `f` acceptors fail.
//!
//! Clients ([`client`]) run `transfer` (debit one account, credit another on a different
//! participant), `read_all` (every account, under shared locks) and `write` (one register on
//! each of `write_span` participants). Checks ([`check`]): atomicity and agreement on every
//! decision record and on the final state, validity, conservation of money in the final
//! state and in every read of all accounts, no negative balance, and blocked participants.

pub mod check;
pub mod client;
pub mod msg;
pub mod participant;
pub mod paxos_commit;
pub mod server;
mod summary;
pub mod three_pc;
pub mod two_pc;
pub mod wal;

use std::cell::RefCell;
use std::rc::Rc;

use serde::Deserialize;
use sim_core::time::{Duration, MS};
use sim_core::{
    Ctx, NodeId, Op, Process, RunOptions, RunResult, Scenario, ScenarioError, Sim, SimConfig,
    TimerId,
};

use crate::Bug;

pub use check::{CommitChecker, CommitStats, Journal};
pub use client::Client;
pub use msg::{Body, Msg, TxnId};
pub use server::Server;

/// The switchable bugs, one line each on the rule they break (declared once, in
/// [`CommitBug`]).
pub const BUGS: &[Bug] = CommitBug::ALL;

crate::bug_switches! {
    /// The commit family's bug switches (`bug = "..."` in `[params]`).
    pub enum CommitBug {
        /// The participant votes yes before its prepared record is synced.
        VoteBeforeSync = ("vote_before_sync",
            "a participant must sync its prepared record before voting yes (a crash forgets the promise)"),
        /// The coordinator sends its decision, then logs it a little later.
        DecideBeforeLog = ("decide_before_log",
            "the coordinator must log and sync its decision before sending it (a crash turns commit into presumed abort)"),
        /// A participant that times out in doubt aborts on its own.
        HeuristicAbort = ("heuristic_abort",
            "a participant that voted yes must not decide on its own (a heuristic abort breaks atomicity)"),
        /// The coordinator commits when votes time out.
        CommitOnTimeout = ("commit_on_timeout",
            "a coordinator whose votes time out must abort (commit needs every yes vote)"),
        /// Locks are released when the participant votes yes.
        ReleaseLocksAtPrepare = ("release_locks_at_prepare",
            "a prepared participant must hold its locks until the outcome (early release lets money vanish or go negative)"),
        /// A restarted participant ignores its prepared records.
        ForgetPrepared = ("forget_prepared",
            "a recovered participant must rebuild its prepared transactions and their locks from the log"),
    }
}

/// `[params]` fields, for `distsim list` (a test checks they match [`Params`]).
pub const PARAMS: &[crate::ParamDoc] = &[
    crate::ParamDoc {
        name: "protocol",
        default: "\"2pc\"",
        doc: "2pc, 3pc or paxos_commit",
    },
    crate::ParamDoc {
        name: "accounts",
        default: "10",
        doc: "bank accounts, spread over the participants",
    },
    crate::ParamDoc {
        name: "initial_balance",
        default: "100",
        doc: "each account's opening balance",
    },
    crate::ParamDoc {
        name: "max_transfer",
        default: "30",
        doc: "a transfer moves 1..=max_transfer",
    },
    crate::ParamDoc {
        name: "registers",
        default: "10",
        doc: "registers for write, spread over the participants",
    },
    crate::ParamDoc {
        name: "write_span",
        default: "0",
        doc: "participants a write touches (0 = all)",
    },
    crate::ParamDoc {
        name: "vote_timeout",
        default: "\"100ms\"",
        doc: "how long a coordinator waits for votes (and 3PC pre-commit acks)",
    },
    crate::ParamDoc {
        name: "decision_timeout",
        default: "\"200ms\"",
        doc: "how long a prepared participant waits before it asks or takes over",
    },
    crate::ParamDoc {
        name: "retry",
        default: "\"100ms\"",
        doc: "interval at which a commit is resent until acknowledged",
    },
    crate::ParamDoc {
        name: "f",
        default: "1",
        doc: "Paxos Commit: 2f+1 acceptors tolerate f failures",
    },
    crate::ParamDoc {
        name: "log_delay",
        default: "\"20ms\"",
        doc: "decide_before_log: how late the decision reaches the log",
    },
    crate::ParamDoc {
        name: "bug",
        default: "none",
        doc: "a switchable bug (see bugs)",
    },
];

/// Which commit protocol runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// Two-phase commit, presumed abort, cooperative termination.
    #[serde(rename = "2pc")]
    TwoPc,
    /// Skeen's three-phase commit with its termination protocol.
    #[serde(rename = "3pc")]
    ThreePc,
    /// Gray and Lamport's Paxos Commit.
    #[serde(rename = "paxos_commit")]
    PaxosCommit,
}

/// Most accounts (and registers): each is created, with its lock table entry, at start.
const KEYS_MAX: u32 = 1_000_000;

/// `[params]` of a commit scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The protocol.
    pub protocol: Protocol,
    /// Bank accounts, spread over the participants.
    pub accounts: u32,
    /// Each account's opening balance.
    pub initial_balance: i64,
    /// A transfer moves 1..=max_transfer.
    pub max_transfer: i64,
    /// Registers for `write`, spread over the participants.
    pub registers: u32,
    /// Participants a `write` touches (0 = every participant).
    pub write_span: usize,
    /// How long a coordinator waits for votes (and 3PC pre-commit acks) before giving up.
    pub vote_timeout: Duration,
    /// How long a prepared participant waits for the outcome before it asks (then again at
    /// this interval; 3PC and Paxos Commit take over after `rank + 1` of them).
    pub decision_timeout: Duration,
    /// Interval at which a commit decision is resent until acknowledged.
    pub retry: Duration,
    /// Paxos Commit tolerates `f` acceptor failures with `2f + 1` acceptors.
    pub f: usize,
    /// `decide_before_log` only: how long after sending the decision the coordinator's log
    /// write completes.
    pub log_delay: Duration,
    /// A switchable bug.
    pub bug: Option<CommitBug>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            protocol: Protocol::TwoPc,
            accounts: 10,
            initial_balance: 100,
            max_transfer: 30,
            registers: 10,
            write_span: 0,
            vote_timeout: Duration(100 * MS),
            decision_timeout: Duration(200 * MS),
            retry: Duration(100 * MS),
            f: 1,
            log_delay: Duration(20 * MS),
            bug: None,
        }
    }
}

impl Params {
    /// Whether `bug` is switched on.
    pub fn has(&self, bug: CommitBug) -> bool {
        self.bug == Some(bug)
    }
}

/// A node of a commit scenario.
pub enum Node {
    /// A participant (with its coordinator and acceptor roles).
    Server(Box<Server>),
    /// A client.
    Client(Client),
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Node::Server(s) = self {
            s.on_start(ctx);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match self {
            Node::Server(s) => s.on_message(ctx, from, msg),
            Node::Client(c) => c.on_message(ctx, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        match self {
            Node::Server(s) => s.on_timer(ctx, tag),
            Node::Client(c) => c.on_timer(ctx, tag),
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        if let Node::Client(c) = self {
            c.on_invoke(ctx, op);
        }
    }

    fn role_rank(&self, role: &str) -> Option<u64> {
        // "coordinator": node 0 coordinates every transaction it takes part in (the lowest
        // participant coordinates), and with `write` spanning everyone, every transaction.
        match (self, role) {
            (Node::Server(s), "coordinator") if s.id == 0 => Some(1),
            (Node::Server(s), "participant") if s.id != 0 => Some(s.id as u64),
            _ => None,
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        summary::of(self)
    }
}

/// The operations commit clients accept.
pub const OPERATIONS: &[&str] = &["transfer", "read_all", "write"];

/// The roles faults may name.
pub const ROLES: &[&str] = &["coordinator", "participant"];

fn validate(sc: &Scenario, p: &Params) -> Result<(), ScenarioError> {
    if sc.nodes < 2 {
        return Err(sc.error_at(
            "nodes",
            "a commit scenario needs at least 2 participants (servers)".into(),
        ));
    }
    if p.protocol == Protocol::PaxosCommit && sc.nodes < 2 * p.f + 1 {
        return Err(sc.error_at(
            "f",
            format!(
                "Paxos Commit puts 2f+1 = {} acceptors on the participants' machines but there are only {} servers; lower f or add nodes",
                2 * p.f + 1,
                sc.nodes
            ),
        ));
    }
    if p.write_span > sc.nodes {
        return Err(sc.error_at(
            "write_span",
            format!(
                "write_span = {} is more than the {} participants; use 0 (all) or 1..={}",
                p.write_span, sc.nodes, sc.nodes
            ),
        ));
    }
    if p.accounts > KEYS_MAX || p.registers > KEYS_MAX {
        return Err(sc.error_at(
            if p.accounts > KEYS_MAX {
                "accounts"
            } else {
                "registers"
            },
            "accounts and registers must be at most 1,000,000 each (every one is created at start)"
                .into(),
        ));
    }
    if (p.accounts as usize) < 2 || p.initial_balance < 0 || p.max_transfer < 1 {
        return Err(sc.error_at(
            "accounts",
            "accounts must be at least 2, initial_balance at least 0 and max_transfer at least 1"
                .into(),
        ));
    }
    for (field, d) in [
        ("vote_timeout", p.vote_timeout),
        ("decision_timeout", p.decision_timeout),
        ("retry", p.retry),
        ("log_delay", p.log_delay),
    ] {
        if d.0 == 0 {
            return Err(sc.error_at(field, format!("{field} must be above zero")));
        }
    }
    let coordinator_bug = matches!(
        p.bug,
        Some(CommitBug::DecideBeforeLog) | Some(CommitBug::CommitOnTimeout)
    );
    if coordinator_bug && p.protocol == Protocol::PaxosCommit {
        return Err(sc.error_at(
            "bug",
            "this bug is about a coordinator's own decision; Paxos Commit's leader neither logs nor times out into a decision (the acceptors decide), so use protocol = \"2pc\" or \"3pc\"".into(),
        ));
    }
    if let Some(f) = sc
        .workload
        .mix
        .keys()
        .find(|f| !OPERATIONS.contains(&f.as_str()))
    {
        return Err(sc.error_at(
            "mix",
            format!(
                "commit clients run {}; \"{f}\" is not one of them",
                OPERATIONS.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Runs a commit scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    validate(sc, &params)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let servers = cfg.servers_count;
    let timeout = cfg.workload.timeout.0;
    let p = Rc::new(params);
    let journal: Journal = Rc::new(RefCell::new(Vec::new()));
    let (pf, jf) = (p.clone(), journal.clone());
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(Client::new(
                pf.clone(),
                info.id,
                info.servers_count,
                timeout,
            ))
        } else {
            Node::Server(Box::new(Server::new(
                pf.clone(),
                info.id,
                info.servers_count,
                jf.clone(),
            )))
        }
    });
    let stats = Rc::new(RefCell::new(CommitStats::default()));
    sim.add_checker(CommitChecker::new(
        p.clone(),
        servers,
        journal,
        stats.clone(),
    ));
    let mut result = sim.run();
    stats.borrow().add_metrics(&mut result.metrics);
    Ok(result)
}
