//! The `distsim` command line: parse arguments, call the libraries, print.

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

mod catalogue;
mod check;
mod compare;
mod diff;
mod list;
mod merge;
mod output;
mod report_after;
mod shrink;
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
    List(list::ListArgs),
    /// Compare two runs event by event (two seeds, two scenarios, or a `[params]` change such
    /// as a bug switch) and show where they first diverge.
    Diff(diff::DiffArgs),
    /// Shrink a failing seed to a small scripted scenario that fails the same way alone.
    Shrink(shrink::ShrinkArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The scenario: a file (TOML or JSON), or a built-in one by name (`raft/calm`).
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
    /// How long past the first violation the report's panels follow the run (Raft's log panel
    /// shows the committed entry overwritten); verdict, trace hash and reproduce line stay those
    /// of the run stopped at the violation. `0s`: none.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "2s",
        requires = "report"
    )]
    report_after: String,
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
        Command::List(a) => list::cmd_list(a),
        Command::Diff(a) => diff::cmd_diff(a),
        Command::Shrink(a) => shrink::cmd_shrink(a),
    };
    ExitCode::from(code)
}

/// Prints a bad-input error and returns exit code 2.
pub fn bad_input(message: impl std::fmt::Display) -> u8 {
    eprintln!("error: {message}");
    EXIT_BAD_INPUT
}

/// Loads a scenario (a file, else a built-in one by name) and checks it against its algorithm
/// (operations, roles, liveness bound), or prints why not: every bad input is refused here,
/// before any run.
pub fn load(path: &str) -> Result<Scenario, u8> {
    let mut sc = catalogue::load_scenario(path).map_err(bad_input)?;
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

/// Quotes a word for a POSIX shell when it needs quoting.
pub fn shell_quote(s: &str) -> String {
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
                after: match report_after::carry_on(&sc, seed, &opts, &r, &a.report_after) {
                    Ok(after) => after,
                    Err(code) => return code,
                },
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
