//! `distsim run --report DIR` and `distsim sweep --report DIR` write their pages.

mod common;
use common::{distsim, out_dir};

#[test]
fn run_with_report_writes_every_plot_and_the_page() {
    let dir = out_dir("cli-report", "run");
    let d = dir.to_string_lossy().to_string();
    let out = distsim(&[
        "run",
        "scenarios/broadcast/partition-no-retry.toml",
        "--report",
        &d,
    ]);
    assert_eq!(out.status.code(), Some(1), "a violation exits 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("report written to"), "{stderr}");
    for f in [
        "index.html",
        "latency.png",
        "latency.svg",
        "throughput.png",
        "spacetime.png",
        "spacetime.svg",
    ] {
        assert!(dir.join(f).exists(), "missing {f}");
    }
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    // The reproduce command and the violating operations are on the page.
    assert!(html.contains("distsim run scenarios/broadcast/partition-no-retry.toml --seed 5"));
    assert!(html.contains("named by a violation"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn run_report_opens_with_what_the_scenario_teaches() {
    let dir = out_dir("cli-report", "about");
    let d = dir.to_string_lossy().to_string();
    let out = distsim(&[
        "run",
        "scenarios/raft/figure8-scripted-commit-old-term.toml",
        "--report",
        &d,
    ]);
    assert_eq!(out.status.code(), Some(1), "a violation exits 1");
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    // The description, then the opening comment, before the first plot.
    let desc = html
        .find("Figure 8 scripted: an old-term entry counted as committed")
        .expect("description");
    let comment = html
        .find("<pre class=comment>Bug: the paper&#39;s Figure 8, scripted.")
        .expect("opening comment");
    let plot = html.find("<h2 id=").expect("plots");
    assert!(desc < comment && comment < plot);
    // The scenario's duration tells the CLI's report that the invariant stopped the run.
    let st = std::fs::read_to_string(dir.join("spacetime.svg")).unwrap();
    assert!(st.contains("centred on the violation at 3.930 s"));
    assert!(dir.join("panel-raft-log.svg").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_window_is_a_usage_error() {
    let dir = out_dir("cli-report", "window");
    let d = dir.to_string_lossy().to_string();
    let out = distsim(&[
        "run",
        "scenarios/echo/hello.toml",
        "--report",
        &d,
        "--window",
        "2s..1s",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the end must come after the start"));
}

#[test]
fn sweep_with_report_draws_verdicts_and_metrics() {
    let dir = out_dir("cli-report", "sweep");
    let d = dir.to_string_lossy().to_string();
    let out = distsim(&[
        "sweep",
        "scenarios/broadcast/partition.toml",
        "--seeds",
        "1..9",
        "--metric",
        "op_latency_ms.p99",
        "--report",
        &d,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("verdicts.svg").exists());
    let svg = std::fs::read_to_string(dir.join("metric-0-op_latency_ms_p99.svg")).unwrap();
    assert!(svg.contains("histogram over 8 seeds"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_with_report_marks_the_operation_the_checker_could_not_place() {
    let dir = out_dir("cli-report", "check");
    let out = distsim(&[
        "check",
        "examples/histories/kv-lost-update.jsonl",
        "--report",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "not linearizable");
    let page = std::fs::read_to_string(dir.join("index.html")).unwrap();
    // Key y's get -> 10 (the fifth operation, #5) is the one that cannot be placed.
    assert!(
        page.contains("#5 get -&gt;10 (not placed)") || page.contains("#5 get ->10 (not placed)"),
        "the unplaced read is labelled"
    );
    assert!(
        dir.join("history-0-y.svg").exists(),
        "the failing key is drawn first"
    );
    std::fs::remove_dir_all(&dir).ok();
}
