//! Tests of the linearizability checker: agreement with a brute-force checker on random small
//! histories, the classic anomalies with their evidence, file formats, budgets, determinism.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::*;
use crate::history::{EventType, History, HistoryEvent};

/// Builds histories by hand; every event gets the next microsecond.
#[derive(Default)]
struct Builder {
    events: Vec<HistoryEvent>,
}

impl Builder {
    fn push(&mut self, kind: EventType, process: u64, f: &str, key: Option<&str>, value: Value) {
        let time_ns = (self.events.len() as u64 + 1) * 1_000;
        self.events.push(HistoryEvent {
            kind,
            process,
            time_ns,
            f: f.to_owned(),
            key: key.map(str::to_owned),
            value,
        });
    }
    fn invoke(mut self, p: u64, f: &str, v: Value) -> Self {
        self.push(EventType::Invoke, p, f, None, v);
        self
    }
    fn ok(mut self, p: u64, f: &str, v: Value) -> Self {
        self.push(EventType::Ok, p, f, None, v);
        self
    }
    fn info(mut self, p: u64, f: &str) -> Self {
        self.push(EventType::Info, p, f, None, Value::Null);
        self
    }
    /// Invoke and ok back to back.
    fn op(self, p: u64, f: &str, arg: Value, result: Value) -> Self {
        self.invoke(p, f, arg).ok(p, f, result)
    }
    fn build(self) -> History {
        History {
            events: self.events,
        }
    }
}

fn opts() -> CheckOptions {
    CheckOptions {
        timeout: None,
        max_states: Some(1_000_000),
        threads: 1,
    }
}

fn run(history: &History, model: &str) -> CheckReport {
    let model = model_by_name(model).expect("known model");
    check(history, model.as_ref(), &opts()).expect("well-formed history")
}

/// The single failing part's evidence.
fn failure(report: &CheckReport) -> &Failure {
    assert_eq!(
        report.verdict(),
        Verdict::NotLinearizable,
        "{}",
        report.render_text()
    );
    let fails: Vec<&PartReport> = report.failures().collect();
    assert_eq!(fails.len(), 1);
    fails[0].failure.as_ref().expect("evidence")
}

fn blocked_descriptions(f: &Failure) -> Vec<&str> {
    f.cannot_place
        .iter()
        .map(|o| o.description.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Classics.

#[test]
fn stale_read_after_completed_write() {
    let h = Builder::default()
        .op(0, "write", json!(1), json!(1))
        .op(1, "write", json!(2), json!(2))
        .op(2, "read", Value::Null, json!(1))
        .build();
    let r = run(&h, "register");
    let f = failure(&r);
    assert_eq!(blocked_descriptions(f), vec!["read -> 1"]);
    assert_eq!(f.cannot_place[0].event, 5);
    assert_eq!(f.cannot_place[0].process, 2);
    let lin: Vec<&str> = f
        .linearized
        .iter()
        .map(|s| s.op.description.as_str())
        .collect();
    assert_eq!(lin, vec!["write 1", "write 2"]);
    assert_eq!(f.final_state, "2");
    let text = r.render_text();
    assert!(text.contains("not linearizable"), "{text}");
    assert!(
        text.contains("cannot place: read -> 1 (event 5, process 2, invoked at 0.000005s, returned at 0.000006s)"),
        "{text}"
    );
}

#[test]
fn lost_write_counter_and_append() {
    let h = Builder::default()
        .op(0, "add", json!(1), json!(1))
        .op(1, "add", json!(1), json!(1))
        .op(2, "read", Value::Null, json!(1))
        .build();
    let r = run(&h, "counter");
    assert_eq!(blocked_descriptions(failure(&r)), vec!["read -> 1"]);

    let mut b = Builder::default();
    for (p, f, arg, res) in [
        (0, "append", json!("a"), json!("a")),
        (1, "append", json!("b"), json!("b")),
        (2, "get", Value::Null, json!("a")),
    ] {
        b.push(EventType::Invoke, p, f, Some("x"), arg);
        b.push(EventType::Ok, p, f, Some("x"), res);
    }
    let r = run(&b.build(), "kv-append");
    let f = failure(&r);
    assert_eq!(blocked_descriptions(f), vec!["get -> \"a\""]);
    assert_eq!(
        r.failures().next().and_then(|p| p.key.as_deref()),
        Some("x")
    );
}

#[test]
fn two_cas_from_one_value_both_succeed() {
    let h = Builder::default()
        .op(0, "write", json!(0), json!(0))
        .invoke(1, "cas", json!([0, 1]))
        .invoke(2, "cas", json!([0, 2]))
        .ok(1, "cas", json!([0, 1]))
        .ok(2, "cas", json!([0, 2]))
        .build();
    let r = run(&h, "register");
    let f = failure(&r);
    let blocked = blocked_descriptions(f);
    assert_eq!(blocked.len(), 1);
    assert!(
        blocked[0] == "cas 0->1" || blocked[0] == "cas 0->2",
        "{blocked:?}"
    );
    assert_eq!(f.linearized.len(), 2);
    assert_eq!(f.linearized[0].op.description, "write 0");
}

#[test]
fn read_of_value_later_overwritten_by_concurrent_write_is_linearizable() {
    let h = Builder::default()
        .op(0, "write", json!(1), json!(1))
        .invoke(1, "write", json!(2))
        .invoke(2, "read", Value::Null)
        .ok(2, "read", json!(1))
        .op(3, "read", Value::Null, json!(2))
        .ok(1, "write", json!(2))
        .build();
    let r = run(&h, "register");
    assert_eq!(r.verdict(), Verdict::Linearizable, "{}", r.render_text());
    assert!(r
        .render_text()
        .starts_with("linearizable (model register): 4 ops"));
}

#[test]
fn new_then_old_read_during_a_write_is_not_linearizable() {
    let h = Builder::default()
        .op(0, "write", json!(1), json!(1))
        .invoke(1, "write", json!(2))
        .op(2, "read", Value::Null, json!(2))
        .op(3, "read", Value::Null, json!(1))
        .ok(1, "write", json!(2))
        .build();
    let r = run(&h, "register");
    assert_eq!(blocked_descriptions(failure(&r)), vec!["read -> 1"]);
}

#[test]
fn crashed_write_whose_effect_appears_late_is_linearizable() {
    let h = Builder::default()
        .op(0, "write", json!(1), json!(1))
        .invoke(1, "write", json!(2))
        .info(1, "write")
        .op(2, "read", Value::Null, json!(1))
        .op(3, "read", Value::Null, json!(1))
        .op(4, "read", Value::Null, json!(2))
        .build();
    let r = run(&h, "register");
    assert_eq!(r.verdict(), Verdict::Linearizable, "{}", r.render_text());
    assert_eq!(r.info_count, 1);

    // The same write never completing at all is treated the same way.
    let h = Builder::default()
        .op(0, "write", json!(1), json!(1))
        .invoke(1, "write", json!(2))
        .op(2, "read", Value::Null, json!(1))
        .op(4, "read", Value::Null, json!(2))
        .build();
    assert_eq!(run(&h, "register").verdict(), Verdict::Linearizable);

    // But its effect cannot appear before it was invoked.
    let h = Builder::default()
        .op(0, "write", json!(1), json!(1))
        .op(2, "read", Value::Null, json!(2))
        .invoke(1, "write", json!(2))
        .info(1, "write")
        .build();
    let r = run(&h, "register");
    assert_eq!(blocked_descriptions(failure(&r)), vec!["read -> 2"]);
}

#[test]
fn info_write_may_never_take_effect_and_fail_never_does() {
    let h = Builder::default()
        .op(0, "write", json!(1), json!(1))
        .invoke(1, "write", json!(2))
        .info(1, "write")
        .op(2, "read", Value::Null, json!(1))
        .build();
    assert_eq!(run(&h, "register").verdict(), Verdict::Linearizable);

    let h = Builder::default()
        .op(0, "write", json!(1), json!(1))
        .invoke(1, "write", json!(2))
        .build();
    let mut events = h.events;
    events.push(HistoryEvent {
        kind: EventType::Fail,
        process: 1,
        time_ns: 9_000,
        f: "write".into(),
        key: None,
        value: json!(2),
    });
    let mut h = History { events };
    h.events.extend(
        Builder::default()
            .op(2, "read", Value::Null, json!(2))
            .build()
            .events,
    );
    let r = run(&h, "register");
    assert_eq!(r.fail_count, 1);
    assert_eq!(blocked_descriptions(failure(&r)), vec!["read -> 2"]);
}

#[test]
fn read_of_never_written_register_is_null() {
    let h = Builder::default()
        .op(0, "read", Value::Null, Value::Null)
        .op(0, "write", json!(1), json!(1))
        .build();
    assert_eq!(run(&h, "register").verdict(), Verdict::Linearizable);
    let h = Builder::default()
        .op(0, "read", Value::Null, json!(7))
        .build();
    let r = run(&h, "register");
    let f = failure(&r);
    assert!(f.linearized.is_empty());
    assert_eq!(f.final_state, "nil");
    assert!(r.render_text().contains("none: no operation can go first"));
}

#[test]
fn lock_mutual_exclusion() {
    let h = Builder::default()
        .op(0, "acquire", Value::Null, Value::Null)
        .op(1, "acquire", Value::Null, Value::Null)
        .build();
    let r = run(&h, "lock");
    assert_eq!(blocked_descriptions(failure(&r)), vec!["acquire by 1"]);
    let h = Builder::default()
        .op(0, "acquire", json!("a"), Value::Null)
        .op(1, "release", json!("a"), Value::Null)
        .op(1, "acquire", json!("b"), Value::Null)
        .build();
    assert_eq!(run(&h, "lock").verdict(), Verdict::Linearizable);
}

#[test]
fn queue_and_set_semantics() {
    let h = Builder::default()
        .op(0, "enqueue", json!(1), json!(1))
        .op(0, "enqueue", json!(2), json!(2))
        .op(1, "dequeue", Value::Null, json!(2))
        .build();
    let r = run(&h, "queue");
    assert_eq!(blocked_descriptions(failure(&r)), vec!["dequeue -> 2"]);
    let h = Builder::default()
        .op(1, "dequeue", Value::Null, Value::Null)
        .op(0, "enqueue", json!(1), json!(1))
        .op(1, "dequeue", Value::Null, json!(1))
        .build();
    assert_eq!(run(&h, "queue").verdict(), Verdict::Linearizable);
    let h = Builder::default()
        .op(0, "add", json!(1), json!(1))
        .op(0, "add", json!(2), json!(2))
        .op(1, "read", Value::Null, json!([2, 1]))
        .op(1, "read", Value::Null, json!([1]))
        .build();
    let r = run(&h, "set");
    assert_eq!(blocked_descriptions(failure(&r)), vec!["read -> #{1}"]);
}

#[test]
fn kv_checks_keys_independently_and_reports_the_failing_key() {
    let mut b = Builder::default();
    for (p, f, key, arg, res) in [
        (0, "put", "a", json!(1), json!(1)),
        (1, "write", "b", json!(5), json!(5)),
        (2, "get", "a", Value::Null, json!(1)),
        (3, "read", "b", Value::Null, json!(4)),
    ] {
        b.push(EventType::Invoke, p, f, Some(key), arg);
        b.push(EventType::Ok, p, f, Some(key), res);
    }
    let r = run(&b.build(), "kv");
    assert_eq!(r.parts.len(), 2);
    assert_eq!(r.parts[0].key.as_deref(), Some("a"));
    assert_eq!(r.parts[0].verdict, Verdict::Linearizable);
    assert_eq!(r.parts[1].verdict, Verdict::NotLinearizable);
    assert_eq!(blocked_descriptions(failure(&r)), vec!["read -> 4"]);
    assert!(r
        .render_text()
        .contains("key b: linearized 1 of 2 ops [write 5]; cannot place: read -> 4"));
}

#[test]
fn malformed_histories_are_errors_naming_the_event() {
    let m = model_by_name("register").expect("register");
    let h = Builder::default().ok(0, "read", json!(1)).build();
    let e = check(&h, m.as_ref(), &opts()).unwrap_err();
    assert!(
        e.starts_with("event 1:") && e.contains("no outstanding"),
        "{e}"
    );

    let h = Builder::default()
        .invoke(0, "read", Value::Null)
        .invoke(0, "read", Value::Null)
        .build();
    let e = check(&h, m.as_ref(), &opts()).unwrap_err();
    assert!(e.starts_with("event 2:"), "{e}");

    let h = Builder::default()
        .op(0, "frobnicate", Value::Null, Value::Null)
        .build();
    let e = check(&h, m.as_ref(), &opts()).unwrap_err();
    assert!(e.starts_with("event 1:") && e.contains("frobnicate"), "{e}");

    let h = Builder::default()
        .op(0, "read", Value::Null, Value::Null)
        .op(0, "cas", json!(3), json!(3))
        .build();
    let e = check(&h, m.as_ref(), &opts()).unwrap_err();
    assert!(e.starts_with("event 3:") && e.contains("[from to]"), "{e}");

    let kv = model_by_name("kv").expect("kv");
    let h = Builder::default()
        .op(0, "write", json!(3), json!(3))
        .build();
    let e = check(&h, kv.as_ref(), &opts()).unwrap_err();
    assert!(e.contains("no key"), "{e}");

    let h = Builder::default()
        .invoke(0, "read", Value::Null)
        .ok(0, "write", json!(1))
        .build();
    let e = check(&h, m.as_ref(), &opts()).unwrap_err();
    assert!(e.starts_with("event 2:"), "{e}");
}

#[test]
fn model_lookup() {
    for name in MODEL_NAMES {
        let m = model_by_name(name).expect("listed models exist");
        assert_eq!(m.model_name(), *name);
    }
    assert!(model_by_name("nope").is_none());
}

// ---------------------------------------------------------------------------------------------
// Budgets and determinism.

/// 24 overlapping writes of distinct values, then a read of a value never written: the
/// search must try every subset of the writes before it can say no.
fn pathological() -> History {
    let mut b = Builder::default();
    for p in 0..24 {
        b = b.invoke(p, "write", json!(p));
    }
    for p in 0..24 {
        b = b.ok(p, "write", json!(p));
    }
    b.op(100, "read", Value::Null, json!(999)).build()
}

#[test]
fn tiny_state_budget_gives_unknown() {
    let h = pathological();
    let m = model_by_name("register").expect("register");
    let o = CheckOptions {
        timeout: None,
        max_states: Some(1_000),
        threads: 1,
    };
    let r = check(&h, m.as_ref(), &o).expect("well-formed");
    assert_eq!(r.verdict(), Verdict::Unknown);
    assert_eq!(r.parts[0].visited_states, 1_001);
    assert!(r.parts[0]
        .unknown_reason
        .as_deref()
        .unwrap_or("")
        .contains("1000 visited states"));
    assert!(
        r.render_text().starts_with("unknown"),
        "{}",
        r.render_text()
    );

    // So does a time budget that runs out in the middle of the search.
    let o = CheckOptions {
        timeout: Some(Duration::from_millis(50)),
        max_states: None,
        threads: 1,
    };
    let r = check(&h, m.as_ref(), &o).expect("well-formed");
    assert_eq!(r.verdict(), Verdict::Unknown);
    assert_eq!(
        r.parts[0].unknown_reason.as_deref(),
        Some("the time budget ran out")
    );
    assert!(r.visited_states > 1_000);

    // A zero time budget also ends in Unknown rather than a verdict.
    let o = CheckOptions {
        timeout: Some(Duration::ZERO),
        max_states: None,
        threads: 2,
    };
    let r = check(&h, m.as_ref(), &o).expect("well-formed");
    assert_eq!(r.verdict(), Verdict::Unknown);
}

#[test]
fn report_is_the_same_whatever_the_thread_count() {
    let h = generate_history(&GenerateOptions {
        seed: 7,
        ops: 20_000,
        keys: 40,
        clients: 12,
        info_fraction: 0.02,
        inject_violation: true,
    });
    let m = model_by_name("kv").expect("kv");
    let mut outputs = Vec::new();
    for threads in [1, 2, 5] {
        let o = CheckOptions { threads, ..opts() };
        let r = check_all_parts(&h, m.as_ref(), &o).expect("well-formed");
        assert_eq!(r.verdict(), Verdict::NotLinearizable);
        assert_eq!(r.parts.len(), 40);
        let fail = r.failures().next().expect("a failing part");
        assert_eq!(fail.key.as_deref(), Some("k0"));
        let f = fail.failure.as_ref().expect("evidence");
        assert_eq!(f.cannot_place.len(), 1);
        assert_eq!(f.cannot_place[0].f, "read");
        assert_eq!(f.cannot_place[0].event, h.events.len() - 1);
        outputs.push(serde_json::to_string(&r).expect("serializes"));
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0], outputs[2]);
}

#[test]
fn generated_histories_are_linearizable() {
    assert_eq!(
        generate_kv_history(9, 500, 2, 4, 0.1),
        generate_kv_history(9, 500, 2, 4, 0.1)
    );
    assert_ne!(
        generate_kv_history(9, 500, 2, 4, 0.1),
        generate_kv_history(10, 500, 2, 4, 0.1)
    );
    for seed in 0..5 {
        let h = generate_kv_history(seed, 3_000, 3, 8, 0.05);
        let r = run(&h, "kv");
        assert_eq!(
            r.verdict(),
            Verdict::Linearizable,
            "seed {seed}: {}",
            r.render_text()
        );
        assert_eq!(r.ops_count, 3_000);
        assert!(r.info_count > 50 && r.fail_count > 50, "{r:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// File formats.

#[test]
fn jsonl_and_edn_round_trip() {
    let h = generate_kv_history(3, 2_000, 4, 6, 0.05);
    assert_eq!(History::from_jsonl(&h.to_jsonl()).expect("jsonl"), h);
    let edn = to_edn(&h);
    assert_eq!(parse_edn(&edn).expect("edn"), h);
    assert_eq!(parse_history_file("h.edn", &edn).expect("by extension"), h);
    assert_eq!(parse_history_file("h.txt", &edn).expect("by content"), h);
    assert_eq!(
        parse_history_file("h", &h.to_jsonl()).expect("by content"),
        h
    );

    // Awkward values and names survive too.
    let mut b = Builder::default();
    b.push(
        EventType::Invoke,
        3,
        "my op",
        Some("a \"b\""),
        json!({"x": [1.5, null, "q\n"], "y": true}),
    );
    b.push(
        EventType::Ok,
        3,
        "my op",
        Some("a \"b\""),
        json!([-7, "é", {"z": {}}]),
    );
    b.push(EventType::Invoke, 4, "-", None, json!(u64::MAX));
    let h = b.build();
    assert_eq!(parse_edn(&to_edn(&h)).expect("edn"), h);
}

#[test]
fn edn_reads_jepsen_and_knossos_forms() {
    let text = r#"
; a Jepsen history
{:type :invoke, :f :write, :value 3, :process 0, :time 10, :index 0}
{:type :info, :f :start-partition, :value nil, :process :nemesis, :time 11}
{:type :ok, :f :write, :value 3, :process 0, :time 20}
{:type :invoke, :f :cas, :value [3 4], :process 1, :time 30}
{:type :info, :f :cas, :value nil, :process 1, :time 40, :error :timeout}
{:type :invoke :f :read :value nil :process 2}
{:type :ok :f :read :value 4 :process 2}
"#;
    let h = parse_history_file("jepsen.edn", text).expect("parses");
    assert_eq!(h.events.len(), 6);
    assert_eq!(h.events[3].kind, EventType::Info);
    assert_eq!(h.events[2].value, json!([3, 4]));
    assert_eq!(
        h.events[5].time_ns, 40,
        "missing :time carries the last one"
    );
    assert_eq!(run(&h, "register").verdict(), Verdict::Linearizable);

    // Knossos multi-register: a vector of maps, keyed values [k v], keyword keys.
    let text = r#"[{:process 0, :type :invoke, :f :write, :value [:x 1]}
 {:process 0, :type :ok, :f :write, :value [:x 1]}
 {:process 1, :type :invoke, :f :read, :value [:y nil]}
 {:process 1, :type :ok, :f :read, :value [:y nil]}
 {:process 1, :type :invoke, :f :read, :value [:x nil]}
 {:process 1, :type :ok, :f :read, :value [:x 2]}]"#;
    let h = parse_history_file("knossos.edn", text).expect("parses");
    let r = run(&h, "kv");
    let keys: Vec<Option<&str>> = r.parts.iter().map(|p| p.key.as_deref()).collect();
    assert_eq!(keys, vec![Some("x"), Some("y")]);
    assert_eq!(blocked_descriptions(failure(&r)), vec!["read -> 2"]);

    // :key fields, strings, lists, sets, tagged literals, discards.
    let text =
        "{:type :invoke, :f \"put\", :key :k, :value (1 #{2} \\é \"ü\") :process 5 #_ :ignored :time 1}\n";
    let h = parse_edn(text).expect("parses");
    assert_eq!(h.events[0].key.as_deref(), Some("k"));
    assert_eq!(h.events[0].value, json!([1, [2], "é", "ü"]));
}

#[test]
fn edn_errors_name_the_line() {
    let cases = [
        (
            "{:type :invoke, :f :read, :process 0}\n{:f :read, :process 0}\n",
            "line 2: missing :type",
        ),
        (
            "{:type :invoke, :f :read, :process 0}\n\n{:type :bogus, :f :read, :process 0}",
            "line 3: :type must be",
        ),
        (
            "{:type :invoke, :f \"read, :process 0}\n",
            "line 1: string never closed",
        ),
        (
            "\n{:type :invoke, :f :read, :process 0 :time}\n",
            "line 2: a map needs an even number",
        ),
        (
            "{:type :invoke, :f :read, :process 0}\n)\n",
            "line 2: unexpected ')'",
        ),
        (
            "{:type :invoke, :f :read,\n :process 0\n",
            "line 3: end of input inside a collection opened on line 1",
        ),
        (
            "{:type :invoke, :f :read, :process -1}",
            "line 1: :process must be",
        ),
        (
            "{:type :invoke, :f :read, :process 0, :value 99999999999999999999999}",
            "line 1: integer",
        ),
        (
            "[{:type :invoke, :f :read, :process 0}\n {:type :ok, :f :read, :process 0}\n {:f :read, :process 1}]",
            "line 3: missing :type",
        ),
        ("{:type :invoke, :f :read, :process 0, :value \"a\\qb\"}", "line 1: unknown escape \\q"),
        ("[{:type :invoke, :f :read, :process 0}\n", "line 2: end of input inside the list of events opened on line 1"),
        ("42\n", "line 1: expected an event map"),
    ];
    for (text, want) in cases {
        let e = parse_edn(text).unwrap_err();
        assert!(e.starts_with(want), "{text:?}: got {e:?}, want {want:?}");
    }
    let e = parse_history_file("h.edn", "[[[").unwrap_err();
    assert!(e.starts_with("h.edn: line 1:"), "{e}");
    let e = parse_history_file("h.jsonl", "{\"type\":\"invoke\"}\n").unwrap_err();
    assert!(e.starts_with("h.jsonl: line 1:"), "{e}");
    let e = parse_history_file("h", "hello").unwrap_err();
    assert!(e.contains("cannot tell the format"), "{e}");
    // Deep nesting is refused, not a stack overflow.
    let deep = "[".repeat(100_000);
    assert!(parse_edn(&deep).unwrap_err().contains("nested too deeply"));
}

// ---------------------------------------------------------------------------------------------
// Agreement with a brute-force checker.

/// Every order consistent with real time, with unknown-outcome operations optional, checked
/// against the model over the whole history at once (so partitioning is checked too).
fn brute_force<M: Model>(model: &M, history: &History) -> bool {
    struct Op<I, O> {
        key: Option<String>,
        input: I,
        output: Option<O>,
        call: usize,
        ret: Option<usize>,
    }
    let mut ops: Vec<Op<M::Input, M::Output>> = Vec::new();
    let mut open: HashMap<u64, usize> = HashMap::new();
    let mut outcomes: Vec<(usize, Option<(EventType, usize)>)> = Vec::new();
    for (i, e) in history.events.iter().enumerate() {
        if e.kind == EventType::Invoke {
            open.insert(e.process, outcomes.len());
            outcomes.push((i, None));
        } else {
            let j = open
                .remove(&e.process)
                .expect("generated histories are well formed");
            outcomes[j].1 = Some((e.kind, i));
        }
    }
    for (call, end) in outcomes {
        let inv = &history.events[call];
        let (output, ret) = match end {
            Some((EventType::Fail, _)) => continue,
            Some((EventType::Ok, r)) => (Some(&history.events[r].value), Some(r)),
            _ => (None, None),
        };
        let raw = RawOp {
            f: &inv.f,
            key: inv.key.as_deref(),
            process: inv.process,
            input: &inv.value,
            output,
        };
        let key = model.partition(&raw).expect("valid");
        let (input, output) = model.decode(&raw).expect("valid");
        ops.push(Op {
            key,
            input,
            output,
            call,
            ret,
        });
    }

    fn go<M: Model>(
        model: &M,
        ops: &[Op<M::Input, M::Output>],
        used: &mut Vec<bool>,
        states: &mut BTreeMap<Option<String>, M::State>,
    ) -> bool {
        if ops
            .iter()
            .zip(used.iter())
            .all(|(o, &u)| u || o.ret.is_none())
        {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] {
                continue;
            }
            // i may go next only if no unplaced ok operation completed before i was invoked.
            let blocked = ops
                .iter()
                .enumerate()
                .any(|(j, o)| !used[j] && o.ret.is_some_and(|r| r < ops[i].call));
            if blocked {
                continue;
            }
            let op = &ops[i];
            let before = states.get(&op.key).cloned().unwrap_or_else(|| model.init());
            let Some(after) = model.step(&before, &op.input, op.output.as_ref()) else {
                continue;
            };
            states.insert(op.key.clone(), after);
            used[i] = true;
            if go(model, ops, used, states) {
                return true;
            }
            used[i] = false;
            states.insert(op.key.clone(), before);
        }
        false
    }
    let mut used = vec![false; ops.len()];
    go(model, &ops, &mut used, &mut BTreeMap::new())
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Register,
    Kv,
    Set,
    Queue,
    Counter,
}

/// A real (atomic) object of each kind, to give generated histories plausible results.
#[derive(Default)]
struct Reference {
    regs: BTreeMap<String, Option<i64>>,
    set: BTreeSet<i64>,
    queue: VecDeque<i64>,
    counter: i64,
}

/// A random operation: (f, key, argument).
fn random_op(kind: Kind, rng: &mut ChaCha8Rng) -> (&'static str, Option<String>, Value) {
    let small = |rng: &mut ChaCha8Rng| json!(rng.random_range(0..3));
    match kind {
        Kind::Register | Kind::Kv => {
            let key =
                matches!(kind, Kind::Kv).then(|| ["a", "b"][rng.random_range(0..2)].to_owned());
            match rng.random_range(0..3) {
                0 => ("read", key, Value::Null),
                1 => ("write", key, small(rng)),
                _ => {
                    let from = if rng.random_bool(0.2) {
                        Value::Null
                    } else {
                        small(rng)
                    };
                    ("cas", key, json!([from, small(rng)]))
                }
            }
        }
        Kind::Set => match rng.random_range(0..2) {
            0 => ("read", None, Value::Null),
            _ => ("add", None, small(rng)),
        },
        Kind::Queue => match rng.random_range(0..2) {
            0 => ("dequeue", None, Value::Null),
            _ => ("enqueue", None, small(rng)),
        },
        Kind::Counter => match rng.random_range(0..2) {
            0 => ("read", None, Value::Null),
            _ => ("add", None, json!(rng.random_range(1..3))),
        },
    }
}

/// Applies an operation to the reference object: (result, took effect).
fn apply_kind(
    kind: Kind,
    r: &mut Reference,
    f: &str,
    key: &Option<String>,
    arg: &Value,
) -> (Value, bool) {
    match kind {
        Kind::Register | Kind::Kv => {
            let reg = r.regs.entry(key.clone().unwrap_or_default()).or_default();
            match f {
                "read" => (reg.map_or(Value::Null, Value::from), true),
                "write" => {
                    *reg = arg.as_i64();
                    (arg.clone(), true)
                }
                _ => {
                    if arg[0].as_i64() == *reg {
                        *reg = arg[1].as_i64();
                        (arg.clone(), true)
                    } else {
                        (arg.clone(), false)
                    }
                }
            }
        }
        Kind::Set => match f {
            "read" => (json!(r.set.iter().collect::<Vec<_>>()), true),
            _ => {
                r.set.insert(arg.as_i64().unwrap_or(0));
                (arg.clone(), true)
            }
        },
        Kind::Queue => match f {
            "dequeue" => (r.queue.pop_front().map_or(Value::Null, Value::from), true),
            _ => {
                r.queue.push_back(arg.as_i64().unwrap_or(0));
                (arg.clone(), true)
            }
        },
        Kind::Counter => match f {
            "read" => (json!(r.counter), true),
            _ => {
                r.counter += arg.as_i64().unwrap_or(0);
                (arg.clone(), true)
            }
        },
    }
}

/// A small random history of a real object, sometimes with one result corrupted.
fn random_history(kind: Kind, rng: &mut ChaCha8Rng) -> History {
    enum Phase {
        Idle,
        Invoked(&'static str, Option<String>, Value),
        Applied(&'static str, Option<String>, Value, bool),
    }
    let ops_total = rng.random_range(1..=8);
    let clients = rng.random_range(1..=4);
    let mut phases: Vec<(u64, Phase)> = (0..clients).map(|c| (c as u64, Phase::Idle)).collect();
    let mut next_process = clients as u64;
    let mut reference = Reference::default();
    let mut events = Vec::new();
    let mut issued = 0;
    // Sometimes stop early, leaving operations that never complete.
    let stop_early = rng.random_bool(0.2);
    for step in 0..1_000 {
        let busy = phases.iter().any(|(_, p)| !matches!(p, Phase::Idle));
        if issued >= ops_total && (!busy || stop_early) {
            break;
        }
        let c = rng.random_range(0..clients);
        let (process, phase) = &mut phases[c];
        let mut emit = |kind: EventType, p: u64, f: &str, key: &Option<String>, value: Value| {
            events.push(HistoryEvent {
                kind,
                process: p,
                time_ns: step,
                f: f.to_owned(),
                key: key.clone(),
                value,
            });
        };
        match std::mem::replace(phase, Phase::Idle) {
            Phase::Idle => {
                if issued < ops_total {
                    let (f, key, arg) = random_op(kind, rng);
                    emit(EventType::Invoke, *process, f, &key, arg.clone());
                    *phase = Phase::Invoked(f, key, arg);
                    issued += 1;
                }
            }
            Phase::Invoked(f, key, arg) => {
                let roll = rng.random_range(0..10);
                if roll == 0 {
                    emit(EventType::Fail, *process, f, &key, arg);
                } else if roll == 1 {
                    emit(EventType::Info, *process, f, &key, Value::Null);
                    *process = next_process;
                    next_process += 1;
                } else {
                    let (result, took) = apply_kind(kind, &mut reference, f, &key, &arg);
                    *phase = Phase::Applied(f, key, result, took);
                }
            }
            Phase::Applied(f, key, result, took) => {
                if rng.random_range(0..10) == 0 {
                    emit(EventType::Info, *process, f, &key, Value::Null);
                    *process = next_process;
                    next_process += 1;
                } else if took {
                    emit(EventType::Ok, *process, f, &key, result);
                } else {
                    emit(EventType::Fail, *process, f, &key, result);
                }
            }
        }
    }
    // Corrupt one ok result half of the time (it may still happen to be linearizable).
    if rng.random_bool(0.5) {
        let oks: Vec<usize> = (0..events.len())
            .filter(|&i| {
                events[i].kind == EventType::Ok
                    && matches!(events[i].f.as_str(), "read" | "dequeue")
            })
            .collect();
        if !oks.is_empty() {
            let i = oks[rng.random_range(0..oks.len())];
            events[i].value = match (kind, rng.random_range(0..4)) {
                (Kind::Counter, n) => json!(n + 1),
                (_, 0) => Value::Null,
                (Kind::Set, n) => json!((0..n).collect::<Vec<_>>()),
                (_, n) => json!(n - 1),
            };
        }
    }
    History { events }
}

fn agree<M: Model>(model: &M, h: &History) -> bool {
    let expected = brute_force(model, h);
    let report = check(h, model, &opts()).expect("well formed");
    let got = report.verdict() == Verdict::Linearizable;
    assert_ne!(report.verdict(), Verdict::Unknown);
    assert_eq!(
        got,
        expected,
        "disagreement on model {}:\n{}\n{}",
        model.name(),
        h.to_jsonl(),
        report.render_text()
    );
    if !got {
        // The evidence must be coherent: a replayable prefix, and something blocked after it.
        let fail = report
            .failures()
            .next()
            .and_then(|p| p.failure.as_ref())
            .expect("evidence");
        assert!(!fail.cannot_place.is_empty());
    }
    expected
}

#[test]
fn agrees_with_brute_force_on_10000_small_histories() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let kinds = [
        Kind::Register,
        Kind::Kv,
        Kind::Set,
        Kind::Queue,
        Kind::Counter,
    ];
    let (mut linearizable, mut not) = (0, 0);
    let mut per_kind = [[0usize; 2]; 5];
    for n in 0..10_000 {
        let k = n % kinds.len();
        let h = random_history(kinds[k], &mut rng);
        let ok = match kinds[k] {
            Kind::Register => agree(&Register { keyed: false }, &h),
            Kind::Kv => agree(&Register { keyed: true }, &h),
            Kind::Set => agree(&SetModel, &h),
            Kind::Queue => agree(&Queue, &h),
            Kind::Counter => agree(&Counter, &h),
        };
        per_kind[k][usize::from(ok)] += 1;
        if ok {
            linearizable += 1;
        } else {
            not += 1;
        }
    }
    eprintln!("brute-force agreement: {linearizable} linearizable, {not} not; per kind [not, lin]: {per_kind:?}");
    assert_eq!(linearizable + not, 10_000);
    assert!(linearizable >= 3_000, "only {linearizable} linearizable");
    assert!(not >= 1_500, "only {not} not linearizable");
    for (k, counts) in per_kind.iter().enumerate() {
        assert!(
            counts[0] >= 200 && counts[1] >= 200,
            "{:?}: {counts:?}",
            kinds[k]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The example histories under examples/histories, with the verdicts their README promises.

#[test]
fn example_histories_have_the_documented_verdicts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/histories");
    let readme = std::fs::read_to_string(dir.join("README.md")).expect("examples README");
    let mut checked = 0;
    for row in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (file, model, expected) = (cells[1].trim_matches('`'), cells[2], cells[3]);
        let text = std::fs::read_to_string(dir.join(file)).expect("listed file exists");
        let h = parse_history_file(file, &text).unwrap_or_else(|e| panic!("{e}"));
        let r = run(&h, model);
        assert_eq!(
            r.verdict().as_str(),
            expected,
            "{file}:\n{}",
            r.render_text()
        );
        checked += 1;
    }
    assert_eq!(checked, 9, "every example is listed");
    let on_disk = std::fs::read_dir(&dir)
        .expect("examples dir")
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // Transactional histories and a malformed one are tested by tests/check_cli.rs.
            let other = name.starts_with("txn-") || name == "completes-before-invoke.jsonl";
            (name.ends_with(".jsonl") || name.ends_with(".edn")) && !other
        })
        .count();
    assert_eq!(
        on_disk, checked,
        "every example file has a row in the README"
    );
}

#[test]
fn stops_at_the_first_failing_part_and_reports_it() {
    let h = generate_history(&GenerateOptions {
        seed: 7,
        ops: 20_000,
        keys: 40,
        clients: 12,
        info_fraction: 0.02,
        inject_violation: true,
    });
    let m = model_by_name("kv").expect("kv");
    for threads in [1, 2] {
        let o = CheckOptions { threads, ..opts() };
        let r = check(&h, m.as_ref(), &o).expect("well-formed");
        assert_eq!(r.verdict(), Verdict::NotLinearizable);
        let fail = r.failures().next().expect("a failing part");
        assert_eq!(fail.key.as_deref(), Some("k0"));
        assert_eq!(r.parts.len() + r.skipped_parts, 40);
        if threads == 1 {
            // Smallest parts first: k0 holds the injected ops, so it is not the last; the
            // parts after it were never searched.
            assert!(r.skipped_parts > 0, "{}", r.render_text());
            assert!(
                r.render_text().contains("--all-parts"),
                "{}",
                r.render_text()
            );
        }
    }
}

#[test]
fn pruning_by_state_keeps_append_histories_easy_and_the_evidence_clear() {
    // Fifty clients appending to few keys: without pruning some keys take millions of states.
    let h = generate_append_history(&AppendGenOptions {
        seed: 11,
        ops: 5_000,
        keys: 10,
        clients: 50,
        bad: false,
    });
    let m = model_by_name("kv-append").expect("kv-append");
    let r = check_all_parts(&h, m.as_ref(), &opts()).expect("well-formed");
    assert_eq!(r.verdict(), Verdict::Linearizable, "{}", r.render_text());
    assert!(r.visited_states < 50_000, "{}", r.visited_states);
    let bad = generate_append_history(&AppendGenOptions {
        seed: 12,
        ops: 5_000,
        keys: 10,
        clients: 50,
        bad: true,
    });
    let r = check(&bad, m.as_ref(), &opts()).expect("well-formed");
    assert_eq!(r.verdict(), Verdict::NotLinearizable, "{}", r.render_text());
    assert_eq!(
        r.failures().next().and_then(|p| p.key.as_deref()),
        Some("5")
    );
}
