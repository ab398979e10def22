//! End-to-end tests of the `distsim` command as a user runs it: bad scenario files, determinism
//! of runs and sweeps, reproduce commands, shards and merge, `check` and `list`.

mod common;
use common::{distsim, json, stderr, stdout};

use std::path::Path;
use std::process::{Command, Output};

/// Every file in tests/bad_scenarios is refused with exit code 2 and a message containing each
/// line of its `.expected` sibling (which names the file, line and column where known).
#[test]
fn bad_scenarios_are_refused_with_located_messages() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("toml") | Some("json")
            )
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 15,
        "at least 15 bad scenario files, found {}",
        files.len()
    );
    for f in files {
        let rel = format!(
            "tests/bad_scenarios/{}",
            f.file_name().unwrap().to_string_lossy()
        );
        let expected = std::fs::read_to_string(f.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{rel} has no .expected file"));
        let out = distsim(&["run", &rel]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{rel}: exit code\n{}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{rel}: {err}");
        assert!(!err.contains("panicked"), "{rel} made distsim panic: {err}");
        for line in expected.lines().filter(|l| !l.trim().is_empty()) {
            assert!(err.contains(line), "{rel}: expected {line:?} in:\n{err}");
        }
    }
}

#[test]
fn the_same_seed_prints_the_same_trace_hash() {
    let args = [
        "run",
        "scenarios/broadcast/partition.toml",
        "--seed",
        "5",
        "--json",
    ];
    let a = json(&distsim(&args));
    let b = json(&distsim(&args));
    assert_eq!(a["trace_hash"], b["trace_hash"]);
    assert_eq!(a["events"], b["events"]);
    for key in [
        "scenario",
        "seed",
        "verdict",
        "expected",
        "trace_hash",
        "events",
        "simulated_ns",
        "wall_ns",
        "metrics",
        "violations",
    ] {
        assert!(a.get(key).is_some(), "run --json has {key}");
    }
    assert_eq!(a["verdict"], "pass");
    let c = json(&distsim(&[
        "run",
        "scenarios/broadcast/partition.toml",
        "--seed",
        "6",
        "--json",
    ]));
    assert_ne!(
        a["trace_hash"], c["trace_hash"],
        "another seed, another run"
    );
    let d = distsim(&[
        "run",
        "scenarios/broadcast/nemesis.toml",
        "--check-determinism",
        "--quiet",
    ]);
    assert_eq!(d.status.code(), Some(0), "{}", stderr(&d));
}

#[test]
fn sweep_output_does_not_depend_on_the_number_of_jobs() {
    let base = [
        "sweep",
        "scenarios/broadcast/nemesis.toml",
        "--seeds",
        "1..41",
        "--swarm",
    ];
    let one = distsim(&[&base[..], &["--jobs", "1", "--json"]].concat());
    let two = distsim(&[&base[..], &["--jobs", "2", "--json"]].concat());
    assert_eq!(stdout(&one), stdout(&two));
    let one = distsim(&[&base[..], &["--jobs", "1"]].concat());
    let three = distsim(&[&base[..], &["--jobs", "3"]].concat());
    assert_eq!(stdout(&one), stdout(&three));
    assert_eq!(json(&two)["runs"].as_array().unwrap().len(), 40);
}

/// The `no_retry` bug is found by a sweep, and every printed reproduce command fails again in
/// exactly the same way (same trace hash as in the sweep).
#[test]
fn a_sweep_finds_the_bug_and_its_reproduce_commands_fail_again() {
    let path = "scenarios/broadcast/partition-no-retry.toml";
    let out = distsim(&["sweep", path, "--seeds", "1..201", "--json"]);
    assert_eq!(out.status.code(), Some(1), "violations found means exit 1");
    let rep = json(&out);
    let runs = rep["runs"].as_array().unwrap();
    let bad: Vec<_> = runs
        .iter()
        .filter(|r| r["verdict"] == "violation")
        .collect();
    assert!(
        bad.len() >= 150,
        "no_retry is caught on most seeds: {}",
        bad.len()
    );
    let text = stdout(&distsim(&[
        "sweep", path, "--seeds", "1..201", "--show", "3",
    ]));
    let commands: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("distsim "))
        .collect();
    assert_eq!(commands.len(), 3, "{text}");
    for cmd in commands {
        let mut args: Vec<&str> = cmd.split_whitespace().collect();
        assert!(
            args.contains(&"--build"),
            "reproduce commands name the build: {cmd}"
        );
        args.push("--json");
        let again = distsim(&args);
        assert_eq!(again.status.code(), Some(1), "{cmd} fails again");
        let seed: u64 = args[args.iter().position(|a| *a == "--seed").unwrap() + 1]
            .parse()
            .unwrap();
        let swept = runs.iter().find(|r| r["seed"] == seed).unwrap();
        assert_eq!(
            json(&again)["trace_hash"],
            swept["trace_hash"],
            "{cmd}: the same run"
        );
        assert!(
            stderr(&again).is_empty(),
            "same build, no warning: {}",
            stderr(&again)
        );
    }
    let other_build = distsim(&[
        "run",
        path,
        "--seed",
        "1",
        "--build",
        "0.0.0+other",
        "--quiet",
    ]);
    assert!(
        stderr(&other_build).contains("warning"),
        "a different build is pointed out"
    );
}

#[test]
fn correct_broadcast_passes_a_thousand_seeds_of_every_scenario() {
    for s in ["partition", "lossy", "nemesis"] {
        let path = format!("scenarios/broadcast/{s}.toml");
        let out = distsim(&["sweep", &path, "--seeds", "1..1001", "--json"]);
        let rep = json(&out);
        assert_eq!(rep["counts"]["pass"], 1000, "{s}: {}", rep["counts"]);
        assert_eq!(out.status.code(), Some(0));
    }
    let out = distsim(&[
        "sweep",
        "scenarios/broadcast/nemesis.toml",
        "--seeds",
        "1..301",
        "--swarm",
        "--json",
    ]);
    assert_eq!(json(&out)["counts"]["pass"], 300);
}

/// A fresh folder under the system's temporary directory for one test.
fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("distsim-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `sweep --shard I/N --json` for the given shards into `dir`, returning the files.
fn shard_files(dir: &Path, path: &str, seeds: &str, n: u64, which: &[u64]) -> Vec<String> {
    which
        .iter()
        .map(|i| {
            let shard = format!("{i}/{n}");
            let out = distsim(&["sweep", path, "--seeds", seeds, "--shard", &shard, "--json"]);
            let f = dir.join(format!("s{i}-of-{n}.json"));
            std::fs::write(&f, out.stdout).unwrap();
            f.to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn shards_merge_into_the_whole_sweep() {
    let path = "scenarios/broadcast/crash-ack-before-sync.toml";
    let dir = temp_dir("shards");
    let files = shard_files(&dir, path, "1..31", 3, &[1, 2, 3]);
    let s2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files[1]).unwrap()).unwrap();
    assert_eq!(s2["seeds"], serde_json::json!({"start": 11, "end": 21}));
    assert_eq!(
        s2["shard"],
        serde_json::json!({"index": 2, "count": 3, "of": {"start": 1, "end": 31}})
    );
    let mut args = vec!["merge", "--json"];
    args.extend(files.iter().map(|s| s.as_str()));
    let merged = json(&distsim(&args));
    let whole = json(&distsim(&["sweep", path, "--seeds", "1..31", "--json"]));
    assert_eq!(merged["runs"], whole["runs"]);
    assert_eq!(merged["counts"], whole["counts"]);
    assert_eq!(merged["seeds"], whole["seeds"]);
    // The same shard twice overlaps: refused.
    let dup = distsim(&["merge", &files[0], &files[0]]);
    assert_eq!(dup.status.code(), Some(2));
    assert!(
        stderr(&dup).contains("overlap on seeds 1..11"),
        "{}",
        stderr(&dup)
    );
    // A shard that never ran is a gap: refused, naming it and the command that fills it.
    let gap = distsim(&["merge", &files[0], &files[2]]);
    assert_eq!(gap.status.code(), Some(2));
    assert!(
        stderr(&gap).contains("shard 2/3 (seeds 11..21) is missing")
            && stderr(&gap).contains("--seeds 1..31 --shard 2/3"),
        "{}",
        stderr(&gap)
    );
    let last = distsim(&["merge", &files[0], &files[1]]);
    assert_eq!(last.status.code(), Some(2), "the last shard missing too");
    // ... unless the user accepts a partial merge, which records what is missing.
    let partial = distsim(&["merge", "--allow-partial", "--json", &files[0], &files[2]]);
    assert_eq!(
        json(&partial)["missing"],
        serde_json::json!([{"start": 11, "end": 21}])
    );
    assert!(stderr(&partial).contains("partial merge"));
    // Shards of another scenario do not belong.
    let other = shard_files(&dir, "scenarios/broadcast/lossy.toml", "1..31", 3, &[2]);
    let mixed = distsim(&["merge", &files[0], &other[0], &files[2]]);
    assert_eq!(mixed.status.code(), Some(2));
    assert!(
        stderr(&mixed).contains("the scenario differs"),
        "{}",
        stderr(&mixed)
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The cluster examples (examples/cluster) run `run-shard.sh I N` once per array index, then
/// `merge.sh`: here the same scripts run on one machine, as the scheduler would run them.
#[test]
fn the_cluster_examples_run_locally() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["slurm-sweep.sh", "k8s-sweep.yaml", "k8s-merge.yaml"] {
        let text = std::fs::read_to_string(root.join("examples/cluster").join(f)).unwrap();
        let calls = if f == "k8s-merge.yaml" {
            "merge.sh"
        } else {
            "run-shard.sh"
        };
        assert!(text.contains(calls), "{f} calls {calls}");
    }
    let dir = temp_dir("cluster");
    let script = |name: &str, args: &[&str]| {
        Command::new("sh")
            .arg(root.join("examples/cluster").join(name))
            .args(args)
            .current_dir(root)
            .env("DISTSIM", env!("CARGO_BIN_EXE_distsim"))
            .env("SCENARIO", "scenarios/broadcast/partition-no-retry.toml")
            .env("SEEDS", "1..41")
            .env("OUT", &dir)
            .output()
            .expect("sh runs")
    };
    for i in ["1", "2", "4"] {
        let out = script("run-shard.sh", &[i, "4"]);
        assert_eq!(out.status.code(), Some(0), "shard {i}: {}", stderr(&out));
    }
    let gap = script("merge.sh", &[]);
    assert_eq!(gap.status.code(), Some(2), "shard 3 has not run yet");
    assert!(
        stderr(&gap).contains("shard 3/4 (seeds 21..31) is missing"),
        "{}",
        stderr(&gap)
    );
    script("run-shard.sh", &["3", "4"]);
    let out = script("merge.sh", &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the bug was caught, as expected: {}",
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("40 seeds from 1 to 40"),
        "{}",
        stdout(&out)
    );
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("merged.json")).unwrap()).unwrap();
    assert_eq!(merged["runs"].as_array().unwrap().len(), 40);
    std::fs::remove_dir_all(&dir).ok();
}

/// 0 pass, 1 violation, 2 bad input, 3 unknown, for `run`, `sweep` and `merge`; `--expect`
/// judges a sweep by what the scenario expects.
#[test]
fn exit_codes_follow_one_rule() {
    let dir = temp_dir("exit-codes");
    let hello = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/echo/hello.toml"),
    )
    .unwrap();
    let budget = dir.join("budget.toml");
    std::fs::write(
        &budget,
        hello.replace("expect = \"pass\"", "expect = \"pass\"\nmax_events = 200"),
    )
    .unwrap();
    let budget = budget.to_string_lossy().into_owned();
    let run = distsim(&["run", &budget]);
    assert_eq!(
        run.status.code(),
        Some(3),
        "max_events hit: unknown\n{}",
        stdout(&run)
    );
    assert!(stdout(&run).contains("UNKNOWN") && stdout(&run).contains("budget of 200 events"));
    let sweep = distsim(&["sweep", &budget, "--seeds", "1..6"]);
    assert_eq!(sweep.status.code(), Some(3));
    let sweep = distsim(&["sweep", &budget, "--seeds", "1..6", "--expect"]);
    assert_eq!(sweep.status.code(), Some(3), "unknown is never as expected");

    let bug = "scenarios/broadcast/partition-no-retry.toml";
    let sweep = distsim(&["sweep", bug, "--seeds", "1..11"]);
    assert_eq!(sweep.status.code(), Some(1), "violations found");
    let sweep = distsim(&["sweep", bug, "--seeds", "1..11", "--expect"]);
    assert_eq!(
        sweep.status.code(),
        Some(0),
        "the bug was found, as the scenario expects"
    );
    assert!(stderr(&sweep).contains("found what the scenario expects"));
    let pass = distsim(&[
        "sweep",
        "scenarios/echo/hello.toml",
        "--seeds",
        "1..11",
        "--expect",
    ]);
    assert_eq!(pass.status.code(), Some(0));

    let wrong = dir.join("expects-a-bug.toml");
    std::fs::write(
        &wrong,
        hello.replace("expect = \"pass\"", "expect = \"violation\""),
    )
    .unwrap();
    let wrong = wrong.to_string_lossy().into_owned();
    let sweep = distsim(&["sweep", &wrong, "--seeds", "1..6", "--expect"]);
    assert_eq!(
        sweep.status.code(),
        Some(1),
        "no seed found the expected violation"
    );
    assert!(stderr(&sweep).contains("did NOT find"));
    let sweep = distsim(&["sweep", &wrong, "--seeds", "1..6"]);
    assert_eq!(
        sweep.status.code(),
        Some(0),
        "without --expect: every seed passed"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn check_reads_both_formats_and_explains_failures() {
    let stale = distsim(&["check", "examples/histories/stale-read.jsonl"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(
        stdout(&stale).contains("cannot place: read -> 1"),
        "{}",
        stdout(&stale)
    );
    let ok = distsim(&["check", "examples/histories/jepsen-register.edn", "--json"]);
    assert_eq!(ok.status.code(), Some(0));
    assert_eq!(json(&ok)["verdict"], "linearizable");
    let bad = distsim(&[
        "check",
        "examples/histories/queue-reorder.edn",
        "--model",
        "nope",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("unknown model"));
    let q = distsim(&[
        "check",
        "examples/histories/queue-reorder.edn",
        "--model",
        "queue",
    ]);
    assert_eq!(q.status.code(), Some(1));
}

#[test]
fn run_writes_history_and_trace_files_that_check_accepts() {
    let dir = std::env::temp_dir().join(format!("distsim-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let h = dir.join("h.jsonl");
    let t = dir.join("t.jsonl");
    let out = distsim(&[
        "run",
        "scenarios/echo/hello.toml",
        "--history",
        h.to_str().unwrap(),
        "--trace",
        t.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let trace = std::fs::read_to_string(&t).unwrap();
    assert!(trace.lines().count() > 100);
    for line in trace.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v["time_ns"].is_u64() && v["kind"].is_string());
    }
    let history = std::fs::read_to_string(&h).unwrap();
    assert!(history.lines().next().unwrap().contains("\"invoke\""));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn list_shows_every_scenario_with_what_it_expects() {
    let out = distsim(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for dir in ["echo", "broadcast"] {
        for f in std::fs::read_dir(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios")
                .join(dir),
        )
        .unwrap()
        {
            let name = f.unwrap().file_name().to_string_lossy().into_owned();
            assert!(text.contains(&name), "list shows {name}");
        }
    }
    assert!(text.contains("bug no_retry"));
    let missing = distsim(&["list", "no/such/dir"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(distsim(&["run"]).status.code(), Some(2));
    assert_eq!(
        distsim(&["sweep", "scenarios/echo/hello.toml", "--seeds", "9..3"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        distsim(&["sweep", "scenarios/echo/hello.toml", "--shard", "4/3"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        distsim(&["run", "no/such/file.toml"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_json_scenario_runs_exactly_like_its_toml_twin() {
    let toml = json(&distsim(&["run", "scenarios/echo/hello.toml", "--json"]));
    let json_file = json(&distsim(&["run", "examples/hello.json", "--json"]));
    assert_eq!(toml["trace_hash"], json_file["trace_hash"]);
    assert_eq!(toml["events"], json_file["events"]);
}

/// Runs distsim in `dir` (not the repository).
fn distsim_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distsim"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("distsim runs")
}

/// The catalogue is in the binary: from a folder with no scenarios/, `list` shows the built-in
/// scenarios and `run raft/calm` runs exactly the file of the repository.
#[test]
fn the_catalogue_works_from_any_directory() {
    let dir = temp_dir("catalogue");
    assert!(!dir.join("scenarios").exists());
    let list = distsim_in(&dir, &["list"]);
    assert_eq!(list.status.code(), Some(0), "{}", stderr(&list));
    let text = stdout(&list);
    assert!(text.contains("built into this distsim"), "{text}");
    assert!(text.contains("raft/calm  [raft; expects pass]"), "{text}");
    assert!(text.contains("bug vote_without_log_check"), "{text}");
    let names = stdout(&distsim_in(&dir, &["list", "--quiet"]));
    let in_repo = stdout(&distsim(&["list", "--quiet"]));
    assert_eq!(
        names.lines().count(),
        in_repo.lines().count(),
        "every scenario of the checkout is built in"
    );
    assert!(names.lines().any(|l| l == "broadcast/partition-no-retry"));
    let listed = json(&distsim_in(&dir, &["list", "--json"]));
    assert_eq!(listed["source"], "built-in");
    let builtin = json(&distsim_in(&dir, &["run", "raft/calm", "--json"]));
    let on_disk = json(&distsim(&["run", "scenarios/raft/calm.toml", "--json"]));
    assert_eq!(builtin["verdict"], "pass");
    assert_eq!(builtin["trace_hash"], on_disk["trace_hash"]);
    // The reproduce command printed in a checkout works elsewhere too.
    let long = json(&distsim_in(
        &dir,
        &["run", "scenarios/raft/calm.toml", "--json"],
    ));
    assert_eq!(long["trace_hash"], on_disk["trace_hash"]);
    let missing = distsim_in(&dir, &["run", "raft/no-such-scenario"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        stderr(&missing).contains("distsim list"),
        "{}",
        stderr(&missing)
    );
}

/// A file on disk takes precedence over the built-in scenario of the same name.
#[test]
fn a_scenario_on_disk_takes_precedence_over_the_built_in_one() {
    let dir = temp_dir("precedence");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("scenarios/raft/calm.toml")).unwrap();
    let shorter = text.replace("duration = \"10s\"", "duration = \"7s\"");
    assert_ne!(
        shorter, text,
        "scenarios/raft/calm.toml sets duration = \"10s\""
    );
    std::fs::create_dir_all(dir.join("scenarios/raft")).unwrap();
    std::fs::write(dir.join("scenarios/raft/calm.toml"), shorter).unwrap();
    let local = json(&distsim_in(
        &dir,
        &["run", "scenarios/raft/calm.toml", "--json"],
    ));
    assert_eq!(local["simulated_ns"], 7_000_000_000u64);
    let builtin = json(&distsim_in(&dir, &["run", "raft/calm", "--json"]));
    assert_eq!(builtin["simulated_ns"], 10_000_000_000u64);
    let list = stdout(&distsim_in(&dir, &["list", "--quiet"]));
    assert_eq!(
        list.trim(),
        "scenarios/raft/calm.toml",
        "./scenarios is listed when present"
    );
}
