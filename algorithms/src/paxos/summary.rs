//! The Paxos nodes' state for the report's step-through timeline
//! ([`sim_core::Process::state_summary`]): what a student follows in "Paxos Made Simple".
//!
//! - A Synod server: its acceptor's promise and the proposal it accepted, the proposer's
//!   ballot and phase (with the promises or accepts counted so far), and the value learned.
//! - A Multi-Paxos server: its role, the ballot it promised (the term column) and whose it
//!   is, and its slots: accepted, chosen (learned) and applied.
//!
//! Clients have none: the timeline shows a client's open operation from the trace.
//!
//! Each summary reads a few fields and the last key of a map, never a whole log, since it is
//! asked after every callback of a run whose trace is kept.

use std::fmt::Write as _;

use sim_core::summary::StateSummary;

use super::msg::Ballot;
use super::server::{Role, Server};
use super::synod::{Phase, SynodServer};
use super::Node;

/// The node's summary, `None` for clients.
pub(super) fn of(node: &Node) -> Option<StateSummary> {
    match node {
        Node::Synod(s) => Some(synod(s)),
        Node::Multi(s) => Some(multi(s)),
        Node::SynodClient(_) | Node::Client(_) => None,
    }
}

/// A ballot, or "none" for the zero ballot no proposer owns.
struct B(Ballot);

impl std::fmt::Display for B {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == Ballot::ZERO {
            f.write_str("none")
        } else {
            write!(f, "{}", self.0)
        }
    }
}

fn synod(s: &SynodServer) -> StateSummary {
    let a = &s.acceptor;
    let mut d = String::with_capacity(96);
    let _ = write!(d, "promised {}, ", B(a.promised));
    let _ = match a.accepted.get(&0) {
        Some((b, v)) => write!(d, "accepted {v} in {b}"),
        None => write!(d, "accepted nothing"),
    };
    let role = match &s.phase {
        Phase::Idle => "acceptor",
        Phase::Preparing(promises) => {
            let _ = write!(
                d,
                "; proposing in {}: {} promises",
                B(s.ballot),
                promises.len()
            );
            "proposer, phase 1"
        }
        Phase::Accepting(v, accepts) => {
            let _ = write!(
                d,
                "; proposing {v} in {}: {} accepts",
                B(s.ballot),
                accepts.len()
            );
            "proposer, phase 2"
        }
    };
    if let Some(v) = s.learned {
        let _ = write!(d, "; learned {v}");
    }
    StateSummary {
        role: Some(role),
        term: Some(a.promised.round),
        detail: d,
        ..StateSummary::default()
    }
}

fn multi(s: &Server) -> StateSummary {
    let role = match s.role {
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    };
    let promised = s.acceptor.promised;
    let mut d = String::with_capacity(112);
    // The ballot's owner is the leader this acceptor follows (or itself, as candidate).
    let _ = if promised == Ballot::ZERO {
        write!(d, "no ballot promised yet")
    } else if s.role == Role::Follower {
        write!(d, "follows n{}'s ballot {promised}", promised.node)
    } else {
        write!(d, "ballot {promised}")
    };
    let accepted = s.acceptor.accepted.last_key_value().map_or(0, |(k, _)| *k);
    let r = &s.replica;
    let chosen = r
        .log
        .last_key_value()
        .map_or(0, |(k, _)| *k)
        .max(r.snap.slot);
    let _ = write!(
        d,
        "; slots accepted to {accepted}, chosen to {chosen}, applied {}",
        r.applied
    );
    let _ = match s.role {
        Role::Leader => write!(
            d,
            "; proposing from slot {}, {} undecided",
            s.next_slot,
            s.proposals.len()
        ),
        Role::Candidate => write!(
            d,
            "; phase 1 for {}: {} promised",
            B(s.ballot),
            s.promises.len()
        ),
        Role::Follower => Ok(()),
    };
    StateSummary {
        role: Some(role),
        term: Some(promised.round),
        log_len: Some(chosen),
        lock: None,
        detail: d,
    }
}
