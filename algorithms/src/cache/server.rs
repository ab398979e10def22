//! Cache servers (an LRU of entries, memcache-style leases, self-flush after a stall) and the
//! database (slow, durable, versioned).

use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::time::Nanos;
use sim_core::{Ctx, NodeId};

use super::lru::Lru;
use super::msg::Msg;
use super::{CacheBug, Config};
use crate::hashing::membership::View;
use crate::hashing::placement::Placement;

/// A cached entry.
#[derive(Clone, Copy, Debug)]
struct Entry {
    value: Option<u64>,
    /// Local time after which the entry is gone (memcache's expiry), if `ttl` is set.
    expires: Option<Nanos>,
}

/// A lease handed out on a miss.
#[derive(Clone, Copy, Debug)]
struct Lease {
    token: u64,
    issued: Nanos,
}

/// One cache server.
pub struct CacheServer {
    cfg: Rc<Config>,
    member: bool,
    view: View,
    placement: Option<Rc<Placement>>,
    lru: Lru<Entry>,
    leases: BTreeMap<u32, Lease>,
    next_token: u64,
    last_tick: Nanos,
    /// Keys with a miss episode open: a miss happened and no fill has landed yet.
    open_misses: BTreeMap<u32, ()>,
    window_hits: u64,
    window_misses: u64,
    requests: u64,
}

impl CacheServer {
    /// A server before its start.
    pub fn new(cfg: Rc<Config>) -> CacheServer {
        let view = cfg.shared.initial_view(0);
        let capacity = cfg.capacity;
        CacheServer {
            cfg,
            member: false,
            view,
            placement: None,
            lru: Lru::new(capacity),
            leases: BTreeMap::new(),
            next_token: 0,
            last_tick: 0,
            open_misses: BTreeMap::new(),
            window_hits: 0,
            window_misses: 0,
            requests: 0,
        }
    }

    /// Whether this cache server is in the cluster (by the schedule).
    pub fn is_member(&self) -> bool {
        self.member
    }

    /// The cache servers this one sees as members.
    pub fn view_members(&self) -> &std::collections::BTreeSet<usize> {
        self.view.members()
    }

    /// Entries held.
    pub fn entries(&self) -> usize {
        self.lru.len()
    }

    /// Starts (or restarts, empty: a cache keeps nothing on disk).
    pub fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now_local();
        let me = ctx.id();
        let sh = self.cfg.shared.clone();
        self.member = sh.schedule.member_at(me, now);
        self.view = sh.initial_view(now);
        if !self.member {
            self.view.remove(me);
        }
        for t in sh.schedule.times_after(me, now) {
            ctx.set_timer(t - now, super::SCHEDULE);
        }
        self.last_tick = now;
        if self.member {
            self.cfg.broadcast(ctx, &Msg::Alive);
        }
        self.view_changed(ctx);
        ctx.set_timer(sh.heartbeat, super::HEARTBEAT);
        ctx.set_timer(self.cfg.report_interval, super::REPORT);
    }

    fn owns(&self, me: NodeId, key: u32) -> bool {
        self.member
            && self.placement.as_ref().is_some_and(|p| {
                p.owner(key as usize, self.cfg.shared.keys.hashes[key as usize])
                    .0
                    == me
            })
    }

    /// Rebuilds the placement and drops entries (and leases) this server no longer owns, so
    /// that an entry cannot outlive a stretch of time during which writes invalidated the key
    /// elsewhere.
    fn view_changed(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.placement = self.cfg.shared.placement(&self.view);
        let me = ctx.id();
        ctx.series("state.member", if self.member { 1.0 } else { 0.0 });
        let (member, placement, keys) =
            (self.member, self.placement.clone(), &self.cfg.shared.keys);
        let owns = |k: u32| {
            member
                && placement
                    .as_ref()
                    .is_some_and(|p| p.owner(k as usize, keys.hashes[k as usize]).0 == me)
        };
        let dropped = self.lru.retain(owns);
        self.leases.retain(|k, _| owns(*k));
        ctx.count("cache.dropped_not_owned", dropped as f64);
    }

    /// Handles a heartbeat tick: send Alive, expire silent peers, and flush everything if this
    /// server itself was stalled long enough to have been dropped from other views.
    pub fn heartbeat(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now_local();
        let me = ctx.id();
        let sh = self.cfg.shared.clone();
        if now.saturating_sub(self.last_tick) > sh.suspect_after {
            // Clients may have routed our keys elsewhere (and invalidated them there) while we
            // were silent: nothing we hold can be trusted.
            let n = self.lru.len();
            self.lru.retain(|_| false);
            self.leases.clear();
            ctx.count("cache.flushed_after_stall", n as f64);
        }
        self.last_tick = now;
        if self.member {
            self.cfg.broadcast(ctx, &Msg::Alive);
        }
        if self.view.expire(now, self.member.then_some(me)) {
            self.view_changed(ctx);
        }
        ctx.set_timer(sh.heartbeat, super::HEARTBEAT);
    }

    /// A scheduled join or leave of this server.
    pub fn scheduled(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now_local();
        let me = ctx.id();
        let should = self.cfg.shared.schedule.member_at(me, now);
        if should == self.member {
            return;
        }
        self.member = should;
        if should {
            self.view.heard(me, now);
            self.cfg.broadcast(ctx, &Msg::Alive);
        } else {
            self.view.remove(me);
            self.cfg.broadcast(ctx, &Msg::Leaving);
        }
        self.view_changed(ctx);
    }

    /// Records the panels' series for the last window.
    pub fn report(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let total = self.window_hits + self.window_misses;
        if total > 0 {
            ctx.series("cache.hit_ratio", self.window_hits as f64 / total as f64);
        }
        ctx.series("load.cache_requests", self.requests as f64);
        ctx.series("load.cache_entries", self.lru.len() as f64);
        self.window_hits = 0;
        self.window_misses = 0;
        ctx.set_timer(self.cfg.report_interval, super::REPORT);
    }

    /// Handles a message.
    // A heartbeat's view update mutates the view, which a match guard cannot do.
    #[allow(clippy::collapsible_match)]
    pub fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let now = ctx.now_local();
        match msg {
            Msg::Alive => {
                if self.view.heard(from, now) {
                    self.view_changed(ctx);
                }
            }
            Msg::Leaving => {
                if self.view.remove(from) {
                    self.view_changed(ctx);
                }
            }
            Msg::Get { req, key } => self.get(ctx, from, req, key),
            Msg::Fill { key, value, token } => self.fill(ctx, key, value, token),
            Msg::Delete { req, key } => {
                self.lru.remove(key);
                // A delete voids the lease: a fill carrying its token will be refused.
                self.leases.remove(&key);
                ctx.send(from, Msg::DeleteOk { req });
            }
            _ => {}
        }
    }

    fn get(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, req: u64, key: u32) {
        let now = ctx.now_local();
        let me = ctx.id();
        self.requests += 1;
        if !self.owns(me, key) {
            // Routed by a client with another view: no entry, no lease, no fill.
            ctx.count("cache.not_owner", 1.0);
            ctx.send(from, Msg::Miss { req, token: None });
            return;
        }
        let fresh = match self.lru.get(key) {
            Some(e) if e.expires.is_none_or(|t| now < t) => Some(e.value),
            Some(_) => {
                self.lru.remove(key);
                None
            }
            None => None,
        };
        if let Some(value) = fresh {
            self.window_hits += 1;
            ctx.count("cache.hits", 1.0);
            ctx.send(from, Msg::Hit { req, value });
            return;
        }
        self.window_misses += 1;
        ctx.count("cache.misses", 1.0);
        if self.open_misses.insert(key, ()).is_none() {
            ctx.count("cache.miss_episodes", 1.0);
        }
        if self.cfg.bug == Some(CacheBug::LeasesOff) {
            ctx.send(from, Msg::Miss { req, token: None });
            return;
        }
        match self.leases.get(&key) {
            Some(l) if now.saturating_sub(l.issued) < self.cfg.lease_ttl => {
                // Someone is already fetching this key: the herd waits instead of hitting
                // the database.
                ctx.count("cache.lease_waits", 1.0);
                ctx.send(from, Msg::Wait { req });
            }
            _ => {
                self.next_token += 1;
                let token = self.next_token;
                self.leases.insert(key, Lease { token, issued: now });
                ctx.send(
                    from,
                    Msg::Miss {
                        req,
                        token: Some(token),
                    },
                );
            }
        }
    }

    fn fill(&mut self, ctx: &mut Ctx<'_, Msg>, key: u32, value: Option<u64>, token: Option<u64>) {
        let me = ctx.id();
        if !self.owns(me, key) {
            ctx.count("cache.fill_refused", 1.0);
            return;
        }
        let checks_lease = !matches!(
            self.cfg.bug,
            Some(CacheBug::LeasesOff) | Some(CacheBug::FillWithoutLease)
        );
        if checks_lease {
            let valid =
                matches!((self.leases.get(&key), token), (Some(l), Some(t)) if l.token == t);
            if !valid {
                // The lease was voided by a delete (or never given): the value may be stale.
                ctx.count("cache.fill_refused", 1.0);
                return;
            }
            self.leases.remove(&key);
        }
        let expires = self.cfg.ttl.map(|t| ctx.now_local() + t);
        let evicted = self.lru.insert(key, Entry { value, expires });
        self.open_misses.remove(&key);
        ctx.count("cache.fills", 1.0);
        ctx.count("cache.evictions", evicted as f64);
    }
}

/// The database: one versioned value per key, each write synced before it is acknowledged,
/// every reply after `db_delay` (it is the slow part of the system).
pub struct Database {
    db_delay: Nanos,
    values: BTreeMap<u32, u64>,
    /// Every write in the order applied: (key, value). The staleness check reads it.
    pub log: Vec<(u32, u64)>,
    pending: BTreeMap<u64, (NodeId, Msg)>,
    next: u64,
    window_reads: u64,
    report_interval: Nanos,
}

const DB_LOG: &str = "db";

impl Database {
    /// A database replying after `db_delay`.
    pub fn new(db_delay: Nanos, report_interval: Nanos) -> Database {
        Database {
            db_delay,
            values: BTreeMap::new(),
            log: Vec::new(),
            pending: BTreeMap::new(),
            next: 0,
            window_reads: 0,
            report_interval,
        }
    }

    /// Reloads the durable log.
    pub fn start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        for e in ctx.storage().log(DB_LOG) {
            if let (Ok(k), Ok(v)) = (e[..4].try_into(), e[4..12].try_into()) {
                self.log
                    .push((u32::from_le_bytes(k), u64::from_le_bytes(v)));
            }
        }
        for (k, v) in &self.log {
            self.values.insert(*k, *v);
        }
        ctx.set_timer(self.report_interval, super::REPORT);
    }

    /// Queues a request; it is answered after `db_delay`.
    pub fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        if matches!(msg, Msg::DbRead { .. } | Msg::DbWrite { .. }) {
            self.next += 1;
            self.pending.insert(self.next, (from, msg));
            ctx.set_timer(self.db_delay, super::DB_BASE + self.next);
        }
    }

    /// Serves a queued request, or records the reads-per-second series.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag == super::REPORT {
            let per_s = self.window_reads as f64 * 1e9 / self.report_interval as f64;
            ctx.series("db.reads_per_s", per_s);
            self.window_reads = 0;
            ctx.set_timer(self.report_interval, super::REPORT);
            return;
        }
        let Some((from, msg)) = self.pending.remove(&(tag - super::DB_BASE)) else {
            return;
        };
        match msg {
            Msg::DbRead { req, key } => {
                self.window_reads += 1;
                ctx.count("db.reads", 1.0);
                let value = self.values.get(&key).copied();
                ctx.send(from, Msg::DbReadOk { req, value });
            }
            Msg::DbWrite { req, key, value } => {
                ctx.count("db.writes", 1.0);
                self.values.insert(key, value);
                self.log.push((key, value));
                let mut rec = key.to_le_bytes().to_vec();
                rec.extend_from_slice(&value.to_le_bytes());
                ctx.storage().append(DB_LOG, rec);
                ctx.storage().sync();
                ctx.send(from, Msg::DbWriteOk { req });
            }
            _ => {}
        }
    }
}

impl CacheServer {
    /// The server's state for the report's timeline: member or spare, the view it routes by,
    /// its entries against its capacity, and the leases it has out (misses being filled).
    pub fn summary(&self) -> sim_core::summary::StateSummary {
        let leases = match self.leases.len() {
            0 => String::new(),
            1 => ", 1 lease out".into(),
            n => format!(", {n} leases out"),
        };
        sim_core::summary::StateSummary {
            role: Some(if self.member { "cache" } else { "spare cache" }),
            detail: format!(
                "view {}; {} of {} entries{leases}",
                crate::hashing::summary::members(self.view.members()),
                self.lru.len(),
                self.cfg.capacity
            ),
            ..Default::default()
        }
    }
}

impl Database {
    /// The database's state for the report's timeline: keys written, writes applied, and
    /// requests it is still working on (its replies wait `db_delay`).
    pub fn summary(&self) -> sim_core::summary::StateSummary {
        sim_core::summary::StateSummary {
            role: Some("database"),
            detail: format!(
                "{} keys, {} writes applied, {} requests in progress",
                self.values.len(),
                self.log.len(),
                self.pending.len()
            ),
            ..Default::default()
        }
    }
}
