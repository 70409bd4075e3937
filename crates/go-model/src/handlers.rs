//! The handler behaviours a Go test server exposes, selected by request path,
//! as data: each [`Handler`] is a [`script`](Handler::script) of [`Op`]s,
//! the calls a Go handler makes on its `http.ResponseWriter`. One
//! interpreter runs any script ([`crate::exchange`]), for the emulator and
//! for [`crate::serve`] alike.
//!
//! `fixtures/go-upstream/main.go` implements the same paths with the real
//! `net/http`; bodies and statuses are identical so conformance can compare.
//! A new behaviour is one [`Handler`] arm, its script, and the Go case.

use std::fmt;
use std::time::Duration;

/// One call a handler makes, in order.
///
/// Scripts set `Content-Type` themselves: Go's `DetectContentType` sniffing
/// is not modelled. Hop-by-hop headers (`Connection`, `Transfer-Encoding`)
/// and `Date` are Go's to choose, so scripts do not set them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `w.Header().Set(name, value)`; ignored once the header was written
    /// (`WriteHeader` snapshots it).
    SetHeader(String, String),
    /// `w.WriteHeader(status)`; later calls are superfluous.
    WriteHeader(u16),
    /// `w.Write(bytes)` (the error it returns is ignored, as the fixture does).
    Write(Vec<u8>),
    /// `w.Write(fill(n))`: `n` bytes of [`FILL`], written in pieces of at
    /// most [`FILL_PIECE`] so a client-chosen `n` never allocates more
    /// (Go writes them in one call; see [`FILL_PIECE`]).
    Fill(u64),
    /// `w.(http.Flusher).Flush()`.
    Flush,
    /// `time.Sleep(d)`: nothing interrupts it, WriteTimeout included.
    Sleep(Duration),
    /// `panic(...)`: the rest of the script does not run.
    Panic(PanicKind),
}

/// What a handler panics with; `(*conn).serve`'s deferred recover treats
/// all alike on the wire and differs only in logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PanicKind {
    /// `panic("boom")`: Go logs `http: panic serving <addr>: boom` and the stack.
    Value,
    /// `panic(http.ErrAbortHandler)`: the same, without the log line.
    AbortHandler,
    /// The fixture's `fill(n)` with `n` past the runtime's `maxAlloc`
    /// (`strings.Repeat` → `Builder.Grow` → `makeslice`): a runtime error,
    /// recovered and logged like any panic.
    MakeSliceCap,
}

impl PanicKind {
    /// What Go logs after `http: panic serving <addr>: ` (nothing for
    /// `ErrAbortHandler`).
    pub fn message(self) -> Option<&'static str> {
        match self {
            PanicKind::Value => Some("boom"),
            PanicKind::AbortHandler => None,
            PanicKind::MakeSliceCap => Some("runtime error: makeslice: cap out of range"),
        }
    }
}

/// The runtime's `maxAlloc` on linux/amd64 (`1 << heapAddrBits`, 48 bits):
/// `makeslice` panics "cap out of range" past it.
pub const MAX_ALLOC: u64 = 1 << 48;

/// The largest piece of a [`Op::Fill`] the emulator materialises at once.
/// Up to this size the bytes on the wire are Go's exactly; a larger fill is
/// written as several `Write`s, which changes only the chunk framing of a
/// chunked body (Go itself would need twice the body in memory).
pub const FILL_PIECE: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// `/ok`: 200 "ok\n".
    Ok,
    /// `/sleep?ms=N`: sleep, then 200 "slept\n".
    Sleep { ms: u64 },
    /// `/panic`: panic before writing anything.
    Panic,
    /// `/panic-after-flush?bytes=N[&ms=M][&cl=1]`: 200, write N bytes, Flush,
    /// sleep M (default 50) ms, panic. `cl=1` declares Content-Length 2N first.
    PanicAfterFlush { bytes: u64, ms: u64, cl: bool },
    /// `/abort`: `panic(http.ErrAbortHandler)`: like panic, nothing logged.
    Abort,
    /// `/partial?bytes=N&ms=M[&cl=1]`: write N bytes, Flush, sleep M ms, write N more.
    Partial { bytes: u64, ms: u64, cl: bool },
    /// `/big?bytes=N`: write N bytes, no Flush.
    Big { bytes: u64 },
    /// `/recover-panic`: a recover middleware turns a panic into 500.
    RecoverPanic,
    /// `/unauthorized`: an early answer, `http.Error(w, "Unauthorized",
    /// 401)`, without reading the request body (an auth check in front of
    /// an upload).
    Unauthorized,
    /// `/timeout-handler?ms=N[&limit=L]`: `http.TimeoutHandler(sleep N, L)`;
    /// 503 "timeout\n" when N > L (default L = 100 ms).
    TimeoutHandler { ms: u64, limit: u64 },
    /// `/big-header?bytes=N`: a `Set-Cookie: session=<N bytes>` header
    /// (a large cookie or JWT), then 200 "ok\n". N at most
    /// [`MAX_HEADER_FILL`] (else 400, as the fixture answers).
    BigHeader { bytes: u64 },
    /// `/sse?events=N&ms=M[&every=H]`: a `text/event-stream` of N events
    /// (`data: i\n\n`), each flushed, M ms apart; with `every`, a comment
    /// (`: ping\n\n`, flushed) every H ms within each gap (the heartbeat
    /// that keeps proxies' read timeouts from firing). At most
    /// [`MAX_STREAM_WRITES`] events, and heartbeats per gap (else 400).
    Sse { events: u64, ms: u64, every: u64 },
    /// `/content-length?bytes=M[&declared=N]`: with `declared`, sets
    /// `Content-Length: N` by hand (a compression middleware that keeps the
    /// uncompressed length), then writes M bytes and returns; without it,
    /// Go frames the M bytes itself. Both at most [`MAX_BODY_FILL`] (else 400).
    ContentLength { bytes: u64, declared: Option<u64> },
    /// Anything else: 404 "404 page not found\n" (Go's NotFound).
    NotFound,
}

/// The largest `bytes` of `/big-header` (1 MiB), on both servers.
pub const MAX_HEADER_FILL: u64 = 1 << 20;
/// The largest `bytes` and `declared` of `/content-length` (1 MiB).
pub const MAX_BODY_FILL: u64 = 1 << 20;
/// The most events of `/sse`, and heartbeats in one of its gaps.
pub const MAX_STREAM_WRITES: u64 = 1000;
/// The heartbeat comment `/sse` writes.
pub const SSE_HEARTBEAT: &str = ": ping\n\n";

/// The body byte the sized handlers write.
pub const FILL: u8 = b'x';
pub const TIMEOUT_HANDLER_BODY: &str = "timeout\n";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadQuery(pub String);

impl fmt::Display for BadQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Handler {
    /// Parses a request target (`/sleep?ms=500`) in origin form: the path
    /// percent-decoded as `url.ParseRequestURI` does (an invalid escape
    /// leaves it as sent; the request reader refuses those before).
    pub fn from_target(target: &str) -> Result<Handler, BadQuery> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let path = percent_decode(path.as_bytes(), false).unwrap_or_else(|| path.as_bytes().to_vec());
        Handler::from_url(&String::from_utf8_lossy(&path), query)
    }

    /// The handler for `r.URL.Path` and `r.URL.RawQuery`, as the fixture's
    /// `switch r.URL.Path` and its `param` (`r.URL.Query().Get`, then
    /// `strconv.Atoi` and `n < 0`) choose it.
    pub fn from_url(path: &str, raw_query: &str) -> Result<Handler, BadQuery> {
        let param = |name: &str| -> Result<Option<u64>, BadQuery> {
            match query_get(raw_query, name).as_deref() {
                None | Some("") => Ok(None),
                Some(v) => atoi(v)
                    .filter(|n| *n >= 0)
                    .map(|n| Some(n as u64))
                    .ok_or_else(|| BadQuery(format!("{name}={v}: not a whole number"))),
            }
        };
        let flag = |name: &str| param(name).map(|v| v == Some(1));
        Ok(match path {
            "/ok" => Handler::Ok,
            "/sleep" => Handler::Sleep { ms: param("ms")?.unwrap_or(0) },
            "/panic" => Handler::Panic,
            "/panic-after-flush" => Handler::PanicAfterFlush {
                bytes: param("bytes")?.unwrap_or(1000),
                ms: param("ms")?.unwrap_or(50),
                cl: flag("cl")?,
            },
            "/abort" => Handler::Abort,
            "/partial" => Handler::Partial {
                bytes: param("bytes")?.unwrap_or(65536),
                ms: param("ms")?.unwrap_or(0),
                cl: flag("cl")?,
            },
            "/big" => Handler::Big { bytes: param("bytes")?.unwrap_or(65536) },
            "/recover-panic" => Handler::RecoverPanic,
            "/unauthorized" => Handler::Unauthorized,
            "/timeout-handler" => Handler::TimeoutHandler {
                ms: param("ms")?.unwrap_or(0),
                limit: param("limit")?.unwrap_or(100),
            },
            "/big-header" => {
                let bytes = param("bytes")?.unwrap_or(8192);
                if bytes > MAX_HEADER_FILL {
                    return Err(BadQuery(format!("bytes={bytes}: at most {MAX_HEADER_FILL}")));
                }
                Handler::BigHeader { bytes }
            }
            "/sse" => {
                let (events, ms, every) = (param("events")?.unwrap_or(2), param("ms")?.unwrap_or(0), param("every")?.unwrap_or(0));
                if events > MAX_STREAM_WRITES {
                    return Err(BadQuery(format!("events={events}: at most {MAX_STREAM_WRITES}")));
                }
                if every > 0 && sse_beats(ms, every) > MAX_STREAM_WRITES {
                    return Err(BadQuery(format!("every={every}: at most {MAX_STREAM_WRITES} heartbeats in a gap")));
                }
                Handler::Sse { events, ms, every }
            }
            "/content-length" => {
                let (bytes, declared) = (param("bytes")?.unwrap_or(1024), param("declared")?);
                if let Some(n) = Some(bytes).into_iter().chain(declared).find(|&n| n > MAX_BODY_FILL) {
                    return Err(BadQuery(format!("{n}: at most {MAX_BODY_FILL}")));
                }
                Handler::ContentLength { bytes, declared }
            }
            _ => Handler::NotFound,
        })
    }

    /// `time.Duration(ms) * time.Millisecond`: Go's int64 multiplication
    /// wraps; a duration that is not positive does not sleep.
    pub fn sleep(ms: u64) -> Duration {
        Duration::from_nanos(go_duration_nanos(ms).max(0) as u64)
    }

    /// What the handler does, call by call (the same calls as the case of
    /// the same path in `fixtures/go-upstream/main.go`).
    pub fn script(&self) -> Vec<Op> {
        use Op::*;
        let text = || SetHeader("Content-Type".into(), TEXT.into());
        // fill(n) panics in makeslice past maxAlloc; the body is never built here.
        let fill = |n: u64| if n > MAX_ALLOC { Panic(PanicKind::MakeSliceCap) } else { Fill(n) };
        // strconv.Itoa(2*bytes): Go's int arithmetic wraps.
        let declared =
            |cl: bool, bytes: u64| cl.then(|| SetHeader("Content-Length".into(), (bytes as i64).wrapping_mul(2).to_string()));
        match *self {
            Handler::Ok => vec![text(), Write(b"ok\n".to_vec())],
            Handler::Sleep { ms } => vec![Sleep(Self::sleep(ms)), text(), Write(b"slept\n".to_vec())],
            Handler::Panic => vec![Panic(PanicKind::Value)],
            Handler::Abort => vec![Panic(PanicKind::AbortHandler)],
            Handler::PanicAfterFlush { bytes, ms, cl } => [Some(text()), declared(cl, bytes)]
                .into_iter()
                .flatten()
                .chain([WriteHeader(200), fill(bytes), Flush, Sleep(Self::sleep(ms)), Panic(PanicKind::Value)])
                .collect(),
            Handler::Partial { bytes, ms, cl } => [Some(text()), declared(cl, bytes)]
                .into_iter()
                .flatten()
                .chain([fill(bytes), Flush, Sleep(Self::sleep(ms)), fill(bytes)])
                .collect(),
            Handler::Big { bytes } => vec![text(), fill(bytes)],
            // The middleware's deferred recover answers with http.Error.
            Handler::RecoverPanic => http_error(500, "Internal Server Error"),
            Handler::Unauthorized => http_error(401, "Unauthorized"),
            // http.TimeoutHandler buffers the inner handler: at its limit it
            // answers 503 with its message; otherwise it copies the inner
            // handler's header and body out, WriteHeader first.
            Handler::TimeoutHandler { ms, limit } if go_duration_nanos(ms) > go_duration_nanos(limit) => {
                vec![Sleep(Self::sleep(limit)), text(), WriteHeader(503), Write(TIMEOUT_HANDLER_BODY.as_bytes().to_vec())]
            }
            Handler::TimeoutHandler { ms, .. } => {
                vec![Sleep(Self::sleep(ms)), text(), WriteHeader(200), Write(b"slept\n".to_vec())]
            }
            Handler::BigHeader { bytes } => {
                let mut cookie = String::with_capacity(8 + bytes as usize);
                cookie.push_str("session=");
                cookie.extend(std::iter::repeat_n(FILL as char, bytes as usize));
                vec![SetHeader("Set-Cookie".into(), cookie), text(), Write(b"ok\n".to_vec())]
            }
            Handler::Sse { events, ms, every } => {
                let mut ops = vec![SetHeader("Content-Type".into(), "text/event-stream".into()), SetHeader("Cache-Control".into(), "no-cache".into())];
                for i in 1..=events {
                    if i > 1 {
                        let beats = if every > 0 { sse_beats(ms, every) } else { 0 };
                        for _ in 0..beats {
                            ops.extend([Sleep(Self::sleep(every)), Write(SSE_HEARTBEAT.as_bytes().to_vec()), Flush]);
                        }
                        ops.push(Sleep(Self::sleep(ms - beats * every)));
                    }
                    ops.extend([Write(format!("data: {i}\n\n").into_bytes()), Flush]);
                }
                ops
            }
            Handler::ContentLength { bytes, declared } => [Some(text()), declared.map(|n| SetHeader("Content-Length".into(), n.to_string())), Some(fill(bytes))]
                .into_iter()
                .flatten()
                .collect(),
            Handler::NotFound => http_error(404, "404 page not found"),
        }
    }
}

/// The heartbeats in one gap of `/sse` (the fixture's
/// `for left := ms; left > every; left -= every`): one each `every` ms
/// strictly before the gap ends.
fn sse_beats(ms: u64, every: u64) -> u64 {
    if ms == 0 {
        0
    } else {
        (ms - 1) / every
    }
}

/// `time.Duration(ms) * time.Millisecond` in nanoseconds, wrapping as Go's int64 does.
fn go_duration_nanos(ms: u64) -> i64 {
    (ms as i64).wrapping_mul(1_000_000)
}

/// `strconv.Atoi`: an optional sign and decimal digits, within int64.
pub fn atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `url.Values.Get` on `url.ParseQuery(raw)`: the first value for `name`;
/// pairs that fail to parse (a `;`, a bad escape) are dropped, as
/// `r.URL.Query()` drops them.
pub fn query_get(raw: &str, name: &str) -> Option<String> {
    raw.split('&').filter(|kv| !kv.is_empty() && !kv.contains(';')).find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let k = percent_decode(k.as_bytes(), true)?;
        let v = percent_decode(v.as_bytes(), true)?;
        (k == name.as_bytes()).then(|| String::from_utf8_lossy(&v).into_owned())
    })
}

/// `url.unescape`: `%XX` escapes (and `+` as space in query mode); `None`
/// for a malformed escape.
pub fn percent_decode(s: &[u8], plus_is_space: bool) -> Option<Vec<u8>> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let (hi, lo) = (s.get(i + 1).copied().and_then(hex)?, s.get(i + 2).copied().and_then(hex)?);
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(out)
}

/// The `Content-Type` every handler sets.
pub const TEXT: &str = "text/plain; charset=utf-8";

/// Go's `http.Error(w, msg, status)`.
pub fn http_error(status: u16, msg: &str) -> Vec<Op> {
    vec![
        Op::SetHeader("Content-Type".into(), TEXT.into()),
        Op::SetHeader("X-Content-Type-Options".into(), "nosniff".into()),
        Op::WriteHeader(status),
        Op::Write(format!("{msg}\n").into_bytes()),
    ]
}

/// The script for a request target: its handler's, or the fixture's
/// `http.Error(w, "<name>=<value>: not a whole number", 400)` for a bad query.
pub fn script_for_target(target: &str) -> Vec<Op> {
    match Handler::from_target(target) {
        Ok(h) => h.script(),
        Err(bad) => http_error(400, &bad.0),
    }
}

/// The script `(*conn).serve` runs for a request read by
/// [`crate::request::read_request`]: `sendExpectationFailed` for an
/// unknown `Expect`, `globalOptionsHandler` for `OPTIONS *`
/// (`serverHandler.ServeHTTP`), else the fixture's handler for `URL.Path`.
pub fn script_for_request(req: &crate::request::Request) -> Vec<Op> {
    if req.expectation() == crate::request::Expectation::Failed {
        return vec![Op::SetHeader("Connection".into(), "close".into()), Op::WriteHeader(417)];
    }
    if req.request_uri == "*" && req.method == "OPTIONS" {
        return vec![Op::SetHeader("Content-Length".into(), "0".into())];
    }
    match Handler::from_url(&req.path, &req.raw_query) {
        Ok(h) => h.script(),
        Err(bad) => http_error(400, &bad.0),
    }
}

/// The paths and what they do, for `--help`.
pub const HANDLER_HELP: &str = "\
HANDLERS (by request path; the same paths as fixtures/go-upstream/main.go):
  /ok                                  200 \"ok\\n\"
  /sleep?ms=N                          sleep N ms, then 200 \"slept\\n\"
  /panic                               panic before writing (Go logs it, closes the connection)
  /panic-after-flush?bytes=N[&ms=M][&cl=1]
                                       200 + N bytes flushed, sleep M ms (50), then panic
  /abort                               panic(http.ErrAbortHandler): same on the wire, no log
  /partial?bytes=N&ms=M[&cl=1]         N bytes flushed, sleep M ms, N bytes more
  /big?bytes=N                         N bytes, no flush
  /recover-panic                       recover middleware: the panic becomes a 500
  /unauthorized                        401 \"Unauthorized\\n\" at once, the request body left unread
  /timeout-handler?ms=N[&limit=L]      http.TimeoutHandler(limit L ms, default 100): 503 if N > L
  /big-header?bytes=N                  Set-Cookie: session=<N bytes> (default 8192, at most 1 MiB), 200 \"ok\\n\"
  /sse?events=N&ms=M[&every=H]         text/event-stream: N events (default 2) M ms apart, each flushed;
                                       a \": ping\" comment every H ms within each gap
  /content-length?bytes=M[&declared=N] Content-Length: N set by hand (when given), then M bytes
  cl=1 declares Content-Length (2N) before writing; otherwise Go picks the framing.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(Handler::from_target("/ok"), Ok(Handler::Ok));
        assert_eq!(Handler::from_target("/sleep?ms=500"), Ok(Handler::Sleep { ms: 500 }));
        assert_eq!(
            Handler::from_target("/partial?bytes=10&ms=5&cl=1"),
            Ok(Handler::Partial { bytes: 10, ms: 5, cl: true })
        );
        assert_eq!(Handler::from_target("/nope"), Ok(Handler::NotFound));
        assert!(Handler::from_target("/sleep?ms=abc").is_err());
    }

    #[test]
    fn parameters_as_the_fixture_reads_them() {
        // r.URL.Query().Get, then strconv.Atoi and n < 0.
        assert_eq!(Handler::from_target("/sleep?ms=%2B5"), Ok(Handler::Sleep { ms: 5 }));
        assert_eq!(Handler::from_target("/sleep?ms=+5"), Err(BadQuery("ms= 5: not a whole number".into())), "+ is a space");
        assert_eq!(Handler::from_target("/sleep?ms=%31"), Ok(Handler::Sleep { ms: 1 }));
        assert_eq!(Handler::from_target("/big?bytes="), Ok(Handler::Big { bytes: 65536 }));
        assert_eq!(Handler::from_target("/%6Fk"), Ok(Handler::Ok));
        for bad in ["-1", "abc", "9223372036854775808", "1_0", " 1"] {
            assert!(Handler::from_target(&format!("/big?bytes={bad}")).is_err(), "{bad}");
        }
        assert_eq!(Handler::from_target("/big?bytes=9223372036854775807"), Ok(Handler::Big { bytes: i64::MAX as u64 }));
    }

    #[test]
    fn absurd_parameters_stay_bounded() {
        use Op::*;
        // fill(n) past maxAlloc: makeslice panics before anything is written.
        assert_eq!(Handler::Big { bytes: MAX_ALLOC + 1 }.script()[1], Panic(PanicKind::MakeSliceCap));
        assert_eq!(Handler::Big { bytes: MAX_ALLOC }.script()[1], Fill(MAX_ALLOC));
        // strconv.Itoa(2*bytes) wraps like Go's int.
        let p = Handler::Partial { bytes: 1 << 62, ms: 0, cl: true }.script();
        assert_eq!(p[1], SetHeader("Content-Length".into(), i64::MIN.to_string()));
        // time.Duration(ms) * time.Millisecond wraps; negative is no sleep.
        assert_eq!(Handler::sleep(i64::MAX as u64), Duration::ZERO);
        let th = Handler::TimeoutHandler { ms: 0, limit: i64::MAX as u64 }.script();
        assert_eq!(th[2], WriteHeader(503), "a negative limit has expired at once");
    }

    #[test]
    fn content_length_declared_by_hand() {
        use Op::*;
        assert_eq!(Handler::from_target("/content-length?bytes=10&declared=40"), Ok(Handler::ContentLength { bytes: 10, declared: Some(40) }));
        assert_eq!(Handler::from_target("/content-length"), Ok(Handler::ContentLength { bytes: 1024, declared: None }));
        assert_eq!(Handler::from_target("/content-length?declared=1048577"), Err(BadQuery("1048577: at most 1048576".into())));
        let s = Handler::ContentLength { bytes: 10, declared: Some(40) }.script();
        assert_eq!(s[1..], [SetHeader("Content-Length".into(), "40".into()), Fill(10)]);
        assert_eq!(Handler::ContentLength { bytes: 10, declared: None }.script()[1..], [Fill(10)]);
    }

    #[test]
    fn big_header_and_sse_as_the_fixture_reads_them() {
        use Op::*;
        assert_eq!(Handler::from_target("/big-header"), Ok(Handler::BigHeader { bytes: 8192 }));
        assert_eq!(Handler::from_target("/big-header?bytes=1048577"), Err(BadQuery("bytes=1048577: at most 1048576".into())));
        let h = Handler::BigHeader { bytes: 3 }.script();
        assert_eq!(h[0], SetHeader("Set-Cookie".into(), "session=xxx".into()));
        assert_eq!(Handler::from_target("/sse?ms=5"), Ok(Handler::Sse { events: 2, ms: 5, every: 0 }));
        assert!(Handler::from_target("/sse?events=1001").is_err());
        assert!(Handler::from_target("/sse?ms=1002&every=1").is_err(), "1001 heartbeats in a gap");
        assert!(Handler::from_target("/sse?ms=1001&every=1").is_ok());
        // A gap of exactly 3 heartbeat intervals: beats at 1× and 2×, the event at 3×.
        let s = Handler::Sse { events: 2, ms: 30, every: 10 }.script();
        let beat = || Write(SSE_HEARTBEAT.as_bytes().to_vec());
        let ten = Sleep(Duration::from_millis(10));
        assert_eq!(
            s[2..],
            [
                Write(b"data: 1\n\n".to_vec()),
                Flush,
                ten.clone(),
                beat(),
                Flush,
                ten.clone(),
                beat(),
                Flush,
                ten,
                Write(b"data: 2\n\n".to_vec()),
                Flush
            ]
        );
        // No heartbeat: one sleep per gap.
        assert_eq!(Handler::Sse { events: 2, ms: 30, every: 0 }.script()[4], Sleep(Duration::from_millis(30)));
    }

    #[test]
    fn scripts() {
        use Op::*;
        assert_eq!(
            Handler::Partial { bytes: 2, ms: 5, cl: true }.script(),
            vec![
                SetHeader("Content-Type".into(), TEXT.into()),
                SetHeader("Content-Length".into(), "4".into()),
                Fill(2),
                Flush,
                Sleep(Duration::from_millis(5)),
                Fill(2),
            ]
        );
        assert_eq!(Handler::Abort.script(), vec![Panic(PanicKind::AbortHandler)]);
        assert_eq!(Handler::PanicAfterFlush { bytes: 1, ms: 0, cl: false }.script().last(), Some(&Panic(PanicKind::Value)));
        assert_eq!(script_for_target("/nope"), http_error(404, "404 page not found"));
        assert_eq!(script_for_target("/sleep?ms=x")[3], Write(b"ms=x: not a whole number\n".to_vec()));
        let late = Handler::TimeoutHandler { ms: 300, limit: 50 }.script();
        assert_eq!((&late[0], &late[2]), (&Sleep(Duration::from_millis(50)), &WriteHeader(503)));
    }
}
