//! Consistent hashing: spreading keys over servers so that a membership change moves few of
//! them.
//!
//! The library half (usable on its own, and benchmarked by `cargo bench -p algorithms --bench
//! hashing`): one fixed hash ([`hash`]), the ring with virtual nodes and weights ([`ring`],
//! lookup by binary search), jump consistent hash ([`jump`]), rendezvous hashing
//! ([`rendezvous`]), bounded loads on the ring ([`placement`], c = 1.25 by default), and the
//! measurements ([`stats`]): load over mean, standard deviation over mean, keys moved against
//! the ideal.
//!
//! The algorithm half, `hashing`: storage servers hold the keys the placement gives them;
//! clients route each `put`/`get` by their own view of the members; when a server's view
//! changes it hands on the keys it no longer owns. Servers join and leave by the schedule in
//! `[params]` and by crashing and restarting ([`membership`] explains both). The lowest member
//! of each view measures the whole key space under the new view (balance, ring shares, keys
//! moved, lookup cost) and the checks ([`check`]) hold those figures to limits:
//! - load over mean at most `max_load_ratio` (with two or more members);
//! - ring, jump and rendezvous move only keys that must move (from a departing server or to a
//!   joining one); bounded loads moves at most `max_moved_ratio` times the ideal, and no server
//!   holds more than ceil(c x keys / servers).
//!
//! Each seed salts the ring differently, so a sweep samples many rings: that is how
//! docs/hashing.md reproduces the published balance figures.

pub mod check;
pub mod hash;
pub mod jump;
pub mod membership;
pub mod node;
pub mod placement;
pub mod rendezvous;
pub mod ring;
pub mod stats;
pub mod summary;

use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Deserialize;
use sim_core::scenario::NodeIndex;
use sim_core::time::{Duration, MS};
use sim_core::{RunOptions, RunResult, Scenario, ScenarioError, Sim, SimConfig};

use crate::Bug;
use hash::HashFn;
use membership::{Change, Schedule};
use node::{Client, Node, Server, Shared};
use placement::{KeySpace, PlacementConfig, Strategy};

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[Bug] = HashingBug::ALL;

crate::bug_switches! {
    /// The family's bug switches; each variant carries the rule it breaks.
    pub enum HashingBug {
        /// Hash keys and points by the sum of their bytes.
        SumOfBytes = ("sum_of_bytes", "the hash must spread keys and points uniformly (a byte sum piles them onto a few servers)"),
        /// One point per server, whatever `vnodes` says.
        FewVnodes = ("few_vnodes", "each server needs many virtual nodes (one point per server leaves arcs up to ~ln n times the mean)"),
        /// Place keys by `hash mod n`, so a change of n rehashes nearly every key.
        Modulo = ("modulo", "a membership change must move only the keys of the servers that change (hash mod n rehashes almost all)"),
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
        name: "strategy",
        default: "ring",
        doc: "ring, jump, rendezvous or bounded",
    },
    crate::ParamDoc {
        name: "vnodes",
        default: "100",
        doc: "ring points per server per unit of weight",
    },
    crate::ParamDoc {
        name: "weights",
        default: "[]",
        doc: "per-server weights on the ring: [{ node = 0, weight = 2.0 }]",
    },
    crate::ParamDoc {
        name: "c",
        default: "1.25",
        doc: "bounded loads: no server above ceil(c x keys / servers)",
    },
    crate::ParamDoc {
        name: "spares",
        default: "[]",
        doc: "servers that start outside the cluster",
    },
    crate::ParamDoc {
        name: "changes",
        default: "[]",
        doc: "scheduled joins and leaves: [{ at = \"2s\", join = [10], leave = [3] }]",
    },
    crate::ParamDoc {
        name: "heartbeat",
        default: "50ms",
        doc: "period of members' heartbeats",
    },
    crate::ParamDoc {
        name: "suspect_after",
        default: "200ms",
        doc: "silence after which a server leaves a view",
    },
    crate::ParamDoc {
        name: "max_load_ratio",
        default: "1.6",
        doc: "check: largest load over mean",
    },
    crate::ParamDoc {
        name: "max_moved_ratio",
        default: "4.0",
        doc: "check (bounded loads): largest keys moved over the ideal",
    },
];

/// A server's weight on the ring.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Weight {
    /// The server.
    pub node: NodeIndex,
    /// Its weight (1 is ordinary).
    pub weight: f64,
}

/// `[params]` of a hashing scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// A switchable bug.
    pub bug: Option<HashingBug>,
    /// The placement strategy.
    pub strategy: Strategy,
    /// Virtual nodes per server (ring and bounded).
    pub vnodes: usize,
    /// Per-server weights (ring and bounded).
    pub weights: Vec<Weight>,
    /// Bounded loads' factor.
    pub c: f64,
    /// Servers that start outside the cluster.
    pub spares: Vec<NodeIndex>,
    /// Scheduled joins and leaves.
    pub changes: Vec<Change>,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Silence after which a server leaves a view.
    pub suspect_after: Duration,
    /// Check: largest load over mean.
    pub max_load_ratio: f64,
    /// Check (bounded loads): largest keys moved over the ideal.
    pub max_moved_ratio: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            bug: None,
            strategy: Strategy::Ring,
            vnodes: 100,
            weights: Vec::new(),
            c: 1.25,
            spares: Vec::new(),
            changes: Vec::new(),
            heartbeat: Duration(50 * MS),
            suspect_after: Duration(200 * MS),
            max_load_ratio: 1.6,
            max_moved_ratio: 4.0,
        }
    }
}

/// Most virtual nodes per server: the ring holds vnodes x servers points, built at start.
pub const VNODES_MAX: usize = 10_000;

impl Params {
    /// Refuses values that make no sense, naming the field and the fix.
    pub fn validate(&self, sc: &Scenario) -> Result<(), ScenarioError> {
        let bad = |field: &str, msg: &str| Err(sc.error_at(field, msg.to_string()));
        if self.vnodes == 0 || self.vnodes > VNODES_MAX {
            return bad(
                "vnodes",
                "vnodes (points per server on the ring) must be between 1 and 10,000, e.g. 100",
            );
        }
        if !(self.c >= 1.0 && self.c.is_finite()) {
            return bad("c", "c must be a number >= 1.0 (1.25 is the usual choice)");
        }
        if self.heartbeat.0 == 0 || self.suspect_after.0 <= self.heartbeat.0 {
            return bad(
                "suspect_after",
                "heartbeat must be above zero and suspect_after longer than it, e.g. \"50ms\" and \"200ms\"",
            );
        }
        if self
            .weights
            .iter()
            .any(|w| !(w.weight > 0.0 && w.weight.is_finite()))
        {
            return bad("weights", "every weight must be a positive number");
        }
        if !self.weights.is_empty() && !matches!(self.strategy, Strategy::Ring | Strategy::Bounded)
        {
            return bad(
                "weights",
                "weights apply to the ring only: use strategy = \"ring\" or remove weights",
            );
        }
        if !(self.max_load_ratio >= 1.0 && self.max_moved_ratio >= 1.0) {
            return bad(
                "max_load_ratio",
                "max_load_ratio and max_moved_ratio are limits >= 1.0",
            );
        }
        let nodes = sc.nodes;
        let named = self
            .spares
            .iter()
            .chain(
                self.changes
                    .iter()
                    .flat_map(|c| c.join.iter().chain(&c.leave)),
            )
            .chain(self.weights.iter().map(|w| &w.node));
        for n in named {
            if n.0 >= nodes {
                return Err(sc.error_at(
                    "spares",
                    format!(
                        "n{} is not a server: spares, changes and weights name servers n0..n{}",
                        n.0,
                        nodes - 1
                    ),
                ));
            }
        }
        if self.spares.len() >= nodes {
            return bad("spares", "at least one server must start in the cluster");
        }
        if sc.workload.keys == 0 {
            return Err(sc.error_at(
                "keys",
                "the hashing algorithm places keys: set [workload] keys, e.g. keys = 10000".into(),
            ));
        }
        Ok(())
    }

    /// The placement configuration for a run salted `salt` on `servers` servers.
    pub fn placement(&self, salt: u64, servers: usize) -> PlacementConfig {
        PlacementConfig {
            strategy: self.strategy,
            vnodes: if self.bug == Some(HashingBug::FewVnodes) {
                1
            } else {
                self.vnodes
            },
            weights: self
                .weights
                .iter()
                .map(|w| (w.node.0, w.weight))
                .collect::<BTreeMap<_, _>>(),
            c: self.c,
            salt,
            hash: self.hash(),
            modulo: self.bug == Some(HashingBug::Modulo),
            slots: servers,
        }
    }

    /// The hash the bug switch selects.
    pub fn hash(&self) -> HashFn {
        if self.bug == Some(HashingBug::SumOfBytes) {
            HashFn::SumOfBytes
        } else {
            HashFn::Stable
        }
    }
}

/// Runs a hashing scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    params.validate(sc)?;
    let cfg = SimConfig::new(sc, seed, opts);
    let shared = Rc::new(Shared {
        cfg: params.placement(hash::mix64(seed), cfg.servers_count),
        keys: KeySpace::new(cfg.workload.keys, params.hash()),
        schedule: Schedule::new(&params.spares, &params.changes),
        heartbeat: params.heartbeat.0,
        suspect_after: params.suspect_after.0,
        servers: cfg.servers_count,
        timeout: cfg.workload.timeout.0,
        built: Default::default(),
    });
    let bounded = params.strategy == Strategy::Bounded && params.bug != Some(HashingBug::Modulo);
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client(Client::new(shared.clone()))
        } else {
            Node::Server(Server::new(shared.clone()))
        }
    });
    sim.add_checker(check::PlacementChecks::new(
        params.max_load_ratio,
        params.max_moved_ratio,
        bounded,
    ));
    sim.add_checker(check::ViewsConverge);
    Ok(sim.run())
}

#[cfg(test)]
mod tests;
