//! A saga participant: inventory, payment or shipping. It applies a step, and its
//! compensation, as one local transaction, idempotently, remembering per saga what it did.
//!
//! The table of [`Entry`]s is the service's own log: written and synced together with the data
//! before any reply, so that a duplicate, a retry or a restart never applies anything twice,
//! and a compensation that arrives before its step leaves a tombstone that refuses the step.
//!
//! A compensation restores the record's before-image. That is right only while no other saga
//! has written the record since, which the semantic lock (`pending`) guarantees: another saga
//! that finds the flag is answered `busy`. With the flag ignored (bug `no_semantic_lock`)
//! another saga reads the pending value (a dirty read, counted by the checker) and the
//! compensation overwrites its update (a lost update, counted here).

use std::collections::BTreeMap;

use rand::Rng;
use serde::{Deserialize, Serialize};
use sim_core::{Ctx, NodeId};

use super::choreography::Outbox;
use super::{panel, Msg, Order, PanelState, Params, SagaBug, StepResult, Style};

/// The business a service runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepKind {
    /// Reserves stock of an item.
    Inventory,
    /// Charges a customer's account (the money goes to the shop's revenue).
    Payment,
    /// Books a delivery (may refuse).
    Shipping,
}

impl StepKind {
    /// The step's name in messages.
    pub fn name(self) -> &'static str {
        match self {
            StepKind::Inventory => "inventory",
            StepKind::Payment => "payment",
            StepKind::Shipping => "shipping",
        }
    }

    /// The record a saga's step touches (shipping touches none).
    pub fn record_of(self, order: &Order) -> Option<u32> {
        match self {
            StepKind::Inventory => Some(order.item),
            StepKind::Payment => Some(order.account),
            StepKind::Shipping => None,
        }
    }
}

/// A record: an item's reserved units, or an account's balance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Reserved units (inventory) or balance (payment).
    pub value: i64,
    /// The semantic lock: the saga that changed the record and has not finished.
    pub pending: Option<u64>,
    /// The last saga that wrote the record.
    pub writer: Option<u64>,
}

/// What a service did for one saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryState {
    /// The step is applied.
    Applied,
    /// The step was refused for good (no effect).
    Refused,
    /// The step was applied, then compensated.
    Compensated,
    /// A compensation arrived before any step: nothing to undo, and a late step is refused.
    Tombstone,
}

/// A service's memory of one saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where the step stands here.
    pub state: EntryState,
    /// The order.
    pub order: Order,
    /// The record's value before the step (the before-image the compensation restores).
    pub before: i64,
    /// How many times the step took effect (more than 1 only with a bug).
    pub applied_times: u32,
    /// How many times the compensation took effect (more than 1 only with a bug).
    pub compensated_times: u32,
    /// The step read a record another unfinished saga had changed (a possible dirty read).
    pub read_pending_of: Option<u64>,
}

/// A saga participant.
pub struct Service {
    params: Params,
    /// Which business.
    pub kind: StepKind,
    /// Records by id (absent = untouched: 0 reserved, or the opening balance).
    pub records: BTreeMap<u32, Record>,
    /// Payment: money taken from accounts.
    pub revenue: i64,
    /// Per saga, what this service did.
    pub entries: BTreeMap<u64, Entry>,
    /// The saga the last message was about (for the checker's per-event checks).
    pub touched: Option<u64>,
    /// Choreography: events to deliver until acknowledged.
    pub outbox: Outbox,
    /// Choreography: `busy` answers per saga so far (volatile).
    busy: BTreeMap<u64, u32>,
}

impl Service {
    /// A fresh service of `kind`.
    pub fn new(params: Params, kind: StepKind) -> Self {
        Service {
            params,
            kind,
            records: BTreeMap::new(),
            revenue: 0,
            entries: BTreeMap::new(),
            touched: None,
            outbox: Outbox::default(),
            busy: BTreeMap::new(),
        }
    }

    /// The step index this service runs.
    pub fn step(&self) -> usize {
        self.kind as usize
    }

    /// A record's current state.
    pub fn record(&self, id: u32) -> Record {
        self.records.get(&id).copied().unwrap_or(Record {
            value: self.opening(),
            pending: None,
            writer: None,
        })
    }

    /// An untouched record's value.
    pub fn opening(&self) -> i64 {
        match self.kind {
            StepKind::Payment => self.params.balance,
            _ => 0,
        }
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let st = ctx.storage();
        for k in st.keys_with_prefix("rec/") {
            let id: u32 = k["rec/".len()..].parse().expect("record key holds an id");
            let r: Record = st.get_json(&k).expect("listed key exists");
            self.records.insert(id, r);
        }
        for k in st.keys_with_prefix("e/") {
            let saga: u64 = k["e/".len()..].parse().expect("entry key holds a saga id");
            let e: Entry = st.get_json(&k).expect("listed key exists");
            self.entries.insert(saga, e);
        }
        self.revenue = st.get_json("revenue").unwrap_or(0);
        self.outbox = Outbox::load(st);
        if self.params.style == Style::Choreographed {
            ctx.set_timer(self.params.retry.0, 0);
        }
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.outbox.resend(ctx, self.params.retry.0);
        ctx.set_timer(self.params.retry.0, 0);
    }

    fn save(&self, ctx: &mut Ctx<'_, Msg>, saga: u64, record: Option<u32>) {
        let st = ctx.storage();
        if let Some(e) = self.entries.get(&saga) {
            st.put_json(&format!("e/{saga}"), e);
        }
        if let Some(id) = record {
            st.put_json(&format!("rec/{id}"), &self.record(id));
        }
        if self.kind == StepKind::Payment {
            st.put_json("revenue", &self.revenue);
        }
    }

    /// Applies step `order` here, once (unless a bug is on). Durable when it returns.
    pub fn apply(&mut self, ctx: &mut Ctx<'_, Msg>, order: &Order) -> StepResult {
        let saga = order.saga;
        self.touched = Some(saga);
        let retry_applies = self.params.has(SagaBug::StepRetriedWithoutDedup);
        match self.entries.get(&saga).map(|e| e.state) {
            Some(EntryState::Applied) if !retry_applies => return StepResult::Done,
            Some(EntryState::Applied) | None => {}
            Some(_) => return StepResult::Failed,
        }
        let rid = self.kind.record_of(order);
        let mut rec = rid.map(|id| self.record(id));
        let mut read_pending_of = None;
        if let Some(r) = rec.filter(|r| r.pending.is_some_and(|p| p != saga)) {
            if !self.params.has(SagaBug::NoSemanticLock) {
                ctx.count("saga.busy", 1.0);
                return StepResult::Busy;
            }
            read_pending_of = r.pending;
        }
        let again = self.entries.contains_key(&saga);
        if !again && !self.admits(ctx, order, rec.as_ref()) {
            self.entries
                .insert(saga, self.entry(EntryState::Refused, order, 0));
            self.save(ctx, saga, None);
            ctx.storage().sync();
            return StepResult::Failed;
        }
        let before = rec.map_or(0, |r| r.value);
        if let (Some(r), Some(id)) = (rec.as_mut(), rid) {
            r.value += self.delta(order);
            r.pending = Some(saga);
            r.writer = Some(saga);
            self.records.insert(id, *r);
        }
        if self.kind == StepKind::Payment {
            self.revenue += order.amount;
        }
        let e = self.entries.entry(saga).or_insert(Entry {
            applied_times: 0,
            ..Self::blank(order)
        });
        e.state = EntryState::Applied;
        e.before = before;
        e.applied_times += 1;
        e.read_pending_of = e.read_pending_of.or(read_pending_of);
        if again {
            ctx.count("saga.steps_applied_again", 1.0);
        }
        self.save(ctx, saga, rid);
        ctx.storage().sync();
        panel(ctx, saga, self.step(), PanelState::Done);
        StepResult::Done
    }

    /// Whether the business accepts the step (stock left, money enough, a delivery slot).
    fn admits(&self, ctx: &mut Ctx<'_, Msg>, order: &Order, rec: Option<&Record>) -> bool {
        match (self.kind, rec) {
            (StepKind::Inventory, Some(r)) => r.value + order.qty <= self.params.stock,
            (StepKind::Payment, Some(r)) => r.value >= order.amount,
            _ => !ctx.rng().random_bool(self.params.ship_fail_rate),
        }
    }

    fn delta(&self, order: &Order) -> i64 {
        match self.kind {
            StepKind::Inventory => order.qty,
            StepKind::Payment => -order.amount,
            StepKind::Shipping => 0,
        }
    }

    fn blank(order: &Order) -> Entry {
        Entry {
            state: EntryState::Tombstone,
            order: *order,
            before: 0,
            applied_times: 0,
            compensated_times: 0,
            read_pending_of: None,
        }
    }

    fn entry(&self, state: EntryState, order: &Order, before: i64) -> Entry {
        Entry {
            state,
            before,
            ..Self::blank(order)
        }
    }

    /// Compensates the step of `order` here, once (unless a bug is on). Durable when it
    /// returns.
    pub fn compensate(&mut self, ctx: &mut Ctx<'_, Msg>, order: &Order) {
        let saga = order.saga;
        self.touched = Some(saga);
        let state = self.entries.get(&saga).map(|e| e.state);
        let undo = match state {
            None => {
                self.entries
                    .insert(saga, self.entry(EntryState::Tombstone, order, 0));
                false
            }
            Some(EntryState::Applied) => true,
            Some(EntryState::Compensated) => self.params.has(SagaBug::NonIdempotentCompensation),
            Some(EntryState::Refused) | Some(EntryState::Tombstone) => false,
        };
        let rid = self.kind.record_of(order);
        if undo {
            self.undo(ctx, saga, rid);
        }
        self.save(ctx, saga, rid);
        ctx.storage().sync();
    }

    fn undo(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64, rid: Option<u32>) {
        let e = *self
            .entries
            .get(&saga)
            .expect("undo of a saga with an entry");
        debug_assert!(matches!(
            e.state,
            EntryState::Applied | EntryState::Compensated
        ));
        if let Some(id) = rid {
            let mut r = self.record(id);
            if r.writer != Some(saga) {
                // Another saga wrote the record since: restoring our before-image erases it.
                ctx.count("saga.lost_updates", 1.0);
            }
            r.value = e.before;
            if r.pending == Some(saga) {
                r.pending = None;
            }
            self.records.insert(id, r);
        }
        if self.kind == StepKind::Payment {
            self.revenue -= e.order.amount;
        }
        // Steps of other sagas that read this saga's change, now rolled back: dirty reads.
        let dirty = self
            .entries
            .values()
            .filter(|o| o.read_pending_of == Some(saga))
            .count();
        if dirty > 0 {
            ctx.count("saga.dirty_reads", dirty as f64);
        }
        let e = self.entries.get_mut(&saga).expect("checked above");
        e.state = EntryState::Compensated;
        e.compensated_times += 1;
        panel(ctx, saga, self.step(), PanelState::Compensated);
    }

    /// The saga completed: drop its semantic lock here.
    pub fn finish(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64) {
        self.touched = Some(saga);
        let Some(e) = self.entries.get(&saga) else {
            return;
        };
        if let Some(id) = self.kind.record_of(&e.order) {
            let mut r = self.record(id);
            if r.pending == Some(saga) {
                r.pending = None;
                self.records.insert(id, r);
                self.save(ctx, saga, Some(id));
                ctx.storage().sync();
            }
        }
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        if self.params.style == Style::Choreographed {
            return self.react(ctx, from, msg);
        }
        match msg {
            Msg::Do { order, step } => {
                let result = self.apply(ctx, &order);
                let saga = order.saga;
                super::send_saga(ctx, from, Msg::StepReply { saga, step, result });
            }
            Msg::Compensate { order, step } => {
                self.compensate(ctx, &order);
                let of = super::AckOf::Compensate;
                super::send_saga(
                    ctx,
                    from,
                    Msg::Ack {
                        saga: order.saga,
                        step,
                        of,
                    },
                );
            }
            Msg::Finish { saga, step } => {
                self.finish(ctx, saga);
                let of = super::AckOf::Finish;
                super::send_saga(ctx, from, Msg::Ack { saga, step, of });
            }
            _ => {}
        }
    }

    /// Choreography: react to an event, emit the next one through the outbox.
    fn react(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        use super::choreography::Event;
        let step = self.step();
        match msg {
            Msg::Do { order, .. } => {
                let mut result = self.apply(ctx, &order);
                if result == StepResult::Busy {
                    let n = self.busy.entry(order.saga).or_insert(0);
                    *n += 1;
                    if *n <= self.params.busy_retries {
                        return; // unanswered: the sender resends, and we try again then
                    }
                    // Give up: a tombstone refuses the step if a late copy arrives.
                    self.compensate(ctx, &order);
                    result = StepResult::Failed;
                }
                let next = match result {
                    StepResult::Done if step == 2 => Event::Ended(order.saga, true),
                    StepResult::Done => Event::Do(order, step + 1),
                    _ if step == 0 => Event::Ended(order.saga, false),
                    _ => Event::Compensate(order, step - 1),
                };
                self.outbox.add(ctx, next);
                ctx.storage().sync();
                super::send_saga(
                    ctx,
                    from,
                    Msg::StepReply {
                        saga: order.saga,
                        step,
                        result,
                    },
                );
            }
            Msg::Compensate { order, .. } => {
                self.compensate(ctx, &order);
                let next = if step == 0 {
                    Event::Ended(order.saga, false)
                } else {
                    Event::Compensate(order, step - 1)
                };
                self.outbox.add(ctx, next);
                ctx.storage().sync();
                let of = super::AckOf::Compensate;
                super::send_saga(
                    ctx,
                    from,
                    Msg::Ack {
                        saga: order.saga,
                        step,
                        of,
                    },
                );
            }
            Msg::Finish { saga, step } => {
                self.finish(ctx, saga);
                let of = super::AckOf::Finish;
                super::send_saga(ctx, from, Msg::Ack { saga, step, of });
            }
            Msg::StepReply { .. } | Msg::Ack { .. } => self.outbox.acked(ctx, from, &msg),
            _ => {}
        }
    }
}
