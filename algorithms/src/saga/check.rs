//! The saga checks, over the services' own tables (the simulator sees every node).
//!
//! After every event at a service:
//! - **prefix**: a saga's effect is a prefix of its steps: no step stays applied while an
//!   earlier one of the same saga is compensated (compensation runs last step first);
//! - **once**: no step and no compensation took effect twice for one saga;
//! - **domain**: an item's reserved units stay within its stock; no account goes negative;
//!   money is conserved (balances plus revenue equal the opening total).
//!
//! At the end (the system quiet, crashed nodes restarted):
//! - every saga that started has **ended**: completed on every service, or compensated (or
//!   refused) on every service that ran a step, and node 0 agrees;
//! - no **semantic lock** is left on any record;
//! - every record equals what the completed sagas account for (a lost update or a double
//!   charge shows here even when the totals balance).
//!
//! The isolation anomalies are counted as metrics by the services themselves:
//! `saga.dirty_reads` (a step read a record changed by an unfinished saga that was later
//! compensated) and `saga.lost_updates` (a compensation restored a before-image over another
//! saga's write).
//!
//! In the liveness phase (faults healed, crashed nodes restarted), at its deadline: every saga
//! started after the heal that has been open longer than [`saga_bound_ns`] is a liveness
//! violation naming the saga, the step it is at and how long it has been open.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use sim_core::time::{fmt_ns, Nanos};
use sim_core::{Checker, Finding, History, LivenessPhase, NodeId, View};

use super::orchestrator::Phase;
use super::service::{Entry, EntryState, Service, StepKind};
use super::{Node, Params, STEPS};

/// Figures the checker gathers, turned into metrics after the run.
#[derive(Clone, Debug, Default)]
pub struct SagaStats {
    /// Sagas that had not ended when the run ended.
    pub unended: u64,
}

impl SagaStats {
    /// Adds the saga metrics to a run's metrics.
    pub fn add_metrics(&self, m: &mut BTreeMap<String, f64>) {
        m.insert("saga.unended".into(), self.unended as f64);
        let started = m.get("saga.started").copied().unwrap_or(0.0);
        if started > 0.0 {
            let msgs = m.get("saga.messages").copied().unwrap_or(0.0);
            m.insert("saga.messages_per_saga".into(), msgs / started);
        }
        for k in [
            "saga.dirty_reads",
            "saga.lost_updates",
            "saga.busy",
            "saga.resumed",
        ] {
            m.entry(k.into()).or_insert(0.0);
        }
    }
}

/// The saga checker.
pub struct SagaChecker {
    params: Params,
    quiet_ns: Nanos,
    stats: Rc<RefCell<SagaStats>>,
    /// True time each saga was first seen started at node 0.
    starts: BTreeMap<u64, Nanos>,
    /// How long a saga started after the heal may stay open.
    bound_ns: Nanos,
}

/// How long a saga started in the quiet period may take to end: a saga that keeps finding
/// records busy gives up after `busy_retries` answers, one per `retry` period (resends go out
/// on the orchestrator's or the outbox's tick), and ten more periods cover its steps, its
/// compensations and the resends of lost messages. With the defaults, 31 x 60 ms = 1.86 s.
pub fn saga_bound_ns(p: &Params) -> Nanos {
    (u64::from(p.busy_retries) + 1 + 10) * p.retry.0
}

/// A saga's name for people: the client node and its order number.
pub fn saga_name(saga: u64) -> String {
    format!("n{}#{}", saga >> 32, saga & 0xffff_ffff)
}

/// How the per-saga bound is made, for the liveness message.
const BOUND_WHY: &str = "(busy_retries + 11) x retry";

/// The step a saga is at, in words, and the service node it waits on (when node 0 knows).
fn where_stuck(view: &View<'_, Node>, saga: u64) -> (String, Option<NodeId>) {
    let step_at = |verb: &str, step: usize| {
        (
            format!("{verb} step {} ({})", step, STEPS[step].name()),
            Some(step + 1),
        )
    };
    match view.node(0) {
        Some(Node::Orchestrator(o)) => match o.sagas.get(&saga).map(|r| (r.phase, &r.plan)) {
            Some((Phase::Running(s), _)) => step_at("running", s),
            Some((Phase::Compensating(i), plan)) => step_at("compensating", plan[i]),
            Some((Phase::Releasing, _)) => ("releasing its semantic locks".into(), None),
            Some((Phase::Done(_), _)) => ("ended".into(), None),
            None => ("unknown to the orchestrator".into(), None),
        },
        Some(Node::Order(_)) => {
            // No node knows a choreographed saga whole: forward, the first step not applied;
            // once a step refused or compensated, the last step still applied.
            let es = entries(view, saga);
            let applied = |e: &Option<Option<Entry>>| matches!(e, Some(Some(x)) if x.state == EntryState::Applied);
            let backward = es
                .iter()
                .any(|e| matches!(e, Some(Some(x)) if x.state != EntryState::Applied));
            let at = if backward {
                es.iter().rposition(applied).map(|s| ("compensating", s))
            } else {
                es.iter()
                    .position(|e| !applied(e))
                    .map(|s| ("waiting at", s))
            };
            match at {
                Some((verb, s)) => step_at(verb, s),
                None => (
                    "waiting for the order service to hear it ended".into(),
                    None,
                ),
            }
        }
        _ => ("with node 0 down".into(), None),
    }
}

fn service<'a>(view: &'a View<'_, Node>, step: usize) -> Option<&'a Service> {
    view.node(step + 1).and_then(|n| n.service())
}

/// Each step's entry: `None` when the service is down, `Some(None)` when it never heard of
/// the saga.
fn entries(view: &View<'_, Node>, saga: u64) -> [Option<Option<Entry>>; 3] {
    [0, 1, 2].map(|s| service(view, s).map(|svc| svc.entries.get(&saga).copied()))
}

fn state_word(e: Option<Option<Entry>>) -> String {
    match e {
        None => "down (unknown)".into(),
        Some(None) => "none".into(),
        Some(Some(e)) => match e.state {
            EntryState::Applied => "applied".into(),
            EntryState::Refused => "refused".into(),
            EntryState::Compensated => "compensated".into(),
            EntryState::Tombstone => "compensated before it ran (tombstone)".into(),
        },
    }
}

/// What node 0 says about a saga: `Some(Some(completed))` once ended, `Some(None)` while
/// running, `None` when it has no record (or is down).
fn node0(view: &View<'_, Node>, saga: u64) -> (Option<Option<bool>>, String) {
    match view.node(0) {
        Some(Node::Orchestrator(o)) => match o.sagas.get(&saga) {
            Some(r) => {
                let ended = match r.phase {
                    Phase::Done(c) => Some(c),
                    _ => None,
                };
                (
                    Some(ended),
                    format!("orchestrator: {:?}, plan {:?}", r.phase, r.plan),
                )
            }
            None => (None, "orchestrator: no record of it".into()),
        },
        Some(Node::Order(o)) => match o.orders.get(&saga) {
            Some(r) => (
                Some(r.outcome),
                format!("order service: outcome {:?}", r.outcome),
            ),
            None => (None, "order service: no record of it".into()),
        },
        _ => (None, "node 0 down".into()),
    }
}

/// A saga, its steps and where each stands.
pub fn describe(view: &View<'_, Node>, saga: u64) -> String {
    let es = entries(view, saga);
    let order = es.iter().flatten().flatten().map(|e| e.order).next();
    let what = match order {
        Some(o) => format!(
            " (item {} x{}, account {} pays {})",
            o.item, o.qty, o.account, o.amount
        ),
        None => String::new(),
    };
    let steps: Vec<String> = STEPS
        .iter()
        .zip(es)
        .map(|(k, e)| format!("{} {}", k.name(), state_word(e)))
        .collect();
    format!(
        "saga {}{what}: {}; {}",
        saga_name(saga),
        steps.join(", "),
        node0(view, saga).1
    )
}

impl SagaChecker {
    /// A checker for a run whose quiet period starts at `quiet_ns`.
    pub fn new(params: Params, quiet_ns: Nanos, stats: Rc<RefCell<SagaStats>>) -> Self {
        SagaChecker {
            bound_ns: saga_bound_ns(&params),
            params,
            quiet_ns,
            stats,
            starts: BTreeMap::new(),
        }
    }

    fn domain(&self, svc: &Service) -> Option<String> {
        for (id, r) in &svc.records {
            match svc.kind {
                StepKind::Inventory if r.value < 0 || r.value > self.params.stock => {
                    return Some(format!(
                        "overbooking: item {id} has {} units reserved of a stock of {} (last written by saga {})",
                        r.value,
                        self.params.stock,
                        r.writer.map_or("-".into(), saga_name)
                    ));
                }
                StepKind::Payment if r.value < 0 => {
                    return Some(format!("account {id} is overdrawn: balance {}", r.value));
                }
                _ => {}
            }
        }
        if svc.kind == StepKind::Payment {
            let untouched = self.params.accounts as i64 - svc.records.len() as i64;
            let total: i64 = svc.records.values().map(|r| r.value).sum::<i64>()
                + untouched * self.params.balance
                + svc.revenue;
            let opening = self.params.accounts as i64 * self.params.balance;
            if total != opening {
                return Some(format!(
                    "money not conserved: balances plus revenue ({}) total {total}, the accounts opened with {opening}",
                    svc.revenue
                ));
            }
        }
        None
    }

    fn per_saga(&self, view: &View<'_, Node>, svc: &Service, saga: u64) -> Option<String> {
        let e = svc.entries.get(&saga)?;
        if e.applied_times > 1 {
            return Some(format!(
                "{} step applied {} times: {}",
                svc.kind.name(),
                e.applied_times,
                describe(view, saga)
            ));
        }
        if e.compensated_times > 1 {
            return Some(format!(
                "{} compensation applied {} times: {}",
                svc.kind.name(),
                e.compensated_times,
                describe(view, saga)
            ));
        }
        let es = entries(view, saga);
        let state = |s: usize| es[s].flatten().map(|e| e.state);
        for (i, kind) in STEPS.iter().enumerate() {
            let undone = matches!(
                state(i),
                Some(EntryState::Compensated) | Some(EntryState::Tombstone)
            );
            if undone && (i + 1..3).any(|j| state(j) == Some(EntryState::Applied)) {
                return Some(format!(
                    "compensated out of order: {} is compensated while a later step is still applied: {}",
                    kind.name(),
                    describe(view, saga)
                ));
            }
        }
        None
    }

    /// Sagas started after the heal and open for longer than the per-saga bound at `now`:
    /// the liveness phase's progress predicate, each naming the saga, the step it is at and
    /// how long it has been open.
    pub fn stuck_sagas(&self, view: &View<'_, Node>, phase: LivenessPhase) -> Vec<Finding> {
        let now = view.now;
        let stuck: Vec<(u64, Nanos)> = self
            .starts
            .iter()
            .filter(|(_, t)| **t >= phase.start_ns && now.saturating_sub(**t) > self.bound_ns)
            .filter(|(saga, _)| !matches!(node0(view, **saga).0, Some(Some(_))))
            .map(|(s, t)| (*s, *t))
            .collect();
        let mut out: Vec<Finding> = stuck
            .iter()
            .take(4)
            .map(|(saga, t)| {
                let (at, node) = where_stuck(view, *saga);
                Finding::liveness(format!(
                    "saga {} started at {} (after the heal at {}) is stuck {at}: open for {} at {}, longer than the {} a saga may take ({}); {}",
                    saga_name(*saga),
                    fmt_ns(*t),
                    fmt_ns(phase.start_ns),
                    fmt_ns(now - t),
                    fmt_ns(now),
                    fmt_ns(self.bound_ns),
                    BOUND_WHY,
                    describe(view, *saga)
                ))
                .nodes([0].into_iter().chain(node))
                .values([serde_json::json!(saga)])
            })
            .collect();
        if stuck.len() > 4 {
            out.push(Finding::liveness(format!(
                "... {} sagas started after the heal were stuck at {}",
                stuck.len(),
                fmt_ns(now)
            )));
        }
        out
    }

    fn sagas(&self, view: &View<'_, Node>) -> BTreeSet<u64> {
        let mut all: BTreeSet<u64> = self.starts.keys().copied().collect();
        for s in 0..3 {
            if let Some(svc) = service(view, s) {
                all.extend(svc.entries.keys().copied());
            }
        }
        all
    }

    fn unended(&self, view: &View<'_, Node>, saga: u64) -> Option<String> {
        let es = entries(view, saga);
        if es.iter().any(|e| e.is_none()) {
            return None; // a service is down: its part cannot be judged
        }
        let applied = es
            .iter()
            .filter(|e| e.flatten().is_some_and(|e| e.state == EntryState::Applied))
            .count();
        let says = node0(view, saga).0;
        let consistent = matches!(
            (applied, says),
            (3, Some(Some(true))) | (0, Some(Some(false)))
        );
        if consistent {
            return None;
        }
        let when = match self.starts.get(&saga) {
            Some(t) if *t >= self.quiet_ns => format!(", started at {} after the heal", fmt_ns(*t)),
            Some(t) => format!(", started at {}", fmt_ns(*t)),
            None => String::new(),
        };
        Some(format!(
            "saga did not end completed everywhere or compensated everywhere{when}: {}",
            describe(view, saga)
        ))
    }

    fn records_match(&self, view: &View<'_, Node>) -> Vec<String> {
        let mut out = Vec::new();
        for s in 0..2 {
            let Some(svc) = service(view, s) else {
                continue;
            };
            let mut expect: BTreeMap<u32, i64> = BTreeMap::new();
            for e in svc
                .entries
                .values()
                .filter(|e| e.state == EntryState::Applied)
            {
                let id = svc
                    .kind
                    .record_of(&e.order)
                    .expect("inventory and payment have records");
                let d = match svc.kind {
                    StepKind::Inventory => e.order.qty,
                    _ => -e.order.amount,
                };
                *expect.entry(id).or_insert(svc.opening()) += d;
            }
            for (id, r) in &svc.records {
                if let Some(saga) = r.pending {
                    out.push(format!(
                        "{} record {id} is still locked at the end by {}",
                        svc.kind.name(),
                        describe(view, saga)
                    ));
                }
                let want = expect.get(id).copied().unwrap_or(svc.opening());
                if r.value != want {
                    out.push(format!(
                        "lost or doubled update: {} record {id} holds {} but the sagas applied there account for {want} (last written by saga {})",
                        svc.kind.name(),
                        r.value,
                        r.writer.map_or("-".into(), saga_name)
                    ));
                }
            }
        }
        out
    }
}

fn last_started(view: &View<'_, Node>) -> Option<u64> {
    match view.node(0)? {
        Node::Orchestrator(o) => o.last_started,
        Node::Order(o) => o.last_started,
        _ => None,
    }
}

impl Checker<Node> for SagaChecker {
    fn name(&self) -> &'static str {
        "saga"
    }
    fn after_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<Finding> {
        self.after_event_text(view, node).map(Finding::from)
    }

    fn at_liveness(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        self.stuck_sagas(view, phase)
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        self.at_end_text(view, history)
            .into_iter()
            .map(Finding::from)
            .collect()
    }
}

impl SagaChecker {
    fn after_event_text(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<String> {
        if node == 0 {
            if let Some(s) = last_started(view) {
                self.starts.entry(s).or_insert(view.now);
            }
            return None;
        }
        let svc = view.node(node).and_then(|n| n.service())?;
        if let Some(f) = self.domain(svc) {
            // Name the saga whose step or compensation broke it.
            return Some(match svc.touched {
                Some(saga) => format!("{f}, after {}", describe(view, saga)),
                None => f,
            });
        }
        self.per_saga(view, svc, svc.touched?)
    }

    fn at_end_text(&mut self, view: &View<'_, Node>, _history: &History) -> Vec<String> {
        // Sagas with effects left applied first: they are the harm, the rest only forgotten.
        let mut found: Vec<(bool, String)> = self
            .sagas(view)
            .into_iter()
            .filter_map(|saga| {
                let f = self.unended(view, saga)?;
                let harm = entries(view, saga)
                    .iter()
                    .any(|e| e.flatten().is_some_and(|e| e.state == EntryState::Applied));
                Some((!harm, f))
            })
            .collect();
        found.sort_by_key(|(forgotten, _)| *forgotten);
        let unended = found.len() as u64;
        let mut out: Vec<String> = found.into_iter().take(4).map(|(_, f)| f).collect();
        self.stats.borrow_mut().unended = unended;
        if unended > 4 {
            out.push(format!("... {unended} sagas in all did not end"));
        }
        out.extend(self.records_match(view).into_iter().take(4));
        out
    }
}
