//! The golden trace hashes: a fixed set of catalogue scenarios and seeds, each run's trace hash
//! and verdict pinned in tests/golden/trace-hashes.txt. The trace hash covers every event of a
//! run, so any change that alters a run (the engine, an algorithm, a scenario file, a random
//! draw, float maths that differs by a bit on another platform) changes a line here and shows
//! in review, instead of passing unnoticed.
//!
//! When a change is meant to alter runs (the liveness phase, a new event, a fixed algorithm),
//! regenerate the file and commit it with the change, saying why the runs changed:
//!
//!     UPDATE_GOLDEN=1 cargo test --release --test golden
//!
//! then `git diff tests/golden/trace-hashes.txt` shows which runs changed. Without the
//! variable, a mismatch fails with every differing line.

use std::fmt::Write as _;
use std::path::Path;

use sim_core::{RunOptions, Scenario};

/// Scenarios (with `--swarm` or not) and the seeds each runs: every family, the latency
/// distributions that draw floats (normal, exponential, pareto, bimodal), scripted faults and
/// the nemesis, passes and violations.
const CASES: &[(&str, bool, &[u64])] = &[
    ("scenarios/echo/hello.toml", false, &[1, 2, 3]),
    ("scenarios/echo/lossy-pause.toml", false, &[1, 2, 3]),
    ("scenarios/echo/corrupt.toml", false, &[1, 2]),
    ("scenarios/broadcast/partition.toml", false, &[1, 2, 3]),
    ("scenarios/broadcast/lossy.toml", false, &[1, 2, 3]),
    ("scenarios/broadcast/nemesis.toml", false, &[1, 2, 3]),
    ("scenarios/broadcast/nemesis.toml", true, &[1, 2, 3]),
    (
        "scenarios/broadcast/crash-ack-before-sync.toml",
        false,
        &[1, 2],
    ),
    ("scenarios/raft/calm.toml", false, &[1, 2]),
    ("scenarios/raft/leader-isolated.toml", false, &[1, 2]),
    ("scenarios/raft/figure8-scripted.toml", false, &[1]),
    (
        "scenarios/raft/rejoin-vote-without-log-check.toml",
        false,
        &[1],
    ),
    ("scenarios/lock/calm.toml", false, &[1, 2]),
    ("scenarios/lock/long-tail-fenced.toml", false, &[1, 2]),
    ("scenarios/lock/zk-faults.toml", false, &[1]),
    ("scenarios/lock/redlock-clock-jump.toml", false, &[1]),
];

const GOLDEN: &str = "tests/golden/trace-hashes.txt";

/// One line per run: `path [--swarm] seed trace_hash verdict events`.
fn current() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = String::from(
        "# scenario [--swarm] seed trace_hash verdict events\n\
         # Regenerate: UPDATE_GOLDEN=1 cargo test --release --test golden (see tests/golden.rs)\n",
    );
    for (path, swarm, seeds) in CASES {
        let text =
            std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let sc = Scenario::parse(path, &text).unwrap_or_else(|e| panic!("{e}"));
        for &seed in *seeds {
            let opts = RunOptions {
                swarm: *swarm,
                ..Default::default()
            };
            let r = algorithms::run(&sc, seed, &opts).unwrap_or_else(|e| panic!("{e}"));
            writeln!(
                out,
                "{path}{} {seed} {} {} {}",
                if *swarm { " --swarm" } else { "" },
                r.trace_hash,
                r.verdict.as_str(),
                r.events
            )
            .unwrap();
        }
    }
    out
}

#[test]
fn trace_hashes_match_the_golden_file() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let now = current();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &now).unwrap();
        eprintln!("wrote {GOLDEN}");
        return;
    }
    let golden = std::fs::read_to_string(&file).unwrap_or_default();
    if golden == now {
        return;
    }
    let (old, new): (Vec<&str>, Vec<&str>) = (golden.lines().collect(), now.lines().collect());
    let mut diff = String::new();
    for l in old.iter().filter(|l| !new.contains(l)) {
        writeln!(diff, "- {l}").unwrap();
    }
    for l in new.iter().filter(|l| !old.contains(l)) {
        writeln!(diff, "+ {l}").unwrap();
    }
    panic!(
        "runs differ from {GOLDEN} (- golden, + now):\n{diff}\n\
         If the change is meant to alter runs, regenerate the file with\n  \
         UPDATE_GOLDEN=1 cargo test --release --test golden\n\
         and commit it, saying why the runs changed."
    );
}
