//! What the scenario test binaries share: one libtest-mimic trial per
//! catalogue scenario, named after it with underscores (`idle_race`), run
//! one at a time (scenario runs are timed) unless `--test-threads` or
//! `RUST_TEST_THREADS` says otherwise.

use libtest_mimic::Arguments;
use std::future::Future;

/// The command line, with one test thread unless the user chose.
pub fn arguments() -> Arguments {
    let mut args = Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(std::env::var("RUST_TEST_THREADS").ok().and_then(|n| n.parse().ok()).unwrap_or(1));
    }
    args
}

/// `idle-race-remedy` → `idle_race_remedy`.
pub fn trial_name(scenario: &str) -> String {
    scenario.replace('-', "_")
}

/// Runs a scenario's future on a runtime of its own.
pub fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime").block_on(f)
}
