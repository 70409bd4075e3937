//! Random configurations run live on the built-in emulators must match the
//! oracle's prediction, request by request.

use proptest::prelude::*;
use scenarios::oracle;
use scenarios::runner::{self, RunOptions};
use scenarios::scenario::{Action, Expect, GoSettings, NginxSettings, RequestGroup, Scenario, Workload};

#[derive(Debug, Clone)]
struct Case {
    keepalive: bool,
    nginx_keepalive_timeout_s: u64,
    race: Option<&'static str>,
    idle_s: u64,
    gap_ms: u64,
    next_upstream: &'static str,
    warmup: u32,
    write_timeout_s: u64,
    servers: usize,
    action: Action,
    requests: Vec<(&'static str, &'static str)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop_oneof![Just(2u64), Just(60)],
        prop_oneof![Just(None), Just(Some("fin")), Just(Some("rst"))],
        prop_oneof![Just(5u64), Just(0)],
        prop_oneof![Just(0u64), Just(5500)],
        prop_oneof![Just("error timeout"), Just("off"), Just("error timeout non_idempotent")],
        0u32..3,
        prop_oneof![Just(0u64), Just(3)],
        1usize..3,
        prop_oneof![Just(Action::None), Just(Action::None), Just(Action::Crash)],
        prop::collection::vec(
            (
                prop_oneof![Just("GET"), Just("POST")],
                prop_oneof![Just("/ok"), Just("/panic"), Just("/sleep?ms=1000"), Just("/sleep?ms=5000"), Just("/recover-panic")]
            ),
            1..4,
        ),
    )
        .prop_map(|(keepalive, kt, race, idle_s, gap_ms, next_upstream, warmup, wt, servers, action, requests)| Case {
            keepalive,
            nginx_keepalive_timeout_s: kt,
            race,
            idle_s,
            gap_ms,
            next_upstream,
            warmup,
            write_timeout_s: wt,
            servers,
            action,
            requests,
        })
}

fn scenario(c: &Case) -> Scenario {
    Scenario {
        name: "prop".into(),
        title: "random".into(),
        remedy_of: None,
        mechanism: String::new(),
        fix: String::new(),
        go: GoSettings {
            idle_timeout: (c.idle_s > 0).then(|| format!("{}s", c.idle_s)),
            write_timeout: (c.write_timeout_s > 0).then(|| format!("{}s", c.write_timeout_s)),
            idle_race: c.race.map(String::from),
            keepalives: true,
            servers: c.servers,
            ..GoSettings::default()
        },
        nginx: NginxSettings {
            keepalive: c.keepalive.then_some(16),
            keepalive_timeout: Some(format!("{}s", c.nginx_keepalive_timeout_s)),
            http_version: c.keepalive.then(|| "1.1".to_string()),
            clear_connection: c.keepalive,
            next_upstream: Some(c.next_upstream.into()),
            ..NginxSettings::default()
        },
        workload: Workload { warmup: c.warmup, gap: Some(format!("{}ms", c.gap_ms)), action: c.action, ..Workload::default() },
        requests: c
            .requests
            .iter()
            .map(|(m, p)| RequestGroup { method: m.to_string(), path: p.to_string(), body: if *m == "POST" { 100 } else { 0 }, count: 1, expect: Expect::default() })
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, max_shrink_iters: 8, ..ProptestConfig::default() })]

    #[test]
    fn live_runs_match_the_oracle(c in case()) {
        let s = scenario(&c);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let r = rt.block_on(runner::run(&s, &RunOptions::default())).unwrap();
        let preds = oracle::predict(&s).unwrap();
        prop_assert_eq!(preds.len(), r.observations.len());
        for (i, (p, o)) in preds.iter().zip(&r.observations).enumerate() {
            if let Err(e) = oracle::matches(p, o) {
                return Err(TestCaseError::fail(format!("request {} ({} {}): {e}\ncase: {c:?}", i + 1, o.method, o.path)));
            }
        }
    }
}
