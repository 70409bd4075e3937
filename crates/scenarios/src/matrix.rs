//! `scenarios matrix`: Go IdleTimeout × nginx keepalive_timeout × method,
//! each cell a natural-race sweep (request gaps around IdleTimeout), giving
//! the measured 502 and retry rates next to what the rules predict.

use crate::runner::{self, RunOptions};
use crate::Error;
use crate::scenario::{Expect, GoSettings, NginxSettings, RequestGroup, Scenario, Workload};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Cell {
    pub idle_timeout: String,
    pub keepalive_timeout: String,
    pub method: String,
    pub requests: usize,
    pub client_502: usize,
    pub retried: usize,
    /// nginx can hold a connection past Go's idle limit: the race is possible.
    pub race_possible: bool,
}

fn fmt_secs(d: Duration) -> String {
    nginx_model::time::format(d)
}

/// The scenario one cell runs.
pub fn cell_scenario(idle: Duration, keepalive_timeout: Duration, method: &str, count: u32) -> Scenario {
    Scenario {
        name: format!("matrix-{}-{}-{method}", fmt_secs(idle), fmt_secs(keepalive_timeout)),
        title: "matrix cell".into(),
        remedy_of: None,
        mechanism: "idle-race".into(),
        explanation: String::new(),
        fix: String::new(),
        go: GoSettings { idle_timeout: Some(fmt_secs(idle)), keepalives: true, servers: 1, ..GoSettings::default() },
        nginx: NginxSettings {
            keepalive: Some(16),
            keepalive_timeout: Some(fmt_secs(keepalive_timeout)),
            http_version: Some("1.1".into()),
            clear_connection: true,
            ..NginxSettings::default()
        },
        workload: Workload {
            warmup: 1,
            sweep_from: Some(fmt_secs(idle.mul_f64(0.99))),
            sweep_to: Some(fmt_secs(idle.mul_f64(1.01))),
            ..Workload::default()
        },
        requests: vec![RequestGroup {
            method: method.into(),
            path: "/ok".into(),
            body: if method == "POST" { 100 } else { 0 },
            count,
            expect: Expect::default(),
        }],
    }
}

pub async fn run(
    idle: &[Duration],
    keepalive: &[Duration],
    methods: &[String],
    count: u32,
    opts: &RunOptions,
    mut progress: impl FnMut(usize, usize, &str),
) -> Result<Vec<Cell>, Error> {
    let total = idle.len() * keepalive.len() * methods.len();
    let mut cells = Vec::new();
    for &i in idle {
        for &k in keepalive {
            for m in methods {
                let s = cell_scenario(i, k, m, count);
                progress(cells.len() + 1, total, &s.name);
                let r = runner::run(&s, opts).await?;
                cells.push(Cell {
                    idle_timeout: fmt_secs(i),
                    keepalive_timeout: fmt_secs(k),
                    method: m.clone(),
                    requests: r.observations.len(),
                    client_502: r.count_status(502),
                    retried: r.observations.iter().filter(|o| o.upstream_status.len() > 1).count(),
                    race_possible: crate::oracle::idle_race_possible(&crate::setup::go_config(&s, 1.0), k),
                });
            }
        }
    }
    Ok(cells)
}

pub fn render(cells: &[Cell]) -> String {
    let mut s = format!(
        "{:<14}{:<20}{:<8}{:>10}{:>10}{:>10}   {}\n",
        "IdleTimeout", "keepalive_timeout", "method", "requests", "502 %", "retried %", "rules say"
    );
    for c in cells {
        let pct = |n: usize| if c.requests == 0 { 0.0 } else { 100.0 * n as f64 / c.requests as f64 };
        s.push_str(&format!(
            "{:<14}{:<20}{:<8}{:>10}{:>9.1}%{:>9.1}%   {}\n",
            c.idle_timeout,
            c.keepalive_timeout,
            c.method,
            c.requests,
            pct(c.client_502),
            pct(c.retried),
            if c.race_possible { "race possible" } else { "safe (nginx lets go first)" }
        ));
    }
    s
}

/// A cell where nginx cannot hold a connection past Go's idle limit, yet
/// clients got 502s or nginx retried: the model's premise is broken there.
pub fn impossible_failures(c: &Cell) -> bool {
    !c.race_possible && (c.client_502 > 0 || c.retried > 0)
}

/// The matrix as JUnit: one test case per cell, its rates in
/// `<system-out>`; a cell fails only where the race cannot happen and
/// still showed 502s or retries.
pub fn junit(cells: &[Cell], properties: &[(&str, String)]) -> String {
    use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
    let mut ts = TestSuite::new("scenarios matrix");
    ts.set_timestamp(chrono::Local::now().fixed_offset());
    ts.add_properties(properties.iter().map(|(k, v)| Property::new(*k, v.as_str())));
    for c in cells {
        let status = if impossible_failures(c) {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("the race cannot happen here (keepalive_timeout {} < IdleTimeout {}), yet {} × 502 and {} retried", c.keepalive_timeout, c.idle_timeout, c.client_502, c.retried));
            s
        } else {
            TestCaseStatus::success()
        };
        let mut tc = TestCase::new(format!("IdleTimeout={} keepalive_timeout={} {}", c.idle_timeout, c.keepalive_timeout, c.method), status);
        tc.set_classname("matrix");
        tc.set_system_out(format!("{} requests: {} × 502 at the client, {} retried; race possible: {}", c.requests, c.client_502, c.retried, c.race_possible));
        ts.add_test_case(tc);
    }
    let mut report = Report::new("scenarios matrix");
    report.add_test_suite(ts);
    crate::report::junit_text(&report)
}
