//! One test per fault kind, each showing the fault's effect on a small probe algorithm, plus
//! the determinism properties of the engine.
//!
//! The probe: node 0 sends a numbered ping to every other server every 10 ms; every node
//! records what it receives with its local clock, counts a volatile counter, keeps a synced and
//! an unsynced value on disk, and fires one "alarm" timer after `alarm` of local time.

use std::cell::RefCell;
use std::rc::Rc;

use sim_core::trace::TraceKind;
use sim_core::{
    Checker, Ctx, History, Message, NodeId, Process, RunOptions, RunResult, Scenario, Sim,
    SimConfig, TimerId, View,
};

const MS: u64 = 1_000_000;

#[derive(Clone, Debug)]
struct Ping(u64);

impl Message for Ping {
    fn label(&self) -> &'static str {
        "ping"
    }
}

#[derive(Clone, Debug, Default)]
struct Seen {
    /// (from, ping number, local time) of every delivery.
    received: Vec<(NodeId, u64, u64)>,
    /// Local time at which the alarm fired, per start.
    alarms_local: Vec<u64>,
    /// Whether this incarnation is a restart, and what it found on disk.
    restarted: bool,
    synced_found: Option<u64>,
    unsynced_found: Option<u64>,
    volatile: u64,
}

struct Probe {
    id: NodeId,
    next: u64,
    alarm_ns: u64,
    seen: Seen,
    leader_rank: Option<u64>,
}

const TICK: u64 = 1;
const ALARM: u64 = 2;

impl Process for Probe {
    type Msg = Ping;

    fn on_start(&mut self, ctx: &mut Ctx<'_, Ping>) {
        self.seen.restarted = ctx.is_restart();
        self.seen.synced_found = ctx.storage().get_json("synced");
        self.seen.unsynced_found = ctx.storage().get_json("unsynced");
        if !ctx.is_restart() {
            ctx.storage().put_json("synced", &7u64);
            ctx.storage().sync();
            ctx.storage().put_json("unsynced", &8u64);
        }
        if self.id == 0 {
            ctx.set_timer(10 * MS, TICK);
        }
        if self.alarm_ns > 0 {
            ctx.set_timer(self.alarm_ns, ALARM);
        }
    }

    fn on_message(&mut self, ctx: &mut Ctx<'_, Ping>, from: NodeId, msg: Ping) {
        self.seen.volatile += 1;
        self.seen.received.push((from, msg.0, ctx.now_local()));
    }

    fn on_timer(&mut self, ctx: &mut Ctx<'_, Ping>, _timer: TimerId, tag: u64) {
        match tag {
            TICK => {
                self.next += 1;
                ctx.send_to_servers(&Ping(self.next));
                ctx.set_timer(10 * MS, TICK);
            }
            ALARM => self.seen.alarms_local.push(ctx.now_local()),
            _ => {}
        }
    }

    fn role_rank(&self, role: &str) -> Option<u64> {
        (role == "leader").then_some(self.leader_rank?)
    }
}

/// Copies every node's final state out of the simulation.
struct Snapshot(Rc<RefCell<Vec<Option<Seen>>>>);

impl Checker<Probe> for Snapshot {
    fn name(&self) -> &'static str {
        "snapshot"
    }
    fn at_end(&mut self, view: &View<'_, Probe>, _h: &History) -> Vec<sim_core::Finding> {
        *self.0.borrow_mut() = (0..view.servers_count())
            .map(|i| view.node(i).map(|p| p.seen.clone()))
            .collect();
        Vec::new()
    }
}

struct Outcome {
    result: RunResult,
    nodes: Vec<Option<Seen>>,
}

fn run_with(toml_body: &str, seed: u64, alarm_ms: u64, leader: Option<NodeId>) -> Outcome {
    let text = format!("description = \"probe\"\nalgorithm = \"probe\"\n{toml_body}");
    let sc = Scenario::parse("probe.toml", &text).unwrap_or_else(|e| panic!("{e}"));
    let opts = RunOptions {
        keep_trace: true,
        ..Default::default()
    };
    let cfg = SimConfig::new(&sc, seed, &opts);
    let snap = Rc::new(RefCell::new(Vec::new()));
    let mut sim = Sim::new(cfg, move |info| Probe {
        id: info.id,
        next: 0,
        alarm_ns: alarm_ms * MS,
        seen: Seen::default(),
        leader_rank: (Some(info.id) == leader).then_some(5),
    });
    sim.add_checker(Snapshot(snap.clone()));
    let result = sim.run();
    let nodes = snap.borrow().clone();
    Outcome { result, nodes }
}

fn pings_from(o: &Outcome, node: usize, from: usize) -> Vec<u64> {
    o.nodes[node]
        .as_ref()
        .map(|s| {
            s.received
                .iter()
                .filter(|r| r.0 == from)
                .map(|r| r.1)
                .collect()
        })
        .unwrap_or_default()
}

const CALM: &str =
    "nodes = 3\nduration = \"1s\"\n[network]\nlatency = { dist = \"constant\", value = \"2ms\" }\n";

#[test]
fn calm_network_delivers_every_ping_after_its_latency() {
    let o = run_with(CALM, 1, 0, None);
    // Pings leave at 10, 20, ... 1000 ms; the one sent at 1000 ms arrives after the end.
    assert_eq!(pings_from(&o, 1, 0), (1..=99).collect::<Vec<_>>());
    let trace = o.result.trace.as_ref().unwrap();
    let first = trace
        .iter()
        .find(|e| e.kind == TraceKind::Deliver && e.label == "ping")
        .unwrap();
    assert_eq!(
        first.time_ns,
        12 * MS,
        "constant latency of 2 ms after the 10 ms tick"
    );
}

#[test]
fn a_cut_link_delivers_nothing_until_healed() {
    let body = format!(
        "{CALM}[[faults]]\nat = \"0s\"\naction = \"partition\"\nkind = \"isolate\"\nnode = 1\n[[faults]]\nat = \"500ms\"\naction = \"heal\"\n"
    );
    let o = run_with(&body, 1, 0, None);
    let to1 = pings_from(&o, 1, 0);
    assert!(
        !to1.is_empty() && to1.iter().all(|p| *p >= 50),
        "n1 got only post-heal pings: {to1:?}"
    );
    assert_eq!(pings_from(&o, 2, 0).len(), 99, "n2 was never cut off");
    assert!(o.result.metrics["net.dropped_cut"] >= 49.0);
    assert!(o.result.faults["partition:isolate"].messages >= 49);
}

#[test]
fn loss_one_drops_everything_and_duplicate_one_doubles_everything() {
    let lossy = "nodes = 3\nduration = \"1s\"\n[network]\nloss = 1.0\n";
    let o = run_with(lossy, 1, 0, None);
    assert!(pings_from(&o, 1, 0).is_empty());
    assert_eq!(o.result.metrics["net.delivered"], 0.0);
    let dup = "nodes = 2\nduration = \"1s\"\n[network]\nduplicate = 1.0\nlatency = { dist = \"constant\", value = \"1ms\" }\n";
    let o = run_with(dup, 1, 0, None);
    let got = pings_from(&o, 1, 0);
    assert_eq!(got.len(), 2 * 99, "every ping arrives twice");
}

#[test]
fn reordering_lets_later_messages_overtake() {
    let body = "nodes = 2\nduration = \"1s\"\n[network]\nlatency = { dist = \"constant\", value = \"1ms\" }\nreorder = 0.5\nreorder_delay = \"50ms\"\n";
    let o = run_with(body, 3, 0, None);
    let got = pings_from(&o, 1, 0);
    assert!(
        got.windows(2).any(|w| w[1] < w[0]),
        "some ping overtook another"
    );
    let calm = run_with("nodes = 2\nduration = \"1s\"\n", 3, 0, None);
    let got = pings_from(&calm, 1, 0);
    assert!(
        got.windows(2).all(|w| w[1] > w[0]),
        "uniform 1-5 ms latency with 10 ms gaps keeps order"
    );
}

#[test]
fn crash_loses_volatile_state_timers_and_unsynced_writes_but_keeps_synced_ones() {
    let body = format!(
        "{CALM}[[faults]]\nat = \"300ms\"\naction = \"crash\"\nnode = 1\n[[faults]]\nat = \"600ms\"\naction = \"restart\"\nnode = 1\n"
    );
    // The alarm at 400 ms local falls inside the crash: it must never fire.
    let o = run_with(&body, 1, 400, None);
    let n1 = o.nodes[1].as_ref().unwrap();
    assert!(n1.restarted);
    assert_eq!(n1.synced_found, Some(7), "synced write survives");
    assert_eq!(n1.unsynced_found, None, "unsynced write is lost");
    // The old incarnation's alarm (due at 400 ms) died with it; the new one set its own at the
    // restart, due 400 ms later.
    assert_eq!(n1.alarms_local, vec![1000 * MS]);
    // Volatile state restarted from zero: only pings after 600 ms were counted.
    assert!(
        n1.volatile == 40 && n1.received.iter().all(|r| r.1 >= 60),
        "{:?}",
        n1.received.first()
    );
    assert!(
        o.result.metrics["net.dropped_down"] >= 29.0,
        "pings to the crashed node are dropped"
    );
    let n2 = o.nodes[2].as_ref().unwrap();
    assert_eq!(
        n2.alarms_local,
        vec![400 * MS],
        "an uncrashed node's alarm fires on time"
    );
}

#[test]
fn pause_delays_every_handler_until_resume() {
    let body = format!(
        "{CALM}[[faults]]\nat = \"100ms\"\naction = \"pause\"\nnode = 1\nfor = \"400ms\"\n"
    );
    let o = run_with(&body, 1, 200, None);
    let n1 = o.nodes[1].as_ref().unwrap();
    assert_eq!(
        n1.alarms_local,
        vec![500 * MS],
        "the 200 ms alarm ran at the resume, 500 ms"
    );
    let at_resume: Vec<_> = n1.received.iter().filter(|r| r.2 == 500 * MS).collect();
    assert!(
        at_resume.len() >= 39,
        "pings that arrived during the pause waited: {}",
        at_resume.len()
    );
    assert_eq!(n1.received.len(), 99, "nothing was lost, only delayed");
}

#[test]
fn clock_offset_and_drift_fire_a_local_timer_at_the_right_true_time() {
    let body =
        format!("{CALM}[clocks]\n[[clocks.node]]\nnode = 1\noffset = \"200ms\"\ndrift = 0.01\n");
    // 1 s of local time at 1% fast is 990.099 ms of true time; the local reading is then the
    // 200 ms offset plus that second.
    let o = run_with(&body, 1, 1000, None);
    let n1 = o.nodes[1].as_ref().unwrap();
    assert_eq!(n1.alarms_local, vec![1_200 * MS]);
    let trace = o.result.trace.as_ref().unwrap();
    let fired = trace
        .iter()
        .find(|e| e.kind == TraceKind::Timer && e.node == 1 && e.msg_id == Some(ALARM))
        .unwrap();
    assert_eq!(fired.time_ns, 990_099_010);
}

#[test]
fn clock_steps_move_the_reading_but_not_pending_timers_and_drift_changes_rates() {
    let body = format!(
        "{CALM}[[faults]]\nat = \"100ms\"\naction = \"clock_step\"\nnode = 2\nby = \"-50ms\"\n[[faults]]\nat = \"100ms\"\naction = \"clock_drift\"\nnode = 1\ndrift = 1.0e-1\n"
    );
    let o = run_with(&body, 1, 300, None);
    let n2 = o.nodes[2].as_ref().unwrap();
    assert_eq!(
        n2.alarms_local,
        vec![250 * MS],
        "fires at 300 ms true time, reading 50 ms behind"
    );
    let n1 = o.nodes[1].as_ref().unwrap();
    // The timer was set at drift 0 and is not stretched later: it fires at 300 ms true time,
    // when n1's clock reads 100 + 200 * 1.1 = 320 ms.
    assert_eq!(n1.alarms_local, vec![320 * MS]);
}

#[test]
fn clogging_holds_messages_until_unclog() {
    let body =
        format!("{CALM}[[faults]]\nat = \"100ms\"\naction = \"clog\"\nnode = 1\nfor = \"300ms\"\n");
    let o = run_with(&body, 1, 0, None);
    let n1 = o.nodes[1].as_ref().unwrap();
    assert!(
        n1.received.iter().all(|r| r.2 < 100 * MS || r.2 > 400 * MS),
        "nothing arrives while clogged"
    );
    assert_eq!(
        n1.received.len(),
        99,
        "held messages arrive after the unclog"
    );
    assert!(o.result.metrics["net.held_clog"] >= 29.0);
}

#[test]
fn swizzle_clogs_a_majority_one_by_one_and_releases_all() {
    let body = "nodes = 5\nduration = \"2s\"\n[[faults]]\nat = \"100ms\"\naction = \"swizzle\"\nstep = \"50ms\"\nhold = \"300ms\"\n";
    let o = run_with(body, 1, 0, None);
    let clogs = o
        .result
        .fault_log
        .iter()
        .filter(|f| f.action == "clog")
        .count();
    let unclogs = o
        .result
        .fault_log
        .iter()
        .filter(|f| f.action == "unclog")
        .count();
    assert_eq!((clogs, unclogs), (3, 3));
    let total: usize = (1..5).map(|i| pings_from(&o, i, 0).len()).sum();
    assert_eq!(total, 4 * 199, "every ping is eventually delivered");
}

#[test]
fn one_way_cut_blocks_only_the_outgoing_side() {
    let body = format!(
        "{CALM}[[faults]]\nat = \"0s\"\naction = \"partition\"\nkind = \"one_way\"\nnode = 0\n"
    );
    let o = run_with(&body, 1, 0, None);
    assert!(pings_from(&o, 1, 0).is_empty(), "n0 cannot send");
    let cut = &o.result.fault_log[0];
    assert!(cut.detail.contains("one-way"));
}

#[test]
fn split_bridge_and_halves_cut_the_right_links() {
    for (kind, nodes) in [("split", 5), ("halves", 4), ("bridge", 5)] {
        let body = format!(
            "nodes = {nodes}\nduration = \"300ms\"\n[[faults]]\nat = \"0s\"\naction = \"partition\"\nkind = \"{kind}\"\n{}",
            // Halves are drawn at random and take no node (refused at load).
            if kind == "halves" { "" } else { "node = 0\n" }
        );
        let o = run_with(&body, 1, 0, None);
        let reached = (1..nodes)
            .filter(|i| !pings_from(&o, *i, 0).is_empty())
            .count();
        match kind {
            // n0 sits in the minority of 2: it reaches its one partner.
            "split" => assert_eq!(reached, 1, "{kind}"),
            // halves of 2 and 2, n0 in one of them (the halves are random, n0 is not forced).
            "halves" => assert!(
                reached == 1 || reached == 3 || reached == 0,
                "{kind}: {reached}"
            ),
            // n0 is the bridge: it reaches everyone.
            _ => assert_eq!(reached, nodes - 1, "{kind}"),
        }
        assert!(o.result.fault_log[0].detail.starts_with(kind));
    }
}

#[test]
fn a_fault_naming_a_role_asks_the_algorithm() {
    let body = format!("{CALM}[[faults]]\nat = \"100ms\"\naction = \"crash\"\nnode = \"leader\"\n");
    let o = run_with(&body, 1, 0, Some(2));
    assert!(
        o.nodes[2].is_none(),
        "n2 holds the leader role and was crashed"
    );
    assert!(o.nodes[1].is_some());
    let o = run_with(&body, 1, 0, None);
    assert!(o.nodes.iter().all(|n| n.is_some()));
    assert!(o.result.fault_log[0].detail.contains("skipped"));
}

#[test]
fn the_nemesis_injects_the_kinds_it_is_given() {
    let body = "nodes = 5\nduration = \"20s\"\n[nemesis]\nkinds = [\"crash\", \"pause\"]\ninterval = \"500ms\"\nduration = \"200ms\"\n";
    let o = run_with(body, 9, 0, None);
    let kinds: std::collections::BTreeSet<&str> =
        o.result.faults.keys().map(|k| k.as_str()).collect();
    assert!(
        kinds.contains("crash") && kinds.contains("pause"),
        "{kinds:?}"
    );
    assert!(!kinds
        .iter()
        .any(|k| k.starts_with("partition") || k.starts_with("clock")));
    assert!(o.result.faults["crash"].fired >= 5);
}

#[test]
fn quiet_period_heals_everything() {
    let body = "nodes = 3\nduration = \"2s\"\nquiet = \"1s\"\n[[faults]]\nat = \"100ms\"\naction = \"partition\"\nkind = \"isolate\"\nnode = 1\n[[faults]]\nat = \"200ms\"\naction = \"crash\"\nnode = 2\n";
    let o = run_with(body, 1, 0, None);
    assert!(
        o.nodes[2].as_ref().unwrap().restarted,
        "the quiet period restarts crashed nodes"
    );
    assert!(
        pings_from(&o, 1, 0).iter().any(|p| *p > 100),
        "the partition healed at 1 s"
    );
}

#[test]
fn same_seed_same_hash_different_seed_different_hash() {
    let body = "nodes = 5\nduration = \"5s\"\n[network]\nloss = 0.1\nlatency = { dist = \"exponential\", mean = \"3ms\" }\n[nemesis]\nkinds = [\"partition\", \"crash\", \"pause\", \"clock\", \"clog\", \"swizzle\"]\ninterval = \"300ms\"\n";
    let a = run_with(body, 42, 250, None);
    let b = run_with(body, 42, 250, None);
    let c = run_with(body, 43, 250, None);
    assert_eq!(a.result.trace_hash, b.result.trace_hash);
    assert_eq!(a.result.events, b.result.events);
    assert_eq!(a.result.trace, b.result.trace, "every event identical");
    assert_ne!(a.result.trace_hash, c.result.trace_hash);
}

#[test]
fn swarm_draws_cluster_size_and_fault_mix_from_the_seed() {
    let body = "nodes = 3\nduration = \"1s\"\n[swarm]\nnodes = [3, 7]\n[nemesis]\nkinds = [\"partition\", \"crash\", \"pause\", \"clock\", \"clog\", \"swizzle\"]\n";
    let sc = Scenario::parse(
        "s.toml",
        &format!("description = \"x\"\nalgorithm = \"probe\"\n{body}"),
    )
    .unwrap();
    let opts = RunOptions {
        swarm: true,
        ..Default::default()
    };
    let sizes: std::collections::BTreeSet<usize> = (0..40)
        .map(|s| SimConfig::new(&sc, s, &opts).servers_count)
        .collect();
    assert!(
        sizes.len() >= 4 && sizes.iter().all(|n| (3..=7).contains(n)),
        "{sizes:?}"
    );
    let a = SimConfig::new(&sc, 5, &opts).derived;
    assert_eq!(a, SimConfig::new(&sc, 5, &opts).derived);
    assert!(a.unwrap().contains("nemesis=["));
}
