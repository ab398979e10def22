//! Evaluating a scenario's `[[assert]]`s: temporal conditions after every event inside their
//! windows, metric bounds at the end, and `sometimes` outcomes for the sweep to judge.

use super::*;
use crate::assertion::{AssertionForm, Condition, SometimesResult};
use crate::process::Process;
use crate::time::fmt_ns;

/// The running state of one assertion.
pub(crate) struct AssertState {
    form: AssertionForm,
    window: (Nanos, Nanos),
    /// Decided: held (eventually, sometimes) or failed (never); nothing more to watch.
    done: bool,
    held: bool,
}

impl AssertState {
    pub(crate) fn all(sc: &Scenario, duration_ns: Nanos) -> Vec<AssertState> {
        sc.asserts
            .iter()
            .map(|a| AssertState {
                form: a.form(),
                window: a.window(duration_ns),
                done: a.form() == AssertionForm::Metric,
                held: false,
            })
            .collect()
    }
}

impl<M: Message> World<M> {
    /// A counter's value now; the network's hot counters live outside the metrics until the
    /// end of the run.
    pub(crate) fn metric_now(&self, name: &str) -> f64 {
        let s = &self.stats;
        let v = match name {
            "net.sent" => s.sent,
            "net.delivered" => s.delivered,
            "net.dropped_cut" => s.dropped_cut,
            "net.dropped_loss" => s.dropped_loss,
            "net.dropped_down" => s.dropped_down,
            "net.duplicated" => s.duplicated,
            "net.reordered" => s.reordered,
            "net.held_clog" => s.held_clog,
            "net.held_pause" => s.held_pause,
            _ => return self.metrics.counter(name),
        };
        v as f64
    }
}

impl<P: Process> Sim<P> {
    /// Schedules the end of every `eventually` window.
    pub(crate) fn schedule_asserts(&mut self) {
        for (i, a) in self.asserts.iter().enumerate() {
            if a.form == AssertionForm::Eventually && a.window.1 <= self.cfg.duration_ns {
                self.world.push(a.window.1, Event::AssertDeadline(i));
            }
        }
    }

    /// After an event: watch the temporal assertions whose window is open.
    pub(crate) fn watch_asserts(&mut self) {
        let now = self.world.now;
        for i in 0..self.asserts.len() {
            let a = &self.asserts[i];
            if a.done || now < a.window.0 || now > a.window.1 {
                continue;
            }
            let cond = self.cfg.scenario.asserts[i]
                .condition()
                .expect("temporal assertions have a condition");
            let Some(holders) = self.condition_holds(cond) else {
                continue;
            };
            let a = &mut self.asserts[i];
            a.held = true;
            a.done = true;
            if a.form == AssertionForm::Never {
                let label = self.cfg.scenario.asserts[i].label();
                let who = if holders.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        holders
                            .iter()
                            .map(|n| format!("n{n}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                let msg = format!(
                    "assertion `{label}` failed at {}: {}{who}",
                    fmt_ns(now),
                    cond.describe()
                );
                self.world.report_violation(
                    "assert".into(),
                    Finding::new(msg)
                        .kind(ViolationKind::Assertion)
                        .nodes(holders),
                );
            }
        }
    }

    /// Whether a condition holds now, with the nodes that make it hold (for roles).
    fn condition_holds(&self, c: &Condition) -> Option<Vec<NodeId>> {
        if let Some(role) = &c.role {
            let nodes: Vec<NodeId> = match c.node {
                Some(n) => vec![n.0],
                None => (0..self.world.servers_count).collect(),
            };
            let holders: Vec<NodeId> = nodes
                .into_iter()
                .filter(|i| {
                    self.procs
                        .get(*i)
                        .and_then(|p| p.as_ref())
                        .is_some_and(|p| p.role_rank(role).is_some())
                })
                .collect();
            return (!holders.is_empty()).then_some(holders);
        }
        let name = c.metric.as_deref()?;
        let v = self.world.metric_now(name);
        let ok = c.min.is_none_or(|lo| v >= lo) && c.max.is_none_or(|hi| v <= hi);
        ok.then(Vec::new)
    }

    /// The end of an `eventually` window: the condition must have held in it.
    pub(crate) fn assert_deadline(&mut self, i: usize) {
        if self.asserts[i].held {
            return;
        }
        self.asserts[i].done = true;
        let a = &self.cfg.scenario.asserts[i];
        let (from, to) = self.asserts[i].window;
        let msg = format!(
            "assertion `{}` failed: {} at no moment from {} to {}",
            a.label(),
            a.condition().map(|c| c.describe()).unwrap_or_default(),
            fmt_ns(from),
            fmt_ns(to)
        );
        self.world.report_violation(
            "assert".into(),
            Finding::new(msg).kind(ViolationKind::Assertion),
        );
    }

    /// How each `sometimes` assertion fared on this run.
    pub(crate) fn sometimes_results(&self) -> Vec<SometimesResult> {
        self.cfg
            .scenario
            .asserts
            .iter()
            .zip(&self.asserts)
            .filter(|(_, s)| s.form == AssertionForm::Sometimes)
            .map(|(a, s)| SometimesResult {
                name: a.label(),
                held: s.held,
            })
            .collect()
    }
}
