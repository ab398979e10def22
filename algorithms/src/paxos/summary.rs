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

fn ballot(b: Ballot) -> String {
    if b == Ballot::ZERO {
        "none".into()
    } else {
        b.to_string()
    }
}

fn synod(s: &SynodServer) -> StateSummary {
    let a = &s.acceptor;
    let accepted = match a.accepted.get(&0) {
        Some((b, v)) => format!("accepted {v} in {b}"),
        None => "accepted nothing".into(),
    };
    let (role, proposer) = match &s.phase {
        Phase::Idle => ("acceptor", String::new()),
        Phase::Preparing(promises) => (
            "proposer, phase 1",
            format!(
                "; proposing in {}: {} promises",
                ballot(s.ballot),
                promises.len()
            ),
        ),
        Phase::Accepting(v, accepts) => (
            "proposer, phase 2",
            format!(
                "; proposing {v} in {}: {} accepts",
                ballot(s.ballot),
                accepts.len()
            ),
        ),
    };
    let learned = match s.learned {
        Some(v) => format!("; learned {v}"),
        None => String::new(),
    };
    StateSummary {
        role: Some(role),
        term: Some(a.promised.round),
        detail: format!(
            "promised {}, {accepted}{proposer}{learned}",
            ballot(a.promised)
        ),
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
    // The ballot's owner is the leader this acceptor follows (or itself, as candidate).
    let ballot_of = if promised == Ballot::ZERO {
        "no ballot promised yet".to_string()
    } else if s.role == Role::Follower {
        format!("follows n{}'s ballot {promised}", promised.node)
    } else {
        format!("ballot {promised}")
    };
    let accepted = s.acceptor.accepted.last_key_value().map_or(0, |(k, _)| *k);
    let r = &s.replica;
    let chosen = r
        .log
        .last_key_value()
        .map_or(0, |(k, _)| *k)
        .max(r.snap.slot);
    let mine = match s.role {
        Role::Leader => format!(
            "; proposing from slot {}, {} undecided",
            s.next_slot,
            s.proposals.len()
        ),
        Role::Candidate => format!(
            "; phase 1 for {}: {} promised",
            ballot(s.ballot),
            s.promises.len()
        ),
        Role::Follower => String::new(),
    };
    StateSummary {
        role: Some(role),
        term: Some(promised.round),
        log_len: Some(chosen),
        lock: None,
        detail: format!(
            "{ballot_of}; slots accepted to {accepted}, chosen to {chosen}, applied {}{mine}",
            r.applied
        ),
    }
}
