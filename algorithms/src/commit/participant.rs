//! The resource manager: keyed data (accounts and registers), locks held from prepare until the
//! outcome is known, and its records in the node's write-ahead log ([`super::wal`]):
//!
//! - `Prepared`: the transaction (and, in 3PC, whether pre-committed), synced before a yes
//!   vote;
//! - `Outcome`: the outcome as applied here (commits synced; aborts written lazily, as presumed
//!   abort allows, except a unilateral abort told to others, which is synced);
//! - `Data`: committed values (an account never written holds its opening balance).
//!
//! A restarted participant rebuilds all three: a prepared transaction with no outcome is still
//! prepared, holds its locks again, and asks for the outcome. Locks are taken without waiting:
//! a conflict is a "no" vote, so there are no deadlocks, only aborts under contention.

use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::{Ctx, NodeId};

use super::check::{Note, Role};
use super::msg::{txn_name, Body, Msg, Piece, TermState, TxnId, TxnSpec};
use super::server::{Server, TimerKind};
use super::wal::{self, Rec, Replay};
use super::{CommitBug, Params, Protocol};

/// A key: accounts are `0..accounts`, registers `REG + r`.
pub type Key = u64;
/// Registers' keys start here.
pub const REG: Key = 1 << 32;

/// One key's lock.
#[derive(Clone, Debug, Default)]
pub struct Lock {
    /// The exclusive holder.
    pub writer: Option<TxnId>,
    /// Shared holders.
    pub readers: Vec<TxnId>,
}

/// A transaction this participant voted yes on and has no outcome for.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The transaction.
    pub spec: Rc<TxnSpec>,
    /// 3PC: pre-committed.
    pub pre: bool,
    /// How many times its outcome has been late (0: not yet in doubt).
    pub rounds: u32,
}

/// The resource manager's state.
#[derive(Clone, Debug)]
pub struct Rm {
    /// Committed values.
    pub data: BTreeMap<Key, i64>,
    /// Locks by key.
    pub locks: BTreeMap<Key, Lock>,
    /// Prepared transactions awaiting their outcome.
    pub prepared: BTreeMap<TxnId, Prepared>,
    /// Outcomes applied here (true = committed).
    pub decided: BTreeMap<TxnId, bool>,
    /// The last (prepared, in doubt, locks, working) published as series.
    pub(crate) published: [usize; 4],
    /// Prepared transactions whose outcome is late.
    in_doubt: usize,
    accounts_here: Vec<u32>,
}

impl Rm {
    /// A participant holding the accounts `a` with `a % n == id` at their opening balance.
    pub fn new(p: &Params, id: NodeId, n: usize) -> Rm {
        let accounts_here: Vec<u32> = (0..p.accounts).filter(|a| *a as usize % n == id).collect();
        let data = accounts_here
            .iter()
            .map(|&a| (a as Key, p.initial_balance))
            .collect();
        Rm {
            data,
            locks: BTreeMap::new(),
            prepared: BTreeMap::new(),
            decided: BTreeMap::new(),
            published: [0; 4],
            in_doubt: 0,
            accounts_here,
        }
    }

    /// (prepared, in doubt) counts: in doubt once the outcome is late.
    pub fn prepared_counts(&self) -> (usize, usize) {
        debug_assert_eq!(
            self.in_doubt,
            self.prepared.values().filter(|p| p.rounds > 0).count()
        );
        (self.prepared.len() - self.in_doubt, self.in_doubt)
    }

    /// Keys locked.
    pub fn locks_held(&self) -> usize {
        self.locks.len()
    }

    /// The keys a piece touches here, and whether exclusively.
    fn keys(&self, piece: Piece) -> Vec<(Key, bool)> {
        match piece {
            Piece::Debit { acct, .. } | Piece::Credit { acct, .. } => vec![(acct as Key, true)],
            Piece::Write { reg, .. } => vec![(REG + reg as Key, true)],
            Piece::ReadAll => self
                .accounts_here
                .iter()
                .map(|&a| (a as Key, false))
                .collect(),
        }
    }

    /// Takes every lock `txn` needs, or none if one conflicts.
    fn try_lock(&mut self, txn: TxnId, pieces: &[Piece]) -> Option<usize> {
        let wanted: Vec<(Key, bool)> = pieces.iter().flat_map(|&p| self.keys(p)).collect();
        let free = wanted.iter().all(|(k, excl)| match self.locks.get(k) {
            None => true,
            Some(l) => {
                let other_writer = l.writer.is_some_and(|w| w != txn);
                let other_reader = l.readers.iter().any(|&r| r != txn);
                !(other_writer || *excl && other_reader)
            }
        });
        if !free {
            return None;
        }
        let count = wanted.len();
        for (k, excl) in wanted {
            let l = self.locks.entry(k).or_default();
            if excl {
                l.writer = Some(txn);
            } else if !l.readers.contains(&txn) {
                l.readers.push(txn);
            }
        }
        Some(count)
    }

    /// Releases the locks `txn` holds on the keys of `pieces`.
    fn unlock(&mut self, txn: TxnId, pieces: &[Piece]) {
        let keys: Vec<(Key, bool)> = pieces.iter().flat_map(|&p| self.keys(p)).collect();
        for (k, _) in keys {
            let Some(l) = self.locks.get_mut(&k) else {
                continue;
            };
            if l.writer == Some(txn) {
                l.writer = None;
            }
            l.readers.retain(|&r| r != txn);
            if l.writer.is_none() && l.readers.is_empty() {
                self.locks.remove(&k);
            }
        }
    }

    /// Whether every debit is covered by the committed balance.
    fn covered(&self, pieces: &[Piece]) -> bool {
        pieces.iter().all(|p| match *p {
            Piece::Debit { acct, amount } => {
                self.data.get(&(acct as Key)).copied().unwrap_or(0) >= amount
            }
            _ => true,
        })
    }

    /// The accounts a read sees.
    fn reads(&self, pieces: &[Piece]) -> Vec<(u32, i64)> {
        if !pieces.contains(&Piece::ReadAll) {
            return Vec::new();
        }
        self.accounts_here
            .iter()
            .map(|&a| (a, self.data.get(&(a as Key)).copied().unwrap_or(0)))
            .collect()
    }
}

impl Server {
    /// Prepare: lock, check, log the prepared record (synced), vote.
    pub(crate) fn on_prepare(&mut self, ctx: &mut Ctx<'_, Msg>, spec: Rc<TxnSpec>) {
        let txn = spec.id;
        let pieces: Vec<Piece> = spec.pieces_for(self.id).collect();
        if let Some(&d) = self.rm.decided.get(&txn) {
            let reads = if d {
                self.rm.reads(&pieces)
            } else {
                Vec::new()
            };
            return self.send_vote(ctx, &spec, d, reads);
        }
        if self.rm.prepared.contains_key(&txn) {
            let reads = self.rm.reads(&pieces);
            return self.send_vote(ctx, &spec, true, reads);
        }
        let locked = if self.rm.covered(&pieces) {
            self.rm.try_lock(txn, &pieces)
        } else {
            None
        };
        let Some(locks) = locked else {
            // A "no" vote needs no log record: presumed abort.
            self.rm.decided.insert(txn, false);
            self.note(Note::Voted {
                node: self.id,
                txn,
                yes: false,
            });
            self.note(Note::Decided {
                node: self.id,
                txn,
                commit: false,
                role: Role::Participant,
                spec: spec.clone(),
            });
            return self.send_vote(ctx, &spec, false, Vec::new());
        };
        let reads = self.rm.reads(&pieces);
        wal::append(
            ctx,
            &Rec::Prepared {
                spec: spec.clone(),
                pre: false,
            },
        );
        if !self.p.has(CommitBug::VoteBeforeSync) {
            ctx.storage().sync();
        }
        self.rm.prepared.insert(
            txn,
            Prepared {
                spec: spec.clone(),
                pre: false,
                rounds: 0,
            },
        );
        self.note(Note::Voted {
            node: self.id,
            txn,
            yes: true,
        });
        self.note(Note::DoubtStart {
            node: self.id,
            txn,
            coord: spec.coord,
            locks,
        });
        let after = self.p.decision_timeout.0;
        self.timer(ctx, txn, TimerKind::Doubt, after);
        if self.p.has(CommitBug::ReleaseLocksAtPrepare) {
            self.rm.unlock(txn, &pieces);
        }
        self.send_vote(ctx, &spec, true, reads);
    }

    /// Sends a vote: to the coordinator (2PC, 3PC), or as phase 2a of ballot 0 to `f + 1`
    /// acceptors with the reads straight to the leader (Paxos Commit).
    fn send_vote(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        spec: &TxnSpec,
        yes: bool,
        reads: Vec<(u32, i64)>,
    ) {
        let txn = spec.id;
        if self.p.protocol != Protocol::PaxosCommit {
            return self.send(ctx, spec.coord, Body::Vote { txn, yes, reads });
        }
        let parts: Rc<[NodeId]> = spec.parts.clone().into();
        for a in 0..=self.p.f {
            let body = Body::P2a {
                txn,
                parts: parts.clone(),
                leader: spec.coord,
                ballot: 0,
                entries: vec![(self.id, yes)],
            };
            self.send(ctx, a, body);
        }
        if yes && !reads.is_empty() {
            self.send(ctx, spec.coord, Body::Reads { txn, reads });
        }
    }

    /// An outcome arrives: apply it and (2PC, 3PC) acknowledge it.
    pub(crate) fn on_decision(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        txn: TxnId,
        commit: bool,
    ) {
        self.note(Note::Learned {
            txn,
            commit,
            depth: self.depth,
        });
        self.apply(ctx, txn, commit, Role::Participant);
        if self.p.protocol != Protocol::PaxosCommit {
            self.send(ctx, from, Body::Ack { txn });
        }
    }

    /// Applies an outcome here (once): commit writes the pieces, both release the locks.
    pub(crate) fn apply(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId, commit: bool, role: Role) {
        if self.rm.decided.contains_key(&txn) {
            return;
        }
        let Some(prep) = self.rm.prepared.remove(&txn) else {
            // Never prepared here: a "no" vote (already decided) or a lost prepared record.
            if commit {
                self.note(Note::UnknownCommit { node: self.id, txn });
            }
            self.rm.decided.insert(txn, commit);
            wal::append(ctx, &Rec::Outcome { txn, commit });
            return;
        };
        let pieces: Vec<Piece> = prep.spec.pieces_for(self.id).collect();
        if commit {
            for &piece in &pieces {
                self.write_piece(ctx, txn, piece);
            }
        }
        if prep.rounds > 0 {
            self.rm.in_doubt -= 1;
        }
        wal::append(ctx, &Rec::Outcome { txn, commit });
        if commit {
            ctx.storage().sync();
        }
        self.rm.decided.insert(txn, commit);
        self.rm.unlock(txn, &pieces);
        // For the report's state panel: the instant a prepared transaction ends here.
        ctx.series("state.outcome", if commit { 1.0 } else { 2.0 });
        self.note(Note::Decided {
            node: self.id,
            txn,
            commit,
            role,
            spec: prep.spec,
        });
        self.note(Note::DoubtEnd { node: self.id, txn });
    }

    fn write_piece(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId, piece: Piece) {
        let (key, value) = match piece {
            Piece::Debit { acct, amount } => (
                acct as Key,
                self.rm.data.get(&(acct as Key)).copied().unwrap_or(0) - amount,
            ),
            Piece::Credit { acct, amount } => (
                acct as Key,
                self.rm.data.get(&(acct as Key)).copied().unwrap_or(0) + amount,
            ),
            Piece::Write { reg, value } => (REG + reg as Key, value),
            Piece::ReadAll => return,
        };
        if key < REG && value < 0 {
            self.note(Note::Negative {
                node: self.id,
                txn,
                acct: key as u32,
                balance: value,
            });
        }
        self.rm.data.insert(key, value);
        wal::append(ctx, &Rec::Data { key, value });
    }

    /// The outcome is late: ask, take over (3PC, Paxos Commit, by rank), or, with the
    /// `heuristic_abort` bug, abort alone.
    pub(crate) fn on_doubt(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        let Some(prep) = self.rm.prepared.get_mut(&txn) else {
            return;
        };
        prep.rounds += 1;
        if prep.rounds == 1 {
            self.rm.in_doubt += 1;
        }
        let (spec, rounds) = (prep.spec.clone(), prep.rounds as usize);
        if self.p.has(CommitBug::HeuristicAbort) {
            return self.apply(ctx, txn, false, Role::Heuristic);
        }
        let after = self.p.decision_timeout.0;
        self.timer(ctx, txn, TimerKind::Doubt, after);
        let takes_over = rounds > spec.rank(self.id);
        match self.p.protocol {
            Protocol::ThreePc if takes_over => self.terminate(ctx, &spec),
            Protocol::PaxosCommit if takes_over => self.lead_recovery(ctx, &spec),
            _ => {
                let me = self.id;
                for &to in spec.parts.iter().filter(|&&p| p != me) {
                    self.send(ctx, to, Body::Query { txn });
                }
            }
        }
    }

    /// A query about `txn`: answer what this node knows. Under 2PC and 3PC a node with no
    /// record of `txn` has not voted yes, so it aborts it (durably) and says so; for 2PC's
    /// coordinator that is presumed abort.
    pub(crate) fn on_query(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, txn: TxnId) {
        let outcome = self.known_outcome(txn);
        let outcome = match outcome {
            Some(o) => Some(o),
            None if self.rm.prepared.contains_key(&txn) => None,
            None if self.coord.contains_key(&txn) || self.leader.contains_key(&txn) => None,
            None if self.p.protocol == Protocol::PaxosCommit => None,
            None => {
                self.abort_unvoted(ctx, txn);
                Some(false)
            }
        };
        self.send(ctx, from, Body::Status { txn, outcome });
    }

    /// The outcome if this node knows it (as participant, coordinator or leader).
    fn known_outcome(&self, txn: TxnId) -> Option<bool> {
        self.rm
            .decided
            .get(&txn)
            .copied()
            .or_else(|| self.coord.get(&txn).and_then(|c| c.decision))
            .or_else(|| self.leader.get(&txn).and_then(|l| l.decided))
    }

    /// Aborts a transaction this node never voted yes on, durably, so that a late prepare gets
    /// a "no".
    pub(crate) fn abort_unvoted(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        self.rm.decided.insert(txn, false);
        wal::append(ctx, &Rec::Outcome { txn, commit: false });
        ctx.storage().sync();
    }

    /// Someone knows the outcome (or does not).
    pub(crate) fn on_status(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId, outcome: Option<bool>) {
        if let Some(commit) = outcome {
            if self.rm.prepared.contains_key(&txn) {
                self.note(Note::Learned {
                    txn,
                    commit,
                    depth: self.depth,
                });
                self.apply(ctx, txn, commit, Role::Participant);
            }
        }
    }

    /// 3PC: pre-commit (logged and synced), then acknowledge.
    pub(crate) fn on_precommit(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, txn: TxnId) {
        if let Some(prep) = self.rm.prepared.get_mut(&txn) {
            prep.pre = true;
            let rec = Rec::Prepared {
                spec: prep.spec.clone(),
                pre: true,
            };
            wal::append(ctx, &rec);
            ctx.storage().sync();
        } else if self.rm.decided.get(&txn) != Some(&true) {
            return;
        }
        self.send(ctx, from, Body::PreAck { txn });
    }

    /// 3PC termination: this participant's state, for a backup coordinator.
    pub(crate) fn term_state(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) -> TermState {
        match (self.rm.decided.get(&txn), self.rm.prepared.get(&txn)) {
            (Some(true), _) => TermState::Committed,
            (Some(false), _) => TermState::Aborted,
            (None, Some(p)) if p.pre => TermState::PreCommitted,
            (None, Some(_)) => TermState::Uncertain,
            (None, None) => {
                self.abort_unvoted(ctx, txn);
                TermState::Aborted
            }
        }
    }

    /// Rebuilds the resource manager from the replayed log after a crash.
    pub(crate) fn recover_rm(&mut self, ctx: &mut Ctx<'_, Msg>, log: &mut Replay) {
        self.rm.data.extend(std::mem::take(&mut log.data));
        self.rm.decided = log.outcomes.clone();
        let recs: Vec<(Rc<TxnSpec>, bool)> = log.prepared.values().cloned().collect();
        if self.p.has(CommitBug::ForgetPrepared) {
            return;
        }
        for (spec, pre) in recs {
            let txn = spec.id;
            assert!(
                !self.rm.decided.contains_key(&txn),
                "{}: prepared and decided at n{}",
                txn_name(txn),
                self.id
            );
            let pieces: Vec<Piece> = spec.pieces_for(self.id).collect();
            // (With early release the prepared transactions hold no locks, and may overlap.)
            let relocked = if self.p.has(CommitBug::ReleaseLocksAtPrepare) {
                Some(0)
            } else {
                self.rm.try_lock(txn, &pieces)
            };
            assert!(
                relocked.is_some(),
                "n{}: the locks of prepared {} conflict after recovery",
                self.id,
                txn_name(txn)
            );
            let coord = spec.coord;
            self.rm.prepared.insert(
                txn,
                Prepared {
                    spec,
                    pre,
                    rounds: 0,
                },
            );
            self.note(Note::DoubtStart {
                node: self.id,
                txn,
                coord,
                locks: relocked.unwrap_or(0),
            });
            let after = self.p.decision_timeout.0;
            self.timer(ctx, txn, TimerKind::Doubt, after);
        }
    }
}
