//! reports: pictures of distsim runs.
//!
//! A run's trace, history, fault log, metrics and algorithm series become plots (plotters,
//! each as PNG and SVG) and one `index.html` that inlines the SVGs and needs no network: no
//! external scripts, fonts or styles. [`write_run_report`] draws one run, [`write_sweep_report`]
//! the verdicts and metric distributions of a sweep, [`write_check_report`] a history and what
//! the linearizability checker said about it.
//!
//! Plots of one run:
//! - `latency`: operation latency over time, one mark per operation coloured by outcome, fault
//!   windows (partitions, crashes, pauses, clogs, clock steps) shaded and labelled;
//! - `throughput`: completed operations per second over time;
//! - `spacetime`: a space-time (Lamport) diagram of a window of the run: one line per node,
//!   a line per message (dropped ones end in a red cross), node faults on their lanes,
//!   partitions shaded, client operations as bars on the client lanes;
//! - `history-KEY`: the operations on a key as bars from invocation to completion, one row per
//!   client, the operations the checker could not place in red (as Porcupine shows them);
//! - `panel-NAME`: one algorithm panel per series recorded with `ctx.series(NAME, value)`;
//!   the encoded series `saga.steps` and `locks.keys` are drawn as rows per saga and per key
//!   ([`rows`]).
//!
//! # The algorithm-panel hook: series names
//!
//! An algorithm fills panels by recording per-node time series with `ctx.series`. The name
//! decides how the series is drawn:
//! - `state.NAME` (e.g. `state.leader`): the value is non-zero while the node is in the
//!   state; drawn as bars per node over time.
//! - `excl.NAME` (e.g. `excl.lock`): like `state.`, for states at most one node may be in
//!   at a time (lock holders); times when two or more nodes are in it are shaded red.
//! - `load.NAME` (e.g. `load.keys`): the latest value per node, drawn as one bar per node
//!   with the mean (load balance of consistent hashing).
//! - any other name (e.g. `term`, `leader` as the id a node believes leads, `commit_index`):
//!   a step line per node.
//!
//! # The window of the space-time diagram and the history views
//!
//! Unless [`ReportOptions::window_ns`] sets it ([`pick_window`]): centred on the first
//! violation when a check found it as the run went; for an end check or the history check,
//! around the first operation it names (those the checker could not place first); otherwise
//! the end of the run, the first second after the first fault, or the first second.
//!
//! # The page
//!
//! `index.html` opens with what the scenario says about itself ([`About`]: its description
//! and opening comment), the run and its violations, then the plots: algorithm panels first,
//! then the space-time diagram, latency, throughput and the per-key histories. Family panels
//! that combine series: [`commit`], [`ring`], [`cache`], [`raft_log`] (Raft's log per server)
//! and [`missing`] (which server lacks which value).
//!
//! # The linearizability report
//!
//! [`data::unplaced_ops`] documents the JSON it reads: sim-core's `CheckReport` (the events
//! each failing part could not place), or a list `unplaced` (or `unplaced_ops`) of operation
//! indices, the i-th `invoke` of the history counting from 0. A report without either
//! highlights nothing.
//!
//! # Text
//!
//! plotters' bitmap backend rasterizes text itself; [`font`] registers a bundled DejaVu Sans
//! with plotters' `ab_glyph` backend, so PNGs have text on any machine. A plot that cannot be
//! drawn is named in the report with the reason; nothing panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use sim_core::metrics::SeriesPoint;
use sim_core::{History, RunResult};

pub mod cache;
pub mod commit;
pub mod contention;
pub mod data;
pub mod font;
pub mod lin;
pub mod missing;
pub mod plots;
pub mod raft_log;
pub mod ring;
pub mod rows;
pub mod timeline;
pub mod txn;

pub use txn::write_txn_report;

use data::{fault_windows, ops_of, unplaced_ops, violation_ops, FaultWindow, Op};
use plots::{
    DistributionPlot, HistoryPlot, LatencyPlot, PanelPlot, Plot, SpaceTimePlot, ThroughputPlot,
    VerdictPlot, HISTORY_OPS_MAX,
};

/// Choices for a run report.
#[derive(Clone, Debug, Default)]
pub struct ReportOptions {
    /// The window of the space-time diagram and history views (true time, ns); `None` picks
    /// one around the first violation.
    pub window_ns: Option<(u64, u64)>,
    /// What the scenario says about itself, shown at the top of the page.
    pub about: Option<About>,
    /// The same run (same scenario, seed and options) carried on for a while past its first
    /// violation: panels that show what a violation leads to (Raft's log panel: the committed
    /// entry overwritten) draw from it. Everything else on the page, the verdict and the trace
    /// hash among it, is the run stopped at the violation.
    pub after: Option<AfterViolation>,
}

/// Whether a panel of this run's report draws from the run carried on past its first violation
/// ([`ReportOptions::after`]): only then is it worth running again. Raft's log panel does.
pub fn draws_after_violation(r: &RunResult) -> bool {
    r.series.contains_key("log.term")
}

/// A run carried on past its first violation, for drawing only ([`ReportOptions::after`]).
#[derive(Clone, Debug, Default)]
pub struct AfterViolation {
    /// How long past the first violation it ran (at most).
    pub after_ns: u64,
    /// Where it stopped (true time).
    pub end_ns: u64,
    /// Its series: the stopped run's up to the violation, then what followed.
    pub series: BTreeMap<String, Vec<SeriesPoint>>,
}

/// What a scenario says about itself: shown at the top of the report, so that the page says
/// what the run is about before it shows what happened.
#[derive(Clone, Debug, Default)]
pub struct About {
    /// The scenario's `description`.
    pub description: String,
    /// The file's opening comment (what it teaches and what a run should find), without `#`.
    pub comment: String,
    /// The scenario's duration: a violation found at it was found by an end check, one found
    /// earlier stopped the run.
    pub duration_ns: Option<u64>,
}

impl About {
    /// From a loaded scenario (its text, when it was read from a file or embedded).
    pub fn of(sc: &sim_core::Scenario) -> About {
        About {
            description: sc.description.trim().to_string(),
            comment: sc
                .source
                .as_ref()
                .map(|s| opening_comment(&s.text))
                .unwrap_or_default(),
            duration_ns: Some(sc.duration.0),
        }
    }
}

/// The comment a scenario file opens with: its leading `#` lines, without the `# `, blank
/// comment lines kept as paragraph breaks. JSON files have none.
pub fn opening_comment(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix('#') {
            out.push(rest.strip_prefix(' ').unwrap_or(rest).trim_end());
        } else if t.is_empty() && out.is_empty() {
            continue;
        } else {
            break;
        }
    }
    while out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out.join("\n")
}

/// Parses a window written as `START..END` with units, e.g. `1.9s..2.3s` or `0ms..500ms`.
pub fn parse_window(text: &str) -> Result<(u64, u64), String> {
    let bad = |why: String| {
        format!("window \"{text}\": {why}; write START..END with units, e.g. 1.9s..2.3s")
    };
    let (a, b) = text.split_once("..").ok_or_else(|| bad("no `..`".into()))?;
    let a = sim_core::time::parse_duration_signed(a, false).map_err(bad)? as u64;
    let b = sim_core::time::parse_duration_signed(b, false).map_err(bad)? as u64;
    if b <= a {
        return Err(bad("the end must come after the start".into()));
    }
    Ok((a, b))
}

/// What a report wrote.
#[derive(Clone, Debug, Default)]
pub struct Written {
    /// The HTML page.
    pub index: PathBuf,
    /// Every file written, the page included.
    pub files: Vec<PathBuf>,
    /// Plots that could not be drawn, with the reason (also shown on the page).
    pub problems: Vec<String>,
}

/// One drawn plot, for the page.
struct Drawn {
    name: String,
    title: String,
    svg: String,
    /// HTML placed after the plot (the step-through timeline after the space-time diagram).
    after: String,
}

/// Draws a plot to `dir/NAME.svg` and `dir/NAME.png`; errors are collected, not raised.
fn render<P: Plot>(
    dir: &Path,
    name: &str,
    title: &str,
    p: &P,
    out: &mut Written,
    drawn: &mut Vec<Drawn>,
) {
    let size = p.size();
    let mut svg = String::new();
    let svg_res = {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        p.draw(&root)
            .and_then(|_| root.present().map_err(plots::err))
    };
    if let Err(e) = svg_res {
        out.problems.push(format!("{title}: SVG not drawn: {e}"));
        return;
    }
    let svg_path = dir.join(format!("{name}.svg"));
    if let Err(e) = std::fs::write(&svg_path, &svg) {
        out.problems
            .push(format!("{title}: cannot write {}: {e}", svg_path.display()));
        return;
    }
    out.files.push(svg_path);
    let png_path = dir.join(format!("{name}.png"));
    let png_res = {
        let root = BitMapBackend::new(&png_path, size).into_drawing_area();
        p.draw(&root)
            .and_then(|_| root.present().map_err(plots::err))
    };
    match png_res {
        Ok(()) => out.files.push(png_path),
        Err(e) => out.problems.push(format!("{title}: PNG not drawn: {e}")),
    }
    drawn.push(Drawn {
        name: name.to_string(),
        title: title.to_string(),
        svg,
        after: String::new(),
    });
}

fn prepare(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if !font::ensure() {
        // Plots still get drawn where they can; the page says why text is missing.
        eprintln!("warning: the bundled font could not be loaded; plots may lack text");
    }
    Ok(())
}

/// The first violation as the window needs it: when, which check, and whether an end check
/// found it (at the end of a finished run, or the history check).
#[derive(Clone, Debug)]
pub struct FirstViolation {
    /// When it was found.
    pub time_ns: u64,
    /// The check.
    pub source: String,
    /// Found by an end check (its time is the run's end, not when the rule broke).
    pub at_end: bool,
}

impl FirstViolation {
    /// The run's first violation; `duration_ns` (the scenario's) tells an end check from a
    /// check that stopped the run. Without it, a violation at the end that names operations
    /// is taken for an end check's.
    pub fn of(r: &RunResult, duration_ns: Option<u64>) -> Option<FirstViolation> {
        let v = r.violations.first()?;
        let at_end = v.kind == sim_core::ViolationKind::Linearizability
            || match duration_ns {
                Some(d) => v.time_ns >= d,
                None => v.time_ns >= r.simulated_ns && !v.ops.is_empty(),
            };
        Some(FirstViolation {
            time_ns: v.time_ns,
            source: v.source.clone(),
            at_end,
        })
    }
}

/// Half the width of a window centred on a violation.
const HALF_WINDOW_NS: u64 = 300_000_000;

/// Picks the window of the space-time diagram and history views, and says why: centred on
/// the violation when a check found it as the run went; on the first operation an end check
/// (or the history check) names, when it names any; else on the end (an end check naming no
/// operation), the first fault, or the first second.
pub fn pick_window(
    ops: &[Op],
    highlight: &BTreeMap<usize, &'static str>,
    first: Option<&FirstViolation>,
    faults: &[FaultWindow],
    end_ns: u64,
) -> ((u64, u64), String) {
    const MS: u64 = 1_000_000;
    let clamp = |a: u64, b: u64| (a.min(end_ns), b.min(end_ns).max(a.min(end_ns) + MS));
    if let Some(v) = first.filter(|v| !v.at_end) {
        let (a, b) = clamp(
            v.time_ns.saturating_sub(HALF_WINDOW_NS),
            v.time_ns + HALF_WINDOW_NS,
        );
        // A run stopped at its violation ends there: show what led to it.
        let a = if b <= v.time_ns + 50 * MS {
            a.min(b.saturating_sub(2 * HALF_WINDOW_NS))
        } else {
            a
        };
        return (
            (a, b),
            format!(
                "window centred on the violation at {} (found by {} as the run went)",
                plots::fmt_s(v.time_ns),
                v.source
            ),
        );
    }
    // The operations the checker could not place come first, then those a violation names.
    let named = highlight
        .iter()
        .find(|(_, why)| **why == "not placed")
        .or_else(|| highlight.iter().next());
    if let Some((op, why)) = named.and_then(|(i, why)| ops.get(*i).map(|o| (o, why))) {
        let end = op
            .complete_ns
            .unwrap_or(end_ns)
            .min(op.invoke_ns + 500 * MS);
        let (a, b) = clamp(op.invoke_ns.saturating_sub(200 * MS), end + 300 * MS);
        let found = match first {
            Some(v) => format!(
                "the violation was found by the end check {} at {}; ",
                v.source,
                plots::fmt_s(v.time_ns)
            ),
            None => String::new(),
        };
        return (
            (a, b),
            format!(
                "{found}window around operation #{} ({why}), the first it names",
                op.index
            ),
        );
    }
    if let Some(v) = first {
        let (a, b) = clamp(v.time_ns.saturating_sub(2 * HALF_WINDOW_NS), v.time_ns);
        return (
            (a, b),
            format!(
                "the violation was found by the end check {} at the end of the run and names no operation: the window shows the end",
                v.source
            ),
        );
    }
    if let Some(f) = faults.first() {
        let (a, b) = clamp(f.start_ns.saturating_sub(100 * MS), f.start_ns + 900 * MS);
        return ((a, b), "no violation: window around the first fault".into());
    }
    (
        clamp(0, 1000 * MS),
        "no violation and no fault: the first second of the run".into(),
    )
}

/// Draws the per-key history views of the operations in the window (at most
/// [`HISTORY_OPS_MAX`] per key, narrowing around the window's centre).
#[allow(clippy::too_many_arguments)]
fn render_histories(
    dir: &Path,
    ops: &[Op],
    unplaced: &BTreeMap<usize, &'static str>,
    clients: usize,
    servers: Option<usize>,
    window: (u64, u64),
    violation_ns: Option<u64>,
    out: &mut Written,
    drawn: &mut Vec<Drawn>,
) {
    let mut by_key: BTreeMap<String, Vec<&Op>> = BTreeMap::new();
    for op in ops {
        let key = op.key.clone().unwrap_or_else(|| "the object".into());
        by_key.entry(key).or_default().push(op);
    }
    // Keys with unplaced operations first, then by name; at most 6 views.
    let mut keys: Vec<(bool, String)> = by_key
        .iter()
        .map(|(k, v)| {
            (
                !v.iter().any(|o| unplaced.contains_key(&o.index)),
                k.clone(),
            )
        })
        .collect();
    keys.sort();
    let shown = keys.len().min(6);
    for (i, (_, key)) in keys.iter().take(shown).enumerate() {
        let all = &by_key[key];
        let (mut a, mut b) = window;
        let centre = a + (b - a) / 2;
        let in_window = |a: u64, b: u64| -> Vec<&Op> {
            all.iter()
                .copied()
                .filter(|o| o.invoke_ns <= b && o.complete_ns.unwrap_or(u64::MAX) >= a)
                .collect()
        };
        let mut sel = in_window(a, b);
        let mut why = String::new();
        let mut rounds = 0;
        while sel.len() > HISTORY_OPS_MAX && rounds < 40 {
            rounds += 1;
            a = centre - (centre - a) * 2 / 3;
            b = centre + (b - centre) * 2 / 3;
            sel = in_window(a, b);
            why = format!("window narrowed to show at most {HISTORY_OPS_MAX} operations; ");
        }
        why.push_str(&format!(
            "{} operations on this key in the whole run",
            all.len()
        ));
        let plot = HistoryPlot {
            key: key.clone(),
            ops: sel,
            highlight: unplaced,
            clients,
            servers,
            window_ns: (a, b),
            violation_ns,
            why,
        };
        let name = format!("history-{}", sanitize(key, i));
        render(dir, &name, &format!("History of {key}"), &plot, out, drawn);
    }
    if keys.len() > shown {
        out.problems.push(format!(
            "history: {} keys; showing {shown} (those with unplaced operations first)",
            keys.len()
        ));
    }
}

fn sanitize(s: &str, i: usize) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{i}-{t}")
}

/// Writes the report of one run into `dir`: a PNG and an SVG per plot and `index.html`.
/// `reproduce` is the command that reproduces the run. Turn on `RunOptions::keep_trace` for
/// the space-time diagram; without a trace the page says it is missing.
pub fn write_run_report(
    dir: &Path,
    r: &RunResult,
    reproduce: &str,
    opts: &ReportOptions,
) -> Result<Written, String> {
    prepare(dir)?;
    let mut out = Written::default();
    let mut drawn = Vec::new();
    let ops = ops_of(&r.history);
    let faults = fault_windows(&r.fault_log, r.simulated_ns);
    let violation_ns = r.violations.first().map(|v| v.time_ns);
    let first = FirstViolation::of(r, opts.about.as_ref().and_then(|a| a.duration_ns));
    let unplaced_list = unplaced_ops(r.linearizability.as_ref(), &r.history);
    let end_ns = r.simulated_ns.max(1);
    let named = violation_ops(&r.violations, &r.history, &ops, r.servers, r.clients);
    let mut unplaced: BTreeMap<usize, &'static str> = named
        .into_iter()
        .map(|i| (i, "named by a violation"))
        .collect();
    for i in unplaced_list.iter().flatten() {
        unplaced.insert(*i, "not placed");
    }
    if !ops.is_empty() {
        render(
            dir,
            "latency",
            "Operation latency",
            &LatencyPlot {
                ops: &ops,
                faults: &faults,
                end_ns,
                violation_ns,
            },
            &mut out,
            &mut drawn,
        );
        render(
            dir,
            "throughput",
            "Throughput",
            &ThroughputPlot {
                ops: &ops,
                faults: &faults,
                end_ns,
                violation_ns,
            },
            &mut out,
            &mut drawn,
        );
    }
    let (window, why) = match opts.window_ns {
        Some(w) => (w, "window as asked".to_string()),
        None => pick_window(&ops, &unplaced, first.as_ref(), &faults, end_ns),
    };
    match &r.trace {
        Some(trace) => {
            let plot = SpaceTimePlot {
                trace,
                ops: &ops,
                highlight: &unplaced,
                servers: r.servers,
                clients: r.clients,
                faults: &faults,
                window_ns: window,
                violation_ns,
                why,
            };
            render(
                dir,
                "spacetime",
                "Space-time diagram",
                &plot,
                &mut out,
                &mut drawn,
            );
            timeline::attach(r, plot.geometry().ok(), &mut drawn);
        }
        None => out
            .problems
            .push("space-time diagram: the run kept no trace (RunOptions::keep_trace)".into()),
    }
    if !ops.is_empty() {
        render_histories(
            dir,
            &ops,
            &unplaced,
            r.clients,
            Some(r.servers),
            window,
            violation_ns,
            &mut out,
            &mut drawn,
        );
    }
    family_panels(
        dir,
        r,
        opts.after.as_ref(),
        &faults,
        end_ns,
        &mut out,
        &mut drawn,
    );
    let log_drawn = r.series.contains_key("log.term");
    let commit_drawn =
        r.series.contains_key("state.prepared") && r.series.contains_key("state.locks");
    for (i, (name, points)) in r.series.iter().enumerate() {
        if rows::is_row_series(name) {
            let plot = rows::RowsPlot {
                name,
                points,
                end_ns,
            };
            let file = format!("panel-{}", sanitize(name, i));
            let title = format!("Algorithm panel: {name}");
            render(dir, &file, &title, &plot, &mut out, &mut drawn);
            continue;
        }
        if name.starts_with("ring.") {
            continue; // drawn as a ring by family_panels
        }
        if commit_drawn && commit::SERIES.contains(&name.as_str()) {
            continue; // drawn as the participants' states by family_panels
        }
        if (log_drawn && raft_log::SERIES.contains(&name.as_str())) || missing::is_have_series(name)
        {
            continue; // drawn as the log panel and the missing-data matrix by family_panels
        }
        render(
            dir,
            &format!("panel-{}", sanitize(name, i)),
            &format!("Algorithm panel: {name}"),
            &PanelPlot {
                name,
                points,
                end_ns,
                faults: &faults,
            },
            &mut out,
            &mut drawn,
        );
    }
    let mut summary = String::new();
    run_summary_html(
        &mut summary,
        r,
        reproduce,
        opts.about.as_ref(),
        &faults,
        &ops,
        unplaced_list.as_ref(),
        &unplaced,
    );
    let title = format!("distsim: {} seed {}", r.scenario, r.seed);
    write_index(dir, &title, &summary, &drawn, &mut out)?;
    Ok(out)
}

/// The panels that combine several series of one family: the ring (`ring.points`), the
/// cache's hit ratio and database load (`cache.hit_ratio`), and the commit participants'
/// states and locks (`state.prepared` with `state.locks`).
fn family_panels(
    dir: &Path,
    r: &RunResult,
    after: Option<&AfterViolation>,
    faults: &[FaultWindow],
    end_ns: u64,
    out: &mut Written,
    drawn: &mut Vec<Drawn>,
) {
    let series = |n: &str| r.series.get(n).map(|v| v.as_slice());
    if let Some(points) = series("ring.points") {
        let p = ring::RingPlot {
            points,
            loads: series("load.keys"),
        };
        render(
            dir,
            "panel-ring",
            "Algorithm panel: the ring",
            &p,
            out,
            drawn,
        );
    }
    if let Some(hit_ratio) = series("cache.hit_ratio") {
        let p = cache::CachePlot {
            hit_ratio,
            db_reads: series("db.reads_per_s").unwrap_or(&[]),
            member: series("state.member").unwrap_or(&[]),
            faults,
            end_ns,
        };
        let title = "Algorithm panel: cache hit ratio and database load";
        render(dir, "panel-cache", title, &p, out, drawn);
    }
    // The log panel draws from the run carried on past the violation when there is one
    // (its series up to the violation are the stopped run's), to show what the violation
    // led to.
    let violation_ns = r.violations.first().map(|v| v.time_ns);
    let carried = after.filter(|a| violation_ns.is_some() && a.series.contains_key("log.term"));
    let log_series = |n: &str| match carried {
        Some(a) => a.series.get(n).map(|v| v.as_slice()),
        None => series(n),
    };
    if let Some(entries) = log_series("log.term") {
        let p = raft_log::LogPlot {
            entries,
            commit: log_series("log.commit").unwrap_or(&[]),
            leader: log_series("state.leader").unwrap_or(&[]),
            term: log_series("term").unwrap_or(&[]),
            violation_ns,
            end_ns,
            after_end_ns: carried.map(|a| a.end_ns.max(end_ns)),
        };
        let title = "Algorithm panel: each server's log at each election";
        render(dir, "panel-raft-log", title, &p, out, drawn);
    }
    for (name, points) in r.series.iter().filter(|(n, _)| missing::is_have_series(n)) {
        if missing::named_values(&r.violations).is_empty() {
            continue; // no violation names values: nothing is missing
        }
        let p = missing::MissingPlot {
            name,
            points,
            violations: &r.violations,
            servers: r.servers,
            faults,
            end_ns,
        };
        let file = format!("panel-missing-{}", sanitize(name, 0));
        let title = "Algorithm panel: which server lacks which value";
        render(dir, &file, title, &p, out, drawn);
    }
    // A run in which nobody was ever in doubt records no `state.in_doubt` point.
    if let (Some(prepared), Some(locks)) = (series("state.prepared"), series("state.locks")) {
        let p = commit::CommitPlot {
            prepared,
            in_doubt: series("state.in_doubt").unwrap_or(&[]),
            locks,
            outcome: series("state.outcome").unwrap_or(&[]),
            servers: r.servers,
            faults,
            end_ns,
        };
        let title = "Algorithm panel: participants' states and locks over time";
        render(dir, "panel-commit", title, &p, out, drawn);
    }
}

/// The summary at the top of a run's page: what the scenario is about, the run, what went
/// wrong (each explanation in its lines, every node and operation under one name), the faults.
#[allow(clippy::too_many_arguments)]
fn run_summary_html(
    h: &mut String,
    r: &RunResult,
    reproduce: &str,
    about: Option<&About>,
    faults: &[FaultWindow],
    ops: &[Op],
    unplaced: Option<&BTreeSet<usize>>,
    highlight: &BTreeMap<usize, &'static str>,
) {
    if let Some(a) = about {
        if !a.description.is_empty() {
            let _ = write!(h, "<p class=about>{}</p>", esc(&a.description));
        }
        if !a.comment.is_empty() {
            let _ = write!(
                h,
                "<details open><summary>What this scenario teaches (the comment it opens with)</summary><pre class=comment>{}</pre></details>",
                esc(&a.comment)
            );
        }
    }
    let verdict = r.verdict.as_str();
    let _ = write!(
        h,
        "<table class=kv><tr><th>scenario</th><td>{} <span class=dim>({})</span></td></tr>\
         <tr><th>algorithm</th><td>{}</td></tr>\
         <tr><th>seed</th><td>{}</td></tr>\
         <tr><th>verdict</th><td class=\"v-{verdict}\">{verdict}</td></tr>\
         <tr><th>expected</th><td>{}</td></tr>\
         <tr><th>reproduce</th><td><code>{}</code></td></tr>\
         <tr><th>simulated</th><td>{} · {} events · trace hash {}</td></tr>\
         <tr><th>nodes</th><td>{}</td></tr>",
        esc(&r.scenario),
        esc(&r.path),
        esc(&r.algorithm),
        r.seed,
        r.expected.as_str(),
        esc(reproduce),
        plots::fmt_s(r.simulated_ns),
        r.events,
        esc(&r.trace_hash),
        esc(&nodes_line(r.servers, r.clients)),
    );
    if let Some(d) = &r.derived {
        let _ = write!(h, "<tr><th>swarm</th><td>{}</td></tr>", esc(d));
    }
    if let Some(u) = &r.unknown_reason {
        let _ = write!(h, "<tr><th>unknown because</th><td>{}</td></tr>", esc(u));
    }
    let _ = write!(
        h,
        "<tr><th>operations</th><td>{} <span class=dim>(named #0 to #{} in the order they were invoked, everywhere on this page)</span></td></tr>",
        ops.len(),
        ops.len().saturating_sub(1)
    );
    let named: BTreeSet<usize> = highlight
        .iter()
        .filter(|(_, why)| **why == "named by a violation")
        .map(|(i, _)| *i)
        .collect();
    if !named.is_empty() {
        unplaced_row(h, "named by the violations", &named);
    }
    if let Some(u) = unplaced {
        unplaced_row(h, "not placed by the linearizability checker", u);
    }
    h.push_str("</table>");
    if !r.violations.is_empty() {
        h.push_str("<h3>Violations</h3><ul class=viol>");
        for v in r.violations.iter().take(20) {
            let is_lin = v.kind == sim_core::ViolationKind::Linearizability;
            // The checker's own explanation names events and processes; the table below says
            // the same with this page's names, so only its first line is kept here.
            let msg = if is_lin && r.linearizability.is_some() {
                v.message.lines().next().unwrap_or("").to_string()
            } else {
                v.message.clone()
            };
            let _ = write!(
                h,
                "<li><b>{}</b> at {}: <div class=msg>{}</div></li>",
                esc(&v.source),
                plots::fmt_s(v.time_ns),
                esc(&msg)
            );
        }
        if r.violations.len() > 20 {
            let _ = write!(h, "<li>... and {} more</li>", r.violations.len() - 20);
        }
        h.push_str("</ul>");
        if let Some(l) = &r.linearizability {
            lin::explain_html(h, l, &r.history, r.servers, r.clients);
        }
    }
    h.push_str("<h3>Faults injected</h3>");
    if faults.is_empty() {
        h.push_str("<p>none</p>");
    } else {
        h.push_str(
            "<table class=list><tr><th>from</th><th>to</th><th>fault</th><th>detail</th></tr>",
        );
        for w in faults.iter().take(200) {
            let to = if w.end_ns > w.start_ns {
                plots::fmt_s(w.end_ns)
            } else {
                String::new()
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                plots::fmt_s(w.start_ns),
                to,
                esc(&w.label()),
                esc(&w.detail)
            );
        }
        h.push_str("</table>");
        if faults.len() > 200 {
            let _ = write!(h, "<p>... and {} more</p>", faults.len() - 200);
        }
    }
    h.push_str(LEGEND_HTML);
    h.push_str("<details><summary>Key metrics</summary><table class=list><tr><th>metric</th><th>value</th></tr>");
    for (k, v) in &r.metrics {
        let _ = write!(h, "<tr><td>{}</td><td>{}</td></tr>", esc(k), num(*v));
    }
    h.push_str("</table></details>");
}

/// The nodes under the names every plot uses: `n0-n4 servers; n5 (client 0), ...`.
fn nodes_line(servers: usize, clients: usize) -> String {
    let mut s = match servers {
        0 => String::new(),
        1 => "n0 server".to_string(),
        n => format!("n0-n{} servers", n - 1),
    };
    let names: Vec<String> = (servers..servers + clients)
        .take(8)
        .map(|n| plots::node_name(n, servers))
        .collect();
    if !names.is_empty() {
        let more = if clients > 8 { ", ..." } else { "" };
        let _ = write!(s, "; clients {}{more}", names.join(", "));
    }
    s
}

/// The legend of the whole page: one colour per meaning.
const LEGEND_HTML: &str = "<h3>How to read the plots</h3><p class=legend>\
<span class=sw style=\"background:#d70000\"></span>the violation: its time, the operations it names, the entries or values it is about (red means nothing else) \
<span class=sw style=\"background:#1e8c3c\"></span>ok \
<span class=sw style=\"background:#7d46af\"></span>fail (took no effect) \
<span class=sw style=\"background:#e68c00\"></span>info (outcome unknown) \
<span class=sw style=\"background:#afafaf\"></span>pending \
<span class=sw style=\"background:#c8daf6\"></span>partition \
<span class=sw style=\"background:#191919\"></span>node down (crashed) or a dropped message \
<span class=sw style=\"background:#c8a000\"></span>node paused \
<span class=sw style=\"background:#284aa0\"></span>a delivered message. \
Times are true (simulated) time in seconds; nodes are named n0, n1, ...; clients as n5 (client 0).</p>";

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1180px}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}\
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 8px;text-align:left;vertical-align:top}\
table.list td,table.list th{border-bottom:1px solid #eee}table.kv th{color:#555;font-weight:normal}\
.dim{color:#888}.v-pass{color:#1e8c3c;font-weight:bold}.v-violation{color:#d70000;font-weight:bold}\
.v-unknown{color:#e68c00;font-weight:bold}code{background:#f4f4f4;padding:2px 4px}\
.plot svg{max-width:100%;height:auto}.files{font-size:12px;color:#666}.problems{color:#a60}\
p.about{font-size:16px}pre.comment{background:#f7f7f2;border-left:3px solid #bbb;padding:8px 12px;font-size:13px;white-space:pre-wrap}\
.msg{white-space:pre-wrap;font-family:monospace;font-size:12px;margin:2px 0 8px}\
.legend{font-size:13px;line-height:1.9}.sw{display:inline-block;width:14px;height:11px;margin:0 4px 0 10px;border:1px solid #999;vertical-align:middle}\
nav.toc{font-size:13px}nav.toc a{margin-right:12px}table.list td:nth-child(-n+2){white-space:nowrap}";

/// Where a plot goes on the page: algorithm panels first, then the space-time diagram,
/// latency, throughput and the per-key histories (then the rest: sweep plots).
fn section_rank(name: &str) -> u8 {
    if name.starts_with("panel-") {
        0
    } else if name == "spacetime" {
        1
    } else if name == "latency" {
        2
    } else if name == "throughput" {
        3
    } else if name.starts_with("history-") {
        4
    } else {
        5
    }
}

/// Writes `index.html`: the summary, then every plot's SVG inlined, then problems.
fn write_index(
    dir: &Path,
    title: &str,
    summary: &str,
    drawn: &[Drawn],
    out: &mut Written,
) -> Result<(), String> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(title),
        esc(title)
    );
    // The page's sections, in order: the summary, then the plots by `section_rank` (drawn
    // order within a section), then what could not be drawn.
    let mut drawn: Vec<&Drawn> = drawn.iter().collect();
    drawn.sort_by_key(|d| section_rank(&d.name));
    if !drawn.is_empty() {
        h.push_str("<nav class=toc>Plots: ");
        for d in &drawn {
            let _ = write!(h, "<a href=\"#{}\">{}</a>", esc(&d.name), esc(&d.title));
        }
        h.push_str("</nav>");
    }
    h.push_str("<h2>Summary</h2>");
    h.push_str(summary);
    for d in drawn {
        let _ = write!(
            h,
            "<h2 id=\"{}\">{}</h2><div class=plot>{}</div><p class=files>files: <a href=\"{}.png\">{}.png</a> · <a href=\"{}.svg\">{}.svg</a></p>",
            esc(&d.name),
            esc(&d.title),
            inline_svg(&d.svg),
            esc(&d.name),
            esc(&d.name),
            esc(&d.name),
            esc(&d.name)
        );
        h.push_str(&d.after);
    }
    if !out.problems.is_empty() {
        h.push_str("<h2>Not shown</h2><ul class=problems>");
        for p in &out.problems {
            let _ = write!(h, "<li>{}</li>", esc(p));
        }
        h.push_str("</ul>");
    }
    h.push_str("</body></html>\n");
    let path = dir.join("index.html");
    std::fs::write(&path, h).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    out.index = path.clone();
    out.files.push(path);
    Ok(())
}

/// An SVG document as an inline element: without the XML declaration and the namespace
/// attribute (HTML5 puts inline `<svg>` in the SVG namespace itself), so the page names no URL.
fn inline_svg(svg: &str) -> String {
    let s = svg.trim_start();
    let s = if s.starts_with("<?xml") {
        s.split_once("?>").map(|x| x.1).unwrap_or(s)
    } else {
        s
    };
    s.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

// ---- sweeps ----------------------------------------------------------------------------

/// One seed of a sweep, as the report needs it.
#[derive(Clone, Debug)]
pub struct SweepSeed {
    /// The seed.
    pub seed: u64,
    /// "pass", "violation" or "unknown".
    pub verdict: String,
    /// The first violation, readable.
    pub violation: Option<String>,
    /// The metrics recorded for the report.
    pub metrics: BTreeMap<String, f64>,
    /// A group to compare CDFs by (e.g. the configuration swarm testing drew), if any.
    pub group: Option<String>,
    /// The command that reproduces this seed.
    pub reproduce: String,
}

/// A sweep, as the report needs it.
#[derive(Clone, Debug)]
pub struct SweepInput {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario file.
    pub path: String,
    /// What the scenario expects.
    pub expected: String,
    /// The metrics to draw distributions of.
    pub metric_names: Vec<String>,
    /// The seeds.
    pub seeds: Vec<SweepSeed>,
}

/// Most groups a CDF compares; past it, all seeds form one group.
pub const GROUPS_MAX: usize = 8;

/// Writes the report of a sweep into `dir`: verdict counts, and per metric a histogram and a
/// CDF across seeds (one CDF line per group when seeds carry groups).
pub fn write_sweep_report(dir: &Path, s: &SweepInput) -> Result<Written, String> {
    prepare(dir)?;
    let mut out = Written::default();
    let mut drawn = Vec::new();
    let mut counts: Vec<(String, u64)> = ["pass", "violation", "unknown"]
        .iter()
        .map(|v| {
            (
                v.to_string(),
                s.seeds.iter().filter(|x| x.verdict == *v).count() as u64,
            )
        })
        .collect();
    counts.retain(|c| c.1 > 0 || c.0 != "unknown");
    render(
        dir,
        "verdicts",
        "Verdicts",
        &VerdictPlot { counts: &counts },
        &mut out,
        &mut drawn,
    );
    for (i, m) in s.metric_names.iter().enumerate() {
        let mut groups: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for x in &s.seeds {
            if let Some(v) = x.metrics.get(m) {
                groups
                    .entry(x.group.clone().unwrap_or_default())
                    .or_default()
                    .push(*v);
            }
        }
        if groups.len() > GROUPS_MAX {
            let all: Vec<f64> = groups.into_values().flatten().collect();
            groups = BTreeMap::from([(String::new(), all)]);
        }
        if groups.values().all(|v| v.is_empty()) {
            out.problems
                .push(format!("metric {m}: recorded by no seed"));
            continue;
        }
        render(
            dir,
            &format!("metric-{}", sanitize(m, i)),
            &format!("Distribution of {m}"),
            &DistributionPlot {
                metric: m,
                groups: &groups,
            },
            &mut out,
            &mut drawn,
        );
    }
    let mut h = String::new();
    let _ = write!(
        h,
        "<table class=kv><tr><th>scenario</th><td>{} <span class=dim>({})</span></td></tr><tr><th>seeds</th><td>{}</td></tr><tr><th>expected</th><td>{}</td></tr>",
        esc(&s.scenario),
        esc(&s.path),
        s.seeds.len(),
        esc(&s.expected)
    );
    for (v, c) in &counts {
        let _ = write!(h, "<tr><th>{v}</th><td class=\"v-{v}\">{c}</td></tr>");
    }
    h.push_str("</table>");
    let bad: Vec<&SweepSeed> = s.seeds.iter().filter(|x| x.verdict != "pass").collect();
    if !bad.is_empty() {
        h.push_str("<h3>Seeds that did not pass</h3><table class=list><tr><th>seed</th><th>verdict</th><th>first violation</th><th>reproduce</th></tr>");
        for x in bad.iter().take(100) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"v-{}\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
                x.seed,
                esc(&x.verdict),
                esc(&x.verdict),
                esc(x.violation.as_deref().unwrap_or("")),
                esc(&x.reproduce)
            );
        }
        h.push_str("</table>");
        if bad.len() > 100 {
            let _ = write!(h, "<p>... and {} more</p>", bad.len() - 100);
        }
    }
    write_index(
        dir,
        &format!("distsim sweep: {}", s.scenario),
        &h,
        &drawn,
        &mut out,
    )?;
    Ok(out)
}

// ---- check ------------------------------------------------------------------------------

/// Writes the report of a checked history into `dir`: the summary of the checker's verdict
/// and the history views, with the operations it could not place highlighted. `title` names
/// the history (its file), `verdict` is the checker's verdict in words, `linearizability` its
/// JSON report (see [`data::unplaced_ops`] for what is read from it).
pub fn write_check_report(
    dir: &Path,
    title: &str,
    history: &History,
    verdict: &str,
    linearizability: Option<&serde_json::Value>,
) -> Result<Written, String> {
    prepare(dir)?;
    let mut out = Written::default();
    let mut drawn = Vec::new();
    let ops = ops_of(history);
    let unplaced_list = unplaced_ops(linearizability, history);
    let unplaced: BTreeMap<usize, &'static str> = unplaced_list
        .iter()
        .flatten()
        .map(|i| (*i, "not placed"))
        .collect();
    let end_ns = history
        .events
        .iter()
        .map(|e| e.time_ns)
        .max()
        .unwrap_or(0)
        .max(1);
    let clients = ops
        .iter()
        .map(|o| o.process)
        .collect::<BTreeSet<u64>>()
        .len()
        .clamp(1, 64);
    // Processes in a history file are rows as they come: renumber densely.
    let (window, _) = pick_window(&ops, &unplaced, None, &[], end_ns);
    let window = if unplaced.is_empty() {
        (0, end_ns)
    } else {
        window
    };
    if !ops.is_empty() {
        render(
            dir,
            "latency",
            "Operation latency",
            &LatencyPlot {
                ops: &ops,
                faults: &[],
                end_ns,
                violation_ns: None,
            },
            &mut out,
            &mut drawn,
        );
        let dense = renumber(&ops);
        render_histories(
            dir, &dense, &unplaced, clients, None, window, None, &mut out, &mut drawn,
        );
    }
    let mut h = String::new();
    let _ = write!(
        h,
        "<table class=kv><tr><th>history</th><td>{}</td></tr><tr><th>verdict</th><td class=\"v-{}\">{}</td></tr><tr><th>operations</th><td>{}</td></tr>",
        esc(title),
        esc(verdict),
        esc(verdict),
        ops.len()
    );
    if let Some(u) = &unplaced_list {
        unplaced_row(&mut h, "not placed", u);
    }
    h.push_str("</table>");
    if let Some(l) = linearizability {
        // The explanation as tables (the same as a run's report), then the data behind it.
        lin::explain_html(&mut h, l, history, 0, clients);
        let text = serde_json::to_string_pretty(l).unwrap_or_default();
        let text: String = text.chars().take(20_000).collect();
        let _ = write!(
            h,
            "<details><summary>The checker's report as data (JSON)</summary><pre>{}</pre></details>",
            esc(&text)
        );
    }
    write_index(
        dir,
        &format!("distsim check: {title}"),
        &h,
        &drawn,
        &mut out,
    )?;
    Ok(out)
}

/// Gives processes dense row numbers (0, 1, ...) in order of first appearance.
fn renumber(ops: &[Op]) -> Vec<Op> {
    let mut rows: BTreeMap<u64, u64> = BTreeMap::new();
    ops.iter()
        .map(|o| {
            let n = rows.len() as u64;
            let row = *rows.entry(o.process).or_insert(n);
            Op {
                process: row,
                ..o.clone()
            }
        })
        .collect()
}

/// A summary-table row listing the operations the checker could not place (the first 30).
fn unplaced_row(h: &mut String, label: &str, unplaced: &BTreeSet<usize>) {
    let list: Vec<String> = unplaced.iter().take(30).map(|i| format!("#{i}")).collect();
    let _ = write!(
        h,
        "<tr><th>{label}</th><td>{} {}</td></tr>",
        unplaced.len(),
        list.join(" ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::coord::Shift;

    /// Draws text in a family no one registered, as on a machine whose font is missing.
    struct MissingFont;

    impl Plot for MissingFont {
        fn size(&self) -> (u32, u32) {
            (200, 100)
        }
        fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
            root.fill(&WHITE).map_err(plots::err)?;
            root.draw(&Text::new(
                "hello",
                (10, 10),
                ("no-such-family", 12).into_font(),
            ))
            .map_err(plots::err)
        }
    }

    #[test]
    fn a_missing_font_is_reported_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("distsim-reports-font-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = Written::default();
        let mut drawn = Vec::new();
        render(&dir, "t", "Test", &MissingFont, &mut out, &mut drawn);
        assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
        // SVG text needs no font (the viewer picks one); the PNG reports the missing font.
        assert!(
            out.problems[0].starts_with("Test: PNG not drawn"),
            "{:?}",
            out.problems
        );
        assert_eq!(drawn.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_bundled_font_registers() {
        assert!(font::ensure());
    }

    #[test]
    fn windows_parse_with_units() {
        assert_eq!(
            parse_window("1.9s..2.3s"),
            Ok((1_900_000_000, 2_300_000_000))
        );
        assert_eq!(parse_window("0ms..500ms"), Ok((0, 500_000_000)));
        assert!(parse_window("2s..1s").is_err());
        assert!(parse_window("2s").is_err());
        assert!(parse_window("2..3s").is_err());
    }
}
