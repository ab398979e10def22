//! Three-phase commit (Skeen): after every yes vote the coordinator sends PRECOMMIT and waits
//! for the acknowledgements before it commits, so that no participant can commit while another
//! is still uncertain. When the outcome is late, the participants take over in rank order
//! (the lowest-numbered participant other than the coordinator first, one decision timeout
//! apart): the backup coordinator collects the states it can reach and decides
//!
//! - some participant committed: commit; some aborted (or never voted): abort;
//! - some participant pre-committed: pre-commit the uncertain ones, then commit;
//! - all uncertain: abort.
//!
//! This is safe when nodes only crash and messages arrive within the timeouts; a partition makes
//! "unreachable" look like "crashed", and each side then decides alone.

use sim_core::{Ctx, NodeId};

use super::msg::{Body, Msg, TermState, TxnId, TxnSpec};
use super::server::{Server, TimerKind};
use super::two_pc::{CoordTxn, Phase};

impl Server {
    /// Sends PRECOMMIT to `to` (every participant when `None`) and waits for their acks.
    pub(crate) fn start_precommit(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        txn: TxnId,
        to: Option<Vec<NodeId>>,
    ) {
        let Some(c) = self.coord.get_mut(&txn) else {
            return;
        };
        c.phase = Phase::PreCommitting;
        let to = to.unwrap_or_else(|| c.spec.parts.clone());
        c.waiting = to.iter().copied().collect();
        self.depth = c.depth;
        let after = self.p.vote_timeout.0;
        self.timer(ctx, txn, TimerKind::Votes, after);
        for p in to {
            self.send(ctx, p, Body::PreCommit { txn });
        }
    }

    /// A pre-commit acknowledgement; the last one commits. (Commit acks go to `on_ack`.)
    pub(crate) fn on_preack(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, txn: TxnId) {
        let depth = self.depth;
        let Some(c) = self.coord.get_mut(&txn) else {
            return;
        };
        if c.phase != Phase::PreCommitting {
            return;
        }
        c.depth = c.depth.max(depth);
        c.waiting.remove(&from);
        if c.waiting.is_empty() {
            self.decide(ctx, txn, true);
        }
    }

    /// Becomes the backup coordinator of `spec`: collect the participants' states.
    pub(crate) fn terminate(&mut self, ctx: &mut Ctx<'_, Msg>, spec: &std::rc::Rc<TxnSpec>) {
        let txn = spec.id;
        if self.coord.contains_key(&txn) {
            return;
        }
        ctx.count("commit.terminations", 1.0);
        let mine = self.term_state(ctx, txn);
        let mut c = CoordTxn::new(spec.clone(), Phase::Collecting, false);
        c.states.insert(self.id, mine);
        self.coord.insert(txn, c);
        let after = self.p.vote_timeout.0;
        self.timer(ctx, txn, TimerKind::Collect, after);
        let me = self.id;
        for &to in spec.parts.iter().filter(|&&p| p != me) {
            self.send(ctx, to, Body::StateReq { txn });
        }
    }

    /// A backup coordinator asks for this participant's state.
    pub(crate) fn on_state_req(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, txn: TxnId) {
        let state = self.term_state(ctx, txn);
        self.send(ctx, from, Body::StateRep { txn, state });
    }

    /// A participant's state, for this backup coordinator.
    pub(crate) fn on_state_rep(&mut self, from: NodeId, txn: TxnId, state: TermState) {
        if let Some(c) = self.coord.get_mut(&txn) {
            if c.phase == Phase::Collecting {
                c.states.insert(from, state);
            }
        }
    }

    /// The collection time is up: decide by the termination rule on the states reached.
    pub(crate) fn on_collect_done(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId) {
        let Some(c) = self.coord.get(&txn) else {
            return;
        };
        if c.phase != Phase::Collecting {
            return;
        }
        let has = |s: TermState| c.states.values().any(|&x| x == s);
        if has(TermState::Committed) {
            self.decide(ctx, txn, true);
        } else if has(TermState::Aborted) {
            self.decide(ctx, txn, false);
        } else if has(TermState::PreCommitted) {
            let uncertain: Vec<NodeId> = c
                .states
                .iter()
                .filter(|(_, &s)| s == TermState::Uncertain)
                .map(|(&n, _)| n)
                .collect();
            if uncertain.is_empty() {
                self.decide(ctx, txn, true);
            } else {
                self.start_precommit(ctx, txn, Some(uncertain));
            }
        } else {
            self.decide(ctx, txn, false);
        }
    }
}
