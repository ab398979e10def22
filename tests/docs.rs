//! The docs cannot drift from the code:
//!
//! - README's command table names every long flag of every subcommand (read from `distsim
//!   <cmd> --help`), and its synopses name no flag that does not exist;
//! - docs/scenarios.md documents exactly the fields the scenario parser accepts, section by
//!   section (each latency distribution, each fault action), the values of each enumerated
//!   field, and each algorithm's operations, roles, `[params]` and bug switches.
//!
//! The parser is asked, not copied: a scenario with an unknown field `zz_probe` in a section is
//! refused with serde's "unknown field `zz_probe`, expected one of `a`, `b`, ..." and that list
//! is the section's fields; an unknown value (`dist = "zz"`) lists the accepted values. The
//! reference marks each list it documents with an HTML comment (`<!-- fields: network -->`)
//! followed by a table whose rows start with the name in backquotes.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use sim_core::Scenario;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_distsim"))
        .args(args)
        .output()
        .expect("distsim runs");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The subcommands `distsim --help` lists.
fn subcommands() -> Vec<String> {
    let top = help(&["--help"]);
    let mut cmds = Vec::new();
    let mut inside = false;
    for line in top.lines() {
        if line.starts_with("Commands:") {
            inside = true;
            continue;
        }
        if inside {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap_or("");
            if name != "help" && !name.is_empty() {
                cmds.push(name.to_string());
            }
        }
    }
    assert!(cmds.len() >= 6, "distsim --help lists its commands: {top}");
    cmds
}

/// Every `--flag` in a text, without the leading dashes.
fn long_flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("--") {
        let s = i + at + 2;
        let mut e = s;
        while e < b.len() && (b[e].is_ascii_lowercase() || b[e] == b'-' || b[e].is_ascii_digit()) {
            e += 1;
        }
        let before_ok = i + at == 0 || !b[i + at - 1].is_ascii_alphanumeric();
        if e > s && before_ok && b[s].is_ascii_lowercase() {
            out.insert(text[s..e].trim_end_matches('-').to_string());
        }
        i = e.max(s);
    }
    out
}

/// A subcommand's long flags, from the option lines of its `--help`.
fn flags_of(cmd: &str) -> BTreeSet<String> {
    let text = help(&[cmd, "--help"]);
    let mut flags = BTreeSet::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('-') {
            let head = t.split("  ").next().unwrap_or("");
            flags.extend(long_flags(head));
        }
    }
    flags.remove("help");
    flags
}

/// The rows of README's command table for one subcommand: the row's synopsis (first cell)
/// and the whole row.
fn readme_rows(cmd: &str) -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme
        .find("### Commands")
        .expect("README has a ### Commands section");
    let section = &readme[start..];
    let end = section[3..]
        .find("\n#")
        .map(|e| e + 3)
        .unwrap_or(section.len());
    section[..end]
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| {
            let first = l.trim_start_matches('|').split(" | ").next()?.trim();
            let prog = format!("`distsim {cmd} ");
            let bare = format!("`distsim {cmd}`");
            (first.starts_with(&prog) || first.starts_with(&bare))
                .then(|| (first.to_string(), l.to_string()))
        })
        .collect()
}

#[test]
fn the_readme_command_table_lists_every_flag_of_every_subcommand() {
    for cmd in subcommands() {
        let rows = readme_rows(&cmd);
        assert!(
            !rows.is_empty(),
            "README's command table has no row for `distsim {cmd}`"
        );
        let flags = flags_of(&cmd);
        let synopses: String = rows.iter().map(|(s, _)| s.as_str()).collect();
        let documented = long_flags(&synopses);
        for f in &flags {
            assert!(
                documented.contains(f),
                "README's command table does not show --{f} in the synopsis of `distsim {cmd}` (rows: {synopses})"
            );
        }
        for f in &documented {
            assert!(
                flags.contains(f),
                "README's synopsis of `distsim {cmd}` shows --{f}, which `distsim {cmd} --help` does not have"
            );
        }
    }
}

/// Each subcommand that prints results offers --json and --quiet.
#[test]
fn every_subcommand_that_prints_has_json_and_quiet() {
    for cmd in subcommands() {
        let flags = flags_of(&cmd);
        for f in ["json", "quiet"] {
            assert!(flags.contains(f), "`distsim {cmd}` has no --{f}");
        }
    }
    for cmd in ["sweep", "check"] {
        assert!(flags_of(cmd).contains("jobs"), "{cmd} says --jobs");
    }
}

// ---------- docs/scenarios.md against the parser ----------

const BASE: &str = "description = \"probe\"\nalgorithm = \"echo\"\nnodes = 3\nduration = \"5s\"\n";

/// The backquoted names after "expected" in a serde error (`expected one of `a`, `b``,
/// `expected `a` or `b``, `expected `a``; "there are no fields" gives none).
fn expected_names(message: &str) -> Vec<String> {
    let Some(at) = message.find("expected") else {
        return Vec::new();
    };
    message[at..]
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The fields a section accepts, from the error on an unknown field placed in it; `None` when
/// the parser accepts the unknown field (it would accept anything there).
fn probe_fields(extra: &str) -> Option<BTreeSet<String>> {
    let text = format!("{BASE}{extra}");
    let err = match Scenario::parse("probe.toml", &text) {
        Ok(_) => return None,
        Err(e) => e.message,
    };
    if !err.contains("unknown field `zz_probe`") {
        return None;
    }
    Some(expected_names(&err).into_iter().collect())
}

/// The values an enumerated field accepts, from the error on an unknown value.
fn probe_values(extra: &str) -> Vec<String> {
    let text = format!("{BASE}{extra}");
    let err = Scenario::parse("probe.toml", &text)
        .expect_err("an unknown value is refused")
        .message;
    assert!(err.contains("unknown variant `zz`"), "{err}");
    expected_names(&err)
}

/// The names listed after `<!-- KIND: ID -->` in the reference: the first backquoted word of
/// each row of the table that follows (none when no table follows).
fn documented(doc: &str, marker: &str) -> Option<BTreeSet<String>> {
    let at = doc.find(&format!("<!-- {marker} -->"))?;
    let mut rows = doc[at..]
        .lines()
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| l.starts_with('|'));
    let mut out = BTreeSet::new();
    rows.next(); // the header
    for row in rows.skip(1) {
        let first = row.trim_start_matches('|').split('|').next().unwrap_or("");
        if let Some(name) = first.split('`').nth(1) {
            out.insert(name.to_string());
        }
    }
    Some(out)
}

fn reference() -> String {
    std::fs::read_to_string(root().join("docs/scenarios.md")).expect("docs/scenarios.md exists")
}

/// Every marker of one kind in the reference (`fields`, `values`, ...), by id.
fn markers(doc: &str, kind: &str) -> BTreeSet<String> {
    let open = format!("<!-- {kind}: ");
    doc.match_indices(&open)
        .filter_map(|(i, _)| {
            let rest = &doc[i + open.len()..];
            rest.find(" -->").map(|e| rest[..e].to_string())
        })
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_scenario_reference_documents_exactly_what_the_parser_accepts() {
    let doc = reference();
    let mut checked_fields = BTreeSet::new();
    let mut check = |id: String, accepted: BTreeSet<String>| {
        let documented = documented(&doc, &format!("fields: {id}"))
            .unwrap_or_else(|| panic!("docs/scenarios.md has no `<!-- fields: {id} -->` table"));
        assert_eq!(
            documented, accepted,
            "docs/scenarios.md `{id}`: documented (left) against accepted by the parser (right)"
        );
        checked_fields.insert(id);
    };
    let sections = [
        ("top", "zz_probe = 1\n"),
        ("network", "[network]\nzz_probe = 1\n"),
        ("clocks", "[clocks]\nzz_probe = 1\n"),
        ("clocks.node", "[[clocks.node]]\nnode = 1\nzz_probe = 1\n"),
        ("workload", "[workload]\nzz_probe = 1\n"),
        ("nemesis", "[nemesis]\nkinds = [\"crash\"]\nzz_probe = 1\n"),
        ("checks", "[checks]\nzz_probe = 1\n"),
        ("liveness", "[liveness]\nzz_probe = 1\n"),
        ("assert", "[[assert]]\nzz_probe = 1\n"),
        ("condition", "[[assert]]\neventually = { zz_probe = 1 }\n"),
        ("swarm", "[swarm]\nzz_probe = 1\n"),
    ];
    for (id, extra) in sections {
        let accepted = probe_fields(extra).unwrap_or_else(|| panic!("{id} refuses unknown fields"));
        check(id.to_string(), accepted);
    }
    let dists = probe_values("[network]\nlatency = { dist = \"zz\" }\n");
    for d in &dists {
        let accepted = probe_fields(&format!(
            "[network]\nlatency = {{ dist = \"{d}\", zz_probe = 1 }}\n"
        ))
        .unwrap_or_else(|| panic!("latency {d} refuses unknown fields"));
        check(format!("latency.{d}"), accepted);
    }
    let actions = probe_values("[[faults]]\nat = \"1s\"\naction = \"zz\"\n");
    for a in &actions {
        let accepted = probe_fields(&format!(
            "[[faults]]\nat = \"1s\"\naction = \"partition\"\nkind = \"halves\"\n\
             [[faults]]\nat = \"2s\"\naction = \"{a}\"\nzz_probe = 1\n"
        ))
        .unwrap_or_else(|| panic!("fault action {a} refuses unknown fields"));
        check(format!("faults.{a}"), accepted);
    }
    // The fields every fault has: `at`, and `action`, the tag that selects the rest.
    let fault = format!("{BASE}[[faults]]\nat = \"1s\"\naction = \"crash\"\nnode = 1\n");
    Scenario::parse("probe.toml", &fault).expect("a fault with at and action loads");
    check("faults".to_string(), set(&["at", "action"]));
    let all = markers(&doc, "fields");
    assert_eq!(
        all, checked_fields,
        "every `fields` table of docs/scenarios.md is checked against the parser"
    );

    // Enumerated values.
    let values = [
        ("latency.dist", dists.clone()),
        ("faults.action", actions.clone()),
        (
            "partition.kind",
            probe_values("[[faults]]\nat = \"1s\"\naction = \"partition\"\nkind = \"zz\"\n"),
        ),
        (
            "nemesis.kinds",
            probe_values("[nemesis]\nkinds = [\"zz\"]\n"),
        ),
        ("expect", probe_values("expect = \"zz\"\n")),
        (
            "checks.linearizability",
            sim_core::linearizability::MODEL_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        ),
    ];
    for (id, accepted) in &values {
        let documented = documented(&doc, &format!("values: {id}"))
            .unwrap_or_else(|| panic!("docs/scenarios.md has no `<!-- values: {id} -->` table"));
        let accepted: BTreeSet<String> = accepted.iter().cloned().collect();
        assert_eq!(documented, accepted, "docs/scenarios.md values of `{id}`");
    }
    let ids: BTreeSet<String> = values.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(
        markers(&doc, "values"),
        ids,
        "every `values` table is checked"
    );
}

/// A catalogue scenario of each algorithm, with an unknown `[params]` field added: the
/// algorithm's own parser lists the fields it accepts.
fn params_accepted(alg: &str) -> BTreeSet<String> {
    let mut files = Vec::new();
    collect(&root().join("scenarios"), &mut files);
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        if !text.contains(&format!("algorithm = \"{alg}\"")) {
            continue;
        }
        let probed = if text.contains("\n[params]\n") {
            text.replacen("\n[params]\n", "\n[params]\nzz_probe = 1\n", 1)
        } else {
            format!("{text}\n[params]\nzz_probe = 1\n")
        };
        let sc = Scenario::parse(&f.to_string_lossy(), &probed).expect("catalogue loads");
        let err = algorithms::run(&sc, 1, &Default::default())
            .expect_err("an unknown param is refused")
            .message;
        assert!(err.contains("unknown field `zz_probe`"), "{alg}: {err}");
        return expected_names(&err).into_iter().collect();
    }
    panic!("no catalogue scenario runs {alg}");
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

#[test]
fn the_scenario_reference_documents_every_algorithm() {
    let doc = reference();
    let get = |marker: String| {
        documented(&doc, &marker)
            .unwrap_or_else(|| panic!("docs/scenarios.md has no `<!-- {marker} -->`"))
    };
    for alg in algorithms::ALGORITHMS {
        let n = alg.name;
        assert_eq!(
            get(format!("operations: {n}")),
            set(alg.operations),
            "{n} operations"
        );
        assert_eq!(get(format!("roles: {n}")), set(alg.roles), "{n} roles");
        let bugs: Vec<&str> = alg.bugs.iter().map(|b| b.name).collect();
        assert_eq!(get(format!("bugs: {n}")), set(&bugs), "{n} bugs");
        let declared: Vec<&str> = alg.params.iter().map(|p| p.name).collect();
        let accepted = params_accepted(n);
        assert_eq!(set(&declared), accepted, "{n}: PARAMS against its parser");
        assert_eq!(get(format!("params: {n}")), accepted, "{n} params");
    }
    let names: BTreeSet<String> = algorithms::ALGORITHMS
        .iter()
        .map(|a| a.name.to_string())
        .collect();
    for kind in ["operations", "roles", "bugs", "params"] {
        assert_eq!(
            markers(&doc, kind),
            names,
            "every `{kind}` table names an algorithm"
        );
    }
}
