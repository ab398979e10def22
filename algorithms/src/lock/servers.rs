//! The servers of the lock designs: the lease server (one Redis instance) and the protected
//! resource. (The ZooKeeper-style service is in [`super::zk`].)

use sim_core::summary::StateSummary;
use sim_core::time::Nanos;
use sim_core::{Ctx, NodeId};

use super::{send_lock, LockBug, Msg, Params};

const FENCE_KEY: &str = "fence";

/// A lease held on a lease server.
#[derive(Clone, Debug)]
struct Lease {
    token: u64,
    grant: u64,
    /// Only with `wall_clock_expiry`: the local-clock reading at which it expires.
    expiry_local: Nanos,
}

/// One lease server: a single key set with `SET NX PX` and deleted with a token check.
///
/// The key lives in memory only (as in Redis without fsync): a crash loses it. The grant
/// counter is durable so that fencing tokens never repeat.
pub struct KvServer {
    params: Params,
    key: Option<Lease>,
    fence: u64,
}

impl KvServer {
    /// A server with no key.
    pub fn new(params: Params) -> Self {
        KvServer {
            params,
            key: None,
            fence: 0,
        }
    }

    /// The current holder's token, if the key is set (for checks and tests).
    pub fn holder_token(&self) -> Option<u64> {
        self.key.as_ref().map(|l| l.token)
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.fence = ctx.storage().get_json(FENCE_KEY).unwrap_or(0);
    }

    /// The server's state for the report's timeline: whether the key is set, and by which
    /// grant (its fencing token).
    pub fn summary(&self) -> StateSummary {
        StateSummary {
            role: Some("lock server"),
            lock: self
                .key
                .as_ref()
                .map(|l| format!("granted, fencing token {}", l.grant)),
            detail: format!("{} grants so far", self.fence),
            ..StateSummary::default()
        }
    }

    fn expire_by_wall_clock(&mut self, ctx: &Ctx<'_, Msg>) {
        if self.params.has(LockBug::WallClockExpiry) {
            if let Some(l) = &self.key {
                if ctx.now_local() >= l.expiry_local {
                    self.key = None;
                }
            }
        }
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        self.expire_by_wall_clock(ctx);
        match msg {
            Msg::Acquire { attempt, token } => {
                if self.key.is_some() {
                    send_lock(
                        ctx,
                        from,
                        Msg::AcquireReply {
                            attempt,
                            granted: false,
                            fence: 0,
                        },
                    );
                    return;
                }
                self.fence += 1;
                ctx.storage().put_json(FENCE_KEY, &self.fence);
                ctx.storage().sync();
                let ttl = self.params.ttl.0;
                self.key = Some(Lease {
                    token,
                    grant: self.fence,
                    expiry_local: ctx.now_local().saturating_add(ttl),
                });
                if !self.params.has(LockBug::WallClockExpiry) {
                    // A timer runs on elapsed time: a clock step does not move it.
                    ctx.set_timer(ttl, self.fence);
                }
                send_lock(
                    ctx,
                    from,
                    Msg::AcquireReply {
                        attempt,
                        granted: true,
                        fence: self.fence,
                    },
                );
            }
            Msg::Release { token } => {
                let matches = self.key.as_ref().is_some_and(|l| l.token == token);
                if matches || self.params.has(LockBug::ReleaseWithoutToken) {
                    if !matches && self.key.is_some() {
                        ctx.count("lock.foreign_releases", 1.0);
                    }
                    self.key = None;
                }
            }
            _ => {}
        }
    }

    pub(crate) fn on_timer(&mut self, _ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if self.key.as_ref().is_some_and(|l| l.grant == tag) {
            self.key = None;
        }
    }
}

/// One operation the resource accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Accepted {
    /// The client node.
    pub client: NodeId,
    /// The client's attempt (with `client`, identifies one lock tenure).
    pub attempt: u64,
    /// The fencing token presented.
    pub token: u64,
    /// The lock's id, for messages.
    pub lock_id: u64,
    /// A write (else a read).
    pub write: bool,
    /// The value written or read.
    pub value: u64,
    /// The resource's local clock when it accepted it.
    pub local_ns: Nanos,
}

const RESOURCE_KEY: &str = "counter";

/// The protected resource: a counter, optionally checking fencing tokens.
pub struct Resource {
    fencing: bool,
    counter: u64,
    max_token: u64,
    /// Accepted operations since this incarnation started (volatile; the checker reads it).
    pub log: Vec<Accepted>,
}

impl Resource {
    /// A resource holding 0.
    pub fn new(fencing: bool) -> Self {
        Resource {
            fencing,
            counter: 0,
            max_token: 0,
            log: Vec::new(),
        }
    }

    /// The counter.
    pub fn counter(&self) -> u64 {
        self.counter
    }

    /// The resource's state for the report's timeline: the counter and the newest token.
    pub fn summary(&self) -> StateSummary {
        let fence = if self.fencing {
            "refuses older tokens"
        } else {
            "no fencing"
        };
        StateSummary {
            role: Some("resource"),
            detail: format!(
                "counter {}, newest token {} ({fence})",
                self.counter, self.max_token
            ),
            ..StateSummary::default()
        }
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some((c, m)) = ctx.storage().get_json::<(u64, u64)>(RESOURCE_KEY) {
            self.counter = c;
            self.max_token = m;
        }
    }

    /// Admits a request with `token`: false if fencing refuses it.
    fn admit(&mut self, token: u64) -> bool {
        if self.fencing && token < self.max_token {
            return false;
        }
        self.max_token = self.max_token.max(token);
        true
    }

    /// Records an admitted read or write: the counter and the newest token are synced before
    /// the reply, and the operation joins the log the checker judges.
    fn accept(&mut self, ctx: &mut Ctx<'_, Msg>, op: Accepted) {
        ctx.storage()
            .put_json(RESOURCE_KEY, &(self.counter, self.max_token));
        ctx.storage().sync();
        self.log.push(op);
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Read {
                attempt,
                token,
                lock_id,
            } => {
                let value = if self.admit(token) {
                    let local_ns = ctx.now_local();
                    let op = Accepted {
                        client: from,
                        attempt,
                        token,
                        lock_id,
                        write: false,
                        value: self.counter,
                        local_ns,
                    };
                    self.accept(ctx, op);
                    Some(self.counter)
                } else {
                    ctx.count("resource.rejected", 1.0);
                    None
                };
                ctx.send(from, Msg::ReadReply { attempt, value });
            }
            Msg::Write {
                attempt,
                token,
                lock_id,
                value,
            } => {
                let accepted = self.admit(token);
                if accepted {
                    self.counter = value;
                    let local_ns = ctx.now_local();
                    let op = Accepted {
                        client: from,
                        attempt,
                        token,
                        lock_id,
                        write: true,
                        value,
                        local_ns,
                    };
                    self.accept(ctx, op);
                } else {
                    ctx.count("resource.rejected", 1.0);
                }
                ctx.send(from, Msg::WriteReply { attempt, accepted });
            }
            _ => {}
        }
    }
}
