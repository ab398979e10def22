//! Echo: the hello-world of distsim. Clients send a value to a random server; the server sends
//! it back. It shows the engine's moving parts (messages, timers, timeouts, the history) with
//! nothing else in the way.
//!
//! Check: every `ok` echo returned exactly the value that was sent.
//! Bug switch (one, for the first lesson on checkers):
//! - `corrupt`: the server answers with the value plus one, which the end check catches.

use serde::Deserialize;
use sim_core::{
    Checker, Ctx, EventType, Finding, History, Message, NodeId, Op, Process, RunOptions, RunResult,
    Scenario, ScenarioError, Sim, SimConfig, TimerId, View,
};

use crate::client::RequestTracker;
use crate::Bug;

/// The switchable bugs, one line each on the rule they break.
pub const BUGS: &[Bug] = EchoBug::ALL;

/// `[params]` of an echo scenario.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// A switchable bug.
    #[serde(default)]
    pub bug: Option<EchoBug>,
}

crate::bug_switches! {
    /// Echo's bugs.
    pub enum EchoBug {
        /// Answer with value + 1.
        Corrupt = ("corrupt", "an echo must return the value it was sent"),
    }
}

/// Echo's messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// Client to server.
    Request {
        /// Request id.
        req: u64,
        /// The value to echo.
        value: serde_json::Value,
    },
    /// Server to client.
    Reply {
        /// Request id.
        req: u64,
        /// The echoed value.
        value: serde_json::Value,
    },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Request { .. } => "request",
            Msg::Reply { .. } => "reply",
        }
    }
}

/// A node: a server or a client.
pub enum Node {
    /// Answers requests.
    Server {
        /// The bug switch.
        bug: Option<EchoBug>,
        /// Requests answered so far (for the report's timeline only).
        answered: u64,
    },
    /// Sends requests.
    Client {
        /// The outstanding request.
        tracker: RequestTracker,
        /// Request timeout.
        timeout_ns: u64,
    },
}

impl Process for Node {
    type Msg = Msg;

    fn on_start(&mut self, _ctx: &mut Ctx<'_, Msg>) {}

    fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match (self, msg) {
            (Node::Server { bug, answered }, Msg::Request { req, value }) => {
                *answered += 1;
                let value = match (bug, value.as_u64()) {
                    (Some(EchoBug::Corrupt), Some(v)) => serde_json::Value::from(v + 1),
                    (_, _) => value,
                };
                ctx.send(from, Msg::Reply { req, value });
            }
            (Node::Client { tracker, .. }, Msg::Reply { req, value }) => {
                tracker.finish(ctx, req, EventType::Ok, value);
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, _timer: TimerId, tag: u64) {
        if let Node::Client { tracker, .. } = self {
            tracker.on_timer(ctx, tag);
        }
    }

    fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        if let Node::Client {
            tracker,
            timeout_ns,
        } = self
        {
            let req = tracker.begin(ctx, *timeout_ns);
            let to = crate::random_server(ctx);
            ctx.send(
                to,
                Msg::Request {
                    req,
                    value: op.value,
                },
            );
        }
    }

    fn state_summary(&self) -> Option<sim_core::summary::StateSummary> {
        match self {
            Node::Server { bug, answered } => Some(sim_core::summary::StateSummary {
                role: Some("echo server"),
                detail: format!(
                    "{answered} requests answered{}",
                    if bug.is_some() {
                        " (answers value + 1)"
                    } else {
                        ""
                    }
                ),
                ..Default::default()
            }),
            // The report shows a client's open request from the trace.
            Node::Client { .. } => None,
        }
    }
}

/// Every `ok` echo returned what was sent.
struct EchoCheck;

impl Checker<Node> for EchoCheck {
    fn name(&self) -> &'static str {
        "echo-integrity"
    }

    fn at_end(&mut self, view: &View<'_, Node>, history: &History) -> Vec<Finding> {
        let mut sent = std::collections::BTreeMap::new();
        let mut bad = Vec::new();
        for (i, e) in history.events.iter().enumerate() {
            match e.kind {
                EventType::Invoke => {
                    sent.insert(e.process, (e.value.clone(), i));
                }
                EventType::Ok => {
                    if let Some((v, op)) = sent.get(&e.process) {
                        if *v != e.value && bad.len() < 5 {
                            let client = view.client_of(e.process);
                            bad.push(
                                Finding::new(format!(
                                    "n{client} (client {}) sent {} but the echo returned {} at {}",
                                    client - view.servers_count(),
                                    v,
                                    e.value,
                                    sim_core::time::fmt_ns(e.time_ns)
                                ))
                                .nodes([client])
                                .ops([*op])
                                .values([v.clone(), e.value.clone()]),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
        bad
    }
}

/// The `[params]` fields, for `distsim list`.
pub const PARAMS: &[crate::ParamDoc] = &[crate::ParamDoc {
    name: "bug",
    default: "none",
    doc: "a switchable bug (see bugs)",
}];

/// Runs an echo scenario.
pub fn run(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, ScenarioError> {
    let params: Params = sc.params()?;
    let cfg = SimConfig::new(sc, seed, opts);
    let timeout_ns = cfg.workload.timeout.0;
    let mut sim = Sim::new(cfg, move |info| {
        if info.is_client {
            Node::Client {
                tracker: RequestTracker::default(),
                timeout_ns,
            }
        } else {
            Node::Server {
                bug: params.bug,
                answered: 0,
            }
        }
    });
    sim.add_checker(EchoCheck);
    Ok(sim.run())
}
