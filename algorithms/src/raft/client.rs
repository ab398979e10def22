//! A Raft client: finds the leader by redirect, retries on timeout under the same
//! (client id, sequence number), and records the history.

use std::marker::PhantomData;

use sim_core::{Ctx, EventType, Message, NodeId, Op, TimerId};

use super::msg::{ClientResult, KvOp, Msg};
use crate::client::RequestTracker;

/// The messages a key-value client exchanges with servers, so that the same client drives
/// every replicated key-value store (Raft's and Multi-Paxos's).
pub trait KvClientMsg: Message {
    /// The counter of redirects (a server answered "not the leader").
    const REDIRECTS: &'static str;
    /// The counter of retries after a silent server.
    const RETRIES: &'static str;
    /// A client's command.
    fn request(req: u64, client: u32, seq: u64, op: KvOp) -> Self;
    /// The (request number, result) of a server's answer; `None` for any other message.
    fn into_reply(self) -> Option<(u64, ClientResult)>;
}

impl KvClientMsg for Msg {
    const REDIRECTS: &'static str = "raft.client_redirects";
    const RETRIES: &'static str = "raft.client_retries";

    fn request(req: u64, client: u32, seq: u64, op: KvOp) -> Msg {
        Msg::Request {
            req,
            client,
            seq,
            op,
        }
    }

    fn into_reply(self) -> Option<(u64, ClientResult)> {
        match self {
            Msg::Reply { req, result } => Some((req, result)),
            _ => None,
        }
    }
}

/// Timer tags at or above this are retry timers (the request tracker uses small tags).
const RETRY_FLAG: u64 = 1 << 62;

struct Current {
    req: u64,
    seq: u64,
    op: KvOp,
    /// The operation's argument as the workload gave it, returned on success.
    value: serde_json::Value,
    is_read: bool,
    is_cas: bool,
}

/// A client, speaking the messages `M` (Raft's by default).
pub struct Client<M: KvClientMsg = Msg> {
    id: u32,
    servers_count: usize,
    leader: NodeId,
    seq: u64,
    tracker: RequestTracker,
    timeout_ns: u64,
    retry_ns: u64,
    cur: Option<Current>,
    retry_timer: Option<TimerId>,
    msg: PhantomData<M>,
}

/// Reads `k3` as key 3 (an unkeyed workload uses key 0).
fn key_of(op: &Op) -> u32 {
    op.key
        .as_deref()
        .and_then(|k| k.trim_start_matches('k').parse().ok())
        .unwrap_or(0)
}

impl<M: KvClientMsg> Client<M> {
    /// A client with node index `id`.
    pub fn new(id: NodeId, servers_count: usize, timeout_ns: u64, retry_ns: u64) -> Self {
        Client {
            id: id as u32,
            servers_count,
            leader: id % servers_count.max(1),
            seq: 0,
            tracker: RequestTracker::default(),
            timeout_ns,
            retry_ns,
            cur: None,
            retry_timer: None,
            msg: PhantomData,
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_, M>) {
        let Some(c) = &self.cur else { return };
        ctx.send(self.leader, M::request(c.req, self.id, c.seq, c.op.clone()));
        if let Some(t) = self.retry_timer.take() {
            ctx.cancel_timer(t);
        }
        self.retry_timer = Some(ctx.set_timer(self.retry_ns, RETRY_FLAG | c.req));
    }

    /// The workload asks for an operation.
    pub fn invoke(&mut self, ctx: &mut Ctx<'_, M>, op: Op) {
        let key = key_of(&op);
        let num = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
        let (kv_op, is_read, is_cas) = match op.f.as_str() {
            "read" | "get" => (KvOp::Get { key }, true, false),
            "cas" => {
                let a = op.value.as_array();
                let from = a.and_then(|a| a.first()).map(num).unwrap_or(0);
                let to = a.and_then(|a| a.get(1)).map(num).unwrap_or(0);
                (KvOp::Cas { key, from, to }, false, true)
            }
            _ => (
                KvOp::Put {
                    key,
                    value: num(&op.value),
                },
                false,
                false,
            ),
        };
        self.seq += 1;
        let req = self.tracker.begin(ctx, self.timeout_ns);
        self.cur = Some(Current {
            req,
            seq: self.seq,
            op: kv_op,
            value: op.value,
            is_read,
            is_cas,
        });
        self.send(ctx);
    }

    /// A server answered.
    pub fn message(&mut self, ctx: &mut Ctx<'_, M>, from: NodeId, msg: M) {
        let Some((req, result)) = msg.into_reply() else {
            return;
        };
        let Some(c) = &self.cur else { return };
        if c.req != req || self.tracker.current() != Some(req) {
            return;
        }
        let (outcome, value) = match result {
            ClientResult::NotLeader { hint } => {
                ctx.count(M::REDIRECTS, 1.0);
                match hint {
                    Some(h) if h != from => {
                        self.leader = h;
                        self.send(ctx);
                    }
                    _ => {
                        // No leader known (an election is on): try the next server after
                        // a short pause instead of circling the cluster at network speed.
                        self.leader = from;
                        if let Some(t) = self.retry_timer.take() {
                            ctx.cancel_timer(t);
                        }
                        let pause = (self.retry_ns / 4).max(1);
                        self.retry_timer = Some(ctx.set_timer(pause, RETRY_FLAG | req));
                    }
                }
                return;
            }
            ClientResult::Value(v) if c.is_read => (EventType::Ok, serde_json::json!(v)),
            ClientResult::Done if !c.is_read => (EventType::Ok, c.value.clone()),
            ClientResult::CasFailed if c.is_cas => (EventType::Fail, c.value.clone()),
            // A result of the wrong kind cannot come from a correct server: report it.
            other => {
                ctx.violation(format!("client n{} got {other:?} for {:?}", self.id, c.op));
                return;
            }
        };
        self.leader = from;
        self.finish(ctx, req, outcome, value);
    }

    fn finish(&mut self, ctx: &mut Ctx<'_, M>, req: u64, outcome: EventType, v: serde_json::Value) {
        if let Some(t) = self.retry_timer.take() {
            ctx.cancel_timer(t);
        }
        self.cur = None;
        self.tracker.finish(ctx, req, outcome, v);
    }

    /// A timer fired: the operation's deadline, or a retry.
    pub fn timer(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) {
        if tag & RETRY_FLAG != 0 {
            let req = tag & !RETRY_FLAG;
            if self.cur.as_ref().is_some_and(|c| c.req == req) {
                // No answer in time: the server may be down or deposed; try the next one,
                // with the same sequence number so that the command applies once.
                self.retry_timer = None;
                self.leader = (self.leader + 1) % self.servers_count;
                ctx.count(M::RETRIES, 1.0);
                self.send(ctx);
            }
            return;
        }
        if self.tracker.on_timer(ctx, tag) {
            if let Some(t) = self.retry_timer.take() {
                ctx.cancel_timer(t);
            }
            self.cur = None;
        }
    }
}
