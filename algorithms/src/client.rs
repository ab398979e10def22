//! The request/response client that most algorithms' clients are built on: one operation at
//! a time, a request id to ignore late replies, and a timeout after which the outcome is
//! unknown (`info`).

use sim_core::{Ctx, EventType, Message, TimerId};

/// Tracks a client's one outstanding request.
#[derive(Clone, Debug, Default)]
pub struct RequestTracker {
    next_req: u64,
    pending: Option<(u64, TimerId)>,
}

impl RequestTracker {
    /// Starts a request: returns its id and sets the timeout timer (tagged with the id).
    pub fn begin<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, timeout_ns: u64) -> u64 {
        self.next_req += 1;
        let req = self.next_req;
        let timer = ctx.set_timer(timeout_ns, req);
        self.pending = Some((req, timer));
        req
    }

    /// The outstanding request id, if any.
    pub fn current(&self) -> Option<u64> {
        self.pending.map(|(r, _)| r)
    }

    /// Completes request `req` if it is the outstanding one; a late or duplicate reply is
    /// ignored (returns false).
    pub fn finish<M: Message>(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        req: u64,
        outcome: EventType,
        value: serde_json::Value,
    ) -> bool {
        match self.pending {
            Some((r, timer)) if r == req => {
                ctx.cancel_timer(timer);
                self.pending = None;
                ctx.complete(outcome, value);
                true
            }
            _ => false,
        }
    }

    /// Handles a timer: if it is the outstanding request's timeout, completes it as `info`.
    pub fn on_timer<M: Message>(&mut self, ctx: &mut Ctx<'_, M>, tag: u64) -> bool {
        match self.pending {
            Some((r, _)) if r == tag => {
                self.pending = None;
                ctx.complete(EventType::Info, serde_json::Value::Null);
                true
            }
            _ => false,
        }
    }
}
