//! A report for every example scenario: each PNG decodes, each SVG parses as XML, and
//! index.html references no external URL and inlines every SVG.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use reports::{write_check_report, write_run_report, ReportOptions};

fn check_png(p: &Path) {
    let f = std::fs::File::open(p).expect("png opens");
    let mut r = png::Decoder::new(f)
        .read_info()
        .expect("png header decodes");
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).expect("png frame decodes");
    assert!(
        info.width > 100 && info.height > 100,
        "{}: tiny image",
        p.display()
    );
    // Not blank: the plot draws more than the background.
    let bytes = &buf[..info.buffer_size()];
    let non_white = bytes
        .chunks(3)
        .filter(|px| px.iter().any(|c| *c < 200))
        .count();
    assert!(
        non_white > 1000,
        "{}: looks blank ({non_white} dark pixels)",
        p.display()
    );
}

fn check_svg(p: &Path) -> String {
    let text = std::fs::read_to_string(p).expect("svg reads");
    roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: not XML: {e}", p.display()));
    assert!(
        text.contains("<text"),
        "{}: no text in the plot",
        p.display()
    );
    text
}

/// Checks every file of a report and returns the page.
fn check_report(dir: &Path, w: &reports::Written) -> String {
    assert!(
        w.problems.iter().all(|p| !p.contains("not drawn")),
        "{:?}",
        w.problems
    );
    let mut svgs = 0;
    for f in &w.files {
        match f.extension().and_then(|x| x.to_str()) {
            Some("png") => check_png(f),
            Some("svg") => {
                check_svg(f);
                svgs += 1;
                assert!(
                    f.with_extension("png").exists(),
                    "{}: no PNG twin",
                    f.display()
                );
            }
            _ => {}
        }
    }
    let html = std::fs::read_to_string(dir.join("index.html")).expect("index.html");
    for bad in [
        "http://",
        "https://",
        "src=\"//",
        "href=\"//",
        "@import",
        "url(",
    ] {
        assert!(
            !html.contains(bad),
            "index.html references an external resource: {bad}"
        );
    }
    // The only scripts are the step-through timeline's: its data and its code, inline.
    assert!(
        !html.contains("<script src"),
        "index.html loads no script file"
    );
    let scripts = html.matches("<script").count();
    assert!(
        scripts == 0
            || (scripts == 2 && html.contains("<script type=\"application/json\" id=tl-data>")),
        "index.html has {scripts} scripts; only the timeline's data and code are expected"
    );
    assert_eq!(
        html.matches("<svg").count(),
        svgs,
        "every SVG is inlined once"
    );
    html
}

#[test]
fn every_example_scenario_gets_a_valid_report() {
    let all = common::scenarios();
    assert!(all.len() >= 5, "scenarios found: {all:?}");
    for path in all {
        let r = common::run(&path);
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let family = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let dir = common::fresh_dir(&format!("{family}-{name}"));
        let w = write_run_report(&dir, &r, "distsim run x", &ReportOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let html = check_report(&dir, &w);
        assert!(html.contains(&reports::esc(&r.scenario)));
        for plot in ["spacetime.svg", "spacetime.png"] {
            assert!(dir.join(plot).exists(), "{}: no {plot}", path.display());
        }
        if r.history.events.is_empty() {
            continue;
        }
        for plot in ["latency", "throughput"] {
            assert!(
                dir.join(format!("{plot}.png")).exists(),
                "{}: no {plot}",
                path.display()
            );
        }
        if r.verdict == sim_core::Verdict::Violation {
            assert!(
                html.contains("v-violation"),
                "{}: verdict not shown",
                path.display()
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_space_time_diagram_marks_dropped_messages_in_a_partition() {
    let r = common::run(&common::root().join("scenarios/broadcast/partition.toml"));
    let dir = common::fresh_dir("partition-drops");
    write_run_report(&dir, &r, "x", &ReportOptions::default()).unwrap();
    let svg = std::fs::read_to_string(dir.join("spacetime.svg")).unwrap();
    // The window falls on the partition: some messages are cut, and the note counts them.
    let note = svg
        .split("messages (")
        .nth(1)
        .and_then(|s| s.split(" dropped").next())
        .and_then(|n| n.parse::<u64>().ok())
        .expect("the note counts dropped messages");
    assert!(note > 0, "a partition window shows dropped messages");
    assert!(svg.contains("partition"), "the partition is labelled");
}

#[test]
fn unplaced_operations_are_highlighted_in_the_history_view_and_the_page() {
    let mut r = common::run(&common::root().join("scenarios/broadcast/partition.toml"));
    // As the linearizability checker reports it: operation #7 could not be placed.
    r.linearizability = Some(serde_json::json!({"valid": false, "unplaced": [7]}));
    let dir = common::fresh_dir("unplaced");
    write_run_report(&dir, &r, "x", &ReportOptions::default()).unwrap();
    let hist = std::fs::read_to_string(dir.join("history-0-the_object.svg")).unwrap();
    assert!(hist.contains("#7 "), "the op is drawn and labelled");
    assert!(hist.contains("(not placed)"));
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("not placed by the linearizability checker</th><td>1 #7"));
    // The window centres on the op: the space-time note says so.
    let st = std::fs::read_to_string(dir.join("spacetime.svg")).unwrap();
    assert!(st.contains("operation #7"));
}

#[test]
fn a_check_report_draws_a_history_file() {
    let r = common::run(&common::root().join("scenarios/broadcast/partition.toml"));
    let dir = common::fresh_dir("check");
    let lin = serde_json::json!({"valid": false, "unplaced_ops": [{"op": 3}]});
    let w = write_check_report(&dir, "h.jsonl", &r.history, "violation", Some(&lin)).unwrap();
    let html = check_report(&dir, &w);
    assert!(html.contains("not placed</th><td>1 #3"));
    // Absent checker report: still a page, nothing highlighted.
    let dir2 = common::fresh_dir("check-none");
    let w = write_check_report(&dir2, "h.jsonl", &r.history, "pass", None).unwrap();
    let html = check_report(&dir2, &w);
    assert!(!html.contains("not placed</th>") && !html.contains("(not placed)"));
}

#[test]
fn algorithm_panels_follow_the_series_naming_convention() {
    use sim_core::metrics::SeriesPoint;
    let mut r = common::run(&common::root().join("scenarios/echo/hello.toml"));
    let p = |t: u64, node: usize, value: f64| SeriesPoint {
        time_ns: t * 1_000_000,
        node,
        value,
    };
    r.series.insert(
        "term".into(),
        vec![p(0, 0, 1.0), p(100, 1, 2.0), p(300, 0, 3.0)],
    );
    // n0 holds the lock 100..400 ms, n1 200..300 ms: one overlap.
    r.series.insert(
        "excl.lock".into(),
        vec![
            p(100, 0, 1.0),
            p(200, 1, 1.0),
            p(300, 1, 0.0),
            p(400, 0, 0.0),
        ],
    );
    r.series.insert(
        "load.keys".into(),
        vec![p(0, 0, 10.0), p(0, 1, 30.0), p(0, 2, 20.0)],
    );
    r.series.insert("state.leader".into(), vec![p(50, 2, 1.0)]);
    let dir = common::fresh_dir("panels");
    let w = write_run_report(&dir, &r, "x", &ReportOptions::default()).unwrap();
    check_report(&dir, &w);
    let names: BTreeSet<String> = w
        .files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().to_string()))
        .filter(|n| n.starts_with("panel-") && n.ends_with(".svg"))
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let lock = std::fs::read_to_string(dir.join("panel-0-excl_lock.svg")).unwrap();
    assert!(lock.contains("1 overlap(s)"), "the overlap is found");
    let term = std::fs::read_to_string(dir.join("panel-3-term.svg")).unwrap();
    assert!(term.contains("term per node"));
}

#[test]
fn a_sweep_report_draws_verdicts_and_distributions_by_group() {
    use reports::{write_sweep_report, SweepInput, SweepSeed};
    let seeds: Vec<SweepSeed> = (0..60u64)
        .map(|s| SweepSeed {
            seed: s,
            verdict: if s % 7 == 0 { "violation" } else { "pass" }.into(),
            violation: (s % 7 == 0).then(|| "two leaders in term 3".to_string()),
            metrics: [(
                "elect_ms".to_string(),
                100.0 + (s * 37 % 50) as f64 + (s % 2) as f64 * 80.0,
            )]
            .into_iter()
            .collect(),
            group: Some(format!(
                "election timeout {}",
                if s % 2 == 0 { "150-300ms" } else { "300-600ms" }
            )),
            reproduce: format!("distsim run x.toml --seed {s}"),
        })
        .collect();
    let input = SweepInput {
        scenario: "elect".into(),
        path: "x.toml".into(),
        expected: "pass".into(),
        metric_names: vec!["elect_ms".into(), "never_recorded".into()],
        seeds,
    };
    let dir = common::fresh_dir("sweep");
    let w = write_sweep_report(&dir, &input).unwrap();
    let html = check_report(&dir, &w);
    assert!(dir.join("verdicts.png").exists());
    let dist = std::fs::read_to_string(dir.join("metric-0-elect_ms.svg")).unwrap();
    assert!(dist.contains("histogram over 60 seeds"));
    assert!(
        dist.contains("election timeout 150-300ms (30)"),
        "one CDF per group"
    );
    assert!(
        html.contains("--seed 0"),
        "failing seeds with reproduce commands"
    );
    assert!(w.problems.iter().any(|p| p.contains("never_recorded")));
}
