//! Random key-value histories for benchmarks and tests.
//!
//! The generator runs `clients` concurrent clients against real atomic registers (one per
//! key): each operation is invoked, takes effect at one instant some steps later, and completes
//! some steps after that, so operations overlap the way they do against a real store and the
//! history is linearizable by construction. Written values are unique, which makes the
//! injected violation certain.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::history::{EventType, History, HistoryEvent};

/// What [`generate_history`] produces.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Seed of the generator's random stream; the same options give the same history.
    pub seed: u64,
    /// Operations to invoke (not counting an injected violation).
    pub ops: usize,
    /// Keys `k0`, `k1`, ... (at least 1).
    pub keys: usize,
    /// Concurrent clients (at least 1).
    pub clients: usize,
    /// Fraction of operations that end `info` (about half of them took effect).
    pub info_fraction: f64,
    /// Append a write to `k0` followed by a read of `k0` that returns an older value: a stale
    /// read that makes the history certainly not linearizable (for the `kv` model).
    pub inject_violation: bool,
}

/// A linearizable `kv` history (read, write, cas; failed cas end `fail`). See
/// [`generate_history`] for the version that can inject a violation.
pub fn generate_kv_history(
    seed: u64,
    ops: usize,
    keys: usize,
    clients: usize,
    info_fraction: f64,
) -> History {
    generate_history(&GenerateOptions {
        seed,
        ops,
        keys,
        clients,
        info_fraction,
        inject_violation: false,
    })
}

#[derive(Clone)]
enum Phase {
    Idle,
    /// Invoked, not yet taken effect: (key, f, argument).
    Invoked(usize, &'static str, Value),
    /// Taken effect: (key, f, result, ok?).
    Applied(usize, &'static str, Value, bool),
}

struct Client {
    process: u64,
    phase: Phase,
}

fn int_or_null(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::from)
}

/// A random `kv` history as described by `opts`.
pub fn generate_history(opts: &GenerateOptions) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let keys = opts.keys.max(1);
    let key_names: Vec<String> = (0..keys).map(|k| format!("k{k}")).collect();
    let mut registers: Vec<Option<i64>> = vec![None; keys];
    // Values that an ok write or cas put into each register (for the injected stale read).
    let mut last_ok_written: Vec<Option<i64>> = vec![None; keys];
    let n_clients = opts.clients.max(1);
    let mut clients: Vec<Client> = (0..n_clients)
        .map(|c| Client {
            process: c as u64,
            phase: Phase::Idle,
        })
        .collect();
    let mut next_process = n_clients as u64;
    let mut next_value: i64 = 1;
    let mut time_ns: u64 = 0;
    let mut issued = 0usize;
    let mut busy = 0usize;
    let mut events = Vec::with_capacity(opts.ops * 2 + 4);
    let info_half = (opts.info_fraction / 2.0).clamp(0.0, 0.5);

    while issued < opts.ops || busy > 0 {
        let c = rng.random_range(0..n_clients);
        let client = &mut clients[c];
        let phase = std::mem::replace(&mut client.phase, Phase::Idle);
        time_ns += rng.random_range(1..=1000u64);
        let mut emit = |kind: EventType, process: u64, f: &str, key: usize, value: Value| {
            events.push(HistoryEvent {
                kind,
                process,
                time_ns,
                f: f.to_owned(),
                key: Some(key_names[key].clone()),
                value,
            });
        };
        match phase {
            Phase::Idle => {
                if issued >= opts.ops {
                    continue;
                }
                let key = rng.random_range(0..keys);
                let roll = rng.random_range(0..10u32);
                let (f, arg) = if roll < 5 {
                    ("read", Value::Null)
                } else if roll < 8 {
                    next_value += 1;
                    ("write", Value::from(next_value))
                } else {
                    // Half the cas expect the current value (and succeed unless another client
                    // gets there first), half a recent one (and mostly fail).
                    let from = if rng.random_bool(0.5) {
                        registers[key]
                    } else {
                        Some(next_value - rng.random_range(0..5))
                    };
                    next_value += 1;
                    (
                        "cas",
                        Value::from(vec![int_or_null(from), Value::from(next_value)]),
                    )
                };
                emit(EventType::Invoke, client.process, f, key, arg.clone());
                client.phase = Phase::Invoked(key, f, arg);
                issued += 1;
                busy += 1;
            }
            Phase::Invoked(key, f, arg) => {
                if rng.random_bool(info_half) {
                    // Timed out before taking effect: it never will.
                    emit(EventType::Info, client.process, f, key, Value::Null);
                    client.process = next_process;
                    next_process += 1;
                    busy -= 1;
                    continue;
                }
                // The operation takes effect now, atomically.
                let (result, ok) = match f {
                    "read" => (int_or_null(registers[key]), true),
                    "write" => {
                        registers[key] = arg.as_i64();
                        (arg, true)
                    }
                    _ => {
                        let from = arg.get(0).and_then(Value::as_i64);
                        let to = arg.get(1).and_then(Value::as_i64);
                        if registers[key] == from {
                            registers[key] = to;
                            (arg, true)
                        } else {
                            (arg, false)
                        }
                    }
                };
                client.phase = Phase::Applied(key, f, result, ok);
            }
            Phase::Applied(key, f, result, ok) => {
                if rng.random_bool(info_half) {
                    // Took effect, but the client never heard back.
                    emit(EventType::Info, client.process, f, key, Value::Null);
                    client.process = next_process;
                    next_process += 1;
                } else if ok {
                    if f != "read" {
                        last_ok_written[key] = result
                            .as_array()
                            .map_or(result.as_i64(), |a| a.get(1).and_then(Value::as_i64));
                    }
                    emit(EventType::Ok, client.process, f, key, result);
                } else {
                    emit(EventType::Fail, client.process, f, key, result);
                }
                busy -= 1;
            }
        }
    }

    if opts.inject_violation {
        // Every operation has completed; a write of a fresh value followed by a read of an
        // older (or never written) value cannot be linearized: values are never rewritten.
        let stale = last_ok_written[0].unwrap_or(next_value + 2);
        next_value += 1;
        let p = next_process;
        for (kind, f, value) in [
            (EventType::Invoke, "write", Value::from(next_value)),
            (EventType::Ok, "write", Value::from(next_value)),
            (EventType::Invoke, "read", Value::Null),
            (EventType::Ok, "read", Value::from(stale)),
        ] {
            time_ns += 1000;
            events.push(HistoryEvent {
                kind,
                process: p,
                time_ns,
                f: f.to_owned(),
                key: Some(key_names[0].clone()),
                value,
            });
        }
    }
    History { events }
}
