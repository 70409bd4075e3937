//! The proxy: client connections (hyper's HTTP/1 server), the attempt loop
//! of `ngx_http_upstream_connect`/`ngx_http_upstream_next`, the response
//! pump, and the logs. The decisions are made by `retry`, `balancer` and
//! `failure`; this file is the I/O around them.

use nginx_model::Profile;
use nginx_model::balancer::{Peer, PeerId, RoundRobin, Tried};
use nginx_model::conf::{Config, Location, ProxyDirectives};
use crate::events::{ProxyEventKind, ProxyEvents};
use nginx_model::failure::Failure;
use crate::keepalive::{KeepaliveCache, KeepaliveSettings, UpstreamConn};
use crate::logs::Logs;
use nginx_model::logs::{self, AccessEntry, RequestCtx, UpstreamState};
use nginx_model::retry::{self, Decision, FailedAttempt, Ft, RetryContext};
use crate::upstream::{self, BodyReader};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use parking_lot::Mutex;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

struct UpstreamRt {
    name: String,
    rr: Mutex<RoundRobin>,
    cache: KeepaliveCache,
}

struct LocationRt {
    exact: bool,
    path: String,
    upstream: Arc<UpstreamRt>,
    proxy_host: String,
    http11: bool,
    /// Request headers nginx sets (name, value template); empty values are dropped.
    headers: Vec<(String, String)>,
    connect_timeout: Duration,
    send_timeout: Duration,
    read_timeout: Duration,
    mask: Ft,
    tries_cap: u32,
    next_upstream_timeout: Option<Duration>,
    request_buffering: bool,
    buffer_size: usize,
}

struct ServerRt {
    listen: SocketAddr,
    name: String,
    locations: Vec<LocationRt>,
}

struct Runtime {
    servers: Vec<ServerRt>,
    logs: Logs,
    events: ProxyEvents,
    next_conn: AtomicU64,
    next_request: AtomicU64,
}

#[derive(Debug)]
pub enum StartError {
    /// The configuration cannot be run (names what and where).
    Config(String),
    Io(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(m) | StartError::Io(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartError {}

fn resolve_addr(s: &str) -> Result<SocketAddr, String> {
    s.to_socket_addrs()
        .map_err(|e| format!("host not found in \"{s}\": {e}"))?
        .next()
        .ok_or_else(|| format!("host not found in \"{s}\""))
}

fn listen_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    resolve_addr(s)
}

/// Options that are not in nginx.conf.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub profile: Profile,
    /// `nginx -p`: where relative log paths point.
    pub prefix: PathBuf,
    /// Event timestamps are relative to this.
    pub epoch: Instant,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions { profile: Profile::Legacy, prefix: PathBuf::from("."), epoch: Instant::now() }
    }
}

/// The checks `nginx -t` would make on top of syntax, and the runtime model.
fn build_runtime(cfg: &Config, opts: &ProxyOptions, events: &ProxyEvents) -> Result<(Vec<ServerRt>, Logs), StartError> {
    let cerr = StartError::Config;
    let mut upstreams: Vec<Arc<UpstreamRt>> = Vec::new();
    for u in &cfg.upstreams {
        let mut primary = Vec::new();
        let mut backup = Vec::new();
        for s in &u.servers {
            let addr = resolve_addr(&s.addr).map_err(|e| cerr(format!("{e} in upstream \"{}\"", u.name)))?;
            let peer = Peer::new(addr, s.weight, s.max_fails, s.fail_timeout, s.down);
            if s.backup {
                backup.push(peer);
            } else {
                primary.push(peer);
            }
        }
        let capacity = nginx_model::profile::keepalive_capacity(opts.profile, u.keepalive, true);
        let settings = KeepaliveSettings {
            capacity,
            timeout: u.keepalive_timeout.unwrap_or(DEFAULT_TIMEOUT),
            requests: u.keepalive_requests.unwrap_or(1000),
            time: u.keepalive_time.unwrap_or(Duration::from_secs(3600)),
        };
        upstreams.push(Arc::new(UpstreamRt {
            name: u.name.clone(),
            rr: Mutex::new(RoundRobin::new(primary, backup)),
            cache: KeepaliveCache::new(settings, events.clone()),
        }));
    }
    let mut servers = Vec::new();
    for srv in &cfg.servers {
        let server_proxy = srv.proxy.merged_over(&cfg.proxy);
        for listen in &srv.listen {
            let addr = listen_addr(listen).map_err(|e| cerr(format!("{e} in \"listen\"")))?;
            let mut locations = Vec::new();
            for loc in &srv.locations {
                locations.push(location_rt(loc, &loc.proxy.merged_over(&server_proxy), &mut upstreams, opts, events)?);
            }
            servers.push(ServerRt { listen: addr, name: srv.server_name.clone().unwrap_or_default(), locations });
        }
    }
    if servers.is_empty() {
        return Err(cerr("no \"server\" with a \"listen\" directive".into()));
    }
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            opts.prefix.join(p)
        }
    };
    let access = match &cfg.access_log {
        Some(a) => match &a.path {
            Some(path) => {
                let fmt = if a.format == "combined" {
                    logs::COMBINED.to_string()
                } else {
                    cfg.log_formats
                        .iter()
                        .find(|(n, _)| *n == a.format)
                        .map(|(_, f)| f.clone())
                        .ok_or_else(|| cerr(format!("unknown log format \"{}\"", a.format)))?
                };
                logs::check_format(&fmt).map_err(cerr)?;
                Some((resolve(path), fmt))
            }
            None => None,
        },
        None => None,
    };
    let logs = Logs::new(cfg.error_log.as_deref().map(resolve), access)
        .map_err(|e| StartError::Io(format!("cannot open log file: {e}")))?;
    Ok((servers, logs))
}

fn location_rt(
    loc: &Location,
    p: &ProxyDirectives,
    upstreams: &mut Vec<Arc<UpstreamRt>>,
    opts: &ProxyOptions,
    events: &ProxyEvents,
) -> Result<LocationRt, StartError> {
    let cerr = StartError::Config;
    let pass = p.pass.as_deref().ok_or_else(|| cerr(format!("location \"{}\" has no \"proxy_pass\"", loc.path)))?;
    let host = pass
        .strip_prefix("http://")
        .ok_or_else(|| cerr(format!("invalid URL prefix in \"{pass}\" (only http:// upstreams are emulated)")))?;
    if host.contains('/') {
        return Err(cerr(format!("\"proxy_pass {pass}\": a URI part is not supported by this emulation")));
    }
    let upstream = match upstreams.iter().find(|u| u.name == host) {
        Some(u) => u.clone(),
        None => {
            // An implicit upstream: one address, never a keepalive cache.
            let addr = resolve_addr(host).map_err(|e| cerr(format!("{e} in upstream \"{host}\"")))?;
            let capacity = nginx_model::profile::keepalive_capacity(opts.profile, None, false);
            let settings = KeepaliveSettings { capacity, timeout: DEFAULT_TIMEOUT, requests: 1000, time: Duration::from_secs(3600) };
            let u = Arc::new(UpstreamRt {
                name: host.to_string(),
                rr: Mutex::new(RoundRobin::new(vec![Peer::new(addr, 1, 1, Duration::from_secs(10), false)], vec![])),
                cache: KeepaliveCache::new(settings, events.clone()),
            });
            upstreams.push(u.clone());
            u
        }
    };
    let http11 = nginx_model::profile::http11(opts.profile, p.http_version.as_deref());
    let headers = nginx_model::profile::request_headers(opts.profile, p.set_header.as_deref().unwrap_or(&[]));
    Ok(LocationRt {
        exact: loc.modifier == "=",
        path: loc.path.clone(),
        proxy_host: host.to_string(),
        upstream,
        http11,
        headers,
        connect_timeout: p.connect_timeout.unwrap_or(DEFAULT_TIMEOUT),
        send_timeout: p.send_timeout.unwrap_or(DEFAULT_TIMEOUT),
        read_timeout: p.read_timeout.unwrap_or(DEFAULT_TIMEOUT),
        mask: p.next_upstream.unwrap_or(Ft::DEFAULT_MASK),
        tries_cap: p.next_upstream_tries.unwrap_or(0),
        next_upstream_timeout: p.next_upstream_timeout.filter(|t| !t.is_zero()),
        request_buffering: p.request_buffering.unwrap_or(true),
        buffer_size: p.buffer_size.unwrap_or(4096),
    })
}

/// Checks a configuration the way `nginx -t` would, without binding ports.
pub fn check_config(cfg: &Config, opts: &ProxyOptions) -> Result<(), StartError> {
    let events = ProxyEvents::new(opts.epoch);
    build_runtime(cfg, opts, &events).map(|_| ())
}

/// A running proxy.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    rt: Arc<Runtime>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(cfg: &Config, opts: ProxyOptions) -> Result<Proxy, StartError> {
        let events = ProxyEvents::new(opts.epoch);
        let (servers, logs) = build_runtime(cfg, &opts, &events)?;
        let mut listeners = Vec::new();
        for s in &servers {
            let l = TcpListener::bind(s.listen).await.map_err(|e| StartError::Io(format!("bind() to {} failed ({e})", s.listen)))?;
            listeners.push(l);
        }
        let addrs = listeners.iter().map(|l| l.local_addr().expect("local addr")).collect();
        let rt = Arc::new(Runtime { servers, logs, events, next_conn: AtomicU64::new(1), next_request: AtomicU64::new(1) });
        let stop = CancellationToken::new();
        for (i, l) in listeners.into_iter().enumerate() {
            tokio::spawn(accept_loop(l, i, rt.clone(), stop.clone()));
        }
        Ok(Proxy { addrs, rt, stop })
    }

    /// The first listener's address (an ephemeral port if the config said `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn error_log(&self) -> Vec<String> {
        self.rt.logs.errors()
    }

    pub fn access_log(&self) -> Vec<AccessEntry> {
        self.rt.logs.access_entries()
    }

    pub fn events(&self) -> &ProxyEvents {
        &self.rt.events
    }

    /// Idle connections in an upstream's keepalive cache.
    pub fn cached_connections(&self, upstream: &str) -> usize {
        self.rt
            .servers
            .iter()
            .flat_map(|s| &s.locations)
            .find(|l| l.upstream.name == upstream)
            .map(|l| l.upstream.cache.len())
            .unwrap_or(0)
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(l: TcpListener, server: usize, rt: Arc<Runtime>, stop: CancellationToken) {
    loop {
        let (stream, client) = tokio::select! {
            _ = stop.cancelled() => return,
            r = l.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let conn_no = rt.next_conn.fetch_add(1, Ordering::SeqCst);
        let rt = rt.clone();
        let stop = stop.clone();
        let requests = Arc::new(AtomicU64::new(0));
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
                handle(rt.clone(), server, client, conn_no, n, req)
            });
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

pub type ProxyBody = BoxBody<Bytes, io::Error>;

/// A response body fed by the pump task; an `Err` aborts the client connection.
struct ChannelBody(mpsc::Receiver<Result<Bytes, io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

fn full(b: impl Into<Bytes>) -> ProxyBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn reason(status: u16) -> &'static str {
    match status {
        404 => "Not Found",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => "",
    }
}

/// nginx's built-in error page.
fn error_page(status: u16) -> String {
    let t = format!("{status} {}", reason(status));
    format!("<html>\r\n<head><title>{t}</title></head>\r\n<body>\r\n<center><h1>{t}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
}

fn error_response(status: u16) -> Response<ProxyBody> {
    let page = error_page(status);
    Response::builder()
        .status(status)
        .header("Server", "nginx")
        .header("Content-Type", "text/html")
        .header("Content-Length", page.len())
        .body(full(page))
        .expect("error response")
}

fn msec_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Hop-by-hop and framing headers nginx does not pass to the upstream.
const NOT_FORWARDED: [&str; 8] = ["host", "connection", "keep-alive", "content-length", "transfer-encoding", "te", "upgrade", "expect"];

fn build_upstream_request(loc: &LocationRt, method: &str, uri: &str, client: &Request<()>, body: &[u8], ctx: &RequestCtx) -> Vec<u8> {
    let mut s = format!("{method} {uri} HTTP/1.{}\r\n", if loc.http11 { 1 } else { 0 });
    for (k, v) in &loc.headers {
        let v = v
            .replace("$proxy_host", &loc.proxy_host)
            .replace("$http_host", &ctx.host)
            .replace("$host", ctx.host.split(':').next().unwrap_or(""))
            .replace("$remote_addr", &ctx.client);
        if !v.is_empty() {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in client.headers() {
        if NOT_FORWARDED.contains(&k.as_str()) || loc.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k.as_str())) {
            continue;
        }
        s.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap_or("")));
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// What the access log needs about the client request, shared by the
/// give-up path and the response pump.
#[derive(Clone)]
struct ClientRequest {
    ctx: RequestCtx,
    method: String,
    path: String,
    args: String,
    request_line: String,
    conn_requests: u64,
    start: Instant,
}

impl ClientRequest {
    fn access_entry(&self, status: u16, upstream: Vec<UpstreamState>, body_bytes_sent: u64) -> AccessEntry {
        AccessEntry {
            msec: msec_now(),
            remote_addr: self.ctx.client.clone(),
            method: self.method.clone(),
            uri: self.path.clone(),
            args: self.args.clone(),
            request_line: self.request_line.clone(),
            host: self.ctx.host.clone(),
            status,
            request_time: self.start.elapsed(),
            upstream,
            body_bytes_sent,
            connection_requests: self.conn_requests,
        }
    }
}

struct Attempt {
    pid: PeerId,
    peer: SocketAddr,
    start: Instant,
    connect_time: Option<Duration>,
    cached: bool,
    local_port: u16,
}

/// State of one client request across its attempts.
struct RequestRun<'a> {
    rt: &'a Runtime,
    loc: &'a LocationRt,
    req_no: u64,
    ctx: RequestCtx,
    retry: RetryContext,
    uri: String,
    start: Instant,
    tries: u32,
    /// `rrp->tried`: peers this request has used.
    tried: Tried,
    states: Vec<UpstreamState>,
}

impl RequestRun<'_> {
    fn log_error(&self, level: &str, text: &str, peer: &str) {
        let mut ctx = self.ctx.clone();
        ctx.upstream = format!("http://{peer}{}", self.uri);
        self.rt.logs.error(logs::error_line(level, text, &ctx));
    }

    /// One failed attempt: log it, release the peer, and ask
    /// `ngx_http_upstream_next` what to do.
    fn fail(&mut self, a: &Attempt, f: Failure, request_sent: bool) -> Decision {
        let peer = a.peer.to_string();
        if let Some(text) = f.log_text() {
            self.log_error("error", &text, &peer);
        }
        let failed = !matches!(f, Failure::Status(403 | 404));
        let warn = self.loc.upstream.rr.lock().free_peer(a.pid, failed, Instant::now());
        if let Some(w) = warn {
            self.log_error("warn", &format!("{w} while {}", f.action()), &peer);
        }
        let attempt = FailedAttempt { ft: f.ft(), cached: a.cached, request_sent, peer_picked: true, client_gone: false };
        let (d, status) = retry::next_upstream(self.tries, attempt, &self.retry, self.start.elapsed());
        self.states.push(UpstreamState { status, response_time: a.start.elapsed(), connect_time: a.connect_time, addr: peer, cached: a.cached });
        self.rt.events.push(self.req_no, ProxyEventKind::AttemptFailed { local_port: a.local_port, class: f.class().into(), log: f.log_text() });
        if let Decision::Retry { tries } = d {
            self.tries = tries;
            self.rt.events.push(self.req_no, ProxyEventKind::Retry { tries_left: tries });
        }
        d
    }
}

async fn handle(
    rt: Arc<Runtime>,
    server: usize,
    client: SocketAddr,
    conn_no: u64,
    conn_requests: u64,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    let req_no = rt.next_request.fetch_add(1, Ordering::SeqCst);
    let method = req.method().as_str().to_string();
    let uri = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let path = req.uri().path().to_string();
    let args = req.uri().query().unwrap_or("").to_string();
    let request_line = format!("{method} {uri} {:?}", req.version());
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    rt.events.push(req_no, ProxyEventKind::ClientRequest { method: method.clone(), uri: uri.clone() });
    // proxy_request_buffering on: the whole client body is read first.
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let head_only = Request::from_parts(parts, ());

    let srv = &rt.servers[server];
    let loc = srv
        .locations
        .iter()
        .filter(|l| if l.exact { path == l.path } else { path.starts_with(&l.path) })
        .max_by_key(|l| (l.exact, l.path.len()));
    let ctx = RequestCtx { conn: conn_no, client: client.ip().to_string(), server: srv.name.clone(), request_line: request_line.clone(), upstream: String::new(), host };
    let Some(loc) = loc else {
        return Ok(error_response(404));
    };
    let single_peer = loc.upstream.rr.lock().single();
    let live = loc.upstream.rr.lock().tries();
    let mut run = RequestRun {
        rt: &rt,
        loc,
        req_no,
        ctx: ctx.clone(),
        retry: RetryContext { method: method.clone(), mask: loc.mask, request_buffering: loc.request_buffering, next_upstream_timeout: loc.next_upstream_timeout, single_peer },
        uri: uri.clone(),
        start,
        tries: retry::initial_tries(live, loc.tries_cap),
        tried: Tried::default(),
        states: Vec::new(),
    };
    let request_bytes = build_upstream_request(loc, &method, &uri, &head_only, &body, &ctx);

    let creq = ClientRequest { ctx: ctx.clone(), method: method.clone(), path: path.clone(), args, request_line, conn_requests, start };
    let give_up = |run: RequestRun, status: u16| {
        let page_len = if status == 499 { 0 } else { error_page(status).len() as u64 };
        // The access entry exists before the event that announces the response.
        run.rt.logs.access(creq.access_entry(status, run.states.clone(), page_len));
        run.rt.events.push(run.req_no, ProxyEventKind::GiveUp { status });
        run.rt.events.push(run.req_no, ProxyEventKind::ClientResponse { status, body_bytes: page_len, truncated: false });
        Ok(error_response(status))
    };

    loop {
        let attempt_start = Instant::now();
        let picked = loc.upstream.rr.lock().get_peer(&mut run.tried, Instant::now());
        let Some(pid) = picked else {
            let f = Failure::NoLive;
            run.log_error("error", &f.log_text().unwrap_or_default(), &loc.upstream.name);
            let a = FailedAttempt { ft: f.ft(), cached: false, request_sent: false, peer_picked: false, client_gone: false };
            let (_, status) = retry::next_upstream(run.tries, a, &run.retry, start.elapsed());
            run.states.push(UpstreamState { status, response_time: Duration::ZERO, connect_time: None, addr: loc.upstream.name.clone(), cached: false });
            return give_up(run, status);
        };
        let peer = loc.upstream.rr.lock().peer(pid).addr;
        let mut attempt = Attempt { pid, peer, start: attempt_start, connect_time: None, cached: false, local_port: 0 };

        // Connecting: a cached connection first, else a new one.
        let mut conn = match loc.upstream.cache.checkout(peer).await {
            Some(c) => {
                attempt.cached = true;
                c
            }
            None => match upstream::connect(peer, loc.connect_timeout).await {
                Ok(stream) => {
                    let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
                    UpstreamConn { stream, peer, local_port, requests: 0, created: Instant::now() }
                }
                Err(f) => {
                    rt.events.push(req_no, ProxyEventKind::ConnectFailed { peer });
                    match run.fail(&attempt, f, false) {
                        Decision::Retry { .. } => continue,
                        Decision::GiveUp { status } => return give_up(run, status),
                    }
                }
            },
        };
        attempt.connect_time = Some(attempt_start.elapsed());
        attempt.local_port = conn.local_port;
        conn.requests += 1;
        rt.events.push(req_no, ProxyEventKind::UpstreamConn { peer, local_port: conn.local_port, cached: attempt.cached });

        // Sending request: `request_sent` is set before the first write (R4).
        if let Err(f) = upstream::send(&mut conn.stream, &request_bytes, loc.send_timeout).await {
            match run.fail(&attempt, f, true) {
                Decision::Retry { .. } => continue,
                Decision::GiveUp { status } => return give_up(run, status),
            }
        }
        rt.events.push(req_no, ProxyEventKind::RequestSent { local_port: conn.local_port, bytes: request_bytes.len() });

        // Reading response header.
        let (head, leftover) = match upstream::read_head(&mut conn.stream, loc.read_timeout, loc.buffer_size).await {
            Ok(x) => x,
            Err(f) => match run.fail(&attempt, f, true) {
                Decision::Retry { .. } => continue,
                Decision::GiveUp { status } => return give_up(run, status),
            },
        };
        rt.events.push(req_no, ProxyEventKind::HeaderReceived { local_port: conn.local_port, status: head.status });
        if retry::retry_on_status(head.status, run.tries, true, &run.retry, start.elapsed()).is_some() {
            match run.fail(&attempt, Failure::Status(head.status), true) {
                Decision::Retry { .. } => continue,
                Decision::GiveUp { status } => return give_up(run, status),
            }
        }

        // The header goes to the client now; the body follows from a pump task.
        let no_body = method == "HEAD" || head.status == 204 || head.status == 304 || (100..200).contains(&head.status);
        let mut reader = BodyReader::new(&head, leftover, loc.read_timeout, no_body);
        let mut resp = Response::builder().status(head.status).header("Server", "nginx");
        if let Some(h) = resp.headers_mut() {
            for (k, v) in &head.headers {
                let lower = k.to_ascii_lowercase();
                if ["connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"].contains(&lower.as_str()) {
                    continue;
                }
                // A header the http crate cannot represent is dropped, not fatal.
                if let (Ok(name), Ok(value)) =
                    (hyper::header::HeaderName::from_bytes(k.as_bytes()), hyper::header::HeaderValue::from_bytes(v.as_bytes()))
                {
                    h.append(name, value);
                }
            }
            if let Some(n) = head.content_length {
                h.insert(hyper::header::CONTENT_LENGTH, n.into());
            }
        }
        let (tx, rx) = mpsc::channel(16);
        let run_states = std::mem::take(&mut run.states);
        let pump_rt = rt.clone();
        let upstream_rt = loc.upstream.clone();
        let keepalive_ok = !head.connection_close && head.http11;
        let creq = creq.clone();
        let log_ctx = run.ctx.clone();
        let uri_for_log = uri.clone();
        let status = head.status;
        tokio::spawn(async move {
            let mut sent = 0u64;
            let mut truncated = false;
            loop {
                match reader.next(&mut conn.stream).await {
                    Ok(Some(chunk)) => {
                        sent += chunk.len() as u64;
                        if tx.send(Ok(chunk)).await.is_err() {
                            truncated = true;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(bf) => {
                        truncated = true;
                        let mut ctx = log_ctx.clone();
                        ctx.upstream = format!("http://{}{}", conn.peer, uri_for_log);
                        pump_rt.logs.error(logs::error_line("error", &bf.log_text(), &ctx));
                        pump_rt.events.push(req_no, ProxyEventKind::BodyFailed { local_port: conn.local_port, class: bf.class().into() });
                        let _ = tx.send(Err(io::Error::other(bf.log_text()))).await;
                        break;
                    }
                }
            }
            let mut states = run_states;
            states.push(UpstreamState {
                status,
                response_time: attempt.start.elapsed(),
                connect_time: attempt.connect_time,
                addr: conn.peer.to_string(),
                cached: attempt.cached,
            });
            upstream_rt.rr.lock().free_peer(attempt.pid, false, Instant::now());
            if !truncated && reader.done && reader.delimited() && keepalive_ok {
                upstream_rt.cache.store(conn);
            }
            pump_rt.logs.access(creq.access_entry(status, states, sent));
            pump_rt.events.push(req_no, ProxyEventKind::ClientResponse { status, body_bytes: sent, truncated });
        });
        let body = if no_body { full(Bytes::new()) } else { ChannelBody(rx).boxed() };
        return Ok(resp.body(body).unwrap_or_else(|_| error_response(502)));
    }
}
