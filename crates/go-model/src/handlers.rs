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
    /// `w.(http.Flusher).Flush()`.
    Flush,
    /// `time.Sleep(d)`: nothing interrupts it, WriteTimeout included.
    Sleep(Duration),
    /// `panic(...)`: the rest of the script does not run.
    Panic(PanicKind),
}

/// What a handler panics with; `(*conn).serve`'s deferred recover treats
/// both alike on the wire and differs only in logging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PanicKind {
    /// `panic("boom")`: Go logs `http: panic serving <addr>: boom` and the stack.
    Value,
    /// `panic(http.ErrAbortHandler)`: the same, without the log line.
    AbortHandler,
}

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
    PanicAfterFlush { bytes: usize, ms: u64, cl: bool },
    /// `/abort`: `panic(http.ErrAbortHandler)`: like panic, nothing logged.
    Abort,
    /// `/partial?bytes=N&ms=M[&cl=1]`: write N bytes, Flush, sleep M ms, write N more.
    Partial { bytes: usize, ms: u64, cl: bool },
    /// `/big?bytes=N`: write N bytes, no Flush.
    Big { bytes: usize },
    /// `/recover-panic`: a recover middleware turns a panic into 500.
    RecoverPanic,
    /// `/timeout-handler?ms=N[&limit=L]`: `http.TimeoutHandler(sleep N, L)`;
    /// 503 "timeout\n" when N > L (default L = 100 ms).
    TimeoutHandler { ms: u64, limit: u64 },
    /// Anything else: 404 "404 page not found\n" (Go's NotFound).
    NotFound,
}

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
    /// Parses a request target (`/sleep?ms=500`).
    pub fn from_target(target: &str) -> Result<Handler, BadQuery> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let param = |name: &str| -> Result<Option<u64>, BadQuery> {
            for pair in query.split('&') {
                if let Some(v) = pair.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                    return v
                        .parse()
                        .map(Some)
                        .map_err(|_| BadQuery(format!("{name}={v}: not a whole number")));
                }
            }
            Ok(None)
        };
        let flag = |name: &str| param(name).map(|v| v == Some(1));
        Ok(match path {
            "/ok" => Handler::Ok,
            "/sleep" => Handler::Sleep { ms: param("ms")?.unwrap_or(0) },
            "/panic" => Handler::Panic,
            "/panic-after-flush" => Handler::PanicAfterFlush {
                bytes: param("bytes")?.unwrap_or(1000) as usize,
                ms: param("ms")?.unwrap_or(50),
                cl: flag("cl")?,
            },
            "/abort" => Handler::Abort,
            "/partial" => Handler::Partial {
                bytes: param("bytes")?.unwrap_or(65536) as usize,
                ms: param("ms")?.unwrap_or(0),
                cl: flag("cl")?,
            },
            "/big" => Handler::Big { bytes: param("bytes")?.unwrap_or(65536) as usize },
            "/recover-panic" => Handler::RecoverPanic,
            "/timeout-handler" => Handler::TimeoutHandler {
                ms: param("ms")?.unwrap_or(0),
                limit: param("limit")?.unwrap_or(100),
            },
            _ => Handler::NotFound,
        })
    }

    pub fn sleep(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    /// What the handler does, call by call (the same calls as the case of
    /// the same path in `fixtures/go-upstream/main.go`).
    pub fn script(&self) -> Vec<Op> {
        use Op::*;
        let text = || SetHeader("Content-Type".into(), TEXT.into());
        let fill = |n: usize| Write(vec![FILL; n]);
        let declared = |cl: bool, bytes: usize| cl.then(|| SetHeader("Content-Length".into(), (2 * bytes).to_string()));
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
            // http.TimeoutHandler buffers the inner handler: at its limit it
            // answers 503 with its message; otherwise it copies the inner
            // handler's header and body out, WriteHeader first.
            Handler::TimeoutHandler { ms, limit } if ms > limit => {
                vec![Sleep(Self::sleep(limit)), text(), WriteHeader(503), Write(TIMEOUT_HANDLER_BODY.as_bytes().to_vec())]
            }
            Handler::TimeoutHandler { ms, .. } => {
                vec![Sleep(Self::sleep(ms)), text(), WriteHeader(200), Write(b"slept\n".to_vec())]
            }
            Handler::NotFound => http_error(404, "404 page not found"),
        }
    }
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
  /timeout-handler?ms=N[&limit=L]      http.TimeoutHandler(limit L ms, default 100): 503 if N > L
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
    fn scripts() {
        use Op::*;
        assert_eq!(
            Handler::Partial { bytes: 2, ms: 5, cl: true }.script(),
            vec![
                SetHeader("Content-Type".into(), TEXT.into()),
                SetHeader("Content-Length".into(), "4".into()),
                Write(b"xx".to_vec()),
                Flush,
                Sleep(Duration::from_millis(5)),
                Write(b"xx".to_vec()),
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
