//! Runs one scenario: upstream server(s) and the proxy on ephemeral loopback
//! ports (built-in emulators in-process, or real nginx / real Go as child
//! processes), the warm-up, the action, the requests; then reads what each
//! side saw and checks it against the expectation.

use crate::scenario::{parse_duration, scale, scale_path, Action, Expect, RequestGroup, Scenario};
use crate::setup::{dur, go_config, nginx_config};
use crate::timeline::{self, Lane, TimelineEntry};
use nginx_model::conf;
use proxy::events::ProxyEventKind;
use harness::nginx::{self as real_nginx, RealNginx};
use proxy::{Proxy, ProxyOptions};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use harness::client::WireClient;
use harness::free_port;
use harness::go::GoServer;
use upstream_sim::UpstreamSim;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProxyBackend {
    /// The built-in nginx emulator (crates/proxy).
    Builtin,
    /// Real nginx (Debian nginx-light), private prefix, loopback.
    Nginx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamBackend {
    /// The built-in Go emulator (crates/upstream-sim).
    Builtin,
    /// A real Go server (fixtures/go-upstream, built with the local `go`).
    Go,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub proxy: ProxyBackend,
    pub upstream: UpstreamBackend,
    /// Multiplies every duration of the scenario (article scale → run scale).
    pub scale: f64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { proxy: ProxyBackend::Builtin, upstream: UpstreamBackend::Builtin, scale: DEFAULT_SCALE }
    }
}

/// 3s in an article runs as 60 ms.
pub const DEFAULT_SCALE: f64 = 0.02;

/// What one client request observed, from all three sides.
#[derive(Debug, Clone, Serialize)]
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
    /// How many times the upstream handler ran for it.
    pub handler_runs: u64,
}

#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub scenario: String,
    pub title: String,
    pub proxy: ProxyBackend,
    pub upstream: UpstreamBackend,
    pub scale: f64,
    /// Set when the scenario cannot run on these backends (and why).
    pub skipped: Option<String>,
    pub passed: bool,
    pub verdicts: Vec<GroupVerdict>,
    pub observations: Vec<Observation>,
    pub timeline: Vec<TimelineEntry>,
    pub wall_ms: f64,
}

impl RunResult {
    fn skipped(s: &Scenario, opts: &RunOptions, why: String) -> RunResult {
        RunResult {
            scenario: s.name.clone(),
            title: s.title.clone(),
            proxy: opts.proxy,
            upstream: opts.upstream,
            scale: opts.scale,
            skipped: Some(why),
            passed: true,
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

enum Upstreams {
    Sim(Vec<UpstreamSim>),
    Go(Vec<GoServer>),
}

impl Upstreams {
    fn addrs(&self) -> Vec<SocketAddr> {
        match self {
            Upstreams::Sim(v) => v.iter().map(|s| s.local_addr()).collect(),
            Upstreams::Go(v) => v.iter().map(|g| g.addr).collect(),
        }
    }

    /// The proxy-side ports of every connection server `i` has accepted.
    fn peer_ports(&self, i: usize) -> Vec<u16> {
        match self {
            Upstreams::Sim(v) => v[i]
                .events()
                .snapshot()
                .iter()
                .filter_map(|e| match e.kind {
                    upstream_sim::EventKind::Accepted { peer } => Some(peer.port()),
                    _ => None,
                })
                .collect(),
            // go-upstream logs "CONN 127.0.0.1:PORT new".
            Upstreams::Go(v) => v[i]
                .lines()
                .iter()
                .filter(|l| l.contains(" CONN ") && l.ends_with(" new"))
                .filter_map(|l| l.split_whitespace().nth(2)?.rsplit(':').next()?.parse().ok())
                .collect(),
        }
    }

    /// Handler runs so far; for real Go, after making its log current.
    async fn handler_runs(&mut self, path: &str) -> u64 {
        if let Upstreams::Go(v) = self {
            for g in v.iter_mut() {
                g.sync_log(Duration::from_secs(2)).await;
            }
        }
        match self {
            Upstreams::Sim(v) => v.iter().map(|s| s.handler_runs_for(path)).sum(),
            Upstreams::Go(v) => v.iter().map(|g| g.handler_runs(path)).sum(),
        }
    }
}

enum ProxyRun {
    Builtin(Proxy),
    Nginx(RealNginx),
}

impl ProxyRun {
    fn addr(&self) -> SocketAddr {
        match self {
            ProxyRun::Builtin(p) => p.addr(),
            ProxyRun::Nginx(n) => n.addr,
        }
    }

    fn error_lines(&self) -> Vec<String> {
        match self {
            ProxyRun::Builtin(p) => p.error_log(),
            ProxyRun::Nginx(n) => n.error_log(),
        }
    }

    fn access_len(&self) -> usize {
        match self {
            ProxyRun::Builtin(p) => p.access_log().len(),
            ProxyRun::Nginx(n) => n.access_log().len(),
        }
    }

    /// (upstream_status, upstream_response_time) of access entry `i`.
    fn access(&self, i: usize) -> Option<(Vec<u16>, Vec<f64>)> {
        match self {
            ProxyRun::Builtin(p) => p.access_log().get(i).map(|e| {
                (e.upstream.iter().map(|u| u.status).collect(), e.upstream.iter().map(|u| u.response_time.as_secs_f64()).collect())
            }),
            ProxyRun::Nginx(n) => {
                n.access_log().get(i).and_then(|l| real_nginx::parse_lab_access(l)).map(|a| (a.upstream_status, a.upstream_response_time))
            }
        }
    }

    /// Waits (bounded) until the proxy no longer holds any of the upstream
    /// connections on `ports` (its local ports) that the upstream closed.
    async fn wait_dropped(&self, ports: &[u16], limit: Duration) -> bool {
        match self {
            // Every cached one of them has left the cache.
            ProxyRun::Builtin(p) => {
                p.events()
                    .wait_for(limit, |ev| {
                        ports.iter().all(|port| {
                            let stored = ev.iter().rposition(|e| matches!(e.kind, ProxyEventKind::KeepaliveStored { local_port } if local_port == *port));
                            let left = ev.iter().rposition(|e| matches!(&e.kind, ProxyEventKind::KeepaliveClosed { local_port, .. } if local_port == port))
                                .or_else(|| ev.iter().rposition(|e| matches!(e.kind, ProxyEventKind::UpstreamConn { local_port, cached: true, .. } if local_port == *port)));
                            match (stored, left) {
                                (Some(s), Some(l)) => l > s,
                                (Some(_), None) => false,
                                (None, _) => true,
                            }
                        })
                    })
                    .await
                    .0
            }
            // Real nginx gives no event, but the kernel does: none of them
            // is left in CLOSE_WAIT on nginx's side.
            ProxyRun::Nginx(_) => wait_close_wait_cleared(ports, limit).await,
        }
    }

    /// Waits until the access log has `n` entries (bounded).
    async fn wait_access(&self, n: usize, limit: Duration) -> bool {
        match self {
            ProxyRun::Builtin(p) => {
                p.events()
                    .wait_for(limit, |ev| ev.iter().filter(|e| matches!(e.kind, ProxyEventKind::ClientResponse { .. })).count() >= n)
                    .await
                    .0
            }
            ProxyRun::Nginx(nx) => {
                // nginx writes access.log unbuffered, right after the response;
                // there is no event to wait on, so poll the file, bounded.
                let deadline = Instant::now() + limit;
                while Instant::now() < deadline {
                    if nx.access_log().len() >= n {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                false
            }
        }
    }
}

static RUN_NO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn work_dir(name: &str) -> PathBuf {
    let n = RUN_NO.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::env::temp_dir().join(format!("badgateway-lab-{}-{n}-{name}", std::process::id()))
}

/// Runs a scenario. Errors are setup failures (a backend that cannot
/// start); expectation failures are in the result.
pub async fn run(s: &Scenario, opts: &RunOptions) -> Result<RunResult, String> {
    if opts.upstream == UpstreamBackend::Go && (s.emulator_only() || s.workload.action == Action::RestartHandoff) {
        return Ok(RunResult::skipped(s, opts, "needs an emulator-only knob (deterministic race, paused accept or port handoff)".into()));
    }
    let wall = Instant::now();
    let factor = opts.scale;
    let epoch = Instant::now();
    let epoch_secs_of_day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() % 86_400.0)
        .unwrap_or(0.0);
    let go_cfg = go_config(s, factor);
    let mut upstreams = match opts.upstream {
        UpstreamBackend::Builtin => {
            let mut v = Vec::new();
            for _ in 0..s.go.servers.max(1) {
                let sim = UpstreamSim::start_with_epoch(go_cfg.clone(), "127.0.0.1:0".parse().unwrap(), epoch)
                    .await
                    .map_err(|e| format!("upstream-sim: {e}"))?;
                v.push(sim);
            }
            Upstreams::Sim(v)
        }
        UpstreamBackend::Go => {
            let bin = harness::go::build_go_upstream().map_err(|e| e.to_string())?;
            let mut v = Vec::new();
            for _ in 0..s.go.servers.max(1) {
                v.push(GoServer::start(&bin, &go_cfg, free_port().map_err(|e| e.to_string())?).await.map_err(|e| e.to_string())?);
            }
            Upstreams::Go(v)
        }
    };
    let dir = work_dir(&s.name);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let proxy = match opts.proxy {
        ProxyBackend::Builtin => {
            let cfg = nginx_config(s, &upstreams.addrs(), "127.0.0.1:0".parse().unwrap(), factor);
            // Read back the same text real nginx would get.
            let parsed = conf::parse(&cfg.render(), &format!("{}.conf", s.name)).map_err(|e| e.to_string())?;
            let p = Proxy::start(&parsed, ProxyOptions { prefix: dir.clone(), epoch, ..ProxyOptions::default() })
                .await
                .map_err(|e| e.to_string())?;
            ProxyRun::Builtin(p)
        }
        ProxyBackend::Nginx => {
            let listen: SocketAddr = ([127, 0, 0, 1], free_port().map_err(|e| e.to_string())?).into();
            let cfg = real_nginx::lab_config(nginx_config(s, &upstreams.addrs(), listen, factor), listen);
            ProxyRun::Nginx(RealNginx::start(&cfg, &dir).await.map_err(|e| e.to_string())?)
        }
    };
    let mut client_events: Vec<TimelineEntry> = Vec::new();
    let result = drive(s, opts, &mut upstreams, &proxy, epoch, &mut client_events).await;

    // Timeline: all three sides on one clock (the real programs' sides are
    // only what their logs tell, so builtin runs are richer).
    let mut tl = client_events;
    if let ProxyRun::Builtin(p) = &proxy {
        tl.extend(timeline::from_proxy(&p.events().snapshot()));
    }
    match &upstreams {
        Upstreams::Sim(v) => {
            for (i, sim) in v.iter().enumerate() {
                tl.extend(timeline::from_upstream(&sim.events().snapshot(), i, v.len()));
            }
        }
        Upstreams::Go(v) => {
            for (i, g) in v.iter().enumerate() {
                tl.extend(timeline::from_go_log(&g.lines(), epoch_secs_of_day, i, v.len()));
            }
        }
    }
    tl.sort_by(|a, b| a.at_ms.partial_cmp(&b.at_ms).unwrap_or(std::cmp::Ordering::Equal));

    drop(proxy);
    match upstreams {
        Upstreams::Sim(v) => v.iter().for_each(|s| s.crash()),
        Upstreams::Go(v) => {
            for mut g in v {
                g.kill().await;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let observations = result?;
    let verdicts = judge(&s.requests, &observations, factor);
    Ok(RunResult {
        scenario: s.name.clone(),
        title: s.title.clone(),
        proxy: opts.proxy,
        upstream: opts.upstream,
        scale: factor,
        skipped: None,
        passed: verdicts.iter().all(|v| v.passed),
        verdicts,
        observations,
        timeline: tl,
        wall_ms: wall.elapsed().as_secs_f64() * 1e3,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn drive(
    s: &Scenario,
    opts: &RunOptions,
    upstreams: &mut Upstreams,
    proxy: &ProxyRun,
    epoch: Instant,
    tl: &mut Vec<TimelineEntry>,
) -> Result<Vec<Observation>, String> {
    let factor = opts.scale;
    let addr = proxy.addr();
    // A response never takes longer than the longest scaled duration plus slack.
    let read_limit = Duration::from_secs(5) + scale(Duration::from_secs(120), factor);
    let mut client = WireClient::connect(addr).await.map_err(|e| format!("connect to proxy {addr}: {e}"))?;
    let mut seen = proxy.access_len();

    // Warm-up: fill nginx's keepalive cache.
    if s.workload.warmup > 0 {
        if s.workload.warmup_concurrent {
            let mut tasks = Vec::new();
            for _ in 0..s.workload.warmup {
                tasks.push(tokio::spawn(async move {
                    let mut c = WireClient::connect(addr).await.ok()?;
                    c.get("/sleep?ms=20").await.ok()?;
                    Some(c.read_response(Duration::from_secs(5)).await)
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        } else {
            for _ in 0..s.workload.warmup {
                client.get("/ok").await.map_err(|e| e.to_string())?;
                client.read_response(read_limit).await;
            }
        }
        seen += s.workload.warmup as usize;
        proxy.wait_access(seen, Duration::from_secs(5)).await;
        tl.push(TimelineEntry::new(epoch.elapsed(), Lane::Client, format!("warm-up done ({} × GET /ok)", s.workload.warmup)));
    }

    // The action.
    let mut _fillers = Vec::new();
    let closed_by_action = matches!(s.workload.action, Action::Crash | Action::RestartHandoff | Action::KeepalivesOffThenShutdown);
    match (s.workload.action, &mut *upstreams) {
        (Action::None, _) => {}
        (Action::Crash, Upstreams::Sim(v)) => {
            v[0].crash();
            v[0].events().wait_for(Duration::from_secs(2), |ev| ev.iter().any(|e| matches!(e.kind, upstream_sim::EventKind::ListenerClosed))).await;
        }
        (Action::Crash, Upstreams::Go(v)) => v[0].kill().await,
        (Action::RestartHandoff, Upstreams::Sim(v)) => {
            let next = UpstreamSim::start_with_epoch(v[0].config().clone(), v[0].local_addr(), epoch).await.map_err(|e| format!("handoff: {e}"))?;
            v[0].shutdown(Duration::from_secs(2)).await;
            v.push(next);
        }
        (Action::Shutdown, Upstreams::Sim(v)) => {
            // Shutdown waits for the idle connections the race knob holds
            // open, so it runs in its own task (bounded by its grace).
            let control = v[0].control();
            tokio::spawn(async move { control.shutdown(Duration::from_secs(3)).await });
            // Not just the listener: the idle sweep must have reached the
            // cached connections before the next request is sent.
            v[0].events().wait_for(Duration::from_secs(2), |ev| ev.iter().any(|e| matches!(e.kind, upstream_sim::EventKind::IdleSwept))).await;
        }
        (Action::Shutdown, Upstreams::Go(v)) => {
            v[0].terminate();
            v[0].wait_line(Duration::from_secs(5), |l| l.contains("SHUTDOWN end")).await;
        }
        (Action::KeepalivesOffThenShutdown, Upstreams::Sim(v)) => {
            let before = v[0].events().snapshot().iter().filter(|e| matches!(e.kind, upstream_sim::EventKind::Accepted { .. })).count();
            v[0].set_keep_alives_enabled(false);
            // Every connection of that server closed, and (builtin proxy)
            // its cache noticed, before anything else happens.
            v[0].events()
                .wait_for(Duration::from_secs(2), |ev| ev.iter().filter(|e| matches!(e.kind, upstream_sim::EventKind::Closed { .. })).count() >= before)
                .await;
            if let ProxyRun::Builtin(p) = proxy {
                p.events().wait_for(Duration::from_secs(2), |ev| ev.iter().any(|e| matches!(e.kind, ProxyEventKind::KeepaliveClosed { .. }))).await;
            }
            v[0].shutdown(Duration::from_secs(2)).await;
        }
        (Action::FillBacklog, Upstreams::Sim(v)) => {
            for sim in v.iter() {
                sim.pause_accept(true).await;
                // Open connections until one hangs in SYN_SENT: the queue is full.
                for _ in 0..64 {
                    match tokio::time::timeout(Duration::from_millis(200), tokio::net::TcpStream::connect(sim.local_addr())).await {
                        Ok(Ok(c)) => _fillers.push(c),
                        _ => break,
                    }
                }
            }
        }
        (a, _) => return Err(format!("action {a:?} is not available with this upstream")),
    }
    if closed_by_action {
        // The first server closed its connections; real nginx gives no event
        // when its keepalive close handler has dropped them, but the kernel
        // does: wait until none of them is left in CLOSE_WAIT on nginx's side.
        let ports = upstreams.peer_ports(0);
        if !proxy.wait_dropped(&ports, Duration::from_secs(2)).await {
            tracing::warn!("the proxy still holds connections the upstream closed: {ports:?}");
        }
    }
    if s.workload.action != Action::None {
        tl.push(TimelineEntry::new(epoch.elapsed(), Lane::Upstream, format!("action: {:?}", s.workload.action)));
    }

    // The requests.
    let mut out = Vec::new();
    let (sweep_from, sweep_to) = (dur(&s.workload.sweep_from, factor), dur(&s.workload.sweep_to, factor));
    let gap = dur(&s.workload.gap, factor);
    let total: u32 = s.requests.iter().map(|g| g.count).sum();
    let mut k = 0u32;
    for (gi, g) in s.requests.iter().enumerate() {
        let path = scale_path(&g.path, factor);
        let handler_path = path.split('?').next().unwrap_or("").to_string();
        for _ in 0..g.count {
            let this_gap = if s.natural() {
                let f = if total > 1 { k as f64 / (total - 1) as f64 } else { 0.0 };
                sweep_from + (sweep_to.saturating_sub(sweep_from)).mul_f64(f)
            } else {
                gap
            };
            k += 1;
            if !this_gap.is_zero() {
                // Workload pacing (the scenario's request gap), not a wait for an event.
                tokio::time::sleep(this_gap).await;
            }
            let runs_before = upstreams.handler_runs(&handler_path).await;
            let errors_before = proxy.error_lines().len();
            let t0 = Instant::now();
            tl.push(TimelineEntry::new(epoch.elapsed(), Lane::Client, format!("{} {path}", g.method)));
            let sent = if g.method == "POST" || g.body > 0 {
                client_post(&mut client, &g.method, &path, g.body).await
            } else {
                client.send(format!("{} {path} HTTP/1.1\r\nHost: lab\r\n\r\n", g.method).as_bytes()).await
            };
            let ex = if sent.is_ok() { Some(client.read_response(read_limit).await) } else { None };
            let latency = t0.elapsed();
            let resp = ex.as_ref().and_then(|e| e.response.clone());
            let reconnect = ex.as_ref().is_none_or(|e| e.end.is_some() || e.response.as_ref().is_none_or(|r| !r.complete || r.connection_close));
            seen += 1;
            let logged = proxy.wait_access(seen, Duration::from_secs(5)).await;
            let (upstream_status, upstream_response_time) = if logged { proxy.access(seen - 1).unwrap_or_default() } else { Default::default() };
            let lines: Vec<String> = proxy.error_lines().into_iter().skip(errors_before).filter(|l| l.contains("[error]")).collect();
            let errors = lines.iter().map(|l| nginx_model::failure::class_of_log_line(l).map(|c| c.to_string()).unwrap_or_else(|| "other".into())).collect();
            if let ProxyRun::Nginx(_) = proxy {
                // nginx logs to the second; place its lines when they were read.
                for l in &lines {
                    let msg = l.split_once(": *").and_then(|(_, r)| r.split_once(' ')).map(|(_, m)| m).unwrap_or(l);
                    let msg = msg.split(", client:").next().unwrap_or(msg);
                    tl.push(TimelineEntry::new(epoch.elapsed(), Lane::Proxy, format!("error.log: {msg}")));
                }
            }
            let truncated = resp.as_ref().is_some_and(|r| !r.complete);
            tl.push(TimelineEntry::new(
                epoch.elapsed(),
                Lane::Client,
                match &resp {
                    Some(r) => format!("◄ {}{} ({} B)", r.status, if truncated { " TRUNCATED" } else { "" }, r.body_len),
                    None => "◄ no response".into(),
                },
            ));
            out.push(Observation {
                group: gi,
                method: g.method.clone(),
                path: path.clone(),
                status: resp.as_ref().map(|r| r.status),
                body_bytes: resp.as_ref().map(|r| r.body_len as u64).unwrap_or(0),
                truncated,
                latency_ms: ms(latency),
                gap_ms: ms(this_gap),
                upstream_status,
                upstream_response_time,
                errors,
                error_lines: lines,
                handler_runs: upstreams.handler_runs(&handler_path).await - runs_before,
            });
            if reconnect {
                client = WireClient::connect(addr).await.map_err(|e| format!("reconnect to proxy: {e}"))?;
            }
        }
    }
    Ok(out)
}

/// Local ports in CLOSE_WAIT (TCP state 08) per /proc/net/tcp{,6}.
fn close_wait_ports() -> Vec<u16> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(f) else { continue };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 3 && cols[3] == "08" {
                if let Some(port) = cols[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) {
                    out.push(port);
                }
            }
        }
    }
    out
}

/// Waits, bounded, until none of `ports` is in CLOSE_WAIT: the proxy has
/// seen the peer's FIN and closed its side.
async fn wait_close_wait_cleared(ports: &[u16], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let waiting = close_wait_ports();
        if !ports.iter().any(|p| waiting.contains(p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn client_post(c: &mut WireClient, method: &str, path: &str, body: usize) -> std::io::Result<()> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: lab\r\nContent-Length: {body}\r\n\r\n").into_bytes();
    req.resize(req.len() + body, b'p');
    // A 1 MiB body to an upstream that resets: nginx may answer before it
    // has read everything; the write is bounded so it cannot hang.
    match tokio::time::timeout(Duration::from_secs(5), c.send(&req)).await {
        Ok(r) => r,
        Err(_) => Ok(()),
    }
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
    if let Some(want) = e.handler_runs {
        if o.handler_runs != want {
            bad.push(format!("handler ran {} times, expected {want}", o.handler_runs));
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

fn judge(groups: &[RequestGroup], obs: &[Observation], scale_factor: f64) -> Vec<GroupVerdict> {
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
            }
        })
        .collect()
}

/// Whether runs of one scenario on different backends agree: every run that
/// was not skipped met the expectations, and deterministic scenarios saw the
/// same status, upstream_status and handler runs request by request.
pub fn agreement(runs: &[RunResult]) -> Result<(), String> {
    let live: Vec<&RunResult> = runs.iter().filter(|r| r.skipped.is_none()).collect();
    for r in &live {
        if !r.passed {
            return Err(format!("{:?}/{:?} failed its expectations", r.proxy, r.upstream));
        }
    }
    let Some(first) = live.first() else { return Ok(()) };
    let natural = first.verdicts.iter().any(|v| v.expect.status_in.is_some());
    if natural {
        return Ok(());
    }
    for r in &live[1..] {
        for (a, b) in first.observations.iter().zip(&r.observations) {
            if (a.status, &a.upstream_status, a.handler_runs) != (b.status, &b.upstream_status, b.handler_runs) {
                return Err(format!(
                    "{} {}: {:?} {:?} ×{} vs {:?}/{:?}: {:?} {:?} ×{}",
                    a.method, a.path, a.status, a.upstream_status, a.handler_runs, r.proxy, r.upstream, b.status, b.upstream_status, b.handler_runs
                ));
            }
        }
    }
    Ok(())
}
