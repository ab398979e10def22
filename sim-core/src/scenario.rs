//! Scenario files: TOML (or JSON) describing one experiment, and their validation.
//!
//! Every error names the file, the line and column, and the field, and says how to fix it. Values
//! are checked as they are read (a probability of 1.5, a negative duration, node 7 of 5), so the
//! location is exact in both formats; cross-field facts that a value needs (how many nodes exist,
//! how long the run is) are read in a first pass and made available to the second.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::assertion::{Assertion, LivenessConfig};
use crate::faults::{NemesisConfig, ScriptedFault};
use crate::network::NetworkConfig;
use crate::time::{Duration, Nanos, SignedDuration, MS, SEC};

/// What a run of the scenario is expected to find.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    /// No violation.
    #[default]
    Pass,
    /// A violation (a scenario that demonstrates a bug or an unsafe design).
    Violation,
}

impl Expect {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Expect::Pass => "pass",
            Expect::Violation => "violation",
        }
    }
}

/// The source format of a scenario file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// TOML (the default).
    Toml,
    /// JSON (files ending in `.json`).
    Json,
}

/// A scenario file's text and where it came from, kept so that algorithms can read their own
/// `[params]` table with exact error locations.
#[derive(Clone, Debug)]
pub struct Source {
    /// The path as the user wrote it.
    pub path: String,
    /// The file's text.
    pub text: String,
    /// TOML or JSON.
    pub format: Format,
}

/// `[clocks]`: how each node's clock deviates from true time.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClocksConfig {
    /// Each node's initial offset is drawn uniformly from [-offset_max, offset_max].
    pub offset_max: Duration,
    /// Each node's drift is drawn uniformly from [-drift_max, drift_max] (0.01 = 1% fast).
    pub drift_max: Drift,
    /// Explicit settings for single nodes, which override the drawn ones.
    pub node: Vec<NodeClock>,
}

/// A drift rate, from -0.5 to 0.5.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Drift(pub f64);

impl<'de> Deserialize<'de> for Drift {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if !(-0.5..=0.5).contains(&v) || v.is_nan() {
            return Err(serde::de::Error::custom(format!(
                "drift {v} is out of range; write a rate from -0.5 to 0.5 (0.01 = 1% fast)"
            )));
        }
        Ok(Drift(v))
    }
}

/// One node's explicit clock.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeClock {
    /// The node (an index).
    pub node: NodeIndex,
    /// Offset from true time at the start.
    #[serde(default)]
    pub offset: SignedDuration,
    /// Drift rate.
    #[serde(default)]
    pub drift: Drift,
}

/// `[workload]`: what the clients do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkloadConfig {
    /// Number of client processes.
    pub clients: usize,
    /// Mean pause between a response and the client's next request (exponential).
    pub think: Duration,
    /// Relative weights of operation functions, e.g. `{ read = 1, write = 1 }`.
    pub mix: BTreeMap<String, f64>,
    /// Number of keys; 0 means a single unkeyed object.
    pub keys: usize,
    /// Values are drawn from 0..values; 0 (the default) gives every write a fresh value.
    pub values: u64,
    /// Client request timeout (after it, the outcome is unknown: `info`).
    pub timeout: Duration,
    /// When clients start.
    pub start: Duration,
    /// Operations per client at most; 0 means no limit.
    pub limit: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            clients: 0,
            think: Duration(10 * MS),
            mix: BTreeMap::new(),
            keys: 0,
            values: 0,
            timeout: Duration(500 * MS),
            start: Duration(0),
            limit: 0,
        }
    }
}

/// `[checks]`: history checks after the run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChecksConfig {
    /// Check the client history for linearizability against this model ("register", "kv", ...).
    pub linearizability: Option<String>,
    /// Budget of the linearizability check, in states visited per part (never wall time, so
    /// that a busy machine cannot change a verdict); past it the verdict is unknown.
    pub max_states: u64,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            linearizability: None,
            max_states: crate::linearizability::DEFAULT_MAX_STATES,
        }
    }
}

/// `[swarm]`: bounds for `sweep --swarm`, where each seed draws its own fault mix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// Smallest and largest cluster a seed may draw, e.g. `[3, 7]`.
    pub nodes: Option<[usize; 2]>,
}

/// A whole scenario file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name; defaults to the file's stem.
    #[serde(default)]
    pub name: String,
    /// One or two sentences: what it shows and what a run should find (printed by `list`).
    pub description: String,
    /// The algorithm to run, by name (`distsim list` prints them).
    pub algorithm: String,
    /// Number of server nodes.
    #[serde(default = "default_nodes")]
    pub nodes: usize,
    /// Simulated length of the run.
    pub duration: Duration,
    /// Seed used when none is given on the command line.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// What a run should find.
    #[serde(default)]
    pub expect: Expect,
    /// The last part of the run, with faults healed and no new operations, so that end checks
    /// see a settled system.
    #[serde(default)]
    pub quiet: Duration,
    /// Whether the quiet period also restarts crashed nodes.
    #[serde(default = "default_true")]
    pub quiet_restarts: bool,
    /// Bound on events; a run that hits it ends with verdict unknown.
    #[serde(default = "default_max_events")]
    pub max_events: u64,
    /// The algorithm's own parameters, read by the algorithm.
    #[serde(default, skip_serializing)]
    pub params: Option<serde::de::IgnoredAny>,
    /// The network.
    #[serde(default)]
    pub network: NetworkConfig,
    /// The clocks.
    #[serde(default)]
    pub clocks: ClocksConfig,
    /// The clients.
    #[serde(default)]
    pub workload: WorkloadConfig,
    /// Scripted faults.
    #[serde(default)]
    pub faults: Vec<ScriptedFault>,
    /// The random nemesis.
    #[serde(default)]
    pub nemesis: Option<NemesisConfig>,
    /// History checks.
    #[serde(default)]
    pub checks: ChecksConfig,
    /// Swarm bounds.
    #[serde(default)]
    pub swarm: SwarmConfig,
    /// The liveness phase (on by default when `quiet` is set).
    #[serde(default)]
    pub liveness: LivenessConfig,
    /// Course-test assertions, `[[assert]]`.
    #[serde(default, rename = "assert")]
    pub asserts: Vec<Assertion>,
    /// Where the scenario came from.
    #[serde(skip)]
    pub source: Option<Source>,
}

fn default_nodes() -> usize {
    3
}
fn default_seed() -> u64 {
    1
}
fn default_true() -> bool {
    true
}
fn default_max_events() -> u64 {
    200_000_000
}

/// Largest cluster a scenario may ask for.
pub const NODES_MAX: usize = 64;
/// Most keys a workload may draw from (algorithms size tables by it).
pub const KEYS_MAX: usize = 10_000_000;
/// Most clients a scenario may ask for.
pub const CLIENTS_MAX: usize = 1000;

/// A scenario error that a person can act on.
#[derive(Clone, Debug, PartialEq)]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line and column, when known.
    pub location: Option<(usize, usize)>,
    /// What is wrong and how to fix it.
    pub message: String,
    /// The offending source line, when known.
    pub line_text: Option<String>,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.location {
            Some((line, col)) => {
                write!(f, "{}:{}:{}: {}", self.file, line, col, self.message)?;
                if let Some(text) = &self.line_text {
                    let (excerpt, caret) = excerpt_around(text, col);
                    write!(
                        f,
                        "\n  {line:>4} | {excerpt}\n       | {}^",
                        " ".repeat(caret)
                    )?;
                }
                Ok(())
            }
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// At most this many characters of a source line are quoted under an error.
const EXCERPT_CHARS: usize = 120;

/// The part of a long line around a 1-based column, and the caret's offset in it (a minified
/// JSON file is one line of any length).
fn excerpt_around(text: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = text.chars().collect();
    let at = col.saturating_sub(1).min(chars.len());
    if chars.len() <= EXCERPT_CHARS {
        return (text.to_string(), at);
    }
    let start = at.saturating_sub(EXCERPT_CHARS / 2);
    let end = (start + EXCERPT_CHARS).min(chars.len());
    let mut out = String::new();
    let mut caret = at - start;
    if start > 0 {
        out.push_str("...");
        caret += 3;
    }
    out.extend(&chars[start..end]);
    if end < chars.len() {
        out.push_str("...");
    }
    (out, caret)
}

impl ScenarioError {
    /// An error without a location.
    pub fn new(file: &str, message: impl Into<String>) -> Self {
        ScenarioError {
            file: file.to_string(),
            location: None,
            message: message.into(),
            line_text: None,
        }
    }

    fn at_offset(src: &Source, offset: usize, message: String) -> Self {
        let offset = offset.min(src.text.len());
        let before = &src.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = src.text[line_start..offset].chars().count() + 1;
        let (line, col) = refine_in_table(&src.text, line, &message).unwrap_or((line, col));
        Self::at_line_col(src, line, col, message)
    }

    fn at_line_col(src: &Source, line: usize, col: usize, message: String) -> Self {
        let line_text = src
            .text
            .lines()
            .nth(line.saturating_sub(1))
            .map(|s| s.to_string());
        // Name the field when the line assigns one and the message does not already say it.
        let message = match line_text.as_deref().and_then(field_of_line) {
            Some(field)
                if !message.contains(&format!("`{field}`"))
                    && !message.starts_with("missing field") =>
            {
                format!("field `{field}`: {message}")
            }
            _ => message,
        };
        ScenarioError {
            file: src.path.clone(),
            location: Some((line, col)),
            message,
            line_text,
        }
    }

    /// Locates an error in the `index`-th (0-based) `[[table]]` of a file, at the line that
    /// assigns `field` inside it when there is one, else at the table's header. JSON files
    /// fall back to the first line naming the field.
    pub fn at_table(src: &Source, table: &str, index: usize, field: &str, message: String) -> Self {
        let header = format!("[[{table}]]");
        let lines: Vec<&str> = src.text.lines().collect();
        let start = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.trim_start().starts_with(&header))
            .nth(index)
            .map(|(i, _)| i);
        let Some(start) = start else {
            return Self::at_field(src, field, message);
        };
        for (i, l) in lines.iter().enumerate().skip(start + 1) {
            let t = l.trim_start();
            if t.starts_with('[') {
                break;
            }
            if field_of_line(t).as_deref() == Some(field) {
                let col = l.len() - t.len() + 1;
                return Self::at_line_col(src, i + 1, col, message);
            }
        }
        Self::at_line_col(src, start + 1, 1, message)
    }

    /// Locates a value error at the first line assigning `field` (for checks made after
    /// parsing, such as "quiet is longer than the run").
    pub fn at_field(src: &Source, field: &str, message: String) -> Self {
        let needle_toml = format!("{field} ");
        let needle_toml2 = format!("{field}=");
        let needle_json = format!("\"{field}\"");
        for (i, l) in src.text.lines().enumerate() {
            let t = l.trim_start();
            if t.starts_with(&needle_toml)
                || t.starts_with(&needle_toml2)
                || t.starts_with(&needle_json)
            {
                let col = l.len() - t.len() + 1;
                return Self::at_line_col(src, i + 1, col, message);
            }
        }
        ScenarioError::new(&src.path, format!("field `{field}`: {message}"))
    }
}

/// Errors inside `[[faults]]` tables are reported by the TOML reader at the table's header
/// (serde buffers flattened and tagged tables, losing inner positions). Find the line in that
/// table that the message is about: the key it names in backquotes, a value it names in
/// backquotes, or a `key value` pair it quotes ("node 7 does not exist").
fn refine_in_table(text: &str, line: usize, message: &str) -> Option<(usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    if !lines
        .get(line.checked_sub(1)?)?
        .trim_start()
        .starts_with('[')
    {
        return None;
    }
    // "unknown field `x`, expected one of `a`, `b`" names other keys too: only `x` counts.
    let named = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(|x| x.to_string())
    };
    let unknown_field = named("unknown field `");
    let unknown_variant = named("unknown variant `");
    for (i, l) in lines.iter().enumerate().skip(line) {
        let t = l.trim();
        if t.starts_with('[') {
            break;
        }
        let Some((k, v)) = t.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.split('#').next().unwrap_or("").trim());
        let bare = v.trim_matches('"');
        let hit = match (&unknown_field, &unknown_variant) {
            (Some(f), _) => f == k,
            (None, Some(v)) => v == bare,
            (None, None) => false,
        };
        if hit
            || (unknown_field.is_none()
                && unknown_variant.is_none()
                && (message.contains(&format!("`{k}`"))
                    || (!bare.is_empty() && message.contains(&format!("`{bare}`")))))
            || message.contains(&format!("{k} {bare} "))
            || message.contains(&format!("\"{bare}\""))
        {
            let indent = l.len() - l.trim_start().len();
            let col = if message.contains(&format!("`{k}`")) && message.contains("unknown field") {
                indent + 1
            } else {
                l.find(v).map(|c| c + 1).unwrap_or(indent + 1)
            };
            return Some((i + 1, col));
        }
    }
    None
}

/// The field a TOML line assigns (`loss = 1.5` gives `loss`), or a JSON key (`"loss": 1.5`).
fn field_of_line(line: &str) -> Option<String> {
    let t = line.trim();
    if t.starts_with('[') || t.starts_with('#') {
        return None;
    }
    let t = t.trim_start_matches('{').trim();
    let key = if let Some(rest) = t.strip_prefix('"') {
        let end = rest.find('"')?;
        let after = rest[end + 1..].trim_start();
        if !after.starts_with(':') && !after.starts_with('=') {
            return None;
        }
        &rest[..end]
    } else {
        let eq = t.find('=')?;
        t[..eq].trim()
    };
    if key.is_empty() || key.contains(' ') || key.contains(',') {
        return None;
    }
    Some(key.to_string())
}

/// What values may need to know about the rest of the file while being read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ValidationContext {
    pub nodes: usize,
    /// Clients follow the servers in node numbering; faults may name them too.
    pub clients: usize,
    pub duration_ns: Nanos,
}

thread_local! {
    static CONTEXT: RefCell<Option<ValidationContext>> = const { RefCell::new(None) };
}

/// The context of the file being read, if any.
pub(crate) fn context() -> Option<ValidationContext> {
    CONTEXT.with(|c| *c.borrow())
}

struct ContextGuard;
impl ContextGuard {
    fn set(ctx: ValidationContext) -> Self {
        CONTEXT.with(|c| *c.borrow_mut() = Some(ctx));
        ContextGuard
    }
}
impl Drop for ContextGuard {
    fn drop(&mut self) {
        CONTEXT.with(|c| *c.borrow_mut() = None);
    }
}

/// A node given by its index, checked against the cluster size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NodeIndex(pub usize);

impl<'de> Deserialize<'de> for NodeIndex {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = i64::deserialize(d)?;
        check_node_index(i)
            .map(NodeIndex)
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) fn check_node_index(i: i64) -> Result<usize, String> {
    if i < 0 {
        return Err(format!(
            "node {i} does not exist: nodes are numbered from 0"
        ));
    }
    if let Some(ctx) = context() {
        if i as usize >= ctx.nodes.saturating_add(ctx.clients) {
            return Err(if ctx.clients == 0 {
                format!(
                    "node {i} does not exist: this scenario has {} nodes, numbered 0 to {}",
                    ctx.nodes,
                    ctx.nodes.saturating_sub(1)
                )
            } else {
                format!(
                    "node {i} does not exist: this scenario has {} servers, numbered 0 to {}, and {} clients, numbered {} to {}",
                    ctx.nodes,
                    ctx.nodes.saturating_sub(1),
                    ctx.clients,
                    ctx.nodes,
                    ctx.nodes + ctx.clients - 1
                )
            });
        }
    }
    Ok(i as usize)
}

fn parse_value<T: DeserializeOwned>(src: &Source) -> Result<T, ScenarioError> {
    match src.format {
        Format::Toml => toml::from_str::<T>(&src.text).map_err(|e| {
            let msg = e.message().trim().to_string();
            match e.span() {
                Some(span) => ScenarioError::at_offset(src, span.start, msg),
                None => ScenarioError::new(&src.path, msg),
            }
        }),
        Format::Json => serde_json::from_str::<T>(&src.text).map_err(|e| {
            let msg = e.to_string();
            // serde_json appends " at line L column C"; we print the location ourselves.
            let msg = match msg.rfind(" at line ") {
                Some(i) => msg[..i].to_string(),
                None => msg,
            };
            if e.line() == 0 {
                ScenarioError::new(&src.path, msg)
            } else {
                ScenarioError::at_line_col(src, e.line(), e.column().max(1), msg)
            }
        }),
    }
}

/// The facts read in the first pass.
#[derive(Deserialize)]
struct FirstPass {
    #[serde(default = "default_nodes")]
    nodes: usize,
    #[serde(default)]
    duration: Option<Duration>,
    #[serde(default)]
    swarm: Option<FirstPassSwarm>,
    #[serde(default)]
    workload: Option<FirstPassWorkload>,
}

#[derive(Deserialize)]
struct FirstPassWorkload {
    #[serde(default)]
    clients: usize,
}

#[derive(Deserialize)]
struct FirstPassSwarm {
    #[serde(default)]
    nodes: Option<[usize; 2]>,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &str) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ScenarioError::new(path, format!("cannot read the scenario file: {e}; check the path (`distsim list` shows the scenarios)"))
        })?;
        Scenario::parse(path, &text)
    }

    /// Parses and validates scenario text; `path` decides the format (`.json` is JSON).
    pub fn parse(path: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let format = if path.ends_with(".json") {
            Format::Json
        } else {
            Format::Toml
        };
        let src = Source {
            path: path.to_string(),
            text: text.to_string(),
            format,
        };
        // First pass: sizes that values are checked against. Its errors are left to the full
        // pass, which reports them with better context.
        let (nodes, clients, duration_ns) = match parse_value::<FirstPass>(&src) {
            Ok(fp) => {
                let swarm_max = fp
                    .swarm
                    .and_then(|s| s.nodes)
                    .map(|[_, hi]| hi)
                    .unwrap_or(0);
                (
                    fp.nodes.max(swarm_max),
                    fp.workload.map(|w| w.clients).unwrap_or(0),
                    fp.duration.map(|d| d.0).unwrap_or(u64::MAX),
                )
            }
            Err(_) => (usize::MAX, 0, u64::MAX),
        };
        let mut sc: Scenario = {
            let _guard = ContextGuard::set(ValidationContext {
                nodes,
                clients,
                duration_ns,
            });
            parse_value(&src)?
        };
        if sc.name.is_empty() {
            sc.name = std::path::Path::new(path)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "scenario".into());
        }
        sc.validate(&src)?;
        sc.source = Some(src);
        Ok(sc)
    }

    fn validate(&self, src: &Source) -> Result<(), ScenarioError> {
        // An unknown field is refused before any value is judged, as serde does elsewhere.
        self.refuse_fields_of_heal(src)?;
        let err = |field: &str, msg: String| Err(ScenarioError::at_field(src, field, msg));
        if self.nodes == 0 || self.nodes > NODES_MAX {
            return err(
                "nodes",
                format!(
                    "nodes = {} is out of range; use 1 to {NODES_MAX}",
                    self.nodes
                ),
            );
        }
        if self.duration.0 == 0 {
            return err(
                "duration",
                "duration must be above zero, e.g. \"10s\"".into(),
            );
        }
        if self.duration.0 > 24 * 3600 * SEC {
            return err(
                "duration",
                "duration is over a day of simulated time; use at most \"24h\"".into(),
            );
        }
        if self.quiet >= self.duration {
            return err(
                "quiet",
                format!(
                "quiet period {} is not shorter than the run ({}); make it shorter than duration",
                crate::time::fmt_ns(self.quiet.0),
                crate::time::fmt_ns(self.duration.0)
            ),
            );
        }
        if self.description.trim().is_empty() {
            return err(
                "description",
                "description is empty; say what the scenario shows and what a run should find"
                    .into(),
            );
        }
        if self.workload.clients > CLIENTS_MAX {
            return err(
                "clients",
                format!(
                    "clients = {} is out of range; use 0 to {CLIENTS_MAX}",
                    self.workload.clients
                ),
            );
        }
        for (f, w) in &self.workload.mix {
            if !(*w >= 0.0 && w.is_finite()) {
                return err(
                    f,
                    format!("weight {w} of `{f}` in the workload mix must be zero or more"),
                );
            }
        }
        if self.workload.clients > 0 && self.workload.mix.values().all(|w| *w == 0.0) {
            return err("mix", "the workload has clients but its mix is empty; add weights such as mix = { read = 1, write = 1 }".into());
        }
        if let Some(e) = self.network.latency.validate().err() {
            return err("latency", e);
        }
        if let Some([lo, hi]) = self.swarm.nodes {
            if lo == 0 || lo > hi || hi > NODES_MAX {
                return err(
                    "nodes",
                    format!(
                        "swarm nodes [{lo}, {hi}] must satisfy 1 <= low <= high <= {NODES_MAX}"
                    ),
                );
            }
        }
        if let Some(model) = &self.checks.linearizability {
            if model.starts_with("kv") && self.workload.clients > 0 && self.workload.keys == 0 {
                return err(
                    "linearizability",
                    format!("model {model} checks keyed operations but the workload has no keys; set [workload] keys = 1 (or more), or use model \"register\""),
                );
            }
            if crate::linearizability::model_by_name(model).is_none() {
                return err(
                    "linearizability",
                    format!(
                        "unknown model \"{model}\"; use one of: {}",
                        crate::linearizability::MODEL_NAMES.join(", ")
                    ),
                );
            }
        }
        if self.max_events == 0 {
            return err("max_events", "max_events must be above zero".into());
        }
        self.validate_workload(src)?;
        let quiet_at = self.duration.0 - self.quiet.0;
        for (i, f) in self.faults.iter().enumerate() {
            if self.quiet.0 > 0 && f.at.0 .0 >= quiet_at && f.action.harms() {
                return Err(ScenarioError::at_table(
                    src,
                    "faults",
                    i,
                    "at",
                    format!(
                        "this {} at {} falls in the quiet period (from {}), where faults are healed and the system must recover; move it earlier or shorten quiet",
                        f.action.name(),
                        crate::time::fmt_ns(f.at.0 .0),
                        crate::time::fmt_ns(quiet_at)
                    ),
                ));
            }
        }
        let servers = self
            .nodes
            .max(self.swarm.nodes.map(|[_, hi]| hi).unwrap_or(0));
        crate::faults::validate_script(
            &self.faults,
            self.nemesis.as_ref(),
            self.nodes.min(servers),
            self.workload.clients,
        )
        .map_err(|(i, field, msg)| ScenarioError::at_table(src, "faults", i, field, msg))?;
        if let Some(n) = &self.nemesis {
            crate::faults::validate_nemesis(n)
                .map_err(|(field, msg)| ScenarioError::at_field(src, field, msg))?;
        }
        for (i, a) in self.asserts.iter().enumerate() {
            a.validate(self.duration.0)
                .map_err(|(field, msg)| ScenarioError::at_table(src, "assert", i, field, msg))?;
        }
        if let Some(w) = self.liveness.within {
            if w.0 == 0 {
                return err(
                    "within",
                    "the liveness bound must be above zero, e.g. \"2s\"".into(),
                );
            }
            if self.liveness.enabled != Some(false) && w >= self.quiet {
                return err(
                    "within",
                    format!(
                        "the liveness bound {} does not fit in the quiet period ({}); make quiet longer than within, or set enabled = false",
                        crate::time::fmt_ns(w.0),
                        crate::time::fmt_ns(self.quiet.0)
                    ),
                );
            }
        }
        if self.liveness.enabled == Some(true) && self.quiet.0 == 0 {
            return err(
                "enabled",
                "the liveness phase starts with the quiet period, and this scenario has none; set quiet = \"3s\" (for example)".into(),
            );
        }
        Ok(())
    }

    /// `action = "heal"` takes no field but `at`. Serde ignores unknown fields in a unit
    /// variant of an internally tagged enum (`FaultAction::Heal`), so they are refused here,
    /// from the faults read again as plain tables.
    fn refuse_fields_of_heal(&self, src: &Source) -> Result<(), ScenarioError> {
        use crate::faults::FaultAction;
        if !self.faults.iter().any(|f| f.action == FaultAction::Heal) {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Tables {
            #[serde(default)]
            faults: Vec<BTreeMap<String, serde::de::IgnoredAny>>,
        }
        let tables: Tables = parse_value(src)?;
        for (i, (f, keys)) in self.faults.iter().zip(&tables.faults).enumerate() {
            if f.action != FaultAction::Heal {
                continue;
            }
            if let Some(k) = keys.keys().find(|k| *k != "at" && *k != "action") {
                return Err(ScenarioError::at_table(
                    src,
                    "faults",
                    i,
                    k,
                    format!(
                        "unknown field `{k}`, there are no fields: action = \"heal\" restores every link and takes only `at`; remove `{k}`"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_workload(&self, src: &Source) -> Result<(), ScenarioError> {
        let w = &self.workload;
        if w.keys > KEYS_MAX {
            return Err(ScenarioError::at_field(
                src,
                "keys",
                format!("keys = {} is out of range; use 0 to {KEYS_MAX}", w.keys),
            ));
        }
        if w.clients == 0 {
            return Ok(());
        }
        let err =
            |field: &str, msg: &str| Err(ScenarioError::at_field(src, field, msg.to_string()));
        if w.think.0 == 0 {
            return err(
                "think",
                "think must be above zero (the mean pause between a reply and the next request, e.g. \"10ms\")",
            );
        }
        if w.timeout.0 == 0 {
            return err(
                "timeout",
                "timeout must be above zero: with 0 every operation times out before any reply; e.g. \"500ms\"",
            );
        }
        if w.start >= self.duration {
            return err(
                "start",
                "the clients start after the run ends; make start earlier than duration",
            );
        }
        Ok(())
    }

    /// Whether the run has a liveness phase: on by default whenever there is a quiet period.
    pub fn liveness_on(&self) -> bool {
        self.quiet.0 > 0 && self.liveness.enabled != Some(false)
    }

    /// Reads the algorithm's `[params]` table into its own type (which should deny unknown
    /// fields); an absent table gives `T::default()`.
    pub fn params<T: DeserializeOwned + Default>(&self) -> Result<T, ScenarioError> {
        #[derive(Deserialize)]
        struct Only<T> {
            #[serde(default = "Option::default")]
            params: Option<T>,
        }
        let Some(src) = &self.source else {
            return Ok(T::default());
        };
        let _guard = ContextGuard::set(ValidationContext {
            nodes: self
                .nodes
                .max(self.swarm.nodes.map(|[_, hi]| hi).unwrap_or(0)),
            clients: self.workload.clients,
            duration_ns: self.duration.0,
        });
        let only: Only<T> = parse_value(src)?;
        Ok(only.params.unwrap_or_default())
    }

    /// The file path, for messages.
    pub fn path(&self) -> &str {
        self.source
            .as_ref()
            .map(|s| s.path.as_str())
            .unwrap_or("<scenario>")
    }

    /// An error about this scenario located at `field`.
    pub fn error_at(&self, field: &str, message: String) -> ScenarioError {
        match &self.source {
            Some(src) => ScenarioError::at_field(src, field, message),
            None => ScenarioError::new("<scenario>", message),
        }
    }

    /// An error located at `field` of the `index`-th (0-based) `[[table]]` of the file, for
    /// checks an algorithm makes at load time.
    pub fn error_at_table(
        &self,
        table: &str,
        index: usize,
        field: &str,
        message: String,
    ) -> ScenarioError {
        match &self.source {
            Some(src) => ScenarioError::at_table(src, table, index, field, message),
            None => ScenarioError::new("<scenario>", message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_of_line_reads_both_formats() {
        assert_eq!(field_of_line("loss = 1.5").as_deref(), Some("loss"));
        assert_eq!(field_of_line("  \"loss\": 1.5,").as_deref(), Some("loss"));
        assert_eq!(field_of_line("[network]"), None);
    }

    #[test]
    fn faults_may_name_clients_but_not_beyond_them() {
        let base = "description = \"d\"\nalgorithm = \"echo\"\nnodes = 2\nduration = \"1s\"\n[workload]\nclients = 2\nmix = { echo = 1 }\n[[faults]]\nat = \"1ms\"\naction = \"pause\"\n";
        let ok = format!("{base}node = 3\n");
        assert!(Scenario::parse("t.toml", &ok).is_ok());
        let bad = format!("{base}node = 4\n");
        let err = Scenario::parse("t.toml", &bad).unwrap_err();
        assert!(
            err.message.contains("2 clients, numbered 2 to 3"),
            "{}",
            err.message
        );
    }
}
