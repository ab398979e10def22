//! Client histories: what clients asked for and what they were told, with true-time stamps.
//!
//! A history is a sequence of [`HistoryEvent`]s. Every operation starts with an `invoke` and ends
//! with at most one completion by the same `process`: `ok` (it took effect and returned
//! `value`), `fail` (it certainly took no effect) or `info` (the outcome is unknown: a timeout or
//! a crash; it may take effect at any point after its invocation, or never). A process has at
//! most one operation outstanding; after an `info` the client continues under a fresh process
//! id, as Jepsen does, because its old operation may still be in flight.
//!
//! The on-disk form is JSON Lines, one event per line, written by `distsim run --history FILE`:
//!
//! ```text
//! {"type":"invoke","process":0,"time_ns":1000,"f":"write","key":"x","value":3}
//! {"type":"ok","process":0,"time_ns":5000,"f":"write","key":"x","value":3}
//! ```
//!
//! `key` is optional (absent for single-object histories). `value` is any JSON value: the
//! argument on invoke, the result on ok (for a read, the value read; `null` for a never-written
//! register), and on info it may be `null`, in which case the invocation's argument stands.
//! A compare-and-set carries `[from, to]`.

use serde::{Deserialize, Serialize};

/// What a history event says about its operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The client sent the request.
    Invoke,
    /// The operation took effect; `value` is its result.
    Ok,
    /// The operation certainly took no effect.
    Fail,
    /// The outcome is unknown.
    Info,
}

impl EventType {
    /// The lowercase name used in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// One line of a client history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEvent {
    /// Invoke or one of the three completions.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The logical client that issued the operation (fresh after an `info`).
    pub process: u64,
    /// True (simulated) time of the event in nanoseconds.
    pub time_ns: u64,
    /// The operation's function: "read", "write", "cas", "get", "put", "append", ...
    pub f: String,
    /// The object the operation touches, for partitioned models (key-value stores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Argument on invoke, result on completion.
    #[serde(default)]
    pub value: serde_json::Value,
}

/// A whole history in event order (non-decreasing `time_ns`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// The events in the order they happened.
    pub events: Vec<HistoryEvent>,
}

impl History {
    /// Writes the history as JSON Lines.
    pub fn to_jsonl(&self) -> String {
        let mut out = String::with_capacity(self.events.len() * 80);
        for e in &self.events {
            // A HistoryEvent always serializes: it holds only strings, numbers and JSON values.
            out.push_str(&serde_json::to_string(e).expect("history event serializes"));
            out.push('\n');
        }
        out
    }

    /// Reads JSON Lines; blank lines are skipped. Errors name the 1-based line.
    pub fn from_jsonl(text: &str) -> Result<History, String> {
        let mut events = Vec::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let e: HistoryEvent =
                serde_json::from_str(line).map_err(|err| format!("line {}: {}", i + 1, err))?;
            events.push(e);
        }
        Ok(History { events })
    }
}
