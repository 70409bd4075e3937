//! The proxy's I/O: listeners, client connections (hyper's HTTP/1 server),
//! the attempt loop, the response pump, and the logs. The loop executes the
//! steps of `nginx_model::attempt::Attempts`; what to connect to, whether to
//! retry and what to answer are decided there, not here.

use crate::events::{ProxyEventKind, ProxyEvents};
use crate::keepalive::{Keepalive, UpstreamConn};
use crate::logs::Logs;
use crate::upstream::{self, BodyReader};
use bytes::{Bytes, BytesMut};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use labkit::events::Retention;
use labkit::wire::ResponseHead;
use nginx_model::attempt::{Attempts, LogLine, Step};
use nginx_model::balancer::{Peer, RoundRobin};
use nginx_model::conf::{self, Config, Pos};
use nginx_model::failure::Failure;
use nginx_model::http::{self, RequestVars};
use nginx_model::keepalive::response_keeps_connection;
use nginx_model::logs::{self, AccessEntry, RequestCtx};
use nginx_model::resolve::{self, ResolveError, Resolved, ResolvedLocation, ResolvedServer, ResolvedUpstream};
use nginx_model::Profile;
use parking_lot::Mutex;
use std::convert::Infallible;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why the proxy cannot start (what nginx reports as `[emerg]`), naming
/// the nginx.conf line where nginx would.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ResolveError),
    /// `ngx_http_upstream_server` (explicit upstreams: the server line) and
    /// `ngx_http_upstream_init_round_robin` (implicit ones: the proxy_pass line).
    #[error("host not found in upstream \"{host}\"{pos}")]
    HostNotFound { host: String, pos: Pos },
    /// `ngx_http_core_listen`.
    #[error("host not found in \"{addr}\" of the \"listen\" directive{pos}")]
    ListenNotFound { addr: String, pos: Pos },
    #[error("bind() to {addr} failed ({source})")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("open() \"{}\" failed ({source})", path.display())]
    LogFile { path: PathBuf, source: io::Error },
    /// nginx could not allocate what a directive asks for.
    #[error("malloc({bytes}) failed (12: Cannot allocate memory)")]
    Alloc { bytes: u64 },
    /// A file nginx creates at -t too (temp directories, the pid file).
    #[error("{op}() \"{}\" failed ({source})", path.display())]
    NginxFile { op: &'static str, path: PathBuf, source: io::Error },
    /// nginx -t accepts a configuration without servers; there is nothing to run.
    #[error("no \"server\" block in \"http\": nothing to listen on")]
    NoServer,
}

fn resolve_addr(s: &str) -> Option<SocketAddr> {
    s.to_socket_addrs().ok()?.next()
}

use nginx_model::conf::c_str;

/// RAM + swap (`/proc/meminfo`): the largest allocation Linux's heuristic
/// overcommit grants.
fn memory_limit() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| info.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap_or(0);
    let total = (kb("MemTotal:") + kb("SwapTotal:")) * 1024;
    if total == 0 {
        u64::MAX
    } else {
        total
    }
}

/// The resolver nginx uses while parsing (`getaddrinfo`), for
/// `conf::parse_with`.
pub fn dns(host: &str, port: u16) -> bool {
    (host, port).to_socket_addrs().is_ok_and(|mut a| a.next().is_some())
}

/// A `listen` address as the parser normalised it (`host:port`, `*` as
/// 0.0.0.0); empty means nginx's default, `*:80` for root, else `*:8000`
/// (`ngx_http_core_merge_srv_conf`).
fn listen_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok().or_else(|| resolve_addr(s))
}

fn default_listen() -> SocketAddr {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    SocketAddr::from(([0, 0, 0, 0], if root { 80 } else { 8000 }))
}

/// Options that are not in nginx.conf.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub profile: Profile,
    /// `nginx -p`: where relative log paths point.
    pub prefix: PathBuf,
    /// Event timestamps are relative to this.
    pub epoch: Instant,
    /// What is kept in memory of events and log lines (the files get
    /// everything): the harness reads a bounded window; the `proxy` binary
    /// keeps nothing, so its memory stays flat.
    pub retention: Retention,
    /// Bind every server here instead of its `listen` addresses (tests ask
    /// for `127.0.0.1:0`, an ephemeral port, which nginx.conf cannot say:
    /// nginx rejects port 0).
    pub listen_override: Option<SocketAddr>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions { profile: Profile::Legacy, prefix: PathBuf::from("."), epoch: Instant::now(), retention: Retention::LAB, listen_override: None }
    }
}

/// An upstream block at run time: its balancer and its keepalive cache.
struct UpstreamRt {
    name: String,
    conf: ResolvedUpstream,
    rr: Mutex<RoundRobin<SocketAddr>>,
    cache: Keepalive,
}

struct ServerRt {
    listen: SocketAddr,
    conf: ResolvedServer,
}

struct Runtime {
    servers: Vec<ServerRt>,
    upstreams: Vec<Arc<UpstreamRt>>,
    logs: Logs,
    events: ProxyEvents,
    next_conn: AtomicU64,
    next_request: AtomicU64,
}

/// The run-time model of a resolved configuration: host names resolved,
/// log files opened. Binds nothing.
type Built = (Vec<ServerRt>, Vec<Arc<UpstreamRt>>, Logs);

fn build_runtime(r: &Resolved, opts: &ProxyOptions, events: &ProxyEvents) -> Result<Built, StartError> {
    let mut upstreams = Vec::new();
    for u in &r.upstreams {
        // ngx_http_upstream_init_keepalive allocates the whole cache at
        // start (and at -t): N items of 152 bytes on x86-64 nginx 1.22.
        // What the kernel refuses (heuristic overcommit: more than RAM +
        // swap) fails as in nginx.
        let bytes = (u.keepalive.capacity as u64).wrapping_mul(152);
        if bytes > memory_limit() {
            return Err(StartError::Alloc { bytes });
        }
        let (mut primary, mut backup) = (Vec::new(), Vec::new());
        for p in &u.peers {
            let addr = resolve_addr(&p.addr).ok_or_else(|| StartError::HostNotFound { host: p.addr.clone(), pos: p.pos.clone() })?;
            let peer = Peer::new(addr, p.weight, p.max_fails, p.fail_timeout, p.down);
            if p.backup {
                backup.push(peer);
            } else {
                primary.push(peer);
            }
        }
        upstreams.push(Arc::new(UpstreamRt {
            name: u.name.clone(),
            conf: u.clone(),
            rr: Mutex::new(RoundRobin::new(primary, backup)),
            cache: Keepalive::new(u.keepalive, events.clone()),
        }));
    }
    let mut servers = Vec::new();
    for s in &r.servers {
        let mut listens = Vec::new();
        for (i, l) in s.listen.iter().enumerate() {
            let pos = s.listen_pos.get(i).cloned().unwrap_or_else(|| s.pos.clone());
            listens.push(listen_addr(l).ok_or_else(|| StartError::ListenNotFound { addr: l.clone(), pos })?);
        }
        if listens.is_empty() {
            listens.push(default_listen());
        }
        if let Some(o) = opts.listen_override {
            listens = vec![o];
        }
        for listen in listens {
            servers.push(ServerRt { listen, conf: s.clone() });
        }
    }
    let in_prefix = |p: &str| -> PathBuf {
        let p = Path::new(c_str(p));
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            opts.prefix.join(p)
        }
    };
    let error_path = r.error_log.as_deref().map(in_prefix);
    let access = r.access_log.as_ref().map(|a| (in_prefix(&a.path), a.format.clone()));
    // nginx opens every log file at -t too; name the one that failed.
    for path in error_path.iter().chain(access.iter().map(|a| &a.0)) {
        std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|source| StartError::LogFile { path: path.clone(), source })?;
    }
    let logs = Logs::new(error_path.clone(), access.clone(), opts.retention).map_err(|source| StartError::LogFile {
        path: error_path.or(access.map(|a| a.0)).unwrap_or_default(),
        source,
    })?;
    if servers.is_empty() {
        return Err(StartError::NoServer);
    }
    Ok((servers, upstreams, logs))
}

/// Checks a configuration the way `nginx -t` would, without binding ports:
/// host names resolved, log files opened. A configuration without servers
/// passes, as in nginx.
pub fn check_config(cfg: &Config, opts: &ProxyOptions) -> Result<(), StartError> {
    let r = resolve::resolve(cfg, opts.profile)?;
    // What nginx creates at -t: temp directories (created, as nginx does)
    // and the pid file (only its name is tried: the proxy writes none).
    for f in &cfg.nginx_files.0 {
        let (op, path, result) = match f {
            conf::NginxFile::TempDir(p) => {
                let path = opts.prefix.join(c_str(p));
                let r = std::fs::create_dir_all(&path);
                ("mkdir", path, r)
            }
            conf::NginxFile::Pid(p) => {
                let path = opts.prefix.join(c_str(p));
                let r = if path.exists() {
                    Ok(())
                } else {
                    std::fs::File::create(&path).and_then(|_| std::fs::remove_file(&path))
                };
                ("open", path, r)
            }
            conf::NginxFile::Log(p) => {
                let path = opts.prefix.join(c_str(p));
                let r = std::fs::OpenOptions::new().create(true).append(true).open(&path).map(drop);
                ("open", path, r)
            }
        };
        result.map_err(|source| StartError::NginxFile { op, path, source })?;
    }
    let servers = match build_runtime(&r, opts, &ProxyEvents::new(opts.epoch, Retention::Off)) {
        Ok((servers, _, _)) => servers,
        Err(StartError::NoServer) => return Ok(()),
        Err(e) => return Err(e),
    };
    // nginx -t binds its listening sockets too: an address that is not this
    // host's fails; one already in use does not (ngx_open_listening_sockets).
    for s in &servers {
        if let Err(source) = std::net::TcpListener::bind(s.listen) {
            if source.kind() == io::ErrorKind::AddrNotAvailable {
                return Err(StartError::Bind { addr: s.listen, source });
            }
        }
    }
    Ok(())
}

/// A running proxy.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    rt: Arc<Runtime>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(cfg: &Config, opts: ProxyOptions) -> Result<Proxy, StartError> {
        let r = resolve::resolve(cfg, opts.profile)?;
        let events = ProxyEvents::new(opts.epoch, opts.retention);
        let (servers, upstreams, logs) = build_runtime(&r, &opts, &events)?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for s in &servers {
            let l = TcpListener::bind(s.listen).await.map_err(|source| StartError::Bind { addr: s.listen, source })?;
            addrs.push(l.local_addr().map_err(|source| StartError::Bind { addr: s.listen, source })?);
            listeners.push(l);
        }
        let rt = Arc::new(Runtime { servers, upstreams, logs, events, next_conn: AtomicU64::new(1), next_request: AtomicU64::new(1) });
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
        self.rt.upstreams.iter().find(|u| u.name == upstream).map(|u| u.cache.len()).unwrap_or(0)
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

fn error_response(status: u16) -> Response<ProxyBody> {
    let page = http::error_page(status);
    let mut resp = Response::new(full(page.clone()));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_GATEWAY);
    let h = resp.headers_mut();
    h.insert(hyper::header::SERVER, hyper::header::HeaderValue::from_static("nginx"));
    h.insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/html"));
    h.insert(hyper::header::CONTENT_LENGTH, page.len().into());
    resp
}

fn msec_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// The client request, as the logs need it.
#[derive(Clone)]
struct ClientRequest {
    no: u64,
    ctx: RequestCtx,
    method: String,
    uri: String,
    path: String,
    args: String,
    conn_requests: u64,
    start: Instant,
}

impl ClientRequest {
    fn access_entry(&self, status: u16, attempts: &Attempts, body_bytes_sent: u64) -> AccessEntry {
        AccessEntry {
            msec: msec_now(),
            remote_addr: self.ctx.client.clone(),
            method: self.method.clone(),
            uri: self.path.clone(),
            args: self.args.clone(),
            request_line: self.ctx.request_line.clone(),
            host: self.ctx.host.clone(),
            status,
            request_time: self.start.elapsed(),
            upstream: attempts.states().to_vec(),
            body_bytes_sent,
            connection_requests: self.conn_requests,
        }
    }
}

/// Writes the lines an attempt step produced, with the request's context.
fn write_log(rt: &Runtime, creq: &ClientRequest, lines: Vec<LogLine>) {
    for l in lines {
        let mut ctx = creq.ctx.clone();
        ctx.upstream = format!("http://{}{}", l.upstream, creq.uri);
        rt.logs.error(logs::error_line(SystemTime::now(), std::process::id(), l.level, &l.text, &ctx));
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
    let no = rt.next_request.fetch_add(1, Ordering::SeqCst);
    let method = req.method().as_str().to_string();
    let uri = req.uri().path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or("").to_string();
    let srv = &rt.servers[server];
    let creq = ClientRequest {
        no,
        ctx: RequestCtx {
            conn: conn_no,
            client: client.ip().to_string(),
            server: srv.conf.name.clone(),
            request_line: format!("{method} {uri} {:?}", req.version()),
            upstream: String::new(),
            host: host.clone(),
        },
        path: req.uri().path().to_string(),
        args: req.uri().query().unwrap_or("").to_string(),
        method,
        uri,
        conn_requests,
        start,
    };
    rt.events.push(no, ProxyEventKind::ClientRequest { method: creq.method.clone(), uri: creq.uri.clone() });
    let client_headers: Vec<(String, String)> =
        req.headers().iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    // proxy_request_buffering on: the whole client body is read first.
    let body = req.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let Some(loc) = srv.conf.location_for(&creq.path) else {
        return Ok(error_response(404));
    };
    let up = rt.upstreams[loc.upstream].clone();
    let vars = RequestVars { http_host: host, remote_addr: creq.ctx.client.clone() };
    let request = http::encode_request(loc, &creq.method, &creq.uri, &client_headers, &body, &vars);
    Ok(proxy_pass(rt.clone(), loc, up, creq, request).await)
}

/// `ngx_http_upstream_init_request` to the response: executes the attempt
/// steps until the response is passed on or nginx answers itself.
async fn proxy_pass(rt: Arc<Runtime>, loc: &ResolvedLocation, up: Arc<UpstreamRt>, creq: ClientRequest, request: Vec<u8>) -> Response<ProxyBody> {
    let ctx = loc.retry_context(&creq.method, &up.conf);
    let live = up.rr.lock().tries();
    let mut attempts = Attempts::new(ctx, up.name.clone(), live, loc.next_upstream_tries, Instant::now());
    let mut conn: Option<UpstreamConn> = None;
    let mut head: Option<(ResponseHead, BytesMut)> = None;
    let mut step = attempts.start(&mut up.rr.lock(), Instant::now());
    loop {
        write_log(&rt, &creq, attempts.take_log());
        let outcome: Result<Step, Failure> = match step {
            Step::Connect(pid) => {
                let peer = up.rr.lock().peer(pid).addr;
                let c = match up.cache.checkout(peer).await {
                    Some(c) => Ok((c, true)),
                    None => upstream::connect(peer, loc.connect_timeout).await.map(|stream| {
                        let local_port = stream.local_addr().map(|a| a.port()).unwrap_or(0);
                        (UpstreamConn { stream, peer, local_port, requests: 0, created: Instant::now() }, false)
                    }),
                };
                match c {
                    Ok((mut c, cached)) => {
                        c.requests += 1;
                        rt.events.push(creq.no, ProxyEventKind::UpstreamConn { peer, local_port: c.local_port, cached });
                        conn = Some(c);
                        Ok(attempts.connected(cached, Instant::now()))
                    }
                    Err(f) => {
                        rt.events.push(creq.no, ProxyEventKind::ConnectFailed { peer });
                        Err(f)
                    }
                }
            }
            Step::Send => {
                // The machine only asks to send or read after a connection.
                let Some(c) = conn.as_mut() else { return give_up(&rt, &creq, &attempts, 502) };
                match upstream::send(&mut c.stream, &request, loc.send_timeout).await {
                    Ok(()) => {
                        rt.events.push(creq.no, ProxyEventKind::RequestSent { local_port: c.local_port, bytes: request.len() });
                        Ok(attempts.sent())
                    }
                    Err(f) => Err(f),
                }
            }
            Step::ReadHeader => {
                let Some(c) = conn.as_mut() else { return give_up(&rt, &creq, &attempts, 502) };
                match upstream::read_head(&mut c.stream, loc.read_timeout, loc.buffer_size).await {
                    Ok((h, leftover)) => {
                        rt.events.push(creq.no, ProxyEventKind::HeaderReceived { local_port: c.local_port, status: h.status });
                        let next = attempts.header(&mut up.rr.lock(), h.status, Instant::now());
                        if matches!(next, Step::Pass { .. }) {
                            head = Some((h, leftover));
                        } else {
                            // A status listed in proxy_next_upstream: that attempt failed.
                            failed_event(&rt, &creq, conn.take(), Failure::Status(h.status), &attempts, next);
                        }
                        Ok(next)
                    }
                    Err(f) => Err(f),
                }
            }
            Step::Pass { status } => {
                let (Some(c), Some((h, leftover))) = (conn.take(), head.take()) else {
                    return give_up(&rt, &creq, &attempts, 502);
                };
                return pump(rt.clone(), loc, up, creq, attempts, c, h, leftover, status);
            }
            Step::Finalize { status } => return give_up(&rt, &creq, &attempts, status),
        };
        step = match outcome {
            Ok(next) => next,
            Err(f) => {
                let next = attempts.failed(&mut up.rr.lock(), f.clone(), Instant::now());
                failed_event(&rt, &creq, conn.take(), f, &attempts, next);
                next
            }
        };
    }
}

/// Timeline events for a failed attempt; dropping `conn` closes it.
fn failed_event(rt: &Runtime, creq: &ClientRequest, conn: Option<UpstreamConn>, f: Failure, attempts: &Attempts, next: Step) {
    let local_port = conn.map(|c| c.local_port).unwrap_or(0);
    rt.events.push(creq.no, ProxyEventKind::AttemptFailed { local_port, class: f.class(), log: f.log_text() });
    if let Step::Connect(_) = next {
        rt.events.push(creq.no, ProxyEventKind::Retry { tries_left: attempts.tries() });
    }
}

/// nginx answers with its own error page.
fn give_up(rt: &Runtime, creq: &ClientRequest, attempts: &Attempts, status: u16) -> Response<ProxyBody> {
    let page_len = http::error_page(status).len() as u64;
    // The access entry exists before the event that announces the response.
    rt.logs.access(creq.access_entry(status, attempts, page_len));
    rt.events.push(creq.no, ProxyEventKind::GiveUp { status });
    rt.events.push(creq.no, ProxyEventKind::ClientResponse { status, body_bytes: page_len, truncated: false });
    error_response(status)
}

/// The header goes to the client now; the body follows from a pump task,
/// which then finishes the attempt and decides whether to keep the connection.
#[allow(clippy::too_many_arguments)]
fn pump(
    rt: Arc<Runtime>,
    loc: &ResolvedLocation,
    up: Arc<UpstreamRt>,
    creq: ClientRequest,
    mut attempts: Attempts,
    mut conn: UpstreamConn,
    head: ResponseHead,
    leftover: BytesMut,
    status: u16,
) -> Response<ProxyBody> {
    let framing = head.framing(creq.method == "HEAD");
    let no_body = framing == labkit::wire::BodyFraming::Length(0);
    let mut reader = BodyReader::new(framing, leftover, loc.read_timeout);
    let mut resp = Response::builder().status(status).header("Server", "nginx");
    if let Some(h) = resp.headers_mut() {
        for (k, v) in http::response_headers(&head) {
            // A header the http crate cannot represent is dropped, not fatal.
            if let (Ok(name), Ok(value)) = (hyper::header::HeaderName::from_bytes(k.as_bytes()), hyper::header::HeaderValue::from_bytes(v.as_bytes())) {
                h.append(name, value);
            }
        }
    }
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut sent = 0u64;
        let mut client_gone = false;
        let body = loop {
            match reader.next(&mut conn.stream).await {
                Ok(Some(chunk)) => {
                    sent += chunk.len() as u64;
                    if tx.send(Ok(chunk)).await.is_err() {
                        client_gone = true;
                        break Ok(());
                    }
                }
                Ok(None) => break Ok(()),
                Err(bf) => {
                    rt.events.push(creq.no, ProxyEventKind::BodyFailed { local_port: conn.local_port, class: bf.class() });
                    let _ = tx.send(Err(io::Error::other(bf.log_text()))).await;
                    break Err(bf);
                }
            }
        };
        let truncated = client_gone || body.is_err();
        attempts.finished(&mut up.rr.lock(), status, body, Instant::now());
        write_log(&rt, &creq, attempts.take_log());
        if !client_gone && response_keeps_connection(&head, reader.is_done(), reader.delimited()) {
            up.cache.store(conn);
        }
        rt.logs.access(creq.access_entry(status, &attempts, sent));
        rt.events.push(creq.no, ProxyEventKind::ClientResponse { status, body_bytes: sent, truncated });
    });
    let body = if no_body { full(Bytes::new()) } else { ChannelBody(rx).boxed() };
    resp.body(body).unwrap_or_else(|_| error_response(502))
}
