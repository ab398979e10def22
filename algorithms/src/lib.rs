//! The algorithms distsim runs, one module per family, each a set of sans-IO processes with
//! its checks and its switchable textbook bugs, and the registry that maps a scenario's
//! `algorithm = "..."` to them.
//!
//! Every module follows the same shape: `Params` (its `[params]` table, unknown fields
//! refused), `BUGS` (each bug switch with one line on the rule it breaks), the `Node` process,
//! its checkers, and `run`, which builds the simulation from a scenario.

use sim_core::faults::NodeRef;
use sim_core::time::{Duration, SEC};
use sim_core::{Ctx, Message, NodeId, RunOptions, RunResult, Scenario, ScenarioError};

pub mod broadcast;
pub mod bytes;
pub mod cache;
pub mod catch_up;
pub mod client;
pub mod commit;
pub mod concurrency;
pub mod echo;
pub mod flood;
pub mod hashing;
pub mod lock;
pub mod paxos;
pub mod primary_backup;
pub mod raft;
pub mod saga;

/// Declares a family's bug switches as one enum whose variants carry the rule each breaks, so
/// that there is no second list to keep in step: the enum's `ALL` (the family's `BUGS`), its
/// `rule()` and its `name()` all come from the one declaration.
///
/// ```ignore
/// bug_switches! {
///     /// Raft's bugs.
///     pub enum RaftBug {
///         /// Grant votes without comparing logs.
///         VoteWithoutLogCheck = ("vote_without_log_check", "a vote goes only to ..."),
///     }
/// }
/// ```
#[macro_export]
macro_rules! bug_switches {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])* $variant:ident = ($snake:literal, $rule:literal), )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
        pub enum $name {
            $( $(#[doc = $doc])* #[serde(rename = $snake)] $variant, )*
        }

        impl $name {
            /// Every switch with the rule it breaks, in declaration order.
            pub const ALL: &'static [$crate::Bug] = &[
                $( $crate::Bug { name: $snake, rule: $rule }, )*
            ];

            /// The value of `bug = "..."` that selects this switch.
            pub fn name(self) -> &'static str {
                match self { $( $name::$variant => $snake, )* }
            }

            /// The protocol rule this switch breaks.
            pub fn rule(self) -> &'static str {
                match self { $( $name::$variant => $rule, )* }
            }
        }
    };
}

/// A switchable bug and the rule it breaks.
#[derive(Clone, Copy, Debug)]
pub struct Bug {
    /// The value of `bug = "..."` in `[params]`.
    pub name: &'static str,
    /// The protocol rule the bug breaks, in one line.
    pub rule: &'static str,
}

/// One `[params]` field, for `distsim list` and the docs. A test checks that the list names
/// exactly the fields the algorithm's `Params` accepts, so the two cannot drift apart.
#[derive(Clone, Copy, Debug)]
pub struct ParamDoc {
    /// The field's name in `[params]`.
    pub name: &'static str,
    /// Its default, as written in a scenario.
    pub default: &'static str,
    /// What it does, in one line.
    pub doc: &'static str,
}

/// Runs one seed of a scenario.
pub type RunFn = fn(&Scenario, u64, &RunOptions) -> Result<RunResult, ScenarioError>;

/// An algorithm known to distsim.
#[derive(Clone, Copy, Debug)]
pub struct Algorithm {
    /// The name used in scenario files.
    pub name: &'static str,
    /// What it is, in one line.
    pub summary: &'static str,
    /// Its bug switches.
    pub bugs: &'static [Bug],
    /// The workload `mix` operations its clients accept.
    pub operations: &'static [&'static str],
    /// The roles its `role_rank` answers, which faults may name (`node = "leader"`); "random"
    /// is always accepted.
    pub roles: &'static [&'static str],
    /// Its `[params]` fields.
    pub params: &'static [ParamDoc],
    /// How long after the faults heal it must have made progress, unless the scenario's
    /// `[liveness] within` says otherwise.
    pub liveness_within: Duration,
    /// Runs one seed.
    pub run: RunFn,
}

/// Every algorithm, in a fixed order.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        name: "echo",
        summary: "hello world: servers send back what clients send",
        bugs: echo::BUGS,
        operations: &["echo"],
        roles: &[],
        params: echo::PARAMS,
        liveness_within: Duration(SEC),
        run: echo::run,
    },
    Algorithm {
        name: "broadcast",
        summary: "gossip every value to every server, retrying until acknowledged",
        bugs: broadcast::BUGS,
        operations: &["add", "read"],
        roles: &[],
        params: broadcast::PARAMS,
        liveness_within: Duration(SEC),
        run: broadcast::run,
    },
    Algorithm {
        name: "raft",
        summary: "Raft consensus driving a key-value store with get, put and compare-and-set",
        bugs: raft::BUGS,
        operations: &["read", "get", "write", "put", "cas"],
        roles: &["leader", "follower"],
        params: raft::PARAMS,
        liveness_within: Duration(SEC),
        run: raft::run,
    },
    Algorithm {
        name: "lock",
        summary:
            "distributed locks: a Redis lease, Redlock, and the ZooKeeper recipe, with fencing",
        bugs: lock::BUGS,
        operations: &["incr"],
        roles: &["leader", "follower"],
        params: lock::PARAMS,
        liveness_within: Duration(SEC),
        run: lock::run,
    },
    Algorithm {
        name: "commit",
        summary: "atomic commit: two-phase, three-phase and Paxos Commit over bank and multi-key transactions",
        bugs: commit::BUGS,
        operations: commit::OPERATIONS,
        roles: commit::ROLES,
        params: commit::PARAMS,
        // Longer than the scenarios' client timeout (1 s: a client whose request was lost just
        // before the heal waits that long) plus one transaction with its vote timeout (100 ms)
        // and a retry (100 ms); the participants' own check takes half of it (750 ms) for a
        // 3PC termination or a Paxos Commit recovery ballot by rank (200 ms a rank) to finish.
        liveness_within: Duration(1_500 * sim_core::time::MS),
        run: commit::run,
    },
    Algorithm {
        name: "paxos-synod",
        summary: "single-decree Paxos (the Synod protocol): proposers, acceptors and learners choose one value",
        bugs: paxos::SYNOD_BUGS,
        operations: &["propose"],
        roles: &["proposer"],
        params: paxos::SYNOD_PARAMS,
        liveness_within: paxos::SYNOD_LIVENESS_WITHIN,
        run: paxos::run_synod,
    },
    Algorithm {
        name: "paxos",
        summary: "Multi-Paxos driving a key-value store with get, put and compare-and-set",
        bugs: paxos::BUGS,
        operations: &["read", "get", "write", "put", "cas"],
        roles: &["leader", "follower"],
        params: paxos::PARAMS,
        liveness_within: paxos::LIVENESS_WITHIN,
        run: paxos::run,
    },
    Algorithm {
        name: "primary_backup",
        summary: "primary-backup replication with leases and failover, by a view service or by the ZooKeeper-style lock service on Raft",
        bugs: primary_backup::BUGS,
        operations: &["read", "get", "write", "put", "cas"],
        roles: &["primary", "backup", "view_service", "coord_leader"],
        params: primary_backup::PARAMS,
        // The service's wait for the old lease (367 ms), catch-up, and retries.
        liveness_within: Duration(1_500 * sim_core::time::MS),
        run: primary_backup::run,
    },
    Algorithm {
        name: "saga",
        summary: "sagas: orchestrated (durable saga log) or choreographed, with compensations and semantic locks",
        bugs: saga::BUGS,
        operations: &["order"],
        roles: &["orchestrator"],
        params: saga::PARAMS,
        // Past a client's 2 s timeout (a request lost just before the heal leaves its client
        // waiting that long) plus a saga that gives up on busy records (21 x 60 ms), and
        // longer than the per-saga bound (1.86 s, `saga::check::saga_bound_ns`) so that the
        // sagas started in the first 1.6 s after the heal are judged by it.
        liveness_within: Duration(3_500 * sim_core::time::MS),
        run: saga::run,
    },
    Algorithm {
        name: "concurrency",
        summary: "optimistic (versions, compare-and-set, backoff) against pessimistic (strict 2PL, wait-die / wound-wait / timeout) concurrency control on a sharded store",
        bugs: concurrency::BUGS,
        operations: &["incr", "transfer"],
        roles: &[],
        params: concurrency::PARAMS,
        liveness_within: Duration(SEC / 2),
        run: concurrency::run,
    },
    Algorithm {
        name: "hashing",
        summary: "consistent hashing (ring, jump, rendezvous, bounded loads) under joins, leaves and crashes",
        bugs: hashing::BUGS,
        operations: &["put", "get"],
        roles: &[],
        params: hashing::PARAMS,
        // Longer than a client timeout (500 ms by default; hashing clients do not retry) plus a
        // membership cycle (suspect_after, 200 ms by default, then a heartbeat): a request sent
        // to a server that crashed just before the heal times out, and views converge on the
        // restarted servers within a heartbeat.
        liveness_within: Duration(1_200 * sim_core::time::MS),
        run: hashing::run,
    },
    Algorithm {
        name: "cache",
        summary: "an LRU cache cluster on a consistent-hash ring in front of a slow database, cache-aside, with memcache leases",
        bugs: cache::BUGS,
        operations: &["get", "put"],
        roles: &[],
        params: cache::PARAMS,
        // Longer than a client timeout (1 s in the nemesis scenarios) plus a retry cycle (a
        // reader told to wait asks again every lease_wait; an invalidation is resent every
        // delete_retry) and a membership cycle (suspect_after 400 ms): a request lost just
        // before the heal leaves its client waiting a whole timeout before it tries again.
        liveness_within: Duration(1_800 * sim_core::time::MS),
        run: cache::run,
    },
    Algorithm {
        name: "flood",
        summary: "engine benchmark: servers forward every message to a random peer",
        bugs: flood::BUGS,
        operations: &[],
        roles: &[],
        params: flood::PARAMS,
        liveness_within: Duration(SEC),
        run: flood::run,
    },
];

/// Finds an algorithm by name.
pub fn find(name: &str) -> Option<&'static Algorithm> {
    ALGORITHMS.iter().find(|a| a.name == name)
}

/// Checks a loaded scenario against what its algorithm declares (the operations in the
/// workload mix, the roles faults name, the liveness bound against the quiet period), and
/// fills in the algorithm's default liveness bound. Call it once at load time, before any run.
pub fn prepare(sc: &mut Scenario) -> Result<&'static Algorithm, ScenarioError> {
    let alg = algorithm_of(sc)?;
    for f in sc.workload.mix.keys() {
        if !alg.operations.contains(&f.as_str()) {
            let known = if alg.operations.is_empty() {
                format!(
                    "{} has no clients; remove [workload] clients and mix",
                    alg.name
                )
            } else {
                format!("{} accepts: {}", alg.name, alg.operations.join(", "))
            };
            return Err(sc.error_at(
                "mix",
                format!("operation `{f}` in the workload mix is not one {known}"),
            ));
        }
    }
    for (i, f) in sc.faults.iter().enumerate() {
        if let Some(NodeRef::Role(r)) = f.action.node() {
            if r != "random" && !alg.roles.contains(&r.as_str()) {
                let known: Vec<String> = alg
                    .roles
                    .iter()
                    .chain(["random"].iter())
                    .map(|r| format!("\"{r}\""))
                    .collect();
                let msg = format!(
                    "{} reports no role \"{r}\"; name a node by index or one of: {}",
                    alg.name,
                    known.join(", ")
                );
                return Err(match &sc.source {
                    Some(src) => ScenarioError::at_table(src, "faults", i, "node", msg),
                    None => ScenarioError::new(sc.path(), msg),
                });
            }
        }
    }
    if sc.liveness_on() && sc.liveness.within.is_none() {
        let w = alg.liveness_within;
        if w >= sc.quiet {
            return Err(sc.error_at(
                "quiet",
                format!(
                    "the quiet period ({}) is not longer than {}'s liveness bound ({}); lengthen quiet, or set [liveness] within = \"...\" shorter than it, or enabled = false",
                    sim_core::time::fmt_ns(sc.quiet.0),
                    alg.name,
                    sim_core::time::fmt_ns(w.0)
                ),
            ));
        }
        sc.liveness.within = Some(w);
    }
    Ok(alg)
}

fn algorithm_of(sc: &Scenario) -> Result<&'static Algorithm, ScenarioError> {
    find(&sc.algorithm).ok_or_else(|| {
        let names: Vec<&str> = ALGORITHMS.iter().map(|a| a.name).collect();
        sc.error_at(
            "algorithm",
            format!(
                "unknown algorithm \"{}\"; use one of: {}",
                sc.algorithm,
                names.join(", ")
            ),
        )
    })
}

/// Runs one seed of a scenario with the algorithm it names. A scenario that has not been
/// through [`prepare`] is prepared on a copy first, so a run is always checked.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let mut sc = sc.clone();
    let alg = prepare(&mut sc)?;
    let mut r = (alg.run)(&sc, seed, opts)?;
    // Metric assertions are judged last, on every metric the family added after the
    // simulation ended.
    if r.violations.is_empty() || opts.continue_after_violation {
        for f in sim_core::assertion::judge_metric_asserts(&sc.asserts, &r.metrics) {
            r.violations.push(sim_core::Violation {
                time_ns: r.simulated_ns,
                source: "assert".into(),
                kind: f.kind,
                message: f.message,
                nodes: f.nodes,
                ops: f.ops,
                values: f.values,
                keys: f.keys,
            });
            r.verdict = sim_core::Verdict::Violation;
        }
    }
    Ok(r)
}

/// The server a fault took out of the cluster: the node a crash stopped, or the node a
/// partition isolated (for the time-without-a-leader metrics of Raft and Paxos).
pub fn fault_target(f: &sim_core::result::FaultRecord) -> Option<NodeId> {
    match f.action.as_str() {
        "crash" => f.nodes.first().copied(),
        "partition" => f.detail.strip_prefix("isolate n")?.parse().ok(),
        _ => None,
    }
}

/// A server chosen from the node's own random stream.
pub fn random_server<M: Message>(ctx: &mut Ctx<'_, M>) -> NodeId {
    use sim_core::rng::SimRng;
    let n = ctx.servers_count();
    let rng: &mut SimRng = ctx.rng();
    rand_index(rng, n)
}

fn rand_index(rng: &mut sim_core::rng::SimRng, n: usize) -> usize {
    use rand::Rng;
    rng.random_range(0..n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// `PARAMS` names exactly the fields each `Params` accepts: serde lists them when it
    /// refuses an unknown one.
    #[test]
    fn params_docs_name_every_field() {
        for alg in ALGORITHMS {
            let text = format!(
                "description = \"d\"\nalgorithm = \"{}\"\nduration = \"1s\"\n[params]\nzz_not_a_field = 1\n",
                alg.name
            );
            let sc = Scenario::parse("t.toml", &text).expect("parses");
            let err = run(&sc, 1, &RunOptions::default()).expect_err("unknown field refused");
            let expected = err.message.split("expected").nth(1).unwrap_or("");
            let fields: BTreeSet<&str> = expected.split('`').skip(1).step_by(2).collect();
            let docs: BTreeSet<&str> = alg.params.iter().map(|p| p.name).collect();
            assert_eq!(fields, docs, "{}: {}", alg.name, err.message);
        }
    }

    #[test]
    fn undeclared_operations_and_roles_are_refused_at_load() {
        let base = "description = \"d\"\nalgorithm = \"raft\"\nduration = \"5s\"\nquiet = \"3s\"\n";
        let mut sc = Scenario::parse(
            "t.toml",
            &format!("{base}[workload]\nclients = 1\nmix = {{ enqueue = 1 }}\n"),
        )
        .unwrap();
        let e = prepare(&mut sc).unwrap_err();
        assert!(e.message.contains("`enqueue`"), "{}", e.message);
        assert!(
            e.message.contains("raft accepts: read, get"),
            "{}",
            e.message
        );
        let mut sc = Scenario::parse(
            "t.toml",
            &format!("{base}[[faults]]\nat = \"1s\"\naction = \"crash\"\nnode = \"leeder\"\n"),
        )
        .unwrap();
        let e = prepare(&mut sc).unwrap_err();
        assert!(e.message.contains("no role \"leeder\""), "{}", e.message);
        assert_eq!(e.location.map(|l| l.0), Some(8), "{e}");
    }
}
