//! The Raft log panel: each server's log as the paper draws it (Figure 8), one box per entry
//! with its term, at each moment a leader was elected and at the violation (or the end), so
//! an entry that is committed and then overwritten, or missing from a later leader, is seen.
//! A run stops at its first violation, which for Figure 8 is the election of a leader that
//! lacks a committed entry: the overwrite itself comes after. So when the report has the run
//! carried on past the violation (`distsim run --report-after`), one more moment is drawn at
//! its end, where the committed entry is seen replaced.
//!
//! Input convention (recorded by `algorithms/src/raft/server.rs`, each point tagged with its
//! node):
//! - `log.term`: value `index * TERM_SCALE + term` says "this server's log now holds an entry
//!   of `term` at `index`, and ends there"; a batch of entries is one point per entry, in
//!   order, so the last point of an instant says where the log ends.
//! - `log.commit`: the server's commit index.
//! - `state.leader` (1 while leading) and `term` (the server's current term) name the moments
//!   drawn and who led.
//!
//! What is marked, from these series only:
//! - committed entries (at or below the server's own commit index) are drawn solid, the rest
//!   pale, with a black bar under the committed prefix;
//! - an entry that differs from the same server's entry at that index one moment earlier was
//!   overwritten: it gets a dark corner mark;
//! - an index some server committed is "committed" from then on with that entry's term; a
//!   leader that lacks it, or holds another term there, is the failure Raft's leader
//!   completeness forbids, and those cells are outlined in the violation colour.

use std::collections::BTreeMap;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use sim_core::metrics::SeriesPoint;

use crate::plots::{err, fmt_s, font, note, Plot, VIOLATION_C};

/// The scale of `log.term` values (the same constant as the Raft server's).
pub const TERM_SCALE: u64 = 1 << 24;
/// Most moments drawn (the last ones before the violation or the end).
pub const MOMENTS_MAX: usize = 6;
/// Most log indices drawn.
pub const COLUMNS_MAX: usize = 48;

/// The series this panel draws (the generic loop leaves them alone when it is drawn).
pub const SERIES: [&str; 2] = ["log.term", "log.commit"];

/// The log panel.
pub struct LogPlot<'a> {
    /// `log.term` points.
    pub entries: &'a [SeriesPoint],
    /// `log.commit` points.
    pub commit: &'a [SeriesPoint],
    /// `state.leader` points.
    pub leader: &'a [SeriesPoint],
    /// `term` points.
    pub term: &'a [SeriesPoint],
    /// The first violation.
    pub violation_ns: Option<u64>,
    /// The run's end.
    pub end_ns: u64,
    /// Where the run carried on past the violation stopped, when the series are those of such
    /// a run ([`crate::AfterViolation`]): one more moment is drawn there.
    pub after_end_ns: Option<u64>,
}

/// A server's entry that was committed and has been replaced by an entry of another term since
/// an earlier moment: what Figure 8's bug leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overwrite {
    /// The server.
    pub node: usize,
    /// The log index.
    pub index: u64,
    /// The committed entry's term.
    pub committed_term: u64,
    /// The term of the entry there now.
    pub term: u64,
}

/// Every server's log and commit index at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moment {
    /// When.
    pub time_ns: u64,
    /// What happened then ("n4 leads term 4", "the violation").
    pub label: String,
    /// The leader elected at this moment, if any.
    pub leader: Option<usize>,
    /// Its term (0 when no leader).
    pub leader_term: u64,
    /// Per server: the term of each entry, index 1 first.
    pub logs: BTreeMap<usize, Vec<u64>>,
    /// Per server: the commit index.
    pub commit: BTreeMap<usize, u64>,
    /// Index -> the term of the entry committed there (by any server), as of this moment.
    pub committed: BTreeMap<u64, u64>,
}

impl Moment {
    /// The cells where the leader of this moment lacks a committed entry or holds another:
    /// (index, committed term, the leader's term there or 0).
    pub fn leader_losses(&self) -> Vec<(u64, u64, u64)> {
        let Some(l) = self.leader else {
            return Vec::new();
        };
        let log = self.logs.get(&l).map(|v| v.as_slice()).unwrap_or(&[]);
        self.committed
            .iter()
            .filter_map(|(&i, &t)| {
                let here = log.get(i as usize - 1).copied().unwrap_or(0);
                (here != t).then_some((i, t, here))
            })
            .collect()
    }

    /// The committed entries that some server held at `before` and holds with another term
    /// now: overwritten.
    pub fn overwrites(&self, before: &Moment) -> Vec<Overwrite> {
        let mut out = Vec::new();
        for (&node, log) in &self.logs {
            let Some(was) = before.logs.get(&node) else {
                continue;
            };
            for (&index, &committed_term) in &self.committed {
                let at = |l: &Vec<u64>| l.get(index as usize - 1).copied();
                if let (Some(w), Some(term)) = (at(was), at(log)) {
                    if w == committed_term && term != w {
                        out.push(Overwrite {
                            node,
                            index,
                            committed_term,
                            term,
                        });
                    }
                }
            }
        }
        out
    }
}

/// Decodes a `log.term` value into (index, term).
pub fn decode(value: f64) -> (u64, u64) {
    let v = value.max(0.0) as u64;
    (v / TERM_SCALE, v % TERM_SCALE)
}

impl LogPlot<'_> {
    /// The moments drawn: those of [`LogPlot::moments`] with an entry in the indices shown.
    pub fn shown(&self) -> Vec<Moment> {
        let all = self.moments();
        let (lo, _) = columns(&all);
        all.into_iter()
            .filter(|m| m.logs.values().any(|l| l.len() as u64 >= lo))
            .collect()
    }

    /// The moments of the run: each leader election, and the violation or the end; the last
    /// [`MOMENTS_MAX`] of them.
    pub fn moments(&self) -> Vec<Moment> {
        let last = self.violation_ns.unwrap_or(self.end_ns).min(self.end_ns);
        let mut when: Vec<(u64, Option<usize>)> = self
            .leader
            .iter()
            .filter(|p| p.value != 0.0 && p.time_ns <= last)
            .map(|p| (p.time_ns, Some(p.node)))
            .collect();
        if when.last().map(|w| w.0) != Some(last) {
            when.push((last, None));
        }
        let after = self
            .after_end_ns
            .filter(|a| *a > last && self.violation_ns.is_some());
        if let Some(a) = after {
            when.push((a, None));
        }
        let skip = when.len().saturating_sub(MOMENTS_MAX);
        let term_of = |node: usize, t: u64| {
            self.term
                .iter()
                .rev()
                .find(|p| p.node == node && p.time_ns <= t)
                .map(|p| p.value as u64)
                .unwrap_or(0)
        };
        // Replay both series in time order (each is in time order already).
        let mut state = Moment::default();
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        for (k, &(t, leader)) in when.iter().enumerate() {
            while i < self.entries.len() || j < self.commit.len() {
                let te = self.entries.get(i).map(|p| p.time_ns).unwrap_or(u64::MAX);
                let tc = self.commit.get(j).map(|p| p.time_ns).unwrap_or(u64::MAX);
                if te.min(tc) > t {
                    break;
                }
                if te <= tc {
                    let p = &self.entries[i];
                    let (index, term) = decode(p.value);
                    let log = state.logs.entry(p.node).or_default();
                    log.resize(index as usize, 0);
                    if index > 0 {
                        log[index as usize - 1] = term;
                    }
                    i += 1;
                } else {
                    let p = &self.commit[j];
                    let c = p.value.max(0.0) as u64;
                    state.commit.insert(p.node, c);
                    let log = state.logs.get(&p.node).map(|v| v.as_slice()).unwrap_or(&[]);
                    // A commit index commits every index below it, so the committed indices
                    // are always 1..=K: only the new ones are added (linear in the run).
                    let known = state.committed.len() as u64;
                    for index in known + 1..=c.min(log.len() as u64) {
                        state.committed.insert(index, log[index as usize - 1]);
                    }
                    j += 1;
                }
            }
            if k < skip {
                continue;
            }
            let mut m = state.clone();
            m.time_ns = t;
            m.leader = leader;
            m.leader_term = leader.map(|l| term_of(l, t)).unwrap_or(0);
            m.label = match (leader, self.violation_ns == Some(t)) {
                _ if after == Some(t) => format!(
                    "{} after the violation (the run carried on past it for this panel only)",
                    fmt_s(t - last)
                ),
                (Some(l), v) => format!(
                    "n{l} is elected leader of term {}{}",
                    m.leader_term,
                    if v { " (the violation)" } else { "" }
                ),
                (None, true) => "at the violation".into(),
                (None, false) => "at the end of the run".into(),
            };
            out.push(m);
        }
        out
    }
}

/// Term colours (categorical, no red: red is kept for violations).
fn term_color(term: u64) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    if term == 0 {
        RGBColor(200, 200, 200)
    } else {
        C[(term as usize - 1) % C.len()]
    }
}

/// The indices drawn: around the leader's losses if any, else from the first index where two
/// logs (or one log at two moments) differ, else the newest entries.
fn columns(moments: &[Moment]) -> (u64, u64) {
    let hi = moments
        .iter()
        .flat_map(|m| m.logs.values().map(|l| l.len() as u64))
        .max()
        .unwrap_or(0)
        .max(1);
    let losses: Vec<u64> = moments
        .iter()
        .flat_map(|m| m.leader_losses().into_iter().map(|l| l.0))
        .collect();
    let mut differ: Option<u64> = None;
    for (k, m) in moments.iter().enumerate() {
        let logs: Vec<&Vec<u64>> = m.logs.values().collect();
        for i in 1..=hi {
            let at = |l: &Vec<u64>| l.get(i as usize - 1).copied();
            let mut terms = logs.iter().filter_map(|l| at(l));
            let first = terms.next();
            let split = terms.any(|t| Some(t) != first);
            let rewritten = k > 0
                && m.logs.iter().any(|(n, l)| {
                    let before = moments[k - 1].logs.get(n).and_then(at);
                    before.is_some() && at(l).is_some() && before != at(l)
                });
            if split || rewritten {
                differ = Some(differ.map_or(i, |d| d.min(i)));
                break;
            }
        }
    }
    let width = COLUMNS_MAX as u64;
    let (from, to) = match (losses.iter().min(), losses.iter().max(), differ) {
        (Some(&a), Some(&b), _) => (a, b),
        (_, _, Some(d)) => (d, hi),
        _ => (hi.saturating_sub(width - 5).max(1), hi),
    };
    let lo = from.saturating_sub(4).max(1);
    if to + 1 - lo > width {
        // Too wide: keep the newest part of the focus.
        (to + 1 - width, to)
    } else {
        (lo, (lo + width - 1).min(hi.max(to)))
    }
}

/// Every server with a log in any moment, in order.
fn servers_of(moments: &[Moment]) -> Vec<usize> {
    moments
        .iter()
        .flat_map(|m| m.logs.keys().copied())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

const ROW_H: i32 = 18;
const HEAD_H: i32 = 22;
const GAP_H: i32 = 14;
const LEFT: i32 = 120;

impl Plot for LogPlot<'_> {
    fn size(&self) -> (u32, u32) {
        let moments = self.shown();
        let rows = servers_of(&moments).len().max(1) as i32;
        let block = HEAD_H + rows * ROW_H + GAP_H + 14;
        (
            1100,
            (70 + moments.len() as i32 * block + 56).max(200) as u32,
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(err)?;
        let all = self.moments();
        let moments = self.shown();
        let left_out = all.len() - moments.len();
        let (w, _) = root.dim_in_pixel();
        root.draw(&Text::new(
            "Raft: each server's log (a box per entry, its term inside)".to_string(),
            (w as i32 / 2, 10),
            font(18).pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(err)?;
        let (lo, hi) = columns(&all);
        let cols = (hi + 1 - lo) as i32;
        // Room on the right for "commit N, last M".
        let cw = ((w as i32 - LEFT - 110) / cols.max(1)).min(28);
        let servers = servers_of(&moments);
        let mut y = 44;
        // The index axis, once, above the first block.
        let step = if cw >= 24 { 1 } else { 5 };
        for i in lo..=hi {
            if i % step == 0 || i == lo || i == hi {
                let x = LEFT + (i - lo) as i32 * cw + cw / 2;
                root.draw(&Text::new(
                    i.to_string(),
                    (x, y),
                    font(10).pos(Pos::new(HPos::Center, VPos::Top)),
                ))
                .map_err(err)?;
            }
        }
        root.draw(&Text::new(
            "log index".to_string(),
            (LEFT - 8, y),
            font(11).pos(Pos::new(HPos::Right, VPos::Top)),
        ))
        .map_err(err)?;
        y += 18;
        let mut losses_total = Vec::new();
        for (k, m) in moments.iter().enumerate() {
            let losses = m.leader_losses();
            let overwrites = k
                .checked_sub(1)
                .map(|p| m.overwrites(&moments[p]))
                .unwrap_or_default();
            root.draw(&Text::new(
                format!("{}  {}", fmt_s(m.time_ns), m.label),
                (8, y + 4),
                font(13).pos(Pos::new(HPos::Left, VPos::Top)),
            ))
            .map_err(err)?;
            y += HEAD_H;
            for &n in &servers {
                let log = m.logs.get(&n).map(|v| v.as_slice()).unwrap_or(&[]);
                let commit = m.commit.get(&n).copied().unwrap_or(0);
                let before = k.checked_sub(1).and_then(|p| moments[p].logs.get(&n));
                let name = if m.leader == Some(n) {
                    format!("n{n} (leader)")
                } else {
                    format!("n{n}")
                };
                root.draw(&Text::new(
                    name,
                    (LEFT - 8, y + ROW_H / 2),
                    font(12).pos(Pos::new(HPos::Right, VPos::Center)),
                ))
                .map_err(err)?;
                for i in lo..=hi {
                    let x = LEFT + (i - lo) as i32 * cw;
                    let cell = [(x + 1, y + 1), (x + cw - 1, y + ROW_H - 3)];
                    let here = log.get(i as usize - 1).copied();
                    if let Some(t) = here {
                        let c = term_color(t);
                        let solid = i <= commit;
                        root.draw(&Rectangle::new(
                            cell,
                            c.mix(if solid { 0.9 } else { 0.3 }).filled(),
                        ))
                        .map_err(err)?;
                        if cw >= 12 {
                            root.draw(&Text::new(
                                t.to_string(),
                                (x + cw / 2, y + ROW_H / 2 - 1),
                                font(if t < 100 { 11 } else { 8 })
                                    .color(if solid { &WHITE } else { &BLACK })
                                    .pos(Pos::new(HPos::Center, VPos::Center)),
                            ))
                            .map_err(err)?;
                        }
                        let was = before.and_then(|b| b.get(i as usize - 1).copied());
                        if was.is_some_and(|w| w != t) {
                            // Overwritten since the moment above: a dark corner.
                            root.draw(&Polygon::new(
                                vec![(x + 1, y + 1), (x + 8, y + 1), (x + 1, y + 8)],
                                BLACK.filled(),
                            ))
                            .map_err(err)?;
                        }
                    } else {
                        root.draw(&Rectangle::new(
                            cell,
                            RGBColor(225, 225, 225).stroke_width(1),
                        ))
                        .map_err(err)?;
                    }
                    let lost = m.leader == Some(n) && losses.iter().any(|l| l.0 == i);
                    if lost || overwrites.iter().any(|o| o.node == n && o.index == i) {
                        root.draw(&Rectangle::new(
                            [(x, y), (x + cw, y + ROW_H - 2)],
                            VIOLATION_C.stroke_width(2),
                        ))
                        .map_err(err)?;
                    }
                }
                let shown = commit.min(hi).min(log.len() as u64);
                if shown >= lo {
                    let x1 = LEFT + (shown + 1 - lo) as i32 * cw;
                    root.draw(&Rectangle::new(
                        [(LEFT, y + ROW_H - 3), (x1, y + ROW_H - 1)],
                        BLACK.filled(),
                    ))
                    .map_err(err)?;
                }
                root.draw(&Text::new(
                    format!("commit {commit}, last {}", log.len()),
                    (LEFT + cols * cw + 6, y + ROW_H / 2),
                    font(10)
                        .color(&RGBColor(90, 90, 90))
                        .pos(Pos::new(HPos::Left, VPos::Center)),
                ))
                .map_err(err)?;
                y += ROW_H;
            }
            if let (Some(l), Some(first), Some(last)) = (m.leader, losses.first(), losses.last()) {
                let text = format!(
                    "n{l} leads term {} without the entries committed at {}..{} (term {}): as leader it overwrites them",
                    m.leader_term, first.0, last.0, first.1
                );
                root.draw(&Text::new(
                    text.clone(),
                    (LEFT, y + 1),
                    font(12)
                        .color(&VIOLATION_C)
                        .pos(Pos::new(HPos::Left, VPos::Top)),
                ))
                .map_err(err)?;
                losses_total.push(text);
                y += 14;
            }
            if let (Some(first), Some(last)) = (overwrites.first(), overwrites.last()) {
                let mut nodes: Vec<String> =
                    overwrites.iter().map(|o| format!("n{}", o.node)).collect();
                nodes.dedup();
                let (lo_i, hi_i) = overwrites
                    .iter()
                    .fold((u64::MAX, 0), |(a, b), o| (a.min(o.index), b.max(o.index)));
                let text = format!(
                    "committed entries overwritten on {}: indices {lo_i}..{hi_i} (term {}) now hold term {}",
                    nodes.join(", "),
                    first.committed_term,
                    last.term
                );
                root.draw(&Text::new(
                    text,
                    (LEFT, y + 1),
                    font(12)
                        .color(&VIOLATION_C)
                        .pos(Pos::new(HPos::Left, VPos::Top)),
                ))
                .map_err(err)?;
                y += 14;
            }
            y += GAP_H;
        }
        let earlier = if left_out > 0 {
            format!(" {left_out} earlier moment(s) with no entry in these indices are left out.")
        } else {
            String::new()
        };
        note(
            root,
            &format!(
                "Indices {lo}..{hi} shown.{earlier} Solid with a black bar below: committed on that server; pale: not yet committed; \
                 dark corner: overwritten since the moment above; red outline: an entry committed in an earlier term that the new leader lacks or holds with another term, or a committed entry overwritten since the moment above."
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plots::test_point as pt;

    fn e(index: u64, term: u64) -> f64 {
        (index * TERM_SCALE + term) as f64
    }

    /// Figure 8 in small: n0 leads term 1 and commits index 2 (term 1) on n0 and n1; n2 leads
    /// term 2 at 40 with its own entry at 2 and never had n0's, so leader completeness is
    /// broken at index 2. `later` is what the logs do next. Returns the `log.term`,
    /// `log.commit`, `state.leader` and `term` points.
    fn n2_leads_without_index_2(later: &[SeriesPoint]) -> [Vec<SeriesPoint>; 4] {
        let mut entries = vec![
            pt(10, 0, e(1, 1)),
            pt(11, 1, e(1, 1)),
            pt(12, 2, e(1, 1)),
            pt(20, 0, e(2, 1)),
            pt(21, 1, e(2, 1)),
            pt(40, 2, e(2, 2)),
        ];
        entries.extend_from_slice(later);
        [
            entries,
            vec![pt(22, 0, 2.0)],
            vec![pt(5, 0, 1.0), pt(30, 0, 0.0), pt(40, 2, 1.0)],
            vec![pt(5, 0, 1.0), pt(40, 2, 2.0)],
        ]
    }

    #[test]
    fn moments_replay_logs_and_find_a_leader_without_a_committed_entry() {
        // n1 takes n2's entry at 2: an overwrite of a committed entry.
        let [entries, commit, leader, term] = n2_leads_without_index_2(&[pt(50, 1, e(2, 2))]);
        let p = LogPlot {
            entries: &entries,
            commit: &commit,
            leader: &leader,
            term: &term,
            violation_ns: None,
            end_ns: 60,
            after_end_ns: None,
        };
        let m = p.moments();
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[1].label, "n2 is elected leader of term 2");
        assert_eq!(m[1].committed.get(&2), Some(&1));
        assert_eq!(m[1].leader_losses(), vec![(2, 1, 2)]);
        assert_eq!(m[2].logs[&1], vec![1, 2], "n1's entry 2 overwritten");
        assert_eq!(m[0].logs.get(&2), None, "nothing replayed past a moment");
        assert_eq!(columns(&m), (1, 2));
    }

    #[test]
    fn a_moment_after_the_violation_shows_the_committed_entry_overwritten() {
        // The violation is n2's election at 40; carried on, n2's entry of term 2 replaces the
        // committed one on n0 and n1 at 50.
        let [entries, commit, leader, term] =
            n2_leads_without_index_2(&[pt(50, 0, e(2, 2)), pt(50, 1, e(2, 2))]);
        let plot = |after_end_ns| LogPlot {
            entries: &entries,
            commit: &commit,
            leader: &leader,
            term: &term,
            violation_ns: Some(40),
            end_ns: 40,
            after_end_ns,
        };
        let m = plot(Some(60)).moments();
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[1].leader_losses(), vec![(2, 1, 2)]);
        assert!(m[2].label.contains("after the violation"), "{}", m[2].label);
        let over = m[2].overwrites(&m[1]);
        let o = |node| Overwrite {
            node,
            index: 2,
            committed_term: 1,
            term: 2,
        };
        assert_eq!(over, vec![o(0), o(1)]);
        // Without the carried-on stretch the last moment is the violation: no overwrite seen.
        let m = plot(None).moments();
        assert_eq!(m.len(), 2);
        assert!(m[1].overwrites(&m[0]).is_empty());
    }

    #[test]
    fn a_shorter_batch_ends_the_log() {
        let entries = [pt(1, 0, e(1, 1)), pt(1, 0, e(2, 1)), pt(2, 0, e(1, 3))];
        let p = LogPlot {
            entries: &entries,
            commit: &[],
            leader: &[],
            term: &[],
            violation_ns: None,
            end_ns: 5,
            after_end_ns: None,
        };
        assert_eq!(p.moments()[0].logs[&0], vec![3], "the log ends at index 1");
    }
}
