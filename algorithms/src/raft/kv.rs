//! The replicated state machine: a key-value map with get, put and compare-and-set, and the
//! client sessions that make a retried command take effect once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::msg::{ClientResult, KvOp};

/// The key-value state and, per client, the last command applied and its result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct KvState {
    /// Key to value.
    pub data: BTreeMap<u32, u64>,
    /// Client id to (last sequence number applied, its result).
    pub sessions: BTreeMap<u32, (u64, ClientResult)>,
}

/// What applying a client command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It took effect (or was a read) with this result.
    Fresh(ClientResult),
    /// It is a retry of the client's last command: the saved result, nothing changed.
    Duplicate(ClientResult),
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
