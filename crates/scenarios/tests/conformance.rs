//! Differential runs: every scenario on the built-in proxy, on real nginx
//! in front of the Go emulator, and on real nginx in front of real Go. Every
//! run must meet the scenario's expectation, and deterministic scenarios must
//! see the same statuses, upstream_status lists and handler runs.
//!
//! Skips (printing why) without nginx or Go, unless BADGATEWAY_REQUIRE_NGINX=1
//! or BADGATEWAY_REQUIRE_GO=1 (set by .ci/run).

use scenarios::runner::{self, ProxyBackend, RunOptions, UpstreamBackend};

fn required(var: &str) -> bool {
    std::env::var(var).as_deref() == Ok("1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_agrees_with_real_nginx_and_go() {
    if let Err(why) = harness::nginx::available() {
        assert!(!required("BADGATEWAY_REQUIRE_NGINX"), "nginx differential tests required: {why}");
        eprintln!("SKIP nginx differential tests: {why}");
        return;
    }
    let go = harness::go::build_go_upstream();
    if let Err(why) = &go {
        assert!(!required("BADGATEWAY_REQUIRE_GO"), "Go conformance required: {why}");
        eprintln!("SKIP the real-Go column: {why}");
    }
    let mut combos = vec![(ProxyBackend::Builtin, UpstreamBackend::Builtin), (ProxyBackend::Nginx, UpstreamBackend::Builtin)];
    if go.is_ok() {
        combos.push((ProxyBackend::Nginx, UpstreamBackend::Go));
    }
    let mut problems = Vec::new();
    let mut executed = 0;
    for s in scenarios::catalogue::all().unwrap() {
        let mut runs = Vec::new();
        for &(proxy, upstream) in &combos {
            let r = runner::run(&s, &RunOptions { proxy, upstream, ..RunOptions::default() })
                .await
                .unwrap_or_else(|e| panic!("{} on {proxy:?}/{upstream:?}: {e}", s.name));
            if r.skipped.is_none() {
                executed += 1;
            }
            if !r.passed {
                problems.push(scenarios::report::verdict(&r));
            }
            runs.push(r);
        }
        if let Err(e) = runner::agreement(&runs) {
            problems.push(format!("{}: {e}", s.name));
        }
    }
    eprintln!("differential runs executed: {executed}");
    assert!(executed >= 2 * scenarios::catalogue::FILES.len(), "too few runs executed");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
