//! One client request's upstream attempts, as a sans-I/O state machine.
//!
//! nginx runs `ngx_http_upstream_connect` (pick a peer; a cached connection
//! or a new one), `ngx_http_upstream_send_request`,
//! `ngx_http_upstream_process_header` (and `ngx_http_upstream_test_next` for
//! a status listed in `proxy_next_upstream`), then passes the response on;
//! any failure goes through `ngx_http_upstream_next`, which frees the peer
//! and either connects again or finalizes the request. [`Attempts`] holds
//! that state: the tries left, the `tried` set, the current attempt's phase,
//! and what `$upstream_*` and error.log record. It performs no I/O: the
//! proxy executes each [`Step`] on sockets, the oracle on a model of the
//! upstream, and both report back with the same calls.

use crate::balancer::{PeerId, RoundRobin, Tried};
use crate::failure::{BodyFailure, Failure};
use crate::logs::{Level, UpstreamState};
use crate::retry::{self, Decision, FailedAttempt, Ft, RetryContext};
use std::fmt::Display;
use std::time::{Duration, Instant};

/// Where an attempt is (nginx's `log->action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    Connecting,
    SendingRequest,
    ReadingHeader,
    /// The header went to the client: a failure now truncates, never retries.
    ReadingBody,
}

impl Phase {
    pub fn action(self) -> &'static str {
        match self {
            Phase::Connecting => "connecting to upstream",
            Phase::SendingRequest => "sending request to upstream",
            Phase::ReadingHeader => "reading response header from upstream",
            Phase::ReadingBody => "reading upstream",
        }
    }
}

/// What the driver does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Get a connection to this peer: from the keepalive cache, else a new
    /// one (`ngx_event_connect_peer`); then call [`Attempts::connected`].
    Connect(PeerId),
    /// Write the request; then [`Attempts::sent`].
    Send,
    /// Read the response header; then [`Attempts::header`].
    ReadHeader,
    /// Pass the upstream's response on and read its body; then
    /// [`Attempts::finished`].
    Pass { status: u16 },
    /// Answer the client with nginx's own error page.
    Finalize { status: u16 },
}

/// An error.log line the request caused: `text` already ends with
/// `while <action>`; `upstream` names the peer (or the upstream block, for
/// "no live upstreams").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    pub text: String,
    pub upstream: String,
}

#[derive(Debug, Clone)]
struct Current {
    peer: PeerId,
    addr: String,
    phase: Phase,
    cached: bool,
    started: Instant,
    connect_time: Option<Duration>,
}

/// The upstream side of one client request (`ngx_http_upstream_t` and the
/// round robin's per-request data).
#[derive(Debug, Clone)]
pub struct Attempts {
    ctx: RetryContext,
    upstream: String,
    /// `u->peer.tries`.
    tries: u32,
    tried: Tried,
    /// `u->peer.start_time`, for `proxy_next_upstream_timeout`.
    start: Instant,
    current: Option<Current>,
    states: Vec<UpstreamState>,
    log: Vec<LogLine>,
}

impl Attempts {
    /// `live_peers` is `ngx_http_upstream_tries` of the upstream (non-down
    /// primaries and backups); `tries_cap` is `proxy_next_upstream_tries`.
    pub fn new(ctx: RetryContext, upstream: impl Into<String>, live_peers: u32, tries_cap: u32, now: Instant) -> Attempts {
        Attempts {
            ctx,
            upstream: upstream.into(),
            tries: retry::initial_tries(live_peers, tries_cap),
            tried: Tried::default(),
            start: now,
            current: None,
            states: Vec::new(),
            log: Vec::new(),
        }
    }

    /// Picks a peer (`peer.get`); with none left: "no live upstreams".
    pub fn start<A: Display>(&mut self, rr: &mut RoundRobin<A>, now: Instant) -> Step {
        match rr.get_peer(&mut self.tried, now) {
            Some(peer) => {
                let addr = rr.peer(peer).addr.to_string();
                self.current = Some(Current { peer, addr, phase: Phase::Connecting, cached: false, started: now, connect_time: None });
                Step::Connect(peer)
            }
            None => {
                let f = Failure::NoLive;
                self.log_failure(&f, self.upstream.clone());
                let a = FailedAttempt { ft: Ft::NOLIVE, cached: false, request_sent: false, peer_picked: false, client_gone: false };
                let (d, status) = retry::next_upstream(self.tries, a, &self.ctx, now - self.start);
                self.states.push(UpstreamState { status, response_time: Duration::ZERO, connect_time: None, addr: self.upstream.clone(), cached: false });
                Step::Finalize { status: give_up_status(d, status) }
            }
        }
    }

    /// A connection is there: from the keepalive cache (`cached`) or new.
    pub fn connected(&mut self, cached: bool, now: Instant) -> Step {
        if let Some(c) = self.current.as_mut() {
            c.cached = cached;
            c.connect_time = Some(now - c.started);
            c.phase = Phase::SendingRequest;
        }
        Step::Send
    }

    /// The whole request was written.
    pub fn sent(&mut self) -> Step {
        if let Some(c) = self.current.as_mut() {
            c.phase = Phase::ReadingHeader;
        }
        Step::ReadHeader
    }

    /// The attempt failed before the header went to the client: free the
    /// peer (`NGX_PEER_FAILED`, except for 403 and 404), record the attempt,
    /// and ask `ngx_http_upstream_next` whether to connect again.
    pub fn failed<A: Display>(&mut self, rr: &mut RoundRobin<A>, f: Failure, now: Instant) -> Step {
        let Some(cur) = self.current.take() else {
            // Nothing in flight: a driver bug, answered as nginx's fallback would be.
            return Step::Finalize { status: 502 };
        };
        self.log_failure(&f, cur.addr.clone());
        let peer_failed = !matches!(f, Failure::Status(403 | 404));
        if let Some(warn) = rr.free_peer(cur.peer, peer_failed, now) {
            self.log.push(LogLine { level: Level::Warn, text: format!("{warn} while {}", cur.phase.action()), upstream: cur.addr.clone() });
        }
        let a = FailedAttempt { ft: f.ft(), cached: cur.cached, request_sent: cur.phase >= Phase::SendingRequest, peer_picked: true, client_gone: false };
        let (d, status) = retry::next_upstream(self.tries, a, &self.ctx, now - self.start);
        self.states.push(UpstreamState { status, response_time: now - cur.started, connect_time: cur.connect_time, addr: cur.addr, cached: cur.cached });
        match d {
            Decision::Retry { tries } => {
                self.tries = tries;
                self.start(rr, now)
            }
            Decision::GiveUp { .. } => Step::Finalize { status: give_up_status(d, status) },
        }
    }

    /// The response header arrived: pass it on, or treat its status as a
    /// failure (`ngx_http_upstream_test_next`).
    pub fn header<A: Display>(&mut self, rr: &mut RoundRobin<A>, status: u16, now: Instant) -> Step {
        if retry::retry_on_status(status, self.tries, &self.ctx, now - self.start).is_some() {
            return self.failed(rr, Failure::Status(status), now);
        }
        if let Some(c) = self.current.as_mut() {
            c.phase = Phase::ReadingBody;
        }
        Step::Pass { status }
    }

    /// The passed response ended: whole, or cut by `body` (logged, the
    /// client's response is truncated). The peer is freed as not failed
    /// (`ngx_http_upstream_finalize_request` frees with state 0).
    pub fn finished<A: Display>(&mut self, rr: &mut RoundRobin<A>, status: u16, body: Result<(), BodyFailure>, now: Instant) {
        let Some(cur) = self.current.take() else { return };
        if let Err(bf) = body {
            self.log.push(LogLine { level: Level::Error, text: bf.log_text(), upstream: cur.addr.clone() });
        }
        rr.free_peer(cur.peer, false, now);
        self.states.push(UpstreamState { status, response_time: now - cur.started, connect_time: cur.connect_time, addr: cur.addr, cached: cur.cached });
    }

    fn log_failure(&mut self, f: &Failure, upstream: String) {
        if let Some((level, text)) = f.log_line(&upstream) {
            self.log.push(LogLine { level, text, upstream });
        }
    }

    /// The error.log lines since the last call.
    /// The client closed before the header came (`proxy_ignore_client_abort
    /// off`: 499): the peer is freed, not failed, and the attempt has no
    /// status (`$upstream_status` "-").
    pub fn client_closed<A: Display>(&mut self, rr: &mut RoundRobin<A>, now: Instant) {
        let Some(cur) = self.current.take() else { return };
        rr.free_peer(cur.peer, false, now);
        self.states.push(UpstreamState { status: 0, response_time: now - cur.started, connect_time: cur.connect_time, addr: cur.addr, cached: cur.cached });
    }

    pub fn take_log(&mut self) -> Vec<LogLine> {
        std::mem::take(&mut self.log)
    }

    /// `$upstream_status`, `$upstream_response_time`, ...: one entry per
    /// finished attempt.
    pub fn states(&self) -> &[UpstreamState] {
        &self.states
    }

    /// The connection could not even be set up (`ngx_event_connect_peer`
    /// returned NGX_ERROR, e.g. `proxy_bind`'s `bind()` failed): logged at
    /// crit, no retry, the request finalized with 500
    /// (`ngx_http_upstream_connect`); the peer freed as not failed, and the
    /// attempt's state has neither status nor peer (`$upstream_status` "-").
    pub fn local_error<A: Display>(&mut self, rr: &mut RoundRobin<A>, text: String, now: Instant) -> Step {
        let Some(cur) = self.current.take() else { return Step::Finalize { status: 500 } };
        self.log.push(LogLine { level: Level::Crit, text: format!("{text} while {}", cur.phase.action()), upstream: cur.addr.clone() });
        rr.free_peer(cur.peer, false, now);
        self.states.push(UpstreamState { status: 0, response_time: now - cur.started, connect_time: None, addr: String::new(), cached: false });
        Step::Finalize { status: 500 }
    }

    /// The states while the response header is being sent (`add_header`'s
    /// `$upstream_status`): the attempt in flight already has its status
    /// (`u->state->status`, set in `ngx_http_proxy_process_status_line`).
    pub fn states_at_header(&self, status: u16, now: Instant) -> Vec<UpstreamState> {
        let mut out = self.states.clone();
        if let Some(cur) = &self.current {
            out.push(UpstreamState { status, response_time: now - cur.started, connect_time: cur.connect_time, addr: cur.addr.clone(), cached: cur.cached });
        }
        out
    }

    pub fn into_states(self) -> Vec<UpstreamState> {
        self.states
    }

    /// `u->peer.tries` now.
    pub fn tries(&self) -> u32 {
        self.tries
    }

    /// The attempt in flight: its peer, whether its connection came from the
    /// cache, and its phase.
    pub fn current(&self) -> Option<(PeerId, bool, Phase)> {
        self.current.as_ref().map(|c| (c.peer, c.cached, c.phase))
    }
}

fn give_up_status(d: Decision, recorded: u16) -> u16 {
    match d {
        Decision::GiveUp { status } => status,
        Decision::Retry { .. } => recorded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balancer::Peer;

    fn rr(n: usize) -> RoundRobin<String> {
        let peers = (0..n).map(|i| Peer::new(format!("10.0.0.{i}:80"), 1, 1, Duration::from_secs(10), false)).collect();
        RoundRobin::new(peers, vec![])
    }

    fn ctx(method: &str, mask: Ft, rr: &RoundRobin<String>) -> RetryContext {
        RetryContext { method: method.into(), mask, request_buffering: true, next_upstream_timeout: None, single_peer: rr.single() }
    }

    fn statuses(a: &Attempts) -> Vec<u16> {
        a.states().iter().map(|s| s.status).collect()
    }

    /// Drives a request whose every attempt fails or answers as `outcomes`
    /// says (`Ok(status)` = that response header, `Err(f)` = that failure);
    /// `cached` says whether each connection came from the cache.
    fn drive(rr: &mut RoundRobin<String>, mut a: Attempts, outcomes: &[(bool, Result<u16, Failure>)]) -> (Step, Attempts) {
        let now = Instant::now();
        let mut step = a.start(rr, now);
        let mut it = outcomes.iter();
        loop {
            step = match step {
                Step::Connect(_) => {
                    let Some((cached, outcome)) = it.next() else { panic!("more attempts than outcomes") };
                    a.connected(*cached, now);
                    a.sent();
                    match outcome {
                        Ok(status) => a.header(rr, *status, now),
                        Err(f) => a.failed(rr, f.clone(), now),
                    }
                }
                Step::Pass { status } => {
                    a.finished(rr, status, Ok(()), now);
                    return (step, a);
                }
                Step::Finalize { .. } => return (step, a),
                Step::Send | Step::ReadHeader => unreachable!("drive reports these inline"),
            };
        }
    }

    /// A local error (proxy_bind's bind() failing) is not retried, even
    /// with another server: 500, a [crit] line, no status in the state.
    #[test]
    fn a_local_error_finalizes_with_500_without_retry() {
        let mut rr = rr(2);
        let now = Instant::now();
        let mut a = Attempts::new(ctx("GET", Ft::DEFAULT_MASK, &rr), "u", rr.tries(), 0, now);
        let Step::Connect(_) = a.start(&mut rr, now) else { panic!() };
        assert_eq!(a.local_error(&mut rr, "bind(192.0.2.1) failed (99: Cannot assign requested address)".into(), now), Step::Finalize { status: 500 });
        assert_eq!(statuses(&a), vec![0]);
        let log: Vec<_> = a.take_log().into_iter().map(|l| (l.level, l.text)).collect();
        assert_eq!(log, vec![(Level::Crit, "bind(192.0.2.1) failed (99: Cannot assign requested address) while connecting to upstream".to_string())]);
    }

    #[test]
    fn http_500_in_the_mask_is_retried_on_the_other_server_then_passed() {
        let mut rr = rr(2);
        let mask = Ft(Ft::DEFAULT_MASK.0 | Ft::HTTP_500.0);
        let a = Attempts::new(ctx("GET", mask, &rr), "u", rr.tries(), 0, Instant::now());
        let (step, mut a) = drive(&mut rr, a, &[(false, Ok(500)), (false, Ok(500))]);
        assert_eq!(step, Step::Pass { status: 500 }, "the last try's 500 goes to the client");
        assert_eq!(statuses(&a), vec![500, 500]);
        // A status retry logs no [error]; the first server is freed as failed.
        let log: Vec<_> = a.take_log().into_iter().map(|l| (l.level, l.text)).collect();
        assert_eq!(log, vec![(Level::Warn, "upstream server temporarily disabled while reading response header from upstream".to_string())]);
    }

    #[test]
    fn each_stale_cached_connection_gives_the_try_back() {
        let mut rr = rr(1);
        let a = Attempts::new(ctx("GET", Ft::DEFAULT_MASK, &rr), "u", rr.tries(), 1, Instant::now());
        let (step, mut a) = drive(&mut rr, a, &[(true, Err(Failure::PrematureClose)), (true, Err(Failure::PrematureClose)), (false, Err(Failure::PrematureClose))]);
        assert_eq!(step, Step::Finalize { status: 502 });
        assert_eq!(statuses(&a), vec![502, 502, 502]);
        let log = a.take_log();
        assert_eq!(log.len(), 3);
        assert!(log.iter().all(|l| l.text == "upstream prematurely closed connection while reading response header from upstream"));
    }

    #[test]
    fn a_post_on_a_stale_cached_connection_is_not_retried() {
        let mut rr = rr(1);
        let a = Attempts::new(ctx("POST", Ft::DEFAULT_MASK, &rr), "u", rr.tries(), 0, Instant::now());
        let (step, a) = drive(&mut rr, a, &[(true, Err(Failure::PrematureClose))]);
        assert_eq!((step, statuses(&a)), (Step::Finalize { status: 502 }, vec![502]));
    }

    #[test]
    fn a_refused_connect_is_retried_even_for_post_and_disables_the_server() {
        let mut rr = rr(2);
        let now = Instant::now();
        let mut a = Attempts::new(ctx("POST", Ft::DEFAULT_MASK, &rr), "u", rr.tries(), 0, now);
        let Step::Connect(first) = a.start(&mut rr, now) else { panic!() };
        // Refused before anything was sent: request_sent stays false.
        let Step::Connect(second) = a.failed(&mut rr, Failure::ConnectRefused, now) else { panic!("retried") };
        assert_ne!(first, second);
        let log = a.take_log();
        assert_eq!(log[0].text, "connect() failed (111: Connection refused) while connecting to upstream");
        assert_eq!((log[1].level, log[1].text.as_str()), (Level::Warn, "upstream server temporarily disabled while connecting to upstream"));
        assert_eq!(a.connected(false, now), Step::Send);
        assert_eq!(a.sent(), Step::ReadHeader);
        assert_eq!(a.header(&mut rr, 200, now), Step::Pass { status: 200 });
        a.finished(&mut rr, 200, Ok(()), now);
        assert_eq!(statuses(&a), vec![502, 200]);
    }

    #[test]
    fn no_live_upstreams_finalizes_with_502_naming_the_upstream() {
        let mut rr = RoundRobin::new(vec![Peer::new("10.0.0.1:80".to_string(), 1, 1, Duration::from_secs(10), true)], vec![]);
        let now = Instant::now();
        let mut a = Attempts::new(ctx("GET", Ft::DEFAULT_MASK, &rr), "go_upstream", rr.tries(), 0, now);
        assert_eq!(a.start(&mut rr, now), Step::Finalize { status: 502 });
        let log = a.take_log();
        assert_eq!((log[0].text.as_str(), log[0].upstream.as_str()), ("no live upstreams while connecting to upstream", "go_upstream"));
        assert_eq!(a.states()[0].addr, "go_upstream");
    }

    #[test]
    fn a_cut_body_is_logged_and_recorded_with_the_passed_status() {
        let mut rr = rr(1);
        let now = Instant::now();
        let mut a = Attempts::new(ctx("GET", Ft::DEFAULT_MASK, &rr), "u", rr.tries(), 0, now);
        a.start(&mut rr, now);
        a.connected(false, now);
        a.sent();
        assert_eq!(a.current().map(|c| c.2), Some(Phase::ReadingHeader));
        assert_eq!(a.header(&mut rr, 200, now), Step::Pass { status: 200 });
        a.finished(&mut rr, 200, Err(BodyFailure::PrematureClose), now);
        assert_eq!(a.take_log()[0].text, "upstream prematurely closed connection while reading upstream");
        assert_eq!(statuses(&a), vec![200]);
    }

    #[test]
    fn timeouts_finalize_with_504() {
        let mut rr = rr(1);
        let a = Attempts::new(ctx("GET", Ft::DEFAULT_MASK, &rr), "u", rr.tries(), 0, Instant::now());
        let (step, a) = drive(&mut rr, a, &[(true, Err(Failure::ReadTimeout))]);
        assert_eq!((step, statuses(&a)), (Step::Finalize { status: 504 }, vec![504]), "a timeout on a cached connection gets no extra try");
    }
}
