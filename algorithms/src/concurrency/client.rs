//! A client running one transaction at a time, optimistic or pessimistic, resending
//! unanswered requests every `retry` and retrying aborted transactions after a backoff.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use serde_json::json;
use sim_core::{Ctx, EventType, NodeId, Op};

use super::{shard_of, write_tag, Control, LockResult, Msg, Params, TxnId};

const RETRY_TIMER: u64 = 1;
const BACKOFF_TIMER: u64 = 2;

/// An attempt's writes: its [`write_tag`] and the keys it sent writes for.
pub type AttemptWrites = (i64, Vec<u32>);

/// Where the current attempt stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Optimistic: waiting for the reads.
    Reading,
    /// Optimistic: waiting for the shards' votes.
    Voting,
    /// Pessimistic: waiting for the lock on the `i`-th key.
    Locking(usize),
    /// Pessimistic: waiting for the write of the `i`-th key.
    Writing(usize),
    /// Waiting for every shard to apply the decision.
    Deciding(bool),
    /// Aborted; waiting for the backoff timer.
    Backoff,
}

/// A client.
pub struct Client {
    params: Params,
    id: NodeId,
    shards: usize,
    keys_count: u32,
    txns: u64,
    /// The operation: keys in the order they are touched, and each key's change.
    keys: Vec<(u32, i64)>,
    f: String,
    attempt: u32,
    txn: TxnId,
    ts: u64,
    phase: Option<Phase>,
    /// Values, versions and writers ([`write_tag`]) read in this attempt.
    reads: BTreeMap<u32, (i64, u64, Option<i64>)>,
    /// Keys this attempt has sent a write for (two-phase locking writes in place).
    written: Vec<u32>,
    /// Aborted attempts of the current operation that sent writes.
    aborted: Vec<AttemptWrites>,
    /// Shards (or keys) still to answer in this phase, with the message to resend.
    waiting: BTreeMap<u32, (NodeId, Msg)>,
    votes_no: bool,
    retry_armed: bool,
}

impl Client {
    /// A client at node `id` of a store with `shards` shards and `keys` keys.
    pub fn new(params: Params, id: NodeId, shards: usize, keys: u32) -> Self {
        Client {
            params,
            id,
            shards,
            keys_count: keys,
            txns: 0,
            keys: Vec::new(),
            f: String::new(),
            attempt: 0,
            txn: 0,
            ts: 0,
            phase: None,
            reads: BTreeMap::new(),
            written: Vec::new(),
            aborted: Vec::new(),
            waiting: BTreeMap::new(),
            votes_no: false,
            retry_armed: false,
        }
    }

    pub(crate) fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        let key: u32 = op
            .key
            .as_deref()
            .and_then(|k| k.strip_prefix('k'))
            .and_then(|k| k.parse().ok())
            .unwrap_or(0);
        self.f = op.f.clone();
        self.keys = if op.f == "transfer" {
            let mut to = ctx.rng().random_range(0..self.keys_count - 1);
            if to >= key {
                to += 1;
            }
            vec![(key, -1), (to, 1)]
        } else {
            vec![(key, 1)]
        };
        self.attempt = 0;
        self.aborted.clear();
        // Older transactions have smaller timestamps; the client id breaks ties.
        self.ts = ctx.now_local() * 1024 + self.id as u64 % 1024;
        self.begin(ctx);
    }

    fn begin(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.attempt += 1;
        self.txns += 1;
        self.txn = ((self.id as u64) << 32) | self.txns;
        self.reads.clear();
        self.written.clear();
        self.waiting.clear();
        self.votes_no = false;
        ctx.count("cc.attempts", 1.0);
        match self.params.control {
            Control::Optimistic => {
                self.phase = Some(Phase::Reading);
                for (k, _) in self.keys.clone() {
                    let msg = Msg::Read {
                        txn: self.txn,
                        key: k,
                    };
                    self.request(ctx, k, shard_of(k, self.shards), msg);
                }
            }
            Control::Pessimistic => self.lock_next(ctx, 0),
        }
        if !self.retry_armed {
            self.retry_armed = true;
            ctx.set_timer(self.params.retry.0, RETRY_TIMER);
        }
    }

    fn request(&mut self, ctx: &mut Ctx<'_, Msg>, slot: u32, to: NodeId, msg: Msg) {
        ctx.send(to, msg.clone());
        self.waiting.insert(slot, (to, msg));
    }

    fn lock_next(&mut self, ctx: &mut Ctx<'_, Msg>, i: usize) {
        self.phase = Some(Phase::Locking(i));
        let k = self.keys[i].0;
        let msg = Msg::Lock {
            txn: self.txn,
            ts: self.ts,
            key: k,
        };
        self.request(ctx, k, shard_of(k, self.shards), msg);
    }

    fn shards_touched(&self) -> BTreeSet<NodeId> {
        self.keys
            .iter()
            .map(|(k, _)| shard_of(*k, self.shards))
            .collect()
    }

    fn decide(&mut self, ctx: &mut Ctx<'_, Msg>, commit: bool) {
        self.phase = Some(Phase::Deciding(commit));
        self.waiting.clear();
        for s in self.shards_touched() {
            let msg = Msg::Decide {
                txn: self.txn,
                commit,
            };
            self.request(ctx, s as u32, s, msg);
        }
    }

    fn after_reads(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.phase = Some(Phase::Voting);
        let txn = self.txn;
        if self.keys.len() == 1 {
            let (k, d) = self.keys[0];
            let (v, version, _) = self.reads[&k];
            let msg = Msg::Cas {
                txn,
                key: k,
                version,
                value: v + d,
            };
            let s = shard_of(k, self.shards);
            return self.request(ctx, s as u32, s, msg);
        }
        let mut by_shard: BTreeMap<NodeId, Vec<(u32, u64, i64)>> = BTreeMap::new();
        for (k, d) in &self.keys {
            let (v, version, _) = self.reads[k];
            by_shard
                .entry(shard_of(*k, self.shards))
                .or_default()
                .push((*k, version, v + d));
        }
        for (s, writes) in by_shard {
            self.request(ctx, s as u32, s, Msg::Prepare { txn, writes });
        }
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let txn = match &msg {
            Msg::ReadReply { txn, .. } | Msg::LockReply { txn, .. } => *txn,
            Msg::WriteAck { txn, .. } | Msg::Vote { txn, .. } => *txn,
            Msg::Decided { txn } | Msg::Wounded { txn } => *txn,
            _ => return,
        };
        if txn != self.txn {
            return;
        }
        let Some(phase) = self.phase.clone() else {
            return;
        };
        match (phase, msg) {
            (
                Phase::Reading,
                Msg::ReadReply {
                    key,
                    value,
                    version,
                    writer,
                    ..
                },
            ) if self.waiting.remove(&key).is_some() => {
                self.reads.insert(key, (value, version, writer));
                if self.waiting.is_empty() {
                    self.after_reads(ctx);
                }
            }
            (Phase::Voting, Msg::Vote { yes, .. }) => self.vote(ctx, from, yes),
            (Phase::Locking(i), Msg::LockReply { key, result, .. }) if key == self.keys[i].0 => {
                self.waiting.remove(&key);
                match result {
                    LockResult::Granted(v, writer) => {
                        self.reads.insert(key, (v, 0, writer));
                        self.written.push(key);
                        self.phase = Some(Phase::Writing(i));
                        let msg = Msg::Write {
                            txn,
                            key,
                            value: v + self.keys[i].1,
                        };
                        self.request(ctx, key, shard_of(key, self.shards), msg);
                    }
                    LockResult::Died | LockResult::TimedOut => self.decide(ctx, false),
                }
            }
            (Phase::Writing(i), Msg::WriteAck { key, .. }) if key == self.keys[i].0 => {
                self.waiting.remove(&key);
                if i + 1 < self.keys.len() {
                    self.lock_next(ctx, i + 1);
                } else {
                    self.decide(ctx, true);
                }
            }
            (Phase::Locking(_) | Phase::Writing(_), Msg::Wounded { .. }) => {
                self.decide(ctx, false);
            }
            (Phase::Deciding(commit), Msg::Decided { .. }) => self.decided(ctx, from, commit),
            _ => {}
        }
    }

    fn vote(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, yes: bool) {
        // One answer per shard is awaited; a duplicate finds its slot gone.
        if self.waiting.remove(&(from as u32)).is_none() {
            return;
        }
        self.votes_no |= !yes;
        if !self.waiting.is_empty() {
            return;
        }
        if self.keys.len() == 1 {
            // The compare-and-set committed or refused on its own shard.
            return self.finish_attempt(ctx, !self.votes_no);
        }
        let commit = !self.votes_no;
        self.decide(ctx, commit);
    }

    fn decided(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, commit: bool) {
        if self.waiting.remove(&(from as u32)).is_some() && self.waiting.is_empty() {
            self.finish_attempt(ctx, commit);
        }
    }

    /// What the transactional checker reads: Jepsen-style micro-operations on registers whose
    /// values are writes' tags (`["r", key, tag read or null]`, `["w", key, own tag]`).
    fn micro_ops(&self) -> Vec<serde_json::Value> {
        let tag = write_tag(self.txn);
        self.keys
            .iter()
            .flat_map(|(k, _)| {
                let read = self.reads.get(k).and_then(|r| r.2);
                [json!(["r", k, read]), json!(["w", k, tag])]
            })
            .collect()
    }

    /// The aborted attempts of the operation in hand that sent writes, as (tag, keys), and
    /// the attempt still open (when one is): a transaction the run ended in the middle of.
    pub fn unfinished(&self) -> (&[AttemptWrites], Option<AttemptWrites>) {
        let open = matches!(&self.phase, Some(p) if *p != Phase::Backoff)
            .then(|| (write_tag(self.txn), self.written.clone()))
            .filter(|(_, w)| !w.is_empty());
        (&self.aborted, open)
    }

    fn finish_attempt(&mut self, ctx: &mut Ctx<'_, Msg>, committed: bool) {
        self.waiting.clear();
        let aborted = json!(self.aborted);
        if committed {
            ctx.count("cc.commits", 1.0);
            self.phase = None;
            let value = json!({
                "f": self.f, "keys": self.keys, "txn": self.micro_ops(), "aborted": aborted,
            });
            ctx.complete(EventType::Ok, value);
            return;
        }
        ctx.count("cc.aborts", 1.0);
        if !self.written.is_empty() {
            let w = std::mem::take(&mut self.written);
            self.aborted.push((write_tag(self.txn), w));
        }
        if self.attempt >= self.params.attempts_max {
            self.phase = None;
            let aborted = json!(self.aborted);
            ctx.complete(
                EventType::Fail,
                json!({ "f": self.f, "keys": self.keys, "aborted": aborted }),
            );
            return;
        }
        self.phase = Some(Phase::Backoff);
        let cap = self.attempt.min(5);
        let base = self.params.backoff.0 << cap;
        let wait = ctx.rng().random_range(base / 2..=base);
        ctx.set_timer(wait, BACKOFF_TIMER);
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        match (tag, &self.phase) {
            (BACKOFF_TIMER, Some(Phase::Backoff)) => self.begin(ctx),
            (RETRY_TIMER, Some(p)) if *p != Phase::Backoff => {
                for (to, msg) in self.waiting.values() {
                    ctx.count("cc.resends", 1.0);
                    ctx.send(*to, msg.clone());
                }
                ctx.set_timer(self.params.retry.0, RETRY_TIMER);
            }
            (RETRY_TIMER, _) => self.retry_armed = false,
            _ => {}
        }
    }
}

impl Client {
    /// The client's state for the report's timeline: its transaction, which attempt, where
    /// the attempt stands, and the keys it holds locks on (two-phase locking writes in place).
    pub fn summary(&self) -> sim_core::summary::StateSummary {
        use super::summary::{txn, Count, NAMED};
        use sim_core::summary::{write_few, StateSummary};
        use std::fmt::Write as _;
        let key = |i: usize| self.keys.get(i).map_or(0, |(k, _)| *k);
        let role = match &self.phase {
            None => "idle",
            Some(Phase::Reading) => "reading",
            Some(Phase::Voting) => "voting",
            Some(Phase::Locking(_)) => "locking",
            Some(Phase::Writing(_)) => "writing",
            Some(Phase::Deciding(true)) => "committing",
            Some(Phase::Deciding(false)) => "aborting",
            Some(Phase::Backoff) => "backing off",
        };
        let mut d = String::with_capacity(64);
        if self.phase.is_none() {
            let _ = write!(d, "{} transactions begun", self.txns);
        } else {
            let _ = write!(d, "{} ", self.f);
            txn(&mut d, self.txn);
            let _ = write!(d, " attempt {}", self.attempt);
        }
        let _ = match &self.phase {
            Some(Phase::Reading) => write!(d, ": {} awaited", Count(self.waiting.len(), "read")),
            Some(Phase::Voting) => write!(d, ": {} awaited", Count(self.waiting.len(), "vote")),
            Some(Phase::Locking(i)) => write!(d, ": waiting for the lock on k{}", key(*i)),
            Some(Phase::Writing(i)) => write!(d, ": writing k{}", key(*i)),
            Some(Phase::Backoff) => write!(d, ": aborted, retrying after a backoff"),
            None | Some(Phase::Deciding(_)) => Ok(()),
        };
        // Under two-phase locking the keys before the i-th are locked while locking the i-th,
        // the i-th too while writing it, and all of them until the decision is applied.
        let held = match (&self.phase, self.params.control) {
            (Some(Phase::Locking(i)), Control::Pessimistic) => *i,
            (Some(Phase::Writing(i)), Control::Pessimistic) => i + 1,
            (Some(Phase::Deciding(_)), Control::Pessimistic) => self.keys.len(),
            _ => 0,
        };
        let locked = (held > 0).then(|| {
            let mut l = String::new();
            write_few(
                &mut l,
                self.keys.iter().take(held),
                held,
                NAMED,
                |l, (k, _)| {
                    let _ = write!(l, "k{k}");
                },
            );
            l
        });
        StateSummary {
            role: Some(role),
            lock: locked,
            detail: d,
            ..StateSummary::default()
        }
    }
}
