//! Failure classification: what went wrong in an attempt, its `ft_type`
//! (`NGX_HTTP_UPSTREAM_FT_*`), and the exact error.log text nginx writes at
//! the failing call site (`ngx_http_upstream_connect`,
//! `ngx_http_upstream_send_request`, `ngx_http_upstream_process_header`,
//! `ngx_http_upstream_next`, `ngx_http_upstream_process_non_buffered_request`).

use crate::retry::Ft;
use std::fmt;
use std::io;

/// A short, stable name for a failure, as reports, scenario files and the
/// log reader use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    NoLiveUpstreams,
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
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
}

impl Class {
    pub const ALL: [Class; 15] = [
        Class::NoLiveUpstreams,
        Class::ConnectRefused,
        Class::ConnectTimeout,
        Class::ConnectFailed,
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
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::NoLiveUpstreams => "no-live-upstreams",
            Class::ConnectRefused => "connect-refused",
            Class::ConnectTimeout => "connect-timeout",
            Class::ConnectFailed => "connect-failed",
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

pub fn strerror(errno: i32) -> &'static str {
    match errno {
        32 => "Broken pipe",
        104 => "Connection reset by peer",
        110 => "Connection timed out",
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
            Failure::NoLive | Failure::ConnectRefused | Failure::ConnectTimeout | Failure::ConnectFailed(_) => {
                "connecting to upstream"
            }
            Failure::SendFailed(_) | Failure::SendTimeout => "sending request to upstream",
            _ => "reading response header from upstream",
        }
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
            Failure::TooBigHeader => "upstream sent too big header".into(),
            Failure::Status(_) => return None,
        })
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
            Failure::ConnectFailed(_) => Class::ConnectFailed,
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

const TIMED_OUT: &str = "upstream timed out (110: Connection timed out)";
const PREMATURE: &str = "upstream prematurely closed connection";

fn recv_failed(errno: i32) -> String {
    format!("recv() failed ({errno}: {})", strerror(errno))
}

impl BodyFailure {
    pub fn log_text(&self) -> String {
        let m = match self {
            BodyFailure::PrematureClose => PREMATURE.to_string(),
            BodyFailure::InvalidChunked => "upstream sent invalid chunked response".to_string(),
            // With proxy_buffering on, the event pipe reads with readv().
            BodyFailure::RecvFailed(e) => format!("readv() failed ({e}: {})", strerror(*e)),
            BodyFailure::ReadTimeout => TIMED_OUT.to_string(),
        };
        format!("{m} while reading upstream")
    }

    pub fn class(&self) -> Class {
        match self {
            BodyFailure::PrematureClose | BodyFailure::InvalidChunked => Class::PrematureCloseBody,
            BodyFailure::RecvFailed(_) => Class::ResetBody,
            BodyFailure::ReadTimeout => Class::ReadTimeoutBody,
        }
    }
}

/// The class of an nginx error-log line, read back from its text (for
/// comparing real nginx's error.log with the emulator's).
pub fn class_of_log_line(line: &str) -> Option<Class> {
    let body = line.contains("while reading upstream");
    Some(match () {
        _ if line.contains("no live upstreams") => Class::NoLiveUpstreams,
        _ if line.contains("connect() ") && line.contains("Connection refused") => Class::ConnectRefused,
        _ if line.contains("timed out") && line.contains("while connecting") => Class::ConnectTimeout,
        _ if line.contains("connect() failed") => Class::ConnectFailed,
        _ if line.contains("timed out") && line.contains("while sending") => Class::SendTimeout,
        _ if line.contains("timed out") && body => Class::ReadTimeoutBody,
        _ if line.contains("timed out") => Class::ReadTimeout,
        _ if line.contains("writev() failed") || line.contains("send() failed") => Class::SendFailed,
        _ if line.contains("prematurely closed") && body => Class::PrematureCloseBody,
        _ if line.contains("prematurely closed") => Class::PrematureClose,
        _ if line.contains("recv() failed") && body => Class::ResetBody,
        _ if line.contains("recv() failed") => Class::Reset,
        _ if line.contains("too big header") => Class::TooBigHeader,
        _ if line.contains("invalid header") => Class::InvalidHeader,
        _ => return None,
    })
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
}
