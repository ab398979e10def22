//! `distsim run --report DIR [--report-after DURATION]`: the report's log panel follows the run
//! past its first violation, while the verdict, the trace hash and the reproduce line stay
//! those of the run stopped at the violation.

mod common;
use common::{distsim, json, out_dir};

const FIGURE8: &str = "scenarios/raft/figure8-scripted-commit-old-term.toml";

/// Runs Figure 8 with a report (and the extra flags); returns the JSON and the log panel's SVG.
fn with_report(name: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let dir = out_dir("report-after", name);
    let d = dir.to_string_lossy().to_string();
    let mut args = vec!["run", FIGURE8, "--json", "--report", &d];
    args.extend_from_slice(extra);
    let o = distsim(&args);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let svg = std::fs::read_to_string(dir.join("panel-raft-log.svg")).expect("the log panel");
    let _ = std::fs::remove_dir_all(&dir);
    (json(&o), svg)
}

#[test]
fn the_report_shows_the_overwrite_and_the_run_stays_the_stopped_one() {
    let plain = json(&distsim(&["run", FIGURE8, "--json"]));
    let (reported, svg) = with_report("default", &[]);
    for k in [
        "verdict",
        "trace_hash",
        "events",
        "simulated_ns",
        "violations",
        "reproduce",
    ] {
        assert_eq!(plain[k], reported[k], "{k} changed by drawing a report");
    }
    assert!(
        svg.contains("2.000 s after the violation"),
        "no moment after it"
    );
    assert!(
        svg.contains("committed entries overwritten"),
        "no overwrite drawn"
    );
    let (_, svg) = with_report("none", &["--report-after", "0s"]);
    assert!(!svg.contains("after the violation"));
    assert!(!svg.contains("committed entries overwritten"));
}

#[test]
fn a_bad_report_after_is_refused() {
    let dir = out_dir("report-after", "bad");
    let d = dir.to_string_lossy().to_string();
    let o = distsim(&["run", FIGURE8, "--report", &d, "--report-after", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--report-after soon") && err.contains("500ms"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
