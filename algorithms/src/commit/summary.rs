//! A commit participant's state for the report's step-through timeline
//! ([`sim_core::Process::state_summary`]): the transactions it coordinates (2PC/3PC) or leads
//! (Paxos Commit) and where each stands, the transactions it voted yes on and still waits
//! for, which of those are in doubt (blocked: 2PC's weakness), and the keys it holds locked.
//!
//! Clients have none: the timeline shows a client's open transaction from the trace.
//!
//! Lists name their first few entries and count the rest (`write_few`), so that a summary
//! stays short and cheap however many transactions are open; everything is written into one
//! string, as the summary is made after every callback of a run whose trace is kept.

use std::fmt::Write as _;

use sim_core::summary::{write_few, StateSummary};

use super::msg::TxnId;
use super::participant::REG;
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
    let mut d = String::with_capacity(160);
    let (_, doubt) = s.rm.prepared_counts();
    if doubt > 0 {
        // 2PC's participants can only wait; 3PC and Paxos Commit terminate on their own.
        let blocked = if s.p.protocol == Protocol::TwoPc {
            "blocked: "
        } else {
            ""
        };
        let _ = write!(d, "{blocked}{doubt} in doubt; ");
    }
    if !s.coord.is_empty() {
        d.push_str("coordinating ");
        write_few(&mut d, &s.coord, s.coord.len(), NAMED, |d, (t, c)| {
            txn(d, *t);
            let _ = match (c.phase, c.decision) {
                (Phase::Voting, _) => {
                    write!(d, " voting ({}/{} yes)", c.yes.len(), c.spec.parts.len())
                }
                (Phase::Collecting, _) => write!(d, " terminating ({} states)", c.states.len()),
                (Phase::PreCommitting, _) => {
                    write!(d, " pre-committing ({})", Acks(c.waiting.len()))
                }
                (Phase::Decided, Some(true)) if c.waiting.is_empty() => write!(d, " committed"),
                (Phase::Decided, Some(true)) => write!(d, " committed ({})", Acks(c.waiting.len())),
                (Phase::Decided, _) => write!(d, " aborted"),
            };
        });
        d.push_str("; ");
    }
    if !s.leader.is_empty() {
        d.push_str("leading ");
        write_few(&mut d, &s.leader, s.leader.len(), NAMED, |d, (t, l)| {
            txn(d, *t);
            let _ = match l.decided {
                Some(true) => write!(d, " committed"),
                Some(false) => write!(d, " aborted"),
                None => write!(
                    d,
                    " ballot {} ({}/{} chosen)",
                    l.ballot,
                    l.chosen.len(),
                    l.spec.parts.len()
                ),
            };
        });
        d.push_str("; ");
    }
    if !s.rm.prepared.is_empty() {
        d.push_str("voted yes, awaiting the outcome: ");
        write_few(
            &mut d,
            &s.rm.prepared,
            s.rm.prepared.len(),
            NAMED,
            |d, (t, p)| {
                txn(d, *t);
                d.push_str(match (p.rounds > 0, p.pre) {
                    (true, _) => " (in doubt)",
                    (false, true) => " (pre-committed)",
                    (false, false) => "",
                });
            },
        );
        d.push_str("; ");
    }
    let _ = write!(d, "{} outcomes applied", s.rm.decided.len());
    let locks = s.rm.locks_held();
    StateSummary {
        role: Some(role),
        lock: (locks > 0).then(|| {
            let mut l = String::new();
            write_few(&mut l, s.rm.locks.keys(), locks, NAMED, |l, k| {
                let _ = if *k >= REG {
                    write!(l, "reg {}", k - REG)
                } else {
                    write!(l, "acct {k}")
                };
            });
            l
        }),
        detail: d,
        ..StateSummary::default()
    }
}

/// A transaction's name, as [`super::msg::txn_name`] writes it, without a string of its own.
fn txn(d: &mut String, t: TxnId) {
    let _ = write!(d, "t{}.{}", t >> 32, t & 0xffff_ffff);
}

/// "1 ack awaited", "2 acks awaited".
struct Acks(usize);

impl std::fmt::Display for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            1 => write!(f, "1 ack awaited"),
            n => write!(f, "{n} acks awaited"),
        }
    }
}
