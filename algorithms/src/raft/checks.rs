//! Raft's invariants, checked after every event over the whole cluster (the simulator sees
//! every node), and the end-of-run read check over the client history.
//!
//! - election safety: at most one leader per term;
//! - one vote per term: a server never votes for two candidates in one term, across crashes
//!   (the rule election safety rests on: votedFor is durable before a vote is granted);
//! - log matching: two logs holding an entry with the same index and term hold identical
//!   prefixes up to it (compared through each entry's chain hash);
//! - leader completeness: a new leader holds every entry committed before its term, and a
//!   committed entry is never replaced;
//! - state machine safety: no two servers apply different entries at one index;
//! - commit monotonicity: a server's commit index never moves back while it runs;
//! - exactly-once: no client command (client, seq) takes effect at two indexes;
//! - fresh reads (at the end): no read returns a value older than one that a write completed
//!   before the read began had already committed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::time::{fmt_ns, Nanos};
use sim_core::{
    Checker, EventType, Finding, History, LivenessPhase, Message, NodeId, Process, View,
};

use super::kv::{KvState, StateMachine};
use super::msg::{Command, Msg};
use super::server::{Role, Server};
use super::Node;
use crate::catch_up::CatchUp;

/// What the checkers learn during the run that the metrics need afterwards.
#[derive(Debug, Default)]
pub struct Shared {
    /// Every election won: (true time, term, node), in order.
    pub leaders: Vec<(Nanos, u64, NodeId)>,
    /// Lengths of the windows without a leader, in ms.
    pub leaderless_ms: Vec<f64>,
    /// (key, value) to the first committed index that writes it.
    pub value_index: BTreeMap<(u32, u64), u64>,
    /// Client commands committed.
    pub commands_committed: u64,
    /// Times (ms) a restarted server took to apply what the cluster had applied when it came
    /// back (the same measure as Paxos's `catch_up_ms`, [`CatchUp`]).
    pub catch_up_ms: Vec<f64>,
}

fn raft_server(n: &Node) -> Option<&Server> {
    match n {
        Node::Server(s) => Some(s),
        _ => None,
    }
}

/// The per-event invariants, over the Raft servers of a simulation whose nodes are `N` (Raft's
/// own [`Node`], or another algorithm's nodes some of which run a Raft server for state
/// machine `S`).
pub struct Invariants<N = Node, S: StateMachine = KvState, M = Msg> {
    get: fn(&N) -> Option<&Server<S, M>>,
    shared: Rc<RefCell<Shared>>,
    leader_of_term: BTreeMap<u64, NodeId>,
    /// Per server: the highest term in which it voted, and for whom.
    vote_of: Vec<(u64, Option<NodeId>)>,
    /// Chain hash of the committed entry at each index (index 1 at 0); 0 = not seen.
    committed: Vec<u64>,
    /// The term of the server that first showed each index committed: an upper bound of the
    /// term in which it was committed. Leader completeness binds only leaders of later terms
    /// (a leader of an older term may still be elected, late, without it).
    committed_term: Vec<u64>,
    /// Per server: (boot, highest commit index recorded).
    commit_seen: Vec<(u64, u64)>,
    /// Chain hash applied at each index (index 1 at 0); 0 = none yet.
    applied: Vec<u64>,
    /// (client, seq) of each write that took effect, with its index.
    took_effect: BTreeMap<(u32, u64), u64>,
    leaderless_since: Option<Nanos>,
    /// Progress in the liveness phase.
    progress: Progress,
    /// Restarted servers catching up (the `catch_up_ms` metric).
    catch_up: CatchUp,
}

/// What the liveness phase has seen: the commit index when it began, when a leader was first
/// seen in it and when an entry first committed past that index.
#[derive(Debug, Default)]
struct Progress {
    commit_base: Option<u64>,
    leader_at: Option<Nanos>,
    commit_at: Option<Nanos>,
}

impl Invariants {
    /// Invariants that report what metrics need into `shared`.
    pub fn new(shared: Rc<RefCell<Shared>>, servers_count: usize) -> Self {
        Invariants::over(shared, servers_count, raft_server)
    }
}

impl<N: Process, S: StateMachine, M: Message + From<Msg<S>>> Invariants<N, S, M> {
    /// Invariants over the nodes from which `get` extracts a Raft server.
    pub fn over(
        shared: Rc<RefCell<Shared>>,
        servers_count: usize,
        get: fn(&N) -> Option<&Server<S, M>>,
    ) -> Self {
        Invariants {
            get,
            shared,
            leader_of_term: BTreeMap::new(),
            vote_of: vec![(0, None); servers_count],
            committed: Vec::new(),
            committed_term: Vec::new(),
            commit_seen: vec![(0, 0); servers_count],
            applied: Vec::new(),
            took_effect: BTreeMap::new(),
            leaderless_since: Some(0),
            progress: Progress::default(),
            catch_up: CatchUp::new(servers_count),
        }
    }

    /// In the liveness phase: note when a leader appears and when anything new commits.
    fn track_progress(&mut self, view: &View<'_, N>) {
        if view.liveness().is_none() {
            return;
        }
        let mut max_term = 0;
        let mut leader_term = None;
        let mut commit = 0;
        for (_, n) in view.servers() {
            if let Some(s) = (self.get)(n) {
                max_term = max_term.max(s.term);
                commit = commit.max(s.commit);
                if s.role == Role::Leader {
                    leader_term = leader_term.max(Some(s.term));
                }
            }
        }
        let p = &mut self.progress;
        let base = *p.commit_base.get_or_insert(commit);
        if leader_term == Some(max_term) {
            p.leader_at.get_or_insert(view.now);
        }
        if commit > base {
            p.commit_at.get_or_insert(view.now);
        }
    }

    fn track_leaderless(&mut self, view: &View<'_, N>) {
        let mut max_term = 0;
        let mut leader_term = None;
        for (_, n) in view.servers() {
            if let Some(s) = (self.get)(n) {
                max_term = max_term.max(s.term);
                if s.role == Role::Leader {
                    leader_term = leader_term.max(Some(s.term));
                }
            }
        }
        let has_leader = leader_term == Some(max_term);
        match (has_leader, self.leaderless_since) {
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

    fn record_commits(&mut self, s: &Server<S, M>, node: NodeId) -> Option<String> {
        let (boot, seen) = self.commit_seen[node];
        let from = if boot == s.boot {
            if s.commit < seen {
                return Some(format!(
                    "commit monotonicity: n{node}'s commit index moved back from {seen} to {}",
                    s.commit
                ));
            }
            seen + 1
        } else {
            s.snap.index + 1
        };
        for i in from..=s.commit {
            let Some(chain) = s.chain_at(i) else { continue };
            let slot = (i - 1) as usize;
            if self.committed.len() <= slot {
                self.committed.resize(slot + 1, 0);
                self.committed_term.resize(slot + 1, 0);
            }
            let known = self.committed[slot];
            if known == 0 {
                self.committed[slot] = chain;
                self.committed_term[slot] = s.term;
                if let Some(e) = s.entry_at(i) {
                    if let Command::Client { op, .. } = &e.cmd {
                        let mut sh = self.shared.borrow_mut();
                        sh.commands_committed += 1;
                        if let Some(kv) = S::written(op) {
                            sh.value_index.entry(kv).or_insert(i);
                        }
                    }
                }
            } else if known != chain {
                return Some(format!(
                    "leader completeness: the entry committed at index {i} was replaced: n{node} (term {}) commits a different entry there (term {})",
                    s.term,
                    s.term_at(i).unwrap_or(0)
                ));
            }
        }
        self.commit_seen[node] = (s.boot, s.commit);
        None
    }

    /// One vote per term: once a server has voted in a term, it votes for no one else in it,
    /// even after a crash and restart.
    fn check_vote(&mut self, s: &Server<S, M>, node: NodeId) -> Option<String> {
        let vote = s.voted_for()?;
        let seen = self.vote_of.get_mut(node)?;
        match *seen {
            (term, Some(earlier)) if term == s.term && earlier != vote => Some(format!(
                "one vote per term: n{node} voted for n{earlier} and then for n{vote} in term {term} (a vote must be on disk before it is granted, or a restart forgets it)"
            )),
            (term, _) if term > s.term => None,
            _ => {
                *seen = (s.term, Some(vote));
                None
            }
        }
    }

    fn check_new_leader(&mut self, s: &Server<S, M>, node: NodeId, now: Nanos) -> Option<String> {
        match self.leader_of_term.get(&s.term) {
            Some(&other) if other != node => {
                return Some(format!(
                    "election safety: n{node} and n{other} are both leaders of term {}",
                    s.term
                ))
            }
            Some(_) => return None,
            None => {}
        }
        self.leader_of_term.insert(s.term, node);
        self.shared.borrow_mut().leaders.push((now, s.term, node));
        // The newest entry committed in an earlier term: commit terms grow with the index, since
        // committing an index commits every index before it.
        let c = (0..self.committed.len())
            .rev()
            .find(|&c| self.committed[c] != 0 && self.committed_term[c] < s.term)?;
        let index = c as u64 + 1;
        if s.last_index() < index {
            return Some(format!(
                "leader completeness: n{node} leads term {} but its log ends at {}, before the committed entry at {index}",
                s.term,
                s.last_index()
            ));
        }
        match s.chain_at(index) {
            Some(h) if h != self.committed[c] => Some(format!(
                "leader completeness: n{node} leads term {} without the entry committed at index {index} (it holds one of term {})",
                s.term,
                s.term_at(index).unwrap_or(0)
            )),
            _ => None,
        }
    }
}

impl<N: Process, S: StateMachine, M: Message + From<Msg<S>>> Checker<N> for Invariants<N, S, M> {
    fn name(&self) -> &'static str {
        "raft-invariants"
    }

    fn after_event(&mut self, view: &View<'_, N>, node: NodeId) -> Option<Finding> {
        self.track_progress(view);
        if node < view.servers_count() {
            let get = self.get;
            if let Some(ms) = self
                .catch_up
                .after_event(view, node, |n| get(n).map(|s| s.applied))
            {
                self.shared.borrow_mut().catch_up_ms.push(ms);
            }
        }
        self.invariants(view, node)
            .map(|m| Finding::new(m).nodes([node]))
    }

    /// Raft's progress after the heal: a leader is elected and a new entry commits.
    fn at_liveness(
        &mut self,
        view: &View<'_, N>,
        phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        let within = fmt_ns(phase.deadline_ns - phase.start_ns);
        let healed = fmt_ns(phase.start_ns);
        let servers: Vec<NodeId> = view.servers().map(|(i, _)| i).collect();
        let terms = view
            .servers()
            .filter_map(|(i, n)| {
                (self.get)(n).map(|s| format!("n{i} term {} {:?}", s.term, s.role))
            })
            .collect::<Vec<_>>()
            .join(", ");
        let p = &self.progress;
        if p.leader_at.is_none() {
            return vec![Finding::liveness(format!(
                "no leader: in the {within} after the faults healed at {healed} no server was elected leader of the highest term (at the deadline: {terms})"
            ))
            .nodes(servers)];
        }
        if p.commit_at.is_none() {
            return vec![Finding::liveness(format!(
                "no commit: a leader was elected at {} but no new entry committed past index {} by {} (at the deadline: {terms})",
                fmt_ns(p.leader_at.unwrap_or(0)),
                p.commit_base.unwrap_or(0),
                fmt_ns(phase.deadline_ns)
            ))
            .nodes(servers)];
        }
        Vec::new()
    }
}

impl<N: Process, S: StateMachine, M: Message + From<Msg<S>>> Invariants<N, S, M> {
    /// Every Raft invariant after an event at `node`: the first one broken, explained.
    fn invariants(&mut self, view: &View<'_, N>, node: NodeId) -> Option<String> {
        self.track_leaderless(view);
        let s = view.node(node).and_then(self.get)?;
        if let Some(v) = self.check_vote(s, node) {
            return Some(v);
        }
        // Commits first, so that a leader elected in this event is judged against them.
        if let Some(v) = self.record_commits(s, node) {
            return Some(v);
        }
        if s.role == Role::Leader {
            if let Some(v) = self.check_new_leader(s, node, view.now) {
                return Some(v);
            }
        }
        for rec in &s.applied_now {
            let slot = (rec.index - 1) as usize;
            if self.applied.len() <= slot {
                self.applied.resize(slot + 1, 0);
            }
            let known = self.applied[slot];
            if known == 0 {
                self.applied[slot] = rec.chain;
            } else if known != rec.chain {
                return Some(format!(
                    "state machine safety: n{node} applies at index {} an entry (term {}) different from the one another server applied there",
                    rec.index,
                    s.term_at(rec.index).unwrap_or(0)
                ));
            }
            if let Some(cs) = rec.fresh_write {
                match self.took_effect.get(&cs) {
                    Some(&i) if i != rec.index => {
                        return Some(format!(
                            "exactly-once: command {} of client n{} took effect twice, at indexes {i} and {}",
                            cs.1, cs.0, rec.index
                        ))
                    }
                    Some(_) => {}
                    None => {
                        self.took_effect.insert(cs, rec.index);
                    }
                }
            }
        }
        // Log matching, at this server's last and commit indexes against every other log.
        for (other, n) in view.servers() {
            let Some(o) = (self.get)(n) else { continue };
            if other == node {
                continue;
            }
            for i in [s.last_index(), s.commit] {
                if let (Some(a), Some(b)) = (s.term_at(i), o.term_at(i)) {
                    if a == b && s.chain_at(i) != o.chain_at(i) {
                        return Some(format!(
                            "log matching: n{node} and n{other} hold entries of term {a} at index {i} with different histories before them"
                        ));
                    }
                }
            }
        }
        None
    }
}

/// At the end: no read returns a value older than a write that completed before the read
/// began. Writes are ordered by the committed log, which the simulator sees whole. Sound only
/// when every write writes a fresh value (the workload's default).
pub struct FreshReads {
    shared: Rc<RefCell<Shared>>,
}

impl FreshReads {
    /// A check over the values recorded in `shared`.
    pub fn new(shared: Rc<RefCell<Shared>>) -> Self {
        FreshReads { shared }
    }
}

impl Checker<Node> for FreshReads {
    fn name(&self) -> &'static str {
        "raft-fresh-reads"
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let sh = self.shared.borrow();
        let key_of = |k: &Option<String>| -> u32 {
            k.as_deref()
                .and_then(|k| k.trim_start_matches('k').parse().ok())
                .unwrap_or(0)
        };
        // Per process: the open invocation (position, f, key, argument).
        let mut open: BTreeMap<u64, (usize, &str, u32, &serde_json::Value, u64)> = BTreeMap::new();
        // Per key: completed writes (completion position, committed index).
        let mut writes: BTreeMap<u32, Vec<(usize, u64)>> = BTreeMap::new();
        // Completed reads: (invocation position, key, value, invocation time, process).
        let mut reads: Vec<(usize, u32, Option<u64>, u64, u64)> = Vec::new();
        for (pos, e) in history.events.iter().enumerate() {
            match e.kind {
                EventType::Invoke => {
                    open.insert(
                        e.process,
                        (pos, e.f.as_str(), key_of(&e.key), &e.value, e.time_ns),
                    );
                }
                EventType::Ok => {
                    let Some((ipos, f, key, arg, t)) = open.remove(&e.process) else {
                        continue;
                    };
                    match f {
                        "read" | "get" => reads.push((ipos, key, e.value.as_u64(), t, e.process)),
                        _ => {
                            let v = if f == "cas" {
                                arg.get(1).and_then(|v| v.as_u64())
                            } else {
                                arg.as_u64()
                            };
                            if let Some(idx) = v.and_then(|v| sh.value_index.get(&(key, v))) {
                                writes.entry(key).or_default().push((pos, *idx));
                            }
                        }
                    }
                }
                _ => {
                    open.remove(&e.process);
                }
            }
        }
        // Prefix maxima of committed index by completion position.
        let mut prefix: BTreeMap<u32, Vec<(usize, u64)>> = BTreeMap::new();
        for (k, mut ws) in writes {
            ws.sort_unstable();
            let mut m = 0;
            let v: Vec<(usize, u64)> = ws
                .into_iter()
                .map(|(p, i)| {
                    m = m.max(i);
                    (p, m)
                })
                .collect();
            prefix.insert(k, v);
        }
        let mut out = Vec::new();
        for (ipos, key, value, t, process) in reads {
            let read_index = match value {
                None => 0,
                Some(v) => match sh.value_index.get(&(key, v)) {
                    Some(i) => *i,
                    None => {
                        let client = view.client_of(process);
                        out.push(
                            Finding::new(format!(
                                "n{client} (client {}) read k{key} = {v} at {}, a value no committed entry wrote",
                                client - view.servers_count(),
                                fmt_ns(t)
                            ))
                            .nodes([client])
                            .ops([ipos])
                            .keys([format!("k{key}")])
                            .values([v.into()]),
                        );
                        continue;
                    }
                },
            };
            let Some(ws) = prefix.get(&key) else { continue };
            let n = ws.partition_point(|(p, _)| *p < ipos);
            if n == 0 {
                continue;
            }
            let newest = ws[n - 1].1;
            if read_index < newest {
                let client = view.client_of(process);
                out.push(
                    Finding::new(format!(
                        "stale read: n{client} (client {}) read k{key} = {} at {}, but the write committed at index {newest} had already completed (the value read was written at index {read_index})",
                        client - view.servers_count(),
                        value.map(|v| v.to_string()).unwrap_or_else(|| "nothing".into()),
                        fmt_ns(t)
                    ))
                    .nodes([client])
                    .ops([ipos, ws[n - 1].0])
                    .keys([format!("k{key}")]),
                );
            }
            if out.len() >= 3 {
                break;
            }
        }
        out
    }
}

/// One up server's view of the configuration at the end of a run, for [`membership_end`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndConfig {
    /// The server.
    pub node: NodeId,
    /// Its commit index.
    pub commit: u64,
    /// The voting members as of its commit index.
    pub members: Vec<NodeId>,
    /// How many scripted changes that configuration reflects.
    pub changes_done: u32,
}

fn fmt_members(m: &[NodeId]) -> String {
    let names: Vec<String> = m.iter().map(|n| format!("n{n}")).collect();
    format!("{{{}}}", names.join(", "))
}

/// The end-of-run membership check over the up servers' committed configurations: the server
/// that committed furthest gives the last committed configuration, every up member of it must
/// have committed the same one (a removed server may never learn that its removal committed, so
/// non-members are not asked), and it must be `target`, where the scripted changes give one.
pub fn membership_end(ends: &[EndConfig], target: Option<&(Vec<NodeId>, u32)>) -> Vec<String> {
    let Some(reference) = ends
        .iter()
        .max_by_key(|e| (e.commit, std::cmp::Reverse(e.node)))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in ends {
        if !reference.members.contains(&e.node) {
            continue;
        }
        if (&e.members, e.changes_done) != (&reference.members, reference.changes_done) {
            out.push(format!(
                "membership: at the end n{} (commit index {}) has committed configuration {} after {} scripted changes, but n{} (commit index {}) has committed {} after {}",
                e.node,
                e.commit,
                fmt_members(&e.members),
                e.changes_done,
                reference.node,
                reference.commit,
                fmt_members(&reference.members),
                reference.changes_done
            ));
        }
    }
    if let Some((members, changes)) = target {
        if (&reference.members, reference.changes_done) != (members, *changes) {
            out.push(format!(
                "membership: the last committed configuration (n{}, commit index {}) is {} after {} scripted changes, not the scripted target {} after {}",
                reference.node,
                reference.commit,
                fmt_members(&reference.members),
                reference.changes_done,
                fmt_members(members),
                changes
            ));
        }
    }
    out
}

/// At the end, once the run has been quiet: the up servers agree on the committed
/// configuration and it is the one the scenario's scripted changes lead to (see
/// [`membership_end`]).
pub struct MembershipEnd {
    target: Option<(Vec<NodeId>, u32)>,
}

impl MembershipEnd {
    /// A check against `target` (members, changes), or agreement only when it is `None`.
    pub fn new(target: Option<(Vec<NodeId>, u32)>) -> Self {
        MembershipEnd { target }
    }
}

impl Checker<Node> for MembershipEnd {
    fn name(&self) -> &'static str {
        "raft-membership-end"
    }

    fn at_end(&mut self, view: &View<'_, Node>, _history: &History) -> Vec<Finding> {
        let ends: Vec<EndConfig> = view
            .servers()
            .filter(|(id, _)| !view.is_paused(*id))
            .filter_map(|(id, n)| raft_server(n).map(|s| (id, s)))
            .map(|(node, s)| {
                let (members, changes_done) = s.committed_config();
                EndConfig {
                    node,
                    commit: s.commit,
                    members,
                    changes_done,
                }
            })
            .collect();
        membership_end(&ends, self.target.as_ref())
            .into_iter()
            .map(Finding::from)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(node: NodeId, commit: u64, members: &[NodeId], changes_done: u32) -> EndConfig {
        EndConfig {
            node,
            commit,
            members: members.to_vec(),
            changes_done,
        }
    }

    #[test]
    fn membership_end_passes_agreeing_members_and_ignores_removed_servers() {
        let target = (vec![2, 3, 4], 4);
        let ends = [
            // n0 was removed and never heard that its removal committed.
            end(0, 40, &[0, 2, 3, 4], 3),
            end(2, 57, &[2, 3, 4], 4),
            end(3, 57, &[2, 3, 4], 4),
            end(4, 57, &[2, 3, 4], 4),
        ];
        assert!(membership_end(&ends, Some(&target)).is_empty());
    }

    #[test]
    fn membership_end_flags_disagreement_and_a_missed_target() {
        let target = (vec![2, 3, 4], 4);
        let ends = [
            end(2, 57, &[2, 3, 4], 4),
            end(3, 50, &[1, 2, 3, 4], 3),
            end(4, 57, &[2, 3, 4], 4),
        ];
        let v = membership_end(&ends, Some(&target));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains(
                "n3 (commit index 50) has committed configuration {n1, n2, n3, n4} after 3"
            ),
            "{}",
            v[0]
        );
        let short = [end(2, 57, &[1, 2, 3, 4], 3), end(3, 57, &[1, 2, 3, 4], 3)];
        let v = membership_end(&short, Some(&target));
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].contains("not the scripted target {n2, n3, n4} after 4"),
            "{}",
            v[0]
        );
        // Without a target only agreement is checked.
        assert!(membership_end(&short, None).is_empty());
    }
}
