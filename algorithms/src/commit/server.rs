//! A participant's machine: its resource manager, the coordinator (or Paxos Commit leader) of
//! the transactions it coordinates or takes over, and, on nodes `0..2f+1` under Paxos Commit,
//! an acceptor. This file routes messages and timers to those roles, and rebuilds them from
//! the disk after a crash; the roles live in their own files.

use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::{Ctx, NodeId};

use super::check::{Journal, Note};
use super::msg::{Body, Msg, TxnId};
use super::participant::Rm;
use super::paxos_commit::{AccTxn, LeaderTxn};
use super::two_pc::CoordTxn;
use super::{Params, Protocol};

/// What a timer is for; its tag is `txn << 4 | kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Coordinator: votes (or 3PC pre-commit acks) are late.
    Votes = 0,
    /// Participant: the outcome is late.
    Doubt = 1,
    /// Coordinator: resend the commit decision to those who have not acknowledged it.
    Resend = 2,
    /// `decide_before_log`: the decision's log write completes.
    LogWrite = 3,
    /// 3PC terminator: stop collecting states and decide.
    Collect = 4,
    /// Paxos Commit leader: the instances are not all decided; start (another) ballot.
    Ballot = 5,
}

impl TimerKind {
    fn from(tag: u64) -> Option<TimerKind> {
        Some(match tag & 0xf {
            0 => TimerKind::Votes,
            1 => TimerKind::Doubt,
            2 => TimerKind::Resend,
            3 => TimerKind::LogWrite,
            4 => TimerKind::Collect,
            5 => TimerKind::Ballot,
            _ => return None,
        })
    }
}

/// One participant's machine.
pub struct Server {
    /// Its node id.
    pub id: NodeId,
    /// Number of participants (servers).
    pub n: usize,
    /// The scenario's parameters.
    pub p: Rc<Params>,
    /// Where the node tells the checkers what it did (write-only for the node).
    pub(crate) journal: Journal,
    /// The resource manager.
    pub rm: Rm,
    /// 2PC/3PC: transactions this node coordinates or terminates.
    pub coord: BTreeMap<TxnId, CoordTxn>,
    /// Paxos Commit: transactions this node leads (first or in recovery).
    pub leader: BTreeMap<TxnId, LeaderTxn>,
    /// Paxos Commit: this node's acceptor state per transaction.
    pub acc: BTreeMap<TxnId, AccTxn>,
    /// Causal depth of the message being handled (0 in timers).
    pub(crate) depth: u32,
    /// Paxos Commit: the highest ballot round this node has started (kept in the log, so a
    /// ballot is never reused after a crash).
    pub(crate) round: u64,
}

impl Server {
    /// A fresh machine; `on_start` fills it from the disk.
    pub fn new(p: Rc<Params>, id: NodeId, n: usize, journal: Journal) -> Server {
        Server {
            id,
            n,
            rm: Rm::new(&p, id, n),
            p,
            journal,
            coord: BTreeMap::new(),
            leader: BTreeMap::new(),
            acc: BTreeMap::new(),
            depth: 0,
            round: 0,
        }
    }

    /// Whether this node is a Paxos Commit acceptor.
    pub fn is_acceptor(&self) -> bool {
        self.p.protocol == Protocol::PaxosCommit && self.id < 2 * self.p.f + 1
    }

    /// Starts, or after a crash rebuilds every role from the disk.
    pub fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if ctx.is_restart() {
            let mut log = super::wal::replay(ctx.storage());
            self.recover_rm(ctx, &mut log);
            self.recover_coordinator(ctx, &log);
            self.recover_acceptor(&mut log);
        }
        self.publish(ctx);
    }

    /// Handles a message from another node, or one this node sent itself.
    pub fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let saved = self.depth;
        self.depth = msg.depth;
        self.handle(ctx, from, msg.body);
        self.depth = saved;
        self.publish(ctx);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, body: Body) {
        match body {
            Body::Begin(spec) => self.on_begin(ctx, spec),
            Body::Prepare(spec) => self.on_prepare(ctx, spec),
            Body::Vote { txn, yes, reads } => self.on_vote(ctx, from, txn, yes, reads),
            Body::PreCommit { txn } => self.on_precommit(ctx, from, txn),
            Body::PreAck { txn } => self.on_preack(ctx, from, txn),
            Body::Decision { txn, commit } => self.on_decision(ctx, from, txn, commit),
            Body::Ack { txn } => self.on_ack(ctx, from, txn),
            Body::Query { txn } => self.on_query(ctx, from, txn),
            Body::Status { txn, outcome } => self.on_status(ctx, txn, outcome),
            Body::StateReq { txn } => self.on_state_req(ctx, from, txn),
            Body::StateRep { txn, state } => self.on_state_rep(from, txn, state),
            Body::P2a {
                txn,
                parts,
                leader,
                ballot,
                entries,
            } => self.on_p2a(ctx, txn, parts, leader, ballot, entries),
            Body::P2b {
                txn,
                ballot,
                entries,
            } => self.on_p2b(ctx, from, txn, ballot, entries),
            Body::P1a { txn, parts, ballot } => self.on_p1a(ctx, from, txn, parts, ballot),
            Body::P1b {
                txn,
                ballot,
                promised,
                accepted,
            } => self.on_p1b(ctx, from, txn, ballot, promised, accepted),
            Body::Reads { txn, reads } => self.on_reads(ctx, from, txn, reads),
            Body::Outcome { .. } => {}
        }
    }

    /// Handles a timer.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        self.depth = 0;
        let txn = tag >> 4;
        match TimerKind::from(tag) {
            Some(TimerKind::Votes) => self.on_votes_late(ctx, txn),
            Some(TimerKind::Doubt) => self.on_doubt(ctx, txn),
            Some(TimerKind::Resend) => self.on_resend(ctx, txn),
            Some(TimerKind::LogWrite) => self.on_log_write(ctx, txn),
            Some(TimerKind::Collect) => self.on_collect_done(ctx, txn),
            Some(TimerKind::Ballot) => self.on_ballot_late(ctx, txn),
            None => {}
        }
        self.publish(ctx);
    }

    /// Sets a timer for `txn`.
    pub(crate) fn timer(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        txn: TxnId,
        kind: TimerKind,
        after: u64,
    ) {
        ctx.set_timer(after, (txn << 4) | kind as u64);
    }

    /// Sends `body`; to itself it is handled at once, with no message and no delay (the roles
    /// share a machine). Counts the paper's messages apart from the rest.
    pub(crate) fn send(&mut self, ctx: &mut Ctx<'_, Msg>, to: NodeId, body: Body) {
        if to == self.id {
            self.handle(ctx, to, body);
            return;
        }
        if body.in_paper_count() {
            ctx.count("commit.protocol_messages", 1.0);
        } else if !matches!(body, Body::Outcome { .. }) {
            ctx.count("commit.other_messages", 1.0);
        }
        let depth = self.depth + 1;
        ctx.send(to, Msg { depth, body });
    }

    /// Records a note for the checkers.
    pub(crate) fn note(&self, note: Note) {
        self.journal.borrow_mut().push(note);
    }

    /// Series for the report panel: transactions prepared and in doubt, keys locked, and the
    /// transactions this node is coordinating.
    fn publish(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let (prepared, doubt) = self.rm.prepared_counts();
        let locks = self.rm.locks_held();
        let working = self.coord.len() + self.leader.len();
        let now = [prepared, doubt, locks, working];
        const NAMES: [&str; 4] = [
            "state.prepared",
            "state.in_doubt",
            "state.locks",
            "state.working",
        ];
        for (i, name) in NAMES.into_iter().enumerate() {
            if self.rm.published[i] != now[i] {
                self.rm.published[i] = now[i];
                ctx.series(name, now[i] as f64);
            }
        }
    }
}
