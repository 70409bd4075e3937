//! Reading nginx's logs back: the inverse of [`crate::logs`]. An error.log
//! line into its time, level, pid, `*conn`, text and request context
//! (`ngx_log_error_core` + `ngx_http_log_error`); an access.log line into
//! the values of its `log_format`; the timestamps nginx writes; the
//! `$upstream_*` lists. Pure and allocation-free per line: values borrow
//! from the line.
//!
//! The texts themselves are read where they are written: an upstream
//! failure's class by [`Class::from_log_text`], the other upstream-related
//! lines by [`ErrorText::of`] from the constants in [`crate::logs`].

use crate::failure::Class;
use crate::logs::{Level, Piece, BODY_BUFFERED, CLIENT_CLOSED, MON, RESPONSE_BUFFERED, SERVER_DISABLED};

/// Why a line could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub &'static str);

/// One error.log line, its parts borrowed from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorLine<'a> {
    /// `YYYY/MM/DD HH:MM:SS` (see [`parse_error_time`]).
    pub time: &'a str,
    pub level: Level,
    pub pid: u32,
    pub tid: u64,
    /// The connection number (`*N`), absent on process-level lines.
    pub conn: Option<u64>,
    /// What happened: "message[ (errno: strerror)][ while action]".
    pub text: &'a str,
    pub client: Option<&'a str>,
    pub server: Option<&'a str>,
    /// The request line, as the client sent it.
    pub request: Option<&'a str>,
    /// The subrequest's URI (`auth_request`'s), on a subrequest's line.
    pub subrequest: Option<&'a str>,
    /// `http://peer/uri` of the attempt, once an upstream was chosen.
    pub upstream: Option<&'a str>,
    pub host: Option<&'a str>,
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The context keys nginx writes after `request: "..."`, in order
/// (`ngx_http_log_error_handler`).
const AFTER_REQUEST: [&str; 4] = [", subrequest: \"", ", upstream: \"", ", host: \"", ", referrer: \""];

/// A quoted context value: up to the `"` that ends the line or is followed
/// by the next key (a request line may itself hold quotes).
fn quoted(rest: &str) -> Option<(&str, &str)> {
    let mut from = 0;
    while let Some(i) = rest[from..].find('"') {
        let end = from + i;
        let after = &rest[end + 1..];
        if after.is_empty() || AFTER_REQUEST.iter().any(|k| after.starts_with(k)) {
            return Some((&rest[..end], after));
        }
        from = end + 1;
    }
    None
}

/// Reads one error.log line (`ngx_log_error_core`): `TIME [level] PID#TID:
/// [*CONN ]TEXT[, client: C, server: S[, request: "R"][, upstream: "U"][,
/// host: "H"]...]`.
pub fn parse_error_line(line: &str) -> Result<ErrorLine<'_>, Malformed> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let time = line.get(..19).ok_or(Malformed("too short for an error.log line"))?;
    if parse_error_time(time).is_none() {
        return Err(Malformed("no YYYY/MM/DD HH:MM:SS time"));
    }
    let rest = line[19..].strip_prefix(" [").ok_or(Malformed("no [level]"))?;
    let close = rest.find("] ").ok_or(Malformed("no [level]"))?;
    let level = Level::parse(&rest[..close]).ok_or(Malformed("unknown level"))?;
    let rest = &rest[close + 2..];
    let hash = rest.find('#').ok_or(Malformed("no PID#TID"))?;
    let colon = rest.find(": ").ok_or(Malformed("no PID#TID:"))?;
    if colon < hash {
        return Err(Malformed("no PID#TID"));
    }
    let pid = digits(&rest[..hash]).and_then(|p| u32::try_from(p).ok()).ok_or(Malformed("bad pid"))?;
    let tid = digits(&rest[hash + 1..colon]).ok_or(Malformed("bad tid"))?;
    let mut rest = &rest[colon + 2..];
    let mut conn = None;
    if let Some(r) = rest.strip_prefix('*') {
        let sp = r.find(' ').unwrap_or(r.len());
        conn = Some(digits(&r[..sp]).ok_or(Malformed("bad *connection"))?);
        rest = r.get(sp + 1..).unwrap_or("");
    }
    let mut l = ErrorLine { time, level, pid, tid, conn, text: rest, client: None, server: None, request: None, subrequest: None, upstream: None, host: None };
    let Some(at) = rest.find(", client: ") else { return Ok(l) };
    l.text = &rest[..at];
    let ctx = &rest[at + ", client: ".len()..];
    let (client, ctx) = match ctx.find(", server: ") {
        Some(i) => (&ctx[..i], &ctx[i + ", server: ".len()..]),
        None => (ctx, ""),
    };
    l.client = Some(client);
    let (server, mut ctx) = match ctx.find(", request: \"") {
        Some(i) => (&ctx[..i], &ctx[i + ", request: \"".len()..]),
        None => (ctx.split(", ").next().unwrap_or(ctx), ""),
    };
    l.server = Some(server);
    if !ctx.is_empty() {
        let (request, after) = quoted(ctx).ok_or(Malformed("unterminated request: \"...\""))?;
        l.request = Some(request);
        ctx = after;
    }
    // The rest of the context: each key at most once, in nginx's order.
    while let Some(k) = AFTER_REQUEST.iter().find(|k| ctx.starts_with(**k)) {
        let (value, after) = quoted(&ctx[k.len()..]).ok_or(Malformed("unterminated context value"))?;
        match *k {
            ", subrequest: \"" => l.subrequest = Some(value),
            ", upstream: \"" => l.upstream = Some(value),
            ", host: \"" => l.host = Some(value),
            _ => {}
        }
        ctx = after;
    }
    Ok(l)
}

/// What an error.log text says about the upstream path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorText {
    /// An attempt failed (or a response was cut): its class.
    Failure(Class),
    /// The client went away first (nginx logs 499).
    ClientClosed,
    /// A peer reached `max_fails`: `upstream server temporarily disabled`.
    ServerDisabled,
    /// `an upstream response is buffered to a temporary file` (or a request
    /// body): harmless, counted.
    Buffered,
    /// Anything else.
    Other,
}

impl ErrorText {
    pub fn of(text: &str) -> ErrorText {
        if let Some(c) = Class::from_log_text(text) {
            return ErrorText::Failure(c);
        }
        if text.starts_with(SERVER_DISABLED) {
            ErrorText::ServerDisabled
        } else if text.starts_with(RESPONSE_BUFFERED) || text.starts_with(BODY_BUFFERED) {
            ErrorText::Buffered
        } else if text.starts_with(CLIENT_CLOSED) || text.find(CLIENT_CLOSED).is_some_and(|i| text[..i].starts_with("epoll_wait() reported that ") || text[..i].starts_with("kevent() reported that ")) {
            ErrorText::ClientClosed
        } else {
            ErrorText::Other
        }
    }
}

// ---- time ----

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |n, &c| c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0')))
}

fn seconds(y: u32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<i64> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
        return None;
    }
    Some(days_from_civil(i64::from(y), mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

/// error.log's `YYYY/MM/DD HH:MM:SS` (nginx's local time) as seconds since
/// the epoch of that wall clock (read as if it were UTC).
pub fn parse_error_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'/' || b[7] != b'/' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    seconds(num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?, num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?)
}

/// A `+hhmm` / `-hhmm` or `+hh:mm` offset in seconds.
fn offset(b: &[u8]) -> Option<i32> {
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = match b.len() {
        5 => (num(&b[1..3])?, num(&b[3..5])?),
        6 if b[3] == b':' => (num(&b[1..3])?, num(&b[4..6])?),
        _ => return None,
    };
    Some(sign * i32::try_from(h * 3600 + m * 60).ok()?)
}

/// `$time_local` (`23/Nov/2026:10:00:00 +0000`): the wall clock's seconds
/// (read as if UTC, comparable with [`parse_error_time`]) and the offset.
pub fn parse_time_local(s: &str) -> Option<(i64, i32)> {
    let b = s.as_bytes();
    if b.len() != 26 || b[2] != b'/' || b[6] != b'/' || b[11] != b':' || b[14] != b':' || b[17] != b':' || b[20] != b' ' {
        return None;
    }
    let mon = MON.iter().position(|m| m.as_bytes() == &b[3..6])? as u32 + 1;
    let wall = seconds(num(&b[7..11])?, mon, num(&b[0..2])?, num(&b[12..14])?, num(&b[15..17])?, num(&b[18..20])?)?;
    Some((wall, offset(&b[21..])?))
}

/// `$time_iso8601` (`2026-11-23T10:00:00+00:00`): wall seconds and offset.
pub fn parse_time_iso8601(s: &str) -> Option<(i64, i32)> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let wall = seconds(num(&b[0..4])?, num(&b[5..7])?, num(&b[8..10])?, num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?)?;
    let off = if &b[19..] == b"Z" { 0 } else { offset(&b[19..])? };
    Some((wall, off))
}

/// `$msec`, `$request_time`, an `$upstream_*_time` entry: seconds with a
/// fraction (`1794787200.123`, `0.000`); `None` for `-`.
pub fn parse_secs(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() || int.len() > 12 || frac.len() > 9 {
        return None;
    }
    let i = num(int.as_bytes()).map(f64::from).or_else(|| digits(int).map(|n| n as f64))?;
    let f = if frac.is_empty() { 0.0 } else { f64::from(num(frac.as_bytes())?) / 10f64.powi(frac.len() as i32) };
    Some(i + f)
}

/// The entries of an `$upstream_*` list: one per attempt, `, ` between
/// attempts and ` : ` between upstream groups (internal redirects).
pub fn upstream_entries(s: &str) -> impl Iterator<Item = &str> {
    s.split(", ").flat_map(|g| g.split(" : "))
}

// ---- access log ----

/// The variables the log reader interprets; any other is read and skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    Msec,
    TimeLocal,
    TimeIso8601,
    Request,
    RequestMethod,
    Uri,
    RequestUri,
    Args,
    Status,
    RemoteAddr,
    RequestTime,
    UpstreamStatus,
    UpstreamResponseTime,
    UpstreamConnectTime,
    UpstreamHeaderTime,
    UpstreamAddr,
    BodyBytesSent,
    BytesSent,
    Connection,
    ConnectionRequests,
    Host,
    HttpHost,
}

impl Var {
    pub const ALL: [Var; 22] = [
        Var::Msec,
        Var::TimeLocal,
        Var::TimeIso8601,
        Var::Request,
        Var::RequestMethod,
        Var::Uri,
        Var::RequestUri,
        Var::Args,
        Var::Status,
        Var::RemoteAddr,
        Var::RequestTime,
        Var::UpstreamStatus,
        Var::UpstreamResponseTime,
        Var::UpstreamConnectTime,
        Var::UpstreamHeaderTime,
        Var::UpstreamAddr,
        Var::BodyBytesSent,
        Var::BytesSent,
        Var::Connection,
        Var::ConnectionRequests,
        Var::Host,
        Var::HttpHost,
    ];

    /// The nginx variable's name, without `$`.
    pub fn name(self) -> &'static str {
        match self {
            Var::Msec => "msec",
            Var::TimeLocal => "time_local",
            Var::TimeIso8601 => "time_iso8601",
            Var::Request => "request",
            Var::RequestMethod => "request_method",
            Var::Uri => "uri",
            Var::RequestUri => "request_uri",
            Var::Args => "args",
            Var::Status => "status",
            Var::RemoteAddr => "remote_addr",
            Var::RequestTime => "request_time",
            Var::UpstreamStatus => "upstream_status",
            Var::UpstreamResponseTime => "upstream_response_time",
            Var::UpstreamConnectTime => "upstream_connect_time",
            Var::UpstreamHeaderTime => "upstream_header_time",
            Var::UpstreamAddr => "upstream_addr",
            Var::BodyBytesSent => "body_bytes_sent",
            Var::BytesSent => "bytes_sent",
            Var::Connection => "connection",
            Var::ConnectionRequests => "connection_requests",
            Var::Host => "host",
            Var::HttpHost => "http_host",
        }
    }

    pub fn from_name(name: &str) -> Option<Var> {
        Var::ALL.into_iter().find(|v| v.name() == name)
    }
}

/// A `log_format` that cannot be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatProblem {
    #[error("the log format is empty")]
    Empty,
    #[error("\"${0}\" and \"${1}\" have no text between them: the line cannot be split")]
    Adjacent(String, String),
    #[error("\"$\" names no variable")]
    NoName,
}

/// One variable of a format and the text that follows it.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    var: Option<Var>,
    /// The literal text up to the next variable (empty after the last).
    then: String,
    finder: Option<memchr::memmem::Finder<'static>>,
}

/// A compiled `log_format`: reads lines it wrote.
#[derive(Debug, Clone)]
pub struct AccessFormat {
    text: String,
    lead: String,
    fields: Vec<Field>,
}

/// The values of one access line, by [`Var`] (absent when the format has
/// no such variable).
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessLine<'a> {
    values: [Option<&'a str>; Var::ALL.len()],
}

impl<'a> AccessLine<'a> {
    pub fn get(&self, v: Var) -> Option<&'a str> {
        self.values[v as usize]
    }
}

impl AccessFormat {
    /// Compiles a `log_format` string (the text after the name, quotes and
    /// nginx.conf escapes already removed, as `conf` stores it).
    pub fn compile(fmt: &str) -> Result<AccessFormat, FormatProblem> {
        let mut lead = String::new();
        let mut fields: Vec<Field> = Vec::new();
        for p in crate::logs::pieces(fmt) {
            match p {
                Piece::Text(t) => match fields.last_mut() {
                    Some(f) => f.then.push_str(t),
                    None => lead.push_str(t),
                },
                Piece::Var("") => return Err(FormatProblem::NoName),
                Piece::Var(name) => {
                    if let Some(prev) = fields.last().filter(|f| f.then.is_empty()) {
                        return Err(FormatProblem::Adjacent(prev.name.clone(), name.to_string()));
                    }
                    fields.push(Field { name: name.to_string(), var: Var::from_name(name), then: String::new(), finder: None });
                }
            }
        }
        if fields.is_empty() && lead.is_empty() {
            return Err(FormatProblem::Empty);
        }
        for f in &mut fields {
            if !f.then.is_empty() {
                f.finder = Some(memchr::memmem::Finder::new(f.then.as_bytes()).into_owned());
            }
        }
        Ok(AccessFormat { text: fmt.to_string(), lead, fields })
    }

    /// The format's text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the format has this variable.
    pub fn has(&self, v: Var) -> bool {
        self.fields.iter().any(|f| f.var == Some(v))
    }

    /// The variables of the format, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|f| f.name.as_str())
    }

    /// Splits a line into its values, calling `each(field index, value)`.
    /// A value ends at the first occurrence of the text that follows its
    /// variable in the format (nginx escapes `"` in values, so quoted
    /// fields cannot hold their own delimiter).
    fn split<'l>(&self, line: &'l str, mut each: impl FnMut(usize, &'l str)) -> Result<(), Malformed> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let mut rest = line.strip_prefix(self.lead.as_str()).ok_or(Malformed("does not start as the log format does"))?;
        for (i, f) in self.fields.iter().enumerate() {
            match &f.finder {
                None => {
                    each(i, rest);
                    rest = "";
                }
                Some(finder) => {
                    let at = finder.find(rest.as_bytes()).ok_or(Malformed("ends before the log format does"))?;
                    each(i, &rest[..at]);
                    rest = &rest[at + f.then.len()..];
                }
            }
        }
        if rest.is_empty() {
            Ok(())
        } else {
            Err(Malformed("longer than the log format"))
        }
    }

    /// Reads one line: the values of the variables the reader knows.
    pub fn parse<'l>(&self, line: &'l str) -> Result<AccessLine<'l>, Malformed> {
        let mut out = AccessLine::default();
        self.split(line, |i, v| {
            if let Some(var) = self.fields[i].var {
                out.values[var as usize] = Some(v);
            }
        })?;
        Ok(out)
    }

    /// Reads one line: every variable's value, by name, in format order.
    pub fn parse_all<'l>(&self, line: &'l str) -> Result<Vec<(&str, &'l str)>, Malformed> {
        let mut out = Vec::with_capacity(self.fields.len());
        self.split(line, |i, v| out.push((self.fields[i].name.as_str(), v)))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::{BodyFailure, Failure};
    use crate::logs::{self, AccessEntry, RequestCtx, UpstreamState, COMBINED};
    use std::time::{Duration, SystemTime};

    fn ctx(upstream: &str, host: &str) -> RequestCtx {
        RequestCtx {
            conn: 42,
            client: "10.0.0.7".into(),
            server: "api.example.com".into(),
            request_line: "POST /v1/orders?id=7 HTTP/1.1".into(),
            upstream: upstream.into(),
            host: host.into(),
            subrequest: String::new(),
        }
    }

    #[test]
    fn error_lines_round_trip_through_the_renderer() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_000);
        let texts: Vec<String> = [
            Failure::PrematureClose.log_text().unwrap(),
            Failure::ConnectRefused.log_text().unwrap(),
            Failure::RecvFailed(104).log_text().unwrap(),
            BodyFailure::PrematureClose.log_text(),
            logs::client_closed_text(Some(104), "sending request to upstream"),
        ]
        .into();
        for text in &texts {
            for (up, host) in [("http://127.0.0.1:8080/v1/orders?id=7", "api"), ("", "api"), ("http://[::1]:80/x", ""), ("", "")] {
                let line = logs::error_line(t, 1234, Level::Error, text, &ctx(up, host));
                let l = parse_error_line(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
                assert_eq!(l.time, "2026/11/23 10:00:00");
                assert_eq!(parse_error_time(l.time), Some(1_795_428_000));
                assert_eq!((l.level, l.pid, l.tid, l.conn), (Level::Error, 1234, 0, Some(42)));
                assert_eq!(l.text, text);
                assert_eq!((l.client, l.server, l.request), (Some("10.0.0.7"), Some("api.example.com"), Some("POST /v1/orders?id=7 HTTP/1.1")));
                assert_eq!(l.upstream, (!up.is_empty()).then_some(up));
                assert_eq!(l.host, (!host.is_empty()).then_some(host));
            }
        }
        let line = logs::connection_line(t, 9, Level::Info, 3, "client 127.0.0.1 closed keepalive connection");
        let l = parse_error_line(&line).unwrap();
        assert_eq!((l.level, l.conn, l.text, l.client), (Level::Info, Some(3), "client 127.0.0.1 closed keepalive connection", None));
    }

    /// Real nginx 1.22 lines (shared/reference/observed.md and nginx's
    /// sources), parsed into their parts and their meaning.
    #[test]
    fn nginx_error_lines() {
        type Row<'a> = (&'a str, Level, Option<u64>, ErrorText, Option<&'a str>, Option<&'a str>);
        let table: &[Row] = &[
            (r#"2026/11/22 12:21:10 [error] 2417#2417: *2 upstream prematurely closed connection while reading response header from upstream, client: 127.0.0.1, server: , request: "GET /sleep?ms=500 HTTP/1.1", upstream: "http://127.0.0.1:18080/sleep?ms=500", host: "127.0.0.1:18081""#,
             Level::Error, Some(2), ErrorText::Failure(Class::PrematureClose), Some("GET /sleep?ms=500 HTTP/1.1"), Some("http://127.0.0.1:18080/sleep?ms=500")),
            (r#"2026/11/22 12:21:10 [error] 2417#2417: *9 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 127.0.0.1, server: , request: "GET /ok HTTP/1.1", upstream: "http://127.0.0.1:18080/ok", host: "127.0.0.1:18081""#,
             Level::Error, Some(9), ErrorText::Failure(Class::Reset), Some("GET /ok HTTP/1.1"), Some("http://127.0.0.1:18080/ok")),
            (r#"2026/11/22 12:21:10 [error] 7#7: *3 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: "POST /ok HTTP/1.1", upstream: "http://127.0.0.1:18080/ok", host: "127.0.0.1:18081""#,
             Level::Error, Some(3), ErrorText::Failure(Class::ConnectRefused), Some("POST /ok HTTP/1.1"), Some("http://127.0.0.1:18080/ok")),
            (r#"2026/11/22 12:21:10 [crit] 7#7: *3 connect() to 10.1.2.3:80 failed (99: Cannot assign requested address) while connecting to upstream, client: 10.0.0.1, server: example.com, request: "GET / HTTP/1.1", upstream: "http://10.1.2.3:80/", host: "example.com""#,
             Level::Crit, Some(3), ErrorText::Failure(Class::NoLocalPort), Some("GET / HTTP/1.1"), Some("http://10.1.2.3:80/")),
            (r#"2026/11/22 12:21:10 [error] 7#7: *5 no live upstreams while connecting to upstream, client: 127.0.0.1, server: , request: "GET /x HTTP/1.1", upstream: "http://backend/x", host: "h""#,
             Level::Error, Some(5), ErrorText::Failure(Class::NoLiveUpstreams), Some("GET /x HTTP/1.1"), Some("http://backend/x")),
            (r#"2026/11/22 12:21:10 [warn] 7#7: *5 upstream server temporarily disabled while connecting to upstream, client: 127.0.0.1, server: , request: "GET /x HTTP/1.1", upstream: "http://127.0.0.1:18080/x", host: "h""#,
             Level::Warn, Some(5), ErrorText::ServerDisabled, Some("GET /x HTTP/1.1"), Some("http://127.0.0.1:18080/x")),
            (r#"2026/11/22 12:21:10 [warn] 7#7: *6 an upstream response is buffered to a temporary file /var/lib/nginx/proxy/1/00/0000000001 while reading upstream, client: 127.0.0.1, server: , request: "GET /big HTTP/1.1", upstream: "http://127.0.0.1:18080/big", host: "h""#,
             Level::Warn, Some(6), ErrorText::Buffered, Some("GET /big HTTP/1.1"), Some("http://127.0.0.1:18080/big")),
            (r#"2026/11/22 12:21:10 [info] 7#7: *7 epoll_wait() reported that client prematurely closed connection, so upstream connection is closed too while sending request to upstream, client: 127.0.0.1, server: , request: "GET /slow HTTP/1.1", upstream: "http://127.0.0.1:18080/slow", host: "h""#,
             Level::Info, Some(7), ErrorText::ClientClosed, Some("GET /slow HTTP/1.1"), Some("http://127.0.0.1:18080/slow")),
            (r#"2026/11/22 12:21:10 [info] 7#7: *8 client prematurely closed connection while reading upstream, client: 127.0.0.1, server: , request: "GET /stream HTTP/1.1", upstream: "http://127.0.0.1:18080/stream", host: "h""#,
             Level::Info, Some(8), ErrorText::ClientClosed, Some("GET /stream HTTP/1.1"), Some("http://127.0.0.1:18080/stream")),
            (r#"2026/11/22 12:21:10 [error] 7#7: *9 upstream sent too big header while reading response header from upstream, client: 127.0.0.1, server: , request: "GET /login HTTP/1.1", upstream: "http://127.0.0.1:18080/login", host: "h""#,
             Level::Error, Some(9), ErrorText::Failure(Class::TooBigHeader), Some("GET /login HTTP/1.1"), Some("http://127.0.0.1:18080/login")),
            (r#"2026/11/22 12:21:10 [error] 7#7: *9 upstream sent invalid header: "X-Bad\x20..." while reading response header from upstream, client: 127.0.0.1, server: , request: "GET /a"b HTTP/1.1", upstream: "http://127.0.0.1:18080/a"b", host: "h""#,
             Level::Error, Some(9), ErrorText::Failure(Class::InvalidHeader), Some("GET /a\"b HTTP/1.1"), Some("http://127.0.0.1:18080/a\"b")),
            (r#"2026/11/22 12:21:10 [error] 7#7: *10 writev() failed (32: Broken pipe) while sending request to upstream, client: 127.0.0.1, server: , request: "POST /panic HTTP/1.1", upstream: "http://127.0.0.1:18080/panic", host: "h""#,
             Level::Error, Some(10), ErrorText::Failure(Class::SendFailed), Some("POST /panic HTTP/1.1"), Some("http://127.0.0.1:18080/panic")),
            (r#"2026/11/22 12:21:10 [error] 7#7: *11 upstream timed out (110: Connection timed out) while reading upstream, client: 127.0.0.1, server: , request: "GET /events HTTP/1.1", upstream: "http://127.0.0.1:18080/events", host: "h""#,
             Level::Error, Some(11), ErrorText::Failure(Class::ReadTimeoutBody), Some("GET /events HTTP/1.1"), Some("http://127.0.0.1:18080/events")),
            ("2026/11/22 12:21:10 [notice] 7#7: signal process started", Level::Notice, None, ErrorText::Other, None, None),
        ];
        for (line, level, conn, what, request, upstream) in table {
            let l = parse_error_line(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!((l.level, l.conn, ErrorText::of(l.text), l.request, l.upstream), (*level, *conn, *what, *request, *upstream), "{line}");
        }
        for bad in ["", "2026/11/22 12:21:10", "2026/13/22 12:21:10 [error] 1#1: x", "2026/11/22 12:21:10 [loud] 1#1: x", "2026/11/22 12:21:10 [error] x#1: y", "not a log line at all, no"] {
            assert!(parse_error_line(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn times() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_428_007);
        assert_eq!(parse_error_time(&logs::log_time(t)), Some(1_795_428_007));
        assert_eq!(parse_time_local(&logs::time_local(t)), Some((1_795_428_007, 0)));
        assert_eq!(parse_time_iso8601(&logs::time_iso8601(t)), Some((1_795_428_007, 0)));
        assert_eq!(parse_time_local("23/Nov/2026:11:00:07 +0100"), Some((1_795_431_607, 3600)));
        assert_eq!(parse_time_iso8601("2026-11-23T09:00:07-01:00"), Some((1_795_424_407, -3600)));
        assert_eq!(parse_time_local("23/Foo/2026:03:00:07 +0100"), None);
        assert_eq!(parse_secs("1795428007.125"), Some(1_795_428_007.125));
        assert_eq!(parse_secs("0.000"), Some(0.0));
        assert_eq!((parse_secs("-"), parse_secs(""), parse_secs("1.2.3")), (None, None, None));
        assert_eq!(upstream_entries("502, 200 : 404").collect::<Vec<_>>(), ["502", "200", "404"]);
        assert_eq!(upstream_entries("-").collect::<Vec<_>>(), ["-"]);
    }

    fn entry() -> AccessEntry {
        let ms = Duration::from_millis;
        AccessEntry {
            msec: 1_795_428_007.25,
            remote_addr: "10.0.0.7".into(),
            method: "GET".into(),
            uri: "/ok".into(),
            args: "a=1".into(),
            request_line: "GET /ok?a=1 HTTP/1.1".into(),
            host: "api".into(),
            status: 200,
            request_time: ms(3),
            upstream: vec![
                UpstreamState { status: 502, response_time: ms(0), connect_time: Some(ms(0)), addr: "127.0.0.1:1".into(), cached: true },
                UpstreamState { status: 200, response_time: ms(2), connect_time: None, addr: "127.0.0.1:2".into(), cached: false },
            ],
            redirects: vec![],
            body_bytes_sent: 3,
            connection_requests: 4,
            referer: Some("http://r/".into()),
            user_agent: Some("t/1".into()),
            headers: vec![],
        }
    }

    /// What the renderer writes, the reader reads back, variable by variable.
    #[test]
    fn access_lines_round_trip_through_the_renderer() {
        let lab = "$msec $request_method $uri $status $request_time \"$upstream_status\" \"$upstream_response_time\" \"$upstream_connect_time\" \"$upstream_addr\" $connection_requests $body_bytes_sent \"$args\"";
        let custom = "[${time_iso8601}] ${remote_addr}|$status|us=$upstream_status|urt=$upstream_response_time|$request|rt=${request_time}";
        let e = entry();
        for fmt in [COMBINED, lab, custom] {
            let f = AccessFormat::compile(fmt).unwrap();
            let line = logs::render_access(fmt, &e);
            let all = f.parse_all(&line).unwrap_or_else(|err| panic!("{fmt}: {line}: {err}"));
            assert_eq!(all.len(), logs::variable_names(fmt).len());
            for (name, value) in &all {
                assert_eq!(Some(value.to_string()), e.variable(name), "{fmt}: ${name}");
            }
            let l = f.parse(&line).unwrap();
            for v in Var::ALL {
                assert_eq!(l.get(v).map(String::from), if f.has(v) { e.variable(v.name()) } else { None }, "{fmt}: {v:?}");
            }
        }
        let f = AccessFormat::compile(lab).unwrap();
        let line = logs::render_access(lab, &e);
        let l = f.parse(&line).unwrap();
        assert_eq!(upstream_entries(l.get(Var::UpstreamStatus).unwrap()).collect::<Vec<_>>(), ["502", "200"]);
        assert_eq!(parse_secs(l.get(Var::Msec).unwrap()), Some(1_795_428_007.25));
    }

    #[test]
    fn access_format_problems_and_malformed_lines() {
        assert_eq!(AccessFormat::compile("$status$body_bytes_sent").unwrap_err(), FormatProblem::Adjacent("status".into(), "body_bytes_sent".into()));
        assert_eq!(AccessFormat::compile("").unwrap_err(), FormatProblem::Empty);
        assert_eq!(AccessFormat::compile("$ x").unwrap_err(), FormatProblem::NoName);
        let f = AccessFormat::compile(COMBINED).unwrap();
        let ok = r#"203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] "GET /a b HTTP/1.1" 502 157 "-" "curl/8.5.0""#;
        let l = f.parse(ok).unwrap();
        assert_eq!((l.get(Var::Request), l.get(Var::Status), l.get(Var::TimeLocal)), (Some("GET /a b HTTP/1.1"), Some("502"), Some("23/Nov/2026:10:00:00 +0000")));
        assert_eq!(f.parse(&ok[..40]).unwrap_err(), Malformed("ends before the log format does"));
        assert_eq!(f.parse(&format!("{ok} extra")).unwrap_err(), Malformed("longer than the log format"));
        assert_eq!(AccessFormat::compile("[$status]").unwrap().parse("502]").unwrap_err(), Malformed("does not start as the log format does"));
    }
}
