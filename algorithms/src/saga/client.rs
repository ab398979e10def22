//! A client placing orders: each `order` operation starts one saga at node 0 and completes
//! `ok` when the saga completed, `fail` when it was compensated, `info` when no answer came in
//! time (the saga may still end either way; the checkers judge the services, not the client).

use rand::Rng;
use sim_core::{Ctx, EventType, NodeId, Op};

use super::{Msg, Order, Params};
use crate::client::RequestTracker;

/// A saga client.
pub struct Client {
    params: Params,
    id: NodeId,
    timeout_ns: u64,
    orders: u64,
    tracker: RequestTracker,
    current: Option<Order>,
}

impl Client {
    /// A client at node `id`.
    pub fn new(params: Params, id: NodeId, timeout_ns: u64) -> Self {
        Client {
            params,
            id,
            timeout_ns,
            orders: 0,
            tracker: RequestTracker::default(),
            current: None,
        }
    }

    pub(crate) fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, _op: Op) {
        self.orders += 1;
        let p = &self.params;
        let rng = ctx.rng();
        let item = rng.random_range(0..p.items);
        let account = rng.random_range(0..p.accounts);
        let qty = rng.random_range(1..=p.qty_max);
        let order = Order {
            saga: ((self.id as u64) << 32) | self.orders,
            item,
            qty,
            account,
            amount: qty * p.price,
        };
        self.current = Some(order);
        self.tracker.begin(ctx, self.timeout_ns);
        ctx.send(0, Msg::Start { order });
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, msg: Msg) {
        let Msg::Outcome { saga, completed } = msg else {
            return;
        };
        let Some(order) = self.current.filter(|o| o.saga == saga) else {
            return;
        };
        let Some(req) = self.tracker.current() else {
            return;
        };
        let outcome = if completed {
            EventType::Ok
        } else {
            EventType::Fail
        };
        let value = serde_json::json!({
            "saga": saga, "item": order.item, "qty": order.qty,
            "account": order.account, "amount": order.amount,
        });
        self.tracker.finish(ctx, req, outcome, value);
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        self.tracker.on_timer(ctx, tag);
    }
}
