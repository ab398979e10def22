//! The Synod protocol (single-decree Paxos, Lamport's "Paxos Made Simple" §2): every server
//! is a proposer, an acceptor and a learner, and the cluster decides one value.
//!
//! A proposer asked by a client to propose picks a ballot above every ballot it has seen,
//! collects promises from a majority (phase 1), proposes the value of the highest-ballot
//! proposal reported in them, or its own if none (phase 2), and retries with a higher ballot
//! after a randomised backoff when preempted. Acceptors tell every learner what they
//! accepted; a learner that counts a majority for one ballot has learned the chosen value and
//! answers its waiting clients.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use rand::Rng;
use sim_core::{Ctx, NodeId, TimerId};

use super::acceptor::Acceptor;
use super::msg::{Ballot, Msg};
use super::{PaxosBug, SynodParams};

/// The proposer's retry timer.
const RETRY_TIMER: u64 = 1;
/// The timer that gives up on an attempt that hears nothing (messages lost).
const ATTEMPT_TIMER: u64 = 2;

/// Where a proposer is in its current attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Not proposing (no value to propose, or waiting out a backoff).
    Idle,
    /// Phase 1: promises collected so far, with what each acceptor had accepted.
    Preparing(BTreeMap<NodeId, Option<(Ballot, u64)>>),
    /// Phase 2: the value proposed and the acceptors that accepted it.
    Accepting(u64, BTreeSet<NodeId>),
}

/// A Synod server.
pub struct SynodServer {
    p: Rc<SynodParams>,
    id: NodeId,
    n: usize,
    /// The acceptor (slot 0).
    pub acceptor: Acceptor<u64>,
    /// The value this proposer was asked to propose.
    pub value: Option<u64>,
    /// The proposer's current ballot.
    pub ballot: Ballot,
    /// The proposer's phase.
    pub phase: Phase,
    /// The highest ballot this proposer has heard of.
    highest_seen: Ballot,
    /// Failed attempts in a row (the backoff doubles with each).
    failures: u32,
    timer: Option<TimerId>,
    /// Learner: per ballot, the value and the acceptors that accepted it.
    votes: BTreeMap<Ballot, (u64, BTreeSet<NodeId>)>,
    /// The value learned, once a majority accepted it in one ballot.
    pub learned: Option<u64>,
    /// Clients waiting for the outcome: (client, request number).
    waiting: Vec<(NodeId, u64)>,
}

impl SynodServer {
    /// A server with index `id` among `n`.
    pub fn new(p: Rc<SynodParams>, id: NodeId, n: usize) -> Self {
        SynodServer {
            p,
            id,
            n,
            acceptor: Acceptor::default(),
            value: None,
            ballot: Ballot::ZERO,
            phase: Phase::Idle,
            highest_seen: Ballot::ZERO,
            failures: 0,
            timer: None,
            votes: BTreeMap::new(),
            learned: None,
            waiting: Vec::new(),
        }
    }

    fn majority(&self) -> usize {
        self.n / 2 + 1
    }

    fn has(&self, bug: PaxosBug) -> bool {
        self.p.bug == Some(bug)
    }

    /// Starts (or restarts) the server: the acceptor comes back from storage.
    pub fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.acceptor = Acceptor::load(ctx.storage());
        self.highest_seen = self.acceptor.promised;
        self.plot(ctx);
        ctx.series("state.learned", 0.0);
    }

    fn plot(&self, ctx: &mut Ctx<'_, Msg>) {
        ctx.series("promised", self.acceptor.promised.plot_value());
        let acc = self.acceptor.accepted.get(&0);
        ctx.series("accepted", acc.map_or(0.0, |(b, _)| b.plot_value()));
        ctx.series("accepted_value", acc.map_or(0.0, |(_, v)| **v as f64));
    }

    /// A message arrived.
    pub fn message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        self.acceptor.recent.clear();
        match msg {
            Msg::Propose { req, value } => self.on_propose(ctx, from, req, value),
            Msg::Prepare { b, .. } => self.on_prepare(ctx, from, b),
            Msg::SynodPromise { b, accepted } => self.on_promise(ctx, from, b, accepted),
            Msg::SynodAccept { b, value } => self.on_accept(ctx, from, b, value),
            Msg::SynodAccepted { b, value } => self.on_accepted(ctx, from, b, value),
            Msg::Nack { b, promised } => self.on_nack(ctx, b, promised),
            Msg::SynodChosen { value } => self.learn(ctx, value, false),
            _ => {}
        }
    }

    fn on_propose(&mut self, ctx: &mut Ctx<'_, Msg>, client: NodeId, req: u64, value: u64) {
        if let Some(v) = self.learned {
            ctx.send(client, Msg::Learned { req, value: v });
            return;
        }
        self.waiting.push((client, req));
        if self.value.is_none() {
            self.value = Some(value);
            self.start_attempt(ctx);
        }
    }

    /// Phase 1a: a fresh ballot above everything seen, to every acceptor (this one directly).
    fn start_attempt(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.learned.is_some() || self.value.is_none() {
            return;
        }
        self.ballot = Ballot::above(self.highest_seen.max(self.acceptor.promised), self.id);
        self.highest_seen = self.ballot;
        self.phase = Phase::Preparing(BTreeMap::new());
        ctx.count("paxos.prepares", 1.0);
        ctx.series("ballot", self.ballot.plot_value());
        let b = self.ballot;
        ctx.send_to_servers(&Msg::Prepare { b, from_slot: 0 });
        self.set_timer(ctx, ATTEMPT_TIMER, self.p.attempt_timeout.0);
        self.on_prepare(ctx, self.id, b);
    }

    fn set_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64, after: u64) {
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        self.timer = Some(ctx.set_timer(after.max(1), tag));
    }

    /// Sends to `to`, or handles it here when `to` is this server.
    fn send(&mut self, ctx: &mut Ctx<'_, Msg>, to: NodeId, msg: Msg) {
        if to == self.id {
            self.message(ctx, to, msg);
        } else {
            ctx.send(to, msg);
        }
    }

    fn on_prepare(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, b: Ballot) {
        if let Some(value) = self.learned {
            // Already decided: tell the proposer instead of feeding its duel.
            self.send(ctx, from, Msg::SynodChosen { value });
            return;
        }
        let sync = !self.has(PaxosBug::PromiseWithoutSync);
        let reply = match self.acceptor.prepare(ctx.storage(), b, sync) {
            Ok(()) => Msg::SynodPromise {
                b,
                accepted: self.acceptor.accepted.get(&0).map(|(ab, v)| (*ab, **v)),
            },
            Err(promised) => Msg::Nack { b, promised },
        };
        self.plot(ctx);
        self.send(ctx, from, reply);
    }

    fn on_promise(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        b: Ballot,
        accepted: Option<(Ballot, u64)>,
    ) {
        if b != self.ballot {
            return;
        }
        let majority = self.majority();
        let ignore = self.has(PaxosBug::IgnorePromiseValues);
        let Phase::Preparing(promises) = &mut self.phase else {
            return;
        };
        promises.insert(from, accepted);
        if promises.len() < majority {
            return;
        }
        // The rule that makes Paxos safe: propose the value of the highest ballot any
        // promise reports, so that a value that may have been chosen is proposed again.
        let reported = promises.values().flatten().max_by_key(|(ab, _)| *ab);
        let own = self.value.expect("a proposer in phase 1 has a value");
        let value = match reported {
            Some((_, v)) if !ignore => *v,
            _ => own,
        };
        self.phase = Phase::Accepting(value, BTreeSet::new());
        ctx.send_to_servers(&Msg::SynodAccept { b, value });
        self.on_accept(ctx, self.id, b, value);
    }

    fn on_accept(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, b: Ballot, value: u64) {
        let below = self.has(PaxosBug::AcceptBelowPromise);
        let st = ctx.storage();
        match self.acceptor.accept(st, b, 0, Rc::new(value), below) {
            Ok(()) => {
                st.sync();
                self.plot(ctx);
                // Phase 2b goes to every learner (this server's too).
                let msg = Msg::SynodAccepted { b, value };
                ctx.send_to_servers(&msg);
                self.on_accepted(ctx, self.id, b, value);
            }
            Err(promised) => self.send(ctx, from, Msg::Nack { b, promised }),
        }
    }

    fn on_accepted(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, b: Ballot, value: u64) {
        self.highest_seen = self.highest_seen.max(b);
        let majority = self.majority();
        let (v, voters) = self.votes.entry(b).or_insert((value, BTreeSet::new()));
        debug_assert_eq!(*v, value, "one value per ballot");
        voters.insert(from);
        let chosen = voters.len() >= majority;
        if let (Phase::Accepting(pv, acks), true) = (&mut self.phase, b == self.ballot) {
            if *pv == value {
                acks.insert(from);
            }
        }
        if chosen {
            self.learn(ctx, value, true);
        }
    }

    fn on_nack(&mut self, ctx: &mut Ctx<'_, Msg>, b: Ballot, promised: Ballot) {
        self.highest_seen = self.highest_seen.max(promised);
        if b == self.ballot && self.phase != Phase::Idle {
            self.preempted(ctx);
        }
    }

    /// The attempt failed: retry with a higher ballot after a randomised, growing backoff
    /// (at once with the bug switch, which is what lets two proposers duel forever).
    fn preempted(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.phase = Phase::Idle;
        self.failures += 1;
        ctx.count("paxos.preempted", 1.0);
        if self.has(PaxosBug::NoBackoff) {
            self.start_attempt(ctx);
            return;
        }
        let cap = self.p.backoff.0 << self.failures.min(6);
        let delay = ctx.rng().random_range(self.p.backoff.0 / 2..=cap);
        self.set_timer(ctx, RETRY_TIMER, delay);
    }

    fn learn(&mut self, ctx: &mut Ctx<'_, Msg>, value: u64, counted: bool) {
        if self.learned.is_some() {
            // Only a broken protocol can show a second value here; the learned-is-chosen
            // check reports it, so the learner keeps its first.
            return;
        }
        self.learned = Some(value);
        self.phase = Phase::Idle;
        if let Some(t) = self.timer.take() {
            ctx.cancel_timer(t);
        }
        ctx.series("state.learned", 1.0);
        if counted {
            ctx.send_to_servers(&Msg::SynodChosen { value });
        }
        for (client, req) in std::mem::take(&mut self.waiting) {
            ctx.send(client, Msg::Learned { req, value });
        }
    }

    /// A timer fired.
    pub fn timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        self.acceptor.recent.clear();
        if self.timer != Some(timer) {
            return;
        }
        self.timer = None;
        match tag {
            RETRY_TIMER => self.start_attempt(ctx),
            ATTEMPT_TIMER if self.phase != Phase::Idle => self.preempted(ctx),
            _ => {}
        }
    }
}
