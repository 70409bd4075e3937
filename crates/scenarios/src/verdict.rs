//! Verdicts: what a request was seen to do ([`Observation`]), checked against
//! a scenario's hand-written expectation ([`check`], [`judge`]). Pure data and
//! functions: the runner fills observations in, the oracle compares its
//! predictions with them.

use crate::scenario::{parse_duration, scale, Expect, RequestGroup};
use serde::Serialize;
use std::time::Duration;

/// What one client request observed, from all three sides.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Observation {
    pub group: usize,
    pub method: String,
    pub path: String,
    /// Client status; `None` when no response arrived.
    pub status: Option<u16>,
    pub body_bytes: u64,
    /// The response body ended before its framing said it would.
    pub truncated: bool,
    pub latency_ms: f64,
    pub gap_ms: f64,
    /// `$upstream_status`, one entry per attempt.
    pub upstream_status: Vec<u16>,
    pub upstream_response_time: Vec<f64>,
    /// Classes of the `[error]` lines this request caused.
    pub errors: Vec<String>,
    pub error_lines: Vec<String>,
    /// How many times the upstream handler ran for it; `None` where the
    /// upstream cannot tell (a user's own server).
    pub handler_runs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GroupVerdict {
    pub group: usize,
    pub method: String,
    pub path: String,
    pub count: u32,
    pub expect: Expect,
    pub passed: bool,
    /// One line per mismatch ("request 2: status 200, expected 502").
    pub mismatches: Vec<String>,
    /// Counts by client status, e.g. {200: 38, 502: 2}.
    pub statuses: std::collections::BTreeMap<u16, u32>,
    /// Requests that needed more than one upstream attempt.
    pub retried: u32,
    /// Expectations that could not be checked on this run, with why (a
    /// user's own server cannot report handler runs). Shown, never a pass.
    pub unchecked: Vec<String>,
}

/// Checks one observation against its group's expectation.
pub fn check(e: &Expect, o: &Observation, scale_factor: f64) -> Vec<String> {
    let mut bad = Vec::new();
    let status = o.status.map(|s| s.to_string()).unwrap_or_else(|| "none".into());
    if let Some(want) = e.status {
        if o.status != Some(want) {
            bad.push(format!("status {status}, expected {want}"));
        }
    }
    if let Some(set) = &e.status_in {
        if !o.status.is_some_and(|s| set.contains(&s)) {
            bad.push(format!("status {status}, expected one of {set:?}"));
        }
    }
    if let Some(want) = &e.upstream_status {
        if &o.upstream_status != want {
            bad.push(format!("upstream_status {:?}, expected {want:?}", o.upstream_status));
        }
    }
    if let Some(want) = &e.errors {
        if &o.errors != want {
            bad.push(format!("error log {:?}, expected {want:?}", o.errors));
        }
    }
    if let Some(set) = &e.errors_in {
        if let Some(x) = o.errors.iter().find(|c| !set.contains(c)) {
            bad.push(format!("error class {x:?} not in {set:?}"));
        }
    }
    // Not observed (a user's own server) is not checked: the report shows "?".
    if let (Some(want), Some(ran)) = (e.handler_runs, o.handler_runs) {
        if ran != want {
            bad.push(format!("handler ran {ran} times, expected {want}"));
        }
    }
    if let Some(want) = e.body_bytes {
        if o.body_bytes != want {
            bad.push(format!("{} body bytes, expected {want}", o.body_bytes));
        }
    }
    if let Some(want) = e.truncated {
        if o.truncated != want {
            bad.push(format!("truncated = {}, expected {want}", o.truncated));
        }
    }
    if let Some(min) = e.min_latency.as_deref().and_then(|d| parse_duration(d).ok()) {
        let min = ms(scale(min, scale_factor));
        // Generous: only "at least the handler time", never an upper bound.
        if o.latency_ms < min * 0.9 {
            bad.push(format!("latency {:.1} ms, expected at least {min:.1} ms", o.latency_ms));
        }
    }
    bad
}

pub fn judge(groups: &[RequestGroup], obs: &[Observation], scale_factor: f64) -> Vec<GroupVerdict> {
    groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            let mine: Vec<&Observation> = obs.iter().filter(|o| o.group == gi).collect();
            let mut mismatches = Vec::new();
            let mut statuses = std::collections::BTreeMap::new();
            let mut retried = 0;
            for (i, o) in mine.iter().enumerate() {
                *statuses.entry(o.status.unwrap_or(0)).or_insert(0) += 1;
                if o.upstream_status.len() > 1 {
                    retried += 1;
                }
                for m in check(&g.expect, o, scale_factor) {
                    mismatches.push(format!("request {}: {m}", i + 1));
                }
            }
            let mut unchecked = Vec::new();
            if g.expect.handler_runs.is_some() && mine.iter().any(|o| o.handler_runs.is_none()) {
                unchecked.push("handler_runs: this upstream cannot report how often its handler ran".to_string());
            }
            if mine.len() != g.count as usize {
                mismatches.push(format!("{} of {} requests ran", mine.len(), g.count));
            }
            GroupVerdict {
                group: gi,
                method: g.method.clone(),
                path: g.path.clone(),
                count: g.count,
                expect: g.expect.clone(),
                passed: mismatches.is_empty(),
                mismatches,
                statuses,
                retried,
                unchecked,
            }
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(handler_runs: Option<u64>) -> Observation {
        Observation {
            group: 0,
            method: "GET".into(),
            path: "/ok".into(),
            status: Some(200),
            body_bytes: 3,
            truncated: false,
            latency_ms: 1.0,
            gap_ms: 0.0,
            upstream_status: vec![200],
            upstream_response_time: vec![0.001],
            errors: vec![],
            error_lines: vec![],
            handler_runs,
        }
    }

    #[test]
    fn an_expectation_the_upstream_cannot_report_is_listed_as_unchecked() {
        let g = RequestGroup { method: "GET".into(), path: "/ok".into(), body: 0, count: 1, client_pause: None, expect: Expect { handler_runs: Some(2), ..Expect::default() } };
        let v = &judge(std::slice::from_ref(&g), &[obs(None)], 1.0)[0];
        assert_eq!(v.unchecked.len(), 1, "{v:?}");
        assert!(v.mismatches.is_empty());
        let v = &judge(std::slice::from_ref(&g), &[obs(Some(1))], 1.0)[0];
        assert!(v.unchecked.is_empty() && !v.passed, "{v:?}");
    }
}
