//! The scenario catalogue built into the binary (build.rs embeds scenarios/), so that
//! `distsim list` and `distsim run raft/calm` work from any directory after `cargo install`.
//!
//! A path on disk always takes precedence: `distsim run scenarios/raft/calm.toml` in a checkout
//! runs the file as it is now, edits included. Only an argument that names no file is looked
//! up here, under any of the names a user is likely to type: `raft/calm`, `raft/calm.toml`,
//! `scenarios/raft/calm` or `scenarios/raft/calm.toml` (so the reproduce commands printed in a
//! checkout work elsewhere too).

use std::path::Path;

use sim_core::{Scenario, ScenarioError};

include!(concat!(env!("OUT_DIR"), "/catalogue.rs"));

/// One built-in scenario.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Its name relative to scenarios/, with the extension: `raft/calm.toml`.
    pub file: &'static str,
    /// The file's text as it was when the binary was built.
    pub text: &'static str,
}

impl Entry {
    /// The short name a user runs it by: `raft/calm`.
    pub fn short_name(&self) -> &'static str {
        self.file
            .strip_suffix(".toml")
            .or_else(|| self.file.strip_suffix(".json"))
            .unwrap_or(self.file)
    }

    /// The path it has in the repository, `scenarios/raft/calm.toml`: errors and results name
    /// it so, and its extension decides the format.
    pub fn repo_path(&self) -> String {
        format!("scenarios/{}", self.file)
    }
}

/// Every built-in scenario, sorted by name.
pub fn entries() -> impl Iterator<Item = Entry> {
    EMBEDDED.iter().map(|&(file, text)| Entry { file, text })
}

/// The built-in scenario an argument names, if it names one.
pub fn find(arg: &str) -> Option<Entry> {
    let arg = arg.trim_start_matches("./").replace('\\', "/");
    let arg = arg.strip_prefix("scenarios/").unwrap_or(&arg);
    entries().find(|e| e.file == arg || e.short_name() == arg)
}

/// Reads a scenario from disk when `arg` is a file there, else from the built-in catalogue.
/// An argument that is neither gets the file error, with a hint naming the catalogue.
pub fn load_scenario(arg: &str) -> Result<Scenario, ScenarioError> {
    if Path::new(arg).exists() {
        return Scenario::load(arg);
    }
    match find(arg) {
        Some(e) => Scenario::parse(&e.repo_path(), e.text),
        None => Err(ScenarioError::new(
            arg,
            format!(
                "no such file, and no built-in scenario of that name; `distsim list` shows the {} \
                 built-in scenarios, which run by their short name (e.g. `distsim run raft/calm`)",
                EMBEDDED.len()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_name_finds_the_same_scenario() {
        for name in [
            "raft/calm",
            "raft/calm.toml",
            "scenarios/raft/calm",
            "scenarios/raft/calm.toml",
            "./scenarios/raft/calm.toml",
        ] {
            let e = find(name).unwrap_or_else(|| panic!("{name} is built in"));
            assert_eq!(e.file, "raft/calm.toml", "{name}");
        }
        assert!(find("raft/nothing-of-that-name").is_none());
        assert!(
            find("calm").is_none(),
            "a bare stem is ambiguous, not looked up"
        );
    }

    #[test]
    fn the_embedded_catalogue_is_the_scenarios_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut on_disk = Vec::new();
        crate::list::collect_scenarios(&dir, &mut on_disk).unwrap();
        let mut names: Vec<String> = on_disk
            .iter()
            .map(|p| {
                p.strip_prefix(&dir)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/")
            })
            .collect();
        names.sort();
        let embedded: Vec<&str> = entries().map(|e| e.file).collect();
        assert_eq!(embedded, names);
        for e in entries() {
            let text = std::fs::read_to_string(dir.join(e.file)).unwrap();
            assert_eq!(e.text, text, "{} is embedded as it is on disk", e.file);
        }
    }
}
