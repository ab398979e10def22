//! Metrics that algorithms and the engine record during a run: counters, distributions and
//! per-node time series. Keys are static names kept in sorted maps, so output order is fixed.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::process::NodeId;
use crate::time::Nanos;

/// One point of a per-node time series.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct SeriesPoint {
    /// True time.
    pub time_ns: Nanos,
    /// The node.
    pub node: NodeId,
    /// The value.
    pub value: f64,
}

/// Everything recorded during a run.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    counters: BTreeMap<&'static str, f64>,
    samples: BTreeMap<&'static str, Vec<f64>>,
    series: BTreeMap<&'static str, Vec<SeriesPoint>>,
}

impl Metrics {
    /// Adds to a counter.
    #[inline]
    pub fn count(&mut self, name: &'static str, by: f64) {
        *self.counters.entry(name).or_insert(0.0) += by;
    }

    /// Records a sample of a distribution.
    pub fn observe(&mut self, name: &'static str, value: f64) {
        self.samples.entry(name).or_default().push(value);
    }

    /// Records a time-series point.
    pub fn series(&mut self, name: &'static str, time_ns: Nanos, node: NodeId, value: f64) {
        self.series.entry(name).or_default().push(SeriesPoint {
            time_ns,
            node,
            value,
        });
    }

    /// A counter's value (0 when never counted).
    pub fn counter(&self, name: &str) -> f64 {
        self.counters.get(name).copied().unwrap_or(0.0)
    }

    /// The flat summary: counters as they are, distributions as `name.count`, `name.mean`,
    /// `name.p50`, `name.p99`, `name.max`.
    pub fn summary(&self) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = self
            .counters
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        for (k, v) in &self.samples {
            for (suffix, value) in summarize(v) {
                out.insert(format!("{k}.{suffix}"), value);
            }
        }
        out
    }

    /// The time series, for reports.
    pub fn all_series(&self) -> BTreeMap<String, Vec<SeriesPoint>> {
        self.series
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// The raw samples of a distribution, for reports.
    pub fn samples(&self, name: &str) -> &[f64] {
        self.samples.get(name).map(|v| v.as_slice()).unwrap_or(&[])
    }
}

/// count, mean, p50, p99 and max of a sample (empty gives count 0 only).
pub fn summarize(values: &[f64]) -> Vec<(&'static str, f64)> {
    if values.is_empty() {
        return vec![("count", 0.0)];
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
    vec![
        ("count", v.len() as f64),
        ("mean", v.iter().sum::<f64>() / v.len() as f64),
        ("p50", pct(0.5)),
        ("p99", pct(0.99)),
        ("max", v[v.len() - 1]),
    ]
}
