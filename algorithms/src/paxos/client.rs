//! The Synod client: proposes a value to a server and learns the chosen one. It asks the
//! next server when one stays silent, so that a crashed proposer does not hold it up.

use sim_core::{Ctx, EventType, NodeId, Op, TimerId};

use super::msg::Msg;
use crate::client::RequestTracker;

/// Timer tags at or above this are retry timers (the request tracker uses small tags).
const RETRY_FLAG: u64 = 1 << 62;

/// A Synod client.
pub struct SynodClient {
    servers_count: usize,
    server: NodeId,
    tracker: RequestTracker,
    timeout_ns: u64,
    retry_ns: u64,
    current: Option<(u64, u64)>,
    retry_timer: Option<TimerId>,
}

impl SynodClient {
    /// A client with node index `id`; it starts with server `id mod servers`.
    pub fn new(id: NodeId, servers_count: usize, timeout_ns: u64, retry_ns: u64) -> Self {
        SynodClient {
            servers_count,
            server: id % servers_count.max(1),
            tracker: RequestTracker::default(),
            timeout_ns,
            retry_ns,
            current: None,
            retry_timer: None,
        }
    }

    fn send(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some((req, value)) = self.current else {
            return;
        };
        ctx.send(self.server, Msg::Propose { req, value });
        if let Some(t) = self.retry_timer.take() {
            ctx.cancel_timer(t);
        }
        self.retry_timer = Some(ctx.set_timer(self.retry_ns, RETRY_FLAG | req));
    }

    /// The workload asks to propose `op.value`.
    pub fn invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        let value = op.value.as_u64().unwrap_or(0);
        let req = self.tracker.begin(ctx, self.timeout_ns);
        self.current = Some((req, value));
        self.send(ctx);
    }

    /// A server answered with the chosen value.
    pub fn message(&mut self, ctx: &mut Ctx<'_, Msg>, msg: Msg) {
        let Msg::Learned { req, value } = msg else {
            return;
        };
        if self.current.is_some_and(|(r, _)| r == req)
            && self
                .tracker
                .finish(ctx, req, EventType::Ok, serde_json::json!(value))
        {
            self.current = None;
            if let Some(t) = self.retry_timer.take() {
                ctx.cancel_timer(t);
            }
        }
    }

    /// A timer fired: the operation's deadline, or a retry at the next server.
    pub fn timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag & RETRY_FLAG != 0 {
            if self.current.is_some_and(|(r, _)| r == tag & !RETRY_FLAG) {
                self.retry_timer = None;
                self.server = (self.server + 1) % self.servers_count;
                self.send(ctx);
            }
            return;
        }
        if self.tracker.on_timer(ctx, tag) {
            self.current = None;
            if let Some(t) = self.retry_timer.take() {
                ctx.cancel_timer(t);
            }
        }
    }
}
