//! Partition shapes: isolate, split, bridge, one-way, halves and explicit links.

use rand::seq::SliceRandom;
use rand::Rng;

use super::*;
use crate::faults::PartitionKind;
use crate::process::{NodeId, Process};
use crate::rng::SimRng;

impl<P: Process> Sim<P> {
    /// Cuts the links of a shape (after healing the previous one) and returns them.
    pub(crate) fn partition(
        &mut self,
        kind: PartitionKind,
        node: Option<NodeId>,
        cut: &[[usize; 2]],
    ) -> Vec<[usize; 2]> {
        let n = self.world.servers_count;
        let rng = &mut self.world.fault_rng;
        let pick = |rng: &mut SimRng| node.unwrap_or_else(|| rng.random_range(0..n));
        // side[i]: 0 or 1 for two-sided shapes; 2 = the bridge, which reaches both sides.
        let mut cuts: Vec<(usize, usize)> = Vec::new();
        let detail;
        let two_sides = |side: &[u8], cuts: &mut Vec<(usize, usize)>| {
            for a in 0..n {
                for b in 0..n {
                    if side[a] != 2 && side[b] != 2 && side[a] != side[b] {
                        cuts.push((a, b));
                    }
                }
            }
        };
        let describe = |side: &[u8]| {
            let group = |s: u8| {
                side.iter()
                    .enumerate()
                    .filter(|(_, x)| **x == s)
                    .map(|(i, _)| format!("n{i}"))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            format!("{{{}}} | {{{}}}", group(0), group(1))
        };
        match kind {
            PartitionKind::Isolate => {
                let x = pick(rng);
                let side: Vec<u8> = (0..n).map(|i| (i == x) as u8).collect();
                two_sides(&side, &mut cuts);
                detail = format!("isolate n{x}");
            }
            PartitionKind::Split | PartitionKind::Halves => {
                let mut order: Vec<usize> = (0..n).collect();
                order.shuffle(rng);
                let small = if kind == PartitionKind::Split {
                    (n - 1) / 2
                } else {
                    n / 2
                };
                if let (Some(x), PartitionKind::Split) = (node, kind) {
                    order.retain(|i| *i != x);
                    order.insert(0, x);
                }
                let mut side = vec![1u8; n];
                for i in order.iter().take(small.max(1)) {
                    side[*i] = 0;
                }
                two_sides(&side, &mut cuts);
                detail = format!(
                    "{} {}",
                    if kind == PartitionKind::Split {
                        "split"
                    } else {
                        "halves"
                    },
                    describe(&side)
                );
            }
            PartitionKind::Bridge => {
                let x = pick(rng);
                let mut others: Vec<usize> = (0..n).filter(|i| *i != x).collect();
                others.shuffle(rng);
                let mut side = vec![1u8; n];
                for i in others.iter().take(others.len() / 2) {
                    side[*i] = 0;
                }
                side[x] = 2;
                two_sides(&side, &mut cuts);
                detail = format!("bridge n{x} between {}", describe(&side));
            }
            PartitionKind::OneWay => {
                let x = pick(rng);
                cuts.extend((0..n).filter(|b| *b != x).map(|b| (x, b)));
                detail = format!("one-way: nothing n{x} sends reaches the other servers");
            }
            PartitionKind::Links => {
                cuts.extend(cut.iter().map(|[a, b]| (*a, *b)));
                detail = format!(
                    "cut links {}",
                    cut.iter()
                        .map(|[a, b]| format!("n{a}->n{b}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
        }
        self.world.links.heal();
        let mut touched: Vec<usize> = Vec::new();
        let mut done: Vec<[usize; 2]> = Vec::new();
        // Shapes cut only server-server links; `links` may also name clients (a client cut off
        // from some servers, as in Redlock's "D and E are unreachable").
        let reach = if kind == PartitionKind::Links {
            self.procs.len()
        } else {
            n
        };
        for (a, b) in cuts {
            if a < reach && b < reach {
                self.world.links.set_cut(a, b, true);
                done.push([a, b]);
                touched.push(a);
                touched.push(b);
            }
        }
        touched.sort_unstable();
        touched.dedup();
        self.world.bites.set_partition(true);
        self.world.partition_gen += 1;
        let label = format!("partition:{}", partition_name(kind));
        self.world.cover(&label);
        self.world.partition_label = Some(label);
        self.world.log_fault("partition", touched, detail);
        done
    }
}

pub(crate) fn partition_name(k: PartitionKind) -> &'static str {
    match k {
        PartitionKind::Isolate => "isolate",
        PartitionKind::Split => "split",
        PartitionKind::Bridge => "bridge",
        PartitionKind::OneWay => "one_way",
        PartitionKind::Halves => "halves",
        PartitionKind::Links => "links",
    }
}
