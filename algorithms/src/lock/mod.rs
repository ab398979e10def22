//! Distributed locks as engineers build them, and the timelines in which each one lets two
//! clients into the critical section.
//!
//! Three designs, chosen with `design` in `[params]`:
//! - `lease`: one lock server, the Redis pattern. Acquire = `SET key token NX PX ttl`, release =
//!   delete only if the value still equals the token; the server measures expiry with its own
//!   clock. The server also counts grants, and that count is the fencing token.
//! - `redlock`: N independent lock servers of the same kind (all servers but the last). The
//!   client asks each with a short per-server timeout and holds the lock only with a majority
//!   and only for the validity time `ttl - elapsed - drift`, where drift = `ttl * drift_factor
//!   + 2ms`; it releases on every server. Redlock hands out no fencing token.
//! - `zookeeper`: a lock service following the ZooKeeper recipe (sessions kept alive by
//!   heartbeats, ephemeral sequential entries, each waiter watching only its predecessor) whose
//!   sequence numbers are the fencing tokens. The service is replicated by the project's Raft
//!   on `replicas` servers (nodes 0..replicas, default 3; 1 is a single server running the same
//!   code): every request is a command applied in log order, sessions are expired by the
//!   leader through the log, and clients follow redirects and retry under a request id (see
//!   [`zk`]).
//!
//! The protected resource is the last server: a counter that clients read and write while they
//! believe they hold the lock. With `fencing = true` it rejects any request whose token is
//! older than the newest it has seen (on reads too, so that a stale write cannot land between a
//! newer holder's read and write).
//!
//! Clients run the workload's `incr` operations: acquire, read the counter, work for `work`,
//! write counter + 1, release. The operation is `ok` when the write was accepted, `fail` when
//! the lock could not be had within `acquire_timeout` or the resource refused (no effect), and
//! `info` when the write timed out (it may land later).
//!
//! Checks (judged by the resource, in true time, see [`LockChecker`]): mutual exclusion (once a later
//! holder has used the resource, nothing from an earlier holder is accepted), no lost update
//! (the final counter is at least the number of acknowledged increments and at most that plus
//! the unknown ones), and with fencing, accepted tokens never go backwards.

mod check;
mod client;
mod servers;
pub mod zk;

use serde::Deserialize;
use sim_core::time::{Duration, MS};
use sim_core::{
    Ctx, Message, NodeId, Op, Process, RunOptions, RunResult, Scenario, ScenarioError, Sim,
    SimConfig, TimerId,
};

use crate::{raft, Bug};

pub use check::{LockChecker, LockStats};
pub use client::Client;
pub use servers::{KvServer, Resource};
pub use zk::{ZkMachine, ZkReplica};

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[Bug] = LockBug::ALL;

/// The lock design.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Design {
    /// One lease server (Redis `SET NX PX`).
    Lease,
    /// Redlock over all servers but the last.
    Redlock,
    /// The ZooKeeper recipe on a Raft-replicated lock service.
    Zookeeper,
}

crate::bug_switches! {
    /// The locks' bugs.
    pub enum LockBug {
        /// Release deletes the key whoever holds it.
        ReleaseWithoutToken = ("release_without_token", "release must delete the key only if it still holds your token (else you free another's lock)"),
        /// Redlock's validity ignores the time spent acquiring.
        NoElapsedCheck = ("no_elapsed_check", "Redlock's validity must subtract the time spent acquiring (a stalled client holds an expired lock)"),
        /// Lease servers compare expiry with their steppable local clock.
        WallClockExpiry = ("wall_clock_expiry", "lease expiry must be measured by a clock that cannot jump (a stepped clock expires the lease early)"),
        /// Every ZooKeeper waiter watches the lock node's children.
        Herd = ("herd", "a lock waiter must watch only its predecessor (watching the lock node wakes every waiter)"),
    }
}

/// `[params]` of a lock scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Which lock.
    pub design: Design,
    /// Whether the resource checks fencing tokens.
    pub fencing: bool,
    /// Lease time to live (lease and redlock).
    pub ttl: Duration,
    /// Redlock's clock-drift allowance as a fraction of the ttl (2 ms are added).
    pub drift_factor: f64,
    /// Redlock: how long to wait for each server's answer; lease: for the one server's.
    pub server_timeout: Duration,
    /// Pause between acquisition attempts (randomised 0.5x to 1.5x).
    pub retry_delay: Duration,
    /// How long a client keeps trying to acquire before the operation fails.
    pub acquire_timeout: Duration,
    /// Timeout of a read or write on the resource.
    pub request_timeout: Duration,
    /// Time between reading the counter and writing it back (the critical section's work).
    pub work: Duration,
    /// ZooKeeper: a session with no heartbeat for this long expires.
    pub session_timeout: Duration,
    /// ZooKeeper: how often clients send heartbeats.
    pub heartbeat_interval: Duration,
    /// ZooKeeper: how many Raft replicas run the lock service (nodes 0..replicas; the
    /// resource is node `replicas`).
    pub replicas: usize,
    /// ZooKeeper: a request unanswered this long is resent (same request id) to the next
    /// replica.
    pub service_retry: Duration,
    /// Lease and Redlock clients: before each read or write of the resource, check on the
    /// local clock that the lease (from the start of acquisition, minus the drift allowance)
    /// has not run out, and give up if it has. Narrows the window; cannot close it.
    pub validity_recheck: bool,
    /// A switchable bug.
    pub bug: Option<LockBug>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            design: Design::Lease,
            fencing: false,
            ttl: Duration(500 * MS),
            drift_factor: 0.01,
            server_timeout: Duration(50 * MS),
            retry_delay: Duration(30 * MS),
            acquire_timeout: Duration(2000 * MS),
            request_timeout: Duration(300 * MS),
            work: Duration(20 * MS),
            session_timeout: Duration(600 * MS),
            heartbeat_interval: Duration(150 * MS),
            replicas: 3,
            service_retry: Duration(200 * MS),
            validity_recheck: false,
            bug: None,
        }
    }
}

impl Params {
    pub(crate) fn has(&self, bug: LockBug) -> bool {
        self.bug == Some(bug)
    }
}

/// The locks' messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Client to lease server: `SET key token NX PX ttl`.
    Acquire {
        /// The client's attempt, echoed back.
        attempt: u64,
        /// The client's random token.
        token: u64,
    },
    /// Lease server's answer; `fence` counts the server's grants.
    AcquireReply {
        /// The attempt.
        attempt: u64,
        /// Whether the key was set.
        granted: bool,
        /// The grant's number on this server (a fencing token).
        fence: u64,
    },
    /// Client to lease server: delete the key if it holds `token`.
    Release {
        /// The token.
        token: u64,
    },
    /// Client heartbeat, to the replica the client believes leads.
    Ping {
        /// Session id.
        session: u64,
    },
    /// Heartbeat answer from the leader: whether the session is still alive.
    Pong {
        /// Session id.
        session: u64,
        /// False once the service expired it.
        alive: bool,
    },
    /// A replica that does not lead answers a heartbeat with the leader it believes in.
    NotLeader {
        /// That leader, if known.
        hint: Option<NodeId>,
    },
    /// A watch fired: something the client waits on changed.
    WatchFired,
    /// Raft's messages for the ZooKeeper service: between replicas, and the clients' requests
    /// (commands of [`zk::ZkOp`]) and the leader's replies.
    Raft(raft::msg::Msg<ZkMachine>),
    /// Read the counter, presenting a token.
    Read {
        /// The attempt.
        attempt: u64,
        /// Fencing token (0 = none).
        token: u64,
        /// The lock's id, for the checker's messages.
        lock_id: u64,
    },
    /// The counter, or None when the token was refused.
    ReadReply {
        /// The attempt.
        attempt: u64,
        /// The value.
        value: Option<u64>,
    },
    /// Write the counter, presenting a token.
    Write {
        /// The attempt.
        attempt: u64,
        /// Fencing token (0 = none).
        token: u64,
        /// The lock's id.
        lock_id: u64,
        /// The new value.
        value: u64,
    },
    /// Whether the write was accepted.
    WriteReply {
        /// The attempt.
        attempt: u64,
        /// Accepted or refused (stale token).
        accepted: bool,
    },
}

impl From<raft::msg::Msg<ZkMachine>> for Msg {
    fn from(m: raft::msg::Msg<ZkMachine>) -> Msg {
        Msg::Raft(m)
    }
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Acquire { .. } => "acquire",
            Msg::AcquireReply { .. } => "acquire_reply",
            Msg::Release { .. } => "release",
            Msg::Ping { .. } => "ping",
            Msg::Pong { .. } => "pong",
            Msg::NotLeader { .. } => "not_leader",
            Msg::WatchFired => "watch_fired",
            Msg::Raft(raft::msg::Msg::Request { op, .. }) => op.label(),
            Msg::Raft(raft::msg::Msg::Reply { result, .. }) => result.label(),
            Msg::Raft(m) => m.label(),
            Msg::Read { .. } => "read",
            Msg::ReadReply { .. } => "read_reply",
            Msg::Write { .. } => "write",
            Msg::WriteReply { .. } => "write_reply",
        }
    }
}

/// A node of a lock scenario.
pub enum Node {
    /// A lease server (lease and redlock designs).
    Kv(KvServer),
    /// A replica of the ZooKeeper-style lock service.
    Zk(Box<ZkReplica>),
    /// The protected resource.
    Resource(Resource),
    /// A client.
    Client(Box<Client>),
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        match self {
            Node::Kv(s) => s.on_start(ctx),
            Node::Zk(s) => s.on_start(ctx),
            Node::Resource(r) => r.on_start(ctx),
            Node::Client(c) => c.on_start(ctx),
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match self {
            Node::Kv(s) => s.on_message(ctx, from, msg),
            Node::Zk(s) => s.on_message(ctx, from, msg),
            Node::Resource(r) => r.on_message(ctx, from, msg),
            Node::Client(c) => c.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, timer: TimerId, tag: u64) {
        match self {
            Node::Kv(s) => s.on_timer(ctx, tag),
            Node::Zk(s) => s.on_timer(ctx, timer, tag),
            Node::Resource(_) => {}
            Node::Client(c) => c.on_timer(ctx, tag),
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        if let Node::Client(c) = self {
            c.on_invoke(ctx, op);
        }
    }

    fn role_rank(&self, role: &str) -> Option<u64> {
        let Node::Zk(z) = self else { return None };
        match role {
            "leader" if z.raft.is_leader() => Some(z.raft.term),
            "follower" if !z.raft.is_leader() => Some(z.raft.term),
            _ => None,
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        Some(match self {
            Node::Kv(s) => s.summary(),
            Node::Zk(z) => z.summary(),
            Node::Resource(r) => r.summary(),
            Node::Client(c) => c.summary(),
        })
    }
}

fn zk_server(n: &Node) -> Option<&raft::server::Server<ZkMachine, Msg>> {
    match n {
        Node::Zk(z) => Some(&z.raft),
        _ => None,
    }
}

/// Counts one lock-protocol message (not resource traffic, not heartbeats) and sends it.
pub(crate) fn send_lock(ctx: &mut Ctx<'_, Msg>, to: NodeId, msg: Msg) {
    ctx.count("lock.messages", 1.0);
    ctx.send(to, msg);
}

fn validate(sc: &Scenario, p: &Params) -> Result<(), ScenarioError> {
    let need = 2;
    if sc.nodes < need {
        return Err(sc.error_at(
            "nodes",
            format!(
                "a lock scenario needs at least {need} servers: the lock server(s), then the resource as the last one"
            ),
        ));
    }
    if p.design == Design::Lease && sc.nodes != 2 {
        return Err(sc.error_at(
            "nodes",
            "the lease design uses nodes = 2: node 0 is the lock server, node 1 the resource"
                .into(),
        ));
    }
    if p.design == Design::Zookeeper {
        if p.replicas == 0 {
            return Err(sc.error_at(
                "replicas",
                "replicas must be at least 1 (3 or 5 to survive failures)".into(),
            ));
        }
        if sc.nodes != p.replicas + 1 {
            return Err(sc.error_at(
                "nodes",
                format!(
                    "the zookeeper design with replicas = {} uses nodes = {}: nodes 0..{} run the service, node {} is the resource",
                    p.replicas,
                    p.replicas + 1,
                    p.replicas,
                    p.replicas
                ),
            ));
        }
    }
    if p.fencing && p.design == Design::Redlock {
        return Err(sc.error_at(
            "fencing",
            "Redlock hands out no fencing token (its random value is not ordered, and no majority counter is monotonic); use design = \"lease\" or \"zookeeper\" for fencing, or set fencing = false".into(),
        ));
    }
    for (field, d) in [
        ("ttl", p.ttl),
        ("server_timeout", p.server_timeout),
        ("retry_delay", p.retry_delay),
        ("acquire_timeout", p.acquire_timeout),
        ("request_timeout", p.request_timeout),
        ("session_timeout", p.session_timeout),
        ("heartbeat_interval", p.heartbeat_interval),
        ("service_retry", p.service_retry),
    ] {
        if d.0 == 0 {
            return Err(sc.error_at(field, format!("{field} must be above zero")));
        }
    }
    if !(0.0..0.5).contains(&p.drift_factor) {
        return Err(sc.error_at(
            "drift_factor",
            "drift_factor must be in [0, 0.5), e.g. 0.01".into(),
        ));
    }
    let allowed: &[Design] = match p.bug {
        None => &[Design::Lease, Design::Redlock, Design::Zookeeper],
        Some(LockBug::ReleaseWithoutToken) | Some(LockBug::WallClockExpiry) => {
            &[Design::Lease, Design::Redlock]
        }
        Some(LockBug::NoElapsedCheck) => &[Design::Redlock],
        Some(LockBug::Herd) => &[Design::Zookeeper],
    };
    if !allowed.contains(&p.design) {
        return Err(sc.error_at(
            "bug",
            format!(
                "this bug belongs to design = {}; it has no meaning for {:?}",
                allowed
                    .iter()
                    .map(|d| format!("{d:?}").to_lowercase())
                    .collect::<Vec<_>>()
                    .join(" or "),
                p.design
            ),
        ));
    }
    if sc.workload.mix.keys().any(|f| f != "incr") {
        return Err(sc.error_at(
            "mix",
            "lock clients run only `incr` (acquire, read-modify-write the counter, release); write mix = { incr = 1 }".into(),
        ));
    }
    Ok(())
}

/// The `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[
    crate::ParamDoc {
        name: "design",
        default: "\"lease\"",
        doc: "which lock: lease, redlock or zookeeper",
    },
    crate::ParamDoc {
        name: "fencing",
        default: "false",
        doc: "whether the resource checks fencing tokens",
    },
    crate::ParamDoc {
        name: "ttl",
        default: "\"500ms\"",
        doc: "lease time to live (lease and redlock)",
    },
    crate::ParamDoc {
        name: "drift_factor",
        default: "0.01",
        doc: "Redlock's clock-drift allowance as a fraction of the ttl (2 ms are added)",
    },
    crate::ParamDoc {
        name: "server_timeout",
        default: "\"50ms\"",
        doc: "how long to wait for each lock server's answer",
    },
    crate::ParamDoc {
        name: "retry_delay",
        default: "\"30ms\"",
        doc: "pause between acquisition attempts (randomised 0.5x to 1.5x)",
    },
    crate::ParamDoc {
        name: "acquire_timeout",
        default: "\"2s\"",
        doc: "how long a client keeps trying before the operation fails",
    },
    crate::ParamDoc {
        name: "request_timeout",
        default: "\"300ms\"",
        doc: "timeout of a read or write on the resource",
    },
    crate::ParamDoc {
        name: "work",
        default: "\"20ms\"",
        doc: "time between reading the counter and writing it back (the critical section)",
    },
    crate::ParamDoc {
        name: "session_timeout",
        default: "\"600ms\"",
        doc: "ZooKeeper: a session with no heartbeat for this long expires",
    },
    crate::ParamDoc {
        name: "heartbeat_interval",
        default: "\"150ms\"",
        doc: "ZooKeeper: how often clients send heartbeats",
    },
    crate::ParamDoc {
        name: "replicas",
        default: "3",
        doc: "ZooKeeper: Raft replicas running the lock service (the resource follows them)",
    },
    crate::ParamDoc {
        name: "service_retry",
        default: "\"200ms\"",
        doc: "ZooKeeper: an unanswered request is resent to the next replica after this",
    },
    crate::ParamDoc {
        name: "validity_recheck",
        default: "false",
        doc: "lease/Redlock: re-check the lease on the local clock before each resource access",
    },
    crate::ParamDoc {
        name: "bug",
        default: "none",
        doc: "a switchable bug (see bugs)",
    },
];

/// Runs a lock scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    validate(sc, &params)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let servers = cfg.servers_count;
    let clients = cfg.workload.clients;
    let duration_ns = cfg.duration_ns;
    let p = params.clone();
    let rp = std::rc::Rc::new(zk::raft_params());
    let mut sim = Sim::new(cfg, move |info| {
        let resource = info.servers_count - 1;
        if info.is_client {
            Node::Client(Box::new(Client::new(p.clone(), info.id, resource)))
        } else if info.id == resource {
            Node::Resource(Resource::new(p.fencing))
        } else if p.design == Design::Zookeeper {
            Node::Zk(Box::new(ZkReplica::new(rp.clone(), &p, info.id, resource)))
        } else {
            Node::Kv(KvServer::new(p.clone()))
        }
    });
    let stats = std::rc::Rc::new(std::cell::RefCell::new(LockStats::default()));
    sim.add_checker(LockChecker::new(
        servers - 1,
        servers,
        clients,
        params.fencing,
        stats.clone(),
    ));
    let raft_shared = std::rc::Rc::new(std::cell::RefCell::new(raft::checks::Shared::default()));
    if params.design == Design::Zookeeper {
        // Raft's invariants over the lock service's replicas.
        sim.add_checker(raft::checks::Invariants::over(
            raft_shared.clone(),
            servers,
            zk_server,
        ));
    }
    let mut result = sim.run();
    stats.borrow().add_metrics(&mut result.metrics, duration_ns);
    if params.design == Design::Zookeeper {
        let sh = raft_shared.borrow();
        let changes = sh.leaders.windows(2).filter(|w| w[0].2 != w[1].2).count();
        result
            .metrics
            .insert("raft.leader_changes".into(), changes as f64);
        result.metrics.insert(
            "raft.commands_committed".into(),
            sh.commands_committed as f64,
        );
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_file(name: &str, seed: u64) -> RunResult {
        let path = format!(
            "{}/../scenarios/lock/{name}.toml",
            env!("CARGO_MANIFEST_DIR")
        );
        let sc = Scenario::load(&path).expect("scenario loads");
        crate::run(&sc, seed, &RunOptions::default()).expect("runs")
    }

    #[test]
    fn fencing_turns_the_paused_client_timeline_from_violation_to_pass() {
        let unfenced = run_file("pause", 1);
        assert_eq!(unfenced.verdict, sim_core::Verdict::Violation);
        assert!(unfenced.violations[0].message.contains("mutual exclusion"));
        for seed in 1..=20 {
            let fenced = run_file("pause-fenced", seed);
            assert_eq!(fenced.verdict, sim_core::Verdict::Pass, "seed {seed}");
        }
    }

    #[test]
    fn herd_costs_more_watch_messages_per_handover() {
        let herd = run_file("zk-herd", 1);
        let calm = run_file("zk-no-herd", 1);
        let m = |r: &RunResult| r.metrics["lock.watch_messages_per_handover"];
        assert!(m(&herd) > 4.0 * m(&calm), "{} vs {}", m(&herd), m(&calm));
    }

    #[test]
    fn the_replicated_zookeeper_lock_survives_a_leader_isolation_with_fencing() {
        for seed in 1..=10 {
            let r = run_file("zk-leader-isolated", seed);
            assert_eq!(r.verdict, sim_core::Verdict::Pass, "seed {seed}");
            // The isolation moved the leadership, and locks were still handed out after it.
            assert!(r.metrics["raft.leader_changes"] >= 1.0, "seed {seed}");
            assert!(r.metrics["lock.acquisitions"] >= 5.0, "seed {seed}");
        }
    }

    #[test]
    fn zookeeper_without_fencing_is_caught_and_with_fencing_passes() {
        let unfenced = run_file("zk-faults-unfenced", 15);
        assert_eq!(unfenced.verdict, sim_core::Verdict::Violation);
        assert!(unfenced.violations[0].message.contains("mutual exclusion"));
        for seed in 1..=10 {
            let fenced = run_file("zk-faults", seed);
            assert_eq!(fenced.verdict, sim_core::Verdict::Pass, "seed {seed}");
            assert!(
                fenced.metrics["lock.sessions_expired"] >= 1.0,
                "seed {seed}"
            );
        }
    }

    #[test]
    fn zookeeper_nodes_must_match_replicas() {
        let text = "description = \"d\"\nalgorithm = \"lock\"\nnodes = 3\nduration = \"1s\"\n[params]\ndesign = \"zookeeper\"\nreplicas = 3\n";
        let sc = Scenario::parse("t.toml", text).expect("parses");
        let err = run(&sc, 1, &RunOptions::default()).unwrap_err();
        assert!(err.message.contains("uses nodes = 4"), "{}", err.message);
    }

    #[test]
    fn one_replica_runs_the_same_service() {
        let text = "description = \"d\"\nalgorithm = \"lock\"\nnodes = 2\nduration = \"3s\"\n[params]\ndesign = \"zookeeper\"\nreplicas = 1\nfencing = true\n[workload]\nclients = 3\nmix = { incr = 1 }\n";
        let sc = Scenario::parse("t.toml", text).expect("parses");
        let r = run(&sc, 1, &RunOptions::default()).expect("runs");
        assert_eq!(r.verdict, sim_core::Verdict::Pass);
        assert!(r.metrics["lock.acquisitions"] >= 5.0);
    }

    #[test]
    fn redlock_refuses_fencing() {
        let text = "description = \"d\"\nalgorithm = \"lock\"\nnodes = 6\nduration = \"1s\"\n[params]\ndesign = \"redlock\"\nfencing = true\n";
        let sc = Scenario::parse("t.toml", text).expect("parses");
        let err = run(&sc, 1, &RunOptions::default()).unwrap_err();
        assert!(err.message.contains("no fencing token"), "{}", err.message);
    }
}
