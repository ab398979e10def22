//! The node's write-ahead log: one append-only log on its disk for every role. A record is
//! durable once the log is synced; a crash keeps the synced prefix. After a restart the node
//! replays the log into [`Replay`] and each role rebuilds itself from it.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::storage::Storage;
use sim_core::{Ctx, NodeId};

use super::msg::{Msg, Piece, TxnId, TxnSpec};
use super::participant::Key;
use super::paxos_commit::AccTxn;
use crate::bytes::{put_u64, take_u32, take_u64, take_u8};

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
    ctx.storage().append(LOG, encode(rec));
}

// The records' binary form (crate::bytes): a tag byte, then the fields. A 2PC run appends a
// few records per transaction on every participant, so their form is most of a throughput
// run's memory; JSON was two to three times the size and cost its encoding on every append.
// The Paxos Commit acceptor's state, with its map of instances, stays JSON after its tag.
const TAG_DATA: u8 = 0;
const TAG_PREPARED: u8 = 1;
const TAG_OUTCOME: u8 = 2;
const TAG_COORD_COMMIT: u8 = 3;
const TAG_COORD_FORGET: u8 = 4;
const TAG_ACCEPTOR: u8 = 5;
const TAG_ROUND: u8 = 6;

/// A record in its binary form.
fn encode(rec: &Rec) -> Vec<u8> {
    let mut b = Vec::with_capacity(24);
    match rec {
        Rec::Data { key, value } => {
            b.push(TAG_DATA);
            put_u64(&mut b, *key);
            put_u64(&mut b, *value as u64);
        }
        Rec::Prepared { spec, pre } => {
            b.push(TAG_PREPARED);
            b.push(u8::from(*pre));
            put_spec(&mut b, spec);
        }
        Rec::Outcome { txn, commit } => {
            b.push(TAG_OUTCOME);
            put_u64(&mut b, *txn);
            b.push(u8::from(*commit));
        }
        Rec::CoordCommit { spec } => {
            b.push(TAG_COORD_COMMIT);
            put_spec(&mut b, spec);
        }
        Rec::CoordForget { txn } => {
            b.push(TAG_COORD_FORGET);
            put_u64(&mut b, *txn);
        }
        Rec::Acceptor { .. } => {
            b.push(TAG_ACCEPTOR);
            // Our own record types always serialize; a failure is a programming error.
            b.extend(serde_json::to_vec(rec).expect("a log record serializes"));
        }
        Rec::Round { round } => {
            b.push(TAG_ROUND);
            put_u64(&mut b, *round);
        }
    }
    b
}

fn put_spec(b: &mut Vec<u8>, spec: &TxnSpec) {
    put_u64(b, spec.id);
    put_u64(b, spec.client as u64);
    put_u64(b, spec.coord as u64);
    put_u64(b, spec.parts.len() as u64);
    for &p in &spec.parts {
        put_u64(b, p as u64);
    }
    put_u64(b, spec.pieces.len() as u64);
    for &(node, piece) in &spec.pieces {
        put_u64(b, node as u64);
        let (tag, id, x) = match piece {
            Piece::Debit { acct, amount } => (0u8, acct, amount),
            Piece::Credit { acct, amount } => (1, acct, amount),
            Piece::Write { reg, value } => (2, reg, value),
            Piece::ReadAll => (3, 0, 0),
        };
        b.push(tag);
        put_u64(b, u64::from(id));
        put_u64(b, x as u64);
    }
}

/// Reads [`encode`]'s form back. The log holds only records written by [`append`], so a
/// short or unknown record is a programming error.
fn decode(bytes: &[u8]) -> Rec {
    read(&mut &bytes[..]).expect("the log holds records written by append")
}

fn read(b: &mut &[u8]) -> Option<Rec> {
    Some(match take_u8(b)? {
        TAG_DATA => Rec::Data {
            key: take_u64(b)?,
            value: take_u64(b)? as i64,
        },
        TAG_PREPARED => {
            let pre = take_u8(b)? != 0;
            Rec::Prepared {
                spec: Rc::new(read_spec(b)?),
                pre,
            }
        }
        TAG_OUTCOME => Rec::Outcome {
            txn: take_u64(b)?,
            commit: take_u8(b)? != 0,
        },
        TAG_COORD_COMMIT => Rec::CoordCommit {
            spec: Rc::new(read_spec(b)?),
        },
        TAG_COORD_FORGET => Rec::CoordForget { txn: take_u64(b)? },
        TAG_ACCEPTOR => serde_json::from_slice(b).ok()?,
        TAG_ROUND => Rec::Round {
            round: take_u64(b)?,
        },
        _ => return None,
    })
}

fn read_spec(b: &mut &[u8]) -> Option<TxnSpec> {
    let node = |b: &mut &[u8]| take_u32(b).map(|n| n as NodeId);
    let id = take_u64(b)?;
    let client = node(b)?;
    let coord = node(b)?;
    let parts = (0..take_u64(b)?).map(|_| node(b)).collect::<Option<_>>()?;
    let pieces = (0..take_u64(b)?)
        .map(|_| {
            let n = node(b)?;
            let (tag, id, x) = (take_u8(b)?, take_u32(b)?, take_u64(b)? as i64);
            let piece = match tag {
                0 => Piece::Debit {
                    acct: id,
                    amount: x,
                },
                1 => Piece::Credit {
                    acct: id,
                    amount: x,
                },
                2 => Piece::Write { reg: id, value: x },
                3 => Piece::ReadAll,
                _ => return None,
            };
            Some((n, piece))
        })
        .collect::<Option<_>>()?;
    Some(TxnSpec {
        id,
        client,
        coord,
        parts,
        pieces,
    })
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
        let rec = decode(bytes);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record reads back as written, whatever its pieces and sizes.
    #[test]
    fn every_record_reads_back_as_written() {
        let spec = Rc::new(TxnSpec {
            id: (7u64 << 32) | 12,
            client: 9,
            coord: 1,
            parts: vec![1, 3, 4],
            pieces: vec![
                (
                    1,
                    Piece::Debit {
                        acct: 2,
                        amount: 50,
                    },
                ),
                (
                    3,
                    Piece::Credit {
                        acct: 70_000,
                        amount: -5,
                    },
                ),
                (
                    4,
                    Piece::Write {
                        reg: 1,
                        value: i64::MIN,
                    },
                ),
                (4, Piece::ReadAll),
            ],
        });
        let state = AccTxn {
            parts: vec![0, 2],
            leader: 2,
            promised: 3,
            accepted: BTreeMap::from([(0, (3, true)), (2, (1, false))]),
            bundled: true,
            depth: 4,
        };
        let recs = [
            Rec::Data {
                key: u64::MAX,
                value: -1,
            },
            Rec::Prepared {
                spec: spec.clone(),
                pre: true,
            },
            Rec::Prepared {
                spec: Rc::new(TxnSpec {
                    parts: vec![],
                    pieces: vec![],
                    ..(*spec).clone()
                }),
                pre: false,
            },
            Rec::Outcome {
                txn: 5,
                commit: true,
            },
            Rec::Outcome {
                txn: 6,
                commit: false,
            },
            Rec::CoordCommit { spec },
            Rec::CoordForget { txn: 1 << 40 },
            Rec::Acceptor { txn: 3, state },
            Rec::Round { round: 17 },
        ];
        for rec in &recs {
            let back = decode(&encode(rec));
            assert_eq!(format!("{back:?}"), format!("{rec:?}"));
        }
        // The common records are small: an outcome is 10 bytes, a third of its JSON.
        let outcome = Rec::Outcome {
            txn: 5,
            commit: true,
        };
        assert_eq!(encode(&outcome).len(), 10);
        assert!(3 * encode(&outcome).len() < serde_json::to_vec(&outcome).unwrap().len());
    }
}
