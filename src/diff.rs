//! `distsim diff`: two runs compared event by event. The two sides are two seeds of one
//! scenario, two scenario files, or one scenario and a copy with some fields changed
//! (`--set-b params.bug=...`, `--unset-b params.bug`: a bug switch on and off with the same
//! seed); or two trace files written by `distsim run --trace`. It prints where the traces first
//! differ, the events just before (common to both) and just after (on each side), and a
//! summary of each run: events, verdict, trace hash.
//!
//! Because a run is a pure function of its scenario and seed, the first differing event is the
//! first observable consequence of the change: a latency drawn differently, a vote granted
//! that the correct rule refuses.

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};
use sim_core::trace::TraceEvent;
use sim_core::{RunOptions, RunResult, Scenario};

use crate::{bad_input, load, run_once, EXIT_PASS, EXIT_UNKNOWN, EXIT_VIOLATION};

/// `distsim diff`'s arguments.
#[derive(Args)]
pub struct DiffArgs {
    /// Side A: a scenario (a file or a built-in name such as `raft/calm`), or a trace file
    /// written by `distsim run --trace` (`.jsonl`).
    a: String,
    /// Side B: another scenario or trace file (default: A again, changed by `--seed-b`,
    /// `--set-b` or `--unset-b`).
    b: Option<String>,
    /// The seed of both runs (default: each scenario's own).
    #[arg(long)]
    seed: Option<u64>,
    /// Side B's seed (default: `--seed`).
    #[arg(long, value_name = "N")]
    seed_b: Option<u64>,
    /// Change a field of side B's scenario (repeatable): a dotted path and a TOML value, e.g.
    /// `params.bug=vote_without_log_check`, `network.loss=0.1`, `nodes=5`; a bare word is
    /// a string.
    #[arg(long, value_name = "KEY=VALUE")]
    set_b: Vec<String>,
    /// Remove a field from side B's scenario (repeatable), e.g. `params.bug` to turn the bug
    /// switch off.
    #[arg(long, value_name = "KEY")]
    unset_b: Vec<String>,
    /// Let each seed draw the fault mix and cluster size (as `run --swarm` does).
    #[arg(long)]
    swarm: bool,
    /// How many events to show before and after the first difference.
    #[arg(long, value_name = "N", default_value_t = 5)]
    context: usize,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// Print only the line that says where the runs diverge (or that they do not).
    #[arg(long)]
    quiet: bool,
    /// Most memory each run's kept trace may take, in MiB; past it the comparison covers only
    /// the events kept, and says so.
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    trace_memory_max: u64,
}

/// One event as compared and shown: a trace event with its node names resolved.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ev {
    /// Index in the trace, from 0.
    pub index: usize,
    /// True time.
    pub time_ns: u64,
    /// `send`, `deliver`, `timer`, ... (as in `--trace` files).
    pub kind: String,
    /// Where it happened.
    pub node: usize,
    /// The other node, for messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<usize>,
    /// Message label, timer tag, fault or note.
    pub label: String,
    /// Message id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<u64>,
}

impl Ev {
    fn of(index: usize, e: &TraceEvent) -> Ev {
        let kind = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        Ev {
            index,
            time_ns: e.time_ns,
            kind,
            node: e.node,
            peer: e.peer,
            label: e.label.clone(),
            msg_id: e.msg_id,
        }
    }

    /// The same event, apart from its position in the trace.
    fn same(&self, o: &Ev) -> bool {
        (
            self.time_ns,
            &self.kind,
            self.node,
            self.peer,
            &self.label,
            self.msg_id,
        ) == (o.time_ns, &o.kind, o.node, o.peer, &o.label, o.msg_id)
    }
}

/// What one side is and what its run gave.
struct Side {
    /// How the side was made: `raft/calm seed 3`, `... with params.bug unset`.
    what: String,
    /// Server count, to name clients (unknown for trace files).
    servers: Option<usize>,
    /// The run, when the side is a scenario.
    run: Option<RunResult>,
    /// The events, when the side is a trace file.
    file_events: Option<Vec<Ev>>,
}

impl Side {
    fn len(&self) -> usize {
        match (&self.run, &self.file_events) {
            (Some(r), _) => r.trace.as_ref().map_or(0, |t| t.len()),
            (None, Some(v)) => v.len(),
            (None, None) => 0,
        }
    }

    fn ev(&self, i: usize) -> Option<Ev> {
        match (&self.run, &self.file_events) {
            (Some(r), _) => r.trace.as_ref()?.get(i).map(|e| Ev::of(i, e)),
            (None, Some(v)) => v.get(i).cloned(),
            (None, None) => None,
        }
    }

    /// Whether the kept trace was cut off at its memory bound (its last event says so).
    fn truncated(&self) -> bool {
        let n = self.len();
        n > 0 && self.ev(n - 1).is_some_and(|e| e.kind == "truncated")
    }

    fn name(&self, n: usize) -> String {
        node_name(n, self.servers)
    }
}

/// A node's name, the same as in reports: `n3`, or `n5 (client 1)` (clients numbered from 0
/// after the servers). Without the server count (a trace file) only `n5`.
pub fn node_name(n: usize, servers: Option<usize>) -> String {
    match servers {
        Some(s) => reports::plots::node_name(n, s),
        None => format!("n{n}"),
    }
}

/// Runs `distsim diff`.
pub fn cmd_diff(a: DiffArgs) -> u8 {
    let is_trace = |p: &str| p.ends_with(".jsonl");
    let sides = match (&a.b, is_trace(&a.a)) {
        (Some(b), true) if is_trace(b) => trace_sides(&a, b),
        (None, true) => Err(bad_input(
            "a trace file is compared with another: give two files written by `distsim run --trace`",
        )),
        (Some(b), false) if is_trace(b) => Err(bad_input(format!(
            "{} is a scenario and {b} a trace file; compare two scenarios or two trace files",
            a.a
        ))),
        (Some(_), true) => Err(bad_input(format!(
            "{} is a trace file and {} is not; compare two scenarios or two trace files",
            a.a,
            a.b.as_deref().unwrap_or("")
        ))),
        _ => run_sides(&a),
    };
    let (sa, sb) = match sides {
        Ok(s) => s,
        Err(code) => return code,
    };
    let d = compare(&sa, &sb);
    if a.json {
        outln!("{}", to_json(&sa, &sb, &d, a.context));
    } else {
        print(&sa, &sb, &d, a.context, a.quiet);
    }
    match d.first {
        Some(_) => EXIT_VIOLATION,
        None if d.hashes_differ => EXIT_VIOLATION,
        None if sa.truncated() || sb.truncated() => EXIT_UNKNOWN,
        None => EXIT_PASS,
    }
}

fn trace_sides(a: &DiffArgs, b: &str) -> Result<(Side, Side), u8> {
    if a.seed.is_some() || a.seed_b.is_some() || !a.set_b.is_empty() || !a.unset_b.is_empty() {
        return Err(bad_input(
            "--seed, --seed-b, --set-b and --unset-b change a run; two trace files are compared as they are",
        ));
    }
    let read = |p: &str| -> Result<Side, u8> {
        Ok(Side {
            what: p.to_string(),
            servers: None,
            run: None,
            file_events: Some(read_trace(p).map_err(bad_input)?),
        })
    };
    Ok((read(&a.a)?, read(b)?))
}

/// Reads a `--trace` file (JSON Lines of trace events).
fn read_trace(path: &str) -> Result<Vec<Ev>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!("cannot read the trace file {path}: {e}; write one with `distsim run SCENARIO --trace FILE`")
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("{path}:{}: not a JSON trace event: {e}", n + 1))?;
        let field = |k: &str| v.get(k).filter(|x| !x.is_null());
        let num = |k: &str| field(k).and_then(Value::as_u64);
        let (Some(time_ns), Some(kind), Some(node)) = (
            num("time_ns"),
            field("kind").and_then(Value::as_str),
            num("node"),
        ) else {
            return Err(format!(
                "{path}:{}: a trace event needs time_ns, kind and node (as `distsim run --trace` writes them)",
                n + 1
            ));
        };
        out.push(Ev {
            index: out.len(),
            time_ns,
            kind: kind.to_string(),
            node: node as usize,
            peer: num("peer").map(|p| p as usize),
            label: field("label")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            msg_id: num("msg_id"),
        });
    }
    Ok(out)
}

fn run_sides(a: &DiffArgs) -> Result<(Side, Side), u8> {
    let sc_a = load(&a.a)?;
    let b_path = a.b.clone().unwrap_or_else(|| a.a.clone());
    let mut sc_b = load(&b_path)?;
    let mut changes = Vec::new();
    if !a.set_b.is_empty() || !a.unset_b.is_empty() {
        sc_b = changed(&sc_b, &a.set_b, &a.unset_b)?;
        changes.extend(a.set_b.iter().map(|s| format!("--set-b {s}")));
        changes.extend(a.unset_b.iter().map(|s| format!("--unset-b {s}")));
    }
    let seed_a = a.seed.unwrap_or(sc_a.seed);
    let seed_b = a.seed_b.or(a.seed).unwrap_or(sc_b.seed);
    let opts = RunOptions {
        keep_trace: true,
        swarm: a.swarm,
        trace_bytes_max: Some(a.trace_memory_max.saturating_mul(1 << 20)),
        ..Default::default()
    };
    let side = |path: &str, sc: &Scenario, seed: u64, changes: &[String]| -> Result<Side, u8> {
        let r = run_once(sc, seed, &opts)?;
        let mut what = format!("{path} --seed {seed}");
        if a.swarm {
            what.push_str(" --swarm");
        }
        for c in changes {
            what.push(' ');
            what.push_str(c);
        }
        Ok(Side {
            what,
            servers: Some(r.servers),
            run: Some(r),
            file_events: None,
        })
    };
    Ok((
        side(&a.a, &sc_a, seed_a, &[])?,
        side(&b_path, &sc_b, seed_b, &changes)?,
    ))
}

/// The scenario with `set` (`KEY=VALUE`) and `unset` (`KEY`) applied to its text, reloaded and
/// checked as any scenario is.
fn changed(sc: &Scenario, set: &[String], unset: &[String]) -> Result<Scenario, u8> {
    let Some(src) = &sc.source else {
        return Err(bad_input("the scenario has no text to change"));
    };
    let json = src.format == sim_core::scenario::Format::Json;
    let mut doc: Value = if json {
        serde_json::from_str(&src.text).map_err(|e| bad_input(format!("{}: {e}", src.path)))?
    } else {
        let t: toml::Table = src
            .text
            .parse()
            .map_err(|e| bad_input(format!("{}: {e}", src.path)))?;
        serde_json::to_value(t).map_err(bad_input)?
    };
    for s in set {
        let Some((key, raw)) = s.split_once('=') else {
            return Err(bad_input(format!(
                "--set-b {s}: write KEY=VALUE, e.g. params.bug=vote_without_log_check"
            )));
        };
        let value = parse_value(raw.trim());
        set_path(&mut doc, key.trim(), Some(value))
            .map_err(|e| bad_input(format!("--set-b {s}: {e}")))?;
    }
    for key in unset {
        set_path(&mut doc, key.trim(), None)
            .map_err(|e| bad_input(format!("--unset-b {key}: {e}")))?;
    }
    let text = if json {
        serde_json::to_string_pretty(&doc).map_err(bad_input)?
    } else {
        let t: toml::Table = serde_json::from_value(doc).map_err(bad_input)?;
        toml::to_string(&t).map_err(bad_input)?
    };
    // The same path, so that the changed side keeps the scenario's name and format.
    let mut sc = Scenario::parse(&src.path, &text).map_err(|e| {
        bad_input(format!(
            "side B does not load after the change: {e}\nside B's scenario as changed:\n{text}"
        ))
    })?;
    algorithms::prepare(&mut sc)
        .map_err(|e| bad_input(format!("side B does not load after the change: {e}")))?;
    Ok(sc)
}

/// A `--set-b` value: TOML when it reads as one (`0.1`, `5`, `true`, `"150ms"`, `[1, 2]`),
/// else the text as a string (`vote_without_log_check`, `150ms`).
fn parse_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

/// Sets (or with `None` removes) the field at a dotted path, creating tables on the way.
fn set_path(doc: &mut Value, key: &str, value: Option<Value>) -> Result<(), String> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("the key is a dotted path such as params.bug".into());
    }
    let (last, tables) = parts.split_last().expect("split gives at least one part");
    let mut cur = doc;
    for (i, p) in tables.iter().enumerate() {
        let obj = cur
            .as_object_mut()
            .ok_or_else(|| format!("{} is not a table", parts[..i].join(".")))?;
        if !obj.contains_key(*p) {
            if value.is_none() {
                return Err(format!("the scenario has no {key} to remove"));
            }
            obj.insert(p.to_string(), json!({}));
        }
        cur = obj.get_mut(*p).expect("just checked or inserted");
    }
    let obj = cur
        .as_object_mut()
        .ok_or_else(|| format!("{} is not a table", tables.join(".")))?;
    match value {
        Some(v) => {
            obj.insert(last.to_string(), v);
        }
        None => {
            obj.remove(*last)
                .ok_or_else(|| format!("the scenario has no {key} to remove"))?;
        }
    }
    Ok(())
}

/// The comparison of two traces.
struct Difference {
    /// The first index at which the events differ (or one trace ends before the other).
    first: Option<usize>,
    /// The traces' events agree but the runs' trace hashes differ (the hash also covers the
    /// client history and final states).
    hashes_differ: bool,
}

fn compare(a: &Side, b: &Side) -> Difference {
    let first = match (&a.run, &b.run) {
        (Some(ra), Some(rb)) => {
            let (ta, tb) = (
                ra.trace.as_deref().unwrap_or(&[]),
                rb.trace.as_deref().unwrap_or(&[]),
            );
            first_difference(ta, tb, |x, y| x == y)
        }
        _ => {
            let (ta, tb) = (
                a.file_events.as_deref().unwrap_or(&[]),
                b.file_events.as_deref().unwrap_or(&[]),
            );
            first_difference(ta, tb, Ev::same)
        }
    };
    let hashes_differ = match (&a.run, &b.run) {
        (Some(ra), Some(rb)) => ra.trace_hash != rb.trace_hash,
        _ => false,
    };
    Difference {
        first,
        hashes_differ,
    }
}

/// The first index where the sequences differ, counting the end of the shorter one.
fn first_difference<T>(a: &[T], b: &[T], same: impl Fn(&T, &T) -> bool) -> Option<usize> {
    let n = a.len().min(b.len());
    (0..n)
        .find(|&i| !same(&a[i], &b[i]))
        .or((a.len() != b.len()).then_some(n))
}

/// What differs between two events at the same index, in words.
fn what_differs(x: Option<&Ev>, y: Option<&Ev>) -> String {
    let (x, y) = match (x, y) {
        (Some(x), Some(y)) => (x, y),
        (None, Some(_)) => return "A's trace ends here; B's goes on".into(),
        (Some(_), None) => return "B's trace ends here; A's goes on".into(),
        (None, None) => return "both traces end".into(),
    };
    let mut parts = Vec::new();
    if x.kind != y.kind {
        parts.push(format!("kind ({} / {})", x.kind, y.kind));
    }
    if x.node != y.node {
        parts.push("node".to_string());
    }
    if x.peer != y.peer {
        parts.push("peer".to_string());
    }
    if x.label != y.label {
        parts.push("label".to_string());
    }
    if x.time_ns != y.time_ns {
        let d = y.time_ns as i128 - x.time_ns as i128;
        parts.push(format!(
            "time (B {} {})",
            sim_core::time::fmt_signed_ns(d.abs()),
            if d > 0 { "later" } else { "earlier" }
        ));
    }
    if x.msg_id != y.msg_id {
        parts.push("message id".to_string());
    }
    if parts.len() == 1 && x.time_ns != y.time_ns {
        return format!(
            "the same event at another time: {}",
            parts.pop().unwrap_or_default()
        );
    }
    format!("they differ in {}", parts.join(", "))
}

/// One event as a line: time, kind, where, label.
fn line(side: &Side, e: &Ev) -> String {
    let at = match (e.kind.as_str(), e.peer) {
        ("deliver", Some(p)) => format!("{} <- {}", side.name(e.node), side.name(p)),
        (_, Some(p)) => format!("{} -> {}", side.name(e.node), side.name(p)),
        (_, None) => side.name(e.node),
    };
    format!(
        "#{:<7} {:>14}  {:<9} {:<32} {}",
        e.index,
        format!("{:.9}s", e.time_ns as f64 / 1e9),
        e.kind,
        at,
        e.label
    )
}

fn verdict_line(s: &Side) -> String {
    match &s.run {
        Some(r) => {
            let v = match r.violations.first() {
                Some(v) => format!(
                    "{} at {} [{}] {}",
                    r.verdict.as_str(),
                    sim_core::time::fmt_ns(v.time_ns),
                    v.source,
                    v.message
                ),
                None => r.verdict.as_str().to_string(),
            };
            format!(
                "verdict {v}; {} trace events ({} processed), simulated {}, trace hash {}",
                s.len(),
                r.events,
                sim_core::time::fmt_ns(r.simulated_ns),
                r.trace_hash
            )
        }
        None => format!("{} trace events", s.len()),
    }
}

fn print(a: &Side, b: &Side, d: &Difference, context: usize, quiet: bool) {
    let headline = match d.first {
        Some(i) => format!(
            "the runs diverge at trace event {i}{}",
            a.ev(i)
                .or_else(|| b.ev(i))
                .map(|e| format!(" (at {:.9}s)", e.time_ns as f64 / 1e9))
                .unwrap_or_default()
        ),
        None if d.hashes_differ => format!(
            "no difference in the {} trace events, but the trace hashes differ (the client history or final state does)",
            a.len()
        ),
        None => format!("no difference: the {} trace events are the same", a.len()),
    };
    if quiet {
        outln!("{headline}");
        return;
    }
    outln!("A: {}", a.what);
    outln!("   {}", verdict_line(a));
    outln!("B: {}", b.what);
    outln!("   {}", verdict_line(b));
    if a.truncated() || b.truncated() {
        outln!(
            "note: a kept trace reached its memory bound (--trace-memory-max); only the events kept are compared"
        );
    }
    outln!("{headline}");
    let Some(i) = d.first else {
        return;
    };
    outln!(
        "\nthe same {i} event(s) before it; the last {}:",
        context.min(i)
    );
    for j in i.saturating_sub(context)..i {
        if let Some(e) = a.ev(j) {
            outln!("  both {}", line(a, &e));
        }
    }
    let (ea, eb) = (a.ev(i), b.ev(i));
    outln!(
        "\nfirst difference: {}",
        what_differs(ea.as_ref(), eb.as_ref())
    );
    for (tag, s) in [("A", a), ("B", b)] {
        let shown: Vec<Ev> = (i..i + context.max(1)).filter_map(|j| s.ev(j)).collect();
        if shown.is_empty() {
            outln!("  {tag}    (end of trace)");
        }
        for e in shown {
            outln!("  {tag}    {}", line(s, &e));
        }
    }
}

fn side_json(s: &Side) -> Value {
    let mut v = json!({ "what": s.what, "events_kept": s.len(), "truncated": s.truncated() });
    if let Some(r) = &s.run {
        v["scenario"] = json!(r.path);
        v["seed"] = json!(r.seed);
        v["verdict"] = json!(r.verdict.as_str());
        v["events"] = json!(r.events);
        v["trace_hash"] = json!(r.trace_hash);
        v["simulated_ns"] = json!(r.simulated_ns);
        v["servers"] = json!(r.servers);
        v["clients"] = json!(r.clients);
        v["violations"] = serde_json::to_value(&r.violations).unwrap_or(Value::Null);
    }
    v
}

fn ev_json(s: &Side, e: &Ev) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    v["node_name"] = json!(s.name(e.node));
    if let Some(p) = e.peer {
        v["peer_name"] = json!(s.name(p));
    }
    v
}

fn to_json(a: &Side, b: &Side, d: &Difference, context: usize) -> Value {
    let mut out = json!({
        "same": d.first.is_none() && !d.hashes_differ,
        "a": side_json(a),
        "b": side_json(b),
        "hashes_differ": d.hashes_differ,
    });
    if let Some(i) = d.first {
        let window = |s: &Side, r: std::ops::Range<usize>| -> Vec<Value> {
            r.filter_map(|j| s.ev(j)).map(|e| ev_json(s, &e)).collect()
        };
        let (ea, eb) = (a.ev(i), b.ev(i));
        out["divergence"] = json!({
            "index": i,
            "what": what_differs(ea.as_ref(), eb.as_ref()),
            "before": window(a, i.saturating_sub(context)..i),
            "a": window(a, i..i + context.max(1)),
            "b": window(b, i..i + context.max(1)),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_unset_walk_dotted_paths() {
        let mut doc = json!({ "params": { "bug": "x", "n": 1 }, "nodes": 3 });
        set_path(&mut doc, "params.bug", None).unwrap();
        set_path(&mut doc, "nodes", Some(parse_value("5"))).unwrap();
        set_path(&mut doc, "network.loss", Some(parse_value("0.1"))).unwrap();
        set_path(&mut doc, "params.t", Some(parse_value("150ms"))).unwrap();
        assert_eq!(
            doc,
            json!({ "params": { "n": 1, "t": "150ms" }, "nodes": 5, "network": { "loss": 0.1 } })
        );
        assert!(
            set_path(&mut doc, "params.bug", None).is_err(),
            "nothing to remove"
        );
        assert!(
            set_path(&mut doc, "nodes.x", Some(json!(1))).is_err(),
            "not a table"
        );
        assert!(set_path(&mut doc, "a..b", Some(json!(1))).is_err());
    }

    #[test]
    fn the_first_difference_counts_a_trace_that_ends_early() {
        let same = |x: &u32, y: &u32| x == y;
        assert_eq!(first_difference(&[1, 2, 3], &[1, 2, 3], same), None);
        assert_eq!(first_difference(&[1, 2, 3], &[1, 5, 3], same), Some(1));
        assert_eq!(first_difference(&[1, 2], &[1, 2, 3], same), Some(2));
        assert_eq!(first_difference::<u32>(&[], &[], same), None);
    }

    #[test]
    fn clients_are_named_after_the_servers() {
        assert_eq!(node_name(2, Some(3)), "n2");
        assert_eq!(node_name(4, Some(3)), "n4 (client 1)");
        assert_eq!(node_name(4, None), "n4");
    }
}
