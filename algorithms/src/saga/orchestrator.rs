//! The saga orchestrator (node 0, orchestrated style), with its durable saga log.
//!
//! A saga is a [`SagaRecord`] in the log: its order, and its phase: running step `i`,
//! compensating the `i`-th step of its compensation plan, releasing the semantic locks of a
//! completed saga, or done. The record is written and synced before every action (the log
//! comes first), so a restarted orchestrator reloads every unfinished saga and resumes it by
//! resending its current action; services are idempotent, so a resend is harmless.
//!
//! A step is resent every `retry` until its service answers. `done` moves to the next step;
//! `failed` (a definite refusal, remembered by the service) starts compensating the steps
//! before it, last first, one at a time; `busy` (another saga's semantic lock) is retried, up
//! to `busy_retries` times, after which the saga gives up and compensates from the busy step
//! itself (its compensation leaves a tombstone, so a late copy of the step is refused).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sim_core::time::MS;
use sim_core::{Ctx, NodeId};

use super::{panel, send_saga, AckOf, Msg, Order, PanelState, Params, SagaBug, StepResult};

/// Where a saga stands in the orchestrator's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Running step `.0`.
    Running(usize),
    /// Compensating the `.0`-th step of the plan.
    Compensating(usize),
    /// Completed; telling every service to drop its semantic lock.
    Releasing,
    /// Ended: completed (true) or compensated.
    Done(bool),
}

/// One saga in the orchestrator's log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SagaRecord {
    /// The order.
    pub order: Order,
    /// The client to tell.
    pub client: NodeId,
    /// The phase.
    pub phase: Phase,
    /// The steps to compensate, in the order they are compensated.
    pub plan: Vec<usize>,
    /// `busy` answers to the current step.
    pub busy: u32,
    /// Services that dropped the semantic lock (while releasing).
    pub released: [bool; 3],
    /// Local time the saga started.
    pub started_local: u64,
}

/// The orchestrator.
pub struct Orchestrator {
    params: Params,
    /// The saga log, as loaded and kept in memory.
    pub sagas: BTreeMap<u64, SagaRecord>,
    /// The saga most recently started (for the checker's start times).
    pub last_started: Option<u64>,
    /// Local time each saga's current action was last sent (volatile).
    sent_at: BTreeMap<u64, u64>,
    /// An outcome decided by the message being handled, told to the client once logged.
    outcome_due: Option<(u64, bool)>,
}

/// Counts a saga's outcome and its duration (shared by both styles).
pub(crate) fn note_outcome(ctx: &mut Ctx<'_, Msg>, completed: bool, took_local_ns: u64) {
    let name = if completed {
        "saga.completed"
    } else {
        "saga.compensated"
    };
    ctx.count(name, 1.0);
    ctx.observe("saga.duration_ms", took_local_ns as f64 / MS as f64);
}

impl Orchestrator {
    /// A fresh orchestrator with an empty log.
    pub fn new(params: Params) -> Self {
        Orchestrator {
            params,
            sagas: BTreeMap::new(),
            last_started: None,
            sent_at: BTreeMap::new(),
            outcome_due: None,
        }
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let st = ctx.storage();
        for k in st.keys_with_prefix("saga/") {
            let r: SagaRecord = st.get_json(&k).expect("the saga log holds records");
            self.sagas.insert(r.order.saga, r);
        }
        if ctx.is_restart() {
            let open = self
                .sagas
                .values()
                .filter(|r| !matches!(r.phase, Phase::Done(_)));
            let n = open.count();
            ctx.count("saga.resumed", n as f64);
        }
        ctx.set_timer(self.params.retry.0, 0);
    }

    /// Writes a saga's record to the log; synced at once, unless the bug defers the sync to
    /// the saga's end.
    fn log(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64) {
        let r = &self.sagas[&saga];
        ctx.storage().put_json(&format!("saga/{saga}"), r);
        let lazy = self.params.has(SagaBug::LogNotPersisted);
        if !lazy || matches!(r.phase, Phase::Done(_)) {
            ctx.storage().sync();
        }
    }

    /// Sends a saga's current action.
    fn act(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64) {
        let r = &self.sagas[&saga];
        let order = r.order;
        match r.phase {
            Phase::Running(step) => send_saga(ctx, step + 1, Msg::Do { order, step }),
            Phase::Compensating(i) => {
                let step = r.plan[i];
                send_saga(ctx, step + 1, Msg::Compensate { order, step });
            }
            Phase::Releasing => {
                let todo: Vec<usize> = (0..3).filter(|s| !r.released[*s]).collect();
                for step in todo {
                    send_saga(ctx, step + 1, Msg::Finish { saga, step });
                }
            }
            Phase::Done(_) => return,
        }
        let now = ctx.now_local();
        self.sent_at.insert(saga, now);
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let now = ctx.now_local();
        let due: Vec<u64> = self
            .sagas
            .iter()
            .filter(|(_, r)| !matches!(r.phase, Phase::Done(_)))
            .map(|(s, _)| *s)
            .filter(|s| {
                self.sent_at
                    .get(s)
                    .is_none_or(|t| now.saturating_sub(*t) >= self.params.retry.0)
            })
            .collect();
        for saga in due {
            ctx.count("saga.resends", 1.0);
            self.act(ctx, saga);
        }
        ctx.set_timer(self.params.retry.0, 0);
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Start { order } => self.start(ctx, from, order),
            Msg::StepReply { saga, step, result } => self.step_reply(ctx, saga, step, result),
            Msg::Ack { saga, step, of } => self.ack(ctx, saga, step, of),
            _ => {}
        }
    }

    fn start(&mut self, ctx: &mut Ctx<'_, Msg>, client: NodeId, order: Order) {
        let saga = order.saga;
        if let Some(r) = self.sagas.get(&saga) {
            let completed = match r.phase {
                Phase::Releasing | Phase::Done(true) => true,
                Phase::Done(false) => false,
                _ => return, // still running: the outcome will be sent when it ends
            };
            ctx.send(client, Msg::Outcome { saga, completed });
            return;
        }
        let r = SagaRecord {
            order,
            client,
            phase: Phase::Running(0),
            plan: Vec::new(),
            busy: 0,
            released: [false; 3],
            started_local: ctx.now_local(),
        };
        self.sagas.insert(saga, r);
        self.last_started = Some(saga);
        ctx.count("saga.started", 1.0);
        self.log(ctx, saga);
        self.act(ctx, saga);
    }

    fn step_reply(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64, step: usize, res: StepResult) {
        let Some(r) = self.sagas.get_mut(&saga) else {
            return;
        };
        if r.phase != Phase::Running(step) {
            return; // a late or duplicate answer
        }
        match res {
            StepResult::Done if step == 2 => {
                r.phase = Phase::Releasing;
                self.finish(ctx, saga, true);
            }
            StepResult::Done => {
                r.phase = Phase::Running(step + 1);
                r.busy = 0;
            }
            StepResult::Failed => self.compensate_from(ctx, saga, step),
            StepResult::Busy => {
                r.busy += 1;
                if r.busy <= self.params.busy_retries {
                    return; // the next tick resends
                }
                ctx.count("saga.gave_up_busy", 1.0);
                self.compensate_from(ctx, saga, step + 1);
            }
        }
        self.log_and_act(ctx, saga);
    }

    /// Logs the saga, then acts on it, then tells its client an outcome just decided: the log
    /// always comes first.
    fn log_and_act(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64) {
        self.log(ctx, saga);
        self.act(ctx, saga);
        if let Some((saga, completed)) = self.outcome_due.take() {
            let client = self.sagas[&saga].client;
            ctx.send(client, Msg::Outcome { saga, completed });
        }
    }

    /// Starts compensating the steps before `end` (exclusive), last first (or, with the bug,
    /// first first).
    fn compensate_from(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64, end: usize) {
        let mut plan: Vec<usize> = (0..end).rev().collect();
        if self.params.has(SagaBug::CompensationsInWrongOrder) {
            plan.reverse();
        }
        let r = self
            .sagas
            .get_mut(&saga)
            .expect("compensating a known saga");
        r.plan = plan;
        if r.plan.is_empty() {
            r.phase = Phase::Done(false);
            self.finish(ctx, saga, false);
        } else {
            r.phase = Phase::Compensating(0);
            let step = r.plan[0];
            panel(ctx, saga, step, PanelState::Compensating);
        }
    }

    fn ack(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64, step: usize, of: AckOf) {
        let Some(r) = self.sagas.get_mut(&saga) else {
            return;
        };
        match (r.phase, of) {
            (Phase::Compensating(i), AckOf::Compensate) if r.plan[i] == step => {
                if i + 1 == r.plan.len() {
                    r.phase = Phase::Done(false);
                    self.finish(ctx, saga, false);
                } else {
                    r.phase = Phase::Compensating(i + 1);
                    panel(ctx, saga, r.plan[i + 1], PanelState::Compensating);
                }
            }
            (Phase::Releasing, AckOf::Finish) if !r.released[step] => {
                r.released[step] = true;
                if r.released.iter().all(|x| *x) {
                    r.phase = Phase::Done(true);
                }
                // The other finishes are in flight: the tick resends them if they are lost.
                return self.log(ctx, saga);
            }
            _ => return,
        }
        self.log_and_act(ctx, saga);
    }

    /// The saga's outcome is decided: count it; the client is told once it is logged.
    fn finish(&mut self, ctx: &mut Ctx<'_, Msg>, saga: u64, completed: bool) {
        let took = ctx
            .now_local()
            .saturating_sub(self.sagas[&saga].started_local);
        note_outcome(ctx, completed, took);
        self.outcome_due = Some((saga, completed));
    }
}
