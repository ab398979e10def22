//! `distsim run --report-after`: the run carried on past its first violation, for the report's
//! panels only.
//!
//! A run stops at its first violation, and its verdict, trace hash and reproduce line are those
//! of that stopped run. What a violation leads to often comes after it: Raft's Figure 8 bug is
//! caught when a leader lacking a committed entry is elected, and the entry is overwritten
//! only once that leader replicates. So when a report of a failing run is drawn, the same
//! scenario and seed run once more with [`sim_core::RunOptions::run_after_violation_ns`] set;
//! the two runs are the same event for event up to the violation (one seed fixes everything),
//! and the second one's series feed the panels that show what followed
//! ([`reports::ReportOptions::after`]). Nothing else on the page comes from it.

use sim_core::time::{parse_duration_signed, Nanos};
use sim_core::{RunOptions, RunResult, Scenario, Verdict};

use crate::{bad_input, run_once};

/// The run carried on for `after` (a duration, `0s` for none) past `r`'s first violation, or
/// `None` when nothing is asked, `r` did not fail, its violation was found at the end (nothing
/// follows it), or no panel of its report draws from such a run. Exit code 2 on a bad
/// duration.
pub fn carry_on(
    sc: &Scenario,
    seed: u64,
    opts: &RunOptions,
    r: &RunResult,
    after: &str,
) -> Result<Option<reports::AfterViolation>, u8> {
    let after_ns = match parse_duration_signed(after, false) {
        Ok(ns) => ns as Nanos,
        Err(e) => {
            return Err(bad_input(format!(
                "--report-after {after}: {e}; give a duration such as 500ms or 2s (0s: none)"
            )))
        }
    };
    let Some(v) = r.violations.first() else {
        return Ok(None);
    };
    let found_at_end = v.time_ns >= sc.duration.0;
    if after_ns == 0
        || r.verdict != Verdict::Violation
        || found_at_end
        || !reports::draws_after_violation(r)
    {
        return Ok(None);
    }
    let carried = run_once(
        sc,
        seed,
        &RunOptions {
            run_after_violation_ns: Some(after_ns),
            ..opts.clone()
        },
    )?;
    // The same run up to the violation: the same first violation, at the same time.
    if carried.violations.first().map(|w| (w.time_ns, &w.message)) != Some((v.time_ns, &v.message))
    {
        eprintln!(
            "report: the run carried on past the violation took another path (a bug in distsim); its panels show the run stopped at the violation"
        );
        return Ok(None);
    }
    Ok(Some(reports::AfterViolation {
        after_ns,
        end_ns: carried.simulated_ns,
        series: carried.series,
    }))
}
