//! Random transactional histories for tests and benchmarks.
//!
//! Clients run transactions against a real store, one transaction at a time each: a
//! transaction is invoked, takes effect atomically at one instant some steps later, and
//! completes some steps after that, so the history is strictly serializable by construction.
//! Like Jepsen's list-append workload, keys are retired once they hold `max_appends_per_key`
//! elements and replaced by fresh ones, which keeps reads short. Anomalies are injected on
//! request: a read that misses the newest element (a stale read).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::history::{MopKind, TxnHistory, TxnStatus};

/// What [`generate_txn_history`] produces.
#[derive(Clone, Debug)]
pub struct TxnGenOptions {
    /// Seed of the generator's random stream; the same options give the same history.
    pub seed: u64,
    /// Transactions to run.
    pub txns: usize,
    /// Concurrent clients (at least 1).
    pub clients: usize,
    /// Keys in use at any moment (at least 1).
    pub keys: usize,
    /// Micro-operations per transaction (at least 1).
    pub mops_per_txn: usize,
    /// A key is retired after this many appends (at least 1).
    pub max_appends_per_key: usize,
    /// Chance that a micro-operation reads rather than appends.
    pub read_fraction: f64,
    /// Write registers (`w`, one value per read) instead of appending to lists.
    pub register: bool,
    /// Chance that a read of a non-empty key misses its newest element: an anomaly.
    pub stale_read_fraction: f64,
    /// Chance that a transaction ends `info` (half of those took effect).
    pub info_fraction: f64,
}

impl Default for TxnGenOptions {
    fn default() -> Self {
        TxnGenOptions {
            seed: 1,
            txns: 1_000,
            clients: 10,
            keys: 10,
            mops_per_txn: 4,
            max_appends_per_key: 32,
            read_fraction: 0.5,
            register: false,
            stale_read_fraction: 0.0,
            info_fraction: 0.0,
        }
    }
}

type Planned = Vec<(MopKind, u32, i64, Option<Vec<i64>>)>;

enum Phase {
    Idle,
    /// Invoked at the time given, not yet applied.
    Invoked(u64),
    /// Applied: (invoke time, operations with their results, took effect).
    Applied(u64, Planned, bool),
}

/// The store the clients run against.
struct Store {
    values: Vec<Vec<i64>>,
    active: Vec<u32>,
    next_value: i64,
}

impl Store {
    /// Runs one transaction's operations atomically and returns them with results.
    fn apply(&mut self, rng: &mut ChaCha8Rng, o: &TxnGenOptions, commit: bool) -> Planned {
        let mut out = Vec::with_capacity(o.mops_per_txn);
        // What an uncommitted transaction changed, to put back afterwards.
        let mut undo: Vec<(u32, Vec<i64>)> = Vec::new();
        for _ in 0..o.mops_per_txn.max(1) {
            let slot = rng.random_range(0..self.active.len());
            let k = self.active[slot];
            if self.values.len() <= k as usize {
                self.values.resize(k as usize + 1, Vec::new());
            }
            if rng.random_bool(o.read_fraction.clamp(0.0, 1.0)) {
                let mut r = self.values[k as usize].clone();
                if !r.is_empty() && rng.random_bool(o.stale_read_fraction.clamp(0.0, 1.0)) {
                    r.pop();
                }
                if o.register && r.len() > 1 {
                    r = vec![*r.last().expect("non-empty")];
                }
                out.push((MopKind::Read, k, 0, Some(r)));
            } else {
                self.next_value += 1;
                let v = self.next_value;
                if !commit {
                    undo.push((k, self.values[k as usize].clone()));
                }
                let list = &mut self.values[k as usize];
                if o.register {
                    list.clear();
                }
                list.push(v);
                let kind = if o.register {
                    MopKind::Write
                } else {
                    MopKind::Append
                };
                out.push((kind, k, v, None));
                if !o.register && list.len() >= o.max_appends_per_key.max(1) {
                    // Retire the key: later transactions use a fresh one.
                    self.active[slot] = self.values.len().max(self.max_key() + 1) as u32;
                }
            }
        }
        for (k, v) in undo.into_iter().rev() {
            self.values[k as usize] = v;
        }
        out
    }

    fn max_key(&self) -> usize {
        self.active.iter().copied().max().unwrap_or(0) as usize
    }
}

/// A random transactional history as described by `opts`.
pub fn generate_txn_history(opts: &TxnGenOptions) -> TxnHistory {
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let n_clients = opts.clients.max(1);
    let mut store = Store {
        values: Vec::new(),
        active: (0..opts.keys.max(1) as u32).collect(),
        next_value: 0,
    };
    let mut h = TxnHistory::default();
    let mut phases: Vec<Phase> = (0..n_clients).map(|_| Phase::Idle).collect();
    let mut process: Vec<u64> = (0..n_clients as u64).collect();
    let mut next_process = n_clients as u64;
    let (mut issued, mut busy, mut time_ns) = (0usize, 0usize, 0u64);
    // Transactions are recorded at completion; keep them in invocation order at the end.
    let mut done: Vec<(u64, u64, TxnStatus, Planned, Option<u64>)> = Vec::new();
    let info_half = (opts.info_fraction / 2.0).clamp(0.0, 0.5);
    while issued < opts.txns || busy > 0 {
        let c = rng.random_range(0..n_clients);
        time_ns += rng.random_range(1..=1000u64);
        match std::mem::replace(&mut phases[c], Phase::Idle) {
            Phase::Idle if issued < opts.txns => {
                phases[c] = Phase::Invoked(time_ns);
                issued += 1;
                busy += 1;
            }
            Phase::Idle => {}
            Phase::Invoked(at) => {
                let commit = !rng.random_bool(info_half);
                let planned = store.apply(&mut rng, opts, commit);
                phases[c] = Phase::Applied(at, planned, commit);
            }
            Phase::Applied(at, planned, committed) => {
                let unknown = !committed || rng.random_bool(info_half);
                let status = if unknown {
                    TxnStatus::Info
                } else {
                    TxnStatus::Ok
                };
                done.push((
                    at,
                    process[c],
                    status,
                    planned,
                    (!unknown).then_some(time_ns),
                ));
                if unknown {
                    // After an unknown outcome the client goes on under a fresh process id.
                    process[c] = next_process;
                    next_process += 1;
                }
                busy -= 1;
            }
        }
    }
    done.sort_by_key(|d| d.0);
    let max_key = store.values.len().max(store.max_key() + 1);
    h.keys = (0..max_key).map(|k| k.to_string()).collect();
    for (at, p, status, mut planned, complete) in done {
        if status != TxnStatus::Ok {
            // An unknown outcome shows no read results.
            for m in &mut planned {
                m.3 = None;
            }
        }
        h.push(p, status, &planned, at, complete);
    }
    h
}
