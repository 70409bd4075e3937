//! The client side of one connection, as nginx's HTTP/1 server handles it:
//! read a request head, check and read its body (`client_max_body_size` →
//! 413, a body past `client_body_buffer_size` spooled to a temp file), pass
//! it upstream ([`crate::pass`]), and write the response the way nginx's
//! header filter, chunked filter and write filter do (nginx's head layout,
//! `postpone_output`), byte for byte. Written by hand rather than with an
//! HTTP library: nginx passes an upstream's status line, header names and
//! HTTP/0.9 bytes through unchanged, which a library normalises away.

use crate::events::ProxyEventKind;
use crate::pass::{self, body_line, Answer};
use crate::server::Runtime;
use crate::upstream::BodyReader;
use nginx_model::buffering;
use nginx_model::failure::BodyFailure;
use nginx_model::http::RequestVars;
use nginx_model::logs::{self, AccessEntry, Level, RequestCtx};
use nginx_model::resolve::{DynamicPass, ResolvedLocation, Route};
use nginx_model::response::{self, ClientSide, UpstreamBody, POSTPONE_OUTPUT};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `large_client_header_buffers 4 8k`: the most a request head may take.
const MAX_HEAD: usize = 4 * 8 * 1024;
/// `client_header_timeout`, `client_body_timeout` (between two reads) and
/// the client-side `keepalive_timeout`: nginx's defaults. A client that
/// stalls is closed, never waited for without end.
const CLIENT_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
const CLIENT_BODY_TIMEOUT: Duration = Duration::from_secs(60);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(75);
/// `lingering_timeout`: how long a discarded body may pause.
const LINGERING_TIMEOUT: Duration = Duration::from_secs(5);
/// `lingering_time`: the most time spent discarding a body.
const LINGERING_TIME: Duration = Duration::from_secs(30);

/// A client request body: in memory, or in a temp file.
pub enum RequestBody {
    Memory(Vec<u8>),
    File { file: tokio::fs::File, path: PathBuf, len: u64 },
}

impl RequestBody {
    pub(crate) fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(b) => b.len() as u64,
            RequestBody::File { len, .. } => *len,
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        // nginx removes a request body's temp file when the request ends.
        if let RequestBody::File { path, .. } = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The client request, as the logs need it.
#[derive(Clone)]
pub struct ClientRequest {
    pub no: u64,
    /// The connection's number (error lines' `*N`).
    conn: u64,
    /// `$request`: the request line as the client sent it.
    request_line: String,
    /// The subrequest's URI, when this is one (`auth_request`).
    subrequest: String,
    /// The variables scripts read, kept once: `$request_method`,
    /// `$request_uri` (the target as the client sent it), `$uri` (the path
    /// normalised, `ngx_http_parse_complex_uri`), `$args`, `$http_NAME`.
    /// [`ClientRequest::vars`] lends them, adding `$upstream_status`.
    vars: RequestVars,
    /// The URI of the upstream request line, which error.log lines name.
    upstream_uri: String,
    conn_requests: u64,
    pub(crate) start: Instant,
    /// The access logs this request is written to: its server's until a
    /// location takes it, then the location's.
    access_log: Arc<[nginx_model::resolve::AccessLogSpec]>,
    /// `$http_referer`, `$http_user_agent`.
    referer: Option<String>,
    user_agent: Option<String>,
    /// `$upstream_*` of the upstream before an `error_page`'s redirect.
    prior_upstream: Vec<logs::UpstreamState>,
}

impl ClientRequest {
    /// An error.log line with this request's context (and the upstream's
    /// address, if one was chosen).
    pub fn log(&self, rt: &Runtime, level: Level, text: &str, upstream: Option<&str>) {
        // The error line's context (`ngx_http_log_error_handler`): built
        // here, as nginx builds it per line.
        let ctx = RequestCtx {
            conn: self.conn,
            client: self.vars.remote_addr.clone(),
            server: self.vars.server_name.clone(),
            request_line: self.request_line.clone(),
            upstream: upstream.map(|u| format!("http://{u}{}", self.upstream_uri)).unwrap_or_default(),
            host: self.vars.http_host.clone(),
            subrequest: self.subrequest.clone(),
        };
        rt.logs.error(logs::error_line(SystemTime::now(), std::process::id(), level, text, &ctx));
    }

    /// The request's access-log line, in each log that applies: its last
    /// act, so the line's texts are moved out of the request, not copied;
    /// only `no` is read after. The line waits in the connection until the
    /// request is freed ([`Conn::write_access`]).
    fn log_access(&mut self, c: &mut Conn, status: u16, upstream: &[logs::UpstreamState], body_bytes_sent: u64) {
        c.finished = Some(Finished { entry: self.access_entry(status, upstream, body_bytes_sent), to: self.access_log.clone(), start: self.start });
    }

    /// `$request_method`.
    pub fn method(&self) -> &str {
        &self.vars.method
    }

    /// The request's variables for scripts (`return`, `add_header`,
    /// `proxy_set_header`), with the upstream tries so far: lent as they
    /// are until an upstream was tried (every proxied request's head is
    /// built with them), copied to add `$upstream_status` after.
    fn vars(&self, upstream: &[logs::UpstreamState]) -> std::borrow::Cow<'_, RequestVars> {
        // `$upstream_status` as the access line lists it, without building
        // the whole line's entry.
        let upstream_status = match (self.prior_upstream.is_empty(), upstream.is_empty()) {
            (true, true) => return std::borrow::Cow::Borrowed(&self.vars),
            (false, true) => logs::upstream_status(&self.prior_upstream, &[]),
            (true, false) => logs::upstream_status(upstream, &[]),
            (false, false) => logs::upstream_status(&[&self.prior_upstream[..], upstream].concat(), &[self.prior_upstream.len()]),
        };
        std::borrow::Cow::Owned(RequestVars { upstream_status: Some(upstream_status), ..self.vars.clone() })
    }

    /// `add_header`'s lines for a response with `status`; the variables
    /// are built only when a line applies.
    fn added_headers(&self, status: u16, add: &[nginx_model::conf::AddHeader], upstream: &[logs::UpstreamState]) -> Vec<u8> {
        if add.is_empty() {
            return Vec::new();
        }
        response::added_headers(status, add, &self.vars(upstream))
    }

    fn access_entry(&mut self, status: u16, upstream: &[logs::UpstreamState], body_bytes_sent: u64) -> AccessEntry {
        let take = std::mem::take::<String>;
        let redirects = if self.prior_upstream.is_empty() || upstream.is_empty() { Vec::new() } else { vec![self.prior_upstream.len()] };
        let mut states = std::mem::take(&mut self.prior_upstream);
        states.extend_from_slice(upstream);
        AccessEntry {
            // $msec and $request_time: when the line is written.
            msec: 0.0,
            remote_addr: take(&mut self.vars.remote_addr),
            method: take(&mut self.vars.method),
            uri: take(&mut self.vars.uri),
            args: take(&mut self.vars.args),
            request_line: take(&mut self.request_line),
            host: take(&mut self.vars.http_host),
            status,
            request_time: Duration::ZERO,
            upstream: states,
            redirects,
            body_bytes_sent,
            connection_requests: self.conn_requests,
            referer: self.referer.take(),
            user_agent: self.user_agent.take(),
            headers: std::mem::take(&mut self.vars.headers),
        }
    }
}

/// The `Date` header's text, formatted once a second
/// ([`nginx_model::logs::per_second`]).
fn http_date() -> String {
    thread_local! {
        static LAST: nginx_model::logs::SecondCache = const { std::cell::RefCell::new(None) };
    }
    nginx_model::logs::per_second(&LAST, SystemTime::now(), httpdate::fmt_http_date)
}

/// The client connection and what has been read from it.
struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    /// When it was accepted (`c->start_time`, for `keepalive_time`).
    started: Instant,
    /// How long it may wait for its next request: the last request's
    /// `keepalive_timeout` (`ngx_http_set_keepalive`).
    idle_limit: Duration,
    /// A pipelined request came on it (`c->pipeline`).
    pipelined: bool,
    /// The finished request's access line, until the request is freed.
    finished: Option<Finished>,
}

/// What a client socket holds at a moment ([`Conn::peek_now`]).
enum Waiting {
    Nothing,
    Bytes,
    Closed,
}

/// A finished request's access line. nginx writes it when it frees the
/// request (`ngx_http_free_request` runs the log handlers): right after
/// the response on a kept connection, but only after a discarded body is
/// read or a lingering close ends otherwise; `$msec` and `$request_time`
/// are taken then.
struct Finished {
    entry: AccessEntry,
    to: Arc<[nginx_model::resolve::AccessLogSpec]>,
    start: Instant,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        Conn { stream, rbuf: Vec::new(), started: Instant::now(), idle_limit: KEEPALIVE_TIMEOUT, pipelined: false, finished: None }
    }

    /// Writes the finished request's access line (the request is freed).
    fn write_access(&mut self, rt: &Runtime) {
        if let Some(Finished { mut entry, to, start }) = self.finished.take() {
            entry.msec = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            entry.request_time = start.elapsed();
            rt.logs.access(entry, &to);
        }
    }

    /// What the socket holds now, without waiting: bytes (`read->ready`),
    /// the client's FIN or reset (`read->eof`), or nothing yet.
    fn peek_now(&self) -> Waiting {
        let mut one = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        match socket2::SockRef::from(&self.stream).peek(&mut one) {
            Ok(0) => Waiting::Closed,
            Ok(_) => Waiting::Bytes,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Waiting::Nothing,
            Err(_) => Waiting::Closed,
        }
    }

    /// `ngx_http_set_lingering_close` and its read handler: shut down this
    /// side, then read and drop what comes until the client closes or
    /// fails, nothing comes for `lingering_timeout`, `lingering_time` has
    /// passed, or nginx is leaving (the connection is reusable, so
    /// `ngx_close_idle_connections` ends it).
    async fn linger(&mut self, retire: &tokio_util::sync::CancellationToken) {
        let _ = self.stream.shutdown().await;
        let deadline = tokio::time::Instant::now() + LINGERING_TIME;
        // NGX_HTTP_LINGERING_BUFFER_SIZE.
        let mut sink = [0u8; 4096];
        loop {
            let wait = LINGERING_TIMEOUT.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if wait.is_zero() {
                return;
            }
            let read = tokio::select! {
                biased;
                _ = retire.cancelled() => return,
                r = tokio::time::timeout(wait, self.stream.read(&mut sink)) => r,
            };
            match read {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
    }

    /// Reads more within `limit`; `Ok(0)` at EOF, an error on a timeout.
    async fn fill(&mut self, limit: Duration) -> std::io::Result<usize> {
        // Straight into the buffer's spare room: no zeroed chunk, no copy.
        self.rbuf.reserve(16 * 1024);
        tokio::time::timeout(limit, self.stream.read_buf(&mut self.rbuf)).await.map_err(|_| std::io::ErrorKind::TimedOut)?
    }
}

/// Resolves when the client closes its side (`ngx_http_upstream_check_broken_connection`
/// with EPOLLRDHUP): `Some(errno)` for a reset. Pipelined data is not a
/// close: then it stays pending.
pub(crate) async fn client_closed(stream: &TcpStream) -> Option<i32> {
    match stream.ready(tokio::io::Interest::READABLE).await {
        Ok(_) => {
            let mut b = [0u8; 1];
            match stream.peek(&mut b).await {
                Ok(0) => None,
                Err(e) => Some(nginx_model::failure::errno_of(&e)),
                // Data, not a close: nginx leaves it for the next request.
                Ok(_) => std::future::pending().await,
            }
        }
        Err(e) => Some(nginx_model::failure::errno_of(&e)),
    }
}

/// Serves one client connection until it closes or a response ends it.
pub(crate) async fn serve(rt: Arc<Runtime>, server: usize, stream: TcpStream, client: SocketAddr, conn_no: u64) {
    let mut c = Conn::new(stream);
    // `$remote_addr`, formatted once per connection (nginx keeps it in
    // `c->addr_text` from accept on).
    let client_ip = client.ip().to_string();
    let mut requests = 0u64;
    // ngx_close_idle_connections' signal, waited on by every idle wait of
    // this connection (one registration, not one per wait).
    let retire = rt.retire.cancelled();
    tokio::pin!(retire);
    loop {
        // The request head.
        let parsed = loop {
            if !c.rbuf.is_empty() {
                if let Some(text) = nginx_model::http::invalid_method(&c.rbuf) {
                    break Err(text);
                }
                match parse_request(&c.rbuf) {
                    Ok(Some(r)) => break Ok(r),
                    Ok(None) if c.rbuf.len() < MAX_HEAD => {}
                    Ok(None) | Err(()) => break Err(nginx_model::http::INVALID_REQUEST),
                }
            }
            // Idle between requests: keepalive_timeout; within a head:
            // client_header_timeout.
            let limit = if c.rbuf.is_empty() && requests > 0 { c.idle_limit } else { CLIENT_HEADER_TIMEOUT };
            // ngx_close_idle_connections: a graceful quit or a reload closes
            // the keepalive connections waiting for a next request.
            let idle = c.rbuf.is_empty() && requests > 0;
            let filled = tokio::select! {
                biased;
                r = c.fill(limit) => r,
                _ = &mut retire, if idle => return,
            };
            match filled {
                Ok(0) | Err(_) => {
                    if requests > 0 && c.rbuf.is_empty() {
                        let text = format!("client {} closed keepalive connection", client.ip());
                        rt.logs.error(logs::connection_line(SystemTime::now(), std::process::id(), Level::Info, conn_no, &text));
                    }
                    return;
                }
                Ok(_) => {}
            }
        };
        requests += 1;
        let (req, used) = match parsed {
            Ok(r) => r,
            Err(text) => {
            // ngx_http_process_request_line: an [info] line without the
            // request, then the 400 page and an access line whose $request
            // is the raw line up to CR or LF (ngx_http_variable_request_line).
            let start = c.rbuf.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(0);
            let line_end = c.rbuf[start..].iter().position(|&b| b == b'\r' || b == b'\n').map_or(c.rbuf.len(), |p| start + p);
            let raw = String::from_utf8_lossy(&c.rbuf[start..line_end]).into_owned();
            let srv = &rt.servers[server];
            let mut creq = ClientRequest {
                no: rt.next_request.fetch_add(1, Ordering::SeqCst),
                conn: conn_no,
                request_line: raw,
                subrequest: String::new(),
                // r->uri was never set: `$uri` is not found, logged as "-".
                vars: RequestVars { remote_addr: client_ip.clone(), server_name: srv.conf.name.clone(), uri: "-".into(), ..RequestVars::default() },
                upstream_uri: String::new(),
                conn_requests: requests,
                start: Instant::now(),
                access_log: srv.conf.access_log.clone(),
                referer: None,
                user_agent: None,
                prior_upstream: Vec::new(),
            };
            creq.log(&rt, Level::Info, &format!("{text} while reading client request line"), None);
            let side = ClientSide { http11: true, keepalive: false, head_request: false, server_tokens: true, keepalive_header: None };
            error_answer(&rt, &mut c, &mut creq, &[], 400, side, &srv.conf.add_headers).await;
            // Closed at once (the lingering close of a refused head is not
            // emulated).
            c.write_access(&rt);
            return;
            }
        };
        c.rbuf.drain(..used);
        let declared_body = req.declares_body();
        let keep = handle(&rt, server, &mut c, &client_ip, conn_no, requests, req).await;
        // ngx_http_finalize_connection: once nginx is exiting, a finished
        // request does not keep its connection.
        if keep && !(rt.retire.is_cancelled() && c.rbuf.is_empty()) {
            // ngx_http_set_keepalive: bytes behind the request are a
            // pipelined one.
            c.pipelined |= !c.rbuf.is_empty();
            c.write_access(&rt);
            continue;
        }
        let waiting = c.peek_now();
        let closing = response::ClosingRequest {
            declared_body,
            bytes_waiting: !c.rbuf.is_empty() || matches!(waiting, Waiting::Bytes),
            pipelined: c.pipelined,
            client_closed: matches!(waiting, Waiting::Closed),
        };
        if response::lingers(closing) {
            c.linger(&rt.retire).await;
        } else {
            let _ = c.stream.shutdown().await;
        }
        c.write_access(&rt);
        return;
    }
}

/// A parsed request head.
struct Request {
    method: String,
    target: String,
    http11: bool,
    headers: Vec<(String, String)>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        header_in(&self.headers, name)
    }

    /// A Content-Length above 0, or chunked (`ngx_http_handler` sets
    /// `r->lingering_close` for them).
    fn declares_body(&self) -> bool {
        let body = BodyHeaders::of(&self.headers);
        body.chunked || matches!(body.length, Some(Ok(n)) if n > 0)
    }
}

/// The first value of a client header `name`.
fn header_in<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// How a client request says its body comes.
struct BodyHeaders {
    /// `Content-Length`, if sent (`Err`: not a number, a 400).
    length: Option<Result<u64, std::num::ParseIntError>>,
    /// `Transfer-Encoding: chunked`.
    chunked: bool,
}

impl BodyHeaders {
    fn of(headers: &[(String, String)]) -> BodyHeaders {
        BodyHeaders {
            length: header_in(headers, "content-length").map(|v| v.trim().parse()),
            chunked: header_in(headers, "transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")),
        }
    }
}

/// httparse with as many header slots as the head needs.
fn parse_request(buf: &[u8]) -> Result<Option<(Request, usize)>, ()> {
    // 64 header slots on the stack cover nearly every request; more on the
    // heap only when a head has more.
    let mut stack = [httparse::EMPTY_HEADER; 64];
    let mut heap;
    let mut slots = 64;
    loop {
        let headers: &mut [httparse::Header] = if slots == 64 {
            &mut stack
        } else {
            heap = vec![httparse::EMPTY_HEADER; slots];
            &mut heap
        };
        let mut r = httparse::Request::new(headers);
        match r.parse(buf) {
            Ok(httparse::Status::Partial) => return Ok(None),
            Ok(httparse::Status::Complete(n)) => {
                return Ok(Some((
                    Request {
                        method: r.method.unwrap_or("GET").to_string(),
                        target: r.path.unwrap_or("/").to_string(),
                        http11: r.version == Some(1),
                        headers: r.headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect(),
                    },
                    n,
                )))
            }
            Err(httparse::Error::TooManyHeaders) if slots < 4096 => slots *= 4,
            Err(_) => return Err(()),
        }
    }
}

/// One request, start to end. Returns whether the connection stays open.
#[allow(clippy::too_many_arguments)]
async fn handle(rt: &Arc<Runtime>, server: usize, c: &mut Conn, client_ip: &str, conn_no: u64, conn_requests: u64, req: Request) -> bool {
    let no = rt.next_request.fetch_add(1, Ordering::SeqCst);
    let srv = &rt.servers[server];
    let host = req.header("host").unwrap_or("").to_string();
    let (raw_path, args) = match req.target.split_once('?') {
        Some((p, a)) => (p, a.to_string()),
        None => (req.target.as_str(), String::new()),
    };
    let normalized = nginx_model::http::normalize_uri(raw_path.as_bytes());
    let path = normalized.as_deref().map(|u| String::from_utf8_lossy(u).into_owned()).unwrap_or_else(|| raw_path.to_string());
    let escaped_path = raw_path.contains('%');
    let mut request_line = String::with_capacity(req.method.len() + req.target.len() + 10);
    for part in [req.method.as_str(), " ", req.target.as_str(), if req.http11 { " HTTP/1.1" } else { " HTTP/1.0" }] {
        request_line.push_str(part);
    }
    let referer = req.header("referer").map(str::to_string);
    let user_agent = req.header("user-agent").map(str::to_string);
    let connection = req.header("connection").unwrap_or("").to_ascii_lowercase();
    let asked = if req.http11 { !connection.contains("close") } else { connection.contains("keep-alive") };
    let http11 = req.http11;
    let mut creq = ClientRequest {
        no,
        conn: conn_no,
        request_line,
        subrequest: String::new(),
        upstream_uri: req.target.clone(),
        vars: RequestVars {
            http_host: host,
            remote_addr: client_ip.to_string(),
            uri: path,
            request_uri: req.target,
            args,
            method: req.method,
            server_name: srv.conf.name.clone(),
            status: None,
            upstream_status: None,
            headers: req.headers,
        },
        conn_requests,
        start: Instant::now(),
        access_log: srv.conf.access_log.clone(),
        referer,
        user_agent,
        prior_upstream: Vec::new(),
    };
    rt.events.push_with(no, || ProxyEventKind::ClientRequest { method: creq.vars.method.clone(), uri: creq.vars.request_uri.clone() });
    // ngx_http_update_location_config: the location's keepalive directives
    // decide whether the client's wish is kept.
    let age = c.started.elapsed();
    let mut keeps = |ck: &response::ClientKeepalive| {
        c.idle_limit = ck.timeout;
        (ck.keeps(asked, conn_requests, age), ck.header)
    };
    let head_request = creq.method() == "HEAD";
    let Some(uri) = normalized else {
        // ngx_http_process_request_uri: a path nginx cannot normalise,
        // found on the request line (no Host read yet, `$uri` empty).
        creq.vars.http_host.clear();
        creq.vars.uri.clear();
        creq.log(rt, Level::Info, "client sent invalid request while reading client request line", None);
        let side = ClientSide { http11, keepalive: false, head_request, server_tokens: true, keepalive_header: None };
        return error_answer(rt, c, &mut creq, &[], 400, side, &srv.conf.add_headers).await;
    };
    let loc = match srv.conf.route(&creq.vars.uri) {
        Some(Route::Proxy(loc)) => loc,
        Some(Route::Return(r)) => {
            // ngx_http_rewrite_return, in the rewrite phase: no upstream,
            // the body (if any) discarded.
            creq.access_log.clone_from(&r.access_log);
            let (keepalive, keepalive_header) = keeps(&r.client_keepalive);
            let side = ClientSide { http11, keepalive, head_request, server_tokens: r.server_tokens, keepalive_header };
            // absolute_redirect on, server_name_in_redirect off: the Host
            // header's name, and the port unless 80 (ngx_http_header_filter).
            let host = &creq.vars.http_host;
            let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host).to_ascii_lowercase();
            let name = if name.is_empty() { srv.conf.name.as_str() } else { name.as_str() };
            let port = c.stream.local_addr().map(|a| a.port()).unwrap_or(80);
            let base = if port == 80 { format!("http://{name}") } else { format!("http://{name}:{port}") };
            let vars = creq.vars(&[]);
            let text = response::return_text(&r.ret, &vars);
            let a = response::return_response(r.ret.code, text.as_deref(), &creq.vars.uri, &base, side, &http_date());
            let bytes = response::insert_headers(a.bytes, &response::added_headers(a.status, &r.add_headers, &vars));
            let _ = c.stream.write_all(&bytes).await;
            // Read before the access line takes the request's headers.
            let declared = BodyHeaders::of(&creq.vars.headers).length.and_then(Result::ok);
            creq.log_access(c, a.status, &[], a.body_bytes);
            rt.events.push(creq.no, ProxyEventKind::ClientResponse { status: a.status, body_bytes: a.body_bytes, truncated: false });
            if let Some(n) = declared {
                discard(c, n).await;
            }
            return a.keepalive;
        }
        None => {
            let (keepalive, keepalive_header) = keeps(&srv.conf.client_keepalive);
            let side = ClientSide { http11, keepalive, head_request, server_tokens: true, keepalive_header };
            return error_answer(rt, c, &mut creq, &[], 404, side, &srv.conf.add_headers).await;
        }
    };
    creq.access_log.clone_from(&loc.access_log);
    creq.upstream_uri = nginx_model::http::upstream_uri(loc, &creq.vars.request_uri, &uri, &creq.vars.args, escaped_path);
    let (keepalive, keepalive_header) = keeps(&loc.client_keepalive);
    let side = ClientSide { http11, keepalive, head_request, server_tokens: loc.server_tokens, keepalive_header };
    let body_headers = BodyHeaders::of(&creq.vars.headers);
    let chunked_body = body_headers.chunked;
    let declared: Option<u64> = match body_headers.length {
        Some(Ok(n)) => Some(n),
        Some(Err(_)) => return error_answer(rt, c, &mut creq, &[], 400, side, &loc.add_headers).await,
        None => None,
    };
    // ngx_http_core_find_config_handler: a declared length over the limit
    // is refused before any of the body is read.
    if let Some(n) = declared {
        if loc.client_max_body_size > 0 && n > loc.client_max_body_size {
            creq.log(rt, Level::Error, &format!("client intended to send too large body: {n} bytes"), None);
            let keep = error_answer(rt, c, &mut creq, &[], 413, side, &loc.add_headers).await;
            discard(c, n).await;
            return keep;
        }
    }
    // The access phase (ngx_http_auth_request_handler) runs before the
    // content handler reads the body.
    if let Some(uri) = &loc.auth_request {
        match auth_subrequest(rt, c, &creq, &srv.conf, uri, declared.unwrap_or(0)).await {
            None => {
                creq.log_access(c, 499, &[], 0);
                rt.events.push(creq.no, ProxyEventKind::ClientResponse { status: 499, body_bytes: 0, truncated: true });
                return false;
            }
            Some((status, challenges)) => match nginx_model::auth::verdict(status) {
                nginx_model::auth::Verdict::Allow => {}
                nginx_model::auth::Verdict::Deny { status, www_authenticate } => {
                    // The subrequest's WWW-Authenticate lines go out after
                    // nginx's own headers (headers_out.headers).
                    let extra: String = if www_authenticate { challenges.iter().map(|v| format!("WWW-Authenticate: {v}\r\n")).collect() } else { String::new() };
                    let (bytes, keep) = response::error_response(status, side, &http_date());
                    let bytes = response::insert_headers(bytes, extra.as_bytes());
                    let bytes = response::insert_headers(bytes, &response::added_headers(status, &loc.add_headers, &creq.vars(&[])));
                    let page = if side.head_request { 0 } else { response::error_page(status, side.server_tokens).len() as u64 };
                    let _ = c.stream.write_all(&bytes).await;
                    creq.log_access(c, status, &[], page);
                    rt.events.push(creq.no, ProxyEventKind::ClientResponse { status, body_bytes: page, truncated: false });
                    // ngx_http_finalize_request discards the unread body.
                    if chunked_body {
                        return false;
                    }
                    if let Some(n) = declared {
                        discard(c, n).await;
                    }
                    return keep;
                }
                nginx_model::auth::Verdict::Error { text } => {
                    creq.log(rt, Level::Error, &text, None);
                    return error_answer(rt, c, &mut creq, &[], 500, side, &loc.add_headers).await;
                }
            },
        }
    }
    let mut body = match read_body(rt, c, &creq, loc, declared.unwrap_or(0), chunked_body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(n)) => {
            creq.log(rt, Level::Error, &format!("client intended to send too large chunked body: {n} bytes"), None);
            return error_answer(rt, c, &mut creq, &[], 413, side, &loc.add_headers).await;
        }
        Err(BodyError::Bad) => return error_answer(rt, c, &mut creq, &[], 400, side, &loc.add_headers).await,
        Err(BodyError::Gone) => return false,
        Err(BodyError::Io) => return error_answer(rt, c, &mut creq, &[], 500, side, &loc.add_headers).await,
    };
    let out = proxy_to(rt, c, &mut creq, &srv.conf, loc, &mut body, side, None).await;
    let Outcome::ErrorPage { status, mut page, states } = out else {
        let Outcome::Done(keep) = out else { unreachable!() };
        return keep;
    };
    // The page is a script (a complex value), `$status` the error's.
    page.uri = response::error_page_uri(&page, status, &creq.vars(&states));
    // ngx_http_send_error_page: r->keepalive was already dropped for the
    // statuses that close (ngx_http_special_response_handler).
    if let Some(ret) = response::error_page_redirect(&page) {
        // The request stays where it is: its location's logs, headers and tokens.
        let here = nginx_model::resolve::ReturnLocation { matcher: nginx_model::resolve::Match::Prefix, path: String::new(), ret, access_log: creq.access_log.clone(), server_tokens: loc.server_tokens, client_keepalive: loc.client_keepalive, add_headers: loc.add_headers.clone() };
        return error_page_answer(rt, c, &mut creq, side, status, &states, &page, &here).await;
    }
    match error_page_route(&srv.conf, &page) {
        Some(Route::Return(target)) => error_page_answer(rt, c, &mut creq, side, status, &states, &page, target).await,
        Some(Route::Proxy(target)) => {
            let side = ClientSide { keepalive: response::error_keeps_connection(status, side.keepalive), server_tokens: target.server_tokens, ..side };
            redirect(&mut creq, &page, target);
            creq.prior_upstream = states;
            // r->err_status: the error's status, `=CODE`'s, or (`=`) the
            // target's own response.
            let err_status = match page.overwrite {
                None => Some(status),
                Some(0) => None,
                Some(n) => Some(n),
            };
            match proxy_to(rt, c, &mut creq, &srv.conf, target, &mut body, side, Some(err_status)).await {
                Outcome::Done(keep) => keep,
                // recursive_error_pages off: not reached (proxy_to answers itself).
                Outcome::ErrorPage { status, states, .. } => error_answer(rt, c, &mut creq, &states, status, side, &target.add_headers).await,
            }
        }
        None => {
            // ngx_http_named_location: no such name is an [error] in the
            // upstream's context, then a 500 (which closes).
            let upstream = states.last().map(|u| u.addr.clone());
            creq.log(rt, Level::Error, &format!("could not find named location \"{}\" while sending to client", page.uri), upstream.as_deref());
            error_answer(rt, c, &mut creq, &states, 500, side, &loc.add_headers).await
        }
    }
}

/// `auth_request URI` (`ngx_http_auth_request_handler` →
/// `ngx_http_subrequest`): a GET to the location `uri` names, with the main
/// request's headers, Content-Length included (`declared`), and no body
/// (`sr->request_body` is empty: the main body is not read yet), through the
/// same attempts as any proxied request; its error lines carry
/// `subrequest: "URI"`. Returns the subrequest's status (the upstream's, or
/// nginx's own error status, e.g. 504 after `proxy_read_timeout`) and its
/// `WWW-Authenticate` values, or `None` when the client went away. The
/// subrequest is `header_only`: its body is not read
/// (`ngx_http_upstream_send_response` finalizes at the header), so its
/// connection is kept only when no body follows (`u->keepalive` from
/// `ngx_http_proxy_process_header`).
async fn auth_subrequest(
    rt: &Arc<Runtime>,
    c: &mut Conn,
    creq: &ClientRequest,
    srv: &nginx_model::resolve::ResolvedServer,
    uri: &str,
    declared: u64,
) -> Option<(u16, Vec<String>)> {
    let (path, args) = uri.split_once('?').unwrap_or((uri, ""));
    let loc = match srv.route(path) {
        Some(Route::Proxy(loc)) => loc,
        // ngx_http_rewrite_return in the subrequest's location.
        Some(Route::Return(r)) => return Some((r.ret.code, Vec::new())),
        None => return Some((404, Vec::new())),
    };
    let Some(up) = (loc.pass_script.is_none()).then(|| rt.upstreams[loc.upstream].clone()) else {
        // proxy_pass with variables in an auth location is not emulated:
        // the subrequest counts as failed (the main request gets 500).
        return Some((500, Vec::new()));
    };
    let mut sub = creq.clone();
    sub.subrequest = uri.to_string();
    sub.vars.method = "GET".into();
    sub.vars.uri = path.to_string();
    sub.vars.args = args.to_string();
    sub.upstream_uri = nginx_model::http::upstream_uri(loc, uri, path.as_bytes(), args, true);
    let head = nginx_model::http::encode_request_head(loc, "GET", &sub.upstream_uri, &creq.vars.headers, declared, &sub.vars(&[]));
    let mut body = RequestBody::Memory(Vec::new());
    match pass::proxy_pass(rt, loc, &up, &sub, &head, &mut body, &c.stream).await {
        Answer::ClientClosed { .. } => None,
        Answer::Error { status, .. } => Some((status, Vec::new())),
        Answer::Pass { status, mut attempts, conn, head, .. } => {
            let challenges: Vec<String> = head
                .iter()
                .flat_map(|h| h.headers())
                .filter(|(k, _)| k.eq_ignore_ascii_case(b"www-authenticate"))
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .collect();
            attempts.finished(&mut up.rr.lock(), status, Ok(()), Instant::now());
            pass::write_log(rt, &sub, attempts.take_log());
            let bodiless = head.as_ref().is_some_and(|h| matches!(h.body(false), UpstreamBody::Empty));
            if bodiless && head.as_ref().is_some_and(|h| h.keeps_connection(true, true)) {
                up.cache.store(conn);
            }
            Some((status, challenges))
        }
    }
}

/// `ngx_http_internal_redirect` (a URI: the method becomes GET unless HEAD,
/// `$uri` and `$args` the page's, the upstream URI built from them, escaped,
/// as for any internal request) or `ngx_http_named_location` (`@name`: the
/// request as it was) for an `error_page` whose target proxies.
fn redirect(creq: &mut ClientRequest, page: &nginx_model::conf::ErrorPage, target: &ResolvedLocation) {
    creq.access_log.clone_from(&target.access_log);
    if page.uri.starts_with('@') {
        return;
    }
    if creq.vars.method != "HEAD" {
        creq.vars.method = "GET".into();
    }
    let (path, args) = page.uri.split_once('?').unwrap_or((&page.uri, ""));
    creq.vars.uri = path.to_string();
    creq.vars.args = args.to_string();
    let escaped = nginx_model::http::escape_uri(path.as_bytes());
    let unparsed = if args.is_empty() { escaped } else { format!("{escaped}?{args}") };
    creq.upstream_uri = nginx_model::http::upstream_uri(target, &unparsed, path.as_bytes(), args, true);
}

/// What passing a request upstream came to.
enum Outcome {
    /// Answered; whether the connection stays open.
    Done(bool),
    /// An error with an `error_page` whose target is emulated: the caller
    /// redirects (only from a first pass: `recursive_error_pages off`).
    ErrorPage { status: u16, page: nginx_model::conf::ErrorPage, states: Vec<logs::UpstreamState> },
}

/// The upstream module for one location: the attempts, then the client's
/// answer. `redirected` is `Some(err_status)` after an `error_page`'s
/// internal redirect: its errors take no error page again, and a passed
/// response goes out with `err_status` when set.
#[allow(clippy::too_many_arguments)]
async fn proxy_to(
    rt: &Arc<Runtime>,
    c: &mut Conn,
    creq: &mut ClientRequest,
    srv: &nginx_model::resolve::ResolvedServer,
    loc: &ResolvedLocation,
    body: &mut RequestBody,
    side: ClientSide,
    redirected: Option<Option<u16>>,
) -> Outcome {
    let page_for = |status: u16| if redirected.is_some() { None } else { error_page_target(srv, status, &loc.error_pages) };
    let err_status = redirected.flatten();
    // proxy_pass with variables: the script's value names the upstream.
    let dynamic;
    let (loc, up) = match &loc.pass_script {
        None => (loc, rt.upstreams[loc.upstream].clone()),
        Some(script) => {
            let url = creq.vars(&[]).expand(script, "");
            let confs: Vec<_> = rt.upstreams.iter().map(|u| u.conf.clone()).collect();
            let (up, proxy_host, uri) = match nginx_model::resolve::dynamic_pass(&url, &confs) {
                DynamicPass::Upstream { index, proxy_host, uri } => (rt.upstreams[index].clone(), proxy_host, uri),
                DynamicPass::Peer { addr, proxy_host, uri } => match addr.parse() {
                    Ok(a) => (crate::server::UpstreamRt::for_peer(a, &rt.events), proxy_host, uri),
                    Err(_) => return Outcome::Done(error_answer(rt, c, creq, &[], 502, side, &loc.add_headers).await),
                },
                DynamicPass::Fail { status, text } => {
                    creq.log(rt, Level::Error, &text, None);
                    return Outcome::Done(error_answer(rt, c, creq, &[], status, side, &loc.add_headers).await);
                }
            };
            if let Some(u) = uri {
                creq.upstream_uri = u;
            }
            dynamic = ResolvedLocation { proxy_host, ..loc.clone() };
            (&dynamic, up)
        }
    };
    let vars = creq.vars(&[]);
    let head = nginx_model::http::encode_request_head(loc, &creq.vars.method, &creq.upstream_uri, &creq.vars.headers, body.len(), &vars);
    drop(vars);
    let keep = match pass::proxy_pass(rt, loc, &up, creq, &head, body, &c.stream).await {
        Answer::ClientClosed { attempts } => {
            creq.log_access(c, 499, attempts.states(), 0);
            rt.events.push(creq.no, ProxyEventKind::ClientResponse { status: 499, body_bytes: 0, truncated: true });
            false
        }
        Answer::Error { status, attempts } => {
            rt.events.push(creq.no, ProxyEventKind::GiveUp { status });
            if let Some(page) = page_for(status) {
                return Outcome::ErrorPage { status, page: page.clone(), states: attempts.states().to_vec() };
            }
            error_answer(rt, c, creq, attempts.states(), status, side, &loc.add_headers).await
        }
        // ngx_http_upstream_intercept_errors: the upstream's error is
        // replaced by the error page; its connection is closed unread.
        Answer::Pass { status, mut attempts, conn, head: Some(h), .. }
            if response::intercepts(h.status, loc.intercept_errors, &loc.error_pages) && page_for(h.status).is_some() =>
        {
            drop(conn);
            attempts.finished(&mut up.rr.lock(), status, Ok(()), Instant::now());
            pass::write_log(rt, creq, attempts.take_log());
            let page = page_for(h.status).expect("checked in the guard").clone();
            return Outcome::ErrorPage { status: h.status, page, states: attempts.states().to_vec() };
        }
        Answer::Pass { status, mut attempts, mut conn, head: Some(h), buf } if nginx_model::http::upgrades(h.status, &creq.vars.headers) => {
            let ch = response::client_head(&h, side, &http_date());
            let head = response::insert_headers(ch.bytes, &creq.added_headers(h.status, &loc.add_headers, &attempts.states_at_header(h.status, Instant::now())));
            let out = tunnel(c, head, buf, &mut conn, loc.read_timeout).await;
            attempts.finished(&mut up.rr.lock(), status, Ok(()), Instant::now());
            pass::write_log(rt, creq, attempts.take_log());
            // ngx_http_upstream_process_upgraded: the idle tunnel's upstream
            // read timer (proxy_read_timeout) is logged at info
            // (ngx_connection_error), an upstream's recv() error at error.
            let ended = match out.end {
                TunnelEnd::Closed => None,
                TunnelEnd::TimedOut => Some((Level::Info, "upstream timed out (110: Connection timed out)".to_string())),
                TunnelEnd::UpstreamError(e) => Some((Level::Error, format!("recv() failed ({e}: {})", nginx_model::failure::strerror(e)))),
            };
            if let Some((level, text)) = ended {
                let line = body_line(level, format!("{text} while proxying upgraded connection"), &conn.peer.to_string());
                creq.log(rt, line.level, &line.text, Some(&line.upstream));
            }
            creq.log_access(c, status, attempts.states(), out.body_bytes);
            rt.events.push(creq.no, ProxyEventKind::ClientResponse { status, body_bytes: out.body_bytes, truncated: false });
            false
        }
        Answer::Pass { status, mut attempts, mut conn, head, buf } => {
            // `$upstream_*` as an `add_header` script sees them (none to run: not built).
            let at_header = if loc.add_headers.is_empty() { Vec::new() } else { attempts.states_at_header(head.as_ref().map_or(9, |h| h.status), Instant::now()) };
            let mut out = respond(rt, c, creq, loc, side, head.as_ref(), buf, &mut conn, err_status, &at_header).await;
            attempts.finished(&mut up.rr.lock(), status, out.upstream_result, Instant::now());
            pass::write_log(rt, creq, attempts.take_log());
            for (level, text) in std::mem::take(&mut out.lines) {
                let line = body_line(level, text, &conn.peer.to_string());
                creq.log(rt, line.level, &line.text, Some(&line.upstream));
            }
            let keeps = match &head {
                Some(h) => h.keeps_connection(out.complete, out.reusable),
                None => false,
            };
            if keeps {
                up.cache.store(conn);
            } else {
                drop(conn);
            }
            // A buffered response's rest goes out after the upstream's part.
            drain(c, &mut out).await;
            let status = err_status.unwrap_or(status);
            let logged = if out.client_gone { 499 } else if head.is_none() { 9 } else { status };
            creq.log_access(c, logged, attempts.states(), out.body_bytes);
            rt.events.push(creq.no, ProxyEventKind::ClientResponse { status, body_bytes: out.body_bytes, truncated: out.truncated });
            out.keepalive
        }
    };
    Outcome::Done(keep)
}

/// nginx's own answer: its error page, the access line, keepalive per
/// `ngx_http_special_response_handler`.
async fn error_answer(rt: &Runtime, c: &mut Conn, creq: &mut ClientRequest, upstream: &[logs::UpstreamState], status: u16, side: ClientSide, add: &[nginx_model::conf::AddHeader]) -> bool {
    let (bytes, keep) = response::error_response(status, side, &http_date());
    let bytes = response::insert_headers(bytes, &creq.added_headers(status, add, upstream));
    let page = if side.head_request { 0 } else { response::error_page(status, side.server_tokens).len() as u64 };
    let _ = c.stream.write_all(&bytes).await;
    creq.log_access(c, status, upstream, page);
    rt.events.push(creq.no, ProxyEventKind::ClientResponse { status, body_bytes: page, truncated: false });
    keep
}

/// Reads and drops a refused body (nginx's discarded body), bounded by
/// `lingering_timeout` per read and `lingering_time` in all.
async fn discard(c: &mut Conn, declared: u64) {
    let deadline = tokio::time::Instant::now() + LINGERING_TIME;
    let mut left = declared;
    loop {
        // Exactly the body: bytes after it (a pipelined request) stay.
        let take = left.min(c.rbuf.len() as u64) as usize;
        c.rbuf.drain(..take);
        left -= take as u64;
        if left == 0 || tokio::time::Instant::now() >= deadline {
            return;
        }
        c.rbuf.reserve(16 * 1024);
        match tokio::time::timeout(LINGERING_TIMEOUT, c.stream.read_buf(&mut c.rbuf)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return,
        }
    }
}

enum BodyError {
    TooLarge(u64),
    Bad,
    Gone,
    Io,
}

/// Reads the whole request body (`proxy_request_buffering on`): in memory
/// up to `client_body_buffer_size`, past it in a temp file, with nginx's
/// `[warn]` line.
async fn read_body(rt: &Runtime, c: &mut Conn, creq: &ClientRequest, loc: &ResolvedLocation, declared: u64, chunked: bool) -> Result<RequestBody, BodyError> {
    let mut decoder = labkit::wire::BodyDecoder::new(if chunked { labkit::wire::BodyFraming::Chunked } else { labkit::wire::BodyFraming::Length(declared) });
    let mut mem: Vec<u8> = Vec::new();
    let mut file: Option<(tokio::fs::File, PathBuf)> = None;
    let mut total = 0u64;
    loop {
        let mut data = Vec::new();
        let mut done = false;
        loop {
            match decoder.step(&c.rbuf).map_err(|_| BodyError::Bad)? {
                labkit::wire::Step::Skip(n) => {
                    c.rbuf.drain(..n);
                }
                labkit::wire::Step::Data(n) => {
                    data.extend_from_slice(&c.rbuf[..n]);
                    c.rbuf.drain(..n);
                }
                labkit::wire::Step::Done(n) => {
                    c.rbuf.drain(..n);
                    done = true;
                    break;
                }
                // A chunk line that never ends is not waited for.
                labkit::wire::Step::NeedMore if c.rbuf.len() > response::MAX_CHUNK_LINE => return Err(BodyError::Bad),
                labkit::wire::Step::NeedMore => break,
            }
        }
        total += data.len() as u64;
        if chunked && loc.client_max_body_size > 0 && total > loc.client_max_body_size {
            return Err(BodyError::TooLarge(total));
        }
        if file.is_none() && mem.len() + data.len() > loc.client_body_buffer_size {
            let n = rt.next_temp.fetch_add(1, Ordering::SeqCst);
            let path = rt.body_temp.join(format!("{n:010}"));
            let _ = tokio::fs::create_dir_all(&rt.body_temp).await;
            let mut f = tokio::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(&path).await.map_err(|_| BodyError::Io)?;
            creq.log(rt, Level::Warn, &format!("{} {}", logs::BODY_BUFFERED, path.display()), None);
            f.write_all(&mem).await.map_err(|_| BodyError::Io)?;
            mem = Vec::new();
            file = Some((f, path));
        }
        match file.as_mut() {
            Some((f, _)) => f.write_all(&data).await.map_err(|_| BodyError::Io)?,
            None => mem.extend_from_slice(&data),
        }
        if done {
            break;
        }
        match c.fill(CLIENT_BODY_TIMEOUT).await {
            Ok(0) | Err(_) => return Err(BodyError::Gone),
            Ok(_) => {}
        }
    }
    Ok(match file {
        Some((mut f, path)) => {
            f.flush().await.map_err(|_| BodyError::Io)?;
            RequestBody::File { file: f, path, len: total }
        }
        None => RequestBody::Memory(mem),
    })
}

/// The `error_page` for `status`, when the location its URI or `@name`
/// reaches is emulated (a URL target is not).
fn error_page_target<'a>(srv: &nginx_model::resolve::ResolvedServer, status: u16, pages: &'a [nginx_model::conf::ErrorPage]) -> Option<&'a nginx_model::conf::ErrorPage> {
    let page = response::error_page_for(status, pages)?;
    // An unknown `@name` is taken too (nginx answers it with a 500), and a
    // URL (a redirect to it).
    (page.uri.starts_with('@') || response::error_page_redirect(page).is_some() || error_page_route(srv, page).is_some()).then_some(page)
}

/// The location an `error_page` leads to: `@name` by name
/// (`ngx_http_named_location`), a URI as any request's
/// (`ngx_http_internal_redirect`).
fn error_page_route<'a>(srv: &'a nginx_model::resolve::ResolvedServer, page: &nginx_model::conf::ErrorPage) -> Option<Route<'a>> {
    if page.uri.starts_with('@') {
        return srv.named(&page.uri);
    }
    let path = page.uri.split('?').next().unwrap_or("");
    if !path.starts_with('/') {
        return None;
    }
    srv.route(path)
}

/// `ngx_http_send_error_page`: an internal redirect (GET) to the page's
/// URI, answered by that location's `return`, sent with the error's status
/// (or the `=` one); the access line names the new `$uri` and is written
/// to that location's logs.
#[allow(clippy::too_many_arguments)]
async fn error_page_answer(rt: &Runtime, c: &mut Conn, creq: &mut ClientRequest, side: ClientSide, status: u16, upstream: &[logs::UpstreamState], page: &nginx_model::conf::ErrorPage, target: &nginx_model::resolve::ReturnLocation) -> bool {
    // A named location keeps the request's URI (ngx_http_named_location),
    // so does a redirect to a URL (sent with the redirect's own status).
    let url = response::error_page_redirect(page).is_some();
    let named = page.uri.starts_with('@') || url;
    let path = if named { creq.vars.uri.clone() } else { page.uri.split('?').next().unwrap_or("").to_string() };
    let side = ClientSide { keepalive: response::error_keeps_connection(status, side.keepalive), server_tokens: target.server_tokens, ..side };
    // r->headers_in.server: the Host name, lowercased (ngx_http_validate_host).
    let host = &creq.vars.http_host;
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host).to_ascii_lowercase();
    let port = c.stream.local_addr().map(|a| a.port()).unwrap_or(80);
    let base = if port == 80 { format!("http://{name}") } else { format!("http://{name}:{port}") };
    if !named {
        creq.vars.uri.clone_from(&path);
        creq.vars.args = page.uri.split_once('?').map(|(_, a)| a.to_string()).unwrap_or_default();
    }
    let vars = creq.vars(upstream);
    // A URL page was expanded already (error_page_uri).
    let text = if url { target.ret.text.clone() } else { response::return_text(&target.ret, &vars) };
    let a = response::return_response(target.ret.code, text.as_deref(), &path, &base, side, &http_date());
    let final_status = if url { a.status } else { response::error_page_status(status, page, a.status) };
    let bytes = if final_status == a.status { a.bytes } else { response::with_status(a.bytes, final_status) };
    let bytes = response::insert_headers(bytes, &response::added_headers(final_status, &target.add_headers, &vars));
    let _ = c.stream.write_all(&bytes).await;
    creq.access_log.clone_from(&target.access_log);
    creq.log_access(c, final_status, upstream, a.body_bytes);
    rt.events.push(creq.no, ProxyEventKind::ClientResponse { status: final_status, body_bytes: a.body_bytes, truncated: false });
    a.keepalive
}

/// How a tunnel ended.
struct Tunneled {
    /// Bytes sent to the client after the 101 head.
    body_bytes: u64,
    end: TunnelEnd,
}

enum TunnelEnd {
    /// A side closed (or the client failed: nginx logs that at info, not emulated).
    Closed,
    TimedOut,
    /// The upstream's recv() failed with this errno.
    UpstreamError(i32),
}

/// `ngx_http_upstream_upgrade` and `_process_upgraded`: the 101 head, then
/// bytes both ways (the client's bytes that came behind the request head
/// first) until either side closes or fails, or nothing moves for
/// `idle` (proxy_read_timeout on the upstream read); then both close.
async fn tunnel(c: &mut Conn, head: Vec<u8>, preread: bytes::BytesMut, up: &mut crate::keepalive::UpstreamConn, idle: Duration) -> Tunneled {
    let mut out = Tunneled { body_bytes: 0, end: TunnelEnd::Closed };
    // ngx_http_upstream_upgrade: `tcp_nodelay` on both connections.
    let _ = up.stream.set_nodelay(true);
    if c.stream.write_all(&head).await.is_err() {
        return out;
    }
    if !preread.is_empty() {
        if c.stream.write_all(&preread).await.is_err() {
            return out;
        }
        out.body_bytes += preread.len() as u64;
    }
    if !c.rbuf.is_empty() {
        let early = std::mem::take(&mut c.rbuf);
        if up.stream.write_all(&early).await.is_err() {
            return out;
        }
    }
    let (mut from_client, mut from_up) = (vec![0u8; 16384], vec![0u8; 16384]);
    loop {
        let moved = tokio::time::timeout(idle, async {
            tokio::select! {
                r = c.stream.read(&mut from_client) => match r {
                    Ok(n) if n > 0 => up.stream.write_all(&from_client[..n]).await.is_ok().then_some(0).ok_or(None),
                    _ => Err(None),
                },
                r = up.stream.read(&mut from_up) => match r {
                    Ok(n) if n > 0 => c.stream.write_all(&from_up[..n]).await.is_ok().then_some(n as u64).ok_or(None),
                    Ok(_) => Err(None),
                    Err(e) => Err(Some(nginx_model::failure::errno_of(&e))),
                },
            }
        })
        .await;
        match moved {
            Ok(Ok(n)) => out.body_bytes += n,
            Ok(Err(errno)) => {
                if let Some(e) = errno {
                    out.end = TunnelEnd::UpstreamError(e);
                }
                return out;
            }
            Err(_) => {
                out.end = TunnelEnd::TimedOut;
                return out;
            }
        }
    }
}

/// How a passed response ended.
struct Passed<'a> {
    upstream_result: Result<(), BodyFailure>,
    /// The body was read whole.
    complete: bool,
    /// Lines for error.log (after the attempt's own).
    lines: Vec<(Level, String)>,
    reusable: bool,
    client_gone: bool,
    truncated: bool,
    body_bytes: u64,
    keepalive: bool,
    /// A buffered response's output still to send once the upstream's part
    /// is over ([`drain`]).
    rest: Option<Output<'a>>,
}

/// A buffered response's read-ahead (`ngx_event_pipe`): bytes read from the
/// upstream and not yet sent, in memory up to `proxy_buffers` +
/// `proxy_buffer_size`, past that in a temporary file
/// (`nginx_model::buffering`).
struct Spool<'a> {
    /// The temp file counter (`ngx_next_temp_number`).
    numbers: &'a std::sync::atomic::AtomicU64,
    limits: buffering::Limits,
    mem: std::collections::VecDeque<Vec<u8>>,
    mem_len: usize,
    /// Sent bytes of `mem`'s front.
    front_off: usize,
    /// The temporary file (unlinked once open): written, sent.
    file: Option<std::fs::File>,
    file_written: u64,
    file_sent: u64,
    /// Where a new file goes: `dir` (`proxy_temp_path`, relative to
    /// `prefix`), with its levels; joined only when a file is made.
    prefix: &'a std::path::Path,
    dir: &'a str,
    levels: [usize; 3],
    /// Bytes of the file at `scratch_at`, read for the client.
    scratch: Vec<u8>,
    scratch_at: u64,
}

impl<'a> Spool<'a> {
    /// An empty read-ahead: nothing in memory, no file yet.
    fn new(numbers: &'a std::sync::atomic::AtomicU64, limits: buffering::Limits, prefix: &'a std::path::Path, dir: &'a str, levels: [usize; 3]) -> Self {
        Spool { numbers, limits, mem: Default::default(), mem_len: 0, front_off: 0, file: None, file_written: 0, file_sent: 0, prefix, dir, levels, scratch: Vec::new(), scratch_at: 0 }
    }

    fn is_empty(&self) -> bool {
        self.mem_len == 0 && self.file_sent == self.file_written
    }

    fn next(&self) -> buffering::Next {
        buffering::next(self.limits, self.mem_len, self.file_sent < self.file_written, self.file_written)
    }

    /// Takes bytes for the client: into memory or the file (a new file's
    /// `[warn]` text is returned). A file that cannot be written ends the
    /// read-ahead's use of it: the bytes stay in memory.
    fn put(&mut self, data: Vec<u8>) -> Option<String> {
        if data.is_empty() {
            return None;
        }
        let mut warn = None;
        if self.next() == buffering::Next::File {
            use std::os::unix::fs::FileExt;
            if self.file.is_none() {
                let n = self.numbers.fetch_add(1, Ordering::SeqCst);
                let path = buffering::temp_file_path(&self.prefix.join(self.dir).display().to_string(), self.levels, n);
                let p = std::path::Path::new(&path);
                if let Some(parent) = p.parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                if let Ok(f) = std::fs::OpenOptions::new().create(true).truncate(true).read(true).write(true).open(p) {
                    // Only the open descriptor is used; nothing is left behind.
                    let _ = std::fs::remove_file(p);
                    self.file = Some(f);
                    warn = Some(format!("{} while reading upstream", buffering::warn_text(&path)));
                } else {
                    self.limits.max_temp_file = 0;
                }
            }
            if let Some(f) = &self.file {
                if f.write_all_at(&data, self.file_written).is_ok() {
                    self.file_written += data.len() as u64;
                    return warn;
                }
                self.limits.max_temp_file = 0;
            }
        }
        self.mem_len += data.len();
        self.mem.push_back(data);
        warn
    }

    /// One write to the client of what comes first: memory, then the file.
    async fn send_some(&mut self, s: &TcpStream) -> std::io::Result<usize> {
        let chunk: &[u8] = if let Some(front) = self.mem.front() {
            &front[self.front_off..]
        } else if let (Some(f), true) = (&self.file, self.file_sent < self.file_written) {
            use std::os::unix::fs::FileExt;
            // What was read from the file and not yet sent is kept: a
            // write that waits may be given up for a read and tried again.
            let held = self.file_sent >= self.scratch_at && self.file_sent < self.scratch_at + self.scratch.len() as u64;
            if !held {
                let want = (self.file_written - self.file_sent).min(64 * 1024) as usize;
                self.scratch.resize(want, 0);
                f.read_exact_at(&mut self.scratch, self.file_sent)?;
                self.scratch_at = self.file_sent;
            }
            &self.scratch[(self.file_sent - self.scratch_at) as usize..]
        } else {
            return Ok(0);
        };
        s.writable().await?;
        let n = match s.try_write(chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(0),
            Err(e) => return Err(e),
        };
        if self.mem.front().is_some() {
            self.front_off += n;
            self.mem_len -= n;
            if self.front_off == self.mem.front().map_or(0, |f| f.len()) {
                self.mem.pop_front();
                self.front_off = 0;
            }
        } else {
            self.file_sent += n as u64;
        }
        Ok(n)
    }
}

impl Output<'_> {
    /// One write of the read-ahead to the client; its bytes count as sent.
    async fn send_spool(&mut self, s: &TcpStream) -> std::io::Result<()> {
        let Some(sp) = self.spool.as_mut() else { return Ok(()) };
        let n = sp.send_some(s).await?;
        let head = self.spool_head.min(n);
        self.spool_head -= head;
        self.body_sent += (n - head) as u64;
        Ok(())
    }

    fn spooled(&self) -> bool {
        self.spool.as_ref().is_some_and(|sp| !sp.is_empty())
    }
}

/// The read-ahead's `[warn]` (its temporary file), logged when the file is
/// made: before any line about how the upstream's part ended.
fn log_warn(rt: &Runtime, creq: &ClientRequest, peer: &SocketAddr, out: &mut Output<'_>) {
    if let Some(w) = out.warn.take() {
        let line = body_line(Level::Warn, w, &peer.to_string());
        creq.log(rt, line.level, &line.text, Some(&line.upstream));
    }
}

/// A buffered response's end: what the read-ahead holds goes to the client
/// at its pace, after the upstream connection was released
/// (`ngx_http_upstream_process_request` finalizes the upstream side when
/// `p->upstream_done`; `ngx_http_writer` sends the rest).
async fn drain(c: &mut Conn, p: &mut Passed<'_>) {
    let Some(mut out) = p.rest.take() else { return };
    while !out.failed && out.spooled() {
        if out.send_spool(&c.stream).await.is_err() {
            out.failed = true;
        }
    }
    p.body_bytes = out.body_sent;
    if out.failed {
        p.truncated = true;
        p.keepalive = false;
    }
}

/// `ngx_http_write_filter` with `postpone_output`: output waits until there
/// is enough of it, or it is the last, or a flush.
struct Output<'a> {
    pending: Vec<u8>,
    /// Bytes of the head not yet written (they do not count as body).
    head_left: usize,
    body_sent: u64,
    failed: bool,
    /// Buffering on: output goes to the read-ahead, not to the socket.
    spool: Option<Spool<'a>>,
    /// `[warn]` texts of the read-ahead (its temporary file).
    warn: Option<String>,
    /// Bytes handed to the read-ahead that are head, not body.
    spool_head: usize,
}

impl Output<'_> {
    async fn push(&mut self, s: &mut TcpStream, data: &[u8], flush: bool) {
        self.pending.extend_from_slice(data);
        if flush || self.pending.len() >= POSTPONE_OUTPUT {
            self.flush(s).await;
        }
    }

    async fn flush(&mut self, s: &mut TcpStream) {
        if self.pending.is_empty() || self.failed {
            return;
        }
        if let Some(sp) = self.spool.as_mut() {
            // Counted as sent when the client takes them (`send_spool`).
            let head = self.head_left.min(self.pending.len());
            self.head_left -= head;
            self.spool_head += head;
            let data = std::mem::take(&mut self.pending);
            if let Some(w) = sp.put(data) {
                self.warn.get_or_insert(w);
            }
            return;
        }
        let n = self.pending.len();
        if s.write_all(&self.pending).await.is_err() {
            self.failed = true;
            return;
        }
        let head = self.head_left.min(n);
        self.head_left -= head;
        self.body_sent += (n - head) as u64;
        self.pending.clear();
    }
}

/// Sends the upstream's response: nginx's head, then the body as it is read
/// (re-chunked for an HTTP/1.1 client when its length is unknown), and ends
/// as nginx ends it on each kind of failure.
#[allow(clippy::too_many_arguments)]
async fn respond<'a>(
    rt: &'a Runtime,
    c: &mut Conn,
    creq: &ClientRequest,
    loc: &'a ResolvedLocation,
    side: ClientSide,
    head: Option<&response::UpstreamHead>,
    buf: bytes::BytesMut,
    up: &mut crate::keepalive::UpstreamConn,
    err_status: Option<u16>,
    states: &[logs::UpstreamState],
) -> Passed<'a> {
    let mut out = Output { pending: Vec::new(), head_left: 0, body_sent: 0, failed: false, spool: None, warn: None, spool_head: 0 };
    let mut lines = Vec::new();
    let (body_kind, chunked, keepalive, send_body) = match head {
        Some(h) => {
            let ch = response::client_head(h, side, &http_date());
            // ngx_http_send_header: r->err_status (an error_page's) replaces
            // the status line before the header filters run.
            let (bytes, status) = match err_status {
                Some(s) => (response::with_status(ch.bytes, s), s),
                None => (ch.bytes, h.status),
            };
            let bytes = response::insert_headers(bytes, &creq.added_headers(status, &loc.add_headers, states));
            out.head_left = bytes.len();
            out.pending = bytes;
            (h.body(side.head_request), ch.chunked, ch.keepalive, ch.body)
        }
        // HTTP/0.9: no head, the bytes as they come, then close.
        None => (UpstreamBody::Close, false, false, true),
    };
    // ngx_http_upstream_send_response: buffering (proxy_buffering, the
    // upstream's X-Accel-Buffering) reads the body ahead of the client.
    if let Some(h) = head.filter(|_| send_body) {
        let accel = h.headers().find(|(n, _)| n.eq_ignore_ascii_case(b"x-accel-buffering")).map(|(_, v)| String::from_utf8_lossy(v).into_owned());
        if buffering::buffered(loc.buffering, accel.as_deref(), loc.ignore_accel_buffering) {
            // An absolute path replaces the prefix in the join.
            let (dir, levels) = match &loc.temp_path {
                Some((p, levels)) => (p.as_str(), *levels),
                None => ("proxy_temp", buffering::DEFAULT_LEVELS),
            };
            out.spool = Some(Spool::new(&rt.next_temp, buffering::Limits::new(loc.buffers, loc.buffer_size, loc.max_temp_file_size), &rt.prefix, dir, levels));
        }
    }
    let mut reader = BodyReader::new(body_kind, buf, loc.read_timeout);
    let raw = head.is_none();
    // Bytes that came with the header are passed on at the next read of a
    // length- or close-delimited body (the event pipe's preread buffer); a
    // chunked body's are decoded at once.
    let mut held: Option<Vec<u8>> = None;
    let mut first = true;
    let result: Result<(), BodyFailure> = loop {
        let decoded = if raw { Ok((reader.take_raw(), false)) } else { reader.decode() };
        let (data, done) = match decoded {
            Ok(x) => x,
            Err(bf) => break Err(bf),
        };
        let piece = if chunked && !data.is_empty() { response::chunk(&data) } else { data };
        if send_body && !piece.is_empty() {
            if first && body_kind != UpstreamBody::Chunked && !done {
                held = Some(piece);
            } else {
                out.push(&mut c.stream, &piece, false).await;
            }
        }
        if done {
            break Ok(());
        }
        first = false;
        if out.failed {
            // The client is gone (its socket refused a write): stop reading.
            break Ok(());
        }
        // ngx_event_pipe: reading ahead while there is room, sending what
        // was read whenever the client takes it.
        let read = loop {
            let can_read = out.spool.as_ref().is_none_or(|sp| sp.next() != buffering::Next::Wait);
            let can_send = out.spooled();
            // ngx_event_pipe: write to the client first, then read.
            tokio::select! {
                biased;
                w = out.send_spool(&c.stream), if can_send => {
                    if w.is_err() {
                        out.failed = true;
                        break Ok(Ok(true));
                    }
                }
                r = reader.fill(&mut up.stream), if can_read => break Ok(r),
                e = client_closed(&c.stream) => break Err(e),
            }
        };
        match read {
            Err(errno) => {
                log_warn(rt, creq, &up.peer, &mut out);
                lines.push((Level::Info, logs::client_closed_text(errno, "reading upstream")));
                return Passed {
                    upstream_result: Ok(()),
                    complete: false,
                    lines,
                    reusable: false,
                    client_gone: true,
                    truncated: true,
                    body_bytes: out.body_sent,
                    keepalive: false,
                    rest: None,
                };
            }
            Ok(Ok(more)) => {
                if let Some(h) = held.take() {
                    out.push(&mut c.stream, &h, false).await;
                }
                log_warn(rt, creq, &up.peer, &mut out);
                if !more {
                    break Ok(());
                }
            }
            Ok(Err(bf)) => {
                if matches!(bf, BodyFailure::PrematureClose) {
                    if let Some(h) = held.take() {
                        out.push(&mut c.stream, &h, false).await;
                    }
                }
                break Err(bf);
            }
        }
    };
    let delimited = reader.delimited();
    let ok = result.is_ok() && !out.failed;
    match &result {
        Ok(()) => {
            if chunked {
                out.push(&mut c.stream, response::LAST_CHUNK, true).await;
            } else {
                out.flush(&mut c.stream).await;
            }
        }
        // An unparsable chunked body: the request ends in an error, and
        // nothing still postponed (not even the head) is sent.
        Err(BodyFailure::InvalidChunked) => out.pending.clear(),
        // A cut body: what was read is flushed, then the connection closes.
        Err(BodyFailure::PrematureClose) => out.flush(&mut c.stream).await,
        Err(_) => out.flush(&mut c.stream).await,
    }
    log_warn(rt, creq, &up.peer, &mut out);
    if reader.extra && !side.head_request {
        lines.push((Level::Warn, "upstream sent more data than specified in \"Content-Length\" header while reading upstream".to_string()));
    }
    if let Err(bf) = &result {
        rt.events.push(creq.no, ProxyEventKind::BodyFailed { local_port: up.local_port, class: bf.class() });
    }
    Passed {
        upstream_result: result,
        complete: ok,
        lines,
        // Delimited, with nothing after the body (nginx drops the
        // connection after "more data than specified").
        reusable: delimited && (side.head_request || !reader.extra) && !raw,
        client_gone: false,
        truncated: !ok || out.failed,
        body_bytes: out.body_sent,
        keepalive: ok && keepalive && !out.failed,
        rest: (out.spooled() && !out.failed).then_some(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The read-ahead keeps the body's order across memory, the file and
    /// memory again, and names each file once with its number.
    #[tokio::test]
    async fn spool_keeps_order_through_the_file() {
        let name = format!("spool-test-{}", std::process::id());
        let tmp = std::env::temp_dir();
        let dir = tmp.join(&name);
        let numbers = std::sync::atomic::AtomicU64::new(7);
        let mut sp = Spool::new(&numbers, buffering::Limits { memory: 10, max_temp_file: 1000 }, &tmp, &name, [1, 2, 0]);
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (mut b, _) = l.accept().await.unwrap();
        let piece = |i: u8| vec![b'a' + i; 6];
        // Memory (6, then 12 >= 10), then the file, which warns once.
        assert_eq!(sp.put(piece(0)), None);
        assert_eq!(sp.put(piece(1)), None);
        assert_eq!(sp.next(), buffering::Next::File);
        let warn = sp.put(piece(2)).expect("a new file warns");
        assert_eq!(warn, format!("an upstream response is buffered to a temporary file {}/7/00/0000000007 while reading upstream", dir.display()));
        assert_eq!(sp.put(piece(3)), None);
        // Drained: memory first, then the file; then memory again.
        while !sp.is_empty() {
            sp.send_some(&a).await.unwrap();
        }
        assert_eq!(sp.next(), buffering::Next::Memory);
        assert_eq!(sp.put(piece(4)), None);
        while !sp.is_empty() {
            sp.send_some(&a).await.unwrap();
        }
        drop(a);
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, [piece(0), piece(1), piece(2), piece(3), piece(4)].concat());
        // The file was unlinked once open.
        assert!(!dir.join("7/00/0000000007").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
