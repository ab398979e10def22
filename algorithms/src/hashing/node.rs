//! The `hashing` algorithm's processes: storage servers that hold the keys the placement gives
//! them and hand keys on when their view changes, and clients that route each key to its
//! server.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::time::Nanos;
use sim_core::{Ctx, EventType, Message, NodeId, Op, Process, TimerId};

use super::membership::{Schedule, View};
use super::placement::{key_index, KeySpace, Placement, PlacementConfig, Strategy};
use super::stats::{key_loads, load_stats, movement, LoadStats, Movement};
use crate::client::RequestTracker;

/// What every node of a run shares (read-only).
pub struct Shared {
    /// How keys are placed.
    pub cfg: PlacementConfig,
    /// The workload's keys.
    pub keys: KeySpace,
    /// Spares and scheduled changes.
    pub schedule: Schedule,
    /// Heartbeat period (local time).
    pub heartbeat: Nanos,
    /// Silence after which a server is dropped from a view.
    pub suspect_after: Nanos,
    /// Number of servers.
    pub servers: usize,
    /// Client request timeout.
    pub timeout: Nanos,
    /// Placements already built, by member set: every node with the same view shares one
    /// (a placement is a pure function of the members, so sharing cannot change behaviour).
    pub built: RefCell<BTreeMap<Vec<usize>, Rc<Placement>>>,
}

impl Shared {
    /// The view a node starts with: the scheduled members at its local time `now`.
    pub fn initial_view(&self, now: Nanos) -> View {
        let m = (0..self.servers)
            .filter(|s| self.schedule.member_at(*s, now))
            .collect();
        View::new(m, now, self.suspect_after)
    }

    /// The placement for a view, if it has a member.
    pub fn placement(&self, view: &View) -> Option<Rc<Placement>> {
        let m: Vec<usize> = view.members().iter().copied().collect();
        if m.is_empty() {
            return None;
        }
        let mut built = self.built.borrow_mut();
        if let Some(p) = built.get(&m) {
            return Some(p.clone());
        }
        if built.len() >= 64 {
            // Bounded memory: forget the smallest member sets first (any order would do).
            let first = built.keys().next().cloned().expect("non-empty");
            built.remove(&first);
        }
        let p = Rc::new(Placement::build(&self.cfg, &m, &self.keys));
        built.insert(m, p.clone());
        Some(p)
    }
}

/// The `hashing` algorithm's messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A member's heartbeat.
    Alive,
    /// A member leaves gracefully.
    Leaving,
    /// Client: store `value` under key `key`.
    Put {
        /// Request id.
        req: u64,
        /// Key index.
        key: u32,
        /// Value.
        value: u64,
    },
    /// Stored.
    PutOk {
        /// Request id.
        req: u64,
    },
    /// Client (or a server forwarding once): read key `key`, answer `client`.
    Get {
        /// Request id.
        req: u64,
        /// Key index.
        key: u32,
        /// Who gets the answer.
        client: NodeId,
        /// Whether a server already forwarded it.
        forwarded: bool,
    },
    /// The value, if the server has one.
    GetOk {
        /// Request id.
        req: u64,
        /// The value.
        value: Option<u64>,
    },
    /// Keys handed to their new server.
    Handoff {
        /// (key, value) pairs.
        entries: Vec<(u32, u64)>,
    },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Alive => "alive",
            Msg::Leaving => "leaving",
            Msg::Put { .. } => "put",
            Msg::PutOk { .. } => "put_ok",
            Msg::Get { .. } => "get",
            Msg::GetOk { .. } => "get_ok",
            Msg::Handoff { .. } => "handoff",
        }
    }
}

/// What the reporting server measured when its view changed.
#[derive(Clone, Debug)]
pub struct ChangeReport {
    /// True time is not visible to processes: the reporter's local clock.
    pub local_ns: Nanos,
    /// Members before (empty for the first view).
    pub before: Vec<usize>,
    /// Members after.
    pub after: Vec<usize>,
    /// Balance of the key space over the members (per unit of weight).
    pub load: LoadStats,
    /// The most loaded server and its key count.
    pub max_node: (usize, usize),
    /// Bounded loads' capacity per server.
    pub cap: Option<usize>,
    /// Balance of ring shares (fractions of the hash space), for ring strategies.
    pub share: Option<LoadStats>,
    /// What the change moved (None for the first view).
    pub movement: Option<Movement>,
    /// Mean lookup cost in steps.
    pub lookup_steps: f64,
}

const HEARTBEAT: u64 = u64::MAX;
const SCHEDULE: u64 = u64::MAX - 1;

/// A storage server.
pub struct Server {
    shared: Rc<Shared>,
    member: bool,
    view: View,
    placement: Option<Rc<Placement>>,
    store: BTreeMap<u32, u64>,
    /// Reports of this server's view changes while it was the reporter (lowest member).
    pub reports: Vec<ChangeReport>,
}

impl Server {
    /// A server before its start.
    pub fn new(shared: Rc<Shared>) -> Server {
        let view = shared.initial_view(0);
        Server {
            shared,
            member: false,
            view,
            placement: None,
            store: BTreeMap::new(),
            reports: Vec::new(),
        }
    }

    /// Keys held.
    pub fn stored(&self) -> usize {
        self.store.len()
    }

    /// Whether this server is in the cluster (by the schedule).
    pub fn is_member(&self) -> bool {
        self.member
    }

    /// The members this server sees.
    pub fn view_members(&self) -> &std::collections::BTreeSet<usize> {
        self.view.members()
    }

    fn me_in_view(&mut self, me: usize, now: Nanos) {
        if self.member {
            self.view.heard(me, now);
        } else {
            self.view.remove(me);
        }
    }

    fn on_view_change(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let next = self.shared.placement(&self.view);
        self.hand_off(ctx, next.as_ref());
        let me = ctx.id();
        if self.member && self.view.members().first() == Some(&me) {
            if let Some(p) = &next {
                self.report(ctx, p);
            }
        }
        self.placement = next;
        ctx.series("load.keys", self.store.len() as f64);
    }

    fn hand_off(&mut self, ctx: &mut Ctx<'_, Msg>, next: Option<&Rc<Placement>>) {
        let Some(p) = next else { return };
        let me = ctx.id();
        let mut out: BTreeMap<usize, Vec<(u32, u64)>> = BTreeMap::new();
        for (k, v) in &self.store {
            let owner = p.owner(*k as usize, self.shared.keys.hashes[*k as usize]).0;
            if owner != me {
                out.entry(owner).or_default().push((*k, *v));
            }
        }
        for (to, entries) in out {
            ctx.count("hashing.keys_handed_off", entries.len() as f64);
            for (k, _) in &entries {
                self.store.remove(k);
            }
            ctx.send(to, Msg::Handoff { entries });
        }
    }

    fn report(&mut self, ctx: &mut Ctx<'_, Msg>, p: &Rc<Placement>) {
        let sh = &self.shared;
        let members = p.members().to_vec();
        let weights: Vec<f64> = members.iter().map(|m| sh.cfg.weight(*m)).collect();
        let (loads, lookup_steps) = key_loads(p, &sh.keys);
        let load = load_stats(&loads, &weights);
        let (imax, lmax) =
            loads
                .iter()
                .enumerate()
                .fold((0, 0.0), |a, (i, l)| if *l > a.1 { (i, *l) } else { a });
        let share = p.ring().map(|r| load_stats(&r.shares(&members), &weights));
        let bounded = sh.cfg.strategy == Strategy::Bounded && !sh.cfg.modulo;
        let cap = bounded
            .then(|| (sh.cfg.c * sh.keys.len() as f64 / members.len() as f64).ceil() as usize);
        let moved = self
            .placement
            .as_ref()
            .filter(|old| old.members() != p.members())
            .map(|old| movement(old, p, &sh.keys));
        ctx.observe("hashing.load_max_over_mean", load.max_over_mean);
        ctx.observe("hashing.load_cv", load.cv);
        ctx.observe("hashing.lookup_steps", lookup_steps);
        ctx.series("hashing.load_max_over_mean", load.max_over_mean);
        if let Some(s) = share {
            ctx.observe("hashing.share_cv", s.cv);
            ctx.observe("hashing.share_max_over_mean", s.max_over_mean);
            ctx.observe("hashing.share_min_over_mean", s.min_over_mean);
        }
        if let Some(m) = moved {
            ctx.observe("hashing.moved_fraction", m.fraction());
            ctx.observe("hashing.ideal_fraction", m.ideal_fraction);
            ctx.observe("hashing.moved_over_ideal", m.over_ideal());
            ctx.count("hashing.keys_moved_unnecessarily", m.unnecessary as f64);
            ctx.series("hashing.moved_over_ideal", m.over_ideal());
        }
        if let Some(r) = p.ring() {
            // The ring panel: owner id + position as one number per point (see reports/ring.rs).
            for (pos, owner) in r.positions() {
                ctx.series("ring.points", owner as f64 + pos.min(0.999_999_999));
            }
        }
        let before = self
            .placement
            .as_ref()
            .map(|o| o.members().to_vec())
            .unwrap_or_default();
        self.reports.push(ChangeReport {
            local_ns: ctx.now_local(),
            before,
            after: members.clone(),
            load,
            max_node: (members[imax], lmax as usize),
            cap,
            share,
            movement: moved,
            lookup_steps,
        });
    }

    fn heartbeat(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let me = ctx.id();
        let now = ctx.now_local();
        if self.member {
            broadcast(ctx, &Msg::Alive);
        }
        let changed = self.view.expire(now, self.member.then_some(me));
        if changed {
            self.on_view_change(ctx);
        }
        ctx.set_timer(self.shared.heartbeat, HEARTBEAT);
    }

    fn scheduled(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let me = ctx.id();
        let now = ctx.now_local();
        let should = self.shared.schedule.member_at(me, now);
        if should == self.member {
            return;
        }
        self.member = should;
        if should {
            broadcast(ctx, &Msg::Alive);
        } else {
            broadcast(ctx, &Msg::Leaving);
        }
        self.me_in_view(me, now);
        self.on_view_change(ctx);
        // A server outside the cluster owns nothing.
        debug_assert!(self.member || self.store.is_empty() || self.view.members().is_empty());
    }

    fn on_put(&mut self, ctx: &mut Ctx<'_, Msg>, key: u32, value: u64) {
        self.store.insert(key, value);
        let me = ctx.id();
        // Stored here by a client with another view: hand it on to the server this view says.
        if let Some(p) = &self.placement {
            let owner = p
                .owner(key as usize, self.shared.keys.hashes[key as usize])
                .0;
            if owner != me {
                self.store.remove(&key);
                ctx.count("hashing.misrouted", 1.0);
                ctx.send(
                    owner,
                    Msg::Handoff {
                        entries: vec![(key, value)],
                    },
                );
            }
        }
    }

    fn on_get(&mut self, ctx: &mut Ctx<'_, Msg>, req: u64, key: u32, client: NodeId, fwd: bool) {
        if let Some(v) = self.store.get(&key) {
            ctx.send(
                client,
                Msg::GetOk {
                    req,
                    value: Some(*v),
                },
            );
            return;
        }
        let me = ctx.id();
        let owner = self.placement.as_ref().map(|p| {
            p.owner(key as usize, self.shared.keys.hashes[key as usize])
                .0
        });
        match owner {
            Some(o) if o != me && !fwd => {
                ctx.count("hashing.misrouted", 1.0);
                ctx.send(
                    o,
                    Msg::Get {
                        req,
                        key,
                        client,
                        forwarded: true,
                    },
                );
            }
            _ => ctx.send(client, Msg::GetOk { req, value: None }),
        }
    }
}

fn broadcast(ctx: &mut Ctx<'_, Msg>, msg: &Msg) {
    let me = ctx.id();
    for to in 0..ctx.servers_count() + ctx.clients_count() {
        if to != me {
            ctx.send(to, msg.clone());
        }
    }
}

/// A client: routes each key by its own view.
pub struct Client {
    shared: Rc<Shared>,
    view: View,
    placement: Option<Rc<Placement>>,
    tracker: RequestTracker,
}

impl Client {
    /// A client before its start.
    pub fn new(shared: Rc<Shared>) -> Client {
        let view = shared.initial_view(0);
        Client {
            shared,
            view,
            placement: None,
            tracker: RequestTracker::default(),
        }
    }

    /// The members this client routes to.
    pub fn view_members(&self) -> &std::collections::BTreeSet<usize> {
        self.view.members()
    }
}

/// A node: a server or a client.
pub enum Node {
    /// Stores keys.
    Server(Server),
    /// Puts and gets keys.
    Client(Client),
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now_local();
        match self {
            Node::Server(s) => {
                let me = ctx.id();
                s.member = s.shared.schedule.member_at(me, now);
                s.view = s.shared.initial_view(now);
                s.me_in_view(me, now);
                for t in s.shared.schedule.times_after(me, now) {
                    ctx.set_timer(t - now, SCHEDULE);
                }
                if s.member {
                    broadcast(ctx, &Msg::Alive);
                }
                s.on_view_change(ctx);
                ctx.set_timer(s.shared.heartbeat, HEARTBEAT);
            }
            Node::Client(c) => {
                c.view = c.shared.initial_view(now);
                ctx.set_timer(c.shared.heartbeat, HEARTBEAT);
            }
        }
    }

    // A heartbeat's view update mutates the view, which a match guard cannot do.
    #[allow(clippy::collapsible_match)]
    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let now = ctx.now_local();
        match (self, msg) {
            (Node::Server(s), Msg::Alive) => {
                if s.view.heard(from, now) {
                    s.on_view_change(ctx);
                }
            }
            (Node::Server(s), Msg::Leaving) => {
                if s.view.remove(from) {
                    s.on_view_change(ctx);
                }
            }
            (Node::Server(s), Msg::Put { req, key, value }) => {
                s.on_put(ctx, key, value);
                ctx.send(from, Msg::PutOk { req });
            }
            (
                Node::Server(s),
                Msg::Get {
                    req,
                    key,
                    client,
                    forwarded,
                },
            ) => s.on_get(ctx, req, key, client, forwarded),
            (Node::Server(s), Msg::Handoff { entries }) => {
                for (k, v) in entries {
                    s.on_put(ctx, k, v);
                }
            }
            (Node::Client(c), Msg::Alive) => {
                if c.view.heard(from, now) {
                    c.placement = None;
                }
            }
            (Node::Client(c), Msg::Leaving) => {
                if c.view.remove(from) {
                    c.placement = None;
                }
            }
            (Node::Client(c), Msg::PutOk { req }) => {
                c.tracker
                    .finish(ctx, req, EventType::Ok, serde_json::Value::Null);
            }
            (Node::Client(c), Msg::GetOk { req, value }) => {
                c.tracker
                    .finish(ctx, req, EventType::Ok, serde_json::json!(value));
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        match self {
            Node::Server(s) if tag == HEARTBEAT => s.heartbeat(ctx),
            Node::Server(s) if tag == SCHEDULE => s.scheduled(ctx),
            Node::Client(c) if tag == HEARTBEAT => {
                if c.view.expire(ctx.now_local(), None) {
                    c.placement = None;
                }
                ctx.set_timer(c.shared.heartbeat, HEARTBEAT);
            }
            Node::Client(c) => {
                c.tracker.on_timer(ctx, tag);
            }
            _ => {}
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        let Node::Client(c) = self else { return };
        let key = op.key.as_deref().and_then(key_index);
        let Some(key) = key.filter(|k| *k < c.shared.keys.len()) else {
            ctx.complete(EventType::Fail, serde_json::json!("no such key"));
            return;
        };
        if c.placement.is_none() {
            c.placement = c.shared.placement(&c.view);
        }
        let Some(p) = &c.placement else {
            // No server is known to be up: certainly no effect.
            ctx.complete(EventType::Fail, serde_json::json!("no server"));
            return;
        };
        let (to, steps) = p.owner(key, c.shared.keys.hashes[key]);
        ctx.observe("hashing.client_lookup_steps", f64::from(steps));
        let req = c.tracker.begin(ctx, c.shared.timeout);
        let key = key as u32;
        let msg = match op.f.as_str() {
            "get" => Msg::Get {
                req,
                key,
                client: ctx.id(),
                forwarded: false,
            },
            _ => Msg::Put {
                req,
                key,
                value: op.value.as_u64().unwrap_or(0),
            },
        };
        ctx.send(to, msg);
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        super::summary::of(self)
    }
}
