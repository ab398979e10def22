//! Figure 8's report shows the overwrite: the scripted Figure 8 run stops when a leader that
//! lacks a committed entry is elected, and the same run carried on past that violation (for
//! drawing only) shows the committed entries replaced by the new leader's term in the log
//! panel's last moment.

mod common;

use reports::raft_log::{LogPlot, Moment};
use reports::{write_run_report, AfterViolation, ReportOptions};
use sim_core::{RunOptions, RunResult, Scenario};

const SCENARIO: &str = "scenarios/raft/figure8-scripted-commit-old-term.toml";
const AFTER_NS: u64 = 2_000_000_000;

/// The run stopped at its first violation (as `distsim run` does) and the same run carried on
/// for two seconds past it.
fn runs() -> (RunResult, RunResult) {
    let path = common::root().join(SCENARIO);
    let sc = Scenario::load(&path.to_string_lossy()).expect("scenario loads");
    let opts = RunOptions {
        keep_trace: true,
        ..Default::default()
    };
    let stopped = algorithms::run(&sc, sc.seed, &opts).expect("runs");
    let carried = algorithms::run(
        &sc,
        sc.seed,
        &RunOptions {
            run_after_violation_ns: Some(AFTER_NS),
            ..opts
        },
    )
    .expect("runs");
    (stopped, carried)
}

fn log_moments(r: &RunResult, violation_ns: u64, end_ns: u64, after: Option<u64>) -> Vec<Moment> {
    let s = |n: &str| r.series.get(n).map(|v| v.as_slice()).unwrap_or(&[]);
    LogPlot {
        entries: s("log.term"),
        commit: s("log.commit"),
        leader: s("state.leader"),
        term: s("term"),
        violation_ns: Some(violation_ns),
        end_ns,
        after_end_ns: after,
    }
    .moments()
}

#[test]
fn the_carried_on_run_is_the_stopped_run_up_to_the_violation() {
    let (stopped, carried) = runs();
    let v = &stopped.violations[0];
    assert_eq!(v.message, carried.violations[0].message);
    assert_eq!(v.time_ns, carried.violations[0].time_ns);
    assert!(carried.simulated_ns > v.time_ns && carried.simulated_ns <= v.time_ns + AFTER_NS);
    for (name, points) in &stopped.series {
        let longer = &carried.series[name];
        assert_eq!(&longer[..points.len()], &points[..], "{name}: another path");
        assert!(longer[points.len()..]
            .iter()
            .all(|p| p.time_ns >= v.time_ns));
    }
    // The carried-on run is cut, not finished: nothing judged at its end.
    assert_eq!(carried.verdict, stopped.verdict);
}

#[test]
fn the_log_panel_shows_the_committed_entry_overwritten_by_the_new_leader() {
    let (stopped, carried) = runs();
    let v = stopped.violations[0].time_ns;
    let m = log_moments(
        &carried,
        v,
        stopped.simulated_ns,
        Some(carried.simulated_ns),
    );
    let (at_violation, after) = (&m[m.len() - 2], &m[m.len() - 1]);
    assert_eq!(at_violation.time_ns, v);
    assert!(
        after.label.contains("after the violation"),
        "{}",
        after.label
    );
    // At the violation: the new leader lacks committed entries (leader completeness) ...
    let losses = at_violation.leader_losses();
    assert!(!losses.is_empty(), "{at_violation:?}");
    // ... and two seconds on, a server that held one of them holds the new leader's term
    // there: the committed entry is overwritten.
    let over = after.overwrites(at_violation);
    assert!(
        over.iter().any(|o| losses.iter().any(|l| l.0 == o.index)
            && o.committed_term == losses[0].1
            && o.term == at_violation.leader_term),
        "no committed entry at {losses:?} overwritten with term {}: {over:?}",
        at_violation.leader_term
    );
    // The run stopped at the violation alone cannot show it.
    let m = log_moments(&stopped, v, stopped.simulated_ns, None);
    assert!(m.windows(2).all(|w| w[1].overwrites(&w[0]).is_empty()));
}

#[test]
fn the_report_draws_the_overwrite_only_from_the_carried_on_run() {
    let (stopped, carried) = runs();
    let svg = |after: Option<AfterViolation>, name: &str| {
        let dir = common::fresh_dir(name);
        let opts = ReportOptions {
            after,
            ..ReportOptions::default()
        };
        write_run_report(&dir, &stopped, "distsim run x", &opts).expect("report");
        let svg = std::fs::read_to_string(dir.join("panel-raft-log.svg")).expect("log panel");
        let _ = std::fs::remove_dir_all(&dir);
        svg
    };
    let with = svg(
        Some(AfterViolation {
            after_ns: AFTER_NS,
            end_ns: carried.simulated_ns,
            series: carried.series.clone(),
        }),
        "fig8-after",
    );
    assert!(
        with.contains("committed entries overwritten"),
        "no overwrite drawn"
    );
    assert!(with.contains("after the violation"));
    let without = svg(None, "fig8-stopped");
    assert!(!without.contains("committed entries overwritten"));
}
