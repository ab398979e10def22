//! The acceptor: the memory of Paxos. It promises ballots and accepts proposals, one per
//! slot (the Synod protocol uses slot 0 only), and keeps both on durable storage, synced
//! before any reply that depends on them, so that a restarted acceptor never promises or
//! accepts against what it said before the crash.
//!
//! Durable state: `promised` (the highest ballot promised) and one key per accepted slot
//! (`acc/{slot}`: its ballot and value).

use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::storage::Storage;

use super::msg::{Ballot, Value};

/// One accept made during the current callback, for the checkers: (slot, ballot, digest).
pub type AcceptRecord = (u64, Ballot, u64);

fn slot_key(slot: u64) -> String {
    format!("acc/{slot:020}")
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
        for k in st.keys_with_prefix("acc/") {
            if let Some((slot, b, v)) = st.get_json::<(u64, Ballot, V)>(&k) {
                a.accepted.insert(slot, (b, Rc::new(v)));
            }
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
        st.put_json(&slot_key(slot), &(slot, b, &*v));
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

    /// Forgets every slot up to `upto` (they are in a durable snapshot).
    pub fn compact(&mut self, st: &mut Storage, upto: u64) {
        let keep = self.accepted.split_off(&(upto + 1));
        for slot in self.accepted.keys() {
            st.delete(&slot_key(*slot));
        }
        self.accepted = keep;
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
}
