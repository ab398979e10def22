//! The contention curve: throughput, abort rate and latency p99 of optimistic and
//! pessimistic concurrency control against the number of keys (log scale), one panel each,
//! one line per control. Drawn from figures a sweep measured (see
//! `reports/examples/contention_sweep.rs`), as PNG and SVG.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::font::{ensure, FAMILY};

/// One measured point of the curve.
#[derive(Clone, Debug, PartialEq)]
pub struct CurvePoint {
    /// "optimistic" or "pessimistic".
    pub control: String,
    /// Number of keys the clients spread over.
    pub keys: u32,
    /// Committed transactions per simulated second.
    pub throughput: f64,
    /// Aborted attempts per attempt.
    pub abort_rate: f64,
    /// Latency p99 of committed transactions, in ms.
    pub p99_ms: f64,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn color(control: &str) -> RGBColor {
    if control == "optimistic" {
        RGBColor(31, 119, 180)
    } else {
        RGBColor(255, 127, 14)
    }
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    points: &[CurvePoint],
    title: &str,
    y: fn(&CurvePoint) -> f64,
) -> Result<(), String> {
    let kmax = points.iter().map(|p| p.keys).max().unwrap_or(10).max(10) as f64;
    let ymax = points.iter().map(y).fold(0.0, f64::max).max(1e-9) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FAMILY, 16))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d((1f64..kmax).log_scale(), 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("keys (contention falls to the right)")
        .label_style((FAMILY, 12))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(err)?;
    for control in ["optimistic", "pessimistic"] {
        let c = color(control);
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.control == control)
            .map(|p| (p.keys as f64, y(p)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(control)
            .legend(move |(x, yy)| {
                PathElement::new(vec![(x, yy), (x + 18, yy)], c.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .label_font((FAMILY, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    points: &[CurvePoint],
) -> Result<(), String> {
    root.fill(&WHITE).map_err(err)?;
    let rows = root.split_evenly((3, 1));
    panel(
        &rows[0],
        points,
        "throughput (committed transactions / s)",
        |p| p.throughput,
    )?;
    panel(
        &rows[1],
        points,
        "abort rate (aborted attempts / attempts)",
        |p| p.abort_rate,
    )?;
    panel(
        &rows[2],
        points,
        "latency p99 of committed transactions (ms)",
        |p| p.p99_ms,
    )?;
    Ok(())
}

/// Draws the curve to `dir/contention.png` and `dir/contention.svg`; returns the files.
pub fn write_contention_chart(
    dir: &Path,
    points: &[CurvePoint],
) -> Result<Vec<std::path::PathBuf>, String> {
    ensure();
    std::fs::create_dir_all(dir).map_err(err)?;
    let size = (900, 1000);
    let png = dir.join("contention.png");
    {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        draw(&root, points)?;
        root.present().map_err(err)?;
    }
    let svg = dir.join("contention.svg");
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw(&root, points)?;
        root.present().map_err(err)?;
    }
    Ok(vec![png, svg])
}
