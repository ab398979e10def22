//! Saga behaviour: the styles complete or compensate, the orchestrator resumes after a crash,
//! the semantic lock prevents the anomalies its absence shows, each bug is caught with the
//! message that names it, and bad parameters are refused at load time.

use algorithms::saga;
use sim_core::{RunOptions, RunResult, Scenario, Verdict, ViolationKind};

fn run_file(name: &str, seed: u64) -> RunResult {
    let path = format!(
        "{}/../scenarios/saga/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let sc = Scenario::load(&path).expect("scenario loads");
    // As a user runs it: prepared against the registry, so the liveness phase is on.
    algorithms::run(&sc, seed, &RunOptions::default()).expect("runs")
}

/// One check per case: the verdict, and the words the first violation must contain.
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
fn both_styles_complete_and_compensate_sagas() {
    for name in ["calm", "choreographed-calm"] {
        let r = check(name, 1, Verdict::Pass, "");
        assert!(r.metrics["saga.completed"] >= 20.0, "{name}");
        assert!(r.metrics["saga.compensated"] >= 5.0, "{name}");
        assert_eq!(r.metrics["saga.unended"], 0.0, "{name}");
    }
}

/// Without contention: choreography ends a saga sooner (no round trip through a coordinator
/// between steps), orchestration sends fewer messages (each step is one request and one
/// reply; choreography also reports the end to the order service).
#[test]
fn choreography_is_faster_and_orchestration_sends_fewer_messages() {
    let mut m = Vec::new();
    for style in ["orchestrated", "choreographed"] {
        let text = format!("description = \"d\"\nalgorithm = \"saga\"\nnodes = 4\nduration = \"3s\"\nquiet = \"1s\"\n[params]\nstyle = \"{style}\"\nitems = 50\naccounts = 50\n[workload]\nclients = 2\nthink = \"20ms\"\nmix = {{ order = 1 }}\n");
        let sc = Scenario::parse("t.toml", &text).expect("parses");
        let r = saga::run(&sc, 1, &RunOptions::default()).expect("runs");
        assert_eq!(r.verdict, Verdict::Pass);
        m.push((
            r.metrics["saga.messages_per_saga"],
            r.metrics["saga.duration_ms.p50"],
        ));
    }
    let (orch, chor) = (m[0], m[1]);
    assert!(
        orch.0 < chor.0,
        "messages: orchestrated {orch:?} choreographed {chor:?}"
    );
    assert!(
        chor.1 < orch.1,
        "p50: orchestrated {orch:?} choreographed {chor:?}"
    );
}

#[test]
fn the_orchestrator_resumes_from_its_log_after_a_crash() {
    for seed in 1..=5 {
        let r = check("orchestrator-crash", seed, Verdict::Pass, "");
        assert!(r.metrics["saga.resumed"] >= 1.0, "seed {seed}");
    }
    check(
        "orchestrator-crash-log-not-persisted",
        2,
        Verdict::Violation,
        "did not end completed everywhere or compensated everywhere",
    );
}

#[test]
fn the_semantic_lock_prevents_the_isolation_anomalies() {
    for style in ["orchestrated", "choreographed"] {
        let r = check(&format!("contention-{style}"), 1, Verdict::Pass, "");
        assert!(
            r.metrics["saga.busy"] > 0.0,
            "{style}: the lock was never needed"
        );
        assert_eq!(r.metrics["saga.lost_updates"], 0.0);
        assert_eq!(r.metrics["saga.dirty_reads"], 0.0);
        let bad = check(
            &format!("contention-{style}-no-semantic-lock"),
            1,
            Verdict::Violation,
            "",
        );
        assert!(bad.metrics["saga.lost_updates"] >= 1.0, "{style}");
    }
}

#[test]
fn each_bug_is_caught_with_a_message_naming_the_saga() {
    let cases = [
        (
            "duplicates-non-idempotent-compensation",
            "compensation applied 2 times",
        ),
        ("lossy-step-retried-without-dedup", "step applied 2 times"),
        (
            "calm-compensations-in-wrong-order",
            "compensated out of order",
        ),
        (
            "nemesis-compensations-in-wrong-order",
            "compensated out of order",
        ),
        (
            "contention-orchestrated-no-semantic-lock",
            "money not conserved",
        ),
    ];
    for (name, words) in cases {
        let r = check(name, 1, Verdict::Violation, words);
        assert!(r.violations[0].message.contains("saga n") || words.contains("money"));
    }
}

#[test]
fn bad_parameters_are_refused_at_load_time() {
    let base = "description = \"d\"\nalgorithm = \"saga\"\nduration = \"1s\"\n";
    let cases = [
        ("nodes = 3\n", "uses nodes = 4"),
        (
            "nodes = 4\n[params]\nstyle = \"choreographed\"\nbug = \"log_not_persisted\"\n",
            "orchestrator's",
        ),
        ("nodes = 4\n[params]\nship_fail_rate = 2.0\n", "probability"),
        (
            "nodes = 4\n[workload]\nclients = 1\nmix = { read = 1 }\n",
            "only `order`",
        ),
        (
            "nodes = 4\n[params]\nbug = \"no_such_bug\"\n",
            "no_such_bug",
        ),
    ];
    for (rest, words) in cases {
        let text = format!("{base}{rest}");
        let err = Scenario::parse("t.toml", &text)
            .and_then(|sc| saga::run(&sc, 1, &RunOptions::default()).map(|_| ()))
            .expect_err(rest);
        assert!(err.message.contains(words), "{rest}: {}", err.message);
    }
}

/// The liveness phase: shipping crashes and the quiet period does not restart it, so every
/// saga started after the heal waits at its shipping step. The finding names the saga, the
/// step and how long it has been open, and comes before the engine's generic one.
#[test]
fn a_saga_stuck_after_the_heal_is_a_liveness_violation_naming_its_step() {
    let text = "description = \"d\"\nalgorithm = \"saga\"\nnodes = 4\nduration = \"10s\"\nquiet = \"6s\"\nquiet_restarts = false\n[params]\nitems = 50\naccounts = 50\n[workload]\nclients = 2\nthink = \"20ms\"\ntimeout = \"2s\"\nmix = { order = 1 }\n[[faults]]\nat = \"1s\"\naction = \"crash\"\nnode = 3\n";
    let sc = Scenario::parse("t.toml", text).expect("parses");
    let r = algorithms::run(&sc, 1, &RunOptions::default()).expect("runs");
    assert_eq!(r.verdict, Verdict::Violation);
    let v = &r.violations[0];
    assert_eq!(v.kind, ViolationKind::Liveness, "{v:?}");
    assert_eq!(v.source, "saga");
    for words in [
        "after the heal at 4.000s",
        "is stuck running step 2 (shipping)",
        "open for",
        "longer than the 1.860s",
    ] {
        assert!(v.message.contains(words), "{words}: {}", v.message);
    }
    assert_eq!(v.nodes, vec![0, 3]);
    // The same run with shipping restarted at the heal passes.
    let healed = Scenario::parse("t.toml", &text.replace("quiet_restarts = false\n", "")).unwrap();
    let r = algorithms::run(&healed, 1, &RunOptions::default()).expect("runs");
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.violations);
}

#[test]
fn a_quiet_period_too_short_for_the_last_saga_is_refused_at_load() {
    let text =
        "description = \"d\"\nalgorithm = \"saga\"\nnodes = 4\nduration = \"8s\"\nquiet = \"4s\"\n";
    let sc = Scenario::parse("t.toml", text).expect("parses");
    let e = algorithms::run(&sc, 1, &RunOptions::default()).expect_err("refused");
    assert!(
        e.message.contains("use quiet = \"5360ms\" or more"),
        "{}",
        e.message
    );
}
