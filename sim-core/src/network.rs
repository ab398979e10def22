//! The simulated network: per-message latency from a distribution, loss, duplication,
//! reordering, and the link state that partitions and clogging change.
//!
//! Every fault is an explicit, named option here; the engine asks this module what becomes of
//! each message and counts the answer in the fault coverage.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::rng::SimRng;
use crate::time::{Duration, Nanos, MS, SEC};

/// A probability from 0 to 1, refused with advice when out of range.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Probability(pub f64);

impl<'de> Deserialize<'de> for Probability {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(0.0..=1.0).contains(&v) || v.is_nan() {
            return Err(serde::de::Error::custom(format!(
                "probability {v} is out of range; write a number from 0 to 1 (0.01 means 1%)"
            )));
        }
        Ok(Probability(v))
    }
}

/// The longest latency any distribution may produce: a bound so that a long tail cannot stall
/// a run past its end by accident.
pub const LATENCY_CAP_NS: Nanos = 60 * SEC;

/// How long a message takes from send to delivery.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum Latency {
    /// Always the same.
    Constant {
        /// The latency.
        value: Duration,
    },
    /// Uniform between min and max.
    Uniform {
        /// Lower bound.
        min: Duration,
        /// Upper bound.
        max: Duration,
    },
    /// Normal, cut off below at `min` (default 0).
    Normal {
        /// Mean.
        mean: Duration,
        /// Standard deviation.
        stddev: Duration,
        /// Lower cut-off.
        #[serde(default)]
        min: Duration,
    },
    /// `min` plus an exponential with the given mean.
    Exponential {
        /// Mean of the exponential part.
        mean: Duration,
        /// Fixed part added to every draw.
        #[serde(default)]
        min: Duration,
    },
    /// Pareto (long-tailed): `scale / U^(1/shape)`; shape near 1 gives a heavy tail.
    Pareto {
        /// The minimum and most common latency.
        scale: Duration,
        /// Tail index; must be above 0 (1.5 to 3 are typical).
        shape: f64,
    },
    /// Mostly fast, rarely slow: the pattern FoundationDB's simulator found most bug-prone.
    Bimodal {
        /// Fast mode lower bound.
        fast_min: Duration,
        /// Fast mode upper bound.
        fast_max: Duration,
        /// Slow mode lower bound.
        slow_min: Duration,
        /// Slow mode upper bound.
        slow_max: Duration,
        /// Chance that a message takes the slow mode.
        slow_probability: Probability,
    },
}

impl Default for Latency {
    fn default() -> Self {
        Latency::Uniform {
            min: Duration(MS),
            max: Duration(5 * MS),
        }
    }
}

impl Latency {
    /// Checks bounds that serde cannot (min above max, a non-positive shape).
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Latency::Uniform { min, max } if min > max => Err(format!(
                "latency min {} is above max {}; swap them",
                crate::time::fmt_ns(min.0),
                crate::time::fmt_ns(max.0)
            )),
            Latency::Bimodal {
                fast_min, fast_max, ..
            } if fast_min > fast_max => Err("latency fast_min is above fast_max; swap them".into()),
            Latency::Bimodal {
                slow_min, slow_max, ..
            } if slow_min > slow_max => Err("latency slow_min is above slow_max; swap them".into()),
            Latency::Pareto { shape, .. } if !(*shape > 0.0 && shape.is_finite()) => Err(format!(
                "pareto shape {shape} must be a positive number (1.5 to 3 are typical)"
            )),
            _ => Ok(()),
        }
    }

    /// Draws one latency. The float maths goes through `libm` (pure Rust, the same bits on every
    /// platform and toolchain): the platform's `ln`, `cos` and `powf` may differ in their last
    /// bits, and one differing bit can change a latency, hence the whole run.
    pub fn sample(&self, rng: &mut SimRng) -> Nanos {
        let ns = match self {
            Latency::Constant { value } => value.0,
            Latency::Uniform { min, max } => uniform(rng, min.0, max.0),
            Latency::Normal { mean, stddev, min } => {
                // Box-Muller; one draw is enough for us.
                let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let u2: f64 = rng.random();
                let z =
                    libm::sqrt(-2.0 * libm::log(u1)) * libm::cos(2.0 * std::f64::consts::PI * u2);
                let v = mean.0 as f64 + z * stddev.0 as f64;
                (v.max(min.0 as f64)) as Nanos
            }
            Latency::Exponential { mean, min } => {
                let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                min.0
                    .saturating_add((-(mean.0 as f64) * libm::log(u)) as Nanos)
            }
            Latency::Pareto { scale, shape } => {
                let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
                let v = scale.0 as f64 / libm::pow(u, 1.0 / shape);
                if v.is_finite() {
                    v as Nanos
                } else {
                    LATENCY_CAP_NS
                }
            }
            Latency::Bimodal {
                fast_min,
                fast_max,
                slow_min,
                slow_max,
                slow_probability,
            } => {
                if rng.random::<f64>() < slow_probability.0 {
                    uniform(rng, slow_min.0, slow_max.0)
                } else {
                    uniform(rng, fast_min.0, fast_max.0)
                }
            }
        };
        ns.min(LATENCY_CAP_NS)
    }
}

fn uniform(rng: &mut SimRng, lo: Nanos, hi: Nanos) -> Nanos {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// The scenario's `[network]` table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkConfig {
    /// Latency of every message.
    pub latency: Latency,
    /// Chance that a message is lost.
    pub loss: Probability,
    /// Chance that a message is delivered twice (the copy with its own latency).
    pub duplicate: Probability,
    /// Chance that a message is held back by up to `reorder_delay`, so later ones overtake it.
    pub reorder: Probability,
    /// The longest hold-back of a reordered message.
    pub reorder_delay: Duration,
}

/// What the network decided for one message at send time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendFate {
    /// Dropped because the link is cut by a partition.
    Cut,
    /// Dropped by random loss.
    Lost,
    /// Delivered after `delay`, and a duplicate after `dup_delay` if set; `reordered` when the
    /// reorder hold-back applied.
    Deliver {
        /// Delay of the message.
        delay: Nanos,
        /// Delay of a duplicate copy, if any.
        dup_delay: Option<Nanos>,
        /// Whether the message was held back to reorder it.
        reordered: bool,
    },
}

/// Link state: which directed links are cut, and which nodes are clogged.
#[derive(Clone, Debug)]
pub struct Links {
    nodes_count: usize,
    cut: Vec<bool>,
    cut_count: usize,
    clogged: Vec<bool>,
}

impl Links {
    /// All links up for `nodes_count` nodes (servers and clients).
    pub fn new(nodes_count: usize) -> Self {
        Links {
            nodes_count,
            cut: vec![false; nodes_count * nodes_count],
            cut_count: 0,
            clogged: vec![false; nodes_count],
        }
    }

    /// Whether messages from `from` to `to` are dropped.
    #[inline]
    pub fn is_cut(&self, from: usize, to: usize) -> bool {
        self.cut_count != 0 && self.cut[from * self.nodes_count + to]
    }

    /// Cuts or restores one directed link.
    pub fn set_cut(&mut self, from: usize, to: usize, cut: bool) {
        let i = from * self.nodes_count + to;
        if self.cut[i] != cut {
            self.cut[i] = cut;
            if cut {
                self.cut_count += 1;
            } else {
                self.cut_count -= 1;
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.iter_mut().for_each(|c| *c = false);
        self.cut_count = 0;
    }

    /// Whether any link is cut.
    pub fn any_cut(&self) -> bool {
        self.cut_count != 0
    }

    /// Whether a node's traffic is held back.
    #[inline]
    pub fn is_clogged(&self, node: usize) -> bool {
        self.clogged[node]
    }

    /// Clogs or unclogs a node.
    pub fn set_clogged(&mut self, node: usize, clogged: bool) {
        self.clogged[node] = clogged;
    }

    /// The directed links that are cut, in order.
    pub fn cut_links(&self) -> Vec<(usize, usize)> {
        let n = self.nodes_count;
        (0..n * n)
            .filter(|i| self.cut[*i])
            .map(|i| (i / n, i % n))
            .collect()
    }
}

/// Decides the fate of one message.
pub fn decide(
    cfg: &NetworkConfig,
    links: &Links,
    rng: &mut SimRng,
    from: usize,
    to: usize,
) -> SendFate {
    if links.is_cut(from, to) {
        return SendFate::Cut;
    }
    if cfg.loss.0 > 0.0 && rng.random::<f64>() < cfg.loss.0 {
        return SendFate::Lost;
    }
    let mut delay = cfg.latency.sample(rng);
    let mut reordered = false;
    if cfg.reorder.0 > 0.0 && rng.random::<f64>() < cfg.reorder.0 {
        delay += uniform(rng, 0, cfg.reorder_delay.0);
        reordered = true;
    }
    let dup_delay = if cfg.duplicate.0 > 0.0 && rng.random::<f64>() < cfg.duplicate.0 {
        Some(cfg.latency.sample(rng))
    } else {
        None
    };
    SendFate::Deliver {
        delay,
        dup_delay,
        reordered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::{stream, Stream};

    #[test]
    fn cut_link_drops_everything() {
        let mut links = Links::new(3);
        links.set_cut(0, 1, true);
        let cfg = NetworkConfig::default();
        let mut rng = stream(1, Stream::Network);
        for _ in 0..100 {
            assert_eq!(decide(&cfg, &links, &mut rng, 0, 1), SendFate::Cut);
            assert!(matches!(
                decide(&cfg, &links, &mut rng, 1, 0),
                SendFate::Deliver { .. }
            ));
        }
        links.heal();
        assert!(!links.any_cut());
    }

    #[test]
    fn loss_rate_is_respected() {
        let links = Links::new(2);
        let cfg = NetworkConfig {
            loss: Probability(0.3),
            ..Default::default()
        };
        let mut rng = stream(7, Stream::Network);
        let lost = (0..10_000)
            .filter(|_| decide(&cfg, &links, &mut rng, 0, 1) == SendFate::Lost)
            .count();
        assert!(
            (2_700..3_300).contains(&lost),
            "lost {lost} of 10000 at p=0.3"
        );
    }

    #[test]
    fn distributions_stay_in_bounds() {
        let mut rng = stream(3, Stream::Network);
        let u = Latency::Uniform {
            min: Duration(MS),
            max: Duration(2 * MS),
        };
        let b = Latency::Bimodal {
            fast_min: Duration(MS),
            fast_max: Duration(MS),
            slow_min: Duration(SEC),
            slow_max: Duration(SEC),
            slow_probability: Probability(0.1),
        };
        let mut slow = 0;
        for _ in 0..10_000 {
            let x = u.sample(&mut rng);
            assert!((MS..=2 * MS).contains(&x));
            if b.sample(&mut rng) == SEC {
                slow += 1;
            }
        }
        assert!((800..1200).contains(&slow), "slow {slow}");
        let p = Latency::Pareto {
            scale: Duration(MS),
            shape: 1.5,
        };
        let xs: Vec<Nanos> = (0..10_000).map(|_| p.sample(&mut rng)).collect();
        assert!(xs.iter().all(|x| *x >= MS && *x <= LATENCY_CAP_NS));
        assert!(xs.iter().any(|x| *x > 20 * MS), "pareto has a tail");
    }
}
