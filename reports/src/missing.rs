//! The missing-data panel: for an end check that finds values missing (broadcast's "every
//! acknowledged value on every server"), a matrix of which server lacks which value at the
//! end, one column per value the violations name, one row per server.
//!
//! Input convention (series `have.NAME`, recorded by the `broadcast` family): a point of value
//! `v >= 0` says the node now holds item `v`; a negative value says the node lost what it held
//! (a restart), and the points that follow at that instant are what it kept on disk. The
//! columns are the integer `values` of the run's typed violations, never their prose; nodes
//! down at the end (a crash window still open) are marked down, not lacking.

use std::collections::{BTreeMap, BTreeSet};

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use sim_core::metrics::SeriesPoint;
use sim_core::result::Violation;

use crate::data::FaultWindow;
use crate::plots::{err, font, legend_row, Plot, Swatch, VIOLATION_C};

/// Most columns drawn; past it, neighbouring values share a column.
pub const COLUMNS_MAX: usize = 400;

/// Whether a series is one this panel draws.
pub fn is_have_series(name: &str) -> bool {
    name.starts_with("have.")
}

/// The values the violations name, as integers, in order.
pub fn named_values(violations: &[Violation]) -> BTreeSet<u64> {
    violations
        .iter()
        .flat_map(|v| v.values.iter().filter_map(|x| x.as_u64()))
        .collect()
}

/// What each node holds at the end: node -> items.
pub fn held_at_end(points: &[SeriesPoint]) -> BTreeMap<usize, BTreeSet<u64>> {
    let mut held: BTreeMap<usize, BTreeSet<u64>> = BTreeMap::new();
    for p in points {
        let set = held.entry(p.node).or_default();
        if p.value < 0.0 {
            set.clear();
        } else {
            set.insert(p.value as u64);
        }
    }
    held
}

/// The matrix panel.
pub struct MissingPlot<'a> {
    /// The series' name (`have.values`).
    pub name: &'a str,
    /// Its points.
    pub points: &'a [SeriesPoint],
    /// The run's violations (their `values` are the columns).
    pub violations: &'a [Violation],
    /// Server count (rows `0..servers`).
    pub servers: usize,
    /// Fault windows (a crash still open at the end marks a server down).
    pub faults: &'a [FaultWindow],
    /// The run's end.
    pub end_ns: u64,
}

impl MissingPlot<'_> {
    /// Per server: which named values it lacks at the end (empty when down).
    pub fn lacking(&self) -> BTreeMap<usize, BTreeSet<u64>> {
        let named = named_values(self.violations);
        let held = held_at_end(self.points);
        let empty = BTreeSet::new();
        (0..self.servers)
            .map(|n| {
                let has = held.get(&n).unwrap_or(&empty);
                let lacks = if self.down_at_end(n) {
                    BTreeSet::new()
                } else {
                    named.iter().copied().filter(|v| !has.contains(v)).collect()
                };
                (n, lacks)
            })
            .collect()
    }

    fn down_at_end(&self, n: usize) -> bool {
        self.faults
            .iter()
            .any(|f| f.kind == "crash" && f.nodes.contains(&n) && f.end_ns >= self.end_ns)
    }
}

impl Plot for MissingPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, (150 + 26 * self.servers.max(1) as u32).min(1200))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let (w, _) = root.dim_in_pixel();
        let named: Vec<u64> = named_values(self.violations).into_iter().collect();
        let lacking = self.lacking();
        root.draw(&Text::new(
            format!(
                "Which server lacks which value at the end ({}: {} values named by the violations)",
                self.name,
                named.len()
            ),
            (w as i32 / 2, 10),
            font(16).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
        let per_col = named.len().div_ceil(COLUMNS_MAX).max(1);
        let cols = named.len().div_ceil(per_col).max(1);
        let (left, top) = (170i32, 48i32);
        let cw = ((w as f64 - left as f64 - 30.0) / cols as f64).min(24.0);
        let rh = 26;
        for n in 0..self.servers {
            let y = top + n as i32 * rh;
            let lacks = &lacking[&n];
            let name = if self.down_at_end(n) {
                format!("n{n}: down at the end")
            } else {
                format!("n{n}: lacks {}", lacks.len())
            };
            root.draw(&Text::new(
                name,
                (left - 8, y + rh / 2),
                font(12).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(err)?;
            for (c, chunk) in named.chunks(per_col).enumerate() {
                let x0 = left + (c as f64 * cw) as i32;
                let x1 = left + ((c + 1) as f64 * cw) as i32;
                let style = if self.down_at_end(n) {
                    RGBColor(120, 120, 120).filled()
                } else if chunk.iter().any(|v| lacks.contains(v)) {
                    VIOLATION_C.filled()
                } else {
                    RGBColor(205, 225, 205).filled()
                };
                root.draw(&Rectangle::new(
                    [(x0, y + 2), (x1.max(x0 + 1), y + rh - 3)],
                    style,
                ))
                .map_err(err)?;
            }
        }
        // Value labels under the matrix: about ten, at their columns.
        let y = top + self.servers as i32 * rh + 4;
        let every = cols.div_ceil(10).max(1);
        for c in (0..cols).step_by(every) {
            let x = left + ((c as f64 + 0.5) * cw) as i32;
            root.draw(&Text::new(
                named[c * per_col].to_string(),
                (x, y),
                font(10).pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(err)?;
        }
        root.draw(&Text::new(
            "value".to_string(),
            (left - 8, y),
            font(11).pos(Pos::new(HPos::Right, VPos::Top)),
        ))
        .map_err(err)?;
        let mut items = vec![
            (
                Swatch::Box(VIOLATION_C),
                "lacks the value at the end".to_string(),
            ),
            (Swatch::Box(RGBColor(205, 225, 205)), "holds it".to_string()),
        ];
        if (0..self.servers).any(|n| self.down_at_end(n)) {
            items.push((Swatch::Box(RGBColor(120, 120, 120)), "down".into()));
        }
        if per_col > 1 {
            items.push((
                Swatch::None,
                format!("{per_col} values per column (red if any is lacking)"),
            ));
        }
        legend_row(root, &items, 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_keeps_only_what_follows_it() {
        let p = |t, node, value| SeriesPoint {
            time_ns: t,
            node,
            value,
        };
        let held = held_at_end(&[
            p(1, 0, 5.0),
            p(2, 0, 6.0),
            p(3, 1, 5.0),
            p(4, 0, -1.0),
            p(4, 0, 5.0),
        ]);
        assert_eq!(held[&0], [5].into());
        assert_eq!(held[&1], [5].into());
    }
}
