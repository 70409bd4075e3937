//! `scenarios matrix`: Go IdleTimeout × nginx keepalive_timeout × method,
//! each cell a natural-race sweep (request gaps around IdleTimeout), giving
//! the measured 502 and retry rates next to what the rules predict.

use crate::runner::{self, RunOptions};
use crate::Error;
use crate::scenario::{Expect, GoSettings, NginxSettings, RequestGroup, Scenario, Sweep, Workload};
use serde::Serialize;
use std::time::Duration;

/// What a matrix measures: the cells (IdleTimeout × keepalive_timeout ×
/// method) and how each cell's request gaps are drawn.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Plan {
    #[serde(skip)]
    #[schemars(skip)]
    pub idle: Vec<Duration>,
    #[serde(skip)]
    #[schemars(skip)]
    pub keepalive: Vec<Duration>,
    pub methods: Vec<String>,
    /// Requests per cell.
    pub count: u32,
    /// The gaps' range at article scale; `None`: ±1 % around IdleTimeout.
    #[serde(skip)]
    #[schemars(skip)]
    pub gaps: Option<(Duration, Duration)>,
    pub sweep: Sweep,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Cell {
    pub idle_timeout: String,
    pub keepalive_timeout: String,
    pub method: String,
    pub requests: usize,
    pub client_502: usize,
    pub retried: usize,
    /// 95 % Wilson score intervals of the two rates, as fractions.
    pub client_502_ci: (f64, f64),
    pub retried_ci: (f64, f64),
    /// nginx can hold a connection past Go's idle limit: the race is possible.
    pub race_possible: bool,
    /// Failures (a 502 at the client, or a retry) by achieved gap, in
    /// buckets of `bucket_ms` at run scale.
    pub buckets: Vec<Bucket>,
    /// [`BUCKET_MS`], or a 40th of a wider range of gaps.
    pub bucket_ms: f64,
    /// Where buckets fail at least half as often as the peak: the window's
    /// extent (from the first such bucket's lower edge to the last's upper).
    pub window_ms: Option<(f64, f64)>,
    /// The bucket with the highest failure rate (run scale, its middle);
    /// `None` without failures.
    pub centre_gap_ms: Option<f64>,
    /// nginx's error classes over the cell's requests ("premature-close":
    /// Go's FIN came first; "reset": request bytes reached Go between its
    /// deadline and its close).
    pub errors: std::collections::BTreeMap<String, usize>,
    /// How far the achieved gaps landed from the planned ones (ms).
    pub gap_error_mean_ms: f64,
    pub gap_error_p99_ms: f64,
    pub gap_error_max_ms: f64,
    /// Requests whose gap landed more than [`pacing_limit_ms`] off plan:
    /// they may belong to another bucket, in or out of the window.
    #[serde(default)]
    pub off_plan: usize,
}

/// Width of the gap buckets the window is located in (run scale), for
/// ranges up to 4 ms; wider ranges get 40 buckets.
pub const BUCKET_MS: f64 = 0.1;

/// The bucket width for gaps spanning `range_ms`.
pub fn bucket_width(range_ms: f64) -> f64 {
    if range_ms <= 40.0 * BUCKET_MS {
        BUCKET_MS
    } else {
        (range_ms / 40.0 / BUCKET_MS).ceil() * BUCKET_MS
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Bucket {
    /// The bucket's lower edge (run scale).
    pub gap_ms: f64,
    pub requests: usize,
    pub failures: usize,
}

impl Cell {
    fn rate(&self, n: usize) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            n as f64 / self.requests as f64
        }
    }

    pub fn client_502_rate(&self) -> f64 {
        self.rate(self.client_502)
    }

    pub fn retried_rate(&self) -> f64 {
        self.rate(self.retried)
    }
}

/// The 95 % Wilson score interval of `k` successes in `n` trials: unlike
/// the normal approximation it stays inside [0, 1] and is honest at 0 of n.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let mid = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z * ((p * (1.0 - p) + z2 / (4.0 * n)) / n).sqrt() / (1.0 + z2 / n);
    ((mid - half).max(0.0), (mid + half).min(1.0))
}

/// Where failures fall: buckets of `width` ms, the middle of the bucket
/// with the highest failure rate (taken with its adjacent buckets, and
/// among those with at least 5 requests, so one unlucky request does not
/// make a peak), and the span of buckets failing at least half as often.
pub struct Located {
    pub buckets: Vec<Bucket>,
    pub peak: Option<f64>,
    pub window: Option<(f64, f64)>,
}

pub fn locate(samples: &[(f64, bool)], width: f64) -> Located {
    let round = |x: f64| (x * 1e6).round() / 1e6;
    let mut buckets: Vec<Bucket> = Vec::new();
    for &(gap, failed) in samples {
        let edge = round((gap / width).floor() * width);
        match buckets.iter_mut().find(|b| b.gap_ms == edge) {
            Some(b) => {
                b.requests += 1;
                b.failures += usize::from(failed);
            }
            None => buckets.push(Bucket { gap_ms: edge, requests: 1, failures: usize::from(failed) }),
        }
    }
    buckets.sort_by(|a, b| a.gap_ms.total_cmp(&b.gap_ms));
    // Each bucket's rate over it and its adjacent buckets: at a few dozen
    // requests a bucket, single buckets put the peak anywhere in the window.
    let smoothed: Vec<(f64, usize, usize)> = (0..buckets.len())
        .map(|i| {
            let b = &buckets[i];
            let (mut n, mut k) = (0, 0);
            for c in &buckets[i.saturating_sub(1)..(i + 2).min(buckets.len())] {
                if (c.gap_ms - b.gap_ms).abs() <= width * 1.01 {
                    n += c.requests;
                    k += c.failures;
                }
            }
            (b.gap_ms, n, k)
        })
        .collect();
    let rate = |&(_, n, k): &(f64, usize, usize)| k as f64 / n as f64;
    let filled: Vec<&(f64, usize, usize)> = smoothed.iter().filter(|b| b.1 >= 5).collect();
    let top = filled.iter().filter(|b| b.2 > 0).max_by(|a, b| rate(a).total_cmp(&rate(b))).copied();
    let peak = top.map(|b| round(b.0 + width / 2.0));
    let window = top.and_then(|top| {
        let half: Vec<&&(f64, usize, usize)> = filled.iter().filter(|b| rate(b) >= rate(top) / 2.0).collect();
        Some((half.first()?.0, round(half.last()?.0 + width)))
    });
    Located { buckets, peak, window }
}

fn fmt_secs(d: Duration) -> String {
    nginx_model::time::format(d)
}

/// The scenario one cell runs; `gaps` at article scale, by default ±1 %
/// around IdleTimeout.
pub fn cell_scenario(idle: Duration, keepalive_timeout: Duration, method: &str, count: u32) -> Scenario {
    let plan = Plan {
        idle: vec![idle],
        keepalive: vec![keepalive_timeout],
        methods: vec![method.into()],
        count,
        gaps: None,
        sweep: Sweep::Linear,
        seed: 0,
    };
    plan_scenario(&plan, idle, keepalive_timeout, method)
}

fn plan_scenario(plan: &Plan, idle: Duration, keepalive_timeout: Duration, method: &str) -> Scenario {
    let (from, to) = plan.gaps.unwrap_or((idle.mul_f64(0.99), idle.mul_f64(1.01)));
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
            // Go's syntax keeps sub-millisecond gaps (nginx's rounds to ms).
            sweep_from: Some(go_model::godur::format(from)),
            sweep_to: Some(go_model::godur::format(to)),
            sweep: plan.sweep,
            seed: plan.seed,
            ..Workload::default()
        },
        requests: vec![RequestGroup {
            method: method.into(),
            path: "/ok".into(),
            body: if method == "POST" { 100 } else { 0 },
            count: plan.count,
            client_pause: None,
            expect: Expect::default(),
        }],
    }
}

pub async fn run(plan: &Plan, opts: &RunOptions, mut progress: impl FnMut(usize, usize, &str)) -> Result<Vec<Cell>, Error> {
    let total = plan.idle.len() * plan.keepalive.len() * plan.methods.len();
    let mut cells = Vec::new();
    for &i in &plan.idle {
        for &k in &plan.keepalive {
            for m in &plan.methods {
                let s = plan_scenario(plan, i, k, m);
                progress(cells.len() + 1, total, &s.name);
                let r = runner::run(&s, opts).await?;
                cells.push(measure(&s, &r, opts.scale, i, k, m));
            }
        }
    }
    Ok(cells)
}

/// One cell's figures from its run: rates with their intervals, where the
/// failures fall, and how well the gaps kept to plan.
fn measure(s: &Scenario, r: &runner::RunResult, scale: f64, idle: Duration, keepalive: Duration, method: &str) -> Cell {
    let n = r.observations.len();
    let client_502 = r.count_status(502);
    let retried = r.observations.iter().filter(|o| o.upstream_status.len() > 1).count();
    let samples: Vec<(f64, bool)> = r
        .observations
        .iter()
        .map(|o| (o.gap_ms, o.status == Some(502) || o.upstream_status.len() > 1))
        .collect();
    // Buckets by the planned range: a few late gaps do not coarsen them.
    let planned: Vec<f64> = (0..n as u32).map(|k| runner::gap_before(s, scale, k, n as u32).as_secs_f64() * 1e3).collect();
    let lo = planned.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = planned.iter().copied().fold(0.0, f64::max);
    let bucket_ms = bucket_width(if lo.is_finite() { hi - lo } else { 0.0 });
    let Located { buckets, peak: centre_gap_ms, window: window_ms } = locate(&samples, bucket_ms);
    let mut errors: Vec<f64> = planned.iter().zip(&r.observations).map(|(p, o)| (o.gap_ms - p).abs()).collect();
    errors.sort_by(f64::total_cmp);
    Cell {
        idle_timeout: fmt_secs(idle),
        keepalive_timeout: fmt_secs(keepalive),
        method: method.to_string(),
        requests: n,
        client_502,
        retried,
        client_502_ci: wilson(client_502, n),
        retried_ci: wilson(retried, n),
        race_possible: crate::oracle::idle_race_possible(&crate::setup::go_config(s, 1.0), keepalive),
        buckets,
        bucket_ms,
        window_ms,
        centre_gap_ms,
        errors: r.observations.iter().flat_map(|o| o.errors.iter()).fold(Default::default(), |mut m, e| {
            *m.entry(e.clone()).or_insert(0) += 1;
            m
        }),
        gap_error_mean_ms: if errors.is_empty() { 0.0 } else { errors.iter().sum::<f64>() / errors.len() as f64 },
        gap_error_p99_ms: errors.get((errors.len().saturating_sub(1) * 99) / 100).copied().unwrap_or(0.0),
        gap_error_max_ms: errors.last().copied().unwrap_or(0.0),
        off_plan: errors.iter().filter(|e| **e > pacing_limit_ms(bucket_ms)).count(),
    }
}

pub fn render(cells: &[Cell]) -> String {
    let pct = |x: f64| x * 100.0;
    let ci = |(lo, hi): (f64, f64)| format!("[{:.1}-{:.1}]", pct(lo), pct(hi));
    let mut s = format!(
        "{:<6} {:<9} {:<6} {:>5} {:>5} {:<11} {:>6} {:<11} {:>8} {}\n",
        "Idle", "keepalive", "method", "req", "502%", "95% CI", "retry%", "95% CI", "peak", "rule"
    );
    for c in cells {
        s.push_str(&crate::report::fit(
            &format!(
                "{:<6} {:<9} {:<6} {:>5} {:>5.1} {:<11} {:>6.1} {:<11} {:>8} {}",
                c.idle_timeout,
                c.keepalive_timeout,
                c.method,
                c.requests,
                pct(c.client_502_rate()),
                ci(c.client_502_ci),
                pct(c.retried_rate()),
                ci(c.retried_ci),
                match (c.bucket_ms > BUCKET_MS, c.window_ms, c.centre_gap_ms) {
                    (true, Some((a, b)), _) => format!("{a:.0}-{b:.0}ms"),
                    (_, _, Some(g)) => format!("{g:.2}ms"),
                    _ => "-".into(),
                },
                if c.race_possible { "race" } else { "safe" }
            ),
            crate::report::width(),
        ));
        s.push('\n');
    }
    s
}

/// The cells of a matrix measured before (its `--json`).
pub fn read_baseline(path: &std::path::Path) -> Result<Vec<Cell>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
    #[derive(serde::Deserialize)]
    struct Doc {
        cells: Vec<Cell>,
    }
    serde_json::from_str::<Doc>(&text)
        .map(|d| d.cells)
        .map_err(|e| Error::Usage(format!("--baseline {}: not a `scenarios matrix --json` report: {e}", path.display())))
}

/// Rates within this factor of the baseline's agree.
pub const RATIO_BOUNDS: (f64, f64) = (0.67, 1.5);
/// Peaks this close (ms, run scale) agree.
pub const CENTRE_TOLERANCE_MS: f64 = 0.2;

/// How far (ms) a request's achieved gap may land from its planned one and
/// still count where the plan put it: past it (a loaded machine delays the
/// runner, nginx and Go alike) it may have fallen in or out of a window a
/// fraction of a millisecond wide. At least two buckets.
pub fn pacing_limit_ms(bucket_ms: f64) -> f64 {
    (2.0 * bucket_ms).max(1.0)
}

/// One cell against its baseline: the failure rate (502s plus retries)
/// as a ratio, the peaks' distance.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Comparison {
    pub idle_timeout: String,
    pub keepalive_timeout: String,
    pub method: String,
    pub rate: f64,
    pub baseline_rate: f64,
    /// rate / baseline_rate; `None` when the baseline has no failures.
    pub ratio: Option<f64>,
    pub centre_gap_ms: Option<f64>,
    pub baseline_centre_gap_ms: Option<f64>,
    pub window_ms: Option<(f64, f64)>,
    pub baseline_window_ms: Option<(f64, f64)>,
    /// Buckets wider than [`BUCKET_MS`]: compared by the window's extent.
    pub coarse: bool,
    /// The worse p99 pacing error of the two runs (ms), and how far off
    /// plan a request may land ([`pacing_limit_ms`]).
    pub pacing_p99_ms: f64,
    pub pacing_limit_ms: f64,
    /// Requests paced further off plan than that: this run's, the baseline's.
    #[serde(default)]
    pub off_plan: (usize, usize),
    /// `agrees` holds however the off-plan requests went (each counted as
    /// a failure, or not): otherwise it says nothing, and the comparison
    /// fails as inconclusive.
    pub conclusive: bool,
    pub agrees: bool,
}

/// A rate agrees with the baseline's within [`RATIO_BOUNDS`]; with no
/// failures in the baseline, only no failures agree.
fn rates_agree(rate: f64, baseline_rate: f64) -> bool {
    if baseline_rate > 0.0 {
        (RATIO_BOUNDS.0..=RATIO_BOUNDS.1).contains(&(rate / baseline_rate))
    } else {
        rate == 0.0
    }
}

pub fn compare(cells: &[Cell], baseline: &[Cell]) -> Vec<Comparison> {
    cells
        .iter()
        .filter_map(|c| {
            let b = baseline.iter().find(|b| b.idle_timeout == c.idle_timeout && b.keepalive_timeout == c.keepalive_timeout && b.method == c.method)?;
            let rate = c.rate(c.client_502 + c.retried);
            let baseline_rate = if b.requests == 0 { 0.0 } else { (b.client_502 + b.retried) as f64 / b.requests as f64 };
            let ratio = (baseline_rate > 0.0).then(|| rate / baseline_rate);
            // A narrow window is located by its peak; a wide one (coarser
            // buckets: a plateau has no telling peak) by its edges.
            let near = if c.bucket_ms <= BUCKET_MS {
                match (c.centre_gap_ms, b.centre_gap_ms) {
                    (Some(x), Some(y)) => (x - y).abs() <= CENTRE_TOLERANCE_MS + 1e-9,
                    (None, None) => true,
                    _ => false,
                }
            } else {
                // Two buckets: an edge is where a bucket of ~7 requests
                // crosses half the peak, which noise moves by one.
                let tol = 2.0 * c.bucket_ms.max(b.bucket_ms) + 1e-9;
                match (c.window_ms, b.window_ms) {
                    (Some(x), Some(y)) => (x.0 - y.0).abs() <= tol && (x.1 - y.1).abs() <= tol,
                    (None, None) => true,
                    _ => false,
                }
            };
            let in_bounds = rates_agree(rate, baseline_rate);
            // The verdict stands only if it holds however the requests paced
            // off plan went: each of them a failure, or none.
            let rate_of = |f: usize, n: usize| if n == 0 { 0.0 } else { f as f64 / n as f64 };
            let (fc, fb) = (c.client_502 + c.retried, b.client_502 + b.retried);
            let bounds = |f: usize, off: usize, n: usize| [rate_of(f.saturating_sub(off), n), rate_of((f + off).min(n), n)];
            let conclusive = bounds(fc, c.off_plan, c.requests)
                .into_iter()
                .all(|x| bounds(fb, b.off_plan, b.requests).into_iter().all(|y| rates_agree(x, y) == in_bounds));
            Some(Comparison {
                idle_timeout: c.idle_timeout.clone(),
                keepalive_timeout: c.keepalive_timeout.clone(),
                method: c.method.clone(),
                rate,
                baseline_rate,
                ratio,
                centre_gap_ms: c.centre_gap_ms,
                baseline_centre_gap_ms: b.centre_gap_ms,
                window_ms: c.window_ms,
                baseline_window_ms: b.window_ms,
                coarse: c.bucket_ms > BUCKET_MS,
                pacing_p99_ms: c.gap_error_p99_ms.max(b.gap_error_p99_ms),
                pacing_limit_ms: pacing_limit_ms(c.bucket_ms.max(b.bucket_ms)),
                off_plan: (c.off_plan, b.off_plan),
                conclusive,
                agrees: in_bounds && near,
            })
        })
        .collect()
}

pub fn render_comparison(cmp: &[Comparison]) -> String {
    let mut s = format!(
        "\nagainst the baseline (failures = 502s + retries; agree: {}–{}×, peaks within\n{} ms, or a wide window's edges within two buckets)\n{:<6} {:<9} {:<6} {:>7} {:>9} {:>6} {:>8} {:>9}  {}\n",
        RATIO_BOUNDS.0, RATIO_BOUNDS.1, CENTRE_TOLERANCE_MS, "Idle", "keepalive", "method", "rate", "baseline", "ratio", "peak", "baseline", "verdict"
    );
    let peak = |g: Option<f64>| g.map(|g| format!("{g:.2}ms")).unwrap_or_else(|| "-".into());
    let span = |w: Option<(f64, f64)>| w.map(|(a, b)| format!("{a:.0}-{b:.0}ms")).unwrap_or_else(|| "-".into());
    for c in cmp {
        // Wide windows are compared by their extent (see `compare`).
        let (mine, theirs) = if c.coarse { (span(c.window_ms), span(c.baseline_window_ms)) } else { (peak(c.centre_gap_ms), peak(c.baseline_centre_gap_ms)) };
        s.push_str(&crate::report::fit(
            &format!(
                "{:<6} {:<9} {:<6} {:>6.1}% {:>8.1}% {:>6} {:>8} {:>9}  {}",
                c.idle_timeout,
                c.keepalive_timeout,
                c.method,
                c.rate * 100.0,
                c.baseline_rate * 100.0,
                c.ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into()),
                mine,
                theirs,
                if !c.conclusive {
                    "INCONCLUSIVE"
                } else if c.agrees {
                    "agrees"
                } else {
                    "DIFFERS"
                }
            ),
            crate::report::width(),
        ));
        s.push('\n');
    }
    if let Some(c) = cmp.iter().filter(|c| !c.conclusive).max_by_key(|c| c.off_plan.0 + c.off_plan.1) {
        s.push_str(&crate::report::wrap_words(
            &format!(
                "INCONCLUSIVE: {} requests of this run and {} of the baseline's landed more than {:.2} ms off their planned gaps (p99 {:.2} ms), enough to change the verdict: the machine was too busy to place them in a window this narrow. Run both again on a quieter machine.",
                c.off_plan.0, c.off_plan.1, c.pacing_limit_ms, c.pacing_p99_ms
            ),
            crate::report::width(),
        )
        .join("\n"));
        s.push('\n');
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

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: (f64, f64), b: (f64, f64)) -> bool {
        (a.0 - b.0).abs() < 5e-4 && (a.1 - b.1).abs() < 5e-4
    }

    #[test]
    fn wilson_intervals_match_the_textbook_values() {
        // (k, n) → the 95 % Wilson score interval.
        let table = [((0, 10), (0.0, 0.2775)), ((5, 10), (0.2366, 0.7634)), ((10, 10), (0.7225, 1.0)), ((160, 1000), (0.1386, 0.1840))];
        for ((k, n), want) in table {
            assert!(close(wilson(k, n), want), "wilson({k}, {n}) = {:?}, want {want:?}", wilson(k, n));
        }
        assert_eq!(wilson(0, 0), (0.0, 1.0), "no trials: anything is possible");
    }

    #[test]
    fn the_peak_is_the_bucket_with_the_highest_rate_among_well_filled_ones() {
        let mut samples = Vec::new();
        // 99.9x: 2 of 10 fail; 100.1x: 6 of 10; 100.3x: the one sample fails.
        for i in 0..10 {
            samples.push((99.91 + 0.001 * f64::from(i), i < 2));
            samples.push((100.12, i < 6));
        }
        samples.push((100.35, true));
        let l = locate(&samples, BUCKET_MS);
        assert_eq!(l.buckets.iter().map(|b| (b.requests, b.failures)).collect::<Vec<_>>(), vec![(10, 2), (10, 6), (1, 1)]);
        assert_eq!(l.peak, Some(100.15), "a lone failing request does not make a peak");
        assert_eq!(l.window, Some((100.1, 100.2)), "2 of 10 is under half the peak's 6 of 10");
        assert_eq!(locate(&[(100.0, false); 8], BUCKET_MS).peak, None);
        assert_eq!((bucket_width(1.2), bucket_width(20.0)), (0.1, 0.5));
    }

    fn cell(method: &str, requests: usize, failures: usize, centre: Option<f64>) -> Cell {
        Cell {
            off_plan: 0,
            idle_timeout: "100ms".into(),
            keepalive_timeout: "60s".into(),
            method: method.into(),
            requests,
            client_502: if method == "POST" { failures } else { 0 },
            retried: if method == "GET" { failures } else { 0 },
            client_502_ci: (0.0, 1.0),
            retried_ci: (0.0, 1.0),
            race_possible: true,
            buckets: vec![],
            bucket_ms: BUCKET_MS,
            window_ms: None,
            centre_gap_ms: centre,
            errors: Default::default(),
            gap_error_mean_ms: 0.0,
            gap_error_p99_ms: 0.0,
            gap_error_max_ms: 0.0,
        }
    }

    #[test]
    fn a_comparison_agrees_within_the_ratio_bounds_and_the_peak_tolerance() {
        let real = [cell("GET", 1000, 160, Some(100.15)), cell("POST", 1000, 140, Some(100.15))];
        let baseline = real.to_vec();
        // (emulated failures, emulated peak) → agrees
        let table = [
            (130, Some(100.15), true),
            (108, Some(100.25), true),
            (107, Some(100.15), false),
            (90, Some(100.15), false),
            (250, Some(100.15), false),
            (160, Some(100.45), false),
            (160, None, false),
        ];
        for (failures, centre, agrees) in table {
            let emu = [cell("GET", 1000, failures, centre)];
            let cmp = compare(&emu, &baseline);
            assert_eq!(cmp.len(), 1);
            assert_eq!(cmp[0].agrees, agrees, "{failures} failures, peak {centre:?}: {:?}", cmp[0]);
        }
        let none = compare(&[cell("GET", 10, 0, None)], &[cell("GET", 10, 0, None)]);
        assert!(none[0].agrees && none[0].ratio.is_none(), "no failures on either side agree");
    }

    #[test]
    fn a_comparison_of_runs_paced_off_plan_is_inconclusive() {
        let paced = |off: usize| Cell { off_plan: off, gap_error_p99_ms: if off > 10 { 2.0 } else { 0.2 }, ..cell("GET", 1000, 160, Some(100.15)) };
        // 160 failures of 1000 on both sides; (this run's off-plan requests,
        // the baseline's) → conclusive: the ratio stays within 0.67–1.5×
        // however they went (170/150 = 1.13; 200/120 = 1.67; 160/100 = 1.6).
        for (mine, theirs, conclusive) in [(0, 0, true), (10, 10, true), (20, 0, true), (40, 40, false), (0, 60, false)] {
            let cmp = compare(&[paced(mine)], &[paced(theirs)]);
            assert_eq!(cmp[0].conclusive, conclusive, "off plan {mine} vs {theirs}");
            assert_eq!(cmp[0].off_plan, (mine, theirs));
            assert!(cmp[0].agrees, "same rates and peaks");
            let text = render_comparison(&cmp);
            assert_eq!(text.contains("INCONCLUSIVE"), !conclusive, "{text}");
        }
        // A comparison that differs is inconclusive too when the off-plan
        // requests could make it agree.
        let far = Cell { retried: 100, ..paced(0) };
        assert!(!compare(std::slice::from_ref(&far), &[paced(0)])[0].agrees);
        assert!(compare(std::slice::from_ref(&far), &[paced(0)])[0].conclusive);
        assert!(!compare(&[Cell { off_plan: 30, ..far }], &[paced(0)])[0].conclusive, "130/160 = 0.81 would agree");
        assert_eq!(pacing_limit_ms(0.1), 1.0);
        assert_eq!(pacing_limit_ms(1.0), 2.0, "two buckets of a wide range");
    }
}
