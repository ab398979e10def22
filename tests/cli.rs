//! End-to-end tests of the `distsim` command as a user runs it: bad scenario files, determinism
//! of runs and sweeps, reproduce commands, shards and merge, `check` and `list`.

use std::path::Path;
use std::process::{Command, Output};

fn distsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("distsim runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(stdout(o).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(o)))
}

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

#[test]
fn shards_merge_into_the_whole_sweep() {
    let path = "scenarios/broadcast/crash-ack-before-sync.toml";
    let dir = std::env::temp_dir().join(format!("distsim-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let out = distsim(&[
            "sweep", path, "--seeds", "1..31", "--shard", &shard, "--json",
        ]);
        let f = dir.join(format!("s{i}.json"));
        std::fs::write(&f, out.stdout).unwrap();
        files.push(f.to_string_lossy().into_owned());
    }
    let mut args = vec!["merge", "--json"];
    args.extend(files.iter().map(|s| s.as_str()));
    let merged = json(&distsim(&args));
    let whole = json(&distsim(&["sweep", path, "--seeds", "1..31", "--json"]));
    assert_eq!(merged["runs"], whole["runs"]);
    assert_eq!(merged["counts"], whole["counts"]);
    // The same shard twice overlaps: refused.
    let dup = distsim(&["merge", &files[0], &files[0]]);
    assert_eq!(dup.status.code(), Some(2));
    assert!(stderr(&dup).contains("more than one file"));
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
