//! End-to-end tests of `distsim check` as a user runs it: transactional histories and their
//! anomalies, model detection and hints, bad timestamps, exit codes (0 pass, 1 violation,
//! 2 bad input, 3 unknown), JSON timings, and mutated files through the real binary.

mod common;
use common::{distsim, stderr, stdout};

use std::process::Output;

/// A small seeded generator (xorshift), so this test needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// The one entry point: runs `distsim check ARGS` and checks the exit code and that stdout or
/// stderr contains each expected piece.
fn check(args: &[&str], code: i32, expect: &[&str]) -> Output {
    let mut all = vec!["check"];
    all.extend_from_slice(args);
    let o = distsim(&all);
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(code), "{args:?}: {text}");
    for e in expect {
        assert!(text.contains(e), "{args:?}: expected {e:?} in:\n{text}");
    }
    o
}

#[test]
fn transactional_anomalies_are_found_and_explained() {
    check(
        &["examples/histories/txn-lost-update.edn"],
        1,
        &[
            "model list-append chosen",
            "G-single",
            "T1 read key 1 = [] and T0 appended 1, the first element: T1 rw T0",
            "T0 appended 1 to key 1 and T1 appended 2 right after it: T0 ww T1",
        ],
    );
    check(
        &[
            "examples/histories/txn-write-skew.edn",
            "--model",
            "list-append",
        ],
        1,
        &["G2", "ruled out: serializable, strict-serializable"],
    );
    check(
        &[
            "examples/histories/txn-write-skew.edn",
            "--consistency",
            "snapshot-isolation",
        ],
        0,
        &["valid (model list-append, consistency snapshot-isolation)"],
    );
    check(
        &["examples/histories/txn-long-fork.jsonl"],
        1,
        &["G-nonadjacent", "T0 wr T2"],
    );
    check(
        &[
            "examples/histories/txn-long-fork.jsonl",
            "--consistency",
            "nope",
        ],
        2,
        &["--consistency nope: unknown; use one of: read-uncommitted"],
    );
    let dir = std::env::temp_dir().join(format!("distsim-txn-report-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    check(
        &["examples/histories/txn-long-fork.jsonl", "--report", d],
        1,
        &["report written to"],
    );
    let svg = std::fs::read_to_string(dir.join("cycle-1.svg")).unwrap();
    assert!(svg.contains(">T0<") && svg.contains("rw (key x)"), "{svg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_linearizability_report_explains_in_tables_not_raw_json() {
    let dir = std::env::temp_dir().join(format!("distsim-lin-report-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    check(
        &["examples/histories/stale-read.jsonl", "--report", d],
        1,
        &["report written to"],
    );
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(html.contains("is not linearizable</h3>"), "{html}");
    assert!(html.contains("<table class=list>"), "{html}");
    // The checker's data is still there, folded away.
    assert!(html.contains("<details><summary>The checker's report as data"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn models_are_detected_and_suggested() {
    check(
        &["examples/histories/kv-append-bad.jsonl"],
        1,
        &[
            "model kv-append chosen because operations include append",
            "key a: linearized 1 of 2 ops",
        ],
    );
    check(
        &["examples/histories/kv-append-bad.jsonl", "--model", "kv"],
        2,
        &["hint: this history looks like --model kv-append"],
    );
    check(
        &[
            "examples/histories/queue-knossos.edn",
            "--model",
            "register",
        ],
        2,
        &["hint: this history looks like --model queue"],
    );
    check(
        &["examples/histories/knossos-multi-register.edn"],
        0,
        &["model kv chosen because values are [key value] pairs"],
    );
    check(
        &["examples/histories/txn-lost-update.edn", "--model", "kv"],
        2,
        &["hint: this history looks like --model list-append"],
    );
}

#[test]
fn exit_codes_and_json() {
    check(
        &["examples/histories/completes-before-invoke.jsonl"],
        2,
        &[
            "line 2: event 2: ok of \"write\"",
            "completes before its invocation",
        ],
    );
    check(
        &["examples/histories/stale-read.jsonl", "--timeout", "0s"],
        3,
        &["unknown"],
    );
    let o = check(
        &["examples/histories/kv-append-bad.jsonl", "--json"],
        1,
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert!(v["parse_ns"].is_u64() && v["check_ns"].is_u64(), "{v}");
    assert_eq!(v["skipped_parts"], 1);
    assert!(v["model_note"].as_str().unwrap().contains("kv-append"));
    let o = check(
        &[
            "examples/histories/kv-append-bad.jsonl",
            "--json",
            "--all-parts",
            "--jobs",
            "2",
        ],
        1,
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["skipped_parts"], 0);
    assert_eq!(v["parts"].as_array().unwrap().len(), 2);
    let o = check(
        &["examples/histories/txn-lost-update.edn", "--json"],
        1,
        &[],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(v["anomalies"][0]["kind"], "G-single");
    assert_eq!(v["anomalies"][0]["cycle"][0]["kind"], "rw");
}

/// Mutated history files through the binary: every case exits 0, 1, 2 or 3 with a message.
/// (The library-level fuzzer in sim-core/tests/fuzz_histories.rs runs many more cases.)
#[test]
fn mutated_files_through_the_binary_exit_with_a_code_and_a_message() {
    let cases: u64 = std::env::var("DISTSIM_FUZZ_CLI_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let dir = std::env::temp_dir().join(format!("distsim-fuzz-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seeds = [
        "examples/histories/txn-lost-update.edn",
        "examples/histories/kv-append-bad.jsonl",
        "examples/histories/stale-read.jsonl",
        "examples/histories/jepsen-register.edn",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for case in 0..cases {
        let seed = seeds[rng.below(seeds.len())];
        let mut bytes = std::fs::read(seed).unwrap();
        match rng.below(3) {
            0 => bytes.truncate(rng.below(bytes.len() + 1)),
            1 => {
                for _ in 0..1 + rng.below(5) {
                    let i = rng.below(bytes.len() + 1);
                    bytes.insert(i, rng.below(256) as u8);
                }
            }
            _ => {
                let s = String::from_utf8_lossy(&bytes)
                    .replacen('1', "18446744073709551616", 2)
                    .replacen("ok", "invoke", 1);
                bytes = s.into_bytes();
            }
        }
        let ext = if seed.ends_with(".edn") {
            "edn"
        } else {
            "jsonl"
        };
        let path = dir.join(format!("case-{case}.{ext}"));
        std::fs::write(&path, &bytes).unwrap();
        let o = distsim(&["check", path.to_str().unwrap(), "--timeout", "5s"]);
        let code = o.status.code();
        assert!(
            matches!(code, Some(0..=3)),
            "case {case} from {seed}: exit {code:?}\n{}",
            stderr(&o)
        );
        assert!(
            !stdout(&o).trim().is_empty() || !stderr(&o).trim().is_empty(),
            "case {case}: no message"
        );
        assert!(
            !stderr(&o).contains("panicked"),
            "case {case}: {}",
            stderr(&o)
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}
