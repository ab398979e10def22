//! The servers of the lock designs: the lease server (one Redis instance), the ZooKeeper-style
//! lock service, and the protected resource.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
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

/// A ZooKeeper session.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Session {
    client: NodeId,
    /// Local-clock reading after which the session expires (volatile: reset on restart).
    deadline_local: Nanos,
}

/// The lock service's state machine: what Raft would replicate.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct ZkState {
    next_session: u64,
    next_seq: u64,
    sessions: BTreeMap<u64, Session>,
    /// The lock node's ephemeral sequential children: sequence number -> owning session.
    children: BTreeMap<u64, u64>,
    /// One-shot watches on an entry's deletion: entry -> watching clients.
    exists_watches: BTreeMap<u64, BTreeSet<NodeId>>,
    /// One-shot watches on the lock node's children (the herd recipe).
    child_watches: BTreeSet<NodeId>,
}

const ZK_KEY: &str = "zk";
const TICK: u64 = 1;

/// The ZooKeeper-style lock service, on one server (not replicated; see the module docs).
///
/// Every change to sessions, entries or watches is written and synced before it is answered,
/// so a crash and restart loses nothing; sessions get a fresh timeout after a restart, as
/// ZooKeeper gives them after a leader change.
pub struct ZkServer {
    params: Params,
    state: ZkState,
}

impl ZkServer {
    /// A service with no sessions.
    pub fn new(params: Params) -> Self {
        ZkServer {
            params,
            state: ZkState {
                next_session: 1,
                next_seq: 1,
                ..ZkState::default()
            },
        }
    }

    /// The lowest entry's sequence number: the current holder's token.
    pub fn holder_seq(&self) -> Option<u64> {
        self.state.children.keys().next().copied()
    }

    fn persist(&self, ctx: &mut Ctx<'_, Msg>) {
        ctx.storage().put_json(ZK_KEY, &self.state);
        ctx.storage().sync();
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(saved) = ctx.storage().get_json::<ZkState>(ZK_KEY) {
            self.state = saved;
            let deadline = ctx.now_local() + self.params.session_timeout.0;
            for s in self.state.sessions.values_mut() {
                s.deadline_local = deadline;
            }
        }
        ctx.set_timer((self.params.session_timeout.0 / 4).max(1), TICK);
    }

    fn fire(&mut self, ctx: &mut Ctx<'_, Msg>, watchers: BTreeSet<NodeId>) {
        for c in watchers {
            ctx.count("lock.watch_messages", 1.0);
            send_lock(ctx, c, Msg::WatchFired);
        }
    }

    fn children_changed(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let w = std::mem::take(&mut self.state.child_watches);
        self.fire(ctx, w);
    }

    fn delete(&mut self, ctx: &mut Ctx<'_, Msg>, seq: u64) {
        if self.state.children.remove(&seq).is_some() {
            let w = self.state.exists_watches.remove(&seq).unwrap_or_default();
            self.fire(ctx, w);
            self.children_changed(ctx);
        }
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let timeout = self.params.session_timeout.0;
        match msg {
            Msg::Connect => {
                let session = self.state.next_session;
                self.state.next_session += 1;
                let deadline_local = ctx.now_local() + timeout;
                self.state.sessions.insert(
                    session,
                    Session {
                        client: from,
                        deadline_local,
                    },
                );
                self.persist(ctx);
                send_lock(ctx, from, Msg::Connected { session });
            }
            Msg::Ping { session } => {
                let now = ctx.now_local();
                let alive = match self.state.sessions.get_mut(&session) {
                    Some(s) => {
                        s.deadline_local = now + timeout;
                        true
                    }
                    None => false,
                };
                ctx.count("lock.heartbeats", 1.0);
                ctx.send(from, Msg::Pong { session, alive });
            }
            Msg::Create { attempt, session } => {
                let seq = if self.state.sessions.contains_key(&session) {
                    let seq = self.state.next_seq;
                    self.state.next_seq += 1;
                    self.state.children.insert(seq, session);
                    self.children_changed(ctx);
                    self.persist(ctx);
                    Some(seq)
                } else {
                    None
                };
                send_lock(ctx, from, Msg::Created { attempt, seq });
            }
            Msg::GetChildren { attempt, watch } => {
                if watch {
                    self.state.child_watches.insert(from);
                    self.persist(ctx);
                }
                let seqs = self.state.children.keys().copied().collect();
                send_lock(ctx, from, Msg::Children { attempt, seqs });
            }
            Msg::Exists { attempt, seq } => {
                let exists = self.state.children.contains_key(&seq);
                if exists {
                    self.state
                        .exists_watches
                        .entry(seq)
                        .or_default()
                        .insert(from);
                    self.persist(ctx);
                }
                send_lock(ctx, from, Msg::ExistsReply { attempt, exists });
            }
            Msg::Delete { seq } => {
                let owner = self
                    .state
                    .children
                    .get(&seq)
                    .and_then(|s| self.state.sessions.get(s))
                    .map(|s| s.client);
                if owner == Some(from) {
                    self.delete(ctx, seq);
                    self.persist(ctx);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag != TICK {
            return;
        }
        let now = ctx.now_local();
        let expired: Vec<u64> = self
            .state
            .sessions
            .iter()
            .filter(|(_, s)| s.deadline_local <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.state.sessions.remove(id);
            ctx.count("lock.sessions_expired", 1.0);
            let owned: Vec<u64> = self
                .state
                .children
                .iter()
                .filter(|(_, s)| *s == id)
                .map(|(q, _)| *q)
                .collect();
            for q in owned {
                self.delete(ctx, q);
            }
        }
        if !expired.is_empty() {
            self.persist(ctx);
        }
        ctx.set_timer((self.params.session_timeout.0 / 4).max(1), TICK);
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

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Read {
                attempt,
                token,
                lock_id,
            } => {
                let value = if self.admit(token) {
                    ctx.storage()
                        .put_json(RESOURCE_KEY, &(self.counter, self.max_token));
                    ctx.storage().sync();
                    self.log.push(Accepted {
                        client: from,
                        attempt,
                        token,
                        lock_id,
                        write: false,
                        value: self.counter,
                        local_ns: ctx.now_local(),
                    });
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
                    ctx.storage()
                        .put_json(RESOURCE_KEY, &(self.counter, self.max_token));
                    ctx.storage().sync();
                    self.log.push(Accepted {
                        client: from,
                        attempt,
                        token,
                        lock_id,
                        write: true,
                        value,
                        local_ns: ctx.now_local(),
                    });
                } else {
                    ctx.count("resource.rejected", 1.0);
                }
                ctx.send(from, Msg::WriteReply { attempt, accepted });
            }
            _ => {}
        }
    }
}
