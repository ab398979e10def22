//! The ZooKeeper-style lock service replicated by Raft.
//!
//! The service's state ([`ZkMachine`]: sessions, the lock node's ephemeral sequential
//! children, watches, the session and sequence counters) is a Raft state machine: every
//! request that reads or changes it (connect, create, delete, get children, exists) is a
//! command applied in log order on every replica, and the leader answers after commit. The
//! sequence number of an entry, the fencing token, is assigned when the `Create` is applied,
//! so it grows in log order and stays monotonic across leader changes.
//!
//! Sessions: the leader keeps a deadline per session on its own clock, refreshed by the
//! client's pings (answered by the leader without a log entry: the deadline is not replicated
//! state, and a log entry per ping per client would dominate the log). A session whose
//! deadline passes is expired by an `ExpireSession` command the leader proposes, so every
//! replica deletes the same entries at the same point of the log. A new leader gives every
//! session a fresh timeout, as ZooKeeper does.
//!
//! Watches live in the replicated state (simplest and deterministic): registering one is part
//! of the `GetChildren` or `Exists` command, and when a later command deletes the watched
//! entry every replica removes the watch, but only the replica that applies it as leader sends
//! the notification. A notification lost with a leader change is covered by the client, which
//! lists the children again when it finds a new leader (as a ZooKeeper client re-registers its
//! watches on reconnecting).

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::time::Nanos;
use sim_core::{Ctx, NodeId, TimerId};

use super::{send_lock, Msg, Params};
use crate::raft;
use crate::raft::kv::{Applied, StateMachine};
use crate::raft::msg::Fnv;
use crate::raft::server::Server;

/// The client id under which the leader proposes its own commands (session expiry); their
/// sequence number is the log index they are appended at, so it grows in log order.
pub const SERVICE_CLIENT: u32 = u32::MAX;

/// A command of the lock service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZkOp {
    /// Open a session for the calling client.
    Connect,
    /// Create an ephemeral sequential entry under the lock node for `session`.
    Create {
        /// The session.
        session: u64,
    },
    /// Delete the caller's entry `seq` (release, or giving up).
    Delete {
        /// The entry.
        seq: u64,
    },
    /// List the children, leaving a children watch if `watch` (the herd recipe).
    GetChildren {
        /// Leave a watch on the children.
        watch: bool,
    },
    /// Whether entry `seq` exists; if so, leave a watch on its deletion.
    Exists {
        /// The entry.
        seq: u64,
    },
    /// The leader decided that the session timed out: delete it and its entries.
    ExpireSession {
        /// The session.
        session: u64,
    },
}

impl ZkOp {
    /// The trace label of a request carrying this command.
    pub fn label(&self) -> &'static str {
        match self {
            ZkOp::Connect => "connect",
            ZkOp::Create { .. } => "create",
            ZkOp::Delete { .. } => "delete",
            ZkOp::GetChildren { .. } => "get_children",
            ZkOp::Exists { .. } => "exists",
            ZkOp::ExpireSession { .. } => "expire_session",
        }
    }
}

/// The lock service's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ZkReply {
    /// The new session.
    Connected {
        /// Session id.
        session: u64,
    },
    /// The entry's sequence number (None: the session had expired).
    Created {
        /// The sequence number.
        seq: Option<u64>,
    },
    /// The children's sequence numbers, ascending.
    Children {
        /// Sequence numbers.
        seqs: Vec<u64>,
    },
    /// Whether the entry exists (if so, a watch is set).
    Exists {
        /// Whether it exists.
        exists: bool,
    },
    /// A delete or an expiry was applied.
    Done,
    /// This replica does not lead; try `hint` if known.
    NotLeader {
        /// The leader this replica believes in.
        hint: Option<NodeId>,
    },
}

impl ZkReply {
    /// The trace label of a reply carrying this answer.
    pub fn label(&self) -> &'static str {
        match self {
            ZkReply::Connected { .. } => "connected",
            ZkReply::Created { .. } => "created",
            ZkReply::Children { .. } => "children",
            ZkReply::Exists { .. } => "exists_reply",
            ZkReply::Done => "done",
            ZkReply::NotLeader { .. } => "not_leader",
        }
    }
}

/// The replicated state of the lock service.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZkMachine {
    /// The last session id handed out.
    pub last_session: u64,
    /// The last sequence number handed out (the newest fencing token).
    pub last_seq: u64,
    /// Live sessions: id -> client node.
    pub sessions: BTreeMap<u64, NodeId>,
    /// The lock node's ephemeral sequential children: sequence number -> owning session.
    pub children: BTreeMap<u64, u64>,
    /// One-shot watches on an entry's deletion: entry -> watching clients.
    pub exists_watches: BTreeMap<u64, BTreeSet<NodeId>>,
    /// One-shot watches on the lock node's children (the herd recipe).
    pub child_watches: BTreeSet<NodeId>,
    /// Per client: the last command applied and its reply (a retry is answered, not applied).
    pub dedup: BTreeMap<u32, (u64, ZkReply)>,
    /// Watches fired by the commands applied since the replica last looked (not replicated
    /// state: only the leader sends the notifications).
    #[serde(skip)]
    pub fired: Vec<NodeId>,
}

impl ZkMachine {
    fn delete(&mut self, seq: u64) {
        if self.children.remove(&seq).is_some() {
            let w = self.exists_watches.remove(&seq).unwrap_or_default();
            self.fired.extend(w);
            self.children_changed();
        }
    }

    fn children_changed(&mut self) {
        let w = std::mem::take(&mut self.child_watches);
        self.fired.extend(w);
    }

    fn execute(&mut self, client: u32, op: &ZkOp) -> ZkReply {
        let caller = client as NodeId;
        match op {
            ZkOp::Connect => {
                self.last_session += 1;
                self.sessions.insert(self.last_session, caller);
                ZkReply::Connected {
                    session: self.last_session,
                }
            }
            ZkOp::Create { session } => {
                if !self.sessions.contains_key(session) {
                    return ZkReply::Created { seq: None };
                }
                self.last_seq += 1;
                self.children.insert(self.last_seq, *session);
                self.children_changed();
                ZkReply::Created {
                    seq: Some(self.last_seq),
                }
            }
            ZkOp::Delete { seq } => {
                let owner = self
                    .children
                    .get(seq)
                    .and_then(|s| self.sessions.get(s))
                    .copied();
                if owner == Some(caller) {
                    self.delete(*seq);
                }
                ZkReply::Done
            }
            ZkOp::GetChildren { watch } => {
                if *watch {
                    self.child_watches.insert(caller);
                }
                ZkReply::Children {
                    seqs: self.children.keys().copied().collect(),
                }
            }
            ZkOp::Exists { seq } => {
                let exists = self.children.contains_key(seq);
                if exists {
                    self.exists_watches.entry(*seq).or_default().insert(caller);
                }
                ZkReply::Exists { exists }
            }
            ZkOp::ExpireSession { session } => {
                if self.sessions.remove(session).is_some() {
                    let owned: Vec<u64> = self
                        .children
                        .iter()
                        .filter(|(_, s)| *s == session)
                        .map(|(q, _)| *q)
                        .collect();
                    for q in owned {
                        self.delete(q);
                    }
                }
                ZkReply::Done
            }
        }
    }
}

impl StateMachine for ZkMachine {
    type Op = ZkOp;
    type Reply = ZkReply;

    fn apply(&mut self, client: u32, seq: u64, op: &ZkOp, dedup: bool) -> Applied<ZkReply> {
        if dedup {
            if let Some((last, reply)) = self.dedup.get(&client) {
                if seq == *last {
                    return Applied::Duplicate(reply.clone());
                }
                if seq < *last {
                    return Applied::Stale;
                }
            }
        }
        let reply = self.execute(client, op);
        self.dedup.insert(client, (seq, reply.clone()));
        Applied::Fresh(reply)
    }

    fn last_reply(&self, client: u32) -> Option<(u64, &ZkReply)> {
        self.dedup.get(&client).map(|(s, r)| (*s, r))
    }

    fn not_leader(hint: Option<NodeId>) -> ZkReply {
        ZkReply::NotLeader { hint }
    }

    fn is_write(op: &ZkOp) -> bool {
        !matches!(op, ZkOp::GetChildren { watch: false })
    }

    fn is_read(_op: &ZkOp) -> bool {
        // Every request goes through the log (watches are state, so even reads write).
        false
    }

    fn read(&self, _op: &ZkOp) -> ZkReply {
        ZkReply::NotLeader { hint: None }
    }

    fn digest(op: &ZkOp, h: &mut Fnv) {
        match op {
            ZkOp::Connect => h.add(20),
            ZkOp::Create { session } => {
                h.add(21);
                h.add(*session);
            }
            ZkOp::Delete { seq } => {
                h.add(22);
                h.add(*seq);
            }
            ZkOp::GetChildren { watch } => {
                h.add(23);
                h.add(*watch as u64);
            }
            ZkOp::Exists { seq } => {
                h.add(24);
                h.add(*seq);
            }
            ZkOp::ExpireSession { session } => {
                h.add(25);
                h.add(*session);
            }
        }
    }
}

/// The tag of the replica's session-expiry timer (Raft's timers use small tags).
pub(crate) const EXPIRY_TICK: u64 = 1 << 40;

/// One replica of the lock service: a Raft server driving [`ZkMachine`], plus what only the
/// leader keeps (session deadlines) and does (expire sessions, answer pings, notify
/// watchers).
pub struct ZkReplica {
    /// The Raft server.
    pub raft: Server<ZkMachine, Msg>,
    session_timeout_ns: Nanos,
    /// Leader only: session -> local-clock deadline.
    deadlines: BTreeMap<u64, Nanos>,
    /// The term in which this replica last led and was ready (deadlines belong to it).
    led_term: Option<u64>,
    /// Sessions whose expiry this leader has proposed.
    expiring: BTreeSet<u64>,
}

/// Raft's parameters for the lock service: PreVote and CheckQuorum on, so that a leader cut
/// off from the majority stops answering pings within an election timeout.
pub(crate) fn raft_params() -> raft::Params {
    raft::Params {
        pre_vote: true,
        check_quorum: true,
        snapshot_entries: 500,
        ..raft::Params::default()
    }
}

impl ZkReplica {
    /// The replica's state for the report's timeline: its Raft state, and who holds the lock
    /// in the state it has applied (the lowest sequence number, which is the fencing token).
    pub fn summary(&self) -> sim_core::summary::StateSummary {
        let mut s = self.raft.summary();
        let m = self.raft.state();
        if let Some((seq, session)) = m.children.iter().next() {
            let who = match m.sessions.get(session) {
                Some(c) => format!("n{c}"),
                None => format!("session {session}"),
            };
            s.lock = Some(format!("held by {who}, token {seq}"));
            let waiting = m.children.len() - 1;
            if waiting > 0 {
                s.detail.push_str(&format!(", {waiting} waiting"));
            }
        }
        s
    }

    /// Replica `id` of `servers_count` nodes (the non-replica nodes never join: the Raft
    /// configuration is `0..replicas`).
    pub fn new(raft_params: Rc<raft::Params>, p: &Params, id: NodeId, replicas: usize) -> Self {
        ZkReplica {
            raft: Server::new(raft_params, id, replicas),
            session_timeout_ns: p.session_timeout.0,
            deadlines: BTreeMap::new(),
            led_term: None,
            expiring: BTreeSet::new(),
        }
    }

    /// Whether this replica leads and has applied everything committed before its term.
    fn ready(&self) -> bool {
        self.raft.ready_to_serve()
    }

    fn tick_period(&self) -> Nanos {
        (self.session_timeout_ns / 4).max(1)
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        self.raft.start(ctx);
        ctx.set_timer(self.tick_period(), EXPIRY_TICK);
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Raft(m) => self.raft.message(ctx, from, m),
            Msg::Ping { session } => {
                ctx.count("lock.heartbeats", 1.0);
                if self.ready() {
                    self.sync_sessions(ctx);
                    let alive = self.raft.state().sessions.contains_key(&session);
                    if alive {
                        self.deadlines
                            .insert(session, ctx.now_local() + self.session_timeout_ns);
                    }
                    ctx.send(from, Msg::Pong { session, alive });
                } else if !self.raft.is_leader() {
                    ctx.send(
                        from,
                        Msg::NotLeader {
                            hint: self.raft.leader_hint(),
                        },
                    );
                }
                // A leader still catching up ignores the ping: the next one will do.
            }
            _ => {}
        }
        self.after(ctx);
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        if tag == EXPIRY_TICK {
            ctx.set_timer(self.tick_period(), EXPIRY_TICK);
            self.raft.applied_now.clear();
            if self.ready() {
                self.sync_sessions(ctx);
                let now = ctx.now_local();
                let due: Vec<u64> = self
                    .deadlines
                    .iter()
                    .filter(|(s, d)| **d <= now && !self.expiring.contains(s))
                    .map(|(s, _)| *s)
                    .collect();
                for session in due {
                    self.expiring.insert(session);
                    ctx.count("lock.sessions_expired", 1.0);
                    let seq = self.raft.last_index() + 1;
                    self.raft
                        .propose(ctx, SERVICE_CLIENT, seq, ZkOp::ExpireSession { session });
                }
            }
        } else {
            self.raft.timer(ctx, timer, tag);
        }
        self.after(ctx);
    }

    /// Keeps the deadlines in step with the applied sessions; a new leader (or a session it
    /// has not seen before) starts from a fresh timeout.
    fn sync_sessions(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let term = self.raft.term;
        if self.led_term != Some(term) {
            self.led_term = Some(term);
            self.deadlines.clear();
            self.expiring.clear();
        }
        let fresh = ctx.now_local() + self.session_timeout_ns;
        let sessions = &self.raft.state().sessions;
        self.deadlines.retain(|s, _| sessions.contains_key(s));
        self.expiring.retain(|s| sessions.contains_key(s));
        for s in sessions.keys() {
            self.deadlines.entry(*s).or_insert(fresh);
        }
    }

    /// After every callback: the leader notifies the watchers of what it applied.
    fn after(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let fired = std::mem::take(&mut self.raft.state_mut().fired);
        if self.raft.is_leader() {
            for c in fired {
                ctx.count("lock.watch_messages", 1.0);
                send_lock(ctx, c, Msg::WatchFired);
            }
        } else {
            self.led_term = None;
            self.deadlines.clear();
            self.expiring.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_grow_and_expiry_deletes_and_fires() {
        let mut m = ZkMachine::default();
        let s = match m.execute(7, &ZkOp::Connect) {
            ZkReply::Connected { session } => session,
            r => panic!("{r:?}"),
        };
        let t = match m.execute(8, &ZkOp::Connect) {
            ZkReply::Connected { session } => session,
            r => panic!("{r:?}"),
        };
        assert_eq!(
            m.execute(7, &ZkOp::Create { session: s }),
            ZkReply::Created { seq: Some(1) }
        );
        assert_eq!(
            m.execute(8, &ZkOp::Create { session: t }),
            ZkReply::Created { seq: Some(2) }
        );
        assert_eq!(
            m.execute(8, &ZkOp::Exists { seq: 1 }),
            ZkReply::Exists { exists: true }
        );
        m.fired.clear();
        // Only the owner may delete an entry.
        m.execute(8, &ZkOp::Delete { seq: 1 });
        assert!(m.children.contains_key(&1));
        m.execute(SERVICE_CLIENT, &ZkOp::ExpireSession { session: s });
        assert_eq!(m.children.keys().copied().collect::<Vec<_>>(), vec![2]);
        assert_eq!(m.fired, vec![8]);
        assert_eq!(
            m.execute(7, &ZkOp::Create { session: s }),
            ZkReply::Created { seq: None }
        );
    }

    #[test]
    fn a_retried_create_makes_one_entry() {
        let mut m = ZkMachine::default();
        m.apply(3, 1, &ZkOp::Connect, true);
        let first = m.apply(3, 2, &ZkOp::Create { session: 1 }, true);
        let again = m.apply(3, 2, &ZkOp::Create { session: 1 }, true);
        assert_eq!(first, Applied::Fresh(ZkReply::Created { seq: Some(1) }));
        assert_eq!(again, Applied::Duplicate(ZkReply::Created { seq: Some(1) }));
        assert_eq!(m.children.len(), 1);
    }
}
