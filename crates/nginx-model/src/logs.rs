//! nginx's error.log and access.log formats (`ngx_log_error_core`,
//! `ngx_http_log_module`): the line text, the `$upstream_*` lists, and
//! `log_format` rendering. Pure: the proxy's sink writes what these produce.

use std::time::{Duration, SystemTime};

/// The request context nginx appends to every upstream error line.
#[derive(Debug, Clone)]
pub struct RequestCtx {
    pub conn: u64,
    pub client: String,
    pub server: String,
    pub request_line: String,
    pub upstream: String,
    pub host: String,
    /// The subrequest's URI when the line is a subrequest's (an
    /// `auth_request`): `ngx_http_log_error_handler` writes
    /// `, subrequest: "URI"` after the main request's line.
    pub subrequest: String,
}

/// `YYYY/MM/DD HH:MM:SS`, the error.log timestamp (`ngx_cached_err_log_time`;
/// nginx writes local time, which is UTC on the lab's machines).
pub fn log_time(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    format!("{:04}/{:02}/{:02} {:02}:{:02}:{:02}", d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute(), d.second())
}

/// Month names as `$time_local` writes them.
pub(crate) const MON: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// `$time_iso8601`: `2026-11-23T10:00:00+00:00`.
pub fn time_iso8601(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00", d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute(), d.second())
}

/// A time text kept for its second, per thread: nginx formats its cached
/// time strings once a second in `ngx_time_update` (`ngx_cached_http_time`,
/// `ngx_cached_http_log_time`), not per response or log line.
pub type SecondCache = std::cell::RefCell<Option<(u64, String)>>;

/// `format(t)`, or the text `cache` holds for `t`'s second.
pub fn per_second(cache: &'static std::thread::LocalKey<SecondCache>, t: SystemTime, format: impl FnOnce(SystemTime) -> String) -> String {
    let Ok(since) = t.duration_since(SystemTime::UNIX_EPOCH) else { return format(t) };
    let secs = since.as_secs();
    cache.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((s, text)) if *s == secs => text.clone(),
            _ => {
                let text = format(t);
                *last = Some((secs, text.clone()));
                text
            }
        }
    })
}

/// `$time_local`: `23/Nov/2026:10:00:00 +0000` (see [`per_second`]).
pub fn time_local(t: SystemTime) -> String {
    thread_local! {
        static LAST: SecondCache = const { std::cell::RefCell::new(None) };
    }
    per_second(&LAST, t, format_time_local)
}

fn format_time_local(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    let mon = MON[usize::from(u8::from(d.month())) - 1];
    format!("{:02}/{mon}/{:04}:{:02}:{:02}:{:02} +0000", d.day(), d.year(), d.hour(), d.minute(), d.second())
}

/// An error.log level (`err_levels` in `ngx_log.c`), most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Emerg,
    Alert,
    Crit,
    Error,
    Warn,
    Notice,
    Info,
    Debug,
}

impl Level {
    pub const ALL: [Level; 8] = [Level::Emerg, Level::Alert, Level::Crit, Level::Error, Level::Warn, Level::Notice, Level::Info, Level::Debug];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Emerg => "emerg",
            Level::Alert => "alert",
            Level::Crit => "crit",
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Notice => "notice",
            Level::Info => "info",
            Level::Debug => "debug",
        }
    }

    /// The level named as in error.log's `[level]`.
    pub fn parse(s: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The levels of an upstream attempt's failure line: `[error]`, and
    /// `[crit]` for a `connect()` that fails at once with an errno
    /// `ngx_event_connect_peer` does not list (99: no local port left).
    pub fn is_failure(self) -> bool {
        matches!(self, Level::Error | Level::Crit)
    }

    /// Whether an error.log line is at a failure level (see
    /// [`Level::is_failure`]). Read for every line after every request.
    pub fn line_is_failure(line: &str) -> bool {
        line.contains("[error]") || line.contains("[crit]")
    }
}

/// One error.log line in nginx's format (`ngx_log_error_core` with
/// `ngx_http_log_error`'s request context), written at `time` by `pid`.
/// `upstream` and `host` are left out when empty, as nginx leaves them out
/// before an upstream is chosen and for a request without Host.
pub fn error_line(time: SystemTime, pid: u32, level: Level, text: &str, ctx: &RequestCtx) -> String {
    let mut line = format!(
        "{} [{}] {pid}#0: *{} {text}, client: {}, server: {}, request: \"{}\"",
        log_time(time),
        level.as_str(),
        ctx.conn,
        ctx.client,
        ctx.server,
        ctx.request_line,
    );
    if !ctx.subrequest.is_empty() {
        line.push_str(&format!(", subrequest: \"{}\"", ctx.subrequest));
    }
    if !ctx.upstream.is_empty() {
        line.push_str(&format!(", upstream: \"{}\"", ctx.upstream));
    }
    if !ctx.host.is_empty() {
        line.push_str(&format!(", host: \"{}\"", ctx.host));
    }
    line
}

/// `[warn]` when a peer of a multi-server upstream reaches `max_fails`
/// (`ngx_http_upstream_free_round_robin_peer`).
pub const SERVER_DISABLED: &str = "upstream server temporarily disabled";
/// `[warn]` when a response does not fit `proxy_buffers` (`ngx_event_pipe`).
pub const RESPONSE_BUFFERED: &str = "an upstream response is buffered to a temporary file";
/// `[warn]` when a request body does not fit `client_body_buffer_size`.
pub const BODY_BUFFERED: &str = "a client request body is buffered to a temporary file";
/// The `[info]` texts of a client that went away first (nginx answers 499):
/// `ngx_http_upstream_check_broken_connection` and the body filters.
pub const CLIENT_CLOSED: &str = "client prematurely closed connection";
const CLIENT_CLOSED_EPOLL: &str = "epoll_wait() reported that client prematurely closed connection";

/// The `[info]` text when the client closes while nginx waits on the
/// upstream (`ngx_http_upstream_check_broken_connection`); `errno` for an RST.
pub fn client_closed_text(errno: Option<i32>, action: &str) -> String {
    let err = errno.map(|e| format!(" ({e}: {})", crate::failure::strerror(e))).unwrap_or_default();
    format!("{CLIENT_CLOSED_EPOLL}, so upstream connection is closed too{err} while {action}")
}

/// A process-level line, with no connection (`ngx_log_error` with the
/// cycle's log: `signal 1 (SIGHUP) received, reconfiguring`).
pub fn process_line(time: SystemTime, pid: u32, level: Level, text: &str) -> String {
    format!("{} [{}] {pid}#0: {text}", log_time(time), level.as_str())
}

/// A connection-level line, with no request context
/// (`client 127.0.0.1 closed keepalive connection`).
pub fn connection_line(time: SystemTime, pid: u32, level: Level, conn: u64, text: &str) -> String {
    format!("{} [{}] {pid}#0: *{conn} {text}", log_time(time), level.as_str())
}

/// One upstream attempt, as `$upstream_*` variables report it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UpstreamState {
    pub status: u16,
    pub response_time: Duration,
    /// `None` when the connection was never established ("-").
    pub connect_time: Option<Duration>,
    pub addr: String,
    pub cached: bool,
}

/// `$upstream_status` of `states` ("502, 200"), `redirects` as in
/// [`AccessEntry::redirects`]; "-" for none.
pub fn upstream_status(states: &[UpstreamState], redirects: &[usize]) -> String {
    // No status (the client left first) is "-", as nginx prints it.
    join_states(states, redirects, |u| if u.status == 0 { "-".to_string() } else { u.status.to_string() })
}

fn join_states(states: &[UpstreamState], redirects: &[usize], f: impl Fn(&UpstreamState) -> String) -> String {
    if states.is_empty() {
        return "-".into();
    }
    // ngx_http_variable_upstream_status and friends: a state without a
    // peer (pushed by ngx_http_upstream_init_request for a second
    // upstream of the same request) is written as " : ".
    let mut out = String::new();
    for (i, u) in states.iter().enumerate() {
        if i > 0 {
            out.push_str(if redirects.contains(&i) { " : " } else { ", " });
        }
        out.push_str(&f(u));
    }
    out
}

/// Everything an access-log line can show, structured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AccessEntry {
    pub msec: f64,
    pub remote_addr: String,
    pub method: String,
    pub uri: String,
    pub args: String,
    pub request_line: String,
    pub host: String,
    pub status: u16,
    pub request_time: Duration,
    pub upstream: Vec<UpstreamState>,
    /// Indexes into `upstream` where an internal redirect's upstream
    /// begins (an `error_page` that proxies again): `$upstream_*` lists
    /// put " : " before them, ", " between the tries of one upstream.
    pub redirects: Vec<usize>,
    pub body_bytes_sent: u64,
    pub connection_requests: u64,
    /// The client's `Referer` and `User-Agent` (`$http_referer`,
    /// `$http_user_agent`; "-" when absent).
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// The client's headers, for any other `$http_NAME`.
    #[serde(skip)]
    pub headers: Vec<(String, String)>,
}

fn secs3(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

impl AccessEntry {
    /// `$upstream_status` style: "502, 200".
    pub fn upstream_status(&self) -> String {
        upstream_status(&self.upstream, &self.redirects)
    }

    fn join(&self, f: impl Fn(&UpstreamState) -> String) -> String {
        join_states(&self.upstream, &self.redirects, f)
    }

    /// The value of an nginx variable (without `$`), or `None` if unknown;
    /// a variable without a value (`not_found`) is "-", as the default
    /// log escaping writes it.
    pub fn variable(&self, name: &str) -> Option<String> {
        self.lookup(name).map(|v| v.unwrap_or_else(|| "-".into()))
    }

    /// `None`: unknown; `Some(None)`: known, without a value (`not_found`).
    pub fn lookup(&self, name: &str) -> Option<Option<String>> {
        let upstream = |s: String| (!self.upstream.is_empty()).then_some(s);
        Some(match name {
            "msec" => Some(format!("{:.3}", self.msec)),
            "remote_addr" => Some(self.remote_addr.clone()),
            "request_method" => Some(self.method.clone()),
            "uri" => Some(self.uri.clone()),
            "args" => (!self.args.is_empty()).then(|| self.args.clone()),
            "request" => Some(self.request_line.clone()),
            "http_host" | "host" => Some(self.host.clone()),
            "status" => Some(format!("{:03}", self.status)),
            "request_time" => Some(secs3(self.request_time)),
            "upstream_status" => upstream(self.upstream_status()),
            "upstream_response_time" => upstream(self.join(|u| secs3(u.response_time))),
            "upstream_connect_time" => upstream(self.join(|u| u.connect_time.map(secs3).unwrap_or_else(|| "-".into()))),
            "upstream_addr" => upstream(self.join(|u| u.addr.clone())),
            "body_bytes_sent" => Some(self.body_bytes_sent.to_string()),
            "connection_requests" => Some(self.connection_requests.to_string()),
            "time_local" => Some(time_local(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(self.msec.max(0.0)))),
            "time_iso8601" => Some(time_iso8601(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(self.msec.max(0.0)))),
            "remote_user" => None,
            "http_referer" => self.referer.clone(),
            "http_user_agent" => self.user_agent.clone(),
            n => match n.strip_prefix("http_") {
                Some(h) => crate::http::header_variable(&self.headers, &h.to_ascii_lowercase()).map(str::to_string),
                None => return None,
            },
        })
    }
}

/// `log_format NAME escape=default|json|none`: how variable values are
/// written (`ngx_http_log_variable`, `_json_variable`, `_unescaped_variable`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogEscape {
    /// [`log_escape`]; no value is "-".
    #[default]
    Default,
    /// [`json_escape`]; no value is empty.
    Json,
    /// As they are; no value is empty.
    None,
}

impl LogEscape {
    pub fn parse(v: &str) -> Option<LogEscape> {
        Some(match v {
            "default" => LogEscape::Default,
            "json" => LogEscape::Json,
            "none" => LogEscape::None,
            _ => return None,
        })
    }
}

/// nginx's predefined `combined` format.
pub const COMBINED: &str =
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// A `log_format` names a variable the emulation cannot produce.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown \"{0}\" variable")]
pub struct FormatError(pub String);

/// A piece of a `log_format` string.
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits a script or log format into text and its `$name`s and
/// `${name}`s (`ngx_http_script_compile`, `ngx_http_log_compile_format`):
/// the one reading of variable references, for the parser and the log.
pub(crate) fn pieces(fmt: &str) -> Vec<Piece<'_>> {
    // Scanned by bytes: `$`, `{`, `}` and the name's characters are ASCII,
    // so every index cut at is a char boundary. This runs for every access
    // line and script expansion.
    let b = fmt.as_bytes();
    let mut out = Vec::with_capacity(16);
    let mut rest = 0;
    while let Some(off) = b[rest..].iter().position(|&c| c == b'$') {
        let i = rest + off;
        if i > rest {
            out.push(Piece::Text(&fmt[rest..i]));
        }
        let after = i + 1;
        // `${name}` up to the closing bracket (a name with other characters
        // stays one, so that the parser refuses it as unknown); without
        // one, `$` names nothing.
        let braced = (b.get(after) == Some(&b'{')).then(|| b[after + 1..].iter().position(|&c| c == b'}')).flatten();
        let (name, next) = match braced {
            Some(e) => (&fmt[after + 1..after + 1 + e], after + e + 2),
            None => {
                let n = b[after..].iter().position(|&c| !(c.is_ascii_alphanumeric() || c == b'_')).unwrap_or(b.len() - after);
                (&fmt[after..after + n], after + n)
            }
        };
        out.push(Piece::Var(name));
        rest = next;
    }
    if rest < b.len() {
        out.push(Piece::Text(&fmt[rest..]));
    }
    out
}

/// A script's text with each `$name` / `${name}` replaced by `value`'s
/// answer; a name it does not know stays as written (a lone `$` too).
pub fn expand(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    for p in pieces(template) {
        match p {
            Piece::Text(t) => {
                out.push_str(t);
                rest = &rest[t.len()..];
            }
            Piece::Var(name) => {
                // The reference as written: `$name` or `${name}`.
                let braced = rest.starts_with("${") && rest.get(2 + name.len()..).is_some_and(|r| r.starts_with('}'));
                let len = if braced { name.len() + 3 } else { name.len() + 1 };
                let written = &rest[..len.min(rest.len())];
                match (!name.is_empty()).then(|| value(name)).flatten() {
                    Some(v) => out.push_str(&v),
                    None => out.push_str(written),
                }
                rest = &rest[written.len()..];
            }
        }
    }
    out
}

/// The variables a script or log format uses, in order: `$name` and
/// `${name}`; `$1`..`$9` are regex captures, not variables
/// (`ngx_http_script_compile`).
pub fn variable_names(fmt: &str) -> Vec<&str> {
    pieces(fmt)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Var(name) if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()) => Some(name),
            _ => None,
        })
        .collect()
}

/// Checks that every `$variable` of a format is one we can produce.
pub fn check_format(fmt: &str) -> Result<(), FormatError> {
    let probe = AccessEntry {
        msec: 0.0,
        remote_addr: String::new(),
        method: String::new(),
        uri: String::new(),
        args: String::new(),
        request_line: String::new(),
        host: String::new(),
        status: 0,
        request_time: Duration::ZERO,
        upstream: vec![],
        redirects: vec![],
        body_bytes_sent: 0,
        connection_requests: 0, referer: None, user_agent: None, headers: vec![],
    };
    for p in pieces(fmt) {
        if let Piece::Var(name) = p {
            if probe.variable(name).is_none() {
                return Err(FormatError(name.to_string()));
            }
        }
    }
    Ok(())
}

/// Renders an access-log line with a `log_format` string; each variable's
/// value is escaped ([`log_escape`]: `escape=default`).
pub fn render_access(fmt: &str, e: &AccessEntry) -> String {
    render_access_escaped(fmt, e, LogEscape::Default)
}

/// A `log_format` and its pieces as byte ranges: (variable?, start, end).
type ParsedFormat = (String, Vec<(bool, usize, usize)>);

/// [`render_access`] with the format's `escape=`.
pub fn render_access_escaped(fmt: &str, e: &AccessEntry, escape: LogEscape) -> String {
    // One buffer for the line: a value that needs no escaping (nearly all)
    // is copied into it as it is.
    let mut out = String::with_capacity(fmt.len() + 128);
    // The format is split once and kept (as byte ranges, for the last
    // format seen on this thread): a server writes many lines with few
    // formats, as nginx compiles each `log_format` once at start.
    thread_local! {
        static PARSED: std::cell::RefCell<ParsedFormat> = const { std::cell::RefCell::new((String::new(), Vec::new())) };
    }
    PARSED.with(|parsed| {
        let mut parsed = parsed.borrow_mut();
        if parsed.0 != fmt || parsed.1.is_empty() {
            let base = fmt.as_ptr() as usize;
            let range = |t: &str| (t.as_ptr() as usize - base, t.as_ptr() as usize - base + t.len());
            parsed.1 = pieces(fmt)
                .into_iter()
                .map(|p| match p {
                    Piece::Text(t) => (false, range(t).0, range(t).1),
                    Piece::Var(n) => (true, range(n).0, range(n).1),
                })
                .collect();
            fmt.clone_into(&mut parsed.0);
        }
        for &(var, a, b) in &parsed.1 {
            if !var {
                out.push_str(&fmt[a..b]);
                continue;
            }
            let name = &fmt[a..b];
            match (escape, e.lookup(name).flatten()) {
                (LogEscape::Default, Some(v)) => push_log_escaped(&mut out, &v),
                (LogEscape::Default, None) => out.push('-'),
                (LogEscape::Json, Some(v)) => out.push_str(&json_escape(&v)),
                (LogEscape::None, Some(v)) => out.push_str(&v),
                (_, None) => {}
            }
        }
    });
    out
}

/// `ngx_escape_json`: `"` and `\\` backslashed, bytes below 0x20 as `\n`,
/// `\r`, `\t`, `\b`, `\f` or `\u00XX`; the rest (UTF-8 too) as it is.
pub fn json_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `ngx_http_log_escape` (`log_format escape=default`): bytes below 0x20,
/// `"`, `\`, DEL and every byte from 0x80 up written as `\xXX` (upper-case
/// hex); the rest as they are.
pub fn log_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    push_log_escaped(&mut out, v);
    out
}

/// [`log_escape`] appended to `out`.
fn push_log_escaped(out: &mut String, v: &str) {
    let escaped = |b: u8| b < 0x20 || b == b'"' || b == b'\\' || b >= 0x7f;
    if !v.bytes().any(escaped) {
        out.push_str(v);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in v.as_bytes() {
        if escaped(b) {
            out.push_str("\\x");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push(char::from(b));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Level;

    /// The line test and the level rule agree for every level.
    #[test]
    fn failure_lines_are_the_failure_levels() {
        for l in Level::ALL {
            let line = format!("2026/11/24 04:00:00 [{}] 7#7: *1 text", l.as_str());
            assert_eq!(Level::line_is_failure(&line), l.is_failure(), "{line}");
        }
    }

    use super::*;

    #[test]
    fn access_line_with_retry_lists() {
        let ms = Duration::from_millis;
        let e = AccessEntry {
            msec: 1.5,
            remote_addr: "127.0.0.1".into(),
            method: "GET".into(),
            uri: "/ok".into(),
            args: String::new(),
            request_line: "GET /ok HTTP/1.1".into(),
            host: "lab".into(),
            status: 200,
            request_time: ms(1),
            upstream: vec![
                UpstreamState { status: 502, response_time: ms(0), connect_time: Some(ms(0)), addr: "127.0.0.1:1".into(), cached: true },
                UpstreamState { status: 200, response_time: ms(1), connect_time: None, addr: "127.0.0.1:1".into(), cached: false },
            ],
            redirects: vec![],
            body_bytes_sent: 3,
            connection_requests: 1,
            referer: None,
            user_agent: None,
            headers: vec![],
        };
        assert_eq!(
            render_access("$request_method $status \"$upstream_status\" \"$upstream_response_time\" \"$upstream_connect_time\" $body_bytes_sent \"$args\"", &e),
            "GET 200 \"502, 200\" \"0.000, 0.001\" \"0.000, -\" 3 \"-\""
        );
        assert_eq!(check_format("$status $bogus"), Err(FormatError("bogus".into())));
        // An error_page's second upstream (observed on nginx 1.22.1).
        let redirected = AccessEntry { redirects: vec![1], ..e.clone() };
        assert_eq!(render_access("$upstream_status|$upstream_addr", &redirected), "502 : 200|127.0.0.1:1 : 127.0.0.1:1");
        assert_eq!(time_local(SystemTime::UNIX_EPOCH + Duration::from_secs(1_794_787_200)), "16/Nov/2026:00:00:00 +0000");
        assert!(check_format(COMBINED).is_ok());
    }

    #[test]
    fn variable_references() {
        assert_eq!(variable_names("${host}x $uri-$1 $ ${} ${a-b}"), ["host", "uri", "a-b"]);
        assert_eq!(check_format("${bogus}x"), Err(FormatError("bogus".into())));
        let e = AccessEntry {
            msec: 0.0,
            remote_addr: String::new(),
            method: String::new(),
            uri: String::new(),
            args: String::new(),
            request_line: String::new(),
            host: String::new(),
            status: 502,
            request_time: Duration::ZERO,
            upstream: vec![],
            redirects: vec![],
            body_bytes_sent: 0,
            connection_requests: 0, referer: None, user_agent: None, headers: vec![],
        };
        assert_eq!(render_access("${status}x $status.", &e), "502x 502.");
        assert_eq!(log_escape("a\"b\\c\td\u{7f}é~ ?"), "a\\x22b\\x5Cc\\x09d\\x7F\\xC3\\xA9~ ?");
        let quoted = AccessEntry { uri: "/x\"y".into(), ..e.clone() };
        assert_eq!(render_access("\"$uri\" \"lit\\\"\"", &quoted), "\"/x\\x22y\" \"lit\\\"\"", "only values are escaped");
        assert_eq!(json_escape("a\"b\\c\td\n\u{1}é\u{7f}"), "a\\\"b\\\\c\\td\\n\\u0001é\u{7f}");
        let none = AccessEntry { args: String::new(), uri: "/\"".into(), ..e.clone() };
        assert_eq!(render_access_escaped("$uri|$args|$upstream_status|$remote_user", &none, LogEscape::Json), "/\\\"|||");
        assert_eq!(render_access_escaped("$uri|$args|$upstream_status", &none, LogEscape::None), "/\"||");
        assert_eq!(render_access("$uri|$args|$upstream_status", &none), "/\\x22|-|-");
        // Scripts: a name the emulation does not know stays as written.
        let v = |n: &str| (n == "uri").then(|| "/a".to_string());
        assert_eq!(expand("${uri}x $uri-$uri_ $ ${} ${bogus} ${uri", v), "/ax /a-$uri_ $ ${} ${bogus} ${uri");
    }
}
