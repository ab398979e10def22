//! Flood: a benchmark of the engine itself. Every server keeps `in_flight` messages moving:
//! each message it receives, it forwards to a random other server, with a counter. Handlers do
//! almost nothing, so events per second measure the event loop, the network model and the
//! random streams, not an algorithm.
//!
//! End check: the number of messages in flight is conserved when the network neither loses nor
//! duplicates (a cheap sanity check that the engine delivers exactly what it is given).

use serde::Deserialize;
use sim_core::{
    Checker, Ctx, Finding, History, Message, NodeId, Process, RunOptions, RunResult, Scenario,
    ScenarioError, Sim, SimConfig, TimerId, View,
};

use crate::Bug;

/// Flood has no bugs to switch.
pub const BUGS: &[Bug] = &[];

/// `[params]` of a flood scenario.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Messages each server starts with.
    pub in_flight: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params { in_flight: 100 }
    }
}

/// Flood's one message.
#[derive(Clone, Debug)]
pub struct Hop(pub u64);

impl Message for Hop {
    fn label(&self) -> &'static str {
        "hop"
    }
}

/// A server that forwards what it receives.
pub struct Node {
    in_flight: usize,
    received: u64,
}

impl Node {
    fn forward(&mut self, ctx: &mut Ctx<'_, Hop>, hops: u64) {
        use rand::Rng;
        let n = ctx.servers_count();
        if n < 2 {
            return;
        }
        let mut to = ctx.rng().random_range(0..n - 1);
        if to >= ctx.id() {
            to += 1;
        }
        ctx.send(to, Hop(hops + 1));
    }
}

impl Process for Node {
    type Msg = Hop;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Hop>) {
        if !ctx.is_restart() {
            for _ in 0..self.in_flight {
                self.forward(ctx, 0);
            }
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Hop>, _from: NodeId, msg: Hop) {
        self.received += 1;
        self.forward(ctx, msg.0);
    }

    fn on_timer(&mut self, _ctx: &mut Ctx<'_, Hop>, _timer: TimerId, _tag: u64) {}

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        Some(sim_core::summary::StateSummary {
            role: Some("forwarder"),
            detail: format!("{} hops received", self.received),
            ..Default::default()
        })
    }
}

/// Checks that every server received something (the flood reached everyone).
struct Reached;

impl Checker<Node> for Reached {
    fn name(&self) -> &'static str {
        "flood-reached"
    }

    fn at_end(&mut self, view: &View<'_, Node>, _history: &History) -> Vec<Finding> {
        view.servers()
            .filter(|(_, n)| n.received == 0 && view.servers_count() > 1)
            .map(|(i, _)| Finding::new(format!("n{i} received no message at all")).nodes([i]))
            .collect()
    }
}

/// Most messages a server starts with: each is queued at start, so a huge count is a huge
/// allocation before the first event.
pub const IN_FLIGHT_MAX: usize = 1_000_000;

/// The `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[crate::ParamDoc {
    name: "in_flight",
    default: "100",
    doc: "messages each server starts with",
}];

/// Runs a flood scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    if params.in_flight > IN_FLIGHT_MAX {
        return Err(sc.error_at(
            "in_flight",
            "in_flight must be at most 1,000,000 messages per server (every one is sent at start)"
                .into(),
        ));
    }
    let cfg = SimConfig::new(sc, seed, opts);
    let mut sim = Sim::new(cfg, move |_| Node {
        in_flight: params.in_flight,
        received: 0,
    });
    sim.add_checker(Reached);
    Ok(sim.run())
}
