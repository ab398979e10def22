//! Cache-aside clients: read through the cache (on a miss read the database and fill the
//! cache, with the lease token when there is one), write the database then invalidate the key.

use std::rc::Rc;

use sim_core::{Ctx, EventType, NodeId, Op};

use super::msg::Msg;
use super::{CacheBug, Config};
use crate::client::RequestTracker;
use crate::hashing::membership::View;
use crate::hashing::placement::{key_index, Placement};

/// Where the current operation stands.
#[derive(Clone, Copy, Debug)]
enum Stage {
    Idle,
    /// Asked the cache for `key`.
    CacheGet {
        key: u32,
    },
    /// Missed; reading the database; `fill` says whether (and with what token) to fill.
    DbGet {
        key: u32,
        owner: Option<NodeId>,
        fill: Option<Option<u64>>,
    },
    /// Writing the database (correct order: invalidate next).
    DbPut {
        key: u32,
    },
    /// Invalidating; with `then_write`, the database write comes after (the bug's order).
    Invalidate {
        key: u32,
        then_write: Option<u64>,
    },
}

/// A cache-aside client.
pub struct Client {
    cfg: Rc<Config>,
    view: View,
    placement: Option<Rc<Placement>>,
    tracker: RequestTracker,
    stage: Stage,
}

impl Client {
    /// A client before its start.
    pub fn new(cfg: Rc<Config>) -> Client {
        let view = cfg.shared.initial_view(0);
        Client {
            cfg,
            view,
            placement: None,
            tracker: RequestTracker::default(),
            stage: Stage::Idle,
        }
    }

    /// The cache servers this client routes to.
    pub fn view_members(&self) -> &std::collections::BTreeSet<usize> {
        self.view.members()
    }

    fn owner(&mut self, key: u32) -> Option<NodeId> {
        if self.placement.is_none() {
            self.placement = self.cfg.shared.placement(&self.view);
        }
        let h = self.cfg.shared.keys.hashes[key as usize];
        self.placement.as_ref().map(|p| p.owner(key as usize, h).0)
    }

    /// Starts an operation.
    pub fn invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        let key = op.key.as_deref().and_then(key_index);
        let Some(key) = key.filter(|k| *k < self.cfg.shared.keys.len()) else {
            ctx.complete(EventType::Fail, serde_json::json!("no such key"));
            return;
        };
        let key = key as u32;
        let req = self.tracker.begin(ctx, self.cfg.shared.timeout);
        match op.f.as_str() {
            "get" => self.cache_get(ctx, req, key),
            _ => {
                let value = op.value.as_u64().unwrap_or(0);
                if self.cfg.bug == Some(CacheBug::InvalidateBeforeWrite) {
                    self.invalidate(ctx, req, key, Some(value));
                } else {
                    self.stage = Stage::DbPut { key };
                    ctx.send(self.cfg.db, Msg::DbWrite { req, key, value });
                }
            }
        }
    }

    fn cache_get(&mut self, ctx: &mut Ctx<'_, Msg>, req: u64, key: u32) {
        match self.owner(key) {
            Some(o) => {
                self.stage = Stage::CacheGet { key };
                ctx.send(o, Msg::Get { req, key });
            }
            None => self.db_get(ctx, req, key, None, None),
        }
    }

    fn db_get(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        req: u64,
        key: u32,
        owner: Option<NodeId>,
        fill: Option<Option<u64>>,
    ) {
        self.stage = Stage::DbGet { key, owner, fill };
        ctx.send(self.cfg.db, Msg::DbRead { req, key });
    }

    fn invalidate(&mut self, ctx: &mut Ctx<'_, Msg>, req: u64, key: u32, then_write: Option<u64>) {
        self.stage = Stage::Invalidate { key, then_write };
        match self.owner(key) {
            Some(o) => {
                ctx.send(o, Msg::Delete { req, key });
                // Resent until acknowledged (to the owner of the moment), or the op times out.
                ctx.set_timer(self.cfg.delete_retry, super::RETRY_BASE + req);
            }
            None => self.invalidated(ctx, req),
        }
    }

    fn invalidated(&mut self, ctx: &mut Ctx<'_, Msg>, req: u64) {
        match self.stage {
            Stage::Invalidate {
                key,
                then_write: Some(value),
            } => {
                self.stage = Stage::DbPut { key };
                ctx.send(self.cfg.db, Msg::DbWrite { req, key, value });
            }
            _ => self.finish(ctx, req, serde_json::Value::Null),
        }
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, Msg>, req: u64, value: serde_json::Value) {
        self.stage = Stage::Idle;
        self.tracker.finish(ctx, req, EventType::Ok, value);
    }

    /// Handles a reply or a heartbeat.
    pub fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let now = ctx.now_local();
        match msg {
            Msg::Alive => {
                if self.view.heard(from, now) {
                    self.placement = None;
                }
                return;
            }
            Msg::Leaving => {
                if self.view.remove(from) {
                    self.placement = None;
                }
                return;
            }
            _ => {}
        }
        let Some(req) = self.tracker.current() else {
            return;
        };
        match (msg, self.stage) {
            (Msg::Hit { req: r, value }, Stage::CacheGet { .. }) if r == req => {
                self.finish(ctx, req, serde_json::json!(value));
            }
            (Msg::Miss { req: r, token }, Stage::CacheGet { key }) if r == req => {
                let fill =
                    (token.is_some() || self.cfg.bug == Some(CacheBug::LeasesOff)).then_some(token);
                self.db_get(ctx, req, key, Some(from), fill);
            }
            (Msg::Wait { req: r }, Stage::CacheGet { .. }) if r == req => {
                ctx.set_timer(self.cfg.lease_wait, super::RETRY_BASE + req);
            }
            (Msg::DbReadOk { req: r, value }, Stage::DbGet { key, owner, fill }) if r == req => {
                if let (Some(o), Some(token)) = (owner, fill) {
                    ctx.send(o, Msg::Fill { key, value, token });
                }
                self.finish(ctx, req, serde_json::json!(value));
            }
            (Msg::DbWriteOk { req: r }, Stage::DbPut { key, .. }) if r == req => {
                if self.cfg.bug == Some(CacheBug::InvalidateBeforeWrite) {
                    self.finish(ctx, req, serde_json::Value::Null);
                } else {
                    self.invalidate(ctx, req, key, None);
                }
            }
            (Msg::DeleteOk { req: r }, Stage::Invalidate { .. }) if r == req => {
                self.invalidated(ctx, req);
            }
            _ => {}
        }
    }

    /// Handles a timer: heartbeat expiry, a lease wait or delete resend, or the op timeout.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag == super::HEARTBEAT {
            if self.view.expire(ctx.now_local(), None) {
                self.placement = None;
            }
            ctx.set_timer(self.cfg.shared.heartbeat, super::HEARTBEAT);
            return;
        }
        if tag > super::RETRY_BASE {
            let req = tag - super::RETRY_BASE;
            if self.tracker.current() != Some(req) {
                return;
            }
            match self.stage {
                Stage::CacheGet { key } => self.cache_get(ctx, req, key),
                Stage::Invalidate { key, then_write } => {
                    ctx.count("cache.delete_resends", 1.0);
                    self.invalidate(ctx, req, key, then_write);
                }
                _ => {}
            }
            return;
        }
        if self.tracker.on_timer(ctx, tag) {
            self.stage = Stage::Idle;
        }
    }
}

impl Client {
    /// The client's state for the report's timeline: where its operation stands in the
    /// cache-aside dance (the order of the database write and the invalidation is the lesson).
    pub fn summary(&self) -> sim_core::summary::StateSummary {
        let detail = match self.stage {
            Stage::Idle => "idle".to_string(),
            Stage::CacheGet { key } => format!("k{key}: asked the cache"),
            Stage::DbGet { key, fill, .. } => match fill {
                Some(Some(token)) => {
                    format!("k{key}: missed, reading the database (lease {token})")
                }
                Some(None) => format!("k{key}: missed, reading the database to fill"),
                None => format!("k{key}: reading the database, no fill"),
            },
            Stage::DbPut { key } => format!("k{key}: writing the database, then invalidating"),
            Stage::Invalidate {
                key,
                then_write: Some(_),
            } => {
                format!("k{key}: invalidating, then writing the database")
            }
            Stage::Invalidate {
                key,
                then_write: None,
            } => format!("k{key}: invalidating"),
        };
        sim_core::summary::StateSummary {
            role: Some("client"),
            detail: format!(
                "{detail}; view {}",
                crate::hashing::summary::members(self.view.members())
            ),
            ..Default::default()
        }
    }
}
