//! Row panels decoded from two encoded series, for algorithms whose state is per item rather
//! than per node:
//! - `saga.steps` (the saga family): `saga * 16 + step * 4 + state`, state 1 done, 2
//!   compensating, 3 compensated. Drawn as one row per saga, one lane per step, coloured by
//!   what the step is doing over time, so a compensation is seen running last step first.
//! - `locks.keys` (the concurrency family): `(key * 1024 + client) * 8 + event`, event 1
//!   granted, 2 released at commit, 3 waiting, 4 a waiter made a deadlock victim, 5 released
//!   by an abort. Drawn as one row per key: a bar per holder (coloured by client), a thin line
//!   per wait, a purple cross (an aborted transaction's colour) per victim.
//!
//! Both bound what they draw (the first sagas that compensated, the busiest keys in a window)
//! and say so on the plot.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use sim_core::metrics::SeriesPoint;

use crate::font::FAMILY;
use crate::plots::{err, Plot};

/// Whether a series is drawn by this module.
pub fn is_row_series(name: &str) -> bool {
    name == "saga.steps" || name == "locks.keys"
}

/// Rows drawn at most.
pub const ROWS_MAX: usize = 24;

/// A row panel over one of the encoded series.
pub struct RowsPlot<'a> {
    /// `saga.steps` or `locks.keys`.
    pub name: &'a str,
    /// The series' points.
    pub points: &'a [SeriesPoint],
    /// The run's end.
    pub end_ns: u64,
}

/// A bar on a row: (row, lane offset, start s, end s, colour, thin).
type Bar = (usize, f64, f64, f64, RGBColor, bool);

/// What a panel draws: row names, bars, victim marks (row, time s), and its note.
type Rows = (Vec<String>, Vec<Bar>, Vec<(usize, f64)>, String);

fn s_of(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn client_color(c: u64) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
        RGBColor(23, 190, 207),
        RGBColor(140, 86, 75),
        RGBColor(188, 189, 34),
        RGBColor(227, 119, 194),
    ];
    C[c as usize % C.len()]
}

/// Saga rows: labels, bars, and the note.
fn saga_rows(points: &[SeriesPoint], end_ns: u64) -> Rows {
    // (saga, step) -> [(time, state)]
    let mut steps: BTreeMap<(u64, u64), Vec<(u64, u64)>> = BTreeMap::new();
    let mut first: BTreeMap<u64, u64> = BTreeMap::new();
    for p in points {
        let v = p.value as u64;
        let (saga, step, state) = (v / 16, (v / 4) % 4, v % 4);
        steps
            .entry((saga, step))
            .or_default()
            .push((p.time_ns, state));
        first.entry(saga).or_insert(p.time_ns);
    }
    let compensated: Vec<u64> = {
        let mut c: Vec<(u64, u64)> = steps
            .iter()
            .filter(|(_, v)| v.iter().any(|(_, s)| *s >= 2))
            .map(|((saga, _), _)| (first[saga], *saga))
            .collect();
        c.sort();
        c.dedup();
        c.into_iter().map(|(_, s)| s).collect()
    };
    let mut chosen: Vec<u64> = compensated.into_iter().take(ROWS_MAX / 2).collect();
    let compensating_shown = chosen.len();
    let mut by_time: Vec<(u64, u64)> = first.iter().map(|(s, t)| (*t, *s)).collect();
    by_time.sort();
    for (_, s) in by_time {
        if chosen.len() >= ROWS_MAX {
            break;
        }
        if !chosen.contains(&s) {
            chosen.push(s);
        }
    }
    chosen.sort_by_key(|s| first[s]);
    let mut bars = Vec::new();
    for (row, saga) in chosen.iter().enumerate() {
        for step in 0..3u64 {
            let Some(evs) = steps.get(&(*saga, step)) else {
                continue;
            };
            for (i, (t, state)) in evs.iter().enumerate() {
                let until = evs.get(i + 1).map_or(end_ns, |e| e.0);
                let c = match state {
                    1 => RGBColor(44, 160, 44),
                    2 => RGBColor(255, 127, 14),
                    _ => RGBColor(150, 150, 150),
                };
                bars.push((row, step as f64 * 0.28, s_of(*t), s_of(until), c, false));
            }
        }
    }
    let labels = chosen
        .iter()
        .map(|s| format!("n{}#{}", s >> 32, s & 0xffff_ffff))
        .collect();
    let note = format!(
        "lanes per saga: inventory, payment, shipping. green done, orange compensating, grey compensated. {} of {} sagas shown: the first {} that compensated, then the earliest others",
        chosen.len(),
        first.len(),
        compensating_shown
    );
    (labels, bars, Vec::new(), note)
}

/// Lock rows: labels, bars, victim marks, and the note.
fn lock_rows(points: &[SeriesPoint], end_ns: u64) -> Rows {
    let t0 = points.first().map_or(0, |p| p.time_ns);
    let t1 = (t0 + 1_000_000_000).min(end_ns);
    let window: Vec<(u64, u64, u64, u64)> = points
        .iter()
        .filter(|p| p.time_ns <= t1)
        .map(|p| {
            let v = p.value as u64;
            (p.time_ns, v / 8 / 1024, (v / 8) % 1024, v % 8)
        })
        .collect();
    let mut busy: BTreeMap<u64, usize> = BTreeMap::new();
    for (_, k, _, _) in &window {
        *busy.entry(*k).or_insert(0) += 1;
    }
    let mut keys: Vec<(usize, u64)> = busy.iter().map(|(k, n)| (*n, *k)).collect();
    keys.sort_by(|a, b| b.cmp(a));
    let mut keys: Vec<u64> = keys.into_iter().take(ROWS_MAX).map(|(_, k)| k).collect();
    keys.sort();
    let row_of = |k: u64| keys.iter().position(|x| *x == k);
    let mut bars = Vec::new();
    let mut victims = Vec::new();
    let mut held: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    let mut waiting: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for (t, k, c, ev) in &window {
        let Some(row) = row_of(*k) else { continue };
        let close_wait = |waiting: &mut BTreeMap<(u64, u64), u64>, bars: &mut Vec<Bar>| {
            if let Some(w) = waiting.remove(&(*k, *c)) {
                bars.push((row, 0.62, s_of(w), s_of(*t), client_color(*c), true));
            }
        };
        match ev {
            1 => {
                close_wait(&mut waiting, &mut bars);
                held.insert((*k, *c), *t);
            }
            3 => {
                waiting.insert((*k, *c), *t);
            }
            4 => {
                close_wait(&mut waiting, &mut bars);
                victims.push((row, s_of(*t)));
            }
            _ => {
                if let Some(g) = held.remove(&(*k, *c)) {
                    bars.push((row, 0.1, s_of(g), s_of(*t), client_color(*c), false));
                }
                if *ev == 5 {
                    victims.push((row, s_of(*t)));
                }
            }
        }
    }
    for ((k, c), g) in held {
        if let Some(row) = row_of(k) {
            bars.push((row, 0.1, s_of(g), s_of(t1), client_color(c), false));
        }
    }
    let labels = keys.iter().map(|k| format!("k{k}")).collect();
    let note = format!(
        "bars: lock held (colour = client); thin lines: waits; purple crosses: deadlock victims and aborted holders. First second of lock activity, the {} busiest keys",
        keys.len()
    );
    (labels, bars, victims, note)
}

impl Plot for RowsPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let (labels, bars, victims, note) = if self.name == "saga.steps" {
            saga_rows(self.points, self.end_ns)
        } else {
            lock_rows(self.points, self.end_ns)
        };
        let x0 = bars.iter().map(|b| b.2).fold(f64::INFINITY, f64::min);
        // Up to the last change shown (plus a margin): a step that stays done needs no more.
        let last = bars.iter().map(|b| b.2).fold(0.0, f64::max);
        let x1 = (last + (last - x0.min(last)) * 0.15 + 0.05).min(s_of(self.end_ns));
        let bars: Vec<Bar> = bars
            .into_iter()
            .map(|(r, o, a, b, c, t)| (r, o, a, b.min(x1), c, t))
            .collect();
        let (x0, x1) = if x0.is_finite() && x1 > x0 {
            (x0, x1)
        } else {
            (0.0, 1.0)
        };
        let n = labels.len().max(1);
        let (body, foot) = root.split_vertically(490);
        let title = if self.name == "saga.steps" {
            "Sagas: each step over time"
        } else {
            "Locks held per key over time"
        };
        let mut chart = ChartBuilder::on(&body)
            .caption(title, (FAMILY, 18))
            .margin(10)
            .x_label_area_size(34)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1 + (x1 - x0) * 0.02, 0f64..n as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_labels(0)
            .label_style((FAMILY, 11))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        chart
            .draw_series(bars.iter().map(|(row, off, a, b, c, thin)| {
                let y = *row as f64 + off;
                let h = if *thin { 0.06 } else { 0.24 };
                Rectangle::new([(*a, y), (b.max(a + 1e-4), y + h)], c.mix(0.85).filled())
            }))
            .map_err(err)?;
        chart
            .draw_series(victims.iter().map(|(row, t)| {
                Cross::new(
                    (*t, *row as f64 + 0.5),
                    5,
                    crate::plots::FAIL_C.stroke_width(2),
                )
            }))
            .map_err(err)?;
        // Row names inside the plot's left edge (a numeric axis cannot name rows).
        chart
            .draw_series(
                labels
                    .iter()
                    .enumerate()
                    .map(|(i, l)| Text::new(l.clone(), (x0, i as f64 + 0.98), (FAMILY, 10))),
            )
            .map_err(err)?;
        foot.draw(&Text::new(note, (10, 8), (FAMILY, 11)))
            .map_err(err)?;
        Ok(())
    }
}
