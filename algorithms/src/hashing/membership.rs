//! Who is in the cluster, as each node sees it.
//!
//! Adding and removing servers is not an engine fault, so membership has two sources, both
//! visible in the scenario file:
//! - the algorithm's own schedule in `[params]`: `spares` start outside the cluster, and
//!   `[[params.changes]]` entries make servers `join` or `leave` (gracefully: a leaving server
//!   says goodbye and hands its keys on) at a given time;
//! - crashes: a crashed server stops sending heartbeats and drops out of every view after
//!   `suspect_after`; when it restarts it heartbeats again and rejoins. So scripted
//!   `crash`/`restart` faults and the nemesis's `crash` kind are leaves and joins.
//!
//! A member sends `Alive` to every node every `heartbeat`; a node keeps in its view the
//! servers heard from within `suspect_after` (and itself, while a member).

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use sim_core::scenario::NodeIndex;
use sim_core::time::{Duration, Nanos};

/// One scheduled membership change.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// When (each server's own clock).
    pub at: Duration,
    /// Servers that join.
    #[serde(default)]
    pub join: Vec<NodeIndex>,
    /// Servers that leave gracefully.
    #[serde(default)]
    pub leave: Vec<NodeIndex>,
}

/// The schedule: spares and changes.
#[derive(Clone, Debug, Default)]
pub struct Schedule {
    /// Servers that start outside the cluster.
    pub spares: BTreeSet<usize>,
    /// Changes in time order.
    pub changes: Vec<Change>,
}

impl Schedule {
    /// Builds a schedule (sorting the changes by time).
    pub fn new(spares: &[NodeIndex], changes: &[Change]) -> Schedule {
        let mut changes = changes.to_vec();
        changes.sort_by_key(|c| c.at);
        Schedule {
            spares: spares.iter().map(|n| n.0).collect(),
            changes,
        }
    }

    /// Whether `node` is meant to be a member at local time `t`.
    pub fn member_at(&self, node: usize, t: Nanos) -> bool {
        let mut member = !self.spares.contains(&node);
        for c in self.changes.iter().take_while(|c| c.at.0 <= t) {
            if c.join.iter().any(|n| n.0 == node) {
                member = true;
            }
            if c.leave.iter().any(|n| n.0 == node) {
                member = false;
            }
        }
        member
    }

    /// The scheduled times (after `t`) at which `node` joins or leaves.
    pub fn times_after(&self, node: usize, t: Nanos) -> Vec<Nanos> {
        self.changes
            .iter()
            .filter(|c| c.at.0 > t)
            .filter(|c| c.join.iter().chain(&c.leave).any(|n| n.0 == node))
            .map(|c| c.at.0)
            .collect()
    }

    /// The servers meant to be members at the start.
    pub fn initial(&self, servers: impl Iterator<Item = usize>) -> BTreeSet<usize> {
        servers.filter(|s| self.member_at(*s, 0)).collect()
    }
}

/// One node's view of the members.
#[derive(Clone, Debug)]
pub struct View {
    members: BTreeSet<usize>,
    last_heard: BTreeMap<usize, Nanos>,
    suspect_after: Nanos,
}

impl View {
    /// A view that starts with `initial`, all as if just heard at `now`.
    pub fn new(initial: BTreeSet<usize>, now: Nanos, suspect_after: Nanos) -> View {
        let last_heard = initial.iter().map(|m| (*m, now)).collect();
        View {
            members: initial,
            last_heard,
            suspect_after,
        }
    }

    /// The members, sorted.
    pub fn members(&self) -> &BTreeSet<usize> {
        &self.members
    }

    /// A heartbeat from `node` at local time `now`; true if it was not a member.
    pub fn heard(&mut self, node: usize, now: Nanos) -> bool {
        self.last_heard.insert(node, now);
        self.members.insert(node)
    }

    /// `node` left (said goodbye, or this node itself left); true if it was a member.
    pub fn remove(&mut self, node: usize) -> bool {
        self.last_heard.remove(&node);
        self.members.remove(&node)
    }

    /// Drops members not heard from within `suspect_after` (except `me`); true if any was.
    pub fn expire(&mut self, now: Nanos, me: Option<usize>) -> bool {
        let limit = self.suspect_after;
        let gone: Vec<usize> = self
            .members
            .iter()
            .copied()
            .filter(|m| Some(*m) != me)
            .filter(|m| {
                self.last_heard
                    .get(m)
                    .is_none_or(|t| now.saturating_sub(*t) > limit)
            })
            .collect();
        for m in &gone {
            self.remove(*m);
        }
        !gone.is_empty()
    }
}

/// The progress predicate of a membership built on heartbeats, for the liveness phase: once
/// the faults have healed, every node's view is `expected` (the servers up and meant to be
/// members). Returns the nodes whose view differs, with what they see; empty when converged.
pub fn disagreeing<'a>(
    expected: &BTreeSet<usize>,
    views: impl Iterator<Item = (usize, &'a BTreeSet<usize>)>,
) -> Vec<(usize, Vec<usize>)> {
    views
        .filter(|(_, v)| *v != expected)
        .map(|(n, v)| (n, v.iter().copied().collect()))
        .collect()
}

/// A liveness finding for nodes whose views had not converged on `expected` by the deadline.
pub fn not_converged(
    expected: &BTreeSet<usize>,
    wrong: &[(usize, Vec<usize>)],
    phase: sim_core::LivenessPhase,
) -> sim_core::Finding {
    let names = |m: &mut dyn Iterator<Item = usize>| {
        m.map(|x| format!("n{x}")).collect::<Vec<_>>().join(",")
    };
    let shown: Vec<String> = wrong
        .iter()
        .take(5)
        .map(|(n, v)| format!("n{n} sees {{{}}}", names(&mut v.iter().copied())))
        .collect();
    sim_core::Finding::liveness(format!(
        "membership did not converge: faults healed at {} but at {} {} node(s) still disagree with the members {{{}}}: {}{}",
        sim_core::time::fmt_ns(phase.start_ns),
        sim_core::time::fmt_ns(phase.deadline_ns),
        wrong.len(),
        names(&mut expected.iter().copied()),
        shown.join(", "),
        if wrong.len() > 5 { ", ..." } else { "" }
    ))
    .nodes(wrong.iter().map(|(n, _)| *n))
}
