//! Linearizability checker benchmark: `cargo bench -p sim-core --bench lincheck`.
//!
//! Prints one line per figure: parse and check times, visited-state counts, and peak
//! resident memory (VmHWM from /proc/self/status). Histories come from the seeded generator,
//! so every run checks the same histories.

use std::io::Write as _;
use std::time::{Duration, Instant};

use sim_core::history::History;
use sim_core::linearizability::{
    check, check_all_parts, generate_append_history, generate_history, model_by_name,
    parse_history_file, to_edn, AnyModel, AppendGenOptions, AppendOp, CheckOptions,
    GenerateOptions, KvAppend, Model, RawOp, Verdict,
};

/// Peak resident set size in MiB, if the kernel tells us.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Resets the peak so that the next reading covers only what follows (Linux >= 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn mib(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0} MiB"))
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

struct Case {
    name: &'static str,
    gen: GenerateOptions,
    /// The verdict the generator guarantees.
    expect: Verdict,
    /// Also time the EDN parse.
    edn: bool,
}

fn run(case: &Case, threads: usize) {
    reset_peak_rss();
    let t = Instant::now();
    let history = generate_history(&case.gen);
    let gen_time = t.elapsed();

    // The history goes through a file, as with `distsim run --history` then `distsim check`:
    // written event by event, then read whole and parsed.
    let path = std::env::temp_dir().join(format!("lincheck-bench-{}.jsonl", std::process::id()));
    {
        let file = std::fs::File::create(&path).expect("create temp file");
        let mut w = std::io::BufWriter::new(file);
        for e in &history.events {
            serde_json::to_writer(&mut w, e).expect("write event");
            w.write_all(b"\n").expect("write event");
        }
        w.flush().expect("flush");
    }
    drop(history);
    let t = Instant::now();
    let jsonl = std::fs::read_to_string(&path).expect("read temp file");
    let parsed = History::from_jsonl(&jsonl).expect("generated JSONL parses");
    let parse_time = t.elapsed();
    let jsonl_mib = jsonl.len() as f64 / (1024.0 * 1024.0);
    drop(jsonl);
    let _ = std::fs::remove_file(&path);

    if case.edn {
        let edn = to_edn(&parsed);
        let t = Instant::now();
        let from_edn = parse_history_file("bench.edn", &edn).expect("generated EDN parses");
        let edn_time = t.elapsed();
        assert_eq!(from_edn.events.len(), parsed.events.len());
        println!(
            "{}: parse EDN ({:.0} MiB) {}",
            case.name,
            edn.len() as f64 / (1024.0 * 1024.0),
            secs(edn_time)
        );
    }

    let before_check_peak = peak_rss_mib();
    let model = model_by_name("kv").expect("kv model");
    let opts = CheckOptions {
        timeout: Some(Duration::from_secs(120)),
        max_states: Some(50_000_000),
        threads,
    };
    reset_peak_rss();
    let t = Instant::now();
    let report = check(&parsed, model.as_ref(), &opts).expect("generated history is well formed");
    let check_time = t.elapsed();
    let check_peak = peak_rss_mib();
    assert_eq!(report.verdict(), case.expect, "{}", report.render_text());
    let biggest = report.parts.iter().map(|p| p.ops_count).max().unwrap_or(0);
    println!(
        "{}: {} ops, {} keys, {} clients, {:.0}% info | generate {} | read+parse JSONL ({:.0} MiB) {} | check ({} threads) {} -> {} | {} states visited (largest part {} ops) | peak RSS: generate+parse {}, check {}",
        case.name,
        case.gen.ops,
        case.gen.keys,
        case.gen.clients,
        case.gen.info_fraction * 100.0,
        secs(gen_time),
        jsonl_mib,
        secs(parse_time),
        threads,
        secs(check_time),
        report.verdict().as_str(),
        report.visited_states,
        biggest,
        mib(before_check_peak),
        mib(check_peak),
    );
}

/// `kv-append` without the pruning by state, to measure what the pruning buys.
struct NoPrune;

impl Model for NoPrune {
    type State = String;
    type Input = AppendOp;
    type Output = String;
    fn name(&self) -> &str {
        "kv-append (no pruning)"
    }
    fn init(&self) -> String {
        KvAppend.init()
    }
    fn partition(&self, op: &RawOp<'_>) -> Result<Option<String>, String> {
        KvAppend.partition(op)
    }
    fn decode(&self, op: &RawOp<'_>) -> Result<(AppendOp, Option<String>), String> {
        KvAppend.decode(op)
    }
    fn step(&self, s: &String, i: &AppendOp, o: Option<&String>) -> Option<String> {
        KvAppend.step(s, i, o)
    }
    fn is_read_only(&self, i: &AppendOp) -> bool {
        KvAppend.is_read_only(i)
    }
    fn describe_op(&self, i: &AppendOp, o: Option<&String>) -> String {
        KvAppend.describe_op(i, o)
    }
    fn describe_state(&self, s: &String) -> String {
        KvAppend.describe_state(s)
    }
}

/// Porcupine-shaped `kv-append` histories (50 clients, 10 keys, get/put/append), checked with
/// and without pruning, stopping at the first failing key and checking every key.
fn porcupine_shaped(threads: usize, filter: Option<&str>) {
    for (ops, bad, seed) in [
        (5_000, false, 11),
        (5_000, true, 12),
        (5_000, true, 13),
        (20_000, false, 11),
        (20_000, true, 12),
        (20_000, true, 13),
    ] {
        let name = format!(
            "porcupine-shaped c50-{} {ops} ops (seed {seed})",
            if bad { "bad" } else { "ok" }
        );
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let h = generate_append_history(&AppendGenOptions {
            seed,
            ops,
            keys: 10,
            clients: 50,
            bad,
        });
        let expect = if bad {
            Verdict::NotLinearizable
        } else {
            Verdict::Linearizable
        };
        let opts = CheckOptions {
            timeout: Some(Duration::from_secs(60)),
            max_states: Some(4_000_000),
            threads,
        };
        let pruned = model_by_name("kv-append").expect("kv-append model");
        let models: [(&str, &dyn AnyModel); 2] =
            [("pruned", pruned.as_ref()), ("no pruning", &NoPrune)];
        for (label, model) in models {
            for all in [false, true] {
                let t = Instant::now();
                let r = if all {
                    check_all_parts(&h, model, &opts)
                } else {
                    check(&h, model, &opts)
                }
                .expect("generated history is well formed");
                let took = t.elapsed();
                let decided = r.verdict() == expect;
                println!(
                    "{name}: {} events, {label}, {} | {} -> {}{} | {} states visited, {} parts checked, {} skipped",
                    h.events.len(),
                    if all { "--all-parts" } else { "first failure" },
                    secs(took),
                    r.verdict().as_str(),
                    if decided { "" } else { " (NOT the expected verdict)" },
                    r.visited_states,
                    r.parts.len(),
                    r.skipped_parts
                );
            }
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a name filter is accepted to run one case.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cases = [
        Case {
            name: "1M ops / 1000 keys",
            gen: GenerateOptions {
                seed: 1,
                ops: 1_000_000,
                keys: 1_000,
                clients: 20,
                info_fraction: 0.01,
                inject_violation: false,
            },
            expect: Verdict::Linearizable,
            edn: true,
        },
        Case {
            name: "single key 10k ops",
            gen: GenerateOptions {
                seed: 2,
                ops: 10_000,
                keys: 1,
                clients: 10,
                info_fraction: 0.0,
                inject_violation: false,
            },
            expect: Verdict::Linearizable,
            edn: false,
        },
        Case {
            name: "single key 10k ops, 1% info",
            gen: GenerateOptions {
                seed: 3,
                ops: 10_000,
                keys: 1,
                clients: 10,
                info_fraction: 0.01,
                inject_violation: false,
            },
            expect: Verdict::Linearizable,
            edn: false,
        },
        Case {
            name: "violation: 100k ops / 100 keys, stale read injected",
            gen: GenerateOptions {
                seed: 4,
                ops: 100_000,
                keys: 100,
                clients: 20,
                info_fraction: 0.01,
                inject_violation: true,
            },
            expect: Verdict::NotLinearizable,
            edn: false,
        },
    ];
    for case in &cases {
        if filter.as_deref().is_some_and(|f| !case.name.contains(f)) {
            continue;
        }
        run(case, cores);
    }
    porcupine_shaped(cores, filter.as_deref());
}
