//! The node's write-ahead log: one append-only log on its disk for every role. A record is
//! durable once the log is synced; a crash keeps the synced prefix. After a restart the node
//! replays the log into [`Replay`] and each role rebuilds itself from it.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::storage::Storage;
use sim_core::Ctx;

use super::msg::{Msg, TxnId, TxnSpec};
use super::participant::Key;
use super::paxos_commit::AccTxn;

/// The log's name on the node's disk.
const LOG: &str = "wal";

/// A log record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Rec {
    /// Participant: a committed value.
    Data {
        /// The key.
        key: Key,
        /// Its value.
        value: i64,
    },
    /// Participant: prepared (voted yes); in 3PC, `pre` once pre-committed.
    Prepared {
        /// The transaction.
        spec: Rc<TxnSpec>,
        /// Pre-committed.
        pre: bool,
    },
    /// Participant: the outcome applied here.
    Outcome {
        /// The transaction.
        txn: TxnId,
        /// Committed or aborted.
        commit: bool,
    },
    /// Coordinator: the commit decision (presumed abort logs no aborts).
    CoordCommit {
        /// The transaction.
        spec: Rc<TxnSpec>,
    },
    /// Coordinator: every participant acknowledged the commit; it may be forgotten.
    CoordForget {
        /// The transaction.
        txn: TxnId,
    },
    /// Paxos Commit acceptor: its whole state for a transaction.
    Acceptor {
        /// The transaction.
        txn: TxnId,
        /// The state.
        state: AccTxn,
    },
    /// Paxos Commit: the highest ballot round this node has started.
    Round {
        /// The round.
        round: u64,
    },
}

/// Appends a record (durable after the next sync).
pub fn append(ctx: &mut Ctx<'_, Msg>, rec: &Rec) {
    // Our own record types always serialize; a failure is a programming error.
    let bytes = serde_json::to_vec(rec).expect("a log record serializes");
    ctx.storage().append(LOG, bytes);
}

/// What the log says, replayed in order.
#[derive(Debug, Default)]
pub struct Replay {
    /// Committed values.
    pub data: BTreeMap<Key, i64>,
    /// Outcomes applied.
    pub outcomes: BTreeMap<TxnId, bool>,
    /// Prepared transactions with no outcome: (transaction, pre-committed).
    pub prepared: BTreeMap<TxnId, (Rc<TxnSpec>, bool)>,
    /// Commit decisions not yet forgotten.
    pub commits: BTreeMap<TxnId, Rc<TxnSpec>>,
    /// Acceptor states.
    pub acceptor: BTreeMap<TxnId, AccTxn>,
    /// Highest round started.
    pub round: u64,
}

/// Replays the node's log.
pub fn replay(storage: &Storage) -> Replay {
    let mut r = Replay::default();
    for bytes in storage.log(LOG) {
        let rec: Rec =
            serde_json::from_slice(bytes).expect("the log holds records written by append");
        match rec {
            Rec::Data { key, value } => {
                r.data.insert(key, value);
            }
            Rec::Prepared { spec, pre } => {
                r.prepared.insert(spec.id, (spec, pre));
            }
            Rec::Outcome { txn, commit } => {
                r.prepared.remove(&txn);
                r.outcomes.insert(txn, commit);
            }
            Rec::CoordCommit { spec } => {
                r.commits.insert(spec.id, spec);
            }
            Rec::CoordForget { txn } => {
                r.commits.remove(&txn);
            }
            Rec::Acceptor { txn, state } => {
                r.acceptor.insert(txn, state);
            }
            Rec::Round { round } => r.round = r.round.max(round),
        }
    }
    r
}
