//! The step-through timeline's data: a long run embeds at most the window, and the window
//! holds the violation; the snapshot carries the algorithm's state summaries; the page is the
//! same bytes on every run.

mod common;

use reports::timeline::{data, thousands, window, EVENTS_AFTER, EVENTS_MAX};
use reports::{write_run_report, ReportOptions};
use sim_core::trace::{TraceEvent, TraceKind};
use sim_core::{RunOptions, Scenario};

fn ev(time_ns: u64, kind: TraceKind) -> TraceEvent {
    TraceEvent {
        time_ns,
        kind,
        node: 0,
        peer: None,
        label: String::new(),
        msg_id: None,
    }
}

#[test]
fn a_million_events_window_around_the_violation_or_else_the_first_fault() {
    let mut t: Vec<TraceEvent> = (0..1_000_000).map(|i| ev(i, TraceKind::Timer)).collect();
    t[300_000].kind = TraceKind::Fault;
    t[700_000].kind = TraceKind::Violation;
    let w = window(&t, None);
    assert_eq!(w.anchor, Some(700_000));
    assert_eq!(w.end - w.first, EVENTS_MAX);
    assert_eq!(w.end, 700_000 + EVENTS_AFTER);
    // Without a violation, the first fault; near the start, the window fills forwards.
    t[700_000].kind = TraceKind::Timer;
    assert_eq!(window(&t, None).anchor, Some(300_000));
    t[300_000].kind = TraceKind::Timer;
    t[10].kind = TraceKind::Fault;
    let w = window(&t, None);
    assert_eq!((w.first, w.end), (0, EVENTS_MAX));
    // A violation with no event of its own anchors at its time.
    let w = window(&t, Some(600_000));
    assert_eq!((w.anchor, w.end), (Some(600_000), 601_000));
    // A violation at the very end: the window ends with it.
    t[999_999].kind = TraceKind::Violation;
    let w = window(&t, None);
    assert_eq!((w.first, w.end), (1_000_000 - EVENTS_MAX, 1_000_000));
}

/// Runs `path` with its duration replaced, the trace kept.
fn run_for(path: &str, duration: &str) -> sim_core::RunResult {
    let path = common::root().join(path);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = regex_free_replace(&text, "duration", &format!("duration = \"{duration}\""));
    let sc = Scenario::parse(&path.to_string_lossy(), &text).expect("scenario parses");
    let opts = RunOptions {
        keep_trace: true,
        ..Default::default()
    };
    algorithms::run(&sc, sc.seed, &opts).expect("scenario runs")
}

/// Replaces the first top-level line starting with `key` by `line`.
fn regex_free_replace(text: &str, key: &str, line: &str) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.trim_start().starts_with(key) && l.contains('=') {
                done = true;
                line.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_long_run_embeds_the_window_and_the_violation_event() {
    let r =
        common::run(&common::root().join("scenarios/raft/figure8-scripted-commit-old-term.toml"));
    let trace = r.trace.as_ref().unwrap();
    assert!(
        trace.len() > EVENTS_MAX,
        "{} events: not a long run",
        trace.len()
    );
    let v = trace
        .iter()
        .position(|e| e.kind == TraceKind::Violation)
        .expect("the run fails");
    let d = data(&r);
    let first = d["first"].as_u64().unwrap() as usize;
    let events = d["events"].as_array().unwrap();
    assert!(events.len() <= EVENTS_MAX, "{} embedded", events.len());
    assert!(
        first <= v && v < first + events.len(),
        "{v} not in the window"
    );
    let e = &events[v - first];
    assert_eq!(
        e[1], 12,
        "the embedded event at the violation's index is the violation"
    );
    assert_eq!(e[0], r.violations[0].time_ns);
    // The snapshot at the window's first event carries the servers' Raft state.
    let init = &d["init"]["summary"];
    let roles: Vec<&str> = (0..r.servers)
        .filter_map(|n| init[n]["role"].as_str())
        .collect();
    assert!(
        roles.contains(&"leader") || roles.contains(&"follower"),
        "no Raft summary at the window's start: {init}"
    );
    assert!(d["summaries"].as_array().unwrap().len() > 10);
    let dir = common::fresh_dir("timeline-long");
    let w = write_run_report(&dir, &r, "x", &ReportOptions::default()).unwrap();
    let html = std::fs::read_to_string(&w.index).unwrap();
    let said = format!(
        "{} earlier and 0 later events are left out",
        thousands(first as u64)
    );
    assert!(html.contains(&said), "the page does not say: {said}");
}

#[test]
fn the_page_of_a_longer_run_stays_bounded_and_identical_across_runs() {
    // The nemesis scenario run for 60 s instead of its own duration: far more events than the
    // window, and no violation, so the window sits around the first fault.
    let a = run_for("scenarios/raft/nemesis-correct.toml", "60s");
    let b = run_for("scenarios/raft/nemesis-correct.toml", "60s");
    assert!(a.trace.as_ref().unwrap().len() > 10 * EVENTS_MAX);
    let (da, db) = (
        common::fresh_dir("timeline-a"),
        common::fresh_dir("timeline-b"),
    );
    let wa = write_run_report(&da, &a, "x", &ReportOptions::default()).unwrap();
    let wb = write_run_report(&db, &b, "x", &ReportOptions::default()).unwrap();
    let (ha, hb) = (
        std::fs::read(&wa.index).unwrap(),
        std::fs::read(&wb.index).unwrap(),
    );
    assert!(
        ha == hb,
        "index.html differs between two runs of the same seed"
    );
    let d = data(&a);
    assert_eq!(d["events"].as_array().unwrap().len(), EVENTS_MAX);
}

/// Every family's nodes describe themselves on the timeline: for a catalogue scenario of each
/// (run with the trace kept, as `--report` does), the page's data carries state summaries, a
/// node's summary changes during the run, the role a student looks for is named, and two runs
/// of the seed give the same summaries.
#[test]
fn every_family_fills_the_timeline_with_summaries_that_change() {
    // (scenario, duration override, a role some summary must name)
    let table: &[(&str, Option<&str>, &str)] = &[
        ("scenarios/paxos/synod-calm.toml", None, "proposer, phase 2"),
        ("scenarios/paxos/leader-crash.toml", None, "leader"),
        (
            "scenarios/commit/2pc-coordinator-crash.toml",
            None,
            "coordinator",
        ),
        (
            "scenarios/commit/3pc-coordinator-crash.toml",
            None,
            "coordinator",
        ),
        (
            "scenarios/commit/paxos-commit-coordinator-crash.toml",
            None,
            "coordinator, acceptor",
        ),
        (
            "scenarios/saga/orchestrator-crash.toml",
            None,
            "orchestrator",
        ),
        (
            "scenarios/saga/choreographed-calm.toml",
            None,
            "order service",
        ),
        ("scenarios/concurrency/2pl-wait-die.toml", None, "locking"),
        ("scenarios/concurrency/occ-transfers.toml", None, "voting"),
        ("scenarios/hashing/ring-nemesis.toml", None, "member"),
        ("scenarios/cache/calm.toml", None, "database"),
        ("scenarios/broadcast/partition.toml", None, "server"),
        ("scenarios/echo/hello.toml", None, "echo server"),
        ("scenarios/bench/flood.toml", Some("200ms"), "forwarder"),
        ("scenarios/raft/leader-isolated.toml", None, "leader"),
        ("scenarios/lock/zk-calm.toml", None, "holder (working)"),
        ("scenarios/primary_backup/calm.toml", None, "primary"),
    ];
    for (path, duration, role) in table {
        let r = match duration {
            Some(d) => run_for(path, d),
            None => common::run(&common::root().join(path)),
        };
        let d = data(&r);
        // Each node's summaries in the window: the snapshot's, then each point.
        let mut seen: Vec<Vec<String>> = vec![Vec::new(); d["names"].as_array().unwrap().len()];
        for (n, s) in d["init"]["summary"].as_array().unwrap().iter().enumerate() {
            if !s.is_null() {
                seen[n].push(s.to_string());
            }
        }
        let points = d["summaries"].as_array().unwrap();
        for p in points {
            let (n, s) = (p[1].as_u64().unwrap() as usize, &p[2]);
            assert!(
                s["role"].is_string() || s["detail"].is_string(),
                "{path}: an empty summary {s}"
            );
            seen[n].push(s.to_string());
        }
        assert!(!points.is_empty(), "{path}: no summary in the window");
        let changing = seen.iter().filter(|v| {
            let mut u = (*v).clone();
            u.sort();
            u.dedup();
            u.len() >= 2
        });
        assert!(
            changing.count() > 0,
            "{path}: no node's summary changes in the window"
        );
        let all = seen.concat().concat();
        assert!(
            all.contains(&format!("\"role\":\"{role}\"")),
            "{path}: no summary names the role {role:?}"
        );
        // Deterministic: the same seed gives the same summaries.
        let again = match duration {
            Some(dur) => run_for(path, dur),
            None => common::run(&common::root().join(path)),
        };
        assert_eq!(
            r.summaries, again.summaries,
            "{path}: summaries differ between two runs of the seed"
        );
    }
}

/// A server paused, then crashed: the requests held for it are lost with no trace event of
/// their own. The run lists them with the crash, and the page's crash effect carries them, so
/// the timeline stops showing them in flight.
#[test]
fn requests_held_at_a_paused_server_that_crashes_are_not_left_in_flight() {
    let text = include_str!("data/paused-then-crashed.toml");
    let sc = Scenario::parse("paused-then-crashed.toml", text).expect("scenario parses");
    let opts = RunOptions {
        keep_trace: true,
        ..Default::default()
    };
    let r = algorithms::run(&sc, 1, &opts).expect("scenario runs");
    let crash = r
        .fault_log
        .iter()
        .position(|f| f.action == "crash")
        .expect("the crash happened");
    assert!(
        !r.lost_at_crash.is_empty(),
        "no request was held at the paused server"
    );
    let trace = r.trace.as_ref().unwrap();
    for (f, id) in &r.lost_at_crash {
        assert_eq!(*f, crash);
        let of_id = |k: TraceKind| {
            trace
                .iter()
                .filter(|e| e.kind == k && e.msg_id == Some(*id))
                .count()
        };
        // Sent to n0, never delivered nor dropped: only this list says it is gone.
        assert_eq!(of_id(TraceKind::Send), 1);
        let arrived: usize = [
            TraceKind::Deliver,
            TraceKind::DropCut,
            TraceKind::DropLoss,
            TraceKind::DropDown,
        ]
        .into_iter()
        .map(of_id)
        .sum();
        assert_eq!(arrived, 0, "message #{id} has an event of its own");
    }
    let d = data(&r);
    let effect = d["effects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x[1] == "crash")
        .expect("the crash's effect is embedded");
    let ids: Vec<u64> = r.lost_at_crash.iter().map(|(_, id)| *id).collect();
    assert_eq!(effect[3], serde_json::json!(ids));
    // Keeping the list does not change the run: the same hash without the trace.
    let plain = algorithms::run(&sc, 1, &RunOptions::default()).unwrap();
    assert_eq!(plain.trace_hash, r.trace_hash);
    assert!(plain.lost_at_crash.is_empty());
}
