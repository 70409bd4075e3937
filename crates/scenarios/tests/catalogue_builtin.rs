//! Every catalogue scenario on the built-in emulators meets its expectation,
//! and every deterministic one matches the oracle request by request.

use scenarios::runner::{self, RunOptions};
use scenarios::{catalogue, oracle};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_passes_on_the_emulators_and_matches_the_oracle() {
    let mut failures = Vec::new();
    for s in catalogue::all().unwrap() {
        let r = runner::run(&s, &RunOptions::default()).await.unwrap_or_else(|e| panic!("{}: {e}", s.name));
        if !r.passed {
            failures.push(scenarios::report::verdict(&r));
        }
        if let Some(preds) = oracle::predict(&s) {
            assert_eq!(preds.len(), r.observations.len(), "{}", s.name);
            for (i, (p, o)) in preds.iter().zip(&r.observations).enumerate() {
                if let Err(e) = oracle::matches(p, o) {
                    failures.push(format!("{} request {}: live vs oracle: {e}", s.name, i + 1));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
