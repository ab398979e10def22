//! Transactional checker benchmark: `cargo bench -p sim-core --bench txncheck`.
//!
//! A 1,000,000-transaction list-append history (10 clients, 1,000 keys in use at a time, each
//! retired after 32 appends as Jepsen's workload does, 4 micro-operations per transaction),
//! checked for strict serializability; then the same with stale reads injected. Prints
//! generation, file round trip, check time and peak resident memory (VmHWM).
//!
//! `DISTSIM_TXN_FILE=target/txn-1m.jsonl cargo bench -p sim-core --bench txncheck -- valid` also
//! writes the valid history there, for timing `distsim check` on it end to end.

use std::time::Instant;

use sim_core::history::History;
use sim_core::txn::{
    check, generate_txn_history, parse_txn_history, read_txn_jsonl, Consistency, TxnCheckOptions,
    TxnGenOptions, TxnModel,
};

/// A line of /proc/self/status in MiB (VmHWM: peak, VmRSS: now).
fn status_mib(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let l = s.lines().find(|l| l.starts_with(field))?.to_owned();
    Some(l.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

fn peak_rss_mib() -> String {
    status_mib("VmHWM:").map_or_else(|| "n/a".into(), |m| format!("{m:.0} MiB"))
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    for (name, stale, parse) in [
        ("1M txns list-append, valid", 0.0, true),
        ("1M txns list-append, 0.1% stale reads", 0.001, false),
    ] {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let t = Instant::now();
        let h = generate_txn_history(&TxnGenOptions {
            seed: 1,
            txns: 1_000_000,
            clients: 10,
            keys: 1_000,
            mops_per_txn: 4,
            max_appends_per_key: 32,
            read_fraction: 0.5,
            stale_read_fraction: stale,
            ..Default::default()
        });
        let gen = t.elapsed();
        if parse {
            // Through a JSON Lines file and back, as `distsim check` reads it: a line at a
            // time into the flat arrays (and, for comparison, the whole file as JSON values).
            let text = h.to_history(false).to_jsonl();
            if let Ok(path) = std::env::var("DISTSIM_TXN_FILE") {
                std::fs::write(&path, &text).expect("write the history file");
                println!("{name}: written to {path}");
            }
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let t = Instant::now();
            let back = read_txn_jsonl(std::io::Cursor::new(text.as_bytes())).expect("txn history");
            println!(
                "{name}: read JSONL ({:.0} MiB) a line at a time {:.2} s, peak RSS {} (with the file text held)",
                text.len() as f64 / 1048576.0,
                t.elapsed().as_secs_f64(),
                peak_rss_mib()
            );
            assert_eq!(
                (back.txns.len(), back.mops.len()),
                (h.txns.len(), h.mops.len())
            );
            drop(back);
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let t = Instant::now();
            let plain = History::from_jsonl(&text).expect("jsonl");
            let back = parse_txn_history(&plain).expect("txn history");
            drop(plain);
            println!(
                "{name}: read JSONL as JSON values first {:.2} s, peak RSS {}",
                t.elapsed().as_secs_f64(),
                peak_rss_mib()
            );
            assert_eq!(back.txns.len(), h.txns.len());
        }
        // The peak from here on covers the check alone (Linux >= 4.0).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status_mib("VmRSS:").unwrap_or(0.0);
        let t = Instant::now();
        let r = check(
            &h,
            &TxnCheckOptions {
                model: TxnModel::ListAppend,
                consistency: Consistency::StrictSerializable,
                ..Default::default()
            },
        );
        let took = t.elapsed();
        assert_eq!(r.valid, stale == 0.0, "{}", r.render_text());
        println!(
            "{name}: generate {:.2} s | check strict-serializable {:.2} s -> {} | {} edges, {} cyclic components, {} anomalies | RSS before the check {:.0} MiB (the history and freed generator memory), peak during it {} (+{:.0} MiB for the check)",
            gen.as_secs_f64(),
            took.as_secs_f64(),
            if r.valid { "valid" } else { "NOT valid" },
            r.edge_count,
            r.cyclic_components,
            r.anomalies.len(),
            before,
            peak_rss_mib(),
            status_mib("VmHWM:").unwrap_or(0.0) - before
        );
    }
}
