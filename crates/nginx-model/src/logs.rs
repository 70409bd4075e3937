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
}

/// `YYYY/MM/DD HH:MM:SS`, the error.log timestamp (`ngx_cached_err_log_time`;
/// nginx writes local time, which is UTC on the lab's machines).
pub fn log_time(t: SystemTime) -> String {
    let d = time::OffsetDateTime::from(t);
    format!("{:04}/{:02}/{:02} {:02}:{:02}:{:02}", d.year(), u8::from(d.month()), d.day(), d.hour(), d.minute(), d.second())
}

/// One error.log line in nginx's format.
pub fn error_line(level: &str, text: &str, ctx: &RequestCtx) -> String {
    format!(
        "{} [{level}] {}#0: *{} {text}, client: {}, server: {}, request: \"{}\", upstream: \"{}\", host: \"{}\"",
        log_time(SystemTime::now()),
        std::process::id(),
        ctx.conn,
        ctx.client,
        ctx.server,
        ctx.request_line,
        ctx.upstream,
        ctx.host
    )
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
    pub body_bytes_sent: u64,
    pub connection_requests: u64,
}

fn secs3(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

impl AccessEntry {
    /// `$upstream_status` style: "502, 200".
    pub fn upstream_status(&self) -> String {
        self.join(|u| u.status.to_string())
    }

    fn join(&self, f: impl Fn(&UpstreamState) -> String) -> String {
        if self.upstream.is_empty() {
            return "-".into();
        }
        self.upstream.iter().map(f).collect::<Vec<_>>().join(", ")
    }

    /// The value of an nginx variable (without `$`), or `None` if unknown.
    pub fn variable(&self, name: &str) -> Option<String> {
        Some(match name {
            "msec" => format!("{:.3}", self.msec),
            "remote_addr" => self.remote_addr.clone(),
            "request_method" => self.method.clone(),
            "uri" => self.uri.clone(),
            "args" => if self.args.is_empty() { "-".into() } else { self.args.clone() },
            "request" => self.request_line.clone(),
            "http_host" | "host" => self.host.clone(),
            "status" => self.status.to_string(),
            "request_time" => secs3(self.request_time),
            "upstream_status" => self.upstream_status(),
            "upstream_response_time" => self.join(|u| secs3(u.response_time)),
            "upstream_connect_time" => self.join(|u| u.connect_time.map(secs3).unwrap_or_else(|| "-".into())),
            "upstream_addr" => self.join(|u| u.addr.clone()),
            "body_bytes_sent" => self.body_bytes_sent.to_string(),
            "connection_requests" => self.connection_requests.to_string(),
            "time_local" => log_time(SystemTime::now()),
            "remote_user" => "-".into(),
            "http_referer" | "http_user_agent" => "-".into(),
            _ => return None,
        })
    }
}

/// nginx's predefined `combined` format.
pub const COMBINED: &str =
    "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// Checks that every `$variable` of a format is one we can produce.
pub fn check_format(fmt: &str) -> Result<(), String> {
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
        body_bytes_sent: 0,
        connection_requests: 0,
    };
    for name in variables(fmt) {
        if probe.variable(&name).is_none() {
            return Err(format!("unknown \"{name}\" variable"));
        }
    }
    Ok(())
}

fn variables(fmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = fmt.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c == '$' {
            let mut name = String::new();
            while let Some(&(_, n)) = chars.peek() {
                if n.is_ascii_alphanumeric() || n == '_' {
                    name.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(name);
        }
    }
    out
}

/// Renders an access-log line with a `log_format` string.
pub fn render_access(fmt: &str, e: &AccessEntry) -> String {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut name = String::new();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphanumeric() || n == '_' {
                name.push(n);
                chars.next();
            } else {
                break;
            }
        }
        out.push_str(&e.variable(&name).unwrap_or_else(|| "-".into()));
    }
    out
}

#[cfg(test)]
mod tests {
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
            body_bytes_sent: 3,
            connection_requests: 1,
        };
        assert_eq!(
            render_access("$request_method $status \"$upstream_status\" \"$upstream_response_time\" \"$upstream_connect_time\" $body_bytes_sent \"$args\"", &e),
            "GET 200 \"502, 200\" \"0.000, 0.001\" \"0.000, -\" 3 \"-\""
        );
        assert!(check_format("$status $bogus").is_err());
        assert!(check_format(COMBINED).is_ok());
    }
}
