//! Where each key lives, for one membership view: the four strategies behind one type, and the
//! key space they place.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::hash::HashFn;
use super::jump::jump_present;
use super::rendezvous::rendezvous;
use super::ring::{Ring, RingMember};

/// How keys are spread over servers (`strategy` in `[params]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The ring with virtual nodes.
    Ring,
    /// Jump consistent hash over slots = node ids.
    Jump,
    /// Highest random weight.
    Rendezvous,
    /// The ring with bounded loads: no server takes more than ceil(c x average) keys.
    Bounded,
}

/// Everything a placement is built from, apart from the members.
#[derive(Clone, Debug)]
pub struct PlacementConfig {
    /// The strategy.
    pub strategy: Strategy,
    /// Ring points per unit of weight.
    pub vnodes: usize,
    /// Per-server weights (ring and bounded); absent servers weigh 1.
    pub weights: BTreeMap<usize, f64>,
    /// Bounded loads' factor c.
    pub c: f64,
    /// Salt of ring positions and rendezvous scores, so that each seed gets another ring.
    pub salt: u64,
    /// The hash.
    pub hash: HashFn,
    /// The bug: place by `hash mod n` over the sorted members instead of the strategy.
    pub modulo: bool,
    /// Jump's bucket count: every server that may ever be a member (the cluster size). Absent
    /// buckets re-jump, so joins and leaves anywhere move only the keys they must.
    pub slots: usize,
}

impl PlacementConfig {
    /// A server's weight.
    pub fn weight(&self, node: usize) -> f64 {
        self.weights.get(&node).copied().unwrap_or(1.0)
    }
}

/// The keys `k0..k{n-1}` of a workload, hashed once.
#[derive(Clone, Debug)]
pub struct KeySpace {
    /// `hashes[i]` is the hash of the key named `k{i}`.
    pub hashes: Vec<u64>,
}

impl KeySpace {
    /// Hashes `k0..k{count-1}` with `hash`.
    pub fn new(count: usize, hash: HashFn) -> KeySpace {
        KeySpace {
            hashes: (0..count).map(|i| hash.key(&format!("k{i}"))).collect(),
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Parses a workload key name `k<i>` into its index.
pub fn key_index(name: &str) -> Option<usize> {
    name.strip_prefix('k')?.parse().ok()
}

enum Kind {
    Ring(Ring),
    Jump {
        slots: u32,
        present: Vec<bool>,
    },
    Rendezvous,
    Bounded {
        ring: Ring,
        table: Vec<(usize, u32)>,
    },
    Modulo,
}

/// The placement of keys for one set of members.
pub struct Placement {
    members: Vec<usize>,
    salt: u64,
    kind: Kind,
    /// Owner and lookup steps of every key of the key space, computed once at build (so that
    /// measuring a view and serving requests cost a table read).
    table: Vec<(usize, u32)>,
}

impl Placement {
    /// Builds the placement for `members` (node ids; sorted here). Bounded loads assigns the
    /// whole key space at once, in key order, since a key's server depends on the others.
    pub fn build(cfg: &PlacementConfig, members: &[usize], keys: &KeySpace) -> Placement {
        let mut members = members.to_vec();
        members.sort_unstable();
        members.dedup();
        assert!(!members.is_empty(), "a placement needs at least one member");
        let ring_of = |m: &[usize]| {
            let rm: Vec<RingMember> = m
                .iter()
                .map(|&node| RingMember {
                    node,
                    weight: cfg.weight(node),
                })
                .collect();
            Ring::new(&rm, cfg.vnodes, cfg.salt, cfg.hash)
        };
        let kind = if cfg.modulo {
            Kind::Modulo
        } else {
            match cfg.strategy {
                Strategy::Ring => Kind::Ring(ring_of(&members)),
                Strategy::Jump => {
                    let slots = cfg.slots.max(members[members.len() - 1] + 1);
                    let mut present = vec![false; slots];
                    for m in &members {
                        present[*m] = true;
                    }
                    Kind::Jump {
                        slots: slots as u32,
                        present,
                    }
                }
                Strategy::Rendezvous => Kind::Rendezvous,
                Strategy::Bounded => {
                    let ring = ring_of(&members);
                    let table = bounded_table(&ring, &members, keys, cfg.c);
                    Kind::Bounded { ring, table }
                }
            }
        };
        let mut p = Placement {
            members,
            salt: cfg.salt,
            kind,
            table: Vec::new(),
        };
        p.table = match &p.kind {
            Kind::Bounded { table, .. } => table.clone(),
            _ => (0..keys.len())
                .map(|i| p.compute(i, keys.hashes[i]))
                .collect(),
        };
        p
    }

    /// The members, sorted.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// The ring, for strategies that have one.
    pub fn ring(&self) -> Option<&Ring> {
        match &self.kind {
            Kind::Ring(r) | Kind::Bounded { ring: r, .. } => Some(r),
            _ => None,
        }
    }

    /// The owner of key `index` (hash `h`), and the lookup's cost in steps (ring: binary
    /// search halvings; jump: loop turns; rendezvous: members scored; bounded: the ring
    /// search plus the points walked past full servers).
    #[inline]
    pub fn owner(&self, index: usize, h: u64) -> (usize, u32) {
        match self.table.get(index) {
            Some(x) => *x,
            None => self.compute(index, h),
        }
    }

    /// [`Placement::owner`] without the table.
    pub fn compute(&self, index: usize, h: u64) -> (usize, u32) {
        match &self.kind {
            Kind::Ring(r) => r.lookup(h),
            Kind::Jump { slots, present } => {
                let (s, steps) = jump_present(h, *slots, |s| present[s as usize]);
                (s as usize, steps)
            }
            Kind::Rendezvous => {
                let (i, steps) = rendezvous(h, &self.members, self.salt);
                (self.members[i], steps)
            }
            Kind::Bounded { ring, table } => match table.get(index) {
                Some(x) => *x,
                // A key outside the key space is placed without a bound.
                None => ring.lookup(h),
            },
            Kind::Modulo => (self.members[(h % self.members.len() as u64) as usize], 1),
        }
    }
}

/// Bounded loads (Mirrokni, Thorup, Zadimoghaddam): keys in index order; each goes to the
/// first point at or after its hash whose server holds fewer than ceil(c x keys / servers).
fn bounded_table(ring: &Ring, members: &[usize], keys: &KeySpace, c: f64) -> Vec<(usize, u32)> {
    let cap = (c * keys.len() as f64 / members.len() as f64).ceil() as usize;
    let cap = cap.max(1);
    let mut load: BTreeMap<usize, usize> = members.iter().map(|m| (*m, 0)).collect();
    let mut table = Vec::with_capacity(keys.len());
    for h in &keys.hashes {
        let (mut i, mut steps) = ring.successor(*h);
        loop {
            let owner = ring.owner_of_point(i);
            let l = load.get_mut(&owner).expect("ring owners are members");
            if *l < cap {
                *l += 1;
                table.push((owner, steps));
                break;
            }
            i = (i + 1) % ring.len();
            steps += 1;
        }
    }
    debug_assert!(load.values().all(|l| *l <= cap));
    table
}
