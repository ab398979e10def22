//! Records the git revision, so that reproduce commands name the build that found a failure.
use std::process::Command;

fn main() {
    let rev = Command::new("git")
        .args(["rev-parse", "--short=10", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let build = match (rev.is_empty(), dirty) {
        (true, _) => env!("CARGO_PKG_VERSION").to_string(),
        (false, false) => format!("{}+{}", env!("CARGO_PKG_VERSION"), rev),
        (false, true) => format!("{}+{}.dirty", env!("CARGO_PKG_VERSION"), rev),
    };
    println!("cargo:rustc-env=DISTSIM_BUILD={build}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/index");
}
