//! The replica: the log of chosen commands and the key-value store they drive. It applies
//! slots strictly in order (a gap stops it until the gap is decided), deduplicates client
//! commands by (client, seq), and compacts the log into a durable snapshot.

use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::storage::Storage;

use super::msg::{Cmd, Snapshot, Value};
use crate::raft::kv::{Applied, KvState};
use crate::raft::msg::ClientResult;

/// A slot applied during the current callback, for the checkers.
#[derive(Clone, Copy, Debug)]
pub struct AppliedRecord {
    /// The slot.
    pub slot: u64,
    /// The value's digest.
    pub digest: u64,
    /// For a client write that took effect: (client, seq).
    pub fresh_write: Option<(u32, u64)>,
    /// Whether the slot holds a client command (not a no-op).
    pub client: bool,
}

/// A replica's log and state machine.
#[derive(Clone, Debug)]
pub struct Replica {
    /// Chosen values of slots after the snapshot (applied or not yet).
    pub log: BTreeMap<u64, Rc<Cmd>>,
    /// The durable snapshot: every slot up to `snap.slot`, applied.
    pub snap: Rc<Snapshot>,
    /// The key-value store with its client sessions.
    pub kv: KvState,
    /// The last slot applied (slots start at 1).
    pub applied: u64,
    /// Slots learned during the current callback: (slot, digest).
    pub recent_learned: Vec<(u64, u64)>,
    /// Slots applied during the current callback.
    pub recent_applied: Vec<AppliedRecord>,
}

impl Replica {
    /// Rebuilds a replica from its durable snapshot (an empty one at a cold start).
    pub fn load(st: &Storage) -> Self {
        let snap: Snapshot = st.get_json("snap").unwrap_or(Snapshot {
            slot: 0,
            kv: KvState::default(),
        });
        Replica {
            log: BTreeMap::new(),
            kv: snap.kv.clone(),
            applied: snap.slot,
            snap: Rc::new(snap),
            recent_learned: Vec::new(),
            recent_applied: Vec::new(),
        }
    }

    /// Clears what the checkers read after each callback.
    pub fn clear_recent(&mut self) {
        self.recent_learned.clear();
        self.recent_applied.clear();
    }

    /// Whether the value of `slot` is known (in the log or covered by the snapshot).
    pub fn knows(&self, slot: u64) -> bool {
        slot <= self.snap.slot || self.log.contains_key(&slot)
    }

    /// Records that `slot` holds `cmd`. A second, different value for a slot can come only
    /// from a broken protocol; the replica keeps its first and the checkers report it.
    pub fn learn(&mut self, slot: u64, cmd: Rc<Cmd>) {
        if slot <= self.snap.slot || self.log.contains_key(&slot) {
            return;
        }
        self.recent_learned.push((slot, cmd.digest()));
        self.log.insert(slot, cmd);
    }

    /// Applies every slot that follows the last applied one, in order, and returns each
    /// client command applied with its result (`None`: a stale retry, nobody to answer).
    pub fn apply_ready(&mut self, dedup: bool) -> Vec<(u32, u64, Option<ClientResult>)> {
        let mut out = Vec::new();
        while let Some(cmd) = self.log.get(&(self.applied + 1)).cloned() {
            self.applied += 1;
            let mut rec = AppliedRecord {
                slot: self.applied,
                digest: cmd.digest(),
                fresh_write: None,
                client: *cmd != Cmd::Noop,
            };
            if let Cmd::Client { client, seq, op } = &*cmd {
                let result = match self.kv.apply(*client, *seq, op, dedup) {
                    Applied::Fresh(r) => {
                        if op.is_write() {
                            rec.fresh_write = Some((*client, *seq));
                        }
                        Some(r)
                    }
                    Applied::Duplicate(r) => Some(r),
                    Applied::Stale => None,
                };
                out.push((*client, *seq, result));
            }
            self.recent_applied.push(rec);
        }
        debug_assert!(
            !self.log.contains_key(&(self.applied + 1)),
            "every ready slot is applied"
        );
        out
    }

    /// Takes a snapshot once `every` slots were applied since the last one; returns the
    /// slot it covers. The snapshot is synced before the log behind it is forgotten.
    pub fn maybe_compact(&mut self, st: &mut Storage, every: u64) -> Option<u64> {
        if every == 0 || self.applied < self.snap.slot + every {
            return None;
        }
        let snap = Snapshot {
            slot: self.applied,
            kv: self.kv.clone(),
        };
        st.put_json("snap", &snap);
        st.sync();
        self.log = self.log.split_off(&(self.applied + 1));
        self.snap = Rc::new(snap);
        Some(self.applied)
    }

    /// Installs a leader's snapshot if it is ahead of this replica; returns whether it was.
    pub fn install(&mut self, st: &mut Storage, snap: &Rc<Snapshot>) -> bool {
        if snap.slot <= self.applied {
            return false;
        }
        st.put_json("snap", &**snap);
        st.sync();
        self.kv = snap.kv.clone();
        self.applied = snap.slot;
        self.log = self.log.split_off(&(snap.slot + 1));
        self.snap = snap.clone();
        true
    }
}
