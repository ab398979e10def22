//! Sequential specifications ("models") that the checker linearizes histories against.
//!
//! A model is a deterministic state machine: from a state, an operation with its observed
//! output either is legal (and yields the next state) or is not. Users implement [`Model`] for
//! their own objects; every `Model` is usable through the object-safe [`AnyModel`] that
//! [`check`](super::check) takes, so the search is compiled for the concrete state type.

use std::collections::{BTreeSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

use serde_json::Value;

/// One operation as the history shows it, before a model interprets it.
#[derive(Clone, Copy, Debug)]
pub struct RawOp<'a> {
    /// The operation's function, e.g. "read".
    pub f: &'a str,
    /// The `key` field of the invocation, if any.
    pub key: Option<&'a str>,
    /// The process that invoked the operation.
    pub process: u64,
    /// The invocation's value (the argument).
    pub input: &'a Value,
    /// The `ok` completion's value (the result), or `None` when the outcome is unknown (`info`
    /// or no completion at all).
    pub output: Option<&'a Value>,
}

/// A sequential specification of an object, checked by [`check`](super::check).
///
/// The checker calls [`partition`](Model::partition) on every operation and checks each part
/// on its own (P-compositionality: a history of independent objects is linearizable exactly
/// when each object's sub-history is). Within a part it searches for an order of the
/// operations, consistent with real time, in which every `ok` operation's output is what
/// [`step`](Model::step) accepts.
pub trait Model: Send + Sync {
    /// The object's state. It is hashed into the checker's cache of visited configurations,
    /// so keep it small and cheap to clone.
    type State: Clone + Eq + Hash + Debug + Send;
    /// An operation's decoded argument.
    type Input: Debug + Send + Sync;
    /// An operation's decoded result.
    type Output: Debug + Send + Sync;

    /// The name used by `--model` and in reports.
    fn name(&self) -> &str;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// The part (object) an operation touches; operations of different parts are checked
    /// independently. `None` puts the operation in the one unnamed part. The default uses the
    /// `key` field.
    fn partition(&self, op: &RawOp<'_>) -> Result<Option<String>, String> {
        Ok(op.key.map(str::to_owned))
    }

    /// Decodes an operation's argument and, when known, its result. Errors say what is wrong
    /// with the operation (the checker adds where it is).
    fn decode(&self, op: &RawOp<'_>) -> Result<(Self::Input, Option<Self::Output>), String>;

    /// Applies an operation to `state`. `output` is the observed result, or `None` when it is
    /// unknown, in which case any result the object could give is accepted. Returns the next
    /// state, or `None` when the operation cannot happen in `state` with that result.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// True when the operation never changes the state (a read). Operations with an unknown
    /// outcome that are read-only constrain nothing, so the checker drops them.
    fn is_read_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// True when the operation can only move the state forward in an order in which
    /// [`never_legal_from`](Model::never_legal_from) is judged (for `kv-append`: get and
    /// append, never put). The search prunes by the state only in parts where every operation
    /// grows only or resets (see [`resets_to`](Model::resets_to)).
    fn grows_only(&self, _input: &Self::Input) -> bool {
        false
    }

    /// The state an operation that does not grow only sets outright, whatever came before
    /// (for `kv-append`: a put). The search prunes by the state only in parts where every
    /// operation grows only or resets.
    fn resets_to(&self, _input: &Self::Input) -> Option<Self::State> {
        None
    }

    /// True when no sequence of growing operations from `state` can make this completed
    /// operation legal (for `kv-append`: a get whose result does not extend the current
    /// string). Must never be true of an operation that could still be placed: returning
    /// false is always safe, and is the default.
    fn never_legal_from(
        &self,
        _state: &Self::State,
        _input: &Self::Input,
        _output: &Self::Output,
    ) -> bool {
        false
    }

    /// A short human description of an operation, e.g. `write 3` or `read -> 3`.
    fn describe_op(&self, input: &Self::Input, output: Option<&Self::Output>) -> String;

    /// A short human description of a state.
    fn describe_state(&self, state: &Self::State) -> String;
}

/// A plain value held by the built-in models: JSON scalars, with any other JSON value (floats,
/// arrays, objects, integers beyond `i64`) kept as its canonical JSON text so it can be hashed.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scalar {
    /// JSON `null` (EDN `nil`): the value of a never-written register.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// A string (EDN keywords arrive as strings).
    Str(String),
    /// Any other JSON value, as its JSON text.
    Other(String),
}

impl Scalar {
    /// Converts a JSON value.
    pub fn from_json(v: &Value) -> Scalar {
        match v {
            Value::Null => Scalar::Null,
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Scalar::Int(i),
                None => Scalar::Other(n.to_string()),
            },
            Value::String(s) => Scalar::Str(s.clone()),
            other => Scalar::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Null => f.write_str("nil"),
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Str(s) => write!(f, "{s:?}"),
            Scalar::Other(s) => f.write_str(s),
        }
    }
}

/// Names of the built-in models, for help messages.
pub const MODEL_NAMES: &[&str] = &[
    "register",
    "kv",
    "kv-append",
    "set",
    "queue",
    "counter",
    "lock",
];

/// Looks up a built-in model by name (see [`MODEL_NAMES`]).
pub fn model_by_name(name: &str) -> Option<Box<dyn super::AnyModel>> {
    Some(match name {
        "register" => Box::new(Register { keyed: false }),
        "kv" => Box::new(Register { keyed: true }),
        "kv-append" => Box::new(KvAppend),
        "set" => Box::new(SetModel),
        "queue" => Box::new(Queue),
        "counter" => Box::new(Counter),
        "lock" => Box::new(Lock),
        _ => return None,
    })
}

/// Splits a Knossos/Jepsen keyed value `[key value]` when an operation has no `key` field.
///
/// Rule (documented in the module docs): for the key-value models, an operation without a
/// `key` field must carry `[key value]` as its invocation value (and, when it completed `ok`,
/// as its result too, or `nil`); the key may be a string/keyword or an integer.
fn keyed_key(v: &Value) -> Option<String> {
    match v.as_array().map(Vec::as_slice) {
        Some([Value::String(k), _]) => Some(k.clone()),
        Some([Value::Number(n), _]) => Some(n.to_string()),
        _ => None,
    }
}

/// The value half of a keyed value, or `null` for a `nil` result.
fn keyed_value(v: &Value) -> Result<&Value, String> {
    match v {
        Value::Null => Ok(v),
        Value::Array(a) if a.len() == 2 => Ok(&a[1]),
        _ => Err(format!("expected a keyed value [key value], found {v}")),
    }
}

/// Partition function shared by the key-value models: the `key` field, else the keyed value.
fn kv_partition(op: &RawOp<'_>) -> Result<Option<String>, String> {
    if let Some(k) = op.key {
        return Ok(Some(k.to_owned()));
    }
    match keyed_key(op.input) {
        Some(k) => Ok(Some(k)),
        None => Err(format!(
            "operation {:?} has no key: give a \"key\" field or a value [key value]",
            op.f
        )),
    }
}

/// Strips the key from a keyed operation so the per-key model sees plain values.
fn kv_unkey<'a>(op: &RawOp<'a>) -> Result<(&'a Value, Option<&'a Value>), String> {
    if op.key.is_some() {
        return Ok((op.input, op.output));
    }
    let input = keyed_value(op.input)?;
    let output = match op.output {
        Some(o) => Some(keyed_value(o)?),
        None => None,
    };
    Ok((input, output))
}

/// A register operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOp {
    /// Read the value.
    Read,
    /// Write a value.
    Write(Scalar),
    /// Compare-and-set: if the value is `.0`, set it to `.1`.
    Cas(Scalar, Scalar),
}

/// The `register` model (one read/write/cas register per key, or one for the whole history)
/// and, with `keyed`, the `kv` model (a map of such registers; every operation needs a key).
#[derive(Clone, Copy, Debug)]
pub struct Register {
    /// True for `kv`: keys are required and `[key value]` values are accepted.
    pub keyed: bool,
}

impl Model for Register {
    type State = Scalar;
    type Input = RegisterOp;
    type Output = Scalar;

    fn name(&self) -> &str {
        if self.keyed {
            "kv"
        } else {
            "register"
        }
    }

    fn init(&self) -> Scalar {
        Scalar::Null
    }

    fn partition(&self, op: &RawOp<'_>) -> Result<Option<String>, String> {
        if self.keyed {
            kv_partition(op)
        } else {
            Ok(op.key.map(str::to_owned))
        }
    }

    fn decode(&self, op: &RawOp<'_>) -> Result<(RegisterOp, Option<Scalar>), String> {
        let (input, output) = if self.keyed {
            kv_unkey(op)?
        } else {
            (op.input, op.output)
        };
        let output = output.map(Scalar::from_json);
        let input = match op.f {
            "read" | "get" => RegisterOp::Read,
            "write" | "put" => RegisterOp::Write(Scalar::from_json(input)),
            "cas" => match input.as_array().map(Vec::as_slice) {
                Some([from, to]) => RegisterOp::Cas(Scalar::from_json(from), Scalar::from_json(to)),
                _ => return Err(format!("cas needs a value [from to], found {input}")),
            },
            other => {
                return Err(format!(
                    "model {} has no operation {other:?} (use read/get, write/put, cas)",
                    self.name()
                ))
            }
        };
        Ok((input, output))
    }

    fn step(&self, state: &Scalar, input: &RegisterOp, output: Option<&Scalar>) -> Option<Scalar> {
        match input {
            RegisterOp::Read => match output {
                Some(v) if v != state => None,
                _ => Some(state.clone()),
            },
            RegisterOp::Write(v) => Some(v.clone()),
            RegisterOp::Cas(from, to) => (from == state).then(|| to.clone()),
        }
    }

    fn is_read_only(&self, input: &RegisterOp) -> bool {
        matches!(input, RegisterOp::Read)
    }

    fn describe_op(&self, input: &RegisterOp, output: Option<&Scalar>) -> String {
        match input {
            RegisterOp::Read => match output {
                Some(v) => format!("read -> {v}"),
                None => "read -> ?".to_owned(),
            },
            RegisterOp::Write(v) => format!("write {v}"),
            RegisterOp::Cas(from, to) => format!("cas {from}->{to}"),
        }
    }

    fn describe_state(&self, state: &Scalar) -> String {
        state.to_string()
    }
}

/// A `kv-append` operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendOp {
    /// Read the whole string.
    Get,
    /// Replace the string.
    Put(String),
    /// Append to the string.
    Append(String),
}

/// The `kv-append` model: a map of strings; `get` returns the whole string (a missing key
/// reads as `nil` or `""`), `put` replaces it, `append` appends to it.
#[derive(Clone, Copy, Debug)]
pub struct KvAppend;

fn text_of(v: &Value, what: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("{what} needs a string, found {other}")),
    }
}

impl Model for KvAppend {
    type State = String;
    type Input = AppendOp;
    type Output = String;

    fn name(&self) -> &str {
        "kv-append"
    }

    fn init(&self) -> String {
        String::new()
    }

    fn partition(&self, op: &RawOp<'_>) -> Result<Option<String>, String> {
        kv_partition(op)
    }

    fn decode(&self, op: &RawOp<'_>) -> Result<(AppendOp, Option<String>), String> {
        let (input, output) = kv_unkey(op)?;
        Ok(match op.f {
            "get" | "read" => (
                AppendOp::Get,
                output.map(|o| text_of(o, "get result")).transpose()?,
            ),
            "put" | "write" => (AppendOp::Put(text_of(input, "put")?), None),
            "append" => (AppendOp::Append(text_of(input, "append")?), None),
            other => {
                return Err(format!(
                    "model kv-append has no operation {other:?} (use get, put, append)"
                ))
            }
        })
    }

    fn step(&self, state: &String, input: &AppendOp, output: Option<&String>) -> Option<String> {
        match input {
            AppendOp::Get => match output {
                Some(v) if v != state => None,
                _ => Some(state.clone()),
            },
            AppendOp::Put(v) => Some(v.clone()),
            AppendOp::Append(v) => {
                let mut s = String::with_capacity(state.len() + v.len());
                s.push_str(state);
                s.push_str(v);
                Some(s)
            }
        }
    }

    fn is_read_only(&self, input: &AppendOp) -> bool {
        matches!(input, AppendOp::Get)
    }

    fn grows_only(&self, input: &AppendOp) -> bool {
        !matches!(input, AppendOp::Put(_))
    }

    fn resets_to(&self, input: &AppendOp) -> Option<String> {
        match input {
            AppendOp::Put(v) => Some(v.clone()),
            _ => None,
        }
    }

    fn never_legal_from(&self, state: &String, input: &AppendOp, output: &String) -> bool {
        // Without puts the string only grows, so a get can still be placed only if what it
        // returned extends what is there now.
        matches!(input, AppendOp::Get) && !output.starts_with(state.as_str())
    }

    fn describe_op(&self, input: &AppendOp, output: Option<&String>) -> String {
        match input {
            AppendOp::Get => match output {
                Some(v) => format!("get -> {v:?}"),
                None => "get -> ?".to_owned(),
            },
            AppendOp::Put(v) => format!("put {v:?}"),
            AppendOp::Append(v) => format!("append {v:?}"),
        }
    }

    fn describe_state(&self, state: &String) -> String {
        format!("{state:?}")
    }
}

/// A `set` operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SetOp {
    /// Add an element.
    Add(Scalar),
    /// Read all elements.
    Read,
}

/// The `set` model: `add` an element, `read` returns a list of all elements (any order).
#[derive(Clone, Copy, Debug)]
pub struct SetModel;

impl Model for SetModel {
    type State = BTreeSet<Scalar>;
    type Input = SetOp;
    type Output = BTreeSet<Scalar>;

    fn name(&self) -> &str {
        "set"
    }

    fn init(&self) -> BTreeSet<Scalar> {
        BTreeSet::new()
    }

    fn decode(&self, op: &RawOp<'_>) -> Result<(SetOp, Option<BTreeSet<Scalar>>), String> {
        match op.f {
            "add" => Ok((SetOp::Add(Scalar::from_json(op.input)), None)),
            "read" => {
                let out = match op.output {
                    None => None,
                    Some(Value::Array(items)) => {
                        Some(items.iter().map(Scalar::from_json).collect())
                    }
                    Some(Value::Null) => Some(BTreeSet::new()),
                    Some(other) => {
                        return Err(format!("set read must return a list, found {other}"))
                    }
                };
                Ok((SetOp::Read, out))
            }
            other => Err(format!(
                "model set has no operation {other:?} (use add, read)"
            )),
        }
    }

    fn step(
        &self,
        state: &BTreeSet<Scalar>,
        input: &SetOp,
        output: Option<&BTreeSet<Scalar>>,
    ) -> Option<BTreeSet<Scalar>> {
        match input {
            SetOp::Add(v) => {
                let mut s = state.clone();
                s.insert(v.clone());
                Some(s)
            }
            SetOp::Read => match output {
                Some(v) if v != state => None,
                _ => Some(state.clone()),
            },
        }
    }

    fn is_read_only(&self, input: &SetOp) -> bool {
        matches!(input, SetOp::Read)
    }

    fn describe_op(&self, input: &SetOp, output: Option<&BTreeSet<Scalar>>) -> String {
        match input {
            SetOp::Add(v) => format!("add {v}"),
            SetOp::Read => match output {
                Some(v) => format!("read -> {}", self.describe_state(v)),
                None => "read -> ?".to_owned(),
            },
        }
    }

    fn describe_state(&self, state: &BTreeSet<Scalar>) -> String {
        let items: Vec<String> = state.iter().map(Scalar::to_string).collect();
        format!("#{{{}}}", items.join(" "))
    }
}

/// A `queue` operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueOp {
    /// Put a value at the back.
    Enqueue(Scalar),
    /// Take the value at the front (`nil` when empty).
    Dequeue,
}

/// The `queue` model: FIFO `enqueue` and `dequeue` (`enq`/`deq` too); a dequeue of an empty
/// queue returns `nil`.
#[derive(Clone, Copy, Debug)]
pub struct Queue;

impl Model for Queue {
    type State = VecDeque<Scalar>;
    type Input = QueueOp;
    type Output = Scalar;

    fn name(&self) -> &str {
        "queue"
    }

    fn init(&self) -> VecDeque<Scalar> {
        VecDeque::new()
    }

    fn decode(&self, op: &RawOp<'_>) -> Result<(QueueOp, Option<Scalar>), String> {
        match op.f {
            "enqueue" | "enq" => Ok((QueueOp::Enqueue(Scalar::from_json(op.input)), None)),
            "dequeue" | "deq" => Ok((QueueOp::Dequeue, op.output.map(Scalar::from_json))),
            other => Err(format!(
                "model queue has no operation {other:?} (use enqueue, dequeue)"
            )),
        }
    }

    fn step(
        &self,
        state: &VecDeque<Scalar>,
        input: &QueueOp,
        output: Option<&Scalar>,
    ) -> Option<VecDeque<Scalar>> {
        match input {
            QueueOp::Enqueue(v) => {
                let mut q = state.clone();
                q.push_back(v.clone());
                Some(q)
            }
            QueueOp::Dequeue => match (state.front(), output) {
                (None, None | Some(Scalar::Null)) => Some(state.clone()),
                (None, Some(_)) => None,
                (Some(front), Some(v)) if front != v => None,
                (Some(_), _) => {
                    let mut q = state.clone();
                    q.pop_front();
                    Some(q)
                }
            },
        }
    }

    fn describe_op(&self, input: &QueueOp, output: Option<&Scalar>) -> String {
        match input {
            QueueOp::Enqueue(v) => format!("enqueue {v}"),
            QueueOp::Dequeue => match output {
                Some(v) => format!("dequeue -> {v}"),
                None => "dequeue -> ?".to_owned(),
            },
        }
    }

    fn describe_state(&self, state: &VecDeque<Scalar>) -> String {
        let items: Vec<String> = state.iter().map(Scalar::to_string).collect();
        format!("[{}]", items.join(" "))
    }
}

/// A `counter` operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CounterOp {
    /// Add an amount (may be negative).
    Add(i64),
    /// Read the total.
    Read,
}

/// The `counter` model: `add n` (`increment` adds 1 when no value is given), `read` returns
/// the total; it starts at 0.
#[derive(Clone, Copy, Debug)]
pub struct Counter;

impl Model for Counter {
    type State = i64;
    type Input = CounterOp;
    type Output = i64;

    fn name(&self) -> &str {
        "counter"
    }

    fn init(&self) -> i64 {
        0
    }

    fn decode(&self, op: &RawOp<'_>) -> Result<(CounterOp, Option<i64>), String> {
        match op.f {
            "add" | "increment" | "inc" => match op.input {
                Value::Null if op.f != "add" => Ok((CounterOp::Add(1), None)),
                v => match v.as_i64() {
                    Some(n) => Ok((CounterOp::Add(n), None)),
                    None => Err(format!("{} needs an integer, found {v}", op.f)),
                },
            },
            "read" => match op.output {
                None => Ok((CounterOp::Read, None)),
                Some(v) => match v.as_i64() {
                    Some(n) => Ok((CounterOp::Read, Some(n))),
                    None => Err(format!("counter read must return an integer, found {v}")),
                },
            },
            other => Err(format!(
                "model counter has no operation {other:?} (use add, read)"
            )),
        }
    }

    fn step(&self, state: &i64, input: &CounterOp, output: Option<&i64>) -> Option<i64> {
        match input {
            // Overflow is not a behaviour any real counter under test should have; refuse it
            // rather than wrap so that a bogus history cannot look linearizable by accident.
            CounterOp::Add(n) => state.checked_add(*n),
            CounterOp::Read => match output {
                Some(v) if v != state => None,
                _ => Some(*state),
            },
        }
    }

    fn is_read_only(&self, input: &CounterOp) -> bool {
        matches!(input, CounterOp::Read)
    }

    fn describe_op(&self, input: &CounterOp, output: Option<&i64>) -> String {
        match input {
            CounterOp::Add(n) => format!("add {n}"),
            CounterOp::Read => match output {
                Some(v) => format!("read -> {v}"),
                None => "read -> ?".to_owned(),
            },
        }
    }

    fn describe_state(&self, state: &i64) -> String {
        state.to_string()
    }
}

/// A `lock` operation, with its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockOp {
    /// Take the lock (it must be free).
    Acquire(Scalar),
    /// Give the lock back (the owner must hold it).
    Release(Scalar),
}

/// The `lock` model: `acquire`/`lock` succeeds only when the lock is free, `release`/`unlock`
/// only by the holder. The owner is the operation's value, or its process when the value is
/// `nil` (so a client that continues under a fresh process id after an `info` should name the
/// owner in the value).
#[derive(Clone, Copy, Debug)]
pub struct Lock;

impl Model for Lock {
    type State = Option<Scalar>;
    type Input = LockOp;
    type Output = ();

    fn name(&self) -> &str {
        "lock"
    }

    fn init(&self) -> Option<Scalar> {
        None
    }

    fn decode(&self, op: &RawOp<'_>) -> Result<(LockOp, Option<()>), String> {
        let owner = match op.input {
            Value::Null => Scalar::Int(i64::try_from(op.process).unwrap_or(i64::MAX)),
            v => Scalar::from_json(v),
        };
        let known = op.output.map(|_| ());
        match op.f {
            "acquire" | "lock" => Ok((LockOp::Acquire(owner), known)),
            "release" | "unlock" => Ok((LockOp::Release(owner), known)),
            other => Err(format!(
                "model lock has no operation {other:?} (use acquire, release)"
            )),
        }
    }

    fn step(
        &self,
        state: &Option<Scalar>,
        input: &LockOp,
        _output: Option<&()>,
    ) -> Option<Option<Scalar>> {
        match (input, state) {
            (LockOp::Acquire(who), None) => Some(Some(who.clone())),
            (LockOp::Release(who), Some(holder)) if who == holder => Some(None),
            _ => None,
        }
    }

    fn describe_op(&self, input: &LockOp, _output: Option<&()>) -> String {
        match input {
            LockOp::Acquire(who) => format!("acquire by {who}"),
            LockOp::Release(who) => format!("release by {who}"),
        }
    }

    fn describe_state(&self, state: &Option<Scalar>) -> String {
        match state {
            None => "free".to_owned(),
            Some(who) => format!("held by {who}"),
        }
    }
}
