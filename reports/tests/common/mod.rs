//! Helpers shared by the report tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sim_core::{RunOptions, RunResult, Scenario};

/// The repository's root (reports/ is one level down).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh, empty folder for one test's output.
pub fn fresh_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("distsim-reports-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// Every scenario file under scenarios/, sorted.
pub fn scenarios() -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(d).expect("scenarios dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("toml" | "json")
            ) {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&root().join("scenarios"), &mut v);
    v.sort();
    v
}

/// Runs a scenario at its own seed with the trace kept, as `distsim run --report` does.
pub fn run(path: &Path) -> RunResult {
    let sc = Scenario::load(&path.to_string_lossy()).expect("scenario loads");
    let opts = RunOptions {
        keep_trace: true,
        ..Default::default()
    };
    algorithms::run(&sc, sc.seed, &opts).expect("scenario runs")
}
