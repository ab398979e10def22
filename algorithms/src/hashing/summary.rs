//! The hashing nodes' state for the report's step-through timeline
//! ([`sim_core::Process::state_summary`]): the view each node routes by (the members it
//! believes in, which fix the placement) and how many keys a server stores. A student watches views disagree after a crash and converge,
//! and keys move.

use std::collections::BTreeSet;

use std::fmt::Write as _;

use sim_core::summary::{write_few, StateSummary};

use super::node::{Client, Node, Server};

/// Members named before "+N more".
const NAMED: usize = 8;

/// A view's members in words: "n0, n1, n3".
pub(crate) fn members(m: &BTreeSet<usize>) -> Members<'_> {
    Members(m)
}

/// A view's members, written where they are shown.
pub(crate) struct Members<'a>(&'a BTreeSet<usize>);

impl std::fmt::Display for Members<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let mut s = String::new();
        write_few(&mut s, self.0, self.0.len(), NAMED, |s, n| {
            let _ = write!(s, "n{n}");
        });
        f.write_str(&s)
    }
}

/// The node's summary.
pub(super) fn of(node: &Node) -> Option<StateSummary> {
    Some(match node {
        Node::Server(s) => server(s),
        Node::Client(c) => client(c),
    })
}

fn server(s: &Server) -> StateSummary {
    StateSummary {
        role: Some(if s.is_member() { "member" } else { "spare" }),
        detail: format!(
            "view {}; {} keys stored",
            members(s.view_members()),
            s.stored()
        ),
        ..StateSummary::default()
    }
}

fn client(c: &Client) -> StateSummary {
    StateSummary {
        role: Some("client"),
        detail: format!("routes by view {}", members(c.view_members())),
        ..StateSummary::default()
    }
}
