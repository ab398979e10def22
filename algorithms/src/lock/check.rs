//! The lock checks, judged by the resource in true time, and the lock metrics.
//!
//! Mutual exclusion as the resource sees it: a *tenure* is one client's hold of the lock (a
//! client and its attempt). The resource's accepted operations must come in contiguous runs of
//! tenures: once a later tenure has had an operation accepted, the lock has passed to it as far
//! as the resource can tell, and nothing from the earlier tenure may be accepted again. (A stale
//! write accepted before the new holder touched the resource is indistinguishable from one made
//! before the hand-over, and is not counted; that is the window fencing leaves open by design.)
//! The checker stamps every accepted operation with true time when it sees the resource's log
//! grow, right after the event that grew it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use sim_core::time::{fmt_ns, Nanos, MS, SEC};
use sim_core::{Checker, EventType, Finding, History, LivenessPhase, NodeId, View};

use super::Node;

/// Figures gathered by the checker (which sees true time), turned into metrics after the run.
#[derive(Clone, Debug, Default)]
pub struct LockStats {
    /// True time during which no client believed it held the lock while one was waiting.
    pub free_while_waiting_ns: Nanos,
    /// Tenures that used the resource.
    pub tenures: u64,
}

impl LockStats {
    /// Adds the derived lock metrics to a run's metrics.
    pub fn add_metrics(&self, metrics: &mut BTreeMap<String, f64>, duration_ns: Nanos) {
        let acq = metrics.get("lock.acquisitions").copied().unwrap_or(0.0);
        metrics.insert(
            "lock.free_while_waiting_ms".into(),
            self.free_while_waiting_ns as f64 / MS as f64,
        );
        metrics.insert("lock.tenures".into(), self.tenures as f64);
        if duration_ns > 0 {
            metrics.insert(
                "lock.acquisitions_per_s".into(),
                acq / (duration_ns as f64 / SEC as f64),
            );
        }
        if acq > 0.0 {
            let per = |m: &BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0) / acq;
            let msgs = per(metrics, "lock.messages");
            let watch = per(metrics, "lock.watch_messages");
            metrics.insert("lock.messages_per_acquisition".into(), msgs);
            metrics.insert("lock.watch_messages_per_handover".into(), watch);
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Tenure {
    client: NodeId,
    attempt: u64,
    lock_id: u64,
    token: u64,
    granted_ns: Option<Nanos>,
    first_use_ns: Nanos,
}

impl Tenure {
    fn describe(&self) -> String {
        let granted = match self.granted_ns {
            Some(t) => format!("granted at {}", fmt_ns(t)),
            None => "grant time unknown".into(),
        };
        format!(
            "client n{} (lock {}, token {}, {granted})",
            self.client,
            short(self.lock_id),
            self.token
        )
    }
}

/// Lock ids of Redlock are random 64-bit tokens: show a short prefix.
fn short(id: u64) -> String {
    if id > 1_000_000 {
        format!("#{:06x}", id >> 40)
    } else {
        id.to_string()
    }
}

/// The lock checker: mutual exclusion and monotonic fencing as the run goes, lost updates at
/// the end, and the free-while-waiting time.
pub struct LockChecker {
    resource: NodeId,
    servers: usize,
    clients: usize,
    fencing: bool,
    stats: Rc<RefCell<LockStats>>,
    seen: usize,
    last_now: Nanos,
    free_waiting: bool,
    grants: BTreeMap<(NodeId, u64), Nanos>,
    current: Option<Tenure>,
    /// Tenures whose turn has passed, with the tenure that took over.
    closed: BTreeMap<(NodeId, u64), (Tenure, Tenure)>,
    last_token: u64,
    /// Clients seen waiting for the lock in the liveness phase.
    phase_waiters: Vec<NodeId>,
}

impl LockChecker {
    /// A checker of the resource at `resource`, with clients at `servers..servers + clients`.
    pub fn new(
        resource: NodeId,
        servers: usize,
        clients: usize,
        fencing: bool,
        stats: Rc<RefCell<LockStats>>,
    ) -> Self {
        LockChecker {
            resource,
            servers,
            clients,
            fencing,
            stats,
            seen: 0,
            last_now: 0,
            free_waiting: false,
            grants: BTreeMap::new(),
            current: None,
            closed: BTreeMap::new(),
            last_token: 0,
            phase_waiters: Vec::new(),
        }
    }

    fn client_state(&mut self, view: &View<'_, Node>) {
        let mut waiting = false;
        let mut holding = false;
        for id in self.servers..self.servers + self.clients {
            if let Some(Node::Client(c)) = view.node(id) {
                if let Some((attempt, _, _)) = c.holding() {
                    holding = true;
                    self.grants.entry((id, attempt)).or_insert(view.now);
                } else if c.phase() == super::client::Phase::Acquiring {
                    waiting = true;
                    if view.liveness().is_some() && !self.phase_waiters.contains(&id) {
                        self.phase_waiters.push(id);
                    }
                }
            }
        }
        self.free_waiting = waiting && !holding;
    }
}

impl Checker<Node> for LockChecker {
    fn name(&self) -> &'static str {
        "lock"
    }

    fn after_event(&mut self, view: &View<'_, Node>, node: NodeId) -> Option<Finding> {
        if self.free_waiting {
            self.stats.borrow_mut().free_while_waiting_ns += view.now - self.last_now;
        }
        self.last_now = view.now;
        if node >= self.servers {
            self.client_state(view);
            return None;
        }
        if node != self.resource {
            return None;
        }
        let Some(Node::Resource(r)) = view.node(self.resource) else {
            return None;
        };
        if r.log.len() < self.seen {
            self.seen = 0; // the resource restarted with a fresh log
        }
        let mut out = None;
        for e in &r.log[self.seen..] {
            let kind = if e.write { "write" } else { "read" };
            if self.fencing {
                if e.token < self.last_token {
                    out.get_or_insert(
                        Finding::new(format!(
                            "fencing token went backwards: the resource accepted a {kind} with token {} from client n{} at {} after token {}",
                            e.token, e.client, fmt_ns(view.now), self.last_token
                        ))
                        .nodes([e.client, self.resource])
                        .values([e.token.into(), self.last_token.into()]),
                    );
                }
                self.last_token = self.last_token.max(e.token);
            }
            let key = (e.client, e.attempt);
            if self.current.is_some_and(|c| (c.client, c.attempt) == key) {
                continue;
            }
            if let Some((old, next)) = self.closed.get(&key) {
                out.get_or_insert(
                    Finding::new(format!(
                        "mutual exclusion broken: the resource accepted a {kind} (value {}) at {} from {}, after the lock had passed to {}, which first used the resource at {}",
                        e.value,
                        fmt_ns(view.now),
                        old.describe(),
                        next.describe(),
                        fmt_ns(next.first_use_ns)
                    ))
                    .nodes([old.client, next.client, self.resource])
                    .values([e.value.into()]),
                );
                continue;
            }
            let t = Tenure {
                client: e.client,
                attempt: e.attempt,
                lock_id: e.lock_id,
                token: e.token,
                granted_ns: self.grants.get(&key).copied(),
                first_use_ns: view.now,
            };
            self.stats.borrow_mut().tenures += 1;
            if let Some(prev) = self.current.replace(t) {
                self.closed.insert((prev.client, prev.attempt), (prev, t));
            }
        }
        self.seen = r.log.len();
        out
    }

    /// Locks' progress after the heal: if anyone waited for the lock, someone acquired it.
    fn at_liveness(
        &mut self,
        _view: &View<'_, Node>,
        phase: LivenessPhase,
        _history: &History,
    ) -> Vec<Finding> {
        let acquired = self
            .grants
            .values()
            .any(|t| (phase.start_ns..=phase.deadline_ns).contains(t));
        if acquired || self.phase_waiters.is_empty() {
            return Vec::new();
        }
        let mut waiters = self.phase_waiters.clone();
        waiters.sort_unstable();
        vec![Finding::liveness(format!(
            "no client acquired the lock in the {} after the faults healed at {}, though {} waited for it",
            fmt_ns(phase.deadline_ns - phase.start_ns),
            fmt_ns(phase.start_ns),
            waiters.iter().map(|n| format!("n{n}")).collect::<Vec<_>>().join(", ")
        ))
        .nodes(waiters)]
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let ok = history
            .events
            .iter()
            .filter(|e| e.kind == EventType::Ok && e.f == "incr")
            .count() as u64;
        // Unknown outcomes: timed out (info), or still pending when the run ended.
        let invoked = history
            .events
            .iter()
            .filter(|e| e.kind == EventType::Invoke && e.f == "incr")
            .count() as u64;
        let failed = history
            .events
            .iter()
            .filter(|e| e.kind == EventType::Fail && e.f == "incr")
            .count() as u64;
        let info = invoked.saturating_sub(ok + failed);
        let Some(Node::Resource(r)) = view.node(self.resource) else {
            return Vec::new();
        };
        let c = r.counter();
        if c < ok {
            vec![Finding::new(format!(
                "lost update: the counter ends at {c} but {ok} increments were acknowledged ({} lost)",
                ok - c
            ))
            .nodes([self.resource])
            .values([c.into(), ok.into()])]
        } else if c > ok + info {
            vec![Finding::new(format!(
                "the counter ends at {c}, above the {ok} acknowledged plus {info} unknown (timed out or pending) increments"
            ))
            .nodes([self.resource])
            .values([c.into(), ok.into()])]
        } else {
            Vec::new()
        }
    }
}
