//! The Multi-Paxos leader: phase 1 once for every open slot, then phase 2 per slot with
//! pipelining (many slots in flight) and batching (retransmissions and re-proposals travel
//! together on the heartbeat).
//!
//! A new leader re-proposes, in its own ballot, the value of the highest ballot reported for
//! each slot, fills the slots nobody reported with no-ops, and only then serves clients in
//! the slots after them. Reads may be served under a lease, shortened by a margin for clock
//! drift.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use sim_core::Ctx;
use sim_core::NodeId;

use super::msg::{Ballot, Cmd, Msg, Snapshot};
use super::server::{Role, Server, TICK_TIMER};
use super::{PaxosBug, ReadMode};

impl Server {
    /// Phase 1a: a ballot above everything seen, for every slot from the first one this
    /// replica has not applied.
    pub(crate) fn start_phase1(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.ballot = Ballot::above(self.highest_seen.max(self.acceptor.promised), self.id);
        self.highest_seen = self.ballot;
        self.role = Role::Candidate;
        self.promises.clear();
        self.reports.clear();
        self.best_snapshot = None;
        ctx.count("paxos.prepares", 1.0);
        ctx.series("ballot", self.ballot.plot_value());
        // Retry if phase 1 does not finish (messages lost, acceptors down).
        let d = self.election_delay(ctx);
        self.arm_election(ctx, d);
        let from_slot = self.replica.applied + 1;
        let b = self.ballot;
        self.broadcast(ctx, Msg::Prepare { b, from_slot });
    }

    pub(crate) fn on_promise(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        b: Ballot,
        accepted: Vec<(u64, Ballot, Rc<Cmd>)>,
        snapshot: Option<Rc<Snapshot>>,
    ) {
        if self.role != Role::Candidate || b != self.ballot {
            return;
        }
        if let Some(s) = snapshot {
            if self.best_snapshot.as_ref().is_none_or(|x| x.slot < s.slot) {
                self.best_snapshot = Some(s);
            }
        }
        for (slot, ab, cmd) in accepted {
            // Keep, per slot, the value of the highest ballot reported.
            if self.reports.get(&slot).is_none_or(|(rb, _)| *rb < ab) {
                self.reports.insert(slot, (ab, cmd));
            }
        }
        self.promises.insert(from);
        if self.promises.len() >= self.majority() {
            self.become_leader(ctx);
        }
    }

    /// Phase 1 is done: re-propose what the promises reported, fill the gaps, lead.
    fn become_leader(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(s) = self.best_snapshot.take() {
            self.install_from_promise(ctx, &s);
        }
        self.role = Role::Leader;
        self.failures = 0;
        if let Some(t) = self.election_timer.take() {
            ctx.cancel_timer(t);
        }
        ctx.series("state.leader", 1.0);
        ctx.count("paxos.leaders", 1.0);
        let start = self.replica.applied + 1;
        let reports = std::mem::take(&mut self.reports);
        let mut values: BTreeMap<u64, Rc<Cmd>> = BTreeMap::new();
        for (slot, cmd) in self.replica.log.range(start..) {
            values.insert(*slot, cmd.clone()); // known chosen here
        }
        for (slot, (_, cmd)) in reports.range(start..) {
            if self.has(PaxosBug::IgnorePromiseValues) {
                continue;
            }
            if self.has(PaxosBug::SkipRepropose) {
                // Treats "accepted somewhere" as "chosen": no phase 2 in its own ballot.
                self.replica.learn(*slot, cmd.clone());
                continue;
            }
            values.entry(*slot).or_insert_with(|| cmd.clone());
        }
        let last = values
            .keys()
            .last()
            .copied()
            .max(reports.keys().last().copied())
            .unwrap_or(0);
        let mut noops = 0;
        for slot in start..=last {
            if self.replica.knows(slot) && !values.contains_key(&slot) {
                continue;
            }
            let cmd = match values.remove(&slot) {
                Some(c) => c,
                None if self.has(PaxosBug::NoGapFill) => continue,
                None => {
                    noops += 1;
                    Rc::new(Cmd::Noop)
                }
            };
            self.proposals.insert(slot, (cmd, BTreeSet::new()));
        }
        ctx.count("paxos.noops", noops as f64);
        self.next_slot = (last + 1).max(self.replica.applied + 1);
        self.lease_floor = self.next_slot;
        self.apply(ctx);
        self.tick(ctx);
    }

    fn install_from_promise(&mut self, ctx: &mut Ctx<'_, Msg>, s: &Rc<Snapshot>) {
        if self.replica.install(ctx.storage(), s) {
            self.acceptor.compact(ctx.storage(), s.slot);
            ctx.storage().sync();
            ctx.series("applied", self.replica.applied as f64);
        }
    }

    /// Proposes a client command in the next free slot (phase 2 at once: pipelining).
    pub(crate) fn propose(&mut self, ctx: &mut Ctx<'_, Msg>, cmd: Rc<Cmd>) {
        let slot = self.next_slot;
        self.next_slot += 1;
        self.proposals.insert(slot, (cmd.clone(), BTreeSet::new()));
        let msg = Msg::Accept {
            b: self.ballot,
            entries: vec![(slot, cmd)],
            chosen: self.replica.applied,
            round: self.round,
        };
        self.broadcast(ctx, msg);
    }

    /// The heartbeat: a new round, carrying every proposal not yet chosen (a batch), to
    /// every acceptor; it also renews the lease and tells followers what is decided.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.round += 1;
        let now = ctx.now_local();
        self.rounds.insert(self.round, (now, BTreeSet::new()));
        while self.rounds.len() > 8 {
            self.rounds.pop_first();
        }
        let entries: Vec<(u64, Rc<Cmd>)> = self
            .proposals
            .iter()
            .take(self.p.batch_max)
            .map(|(s, (c, _))| (*s, c.clone()))
            .collect();
        let msg = Msg::Accept {
            b: self.ballot,
            entries,
            chosen: self.replica.applied,
            round: self.round,
        };
        self.tick_timer = Some(ctx.set_timer(self.p.heartbeat_interval.0, TICK_TIMER));
        self.broadcast(ctx, msg);
    }

    pub(crate) fn on_accepted(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        b: Ballot,
        slots: Vec<u64>,
        known: u64,
        round: u64,
    ) {
        if self.role != Role::Leader || b != self.ballot {
            return;
        }
        let majority = self.majority();
        for slot in slots {
            let Some((cmd, acks)) = self.proposals.get_mut(&slot) else {
                continue;
            };
            acks.insert(from);
            if acks.len() >= majority {
                let cmd = cmd.clone();
                self.proposals.remove(&slot);
                self.replica.learn(slot, cmd);
                ctx.series("slot.chosen", slot as f64);
            }
        }
        self.renew_lease(from, round);
        self.apply(ctx);
        self.catch_up(ctx, from, known, round);
    }

    /// A majority answered round `round`: the lease runs from when the round was sent, for
    /// the lease shortened by the drift margin (both ends' clocks may drift).
    fn renew_lease(&mut self, from: NodeId, round: u64) {
        if self.p.read_mode != ReadMode::Lease {
            return;
        }
        let majority = self.majority();
        let no_margin = self.has(PaxosBug::LeaseWithoutMargin);
        let Some((sent, acks)) = self.rounds.get_mut(&round) else {
            return;
        };
        acks.insert(from);
        if acks.len() >= majority {
            let lease = self.p.lease.0 as f64;
            let d = self.p.lease_drift;
            let usable = if no_margin {
                lease
            } else {
                lease * (1.0 - d) / (1.0 + d)
            };
            self.lease_until = self.lease_until.max(*sent + usable as u64);
        }
    }

    /// Whether a read may be answered from the leader's state: its lease runs and it has
    /// applied every slot it re-proposed after phase 1 (so every write an earlier leader
    /// completed; the writes it completed itself it applied before answering them).
    pub(crate) fn lease_read(&self, ctx: &Ctx<'_, Msg>) -> bool {
        self.p.read_mode == ReadMode::Lease
            && ctx.now_local() < self.lease_until
            && self.replica.applied + 1 >= self.lease_floor
    }

    /// Sends a lagging replica the chosen values it misses (or the snapshot), once a round.
    fn catch_up(&mut self, ctx: &mut Ctx<'_, Msg>, to: NodeId, known: u64, round: u64) {
        if to == self.id || known >= self.replica.applied || self.caught_up_round[to] >= round {
            return;
        }
        self.caught_up_round[to] = round;
        if known < self.replica.snap.slot {
            let snapshot = self.replica.snap.clone();
            ctx.send(to, Msg::InstallSnapshot { snapshot });
            ctx.count("paxos.snapshots_sent", 1.0);
            return;
        }
        let entries: Vec<(u64, Rc<Cmd>)> = self
            .replica
            .log
            .range(known + 1..=self.replica.applied)
            .take(self.p.batch_max * 4)
            .map(|(s, c)| (*s, c.clone()))
            .collect();
        if !entries.is_empty() {
            ctx.send(to, Msg::Decided { entries });
        }
    }

    pub(crate) fn on_nack(&mut self, ctx: &mut Ctx<'_, Msg>, b: Ballot, promised: Ballot) {
        self.highest_seen = self.highest_seen.max(promised);
        // A refusal that names no higher ballot is a lease still running elsewhere: it
        // deposes nobody (the candidate's phase 1 retries on its timer).
        if b != self.ballot || self.role == Role::Follower || promised <= b {
            return;
        }
        ctx.count("paxos.preempted", 1.0);
        self.failures += 1;
        if self.has(PaxosBug::NoBackoff) {
            // Outbid at once, and never defer to the leader that preempted us: the duel.
            self.step_down(ctx);
            self.start_phase1(ctx);
            return;
        }
        self.step_down(ctx);
        // A randomised backoff that grows with each failure; a heartbeat from the new
        // leader in the meantime cancels it.
        let base = self.election_delay(ctx);
        self.arm_election(ctx, base << self.failures.min(3));
    }
}
