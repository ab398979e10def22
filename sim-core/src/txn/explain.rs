//! Why each edge of a cycle exists, in words, and the anomaly a cycle is.
//!
//! The graph keeps only edge kinds, not reasons (a million transactions have tens of millions
//! of edges); the reason for the few edges of a reported cycle is found again here from the two
//! transactions' operations and the version orders.

use super::cycles::Cycle;
use super::history::{MopKind, TxnHistory, NIL_READ};
use super::versions::{fmt_list, Versions};
use super::{Anomaly, AnomalyKind, CycleEdge, EdgeKind, TxnModel, TxnRef};

/// Names a cycle by its edges: no rw edge and only ww is G0, no rw G1c, one rw G-single,
/// several never adjacent (cyclically) G-nonadjacent, else G2; `realtime` when it needs
/// process or real-time order.
pub(crate) fn classify(kinds: &[EdgeKind]) -> (AnomalyKind, bool) {
    let realtime = kinds
        .iter()
        .any(|k| matches!(k, EdgeKind::Process | EdgeKind::Realtime));
    let rws = kinds.iter().filter(|k| **k == EdgeKind::Rw).count();
    let adjacent = (0..kinds.len())
        .any(|i| kinds[i] == EdgeKind::Rw && kinds[(i + 1) % kinds.len()] == EdgeKind::Rw);
    let kind = match rws {
        0 if kinds
            .iter()
            .all(|k| matches!(k, EdgeKind::Ww | EdgeKind::Process | EdgeKind::Realtime)) =>
        {
            AnomalyKind::G0
        }
        0 => AnomalyKind::G1c,
        1 => AnomalyKind::GSingle,
        _ if !adjacent => AnomalyKind::GNonadjacent,
        _ => AnomalyKind::G2,
    };
    (kind, realtime)
}

/// The anomaly a cycle is, explained edge by edge.
pub(crate) fn cycle_anomaly(h: &TxnHistory, v: &Versions, cycle: &Cycle) -> Anomaly {
    let kinds: Vec<EdgeKind> = cycle.iter().map(|e| e.2).collect();
    let (kind, realtime) = classify(&kinds);
    let edges: Vec<CycleEdge> = cycle
        .iter()
        .map(|&(a, b, k)| explain_edge(h, v, a as usize, b as usize, k))
        .collect();
    let txns: Vec<usize> = edges.iter().map(|e| e.from).collect();
    let mut keys: Vec<String> = edges.iter().filter_map(|e| e.key.clone()).collect();
    keys.sort();
    keys.dedup();
    let path: Vec<String> = edges
        .iter()
        .map(|e| format!("T{} {}", e.from, e.kind.as_str()))
        .chain(std::iter::once(format!("T{}", edges[0].from)))
        .collect();
    let meaning = match kind {
        AnomalyKind::G0 => "a cycle of writes: the transactions overwrote each other",
        AnomalyKind::G1c => "circular information flow: each saw the effects of the next",
        AnomalyKind::GSingle => "one anti-dependency closes the cycle: a read missed a write it also depends on (read skew, lost update)",
        AnomalyKind::GNonadjacent => "anti-dependencies never adjacent (e.g. a long fork): snapshot isolation forbids it",
        _ => "anti-dependencies in a row (e.g. write skew): only serializability forbids it",
    };
    Anomaly {
        kind,
        realtime,
        txns,
        keys,
        explanation: format!(
            "{}{}: {}",
            path.join(" "),
            if realtime {
                " (needs real-time or process order)"
            } else {
                ""
            },
            meaning
        ),
        cycle: edges,
    }
}

fn fmt_secs(ns: u64) -> String {
    format!("{:.6}s", ns as f64 / 1e9)
}

/// The reason for one edge.
fn explain_edge(h: &TxnHistory, v: &Versions, a: usize, b: usize, kind: EdgeKind) -> CycleEdge {
    let (key, why) = match kind {
        EdgeKind::Process => (
            None,
            format!(
                "T{a} and T{b} ran on process {}, in that order",
                h.txns[a].process
            ),
        ),
        EdgeKind::Realtime => (
            None,
            format!(
                "T{a} completed at {} before T{b} was invoked at {}",
                h.txns[a].complete_ns.map_or_else(|| "?".into(), fmt_secs),
                fmt_secs(h.txns[b].invoke_ns)
            ),
        ),
        _ => match data_reason(h, v, a, b, kind) {
            Some((k, w)) => (Some(h.keys[k as usize].clone()), w),
            None => (None, format!("T{a} {} T{b}", kind.as_str())),
        },
    };
    CycleEdge {
        from: a,
        to: b,
        kind,
        key,
        why: format!("{why}: T{a} {} T{b}", kind.as_str()),
    }
}

/// The key and words for a ww, wr or rw edge, found from the two transactions' operations.
fn data_reason(
    h: &TxnHistory,
    v: &Versions,
    a: usize,
    b: usize,
    kind: EdgeKind,
) -> Option<(u32, String)> {
    let wrote = |t: usize, k: u32, x: i64| v.writer.get(&(k, x)) == Some(&(t as u32));
    let list = v.model == TxnModel::ListAppend;
    let verb = if list { "appended" } else { "wrote" };
    for m in h.mops_of(a) {
        let k = m.key;
        let name = &h.keys[k as usize];
        match (kind, m.kind) {
            (EdgeKind::Ww, MopKind::Append) if list => {
                let order = &v.order[k as usize];
                let p = v.pos.get(&(k, m.value)).map(|&p| p as usize);
                if let Some(&n) = p.and_then(|p| order.get(p + 1)) {
                    if wrote(b, k, n) {
                        return Some((k, format!("T{a} appended {} to key {name} and T{b} appended {n} right after it", m.value)));
                    }
                }
                if p == Some(order.len().wrapping_sub(1)) {
                    if let Some(&(n, _)) = v.unobserved[k as usize].iter().find(|u| u.1 == b as u32)
                    {
                        return Some((k, format!("T{a} appended {} to key {name}, the last element any read of it shows, and T{b}'s append of {n} committed but no read shows it, so it came later", m.value)));
                    }
                }
            }
            (EdgeKind::Wr, MopKind::Append | MopKind::Write) => {
                for r in h
                    .mops_of(b)
                    .iter()
                    .filter(|r| r.kind == MopKind::Read && r.key == k)
                {
                    let Some(read) = h.read_of(r) else { continue };
                    if r.read_len != NIL_READ && read.last() == Some(&m.value) {
                        let shown = if list {
                            fmt_list(read)
                        } else {
                            m.value.to_string()
                        };
                        return Some((
                            k,
                            format!(
                                "T{b} read key {name} = {shown}, which ends with T{a}'s {} of {}",
                                if list { "append" } else { "write" },
                                m.value
                            ),
                        ));
                    }
                }
            }
            (EdgeKind::Rw, MopKind::Read) => {
                let Some(read) = h.read_of(m) else { continue };
                if let Some(w) = rw_reason(h, v, m.key, read, m.read_len == NIL_READ, b) {
                    let shown = if list {
                        fmt_list(read)
                    } else {
                        read.first().map_or_else(|| "nil".into(), i64::to_string)
                    };
                    return Some((k, format!("T{a} read key {name} = {shown} and {w}")));
                }
            }
            (EdgeKind::Ww, MopKind::Write) if !list => {
                for w in h
                    .mops_of(b)
                    .iter()
                    .filter(|w| w.kind == MopKind::Write && w.key == k)
                {
                    if v.read_then_wrote.iter().any(|&(rk, ra, rb, rt)| {
                        rk == k && ra == Some(m.value) && rb == w.value && rt == b as u32
                    }) {
                        return Some((
                            k,
                            format!(
                                "T{a} {verb} {} to key {name}, and T{b} read it and then wrote {}",
                                m.value, w.value
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Why the reader of `read` on key `k` precedes `b`: `b` wrote the version after it.
fn rw_reason(
    h: &TxnHistory,
    v: &Versions,
    k: u32,
    read: &[i64],
    nil: bool,
    b: usize,
) -> Option<String> {
    let wrote = |x: i64| v.writer.get(&(k, x)) == Some(&(b as u32));
    if v.model == TxnModel::ListAppend {
        let order = &v.order[k as usize];
        if !order.starts_with(read) {
            return None;
        }
        return match order.get(read.len()) {
            Some(&n) if wrote(n) => Some(match read.last() {
                Some(l) => format!("T{b} appended {n} after {l}"),
                None => format!("T{b} appended {n}, the first element"),
            }),
            None => v.unobserved[k as usize]
                .iter()
                .find(|u| u.1 == b as u32)
                .map(|u| {
                    format!(
                        "T{b} appended {} later (committed, but no read shows it)",
                        u.0
                    )
                }),
            _ => None,
        };
    }
    let a = if nil { None } else { read.first().copied() };
    if a.is_none() {
        let w = h
            .mops_of(b)
            .iter()
            .find(|m| m.kind == MopKind::Write && m.key == k)?;
        return Some(format!("T{b} wrote {} over the initial nil", w.value));
    }
    v.read_then_wrote
        .iter()
        .find(|&&(rk, ra, _, rt)| rk == k && ra == a && rt == b as u32)
        .map(|&(_, _, rb, _)| format!("T{b} read that value and then wrote {rb} over it"))
}

/// A transaction as a report names it.
pub(crate) fn txn_ref(h: &TxnHistory, t: usize, model: TxnModel) -> TxnRef {
    let x = &h.txns[t];
    let ops: Vec<String> = h
        .mops_of(t)
        .iter()
        .map(|m| {
            let key = &h.keys[m.key as usize];
            match m.kind {
                MopKind::Append => format!("[append {key} {}]", m.value),
                MopKind::Write => format!("[w {key} {}]", m.value),
                MopKind::Read => match h.read_of(m) {
                    None => format!("[r {key} ?]"),
                    Some(_) if m.read_len == NIL_READ => format!("[r {key} nil]"),
                    // A register read holds one value; a list here (from a hand-written
                    // history, or an empty one built by `TxnHistory::push`) is shown as is.
                    Some([v]) if model == TxnModel::RwRegister => format!("[r {key} {v}]"),
                    Some(r) => format!("[r {key} {}]", fmt_list(r)),
                },
            }
        })
        .collect();
    TxnRef {
        index: t,
        process: x.process,
        status: x.status,
        event: x.invoke_event as usize + 1,
        invoke_ns: x.invoke_ns,
        complete_ns: x.complete_ns,
        ops: ops.join(" "),
    }
}
