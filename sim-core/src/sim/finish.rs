//! The end of a run: end checks, the history check, the verdict.

use super::*;
use crate::history::History;
use crate::process::Process;
use crate::result::{RunResult, Verdict};

impl<P: Process> Sim<P> {
    pub(crate) fn finish(mut self, unknown_reason: Option<String>) -> RunResult {
        let history = History {
            events: std::mem::take(&mut self.world.history),
        };
        // End checks judge a finished run (the quiet period over, operations settled); a run
        // cut short by its event or memory budget is unknown, and judging its cut-off state
        // would report violations that did not happen (a transfer half done at the cut is not
        // a lost update). Violations seen while it ran still stand.
        let finished = unknown_reason.is_none();
        if finished
            && (self.world.violations.is_empty() || self.cfg.options.continue_after_violation)
        {
            let view = view_of(&self.procs, &self.world);
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
        // Synced writes over every node's disk (the cost of durability per command).
        let syncs: u64 = w.storage.iter().map(|s| s.syncs_count()).sum();
        let s = &w.stats;
        for (k, v) in [
            ("disk.syncs", syncs),
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
        let metrics = self.world.metrics.summary();
        self.vacuity_warnings(&metrics);
        let sometimes = self.sometimes_results();
        let w = &mut self.world;
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
            metrics,
            warnings: std::mem::take(&mut w.warnings),
            sometimes,
            violations: std::mem::take(&mut w.violations),
            faults: std::mem::take(&mut w.coverage),
            fault_log: std::mem::take(&mut w.fault_log),
            applied_faults: {
                let mut a = std::mem::take(&mut w.applied);
                a.sort_by_key(|f| f.at);
                a
            },
            linearizability: lin_report,
            history,
            trace: w.trace.take_events(),
            summaries: w.summaries.take_points(),
            lost_at_crash: w.summaries.take_lost(),
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
            // Budgets inside a run count states, never wall time: a busy machine must not turn
            // a verdict into unknown.
            timeout: None,
            max_states: Some(checks.max_states),
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
                    Finding::new(format!(
                        "the client history is malformed for model {name}: {e}"
                    ))
                    .kind(ViolationKind::Malformed),
                );
                return None;
            }
        };
        match report.verdict() {
            lin::Verdict::Linearizable => {}
            lin::Verdict::NotLinearizable => {
                let text = report.render_text();
                let finding = Finding::new(text.trim_end().to_string())
                    .kind(ViolationKind::Linearizability)
                    .ops(report.failures().flat_map(|p| {
                        // OpRef.event is the 1-based position of the invoke in the history.
                        p.failure
                            .iter()
                            .flat_map(|f| f.cannot_place.iter().map(|o| o.event - 1))
                    }))
                    .keys(report.failures().filter_map(|p| p.key.clone()));
                self.world
                    .report_violation("linearizability".into(), finding);
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

impl<P: Process> Sim<P> {
    /// Warnings for a run that may have passed only because nothing was tested: no operation
    /// completed ok, or a scripted fault cut, dropped or delayed no message.
    fn vacuity_warnings(&mut self, metrics: &BTreeMap<String, f64>) {
        let w = &mut self.world;
        let ops_ok = metrics.get("ops.ok").copied().unwrap_or(0.0);
        if w.clients_count > 0 && !w.workload.mix.is_empty() && ops_ok == 0.0 {
            let invoked = metrics.get("ops.invoked").copied().unwrap_or(0.0);
            w.warnings.push(format!(
                "no operation completed ok ({invoked} invoked): the clients' results tested nothing"
            ));
        }
        for (i, f) in self.cfg.scenario.faults.iter().enumerate() {
            let at = fmt_ns(f.at.0 .0);
            if let Some(why) = &w.bites.skipped[i] {
                w.warnings.push(format!(
                    "scripted fault #{} ({} at {at}) did nothing: {why}",
                    i + 1,
                    f.action.name()
                ));
                continue;
            }
            let bites_messages = matches!(
                f.action,
                FaultAction::Partition { .. }
                    | FaultAction::Crash { .. }
                    | FaultAction::Pause { .. }
                    | FaultAction::Clog { .. }
            );
            let fired = f.at.0 .0 <= w.now;
            if bites_messages && fired && w.bites.effect[i] == 0 {
                w.warnings.push(format!(
                    "scripted fault #{} ({} at {at}) cut, dropped or delayed no message: it did not bite",
                    i + 1,
                    f.action.name()
                ));
            }
        }
    }
}
