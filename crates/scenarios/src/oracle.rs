//! The oracle: predicts each request's outcome from a scenario's
//! configuration and workload, without running anything.
//!
//! It is a small abstract model of the three parties (nginx's keepalive
//! cache and balancer, Go's connection fate, the handler) that asks the same
//! rule functions the emulators call: `go_model::rules` for Go's idle
//! limit and keep-alive decisions, `nginx_model::retry::next_upstream` for the
//! retry decision, `nginx_model::balancer::RoundRobin` for peer choice, and
//! `nginx_model::failure::Failure` for the log classes. Natural-race scenarios
//! depend on timing and are not predicted.

use crate::setup::{go_config, nginx_config};
use crate::scenario::{parse_duration, Action, Scenario};
use nginx_model::balancer::{Peer, RoundRobin, Tried};
use nginx_model::failure::Failure;
use nginx_model::retry::{self, Decision, FailedAttempt, Ft, RetryContext};
use std::time::{Duration, Instant};
use go_model::handlers::Handler;
use go_model::rules::{self, RequestFacts};
use go_model::{IdleRace, ServerConfig};

/// The predicted outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    pub status: u16,
    pub upstream_status: Vec<u16>,
    /// One entry per error line: the classes it may have (RST/FIN races
    /// allow more than one).
    pub errors: Vec<Vec<&'static str>>,
    pub handler_runs: u64,
    pub body_bytes: Option<u64>,
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cached {
    /// Fine to reuse.
    Live,
    /// Go closes it exactly as the request arrives (a lab race knob).
    Racy(IdleRace),
}

struct Model {
    go: ServerConfig,
    /// Idle cached connections per server, most recent last.
    cache: Vec<Vec<Cached>>,
    listening: Vec<bool>,
    backlog_full: bool,
    rr: RoundRobin<std::net::SocketAddr>,
    /// R23: nginx can reuse upstream connections at all.
    reuse: bool,
    /// The upstream request line says HTTP/1.1, and whether it carries `Connection: close`.
    http11: bool,
    sends_close: bool,
    keepalive_timeout: Duration,
    read_timeout: Duration,
    ctx_mask: Ft,
    tries_cap: u32,
    next_upstream_timeout: Option<Duration>,
}

enum AttemptResult {
    Fail(Failure, bool),
    Ok { status: u16, keep_alive: bool, body: Option<u64>, truncated: bool, body_error: Option<&'static str> },
}

impl Model {
    fn new(s: &Scenario) -> Model {
        let go = go_config(s, 1.0);
        let servers = s.go.servers.max(1);
        let addrs: Vec<std::net::SocketAddr> = (0..servers).map(|i| ([127, 0, 0, 1], 1000 + i as u16).into()).collect();
        let cfg = nginx_config(s, &addrs, ([127, 0, 0, 1], 1).into(), 1.0);
        let u = &cfg.upstreams[0];
        let loc = &cfg.servers[0].locations[0].proxy;
        // The built-in proxy and real nginx 1.22 both run the legacy profile.
        let profile = nginx_model::Profile::Legacy;
        let http11 = nginx_model::profile::http11(profile, loc.http_version.as_deref());
        let headers = nginx_model::profile::request_headers(profile, loc.set_header.as_deref().unwrap_or(&[]));
        let capacity = nginx_model::profile::keepalive_capacity(profile, u.keepalive, true);
        let peers = u.servers.iter().map(|srv| Peer::new(srv.addr.parse().unwrap(), srv.weight, srv.max_fails, srv.fail_timeout, srv.down)).collect();
        Model {
            cache: vec![Vec::new(); servers],
            listening: vec![true; servers],
            backlog_full: false,
            rr: RoundRobin::new(peers, vec![]),
            reuse: nginx_model::profile::upstream_reuse_possible(capacity, http11, &headers),
            http11,
            sends_close: nginx_model::profile::sends_connection_close(&headers),
            keepalive_timeout: u.keepalive_timeout.unwrap_or(Duration::from_secs(60)),
            read_timeout: loc.read_timeout.unwrap_or(Duration::from_secs(60)),
            ctx_mask: loc.next_upstream.unwrap_or(Ft::DEFAULT_MASK),
            tries_cap: loc.next_upstream_tries.unwrap_or(0),
            next_upstream_timeout: loc.next_upstream_timeout,
            go,
        }
    }

    /// Time passes with every cached connection idle for `gap`.
    fn age(&mut self, gap: Duration) {
        let idle_limit = rules::effective_idle_limit(&self.go);
        let knob = self.go.idle_race;
        let keepalive_timeout = self.keepalive_timeout;
        for conns in &mut self.cache {
            conns.retain_mut(|c| {
                if gap >= keepalive_timeout {
                    return false; // nginx closed it first (R22)
                }
                match (idle_limit, knob) {
                    (Some(limit), Some(race)) if gap >= limit => {
                        *c = Cached::Racy(race);
                        true
                    }
                    // Go closed it; nginx's close handler dropped it silently.
                    (Some(limit), None) if gap >= limit => false,
                    _ => true,
                }
            });
        }
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::None => {}
            Action::Crash => {
                self.listening[0] = false;
                self.cache[0].clear();
            }
            Action::RestartHandoff | Action::KeepalivesOffThenShutdown => {
                self.cache[0].clear();
                self.listening[0] = action == Action::RestartHandoff;
            }
            Action::Shutdown => {
                self.listening[0] = false;
                match self.go.shutdown_race {
                    Some(race) => self.cache[0].iter_mut().for_each(|c| *c = Cached::Racy(race)),
                    None => self.cache[0].clear(),
                }
            }
            Action::FillBacklog => self.backlog_full = true,
        }
    }

    /// What one attempt on `server` does.
    fn attempt(&mut self, server: usize, handler: &Handler, body: usize, cached: Option<Cached>, runs: &mut u64) -> AttemptResult {
        match cached {
            Some(Cached::Racy(IdleRace::Fin)) => return AttemptResult::Fail(Failure::PrematureClose, true),
            Some(Cached::Racy(IdleRace::Rst)) => return AttemptResult::Fail(Failure::RecvFailed(104), true),
            Some(Cached::Live) => {}
            None => {
                if !self.listening[server] {
                    return AttemptResult::Fail(Failure::ConnectRefused, false);
                }
                if self.backlog_full {
                    return AttemptResult::Fail(Failure::ConnectTimeout, false);
                }
            }
        }
        *runs += 1;
        let req = RequestFacts { http11: self.http11, wants_close: self.http11 && self.sends_close, wants_10_keep_alive: false, head: false };
        let keep_alive_after = |status: u16, body_left: u64| {
            let (close, _) = rules::close_before_body_check(&req, None, rules::body_allowed_for_status(status), self.go.keep_alives);
            let too_big = rules::body_at_header_write(body_left, close) == rules::BodyAtHeaderWrite::TooBig;
            self.reuse && !close && !too_big
        };
        let body = body as u64;
        // Body bytes beyond Go's 4 KiB read buffer that body.Close() leaves
        // unread stay in the kernel: the close is an RST.
        let unread_at_close = body as usize > rules::CONN_BUFFER
            && !matches!(rules::body_on_close(body, req.closing()), rules::BodyOnClose::Drain(_));
        let close_failure = if unread_at_close { Failure::RecvFailed(104) } else { Failure::PrematureClose };
        let ms = Duration::from_millis;
        let wt = rules::write_timeout(&self.go);
        let ok = |status, keep_alive| AttemptResult::Ok { status, keep_alive, body: None, truncated: false, body_error: None };
        match *handler {
            Handler::Panic | Handler::Abort => AttemptResult::Fail(close_failure, true),
            Handler::Sleep { ms: t } | Handler::TimeoutHandler { ms: t, .. } => {
                let t = match *handler {
                    Handler::TimeoutHandler { limit, .. } => t.min(limit),
                    _ => t,
                };
                if self.read_timeout <= ms(t) {
                    AttemptResult::Fail(Failure::ReadTimeout, true)
                } else if wt.is_some_and(|w| ms(t) >= w) {
                    // R28: nothing reached the socket before the deadline.
                    AttemptResult::Fail(Failure::PrematureClose, true)
                } else {
                    let status = if matches!(handler, Handler::TimeoutHandler { ms, limit } if ms > limit) { 503 } else { 200 };
                    ok(status, keep_alive_after(status, body))
                }
            }
            Handler::Partial { bytes, ms: t, .. } => {
                if wt.is_some_and(|w| ms(t) >= w) {
                    // Header and the first half went out; the second write fails.
                    // Go's framing decides whether the cut is visible: chunked
                    // (HTTP/1.1) is delimited, HTTP/1.0 without a length is not.
                    let (close, conn) = rules::close_before_body_check(&req, None, true, self.go.keep_alives);
                    let f = rules::response_framing(&req, 200, None, None, close, conn);
                    let delimited = f.chunked || f.content_length.is_some();
                    AttemptResult::Ok {
                        status: 200,
                        keep_alive: false,
                        body: Some(bytes as u64),
                        truncated: delimited,
                        body_error: delimited.then_some("premature-close-body"),
                    }
                } else {
                    AttemptResult::Ok { status: 200, keep_alive: keep_alive_after(200, body), body: Some(2 * bytes as u64), truncated: false, body_error: None }
                }
            }
            Handler::RecoverPanic => ok(500, keep_alive_after(500, body)),
            Handler::NotFound => ok(404, keep_alive_after(404, body)),
            _ => ok(200, keep_alive_after(200, body)),
        }
    }

    /// One request through nginx's attempt loop.
    fn request(&mut self, method: &str, path: &str, body: usize) -> Prediction {
        let handler = Handler::from_target(path).unwrap_or(Handler::NotFound);
        let ctx = RetryContext {
            method: method.into(),
            mask: self.ctx_mask,
            request_buffering: true,
            next_upstream_timeout: self.next_upstream_timeout,
            single_peer: self.rr.single(),
        };
        let mut tries = retry::initial_tries(self.rr.tries(), self.tries_cap);
        let mut tried = Tried::default();
        let mut p = Prediction { status: 0, upstream_status: vec![], errors: vec![], handler_runs: 0, body_bytes: None, truncated: false };
        let now = Instant::now();
        loop {
            let Some(pid) = self.rr.get_peer(&mut tried, now) else {
                p.errors.push(vec![Failure::NoLive.class().as_str()]);
                p.upstream_status.push(502);
                p.status = 502;
                return p;
            };
            let server = pid.index;
            let cached = self.cache[server].pop();
            match self.attempt(server, &handler, body, cached, &mut p.handler_runs) {
                AttemptResult::Ok { status, keep_alive, body, truncated, body_error } => {
                    self.rr.free_peer(pid, false, now);
                    p.upstream_status.push(status);
                    p.status = status;
                    p.body_bytes = body;
                    p.truncated = truncated;
                    if let Some(e) = body_error {
                        p.errors.push(vec![e]);
                    }
                    if keep_alive {
                        self.cache[server].push(Cached::Live);
                    }
                    return p;
                }
                AttemptResult::Fail(f, request_sent) => {
                    let classes = match f {
                        // Whether nginx is still writing when the RST comes decides the line.
                        Failure::RecvFailed(_) if body > 0 => vec!["reset", "send-failed"],
                        _ => vec![f.class().as_str()],
                    };
                    p.errors.push(classes);
                    self.rr.free_peer(pid, true, now);
                    let a = FailedAttempt { ft: f.ft(), cached: cached.is_some(), request_sent, peer_picked: true, client_gone: false };
                    let (d, status) = retry::next_upstream(tries, a, &ctx, Duration::ZERO);
                    p.upstream_status.push(status);
                    match d {
                        Decision::Retry { tries: t } => tries = t,
                        Decision::GiveUp { status } => {
                            p.status = status;
                            return p;
                        }
                    }
                }
            }
        }
    }
}

/// Predicts every request of a deterministic scenario, in order. `None` for
/// natural-race scenarios.
pub fn predict(s: &Scenario) -> Option<Vec<Prediction>> {
    if s.natural() {
        return None;
    }
    let mut m = Model::new(s);
    if s.workload.warmup_concurrent {
        // Overlapping warm-ups: each opens its own connection, and each is
        // cached when the responses come back.
        let mut tried = Tried::default();
        let now = Instant::now();
        for _ in 0..s.workload.warmup {
            let pid = m.rr.get_peer(&mut tried, now).map(|p| p.index).unwrap_or(0);
            if m.reuse && m.go.keep_alives {
                m.cache[pid].push(Cached::Live);
            }
            if m.rr.single() {
                tried = Tried::default();
            }
        }
    } else {
        for _ in 0..s.workload.warmup {
            m.request("GET", "/ok", 0);
        }
    }
    m.act(s.workload.action);
    let gap = s.workload.gap.as_deref().and_then(|g| parse_duration(g).ok()).unwrap_or_default();
    let mut out = Vec::new();
    for g in &s.requests {
        for _ in 0..g.count {
            m.age(gap);
            out.push(m.request(&g.method, &g.path, g.body));
        }
    }
    Some(out)
}

/// Whether an observation matches a prediction (the fields both carry).
pub fn matches(p: &Prediction, o: &crate::runner::Observation) -> Result<(), String> {
    let mut bad = Vec::new();
    if o.status != Some(p.status) {
        bad.push(format!("status {:?} vs predicted {}", o.status, p.status));
    }
    if o.upstream_status != p.upstream_status {
        bad.push(format!("upstream_status {:?} vs predicted {:?}", o.upstream_status, p.upstream_status));
    }
    if o.handler_runs != p.handler_runs {
        bad.push(format!("handler runs {} vs predicted {}", o.handler_runs, p.handler_runs));
    }
    let errors_ok = o.errors.len() == p.errors.len() && o.errors.iter().zip(&p.errors).all(|(e, alts)| alts.contains(&e.as_str()));
    if !errors_ok {
        bad.push(format!("errors {:?} vs predicted {:?}", o.errors, p.errors));
    }
    if let Some(b) = p.body_bytes {
        if o.body_bytes != b {
            bad.push(format!("body {} B vs predicted {b} B", o.body_bytes));
        }
    }
    if o.truncated != p.truncated {
        bad.push(format!("truncated {} vs predicted {}", o.truncated, p.truncated));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(bad.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{check, Observation};

    /// The catalogue's hand-written expectations agree with the model.
    #[test]
    fn oracle_predicts_every_catalogue_expectation() {
        for s in crate::catalogue::all().unwrap() {
            let Some(preds) = predict(&s) else { continue };
            let mut i = 0;
            for (gi, g) in s.requests.iter().enumerate() {
                for _ in 0..g.count {
                    let p = &preds[i];
                    i += 1;
                    let o = Observation {
                        group: gi,
                        method: g.method.clone(),
                        path: g.path.clone(),
                        status: Some(p.status),
                        body_bytes: p.body_bytes.unwrap_or(0),
                        truncated: p.truncated,
                        latency_ms: f64::MAX,
                        gap_ms: 0.0,
                        upstream_status: p.upstream_status.clone(),
                        upstream_response_time: vec![],
                        errors: p.errors.iter().map(|alts| alts[0].to_string()).collect(),
                        error_lines: vec![],
                        handler_runs: p.handler_runs,
                    };
                    let mut e = g.expect.clone();
                    if e.body_bytes.is_some() && p.body_bytes.is_none() {
                        e.body_bytes = None;
                    }
                    let bad = check(&e, &o, 1.0);
                    assert!(bad.is_empty(), "{} {} {}: oracle says {p:?}: {bad:?}", s.name, g.method, g.path);
                }
            }
        }
    }
}
