//! index.html loads in headless Chromium with no console errors, and a screenshot of it is not
//! blank; the step-through timeline steps when keys are pressed and buttons clicked, and marks
//! the current event on the space-time diagram. Without Chromium the test says it skipped, unless DISTSIM_REQUIRE_BROWSER=1 (as in
//! CI, whose .ci/run installs Debian's chromium package), when it fails.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reports::{write_run_report, ReportOptions};

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Runs Chromium headless on `url` with `args` (a screenshot, or `--dump-dom`); returns its
/// standard output and its log (stderr).
fn chromium_run(chromium: &Path, url: &str, args: &[String], profile: &Path) -> (String, String) {
    let log = profile.with_extension("log");
    let out = profile.with_extension("out");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .args(args)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("output file"))
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("chromium starts");
    // Bound the wait: a browser that hangs must fail the test, not the CI's time budget.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match child.try_wait().expect("wait on chromium") {
            Some(status) => {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                assert!(status.success(), "chromium failed ({status}):\n{text}");
                return (std::fs::read_to_string(&out).unwrap_or_default(), text);
            }
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 90 s");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Runs Chromium headless on `page`, writing a screenshot; returns its stderr log.
fn screenshot(chromium: &Path, page: &Path, shot: &Path, profile: &Path) -> String {
    let args = [
        "--window-size=1280,2000".to_string(),
        format!("--screenshot={}", shot.display()),
    ];
    chromium_run(
        chromium,
        &format!("file://{}", page.display()),
        &args,
        profile,
    )
    .1
}

/// Chromium, or None when the test should skip (and it says so); a failure when
/// DISTSIM_REQUIRE_BROWSER=1.
fn chromium_or_skip() -> Option<PathBuf> {
    let found = find_chromium();
    if found.is_none() {
        if std::env::var("DISTSIM_REQUIRE_BROWSER").as_deref() == Ok("1") {
            panic!(
                "DISTSIM_REQUIRE_BROWSER=1 but no chromium on PATH: apt-get install -y chromium"
            );
        }
        // Straight to stderr, past the test harness's capture, so the skip is seen.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: browser check: no chromium on PATH (apt-get install -y chromium; \
             set DISTSIM_REQUIRE_BROWSER=1 to make this a failure)"
        );
    }
    found
}

/// Every console message of a page is logged as `...:CONSOLE(line)] "text", source: ...`;
/// any such line (the timeline's script logs nothing), and any failed load, is an error.
fn console_errors(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| {
            l.contains(":CONSOLE") || l.contains("net::ERR_") || l.contains("Not allowed to load")
        })
        .collect()
}

/// The pixels of a PNG screenshot, as RGB.
fn pixels(shot: &Path) -> Vec<[u8; 3]> {
    let f = std::fs::File::open(shot).expect("screenshot written");
    let mut dec = png::Decoder::new(f);
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut rd = dec.read_info().expect("screenshot decodes");
    let mut buf = vec![0; rd.output_buffer_size()];
    let info = rd.next_frame(&mut buf).expect("screenshot frame");
    let ch = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(ch)
        .map(|p| [p[0], p[1], p[2]])
        .collect()
}

#[test]
fn index_html_loads_in_headless_chromium_without_console_errors() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let r = common::run(&common::root().join("scenarios/broadcast/partition-no-retry.toml"));
    let dir = common::fresh_dir("browser");
    let w = write_run_report(&dir, &r, "distsim run x", &ReportOptions::default()).unwrap();
    let page = std::fs::canonicalize(&w.index).unwrap();
    let shot = dir.join("screenshot.png");
    let log = screenshot(&chromium, &page, &shot, &dir.join("profile"));
    let bad = console_errors(&log);
    assert!(bad.is_empty(), "console errors:\n{}", bad.join("\n"));
    // The screenshot is not blank: many pixels differ from the white background, in several
    // colours (text, plot marks, fault shading).
    let px = pixels(&shot);
    let non_white = px.iter().filter(|p| p.iter().any(|c| *c < 230)).count();
    let colours: std::collections::BTreeSet<[u8; 3]> = px
        .iter()
        .map(|p| [p[0] & 0xf0, p[1] & 0xf0, p[2] & 0xf0])
        .collect();
    assert!(
        non_white * 100 > px.len(),
        "screenshot looks blank: {non_white} of {} pixels are not white",
        px.len()
    );
    assert!(
        colours.len() > 8,
        "screenshot has only {} colours",
        colours.len()
    );
    eprintln!(
        "browser check: {} of {} pixels drawn, {} colours; screenshot at {}",
        non_white,
        px.len(),
        colours.len(),
        shot.display()
    );
}

/// The text of the element with `id` in a dumped DOM (up to its next tag).
fn text_of<'a>(dom: &'a str, id: &str) -> &'a str {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let rest = &dom[at..];
    let start = rest.find('>').expect("tag ends") + 1;
    let end = rest[start..].find('<').map_or(rest.len(), |e| start + e);
    &rest[start..end]
}

#[test]
fn the_timeline_steps_and_marks_the_diagram_in_headless_chromium() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    // Two clients in the critical section; the diagram's window is set around the violation
    // so that the timeline's mark falls inside it.
    let r = common::run(&common::root().join("scenarios/lock/pause.toml"));
    let v = r.violations.first().expect("the scenario fails").time_ns;
    let dir = common::fresh_dir("browser-timeline");
    #[allow(clippy::needless_update)]
    let opts = ReportOptions {
        window_ns: Some((v.saturating_sub(300_000_000), v + 1_000_000)),
        ..ReportOptions::default()
    };
    let w = write_run_report(&dir, &r, "distsim run x", &opts).unwrap();
    let page = std::fs::canonicalize(&w.index).unwrap();
    let url = |hash: &str| format!("file://{}#{hash}", page.display());
    let dom = |hash: &str, n: usize| {
        let (out, log) = chromium_run(
            &chromium,
            &url(hash),
            &["--dump-dom".to_string()],
            &dir.join(format!("profile-{n}")),
        );
        let bad = console_errors(&log);
        assert!(
            bad.is_empty(),
            "console errors at #{hash}:\n{}",
            bad.join("\n")
        );
        out
    };
    // A step given by the link, then keys pressed and buttons clicked as a reader would.
    let at = dom("step=100", 0);
    assert!(
        text_of(&at, "tl-pos").starts_with("event 100 of "),
        "{}",
        text_of(&at, "tl-pos")
    );
    let moved = dom("step=100&keys=nn>>p", 1);
    assert!(
        text_of(&moved, "tl-pos").starts_with("event 103 of "),
        "{}",
        text_of(&moved, "tl-pos")
    );
    assert_ne!(
        text_of(&at, "tl-event"),
        text_of(&moved, "tl-event"),
        "stepping changed nothing"
    );
    // `f` goes to the first event, `v` (or the button) to the violation.
    let first = dom("keys=f", 2);
    assert!(
        text_of(&first, "tl-pos").starts_with("event 0 of "),
        "{}",
        text_of(&first, "tl-pos")
    );
    assert!(
        text_of(&first, "tl-event").contains("starts"),
        "{}",
        text_of(&first, "tl-event")
    );
    let viol = dom("keys=f!", 3);
    assert!(
        text_of(&viol, "tl-event").contains("VIOLATION"),
        "{}",
        text_of(&viol, "tl-event")
    );
    assert!(
        viol.contains("class=\"tl-event tl-v\""),
        "the violation is not highlighted"
    );
    // The lock family's summaries reach the node table: a holder with its token.
    assert!(
        viol.contains("holder (writing)"),
        "no lock client's state in the table"
    );
    assert!(
        viol.contains("id=\"tl-mark\""),
        "no mark on the space-time diagram"
    );
    // A screenshot tall enough for the diagram and the timeline: not blank, and the mark (the
    // magenta ring and line) is drawn.
    let shot = dir.join("timeline.png");
    let (_, log) = chromium_run(
        &chromium,
        &url("keys=v"),
        &[
            "--window-size=1280,3600".to_string(),
            format!("--screenshot={}", shot.display()),
        ],
        &dir.join("profile-shot"),
    );
    let bad = console_errors(&log);
    assert!(bad.is_empty(), "console errors:\n{}", bad.join("\n"));
    let px = pixels(&shot);
    let non_white = px.iter().filter(|p| p.iter().any(|c| *c < 230)).count();
    let magenta = px
        .iter()
        .filter(|p| p[0] > 170 && p[1] < 80 && p[2] > 170)
        .count();
    assert!(non_white * 100 > px.len(), "screenshot looks blank");
    assert!(
        magenta > 30,
        "the timeline's mark is not on the screenshot ({magenta} pixels)"
    );
    eprintln!(
        "timeline check: {non_white} of {} pixels drawn, {magenta} of the mark; screenshot at {}",
        px.len(),
        shot.display()
    );
}

/// A server paused, then crashed: at the crash the page takes the requests held for it out of
/// the messages in flight (they have no trace event of their own) and says they are lost.
#[test]
fn a_crash_of_a_paused_server_ends_its_held_messages_in_headless_chromium() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let text = include_str!("data/paused-then-crashed.toml");
    let sc = sim_core::Scenario::parse("paused-then-crashed.toml", text).expect("parses");
    let opts = sim_core::RunOptions {
        keep_trace: true,
        ..Default::default()
    };
    let r = algorithms::run(&sc, 1, &opts).expect("runs");
    let lost = r.lost_at_crash.len();
    assert!(lost > 0, "no request was held at the paused server");
    let crash = r
        .trace
        .as_ref()
        .unwrap()
        .iter()
        .position(|e| e.kind == sim_core::trace::TraceKind::Fault && e.label.starts_with("crash"))
        .expect("the crash is traced");
    let dir = common::fresh_dir("browser-lost");
    let w = write_run_report(&dir, &r, "distsim run x", &ReportOptions::default()).unwrap();
    let page = std::fs::canonicalize(&w.index).unwrap();
    let in_flight = |step: usize| {
        let (dom, log) = chromium_run(
            &chromium,
            &format!("file://{}#step={step}", page.display()),
            &["--dump-dom".to_string()],
            &dir.join(format!("profile-{step}")),
        );
        let bad = console_errors(&log);
        assert!(bad.is_empty(), "console errors:\n{}", bad.join("\n"));
        let count = text_of(&dom, "tl-flight-count");
        let n: usize = count
            .split(' ')
            .next()
            .and_then(|n| n.replace(',', "").parse().ok())
            .unwrap_or_else(|| panic!("no count in {count:?}"));
        (n, text_of(&dom, "tl-event").to_string())
    };
    let (before, _) = in_flight(crash - 1);
    let (after, said) = in_flight(crash);
    assert_eq!(
        before - after,
        lost,
        "the crash took {} messages out of the flight, not the {lost} held",
        before - after
    );
    assert!(
        said.contains(&format!(
            "{lost} message(s) held while it was paused are lost"
        )),
        "{said}"
    );
}
