//! Seeded randomness split into independent streams, one per concern.
//!
//! Each stream is a ChaCha8 generator whose seed is derived from the run's seed and a fixed
//! stream label, so drawing more from the network stream never shifts the faults, the workload
//! or any node's own draws. Adding a node adds a stream without touching the others.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::hash::StableHasher;

/// The generator used everywhere in a run.
pub type SimRng = ChaCha8Rng;

/// The concerns that draw randomness, each from its own stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Latency, loss, duplication and reordering of messages.
    Network,
    /// Scripted fault choices (which minority, which halves) and the nemesis.
    Faults,
    /// The operations clients are asked to perform and their think times.
    Workload,
    /// Per-node clock offsets and drifts drawn from the scenario's bounds.
    Clocks,
    /// Swarm testing: the per-seed fault mix and cluster size.
    Swarm,
    /// A node's own stream (election timeouts, tokens, ...), by node index.
    Node(usize),
}

/// Derives the generator of one stream from the run's seed.
pub fn stream(seed: u64, which: Stream) -> SimRng {
    let mut h = StableHasher::new();
    h.write_u64(seed);
    match which {
        Stream::Network => h.write_u64(1),
        Stream::Faults => h.write_u64(2),
        Stream::Workload => h.write_u64(3),
        Stream::Clocks => h.write_u64(4),
        Stream::Swarm => h.write_u64(5),
        Stream::Node(i) => {
            h.write_u64(100);
            h.write_u64(i as u64);
        }
    }
    let a = h.finish();
    h.write_u64(0x5eed);
    let b = h.finish();
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&a.to_le_bytes());
    key[8..16].copy_from_slice(&b.to_le_bytes());
    key[16..24].copy_from_slice(&seed.to_le_bytes());
    ChaCha8Rng::from_seed(key)
}
