//! Random `kv-append` histories shaped like Porcupine's key-value test data (the MIT 6.824
//! key-value service logs: many clients, a few keys, get/put/append with string values).
//!
//! Clients run against real strings (one per key): each operation is invoked, takes effect at
//! one instant some steps later and completes after that, so the history is linearizable by
//! construction. Appended pieces are unique (`"x <client> <n> y"`), so the injected fault, a
//! server applying one append twice, is certainly not linearizable once a get shows it.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::history::{EventType, History, HistoryEvent};

/// What [`generate_append_history`] produces.
#[derive(Clone, Debug)]
pub struct AppendGenOptions {
    /// Seed of the generator's random stream; the same options give the same history.
    pub seed: u64,
    /// Operations to invoke (not counting the final reads of a bad history).
    pub ops: usize,
    /// Keys `"0"`, `"1"`, ... (at least 1).
    pub keys: usize,
    /// Concurrent clients (at least 1).
    pub clients: usize,
    /// Apply one append twice on the middle key once half the operations are issued (and
    /// read that key at the end), which makes the history certainly not linearizable.
    pub bad: bool,
}

enum Phase {
    Idle,
    /// Invoked, not yet taken effect: (key, f, argument).
    Invoked(usize, &'static str, String),
    /// Taken effect: (key, f, result).
    Applied(usize, &'static str, String),
}

/// A random `kv-append` history as described by `opts`.
pub fn generate_append_history(opts: &AppendGenOptions) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let keys = opts.keys.max(1);
    let n_clients = opts.clients.max(1);
    let bad_key = keys / 2;
    let mut strings: Vec<String> = vec![String::new(); keys];
    let mut phases: Vec<Phase> = (0..n_clients).map(|_| Phase::Idle).collect();
    let (mut issued, mut busy, mut time_ns, mut piece) = (0usize, 0usize, 0u64, 0u64);
    let mut injected = false;
    let mut events = Vec::with_capacity(opts.ops * 2 + 2 * keys);
    let mut emit = |kind, process: usize, f: &str, key: usize, value: Value, t: u64| {
        events.push(HistoryEvent {
            kind,
            process: process as u64,
            time_ns: t,
            f: f.to_owned(),
            key: Some(key.to_string()),
            value,
        });
    };
    while issued < opts.ops || busy > 0 {
        let c = rng.random_range(0..n_clients);
        time_ns += rng.random_range(1..=1000u64);
        match std::mem::replace(&mut phases[c], Phase::Idle) {
            Phase::Idle => {
                if issued >= opts.ops {
                    continue;
                }
                let key = rng.random_range(0..keys);
                let roll = rng.random_range(0..20u32);
                piece += 1;
                let no_put = injected && key == bad_key;
                let (f, arg) = match roll {
                    0 if !no_put => ("put", format!("x {c} {piece} y")),
                    0..=9 => ("append", format!("x {c} {piece} y")),
                    _ => ("get", String::new()),
                };
                let v = if f == "get" {
                    Value::Null
                } else {
                    Value::from(arg.clone())
                };
                emit(EventType::Invoke, c, f, key, v, time_ns);
                phases[c] = Phase::Invoked(key, f, arg);
                issued += 1;
                busy += 1;
            }
            Phase::Invoked(key, f, arg) => {
                let s = &mut strings[key];
                match f {
                    "put" => *s = arg.clone(),
                    "append" => {
                        s.push_str(&arg);
                        if opts.bad && !injected && key == bad_key && issued >= opts.ops / 2 {
                            // The fault: the server applies this append a second time.
                            s.push_str(&arg);
                            injected = true;
                        }
                    }
                    _ => {}
                }
                let result = if f == "get" { s.clone() } else { arg };
                phases[c] = Phase::Applied(key, f, result);
            }
            Phase::Applied(key, f, result) => {
                emit(EventType::Ok, c, f, key, Value::from(result), time_ns);
                busy -= 1;
            }
        }
    }
    if opts.bad && !injected {
        // No append reached the faulty key late enough: duplicate one now.
        let arg = format!("x 0 {} y", piece + 1);
        strings[bad_key].push_str(&arg);
        strings[bad_key].push_str(&arg);
        for kind in [EventType::Invoke, EventType::Ok] {
            time_ns += 1000;
            emit(
                kind,
                0,
                "append",
                bad_key,
                Value::from(arg.clone()),
                time_ns,
            );
        }
    }
    if opts.bad {
        // A final read of the faulty key, so the duplicate is observed even if no get saw it.
        for kind in [EventType::Invoke, EventType::Ok] {
            time_ns += 1000;
            let v = match kind {
                EventType::Invoke => Value::Null,
                _ => Value::from(strings[bad_key].clone()),
            };
            emit(kind, 0, "get", bad_key, v, time_ns);
        }
    }
    History { events }
}
