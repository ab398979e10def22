//! Atomic commit end to end: Gray and Lamport's message counts, 2PC blocking where 3PC and
//! Paxos Commit do not, 3PC splitting under a partition where Paxos Commit does not, every bug
//! switch covered by a scripted and a nemesis scenario that catch it, and bad parameters
//! refused with located errors.

use algorithms::commit::{CommitBug, BUGS};
use sim_core::trace::TraceKind;
use sim_core::{RunOptions, RunResult, Scenario, Verdict};

fn load(name: &str) -> Scenario {
    let path = format!(
        "{}/../scenarios/commit/{name}.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn run(name: &str, seed: u64) -> RunResult {
    algorithms::run(&load(name), seed, &RunOptions::default()).expect("scenario runs")
}

fn why(r: &RunResult) -> String {
    r.violations
        .first()
        .map(|v| v.message.clone())
        .unwrap_or_default()
}

#[test]
fn fault_free_counts_match_gray_and_lamport() {
    // N = 5 participants, f = 1, the coordinator on a participant's machine.
    let (n, f) = (5.0, 1.0);
    for (name, delays, messages) in [
        ("count-2pc", 4.0, 3.0 * n - 3.0),
        ("count-paxos-commit", 5.0, n * (f + 3.0) - 3.0),
        ("count-3pc", 6.0, 5.0 * n - 5.0),
    ] {
        for seed in 1..4 {
            let r = run(name, seed);
            assert_eq!(r.verdict, Verdict::Pass, "{name} seed {seed}: {}", why(&r));
            let m = |k: &str| r.metrics[k];
            assert!(
                m("commit.committed") >= 50.0,
                "{name}: too few transactions"
            );
            assert_eq!(
                m("commit.aborted"),
                0.0,
                "{name} seed {seed}: contention spoils the count"
            );
            assert_eq!(m("commit.delays_max"), delays, "{name} seed {seed}");
            assert_eq!(m("commit.delays_mean"), delays, "{name} seed {seed}");
            assert_eq!(m("commit.messages_per_txn"), messages, "{name} seed {seed}");
        }
    }
    // The paper's 12 and 17.
    assert_eq!(run("count-2pc", 1).metrics["commit.messages_per_txn"], 12.0);
    assert_eq!(
        run("count-paxos-commit", 1).metrics["commit.messages_per_txn"],
        17.0
    );
}

/// Counts from the run's trace, not from the family's own counters: for each transaction, the
/// messages between participants of the kinds Gray and Lamport count, and the message delays
/// until the last participant receives the commit. Clients run one transaction at a time, so
/// a transaction is everything caused by one client request: a message belongs to the request
/// whose message its sender last handled, and its causal depth is one more than the deepest
/// message of that request its sender has handled. Returns each transaction's (messages,
/// delays), for the transactions that committed.
fn counted_from_trace(name: &str, seed: u64) -> Vec<(u64, u64)> {
    use std::collections::BTreeMap;
    let opts = RunOptions {
        keep_trace: true,
        ..RunOptions::default()
    };
    let r = algorithms::run(&load(name), seed, &opts).expect("scenario runs");
    let trace = r.trace.as_ref().expect("trace kept");
    let paper = [
        "prepare",
        "vote_yes",
        "vote_no",
        "precommit",
        "preack",
        "commit",
        "abort",
        "phase2a",
        "phase2b",
    ];
    let servers = r.servers;
    // Per request: (paper messages, deepest commit delivered).
    let mut txns: Vec<(u64, u64)> = Vec::new();
    let mut msg: BTreeMap<u64, (usize, u64)> = BTreeMap::new(); // id -> (request, depth)
    let mut depth: BTreeMap<(usize, usize), u64> = BTreeMap::new(); // (request, node) -> deepest
    let mut cause: BTreeMap<usize, usize> = BTreeMap::new(); // node -> request last handled
    for e in trace {
        let id = e.msg_id;
        match e.kind {
            TraceKind::Send if e.node >= servers && e.label == "begin" => {
                txns.push((0, 0));
                msg.insert(id.unwrap(), (txns.len() - 1, 1));
            }
            TraceKind::Send => {
                let Some(&t) = cause.get(&e.node) else {
                    continue; // before any request
                };
                let d = depth.get(&(t, e.node)).copied().unwrap_or(0) + 1;
                msg.insert(id.unwrap(), (t, d));
                let to_server = e.peer.is_some_and(|p| p < servers);
                if e.node < servers && to_server && paper.contains(&e.label.as_str()) {
                    txns[t].0 += 1;
                }
            }
            TraceKind::Deliver => {
                let Some(&(t, d)) = id.and_then(|id| msg.get(&id)) else {
                    continue;
                };
                cause.insert(e.node, t);
                let nd = depth.entry((t, e.node)).or_insert(0);
                *nd = (*nd).max(d);
                if e.label == "commit" {
                    txns[t].1 = txns[t].1.max(d);
                }
            }
            _ => {}
        }
    }
    let committed: Vec<(u64, u64)> = txns.into_iter().filter(|t| t.1 > 0).collect();
    assert_eq!(
        committed.len() as f64,
        r.metrics["commit.committed"],
        "{name} seed {seed}: a committed transaction not found in the trace"
    );
    committed
}

#[test]
fn the_trace_counts_gray_and_lamports_messages_and_delays() {
    // Gray and Lamport's table, N = 5, F = 1: 2PC 4 delays and 3N - 3 = 12 messages, Paxos
    // Commit 5 delays and N(F + 3) - 3 = 17 messages; 3PC (ours) 6 delays and 5N - 5 = 20.
    for (name, delays, messages) in [
        ("count-2pc", 4, 12),
        ("count-paxos-commit", 5, 17),
        ("count-3pc", 6, 20),
    ] {
        for seed in 1..3 {
            let txns = counted_from_trace(name, seed);
            assert!(txns.len() >= 50, "{name} seed {seed}: too few transactions");
            for (i, &(m, d)) in txns.iter().enumerate() {
                assert_eq!(
                    m, messages,
                    "{name} seed {seed}: transaction {i}'s messages"
                );
                assert_eq!(d, delays, "{name} seed {seed}: transaction {i}'s delays");
            }
        }
    }
}

#[test]
fn two_phase_commit_blocks_where_three_phase_and_paxos_commit_do_not() {
    let r = run("2pc-coordinator-crash", 1);
    assert_eq!(r.verdict, Verdict::Violation);
    let v = &r.violations[0];
    assert_eq!(v.kind, sim_core::ViolationKind::Liveness);
    assert!(
        v.message.starts_with("blocked: participant n1 in doubt on"),
        "{}",
        v.message
    );
    assert!(v.message.contains("coordinator n0 down"), "{}", v.message);
    // How long: n1 voted yes just before n0 crashed at 2 s and is still in doubt at the
    // liveness deadline (the heal at 5 s plus the family's 1.5 s bound).
    assert!(
        v.message.contains("(4.5") && v.message.contains("by 6.500s) holding locks"),
        "{}",
        v.message
    );
    assert!(
        v.nodes.contains(&1) && v.nodes.contains(&0),
        "{:?}",
        v.nodes
    );
    // The worse timeline: the peers that could tell are down with the coordinator.
    let r = run("2pc-coordinator-and-p1-crash", 2);
    let msg = why(&r);
    assert!(msg.starts_with("blocked: participant"), "{msg}");
    assert!(msg.contains("down"), "{msg}");
    for name in ["paxos-commit-coordinator-crash", "3pc-coordinator-crash"] {
        for seed in 1..6 {
            let r = run(name, seed);
            assert_eq!(r.verdict, Verdict::Pass, "{name} seed {seed}: {}", why(&r));
            assert_eq!(
                r.metrics["commit.blocked_participants"], 0.0,
                "{name} seed {seed}"
            );
        }
    }
}

#[test]
fn three_phase_commit_splits_under_a_partition_and_paxos_commit_does_not() {
    let r = run("3pc-partition", 1);
    assert_eq!(r.verdict, Verdict::Violation);
    let msg = why(&r);
    assert!(msg.starts_with("atomicity:"), "{msg}");
    assert!(msg.contains("backup coordinator"), "{msg}");
    for name in ["paxos-commit-partition", "2pc-partition"] {
        for seed in 1..6 {
            let r = run(name, seed);
            assert_eq!(r.verdict, Verdict::Pass, "{name} seed {seed}: {}", why(&r));
        }
    }
}

#[test]
fn a_restarted_coordinator_keeps_2pc_participants_in_doubt_longer() {
    let doubt = |name: &str| run(name, 1).metrics["commit.in_doubt_ms_max"];
    let two = doubt("coordinator-restart-2pc");
    assert!(
        two > 900.0,
        "2PC waits for the coordinator's 1 s outage: {two} ms"
    );
    for name in [
        "coordinator-restart-3pc",
        "coordinator-restart-paxos-commit",
    ] {
        let d = doubt(name);
        assert!(d < two, "{name}: {d} ms in doubt, 2PC {two} ms");
    }
}

#[test]
fn the_report_panel_series_are_recorded() {
    let r = run("2pc-coordinator-crash", 1);
    for name in [
        "state.prepared",
        "state.in_doubt",
        "state.locks",
        "state.working",
    ] {
        assert!(r.series.contains_key(name), "series {name} missing");
    }
    // The blocked participants still hold their locks at the end.
    let locks = &r.series["state.locks"];
    let last = locks.iter().rev().find(|p| p.node == 1).expect("a point");
    assert!(last.value > 0.0, "n1 holds no locks at the end");
}

/// Every bug: its name round-trips, and at least two scenarios switch it on, one of them
/// driven by `[nemesis]`, each catching it on one of its first seeds. (The 2,000-seed
/// figures are in docs/commit.md.)
#[test]
fn every_bug_is_caught_by_a_scripted_and_a_nemesis_scenario() {
    assert!(BUGS.len() >= 6);
    let dir = format!("{}/../scenarios/commit", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for bug in BUGS {
        let parsed: CommitBug = serde_json::from_str(&format!("\"{}\"", bug.name)).unwrap();
        assert_eq!(parsed.name(), bug.name);
        assert_eq!(parsed.rule(), bug.rule);
        let line = format!("bug = \"{}\"", bug.name);
        let using: Vec<_> = files
            .iter()
            .filter(|f| std::fs::read_to_string(f).unwrap().contains(&line))
            .collect();
        assert!(
            using.len() >= 2,
            "{}: only {} scenarios",
            bug.name,
            using.len()
        );
        let nemesis = using
            .iter()
            .filter(|f| std::fs::read_to_string(f).unwrap().contains("[nemesis]"))
            .count();
        assert!(nemesis >= 1, "{}: no nemesis scenario", bug.name);
        for f in using {
            let sc = Scenario::load(f.to_str().unwrap()).unwrap();
            let caught = (1..=10).any(|seed| {
                let r = algorithms::run(&sc, seed, &RunOptions::default()).unwrap();
                r.verdict == Verdict::Violation
            });
            assert!(
                caught,
                "{}: {} not caught in 10 seeds",
                bug.name,
                f.display()
            );
        }
    }
}

fn parse_err(params: &str, mix: &str) -> String {
    let text = format!(
        "description = \"d\"\nalgorithm = \"commit\"\nnodes = 3\nduration = \"1s\"\n[params]\n{params}\n[workload]\nclients = 1\nmix = {mix}\n"
    );
    let sc = Scenario::parse("t.toml", &text).map_err(|e| e.to_string());
    let sc = match sc {
        Ok(sc) => sc,
        Err(e) => return e,
    };
    match algorithms::run(&sc, 1, &RunOptions::default()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_parameters_are_refused_with_the_place_and_the_fix() {
    let e = parse_err("protocol = \"paxos_commit\"\nf = 2", "{ write = 1 }");
    assert!(
        e.contains("2f+1 = 5 acceptors") && e.contains("t.toml"),
        "{e}"
    );
    let e = parse_err("protocol = \"4pc\"", "{ write = 1 }");
    assert!(e.contains("4pc") && e.contains("2pc"), "{e}");
    let e = parse_err(
        "protocol = \"paxos_commit\"\nbug = \"commit_on_timeout\"",
        "{ write = 1 }",
    );
    assert!(
        e.contains("use protocol = \\\"2pc\\\"") || e.contains("use protocol = \"2pc\""),
        "{e}"
    );
    let e = parse_err("", "{ incr = 1 }");
    assert!(
        e.contains("`incr`") && e.contains("transfer, read_all, write"),
        "{e}"
    );
    let e = parse_err("vote_timout = \"1s\"", "{ write = 1 }");
    assert!(e.contains("vote_timout"), "{e}");
}

#[test]
fn runs_are_deterministic() {
    for name in ["paxos-commit-nemesis", "2pc-nemesis"] {
        let a = run(name, 7);
        let b = run(name, 7);
        assert_eq!(a.trace_hash, b.trace_hash, "{name}");
    }
}
