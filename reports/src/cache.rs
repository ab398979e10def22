//! The cache panel: the cluster's hit ratio and the database's reads per second over time,
//! with membership changes marked (scheduled joins and leaves as vertical lines, crashes and
//! pauses shaded as in every plot).
//!
//! Input convention (recorded by the `cache` family): `cache.hit_ratio` (each cache server's
//! hit ratio over its last window), `db.reads_per_s` (the database, per window), and
//! `state.member` (1 while a cache server is in the cluster).

use plotters::coord::Shift;
use plotters::prelude::*;
use sim_core::metrics::SeriesPoint;

use crate::data::FaultWindow;
use crate::plots::{err, font, frame, note, s_of, shade_faults, value_mesh, Plot};

/// The cache panel.
pub struct CachePlot<'a> {
    /// `cache.hit_ratio` points.
    pub hit_ratio: &'a [SeriesPoint],
    /// `db.reads_per_s` points.
    pub db_reads: &'a [SeriesPoint],
    /// `state.member` points.
    pub member: &'a [SeriesPoint],
    /// Fault windows.
    pub faults: &'a [FaultWindow],
    /// The run's end.
    pub end_ns: u64,
}

/// One strip of the panel: area, caption, y label, y max, points, colour.
type Strip<'a, DB> = (
    &'a DrawingArea<DB, Shift>,
    &'static str,
    &'static str,
    f64,
    &'a [(f64, f64)],
    RGBColor,
);

/// Buckets over the run: the mean of the values in each.
fn bucketed(points: &[SeriesPoint], end_ns: u64, buckets: usize) -> Vec<(f64, f64)> {
    let mut sum = vec![(0.0f64, 0usize); buckets];
    for p in points {
        let i = ((p.time_ns as u128 * buckets as u128) / end_ns.max(1) as u128) as usize;
        let slot = &mut sum[i.min(buckets - 1)];
        slot.0 += p.value;
        slot.1 += 1;
    }
    sum.iter()
        .enumerate()
        .filter(|(_, (_, c))| *c > 0)
        .map(|(i, (s, c))| {
            let t = (i as f64 + 0.5) * s_of(end_ns) / buckets as f64;
            (t, s / *c as f64)
        })
        .collect()
}

/// Times at which some server's membership changed (after its first report).
fn changes(member: &[SeriesPoint]) -> Vec<(f64, String)> {
    let mut last: std::collections::BTreeMap<usize, f64> = Default::default();
    let mut out = Vec::new();
    for p in member {
        if let Some(v) = last.insert(p.node, p.value) {
            if v != p.value {
                let verb = if p.value > 0.0 { "joins" } else { "leaves" };
                out.push((s_of(p.time_ns), format!("n{} {verb}", p.node)));
            }
        }
    }
    out
}

impl Plot for CachePlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 560)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let x1 = s_of(self.end_ns).max(1e-3);
        let marks = changes(self.member);
        let (top, bottom) = root.split_vertically(270);
        let hr = bucketed(self.hit_ratio, self.end_ns, 80);
        let db = bucketed(self.db_reads, self.end_ns, 80);
        let dbmax = db.iter().fold(1.0f64, |a, p| a.max(p.1)) * 1.15;
        let panels: [Strip<'_, DB>; 2] = [
            (
                &top,
                "cache hit ratio (mean over cache servers)",
                "hit ratio",
                1.05,
                &hr,
                RGBColor(30, 140, 60),
            ),
            (
                &bottom,
                "database reads per second",
                "reads/s",
                dbmax,
                &db,
                RGBColor(140, 86, 75),
            ),
        ];
        for (area, caption, ylab, ymax, pts, c) in panels {
            let mut chart = frame(area, caption, 60, 0f64..x1, 0f64..ymax)?;
            value_mesh(&mut chart, "time (s)", ylab)?;
            shade_faults(&mut chart, self.faults, (0.0, x1), (0.0, ymax))?;
            for (t, label) in &marks {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(*t, 0.0), (*t, ymax)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        label.clone(),
                        (*t + x1 * 0.005, ymax * 0.1),
                        font(11),
                    )))
                    .map_err(err)?;
            }
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(err)?;
        }
        note(
            root,
            "black lines: scheduled joins and leaves; shaded: crashes and pauses (a restarted server is empty)",
        )
    }
}
