//! What a run yields: the verdict, its evidence, metrics, fault coverage, and the trace hash.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::history::History;
use crate::metrics::SeriesPoint;
use crate::scenario::Expect;
use crate::time::Nanos;
use crate::trace::TraceEvent;

/// The outcome of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every check held.
    Pass,
    /// A check failed.
    Violation,
    /// The run could not be judged (event budget or checker budget ran out). Never a pass.
    Unknown,
}

impl Verdict {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Violation => "violation",
            Verdict::Unknown => "unknown",
        }
    }
}

/// What kind of rule a violation broke.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Something bad happened (an invariant or end check failed).
    #[default]
    Safety,
    /// Something good did not happen in time (no progress after the faults healed).
    Liveness,
    /// A scenario's `[[assert]]` did not hold.
    Assertion,
    /// The client history is not linearizable.
    Linearizability,
    /// The algorithm's clients wrote a history the checker cannot read.
    Malformed,
}

impl ViolationKind {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::Safety => "safety",
            ViolationKind::Liveness => "liveness",
            ViolationKind::Assertion => "assertion",
            ViolationKind::Linearizability => "linearizability",
            ViolationKind::Malformed => "malformed",
        }
    }
}

/// One failed check, as data: reports and tools read the nodes, operations, values and keys it
/// involves from here, never from the message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Violation {
    /// True time at which it was detected.
    pub time_ns: Nanos,
    /// The check or node that found it.
    pub source: String,
    /// The kind of rule broken.
    pub kind: ViolationKind,
    /// What went wrong, with the operations and nodes involved.
    pub message: String,
    /// Nodes involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<usize>,
    /// Operations involved: indices into the history's events (their invoke events).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<usize>,
    /// Values involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<serde_json::Value>,
    /// Keys involved.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
}

/// One fault as it fired, for the log and the report's fault windows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultRecord {
    /// True time.
    pub time_ns: Nanos,
    /// "partition", "heal", "crash", "restart", "pause", "resume", "clock_step", ...
    pub action: String,
    /// The nodes it touched (servers, or clients for pauses and clock steps).
    pub nodes: Vec<usize>,
    /// A readable description.
    pub detail: String,
}

/// How often a kind of fault fired and how many messages it affected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct FaultCounts {
    /// Times it fired.
    pub fired: u64,
    /// Messages it cut, dropped, held or delayed (0 = it never bit).
    pub messages: u64,
}

/// Everything a run yields.
#[derive(Clone, Debug, Serialize)]
pub struct RunResult {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file.
    pub path: String,
    /// The algorithm.
    pub algorithm: String,
    /// The seed.
    pub seed: u64,
    /// Whether swarm testing drew this run's configuration.
    pub swarm: bool,
    /// The configuration swarm testing drew, readable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub derived: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// What the scenario expects.
    pub expected: Expect,
    /// Why the verdict is unknown, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
    /// Stable hash of every event, as 16 hex digits.
    pub trace_hash: String,
    /// Events processed.
    pub events: u64,
    /// Simulated time covered.
    pub simulated_ns: Nanos,
    /// Wall time of the run (filled in by the caller; not part of the simulation).
    pub wall_ns: u64,
    /// Server count.
    pub servers: usize,
    /// Client count.
    pub clients: usize,
    /// Counters and distribution summaries.
    pub metrics: BTreeMap<String, f64>,
    /// Failed checks, in the order found.
    pub violations: Vec<Violation>,
    /// Faults by kind.
    pub faults: BTreeMap<String, FaultCounts>,
    /// Faults as they fired.
    pub fault_log: Vec<FaultRecord>,
    /// The faults the run carried out, scripted and nemesis alike, as a `[[faults]]` script
    /// with every random choice made (nodes by index, partition shapes as their cut links,
    /// swizzles as one clog per node, a nemesis fault's undo as its `for`), in time order.
    /// Replayed without the nemesis they give the same faults; `distsim shrink` starts there.
    #[serde(skip)]
    pub applied_faults: Vec<crate::faults::ScriptedFault>,
    /// What a person should know that is not a violation: a scripted fault that never bit,
    /// no operation completed ok.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// How each `sometimes` assertion fared on this run (a sweep needs one seed where it held).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sometimes: Vec<crate::assertion::SometimesResult>,
    /// The linearizability checker's report, when the scenario asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linearizability: Option<serde_json::Value>,
    /// The client history.
    #[serde(skip)]
    pub history: History,
    /// The kept trace, when tracing was on.
    #[serde(skip)]
    pub trace: Option<Vec<TraceEvent>>,
    /// Per-node time series recorded by the algorithm.
    #[serde(skip)]
    pub series: BTreeMap<String, Vec<SeriesPoint>>,
    /// Per-node state summaries, when the trace was kept (`Process::state_summary`).
    #[serde(skip)]
    pub summaries: Vec<crate::summary::SummaryPoint>,
    /// Messages a crash dropped while held at its paused node, when the trace was kept:
    /// (index in `fault_log` of the crash, message id). No trace event records them.
    #[serde(skip)]
    pub lost_at_crash: Vec<(usize, u64)>,
}

impl RunResult {
    /// Whether the run found what its scenario expects.
    pub fn as_expected(&self) -> bool {
        matches!(
            (self.verdict, self.expected),
            (Verdict::Pass, Expect::Pass) | (Verdict::Violation, Expect::Violation)
        )
    }
}
