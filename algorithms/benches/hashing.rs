//! Lookup cost of the consistent-hashing strategies: `cargo bench -p algorithms --bench hashing`.
//!
//! Prints ns per lookup for the ring (1,000 virtual nodes on each of 100 servers: a binary
//! search over 100,000 points), jump hash (100 buckets) and rendezvous (100 servers), each over
//! the same precomputed key hashes. Each figure is the best of many short rounds (20,000
//! lookups each), so that a busy machine's preemptions, which land in some rounds and not
//! others, do not inflate it.

use std::hint::black_box;
use std::time::Instant;

use algorithms::hashing::hash::{mix64, HashFn};
use algorithms::hashing::jump::jump;
use algorithms::hashing::rendezvous::rendezvous;
use algorithms::hashing::ring::{Ring, RingMember};

const KEYS: u64 = 2_000_000;
const ROUND_KEYS: usize = 20_000;

/// Best ns per lookup over the rounds, and a checksum so the work is not optimized away.
fn measure(name: &str, keys: &[u64], f: impl Fn(u64) -> usize) {
    let mut best = f64::INFINITY;
    let mut sum = 0usize;
    for chunk in keys.chunks(ROUND_KEYS) {
        let t = Instant::now();
        for k in chunk {
            sum = sum.wrapping_add(f(black_box(*k)));
        }
        best = best.min(t.elapsed().as_nanos() as f64 / chunk.len() as f64);
    }
    println!("{name:<44} {best:>7.1} ns/lookup   (checksum {sum})");
}

fn main() {
    let keys: Vec<u64> = (0..KEYS).map(mix64).collect();
    let servers: Vec<usize> = (0..100).collect();
    let members: Vec<RingMember> = servers
        .iter()
        .map(|&node| RingMember { node, weight: 1.0 })
        .collect();
    let t = Instant::now();
    let ring = Ring::new(&members, 1000, 42, HashFn::Stable);
    println!(
        "ring build: {} points in {:.1} ms",
        ring.len(),
        t.elapsed().as_secs_f64() * 1e3
    );
    measure("ring, 1,000 vnodes x 100 servers", &keys, |k| {
        ring.lookup(k).0
    });
    let small = Ring::new(&members, 100, 42, HashFn::Stable);
    measure("ring, 100 vnodes x 100 servers", &keys, |k| {
        small.lookup(k).0
    });
    measure("jump, 100 buckets", &keys, |k| jump(k, 100).0 as usize);
    measure("rendezvous, 100 servers", &keys, |k| {
        rendezvous(k, &servers, 42).0
    });
    measure(
        "key hash (StableHasher over \"k<i>\")",
        &keys[..200_000],
        |k| HashFn::Stable.key(&format!("k{k}")) as usize,
    );
}
