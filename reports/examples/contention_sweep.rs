//! The classic contention curve of optimistic against pessimistic concurrency control.
//!
//! Runs the `concurrency` algorithm at a fixed client count over key counts from 1 to 10,000,
//! several seeds per point (pessimistic with a 500 ms lock timeout: with one key per
//! transaction there is no deadlock, so waits are not cut short), and draws throughput, abort rate and latency p99 on one chart:
//!
//!     cargo run --release -p reports --example contention_sweep -- [OUT_DIR] [SEEDS]
//!
//! OUT_DIR defaults to `target/contention`; SEEDS (per point) to 5. It prints the table it
//! plots (docs/concurrency.md quotes it).

use algorithms::concurrency;
use reports::contention::{write_contention_chart, CurvePoint};
use sim_core::{RunOptions, Scenario};

const KEYS: [u32; 9] = [1, 2, 5, 10, 20, 50, 100, 1_000, 10_000];
const CLIENTS: u32 = 16;
const SECONDS: f64 = 4.0;

fn scenario(control: &str, keys: u32) -> Scenario {
    let text = format!(
        r#"description = "contention sweep point"
algorithm = "concurrency"
nodes = 4
duration = "5s"
quiet = "1s"
[params]
control = "{control}"
deadlock = "timeout"
lock_timeout = "500ms"
[network]
latency = {{ dist = "uniform", min = "1ms", max = "5ms" }}
[workload]
clients = {CLIENTS}
think = "1ms"
mix = {{ incr = 1 }}
keys = {keys}
timeout = "10s"
# Load runs for exactly the first 4 s: no liveness phase extends it into the quiet second.
[liveness]
enabled = false
"#
    );
    Scenario::parse("contention.toml", &text).expect("the sweep's scenario is valid")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().unwrap_or_else(|| "target/contention".into());
    let seeds: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut points = Vec::new();
    println!("| control | keys | throughput (txn/s) | abort rate | p99 (ms) |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for control in ["optimistic", "pessimistic"] {
        for keys in KEYS {
            let sc = scenario(control, keys);
            let (mut ok, mut rate, mut p99) = (0.0, 0.0, 0.0);
            for seed in 1..=seeds {
                let r = concurrency::run(&sc, seed, &RunOptions::default()).expect("runs");
                assert_eq!(
                    r.verdict,
                    sim_core::Verdict::Pass,
                    "{control} keys={keys} seed {seed}"
                );
                ok += r.metrics.get("ops.ok").copied().unwrap_or(0.0);
                rate += r.metrics.get("cc.abort_rate").copied().unwrap_or(0.0);
                p99 += r.metrics.get("op_latency_ms.p99").copied().unwrap_or(0.0);
            }
            let n = seeds as f64;
            let p = CurvePoint {
                control: control.into(),
                keys,
                throughput: ok / n / SECONDS,
                abort_rate: rate / n,
                p99_ms: p99 / n,
            };
            println!(
                "| {} | {} | {:.0} | {:.3} | {:.1} |",
                p.control, p.keys, p.throughput, p.abort_rate, p.p99_ms
            );
            points.push(p);
        }
    }
    match write_contention_chart(std::path::Path::new(&out), &points) {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
        }
        Err(e) => {
            eprintln!("the chart could not be drawn: {e}");
            std::process::exit(1);
        }
    }
}
