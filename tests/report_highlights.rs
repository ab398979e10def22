//! The operations a report highlights come from the typed violations (issue 10, item 9), not
//! from their prose: checked on the three scenarios where reading prose went wrong.

use reports::data::{ops_of, violation_ops};
use sim_core::{RunOptions, Scenario};

/// Runs `path` at its default seed and returns the run and the operations it highlights.
fn highlighted(path: &str) -> (sim_core::RunResult, Vec<reports::data::Op>, Vec<usize>) {
    let sc = Scenario::load(path).expect("scenario loads");
    let r = algorithms::run(&sc, sc.seed, &RunOptions::default()).expect("runs");
    assert!(!r.violations.is_empty(), "{path} must find a violation");
    let ops = ops_of(&r.history);
    let got = violation_ops(&r.violations, &r.history, &ops, r.servers, r.clients);
    (r, ops, got.into_iter().collect())
}

#[test]
fn lock_pause_highlights_the_stale_clients_open_operation() {
    let (r, ops, got) = highlighted("scenarios/lock/pause.toml");
    let v = &r.violations[0];
    let node_of = |i: &usize| r.servers + (ops[*i].process % r.clients as u64) as usize;
    // The stale writer (named first) and the new holder: their operations open at the write.
    let stale = *v.nodes.iter().find(|n| **n >= r.servers).expect("a client");
    assert!(got.iter().any(|i| node_of(i) == stale), "{got:?}");
    for i in &got {
        let op = &ops[*i];
        assert!(
            v.nodes.contains(&node_of(i)),
            "op {i} belongs to an unnamed client"
        );
        assert!(
            op.invoke_ns <= v.time_ns,
            "op {i} began after the stale write"
        );
        assert!(
            op.complete_ns.is_none_or(|c| c >= v.time_ns),
            "op {i} ended before"
        );
    }
}

#[test]
fn echo_corrupt_highlights_every_corrupted_echo() {
    let (r, ops, got) = highlighted("scenarios/echo/corrupt.toml");
    assert_eq!(got.len(), r.violations.len());
    for (i, v) in got.iter().zip(&r.violations) {
        assert_eq!(ops[*i].arg, v.values[0], "the op that sent the value");
    }
}

#[test]
fn broadcast_highlights_every_missing_values_operation() {
    let (r, ops, got) = highlighted("scenarios/broadcast/partition-no-retry.toml");
    let all = r.violations.iter().map(|v| v.ops.len()).max().unwrap();
    assert_eq!(all, 251, "the scenario's known count of missing values");
    assert_eq!(got.len(), 251);
    assert!(got.iter().all(|i| ops[*i].f != "read"));
}
