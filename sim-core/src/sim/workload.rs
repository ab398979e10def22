//! The workload generator: the operations clients are asked to perform.

use std::collections::BTreeMap;

use rand::Rng;

use crate::process::Op;
use crate::rng::SimRng;
use crate::scenario::WorkloadConfig;
use crate::time::Nanos;

/// Generates client operations from the `[workload]` table.
pub(crate) struct WorkloadGen {
    pub(crate) cfg: WorkloadConfig,
    pub(crate) mix: Vec<(String, f64)>,
    pub(crate) total_weight: f64,
    pub(crate) next_value: u64,
    pub(crate) last_written: BTreeMap<Option<String>, serde_json::Value>,
}

impl WorkloadGen {
    pub(crate) fn new(cfg: WorkloadConfig) -> Self {
        let mix: Vec<(String, f64)> = cfg
            .mix
            .iter()
            .filter(|(_, w)| **w > 0.0)
            .map(|(k, w)| (k.clone(), *w))
            .collect();
        let total_weight = mix.iter().map(|(_, w)| w).sum();
        WorkloadGen {
            cfg,
            mix,
            total_weight,
            next_value: 0,
            last_written: BTreeMap::new(),
        }
    }

    pub(crate) fn think(&self, rng: &mut SimRng) -> Nanos {
        let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        (-(self.cfg.think.0 as f64) * libm::log(u)) as Nanos
    }

    pub(crate) fn fresh_value(&mut self, rng: &mut SimRng) -> serde_json::Value {
        if self.cfg.values == 0 {
            self.next_value += 1;
            serde_json::Value::from(self.next_value)
        } else {
            serde_json::Value::from(rng.random_range(0..self.cfg.values))
        }
    }

    pub(crate) fn next(&mut self, rng: &mut SimRng) -> Op {
        let mut x = rng.random::<f64>() * self.total_weight;
        let mut f = self.mix[self.mix.len() - 1].0.clone();
        for (name, w) in &self.mix {
            if x < *w {
                f = name.clone();
                break;
            }
            x -= w;
        }
        let key = if self.cfg.keys == 0 {
            None
        } else {
            Some(format!("k{}", rng.random_range(0..self.cfg.keys)))
        };
        let value = match f.as_str() {
            // Reads carry no argument.
            "read" | "get" | "dequeue" | "acquire" | "release" => serde_json::Value::Null,
            "cas" => {
                let from = match self.last_written.get(&key) {
                    Some(v) if rng.random_bool(0.7) => v.clone(),
                    _ => self.fresh_value(rng),
                };
                let to = self.fresh_value(rng);
                self.last_written.insert(key.clone(), to.clone());
                serde_json::json!([from, to])
            }
            // Writes and everything else carry a value (fresh by default).
            _ => {
                let v = self.fresh_value(rng);
                self.last_written.insert(key.clone(), v.clone());
                v
            }
        };
        Op { f, key, value }
    }
}
