//! `distsim check`: judge a history file, linearizability or transactional consistency.

use std::path::Path;
use std::time::Instant;

use clap::Args;
use sim_core::history::History;
use sim_core::linearizability as lin;
use sim_core::txn;

use crate::{bad_input, EXIT_VIOLATION};

/// Exit code when the verdict is unknown (a budget ran out).
pub const EXIT_UNKNOWN: u8 = 3;

#[derive(Args)]
pub struct CheckArgs {
    /// The history file: JSON Lines (`distsim run --history`) or Jepsen EDN (`.edn`).
    history: String,
    /// The model: register, kv, kv-append, set, queue, counter, lock (linearizability), or
    /// list-append, rw-register (transactions). Default: detected from the history, and said.
    #[arg(long)]
    model: Option<String>,
    /// For transactional models: the consistency model to hold the history to
    /// (read-uncommitted, read-committed, snapshot-isolation, serializable,
    /// strict-serializable).
    #[arg(long, default_value = "strict-serializable")]
    consistency: String,
    /// Print the report as JSON (with parse and check times).
    #[arg(long)]
    json: bool,
    /// Print only the verdict line.
    #[arg(long)]
    quiet: bool,
    /// Give up after this long (e.g. "10s"); the verdict is then unknown (exit 3).
    #[arg(long, default_value = "60s")]
    timeout: String,
    /// Give up after visiting this many states in one part; the verdict is then unknown.
    #[arg(long)]
    max_states: Option<u64>,
    /// Parts (keys) checked in parallel; 0 = one per core. The verdict does not depend on it.
    #[arg(long, alias = "threads", default_value_t = 0)]
    jobs: usize,
    /// Keep checking every part after one is found not linearizable (a complete report);
    /// by default the check stops at the first.
    #[arg(long)]
    all_parts: bool,
    /// Write plots of the history (operations the checker could not place in red), or for
    /// transactions a drawing of each anomaly's cycle, and an index.html to this folder.
    #[arg(long, value_name = "DIR")]
    report: Option<String>,
}

/// Runs `distsim check`.
pub fn cmd_check(a: CheckArgs) -> u8 {
    let start = Instant::now();
    if let Some(code) = stream_txn(&a, start) {
        return code;
    }
    let text = match std::fs::read(&a.history) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => return bad_input(format!("{}: cannot read the history: {e}", a.history)),
    };
    let history = match lin::parse_history_file(&a.history, &text) {
        Ok(h) => h,
        Err(e) => return bad_input(e),
    };
    let parse_ns = start.elapsed().as_nanos() as u64;
    let detected = lin::detect_model(&history);
    let (name, note) = match &a.model {
        Some(m) => (m.clone(), None),
        None => (
            detected.model.to_owned(),
            Some(format!(
                "model {} chosen because {} (give --model to choose another)",
                detected.model, detected.reason
            )),
        ),
    };
    if let Some(n) = &note {
        if !a.json && !a.quiet {
            eprintln!("note: {n}");
        }
    }
    let hint = |e: &str| -> String {
        if detected.model != name {
            format!(
                "{}: {e}\nhint: this history looks like --model {} ({})",
                a.history, detected.model, detected.reason
            )
        } else {
            format!("{}: {e}", a.history)
        }
    };
    if let Some(model) = txn::TxnModel::by_name(&name) {
        return check_txn(&a, &history, model, parse_ns, note, &hint);
    }
    let Some(model) = lin::model_by_name(&name) else {
        return bad_input(format!(
            "--model {name}: unknown model; use one of: {}, list-append, rw-register",
            lin::MODEL_NAMES.join(", ")
        ));
    };
    let timeout = match sim_core::time::parse_duration_signed(&a.timeout, false) {
        Ok(ns) => std::time::Duration::from_nanos(ns as u64),
        Err(e) => return bad_input(format!("--timeout: {e}")),
    };
    let opts = lin::CheckOptions {
        timeout: Some(timeout),
        max_states: Some(a.max_states.unwrap_or(lin::DEFAULT_MAX_STATES)),
        threads: a.jobs,
    };
    let check_start = Instant::now();
    let result = if a.all_parts {
        lin::check_all_parts(&history, model.as_ref(), &opts)
    } else {
        lin::check(&history, model.as_ref(), &opts)
    };
    let report = match result {
        Ok(r) => r,
        Err(e) => return bad_input(hint(&line_of(&a.history, &text, &e))),
    };
    let check_ns = check_start.elapsed().as_nanos() as u64;
    if let Some(dir) = &a.report {
        let lin_json = serde_json::to_value(&report).ok();
        match reports::write_check_report(
            Path::new(dir),
            &a.history,
            &history,
            report.verdict().as_str(),
            lin_json.as_ref(),
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
    if a.json {
        let mut v = serde_json::to_value(&report).expect("check report serializes");
        v["parse_ns"] = parse_ns.into();
        v["check_ns"] = check_ns.into();
        v["model_note"] = note.into();
        outln!("{v}");
    } else {
        print_text(&a, &report.render_text(), parse_ns, check_ns);
    }
    match report.verdict() {
        lin::Verdict::NotLinearizable => EXIT_VIOLATION,
        lin::Verdict::Unknown => EXIT_UNKNOWN,
        lin::Verdict::Linearizable => 0,
    }
}

/// Checks a transactional history.
fn check_txn(
    a: &CheckArgs,
    history: &History,
    model: txn::TxnModel,
    parse_ns: u64,
    note: Option<String>,
    hint: &dyn Fn(&str) -> String,
) -> u8 {
    let Some(consistency) = txn::Consistency::by_name(&a.consistency) else {
        let names: Vec<&str> = txn::CONSISTENCIES.iter().map(|c| c.as_str()).collect();
        return bad_input(format!(
            "--consistency {}: unknown; use one of: {}",
            a.consistency,
            names.join(", ")
        ));
    };
    let t = Instant::now();
    let h = match txn::parse_txn_history(history) {
        Ok(h) => h,
        Err(e) => return bad_input(hint(&e)),
    };
    let parse_ns = parse_ns + t.elapsed().as_nanos() as u64;
    judge_txn(a, &h, model, consistency, parse_ns, note)
}

/// A JSON Lines history of transactions is read straight into the checker's flat arrays, a
/// line at a time, never as a whole `History` of JSON values (a million transactions would
/// cost gigabytes): when `--model` is a transactional model, or no model is given and the
/// first event is a `txn`. `None` when the file is not such a history, or does not read as
/// one: the general path then reads it and explains what is wrong, with its hints.
fn stream_txn(a: &CheckArgs, start: Instant) -> Option<u8> {
    use std::io::{BufRead, BufReader};
    let lower = a.history.to_ascii_lowercase();
    if lower.ends_with(".edn") {
        return None;
    }
    let given = a.model.as_deref().map(txn::TxnModel::by_name);
    if matches!(given, Some(None)) {
        return None;
    }
    if given.is_none() {
        let mut file = std::fs::File::open(&a.history).ok()?;
        // Sniff the first event: a JSON object whose `f` is "txn".
        let mut r = BufReader::new(&mut file);
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).ok()? == 0 {
                return None;
            }
            if !line.trim_ascii().is_empty() {
                break;
            }
        }
        let first: sim_core::history::HistoryEvent = serde_json::from_slice(&line).ok()?;
        if first.f != "txn" {
            return None;
        }
    }
    let h = txn::read_txn_jsonl_file(std::path::Path::new(&a.history), a.jobs).ok()?;
    let parse_ns = start.elapsed().as_nanos() as u64;
    let (model, note) = match given {
        Some(Some(m)) => (m, None),
        _ => {
            let appends = h.mops.iter().any(|m| m.kind == txn::MopKind::Append);
            let d = lin::txn_detected(appends);
            let note = format!(
                "model {} chosen because {} (give --model to choose another)",
                d.model, d.reason
            );
            if !a.json && !a.quiet {
                eprintln!("note: {note}");
            }
            (txn::TxnModel::by_name(d.model)?, Some(note))
        }
    };
    let Some(consistency) = txn::Consistency::by_name(&a.consistency) else {
        let names: Vec<&str> = txn::CONSISTENCIES.iter().map(|c| c.as_str()).collect();
        return Some(bad_input(format!(
            "--consistency {}: unknown; use one of: {}",
            a.consistency,
            names.join(", ")
        )));
    };
    Some(judge_txn(a, &h, model, consistency, parse_ns, note))
}

/// Checks a transactional history read into memory, and prints the verdict.
fn judge_txn(
    a: &CheckArgs,
    h: &txn::TxnHistory,
    model: txn::TxnModel,
    consistency: txn::Consistency,
    parse_ns: u64,
    note: Option<String>,
) -> u8 {
    let t = Instant::now();
    let report = txn::check(
        h,
        &txn::TxnCheckOptions {
            model,
            consistency,
            ..Default::default()
        },
    );
    let check_ns = t.elapsed().as_nanos() as u64;
    if let Some(dir) = &a.report {
        match reports::write_txn_report(Path::new(dir), &a.history, &report) {
            Ok(index) => eprintln!("report written to {}", index.display()),
            Err(e) => return bad_input(format!("cannot write the report: {e}")),
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&report).expect("txn report serializes");
        v["parse_ns"] = parse_ns.into();
        v["check_ns"] = check_ns.into();
        v["model_note"] = note.into();
        outln!("{v}");
    } else {
        print_text(a, &report.render_text(), parse_ns, check_ns);
    }
    if report.valid {
        0
    } else {
        EXIT_VIOLATION
    }
}

/// Prints a checker's report (only its verdict line with `--quiet`) and the times taken.
fn print_text(a: &CheckArgs, text: &str, parse_ns: u64, check_ns: u64) {
    if a.quiet {
        outln!("{}: {}", a.history, text.lines().next().unwrap_or(""));
        return;
    }
    outln!("{}: {}", a.history, text.trim_end());
    outln!(
        "parsed in {:.3}s, checked in {:.3}s",
        parse_ns as f64 / 1e9,
        check_ns as f64 / 1e9
    );
}

/// Adds the file line to an "event N: ..." error of a JSON Lines history (event N is the
/// N-th non-blank line).
fn line_of(path: &str, text: &str, e: &str) -> String {
    let n: Option<usize> = e
        .strip_prefix("event ")
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok());
    let jsonl = !path.ends_with(".edn") && text.trim_start().starts_with("{\"");
    match n {
        Some(n) if jsonl => {
            let line = text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
                .nth(n.saturating_sub(1))
                .map(|(i, _)| i + 1);
            match line {
                Some(l) => format!("line {l}: {e}"),
                None => e.to_owned(),
            }
        }
        _ => e.to_owned(),
    }
}
