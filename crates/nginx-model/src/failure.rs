//! Failure classification: what went wrong in an attempt, its `ft_type`
//! (`NGX_HTTP_UPSTREAM_FT_*`), and the exact error.log text nginx writes at
//! the failing call site (`ngx_http_upstream_connect`,
//! `ngx_http_upstream_send_request`, `ngx_http_upstream_process_header`,
//! `ngx_http_upstream_next`, `ngx_http_upstream_process_non_buffered_request`).

use crate::attempt::Phase;
use crate::retry::Ft;
use crate::logs::Level;
use std::fmt;
use std::io;

/// A short, stable name for a failure, as reports, scenario files and the
/// log reader use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    NoLiveUpstreams,
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
    /// `connect()` found no local port for the peer (99, EADDRNOTAVAIL):
    /// `ip_local_port_range` used up by open and TIME_WAIT connections.
    NoLocalPort,
    SendFailed,
    SendTimeout,
    /// EOF before the whole response header.
    PrematureClose,
    /// `recv()` failed (RST) before the whole response header.
    Reset,
    ReadTimeout,
    InvalidHeader,
    TooBigHeader,
    /// A status listed in `proxy_next_upstream` (not logged by nginx).
    Status,
    /// EOF in the body: the client gets a truncated response.
    PrematureCloseBody,
    ResetBody,
    ReadTimeoutBody,
    /// Not an attempt's failure: the main request's line after its
    /// `auth_request` subrequest ended with a status other than 2xx, 401
    /// or 403 ("auth request unexpected status: N", [`crate::auth`]); the
    /// client gets 500.
    AuthStatus,
}

impl Class {
    pub const ALL: [Class; 17] = [
        Class::NoLiveUpstreams,
        Class::ConnectRefused,
        Class::ConnectTimeout,
        Class::ConnectFailed,
        Class::NoLocalPort,
        Class::SendFailed,
        Class::SendTimeout,
        Class::PrematureClose,
        Class::Reset,
        Class::ReadTimeout,
        Class::InvalidHeader,
        Class::TooBigHeader,
        Class::Status,
        Class::PrematureCloseBody,
        Class::ResetBody,
        Class::ReadTimeoutBody,
        Class::AuthStatus,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::NoLiveUpstreams => "no-live-upstreams",
            Class::ConnectRefused => "connect-refused",
            Class::ConnectTimeout => "connect-timeout",
            Class::ConnectFailed => "connect-failed",
            Class::NoLocalPort => "no-local-port",
            Class::SendFailed => "send-failed",
            Class::SendTimeout => "send-timeout",
            Class::PrematureClose => "premature-close",
            Class::Reset => "reset",
            Class::ReadTimeout => "read-timeout",
            Class::InvalidHeader => "invalid-header",
            Class::TooBigHeader => "too-big-header",
            Class::Status => "status",
            Class::PrematureCloseBody => "premature-close-body",
            Class::ResetBody => "reset-body",
            Class::ReadTimeoutBody => "read-timeout-body",
            Class::AuthStatus => "auth-status",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Not a failure class name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown failure class {0:?}")]
pub struct UnknownClass(pub String);

impl std::str::FromStr for Class {
    type Err = UnknownClass;
    fn from_str(s: &str) -> Result<Class, UnknownClass> {
        Class::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| UnknownClass(s.to_string()))
    }
}

/// A failure before the response header reached the client (retryable).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Failure {
    /// No peer could be picked.
    NoLive,
    ConnectRefused,
    ConnectTimeout,
    /// `connect()` failed otherwise (errno).
    ConnectFailed(i32),
    /// `writev()` failed while sending the request (errno: 32 EPIPE, 104 ECONNRESET).
    SendFailed(i32),
    SendTimeout,
    /// EOF before the complete response header.
    PrematureClose,
    /// `recv()` failed while reading the header (errno, 104 = RST).
    RecvFailed(i32),
    ReadTimeout,
    InvalidHeader,
    /// An invalid header line, with nginx 1.22's excerpt (`X-Bad\x20...`).
    InvalidHeaderLine(String),
    TooBigHeader,
    /// The upstream answered with a status listed in `proxy_next_upstream`.
    Status(u16),
}

/// A failure after the header was passed to the client: never retried, the
/// client gets a truncated response (`ngx_http_upstream_process_non_buffered_request`
/// finalizes without a retry once the header has been sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BodyFailure {
    PrematureClose,
    /// `ngx_http_proxy_chunked_filter` could not parse the chunked body.
    InvalidChunked,
    RecvFailed(i32),
    ReadTimeout,
}

/// The class of a failed `connect()` by its errno (`None`: not given).
fn connect_class(errno: Option<i32>) -> Class {
    match errno {
        Some(111) => Class::ConnectRefused,
        Some(99) => Class::NoLocalPort,
        _ => Class::ConnectFailed,
    }
}

/// Whether a non-blocking TCP `connect(2)` returns this errno itself
/// rather than `EINPROGRESS` and a later SO_ERROR: no local port left
/// (99, EADDRNOTAVAIL: the ephemeral range is used up for that
/// destination), no route (101), refused by a local firewall rule (1, 13),
/// a full unix-socket queue (11).
pub fn connect_fails_at_once(errno: i32) -> bool {
    matches!(errno, 1 | 11 | 13 | 99 | 101)
}

/// The errnos `ngx_event_connect_peer` logs at `[error]`; any other
/// `connect()` failure is `[crit]` (ECONNREFUSED, EAGAIN, ECONNRESET,
/// ENETDOWN, ENETUNREACH, EHOSTDOWN, EHOSTUNREACH).
pub fn connect_error_is_err(errno: i32) -> bool {
    matches!(errno, 111 | 11 | 104 | 100 | 101 | 112 | 113)
}

pub fn strerror(errno: i32) -> &'static str {
    match errno {
        32 => "Broken pipe",
        1 => "Operation not permitted",
        11 => "Resource temporarily unavailable",
        13 => "Permission denied",
        98 => "Address already in use",
        99 => "Cannot assign requested address",
        104 => "Connection reset by peer",
        110 => "Connection timed out",
        101 => "Network is unreachable",
        111 => "Connection refused",
        113 => "No route to host",
        _ => "Unknown error",
    }
}

pub fn errno_of(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(match e.kind() {
        io::ErrorKind::BrokenPipe => 32,
        io::ErrorKind::ConnectionReset => 104,
        io::ErrorKind::TimedOut => 110,
        io::ErrorKind::ConnectionRefused => 111,
        _ => 0,
    })
}

impl Failure {
    pub fn ft(&self) -> Ft {
        match self {
            Failure::NoLive => Ft::NOLIVE,
            Failure::ConnectTimeout | Failure::SendTimeout | Failure::ReadTimeout => Ft::TIMEOUT,
            Failure::InvalidHeader | Failure::InvalidHeaderLine(_) | Failure::TooBigHeader => Ft::INVALID_HEADER,
            Failure::Status(s) => Ft::for_status(*s).unwrap_or(Ft::ERROR),
            _ => Ft::ERROR,
        }
    }

    /// nginx's `log->action` for the phase the failure happened in.
    pub fn action(&self) -> &'static str {
        match self {
            Failure::NoLive | Failure::ConnectRefused | Failure::ConnectTimeout | Failure::ConnectFailed(_) => Phase::Connecting,
            Failure::SendFailed(_) | Failure::SendTimeout => Phase::SendingRequest,
            _ => Phase::ReadingHeader,
        }
        .action()
    }

    /// The `[error]` message, without the `while ...` suffix; `None` for a
    /// status-based retry, which nginx does not log.
    pub fn message(&self) -> Option<String> {
        Some(match self {
            Failure::NoLive => "no live upstreams".into(),
            Failure::ConnectRefused => "connect() failed (111: Connection refused)".into(),
            Failure::ConnectFailed(e) => format!("connect() failed ({e}: {})", strerror(*e)),
            Failure::SendFailed(e) => format!("writev() failed ({e}: {})", strerror(*e)),
            Failure::RecvFailed(e) => recv_failed(*e),
            Failure::ConnectTimeout | Failure::SendTimeout | Failure::ReadTimeout => TIMED_OUT.into(),
            Failure::PrematureClose => PREMATURE.into(),
            Failure::InvalidHeader => "upstream sent invalid header".into(),
            Failure::InvalidHeaderLine(excerpt) => format!("upstream sent invalid header: \"{excerpt}\""),
            Failure::TooBigHeader => TOO_BIG.into(),
            Failure::Status(_) => return None,
        })
    }

    /// The error.log line of this failure of an attempt on `peer` (its
    /// name, `127.0.0.1:8080`): the level and `message while action`. A
    /// `connect(2)` that fails at once is logged by `ngx_event_connect_peer`
    /// itself, naming the peer, at `[crit]` unless its errno is one it
    /// lists; one that fails later (loopback's RST for 111) is read from
    /// SO_ERROR by `ngx_http_upstream_test_connect`: `connect() failed`,
    /// `[error]` (both observed on nginx 1.22.1).
    pub fn log_line(&self, peer: &str) -> Option<(Level, String)> {
        match self {
            Failure::ConnectFailed(e) if connect_fails_at_once(*e) => {
                let level = if connect_error_is_err(*e) { Level::Error } else { Level::Crit };
                Some((level, format!("connect() to {peer} failed ({e}: {}) while {}", strerror(*e), self.action())))
            }
            _ => Some((Level::Error, self.log_text()?)),
        }
    }

    /// `message while action`, as it appears in error.log.
    pub fn log_text(&self) -> Option<String> {
        self.message().map(|m| format!("{m} while {}", self.action()))
    }

    pub fn class(&self) -> Class {
        match self {
            Failure::NoLive => Class::NoLiveUpstreams,
            Failure::ConnectRefused => Class::ConnectRefused,
            Failure::ConnectTimeout => Class::ConnectTimeout,
            Failure::ConnectFailed(e) => connect_class(Some(*e)),
            Failure::SendFailed(_) => Class::SendFailed,
            Failure::SendTimeout => Class::SendTimeout,
            Failure::PrematureClose => Class::PrematureClose,
            Failure::RecvFailed(_) => Class::Reset,
            Failure::ReadTimeout => Class::ReadTimeout,
            Failure::InvalidHeader | Failure::InvalidHeaderLine(_) => Class::InvalidHeader,
            Failure::TooBigHeader => Class::TooBigHeader,
            Failure::Status(_) => Class::Status,
        }
    }
}

const TIMED_OUT_MSG: &str = "upstream timed out";
const TIMED_OUT: &str = "upstream timed out (110: Connection timed out)";
const PREMATURE: &str = "upstream prematurely closed connection";
const TOO_BIG: &str = "upstream sent too big header";
const INVALID_CHUNKED: &str = "upstream sent invalid chunked response";

fn recv_failed(errno: i32) -> String {
    format!("recv() failed ({errno}: {})", strerror(errno))
}

impl BodyFailure {
    pub fn log_text(&self) -> String {
        let m = match self {
            BodyFailure::PrematureClose => PREMATURE.to_string(),
            BodyFailure::InvalidChunked => INVALID_CHUNKED.to_string(),
            // With proxy_buffering on, the event pipe reads with readv().
            BodyFailure::RecvFailed(e) => format!("readv() failed ({e}: {})", strerror(*e)),
            BodyFailure::ReadTimeout => TIMED_OUT.to_string(),
        };
        format!("{m} while {}", Phase::ReadingBody.action())
    }

    pub fn class(&self) -> Class {
        match self {
            BodyFailure::PrematureClose | BodyFailure::InvalidChunked => Class::PrematureCloseBody,
            BodyFailure::RecvFailed(_) => Class::ResetBody,
            BodyFailure::ReadTimeout => Class::ReadTimeoutBody,
        }
    }
}

/// What failed, read back from an error.log text: the inverse of
/// [`Failure::log_text`] and [`BodyFailure::log_text`], from the same
/// strings, plus the variants nginx 1.22+ writes that the emulator does not
/// (`send()`/`readv()`, the synchronous `connect() to ADDR failed`, `(110)`
/// and `(113)` connect errors, 1.23's header checks).
impl Class {
    /// The class of `text` ("message while action", as after `*CONN` in a
    /// line; a trailing `, client: ...` context is ignored). `None` for a
    /// text that is no upstream failure (a `[warn]`, `[info]` client close,
    /// `upstream sent no valid HTTP/1.0 header`, which nginx passes on as
    /// HTTP/0.9).
    pub fn from_log_text(text: &str) -> Option<Class> {
        let text = text.find(", client: ").map_or(text, |i| &text[..i]);
        let (msg, action) = text.rfind(" while ").map_or((text, ""), |i| (&text[..i], &text[i + 7..]));
        let phase = [Phase::Connecting, Phase::SendingRequest, Phase::ReadingHeader, Phase::ReadingBody].into_iter().find(|p| p.action() == action);
        // With proxy_buffering off nginx may notice the upstream's end while
        // writing to the client (`ngx_http_upstream_process_non_buffered_request`
        // sets "sending to client"): a body failure too (observed on nginx
        // 1.22.1: slow-client).
        let body = phase == Some(Phase::ReadingBody) || action == "sending to client";
        let errno = || msg.rfind(" (").and_then(|i| msg[i + 2..].split(':').next()?.parse::<i32>().ok());
        Some(match () {
            _ if msg.starts_with("no live upstreams") => Class::NoLiveUpstreams,
            _ if crate::auth::unexpected_status(msg).is_some() => Class::AuthStatus,
            _ if msg.starts_with("connect() ") => connect_class(errno()),
            _ if msg.starts_with(TIMED_OUT_MSG) => match phase? {
                Phase::Connecting => Class::ConnectTimeout,
                Phase::SendingRequest => Class::SendTimeout,
                Phase::ReadingHeader => Class::ReadTimeout,
                Phase::ReadingBody => Class::ReadTimeoutBody,
            },
            _ if msg == PREMATURE && body => Class::PrematureCloseBody,
            _ if msg == PREMATURE => Class::PrematureClose,
            _ if ["recv() failed", "readv() failed"].iter().any(|m| msg.starts_with(m)) => {
                if body {
                    Class::ResetBody
                } else {
                    Class::Reset
                }
            }
            _ if ["writev() failed", "send() failed", "sendfile() failed"].iter().any(|m| msg.starts_with(m)) && phase == Some(Phase::SendingRequest) => {
                Class::SendFailed
            }
            _ if msg == TOO_BIG => Class::TooBigHeader,
            _ if msg == INVALID_CHUNKED && body => BodyFailure::InvalidChunked.class(),
            // invalid header (with its excerpt), 1.23's duplicate header line,
            // Content-Length with Transfer-Encoding, invalid status, ...
            _ if msg.starts_with("upstream sent ") && !msg.starts_with(crate::response::NO_VALID_HEADER) && phase == Some(Phase::ReadingHeader) => {
                Class::InvalidHeader
            }
            _ => return None,
        })
    }
}

/// The class of an nginx error-log line (the whole line, or its text),
/// for comparing real nginx's error.log with the emulator's.
pub fn class_of_log_line(line: &str) -> Option<Class> {
    match crate::logparse::parse_error_line(line) {
        Ok(l) => Class::from_log_text(l.text),
        Err(_) => Class::from_log_text(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_match_nginx() {
        let table = [
            (Failure::PrematureClose, "upstream prematurely closed connection while reading response header from upstream", Ft::ERROR),
            (Failure::RecvFailed(104), "recv() failed (104: Connection reset by peer) while reading response header from upstream", Ft::ERROR),
            (Failure::SendFailed(32), "writev() failed (32: Broken pipe) while sending request to upstream", Ft::ERROR),
            (Failure::ConnectRefused, "connect() failed (111: Connection refused) while connecting to upstream", Ft::ERROR),
            (Failure::ReadTimeout, "upstream timed out (110: Connection timed out) while reading response header from upstream", Ft::TIMEOUT),
            (Failure::ConnectTimeout, "upstream timed out (110: Connection timed out) while connecting to upstream", Ft::TIMEOUT),
            (Failure::NoLive, "no live upstreams while connecting to upstream", Ft::NOLIVE),
            (Failure::TooBigHeader, "upstream sent too big header while reading response header from upstream", Ft::INVALID_HEADER),
        ];
        for (f, line, ft) in table {
            assert_eq!(f.log_text().as_deref(), Some(line));
            assert_eq!(f.ft(), ft, "{line}");
            assert_eq!(class_of_log_line(line), Some(f.class()), "{line}");
        }
        assert_eq!(BodyFailure::PrematureClose.log_text(), "upstream prematurely closed connection while reading upstream");
        assert_eq!(class_of_log_line(&BodyFailure::PrematureClose.log_text()), Some(Class::PrematureCloseBody));
        for c in Class::ALL {
            assert_eq!(c.as_str().parse::<Class>(), Ok(c));
            assert_eq!(serde_json::to_string(&c).unwrap(), format!("\"{c}\""));
        }
        assert_eq!(Failure::Status(503).log_text(), None);
    }

    /// `ngx_event_connect_peer`'s own line for a connect() that fails at
    /// once, `ngx_http_upstream_test_connect`'s for one that fails later.
    #[test]
    fn connect_failures_at_once_name_the_peer() {
        let peer = "127.0.0.1:18080";
        let table = [
            // Observed on nginx 1.22.1, ip_local_port_range 40000 40003, no upstream keepalive.
            (Failure::ConnectFailed(99), Level::Crit, "connect() to 127.0.0.1:18080 failed (99: Cannot assign requested address) while connecting to upstream"),
            (Failure::ConnectFailed(101), Level::Error, "connect() to 127.0.0.1:18080 failed (101: Network is unreachable) while connecting to upstream"),
            (Failure::ConnectFailed(13), Level::Crit, "connect() to 127.0.0.1:18080 failed (13: Permission denied) while connecting to upstream"),
            (Failure::ConnectFailed(113), Level::Error, "connect() failed (113: No route to host) while connecting to upstream"),
            (Failure::ConnectRefused, Level::Error, "connect() failed (111: Connection refused) while connecting to upstream"),
            (Failure::ReadTimeout, Level::Error, "upstream timed out (110: Connection timed out) while reading response header from upstream"),
        ];
        for (f, level, line) in table {
            assert_eq!(f.log_line(peer), Some((level, line.to_string())), "{f:?}");
            assert_eq!(class_of_log_line(line), Some(f.class()), "{line}");
        }
        assert_eq!(Failure::Status(502).log_line(peer), None);
    }

    /// Every text the renderers write reads back as its class: the strings
    /// live once, here.
    #[test]
    fn every_rendered_text_reads_back_as_its_class() {
        let failures = [
            Failure::NoLive,
            Failure::ConnectRefused,
            Failure::ConnectTimeout,
            Failure::ConnectFailed(110),
            Failure::ConnectFailed(113),
            Failure::SendFailed(32),
            Failure::SendFailed(104),
            Failure::SendTimeout,
            Failure::PrematureClose,
            Failure::RecvFailed(104),
            Failure::ReadTimeout,
            Failure::InvalidHeader,
            Failure::InvalidHeaderLine("X-Bad\\x20...".into()),
            Failure::TooBigHeader,
        ];
        for f in failures {
            let text = f.log_text().unwrap();
            assert_eq!(Class::from_log_text(&text), Some(f.class()), "{text}");
        }
        for b in [BodyFailure::PrematureClose, BodyFailure::InvalidChunked, BodyFailure::RecvFailed(104), BodyFailure::ReadTimeout] {
            assert_eq!(Class::from_log_text(&b.log_text()), Some(b.class()), "{}", b.log_text());
        }
    }

    /// nginx 1.22+'s own wordings, including those the emulator never writes.
    #[test]
    fn nginx_texts_the_emulator_does_not_write() {
        let table: &[(&str, Option<Class>)] = &[
            ("connect() to 127.0.0.1:8080 failed (111: Connection refused) while connecting to upstream", Some(Class::ConnectRefused)),
            ("connect() failed (110: Connection timed out) while connecting to upstream", Some(Class::ConnectFailed)),
            ("connect() failed (113: No route to host) while connecting to upstream", Some(Class::ConnectFailed)),
            ("connect() to 10.0.0.1:80 failed (99: Cannot assign requested address) while connecting to upstream", Some(Class::NoLocalPort)),
            ("connect() to unix:/run/app.sock failed (11: Resource temporarily unavailable) while connecting to upstream", Some(Class::ConnectFailed)),
            ("upstream timed out (110: Connection timed out) while sending request to upstream", Some(Class::SendTimeout)),
            ("upstream timed out (110: Connection timed out) while reading upstream", Some(Class::ReadTimeoutBody)),
            ("send() failed (104: Connection reset by peer) while sending request to upstream", Some(Class::SendFailed)),
            ("recv() failed (104: Connection reset by peer) while reading upstream", Some(Class::ResetBody)),
            ("readv() failed (104: Connection reset by peer) while reading upstream", Some(Class::ResetBody)),
            ("upstream prematurely closed connection while sending to client", Some(Class::PrematureCloseBody)),
            ("upstream sent duplicate header line: \"Content-Length: 3\", previous value: \"Content-Length: 3\" while reading response header from upstream", Some(Class::InvalidHeader)),
            ("upstream sent \"Content-Length\" and \"Transfer-Encoding\" headers at the same time while reading response header from upstream", Some(Class::InvalidHeader)),
            ("upstream prematurely closed connection while reading response header from upstream, client: 1.2.3.4, server: x", Some(Class::PrematureClose)),
            ("upstream sent no valid HTTP/1.0 header while reading response header from upstream", None),
            ("upstream server temporarily disabled while connecting to upstream", None),
            ("an upstream response is buffered to a temporary file /var/cache/nginx/proxy_temp/1/00/0000000001 while reading upstream", None),
            ("epoll_wait() reported that client prematurely closed connection, so upstream connection is closed too while sending request to upstream", None),
            ("client prematurely closed connection while reading upstream", None),
            ("upstream sent more data than specified in \"Content-Length\" header while reading upstream", None),
        ];
        for (text, class) in table {
            assert_eq!(Class::from_log_text(text), *class, "{text}");
        }
        let line = "2026/11/23 10:00:00 [error] 7#7: *2 upstream prematurely closed connection while reading upstream, client: 127.0.0.1, server: , request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:1/\", host: \"h\"";
        assert_eq!(class_of_log_line(line), Some(Class::PrematureCloseBody));
    }
}
