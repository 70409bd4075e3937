//! Every catalogue scenario on the built-in emulators, one trial each
//! (`cargo test -p scenarios --test catalogue_builtin -- idle_race`): it
//! meets its expectation, and a deterministic one matches the oracle's
//! prediction request by request. One that needs a network namespace
//! (`ip_local_port_range`) is ignored, with the reason, where none can be
//! created (not root), unless BADGATEWAY_REQUIRE_NETNS=1 (set by .ci/run).

mod common;

use libtest_mimic::{Completion, Failed, Trial};
use scenarios::runner::{self, RunOptions};
use scenarios::scenario::Scenario;
use scenarios::{catalogue, oracle, report};
use std::process::ExitCode;

fn main() -> ExitCode {
    let trials = match catalogue::all() {
        Ok(all) => all.into_iter().map(|s| Trial::ignorable_test(common::trial_name(&s.name), move || on_the_emulators(&s))).collect(),
        Err(e) => vec![Trial::test("catalogue", move || Err(e.into()))],
    };
    libtest_mimic::run(&common::arguments(), trials).exit_code()
}

fn on_the_emulators(s: &Scenario) -> Result<Completion, Failed> {
    let r = common::block_on(runner::run(s, &RunOptions::default()))?;
    if let (Some(why), Some(_)) = (&r.skipped, s.local_port_range()) {
        // Reached only where a namespace is not required (else run() errs).
        return Ok(Completion::ignored_with(why.clone()));
    }
    if let Some(why) = &r.skipped {
        return Err(format!("the emulators run every scenario, but this one was skipped: {why}").into());
    }
    let mut failures = Vec::new();
    if !r.passed {
        failures.push(report::verdict(&r));
    }
    if let Some(preds) = oracle::predict(s) {
        if preds.len() != r.observations.len() {
            failures.push(format!("the oracle predicts {} requests, {} ran", preds.len(), r.observations.len()));
        }
        for (i, (p, o)) in preds.iter().zip(&r.observations).enumerate() {
            if let Err(e) = oracle::matches(p, o) {
                failures.push(format!("request {}: live vs oracle: {e}", i + 1));
            }
        }
    }
    if failures.is_empty() {
        Ok(Completion::Completed)
    } else {
        Err(failures.join("\n").into())
    }
}
