//! sim-core: the distsim engine.
//!
//! A single-threaded discrete-event simulator over virtual time that drives sans-IO processes
//! ([`process::Process`]) through a seeded, faulty world: a network with latency distributions,
//! loss, duplication, reordering, partitions and clogging; nodes that crash, restart from
//! durable storage and pause; clocks with offsets, drift and steps. One seed fixes everything:
//! the same scenario and seed give the same run, event for event, proven by a stable trace hash.
//! Checkers judge the run as it goes (invariants over the global state) and after it (client
//! histories). sim-core knows no algorithm by name.

pub mod assertion;
pub mod clock;
pub mod faults;
pub mod hash;
pub mod history;
pub mod linearizability;
pub mod metrics;
pub mod network;
pub mod process;
pub mod result;
pub mod rng;
pub mod scenario;
pub mod sim;
pub mod storage;
pub mod summary;
pub mod time;
pub mod trace;
pub mod txn;

pub use history::{EventType, History, HistoryEvent};
pub use process::{Ctx, Message, NodeId, Op, Process, TimerId};
pub use result::{RunResult, Verdict, Violation, ViolationKind};
pub use scenario::{Expect, Scenario, ScenarioError};
pub use sim::{Checker, Finding, LivenessPhase, NodeInfo, RunOptions, Sim, SimConfig, View};

/// Threads for a `--jobs N` (or `threads`) setting: `N`, or with 0 one per core. Threads only
/// ever split work outside a run; no result depends on how many there are.
pub fn jobs(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}
