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

use sim_core::summary::{first_few, StateSummary};

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
    let open: Vec<String> = o
        .sagas
        .iter()
        .rev()
        .take(SCANNED)
        .filter_map(|(id, r)| {
            let at = match r.phase {
                Phase::Running(s) => format!("running {}", STEPS[s].name()),
                Phase::Compensating(i) => {
                    format!("compensating {}", STEPS[r.plan[i]].name())
                }
                Phase::Releasing => "releasing locks".into(),
                Phase::Done(_) => return None,
            };
            Some(format!("{} {at}", saga_name(*id)))
        })
        .collect();
    StateSummary {
        role: Some("orchestrator"),
        detail: format!("{} sagas logged; open: {}", o.sagas.len(), open_list(open)),
        ..StateSummary::default()
    }
}

fn order_service(o: &OrderService) -> StateSummary {
    let open: Vec<String> = o
        .orders
        .iter()
        .rev()
        .take(SCANNED)
        .filter(|(_, r)| r.outcome.is_none())
        .map(|(id, _)| saga_name(*id))
        .collect();
    StateSummary {
        role: Some("order service"),
        detail: format!(
            "{} orders recorded; open: {}",
            o.orders.len(),
            open_list(open)
        ),
        ..StateSummary::default()
    }
}

fn open_list(open: Vec<String>) -> String {
    if open.is_empty() {
        return "none".into();
    }
    let n = open.len();
    first_few(open.into_iter(), n, NAMED)
}

fn service(s: &Service) -> StateSummary {
    // Records locked by an unfinished saga (the records are the scenario's few items or
    // accounts).
    let locked: Vec<String> = s
        .records
        .iter()
        .filter_map(|(rec, r)| Some(format!("record {rec} by {}", saga_name(r.pending?))))
        .collect();
    let last = s.touched.and_then(|saga| {
        let e = s.entries.get(&saga)?;
        let did = match e.state {
            EntryState::Applied => "applied",
            EntryState::Refused => "refused",
            EntryState::Compensated => "compensated",
            EntryState::Tombstone => "tombstone (compensated before its step)",
        };
        Some(format!("; last: {} {did}", saga_name(saga)))
    });
    StateSummary {
        role: Some(s.kind.name()),
        lock: (!locked.is_empty()).then(|| {
            let n = locked.len();
            first_few(locked.into_iter(), n, NAMED)
        }),
        detail: format!("{} sagas seen{}", s.entries.len(), last.unwrap_or_default()),
        ..StateSummary::default()
    }
}
