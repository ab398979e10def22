//! A commit participant's state for the report's step-through timeline
//! ([`sim_core::Process::state_summary`]): the transactions it coordinates (2PC/3PC) or leads
//! (Paxos Commit) and where each stands, the transactions it voted yes on and still waits
//! for, which of those are in doubt (blocked: 2PC's weakness), and the keys it holds locked.
//!
//! Clients have none: the timeline shows a client's open transaction from the trace.
//!
//! Lists name their first few entries and count the rest (`first_few`), so that a summary
//! stays short and cheap however many transactions are open.

use sim_core::summary::{first_few, StateSummary};

use super::msg::txn_name;
use super::server::Server;
use super::two_pc::Phase;
use super::{Node, Protocol};

/// Transactions named in each list before "+N more".
const NAMED: usize = 3;

/// The node's summary, `None` for clients.
pub(super) fn of(node: &Node) -> Option<StateSummary> {
    match node {
        Node::Server(s) => Some(server(s)),
        Node::Client(_) => None,
    }
}

fn server(s: &Server) -> StateSummary {
    let leading = s.coord.len() + s.leader.len();
    let role = match (leading > 0, s.is_acceptor()) {
        (true, true) => "coordinator, acceptor",
        (true, false) => "coordinator",
        (false, true) => "participant, acceptor",
        (false, false) => "participant",
    };
    let mut parts = Vec::new();
    if !s.coord.is_empty() {
        let coord = s.coord.iter().map(|(t, c)| {
            let at = match (c.phase, c.decision) {
                (Phase::Voting, _) => {
                    format!("voting ({}/{} yes)", c.yes.len(), c.spec.parts.len())
                }
                (Phase::Collecting, _) => format!("terminating ({} states)", c.states.len()),
                (Phase::PreCommitting, _) => format!("pre-committing ({})", acks(c.waiting.len())),
                (Phase::Decided, Some(true)) if c.waiting.is_empty() => "committed".to_string(),
                (Phase::Decided, Some(true)) => format!("committed ({})", acks(c.waiting.len())),
                (Phase::Decided, _) => "aborted".to_string(),
            };
            format!("{} {at}", txn_name(*t))
        });
        parts.push(format!(
            "coordinating {}",
            first_few(coord, s.coord.len(), NAMED)
        ));
    }
    if !s.leader.is_empty() {
        let lead = s.leader.iter().map(|(t, l)| {
            let at = match l.decided {
                Some(true) => "committed".to_string(),
                Some(false) => "aborted".to_string(),
                None => format!(
                    "ballot {} ({}/{} chosen)",
                    l.ballot,
                    l.chosen.len(),
                    l.spec.parts.len()
                ),
            };
            format!("{} {at}", txn_name(*t))
        });
        parts.push(format!(
            "leading {}",
            first_few(lead, s.leader.len(), NAMED)
        ));
    }
    let (_, doubt) = s.rm.prepared_counts();
    if !s.rm.prepared.is_empty() {
        let voted = s.rm.prepared.iter().map(|(t, p)| {
            let state = match (p.rounds > 0, p.pre) {
                (true, _) => " (in doubt)",
                (false, true) => " (pre-committed)",
                (false, false) => "",
            };
            format!("{}{state}", txn_name(*t))
        });
        parts.push(format!(
            "voted yes, awaiting the outcome: {}",
            first_few(voted, s.rm.prepared.len(), NAMED)
        ));
    }
    parts.push(format!("{} outcomes applied", s.rm.decided.len()));
    let locks = s.rm.locks_held();
    StateSummary {
        role: Some(role),
        lock: (locks > 0).then(|| {
            let keys = s.rm.locks.keys().map(|k| key_name(*k));
            first_few(keys, locks, NAMED)
        }),
        detail: if doubt > 0 {
            // 2PC's participants can only wait; 3PC and Paxos Commit terminate on their own.
            let blocked = if s.p.protocol == Protocol::TwoPc {
                "blocked: "
            } else {
                ""
            };
            format!("{blocked}{doubt} in doubt; {}", parts.join("; "))
        } else {
            parts.join("; ")
        },
        ..StateSummary::default()
    }
}

/// "1 ack awaited", "2 acks awaited".
fn acks(n: usize) -> String {
    if n == 1 {
        "1 ack awaited".into()
    } else {
        format!("{n} acks awaited")
    }
}

/// An account's or a register's key as the summary names it.
fn key_name(k: super::participant::Key) -> String {
    if k >= super::participant::REG {
        format!("reg {}", k - super::participant::REG)
    } else {
        format!("acct {k}")
    }
}
