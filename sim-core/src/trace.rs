//! The trace: every event of a run. The hash is always computed (it is cheap and proves
//! determinism); the events themselves are kept only when asked for.

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

/// The running hash and, optionally, the kept events.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    hasher: StableHasher,
    events: Option<Vec<TraceEvent>>,
    count: u64,
}

impl Trace {
    /// A trace that keeps its events when `keep` is true.
    pub fn new(keep: bool) -> Self {
        Trace {
            hasher: StableHasher::new(),
            events: if keep { Some(Vec::new()) } else { None },
            count: 0,
        }
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
        if let Some(events) = &mut self.events {
            events.push(TraceEvent {
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

    /// How many events were recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Takes the kept events.
    pub fn take_events(&mut self) -> Option<Vec<TraceEvent>> {
        self.events.take()
    }
}
