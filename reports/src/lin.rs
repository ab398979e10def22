//! The linearizability checker's explanation as a table a student can read: per failing key,
//! the end of the longest linearization found (each operation with the state after it), and
//! the operations none of which can take effect next. Read from sim-core's `CheckReport`
//! JSON (data, not the checker's prose), with this page's names: operations `#N` (the N-th
//! invocation), nodes `n7 (client 2)`.

use std::fmt::Write as _;

use serde_json::Value;
use sim_core::History;

use crate::data::op_index_of_events;
use crate::esc;
use crate::plots::{fmt_s, node_name};

/// Appends the explanation of every failing part of `report` to `h` (nothing when no part
/// failed or the report has another shape).
pub fn explain_html(
    h: &mut String,
    report: &Value,
    history: &History,
    servers: usize,
    clients: usize,
) {
    let Some(parts) = report.get("parts").and_then(|p| p.as_array()) else {
        return;
    };
    let op_of_event = op_index_of_events(history);
    let name_op = |o: &Value| -> Vec<String> {
        let event = o.get("event").and_then(|e| e.as_u64()).unwrap_or(0) as usize;
        let op = event
            .checked_sub(1)
            .and_then(|e| op_of_event.get(e).copied().flatten())
            .map(|i| format!("#{i}"))
            .unwrap_or_else(|| "?".into());
        let process = o.get("process").and_then(|p| p.as_u64()).unwrap_or(0);
        let node = servers + (process % clients.max(1) as u64) as usize;
        let t = |k: &str| {
            o.get(k)
                .and_then(|x| x.as_u64())
                .map(fmt_s)
                .unwrap_or_default()
        };
        vec![
            op,
            node_name(node, servers),
            o.get("description")
                .and_then(|d| d.as_str())
                .unwrap_or("")
                .to_string(),
            t("invoke_ns"),
            t("complete_ns"),
        ]
    };
    for part in parts {
        let Some(f) = part.get("failure") else {
            continue;
        };
        let key = part
            .get("key")
            .and_then(|k| k.as_str())
            .map(|k| format!("key {k}"))
            .unwrap_or_else(|| "the object".into());
        let lin = f
            .get("linearized")
            .and_then(|l| l.as_array())
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        let count = part.get("ops_count").and_then(|c| c.as_u64()).unwrap_or(0);
        let _ = write!(
            h,
            "<h3>Why {} is not linearizable</h3><p>The checker found an order for {} of its {} operations that respects real time and the model; the last of them:</p>",
            esc(&key),
            lin.len(),
            count
        );
        h.push_str("<table class=list><tr><th>op</th><th>node</th><th>operation</th><th>invoked</th><th>returned</th><th>state after</th></tr>");
        for l in lin.iter().rev().take(8).rev() {
            let cells = l.get("op").map(name_op).unwrap_or_default();
            let state = l.get("state_after").and_then(|s| s.as_str()).unwrap_or("");
            h.push_str("<tr>");
            for c in cells.iter().chain(std::iter::once(&state.to_string())) {
                let _ = write!(h, "<td>{}</td>", esc(c));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
        let final_state = f.get("final_state").and_then(|s| s.as_str()).unwrap_or("");
        let _ = write!(
            h,
            "<p>From state <code>{}</code>, none of these can take effect next (outlined in red in the plots):</p><table class=list><tr><th>op</th><th>node</th><th>operation</th><th>invoked</th><th>returned</th></tr>",
            esc(final_state)
        );
        let stuck = f
            .get("cannot_place")
            .and_then(|c| c.as_array())
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        for o in stuck.iter().take(20) {
            h.push_str("<tr>");
            for c in name_op(o) {
                let _ = write!(h, "<td>{}</td>", esc(&c));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
}
