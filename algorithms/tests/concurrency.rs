//! Concurrency control: both controls keep every update, each deadlock rule breaks the
//! deadlocks, each bug is caught with its message, transactions are recorded as micro-ops,
//! and bad parameters are refused at load time.

use algorithms::concurrency;
use sim_core::{EventType, RunOptions, RunResult, Scenario, Verdict, ViolationKind};

fn run_file(name: &str, seed: u64) -> RunResult {
    let path = format!(
        "{}/../scenarios/concurrency/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let sc = Scenario::load(&path).expect("scenario loads");
    // As a user runs it: prepared against the registry, so the liveness phase is on.
    algorithms::run(&sc, seed, &RunOptions::default()).expect("runs")
}

fn check(name: &str, seed: u64, expect: Verdict, words: &str) -> RunResult {
    let r = run_file(name, seed);
    assert_eq!(r.verdict, expect, "{name} seed {seed}: {:?}", r.violations);
    if !words.is_empty() {
        let m = &r.violations[0].message;
        assert!(m.contains(words), "{name} seed {seed}: {m}");
    }
    r
}

#[test]
fn every_deadlock_rule_keeps_transfers_conserved_and_live() {
    for name in ["2pl-wait-die", "2pl-wound-wait", "2pl-timeout"] {
        for seed in 1..=5 {
            let r = check(name, seed, Verdict::Pass, "");
            assert!(r.metrics["cc.commits"] >= 50.0, "{name} seed {seed}");
        }
    }
    let r = check("2pl-wait-die", 1, Verdict::Pass, "");
    assert!(r.metrics["cc.deadlock_victims"] > 0.0);
    let r = check("2pl-wound-wait", 1, Verdict::Pass, "");
    assert!(r.metrics["cc.wounds"] > 0.0);
}

#[test]
fn optimistic_control_retries_conflicts_and_loses_nothing() {
    for name in ["occ-counters", "occ-transfers"] {
        let r = check(name, 1, Verdict::Pass, "");
        assert!(
            r.metrics["cc.abort_rate"] > 0.0,
            "{name}: no conflict happened"
        );
    }
}

/// The transactional checker judges the clients' history in the run: a lost update is a
/// cycle of anti-dependencies (G2, or G-single), early lock release a cycle of overwrites
/// (G0); the family's own lost-update check agrees.
#[test]
fn each_bug_is_caught_with_its_anomaly_class_or_its_deadlock() {
    let cases = [
        ("occ-skip-version-check", "not serializable: G2"),
        ("nemesis-skip-version-check", "not serializable: G"),
        ("2pl-early-lock-release", "not serializable: G0"),
        ("nemesis-early-lock-release", "not serializable: G"),
        (
            "2pl-no-deadlock-handling",
            "deadlock: 2 transactions wait for each other",
        ),
        ("nemesis-no-deadlock-handling", "deadlock: "),
    ];
    for (name, words) in cases {
        let r = check(name, 1, Verdict::Violation, words);
        let v = &r.violations[0];
        if words.starts_with("deadlock") {
            // The family's finding comes before the engine's generic one.
            assert_eq!(v.kind, ViolationKind::Liveness, "{name}");
            assert!(
                r.violations.iter().any(|v| v.source == "liveness"),
                "{name}"
            );
        } else {
            assert!(v.message.contains("Edge by edge"), "{name}: {}", v.message);
            assert!(!v.ops.is_empty() && !v.keys.is_empty(), "{name}: {v:?}");
            let lost = r
                .violations
                .iter()
                .any(|v| v.message.contains("lost update on key"));
            assert!(lost, "{name}: the end check agrees: {:?}", r.violations);
        }
    }
    let r = run_file("2pl-early-lock-release", 1);
    assert!(r.metrics["cc.dirty_reads"] > 0.0);
}

#[test]
fn transactions_are_recorded_as_read_and_write_micro_ops() {
    let r = run_file("occ-transfers", 1);
    let ok = r
        .history
        .events
        .iter()
        .find(|e| e.kind == EventType::Ok && e.f == "transfer")
        .expect("a transfer committed");
    let txn = ok.value["txn"].as_array().expect("micro-ops");
    assert_eq!(txn.len(), 4, "{txn:?}");
    assert_eq!(txn[0][0], "r");
    assert_eq!(txn[1][0], "w");
    // Registers hold write tags: both writes carry this transaction's tag, and every read
    // names a write some committed transaction made (or nil, the initial value).
    assert_eq!(txn[1][2], txn[3][2]);
    let written: Vec<&serde_json::Value> = r
        .history
        .events
        .iter()
        .filter(|e| e.kind == EventType::Ok)
        .flat_map(|e| e.value["txn"].as_array().into_iter().flatten())
        .filter(|m| m[0] == "w")
        .map(|m| &m[2])
        .collect();
    for read in [&txn[0][2], &txn[2][2]] {
        assert!(read.is_null() || written.contains(&read), "{read}");
    }
}

#[test]
fn bad_parameters_are_refused_at_load_time() {
    let base = "description = \"d\"\nalgorithm = \"concurrency\"\nnodes = 2\nduration = \"1s\"\n";
    let cases = [
        ("[workload]\nclients = 1\nmix = { incr = 1 }\n", "keys >= 1"),
        ("[workload]\nclients = 1\nkeys = 1\nmix = { transfer = 1 }\n", "keys >= 2"),
        ("[workload]\nclients = 1\nkeys = 2\nmix = { read = 1 }\n", "unknown operation"),
        ("[params]\nbug = \"skip_version_check\"\ncontrol = \"pessimistic\"\n[workload]\nkeys = 2\n", "belongs to control"),
        ("[workload]\nkeys = 2\n[nemesis]\nkinds = [\"crash\"]\n", "do not crash"),
        (
            "[workload]\nkeys = 2\n[[faults]]\nat = \"100ms\"\naction = \"crash\"\nnode = 0\n",
            "do not crash",
        ),
    ];
    for (rest, words) in cases {
        let text = format!("{base}{rest}");
        let err = Scenario::parse("t.toml", &text)
            .and_then(|sc| concurrency::run(&sc, 1, &RunOptions::default()).map(|_| ()))
            .expect_err(rest);
        assert!(err.message.contains(words), "{rest}: {}", err.message);
    }
}

/// Under `--swarm`, a scenario without `[nemesis]` draws its fault mix from every kind; the
/// shards keep no log, so the draw leaves crashes out, and the correct controls pass.
#[test]
fn the_swarm_never_crashes_a_shard() {
    let path = format!(
        "{}/../scenarios/concurrency/2pl-wait-die.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let sc = Scenario::load(&path).expect("scenario loads");
    assert!(
        sc.nemesis.is_none(),
        "the case needs a scenario without [nemesis]"
    );
    let opts = RunOptions {
        swarm: true,
        ..RunOptions::default()
    };
    let mut kinds_drawn = std::collections::BTreeSet::new();
    for seed in 1..=40 {
        let r = algorithms::run(&sc, seed, &opts).expect("runs");
        let drawn = r.derived.clone().expect("a swarm run says what it drew");
        assert!(!drawn.contains("crash"), "seed {seed}: {drawn}");
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "seed {seed} ({drawn}): {:?}",
            r.violations
        );
        kinds_drawn.extend(
            ["partition", "pause", "clock", "clog", "swizzle"]
                .into_iter()
                .filter(|k| drawn.contains(k)),
        );
    }
    assert_eq!(
        kinds_drawn.len(),
        5,
        "every other kind is drawn somewhere: {kinds_drawn:?}"
    );
}
