//! The lock client: acquire (by the design's protocol), read the counter, work, write it back,
//! release. One `incr` operation of the workload is one pass.
//!
//! The client checks what it can where the designs say to: Redlock's validity once, right
//! after the majority answered. It does not re-check before writing: a stall or a slow
//! network after the last check is always possible, and that gap is what fencing closes.

use std::collections::{BTreeMap, VecDeque};

use rand::Rng;
use serde_json::json;
use sim_core::summary::StateSummary;
use sim_core::time::{Nanos, MS};
use sim_core::{Ctx, EventType, NodeId, Op, TimerId};

use super::zk::{ZkOp, ZkReply};
use super::{send_lock, Design, LockBug, Msg, Params};
use crate::raft::msg::Msg as RaftMsg;

/// Where the client is in its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No operation.
    Idle,
    /// Trying to acquire.
    Acquiring,
    /// Holds the lock (as it believes) and reads the counter.
    Reading,
    /// Holds the lock and works.
    Working,
    /// Holds the lock and writes the counter.
    Writing,
}

const T_DECIDE: u64 = 1;
const T_RETRY: u64 = 2;
const T_WORK: u64 = 3;
const T_REQUEST: u64 = 4;
const T_DEADLINE: u64 = 5;
const T_HEARTBEAT: u64 = 6;
const T_SERVICE: u64 = 7;

/// A request to the ZooKeeper service, waiting for its turn or for its answer. The client
/// sends one at a time (a session's requests are FIFO, as in ZooKeeper), which also lets the
/// service deduplicate retries by the last request id alone.
#[derive(Clone, Debug)]
struct Queued {
    op: ZkOp,
    /// The operation attempt it serves.
    attempt: u64,
    /// The session it was made under.
    session: Option<u64>,
}

fn tag(kind: u64, attempt: u64) -> u64 {
    (kind << 48) | (attempt & ((1 << 48) - 1))
}

/// A lock client.
pub struct Client {
    params: Params,
    resource: NodeId,
    phase: Phase,
    attempt: u64,
    // Lease and Redlock.
    token: u64,
    acquire_start_local: Nanos,
    replies: usize,
    grants: BTreeMap<NodeId, u64>,
    decided: bool,
    // The operation.
    invoked_local: Nanos,
    deadline_local: Nanos,
    held_token: u64,
    lock_id: u64,
    value: u64,
    request_timer: Option<TimerId>,
    /// Local-clock end of the lock's validity as the client computed it when acquiring.
    valid_until_local: Nanos,
    // ZooKeeper.
    session: Option<u64>,
    connecting: bool,
    last_pong_local: Nanos,
    my_seq: Option<u64>,
    id: NodeId,
    /// The replica believed to lead.
    leader: NodeId,
    /// The replica that answered last (a change means a new leader: re-check the watch).
    last_server: Option<NodeId>,
    next_req: u64,
    queue: VecDeque<Queued>,
    /// The request in flight: (request id, where it was last sent, the request).
    inflight: Option<(u64, NodeId, Queued)>,
    service_timer: Option<TimerId>,
}

impl Client {
    /// The client's state for the report's timeline: where it is in its operation, and the
    /// token it holds while it believes it holds the lock.
    pub fn summary(&self) -> StateSummary {
        let (role, holds) = match self.phase {
            Phase::Idle => ("idle", false),
            Phase::Acquiring => ("acquiring", false),
            Phase::Reading => ("holder (reading)", true),
            Phase::Working => ("holder (working)", true),
            Phase::Writing => ("holder (writing)", true),
        };
        StateSummary {
            role: Some(role),
            lock: holds.then(|| format!("token {}", self.held_token)),
            detail: match self.session {
                Some(s) => format!("session {s}"),
                None => String::new(),
            },
            ..StateSummary::default()
        }
    }

    /// Client node `id` of the resource at node `resource` (lock servers are the nodes before
    /// it).
    pub fn new(params: Params, id: NodeId, resource: NodeId) -> Self {
        Client {
            params,
            resource,
            phase: Phase::Idle,
            attempt: 0,
            token: 0,
            acquire_start_local: 0,
            replies: 0,
            grants: BTreeMap::new(),
            decided: false,
            invoked_local: 0,
            deadline_local: 0,
            held_token: 0,
            lock_id: 0,
            value: 0,
            request_timer: None,
            valid_until_local: 0,
            session: None,
            connecting: false,
            last_pong_local: 0,
            my_seq: None,
            id,
            leader: 0,
            last_server: None,
            next_req: 0,
            queue: VecDeque::new(),
            inflight: None,
            service_timer: None,
        }
    }

    /// Where the client is.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// While the client believes it holds the lock: (attempt, lock id, fencing token).
    pub fn holding(&self) -> Option<(u64, u64, u64)> {
        matches!(self.phase, Phase::Reading | Phase::Working | Phase::Writing).then_some((
            self.attempt,
            self.lock_id,
            self.held_token,
        ))
    }

    fn zk(&self) -> bool {
        self.params.design == Design::Zookeeper
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.zk() {
            self.connect(ctx);
            ctx.set_timer(self.params.heartbeat_interval.0, tag(T_HEARTBEAT, 0));
        }
    }

    pub(crate) fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, _op: Op) {
        let now = ctx.now_local();
        self.invoked_local = now;
        self.deadline_local = now + self.params.acquire_timeout.0;
        self.phase = Phase::Acquiring;
        if self.zk() {
            self.attempt += 1;
            self.my_seq = None;
            ctx.set_timer(self.params.acquire_timeout.0, tag(T_DEADLINE, self.attempt));
            if let Some(session) = self.session {
                self.request(ctx, ZkOp::Create { session });
            }
        } else {
            self.try_acquire(ctx);
        }
    }

    // ---- lease and Redlock --------------------------------------------------------------

    fn try_acquire(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.attempt += 1;
        self.token = ctx.rng().random_range(1..u64::MAX);
        self.acquire_start_local = ctx.now_local();
        self.replies = 0;
        self.grants.clear();
        self.decided = false;
        for s in 0..self.resource {
            send_lock(
                ctx,
                s,
                Msg::Acquire {
                    attempt: self.attempt,
                    token: self.token,
                },
            );
        }
        ctx.set_timer(self.params.server_timeout.0, tag(T_DECIDE, self.attempt));
    }

    fn decide(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.decided = true;
        let n = self.resource;
        let ok = if self.params.design == Design::Lease {
            !self.grants.is_empty()
        } else {
            let ttl = self.params.ttl.0 as i128;
            let drift = (ttl as f64 * self.params.drift_factor) as i128 + 2 * MS as i128;
            let elapsed = if self.params.has(LockBug::NoElapsedCheck) {
                0
            } else {
                (ctx.now_local() - self.acquire_start_local) as i128
            };
            let validity = ttl - elapsed - drift;
            if self.grants.len() > n / 2 && validity <= 0 {
                ctx.count("lock.majority_but_expired", 1.0);
            }
            self.grants.len() > n / 2 && validity > 0
        };
        if ok {
            let ttl = self.params.ttl.0;
            let drift = (ttl as f64 * self.params.drift_factor) as Nanos + 2 * MS;
            // Measured from when the client asked; with `no_elapsed_check`, from now.
            let from = if self.params.has(LockBug::NoElapsedCheck) {
                ctx.now_local()
            } else {
                self.acquire_start_local
            };
            self.valid_until_local = from + ttl.saturating_sub(drift);
            if self.params.design == Design::Lease {
                let fence = self.grants.values().next().copied().unwrap_or(0);
                self.held_token = fence;
                self.lock_id = fence;
            } else {
                self.held_token = 0;
                self.lock_id = self.token;
            }
            self.begin_hold(ctx);
            return;
        }
        ctx.count("lock.failed_attempts", 1.0);
        if !self.grants.is_empty() || self.params.design == Design::Redlock {
            self.release(ctx);
        }
        if ctx.now_local() >= self.deadline_local {
            self.finish(ctx, EventType::Fail, json!("lock not acquired"));
        } else {
            let d = self.params.retry_delay.0;
            let wait = ctx.rng().random_range(d / 2..=d + d / 2);
            ctx.set_timer(wait, tag(T_RETRY, self.attempt));
        }
    }

    // ---- ZooKeeper ----------------------------------------------------------------------

    fn connect(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.session = None;
        if self.connecting {
            return;
        }
        self.connecting = true;
        self.request(ctx, ZkOp::Connect);
    }

    /// Queues a request to the service and sends it when its turn comes.
    fn request(&mut self, ctx: &mut Ctx<'_, Msg>, op: ZkOp) {
        self.queue.push_back(Queued {
            op,
            attempt: self.attempt,
            session: self.session,
        });
        self.pump(ctx);
    }

    fn pump(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.inflight.is_some() {
            return;
        }
        let Some(q) = self.queue.pop_front() else {
            return;
        };
        self.next_req += 1;
        self.inflight = Some((self.next_req, self.leader, q));
        self.send_inflight(ctx);
    }

    /// Sends the request in flight to the believed leader, under its request id (which is
    /// also its sequence number for deduplication: a retry keeps it).
    fn send_inflight(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some((req, to, q)) = &mut self.inflight else {
            return;
        };
        *to = self.leader;
        let msg = Msg::Raft(RaftMsg::Request {
            req: *req,
            client: self.id as u32,
            seq: *req,
            op: q.op.clone(),
        });
        let req = *req;
        send_lock(ctx, self.leader, msg);
        if let Some(t) = self.service_timer.take() {
            ctx.cancel_timer(t);
        }
        let t = ctx.set_timer(self.params.service_retry.0, tag(T_SERVICE, req));
        self.service_timer = Some(t);
    }

    fn replicas(&self) -> NodeId {
        self.resource
    }

    /// A replica answered: a different one than before means the leader changed, and a
    /// watch left with the old one may never fire, so a waiter looks at the children again.
    fn heard_from(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId) {
        let changed = self.last_server.is_some_and(|s| s != from);
        self.last_server = Some(from);
        if changed && self.phase == Phase::Acquiring && self.my_seq.is_some() {
            ctx.count("lock.relists_after_leader_change", 1.0);
            self.list(ctx);
        }
    }

    fn on_reply(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, req: u64, result: ZkReply) {
        let Some((want, _, _)) = &self.inflight else {
            return;
        };
        if *want != req {
            return;
        }
        ctx.count("lock.messages", 1.0);
        if let ZkReply::NotLeader { hint } = result {
            match hint {
                Some(h) if h != from && h < self.replicas() => {
                    self.leader = h;
                    self.send_inflight(ctx);
                }
                // No leader known (an election is on): try the next replica when the retry
                // timer fires.
                _ => self.leader = (from + 1) % self.replicas(),
            }
            return;
        }
        let (_, _, q) = self.inflight.take().expect("checked above");
        if let Some(t) = self.service_timer.take() {
            ctx.cancel_timer(t);
        }
        self.leader = from;
        self.dispatch(ctx, q, result);
        self.heard_from(ctx, from);
        self.pump(ctx);
    }

    fn dispatch(&mut self, ctx: &mut Ctx<'_, Msg>, q: Queued, result: ZkReply) {
        match result {
            ZkReply::Connected { session } => {
                if !self.connecting {
                    return;
                }
                self.connecting = false;
                self.session = Some(session);
                self.last_pong_local = ctx.now_local();
                if self.phase == Phase::Acquiring && self.my_seq.is_none() {
                    self.request(ctx, ZkOp::Create { session });
                }
            }
            ZkReply::Created { seq } => {
                if q.attempt != self.attempt
                    || self.phase != Phase::Acquiring
                    || q.session != self.session
                    || self.my_seq.is_some()
                {
                    // A late entry from an abandoned attempt or session: remove it, or it
                    // blocks others until the session ends.
                    if let Some(seq) = seq {
                        self.request(ctx, ZkOp::Delete { seq });
                    }
                    return;
                }
                match seq {
                    Some(seq) => {
                        self.my_seq = Some(seq);
                        self.list(ctx);
                    }
                    None => self.session_lost(ctx),
                }
            }
            ZkReply::Children { seqs } => {
                if q.attempt != self.attempt || self.phase != Phase::Acquiring {
                    return;
                }
                let Some(me) = self.my_seq else { return };
                if !seqs.contains(&me) {
                    // Our entry is gone: the service expired our session.
                    self.my_seq = None;
                    self.session_lost(ctx);
                    return;
                }
                if seqs[0] == me {
                    self.held_token = me;
                    self.lock_id = me;
                    self.begin_hold(ctx);
                } else if !self.params.has(LockBug::Herd) {
                    let pred = seqs.iter().copied().filter(|s| *s < me).max().unwrap_or(0);
                    self.request(ctx, ZkOp::Exists { seq: pred });
                }
            }
            ZkReply::Exists { exists } => {
                if q.attempt == self.attempt && self.phase == Phase::Acquiring && !exists {
                    self.list(ctx);
                }
            }
            ZkReply::Done | ZkReply::NotLeader { .. } => {}
        }
    }

    /// The session is gone: whatever the client held or waited for under it is lost.
    fn session_lost(&mut self, ctx: &mut Ctx<'_, Msg>) {
        ctx.count("lock.sessions_lost", 1.0);
        // Requests made under the old session are moot; deletes of old entries still help.
        self.queue.retain(|q| matches!(q.op, ZkOp::Delete { .. }));
        if let Some(seq) = self.my_seq.take() {
            self.request(ctx, ZkOp::Delete { seq });
        }
        if self.holding().is_some() {
            // The critical section is application code between its check of the lock and its
            // write: the session's end reaches it only when it next touches the resource, as a
            // process resuming from a stall finishes the work it was doing before it handles
            // anything else (Kleppmann's first timeline). So the holder carries on and writes
            // with its old sequence number; only a fence stops that write.
            ctx.count("lock.lost_while_holding", 1.0);
        }
        self.connect(ctx);
    }

    fn list(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let watch = self.params.has(LockBug::Herd);
        self.request(ctx, ZkOp::GetChildren { watch });
    }

    // ---- the critical section -----------------------------------------------------------

    /// With `validity_recheck`: whether the lease has run out by the local clock (then the
    /// client releases and gives up).
    fn expired(&mut self, ctx: &mut Ctx<'_, Msg>) -> bool {
        if !self.params.validity_recheck || self.zk() {
            return false;
        }
        if ctx.now_local() >= self.valid_until_local {
            ctx.count("lock.expired_before_use", 1.0);
            self.release(ctx);
            self.finish(ctx, EventType::Fail, json!("lease ran out before use"));
            return true;
        }
        false
    }

    fn begin_hold(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.phase = Phase::Reading;
        // Drawn by the report as lock holders over time, overlaps shaded.
        ctx.series("excl.lock", 1.0);
        ctx.count("lock.acquisitions", 1.0);
        let waited = ctx.now_local().saturating_sub(self.invoked_local);
        ctx.observe("lock.wait_ms", waited as f64 / MS as f64);
        if self.expired(ctx) {
            return;
        }
        ctx.send(
            self.resource,
            Msg::Read {
                attempt: self.attempt,
                token: self.held_token,
                lock_id: self.lock_id,
            },
        );
        self.start_request_timer(ctx);
    }

    /// One timeout at a time guards the outstanding read or write.
    fn start_request_timer(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(t) = self.request_timer.take() {
            ctx.cancel_timer(t);
        }
        let t = ctx.set_timer(self.params.request_timeout.0, tag(T_REQUEST, self.attempt));
        self.request_timer = Some(t);
    }

    fn release(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if self.zk() {
            if let Some(seq) = self.my_seq.take() {
                self.request(ctx, ZkOp::Delete { seq });
            }
        } else {
            for s in 0..self.resource {
                send_lock(ctx, s, Msg::Release { token: self.token });
            }
        }
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, Msg>, outcome: EventType, value: serde_json::Value) {
        if self.holding().is_some() {
            ctx.series("excl.lock", 0.0);
        }
        self.phase = Phase::Idle;
        if let Some(t) = self.request_timer.take() {
            ctx.cancel_timer(t);
        }
        ctx.complete(outcome, value);
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::AcquireReply {
                attempt,
                granted,
                fence,
            } => {
                if attempt != self.attempt || self.phase != Phase::Acquiring || self.decided {
                    return;
                }
                self.replies += 1;
                if granted {
                    self.grants.insert(from, fence);
                }
                if self.replies == self.resource {
                    self.decide(ctx);
                }
            }
            Msg::Raft(RaftMsg::Reply { req, result }) => self.on_reply(ctx, from, req, result),
            Msg::Pong { session, alive } => {
                if self.session != Some(session) {
                    return;
                }
                self.leader = from;
                if alive {
                    self.last_pong_local = ctx.now_local();
                    self.heard_from(ctx, from);
                } else {
                    self.session_lost(ctx);
                }
            }
            Msg::NotLeader { hint } if from == self.leader => {
                self.leader = match hint {
                    Some(h) if h != from && h < self.replicas() => h,
                    _ => (from + 1) % self.replicas(),
                };
            }
            Msg::WatchFired if self.phase == Phase::Acquiring && self.my_seq.is_some() => {
                ctx.count("lock.watch_messages", 1.0);
                self.list(ctx);
            }
            Msg::ReadReply { attempt, value } => {
                if attempt != self.attempt || self.phase != Phase::Reading {
                    return;
                }
                if let Some(t) = self.request_timer.take() {
                    ctx.cancel_timer(t);
                }
                match value {
                    Some(v) => {
                        self.value = v;
                        self.phase = Phase::Working;
                        ctx.set_timer(self.params.work.0, tag(T_WORK, self.attempt));
                    }
                    None => {
                        self.release(ctx);
                        self.finish(ctx, EventType::Fail, json!("stale token refused"));
                    }
                }
            }
            Msg::WriteReply { attempt, accepted } => {
                if attempt != self.attempt || self.phase != Phase::Writing {
                    return;
                }
                self.release(ctx);
                if accepted {
                    let v = json!({"token": self.held_token, "lock": self.lock_id, "wrote": self.value + 1});
                    self.finish(ctx, EventType::Ok, v);
                } else {
                    self.finish(ctx, EventType::Fail, json!("stale token refused"));
                }
            }
            _ => {}
        }
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, t: u64) {
        let kind = t >> 48;
        let attempt = t & ((1 << 48) - 1);
        if kind == T_HEARTBEAT {
            if let Some(session) = self.session {
                let silent = ctx.now_local().saturating_sub(self.last_pong_local);
                if silent > self.params.session_timeout.0 {
                    self.session_lost(ctx);
                } else {
                    ctx.count("lock.heartbeats", 1.0);
                    ctx.send(self.leader, Msg::Ping { session });
                }
            }
            ctx.set_timer(self.params.heartbeat_interval.0, tag(T_HEARTBEAT, 0));
            return;
        }
        if kind == T_SERVICE {
            // The request in flight went unanswered: resend it, to the next replica unless a
            // redirect already named another.
            if let Some((req, to, _)) = &self.inflight {
                if *req & ((1 << 48) - 1) == attempt {
                    self.service_timer = None;
                    if *to == self.leader {
                        self.leader = (self.leader + 1) % self.replicas();
                    }
                    ctx.count("lock.service_retries", 1.0);
                    self.send_inflight(ctx);
                }
            }
            return;
        }
        if attempt != self.attempt & ((1 << 48) - 1) {
            return;
        }
        match (kind, self.phase) {
            (T_DECIDE, Phase::Acquiring) if !self.decided => self.decide(ctx),
            (T_RETRY, Phase::Acquiring) => self.try_acquire(ctx),
            (T_DEADLINE, Phase::Acquiring) => {
                self.release(ctx);
                self.finish(ctx, EventType::Fail, json!("lock not acquired"));
            }
            (T_WORK, Phase::Working) => {
                if self.expired(ctx) {
                    return;
                }
                self.phase = Phase::Writing;
                ctx.send(
                    self.resource,
                    Msg::Write {
                        attempt: self.attempt,
                        token: self.held_token,
                        lock_id: self.lock_id,
                        value: self.value + 1,
                    },
                );
                self.start_request_timer(ctx);
            }
            (T_REQUEST, Phase::Reading) => {
                self.release(ctx);
                self.finish(ctx, EventType::Fail, json!("read timed out"));
            }
            (T_REQUEST, Phase::Writing) => {
                self.release(ctx);
                self.finish(ctx, EventType::Info, json!("write timed out"));
            }
            _ => {}
        }
    }
}
