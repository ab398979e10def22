//! The plots. Each is a value implementing [`Plot`], drawn once to SVG and once to PNG by the
//! same code. Plots bound the marks they draw (aggregating where marks would overlap, or
//! narrowing a window) and say so on the plot, so a large run stays fast and readable.

use std::collections::{BTreeMap, BTreeSet};

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use sim_core::metrics::SeriesPoint;
use sim_core::trace::{TraceEvent, TraceKind};

use crate::data::{FaultWindow, Op, Outcome};
use crate::font::FAMILY;

/// The chart every plot over (time, value) is drawn in.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The frame shared by the plots: caption, margins, label areas and the two ranges.
pub(crate) fn frame<'a, DB: DrawingBackend>(
    root: &'a DrawingArea<DB, Shift>,
    caption: impl AsRef<str>,
    y_label_area: u32,
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Result<Chart<'a, DB>, String> {
    ChartBuilder::on(root)
        .caption(caption, font(18))
        .margin(12)
        // Room on the right for the last tick label, below for the legend and the note.
        .margin_right(28)
        .margin_bottom(FOOTER_H)
        .x_label_area_size(40)
        .y_label_area_size(y_label_area)
        .build_cartesian_2d(x, y)
        .map_err(err)
}

/// Height of the strip under every framed plot: the legend row, then the note.
pub(crate) const FOOTER_H: u32 = 62;

/// How far up from the bottom the legend row of a framed plot sits (above two note lines).
pub const LEGEND_UP: i32 = 42;

/// How many decimals tick labels in seconds need over a span of `span_s` seconds (about ten
/// ticks): 1.9 s, not "1900.0 ms"; 1.905 s when the window is a few tens of milliseconds.
pub fn decimals_for(span_s: f64) -> usize {
    let mut step = span_s / 10.0;
    let mut d = 0;
    while step > 0.0 && step < 0.999 && d < 6 {
        step *= 10.0;
        d += 1;
    }
    d
}

/// A time in seconds with `decimals` decimals, as tick labels show it.
pub fn fmt_tick_s(x: f64, decimals: usize) -> String {
    let t = format!("{:.*}", decimals, x);
    if t == "-0" || t.starts_with("-0.") && t.trim_start_matches("-0.").chars().all(|c| c == '0') {
        t.trim_start_matches('-').to_string()
    } else {
        t
    }
}

/// A true time for people: `1.930 s` (milliseconds kept).
pub fn fmt_s(ns: u64) -> String {
    format!("{:.3} s", ns as f64 / 1e9)
}

/// A y value as a tick label: integers without ".0", small values with the decimals they need.
pub(crate) fn fmt_value(v: f64, span: f64) -> String {
    if span >= 10.0 || (v - v.round()).abs() < 1e-9 && span >= 2.0 {
        format!("{:.0}", v)
    } else {
        format!("{:.*}", decimals_for(span), v)
    }
}

/// The mesh of a plot over time (x in seconds) with a numeric y axis: both axis titles,
/// readable ticks, light grid lines.
pub(crate) fn value_mesh<'a, DB: DrawingBackend + 'a>(
    chart: &mut Chart<'a, DB>,
    x_desc: &str,
    y_desc: &str,
) -> Result<(), String> {
    let xr = chart.x_range();
    let yr = chart.y_range();
    let dx = decimals_for(xr.end - xr.start);
    let ys = yr.end - yr.start;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&|x| fmt_tick_s(*x, dx))
        .y_label_formatter(&|y| fmt_value(*y, ys))
        .label_style(font(12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)
}

/// A mark in a legend row.
#[derive(Clone, Copy, Debug)]
pub enum Swatch {
    /// A filled box.
    Box(RGBColor),
    /// An outlined box.
    Outline(RGBColor),
    /// A line.
    Line(RGBColor),
    /// A cross.
    Cross(RGBColor),
    /// Text only.
    None,
}

/// Draws a legend row (swatch, words) at the bottom of the plot, `from_bottom` pixels up, in
/// the text colour of the plot (not a grey footnote).
pub fn legend_row<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    items: &[(Swatch, String)],
    from_bottom: i32,
) -> Result<(), String> {
    let (_, h) = root.dim_in_pixel();
    let y = h as i32 - from_bottom;
    let mut x = 10;
    for (sw, text) in items {
        match *sw {
            Swatch::Box(c) => root
                .draw(&Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()))
                .map_err(err)?,
            Swatch::Outline(c) => root
                .draw(&Rectangle::new(
                    [(x, y - 5), (x + 14, y + 5)],
                    c.stroke_width(2),
                ))
                .map_err(err)?,
            Swatch::Line(c) => root
                .draw(&PathElement::new(
                    vec![(x, y), (x + 14, y)],
                    c.stroke_width(2),
                ))
                .map_err(err)?,
            Swatch::Cross(c) => root
                .draw(&Cross::new((x + 7, y), 4, c.stroke_width(2)))
                .map_err(err)?,
            Swatch::None => {}
        }
        let tx = if matches!(sw, Swatch::None) {
            x
        } else {
            x + 18
        };
        root.draw(&Text::new(
            text.clone(),
            (tx, y),
            font(12).pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(err)?;
        // DejaVu Sans at 12 px: under 6 px a character on average.
        x = tx + (text.chars().count() as f64 * 6.0) as i32 + 14;
    }
    Ok(())
}

/// The legend items of operation outcomes and highlighted operations.
pub(crate) fn outcome_legend(highlighted: bool) -> Vec<(Swatch, String)> {
    let mut v = vec![
        (Swatch::Box(OK_C), "ok".to_string()),
        (Swatch::Box(FAIL_C), "fail (no effect)".into()),
        (Swatch::Box(INFO_C), "info (unknown)".into()),
        (Swatch::Box(PENDING_C), "pending".into()),
    ];
    if highlighted {
        v.push((
            Swatch::Outline(VIOLATION_C),
            "named by the violation (or not placed)".into(),
        ));
    }
    v
}

/// The legend box every plot with several series draws in its upper right corner.
fn legend<'a, DB: DrawingBackend + 'a>(chart: &mut Chart<'a, DB>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .label_font(font(12))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)
}

/// A plot that can be drawn on any plotters backend.
pub trait Plot {
    /// Width and height in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the plot.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

pub(crate) fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Most marks a scatter draws one by one; past it, marks are merged per grid cell.
pub const SCATTER_MARKS_MAX: usize = 5_000;
/// Most messages the space-time diagram draws; past it, the window narrows.
pub const MESSAGES_MAX: usize = 300;
/// Most operations one history view draws; past it, the window narrows.
pub const HISTORY_OPS_MAX: usize = 300;

// One colour per meaning, red only for a violation (the line, the operations it names, the
// overlaps it is made of). Outcomes: green ok, purple fail, orange info, grey pending.
pub(crate) const OK_C: RGBColor = RGBColor(30, 140, 60);
pub(crate) const FAIL_C: RGBColor = RGBColor(125, 70, 175);
pub(crate) const INFO_C: RGBColor = RGBColor(230, 140, 0);
pub(crate) const PENDING_C: RGBColor = RGBColor(175, 175, 175);
/// The violation colour, and nothing else's.
pub const VIOLATION_C: RGBColor = RGBColor(215, 0, 0);
/// Delivered messages.
pub(crate) const MSG_C: RGBColor = RGBColor(40, 70, 160);
/// Dropped messages.
pub(crate) const DROP_C: RGBColor = RGBColor(60, 60, 60);
const NODE_COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(188, 189, 34),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

fn outcome_color(o: Outcome) -> RGBColor {
    match o {
        Outcome::Ok => OK_C,
        Outcome::Fail => FAIL_C,
        Outcome::Info => INFO_C,
        Outcome::Pending => PENDING_C,
    }
}

pub(crate) fn node_color(i: usize) -> RGBColor {
    NODE_COLORS[i % NODE_COLORS.len()]
}

pub(crate) fn fault_color(kind: &str) -> RGBColor {
    match kind {
        "partition" => RGBColor(70, 130, 220),
        "crash" => RGBColor(25, 25, 25),
        "pause" => RGBColor(200, 160, 0),
        "clog" => RGBColor(140, 95, 50),
        _ => RGBColor(0, 130, 130),
    }
}

pub(crate) fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, size).into_font())
}

/// `c` mixed with white: `a` of the colour (a legend swatch of a shaded area).
pub(crate) fn pale(c: RGBColor, a: f64) -> RGBColor {
    let m = |x: u8| (x as f64 * a + 255.0 * (1.0 - a)).round() as u8;
    RGBColor(m(c.0), m(c.1), m(c.2))
}

pub(crate) fn s_of(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Draws a note at the bottom left of the plot (aggregation, sampling, window).
pub(crate) fn note<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    text: &str,
) -> Result<(), String> {
    if text.is_empty() {
        return Ok(());
    }
    let (w, h) = root.dim_in_pixel();
    // Wrapped at the plot's width (DejaVu Sans at 12 px: about 6.8 px a character), never cut.
    let per_line = ((w as f64 - 16.0) / 6.8) as usize;
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("one line");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > per_line {
            lines.push(word.to_string());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    let n = lines.len() as i32;
    for (i, line) in lines.into_iter().enumerate() {
        root.draw(&Text::new(
            line,
            (8, h as i32 - 4 - (n - 1 - i as i32) * 15),
            font(12)
                .color(&RGBColor(70, 70, 70))
                .pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))
        .map_err(err)?;
    }
    Ok(())
}

type Chart2<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// Shades fault windows across the whole y range and labels them at the top; instants are
/// vertical lines. Labels are given to at most `labels_max` windows.
pub(crate) fn shade_faults<DB: DrawingBackend>(
    chart: &mut Chart2<'_, DB>,
    faults: &[FaultWindow],
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Result<(), String> {
    let labels_max = 16;
    let mut labelled = 0;
    let mut lanes_used = 0usize;
    for w in faults {
        let (a, b) = (s_of(w.start_ns), s_of(w.end_ns));
        if b < x0 || a > x1 {
            continue;
        }
        let (a, b) = (a.max(x0), b.min(x1));
        let c = fault_color(&w.kind);
        if w.end_ns > w.start_ns {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(a, y0), (b, y1)],
                    c.mix(0.13).filled(),
                )))
                .map_err(err)?;
        } else {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(a, y0), (a, y1)],
                    c.mix(0.7).stroke_width(1),
                )))
                .map_err(err)?;
        }
        if labelled < labels_max {
            labelled += 1;
            // Stagger labels over three rows so that close faults stay readable.
            let row = lanes_used % 3;
            lanes_used += 1;
            let y = y1 - (y1 - y0) * (0.02 + 0.05 * row as f64);
            chart
                .draw_series(std::iter::once(Text::new(
                    w.label(),
                    (a, y),
                    font(11).color(&c),
                )))
                .map_err(err)?;
        }
    }
    Ok(())
}

fn violation_line<DB: DrawingBackend>(
    chart: &mut Chart2<'_, DB>,
    at_s: Option<f64>,
    (x0, x1): (f64, f64),
    (y0, y1): (f64, f64),
) -> Result<(), String> {
    if let Some(t) = at_s.filter(|t| *t >= x0 && *t <= x1) {
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(t, y0), (t, y1)],
                VIOLATION_C.stroke_width(2),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                "violation".to_string(),
                (t, y0 + (y1 - y0) * 0.08),
                font(12)
                    .color(&VIOLATION_C)
                    .pos(Pos::new(HPos::Right, VPos::Bottom)),
            )))
            .map_err(err)?;
    }
    Ok(())
}

// ---- latency ---------------------------------------------------------------------------

/// Operation latency over time, one mark per operation coloured by outcome.
pub struct LatencyPlot<'a> {
    /// The operations.
    pub ops: &'a [Op],
    /// Fault windows to shade.
    pub faults: &'a [FaultWindow],
    /// The run's end.
    pub end_ns: u64,
    /// The first violation.
    pub violation_ns: Option<u64>,
}

impl LatencyPlot<'_> {
    /// The marks to draw: (time s, latency ms, outcome), merged per grid cell when many; and
    /// a note saying what was merged.
    fn marks(&self, ymax: f64) -> (Vec<(f64, f64, Outcome)>, String) {
        let end = s_of(self.end_ns).max(1e-9);
        let pts: Vec<(f64, f64, Outcome)> = self
            .ops
            .iter()
            .filter(|o| o.outcome != Outcome::Pending)
            .filter_map(|o| o.latency_ms().map(|l| (s_of(o.invoke_ns), l, o.outcome)))
            .collect();
        if pts.len() <= SCATTER_MARKS_MAX {
            return (pts, String::new());
        }
        let (cols, rows) = (300.0, 100.0);
        let mut cells: BTreeSet<(u32, u32, Outcome)> = BTreeSet::new();
        for (x, y, o) in &pts {
            let cx = ((x / end) * cols).clamp(0.0, cols - 1.0) as u32;
            let cy = ((y / ymax) * rows).clamp(0.0, rows - 1.0) as u32;
            cells.insert((cx, cy, *o));
        }
        let merged: Vec<(f64, f64, Outcome)> = cells
            .into_iter()
            .map(|(cx, cy, o)| {
                (
                    (cx as f64 + 0.5) / cols * end,
                    (cy as f64 + 0.5) / rows * ymax,
                    o,
                )
            })
            .collect();
        let note = format!(
            "{} operations drawn as {} marks: operations that would overlap (same 1/300 of time, 1/100 of latency, outcome) are merged",
            pts.len(),
            merged.len()
        );
        (merged, note)
    }
}

impl Plot for LatencyPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 490)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let x1 = s_of(self.end_ns).max(1e-3);
        let ymax = self
            .ops
            .iter()
            .filter_map(|o| o.latency_ms())
            .fold(1.0f64, f64::max)
            * 1.15;
        let mut chart = frame(
            root,
            "Operation latency over time",
            60,
            0f64..x1,
            0f64..ymax,
        )?;
        value_mesh(&mut chart, "invocation time (s)", "latency (ms)")?;
        shade_faults(&mut chart, self.faults, (0.0, x1), (0.0, ymax))?;
        let (marks, text) = self.marks(ymax);
        for o in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
            let c = outcome_color(o);
            let n = self.ops.iter().filter(|x| x.outcome == o).count();
            let pts = marks.iter().filter(|m| m.2 == o).map(|m| (m.0, m.1));
            let label = format!("{} ({n})", o.as_str());
            match o {
                Outcome::Ok => chart
                    .draw_series(pts.map(|p| Circle::new(p, 2, c.mix(0.7).filled())))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| Circle::new((x, y), 3, c.filled())),
                Outcome::Fail => chart
                    .draw_series(pts.map(|p| Cross::new(p, 3, c.stroke_width(1))))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| Cross::new((x, y), 3, c.stroke_width(1))),
                _ => chart
                    .draw_series(pts.map(|p| TriangleMarker::new(p, 3, c.filled())))
                    .map_err(err)?
                    .label(label)
                    .legend(move |(x, y)| TriangleMarker::new((x, y), 3, c.filled())),
            };
        }
        violation_line(
            &mut chart,
            self.violation_ns.map(s_of),
            (0.0, x1),
            (0.0, ymax),
        )?;
        legend(&mut chart)?;
        note(root, &text)
    }
}

// ---- throughput ------------------------------------------------------------------------

/// Completed operations per second over time, by outcome.
pub struct ThroughputPlot<'a> {
    /// The operations.
    pub ops: &'a [Op],
    /// Fault windows to shade.
    pub faults: &'a [FaultWindow],
    /// The run's end.
    pub end_ns: u64,
    /// The first violation.
    pub violation_ns: Option<u64>,
}

impl Plot for ThroughputPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 390)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let end = self.end_ns.max(1);
        let bins = 100usize;
        let width_ns = end.div_ceil(bins as u64).max(1);
        let mut counts: BTreeMap<Outcome, Vec<f64>> = BTreeMap::new();
        for o in self.ops {
            if let Some(c) = o.complete_ns {
                let b = ((c / width_ns) as usize).min(bins - 1);
                counts.entry(o.outcome).or_insert_with(|| vec![0.0; bins])[b] += 1.0;
            }
        }
        let per_s = 1e9 / width_ns as f64;
        let ymax = counts
            .values()
            .flat_map(|v| v.iter())
            .fold(1.0f64, |a, b| a.max(*b))
            * per_s
            * 1.15;
        let x1 = s_of(end);
        let mut chart = frame(
            root,
            "Throughput (completed operations per second)",
            60,
            0f64..x1,
            0f64..ymax,
        )?;
        value_mesh(&mut chart, "completion time (s)", "ops/s")?;
        shade_faults(&mut chart, self.faults, (0.0, x1), (0.0, ymax))?;
        for (o, v) in &counts {
            let c = outcome_color(*o);
            let pts: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .flat_map(|(i, n)| {
                    let a = s_of(i as u64 * width_ns);
                    let b = s_of((i as u64 + 1) * width_ns).min(x1);
                    [(a, n * per_s), (b, n * per_s)]
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(err)?
                .label(o.as_str())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        violation_line(
            &mut chart,
            self.violation_ns.map(s_of),
            (0.0, x1),
            (0.0, ymax),
        )?;
        legend(&mut chart)?;
        note(
            root,
            &format!("{} bins of {:.0} ms", bins, width_ns as f64 / 1e6),
        )
    }
}

// ---- space-time diagram ----------------------------------------------------------------

/// A space-time (Lamport) diagram of a window of the run.
pub struct SpaceTimePlot<'a> {
    /// The kept trace.
    pub trace: &'a [TraceEvent],
    /// The operations (to draw client operations and highlight unplaced ones).
    pub ops: &'a [Op],
    /// Operations to highlight, with why ("not placed", "named by a violation").
    pub highlight: &'a BTreeMap<usize, &'static str>,
    /// Server count.
    pub servers: usize,
    /// Client count.
    pub clients: usize,
    /// Fault windows.
    pub faults: &'a [FaultWindow],
    /// The window drawn, in true time.
    pub window_ns: (u64, u64),
    /// The first violation.
    pub violation_ns: Option<u64>,
    /// Why this window (shown on the plot).
    pub why: String,
}

/// One message in the window: (send time, from, to or drop, end time, label, dropped).
struct Arrow {
    t0: u64,
    from: usize,
    to: usize,
    t1: u64,
    label: String,
    dropped: bool,
}

impl SpaceTimePlot<'_> {
    fn arrows(&self, (a, b): (u64, u64)) -> Vec<Arrow> {
        let mut sends: BTreeMap<u64, (u64, usize, usize, &str)> = BTreeMap::new();
        // Delivered messages, kept for duplicates that arrive again.
        let mut delivered: BTreeMap<u64, (u64, usize, usize, &str)> = BTreeMap::new();
        let mut out = Vec::new();
        for e in self.trace {
            if e.time_ns > b {
                break;
            }
            match e.kind {
                TraceKind::Send => {
                    if let (Some(id), Some(p)) = (e.msg_id, e.peer) {
                        sends.insert(id, (e.time_ns, e.node, p, &e.label));
                    }
                }
                TraceKind::Deliver
                | TraceKind::DropCut
                | TraceKind::DropLoss
                | TraceKind::DropDown => {
                    let dropped = e.kind != TraceKind::Deliver;
                    let found = e.msg_id.and_then(|id| {
                        let s = sends.remove(&id).or_else(|| delivered.get(&id).copied());
                        if let (false, Some(s)) = (dropped, s) {
                            delivered.insert(id, s);
                        }
                        s
                    });
                    let (t0, from, to, label) = match found {
                        Some(s) => s,
                        // A drop at send time may come without a send event.
                        None if dropped => (
                            e.time_ns,
                            e.node,
                            e.peer.unwrap_or(e.node),
                            e.label.as_str(),
                        ),
                        None => continue,
                    };
                    if e.time_ns < a {
                        continue;
                    }
                    out.push(Arrow {
                        t0,
                        from,
                        to,
                        t1: e.time_ns,
                        label: label.to_string(),
                        dropped,
                    });
                }
                _ => {}
            }
        }
        // Messages sent in the window and still in flight at its end.
        for (t0, from, to, label) in sends.into_values() {
            if t0 >= a {
                out.push(Arrow {
                    t0,
                    from,
                    to,
                    t1: b,
                    label: label.to_string(),
                    dropped: false,
                });
            }
        }
        out
    }
}

/// The name of node `n` on every plot: `n3` for a server, `n5 (client 0)` for a client.
pub fn node_name(n: usize, servers: usize) -> String {
    if n < servers {
        format!("n{n}")
    } else {
        format!("n{n} (client {})", n - servers)
    }
}

/// Where the space-time diagram puts time and nodes, in the pixels of its SVG: what the
/// page's step-through timeline needs to mark an event on the diagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpaceTimeGeometry {
    /// The window drawn (after narrowing), true time.
    pub t0_ns: u64,
    /// Its end.
    pub t1_ns: u64,
    /// The x pixel of `t0_ns`.
    pub x0_px: i32,
    /// The x pixel of `t1_ns`.
    pub x1_px: i32,
    /// The y pixel of each node's lane, by node index.
    pub lane_y_px: Vec<i32>,
}

impl SpaceTimePlot<'_> {
    /// The window drawn, narrowed around its anchor until the messages fit, with its messages
    /// and whether it was narrowed.
    fn narrowed(&self) -> ((u64, u64), Vec<Arrow>, bool) {
        let (mut a, mut b) = self.window_ns;
        let mut arrows = self.arrows((a, b));
        let mut narrowed = false;
        let anchor = self
            .violation_ns
            .filter(|v| *v >= a && *v <= b)
            .unwrap_or(a + (b - a) / 2);
        let mut rounds = 0;
        while arrows.len() > MESSAGES_MAX && rounds < 40 {
            rounds += 1;
            narrowed = true;
            let (l, r) = (anchor - a, b - anchor);
            a = anchor - l * 2 / 3;
            b = anchor + r * 2 / 3;
            arrows = self.arrows((a, b));
        }
        ((a, b), arrows, narrowed)
    }

    /// The y coordinate of node `n`'s lane (servers on top).
    fn lane_y(&self, n: usize) -> f64 {
        let lanes = self.servers + self.clients;
        (lanes - 1 - n.min(lanes.saturating_sub(1))) as f64
    }

    /// The chart of window `(a, b)` with its x range (ms) and y range.
    #[allow(clippy::type_complexity)]
    fn chart<'a, DB: DrawingBackend>(
        &self,
        root: &'a DrawingArea<DB, Shift>,
        (a, b): (u64, u64),
    ) -> Result<(Chart<'a, DB>, (f64, f64), (f64, f64)), String> {
        let lanes = self.servers + self.clients;
        let (x0, x1) = (s_of(a), s_of(b).max(s_of(a) + 1e-6));
        let (y0, y1) = (-0.7, lanes as f64 - 0.3);
        let chart = frame(
            root,
            "Space-time diagram (messages between nodes)",
            110,
            x0..x1,
            y0..y1,
        )?;
        Ok((chart, (x0, x1), (y0, y1)))
    }

    /// Where [`Plot::draw`] puts the window's ends and each lane, in pixels of the drawing.
    pub fn geometry(&self) -> Result<SpaceTimeGeometry, String> {
        let ((a, b), _, _) = self.narrowed();
        let mut sink = String::new();
        let root = SVGBackend::with_string(&mut sink, self.size()).into_drawing_area();
        let (chart, (x0, x1), _) = self.chart(&root, (a, b))?;
        let lane_y_px = (0..self.servers + self.clients)
            .map(|n| chart.backend_coord(&(x0, self.lane_y(n))).1)
            .collect();
        Ok(SpaceTimeGeometry {
            t0_ns: a,
            t1_ns: b,
            x0_px: chart.backend_coord(&(x0, 0.0)).0,
            x1_px: chart.backend_coord(&(x1, 0.0)).0,
            lane_y_px,
        })
    }
}

impl Plot for SpaceTimePlot<'_> {
    fn size(&self) -> (u32, u32) {
        let lanes = (self.servers + self.clients).max(1) as u32;
        (1100, (190 + 46 * lanes).min(1400))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let ((a, b), arrows, narrowed) = self.narrowed();
        let lanes = self.servers + self.clients;
        let y_of = |n: usize| self.lane_y(n);
        let (mut chart, (x0, x1), (y0, y1)) = self.chart(root, (a, b))?;
        let dx = decimals_for(x1 - x0);
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .x_label_formatter(&|x| fmt_tick_s(*x, dx))
            .y_labels(0)
            .disable_y_mesh()
            .label_style(font(12))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        // Partitions shade everything; node faults are drawn on their lanes.
        let global: Vec<FaultWindow> = self
            .faults
            .iter()
            .filter(|w| w.kind == "partition" || w.end_ns == w.start_ns)
            .cloned()
            .collect();
        shade_faults(&mut chart, &global, (x0, x1), (y0, y1))?;
        for n in 0..lanes {
            let y = y_of(n);
            let c = if n < self.servers {
                BLACK
            } else {
                RGBColor(110, 110, 110)
            };
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(x0, y), (x1, y)],
                    c.stroke_width(1),
                )))
                .map_err(err)?;
            let (px, py) = chart.backend_coord(&(x0, y));
            root.draw(&Text::new(
                node_name(n, self.servers),
                (px - 6, py),
                font(12).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(err)?;
        }
        for w in self
            .faults
            .iter()
            .filter(|w| w.kind != "partition" && w.end_ns > w.start_ns)
        {
            let (s, e) = (s_of(w.start_ns), s_of(w.end_ns));
            if e < x0 || s > x1 {
                continue;
            }
            let c = fault_color(&w.kind);
            for &n in &w.nodes {
                let y = y_of(n);
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(s.max(x0), y - 0.12), (e.min(x1), y + 0.12)],
                        c.mix(0.7).filled(),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        w.kind.clone(),
                        (s.max(x0), y + 0.3),
                        font(11).color(&c),
                    )))
                    .map_err(err)?;
            }
        }
        // Client operations as bars on the client lanes.
        let clients = self.clients.max(1) as u64;
        for op in self.ops {
            let end = op.complete_ns.unwrap_or(b);
            if end < a || op.invoke_ns > b {
                continue;
            }
            let lane = self.servers + (op.process % clients) as usize;
            let y = y_of(lane);
            let hl = self.highlight.contains_key(&op.index);
            let c = outcome_color(op.outcome);
            let (s, e) = (s_of(op.invoke_ns).max(x0), s_of(end).min(x1));
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(s, y - 0.08), (e, y + 0.08)],
                    c.mix(0.6).filled(),
                )))
                .map_err(err)?;
            if hl {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(s, y - 0.13), (e, y + 0.13)],
                        VIOLATION_C.stroke_width(2),
                    )))
                    .map_err(err)?;
            }
        }
        let show_labels = arrows.len() <= 40;
        for ar in &arrows {
            let (ya, yb) = (y_of(ar.from), y_of(ar.to));
            let (ta, tb) = (s_of(ar.t0), s_of(ar.t1));
            if ar.dropped {
                // A dropped message goes part of the way and ends in a cross.
                let tb = tb.max(ta + (x1 - x0) * 0.01);
                let ym = ya + (yb - ya) * 0.4;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(ta, ya), (tb, ym)],
                        DROP_C.mix(0.8).stroke_width(1),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Cross::new(
                        (tb, ym),
                        4,
                        DROP_C.stroke_width(2),
                    )))
                    .map_err(err)?;
            } else {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(ta, ya), (tb, yb)],
                        MSG_C.mix(0.6).stroke_width(1),
                    )))
                    .map_err(err)?;
                // The arrow head: a dot at the receiving end.
                chart
                    .draw_series(std::iter::once(Circle::new((tb, yb), 2, MSG_C.filled())))
                    .map_err(err)?;
            }
            if show_labels {
                chart
                    .draw_series(std::iter::once(Text::new(
                        ar.label.clone(),
                        ((ta + tb) / 2.0, (ya + yb) / 2.0),
                        font(10).color(&RGBColor(80, 80, 80)),
                    )))
                    .map_err(err)?;
            }
        }
        violation_line(&mut chart, self.violation_ns.map(s_of), (x0, x1), (y0, y1))?;
        let dropped = arrows.iter().filter(|a| a.dropped).count();
        let mut text = format!(
            "{} messages ({} dropped); {}",
            arrows.len(),
            dropped,
            self.why
        );
        if narrowed {
            text.push_str(&format!(
                "; window narrowed to {}..{} to draw at most {MESSAGES_MAX} messages",
                fmt_s(a),
                fmt_s(b)
            ));
        }
        let mut items = vec![
            (Swatch::Line(MSG_C), "message".to_string()),
            (Swatch::Cross(DROP_C), "dropped".into()),
            (
                Swatch::Box(pale(fault_color("partition"), 0.3)),
                "partition".into(),
            ),
            (
                Swatch::Box(pale(fault_color("crash"), 0.7)),
                "node down".into(),
            ),
        ];
        items.extend(outcome_legend(!self.highlight.is_empty()));
        items.push((Swatch::Line(VIOLATION_C), "violation".into()));
        legend_row(root, &items, LEGEND_UP)?;
        note(root, &text)
    }
}

// ---- history per key -------------------------------------------------------------------

/// The history of one key, Porcupine-style: one row per client, each operation a bar from
/// invocation to completion, unplaced operations in red.
pub struct HistoryPlot<'a> {
    /// The key's name for the title.
    pub key: String,
    /// The operations on this key (already limited to the window).
    pub ops: Vec<&'a Op>,
    /// Operations to highlight, with why ("not placed", "named by a violation").
    pub highlight: &'a BTreeMap<usize, &'static str>,
    /// Client count (rows).
    pub clients: usize,
    /// Server count, to name rows by their client nodes (`None`: a history file, whose rows
    /// are processes).
    pub servers: Option<usize>,
    /// The window drawn.
    pub window_ns: (u64, u64),
    /// The first violation.
    pub violation_ns: Option<u64>,
    /// What the plot leaves out, shown on it.
    pub why: String,
}

impl Plot for HistoryPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, (180 + 48 * self.clients.max(1) as u32).min(1400))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let rows = self.clients.max(1);
        let (a, b) = self.window_ns;
        let (x0, x1) = (s_of(a), s_of(b).max(s_of(a) + 1e-6));
        let (y0, y1) = (-0.6, rows as f64 - 0.4);
        let mut chart = frame(
            root,
            format!("History of {}", self.key),
            110,
            x0..x1,
            y0..y1,
        )?;
        let dx = decimals_for(x1 - x0);
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .x_label_formatter(&|x| fmt_tick_s(*x, dx))
            .y_labels(0)
            .disable_y_mesh()
            .label_style(font(12))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        for r in 0..rows {
            let y = (rows - 1 - r) as f64;
            let (px, py) = chart.backend_coord(&(x0, y));
            let name = match self.servers {
                Some(s) => node_name(s + r, s),
                None => format!("process {r}"),
            };
            root.draw(&Text::new(
                name,
                (px - 6, py),
                font(12).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(err)?;
        }
        let (plot_x0, _) = chart.backend_coord(&(x0, y0));
        let (plot_x1, _) = chart.backend_coord(&(x1, y0));
        // Where each label row is free again (pixels), so labels never overlap: per client
        // row, one row above the bars and one below.
        let mut free_from = vec![[i32::MIN; 2]; rows];
        for op in &self.ops {
            let r = (op.process % rows as u64) as usize;
            let y = (rows - 1 - r) as f64;
            let end = op.complete_ns.unwrap_or(b);
            let (s, e) = (s_of(op.invoke_ns).max(x0), s_of(end).min(x1));
            let hl = self.highlight.contains_key(&op.index);
            let c = outcome_color(op.outcome);
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(s, y - 0.22), (e, y + 0.22)],
                    c.mix(0.35).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(s, y - 0.22), (e, y + 0.22)],
                    c.stroke_width(1),
                )))
                .map_err(err)?;
            if hl {
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(s, y - 0.3), (e, y + 0.3)],
                        VIOLATION_C.stroke_width(3),
                    )))
                    .map_err(err)?;
            }
            let mut label = format!("#{} {}", op.index, op.label());
            if label.chars().count() > 24 {
                label = label.chars().take(23).collect::<String>() + "…";
            }
            if self.highlight.get(&op.index) == Some(&"not placed") {
                // The checker's word for it; "named by a violation" is the legend's default.
                label.push_str(" (not placed)");
            }
            // DejaVu Sans at 10-11 px: about 6 px a character.
            let width = (label.chars().count() as f64 * 6.2) as i32;
            let (bx0, _) = chart.backend_coord(&(s, y));
            let (bx1, _) = chart.backend_coord(&(e, y));
            if !hl && bx1 - bx0 >= width + 4 {
                chart
                    .draw_series(std::iter::once(Text::new(
                        label,
                        (s, y + 0.14),
                        font(10).color(&BLACK),
                    )))
                    .map_err(err)?;
                continue;
            }
            if !hl {
                continue;
            }
            // A highlighted operation: its label above or below the bar, kept inside the plot
            // and off the other labels; one that fits nowhere is left to the page's list.
            let x = bx0.min(plot_x1 - width).max(plot_x0);
            for (slot, dy) in [(0usize, 0.5), (1, -0.3)] {
                if x >= free_from[r][slot] {
                    free_from[r][slot] = x + width + 6;
                    let (_, py) = chart.backend_coord(&(s, y + dy));
                    root.draw(&Text::new(
                        label.clone(),
                        (x, py),
                        font(11).color(&VIOLATION_C),
                    ))
                    .map_err(err)?;
                    break;
                }
            }
        }
        violation_line(&mut chart, self.violation_ns.map(s_of), (x0, x1), (y0, y1))?;
        let hl = self
            .ops
            .iter()
            .filter(|o| self.highlight.contains_key(&o.index))
            .count();
        legend_row(root, &outcome_legend(hl > 0), LEGEND_UP)?;
        note(
            root,
            &format!(
                "{} operations in this window, {} outlined in red; {}",
                self.ops.len(),
                hl,
                self.why
            ),
        )
    }
}

// ---- algorithm panels ------------------------------------------------------------------

/// How a series is drawn, from its name (see the crate docs for the convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelKind {
    /// One step line per node (the default; `term`, `leader`, `commit_index`).
    Step,
    /// `state.NAME`: bars per node while the value is non-zero.
    State,
    /// `excl.NAME`: like `state.`, and times when two or more nodes are in it are shaded red.
    Exclusive,
    /// `load.NAME`: a bar per node of its last value.
    Load,
}

impl PanelKind {
    /// The kind a series name asks for.
    pub fn of(name: &str) -> PanelKind {
        if name.starts_with("state.") {
            PanelKind::State
        } else if name.starts_with("excl.") {
            PanelKind::Exclusive
        } else if name.starts_with("load.") {
            PanelKind::Load
        } else {
            PanelKind::Step
        }
    }
}

/// Most points a step line keeps per node; past it, changes are sampled.
pub const STEP_POINTS_MAX: usize = 4_000;

/// One algorithm panel: a series recorded by the algorithm with `ctx.series`.
pub struct PanelPlot<'a> {
    /// The series name.
    pub name: &'a str,
    /// Its points in time order.
    pub points: &'a [SeriesPoint],
    /// The run's end.
    pub end_ns: u64,
    /// Fault windows.
    pub faults: &'a [FaultWindow],
}

/// Intervals per node while the value is non-zero: node -> [(start, end)].
pub fn intervals(points: &[SeriesPoint], end_ns: u64) -> BTreeMap<usize, Vec<(u64, u64)>> {
    let mut open: BTreeMap<usize, u64> = BTreeMap::new();
    let mut out: BTreeMap<usize, Vec<(u64, u64)>> = BTreeMap::new();
    for p in points {
        let on = p.value != 0.0;
        match (on, open.get(&p.node).copied()) {
            (true, None) => {
                open.insert(p.node, p.time_ns);
            }
            (false, Some(s)) => {
                open.remove(&p.node);
                out.entry(p.node).or_default().push((s, p.time_ns));
            }
            _ => {}
        }
    }
    for (n, s) in open {
        out.entry(n).or_default().push((s, end_ns));
    }
    out
}

/// [`intervals`] of a per-node state, where a crash also ends the state the node was in (its
/// volatile state is gone, though the node could not record that).
pub fn state_intervals(
    points: &[SeriesPoint],
    faults: &[FaultWindow],
    end_ns: u64,
) -> BTreeMap<usize, Vec<(u64, u64)>> {
    let crashes = faults.iter().filter(|f| f.kind == "crash").flat_map(|f| {
        f.nodes.iter().map(|&node| SeriesPoint {
            time_ns: f.start_ns,
            node,
            value: 0.0,
        })
    });
    let mut all: Vec<SeriesPoint> = points.iter().copied().chain(crashes).collect();
    // Stable: a point recorded at the crash instant stays before the crash.
    all.sort_by_key(|p| p.time_ns);
    intervals(&all, end_ns)
}

/// The times when two or more nodes are in the state at once.
pub fn overlaps(iv: &BTreeMap<usize, Vec<(u64, u64)>>) -> Vec<(u64, u64)> {
    let mut edges: Vec<(u64, i32)> = Vec::new();
    for list in iv.values() {
        for &(s, e) in list {
            if e > s {
                edges.push((s, 1));
                edges.push((e, -1));
            }
        }
    }
    // Ends before starts at the same instant: a hand-over at one instant is no overlap.
    edges.sort();
    let mut depth = 0;
    let mut out = Vec::new();
    let mut since = 0;
    for (t, d) in edges {
        let before = depth;
        depth += d;
        if before < 2 && depth >= 2 {
            since = t;
        } else if before >= 2 && depth < 2 && t > since {
            out.push((since, t));
        }
    }
    out
}

impl Plot for PanelPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 380)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let kind = PanelKind::of(self.name);
        let mut nodes: Vec<usize> = self.points.iter().map(|p| p.node).collect();
        nodes.sort();
        nodes.dedup();
        let x1 = s_of(self.end_ns).max(1e-3);
        match kind {
            PanelKind::Load => {
                let mut last: BTreeMap<usize, f64> = BTreeMap::new();
                for p in self.points {
                    last.insert(p.node, p.value);
                }
                let ymax = last.values().fold(1e-9f64, |a, b| a.max(*b)) * 1.15;
                let n = nodes.len().max(1) as f64;
                let mut chart = frame(
                    root,
                    format!("{} per node (last value)", self.name),
                    60,
                    -0.5f64..n - 0.5,
                    0f64..ymax,
                )?;
                let names = nodes.clone();
                chart
                    .configure_mesh()
                    .x_labels(nodes.len().max(1))
                    .x_label_formatter(&move |x| {
                        let i = x.round();
                        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                            format!("n{}", names[i as usize])
                        } else {
                            String::new()
                        }
                    })
                    .disable_x_mesh()
                    .label_style(font(12))
                    .draw()
                    .map_err(err)?;
                let mean = last.values().sum::<f64>() / last.len().max(1) as f64;
                chart
                    .draw_series(nodes.iter().enumerate().map(|(i, node)| {
                        let v = last.get(node).copied().unwrap_or(0.0);
                        Rectangle::new(
                            [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, v)],
                            node_color(*node).mix(0.8).filled(),
                        )
                    }))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(-0.5, mean), (n - 0.5, mean)],
                        BLACK.stroke_width(1),
                    )))
                    .map_err(err)?;
                note(root, &format!("dark line: mean {mean:.2}"))
            }
            PanelKind::State | PanelKind::Exclusive => {
                let iv = state_intervals(self.points, self.faults, self.end_ns);
                let lanes = nodes.len().max(1);
                let (y0, y1) = (-0.6, lanes as f64 - 0.4);
                let mut chart = frame(
                    root,
                    format!("{}: time in state per node", self.name),
                    50,
                    0f64..x1,
                    y0..y1,
                )?;
                let dx = decimals_for(x1);
                chart
                    .configure_mesh()
                    .x_desc("time (s)")
                    .x_label_formatter(&|x| fmt_tick_s(*x, dx))
                    .y_labels(0)
                    .disable_y_mesh()
                    .label_style(font(12))
                    .draw()
                    .map_err(err)?;
                shade_faults(&mut chart, self.faults, (0.0, x1), (y0, y1))?;
                let mut text = String::new();
                if kind == PanelKind::Exclusive {
                    let ov = overlaps(&iv);
                    for &(s, e) in &ov {
                        chart
                            .draw_series(std::iter::once(Rectangle::new(
                                [(s_of(s), y0), (s_of(e).max(s_of(s) + x1 * 0.002), y1)],
                                VIOLATION_C.mix(0.35).filled(),
                            )))
                            .map_err(err)?;
                    }
                    text = if ov.is_empty() {
                        "no overlap: never two holders at once".into()
                    } else {
                        format!(
                            "{} overlap(s), shaded red; first at {:.3} s",
                            ov.len(),
                            s_of(ov[0].0)
                        )
                    };
                }
                for (i, node) in nodes.iter().enumerate() {
                    let y = (lanes - 1 - i) as f64;
                    let (px, py) = chart.backend_coord(&(0.0, y));
                    root.draw(&Text::new(
                        format!("n{node}"),
                        (px - 6, py),
                        font(12).pos(Pos::new(HPos::Right, VPos::Center)),
                    ))
                    .map_err(err)?;
                    let c = node_color(*node);
                    if let Some(list) = iv.get(node) {
                        chart
                            .draw_series(list.iter().map(|&(s, e)| {
                                Rectangle::new(
                                    [
                                        (s_of(s), y - 0.3),
                                        (s_of(e).max(s_of(s) + x1 * 0.001), y + 0.3),
                                    ],
                                    c.mix(0.8).filled(),
                                )
                            }))
                            .map_err(err)?;
                    }
                }
                note(root, &text)
            }
            PanelKind::Step => {
                let ymin = self
                    .points
                    .iter()
                    .map(|p| p.value)
                    .fold(f64::INFINITY, f64::min);
                let ymax = self
                    .points
                    .iter()
                    .map(|p| p.value)
                    .fold(f64::NEG_INFINITY, f64::max);
                let (ymin, ymax) = if ymin.is_finite() {
                    (ymin, ymax)
                } else {
                    (0.0, 1.0)
                };
                let pad = ((ymax - ymin) * 0.1).max(0.5);
                let (y0, y1) = (ymin - pad, ymax + pad);
                let mut chart = frame(
                    root,
                    format!("{} per node over time", self.name),
                    60,
                    0f64..x1,
                    y0..y1,
                )?;
                let integral = self.points.iter().all(|p| p.value.fract() == 0.0);
                if integral && ymax - ymin <= 12.0 {
                    // Terms, ids, counts: integer ticks only, never "2.5".
                    let dx = decimals_for(x1);
                    chart
                        .configure_mesh()
                        .x_desc("time (s)")
                        .y_desc(self.name)
                        .y_labels((ymax - ymin) as usize + 2)
                        .x_label_formatter(&|x| fmt_tick_s(*x, dx))
                        .y_label_formatter(&|y| {
                            if (y - y.round()).abs() < 1e-9 {
                                format!("{:.0}", y)
                            } else {
                                String::new()
                            }
                        })
                        .label_style(font(12))
                        .light_line_style(RGBColor(235, 235, 235))
                        .draw()
                        .map_err(err)?;
                } else {
                    value_mesh(&mut chart, "time (s)", self.name)?;
                }
                shade_faults(&mut chart, self.faults, (0.0, x1), (y0, y1))?;
                let mut sampled = false;
                for (i, node) in nodes.iter().enumerate() {
                    // Keep only changes: a step line needs nothing else.
                    let mut ch: Vec<(u64, f64)> = Vec::new();
                    for p in self.points.iter().filter(|p| p.node == *node) {
                        if ch.last().map(|l| l.1) != Some(p.value) {
                            ch.push((p.time_ns, p.value));
                        }
                    }
                    if ch.len() > STEP_POINTS_MAX {
                        sampled = true;
                        let k = ch.len().div_ceil(STEP_POINTS_MAX);
                        ch = ch.into_iter().step_by(k).collect();
                    }
                    // Offset nodes slightly so that equal values stay visible per node.
                    let off = (i as f64 - nodes.len() as f64 / 2.0) * (y1 - y0) * 0.006;
                    let mut pts = Vec::with_capacity(ch.len() * 2 + 1);
                    for (j, &(t, v)) in ch.iter().enumerate() {
                        if j > 0 {
                            pts.push((s_of(t), ch[j - 1].1 + off));
                        }
                        pts.push((s_of(t), v + off));
                    }
                    if let Some(&(_, v)) = ch.last() {
                        pts.push((x1, v + off));
                    }
                    let c = node_color(*node);
                    chart
                        .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                        .map_err(err)?
                        .label(format!("n{node}"))
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                        });
                }
                chart
                    .configure_series_labels()
                    .label_font(font(12))
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .position(SeriesLabelPosition::UpperLeft)
                    .draw()
                    .map_err(err)?;
                note(
                    root,
                    if sampled {
                        "changes sampled to keep the plot small"
                    } else {
                        ""
                    },
                )
            }
        }
    }
}

// ---- sweeps ----------------------------------------------------------------------------

/// Verdict counts of a sweep as bars.
pub struct VerdictPlot<'a> {
    /// (verdict, count) in display order.
    pub counts: &'a [(String, u64)],
}

impl Plot for VerdictPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (700, 320)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let n = self.counts.len().max(1) as f64;
        let ymax = self.counts.iter().map(|c| c.1).max().unwrap_or(1).max(1) as f64 * 1.2;
        let mut chart = ChartBuilder::on(root)
            .caption("Verdicts", font(18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..ymax)
            .map_err(err)?;
        let names: Vec<String> = self.counts.iter().map(|c| c.0.clone()).collect();
        chart
            .configure_mesh()
            .x_labels(names.len().max(1))
            .x_label_formatter(&move |x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                    names[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .disable_x_mesh()
            .y_desc("seeds")
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        for (i, (name, count)) in self.counts.iter().enumerate() {
            let c = match name.as_str() {
                "pass" => OK_C,
                "violation" => FAIL_C,
                _ => INFO_C,
            };
            let x = i as f64;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(x - 0.3, 0.0), (x + 0.3, *count as f64)],
                    c.mix(0.8).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    count.to_string(),
                    (x, *count as f64),
                    font(13).pos(Pos::new(HPos::Center, VPos::Bottom)),
                )))
                .map_err(err)?;
        }
        Ok(())
    }
}

/// A metric across seeds: histogram on the left, CDF on the right (one line per group).
pub struct DistributionPlot<'a> {
    /// The metric's name.
    pub metric: &'a str,
    /// Values by group (a single group is named "").
    pub groups: &'a BTreeMap<String, Vec<f64>>,
}

impl Plot for DistributionPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 380)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let all: Vec<f64> = self
            .groups
            .values()
            .flatten()
            .copied()
            .filter(|v| v.is_finite())
            .collect();
        let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
        let (lo, hi) = if hi - lo < 1e-12 {
            (lo - 0.5, hi + 0.5)
        } else {
            (lo, hi)
        };
        let areas = root.split_evenly((1, 2));
        // Histogram of all values.
        let bins = 20usize;
        let w = (hi - lo) / bins as f64;
        let mut counts = vec![0u64; bins];
        for v in &all {
            counts[(((v - lo) / w) as usize).min(bins - 1)] += 1;
        }
        let cmax = counts.iter().copied().max().unwrap_or(1).max(1) as f64 * 1.15;
        let mut h = ChartBuilder::on(&areas[0])
            .caption(
                format!("{}: histogram over {} seeds", self.metric, all.len()),
                font(16),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0f64..cmax)
            .map_err(err)?;
        h.configure_mesh()
            .x_desc(self.metric)
            .y_desc("seeds")
            .label_style(font(11))
            .draw()
            .map_err(err)?;
        h.draw_series(counts.iter().enumerate().map(|(i, c)| {
            let a = lo + w * i as f64;
            Rectangle::new(
                [(a, 0.0), (a + w, *c as f64)],
                node_color(0).mix(0.75).filled(),
            )
        }))
        .map_err(err)?;
        // CDF per group.
        let mut c = ChartBuilder::on(&areas[1])
            .caption(format!("{}: CDF", self.metric), font(16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(lo..hi, 0f64..1.0)
            .map_err(err)?;
        c.configure_mesh()
            .x_desc(self.metric)
            .y_desc("fraction of seeds")
            .label_style(font(11))
            .draw()
            .map_err(err)?;
        let labelled = self.groups.len() > 1;
        for (gi, (g, vals)) in self.groups.iter().enumerate() {
            let mut v: Vec<f64> = vals.iter().copied().filter(|x| x.is_finite()).collect();
            v.sort_by(|a, b| a.total_cmp(b));
            let n = v.len().max(1) as f64;
            let mut pts = vec![(lo, 0.0)];
            for (i, x) in v.iter().enumerate() {
                pts.push((*x, i as f64 / n));
                pts.push((*x, (i + 1) as f64 / n));
            }
            pts.push((hi, if v.is_empty() { 0.0 } else { 1.0 }));
            let col = node_color(gi);
            let s = c
                .draw_series(LineSeries::new(pts, col.stroke_width(2)))
                .map_err(err)?;
            if labelled {
                s.label(format!("{g} ({})", v.len())).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], col.stroke_width(2))
                });
            }
        }
        if labelled {
            c.configure_series_labels()
                .label_font(font(11))
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(180, 180, 180))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(err)?;
        }
        Ok(())
    }
}

/// A series point, for the unit tests of every panel.
#[cfg(test)]
pub(crate) fn test_point(time_ns: u64, node: usize, value: f64) -> SeriesPoint {
    SeriesPoint {
        time_ns,
        node,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plots::test_point as pt;

    #[test]
    fn a_crash_ends_the_state_a_node_was_in() {
        let points = [pt(10, 1, 1.0), pt(20, 2, 1.0), pt(90, 2, 0.0)];
        let crash = FaultWindow {
            start_ns: 50,
            end_ns: 70,
            kind: "crash".into(),
            nodes: vec![1],
            detail: String::new(),
        };
        let iv = state_intervals(&points, std::slice::from_ref(&crash), 100);
        assert_eq!(
            iv[&1],
            vec![(10, 50)],
            "n1 leads until its crash, not to the end"
        );
        assert_eq!(iv[&2], vec![(20, 90)]);
        let without = intervals(&points, 100);
        assert_eq!(without[&1], vec![(10, 100)]);
        assert_eq!(overlaps(&iv), vec![(20, 50)]);
    }
}
