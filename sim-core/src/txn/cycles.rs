//! Cycle search: Tarjan's strongly connected components over the whole graph, then, inside
//! each component with more than one transaction, a shortest cycle of the most severe class
//! it holds, tried in order: G0 (write-write only), G1c (write-write and write-read),
//! G-single (exactly one read-write edge), G-nonadjacent (read-write edges, never two in a
//! row), G2 (any). Cycles that need process or real-time order are searched only when no
//! cycle of data edges alone exists in the component.

use std::collections::VecDeque;

use super::graph::{bit, Graph, DATA, ORDER};
use super::EdgeKind;

const NONE: u32 = u32::MAX;

/// A cycle: `(from, to, kind)` edges, each `to` the next `from`, the last returning to the
/// first `from`.
pub(crate) type Cycle = Vec<(u32, u32, EdgeKind)>;

/// What [`find`] returns.
pub(crate) struct Found {
    /// Components with more than one transaction.
    pub components: usize,
    /// One cycle per such component, components ordered by their smallest transaction.
    pub cycles: Vec<Cycle>,
}

/// Finds the cyclic components and one cycle in each.
pub(crate) fn find(g: &Graph, max_searches: usize) -> Found {
    let all: Vec<u32> = (0..g.len() as u32).collect();
    let mut comps = tarjan(g, &all, DATA | ORDER);
    for c in &mut comps {
        c.sort_unstable();
    }
    comps.sort_unstable_by_key(|c| c[0]);
    let mut local_id = vec![NONE; g.len()];
    let mut cycles = Vec::with_capacity(comps.len());
    for c in &comps {
        // Searches run on the component alone, renumbered, so their cost follows its size.
        let local = subgraph(g, c, &mut local_id);
        let inside: Vec<u32> = (0..c.len() as u32).collect();
        let all_in = vec![true; c.len()];
        let cycle = classify(&local, &inside, &all_in, max_searches);
        debug_assert!(
            !cycle.is_empty(),
            "a component of two or more nodes has a cycle"
        );
        cycles.push(
            cycle
                .into_iter()
                .map(|(a, b, k)| (c[a as usize], c[b as usize], k))
                .collect(),
        );
    }
    Found {
        components: comps.len(),
        cycles,
    }
}

/// The subgraph induced by `comp` (sorted), its nodes renumbered by position in `comp`.
/// `local_id` is scratch space, all `NONE` before and after.
fn subgraph(g: &Graph, comp: &[u32], local_id: &mut [u32]) -> Graph {
    for (i, &n) in comp.iter().enumerate() {
        local_id[n as usize] = i as u32;
    }
    let mut sub = Graph {
        offsets: vec![0],
        targets: Vec::new(),
        kinds: Vec::new(),
    };
    for &n in comp {
        for (t, k) in g.edges(n) {
            let l = local_id[t as usize];
            if l != NONE {
                sub.targets.push(l);
                sub.kinds.push(k);
            }
        }
        sub.offsets.push(sub.targets.len() as u32);
    }
    for &n in comp {
        local_id[n as usize] = NONE;
    }
    sub
}

/// The most severe cycle class in component `comp` (whose nodes are marked in `member`).
fn classify(g: &Graph, comp: &[u32], member: &[bool], max_searches: usize) -> Cycle {
    let ww = bit(EdgeKind::Ww);
    let wr = bit(EdgeKind::Wr);
    for extra in [0, ORDER] {
        // A component held together only by real-time edges has no cycle of data edges:
        // one pass over it says so before any per-edge search is tried.
        if extra == 0 && tarjan_in(g, comp, member, DATA).is_empty() {
            continue;
        }
        if let Some(c) = cycle_in(g, comp, member, ww | extra) {
            return c;
        }
        if let Some(c) = cycle_in(g, comp, member, ww | wr | extra) {
            return c;
        }
        if let Some(c) = single_rw(g, comp, member, ww | wr | extra, max_searches) {
            return c;
        }
        if let Some(c) = nonadjacent(g, comp, member, ww | wr | extra, max_searches) {
            return c;
        }
        if let Some(c) = cycle_in(g, comp, member, DATA | extra) {
            return c;
        }
    }
    Vec::new()
}

/// The kind to name for an edge with kinds `k`, restricted to `mask`: data kinds first, then
/// process order (easier to read), then real time.
fn pick(k: u8, mask: u8) -> EdgeKind {
    let k = k & mask;
    [
        EdgeKind::Ww,
        EdgeKind::Wr,
        EdgeKind::Rw,
        EdgeKind::Process,
        EdgeKind::Realtime,
    ]
    .into_iter()
    .find(|&e| k & bit(e) != 0)
    .expect("an edge allowed by the mask has a kind in it")
}

/// A shortest cycle using only `mask` edges among component members, if any: the components
/// of that subgraph, then a breadth-first search from the smallest node of the first cyclic
/// one back to itself.
fn cycle_in(g: &Graph, comp: &[u32], member: &[bool], mask: u8) -> Option<Cycle> {
    let sub = tarjan_in(g, comp, member, mask);
    let c = sub.into_iter().min_by_key(|c| c.iter().min().copied())?;
    let start = *c.iter().min()?;
    let mut inner = member.to_vec();
    inner.iter_mut().for_each(|x| *x = false);
    for &n in &c {
        inner[n as usize] = true;
    }
    bfs(g, &inner, start, start, mask)
}

/// The rw edges of the component, most backward first (target invoked longest before the
/// source): a read that missed an earlier write is what closes most cycles, while forward
/// anti-dependencies rarely do, so the first tries usually succeed.
fn rw_edges(g: &Graph, comp: &[u32], member: &[bool]) -> Vec<(u32, u32)> {
    let rw = bit(EdgeKind::Rw);
    let mut edges: Vec<(u32, u32)> = comp
        .iter()
        .flat_map(|&a| {
            g.edges(a)
                .filter(move |&(b, k)| k & rw != 0 && member[b as usize])
                .map(move |(b, _)| (a, b))
        })
        .collect();
    edges.sort_by_key(|&(a, b)| (i64::from(b) - i64::from(a), a, b));
    edges
}

/// A cycle with exactly one read-write edge: for rw edges a -> b in the component, a shortest
/// path from b back to a over `other` edges.
fn single_rw(g: &Graph, comp: &[u32], member: &[bool], other: u8, max: usize) -> Option<Cycle> {
    for (a, b) in rw_edges(g, comp, member).into_iter().take(max) {
        if let Some(mut path) = bfs(g, member, b, a, other) {
            path.insert(0, (a, b, EdgeKind::Rw));
            return Some(path);
        }
    }
    None
}

/// A cycle whose read-write edges are never adjacent: for rw edges a -> b, a shortest path
/// from b to a in which every rw edge follows a non-rw one and the first edge is not rw (a
/// search over (node, came by rw) pairs), closed by the rw edge.
fn nonadjacent(g: &Graph, comp: &[u32], member: &[bool], other: u8, max: usize) -> Option<Cycle> {
    for (a, b) in rw_edges(g, comp, member).into_iter().take(max) {
        if let Some(mut path) = bfs_alternating(g, member, b, a, other) {
            path.insert(0, (a, b, EdgeKind::Rw));
            return Some(path);
        }
    }
    None
}

/// A shortest path (as edges) from `from` to `to` over `mask` edges among `allowed` nodes;
/// when `from == to`, a shortest cycle through it.
fn bfs(g: &Graph, allowed: &[bool], from: u32, to: u32, mask: u8) -> Option<Cycle> {
    let mut parent: Vec<(u32, u8)> = vec![(NONE, 0); g.len()];
    let mut queue = VecDeque::from([from]);
    while let Some(n) = queue.pop_front() {
        for (m, k) in g.edges(n) {
            if k & mask == 0 || !allowed[m as usize] {
                continue;
            }
            if m == to {
                let mut path = vec![(n, m, pick(k, mask))];
                let mut cur = n;
                while cur != from {
                    let (p, pk) = parent[cur as usize];
                    path.push((p, cur, pick(pk, mask)));
                    cur = p;
                }
                path.reverse();
                return Some(path);
            }
            if m != from && parent[m as usize].0 == NONE {
                parent[m as usize] = (n, k);
                queue.push_back(m);
            }
        }
    }
    None
}

/// Like [`bfs`] from `from` to `to`, over states (node, arrived by rw): an rw edge may be
/// taken only from a state not arrived by rw, the search starts as if arrived by rw, and it
/// must end arrived by a non-rw edge (the rw edge closing the cycle comes next).
fn bfs_alternating(g: &Graph, allowed: &[bool], from: u32, to: u32, other: u8) -> Option<Cycle> {
    let rw = bit(EdgeKind::Rw);
    type State = (u32, bool);
    let mut parent: std::collections::HashMap<State, (State, EdgeKind)> =
        std::collections::HashMap::new();
    let start: State = (from, true);
    let mut queue = VecDeque::from([start]);
    while let Some(s @ (n, by_rw)) = queue.pop_front() {
        for (m, k) in g.edges(n) {
            if !allowed[m as usize] {
                continue;
            }
            let mut steps: Vec<(State, EdgeKind)> = Vec::new();
            if k & other != 0 {
                steps.push(((m, false), pick(k, other)));
            }
            if k & rw != 0 && !by_rw {
                steps.push(((m, true), EdgeKind::Rw));
            }
            for (next, kind) in steps {
                if next == start || parent.contains_key(&next) {
                    continue;
                }
                parent.insert(next, (s, kind));
                if next == (to, false) {
                    let mut path = Vec::new();
                    let mut cur = next;
                    while cur != start {
                        let (p, pk) = parent[&cur];
                        path.push((p.0, cur.0, pk));
                        cur = p;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(next);
            }
        }
    }
    None
}

/// Strongly connected components of more than one node among `nodes`, over `mask` edges.
fn tarjan(g: &Graph, nodes: &[u32], mask: u8) -> Vec<Vec<u32>> {
    let all = vec![true; g.len()];
    tarjan_in(g, nodes, &all, mask)
}

/// Tarjan's algorithm, iterative (components can hold a million transactions), restricted to
/// nodes marked in `allowed`, starting from each of `nodes`.
fn tarjan_in(g: &Graph, nodes: &[u32], allowed: &[bool], mask: u8) -> Vec<Vec<u32>> {
    let n = g.len();
    let mut index = vec![NONE; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut comps = Vec::new();
    let mut next_index = 0u32;
    // Call stack: (node, position in its edge list).
    let mut calls: Vec<(u32, u32)> = Vec::new();
    for &root in nodes {
        if index[root as usize] != NONE || !allowed[root as usize] {
            continue;
        }
        calls.push((root, g.offsets[root as usize]));
        index[root as usize] = next_index;
        low[root as usize] = next_index;
        next_index += 1;
        stack.push(root);
        on_stack[root as usize] = true;
        while let Some(&mut (v, ref mut pos)) = calls.last_mut() {
            let end = g.offsets[v as usize + 1];
            let mut descended = false;
            while *pos < end {
                let (w, k) = (g.targets[*pos as usize], g.kinds[*pos as usize]);
                *pos += 1;
                if k & mask == 0 || !allowed[w as usize] {
                    continue;
                }
                if index[w as usize] == NONE {
                    index[w as usize] = next_index;
                    low[w as usize] = next_index;
                    next_index += 1;
                    stack.push(w);
                    on_stack[w as usize] = true;
                    calls.push((w, g.offsets[w as usize]));
                    descended = true;
                    break;
                } else if on_stack[w as usize] {
                    low[v as usize] = low[v as usize].min(index[w as usize]);
                }
            }
            if descended {
                continue;
            }
            calls.pop();
            if let Some(&(parent, _)) = calls.last() {
                low[parent as usize] = low[parent as usize].min(low[v as usize]);
            }
            if low[v as usize] == index[v as usize] {
                let mut comp = Vec::new();
                loop {
                    let w = stack.pop().expect("the component's root is on the stack");
                    on_stack[w as usize] = false;
                    comp.push(w);
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comps.push(comp);
                }
            }
        }
    }
    comps
}
