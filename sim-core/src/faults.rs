//! Fault descriptions: the scenario's script ("at 5s isolate the leader") and the random
//! nemesis. The engine ([`crate::sim`]) carries them out; this module only says what they are.

use serde::{Deserialize, Serialize};

use crate::scenario::check_node_index;
use crate::time::{Duration, SignedDuration, MS, SEC};

/// A node named by index or by a role the algorithm reports ("leader"), or "random": a
/// random server that is up, drawn from the fault stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum NodeRef {
    /// A node by index: servers are 0.., clients follow them.
    Index(usize),
    /// A role, resolved when the fault fires.
    Role(String),
}

impl<'de> Deserialize<'de> for NodeRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = NodeRef;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a node index (0, 1, ...) or a role such as \"leader\" or \"random\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<NodeRef, E> {
                check_node_index(v).map(NodeRef::Index).map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<NodeRef, E> {
                self.visit_i64(v.min(i64::MAX as u64) as i64)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<NodeRef, E> {
                if v.is_empty() || !v.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    return Err(E::custom(format!(
                        "\"{v}\" is not a node: write an index (0, 1, ...) or a role in lowercase such as \"leader\" or \"random\""
                    )));
                }
                Ok(NodeRef::Role(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            NodeRef::Index(i) => write!(f, "n{i}"),
            NodeRef::Role(r) => write!(f, "the {r}"),
        }
    }
}

/// The shape of a network partition among the servers. Links between clients and servers are
/// never cut by partitions (clients can still reach a deposed leader, as in Jepsen's tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKind {
    /// Cut `node` off from every other server.
    Isolate,
    /// A minority (with `node` in it, if given) and a majority.
    Split,
    /// Two sides that cannot talk, and one node (`node`, or random) that talks to both.
    Bridge,
    /// `node` can still receive but nothing it sends to servers arrives (asymmetric).
    OneWay,
    /// Random halves.
    Halves,
    /// Exactly the directed links listed in `cut` (these may name clients too).
    Links,
}

/// One scripted fault, `[[faults]]` in a scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptedFault {
    /// When it happens.
    pub at: FaultTime,
    /// What happens.
    #[serde(flatten)]
    pub action: FaultAction,
}

/// A fault's time, checked against the run's duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FaultTime(pub Duration);

impl<'de> Deserialize<'de> for FaultTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let t = Duration::deserialize(d)?;
        if let Some(ctx) = crate::scenario::context() {
            if t.0 > ctx.duration_ns {
                return Err(serde::de::Error::custom(format!(
                    "fault time {} is after the end of the run ({}); move it earlier or lengthen duration",
                    crate::time::fmt_ns(t.0),
                    crate::time::fmt_ns(ctx.duration_ns)
                )));
            }
        }
        Ok(FaultTime(t))
    }
}

/// What a fault does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum FaultAction {
    /// Cut links among servers.
    Partition {
        /// The shape.
        kind: PartitionKind,
        /// The node the shape is built around, where it has one.
        #[serde(default)]
        node: Option<NodeRef>,
        /// For `links`: the directed links to cut, as `[from, to]` pairs.
        #[serde(default)]
        cut: Vec<[usize; 2]>,
        /// Heal by itself after this long.
        #[serde(default, rename = "for")]
        for_: Option<Duration>,
    },
    /// Restore every link.
    Heal,
    /// Crash a node: volatile state and timers gone, unsynced writes lost.
    Crash {
        /// The node.
        node: NodeRef,
        /// Restart by itself after this long.
        #[serde(default, rename = "for")]
        for_: Option<Duration>,
    },
    /// Restart a crashed node from its durable storage.
    Restart {
        /// The node.
        node: NodeRef,
    },
    /// Stop the world on a node: nothing runs, its messages and timers wait.
    Pause {
        /// The node.
        node: NodeRef,
        /// Resume by itself after this long.
        #[serde(default, rename = "for")]
        for_: Option<Duration>,
    },
    /// Resume a paused node.
    Resume {
        /// The node.
        node: NodeRef,
    },
    /// Jump a node's clock forward or back.
    ClockStep {
        /// The node.
        node: NodeRef,
        /// How far (negative = back).
        by: SignedDuration,
    },
    /// Change a node's clock drift.
    ClockDrift {
        /// The node.
        node: NodeRef,
        /// New drift rate.
        drift: crate::scenario::Drift,
    },
    /// Hold every message to or from a node until it is unclogged.
    Clog {
        /// The node.
        node: NodeRef,
        /// Unclog by itself after this long.
        #[serde(default, rename = "for")]
        for_: Option<Duration>,
    },
    /// Release a clogged node's messages.
    Unclog {
        /// The node.
        node: NodeRef,
    },
    /// Swizzle-clog: clog `count` random servers one by one, `step` apart, hold them, then
    /// unclog them one by one in a random order.
    Swizzle {
        /// How many servers (default: a majority).
        #[serde(default)]
        count: Option<usize>,
        /// Gap between successive clogs and unclogs.
        #[serde(default = "default_swizzle_step")]
        step: Duration,
        /// How long all of them stay clogged.
        #[serde(default = "default_swizzle_hold")]
        hold: Duration,
    },
}

fn default_swizzle_step() -> Duration {
    Duration(100 * MS)
}
fn default_swizzle_hold() -> Duration {
    Duration(SEC)
}

impl FaultAction {
    /// The action's name as written in scenarios.
    pub fn name(&self) -> &'static str {
        match self {
            FaultAction::Partition { .. } => "partition",
            FaultAction::Heal => "heal",
            FaultAction::Crash { .. } => "crash",
            FaultAction::Restart { .. } => "restart",
            FaultAction::Pause { .. } => "pause",
            FaultAction::Resume { .. } => "resume",
            FaultAction::ClockStep { .. } => "clock_step",
            FaultAction::ClockDrift { .. } => "clock_drift",
            FaultAction::Clog { .. } => "clog",
            FaultAction::Unclog { .. } => "unclog",
            FaultAction::Swizzle { .. } => "swizzle",
        }
    }
}

/// The kinds of fault the nemesis can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NemesisKind {
    /// Random partitions (isolate, split, bridge, one-way, halves).
    Partition,
    /// Crash a server, restart it later.
    Crash,
    /// Pause a server, resume it later.
    Pause,
    /// Step a server's clock or change its drift.
    Clock,
    /// Clog a server's traffic.
    Clog,
    /// Swizzle-clog a majority.
    Swizzle,
}

impl NemesisKind {
    /// Every kind, in a fixed order.
    pub const ALL: [NemesisKind; 6] = [
        NemesisKind::Partition,
        NemesisKind::Crash,
        NemesisKind::Pause,
        NemesisKind::Clock,
        NemesisKind::Clog,
        NemesisKind::Swizzle,
    ];
}

/// `[nemesis]`: random faults drawn from the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NemesisConfig {
    /// Which kinds of fault to inject.
    pub kinds: Vec<NemesisKind>,
    /// Mean time between faults (exponential gaps).
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// Mean time a fault lasts before it is undone.
    #[serde(default = "default_fault_duration")]
    pub duration: Duration,
    /// When the nemesis starts.
    #[serde(default)]
    pub start: Duration,
    /// Largest clock step.
    #[serde(default = "default_step_max")]
    pub clock_step_max: Duration,
    /// Largest drift the clock nemesis sets.
    #[serde(default = "default_drift_max")]
    pub drift_max: crate::scenario::Drift,
}

fn default_interval() -> Duration {
    Duration(2 * SEC)
}
fn default_fault_duration() -> Duration {
    Duration(SEC)
}
fn default_step_max() -> Duration {
    Duration(SEC)
}
fn default_drift_max() -> crate::scenario::Drift {
    crate::scenario::Drift(0.05)
}
