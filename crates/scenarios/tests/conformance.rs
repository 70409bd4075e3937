//! Differential runs, one trial per catalogue scenario
//! (`conformance::idle_race`): the scenario on the built-in emulators, on
//! real nginx in front of the Go emulator, and on real nginx in front of
//! real Go. Every run must meet the expectation, and a deterministic
//! scenario must see the same statuses, upstream_status lists and handler
//! runs on all of them. Real Go does not run scenarios that need the
//! emulator's lab knobs: that run is skipped by the backend, and the
//! others are still compared.
//!
//! Without nginx (or Go) a trial is reported as ignored, with the reason;
//! with BADGATEWAY_REQUIRE_NGINX=1 (or BADGATEWAY_REQUIRE_GO=1, set by
//! .ci/run) it fails instead.

mod common;

use harness::require::{self, Missing};
use libtest_mimic::{Completion, Failed, Trial};
use scenarios::runner::{self, RunOptions, CONFORMANCE_PAIRS};
use scenarios::scenario::Scenario;
use scenarios::{catalogue, report};
use std::process::ExitCode;

fn main() -> ExitCode {
    let trials = match catalogue::all() {
        Ok(all) => all
            .into_iter()
            .map(|s| Trial::ignorable_test(format!("conformance::{}", common::trial_name(&s.name)), move || agrees_with_real_programs(&s)))
            .collect(),
        Err(e) => vec![Trial::test("conformance::catalogue", move || Err(e.into()))],
    };
    libtest_mimic::run(&common::arguments(), trials).exit_code()
}

fn agrees_with_real_programs(s: &Scenario) -> Result<Completion, Failed> {
    // The pairs whose real programs are here.
    let mut pairs = Vec::new();
    let mut missing = None;
    for (proxy, upstream) in CONFORMANCE_PAIRS {
        match proxy.needs().into_iter().chain(upstream.needs()).map(require::tool).find_map(Result::err) {
            None => pairs.push((proxy, upstream)),
            Some(m @ Missing::Required(..)) => return require::trial_outcome(m),
            Some(m) => {
                missing.get_or_insert(m);
            }
        }
    }
    if let (true, Some(m)) = (pairs.len() < 2, &missing) {
        // Nothing to compare the emulators with.
        return require::trial_outcome(m.clone());
    }
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    for (proxy, upstream) in pairs {
        let r = common::block_on(runner::run(s, &RunOptions { proxy, upstream, ..RunOptions::default() }))
            .map_err(|e| format!("{proxy:?}/{upstream:?}: {e}"))?;
        if r.failed() {
            problems.push(report::verdict(&r));
        }
        runs.push(r);
    }
    let ran = runs.iter().filter(|r| r.skipped.is_none()).count();
    if ran < 2 && problems.is_empty() {
        // An emulator-only scenario (nginx ≥ 1.29.7's defaults on Debian's
        // 1.22): nothing to compare, which is reported, not passed.
        if let Some(why) = runs.iter().find_map(|r| r.skipped.clone()) {
            return Ok(Completion::Ignored { reason: Some(format!("only the emulators can run it: {why}")) });
        }
    }
    if ran < 2 {
        problems.push(format!("only {ran} of the backend pairs ran it: nothing was compared"));
    }
    if let Err(e) = runner::agreement(&runs) {
        problems.push(e.to_string());
    }
    if !problems.is_empty() {
        return Err(problems.join("\n").into());
    }
    match missing {
        // The pairs that could run agree; the others could not run here.
        Some(m) => require::trial_outcome(m),
        None => Ok(Completion::Completed),
    }
}
