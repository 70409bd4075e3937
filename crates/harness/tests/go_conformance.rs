//! Conformance: the wire probes against the real Go server
//! (fixtures/go-upstream, built with the `go` on PATH) and against the
//! emulator, one trial per probe (`go_conformance::<probe>`). Both must
//! meet the probe's expectation, and agree.
//!
//! Without a Go toolchain a trial is reported as ignored, with the reason;
//! with BADGATEWAY_REQUIRE_GO=1 (set by .ci/run) it fails instead.

mod common;

use harness::require;
use harness::UpstreamBackend;
use libtest_mimic::{Completion, Failed, Trial};
use std::process::ExitCode;

fn main() -> ExitCode {
    let trials = common::probes()
        .into_iter()
        .map(|p| Trial::ignorable_test(format!("go_conformance::{}", common::trial_name(&p)), move || agrees_with_real_go(&p)))
        .collect();
    // One probe at a time: each starts a Go process, and its timing windows
    // are tight.
    libtest_mimic::run(&common::arguments(1), trials).exit_code()
}

fn agrees_with_real_go(probe: &common::Probe) -> Result<Completion, Failed> {
    if let Err(m) = require::go() {
        return require::trial_outcome(m);
    }
    let real = common::block_on(common::run_probe(probe.clone(), UpstreamBackend::Go));
    let sim = common::block_on(common::run_probe(probe.clone(), UpstreamBackend::Builtin));
    let mut failures = Vec::new();
    let real_bad = common::check(probe, &real);
    if !real_bad.is_empty() {
        failures.push(format!("real Go: {}", real_bad.join("; ")));
    }
    let sim_bad = common::check(probe, &sim);
    if !sim_bad.is_empty() {
        failures.push(format!("emulator: {}", sim_bad.join("; ")));
    }
    let agree = real.body == sim.body && real.end == sim.end && real.connection_close == sim.connection_close && real.handler_runs == sim.handler_runs;
    if !agree {
        failures.push(format!("Go {real:?} vs emulator {sim:?}"));
    }
    if failures.is_empty() {
        Ok(Completion::Completed)
    } else {
        Err(failures.join("\n").into())
    }
}
