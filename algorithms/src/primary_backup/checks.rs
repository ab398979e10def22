//! Primary-backup's checks (linearizability of the client history is the engine's):
//!
//! - one primary (after every event): at most one replica acts as primary, that is believes
//!   it is the primary and holds an unexpired lease, at any true time. The simulator sees
//!   every replica at once; states change only at events, and a lease ends at its timer, so
//!   checking after every event checks every instant. A paused replica does nothing and is
//!   not counted, nor is one resumed since but not yet run: the first thing its next callback
//!   does is re-read its clock, and it acts on nothing before. The violation is
//!   reported when the overlap ends (or at the end of the run), with its length, so that the
//!   report's `excl.primary` panel shows the whole overlap in red.
//! - a primary serves after the heal (the liveness phase's predicate): once faults are healed
//!   and crashed replicas restarted, some replica is the caught-up primary with a lease before
//!   the phase's deadline (the engine checks, besides, that operations complete). A run that
//!   stays safe by never serving is not a pass.
//! - no acknowledged write lost (at the end): every write a client was told succeeded is in
//!   the final primary's log (values are fresh, so a value names its write).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

use sim_core::sim::LivenessPhase;
use sim_core::time::{fmt_ns, Nanos};
use sim_core::{Checker, EventType, Finding, History, NodeId, View};

use super::replica::Replica;
use super::Node;
use crate::raft::kv::{Applied, KvState};
use crate::raft::msg::{ClientResult, KvOp};

/// What the checks learn that the metrics need.
#[derive(Debug, Default)]
pub struct Stats {
    /// Every promotion seen: (true time, epoch, replica).
    pub promotions: Vec<(Nanos, u64, NodeId)>,
    /// Whether the end check ran (a run stopped by an earlier violation skips it).
    pub end_checked: bool,
    /// Acknowledged writes at the end.
    pub acked_writes: u64,
    /// Acknowledged writes missing from the final primary's log.
    pub acked_writes_lost: u64,
}

fn replica(n: &Node) -> Option<&Replica> {
    match n {
        Node::Replica(r) => Some(r),
        _ => None,
    }
}

/// A replica acting as primary: (node, view, epoch).
type Actor = (NodeId, u64, u64);

/// At most one replica acts as primary at any true time.
pub struct OnePrimary {
    stats: Rc<RefCell<Stats>>,
    last_epoch: u64,
    /// The overlap under way: since when, and every (replica, view, epoch) in it so far.
    overlap: Option<(Nanos, BTreeSet<Actor>)>,
    /// Replicas seen paused that have not run a callback since.
    stale: BTreeSet<NodeId>,
}

impl OnePrimary {
    /// The check, recording promotions into `stats`.
    pub fn new(stats: Rc<RefCell<Stats>>) -> Self {
        OnePrimary {
            stats,
            last_epoch: 0,
            overlap: None,
            stale: BTreeSet::new(),
        }
    }
}

impl Checker<Node> for OnePrimary {
    fn name(&self) -> &'static str {
        "one primary"
    }

    fn after_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<Finding> {
        if let Some(r) = view.node(node).and_then(replica) {
            let e = r.view.epoch;
            if r.acting() && e > self.last_epoch {
                self.last_epoch = e;
                self.stats.borrow_mut().promotions.push((view.now, e, node));
            }
        }
        self.stale
            .extend((0..view.servers_count()).filter(|i| view.is_paused(*i)));
        self.stale.remove(&node);
        let acting: BTreeSet<Actor> = view
            .servers()
            .filter(|(i, _)| !self.stale.contains(i))
            .filter_map(|(i, n)| replica(n).map(|r| (i, r)))
            .filter(|(_, r)| r.acting())
            .map(|(i, r)| (i, r.view.num, r.view.epoch))
            .collect();
        if acting.len() >= 2 {
            let (_, who) = self.overlap.get_or_insert((view.now, BTreeSet::new()));
            who.extend(acting);
            return None;
        }
        self.overlap
            .take()
            .map(|(since, who)| split_brain(since, &fmt_ns(view.now), &who))
    }

    fn at_end(&mut self, view: &View<'_, Node>, _history: &History) -> Vec<Finding> {
        let end = format!("the end of the run ({})", fmt_ns(view.now));
        self.overlap
            .take()
            .map(|(since, who)| split_brain(since, &end, &who))
            .into_iter()
            .collect()
    }
}

fn split_brain(since: Nanos, until: &str, who: &BTreeSet<Actor>) -> Finding {
    let names: Vec<String> = who
        .iter()
        .map(|(i, v, e)| format!("n{i} (view {v}, epoch {e})"))
        .collect();
    Finding::new(format!(
        "split brain from {} to {until}: {} acted as primary with unexpired leases at once",
        fmt_ns(since),
        names.join(" and ")
    ))
    .nodes(who.iter().map(|(i, _, _)| *i))
    .values(who.iter().map(|(_, _, e)| serde_json::json!(e)))
}

/// Every acknowledged write survives every failover.
pub struct NoLostWrites {
    stats: Rc<RefCell<Stats>>,
    service: Option<NodeId>,
}

impl NoLostWrites {
    /// The end check; `service` is the view service's node (None: the coordination service
    /// of `failover = "zookeeper"` elects the primary).
    pub fn new(stats: Rc<RefCell<Stats>>, service: Option<NodeId>) -> Self {
        NoLostWrites { stats, service }
    }

    /// The replica whose log is the store's final state: the primary that the view service
    /// (or the coordination service's leader of the highest term) names, if it is up, else
    /// the up replica with the newest log.
    fn final_replica<'a>(&self, view: &'a View<'_, Node>) -> Option<(NodeId, &'a Replica)> {
        let named = match self.service.and_then(|s| view.node(s)) {
            Some(Node::Service(s)) => s.state.view.primary,
            _ => view
                .servers()
                .filter_map(|(_, n)| match n {
                    Node::Coord(c) if c.raft.is_leader() => Some(&c.raft),
                    _ => None,
                })
                .max_by_key(|r| r.term)
                .and_then(|r| r.state().listing().view().1),
        };
        if let Some(p) = named {
            if let Some(r) = view.node(p).and_then(replica) {
                return Some((p, r));
            }
        }
        view.servers()
            .filter_map(|(i, n)| replica(n).map(|r| (i, r)))
            .max_by_key(|(_, r)| (r.log_epoch, r.log.len()))
    }
}

/// The values a log's writes actually wrote (a cas that found another value wrote nothing).
pub fn written_values(r: &Replica) -> BTreeSet<u64> {
    let mut kv = KvState::default();
    let mut out = BTreeSet::new();
    for e in &r.log {
        let fresh = kv.apply(e.client, e.cseq, &e.op, true);
        match (&e.op, fresh) {
            (KvOp::Put { value, .. }, Applied::Fresh(_)) => {
                out.insert(*value);
            }
            (KvOp::Cas { to, .. }, Applied::Fresh(ClientResult::Done)) => {
                out.insert(*to);
            }
            _ => {}
        }
    }
    out
}

impl Checker<Node> for NoLostWrites {
    fn name(&self) -> &'static str {
        "no acknowledged write lost"
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let Some((node, r)) = self.final_replica(view) else {
            return vec![Finding::new(
                "no replica is up at the end to hold the store",
            )];
        };
        let written = written_values(r);
        let mut lost = Vec::new();
        let mut acked = 0;
        let mut invokes = 0usize;
        let mut op_of_process = std::collections::BTreeMap::new();
        for (index, ev) in history.events.iter().enumerate() {
            match ev.kind {
                EventType::Invoke => {
                    op_of_process.insert(ev.process, (invokes, index));
                    invokes += 1;
                }
                EventType::Ok if ev.f != "read" && ev.f != "get" => {
                    let value = if ev.f == "cas" {
                        ev.value.get(1).and_then(|v| v.as_u64())
                    } else {
                        ev.value.as_u64()
                    };
                    let Some(value) = value else { continue };
                    acked += 1;
                    if !written.contains(&value) {
                        let (nth, index) =
                            op_of_process.get(&ev.process).copied().unwrap_or((0, 0));
                        lost.push(((nth, index), value, ev.key.clone(), ev.time_ns));
                    }
                }
                _ => {}
            }
        }
        let mut st = self.stats.borrow_mut();
        st.end_checked = true;
        st.acked_writes = acked;
        st.acked_writes_lost = lost.len() as u64;
        if lost.is_empty() {
            return Vec::new();
        }
        let shown: Vec<String> = lost
            .iter()
            .take(5)
            .map(|((nth, _), v, k, t)| {
                format!(
                    "op #{nth} (value {v} to {}, acknowledged at {})",
                    k.as_deref().unwrap_or("the key"),
                    fmt_ns(*t)
                )
            })
            .collect();
        vec![Finding::new(format!(
            "{} of {acked} acknowledged writes are missing from the final primary n{node}'s log (epoch {}, {} entries): {}{}",
            lost.len(),
            r.log_epoch,
            r.log.len(),
            shown.join(", "),
            if lost.len() > 5 { ", ..." } else { "" }
        ))
        .nodes([node])
        .ops(lost.iter().map(|((_, index), _, _, _)| *index))
        .values(lost.iter().map(|(_, v, _, _)| serde_json::json!(v)))
        .keys(lost.iter().filter_map(|(_, _, k, _)| k.clone()))]
    }
}

/// The liveness phase's predicate: after the heal, some replica serves as the caught-up
/// primary with a lease before the phase's deadline.
#[derive(Default)]
pub struct ServesAfterHeal {
    served_at: Option<Nanos>,
}

impl Checker<Node> for ServesAfterHeal {
    fn name(&self) -> &'static str {
        "a primary serves after the heal"
    }

    fn after_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<Finding> {
        if self.served_at.is_none() && view.liveness().is_some() {
            let serving = view
                .node(node)
                .and_then(replica)
                .is_some_and(|r| r.serving());
            if serving {
                self.served_at = Some(view.now);
            }
        }
        None
    }

    fn at_liveness(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        if self.served_at.is_some_and(|t| t <= phase.deadline_ns) {
            return Vec::new();
        }
        let states: Vec<String> = view
            .servers()
            .filter_map(|(i, n)| replica(n).map(|r| (i, r)))
            .map(|(i, r)| format!("n{i} view {} primary {:?}", r.view.num, r.view.primary))
            .collect();
        vec![Finding::liveness(format!(
            "faults healed at {} but no replica served as primary by {}: {}",
            fmt_ns(phase.start_ns),
            fmt_ns(phase.deadline_ns),
            states.join(", ")
        ))
        .nodes(view.servers().map(|(i, _)| i))]
    }
}
