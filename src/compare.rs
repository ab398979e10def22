//! `distsim sweep A.toml --compare B.toml`: the same seeds of a second scenario (same faults,
//! workload and seeds, another algorithm, say), each `--metric` summarized side by side, and
//! with `--report DIR` one plot per metric with both distributions (one CDF per scenario).

use std::collections::BTreeMap;

use sim_core::RunOptions;

use crate::sweep::{run_seeds, SweepReport, SweepRun};
use crate::{bad_input, load, reproduce_command};

/// Runs `other` on the seeds of `base`, prints both summaries of each metric, and writes the
/// combined report into `report_dir` if given. Returns the exit code of the second sweep
/// (0, or violation), or the code of bad input.
pub fn compare(
    base: &SweepReport,
    other: &str,
    opts: &RunOptions,
    jobs: usize,
    report_dir: Option<&str>,
) -> Result<Vec<SweepRun>, u8> {
    let sc = load(other)?;
    if algorithms::find(&sc.algorithm).is_none() {
        return Err(bad_input(format!(
            "{other}: unknown algorithm \"{}\"",
            sc.algorithm
        )));
    }
    let seeds: Vec<u64> = base.runs.iter().map(|r| r.seed).collect();
    let runs = run_seeds(&sc, &seeds, opts, jobs, false, &base.metric_names)?;
    let name_a = format!("{} ({})", base.scenario, base.algorithm);
    let name_b = format!("{} ({})", sc.name, sc.algorithm);
    let verdicts = |rs: &[SweepRun]| {
        let bad = rs
            .iter()
            .filter(|r| r.verdict != sim_core::Verdict::Pass)
            .count();
        format!("{} seeds, {bad} not passing", rs.len())
    };
    println!("compare {name_a}: {}", verdicts(&base.runs));
    println!("   with {name_b}: {}", verdicts(&runs));
    for m in &base.metric_names {
        for (name, rs) in [(&name_a, &base.runs), (&name_b, &runs)] {
            let vals: Vec<f64> = rs
                .iter()
                .filter_map(|r| r.metrics.get(m).copied())
                .collect();
            let s: BTreeMap<&str, f64> = sim_core::metrics::summarize(&vals).into_iter().collect();
            let g = |k: &str| s.get(k).copied().unwrap_or(f64::NAN);
            println!(
                "metric {m} · {name}: n {} p50 {:.3} p99 {:.3} max {:.3} mean {:.3}",
                vals.len(),
                g("p50"),
                g("p99"),
                g("max"),
                g("mean")
            );
        }
    }
    if let Some(dir) = report_dir {
        write(dir, base, (&name_a, &name_b), other, &runs)?;
    }
    Ok(runs)
}

/// One sweep report over both scenarios' seeds, grouped by scenario, so that each metric's
/// CDF plot holds the two distributions.
fn write(
    dir: &str,
    base: &SweepReport,
    names: (&str, &str),
    other: &str,
    runs: &[SweepRun],
) -> Result<(), u8> {
    let seed = |x: &SweepRun, group: &str, path: &str| reports::SweepSeed {
        seed: x.seed,
        verdict: x.verdict.as_str().to_string(),
        violation: x.violation.clone(),
        metrics: x.metrics.clone(),
        group: Some(group.to_string()),
        reproduce: reproduce_command(path, x.seed, false),
    };
    let mut seeds: Vec<reports::SweepSeed> = base
        .runs
        .iter()
        .map(|x| seed(x, names.0, &base.path))
        .collect();
    seeds.extend(runs.iter().map(|x| seed(x, names.1, other)));
    let input = reports::SweepInput {
        scenario: format!("{} against {}", names.0, names.1),
        path: format!("{} and {other}", base.path),
        expected: base.expected.as_str().to_string(),
        metric_names: base.metric_names.clone(),
        seeds,
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
