//! Human-readable printing of run results, and trace files.

use std::io::Write;

use sim_core::time::fmt_ns;
use sim_core::{RunResult, Verdict};

/// Prints the summary of one run.
pub fn print_run(r: &RunResult, reproduce: &str, quiet: bool) {
    let expected = r.expected.as_str();
    let verdict = match r.verdict {
        Verdict::Pass => "PASS".to_string(),
        Verdict::Violation => format!(
            "VIOLATION at {}",
            r.violations
                .first()
                .map(|v| fmt_ns(v.time_ns))
                .unwrap_or_default()
        ),
        Verdict::Unknown => "UNKNOWN".to_string(),
    };
    let note = if r.as_expected() {
        "as expected"
    } else {
        "NOT as expected"
    };
    outln!(
        "{} · seed {} · verdict: {verdict} (scenario expects {expected}: {note})",
        r.scenario,
        r.seed
    );
    if let Some(d) = &r.derived {
        outln!("swarm: {d}");
    }
    if r.verdict == Verdict::Violation {
        for v in r.violations.iter().take(5) {
            let kind = match v.kind {
                sim_core::ViolationKind::Safety => String::new(),
                k if k.as_str() == v.source => String::new(),
                k => format!("{} ", k.as_str()),
            };
            outln!(
                "  [{}] {kind}at {}: {}",
                v.source,
                fmt_ns(v.time_ns),
                v.message
            );
        }
        if r.violations.len() > 5 {
            outln!("  ... and {} more", r.violations.len() - 5);
        }
    }
    if let Some(reason) = &r.unknown_reason {
        outln!("  unknown because {reason}");
    }
    for w in &r.warnings {
        outln!("  warning: {w}");
    }
    for s in &r.sometimes {
        outln!(
            "  assertion `{}`: {} on this seed (a sweep needs one seed where it holds)",
            s.name,
            if s.held { "held" } else { "did not hold" }
        );
    }
    if r.verdict != Verdict::Pass {
        outln!("reproduce: {reproduce}");
    }
    if quiet {
        return;
    }
    let wall_s = r.wall_ns as f64 / 1e9;
    let eps = if wall_s > 0.0 {
        r.events as f64 / wall_s
    } else {
        0.0
    };
    let speedup = if r.wall_ns > 0 {
        r.simulated_ns as f64 / r.wall_ns as f64
    } else {
        0.0
    };
    outln!(
        "events: {} in {} wall ({:.2}M events/s); simulated {} ({:.0}x real time); {} servers, {} clients",
        r.events,
        fmt_ns(r.wall_ns),
        eps / 1e6,
        fmt_ns(r.simulated_ns),
        speedup,
        r.servers,
        r.clients
    );
    if r.faults.is_empty() {
        outln!("faults: none injected");
    } else {
        let parts: Vec<String> = r
            .faults
            .iter()
            .map(|(k, c)| {
                if c.fired > 0 {
                    format!("{k} x{} ({} msgs)", c.fired, c.messages)
                } else {
                    format!("{k} ({} msgs)", c.messages)
                }
            })
            .collect();
        outln!("faults: {}", parts.join(", "));
        let idle: Vec<&str> = r
            .faults
            .iter()
            .filter(|(k, c)| c.fired > 0 && c.messages == 0 && k.starts_with("partition"))
            .map(|(k, _)| k.as_str())
            .collect();
        if !idle.is_empty() {
            outln!(
                "  note: {} cut no message; the run may pass because the fault never bit",
                idle.join(", ")
            );
        }
    }
    let m = &r.metrics;
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    outln!(
        "ops: {} invoked, {} ok, {} fail, {} info; latency p50 {:.2}ms p99 {:.2}ms max {:.2}ms",
        get("ops.invoked"),
        get("ops.ok"),
        get("ops.fail"),
        get("ops.info"),
        get("op_latency_ms.p50"),
        get("op_latency_ms.p99"),
        get("op_latency_ms.max"),
    );
    outln!(
        "network: {} sent, {} delivered, {} cut, {} lost, {} to crashed nodes, {} duplicated",
        get("net.sent"),
        get("net.delivered"),
        get("net.dropped_cut"),
        get("net.dropped_loss"),
        get("net.dropped_down"),
        get("net.duplicated"),
    );
    let own: Vec<String> = m
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("ops.") && !k.starts_with("net.") && !k.starts_with("op_latency")
        })
        .map(|(k, v)| format!("{k} {}", trim_num(*v)))
        .collect();
    if !own.is_empty() {
        outln!("metrics: {}", own.join(", "));
    }
    outln!("trace hash: {}", r.trace_hash);
}

/// A number without trailing zeros.
pub fn trim_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// Writes the kept trace as JSON Lines.
pub fn write_trace(path: &str, r: &RunResult) -> std::io::Result<()> {
    let f = std::fs::File::create(path)?;
    let mut w = std::io::BufWriter::new(f);
    for e in r.trace.as_deref().unwrap_or(&[]) {
        serde_json::to_writer(&mut w, e)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// A kept trace that reached its memory bound ends with a `Truncated` event. The run is then
/// unknown, never a pass: the trace (and the report drawn from it) the user asked for is
/// incomplete. A violation found stays a violation. (The engine stops such a run itself when
/// it checks `Trace::full`; this covers runs that went on without keeping events.)
pub fn judge_truncated_trace(r: &mut RunResult) {
    let Some(last) = r.trace.as_ref().and_then(|t| t.last()) else {
        return;
    };
    if last.kind != sim_core::trace::TraceKind::Truncated {
        return;
    }
    if r.verdict == Verdict::Pass {
        r.verdict = Verdict::Unknown;
        r.unknown_reason = Some(last.label.clone());
    } else if r.unknown_reason.is_none() {
        eprintln!("warning: {}", last.label);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::trace::{TraceEvent, TraceKind};

    fn hello(keep_trace: bool) -> RunResult {
        let text = include_str!("../scenarios/echo/hello.toml");
        let sc = sim_core::Scenario::parse("hello.toml", text).unwrap();
        let opts = sim_core::RunOptions {
            keep_trace,
            ..Default::default()
        };
        algorithms::run(&sc, 1, &opts).unwrap()
    }

    #[test]
    fn a_truncated_trace_makes_a_pass_unknown() {
        let mut r = hello(true);
        judge_truncated_trace(&mut r);
        assert_eq!(r.verdict, Verdict::Pass, "a whole trace changes nothing");
        r.trace.as_mut().unwrap().push(TraceEvent {
            time_ns: 5,
            kind: TraceKind::Truncated,
            node: 0,
            peer: None,
            label: "the kept trace reached its memory bound".into(),
            msg_id: None,
        });
        judge_truncated_trace(&mut r);
        assert_eq!(r.verdict, Verdict::Unknown);
        assert_eq!(
            r.unknown_reason.as_deref(),
            Some("the kept trace reached its memory bound")
        );
        let mut off = hello(false);
        judge_truncated_trace(&mut off);
        assert_eq!(
            off.verdict,
            Verdict::Pass,
            "no trace kept, nothing to judge"
        );
    }
}
