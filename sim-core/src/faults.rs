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
    /// The node the action names, if any (a partition's shape node; heal and swizzle name
    /// none).
    pub fn node(&self) -> Option<&NodeRef> {
        match self {
            FaultAction::Partition { node, .. } => node.as_ref(),
            FaultAction::Crash { node, .. }
            | FaultAction::Restart { node }
            | FaultAction::Pause { node, .. }
            | FaultAction::Resume { node }
            | FaultAction::ClockStep { node, .. }
            | FaultAction::ClockDrift { node, .. }
            | FaultAction::Clog { node, .. }
            | FaultAction::Unclog { node } => Some(node),
            FaultAction::Heal | FaultAction::Swizzle { .. } => None,
        }
    }

    /// [`Self::node`], to change it.
    pub fn node_mut(&mut self) -> Option<&mut NodeRef> {
        match self {
            FaultAction::Partition { node, .. } => node.as_mut(),
            FaultAction::Crash { node, .. }
            | FaultAction::Restart { node }
            | FaultAction::Pause { node, .. }
            | FaultAction::Resume { node }
            | FaultAction::ClockStep { node, .. }
            | FaultAction::ClockDrift { node, .. }
            | FaultAction::Clog { node, .. }
            | FaultAction::Unclog { node } => Some(node),
            FaultAction::Heal | FaultAction::Swizzle { .. } => None,
        }
    }

    /// Whether the action injects a fault (rather than undoing one).
    pub fn harms(&self) -> bool {
        !matches!(
            self,
            FaultAction::Heal
                | FaultAction::Restart { .. }
                | FaultAction::Resume { .. }
                | FaultAction::Unclog { .. }
        )
    }

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

impl NemesisConfig {
    /// What `--swarm` draws from for a scenario without `[nemesis]`: every kind, a fault every
    /// 2 s lasting 1 s, clock steps up to 1 s and drift up to 5%.
    pub fn swarm_base() -> NemesisConfig {
        NemesisConfig {
            kinds: NemesisKind::ALL.to_vec(),
            interval: Duration(2 * crate::time::SEC),
            duration: Duration(crate::time::SEC),
            start: Duration(0),
            clock_step_max: Duration(crate::time::SEC),
            drift_max: crate::scenario::Drift(0.05),
        }
    }
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

/// A scripted fault that cannot act: which one (0-based), the field to point at, and why.
pub(crate) type ScriptError = (usize, &'static str, String);

/// Refuses scripted faults that could not act when they fire: a shape around a client, a
/// crash of a client, a link to a node that does not exist, an undo with nothing to undo, a
/// zero-length `for`. Roles are checked by the algorithm registry, which knows them.
pub(crate) fn validate_script(
    script: &[ScriptedFault],
    nemesis: Option<&NemesisConfig>,
    servers: usize,
    clients: usize,
) -> Result<(), ScriptError> {
    let nemesis_has = |k: NemesisKind| nemesis.is_some_and(|n| n.kinds.contains(&k));
    let mut order: Vec<usize> = (0..script.len()).collect();
    order.sort_by_key(|i| script[*i].at);
    for (pos, &i) in order.iter().enumerate() {
        let before = || order[..pos].iter().map(|j| &script[*j].action);
        validate_one(i, &script[i].action, servers, clients)?;
        let undo = match &script[i].action {
            FaultAction::Heal => Some((
                before().any(|a| matches!(a, FaultAction::Partition { .. }))
                    || nemesis_has(NemesisKind::Partition),
                "heal",
                "a partition",
            )),
            FaultAction::Restart { .. } => Some((
                before().any(|a| matches!(a, FaultAction::Crash { .. }))
                    || nemesis_has(NemesisKind::Crash),
                "restart",
                "a crash",
            )),
            FaultAction::Resume { .. } => Some((
                before().any(|a| matches!(a, FaultAction::Pause { .. }))
                    || nemesis_has(NemesisKind::Pause),
                "resume",
                "a pause",
            )),
            FaultAction::Unclog { .. } => Some((
                before()
                    .any(|a| matches!(a, FaultAction::Clog { .. } | FaultAction::Swizzle { .. }))
                    || nemesis_has(NemesisKind::Clog)
                    || nemesis_has(NemesisKind::Swizzle),
                "unclog",
                "a clog",
            )),
            _ => None,
        };
        if let Some((false, what, needs)) = undo {
            return Err((
                i,
                "action",
                format!(
                    "this {what} has nothing to undo: no {needs} is scripted before it and the nemesis injects none; remove it or script {needs} earlier"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_one(
    i: usize,
    action: &FaultAction,
    servers: usize,
    clients: usize,
) -> Result<(), ScriptError> {
    let err = |field: &'static str, msg: String| Err((i, field, msg));
    let server_range = format!("0 to {}", servers.saturating_sub(1));
    let for_zero = |f: &Option<Duration>| f.is_some_and(|d| d.0 == 0);
    match action {
        FaultAction::Partition {
            kind,
            node,
            cut,
            for_,
        } => {
            if for_zero(for_) {
                return err(
                    "for",
                    "`for` must be above zero (or left out: until a heal)".into(),
                );
            }
            if *kind == PartitionKind::Links {
                if cut.is_empty() {
                    return err(
                        "cut",
                        "a links partition needs the links to cut: cut = [[0, 1], [1, 0]]".into(),
                    );
                }
                if node.is_some() {
                    return err(
                        "node",
                        "node does not go with kind = \"links\"; list the links in cut".into(),
                    );
                }
                let total = servers + clients;
                for [a, b] in cut {
                    if *a >= total || *b >= total {
                        return err(
                            "cut",
                            format!(
                                "link [{a}, {b}] names a node that does not exist: this scenario has nodes 0 to {}",
                                total.saturating_sub(1)
                            ),
                        );
                    }
                    if a == b {
                        return err(
                            "cut",
                            format!("link [{a}, {b}] goes from a node to itself; name two nodes"),
                        );
                    }
                }
            } else if !cut.is_empty() {
                return err(
                    "cut",
                    "cut goes with kind = \"links\" only; remove it or change the kind".into(),
                );
            }
            if *kind == PartitionKind::Halves && node.is_some() {
                return err(
                    "node",
                    "halves are drawn at random and take no node; remove node or use split".into(),
                );
            }
            if servers < 2 && *kind != PartitionKind::Links {
                return err(
                    "kind",
                    "a partition needs at least 2 servers to cut anything".into(),
                );
            }
            if let Some(NodeRef::Index(x)) = node {
                if *x >= servers {
                    return err(
                        "node",
                        format!(
                            "node {x} is a client; partition shapes are built around a server ({server_range}); to cut a client off, use kind = \"links\" with cut pairs"
                        ),
                    );
                }
            }
        }
        FaultAction::Crash { node, for_ } => {
            if for_zero(for_) {
                return err(
                    "for",
                    "`for` must be above zero (or left out: until a restart)".into(),
                );
            }
            refuse_client(
                i,
                node,
                servers,
                "crash",
                "clients do not crash; pause the client, or crash a server it talks to",
            )?;
        }
        FaultAction::Restart { node } => {
            refuse_client(
                i,
                node,
                servers,
                "restart",
                "clients do not crash, so they never restart",
            )?;
        }
        FaultAction::Pause { for_, .. } | FaultAction::Clog { for_, .. } if for_zero(for_) => {
            return err(
                "for",
                "`for` must be above zero (or left out: until undone)".into(),
            );
        }
        FaultAction::ClockStep { by, .. } if by.0 == 0 => {
            return err(
                "by",
                "a clock step of 0 does nothing; write e.g. by = \"-2s\"".into(),
            );
        }
        FaultAction::Swizzle { count, step, .. } => {
            if let Some(c) = count {
                if *c == 0 || *c > servers {
                    return err(
                        "count",
                        format!("count {c} is out of range; use 1 to {servers} (the servers)"),
                    );
                }
            }
            if step.0 == 0 {
                return err("step", "step must be above zero, e.g. \"100ms\"".into());
            }
        }
        _ => {}
    }
    Ok(())
}

fn refuse_client(
    i: usize,
    node: &NodeRef,
    servers: usize,
    what: &str,
    why: &str,
) -> Result<(), ScriptError> {
    match node {
        NodeRef::Index(x) if *x >= servers => Err((
            i,
            "node",
            format!(
                "node {x} is a client and cannot {what}: {why}; servers are 0 to {}",
                servers.saturating_sub(1)
            ),
        )),
        _ => Ok(()),
    }
}

/// Refuses a nemesis that could not act or would stall time.
pub(crate) fn validate_nemesis(n: &NemesisConfig) -> Result<(), (&'static str, String)> {
    if n.kinds.is_empty() {
        return Err((
            "kinds",
            "the nemesis has no kinds, so it injects nothing; name some (kinds = [\"partition\", \"crash\"]) or remove [nemesis]".into(),
        ));
    }
    if n.interval.0 == 0 {
        return Err((
            "interval",
            "interval must be above zero (the mean time between faults, e.g. \"1s\"); 0 would inject faults forever without time passing".into(),
        ));
    }
    if n.duration.0 == 0 {
        return Err((
            "duration",
            "the nemesis's duration must be above zero (how long a fault lasts, e.g. \"800ms\")"
                .into(),
        ));
    }
    Ok(())
}
