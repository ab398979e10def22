//! The `distsim` command line: parse arguments, call the libraries, print.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use sim_core::{RunOptions, RunResult, Scenario, Verdict};

/// Like `println!`, but a closed stdout (`distsim list | head`) is not a panic: the rest of the
/// output is dropped and the command still ends with its proper exit code.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod check;
mod compare;
mod merge;
mod output;
mod sweep;

/// The build that is running, named in every reproduce command.
pub const BUILD: &str = env!("DISTSIM_BUILD");

/// distsim: a deterministic simulation testbed for distributed algorithms.
#[derive(Parser)]
#[command(name = "distsim", version = BUILD, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one seed of a scenario and print the verdict.
    Run(RunArgs),
    /// Run many seeds of a scenario in parallel and summarize.
    Sweep(sweep::SweepArgs),
    /// Join the JSON outputs of sharded sweeps into one.
    Merge(merge::MergeArgs),
    /// Check a client history (our JSON Lines or Jepsen EDN) for linearizability or, for
    /// transactions, for consistency anomalies (Elle's method).
    Check(check::CheckArgs),
    /// List the scenarios (what each shows and expects) and the algorithms with their bugs.
    List(ListArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The scenario file (TOML or JSON).
    scenario: String,
    /// The seed (default: the scenario's own).
    #[arg(long)]
    seed: Option<u64>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Print only the verdict line (and the reproduce command on failure).
    #[arg(long)]
    quiet: bool,
    /// Write every event to this file as JSON Lines.
    #[arg(long, value_name = "FILE")]
    trace: Option<String>,
    /// Write the client history to this file as JSON Lines.
    #[arg(long, value_name = "FILE")]
    history: Option<String>,
    /// Write plots (PNG and SVG) and a self-contained index.html of the run into this folder.
    #[arg(long, value_name = "DIR")]
    report: Option<String>,
    /// The window of the report's space-time diagram and history views, e.g. `1.9s..2.3s`
    /// (default: around the first violation).
    #[arg(long, value_name = "START..END", requires = "report")]
    window: Option<String>,
    /// Let the seed draw the fault mix and cluster size (as `sweep --swarm` does).
    #[arg(long)]
    swarm: bool,
    /// Most memory a kept trace (--trace, --report) may take, in MiB; past it the run stops
    /// with verdict unknown instead of growing until the kernel kills it.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    trace_memory_max: u64,
    /// Run twice and fail if the trace hashes differ.
    #[arg(long)]
    check_determinism: bool,
    /// The build a reproduce command was printed by; a different build warns that the run
    /// may differ.
    #[arg(long, value_name = "VERSION")]
    build: Option<String>,
}

#[derive(Args)]
struct ListArgs {
    /// Folder to search for scenario files.
    #[arg(default_value = "scenarios")]
    dir: String,
}

// Exit codes, one rule for every command.
/// Every check held.
pub const EXIT_PASS: u8 = 0;
/// A violation (or nondeterminism) was found.
pub const EXIT_VIOLATION: u8 = 1;
/// Bad input or usage (clap's own usage errors exit 2 as well).
pub const EXIT_BAD_INPUT: u8 = 2;
/// The verdict is unknown: a budget ran out. Never reported as a pass.
pub const EXIT_UNKNOWN: u8 = 3;

/// The exit code of one verdict.
pub fn verdict_exit(v: Verdict) -> u8 {
    match v {
        Verdict::Pass => EXIT_PASS,
        Verdict::Violation => EXIT_VIOLATION,
        Verdict::Unknown => EXIT_UNKNOWN,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Sweep(a) => sweep::cmd_sweep(a),
        Command::Merge(a) => merge::cmd_merge(a),
        Command::Check(a) => check::cmd_check(a),
        Command::List(a) => cmd_list(a),
    };
    ExitCode::from(code)
}

/// Prints a bad-input error and returns exit code 2.
pub fn bad_input(message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {message}");
    EXIT_BAD_INPUT
}

/// Loads a scenario and checks it against its algorithm (operations, roles, liveness bound),
/// or prints why not: every bad input is refused here, before any run.
pub fn load(path: &str) -> Result<Scenario, u8> {
    let mut sc = Scenario::load(path).map_err(bad_input)?;
    algorithms::prepare(&mut sc).map_err(bad_input)?;
    Ok(sc)
}

/// Runs one seed and measures its wall time (outside the simulation).
pub fn run_once(sc: &Scenario, seed: u64, opts: &RunOptions) -> Result<RunResult, u8> {
    let start = Instant::now();
    let mut r = algorithms::run(sc, seed, opts).map_err(bad_input)?;
    r.wall_ns = start.elapsed().as_nanos() as u64;
    Ok(r)
}

/// The command that reproduces a run, naming this build.
pub fn reproduce_command(path: &str, seed: u64, swarm: bool) -> String {
    format!(
        "distsim run {} --seed {seed}{} --build {BUILD}",
        shell_quote(path),
        if swarm { " --swarm" } else { "" }
    )
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn cmd_run(a: RunArgs) -> u8 {
    if let Some(b) = &a.build {
        if b != BUILD {
            eprintln!(
                "warning: this failure was printed by distsim {b}, but this is distsim {BUILD}; \
                 a different build may take a different path (check out that revision to reproduce exactly)"
            );
        }
    }
    let sc = match load(&a.scenario) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let seed = a.seed.unwrap_or(sc.seed);
    let window_ns = match a.window.as_deref().map(reports::parse_window).transpose() {
        Ok(w) => w,
        Err(e) => return bad_input(e),
    };
    let opts = RunOptions {
        // The report's space-time diagram is drawn from the trace.
        keep_trace: a.trace.is_some() || a.report.is_some(),
        swarm: a.swarm,
        trace_bytes_max: Some(a.trace_memory_max.saturating_mul(1 << 20)),
        ..Default::default()
    };
    let mut r = match run_once(&sc, seed, &opts) {
        Ok(r) => r,
        Err(code) => return code,
    };
    output::judge_truncated_trace(&mut r);
    if let Some(path) = &a.trace {
        if let Err(e) = output::write_trace(path, &r) {
            return bad_input(format!("cannot write the trace to {path}: {e}"));
        }
    }
    if let Some(path) = &a.history {
        if let Err(e) = std::fs::write(path, r.history.to_jsonl()) {
            return bad_input(format!("cannot write the history to {path}: {e}"));
        }
    }
    let reproduce = reproduce_command(&a.scenario, seed, a.swarm);
    if let Some(dir) = &a.report {
        match reports::write_run_report(
            Path::new(dir),
            &r,
            &reproduce,
            &reports::ReportOptions {
                window_ns,
                about: Some(reports::About::of(&sc)),
            },
        ) {
            Ok(w) => {
                for p in &w.problems {
                    eprintln!("report: {p}");
                }
                eprintln!("report written to {}", w.index.display());
            }
            Err(e) => return bad_input(format!("cannot write the report: {e}")),
        }
    }
    let mut nondeterministic = None;
    if a.check_determinism {
        let again = match run_once(&sc, seed, &opts) {
            Ok(r) => r,
            Err(code) => return code,
        };
        if again.trace_hash != r.trace_hash {
            nondeterministic = Some(again.trace_hash);
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&r).expect("run result serializes");
        v["reproduce"] = serde_json::Value::from(reproduce.clone());
        v["build"] = serde_json::Value::from(BUILD);
        if a.check_determinism {
            v["deterministic"] = serde_json::Value::from(nondeterministic.is_none());
        }
        outln!("{v}");
    } else {
        output::print_run(&r, &reproduce, a.quiet);
    }
    if let Some(other) = nondeterministic {
        eprintln!(
            "NONDETERMINISM: seed {seed} gave trace hash {} and then {other}; this is a bug in distsim or the algorithm",
            r.trace_hash
        );
        return EXIT_VIOLATION;
    }
    verdict_exit(r.verdict)
}

fn cmd_list(a: ListArgs) -> u8 {
    let mut files = Vec::new();
    if let Err(e) = collect_scenarios(Path::new(&a.dir), &mut files) {
        return bad_input(format!(
            "cannot read {}: {e}; give the folder that holds the scenarios",
            a.dir
        ));
    }
    files.sort();
    let color = std::io::stdout().is_terminal();
    let mut broken = 0;
    outln!("Scenarios in {}:\n", a.dir);
    for f in &files {
        let p = f.to_string_lossy();
        match Scenario::load(&p).and_then(|mut sc| algorithms::prepare(&mut sc).map(|_| sc)) {
            Ok(sc) => {
                let expect = sc.expect.as_str();
                let head = if color {
                    format!("\x1b[1m{p}\x1b[0m")
                } else {
                    p.to_string()
                };
                outln!("{head}  [{}; expects {expect}]", sc.algorithm);
                for line in wrap(sc.description.trim(), 92) {
                    outln!("    {line}");
                }
            }
            Err(e) => {
                broken += 1;
                outln!("{p}  [cannot be read]\n    {e}");
            }
        }
    }
    outln!("\nAlgorithms: their operations, roles, parameters and bug switches (set `bug = \"NAME\"` under [params]):\n");
    for alg in algorithms::ALGORITHMS {
        outln!("{:<12} {}", alg.name, alg.summary);
        let none = |v: &[&str]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        outln!("    operations: {}", none(alg.operations));
        outln!("    roles: {} (and \"random\")", none(alg.roles));
        outln!(
            "    liveness: progress within {} of the heal by default",
            sim_core::time::fmt_ns(alg.liveness_within.0)
        );
        for p in alg.params {
            outln!("    param {:<22} = {:<10} {}", p.name, p.default, p.doc);
        }
        for b in alg.bugs {
            outln!("    bug {:<24} breaks: {}", b.name, b.rule);
        }
    }
    if broken > 0 {
        eprintln!("error: {broken} scenario file(s) cannot be read; see above");
        return EXIT_BAD_INPUT;
    }
    0
}

fn collect_scenarios(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_scenarios(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("toml") | Some("json")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Wraps text at word boundaries.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() {
        lines.push(cur);
    }
    lines
}
