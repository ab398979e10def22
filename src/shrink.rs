//! `distsim shrink`: from a failing run, a small scripted scenario that still fails the same way.
//!
//! The failing run's faults (scripted and nemesis alike, every random choice made:
//! [`sim_core::RunResult::applied_faults`]) become a `[[faults]]` script with no nemesis, the
//! seed and any swarm draws written in. That scenario must fail with the same violation, or
//! there is nothing to shrink from. Then, in turn and for as long as the budget of runs lasts:
//! delta debugging (Zeller's ddmin) over the faults, each fault's `for` and time, the workload
//! (clients, operations per client, rate, duration, quiet period), the cluster size, and the
//! network's randomness (loss, duplication, reordering). Every candidate is the text of a
//! scenario file, loaded and run exactly as `distsim run FILE` would, so the file written at
//! the end fails on its own; it is loaded from disk and run once more before the command
//! reports success. The same input gives the same file, byte for byte: candidates are tried
//! in a fixed order and judged only by deterministic runs.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use clap::Args;
use serde::Serialize;
use sim_core::faults::{FaultAction, FaultTime, NodeRef, PartitionKind, ScriptedFault};
use sim_core::time::{fmt_ns, Duration, Nanos, MS, SEC};
use sim_core::{EventType, RunOptions, RunResult, Scenario, SimConfig, Verdict, ViolationKind};

use crate::{bad_input, load, shell_quote, BUILD, EXIT_PASS, EXIT_UNKNOWN, EXIT_VIOLATION};

/// Arguments of `distsim shrink`.
#[derive(Args)]
pub struct ShrinkArgs {
    /// The scenario file of the failing run (TOML or JSON).
    scenario: String,
    /// The failing seed (default: the scenario's own).
    #[arg(long)]
    seed: Option<u64>,
    /// The seed failed under `--swarm`: its drawn cluster size, loss and fault mix are frozen
    /// into the shrunk file.
    #[arg(long)]
    swarm: bool,
    /// Where to write the shrunk scenario (TOML; default `NAME-seedN-shrunk.toml` here).
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
    /// Most runs to spend (each candidate is one run); the best scenario found so far is
    /// written when they run out.
    #[arg(long, value_name = "K", default_value_t = 300)]
    max_runs: u64,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// What makes two failures "the same": the kind of the first violation, the check that found
/// it (a node's own report counts as "node", whichever node it was) and, when its message opens
/// with one, the name of the rule before the first colon ("election safety").
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Signature {
    /// The violation kind.
    pub kind: ViolationKind,
    /// The check that found it.
    pub source: String,
    /// The rule's name, when the message opens with one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Signature {
    /// The signature of a run's first violation, if it failed.
    pub fn of(r: &RunResult) -> Option<Signature> {
        if r.verdict != Verdict::Violation {
            return None;
        }
        let v = r.violations.first()?;
        let node_report = v
            .source
            .strip_prefix('n')
            .is_some_and(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
        let rule = v.message.split_once(':').map(|(head, _)| head.trim());
        let rule = rule.filter(|h| {
            !h.is_empty()
                && h.len() <= 40
                && h.chars().any(|c| c.is_ascii_lowercase())
                && h.chars()
                    .all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-')
        });
        Some(Signature {
            kind: v.kind,
            source: if node_report {
                "node".into()
            } else {
                v.source.clone()
            },
            rule: rule.map(str::to_string),
        })
    }
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{} violation found by {}",
            self.kind.as_str(),
            self.source
        )?;
        if let Some(r) = &self.rule {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// The parts of a scenario that shrinking changes; the rest is kept from the original file.
#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    /// The seed written into the file.
    pub seed: u64,
    /// The fault script, in time order.
    pub faults: Vec<ScriptedFault>,
    /// Servers.
    pub nodes: usize,
    /// The run's length, quiet period included.
    pub duration_ns: Nanos,
    /// The quiet period.
    pub quiet_ns: Nanos,
    /// Clients.
    pub clients: usize,
    /// Operations per client (0: no limit).
    pub limit: u64,
    /// Mean think time between a client's operations.
    pub think_ns: Nanos,
    /// Message loss, duplication and reordering probabilities.
    pub loss: f64,
    /// Duplication probability.
    pub duplicate: f64,
    /// Reordering probability.
    pub reorder: f64,
}

/// The size of a run, printed before and after.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Size {
    /// Faults carried out (before) or scripted (after).
    pub faults: usize,
    /// Operations invoked.
    pub operations: usize,
    /// Events processed.
    pub events: u64,
    /// Simulated time.
    pub simulated_ns: Nanos,
    /// Servers.
    pub servers: usize,
    /// Clients.
    pub clients: usize,
}

impl Size {
    fn of(r: &RunResult, faults: usize) -> Size {
        Size {
            faults,
            operations: r
                .history
                .events
                .iter()
                .filter(|e| e.kind == EventType::Invoke)
                .count(),
            events: r.events,
            simulated_ns: r.simulated_ns,
            servers: r.servers,
            clients: r.clients,
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let n = |k: u64, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
        write!(
            f,
            "{}, {}, {} ({} simulated; {}, {})",
            n(self.faults as u64, "fault", "faults"),
            n(self.operations as u64, "operation", "operations"),
            n(self.events, "event", "events"),
            fmt_ns(self.simulated_ns),
            n(self.servers as u64, "server", "servers"),
            n(self.clients as u64, "client", "clients")
        )
    }
}

/// What `--json` prints.
#[derive(Serialize)]
struct ShrinkReport {
    build: String,
    scenario: String,
    seed: u64,
    swarm: bool,
    violation: Signature,
    message: String,
    before: Size,
    after: Size,
    runs: u64,
    max_runs: u64,
    budget_exhausted: bool,
    out: String,
    command: String,
}

/// The `shrink` command.
pub fn cmd_shrink(a: ShrinkArgs) -> u8 {
    let sc = match load(&a.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let seed = a.seed.unwrap_or(sc.seed);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| format!("{}-seed{seed}-shrunk.toml", sc.name));
    let same = |p: &str| std::fs::canonicalize(p).ok();
    if same(&out).is_some() && same(&out) == same(&a.scenario) {
        return bad_input(format!(
            "--out {out} is the scenario being shrunk; write the shrunk scenario to another file"
        ));
    }
    if out.ends_with(".json") {
        return bad_input(format!(
            "--out {out}: the shrunk scenario is written as TOML; give a file ending in .toml"
        ));
    }
    let opts = RunOptions {
        swarm: a.swarm,
        ..Default::default()
    };
    let first = match algorithms::run(&sc, seed, &opts) {
        Ok(r) => r,
        Err(e) => return bad_input(e),
    };
    let Some(target) = Signature::of(&first) else {
        let code = if first.verdict == Verdict::Unknown {
            EXIT_UNKNOWN
        } else {
            crate::EXIT_BAD_INPUT
        };
        eprintln!(
            "error: {} seed {seed}{} gives verdict {}, not a violation: there is nothing to shrink; find a failing seed with `distsim sweep {}`",
            a.scenario,
            if a.swarm { " --swarm" } else { "" },
            first.verdict.as_str(),
            shell_quote(&a.scenario)
        );
        return code;
    };
    let mut s = match Shrinker::new(&sc, seed, &opts, &first, target, &a, &out) {
        Ok(s) => s,
        Err(e) => return bad_input(e),
    };
    let before = Size::of(&first, first.applied_faults.len());
    let frozen = s.frozen_case(&sc, seed, &opts, &first);
    if !s.try_case(frozen) {
        s.bar.finish_and_clear();
        eprintln!(
            "error: {} seed {seed}: the faults this run carried out, replayed as a script without the nemesis, do not fail with the same {}; it cannot be shrunk from a script",
            a.scenario, s.target
        );
        return EXIT_VIOLATION;
    }
    s.ops_max = s.best_ops;
    s.shrink();
    s.bar.finish_and_clear();
    finish(&a, &s, seed, before)
}

/// Writes the result, loads it back from disk, checks that it fails alone, and prints.
fn finish(a: &ShrinkArgs, s: &Shrinker, seed: u64, before: Size) -> u8 {
    let text = s.render(&s.best);
    if let Err(e) = std::fs::write(&s.out, &text) {
        return bad_input(format!("cannot write {}: {e}", s.out));
    }
    let check = load(&s.out).and_then(|sc| crate::run_once(&sc, sc.seed, &RunOptions::default()));
    let r = match check {
        Ok(r) => r,
        Err(code) => return code,
    };
    if Signature::of(&r).as_ref() != Some(&s.target) {
        eprintln!(
            "error: {} was written, but run alone it gives {} instead of the same {}; this is a bug in distsim shrink",
            s.out,
            r.verdict.as_str(),
            s.target
        );
        return EXIT_VIOLATION;
    }
    let after = Size::of(&r, s.best.faults.len());
    let command = format!("distsim run {}", shell_quote(&s.out));
    let message = r.violations[0].message.clone();
    if a.json {
        let report = ShrinkReport {
            build: BUILD.into(),
            scenario: a.scenario.clone(),
            seed,
            swarm: a.swarm,
            violation: s.target.clone(),
            message,
            before,
            after,
            runs: s.runs,
            max_runs: s.max_runs,
            budget_exhausted: s.exhausted,
            out: s.out.clone(),
            command,
        };
        outln!(
            "{}",
            serde_json::to_string(&report).expect("report serializes")
        );
        return EXIT_PASS;
    }
    outln!(
        "shrink {} seed {seed}{}: {}",
        a.scenario,
        if a.swarm { " --swarm" } else { "" },
        s.target
    );
    outln!("  {message}");
    outln!("before: {before}");
    outln!("after:  {after}");
    outln!(
        "{} runs of at most {}{}",
        s.runs,
        s.max_runs,
        if s.exhausted {
            " (budget spent: a larger --max-runs may shrink further)"
        } else {
            ""
        }
    );
    outln!("wrote {}; run it with: {command}", s.out);
    EXIT_PASS
}

/// The search: the best case so far, the runs spent, and a cache of judged texts.
struct Shrinker {
    /// The original file as a TOML table, without the parts a case sets.
    base: toml::Table,
    /// Comment lines opening the written file.
    header: Vec<String>,
    target: Signature,
    best: Case,
    /// Operations invoked by the best case's run (an upper bound for `limit`).
    best_ops: u64,
    /// Most operations an accepted candidate may invoke: those of the frozen script's run, so
    /// that dropping a fault never buys a longer history.
    ops_max: u64,
    runs: u64,
    max_runs: u64,
    exhausted: bool,
    /// Texts already judged, with their verdict: a candidate met twice is not run twice.
    seen: BTreeMap<String, bool>,
    out: String,
    bar: indicatif::ProgressBar,
    /// The algorithm's first role (Raft's `"leader"`, primary-backup's `"primary"`), which a
    /// fault's node may be named by.
    role: Option<&'static str>,
}

/// Most faults left by delta debugging that the passes for stubborn faults leave alone: a
/// handful, which a reader follows without help.
const HANDFUL: usize = 5;

/// Keys of the original file that a case writes, or that a script replaces.
const CASE_KEYS: &[&str] = &[
    "name", "seed", "nodes", "duration", "quiet", "expect", "faults", "nemesis", "swarm",
];

impl Shrinker {
    fn new(
        sc: &Scenario,
        seed: u64,
        opts: &RunOptions,
        first: &RunResult,
        target: Signature,
        a: &ShrinkArgs,
        out: &str,
    ) -> Result<Shrinker, String> {
        let src = sc
            .source
            .as_ref()
            .ok_or("the scenario has no source text")?;
        let mut base: toml::Table = match src.format {
            sim_core::scenario::Format::Toml => {
                toml::from_str(&src.text).map_err(|e| format!("{}: {e}", src.path))?
            }
            sim_core::scenario::Format::Json => {
                let v: serde_json::Value =
                    serde_json::from_str(&src.text).map_err(|e| format!("{}: {e}", src.path))?;
                toml::Table::try_from(v)
                    .map_err(|e| format!("{}: cannot be written as TOML ({e})", src.path))?
            }
        };
        for k in CASE_KEYS {
            base.remove(*k);
        }
        let cmd = format!(
            "distsim shrink {} --seed {seed}{}",
            shell_quote(&a.scenario),
            if opts.swarm { " --swarm" } else { "" }
        );
        let mut msg = truncate(&first.violations[0].message.replace(['\n', '\r'], " "), 300);
        if !msg.ends_with('.') {
            msg.push('.');
        }
        let text = format!(
            "Shrunk by `{cmd}` from a run with {} faults and {} operations. Run alone, it fails with the same {}. The original run's first violation: {} Expect: violation; run it with `distsim run FILE`.",
            first.applied_faults.len(),
            Size::of(first, 0).operations,
            target,
            msg,
        );
        let header = crate::list::wrap(&text, 90)
            .into_iter()
            .map(|l| format!("# {l}"))
            .collect();
        let bar = if a.quiet || a.json || !std::io::stderr().is_terminal() {
            indicatif::ProgressBar::hidden()
        } else {
            let pb = indicatif::ProgressBar::new(a.max_runs);
            pb.set_style(
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} runs, {msg}")
                    .expect("progress template is valid"),
            );
            pb
        };
        Ok(Shrinker {
            base,
            header,
            target,
            best: Case::from_scenario(sc, sc.nodes, &sc.network),
            best_ops: 0,
            ops_max: u64::MAX,
            runs: 0,
            max_runs: a.max_runs,
            exhausted: false,
            seen: BTreeMap::new(),
            out: out.to_string(),
            bar,
            role: algorithms::find(&sc.algorithm).and_then(|alg| alg.roles.first().copied()),
        })
        .map(|mut s| {
            s.count_run();
            s
        })
    }

    /// The run's faults as a script, the swarm draws frozen. A fault of the original script
    /// that named its node by a role (`node = "leader"`) keeps the role: it resolved to the
    /// node recorded, without drawing randomness, so the run is the same, and the fault keeps
    /// following the role when shrinking shifts who holds it.
    fn frozen_case(&self, sc: &Scenario, seed: u64, opts: &RunOptions, r: &RunResult) -> Case {
        let cfg = SimConfig::new(sc, seed, opts);
        let mut c = Case::from_scenario(sc, cfg.servers_count, &cfg.network);
        c.faults = r.applied_faults.clone();
        for f in &mut c.faults {
            let scripted = sc.faults.iter().find(|s| {
                s.at == f.at
                    && s.action.name() == f.action.name()
                    && !matches!(s.action, FaultAction::Partition { .. })
            });
            let role = scripted.and_then(|s| match s.action.clone().node_mut() {
                Some(NodeRef::Role(r)) if r != "random" => Some(NodeRef::Role(r.clone())),
                _ => None,
            });
            if let (Some(role), Some(node)) = (role, f.action.node_mut()) {
                *node = role;
            }
        }
        c.seed = seed;
        c.normalize();
        c
    }

    fn count_run(&mut self) {
        self.runs += 1;
        self.bar.set_position(self.runs);
    }

    /// Judges a candidate: its file text loaded and run as `distsim run` would; accepted (and
    /// made the best) when it fails with the target signature.
    fn try_case(&mut self, mut c: Case) -> bool {
        c.normalize();
        let text = self.render(&c);
        if let Some(ok) = self.seen.get(&text) {
            return *ok;
        }
        if self.runs >= self.max_runs {
            self.exhausted = true;
            return false;
        }
        self.count_run();
        let result = Scenario::parse(&self.out, &text)
            .map_err(|e| e.to_string())
            .and_then(|sc| {
                algorithms::run(&sc, sc.seed, &RunOptions::default()).map_err(|e| e.to_string())
            });
        let ops_max = self.ops_max;
        let ok = result.as_ref().is_ok_and(|r| {
            Signature::of(r).as_ref() == Some(&self.target)
                && Size::of(r, 0).operations as u64 <= ops_max
        });
        self.seen.insert(text, ok);
        if ok {
            let r = result.expect("accepted runs are runs");
            self.best_ops = Size::of(&r, 0).operations as u64;
            self.best = c;
            self.bar.set_message(format!(
                "{} faults, {} operations",
                self.best.faults.len(),
                self.best_ops
            ));
        }
        ok
    }

    /// Rounds of every phase, until a round changes nothing or the budget is spent.
    fn shrink(&mut self) {
        for _round in 0..4 {
            let start = self.best.clone();
            self.bar.set_message("faults (ddmin)");
            self.ddmin_faults();
            self.fault_times();
            self.workload();
            self.cluster();
            self.network();
            // More than a handful of faults that delta debugging could not drop, because
            // dropping any one shifts the rest of the run: named by the role they struck,
            // they follow it when an earlier fault goes, and may go themselves. Last in the
            // round, so that a small budget goes to the phases above first.
            if self.best.faults.len() > HANDFUL && self.by_role() {
                self.ddmin_faults();
            }
            if self.best == start || self.exhausted {
                break;
            }
        }
    }

    /// Delta debugging over the fault list (Zeller's ddmin): at coarse granularity keep one
    /// chunk alone; then drop chunks one by one, scanning on after each drop; when no chunk
    /// can go, halve the chunks, until single faults cannot go (1-minimal) or the budget is
    /// spent. Keeping a fine chunk alone rarely works, so it is tried at four chunks or fewer.
    fn ddmin_faults(&mut self) {
        if self.best.faults.is_empty() || self.try_faults(Vec::new()) {
            return;
        }
        let mut n = 2usize;
        while self.best.faults.len() >= 2 && !self.exhausted {
            let mut chunks = split(&self.best.faults, n);
            if n <= 4 {
                let alone = chunks
                    .iter()
                    .find(|c| self.try_faults(c.to_vec()))
                    .is_some();
                if alone {
                    n = 2;
                    continue;
                }
            }
            let mut removed = false;
            let mut i = 0;
            while i < chunks.len() && chunks.len() > 1 && !self.exhausted {
                let rest: Vec<ScriptedFault> = chunks
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .flat_map(|(_, c)| c.iter().cloned())
                    .collect();
                if self.try_faults(rest) {
                    chunks.remove(i);
                    removed = true;
                } else {
                    i += 1;
                }
            }
            let len = self.best.faults.len();
            if !removed {
                if n >= len {
                    break;
                }
                n = (n * 2).min(len);
            } else {
                n = n.min(len).max(2);
            }
        }
    }

    /// Names each fault's node by the algorithm's first role when it held it as the fault
    /// struck: a crash of n4 that was the leader then becomes a crash of `"leader"`. Resolving
    /// a role draws no randomness, so when every renamed fault hits the node it hit before the
    /// run is the same one and the candidate is accepted; what it buys is that the faults
    /// follow the role when an earlier fault is dropped and the elections shift, which lets
    /// delta debugging drop faults of a failure that hangs on who leads when (Raft's Figure 8).
    /// All faults are renamed in one candidate first, then each half of a rejected group, so
    /// that a script whose faults all struck the role costs one run. Returns whether any
    /// fault was renamed.
    fn by_role(&mut self) -> bool {
        let Some(role) = self.role else {
            return false;
        };
        self.bar.set_message("faults by role");
        let nodes = self.best.nodes;
        let group: Vec<usize> = (0..self.best.faults.len())
            .filter(|&i| role_form(&self.best.faults[i].action, role, nodes).is_some())
            .collect();
        self.rename_group(&group, role)
    }

    /// [`Self::by_role`] over the faults at `group` (indices into the best case's script,
    /// which renaming leaves in place).
    fn rename_group(&mut self, group: &[usize], role: &str) -> bool {
        if group.is_empty() || self.exhausted {
            return false;
        }
        let mut c = self.best.clone();
        for &i in group {
            if let Some(a) = role_form(&c.faults[i].action, role, c.nodes) {
                c.faults[i].action = a;
            }
        }
        if self.try_case(c) {
            return true;
        }
        if group.len() == 1 {
            return false;
        }
        let (a, b) = group.split_at(group.len() / 2);
        let first = self.rename_group(a, role);
        self.rename_group(b, role) || first
    }

    fn try_faults(&mut self, faults: Vec<ScriptedFault>) -> bool {
        let c = Case {
            faults,
            ..self.best.clone()
        };
        self.try_case(c)
    }

    /// Each fault shorter (`for` halved) and earlier (its time halved), then every time
    /// rounded to the millisecond, which reads better.
    fn fault_times(&mut self) {
        self.bar.set_message("fault times");
        for i in 0..self.best.faults.len() {
            for _ in 0..4 {
                let Some(f) = self.best.faults.get(i).and_then(|f| for_of(&f.action)) else {
                    break;
                };
                let shorter = round_ms(f / 2).max(MS);
                if shorter >= f || !self.try_fault(i, |x| set_for(&mut x.action, shorter)) {
                    break;
                }
            }
        }
        for i in 0..self.best.faults.len() {
            for _ in 0..2 {
                let Some(at) = self.best.faults.get(i).map(|f| f.at.0 .0) else {
                    break;
                };
                let earlier = round_ms(at / 2);
                if earlier >= at || !self.try_fault(i, |x| x.at = FaultTime(Duration(earlier))) {
                    break;
                }
            }
        }
        let mut c = self.best.clone();
        for f in &mut c.faults {
            f.at = FaultTime(Duration(round_ms(f.at.0 .0)));
            if let Some(d) = for_of(&f.action) {
                set_for(&mut f.action, round_ms(d).max(MS));
            }
        }
        if c != self.best {
            self.try_case(c);
        }
    }

    /// Tries the best case with fault `i` changed. The faults are re-sorted by time.
    fn try_fault(&mut self, i: usize, change: impl FnOnce(&mut ScriptedFault)) -> bool {
        let mut c = self.best.clone();
        change(&mut c.faults[i]);
        self.try_case(c)
    }

    /// Fewer clients, fewer operations per client, a lower rate, a shorter run and quiet period.
    fn workload(&mut self) {
        self.bar.set_message("workload");
        let b = self.best.clone();
        if b.clients > 0 {
            self.minimize(1, b.clients as u64, |c, v| c.clients = v as usize);
            let ops = self.best_ops.max(1);
            let limit = if self.best.limit == 0 {
                ops
            } else {
                self.best.limit.min(ops)
            };
            self.minimize(1, limit + 1, |c, v| c.limit = v);
            for _ in 0..3 {
                let think = self.best.think_ns.saturating_mul(2);
                if !self.try_case(Case {
                    think_ns: think,
                    ..self.best.clone()
                }) {
                    break;
                }
            }
        }
        // The active part (before the quiet period) no shorter than the last fault.
        let last = self
            .best
            .faults
            .iter()
            .map(|f| f.at.0 .0)
            .max()
            .unwrap_or(0);
        let active = self.best.duration_ns - self.best.quiet_ns;
        let lo = (last / MS + 1).min(active / MS);
        let quiet = self.best.quiet_ns;
        self.minimize_ms(lo, active, |c, v| c.duration_ns = v + quiet);
        if self.best.quiet_ns > 0 {
            let active = self.best.duration_ns - self.best.quiet_ns;
            self.minimize_ms(1, self.best.quiet_ns, |c, v| {
                c.quiet_ns = v;
                c.duration_ns = active + v;
            });
        }
    }

    /// Fewer servers, the faults renumbered (those on a removed server dropped).
    fn cluster(&mut self) {
        self.bar.set_message("cluster size");
        let n = self.best.nodes;
        for smaller in 1..n {
            let c = self.best.with_nodes(smaller);
            if self.try_case(c) {
                break;
            }
        }
    }

    /// Loss, duplication and reordering off where the failure does not need them.
    fn network(&mut self) {
        self.bar.set_message("network");
        if self.best.loss > 0.0 {
            self.try_case(Case {
                loss: 0.0,
                ..self.best.clone()
            });
        }
        if self.best.duplicate > 0.0 {
            self.try_case(Case {
                duplicate: 0.0,
                ..self.best.clone()
            });
        }
        if self.best.reorder > 0.0 {
            self.try_case(Case {
                reorder: 0.0,
                ..self.best.clone()
            });
        }
    }

    /// The smallest value in `lo..hi` that still fails (`hi` is the current one), found by
    /// trying `lo` and then bisecting; not every property is monotonic, so this is a search
    /// for a small value, not a proof that no smaller one fails.
    fn minimize(&mut self, lo: u64, hi: u64, set: impl Fn(&mut Case, u64)) {
        if lo >= hi {
            return;
        }
        let case = |s: &Self, v: u64| {
            let mut c = s.best.clone();
            set(&mut c, v);
            c
        };
        if self.try_case(case(self, lo)) {
            return;
        }
        let (mut bad, mut good) = (lo, hi);
        while good - bad > 1 && !self.exhausted {
            let mid = bad + (good - bad) / 2;
            if self.try_case(case(self, mid)) {
                good = mid;
            } else {
                bad = mid;
            }
        }
    }

    /// [`Self::minimize`] over nanoseconds in whole milliseconds (`lo` in milliseconds).
    fn minimize_ms(&mut self, lo_ms: u64, hi_ns: u64, set: impl Fn(&mut Case, u64)) {
        let hi_ms = hi_ns / MS;
        if hi_ms <= lo_ms {
            return;
        }
        self.minimize(lo_ms, hi_ms, |c, v| set(c, v * MS));
    }

    /// The scenario file of a case.
    fn render(&self, c: &Case) -> String {
        render(&self.header, &self.base, c)
    }
}

impl Case {
    /// The parts of a scenario a case holds, with `nodes` servers and that network.
    fn from_scenario(sc: &Scenario, nodes: usize, net: &sim_core::network::NetworkConfig) -> Case {
        Case {
            seed: sc.seed,
            faults: sc.faults.clone(),
            nodes,
            duration_ns: sc.duration.0,
            quiet_ns: sc.quiet.0,
            clients: sc.workload.clients,
            limit: sc.workload.limit,
            think_ns: sc.workload.think.0,
            loss: net.loss.0,
            duplicate: net.duplicate.0,
            reorder: net.reorder.0,
        }
    }

    /// Makes the script loadable: in time order; a fault that would harm in the quiet period
    /// moved to just before it (a nemesis drift reset can fire there) or, past the run,
    /// dropped; an undo (heal, restart, resume, unclog) with nothing scripted before it to undo
    /// dropped, as it would do nothing.
    fn normalize(&mut self) {
        let quiet_at = self.duration_ns - self.quiet_ns;
        let mut kept: Vec<ScriptedFault> = Vec::new();
        let mut faults = std::mem::take(&mut self.faults);
        faults.sort_by_key(|f| f.at);
        for mut f in faults {
            if f.action.harms() && self.quiet_ns > 0 && f.at.0 .0 >= quiet_at {
                if !matches!(f.action, FaultAction::ClockDrift { .. }) || quiet_at == 0 {
                    continue;
                }
                f.at = FaultTime(Duration(quiet_at - 1));
            }
            if f.at.0 .0 > self.duration_ns {
                continue;
            }
            let undoes = |a: &FaultAction| match &f.action {
                FaultAction::Heal => matches!(a, FaultAction::Partition { .. }),
                FaultAction::Restart { .. } => matches!(a, FaultAction::Crash { .. }),
                FaultAction::Resume { .. } => matches!(a, FaultAction::Pause { .. }),
                FaultAction::Unclog { .. } => {
                    matches!(a, FaultAction::Clog { .. } | FaultAction::Swizzle { .. })
                }
                _ => true,
            };
            if kept.iter().any(|k| undoes(&k.action)) || f.action.harms() {
                kept.push(f);
            }
        }
        kept.sort_by_key(|f| f.at);
        self.faults = kept;
    }

    /// The case on `n` servers: faults on a removed server dropped, links to one uncut,
    /// clients (numbered after the servers) renumbered.
    fn with_nodes(&self, n: usize) -> Case {
        let old = self.nodes;
        let map = |i: usize| -> Option<usize> {
            if i < n {
                Some(i)
            } else if i < old {
                None
            } else {
                Some(i - (old - n))
            }
        };
        let mut faults = Vec::new();
        for f in &self.faults {
            let mut f = f.clone();
            let keep = match &mut f.action {
                FaultAction::Partition { node, cut, .. } => {
                    *cut = cut
                        .iter()
                        .filter_map(|[a, b]| Some([map(*a)?, map(*b)?]))
                        .collect();
                    let node_ok = match node {
                        Some(NodeRef::Index(i)) => map(*i).map(|m| *i = m).is_some(),
                        _ => true,
                    };
                    node_ok && !cut.is_empty()
                }
                a => match a.node_mut() {
                    Some(NodeRef::Index(i)) => map(*i).map(|m| *i = m).is_some(),
                    _ => true,
                },
            };
            if keep {
                faults.push(f);
            }
        }
        Case {
            faults,
            nodes: n,
            ..self.clone()
        }
    }
}

/// The fault on a server named by index with the node named by `role` instead: a crash,
/// pause or clog of that server, or a `links` partition that cuts exactly that server off from
/// the others (both ways) as an `isolate` of the role. `None` for any other fault.
fn role_form(a: &FaultAction, role: &str, servers: usize) -> Option<FaultAction> {
    let mut b = a.clone();
    match &mut b {
        FaultAction::Crash { node, .. }
        | FaultAction::Pause { node, .. }
        | FaultAction::Clog { node, .. } => match node {
            NodeRef::Index(i) if *i < servers => *node = NodeRef::Role(role.to_string()),
            _ => return None,
        },
        FaultAction::Partition {
            kind: kind @ PartitionKind::Links,
            node,
            cut,
            ..
        } => {
            isolated(cut, servers)?;
            *kind = PartitionKind::Isolate;
            *node = Some(NodeRef::Role(role.to_string()));
            cut.clear();
        }
        _ => return None,
    }
    Some(b)
}

/// The server a `links` cut isolates, when it cuts exactly that server's links to every
/// other server both ways (as an `isolate` partition does) and nothing else.
fn isolated(cut: &[[usize; 2]], servers: usize) -> Option<usize> {
    let [a, b] = *cut.first()?;
    let x = if cut.iter().all(|c| c.contains(&a)) {
        a
    } else {
        b
    };
    let mut want: Vec<[usize; 2]> = (0..servers)
        .filter(|b| *b != x)
        .flat_map(|b| [[x, b], [b, x]])
        .collect();
    let mut got = cut.to_vec();
    want.sort_unstable();
    got.sort_unstable();
    (x < servers && got == want).then_some(x)
}

/// A fault's `for`, when it has one.
fn for_of(a: &FaultAction) -> Option<Nanos> {
    match a {
        FaultAction::Partition { for_, .. }
        | FaultAction::Crash { for_, .. }
        | FaultAction::Pause { for_, .. }
        | FaultAction::Clog { for_, .. } => for_.map(|d| d.0),
        _ => None,
    }
}

fn set_for(a: &mut FaultAction, ns: Nanos) {
    match a {
        FaultAction::Partition { for_, .. }
        | FaultAction::Crash { for_, .. }
        | FaultAction::Pause { for_, .. }
        | FaultAction::Clog { for_, .. } => *for_ = Some(Duration(ns)),
        _ => {}
    }
}

fn round_ms(ns: Nanos) -> Nanos {
    (ns + MS / 2) / MS * MS
}

/// `items` in `n` chunks of nearly equal size, in order.
fn split<T: Clone>(items: &[T], n: usize) -> Vec<Vec<T>> {
    let n = n.clamp(1, items.len().max(1));
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = start + (items.len() - start) / (n - i);
        out.push(items[start..end].to_vec());
        start = end;
    }
    out
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push_str("...");
    t
}

/// A duration as a scenario file writes it, exactly: the largest unit that divides it.
pub fn duration_text(ns: Nanos) -> String {
    for (unit, per) in [("s", SEC), ("ms", MS), ("us", 1_000)] {
        if ns > 0 && ns % per == 0 {
            return format!("{}{unit}", ns / per);
        }
    }
    format!("{ns}ns")
}

fn dur(ns: Nanos) -> toml::Value {
    toml::Value::String(duration_text(ns))
}

/// One fault as a `[[faults]]` table.
fn fault_table(f: &ScriptedFault) -> toml::Table {
    let mut t = toml::Table::new();
    t.insert("at".into(), dur(f.at.0 .0));
    t.insert("action".into(), f.action.name().into());
    let node = |n: &NodeRef| match n {
        NodeRef::Index(i) => toml::Value::Integer(*i as i64),
        NodeRef::Role(r) => toml::Value::String(r.clone()),
    };
    let mut put = |k: &str, v: toml::Value| {
        t.insert(k.into(), v);
    };
    match &f.action {
        FaultAction::Partition {
            kind,
            node: n,
            cut,
            for_,
        } => {
            let kind = toml::Value::try_from(kind).expect("partition kinds serialize");
            put("kind", kind);
            if let Some(n) = n {
                put("node", node(n));
            }
            if !cut.is_empty() {
                let pairs = cut
                    .iter()
                    .map(|[a, b]| toml::Value::Array(vec![(*a as i64).into(), (*b as i64).into()]))
                    .collect();
                put("cut", toml::Value::Array(pairs));
            }
            if let Some(d) = for_ {
                put("for", dur(d.0));
            }
        }
        FaultAction::Heal => {}
        FaultAction::Crash { node: n, for_ }
        | FaultAction::Pause { node: n, for_ }
        | FaultAction::Clog { node: n, for_ } => {
            put("node", node(n));
            if let Some(d) = for_ {
                put("for", dur(d.0));
            }
        }
        FaultAction::Restart { node: n }
        | FaultAction::Resume { node: n }
        | FaultAction::Unclog { node: n } => put("node", node(n)),
        FaultAction::ClockStep { node: n, by } => {
            put("node", node(n));
            let sign = if by.0 < 0 { "-" } else { "" };
            put(
                "by",
                format!("{sign}{}", duration_text(by.0.unsigned_abs())).into(),
            );
        }
        FaultAction::ClockDrift { node: n, drift } => {
            put("node", node(n));
            put("drift", drift.0.into());
        }
        FaultAction::Swizzle { count, step, hold } => {
            if let Some(c) = count {
                put("count", (*c as i64).into());
            }
            put("step", dur(step.0));
            put("hold", dur(hold.0));
        }
    }
    t
}

/// Top-level keys written first, in this order; then tables in [`TABLE_ORDER`], then the rest.
const SCALAR_ORDER: &[&str] = &["description", "algorithm"];
const TABLE_ORDER: &[&str] = &[
    "params", "network", "clocks", "workload", "checks", "liveness", "faults", "assert",
];

/// The scenario file of a case: the header comment, the original's keys with the case's
/// values set, the fault script.
fn render(header: &[String], base: &toml::Table, c: &Case) -> String {
    let mut t = base.clone();
    t.insert("nodes".into(), (c.nodes as i64).into());
    t.insert("duration".into(), dur(c.duration_ns));
    t.insert("seed".into(), toml::Value::Integer(c.seed as i64));
    t.insert("expect".into(), "violation".into());
    if c.quiet_ns > 0 {
        t.insert("quiet".into(), dur(c.quiet_ns));
    }
    set_in(&mut t, "network", "loss", c.loss);
    set_in(&mut t, "network", "duplicate", c.duplicate);
    set_in(&mut t, "network", "reorder", c.reorder);
    if let Some(toml::Value::Table(w)) = t.get_mut("workload") {
        w.insert("clients".into(), (c.clients as i64).into());
        w.insert("think".into(), dur(c.think_ns));
        if c.limit > 0 {
            w.insert("limit".into(), (c.limit as i64).into());
        } else {
            w.remove("limit");
        }
    }
    if !c.faults.is_empty() {
        let faults = c.faults.iter().map(|f| toml::Value::Table(fault_table(f)));
        t.insert("faults".into(), toml::Value::Array(faults.collect()));
    }
    let mut out: String = header.iter().map(|l| format!("{l}\n")).collect();
    out.push('\n');
    let is_table = |v: &toml::Value| match v {
        toml::Value::Table(_) => true,
        toml::Value::Array(a) => !a.is_empty() && a.iter().all(|x| x.is_table()),
        _ => false,
    };
    let mut keys: Vec<&String> = Vec::new();
    keys.extend(
        SCALAR_ORDER
            .iter()
            .filter_map(|k| t.get_key_value(*k).map(|(k, _)| k)),
    );
    keys.extend(
        t.iter()
            .filter(|(k, v)| !SCALAR_ORDER.contains(&k.as_str()) && !is_table(v))
            .map(|(k, _)| k),
    );
    for k in keys {
        let one: toml::Table = [(k.clone(), t[k].clone())].into_iter().collect();
        out.push_str(&toml::to_string(&one).expect("a scenario's values are TOML"));
    }
    let mut tables: Vec<&String> = TABLE_ORDER
        .iter()
        .filter_map(|k| {
            t.get_key_value(*k)
                .filter(|(_, v)| is_table(v))
                .map(|(k, _)| k)
        })
        .collect();
    tables.extend(
        t.iter()
            .filter(|(k, v)| is_table(v) && !TABLE_ORDER.contains(&k.as_str()))
            .map(|(k, _)| k),
    );
    for k in tables {
        let one: toml::Table = [(k.clone(), t[k].clone())].into_iter().collect();
        out.push('\n');
        out.push_str(&toml::to_string(&one).expect("a scenario's tables are TOML"));
    }
    out
}

/// Sets `table.key = p`, or removes it when `p` is 0 (the default) so the file stays short.
fn set_in(t: &mut toml::Table, table: &str, key: &str, p: f64) {
    if p == 0.0 {
        if let Some(toml::Value::Table(x)) = t.get_mut(table) {
            x.remove(key);
        }
        return;
    }
    let x = t
        .entry(table.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(x) = x {
        x.insert(key.into(), p.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::faults::PartitionKind;
    use sim_core::scenario::Drift;
    use sim_core::time::SignedDuration;

    const ORIGINAL: &str = r#"# A scenario with every section a shrunk file keeps.
description = "Round trip."
algorithm = "raft"
nodes = 5
duration = "8s"
quiet = "2s"
seed = 1
expect = "violation"

[params]
bug = "vote_without_log_check"
election_timeout_min = "150ms"

[network]
latency = { dist = "uniform", min = "2ms", max = "20ms" }
loss = 0.01
duplicate = 0.02

[clocks]
drift_max = 0.01

[workload]
clients = 3
think = "10ms"
mix = { read = 1, write = 1 }
keys = 2

[checks]
linearizability = "kv"

[liveness]
within = "1s"

[nemesis]
kinds = ["crash"]
"#;

    fn every_fault() -> Vec<ScriptedFault> {
        let at = |ns: Nanos| FaultTime(Duration(ns));
        let n = NodeRef::Index;
        let actions = vec![
            FaultAction::Partition {
                kind: PartitionKind::Links,
                node: None,
                cut: vec![[0, 1], [1, 0], [2, 5]],
                for_: Some(Duration(123_456_789)),
            },
            FaultAction::Heal,
            FaultAction::Crash {
                node: n(1),
                for_: Some(Duration(7 * MS)),
            },
            FaultAction::Crash {
                node: n(2),
                for_: None,
            },
            FaultAction::Restart { node: n(2) },
            FaultAction::Pause {
                node: n(5),
                for_: Some(Duration(1_500)),
            },
            FaultAction::ClockStep {
                node: n(3),
                by: SignedDuration(-1_234_567),
            },
            FaultAction::ClockDrift {
                node: n(4),
                drift: Drift(-0.038230316018364116),
            },
            FaultAction::Clog {
                node: n(0),
                for_: Some(Duration(SEC)),
            },
            FaultAction::Unclog { node: n(0) },
            FaultAction::Swizzle {
                count: Some(3),
                step: Duration(MS),
                hold: Duration(2 * SEC),
            },
        ];
        actions
            .into_iter()
            .enumerate()
            .map(|(i, action)| ScriptedFault {
                at: at(100 * MS * (i as u64 + 1) + 17),
                action,
            })
            .collect()
    }

    /// The written TOML parses back into the same scenario: the case's parts exactly (to the
    /// nanosecond and the last bit of a drift), everything else as the original had it.
    #[test]
    fn written_scenario_parses_back_into_the_same_scenario() {
        let original = Scenario::parse("orig.toml", ORIGINAL).unwrap();
        let mut base: toml::Table = toml::from_str(ORIGINAL).unwrap();
        for k in CASE_KEYS {
            base.remove(*k);
        }
        let case = Case {
            seed: 99,
            faults: every_fault(),
            nodes: 4,
            duration_ns: 3 * SEC + 1,
            quiet_ns: 1_500 * MS,
            clients: 2,
            limit: 7,
            think_ns: 20 * MS,
            loss: 0.125,
            duplicate: 0.0,
            reorder: 0.5,
        };
        let text = render(&["# header".into()], &base, &case);
        let back = Scenario::parse("orig.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back.faults, case.faults, "{text}");
        let mut got = Case::from_scenario(&back, back.nodes, &back.network);
        got.faults = back.faults.clone();
        assert_eq!(got, case, "{text}");
        assert_eq!((back.seed, back.expect), (99, sim_core::Expect::Violation));
        assert!(back.nemesis.is_none());
        // Everything the case does not set is the original's.
        let json = |sc: &Scenario| {
            let mut v = serde_json::to_value(sc).unwrap();
            let o = v.as_object_mut().unwrap();
            for k in ["nodes", "duration", "quiet", "seed", "faults", "nemesis"] {
                o.remove(k);
            }
            for k in ["loss", "duplicate", "reorder"] {
                o["network"].as_object_mut().unwrap().remove(k);
            }
            for k in ["clients", "limit", "think"] {
                o["workload"].as_object_mut().unwrap().remove(k);
            }
            v
        };
        assert_eq!(json(&back), json(&original));
        let params = |t: &str| toml::from_str::<toml::Table>(t).unwrap()["params"].clone();
        assert_eq!(params(&text), params(ORIGINAL));
        // And writing it again gives the same bytes.
        let again = Case::from_scenario(&back, back.nodes, &back.network);
        let again = Case {
            faults: back.faults.clone(),
            ..again
        };
        assert_eq!(render(&["# header".into()], &base, &again), text);
    }

    #[test]
    fn durations_are_written_exactly() {
        for ns in [
            1,
            999,
            1_000,
            1_500,
            MS,
            1_234_567,
            SEC,
            3 * SEC + 1,
            90 * SEC,
        ] {
            let t = duration_text(ns);
            assert_eq!(
                sim_core::time::parse_duration_signed(&t, false),
                Ok(ns as i128),
                "{t}"
            );
        }
    }

    /// A crash of a server and a `links` cut that isolates one are named by the role; a crash
    /// of a client, a cut that isolates nothing, a heal are not.
    #[test]
    fn faults_on_a_server_are_named_by_the_role() {
        let crash = |i| FaultAction::Crash {
            node: NodeRef::Index(i),
            for_: Some(Duration(MS)),
        };
        assert_eq!(
            role_form(&crash(2), "leader", 5),
            Some(FaultAction::Crash {
                node: NodeRef::Role("leader".into()),
                for_: Some(Duration(MS)),
            })
        );
        assert_eq!(role_form(&crash(5), "leader", 5), None, "n5 is a client");
        let links = |cut: Vec<[usize; 2]>| FaultAction::Partition {
            kind: PartitionKind::Links,
            node: None,
            cut,
            for_: Some(Duration(SEC)),
        };
        let isolate_n1 = links(vec![[1, 0], [0, 1], [1, 2], [2, 1]]);
        assert_eq!(isolated(&[[1, 0], [0, 1], [1, 2], [2, 1]], 3), Some(1));
        assert_eq!(
            role_form(&isolate_n1, "leader", 3),
            Some(FaultAction::Partition {
                kind: PartitionKind::Isolate,
                node: Some(NodeRef::Role("leader".into())),
                cut: vec![],
                for_: Some(Duration(SEC)),
            })
        );
        // One way only, or a cut that also names a client: not an isolate.
        assert_eq!(role_form(&links(vec![[1, 0], [1, 2]]), "leader", 3), None);
        let with_client = links(vec![[1, 0], [0, 1], [1, 2], [2, 1], [1, 3], [3, 1]]);
        assert_eq!(role_form(&with_client, "leader", 3), None);
        assert_eq!(role_form(&FaultAction::Heal, "leader", 3), None);
    }

    #[test]
    fn ddmin_chunks_cover_the_list_in_order() {
        let v: Vec<u32> = (0..7).collect();
        for n in 1..=7 {
            let chunks = split(&v, n);
            assert_eq!(chunks.len(), n);
            assert!(chunks.iter().all(|c| !c.is_empty()));
            assert_eq!(chunks.concat(), v);
        }
    }

    #[test]
    fn fewer_servers_renumber_clients_and_drop_faults_on_removed_servers() {
        let c = Case {
            seed: 1,
            faults: every_fault(),
            nodes: 5,
            duration_ns: 10 * SEC,
            quiet_ns: 0,
            clients: 2,
            limit: 0,
            think_ns: MS,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        };
        let s = c.with_nodes(3);
        // The cut [2, 5] names client 0 (node 5, after 5 servers): it becomes node 3.
        assert!(
            matches!(&s.faults[0].action, FaultAction::Partition { cut, .. } if *cut == vec![[0, 1], [1, 0], [2, 3]])
        );
        // The pause of client 0 (node 5) becomes node 3; clock faults on n3 and n4 are gone.
        assert!(s.faults.iter().any(|f| f.action
            == FaultAction::Pause {
                node: NodeRef::Index(3),
                for_: Some(Duration(1_500))
            }));
        assert!(!s.faults.iter().any(|f| matches!(
            f.action,
            FaultAction::ClockStep { .. } | FaultAction::ClockDrift { .. }
        )));
        assert_eq!(s.faults.len(), c.faults.len() - 2);
    }
}
