//! A Multi-Paxos server: an acceptor, a replica, and a proposer that becomes the
//! distinguished leader when its phase 1 succeeds. This file holds the acceptor and follower
//! side and the glue (timers, clients); `leader.rs` holds the leader's phases.
//!
//! Durable state: the acceptor's promise and accepted slots (see [`super::acceptor`]) and the
//! replica's snapshot. The log of chosen values is relearned from the leader after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rand::Rng;
use sim_core::time::Nanos;
use sim_core::{Ctx, NodeId, TimerId};

use super::acceptor::Acceptor;
use super::msg::{Ballot, Cmd, Msg, Snapshot};
use super::replica::Replica;
use super::{Params, PaxosBug, ReadMode};
use crate::raft::kv::StateMachine;
use crate::raft::msg::{ClientResult, KvOp};

/// The timer that starts phase 1 when the leader falls silent (or retries it).
pub(crate) const ELECTION_TIMER: u64 = 1;
/// The leader's heartbeat and retransmission timer.
pub(crate) const TICK_TIMER: u64 = 2;

/// A server's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows the leader whose ballot it promised.
    Follower,
    /// Running phase 1 for its own ballot.
    Candidate,
    /// Phase 1 done: proposes commands in its ballot, phase 2 only.
    Leader,
}

/// A Multi-Paxos server.
pub struct Server {
    pub(crate) p: Rc<Params>,
    pub(crate) id: NodeId,
    pub(crate) n: usize,
    /// The acceptor.
    pub acceptor: Acceptor<Cmd>,
    /// The replica.
    pub replica: Replica,
    /// The role.
    pub role: Role,
    /// The ballot this server proposes in (as candidate or leader).
    pub ballot: Ballot,
    /// The highest ballot heard of.
    pub(crate) highest_seen: Ballot,
    /// Phase 1 failures in a row (the backoff doubles with each).
    pub(crate) failures: u32,
    pub(crate) election_timer: Option<TimerId>,
    pub(crate) tick_timer: Option<TimerId>,
    /// When (local time) this acceptor last heard from the leader it promised; with leases
    /// on, it refuses other ballots' prepares for `lease` after it.
    pub(crate) leader_contact: Option<(Ballot, Nanos)>,
    // Candidate state.
    pub(crate) promises: BTreeSet<NodeId>,
    pub(crate) reports: BTreeMap<u64, (Ballot, Rc<Cmd>)>,
    pub(crate) best_snapshot: Option<Rc<Snapshot>>,
    // Leader state.
    /// The next free slot.
    pub next_slot: u64,
    /// Proposals not yet known chosen: slot to (value, acceptors that accepted it).
    pub(crate) proposals: BTreeMap<u64, (Rc<Cmd>, BTreeSet<NodeId>)>,
    /// Clients waiting for their command: (client, seq) to (client node, request number).
    pub(crate) waiting: BTreeMap<(u32, u64), (NodeId, u64)>,
    /// Heartbeat round, and per round the local send time and the acceptors that answered.
    pub(crate) round: u64,
    pub(crate) rounds: BTreeMap<u64, (Nanos, BTreeSet<NodeId>)>,
    /// The leader's lease runs until this local time.
    pub(crate) lease_until: Nanos,
    /// Lease reads wait until every slot below this one (the re-proposals) is applied.
    pub(crate) lease_floor: u64,
    /// Per server: the highest round in which it was sent catch-up data.
    pub(crate) caught_up_round: Vec<u64>,
    /// The leader's (ballot, round) in which this follower last sent it its snapshot.
    pub(crate) taught: (Ballot, u64),
}

impl Server {
    /// A server with index `id` among `n`.
    pub fn new(p: Rc<Params>, id: NodeId, n: usize) -> Self {
        Server {
            p,
            id,
            n,
            acceptor: Acceptor::default(),
            replica: Replica::load(&Default::default()),
            role: Role::Follower,
            ballot: Ballot::ZERO,
            highest_seen: Ballot::ZERO,
            failures: 0,
            election_timer: None,
            tick_timer: None,
            leader_contact: None,
            promises: BTreeSet::new(),
            reports: BTreeMap::new(),
            best_snapshot: None,
            next_slot: 1,
            proposals: BTreeMap::new(),
            waiting: BTreeMap::new(),
            round: 0,
            rounds: BTreeMap::new(),
            lease_until: 0,
            lease_floor: u64::MAX,
            caught_up_round: vec![0; n],
            taught: (Ballot::ZERO, 0),
        }
    }

    pub(crate) fn majority(&self) -> usize {
        self.n / 2 + 1
    }

    pub(crate) fn has(&self, bug: PaxosBug) -> bool {
        self.p.bug == Some(bug)
    }

    /// The leader this server believes in: the one it last heard a heartbeat or accept from
    /// (heartbeats do not raise the promise), else the owner of the ballot it promised.
    pub fn leader_hint(&self) -> Option<NodeId> {
        let b = match self.leader_contact {
            Some((b, _)) if b >= self.acceptor.promised => b,
            _ => self.acceptor.promised,
        };
        (b != Ballot::ZERO).then_some(b.node as NodeId)
    }

    /// Starts or restarts: acceptor and replica come back from storage.
    pub fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.acceptor = Acceptor::load(ctx.storage());
        self.replica = Replica::load(ctx.storage());
        self.highest_seen = self.acceptor.promised;
        self.next_slot = self.replica.applied + 1;
        let first = match self.p.startup_timeout_max {
            Some(max) if !ctx.is_restart() => ctx
                .rng()
                .random_range(self.p.election_timeout_min.0..=max.0),
            _ => self.election_delay(ctx),
        };
        self.arm_election(ctx, first);
        ctx.series("state.leader", 0.0);
        ctx.series("applied", self.replica.applied as f64);
    }

    pub(crate) fn election_delay(&mut self, ctx: &mut Ctx<'_, Msg>) -> Nanos {
        let (lo, hi) = (self.p.election_timeout_min.0, self.p.election_timeout_max.0);
        ctx.rng().random_range(lo..=hi)
    }

    pub(crate) fn arm_election(&mut self, ctx: &mut Ctx<'_, Msg>, after: Nanos) {
        if let Some(t) = self.election_timer.take() {
            ctx.cancel_timer(t);
        }
        self.election_timer = Some(ctx.set_timer(after.max(1), ELECTION_TIMER));
    }

    /// Sends to `to`, or handles the message here when `to` is this server (a proposer's
    /// own acceptor answers without the network).
    pub(crate) fn send(&mut self, ctx: &mut Ctx<'_, Msg>, to: NodeId, msg: Msg) {
        if to == self.id {
            self.handle(ctx, to, msg);
        } else {
            ctx.send(to, msg);
        }
    }

    /// Sends to every server, this one last (handled directly).
    pub(crate) fn broadcast(&mut self, ctx: &mut Ctx<'_, Msg>, msg: Msg) {
        ctx.send_to_servers(&msg);
        self.handle(ctx, self.id, msg);
    }

    /// A message arrived.
    pub fn message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        self.acceptor.recent.clear();
        self.replica.clear_recent();
        self.handle(ctx, from, msg);
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Prepare { b, from_slot } => self.on_prepare(ctx, from, b, from_slot),
            Msg::Promise {
                b,
                accepted,
                snapshot,
            } => self.on_promise(ctx, from, b, accepted, snapshot),
            Msg::Accept {
                b,
                entries,
                chosen,
                round,
            } => self.on_accept(ctx, from, b, entries, chosen, round),
            Msg::Accepted {
                b,
                slots,
                known,
                round,
            } => self.on_accepted(ctx, from, b, slots, known, round),
            Msg::Nack { b, promised } => self.on_nack(ctx, b, promised),
            Msg::Decided { entries } => {
                for (slot, cmd) in entries {
                    self.replica.learn(slot, cmd);
                }
                self.apply(ctx);
            }
            Msg::InstallSnapshot { snapshot } => self.install(ctx, &snapshot),
            Msg::Request {
                req,
                client,
                seq,
                op,
            } => self.on_request(ctx, from, req, client, seq, op),
            _ => {}
        }
    }

    /// Whether this acceptor still honours the lease of the leader it last heard from, so
    /// that it must refuse a prepare for ballot `b`.
    fn lease_blocks(&self, ctx: &Ctx<'_, Msg>, b: Ballot) -> bool {
        if self.p.read_mode != ReadMode::Lease {
            return false;
        }
        match self.leader_contact {
            Some((lb, at)) => lb.node != b.node && ctx.now_local() < at + self.p.lease.0,
            None => false,
        }
    }

    fn on_prepare(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, b: Ballot, from_slot: u64) {
        self.highest_seen = self.highest_seen.max(b);
        if self.lease_blocks(ctx, b) {
            // The promise stands for the leased leader; the candidate backs off.
            let promised = self.acceptor.promised;
            self.send(ctx, from, Msg::Nack { b, promised });
            return;
        }
        let sync = !self.has(PaxosBug::PromiseWithoutSync);
        match self.acceptor.prepare(ctx.storage(), b, sync) {
            Ok(()) => {
                if b > self.ballot && self.role != Role::Follower {
                    self.step_down(ctx);
                }
                let snapshot =
                    (self.replica.snap.slot >= from_slot).then(|| self.replica.snap.clone());
                let accepted = self.acceptor.report(from_slot);
                self.send(
                    ctx,
                    from,
                    Msg::Promise {
                        b,
                        accepted,
                        snapshot,
                    },
                );
            }
            Err(promised) => self.send(ctx, from, Msg::Nack { b, promised }),
        }
    }

    fn on_accept(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        b: Ballot,
        entries: Vec<(u64, Rc<Cmd>)>,
        chosen: u64,
        round: u64,
    ) {
        self.highest_seen = self.highest_seen.max(b);
        let below = self.has(PaxosBug::AcceptBelowPromise);
        if b < self.acceptor.promised && !below {
            let promised = self.acceptor.promised;
            self.send(ctx, from, Msg::Nack { b, promised });
            return;
        }
        if b >= self.acceptor.promised {
            self.follow(ctx, b);
        }
        let mut slots = Vec::with_capacity(entries.len());
        let mut compacted = false;
        for (slot, cmd) in entries {
            if slot <= self.replica.snap.slot {
                compacted = true;
                continue; // decided and compacted here: nothing to accept
            }
            if self
                .acceptor
                .accept(ctx.storage(), b, slot, cmd, below)
                .is_ok()
            {
                slots.push(slot);
            }
        }
        if !slots.is_empty() {
            ctx.storage().sync();
            ctx.count("paxos.accepts", slots.len() as f64);
        }
        // Every slot up to `chosen` whose value this acceptor holds in the leader's ballot is
        // decided with that value: the leader proposes one value per slot per ballot.
        let upto = chosen.min(self.replica.applied + 4 * self.p.batch_max as u64);
        for slot in self.replica.applied + 1..=upto {
            if let Some((ab, cmd)) = self.acceptor.accepted.get(&slot) {
                if *ab == b {
                    let cmd = cmd.clone();
                    self.replica.learn(slot, cmd);
                }
            }
        }
        self.apply(ctx);
        if compacted {
            self.teach_leader(ctx, from, b, chosen, round);
        }
        let known = self.replica.applied;
        self.send(
            ctx,
            from,
            Msg::Accepted {
                b,
                slots,
                known,
                round,
            },
        );
    }

    /// The leader proposes slots this replica has compacted into its snapshot: they are
    /// decided, but this acceptor no longer holds their values and cannot accept them, so
    /// the leader would never hear a majority for them if enough followers compacted them
    /// (it won phase 1 before they did, or without them). Such a leader is behind: send it
    /// the snapshot, at most once per heartbeat round.
    fn teach_leader(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        leader: NodeId,
        b: Ballot,
        chosen: u64,
        round: u64,
    ) {
        if leader == self.id || chosen >= self.replica.snap.slot || self.taught >= (b, round) {
            return;
        }
        self.taught = (b, round);
        let snapshot = self.replica.snap.clone();
        ctx.send(leader, Msg::InstallSnapshot { snapshot });
        ctx.count("paxos.snapshots_to_leader", 1.0);
    }

    /// Adopts the leader of ballot `b`: no election while it is heard from.
    fn follow(&mut self, ctx: &mut Ctx<'_, Msg>, b: Ballot) {
        self.leader_contact = Some((b, ctx.now_local()));
        if b.node as NodeId == self.id {
            return; // the leader's own acceptor honours its lease too
        }
        if self.role != Role::Follower && b > self.ballot {
            self.step_down(ctx);
        }
        self.failures = 0;
        let d = self.election_delay(ctx);
        self.arm_election(ctx, d);
    }

    /// Stops leading or campaigning; waits for a leader (or the next election).
    pub(crate) fn step_down(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.role == Role::Leader {
            ctx.series("state.leader", 0.0);
        }
        self.role = Role::Follower;
        self.proposals.clear();
        self.rounds.clear();
        self.lease_until = 0;
        self.lease_floor = u64::MAX;
        self.promises.clear();
        self.reports.clear();
        self.best_snapshot = None;
        if let Some(t) = self.tick_timer.take() {
            ctx.cancel_timer(t);
        }
        // Clients are not answered by a deposed leader; they retry elsewhere.
        self.waiting.clear();
        let d = self.election_delay(ctx);
        self.arm_election(ctx, d);
    }

    /// Applies every ready slot, answers the clients waiting here, and compacts.
    pub(crate) fn apply(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let dedup = !self.has(PaxosBug::NoDedup);
        let before = self.replica.applied;
        for (client, seq, result) in self.replica.apply_ready(dedup) {
            if let (Some((node, req)), Some(result)) = (self.waiting.remove(&(client, seq)), result)
            {
                ctx.send(node, Msg::Reply { req, result });
            }
        }
        // A leader that learned decided slots from a follower (its snapshot) stops
        // proposing them.
        while let Some(entry) = self.proposals.first_entry() {
            if *entry.key() > self.replica.applied {
                break;
            }
            entry.remove();
        }
        if self.replica.applied == before {
            return;
        }
        // Only this call's slots: a callback that applies twice keeps the first call's too.
        for r in self
            .replica
            .recent_applied
            .iter()
            .filter(|r| r.slot > before)
        {
            ctx.series("slot.applied", r.slot as f64);
            if r.fresh_write.is_none()
                && self
                    .replica
                    .log
                    .get(&r.slot)
                    .is_some_and(|c| **c == Cmd::Noop)
            {
                ctx.series("slot.noop", r.slot as f64);
            }
        }
        ctx.series("applied", self.replica.applied as f64);
        self.next_slot = self.next_slot.max(self.replica.applied + 1);
        if let Some(upto) = self
            .replica
            .maybe_compact(ctx.storage(), self.p.snapshot_slots)
        {
            self.acceptor.compact(ctx.storage(), upto);
            ctx.storage().sync();
        }
    }

    fn install(&mut self, ctx: &mut Ctx<'_, Msg>, snap: &Rc<Snapshot>) {
        if self.replica.install(ctx.storage(), snap) {
            self.acceptor.compact(ctx.storage(), snap.slot);
            ctx.storage().sync();
            ctx.series("applied", self.replica.applied as f64);
            self.next_slot = self.next_slot.max(self.replica.applied + 1);
            self.apply(ctx);
        }
    }

    fn on_request(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        req: u64,
        client: u32,
        seq: u64,
        op: KvOp,
    ) {
        if self.role != Role::Leader {
            let hint = self.leader_hint().filter(|h| *h != self.id);
            let result = <crate::raft::kv::KvState as StateMachine>::not_leader(hint);
            ctx.send(from, Msg::Reply { req, result });
            return;
        }
        if !self.has(PaxosBug::NoDedup) {
            if let Some((last, result)) = self.replica.kv.last_reply(client) {
                if last == seq {
                    let result = result.clone();
                    ctx.send(from, Msg::Reply { req, result });
                    return;
                }
            }
        }
        if !op.is_write() && self.lease_read(ctx) {
            let result = self.replica.kv.execute(&op);
            debug_assert!(matches!(result, ClientResult::Value(_)));
            ctx.count("paxos.lease_reads", 1.0);
            ctx.send(from, Msg::Reply { req, result });
            return;
        }
        let in_flight = self.waiting.insert((client, seq), (from, req)).is_some();
        if in_flight && !self.has(PaxosBug::NoDedup) {
            return; // already proposed: the reply goes to the latest request
        }
        self.propose(ctx, Rc::new(Cmd::Client { client, seq, op }));
    }

    /// A timer fired.
    pub fn timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        self.acceptor.recent.clear();
        self.replica.clear_recent();
        match tag {
            ELECTION_TIMER if self.election_timer == Some(timer) => {
                self.election_timer = None;
                if self.role != Role::Leader {
                    self.start_phase1(ctx);
                }
            }
            TICK_TIMER if self.tick_timer == Some(timer) => {
                self.tick_timer = None;
                if self.role == Role::Leader {
                    self.tick(ctx);
                }
            }
            _ => {}
        }
    }
}
