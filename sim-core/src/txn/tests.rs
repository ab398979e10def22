//! Tests of the transactional checker: the classic anomalies written by hand, round trips of
//! both file formats, generated histories, and agreement with brute force on thousands of
//! small random histories.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::linearizability::{parse_edn, to_edn};

/// Parses an EDN transactional history.
fn edn(text: &str) -> TxnHistory {
    let h = parse_edn(text).expect("test history is valid EDN");
    parse_txn_history(&h).expect("test history is a valid txn history")
}

fn report(h: &TxnHistory, model: TxnModel, c: Consistency) -> TxnReport {
    check(
        h,
        &TxnCheckOptions {
            model,
            consistency: c,
            ..Default::default()
        },
    )
}

/// The one entry point of these tests: the anomaly names found (under strict
/// serializability, so every class is searched), and the weakest model they rule out.
fn check_classic(text: &str, model: TxnModel, names: &[&str], weakest: Option<Consistency>) {
    let h = edn(text);
    let r = report(&h, model, Consistency::StrictSerializable);
    let found: Vec<String> = r.anomalies.iter().map(Anomaly::name).collect();
    assert_eq!(found, names, "{}", r.render_text());
    assert_eq!(r.ruled_out.first().copied(), weakest, "{}", r.render_text());
    for c in CONSISTENCIES {
        let v = report(&h, model, c).valid;
        assert_eq!(
            v,
            weakest.is_none_or(|w| c < w),
            "{c:?}: {}",
            r.render_text()
        );
    }
    // Every cycle is closed and every edge explained with its reason.
    for a in &r.anomalies {
        for (i, e) in a.cycle.iter().enumerate() {
            assert_eq!(e.to, a.cycle[(i + 1) % a.cycle.len()].from);
            assert!(e.why.contains(&format!("T{}", e.from)), "{}", e.why);
            assert!(
                !e.why
                    .starts_with(&format!("T{} {}", e.from, e.kind.as_str())),
                "{}",
                e.why
            );
        }
    }
}

const LA: TxnModel = TxnModel::ListAppend;

#[test]
fn lost_update_is_g_single() {
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:r 1 nil] [:append 1 1]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:r 1 nil] [:append 1 2]], :time 2}
           {:type :ok, :process 0, :f :txn, :value [[:r 1 []] [:append 1 1]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:r 1 []] [:append 1 2]], :time 4}
           {:type :invoke, :process 2, :f :txn, :value [[:r 1 nil]], :time 5}
           {:type :ok, :process 2, :f :txn, :value [[:r 1 [1 2]]], :time 6}"#,
        LA,
        &["G-single"],
        Some(Consistency::SnapshotIsolation),
    );
    let r = report(
        &edn(
            r#"{:type :invoke, :process 0, :f :txn, :value [[:r 1 nil] [:append 1 1]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:r 1 nil] [:append 1 2]], :time 2}
           {:type :ok, :process 0, :f :txn, :value [[:r 1 []] [:append 1 1]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:r 1 []] [:append 1 2]], :time 4}
           {:type :invoke, :process 2, :f :txn, :value [[:r 1 nil]], :time 5}
           {:type :ok, :process 2, :f :txn, :value [[:r 1 [1 2]]], :time 6}"#,
        ),
        LA,
        Consistency::Serializable,
    );
    let text = r.render_text();
    assert!(
        text.contains("T0 appended 1 to key 1 and T1 appended 2 right after it: T0 ww T1"),
        "{text}"
    );
    assert!(
        text.contains("T1 read key 1 = [] and T0 appended 1, the first element: T1 rw T0"),
        "{text}"
    );
}

#[test]
fn write_skew_is_g2_and_allowed_by_snapshot_isolation() {
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:r :x nil] [:r :y nil] [:append :x 1]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:r :x nil] [:r :y nil] [:append :y 1]], :time 2}
           {:type :ok, :process 0, :f :txn, :value [[:r :x []] [:r :y []] [:append :x 1]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:r :x []] [:r :y []] [:append :y 1]], :time 4}
           {:type :invoke, :process 2, :f :txn, :value [[:r :x nil] [:r :y nil]], :time 5}
           {:type :ok, :process 2, :f :txn, :value [[:r :x [1]] [:r :y [1]]], :time 6}"#,
        LA,
        &["G2"],
        Some(Consistency::Serializable),
    );
}

#[test]
fn aborted_read_is_g1a() {
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append 1 1]], :time 1}
           {:type :fail, :process 0, :f :txn, :value [[:append 1 1]], :time 2}
           {:type :invoke, :process 1, :f :txn, :value [[:r 1 nil]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:r 1 [1]]], :time 4}"#,
        LA,
        &["G1a"],
        Some(Consistency::ReadCommitted),
    );
}

#[test]
fn intermediate_read_is_g1b() {
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append 1 1] [:append 1 2]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:r 1 nil]], :time 2}
           {:type :ok, :process 1, :f :txn, :value [[:r 1 [1]]], :time 3}
           {:type :ok, :process 0, :f :txn, :value [[:append 1 1] [:append 1 2]], :time 4}"#,
        LA,
        // The reader also depends on the writer both ways: it saw 1 but not 2.
        &["G1b", "G-single"],
        Some(Consistency::ReadCommitted),
    );
}

#[test]
fn circular_information_flow_is_g1c() {
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append :x 1] [:r :y nil]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:append :y 1] [:r :x nil]], :time 2}
           {:type :ok, :process 0, :f :txn, :value [[:append :x 1] [:r :y [1]]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:append :y 1] [:r :x [1]]], :time 4}"#,
        LA,
        &["G1c"],
        Some(Consistency::ReadCommitted),
    );
}

#[test]
fn write_cycle_is_g0() {
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append :x 1] [:append :y 1]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:append :x 2] [:append :y 2]], :time 2}
           {:type :ok, :process 0, :f :txn, :value [[:append :x 1] [:append :y 1]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:append :x 2] [:append :y 2]], :time 4}
           {:type :invoke, :process 2, :f :txn, :value [[:r :x nil] [:r :y nil]], :time 5}
           {:type :ok, :process 2, :f :txn, :value [[:r :x [1 2]] [:r :y [2 1]]], :time 6}"#,
        LA,
        &["G0"],
        Some(Consistency::ReadUncommitted),
    );
}

#[test]
fn long_fork_is_ruled_out_by_snapshot_isolation() {
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append :x 1]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:append :y 1]], :time 2}
           {:type :invoke, :process 2, :f :txn, :value [[:r :x nil] [:r :y nil]], :time 3}
           {:type :invoke, :process 3, :f :txn, :value [[:r :y nil] [:r :x nil]], :time 4}
           {:type :ok, :process 0, :f :txn, :value [[:append :x 1]], :time 5}
           {:type :ok, :process 1, :f :txn, :value [[:append :y 1]], :time 6}
           {:type :ok, :process 2, :f :txn, :value [[:r :x [1]] [:r :y []]], :time 7}
           {:type :ok, :process 3, :f :txn, :value [[:r :y [1]] [:r :x []]], :time 8}"#,
        LA,
        &["G-nonadjacent"],
        Some(Consistency::SnapshotIsolation),
    );
}

#[test]
fn stale_read_after_commit_is_serializable_but_not_strict() {
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append 1 1]], :time 1}
           {:type :ok, :process 0, :f :txn, :value [[:append 1 1]], :time 2}
           {:type :invoke, :process 1, :f :txn, :value [[:r 1 nil]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:r 1 []]], :time 4}"#,
        LA,
        &["G-single-realtime"],
        Some(Consistency::StrictSerializable),
    );
}

#[test]
fn histories_no_database_could_produce() {
    // A read of a value nobody appended.
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:r 1 nil]], :time 1}
           {:type :ok, :process 0, :f :txn, :value [[:r 1 [7]]], :time 2}"#,
        LA,
        &["garbage-read"],
        Some(Consistency::ReadUncommitted),
    );
    // A transaction that does not see its own append.
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append 1 1] [:r 1 nil]], :time 1}
           {:type :ok, :process 0, :f :txn, :value [[:append 1 1] [:r 1 []]], :time 2}"#,
        LA,
        &["internal"],
        Some(Consistency::ReadUncommitted),
    );
    // Two reads that no single order of appends explains.
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append 1 1]], :time 1}
           {:type :ok, :process 0, :f :txn, :value [[:append 1 1]], :time 2}
           {:type :invoke, :process 1, :f :txn, :value [[:append 1 2]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:append 1 2]], :time 4}
           {:type :invoke, :process 2, :f :txn, :value [[:r 1 nil]], :time 5}
           {:type :ok, :process 2, :f :txn, :value [[:r 1 [1 2]]], :time 6}
           {:type :invoke, :process 3, :f :txn, :value [[:r 1 nil]], :time 7}
           {:type :ok, :process 3, :f :txn, :value [[:r 1 [2 1]]], :time 8}"#,
        LA,
        &["incompatible-order"],
        Some(Consistency::ReadUncommitted),
    );
    // The same value appended twice.
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:append 1 1]], :time 1}
           {:type :ok, :process 0, :f :txn, :value [[:append 1 1]], :time 2}
           {:type :invoke, :process 1, :f :txn, :value [[:append 1 1]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:append 1 1]], :time 4}"#,
        LA,
        &["duplicate"],
        Some(Consistency::ReadUncommitted),
    );
}

#[test]
fn register_anomalies() {
    let rr = TxnModel::RwRegister;
    // Write skew over registers.
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:r :x nil] [:r :y nil] [:w :x 1]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:r :x nil] [:r :y nil] [:w :y 1]], :time 2}
           {:type :ok, :process 0, :f :txn, :value [[:r :x nil] [:r :y nil] [:w :x 1]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:r :x nil] [:r :y nil] [:w :y 1]], :time 4}"#,
        rr,
        &["G2"],
        Some(Consistency::Serializable),
    );
    // Circular information flow.
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:w :x 1] [:r :y nil]], :time 1}
           {:type :invoke, :process 1, :f :txn, :value [[:w :y 1] [:r :x nil]], :time 2}
           {:type :ok, :process 0, :f :txn, :value [[:w :x 1] [:r :y 1]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:w :y 1] [:r :x 1]], :time 4}"#,
        rr,
        &["G1c"],
        Some(Consistency::ReadCommitted),
    );
    // An aborted read.
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:w :x 1]], :time 1}
           {:type :fail, :process 0, :f :txn, :value [[:w :x 1]], :time 2}
           {:type :invoke, :process 1, :f :txn, :value [[:r :x nil]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:r :x 1]], :time 4}"#,
        rr,
        &["G1a"],
        Some(Consistency::ReadCommitted),
    );
    // A valid history: a read of nil, then of the write.
    check_classic(
        r#"{:type :invoke, :process 0, :f :txn, :value [[:r :x nil] [:w :x 1]], :time 1}
           {:type :ok, :process 0, :f :txn, :value [[:r :x nil] [:w :x 1]], :time 2}
           {:type :invoke, :process 1, :f :txn, :value [[:r :x nil] [:w :x 2]], :time 3}
           {:type :ok, :process 1, :f :txn, :value [[:r :x 1] [:w :x 2]], :time 4}"#,
        rr,
        &[],
        None,
    );
}

#[test]
fn generated_histories_are_strictly_serializable_and_round_trip() {
    for register in [false, true] {
        for seed in 0..20 {
            let h = generate_txn_history(&TxnGenOptions {
                seed,
                txns: 300,
                clients: 5,
                keys: 4,
                max_appends_per_key: 8,
                register,
                info_fraction: 0.1,
                ..Default::default()
            });
            let model = if register { TxnModel::RwRegister } else { LA };
            let r = report(&h, model, Consistency::StrictSerializable);
            assert!(r.valid, "seed {seed}: {}", r.render_text());
            // Through EDN and JSON Lines and back: the same transactions.
            let plain = h.to_history(register);
            let from_edn =
                parse_txn_history(&parse_edn(&to_edn(&plain)).expect("edn")).expect("txn");
            let from_jsonl = parse_txn_history(
                &crate::history::History::from_jsonl(&plain.to_jsonl()).expect("jsonl"),
            )
            .expect("txn");
            // The streaming reader builds exactly what the whole-file path builds.
            let streamed =
                super::read_txn_jsonl(std::io::Cursor::new(plain.to_jsonl())).expect("stream");
            assert_eq!(streamed, from_jsonl, "seed {seed}");
            for back in [from_edn, from_jsonl] {
                assert_eq!(back.txns.len(), h.txns.len());
                assert_eq!(
                    report(&back, model, Consistency::StrictSerializable),
                    r,
                    "seed {seed}"
                );
            }
        }
    }
}

#[test]
fn stale_reads_are_found() {
    let h = generate_txn_history(&TxnGenOptions {
        seed: 3,
        txns: 2_000,
        stale_read_fraction: 0.05,
        ..Default::default()
    });
    let r = report(&h, LA, Consistency::StrictSerializable);
    assert!(!r.valid, "{}", r.render_text());
}

/// A small random list-append history: a random serial execution gives the reads, then some
/// reads are replaced by another prefix of the key's list, and the transactions get random
/// intervals loosely following the execution order.
fn small_history(rng: &mut ChaCha8Rng) -> TxnHistory {
    let n = rng.random_range(1..=7usize);
    let keys = rng.random_range(1..=3u32);
    let mut lists: Vec<Vec<i64>> = vec![Vec::new(); keys as usize];
    let mut next = 0i64;
    let mut txns = Vec::new();
    for _ in 0..n {
        let fail = rng.random_bool(0.08);
        let mut mops = Vec::new();
        let mut undo = lists.clone();
        for _ in 0..rng.random_range(1..=3) {
            let k = rng.random_range(0..keys);
            if rng.random_bool(0.5) {
                next += 1;
                undo[k as usize].push(next);
                mops.push((MopKind::Append, k, next, None));
            } else {
                mops.push((MopKind::Read, k, 0, Some(undo[k as usize].clone())));
            }
        }
        if !fail {
            lists = undo;
        }
        txns.push((fail, mops));
    }
    for (_, mops) in &mut txns {
        for m in mops.iter_mut() {
            if m.0 == MopKind::Read && rng.random_bool(0.2) {
                let full = &lists[m.1 as usize];
                let cut = rng.random_range(0..=full.len());
                m.3 = Some(full[..cut].to_vec());
            }
        }
    }
    let mut h = TxnHistory {
        keys: (0..keys).map(|k| k.to_string()).collect(),
        ..Default::default()
    };
    // Execution order i gets an interval around 10 * i, so real time mostly agrees with it;
    // wide intervals overlap, and shuffled ones disagree.
    let mut order: Vec<usize> = (0..n).collect();
    if rng.random_bool(0.3) {
        let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
        order.swap(a, b);
    }
    let mut timed: Vec<(u64, u64, usize)> = order
        .iter()
        .enumerate()
        .map(|(slot, &t)| {
            let mid = 10 * slot as u64 + 20;
            (
                mid - rng.random_range(0..15),
                mid + rng.random_range(0..15),
                t,
            )
        })
        .collect();
    timed.sort();
    for (p, (inv, done, t)) in timed.into_iter().enumerate() {
        let (fail, mops) = &txns[t];
        let status = if *fail {
            TxnStatus::Fail
        } else {
            TxnStatus::Ok
        };
        h.push(p as u64, status, mops, inv, Some(done));
    }
    h
}

/// Whether some order of the committed transactions (respecting real time when `strict`)
/// runs with every read seeing exactly what it saw.
fn brute_force(h: &TxnHistory, strict: bool) -> bool {
    let ok: Vec<usize> = (0..h.txns.len())
        .filter(|&t| h.txns[t].status == TxnStatus::Ok)
        .collect();
    let mut perm = ok.clone();
    permutations(&mut perm, 0, &mut |order| {
        if strict {
            for (i, &a) in order.iter().enumerate() {
                for &b in &order[..i] {
                    // b is placed before a: wrong if a completed before b was invoked.
                    if h.txns[a]
                        .complete_ns
                        .is_some_and(|c| c < h.txns[b].invoke_ns)
                    {
                        return false;
                    }
                }
            }
        }
        let mut lists: Vec<Vec<i64>> = vec![Vec::new(); h.keys.len()];
        for &t in order {
            for m in h.mops_of(t) {
                match m.kind {
                    MopKind::Append => lists[m.key as usize].push(m.value),
                    _ => {
                        if h.read_of(m) != Some(&lists[m.key as usize][..]) {
                            return false;
                        }
                    }
                }
            }
        }
        true
    })
}

/// Calls `f` on every permutation of `v[k..]` (with `v[..k]` fixed) until it returns true.
fn permutations(v: &mut Vec<usize>, k: usize, f: &mut dyn FnMut(&[usize]) -> bool) -> bool {
    if k == v.len() {
        return f(v);
    }
    for i in k..v.len() {
        v.swap(k, i);
        if permutations(v, k + 1, f) {
            v.swap(k, i);
            return true;
        }
        v.swap(k, i);
    }
    false
}

#[test]
fn agrees_with_brute_force_on_small_histories() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let (mut valid, mut invalid) = ([0; 2], [0; 2]);
    for case in 0..6_000 {
        let h = small_history(&mut rng);
        for (i, c) in [Consistency::Serializable, Consistency::StrictSerializable]
            .into_iter()
            .enumerate()
        {
            let expect = brute_force(&h, c == Consistency::StrictSerializable);
            let r = report(&h, LA, c);
            assert_eq!(
                r.valid,
                expect,
                "case {case}, {c:?}: brute force says {expect}\n{}\n{}",
                to_edn(&h.to_history(false)),
                r.render_text()
            );
            if expect {
                valid[i] += 1;
            } else {
                invalid[i] += 1;
            }
        }
    }
    // Both verdicts are well represented, for both models.
    for i in 0..2 {
        assert!(
            valid[i] > 1_000 && invalid[i] > 1_000,
            "{valid:?} {invalid:?}"
        );
    }
}

#[test]
fn the_streaming_reader_names_the_line_of_a_bad_event() {
    let text = concat!(
        r#"{"type":"invoke","process":0,"time_ns":1,"f":"txn","value":[["append",1,1]]}"#,
        "\n\n",
        r#"{"type":"ok","process":0,"time_ns":2,"f":"txn","value":[["append",1,1]]}"#,
        "\n",
        r#"{"type":"ok","process":0,"time_ns":3,"f":"txn","value":[["append",1,2]]}"#,
        "\n",
    );
    let e = super::read_txn_jsonl(std::io::Cursor::new(text)).unwrap_err();
    assert!(
        e.starts_with("line 4: event 3: ok of a txn by process 0, which has no outstanding"),
        "{e}"
    );
    let e = super::read_txn_jsonl(std::io::Cursor::new("{\"type\": 7}\n")).unwrap_err();
    assert!(e.starts_with("line 1: "), "{e}");
}

#[test]
fn a_register_read_of_a_list_is_shown_not_a_panic() {
    let mut h = TxnHistory::default();
    h.keys.push("5".into());
    h.push(
        0,
        TxnStatus::Ok,
        &[
            (MopKind::Read, 0, 0, Some(vec![])),
            (MopKind::Read, 0, 0, Some(vec![1, 2])),
        ],
        1,
        Some(2),
    );
    let r = super::explain::txn_ref(&h, 0, TxnModel::RwRegister);
    assert_eq!(r.ops, "[r 5 []] [r 5 [1 2]]");
}

/// The streaming reader reads most lines without a JSON tree; every shape the general path
/// accepts must come out the same, and every error must be worded the same.
#[test]
fn the_typed_reading_builds_what_the_general_path_builds() {
    let lines = [
        // String and integer keys naming the same key, a negative key, a huge unsigned one.
        r#"{"type":"invoke","process":0,"time_ns":1,"f":"txn","value":[["append","5",1],["r",5,null],["w",-3,2],["r",18446744073709551615,null]]}"#,
        r#"{"type":"ok","process":0,"time_ns":2,"f":"txn","value":[["append","5",1],["r",5,[1]],["w",-3,2],["r",18446744073709551615,7]]}"#,
        // A read carrying a string on its invocation: accepted (only results are read).
        r#"{"type":"invoke","process":1,"time_ns":3,"f":"txn","value":[["read","k\"q",["x"]],["write","k\"q",4]]}"#,
        r#"{"type":"ok","process":1,"time_ns":4,"f":"txn","value":[["read","k\"q",null],["write","k\"q",4]]}"#,
        // Fail and info completions: their values are not read at all.
        r#"{"type":"invoke","process":2,"time_ns":5,"f":"txn","value":[["append",9,1]]}"#,
        r#"{"type":"fail","process":2,"time_ns":6,"f":"txn","value":"whatever"}"#,
        r#"{"type":"invoke","process":3,"time_ns":7,"f":"txn","key":"x","value":[["append",9,2]]}"#,
        r#"{"type":"info","process":3,"time_ns":8,"f":"txn"}"#,
    ];
    let text = lines.join("\n");
    let general = {
        let mut b = super::TxnBuilder::default();
        for l in &lines {
            let e: crate::history::HistoryEvent = serde_json::from_str(l).expect("event");
            b.push(&e).expect("accepted");
        }
        b.finish()
    };
    let streamed = super::read_txn_jsonl(std::io::Cursor::new(text)).expect("stream");
    assert_eq!(streamed, general);
    assert_eq!(streamed.keys.len(), 5, "{:?}", streamed.keys);
    // Errors: the typed reading hands every line it cannot take to the general path.
    let bad = [
        (r#"[["append",1,1.5]]"#, "must be an integer"),
        (
            r#"[["append",1,9223372036854775808]]"#,
            "must be an integer",
        ),
        (r#"[["cas",1,1]]"#, "use append, w or r"),
        (r#"[["append",1]]"#, "is not [f key value]"),
        (r#"[["append",[1],1]]"#, "must be an integer or a string"),
        (r#"{"a":1}"#, "must be a list"),
    ];
    for (value, want) in bad {
        let line =
            format!(r#"{{"type":"invoke","process":0,"time_ns":1,"f":"txn","value":{value}}}"#);
        let e = super::read_txn_jsonl(std::io::Cursor::new(line.clone())).unwrap_err();
        let ev: crate::history::HistoryEvent = serde_json::from_str(&line).expect("event");
        let g = super::TxnBuilder::default().push(&ev).unwrap_err();
        assert_eq!(e, format!("line 1: {g}"), "{value}");
        assert!(e.contains(want), "{value}: {e}");
    }
    // An ok completion whose read result is not a list of integers.
    let text = concat!(
        r#"{"type":"invoke","process":0,"time_ns":1,"f":"txn","value":[["r",1,null]]}"#,
        "\n",
        r#"{"type":"ok","process":0,"time_ns":2,"f":"txn","value":[["r",1,["a"]]]}"#,
    );
    let e = super::read_txn_jsonl(std::io::Cursor::new(text)).unwrap_err();
    assert!(e.starts_with("line 2: event 2: value \"a\""), "{e}");
}

/// A file read in parts side by side builds exactly what one reader builds, key numbers and
/// first error included, whatever the number of parts and wherever the cuts fall.
#[test]
fn reading_a_file_in_parts_builds_what_one_reader_builds() {
    let h = generate_txn_history(&TxnGenOptions {
        seed: 3,
        txns: 400,
        clients: 6,
        keys: 9,
        max_appends_per_key: 40,
        info_fraction: 0.1,
        ..Default::default()
    });
    let mut lines: Vec<String> = h
        .to_history(false)
        .to_jsonl()
        .lines()
        .map(String::from)
        .collect();
    // Lines the typed reading leaves to the general path, blank lines, and a string key that
    // names an integer key, spread through every part.
    for (i, extra) in [
        r#"{"type":"invoke","process":90,"time_ns":1,"f":"txn","value":[["append","7",1],["r",7,null]]}"#,
        "",
        r#"{"type":"invoke","process":91,"time_ns":1,"f":"txn","value":[["read","new key",["x"]]]}"#,
        "   ",
        r#"{"type":"invoke","process":92,"time_ns":1,"f":"txn","value":[["append",-4,1]]}"#,
    ]
    .iter()
    .enumerate()
    {
        lines.insert(1 + i * lines.len() / 5, extra.to_string());
    }
    let text = lines.join("\n");
    let path =
        std::env::temp_dir().join(format!("distsim-read-parts-{}.jsonl", std::process::id()));
    std::fs::write(&path, &text).expect("write");
    let one = super::read_txn_jsonl(std::io::Cursor::new(text.as_bytes())).expect("one reader");
    assert!(one.keys.iter().any(|k| k == "new key"), "{:?}", one.keys);
    for jobs in 1..=7 {
        let parts = super::read::read_file(&path, jobs, 0).expect("parts");
        assert_eq!(parts.keys, one.keys, "{jobs} parts");
        assert_eq!(parts.txns, one.txns, "{jobs} parts");
        assert_eq!(parts.mops.len(), one.mops.len(), "{jobs} parts");
        for (i, (a, b)) in parts.mops.iter().zip(&one.mops).enumerate() {
            assert_eq!(a, b, "{jobs} parts: mop {i}");
        }
        assert_eq!(parts, one, "{jobs} parts");
    }
    // An error near the end is reported with its line in the whole file.
    let bad_at = lines.len() - 3;
    lines[bad_at] =
        r#"{"type":"invoke","process":0,"time_ns":1,"f":"txn","value":[["cas",1,1]]}"#.into();
    let text = lines.join("\n");
    std::fs::write(&path, &text).expect("write");
    let want = super::read_txn_jsonl(std::io::Cursor::new(text.as_bytes())).unwrap_err();
    assert!(
        want.starts_with(&format!("line {}: ", bad_at + 1)),
        "{want}"
    );
    for jobs in 1..=7 {
        assert_eq!(
            super::read::read_file(&path, jobs, 0).unwrap_err(),
            want,
            "{jobs} parts"
        );
    }
    let _ = std::fs::remove_file(&path);
}
