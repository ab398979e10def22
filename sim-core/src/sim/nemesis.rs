//! The random nemesis: faults drawn from the seed at exponential intervals.

use rand::Rng;

use super::*;
use crate::faults::{FaultAction, NemesisKind, NodeRef, PartitionKind};
use crate::process::Process;
use crate::rng::SimRng;
use crate::scenario::Drift;
use crate::time::{Duration, Nanos, SignedDuration, MS};

impl<P: Process> Sim<P> {
    pub(crate) fn nemesis_tick(&mut self) {
        if !self.world.nemesis_on {
            return;
        }
        let Some(nem) = self.cfg.nemesis.clone() else {
            return;
        };
        let rng = &mut self.world.fault_rng;
        let kind = nem.kinds[rng.random_range(0..nem.kinds.len())];
        let span = (nem.duration.0 as f64 * rng.random_range(0.5..1.5)) as Nanos;
        let n = self.world.servers_count;
        let down = (0..n)
            .filter(|i| !self.world.up[*i] || self.world.paused[*i])
            .count();
        let may_take_down = down < (n - 1) / 2 + usize::from(n <= 2) && n > 1;
        let now = self.world.now;
        match kind {
            NemesisKind::Partition => {
                let kinds = [
                    PartitionKind::Isolate,
                    PartitionKind::Split,
                    PartitionKind::Bridge,
                    PartitionKind::OneWay,
                    PartitionKind::Halves,
                ];
                let k = kinds[self.world.fault_rng.random_range(0..kinds.len())];
                let cut = self.partition(k, None, &[]);
                self.record_partition(cut, Some(Duration(span)));
                self.world
                    .push(now + span, Event::HealIf(self.world.partition_gen));
            }
            NemesisKind::Crash if may_take_down => {
                if let Some(x) = self.resolve(&NodeRef::Role("random".into())) {
                    self.crash(x);
                    self.record_nemesis(FaultAction::Crash {
                        node: NodeRef::Index(x),
                        for_: Some(Duration(span)),
                    });
                    self.undo_after(
                        Some(span),
                        FaultAction::Restart {
                            node: NodeRef::Index(x),
                        },
                    );
                }
            }
            NemesisKind::Pause if may_take_down => {
                if let Some(x) = self.resolve(&NodeRef::Role("random".into())) {
                    self.pause(x);
                    self.record_nemesis(FaultAction::Pause {
                        node: NodeRef::Index(x),
                        for_: Some(Duration(span)),
                    });
                    self.undo_after(
                        Some(span),
                        FaultAction::Resume {
                            node: NodeRef::Index(x),
                        },
                    );
                }
            }
            NemesisKind::Clock => {
                let x = self.world.fault_rng.random_range(0..n);
                if self.world.fault_rng.random_bool(0.5) {
                    let m = nem.clock_step_max.0 as i64;
                    let by = self.world.fault_rng.random_range(-m..=m);
                    self.step_clock(x, by);
                    if by != 0 {
                        self.record_nemesis(FaultAction::ClockStep {
                            node: NodeRef::Index(x),
                            by: SignedDuration(by),
                        });
                    }
                } else {
                    let dm = nem.drift_max.0;
                    let d = if dm > 0.0 {
                        self.world.fault_rng.random_range(-dm..=dm)
                    } else {
                        0.0
                    };
                    let old = self.world.clocks[x].drift();
                    self.world.cover("clock_drift");
                    self.set_drift(x, d, "set to");
                    self.record_nemesis(FaultAction::ClockDrift {
                        node: NodeRef::Index(x),
                        drift: Drift(d),
                    });
                    self.world.push(now + span, Event::DriftReset(x, old));
                }
            }
            NemesisKind::Clog => {
                let x = self.world.fault_rng.random_range(0..n);
                self.clog(x);
                self.record_nemesis(FaultAction::Clog {
                    node: NodeRef::Index(x),
                    for_: Some(Duration(span)),
                });
                self.undo_after(
                    Some(span),
                    FaultAction::Unclog {
                        node: NodeRef::Index(x),
                    },
                );
            }
            NemesisKind::Swizzle => self.swizzle(None, (span / 10).max(MS), span),
            NemesisKind::Crash | NemesisKind::Pause => {}
        }
        let gap = exp_draw(&mut self.world.fault_rng, nem.interval.0);
        self.world.push(now + gap.max(1), Event::NemesisTick);
    }
}

impl<P: Process> Sim<P> {
    /// Records a nemesis fault as it would be scripted, at the current time.
    fn record_nemesis(&mut self, action: FaultAction) {
        let at = self.world.now;
        self.world.record_applied(at, action);
    }
}

pub(crate) fn exp_draw(rng: &mut SimRng, mean: Nanos) -> Nanos {
    let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    (-(mean as f64) * libm::log(u)) as Nanos
}
