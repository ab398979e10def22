//! The hash ring with virtual nodes (Karger et al., 1997; Dynamo): each server owns
//! `round(vnodes x weight)` points on a 64-bit circle, and a key belongs to the owner of the
//! first point at or after the key's hash (wrapping). Lookup is a binary search over the
//! sorted points, O(log(points)).

use super::hash::HashFn;

/// A server on the ring: its node id and weight (1.0 is an ordinary server).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RingMember {
    /// The server's node id.
    pub node: usize,
    /// Its weight: it gets `round(vnodes x weight)` points (at least one).
    pub weight: f64,
}

/// A ring: sorted points, each owned by a server.
#[derive(Clone, Debug)]
pub struct Ring {
    /// (position, owner node), sorted by position then owner.
    points: Vec<(u64, usize)>,
}

impl Ring {
    /// Builds a ring over `members` with `vnodes` points per unit of weight.
    pub fn new(members: &[RingMember], vnodes: usize, salt: u64, hash: HashFn) -> Ring {
        let mut points = Vec::new();
        for m in members {
            let count = ((vnodes as f64 * m.weight).round() as usize).max(1);
            for i in 0..count {
                points.push((hash.point(salt, m.node, i), m.node));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no point.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The index of the first point at or after `h` (wrapping to 0), and the comparisons the
    /// binary search made.
    #[inline]
    pub fn successor(&self, h: u64) -> (usize, u32) {
        assert!(!self.points.is_empty(), "lookup on an empty ring");
        // A binary search, counted: the number of halvings is the lookup cost.
        let (mut lo, mut hi) = (0usize, self.points.len());
        let mut steps = 0;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            steps += 1;
            if self.points[mid].0 < h {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        (if lo == self.points.len() { 0 } else { lo }, steps)
    }

    /// The owner of point `i`.
    #[inline]
    pub fn owner_of_point(&self, i: usize) -> usize {
        self.points[i].1
    }

    /// The owner of hash `h` and the lookup's steps.
    #[inline]
    pub fn lookup(&self, h: u64) -> (usize, u32) {
        let (i, steps) = self.successor(h);
        (self.points[i].1, steps)
    }

    /// Each point's arc as (start fraction, end fraction, owner): the point owns the hash
    /// space from the previous point (exclusive) to itself (inclusive). The arc that wraps
    /// past zero is split in two.
    pub fn arcs(&self) -> Vec<(f64, f64, usize)> {
        let frac = |x: u64| x as f64 / 18_446_744_073_709_551_616.0;
        let mut out = Vec::with_capacity(self.points.len() + 1);
        let Some(last) = self.points.last() else {
            return out;
        };
        out.push((0.0, frac(self.points[0].0), self.points[0].1));
        for w in self.points.windows(2) {
            out.push((frac(w[0].0), frac(w[1].0), w[1].1));
        }
        out.push((frac(last.0), 1.0, self.points[0].1));
        out
    }

    /// Each point as (position as a fraction of the circle, owner), in ring order.
    pub fn positions(&self) -> impl Iterator<Item = (f64, usize)> + '_ {
        self.points
            .iter()
            .map(|(p, o)| (*p as f64 / 18_446_744_073_709_551_616.0, *o))
    }

    /// The fraction of the hash space each member owns, in member order of `members`.
    pub fn shares(&self, members: &[usize]) -> Vec<f64> {
        let mut by_node = std::collections::BTreeMap::new();
        for (a, b, owner) in self.arcs() {
            *by_node.entry(owner).or_insert(0.0) += b - a;
        }
        members
            .iter()
            .map(|m| by_node.get(m).copied().unwrap_or(0.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_the_first_point_at_or_after_the_hash() {
        let members: Vec<RingMember> = (0..5)
            .map(|node| RingMember { node, weight: 1.0 })
            .collect();
        let ring = Ring::new(&members, 20, 7, HashFn::Stable);
        assert_eq!(ring.len(), 100);
        for h in [0u64, 1, u64::MAX / 3, u64::MAX - 1, u64::MAX] {
            let (owner, steps) = ring.lookup(h);
            let scan = ring
                .points
                .iter()
                .find(|p| p.0 >= h)
                .unwrap_or(&ring.points[0]);
            assert_eq!(owner, scan.1);
            assert!(steps <= 8, "binary search, not a scan: {steps} steps");
        }
        let total: f64 = ring.shares(&[0, 1, 2, 3, 4]).iter().sum();
        assert!((total - 1.0).abs() < 1e-9);
    }

    #[test]
    fn weights_scale_the_points() {
        let members = [
            RingMember {
                node: 0,
                weight: 1.0,
            },
            RingMember {
                node: 1,
                weight: 2.0,
            },
        ];
        let ring = Ring::new(&members, 10, 1, HashFn::Stable);
        assert_eq!(ring.len(), 30);
    }
}
