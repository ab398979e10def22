//! Carrying out faults: scripted and nemesis actions on nodes, links and clocks.

use rand::seq::SliceRandom;
use rand::Rng;

use super::*;
use crate::faults::{FaultAction, NodeRef};
use crate::process::{NodeId, Process};
use crate::time::{fmt_ns, fmt_signed_ns, Duration, Nanos};

impl<P: Process> Sim<P> {
    pub(crate) fn resolve(&mut self, node: &NodeRef) -> Option<NodeId> {
        match node {
            // Clients (nodes servers_count..) may be named too: a client can pause (a GC
            // stall), have its clock stepped or its traffic clogged.
            NodeRef::Index(i) => (*i < self.procs.len()).then_some(*i),
            NodeRef::Role(r) if r == "random" => {
                let up = self.world.servers_up();
                (!up.is_empty()).then(|| up[self.world.fault_rng.random_range(0..up.len())])
            }
            NodeRef::Role(r) => {
                let mut best: Option<(u64, NodeId)> = None;
                for i in 0..self.world.servers_count {
                    if let Some(rank) = self.procs[i].as_ref().and_then(|p| p.role_rank(r)) {
                        if best.is_none_or(|(b, _)| rank > b) {
                            best = Some((rank, i));
                        }
                    }
                }
                best.map(|(_, i)| i)
            }
        }
    }

    /// Carries out a fault; `record` (a scripted fault, not an undo or a swizzle's step) adds
    /// it to the run's applied faults with its node resolved.
    pub(crate) fn apply_fault(&mut self, action: FaultAction, record: bool) {
        let name = action.name();
        let target = match &action {
            FaultAction::Partition { node: Some(n), .. }
            | FaultAction::Crash { node: n, .. }
            | FaultAction::Restart { node: n }
            | FaultAction::Pause { node: n, .. }
            | FaultAction::Resume { node: n }
            | FaultAction::ClockStep { node: n, .. }
            | FaultAction::ClockDrift { node: n, .. }
            | FaultAction::Clog { node: n, .. }
            | FaultAction::Unclog { node: n } => match self.resolve(n) {
                Some(i) => Some(i),
                None => {
                    let why = format!("skipped: no server is {n}");
                    self.world.bites.skip(format!("{name} {why}"));
                    self.world.log_fault(name, vec![], why);
                    return;
                }
            },
            _ => None,
        };
        let node = target.unwrap_or(0);
        if matches!(
            action,
            FaultAction::Crash { .. } | FaultAction::Restart { .. }
        ) && node >= self.world.servers_count
        {
            // A client's history would be left with an operation that never completes; crash
            // the servers it talks to instead, or pause the client.
            self.world.log_fault(
                name,
                vec![node],
                format!(
                    "skipped: n{node} is a client, and clients do not crash (pause it instead)"
                ),
            );
            return;
        }
        if record {
            self.record_frozen(&action, node);
        }
        match action {
            FaultAction::Partition {
                kind, cut, for_, ..
            } => {
                let cut = self.partition(kind, target, &cut);
                if record {
                    self.record_partition(cut, for_);
                }
                if let Some(d) = for_ {
                    self.world.push(
                        self.world.now + d.0,
                        Event::HealIf(self.world.partition_gen),
                    );
                }
            }
            FaultAction::Heal => self.heal("scripted"),
            FaultAction::Crash { for_, .. } => {
                self.crash(node);
                self.undo_after(
                    for_.map(|d| d.0),
                    FaultAction::Restart {
                        node: NodeRef::Index(node),
                    },
                );
            }
            FaultAction::Restart { .. } => self.restart(node),
            FaultAction::Pause { for_, .. } => {
                self.pause(node);
                self.undo_after(
                    for_.map(|d| d.0),
                    FaultAction::Resume {
                        node: NodeRef::Index(node),
                    },
                );
            }
            FaultAction::Resume { .. } => self.resume(node),
            FaultAction::ClockStep { by, .. } => self.step_clock(node, by.0),
            FaultAction::ClockDrift { drift, .. } => {
                self.world.cover("clock_drift");
                self.set_drift(node, drift.0, "set to");
            }
            FaultAction::Clog { for_, .. } => {
                self.clog(node);
                self.undo_after(
                    for_.map(|d| d.0),
                    FaultAction::Unclog {
                        node: NodeRef::Index(node),
                    },
                );
            }
            FaultAction::Unclog { .. } => self.unclog(node),
            FaultAction::Swizzle { count, step, hold } => self.swizzle(count, step.0, hold.0),
        }
    }

    /// Records a scripted fault with its node resolved to `node`. Partitions (recorded with
    /// their cut links once drawn) and swizzles (recorded as their clogs) are left to
    /// [`Self::record_partition`] and [`Self::swizzle`].
    fn record_frozen(&mut self, action: &FaultAction, node: NodeId) {
        let at = self.world.now;
        let n = NodeRef::Index(node);
        let frozen = match action.clone() {
            FaultAction::Partition { .. } | FaultAction::Swizzle { .. } => return,
            FaultAction::Heal => FaultAction::Heal,
            FaultAction::Crash { for_, .. } => FaultAction::Crash { node: n, for_ },
            FaultAction::Restart { .. } => FaultAction::Restart { node: n },
            FaultAction::Pause { for_, .. } => FaultAction::Pause { node: n, for_ },
            FaultAction::Resume { .. } => FaultAction::Resume { node: n },
            FaultAction::ClockStep { by, .. } => FaultAction::ClockStep { node: n, by },
            FaultAction::ClockDrift { drift, .. } => FaultAction::ClockDrift { node: n, drift },
            FaultAction::Clog { for_, .. } => FaultAction::Clog { node: n, for_ },
            FaultAction::Unclog { .. } => FaultAction::Unclog { node: n },
        };
        self.world.record_applied(at, frozen);
    }

    /// Records a partition as the links it cut (a shape drawn at random is frozen); one that
    /// cut nothing only healed the previous one.
    pub(crate) fn record_partition(&mut self, cut: Vec<[usize; 2]>, for_: Option<Duration>) {
        let at = self.world.now;
        let action = if cut.is_empty() {
            FaultAction::Heal
        } else {
            FaultAction::Partition {
                kind: crate::faults::PartitionKind::Links,
                node: None,
                cut,
                for_,
            }
        };
        self.world.record_applied(at, action);
    }

    /// Schedules the fault that undoes another, `after` from now (when given).
    pub(crate) fn undo_after(&mut self, after: Option<Nanos>, undo: FaultAction) {
        if let Some(d) = after {
            self.world.push(self.world.now + d, Event::Fault(undo));
        }
    }

    pub(crate) fn step_clock(&mut self, node: NodeId, by_ns: i64) {
        let now = self.world.now;
        self.world.clocks[node].step(now, by_ns);
        self.world.cover("clock_step");
        let detail = format!("n{node} clock jumps {}", fmt_signed_ns(by_ns as i128));
        self.world.log_fault("clock_step", vec![node], detail);
    }

    pub(crate) fn set_drift(&mut self, node: NodeId, drift: f64, verb: &str) {
        let now = self.world.now;
        self.world.clocks[node].set_drift(now, drift);
        let detail = format!("n{node} drift {verb} {drift:.4}");
        self.world.log_fault("clock_drift", vec![node], detail);
    }

    pub(crate) fn heal(&mut self, why: &str) {
        if !self.world.links.any_cut() {
            self.world
                .bites
                .skip("heal skipped: nothing was cut".to_string());
        }
        self.world.bites.set_partition(false);
        self.world.links.heal();
        self.world.partition_label = None;
        self.world.partition_gen += 1;
        self.world.log_fault("heal", vec![], why.to_string());
    }

    pub(crate) fn crash(&mut self, node: NodeId) {
        if !self.world.up[node] {
            self.world
                .bites
                .skip(format!("crash skipped: n{node} was already down"));
            return;
        }
        let w = &mut self.world;
        w.bites.set_crash(node, true);
        w.up[node] = false;
        w.paused[node] = false;
        if w.trace.keeps() {
            // The held messages vanish with the node's memory of them: the timeline must know.
            let ids = w.held_paused[node].iter().filter_map(|e| match e {
                Event::Deliver { id, .. } => Some(*id),
                _ => None,
            });
            w.summaries.lost_at_crash(w.fault_log.len(), ids);
        }
        w.held_paused[node].clear();
        w.epoch[node] += 1;
        let lost = w.storage[node].crash();
        self.procs[node] = None;
        w.summaries.forget(node);
        w.cover("crash");
        w.log_fault(
            "crash",
            vec![node],
            format!("n{node} crashes ({lost} unsynced writes lost)"),
        );
    }

    pub(crate) fn restart(&mut self, node: NodeId) {
        if self.world.up[node] {
            self.world
                .bites
                .skip(format!("restart skipped: n{node} was up"));
            return;
        }
        self.world.bites.set_crash(node, false);
        self.world.cover("restart");
        self.world.log_fault(
            "restart",
            vec![node],
            format!("n{node} restarts from durable storage"),
        );
        self.start_node(node, true);
    }

    pub(crate) fn pause(&mut self, node: NodeId) {
        if !self.world.up[node] || self.world.paused[node] {
            self.world
                .bites
                .skip(format!("pause skipped: n{node} was down or already paused"));
            return;
        }
        self.world.bites.set_pause(node, true);
        self.world.paused[node] = true;
        self.world.cover("pause");
        self.world
            .log_fault("pause", vec![node], format!("n{node} stops the world"));
    }

    pub(crate) fn resume(&mut self, node: NodeId) {
        if !self.world.paused[node] {
            return;
        }
        self.world.bites.set_pause(node, false);
        self.world.paused[node] = false;
        let held = std::mem::take(&mut self.world.held_paused[node]);
        self.world.log_fault(
            "resume",
            vec![node],
            format!("n{node} resumes ({} events waited)", held.len()),
        );
        let now = self.world.now;
        for ev in held {
            self.world.push(now, ev);
        }
    }

    pub(crate) fn clog(&mut self, node: NodeId) {
        self.world.bites.set_clog(node, true);
        self.world.links.set_clogged(node, true);
        self.world.cover("clog");
        self.world.log_fault(
            "clog",
            vec![node],
            format!("n{node} clogged: its traffic waits"),
        );
    }

    pub(crate) fn unclog(&mut self, node: NodeId) {
        if !self.world.links.is_clogged(node) {
            return;
        }
        self.world.links.set_clogged(node, false);
        self.world.bites.set_clog(node, false);
        self.world
            .log_fault("unclog", vec![node], format!("n{node} unclogged"));
        self.release_clogged();
    }

    pub(crate) fn release_clogged(&mut self) {
        let held = std::mem::take(&mut self.world.held_clog);
        for (from, to, msg, id) in held {
            let w = &mut self.world;
            if w.links.is_clogged(from) || w.links.is_clogged(to) {
                w.held_clog.push((from, to, msg, id));
            } else {
                let delay = w.net.latency.sample(&mut w.net_rng);
                w.push(w.now + delay, Event::Deliver { from, to, msg, id });
            }
        }
    }

    pub(crate) fn swizzle(&mut self, count: Option<usize>, step: Nanos, hold: Nanos) {
        let n = self.world.servers_count;
        let count = count.unwrap_or(n / 2 + 1).min(n);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.world.fault_rng);
        order.truncate(count);
        let now = self.world.now;
        for (i, node) in order.iter().enumerate() {
            self.world.push(
                now + i as Nanos * step,
                Event::Fault(FaultAction::Clog {
                    node: NodeRef::Index(*node),
                    for_: None,
                }),
            );
        }
        let mut back = order.clone();
        back.shuffle(&mut self.world.fault_rng);
        let unclog_start = now + count.saturating_sub(1) as Nanos * step + hold;
        for (i, node) in back.iter().enumerate() {
            let unclog_at = unclog_start + i as Nanos * step;
            self.world.push(
                unclog_at,
                Event::Fault(FaultAction::Unclog {
                    node: NodeRef::Index(*node),
                }),
            );
            // As a script: each clog with its own `for`; a clog the quiet period would
            // suppress is left out.
            let clog_at = now + order.iter().position(|x| x == node).unwrap_or(0) as Nanos * step;
            if clog_at < self.cfg.quiet_ns {
                self.world.record_applied(
                    clog_at,
                    FaultAction::Clog {
                        node: NodeRef::Index(*node),
                        for_: Some(Duration(unclog_at - clog_at)),
                    },
                );
            }
        }
        self.world.cover("swizzle");
        self.world.log_fault(
            "swizzle",
            order.clone(),
            format!(
                "clog {count} servers {} apart, hold {}, unclog in random order",
                fmt_ns(step),
                fmt_ns(hold)
            ),
        );
    }
}
