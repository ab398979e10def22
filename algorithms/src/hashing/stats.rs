//! What the family measures: load balance of a placement and the keys a membership change
//! moves, against the ideal.

use super::placement::{KeySpace, Placement};

/// Balance of per-server loads, each divided by the server's weight first.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LoadStats {
    /// The largest load over the mean.
    pub max_over_mean: f64,
    /// The smallest load over the mean.
    pub min_over_mean: f64,
    /// Standard deviation over the mean (the coefficient of variation).
    pub cv: f64,
}

/// Balance of `loads[i] / weights[i]`.
pub fn load_stats(loads: &[f64], weights: &[f64]) -> LoadStats {
    assert_eq!(loads.len(), weights.len());
    assert!(!loads.is_empty(), "balance of no server");
    let norm: Vec<f64> = loads.iter().zip(weights).map(|(l, w)| l / w).collect();
    let n = norm.len() as f64;
    let mean = norm.iter().sum::<f64>() / n;
    let var = norm.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    let max = norm.iter().fold(f64::MIN, |a, b| a.max(*b));
    let min = norm.iter().fold(f64::MAX, |a, b| a.min(*b));
    if mean <= 0.0 {
        return LoadStats {
            max_over_mean: 1.0,
            min_over_mean: 1.0,
            cv: 0.0,
        };
    }
    LoadStats {
        max_over_mean: max / mean,
        min_over_mean: min / mean,
        cv: libm::sqrt(var) / mean,
    }
}

/// The number of keys of the key space each member of `p` owns, in member order, and the
/// mean lookup cost in steps.
pub fn key_loads(p: &Placement, keys: &KeySpace) -> (Vec<f64>, f64) {
    let members = p.members();
    let mut loads = vec![0.0; members.len()];
    let mut steps = 0u64;
    for (i, h) in keys.hashes.iter().enumerate() {
        let (owner, s) = p.owner(i, *h);
        steps += u64::from(s);
        let at = members.binary_search(&owner).expect("owners are members");
        loads[at] += 1.0;
    }
    (loads, steps as f64 / keys.len().max(1) as f64)
}

/// What one membership change did to the key space.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Movement {
    /// Keys whose server changed.
    pub moved: usize,
    /// Of those, keys that moved between two servers that are members both before and after
    /// (a minimal scheme moves none: keys leave only departing servers and go only to
    /// joining ones).
    pub unnecessary: usize,
    /// Keys in the key space.
    pub keys: usize,
    /// The ideal fraction: removed/before + added/after (1/(n+1) for one join).
    pub ideal_fraction: f64,
}

impl Movement {
    /// The fraction of the key space that moved.
    pub fn fraction(&self) -> f64 {
        self.moved as f64 / self.keys.max(1) as f64
    }

    /// Moved over the ideal (1.0 is the best possible).
    pub fn over_ideal(&self) -> f64 {
        if self.ideal_fraction > 0.0 {
            self.fraction() / self.ideal_fraction
        } else if self.moved == 0 {
            1.0
        } else {
            f64::INFINITY
        }
    }
}

/// Compares the owners of every key under two placements.
pub fn movement(before: &Placement, after: &Placement, keys: &KeySpace) -> Movement {
    let (b, a) = (before.members(), after.members());
    let removed = b.iter().filter(|m| a.binary_search(m).is_err()).count();
    let added = a.iter().filter(|m| b.binary_search(m).is_err()).count();
    let mut moved = 0;
    let mut unnecessary = 0;
    for (i, h) in keys.hashes.iter().enumerate() {
        let (old, _) = before.owner(i, *h);
        let (new, _) = after.owner(i, *h);
        if old != new {
            moved += 1;
            if a.binary_search(&old).is_ok() && b.binary_search(&new).is_ok() {
                unnecessary += 1;
            }
        }
    }
    Movement {
        moved,
        unnecessary,
        keys: keys.len(),
        ideal_fraction: removed as f64 / b.len() as f64 + added as f64 / a.len() as f64,
    }
}
