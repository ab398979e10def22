//! The end of a run: the quiet period, end checks, the history check, the verdict.

use super::*;
use crate::history::History;
use crate::process::Process;
use crate::result::{RunResult, Verdict};

impl<P: Process> Sim<P> {
    pub(crate) fn quiet(&mut self) {
        let w = &mut self.world;
        w.accepting_ops = false;
        w.nemesis_on = false;
        w.log_fault("quiet", vec![], "faults healed, no new operations".into());
        if w.links.any_cut() {
            self.heal("quiet period");
        }
        for node in 0..self.world.servers_count {
            self.unclog(node);
            self.resume(node);
            if self.cfg.quiet_restarts && !self.world.up[node] {
                self.restart(node);
            }
        }
        for node in self.world.servers_count..self.procs.len() {
            self.unclog(node);
            self.resume(node);
        }
    }

    pub(crate) fn finish(mut self, unknown_reason: Option<String>) -> RunResult {
        let history = History {
            events: std::mem::take(&mut self.world.history),
        };
        if self.world.violations.is_empty() || self.cfg.options.continue_after_violation {
            let view = View {
                now: self.world.now,
                procs: &self.procs,
                paused: &self.world.paused,
                servers_count: self.world.servers_count,
            };
            let mut found = Vec::new();
            for c in &mut self.checkers {
                for msg in c.at_end(&view, &history) {
                    found.push((c.name().to_string(), msg));
                }
            }
            for (name, msg) in found {
                self.world.report_violation(name, msg);
            }
        }
        let mut unknown_reason = unknown_reason;
        let lin_report = self.check_linearizability(&history, &mut unknown_reason);
        let w = &mut self.world;
        // The history is part of what the hash proves identical.
        for e in &history.events {
            w.trace
                .mix(e.time_ns ^ (e.process << 40) ^ ((e.kind as u64) << 60));
            w.trace.mix_json(&e.value);
        }
        let s = &w.stats;
        for (k, v) in [
            ("net.sent", s.sent),
            ("net.delivered", s.delivered),
            ("net.dropped_cut", s.dropped_cut),
            ("net.dropped_loss", s.dropped_loss),
            ("net.dropped_down", s.dropped_down),
            ("net.duplicated", s.duplicated),
            ("net.reordered", s.reordered),
            ("net.held_clog", s.held_clog),
            ("net.held_pause", s.held_pause),
        ] {
            w.metrics.count(k, v as f64);
        }
        if s.dropped_loss > 0 {
            w.coverage.entry("loss".into()).or_default().messages += s.dropped_loss;
        }
        if s.duplicated > 0 {
            w.coverage.entry("duplicate".into()).or_default().messages += s.duplicated;
        }
        if s.reordered > 0 {
            w.coverage.entry("reorder".into()).or_default().messages += s.reordered;
        }
        let verdict = if !w.violations.is_empty() {
            Verdict::Violation
        } else if unknown_reason.is_some() {
            Verdict::Unknown
        } else {
            Verdict::Pass
        };
        RunResult {
            scenario: self.cfg.name.clone(),
            path: self.cfg.path.clone(),
            algorithm: self.cfg.algorithm.clone(),
            seed: self.cfg.seed,
            swarm: self.cfg.options.swarm,
            derived: self.cfg.derived.clone(),
            verdict,
            expected: self.cfg.expect,
            unknown_reason,
            trace_hash: format!("{:016x}", w.trace.hash()),
            events: self.events,
            simulated_ns: w.now,
            wall_ns: 0,
            servers: w.servers_count,
            clients: w.clients_count,
            metrics: w.metrics.summary(),
            violations: std::mem::take(&mut w.violations),
            faults: std::mem::take(&mut w.coverage),
            fault_log: std::mem::take(&mut w.fault_log),
            linearizability: lin_report,
            history,
            trace: w.trace.take_events(),
            series: w.metrics.all_series(),
        }
    }
}

impl<P: Process> Sim<P> {
    /// Checks the client history against the scenario's model, when it names one. A
    /// non-linearizable history is a violation; a check that runs out of budget makes the
    /// verdict unknown (never a pass).
    pub(crate) fn check_linearizability(
        &mut self,
        history: &History,
        unknown_reason: &mut Option<String>,
    ) -> Option<serde_json::Value> {
        use crate::linearizability as lin;
        let checks = &self.cfg.scenario.checks;
        let name = checks.linearizability.as_deref()?;
        let model = lin::model_by_name(name)?;
        let opts = lin::CheckOptions {
            timeout: Some(std::time::Duration::from_nanos(checks.timeout.0)),
            max_states: Some(lin::DEFAULT_MAX_STATES),
            // One thread: sweeps already run one simulation per core.
            threads: 1,
        };
        let report = match lin::check(history, model.as_ref(), &opts) {
            Ok(r) => r,
            Err(e) => {
                // The algorithm's clients wrote a history the model cannot read: a bug in the
                // algorithm's client, reported as a violation so that it is seen.
                self.world.report_violation(
                    "linearizability".into(),
                    format!("the client history is malformed for model {name}: {e}"),
                );
                return None;
            }
        };
        match report.verdict() {
            lin::Verdict::Linearizable => {}
            lin::Verdict::NotLinearizable => {
                let text = report.render_text();
                self.world
                    .report_violation("linearizability".into(), text.trim_end().to_string());
            }
            lin::Verdict::Unknown => {
                if unknown_reason.is_none() {
                    *unknown_reason = Some(format!(
                        "the linearizability check ran out of budget: {}",
                        report.render_text().trim_end()
                    ));
                }
            }
        }
        self.world
            .metrics
            .count("lin.visited_states", report.visited_states as f64);
        serde_json::to_value(&report).ok()
    }
}
