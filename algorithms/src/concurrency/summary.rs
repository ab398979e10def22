//! The concurrency-control nodes' state for the report's step-through timeline
//! ([`sim_core::Process::state_summary`]).
//!
//! - A shard: the locks it grants under two-phase locking (each key's holder and how many
//!   wait), or the keys prepared under optimistic control, and how many transactions it has
//!   seen decided.
//! - A client: its transaction, which attempt, and where the attempt stands (reading, voting,
//!   waiting for a lock, writing, deciding, backing off) — see [`super::client::Client`].
//!
//! A shard's lock table and marks hold at most its keys, and lists name their first few
//! entries only.

use std::fmt::Write as _;

use sim_core::summary::{write_few, StateSummary};

use super::shard::Shard;
use super::{Node, TxnId};

/// Keys named before "+N more".
pub(super) const NAMED: usize = 3;

/// The node's summary.
pub(super) fn of(node: &Node) -> Option<StateSummary> {
    Some(match node {
        Node::Shard(s) => shard(s),
        Node::Client(c) => c.summary(),
    })
}

fn shard(s: &Shard) -> StateSummary {
    let held = s.locks.values().filter(|l| l.holder.is_some()).count();
    let mut lock = String::new();
    if held > 0 {
        let holders = s
            .locks
            .iter()
            .filter_map(|(k, l)| Some((k, l.holder?, l.queue.len())));
        write_few(&mut lock, holders, held, NAMED, |o, (k, h, waiting)| {
            let _ = write!(o, "k{k} by ");
            txn(o, h.txn);
            if waiting > 0 {
                let _ = write!(o, " ({waiting} waiting)");
            }
        });
    } else if !s.marks.is_empty() {
        lock.push_str("prepared ");
        write_few(&mut lock, &s.marks, s.marks.len(), NAMED, |o, (k, t)| {
            let _ = write!(o, "k{k} by ");
            txn(o, *t);
        });
    }
    StateSummary {
        role: Some("shard"),
        lock: (!lock.is_empty()).then_some(lock),
        detail: format!("{} transactions decided here", s.decided.len()),
        ..StateSummary::default()
    }
}

/// A transaction's name, as [`super::check::txn_name`] writes it, without a string of its own.
pub(super) fn txn(o: &mut String, t: TxnId) {
    let _ = write!(o, "n{}#{}", t >> 32, t & 0xffff_ffff);
}

/// "1 read", "2 reads".
pub(super) struct Count<'a>(pub usize, pub &'a str);

impl std::fmt::Display for Count<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            1 => write!(f, "1 {}", self.1),
            n => write!(f, "{n} {}s", self.1),
        }
    }
}
