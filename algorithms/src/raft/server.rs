//! A Raft server: elections, replication, commitment, persistence, snapshots, membership
//! changes and the three ways of serving reads.
//!
//! Durable state is `hard` (currentTerm and votedFor), one key per log entry (`e{index}`),
//! `last` (the last index written) and `snap` (the latest snapshot), each synced before any
//! reply that depends on it. Everything else is rebuilt after a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::rc::Rc;

use rand::Rng;
use sim_core::time::Nanos;
use sim_core::{Ctx, Message, NodeId, TimerId};

use super::kv::{Applied, KvState, StateMachine};
use super::msg::{Command, Entry, Msg, Snapshot};
use super::{Params, RaftBug, ReadMode};

/// The timer that starts an election when the leader falls silent.
const ELECTION_TIMER: u64 = 1;
/// The periodic timer: heartbeats (leader), vote resends (candidate), compaction (all).
const TICK_TIMER: u64 = 2;
/// The leader's CheckQuorum timer.
const QUORUM_TIMER: u64 = 3;

/// A server's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes: would the others vote for me?
    PreCandidate,
    /// Asking for votes in a new term.
    Candidate,
    /// Leads its term.
    Leader,
}

/// One entry applied during the current callback, for the checkers.
#[derive(Clone, Copy, Debug)]
pub struct AppliedRecord {
    /// The index.
    pub index: u64,
    /// The entry's chain hash.
    pub chain: u64,
    /// For a client write that took effect: (client, seq).
    pub fresh_write: Option<(u32, u64)>,
}

/// A read waiting for its read index to be applied and, unless leased, for leadership to be
/// confirmed by a majority.
#[derive(Clone, Debug)]
struct PendingRead<Op> {
    client: NodeId,
    req: u64,
    op: Op,
    read_index: u64,
    round: u64,
}

/// A Raft server driving the state machine `S`, in a simulation whose messages are `M` (Raft's
/// own [`Msg`], or a larger type that wraps it).
pub struct Server<S: StateMachine = KvState, M = Msg<KvState>> {
    pub(crate) p: Rc<Params>,
    pub(crate) id: NodeId,
    n: usize,
    // Durable state (mirrored in storage).
    pub(crate) term: u64,
    voted_for: Option<NodeId>,
    /// Entries after the snapshot: `log[k]` is index `snap.index + 1 + k`.
    pub(crate) log: Vec<Entry<S>>,
    pub(crate) snap: Rc<Snapshot<S>>,
    /// The newest snapshot, not yet used to cut the log.
    pending_snap: Option<Rc<Snapshot<S>>>,
    // Volatile state.
    pub(crate) boot: u64,
    pub(crate) commit: u64,
    pub(crate) applied: u64,
    kv: S,
    pub(crate) members: Vec<NodeId>,
    changes_done: u32,
    config_index: u64,
    pub(crate) role: Role,
    leader: Option<NodeId>,
    election_timer: Option<TimerId>,
    votes: BTreeSet<NodeId>,
    next_index: Vec<u64>,
    match_index: Vec<u64>,
    acked_round: Vec<u64>,
    active: Vec<bool>,
    round: u64,
    round_sent_local: BTreeMap<u64, Nanos>,
    /// The same rounds' departures on the monotonic clock, which clock steps do not move
    /// (for services that lend out leadership, such as a lock service's session pings).
    round_sent_mono: BTreeMap<u64, Nanos>,
    lease_until_local: Nanos,
    heard_leader_local: Option<Nanos>,
    leader_since_index: u64,
    pending: BTreeMap<u64, (NodeId, u64, u32, u64)>,
    reads: Vec<PendingRead<S::Op>>,
    /// Entries applied during the current callback (cleared at its start).
    pub applied_now: Vec<AppliedRecord>,
    _msg: PhantomData<fn() -> M>,
}

fn entry_key(index: u64) -> String {
    format!("e{index}")
}

/// The report hook for the log (drawn by reports/src/raft_log.rs): a `log.term` point of
/// value `index * LOG_TERM_SCALE + term` says "this server's log now holds an entry of `term`
/// at `index`, and ends there"; `log.commit` is the commit index. Terms at or past the scale
/// are clamped (the picture shows them as the largest term).
pub const LOG_TERM_SCALE: u64 = 1 << 24;

/// Records the entry at `index` as the end of this server's log, for the report's log panel.
/// Only when a report may be drawn (the trace is kept): a point per entry costs a tenth of a
/// long run's time and memory otherwise.
fn report_entry<M: Message>(ctx: &mut Ctx<'_, M>, index: u64, term: u64) {
    debug_assert!(index < 1 << 29, "the encoding stays exact in an f64");
    if !ctx.keeps_trace() {
        return;
    }
    ctx.series(
        "log.term",
        (index * LOG_TERM_SCALE + term.min(LOG_TERM_SCALE - 1)) as f64,
    );
}

/// Records the commit index for the report's log panel (only when the trace is kept, as
/// [`report_entry`]).
fn report_commit<M: Message>(ctx: &mut Ctx<'_, M>, commit: u64) {
    if ctx.keeps_trace() {
        ctx.series("log.commit", commit as f64);
    }
}

impl<S: StateMachine, M: Message + From<Msg<S>>> Server<S, M> {
    /// A fresh server before `on_start` loads its durable state.
    pub fn new(p: Rc<Params>, id: NodeId, servers_count: usize) -> Self {
        let initial = p
            .initial_members
            .unwrap_or(servers_count)
            .min(servers_count);
        let members: Vec<NodeId> = (0..initial).collect();
        Server {
            n: servers_count,
            id,
            term: 0,
            voted_for: None,
            log: Vec::new(),
            snap: Rc::new(Snapshot {
                index: 0,
                term: 0,
                chain: 0,
                members: members.clone(),
                changes_done: 0,
                kv: S::default(),
            }),
            pending_snap: None,
            boot: 0,
            commit: 0,
            applied: 0,
            kv: S::default(),
            members,
            changes_done: 0,
            config_index: 0,
            role: Role::Follower,
            leader: None,
            election_timer: None,
            votes: BTreeSet::new(),
            next_index: vec![1; servers_count],
            match_index: vec![0; servers_count],
            acked_round: vec![0; servers_count],
            active: vec![false; servers_count],
            round: 0,
            round_sent_local: BTreeMap::new(),
            round_sent_mono: BTreeMap::new(),
            lease_until_local: 0,
            heard_leader_local: None,
            leader_since_index: 0,
            pending: BTreeMap::new(),
            reads: Vec::new(),
            applied_now: Vec::new(),
            _msg: PhantomData,
            p,
        }
    }

    /// Sends one of Raft's messages, wrapped in the simulation's message type.
    fn send(ctx: &mut Ctx<'_, M>, to: NodeId, msg: Msg<S>) {
        ctx.send(to, M::from(msg));
    }

    fn bug(&self, b: RaftBug) -> bool {
        self.p.bug == Some(b)
    }

    // ---- the log ------------------------------------------------------------------------

    /// Index of the last entry (the snapshot's when the log is empty).
    pub fn last_index(&self) -> u64 {
        self.snap.index + self.log.len() as u64
    }

    fn last_term(&self) -> u64 {
        self.log.last().map(|e| e.term).unwrap_or(self.snap.term)
    }

    /// A field of the entry at `index` (the snapshot's own value at its index), if this server
    /// still knows it.
    fn known_at(&self, index: u64, at_snap: u64, field: impl Fn(&Entry<S>) -> u64) -> Option<u64> {
        if index == self.snap.index {
            Some(at_snap)
        } else if index > self.snap.index && index <= self.last_index() {
            Some(field(&self.log[(index - self.snap.index - 1) as usize]))
        } else {
            None
        }
    }

    /// The term of the entry at `index`, if this server still knows it.
    /// The candidate this server voted for in its current term, if any.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }

    pub fn term_at(&self, index: u64) -> Option<u64> {
        self.known_at(index, self.snap.term, |e| e.term)
    }

    /// The chain hash at `index`, if this server still knows it.
    pub fn chain_at(&self, index: u64) -> Option<u64> {
        self.known_at(index, self.snap.chain, |e| e.chain)
    }

    /// The entry at `index`, if it is in the log (not compacted).
    pub fn entry_at(&self, index: u64) -> Option<&Entry<S>> {
        if index > self.snap.index && index <= self.last_index() {
            Some(&self.log[(index - self.snap.index - 1) as usize])
        } else {
            None
        }
    }

    /// The configuration as of the commit index: the members and how many scripted changes
    /// it reflects (the newest configuration entry at or before `commit`, or the snapshot's).
    pub fn committed_config(&self) -> (Vec<NodeId>, u32) {
        let from = self.snap.index + 1;
        for i in (from..=self.commit.min(self.last_index())).rev() {
            if let Some(Entry {
                cmd:
                    Command::Config {
                        members,
                        changes_done,
                    },
                ..
            }) = self.entry_at(i)
            {
                return (members.clone(), *changes_done);
            }
        }
        (self.snap.members.clone(), self.snap.changes_done)
    }

    fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }

    fn is_member(&self) -> bool {
        self.members.contains(&self.id)
    }

    /// A configuration entry takes effect as soon as it is in the log (single-server changes,
    /// Raft dissertation 4.1), committed or not.
    fn adopt_config(&mut self, cmd: &Command<S>, index: u64) {
        if let Command::Config {
            members,
            changes_done,
        } = cmd
        {
            self.members = members.clone();
            self.changes_done = *changes_done;
            self.config_index = index;
        }
    }

    /// Appends entries at the leader, persisting them.
    fn leader_append(&mut self, ctx: &mut Ctx<'_, M>, cmd: Command<S>) -> u64 {
        let prev = self.log.last().map(|e| e.chain).unwrap_or(self.snap.chain);
        let e = Entry::new(self.term, cmd, prev);
        let index = self.last_index() + 1;
        self.adopt_config(&e.cmd, index);
        ctx.storage().put_json(&entry_key(index), &e);
        ctx.storage().put_json("last", &index);
        ctx.storage().sync();
        report_entry(ctx, index, e.term);
        self.log.push(e);
        self.match_index[self.id] = index;
        if self.bug(RaftBug::ApplyBeforeCommit) {
            self.apply_up_to(ctx, index);
        }
        index
    }

    /// Truncates the log after `keep_last` and appends `entries`, then persists and syncs.
    fn replace_suffix(&mut self, ctx: &mut Ctx<'_, M>, keep_last: u64, entries: &[Entry<S>]) {
        let old_last = self.last_index();
        let truncated = keep_last < old_last;
        self.log.truncate((keep_last - self.snap.index) as usize);
        let st = ctx.storage();
        for (k, e) in entries.iter().enumerate() {
            st.put_json(&entry_key(keep_last + 1 + k as u64), e);
        }
        self.log.extend_from_slice(entries);
        let new_last = self.last_index();
        for i in new_last + 1..=old_last {
            st.delete(&entry_key(i));
        }
        st.put_json("last", &new_last);
        st.sync();
        for (k, e) in entries.iter().enumerate() {
            report_entry(ctx, keep_last + 1 + k as u64, e.term);
        }
        if entries.is_empty() && truncated {
            report_entry(ctx, keep_last, self.term_at(keep_last).unwrap_or(0));
        }
        if truncated && self.config_index > keep_last {
            self.recompute_config();
        }
        for (k, e) in entries.iter().enumerate() {
            self.adopt_config(&e.cmd, keep_last + 1 + k as u64);
        }
        if truncated && self.applied > new_last.min(keep_last) {
            // Only an entry applied before it was committed can be truncated; with the
            // apply_before_commit bug that is how two different commands get applied at
            // one index, which the state-machine-safety check catches.
            self.applied = keep_last;
        }
    }

    /// The latest configuration in the log (or the snapshot's).
    fn recompute_config(&mut self) {
        self.members = self.snap.members.clone();
        self.changes_done = self.snap.changes_done;
        self.config_index = self.snap.index;
        let newest = self
            .log
            .iter()
            .enumerate()
            .rev()
            .find(|(_, e)| matches!(e.cmd, Command::Config { .. }))
            .map(|(k, e)| (self.snap.index + 1 + k as u64, e.cmd.clone()));
        if let Some((index, cmd)) = newest {
            self.adopt_config(&cmd, index);
        }
    }

    // ---- persistence --------------------------------------------------------------------

    fn persist_hard(&mut self, ctx: &mut Ctx<'_, M>) {
        ctx.storage().put_json("hard", &(self.term, self.voted_for));
        ctx.storage().sync();
    }

    fn load(&mut self, ctx: &mut Ctx<'_, M>) {
        let st = ctx.storage();
        self.boot = st.get_json::<u64>("boot").unwrap_or(0) + 1;
        st.put_json("boot", &self.boot);
        st.sync();
        if let Some(s) = st.get_json::<Snapshot<S>>("snap") {
            self.snap = Rc::new(s);
        }
        if let Some((term, vote)) = st.get_json::<(u64, Option<NodeId>)>("hard") {
            self.term = term;
            self.voted_for = vote;
        }
        let last = st.get_json::<u64>("last").unwrap_or(0);
        let from = self.snap.index + 1;
        let mut log = Vec::new();
        for i in from..=last {
            match st.get_json::<Entry<S>>(&entry_key(i)) {
                Some(e) => log.push(e),
                None => break,
            }
        }
        self.log = log;
        self.kv = self.snap.kv.clone();
        self.commit = self.snap.index;
        self.applied = self.snap.index;
        self.recompute_config();
        // What survived on disk is the log from here on (unsynced writes may be gone).
        if self.last_index() > 0 {
            report_entry(ctx, self.last_index(), self.last_term());
        }
        report_commit(ctx, self.commit);
    }

    // ---- timers and roles ---------------------------------------------------------------

    fn reset_election_timer(&mut self, ctx: &mut Ctx<'_, M>) {
        self.arm_election_timer(ctx, self.p.election_timeout_max.0);
    }

    fn arm_election_timer(&mut self, ctx: &mut Ctx<'_, M>, max_ns: Nanos) {
        if let Some(t) = self.election_timer.take() {
            ctx.cancel_timer(t);
        }
        let lo = self.p.election_timeout_min.0;
        // The bug drops the randomness of the regular range; a cold start's wider draw
        // (startup_timeout_max) is kept, so that a first leader can still be elected.
        let fixed = self.p.bug == Some(RaftBug::FixedElectionTimeout)
            && max_ns == self.p.election_timeout_max.0;
        let hi = if fixed { lo } else { max_ns.max(lo) };
        let after = if hi > lo {
            ctx.rng().random_range(lo..=hi)
        } else {
            lo
        };
        self.election_timer = Some(ctx.set_timer(after, ELECTION_TIMER));
    }

    fn set_term(&mut self, ctx: &mut Ctx<'_, M>, term: u64) {
        if term != self.term {
            self.term = term;
            self.voted_for = None;
            ctx.series("term", term as f64);
        }
    }

    fn become_follower(&mut self, ctx: &mut Ctx<'_, M>, term: u64, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        let term_changed = term != self.term;
        self.set_term(ctx, term);
        if term_changed {
            self.persist_hard(ctx);
        }
        self.role = Role::Follower;
        self.leader = leader;
        if was_leader {
            ctx.series("state.leader", 0.0);
            ctx.count("raft.step_downs", 1.0);
            // Clients waiting on this leader retry elsewhere; their commands may still
            // commit, and deduplication makes the retry safe.
            let hint = self.leader;
            for (_, (client, req, _, _)) in std::mem::take(&mut self.pending) {
                Self::send(
                    ctx,
                    client,
                    Msg::Reply {
                        req,
                        result: S::not_leader(hint),
                    },
                );
            }
            for r in std::mem::take(&mut self.reads) {
                Self::send(
                    ctx,
                    r.client,
                    Msg::Reply {
                        req: r.req,
                        result: S::not_leader(hint),
                    },
                );
            }
        }
    }

    fn up_to_date(&self, last_log_index: u64, last_log_term: u64) -> bool {
        (last_log_term, last_log_index) >= (self.last_term(), self.last_index())
    }

    /// Whether this server heard from a live leader within the minimum election timeout:
    /// then it refuses to help depose that leader (pre-votes always; votes with
    /// CheckQuorum or lease reads, which rely on it).
    fn leader_recently_heard(&self, ctx: &Ctx<'_, M>) -> bool {
        match self.heard_leader_local {
            Some(t) if self.leader.is_some() => {
                ctx.now_local().saturating_sub(t) < self.p.election_timeout_min.0
            }
            _ => false,
        }
    }

    fn start_election(&mut self, ctx: &mut Ctx<'_, M>) {
        if !self.is_member() {
            self.reset_election_timer(ctx);
            return;
        }
        self.reset_election_timer(ctx);
        self.votes.clear();
        self.votes.insert(self.id);
        if self.p.pre_vote {
            self.role = Role::PreCandidate;
            ctx.count("raft.pre_votes", 1.0);
            self.leader = None;
            if self.votes.len() >= self.majority() {
                self.become_candidate(ctx);
                return;
            }
            self.send_vote_requests(ctx, true);
        } else {
            self.become_candidate(ctx);
        }
    }

    fn become_candidate(&mut self, ctx: &mut Ctx<'_, M>) {
        let t = self.term + 1;
        self.set_term(ctx, t);
        self.voted_for = Some(self.id);
        self.persist_hard(ctx);
        self.role = Role::Candidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.id);
        ctx.count("raft.elections", 1.0);
        self.reset_election_timer(ctx);
        if self.votes.len() >= self.majority() {
            self.become_leader(ctx);
            return;
        }
        self.send_vote_requests(ctx, false);
    }

    fn send_vote_requests(&mut self, ctx: &mut Ctx<'_, M>, pre_vote: bool) {
        let msg = Msg::RequestVote {
            term: if pre_vote { self.term + 1 } else { self.term },
            last_log_index: self.last_index(),
            last_log_term: self.last_term(),
            pre_vote,
        };
        for &m in &self.members {
            if m != self.id && !self.votes.contains(&m) {
                Self::send(ctx, m, msg.clone());
            }
        }
    }

    fn become_leader(&mut self, ctx: &mut Ctx<'_, M>) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        ctx.series("state.leader", 1.0);
        ctx.count("raft.leaders_elected", 1.0);
        let last = self.last_index();
        self.next_index = vec![last + 1; self.n];
        self.match_index = vec![0; self.n];
        self.acked_round = vec![0; self.n];
        self.active = vec![false; self.n];
        self.round_sent_local.clear();
        self.round_sent_mono.clear();
        self.lease_until_local = 0;
        // A no-op of its own term lets the leader commit (and so learn the commit index):
        // entries of earlier terms are committed only indirectly, through it.
        self.leader_since_index = self.leader_append(ctx, Command::Noop);
        self.heartbeat(ctx);
        if self.p.check_quorum {
            ctx.set_timer(self.p.election_timeout_max.0, QUORUM_TIMER);
        }
    }

    // ---- replication --------------------------------------------------------------------

    fn heartbeat(&mut self, ctx: &mut Ctx<'_, M>) {
        self.round += 1;
        self.round_sent_local.insert(self.round, ctx.now_local());
        self.round_sent_mono.insert(self.round, ctx.now_monotonic());
        self.acked_round[self.id] = self.round;
        for p in 0..self.n {
            if p != self.id {
                self.send_append(ctx, p);
            }
        }
    }

    fn send_append(&mut self, ctx: &mut Ctx<'_, M>, p: NodeId) {
        let next = self.next_index[p].max(1);
        if next <= self.snap.index {
            ctx.count("raft.snapshots_sent", 1.0);
            Self::send(
                ctx,
                p,
                Msg::InstallSnapshot {
                    term: self.term,
                    snapshot: self.snap.clone(),
                    round: self.round,
                },
            );
            self.next_index[p] = self.snap.index + 1;
            return;
        }
        let prev = next - 1;
        let prev_term = self.term_at(prev).unwrap_or(0);
        let last = self.last_index();
        let upto = last.min(prev + self.p.batch_max as u64);
        let lo = (next - self.snap.index - 1) as usize;
        let hi = (upto - self.snap.index) as usize;
        let entries = if lo < hi {
            self.log[lo..hi].to_vec()
        } else {
            Vec::new()
        };
        self.next_index[p] = prev + entries.len() as u64 + 1;
        Self::send(
            ctx,
            p,
            Msg::AppendEntries {
                term: self.term,
                prev_log_index: prev,
                prev_log_term: prev_term,
                entries,
                leader_commit: self.commit,
                round: self.round,
            },
        );
    }

    fn replicate_now(&mut self, ctx: &mut Ctx<'_, M>) {
        for p in 0..self.n {
            if p != self.id {
                self.send_append(ctx, p);
            }
        }
    }

    fn advance_commit(&mut self, ctx: &mut Ctx<'_, M>) {
        let last = self.last_index();
        self.match_index[self.id] = last;
        let mut n = last;
        while n > self.commit {
            let t = self.term_at(n).unwrap_or(0);
            if t < self.term && !self.bug(RaftBug::CommitOldTerm) {
                // Figure 8: an entry of an earlier term is never committed by counting.
                break;
            }
            let count = self
                .members
                .iter()
                .filter(|&&m| self.match_index[m] >= n)
                .count();
            if count >= self.majority() {
                self.set_commit(ctx, n);
                break;
            }
            n -= 1;
        }
        self.apply_committed(ctx);
    }

    fn set_commit(&mut self, ctx: &mut Ctx<'_, M>, c: u64) {
        if c > self.commit {
            ctx.count("raft.commit_advances", 1.0);
            self.commit = c;
            report_commit(ctx, c);
        }
    }

    fn apply_committed(&mut self, ctx: &mut Ctx<'_, M>) {
        let target = if self.bug(RaftBug::ApplyBeforeCommit) {
            self.last_index()
        } else {
            self.commit
        };
        self.apply_up_to(ctx, target);
        if self.role == Role::Leader {
            if !self.is_member() && self.config_index <= self.commit {
                // Removed from the configuration, and the removal is committed.
                self.become_follower(ctx, self.term, None);
                return;
            }
            self.serve_reads(ctx);
        }
    }

    fn apply_up_to(&mut self, ctx: &mut Ctx<'_, M>, target: u64) {
        let dedup = !self.bug(RaftBug::NoDedup);
        while self.applied < target {
            let index = self.applied + 1;
            let Some(e) = self.entry_at(index) else {
                break;
            };
            let chain = e.chain;
            let mut fresh_write = None;
            let result = match &e.cmd {
                Command::Client { client, seq, op } => {
                    let (client, seq, is_write) = (*client, *seq, S::is_write(op));
                    let op = op.clone();
                    match self.kv.apply(client, seq, &op, dedup) {
                        Applied::Fresh(r) => {
                            if is_write {
                                fresh_write = Some((client, seq));
                            }
                            Some((client, seq, r))
                        }
                        Applied::Duplicate(r) => {
                            ctx.count("raft.duplicates_suppressed", 1.0);
                            Some((client, seq, r))
                        }
                        Applied::Stale => None,
                    }
                }
                _ => None,
            };
            self.applied = index;
            self.applied_now.push(AppliedRecord {
                index,
                chain,
                fresh_write,
            });
            if self.role == Role::Leader {
                if let Some((client_node, req, c, s)) = self.pending.remove(&index) {
                    let result = match result {
                        Some((rc, rs, r)) if rc == c && rs == s => r,
                        _ => S::not_leader(Some(self.id)),
                    };
                    Self::send(ctx, client_node, Msg::Reply { req, result });
                }
            }
        }
    }

    // ---- reads --------------------------------------------------------------------------

    fn confirmed_round(&self) -> u64 {
        let mut rounds: Vec<u64> = self
            .members
            .iter()
            .map(|&m| {
                if m == self.id {
                    self.round
                } else {
                    self.acked_round[m]
                }
            })
            .collect();
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds.get(self.majority() - 1).copied().unwrap_or(0)
    }

    /// Forgets the departure times of rounds older than the newest one a majority has
    /// acknowledged: only that one and later ones can still matter.
    fn prune_rounds(&mut self) {
        if self.round_sent_mono.len() < 16 {
            return;
        }
        let c = self.confirmed_round();
        self.round_sent_local.retain(|&r, _| r >= c);
        self.round_sent_mono.retain(|&r, _| r >= c);
    }

    /// Leader only: when, on this server's monotonic clock, it sent the newest round of
    /// heartbeats that a majority has acknowledged. Until `election_timeout_min` (of a
    /// follower's clock) after that round reached them, no other server can be elected, so a
    /// leader that measures a shorter window from this reading (with a margin for drift) knows
    /// that it still leads, even after a pause. None before any round is confirmed.
    pub fn quorum_confirmed_mono(&self) -> Option<Nanos> {
        if self.role != Role::Leader {
            return None;
        }
        self.round_sent_mono.get(&self.confirmed_round()).copied()
    }

    fn refresh_lease(&mut self) {
        let c = self.confirmed_round();
        if let Some(sent) = self.round_sent_local.get(&c) {
            self.lease_until_local = self
                .lease_until_local
                .max(sent.saturating_add(self.p.lease.0));
        }
        // Rounds below the confirmed one are no longer needed.
        while let Some((&r, _)) = self.round_sent_local.first_key_value() {
            if r < c {
                self.round_sent_local.remove(&r);
            } else {
                break;
            }
        }
    }

    fn serve_reads(&mut self, ctx: &mut Ctx<'_, M>) {
        if self.reads.is_empty() {
            return;
        }
        let confirmed = self.confirmed_round();
        let applied = self.applied;
        let mut keep = Vec::new();
        for r in std::mem::take(&mut self.reads) {
            if r.round <= confirmed && r.read_index <= applied {
                let result = self.kv.read(&r.op);
                Self::send(ctx, r.client, Msg::Reply { req: r.req, result });
            } else {
                keep.push(r);
            }
        }
        self.reads = keep;
    }

    fn start_read(&mut self, ctx: &mut Ctx<'_, M>, client: NodeId, req: u64, op: S::Op) {
        // Everything committed before this leader's term is applied once its no-op is.
        let read_index = self.commit.max(self.leader_since_index);
        let leased =
            self.p.read_mode == ReadMode::Lease && ctx.now_local() < self.lease_until_local;
        let round = if leased || self.bug(RaftBug::ReadWithoutConfirm) {
            0
        } else {
            // A fresh round of heartbeats: a majority answering it proves that no other
            // leader had been elected when the read arrived.
            self.heartbeat(ctx);
            self.round
        };
        self.reads.push(PendingRead {
            client,
            req,
            op,
            read_index,
            round,
        });
        self.serve_reads(ctx);
    }

    // ---- snapshots and membership -------------------------------------------------------

    /// Log compaction. A snapshot is taken at the applied index once the log passes
    /// `snapshot_entries`, but the log is cut only at the snapshot before it, once half the
    /// threshold of newer entries exists: a follower a few entries behind (or a reordered
    /// rejection) then still gets entries, not a whole snapshot.
    fn maybe_compact(&mut self, ctx: &mut Ctx<'_, M>) {
        let threshold = self.p.snapshot_entries;
        if threshold == 0 || self.log.len() <= threshold || self.applied <= self.snap.index {
            return;
        }
        if let Some(p) = &self.pending_snap {
            if self.last_index().saturating_sub(p.index) < (threshold as u64 / 2).max(1) {
                return;
            }
        }
        if let Some(p) = self.pending_snap.take() {
            if p.index > self.snap.index && self.chain_at(p.index) == Some(p.chain) {
                let st = ctx.storage();
                st.put_json("snap", &*p);
                for i in self.snap.index + 1..=p.index {
                    st.delete(&entry_key(i));
                }
                st.sync();
                self.log.drain(..(p.index - self.snap.index) as usize);
                self.snap = p;
            }
        }
        let at = self.applied;
        // The configuration as of `at`.
        let mut members = self.snap.members.clone();
        let mut changes_done = self.snap.changes_done;
        for i in self.snap.index + 1..=at {
            if let Some(Entry {
                cmd:
                    Command::Config {
                        members: m,
                        changes_done: c,
                    },
                ..
            }) = self.entry_at(i)
            {
                members = m.clone();
                changes_done = *c;
            }
        }
        self.pending_snap = Some(Rc::new(Snapshot {
            index: at,
            term: self.term_at(at).unwrap_or(0),
            chain: self.chain_at(at).unwrap_or(0),
            members,
            changes_done,
            kv: self.kv.clone(),
        }));
        ctx.count("raft.snapshots_taken", 1.0);
    }

    fn install_snapshot(&mut self, ctx: &mut Ctx<'_, M>, snap: &Rc<Snapshot<S>>) {
        let old_last = self.last_index();
        let old_first = self.snap.index + 1;
        if self.term_at(snap.index) == Some(snap.term) && snap.index <= old_last {
            self.log.drain(..(snap.index - self.snap.index) as usize);
        } else {
            self.log.clear();
            report_entry(ctx, snap.index, snap.term);
        }
        self.snap = snap.clone();
        self.pending_snap = None;
        self.kv = snap.kv.clone();
        self.commit = self.commit.max(snap.index);
        report_commit(ctx, self.commit);
        self.applied = snap.index;
        let new_last = self.last_index();
        let st = ctx.storage();
        st.put_json("snap", &**snap);
        for i in old_first..=old_last {
            if i <= snap.index || i > new_last {
                st.delete(&entry_key(i));
            }
        }
        st.put_json("last", &new_last);
        st.sync();
        self.recompute_config();
        ctx.count("raft.snapshots_installed", 1.0);
        self.apply_committed(ctx);
    }

    fn maybe_change_membership(&mut self, ctx: &mut Ctx<'_, M>) {
        let k = self.changes_done as usize;
        let Some(change) = self.p.membership.get(k) else {
            return;
        };
        // One change at a time, and only once this leader has committed in its term.
        if self.config_index > self.commit || self.commit < self.leader_since_index {
            return;
        }
        if ctx.now_local() < change.at.0 {
            return;
        }
        let mut members = self.members.clone();
        if let Some(a) = change.add {
            if !members.contains(&a) {
                members.push(a);
                members.sort_unstable();
            }
        } else if let Some(r) = change.remove {
            members.retain(|m| *m != r);
        }
        if members.is_empty() {
            return;
        }
        ctx.count("raft.membership_changes", 1.0);
        self.leader_append(
            ctx,
            Command::Config {
                members,
                changes_done: k as u32 + 1,
            },
        );
        self.replicate_now(ctx);
        self.advance_commit(ctx);
    }

    // ---- for services built on the server ------------------------------------------------

    /// The state machine as applied so far.
    pub fn state(&self) -> &S {
        &self.kv
    }

    /// The state machine, for a service that keeps volatile side effects in it.
    pub fn state_mut(&mut self) -> &mut S {
        &mut self.kv
    }

    /// The server's state for the report's timeline: role, term, last log index, and the
    /// commit and apply points with the leader it believes in.
    pub fn summary(&self) -> sim_core::summary::StateSummary {
        let role = match self.role {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        };
        let leader = match self.leader {
            Some(l) => format!(", leader n{l}"),
            None => String::new(),
        };
        sim_core::summary::StateSummary {
            role: Some(role),
            term: Some(self.term),
            log_len: Some(self.last_index()),
            lock: None,
            detail: format!("commit {}, applied {}{leader}", self.commit, self.applied),
        }
    }

    /// Whether this server believes it leads.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The leader this server believes in, if any.
    pub fn leader_hint(&self) -> Option<NodeId> {
        self.leader
    }

    /// Whether this server leads and has applied every entry committed before its term (its
    /// state is then at least as new as any answer a client has had).
    pub fn ready_to_serve(&self) -> bool {
        self.role == Role::Leader && self.applied >= self.leader_since_index
    }

    /// The leader appends a command of its own (no client waits for the answer). Returns the
    /// index, or None when this server does not lead.
    pub fn propose(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        client: u32,
        seq: u64,
        op: S::Op,
    ) -> Option<u64> {
        if self.role != Role::Leader {
            return None;
        }
        let index = self.leader_append(ctx, Command::Client { client, seq, op });
        self.replicate_now(ctx);
        self.advance_commit(ctx);
        Some(index)
    }

    // ---- callbacks ----------------------------------------------------------------------

    /// `on_start`: loads durable state and waits for a leader.
    pub fn start(&mut self, ctx: &mut Ctx<'_, M>) {
        self.load(ctx);
        ctx.series("term", self.term as f64);
        ctx.series("state.leader", 0.0);
        match self.p.startup_timeout_max {
            Some(m) if !ctx.is_restart() => self.arm_election_timer(ctx, m.0),
            _ => self.reset_election_timer(ctx),
        }
        ctx.set_timer(self.p.heartbeat_interval.0, TICK_TIMER);
    }

    /// `on_timer`.
    pub fn timer(&mut self, ctx: &mut Ctx<'_, M>, timer: TimerId, tag: u64) {
        self.applied_now.clear();
        match tag {
            ELECTION_TIMER => {
                if self.election_timer != Some(timer) {
                    return;
                }
                self.election_timer = None;
                if self.role == Role::Leader {
                    return;
                }
                self.start_election(ctx);
            }
            TICK_TIMER => {
                ctx.set_timer(self.p.heartbeat_interval.0, TICK_TIMER);
                match self.role {
                    Role::Leader => {
                        self.heartbeat(ctx);
                        self.maybe_change_membership(ctx);
                    }
                    // Lost vote requests are resent while the election lasts.
                    Role::Candidate => self.send_vote_requests(ctx, false),
                    Role::PreCandidate => self.send_vote_requests(ctx, true),
                    Role::Follower => {}
                }
                self.maybe_compact(ctx);
            }
            QUORUM_TIMER if self.role == Role::Leader => {
                let heard = self
                    .members
                    .iter()
                    .filter(|&&m| m == self.id || self.active[m])
                    .count();
                self.active = vec![false; self.n];
                if heard < self.majority() {
                    ctx.count("raft.check_quorum_step_downs", 1.0);
                    self.become_follower(ctx, self.term, None);
                    self.reset_election_timer(ctx);
                } else {
                    ctx.set_timer(self.p.election_timeout_max.0, QUORUM_TIMER);
                }
            }
            _ => {}
        }
    }

    /// `on_message`.
    pub fn message(&mut self, ctx: &mut Ctx<'_, M>, from: NodeId, msg: Msg<S>) {
        self.applied_now.clear();
        match msg {
            Msg::RequestVote {
                term,
                last_log_index,
                last_log_term,
                pre_vote,
            } => self.on_request_vote(ctx, from, term, last_log_index, last_log_term, pre_vote),
            Msg::RequestVoteReply {
                term,
                granted,
                pre_vote,
            } => self.on_vote_reply(ctx, from, term, granted, pre_vote),
            Msg::AppendEntries {
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                round,
            } => self.on_append(
                ctx,
                from,
                term,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                round,
            ),
            Msg::AppendEntriesReply {
                term,
                success,
                match_index,
                conflict_index,
                conflict_term,
                round,
            } => self.on_append_reply(
                ctx,
                from,
                term,
                success,
                match_index,
                conflict_index,
                conflict_term,
                round,
            ),
            Msg::InstallSnapshot {
                term,
                snapshot,
                round,
            } => {
                if term < self.term {
                    Self::send(
                        ctx,
                        from,
                        Msg::InstallSnapshotReply {
                            term: self.term,
                            match_index: 0,
                            round,
                        },
                    );
                    return;
                }
                self.accept_leader(ctx, from, term);
                if snapshot.index > self.commit {
                    self.install_snapshot(ctx, &snapshot);
                }
                Self::send(
                    ctx,
                    from,
                    Msg::InstallSnapshotReply {
                        term: self.term,
                        match_index: snapshot.index,
                        round,
                    },
                );
            }
            Msg::InstallSnapshotReply {
                term,
                match_index,
                round,
            } => self.on_append_reply(ctx, from, term, true, match_index, 0, None, round),
            Msg::Request {
                req,
                client,
                seq,
                op,
            } => self.on_request(ctx, from, req, client, seq, op),
            Msg::Reply { .. } => {}
        }
    }

    fn on_request_vote(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: NodeId,
        term: u64,
        last_log_index: u64,
        last_log_term: u64,
        pre_vote: bool,
    ) {
        let log_ok = self.bug(RaftBug::VoteWithoutLogCheck)
            || self.up_to_date(last_log_index, last_log_term);
        if pre_vote {
            let granted = term > self.term && log_ok && !self.leader_recently_heard(ctx);
            Self::send(
                ctx,
                from,
                Msg::RequestVoteReply {
                    term: if granted { term } else { self.term },
                    granted,
                    pre_vote: true,
                },
            );
            return;
        }
        let sticky = self.p.check_quorum || self.p.read_mode == ReadMode::Lease;
        if sticky && self.leader_recently_heard(ctx) && self.role == Role::Follower {
            // Leader stickiness: a live leader is not deposed by a disruptive candidate.
            Self::send(
                ctx,
                from,
                Msg::RequestVoteReply {
                    term: self.term,
                    granted: false,
                    pre_vote: false,
                },
            );
            return;
        }
        let deposed = term > self.term && self.role == Role::Leader;
        if term > self.term {
            self.become_follower(ctx, term, None);
        }
        let granted = term == self.term
            && (self.voted_for.is_none() || self.voted_for == Some(from))
            && log_ok;
        if granted {
            self.voted_for = Some(from);
            if self.bug(RaftBug::VoteWithoutPersist) {
                // The vote lives only in memory: a crash forgets it.
                ctx.storage().put_json("hard", &(self.term, None::<NodeId>));
                ctx.storage().sync();
            } else {
                self.persist_hard(ctx);
            }
            self.reset_election_timer(ctx);
        } else if deposed {
            // A leader keeps no election timer: deposed by a candidate it refuses (a log
            // behind its own), it must arm one, or it never campaigns and a cluster whose
            // other up-to-date servers were removed or refuse too stays leaderless for good.
            self.reset_election_timer(ctx);
        }
        Self::send(
            ctx,
            from,
            Msg::RequestVoteReply {
                term: self.term,
                granted,
                pre_vote: false,
            },
        );
    }

    fn on_vote_reply(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: NodeId,
        term: u64,
        granted: bool,
        pre_vote: bool,
    ) {
        if term > self.term && !(pre_vote && granted) {
            self.become_follower(ctx, term, None);
            self.reset_election_timer(ctx);
            return;
        }
        if !granted || !self.members.contains(&from) {
            return;
        }
        match (self.role, pre_vote) {
            (Role::PreCandidate, true) if term == self.term + 1 => {
                self.votes.insert(from);
                if self.votes.len() >= self.majority() {
                    self.become_candidate(ctx);
                }
            }
            (Role::Candidate, false) if term == self.term => {
                self.votes.insert(from);
                if self.votes.len() >= self.majority() {
                    self.become_leader(ctx);
                }
            }
            _ => {}
        }
    }

    fn accept_leader(&mut self, ctx: &mut Ctx<'_, M>, from: NodeId, term: u64) {
        if term > self.term || self.role != Role::Follower {
            self.become_follower(ctx, term, Some(from));
        }
        self.leader = Some(from);
        self.heard_leader_local = Some(ctx.now_local());
        self.reset_election_timer(ctx);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: NodeId,
        term: u64,
        prev_log_index: u64,
        prev_log_term: u64,
        mut entries: Vec<Entry<S>>,
        leader_commit: u64,
        round: u64,
    ) {
        let reply = |ctx: &mut Ctx<'_, M>,
                     term: u64,
                     success: bool,
                     match_index: u64,
                     conflict_index: u64,
                     conflict_term: Option<u64>| {
            Self::send(
                ctx,
                from,
                Msg::AppendEntriesReply {
                    term,
                    success,
                    match_index,
                    conflict_index,
                    conflict_term,
                    round,
                },
            );
        };
        if term < self.term {
            reply(ctx, self.term, false, 0, 0, None);
            return;
        }
        self.accept_leader(ctx, from, term);
        let mut prev = prev_log_index;
        let mut prev_term = prev_log_term;
        if prev < self.snap.index {
            // The snapshot already covers (committed) entries the leader sends again.
            let skip = (self.snap.index - prev) as usize;
            if entries.len() <= skip {
                let m = prev + entries.len() as u64;
                reply(ctx, self.term, true, m, 0, None);
                return;
            }
            entries.drain(..skip);
            prev = self.snap.index;
            prev_term = self.snap.term;
        }
        let last = self.last_index();
        if prev > last {
            reply(ctx, self.term, false, 0, last + 1, None);
            return;
        }
        let here = self.term_at(prev).unwrap_or(0);
        if here != prev_term {
            // Fast back-off: name the conflicting term and where it starts here.
            let mut first = prev;
            while first > self.snap.index + 1 && self.term_at(first - 1) == Some(here) {
                first -= 1;
            }
            reply(ctx, self.term, false, 0, first, Some(here));
            return;
        }
        let match_index = prev + entries.len() as u64;
        // Skip entries already present; truncate at the first conflict.
        let mut k = 0;
        while k < entries.len() {
            let idx = prev + 1 + k as u64;
            if self.term_at(idx) == Some(entries[k].term) {
                k += 1;
            } else {
                break;
            }
        }
        if k < entries.len() {
            let keep_last = prev + k as u64;
            self.replace_suffix(ctx, keep_last, &entries[k..]);
        }
        if leader_commit > self.commit {
            let c = leader_commit.min(match_index);
            self.set_commit(ctx, c);
        }
        self.apply_committed(ctx);
        reply(ctx, self.term, true, match_index, 0, None);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_append_reply(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: NodeId,
        term: u64,
        success: bool,
        match_index: u64,
        conflict_index: u64,
        conflict_term: Option<u64>,
        round: u64,
    ) {
        if term > self.term {
            self.become_follower(ctx, term, None);
            self.reset_election_timer(ctx);
            return;
        }
        if self.role != Role::Leader || term != self.term {
            return;
        }
        self.active[from] = true;
        self.acked_round[from] = self.acked_round[from].max(round);
        self.prune_rounds();
        if success {
            if match_index > self.match_index[from] {
                self.match_index[from] = match_index;
            }
            self.next_index[from] = self.next_index[from].max(match_index + 1);
            self.advance_commit(ctx);
        } else {
            let mut next = conflict_index;
            if let Some(ct) = conflict_term {
                // Skip the follower's whole conflicting term at once, or up to our own last
                // entry of that term.
                let mut i = self.last_index();
                while i > self.snap.index && self.term_at(i).unwrap_or(0) > ct {
                    i -= 1;
                }
                if i > self.snap.index && self.term_at(i) == Some(ct) {
                    next = i + 1;
                }
            }
            let next = next.max(self.match_index[from] + 1).max(1);
            self.next_index[from] = next.min(self.last_index() + 1);
            self.send_append(ctx, from);
        }
        if self.p.read_mode == ReadMode::Lease {
            self.refresh_lease();
        }
        self.serve_reads(ctx);
    }

    fn on_request(
        &mut self,
        ctx: &mut Ctx<'_, M>,
        from: NodeId,
        req: u64,
        client: u32,
        seq: u64,
        op: S::Op,
    ) {
        if self.role != Role::Leader {
            Self::send(
                ctx,
                from,
                Msg::Reply {
                    req,
                    result: S::not_leader(self.leader),
                },
            );
            return;
        }
        if S::is_read(&op)
            && (self.p.read_mode != ReadMode::Log || self.bug(RaftBug::ReadWithoutConfirm))
        {
            self.start_read(ctx, from, req, op);
            return;
        }
        if !self.bug(RaftBug::NoDedup) {
            if let Some((last, result)) = self.kv.last_reply(client) {
                if last == seq {
                    // Already applied here (so committed): answer from the session.
                    Self::send(
                        ctx,
                        from,
                        Msg::Reply {
                            req,
                            result: result.clone(),
                        },
                    );
                    return;
                }
            }
        }
        // Registered before the append: with apply_before_commit the append applies at once.
        self.pending
            .insert(self.last_index() + 1, (from, req, client, seq));
        self.leader_append(ctx, Command::Client { client, seq, op });
        self.replicate_now(ctx);
        self.advance_commit(ctx);
    }
}
