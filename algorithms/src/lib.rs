//! The algorithms distsim runs, one module per family, each a set of sans-IO processes with
//! its checks and its switchable textbook bugs, and the registry that maps a scenario's
//! `algorithm = "..."` to them.
//!
//! Every module follows the same shape: `Params` (its `[params]` table, unknown fields
//! refused), `BUGS` (each bug switch with one line on the rule it breaks), the `Node` process,
//! its checkers, and `run`, which builds the simulation from a scenario.

use sim_core::{Ctx, Message, NodeId, RunOptions, RunResult, Scenario, ScenarioError};

pub mod broadcast;
pub mod cache;
pub mod client;
pub mod echo;
pub mod flood;
pub mod hashing;
pub mod lock;
pub mod raft;

/// A switchable bug and the rule it breaks.
#[derive(Clone, Copy, Debug)]
pub struct Bug {
    /// The value of `bug = "..."` in `[params]`.
    pub name: &'static str,
    /// The protocol rule the bug breaks, in one line.
    pub rule: &'static str,
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
    /// Runs one seed.
    pub run: RunFn,
}

/// Every algorithm, in a fixed order.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm {
        name: "echo",
        summary: "hello world: servers send back what clients send",
        bugs: echo::BUGS,
        run: echo::run,
    },
    Algorithm {
        name: "broadcast",
        summary: "gossip every value to every server, retrying until acknowledged",
        bugs: broadcast::BUGS,
        run: broadcast::run,
    },
    Algorithm {
        name: "raft",
        summary: "Raft consensus driving a key-value store with get, put and compare-and-set",
        bugs: raft::BUGS,
        run: raft::run,
    },
    Algorithm {
        name: "lock",
        summary:
            "distributed locks: a Redis lease, Redlock, and the ZooKeeper recipe, with fencing",
        bugs: lock::BUGS,
        run: lock::run,
    },
    Algorithm {
        name: "hashing",
        summary: "consistent hashing (ring, jump, rendezvous, bounded loads) under joins, leaves and crashes",
        bugs: hashing::BUGS,
        run: hashing::run,
    },
    Algorithm {
        name: "cache",
        summary: "an LRU cache cluster on a consistent-hash ring in front of a slow database, cache-aside, with memcache leases",
        bugs: cache::BUGS,
        run: cache::run,
    },
    Algorithm {
        name: "flood",
        summary: "engine benchmark: servers forward every message to a random peer",
        bugs: flood::BUGS,
        run: flood::run,
    },
];

/// Finds an algorithm by name.
pub fn find(name: &str) -> Option<&'static Algorithm> {
    ALGORITHMS.iter().find(|a| a.name == name)
}

/// Runs one seed of a scenario with the algorithm it names.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let Some(alg) = find(&sc.algorithm) else {
        let names: Vec<&str> = ALGORITHMS.iter().map(|a| a.name).collect();
        return Err(sc.error_at(
            "algorithm",
            format!(
                "unknown algorithm \"{}\"; use one of: {}",
                sc.algorithm,
                names.join(", ")
            ),
        ));
    };
    (alg.run)(sc, seed, opts)
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
