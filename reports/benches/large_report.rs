//! How long the report of a 100,000-operation run takes to write (release mode):
//!
//!     cargo bench -p reports --bench large_report
//!
//! The run is an echo cluster with 40 clients under loss, a partition, a crash, a pause and a
//! clock step,
//! trace kept, as `distsim run --report` does. The figure printed is the report alone (all
//! plots, PNG and SVG, and index.html), best and median of a few repetitions.

use std::time::Instant;

use sim_core::{RunOptions, Scenario};

const SCENARIO: &str = r#"
description = "Benchmark: a busy echo cluster with faults, for the report's speed."
algorithm = "echo"
nodes = 5
duration = "36s"
seed = 7
expect = "pass"

[network]
latency = { dist = "exponential", mean = "4ms", min = "1ms" }
loss = 0.01

[workload]
clients = 40
think = "1ms"
mix = { echo = 1 }
timeout = "100ms"

[[faults]]
at = "5s"
action = "partition"
kind = "split"
for = "3s"

[[faults]]
at = "12s"
action = "crash"
node = 1
for = "2s"

[[faults]]
at = "18s"
action = "pause"
node = 2
for = "1s"

[[faults]]
at = "22s"
action = "clock_step"
node = 3
by = "200ms"
"#;

fn main() {
    let sc = Scenario::parse("bench.toml", SCENARIO).expect("bench scenario parses");
    let opts = RunOptions {
        keep_trace: true,
        ..Default::default()
    };
    let t = Instant::now();
    let r = algorithms::run(&sc, sc.seed, &opts).expect("bench scenario runs");
    let run_s = t.elapsed().as_secs_f64();
    let ops = r
        .history
        .events
        .iter()
        .filter(|e| e.kind == sim_core::EventType::Invoke)
        .count();
    let trace = r.trace.as_ref().map(|t| t.len()).unwrap_or(0);
    println!(
        "run: {ops} operations, {trace} trace events, {} servers, {} clients, simulated in {run_s:.2}s",
        r.servers, r.clients
    );
    assert!(
        ops >= 100_000,
        "the benchmark needs 100,000 operations, got {ops}"
    );
    let dir = std::env::temp_dir().join(format!("distsim-bench-report-{}", std::process::id()));
    let mut times = Vec::new();
    for _ in 0..5 {
        let _ = std::fs::remove_dir_all(&dir);
        let t = Instant::now();
        let w = reports::write_run_report(&dir, &r, "distsim run bench.toml", &Default::default())
            .expect("report writes");
        times.push(t.elapsed().as_secs_f64());
        assert!(
            w.problems.iter().all(|p| !p.contains("not drawn")),
            "{:?}",
            w.problems
        );
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "report of {ops} operations: best {:.3}s, median {:.3}s over {} runs (written to {})",
        times[0],
        times[times.len() / 2],
        times.len(),
        dir.display()
    );
}
