//! Whether each scripted fault bit: the messages it cut, dropped or delayed. A fault that
//! touched nothing is reported as a warning, so a run that passed only because its faults
//! never bit is visible.

use crate::process::NodeId;

/// Per scripted fault, the messages it affected, and which fault is in force where.
#[derive(Default)]
pub(crate) struct Bites {
    /// The scripted fault being applied right now (None for the nemesis and undo actions).
    pub(crate) current: Option<usize>,
    /// Messages affected, per scripted fault (indexed as in the scenario file).
    pub(crate) effect: Vec<u64>,
    /// Scripted faults that could not act when they fired, with why.
    pub(crate) skipped: Vec<Option<String>>,
    partition: Option<usize>,
    crash: Vec<Option<usize>>,
    pause: Vec<Option<usize>>,
    clog: Vec<Option<usize>>,
}

impl Bites {
    pub(crate) fn new(script_len: usize, nodes: usize) -> Self {
        Bites {
            effect: vec![0; script_len],
            skipped: vec![None; script_len],
            crash: vec![None; nodes],
            pause: vec![None; nodes],
            clog: vec![None; nodes],
            ..Bites::default()
        }
    }

    fn add(&mut self, who: Option<usize>) {
        if let Some(i) = who {
            self.effect[i] += 1;
        }
    }

    /// A partition takes effect (replacing any earlier one) or is healed (`on == false`).
    pub(crate) fn set_partition(&mut self, on: bool) {
        self.partition = if on { self.current } else { None };
    }
    /// A node crashes (`on`) or restarts.
    pub(crate) fn set_crash(&mut self, node: NodeId, on: bool) {
        self.crash[node] = if on { self.current } else { None };
    }
    /// A node pauses (`on`) or resumes.
    pub(crate) fn set_pause(&mut self, node: NodeId, on: bool) {
        self.pause[node] = if on { self.current } else { None };
    }
    /// A node is clogged (`on`) or unclogged.
    pub(crate) fn set_clog(&mut self, node: NodeId, on: bool) {
        self.clog[node] = if on { self.current } else { None };
    }
    /// A message was cut by the partition in force.
    pub(crate) fn cut(&mut self) {
        self.add(self.partition);
    }
    /// A message to a crashed node was dropped.
    pub(crate) fn down(&mut self, to: NodeId) {
        self.add(self.crash[to]);
    }
    /// A message or timer waited for a paused node.
    pub(crate) fn paused(&mut self, node: NodeId) {
        self.add(self.pause[node]);
    }
    /// A message waited for a clogged node.
    pub(crate) fn clogged(&mut self, from: NodeId, to: NodeId) {
        let who = self.clog[from].or(self.clog[to]);
        self.add(who);
    }
    /// The scripted fault being applied could not act.
    pub(crate) fn skip(&mut self, why: String) {
        if let Some(i) = self.current {
            self.skipped[i] = Some(why);
        }
    }
}
