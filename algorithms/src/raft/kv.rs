//! The replicated state machine: the [`StateMachine`] trait a Raft server drives, and its
//! key-value implementation (get, put and compare-and-set, with the client sessions that make
//! a retried command take effect once).

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sim_core::NodeId;

use super::msg::{ClientResult, Fnv, KvOp};

/// What Raft replicates: a deterministic state machine that applies client commands in log
/// order. Every replica applies the same commands in the same order and so holds the same
/// state; the snapshot is the state itself (serialized).
///
/// The state also keeps, per client, the last command applied and its reply, so that a retried
/// command (same client id and sequence number) is answered, not applied again.
pub trait StateMachine:
    Clone + Debug + Default + PartialEq + Eq + Serialize + DeserializeOwned + 'static
{
    /// A client command.
    type Op: Clone + Debug + PartialEq + Eq + Serialize + DeserializeOwned + 'static;
    /// The answer to a client.
    type Reply: Clone + Debug + PartialEq + Eq + Serialize + DeserializeOwned + 'static;

    /// Applies a client command once per (client, seq); with `dedup` off (a bug switch) every
    /// copy takes effect.
    fn apply(&mut self, client: u32, seq: u64, op: &Self::Op, dedup: bool) -> Applied<Self::Reply>;
    /// The client's last applied sequence number and its reply, if any.
    fn last_reply(&self, client: u32) -> Option<(u64, &Self::Reply)>;
    /// The reply that redirects a client to `hint`.
    fn not_leader(hint: Option<NodeId>) -> Self::Reply;
    /// Whether the command changes the state (for the exactly-once check).
    fn is_write(op: &Self::Op) -> bool;
    /// Whether the command is a read that ReadIndex or a lease may serve without the log.
    fn is_read(op: &Self::Op) -> bool {
        !Self::is_write(op)
    }
    /// Answers a read from the current state, changing nothing.
    fn read(&self, op: &Self::Op) -> Self::Reply;
    /// Adds the command to a digest (for the chain hash that checks log matching).
    fn digest(op: &Self::Op, h: &mut Fnv);
    /// The (key, value) a command writes, for the fresh-reads check of key-value stores.
    fn written(_op: &Self::Op) -> Option<(u32, u64)> {
        None
    }
}

/// The key-value state and, per client, the last command applied and its result.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvState {
    /// Key to value.
    pub data: BTreeMap<u32, u64>,
    /// Client id to (last sequence number applied, its result).
    pub sessions: BTreeMap<u32, (u64, ClientResult)>,
}

/// What applying a client command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied<R = ClientResult> {
    /// It took effect (or was a read) with this result.
    Fresh(R),
    /// It is a retry of the client's last command: the saved result, nothing changed.
    Duplicate(R),
    /// It is older than the client's last command (its client has moved on): ignored.
    Stale,
}

impl KvState {
    /// Executes an operation, ignoring sessions.
    pub fn execute(&mut self, op: &KvOp) -> ClientResult {
        match op {
            KvOp::Get { key } => ClientResult::Value(self.data.get(key).copied()),
            KvOp::Put { key, value } => {
                self.data.insert(*key, *value);
                ClientResult::Done
            }
            KvOp::Cas { key, from, to } => {
                if self.data.get(key) == Some(from) {
                    self.data.insert(*key, *to);
                    ClientResult::Done
                } else {
                    ClientResult::CasFailed
                }
            }
        }
    }

    /// Applies a client command once per (client, seq); with `dedup` off (a bug switch) every
    /// copy takes effect.
    pub fn apply(&mut self, client: u32, seq: u64, op: &KvOp, dedup: bool) -> Applied {
        if dedup {
            if let Some((last, result)) = self.sessions.get(&client) {
                if seq == *last {
                    return Applied::Duplicate(result.clone());
                }
                if seq < *last {
                    return Applied::Stale;
                }
            }
        }
        let result = self.execute(op);
        self.sessions.insert(client, (seq, result.clone()));
        Applied::Fresh(result)
    }
}

impl StateMachine for KvState {
    type Op = KvOp;
    type Reply = ClientResult;

    fn apply(&mut self, client: u32, seq: u64, op: &KvOp, dedup: bool) -> Applied {
        KvState::apply(self, client, seq, op, dedup)
    }

    fn last_reply(&self, client: u32) -> Option<(u64, &ClientResult)> {
        self.sessions.get(&client).map(|(s, r)| (*s, r))
    }

    fn not_leader(hint: Option<NodeId>) -> ClientResult {
        ClientResult::NotLeader { hint }
    }

    fn is_write(op: &KvOp) -> bool {
        op.is_write()
    }

    fn read(&self, op: &KvOp) -> ClientResult {
        match op {
            KvOp::Get { key } => ClientResult::Value(self.data.get(key).copied()),
            _ => ClientResult::NotLeader { hint: None },
        }
    }

    fn digest(op: &KvOp, h: &mut Fnv) {
        match op {
            KvOp::Get { key } => {
                h.add(10);
                h.add(*key as u64);
            }
            KvOp::Put { key, value } => {
                h.add(11);
                h.add(*key as u64);
                h.add(*value);
            }
            KvOp::Cas { key, from, to } => {
                h.add(12);
                h.add(*key as u64);
                h.add(*from);
                h.add(*to);
            }
        }
    }

    fn written(op: &KvOp) -> Option<(u32, u64)> {
        match op {
            KvOp::Put { key, value } => Some((*key, *value)),
            KvOp::Cas { key, to, .. } => Some((*key, *to)),
            KvOp::Get { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_command_applies_once() {
        let mut kv = KvState::default();
        let put = KvOp::Put { key: 1, value: 5 };
        assert_eq!(
            kv.apply(7, 1, &put, true),
            Applied::Fresh(ClientResult::Done)
        );
        kv.execute(&KvOp::Put { key: 1, value: 6 });
        assert_eq!(
            kv.apply(7, 1, &put, true),
            Applied::Duplicate(ClientResult::Done)
        );
        assert_eq!(kv.data[&1], 6);
        // Without deduplication the retry overwrites the later write.
        assert_eq!(
            kv.apply(7, 1, &put, false),
            Applied::Fresh(ClientResult::Done)
        );
        assert_eq!(kv.data[&1], 5);
    }

    #[test]
    fn cas_compares() {
        let mut kv = KvState::default();
        let cas = KvOp::Cas {
            key: 0,
            from: 1,
            to: 2,
        };
        assert_eq!(kv.execute(&cas), ClientResult::CasFailed);
        kv.execute(&KvOp::Put { key: 0, value: 1 });
        assert_eq!(kv.execute(&cas), ClientResult::Done);
        assert_eq!(
            kv.execute(&KvOp::Get { key: 0 }),
            ClientResult::Value(Some(2))
        );
    }
}
