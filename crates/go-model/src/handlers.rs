//! The handler behaviours a Go test server exposes, selected by request path.
//! `fixtures/go-upstream/main.go` implements the same paths with the real
//! `net/http`; bodies and statuses are identical so conformance can compare.

use std::fmt;
use std::time::Duration;

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
}
