//! Choosing a model from the history itself, for `distsim check` without `--model`, and
//! suggesting one when a history does not fit the model given.

use crate::history::History;

/// A model the history looks like, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    /// The model's name, as `--model` takes it (a linearizability model, or the transactional
    /// `list-append` / `rw-register`).
    pub model: &'static str,
    /// What in the history points to it, e.g. "operations include append".
    pub reason: String,
}

/// The transactional model of a history of `txn` operations: list-append when any
/// micro-operation appends, else rw-register.
pub fn txn_detected(appends: bool) -> Detected {
    let (model, reason) = if appends {
        (
            "list-append",
            "operations are txn with append micro-operations",
        )
    } else {
        ("rw-register", "operations are txn without appends")
    };
    Detected {
        model,
        reason: reason.to_owned(),
    }
}

/// The model a history's operations point to: `txn` operations mean a transactional model
/// (list-append when any micro-operation appends, else rw-register); `append` means
/// `kv-append`; `enqueue`/`dequeue` mean `queue`; `acquire`/`release` mean `lock`; keys (a
/// `key` field or Knossos `[key value]` values) mean `kv`; otherwise `register`.
pub fn detect_model(history: &History) -> Detected {
    let has = |f: &str| history.events.iter().any(|e| e.f == f);
    let d = |model, reason: &str| Detected {
        model,
        reason: reason.to_owned(),
    };
    if has("txn") {
        let appends = history.events.iter().any(|e| {
            e.value.as_array().is_some_and(|mops| {
                mops.iter()
                    .any(|m| m.get(0).and_then(|f| f.as_str()) == Some("append"))
            })
        });
        return txn_detected(appends);
    }
    if has("append") {
        return d("kv-append", "operations include append");
    }
    if has("enqueue") || has("dequeue") {
        return d("queue", "operations include enqueue or dequeue");
    }
    if has("acquire") || has("release") {
        return d("lock", "operations include acquire or release");
    }
    if history.events.iter().any(|e| e.key.is_some()) {
        return d("kv", "operations carry a key field");
    }
    let keyed = |v: &serde_json::Value| {
        matches!(
            v.as_array().map(Vec::as_slice),
            Some([
                serde_json::Value::String(_) | serde_json::Value::Number(_),
                _
            ])
        )
    };
    let reads_writes = history
        .events
        .iter()
        .all(|e| matches!(e.f.as_str(), "read" | "write" | "cas" | "get" | "put"));
    let all_keyed = history
        .events
        .iter()
        .filter(|e| e.f != "cas" && !e.value.is_null())
        .all(|e| keyed(&e.value))
        && history.events.iter().any(|e| keyed(&e.value));
    if reads_writes && all_keyed {
        return d(
            "kv",
            "values are [key value] pairs (Knossos's multi-register form)",
        );
    }
    d("register", "operations carry no keys")
}
