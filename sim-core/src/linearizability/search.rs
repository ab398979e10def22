//! The search for one part: Wing & Gong's depth-first search with Lowe's cache of visited
//! configurations, over a doubly linked list of call and return entries from which linearized
//! operations are lifted (and put back, in reverse order, when the search backtracks).
//!
//! Operations with an unknown outcome (`info`) have no return entry: they stay candidates
//! from their invocation on and need never be linearized. They live in a second list that is
//! tried only after every `ok` candidate, so that the search places them lazily, right where
//! an observation needs their effect.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use super::model::Model;

/// One operation of a part, as the search sees it.
pub(crate) struct PartOp<I, O> {
    pub input: I,
    /// The observed result; `None` for an `info` operation (unknown outcome).
    pub output: Option<O>,
    /// Position of the invocation in the history (event index): real-time order.
    pub call: u64,
    /// Position of the `ok` completion; `None` for `info` (it may take effect at any time).
    pub ret: Option<u64>,
}

/// Limits on one part's search.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Budget {
    /// Stop with Unknown when the cache holds this many configurations.
    pub max_states: Option<u64>,
    /// Stop with Unknown at this instant.
    pub deadline: Option<Instant>,
}

/// How one part's search ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists. `linearized` is the longest prefix found (indices into the part's ops) and
    /// `blocked` the `ok` operations that could not come next.
    NotLinearizable { linearized: Vec<u32>, blocked: Vec<u32> },
    /// A budget ran out; the string says which.
    Unknown(String),
}

/// The result of one part's search.
#[derive(Debug)]
pub(crate) struct SearchResult {
    pub outcome: Outcome,
    /// Distinct configurations (linearized set, state) entered.
    pub visited: u64,
}

/// A small multiplicative hasher (in the spirit of FxHash) for the visited cache: the keys are
/// bitsets and small states, and SipHash's DoS resistance buys nothing here.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // A final avalanche, because hashbrown-style tables use the top bits.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7cc1_b727_220a_95);
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }
}

type Cache<S> = HashSet<(Box<[u64]>, S), BuildHasherDefault<FastHasher>>;

/// Sentinel for "no entry" in the linked lists.
const NIL: u32 = u32::MAX;
/// Head sentinel of the list of `ok` call and return entries.
const MAIN_HEAD: u32 = 0;
/// Head sentinel of the list of `info` call entries.
const INFO_HEAD: u32 = 1;

/// The two entry lists, in one pair of link arrays (dancing links).
struct Lists {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Which operation an entry belongs to.
    op: Vec<u32>,
    /// Real-time position of the entry.
    pos: Vec<u64>,
    /// True for return entries.
    is_ret: Vec<bool>,
    /// Per operation: its call entry and its return entry (NIL for info).
    call_of: Vec<u32>,
    ret_of: Vec<u32>,
}

impl Lists {
    fn build<I, O>(ops: &[PartOp<I, O>]) -> Lists {
        // Entries: (position, is_ret, op). Positions are distinct event indices, so sorting by
        // position alone gives the real-time order.
        let mut main: Vec<(u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        let mut info: Vec<(u64, bool, u32)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let i = i as u32;
            match op.ret {
                Some(r) => {
                    main.push((op.call, false, i));
                    main.push((r, true, i));
                }
                None => info.push((op.call, false, i)),
            }
        }
        main.sort_unstable();
        info.sort_unstable();
        let n = 2 + main.len() + info.len();
        let mut l = Lists {
            next: vec![NIL; n],
            prev: vec![NIL; n],
            op: vec![NIL; n],
            pos: vec![0; n],
            is_ret: vec![false; n],
            call_of: vec![NIL; ops.len()],
            ret_of: vec![NIL; ops.len()],
        };
        let mut id = 2u32;
        for (head, entries) in [(MAIN_HEAD, &main), (INFO_HEAD, &info)] {
            let mut last = head;
            for &(pos, is_ret, op) in entries.iter() {
                l.op[id as usize] = op;
                l.pos[id as usize] = pos;
                l.is_ret[id as usize] = is_ret;
                if is_ret {
                    l.ret_of[op as usize] = id;
                } else {
                    l.call_of[op as usize] = id;
                }
                l.next[last as usize] = id;
                l.prev[id as usize] = last;
                last = id;
                id += 1;
            }
        }
        l
    }

    fn unlink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, e: u32) {
        let (p, n) = (self.prev[e as usize], self.next[e as usize]);
        self.next[p as usize] = e;
        if n != NIL {
            self.prev[n as usize] = e;
        }
    }

    /// Removes a linearized operation's entries.
    fn lift(&mut self, op: u32) {
        self.unlink(self.call_of[op as usize]);
        let r = self.ret_of[op as usize];
        if r != NIL {
            self.unlink(r);
        }
    }

    /// Puts them back; must undo the most recent `lift` (dancing links are LIFO).
    fn unlift(&mut self, op: u32) {
        let r = self.ret_of[op as usize];
        if r != NIL {
            self.relink(r);
        }
        self.relink(self.call_of[op as usize]);
    }
}

/// What the search remembers to undo one step.
struct Frame<S> {
    /// The entry (call) that was linearized.
    entry: u32,
    /// The state before it.
    state: S,
    /// Whether the entry was tried from the info list, and the position bound in force.
    in_info: bool,
    limit: u64,
}

/// How often (in loop iterations) the wall clock is read.
const CLOCK_EVERY: u64 = 1024;

/// Searches for a linearization of `ops` from `model.init()`.
pub(crate) fn search<M: Model + ?Sized>(
    model: &M,
    ops: &[PartOp<M::Input, M::Output>],
    budget: Budget,
) -> SearchResult {
    assert!(ops.len() < (u32::MAX / 2 - 2) as usize, "part too large");
    let mut lists = Lists::build(ops);
    let words = ops.len().div_ceil(64).max(1);
    let mut bits = vec![0u64; words].into_boxed_slice();
    let mut cache: Cache<M::State> = Cache::default();
    let mut state = model.init();
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut ok_left = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut best: Option<(Vec<u32>, Vec<u32>)> = None;

    let mut cursor = lists.next[MAIN_HEAD as usize];
    let mut in_info = false;
    let mut limit = 0u64;
    let mut iterations = 0u64;

    loop {
        if ok_left == 0 {
            // Every ok operation is placed; unplaced info operations simply never took effect.
            return SearchResult {
                outcome: Outcome::Linearizable,
                visited: cache.len() as u64,
            };
        }
        iterations += 1;
        if iterations % CLOCK_EVERY == 0 {
            if let Some(deadline) = budget.deadline {
                if Instant::now() >= deadline {
                    return SearchResult {
                        outcome: Outcome::Unknown("the time budget ran out".to_owned()),
                        visited: cache.len() as u64,
                    };
                }
            }
        }

        // Pick the next candidate entry, or learn that there is none left here.
        let mut candidate = NIL;
        if !in_info {
            // ok_left > 0, so a return entry exists in the main list before its end.
            debug_assert!(cursor != NIL);
            if lists.is_ret[cursor as usize] {
                // Calls before the first return are exactly the ok operations that may come
                // next; info operations may come next when invoked before that return.
                limit = lists.pos[cursor as usize];
                in_info = true;
                cursor = lists.next[INFO_HEAD as usize];
            } else {
                candidate = cursor;
            }
        }
        if in_info && cursor != NIL && lists.pos[cursor as usize] < limit {
            candidate = cursor;
        }

        if candidate != NIL {
            let op_i = lists.op[candidate as usize];
            let op = &ops[op_i as usize];
            if let Some(next_state) = model.step(&state, &op.input, op.output.as_ref()) {
                let (w, b) = (op_i as usize / 64, 1u64 << (op_i % 64));
                bits[w] |= b;
                if cache.insert((bits.clone(), next_state.clone())) {
                    if let Some(max) = budget.max_states {
                        if cache.len() as u64 > max {
                            return SearchResult {
                                outcome: Outcome::Unknown(format!(
                                    "the budget of {max} visited states ran out"
                                )),
                                visited: cache.len() as u64,
                            };
                        }
                    }
                    stack.push(Frame {
                        entry: candidate,
                        state: std::mem::replace(&mut state, next_state),
                        in_info,
                        limit,
                    });
                    lists.lift(op_i);
                    if op.ret.is_some() {
                        ok_left -= 1;
                    }
                    cursor = lists.next[MAIN_HEAD as usize];
                    in_info = false;
                    continue;
                }
                bits[w] &= !b;
            }
            cursor = lists.next[candidate as usize];
            continue;
        }

        // Dead end: nothing can come next from this configuration.
        if best.as_ref().is_none_or(|(lin, _)| stack.len() > lin.len()) {
            let linearized: Vec<u32> = stack.iter().map(|f| lists.op[f.entry as usize]).collect();
            best = Some((linearized, blocked_ops(model, ops, &lists, &state)));
        }
        let Some(frame) = stack.pop() else {
            let (linearized, blocked) = best.unwrap_or_default();
            return SearchResult {
                outcome: Outcome::NotLinearizable { linearized, blocked },
                visited: cache.len() as u64,
            };
        };
        let op_i = lists.op[frame.entry as usize];
        lists.unlift(op_i);
        bits[op_i as usize / 64] &= !(1u64 << (op_i % 64));
        if ops[op_i as usize].ret.is_some() {
            ok_left += 1;
        }
        state = frame.state;
        in_info = frame.in_info;
        limit = frame.limit;
        cursor = lists.next[frame.entry as usize];
    }
}

/// The ok operations that could come next in real time but that the model refuses from
/// `state`; if the model accepts them all (their successors were already explored), all of
/// them.
fn blocked_ops<M: Model + ?Sized>(
    model: &M,
    ops: &[PartOp<M::Input, M::Output>],
    lists: &Lists,
    state: &M::State,
) -> Vec<u32> {
    let mut frontier = Vec::new();
    let mut e = lists.next[MAIN_HEAD as usize];
    while e != NIL && !lists.is_ret[e as usize] {
        frontier.push(lists.op[e as usize]);
        e = lists.next[e as usize];
    }
    let refused: Vec<u32> = frontier
        .iter()
        .copied()
        .filter(|&i| {
            let op = &ops[i as usize];
            model.step(state, &op.input, op.output.as_ref()).is_none()
        })
        .collect();
    if refused.is_empty() {
        frontier
    } else {
        refused
    }
}
