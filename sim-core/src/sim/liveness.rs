//! The quiet period and the liveness phase: faults heal, crashed servers restart, and the
//! system must make progress within the scenario's bound. A run that stays safe by doing
//! nothing is not a pass.

use super::*;
use crate::history::EventType;
use crate::process::Process;
use crate::time::fmt_ns;

impl<P: Process> Sim<P> {
    /// The quiet period begins: faults healed, paused nodes resumed, crashed servers restarted
    /// (unless the scenario says otherwise). With a liveness phase, clients keep invoking
    /// operations until its deadline; without one, no new operation starts.
    pub(crate) fn quiet(&mut self) {
        let now = self.world.now;
        let phase = self.cfg.liveness_within_ns.map(|w| LivenessPhase {
            start_ns: now,
            deadline_ns: now.saturating_add(w),
        });
        let w = &mut self.world;
        w.nemesis_on = false;
        w.quiet_started = true;
        match phase {
            Some(p) => {
                w.liveness = Some(p);
                w.log_fault(
                    "quiet",
                    vec![],
                    format!(
                        "faults healed; liveness phase: progress due by {}",
                        fmt_ns(p.deadline_ns)
                    ),
                );
                if p.deadline_ns <= self.cfg.duration_ns {
                    w.push(p.deadline_ns, Event::LivenessDeadline);
                }
            }
            None => {
                w.accepting_ops = false;
                w.log_fault("quiet", vec![], "faults healed, no new operations".into());
            }
        }
        if self.world.links.any_cut() {
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

    /// The liveness deadline: operations invoked in the phase must have been answered, and the
    /// algorithm's own progress predicates must hold. After it no new operation starts, so the
    /// rest of the quiet period lets the system settle for the end checks.
    pub(crate) fn liveness_deadline(&mut self) {
        let Some(phase) = self.world.liveness else {
            return;
        };
        self.world.accepting_ops = false;
        // The algorithm's own findings come first: they say why nothing progressed (a
        // waits-for cycle, a saga stuck at a step), which the generic check cannot.
        let mut found: Vec<(String, Finding)> = Vec::new();
        let history = History {
            events: std::mem::take(&mut self.world.history),
        };
        {
            let view = view_of(&self.procs, &self.world);
            for c in &mut self.checkers {
                for f in c.at_liveness(&view, phase, &history) {
                    found.push((c.name().to_string(), f.kind(ViolationKind::Liveness)));
                }
            }
        }
        self.world.history = history.events;
        if let Some(f) = self.operations_progress(phase) {
            found.push(("liveness".into(), f));
        }
        for (name, f) in found {
            self.world.report_violation(name, f);
        }
    }

    /// The engine's own progress check: if any client still had operations to run, at least
    /// one operation got a definite answer (ok or fail) between the heal and the deadline. An
    /// operation invoked before the heal counts too: a queue of waiters (a lock) may need
    /// longer than the bound for any one newcomer, yet still be making progress.
    fn operations_progress(&self, phase: LivenessPhase) -> Option<Finding> {
        let w = &self.world;
        let limit = w.workload.cfg.limit;
        let willing = w.clients.iter().any(|c| limit == 0 || c.done < limit);
        if w.clients.is_empty() || w.workload.mix.is_empty() || !willing {
            return None;
        }
        // Each process has at most one operation open: pair invokes with completions.
        let mut open: BTreeMap<u64, usize> = BTreeMap::new();
        let (mut invoked, mut answered, mut info) = (Vec::new(), 0usize, 0usize);
        for (i, e) in w.history.iter().enumerate() {
            let in_phase = e.time_ns >= phase.start_ns;
            match e.kind {
                EventType::Invoke => {
                    open.insert(e.process, i);
                    if in_phase {
                        invoked.push(i);
                    }
                }
                EventType::Ok | EventType::Fail => {
                    open.remove(&e.process);
                    answered += usize::from(in_phase);
                }
                EventType::Info => {
                    open.remove(&e.process);
                    info += usize::from(in_phase);
                }
            }
        }
        if answered > 0 {
            return None;
        }
        let within = fmt_ns(phase.deadline_ns - phase.start_ns);
        let message = if invoked.is_empty() {
            format!(
                "no operation was even invoked in the {within} after the faults healed at {}: every client was still waiting on an earlier operation",
                fmt_ns(phase.start_ns)
            )
        } else {
            format!(
                "no operation completed in the {within} after the faults healed at {}: {} invoked, {} timed out (info), {} still pending at {}",
                fmt_ns(phase.start_ns),
                invoked.len(),
                info,
                open.len(),
                fmt_ns(phase.deadline_ns)
            )
        };
        let clients = (w.servers_count..w.servers_count + w.clients_count).collect::<Vec<_>>();
        Some(
            Finding::liveness(message)
                .nodes(clients)
                .ops(invoked.into_iter().take(20)),
        )
    }
}
