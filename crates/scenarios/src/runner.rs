//! Runs one scenario on a pair of backends: a proxy
//! ([`harness::ProxyUnderTest`]) in front of upstream Go servers
//! ([`harness::UpstreamUnderTest`]), built-in emulators in-process or real
//! nginx / real Go as child processes, on loopback ports. The run has four
//! phases: start, warm-up, the action, the requests (each one an
//! [`Observation`] from all three sides); then the observations are
//! checked against the expectation. The runner only drives the traits: what
//! a backend can do, and how, is the backend's business.

use crate::scenario::{scale, scale_path, RequestGroup, Scenario, Sweep, DEFAULT_SCALE};
use crate::setup::{dur, go_config, nginx_config};
use crate::verdict::{judge, GroupVerdict, Observation};
use crate::timeline::{EntryKind, Lane, TimelineEntry};
use crate::Error;
use harness::backend::LOOPBACK_ANY;
use harness::client::{Exchange, Request, WireClient};
use harness::{Action, BackendError, ProxyUnderTest, Unsupported, UpstreamUnderTest};
use serde::Serialize;
use std::time::{Duration, Instant};

pub use harness::backend::Programs;
pub use harness::{ProxyBackend, UpstreamBackend};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub proxy: ProxyBackend,
    pub upstream: UpstreamBackend,
    /// Multiplies every duration of the scenario (article scale → run scale).
    pub scale: f64,
    /// Which real programs (`--nginx`, `--go`, `--upstream-cmd`).
    pub programs: Programs,
    /// A round trip of delay between proxy and upstream (a relay, half each
    /// way); not scaled: distance is physical.
    pub rtt: Option<Duration>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { proxy: ProxyBackend::Builtin, upstream: UpstreamBackend::Builtin, scale: DEFAULT_SCALE, programs: Programs::default(), rtt: None }
    }
}


/// The backend pairs `scenarios conformance` compares: the emulators, real
/// nginx in front of the Go emulator, real nginx in front of real Go.
pub const CONFORMANCE_PAIRS: [(ProxyBackend, UpstreamBackend); 3] = [
    (ProxyBackend::Builtin, UpstreamBackend::Builtin),
    (ProxyBackend::Nginx, UpstreamBackend::Builtin),
    (ProxyBackend::Nginx, UpstreamBackend::Go),
];

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RunResult {
    pub scenario: String,
    pub title: String,
    pub proxy: ProxyBackend,
    pub upstream: UpstreamBackend,
    /// The programs that ran ("nginx/1.22.1 (/usr/sbin/nginx), …"); `None`
    /// for a built-in emulator or a skipped run.
    pub proxy_program: Option<String>,
    pub upstream_program: Option<String>,
    pub scale: f64,
    /// Set when the scenario cannot run on these backends (and why).
    pub skipped: Option<String>,
    /// The run met its expectations; never true for a skipped run.
    pub passed: bool,
    pub verdicts: Vec<GroupVerdict>,
    pub observations: Vec<Observation>,
    pub timeline: Vec<TimelineEntry>,
    pub wall_ms: f64,
}

impl RunResult {
    /// The run happened and missed an expectation (a skip is neither
    /// passed nor failed).
    pub fn failed(&self) -> bool {
        !self.passed && self.skipped.is_none()
    }

    fn skipped(s: &Scenario, opts: &RunOptions, why: &Unsupported) -> RunResult {
        RunResult {
            scenario: s.name.clone(),
            title: s.title.clone(),
            proxy: opts.proxy,
            upstream: opts.upstream,
            proxy_program: None,
            upstream_program: None,
            scale: opts.scale,
            skipped: Some(why.to_string()),
            passed: false,
            verdicts: vec![],
            observations: vec![],
            timeline: vec![],
            wall_ms: 0.0,
        }
    }

    /// Client 502s over all requests.
    pub fn count_status(&self, status: u16) -> usize {
        self.observations.iter().filter(|o| o.status == Some(status)).count()
    }
}

/// Runs a scenario. Errors are setup failures (a backend that cannot
/// start); expectation failures are in the result, and a scenario the
/// backends cannot run is a result marked skipped, with the reason.
pub async fn run(s: &Scenario, opts: &RunOptions) -> Result<RunResult, Error> {
    run_inner(s, opts, None).await
}

/// Like [`run`], and copies the proxy's error.log and access.log (the lab's
/// format, `harness::nginx::LAB_FORMAT`) into `keep` as `error.log` and
/// `access.log` before the proxy goes away (empty files for a skipped run).
pub async fn run_keeping_logs(s: &Scenario, opts: &RunOptions, keep: &std::path::Path) -> Result<RunResult, Error> {
    run_inner(s, opts, Some(keep)).await
}

async fn run_inner(s: &Scenario, opts: &RunOptions, keep: Option<&std::path::Path>) -> Result<RunResult, Error> {
    match s.local_port_range() {
        Some(range) => in_netns(s, opts, keep, range).await,
        None => run_here(s, opts, keep, None).await,
    }
}

/// Runs the scenario on a thread of its own in a network namespace of its
/// own ([`harness::netns`]): every socket and process of the run is
/// inside, so nginx's `ip_local_port_range` is the scenario's and no other
/// program's. Without the privilege to create one, the run is skipped,
/// saying so (unless `BADGATEWAY_REQUIRE_NETNS=1`: then an error).
async fn in_netns(s: &Scenario, opts: &RunOptions, keep: Option<&std::path::Path>, range: (u16, u16)) -> Result<RunResult, Error> {
    let (s, opts, keep) = (s.clone(), opts.clone(), keep.map(std::path::Path::to_path_buf));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = s.name.clone();
    // A thread that ends with the run: the namespace goes with it (a pooled
    // thread would carry it into the next task).
    let spawned = std::thread::Builder::new().name(format!("netns {name}")).spawn(move || {
        let result = match harness::netns::enter() {
            Err(e) if harness::require::netns_required() => Err(Error::Netns(format!("{e}; needs root or CAP_SYS_ADMIN (required by {}=1)", harness::require::NETNS_VAR))),
            Err(e) => {
                let why = Unsupported { backend: "this machine", what: format!("ip_local_port_range in a network namespace of its own ({e})"), why: "needs root or CAP_SYS_ADMIN" };
                Ok(RunResult::skipped(&s, &opts, &why))
            }
            Ok(()) => match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(run_here(&s, &opts, keep.as_deref(), Some(range))),
                Err(e) => Err(Error::Netns(format!("a runtime for its thread: {e}"))),
            },
        };
        let _ = tx.send(result);
    });
    if let Err(e) = spawned {
        return Err(Error::Netns(format!("a thread for {name}: {e}")));
    }
    // The thread always sends, unless it panicked (its message is on stderr).
    rx.await.unwrap_or_else(|_| Err(Error::Netns(format!("the thread running {name} panicked"))))
}

/// Runs the scenario on this thread. With `port_range`, in a namespace of
/// its own (see [`in_netns`]), the range is set once the listeners are up:
/// their ports came from the default range, clear of the scenario's.
async fn run_here(s: &Scenario, opts: &RunOptions, keep: Option<&std::path::Path>, port_range: Option<(u16, u16)>) -> Result<RunResult, Error> {
    if let Some(dir) = keep {
        for name in [harness::nginx::ERROR_LOG, harness::nginx::ACCESS_LOG] {
            std::fs::write(dir.join(name), "").map_err(|source| Error::Io { path: dir.join(name), source })?;
        }
    }
    let factor = opts.scale;
    let go_cfg = go_config(s, factor);
    if let Err(why) = opts.upstream.supports(&go_cfg, s.workload.action, &opts.programs) {
        return Ok(RunResult::skipped(s, opts, &why));
    }
    let wall = Instant::now();
    let epoch = Instant::now();
    let mut upstream = match opts.upstream.start(&go_cfg, s.go.servers.max(1), epoch, &opts.programs).await {
        Ok(u) => u,
        // Known only once the program is there (real Go's release).
        Err(harness::BackendError::Unsupported(why)) => return Ok(RunResult::skipped(s, opts, &why)),
        Err(e) => return Err(e.into()),
    };
    // With distance, the proxy talks to relays that delay each direction.
    let mut relays = Vec::new();
    if let Some(rtt) = opts.rtt.filter(|d| !d.is_zero()) {
        for addr in upstream.addrs() {
            match harness::relay::Relay::start(addr, rtt / 2).await {
                Ok(r) => relays.push(r),
                Err(source) => {
                    upstream.stop().await;
                    return Err(Error::Io { path: format!("relay to {addr}").into(), source });
                }
            }
        }
    }
    let addrs = if relays.is_empty() { upstream.addrs() } else { relays.iter().map(|r| r.addr()).collect() };
    let cfg = nginx_config(s, &addrs, LOOPBACK_ANY, factor);
    let proxy = match opts.proxy.start(cfg, s.nginx_profile(), &s.name, epoch, &opts.programs).await {
        Ok(p) => p,
        Err(harness::BackendError::Unsupported(why)) => {
            upstream.stop().await;
            return Ok(RunResult::skipped(s, opts, &why));
        }
        Err(e) => {
            upstream.stop().await;
            return Err(e.into());
        }
    };
    if let Some((low, high)) = port_range {
        if let Err(e) = harness::netns::set_local_port_range(low, high) {
            drop(proxy);
            upstream.stop().await;
            return Err(Error::Netns(e.to_string()));
        }
    }
    let driven = match Session::new(s, factor, proxy.as_ref(), upstream.as_mut(), epoch).await {
        Ok(session) => drive(session).await,
        Err(e) => Err(Halt::Failed(e)),
    };
    // All three sides on one clock (the real programs' sides are only what
    // their logs tell, so builtin runs are richer).
    let backend_timeline = [proxy.timeline(), upstream.timeline()];
    let programs = (proxy.program(), upstream.program());
    if let (Some(dir), Some((error_log, access_log))) = (keep, proxy.log_files()) {
        for (from, name) in [(error_log, harness::nginx::ERROR_LOG), (access_log, harness::nginx::ACCESS_LOG)] {
            std::fs::copy(&from, dir.join(name)).map_err(|source| Error::Io { path: from.clone(), source })?;
        }
    }
    drop(proxy);
    drop(relays);
    upstream.stop().await;
    let (observations, mut timeline) = match driven {
        Ok(done) => done,
        Err(Halt::Unsupported(why)) => return Ok(RunResult::skipped(s, opts, &why)),
        Err(Halt::Failed(e)) => return Err(e),
    };
    timeline.extend(backend_timeline.into_iter().flatten());
    timeline.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let verdicts = judge(&s.requests, &observations, factor);
    Ok(RunResult {
        scenario: s.name.clone(),
        title: s.title.clone(),
        proxy: opts.proxy,
        upstream: opts.upstream,
        proxy_program: programs.0,
        upstream_program: programs.1,
        scale: factor,
        skipped: None,
        passed: verdicts.iter().all(|v| v.passed),
        verdicts,
        observations,
        timeline,
        wall_ms: ms(wall.elapsed()),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Why a run stopped before its verdict.
enum Halt {
    /// The upstream cannot perform the scenario's action: a skip.
    Unsupported(Unsupported),
    Failed(Error),
}

impl From<Error> for Halt {
    fn from(e: Error) -> Halt {
        Halt::Failed(e)
    }
}

/// The phases after start: warm-up, the action, then every request with
/// its gap. Returns the observations and the client's timeline.
async fn drive(mut session: Session<'_>) -> Result<(Vec<Observation>, Vec<TimelineEntry>), Halt> {
    session.warm_up().await?;
    session.act().await?;
    let s = session.s;
    let total: u32 = s.requests.iter().map(|g| g.count).sum();
    let requests = s.requests.iter().enumerate().flat_map(|(gi, g)| std::iter::repeat_n((gi, g), g.count as usize));
    let mut out = Vec::new();
    for (k, (gi, g)) in (0..).zip(requests) {
        let gap = gap_before(s, session.factor, k, total);
        let achieved = session.pace(gap).await;
        out.push(session.request(gi, g, achieved).await?);
    }
    Ok((out, session.timeline))
}

/// The pause before request `k` of `total`: the scenario's gap, or in the
/// natural-race mode a linear sweep from `sweep_from` to `sweep_to`.
pub(crate) fn gap_before(s: &Scenario, factor: f64, k: u32, total: u32) -> Duration {
    if !s.natural() {
        return dur(&s.workload.gap, factor);
    }
    // A sweep spans a window a millisecond wide: scaled to the microsecond,
    // not rounded to whole milliseconds as settings are.
    let fine = |d: &Option<String>| {
        let d = d.as_deref().and_then(|d| crate::scenario::parse_duration(d).ok()).unwrap_or_default();
        Duration::from_micros((d.as_secs_f64() * factor * 1e6).round() as u64)
    };
    let (from, to) = (fine(&s.workload.sweep_from), fine(&s.workload.sweep_to));
    let f = match s.workload.sweep {
        Sweep::Linear if total > 1 => f64::from(k) / f64::from(total - 1),
        Sweep::Linear => 0.0,
        Sweep::Uniform => unit_draw(s.workload.seed, k),
        Sweep::Poisson => return from.mul_f64(-(1.0 - unit_draw(s.workload.seed, k)).ln()).min(to),
    };
    from + to.saturating_sub(from).mul_f64(f)
}

/// Draw `k` of a seeded sequence, uniform in [0, 1): splitmix64 of
/// (seed, k), so any request's gap is known without the ones before it.
pub(crate) fn unit_draw(seed: u64, k: u32) -> f64 {
    let mut z = seed.wrapping_add(u64::from(k).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The client's side of a run: its connection to the proxy, the backends
/// it reads, and its own timeline.
struct Session<'a> {
    s: &'a Scenario,
    factor: f64,
    proxy: &'a dyn ProxyUnderTest,
    upstream: &'a mut dyn UpstreamUnderTest,
    epoch: Instant,
    client: WireClient,
    /// Access-log entries so far: the next request's is entry `seen`.
    seen: usize,
    /// A response never takes longer than the longest scaled duration plus slack.
    read_limit: Duration,
    timeline: Vec<TimelineEntry>,
    /// When the last response's final byte arrived: the gaps count from it.
    last_response: Option<Instant>,
}

impl<'a> Session<'a> {
    async fn new(
        s: &'a Scenario,
        factor: f64,
        proxy: &'a dyn ProxyUnderTest,
        upstream: &'a mut dyn UpstreamUnderTest,
        epoch: Instant,
    ) -> Result<Session<'a>, Error> {
        let addr = proxy.addr();
        let client = WireClient::connect(addr).await.map_err(|source| Error::Client { what: "connect to", addr, source })?;
        Ok(Session {
            s,
            factor,
            proxy,
            upstream,
            epoch,
            client,
            seen: proxy.access_entries().len(),
            read_limit: Duration::from_secs(5) + scale(Duration::from_secs(120), factor),
            timeline: Vec::new(),
            last_response: None,
        })
    }

    fn note(&mut self, lane: Lane, kind: EntryKind, text: String) -> &mut TimelineEntry {
        self.timeline.push(TimelineEntry::new(self.epoch.elapsed(), lane, kind, text));
        self.timeline.last_mut().expect("just pushed")
    }

    /// Fills nginx's keepalive cache: `GET /ok`s one after another, or at
    /// once on their own connections (`warmup_concurrent`).
    async fn warm_up(&mut self) -> Result<(), Error> {
        let n = self.s.workload.warmup;
        if n == 0 {
            return Ok(());
        }
        let addr = self.proxy.addr();
        if self.s.workload.warmup_concurrent {
            let tasks: Vec<_> = (0..n)
                .map(|_| {
                    tokio::spawn(async move {
                        let mut c = WireClient::connect(addr).await.ok()?;
                        c.get("/sleep?ms=20").await.ok()?;
                        Some(c.read_response(Duration::from_secs(5)).await)
                    })
                })
                .collect();
            for t in tasks {
                let _ = t.await;
            }
        } else {
            for _ in 0..n {
                self.client.get("/ok").await.map_err(|source| Error::Client { what: "send to", addr, source })?;
                self.client.read_response(self.read_limit).await;
                self.last_response = Some(Instant::now());
            }
        }
        self.seen += n as usize;
        self.proxy.wait_access(self.seen, Duration::from_secs(5)).await;
        self.note(Lane::Client, EntryKind::Note, format!("warm-up done ({n} × GET /ok)"));
        Ok(())
    }

    /// The scenario's action; once it closed the first server's
    /// connections, waits (bounded) until the proxy has let go of them.
    async fn act(&mut self) -> Result<(), Halt> {
        let action = self.s.workload.action;
        match self.upstream.act(action).await {
            Ok(()) => {}
            Err(BackendError::Unsupported(why)) => return Err(Halt::Unsupported(why)),
            Err(e) => return Err(Halt::Failed(e.into())),
        }
        if action.closes_connections() {
            let ports = self.upstream.accepted_ports(0);
            if !self.proxy.wait_dropped(&ports, Duration::from_secs(2)).await {
                tracing::warn!("the proxy still holds connections the upstream closed: {ports:?}");
            }
        }
        if action != Action::None {
            self.note(Lane::Upstream, EntryKind::Action, format!("action: {action:?}"));
        }
        Ok(())
    }

    /// Waits until `gap` after the last response arrived (the upstream
    /// connection's idle time is what a gap stands for, not the time after
    /// this side's bookkeeping) and returns the gap achieved: measured,
    /// never assumed. A microsecond clock that spins the last stretch:
    /// tokio's wheel would add 0–2 ms, waking an idle CPU 0.1–0.2 ms.
    async fn pace(&mut self, gap: Duration) -> Duration {
        let from = self.last_response.unwrap_or_else(Instant::now);
        if !gap.is_zero() {
            // Workload pacing (the scenario's request gap), not a wait for an event.
            labkit::clock::pace_until(from + gap).await;
        }
        from.elapsed()
    }

    /// Sends one request of group `gi` and reads what the client, the
    /// proxy's logs and the upstream saw of it.
    async fn request(&mut self, gi: usize, g: &RequestGroup, gap: Duration) -> Result<Observation, Error> {
        let path = scale_path(&g.path, self.factor);
        let handler_path = path.split('?').next().unwrap_or_default().to_string();
        // Asking real Go for its handler count (a mark line through its
        // stdin) wakes Go's runtime inside the race window and delays this
        // request: a natural sweep does not ask.
        let count_runs = !self.s.natural();
        let runs_before = if count_runs { self.upstream.handler_runs(&handler_path).await } else { None };
        let errors_before = self.proxy.error_lines().len();
        let t0 = Instant::now();
        self.note(Lane::Client, EntryKind::Request, format!("{} {path}", g.method));
        let ex = self.exchange(g, &path).await;
        let latency = t0.elapsed();
        let resp = ex.as_ref().and_then(|e| e.response.clone());
        let reconnect = ex.as_ref().is_none_or(|e| e.end.is_some() || e.response.as_ref().is_none_or(|r| !r.complete || r.connection_close));
        self.seen += 1;
        // A closed exchange: this client closes its side before waiting for
        // the access line, as clients do. nginx finishes a closing request
        // that had a body (or more bytes behind it) with a lingering close
        // (ngx_http_set_lingering_close) and writes the line only once the
        // client's FIN comes, or after lingering_timeout (5 s) without one.
        if reconnect {
            let addr = self.proxy.addr();
            self.client = WireClient::connect(addr).await.map_err(|source| Error::Client { what: "reconnect to", addr, source })?;
        }
        let access = if self.proxy.wait_access(self.seen, Duration::from_secs(5)).await {
            self.proxy.access_entries().get(self.seen - 1).cloned().unwrap_or_default()
        } else {
            Default::default()
        };
        let lines: Vec<String> = self.proxy.error_lines().into_iter().skip(errors_before).filter(|l| nginx_model::logs::Level::line_is_failure(l)).collect();
        let errors = lines.iter().map(|l| nginx_model::failure::class_of_log_line(l).map(|c| c.to_string()).unwrap_or_else(|| "other".into())).collect();
        let read_at = self.epoch.elapsed();
        self.timeline.extend(self.proxy.error_timeline(&lines, read_at));
        let truncated = resp.as_ref().is_some_and(|r| !r.complete);
        let seen = self.note(
            Lane::Client,
            EntryKind::Response,
            match &resp {
                Some(r) => format!("◄ {}{} ({} B)", r.status, if truncated { " TRUNCATED" } else { "" }, r.body_len),
                None => "◄ no response".into(),
            },
        );
        seen.status = resp.as_ref().map(|r| r.status);
        let runs_after = if count_runs { self.upstream.handler_runs(&handler_path).await } else { None };
        let handler_runs = runs_after.zip(runs_before).map(|(after, before)| after - before);
        Ok(Observation {
            group: gi,
            method: g.method.clone(),
            path,
            status: resp.as_ref().map(|r| r.status),
            body_bytes: resp.as_ref().map_or(0, |r| r.body_len as u64),
            truncated,
            latency_ms: ms(latency),
            gap_ms: ms(gap),
            upstream_status: access.upstream_status,
            upstream_response_time: access.upstream_response_time,
            errors,
            error_lines: lines,
            handler_runs,
        })
    }

    /// Sends the request (a POST, or any request with a body, carries a
    /// Content-Length) and reads the response; `None` when it could not be
    /// sent.
    async fn exchange(&mut self, g: &RequestGroup, path: &str) -> Option<Exchange> {
        let mut req = Request::new(&g.method, path);
        if g.method == "POST" || g.body > 0 {
            req = req.with_body(g.body);
        }
        // A 1 MiB body to an upstream that resets: nginx may answer before
        // it has read everything; the write is bounded so it cannot hang.
        let sent = tokio::time::timeout(Duration::from_secs(5), self.client.send_request(&req)).await.unwrap_or(Ok(()));
        let ex = match sent {
            // A slow client stops reading after the head (`client_pause`).
            Ok(()) => Some(self.client.read_response_paused(self.read_limit, dur(&g.client_pause, self.factor)).await),
            Err(_) => None,
        };
        self.last_response = Some(Instant::now());
        ex
    }
}


/// How runs of one scenario on different backends disagree.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Disagreement {
    #[error("{proxy:?}/{upstream:?} failed its expectations")]
    Failed { proxy: ProxyBackend, upstream: UpstreamBackend },
    #[error("{0}")]
    Differs(Box<Difference>),
}

/// The first request two runs saw differently.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{method} {path}: {first} vs {proxy:?}/{upstream:?}: {other}")]
pub struct Difference {
    pub method: String,
    pub path: String,
    /// What the first run saw.
    pub first: Seen,
    pub proxy: ProxyBackend,
    pub upstream: UpstreamBackend,
    /// What the run on `proxy`/`upstream` saw.
    pub other: Seen,
}

/// What agreement compares of one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub status: Option<u16>,
    pub upstream_status: Vec<u16>,
    pub handler_runs: Option<u64>,
}

impl Seen {
    fn of(o: &Observation) -> Seen {
        Seen { status: o.status, upstream_status: o.upstream_status.clone(), handler_runs: o.handler_runs }
    }
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {:?} ×{}", self.status, self.upstream_status, self.handler_runs.map_or("?".into(), |n| n.to_string()))
    }
}

/// Whether runs of one scenario on different backends agree: every run that
/// was not skipped met the expectations, and deterministic scenarios saw the
/// same status, upstream_status and handler runs request by request.
pub fn agreement(runs: &[RunResult]) -> Result<(), Disagreement> {
    let live: Vec<&RunResult> = runs.iter().filter(|r| r.skipped.is_none()).collect();
    if let Some(r) = live.iter().find(|r| !r.passed) {
        return Err(Disagreement::Failed { proxy: r.proxy, upstream: r.upstream });
    }
    let Some(first) = live.first() else { return Ok(()) };
    let natural = first.verdicts.iter().any(|v| v.expect.status_in.is_some());
    if natural {
        return Ok(());
    }
    for r in &live[1..] {
        for (a, b) in first.observations.iter().zip(&r.observations) {
            if Seen::of(a) != Seen::of(b) {
                return Err(Disagreement::Differs(Box::new(Difference {
                    method: a.method.clone(),
                    path: a.path.clone(),
                    first: Seen::of(a),
                    proxy: r.proxy,
                    upstream: r.upstream,
                    other: Seen::of(b),
                })));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_the_scenarios_or_a_linear_sweep() {
        let mut s = crate::catalogue::find("idle-race").unwrap();
        s.workload.gap = Some("1s".into());
        assert_eq!(gap_before(&s, 0.02, 0, 3), Duration::from_millis(20));
        s.workload.sweep_from = Some("1s".into());
        s.workload.sweep_to = Some("2s".into());
        let sweep: Vec<Duration> = (0..3).map(|k| gap_before(&s, 0.02, k, 3)).collect();
        assert_eq!(sweep, [20, 30, 40].map(Duration::from_millis));
        assert_eq!(gap_before(&s, 0.02, 0, 1), Duration::from_millis(20), "one request: the start of the sweep");
    }

    #[test]
    fn uniform_and_poisson_sweeps_are_seeded_draws() {
        let mut s = crate::catalogue::find("idle-race").unwrap();
        s.workload.sweep_from = Some("99.2ms".into());
        s.workload.sweep_to = Some("100.4ms".into());
        s.workload.sweep = Sweep::Uniform;
        s.workload.seed = 7;
        let gaps: Vec<Duration> = (0..2000).map(|k| gap_before(&s, 1.0, k, 2000)).collect();
        assert!(gaps.iter().all(|g| (Duration::from_micros(99_200)..=Duration::from_micros(100_400)).contains(g)), "sub-millisecond ends kept");
        let mean = gaps.iter().sum::<Duration>() / 2000;
        assert!((mean.as_secs_f64() * 1e3 - 99.8).abs() < 0.05, "uniform mean {mean:?}");
        assert_eq!(gap_before(&s, 1.0, 5, 2000), gaps[5], "the same seed draws the same gap");
        s.workload.seed = 8;
        assert_ne!(gap_before(&s, 1.0, 5, 2000), gaps[5]);
        s.workload.sweep = Sweep::Poisson;
        s.workload.sweep_from = Some("10ms".into());
        s.workload.sweep_to = Some("1s".into());
        let mean = (0..4000).map(|k| gap_before(&s, 1.0, k, 4000)).sum::<Duration>() / 4000;
        assert!((mean.as_secs_f64() * 1e3 - 10.0).abs() < 0.6, "exponential mean {mean:?}");
    }

    #[test]
    fn agreement_names_the_first_difference() {
        let s = crate::catalogue::find("idle-race").unwrap();
        let run = |proxy, status| {
            let mut r = RunResult::skipped(&s, &RunOptions { proxy, ..RunOptions::default() }, &Unsupported::knob("x", "y"));
            r.skipped = None;
            r.passed = true;
            r.observations = vec![Observation {
                group: 0,
                method: "GET".into(),
                path: "/ok".into(),
                status: Some(status),
                body_bytes: 0,
                truncated: false,
                latency_ms: 0.0,
                gap_ms: 0.0,
                upstream_status: vec![status],
                upstream_response_time: vec![],
                errors: vec![],
                error_lines: vec![],
                handler_runs: Some(1),
            }];
            r
        };
        assert_eq!(agreement(&[run(ProxyBackend::Builtin, 200), run(ProxyBackend::Nginx, 200)]), Ok(()));
        let e = agreement(&[run(ProxyBackend::Builtin, 200), run(ProxyBackend::Nginx, 502)]).unwrap_err();
        assert_eq!(e.to_string(), "GET /ok: Some(200) [200] ×1 vs Nginx/Builtin: Some(502) [502] ×1");
        let mut failed = run(ProxyBackend::Nginx, 200);
        failed.passed = false;
        assert_eq!(agreement(&[run(ProxyBackend::Builtin, 200), failed]).unwrap_err().to_string(), "Nginx/Builtin failed its expectations");
    }
}
