//! The dependency graph of transactions, in compressed adjacency form: each node's edges are a
//! slice of one target array, and each edge carries a bitmask of its kinds (a pair of
//! transactions can be related in several ways at once).

use super::history::{MopKind, TxnHistory, TxnStatus};
use super::versions::Versions;
use super::{EdgeKind, TxnModel};

/// Bit of an edge kind in [`Graph::kinds`].
pub(crate) const fn bit(k: EdgeKind) -> u8 {
    match k {
        EdgeKind::Ww => 1,
        EdgeKind::Wr => 2,
        EdgeKind::Rw => 4,
        EdgeKind::Process => 8,
        EdgeKind::Realtime => 16,
    }
}

/// Write-write, write-read and read-write.
pub(crate) const DATA: u8 = 1 | 2 | 4;
/// Process and real-time order.
pub(crate) const ORDER: u8 = 8 | 16;

/// The graph: node `i` is transaction `i`; its edges are `targets[offsets[i]..offsets[i+1]]`.
pub(crate) struct Graph {
    pub offsets: Vec<u32>,
    pub targets: Vec<u32>,
    pub kinds: Vec<u8>,
}

impl Graph {
    /// Number of distinct (source, target) pairs.
    pub fn edge_count(&self) -> usize {
        self.targets.len()
    }

    /// The edges of node `n`: (target, kinds).
    pub fn edges(&self, n: u32) -> impl Iterator<Item = (u32, u8)> + '_ {
        let (a, b) = (
            self.offsets[n as usize] as usize,
            self.offsets[n as usize + 1] as usize,
        );
        self.targets[a..b]
            .iter()
            .copied()
            .zip(self.kinds[a..b].iter().copied())
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// Edges as they are found, before they are grouped by source.
struct EdgeList(Vec<(u32, u32, u8)>);

impl EdgeList {
    fn add(&mut self, from: u32, to: u32, kind: EdgeKind) {
        if from != to {
            self.0.push((from, to, bit(kind)));
        }
    }
}

/// Builds the graph: data edges always, process and real-time edges when `order` is set.
pub(crate) fn build(h: &TxnHistory, v: &Versions, order: bool) -> Graph {
    let mut e = EdgeList(Vec::with_capacity(h.mops.len() * 2));
    match v.model {
        TxnModel::ListAppend => list_edges(h, v, &mut e),
        TxnModel::RwRegister => register_edges(v, &mut e),
    }
    if order {
        process_edges(h, &mut e);
        realtime_edges(h, &mut e);
    }
    compress(h.txns.len(), e.0)
}

/// list-append: ww between consecutive versions (and from the last read version to every
/// committed append no read shows), wr from the writer of a read's last element, rw from a
/// reader to the writer of the version after what it read.
fn list_edges(h: &TxnHistory, v: &Versions, e: &mut EdgeList) {
    for (k, order) in v.order.iter().enumerate() {
        let w = |x: i64| v.writer.get(&(k as u32, x)).copied();
        for pair in order.windows(2) {
            if let (Some(a), Some(b)) = (w(pair[0]), w(pair[1])) {
                e.add(a, b, EdgeKind::Ww);
            }
        }
        if let Some(last) = order.last().and_then(|&x| w(x)) {
            for &(_, u) in &v.unobserved[k] {
                e.add(last, u, EdgeKind::Ww);
            }
        }
    }
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status != TxnStatus::Ok {
            continue;
        }
        let t = t as u32;
        for m in h
            .mops_of(t as usize)
            .iter()
            .filter(|m| m.kind == MopKind::Read)
        {
            let Some(read) = h.read_of(m) else { continue };
            let k = m.key as usize;
            if let Some(&last) = read.last() {
                if let Some(&w) = v.writer.get(&(m.key, last)) {
                    e.add(w, t, EdgeKind::Wr);
                }
            }
            let order = &v.order[k];
            // Only reads consistent with the order say what came next.
            if !order.starts_with(read) {
                continue;
            }
            match order.get(read.len()) {
                Some(&next) => {
                    if let Some(&w) = v.writer.get(&(m.key, next)) {
                        e.add(t, w, EdgeKind::Rw);
                    }
                }
                None => {
                    for &(_, u) in &v.unobserved[k] {
                        e.add(t, u, EdgeKind::Rw);
                    }
                }
            }
        }
    }
}

/// rw-register: wr from a value's writer to its readers; for each known pair a < b (a read of
/// `a` then a write of `b` in one transaction, or `nil` before every write), ww from a's writer
/// to b's writer and rw from a's other readers to b's writer.
fn register_edges(v: &Versions, e: &mut EdgeList) {
    for (k, writes) in v.writes.iter().enumerate() {
        let k = k as u32;
        for &(x, w) in writes {
            if v.writer.get(&(k, x)) != Some(&w) {
                continue;
            }
            for &r in v.readers.get(&(k, Some(x))).into_iter().flatten() {
                e.add(w, r, EdgeKind::Wr);
            }
            // nil precedes every write.
            for &r in v.readers.get(&(k, None)).into_iter().flatten() {
                e.add(r, w, EdgeKind::Rw);
            }
        }
    }
    for &(k, a, _, t) in &v.read_then_wrote {
        if let Some(a) = a {
            if let Some(&w) = v.writer.get(&(k, a)) {
                e.add(w, t, EdgeKind::Ww);
            }
        }
        for &r in v.readers.get(&(k, a)).into_iter().flatten() {
            e.add(r, t, EdgeKind::Rw);
        }
    }
}

/// Process order: each committed transaction to the process's next transaction.
fn process_edges(h: &TxnHistory, e: &mut EdgeList) {
    let mut last: std::collections::BTreeMap<u64, u32> = std::collections::BTreeMap::new();
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status == TxnStatus::Fail {
            continue;
        }
        if let Some(&p) = last.get(&txn.process) {
            if h.txns[p as usize].status == TxnStatus::Ok {
                e.add(p, t as u32, EdgeKind::Process);
            }
        }
        last.insert(txn.process, t as u32);
    }
}

/// Real-time order, transitively reduced: when a transaction is invoked it gets an edge from
/// each transaction in the frontier (completed, and not yet followed by another completed
/// transaction that was invoked after it completed); a completion removes from the frontier
/// what preceded it.
fn realtime_edges(h: &TxnHistory, e: &mut EdgeList) {
    // (time, 0 = invoke / 1 = completion, txn): at equal times invocations come first, so
    // transactions that touch in time count as concurrent.
    let mut events: Vec<(u64, u8, u32)> = Vec::with_capacity(2 * h.txns.len());
    for (t, txn) in h.txns.iter().enumerate() {
        if txn.status == TxnStatus::Fail {
            continue;
        }
        events.push((txn.invoke_ns, 0, t as u32));
        if let (TxnStatus::Ok, Some(c)) = (txn.status, txn.complete_ns) {
            events.push((c, 1, t as u32));
        }
    }
    events.sort_unstable();
    let mut frontier: Vec<u32> = Vec::new();
    // What was in the frontier when each transaction was invoked.
    let mut preds: Vec<Vec<u32>> = vec![Vec::new(); h.txns.len()];
    for (_, what, t) in events {
        if what == 0 {
            for &p in &frontier {
                e.add(p, t, EdgeKind::Realtime);
            }
            preds[t as usize] = frontier.clone();
        } else {
            let before = std::mem::take(&mut preds[t as usize]);
            frontier.retain(|f| !before.contains(f));
            frontier.push(t);
        }
    }
}

/// Groups edges by source (a counting sort) and merges parallel edges into one with the union
/// of their kinds, targets ascending.
fn compress(n: usize, edges: Vec<(u32, u32, u8)>) -> Graph {
    let mut offsets = vec![0u32; n + 1];
    for &(a, _, _) in &edges {
        offsets[a as usize + 1] += 1;
    }
    for i in 0..n {
        offsets[i + 1] += offsets[i];
    }
    let mut fill = offsets.clone();
    let mut slots: Vec<(u32, u8)> = vec![(0, 0); edges.len()];
    for (a, b, k) in edges {
        slots[fill[a as usize] as usize] = (b, k);
        fill[a as usize] += 1;
    }
    let mut g = Graph {
        offsets: vec![0; n + 1],
        targets: Vec::with_capacity(slots.len()),
        kinds: Vec::with_capacity(slots.len()),
    };
    for i in 0..n {
        let s = &mut slots[offsets[i] as usize..offsets[i + 1] as usize];
        s.sort_unstable();
        for &(b, k) in s.iter() {
            if g.targets.len() > g.offsets[i] as usize && g.targets.last() == Some(&b) {
                *g.kinds.last_mut().expect("a target has a kind") |= k;
            } else {
                g.targets.push(b);
                g.kinds.push(k);
            }
        }
        g.offsets[i + 1] = g.targets.len() as u32;
    }
    g
}
