//! `scenarios lab`: the docker-compose lab's driver. With the lab up
//! (`docker-compose.yml`: real nginx and the Rust proxy, both reading
//! fixtures/nginx.conf with only its addresses changed, in front of
//! upstream-sim), it replays a catalogue scenario through each proxy in
//! its container and prints the two verdicts side by side; then it puts a
//! network fault between the containers (the upstream paused, or its
//! traffic dropped) and shows the 504 each proxy gives.
//!
//! What it uses of the lab, from the host:
//! * the published ports (127.0.0.1: nginx 18081, proxy 18082, the
//!   upstream's control endpoint 18090), as a client;
//! * upstream-sim's control endpoint (`PUT /config`: the scenario's Go
//!   settings and idle-race knob, at the run's scale; `GET /handler-runs`);
//! * the `docker` command: the containers are found by their
//!   `badgateway-lab.service` label, their logs read with `docker exec`
//!   (`/lab/run/access.log`, `error.log`, the configuration they run), the
//!   upstream paused with `docker pause`; dropping its traffic runs
//!   `iptables` in its network namespace (`nsenter`, so root on the
//!   engine's host).
//!
//! The nginx side is the lab's file, not the scenario's: a scenario whose
//! nginx settings differ (another keepalive_timeout, proxy_next_upstream,
//! a scaled proxy_read_timeout, ...) or whose workload needs more than the
//! control endpoint offers (crash, restart, shutdown actions; several
//! servers) is refused with the reason.

use crate::runner::{agreement, ProxyBackend, RunResult, UpstreamBackend};
use crate::scenario::{scale, scale_path, Action, Expect, RequestGroup, Scenario};
use crate::setup::{go_config, nginx_config};
use crate::verdict::{check, judge, Observation};
use crate::Error;
use go_model::{GoVersion, IdleRace, ServerConfig};
use harness::client::{Request, WireClient};
use harness::nginx::parse_lab_access;
use nginx_model::resolve::{resolve, Resolved, ResolvedLocation, ResolvedUpstream};
use nginx_model::Profile;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Where both proxies' nginx.conf, logs and temp files live in their containers.
pub const RUN_DIR: &str = "/lab/run";
/// The label docker-compose.yml gives each service's container.
pub const SERVICE_LABEL: &str = "badgateway-lab.service";
/// The upstream's port inside the lab network.
const UPSTREAM_PORT: u16 = 18080;

/// A network fault between the containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Fault {
    /// `docker pause` the upstream: its kernel still accepts and ACKs, no
    /// reply comes → proxy_read_timeout, 504.
    Pause,
    /// Drop the packets to the upstream's port (iptables in its network
    /// namespace) with no cached connection left → proxy_connect_timeout, 504.
    Drop,
}

impl Fault {
    fn describe(self) -> &'static str {
        match self {
            Fault::Pause => "the upstream container paused (docker pause)",
            Fault::Drop => "packets to the upstream's port dropped (iptables DROP in its network namespace), no cached connection",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LabOptions {
    /// A catalogue name or a scenario file.
    pub scenario: String,
    pub nginx: SocketAddr,
    pub proxy: SocketAddr,
    /// upstream-sim's control endpoint.
    pub control: SocketAddr,
    pub scale: f64,
    /// The docker command.
    pub docker: PathBuf,
    /// Only containers of this compose project (else the one lab running).
    pub project: Option<String>,
    pub faults: Vec<Fault>,
    /// How long the lab may take to answer at all (just after `up -d`).
    pub ready_limit: Duration,
}

/// `scenarios lab`'s command line.
#[derive(Debug, Clone, clap::Args)]
pub struct LabArgs {
    /// A catalogue name (one whose nginx settings are fixtures/nginx.conf's) or a scenario file.
    #[arg(default_value = "idle-race")]
    pub scenario: String,
    /// Real nginx's published address.
    #[arg(long, default_value = "127.0.0.1:18081")]
    pub nginx: SocketAddr,
    /// The Rust proxy's published address.
    #[arg(long, default_value = "127.0.0.1:18082")]
    pub proxy: SocketAddr,
    /// upstream-sim's control endpoint.
    #[arg(long, default_value = "127.0.0.1:18090")]
    pub control: SocketAddr,
    /// Duration multiplier (article scale → run scale).
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// A network fault to put between the containers after the scenario
    /// (repeatable): pause (docker pause the upstream → proxy_read_timeout)
    /// or drop (its packets dropped → proxy_connect_timeout; root, nsenter
    /// and iptables on the engine's host). Each takes nginx's 60 s timeout.
    #[arg(long = "fault", value_enum)]
    pub faults: Vec<Fault>,
    /// The docker command (its DOCKER_HOST applies).
    #[arg(long, default_value = "docker")]
    pub docker: PathBuf,
    /// Only containers of this compose project.
    #[arg(long)]
    pub project: Option<String>,
    /// How long the lab may take to answer at all (right after `up -d`), in seconds.
    #[arg(long, default_value_t = 60)]
    pub ready_timeout: u64,
    /// Write the report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// `scenarios lab`: runs the lab and writes `--json`; `Ok(passed)`.
pub async fn command(a: &LabArgs) -> Result<bool, Error> {
    if !(a.scale > 0.0 && a.scale <= 10.0) {
        return Err(Error::Usage(format!("--scale {}: must be in (0, 10]", a.scale)));
    }
    let mut faults = a.faults.clone();
    faults.dedup();
    let o = LabOptions {
        scenario: a.scenario.clone(),
        nginx: a.nginx,
        proxy: a.proxy,
        control: a.control,
        scale: a.scale,
        docker: a.docker.clone(),
        project: a.project.clone(),
        faults,
        ready_limit: Duration::from_secs(a.ready_timeout),
    };
    let report = run(&o).await?;
    if let Some(path) = &a.json {
        let doc = crate::document::Document::new(crate::document::Body::Lab(report.clone()));
        std::fs::write(path, doc.to_json()?).map_err(|source| Error::Io { path: path.clone(), source })?;
    }
    Ok(report.passed)
}

/// The whole run, for `--json`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LabReport {
    pub passed: bool,
    pub runs: Vec<RunResult>,
    /// Why the two runs disagree, if they do.
    pub disagreement: Option<String>,
    pub faults: Vec<FaultRun>,
    pub wall_ms: f64,
}

/// One proxy under one fault.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FaultRun {
    pub fault: Fault,
    pub proxy: ProxyBackend,
    pub expect: Expect,
    pub observation: Observation,
    pub passed: bool,
    pub mismatches: Vec<String>,
}

/// A container of the lab, found by its service label.
#[derive(Debug, Clone)]
struct Container {
    docker: PathBuf,
    id: String,
    name: String,
}

/// How long one docker command may take.
const DOCKER_LIMIT: Duration = Duration::from_secs(60);

async fn docker(docker: &std::path::Path, args: Vec<String>) -> Result<String, Error> {
    let shown = format!("{} {}", docker.display(), args.join(" "));
    let mut cmd = Command::new(docker);
    cmd.args(&args);
    let out = tokio::task::spawn_blocking(move || harness::child::run_bounded(cmd, DOCKER_LIMIT, 64 << 20))
        .await
        .map_err(|e| Error::Lab(format!("{shown}: {e}")))?
        .map_err(|e| Error::Lab(format!("{shown}: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Lab(format!("{shown}: {} ({})", err.trim(), out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Container {
    async fn find(docker_cmd: &std::path::Path, service: &str, project: Option<&str>) -> Result<Container, Error> {
        let mut args: Vec<String> = vec!["ps".into(), "-q".into(), "--no-trunc".into(), "--filter".into(), format!("label={SERVICE_LABEL}={service}")];
        if let Some(p) = project {
            args.extend(["--filter".into(), format!("label=com.docker.compose.project={p}")]);
        }
        let out = docker(docker_cmd, args).await?;
        let ids: Vec<&str> = out.split_whitespace().collect();
        let id = match ids.as_slice() {
            [id] => id.to_string(),
            [] => {
                return Err(Error::Lab(format!(
                    "no running container of the lab's {service} service (label {SERVICE_LABEL}={service}{}); start the lab: docker compose up --build -d (README, \"Lab\")",
                    project.map(|p| format!(", project {p}")).unwrap_or_default()
                )))
            }
            _ => return Err(Error::Lab(format!("{} running containers of the lab's {service} service: name the compose project with --project", ids.len()))),
        };
        let name = docker(docker_cmd, vec!["inspect".into(), "-f".into(), "{{.Name}}".into(), id.clone()]).await?.trim().trim_start_matches('/').to_string();
        Ok(Container { docker: docker_cmd.to_path_buf(), id, name })
    }

    async fn exec(&self, argv: &[&str]) -> Result<String, Error> {
        let mut args = vec!["exec".to_string(), self.id.clone()];
        args.extend(argv.iter().map(|s| s.to_string()));
        docker(&self.docker, args).await
    }

    /// The number of lines of a file in the container.
    async fn count(&self, file: &str) -> Result<usize, Error> {
        let out = self.exec(&["sh", "-c", "wc -l < \"$1\"", "sh", file]).await?;
        out.trim().parse().map_err(|_| Error::Lab(format!("{}: wc -l {file} printed {out:?}", self.name)))
    }

    /// The lines of a file after its first `skip`.
    async fn lines_after(&self, file: &str, skip: usize) -> Result<Vec<String>, Error> {
        let from = format!("+{}", skip + 1);
        Ok(self.exec(&["tail", "-n", &from, file]).await?.lines().map(String::from).collect())
    }

    /// Waits (bounded, polling the file) until it has at least `n` lines.
    async fn wait_lines(&self, file: &str, n: usize, limit: Duration) -> Result<bool, Error> {
        let deadline = Instant::now() + limit;
        loop {
            if self.count(file).await? >= n {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn pid(&self) -> Result<u32, Error> {
        let out = docker(&self.docker, vec!["inspect".into(), "-f".into(), "{{.State.Pid}}".into(), self.id.clone()]).await?;
        out.trim().parse().map_err(|_| Error::Lab(format!("{}: no PID in {out:?}", self.name)))
    }
}

/// upstream-sim's control endpoint: one request per connection.
struct Control {
    addr: SocketAddr,
}

impl Control {
    async fn call(&self, method: &str, path: &str, body: &str) -> Result<String, Error> {
        let fail = |e: std::io::Error| Error::Lab(format!("upstream-sim control endpoint {}: {method} {path}: {e}", self.addr));
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(self.addr).await?;
            let req = format!("{method} {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len());
            s.write_all(req.as_bytes()).await?;
            let mut out = Vec::new();
            s.read_to_end(&mut out).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&out).into_owned())
        };
        let text = tokio::time::timeout(Duration::from_secs(15), exchange)
            .await
            .map_err(|_| fail(std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply within 15 s")))?
            .map_err(fail)?;
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        if head.split(' ').nth(1) != Some("200") {
            return Err(Error::Lab(format!("upstream-sim control endpoint {}: {method} {path} {body:?}: {}", self.addr, head.lines().next().unwrap_or("no reply"))));
        }
        Ok(body.trim().to_string())
    }

    async fn config(&self) -> Result<String, Error> {
        self.call("GET", "/config", "").await
    }

    /// Restarts upstream-sim with these flags.
    async fn set(&self, flags: &str) -> Result<String, Error> {
        self.call("PUT", "/config", flags).await
    }

    async fn handler_runs(&self, path: &str) -> Result<u64, Error> {
        let body = self.call("GET", "/handler-runs", "").await?;
        let runs: std::collections::BTreeMap<String, u64> = serde_json::from_str(&body)?;
        Ok(runs.get(path).copied().unwrap_or(0))
    }
}

/// A scenario's Go settings as upstream-sim's flags.
pub fn upstream_flags(cfg: &ServerConfig) -> String {
    let mut f = harness::go::go_flags(cfg);
    f.push(format!("--go-version={}", if cfg.go_version == GoVersion::Go120 { "1.20" } else { "1.19" }));
    f.push(format!("--backlog={}", cfg.backlog));
    if let Some(r) = cfg.idle_race {
        f.push(format!("--idle-race={}", if r == IdleRace::Rst { "rst" } else { "fin" }));
    }
    f.join(" ")
}

/// The location `/` of the first server and its upstream.
fn location_of(r: &Resolved) -> Option<(&ResolvedLocation, &ResolvedUpstream)> {
    let loc = r.servers.first()?.locations.iter().find(|l| l.path == "/")?;
    Some((loc, r.upstreams.get(loc.upstream)?))
}

/// Whether the lab can run scenario `s` at `factor`: its workload is one the
/// driver can drive, and its nginx settings are the lab's (`lab` is the
/// nginx.conf both proxies run). `Err` says why not.
pub fn fits_lab(s: &Scenario, lab: &nginx_model::conf::Config, factor: f64) -> Result<(), String> {
    if s.workload.action != Action::None {
        return Err(format!("its workload acts on the upstream ({:?}); the lab's driver only sets Go settings (run it on loopback: scenarios {})", s.workload.action, s.name));
    }
    if s.workload.warmup_concurrent {
        return Err("its warm-up opens concurrent connections; the lab's driver warms up one connection".into());
    }
    if s.go.servers != 1 {
        return Err(format!("it needs {} upstream servers; the lab has one", s.go.servers));
    }
    if s.go.shutdown_race.is_some() {
        return Err("it needs the shutdown-race knob, which the control endpoint does not set".into());
    }
    if s.nginx.ip_local_port_range.is_some() {
        return Err(format!("it sets nginx's ip_local_port_range, a kernel setting of the nginx host the lab's containers share with the machine (run it on loopback, in a network namespace of its own: scenarios {})", s.name));
    }
    let lab = resolve(lab, Profile::Legacy).map_err(|e| format!("the lab's nginx.conf does not resolve: {e}"))?;
    let ours = resolve(&nginx_config(s, &[SocketAddr::from(([127, 0, 0, 1], UPSTREAM_PORT))], SocketAddr::from(([127, 0, 0, 1], 18081)), factor), Profile::Legacy)
        .map_err(|e| format!("its nginx settings do not resolve: {e}"))?;
    let ((la, ua), (lb, ub)) = match (location_of(&ours), location_of(&lab)) {
        (Some(a), Some(b)) => (a, b),
        (_, None) => return Err("the lab's nginx.conf has no location / proxying to an upstream".into()),
        (None, _) => return Err("its nginx settings have no location /".into()),
    };
    let mut diffs: Vec<String> = Vec::new();
    let mut cmp = |what: &str, a: String, b: String| {
        if a != b {
            diffs.push(format!("{what}: the scenario's {a}, the lab's {b}"));
        }
    };
    cmp("proxy_http_version 1.1", format!("{}", la.http11), format!("{}", lb.http11));
    cmp("proxy_set_header", format!("{:?}", la.headers), format!("{:?}", lb.headers));
    cmp("proxy_connect_timeout", format!("{:?}", la.connect_timeout), format!("{:?}", lb.connect_timeout));
    cmp("proxy_send_timeout", format!("{:?}", la.send_timeout), format!("{:?}", lb.send_timeout));
    cmp("proxy_read_timeout", format!("{:?}", la.read_timeout), format!("{:?}", lb.read_timeout));
    cmp("proxy_next_upstream", format!("{:?}", la.next_upstream), format!("{:?}", lb.next_upstream));
    cmp("proxy_next_upstream_tries", format!("{}", la.next_upstream_tries), format!("{}", lb.next_upstream_tries));
    cmp("proxy_next_upstream_timeout", format!("{:?}", la.next_upstream_timeout), format!("{:?}", lb.next_upstream_timeout));
    cmp("proxy_request_buffering", format!("{}", la.request_buffering), format!("{}", lb.request_buffering));
    cmp("proxy_buffer_size", format!("{}", la.buffer_size), format!("{}", lb.buffer_size));
    cmp("client_max_body_size", format!("{}", la.client_max_body_size), format!("{}", lb.client_max_body_size));
    cmp("client_body_buffer_size", format!("{}", la.client_body_buffer_size), format!("{}", lb.client_body_buffer_size));
    cmp("upstream keepalive", format!("{:?}", ua.keepalive), format!("{:?}", ub.keepalive));
    let params = |u: &ResolvedUpstream| u.peers.iter().map(|p| format!("weight={} max_fails={} fail_timeout={:?}{}{}", p.weight, p.max_fails, p.fail_timeout, if p.down { " down" } else { "" }, if p.backup { " backup" } else { "" })).collect::<Vec<_>>();
    cmp("upstream servers", format!("{:?}", params(ua)), format!("{:?}", params(ub)));
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("its nginx settings are not the lab's nginx.conf: {}", diffs.join("; ")))
    }
}

/// One proxy of the lab.
struct Side {
    backend: ProxyBackend,
    /// "nginx" or "proxy": the compose service.
    service: &'static str,
    addr: SocketAddr,
    container: Container,
    /// "nginx/1.22.1" or "proxy 0.1.0".
    program: String,
}

impl Side {
    fn access(&self) -> String {
        format!("{RUN_DIR}/access.log")
    }
    fn errors(&self) -> String {
        format!("{RUN_DIR}/error.log")
    }
    fn title(&self) -> String {
        format!("{} ({})", self.program, self.container.name)
    }
}

/// Waits (bounded) until `addr` answers `GET /ok` with 200.
async fn wait_ready(addr: SocketAddr, what: &str, limit: Duration) -> Result<(), Error> {
    let deadline = Instant::now() + limit;
    let mut last = String::from("no answer");
    loop {
        if let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), WireClient::connect(addr)).await {
            if c.send_request(&Request::get("/ok").close()).await.is_ok() {
                match c.read_response(Duration::from_secs(5)).await.response {
                    Some(r) if r.status == 200 => return Ok(()),
                    Some(r) => last = format!("status {}", r.status),
                    None => last = "no response".into(),
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(Error::Lab(format!("{what} at {addr} did not answer GET /ok with 200 within {} s ({last}); is the lab up? docker compose ps", limit.as_secs())));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The pause before request `k` of `total` (the runner's rule).
fn gap_before(s: &Scenario, factor: f64, k: u32, total: u32) -> Duration {
    crate::runner::gap_before(s, factor, k, total)
}

/// What the driver saw of one request through `side`.
struct Probe<'a> {
    side: &'a Side,
    control: &'a Control,
    read_limit: Duration,
}

impl Probe<'_> {
    /// Sends one request on `client` (reconnecting afterwards if the
    /// connection cannot be reused) and reads what the three sides saw:
    /// the response, the proxy's access and error logs, the handler runs.
    async fn request(&self, client: &mut WireClient, seen: &mut usize, group: usize, g: &RequestGroup, path: &str, gap: Duration) -> Result<Observation, Error> {
        let handler_path = path.split('?').next().unwrap_or_default().to_string();
        let runs_before = self.control.handler_runs(&handler_path).await?;
        let errors_before = self.side.container.count(&self.side.errors()).await?;
        let mut req = Request::new(&g.method, path);
        if g.method == "POST" || g.body > 0 {
            req = req.with_body(g.body);
        }
        let t0 = Instant::now();
        let sent = tokio::time::timeout(Duration::from_secs(5), client.send_request(&req)).await.unwrap_or(Ok(()));
        let ex = match sent {
            Ok(()) => Some(client.read_response(self.read_limit).await),
            Err(_) => None,
        };
        let latency = t0.elapsed();
        let resp = ex.as_ref().and_then(|e| e.response.clone());
        let reconnect = ex.as_ref().is_none_or(|e| e.end.is_some() || e.response.as_ref().is_none_or(|r| !r.complete || r.connection_close));
        *seen += 1;
        // Closed: close this side first, as in the runner (nginx's lingering
        // close waits for the client's FIN before the access line).
        if reconnect {
            *client = WireClient::connect(self.side.addr).await.map_err(|source| Error::Client { what: "reconnect to", addr: self.side.addr, source })?;
        }
        let access = self.access_entry(*seen).await?;
        let lines: Vec<String> = self.side.container.lines_after(&self.side.errors(), errors_before).await?.into_iter().filter(|l| nginx_model::logs::Level::line_is_failure(l)).collect();
        let errors = lines.iter().map(|l| nginx_model::failure::class_of_log_line(l).map(|c| c.to_string()).unwrap_or_else(|| "other".into())).collect();
        let runs_after = self.control.handler_runs(&handler_path).await?;
        Ok(Observation {
            group,
            method: g.method.clone(),
            path: path.to_string(),
            status: resp.as_ref().map(|r| r.status),
            body_bytes: resp.as_ref().map_or(0, |r| r.body_len as u64),
            truncated: resp.as_ref().is_some_and(|r| !r.complete),
            latency_ms: ms(latency),
            gap_ms: ms(gap),
            upstream_status: access.as_ref().map(|a| a.upstream_status.clone()).unwrap_or_default(),
            upstream_response_time: access.map(|a| a.upstream_response_time).unwrap_or_default(),
            errors,
            error_lines: lines,
            handler_runs: Some(runs_after.saturating_sub(runs_before)),
        })
    }

    /// Access-log entry `n` (1-based), waited for (bounded).
    async fn access_entry(&self, n: usize) -> Result<Option<harness::nginx::LabAccess>, Error> {
        let file = self.side.access();
        if !self.side.container.wait_lines(&file, n, Duration::from_secs(5)).await? {
            return Ok(None);
        }
        Ok(self.side.container.lines_after(&file, n - 1).await?.first().and_then(|l| parse_lab_access(l)))
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `s` through one proxy: the upstream restarted with the scenario's
/// Go settings (which also empties the proxy's keepalive cache), the
/// warm-up, then every request with its gap.
async fn run_side(s: &Scenario, side: &Side, upstream: &Container, control: &Control, flags: &str, factor: f64) -> Result<RunResult, Error> {
    control.set(flags).await?;
    let wall = Instant::now();
    let probe = Probe { side, control, read_limit: Duration::from_secs(5) + scale(Duration::from_secs(120), factor) };
    let connect = || async { WireClient::connect(side.addr).await.map_err(|source| Error::Client { what: "connect to", addr: side.addr, source }) };
    let mut client = connect().await?;
    let mut seen = side.container.count(&side.access()).await?;
    for _ in 0..s.workload.warmup {
        client.get("/ok").await.map_err(|source| Error::Client { what: "send to", addr: side.addr, source })?;
        let ex = client.read_response(probe.read_limit).await;
        if ex.end.is_some() || ex.response.as_ref().is_none_or(|r| r.connection_close) {
            client = connect().await?;
        }
    }
    seen += s.workload.warmup as usize;
    side.container.wait_lines(&side.access(), seen, Duration::from_secs(5)).await?;
    let total: u32 = s.requests.iter().map(|g| g.count).sum();
    let mut observations = Vec::new();
    let requests = s.requests.iter().enumerate().flat_map(|(gi, g)| std::iter::repeat_n((gi, g), g.count as usize));
    for (k, (gi, g)) in (0..).zip(requests) {
        let gap = gap_before(s, factor, k, total);
        if !gap.is_zero() {
            // Workload pacing (the scenario's request gap), not a wait for an event.
            tokio::time::sleep(gap).await;
        }
        let path = scale_path(&g.path, factor);
        observations.push(probe.request(&mut client, &mut seen, gi, g, &path, gap).await?);
    }
    let verdicts = judge(&s.requests, &observations, factor);
    Ok(RunResult {
        scenario: s.name.clone(),
        title: s.title.clone(),
        proxy: side.backend,
        upstream: UpstreamBackend::Builtin,
        proxy_program: Some(side.title()),
        upstream_program: Some(format!("upstream-sim ({}) {flags}", upstream.name)),
        scale: factor,
        skipped: None,
        passed: verdicts.iter().all(|v| v.passed),
        verdicts,
        observations,
        timeline: Vec::new(),
        wall_ms: ms(wall.elapsed()),
    })
}

/// Undoes a fault when dropped (also on an error or a panic of the driver).
struct Undo {
    cmd: Option<(PathBuf, Vec<String>)>,
}

impl Undo {
    fn now(&mut self) -> Result<(), Error> {
        let Some((prog, args)) = self.cmd.take() else { return Ok(()) };
        let mut cmd = Command::new(&prog);
        cmd.args(&args);
        let out = harness::child::run_bounded(cmd, DOCKER_LIMIT, 1 << 20).map_err(|e| Error::Lab(format!("{} {}: {e}", prog.display(), args.join(" "))))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::Lab(format!("{} {}: {}", prog.display(), args.join(" "), String::from_utf8_lossy(&out.stderr).trim())))
        }
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        if let Err(e) = self.now() {
            eprintln!("scenarios lab: {e}");
        }
    }
}

/// Waits (bounded) until `side` holds no connection to the upstream's port
/// (its keepalive cache emptied: read from the container's /proc/net/tcp).
async fn wait_no_upstream_conns(side: &Side, limit: Duration) -> Result<(), Error> {
    let port = format!(":{UPSTREAM_PORT:04X} ");
    let deadline = Instant::now() + limit;
    loop {
        let table = side.container.exec(&["cat", "/proc/net/tcp", "/proc/net/tcp6"]).await?;
        // Fields: sl local_address rem_address st ...; states other than
        // TIME_WAIT (06) and CLOSE (07) are connections still held.
        let held = table.lines().filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && format!("{} ", f[2]).ends_with(&port) && !matches!(f[3], "06" | "07")
        });
        if held.count() == 0 {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Lab(format!("{} still holds connections to the upstream {} s after its restart", side.container.name, limit.as_secs())));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One fault: set up, one `GET /ok` through each proxy at once, undone.
async fn run_fault(fault: Fault, sides: &[Side], upstream: &Container, control: &Control, flags: &str, lab: &Resolved) -> Result<Vec<FaultRun>, Error> {
    let (loc, _) = location_of(lab).ok_or_else(|| Error::Lab("the lab's nginx.conf has no location /".into()))?;
    // Each fault starts from a fresh upstream (no cached connection).
    control.set(flags).await?;
    for side in sides {
        wait_no_upstream_conns(side, Duration::from_secs(5)).await?;
    }
    let (limit, class) = match fault {
        Fault::Pause => (loc.read_timeout, "read-timeout"),
        Fault::Drop => (loc.connect_timeout, "connect-timeout"),
    };
    let mut undo = match fault {
        Fault::Pause => {
            // A cached connection in each proxy first: the request then goes
            // out on it, as it would in production.
            for side in sides {
                wait_ready(side.addr, side.service, Duration::from_secs(5)).await?;
            }
            docker(&upstream.docker, vec!["pause".into(), upstream.id.clone()]).await?;
            Undo { cmd: Some((upstream.docker.clone(), vec!["unpause".into(), upstream.id.clone()])) }
        }
        Fault::Drop => {
            let pid = upstream.pid().await?.to_string();
            let rule = |op: &str| -> Vec<String> {
                ["-t", &pid, "-n", "iptables", "-w", op, "INPUT", "-p", "tcp", "--dport", &UPSTREAM_PORT.to_string(), "-j", "DROP"].map(String::from).to_vec()
            };
            let out = tokio::task::spawn_blocking({
                let args = rule("-I");
                move || {
                    let mut cmd = Command::new("nsenter");
                    cmd.args(&args);
                    harness::child::run_bounded(cmd, DOCKER_LIMIT, 1 << 20)
                }
            })
            .await
            .map_err(|e| Error::Lab(e.to_string()))?
            .map_err(|e| Error::Lab(format!("nsenter (drop the upstream's packets; needs root on the Docker engine's host, nsenter and iptables): {e}")))?;
            if !out.status.success() {
                return Err(Error::Lab(format!("nsenter ... iptables -I INPUT ... -j DROP: {}", String::from_utf8_lossy(&out.stderr).trim())));
            }
            Undo { cmd: Some((PathBuf::from("nsenter"), rule("-D"))) }
        }
    };
    let expect = Expect {
        status: Some(504),
        upstream_status: Some(vec![504]),
        errors: Some(vec![class.to_string()]),
        min_latency: Some(format!("{}s", limit.as_secs_f64())),
        ..Expect::default()
    };
    let group = RequestGroup { method: "GET".into(), path: "/ok".into(), body: 0, count: 1, client_pause: None, expect: expect.clone() };
    let read_limit = limit + Duration::from_secs(30);
    let runs = sides.iter().map(|side| {
        let group = &group;
        async move {
            let probe = Probe { side, control, read_limit };
            let mut seen = side.container.count(&side.access()).await?;
            let mut client = WireClient::connect(side.addr).await.map_err(|source| Error::Client { what: "connect to", addr: side.addr, source })?;
            probe.request_during_fault(&mut client, &mut seen, group).await
        }
    });
    let results = futures_join(runs).await;
    undo.now()?;
    let mut out = Vec::new();
    for (side, r) in sides.iter().zip(results) {
        let o = r?;
        let mismatches = check(&expect, &o, 1.0);
        out.push(FaultRun { fault, proxy: side.backend, expect: expect.clone(), passed: mismatches.is_empty(), mismatches, observation: o });
    }
    Ok(out)
}

impl Probe<'_> {
    /// A request while the upstream cannot answer: its handler counter is
    /// not asked (the control endpoint lives in the paused container).
    async fn request_during_fault(&self, client: &mut WireClient, seen: &mut usize, g: &RequestGroup) -> Result<Observation, Error> {
        let errors_before = self.side.container.count(&self.side.errors()).await?;
        let t0 = Instant::now();
        client.get(&g.path).await.map_err(|source| Error::Client { what: "send to", addr: self.side.addr, source })?;
        let ex = client.read_response(self.read_limit).await;
        let latency = t0.elapsed();
        *seen += 1;
        let access = self.access_entry(*seen).await?;
        let lines: Vec<String> = self.side.container.lines_after(&self.side.errors(), errors_before).await?.into_iter().filter(|l| nginx_model::logs::Level::line_is_failure(l)).collect();
        let errors = lines.iter().map(|l| nginx_model::failure::class_of_log_line(l).map(|c| c.to_string()).unwrap_or_else(|| "other".into())).collect();
        Ok(Observation {
            group: 0,
            method: g.method.clone(),
            path: g.path.clone(),
            status: ex.response.as_ref().map(|r| r.status),
            body_bytes: ex.response.as_ref().map_or(0, |r| r.body_len as u64),
            truncated: ex.response.as_ref().is_some_and(|r| !r.complete),
            latency_ms: ms(latency),
            gap_ms: 0.0,
            upstream_status: access.as_ref().map(|a| a.upstream_status.clone()).unwrap_or_default(),
            upstream_response_time: access.map(|a| a.upstream_response_time).unwrap_or_default(),
            errors,
            error_lines: lines,
            handler_runs: None,
        })
    }
}

/// Runs futures concurrently and returns their outputs in order.
async fn futures_join<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let pinned: Vec<_> = fs.map(Box::pin).collect();
    let mut outs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    let mut pending: Vec<_> = pinned.into_iter().enumerate().collect();
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(i, f)| match f.as_mut().poll(cx) {
            std::task::Poll::Ready(v) => {
                outs[*i] = Some(v);
                false
            }
            std::task::Poll::Pending => true,
        });
        if pending.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outs.into_iter().map(|o| o.expect("every future finished")).collect()
}

/// Runs the lab: the scenario through both proxies, then the faults.
/// Prints as it goes; the report says whether every verdict held.
pub async fn run(o: &LabOptions) -> Result<LabReport, Error> {
    let started = Instant::now();
    let s = crate::catalogue::resolve(&o.scenario)?;
    let project = o.project.as_deref();
    let upstream = Container::find(&o.docker, "upstream", project).await?;
    let nginx = Container::find(&o.docker, "nginx", project).await?;
    let proxy = Container::find(&o.docker, "proxy", project).await?;
    let control = Control { addr: o.control };
    let saved = control.config().await?;
    // The configuration both proxies run (the same file in each container).
    let conf_path = format!("{RUN_DIR}/nginx.conf");
    let text = nginx.exec(&["cat", &conf_path]).await?;
    if proxy.exec(&["cat", &conf_path]).await? != text {
        return Err(Error::Lab(format!("{conf_path} differs between {} and {}: the lab's proxies must read the same file", nginx.name, proxy.name)));
    }
    let lab_conf = nginx_model::conf::parse(&text, &conf_path).map_err(|e| Error::Lab(format!("{}:{conf_path}: {e}", nginx.name)))?;
    let lab = resolve(&lab_conf, Profile::Legacy).map_err(|e| Error::Lab(format!("{}:{conf_path}: {e}", nginx.name)))?;
    if let Err(why) = fits_lab(&s, &lab_conf, o.scale) {
        return Err(Error::Lab(format!("{}: the lab cannot run it: {why}", s.name)));
    }
    let nginx_version = nginx.exec(&["sh", "-c", "nginx -v 2>&1"]).await?.trim().trim_start_matches("nginx version: ").to_string();
    let proxy_version = proxy.exec(&["proxy", "--version"]).await?.trim().to_string();
    let sides = [
        Side { backend: ProxyBackend::Nginx, service: "nginx", addr: o.nginx, container: nginx, program: nginx_version },
        Side { backend: ProxyBackend::Builtin, service: "proxy", addr: o.proxy, container: proxy, program: proxy_version },
    ];
    for side in &sides {
        wait_ready(side.addr, side.service, o.ready_limit).await?;
    }
    let flags = upstream_flags(&go_config(&s, o.scale));
    println!("lab: {} — {}", s.name, s.title);
    println!("  upstream-sim ({}) restarted for each proxy with: {flags}", upstream.name);
    println!("  both proxies run {conf_path}: fixtures/nginx.conf with its addresses changed; scale {}\n", o.scale);
    // Sequential: the two runs share the upstream and its handler counters.
    let mut runs = Vec::new();
    let mut failed = None;
    for side in &sides {
        match run_side(&s, side, &upstream, &control, &flags, o.scale).await {
            Ok(r) => runs.push(r),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let restore = control.set(&saved).await;
    if let Some(e) = failed {
        return Err(e);
    }
    restore?;
    let disagreement = agreement(&runs).err().map(|d| d.to_string());
    print!("{}", side_by_side(&s, &sides, &runs));
    match &disagreement {
        None => println!("  agreement: the same status, upstream_status and handler runs, request by request  {}\n", crate::report::pass_word(true)),
        Some(d) => println!("  agreement: {d}  {}\n", crate::report::pass_word(false)),
    }
    let mut faults = Vec::new();
    for &fault in &o.faults {
        let (loc, _) = location_of(&lab).ok_or_else(|| Error::Lab("the lab's nginx.conf has no location /".into()))?;
        let limit = if fault == Fault::Pause { ("proxy_read_timeout", loc.read_timeout) } else { ("proxy_connect_timeout", loc.connect_timeout) };
        println!("fault: {}; GET /ok through both proxies at once ({} {} s)", fault.describe(), limit.0, limit.1.as_secs_f64());
        let f = run_fault(fault, &sides, &upstream, &control, &saved, &lab).await;
        let f = f?;
        print!("{}", fault_table(&sides, &f));
        faults.extend(f);
        println!();
    }
    let passed = runs.iter().all(|r| r.passed) && disagreement.is_none() && faults.iter().all(|f| f.passed);
    let wall_ms = ms(started.elapsed());
    println!("lab: {}  {} through both proxies{}, {:.1} s", crate::report::pass_word(passed), s.name, if faults.is_empty() { String::new() } else { format!(" + {} fault(s)", o.faults.len()) }, wall_ms / 1e3);
    Ok(LabReport { passed, runs, disagreement, faults, wall_ms })
}

/// What a group's requests saw, in one cell: "3×200 \"502, 200\" handler×1 [premature-close] PASS".
fn cell(r: &RunResult, group: usize) -> String {
    let Some(v) = r.verdicts.iter().find(|v| v.group == group) else { return String::new() };
    let obs: Vec<&Observation> = r.observations.iter().filter(|o| o.group == group).collect();
    let statuses = v.statuses.iter().map(|(s, n)| format!("{n}×{s}")).collect::<Vec<_>>().join(" ");
    let mut uss: Vec<String> = obs.iter().map(|o| o.upstream_status.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")).collect();
    uss.dedup();
    let mut runs: Vec<String> = obs.iter().map(|o| o.handler_runs.map_or("?".into(), |n| n.to_string())).collect();
    runs.dedup();
    let mut errors: Vec<String> = obs.iter().map(|o| o.errors.join(",")).collect();
    errors.dedup();
    let errors = errors.join("|");
    format!(
        "{statuses} \"{}\" handler×{}{} {}",
        uss.join("\"|\""),
        runs.join("|"),
        if errors.is_empty() { String::new() } else { format!(" [{errors}]") },
        crate::report::pass_word(v.passed)
    )
}

/// Pads to `w` characters (not bytes: the cells hold "×" and "≥").
fn pad(s: &str, w: usize) -> String {
    let n = s.chars().count();
    format!("{s}{}", " ".repeat(w.saturating_sub(n)))
}

/// Renders rows as columns, two spaces apart.
fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| strip_colour(s).chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().enumerate().map(|(c, s)| {
            let visible = strip_colour(s).chars().count();
            format!("{s}{}", " ".repeat(widths[c].saturating_sub(visible)))
        }).collect();
        let _ = writeln!(out, "  {}", line.join("  ").trim_end());
    }
    out
}

/// The text without ANSI colour codes (for widths).
fn strip_colour(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The two verdicts side by side, a row per request group, and what
/// failed beneath.
fn side_by_side(s: &Scenario, sides: &[Side], runs: &[RunResult]) -> String {
    let mut rows = vec![{
        let mut h = vec!["request".to_string(), "expect".to_string()];
        h.extend(sides.iter().map(Side::title));
        h
    }];
    for (gi, g) in s.requests.iter().enumerate() {
        let mut row = vec![format!("{} {} ×{}", pad(&g.method, 4), g.path, g.count), crate::report::expect_text(&g.expect)];
        row.extend(runs.iter().map(|r| cell(r, gi)));
        rows.push(row);
    }
    let mut out = table(&rows);
    for (side, r) in sides.iter().zip(runs) {
        for v in r.verdicts.iter().filter(|v| !v.passed) {
            for m in &v.mismatches {
                let _ = writeln!(out, "    {} {} {}: {m}", side.service, v.method, v.path);
            }
        }
    }
    out
}

fn fault_table(sides: &[Side], runs: &[FaultRun]) -> String {
    let mut rows = vec![{
        let mut h = vec!["request".to_string(), "expect".to_string()];
        h.extend(sides.iter().map(Side::title));
        h
    }];
    let Some(first) = runs.first() else { return String::new() };
    let mut row = vec![format!("{} {}", pad(&first.observation.method, 4), first.observation.path), crate::report::expect_text(&first.expect)];
    for f in runs {
        let o = &f.observation;
        row.push(format!(
            "{} \"{}\" [{}] {:.1} s {}",
            o.status.map_or("none".into(), |s| s.to_string()),
            o.upstream_status.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", "),
            o.errors.join(","),
            o.latency_ms / 1e3,
            crate::report::pass_word(f.passed)
        ));
    }
    rows.push(row);
    let mut out = table(&rows);
    for (side, f) in sides.iter().zip(runs) {
        for m in &f.mismatches {
            let _ = writeln!(out, "    {}: {m}", side.service);
        }
        for l in &f.observation.error_lines {
            let _ = writeln!(out, "    {} error.log: {l}", side.service);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> nginx_model::conf::Config {
        nginx_model::conf::parse(include_str!("../../../fixtures/nginx.conf"), "fixtures/nginx.conf").unwrap()
    }

    #[test]
    fn the_fixture_runs_the_idle_race_and_refuses_what_it_does_not_configure() {
        let lab = fixture();
        let s = crate::catalogue::find("idle-race").unwrap();
        assert_eq!(fits_lab(&s, &lab, 0.1), Ok(()));
        let remedy = crate::catalogue::find("idle-race-remedy").unwrap();
        let why = fits_lab(&remedy, &lab, 0.1).unwrap_err();
        assert!(why.contains("upstream keepalive"), "{why}");
        let crash = crate::catalogue::find("crash").unwrap();
        assert!(fits_lab(&crash, &lab, 0.1).unwrap_err().contains("acts on the upstream"));
    }

    #[test]
    fn upstream_flags_carry_the_knob_and_the_scale() {
        let s = crate::catalogue::find("idle-race").unwrap();
        assert_eq!(
            upstream_flags(&go_config(&s, 0.1)),
            "--read-timeout=0s --read-header-timeout=0s --write-timeout=0s --idle-timeout=500ms --max-header-bytes=1048576 --keepalives=true --go-version=1.19 --backlog=4096 --idle-race=fin"
        );
    }

    #[test]
    fn tables_align_on_visible_characters() {
        let rows = vec![vec!["a×".to_string(), "b".to_string()], vec!["\x1b[32mPASS\x1b[0m".to_string(), "c".to_string()]];
        assert_eq!(table(&rows), "  a×    b\n  \x1b[32mPASS\x1b[0m  c\n");
    }
}
