//! The world a process acts on: network, timers, clients, storage, metrics, trace.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use super::*;
use crate::clock::Clock;
use crate::history::{EventType, HistoryEvent};
use crate::metrics::Metrics;
use crate::network::{self, Links, NetworkConfig, SendFate};
use crate::process::{Message, NodeId, Op, TimerId};
use crate::result::{FaultCounts, FaultRecord, Violation};
use crate::rng::SimRng;
use crate::storage::Storage;
use crate::time::{Nanos, MS};
use crate::trace::{Trace, TraceKind};

pub(crate) struct ClientState {
    pub(crate) process: u64,
    pub(crate) current: Option<(Op, Nanos)>,
    pub(crate) done: u64,
}

/// Hot counters kept as plain integers; they become metrics at the end.
#[derive(Default)]
pub(crate) struct NetStats {
    pub(crate) sent: u64,
    pub(crate) delivered: u64,
    pub(crate) dropped_cut: u64,
    pub(crate) dropped_loss: u64,
    pub(crate) dropped_down: u64,
    pub(crate) duplicated: u64,
    pub(crate) reordered: u64,
    pub(crate) held_clog: u64,
    pub(crate) held_pause: u64,
}

/// Everything but the processes: what a [`Ctx`] reaches into.
pub struct World<M: Message> {
    pub(crate) now: Nanos,
    pub(crate) seq: u64,
    pub(crate) queue: BinaryHeap<Reverse<QueueKey>>,
    pub(crate) slab: Vec<Option<Event<M>>>,
    pub(crate) free: Vec<u32>,
    pub(crate) servers_count: usize,
    pub(crate) clients_count: usize,
    pub(crate) clocks: Vec<Clock>,
    pub(crate) storage: Vec<Storage>,
    pub(crate) node_rngs: Vec<SimRng>,
    pub(crate) net_rng: SimRng,
    pub(crate) fault_rng: SimRng,
    pub(crate) workload_rng: SimRng,
    pub(crate) net: NetworkConfig,
    pub(crate) links: Links,
    pub(crate) up: Vec<bool>,
    pub(crate) paused: Vec<bool>,
    pub(crate) epoch: Vec<u32>,
    pub(crate) held_paused: Vec<Vec<Event<M>>>,
    pub(crate) held_clog: Vec<(NodeId, NodeId, M, u64)>,
    pub(crate) cancelled_timers: HashSet<u64>,
    pub(crate) next_timer: u64,
    pub(crate) next_msg: u64,
    pub(crate) history: Vec<HistoryEvent>,
    pub(crate) clients: Vec<ClientState>,
    pub(crate) workload: WorkloadGen,
    pub(crate) accepting_ops: bool,
    pub(crate) nemesis_on: bool,
    pub(crate) metrics: Metrics,
    pub(crate) trace: Trace,
    /// Per-node state summaries, kept with the trace (for the report's timeline).
    pub(crate) summaries: crate::summary::Summaries,
    pub(crate) violations: Vec<Violation>,
    pub(crate) fault_log: Vec<FaultRecord>,
    /// The faults carried out, as a script with every random choice made
    /// ([`crate::result::RunResult::applied_faults`]).
    pub(crate) applied: Vec<crate::faults::ScriptedFault>,
    pub(crate) coverage: BTreeMap<String, FaultCounts>,
    pub(crate) partition_label: Option<String>,
    pub(crate) partition_gen: u64,
    pub(crate) stats: NetStats,
    /// Whether the quiet period has begun.
    pub(crate) quiet_started: bool,
    /// The liveness phase, once it has begun.
    pub(crate) liveness: Option<LivenessPhase>,
    /// Things a person should know about the run that are not violations (a fault that never
    /// bit, no operation completed).
    pub(crate) warnings: Vec<String>,
    /// Whether each scripted fault bit.
    pub(crate) bites: super::bites::Bites,
}

impl<M: Message> World<M> {
    pub(crate) fn send(&mut self, from: NodeId, to: NodeId, msg: M) {
        assert!(
            to < self.up.len(),
            "n{from} sent {} to n{to}, which does not exist ({} nodes)",
            msg.label(),
            self.up.len()
        );
        self.next_msg += 1;
        let id = self.next_msg;
        self.stats.sent += 1;
        self.trace.record(
            self.now,
            TraceKind::Send,
            from,
            Some(to),
            msg.label(),
            Some(id),
        );
        match network::decide(&self.net, &self.links, &mut self.net_rng, from, to) {
            SendFate::Cut => self.drop_cut(from, to, msg.label(), id),
            SendFate::Lost => {
                self.stats.dropped_loss += 1;
                self.trace.record(
                    self.now,
                    TraceKind::DropLoss,
                    from,
                    Some(to),
                    msg.label(),
                    Some(id),
                );
            }
            SendFate::Deliver {
                delay,
                dup_delay,
                reordered,
            } => {
                if reordered {
                    self.stats.reordered += 1;
                }
                if let Some(d) = dup_delay {
                    self.stats.duplicated += 1;
                    self.trace.record(
                        self.now,
                        TraceKind::Duplicate,
                        from,
                        Some(to),
                        msg.label(),
                        Some(id),
                    );
                    self.push(
                        self.now + d,
                        Event::Deliver {
                            from,
                            to,
                            msg: msg.clone(),
                            id,
                        },
                    );
                }
                self.push(self.now + delay, Event::Deliver { from, to, msg, id });
            }
        }
    }

    pub(crate) fn drop_cut(&mut self, from: NodeId, to: NodeId, label: &str, id: u64) {
        self.bites.cut();
        self.stats.dropped_cut += 1;
        if let Some(p) = &self.partition_label {
            self.coverage.entry(p.clone()).or_default().messages += 1;
        }
        self.trace.record(
            self.now,
            TraceKind::DropCut,
            from,
            Some(to),
            label,
            Some(id),
        );
    }

    pub(crate) fn set_timer(&mut self, node: NodeId, after_local: Nanos, tag: u64) -> TimerId {
        self.next_timer += 1;
        let id = self.next_timer;
        let delay = self.clocks[node].true_span(after_local);
        let epoch = self.epoch[node];
        self.push(
            self.now.saturating_add(delay),
            Event::Timer {
                node,
                epoch,
                id,
                tag,
            },
        );
        TimerId(id)
    }

    pub(crate) fn complete(&mut self, node: NodeId, outcome: EventType, value: serde_json::Value) {
        let ci = node - self.servers_count;
        let client = &mut self.clients[ci];
        let (op, invoked) = client.current.take().unwrap_or_else(|| {
            panic!("client n{node} completed an operation it was not asked for")
        });
        assert!(
            outcome != EventType::Invoke,
            "client n{node} completed with `invoke`"
        );
        self.history.push(HistoryEvent {
            kind: outcome,
            process: client.process,
            time_ns: self.now,
            f: op.f,
            key: op.key,
            value,
        });
        client.done += 1;
        if outcome == EventType::Info {
            // Its operation may still take effect later: continue under a fresh identity.
            client.process += self.clients_count as u64;
        }
        let latency_ms = (self.now - invoked) as f64 / MS as f64;
        match outcome {
            EventType::Ok => {
                self.metrics.count("ops.ok", 1.0);
                self.metrics.observe("op_latency_ms", latency_ms);
            }
            EventType::Fail => self.metrics.count("ops.fail", 1.0),
            _ => self.metrics.count("ops.info", 1.0),
        }
        self.trace.record(
            self.now,
            TraceKind::Complete,
            node,
            None,
            outcome.as_str(),
            None,
        );
        let limit = self.workload.cfg.limit;
        if self.accepting_ops && (limit == 0 || client.done < limit) {
            let think = self.workload.think(&mut self.workload_rng);
            self.push(self.now + think, Event::Invoke(node));
        }
    }

    pub(crate) fn report_violation(&mut self, source: String, finding: Finding) {
        self.trace.record(
            self.now,
            TraceKind::Violation,
            finding.nodes.first().copied().unwrap_or(0),
            None,
            &finding.message,
            None,
        );
        self.violations.push(Violation {
            time_ns: self.now,
            source,
            kind: finding.kind,
            message: finding.message,
            nodes: finding.nodes,
            ops: finding.ops,
            values: finding.values,
            keys: finding.keys,
        });
    }

    pub(crate) fn log_fault(&mut self, action: &str, nodes: Vec<usize>, detail: String) {
        let label = format!("{action}: {detail}");
        self.trace.record(
            self.now,
            TraceKind::Fault,
            nodes.first().copied().unwrap_or(0),
            None,
            &label,
            None,
        );
        self.fault_log.push(FaultRecord {
            time_ns: self.now,
            action: action.to_string(),
            nodes,
            detail,
        });
    }

    /// Records a fault carried out at `at`, as it would be scripted.
    pub(crate) fn record_applied(&mut self, at: Nanos, action: crate::faults::FaultAction) {
        self.applied.push(crate::faults::ScriptedFault {
            at: crate::faults::FaultTime(crate::time::Duration(at)),
            action,
        });
    }

    pub(crate) fn cover(&mut self, key: &str) {
        self.coverage.entry(key.to_string()).or_default().fired += 1;
    }

    pub(crate) fn cover_messages(&mut self, key: &str, n: u64) {
        self.coverage.entry(key.to_string()).or_default().messages += n;
    }

    pub(crate) fn servers_up(&self) -> Vec<NodeId> {
        (0..self.servers_count).filter(|i| self.up[*i]).collect()
    }
}
