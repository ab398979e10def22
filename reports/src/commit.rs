//! The atomic commit panel: each participant's state over time, one row per participant, with
//! the keys it holds locked drawn as bars under its state band, so the window in which a
//! participant sits in doubt holding its locks (2PC's block) is seen at a glance.
//!
//! Input convention (recorded by the `commit` family, each point tagged with its node):
//! `state.prepared` (transactions prepared here), `state.in_doubt` (of those, the ones whose
//! outcome is late), `state.locks` (keys locked), `state.outcome` (an instant: 1 a prepared
//! transaction committed here, 2 it aborted). A participant with nothing prepared is
//! "working" (executing or coordinating, or idle). Crash windows come from the fault log.
//!
//! The run is cut into [`COLUMNS`] columns; each column of a row shows the worst state the
//! participant was in during it (down, then in doubt, then prepared, then working) and the
//! most keys it held locked, so a brief state is never hidden by a long one.

use plotters::coord::Shift;
use plotters::prelude::*;
use sim_core::metrics::SeriesPoint;

use crate::data::FaultWindow;
use crate::plots::{err, font, frame, note, s_of, Plot};

/// Columns the run is cut into.
pub const COLUMNS: usize = 800;

/// The series this panel draws (the generic loop leaves them alone when it is drawn).
pub const SERIES: [&str; 5] = [
    "state.prepared",
    "state.in_doubt",
    "state.locks",
    "state.working",
    "state.outcome",
];

/// A participant's state in one column, in the order "worse" wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    Working,
    Prepared,
    InDoubt,
    Down,
}

impl State {
    fn color(self) -> RGBColor {
        match self {
            State::Working => RGBColor(205, 215, 230),
            State::Prepared => RGBColor(250, 215, 120),
            // The colour of an unknown outcome on every plot (red is the violation's alone).
            State::InDoubt => crate::plots::INFO_C,
            State::Down => RGBColor(60, 60, 60),
        }
    }
}

/// One participant's columns: worst state, most keys locked, commits and aborts seen.
#[derive(Clone, Debug)]
struct Row {
    state: Vec<State>,
    locks: Vec<f64>,
    committed: Vec<u32>,
    aborted: Vec<u32>,
    /// The longest stretch in doubt: (start ns, end ns).
    longest_doubt: Option<(u64, u64)>,
}

/// The commit panel.
pub struct CommitPlot<'a> {
    /// `state.prepared` points.
    pub prepared: &'a [SeriesPoint],
    /// `state.in_doubt` points.
    pub in_doubt: &'a [SeriesPoint],
    /// `state.locks` points.
    pub locks: &'a [SeriesPoint],
    /// `state.outcome` points.
    pub outcome: &'a [SeriesPoint],
    /// Participants (servers `0..servers`).
    pub servers: usize,
    /// Fault windows (crashes mark a participant down).
    pub faults: &'a [FaultWindow],
    /// The run's end.
    pub end_ns: u64,
}

/// The column of a time.
fn column(t: u64, end_ns: u64) -> usize {
    ((t as u128 * COLUMNS as u128) / end_ns.max(1) as u128).min(COLUMNS as u128 - 1) as usize
}

/// The step function of one node's series: (time, value) changes in time order.
fn steps(points: &[SeriesPoint], node: usize) -> Vec<(u64, f64)> {
    points
        .iter()
        .filter(|p| p.node == node)
        .map(|p| (p.time_ns, p.value))
        .collect()
}

impl CommitPlot<'_> {
    /// Folds a step series into the columns with `f(column, value)` over [a, b) stretches.
    fn fold(&self, steps: &[(u64, f64)], mut f: impl FnMut(usize, f64, u64, u64)) {
        for (i, &(t, v)) in steps.iter().enumerate() {
            let until = steps.get(i + 1).map_or(self.end_ns, |s| s.0);
            if until <= t && i + 1 < steps.len() {
                continue; // replaced at the same instant
            }
            let (a, b) = (column(t, self.end_ns), column(until, self.end_ns));
            for c in a..=b {
                f(c, v, t, until);
            }
        }
    }

    fn row(&self, node: usize) -> Row {
        let mut row = Row {
            state: vec![State::Working; COLUMNS],
            locks: vec![0.0; COLUMNS],
            committed: vec![0; COLUMNS],
            aborted: vec![0; COLUMNS],
            longest_doubt: None,
        };
        self.fold(&steps(self.prepared, node), |c, v, _, _| {
            if v > 0.0 {
                row.state[c] = row.state[c].max(State::Prepared);
            }
        });
        let mut longest: Option<(u64, u64)> = None;
        self.fold(&steps(self.in_doubt, node), |c, v, a, b| {
            if v > 0.0 {
                row.state[c] = row.state[c].max(State::InDoubt);
                if longest.is_none_or(|(x, y)| b - a > y - x) {
                    longest = Some((a, b));
                }
            }
        });
        row.longest_doubt = longest;
        self.fold(&steps(self.locks, node), |c, v, _, _| {
            row.locks[c] = row.locks[c].max(v);
        });
        for p in self.outcome.iter().filter(|p| p.node == node) {
            let c = column(p.time_ns, self.end_ns);
            if p.value == 1.0 {
                row.committed[c] += 1;
            } else {
                row.aborted[c] += 1;
            }
        }
        for w in self
            .faults
            .iter()
            .filter(|w| w.kind == "crash" && w.nodes.contains(&node))
        {
            let (a, b) = (
                column(w.start_ns, self.end_ns),
                column(w.end_ns, self.end_ns),
            );
            for c in a..=b {
                row.state[c] = State::Down;
                row.locks[c] = 0.0;
            }
        }
        row
    }
}

/// Consecutive columns of one state: (first column, last column, state).
fn runs(states: &[State]) -> Vec<(usize, usize, State)> {
    let mut out: Vec<(usize, usize, State)> = Vec::new();
    for (c, &s) in states.iter().enumerate() {
        match out.last_mut() {
            Some(last) if last.2 == s => last.1 = c,
            _ => out.push((c, c, s)),
        }
    }
    out
}

impl Plot for CommitPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, (150 + 90 * self.servers as u32).min(1000))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let x1 = s_of(self.end_ns).max(1e-3);
        let n = self.servers.max(1);
        let rows: Vec<Row> = (0..n).map(|i| self.row(i)).collect();
        let locks_max = rows
            .iter()
            .flat_map(|r| r.locks.iter().copied())
            .fold(1.0f64, f64::max);
        let width = x1 / COLUMNS as f64;
        let x_of = |c: usize| c as f64 * width;
        // Room at the bottom for the note.
        let body = root.margin(0, 22, 0, 0);
        let mut chart = frame(
            &body,
            "Participants over time: state band, keys locked (bars), outcomes (ticks)",
            40,
            0f64..x1,
            0f64..n as f64,
        )?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_labels(0)
            .label_style(font(12))
            .light_line_style(RGBColor(240, 240, 240))
            .draw()
            .map_err(err)?;
        for (i, row) in rows.iter().enumerate() {
            // n0 at the top.
            let y = (n - 1 - i) as f64;
            let band = |c0: usize, c1: usize, s: State| {
                Rectangle::new(
                    [(x_of(c0), y + 0.5), (x_of(c1 + 1), y + 0.82)],
                    s.color().filled(),
                )
            };
            chart
                .draw_series(runs(&row.state).into_iter().map(|(a, b, s)| band(a, b, s)))
                .map_err(err)?;
            let bar_h = 0.4;
            chart
                .draw_series(row.locks.iter().enumerate().filter(|(_, l)| **l > 0.0).map(
                    |(c, l)| {
                        let top = y + 0.06 + bar_h * l / locks_max;
                        Rectangle::new(
                            [(x_of(c), y + 0.06), (x_of(c + 1), top)],
                            RGBColor(90, 110, 160).filled(),
                        )
                    },
                ))
                .map_err(err)?;
            let ticks = |counts: &[u32], y0: f64, c: RGBColor| {
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, k)| **k > 0)
                    .map(move |(col, _)| {
                        let x = x_of(col) + width / 2.0;
                        PathElement::new(vec![(x, y0), (x, y0 + 0.07)], c.stroke_width(1))
                    })
                    .collect::<Vec<_>>()
            };
            chart
                .draw_series(ticks(&row.committed, y + 0.9, crate::plots::OK_C))
                .map_err(err)?;
            chart
                .draw_series(ticks(&row.aborted, y + 0.83, crate::plots::FAIL_C))
                .map_err(err)?;
            if let Some((a, b)) = row.longest_doubt.filter(|(a, b)| b - a >= self.end_ns / 50) {
                // The blocked window, named inside its band.
                let label = format!("in doubt {:.3} s (from {:.3} s)", s_of(b - a), s_of(a));
                chart
                    .draw_series(std::iter::once(Text::new(
                        label,
                        (s_of(a) + x1 * 0.004, y + 0.76),
                        font(12).color(&WHITE),
                    )))
                    .map_err(err)?;
            }
        }
        // Row names left of the plot (the root's origin is the backend's), n0 at the top.
        for i in 0..n {
            let (px, py) = chart.backend_coord(&(0.0, (n - 1 - i) as f64 + 0.55));
            root.draw(&Text::new(format!("n{i}"), (px - 30, py - 7), font(14)))
                .map_err(err)?;
        }
        let text = format!(
            "band: grey working (nothing prepared), pale yellow prepared, orange in doubt (outcome late), black down. \
             bars: keys locked (full height {locks_max:.0}). ticks: green committed, purple aborted. \
             {COLUMNS} columns, each the worst state in it"
        );
        note(root, &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plots::test_point as pt;

    #[test]
    fn a_blocked_window_is_in_doubt_and_a_crash_is_down() {
        let end = 8_000_000_000;
        let prepared = [pt(1_000_000_000, 1, 1.0)];
        let in_doubt = [pt(2_000_000_000, 1, 1.0), pt(6_000_000_000, 1, 0.0)];
        let locks = [pt(1_000_000_000, 1, 2.0), pt(6_000_000_000, 1, 0.0)];
        let faults = [FaultWindow {
            start_ns: 1_500_000_000,
            end_ns: end,
            kind: "crash".into(),
            nodes: vec![0],
            detail: String::new(),
        }];
        let p = CommitPlot {
            prepared: &prepared,
            in_doubt: &in_doubt,
            locks: &locks,
            outcome: &[pt(6_000_000_000, 1, 1.0)],
            servers: 2,
            faults: &faults,
            end_ns: end,
        };
        let n1 = p.row(1);
        assert_eq!(n1.state[column(4_000_000_000, end)], State::InDoubt);
        assert_eq!(n1.state[column(1_200_000_000, end)], State::Prepared);
        assert_eq!(n1.locks[column(4_000_000_000, end)], 2.0);
        assert_eq!(n1.locks[column(7_000_000_000, end)], 0.0);
        assert_eq!(n1.longest_doubt, Some((2_000_000_000, 6_000_000_000)));
        assert_eq!(n1.committed.iter().sum::<u32>(), 1);
        let n0 = p.row(0);
        assert_eq!(n0.state[column(3_000_000_000, end)], State::Down);
        assert_eq!(n0.state[column(1_000_000_000, end)], State::Working);
    }
}
