//! Records the git revision, so that reproduce commands name the build that found a failure,
//! and embeds the scenario catalogue (scenarios/) so that `distsim list` and
//! `distsim run raft/calm` work from any directory after `cargo install`.
use std::path::{Path, PathBuf};
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
    embed_catalogue();
}

/// Writes `$OUT_DIR/catalogue.rs`: one `(name, text)` pair per scenario file under
/// scenarios/, sorted by name, each text an `include_str!` of the file (so cargo rebuilds
/// when a scenario changes). Names are relative to scenarios/ with `/` separators.
fn embed_catalogue() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = root.join("scenarios");
    println!("cargo:rerun-if-changed=scenarios");
    let mut files = Vec::new();
    if dir.is_dir() {
        collect(&dir, &mut files);
    }
    let mut entries: Vec<(String, PathBuf)> = files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&dir).expect("under scenarios/");
            let name: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            (name.join("/"), p)
        })
        .collect();
    entries.sort();
    let mut code = String::from(
        "/// The scenario files built into the binary: (name under scenarios/, text).\n\
         pub static EMBEDDED: &[(&str, &str)] = &[\n",
    );
    for (name, path) in &entries {
        code.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            path.to_string_lossy()
        ));
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("catalogue.rs");
    std::fs::write(&out, code).expect("OUT_DIR is writable");
}

/// Every `.toml` and `.json` file under `dir`.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect(&p, out);
        } else if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("toml") | Some("json")
        ) {
            out.push(p);
        }
    }
}
