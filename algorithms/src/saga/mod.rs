//! Sagas (Garcia-Molina and Salem, 1987): a long business transaction run as a sequence of
//! local transactions on separate services, each with a compensating action, so that either
//! every step completes or every step that ran is compensated.
//!
//! The business: an order reserves stock at the **inventory** service (node 1), charges the
//! customer's account at the **payment** service (node 2) and books a delivery at the
//! **shipping** service (node 3). Shipping refuses a booking with probability
//! `ship_fail_rate` (a definite failure that makes the saga compensate); inventory refuses
//! when the item's stock is all reserved, payment when the account cannot pay.
//!
//! Two styles, chosen with `style` in `[params]`:
//! - `orchestrated`: node 0 is an orchestrator with a durable saga log. It writes (and syncs)
//!   the saga's state before every action, sends each step to its service, resends until it
//!   gets an answer, and on a definite failure compensates the completed steps in reverse
//!   order, one after the other. After a crash it reloads its log and resumes. See
//!   [`orchestrator`].
//! - `choreographed`: node 0 is the order service; it records the order and emits an event.
//!   Each service reacts to the event it receives, and emits the next one (forward on success,
//!   backward to compensate on failure) from a durable outbox it resends until acknowledged.
//!   No node knows the whole saga. See [`choreography`].
//!
//! Every service applies a step and its compensation idempotently: a table keyed by saga id
//! remembers what it did (applied, refused, compensated), synced with the data before any
//! reply, so a duplicate or a retry changes nothing, and a compensation that arrives before
//! its step leaves a tombstone that refuses the late step. Compensations restore the
//! record's *before-image*, which is correct only if no other saga wrote the record in
//! between: that is what the **semantic lock** guarantees (a pending flag per record; another
//! saga that finds it gets `busy` and retries later, giving up after `busy_retries`).
//! See [`service`].
//!
//! Checks ([`check`]): a saga's effect is always a prefix of its steps (a later step is never
//! left applied while an earlier one is compensated); no step and no compensation is applied
//! twice; stock is never overbooked and money is conserved after every event; at the end
//! every saga is completed everywhere or compensated everywhere it ran, no semantic lock is
//! left, and every record equals what the completed sagas account for. A violation names the
//! saga, its steps and where each stands.

pub mod check;
pub mod choreography;
pub mod client;
pub mod orchestrator;
pub mod service;
mod summary;

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::time::{fmt_ns, Duration, MS};
use sim_core::{
    Ctx, Message, NodeId, Op, Process, RunOptions, RunResult, Scenario, ScenarioError, Sim,
    SimConfig, TimerId,
};

pub use check::{SagaChecker, SagaStats};
pub use choreography::OrderService;
pub use client::Client;
pub use orchestrator::Orchestrator;
pub use service::{Entry, Service, StepKind};

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[crate::Bug] = SagaBug::ALL;

crate::bug_switches! {
    /// The saga bug switches.
    pub enum SagaBug {
        /// A duplicate or retried compensation is applied again.
        NonIdempotentCompensation = ("non_idempotent_compensation", "a compensation is applied at most once per (saga, step): a retried or duplicated one must change nothing"),
        /// The orchestrator acts before its log is durable.
        LogNotPersisted = ("log_not_persisted", "the orchestrator syncs its saga log before every action, or a crash forgets a saga that has effects"),
        /// Compensations run first step first.
        CompensationsInWrongOrder = ("compensations_in_wrong_order", "compensations run in reverse order of the steps, so a saga's effect is always a prefix of its steps"),
        /// A retried step is applied again.
        StepRetriedWithoutDedup = ("step_retried_without_dedup", "a step is applied at most once per (saga, step): a retry must be recognised (or the customer pays twice)"),
        /// Services ignore the pending flag of another saga.
        NoSemanticLock = ("no_semantic_lock", "a record a saga has changed but not finished is locked for other sagas (a semantic lock), or a compensation overwrites their update"),
    }
}

/// The `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[
    crate::ParamDoc {
        name: "style",
        default: "\"orchestrated\"",
        doc: "orchestrated (durable saga log) or choreographed (events and outboxes)",
    },
    crate::ParamDoc {
        name: "items",
        default: "3",
        doc: "items the inventory holds",
    },
    crate::ParamDoc {
        name: "stock",
        default: "1000",
        doc: "units of stock per item",
    },
    crate::ParamDoc {
        name: "accounts",
        default: "3",
        doc: "customer accounts",
    },
    crate::ParamDoc {
        name: "balance",
        default: "100000",
        doc: "opening balance of every account",
    },
    crate::ParamDoc {
        name: "price",
        default: "10",
        doc: "price of one unit",
    },
    crate::ParamDoc {
        name: "qty_max",
        default: "3",
        doc: "most units in one order",
    },
    crate::ParamDoc {
        name: "ship_fail_rate",
        default: "0.3",
        doc: "probability that shipping refuses a booking",
    },
    crate::ParamDoc {
        name: "retry",
        default: "\"60ms\"",
        doc: "resend period of unanswered actions and outbox events",
    },
    crate::ParamDoc {
        name: "busy_retries",
        default: "20",
        doc: "busy answers a step takes before the saga compensates",
    },
    crate::ParamDoc {
        name: "bug",
        default: "none",
        doc: "a switchable bug (see bugs)",
    },
];

/// How the saga is coordinated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// An orchestrator with a durable saga log drives every step.
    Orchestrated,
    /// Services react to each other's events.
    Choreographed,
}

/// `[params]` of a saga scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Orchestrated or choreographed.
    pub style: Style,
    /// Number of items the inventory holds.
    pub items: u32,
    /// Units of stock per item.
    pub stock: i64,
    /// Number of customer accounts.
    pub accounts: u32,
    /// Opening balance of every account.
    pub balance: i64,
    /// Price of one unit.
    pub price: i64,
    /// Most units in one order (1..=max, drawn by the client).
    pub qty_max: i64,
    /// Probability that shipping refuses a booking (a definite failure).
    pub ship_fail_rate: f64,
    /// How often unanswered actions (and outbox events) are resent.
    pub retry: Duration,
    /// How many `busy` answers a step takes before the saga gives up and compensates.
    pub busy_retries: u32,
    /// A switchable bug.
    pub bug: Option<SagaBug>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            style: Style::Orchestrated,
            items: 3,
            stock: 1_000,
            accounts: 3,
            balance: 100_000,
            price: 10,
            qty_max: 3,
            ship_fail_rate: 0.3,
            retry: Duration(60 * MS),
            busy_retries: 20,
            bug: None,
        }
    }
}

impl Params {
    /// Whether a bug switch is on.
    pub fn has(&self, bug: SagaBug) -> bool {
        self.bug == Some(bug)
    }
}

/// What one saga does: the order a client placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The saga id: the client's node in the high bits, its order number in the low ones.
    pub saga: u64,
    /// The item reserved.
    pub item: u32,
    /// Units.
    pub qty: i64,
    /// The account charged.
    pub account: u32,
    /// The amount charged.
    pub amount: i64,
}

/// The three steps, in order; step `i` runs on node `i + 1`.
pub const STEPS: [StepKind; 3] = [StepKind::Inventory, StepKind::Payment, StepKind::Shipping];

/// The node that runs step `i`.
pub fn service_node(step: usize) -> NodeId {
    step + 1
}

/// The sagas' messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Client to node 0: place an order.
    Start {
        /// The order.
        order: Order,
    },
    /// Node 0 to the client: the saga's outcome (`completed` true or compensated).
    Outcome {
        /// The saga.
        saga: u64,
        /// Completed (true) or compensated (false).
        completed: bool,
    },
    /// Apply step `step` of a saga (orchestrator command or choreography event).
    Do {
        /// The order.
        order: Order,
        /// The step.
        step: usize,
    },
    /// Compensate step `step` of a saga.
    Compensate {
        /// The order.
        order: Order,
        /// The step.
        step: usize,
    },
    /// The saga ended as completed: drop its semantic locks.
    Finish {
        /// The saga.
        saga: u64,
        /// The step (service) addressed.
        step: usize,
    },
    /// A service's answer to `Do`.
    StepReply {
        /// The saga.
        saga: u64,
        /// The step.
        step: usize,
        /// What happened.
        result: StepResult,
    },
    /// A service's answer to `Compensate` or `Finish`.
    Ack {
        /// The saga.
        saga: u64,
        /// The step.
        step: usize,
        /// Which request this acknowledges.
        of: AckOf,
    },
    /// Choreography: the last service (or the first, compensating) tells the order service.
    Ended {
        /// The saga.
        saga: u64,
        /// Completed (true) or compensated (false).
        completed: bool,
    },
}

/// What a service did with a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepResult {
    /// Applied (now or before).
    Done,
    /// Refused for good (no stock, no money, no delivery, or already compensated).
    Failed,
    /// Another saga holds the record's semantic lock: try later.
    Busy,
}

/// What an [`Msg::Ack`] acknowledges.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AckOf {
    /// A compensation.
    Compensate,
    /// A finish (semantic lock released).
    Finish,
    /// Choreography: the order service heard that the saga ended.
    Ended,
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Start { .. } => "start",
            Msg::Outcome { .. } => "outcome",
            Msg::Do { .. } => "do",
            Msg::Compensate { .. } => "compensate",
            Msg::Finish { .. } => "finish",
            Msg::StepReply { .. } => "step_reply",
            Msg::Ack { .. } => "ack",
            Msg::Ended { .. } => "ended",
        }
    }
}

/// Sends a saga-protocol message (between node 0 and the services), counting it.
pub(crate) fn send_saga(ctx: &mut Ctx<'_, Msg>, to: NodeId, msg: Msg) {
    ctx.count("saga.messages", 1.0);
    ctx.send(to, msg);
}

/// A saga step's state as the report's saga panel draws it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelState {
    /// The step is applied.
    Done = 1,
    /// The orchestrator (or the choreography) has started compensating it.
    Compensating = 2,
    /// The compensation is applied.
    Compensated = 3,
}

/// Records a point of the `saga.steps` series: `saga * 16 + step * 4 + state`, which the
/// reports crate's saga panel decodes into one row per saga.
pub(crate) fn panel(ctx: &mut Ctx<'_, Msg>, saga: u64, step: usize, state: PanelState) {
    let v = saga * 16 + step as u64 * 4 + state as u64;
    ctx.series("saga.steps", v as f64);
}

/// A node of a saga scenario.
pub enum Node {
    /// The orchestrator (node 0, orchestrated style).
    Orchestrator(Box<Orchestrator>),
    /// The order service (node 0, choreographed style).
    Order(Box<OrderService>),
    /// Inventory, payment or shipping.
    Service(Box<Service>),
    /// A client placing orders.
    Client(Box<Client>),
}

impl Node {
    /// The service, if this node is one.
    pub fn service(&self) -> Option<&Service> {
        match self {
            Node::Service(s) => Some(s),
            _ => None,
        }
    }
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        match self {
            Node::Orchestrator(o) => o.on_start(ctx),
            Node::Order(o) => o.on_start(ctx),
            Node::Service(s) => s.on_start(ctx),
            Node::Client(_) => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match self {
            Node::Orchestrator(o) => o.on_message(ctx, from, msg),
            Node::Order(o) => o.on_message(ctx, from, msg),
            Node::Service(s) => s.on_message(ctx, from, msg),
            Node::Client(c) => c.on_message(ctx, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        match self {
            Node::Orchestrator(o) => o.on_timer(ctx),
            Node::Order(o) => o.on_timer(ctx),
            Node::Service(s) => s.on_timer(ctx),
            Node::Client(c) => c.on_timer(ctx, tag),
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        if let Node::Client(c) = self {
            c.on_invoke(ctx, op);
        }
    }

    fn role_rank(&self, role: &str) -> Option<u64> {
        match (self, role) {
            (Node::Orchestrator(_), "orchestrator") => Some(1),
            (Node::Order(_), "orchestrator") => Some(1),
            _ => None,
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        summary::of(self)
    }
}

fn validate(sc: &Scenario, p: &Params) -> Result<(), ScenarioError> {
    if sc.nodes != 4 {
        return Err(sc.error_at(
            "nodes",
            "a saga scenario uses nodes = 4: node 0 the orchestrator (or order service), 1 inventory, 2 payment, 3 shipping".into(),
        ));
    }
    for (field, v) in [
        ("items", p.items as i64),
        ("stock", p.stock),
        ("accounts", p.accounts as i64),
        ("price", p.price),
        ("qty_max", p.qty_max),
    ] {
        if v <= 0 {
            return Err(sc.error_at(field, format!("{field} must be at least 1")));
        }
    }
    if p.balance < 0 {
        return Err(sc.error_at("balance", "balance must not be negative".into()));
    }
    if !(0.0..=1.0).contains(&p.ship_fail_rate) {
        return Err(sc.error_at(
            "ship_fail_rate",
            "ship_fail_rate is a probability in [0, 1], e.g. 0.3".into(),
        ));
    }
    if p.retry.0 == 0 {
        return Err(sc.error_at("retry", "retry must be above zero, e.g. \"60ms\"".into()));
    }
    let orchestrator_only = [SagaBug::LogNotPersisted, SagaBug::CompensationsInWrongOrder];
    if p.style == Style::Choreographed && p.bug.is_some_and(|b| orchestrator_only.contains(&b)) {
        return Err(sc.error_at(
            "bug",
            "this bug is the orchestrator's; it has no meaning with style = \"choreographed\" (use style = \"orchestrated\")".into(),
        ));
    }
    if let (true, Some(within)) = (sc.liveness_on(), sc.liveness.within) {
        let bound = check::saga_bound_ns(p);
        if sc.quiet.0 < within.0 + bound {
            return Err(sc.error_at(
                "quiet",
                format!(
                    "the quiet period ({}) must hold the liveness phase ({}) and then one saga's bound ({}, (busy_retries + 11) x retry), so that a saga started just before the deadline can end before the end checks; use quiet = \"{}ms\" or more",
                    fmt_ns(sc.quiet.0),
                    fmt_ns(within.0),
                    fmt_ns(bound),
                    (within.0 + bound).div_ceil(MS)
                ),
            ));
        }
    }
    if sc.workload.mix.keys().any(|f| f != "order") {
        return Err(sc.error_at(
            "mix",
            "saga clients run only `order` (one saga per operation); write mix = { order = 1 }"
                .into(),
        ));
    }
    Ok(())
}

/// Runs a saga scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    validate(sc, &params)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let quiet_ns = cfg.quiet_ns;
    let timeout_ns = cfg.workload.timeout.0;
    let p = params.clone();
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(Box::new(Client::new(p.clone(), info.id, timeout_ns)))
        } else if info.id == 0 {
            match p.style {
                Style::Orchestrated => Node::Orchestrator(Box::new(Orchestrator::new(p.clone()))),
                Style::Choreographed => Node::Order(Box::new(OrderService::new(p.clone()))),
            }
        } else {
            Node::Service(Box::new(Service::new(p.clone(), STEPS[info.id - 1])))
        }
    });
    let stats = Rc::new(RefCell::new(SagaStats::default()));
    sim.add_checker(SagaChecker::new(params, quiet_ns, stats.clone()));
    let mut result = sim.run();
    stats.borrow().add_metrics(&mut result.metrics);
    Ok(result)
}
