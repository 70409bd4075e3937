//! Go 1.19 `net/http` server rules as pure functions.
//!
//! Every question whose answer decides a 502 is answered here, once: when a
//! deadline is armed and for how long (`(*conn).readRequest`), what the idle
//! wait is (`(*conn).serve`), how a response is framed
//! (`chunkWriter.writeHeader`), what happens to an unread request body
//! (`chunkWriter.writeHeader`, `(*body).Close`), whether the connection is
//! reused (`(*response).shouldReuseConnection`) and whether a close is a FIN
//! or an RST. upstream-sim's connection loop, [`crate::response`],
//! [`crate::serve`] and the scenario oracle all ask these functions.

use crate::config::{GoVersion, IdleRace, ServerConfig};
use std::time::Duration;

/// `maxPostHandlerReadBytes`: how much unread request body Go will discard to
/// keep a connection reusable.
pub const MAX_POST_HANDLER_READ_BYTES: u64 = 256 << 10;
/// `bufferBeforeChunkingSize`: the handler-side response buffer.
pub const RESPONSE_BUFFER: usize = 2048;
/// The `bufio.Writer` and `bufio.Reader` size of a `conn`.
pub const CONN_BUFFER: usize = 4096;
/// `rstAvoidanceDelay` in `closeWriteAndWait` (a const in Go 1.19).
pub const RST_AVOIDANCE_DELAY: Duration = Duration::from_millis(500);

fn nonzero(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

/// The header deadline, from the start of `(*conn).readRequest`:
/// ReadHeaderTimeout, else ReadTimeout (`(*Server).readHeaderTimeout`).
pub fn header_timeout(cfg: &ServerConfig) -> Option<Duration> {
    nonzero(cfg.read_header_timeout).or(nonzero(cfg.read_timeout))
}

/// The whole-request (body) deadline, from the same start: `readRequest`
/// switches the read deadline to it once the header is parsed.
pub fn request_timeout(cfg: &ServerConfig) -> Option<Duration> {
    nonzero(cfg.read_timeout)
}

/// The write deadline, armed right after the request header was read
/// (`defer c.rwc.SetWriteDeadline(...)` in `readRequest`): it covers the
/// body, the handler and the response, and never interrupts a handler.
pub fn write_timeout(cfg: &ServerConfig) -> Option<Duration> {
    nonzero(cfg.write_timeout)
}

/// Go's `(*Server).idleTimeout()`: IdleTimeout, else ReadTimeout.
pub fn idle_timeout(cfg: &ServerConfig) -> Option<Duration> {
    nonzero(cfg.idle_timeout).or(nonzero(cfg.read_timeout))
}

/// How the keep-alive loop in `(*conn).serve` waits for the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleWait {
    /// `bufr.Peek(4)` under a read deadline (`None`: no deadline at all).
    Peek(Option<Duration>),
    /// Go ≤ 1.19 with IdleTimeout = ReadTimeout = 0: no Peek; `readRequest`
    /// starts at once and arms the header deadline (golang/go#54784).
    StraightToReadRequest,
}

pub fn idle_wait(cfg: &ServerConfig) -> IdleWait {
    match (cfg.go_version, idle_timeout(cfg)) {
        (_, Some(d)) => IdleWait::Peek(Some(d)),
        (GoVersion::Go119, None) => IdleWait::StraightToReadRequest,
        (GoVersion::Go120, None) => IdleWait::Peek(None),
    }
}

/// How long after a response an idle keep-alive connection is closed by the
/// server, if ever. This is the number to compare with nginx's upstream
/// `keepalive_timeout`.
pub fn effective_idle_limit(cfg: &ServerConfig) -> Option<Duration> {
    match idle_wait(cfg) {
        IdleWait::Peek(d) => d,
        IdleWait::StraightToReadRequest => header_timeout(cfg),
    }
}

/// When an idle keep-alive connection closes if no request comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleClose {
    /// No deadline: Go waits for the next request forever.
    Never,
    /// Go closes it once it has been idle this long.
    After(Duration),
    /// Lab knob ([`IdleRace`]): the deadline is held until the next request
    /// arrives; if by then the connection was idle this long, Go closes it
    /// at that very moment (FIN or RST as the knob says). The deadline is
    /// the `Peek`'s, or in Go ≤ 1.19 with no idle limit the header deadline
    /// `readRequest` armed when the connection went idle (a read timeout
    /// with nothing read: `(*conn).serve` returns quietly and closes).
    AtNextRequest(Duration, IdleRace),
}

/// The idle close of a server configured by `cfg`.
pub fn idle_close(cfg: &ServerConfig) -> IdleClose {
    match (idle_wait(cfg), cfg.idle_race) {
        (IdleWait::Peek(Some(limit)), Some(race)) => IdleClose::AtNextRequest(limit, race),
        (IdleWait::Peek(Some(limit)), None) => IdleClose::After(limit),
        (IdleWait::Peek(None), _) => IdleClose::Never,
        (IdleWait::StraightToReadRequest, race) => match (header_timeout(cfg), race) {
            (None, _) => IdleClose::Never,
            (Some(limit), Some(race)) => IdleClose::AtNextRequest(limit, race),
            (Some(limit), None) => IdleClose::After(limit),
        },
    }
}

/// The header-size limit Go enforces: MaxHeaderBytes plus 4096 bytes of slack
/// (`initialReadLimitSize`).
pub fn header_limit(cfg: &ServerConfig) -> usize {
    cfg.max_header_bytes + 4096
}

/// How the kernel ends a connection: a plain `close()` (`(*conn).close`,
/// used for idle expiry, read and write errors, panics, `Connection: close`
/// replies and Shutdown's sweep) or `closeWriteAndWait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CloseKind {
    /// Orderly close: the receive buffer was empty.
    Fin,
    /// Unread bytes were in the receive buffer: Linux answers with a reset.
    Rst,
    /// `closeWriteAndWait`: FIN first (half close), the full close 500 ms later.
    FinThenWait,
}

pub fn close_kind(unread_bytes_in_kernel: bool) -> CloseKind {
    if unread_bytes_in_kernel {
        CloseKind::Rst
    } else {
        CloseKind::Fin
    }
}

/// Facts about a request that decide the response framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestFacts {
    /// Request line said HTTP/1.1 (or later).
    pub http11: bool,
    /// `Connection: close` on the request.
    pub wants_close: bool,
    /// HTTP/1.0 with `Connection: keep-alive`.
    pub wants_10_keep_alive: bool,
    pub head: bool,
    /// `Expect: 100-continue` with a body the handler never read: the
    /// `expectContinueReader` never saw EOF, so `chunkWriter.writeHeader`
    /// closes after the reply (golang/go#11549).
    pub unread_expect_continue: bool,
}

impl RequestFacts {
    /// The facts of a parsed request head, as `(*conn).readRequest` records
    /// them (`wantsClose`, `wantsHttp10KeepAlive`).
    pub fn from_head(h: &labkit::wire::RequestHead) -> RequestFacts {
        RequestFacts {
            http11: h.http11,
            wants_close: h.http11 && h.connection_has("close"),
            wants_10_keep_alive: !h.http11 && h.connection_has("keep-alive"),
            head: h.method == "HEAD",
            unread_expect_continue: false,
        }
    }

    /// The facts of a request read by [`crate::request::read_request`]
    /// (`wantsClose`, `wantsHttp10KeepAlive`, the `expectContinueReader`).
    pub fn from_request(r: &crate::request::Request) -> RequestFacts {
        RequestFacts {
            http11: r.at_least_11(),
            wants_close: r.wants_close(),
            wants_10_keep_alive: r.wants_10_keep_alive(),
            head: r.method == "HEAD",
            unread_expect_continue: r.expectation() == crate::request::Expectation::Continue,
        }
    }

    /// Go's `shouldClose` for the request (`t.Close` in `readTransfer`):
    /// HTTP/1.0 without keep-alive, or `Connection: close`.
    pub fn closing(&self) -> bool {
        (!self.http11 && !self.wants_10_keep_alive) || self.wants_close
    }
}

/// Step one of `chunkWriter.writeHeader`: whether the connection will close
/// after this reply before the unread body is even looked at, and any
/// `Connection` header chosen so far.
pub fn close_before_body_check(
    req: &RequestFacts,
    handler_content_length: Option<u64>,
    body_allowed: bool,
    keep_alives_enabled: bool,
) -> (bool, Option<&'static str>) {
    let mut close = false;
    let mut connection = None;
    if req.wants_10_keep_alive && (req.head || handler_content_length.is_some() || !body_allowed) {
        connection = Some("keep-alive");
    } else if !req.http11 || req.wants_close {
        close = true;
    }
    if !keep_alives_enabled {
        close = true;
    }
    (close, connection)
}

/// What `chunkWriter.writeHeader` does with an unread request body: Go
/// reads it away before answering, up to a limit, so the connection stays
/// reusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyAtHeaderWrite {
    /// Nothing unread, or the connection closes anyway.
    Nothing,
    /// Read and discard up to 256 KiB + 1 byte; reaching EOF keeps the
    /// connection reusable.
    Discard,
    /// Too much left: `Connection: close`, and `closeWriteAndWait` afterwards.
    TooBig,
}

pub fn body_at_header_write(remaining: u64, closing_already: bool) -> BodyAtHeaderWrite {
    if remaining == 0 || closing_already {
        BodyAtHeaderWrite::Nothing
    } else if remaining >= MAX_POST_HANDLER_READ_BYTES {
        BodyAtHeaderWrite::TooBig
    } else {
        BodyAtHeaderWrite::Discard
    }
}

/// [`body_at_header_write`] for a chunked body, whose unread size is
/// unknown (`unreadDataSizeLocked` returns -1): Go always tries to discard
/// it, unless it has already been read to its end.
pub fn chunked_body_at_header_write(seen_end: bool, closing_already: bool) -> BodyAtHeaderWrite {
    if seen_end || closing_already {
        BodyAtHeaderWrite::Nothing
    } else {
        BodyAtHeaderWrite::Discard
    }
}

/// [`body_on_close`] for a chunked body: it has a header (`b.hdr`), so
/// even a closing request drains up to the limit (`doEarlyClose`, no
/// `io.LimitedReader` to give up on).
pub fn chunked_body_on_close(seen_end: bool) -> BodyOnClose {
    BodyOnClose::Drain(if seen_end { 0 } else { MAX_POST_HANDLER_READ_BYTES })
}

/// What `(*body).Close` does with an unread request body (from
/// `(*response).finishRequest`, and from the deferred recover in
/// `(*conn).serve` after a panic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyOnClose {
    /// The connection closes after this reply anyway (HTTP/1.0 without
    /// keep-alive, or `Connection: close`): nothing is read and no early
    /// close is flagged, so the close is a plain `close()`: an RST if body
    /// bytes are still unread. This case comes first in Go's switch.
    LeaveForClose,
    /// More than 256 KiB left: not read; `earlyClose` → `closeWriteAndWait`.
    EarlyClose,
    /// Read and discard the rest (at most 256 KiB): `io.CopyN(io.Discard,
    /// body, maxPostHandlerReadBytes)`. Reading exactly the limit still
    /// flags an early close ([`drain_closes_early`]).
    Drain(u64),
}

pub fn body_on_close(remaining: u64, request_closing: bool) -> BodyOnClose {
    if remaining == 0 {
        BodyOnClose::Drain(0)
    } else if request_closing {
        BodyOnClose::LeaveForClose
    } else if remaining > MAX_POST_HANDLER_READ_BYTES {
        BodyOnClose::EarlyClose
    } else {
        BodyOnClose::Drain(remaining)
    }
}

/// `(*body).Close` flags an early close when its drain read the whole limit
/// (`if n == maxPostHandlerReadBytes { b.earlyClose = true }`), even if that
/// was exactly the end of the body.
pub fn drain_closes_early(drained: u64) -> bool {
    drained == MAX_POST_HANDLER_READ_BYTES
}

/// The framing Go chooses for a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    pub http11_status_line: bool,
    pub content_length: Option<u64>,
    pub chunked: bool,
    pub connection: Option<&'static str>,
    pub close_after_reply: bool,
}

/// The `Content-Length` `chunkWriter.writeHeader` adds by itself: when the
/// handler has returned (`done_len` is `Some(n)`) and its whole body, `n`
/// bytes, is this first and last chunk; not if the handler declared a
/// length, the status has no body, or a HEAD was answered with nothing.
pub fn auto_content_length(
    req: &RequestFacts,
    status: u16,
    handler_content_length: Option<u64>,
    done_len: Option<usize>,
) -> Option<u64> {
    match done_len {
        Some(n) if handler_content_length.is_none() && body_allowed_for_status(status) && (!req.head || n > 0) => {
            Some(n as u64)
        }
        _ => None,
    }
}

/// Step two of `chunkWriter.writeHeader`. `done_len` is `Some(n)` when the
/// handler has returned and its whole body (`n` bytes) is in the first chunk:
/// Go then sends `Content-Length: n` itself ([`auto_content_length`]).
pub fn response_framing(
    req: &RequestFacts,
    status: u16,
    handler_content_length: Option<u64>,
    done_len: Option<usize>,
    mut close: bool,
    mut connection: Option<&'static str>,
) -> Framing {
    let body_allowed = body_allowed_for_status(status);
    let content_length =
        handler_content_length.or_else(|| auto_content_length(req, status, handler_content_length, done_len));
    let mut chunked = false;
    if req.head || !body_allowed || status == 204 || content_length.is_some() {
        // Length known or no body.
    } else if req.http11 {
        chunked = true;
    } else {
        // HTTP/1.0 without a length: the body ends when the connection closes.
        close = true;
    }
    // `delConnectionHeader`: an HTTP/1.1 reply that closes says so; an
    // HTTP/1.0 one keeps whatever Connection value was chosen before.
    if close && req.http11 {
        connection = Some("close");
    }
    Framing {
        http11_status_line: req.http11,
        content_length: if body_allowed { content_length } else { None },
        chunked,
        connection,
        close_after_reply: close,
    }
}

/// Go's `bodyAllowedForStatus`.
pub fn body_allowed_for_status(status: u16) -> bool {
    labkit::wire::body_allowed(status)
}

/// What `(*response).shouldReuseConnection` and the close after it look at,
/// once `(*response).finishRequest` has run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyState {
    /// `w.closeAfterReply`: the request or the header decision said close.
    pub close_after_reply: bool,
    pub head: bool,
    /// `w.contentLength`: declared by the handler, or set by `writeHeader`.
    pub content_length: Option<u64>,
    /// `w.written`: body bytes the handler wrote.
    pub written: u64,
    /// `w.bodyAllowed()`: the status may carry a body.
    pub body_allowed: bool,
    /// `c.werr`: a socket write failed.
    pub write_failed: bool,
    /// `w.requestBodyLimitHit`: too much unread body at header time.
    pub request_body_limit_hit: bool,
    /// `w.closedRequestBodyEarly()`: `(*body).Close` gave up on the body.
    pub closed_request_body_early: bool,
}

/// `(*response).shouldReuseConnection`.
pub fn should_reuse_connection(s: &ReplyState) -> bool {
    if s.close_after_reply {
        return false;
    }
    // "Did not write enough. Avoid getting out of sync."
    if !s.head && s.body_allowed && s.content_length.is_some_and(|cl| cl != s.written) {
        return false;
    }
    !s.write_failed && !s.closed_request_body_early
}

/// What `(*conn).serve` does with the connection after a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Reuse {
    /// Wait for the next request (if `doKeepAlives()` still holds).
    Keep,
    /// Return, and the deferred `(*conn).close`: FIN, or RST over unread bytes.
    Close,
    /// `(*conn).closeWriteAndWait`: FIN at once, the full close
    /// `rstAvoidanceDelay` later, so the peer can read the reply before an
    /// RST over its unread body could destroy it.
    CloseWriteAndWait,
}

/// The branch after `w.finishRequest()` in `(*conn).serve`: keep the
/// connection if `shouldReuseConnection`, else `closeWriteAndWait` when
/// the request body was too big to read away, else a plain close.
pub fn after_reply(s: &ReplyState) -> Reuse {
    if should_reuse_connection(s) {
        Reuse::Keep
    } else if s.request_body_limit_hit || s.closed_request_body_early {
        Reuse::CloseWriteAndWait
    } else {
        Reuse::Close
    }
}

/// When Go 1.19 notices a read or write deadline `until` ahead of the
/// moment its goroutine parked. The deadline is a runtime timer, but an idle
/// process runs timers only when an M comes back from `netpoll(delay)`, and
/// `netpoll` (runtime/netpoll_epoll.go) hands `epoll_wait` whole
/// milliseconds: `delay/1e6`, or 1 ms when under a millisecond. Linux lets
/// each wait run over by its slack (fs/select.c `select_estimate_accuracy`:
/// 0.1 % of the timeout, at least the 50 µs `timer_slack_ns`). So a 100 ms
/// IdleTimeout is noticed after 99 ms + 99 µs, then 1 ms + 50 µs: at about
/// 100.15 ms, and a 100.3 ms one at about 101.15 ms. Real Go 1.19 was
/// measured closing at 100.43 and 101.41 ms (README, "Natural race").
pub fn netpoll_notice(until: Duration) -> Duration {
    const MS: Duration = Duration::from_millis(1);
    let mut t = Duration::ZERO;
    while t < until {
        let delay = until - t;
        let wait = if delay < MS { MS } else { MS * (delay.as_nanos() / MS.as_nanos()) as u32 };
        t += wait + epoll_slack(wait);
    }
    t
}

/// How far past its timeout Linux lets an `epoll_wait` sleep run
/// (`select_estimate_accuracy` for a task at nice 0).
fn epoll_slack(wait: Duration) -> Duration {
    (wait / 1000).clamp(Duration::from_micros(50), Duration::from_millis(100))
}

/// What Go's runtime adds to [`netpoll_notice`] before a timed-out reader
/// runs: the M's way back from `epoll_wait` through `checkTimers`,
/// `netpolldeadlineimpl` and the scheduler. Calibrated, not derived: real
/// Go 1.19 closes an idle connection this much later than the emulator
/// does with the rule alone (README, "Natural race": 100.43 ms vs
/// 100.36 ms for a 100 ms IdleTimeout, 101.41 vs 101.35 for 100.5 ms).
pub const RUNTIME_WAKE: Duration = Duration::from_micros(60);

/// When a goroutine that parked `until` before its deadline runs with the
/// timeout: [`netpoll_notice`] plus [`RUNTIME_WAKE`]. The emulator's
/// deadlines and `scenarios rate`'s window both use this.
pub fn deadline_fires(until: Duration) -> Duration {
    netpoll_notice(until) + RUNTIME_WAKE
}

/// Descriptors a Go 1.19 HTTP server holds before its first connection
/// (measured on the reference server: `ls /proc/PID/fd` shows 7): stdin,
/// stdout, stderr, the netpoller's epoll fd and its wake-up pipe's two ends
/// (`runtime.netpollinit`), and the listener.
pub const STARTUP_FDS: u32 = 7;

/// Whether `accept4(2)` fails with EMFILE ("too many open files") for a
/// process at `fd_limit` holding `open_conns` connections: the kernel
/// allocates the new descriptor before it takes a connection off the
/// queue (`__sys_accept4_file`), so the call fails even with nothing
/// queued and the queued connections stay there, handshakes completed.
pub fn accept_fails(fd_limit: Option<u32>, open_conns: usize) -> bool {
    fd_limit.is_some_and(|limit| (STARTUP_FDS as u64).saturating_add(open_conns as u64) >= u64::from(limit))
}

/// `(*Server).Serve`'s back-off after a temporary accept error (EMFILE and
/// ENFILE are `Temporary()`): 5 ms, doubled after each further failure, at
/// most 1 s; a successful accept starts over (`tempDelay = 0`). `prev` is
/// the previous delay (zero after a success).
pub fn accept_backoff(prev: Duration) -> Duration {
    let next = if prev.is_zero() { Duration::from_millis(5) } else { prev.saturating_mul(2) };
    next.min(Duration::from_secs(1))
}

/// The line `Serve` logs before sleeping (`srv.logf("http: Accept error:
/// %v; retrying in %v", err, tempDelay)`), for a TCP listener on `addr`.
pub fn accept_error_line(addr: &str, delay: Duration) -> String {
    format!("http: Accept error: accept tcp {addr}: accept4: too many open files; retrying in {}", crate::godur::format(delay))
}

#[cfg(test)]
mod tests {
    #[test]
    fn netpoll_rounds_deadlines_to_whole_millisecond_waits_plus_slack() {
        let us = Duration::from_micros;
        let ms = |m: f64| Duration::from_secs_f64(m / 1e3);
        // (deadline ahead, when Go notices it)
        let table = [
            // The goroutine parks a little after the deadline was set.
            (ms(99.99), us(99_000 + 99 + 1_000 + 50)),
            (ms(100.0), us(100_000 + 100)),
            (ms(100.3), us(100_000 + 100 + 1_000 + 50)),
            (ms(100.9), us(100_000 + 100 + 1_000 + 50)),
            (ms(20.5), us(20_000 + 50 + 1_000 + 50)),
            (us(300), us(1_000 + 50)),
            (Duration::ZERO, Duration::ZERO),
        ];
        for (until, want) in table {
            assert_eq!(netpoll_notice(until), want, "deadline {until:?} ahead");
        }
    }

    #[test]
    fn a_deadline_is_never_noticed_early() {
        for us in (0..5_000).step_by(7) {
            let until = Duration::from_micros(us);
            let t = netpoll_notice(until);
            assert!(t >= until && t <= until + Duration::from_micros(1_200), "{until:?} → {t:?}");
        }
    }

    use super::*;
    use crate::config::ServerConfig;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn cfg(read: u64, header: u64, idle: u64, v: GoVersion) -> ServerConfig {
        ServerConfig {
            read_timeout: ms(read),
            read_header_timeout: ms(header),
            idle_timeout: ms(idle),
            go_version: v,
            ..ServerConfig::default()
        }
    }

    #[test]
    fn idle_wait_table() {
        use GoVersion::*;
        use IdleWait::*;
        // (read, read_header, idle, version) -> wait, effective limit
        let table = [
            (0, 0, 100, Go119, Peek(Some(ms(100))), Some(ms(100))),
            (100, 0, 0, Go119, Peek(Some(ms(100))), Some(ms(100))), // (*Server).idleTimeout fallback
            (100, 0, 300, Go119, Peek(Some(ms(300))), Some(ms(300))),
            (0, 50, 0, Go119, StraightToReadRequest, Some(ms(50))), // #54784
            (0, 0, 0, Go119, StraightToReadRequest, None),
            (0, 50, 0, Go120, Peek(None), None),
            (100, 0, 0, Go120, Peek(Some(ms(100))), Some(ms(100))),
        ];
        for (r, h, i, v, wait, limit) in table {
            let c = cfg(r, h, i, v);
            assert_eq!(idle_wait(&c), wait, "{r} {h} {i} {v:?}");
            assert_eq!(effective_idle_limit(&c), limit, "{r} {h} {i} {v:?}");
        }
    }

    #[test]
    fn idle_close_table() {
        use IdleClose::*;
        let knob = |c: ServerConfig| ServerConfig { idle_race: Some(IdleRace::Fin), ..c };
        assert_eq!(idle_close(&cfg(0, 0, 100, GoVersion::Go119)), After(ms(100)));
        assert_eq!(idle_close(&knob(cfg(0, 0, 100, GoVersion::Go119))), AtNextRequest(ms(100), IdleRace::Fin));
        // Go 1.19's ReadHeaderTimeout-as-idle has no Peek: the knob holds
        // readRequest's header deadline instead.
        assert_eq!(idle_close(&cfg(0, 50, 0, GoVersion::Go119)), After(ms(50)));
        assert_eq!(idle_close(&knob(cfg(0, 50, 0, GoVersion::Go119))), AtNextRequest(ms(50), IdleRace::Fin));
        assert_eq!(idle_close(&knob(cfg(0, 0, 0, GoVersion::Go119))), Never);
        assert_eq!(idle_close(&cfg(0, 50, 0, GoVersion::Go120)), Never);
    }

    #[test]
    fn header_deadline_prefers_read_header_timeout() {
        assert_eq!(header_timeout(&cfg(100, 0, 0, GoVersion::Go119)), Some(ms(100)));
        assert_eq!(header_timeout(&cfg(100, 20, 0, GoVersion::Go119)), Some(ms(20)));
        assert_eq!(header_timeout(&cfg(0, 0, 0, GoVersion::Go119)), None);
        assert_eq!(request_timeout(&cfg(0, 20, 0, GoVersion::Go119)), None);
    }

    #[test]
    fn unread_body_rules() {
        assert_eq!(body_at_header_write(0, false), BodyAtHeaderWrite::Nothing);
        assert_eq!(body_at_header_write(100, false), BodyAtHeaderWrite::Discard);
        assert_eq!(body_at_header_write(100, true), BodyAtHeaderWrite::Nothing);
        assert_eq!(body_at_header_write(256 << 10, false), BodyAtHeaderWrite::TooBig);
        assert_eq!(body_on_close(100, false), BodyOnClose::Drain(100));
        assert_eq!(body_on_close((256 << 10) + 1, false), BodyOnClose::EarlyClose);
        // nginx's default HTTP/1.0 upstream request: nothing is read, and
        // the close that follows resets (observed with real Go 1.19).
        assert_eq!(body_on_close(1 << 20, true), BodyOnClose::LeaveForClose);
        assert_eq!(body_on_close(100, true), BodyOnClose::LeaveForClose);
        assert_eq!(body_on_close(0, true), BodyOnClose::Drain(0));
        assert_eq!(chunked_body_at_header_write(false, false), BodyAtHeaderWrite::Discard);
        assert_eq!(chunked_body_at_header_write(false, true), BodyAtHeaderWrite::Nothing);
        assert_eq!(chunked_body_on_close(false), BodyOnClose::Drain(MAX_POST_HANDLER_READ_BYTES));
        assert_eq!(chunked_body_on_close(true), BodyOnClose::Drain(0));
        assert!(GET10.closing() && !GET11.closing());
        assert_eq!(close_kind(true), CloseKind::Rst);
        assert_eq!(close_kind(false), CloseKind::Fin);
    }

    const GET11: RequestFacts = RequestFacts { http11: true, wants_close: false, wants_10_keep_alive: false, head: false, unread_expect_continue: false };
    const GET10: RequestFacts = RequestFacts { http11: false, wants_close: false, wants_10_keep_alive: false, head: false, unread_expect_continue: false };

    #[test]
    fn framing_table() {
        // Small body, handler done: Content-Length, keep-alive.
        let (c, h) = close_before_body_check(&GET11, None, true, true);
        let f = response_framing(&GET11, 200, None, Some(3), c, h);
        assert_eq!((f.content_length, f.chunked, f.close_after_reply, f.connection), (Some(3), false, false, None));
        // Handler still running when the buffer spilled: chunked.
        let f = response_framing(&GET11, 200, None, None, c, h);
        assert!(f.chunked && !f.close_after_reply);
        // HTTP/1.0 (nginx's default upstream protocol): HTTP/1.0 status line,
        // close-delimited unless a length is known, closed either way, and no
        // Connection header.
        let (c, h) = close_before_body_check(&GET10, None, true, true);
        let f = response_framing(&GET10, 200, None, None, c, h);
        assert_eq!((f.http11_status_line, f.chunked, f.content_length, f.close_after_reply, f.connection), (false, false, None, true, None));
        // Keep-alives disabled (Shutdown): Connection: close on HTTP/1.1.
        let (c, h) = close_before_body_check(&GET11, None, true, false);
        let f = response_framing(&GET11, 200, None, Some(3), c, h);
        assert_eq!((f.close_after_reply, f.connection), (true, Some("close")));
        // Declared length wins over chunking.
        let f = response_framing(&GET11, 200, Some(10), None, false, None);
        assert_eq!((f.content_length, f.chunked), (Some(10), false));
        // HTTP/1.0 keep-alive with a too-big body: "close" stays (Go only
        // rewrites the header for HTTP/1.1 replies).
        let f = response_framing(&GET10, 200, Some(3), None, true, Some("close"));
        assert_eq!((f.connection, f.close_after_reply), (Some("close"), true));
    }

    #[test]
    fn auto_content_length_table() {
        const HEAD11: RequestFacts = RequestFacts { head: true, ..GET11 };
        assert_eq!(auto_content_length(&GET11, 200, None, Some(3)), Some(3));
        assert_eq!(auto_content_length(&GET11, 200, None, Some(0)), Some(0));
        assert_eq!(auto_content_length(&GET11, 200, None, None), None, "handler still running");
        assert_eq!(auto_content_length(&GET11, 200, Some(7), Some(3)), None, "declared by the handler");
        assert_eq!(auto_content_length(&GET11, 204, None, Some(0)), None, "no body allowed");
        assert_eq!(auto_content_length(&HEAD11, 200, None, Some(0)), None, "HEAD answered with nothing");
        assert_eq!(auto_content_length(&HEAD11, 200, None, Some(5)), Some(5));
    }

    #[test]
    fn reuse_table() {
        let ok = ReplyState {
            close_after_reply: false,
            head: false,
            content_length: Some(3),
            written: 3,
            body_allowed: true,
            write_failed: false,
            request_body_limit_hit: false,
            closed_request_body_early: false,
        };
        let cases = [
            (ok, Reuse::Keep),
            (ReplyState { close_after_reply: true, ..ok }, Reuse::Close),
            (ReplyState { written: 2, ..ok }, Reuse::Close),
            (ReplyState { written: 2, head: true, ..ok }, Reuse::Keep),
            (ReplyState { written: 0, body_allowed: false, ..ok }, Reuse::Keep),
            (ReplyState { content_length: None, written: 10, ..ok }, Reuse::Keep),
            (ReplyState { write_failed: true, ..ok }, Reuse::Close),
            (ReplyState { close_after_reply: true, request_body_limit_hit: true, ..ok }, Reuse::CloseWriteAndWait),
            (ReplyState { closed_request_body_early: true, ..ok }, Reuse::CloseWriteAndWait),
        ];
        for (s, want) in cases {
            assert_eq!(after_reply(&s), want, "{s:?}");
            assert_eq!(should_reuse_connection(&s), want == Reuse::Keep, "{s:?}");
        }
        assert!(drain_closes_early(MAX_POST_HANDLER_READ_BYTES) && !drain_closes_early(100));
    }

    #[test]
    fn accept_backoff_doubles_from_5ms_to_1s() {
        // As measured on go1.19.8 under `prlimit --nofile=10:10`.
        let mut d = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..10 {
            d = accept_backoff(d);
            seen.push(crate::godur::format(d));
        }
        assert_eq!(seen, ["5ms", "10ms", "20ms", "40ms", "80ms", "160ms", "320ms", "640ms", "1s", "1s"]);
        assert_eq!(accept_backoff(Duration::MAX), Duration::from_secs(1));
    }

    #[test]
    fn accept_fails_at_the_fd_limit() {
        let table: [(Option<u32>, usize, bool); 7] =
            [(None, 100_000, false), (Some(10), 0, false), (Some(10), 2, false), (Some(10), 3, true), (Some(10), 50, true), (Some(0), 0, true), (Some(u32::MAX), usize::MAX, true)];
        for (limit, open, fails) in table {
            assert_eq!(accept_fails(limit, open), fails, "{limit:?} {open}");
        }
    }

    #[test]
    fn accept_error_line_is_gos() {
        assert_eq!(
            accept_error_line("127.0.0.1:18441", Duration::from_millis(5)),
            "http: Accept error: accept tcp 127.0.0.1:18441: accept4: too many open files; retrying in 5ms"
        );
        assert!(accept_error_line("127.0.0.1:1", Duration::from_secs(1)).ends_with("retrying in 1s"));
    }
}
