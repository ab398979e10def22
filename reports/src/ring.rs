//! The consistent-hashing panel: the ring as the algorithm last reported it, each server's
//! arcs in its colour, and beside it each server's share of the circle and its key count.
//!
//! Input convention (series `ring.points`, recorded by the `hashing` family): one point per
//! virtual node, value = owner node id + position on the circle as a fraction in [0, 1). The
//! latest batch (the points of the last recording instant and node) is drawn. Key counts come
//! from the series `load.keys` (latest value per node), when present.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use sim_core::metrics::SeriesPoint;

use crate::plots::{err, font, frame, node_color, note, s_of, Plot};

/// The ring panel.
pub struct RingPlot<'a> {
    /// The `ring.points` series.
    pub points: &'a [SeriesPoint],
    /// The `load.keys` series, if any.
    pub loads: Option<&'a [SeriesPoint]>,
}

impl RingPlot<'_> {
    /// The latest batch as (position, owner), in ring order.
    fn latest(&self) -> Vec<(f64, usize)> {
        let Some(last) = self.points.last() else {
            return Vec::new();
        };
        let mut v: Vec<(f64, usize)> = self
            .points
            .iter()
            .filter(|p| p.time_ns == last.time_ns && p.node == last.node)
            .map(|p| (p.value.fract(), p.value.floor() as usize))
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }
}

/// Each point owns the arc from the previous point to itself; the first also owns the wrap.
fn arcs(pts: &[(f64, usize)]) -> Vec<(f64, f64, usize)> {
    let mut out = Vec::with_capacity(pts.len() + 1);
    let Some(&(first, owner0)) = pts.first() else {
        return out;
    };
    out.push((0.0, first, owner0));
    for w in pts.windows(2) {
        out.push((w[0].0, w[1].0, w[1].1));
    }
    out.push((pts[pts.len() - 1].0, 1.0, owner0));
    out
}

/// A ring segment from fraction `a` to `b` between radii `r0` and `r1`, as a polygon.
fn segment(a: f64, b: f64, r0: f64, r1: f64) -> Vec<(f64, f64)> {
    let steps = ((b - a) * 360.0).ceil().max(1.0) as usize;
    let at = |f: f64, r: f64| {
        // Clockwise from twelve o'clock, as rings are usually drawn.
        let t = std::f64::consts::TAU * f;
        (r * t.sin(), r * t.cos())
    };
    let mut poly: Vec<(f64, f64)> = (0..=steps)
        .map(|i| at(a + (b - a) * i as f64 / steps as f64, r1))
        .collect();
    poly.extend(
        (0..=steps)
            .rev()
            .map(|i| at(a + (b - a) * i as f64 / steps as f64, r0)),
    );
    poly
}

impl Plot for RingPlot<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 520)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let pts = self.latest();
        let (left, right) = root.split_horizontally(520);
        let when = self.points.last().map_or(0.0, |p| s_of(p.time_ns));
        let mut chart = frame(
            &left,
            format!("the ring at {when:.3} s: {} points", pts.len()),
            10,
            -1.1f64..1.1,
            -1.1f64..1.1,
        )?;
        let arcs = arcs(&pts);
        let mut share: BTreeMap<usize, f64> = BTreeMap::new();
        for &(a, b, o) in &arcs {
            *share.entry(o).or_insert(0.0) += b - a;
        }
        chart
            .draw_series(arcs.iter().filter(|(a, b, _)| b > a).map(|&(a, b, o)| {
                Polygon::new(segment(a, b, 0.7, 1.0), node_color(o).mix(0.85).filled())
            }))
            .map_err(err)?;
        let mut loads: BTreeMap<usize, f64> = BTreeMap::new();
        for p in self.loads.unwrap_or(&[]) {
            loads.insert(p.node, p.value);
        }
        let n = share.len().max(1) as f64;
        let ymax = share.values().fold(0.0f64, |a, b| a.max(*b)) * n * 1.25;
        let nodes: Vec<usize> = share.keys().copied().collect();
        let mut bars = frame(
            &right,
            "each server's share of the circle (x the mean) and keys held",
            50,
            -0.5f64..n - 0.5,
            0f64..ymax.max(1.5),
        )?;
        let names = nodes.clone();
        bars.configure_mesh()
            .x_labels(nodes.len().max(1))
            .x_label_formatter(&move |x| {
                let i = x.round();
                let ok = (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len();
                if ok {
                    format!("n{}", names[i as usize])
                } else {
                    String::new()
                }
            })
            .disable_x_mesh()
            .label_style(font(12))
            .draw()
            .map_err(err)?;
        bars.draw_series(nodes.iter().enumerate().map(|(i, node)| {
            let v = share[node] * n;
            Rectangle::new(
                [(i as f64 - 0.35, 0.0), (i as f64 + 0.35, v)],
                node_color(*node).mix(0.8).filled(),
            )
        }))
        .map_err(err)?;
        bars.draw_series(nodes.iter().enumerate().filter_map(|(i, node)| {
            let keys = loads.get(node)?;
            Some(Text::new(
                format!("{keys:.0}"),
                (i as f64 - 0.3, share[node] * n + ymax * 0.02),
                font(11),
            ))
        }))
        .map_err(err)?;
        bars.draw_series(std::iter::once(PathElement::new(
            vec![(-0.5, 1.0), (n - 0.5, 1.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(err)?;
        note(
            root,
            "left: arcs in each server's colour (a point owns the arc before it); right: share / mean share (line = 1), numbers = keys held",
        )
    }
}
