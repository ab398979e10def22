//! Paxos Commit (Gray and Lamport, 2006): one Paxos instance per participant decides whether
//! that participant is prepared; the transaction commits iff every instance chose "prepared".
//!
//! Acceptors are nodes `0..2f+1`. Ballot 0 of each instance belongs to its participant, which
//! sends its vote as a phase 2a straight to `f + 1` acceptors (a majority) with no phase 1. An
//! acceptor that has accepted every instance of a transaction at ballot 0 sends one bundled
//! phase 2b to the leader (the coordinator); an "aborted" vote is passed on at once. An
//! instance is chosen when `f + 1` acceptors accepted it at the same ballot.
//!
//! When the outcome is late, the leader, or a participant in rank order, runs a higher ballot
//! `(round << 8) | node`: phase 1 on every acceptor, then, from a majority's answers, phase 2a
//! with each instance's highest accepted vote, or "aborted" for an instance with none. The
//! leader logs nothing: the acceptors' synced votes are the decision's record.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::{Ctx, NodeId};

use super::check::{Note, Role};
use super::msg::{Accepted, Body, Msg, Piece, TxnId, TxnSpec};
use super::server::{Server, TimerKind};
use super::wal::{self, Rec, Replay};

/// An acceptor's state for one transaction (every instance shares the promise: phase 1 is
/// always run on all instances at once).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccTxn {
    /// The participants (one instance each).
    pub parts: Vec<NodeId>,
    /// The leader of ballot 0.
    pub leader: NodeId,
    /// Highest ballot promised.
    pub promised: u64,
    /// Accepted (ballot, prepared?) per instance.
    pub accepted: BTreeMap<NodeId, Accepted>,
    /// Whether the ballot-0 bundle went to the leader.
    pub bundled: bool,
    /// Deepest causal chain among the phase 2a messages so far (the bundle leaves after all).
    #[serde(default)]
    pub depth: u32,
}

/// A transaction this node leads, first (its coordinator) or in recovery.
#[derive(Clone, Debug)]
pub struct LeaderTxn {
    /// The transaction.
    pub spec: Rc<TxnSpec>,
    /// Current ballot (0 until a recovery round).
    pub ballot: u64,
    /// Rounds started.
    pub round: u64,
    /// Phase 1b answers for the current ballot.
    pub promises: BTreeMap<NodeId, Vec<(NodeId, Option<Accepted>)>>,
    /// Phase 2b answers: (instance, ballot) -> acceptors and the value.
    pub votes: BTreeMap<(NodeId, u64), (BTreeSet<NodeId>, bool)>,
    /// Chosen values per instance.
    pub chosen: BTreeMap<NodeId, bool>,
    /// The outcome, once known.
    pub decided: Option<bool>,
    /// Whether to answer the client (only the first leader does).
    pub reply: bool,
    /// Reads from the participants.
    pub reads: BTreeMap<NodeId, Vec<(u32, i64)>>,
    /// Deepest causal chain among the inputs so far.
    pub depth: u32,
}

impl LeaderTxn {
    /// A leader for `spec`.
    pub fn new(spec: Rc<TxnSpec>, reply: bool, depth: u32) -> LeaderTxn {
        LeaderTxn {
            spec,
            ballot: 0,
            round: 0,
            promises: BTreeMap::new(),
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
            decided: None,
            reply,
            reads: BTreeMap::new(),
            depth,
        }
    }

    /// Whether every participant that reads has sent its reads.
    fn reads_complete(&self) -> bool {
        let readers = self
            .spec
            .pieces
            .iter()
            .filter(|(_, p)| *p == Piece::ReadAll);
        readers.clone().all(|(n, _)| self.reads.contains_key(n))
    }
}

impl Server {
    fn persist_acceptor(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        let state = self.acc[&txn].clone();
        wal::append(ctx, &Rec::Acceptor { txn, state });
        ctx.storage().sync();
    }

    /// Acceptor, phase 2a: accept unless a higher ballot was promised; synced before answering.
    pub(crate) fn on_p2a(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        txn: TxnId,
        parts: Rc<[NodeId]>,
        leader: NodeId,
        ballot: u64,
        entries: Vec<(NodeId, bool)>,
    ) {
        if !self.is_acceptor() {
            return;
        }
        let a = self.acc.entry(txn).or_insert_with(|| AccTxn {
            parts: parts.to_vec(),
            leader,
            promised: 0,
            accepted: BTreeMap::new(),
            bundled: false,
            depth: 0,
        });
        if ballot < a.promised {
            return;
        }
        a.depth = a.depth.max(self.depth);
        a.promised = ballot;
        for &(rm, v) in &entries {
            a.accepted.insert(rm, (ballot, v));
        }
        let full = ballot == 0
            && !a.bundled
            && a.parts
                .iter()
                .all(|p| a.accepted.get(p).is_some_and(|x| x.0 == 0));
        let bundle: Vec<(NodeId, bool)> = if full {
            a.bundled = true;
            a.accepted.iter().map(|(&rm, &(_, v))| (rm, v)).collect()
        } else {
            Vec::new()
        };
        let to = if ballot == 0 { a.leader } else { leader };
        self.persist_acceptor(ctx, txn);
        if ballot > 0 {
            return self.send(
                ctx,
                to,
                Body::P2b {
                    txn,
                    ballot,
                    entries,
                },
            );
        }
        let aborted: Vec<(NodeId, bool)> = entries.into_iter().filter(|e| !e.1).collect();
        if !aborted.is_empty() && !full {
            self.send(
                ctx,
                to,
                Body::P2b {
                    txn,
                    ballot,
                    entries: aborted,
                },
            );
        }
        if full {
            // The bundle leaves after every vote: its causal depth is the deepest of them.
            self.depth = self.acc[&txn].depth;
            self.send(
                ctx,
                to,
                Body::P2b {
                    txn,
                    ballot,
                    entries: bundle,
                },
            );
        }
    }

    /// Acceptor, phase 1a: promise (synced) and report what was accepted; a stale ballot gets
    /// the higher promise back so the leader can outbid it.
    pub(crate) fn on_p1a(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        txn: TxnId,
        parts: Rc<[NodeId]>,
        ballot: u64,
    ) {
        if !self.is_acceptor() {
            return;
        }
        let a = self.acc.entry(txn).or_insert_with(|| AccTxn {
            parts: parts.to_vec(),
            leader: from,
            promised: 0,
            accepted: BTreeMap::new(),
            bundled: false,
            depth: 0,
        });
        if ballot <= a.promised {
            let promised = a.promised;
            return self.send(
                ctx,
                from,
                Body::P1b {
                    txn,
                    ballot: promised,
                    promised: false,
                    accepted: Vec::new(),
                },
            );
        }
        a.promised = ballot;
        let accepted = a
            .parts
            .iter()
            .map(|&rm| (rm, a.accepted.get(&rm).copied()))
            .collect();
        self.persist_acceptor(ctx, txn);
        self.send(
            ctx,
            from,
            Body::P1b {
                txn,
                ballot,
                promised: true,
                accepted,
            },
        );
    }

    /// Leader: phase 2b answers; an instance is chosen at `f + 1` acceptors.
    pub(crate) fn on_p2b(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        txn: TxnId,
        ballot: u64,
        entries: Vec<(NodeId, bool)>,
    ) {
        let (depth, quorum) = (self.depth, self.p.f + 1);
        let Some(l) = self.leader.get_mut(&txn) else {
            return;
        };
        if l.decided.is_some() {
            return;
        }
        l.depth = l.depth.max(depth);
        for (rm, v) in entries {
            let e = l
                .votes
                .entry((rm, ballot))
                .or_insert_with(|| (BTreeSet::new(), v));
            e.0.insert(from);
            if e.0.len() >= quorum {
                let prev = l.chosen.insert(rm, v);
                assert!(
                    prev.is_none_or(|p| p == v),
                    "Paxos: instance {rm} chose two values"
                );
            }
        }
        let any_abort = l.chosen.values().any(|v| !v);
        let all = l.spec.parts.iter().all(|p| l.chosen.contains_key(p));
        if any_abort || all {
            self.leader_decide(ctx, txn, !any_abort);
        }
    }

    fn leader_decide(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId, commit: bool) {
        let Some(l) = self.leader.get_mut(&txn) else {
            return;
        };
        l.decided = Some(commit);
        let (spec, reply) = (l.spec.clone(), l.reply);
        self.depth = l.depth;
        let role = if reply {
            Role::Coordinator
        } else {
            Role::Leader
        };
        self.note(Note::Decided {
            node: self.id,
            txn,
            commit,
            role,
            spec: spec.clone(),
        });
        for &to in &spec.parts {
            self.send(ctx, to, Body::Decision { txn, commit });
        }
        self.maybe_reply(ctx, txn);
    }

    /// Answers the client once the outcome (and, for a commit, every read) is in; then the
    /// leader forgets the transaction.
    fn maybe_reply(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        let Some(l) = self.leader.get_mut(&txn) else {
            return;
        };
        let Some(commit) = l.decided else { return };
        if l.reply && commit && !l.reads_complete() {
            return;
        }
        let l = self.leader.remove(&txn).expect("leading");
        if l.reply {
            let reads = if commit {
                l.reads.into_values().flatten().collect()
            } else {
                Vec::new()
            };
            self.send(ctx, l.spec.client, Body::Outcome { txn, commit, reads });
        }
    }

    /// A participant's reads.
    pub(crate) fn on_reads(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        txn: TxnId,
        reads: Vec<(u32, i64)>,
    ) {
        if let Some(l) = self.leader.get_mut(&txn) {
            l.reads.insert(from, reads);
            self.maybe_reply(ctx, txn);
        }
    }

    /// A participant in doubt leads a recovery ballot.
    pub(crate) fn lead_recovery(&mut self, ctx: &mut Ctx<'_, Msg>, spec: &Rc<TxnSpec>) {
        let txn = spec.id;
        if self.leader.contains_key(&txn) {
            return;
        }
        self.leader
            .insert(txn, LeaderTxn::new(spec.clone(), false, 0));
        self.start_ballot(ctx, txn);
    }

    /// The instances are not all chosen in time: a higher ballot.
    pub(crate) fn on_ballot_late(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        if self.leader.get(&txn).is_some_and(|l| l.decided.is_none()) {
            self.start_ballot(ctx, txn);
        }
    }

    fn start_ballot(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        let id = self.id as u64;
        // Ballots are never reused, even across a crash: the round counter is on the disk.
        let Some(l) = self.leader.get_mut(&txn) else {
            return;
        };
        l.round = l.round.max(self.round) + 1;
        self.round = l.round;
        wal::append(ctx, &Rec::Round { round: l.round });
        ctx.storage().sync();
        l.ballot = (l.round << 8) | id;
        l.promises.clear();
        let (ballot, parts): (u64, Rc<[NodeId]>) = (l.ballot, l.spec.parts.clone().into());
        ctx.count("commit.recovery_ballots", 1.0);
        let after = self.p.vote_timeout.0;
        self.timer(ctx, txn, TimerKind::Ballot, after);
        for a in 0..2 * self.p.f + 1 {
            self.send(
                ctx,
                a,
                Body::P1a {
                    txn,
                    parts: parts.clone(),
                    ballot,
                },
            );
        }
    }

    /// Leader: phase 1b; with a majority, phase 2a of each instance's highest vote or abort.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_p1b(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        txn: TxnId,
        ballot: u64,
        promised: bool,
        accepted: Vec<(NodeId, Option<Accepted>)>,
    ) {
        let quorum = self.p.f + 1;
        let Some(l) = self.leader.get_mut(&txn) else {
            return;
        };
        if !promised {
            l.round = l.round.max(ballot >> 8);
            return;
        }
        if ballot != l.ballot || l.decided.is_some() {
            return;
        }
        l.promises.insert(from, accepted);
        if l.promises.len() != quorum {
            return;
        }
        let mut best: BTreeMap<NodeId, Accepted> = BTreeMap::new();
        for (&rm, &a) in l
            .promises
            .values()
            .flatten()
            .filter_map(|(rm, a)| a.as_ref().map(|a| (rm, a)))
        {
            if best.get(&rm).is_none_or(|b| b.0 < a.0) {
                best.insert(rm, a);
            }
        }
        let entries: Vec<(NodeId, bool)> = l
            .spec
            .parts
            .iter()
            .map(|&rm| (rm, best.get(&rm).is_some_and(|a| a.1)))
            .collect();
        let parts: Rc<[NodeId]> = l.spec.parts.clone().into();
        for a in 0..2 * self.p.f + 1 {
            let body = Body::P2a {
                txn,
                parts: parts.clone(),
                leader: self.id,
                ballot,
                entries: entries.clone(),
            };
            self.send(ctx, a, body);
        }
    }

    /// Acceptor state and ballot round from the replayed log after a crash.
    pub(crate) fn recover_acceptor(&mut self, log: &mut Replay) {
        self.acc = std::mem::take(&mut log.acceptor);
        self.round = log.round;
    }
}
