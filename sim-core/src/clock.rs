//! Node clocks: each node reads a local clock with an offset and a drift from true time.
//!
//! `local(t) = base_local + (t - base_true) * (1 + drift)`. A drift change or a step rebases
//! the clock at the current true time, so the clock stays piecewise linear and continuous
//! except at steps. Timers are measured by the node's clock rate when they are set (like a
//! monotonic OS timer): a step does not move a pending timer, a drift does stretch it.

use crate::time::Nanos;

/// One node's clock.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clock {
    base_true: Nanos,
    base_local: i128,
    drift: f64,
    /// The sum of every step so far: the monotonic reading leaves them out.
    stepped: i128,
}

impl Clock {
    /// A clock reading `offset_ns` at true time 0 and running `1 + drift` times as fast.
    pub fn new(offset_ns: i64, drift: f64) -> Self {
        Clock {
            base_true: 0,
            base_local: offset_ns as i128,
            drift,
            stepped: 0,
        }
    }

    fn local_exact(&self, t: Nanos) -> i128 {
        let dt = t.saturating_sub(self.base_true) as f64;
        self.base_local + (dt * (1.0 + self.drift)).round() as i128
    }

    /// The local reading at true time `t`; readings below zero read as zero.
    pub fn local(&self, t: Nanos) -> Nanos {
        self.local_exact(t).clamp(0, u64::MAX as i128) as Nanos
    }

    /// The monotonic reading at true time `t` (like `CLOCK_MONOTONIC`): it runs at the
    /// clock's rate, drift included, but steps do not move it. Starts at the initial offset.
    pub fn monotonic(&self, t: Nanos) -> Nanos {
        (self.local_exact(t) - self.stepped).clamp(0, u64::MAX as i128) as Nanos
    }

    /// The current drift (0.01 = runs 1% fast).
    pub fn drift(&self) -> f64 {
        self.drift
    }

    /// The offset from true time at `t`, in nanoseconds.
    pub fn offset_at(&self, t: Nanos) -> i64 {
        (self.local_exact(t) - t as i128) as i64
    }

    /// Changes the drift from true time `t` on.
    pub fn set_drift(&mut self, t: Nanos, drift: f64) {
        self.base_local = self.local_exact(t);
        self.base_true = t;
        self.drift = drift;
    }

    /// Jumps the clock by `by_ns` (negative = back) at true time `t`.
    pub fn step(&mut self, t: Nanos, by_ns: i64) {
        self.base_local = self.local_exact(t) + by_ns as i128;
        self.base_true = t;
        self.stepped += by_ns as i128;
    }

    /// How much true time passes while this clock advances `local_ns`.
    pub fn true_span(&self, local_ns: Nanos) -> Nanos {
        let rate = 1.0 + self.drift;
        if rate <= 0.0 {
            return u64::MAX / 4;
        }
        (local_ns as f64 / rate).ceil() as Nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MS, SEC};

    #[test]
    fn offset_and_drift() {
        let c = Clock::new(200 * MS as i64, 0.01);
        assert_eq!(c.local(0), 200 * MS);
        assert_eq!(c.local(SEC), 200 * MS + SEC + 10 * MS);
        // A 1 s local timer fires after 1/1.01 s of true time.
        assert_eq!(c.true_span(SEC), 990_099_010);
    }

    #[test]
    fn steps_and_drift_changes_rebase() {
        let mut c = Clock::new(0, 0.0);
        c.step(SEC, -(500 * MS as i64));
        assert_eq!(c.local(SEC), 500 * MS);
        assert_eq!(c.local(2 * SEC), 1_500 * MS);
        c.set_drift(2 * SEC, 1.0);
        assert_eq!(c.local(3 * SEC), 3_500 * MS);
        assert_eq!(c.offset_at(3 * SEC), 500 * MS as i64);
        // The monotonic reading ignored the step back.
        assert_eq!(c.monotonic(3 * SEC), 4 * SEC);
    }
}
