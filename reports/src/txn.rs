//! The report of a transactional check: each anomaly's cycle drawn as a ring of transactions
//! with labelled arrows (SVG, one file per cycle), its edges explained, and an index.html that
//! shows them with the transactions' operations.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sim_core::txn::{Anomaly, TxnReport};

/// At most this many cycles are drawn; the rest are listed in the text.
const DRAWN: usize = 20;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One cycle as an SVG: transactions evenly on a circle in cycle order, an arrow per edge
/// labelled with its kind (and key).
pub fn cycle_svg(a: &Anomaly) -> String {
    let n = a.cycle.len().max(1);
    let (w, h, r) = (520.0f64, 420.0f64, 150.0f64);
    let (cx, cy) = (w / 2.0, h / 2.0 + 10.0);
    let pos = |i: usize| {
        // Start at the top and go clockwise. Drawing only: no run depends on these floats.
        let ang = -std::f64::consts::FRAC_PI_2 + 2.0 * std::f64::consts::PI * i as f64 / n as f64;
        (cx + r * ang.cos(), cy + r * ang.sin())
    };
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#444"/></marker></defs><text x="10" y="20" font-weight="bold">{}</text>"##,
        esc(&a.name())
    );
    for (i, e) in a.cycle.iter().enumerate() {
        let (x1, y1) = pos(i);
        let (x2, y2) = pos((i + 1) % n);
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let node_r = 24.0;
        let color = match e.kind.as_str() {
            "rw" => "#c0392b",
            "wr" => "#2471a3",
            "ww" => "#7d3c98",
            _ => "#555",
        };
        // Each edge bends to the left of its direction, so the two edges of a two-node cycle
        // (and labels) do not lie on top of each other.
        let (px, py) = (uy, -ux);
        let bend = if n == 2 { 60.0 } else { 25.0 };
        let (mx, my) = ((x1 + x2) / 2.0 + px * bend, (y1 + y2) / 2.0 + py * bend);
        let _ = write!(
            s,
            r##"<path d="M {:.1} {:.1} Q {mx:.1} {my:.1} {:.1} {:.1}" fill="none" stroke="{color}" stroke-width="2" marker-end="url(#arrow)"/>"##,
            x1 + ux * node_r,
            y1 + uy * node_r,
            x2 - ux * node_r,
            y2 - uy * node_r
        );
        let label = match &e.key {
            Some(k) => format!("{} (key {k})", e.kind.as_str()),
            None => e.kind.as_str().to_owned(),
        };
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="{color}">{}</text>"##,
            mx + px * 6.0,
            my + py * 6.0 + 4.0,
            esc(&label)
        );
    }
    for (i, e) in a.cycle.iter().enumerate() {
        let (x, y) = pos(i);
        let _ = write!(
            s,
            r##"<circle cx="{x:.1}" cy="{y:.1}" r="24" fill="#fdfefe" stroke="#222" stroke-width="1.5"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">T{}</text>"##,
            y + 5.0,
            e.from
        );
    }
    s.push_str("</svg>");
    s
}

/// Writes `index.html` and `cycle-N.svg` files for a transactional check into `dir`.
pub fn write_txn_report(dir: &Path, title: &str, r: &TxnReport) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}td,th{{padding:2px 8px;text-align:left}}.bad{{color:#c0392b}}</style></head><body><h1>{t}</h1>",
        t = esc(title)
    );
    let verdict = r.render_text();
    let first = verdict.lines().next().unwrap_or_default();
    let _ = write!(
        html,
        "<p class=\"{}\"><b>{}</b></p>",
        if r.valid { "" } else { "bad" },
        esc(first)
    );
    if !r.ruled_out.is_empty() {
        let ruled: Vec<&str> = r.ruled_out.iter().map(|c| c.as_str()).collect();
        let _ = write!(html, "<p>Ruled out: {}</p>", esc(&ruled.join(", ")));
    }
    let mut cycles = 0;
    for a in &r.anomalies {
        let _ = write!(
            html,
            "<h2>{}</h2><p>{}</p>",
            esc(&a.name()),
            esc(&a.explanation)
        );
        if !a.cycle.is_empty() && cycles < DRAWN {
            cycles += 1;
            let file = format!("cycle-{cycles}.svg");
            std::fs::write(dir.join(&file), cycle_svg(a))
                .map_err(|e| format!("{}: {e}", dir.join(&file).display()))?;
            let _ = write!(html, "<img src=\"{file}\" alt=\"{}\">", esc(&a.name()));
            html.push_str("<ol>");
            for e in &a.cycle {
                let _ = write!(html, "<li>{}</li>", esc(&e.why));
            }
            html.push_str("</ol>");
        }
    }
    if !r.txns.is_empty() {
        html.push_str("<h2>Transactions named above</h2><table><tr><th>txn</th><th>process</th><th>status</th><th>event</th><th>operations</th></tr>");
        for t in &r.txns {
            let _ = write!(
                html,
                "<tr><td>T{}</td><td>{}</td><td>{:?}</td><td>{}</td><td><code>{}</code></td></tr>",
                t.index,
                t.process,
                t.status,
                t.event,
                esc(&t.ops)
            );
        }
        html.push_str("</table>");
    }
    html.push_str("</body></html>\n");
    let index = dir.join("index.html");
    std::fs::write(&index, html).map_err(|e| format!("{}: {e}", index.display()))?;
    Ok(index)
}
