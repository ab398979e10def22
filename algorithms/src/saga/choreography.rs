//! The choreographed saga: no orchestrator. The order service (node 0) records the order and
//! emits the first event; each service reacts to the event it receives and emits the next
//! one: forward (`do` the next step) after applying its step, backward (`compensate` the
//! previous step) after a refusal or a compensation; the first service's compensation, or the
//! last service's success, tells the order service the saga `ended`. On success the order
//! service asks every service to `finish` (drop its semantic lock).
//!
//! Every emitted event sits in the sender's durable [`Outbox`], written in the same local
//! transaction as the step, and is resent every `retry` until the receiver answers; receivers
//! are idempotent, so resends are harmless. No node holds the saga's state as a whole: after a
//! crash each node resumes its own part from its outbox.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sim_core::storage::Storage;
use sim_core::{Ctx, NodeId};

use super::{send_saga, AckOf, Msg, Order, Params};

/// An event one node owes another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Apply step `.1`.
    Do(Order, usize),
    /// Compensate step `.1`.
    Compensate(Order, usize),
    /// Drop the semantic lock of step `.1`'s service.
    Finish(u64, usize),
    /// The saga ended (completed or not), to the order service.
    Ended(u64, bool),
}

impl Event {
    fn target(&self) -> NodeId {
        match *self {
            Event::Do(_, s) | Event::Compensate(_, s) | Event::Finish(_, s) => s + 1,
            Event::Ended(..) => 0,
        }
    }

    fn key(&self) -> (NodeId, u64, usize, u8) {
        match *self {
            Event::Do(o, s) => (s + 1, o.saga, s, 0),
            Event::Compensate(o, s) => (s + 1, o.saga, s, 1),
            Event::Finish(saga, s) => (s + 1, saga, s, 2),
            Event::Ended(saga, _) => (0, saga, 0, 3),
        }
    }

    fn msg(&self) -> Msg {
        match *self {
            Event::Do(order, step) => Msg::Do { order, step },
            Event::Compensate(order, step) => Msg::Compensate { order, step },
            Event::Finish(saga, step) => Msg::Finish { saga, step },
            Event::Ended(saga, completed) => Msg::Ended { saga, completed },
        }
    }
}

type OutKey = (NodeId, u64, usize, u8);

/// Events to deliver, resent until acknowledged; durable with the step that emitted them.
#[derive(Clone, Debug, Default)]
pub struct Outbox {
    events: BTreeMap<OutKey, Event>,
    /// Local time each event was last sent (volatile: after a restart all are due).
    sent_at: BTreeMap<OutKey, u64>,
}

fn storage_key(k: &OutKey) -> String {
    format!("out/{}/{}/{}/{}", k.0, k.1, k.2, k.3)
}

impl Outbox {
    /// Reloads the outbox from disk.
    pub fn load(st: &Storage) -> Outbox {
        let mut events = BTreeMap::new();
        for k in st.keys_with_prefix("out/") {
            let e: Event = st.get_json(&k).expect("outbox entries are events");
            events.insert(e.key(), e);
        }
        Outbox {
            events,
            sent_at: BTreeMap::new(),
        }
    }

    /// Events not yet acknowledged.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether every event was acknowledged.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Adds an event (the caller syncs with its step) and sends it at once.
    pub fn add(&mut self, ctx: &mut Ctx<'_, Msg>, e: Event) {
        let k = e.key();
        ctx.storage().put_json(&storage_key(&k), &e);
        self.events.insert(k, e);
        let now = ctx.now_local();
        self.sent_at.insert(k, now);
        send_saga(ctx, e.target(), e.msg());
    }

    /// Resends every event unacknowledged for `retry_ns` or more.
    pub fn resend(&mut self, ctx: &mut Ctx<'_, Msg>, retry_ns: u64) {
        let now = ctx.now_local();
        for (k, e) in &self.events {
            let last = self.sent_at.get(k).copied();
            if last.is_some_and(|t| now.saturating_sub(t) < retry_ns) {
                continue;
            }
            self.sent_at.insert(*k, now);
            ctx.count("saga.resends", 1.0);
            send_saga(ctx, e.target(), e.msg());
        }
    }

    /// A receiver answered: stop resending the event it answers.
    pub fn acked(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, reply: &Msg) {
        let k = match *reply {
            Msg::StepReply { saga, step, .. } => (from, saga, step, 0),
            Msg::Ack { saga, step, of } => {
                let kind = match of {
                    AckOf::Compensate => 1,
                    AckOf::Finish => 2,
                    AckOf::Ended => 3,
                };
                (from, saga, step, kind)
            }
            _ => return,
        };
        self.sent_at.remove(&k);
        if self.events.remove(&k).is_some() {
            // Not synced: a crash that loses the deletion only causes a harmless resend.
            ctx.storage().delete(&storage_key(&k));
        }
    }
}

/// Where an order stands at the order service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecord {
    /// The order.
    pub order: Order,
    /// The client to tell.
    pub client: NodeId,
    /// None while running; then completed (true) or compensated.
    pub outcome: Option<bool>,
    /// Local time the order was recorded.
    pub started_local: u64,
}

/// The order service of the choreography (node 0).
pub struct OrderService {
    params: Params,
    /// Orders by saga id.
    pub orders: BTreeMap<u64, OrderRecord>,
    /// The saga most recently started (for the checker's start times).
    pub last_started: Option<u64>,
    outbox: Outbox,
}

impl OrderService {
    /// A fresh order service.
    pub fn new(params: Params) -> Self {
        OrderService {
            params,
            orders: BTreeMap::new(),
            last_started: None,
            outbox: Outbox::default(),
        }
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let st = ctx.storage();
        for k in st.keys_with_prefix("order/") {
            let r: OrderRecord = st.get_json(&k).expect("orders are records");
            self.orders.insert(r.order.saga, r);
        }
        self.outbox = Outbox::load(st);
        ctx.set_timer(self.params.retry.0, 0);
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.outbox.resend(ctx, self.params.retry.0);
        ctx.set_timer(self.params.retry.0, 0);
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Start { order } => self.start(ctx, from, order),
            Msg::Ended { saga, completed } => {
                self.ended(ctx, saga, completed);
                let of = AckOf::Ended;
                send_saga(ctx, from, Msg::Ack { saga, step: 0, of });
            }
            Msg::StepReply { .. } | Msg::Ack { .. } => self.outbox.acked(ctx, from, &msg),
            _ => {}
        }
    }

    fn start(&mut self, ctx: &mut Ctx<'_, Msg>, client: NodeId, order: Order) {
        if let Some(r) = self.orders.get(&order.saga) {
            if let Some(completed) = r.outcome {
                ctx.send(
                    client,
                    Msg::Outcome {
                        saga: order.saga,
                        completed,
                    },
                );
            }
            return;
        }
        let r = OrderRecord {
            order,
            client,
            outcome: None,
            started_local: ctx.now_local(),
        };
        ctx.storage().put_json(&format!("order/{}", order.saga), &r);
        self.orders.insert(order.saga, r);
        self.last_started = Some(order.saga);
        ctx.count("saga.started", 1.0);
        self.outbox.add(ctx, Event::Do(order, 0));
        ctx.storage().sync();
    }

    fn ended(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64, completed: bool) {
        let now = ctx.now_local();
        let Some(r) = self.orders.get_mut(&saga) else {
            return;
        };
        if r.outcome.is_some() {
            return;
        }
        r.outcome = Some(completed);
        let r = *r;
        ctx.storage().put_json(&format!("order/{saga}"), &r);
        if completed {
            for step in 0..3 {
                self.outbox.add(ctx, Event::Finish(saga, step));
            }
        }
        ctx.storage().sync();
        super::orchestrator::note_outcome(ctx, completed, now.saturating_sub(r.started_local));
        ctx.send(r.client, Msg::Outcome { saga, completed });
    }
}
