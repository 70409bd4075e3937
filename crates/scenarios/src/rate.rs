//! `scenarios rate`: how many 502s (and retries) an hour the natural idle
//! race gives a user's traffic.
//!
//! The race fails a request that reuses an upstream connection idle for a
//! time inside a narrow window around the moment Go closes it. So
//!
//!   failures per hour = (reuses per hour per ms of idle time, near that
//!                        moment) × (the window's effective width, ms)
//!
//! * The moment: Go 1.19 notices the idle deadline as its netpoller does
//!   (`go_model::rules::deadline_fires`: netpoll's rule plus the calibrated
//!   runtime wake, as upstream-sim fires its deadlines).
//! * The width: measured, not assumed: a calibration sweep on the emulators
//!   (uniform gaps across the window at a short IdleTimeout, with the same
//!   `--rtt`); its failure share × the swept range is the width (the window
//!   is absolute time, a few hundred µs on loopback, ≈ the RTT with
//!   distance: it does not scale with IdleTimeout).
//! * The density: nginx's keepalive cache (`nginx_model::keepalive`: LIFO
//!   checkout, LRU eviction, keepalive_timeout) run over simulated hours of
//!   the user's arrivals, counting how often a connection is reused after
//!   an idle time near the moment.
//!
//! A bounded check run then replays the traffic at compressed scale on the
//! emulators and sets what it saw beside what the same calculation predicts
//! for it.

use crate::matrix::{self, Plan};
use crate::runner::{self, RunOptions};
use crate::scenario::{Expect, GoSettings, NginxSettings, RequestGroup, Scenario, Sweep, Workload};
use crate::Error;
use go_model::rules;
use nginx_model::keepalive::{KeepaliveCache, KeepaliveSettings};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arrival {
    /// Independent arrivals (exponential gaps).
    Poisson,
    /// One every 1/rps exactly (a health check, a poller).
    Periodic,
}

/// The user's traffic and settings.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Traffic {
    pub go_idle_timeout_ms: f64,
    pub keepalive_timeout_ms: f64,
    /// nginx `keepalive N`.
    pub keepalive: usize,
    pub rps: f64,
    pub arrival: Arrival,
    /// How long the upstream holds a connection per request.
    pub latency_ms: f64,
    pub rtt_ms: f64,
    /// (method, share), shares summing to 1.
    pub method_mix: Vec<(String, f64)>,
    pub seed: u64,
}

impl Traffic {
    fn idle_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.go_idle_timeout_ms / 1e3)
    }
}

/// When Go closes a connection idle since its last response, on the
/// client's clock: the netpoll rule, the runtime's wake, and half the RTT
/// each way the FIN and the request take (a distant Go's FIN reaches nginx
/// later, the request reaches Go later: the window moves earlier by the RTT).
pub fn go_close_ms(idle_timeout: Duration, rtt: Duration) -> f64 {
    // The goroutine parks a little after the deadline is set.
    let until = idle_timeout.saturating_sub(Duration::from_micros(10));
    let notice = rules::deadline_fires(until) + Duration::from_micros(10);
    (notice.as_secs_f64() - rtt.as_secs_f64()) * 1e3
}

/// The simulation stops after this many arrivals, whatever `hours` asked
/// (at high rates a few seconds of CPU cover many simulated hours).
pub const MAX_SIMULATED_REQUESTS: u64 = 20_000_000;

/// Half-width of the neighbourhood the density is counted in (ms): wide
/// enough for a steady count, narrow against the idle times of any traffic.
const DENSITY_HALF_WIDTH_MS: f64 = 5.0;

/// Reuses of idle connections, from a simulation of nginx's cache.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Density {
    pub simulated_hours: f64,
    pub requests: u64,
    pub reuses: u64,
    /// Reuses whose idle time fell within ±[`DENSITY_HALF_WIDTH_MS`] of the close.
    pub near: u64,
    /// near / (2 × half-width) / hours: reuses per ms of idle time per hour.
    pub per_ms_per_hour: f64,
}

/// Runs nginx's keepalive cache over `hours` of arrivals and counts the
/// reuses whose idle time lands within the neighbourhood of `close_ms`.
/// Connections Go has closed well before (idle past the neighbourhood) are
/// dropped as nginx's close handler would; inside it they are counted,
/// since the density there is what the window multiplies.
pub fn density(t: &Traffic, close_ms: f64, hours: f64) -> Density {
    let settings = KeepaliveSettings {
        capacity: t.keepalive,
        timeout: Duration::from_secs_f64(t.keepalive_timeout_ms / 1e3),
        requests: 1000,
        time: Duration::from_secs(3600),
    };
    let mut cache: KeepaliveCache<(), (Duration, u32)> = KeepaliveCache::new(settings);
    let base = Instant::now();
    let at = |d: Duration| base + d;
    let horizon = Duration::from_secs_f64(hours * 3600.0);
    let latency = Duration::from_secs_f64(t.latency_ms / 1e3);
    let period = Duration::from_secs_f64(1.0 / t.rps);
    let gone_after = Duration::from_secs_f64((close_ms + DENSITY_HALF_WIDTH_MS).max(0.0) / 1e3);
    // Connections busy with a request, soonest free first: (free at, requests so far).
    let mut busy: BinaryHeap<Reverse<(Duration, u32)>> = BinaryHeap::new();
    let (mut now, mut k) = (Duration::ZERO, 0u32);
    let (mut requests, mut reuses, mut near) = (0u64, 0u64, 0u64);
    while now < horizon && requests < MAX_SIMULATED_REQUESTS {
        // Responses that finished by now go back to the cache, in order.
        while busy.peek().is_some_and(|b| b.0 .0 <= now) {
            let Some(Reverse((free, n))) = busy.pop() else { break };
            if settings.admits(n, Duration::ZERO) {
                let _ = cache.store((), (free, n), at(free));
            }
        }
        cache.expire(at(now));
        cache.retain_mut(|c| now.saturating_sub(c.conn.0) < gone_after);
        requests += 1;
        let n = match cache.checkout(&()) {
            Some(c) => {
                reuses += 1;
                let idle_ms = (now - c.conn.0).as_secs_f64() * 1e3;
                if (idle_ms - close_ms).abs() <= DENSITY_HALF_WIDTH_MS {
                    near += 1;
                }
                c.conn.1 + 1
            }
            None => 1,
        };
        busy.push(Reverse((now + latency, n)));
        // The next arrival.
        let gap = match t.arrival {
            Arrival::Periodic => period,
            Arrival::Poisson => period.mul_f64(-(1.0 - runner::unit_draw(t.seed, k)).ln()),
        };
        k = k.wrapping_add(1);
        now += gap;
    }
    // The hours actually simulated (the request bound may end it early).
    let hours = now.min(horizon).as_secs_f64() / 3600.0;
    let per_ms_per_hour = if hours > 0.0 { near as f64 / (2.0 * DENSITY_HALF_WIDTH_MS) / hours } else { 0.0 };
    Density { simulated_hours: hours, requests, reuses, near, per_ms_per_hour }
}

/// One method's calibrated window.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Window {
    pub method: String,
    pub requests: usize,
    /// Failures: 502s at the client, or retries nginx hid.
    pub failures: usize,
    pub swept_ms: f64,
    /// failures / requests × swept range.
    pub width_ms: f64,
    pub centre_gap_ms: Option<f64>,
}

/// The calibration: the emulators swept across the window at a short
/// IdleTimeout, with the user's RTT.
pub const CALIBRATION_IDLE: Duration = Duration::from_millis(20);

pub async fn calibrate(t: &Traffic, count: u32, opts: &RunOptions, progress: impl FnMut(usize, usize, &str)) -> Result<Vec<Window>, Error> {
    let rtt = Duration::from_secs_f64(t.rtt_ms / 1e3);
    let centre = go_close_ms(CALIBRATION_IDLE, rtt);
    // The window lies between Go's close less the RTT and the close itself.
    let (from, to) = ((centre - t.rtt_ms - 1.5).max(0.1), centre + 1.5);
    let plan = Plan {
        idle: vec![CALIBRATION_IDLE],
        keepalive: vec![Duration::from_secs(60)],
        methods: t.method_mix.iter().map(|(m, _)| m.clone()).collect(),
        count,
        gaps: Some((Duration::from_secs_f64(from / 1e3), Duration::from_secs_f64(to / 1e3))),
        sweep: Sweep::Uniform,
        seed: t.seed,
    };
    let opts = RunOptions { scale: 1.0, rtt: Some(rtt), ..opts.clone() };
    let cells = matrix::run(&plan, &opts, progress).await?;
    Ok(cells
        .iter()
        .map(|c| {
            let failures = c.client_502 + c.retried;
            Window {
                method: c.method.clone(),
                requests: c.requests,
                failures,
                swept_ms: to - from,
                width_ms: if c.requests == 0 { 0.0 } else { failures as f64 / c.requests as f64 * (to - from) },
                centre_gap_ms: c.centre_gap_ms,
            }
        })
        .collect())
}

/// Failures per hour for one method.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MethodRate {
    pub method: String,
    pub share: f64,
    pub width_ms: f64,
    /// A GET is retried (the client sees 200); other methods get a 502.
    pub retried: bool,
    pub per_hour: f64,
    pub per_million_requests: f64,
}

pub fn predict(t: &Traffic, d: &Density, windows: &[Window]) -> Vec<MethodRate> {
    let requests_per_hour = t.rps * 3600.0;
    t.method_mix
        .iter()
        .map(|(m, share)| {
            let width_ms = windows.iter().find(|w| &w.method == m).map_or(0.0, |w| w.width_ms);
            let per_hour = d.per_ms_per_hour * share * width_ms;
            MethodRate {
                method: m.clone(),
                share: *share,
                width_ms,
                retried: !nginx_model::retry::non_idempotent(m),
                per_hour,
                per_million_requests: per_hour / (requests_per_hour * share) * 1e6,
            }
        })
        .collect()
}

/// The check run: the traffic at compressed scale on the emulators, one
/// request at a time (exact for traffic that rarely overlaps, where the
/// idle gaps are the arrival gaps; said so when rps × latency is not small).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Check {
    pub scale: f64,
    pub requests: usize,
    pub predicted_failures: f64,
    pub observed_failures: usize,
    /// The Poisson 95 % range of the observed count around the prediction.
    pub expected_range: (usize, usize),
    pub consistent: bool,
    pub note: Option<String>,
}

/// The longest a check run is planned to take.
pub const CHECK_WALL: Duration = Duration::from_secs(60);

pub async fn check(t: &Traffic, windows: &[Window], requests: u32, opts: &RunOptions) -> Result<Check, Error> {
    // Compress so that the mean gap is about the calibration's IdleTimeout
    // scale: a run of `requests` takes seconds, not hours.
    let scale = (CALIBRATION_IDLE.as_secs_f64() * 1e3 / t.go_idle_timeout_ms).min(1.0);
    let idle = t.idle_timeout().mul_f64(scale);
    let mean_gap = Duration::from_secs_f64(scale / t.rps);
    let cap = (idle * 4).max(mean_gap * 8);
    let (sweep, from, to) = match t.arrival {
        Arrival::Poisson => (Sweep::Poisson, mean_gap, cap),
        Arrival::Periodic => (Sweep::Linear, mean_gap, mean_gap),
    };
    // A bounded run: about CHECK_WALL of mean gaps, whatever was asked.
    let requests = requests.min((CHECK_WALL.as_secs_f64() / mean_gap.as_secs_f64().max(1e-6)) as u32).max(1);
    let (m, _) = t.method_mix.iter().max_by(|a, b| a.1.total_cmp(&b.1)).cloned().unwrap_or(("GET".into(), 1.0));
    let s = check_scenario(idle, Duration::from_secs_f64(t.keepalive_timeout_ms / 1e3 * scale), &m, requests, sweep, from, to, t.seed);
    let rtt = Duration::from_secs_f64(t.rtt_ms / 1e3);
    let r = runner::run(&s, &RunOptions { scale: 1.0, rtt: Some(rtt), ..opts.clone() }).await?;
    let observed = r.observations.iter().filter(|o| o.status == Some(502) || o.upstream_status.len() > 1).count();
    // The same calculation for this run: the density of its gaps near the
    // close, times the width.
    let close = go_close_ms(idle, rtt);
    let width = windows.iter().find(|w| w.method == m).map_or(0.0, |w| w.width_ms);
    let n = r.observations.len() as f64;
    let gap_density = match t.arrival {
        // Exponential gaps with this mean: density at the close, per ms.
        Arrival::Poisson => {
            let mean = mean_gap.as_secs_f64() * 1e3;
            (-close / mean).exp() / mean
        }
        Arrival::Periodic => {
            let g = mean_gap.as_secs_f64() * 1e3;
            if (g - close).abs() * 2.0 <= width { 1.0 / width.max(1e-9) } else { 0.0 }
        }
    };
    let predicted = n * gap_density * width;
    let (lo, hi) = poisson_range(predicted);
    let note = (t.rps * t.latency_ms / 1e3 > 0.1).then(|| {
        format!("rps × latency = {:.2}: requests overlap, which one-at-a-time replay does not show", t.rps * t.latency_ms / 1e3)
    });
    Ok(Check {
        scale,
        requests: r.observations.len(),
        predicted_failures: predicted,
        observed_failures: observed,
        expected_range: (lo, hi),
        consistent: (lo..=hi).contains(&observed),
        note,
    })
}

/// The central 95 % of a Poisson count with mean `mu` (exact sums; the
/// counts here are small).
pub fn poisson_range(mu: f64) -> (usize, usize) {
    if mu <= 0.0 {
        return (0, 0);
    }
    let (mut k, mut p, mut cdf) = (0usize, (-mu).exp(), 0.0);
    let mut lo = None;
    loop {
        cdf += p;
        if lo.is_none() && cdf > 0.025 {
            lo = Some(k);
        }
        if cdf >= 0.975 || k > 100_000 {
            return (lo.unwrap_or(0), k);
        }
        k += 1;
        p *= mu / k as f64;
    }
}

#[allow(clippy::too_many_arguments)]
fn check_scenario(idle: Duration, keepalive_timeout: Duration, method: &str, count: u32, sweep: Sweep, from: Duration, to: Duration, seed: u64) -> Scenario {
    let go_dur = go_model::godur::format;
    Scenario {
        name: "rate-check".into(),
        title: "rate: the traffic at compressed scale".into(),
        remedy_of: None,
        mechanism: "idle-race".into(),
        explanation: String::new(),
        fix: String::new(),
        go: GoSettings { idle_timeout: Some(go_dur(idle)), keepalives: true, servers: 1, ..GoSettings::default() },
        nginx: NginxSettings {
            keepalive: Some(16),
            keepalive_timeout: Some(nginx_model::time::format(keepalive_timeout.max(Duration::from_millis(1)))),
            http_version: Some("1.1".into()),
            clear_connection: true,
            ..NginxSettings::default()
        },
        workload: Workload { warmup: 1, sweep_from: Some(go_dur(from)), sweep_to: Some(go_dur(to)), sweep, seed, ..Workload::default() },
        requests: vec![RequestGroup {
            method: method.into(),
            path: "/ok".into(),
            body: if method == "POST" { 100 } else { 0 },
            count,
            client_pause: None,
            expect: Expect::default(),
        }],
    }
}

/// The whole answer.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Rate {
    pub traffic: Traffic,
    /// When Go closes an idle connection, on the client's clock (ms).
    pub go_close_ms: f64,
    pub windows: Vec<Window>,
    pub density: Density,
    pub methods: Vec<MethodRate>,
    pub check: Option<Check>,
}

pub fn render(r: &Rate) -> String {
    let t = &r.traffic;
    let mut s = String::new();
    s.push_str(&format!(
        "IdleTimeout {} · keepalive_timeout {} · keepalive {} · {} req/s {:?} · rtt {} ms\n\n",
        go_model::godur::format(t.idle_timeout()),
        nginx_model::time::format(Duration::from_secs_f64(t.keepalive_timeout_ms / 1e3)),
        t.keepalive,
        t.rps,
        t.arrival,
        t.rtt_ms
    ));
    s.push_str(&format!("1. Go closes an idle connection {:.3} ms after its last response\n", r.go_close_ms));
    s.push_str("   (netpoll's millisecond waits + slack + runtime wake, less the RTT)\n");
    s.push_str(&format!("2. window width, measured on the emulators (IdleTimeout {}):\n", go_model::godur::format(CALIBRATION_IDLE)));
    for w in &r.windows {
        s.push_str(&format!(
            "   {:<6} {:>4} of {:>4} failed over {:.2} ms of gaps → {:.3} ms\n",
            w.method, w.failures, w.requests, w.swept_ms, w.width_ms
        ));
    }
    let d = &r.density;
    s.push_str(&format!(
        "3. idle gaps near {:.1} ms (nginx's cache over {:.2} h of arrivals):\n   {} of {} reuses within ±{} ms → {:.4} per ms per hour\n",
        r.go_close_ms, d.simulated_hours, d.near, d.reuses, DENSITY_HALF_WIDTH_MS, d.per_ms_per_hour
    ));
    s.push_str("4. failures = density × share × width\n");
    for m in &r.methods {
        s.push_str(&format!(
            "   {:<6} {:.4}/ms/h × {:.2} × {:.3} ms = {:.3} {} per hour ({:.2} per million)\n",
            m.method,
            d.per_ms_per_hour,
            m.share,
            m.width_ms,
            m.per_hour,
            if m.retried { "retries (client sees 200)" } else { "502s" },
            m.per_million_requests
        ));
    }
    if let Some(c) = &r.check {
        s.push_str(&format!(
            "\ncheck, ×{:.4} on the emulators, {} requests: predicted {:.2}, observed {} ({}, 95% range {}–{})\n",
            c.scale,
            c.requests,
            c.predicted_failures,
            c.observed_failures,
            if c.consistent { "consistent" } else { "INCONSISTENT" },
            c.expected_range.0,
            c.expected_range.1
        ));
        if let Some(n) = &c.note {
            s.push_str(&format!("  note: {n}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(rps: f64, arrival: Arrival) -> Traffic {
        Traffic {
            go_idle_timeout_ms: 5000.0,
            keepalive_timeout_ms: 60_000.0,
            keepalive: 16,
            rps,
            arrival,
            latency_ms: 1.0,
            rtt_ms: 0.0,
            method_mix: vec![("GET".into(), 0.8), ("POST".into(), 0.2)],
            seed: 1,
        }
    }

    #[test]
    fn go_closes_late_by_netpoll_rounding_and_early_by_distance() {
        let close = go_close_ms(Duration::from_secs(5), Duration::ZERO);
        // 4999 ms + 4.999 ms of slack: past the deadline at the first wake.
        assert!((5003.9..5005.2).contains(&close), "{close}");
        let far = go_close_ms(Duration::from_secs(5), Duration::from_millis(10));
        assert!((close - far - 10.0).abs() < 1e-6);
    }

    #[test]
    fn poisson_traffic_reuses_near_the_close_as_often_as_the_exponential_says() {
        // One connection, exponential gaps of mean 5 s: density at 5.004 s
        // is rps × e^(−rps·t) per second of gap, per request.
        let t = traffic(0.2, Arrival::Poisson);
        let close = go_close_ms(Duration::from_secs(5), Duration::ZERO);
        let d = density(&t, close, 200.0);
        let per_request_per_ms = 0.2 * (-0.2_f64 * close / 1e3).exp() / 1e3;
        let want = per_request_per_ms * 0.2 * 3600.0;
        assert!((d.per_ms_per_hour / want - 1.0).abs() < 0.15, "{} vs {want}", d.per_ms_per_hour);
    }

    #[test]
    fn busy_traffic_never_leaves_a_connection_idle_that_long() {
        let t = traffic(50.0, Arrival::Poisson);
        let d = density(&t, go_close_ms(Duration::from_secs(5), Duration::ZERO), 1.0);
        assert_eq!(d.near, 0);
        assert!((175_000..185_000).contains(&d.requests), "about 50 × 3600 arrivals, not {}", d.requests);
        assert!(d.reuses > d.requests * 9 / 10, "the busy connections are reused: {} of {}", d.reuses, d.requests);
    }

    #[test]
    fn periodic_traffic_is_all_or_nothing() {
        let close = go_close_ms(Duration::from_secs(5), Duration::ZERO);
        let on = traffic(1000.0 / close, Arrival::Periodic);
        assert!(density(&on, close, 1.0).near > 500);
        let off = traffic(0.25, Arrival::Periodic);
        assert_eq!(density(&off, close, 1.0).near, 0);
    }

    #[test]
    fn the_prediction_is_density_times_share_times_width() {
        let t = traffic(0.2, Arrival::Poisson);
        let d = Density { simulated_hours: 1.0, requests: 720, reuses: 719, near: 10, per_ms_per_hour: 1.0 };
        let w = |m: &str, width_ms| Window { method: m.into(), requests: 100, failures: 10, swept_ms: 2.0, width_ms, centre_gap_ms: None };
        let r = predict(&t, &d, &[w("GET", 0.2), w("POST", 0.25)]);
        assert!((r[0].per_hour - 0.8 * 0.2).abs() < 1e-12 && r[0].retried);
        assert!((r[1].per_hour - 0.2 * 0.25).abs() < 1e-12 && !r[1].retried);
    }

    #[test]
    fn poisson_ranges_cover_the_middle_95_percent() {
        assert_eq!(poisson_range(0.0), (0, 0));
        assert_eq!(poisson_range(1.0), (0, 3));
        assert_eq!(poisson_range(10.0), (4, 17));
    }
}
