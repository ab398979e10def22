//! Raft's messages, log entries and the key-value commands they carry.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::{Message, NodeId};

use super::kv::{KvState, StateMachine};

/// A key-value operation, as a client asks for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    /// Read a key.
    Get {
        /// The key (`k3` is 3).
        key: u32,
    },
    /// Write a key.
    Put {
        /// The key.
        key: u32,
        /// The value.
        value: u64,
    },
    /// Set a key to `to` if it holds `from`.
    Cas {
        /// The key.
        key: u32,
        /// The expected value.
        from: u64,
        /// The new value.
        to: u64,
    },
}

impl KvOp {
    /// Whether the operation changes the state.
    pub fn is_write(&self) -> bool {
        !matches!(self, KvOp::Get { .. })
    }
}

/// What a log entry asks the state machine to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub enum Command<S: StateMachine = KvState> {
    /// The entry a new leader appends so that it can commit in its own term.
    Noop,
    /// A client's command, tagged for deduplication.
    Client {
        /// The client's id (its node index).
        client: u32,
        /// The client's sequence number; a retried command keeps it.
        seq: u64,
        /// The operation.
        op: S::Op,
    },
    /// A new cluster configuration (single-server membership change).
    Config {
        /// The voting members.
        members: Vec<NodeId>,
        /// How many scripted changes this configuration reflects.
        changes_done: u32,
    },
}

impl<S: StateMachine> Command<S> {
    /// A stable digest of the command, for the chain hash that checks log matching.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        match self {
            Command::Noop => h.add(1),
            Command::Client { client, seq, op } => {
                h.add(2);
                h.add(*client as u64);
                h.add(*seq);
                S::digest(op, &mut h);
            }
            Command::Config {
                members,
                changes_done,
            } => {
                h.add(3);
                h.add(*changes_done as u64);
                for m in members {
                    h.add(*m as u64);
                }
            }
        }
        h.0
    }
}

/// FNV-1a over 64-bit words: small, stable across platforms and runs.
pub struct Fnv(pub u64);

impl Fnv {
    /// The FNV offset basis.
    pub fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    /// Mixes in one word.
    pub fn add(&mut self, x: u64) {
        for b in x.to_le_bytes() {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Fnv::new()
    }
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Entry<S: StateMachine = KvState> {
    /// The term in which a leader created it.
    pub term: u64,
    /// What it does.
    pub cmd: Command<S>,
    /// Hash of this entry and every entry before it: two logs that hold the same hash at an
    /// index hold identical prefixes, which is what the log-matching check compares.
    pub chain: u64,
}

impl<S: StateMachine> Entry<S> {
    /// Builds an entry that follows an entry whose chain hash is `prev_chain`.
    pub fn new(term: u64, cmd: Command<S>, prev_chain: u64) -> Entry<S> {
        let mut h = Fnv(prev_chain);
        h.add(term);
        h.add(cmd.digest());
        Entry {
            term,
            cmd,
            chain: h.0,
        }
    }
}

/// A snapshot: the state machine after applying every entry up to `index`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound = "")]
pub struct Snapshot<S: StateMachine = KvState> {
    /// The last entry it covers.
    pub index: u64,
    /// That entry's term.
    pub term: u64,
    /// That entry's chain hash.
    pub chain: u64,
    /// The configuration as of `index`.
    pub members: Vec<NodeId>,
    /// Scripted membership changes reflected as of `index`.
    pub changes_done: u32,
    /// The state machine, with its client sessions.
    pub kv: S,
}

/// The answer a server gives a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResult {
    /// A read's value (`None`: never written).
    Value(Option<u64>),
    /// A write or a successful cas took effect.
    Done,
    /// A cas found another value; nothing changed.
    CasFailed,
    /// This server does not lead; try `hint` if known.
    NotLeader {
        /// The leader this server believes in.
        hint: Option<NodeId>,
    },
}

/// Raft's messages, between servers and between clients and servers.
#[derive(Clone, Debug)]
pub enum Msg<S: StateMachine = KvState> {
    /// A candidate (or pre-candidate) asks for a vote.
    RequestVote {
        /// The term the candidate stands in (for a pre-vote: the term it would stand in).
        term: u64,
        /// Index of the candidate's last entry.
        last_log_index: u64,
        /// Term of the candidate's last entry.
        last_log_term: u64,
        /// A pre-vote asks "would you vote?" without changing anyone's term.
        pre_vote: bool,
    },
    /// The answer to a vote request.
    RequestVoteReply {
        /// The voter's term (for a pre-vote: the term asked about, when granted).
        term: u64,
        /// Whether the vote is granted.
        granted: bool,
        /// Whether it answers a pre-vote.
        pre_vote: bool,
    },
    /// The leader replicates entries (none for a heartbeat).
    AppendEntries {
        /// The leader's term.
        term: u64,
        /// Index of the entry just before `entries`.
        prev_log_index: u64,
        /// Its term.
        prev_log_term: u64,
        /// Entries to append.
        entries: Vec<Entry<S>>,
        /// The leader's commit index.
        leader_commit: u64,
        /// The leader's round number, echoed back, to confirm leadership for reads.
        round: u64,
    },
    /// The follower's answer.
    AppendEntriesReply {
        /// The follower's term.
        term: u64,
        /// Whether the entries matched and were appended.
        success: bool,
        /// On success, the index of the last entry known to match the leader's log.
        match_index: u64,
        /// On failure, where the leader should back off to.
        conflict_index: u64,
        /// On failure, the term of the follower's conflicting entry, if any.
        conflict_term: Option<u64>,
        /// The round of the request.
        round: u64,
    },
    /// The leader sends its snapshot to a follower that is behind its log.
    InstallSnapshot {
        /// The leader's term.
        term: u64,
        /// The snapshot (shared: the network may copy the message).
        snapshot: Rc<Snapshot<S>>,
        /// The round.
        round: u64,
    },
    /// The follower installed (or already had) the snapshot.
    InstallSnapshotReply {
        /// The follower's term.
        term: u64,
        /// The snapshot's last index.
        match_index: u64,
        /// The round.
        round: u64,
    },
    /// A client's command.
    Request {
        /// The client's request number, echoed in the reply.
        req: u64,
        /// Client id (its node index).
        client: u32,
        /// Sequence number for deduplication.
        seq: u64,
        /// The operation.
        op: S::Op,
    },
    /// A server's answer to a client.
    Reply {
        /// The request number.
        req: u64,
        /// The outcome.
        result: S::Reply,
    },
}

impl<S: StateMachine> Message for Msg<S> {
    fn label(&self) -> &'static str {
        match self {
            Msg::RequestVote { pre_vote: true, .. } => "pre_vote",
            Msg::RequestVote { .. } => "request_vote",
            Msg::RequestVoteReply { pre_vote: true, .. } => "pre_vote_reply",
            Msg::RequestVoteReply { .. } => "request_vote_reply",
            Msg::AppendEntries { entries, .. } if entries.is_empty() => "heartbeat",
            Msg::AppendEntries { .. } => "append_entries",
            Msg::AppendEntriesReply { .. } => "append_entries_reply",
            Msg::InstallSnapshot { .. } => "install_snapshot",
            Msg::InstallSnapshotReply { .. } => "install_snapshot_reply",
            Msg::Request { .. } => "request",
            Msg::Reply { .. } => "reply",
        }
    }
}
