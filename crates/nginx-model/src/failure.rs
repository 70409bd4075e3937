//! Failure classification (semantics.md §1–§2, R12–R18): what went wrong in
//! an attempt, its `ft_type`, and the exact nginx error-log text.

use crate::retry::Ft;
use std::io;

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
    TooBigHeader,
    /// The upstream answered with a status listed in `proxy_next_upstream`.
    Status(u16),
}

/// A failure after the header was passed to the client: never retried, the
/// client gets a truncated response (R18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BodyFailure {
    PrematureClose,
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
            Failure::InvalidHeader | Failure::TooBigHeader => Ft::INVALID_HEADER,
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
        let timed_out = "upstream timed out (110: Connection timed out)".to_string();
        Some(match self {
            Failure::NoLive => "no live upstreams".into(),
            Failure::ConnectRefused => "connect() failed (111: Connection refused)".into(),
            Failure::ConnectFailed(e) => format!("connect() failed ({e}: {})", strerror(*e)),
            Failure::SendFailed(e) => format!("writev() failed ({e}: {})", strerror(*e)),
            Failure::RecvFailed(e) => format!("recv() failed ({e}: {})", strerror(*e)),
            Failure::ConnectTimeout | Failure::SendTimeout | Failure::ReadTimeout => timed_out,
            Failure::PrematureClose => "upstream prematurely closed connection".into(),
            Failure::InvalidHeader => "upstream sent invalid header".into(),
            Failure::TooBigHeader => "upstream sent too big header".into(),
            Failure::Status(_) => return None,
        })
    }

    /// `message while action`, as it appears in error.log.
    pub fn log_text(&self) -> Option<String> {
        self.message().map(|m| format!("{m} while {}", self.action()))
    }

    /// A short, stable class name for reports and tests.
    pub fn class(&self) -> &'static str {
        match self {
            Failure::NoLive => "no-live-upstreams",
            Failure::ConnectRefused => "connect-refused",
            Failure::ConnectTimeout => "connect-timeout",
            Failure::ConnectFailed(_) => "connect-failed",
            Failure::SendFailed(_) => "send-failed",
            Failure::SendTimeout => "send-timeout",
            Failure::PrematureClose => "premature-close",
            Failure::RecvFailed(_) => "reset",
            Failure::ReadTimeout => "read-timeout",
            Failure::InvalidHeader => "invalid-header",
            Failure::TooBigHeader => "too-big-header",
            Failure::Status(_) => "status",
        }
    }
}

impl BodyFailure {
    pub fn log_text(&self) -> String {
        let m = match self {
            BodyFailure::PrematureClose => "upstream prematurely closed connection".to_string(),
            BodyFailure::RecvFailed(e) => format!("recv() failed ({e}: {})", strerror(*e)),
            BodyFailure::ReadTimeout => "upstream timed out (110: Connection timed out)".to_string(),
        };
        format!("{m} while reading upstream")
    }

    pub fn class(&self) -> &'static str {
        match self {
            BodyFailure::PrematureClose => "premature-close-body",
            BodyFailure::RecvFailed(_) => "reset-body",
            BodyFailure::ReadTimeout => "read-timeout-body",
        }
    }
}

/// The class of an nginx error-log line, read back from its text (for
/// comparing real nginx's error.log with the emulator's).
pub fn class_of_log_line(line: &str) -> Option<&'static str> {
    let body = line.contains("while reading upstream");
    Some(match () {
        _ if line.contains("no live upstreams") => "no-live-upstreams",
        _ if line.contains("connect() ") && line.contains("Connection refused") => "connect-refused",
        _ if line.contains("timed out") && line.contains("while connecting") => "connect-timeout",
        _ if line.contains("timed out") && line.contains("while sending") => "send-timeout",
        _ if line.contains("timed out") && body => "read-timeout-body",
        _ if line.contains("timed out") => "read-timeout",
        _ if line.contains("writev() failed") || line.contains("send() failed") => "send-failed",
        _ if line.contains("prematurely closed") && body => "premature-close-body",
        _ if line.contains("prematurely closed") => "premature-close",
        _ if line.contains("recv() failed") && body => "reset-body",
        _ if line.contains("recv() failed") => "reset",
        _ if line.contains("too big header") => "too-big-header",
        _ if line.contains("invalid header") => "invalid-header",
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
        assert_eq!(class_of_log_line(&BodyFailure::PrematureClose.log_text()), Some("premature-close-body"));
        assert_eq!(Failure::Status(503).log_text(), None);
    }
}
