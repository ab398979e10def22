//! The acceptor: the memory of Paxos. It promises ballots and accepts proposals, one per
//! slot (the Synod protocol uses slot 0 only), and keeps both on durable storage, synced
//! before any reply that depends on them, so that a restarted acceptor never promises or
//! accepts against what it said before the crash.
//!
//! Durable state: `promised` (the highest ballot promised) and the append-only log `acc` of
//! accept records (slot, ballot, value), in the order they were made: on a restart the last
//! record of each slot is what it accepted. Compaction rewrites the log with the slots it
//! keeps. (It was one key per slot, `acc/{slot}`, as JSON: formatting, comparing and deleting
//! those keys cost about a third of a Multi-Paxos run.)

use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::storage::Storage;

use super::msg::{Ballot, Value};
use crate::bytes::{put_u64, take_u64};

/// One accept made during the current callback, for the checkers: (slot, ballot, digest).
pub type AcceptRecord = (u64, Ballot, u64);

/// The storage log of accept records.
const ACC_LOG: &str = "acc";

/// An accept record's bytes: slot, ballot round and proposer (8 bytes each), then the value
/// (at most 42 bytes for a [`super::msg::Cmd`], a cas).
fn record<V: Value>(slot: u64, b: Ballot, v: &V) -> Vec<u8> {
    let mut out = Vec::with_capacity(72);
    put_u64(&mut out, slot);
    put_u64(&mut out, b.round);
    put_u64(&mut out, b.node as u64);
    v.encode(&mut out);
    out
}

/// Reads an accept record written by [`record`].
fn read_record<V: Value>(mut bytes: &[u8]) -> Option<(u64, Ballot, V)> {
    let bytes = &mut bytes;
    let slot = take_u64(bytes)?;
    let round = take_u64(bytes)?;
    let node = u32::try_from(take_u64(bytes)?).ok()?;
    let v = V::decode(bytes)?;
    bytes
        .is_empty()
        .then_some((slot, Ballot { round, node }, v))
}

/// An acceptor holding values of type `V`.
#[derive(Clone, Debug)]
pub struct Acceptor<V: Value> {
    /// The highest ballot promised.
    pub promised: Ballot,
    /// Per slot: the ballot and value last accepted.
    pub accepted: BTreeMap<u64, (Ballot, Rc<V>)>,
    /// Accepts made during the current callback (cleared at its start).
    pub recent: Vec<AcceptRecord>,
}

impl<V: Value> Default for Acceptor<V> {
    fn default() -> Self {
        Acceptor {
            promised: Ballot::ZERO,
            accepted: BTreeMap::new(),
            recent: Vec::new(),
        }
    }
}

impl<V: Value> Acceptor<V> {
    /// Rebuilds an acceptor from durable storage (after a restart; empty at a cold start).
    pub fn load(st: &Storage) -> Self {
        let mut a = Acceptor::<V> {
            promised: st.get_json("promised").unwrap_or(Ballot::ZERO),
            ..Acceptor::default()
        };
        for bytes in st.log(ACC_LOG) {
            let (slot, b, v) =
                read_record::<V>(bytes).expect("the acceptor's log holds records it wrote");
            a.accepted.insert(slot, (b, Rc::new(v)));
        }
        a
    }

    /// Phase 1b: promises `b` if it is at least the current promise (a repeated prepare of
    /// the promised ballot is answered again). The promise is written to storage; with
    /// `sync` off (a bug switch) it is not synced, so a crash can forget it.
    pub fn prepare(&mut self, st: &mut Storage, b: Ballot, sync: bool) -> Result<(), Ballot> {
        if b < self.promised {
            return Err(self.promised);
        }
        if b > self.promised {
            self.promised = b;
            st.put_json("promised", &b);
            if sync {
                st.sync();
            }
        }
        debug_assert!(self.promised >= b, "a promise never goes down");
        Ok(())
    }

    /// Phase 2b: accepts `v` in `slot` under ballot `b` unless a higher ballot was promised
    /// (with `ignore_promise` on, a bug switch, it accepts anyway). The caller syncs storage
    /// once for a batch before replying.
    pub fn accept(
        &mut self,
        st: &mut Storage,
        b: Ballot,
        slot: u64,
        v: Rc<V>,
        ignore_promise: bool,
    ) -> Result<(), Ballot> {
        if b < self.promised && !ignore_promise {
            return Err(self.promised);
        }
        if self
            .accepted
            .get(&slot)
            .is_some_and(|(ab, av)| *ab == b && **av == *v)
        {
            // A duplicate accept: nothing new to store.
            return Ok(());
        }
        if b > self.promised {
            self.promised = b;
            st.put_json("promised", &b);
        }
        st.append(ACC_LOG, record(slot, b, &*v));
        self.recent.push((slot, b, v.digest()));
        self.accepted.insert(slot, (b, v));
        Ok(())
    }

    /// What the acceptor accepted from `from_slot` on, for a promise.
    pub fn report(&self, from_slot: u64) -> Vec<(u64, Ballot, Rc<V>)> {
        self.accepted
            .range(from_slot..)
            .map(|(s, (b, v))| (*s, *b, v.clone()))
            .collect()
    }

    /// Forgets every slot up to `upto` (they are in a durable snapshot): the log is rewritten
    /// with the records of the slots kept. The truncation is durable at once and the
    /// rewritten records are not, so the caller syncs before its callback ends (every caller
    /// does, right after).
    pub fn compact(&mut self, st: &mut Storage, upto: u64) {
        let keep = self.accepted.split_off(&(upto + 1));
        let dropped = !self.accepted.is_empty();
        self.accepted = keep;
        if !dropped {
            return;
        }
        st.truncate(ACC_LOG, 0);
        for (slot, (b, v)) in &self.accepted {
            st.append(ACC_LOG, record(*slot, *b, &**v));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(round: u64, node: u32) -> Ballot {
        Ballot { round, node }
    }

    #[test]
    fn promises_only_upward_and_refuses_lower_accepts() {
        let mut st = Storage::default();
        let mut a = Acceptor::<u64>::default();
        assert!(a.prepare(&mut st, b(2, 1), true).is_ok());
        assert_eq!(a.prepare(&mut st, b(1, 4), true), Err(b(2, 1)));
        assert_eq!(
            a.accept(&mut st, b(1, 4), 0, Rc::new(7), false),
            Err(b(2, 1))
        );
        // The bug switch accepts below the promise.
        assert!(a.accept(&mut st, b(1, 4), 0, Rc::new(7), true).is_ok());
        assert!(a.accept(&mut st, b(2, 1), 0, Rc::new(8), false).is_ok());
        assert_eq!(a.report(0), vec![(0, b(2, 1), Rc::new(8))]);
    }

    #[test]
    fn a_restart_keeps_synced_promises_and_loses_unsynced_ones() {
        let mut st = Storage::default();
        let mut a = Acceptor::<u64>::default();
        a.prepare(&mut st, b(3, 0), true).unwrap();
        a.accept(&mut st, b(3, 0), 5, Rc::new(9), false).unwrap();
        st.sync();
        a.prepare(&mut st, b(4, 2), false).unwrap();
        st.crash();
        let back = Acceptor::<u64>::load(&st);
        assert_eq!(back.promised, b(3, 0), "the unsynced promise is lost");
        assert_eq!(back.accepted[&5].1, Rc::new(9));
    }

    #[test]
    fn a_restart_sees_the_last_accept_of_each_slot_and_nothing_compacted() {
        use crate::paxos::msg::Cmd;
        use crate::raft::msg::KvOp;
        let cmd = |seq, op| Rc::new(Cmd::Client { client: 7, seq, op });
        let mut st = Storage::default();
        let mut a = Acceptor::<Cmd>::default();
        let put = cmd(1, KvOp::Put { key: 3, value: 9 });
        let cas = cmd(
            2,
            KvOp::Cas {
                key: 3,
                from: 9,
                to: 4,
            },
        );
        let get = cmd(3, KvOp::Get { key: u32::MAX });
        a.accept(&mut st, b(1, 0), 1, put.clone(), false).unwrap();
        a.accept(&mut st, b(1, 0), 2, Rc::new(Cmd::Noop), false)
            .unwrap();
        a.accept(&mut st, b(2, 1), 2, cas.clone(), false).unwrap();
        a.accept(&mut st, b(2, 1), 3, get.clone(), false).unwrap();
        st.sync();
        a.accept(&mut st, b(2, 1), 4, put.clone(), false).unwrap();
        st.crash();
        let back = Acceptor::<Cmd>::load(&st);
        let slots: Vec<_> = back.report(0).into_iter().collect();
        assert_eq!(
            slots,
            vec![
                (1, b(1, 0), put),
                (2, b(2, 1), cas.clone()),
                (3, b(2, 1), get.clone())
            ],
            "the later accept of slot 2 wins; the unsynced slot 4 is lost"
        );
        let mut a = back;
        a.compact(&mut st, 2);
        st.sync();
        let back = Acceptor::<Cmd>::load(&st);
        assert_eq!(back.report(0), vec![(3, b(2, 1), get)]);
        assert_eq!(back.promised, b(2, 1));
    }
}
