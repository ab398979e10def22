//! The coordinator of two-phase commit (and the parts 3PC shares with it): send prepare,
//! collect votes, decide, log a commit decision and sync it before it leaves (presumed abort:
//! an abort is not logged and needs no acknowledgement), resend a commit until every
//! participant acknowledges it, then forget it. A coordinator that restarts resends the commit
//! decisions in its log; one with no record of a transaction answers "abort".

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use sim_core::{Ctx, NodeId};

use super::check::{Note, Role};
use super::msg::{Body, Msg, TermState, TxnId, TxnSpec};
use super::paxos_commit::LeaderTxn;
use super::server::{Server, TimerKind};
use super::wal::{self, Rec, Replay};
use super::{CommitBug, Protocol};

/// Where a coordinated transaction stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Collecting votes.
    Voting,
    /// 3PC termination: collecting participants' states.
    Collecting,
    /// 3PC: waiting for pre-commit acknowledgements.
    PreCommitting,
    /// Decided; a commit waits for acknowledgements.
    Decided,
}

/// A transaction this node coordinates (or, in 3PC, terminates).
#[derive(Clone, Debug)]
pub struct CoordTxn {
    /// The transaction.
    pub spec: Rc<TxnSpec>,
    /// Where it stands.
    pub phase: Phase,
    /// Yes votes received.
    pub yes: BTreeSet<NodeId>,
    /// Accounts read by the participants.
    pub reads: Vec<(u32, i64)>,
    /// The decision, once taken.
    pub decision: Option<bool>,
    /// Participants whose acknowledgement (of the commit, or of the pre-commit) is awaited.
    pub waiting: BTreeSet<NodeId>,
    /// Whether to answer the client (only the original coordinator does).
    pub reply: bool,
    /// 3PC termination: the states collected.
    pub states: BTreeMap<NodeId, TermState>,
    /// Deepest causal chain among the inputs so far.
    pub depth: u32,
}

impl CoordTxn {
    /// A transaction in `phase`.
    pub fn new(spec: Rc<TxnSpec>, phase: Phase, reply: bool) -> CoordTxn {
        CoordTxn {
            spec,
            phase,
            yes: BTreeSet::new(),
            reads: Vec::new(),
            decision: None,
            waiting: BTreeSet::new(),
            reply,
            states: BTreeMap::new(),
            depth: 0,
        }
    }
}

impl Server {
    /// A client's transaction arrives: start it (each protocol's first phase).
    pub(crate) fn on_begin(&mut self, ctx: &mut Ctx<'_, Msg>, spec: Rc<TxnSpec>) {
        let txn = spec.id;
        let known = self.coord.contains_key(&txn)
            || self.leader.contains_key(&txn)
            || self.rm.prepared.contains_key(&txn)
            || self.rm.decided.contains_key(&txn);
        if known {
            return;
        }
        assert_eq!(spec.coord, self.id, "a transaction goes to its coordinator");
        ctx.count("commit.txns", 1.0);
        let after = self.p.vote_timeout.0;
        if self.p.protocol == Protocol::PaxosCommit {
            self.leader
                .insert(txn, LeaderTxn::new(spec.clone(), true, self.depth));
            self.timer(ctx, txn, TimerKind::Ballot, after);
        } else {
            let mut c = CoordTxn::new(spec.clone(), Phase::Voting, true);
            c.depth = self.depth;
            self.coord.insert(txn, c);
            self.timer(ctx, txn, TimerKind::Votes, after);
        }
        for &to in &spec.parts {
            self.send(ctx, to, Body::Prepare(spec.clone()));
        }
    }

    /// A vote: a "no" aborts; the last "yes" commits (2PC) or starts pre-commit (3PC).
    pub(crate) fn on_vote(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        txn: TxnId,
        yes: bool,
        reads: Vec<(u32, i64)>,
    ) {
        let depth = self.depth;
        let Some(c) = self.coord.get_mut(&txn) else {
            return;
        };
        if c.phase != Phase::Voting {
            return;
        }
        c.depth = c.depth.max(depth);
        if !yes {
            return self.decide(ctx, txn, false);
        }
        if c.yes.insert(from) {
            c.reads.extend(reads);
        }
        if c.yes.len() == c.spec.parts.len() {
            match self.p.protocol {
                Protocol::ThreePc => self.start_precommit(ctx, txn, None),
                _ => self.decide(ctx, txn, true),
            }
        }
    }

    /// Decides: a commit is logged and synced first (with `decide_before_log`, after sending);
    /// then the decision goes to the participants and the client.
    pub(crate) fn decide(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId, commit: bool) {
        let Some(c) = self.coord.get_mut(&txn) else {
            return;
        };
        assert!(c.decision.is_none(), "a coordinator decides once");
        c.decision = Some(commit);
        c.phase = Phase::Decided;
        let (spec, reply, depth) = (c.spec.clone(), c.reply, c.depth);
        let reads = if commit {
            std::mem::take(&mut c.reads)
        } else {
            Vec::new()
        };
        let role = if reply {
            Role::Coordinator
        } else {
            Role::Terminator
        };
        self.depth = depth;
        self.note(Note::Decided {
            node: self.id,
            txn,
            commit,
            role,
            spec: spec.clone(),
        });
        if reply {
            self.send(ctx, spec.client, Body::Outcome { txn, commit, reads });
        }
        if !commit {
            self.coord.remove(&txn);
            for &to in &spec.parts {
                self.send(ctx, to, Body::Decision { txn, commit: false });
            }
            return;
        }
        let late_log = self.p.has(CommitBug::DecideBeforeLog);
        if late_log {
            let after = self.p.log_delay.0;
            self.timer(ctx, txn, TimerKind::LogWrite, after);
        } else {
            self.log_commit(ctx, &spec);
        }
        if let Some(c) = self.coord.get_mut(&txn) {
            c.waiting = spec.parts.iter().copied().collect();
        }
        for &to in &spec.parts {
            if !(late_log && to == self.id) {
                self.send(ctx, to, Body::Decision { txn, commit: true });
            }
        }
        let after = self.p.retry.0;
        self.timer(ctx, txn, TimerKind::Resend, after);
    }

    fn log_commit(&mut self, ctx: &mut Ctx<'_, Msg>, spec: &Rc<TxnSpec>) {
        wal::append(ctx, &Rec::CoordCommit { spec: spec.clone() });
        ctx.storage().sync();
    }

    /// `decide_before_log`: the commit record reaches the disk only now, and the coordinator's
    /// own participant applies the commit.
    pub(crate) fn on_log_write(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        let Some(c) = self.coord.get(&txn) else {
            return;
        };
        let spec = c.spec.clone();
        self.log_commit(ctx, &spec);
        self.send(ctx, self.id, Body::Decision { txn, commit: true });
    }

    /// An acknowledgement of the commit (or, in 3PC, of the pre-commit).
    pub(crate) fn on_ack(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, txn: TxnId) {
        let Some(c) = self.coord.get_mut(&txn) else {
            return;
        };
        if c.phase != Phase::Decided {
            return;
        }
        c.waiting.remove(&from);
        if c.waiting.is_empty() {
            // Every participant has applied the commit: the record may go (presumed abort).
            self.coord.remove(&txn);
            wal::append(ctx, &Rec::CoordForget { txn });
        }
    }

    /// Resends the commit to those who have not acknowledged it.
    pub(crate) fn on_resend(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        let Some(c) = self.coord.get(&txn) else {
            return;
        };
        if c.decision != Some(true) {
            return;
        }
        let waiting: Vec<NodeId> = c.waiting.iter().copied().collect();
        for to in waiting {
            self.send(ctx, to, Body::Decision { txn, commit: true });
        }
        let after = self.p.retry.0;
        self.timer(ctx, txn, TimerKind::Resend, after);
    }

    /// Votes (or 3PC's pre-commit acks, or termination states) are late.
    pub(crate) fn on_votes_late(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        let Some(c) = self.coord.get(&txn) else {
            return;
        };
        match c.phase {
            Phase::Voting => {
                let commit = self.p.has(CommitBug::CommitOnTimeout);
                self.decide(ctx, txn, commit)
            }
            // Skeen: everyone voted yes; a participant that does not acknowledge the
            // pre-commit has failed and will learn the commit when it recovers.
            Phase::PreCommitting => self.decide(ctx, txn, true),
            Phase::Collecting | Phase::Decided => {}
        }
    }

    /// After a crash: resend every logged commit that was not fully acknowledged; under 2PC,
    /// abort every transaction this node coordinated and has no commit record of (presumed
    /// abort: a commit is logged before it is sent, so none was sent).
    pub(crate) fn recover_coordinator(&mut self, ctx: &mut Ctx<'_, Msg>, log: &Replay) {
        if self.p.protocol == Protocol::TwoPc {
            let orphans: Vec<Rc<TxnSpec>> = self
                .rm
                .prepared
                .values()
                .filter(|p| p.spec.coord == self.id && !log.commits.contains_key(&p.spec.id))
                .map(|p| p.spec.clone())
                .collect();
            for spec in orphans {
                self.note(Note::Decided {
                    node: self.id,
                    txn: spec.id,
                    commit: false,
                    role: Role::Coordinator,
                    spec: spec.clone(),
                });
                for &to in &spec.parts {
                    self.send(
                        ctx,
                        to,
                        Body::Decision {
                            txn: spec.id,
                            commit: false,
                        },
                    );
                }
            }
        }
        for spec in log.commits.values() {
            let spec = spec.clone();
            let txn = spec.id;
            let mut c = CoordTxn::new(spec.clone(), Phase::Decided, false);
            c.decision = Some(true);
            c.waiting = spec.parts.iter().copied().collect();
            self.coord.insert(txn, c);
            for &to in &spec.parts {
                self.send(ctx, to, Body::Decision { txn, commit: true });
            }
            let after = self.p.retry.0;
            self.timer(ctx, txn, TimerKind::Resend, after);
        }
    }
}
