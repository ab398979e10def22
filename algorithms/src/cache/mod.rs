//! A distributed LRU cache cluster in front of a slow database, placed on the consistent-hash
//! ring of [`crate::hashing`].
//!
//! Nodes: cache servers `0..nodes-1` (each an LRU of at most `capacity` entries), the database
//! at node `nodes - 1` (replies after `db_delay`, writes synced before they are acknowledged),
//! then the clients. Clients read through the cache (cache-aside): a hit answers at once; on a
//! miss the client reads the database, answers, and fills the cache. A write goes to the
//! database first, then invalidates the key at its cache server, and is acknowledged after both.
//!
//! Leases (Nishtala et al., "Scaling Memcache at Facebook", NSDI 2013): a miss hands the client
//! a lease token; a delete voids the key's token; a fill whose token was voided is refused, so
//! a value read before a write cannot be put back after the write's invalidation (the stale
//! set). A second miss while a lease is out gets `wait` instead of a token and asks again
//! after `lease_wait`: one database read per hot-key miss instead of one per reader (the
//! thundering herd).
//!
//! Membership is that of [`crate::hashing::membership`]: cache servers heartbeat clients and
//! each other; crashes and the `[params]` schedule move keys as the ring says (a restarted or
//! joining server starts cold). A cache server keeps only keys it owns in its own view (it
//! drops the rest and refuses to fill them) and flushes itself when a stall (a pause) kept it
//! silent past `suspect_after`, since clients may have invalidated its keys elsewhere.
//!
//! Check ([`check::Staleness`]): after a write completes and `staleness_bound` has passed, no
//! read invoked later returns an older value (a bound of 0 is read-your-writes for everyone).
//!
//! Metrics: `cache.hit_ratio`, `db.reads_per_s`, `cache.db_reads_per_miss_episode` (database
//! reads per episode of a key being absent, the herd figure), `op_latency_ms.p50`/`.p99`; per
//! server load as `load.cache_requests`; series `cache.hit_ratio`, `db.reads_per_s` and
//! `state.member` for the cache panel.

pub mod check;
pub mod client;
pub mod lru;
pub mod msg;
pub mod server;

use std::rc::Rc;

use serde::Deserialize;
use sim_core::scenario::NodeIndex;
use sim_core::time::{Duration, Nanos, MS, SEC};
use sim_core::{
    Ctx, NodeId, Op, Process, RunOptions, RunResult, Scenario, ScenarioError, Sim, SimConfig,
    TimerId,
};

use crate::hashing::hash::{mix64, HashFn};
use crate::hashing::membership::{Change, Schedule};
use crate::hashing::node::Shared;
use crate::hashing::placement::{KeySpace, PlacementConfig, Strategy};
use crate::Bug;
use msg::Msg;
use server::{CacheServer, Database};

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[Bug] = CacheBug::ALL;

crate::bug_switches! {
    /// The cache's bug switches; each variant carries the rule it breaks.
    pub enum CacheBug {
        /// No leases: any fill is accepted (the stale-set race) and every reader of a missing
        /// hot key goes to the database (the herd).
        LeasesOff = ("leases_off", "a fill must be refused if the key was invalidated since the miss (else a value read before a write is cached after it)"),
        /// Invalidate the cache before writing the database.
        InvalidateBeforeWrite = ("invalidate_before_write", "invalidate after the database write, not before (else a reader refills the old value in between)"),
        /// Hand out leases but accept a fill without checking its token.
        FillWithoutLease = ("fill_without_lease", "a fill must carry the lease token still valid for the key (leases handed out but never checked protect nothing)"),
    }
}

/// The `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[
    crate::ParamDoc {
        name: "bug",
        default: "none",
        doc: "a switchable bug (see bugs)",
    },
    crate::ParamDoc {
        name: "capacity",
        default: "1000",
        doc: "entries per cache server (LRU)",
    },
    crate::ParamDoc {
        name: "db_delay",
        default: "10ms",
        doc: "database reply delay",
    },
    crate::ParamDoc {
        name: "lease_ttl",
        default: "1s",
        doc: "how long a lease blocks other fetchers of its key",
    },
    crate::ParamDoc {
        name: "lease_wait",
        default: "5ms",
        doc: "how long a client told to wait waits",
    },
    crate::ParamDoc {
        name: "ttl",
        default: "none",
        doc: "entry expiry",
    },
    crate::ParamDoc {
        name: "staleness_bound",
        default: "0ms",
        doc: "check: reads invoked this long after a write completed see it",
    },
    crate::ParamDoc {
        name: "strategy",
        default: "ring",
        doc: "placement of keys on cache servers",
    },
    crate::ParamDoc {
        name: "vnodes",
        default: "100",
        doc: "ring points per cache server",
    },
    crate::ParamDoc {
        name: "spares",
        default: "[]",
        doc: "cache servers that start outside the cluster",
    },
    crate::ParamDoc {
        name: "changes",
        default: "[]",
        doc: "scheduled joins and leaves of cache servers",
    },
    crate::ParamDoc {
        name: "heartbeat",
        default: "100ms",
        doc: "period of cache servers' heartbeats",
    },
    crate::ParamDoc {
        name: "suspect_after",
        default: "400ms",
        doc: "silence after which a cache server leaves a view",
    },
    crate::ParamDoc {
        name: "report_interval",
        default: "250ms",
        doc: "period of the panels' series",
    },
    crate::ParamDoc {
        name: "delete_retry",
        default: "50ms",
        doc: "resend period of an unacknowledged invalidation",
    },
];

/// `[params]` of a cache scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// A switchable bug.
    pub bug: Option<CacheBug>,
    /// Entries per cache server.
    pub capacity: usize,
    /// Database reply delay.
    pub db_delay: Duration,
    /// How long a lease blocks other fetchers of its key.
    pub lease_ttl: Duration,
    /// How long a client told to wait waits before asking again.
    pub lease_wait: Duration,
    /// Entries expire after this long (memcache's expiry); none by default.
    pub ttl: Option<Duration>,
    /// The staleness bound of the check.
    pub staleness_bound: Duration,
    /// Placement of keys on cache servers.
    pub strategy: Strategy,
    /// Virtual nodes per cache server.
    pub vnodes: usize,
    /// Cache servers that start outside the cluster.
    pub spares: Vec<NodeIndex>,
    /// Scheduled joins and leaves of cache servers.
    pub changes: Vec<Change>,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Silence after which a cache server leaves a view.
    pub suspect_after: Duration,
    /// Period of the panels' series.
    pub report_interval: Duration,
    /// How often an unacknowledged invalidation is resent.
    pub delete_retry: Duration,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bug: None,
            capacity: 1000,
            db_delay: Duration(10 * MS),
            lease_ttl: Duration(SEC),
            lease_wait: Duration(5 * MS),
            ttl: None,
            staleness_bound: Duration(0),
            strategy: Strategy::Ring,
            vnodes: 100,
            spares: Vec::new(),
            changes: Vec::new(),
            heartbeat: Duration(100 * MS),
            suspect_after: Duration(400 * MS),
            report_interval: Duration(250 * MS),
            delete_retry: Duration(50 * MS),
        }
    }
}

/// What every node of a run shares.
pub struct Config {
    /// Placement, keys, membership schedule, timeouts.
    pub shared: Rc<Shared>,
    /// The bug.
    pub bug: Option<CacheBug>,
    /// Entries per cache server.
    pub capacity: usize,
    /// Lease block time.
    pub lease_ttl: Nanos,
    /// Client wait after `wait`.
    pub lease_wait: Nanos,
    /// Entry expiry.
    pub ttl: Option<Nanos>,
    /// Series period.
    pub report_interval: Nanos,
    /// Invalidation resend period.
    pub delete_retry: Nanos,
    /// The database's node id.
    pub db: NodeId,
    /// Number of clients.
    pub clients: usize,
}

impl Config {
    /// Sends `msg` to every other cache server and every client.
    pub fn broadcast(&self, ctx: &mut Ctx<'_, Msg>, msg: &Msg) {
        let me = ctx.id();
        let targets = (0..self.db).chain(self.db + 1..self.db + 1 + self.clients);
        for to in targets.filter(|t| *t != me) {
            ctx.send(to, msg.clone());
        }
    }
}

const HEARTBEAT: u64 = u64::MAX;
const SCHEDULE: u64 = u64::MAX - 1;
const REPORT: u64 = u64::MAX - 2;
const RETRY_BASE: u64 = 1 << 62;
const DB_BASE: u64 = 1 << 61;

/// A node of the cache cluster.
pub enum Node {
    /// A cache server.
    Cache(CacheServer),
    /// The database.
    Db(Database),
    /// A cache-aside client.
    Client(client::Client),
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        match self {
            Node::Cache(c) => c.start(ctx),
            Node::Db(d) => d.start(ctx),
            Node::Client(_) => {
                ctx.set_timer(100 * MS, HEARTBEAT);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match self {
            Node::Cache(c) => c.on_message(ctx, from, msg),
            Node::Db(d) => d.on_message(ctx, from, msg),
            Node::Client(c) => c.on_message(ctx, from, msg),
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        match self {
            Node::Cache(c) => match tag {
                HEARTBEAT => c.heartbeat(ctx),
                SCHEDULE => c.scheduled(ctx),
                REPORT => c.report(ctx),
                _ => {}
            },
            Node::Db(d) => d.on_timer(ctx, tag),
            Node::Client(c) => c.on_timer(ctx, tag),
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        if let Node::Client(c) = self {
            c.invoke(ctx, op);
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        Some(match self {
            Node::Cache(c) => c.summary(),
            Node::Db(d) => d.summary(),
            Node::Client(c) => c.summary(),
        })
    }
}

fn validate(p: &Params, sc: &Scenario) -> Result<(), ScenarioError> {
    let bad = |field: &str, msg: &str| Err(sc.error_at(field, msg.to_string()));
    if sc.nodes < 2 {
        return Err(sc.error_at(
            "nodes",
            "the cache needs at least one cache server and the database: nodes >= 2".into(),
        ));
    }
    if p.vnodes == 0 || p.vnodes > crate::hashing::VNODES_MAX {
        return bad(
            "vnodes",
            "vnodes (points per cache server on the ring) must be between 1 and 10,000, e.g. 100",
        );
    }
    if p.capacity == 0 {
        return bad(
            "capacity",
            "capacity (entries per cache server) must be at least 1",
        );
    }
    if p.heartbeat.0 == 0 || p.suspect_after.0 <= p.heartbeat.0 {
        return bad(
            "suspect_after",
            "heartbeat must be above zero and suspect_after longer than it, e.g. \"100ms\" and \"400ms\"",
        );
    }
    if p.report_interval.0 == 0 || p.delete_retry.0 == 0 || p.lease_wait.0 == 0 {
        return bad(
            "report_interval",
            "report_interval, delete_retry and lease_wait must be above zero",
        );
    }
    if p.vnodes == 0 {
        return bad("vnodes", "vnodes must be at least 1, e.g. 100");
    }
    let db = sc.nodes - 1;
    let named = p
        .spares
        .iter()
        .chain(p.changes.iter().flat_map(|c| c.join.iter().chain(&c.leave)));
    for n in named {
        if n.0 >= db {
            return Err(sc.error_at(
                "spares",
                format!(
                    "n{} is not a cache server: cache servers are n0..n{} (n{db} is the database)",
                    n.0,
                    db - 1
                ),
            ));
        }
    }
    if sc.workload.keys == 0 {
        return Err(sc.error_at(
            "keys",
            "the cache needs keys: set [workload] keys, e.g. keys = 10000".into(),
        ));
    }
    Ok(())
}

/// Runs a cache scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let p: Params = sc.params()?;
    validate(&p, sc)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let db = cfg.servers_count - 1;
    let shared = Rc::new(Shared {
        cfg: PlacementConfig {
            strategy: p.strategy,
            vnodes: p.vnodes,
            weights: Default::default(),
            c: 1.25,
            salt: mix64(seed),
            hash: HashFn::Stable,
            modulo: false,
            slots: db,
        },
        keys: KeySpace::new(cfg.workload.keys, HashFn::Stable),
        schedule: Schedule::new(&p.spares, &p.changes),
        heartbeat: p.heartbeat.0,
        suspect_after: p.suspect_after.0,
        servers: db,
        timeout: cfg.workload.timeout.0,
        built: Default::default(),
    });
    let config = Rc::new(Config {
        shared,
        bug: p.bug,
        capacity: p.capacity,
        lease_ttl: p.lease_ttl.0,
        lease_wait: p.lease_wait.0,
        ttl: p.ttl.map(|d| d.0),
        report_interval: p.report_interval.0,
        delete_retry: p.delete_retry.0,
        db,
        clients: cfg.workload.clients,
    });
    let db_delay = p.db_delay.0;
    let report = p.report_interval.0;
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(client::Client::new(config.clone()))
        } else if info.id == db {
            Node::Db(Database::new(db_delay, report))
        } else {
            Node::Cache(CacheServer::new(config.clone()))
        }
    });
    sim.add_checker(check::Staleness::new(p.staleness_bound.0, db));
    sim.add_checker(check::ViewsConverge);
    let mut r = sim.run();
    derived_metrics(&mut r);
    Ok(r)
}

/// Ratios computed from the run's counters.
fn derived_metrics(r: &mut RunResult) {
    let m = &r.metrics;
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    let (hits, misses) = (get("cache.hits"), get("cache.misses"));
    let secs = r.simulated_ns as f64 / 1e9;
    let mut add = Vec::new();
    if hits + misses > 0.0 {
        add.push(("cache.hit_ratio", hits / (hits + misses)));
    }
    if secs > 0.0 {
        add.push(("db.reads_per_s", get("db.reads") / secs));
    }
    if get("cache.miss_episodes") > 0.0 {
        add.push((
            "cache.db_reads_per_miss_episode",
            get("db.reads") / get("cache.miss_episodes"),
        ));
    }
    for (k, v) in add {
        r.metrics.insert(k.to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bug_list_matches_the_enum() {
        for b in super::BUGS {
            let parsed: super::CacheBug =
                serde_json::from_value(serde_json::json!(b.name)).expect("parses");
            assert_eq!(parsed.name(), b.name);
            assert_eq!(parsed.rule(), b.rule);
        }
    }
}
