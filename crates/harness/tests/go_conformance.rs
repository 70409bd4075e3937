//! Conformance: the wire probes against the real Go server
//! (fixtures/go-upstream, built with the `go` on PATH) and against the
//! emulator. Both must meet each probe's expectation, and agree.
//!
//! Without a Go toolchain this prints why it skipped, unless
//! BADGATEWAY_REQUIRE_GO=1 (set by .ci/run), which turns a skip into a failure.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_agree_with_real_go() {
    let go = match harness::go::build_go_upstream() {
        Ok(bin) => bin,
        Err(why) => {
            assert!(std::env::var("BADGATEWAY_REQUIRE_GO").as_deref() != Ok("1"), "Go conformance required but unavailable: {why}");
            eprintln!("SKIP go conformance: {why}");
            return;
        }
    };
    let mut failures = Vec::new();
    let mut table = Vec::new();
    // One probe at a time against Go: each starts its own process.
    for probe in common::probes() {
        let real = common::run_probe(probe.clone(), Some(go.clone())).await;
        let sim = common::run_probe(probe.clone(), None).await;
        let real_bad = common::check(&probe, &real);
        let sim_bad = common::check(&probe, &sim);
        let agree = real.body == sim.body && real.end == sim.end && real.connection_close == sim.connection_close
            && real.handler_runs == sim.handler_runs;
        table.push(format!(
            "{:<75} go {:>7.1} ms {:?}  sim {:>7.1} ms {:?}",
            probe.name, real.end_ms, real.end, sim.end_ms, sim.end
        ));
        if !real_bad.is_empty() {
            failures.push(format!("{} (real Go): {}", probe.name, real_bad.join("; ")));
        }
        if !sim_bad.is_empty() {
            failures.push(format!("{} (emulator): {}", probe.name, sim_bad.join("; ")));
        }
        if !agree {
            failures.push(format!("{}: Go {real:?} vs emulator {sim:?}", probe.name));
        }
    }
    eprintln!("go conformance ({} probes):\n{}", table.len(), table.join("\n"));
    assert!(failures.is_empty(), "conformance failures:\n{}", failures.join("\n"));
}
