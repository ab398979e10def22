//! `distsim sweep` and `distsim merge`: many seeds of one scenario, run in parallel (one
//! single-threaded simulation per seed), with output that does not depend on the number of
//! jobs, and shards that can be joined afterwards.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use clap::Args;

use serde::{Deserialize, Serialize};
use sim_core::time::fmt_ns;
use sim_core::{RunOptions, Scenario, Verdict};

use crate::{
    bad_input, load, reproduce_command, run_once, BUILD, EXIT_PASS, EXIT_UNKNOWN, EXIT_VIOLATION,
};

#[derive(Args)]
pub struct SweepArgs {
    /// The scenario: a file (TOML or JSON), or a built-in one by name (`raft/calm`).
    scenario: String,
    /// Seeds to run: `A..B` (B excluded) or `A..=B`.
    #[arg(long, default_value = "1..101")]
    seeds: String,
    /// Seeds run in parallel; 0 = one per core. The results do not depend on it.
    #[arg(long, default_value_t = 0)]
    jobs: usize,
    /// Print one JSON object (the input of `distsim merge`).
    #[arg(long)]
    json: bool,
    /// Print only the verdict counts and the failing seeds' reproduce commands (no timing, no
    /// metrics).
    #[arg(long)]
    quiet: bool,
    /// Let each seed draw its own fault mix and cluster size within the scenario's bounds.
    #[arg(long)]
    swarm: bool,
    /// Run every seed twice and fail if any trace hash differs.
    #[arg(long)]
    check_determinism: bool,
    /// Run only slice I of N of the seed range (1-based), e.g. `--shard 3/10`.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Summarize this metric across seeds (repeatable), e.g. `--metric op_latency_ms.p99`.
    #[arg(long)]
    metric: Vec<String>,
    /// How many failing seeds to list with their reproduce commands.
    #[arg(long, default_value_t = 10)]
    show: usize,
    /// Write plots of the verdicts and of each `--metric` across seeds (histogram and CDF)
    /// and an index.html into this folder. Without `--metric`, the p50 and p99 operation
    /// latency are drawn.
    #[arg(long, value_name = "DIR")]
    report: Option<String>,
    /// Exit 0 when the sweep found what the scenario expects (every seed passes, or the
    /// expected violation was found), so CI can run scenarios that demonstrate bugs.
    #[arg(long)]
    expect: bool,
    /// Also run this scenario on the same seeds and compare each `--metric` side by side
    /// (with `--report`, both distributions on one plot per metric).
    #[arg(long, value_name = "SCENARIO")]
    compare: Option<String>,
}

/// One seed's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    /// The seed.
    pub seed: u64,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its trace hash, 16 hex digits.
    pub trace_hash: String,
    /// Events processed.
    pub events: u64,
    /// Simulated time covered.
    pub simulated_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The first violation, as `[source] message`.
    pub violation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// When the first violation was found.
    pub violation_time_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Why the verdict is unknown, when it is.
    pub unknown_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The configuration swarm testing drew.
    pub derived: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    /// The `--metric` values of this seed.
    pub metrics: BTreeMap<String, f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The other trace hash, when a second run differed.
    pub nondeterministic: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    /// Whether each `sometimes` assertion held on this seed, in the scenario's order.
    pub sometimes: Vec<bool>,
    #[serde(default, skip_serializing_if = "is_zero")]
    /// How many warnings the run gave (a fault that never bit, no operation completed).
    pub warnings: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A range of seeds, `start..end` with `end` excluded (as `--seeds A..B` writes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeedRange {
    /// The first seed.
    pub start: u64,
    /// One past the last seed.
    pub end: u64,
}

impl std::fmt::Display for SeedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// Which slice of which sweep a `--shard I/N` output holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// I, from 1.
    pub index: u64,
    /// N.
    pub count: u64,
    /// The whole sweep's seeds (`--seeds`), of which this shard ran one slice.
    pub of: SeedRange,
}

/// A sweep's JSON output; `merge` reads several and writes one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepReport {
    /// The distsim build that ran it.
    pub build: String,
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file.
    pub path: String,
    /// A stable hash of the scenario file's bytes, so that merge can tell an edited file.
    #[serde(default)]
    pub scenario_hash: Option<String>,
    /// The algorithm.
    pub algorithm: String,
    /// What the scenario expects.
    pub expected: sim_core::Expect,
    /// Whether seeds drew their configuration (`--swarm`).
    pub swarm: bool,
    /// The seeds this output covers (a shard's slice, or the whole range).
    #[serde(default)]
    pub seeds: Option<SeedRange>,
    /// Set by `--shard I/N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// Seeds a `merge --allow-partial` went without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<SeedRange>,
    /// The `--metric` names summarized.
    pub metric_names: Vec<String>,
    /// The scenario's `sometimes` assertions, in order: each must hold on at least one seed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sometimes: Vec<String>,
    /// Seeds per verdict.
    pub counts: BTreeMap<String, u64>,
    /// Every seed's outcome, in seed order.
    pub runs: Vec<SweepRun>,
}

fn parse_seeds(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--seeds {s}: write a range such as 1..1001 (1 to 1000) or 1..=1000");
    if let Some((a, b)) = s.split_once("..=") {
        let a: u64 = a.trim().parse().map_err(|_| bad())?;
        let b: u64 = b.trim().parse().map_err(|_| bad())?;
        if b < a {
            return Err(bad());
        }
        return Ok((a, b + 1));
    }
    let (a, b) = s.split_once("..").ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b <= a {
        return Err(format!(
            "--seeds {s} is empty: the end is excluded, so write {a}..{}",
            a + 1
        ));
    }
    Ok((a, b))
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let bad = || format!("--shard {s}: write I/N with 1 <= I <= N, e.g. --shard 2/8");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let i: u64 = i.trim().parse().map_err(|_| bad())?;
    let n: u64 = n.trim().parse().map_err(|_| bad())?;
    if n == 0 || i == 0 || i > n {
        return Err(bad());
    }
    Ok((i, n))
}

/// The seeds of slice `i` of `n` (1-based) of `[start, end)`: contiguous, sizes differ by at
/// most one, and the slices cover the range exactly.
pub fn shard_range(start: u64, end: u64, i: u64, n: u64) -> (u64, u64) {
    let len = end - start;
    let lo = start + len * (i - 1) / n;
    let hi = start + len * i / n;
    (lo, hi)
}

fn summarize_run(r: &sim_core::RunResult, metric_names: &[String]) -> SweepRun {
    let first = r.violations.first();
    SweepRun {
        seed: r.seed,
        verdict: r.verdict,
        trace_hash: r.trace_hash.clone(),
        events: r.events,
        simulated_ns: r.simulated_ns,
        violation: first.map(|v| format!("[{}] {}", v.source, v.message)),
        violation_time_ns: first.map(|v| v.time_ns),
        unknown_reason: r.unknown_reason.clone(),
        derived: r.derived.clone(),
        metrics: metric_names
            .iter()
            .filter_map(|m| r.metrics.get(m).map(|v| (m.clone(), *v)))
            .collect(),
        nondeterministic: None,
        sometimes: r.sometimes.iter().map(|s| s.held).collect(),
        warnings: r.warnings.len() as u64,
    }
}

pub fn cmd_sweep(a: SweepArgs) -> u8 {
    let (mut start, mut end) = match parse_seeds(&a.seeds) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    let mut shard = None;
    if let Some(s) = &a.shard {
        match parse_shard(s) {
            Ok((i, n)) => {
                shard = Some(ShardInfo {
                    index: i,
                    count: n,
                    of: SeedRange { start, end },
                });
                (start, end) = shard_range(start, end, i, n);
            }
            Err(e) => return bad_input(e),
        }
    }
    let sc = match load(&a.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if algorithms::find(&sc.algorithm).is_none() {
        // Let the algorithm registry produce its located error.
        return match algorithms::run(&sc, start, &RunOptions::default()) {
            Err(e) => bad_input(e),
            Ok(_) => 0,
        };
    }
    let jobs = sim_core::jobs(a.jobs);
    let opts = RunOptions {
        swarm: a.swarm,
        ..Default::default()
    };
    let started = Instant::now();
    let seeds: Vec<u64> = (start..end).collect();
    let mut metric_names = a.metric.clone();
    if a.report.is_some() && metric_names.is_empty() {
        metric_names = vec!["op_latency_ms.p50".into(), "op_latency_ms.p99".into()];
    }
    let runs = match run_seeds(&sc, &seeds, &opts, jobs, a.check_determinism, &metric_names) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let wall = started.elapsed();
    let report = SweepReport {
        build: BUILD.to_string(),
        scenario: sc.name.clone(),
        path: a.scenario.clone(),
        scenario_hash: scenario_hash(&sc),
        algorithm: sc.algorithm.clone(),
        expected: sc.expect,
        swarm: a.swarm,
        seeds: Some(SeedRange { start, end }),
        shard,
        missing: Vec::new(),
        metric_names,
        sometimes: sc
            .asserts
            .iter()
            .filter(|a| a.form() == sim_core::assertion::AssertionForm::Sometimes)
            .map(|a| a.label())
            .collect(),
        counts: count(&runs),
        runs,
    };
    if let Some(other) = &a.compare {
        let code = finish(&report, a.json, a.quiet, a.show, a.expect);
        return match crate::compare::compare(&report, other, &opts, jobs, a.report.as_deref()) {
            Ok(runs) if runs.iter().any(|r| r.verdict == Verdict::Violation) => EXIT_VIOLATION,
            Ok(_) => code,
            Err(code) => code,
        };
    }
    if let Some(dir) = &a.report {
        if let Err(code) = write_report(dir, &report) {
            return code;
        }
    }
    if !a.quiet {
        eprintln!(
            "swept {} seeds in {:.2}s wall with {jobs} job(s)",
            report.runs.len(),
            wall.as_secs_f64()
        );
    }
    finish(&report, a.json, a.quiet, a.show, a.expect)
}

/// A stable hash of the scenario file's bytes, as loaded (from disk or the built-in catalogue).
fn scenario_hash(sc: &Scenario) -> Option<String> {
    let bytes = sc.source.as_ref()?.text.as_bytes();
    let mut h = sim_core::hash::StableHasher::new();
    h.write_bytes(bytes);
    Some(format!("{:016x}", h.finish()))
}

pub(crate) fn run_seeds(
    sc: &Scenario,
    seeds: &[u64],
    opts: &RunOptions,
    jobs: usize,
    twice: bool,
    metric_names: &[String],
) -> Result<Vec<SweepRun>, u8> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<SweepRun>>> = Mutex::new(vec![None; seeds.len()]);
    let error: Mutex<Option<u8>> = Mutex::new(None);
    let bar = if std::io::stderr().is_terminal() {
        let pb = indicatif::ProgressBar::new(seeds.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} seeds, {msg} [{elapsed} < {eta}]",
            )
            .expect("progress template is valid"),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };
    let violations = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..jobs.min(seeds.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= seeds.len() || error.lock().map(|e| e.is_some()).unwrap_or(true) {
                    break;
                }
                let r = match run_once(sc, seeds[i], opts) {
                    Ok(r) => r,
                    Err(code) => {
                        *error.lock().expect("error lock") = Some(code);
                        break;
                    }
                };
                let mut run = summarize_run(&r, metric_names);
                if twice {
                    match run_once(sc, seeds[i], opts) {
                        Ok(again) if again.trace_hash != r.trace_hash => {
                            run.nondeterministic = Some(again.trace_hash);
                        }
                        Ok(_) => {}
                        Err(code) => {
                            *error.lock().expect("error lock") = Some(code);
                            break;
                        }
                    }
                }
                if run.verdict == Verdict::Violation {
                    violations.fetch_add(1, Ordering::Relaxed);
                }
                results.lock().expect("results lock")[i] = Some(run);
                bar.set_message(format!("{} violations", violations.load(Ordering::Relaxed)));
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    if let Some(code) = error.into_inner().expect("error lock") {
        return Err(code);
    }
    Ok(results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every seed ran"))
        .collect())
}

/// Draws the sweep with the reports crate; swarm runs are grouped by the configuration they
/// drew, so that the CDFs compare configurations.
fn write_report(dir: &str, r: &SweepReport) -> Result<(), u8> {
    let input = reports::SweepInput {
        scenario: r.scenario.clone(),
        path: r.path.clone(),
        expected: r.expected.as_str().to_string(),
        metric_names: r.metric_names.clone(),
        seeds: r
            .runs
            .iter()
            .map(|x| reports::SweepSeed {
                seed: x.seed,
                verdict: x.verdict.as_str().to_string(),
                violation: x.violation.clone(),
                metrics: x.metrics.clone(),
                group: x.derived.clone(),
                reproduce: reproduce_command(&r.path, x.seed, r.swarm),
            })
            .collect(),
    };
    match reports::write_sweep_report(std::path::Path::new(dir), &input) {
        Ok(w) => {
            for p in &w.problems {
                eprintln!("report: {p}");
            }
            eprintln!("report written to {}", w.index.display());
            Ok(())
        }
        Err(e) => Err(bad_input(format!("cannot write the report: {e}"))),
    }
}

/// Seeds per verdict (every verdict present, zero or not).
pub fn count(runs: &[SweepRun]) -> BTreeMap<String, u64> {
    let mut c: BTreeMap<String, u64> = ["pass", "violation", "unknown"]
        .iter()
        .map(|k| (k.to_string(), 0))
        .collect();
    for r in runs {
        *c.entry(r.verdict.as_str().to_string()).or_insert(0) += 1;
    }
    c
}

/// Prints the report and returns the exit code (see [`exit_code`]).
pub fn finish(report: &SweepReport, json: bool, quiet: bool, show: usize, expect: bool) -> u8 {
    if json {
        outln!(
            "{}",
            serde_json::to_string(report).expect("sweep report serializes")
        );
    } else {
        print_summary(report, show, quiet);
    }
    let nondet = report
        .runs
        .iter()
        .filter(|r| r.nondeterministic.is_some())
        .count();
    if nondet > 0 {
        eprintln!("NONDETERMINISM: {nondet} seed(s) gave different trace hashes on a second run");
        return EXIT_VIOLATION;
    }
    let never = never_held(report);
    for name in &never {
        eprintln!(
            "assertion `{name}` held on none of the {} seeds: the sweep's faults or workload never made it true",
            report.runs.len()
        );
    }
    let mut code = exit_code(report, expect);
    // A `sometimes` that never held means the sweep did not test what it claims.
    if !never.is_empty() && code == EXIT_PASS {
        code = EXIT_VIOLATION;
    }
    if expect {
        eprintln!(
            "--expect: {}",
            if code == EXIT_PASS {
                format!(
                    "the sweep found what the scenario expects ({})",
                    report.expected.as_str()
                )
            } else {
                format!(
                    "the sweep did NOT find what the scenario expects ({})",
                    report.expected.as_str()
                )
            }
        );
    }
    code
}

/// The `sometimes` assertions that held on no seed of the sweep.
pub fn never_held(report: &SweepReport) -> Vec<String> {
    report
        .sometimes
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            !report
                .runs
                .iter()
                .any(|r| r.sometimes.get(*i).copied().unwrap_or(false))
        })
        .map(|(_, name)| name.clone())
        .collect()
}

/// One rule for every command: 0 pass, 1 violation, 3 unknown. A sweep with any violation
/// exits 1, else one with any unknown seed exits 3. With `--expect` the sweep is judged
/// against the scenario's `expect` instead: a pass-expected scenario must pass every seed
/// (1 on a violation, 3 on an unknown seed); a violation-expected one must be caught on at
/// least one seed (a bug need not bite on every seed; 3 if none was caught but some seed ran
/// out of budget, 1 if every seed passed).
pub fn exit_code(report: &SweepReport, expect: bool) -> u8 {
    let any = |v: Verdict| report.runs.iter().any(|r| r.verdict == v);
    let (violation, unknown) = (any(Verdict::Violation), any(Verdict::Unknown));
    match (expect, report.expected) {
        (true, sim_core::Expect::Violation) if violation => EXIT_PASS,
        (true, sim_core::Expect::Violation) if unknown => EXIT_UNKNOWN,
        (true, sim_core::Expect::Violation) => EXIT_VIOLATION,
        _ if violation => EXIT_VIOLATION,
        _ if unknown => EXIT_UNKNOWN,
        _ => EXIT_PASS,
    }
}

fn print_summary(r: &SweepReport, show: usize, quiet: bool) {
    let n = r.runs.len();
    let (lo, hi) = (
        r.runs.first().map(|x| x.seed).unwrap_or(0),
        r.runs.last().map(|x| x.seed).unwrap_or(0),
    );
    if !quiet {
        outln!(
            "sweep of {} ({}) · {} seeds from {lo} to {hi}{}",
            r.scenario,
            r.path,
            n,
            if r.swarm { " · swarm" } else { "" }
        );
    }
    let c = |k: &str| r.counts.get(k).copied().unwrap_or(0);
    let expected_count = match r.expected {
        sim_core::Expect::Pass => c("pass"),
        sim_core::Expect::Violation => c("violation"),
    };
    outln!(
        "verdicts: {} pass, {} violation, {} unknown (scenario expects {}: {expected_count} of {n} as expected)",
        c("pass"),
        c("violation"),
        c("unknown"),
        r.expected.as_str()
    );
    for (i, name) in r.sometimes.iter().enumerate() {
        let held = r
            .runs
            .iter()
            .filter(|x| x.sometimes.get(i).copied().unwrap_or(false))
            .count();
        outln!("assertion `{name}`: held on {held} of {n} seeds");
    }
    let bad: Vec<&SweepRun> = r
        .runs
        .iter()
        .filter(|x| x.verdict == Verdict::Violation)
        .collect();
    if let Some(first) = bad.first() {
        outln!(
            "first violation: seed {} at {}: {}",
            first.seed,
            fmt_ns(first.violation_time_ns.unwrap_or(0)),
            first.violation.as_deref().unwrap_or("")
        );
        outln!("violating seeds ({} of {n}), reproduce with:", bad.len());
        for x in bad.iter().take(show) {
            outln!("  {}", reproduce_command(&r.path, x.seed, r.swarm));
            if let Some(d) = &x.derived {
                outln!("      drawn: {d}");
            }
        }
        if bad.len() > show {
            let rest: Vec<String> = bad[show..]
                .iter()
                .take(50)
                .map(|x| x.seed.to_string())
                .collect();
            outln!(
                "  ... other seeds: {}{}",
                rest.join(" "),
                if bad.len() > show + 50 { " ..." } else { "" }
            );
        }
    }
    let unknown: Vec<&SweepRun> = r
        .runs
        .iter()
        .filter(|x| x.verdict == Verdict::Unknown)
        .collect();
    for x in unknown.iter().take(show) {
        outln!(
            "unknown: seed {}: {} ({})",
            x.seed,
            x.unknown_reason.as_deref().unwrap_or(""),
            reproduce_command(&r.path, x.seed, r.swarm)
        );
    }
    if quiet {
        return;
    }
    for m in &r.metric_names {
        let vals: Vec<f64> = r
            .runs
            .iter()
            .filter_map(|x| x.metrics.get(m).copied())
            .collect();
        if vals.is_empty() {
            outln!("metric {m}: recorded by no seed");
            continue;
        }
        let s: BTreeMap<&str, f64> = sim_core::metrics::summarize(&vals).into_iter().collect();
        let mut sorted = vals.clone();
        sorted.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| sorted[((sorted.len() as f64 - 1.0) * p).round() as usize];
        outln!(
            "metric {m} over {} seeds: min {:.3} p50 {:.3} p90 {:.3} p99 {:.3} max {:.3} mean {:.3}",
            vals.len(),
            sorted[0],
            pct(0.5),
            pct(0.9),
            pct(0.99),
            s["max"],
            s["mean"]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_range_exactly() {
        for n in 1..7 {
            let mut seen = Vec::new();
            for i in 1..=n {
                let (lo, hi) = shard_range(10, 27, i, n);
                seen.extend(lo..hi);
            }
            assert_eq!(seen, (10..27).collect::<Vec<_>>());
        }
    }

    #[test]
    fn seed_ranges() {
        assert_eq!(parse_seeds("1..1001"), Ok((1, 1001)));
        assert_eq!(parse_seeds("1..=1000"), Ok((1, 1001)));
        assert!(parse_seeds("5..5").is_err());
        assert!(parse_seeds("x").is_err());
        assert_eq!(parse_shard("2/8"), Ok((2, 8)));
        assert!(parse_shard("0/8").is_err());
        assert!(parse_shard("9/8").is_err());
    }
}
