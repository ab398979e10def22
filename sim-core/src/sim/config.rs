//! How a run is configured: run options, the resolved scenario, and swarm draws.

use rand::Rng;

use crate::faults::{NemesisConfig, NemesisKind};
use crate::network::{NetworkConfig, Probability};
use crate::rng::{stream, SimRng, Stream};
use crate::scenario::{Expect, Scenario, WorkloadConfig};
use crate::time::{fmt_ns, Duration, Nanos};

/// How a run is carried out (not what it simulates).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Keep every trace event (for `--trace FILE` and reports).
    pub keep_trace: bool,
    /// Let the seed draw the fault mix and cluster size within the scenario's bounds.
    pub swarm: bool,
    /// Keep running after the first violation (by default the run stops there).
    pub continue_after_violation: bool,
    /// Keep running this long after the first violation, then stop: a report draws what
    /// followed (Raft's overwritten entry) from such a run, while its verdict, trace hash and
    /// reproduce line stay those of the run stopped at the violation. The run is cut there,
    /// so end checks and metric assertions are not judged. `None`: stop at the violation (or
    /// run to the end with `continue_after_violation`).
    pub run_after_violation_ns: Option<Nanos>,
    /// Bound on a kept trace's memory in bytes (None: [`crate::trace::TRACE_BYTES_MAX_DEFAULT`]).
    pub trace_bytes_max: Option<u64>,
}

/// The resolved configuration of one run: the scenario, possibly changed by swarm testing.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The scenario's name.
    pub name: String,
    /// The scenario file.
    pub path: String,
    /// The algorithm.
    pub algorithm: String,
    /// The seed.
    pub seed: u64,
    /// Number of servers.
    pub servers_count: usize,
    /// End of the run.
    pub duration_ns: Nanos,
    /// Start of the quiet period.
    pub quiet_ns: Nanos,
    /// Whether the quiet period restarts crashed nodes.
    pub quiet_restarts: bool,
    /// The liveness bound after the quiet period begins, when the phase is on.
    pub liveness_within_ns: Option<Nanos>,
    /// Event budget.
    pub max_events: u64,
    /// Network behaviour.
    pub network: NetworkConfig,
    /// Clients.
    pub workload: WorkloadConfig,
    /// Random faults.
    pub nemesis: Option<NemesisConfig>,
    /// What the scenario expects.
    pub expect: Expect,
    /// Swarm: the drawn configuration, readable.
    pub derived: Option<String>,
    /// The scenario as loaded.
    pub scenario: Scenario,
    /// Run options.
    pub options: RunOptions,
}

impl SimConfig {
    /// Resolves a scenario for one seed; with `options.swarm` the seed also draws the fault
    /// mix and the cluster size.
    pub fn new(sc: &Scenario, seed: u64, options: &RunOptions) -> SimConfig {
        let mut cfg = SimConfig {
            name: sc.name.clone(),
            path: sc.path().to_string(),
            algorithm: sc.algorithm.clone(),
            seed,
            servers_count: sc.nodes,
            duration_ns: sc.duration.0,
            quiet_ns: sc.duration.0 - sc.quiet.0,
            quiet_restarts: sc.quiet_restarts,
            // The registry fills `within` from the algorithm at load time; a library caller that
            // skipped that gets the default bound, kept inside the quiet period so that the
            // end checks still see a settled system.
            liveness_within_ns: sc.liveness_on().then(|| {
                sc.liveness.within.map(|w| w.0).unwrap_or(
                    crate::assertion::DEFAULT_LIVENESS_WITHIN
                        .0
                        .min(sc.quiet.0 / 2),
                )
            }),
            max_events: sc.max_events,
            network: sc.network.clone(),
            workload: sc.workload.clone(),
            nemesis: sc.nemesis.clone(),
            expect: sc.expect,
            derived: None,
            scenario: sc.clone(),
            options: options.clone(),
        };
        if options.swarm {
            cfg.draw_swarm();
        }
        cfg
    }

    /// Swarm testing (as in TigerBeetle's VOPR): each seed switches fault kinds on and off and
    /// scales their rates, so that different seeds explore different mixes.
    pub(crate) fn draw_swarm(&mut self) {
        let mut rng = stream(self.seed, Stream::Swarm);
        if let Some([lo, hi]) = self.scenario.swarm.nodes {
            self.servers_count = rng.random_range(lo..=hi);
        }
        let base = self
            .nemesis
            .clone()
            .unwrap_or_else(NemesisConfig::swarm_base);
        let offered = if base.kinds.is_empty() {
            NemesisKind::ALL.to_vec()
        } else {
            base.kinds.clone()
        };
        let mut kinds: Vec<NemesisKind> = offered
            .iter()
            .copied()
            .filter(|_| rng.random_bool(0.5))
            .collect();
        if kinds.is_empty() {
            kinds.push(offered[rng.random_range(0..offered.len())]);
        }
        let scale = |rng: &mut SimRng, d: Duration| {
            Duration(((d.0 as f64) * libm::pow(2.0, rng.random_range(-2.0..=2.0))) as Nanos)
        };
        let interval = scale(&mut rng, base.interval);
        let duration = scale(&mut rng, base.duration);
        let loss = (self.network.loss.0 * rng.random_range(0.0..=2.0)).min(1.0);
        self.network.loss = Probability(loss);
        let names: Vec<&str> = kinds.iter().map(|k| kind_name(*k)).collect();
        self.derived = Some(format!(
            "nodes={} nemesis=[{}] interval={} fault_duration={} loss={:.4}",
            self.servers_count,
            names.join(","),
            fmt_ns(interval.0),
            fmt_ns(duration.0),
            loss
        ));
        self.nemesis = Some(NemesisConfig {
            kinds,
            interval,
            duration,
            ..base
        });
    }

    /// Total nodes: servers then clients.
    pub fn nodes_count(&self) -> usize {
        self.servers_count + self.workload.clients
    }
}

pub(crate) fn kind_name(k: NemesisKind) -> &'static str {
    match k {
        NemesisKind::Partition => "partition",
        NemesisKind::Crash => "crash",
        NemesisKind::Pause => "pause",
        NemesisKind::Clock => "clock",
        NemesisKind::Clog => "clog",
        NemesisKind::Swizzle => "swizzle",
    }
}
