//! A replica of the key-value store: its durable log, its heartbeats and lease, and what it
//! does as a backup. What it does as the primary is in [`super::primary`].
//!
//! The log is the store: every operation the primary ordered, reads included, applied in
//! order to the Raft store's [`KvState`] (which answers a retried command from its client
//! session instead of applying it twice). It is durable: an entry is synced before a backup
//! acknowledges it and before the primary sends it, so a restarted replica comes back with
//! everything it ever acknowledged, and a backup never holds an entry its primary could lose.
//!
//! A backup follows one primary's stream, named by that primary's epoch (`log_epoch`): it
//! accepts entries only of that epoch, and only while it knows of no newer epoch; a primary of
//! a newer epoch first replaces the backup's whole log with its own (a snapshot).

use std::rc::Rc;

use sim_core::{Ctx, NodeId};

use super::elector::{Elector, ELECT_TIMER};
use super::lease::{Lease, LEASE_TIMER};
use super::msg::{Entry, Msg, View};
use super::primary::Primary;
use super::{Params, PbBug, SERVICE};
use crate::raft::kv::{Applied, KvState};
use crate::raft::msg::{ClientResult, KvOp};

/// The heartbeat timer's tag.
pub(crate) const TICK: u64 = 1;

/// One replica (nodes 1..=replicas).
pub struct Replica {
    pub(crate) p: Rc<Params>,
    pub(crate) id: NodeId,
    /// The newest view this replica has heard of.
    pub view: View,
    /// Every operation in order (durable).
    pub log: Vec<Entry>,
    /// The log applied.
    pub kv: KvState,
    /// The epoch of the primary whose stream the log follows (durable).
    pub log_epoch: u64,
    /// The lease, held only by a primary.
    pub lease: Lease,
    pub(crate) next_ping: u64,
    /// Primary duties, while this replica is the primary of `view`.
    pub primary: Option<Primary>,
    /// Whether the panel last showed this replica acting as primary.
    shown_acting: bool,
    /// `failover = "zookeeper"`: the candidacy in the coordination service (None: the view
    /// service decides).
    pub zk: Option<Elector>,
}

impl Replica {
    /// Replica `id`.
    pub fn new(p: Rc<Params>, id: NodeId, zk: Option<Elector>) -> Self {
        Replica {
            p,
            id,
            view: View::default(),
            log: Vec::new(),
            kv: KvState::default(),
            log_epoch: 0,
            lease: Lease::default(),
            next_ping: 0,
            primary: None,
            shown_acting: false,
            zk,
        }
    }

    /// Whether this replica believes it is the primary and holds an unexpired lease: the
    /// state in which it takes client operations. At most one replica may be in it at any
    /// true time.
    pub fn acting(&self) -> bool {
        self.view.primary == Some(self.id) && self.lease.valid()
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.log_epoch = ctx.storage().get_json("epoch").unwrap_or(0);
        let stored: Vec<Entry> = ctx
            .storage()
            .log("log")
            .iter()
            .map(|b| serde_json::from_slice(b).expect("the replica wrote this entry"))
            .collect();
        for e in stored {
            self.apply(e);
        }
        ctx.series("view", 0.0);
        if self.zk.is_some() {
            self.elector_start(ctx);
        }
        self.tick(ctx);
    }

    /// Appends an entry to the log and applies it (not yet durable: see [`Self::persist`]).
    pub(crate) fn apply(&mut self, e: Entry) -> Applied {
        let r = self.kv.apply(e.client, e.cseq, &e.op, true);
        self.log.push(e);
        r
    }

    /// Makes the log from entry `from` on, and the epoch, durable.
    pub(crate) fn persist(&mut self, ctx: &mut Ctx<'_, Msg>, from: usize) {
        let st = ctx.storage();
        st.truncate("log", from);
        for e in &self.log[from..] {
            st.append("log", serde_json::to_vec(e).expect("entries serialize"));
        }
        st.put_json("epoch", &self.log_epoch);
        st.sync();
        debug_assert_eq!(ctx.storage().log("log").len(), self.log.len());
    }

    /// Replaces the log by `log` of stream `epoch`, keeping the common prefix on disk.
    pub(crate) fn install(&mut self, ctx: &mut Ctx<'_, Msg>, epoch: u64, log: &[Entry]) {
        let common = self.log.iter().zip(log).take_while(|(a, b)| a == b).count();
        self.log.clear();
        self.kv = KvState::default();
        for e in log {
            self.apply(e.clone());
        }
        self.log_epoch = epoch;
        self.persist(ctx, common);
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        self.lease.refresh(ctx.now_monotonic());
        match msg {
            Msg::ViewReply { view, grant } => self.on_view(ctx, view, grant),
            Msg::Fetch { epoch } => self.on_fetch(ctx, from, epoch),
            Msg::Snapshot { epoch, log } => self.on_snapshot(ctx, from, epoch, &log),
            Msg::Replicate {
                epoch,
                prev,
                entries,
            } => self.on_replicate(ctx, from, epoch, prev, entries),
            Msg::Request {
                req,
                client,
                cseq,
                op,
            } => self.on_request(ctx, from, req, client, cseq, op),
            Msg::FetchReply {
                epoch,
                log_epoch,
                log,
            } => self.on_fetch_reply(ctx, from, epoch, log_epoch, log),
            Msg::Ack { epoch, applied } => self.on_ack(ctx, from, epoch, applied),
            Msg::Coord(crate::raft::msg::Msg::Reply { req, result }) if self.zk.is_some() => {
                self.on_coord_reply(ctx, from, req, result)
            }
            Msg::SessionPong { ping, alive } if self.zk.is_some() => {
                self.on_pong(ctx, from, ping, alive)
            }
            Msg::CoordNotLeader { hint } if self.zk.is_some() => self.on_coord_not_leader(hint),
            _ => {}
        }
        self.show(ctx);
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        self.lease.refresh(ctx.now_monotonic());
        if tag & LEASE_TIMER != 0 {
            self.lease.timer(tag & !LEASE_TIMER);
        } else if tag == TICK {
            self.tick(ctx);
        } else if tag & ELECT_TIMER != 0 && self.zk.is_some() {
            self.elector_timer(ctx, tag);
        } else {
            self.on_primary_timer(ctx, tag);
        }
        self.show(ctx);
    }

    /// Every heartbeat: ping the view service (asking for a lease), and as the primary, send
    /// the backups what they lack.
    fn tick(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.set_timer(self.p.heartbeat_interval.0, TICK);
        if self.zk.is_some() {
            self.elector_tick(ctx);
        } else {
            self.ping(ctx);
        }
        self.ship(ctx);
    }

    /// Pings the view service, asking for the lease of this heartbeat.
    fn ping(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.zk.is_some() {
            self.session_ping(ctx);
            return;
        }
        self.next_ping += 1;
        let ping = self.next_ping;
        self.lease.sent(ctx, ping, self.p.lease.0);
        let synced = self.primary_synced();
        ctx.send(
            SERVICE,
            Msg::Ping {
                ping,
                view: self.view.num,
                synced,
            },
        );
    }

    pub(crate) fn on_view(&mut self, ctx: &mut Ctx<'_, Msg>, view: View, grant: Option<u64>) {
        if view.num > self.view.num {
            self.view = view;
            ctx.series("view", self.view.num as f64);
            if self.view.primary == Some(self.id) {
                if !self.lease.valid() {
                    // Promoted: ask for the lease now rather than at the next heartbeat.
                    self.ping(ctx);
                }
                self.become_or_stay_primary(ctx);
            } else {
                self.primary = None;
                self.lease.drop_lease();
            }
        }
        if let Some(ping) = grant {
            if self.view.primary == Some(self.id) {
                self.lease
                    .granted(ping, self.p.lease.0, ctx.now_monotonic());
            }
        }
    }

    /// A newly promoted primary asks for this replica's log.
    fn on_fetch(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, epoch: u64) {
        if epoch < self.view.epoch {
            return;
        }
        ctx.send(
            from,
            Msg::FetchReply {
                epoch,
                log_epoch: self.log_epoch,
                log: Rc::new(self.log.clone()),
            },
        );
    }

    /// Whether a primary of `epoch` is one this replica may follow.
    fn follows(&self, epoch: u64) -> bool {
        epoch >= self.view.epoch && self.primary.as_ref().is_none_or(|p| p.epoch < epoch)
    }

    fn on_snapshot(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, epoch: u64, log: &[Entry]) {
        if !self.follows(epoch) || epoch < self.log_epoch {
            return;
        }
        self.primary = None;
        // Within one stream a longer log extends a shorter one: a late snapshot must not cut
        // off entries this backup has already acknowledged.
        if epoch != self.log_epoch || log.len() > self.log.len() {
            let (old_epoch, old_len) = (self.log_epoch, self.log.len());
            ctx.note(|| {
                format!(
                    "snapshot from n{from}: epoch {old_epoch} len {old_len} -> epoch {epoch} len {}",
                    log.len()
                )
            });
            self.install(ctx, epoch, log);
        }
        self.ack(ctx, from, epoch);
    }

    fn on_replicate(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        epoch: u64,
        prev: u64,
        entries: Vec<Entry>,
    ) {
        if !self.follows(epoch) {
            return;
        }
        if epoch != self.log_epoch {
            // Another primary's stream: ask for its whole log.
            ctx.send(
                from,
                Msg::Ack {
                    epoch,
                    applied: None,
                },
            );
            return;
        }
        let len = self.log.len() as u64;
        if prev <= len {
            let skip = (len - prev) as usize;
            let from_index = self.log.len();
            for e in entries.into_iter().skip(skip) {
                self.apply(e);
            }
            if self.log.len() > from_index {
                self.persist(ctx, from_index);
            }
        }
        self.ack(ctx, from, epoch);
    }

    fn ack(&mut self, ctx: &mut Ctx<'_, Msg>, to: NodeId, epoch: u64) {
        debug_assert_eq!(epoch, self.log_epoch);
        ctx.send(
            to,
            Msg::Ack {
                epoch,
                applied: Some(self.log.len() as u64),
            },
        );
    }

    fn on_request(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        req: u64,
        client: u32,
        cseq: u64,
        op: KvOp,
    ) {
        if self.p.has(PbBug::BackupReads) {
            if let KvOp::Get { key } = op {
                if self.primary.is_none() {
                    // The bug: a backup answers from its own copy, however far behind.
                    let value = self.kv.data.get(&key).copied();
                    let result = ClientResult::Value(value);
                    ctx.send(from, Msg::Reply { req, result });
                    return;
                }
            }
        }
        if self.serving() {
            self.take_request(ctx, from, req, client, cseq, op);
        } else {
            let hint = self.view.primary.filter(|p| *p != self.id);
            let result = ClientResult::NotLeader { hint };
            ctx.send(from, Msg::Reply { req, result });
        }
    }

    /// Keeps the panel's `excl.primary` series (at most one replica may be in it) true.
    fn show(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let acting = self.acting();
        if acting != self.shown_acting {
            self.shown_acting = acting;
            ctx.series("excl.primary", if acting { 1.0 } else { 0.0 });
        }
    }
}
