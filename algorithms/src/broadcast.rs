//! Broadcast: every value a client adds must reach every server.
//!
//! A client adds a value at a random server. The server writes it to disk and syncs before it
//! acknowledges (so a crash cannot take back an acknowledged value), then gossips it to every
//! other server and keeps resending what a peer has not acknowledged, every `retry_interval`.
//! After a restart a server reloads its values and offers them all again.
//!
//! End check: once the network has healed (the scenario's quiet period), every value
//! acknowledged to a client is on every server that is up.
//!
//! Reads are bounded: a read returns how many values the server holds and the
//! [`READ_NEWEST`] newest of them, not the whole set (which made every reply grow with the
//! run, and a 100-client run grow to 12 GB). The read check judges them: a read may only
//! return values, and count values, that clients had added by the time it completed.
//!
//! Bug switches (one line each on the rule they break):
//! - `no_retry`: a gossip message lost in a partition is never resent, so a value can miss a
//!   server for ever (rule: retransmit until acknowledged).
//! - `ack_before_sync`: acknowledge the client before the value is durable, so a crash right
//!   after loses an acknowledged value (rule: sync before you promise).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sim_core::time::{fmt_ns, Duration, MS};
use sim_core::{
    Checker, Ctx, EventType, Finding, History, Message, NodeId, Op, Process, RunOptions, RunResult,
    Scenario, ScenarioError, Sim, SimConfig, TimerId, View,
};

use crate::client::RequestTracker;
use crate::Bug;

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[Bug] = BroadcastBug::ALL;

/// `[params]` of a broadcast scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// A switchable bug.
    pub bug: Option<BroadcastBug>,
    /// How often unacknowledged gossip is resent.
    pub retry_interval: Duration,
    /// Most values in one gossip message.
    pub batch_max: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bug: None,
            retry_interval: Duration(100 * MS),
            batch_max: 64,
        }
    }
}

crate::bug_switches! {
    /// Broadcast's bugs.
    pub enum BroadcastBug {
        /// Never resend gossip.
        NoRetry = ("no_retry", "gossip must be retransmitted until the peer acknowledges it"),
        /// Acknowledge before syncing.
        AckBeforeSync = ("ack_before_sync", "a value must be durable before the client is told it was added"),
    }
}

/// Broadcast's messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Client asks a server to add a value.
    Add {
        /// Request id.
        req: u64,
        /// The value.
        value: u64,
    },
    /// The value is stored (durably, unless a bug is on).
    AddOk {
        /// Request id.
        req: u64,
    },
    /// Client asks for a server's values.
    Read {
        /// Request id.
        req: u64,
    },
    /// How many values a server holds, and the newest of them.
    ReadOk {
        /// Request id.
        req: u64,
        /// How many values the server holds.
        count: u64,
        /// The largest values it holds (values are numbered as clients add them, so these
        /// are the newest), at most [`READ_NEWEST`], largest first.
        newest: Vec<u64>,
    },
    /// Server to server: values to store.
    Gossip {
        /// The values.
        values: Vec<u64>,
    },
    /// Server to server: these values are stored.
    GossipAck {
        /// The values.
        values: Vec<u64>,
    },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Add { .. } => "add",
            Msg::AddOk { .. } => "add_ok",
            Msg::Read { .. } => "read",
            Msg::ReadOk { .. } => "read_ok",
            Msg::Gossip { .. } => "gossip",
            Msg::GossipAck { .. } => "gossip_ack",
        }
    }
}

/// Most values a read returns: a bound on a reply's size, whatever the run's length.
pub const READ_NEWEST: usize = 8;

const RETRY_TIMER: u64 = 1;
const SYNC_TIMER: u64 = 2;
/// Values are appended to a log on disk, so storing one costs O(1), not a rewrite of the set.
const VALUES_LOG: &str = "values";

/// A broadcast server.
pub struct Server {
    params: Params,
    values: BTreeSet<u64>,
    /// Per peer, values it has not acknowledged yet.
    unacked: BTreeMap<NodeId, BTreeSet<u64>>,
    /// With `ack_before_sync`: replies owed once the lazy sync happens.
    sync_scheduled: bool,
}

impl Server {
    /// The server's state for the report's timeline: how many values it holds (delivered),
    /// how many it still waits for peers to acknowledge, and whether its disk lags behind.
    pub fn summary(&self) -> sim_core::summary::StateSummary {
        let unacked: usize = self.unacked.values().map(|s| s.len()).sum();
        let sync = if self.sync_scheduled {
            ", disk sync pending"
        } else {
            ""
        };
        sim_core::summary::StateSummary {
            role: Some("server"),
            detail: format!(
                "{} values held, {unacked} unacknowledged by peers{sync}",
                self.values.len()
            ),
            ..Default::default()
        }
    }

    fn store(&mut self, ctx: &mut Ctx<'_, Msg>, new: &[u64]) -> Vec<u64> {
        let fresh: Vec<u64> = new
            .iter()
            .copied()
            .filter(|v| self.values.insert(*v))
            .collect();
        if !fresh.is_empty() {
            for v in &fresh {
                ctx.storage().append(VALUES_LOG, v.to_le_bytes().to_vec());
                // The report hook: reports/src/missing.rs draws which server lacks what.
                ctx.series("have.values", *v as f64);
            }
            if self.params.bug == Some(BroadcastBug::AckBeforeSync) {
                // The disk is written lazily, a little later: a crash in between loses data.
                if !self.sync_scheduled {
                    self.sync_scheduled = true;
                    ctx.set_timer(50 * MS, SYNC_TIMER);
                }
            } else {
                ctx.storage().sync();
            }
        }
        fresh
    }

    fn offer(&mut self, ctx: &mut Ctx<'_, Msg>, values: &[u64]) {
        for peer in 0..ctx.servers_count() {
            if peer == ctx.id() {
                continue;
            }
            if self.params.bug != Some(BroadcastBug::NoRetry) {
                self.unacked
                    .entry(peer)
                    .or_default()
                    .extend(values.iter().copied());
            }
            for chunk in values.chunks(self.params.batch_max.max(1)) {
                ctx.send(
                    peer,
                    Msg::Gossip {
                        values: chunk.to_vec(),
                    },
                );
            }
        }
    }

    fn resend(&mut self, ctx: &mut Ctx<'_, Msg>) {
        for (peer, vals) in &self.unacked {
            if !vals.is_empty() {
                let batch: Vec<u64> = vals
                    .iter()
                    .copied()
                    .take(self.params.batch_max.max(1))
                    .collect();
                ctx.count("broadcast.resends", 1.0);
                ctx.send(*peer, Msg::Gossip { values: batch });
            }
        }
    }
}

/// A broadcast client.
pub struct Client {
    tracker: RequestTracker,
    timeout_ns: u64,
}

/// A node: a server or a client.
pub enum Node {
    /// Stores and gossips values.
    Server(Server),
    /// Adds and reads values.
    Client(Client),
}

impl Node {
    /// The values a server holds (empty for clients).
    pub fn values(&self) -> Option<&BTreeSet<u64>> {
        match self {
            Node::Server(s) => Some(&s.values),
            Node::Client(_) => None,
        }
    }
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Node::Server(s) = self else { return };
        s.values = ctx
            .storage()
            .log(VALUES_LOG)
            .iter()
            .filter_map(|e| Some(u64::from_le_bytes(e.as_slice().try_into().ok()?)))
            .collect();
        if ctx.is_restart() {
            // The report hook: what the crash left is what the disk kept.
            ctx.series("have.values", -1.0);
            for v in &s.values {
                ctx.series("have.values", *v as f64);
            }
        }
        if s.params.bug != Some(BroadcastBug::NoRetry) {
            ctx.set_timer(s.params.retry_interval.0, RETRY_TIMER);
            if ctx.is_restart() && !s.values.is_empty() {
                // Peers may have missed values we acknowledged before the crash.
                let all: Vec<u64> = s.values.iter().copied().collect();
                s.offer(ctx, &all);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match (self, msg) {
            (Node::Server(s), Msg::Add { req, value }) => {
                let fresh = s.store(ctx, &[value]);
                ctx.send(from, Msg::AddOk { req });
                if !fresh.is_empty() {
                    s.offer(ctx, &fresh);
                }
            }
            (Node::Server(s), Msg::Read { req }) => {
                let newest: Vec<u64> = s.values.iter().rev().take(READ_NEWEST).copied().collect();
                let count = s.values.len() as u64;
                debug_assert!(newest.len() as u64 == count.min(READ_NEWEST as u64));
                ctx.send(from, Msg::ReadOk { req, count, newest });
            }
            (Node::Server(s), Msg::Gossip { values }) => {
                s.store(ctx, &values);
                ctx.send(from, Msg::GossipAck { values });
            }
            (Node::Server(s), Msg::GossipAck { values }) => {
                if let Some(set) = s.unacked.get_mut(&from) {
                    for v in values {
                        set.remove(&v);
                    }
                }
            }
            (Node::Client(c), Msg::AddOk { req }) => {
                c.tracker
                    .finish(ctx, req, EventType::Ok, serde_json::Value::Null);
            }
            (Node::Client(c), Msg::ReadOk { req, count, newest }) => {
                let value = serde_json::json!({ "count": count, "newest": newest });
                c.tracker.finish(ctx, req, EventType::Ok, value);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        match self {
            Node::Server(s) if tag == RETRY_TIMER => {
                s.resend(ctx);
                ctx.set_timer(s.params.retry_interval.0, RETRY_TIMER);
            }
            Node::Server(s) if tag == SYNC_TIMER => {
                s.sync_scheduled = false;
                ctx.storage().sync();
            }
            Node::Client(c) => {
                c.tracker.on_timer(ctx, tag);
            }
            _ => {}
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        let Node::Client(c) = self else { return };
        let req = c.tracker.begin(ctx, c.timeout_ns);
        let to = crate::random_server(ctx);
        let msg = match op.f.as_str() {
            "read" => Msg::Read { req },
            _ => Msg::Add {
                req,
                value: op.value.as_u64().unwrap_or(0),
            },
        };
        ctx.send(to, msg);
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        match self {
            Node::Server(s) => Some(s.summary()),
            // The report shows a client's open operation from the trace.
            Node::Client(_) => None,
        }
    }
}

/// Every acknowledged value is on every server that is up at the end.
struct AllDelivered;

impl Checker<Node> for AllDelivered {
    fn name(&self) -> &'static str {
        "broadcast-delivery"
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        // (value, invoke event index) of each add in flight, per process.
        let mut invoked: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
        let mut acked: Vec<(u64, usize, u64, u64)> = Vec::new();
        for (i, e) in history.events.iter().enumerate() {
            if e.f != "add" {
                continue;
            }
            match e.kind {
                EventType::Invoke => {
                    invoked.insert(e.process, (e.value.as_u64().unwrap_or(0), i));
                }
                EventType::Ok => {
                    if let Some((v, op)) = invoked.get(&e.process) {
                        acked.push((*v, *op, e.process, e.time_ns));
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        // Every missing value goes into one summary finding, so reports can show them all.
        let mut all = Finding::new(String::new());
        for (v, op, process, t) in &acked {
            let missing: Vec<NodeId> = view
                .servers()
                .filter(|(_, n)| !n.values().is_some_and(|s| s.contains(v)))
                .map(|(i, _)| i)
                .collect();
            if missing.is_empty() {
                continue;
            }
            all.ops.push(*op);
            all.values.push((*v).into());
            for m in &missing {
                if !all.nodes.contains(m) {
                    all.nodes.push(*m);
                }
            }
            if out.len() < 3 {
                let client = view.client_of(*process);
                out.push(
                    Finding::new(format!(
                        "value {v}, acknowledged to n{client} (client {}) at {}, is missing on {} at the end",
                        client - view.servers_count(),
                        fmt_ns(*t),
                        missing.iter().map(|m| format!("n{m}")).collect::<Vec<_>>().join(", ")
                    ))
                    .nodes(missing.iter().copied().chain([client]))
                    .ops([*op])
                    .values([(*v).into()]),
                );
            }
        }
        if all.ops.len() > out.len() {
            all.nodes.sort_unstable();
            all.message = format!(
                "... {} acknowledged values in all are missing somewhere",
                all.ops.len()
            );
            out.push(all);
        }
        out
    }
}

/// The `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[
    crate::ParamDoc {
        name: "bug",
        default: "none",
        doc: "a switchable bug (see bugs)",
    },
    crate::ParamDoc {
        name: "retry_interval",
        default: "\"100ms\"",
        doc: "how often unacknowledged gossip is resent",
    },
    crate::ParamDoc {
        name: "batch_max",
        default: "64",
        doc: "most values in one gossip message",
    },
];
/// A read returns only values that clients had added, and counts no more values than
/// clients had added, by the time it completed.
struct ReadsAdded;

impl Checker<Node> for ReadsAdded {
    fn name(&self) -> &'static str {
        "broadcast-reads"
    }

    fn at_end(&mut self, _view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        judge_reads(history)
    }
}

/// The read check over a history (at most three findings).
fn judge_reads(history: &History) -> Vec<Finding> {
    // Events are in time order: walk them once, knowing what had been added so far.
    let mut added: BTreeSet<u64> = BTreeSet::new();
    let mut out = Vec::new();
    let mut invoked: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, e) in history.events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            invoked.insert(e.process, i);
        }
        let op = invoked.get(&e.process).copied();
        match (e.f.as_str(), e.kind) {
            ("add", EventType::Invoke) => {
                if let Some(v) = e.value.as_u64() {
                    added.insert(v);
                }
            }
            ("read", EventType::Ok) => {
                let count = e.value["count"].as_u64().unwrap_or(0);
                let newest = e.value["newest"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or(&[]);
                if count > added.len() as u64 {
                    out.push(
                        Finding::new(format!(
                            "a read by client process {} at {} counted {count} values, but clients had added only {}",
                            e.process,
                            fmt_ns(e.time_ns),
                            added.len()
                        ))
                        .ops(op),
                    );
                }
                if let Some(v) = newest
                    .iter()
                    .filter_map(|v| v.as_u64())
                    .find(|v| !added.contains(v))
                {
                    out.push(
                        Finding::new(format!(
                            "a read by client process {} at {} returned value {v}, which no client had added",
                            e.process,
                            fmt_ns(e.time_ns)
                        ))
                        .ops(op)
                        .values([v.into()]),
                    );
                }
            }
            _ => {}
        }
        if out.len() >= 3 {
            break;
        }
    }
    out
}

/// Runs a broadcast scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    if params.retry_interval.0 == 0 {
        return Err(sc.error_at(
            "retry_interval",
            "retry_interval must be above zero, e.g. \"100ms\"".into(),
        ));
    }
    let cfg = SimConfig::new(sc, seed, opts);
    let timeout_ns = cfg.workload.timeout.0;
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(Client {
                tracker: RequestTracker::default(),
                timeout_ns,
            })
        } else {
            Node::Server(Server {
                params: params.clone(),
                values: BTreeSet::new(),
                unacked: BTreeMap::new(),
                sync_scheduled: false,
            })
        }
    });
    sim.add_checker(AllDelivered);
    sim.add_checker(ReadsAdded);
    Ok(sim.run())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(lines: &str) -> History {
        History::from_jsonl(lines).unwrap()
    }

    #[test]
    fn reads_may_return_only_added_values() {
        let added = r#"{"type":"invoke","process":1,"time_ns":1,"f":"add","value":7}
{"type":"ok","process":1,"time_ns":2,"f":"add"}
{"type":"invoke","process":2,"time_ns":3,"f":"read"}
"#;
        let good = format!(
            "{added}{}",
            r#"{"type":"ok","process":2,"time_ns":4,"f":"read","value":{"count":1,"newest":[7]}}"#
        );
        assert!(judge_reads(&history(&good)).is_empty());
        let invented = format!(
            "{added}{}",
            r#"{"type":"ok","process":2,"time_ns":4,"f":"read","value":{"count":1,"newest":[8]}}"#
        );
        let f = judge_reads(&history(&invented));
        assert!(
            f[0].message
                .contains("returned value 8, which no client had added"),
            "{f:?}"
        );
        let overcounted = format!(
            "{added}{}",
            r#"{"type":"ok","process":2,"time_ns":4,"f":"read","value":{"count":2,"newest":[7]}}"#
        );
        let f = judge_reads(&history(&overcounted));
        assert!(
            f[0].message
                .contains("counted 2 values, but clients had added only 1"),
            "{f:?}"
        );
    }
}
