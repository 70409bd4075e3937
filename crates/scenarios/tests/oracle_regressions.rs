//! Predictions the oracle once got wrong, each checked against a live run on
//! the emulators (whose answers agree with real nginx 1.22 and Go 1.19) and
//! against the oracle.

use scenarios::runner::{self, RunOptions};
use scenarios::scenario::{Expect, GoSettings, NginxSettings, RequestGroup, Scenario, Workload};
use scenarios::{catalogue, matrix, oracle, setup};
use std::time::Duration;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// (status, upstream_status, handler runs) of one request.
type Outcome = (Option<u16>, Vec<u16>, u64);

/// Every request's outcome, live and predicted.
fn live_and_predicted(s: &Scenario) -> (Vec<Outcome>, Vec<Outcome>) {
    let r = rt().block_on(runner::run(s, &RunOptions::default())).expect("run");
    let live = r.observations.iter().map(|o| (o.status, o.upstream_status.clone(), o.handler_runs.expect("the emulator counts handler runs"))).collect();
    let predicted = oracle::predict(s).expect("deterministic").iter().map(|p| (Some(p.status), p.upstream_status.clone(), p.handler_runs)).collect();
    (live, predicted)
}

#[test]
fn http_500_in_proxy_next_upstream_runs_the_handler_on_both_servers() {
    let s = Scenario {
        name: "http-500-two-servers".into(),
        title: "proxy_next_upstream http_500 with two servers".into(),
        remedy_of: None,
        mechanism: String::new(),
        explanation: String::new(),
        fix: String::new(),
        go: GoSettings { servers: 2, ..GoSettings::default() },
        nginx: NginxSettings { next_upstream: Some("error timeout http_500".into()), ..NginxSettings::default() },
        workload: Workload::default(),
        requests: vec![RequestGroup { method: "GET".into(), path: "/recover-panic".into(), body: 0, count: 1, client_pause: None, expect: Expect::default() }],
    };
    let want = vec![(Some(500), vec![500, 500], 2)];
    let (live, predicted) = live_and_predicted(&s);
    assert_eq!(live, want, "live");
    assert_eq!(predicted, want, "oracle");
}

#[test]
fn keepalive_1_keeps_one_of_two_warm_connections() {
    let mut s = catalogue::find("stale-cached-connections").expect("catalogue");
    s.nginx.keepalive = Some(1);
    s.requests[0].expect = Expect::default();
    // One cached connection (the other was evicted), then a fresh one.
    let want = vec![(Some(502), vec![502, 502], 2)];
    let (live, predicted) = live_and_predicted(&s);
    assert_eq!(live, want, "live");
    assert_eq!(predicted, want, "oracle");
}

#[test]
fn equal_idle_timeout_and_keepalive_timeout_still_race() {
    // Go arms IdleTimeout when it has flushed the response; nginx arms
    // keepalive_timeout after reading it: with equal values Go closes first.
    let five = Duration::from_secs(5);
    let cell = matrix::cell_scenario(five, five, "GET", 1);
    let go = setup::go_config(&cell, 1.0);
    assert!(oracle::idle_race_possible(&go, five), "equal values race");
    assert!(!oracle::idle_race_possible(&go, Duration::from_secs(4)), "nginx lets go first");
}
