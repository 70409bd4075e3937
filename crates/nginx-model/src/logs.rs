//! nginx's error.log and access.log formats (`ngx_log_error_core`,
//! `ngx_http_log_module`): the line text, the `$upstream_*` lists, and
//! `log_format` rendering. Pure: the proxy's sink writes what these produce.

use std::fmt::Write as _;
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
    with_per_second(cache, t, format, str::to_string)
}

/// [`per_second`]'s text lent to `f` (no copy of it).
fn with_per_second<R>(cache: &'static std::thread::LocalKey<SecondCache>, t: SystemTime, format: impl FnOnce(SystemTime) -> String, f: impl FnOnce(&str) -> R) -> R {
    let Ok(since) = t.duration_since(SystemTime::UNIX_EPOCH) else { return f(&format(t)) };
    with_second(cache, since.as_secs(), || format(t), f)
}

/// The text `cache` holds for the second `secs` since the epoch (made by
/// `format` when it holds another's), lent to `f`.
fn with_second<R>(cache: &'static std::thread::LocalKey<SecondCache>, secs: u64, format: impl FnOnce() -> String, f: impl FnOnce(&str) -> R) -> R {
    cache.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((s, text)) if *s == secs => f(text),
            _ => {
                let text = format();
                let r = f(&text);
                *last = Some((secs, text));
                r
            }
        }
    })
}

thread_local! {
    static TIME_LOCAL: SecondCache = const { std::cell::RefCell::new(None) };
}

/// `$time_local`: `23/Nov/2026:10:00:00 +0000` (see [`per_second`]).
pub fn time_local(t: SystemTime) -> String {
    per_second(&TIME_LOCAL, t, format_time_local)
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
    if states.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    join_states(&mut out, states, redirects, push_status);
    out
}

/// One try's `$upstream_status`: no status (the client left first) is
/// "-", as nginx prints it.
fn push_status(out: &mut String, u: &UpstreamState) {
    if u.status == 0 {
        out.push('-');
    } else {
        crate::num::push_decimal_str(out, u64::from(u.status), 0);
    }
}

/// An `$upstream_*` list appended to `out`, `f` writing each try.
fn join_states(out: &mut String, states: &[UpstreamState], redirects: &[usize], f: impl Fn(&mut String, &UpstreamState)) {
    // ngx_http_variable_upstream_status and friends: a state without a
    // peer (pushed by ngx_http_upstream_init_request for a second
    // upstream of the same request) is written as " : ".
    for (i, u) in states.iter().enumerate() {
        if i > 0 {
            out.push_str(if redirects.contains(&i) { " : " } else { ", " });
        }
        f(out, u);
    }
}

/// Everything an access-log line can show, structured.
#[derive(Debug, Clone, Default, serde::Serialize)]
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

impl AccessEntry {
    /// `$upstream_status` style: "502, 200".
    pub fn upstream_status(&self) -> String {
        upstream_status(&self.upstream, &self.redirects)
    }

    /// The value of an nginx variable (without `$`), or `None` if unknown;
    /// a variable without a value (`not_found`) is "-", as the default
    /// log escaping writes it.
    pub fn variable(&self, name: &str) -> Option<String> {
        self.lookup(name).map(|v| v.unwrap_or_else(|| "-".into()))
    }

    /// `None`: unknown; `Some(None)`: known, without a value (`not_found`).
    pub fn lookup(&self, name: &str) -> Option<Option<String>> {
        let mut v = String::new();
        match self.write_var(&Var::of(name), &mut v) {
            Found::Unknown => None,
            Found::Missing => Some(None),
            Found::Safe | Found::Text => Some(Some(v)),
        }
    }

    /// Appends `var`'s value to `out` (nothing when it has none): the one
    /// table of the access entry's variables, for [`AccessEntry::lookup`]
    /// and the log line, which writes values in place.
    #[inline]
    fn write_var(&self, var: &Var, out: &mut String) -> Found {
        let text = |out: &mut String, v: &str| {
            out.push_str(v);
            Found::Text
        };
        let upstream = self.upstream.is_empty();
        match var {
            Var::Msec => {
                let _ = write!(out, "{:.3}", self.msec);
                return Found::Safe;
            }
            Var::RemoteAddr => return text(out, &self.remote_addr),
            Var::RequestMethod => return text(out, &self.method),
            Var::Uri => return text(out, &self.uri),
            Var::Args if self.args.is_empty() => {}
            Var::Args => return text(out, &self.args),
            Var::Request => return text(out, &self.request_line),
            Var::Host => return text(out, &self.host),
            Var::Status => {
                crate::num::push_decimal_str(out, u64::from(self.status), 3);
                return Found::Safe;
            }
            Var::RequestTime => {
                push_secs3(out, self.request_time);
                return Found::Safe;
            }
            Var::UpstreamStatus | Var::UpstreamResponseTime | Var::UpstreamConnectTime | Var::UpstreamAddr if upstream => {}
            Var::UpstreamStatus => {
                self.join_into(out, push_status);
                return Found::Safe;
            }
            Var::UpstreamResponseTime => {
                self.join_into(out, |out, u| push_secs3(out, u.response_time));
                return Found::Safe;
            }
            Var::UpstreamConnectTime => {
                self.join_into(out, |out, u| match u.connect_time {
                    Some(d) => push_secs3(out, d),
                    None => out.push('-'),
                });
                return Found::Safe;
            }
            Var::UpstreamAddr => {
                self.join_into(out, |out, u| out.push_str(&u.addr));
                return Found::Text;
            }
            Var::BodyBytesSent => {
                crate::num::push_decimal_str(out, self.body_bytes_sent, 0);
                return Found::Safe;
            }
            Var::ConnectionRequests => {
                crate::num::push_decimal_str(out, self.connection_requests, 0);
                return Found::Safe;
            }
            Var::TimeLocal => {
                // time_local's cache, keyed by the second without making a
                // SystemTime of it unless the text must be made.
                let msec = self.msec.max(0.0);
                let d = || Duration::from_secs_f64(msec);
                // `from_secs_f64` rounds to the nanosecond: its second is
                // the float's whole part unless the fraction is within half
                // a nanosecond of 1 (the fraction of a float below 2^32 is
                // exact).
                let secs = if msec < 4_294_967_296.0 && msec - ((msec as u64) as f64) < 0.999 { msec as u64 } else { d().as_secs() };
                with_second(&TIME_LOCAL, secs, || format_time_local(SystemTime::UNIX_EPOCH + d()), |v| out.push_str(v));
                return Found::Safe;
            }
            Var::TimeIso8601 => {
                out.push_str(&time_iso8601(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(self.msec.max(0.0))));
                return Found::Safe;
            }
            Var::RemoteUser => {}
            Var::HttpReferer => {
                if let Some(v) = &self.referer {
                    return text(out, v);
                }
            }
            Var::HttpUserAgent => {
                if let Some(v) = &self.user_agent {
                    return text(out, v);
                }
            }
            Var::Header(h) => {
                if let Some(v) = crate::http::header_variable(&self.headers, h) {
                    return text(out, v);
                }
            }
            Var::Unknown => return Found::Unknown,
        }
        Found::Missing
    }

    /// This entry's tries through [`join_states`].
    fn join_into(&self, out: &mut String, f: impl Fn(&mut String, &UpstreamState)) {
        join_states(out, &self.upstream, &self.redirects, f);
    }
}

/// An access entry's variable, told by its name once per `log_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Var {
    Msec,
    RemoteAddr,
    RequestMethod,
    Uri,
    Args,
    Request,
    Host,
    Status,
    RequestTime,
    UpstreamStatus,
    UpstreamResponseTime,
    UpstreamConnectTime,
    UpstreamAddr,
    BodyBytesSent,
    ConnectionRequests,
    TimeLocal,
    TimeIso8601,
    RemoteUser,
    HttpReferer,
    HttpUserAgent,
    /// `$http_NAME`, NAME lowercased.
    Header(String),
    Unknown,
}

impl Var {
    fn of(name: &str) -> Var {
        match name {
            "msec" => Var::Msec,
            "remote_addr" => Var::RemoteAddr,
            "request_method" => Var::RequestMethod,
            "uri" => Var::Uri,
            "args" => Var::Args,
            "request" => Var::Request,
            "http_host" | "host" => Var::Host,
            "status" => Var::Status,
            "request_time" => Var::RequestTime,
            "upstream_status" => Var::UpstreamStatus,
            "upstream_response_time" => Var::UpstreamResponseTime,
            "upstream_connect_time" => Var::UpstreamConnectTime,
            "upstream_addr" => Var::UpstreamAddr,
            "body_bytes_sent" => Var::BodyBytesSent,
            "connection_requests" => Var::ConnectionRequests,
            "time_local" => Var::TimeLocal,
            "time_iso8601" => Var::TimeIso8601,
            "remote_user" => Var::RemoteUser,
            "http_referer" => Var::HttpReferer,
            "http_user_agent" => Var::HttpUserAgent,
            n => match n.strip_prefix("http_") {
                Some(h) => Var::Header(h.to_ascii_lowercase()),
                None => Var::Unknown,
            },
        }
    }
}

/// What [`AccessEntry::write_var`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Unknown,
    /// Known, without a value (`not_found`): nothing written.
    Missing,
    /// A value no escaping changes (digits, times, `-`, `,`, `:`).
    Safe,
    /// A value that may need escaping.
    Text,
}

/// `secs3` appended to `out`. A whole number of milliseconds, or a time
/// whose sub-millisecond part is not near the half, is written from the
/// integers: `{:.3}` of the float rounds it the same way (the float is
/// within a nanosecond of the duration below 2^20 s); the rest goes by
/// the float.
fn push_secs3(out: &mut String, d: Duration) {
    let (secs, nanos) = (d.as_secs(), d.subsec_nanos());
    let sub = nanos % 1_000_000;
    if secs >= 1 << 20 || (499_990..=500_010).contains(&sub) {
        let _ = write!(out, "{:.3}", d.as_secs_f64());
        return;
    }
    let millis = secs * 1000 + u64::from(nanos / 1_000_000) + u64::from(sub > 500_000);
    crate::num::push_decimal_str(out, millis / 1000, 0);
    out.push('.');
    crate::num::push_decimal_str(out, millis % 1000, 3);
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
    piece_iter(fmt).collect()
}

/// The characters of a `$name`: ASCII letters, digits and `_`.
const NAME_CHAR: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = (c as u8).is_ascii_alphanumeric() || c == b'_' as usize;
        c += 1;
    }
    t
};

/// [`pieces`] one at a time, without a vector.
pub(crate) fn piece_iter(fmt: &str) -> Pieces<'_> {
    Pieces { fmt, at: 0, var: None }
}

/// The iterator of [`piece_iter`].
pub(crate) struct Pieces<'a> {
    fmt: &'a str,
    /// Where the next piece starts.
    at: usize,
    /// A variable found after a text piece: its name's range, and where
    /// the piece after it starts.
    var: Option<(usize, usize, usize)>,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = Piece<'a>;

    fn next(&mut self) -> Option<Piece<'a>> {
        // Scanned by bytes: `$`, `{`, `}` and the name's characters are
        // ASCII, so every index cut at is a char boundary. This runs for
        // every script expansion.
        let fmt = self.fmt;
        if let Some((a, e, next)) = self.var.take() {
            self.at = next;
            return Some(Piece::Var(&fmt[a..e]));
        }
        let b = fmt.as_bytes();
        let rest = self.at;
        if rest >= b.len() {
            return None;
        }
        let Some(off) = memchr::memchr(b'$', &b[rest..]) else {
            self.at = b.len();
            return Some(Piece::Text(&fmt[rest..]));
        };
        let i = rest + off;
        let after = i + 1;
        // `${name}` up to the closing bracket (a name with other characters
        // stays one, so that the parser refuses it as unknown); without
        // one, `$` names nothing.
        let braced = (b.get(after) == Some(&b'{')).then(|| memchr::memchr(b'}', &b[after + 1..])).flatten();
        let (a, e, next) = match braced {
            Some(e) => (after + 1, after + 1 + e, after + e + 2),
            None => {
                let n = b[after..].iter().position(|&c| !NAME_CHAR[usize::from(c)]).unwrap_or(b.len() - after);
                (after, after + n, after + n)
            }
        };
        if i > rest {
            self.var = Some((a, e, next));
            return Some(Piece::Text(&fmt[rest..i]));
        }
        self.at = next;
        Some(Piece::Var(&fmt[a..e]))
    }
}

/// A script's text with each `$name` / `${name}` replaced by `value`'s
/// answer; a name it does not know stays as written (a lone `$` too).
pub fn expand(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    expand_into(&mut out, template, |name, out| match value(name) {
        Some(v) => {
            out.push_str(&v);
            true
        }
        None => false,
    });
    out
}

/// [`expand`] appended to `out`, `value` appending a variable's value
/// (false, with nothing appended: a name it does not know).
pub(crate) fn expand_into(out: &mut String, template: &str, mut value: impl FnMut(&str, &mut String) -> bool) {
    let mut rest = template;
    for p in piece_iter(template) {
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
                if name.is_empty() || !value(name, out) {
                    out.push_str(written);
                }
                rest = &rest[written.len()..];
            }
        }
    }
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
    let probe = AccessEntry::default();
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

/// A `log_format` and its pieces: text as a byte range of it, or a
/// variable told by name once.
type ParsedFormat = (String, Vec<Parsed>);

enum Parsed {
    Text(usize, usize),
    Var(Var),
}

/// The formats a thread keeps parsed: a server has a few `log_format`s.
const PARSED_KEPT: usize = 4;

/// [`render_access`] with the format's `escape=`.
pub fn render_access_escaped(fmt: &str, e: &AccessEntry, escape: LogEscape) -> String {
    // One buffer for the line: each value is written into it, and escaped
    // there only when one of its bytes needs it (rarely).
    let mut out = String::with_capacity(fmt.len() + 128);
    // Formats are split, and their variables told by name, once and kept
    // (the last few on this thread): a server writes many lines with few
    // formats, as nginx compiles each `log_format` once at start.
    thread_local! {
        static PARSED: std::cell::RefCell<Vec<ParsedFormat>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    PARSED.with(|parsed| {
        let mut parsed = parsed.borrow_mut();
        let at = match parsed.iter().position(|(f, _)| f == fmt) {
            Some(i) => i,
            None => {
                let base = fmt.as_ptr() as usize;
                let range = |t: &str| (t.as_ptr() as usize - base, t.as_ptr() as usize - base + t.len());
                let pieces = piece_iter(fmt)
                    .map(|p| match p {
                        Piece::Text(t) => Parsed::Text(range(t).0, range(t).1),
                        Piece::Var(n) => Parsed::Var(Var::of(n)),
                    })
                    .collect();
                if parsed.len() == PARSED_KEPT {
                    parsed.remove(0);
                }
                parsed.push((fmt.to_string(), pieces));
                parsed.len() - 1
            }
        };
        for p in &parsed[at].1 {
            let var = match p {
                Parsed::Text(a, b) => {
                    out.push_str(&fmt[*a..*b]);
                    continue;
                }
                Parsed::Var(v) => v,
            };
            let start = out.len();
            match (escape, e.write_var(var, &mut out)) {
                (LogEscape::Default, Found::Unknown | Found::Missing) => out.push('-'),
                (_, Found::Unknown | Found::Missing | Found::Safe) | (LogEscape::None, Found::Text) => {}
                (LogEscape::Default, Found::Text) => {
                    if out.as_bytes()[start..].iter().any(|&b| log_escaped(b)) {
                        let v = out.split_off(start);
                        push_log_escaped(&mut out, &v);
                    }
                }
                // escape=json is rare: its rule stays in json_escape alone.
                (LogEscape::Json, Found::Text) => {
                    let v = out.split_off(start);
                    out.push_str(&json_escape(&v));
                }
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

/// The bytes [`log_escape`] writes as `\xXX`.
fn log_escaped(b: u8) -> bool {
    (b < 0x20) | (b == b'"') | (b == b'\\') | (b >= 0x7f)
}

/// [`log_escape`] appended to `out`: runs of bytes that need no escaping
/// are copied whole.
fn push_log_escaped(out: &mut String, v: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let b = v.as_bytes();
    let mut run = 0;
    for (i, &c) in b.iter().enumerate() {
        if log_escaped(c) {
            // A run holds no byte from 0x80 up: when not empty, it starts
            // and ends at char boundaries.
            if run < i {
                out.push_str(&v[run..i]);
            }
            out.push_str("\\x");
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 0xf)]));
            run = i + 1;
        }
    }
    out.push_str(&v[run..]);
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
    fn time_local_by_the_second_from_secs_f64_makes() {
        let base = 1_795_984_199.0;
        for msec in [0.0, -1.0, f64::NAN, base, base + 0.5, base + 0.998, base + 0.999, base + 0.9999995, base + 0.99999999, 4_294_967_295.999_9, 4_294_967_296.5, 2e11 + 0.9999999] {
            let e = AccessEntry { msec, ..probe() };
            let want = time_local(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(msec.max(0.0)));
            assert_eq!(e.lookup("time_local"), Some(Some(want)), "{msec}");
        }
    }

    fn probe() -> AccessEntry {
        AccessEntry::default()
    }

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
