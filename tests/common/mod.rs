//! What the end-to-end tests of the `distsim` command share: running the built binary from the
//! repository's root, and reading what it printed.

// Each test file uses some of these, not all.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the built `distsim` with `args`, from the repository's root (where scenario paths
/// such as `scenarios/raft/calm.toml` resolve).
pub fn distsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_distsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("distsim runs")
}

/// What the command printed on standard output.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What the command printed on standard error.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Standard output read as one JSON value; otherwise a panic that shows both outputs.
pub fn json(o: &Output) -> serde_json::Value {
    let out = stdout(o);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {}", stderr(o)))
}

/// A path for a test's output folder, `distsim-{what}-{pid}-{name}` in the temporary
/// directory, with anything an earlier run left there removed.
pub fn out_dir(what: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("distsim-{what}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}
