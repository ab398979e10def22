//! `distsim list`: the scenarios (what each shows and expects) and the algorithms with their
//! operations, roles, parameters and bug switches. Reads a folder when one is given or when
//! ./scenarios exists, else the catalogue built into the binary.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::{json, Value};
use sim_core::{Scenario, ScenarioError};

use crate::{bad_input, catalogue, EXIT_BAD_INPUT};

/// `distsim list`'s arguments.
#[derive(Args)]
pub struct ListArgs {
    /// Folder to search for scenario files (default: ./scenarios when it exists, else the
    /// catalogue built into this binary, whose scenarios run by short name: `distsim run
    /// raft/calm`).
    dir: Option<String>,
    /// Print one JSON object: the scenarios and the algorithms.
    #[arg(long)]
    json: bool,
    /// Print only the scenarios' names, one per line (for scripts).
    #[arg(long)]
    quiet: bool,
}

/// One listed scenario: the name to run it by, and the scenario or why it cannot be read.
struct Listed {
    name: String,
    scenario: Result<Scenario, ScenarioError>,
}

fn prepared(r: Result<Scenario, ScenarioError>) -> Result<Scenario, ScenarioError> {
    r.and_then(|mut sc| algorithms::prepare(&mut sc).map(|_| sc))
}

/// The scenarios to list and where they came from, or the exit code of a bad folder.
fn gather(dir: Option<&str>) -> Result<(String, Vec<Listed>), u8> {
    let folder = match dir {
        Some(d) => Some(d.to_string()),
        None if Path::new("scenarios").is_dir() => Some("scenarios".to_string()),
        None => None,
    };
    let Some(folder) = folder else {
        let listed = catalogue::entries()
            .map(|e| Listed {
                name: e.short_name().to_string(),
                scenario: prepared(Scenario::parse(&e.repo_path(), e.text)),
            })
            .collect();
        return Ok(("built-in".to_string(), listed));
    };
    let mut files = Vec::new();
    if let Err(e) = collect_scenarios(Path::new(&folder), &mut files) {
        return Err(bad_input(format!(
            "cannot read {folder}: {e}; give the folder that holds the scenarios (or none, for \
             the catalogue built into distsim)"
        )));
    }
    files.sort();
    let listed = files
        .iter()
        .map(|f| {
            let p = f.to_string_lossy().into_owned();
            Listed {
                scenario: prepared(Scenario::load(&p)),
                name: p,
            }
        })
        .collect();
    Ok((folder, listed))
}

/// Runs `distsim list`.
pub fn cmd_list(a: ListArgs) -> u8 {
    let (source, listed) = match gather(a.dir.as_deref()) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let broken = listed.iter().filter(|l| l.scenario.is_err()).count();
    if a.json {
        outln!("{}", to_json(&source, &listed));
    } else if a.quiet {
        for l in &listed {
            match &l.scenario {
                Ok(_) => outln!("{}", l.name),
                Err(e) => eprintln!("{}: cannot be read: {e}", l.name),
            }
        }
    } else {
        print_scenarios(&source, &listed);
        print_algorithms();
    }
    if broken > 0 {
        eprintln!("error: {broken} scenario file(s) cannot be read; see above");
        return EXIT_BAD_INPUT;
    }
    0
}

fn print_scenarios(source: &str, listed: &[Listed]) {
    if source == "built-in" {
        outln!(
            "Scenarios built into this distsim (no ./scenarios folder here); run one by its \
             name, e.g. `distsim run raft/calm`:\n"
        );
    } else {
        outln!("Scenarios in {source}:\n");
    }
    let color = std::io::stdout().is_terminal();
    for l in listed {
        match &l.scenario {
            Ok(sc) => {
                let head = if color {
                    format!("\x1b[1m{}\x1b[0m", l.name)
                } else {
                    l.name.clone()
                };
                outln!("{head}  [{}; expects {}]", sc.algorithm, sc.expect.as_str());
                for line in wrap(sc.description.trim(), 92) {
                    outln!("    {line}");
                }
            }
            Err(e) => outln!("{}  [cannot be read]\n    {e}", l.name),
        }
    }
}

fn print_algorithms() {
    outln!("\nAlgorithms: their operations, roles, parameters and bug switches (set `bug = \"NAME\"` under [params]):\n");
    let none = |v: &[&str]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    for alg in algorithms::ALGORITHMS {
        outln!("{:<12} {}", alg.name, alg.summary);
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
}

fn to_json(source: &str, listed: &[Listed]) -> Value {
    let scenarios: Vec<Value> = listed
        .iter()
        .map(|l| match &l.scenario {
            Ok(sc) => json!({
                "name": l.name,
                "scenario": sc.name,
                "path": sc.path(),
                "algorithm": sc.algorithm,
                "expect": sc.expect.as_str(),
                "description": sc.description.trim(),
            }),
            Err(e) => json!({ "name": l.name, "error": e.to_string() }),
        })
        .collect();
    let algorithms: Vec<Value> = algorithms::ALGORITHMS
        .iter()
        .map(|a| {
            json!({
                "name": a.name,
                "summary": a.summary,
                "operations": a.operations,
                "roles": a.roles,
                "liveness_within_ns": a.liveness_within.0,
                "params": a.params.iter().map(|p| json!({
                    "name": p.name, "default": p.default, "doc": p.doc,
                })).collect::<Vec<_>>(),
                "bugs": a.bugs.iter().map(|b| json!({ "name": b.name, "rule": b.rule }))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "source": source, "scenarios": scenarios, "algorithms": algorithms })
}

/// Every `.toml` and `.json` file under `dir`, recursively.
pub fn collect_scenarios(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
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
