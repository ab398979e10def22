//! What a scenario asserts beyond the algorithm's own checks: the liveness phase (`[liveness]`)
//! and course-test assertions (`[[assert]]`) over metrics, roles and time windows.
//!
//! This module holds the data and its validation; the engine ([`crate::sim`]) evaluates them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::result::ViolationKind;
use crate::scenario::NodeIndex;
use crate::sim::Finding;
use crate::time::{fmt_ns, Duration, Nanos};

/// The liveness bound when neither the scenario nor the algorithm gives one.
pub const DEFAULT_LIVENESS_WITHIN: Duration = Duration(2 * crate::time::SEC);

/// `[liveness]`: after the quiet period begins (faults healed, crashed servers restarted) the
/// system must make progress within `within`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LivenessConfig {
    /// On by default whenever the scenario has a quiet period; `false` turns the phase off
    /// (for a scenario whose point is that the cluster cannot recover).
    pub enabled: Option<bool>,
    /// How long after the quiet period begins progress must have been made; the algorithm
    /// gives the default.
    pub within: Option<Duration>,
}

/// One `[[assert]]`: exactly one of `metric`, `eventually`, `never` or `sometimes`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Assertion {
    /// A name printed with the verdict (defaults to a description of the assertion).
    pub name: Option<String>,
    /// A final metric (any name the run prints, e.g. `net.sent`, `ops.ok`).
    pub metric: Option<String>,
    /// Divide the metric by this one (`metric = "net.sent", per = "ops.ok"`).
    pub per: Option<String>,
    /// Smallest allowed value (of the metric, or of a condition's metric).
    pub min: Option<f64>,
    /// Largest allowed value.
    pub max: Option<f64>,
    /// The condition must hold at some moment in `[after, after + within]`.
    pub eventually: Option<Condition>,
    /// Start of the `eventually` window (default 0).
    pub after: Option<Duration>,
    /// Length of the `eventually` window.
    pub within: Option<Duration>,
    /// The condition must not hold at any moment in `[from, until]`.
    pub never: Option<Condition>,
    /// Start of the `never` window (default 0).
    pub from: Option<Duration>,
    /// End of the `never` window (default: the end of the run).
    pub until: Option<Duration>,
    /// The condition must hold at some moment on at least one seed of a sweep.
    pub sometimes: Option<Condition>,
}

/// A condition on the running system, evaluated after every event in its window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Condition {
    /// Some up server (or `node`) holds this role ("leader").
    pub role: Option<String>,
    /// With `role`: this server in particular.
    pub node: Option<NodeIndex>,
    /// A counter's value at that moment (`net.dropped_cut`, `ops.ok`).
    pub metric: Option<String>,
    /// With `metric`: at least this.
    pub min: Option<f64>,
    /// With `metric`: at most this.
    pub max: Option<f64>,
}

/// The form of an assertion, once validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssertionForm {
    /// On a final metric.
    Metric,
    /// A condition that must hold at some moment in a window.
    Eventually,
    /// A condition that must never hold in a window.
    Never,
    /// A condition that must hold on at least one seed of a sweep.
    Sometimes,
}

impl Condition {
    /// A short description: `role leader on n2`, `net.dropped_cut >= 1`.
    pub fn describe(&self) -> String {
        match (&self.role, &self.metric) {
            (Some(r), _) => match self.node {
                Some(n) => format!("n{} holds role {r}", n.0),
                None => format!("some server holds role {r}"),
            },
            (None, Some(m)) => describe_range(m, self.min, self.max),
            (None, None) => "nothing".into(),
        }
    }

    fn validate(&self, roles_hint: &str) -> Result<(), String> {
        match (&self.role, &self.metric) {
            (Some(_), Some(_)) => Err(format!(
                "a condition is either {{ role = ... }} or {{ metric = ..., min = ... }}, not both{roles_hint}"
            )),
            (None, None) => Err(
                "the condition is empty; write { role = \"leader\" } or { metric = \"ops.ok\", min = 1 }".into(),
            ),
            (Some(_), None) if self.min.is_some() || self.max.is_some() => Err(
                "min and max go with metric, not role; remove them or use { metric = ..., min = ... }".into(),
            ),
            (None, Some(_)) if self.node.is_some() => Err(
                "node goes with role, not metric; remove it".into(),
            ),
            (None, Some(_)) => check_range(self.min, self.max),
            (Some(_), None) => Ok(()),
        }
    }
}

fn describe_range(metric: &str, min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("{lo} <= {metric} <= {hi}"),
        (Some(lo), None) => format!("{metric} >= {lo}"),
        (None, Some(hi)) => format!("{metric} <= {hi}"),
        (None, None) => metric.to_string(),
    }
}

fn check_range(min: Option<f64>, max: Option<f64>) -> Result<(), String> {
    for v in [min, max].into_iter().flatten() {
        if !v.is_finite() {
            return Err(format!("{v} is not a finite number"));
        }
    }
    match (min, max) {
        (None, None) => Err("give a bound: min = ..., max = ..., or both".into()),
        (Some(lo), Some(hi)) if lo > hi => Err(format!("min {lo} is above max {hi}; swap them")),
        _ => Ok(()),
    }
}

impl Assertion {
    /// The validated form.
    pub fn form(&self) -> AssertionForm {
        if self.metric.is_some() {
            AssertionForm::Metric
        } else if self.eventually.is_some() {
            AssertionForm::Eventually
        } else if self.never.is_some() {
            AssertionForm::Never
        } else {
            AssertionForm::Sometimes
        }
    }

    /// The condition of a temporal assertion.
    pub fn condition(&self) -> Option<&Condition> {
        self.eventually
            .as_ref()
            .or(self.never.as_ref())
            .or(self.sometimes.as_ref())
    }

    /// The name printed with results.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match self.form() {
            AssertionForm::Metric => {
                let m = self.metric.clone().unwrap_or_default();
                let m = match &self.per {
                    Some(p) => format!("{m} per {p}"),
                    None => m,
                };
                describe_range(&m, self.min, self.max)
            }
            AssertionForm::Eventually => format!(
                "eventually {} within {} after {}",
                self.condition().map(|c| c.describe()).unwrap_or_default(),
                fmt_ns(self.within.map(|d| d.0).unwrap_or(0)),
                fmt_ns(self.after.map(|d| d.0).unwrap_or(0))
            ),
            AssertionForm::Never => format!(
                "never {} from {}{}",
                self.condition().map(|c| c.describe()).unwrap_or_default(),
                fmt_ns(self.from.map(|d| d.0).unwrap_or(0)),
                self.until
                    .map(|u| format!(" until {}", fmt_ns(u.0)))
                    .unwrap_or_default()
            ),
            AssertionForm::Sometimes => format!(
                "sometimes {}",
                self.condition().map(|c| c.describe()).unwrap_or_default()
            ),
        }
    }

    /// The window in which a temporal assertion is evaluated, in true time.
    pub fn window(&self, duration_ns: Nanos) -> (Nanos, Nanos) {
        match self.form() {
            AssertionForm::Eventually => {
                let after = self.after.map(|d| d.0).unwrap_or(0);
                (
                    after,
                    after.saturating_add(self.within.map(|d| d.0).unwrap_or(0)),
                )
            }
            AssertionForm::Never => (
                self.from.map(|d| d.0).unwrap_or(0),
                self.until.map(|d| d.0).unwrap_or(duration_ns),
            ),
            _ => (0, duration_ns),
        }
    }

    /// Checks that exactly one form is given with the fields that go with it. Returns the
    /// field to point at and the message.
    pub fn validate(&self, duration_ns: Nanos) -> Result<(), (&'static str, String)> {
        let forms = [
            self.metric.is_some(),
            self.eventually.is_some(),
            self.never.is_some(),
            self.sometimes.is_some(),
        ];
        let n = forms.iter().filter(|x| **x).count();
        if n != 1 {
            return Err((
                "assert",
                format!(
                    "an [[assert]] needs exactly one of metric, eventually, never or sometimes (found {n}); split it into several [[assert]] tables"
                ),
            ));
        }
        let stray = |field: &'static str, present: bool, form: &str| {
            if present {
                Err((
                    field,
                    format!("`{field}` does not go with {form}; remove it"),
                ))
            } else {
                Ok(())
            }
        };
        let form = self.form();
        let end = |name: &'static str, t: Nanos| {
            if t > duration_ns {
                Err((
                    name,
                    format!(
                        "the assertion's window ends at {}, after the run ({}); shorten it or lengthen duration",
                        fmt_ns(t),
                        fmt_ns(duration_ns)
                    ),
                ))
            } else {
                Ok(())
            }
        };
        match form {
            AssertionForm::Metric => {
                check_range(self.min, self.max).map_err(|m| ("metric", m))?;
                stray("after", self.after.is_some(), "metric")?;
                stray("within", self.within.is_some(), "metric")?;
                stray("from", self.from.is_some(), "metric")?;
                stray("until", self.until.is_some(), "metric")?;
            }
            AssertionForm::Eventually => {
                stray("per", self.per.is_some(), "eventually")?;
                stray("from", self.from.is_some(), "eventually (use after)")?;
                stray("until", self.until.is_some(), "eventually (use within)")?;
                stray(
                    "min",
                    self.min.is_some(),
                    "eventually (put it in the condition)",
                )?;
                stray(
                    "max",
                    self.max.is_some(),
                    "eventually (put it in the condition)",
                )?;
                let Some(w) = self.within else {
                    return Err((
                        "eventually",
                        "eventually needs within = \"...\": how long after `after` the condition may take".into(),
                    ));
                };
                if w.0 == 0 {
                    return Err(("within", "within must be above zero".into()));
                }
                end("within", self.window(duration_ns).1)?;
            }
            AssertionForm::Never | AssertionForm::Sometimes => {
                let name = if form == AssertionForm::Never {
                    "never"
                } else {
                    "sometimes"
                };
                stray("per", self.per.is_some(), name)?;
                stray("after", self.after.is_some(), name)?;
                stray("within", self.within.is_some(), name)?;
                stray("min", self.min.is_some(), "a condition's table")?;
                stray("max", self.max.is_some(), "a condition's table")?;
                if form == AssertionForm::Sometimes {
                    stray("from", self.from.is_some(), name)?;
                    stray("until", self.until.is_some(), name)?;
                }
                let (from, until) = self.window(duration_ns);
                if from >= until {
                    return Err((
                        "until",
                        format!(
                            "the window from {} until {} is empty; make until later than from",
                            fmt_ns(from),
                            fmt_ns(until)
                        ),
                    ));
                }
                end("until", until)?;
            }
        }
        if let Some(c) = self.condition() {
            c.validate("").map_err(|m| {
                let field = match form {
                    AssertionForm::Eventually => "eventually",
                    AssertionForm::Never => "never",
                    _ => "sometimes",
                };
                (field, m)
            })?;
        }
        Ok(())
    }
}

/// Metric assertions (`[[assert]] metric = ...`), judged on a run's final metrics. The
/// algorithm registry calls this once the family has added its own metrics (a ratio such as
/// `lock.watch_messages_per_handover` is computed after the simulation ends).
pub fn judge_metric_asserts(
    asserts: &[Assertion],
    metrics: &BTreeMap<String, f64>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let value = |name: &str| -> Result<f64, String> {
        match metrics.get(name) {
            Some(v) => Ok(*v),
            // The engine's operation counters exist from the start, at 0.
            None if name.starts_with("ops.") => Ok(0.0),
            None => Err(format!(
                "metric `{name}` was not recorded in this run (recorded: {})",
                metrics.keys().cloned().collect::<Vec<_>>().join(", ")
            )),
        }
    };
    for a in asserts {
        if a.form() != AssertionForm::Metric {
            continue;
        }
        let label = a.label();
        let v = value(a.metric.as_deref().unwrap_or_default()).and_then(|v| match &a.per {
            None => Ok(v),
            Some(p) => value(p).and_then(|d| {
                if d == 0.0 {
                    Err(format!(
                        "`{p}` is 0 in this run, so `per` has nothing to divide by"
                    ))
                } else {
                    Ok(v / d)
                }
            }),
        });
        let msg = match v {
            Err(e) => format!("assertion `{label}` cannot be judged: {e}"),
            Ok(v) if a.min.is_some_and(|lo| v < lo) || a.max.is_some_and(|hi| v > hi) => {
                format!("assertion `{label}` failed: the value is {}", fmt_value(v))
            }
            Ok(_) => continue,
        };
        out.push(Finding::new(msg).kind(ViolationKind::Assertion));
    }
    out
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// How a `sometimes` assertion fared on one run, for the sweep to judge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SometimesResult {
    /// The assertion's name.
    pub name: String,
    /// Whether its condition held at some moment of this run.
    pub held: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond_role(r: &str) -> Condition {
        Condition {
            role: Some(r.into()),
            ..Condition::default()
        }
    }

    #[test]
    fn exactly_one_form() {
        let a = Assertion::default();
        assert!(a.validate(10).unwrap_err().1.contains("exactly one"));
        let a = Assertion {
            metric: Some("net.sent".into()),
            never: Some(cond_role("leader")),
            max: Some(3.0),
            ..Assertion::default()
        };
        assert!(a.validate(10).unwrap_err().1.contains("found 2"));
    }

    #[test]
    fn windows_and_labels() {
        let a = Assertion {
            eventually: Some(cond_role("leader")),
            after: Some(Duration(6)),
            within: Some(Duration(5)),
            ..Assertion::default()
        };
        assert_eq!(a.validate(20), Ok(()));
        assert_eq!(a.window(20), (6, 11));
        assert!(a.validate(10).unwrap_err().1.contains("after the run"));
        let m = Assertion {
            metric: Some("net.sent".into()),
            per: Some("ops.ok".into()),
            max: Some(30.0),
            ..Assertion::default()
        };
        assert_eq!(m.label(), "net.sent per ops.ok <= 30");
        let bad = Assertion {
            metric: Some("x".into()),
            min: Some(3.0),
            max: Some(1.0),
            ..Assertion::default()
        };
        assert!(bad.validate(10).unwrap_err().1.contains("swap"));
    }
}
