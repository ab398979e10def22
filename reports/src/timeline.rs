//! The step-through timeline of a run report: a section of `index.html` in which a student
//! steps through the run event by event (buttons, keys, a slider) and sees, at each event,
//! every node's state, the messages in flight, the faults in force, and the event marked on
//! the space-time diagram.
//!
//! Everything is inline (data as JSON in a `<script type="application/json">`, the script and
//! its style in the page): no network, no library. The state at each step is replayed in the
//! browser from a snapshot taken in Rust at the first embedded event, so the page carries one
//! line per event, not one state per event.
//!
//! # The window of events
//!
//! A run may have millions of events; the page embeds at most [`EVENTS_MAX`] of them around an
//! anchor ([`EVENTS_AFTER`] from it on, the rest before it), and says how many it left out on
//! each side. The anchor is the first violation's trace event, else the first fault, else the
//! first event.
//!
//! # Node states
//!
//! Each node's line comes from two sources: the trace (up, crashed, paused, not started; a
//! client's open operation), which every algorithm has, and the algorithm's own
//! [`sim_core::Process::state_summary`] (role, term, log length, lock held, a line of its own),
//! kept by the engine as [`sim_core::summary::SummaryPoint`]s when the trace is kept.
//!
//! A message is in flight from its send to its delivery or drop. Messages held at a paused
//! node are in flight until it resumes; if it crashes first they are lost with no trace event,
//! and the engine lists them apart ([`RunResult::lost_at_crash`]), with the crash's effect.
//!
//! # Links
//!
//! `index.html#step=N` opens the timeline at trace event N (counted from the run's first
//! event); `#keys=...` then presses keys one by one (`n` next, `p` previous, `v` the violation,
//! `f` first, `l` last), as a reader would, which is how the browser test drives the page.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};
use sim_core::result::FaultRecord;
use sim_core::trace::{TraceEvent, TraceKind};
use sim_core::RunResult;

use crate::data::fault_windows;
use crate::plots::SpaceTimeGeometry;

/// Most events a page embeds.
pub const EVENTS_MAX: usize = 5_000;
/// Events embedded from the anchor on (the anchor included), where the trace has them; the
/// rest of [`EVENTS_MAX`] goes before it.
pub const EVENTS_AFTER: usize = 1_000;
/// Most messages in flight listed in the snapshot at the window's first event.
pub const FLIGHT_MAX: usize = 2_000;
/// Most fault windows embedded.
pub const FAULTS_MAX: usize = 1_000;

/// The events a page embeds: `first..end` of the kept trace, around `anchor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The first embedded event (an index into the kept trace).
    pub first: usize,
    /// One past the last embedded event.
    pub end: usize,
    /// The event the window is centred on, if any.
    pub anchor: Option<usize>,
    /// What the anchor is, in words.
    pub why: &'static str,
}

/// Picks the window: at most [`EVENTS_MAX`] events, ending [`EVENTS_AFTER`] events past the
/// anchor (or at the trace's end), the rest before it; a window that would start before the
/// first event is filled from the other side. The anchor is the first violation's event; a
/// violation with no event of its own (a metric assertion judged after the run) anchors at the
/// last event at or before its time, `violation_ns`.
pub fn window(trace: &[TraceEvent], violation_ns: Option<u64>) -> Window {
    let violation = trace
        .iter()
        .position(|e| e.kind == TraceKind::Violation)
        .or_else(|| {
            let t = violation_ns?;
            trace.partition_point(|e| e.time_ns <= t).checked_sub(1)
        });
    let fault = trace.iter().position(|e| e.kind == TraceKind::Fault);
    let (anchor, why) = match (violation, fault) {
        (Some(v), _) => (Some(v), "the first violation"),
        (None, Some(f)) => (Some(f), "the first fault"),
        (None, None) => (None, "the start of the run"),
    };
    let at = anchor.unwrap_or(0);
    let end = (at + EVENTS_AFTER).min(trace.len());
    let first = end.saturating_sub(EVENTS_MAX);
    let end = (first + EVENTS_MAX).min(trace.len());
    Window {
        first,
        end,
        anchor,
        why,
    }
}

/// A node's status as the trace tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    NotStarted,
    Up,
    Crashed,
    Paused,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::NotStarted => "not started",
            Status::Up => "up",
            Status::Crashed => "crashed",
            Status::Paused => "paused",
        }
    }
}

/// How a fault event changes a node's status, from the fault log record paired with it.
fn fault_effect(f: &FaultRecord) -> Option<(&'static str, Vec<usize>)> {
    if f.detail.starts_with("skipped") {
        return None;
    }
    let action = match f.action.as_str() {
        "crash" => "crash",
        "pause" => "pause",
        "resume" => "resume",
        _ => return None,
    };
    Some((action, f.nodes.clone()))
}

fn kind_code(k: TraceKind) -> u8 {
    match k {
        TraceKind::Start => 0,
        TraceKind::Send => 1,
        TraceKind::Deliver => 2,
        TraceKind::DropCut => 3,
        TraceKind::DropLoss => 4,
        TraceKind::DropDown => 5,
        TraceKind::Duplicate => 6,
        TraceKind::Timer => 7,
        TraceKind::Invoke => 8,
        TraceKind::Complete => 9,
        TraceKind::Fault => 10,
        TraceKind::Note => 11,
        TraceKind::Violation => 12,
        TraceKind::Truncated => 13,
    }
}

/// A message in flight: (send time, from, to, label, copies still to arrive).
type Flight<'a> = (u64, usize, usize, &'a str, u32);

/// The messages the crash logged as fault `fault` dropped while they were held at its paused
/// node (`lost` is [`RunResult::lost_at_crash`], in fault order).
fn lost_at(lost: &[(usize, u64)], fault: usize) -> impl Iterator<Item = u64> + '_ {
    let from = lost.partition_point(|(f, _)| *f < fault);
    lost[from..]
        .iter()
        .take_while(move |(f, _)| *f == fault)
        .map(|(_, id)| *id)
}

/// The state the trace gives at some event: statuses, clients' open operations, messages in
/// flight, the algorithms' summaries.
struct Replay<'a> {
    status: Vec<Status>,
    ops: Vec<Option<(&'a str, u64)>>,
    flight: BTreeMap<u64, Flight<'a>>,
    summary: Vec<Option<Value>>,
    faults_seen: usize,
}

impl<'a> Replay<'a> {
    fn new(nodes: usize) -> Self {
        Replay {
            status: vec![Status::NotStarted; nodes],
            ops: vec![None; nodes],
            flight: BTreeMap::new(),
            summary: vec![None; nodes],
            faults_seen: 0,
        }
    }

    /// One copy of message `id` is no longer in flight.
    fn arrived(&mut self, id: u64) {
        if let Some(f) = self.flight.get_mut(&id) {
            f.4 = f.4.saturating_sub(1);
            if f.4 == 0 {
                self.flight.remove(&id);
            }
        }
    }

    fn apply(&mut self, e: &'a TraceEvent, log: &[FaultRecord], lost: &[(usize, u64)]) {
        let n = e.node.min(self.status.len().saturating_sub(1));
        match e.kind {
            TraceKind::Start => self.status[n] = Status::Up,
            TraceKind::Send => {
                if let (Some(id), Some(p)) = (e.msg_id, e.peer) {
                    self.flight.insert(id, (e.time_ns, e.node, p, &e.label, 1));
                }
            }
            TraceKind::Duplicate => {
                if let Some(f) = e.msg_id.and_then(|id| self.flight.get_mut(&id)) {
                    f.4 += 1;
                }
            }
            TraceKind::Deliver | TraceKind::DropCut | TraceKind::DropLoss | TraceKind::DropDown => {
                if let Some(id) = e.msg_id {
                    self.arrived(id);
                }
            }
            TraceKind::Invoke => self.ops[n] = Some((&e.label, e.time_ns)),
            TraceKind::Complete => self.ops[n] = None,
            TraceKind::Fault => {
                if let Some((action, nodes)) = log.get(self.faults_seen).and_then(fault_effect) {
                    let count = self.status.len();
                    for m in nodes.into_iter().filter(|m| *m < count) {
                        let now = self.status[m];
                        self.status[m] = match action {
                            "crash" => {
                                self.summary[m] = None;
                                Status::Crashed
                            }
                            "pause" => Status::Paused,
                            _ if now == Status::Paused => Status::Up,
                            _ => now,
                        };
                    }
                }
                for id in lost_at(lost, self.faults_seen) {
                    self.arrived(id);
                }
                self.faults_seen += 1;
            }
            _ => {}
        }
    }
}

/// The data the page's script reads: the window's events, the snapshot before its first
/// event, the summaries within it and the fault windows. (The diagram's geometry is on its
/// SVG, [`tag_svg`].)
pub fn data(r: &RunResult) -> Value {
    let trace: &[TraceEvent] = r.trace.as_deref().unwrap_or(&[]);
    let w = window(trace, r.violations.first().map(|v| v.time_ns));
    let nodes = (r.servers + r.clients).max(1);
    let mut replay = Replay::new(nodes);
    let sums = &r.summaries;
    let mut si = 0;
    for (i, e) in trace[..w.first].iter().enumerate() {
        replay.apply(e, &r.fault_log, &r.lost_at_crash);
        while si < sums.len() && sums[si].trace_index <= i {
            let s = &sums[si];
            if s.node < nodes {
                replay.summary[s.node] = serde_json::to_value(&s.summary).ok();
            }
            si += 1;
        }
    }
    let snapshot = snapshot_json(&replay);
    // Labels once each, numbered in order of first use.
    let mut labels: Vec<&str> = Vec::new();
    let mut label_ix: BTreeMap<&str, usize> = BTreeMap::new();
    let mut events = Vec::with_capacity(w.end - w.first);
    let mut effects = Vec::new();
    let mut faults_seen = replay.faults_seen;
    for (i, e) in trace.iter().enumerate().take(w.end).skip(w.first) {
        let next = labels.len();
        let l = *label_ix.entry(e.label.as_str()).or_insert(next);
        if l == next {
            labels.push(&e.label);
        }
        let peer = e.peer.map_or(-1, |p| p as i64);
        let id = e.msg_id.map_or(-1, |m| m as i64);
        events.push(json!([e.time_ns, kind_code(e.kind), e.node, peer, l, id]));
        if e.kind == TraceKind::Fault {
            if let Some((action, nodes)) = r.fault_log.get(faults_seen).and_then(fault_effect) {
                let lost: Vec<u64> = lost_at(&r.lost_at_crash, faults_seen).collect();
                effects.push(json!([i, action, nodes, lost]));
            }
            faults_seen += 1;
        }
    }
    let mut points = Vec::new();
    for s in sums.iter().skip(si) {
        if s.trace_index >= w.end {
            break;
        }
        points.push(json!([s.trace_index, s.node, s.summary]));
    }
    let t_lo = trace.get(w.first).map_or(0, |e| e.time_ns);
    let t_hi = trace.get(w.end.saturating_sub(1)).map_or(0, |e| e.time_ns);
    let faults: Vec<Value> = fault_windows(&r.fault_log, r.simulated_ns)
        .into_iter()
        .filter(|f| f.end_ns >= t_lo && f.start_ns <= t_hi)
        .take(FAULTS_MAX)
        .map(|f| json!([f.start_ns, f.end_ns, f.label(), f.detail]))
        .collect();
    let names: Vec<String> = (0..nodes)
        .map(|n| crate::plots::node_name(n, r.servers))
        .collect();
    json!({
        "names": names,
        "servers": r.servers,
        "total": trace.len(),
        "first": w.first,
        "anchor": w.anchor,
        "anchor_is_violation": !r.violations.is_empty() && w.anchor.is_some(),
        "why": w.why,
        "labels": labels,
        "events": events,
        "effects": effects,
        "init": snapshot,
        "summaries": points,
        "faults": faults,
    })
}

/// The snapshot at the window's first event, as the page reads it.
fn snapshot_json(replay: &Replay<'_>) -> Value {
    let status: Vec<&str> = replay.status.iter().map(|s| s.as_str()).collect();
    let ops: Vec<Value> = replay
        .ops
        .iter()
        .map(|o| o.map_or(Value::Null, |(f, t)| json!([f, t])))
        .collect();
    let flight: Vec<Value> = replay
        .flight
        .iter()
        .take(FLIGHT_MAX)
        .map(|(id, (t, from, to, label, copies))| json!([id, t, from, to, label, copies]))
        .collect();
    json!({
        "status": status,
        "ops": ops,
        "flight": flight,
        "flight_more": replay.flight.len().saturating_sub(FLIGHT_MAX),
        "summary": replay.summary,
    })
}

/// Marks the space-time diagram's SVG for the timeline's script: an id, and where it puts
/// time and nodes as data attributes (the window in ns, its ends and each lane in pixels).
pub fn tag_svg(svg: &str, g: &SpaceTimeGeometry) -> String {
    let lanes: Vec<String> = g.lane_y_px.iter().map(|y| y.to_string()).collect();
    let attrs = format!(
        "<svg id=\"spacetime-svg\" data-t0-ns=\"{}\" data-t1-ns=\"{}\" data-x0-px=\"{}\" \
         data-x1-px=\"{}\" data-lanes-px=\"{}\" ",
        g.t0_ns,
        g.t1_ns,
        g.x0_px,
        g.x1_px,
        lanes.join(",")
    );
    svg.replacen("<svg ", &attrs, 1)
}

/// The timeline's section of the page: its controls, the places its script fills, the data
/// and the script. Empty when the run kept no trace.
pub fn section(r: &RunResult) -> String {
    let Some(trace) = r.trace.as_deref() else {
        return String::new();
    };
    if trace.is_empty() {
        return String::new();
    }
    let d = data(r);
    let w = window(trace, r.violations.first().map(|v| v.time_ns));
    let mut h = String::new();
    let _ = write!(
        h,
        "<section id=timeline><h2>Step through the run</h2>\
         <p class=tl-help>Step event by event with the buttons, the slider or the keys \
         <kbd>&rarr;</kbd>/<kbd>n</kbd> next, <kbd>&larr;</kbd>/<kbd>p</kbd> previous, \
         <kbd>v</kbd> the violation, <kbd>f</kbd> first, <kbd>l</kbd> last. The current event \
         is marked on the space-time diagram above (a magenta ring). \
         A link ending in <code>#step=N</code> opens at event N.</p>\
         <p class=tl-left>{}</p>\
         <div class=tl-bar><button id=tl-first title=\"first event (f)\">&laquo; first</button>\
         <button id=tl-prev title=\"previous event (p)\">&#x25C0; prev</button>\
         <button id=tl-next title=\"next event (n)\">next &#x25B6;</button>\
         <button id=tl-last title=\"last event (l)\">last &raquo;</button>\
         <button id=tl-viol title=\"the violation (v)\">jump to violation</button>\
         <input id=tl-slider type=range min=0 max={} value=0 aria-label=\"event\">\
         <span id=tl-pos></span></div>\
         <div id=tl-event class=tl-event></div>\
         <div class=tl-cols><div><h3>Nodes</h3><table id=tl-nodes class=list></table></div>\
         <div><h3>Faults in force</h3><ul id=tl-faults></ul>\
         <h3>Messages in flight</h3><p id=tl-flight-count></p><ul id=tl-flight></ul></div></div>\
         <noscript><p>The timeline needs JavaScript.</p></noscript>",
        crate::esc(&left_out(trace.len(), &w)),
        w.end - w.first - 1,
    );
    // JSON inside a script element: no `<` may appear, so `</script>` cannot end it early.
    let json = d.to_string().replace('<', "\\u003c");
    let _ = write!(
        h,
        "<script type=\"application/json\" id=tl-data>{json}</script><style>{STYLE}</style>\
         <script>{SCRIPT}</script></section>"
    );
    h
}

/// What the page says about the events it left out.
fn left_out(kept: usize, w: &Window) -> String {
    let embedded = w.end - w.first;
    if embedded == kept {
        return format!(
            "The trace has {} events, all embedded.",
            thousands(kept as u64)
        );
    }
    format!(
        "The trace has {} events; this page embeds {} of them (events {} to {}, around {}): \
         {} earlier and {} later events are left out.",
        thousands(kept as u64),
        thousands(embedded as u64),
        thousands(w.first as u64),
        thousands(w.end.saturating_sub(1) as u64),
        w.why,
        thousands(w.first as u64),
        thousands((kept - w.end) as u64)
    )
}

/// 1234567 as "1,234,567".
pub fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut out = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const STYLE: &str = "#timeline .tl-bar{display:flex;gap:6px;align-items:center;flex-wrap:wrap;\
position:sticky;top:0;background:#fff;padding:6px 0;z-index:2}\
#timeline button{font-size:13px;padding:3px 8px}#tl-slider{flex:1;min-width:200px}\
#tl-pos{font-size:13px;color:#333;font-variant-numeric:tabular-nums}\
.tl-event{font-size:14px;padding:6px 8px;background:#f6f3fb;border-left:4px solid #c0c;margin:6px 0}\
.tl-event.tl-v{background:#fdecec;border-left-color:#c82828}\
.tl-cols{display:flex;gap:24px;flex-wrap:wrap}.tl-cols>div{flex:1;min-width:320px}\
#tl-nodes td.tl-crashed{color:#c82828;font-weight:bold}#tl-nodes td.tl-paused{color:#e68c00;font-weight:bold}\
#tl-nodes tr.tl-cur{background:#f6e6f6}#tl-nodes tr.tl-changed td{background:#fff6cc}\
#tl-flight,#tl-faults{font-size:13px;padding-left:18px;max-height:320px;overflow:auto}\
.tl-help,.tl-left{font-size:13px;color:#555}kbd{border:1px solid #bbb;border-radius:3px;padding:0 3px;font-size:12px}";

/// The page's script: reads the data, replays the state to the current step, draws it.
const SCRIPT: &str = include_str!("timeline.js");

/// Puts the timeline after the space-time diagram in `drawn` (marking the diagram's SVG for
/// the script); does nothing when the diagram was not drawn.
pub(crate) fn attach(
    r: &RunResult,
    geometry: Option<SpaceTimeGeometry>,
    drawn: &mut [crate::Drawn],
) {
    let Some(d) = drawn.iter_mut().find(|d| d.name == "spacetime") else {
        return;
    };
    if let Some(g) = &geometry {
        d.svg = tag_svg(&d.svg, g);
    }
    d.after = section(r);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    fn ev(kind: TraceKind, node: usize, peer: Option<usize>, id: Option<u64>) -> TraceEvent {
        TraceEvent {
            time_ns: 0,
            kind,
            node,
            peer,
            label: "m".into(),
            msg_id: id,
        }
    }

    fn fault(action: &str, node: usize) -> FaultRecord {
        FaultRecord {
            time_ns: 0,
            action: action.into(),
            nodes: vec![node],
            detail: String::new(),
        }
    }

    #[test]
    fn messages_held_at_a_paused_node_that_crashes_leave_the_flight() {
        // n0 sends #7 and #8 to n2, which is paused (both held), then crashes; #9 is sent
        // after the pause and still travels. The crash (fault 1) lost #7 and #8.
        let trace = vec![
            ev(TraceKind::Start, 2, None, None),
            ev(TraceKind::Fault, 2, None, None),
            ev(TraceKind::Send, 0, Some(2), Some(7)),
            ev(TraceKind::Send, 0, Some(2), Some(8)),
            ev(TraceKind::Duplicate, 0, Some(2), Some(8)),
            ev(TraceKind::Fault, 2, None, None),
            ev(TraceKind::Send, 0, Some(2), Some(9)),
        ];
        let log = vec![fault("pause", 2), fault("crash", 2)];
        let flight_after = |lost: &[(usize, u64)]| {
            let mut r = Replay::new(3);
            for e in &trace {
                r.apply(e, &log, lost);
            }
            assert_eq!(r.status[2], Status::Crashed);
            r.flight
                .iter()
                .map(|(id, f)| (*id, f.4))
                .collect::<Vec<_>>()
        };
        // Without the list they would stay in flight for ever.
        assert_eq!(flight_after(&[]), vec![(7, 1), (8, 2), (9, 1)]);
        // #8 was held twice (duplicated); a loss listed at another fault changes nothing.
        let lost = [(0, 9), (1, 7), (1, 8), (1, 8)];
        assert_eq!(flight_after(&lost), vec![(9, 1)]);
        assert_eq!(lost_at(&lost, 1).collect::<Vec<_>>(), vec![7, 8, 8]);
        assert_eq!(lost_at(&lost, 2).count(), 0);
    }

    #[test]
    fn the_diagram_is_tagged_once_with_its_geometry() {
        let g = SpaceTimeGeometry {
            t0_ns: 5,
            t1_ns: 9,
            x0_px: 60,
            x1_px: 1000,
            lane_y_px: vec![70, 120],
        };
        let svg = tag_svg("<svg width=\"10\"><svg x=\"1\"/></svg>", &g);
        assert_eq!(
            svg,
            "<svg id=\"spacetime-svg\" data-t0-ns=\"5\" data-t1-ns=\"9\" data-x0-px=\"60\" \
             data-x1-px=\"1000\" data-lanes-px=\"70,120\" width=\"10\"><svg x=\"1\"/></svg>"
        );
    }
}
