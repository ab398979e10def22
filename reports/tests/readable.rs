//! Reports a student can read (issue 16, parts 2 and 3), checked on the two runs a new user
//! found hard to read: Figure 8's failing seed and broadcast's lost gossip.

mod common;

use std::path::{Path, PathBuf};

use reports::raft_log::LogPlot;
use reports::{write_run_report, About, FirstViolation, ReportOptions};
use sim_core::{RunResult, Scenario};

const FIGURE8: &str = "scenarios/raft/figure8-scripted-commit-old-term.toml";
const BROADCAST: &str = "scenarios/broadcast/partition-no-retry.toml";

/// The run of `scenario` at its seed and its report, as `distsim run --report` writes it.
fn report(scenario: &str, dir: &str) -> (RunResult, PathBuf, About) {
    let path = common::root().join(scenario);
    let sc = Scenario::load(&path.to_string_lossy()).expect("loads");
    let r = common::run(&path);
    let about = About::of(&sc);
    let opts = ReportOptions {
        window_ns: None,
        about: Some(about.clone()),
        ..ReportOptions::default()
    };
    let dir = common::fresh_dir(dir);
    let w = write_run_report(&dir, &r, "distsim run x", &opts).expect("report");
    assert!(
        w.problems.iter().all(|p| !p.contains("not drawn")),
        "{:?}",
        w.problems
    );
    (r, dir, about)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The texts of an SVG with their x and anchor: (x, anchored at the start, text).
fn texts(svg: &str) -> Vec<(f64, bool, String)> {
    anchored(svg)
        .into_iter()
        .map(|(x, a, t)| (x, a != "end" && a != "middle", t))
        .collect()
}

/// The texts of an SVG: (x, text-anchor, text).
fn anchored(svg: &str) -> Vec<(f64, String, String)> {
    let doc = roxmltree::Document::parse(svg).expect("svg parses");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            let x = n.attribute("x").and_then(|x| x.parse().ok()).unwrap_or(0.0);
            let anchor = n.attribute("text-anchor").unwrap_or("start").to_string();
            (x, anchor, n.text().unwrap_or("").trim().to_string())
        })
        .collect()
}

#[test]
fn figure8_shows_the_log_panel_with_the_entries_the_new_leader_lacks() {
    let (r, dir, _) = report(FIGURE8, "readable-fig8-log");
    let svg = read(&dir, "panel-raft-log.svg");
    assert!(svg.contains("each server&apos;s log") || svg.contains("each server's log"));
    // The violation: n4 is elected for term 4 with a log that ends before the entries n0
    // committed in term 1; the panel names them in red.
    assert!(
        svg.contains("n4 leads term 4 without the entries committed at"),
        "the lost committed entries are not named"
    );
    let p = LogPlot {
        entries: &r.series["log.term"],
        commit: &r.series["log.commit"],
        leader: &r.series["state.leader"],
        term: &r.series["term"],
        violation_ns: r.violations.first().map(|v| v.time_ns),
        end_ns: r.simulated_ns,
        after_end_ns: None,
    };
    let moments = p.moments();
    let last = moments.last().expect("moments");
    assert_eq!(
        last.time_ns, r.violations[0].time_ns,
        "the last moment is the violation"
    );
    let losses = last.leader_losses();
    assert!(!losses.is_empty(), "the new leader lacks committed entries");
    assert!(
        losses.iter().all(|(_, committed, _)| *committed == 1),
        "{losses:?}"
    );
    // n4 already holds an entry of term 2 where term 1 was committed: the overwrite begins.
    assert!(losses.iter().any(|(_, _, here)| *here == 2), "{losses:?}");
    // The term steps are not drawn again as a step line of their own.
    let html = read(&dir, "index.html");
    assert!(!html.contains("Algorithm panel: log.term"));
}

#[test]
fn figure8_window_contains_the_invariant_violation_not_an_end_check() {
    let (r, dir, about) = report(FIGURE8, "readable-fig8-window");
    let v = r.violations[0].time_ns;
    assert_eq!(v / 1_000_000, 3_930, "the known violation time, 3.930 s");
    let first = FirstViolation::of(&r, about.duration_ns).unwrap();
    assert!(
        !first.at_end,
        "an invariant that stopped the run is not an end check"
    );
    let ops = reports::data::ops_of(&r.history);
    let (w, why) =
        reports::pick_window(&ops, &Default::default(), Some(&first), &[], r.simulated_ns);
    assert!(
        w.0 <= v && v <= w.1,
        "window {w:?} misses the violation at {v}"
    );
    assert!(why.contains("centred on the violation"), "{why}");
    let st = read(&dir, "spacetime.svg");
    assert!(!st.contains("end check"), "the footer blames an end check");
    assert!(st.contains("centred on the violation at 3.930 s"));
    // The tick labels read seconds, not "3900.0" milliseconds.
    for (_, _, t) in texts(&st) {
        assert!(!(t.ends_with(".0") && t.len() >= 6), "tick {t:?}");
        assert!(!t.contains("(ms)"), "{t:?}");
    }
}

#[test]
fn figure8_page_opens_with_the_scenario_and_names_nodes_once() {
    let (_, dir, about) = report(FIGURE8, "readable-fig8-page");
    let html = read(&dir, "index.html");
    let desc = reports::esc(&about.description);
    let at_desc = html.find(&desc).expect("the description is on the page");
    let at_comment = html
        .find("Servers n0-n4 are the paper&#39;s S1-S5")
        .expect("the opening comment is on the page");
    let first_plot = html.find("<h2 id=").expect("plots");
    assert!(at_desc < first_plot && at_comment < first_plot);
    // Its lines are kept: the comment sits in a <pre>.
    assert!(html.contains("<pre class=comment>"));
    // Sections: algorithm panels, space-time, latency, throughput, histories.
    let at = |s: &str| {
        html.find(&format!("<h2 id=\"{s}"))
            .unwrap_or_else(|| panic!("{s}"))
    };
    assert!(at("panel-") < at("spacetime"));
    assert!(at("spacetime") < at("latency"));
    assert!(at("latency") < at("throughput"));
    assert!(at("throughput") < at("history-"));
    // One name per client node, in the diagram and the histories.
    let st = read(&dir, "spacetime.svg");
    assert!(st.contains("n5 (client 0)") && st.contains("n9 (client 4)"));
    let hist = read(&dir, "history-0-k0.svg");
    assert!(hist.contains("n5 (client 0)"));
    for svg in [&st, &hist] {
        assert!(
            texts(svg).iter().all(|t| !t.2.starts_with("client ")),
            "a node called only \"client N\""
        );
    }
    // Each `links` partition ends where the next one replaces it, in the table and plots.
    assert!(
        html.contains("<tr><td>0.000 s</td><td>1.300 s</td><td>partition</td>"),
        "the first partition must end at 1.3 s"
    );
    // A visible legend, on the page and in the diagram.
    assert!(html.contains("How to read the plots"));
    let words: Vec<String> = texts(&st).into_iter().map(|t| t.2).collect();
    assert!(
        words.iter().any(|w| w == "dropped") && words.iter().any(|w| w == "violation"),
        "no legend in the diagram"
    );
}

#[test]
fn the_term_panel_has_integer_ticks() {
    let (_, dir, _) = report(FIGURE8, "readable-fig8-term");
    let svg = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with("-term.svg"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .expect("a term panel");
    // The y ticks: numbers anchored at their right end, left of the plot.
    let ticks: Vec<String> = anchored(&svg)
        .into_iter()
        .filter(|t| t.1 == "end" && t.0 < 100.0)
        .map(|t| t.2)
        .filter(|t| t.parse::<f64>().is_ok())
        .collect();
    assert!(ticks.iter().any(|t| t == "4"), "{ticks:?}");
    assert!(
        !ticks.iter().any(|t| t.ends_with(".5")),
        "half-integer term ticks: {ticks:?}"
    );
}

#[test]
fn red_means_the_violation_only() {
    let (_, dir, _) = report(FIGURE8, "readable-fig8-red");
    // The reds the plots used for five meanings (fail, crash, dropped, node n3, violation).
    for f in [
        "spacetime.svg",
        "latency.svg",
        "throughput.svg",
        "history-0-k0.svg",
    ] {
        let svg = read(&dir, f).to_uppercase();
        for old in ["#C82828", "#DC0000", "#D62728", "#DC3232"] {
            assert!(!svg.contains(old), "{f} still uses {old}");
        }
    }
}

#[test]
fn broadcast_shows_which_server_lacks_which_value() {
    let (r, dir, _) = report(BROADCAST, "readable-broadcast");
    let svg = read(&dir, "panel-missing-0-have_values.svg");
    assert!(
        svg.contains("251 values named by the violations"),
        "caption"
    );
    let p = reports::missing::MissingPlot {
        name: "have.values",
        points: &r.series["have.values"],
        violations: &r.violations,
        servers: r.servers,
        faults: &[],
        end_ns: r.simulated_ns,
    };
    let lacking = p.lacking();
    let all: std::collections::BTreeSet<u64> = lacking.values().flatten().copied().collect();
    assert_eq!(
        all.len(),
        251,
        "every missing value is lacked by some server"
    );
    // The first violation names the servers lacking value 151: the matrix agrees.
    let v = &r.violations[0];
    let value = v.values[0].as_u64().unwrap();
    for n in 0..r.servers {
        assert_eq!(
            lacking[&n].contains(&value),
            v.nodes.contains(&n),
            "n{n} and value {value}"
        );
    }
    for n in 0..r.servers {
        assert!(svg.contains(&format!("n{n}: lacks {}", lacking[&n].len())));
    }
    // The page counts every operation the violations name, not only the ones drawn.
    let html = read(&dir, "index.html");
    assert!(
        html.contains("named by the violations</th><td>251 "),
        "summary row"
    );
}

#[test]
fn history_labels_stay_inside_the_plot() {
    let (_, dir, _) = report(BROADCAST, "readable-broadcast-labels");
    let svg = read(&dir, "history-0-the_object.svg");
    for (x, start, t) in texts(&svg) {
        if start {
            // DejaVu Sans at 11 px: under 7 px a character.
            let end = x + 7.0 * t.chars().count() as f64;
            assert!(end <= 1100.0, "{t:?} at x {x} runs past the edge");
        }
    }
}

#[test]
fn reports_are_byte_identical_across_runs() {
    let (_, a, _) = report(FIGURE8, "readable-same-a");
    let (_, b, _) = report(FIGURE8, "readable-same-b");
    let mut names: Vec<_> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(names.len() > 10);
    for n in names {
        let (x, y) = (
            std::fs::read(a.join(&n)).unwrap(),
            std::fs::read(b.join(&n)).unwrap(),
        );
        assert!(
            x == y,
            "{} differs between two reports of one run",
            n.to_string_lossy()
        );
    }
}
