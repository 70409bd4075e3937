//! The wire probes (common/mod.rs), one named test each, for each server:
//!
//! * `emulator::<probe>`: upstream-sim meets the probe's expectation;
//! * `real_go::<probe>`: real Go (fixtures/go-upstream, built with the `go`
//!   on PATH) and the emulator both meet it, and agree with each other.
//!
//! Without Go the `real_go` tests are reported as ignored, with the reason;
//! with BADGATEWAY_REQUIRE_GO=1 (set by .ci/run) they fail instead.
//! `cargo test -p harness --test wire idle_timeout` runs the probes whose
//! name contains `idle_timeout`, on both servers.

mod common;

use common::{check, run_probe, Probe};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use parking_lot::Mutex;

/// Probes mostly wait on timers, so more of them run at once than there
/// are cores, unless `--test-threads` says otherwise.
const DEFAULT_THREADS: usize = 8;

/// One real Go process at a time: each picks a free port before Go binds
/// it, and the timing windows hold best without Go processes competing.
static ONE_GO_AT_A_TIME: Mutex<()> = Mutex::new(());

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = args.test_threads.or(Some(DEFAULT_THREADS));
    let probes = common::probes();
    // Emulator trials first: they run side by side while the real-Go ones
    // queue behind each other.
    let emulator: Vec<Trial> =
        probes.iter().cloned().map(|p| Trial::test(format!("emulator::{}", p.name), move || on_emulator(&p))).collect();
    let real_go = probes.into_iter().map(|p| Trial::ignorable_test(format!("real_go::{}", p.name), move || on_real_go(&p)));
    libtest_mimic::run(&args, emulator.into_iter().chain(real_go).collect()).exit();
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, Failed> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| format!("tokio runtime: {e}"))?;
    Ok(rt.block_on(f))
}

fn on_emulator(p: &Probe) -> Result<(), Failed> {
    let o = block_on(run_probe(p, None))??;
    let bad = check(p, &o);
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("emulator: {}", bad.join("; ")).into())
    }
}

fn on_real_go(p: &Probe) -> Result<Completion, Failed> {
    let go = match harness::require::go() {
        Ok(bin) => bin,
        Err(missing) => return harness::require::trial_outcome(missing),
    };
    let _one = ONE_GO_AT_A_TIME.lock();
    let (real, sim) = block_on(async { tokio::join!(run_probe(p, Some(&go)), run_probe(p, None)) })?;
    let (real, sim) = (real?, sim?);
    let mut failures = Vec::new();
    for (who, o) in [("real Go", &real), ("emulator", &sim)] {
        let bad = check(p, o);
        if !bad.is_empty() {
            failures.push(format!("{who}: {}", bad.join("; ")));
        }
    }
    if !real.agrees_with(&sim) {
        failures.push(format!("real Go and the emulator disagree: Go {real:?}, emulator {sim:?}"));
    }
    if failures.is_empty() {
        Ok(Completion::Completed)
    } else {
        Err(failures.join("\n").into())
    }
}
