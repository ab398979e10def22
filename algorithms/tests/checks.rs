//! Checks that cannot be fooled: the liveness phase, scenario assertions and vacuity warnings,
//! through the library as a scenario file would drive them.

use algorithms::run;
use sim_core::{RunOptions, RunResult, Scenario, Verdict, ViolationKind};

fn run_text(text: &str, seed: u64) -> RunResult {
    let sc = Scenario::parse("t.toml", text).unwrap_or_else(|e| panic!("{e}"));
    run(&sc, seed, &RunOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn file(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../scenarios/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("scenario file")
}

const RAFT: &str = "description = \"t\"\nalgorithm = \"raft\"\nnodes = 5\nduration = \"10s\"\nquiet = \"3s\"\n[network]\nlatency = { dist = \"uniform\", min = \"1ms\", max = \"10ms\" }\n[workload]\nclients = 3\nkeys = 2\nmix = { read = 1, write = 1 }\n";

#[test]
fn equal_election_timeouts_fail_liveness_naming_the_missing_leader() {
    for seed in 1..=5 {
        let r = run_text(&file("raft/equal-timeouts-no-leader.toml"), seed);
        assert_eq!(r.verdict, Verdict::Violation, "seed {seed}");
        assert!(r
            .violations
            .iter()
            .all(|v| v.kind == ViolationKind::Liveness));
        assert!(
            r.violations
                .iter()
                .any(|v| v.message.starts_with("no leader")),
            "{:?}",
            r.violations
        );
        // Nothing unsafe happened: no safety or linearizability violation.
        assert!(r.violations.iter().all(|v| v.source != "linearizability"));
    }
}

#[test]
fn the_same_cluster_with_random_timeouts_passes_liveness() {
    for seed in 1..=20 {
        let r = run_text(RAFT, seed);
        assert_eq!(r.verdict, Verdict::Pass, "seed {seed}: {:?}", r.violations);
        assert!(r.metrics["ops.ok"] > 0.0);
    }
}

#[test]
fn liveness_can_be_switched_off_and_then_the_stuck_cluster_passes() {
    let text = format!(
        "{RAFT}[params]\nelection_timeout_min = \"150ms\"\nelection_timeout_max = \"150ms\"\n[liveness]\nenabled = false\n"
    );
    let r = run_text(&text, 1);
    assert_eq!(r.verdict, Verdict::Pass);
    // ... but the vacuity warning says that nothing was tested.
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("no operation completed ok")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn the_course_test_passes_and_fails_without_check_quorum() {
    let text = file("raft/course-no-quorum-no-leader.toml");
    for seed in 1..=10 {
        let r = run_text(&text, seed);
        assert_eq!(r.verdict, Verdict::Pass, "seed {seed}: {:?}", r.violations);
    }
    let r = run_text(
        &text.replace("check_quorum = true", "check_quorum = false"),
        1,
    );
    assert_eq!(r.verdict, Verdict::Violation);
    let v = &r.violations[0];
    assert_eq!(v.kind, ViolationKind::Assertion);
    assert!(
        v.message.contains("no leader without a quorum"),
        "{}",
        v.message
    );
    assert!(!v.nodes.is_empty(), "the violation names the leader");
}

#[test]
fn metric_assertions_quote_the_value_seen() {
    let text = format!("{RAFT}[[assert]]\nmetric = \"net.sent\"\nper = \"ops.ok\"\nmax = 1\n");
    let r = run_text(&text, 1);
    assert_eq!(r.verdict, Verdict::Violation);
    let v = &r.violations[0];
    assert_eq!(v.kind, ViolationKind::Assertion);
    assert!(
        v.message
            .contains("`net.sent per ops.ok <= 1` failed: the value is"),
        "{}",
        v.message
    );
    let text = format!("{RAFT}[[assert]]\nmetric = \"no.such.metric\"\nmin = 1\n");
    let r = run_text(&text, 1);
    assert!(
        r.violations[0].message.contains("was not recorded"),
        "{}",
        r.violations[0].message
    );
}

#[test]
fn sometimes_assertions_are_reported_per_run() {
    let text = format!(
        "{RAFT}[[faults]]\nat = \"2s\"\naction = \"crash\"\nnode = \"leader\"\nfor = \"1s\"\n[[assert]]\nsometimes = {{ metric = \"net.dropped_down\", min = 1 }}\n[[assert]]\nsometimes = {{ metric = \"net.dropped_cut\", min = 1 }}\n"
    );
    let r = run_text(&text, 1);
    assert_eq!(r.verdict, Verdict::Pass);
    let held: Vec<bool> = r.sometimes.iter().map(|s| s.held).collect();
    assert_eq!(held, vec![true, false]);
}

#[test]
fn a_scripted_fault_that_never_bites_is_a_warning() {
    // A one-way partition of a client's own links: servers never send it anything it would
    // miss in 1 ms, and the pause of an idle client delays nothing.
    let text = format!(
        "{RAFT}[[faults]]\nat = \"2s\"\naction = \"crash\"\nnode = \"leader\"\nfor = \"1s\"\n[[faults]]\nat = \"4s\"\naction = \"clog\"\nnode = 2\nfor = \"1ns\"\n"
    );
    let r = run_text(&text, 1);
    assert!(
        r.warnings
            .iter()
            .any(|w| w.starts_with("scripted fault #2 (clog at 4.000s)")),
        "{:?}",
        r.warnings
    );
    assert!(
        !r.warnings
            .iter()
            .any(|w| w.starts_with("scripted fault #1")),
        "the crash of the leader bit: {:?}",
        r.warnings
    );
}

#[test]
fn a_lossy_network_that_drops_everything_warns_that_nothing_completed() {
    let text = RAFT.replace("[workload]", "[liveness]\nenabled = false\n[workload]");
    let text = text.replace("max = \"10ms\" }", "max = \"10ms\" }\nloss = 1.0");
    let r = run_text(&text, 1);
    assert_eq!(r.verdict, Verdict::Pass);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("no operation completed ok")));
}

#[test]
fn the_liveness_bug_switch_is_caught_and_only_by_liveness() {
    let text = file("raft/leader-crash-fixed-election-timeout.toml");
    let mut caught = 0;
    for seed in 1..=30 {
        let r = run_text(&text, seed);
        if r.verdict == Verdict::Violation {
            caught += 1;
            assert!(
                r.violations
                    .iter()
                    .all(|v| v.kind == ViolationKind::Liveness),
                "seed {seed}: {:?}",
                r.violations
            );
        }
    }
    assert!(caught >= 5, "caught on {caught} of 30 seeds");
}

#[test]
fn metric_assertions_see_the_metrics_a_family_adds_after_the_run() {
    // `lock.watch_messages_per_handover` is computed by the lock family once the simulation
    // has ended; the herd bug raises it far above the bound, the correct recipe stays under.
    let assert = "\n[[assert]]\nmetric = \"lock.watch_messages_per_handover\"\nmax = 5\n";
    let herd = run_text(&(file("lock/zk-herd.toml") + assert), 1);
    assert_eq!(herd.verdict, Verdict::Violation);
    assert_eq!(herd.violations[0].kind, ViolationKind::Assertion);
    assert!(
        herd.violations[0].message.contains("the value is"),
        "{:?}",
        herd.violations
    );
    let calm = run_text(&(file("lock/zk-no-herd.toml") + assert), 1);
    assert_eq!(calm.verdict, Verdict::Pass, "{:?}", calm.violations);
}
