//! The ring panel, the cache panel and the commit panel appear, as PNG and SVG, for the families that record
//! their series, and the ring's `ring.points` series is not also drawn as a step line.

mod common;

use reports::{write_run_report, ReportOptions};

fn report_of(scenario: &str, dir: &str) -> std::path::PathBuf {
    let r = common::run(&common::root().join(scenario));
    let dir = common::fresh_dir(dir);
    let w = write_run_report(&dir, &r, "distsim run x", &ReportOptions::default())
        .unwrap_or_else(|e| panic!("{scenario}: {e}"));
    // Notes such as "history: 500 keys; showing 6" are fine; a plot that failed is not.
    let failed: Vec<&String> = w
        .problems
        .iter()
        .filter(|p| p.contains("not drawn"))
        .collect();
    assert!(failed.is_empty(), "{scenario}: {failed:?}");
    dir
}

#[test]
fn the_ring_panel_draws_arcs_and_shares() {
    let dir = report_of("scenarios/hashing/weighted-ring.toml", "panel-ring");
    for f in ["panel-ring.png", "panel-ring.svg"] {
        assert!(dir.join(f).exists(), "no {f}");
    }
    let svg = std::fs::read_to_string(dir.join("panel-ring.svg")).unwrap();
    assert!(svg.contains("the ring at"), "caption missing");
    // Six servers, 100 points each except n0 (200) and n1 (50): 650 arcs plus the wrap.
    assert!(svg.matches("<polygon").count() >= 650, "arcs missing");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        !html.contains("ring.points per node"),
        "ring drawn as a step line too"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_cache_panel_marks_membership_changes() {
    let dir = report_of("scenarios/cache/membership.toml", "panel-cache");
    let svg = std::fs::read_to_string(dir.join("panel-cache.svg")).unwrap();
    assert!(svg.contains("cache hit ratio"), "hit ratio strip missing");
    assert!(
        svg.contains("database reads per second"),
        "database strip missing"
    );
    assert!(
        svg.contains("n4 joins") && svg.contains("n1 leaves"),
        "changes unmarked"
    );
    assert!(dir.join("panel-cache.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_commit_panel_shows_the_blocked_window() {
    let dir = report_of(
        "scenarios/commit/2pc-coordinator-crash.toml",
        "panel-commit",
    );
    for f in ["panel-commit.png", "panel-commit.svg"] {
        assert!(dir.join(f).exists(), "no {f}");
    }
    let svg = std::fs::read_to_string(dir.join("panel-commit.svg")).unwrap();
    assert!(svg.contains("keys locked"), "caption missing");
    // n0 crashes for good at 2 s; a participant it coordinated stays in doubt for seconds,
    // and the panel names that window inside its band.
    let longest: Vec<f64> = svg
        .split("in doubt ")
        .skip(1)
        .filter_map(|s| s.split(' ').next()?.parse().ok())
        .collect();
    assert!(
        longest.iter().any(|s| *s > 2.0),
        "no participant in doubt for over 2 s: {longest:?}"
    );
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        !html.contains("panel-state.in_doubt") && !html.contains("Algorithm panel: state.locks"),
        "the commit states drawn as step lines too"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_commit_panel_is_drawn_when_nobody_was_in_doubt() {
    // Paxos Commit resolves n0's transactions before any decision timeout: no `state.in_doubt`
    // point is recorded, and the participants' panel must still replace the step lines.
    let dir = report_of(
        "scenarios/commit/paxos-commit-coordinator-crash.toml",
        "panel-commit-no-doubt",
    );
    assert!(dir.join("panel-commit.svg").exists(), "no commit panel");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        !html.contains("Algorithm panel: state."),
        "the commit states drawn as step lines too"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
