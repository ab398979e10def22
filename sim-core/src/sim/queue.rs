//! The event queue: events ordered by (time, insertion sequence), kept in a slab.

use std::cmp::{Ordering, Reverse};

use super::*;
use crate::faults::FaultAction;
use crate::process::{Message, NodeId};
use crate::time::Nanos;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueKey {
    pub(crate) time: Nanos,
    pub(crate) seq: u64,
    pub(crate) slot: u32,
}

impl Ord for QueueKey {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.time, self.seq).cmp(&(other.time, other.seq))
    }
}
impl PartialOrd for QueueKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub(crate) enum Event<M> {
    Start(NodeId),
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: M,
        id: u64,
    },
    Timer {
        node: NodeId,
        epoch: u32,
        id: u64,
        tag: u64,
    },
    Invoke(NodeId),
    Fault(FaultAction),
    HealIf(u64),
    DriftReset(NodeId, f64),
    NemesisTick,
    Quiet,
    /// A scripted fault, by its index in the scenario's `[[faults]]`.
    Scripted(usize),
    /// The end of the liveness phase: progress must have been made by now.
    LivenessDeadline,
    /// The end of an `eventually` assertion's window.
    AssertDeadline(usize),
}

impl<M: Message> World<M> {
    pub(crate) fn push(&mut self, time: Nanos, ev: Event<M>) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = Some(ev);
                s
            }
            None => {
                self.slab.push(Some(ev));
                (self.slab.len() - 1) as u32
            }
        };
        self.seq += 1;
        self.queue.push(Reverse(QueueKey {
            time,
            seq: self.seq,
            slot,
        }));
    }

    pub(crate) fn pop(&mut self) -> Option<(Nanos, Event<M>)> {
        let Reverse(k) = self.queue.pop()?;
        let ev = self.slab[k.slot as usize]
            .take()
            .expect("queued slot holds an event");
        self.free.push(k.slot);
        Some((k.time, ev))
    }

    pub(crate) fn peek_time(&self) -> Option<Nanos> {
        self.queue.peek().map(|Reverse(k)| k.time)
    }
}
