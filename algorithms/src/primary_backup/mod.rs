//! Primary-backup (master-standby) replication of a key-value store, with failover.
//!
//! Node 0 is the view service (the failure detector and configuration master of MIT 6.824's
//! primary-backup lab, [`service`]); nodes 1..=replicas are the replicas ([`replica`]); clients
//! follow. One replica is the primary: it orders every operation, reads included, replicates
//! each synchronously to every backup and answers the client only when all of them hold it
//! durably ([`primary`]). It takes operations only while it holds a lease: every heartbeat it
//! pings the view service, which grants the lease of that heartbeat; the primary counts it
//! from when the heartbeat left, on its own clock ([`lease`]). The service declares a replica
//! dead after a silence long enough that the primary's lease must have run out even if the
//! two clocks drift apart by `drift_margin`, and only then promotes a backup, one that holds
//! every acknowledged write. The new primary first catches up from the other backups, then
//! gives them its log. Clients find the primary by redirects ([`client`]).
//!
//! Checks ([`checks`]): linearizability of the client history (`[checks] linearizability =
//! "kv"`), no acknowledged write lost after any failover, and at most one replica acting as
//! primary with an unexpired lease at any true time.
//!
//! Bug switches (`bug = "..."` under `[params]`): see [`PbBug`], one line each on the rule it
//! breaks.

pub mod checks;
pub mod client;
pub mod coord;
pub mod elector;
pub mod lease;
pub mod msg;
pub mod primary;
pub mod replica;
pub mod service;

use std::cell::RefCell;
use std::rc::Rc;

use serde::Deserialize;
use sim_core::time::{Duration, Nanos, MS};
use sim_core::{
    Ctx, NodeId, Op, Process, RunOptions, RunResult, Scenario, ScenarioError, Sim, SimConfig,
    TimerId,
};

use crate::Bug;
use checks::{NoLostWrites, OnePrimary, ServesAfterHeal, Stats};
use client::Client;
use coord::CoordReplica;
use elector::Elector;
use msg::Msg;
use replica::Replica;
use service::ViewService;

/// The view service's node.
pub const SERVICE: NodeId = 0;

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[Bug] = PbBug::ALL;

crate::bug_switches! {
    /// Primary-backup's bug switches.
    pub enum PbBug {
        /// The view service declares the primary dead after three missed heartbeats, without
        /// waiting for its lease.
        PromoteWithoutLease = ("promote_without_lease", "a backup is promoted only after the old primary's lease must have expired (else two primaries act at once)"),
        /// The primary answers a write as soon as it has sent it to the backups.
        AckBeforeBackups = ("ack_before_backups", "the primary acknowledges a write only once every backup holds it (else a failover loses it)"),
        /// The primary answers at once and ships entries to the backups only every heartbeat.
        AsyncReplication = ("async_replication", "synchronous replication: asynchronous shipping loses the writes acknowledged since the last shipment on failover"),
        /// Backups answer reads from their own copy.
        BackupReads = ("backup_reads", "only the primary, with every backup confirming, answers reads (a backup's copy can be stale)"),
        /// The view service waits exactly the lease, with no allowance for clock drift.
        LeaseIgnoresDrift = ("lease_ignores_drift", "the service waits lease x (1 + margin) / (1 - margin) on its clock, since the primary's clock may run slow"),
    }
}

/// `[params]` fields, their defaults and what they do (for `distsim list`).
pub const PARAMS: &[crate::ParamDoc] = &[
    crate::ParamDoc {
        name: "bug",
        default: "none",
        doc: "a switchable bug (see bugs)",
    },
    crate::ParamDoc {
        name: "heartbeat_interval",
        default: "\"50ms\"",
        doc: "how often replicas ping the view service; at most half the lease",
    },
    crate::ParamDoc {
        name: "lease",
        default: "\"300ms\"",
        doc: "the primary's lease, from a granted heartbeat's departure, on its monotonic clock",
    },
    crate::ParamDoc {
        name: "drift_margin",
        default: "0.1",
        doc:
            "the clock-rate difference the lease allows for; the service waits lease x (1+m)/(1-m)",
    },
    crate::ParamDoc {
        name: "client_retry",
        default: "\"150ms\"",
        doc: "a client that hears nothing for this long retries at the next replica",
    },
    crate::ParamDoc {
        name: "failover",
        default: "\"view_service\"",
        doc: "who elects the primary: view_service (node 0) or zookeeper (a lock service on Raft)",
    },
    crate::ParamDoc {
        name: "zk_replicas",
        default: "3",
        doc: "zookeeper: Raft replicas of the coordination service (nodes 0..zk_replicas)",
    },
    crate::ParamDoc {
        name: "session_timeout",
        default: "\"1500ms\"",
        doc: "zookeeper: a session not pinged for this long expires, and its entry with it",
    },
];

/// Who elects the primary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failover {
    /// A view service (node 0) grants leases and promotes backups.
    #[default]
    ViewService,
    /// The ZooKeeper-style lock service on Raft: the lowest in-sync entry leads, its sequence
    /// number is its epoch (the fencing token).
    Zookeeper,
}

/// `[params]` of a primary-backup scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// A switchable bug.
    pub bug: Option<PbBug>,
    /// How often replicas ping the view service (and the primary resends what backups lack).
    pub heartbeat_interval: Duration,
    /// The primary's lease, counted on its own clock from a granted heartbeat's departure.
    pub lease: Duration,
    /// The largest relative clock-rate difference the lease allows for (0.1 = 10%).
    pub drift_margin: f64,
    /// A client that hears nothing for this long retries at the next replica.
    pub client_retry: Duration,
    /// Who elects the primary.
    pub failover: Failover,
    /// `zookeeper`: replicas of the coordination service.
    pub zk_replicas: usize,
    /// `zookeeper`: a session not pinged for this long expires.
    pub session_timeout: Duration,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bug: None,
            heartbeat_interval: Duration(50 * MS),
            lease: Duration(300 * MS),
            drift_margin: 0.1,
            client_retry: Duration(150 * MS),
            failover: Failover::ViewService,
            zk_replicas: 3,
            session_timeout: Duration(1500 * MS),
        }
    }
}

impl Params {
    pub(crate) fn has(&self, bug: PbBug) -> bool {
        self.bug == Some(bug)
    }

    /// How long the view service waits, on its own clock, after the last heartbeat of a
    /// replica before declaring it dead: the lease stretched by the drift margin both ways.
    pub fn service_wait_ns(&self) -> Nanos {
        if self.has(PbBug::LeaseIgnoresDrift) {
            return self.lease.0;
        }
        let m = self.drift_margin;
        (self.lease.0 as f64 * (1.0 + m) / (1.0 - m)).ceil() as Nanos
    }

    /// The first replica's node: after the view service, or after the coordination service.
    pub fn first_replica(&self) -> NodeId {
        match self.failover {
            Failover::ViewService => 1,
            Failover::Zookeeper => self.zk_replicas,
        }
    }

    /// `zookeeper`: how long the service leader waits, on its clock, before it expires a
    /// silent session (with `promote_without_lease`: three heartbeats, shorter than the lease).
    pub fn session_expiry_ns(&self) -> Nanos {
        if self.has(PbBug::PromoteWithoutLease) {
            return 3 * self.heartbeat_interval.0;
        }
        self.session_timeout.0
    }

    /// `zookeeper`: the primary's lease on its own clock, from a ping's departure. The
    /// service expires the session no sooner than `session_timeout` of its leader's clock
    /// after the ping arrived (at least `session_timeout / (1 + m)` of true time), and a
    /// deposed service leader may answer pings for up to two election timeouts after a new
    /// one took over; the lease, timed by a clock up to `m` slow, ends before both. With
    /// `lease_ignores_drift` it is the whole session timeout.
    pub fn zk_lease_ns(&self) -> Nanos {
        if self.has(PbBug::LeaseIgnoresDrift) {
            return self.session_timeout.0;
        }
        let m = self.drift_margin;
        let stale = 2 * coord::raft_params().election_timeout_max.0;
        let service = (self.session_timeout.0 as f64 / (1.0 + m)).floor() as Nanos;
        (service.saturating_sub(stale) as f64 * (1.0 - m)).floor() as Nanos
    }

    fn validate(&self, sc: &Scenario) -> Result<(), ScenarioError> {
        let e = |field: &str, msg: &str| Err(sc.error_at(field, msg.to_string()));
        if self.failover == Failover::Zookeeper {
            if self.zk_replicas == 0 || sc.nodes < self.zk_replicas + 1 {
                return e(
                    "zk_replicas",
                    "failover = \"zookeeper\" runs the coordination service on nodes 0..zk_replicas and the replicas after them: zk_replicas >= 1 and nodes >= zk_replicas + 1 (e.g. zk_replicas = 3, nodes = 6)",
                );
            }
            let lease = self.zk_lease_ns();
            if lease < 2 * self.heartbeat_interval.0 {
                return e(
                    "session_timeout",
                    "session_timeout is too short for a lease: the primary's lease (session_timeout / (1 + drift_margin) - 600ms, times 1 - drift_margin) must be at least two heartbeats; e.g. \"1500ms\"",
                );
            }
        }
        if sc.nodes < 2 {
            return e(
                "nodes",
                "primary-backup needs nodes >= 2: node 0 is the view service, nodes 1.. the replicas (3 or 4 is typical)",
            );
        }
        if self.heartbeat_interval.0 == 0 || 2 * self.heartbeat_interval.0 > self.lease.0 {
            return e(
                "heartbeat_interval",
                "heartbeat_interval must be above zero and at most half the lease, or the lease lapses between heartbeats",
            );
        }
        if !(0.0..0.5).contains(&self.drift_margin) {
            return e(
                "drift_margin",
                "drift_margin must be in [0, 0.5), e.g. 0.1 for clocks that drift up to 10% apart",
            );
        }
        if self.client_retry.0 == 0 {
            return e(
                "client_retry",
                "client_retry must be above zero, e.g. \"150ms\"",
            );
        }
        if let Some(f) = sc
            .workload
            .mix
            .keys()
            .find(|f| !["get", "put", "cas", "read", "write"].contains(&f.as_str()))
        {
            return e(
                "mix",
                &format!(
                    "primary-backup clients run get, put and cas (or read and write), not `{f}`"
                ),
            );
        }
        Ok(())
    }
}

/// A node: the view service, a replica or a client.
pub enum Node {
    /// The view service (node 0).
    Service(Box<ViewService>),
    /// A replica of the coordination service (`failover = "zookeeper"`).
    Coord(Box<CoordReplica>),
    /// A replica.
    Replica(Box<Replica>),
    /// A client.
    Client(Client),
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        match self {
            Node::Service(s) => s.on_start(ctx),
            Node::Coord(c) => c.on_start(ctx),
            Node::Replica(r) => r.on_start(ctx),
            Node::Client(_) => {}
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match self {
            Node::Service(s) => s.on_message(ctx, from, msg),
            Node::Coord(c) => c.on_message(ctx, from, msg),
            Node::Replica(r) => r.on_message(ctx, from, msg),
            Node::Client(c) => c.message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        match self {
            Node::Service(s) => s.on_timer(ctx, tag),
            Node::Coord(c) => c.on_timer(ctx, timer, tag),
            Node::Replica(r) => r.on_timer(ctx, tag),
            Node::Client(c) => c.timer(ctx, tag),
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        if let Node::Client(c) = self {
            c.invoke(ctx, op);
        }
    }

    fn role_rank(&self, role: &str) -> Option<u64> {
        match (self, role) {
            // The newest primary ranks highest: by view number, or by epoch (the entry's
            // sequence number) when views are numbered by each replica on its own.
            (Node::Replica(r), "primary") if r.view.primary == Some(r.id) => {
                Some(if r.zk.is_some() {
                    r.view.epoch
                } else {
                    r.view.num
                })
            }
            (Node::Replica(r), "backup") if r.view.backups.contains(&r.id) => Some(r.view.num),
            (Node::Service(_), "view_service") => Some(0),
            (Node::Coord(c), "coord_leader") if c.raft.is_leader() => Some(c.raft.term),
            _ => None,
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        use sim_core::summary::StateSummary;
        let view = |v: &msg::View| {
            let p = v.primary.map_or("none".to_string(), |p| format!("n{p}"));
            let b: Vec<String> = v.backups.iter().map(|b| format!("n{b}")).collect();
            format!("view {}: primary {p}, backups [{}]", v.num, b.join(", "))
        };
        match self {
            Node::Service(s) => Some(StateSummary {
                role: Some("view service"),
                term: Some(s.state.view.num),
                detail: format!(
                    "{}{}",
                    view(&s.state.view),
                    if s.state.acked {
                        ", acked"
                    } else {
                        ", not acked"
                    }
                ),
                ..StateSummary::default()
            }),
            Node::Coord(c) => Some(c.raft.summary()),
            Node::Replica(r) => {
                let role = if r.acting() {
                    "primary"
                } else if r.view.primary == Some(r.id) {
                    "primary without lease"
                } else if r.view.backups.contains(&r.id) {
                    "backup"
                } else {
                    "idle"
                };
                Some(StateSummary {
                    role: Some(role),
                    term: Some(if r.zk.is_some() {
                        r.view.epoch
                    } else {
                        r.view.num
                    }),
                    log_len: Some(r.log.len() as u64),
                    lock: None,
                    detail: view(&r.view),
                })
            }
            // The report shows a client's open operation from the trace.
            Node::Client(_) => None,
        }
    }
}

fn coord_server(n: &Node) -> Option<&crate::raft::server::Server<coord::Coord, Msg>> {
    match n {
        Node::Coord(c) => Some(&c.raft),
        _ => None,
    }
}

/// Runs a primary-backup scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    params.validate(sc)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let first = params.first_replica();
    let replicas = cfg.servers_count - first;
    let servers = cfg.servers_count;
    let timeout_ns = cfg.workload.timeout.0;
    let zk = params.failover == Failover::Zookeeper;
    let p = Rc::new(params);
    let pf = p.clone();
    let rp = Rc::new(coord::raft_params());
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(Client::new(
                info.id,
                first,
                replicas,
                timeout_ns,
                pf.client_retry.0,
                pf.has(PbBug::BackupReads),
            ))
        } else if zk && info.id < first {
            let expiry = pf.session_expiry_ns();
            Node::Coord(Box::new(CoordReplica::new(
                rp.clone(),
                info.id,
                first,
                expiry,
                pf.drift_margin,
            )))
        } else if info.id == SERVICE && !zk {
            Node::Service(Box::new(ViewService::new(pf.clone(), replicas)))
        } else {
            let elector = zk.then(|| Elector::new(first, pf.zk_lease_ns(), pf.client_retry.0));
            Node::Replica(Box::new(Replica::new(pf.clone(), info.id, elector)))
        }
    });
    let raft_shared = Rc::new(RefCell::new(crate::raft::checks::Shared::default()));
    if zk {
        // Raft's invariants over the coordination service's replicas.
        sim.add_checker(crate::raft::checks::Invariants::over(
            raft_shared.clone(),
            servers,
            coord_server,
        ));
    }
    let stats = Rc::new(RefCell::new(Stats::default()));
    sim.add_checker(OnePrimary::new(stats.clone()));
    if sc.workload.values == 0 {
        sim.add_checker(NoLostWrites::new(stats.clone(), (!zk).then_some(SERVICE)));
    }
    sim.add_checker(ServesAfterHeal::default());
    let mut r = sim.run();
    let st = stats.borrow();
    let failovers = st.promotions.len().saturating_sub(1);
    let m = &mut r.metrics;
    m.insert("pb.failovers".into(), failovers as f64);
    if !st.end_checked {
        return Ok(r);
    }
    m.insert("pb.acked_writes".into(), st.acked_writes as f64);
    m.insert("pb.acked_writes_lost".into(), st.acked_writes_lost as f64);
    if failovers > 0 {
        m.insert(
            "pb.acked_writes_lost_per_failover".into(),
            st.acked_writes_lost as f64 / failovers as f64,
        );
    }
    Ok(r)
}
