//! What the commit protocols say to each other: transactions as the client ships them, and the
//! messages of 2PC, 3PC and Paxos Commit.
//!
//! Every message carries `depth`, the number of message delays on the causal chain that led to
//! it (the client's request arrives with depth 1). In a fault-free run the depth at which the
//! last participant learns the outcome is the protocol's message-delay count, the figure Gray
//! and Lamport tabulate.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::{Message, NodeId};

/// A transaction id: the client's node id in the high bits, its sequence number below.
pub type TxnId = u64;

/// Short printable form of a transaction id: `t<client>.<seq>`.
pub fn txn_name(txn: TxnId) -> String {
    format!("t{}.{}", txn >> 32, txn & 0xffff_ffff)
}

/// One participant's part of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Piece {
    /// Take `amount` from an account (refused, a "no" vote, if the balance is short).
    Debit {
        /// The account.
        acct: u32,
        /// How much.
        amount: i64,
    },
    /// Add `amount` to an account.
    Credit {
        /// The account.
        acct: u32,
        /// How much.
        amount: i64,
    },
    /// Overwrite a register.
    Write {
        /// The register.
        reg: u32,
        /// The new value.
        value: i64,
    },
    /// Read every account the participant holds (shared locks on all of them).
    ReadAll,
}

/// A transaction as the client ships it to its coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnSpec {
    /// Its id.
    pub id: TxnId,
    /// The client to answer.
    pub client: NodeId,
    /// The coordinator (a participant: the lowest-numbered one).
    pub coord: NodeId,
    /// The participants, ascending.
    pub parts: Vec<NodeId>,
    /// Each participant's pieces.
    pub pieces: Vec<(NodeId, Piece)>,
}

impl TxnSpec {
    /// The pieces that participant `node` runs.
    pub fn pieces_for(&self, node: NodeId) -> impl Iterator<Item = Piece> + '_ {
        self.pieces
            .iter()
            .filter(move |(n, _)| *n == node)
            .map(|(_, p)| *p)
    }

    /// Rank of `node` for taking over a stalled transaction: 0 for the lowest participant
    /// other than the coordinator, ..., and the coordinator last (it asks rather than leads
    /// when it comes back).
    pub fn rank(&self, node: NodeId) -> usize {
        if node == self.coord {
            return self.parts.len();
        }
        self.parts
            .iter()
            .filter(|&&p| p != self.coord)
            .position(|&p| p == node)
            .unwrap_or(self.parts.len())
    }
}

/// What a participant tells a 3PC terminator about a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TermState {
    /// Aborted (or never voted: it aborts now).
    Aborted,
    /// Voted yes, no pre-commit yet.
    Uncertain,
    /// Pre-committed.
    PreCommitted,
    /// Committed.
    Committed,
}

/// An acceptor's vote on one participant's instance: (ballot, prepared?).
pub type Accepted = (u64, bool);

/// The messages, with their causal depth.
#[derive(Clone, Debug)]
pub struct Msg {
    /// Message delays on the causal chain ending with this message.
    pub depth: u32,
    /// What it says.
    pub body: Body,
}

/// The message kinds.
#[derive(Clone, Debug)]
pub enum Body {
    /// Client to coordinator: run this transaction.
    Begin(Rc<TxnSpec>),
    /// Coordinator to client: the outcome, and the accounts read (for `read_all`).
    Outcome {
        /// The transaction.
        txn: TxnId,
        /// Committed or aborted.
        commit: bool,
        /// (account, balance) pairs read.
        reads: Vec<(u32, i64)>,
    },
    /// Coordinator to participant: lock, check, log prepared, vote.
    Prepare(Rc<TxnSpec>),
    /// Participant to 2PC/3PC coordinator: the vote (with what it read).
    Vote {
        /// The transaction.
        txn: TxnId,
        /// Yes (prepared) or no.
        yes: bool,
        /// Accounts read.
        reads: Vec<(u32, i64)>,
    },
    /// 3PC: everyone voted yes; move to pre-committed.
    PreCommit {
        /// The transaction.
        txn: TxnId,
    },
    /// 3PC: pre-committed.
    PreAck {
        /// The transaction.
        txn: TxnId,
    },
    /// The outcome, to a participant.
    Decision {
        /// The transaction.
        txn: TxnId,
        /// Commit or abort.
        commit: bool,
    },
    /// Participant to coordinator: outcome applied (the coordinator may forget).
    Ack {
        /// The transaction.
        txn: TxnId,
    },
    /// An uncertain participant asks the coordinator and its peers what happened.
    Query {
        /// The transaction.
        txn: TxnId,
    },
    /// Answer to a query: the outcome if known.
    Status {
        /// The transaction.
        txn: TxnId,
        /// None: I do not know either.
        outcome: Option<bool>,
    },
    /// 3PC termination: a backup coordinator asks for the participant's state.
    StateReq {
        /// The transaction.
        txn: TxnId,
    },
    /// 3PC termination: the state.
    StateRep {
        /// The transaction.
        txn: TxnId,
        /// The participant's state.
        state: TermState,
    },
    /// Paxos Commit phase 2a: accept these votes (participant instance, prepared?) at `ballot`.
    P2a {
        /// The transaction.
        txn: TxnId,
        /// Its participants (the acceptor learns how many instances there are).
        parts: Rc<[NodeId]>,
        /// Where to send phase 2b.
        leader: NodeId,
        /// The ballot (0 is the participant's own).
        ballot: u64,
        /// (participant, prepared?) per instance.
        entries: Vec<(NodeId, bool)>,
    },
    /// Paxos Commit phase 2b: the acceptor accepted these at `ballot`.
    P2b {
        /// The transaction.
        txn: TxnId,
        /// The ballot.
        ballot: u64,
        /// (participant, prepared?).
        entries: Vec<(NodeId, bool)>,
    },
    /// Paxos Commit phase 1a, from a recovery leader: promise `ballot` on every instance.
    P1a {
        /// The transaction.
        txn: TxnId,
        /// Its participants.
        parts: Rc<[NodeId]>,
        /// The ballot.
        ballot: u64,
    },
    /// Paxos Commit phase 1b: promised, with what was accepted per instance; or refused,
    /// with the higher ballot already promised.
    P1b {
        /// The transaction.
        txn: TxnId,
        /// The ballot promised (or, refused, the one that outranks it).
        ballot: u64,
        /// Whether this is a promise (false: refused).
        promised: bool,
        /// (participant, accepted) per instance.
        accepted: Vec<(NodeId, Option<Accepted>)>,
    },
    /// Paxos Commit: a participant's reads, straight to the leader (its vote goes to the
    /// acceptors).
    Reads {
        /// The transaction.
        txn: TxnId,
        /// Accounts read.
        reads: Vec<(u32, i64)>,
    },
}

impl Body {
    /// Whether Gray and Lamport count this message in their table (the normal-case flow up to
    /// every participant knowing the outcome). Acknowledgements, queries, termination and
    /// recovery traffic are counted apart.
    pub fn in_paper_count(&self) -> bool {
        matches!(
            self,
            Body::Prepare(_)
                | Body::Vote { .. }
                | Body::PreCommit { .. }
                | Body::PreAck { .. }
                | Body::Decision { .. }
                | Body::P2a { ballot: 0, .. }
                | Body::P2b { ballot: 0, .. }
        )
    }
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match &self.body {
            Body::Begin(_) => "begin",
            Body::Outcome { .. } => "outcome",
            Body::Prepare(_) => "prepare",
            Body::Vote { yes: true, .. } => "vote_yes",
            Body::Vote { yes: false, .. } => "vote_no",
            Body::PreCommit { .. } => "precommit",
            Body::PreAck { .. } => "preack",
            Body::Decision { commit: true, .. } => "commit",
            Body::Decision { commit: false, .. } => "abort",
            Body::Ack { .. } => "ack",
            Body::Query { .. } => "query",
            Body::Status { .. } => "status",
            Body::StateReq { .. } => "state_req",
            Body::StateRep { .. } => "state_rep",
            Body::P2a { .. } => "phase2a",
            Body::P2b { .. } => "phase2b",
            Body::P1a { .. } => "phase1a",
            Body::P1b { .. } => "phase1b",
            Body::Reads { .. } => "reads",
        }
    }
}
