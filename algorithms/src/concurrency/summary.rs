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

use sim_core::summary::{first_few, StateSummary};

use super::check::txn_name;
use super::shard::Shard;
use super::Node;

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
    let held = s.locks.iter().filter(|(_, l)| l.holder.is_some()).count();
    let locks = s.locks.iter().filter_map(|(k, l)| {
        let h = l.holder?;
        Some(match l.queue.len() {
            0 => format!("k{k} by {}", txn_name(h.txn)),
            w => format!("k{k} by {} ({w} waiting)", txn_name(h.txn)),
        })
    });
    let marks = s
        .marks
        .iter()
        .map(|(k, t)| format!("k{k} by {}", txn_name(*t)));
    let lock = if held > 0 {
        Some(first_few(locks, held, NAMED))
    } else if !s.marks.is_empty() {
        Some(format!(
            "prepared {}",
            first_few(marks, s.marks.len(), NAMED)
        ))
    } else {
        None
    };
    StateSummary {
        role: Some("shard"),
        lock,
        detail: format!("{} transactions decided here", s.decided.len()),
        ..StateSummary::default()
    }
}

/// "1 read", "2 reads".
pub(super) fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
