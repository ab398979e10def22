//! Paxos's invariants over the global state (the simulator sees every acceptor), checked
//! after every event, and the progress predicates of the liveness phase.
//!
//! - at most one value is chosen per slot: a value is chosen once a majority of acceptors
//!   accepted it in one ballot, and no other value may ever reach that in any ballot;
//! - learned = chosen: a learner (replica) learns only the value chosen for its slot;
//! - the chosen value was proposed (Synod: by a client; Multi-Paxos: a client's command or a
//!   no-op, which linearizability of the key-value history then judges);
//! - exactly once (Multi-Paxos): no client command (client, seq) takes effect at two slots;
//! - progress (liveness phase): Synod, the value is learned by a majority of the up servers;
//!   Multi-Paxos, a leader is up and every up replica applied every chosen slot.

use std::cell::RefCell;
use std::rc::Rc;

use sim_core::hash::LookupMap;
use sim_core::time::{fmt_ns, Nanos};
use sim_core::{Checker, EventType, Finding, History, LivenessPhase, NodeId, View};

use super::acceptor::AcceptRecord;
use super::msg::Ballot;
use super::server::Role;
use super::Node;
use crate::catch_up::CatchUp;

/// What the checkers learn during the run that the metrics need afterwards.
#[derive(Debug, Default)]
pub struct Shared {
    /// Every phase 1 won: (true time, ballot, node), in order.
    pub leaders: Vec<(Nanos, Ballot, NodeId)>,
    /// Lengths of the windows without a leader, in ms.
    pub leaderless_ms: Vec<f64>,
    /// Client commands chosen (each slot once).
    pub commands_chosen: u64,
    /// Times (ms) a restarted replica took to apply what the cluster had applied when it
    /// came back ([`CatchUp`]).
    pub catch_up_ms: Vec<f64>,
}

/// A set of acceptors: a bitmask for the first 64 node ids (every cluster in practice), the
/// rest in a sorted vector, so that a vote costs no allocation.
#[derive(Debug, Default)]
struct Voters {
    low: u64,
    more: Vec<NodeId>,
}

impl Voters {
    fn insert(&mut self, n: NodeId) {
        if n < 64 {
            self.low |= 1 << n;
        } else if let Err(i) = self.more.binary_search(&n) {
            self.more.insert(i, n);
        }
    }

    fn len(&self) -> usize {
        self.low.count_ones() as usize + self.more.len()
    }

    /// The acceptors in increasing order.
    fn iter(&self) -> impl Iterator<Item = NodeId> + '_ {
        (0..64)
            .filter(|i| self.low & (1 << i) != 0)
            .chain(self.more.iter().copied())
    }
}

/// The chosen values, learned from every acceptor's accepts as they happen. Both maps are
/// only looked up, never iterated, so they are hash maps with a fixed hasher (a run's
/// hundreds of thousands of slots made the ordered maps' comparisons a tenth of its time).
#[derive(Debug, Default)]
struct Chosen {
    majority: usize,
    /// Per (slot, ballot): the value's digest and the acceptors that accepted it.
    votes: LookupMap<(u64, Ballot), (u64, Voters)>,
    /// Per slot: the chosen digest and the ballot that chose it.
    chosen: LookupMap<u64, (u64, Ballot)>,
}

impl Chosen {
    /// Records accepts at `node`; returns the slots newly chosen, or a violation.
    fn record(&mut self, node: NodeId, recs: &[AcceptRecord]) -> Result<Vec<u64>, String> {
        let mut newly = Vec::new();
        for &(slot, b, digest) in recs {
            let (d, voters) = self
                .votes
                .entry((slot, b))
                .or_insert((digest, Voters::default()));
            if *d != digest {
                return Err(format!(
                    "one value per ballot: ballot {b} carries two values in slot {slot} (n{node} accepted value {digest})"
                ));
            }
            voters.insert(node);
            if voters.len() < self.majority {
                continue;
            }
            match self.chosen.get(&slot) {
                None => {
                    self.chosen.insert(slot, (digest, b));
                    newly.push(slot);
                }
                Some((d0, b0)) if *d0 != digest => {
                    let who: Vec<String> = voters.iter().map(|n| format!("n{n}")).collect();
                    return Err(format!(
                        "at most one value chosen: slot {slot} had value {d0} chosen in ballot {b0}, and now value {digest} is chosen in ballot {b} by {}",
                        who.join(", ")
                    ));
                }
                Some(_) => {}
            }
        }
        Ok(newly)
    }

    fn check_learned(&self, node: NodeId, slot: u64, digest: u64) -> Option<String> {
        match self.chosen.get(&slot) {
            Some((d, _)) if *d == digest => None,
            Some((d, b)) => Some(format!(
                "learned = chosen: n{node} learned value {digest} for slot {slot}, but value {d} was chosen (ballot {b})"
            )),
            None => Some(format!(
                "learned = chosen: n{node} learned value {digest} for slot {slot}, which no majority of acceptors accepted in any ballot"
            )),
        }
    }
}

/// The Synod protocol's invariants.
pub struct SynodChecks {
    chosen: Chosen,
    /// When the value was first chosen.
    pub chosen_at: Option<Nanos>,
    shared: Rc<RefCell<Shared>>,
}

impl SynodChecks {
    /// The checks for `servers_count` acceptors.
    pub fn new(servers_count: usize, shared: Rc<RefCell<Shared>>) -> Self {
        SynodChecks {
            chosen: Chosen {
                majority: servers_count / 2 + 1,
                ..Chosen::default()
            },
            chosen_at: None,
            shared,
        }
    }

    /// The progress predicate at the end of the liveness phase: if a proposer is still
    /// trying at the deadline, or a client proposed during the phase, a value is chosen (a
    /// majority accepted it in one ballot) by the deadline.
    pub fn progress(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        history: &History,
    ) -> Vec<String> {
        let asked = history.events.iter().any(|e| {
            e.kind == EventType::Invoke && (phase.start_ns..phase.deadline_ns).contains(&e.time_ns)
        });
        let trying = view
            .servers()
            .any(|(_, n)| matches!(n, Node::Synod(s) if s.value.is_some()));
        if !(asked || trying) || self.chosen_at.is_some_and(|t| t <= phase.deadline_ns) {
            return vec![];
        }
        let ballots: Vec<String> = view
            .servers()
            .filter_map(|(i, n)| match n {
                Node::Synod(s) if s.ballot != Ballot::ZERO => Some(format!("n{i} at {}", s.ballot)),
                _ => None,
            })
            .collect();
        vec![format!(
            "progress: no value chosen by {}, {} after the faults healed; the proposers' last ballots: {}",
            fmt_ns(phase.deadline_ns),
            fmt_ns(phase.deadline_ns - phase.start_ns),
            ballots.join(", ")
        )]
    }
}

impl Checker<Node> for SynodChecks {
    fn name(&self) -> &'static str {
        "paxos-synod"
    }

    fn after_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<Finding> {
        self.check_event(view, node)
            .map(|m| Finding::new(m).nodes([node]))
    }

    fn at_end(&mut self, _view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let mut out = Vec::new();
        if let Some((d, b)) = self.chosen.chosen.get(&0) {
            let proposed = history
                .events
                .iter()
                .any(|e| e.kind == EventType::Invoke && e.value.as_u64() == Some(*d));
            if !proposed {
                out.push(format!(
                    "chosen was proposed: value {d} was chosen in ballot {b}, but no client proposed it"
                ));
            }
        }
        out.into_iter().map(Finding::from).collect()
    }

    fn at_liveness(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        history: &History,
    ) -> Vec<Finding> {
        let stuck: Vec<NodeId> = view
            .servers()
            .filter(|(_, n)| matches!(n, Node::Synod(s) if s.value.is_some()))
            .map(|(i, _)| i)
            .collect();
        self.progress(view, phase, history)
            .into_iter()
            .map(|m| Finding::liveness(m).nodes(stuck.clone()))
            .collect()
    }
}

impl SynodChecks {
    fn check_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<String> {
        let Some(Node::Synod(s)) = view.node(node) else {
            return None;
        };
        match self.chosen.record(node, &s.acceptor.recent) {
            Err(e) => return Some(e),
            Ok(newly) if !newly.is_empty() && self.chosen_at.is_none() => {
                self.chosen_at = Some(view.now);
                self.shared.borrow_mut().commands_chosen += 1;
            }
            Ok(_) => {}
        }
        let v = s.learned?;
        self.chosen.check_learned(node, 0, v)
    }
}

/// Multi-Paxos's invariants, and the numbers the metrics need (leaders, catch-up).
pub struct MultiChecks {
    chosen: Chosen,
    shared: Rc<RefCell<Shared>>,
    /// (client, seq) of each write that took effect, with its slot (looked up only).
    took_effect: LookupMap<(u32, u64), u64>,
    leaderless_since: Option<Nanos>,
    leader: Option<(Ballot, NodeId)>,
    /// Restarted servers catching up (the `catch_up_ms` metric).
    catch_up: CatchUp,
    /// The highest slot any replica applied.
    applied_max: u64,
    /// The last time a leader held office.
    leader_seen_at: Option<Nanos>,
    /// The highest slot chosen before the liveness phase began.
    top_before_phase: u64,
}

impl MultiChecks {
    /// The checks for `servers_count` servers.
    pub fn new(servers_count: usize, shared: Rc<RefCell<Shared>>) -> Self {
        MultiChecks {
            chosen: Chosen {
                majority: servers_count / 2 + 1,
                ..Chosen::default()
            },
            shared,
            took_effect: LookupMap::default(),
            leaderless_since: Some(0),
            leader: None,
            catch_up: CatchUp::new(servers_count),
            applied_max: 0,
            leader_seen_at: None,
            top_before_phase: 0,
        }
    }

    /// A leader exists when some up server leads with a ballot no up server has promised
    /// beyond; windows without one are measured for the comparison with Raft.
    fn track_leader(&mut self, view: &View<'_, Node>) {
        let mut max_promised = Ballot::ZERO;
        let mut leader = None;
        for (i, n) in view.servers() {
            if let Node::Multi(s) = n {
                max_promised = max_promised.max(s.acceptor.promised);
                if s.role == Role::Leader && leader.is_none_or(|(b, _)| b < s.ballot) {
                    leader = Some((s.ballot, i));
                }
            }
        }
        let leader = leader.filter(|(b, _)| *b >= max_promised);
        if leader.is_some() {
            self.leader_seen_at = Some(view.now);
        }
        if leader != self.leader {
            if let Some((b, i)) = leader {
                self.shared.borrow_mut().leaders.push((view.now, b, i));
            }
            self.leader = leader;
        }
        match (leader.is_some(), self.leaderless_since) {
            (false, None) => self.leaderless_since = Some(view.now),
            (true, Some(t)) => {
                self.leaderless_since = None;
                self.shared
                    .borrow_mut()
                    .leaderless_ms
                    .push((view.now - t) as f64 / 1e6);
            }
            _ => {}
        }
    }

    /// The progress predicate at the end of the liveness phase: a leader held office during
    /// the phase, and every up replica has applied every slot chosen before it began.
    pub fn progress(&mut self, view: &View<'_, Node>, phase: LivenessPhase) -> Vec<String> {
        let mut out = Vec::new();
        if self.leader_seen_at.is_none_or(|t| t < phase.start_ns) {
            out.push(format!(
                "progress: no leader from {}, when the faults healed, to {}",
                fmt_ns(phase.start_ns),
                fmt_ns(phase.deadline_ns)
            ));
        }
        // A replica stuck below a slot chosen before the phase is stalled (at a gap, or
        // never told); slots chosen during the phase may still be on their way.
        let top = self.top_before_phase;
        for (i, n) in view.servers() {
            let Node::Multi(s) = n else { continue };
            if s.replica.applied < top && !view.is_paused(i) {
                let gap = (s.replica.applied + 1..=top)
                    .find(|x| !self.chosen.chosen.contains_key(x))
                    .map(|g| format!(" (slot {g} was never chosen: a gap nobody filled)"))
                    .unwrap_or_default();
                out.push(format!(
                    "progress: n{i} applied slots only up to {} by {}, though slots up to {top} are chosen{gap}",
                    s.replica.applied,
                    fmt_ns(phase.deadline_ns)
                ));
            }
        }
        out
    }
}

impl Checker<Node> for MultiChecks {
    fn name(&self) -> &'static str {
        "paxos"
    }

    fn after_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<Finding> {
        self.check_event(view, node)
            .map(|m| Finding::new(m).nodes([node]))
    }

    fn at_liveness(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        self.progress(view, phase)
            .into_iter()
            .map(Finding::liveness)
            .collect()
    }
}

impl MultiChecks {
    fn check_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<String> {
        if node < view.servers_count() {
            let applied = |n: &Node| match n {
                Node::Multi(o) => Some(o.replica.applied),
                _ => None,
            };
            if let Some(ms) = self.catch_up.after_event(view, node, applied) {
                self.shared.borrow_mut().catch_up_ms.push(ms);
            }
        }
        self.track_leader(view);
        let Some(Node::Multi(s)) = view.node(node) else {
            return None;
        };
        match self.chosen.record(node, &s.acceptor.recent) {
            Err(e) => return Some(e),
            Ok(newly) => {
                if view.liveness().is_none_or(|p| view.now < p.start_ns) {
                    let top = newly.iter().max().copied().unwrap_or(0);
                    self.top_before_phase = self.top_before_phase.max(top);
                }
            }
        }
        for &(slot, digest) in &s.replica.recent_learned {
            if let Some(e) = self.chosen.check_learned(node, slot, digest) {
                return Some(e);
            }
        }
        for r in &s.replica.recent_applied {
            if let Some(e) = self.chosen.check_learned(node, r.slot, r.digest) {
                return Some(format!("applied {e}"));
            }
            if r.slot > self.applied_max {
                self.applied_max = r.slot;
                if r.client {
                    self.shared.borrow_mut().commands_chosen += 1;
                }
            }
            let Some(w) = r.fresh_write else { continue };
            match self.took_effect.get(&w) {
                Some(&slot) if slot != r.slot => {
                    return Some(format!(
                        "exactly once: client n{}'s command #{} took effect at slot {slot} and again at slot {} (n{node})",
                        w.0, w.1, r.slot
                    ));
                }
                Some(_) => {}
                None => {
                    self.took_effect.insert(w, r.slot);
                }
            }
        }
        None
    }
}
