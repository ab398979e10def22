//! Time in doubt and lock-time per protocol over many seeds of the commit family's
//! coordinator-outage scenario, drawn from the sweeps' JSON as distribution curves (CDFs):
//!
//!     distsim sweep scenarios/commit/coordinator-restart-2pc.toml --seeds 1..10001 --jobs 1 \
//!         --json --metric commit.in_doubt_ms_max --metric commit.lock_ms_per_txn > 2pc.json
//!     (the same for coordinator-restart-3pc and coordinator-restart-paxos-commit)
//!     cargo run --release -p reports --example commit_doubt -- OUT.png 2pc.json 3pc.json pc.json
//!
//! Each JSON file is one protocol's sweep; the curve is named by its scenario. Writes OUT.png
//! and the same plot as SVG next to it, and prints the table it draws (docs/commit.md quotes
//! it).

use plotters::coord::Shift;
use plotters::prelude::*;
use reports::font::{ensure, FAMILY};

/// The two metrics drawn, with their axis names.
const METRICS: [(&str, &str); 2] = [
    (
        "commit.in_doubt_ms_max",
        "longest time a participant spent in doubt (ms)",
    ),
    ("commit.lock_ms_per_txn", "lock-ms per transaction"),
];

const COLORS: [RGBColor; 3] = [
    RGBColor(200, 40, 40),
    RGBColor(230, 140, 0),
    RGBColor(30, 110, 190),
];

/// One sweep: its scenario's name and each metric's values over seeds, sorted.
struct Sweep {
    name: String,
    seeds: usize,
    values: Vec<Vec<f64>>,
}

fn load(path: &str) -> Result<Sweep, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let j: serde_json::Value = serde_json::from_str(&text).map_err(|e| format!("{path}: {e}"))?;
    let runs = j["runs"]
        .as_array()
        .ok_or_else(|| format!("{path}: no runs (not the output of `distsim sweep --json`)"))?;
    let mut values = Vec::new();
    for (m, _) in METRICS {
        let mut v: Vec<f64> = runs
            .iter()
            .filter_map(|r| r["metrics"][m].as_f64())
            .collect();
        if v.len() != runs.len() {
            return Err(format!(
                "{path}: {m} missing from some runs; sweep with --metric {m}"
            ));
        }
        v.sort_by(f64::total_cmp);
        values.push(v);
    }
    Ok(Sweep {
        name: j["scenario"].as_str().unwrap_or(path).to_string(),
        seeds: runs.len(),
        values,
    })
}

fn pct(v: &[f64], p: f64) -> f64 {
    let k = ((p / 100.0 * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[k - 1]
}

fn draw<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, sweeps: &[Sweep]) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let seeds = sweeps.iter().map(|s| s.seeds).min().unwrap_or(0);
    let (title, body) = root.split_vertically(40);
    title
        .draw(&Text::new(
            format!("Coordinator down for 1 s: distribution over {seeds} seeds per protocol"),
            (12, 10),
            (FAMILY, 20),
        ))
        .map_err(e)?;
    let halves = body.split_evenly((1, 2));
    for (i, (area, (_, desc))) in halves.iter().zip(METRICS).enumerate() {
        let x1 = sweeps
            .iter()
            .filter_map(|s| s.values[i].last().copied())
            .fold(1.0f64, f64::max)
            * 1.05;
        let mut chart = ChartBuilder::on(area)
            .margin(14)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..x1, 0f64..1.0)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_desc(desc)
            .y_desc("fraction of seeds at or below")
            .label_style((FAMILY, 12))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(e)?;
        for (k, s) in sweeps.iter().enumerate() {
            let v = &s.values[i];
            let n = v.len() as f64;
            // At most 500 steps a curve: every (len/500)-th sorted value.
            let step = (v.len() / 500).max(1);
            let pts: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .filter(|(j, _)| j % step == 0 || *j + 1 == v.len())
                .map(|(j, x)| (*x, (j + 1) as f64 / n))
                .collect();
            let c = COLORS[k % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(e)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .label_font((FAMILY, 12))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(e)?;
    }
    Ok(())
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, files @ ..] = args.as_slice() else {
        return Err("usage: commit_doubt OUT.png SWEEP.json...".into());
    };
    if files.is_empty() {
        return Err("usage: commit_doubt OUT.png SWEEP.json...".into());
    }
    ensure();
    let sweeps = files
        .iter()
        .map(|f| load(f))
        .collect::<Result<Vec<_>, _>>()?;
    println!("| scenario | seeds | longest in doubt, mean (p99) ms | lock-ms per transaction, mean (p99) |");
    println!("| --- | --- | --- | --- |");
    for s in &sweeps {
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (d, l) = (&s.values[0], &s.values[1]);
        println!(
            "| {} | {} | {:.1} ({:.1}) | {:.1} ({:.1}) |",
            s.name,
            s.seeds,
            mean(d),
            pct(d, 99.0),
            mean(l),
            pct(l, 99.0)
        );
    }
    let size = (1200, 520);
    {
        let root = BitMapBackend::new(out, size).into_drawing_area();
        draw(&root, &sweeps)?;
        root.present().map_err(|e| e.to_string())?;
    }
    let svg = std::path::Path::new(out).with_extension("svg");
    {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        draw(&root, &sweeps)?;
        root.present().map_err(|e| e.to_string())?;
    }
    println!("wrote {out} and {}", svg.display());
    Ok(())
}
