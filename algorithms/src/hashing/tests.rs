//! The published figures, measured by the library over many salted rings (the scenarios
//! measure the same through runs; docs/hashing.md sets both side by side).

use super::hash::HashFn;
use super::placement::{KeySpace, Placement, PlacementConfig, Strategy};
use super::ring::{Ring, RingMember};
use super::stats::{key_loads, load_stats, movement};

/// Every server's share over the mean, over `rings` rings of `n` servers, sorted, and the
/// standard deviation of that ratio over all of them (the published "stddev of the load as a
/// fraction of the mean"; within one ring of n servers the sample deviation runs a little
/// lower, see docs/hashing.md).
fn shares(vnodes: usize, n: usize, rings: u64) -> (Vec<f64>, f64) {
    let members: Vec<RingMember> = (0..n)
        .map(|node| RingMember { node, weight: 1.0 })
        .collect();
    let ids: Vec<usize> = (0..n).collect();
    let mut all = Vec::new();
    for salt in 0..rings {
        let ring = Ring::new(&members, vnodes, super::hash::mix64(salt), HashFn::Stable);
        all.extend(ring.shares(&ids).iter().map(|x| x * n as f64));
    }
    all.sort_by(|a, b| a.total_cmp(b));
    let var = all.iter().map(|x| (x - 1.0) * (x - 1.0)).sum::<f64>() / all.len() as f64;
    (all, libm::sqrt(var))
}

fn band(sorted: &[f64]) -> (f64, f64) {
    let at = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    (at(0.005), at(0.995))
}

#[test]
fn a_hundred_vnodes_give_ten_percent_and_the_published_band() {
    let (all, cv) = shares(100, 100, 100);
    let (lo, hi) = band(&all);
    println!("100 vnodes, 100 servers, 100 rings: stddev/mean {cv:.4}, 99% band {lo:.3}..{hi:.3}");
    // Published: ~10%, 99% of servers within 0.76..1.28 of the mean.
    assert!((cv - 0.10).abs() < 0.01, "cv {cv}");
    assert!(
        (lo - 0.76).abs() < 0.03 && (hi - 1.28).abs() < 0.04,
        "{lo}..{hi}"
    );
}

#[test]
fn a_thousand_vnodes_give_three_percent_and_the_published_band() {
    let (all, cv) = shares(1000, 100, 20);
    let (lo, hi) = band(&all);
    println!("1,000 vnodes, 100 servers, 20 rings: stddev/mean {cv:.4}, 99% band {lo:.3}..{hi:.3}");
    // Published: ~3.2%, 99% within 0.92..1.09.
    assert!((cv - 0.032).abs() < 0.004, "cv {cv}");
    assert!(
        (lo - 0.92).abs() < 0.015 && (hi - 1.09).abs() < 0.015,
        "{lo}..{hi}"
    );
}

fn cfg(strategy: Strategy, salt: u64) -> PlacementConfig {
    PlacementConfig {
        strategy,
        vnodes: 100,
        weights: Default::default(),
        c: 1.25,
        salt,
        hash: HashFn::Stable,
        modulo: false,
        slots: 12,
    }
}

#[test]
fn minimal_strategies_move_only_what_must_move_and_modulo_moves_almost_all() {
    let keys = KeySpace::new(10_000, HashFn::Stable);
    let ten: Vec<usize> = (0..10).collect();
    let eleven: Vec<usize> = (0..11).collect();
    for s in [Strategy::Ring, Strategy::Jump, Strategy::Rendezvous] {
        let c = cfg(s, 3);
        let m = movement(
            &Placement::build(&c, &ten, &keys),
            &Placement::build(&c, &eleven, &keys),
            &keys,
        );
        assert_eq!(m.unnecessary, 0, "{s:?}");
        assert!(m.over_ideal() < 1.6, "{s:?} moved {}", m.over_ideal());
    }
    let mut c = cfg(Strategy::Ring, 3);
    c.modulo = true;
    let m = movement(
        &Placement::build(&c, &ten, &keys),
        &Placement::build(&c, &eleven, &keys),
        &keys,
    );
    // hash mod 10 vs hash mod 11: a key stays only if both agree, about 1 in 11.
    assert!(m.fraction() > 0.85, "modulo moved {}", m.fraction());
}

#[test]
fn bounded_loads_keep_max_over_mean_at_or_under_c() {
    let keys = KeySpace::new(10_000, HashFn::Stable);
    let ten: Vec<usize> = (0..10).collect();
    for salt in 0..20 {
        let p = Placement::build(&cfg(Strategy::Bounded, salt), &ten, &keys);
        let (loads, _) = key_loads(&p, &keys);
        let st = load_stats(&loads, &[1.0; 10]);
        assert!(st.max_over_mean <= 1.25 + 1e-9, "{}", st.max_over_mean);
    }
}

#[test]
fn jump_moves_one_sixth_from_ten_to_twelve_servers() {
    let keys = KeySpace::new(60_000, HashFn::Stable);
    let c = cfg(Strategy::Jump, 0);
    let ten: Vec<usize> = (0..10).collect();
    let twelve: Vec<usize> = (0..12).collect();
    let m = movement(
        &Placement::build(&c, &ten, &keys),
        &Placement::build(&c, &twelve, &keys),
        &keys,
    );
    println!(
        "jump 10 -> 12 servers: moved {:.4} of the keys",
        m.fraction()
    );
    assert!((m.fraction() - 1.0 / 6.0).abs() < 0.006, "{}", m.fraction());
    assert_eq!(m.unnecessary, 0);
}

#[test]
fn the_bug_list_matches_the_enum() {
    // Each bug's name deserializes to the variant that carries it, with the same rule.
    for b in super::BUGS {
        let parsed: super::HashingBug =
            serde_json::from_value(serde_json::json!(b.name)).expect("bug name parses");
        assert_eq!(parsed.name(), b.name);
        assert_eq!(parsed.rule(), b.rule);
    }
    assert_eq!(super::BUGS.len(), 3);
}

/// The liveness predicate can fail: a server crashed long enough to leave every view and
/// restarted at the heal is back in the views within the family's bound, but not within 1 ms
/// (its first heartbeat is still on the wire).
#[test]
fn views_must_converge_after_the_heal() {
    use sim_core::{RunOptions, Scenario, Verdict};
    let text = |within: &str| {
        format!(
            "description = \"d\"\nalgorithm = \"hashing\"\nnodes = 4\nduration = \"4s\"\nquiet = \"2s\"\n{within}[network]\nlatency = {{ dist = \"constant\", value = \"5ms\" }}\n[workload]\nclients = 2\nkeys = 100\nmix = {{ get = 1, put = 1 }}\n[[faults]]\nat = \"500ms\"\naction = \"crash\"\nnode = 3\n"
        )
    };
    let sc = Scenario::parse("t.toml", &text("")).expect("parses");
    let r = crate::run(&sc, 1, &RunOptions::default()).expect("runs");
    assert_eq!(r.verdict, Verdict::Pass, "{:?}", r.violations);
    let short = text("[liveness]\nwithin = \"1ms\"\n");
    let sc = Scenario::parse("t.toml", &short).expect("parses");
    let r = crate::run(&sc, 1, &RunOptions::default()).expect("runs");
    assert_eq!(r.verdict, Verdict::Violation);
    let v = r
        .violations
        .iter()
        .find(|v| v.source == "hashing-views-converge")
        .expect("the views check fails");
    assert!(v.message.contains("n3"), "{}", v.message);
}
