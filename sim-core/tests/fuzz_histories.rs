//! Seeded fuzzing of the history checkers: mutated history files (truncations, type swaps,
//! extreme numbers, garbage bytes, deleted and repeated lines) go through the same steps as
//! `distsim check` (parse, detect the model, check under a state budget), and every case must
//! end with a verdict or an error message, never a panic.
//!
//! The CI runs a few thousand cases; `DISTSIM_FUZZ_CASES=1000000 cargo test --release -p
//! sim-core --test fuzz_histories` runs a million (and `DISTSIM_FUZZ_SEED` picks another
//! stream). A failing case is written to the temp folder and named in the panic message.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim_core::linearizability as lin;
use sim_core::txn;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The seed files: every example history, plus a generated transactional one.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/histories");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("examples/histories exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "edn" || x == "jsonl"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("readable"))
        })
        .collect();
    out.sort();
    let h = txn::generate_txn_history(&txn::TxnGenOptions {
        txns: 30,
        info_fraction: 0.2,
        ..Default::default()
    });
    out.push((
        "gen.jsonl".into(),
        h.to_history(false).to_jsonl().into_bytes(),
    ));
    out
}

const EXTREMES: &[&str] = &[
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775808",
    "9223372036854775807",
    "1e308",
    "-0",
    "99999999999999999999999999",
    "4294967295",
    "null",
    "\"\"",
    "[]",
    "{}",
    "[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]",
];
const TYPES: &[&str] = &[
    "invoke", "ok", "fail", "info", "txn", "append", "r", "w", "cas",
];

/// One random mutation of `text`.
fn mutate(rng: &mut ChaCha8Rng, text: &[u8]) -> Vec<u8> {
    let mut t = text.to_vec();
    let at = |rng: &mut ChaCha8Rng, t: &[u8]| rng.random_range(0..=t.len());
    match rng.random_range(0..7) {
        0 => t.truncate(at(rng, &t)),
        1 => {
            // Replace a word (a type, a function, a keyword) by another.
            let s = String::from_utf8_lossy(&t).into_owned();
            let from = TYPES[rng.random_range(0..TYPES.len())];
            let to = TYPES[rng.random_range(0..TYPES.len())];
            t = s.replacen(from, to, rng.random_range(1..4)).into_bytes();
        }
        2 => {
            // Replace a run of digits by an extreme number.
            let s = String::from_utf8_lossy(&t).into_owned();
            let digits: Vec<usize> = s.match_indices(char::is_numeric).map(|(i, _)| i).collect();
            if let Some(&i) = digits.get(rng.random_range(0..digits.len().max(1))) {
                let end = s[i..]
                    .find(|c: char| !c.is_numeric())
                    .map_or(s.len(), |e| i + e);
                let x = EXTREMES[rng.random_range(0..EXTREMES.len())];
                t = format!("{}{x}{}", &s[..i], &s[end..]).into_bytes();
            }
        }
        3 => {
            for _ in 0..rng.random_range(1..8) {
                let i = at(rng, &t);
                t.insert(i, rng.random());
            }
        }
        4 => {
            // Delete or repeat a line.
            let mut lines: Vec<Vec<u8>> = t.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let i = rng.random_range(0..lines.len());
            if rng.random_bool(0.5) {
                lines.remove(i);
            } else {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            t = lines.join(&b'\n');
        }
        5 => {
            // Swap two lines: completions before invocations, processes interleaved wrongly.
            let mut lines: Vec<Vec<u8>> = t.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let (a, b) = (
                rng.random_range(0..lines.len()),
                rng.random_range(0..lines.len()),
            );
            lines.swap(a, b);
            t = lines.join(&b'\n');
        }
        _ => {
            // Delimiters removed or doubled.
            for _ in 0..rng.random_range(1..4) {
                if t.is_empty() {
                    break;
                }
                let i = rng.random_range(0..t.len());
                const DELIMS: &[u8] = b"[]{}()\",: ";
                let d = DELIMS[rng.random_range(0..DELIMS.len())];
                t[i] = d;
            }
        }
    }
    t
}

/// What `distsim check` does with a file, without printing: Ok(verdict name) or Err(message).
fn check_like_the_cli(name: &str, bytes: &[u8]) -> Result<String, String> {
    // A JSON Lines file goes through the streaming transactional reader first, as the CLI
    // tries it: it must not panic, and when it reads the file, the general path must agree.
    let streamed = (!name.ends_with(".edn")).then(|| txn::read_txn_jsonl(bytes));
    let text = String::from_utf8_lossy(bytes);
    let history = lin::parse_history_file(name, &text)?;
    let detected = lin::detect_model(&history);
    if let Some(model) = txn::TxnModel::by_name(detected.model) {
        let h = txn::parse_txn_history(&history)?;
        if let Some(Ok(s)) = &streamed {
            assert_eq!(s, &h, "the streaming reader and the general path disagree");
        }
        let r = txn::check(
            &h,
            &txn::TxnCheckOptions {
                model,
                ..Default::default()
            },
        );
        assert!(r.valid || !r.anomalies.is_empty());
        return Ok(if r.valid { "valid" } else { "not valid" }.into());
    }
    let model = lin::model_by_name(detected.model).expect("detected models exist");
    let opts = lin::CheckOptions {
        timeout: Some(Duration::from_secs(5)),
        max_states: Some(100_000),
        threads: 1,
    };
    let r = lin::check(&history, model.as_ref(), &opts)?;
    assert!(r.visited_states <= 100_000 * (r.parts.len() as u64 + 1));
    Ok(r.verdict().as_str().into())
}

#[test]
fn mutated_histories_never_panic() {
    let cases = env_u64("DISTSIM_FUZZ_CASES", 3_000);
    let mut rng = ChaCha8Rng::seed_from_u64(env_u64("DISTSIM_FUZZ_SEED", 1));
    let seeds = seeds();
    let (mut verdicts, mut errors) = (0u64, 0u64);
    for case in 0..cases {
        let (name, base) = &seeds[rng.random_range(0..seeds.len())];
        let mut bytes = base.clone();
        for _ in 0..rng.random_range(1..4) {
            bytes = mutate(&mut rng, &bytes);
        }
        match catch_unwind(AssertUnwindSafe(|| check_like_the_cli(name, &bytes))) {
            Ok(Ok(_)) => verdicts += 1,
            Ok(Err(message)) => {
                assert!(!message.trim().is_empty(), "case {case}: an empty error");
                errors += 1;
            }
            Err(_) => {
                let path = std::env::temp_dir().join(format!("fuzz-case-{case}-{name}"));
                let _ = std::fs::write(&path, &bytes);
                panic!(
                    "case {case} (from {name}) panicked; input saved to {}",
                    path.display()
                );
            }
        }
    }
    // The mutations must reach both outcomes, or the fuzzer tests nothing.
    assert!(
        verdicts > cases / 20 && errors > cases / 20,
        "{verdicts} verdicts, {errors} errors"
    );
}
