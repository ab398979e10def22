//! `distsim merge`: joins the JSON outputs of `sweep --shard I/N --json`, run by a batch
//! scheduler on many machines, into the one sweep they make up. A merge that would silently
//! report on less than the sweep asked for is refused: every shard records its seed range and
//! index, and the merge names what is missing, what overlaps, and what does not belong.

use clap::Args;

use crate::sweep::{count, finish, SeedRange, SweepReport};
use crate::{bad_input, EXIT_BAD_INPUT};

/// `distsim merge`'s arguments.
#[derive(Args)]
pub struct MergeArgs {
    /// JSON files written by `distsim sweep --json` (usually with `--shard I/N`).
    #[arg(required = true)]
    files: Vec<String>,
    /// Print the merged JSON instead of the summary.
    #[arg(long)]
    json: bool,
    /// Print only the verdict counts and the failing seeds' reproduce commands.
    #[arg(long)]
    quiet: bool,
    /// How many failing seeds to list.
    #[arg(long, default_value_t = 10)]
    show: usize,
    /// Merge even when seeds are missing (shards that never ran); the missing ranges are
    /// printed and recorded in the JSON. Overlaps, other scenarios and other builds are
    /// refused even so.
    #[arg(long)]
    allow_partial: bool,
    /// Judge the merged sweep against the scenario's `expect`, as `sweep --expect` does.
    #[arg(long)]
    expect: bool,
}

/// One input file, read and checked on its own.
struct Part {
    file: String,
    seeds: SeedRange,
    report: SweepReport,
}

/// Runs `distsim merge`: reads, checks and joins the files, then prints and exits as a sweep.
pub fn cmd_merge(a: MergeArgs) -> u8 {
    let mut parts = Vec::new();
    for f in &a.files {
        match read_part(f) {
            Ok(p) => parts.push(p),
            Err(e) => return bad_input(e),
        }
    }
    match merge(parts, a.allow_partial) {
        Ok(m) => {
            if !m.missing.is_empty() {
                let list: Vec<String> = m.missing.iter().map(|r| r.to_string()).collect();
                eprintln!(
                    "warning: partial merge (--allow-partial): seeds {} were never run",
                    list.join(", ")
                );
            }
            finish(&m, a.json, a.quiet, a.show, a.expect)
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_BAD_INPUT
        }
    }
}

/// Reads one sweep output and checks that it holds exactly the seeds it says it does.
fn read_part(f: &str) -> Result<Part, String> {
    let text = std::fs::read_to_string(f).map_err(|e| format!("{f}: cannot read: {e}"))?;
    let report: SweepReport = serde_json::from_str(text.trim()).map_err(|e| {
        format!(
            "{f}:{}:{}: not a `distsim sweep --json` output: {e}",
            e.line(),
            e.column()
        )
    })?;
    let Some(seeds) = report.seeds else {
        return Err(format!(
            "{f}: records no seed range (made by an older distsim); run its sweep again with this build"
        ));
    };
    let expected: Vec<u64> = (seeds.start..seeds.end).collect();
    let held: Vec<u64> = report.runs.iter().map(|r| r.seed).collect();
    if held != expected {
        return Err(format!(
            "{f}: says it holds seeds {seeds} but holds {} run(s) that are not exactly those seeds; \
             the file is truncated or edited, run its sweep again",
            held.len()
        ));
    }
    Ok(Part {
        file: f.to_string(),
        seeds,
        report,
    })
}

/// Joins checked parts into one report, or says why they do not make one sweep.
fn merge(mut parts: Vec<Part>, allow_partial: bool) -> Result<SweepReport, String> {
    let Some(first) = parts.first() else {
        return Err("give at least one file".into());
    };
    for p in &parts[1..] {
        same_sweep(first, p)?;
    }
    let target = target_range(&parts)?;
    parts.sort_by_key(|p| p.seeds);
    for w in parts.windows(2) {
        if w[1].seeds.start < w[0].seeds.end {
            return Err(format!(
                "{} (seeds {}) and {} (seeds {}) overlap on seeds {}..{}; give each shard once",
                w[0].file,
                w[0].seeds,
                w[1].file,
                w[1].seeds,
                w[1].seeds.start,
                w[0].seeds.end.min(w[1].seeds.end)
            ));
        }
    }
    let missing = gaps(&parts, target);
    if !missing.is_empty() && !allow_partial {
        return Err(describe_missing(&parts, &missing));
    }
    let mut merged = parts[0].report.clone();
    merged.runs.clear();
    merged.metric_names.clear();
    for p in parts {
        for name in p.report.metric_names {
            if !merged.metric_names.contains(&name) {
                merged.metric_names.push(name);
            }
        }
        merged.runs.extend(p.report.runs);
    }
    merged.seeds = Some(target);
    merged.shard = None;
    merged.missing = missing;
    merged.counts = count(&merged.runs);
    Ok(merged)
}

/// Two parts belong to one sweep: the same scenario file (by content), mode and build, and,
/// when sharded, the same split of the same seed range.
fn same_sweep(a: &Part, b: &Part) -> Result<(), String> {
    let (x, y) = (&a.report, &b.report);
    let differs = |what: &str, u: &dyn std::fmt::Display, v: &dyn std::fmt::Display| {
        format!(
            "{} and {} are not shards of one sweep: {what} differs ({u} vs {v})",
            a.file, b.file
        )
    };
    if x.path != y.path || x.scenario != y.scenario || x.algorithm != y.algorithm {
        return Err(differs("the scenario", &x.path, &y.path));
    }
    if x.scenario_hash != y.scenario_hash {
        return Err(differs(
            "the scenario file's content (it was edited between shards)",
            &x.scenario_hash.as_deref().unwrap_or("none"),
            &y.scenario_hash.as_deref().unwrap_or("none"),
        ));
    }
    if x.swarm != y.swarm {
        return Err(differs("--swarm", &x.swarm, &y.swarm));
    }
    if x.build != y.build {
        return Err(differs(
            "the distsim build (runs of different builds may differ; run every shard with one build)",
            &x.build,
            &y.build,
        ));
    }
    if let (Some(s), Some(t)) = (x.shard, y.shard) {
        if (s.count, s.of) != (t.count, t.of) {
            return Err(differs(
                "the split",
                &format!("--seeds {} --shard _/{}", s.of, s.count),
                &format!("--seeds {} --shard _/{}", t.of, t.count),
            ));
        }
    }
    Ok(())
}

/// The seeds the merge must cover: the sharded sweep's whole range, or, for unsharded parts,
/// everything from the lowest to the highest seed.
fn target_range(parts: &[Part]) -> Result<SeedRange, String> {
    let start = parts.iter().map(|p| p.seeds.start).min().unwrap_or(0);
    let end = parts.iter().map(|p| p.seeds.end).max().unwrap_or(0);
    match parts.iter().find_map(|p| p.report.shard) {
        Some(s) => {
            if let Some(p) = parts
                .iter()
                .find(|p| p.seeds.start < s.of.start || p.seeds.end > s.of.end)
            {
                return Err(format!(
                    "{} holds seeds {} outside the sharded sweep's range {}",
                    p.file, p.seeds, s.of
                ));
            }
            Ok(s.of)
        }
        None => Ok(SeedRange { start, end }),
    }
}

/// The seed ranges of `target` that no part covers (parts sorted, not overlapping).
fn gaps(parts: &[Part], target: SeedRange) -> Vec<SeedRange> {
    let mut out = Vec::new();
    let mut next = target.start;
    for p in parts {
        if p.seeds.start > next {
            out.push(SeedRange {
                start: next,
                end: p.seeds.start,
            });
        }
        next = next.max(p.seeds.end);
    }
    if next < target.end {
        out.push(SeedRange {
            start: next,
            end: target.end,
        });
    }
    out
}

/// What is missing, and the commands that would fill it.
fn describe_missing(parts: &[Part], missing: &[SeedRange]) -> String {
    let r = &parts[0].report;
    let mut msg = String::from("the shards do not cover the sweep:");
    if let Some(s) = parts.iter().find_map(|p| p.report.shard) {
        let have: Vec<u64> = parts
            .iter()
            .filter_map(|p| p.report.shard.map(|x| x.index))
            .collect();
        for i in (1..=s.count).filter(|i| !have.contains(i)) {
            let (lo, hi) = crate::sweep::shard_range(s.of.start, s.of.end, i, s.count);
            if lo == hi {
                continue;
            }
            msg.push_str(&format!(
                "\n  shard {i}/{} (seeds {lo}..{hi}) is missing; run: distsim sweep {} --seeds {} --shard {i}/{}{} --json",
                s.count,
                r.path,
                s.of,
                s.count,
                if r.swarm { " --swarm" } else { "" }
            ));
        }
    }
    let list: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
    msg.push_str(&format!(
        "\n  seeds never run: {}\n  (merge --allow-partial joins what there is and records the missing seeds)",
        list.join(", ")
    ));
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::ShardInfo;

    fn part(file: &str, seeds: (u64, u64), shard: Option<(u64, u64, u64, u64)>) -> Part {
        let range = SeedRange {
            start: seeds.0,
            end: seeds.1,
        };
        let report = SweepReport {
            build: "b".into(),
            scenario: "s".into(),
            path: "s.toml".into(),
            scenario_hash: Some("h".into()),
            algorithm: "echo".into(),
            expected: sim_core::Expect::Pass,
            swarm: false,
            seeds: Some(range),
            shard: shard.map(|(index, count, start, end)| ShardInfo {
                index,
                count,
                of: SeedRange { start, end },
            }),
            missing: Vec::new(),
            metric_names: Vec::new(),
            sometimes: Vec::new(),
            counts: Default::default(),
            runs: Vec::new(),
        };
        Part {
            file: file.into(),
            seeds: range,
            report,
        }
    }

    #[test]
    fn a_missing_shard_is_named_with_the_command_that_fills_it() {
        let parts = vec![
            part("a", (1, 11), Some((1, 3, 1, 31))),
            part("c", (21, 31), Some((3, 3, 1, 31))),
        ];
        let e = merge(parts, false).expect_err("a gap is refused");
        assert!(e.contains("shard 2/3 (seeds 11..21) is missing"), "{e}");
        assert!(e.contains("--seeds 1..31 --shard 2/3"), "{e}");
        let parts = vec![
            part("a", (1, 11), Some((1, 3, 1, 31))),
            part("b", (11, 21), Some((2, 3, 1, 31))),
        ];
        let e = merge(parts, false).expect_err("the last shard missing is a gap too");
        assert!(e.contains("seeds never run: 21..31"), "{e}");
    }

    #[test]
    fn partial_merges_record_what_is_missing() {
        let parts = vec![
            part("a", (1, 11), Some((1, 3, 1, 31))),
            part("c", (21, 31), Some((3, 3, 1, 31))),
        ];
        let m = merge(parts, true).expect("allowed");
        assert_eq!(m.missing, vec![SeedRange { start: 11, end: 21 }]);
        assert_eq!(m.seeds, Some(SeedRange { start: 1, end: 31 }));
    }

    #[test]
    fn overlaps_other_builds_and_other_splits_are_refused() {
        let e = merge(
            vec![part("a", (1, 11), None), part("b", (5, 15), None)],
            true,
        )
        .expect_err("refused");
        assert!(e.contains("overlap on seeds 5..11"), "{e}");
        let mut b = part("b", (11, 21), None);
        b.report.build = "other".into();
        let e = merge(vec![part("a", (1, 11), None), b], true).expect_err("refused");
        assert!(e.contains("build"), "{e}");
        let mut b = part("b", (11, 21), None);
        b.report.scenario_hash = Some("edited".into());
        let e = merge(vec![part("a", (1, 11), None), b], true).expect_err("refused");
        assert!(e.contains("edited"), "{e}");
        let e = merge(
            vec![
                part("a", (1, 11), Some((1, 3, 1, 31))),
                part("b", (11, 16), Some((2, 4, 1, 31))),
            ],
            true,
        )
        .expect_err("refused");
        assert!(e.contains("the split differs"), "{e}");
    }

    #[test]
    fn unsharded_sweeps_of_adjacent_ranges_join() {
        let m = merge(
            vec![part("b", (11, 21), None), part("a", (1, 11), None)],
            false,
        )
        .expect("adjacent ranges make one sweep");
        assert_eq!(m.seeds, Some(SeedRange { start: 1, end: 21 }));
        let e = merge(
            vec![part("a", (1, 11), None), part("b", (12, 21), None)],
            false,
        )
        .expect_err("refused");
        assert!(e.contains("seeds never run: 11..12"), "{e}");
    }
}
