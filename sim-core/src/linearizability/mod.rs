//! Linearizability checking of client histories (`distsim check`).
//!
//! A history is linearizable when every operation can be given a single point in time between
//! its invocation and its completion such that, taken in that order, the operations are a
//! legal run of the object's sequential specification (its [`Model`]).
//!
//! # Algorithm
//!
//! Wing & Gong's depth-first search with Lowe's improvements: the search walks a doubly linked
//! list of call and return entries, lifts each operation it linearizes out of the list and puts
//! it back when it backtracks, and caches every configuration (set of linearized operations,
//! model state) it has entered so that no configuration is explored twice. Before searching,
//! the history is split by the model's partition function (the key) and each part is checked
//! on its own (P-compositionality), in parallel when [`CheckOptions::threads`] allows; the
//! report lists parts sorted by key, so it is the same whatever the thread count.
//!
//! # Outcomes
//!
//! - `ok`: the operation took effect between invocation and completion, with that result.
//! - `fail`: it took no effect; it is dropped.
//! - `info`, or an invocation never completed: the outcome is unknown. The operation may take
//!   effect at any point after its invocation, or never, and its result is unknown (the
//!   invocation's argument stands; a value on the `info` line is ignored). Unknown reads are
//!   dropped, as they constrain nothing.
//!
//! Real-time order is the order of events in the history: an operation precedes another when
//! its completion comes before the other's invocation in the file (not by comparing
//! `time_ns`, so events with equal timestamps keep the order the simulator gave them).
//!
//! # Keys
//!
//! Every built-in model checks each `key` separately when operations carry one. The key-value
//! models (`kv`, `kv-append`) require a key: either the `key` field or, when it is absent, a
//! value of the form `[key value]` (Jepsen's `independent` tuples and Knossos's multi-register
//! histories, e.g. `{:f :read, :value [:x 3]}`); in that form the `ok` result must be
//! `[key value]` (or `nil`) too, and a cas is written `[key [from to]]`.
//!
//! # Budgets
//!
//! The search always terminates, but may take time exponential in the number of concurrent
//! operations. [`CheckOptions::max_states`] bounds the configurations cached per part, which
//! bounds memory: a configuration costs about 150 bytes plus the model state (the set of
//! linearized operations is stored as the ragged window above its full prefix), and one part
//! per thread is searched at a time. [`CheckOptions::timeout`] bounds wall time. A part that
//! exhausts either is reported as [`Verdict::Unknown`], never with a wrong verdict. The state
//! budget is per part so that the verdict does not depend on which parts ran concurrently.

mod detect;
mod edn;
mod generate;
mod generate_append;
mod model;
mod search;
pub use search::FastHasher;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::history::{EventType, History};

pub use detect::{detect_model, txn_detected, Detected};
pub use edn::{parse_edn, parse_history_file, to_edn};
pub use generate::{generate_history, generate_kv_history, GenerateOptions};
pub use generate_append::{generate_append_history, AppendGenOptions};
pub use model::{
    model_by_name, AppendOp, Counter, CounterOp, KvAppend, Lock, LockOp, Model, Queue, QueueOp,
    RawOp, Register, RegisterOp, Scalar, SetModel, SetOp, MODEL_NAMES,
};

use search::{Budget, Outcome, PartOp};

/// Limits and parallelism for [`check`].
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Give up (verdict Unknown) after this much wall time; `None` for no limit.
    pub timeout: Option<Duration>,
    /// Give up on a part (verdict Unknown) once its search has cached this many
    /// configurations; this bounds memory. `None` for no limit.
    pub max_states: Option<u64>,
    /// Parts checked at once; 0 means one per available core. Does not change the report.
    pub threads: usize,
}

/// The default per-part state budget: four million configurations, about 600 MB per thread
/// for the register-like models.
pub const DEFAULT_MAX_STATES: u64 = 4_000_000;

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            timeout: None,
            max_states: Some(DEFAULT_MAX_STATES),
            threads: 0,
        }
    }
}

/// A [`Model`] behind a `dyn` pointer: what [`check`] and [`model_by_name`] deal in. Every
/// `Model` implements it, so the search is compiled for the model's concrete state type.
pub trait AnyModel: Send + Sync {
    /// The model's name.
    fn model_name(&self) -> &str;
    /// Checks a history against this model; see [`check`] and [`check_all_parts`].
    fn check_history(
        &self,
        history: &History,
        opts: &CheckOptions,
        all_parts: bool,
    ) -> Result<CheckReport, String>;
}

impl<M: Model> AnyModel for M {
    fn model_name(&self) -> &str {
        self.name()
    }
    fn check_history(
        &self,
        history: &History,
        opts: &CheckOptions,
        all_parts: bool,
    ) -> Result<CheckReport, String> {
        check_model(self, history, opts, all_parts)
    }
}

/// Checks that `history` is linearizable with respect to `model`.
///
/// Errors are for malformed histories (a completion without an invocation, an operation the
/// model does not know, a cas without `[from to]`, ...) and name the 1-based event number.
/// The verdict itself, including Unknown when a budget ran out, is in the report.
///
/// The check stops at the first part found not linearizable: parts not yet checked are left
/// out of the report (counted in [`CheckReport::skipped_parts`]) and searches still running
/// are cancelled. [`check_all_parts`] checks every part.
pub fn check(
    history: &History,
    model: &dyn AnyModel,
    opts: &CheckOptions,
) -> Result<CheckReport, String> {
    model.check_history(history, opts, false)
}

/// Like [`check`], but checks every part even after one fails, for a complete report.
pub fn check_all_parts(
    history: &History,
    model: &dyn AnyModel,
    opts: &CheckOptions,
) -> Result<CheckReport, String> {
    model.check_history(history, opts, true)
}

/// The overall or per-part answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Some order of the operations, consistent with real time, is legal for the model.
    Linearizable,
    /// No such order exists.
    NotLinearizable,
    /// A budget (time or visited states) ran out before the search decided.
    Unknown,
}

impl Verdict {
    /// The name used in reports: "linearizable", "not linearizable", "unknown".
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Linearizable => "linearizable",
            Verdict::NotLinearizable => "not linearizable",
            Verdict::Unknown => "unknown",
        }
    }
}

/// An operation named in evidence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpRef {
    /// 1-based number of the invocation event in the history (the line in a JSON Lines file
    /// without blank lines).
    pub event: usize,
    /// The invoking process.
    pub process: u64,
    /// The operation's function.
    pub f: String,
    /// The model's description, e.g. `read -> 2`.
    pub description: String,
    /// "ok" or "info".
    pub outcome: &'static str,
    /// Invocation time (ns).
    pub invoke_ns: u64,
    /// Completion time (ns), if the operation completed.
    pub complete_ns: Option<u64>,
}

/// One step of a partial linearization.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinearizedOp {
    /// The operation.
    pub op: OpRef,
    /// The model state right after it.
    pub state_after: String,
}

/// Why a part is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The longest linearization the search found, in order.
    pub linearized: Vec<LinearizedOp>,
    /// The model state after it.
    pub final_state: String,
    /// The completed operations that real time allows next but the model refuses.
    pub cannot_place: Vec<OpRef>,
}

/// The result for one part (one key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartReport {
    /// The key, or `None` for the unkeyed part.
    pub key: Option<String>,
    /// This part's verdict.
    pub verdict: Verdict,
    /// Operations searched (ok and info, without fail and unknown reads).
    pub ops_count: usize,
    /// Distinct configurations the search entered.
    pub visited_states: u64,
    /// Evidence when not linearizable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Which budget ran out, when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown_reason: Option<String>,
}

/// The result of [`check`]: the verdict, counts, and per-part results sorted by key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The model's name.
    pub model: String,
    /// NotLinearizable if any part is; else Unknown if any part is; else Linearizable.
    pub verdict: Verdict,
    /// Operations in the history (invocations, nemesis excluded).
    pub ops_count: usize,
    /// Operations that completed `ok`.
    pub ok_count: usize,
    /// Operations with an unknown outcome (`info` or never completed).
    pub info_count: usize,
    /// Operations that completed `fail` (dropped).
    pub fail_count: usize,
    /// Unknown-outcome reads dropped because they constrain nothing.
    pub info_reads_dropped: usize,
    /// Distinct configurations entered, summed over parts.
    pub visited_states: u64,
    /// One entry per part checked, sorted by key.
    pub parts: Vec<PartReport>,
    /// Parts left unchecked because another part was already not linearizable (0 when every
    /// part was checked). Which parts these are may vary with the thread count; the verdict
    /// does not.
    pub skipped_parts: usize,
}

impl CheckReport {
    /// The overall verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// The parts that are not linearizable.
    pub fn failures(&self) -> impl Iterator<Item = &PartReport> {
        self.parts
            .iter()
            .filter(|p| p.verdict == Verdict::NotLinearizable)
    }

    /// A human rendering: the verdict, then the evidence of each failing or undecided part.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let count = |v: Verdict| self.parts.iter().filter(|p| p.verdict == v).count();
        let _ = writeln!(
            out,
            "{} (model {}): {} ops ({} ok, {} info, {} fail) in {} part{}; {} states visited",
            self.verdict.as_str(),
            self.model,
            self.ops_count,
            self.ok_count,
            self.info_count,
            self.fail_count,
            self.parts.len() + self.skipped_parts,
            if self.parts.len() + self.skipped_parts == 1 {
                ""
            } else {
                "s"
            },
            self.visited_states
        );
        let failing = count(Verdict::NotLinearizable);
        if failing > 0 {
            let _ = writeln!(out, "{failing} part(s) not linearizable:");
        }
        if self.skipped_parts > 0 {
            let _ = writeln!(
                out,
                "stopped at the first part not linearizable: {} part(s) not checked \
                 (--all-parts checks every part)",
                self.skipped_parts
            );
        }
        const SHOWN_PARTS: usize = 10;
        for p in self.failures().take(SHOWN_PARTS) {
            render_failure(&mut out, p);
        }
        if failing > SHOWN_PARTS {
            let _ = writeln!(out, "... and {} more", failing - SHOWN_PARTS);
        }
        let unknown = count(Verdict::Unknown);
        if unknown > 0 {
            let _ = writeln!(out, "{unknown} part(s) undecided:");
            for p in self
                .parts
                .iter()
                .filter(|p| p.verdict == Verdict::Unknown)
                .take(SHOWN_PARTS)
            {
                let _ = writeln!(
                    out,
                    "{}: unknown, {} ({} ops, {} states visited)",
                    part_name(p),
                    p.unknown_reason.as_deref().unwrap_or("undecided"),
                    p.ops_count,
                    p.visited_states
                );
            }
            if unknown > SHOWN_PARTS {
                let _ = writeln!(out, "... and {} more", unknown - SHOWN_PARTS);
            }
        }
        out
    }
}

fn part_name(p: &PartReport) -> String {
    match &p.key {
        Some(k) => format!("key {k}"),
        None => "history".to_owned(),
    }
}

/// Nanoseconds as seconds, without trailing zeros: `1.234s`.
fn fmt_secs(ns: u64) -> String {
    let s = format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000);
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}s")
}

fn fmt_op(op: &OpRef) -> String {
    let done = match (op.outcome, op.complete_ns) {
        ("ok", Some(t)) => format!("returned at {}", fmt_secs(t)),
        (_, Some(t)) => format!("outcome unknown (info at {})", fmt_secs(t)),
        (_, None) => "never completed".to_owned(),
    };
    format!(
        "{} (event {}, process {}, invoked at {}, {})",
        op.description,
        op.event,
        op.process,
        fmt_secs(op.invoke_ns),
        done
    )
}

fn render_failure(out: &mut String, p: &PartReport) {
    let Some(fail) = &p.failure else {
        return;
    };
    // The summary line shows the tail of the linearization: the ops just before the point
    // where the search got stuck are the ones that explain it.
    const SHOWN_OPS: usize = 8;
    let n = fail.linearized.len();
    let tail: Vec<&str> = fail.linearized[n.saturating_sub(SHOWN_OPS)..]
        .iter()
        .map(|s| s.op.description.as_str())
        .collect();
    let blocked: Vec<String> = fail.cannot_place.iter().map(fmt_op).collect();
    let _ = writeln!(
        out,
        "{}: linearized {} of {} ops [{}{}]; cannot place: {}",
        part_name(p),
        n,
        p.ops_count,
        if n > SHOWN_OPS { "..., " } else { "" },
        tail.join(", "),
        blocked.join("; ")
    );
    let _ = writeln!(
        out,
        "  longest linearization found{}:",
        if n > SHOWN_OPS {
            format!(" (last {SHOWN_OPS} of {n})")
        } else {
            String::new()
        }
    );
    if n == 0 {
        let _ = writeln!(out, "    (none: no operation can go first)");
    }
    for s in &fail.linearized[n.saturating_sub(SHOWN_OPS)..] {
        let _ = writeln!(out, "    {}  => state {}", fmt_op(&s.op), s.state_after);
    }
    let _ = writeln!(
        out,
        "  from state {}, none of these can take effect next:",
        fail.final_state
    );
    for b in &blocked {
        let _ = writeln!(out, "    {b}");
    }
}

/// One operation of the history, paired with its completion.
struct OpRecord {
    invoke: usize,
    completion: Option<usize>,
    outcome: EventType,
}

/// Pairs invocations with completions by process. Errors name the 1-based event.
fn pair_ops(history: &History) -> Result<Vec<OpRecord>, String> {
    let mut ops: Vec<OpRecord> = Vec::new();
    let mut pending: HashMap<u64, usize> = HashMap::new();
    for (i, e) in history.events.iter().enumerate() {
        match e.kind {
            EventType::Invoke => {
                if let Some(&j) = pending.get(&e.process) {
                    return Err(format!(
                        "event {}: process {} invokes {:?} while its {:?} from event {} is still \
                         outstanding (a process runs one operation at a time; after an info, \
                         continue under a fresh process id)",
                        i + 1,
                        e.process,
                        e.f,
                        history.events[ops[j].invoke].f,
                        ops[j].invoke + 1
                    ));
                }
                pending.insert(e.process, ops.len());
                ops.push(OpRecord {
                    invoke: i,
                    completion: None,
                    outcome: EventType::Info,
                });
            }
            kind => {
                let Some(j) = pending.remove(&e.process) else {
                    return Err(format!(
                        "event {}: {} of {:?} by process {}, which has no outstanding invocation",
                        i + 1,
                        kind.as_str(),
                        e.f,
                        e.process
                    ));
                };
                let inv = &history.events[ops[j].invoke];
                if inv.f != e.f {
                    return Err(format!(
                        "event {}: {} of {:?} by process {} completes its {:?} from event {}",
                        i + 1,
                        kind.as_str(),
                        e.f,
                        e.process,
                        inv.f,
                        ops[j].invoke + 1
                    ));
                }
                if e.time_ns < inv.time_ns {
                    return Err(format!(
                        "event {}: {} of {:?} by process {} at time_ns {} completes before its \
                         invocation (event {}, time_ns {}); a completion cannot come before \
                         its invocation: fix the timestamps",
                        i + 1,
                        kind.as_str(),
                        e.f,
                        e.process,
                        e.time_ns,
                        ops[j].invoke + 1,
                        inv.time_ns
                    ));
                }
                ops[j].completion = Some(i);
                ops[j].outcome = kind;
            }
        }
    }
    Ok(ops)
}

/// A part being assembled: its key, its operations, and their records' indices.
struct Part<I, O> {
    key: Option<String>,
    ops: Vec<PartOp<I, O>>,
    records: Vec<usize>,
}

fn check_model<M: Model>(
    model: &M,
    history: &History,
    opts: &CheckOptions,
    all_parts: bool,
) -> Result<CheckReport, String> {
    let deadline = opts.timeout.map(|t| Instant::now() + t);
    let records = pair_ops(history)?;
    let (mut ok_count, mut info_count, mut fail_count, mut info_reads_dropped) = (0, 0, 0, 0);
    let mut parts: Vec<Part<M::Input, M::Output>> = Vec::new();
    let mut part_of_key: HashMap<Option<String>, usize> = HashMap::new();
    for (r, rec) in records.iter().enumerate() {
        let inv = &history.events[rec.invoke];
        let output = match rec.outcome {
            EventType::Fail => {
                fail_count += 1;
                continue;
            }
            EventType::Ok => {
                ok_count += 1;
                rec.completion.map(|c| &history.events[c].value)
            }
            _ => {
                info_count += 1;
                None
            }
        };
        let raw = RawOp {
            f: &inv.f,
            key: inv.key.as_deref(),
            process: inv.process,
            input: &inv.value,
            output,
        };
        let at = |msg: String| format!("event {}: {msg}", rec.invoke + 1);
        let key = model.partition(&raw).map_err(at)?;
        let (input, output) = model.decode(&raw).map_err(at)?;
        if output.is_none() && model.is_read_only(&input) {
            info_reads_dropped += 1;
            continue;
        }
        let ret = match rec.outcome {
            EventType::Ok => rec.completion.map(|c| c as u64),
            _ => None,
        };
        let p = *part_of_key.entry(key).or_insert_with_key(|k| {
            parts.push(Part {
                key: k.clone(),
                ops: Vec::new(),
                records: Vec::new(),
            });
            parts.len() - 1
        });
        parts[p].ops.push(PartOp {
            input,
            output,
            call: rec.invoke as u64,
            ret,
        });
        parts[p].records.push(r);
    }
    drop(part_of_key);
    // Sorted by key so that the report never depends on hashing or on thread timing.
    parts.sort_by(|a, b| a.key.cmp(&b.key));

    // Smallest parts first: a history is already not linearizable when one part is not, and
    // small parts decide fastest, so the first failure is usually found before the expensive
    // parts start (ties by key, so the order is the same on every run).
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by(|&a, &b| {
        (parts[a].ops.len(), &parts[a].key).cmp(&(parts[b].ops.len(), &parts[b].key))
    });
    let cancel = AtomicBool::new(false);
    let budget = Budget {
        max_states: opts.max_states,
        deadline,
        cancel: (!all_parts).then_some(&cancel),
    };
    let threads = crate::jobs(opts.threads).min(parts.len().max(1));
    let run = |part: &Part<M::Input, M::Output>| -> Option<PartReport> {
        if !all_parts && cancel.load(Ordering::Relaxed) {
            return None;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Some(PartReport {
                key: part.key.clone(),
                verdict: Verdict::Unknown,
                ops_count: part.ops.len(),
                visited_states: 0,
                failure: None,
                unknown_reason: Some("the time budget ran out before this part".to_owned()),
            });
        }
        let result = search::search(model, &part.ops, budget);
        if matches!(result.outcome, Outcome::Cancelled) {
            return None;
        }
        let report = part_report(model, history, &records, part, result);
        if report.verdict == Verdict::NotLinearizable {
            cancel.store(true, Ordering::Relaxed);
        }
        Some(report)
    };
    let slots = run_parts(&parts, &order, threads, &run);
    debug_assert_eq!(slots.len(), parts.len());
    let skipped_parts = slots.iter().filter(|s| s.is_none()).count();
    debug_assert!(all_parts || skipped_parts == 0 || cancel.load(Ordering::Relaxed));
    let reports: Vec<PartReport> = slots.into_iter().flatten().collect();

    let verdict = if reports
        .iter()
        .any(|p| p.verdict == Verdict::NotLinearizable)
    {
        Verdict::NotLinearizable
    } else if reports.iter().any(|p| p.verdict == Verdict::Unknown) {
        Verdict::Unknown
    } else {
        Verdict::Linearizable
    };
    Ok(CheckReport {
        model: model.name().to_owned(),
        verdict,
        ops_count: records.len(),
        ok_count,
        info_count,
        fail_count,
        info_reads_dropped,
        visited_states: reports.iter().map(|p| p.visited_states).sum(),
        parts: reports,
        skipped_parts,
    })
}

/// Runs `run` on every part in `order` with up to `threads` workers and returns the results
/// indexed like `parts` (so sorted by key), whatever thread finished first. `None` marks a
/// part that was not checked because another part had already failed.
fn run_parts<P: Sync>(
    parts: &[P],
    order: &[usize],
    threads: usize,
    run: &(dyn Fn(&P) -> Option<PartReport> + Sync),
) -> Vec<Option<PartReport>> {
    let mut slots: Vec<Option<PartReport>> = (0..parts.len()).map(|_| None).collect();
    if threads <= 1 {
        for &i in order {
            slots[i] = run(&parts[i]);
        }
        return slots;
    }
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = order.get(k) else { break };
                        done.push((i, run(&parts[i])));
                    }
                    done
                })
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(done) => {
                    for (i, r) in done {
                        slots[i] = r;
                    }
                }
                // A panicking model is a bug in the model: report it as such.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots
}

fn op_ref<M: Model>(
    model: &M,
    history: &History,
    rec: &OpRecord,
    op: &PartOp<M::Input, M::Output>,
) -> OpRef {
    let inv = &history.events[rec.invoke];
    OpRef {
        event: rec.invoke + 1,
        process: inv.process,
        f: inv.f.clone(),
        description: model.describe_op(&op.input, op.output.as_ref()),
        outcome: if op.ret.is_some() { "ok" } else { "info" },
        invoke_ns: inv.time_ns,
        complete_ns: rec.completion.map(|c| history.events[c].time_ns),
    }
}

fn part_report<M: Model>(
    model: &M,
    history: &History,
    records: &[OpRecord],
    part: &Part<M::Input, M::Output>,
    result: search::SearchResult,
) -> PartReport {
    let mut report = PartReport {
        key: part.key.clone(),
        verdict: Verdict::Linearizable,
        ops_count: part.ops.len(),
        visited_states: result.visited,
        failure: None,
        unknown_reason: None,
    };
    let name_op = |i: u32| {
        let i = i as usize;
        op_ref(model, history, &records[part.records[i]], &part.ops[i])
    };
    match result.outcome {
        Outcome::Linearizable => {}
        Outcome::Unknown(reason) => {
            report.verdict = Verdict::Unknown;
            report.unknown_reason = Some(reason);
        }
        // The caller drops cancelled parts before building reports.
        Outcome::Cancelled => {
            report.verdict = Verdict::Unknown;
            report.unknown_reason = Some("cancelled".to_owned());
        }
        Outcome::NotLinearizable {
            linearized,
            blocked,
        } => {
            report.verdict = Verdict::NotLinearizable;
            // The search keeps only operation indices; the model is deterministic, so the
            // states are recomputed by replaying them.
            let mut state = model.init();
            let mut steps = Vec::with_capacity(linearized.len());
            for &i in &linearized {
                let op = &part.ops[i as usize];
                let next = model.step(&state, &op.input, op.output.as_ref());
                debug_assert!(next.is_some(), "replay of a found linearization failed");
                let Some(next) = next else { break };
                state = next;
                steps.push(LinearizedOp {
                    op: name_op(i),
                    state_after: model.describe_state(&state),
                });
            }
            report.failure = Some(Failure {
                linearized: steps,
                final_state: model.describe_state(&state),
                cannot_place: blocked.into_iter().map(name_op).collect(),
            });
        }
    }
    report
}
