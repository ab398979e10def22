//! A replica's side of the `failover = "zookeeper"` variant: it keeps a session with the
//! coordination service ([`super::coord`]) alive by pings, stands for election with one
//! ephemeral sequential entry, lists the entries every heartbeat and derives its view from
//! them by the election rule ([`Listing::view`]).
//!
//! - **Lease.** The primary acts only while it holds a lease, granted by the service leader's
//!   answer to a ping and counted on the primary's monotonic clock from when the ping left
//!   (the [`Lease`](super::lease::Lease) of the view-service variant). The service can expire
//!   the session no sooner than `session_timeout` of its leader's clock after the ping
//!   arrived; a deposed service leader may still answer pings until CheckQuorum deposes it,
//!   up to two election timeouts after a new leader took over. So the lease is
//!   `(session_timeout / (1 + m) - 2 x election_timeout_max) x (1 - m)`, which ends, in true
//!   time, before any successor can be elected.
//! - **Epoch.** The primary's epoch is its entry's sequence number, the fencing token: a
//!   backup follows the newest epoch it has seen and refuses an older primary's stream.
//! - **In-sync set.** The primary writes the set (itself and the backups holding everything
//!   acknowledged) before it serves, and waits for every replica in the set (committed or
//!   proposed) as well as every backup of its view before it acknowledges a write; a backup
//!   whose entry vanished is waited for until a set without it is committed. A new primary
//!   outside the set finishes its catch-up only with the log of a replica in it.
//! - **Session and entry are durable**, so a restarted replica whose session is still alive
//!   resumes it (a restarted primary keeps its epoch, as with the view service).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sim_core::time::Nanos;
use sim_core::{Ctx, NodeId, TimerId};

use super::coord::{CoordOp, CoordReply, InSync, Listing};
use super::msg::Msg;
use super::replica::Replica;
use crate::lock::zk::{ZkOp, ZkReply};
use crate::raft::msg::Msg as RaftMsg;

/// The coordination request's retry timer tag (low bits: the request).
pub(crate) const ELECT_TIMER: u64 = 1 << 58;

/// What a replica keeps durably about its candidacy.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Durable {
    session: Option<u64>,
    seq: Option<u64>,
    boot: u64,
}

/// A replica's candidacy in the coordination service.
#[derive(Clone, Debug)]
pub struct Elector {
    /// The service's replicas are nodes `0..zk_nodes`.
    zk_nodes: usize,
    /// The service replica believed to lead.
    leader: NodeId,
    /// The session, and this replica's entry (durable).
    session: Option<u64>,
    /// This replica's entry's sequence number (its epoch, should it lead).
    pub seq: Option<u64>,
    /// Incremented at every start, so that request numbers grow across restarts.
    boot: u64,
    next_req: u64,
    /// The request under way.
    outstanding: Option<(u64, CoordOp)>,
    retry: Option<TimerId>,
    /// The next retry goes to `leader` as named by a redirect, not to the next replica.
    redirected: bool,
    /// The in-sync set as last read.
    pub in_sync: InSync,
    /// Pings numbered at or below this were sent under an earlier session: no lease.
    session_from_ping: u64,
    /// The lease, on the local monotonic clock.
    pub lease_ns: Nanos,
    retry_ns: Nanos,
}

impl Elector {
    /// A candidacy for a service on nodes `0..zk_nodes`.
    pub fn new(zk_nodes: usize, lease_ns: Nanos, retry_ns: Nanos) -> Self {
        Elector {
            zk_nodes,
            leader: 0,
            session: None,
            seq: None,
            boot: 0,
            next_req: 0,
            outstanding: None,
            retry: None,
            redirected: false,
            in_sync: InSync::default(),
            session_from_ping: 0,
            lease_ns,
            retry_ns,
        }
    }

    fn durable(&self) -> Durable {
        Durable {
            session: self.session,
            seq: self.seq,
            boot: self.boot,
        }
    }
}

impl Replica {
    fn el(&mut self) -> &mut Elector {
        self.zk.as_mut().expect("the zookeeper variant")
    }

    /// Start: resume the durable candidacy, one boot later.
    pub(crate) fn elector_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let d: Durable = ctx.storage().get_json("candidacy").unwrap_or_default();
        let e = self.el();
        e.session = d.session;
        e.seq = d.seq;
        e.boot = d.boot + 1;
        e.leader = ctx.id() % e.zk_nodes;
        self.elector_persist(ctx);
    }

    fn elector_persist(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let d = self.el().durable();
        ctx.storage().put_json("candidacy", &d);
        ctx.storage().sync();
    }

    /// Every heartbeat: ping the session (the lease of this ping), and list the entries.
    pub(crate) fn elector_tick(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.session_ping(ctx);
        if self.el().outstanding.is_none() {
            self.elector_next(ctx, true);
        }
    }

    /// Pings the session, asking for the lease of this ping.
    pub(crate) fn session_ping(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let e = self.el();
        let (leader, lease_ns) = (e.leader, e.lease_ns);
        let Some(session) = e.session else {
            return;
        };
        self.next_ping += 1;
        let ping = self.next_ping;
        self.lease.sent(ctx, ping, lease_ns);
        ctx.send(leader, Msg::SessionPing { session, ping });
    }

    /// Sends the next request the candidacy needs; a listing only when `list` (each
    /// heartbeat), the rest at once.
    fn elector_next(&mut self, ctx: &mut Ctx<'_, Msg>, list: bool) {
        let want = self.in_sync_wanted();
        let e = self.el();
        let op = match (e.session, e.seq) {
            (None, _) => CoordOp::Zk(ZkOp::Connect),
            (Some(session), None) => CoordOp::Zk(ZkOp::Create { session }),
            _ => match want {
                Some((epoch, nodes)) => CoordOp::SetInSync { epoch, nodes },
                None if list => CoordOp::List,
                None => return,
            },
        };
        e.next_req += 1;
        let req = (e.boot << 32) | e.next_req;
        e.outstanding = Some((req, op));
        self.elector_send(ctx);
    }

    fn elector_send(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let id = ctx.id() as u32;
        let retry_ns = self.el().retry_ns;
        let e = self.el();
        let Some((req, op)) = e.outstanding.clone() else {
            return;
        };
        let leader = e.leader;
        if let Some(t) = e.retry.take() {
            ctx.cancel_timer(t);
        }
        let msg = RaftMsg::Request {
            req,
            client: id,
            seq: req,
            op,
        };
        ctx.send(leader, Msg::Coord(msg));
        let t = ctx.set_timer(retry_ns, ELECT_TIMER | (req & 0xffff_ffff_ffff));
        self.el().retry = Some(t);
    }

    /// The retry timer: no answer, so try the next service replica.
    pub(crate) fn elector_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        let e = self.el();
        let low = tag & !ELECT_TIMER;
        if e.outstanding
            .as_ref()
            .is_some_and(|(r, _)| r & 0xffff_ffff_ffff == low)
        {
            e.retry = None;
            if !std::mem::take(&mut e.redirected) {
                e.leader = (e.leader + 1) % e.zk_nodes;
            }
            self.elector_send(ctx);
        }
    }

    /// The service leader answered a ping.
    pub(crate) fn on_pong(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, ping: u64, alive: bool) {
        let e = self.el();
        e.leader = from;
        if ping <= e.session_from_ping {
            return;
        }
        if !alive {
            self.session_lost(ctx);
            return;
        }
        // Only the primary of the view derived from this replica's current entry gets a
        // lease: a replica that comes back from a stall with a new session must not take a
        // grant as the primary of the view it had before (its old entry, and epoch, are gone).
        let epoch = self.view.epoch;
        let current = self.el().seq == Some(epoch);
        if self.view.primary == Some(self.id) && current {
            let lease_ns = self.el().lease_ns;
            self.lease.granted(ping, lease_ns, ctx.now_monotonic());
        }
    }

    /// A service replica that does not lead named the leader it believes in.
    pub(crate) fn on_coord_not_leader(&mut self, hint: Option<NodeId>) {
        let e = self.el();
        if let Some(h) = hint.filter(|h| *h < e.zk_nodes) {
            e.leader = h;
        }
    }

    /// The session is gone (and with it this replica's entry): no lease, a new session.
    fn session_lost(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let next_ping = self.next_ping;
        let e = self.el();
        e.session = None;
        e.seq = None;
        e.session_from_ping = next_ping;
        ctx.count("pb.sessions_lost", 1.0);
        self.lease.drop_lease();
        self.elector_persist(ctx);
    }

    /// The coordination service answered a request.
    pub(crate) fn on_coord_reply(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        req: u64,
        result: CoordReply,
    ) {
        let e = self.el();
        if e.outstanding.as_ref().map(|(r, _)| *r) != Some(req) {
            return;
        }
        if let CoordReply::Zk(ZkReply::NotLeader { hint }) = result {
            e.leader = match hint.filter(|h| *h < e.zk_nodes && *h != from) {
                Some(h) => h,
                None => (from + 1) % e.zk_nodes,
            };
            e.redirected = true;
            // Let an election finish rather than circling at network speed.
            let t = ctx.set_timer(
                (e.retry_ns / 4).max(1),
                ELECT_TIMER | (req & 0xffff_ffff_ffff),
            );
            if let Some(old) = e.retry.replace(t) {
                ctx.cancel_timer(old);
            }
            return;
        }
        e.leader = from;
        e.outstanding = None;
        if let Some(t) = e.retry.take() {
            ctx.cancel_timer(t);
        }
        // A new entry is listed at once, so that a new primary need not wait a beat.
        let list = matches!(result, CoordReply::Zk(ZkReply::Created { seq: Some(_) }));
        match result {
            CoordReply::Zk(ZkReply::Connected { session }) => {
                let next_ping = self.next_ping;
                let e = self.el();
                e.session = Some(session);
                e.seq = None;
                e.session_from_ping = next_ping;
                self.elector_persist(ctx);
            }
            CoordReply::Zk(ZkReply::Created { seq: Some(q) }) => {
                self.el().seq = Some(q);
                self.elector_persist(ctx);
                // Ping at once so that a new primary gets its lease without waiting a beat.
                self.session_ping(ctx);
            }
            CoordReply::Zk(ZkReply::Created { seq: None }) => self.session_lost(ctx),
            CoordReply::Listed(l) => self.on_listing(ctx, l),
            CoordReply::Set { ok, in_sync } => {
                if !ok {
                    ctx.count("pb.in_sync_refused", 1.0);
                }
                self.el().in_sync = in_sync;
            }
            CoordReply::Zk(_) => {}
        }
        self.elector_next(ctx, list);
    }

    /// A listing: if this replica's entry is gone its session expired; otherwise derive the
    /// view by the election rule, and adopt it if it changed.
    fn on_listing(&mut self, ctx: &mut Ctx<'_, Msg>, l: Listing) {
        let me = self.id;
        self.el().in_sync = l.in_sync.clone();
        let mine = self.el().seq;
        if let Some(q) = mine {
            if !l.children.iter().any(|(s, n)| *s == q && *n == me) {
                self.session_lost(ctx);
            }
        }
        let (epoch, primary, backups) = l.view();
        let v = &self.view;
        if (v.epoch, v.primary, &v.backups) != (epoch, primary, &backups) || v.num == 0 {
            let view = l.to_view(self.view.num + 1);
            ctx.note(|| {
                format!(
                    "listing {:?}, in sync {:?} (epoch {}): view {} epoch {} primary {:?} backups {:?}",
                    l.children, l.in_sync.nodes, l.in_sync.epoch, view.num, view.epoch, view.primary, view.backups
                )
            });
            self.on_view(ctx, view, None);
        }
    }

    /// Primary only: the in-sync set to write, when the committed one differs from itself
    /// and the backups that hold everything acknowledged (only once caught up).
    ///
    /// Only the primary of a current view writes it: its own entry leads, and no newer epoch
    /// wrote the set. A replica whose view is stale (its entry expired, and a newer primary
    /// wrote the set) would otherwise be refused, ask again, and never list the entries that
    /// would tell it its new place: zk-nemesis-wide-drift seed 6002 looped so 215 times.
    fn in_sync_wanted(&self) -> Option<(u64, BTreeSet<NodeId>)> {
        let e = self.zk.as_ref()?;
        let epoch = self.view.epoch;
        if e.seq != Some(epoch) || e.in_sync.epoch > epoch {
            return None;
        }
        let synced = self.synced_backups()?;
        let mut want: BTreeSet<NodeId> = synced;
        want.insert(self.id);
        (e.in_sync.epoch != epoch || e.in_sync.nodes != want).then_some((epoch, want))
    }

    /// Whether a catch-up that heard from `responders` holds every acknowledged write: this
    /// replica or one of them is in the in-sync set (or no set was ever written). Always, with
    /// the view service, which promotes only replicas in sync.
    pub(crate) fn catchup_complete(&self, responders: &BTreeSet<NodeId>) -> bool {
        self.zk.as_ref().is_none_or(|e| {
            e.in_sync.epoch == 0
                || e.in_sync.nodes.contains(&self.id)
                || responders.iter().any(|r| e.in_sync.nodes.contains(r))
        })
    }

    /// Whether the coordination service lets this primary serve: the committed in-sync set
    /// was written in its epoch and names it (always, with the view service).
    pub(crate) fn elector_allows_serving(&self) -> bool {
        self.zk.as_ref().is_none_or(|e| {
            e.in_sync.epoch == self.view.epoch && e.in_sync.nodes.contains(&self.id)
        })
    }

    /// The replicas an acknowledgement waits for besides the view's backups: with the
    /// coordination service, every other replica of the committed or proposed in-sync set.
    pub(crate) fn elector_ack_set(&self) -> Vec<NodeId> {
        let Some(e) = &self.zk else {
            return Vec::new();
        };
        let proposed = match &e.outstanding {
            Some((_, CoordOp::SetInSync { nodes, .. })) => Some(nodes),
            _ => None,
        };
        let mut out: BTreeSet<NodeId> = e.in_sync.nodes.clone();
        out.extend(proposed.into_iter().flatten());
        out.remove(&self.id);
        out.into_iter().collect()
    }
}
