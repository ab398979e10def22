//! The primary's lease, on the primary's own clock.
//!
//! A lease is backed by one heartbeat: it starts when the heartbeat was *sent* (so it can only
//! end earlier in true time than the view service's copy, which starts when the heartbeat
//! arrived) and lasts `lease` of the replica's monotonic clock (which drifts with the local
//! clock but ignores its steps, as `CLOCK_MONOTONIC` does). It is measured twice, and ends at
//! the earlier of the two: by a timer set when the heartbeat left, so that the lease ends at
//! its true time even if nothing else happens, and by the monotonic reading at the start of
//! every callback, so that a replica that was paused past its deadline sees at once, on its
//! first callback after resuming, that the lease is gone (its timer waited with it and comes
//! later in its queue).

use std::collections::BTreeMap;

use sim_core::time::Nanos;
use sim_core::Ctx;

use super::msg::Msg;

/// Timer tags at or above this are lease timers; the low bits are the heartbeat number.
pub const LEASE_TIMER: u64 = 1 << 60;

/// A replica's lease.
#[derive(Clone, Debug, Default)]
pub struct Lease {
    /// Heartbeats sent whose lease timer is still running: number -> local send time.
    sent: BTreeMap<u64, Nanos>,
    /// The granted heartbeat backing the lease, and its deadline on the local clock.
    held: Option<(u64, Nanos)>,
}

impl Lease {
    /// A heartbeat `ping` leaves now: start its lease timer.
    pub fn sent(&mut self, ctx: &mut Ctx<'_, Msg>, ping: u64, lease_ns: Nanos) {
        self.sent.insert(ping, ctx.now_monotonic());
        ctx.set_timer(lease_ns, LEASE_TIMER | ping);
    }

    /// The view service granted the lease of heartbeat `ping`. A grant that arrives after
    /// that heartbeat's lease already ran out (by its timer or by the clock) grants nothing.
    pub fn granted(&mut self, ping: u64, lease_ns: Nanos, now_mono: Nanos) {
        let Some(&at) = self.sent.get(&ping) else {
            return;
        };
        if self.held.is_none_or(|(p, _)| p < ping) && now_mono < at + lease_ns {
            self.held = Some((ping, at + lease_ns));
        }
    }

    /// Heartbeat `ping`'s lease timer fired: if it backed the lease, the lease is over.
    pub fn timer(&mut self, ping: u64) {
        self.sent.remove(&ping);
        if self.held.is_some_and(|(p, _)| p == ping) {
            self.held = None;
        }
        debug_assert!(self.held.is_none_or(|(p, _)| self.sent.contains_key(&p)));
    }

    /// Ends the lease if the local clock has reached its deadline.
    pub fn refresh(&mut self, now_mono: Nanos) {
        if self.held.is_some_and(|(_, deadline)| now_mono >= deadline) {
            self.held = None;
        }
    }

    /// Gives the lease up (the replica learned that it no longer leads).
    pub fn drop_lease(&mut self) {
        self.held = None;
    }

    /// Whether the lease is held.
    pub fn valid(&self) -> bool {
        self.held.is_some()
    }
}
