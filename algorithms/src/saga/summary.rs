//! The saga nodes' state for the report's step-through timeline
//! ([`sim_core::Process::state_summary`]).
//!
//! - The orchestrator: how many sagas its log holds, and the newest open ones with the step
//!   each is running or compensating.
//! - The order service (choreography): how many orders it recorded, and the newest still open.
//! - A service: the semantic locks it holds (records changed by a saga not yet finished), and
//!   what it did for the saga it last heard about.
//!
//! Clients have none: the timeline shows a client's open order from the trace. The open sagas
//! are looked for among the newest [`SCANNED`] only, so that a summary costs the same on the
//! thousandth saga as on the first.

use std::fmt::Write as _;

use sim_core::summary::{write_few, StateSummary};

use super::check::saga_name;
use super::choreography::OrderService;
use super::orchestrator::{Orchestrator, Phase};
use super::service::{EntryState, Service};
use super::{Node, STEPS};

/// Newest sagas looked at for the open ones.
const SCANNED: usize = 64;
/// Sagas or records named before "+N more".
const NAMED: usize = 3;

/// The node's summary, `None` for clients.
pub(super) fn of(node: &Node) -> Option<StateSummary> {
    match node {
        Node::Orchestrator(o) => Some(orchestrator(o)),
        Node::Order(o) => Some(order_service(o)),
        Node::Service(s) => Some(service(s)),
        Node::Client(_) => None,
    }
}

fn orchestrator(o: &Orchestrator) -> StateSummary {
    let open = || {
        o.sagas
            .iter()
            .rev()
            .take(SCANNED)
            .filter(|(_, r)| !matches!(r.phase, Phase::Done(_)))
    };
    let mut d = format!("{} sagas logged; open: ", o.sagas.len());
    write_open(&mut d, open(), open().count(), |d, (id, r)| {
        d.push_str(&saga_name(*id));
        let _ = match r.phase {
            Phase::Running(s) => write!(d, " running {}", STEPS[s].name()),
            Phase::Compensating(i) => write!(d, " compensating {}", STEPS[r.plan[i]].name()),
            Phase::Releasing => write!(d, " releasing locks"),
            Phase::Done(_) => Ok(()),
        };
    });
    StateSummary {
        role: Some("orchestrator"),
        detail: d,
        ..StateSummary::default()
    }
}

fn order_service(o: &OrderService) -> StateSummary {
    let open = || {
        o.orders
            .iter()
            .rev()
            .take(SCANNED)
            .filter(|(_, r)| r.outcome.is_none())
    };
    let mut d = format!("{} orders recorded; open: ", o.orders.len());
    write_open(&mut d, open(), open().count(), |d, (id, _)| {
        d.push_str(&saga_name(*id))
    });
    StateSummary {
        role: Some("order service"),
        detail: d,
        ..StateSummary::default()
    }
}

/// The open sagas among the newest, or "none".
fn write_open<T>(
    d: &mut String,
    open: impl Iterator<Item = T>,
    count: usize,
    each: impl FnMut(&mut String, T),
) {
    if count == 0 {
        d.push_str("none");
    } else {
        write_few(d, open, count, NAMED, each);
    }
}

fn service(s: &Service) -> StateSummary {
    // Records locked by an unfinished saga (the records are the scenario's few items or
    // accounts).
    let locked = || {
        s.records
            .iter()
            .filter_map(|(rec, r)| Some((rec, r.pending?)))
    };
    let held = locked().count();
    let mut d = format!("{} sagas seen", s.entries.len());
    if let Some((saga, e)) = s.touched.and_then(|t| Some((t, s.entries.get(&t)?))) {
        let did = match e.state {
            EntryState::Applied => "applied",
            EntryState::Refused => "refused",
            EntryState::Compensated => "compensated",
            EntryState::Tombstone => "tombstone (compensated before its step)",
        };
        let _ = write!(d, "; last: {} {did}", saga_name(saga));
    }
    StateSummary {
        role: Some(s.kind.name()),
        lock: (held > 0).then(|| {
            let mut l = String::new();
            write_few(&mut l, locked(), held, NAMED, |l, (rec, saga)| {
                let _ = write!(l, "record {rec} by {}", saga_name(saga));
            });
            l
        }),
        detail: d,
        ..StateSummary::default()
    }
}
