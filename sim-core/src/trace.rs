//! The trace: every event of a run. The hash is always computed (it is cheap and proves
//! determinism); the events themselves are kept only when asked for.
//!
//! A kept trace is bounded in memory like a run is bounded in events: once keeping one more
//! event would pass `bytes_max` (default [`TRACE_BYTES_MAX_DEFAULT`]), the trace stops keeping
//! events, ends the kept ones with a [`TraceKind::Truncated`] event that says why, and
//! [`Trace::full`] tells the engine to stop the run with verdict unknown. Without a bound a
//! long run grows until the kernel kills it. A kept event costs 112 bytes (80 for the
//! [`TraceEvent`], 32 for its label's allocation; measured: 8,003,353 kept events of
//! scenarios/bench/flood.toml raise peak memory by 897 MB), and a run records about two per
//! event it processes (a delivery and the send it causes), so the default budget of 200 M
//! events would need some 45 GiB; the default bound stops at about 19 M kept events.

use serde::Serialize;

use crate::hash::StableHasher;
use crate::process::NodeId;
use crate::time::Nanos;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceKind {
    /// A node started or restarted.
    Start,
    /// A message left a node.
    Send,
    /// A message arrived and was handled.
    Deliver,
    /// A message was dropped by a partition.
    DropCut,
    /// A message was dropped by random loss.
    DropLoss,
    /// A message was dropped because its destination was down.
    DropDown,
    /// A message was duplicated by the network.
    Duplicate,
    /// A timer fired.
    Timer,
    /// A client was asked to perform an operation.
    Invoke,
    /// A client's operation completed.
    Complete,
    /// A fault was applied (partition, crash, pause, clock step, ...).
    Fault,
    /// A note from a node.
    Note,
    /// An invariant or check failed.
    Violation,
    /// The kept trace reached its memory bound and keeps no more events (the label says so).
    /// Kept only, never hashed: a run's hash does not depend on whether its trace is kept.
    Truncated,
}

impl TraceKind {
    fn code(self) -> u64 {
        self as u64 + 1
    }
}

/// One event, as written to `--trace FILE` (JSON Lines).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TraceEvent {
    /// True time.
    pub time_ns: Nanos,
    /// What happened.
    pub kind: TraceKind,
    /// The node it happened at (the sender for sends and drops).
    pub node: NodeId,
    /// The other node, for messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<NodeId>,
    /// The message label, timer tag, fault name or note.
    pub label: String,
    /// Message id, to pair sends with deliveries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<u64>,
}

/// The default bound on a kept trace's memory, 2 GiB: well under a laptop's memory, and
/// about 19 M kept events.
pub const TRACE_BYTES_MAX_DEFAULT: u64 = 2 << 30;

/// The running hash and, optionally, the kept events.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    hasher: StableHasher,
    events: Option<Vec<TraceEvent>>,
    count: u64,
    /// The bound on `kept_bytes`.
    bytes_max: u64,
    /// Estimated heap bytes of the kept events: the vector's capacity and the labels.
    kept_bytes: u64,
    /// Why the trace stopped keeping events, once it has.
    full: Option<String>,
}

/// Heap bytes a label of `len` bytes takes: the allocator's chunk (16-byte granules with an
/// 8-byte header, 32 bytes at least), nothing for an empty label.
fn label_bytes(len: usize) -> u64 {
    if len == 0 {
        0
    } else {
        ((len as u64 + 8).div_ceil(16) * 16).max(32)
    }
}

const EVENT_BYTES: u64 = std::mem::size_of::<TraceEvent>() as u64;

impl Trace {
    /// A trace that keeps its events when `keep` is true, within the default memory bound.
    pub fn new(keep: bool) -> Self {
        Trace::with_bytes_max(keep, TRACE_BYTES_MAX_DEFAULT)
    }

    /// A trace that keeps its events when `keep` is true, in at most `bytes_max` bytes.
    pub fn with_bytes_max(keep: bool, bytes_max: u64) -> Self {
        Trace {
            hasher: StableHasher::new(),
            events: if keep { Some(Vec::new()) } else { None },
            count: 0,
            bytes_max,
            kept_bytes: 0,
            full: None,
        }
    }

    /// Once the kept trace has reached its memory bound: why, in a sentence for the user.
    /// The engine should then stop the run with verdict unknown.
    pub fn full(&self) -> Option<&str> {
        self.full.as_deref()
    }

    /// Estimated heap bytes of the kept events (their vector's capacity and their labels), and
    /// of what was kept beside them for the report ([`Trace::charge`]).
    pub fn kept_bytes(&self) -> u64 {
        self.kept_bytes
    }

    /// Keeps one event within the bound, or marks the trace full.
    fn keep(&mut self, ev: TraceEvent) {
        let Some(events) = &mut self.events else {
            return;
        };
        if self.full.is_some() {
            return;
        }
        let label = label_bytes(ev.label.len());
        let mut grow = 0;
        if events.len() == events.capacity() {
            // Grow by hand, so that the vector's doubling cannot overshoot the bound: room for
            // as many more events like this one as the bound allows.
            let room = self.bytes_max.saturating_sub(self.kept_bytes) / (EVENT_BYTES + label);
            grow = (events.capacity() as u64).clamp(1024, 1 << 24).min(room);
        }
        let need = label + grow * EVENT_BYTES;
        if (events.len() == events.capacity() && grow == 0)
            || self.kept_bytes + need > self.bytes_max
        {
            self.truncate(ev.time_ns, ev.node);
            return;
        }
        events.reserve_exact(grow as usize);
        self.kept_bytes += need;
        events.push(ev);
    }

    /// Marks the kept trace full: a truncation marker ends it and says why.
    fn truncate(&mut self, time_ns: Nanos, node: NodeId) {
        let Some(events) = &mut self.events else {
            return;
        };
        let n = events.len();
        let message = format!(
            "the kept trace reached its memory bound of {} MiB after keeping {n} trace \
             entries, at {}; raise --trace-memory-max, run without --trace/--report, or shorten the run",
            self.bytes_max >> 20,
            crate::time::fmt_ns(time_ns)
        );
        // The marker takes one slot past the capacity: grown exactly, not doubled.
        events.reserve_exact(1);
        events.push(TraceEvent {
            time_ns,
            kind: TraceKind::Truncated,
            node,
            peer: None,
            label: message.clone(),
            msg_id: None,
        });
        self.full = Some(message);
    }

    /// Counts `bytes` kept beside the trace for the report (the timeline's state summaries)
    /// against the same memory bound, marking the trace full when they pass it.
    pub fn charge(&mut self, bytes: u64, time_ns: Nanos, node: NodeId) {
        if self.events.is_none() || self.full.is_some() {
            return;
        }
        if self.kept_bytes + bytes > self.bytes_max {
            self.truncate(time_ns, node);
            return;
        }
        self.kept_bytes += bytes;
    }

    /// Whether events are kept.
    #[inline]
    pub fn keeps(&self) -> bool {
        self.events.is_some()
    }

    /// Records an event.
    #[inline]
    pub fn record(
        &mut self,
        time_ns: Nanos,
        kind: TraceKind,
        node: NodeId,
        peer: Option<NodeId>,
        label: &str,
        msg_id: Option<u64>,
    ) {
        self.count += 1;
        let h = &mut self.hasher;
        h.write_u64(time_ns);
        h.write_u64(
            kind.code() | ((node as u64) << 8) | ((peer.map(|p| p as u64 + 1).unwrap_or(0)) << 32),
        );
        h.write_str(label);
        if self.events.is_some() {
            self.keep(TraceEvent {
                time_ns,
                kind,
                node,
                peer,
                label: label.to_string(),
                msg_id,
            });
        }
    }

    /// Records a note (hashed too, so that notes cannot differ silently).
    pub fn note(&mut self, time_ns: Nanos, node: NodeId, text: String) {
        self.record(time_ns, TraceKind::Note, node, None, &text, None);
    }

    /// Mixes extra data into the hash (history results, final states).
    pub fn mix(&mut self, word: u64) {
        self.hasher.write_u64(word);
    }

    /// Mixes a string into the hash.
    pub fn mix_str(&mut self, s: &str) {
        self.hasher.write_str(s);
    }

    /// Mixes a JSON value into the hash by structure (no text formatting on the hot path).
    pub fn mix_json(&mut self, v: &serde_json::Value) {
        use serde_json::Value;
        let h = &mut self.hasher;
        match v {
            Value::Null => h.write_u64(0xA0),
            Value::Bool(b) => h.write_u64(0xA1 + *b as u64),
            Value::Number(n) => {
                h.write_u64(0xA3);
                match (n.as_u64(), n.as_i64()) {
                    (Some(u), _) => h.write_u64(u),
                    (None, Some(i)) => h.write_u64(i as u64),
                    _ => h.write_u64(n.as_f64().unwrap_or(0.0).to_bits()),
                }
            }
            Value::String(s) => {
                h.write_u64(0xA4);
                h.write_str(s);
            }
            Value::Array(a) => {
                h.write_u64(0xA5);
                h.write_u64(a.len() as u64);
                for x in a {
                    self.mix_json(x);
                }
            }
            Value::Object(o) => {
                h.write_u64(0xA6);
                h.write_u64(o.len() as u64);
                for (k, x) in o {
                    self.hasher.write_str(k);
                    self.mix_json(x);
                }
            }
        }
    }

    /// The hash so far.
    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }

    /// How many events are kept (0 when none are).
    pub fn kept_len(&self) -> usize {
        self.events.as_ref().map_or(0, Vec::len)
    }

    /// How many events were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Takes the kept events.
    pub fn take_events(&mut self) -> Option<Vec<TraceEvent>> {
        self.events.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(t: &mut Trace, n: u64) {
        for i in 0..n {
            t.record(i, TraceKind::Send, 1, Some(2), "append_entries", Some(i));
        }
    }

    #[test]
    fn a_kept_trace_stops_at_its_bound_and_says_why() {
        let mut t = Trace::with_bytes_max(true, 1 << 20);
        fill(&mut t, 100_000);
        let msg = t
            .full()
            .expect("1 MiB holds fewer than 100,000 events")
            .to_string();
        assert!(msg.contains("memory bound of 1 MiB"), "{msg}");
        assert!(t.kept_bytes() <= 1 << 20, "{}", t.kept_bytes());
        assert_eq!(
            t.count(),
            100_000,
            "every event is still counted and hashed"
        );
        let events = t.take_events().unwrap();
        let last = events.last().unwrap();
        assert_eq!(last.kind, TraceKind::Truncated);
        assert_eq!(last.label, msg);
        assert!(
            events.len() > 5_000,
            "the bound is used, not wasted: {}",
            events.len()
        );
        assert!(events[..events.len() - 1]
            .iter()
            .all(|e| e.kind == TraceKind::Send));
    }

    #[test]
    fn bytes_kept_beside_the_trace_count_against_its_bound() {
        let mut t = Trace::with_bytes_max(true, 1 << 20);
        fill(&mut t, 10);
        let before = t.kept_bytes();
        t.charge(1000, 10, 3);
        assert_eq!(t.kept_bytes(), before + 1000);
        assert!(t.full().is_none());
        t.charge(1 << 20, 11, 3);
        assert!(
            t.full().is_some(),
            "a charge past the bound fills the trace"
        );
        assert!(t.kept_bytes() <= 1 << 20, "{}", t.kept_bytes());
        let events = t.take_events().unwrap();
        let last = events.last().unwrap();
        assert_eq!(
            (last.kind, last.time_ns, last.node),
            (TraceKind::Truncated, 11, 3)
        );
        // A trace not kept is charged nothing.
        let mut off = Trace::new(false);
        off.charge(1 << 40, 0, 0);
        assert!(off.full().is_none());
    }

    #[test]
    fn keeping_or_bounding_the_trace_does_not_change_the_hash() {
        let mut off = Trace::new(false);
        let mut kept = Trace::new(true);
        let mut tiny = Trace::with_bytes_max(true, 4096);
        for t in [&mut off, &mut kept, &mut tiny] {
            fill(t, 10_000);
        }
        assert_eq!(off.hash(), kept.hash());
        assert_eq!(off.hash(), tiny.hash());
        assert!(kept.full().is_none() && tiny.full().is_some() && off.full().is_none());
        assert_eq!(kept.take_events().unwrap().len(), 10_000);
    }
}
