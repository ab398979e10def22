//! A client of the primary-backup store: finds the primary by redirects, retries on silence
//! at the next replica under the same (client id, sequence number), and records the history.
//! With the `backup_reads` bug it sends each read to a random replica instead.

use sim_core::{Ctx, EventType, NodeId, Op, TimerId};

use super::msg::Msg;
use crate::client::RequestTracker;
use crate::raft::msg::{ClientResult, KvOp};

/// Timer tags at or above this are retry timers (the request tracker uses small tags).
const RETRY_TIMER: u64 = 1 << 62;

struct Current {
    req: u64,
    cseq: u64,
    op: KvOp,
    /// The operation's argument as the workload gave it, returned on success.
    value: serde_json::Value,
}

/// A client.
pub struct Client {
    id: u32,
    /// The replicas are nodes `first..first + replicas`.
    first: NodeId,
    replicas: usize,
    /// The replica it believes is the primary.
    primary: NodeId,
    cseq: u64,
    tracker: RequestTracker,
    timeout_ns: u64,
    retry_ns: u64,
    reads_anywhere: bool,
    cur: Option<Current>,
    retry: Option<TimerId>,
}

/// Reads `k3` as key 3 (an unkeyed workload uses key 0).
fn key_of(op: &Op) -> u32 {
    op.key
        .as_deref()
        .and_then(|k| k.trim_start_matches('k').parse().ok())
        .unwrap_or(0)
}

/// The store operation for a workload operation (the loader allows only these names).
pub(crate) fn kv_op(op: &Op) -> KvOp {
    let key = key_of(op);
    let num = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    match op.f.as_str() {
        "read" | "get" => KvOp::Get { key },
        "cas" => {
            let a = op.value.as_array();
            let from = a.and_then(|a| a.first()).map(num).unwrap_or(0);
            let to = a.and_then(|a| a.get(1)).map(num).unwrap_or(0);
            KvOp::Cas { key, from, to }
        }
        _ => KvOp::Put {
            key,
            value: num(&op.value),
        },
    }
}

impl Client {
    /// Client `id` of a cluster whose replicas are nodes `first..first + replicas`.
    pub fn new(
        id: NodeId,
        first: NodeId,
        replicas: usize,
        timeout_ns: u64,
        retry_ns: u64,
        reads_anywhere: bool,
    ) -> Self {
        Client {
            id: id as u32,
            first,
            replicas,
            primary: first + id % replicas,
            cseq: 0,
            tracker: RequestTracker::default(),
            timeout_ns,
            retry_ns,
            reads_anywhere,
            cur: None,
            retry: None,
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(c) = &self.cur else { return };
        let to = if self.reads_anywhere && matches!(c.op, KvOp::Get { .. }) {
            use rand::Rng;
            self.first + ctx.rng().random_range(0..self.replicas)
        } else {
            self.primary
        };
        let msg = Msg::Request {
            req: c.req,
            client: self.id,
            cseq: c.cseq,
            op: c.op.clone(),
        };
        let req = c.req;
        ctx.send(to, msg);
        self.arm_retry(ctx, self.retry_ns, req);
    }

    fn arm_retry(&mut self, ctx: &mut Ctx<'_, Msg>, after: u64, req: u64) {
        if let Some(t) = self.retry.take() {
            ctx.cancel_timer(t);
        }
        self.retry = Some(ctx.set_timer(after, RETRY_TIMER | req));
    }

    /// The workload asks for an operation.
    pub fn invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        self.cseq += 1;
        let req = self.tracker.begin(ctx, self.timeout_ns);
        self.cur = Some(Current {
            req,
            cseq: self.cseq,
            op: kv_op(&op),
            value: op.value,
        });
        self.send(ctx);
    }

    /// A replica answered.
    pub fn message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let Msg::Reply { req, result } = msg else {
            return;
        };
        let Some(c) = &self.cur else { return };
        if c.req != req || self.tracker.current() != Some(req) {
            return;
        }
        let is_read = matches!(c.op, KvOp::Get { .. });
        let (outcome, value) = match result {
            ClientResult::NotLeader { hint } => {
                ctx.count("pb.client_redirects", 1.0);
                match hint {
                    Some(h) if h != from => {
                        self.primary = h;
                        self.send(ctx);
                    }
                    _ => {
                        // No primary known there (a failover is on): try the next replica
                        // after a short pause instead of circling at network speed.
                        self.primary = from;
                        self.arm_retry(ctx, (self.retry_ns / 4).max(1), req);
                    }
                }
                return;
            }
            ClientResult::Value(v) if is_read => (EventType::Ok, serde_json::json!(v)),
            ClientResult::Done if !is_read => (EventType::Ok, c.value.clone()),
            ClientResult::CasFailed if matches!(c.op, KvOp::Cas { .. }) => {
                (EventType::Fail, c.value.clone())
            }
            other => {
                ctx.violation(format!("client n{} got {other:?} for {:?}", self.id, c.op));
                return;
            }
        };
        if !(self.reads_anywhere && is_read) {
            self.primary = from;
        }
        if let Some(t) = self.retry.take() {
            ctx.cancel_timer(t);
        }
        self.cur = None;
        self.tracker.finish(ctx, req, outcome, value);
    }

    /// A timer fired: the operation's deadline, or a retry.
    pub fn timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag & RETRY_TIMER != 0 {
            let req = tag & !RETRY_TIMER;
            if self.cur.as_ref().is_some_and(|c| c.req == req) {
                self.retry = None;
                self.primary = self.first + (self.primary + 1 - self.first) % self.replicas;
                ctx.count("pb.client_retries", 1.0);
                self.send(ctx);
            }
            return;
        }
        if self.tracker.on_timer(ctx, tag) {
            if let Some(t) = self.retry.take() {
                ctx.cancel_timer(t);
            }
            self.cur = None;
        }
    }
}
