//! The search for one part: Wing & Gong's depth-first search with Lowe's cache of visited
//! configurations, over a doubly linked list of call and return entries from which linearized
//! operations are lifted (and put back, in reverse order, when the search backtracks).
//!
//! Operations with an unknown outcome (`info`) get a return entry at +infinity: they stay
//! candidates from their invocation on, and need never be linearized (the search succeeds
//! once every `ok` operation is). Candidates are tried in invocation order, `info` ones
//! included, so an `info` operation is first tried where it was invoked, which is where an
//! operation that timed out usually took effect. (Trying `info` candidates only after every
//! `ok` one visited 14 times more configurations on a single-key benchmark.)

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
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
pub(crate) struct Budget<'a> {
    /// Stop with Unknown when the cache holds more than this many configurations.
    pub max_states: Option<u64>,
    /// Stop with Unknown at this instant.
    pub deadline: Option<Instant>,
    /// Stop with [`Outcome::Cancelled`] once this is set (another part already failed).
    pub cancel: Option<&'a AtomicBool>,
}

/// How one part's search ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists. `linearized` is the longest prefix found (indices into the part's ops) and
    /// `blocked` the `ok` operations that could not come next.
    NotLinearizable {
        linearized: Vec<u32>,
        blocked: Vec<u32>,
    },
    /// A budget ran out; the string says which.
    Unknown(String),
    /// Another part decided the history first and asked every search to stop.
    Cancelled,
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
pub struct FastHasher(u64);

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
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x517c_c1b7_2722_0a95);
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

/// Sentinel for "no entry" in the linked list.
const NIL: u32 = u32::MAX;
/// Head sentinel of the entry list.
const HEAD: u32 = 0;

/// The entry list, as link arrays (dancing links).
struct Lists {
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Which operation an entry belongs to.
    op: Vec<u32>,
    /// True for return entries.
    is_ret: Vec<bool>,
    /// Per operation: its call entry and its return entry.
    call_of: Vec<u32>,
    ret_of: Vec<u32>,
}

impl Lists {
    fn build<I, O>(ops: &[PartOp<I, O>]) -> Lists {
        // Entries: (position, is_ret, op). Positions are distinct event indices, so sorting
        // gives the real-time order; info returns all sit at +infinity, after every ok
        // return, in operation order.
        let mut entries: Vec<(u64, bool, u32)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in (0u32..).zip(ops) {
            entries.push((op.call, false, i));
            entries.push((op.ret.unwrap_or(u64::MAX), true, i));
        }
        entries.sort_unstable();
        let n = 1 + entries.len();
        let mut l = Lists {
            next: vec![NIL; n],
            prev: vec![NIL; n],
            op: vec![NIL; n],
            is_ret: vec![false; n],
            call_of: vec![NIL; ops.len()],
            ret_of: vec![NIL; ops.len()],
        };
        let mut last = HEAD;
        for (id, &(_, is_ret, op)) in (1u32..).zip(&entries) {
            l.op[id as usize] = op;
            l.is_ret[id as usize] = is_ret;
            if is_ret {
                l.ret_of[op as usize] = id;
            } else {
                l.call_of[op as usize] = id;
            }
            l.next[last as usize] = id;
            l.prev[id as usize] = last;
            last = id;
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
        self.unlink(self.ret_of[op as usize]);
    }

    /// Puts them back; must undo the most recent `lift` (dancing links are LIFO).
    fn unlift(&mut self, op: u32) {
        self.relink(self.ret_of[op as usize]);
        self.relink(self.call_of[op as usize]);
    }
}

/// The set of linearized operations, encoded compactly for the cache.
///
/// `ok` operations get bits in invocation order and `info` operations bits of their own after
/// them. The search linearizes `ok` operations roughly in invocation order, so their bits form
/// a full prefix, a short ragged window and zeros; only the window (and the few `info` bits)
/// go into a cache key, which keeps keys to a few words even for parts of many thousands of
/// operations, where a plain bitset would cost a kilobyte per visited configuration.
struct Linearized {
    /// Bit index of each operation of the part.
    bit_of: Vec<u32>,
    /// Number of `ok` operations: bits below this are `ok` bits.
    ok_count: u32,
    ok: Vec<u64>,
    info: Vec<u64>,
    /// First `ok` word that is not all ones.
    prefix: usize,
    /// One past the highest `ok` word with a bit set (0 when none).
    hi: usize,
}

impl Linearized {
    fn new<I, O>(ops: &[PartOp<I, O>]) -> Linearized {
        let ok_count = ops.iter().filter(|o| o.ret.is_some()).count();
        // Ops arrive in invocation order within a part, so counting assigns bits in
        // invocation order too.
        let (mut next_ok, mut next_info) = (0u32, ok_count as u32);
        let bit_of = ops
            .iter()
            .map(|o| {
                let slot = if o.ret.is_some() {
                    &mut next_ok
                } else {
                    &mut next_info
                };
                *slot += 1;
                *slot - 1
            })
            .collect();
        Linearized {
            bit_of,
            ok_count: ok_count as u32,
            ok: vec![0; ok_count.div_ceil(64)],
            info: vec![0; (ops.len() - ok_count).div_ceil(64)],
            prefix: 0,
            hi: 0,
        }
    }

    /// Sets an operation's bit; returns the previous `hi` for [`Linearized::clear`].
    fn set(&mut self, op: u32) -> usize {
        let old_hi = self.hi;
        let bit = self.bit_of[op as usize];
        if bit < self.ok_count {
            let w = bit as usize / 64;
            self.ok[w] |= 1 << (bit % 64);
            self.hi = self.hi.max(w + 1);
            while self.prefix < self.ok.len() && self.ok[self.prefix] == u64::MAX {
                self.prefix += 1;
            }
        } else {
            let b = bit - self.ok_count;
            self.info[b as usize / 64] |= 1 << (b % 64);
        }
        old_hi
    }

    /// Clears an operation's bit, undoing the most recent [`Linearized::set`].
    fn clear(&mut self, op: u32, old_hi: usize) {
        let bit = self.bit_of[op as usize];
        if bit < self.ok_count {
            let w = bit as usize / 64;
            self.ok[w] &= !(1 << (bit % 64));
            self.prefix = self.prefix.min(w);
        } else {
            let b = bit - self.ok_count;
            self.info[b as usize / 64] &= !(1 << (b % 64));
        }
        self.hi = old_hi;
    }

    /// A canonical encoding: where the window starts, the window, then the `info` bits (their
    /// count is fixed per part, so the window's length is implied).
    fn key(&self) -> Box<[u64]> {
        let start = self.prefix.min(self.hi);
        let mut k = Vec::with_capacity(1 + self.hi - start + self.info.len());
        k.push(start as u64);
        k.extend_from_slice(&self.ok[start..self.hi]);
        k.extend_from_slice(&self.info);
        k.into_boxed_slice()
    }
}

/// What the search remembers to undo one step.
struct Frame<S> {
    /// The call entry that was linearized.
    entry: u32,
    /// The state before it.
    state: S,
    /// [`Linearized::hi`] before it.
    hi: usize,
}

/// How often (in loop iterations) the wall clock is read.
const CLOCK_EVERY: u64 = 1024;

/// Searches for a linearization of `ops` (in invocation order) from `model.init()`.
pub(crate) fn search<M: Model + ?Sized>(
    model: &M,
    ops: &[PartOp<M::Input, M::Output>],
    budget: Budget<'_>,
) -> SearchResult {
    assert!(ops.len() < (u32::MAX / 2 - 2) as usize, "part too large");
    // Pruning by the model's state is sound only when no operation of the part can move the
    // state backwards (see `Model::grows_only`).
    let resets: Vec<Option<M::State>> = ops.iter().map(|o| model.resets_to(&o.input)).collect();
    let prune = ops
        .iter()
        .zip(&resets)
        .all(|(o, r)| model.grows_only(&o.input) || r.is_some());
    let mut lists = Lists::build(ops);
    let mut bits = Linearized::new(ops);
    let mut cache: Cache<M::State> = Cache::default();
    let mut state = model.init();
    let mut stack: Vec<Frame<M::State>> = Vec::new();
    let mut ok_left = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut best: Option<(Vec<u32>, Vec<u32>)> = None;
    let mut cursor = lists.next[HEAD as usize];
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
            if budget.cancel.is_some_and(|c| c.load(Ordering::Relaxed)) {
                return SearchResult {
                    outcome: Outcome::Cancelled,
                    visited: cache.len() as u64,
                };
            }
            if let Some(deadline) = budget.deadline {
                if Instant::now() >= deadline {
                    return SearchResult {
                        outcome: Outcome::Unknown("the time budget ran out".to_owned()),
                        visited: cache.len() as u64,
                    };
                }
            }
        }

        // The calls before the first return entry are exactly the operations that real time
        // allows next. ok_left > 0, so an ok return entry comes before the end of the list.
        debug_assert!(cursor != NIL);
        if !lists.is_ret[cursor as usize] {
            let candidate = cursor;
            let op_i = lists.op[candidate as usize];
            let op = &ops[op_i as usize];
            let next = model.step(&state, &op.input, op.output.as_ref());
            if let Some(next_state) =
                next.filter(|s| !prune || refuter(model, ops, &resets, &lists, op_i, s).is_none())
            {
                let old_hi = bits.set(op_i);
                if cache.insert((bits.key(), next_state.clone())) {
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
                        hi: old_hi,
                    });
                    lists.lift(op_i);
                    if op.ret.is_some() {
                        ok_left -= 1;
                    }
                    cursor = lists.next[HEAD as usize];
                    continue;
                }
                bits.clear(op_i, old_hi);
            }
            cursor = lists.next[candidate as usize];
            continue;
        }

        // Dead end: nothing can come next from this configuration.
        if best.as_ref().is_none_or(|(lin, _)| stack.len() > lin.len()) {
            let linearized: Vec<u32> = stack.iter().map(|f| lists.op[f.entry as usize]).collect();
            let pruning = prune.then_some(&resets[..]);
            best = Some((linearized, blocked_ops(model, ops, &lists, &state, pruning)));
        }
        let Some(frame) = stack.pop() else {
            let (linearized, blocked) = best.unwrap_or_default();
            return SearchResult {
                outcome: Outcome::NotLinearizable {
                    linearized,
                    blocked,
                },
                visited: cache.len() as u64,
            };
        };
        let op_i = lists.op[frame.entry as usize];
        lists.unlift(op_i);
        bits.clear(op_i, frame.hi);
        if ops[op_i as usize].ret.is_some() {
            ok_left += 1;
        }
        state = frame.state;
        cursor = lists.next[frame.entry as usize];
    }
}

/// How many return entries of operations not yet linearized, in real-time order, [`refuter`]
/// looks at.
const PRUNE_LOOKAHEAD: usize = 64;

/// Some `ok` operation not yet linearized, other than `placed`, that can never become legal
/// from `state`, if there is one. Every such operation G must still be linearized, after this point;
/// between here and G the state only grows, except where an operation that resets it (a put)
/// is placed first, and real time lets only resets invoked before G returned come before G.
/// So G is hopeless when neither `state` nor any of those resets can grow into what G saw.
///
/// The entry list holds exactly the operations not yet linearized, in real-time order, so
/// one walk sees the resets invoked before each return entry; the nearest returns (the most
/// likely to refute) are looked at first. Cutting such a configuration before it enters the
/// cache keeps concurrent appends from being tried in every order that a later read rules out.
fn refuter<M: Model + ?Sized>(
    model: &M,
    ops: &[PartOp<M::Input, M::Output>],
    resets: &[Option<M::State>],
    lists: &Lists,
    placed: u32,
    state: &M::State,
) -> Option<u32> {
    let mut open_resets: Vec<&M::State> = Vec::new();
    let mut e = lists.next[HEAD as usize];
    let mut looked = 0;
    while e != NIL && looked < PRUNE_LOOKAHEAD {
        let (i, is_ret) = (lists.op[e as usize], lists.is_ret[e as usize]);
        e = lists.next[e as usize];
        if i == placed {
            continue;
        }
        if !is_ret {
            if let Some(r) = &resets[i as usize] {
                open_resets.push(r);
            }
            continue;
        }
        let Some(out) = ops[i as usize].output.as_ref() else {
            continue;
        };
        looked += 1;
        let input = &ops[i as usize].input;
        if model.never_legal_from(state, input, out)
            && open_resets
                .iter()
                .all(|r| model.never_legal_from(r, input, out))
        {
            return Some(i);
        }
    }
    None
}

/// The ok operations that real time allows next but the model refuses from `state`, and, when
/// pruning (`resets` given), the operations that made the search cut the ones it accepted
/// (e.g. a get whose result no longer fits); if there are none, every ok candidate.
fn blocked_ops<M: Model + ?Sized>(
    model: &M,
    ops: &[PartOp<M::Input, M::Output>],
    lists: &Lists,
    state: &M::State,
    resets: Option<&[Option<M::State>]>,
) -> Vec<u32> {
    let mut frontier = Vec::new();
    let mut e = lists.next[HEAD as usize];
    while e != NIL && !lists.is_ret[e as usize] {
        let op = lists.op[e as usize];
        if ops[op as usize].ret.is_some() {
            frontier.push(op);
        }
        e = lists.next[e as usize];
    }
    let mut blocked: Vec<u32> = Vec::new();
    for &i in &frontier {
        let op = &ops[i as usize];
        match model.step(state, &op.input, op.output.as_ref()) {
            None => blocked.push(i),
            Some(next) => {
                if let Some(r) = resets.and_then(|r| refuter(model, ops, r, lists, i, &next)) {
                    blocked.push(r);
                }
            }
        }
    }
    blocked.sort_unstable();
    blocked.dedup();
    if blocked.is_empty() {
        frontier
    } else {
        blocked
    }
}
