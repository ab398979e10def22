//! The commit checks, and the figures only a global observer can measure (time in doubt,
//! locks held, message delays).
//!
//! Nodes write what they do to a [`Journal`] (never reading it back); the checker drains it
//! after every event and stamps each note with true time.
//!
//! - **Atomicity and agreement**: every decision record of a transaction (coordinator,
//!   backup coordinator, Paxos leader, each participant's applied outcome) says the same; a
//!   participant never commits a transaction it holds no prepared record of. Checked on every
//!   record as it is made, and at the end on every up node's state rebuilt from its disk.
//! - **Validity**: commit only if every participant voted yes.
//! - **Money**: no account goes negative; the final balances of all accounts sum to the
//!   opening total (when every participant is up and none is in doubt); every `read_all`
//!   that succeeded sums to that total with no negative balance.
//! - **Blocked**: a participant still in doubt at the end (its outcome never arrived), named
//!   with the time it voted and whether its coordinator is down.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use sim_core::hash::LookupMap;
use sim_core::time::{fmt_ns, Nanos, MS};
use sim_core::{Checker, EventType, Finding, History, LivenessPhase, NodeId, View};

use super::msg::{txn_name, TxnId, TxnSpec};
use super::{Node, Params};

/// Who made a decision record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The transaction's coordinator (or first Paxos Commit leader).
    Coordinator,
    /// A 3PC backup coordinator.
    Terminator,
    /// A Paxos Commit recovery leader.
    Leader,
    /// A participant applying the outcome.
    Participant,
    /// A participant deciding alone (the `heuristic_abort` bug).
    Heuristic,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Terminator => "backup coordinator",
            Role::Leader => "recovery leader",
            Role::Participant => "participant",
            Role::Heuristic => "participant deciding alone",
        }
    }
}

/// What a node did, for the checker.
#[derive(Clone, Debug)]
pub enum Note {
    /// A participant voted.
    Voted {
        /// The participant.
        node: NodeId,
        /// The transaction.
        txn: TxnId,
        /// Yes (prepared record written) or no.
        yes: bool,
    },
    /// A decision record.
    Decided {
        /// Where.
        node: NodeId,
        /// The transaction.
        txn: TxnId,
        /// Commit or abort.
        commit: bool,
        /// Who decided.
        role: Role,
        /// The transaction.
        spec: Rc<TxnSpec>,
    },
    /// A participant became prepared (in doubt until the outcome), holding `locks` keys.
    DoubtStart {
        /// The participant.
        node: NodeId,
        /// The transaction.
        txn: TxnId,
        /// Its coordinator.
        coord: NodeId,
        /// Keys locked.
        locks: usize,
    },
    /// The prepared participant applied the outcome.
    DoubtEnd {
        /// The participant.
        node: NodeId,
        /// The transaction.
        txn: TxnId,
    },
    /// A commit made an account negative.
    Negative {
        /// The participant.
        node: NodeId,
        /// The transaction.
        txn: TxnId,
        /// The account.
        acct: u32,
        /// Its balance.
        balance: i64,
    },
    /// A participant was told to commit a transaction it has no prepared record of.
    UnknownCommit {
        /// The participant.
        node: NodeId,
        /// The transaction.
        txn: TxnId,
    },
    /// A participant learned an outcome at this causal depth.
    Learned {
        /// The transaction.
        txn: TxnId,
        /// Committed (only commits are measured).
        commit: bool,
        /// Message delays since the client's request.
        depth: u32,
    },
}

/// The journal nodes write to.
pub type Journal = Rc<RefCell<Vec<Note>>>;

/// Figures gathered by the checker, turned into metrics after the run.
#[derive(Clone, Debug, Default)]
pub struct CommitStats {
    /// Time each (participant, transaction) spent prepared, in ns, for participants other
    /// than the transaction's coordinator (whose own wait is not blocking on someone else).
    pub in_doubt_ns: Vec<Nanos>,
    /// Sum over prepared participants of keys locked times time held, in key-ns.
    pub lock_key_ns: u128,
    /// Most keys locked at once across the cluster by prepared transactions.
    pub peak_locks: usize,
    /// Deepest learning of a commit per committed transaction.
    pub delays: BTreeMap<TxnId, u32>,
    /// Transactions committed and aborted (first decision).
    pub committed: u64,
    /// Aborted.
    pub aborted: u64,
    /// Participants still in doubt at the end.
    pub blocked: u64,
}

impl CommitStats {
    /// Adds the derived metrics to a run's metrics.
    pub fn add_metrics(&self, m: &mut BTreeMap<String, f64>) {
        let ms = |ns: f64| ns / MS as f64;
        let n = self.in_doubt_ns.len().max(1) as f64;
        let sum: u128 = self.in_doubt_ns.iter().map(|&x| x as u128).sum();
        m.insert("commit.in_doubt_ms_mean".into(), ms(sum as f64 / n));
        m.insert(
            "commit.in_doubt_ms_max".into(),
            ms(self.in_doubt_ns.iter().copied().max().unwrap_or(0) as f64),
        );
        m.insert("commit.committed".into(), self.committed as f64);
        m.insert("commit.aborted".into(), self.aborted as f64);
        m.insert("commit.blocked_participants".into(), self.blocked as f64);
        m.insert("commit.peak_locks".into(), self.peak_locks as f64);
        let txns = (self.committed + self.aborted).max(1) as f64;
        m.insert(
            "commit.lock_ms_per_txn".into(),
            ms(self.lock_key_ns as f64) / txns,
        );
        if !self.delays.is_empty() {
            let d: Vec<f64> = self.delays.values().map(|&d| d as f64).collect();
            m.insert(
                "commit.delays_mean".into(),
                d.iter().sum::<f64>() / d.len() as f64,
            );
            m.insert(
                "commit.delays_max".into(),
                d.iter().copied().fold(0.0, f64::max),
            );
        }
        let begun = m.get("commit.txns").copied().unwrap_or(0.0);
        if begun > 0.0 {
            let msgs = m.get("commit.protocol_messages").copied().unwrap_or(0.0);
            m.insert("commit.messages_per_txn".into(), msgs / begun);
        }
    }
}

/// The first decision record of a transaction.
#[derive(Clone, Copy)]
struct First {
    commit: bool,
    node: NodeId,
    role: Role,
    at: Nanos,
}

/// The commit checker (see the module docs).
pub struct CommitChecker {
    p: Rc<Params>,
    servers: usize,
    journal: Journal,
    stats: Rc<RefCell<CommitStats>>,
    /// Lookups only, never iterated (a `BTreeMap` here was a tenth of a 2PC run's time).
    first: LookupMap<TxnId, First>,
    yes: LookupMap<TxnId, u64>,
    /// (participant, transaction) -> (prepared since, keys locked, participant is the coordinator).
    doubt: BTreeMap<(NodeId, TxnId), (Nanos, usize, bool)>,
    locks_now: usize,
    buf: Vec<Note>,
}

impl CommitChecker {
    /// A checker over `servers` participants.
    pub fn new(
        p: Rc<Params>,
        servers: usize,
        journal: Journal,
        stats: Rc<RefCell<CommitStats>>,
    ) -> Self {
        assert!(servers <= 64, "votes are kept as a 64-bit set");
        CommitChecker {
            p,
            servers,
            journal,
            stats,
            first: LookupMap::default(),
            yes: LookupMap::default(),
            doubt: BTreeMap::new(),
            locks_now: 0,
            buf: Vec::new(),
        }
    }

    fn judge(&mut self, note: Note, now: Nanos) -> Option<Finding> {
        match note {
            Note::Voted { node, txn, yes } => {
                if yes {
                    *self.yes.entry(txn).or_default() |= 1 << node;
                }
            }
            Note::Decided {
                node,
                txn,
                commit,
                role,
                spec,
            } => return self.decided(node, txn, commit, role, &spec, now),
            Note::DoubtStart {
                node,
                txn,
                coord,
                locks,
            } => {
                if let std::collections::btree_map::Entry::Vacant(e) = self.doubt.entry((node, txn))
                {
                    e.insert((now, locks, node == coord));
                    self.locks_now += locks;
                    let mut s = self.stats.borrow_mut();
                    s.peak_locks = s.peak_locks.max(self.locks_now);
                }
            }
            Note::DoubtEnd { node, txn } => self.end_doubt(node, txn, now),
            Note::Negative {
                node,
                txn,
                acct,
                balance,
            } => {
                let msg = format!(
                    "no negative balance: account {acct} on n{node} went to {balance} when {} committed",
                    txn_name(txn)
                );
                return Some(
                    Finding::new(msg)
                        .nodes([node])
                        .keys([format!("account {acct}")]),
                );
            }
            Note::UnknownCommit { node, txn } => {
                let msg = format!(
                    "atomicity: {} committed, but participant n{node} holds no prepared record of it (it voted yes, then lost the record) and applied nothing",
                    txn_name(txn)
                );
                return Some(Finding::new(msg).nodes([node]));
            }
            Note::Learned {
                txn,
                depth,
                commit: true,
            } => {
                let mut s = self.stats.borrow_mut();
                let d = s.delays.entry(txn).or_default();
                *d = (*d).max(depth);
            }
            Note::Learned { .. } => {}
        }
        None
    }

    fn end_doubt(&mut self, node: NodeId, txn: TxnId, now: Nanos) {
        if let Some((since, locks, at_coord)) = self.doubt.remove(&(node, txn)) {
            self.locks_now -= locks;
            let mut s = self.stats.borrow_mut();
            if !at_coord {
                s.in_doubt_ns.push(now - since);
            }
            s.lock_key_ns += locks as u128 * (now - since) as u128;
        }
    }

    fn decided(
        &mut self,
        node: NodeId,
        txn: TxnId,
        commit: bool,
        role: Role,
        spec: &TxnSpec,
        now: Nanos,
    ) -> Option<Finding> {
        let verb = |c: bool| if c { "committed" } else { "aborted" };
        if commit {
            let mask = self.yes.get(&txn).copied().unwrap_or(0);
            if let Some(&p) = spec.parts.iter().find(|&&p| mask & (1 << p) == 0) {
                let msg = format!(
                    "validity: {} committed by n{node} ({}) at {} though participant n{p} never voted yes",
                    txn_name(txn),
                    role.name(),
                    fmt_ns(now)
                );
                return Some(Finding::new(msg).nodes([node, p]));
            }
        }
        match self.first.get(&txn) {
            None => {
                self.first.insert(
                    txn,
                    First {
                        commit,
                        node,
                        role,
                        at: now,
                    },
                );
                let mut s = self.stats.borrow_mut();
                if commit {
                    s.committed += 1;
                } else {
                    s.aborted += 1;
                }
                None
            }
            Some(f) if f.commit != commit => Some(
                Finding::new(format!(
                    "atomicity: {} {} at n{} ({}, {}) but {} at n{node} ({}, {})",
                    txn_name(txn),
                    verb(f.commit),
                    f.node,
                    f.role.name(),
                    fmt_ns(f.at),
                    verb(commit),
                    role.name(),
                    fmt_ns(now)
                ))
                .nodes([f.node, node]),
            ),
            Some(_) => None,
        }
    }

    /// Final state: every up participant's outcomes (rebuilt from its disk after a restart)
    /// agree with the decision records, and the money adds up.
    fn final_state(&self, view: &View<'_, Node>) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut total = 0i64;
        let mut complete = true;
        for id in 0..self.servers {
            let Some(Node::Server(s)) = view.node(id) else {
                complete = false;
                continue;
            };
            complete &= s.rm.prepared.is_empty();
            for (&txn, &d) in &s.rm.decided {
                if let Some(f) = self.first.get(&txn).filter(|f| f.commit != d) {
                    let msg = format!(
                        "atomicity (final state): {} is {} on n{id}'s disk but was {} at n{} ({})",
                        txn_name(txn),
                        if d { "committed" } else { "aborted" },
                        if f.commit { "committed" } else { "aborted" },
                        f.node,
                        f.role.name()
                    );
                    out.push(Finding::new(msg).nodes([id, f.node]));
                    break;
                }
            }
            total +=
                s.rm.data
                    .iter()
                    .filter(|(&k, _)| k < super::participant::REG)
                    .map(|(_, &v)| v)
                    .sum::<i64>();
        }
        let expected = self.p.accounts as i64 * self.p.initial_balance;
        if complete && total != expected {
            out.push(Finding::new(format!(
                "conservation (final state): the accounts sum to {total}, not the {expected} they opened with"
            )));
        }
        out
    }

    /// Blocked participants: up, prepared since before `before`, and never told the outcome.
    fn blocked(&self, view: &View<'_, Node>, before: Nanos) -> Vec<Finding> {
        let mut by_txn: BTreeMap<TxnId, (Vec<NodeId>, Nanos, NodeId)> = BTreeMap::new();
        for (id, n) in view.servers() {
            let Node::Server(s) = n else { continue };
            for (&txn, prep) in &s.rm.prepared {
                let since = self.doubt.get(&(id, txn)).map(|d| d.0).unwrap_or(view.now);
                if since >= before {
                    continue;
                }
                let e = by_txn
                    .entry(txn)
                    .or_insert((Vec::new(), since, prep.spec.coord));
                e.0.push(id);
                e.1 = e.1.min(since);
            }
        }
        self.stats.borrow_mut().blocked = by_txn.values().map(|v| v.0.len() as u64).sum();
        let Some((&txn, (nodes, since, coord))) = by_txn.iter().next() else {
            return Vec::new();
        };
        let names: Vec<String> = nodes.iter().map(|n| format!("n{n}")).collect();
        let down = if view.node(*coord).is_none() {
            "down"
        } else {
            "up"
        };
        // Every blocked participant and every coordinator of a blocked transaction.
        let all: BTreeSet<NodeId> = by_txn.values().flat_map(|v| v.0.iter().copied()).collect();
        let coords: BTreeSet<NodeId> = by_txn.values().map(|v| v.2).collect();
        let others = match by_txn.len() - 1 {
            1 => "1 more transaction".to_string(),
            k => format!("{k} more transactions"),
        };
        let more = match by_txn.len() {
            1 => String::new(),
            _ if all.len() > nodes.len() => {
                let all: Vec<String> = all.iter().map(|n| format!("n{n}")).collect();
                format!(" (and {others}; blocked in all: {})", all.join(", "))
            }
            _ => format!(" (and {others})"),
        };
        let msg = format!(
            "blocked: participant{} {} in doubt on {} since {} ({} by {}) holding locks, coordinator n{coord} {down}{more}",
            if nodes.len() > 1 { "s" } else { "" },
            names.join(", "),
            txn_name(txn),
            fmt_ns(*since),
            fmt_ns(view.now - *since),
            fmt_ns(view.now)
        );
        let named: BTreeSet<NodeId> = all.into_iter().chain(coords).collect();
        vec![Finding::liveness(msg).nodes(named)]
    }
}

/// Every successful `read_all` sums to the opening total with no negative balance.
fn check_reads(history: &History, expected: i64) -> Vec<Finding> {
    let mut invoke_of: BTreeMap<u64, usize> = BTreeMap::new();
    let mut invoke_at: BTreeMap<u64, usize> = BTreeMap::new();
    let mut invokes = 0usize;
    for (i, e) in history.events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            invoke_of.insert(e.process, invokes);
            invoke_at.insert(e.process, i);
            invokes += 1;
            continue;
        }
        if e.kind != EventType::Ok || e.f != "read_all" {
            continue;
        }
        let balances: Vec<i64> = e
            .value
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_i64()).collect())
            .unwrap_or_default();
        let sum: i64 = balances.iter().sum();
        let op = invoke_of.get(&e.process).copied().unwrap_or(0);
        if sum != expected {
            let msg = format!("conservation: read_all op #{op} at {} saw the accounts sum to {sum}, not {expected}: {balances:?}", fmt_ns(e.time_ns));
            return vec![Finding::new(msg).ops([invoke_at[&e.process]])];
        }
        if let Some(b) = balances.iter().find(|&&b| b < 0) {
            let msg = format!(
                "no negative balance: read_all op #{op} at {} saw a balance of {b}",
                fmt_ns(e.time_ns)
            );
            return vec![Finding::new(msg).ops([invoke_at[&e.process]])];
        }
    }
    Vec::new()
}

impl Checker<Node> for CommitChecker {
    fn name(&self) -> &'static str {
        "commit"
    }

    fn after_event(&mut self, view: &View<'_, Node>, _node: NodeId) -> Option<Finding> {
        let mut notes = std::mem::take(&mut self.buf);
        std::mem::swap(&mut notes, &mut *self.journal.borrow_mut());
        let mut found = None;
        for note in notes.drain(..) {
            if let Some(v) = self.judge(note, view.now) {
                found.get_or_insert(v);
            }
        }
        self.buf = notes;
        found
    }

    /// The liveness phase: no participant may still be in doubt on a transaction it prepared
    /// before the middle of the phase (before the heal, or after it: a transaction started
    /// after the heal must be decided within the bound).
    fn at_liveness(
        &mut self,
        view: &View<'_, Node>,
        phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        let before = phase.deadline_ns - (phase.deadline_ns - phase.start_ns) / 2;
        self.blocked(view, before)
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let mut out = self.final_state(view);
        out.extend(check_reads(
            history,
            self.p.accounts as i64 * self.p.initial_balance,
        ));
        // At the end, anything prepared more than 300 ms ago and still undecided is blocked.
        out.extend(self.blocked(view, view.now.saturating_sub(300 * MS)));
        // Time in doubt includes the participants still in doubt, up to the end; a node down
        // at the end holds no locks anyone waits on, and its open entries are left out.
        let open: Vec<(NodeId, TxnId)> = self.doubt.keys().copied().collect();
        for (n, t) in open {
            if view.node(n).is_some() {
                self.end_doubt(n, t, view.now);
            }
        }
        out
    }
}
