//! The coordination service of the `failover = "zookeeper"` variant: the lock family's
//! ZooKeeper-style service ([`ZkMachine`]: sessions kept alive by pings, ephemeral sequential
//! entries) replicated by the project's Raft, plus one data node, the in-sync set, as
//! ZooKeeper-based systems keep one (Kafka's ISR): which replicas hold every acknowledged
//! write, written by the primary of an epoch and refused from an older one (a conditional
//! write, as ZooKeeper's `setData` with a version).
//!
//! The election rule the replicas apply to every listing ([`Listing::view`]) is the lock
//! recipe's: the replica with the lowest sequence number is the primary, and that number is its
//! epoch, the fencing token every replication message carries. A replica whose session expires
//! loses its entry, so the next in line takes over only after the service expired the old
//! primary's session; and it serves only once it holds a log from a replica of the in-sync set.
//!
//! A replica of the service is a [`raft::server::Server`] driving [`Coord`], plus what only
//! the leader keeps (session deadlines on its own clock) and does (answer pings, expire
//! sessions through the log); a new leader gives every session a fresh timeout, as ZooKeeper
//! does. The same logic as the lock family's `ZkReplica`, over this family's messages.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::time::Nanos;
use sim_core::{Ctx, NodeId, TimerId};

use super::msg::{Msg, View};
use crate::lock::zk::{ZkMachine, ZkOp, ZkReply, SERVICE_CLIENT};
use crate::raft;
use crate::raft::kv::{Applied, StateMachine};
use crate::raft::msg::Fnv;
use crate::raft::server::Server;

/// A command of the coordination service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordOp {
    /// A command of the lock service (connect, create, expire, ...).
    Zk(ZkOp),
    /// List the entries with their owners, and the in-sync set.
    List,
    /// The primary of `epoch` sets the in-sync set (refused if a newer epoch wrote it).
    SetInSync {
        /// The writer's epoch.
        epoch: u64,
        /// Replicas holding every acknowledged write.
        nodes: BTreeSet<NodeId>,
    },
}

/// The in-sync set and the epoch that wrote it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InSync {
    /// The epoch of the primary that wrote it (0: never written).
    pub epoch: u64,
    /// Replicas holding every acknowledged write.
    pub nodes: BTreeSet<NodeId>,
}

/// What a replica learns from a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The entries in sequence order: (sequence number, owning replica).
    pub children: Vec<(u64, NodeId)>,
    /// The in-sync set.
    pub in_sync: InSync,
}

impl Listing {
    /// The election rule, the lock recipe's: (epoch, primary, backups). The lowest entry
    /// leads and its sequence number is its epoch (so epochs only grow: entries are created
    /// with ever larger numbers); the backups are the other entries' replicas in sequence
    /// order. A leader outside the in-sync set must first hear from a replica in it before it
    /// serves (see [`super::primary`]), so no acknowledged write is lost.
    pub fn view(&self) -> (u64, Option<NodeId>, Vec<NodeId>) {
        let Some(&(epoch, primary)) = self.children.first() else {
            return (0, None, Vec::new());
        };
        let mut backups: Vec<NodeId> = Vec::new();
        for (_, n) in &self.children {
            if *n != primary && !backups.contains(n) {
                backups.push(*n);
            }
        }
        (epoch, Some(primary), backups)
    }

    /// The view a replica derives, numbered `num`.
    pub fn to_view(&self, num: u64) -> View {
        let (epoch, primary, backups) = self.view();
        View {
            num,
            epoch,
            primary,
            backups,
        }
    }
}

/// The coordination service's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordReply {
    /// The lock service's answer.
    Zk(ZkReply),
    /// A listing.
    Listed(Listing),
    /// Whether the in-sync set was written, and the set now.
    Set {
        /// Written (false: a newer epoch wrote it).
        ok: bool,
        /// The set after the command.
        in_sync: InSync,
    },
}

/// The replicated state: the lock service's, plus the in-sync set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coord {
    /// Sessions and entries.
    pub zk: ZkMachine,
    /// The in-sync set.
    pub in_sync: InSync,
    /// Per client: the last command applied and its reply.
    pub last: BTreeMap<u32, (u64, CoordReply)>,
}

impl Coord {
    /// The entries with their owners.
    pub fn listing(&self) -> Listing {
        let children = self
            .zk
            .children
            .iter()
            .filter_map(|(q, s)| self.zk.sessions.get(s).map(|n| (*q, *n)))
            .collect();
        Listing {
            children,
            in_sync: self.in_sync.clone(),
        }
    }

    /// The entry a live session owns, if any.
    fn entry_of(&self, session: u64) -> Option<u64> {
        if !self.zk.sessions.contains_key(&session) {
            return None;
        }
        self.zk
            .children
            .iter()
            .find(|(_, s)| **s == session)
            .map(|(q, _)| *q)
    }

    fn execute(&mut self, client: u32, seq: u64, op: &CoordOp) -> CoordReply {
        match op {
            // One candidacy per session, as Curator's "protected" create ensures: a replica
            // that lost the answer to its create (a crash before the reply, then a restart
            // resuming the durable session) creates again, and must be handed the entry it
            // already has. A second entry would leave the first, which it no longer knows is
            // its own, at the head of the line: the view's primary, and never serving.
            CoordOp::Zk(ZkOp::Create { session }) if self.entry_of(*session).is_some() => {
                CoordReply::Zk(ZkReply::Created {
                    seq: self.entry_of(*session),
                })
            }
            CoordOp::Zk(z) => match self.zk.apply(client, seq, z, false) {
                Applied::Fresh(r) | Applied::Duplicate(r) => CoordReply::Zk(r),
                Applied::Stale => CoordReply::Zk(ZkReply::Done),
            },
            CoordOp::List => CoordReply::Listed(self.listing()),
            CoordOp::SetInSync { epoch, nodes } => {
                let ok = *epoch >= self.in_sync.epoch;
                if ok {
                    self.in_sync = InSync {
                        epoch: *epoch,
                        nodes: nodes.clone(),
                    };
                }
                CoordReply::Set {
                    ok,
                    in_sync: self.in_sync.clone(),
                }
            }
        }
    }
}

impl StateMachine for Coord {
    type Op = CoordOp;
    type Reply = CoordReply;

    fn apply(&mut self, client: u32, seq: u64, op: &CoordOp, dedup: bool) -> Applied<CoordReply> {
        if dedup && client != SERVICE_CLIENT {
            if let Some((last, reply)) = self.last.get(&client) {
                if seq == *last {
                    return Applied::Duplicate(reply.clone());
                }
                if seq < *last {
                    return Applied::Stale;
                }
            }
        }
        let reply = self.execute(client, seq, op);
        if client != SERVICE_CLIENT {
            self.last.insert(client, (seq, reply.clone()));
        }
        Applied::Fresh(reply)
    }

    fn last_reply(&self, client: u32) -> Option<(u64, &CoordReply)> {
        self.last.get(&client).map(|(s, r)| (*s, r))
    }

    fn not_leader(hint: Option<NodeId>) -> CoordReply {
        CoordReply::Zk(ZkReply::NotLeader { hint })
    }

    fn is_write(_op: &CoordOp) -> bool {
        true
    }

    fn is_read(_op: &CoordOp) -> bool {
        // Every request goes through the log, so a listing is as new as the last commit.
        false
    }

    fn read(&self, _op: &CoordOp) -> CoordReply {
        CoordReply::Zk(ZkReply::NotLeader { hint: None })
    }

    fn digest(op: &CoordOp, h: &mut Fnv) {
        match op {
            CoordOp::Zk(z) => ZkMachine::digest(z, h),
            CoordOp::List => h.add(40),
            CoordOp::SetInSync { epoch, nodes } => {
                h.add(41);
                h.add(*epoch);
                for n in nodes {
                    h.add(*n as u64);
                }
            }
        }
    }
}

/// The tag of the session-expiry timer (Raft's timers use small tags).
const EXPIRY_TICK: u64 = 1 << 40;

/// One replica of the coordination service.
pub struct CoordReplica {
    /// The Raft server.
    pub raft: Server<Coord, Msg>,
    /// Silence after which the leader expires a session.
    expire_after_ns: Nanos,
    /// Leader only: session -> deadline on the monotonic clock (a stepped clock must not
    /// expire a session early: the primary's lease counts on it lasting).
    deadlines: BTreeMap<u64, Nanos>,
    /// The term in which this replica last led and was ready.
    led_term: Option<u64>,
    /// Sessions whose expiry this leader has proposed.
    expiring: BTreeSet<u64>,
    /// How long after a heartbeat round that a majority acknowledged this leader may still
    /// answer pings, on its monotonic clock (see [`quorum_window_ns`]).
    quorum_window_ns: Nanos,
}

/// How long a service leader may answer pings after sending a heartbeat round that a majority
/// acknowledged: `election_timeout_min x (1 - m) / (1 + m)` of its monotonic clock, which
/// ends, in true time, before any follower that received the round can time out and another
/// leader be elected. CheckQuorum alone is not enough: a leader paused for longer than an
/// election resumes still believing it leads and, before its next CheckQuorum tick, would
/// answer the pings that queued up while it stood still, granting a lease to a primary whose
/// session its successor already expired.
pub fn quorum_window_ns(rp: &raft::Params, drift_margin: f64) -> Nanos {
    let min = rp.election_timeout_min.0 as f64;
    (min * (1.0 - drift_margin) / (1.0 + drift_margin)).floor() as Nanos
}

/// Raft's parameters for the service: PreVote and CheckQuorum on, so that a leader cut off
/// from the majority stops answering pings within two election timeouts at most.
pub fn raft_params() -> raft::Params {
    raft::Params {
        pre_vote: true,
        check_quorum: true,
        snapshot_entries: 500,
        ..raft::Params::default()
    }
}

impl CoordReplica {
    /// Replica `id` of a service on nodes `0..zk_replicas`; sessions expire after
    /// `expire_after_ns` without a ping.
    pub fn new(
        rp: Rc<raft::Params>,
        id: NodeId,
        zk_replicas: usize,
        expire_after_ns: Nanos,
        drift_margin: f64,
    ) -> Self {
        CoordReplica {
            quorum_window_ns: quorum_window_ns(&rp, drift_margin),
            raft: Server::new(rp, id, zk_replicas),
            expire_after_ns,
            deadlines: BTreeMap::new(),
            led_term: None,
            expiring: BTreeSet::new(),
        }
    }

    fn tick_period(&self) -> Nanos {
        (self.expire_after_ns / 8).max(1)
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.raft.start(ctx);
        ctx.set_timer(self.tick_period(), EXPIRY_TICK);
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Coord(m) => self.raft.message(ctx, from, m),
            Msg::SessionPing { session, ping } => {
                let now = ctx.now_monotonic();
                let confirmed = self
                    .raft
                    .quorum_confirmed_mono()
                    .is_some_and(|sent| now < sent.saturating_add(self.quorum_window_ns));
                if self.raft.ready_to_serve() && !confirmed {
                    // Leadership not confirmed lately (a pause, a partition CheckQuorum has
                    // not noticed yet): no answer, so no lease; the next ping may do better.
                    ctx.count("pb.pings_unconfirmed", 1.0);
                } else if self.raft.ready_to_serve() {
                    self.sync_sessions(ctx);
                    // A session whose expiry this leader has proposed is dead to pings: the
                    // expiry may commit at any moment, and a lease granted now would outlive
                    // it (the next primary could act while this one still holds a lease).
                    let alive = self.raft.state().zk.sessions.contains_key(&session)
                        && !self.expiring.contains(&session);
                    if alive {
                        let deadline = ctx.now_monotonic() + self.expire_after_ns;
                        self.deadlines.insert(session, deadline);
                    }
                    ctx.send(from, Msg::SessionPong { ping, alive });
                } else if !self.raft.is_leader() {
                    let hint = self.raft.leader_hint();
                    ctx.send(from, Msg::CoordNotLeader { hint });
                }
            }
            _ => {}
        }
        self.after();
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        if tag == EXPIRY_TICK {
            ctx.set_timer(self.tick_period(), EXPIRY_TICK);
            self.raft.applied_now.clear();
            if self.raft.ready_to_serve() {
                self.sync_sessions(ctx);
                let now = ctx.now_monotonic();
                let due: Vec<u64> = self
                    .deadlines
                    .iter()
                    .filter(|(s, d)| **d <= now && !self.expiring.contains(s))
                    .map(|(s, _)| *s)
                    .collect();
                for session in due {
                    self.expiring.insert(session);
                    ctx.count("pb.sessions_expired", 1.0);
                    let seq = self.raft.last_index() + 1;
                    let op = CoordOp::Zk(ZkOp::ExpireSession { session });
                    self.raft.propose(ctx, SERVICE_CLIENT, seq, op);
                }
            }
        } else {
            self.raft.timer(ctx, timer, tag);
        }
        self.after();
    }

    /// Keeps the deadlines in step with the applied sessions; a new leader (or a session it
    /// has not seen before) starts from a fresh timeout.
    fn sync_sessions(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let term = self.raft.term;
        if self.led_term != Some(term) {
            self.led_term = Some(term);
            self.deadlines.clear();
            self.expiring.clear();
        }
        let fresh = ctx.now_monotonic() + self.expire_after_ns;
        let sessions = &self.raft.state().zk.sessions;
        self.deadlines.retain(|s, _| sessions.contains_key(s));
        self.expiring.retain(|s| sessions.contains_key(s));
        for s in sessions.keys() {
            self.deadlines.entry(*s).or_insert(fresh);
        }
    }

    /// After every callback: watches are not used by this variant (replicas list every
    /// heartbeat), and a replica that no longer leads forgets its deadlines.
    fn after(&mut self) {
        self.raft.state_mut().zk.fired.clear();
        if !self.raft.is_leader() {
            self.led_term = None;
            self.deadlines.clear();
            self.expiring.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_entry_leads_and_an_old_epoch_cannot_write_the_set() {
        let mut c = Coord::default();
        for client in [10u32, 11, 12] {
            c.apply(client, 1, &CoordOp::Zk(ZkOp::Connect), true);
        }
        for (client, session) in [(12u32, 3u64), (10, 1), (11, 2)] {
            c.apply(client, 2, &CoordOp::Zk(ZkOp::Create { session }), true);
        }
        // The lowest entry (client 12's, seq 1) leads; its number is its epoch.
        assert_eq!(c.listing().view(), (1, Some(12), vec![10, 11]));
        let set = CoordOp::SetInSync {
            epoch: 1,
            nodes: [12, 11].into_iter().collect(),
        };
        c.apply(12, 3, &set, true);
        // Its session expires: the next entry (client 10's, seq 2) leads in epoch 2.
        c.apply(
            SERVICE_CLIENT,
            9,
            &CoordOp::Zk(ZkOp::ExpireSession { session: 3 }),
            true,
        );
        assert_eq!(c.listing().view(), (2, Some(10), vec![11]));
        let newer = CoordOp::SetInSync {
            epoch: 2,
            nodes: [10].into_iter().collect(),
        };
        c.apply(10, 3, &newer, true);
        // A write from the older epoch is refused.
        let r = c.apply(12, 4, &set, true);
        assert!(matches!(
            r,
            Applied::Fresh(CoordReply::Set { ok: false, .. })
        ));
        assert_eq!(c.in_sync.epoch, 2);
    }

    #[test]
    fn a_repeated_create_returns_the_sessions_entry() {
        let mut c = Coord::default();
        c.apply(10, 1, &CoordOp::Zk(ZkOp::Connect), true);
        c.apply(11, 1, &CoordOp::Zk(ZkOp::Connect), true);
        let first = c.apply(10, 2, &CoordOp::Zk(ZkOp::Create { session: 1 }), true);
        c.apply(11, 2, &CoordOp::Zk(ZkOp::Create { session: 2 }), true);
        // Client 10 restarted and lost the answer: a new request number, the same session.
        let again = c.apply(10, 7, &CoordOp::Zk(ZkOp::Create { session: 1 }), true);
        let seq = |a: Applied<CoordReply>| match a {
            Applied::Fresh(CoordReply::Zk(ZkReply::Created { seq })) => seq,
            other => panic!("not a create's answer: {other:?}"),
        };
        assert_eq!(seq(first), Some(1));
        assert_eq!(seq(again), Some(1));
        assert_eq!(c.listing().children, vec![(1, 10), (2, 11)]);
        // A session that expired gets no entry.
        c.apply(
            SERVICE_CLIENT,
            9,
            &CoordOp::Zk(ZkOp::ExpireSession { session: 1 }),
            true,
        );
        let gone = c.apply(10, 8, &CoordOp::Zk(ZkOp::Create { session: 1 }), true);
        assert_eq!(seq(gone), None);
    }
}
