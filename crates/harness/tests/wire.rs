//! upstream-sim seen from the wire: every Go rule the emulator implements,
//! probed with a raw TCP client (the probe table is in common/mod.rs).

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_meets_its_expectation_on_the_emulator() {
    let probes = common::probes();
    let results = futures_join_all(probes.iter().cloned().map(|p| common::run_probe(p, None))).await;
    let mut failures = Vec::new();
    for (p, o) in probes.iter().zip(&results) {
        let bad = common::check(p, o);
        if !bad.is_empty() {
            failures.push(format!("{}: {}", p.name, bad.join("; ")));
        }
    }
    assert!(failures.is_empty(), "probe failures:\n{}", failures.join("\n"));
}

/// Runs the probes concurrently (each has its own server and port), so the
/// timer-bound probes overlap instead of adding up.
async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("probe task"));
    }
    out
}
