//! The oracle: predicts each request's outcome from a scenario's
//! configuration and workload, without sockets or a runtime.
//!
//! It is a driver, not a second model. nginx's side is `nginx_model`: the
//! resolved configuration, the attempt state machine ([`Attempts`]) and the
//! keepalive cache policy ([`KeepaliveCache`]), exactly as the proxy runs
//! them. Go's side is [`go_model::serve`]: the handler's script through Go's
//! response writer and rules, in virtual time, exactly as upstream-sim runs
//! them. The bytes Go writes are read with `labkit::wire`, as the proxy
//! reads them. What the oracle adds is a virtual clock, the process-level
//! facts of the workload (a crashed server refuses connections, a full
//! accept queue times them out) and the lab's deterministic race knobs.
//! Natural-race scenarios depend on the clock and are not predicted.
//!
//! Where the kernel decides, the prediction says so: an RST that leaves
//! with Go's last writes may drop any part of them, so the body is a range
//! ([`BodyOutcome`]). When that happens to the response head itself (a
//! closing HTTP/1.0 request whose large body Go never read), the oracle
//! predicts as if the head arrived; real runs may see a 502 instead.

use crate::verdict::Observation;
use crate::scenario::{scale_path, Action, Scenario};
use crate::setup::{dur, go_config, nginx_config};
use go_model::serve::{serve, End, RequestSpec, Served, Transmit};
use go_model::{rules, CloseKind, IdleRace, ServerConfig};
use labkit::wire::{BodyDecoder, BodyFraming, Step as Wire};
use nginx_model::attempt::{Attempts, Step};
use nginx_model::balancer::{Peer, RoundRobin};
use nginx_model::failure::{class_of_log_line, BodyFailure, Class, Failure};
use nginx_model::http::{self, RequestVars};
use nginx_model::keepalive::KeepaliveCache;
use nginx_model::response::{self, HeadParse, UpstreamHead};
use nginx_model::profile::sends_connection_close;
use nginx_model::resolve::{resolve, ResolvedLocation, ResolvedUpstream, Route};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// The predicted outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub status: u16,
    pub upstream_status: Vec<u16>,
    /// One entry per `[error]` line before the response was passed on: the
    /// classes it may have (whether nginx is still writing a request body
    /// when an RST comes decides between `reset` and `send-failed`).
    pub errors: Vec<Vec<Class>>,
    pub handler_runs: u64,
    /// How the response body may end for the client: one outcome, or two
    /// when Go's last writes and its RST leave together (Linux drops what
    /// is still unsent on a reset; the socket buffers decide how much, so
    /// the cut one is a range of byte counts).
    pub body: Vec<BodyOutcome>,
    /// From nginx's first step to the end of the response, on the model's
    /// clock (loopback: no network time; the handler and timeouts decide).
    pub latency: Duration,
    /// The other outcome when Go answers and then resets over a request
    /// body it left unread while nginx may still be uploading it
    /// ([`upload_race`]): nginx's `writev()` fails first, and the answer
    /// is lost (observed on nginx 1.22.1 + Go 1.19:
    /// `early-answer-unread-body`). `None` when no such race is possible,
    /// or when the failure would be retried (not predicted here).
    pub alt: Option<Box<Prediction>>,
}

/// A request body larger than this may still be on its way from nginx when
/// Go resets: loopback's socket buffers take a smaller one whole in nginx's
/// first `writev()` (the bound `check` uses for "small enough for Go's
/// buffers").
pub const UPLOAD_IN_FLIGHT: usize = 64 << 10;

/// Whether Go's answer races nginx's upload: Go closed with an RST (bytes
/// it never read were in its receive buffer: an unread body) and the body
/// was large enough to be still in flight.
pub fn upload_race(end: End, body_len: usize) -> bool {
    matches!(end, End::Close { how: CloseKind::Rst, .. }) && body_len > UPLOAD_IN_FLIGHT
}

/// What the client gets of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyOutcome {
    /// Body bytes the client receives (one value, or a range when the
    /// kernel decides).
    pub bytes: RangeInclusive<u64>,
    /// The response ends before its framing says it should.
    pub truncated: bool,
    /// The `[error]` line nginx writes while reading the body, if any.
    pub error: Option<Class>,
}

/// Whether nginx can reuse a connection Go has already closed: Go arms its
/// idle deadline when it has flushed a response, nginx arms
/// `keepalive_timeout` only after reading it, so with equal values Go still
/// closes first.
pub fn idle_race_possible(go: &ServerConfig, keepalive_timeout: Duration) -> bool {
    rules::effective_idle_limit(go).is_some_and(|limit| keepalive_timeout >= limit)
}

/// One Go server process, as the workload left it.
struct Server {
    cfg: ServerConfig,
    listening: bool,
    backlog_full: bool,
    /// What a new connection meets that the kernel queues but Go does not
    /// accept in time (`hold-connections`, a handoff with a queued connection).
    queued: Queued,
    keep_alives: bool,
}

/// A new connection that waits in the accept queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queued {
    /// Accepted at once, as usual.
    Accepted,
    /// Go's accept fails at its fd limit and backs off: the handshake is
    /// complete, the request sits unread, nginx's read timer fires.
    Stalled,
    /// The listener closes with it queued (the next new connection goes to
    /// the listener that took over): RST.
    Reset,
}

/// Go's side of a connection nginx holds idle.
#[derive(Debug, Clone, Copy)]
enum GoSide {
    /// Waiting for the next request since `since`.
    Idle { since: Instant },
    /// Closes exactly as the next request arrives (a lab race knob).
    Closing(IdleRace),
    /// Not accepted (a new connection still in the accept queue).
    Queued(Queued),
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    go: GoSide,
    /// Requests sent on it (`c->requests`).
    requests: u32,
    created: Instant,
}

/// A request as the runner's client sends it.
struct Req<'a> {
    method: &'a str,
    /// Handler path, at run scale.
    path: &'a str,
    body: usize,
    /// An `auth_request` subrequest: `body` is declared (Content-Length)
    /// but never sent, and the response is `header_only` (its connection
    /// is kept only when no body follows).
    subrequest: bool,
}

/// How the header read of one attempt ended, relative to the request's send.
enum Header {
    Failed(Failure, Duration),
    Read { head: UpstreamHead, at: Duration, leftover: Vec<u8>, next: usize },
}

struct Model {
    loc: ResolvedLocation,
    /// `auth_request`: the auth location and its upstream URI.
    auth: Option<(ResolvedLocation, String)>,
    up: ResolvedUpstream,
    /// Peers are named by their server's index.
    rr: RoundRobin<usize>,
    cache: KeepaliveCache<usize, Conn>,
    servers: Vec<Server>,
    now: Instant,
    /// Local ports nginx's `connect()` can still get for the Go servers'
    /// address (`ip_local_port_range`), when the scenario narrows them. A
    /// connection holds its port while open, and after it when nginx
    /// closed first: TIME_WAIT's 60 s outlast any run (loopback's
    /// `tcp_tw_reuse=2` needs a second). When Go closes first, the
    /// TIME_WAIT is Go's and the port is free again (a SYN to a TIME_WAIT
    /// socket opens a new connection). Which side closes first when Go
    /// answers `Connection: close` is a race on loopback (nginx first in 1
    /// of 8 on nginx 1.22.1): predicted as Go first.
    free_ports: Option<u32>,
}

impl Model {
    fn new(s: &Scenario, scale: f64) -> Option<Model> {
        let go = go_config(s, scale);
        let n = s.go.servers.max(1);
        let addrs: Vec<std::net::SocketAddr> = (0..n).map(|i| ([127, 0, 0, 1], 1000 + i as u16).into()).collect();
        let cfg = nginx_config(s, &addrs, ([127, 0, 0, 1], 1).into(), scale);
        // nginx 1.22's defaults (Debian's) unless the scenario names a release.
        let r = resolve(&cfg, s.nginx_profile()).ok()?;
        let server = r.servers.first()?;
        let loc = server.route("/").and_then(|r| match r {
            Route::Proxy(l) => Some(l.clone()),
            Route::Return(_) => None,
        })?;
        // An auth location on another upstream, or one that does not proxy,
        // is not predicted.
        let auth = match &loc.auth_request {
            None => None,
            Some(uri) => match server.route(uri)? {
                Route::Proxy(a) if a.upstream == loc.upstream && a.pass_script.is_none() => Some((a.clone(), http::upstream_uri(a, uri, uri.as_bytes(), "", false))),
                _ => return None,
            },
        };
        let up = r.upstreams.get(loc.upstream)?.clone();
        let (mut primary, mut backup) = (Vec::new(), Vec::new());
        for (i, p) in up.peers.iter().enumerate() {
            let peer = Peer::new(i, p.weight, p.max_fails, p.fail_timeout, p.down);
            if p.backup {
                backup.push(peer);
            } else {
                primary.push(peer);
            }
        }
        Some(Model {
            rr: RoundRobin::new(primary, backup),
            cache: KeepaliveCache::new(up.keepalive),
            // With `localhost`, each Go server's [::1] peer comes first: nothing listens there.
            servers: (0..n)
                .flat_map(|_| [false, true].into_iter().skip(usize::from(!s.nginx.localhost)))
                .map(|listening| Server { cfg: go.clone(), listening, backlog_full: false, queued: Queued::Accepted, keep_alives: go.keep_alives })
                .collect(),
            loc,
            auth,
            up,
            now: Instant::now(),
            free_ports: s.local_port_range().map(|(lo, hi)| u32::from(hi - lo) + 1),
        })
    }

    /// Before a request: nginx closes what outlived `keepalive_timeout`; Go
    /// closes what outlived its idle limit (nginx's close handler then drops
    /// it silently), unless the race knob holds the close for the request.
    fn age(&mut self) {
        self.cache.expire(self.now);
        let (now, servers) = (self.now, &self.servers);
        self.cache.retain_mut(|c| match c.conn.go {
            GoSide::Closing(_) | GoSide::Queued(_) => true,
            GoSide::Idle { since } => match rules::idle_close(&servers[c.peer].cfg) {
                rules::IdleClose::Never => true,
                rules::IdleClose::After(limit) => now - since < limit,
                rules::IdleClose::AtNextRequest(limit, race) => {
                    if now - since >= limit {
                        c.conn.go = GoSide::Closing(race);
                    }
                    true
                }
            },
        });
    }

    /// Go closed the connection first: its port is nginx's again.
    fn port_freed(&mut self) {
        if let Some(free) = &mut self.free_ports {
            *free += 1;
        }
    }

    fn act(&mut self, action: Action) {
        let drop_first = |cache: &mut KeepaliveCache<usize, Conn>| {
            cache.retain_mut(|c| c.peer != 0);
        };
        match action {
            Action::None => {}
            // Every socket of the process closes; nginx's close handlers drop them.
            Action::Crash => {
                self.servers[0].listening = false;
                drop_first(&mut self.cache);
            }
            // The new process takes the listener; the old one's Shutdown
            // closes its idle connections.
            Action::RestartHandoff => drop_first(&mut self.cache),
            Action::Shutdown => {
                self.servers[0].listening = false;
                match self.servers[0].cfg.shutdown_race {
                    Some(race) => {
                        self.cache.retain_mut(|c| {
                            if c.peer == 0 {
                                c.conn.go = GoSide::Closing(race);
                            }
                            true
                        });
                    }
                    None => drop_first(&mut self.cache),
                }
            }
            Action::KeepalivesOffThenShutdown => {
                self.servers[0].keep_alives = false;
                self.servers[0].listening = false;
                drop_first(&mut self.cache);
            }
            Action::FillBacklog => self.servers.iter_mut().for_each(|s| s.backlog_full = true),
            Action::HoldConnections => {
                if rules::accept_fails(self.servers[0].cfg.fd_limit, labkit::action::HELD_CONNECTIONS) {
                    self.servers[0].queued = Queued::Stalled;
                }
            }
            // The handoff waits for a new connection in the old server's
            // queue; its cached connections are still served until then.
            Action::ReuseportHandoffQueued => self.servers[0].queued = Queued::Reset,
            Action::FdHandoffQueued => {}
        }
    }

    fn attempts(&self, method: &str) -> Attempts {
        Attempts::new(self.loc.retry_context(method, &self.up), self.up.name.clone(), self.rr.tries(), self.loc.next_upstream_tries, self.now)
    }

    /// One client request, from nginx's first step to its answer. With
    /// `fresh`, the first connection is a new one (concurrent warm-ups all
    /// find the cache empty), and a connection to keep is handed back
    /// instead of stored.
    fn request(&mut self, req: &Req, mut a: Attempts, first: Step, fresh: bool) -> (Prediction, Option<(usize, Conn)>) {
        let vars = RequestVars { http_host: "lab".into(), remote_addr: "127.0.0.1".into(), ..Default::default() };
        // What nginx sends of the body (none for a subrequest).
        let sent = if req.subrequest { 0 } else { req.body };
        let spec = if req.subrequest {
            let client = [("host".to_string(), "lab".to_string()), ("Content-Length".to_string(), req.body.to_string())];
            let client = if req.body > 0 { &client[..] } else { &client[..1] };
            let head = http::encode_request_head(&self.loc, req.method, req.path, client, req.body as u64, &vars);
            // The length Go is told, if any (`proxy_set_header
            // Content-Length ""` sends none): none of it comes.
            let declared = labkit::wire::RequestHead::parse(&head).ok().flatten().and_then(|(h, _)| h.content_length).unwrap_or(0);
            RequestSpec {
                method: req.method.to_string(),
                target: req.path.to_string(),
                http11: self.loc.http11,
                connection_close: sends_connection_close(&self.loc.headers),
                head_len: head.len(),
                body_len: declared,
                body_withheld: declared,
            }
        } else {
            let body = vec![b'p'; req.body];
            let wire_req = http::encode_request(&self.loc, req.method, req.path, &[("host".into(), "lab".into())], &body, &vars);
            RequestSpec {
                method: req.method.to_string(),
                target: req.path.to_string(),
                http11: self.loc.http11,
                connection_close: sends_connection_close(&self.loc.headers),
                head_len: wire_req.len() - req.body,
                body_len: req.body as u64,
                body_withheld: 0,
            }
        };
        let mut p = Prediction { status: 0, upstream_status: vec![], errors: vec![], handler_runs: 0, body: vec![], latency: Duration::ZERO, alt: None };
        let mut conn: Option<(usize, Conn)> = None;
        let mut keep = None;
        let mut fresh = fresh;
        let mut step = first;
        loop {
            step = match step {
                Step::Connect(pid) => {
                    // Time passed during earlier attempts: idle connections age.
                    self.age();
                    let server = self.rr.peer(pid).addr;
                    let cached = if fresh { None } else { self.cache.checkout(&server) };
                    fresh = false;
                    match cached {
                        Some(c) => {
                            conn = Some((server, c.conn));
                            a.connected(true, self.now)
                        }
                        // connect(2) finds no local port: it fails at once (ngx_event_connect_peer).
                        None if self.free_ports == Some(0) => a.failed(&mut self.rr, Failure::ConnectFailed(99), self.now),
                        // A refused connect's port is free again at once (the RST ends it).
                        None if !self.servers[server].listening => a.failed(&mut self.rr, Failure::ConnectRefused, self.now),
                        None if self.servers[server].backlog_full => {
                            self.now += self.loc.connect_timeout;
                            a.failed(&mut self.rr, Failure::ConnectTimeout, self.now)
                        }
                        None => {
                            if let Some(free) = &mut self.free_ports {
                                *free -= 1;
                            }
                            let go = match self.servers[server].queued {
                                Queued::Accepted => GoSide::Idle { since: self.now },
                                Queued::Stalled => GoSide::Queued(Queued::Stalled),
                                Queued::Reset => {
                                    // Only the connection queued at the handoff.
                                    self.servers[server].queued = Queued::Accepted;
                                    GoSide::Queued(Queued::Reset)
                                }
                            };
                            conn = Some((server, Conn { go, requests: 0, created: self.now }));
                            a.connected(false, self.now)
                        }
                    }
                }
                // The request reaches Go's receive buffer at once (loopback).
                Step::Send => a.sent(),
                Step::ReadHeader => {
                    let Some((server, mut c)) = conn.take() else { return (p, None) };
                    c.requests += 1;
                    match c.go {
                        GoSide::Closing(IdleRace::Fin) => a.failed(&mut self.rr, Failure::PrematureClose, self.now),
                        GoSide::Closing(IdleRace::Rst) => a.failed(&mut self.rr, Failure::RecvFailed(104), self.now),
                        GoSide::Queued(Queued::Reset) => a.failed(&mut self.rr, Failure::RecvFailed(104), self.now),
                        GoSide::Queued(_) => {
                            self.now += self.loc.read_timeout;
                            a.failed(&mut self.rr, Failure::ReadTimeout, self.now)
                        }
                        GoSide::Idle { .. } => {
                            let srv = &self.servers[server];
                            let served = serve(&srv.cfg, srv.keep_alives, &spec);
                            p.handler_runs += served.handler_runs;
                            let start = self.now;
                            match read_header(&served, self.loc.read_timeout, self.loc.buffer_size) {
                                Header::Failed(f, at) => {
                                    self.now = start + at;
                                    if matches!(served.end, End::Close { .. }) {
                                        self.port_freed();
                                    }
                                    a.failed(&mut self.rr, f, self.now)
                                }
                                Header::Read { head, at, leftover, next } => {
                                    self.now = start + at;
                                    if upload_race(served.end, sent) {
                                        // The other outcome: nginx's writev() meets the RST
                                        // before it reads the answer.
                                        let (mut a2, mut rr2) = (a.clone(), self.rr.clone());
                                        if let Step::Finalize { status } = a2.failed(&mut rr2, Failure::SendFailed(104), self.now) {
                                            let page = http::error_page(status).len() as u64;
                                            let mut errors = p.errors.clone();
                                            errors.push(vec![Class::SendFailed]);
                                            p.alt = Some(Box::new(Prediction {
                                                status,
                                                upstream_status: a2.states().iter().map(|s| s.status).collect(),
                                                errors,
                                                handler_runs: p.handler_runs,
                                                body: vec![BodyOutcome { bytes: page..=page, truncated: false, error: None }],
                                                latency: Duration::ZERO,
                                                alt: None,
                                            }));
                                        }
                                    }
                                    let step = a.header(&mut self.rr, head.status, self.now);
                                    if let Step::Pass { status } = step {
                                        let framing = head.body(req.method == "HEAD").framing();
                                        let (bytes, result, end) = read_body(&served.wire, served.end, next, leftover.clone(), at, self.loc.read_timeout, framing);
                                        p.body.push(outcome(bytes, &result));
                                        if let Some(cut) = reset_race(&served, next, leftover.len(), framing, bytes) {
                                            // A length-delimited body that arrived whole is not
                                            // cut for the client, yet nginx, reading on to EOF
                                            // from an upstream it will not keep, meets the RST
                                            // ("readv() failed (104) while reading upstream";
                                            // observed on nginx 1.22.1: early-answer-unread-body).
                                            let whole = matches!(framing, BodyFraming::Length(n) if n == bytes) && cut.bytes.contains(&bytes);
                                            let read_on = BodyOutcome { bytes: bytes..=bytes, truncated: false, error: Some(Class::ResetBody) };
                                            for o in [Some(cut), whole.then_some(read_on)].into_iter().flatten() {
                                                if !p.body.contains(&o) {
                                                    p.body.push(o);
                                                }
                                            }
                                        }
                                        self.now = start + end;
                                        let complete = result.is_ok();
                                        a.finished(&mut self.rr, status, result, self.now);
                                        p.status = status;
                                        if matches!(served.end, End::Close { .. }) {
                                            self.port_freed();
                                        }
                                        // A subrequest is header_only: nginx stops at the header
                                        // and keeps the connection only if no body follows.
                                        let header_only_ok = !req.subrequest || head.body(false) == response::UpstreamBody::Empty;
                                        if let (true, true, End::KeepAlive { at: idle_from }) = (header_only_ok, head.keeps_connection(complete, framing.delimited()), served.end) {
                                            if self.cache.settings().admits(c.requests, self.now - c.created) {
                                                c.go = GoSide::Idle { since: start + idle_from };
                                                keep = Some((server, c));
                                            }
                                        }
                                        break;
                                    }
                                    step
                                }
                            }
                        }
                    }
                }
                Step::Pass { .. } => break,
                Step::Finalize { status } => {
                    p.status = status;
                    let page = http::error_page(status).len() as u64;
                    p.body.push(BodyOutcome { bytes: page..=page, truncated: false, error: None });
                    break;
                }
            };
        }
        p.upstream_status = a.states().iter().map(|s| s.status).collect();
        for line in a.take_log().into_iter().filter(|l| l.level.is_failure()) {
            let class = class_of_log_line(&line.text).unwrap_or(Class::Status);
            if matches!(class, Class::PrematureCloseBody | Class::ResetBody | Class::ReadTimeoutBody) {
                continue; // part of the body outcome
            }
            p.errors.push(match class {
                // Whether nginx is still writing when the RST comes decides the line.
                Class::Reset if sent > 0 => vec![Class::Reset, Class::SendFailed],
                c => vec![c],
            });
        }
        if fresh {
            return (p, keep);
        }
        if let Some((server, c)) = keep {
            let _ = self.cache.store(server, c, self.now);
        }
        (p, None)
    }

    fn one(&mut self, req: &Req) -> Prediction {
        let t0 = self.now;
        // auth_request: the subrequest first, in the access phase
        // (ngx_http_auth_request_handler); its errors come first, its
        // handler run counts when it runs the request's own handler.
        let mut before = None;
        if let Some((auth, uri)) = self.auth.clone() {
            let main = std::mem::replace(&mut self.loc, auth);
            let sub = Req { method: "GET", path: &uri, body: req.body, subrequest: true };
            let mut a = self.attempts("GET");
            let first = a.start(&mut self.rr, self.now);
            let sp = self.request(&sub, a, first, false).0;
            self.loc = main;
            let handler = |p: &str| p.split('?').next().unwrap_or("").to_string();
            let runs = if handler(&uri) == handler(req.path) { sp.handler_runs } else { 0 };
            let answer = |status: u16, errors: Vec<Vec<Class>>, latency: Duration| {
                let page = http::error_page(status).len() as u64;
                Prediction { status, upstream_status: vec![], errors, handler_runs: runs, body: vec![BodyOutcome { bytes: page..=page, truncated: false, error: None }], latency, alt: None }
            };
            match nginx_model::auth::verdict(sp.status) {
                nginx_model::auth::Verdict::Allow => before = Some((sp.errors, runs)),
                nginx_model::auth::Verdict::Deny { status, .. } => return answer(status, sp.errors, self.now - t0),
                nginx_model::auth::Verdict::Error { .. } => {
                    let mut errors = sp.errors;
                    errors.push(vec![Class::AuthStatus]);
                    return answer(500, errors, self.now - t0);
                }
            }
        }
        let mut a = self.attempts(req.method);
        let first = a.start(&mut self.rr, self.now);
        let mut p = self.request(req, a, first, false).0;
        if let Some((mut errors, runs)) = before {
            errors.append(&mut p.errors);
            p.errors = errors;
            p.handler_runs += runs;
        }
        p.latency = self.now - t0;
        if let Some(alt) = &mut p.alt {
            alt.latency = p.latency;
        }
        p
    }

    /// Overlapping warm-up requests: every one picks its peer and opens a
    /// new connection before any is stored.
    fn concurrent(&mut self, req: &Req, n: u32) {
        let started: Vec<(Attempts, Step)> = (0..n)
            .map(|_| {
                let mut a = self.attempts(req.method);
                let step = a.start(&mut self.rr, self.now);
                (a, step)
            })
            .collect();
        let t0 = self.now;
        let mut end = t0;
        let mut keep = Vec::new();
        for (a, step) in started {
            self.now = t0;
            let (_, k) = self.request(req, a, step, true);
            end = end.max(self.now);
            keep.extend(k);
        }
        self.now = end;
        for (server, c) in keep {
            let _ = self.cache.store(server, c, self.now);
        }
    }
}

/// Reads a response header off what Go wrote: the bytes in `proxy_buffer_size`,
/// under `proxy_read_timeout` counted from the send.
fn read_header(s: &Served, read_timeout: Duration, buffer_size: usize) -> Header {
    let mut buf = Vec::new();
    for (i, t) in s.wire.iter().enumerate() {
        if t.at >= read_timeout {
            return Header::Failed(Failure::ReadTimeout, read_timeout);
        }
        buf.extend_from_slice(&t.bytes);
        let window = &buf[..buf.len().min(buffer_size)];
        // nginx's own parser, as the proxy reads it.
        match response::parse_head(window) {
            HeadParse::Invalid(excerpt) => return Header::Failed(Failure::InvalidHeaderLine(excerpt), t.at),
            HeadParse::Http09 => return Header::Read { head: UpstreamHead::http09(), at: t.at, leftover: buf.clone(), next: i + 1 },
            HeadParse::Done(head, n) => return Header::Read { head, at: t.at, leftover: buf[n..].to_vec(), next: i + 1 },
            HeadParse::Again if buf.len() >= buffer_size => return Header::Failed(Failure::TooBigHeader, t.at),
            HeadParse::Again => {}
        }
    }
    match s.end {
        End::Close { at, how } if at < read_timeout => {
            Header::Failed(if how == CloseKind::Rst { Failure::RecvFailed(104) } else { Failure::PrematureClose }, at)
        }
        _ => Header::Failed(Failure::ReadTimeout, read_timeout),
    }
}

/// Consumes what `buf` holds; `Ok(true)` once the body ended by its framing.
/// A malformed chunk counts as a cut body, as in the proxy.
fn drain(d: &mut BodyDecoder, buf: &mut Vec<u8>, bytes: &mut u64) -> Result<bool, BodyFailure> {
    loop {
        match d.step(buf).map_err(|_| BodyFailure::PrematureClose)? {
            Wire::Skip(n) => drop(buf.drain(..n)),
            Wire::Data(n) => {
                *bytes += n as u64;
                buf.drain(..n);
            }
            Wire::Done(_) => return Ok(true),
            Wire::NeedMore => return Ok(false),
        }
    }
}

/// Reads the body after the header: the bytes the client gets, how it
/// ended, and when. `proxy_read_timeout` bounds each wait for more bytes.
///
/// Body bytes that came in the header's read of a length- or
/// close-delimited body sit in nginx's preread buffer until the next read
/// from the upstream (the event pipe passes them on then, or at EOF); a
/// read timeout first loses them: a stream that sends its header and first
/// event together, then falls silent, gets none of it to the client
/// (observed on nginx 1.22.1, `sse-idle`), as the built-in proxy does.
fn read_body(wire: &[Transmit], end: End, next: usize, leftover: Vec<u8>, header_at: Duration, read_timeout: Duration, framing: BodyFraming) -> (u64, Result<(), BodyFailure>, Duration) {
    let mut d = BodyDecoder::new(framing);
    let (mut buf, mut bytes, mut last) = (leftover, 0u64, header_at);
    let mut pending = wire.iter().skip(next);
    // Preread bytes not yet passed on (until the first read after the header).
    let mut held: Option<u64> = None;
    loop {
        match drain(&mut d, &mut buf, &mut bytes) {
            Ok(true) => return (bytes, Ok(()), last),
            Err(e) => return (bytes, Err(e), last),
            Ok(false) => {}
        }
        if held.is_none() {
            held = Some(if framing == BodyFraming::Chunked { 0 } else { bytes });
        }
        let Some(t) = pending.next() else { break };
        if t.at - last >= read_timeout {
            return (bytes - held.unwrap_or(0), Err(BodyFailure::ReadTimeout), last + read_timeout);
        }
        buf.extend_from_slice(&t.bytes);
        last = t.at;
        held = Some(0);
    }
    let held = held.unwrap_or(0);
    // Nothing more arrives: the connection's end decides.
    match end {
        // A reset makes recv() fail, not return 0: even a body that the
        // close would have ended is cut by an error.
        End::Close { at, how: CloseKind::Rst } if at - last < read_timeout => (bytes, Err(BodyFailure::RecvFailed(104)), at),
        End::Close { at, .. } if at - last < read_timeout => match d.eof() {
            Ok(()) => (bytes, Ok(()), at),
            Err(_) => (bytes, Err(BodyFailure::PrematureClose), at),
        },
        _ => (bytes - held, Err(BodyFailure::ReadTimeout), last + read_timeout),
    }
}

fn outcome(bytes: u64, result: &Result<(), BodyFailure>) -> BodyOutcome {
    BodyOutcome { bytes: bytes..=bytes, truncated: result.is_err(), error: result.as_ref().err().map(|f| f.class()) }
}

/// Go closed with an RST at the instant of its last writes: Linux drops what
/// is still unsent when it resets, so any prefix of those writes may reach
/// nginx, whose next `recv()` then fails. The cut outcome: from the body
/// bytes written before that instant up to all of them (`delivered`).
/// `next` and `leftover` say where the head ended (as `read_header` found).
fn reset_race(s: &Served, next: usize, leftover: usize, framing: BodyFraming, delivered: u64) -> Option<BodyOutcome> {
    let End::Close { at: reset_at, how: CloseKind::Rst } = s.end else { return None };
    if !s.wire.iter().any(|w| w.at >= reset_at) {
        return None;
    }
    let stream: Vec<u8> = s.wire.iter().flat_map(|w| w.bytes.iter().copied()).collect();
    let head_len = s.wire[..next].iter().map(|w| w.bytes.len()).sum::<usize>() - leftover;
    let before: usize = s.wire.iter().filter(|w| w.at < reset_at).map(|w| w.bytes.len()).sum();
    let min = if before > head_len { labkit::wire::decode_all(framing, &stream[head_len..before], false).0 as u64 } else { 0 };
    Some(BodyOutcome { bytes: min.min(delivered)..=delivered, truncated: true, error: Some(Class::ResetBody) })
}

/// Predicts every request of a deterministic scenario, in order, at the
/// default run scale. `None` for natural-race scenarios (or a configuration
/// the proxy would refuse).
pub fn predict(s: &Scenario) -> Option<Vec<Prediction>> {
    predict_at(s, crate::scenario::DEFAULT_SCALE)
}

/// Like [`predict`], at `scale` (the same durations the runner uses).
pub fn predict_at(s: &Scenario, scale: f64) -> Option<Vec<Prediction>> {
    // A slow client's back-pressure depends on socket buffer sizes the
    // kernel chooses: not predicted.
    if s.natural() || s.requests.iter().any(|g| g.client_pause.is_some()) {
        return None;
    }
    let mut m = Model::new(s, scale)?;
    if s.workload.warmup_concurrent {
        // The runner's overlapping warm-ups sleep 20 ms so they overlap.
        m.concurrent(&Req { method: "GET", path: "/sleep?ms=20", body: 0, subrequest: false }, s.workload.warmup);
    } else {
        for _ in 0..s.workload.warmup {
            m.one(&Req { method: "GET", path: "/ok", body: 0, subrequest: false });
        }
    }
    m.act(s.workload.action);
    let gap = dur(&s.workload.gap, scale);
    let mut out = Vec::new();
    for g in &s.requests {
        let path = scale_path(&g.path, scale);
        for _ in 0..g.count {
            m.now += gap;
            out.push(m.one(&Req { method: &g.method, path: &path, body: g.body, subrequest: false }));
        }
    }
    Some(out)
}

/// Where an observation differs from its prediction, one line per field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct Mismatch(pub Vec<String>);

/// Whether an observation matches a prediction.
pub fn matches(p: &Prediction, o: &Observation) -> Result<(), Mismatch> {
    let main = matches_one(p, o);
    match &p.alt {
        Some(alt) if main.is_err() && matches_one(alt, o).is_ok() => Ok(()),
        _ => main,
    }
}

fn matches_one(p: &Prediction, o: &Observation) -> Result<(), Mismatch> {
    let mut bad = Vec::new();
    if o.status != Some(p.status) {
        bad.push(format!("status {:?} vs predicted {}", o.status, p.status));
    }
    if o.upstream_status != p.upstream_status {
        bad.push(format!("upstream_status {:?} vs predicted {:?}", o.upstream_status, p.upstream_status));
    }
    if let Some(ran) = o.handler_runs.filter(|ran| *ran != p.handler_runs) {
        bad.push(format!("handler runs {ran} vs predicted {}", p.handler_runs));
    }
    let errors_before = o.errors.len().min(p.errors.len());
    let errors_ok = o.errors.len() >= p.errors.len() && o.errors.iter().zip(&p.errors).all(|(e, alts)| alts.iter().any(|c| c.as_str() == e));
    let body_ok = |b: &BodyOutcome| {
        let rest: Vec<&str> = o.errors[errors_before..].iter().map(String::as_str).collect();
        rest == b.error.map(Class::as_str).into_iter().collect::<Vec<_>>() && b.bytes.contains(&o.body_bytes) && o.truncated == b.truncated
    };
    if !errors_ok || !p.body.iter().any(body_ok) {
        let seen = format!("errors {:?}, {} B{}", o.errors, o.body_bytes, if o.truncated { " truncated" } else { "" });
        let predicted: Vec<String> = p
            .body
            .iter()
            .map(|b| format!("errors {:?}+{:?}, {:?} B{}", p.errors, b.error, b.bytes, if b.truncated { " truncated" } else { "" }))
            .collect();
        bad.push(format!("{seen} vs predicted {}", predicted.join(" or ")));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Mismatch(bad))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::check;

    /// The catalogue's hand-written expectations agree with the model.
    #[test]
    fn oracle_predicts_every_catalogue_expectation() {
        for s in crate::catalogue::all().expect("catalogue") {
            let Some(preds) = predict(&s) else { continue };
            let mut preds = preds.into_iter();
            for (gi, g) in s.requests.iter().enumerate() {
                for _ in 0..g.count {
                    let p = preds.next().expect("one prediction per request");
                    let o = Observation {
                        group: gi,
                        method: g.method.clone(),
                        path: g.path.clone(),
                        status: Some(p.status),
                        body_bytes: *p.body[0].bytes.start(),
                        truncated: p.body[0].truncated,
                        latency_ms: p.latency.as_secs_f64() * 1000.0,
                        gap_ms: 0.0,
                        upstream_status: p.upstream_status.clone(),
                        upstream_response_time: vec![],
                        errors: p.errors.iter().map(|alts| alts[0].to_string()).chain(p.body[0].error.map(|c| c.to_string())).collect(),
                        error_lines: vec![],
                        handler_runs: Some(p.handler_runs),
                    };
                    let bad = check(&g.expect, &o, crate::scenario::DEFAULT_SCALE);
                    assert!(bad.is_empty(), "{} {} {}: oracle says {p:?}: {bad:?}", s.name, g.method, g.path);
                }
            }
        }
    }
}
