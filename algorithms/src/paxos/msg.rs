//! Paxos's ballots, commands and messages, for both the Synod protocol (one decision) and
//! Multi-Paxos (one decision per log slot).

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::Message;

use crate::bytes::{put_u64, take_u32, take_u64, take_u8};
use crate::raft::kv::KvState;
use crate::raft::msg::{ClientResult, Fnv, KvOp};

/// A ballot: a round number and the proposer that owns it. Ballots are totally ordered (round
/// first, then proposer), and no two proposers ever use the same ballot, so "the value of
/// ballot b" is well defined.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// The round.
    pub round: u64,
    /// The proposer's node index.
    pub node: u32,
}

impl Ballot {
    /// The ballot no proposer owns: every acceptor has promised at least it.
    pub const ZERO: Ballot = Ballot { round: 0, node: 0 };

    /// The smallest ballot of `node` above `seen`.
    pub fn above(seen: Ballot, node: usize) -> Ballot {
        Ballot {
            round: seen.round + 1,
            node: node as u32,
        }
    }

    /// A number that orders ballots, for plots (round, then proposer as a fraction).
    pub fn plot_value(self) -> f64 {
        self.round as f64 + self.node as f64 / 100.0
    }
}

impl std::fmt::Display for Ballot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "({}, n{})", self.round, self.node)
    }
}

/// A value an acceptor can accept: it has a stable digest so that checkers compare values
/// without caring about their type, and a compact binary form for the acceptor's durable
/// records (written for every accept, so JSON's cost showed in every run's profile).
pub trait Value:
    Clone + std::fmt::Debug + PartialEq + Serialize + for<'de> Deserialize<'de>
{
    /// A stable digest (equal values, equal digests).
    fn digest(&self) -> u64;
    /// Appends the value's binary form to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a value written by [`Value::encode`] from the front of `bytes`, advancing it;
    /// `None` if the bytes are not such a value.
    fn decode(bytes: &mut &[u8]) -> Option<Self>;
}

impl Value for u64 {
    fn digest(&self) -> u64 {
        *self
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, *self);
    }

    fn decode(bytes: &mut &[u8]) -> Option<Self> {
        take_u64(bytes)
    }
}

/// What a Multi-Paxos log slot holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cmd {
    /// Fills a slot that no earlier leader's value is known for (gap filling).
    Noop,
    /// A client's command, tagged for deduplication.
    Client {
        /// The client's id (its node index).
        client: u32,
        /// The client's sequence number; a retried command keeps it.
        seq: u64,
        /// The operation.
        op: KvOp,
    },
}

impl Value for Cmd {
    fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        match self {
            Cmd::Noop => h.add(1),
            Cmd::Client { client, seq, op } => {
                h.add(2);
                h.add(*client as u64);
                h.add(*seq);
                <KvState as crate::raft::kv::StateMachine>::digest(op, &mut h);
            }
        }
        h.0
    }

    /// A tag byte (0 no-op, 1 client command), then client, seq, and the operation as a tag
    /// byte (0 get, 1 put, 2 cas) and its fields, every number as 8 bytes.
    fn encode(&self, out: &mut Vec<u8>) {
        let Cmd::Client { client, seq, op } = self else {
            out.push(0);
            return;
        };
        out.push(1);
        put_u64(out, *client as u64);
        put_u64(out, *seq);
        match op {
            KvOp::Get { key } => {
                out.push(0);
                put_u64(out, *key as u64);
            }
            KvOp::Put { key, value } => {
                out.push(1);
                put_u64(out, *key as u64);
                put_u64(out, *value);
            }
            KvOp::Cas { key, from, to } => {
                out.push(2);
                put_u64(out, *key as u64);
                put_u64(out, *from);
                put_u64(out, *to);
            }
        }
    }

    fn decode(bytes: &mut &[u8]) -> Option<Self> {
        match take_u8(bytes)? {
            0 => return Some(Cmd::Noop),
            1 => {}
            _ => return None,
        }
        let client = take_u32(bytes)?;
        let seq = take_u64(bytes)?;
        let op = match take_u8(bytes)? {
            0 => KvOp::Get {
                key: take_u32(bytes)?,
            },
            1 => KvOp::Put {
                key: take_u32(bytes)?,
                value: take_u64(bytes)?,
            },
            2 => KvOp::Cas {
                key: take_u32(bytes)?,
                from: take_u64(bytes)?,
                to: take_u64(bytes)?,
            },
            _ => return None,
        };
        Some(Cmd::Client { client, seq, op })
    }
}

/// A Multi-Paxos snapshot: the state machine after applying every slot up to `slot`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The last slot it covers.
    pub slot: u64,
    /// The key-value store with its client sessions.
    pub kv: KvState,
}

/// Paxos's messages: between proposers and acceptors, to learners, and with clients.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Phase 1a: a proposer asks acceptors to promise ballot `b`, for every slot from
    /// `from_slot` on (the Synod protocol uses slot 0 only).
    Prepare {
        /// The ballot.
        b: Ballot,
        /// The first slot the proposer does not know to be chosen.
        from_slot: u64,
    },
    /// Phase 1b: the acceptor promises `b` and reports what it accepted from `from_slot` on.
    Promise {
        /// The ballot promised.
        b: Ballot,
        /// (slot, ballot, value) of every accepted proposal the acceptor holds.
        accepted: Vec<(u64, Ballot, Rc<Cmd>)>,
        /// The acceptor's snapshot when it covers slots the proposer asked about.
        snapshot: Option<Rc<Snapshot>>,
    },
    /// Phase 2a: the proposer asks acceptors to accept values in ballot `b`. With no entries
    /// it is the leader's heartbeat; `chosen` tells followers which slots are decided.
    Accept {
        /// The ballot.
        b: Ballot,
        /// (slot, value) pairs, batched.
        entries: Vec<(u64, Rc<Cmd>)>,
        /// Every slot up to this one is chosen, by the leader's knowledge.
        chosen: u64,
        /// The leader's heartbeat round, echoed back (for leases).
        round: u64,
    },
    /// Phase 2b: the acceptor accepted these slots in ballot `b`.
    Accepted {
        /// The ballot.
        b: Ballot,
        /// The slots accepted.
        slots: Vec<u64>,
        /// The acceptor's replica knows every slot up to this one to be chosen.
        known: u64,
        /// The heartbeat round of the request.
        round: u64,
    },
    /// A refusal: the acceptor has promised a higher ballot.
    Nack {
        /// The ballot refused.
        b: Ballot,
        /// The acceptor's promise.
        promised: Ballot,
    },
    /// The leader tells a lagging replica the values of chosen slots.
    Decided {
        /// (slot, value) pairs.
        entries: Vec<(u64, Rc<Cmd>)>,
    },
    /// The leader sends its snapshot to a replica behind its compacted log.
    InstallSnapshot {
        /// The snapshot.
        snapshot: Rc<Snapshot>,
    },
    /// Synod phase 1b: the acceptor's single-decree state.
    SynodPromise {
        /// The ballot promised.
        b: Ballot,
        /// The accepted (ballot, value), if any.
        accepted: Option<(Ballot, u64)>,
    },
    /// Synod phase 2a.
    SynodAccept {
        /// The ballot.
        b: Ballot,
        /// The value.
        value: u64,
    },
    /// Synod phase 2b, sent to every learner.
    SynodAccepted {
        /// The ballot.
        b: Ballot,
        /// The value.
        value: u64,
    },
    /// Synod: a learner that learned the chosen value tells the others.
    SynodChosen {
        /// The chosen value.
        value: u64,
    },
    /// A Synod client proposes a value.
    Propose {
        /// The client's request number.
        req: u64,
        /// The value.
        value: u64,
    },
    /// The answer to a Synod client: the chosen value.
    Learned {
        /// The request number.
        req: u64,
        /// The chosen value.
        value: u64,
    },
    /// A key-value client's command.
    Request {
        /// The client's request number, echoed in the reply.
        req: u64,
        /// Client id.
        client: u32,
        /// Sequence number for deduplication.
        seq: u64,
        /// The operation.
        op: KvOp,
    },
    /// A server's answer to a key-value client.
    Reply {
        /// The request number.
        req: u64,
        /// The outcome.
        result: ClientResult,
    },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Prepare { .. } => "prepare",
            Msg::Promise { .. } | Msg::SynodPromise { .. } => "promise",
            Msg::Accept { entries, .. } if entries.is_empty() => "heartbeat",
            Msg::Accept { .. } | Msg::SynodAccept { .. } => "accept",
            Msg::Accepted { .. } | Msg::SynodAccepted { .. } => "accepted",
            Msg::Nack { .. } => "nack",
            Msg::Decided { .. } | Msg::SynodChosen { .. } => "decided",
            Msg::InstallSnapshot { .. } => "install_snapshot",
            Msg::Propose { .. } => "propose",
            Msg::Learned { .. } => "learned",
            Msg::Request { .. } => "request",
            Msg::Reply { .. } => "reply",
        }
    }
}

impl crate::raft::client::KvClientMsg for Msg {
    const REDIRECTS: &'static str = "paxos.client_redirects";
    const RETRIES: &'static str = "paxos.client_retries";

    fn request(req: u64, client: u32, seq: u64, op: KvOp) -> Msg {
        Msg::Request {
            req,
            client,
            seq,
            op,
        }
    }

    fn into_reply(self) -> Option<(u64, ClientResult)> {
        match self {
            Msg::Reply { req, result } => Some((req, result)),
            _ => None,
        }
    }
}
