//! `distsim diff` end to end: the same run twice has no difference; two seeds diverge at the
//! index the traces themselves say; a bug switch on and off diverges where the bug first acts.

mod common;
use common::{distsim, json};

use std::path::{Path, PathBuf};

use serde_json::Value;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("distsim-diff-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The events of a `--trace` file, as JSON values.
fn trace(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Writes the trace of one run and returns its events.
fn run_trace(scenario: &str, seed: &str, file: &Path) -> Vec<Value> {
    let out = distsim(&[
        "run",
        scenario,
        "--seed",
        seed,
        "--quiet",
        "--trace",
        file.to_str().unwrap(),
    ]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
    trace(file)
}

/// The index where two traces first differ, found here independently of distsim.
fn first_difference(a: &[Value], b: &[Value]) -> Option<usize> {
    let n = a.len().min(b.len());
    (0..n)
        .find(|&i| a[i] != b[i])
        .or((a.len() != b.len()).then_some(n))
}

#[test]
fn the_same_seed_twice_has_no_difference() {
    let out = distsim(&["diff", "raft/calm", "--seed", "3"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("no difference"), "{text}");
    let v = json(&distsim(&[
        "diff",
        "scenarios/raft/calm.toml",
        "--seed",
        "3",
        "--json",
    ]));
    assert_eq!(v["same"], true);
    assert_eq!(v["a"]["trace_hash"], v["b"]["trace_hash"]);
    assert!(v.get("divergence").is_none());
}

#[test]
fn two_seeds_diverge_where_their_traces_first_differ() {
    let dir = temp_dir("seeds");
    let sc = "scenarios/raft/calm.toml";
    let a = run_trace(sc, "3", &dir.join("a.jsonl"));
    let b = run_trace(sc, "4", &dir.join("b.jsonl"));
    let expected = first_difference(&a, &b).expect("seeds 3 and 4 differ");
    let out = distsim(&["diff", sc, "--seed", "3", "--seed-b", "4", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a difference exits 1");
    let v = json(&out);
    assert_eq!(v["same"], false);
    let d = &v["divergence"];
    assert_eq!(d["index"].as_u64(), Some(expected as u64));
    assert_eq!(v["a"]["seed"], 3);
    assert_eq!(v["b"]["seed"], 4);
    assert_ne!(v["a"]["trace_hash"], v["b"]["trace_hash"]);
    // The context: the events before are A's (and B's) own, the events after each side's.
    let before = d["before"].as_array().unwrap();
    assert_eq!(before.len(), expected.min(5));
    for e in before {
        let i = e["index"].as_u64().unwrap() as usize;
        assert!(i < expected);
        assert_eq!(e["time_ns"], a[i]["time_ns"]);
        assert_eq!(e["label"], b[i]["label"]);
    }
    assert_eq!(d["a"][0]["time_ns"], a[expected]["time_ns"]);
    assert_eq!(d["b"][0]["time_ns"], b[expected]["time_ns"]);
    assert_eq!(d["b"][0]["kind"], b[expected]["kind"]);
    // Clients are named as in reports (3 servers in calm.toml: n3 is client 0).
    let names: Vec<&str> = d["a"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["node_name"].as_str())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("(client ")),
        "the first events after the start are clients': {names:?}"
    );
    // The two trace files compare the same way.
    let files = json(&distsim(&[
        "diff",
        dir.join("a.jsonl").to_str().unwrap(),
        dir.join("b.jsonl").to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(files["divergence"]["index"].as_u64(), Some(expected as u64));
    let same = distsim(&[
        "diff",
        dir.join("a.jsonl").to_str().unwrap(),
        dir.join("a.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(same.status.code(), Some(0));
}

/// A bug switch on (the scenario as written) and off (`--unset-b params.bug`) with the same
/// seed: the runs agree until the bug first changes what happens, and only the buggy side
/// fails. Side B is checked against a copy of the file with the switch removed by hand.
#[test]
fn a_bug_switch_on_and_off_diverges_before_the_violation() {
    let dir = temp_dir("bug");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sc = "scenarios/raft/rejoin-vote-without-log-check.toml";
    let text = std::fs::read_to_string(root.join(sc)).unwrap();
    let fixed = text.replace("bug = \"vote_without_log_check\"\n", "");
    assert_ne!(fixed, text);
    let fixed_path = dir.join("fixed.toml");
    std::fs::write(&fixed_path, fixed).unwrap();
    let a = run_trace(sc, "1", &dir.join("bug.jsonl"));
    let b = run_trace(fixed_path.to_str().unwrap(), "1", &dir.join("fixed.jsonl"));
    let expected = first_difference(&a, &b).expect("the bug changes the run");
    let v = json(&distsim(&[
        "diff",
        sc,
        "--seed",
        "1",
        "--unset-b",
        "params.bug",
        "--json",
    ]));
    assert_eq!(v["a"]["verdict"], "violation");
    assert_eq!(v["b"]["verdict"], "pass");
    assert_eq!(v["divergence"]["index"].as_u64(), Some(expected as u64));
    let violation_ns = v["a"]["violations"][0]["time_ns"].as_u64().unwrap();
    assert!(a[expected]["time_ns"].as_u64().unwrap() <= violation_ns);
    // The other way round: the bug switched on in the correct twin gives the same point.
    let on = json(&distsim(&[
        "diff",
        fixed_path.to_str().unwrap(),
        "--seed",
        "1",
        "--set-b",
        "params.bug=vote_without_log_check",
        "--json",
    ]));
    assert_eq!(on["divergence"]["index"].as_u64(), Some(expected as u64));
    assert_eq!(on["b"]["trace_hash"], v["a"]["trace_hash"]);
}

#[test]
fn bad_diff_arguments_exit_two() {
    for args in [
        vec!["diff", "raft/calm", "--set-b", "params"],
        vec!["diff", "raft/calm", "--unset-b", "params.no_such_param"],
        vec!["diff", "raft/calm", "--set-b", "params.no_such_param=1"],
        vec!["diff", "a.jsonl"],
        vec!["diff", "raft/calm", "b.jsonl"],
    ] {
        let out = distsim(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
    }
}
