//! A subset of nginx.conf: the directives that decide upstream 502s, parsed
//! with nginx's own error messages (`unknown directive "x" in FILE:LINE`),
//! and rendered back to text that real nginx accepts. Directives real nginx
//! needs but that do not affect the emulation (pid, temp paths, events) are
//! accepted and ignored.

use crate::retry::Ft;
use crate::time;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    pub msg: String,
    pub file: String,
    pub line: usize,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} in {}:{}", self.msg, self.file, self.line)
    }
}

impl std::error::Error for ConfError {}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub error_log: Option<String>,
    pub log_formats: Vec<(String, String)>,
    pub access_log: Option<AccessLog>,
    pub upstreams: Vec<Upstream>,
    pub servers: Vec<Server>,
    /// `proxy_*` at http level, inherited by servers and locations.
    pub proxy: ProxyDirectives,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    /// `None` = `access_log off`.
    pub path: Option<String>,
    pub format: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub servers: Vec<UpstreamServer>,
    /// `keepalive N`; `None` = not configured (profile decides the default).
    pub keepalive: Option<u32>,
    pub keepalive_timeout: Option<Duration>,
    pub keepalive_requests: Option<u32>,
    pub keepalive_time: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamServer {
    pub addr: String,
    pub weight: u32,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub down: bool,
    pub backup: bool,
}

/// A `server` parameter of an upstream block that nginx rejects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameter \"{0}\"")]
pub struct InvalidParameter(pub String);

impl UpstreamServer {
    /// A `server ADDR PARAMS...` line (`ngx_http_upstream_server`):
    /// `weight=`, `max_fails=`, `fail_timeout=`, `down`, `backup`.
    pub fn with_params(addr: impl Into<String>, params: &[String]) -> Result<Self, InvalidParameter> {
        let mut srv = UpstreamServer::new(addr);
        for a in params {
            let bad = || InvalidParameter(a.clone());
            if let Some(v) = a.strip_prefix("weight=") {
                srv.weight = v.parse().ok().filter(|w| *w > 0).ok_or_else(bad)?;
            } else if let Some(v) = a.strip_prefix("max_fails=") {
                srv.max_fails = v.parse().map_err(|_| bad())?;
            } else if let Some(v) = a.strip_prefix("fail_timeout=") {
                srv.fail_timeout = time::parse(v).ok_or_else(bad)?;
            } else if a == "down" {
                srv.down = true;
            } else if a == "backup" {
                srv.backup = true;
            } else {
                return Err(bad());
            }
        }
        Ok(srv)
    }

    pub fn new(addr: impl Into<String>) -> Self {
        use crate::resolve::defaults;
        UpstreamServer {
            addr: addr.into(),
            weight: defaults::WEIGHT,
            max_fails: defaults::MAX_FAILS,
            fail_timeout: defaults::FAIL_TIMEOUT,
            down: false,
            backup: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Server {
    pub listen: Vec<String>,
    pub server_name: Option<String>,
    pub access_log: Option<AccessLog>,
    pub proxy: ProxyDirectives,
    pub locations: Vec<Location>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// `=` for an exact match, empty for a prefix match.
    pub modifier: String,
    pub path: String,
    pub proxy: ProxyDirectives,
}

/// The `proxy_*` directives; `None` = not set at this level (inherit).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProxyDirectives {
    pub pass: Option<String>,
    pub http_version: Option<String>,
    /// `proxy_set_header` lines; nginx inherits them only if a level has none.
    pub set_header: Option<Vec<(String, String)>>,
    pub connect_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub next_upstream: Option<Ft>,
    pub next_upstream_tries: Option<u32>,
    pub next_upstream_timeout: Option<Duration>,
    pub request_buffering: Option<bool>,
    pub buffer_size: Option<usize>,
    /// `client_max_body_size` (ngx_http_core_module; merged like proxy_*).
    pub client_max_body_size: Option<u64>,
    /// `client_body_buffer_size` (ngx_http_core_module).
    pub client_body_buffer_size: Option<usize>,
    /// `server_tokens on|off` (ngx_http_core_module).
    pub server_tokens: Option<bool>,
}

impl ProxyDirectives {
    /// nginx's merge: a value set here wins, else the parent's.
    pub fn merged_over(&self, parent: &ProxyDirectives) -> ProxyDirectives {
        ProxyDirectives {
            pass: self.pass.clone().or(parent.pass.clone()),
            http_version: self.http_version.clone().or(parent.http_version.clone()),
            set_header: self.set_header.clone().or(parent.set_header.clone()),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            send_timeout: self.send_timeout.or(parent.send_timeout),
            read_timeout: self.read_timeout.or(parent.read_timeout),
            next_upstream: self.next_upstream.or(parent.next_upstream),
            next_upstream_tries: self.next_upstream_tries.or(parent.next_upstream_tries),
            next_upstream_timeout: self.next_upstream_timeout.or(parent.next_upstream_timeout),
            request_buffering: self.request_buffering.or(parent.request_buffering),
            buffer_size: self.buffer_size.or(parent.buffer_size),
            client_max_body_size: self.client_max_body_size.or(parent.client_max_body_size),
            client_body_buffer_size: self.client_body_buffer_size.or(parent.client_body_buffer_size),
            server_tokens: self.server_tokens.or(parent.server_tokens),
        }
    }
}

// ---- tokenizer -----------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

fn tokenize(src: &str, file: &str) -> Result<Vec<(Tok, usize)>, ConfError> {
    let mut out = Vec::new();
    let mut line = 1;
    let mut chars = src.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            ';' => {
                out.push((Tok::Semi, line));
                chars.next();
            }
            '{' => {
                out.push((Tok::Open, line));
                chars.next();
            }
            '}' => {
                out.push((Tok::Close, line));
                chars.next();
            }
            '"' | '\'' => {
                let start_line = line;
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(ConfError { msg: "unexpected end of file, expecting \";\" or \"}\"".into(), file: file.into(), line: start_line })
                        }
                        Some('\\') => {
                            if let Some(n) = chars.next() {
                                s.push(n);
                            }
                        }
                        Some(q) if q == c => break,
                        Some(ch) => {
                            if ch == '\n' {
                                line += 1;
                            }
                            s.push(ch);
                        }
                    }
                }
                out.push((Tok::Word(s), start_line));
            }
            _ => {
                let mut s = String::new();
                while let Some(&ch) = chars.peek() {
                    if ch.is_whitespace() || ch == ';' || ch == '{' || ch == '}' {
                        break;
                    }
                    s.push(ch);
                    chars.next();
                }
                out.push((Tok::Word(s), line));
            }
        }
    }
    Ok(out)
}

/// One directive: name, arguments, line, and its block if it has one.
#[derive(Debug, Clone)]
struct Directive {
    name: String,
    args: Vec<String>,
    line: usize,
    block: Option<Vec<Directive>>,
}

fn parse_block(toks: &[(Tok, usize)], pos: &mut usize, file: &str, top: bool) -> Result<Vec<Directive>, ConfError> {
    let err = |msg: String, line| ConfError { msg, file: file.into(), line };
    let mut out = Vec::new();
    loop {
        let Some((tok, line)) = toks.get(*pos) else {
            if top {
                return Ok(out);
            }
            let last = toks.last().map(|t| t.1).unwrap_or(1);
            return Err(err("unexpected end of file, expecting \"}\"".into(), last));
        };
        *pos += 1;
        match tok {
            Tok::Close if top => return Err(err("unexpected \"}\"".into(), *line)),
            Tok::Close => return Ok(out),
            Tok::Semi => return Err(err("unexpected \";\"".into(), *line)),
            Tok::Open => return Err(err("unexpected \"{\"".into(), *line)),
            Tok::Word(name) => {
                let mut args = Vec::new();
                loop {
                    match toks.get(*pos) {
                        None => return Err(err("unexpected end of file, expecting \";\" or \"}\"".into(), *line)),
                        Some((Tok::Word(w), _)) => {
                            args.push(w.clone());
                            *pos += 1;
                        }
                        Some((Tok::Semi, _)) => {
                            *pos += 1;
                            out.push(Directive { name: name.clone(), args, line: *line, block: None });
                            break;
                        }
                        Some((Tok::Open, _)) => {
                            *pos += 1;
                            let block = parse_block(toks, pos, file, false)?;
                            out.push(Directive { name: name.clone(), args, line: *line, block: Some(block) });
                            break;
                        }
                        Some((Tok::Close, l)) => return Err(err("unexpected \"}\"".into(), *l)),
                    }
                }
            }
        }
    }
}

// ---- directives ------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ctx {
    Main,
    Events,
    Http,
    Upstream,
    Server,
    Location,
}

/// Directives accepted (for real nginx's sake) but without effect here.
const IGNORED: &[(&str, &[Ctx])] = &[
    ("worker_processes", &[Ctx::Main]),
    ("pid", &[Ctx::Main]),
    ("daemon", &[Ctx::Main]),
    ("master_process", &[Ctx::Main]),
    ("worker_connections", &[Ctx::Events]),
    ("multi_accept", &[Ctx::Events]),
    ("client_body_temp_path", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_temp_path", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("fastcgi_temp_path", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("uwsgi_temp_path", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("scgi_temp_path", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("default_type", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("sendfile", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("tcp_nodelay", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    // The *client-side* keepalive_timeout (in upstream{} it is the upstream one).
    ("keepalive_timeout", &[Ctx::Http, Ctx::Server, Ctx::Location]),
    ("proxy_buffering", &[Ctx::Http, Ctx::Server, Ctx::Location]),
];

const PROXY_CTX: &[Ctx] = &[Ctx::Http, Ctx::Server, Ctx::Location];

fn known_contexts(name: &str) -> Option<&'static [Ctx]> {
    if let Some((_, c)) = IGNORED.iter().find(|(n, _)| *n == name) {
        return Some(c);
    }
    Some(match name {
        "events" | "http" => &[Ctx::Main],
        "error_log" => &[Ctx::Main, Ctx::Http, Ctx::Server, Ctx::Location],
        "upstream" | "log_format" => &[Ctx::Http],
        "server" => &[Ctx::Http, Ctx::Upstream],
        "keepalive" | "keepalive_requests" | "keepalive_time" => &[Ctx::Upstream],
        "listen" | "server_name" => &[Ctx::Server],
        "location" => &[Ctx::Server, Ctx::Location],
        "access_log" => &[Ctx::Http, Ctx::Server, Ctx::Location],
        "proxy_pass" => &[Ctx::Location],
        "proxy_http_version" | "proxy_set_header" | "proxy_connect_timeout" | "proxy_send_timeout"
        | "proxy_read_timeout" | "proxy_next_upstream" | "proxy_next_upstream_tries"
        | "proxy_next_upstream_timeout" | "proxy_request_buffering" | "proxy_buffer_size" | "client_max_body_size"
        | "client_body_buffer_size" | "server_tokens" => PROXY_CTX,
        _ => return None,
    })
}

struct P<'a> {
    file: &'a str,
}

impl P<'_> {
    fn err(&self, line: usize, msg: impl Into<String>) -> ConfError {
        ConfError { msg: msg.into(), file: self.file.into(), line }
    }

    fn nargs(&self, d: &Directive, min: usize, max: usize) -> Result<(), ConfError> {
        if d.args.len() < min || d.args.len() > max {
            return Err(self.err(d.line, format!("invalid number of arguments in \"{}\" directive", d.name)));
        }
        Ok(())
    }

    fn time(&self, d: &Directive) -> Result<Duration, ConfError> {
        self.nargs(d, 1, 1)?;
        time::parse(&d.args[0]).ok_or_else(|| self.err(d.line, format!("\"{}\" directive invalid value", d.name)))
    }

    /// `ngx_parse_size`: a number with an optional k/K or m/M suffix.
    fn size(&self, d: &Directive) -> Result<u64, ConfError> {
        self.nargs(d, 1, 1)?;
        let v = &d.args[0];
        let (num, mul) = match v.as_bytes().last() {
            Some(b'k' | b'K') => (&v[..v.len() - 1], 1024),
            Some(b'm' | b'M') => (&v[..v.len() - 1], 1024 * 1024),
            _ => (&v[..], 1),
        };
        num.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| num.parse::<u64>().ok())
            .flatten()
            .and_then(|n| n.checked_mul(mul))
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| self.err(d.line, format!("\"{}\" directive invalid value", d.name)))
    }

    fn number(&self, d: &Directive) -> Result<u32, ConfError> {
        self.nargs(d, 1, 1)?;
        d.args[0].parse().map_err(|_| self.err(d.line, format!("invalid value \"{}\" in \"{}\" directive", d.args[0], d.name)))
    }

    fn flag(&self, d: &Directive) -> Result<bool, ConfError> {
        self.nargs(d, 1, 1)?;
        match d.args[0].as_str() {
            "on" => Ok(true),
            "off" => Ok(false),
            v => Err(self.err(d.line, format!("invalid value \"{v}\" in \"{}\" directive, it must be \"on\" or \"off\"", d.name))),
        }
    }

    /// Checks name and context, and that blocks appear where blocks belong.
    fn check(&self, d: &Directive, ctx: Ctx) -> Result<(), ConfError> {
        let Some(ctxs) = known_contexts(&d.name) else {
            return Err(self.err(d.line, format!("unknown directive \"{}\"", d.name)));
        };
        if !ctxs.contains(&ctx) {
            return Err(self.err(d.line, format!("\"{}\" directive is not allowed here", d.name)));
        }
        let wants_block = matches!(d.name.as_str(), "events" | "http" | "upstream" | "location")
            || (d.name == "server" && ctx == Ctx::Http);
        if wants_block != d.block.is_some() {
            return Err(self.err(
                d.line,
                if wants_block {
                    format!("directive \"{}\" has no opening \"{{\"", d.name)
                } else {
                    format!("directive \"{}\" is not terminated by \";\"", d.name)
                },
            ));
        }
        Ok(())
    }

    fn proxy(&self, d: &Directive, p: &mut ProxyDirectives) -> Result<bool, ConfError> {
        match d.name.as_str() {
            "proxy_pass" => {
                self.nargs(d, 1, 1)?;
                p.pass = Some(d.args[0].clone());
            }
            "proxy_http_version" => {
                self.nargs(d, 1, 1)?;
                if d.args[0] != "1.0" && d.args[0] != "1.1" {
                    return Err(self.err(d.line, format!("invalid value \"{}\" in \"proxy_http_version\" directive", d.args[0])));
                }
                p.http_version = Some(d.args[0].clone());
            }
            "proxy_set_header" => {
                self.nargs(d, 2, 2)?;
                p.set_header.get_or_insert_with(Vec::new).push((d.args[0].clone(), d.args[1].clone()));
            }
            "proxy_connect_timeout" => p.connect_timeout = Some(self.time(d)?),
            "proxy_send_timeout" => p.send_timeout = Some(self.time(d)?),
            "proxy_read_timeout" => p.read_timeout = Some(self.time(d)?),
            "proxy_next_upstream_timeout" => p.next_upstream_timeout = Some(self.time(d)?),
            "proxy_next_upstream_tries" => p.next_upstream_tries = Some(self.number(d)?),
            "proxy_request_buffering" => p.request_buffering = Some(self.flag(d)?),
            "proxy_buffer_size" => p.buffer_size = Some(self.size(d)? as usize),
            "client_max_body_size" => p.client_max_body_size = Some(self.size(d)?),
            "client_body_buffer_size" => p.client_body_buffer_size = Some(self.size(d)? as usize),
            "server_tokens" => p.server_tokens = Some(self.flag(d)?),
            "proxy_next_upstream" => {
                if d.args.is_empty() {
                    return Err(self.err(d.line, "invalid number of arguments in \"proxy_next_upstream\" directive"));
                }
                let mask = Ft::parse_mask(&d.args).map_err(|bad| self.err(d.line, format!("invalid value \"{}\"", bad.0)))?;
                p.next_upstream = Some(mask);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn access_log(&self, d: &Directive) -> Result<AccessLog, ConfError> {
        self.nargs(d, 1, 3)?;
        if d.args[0] == "off" {
            return Ok(AccessLog { path: None, format: "combined".into() });
        }
        Ok(AccessLog { path: Some(d.args[0].clone()), format: d.args.get(1).cloned().unwrap_or_else(|| "combined".into()) })
    }
}

/// Parses nginx.conf text. `file` names it in error messages.
pub fn parse(src: &str, file: &str) -> Result<Config, ConfError> {
    let toks = tokenize(src, file)?;
    let mut pos = 0;
    let top = parse_block(&toks, &mut pos, file, true)?;
    let p = P { file };
    let mut cfg = Config::default();
    let mut saw_http = false;
    for d in &top {
        p.check(d, Ctx::Main)?;
        match d.name.as_str() {
            "error_log" => {
                p.nargs(d, 1, 2)?;
                cfg.error_log = Some(d.args[0].clone());
            }
            "events" => {
                for e in d.block.as_deref().unwrap_or(&[]) {
                    p.check(e, Ctx::Events)?;
                }
            }
            "http" => {
                saw_http = true;
                parse_http(&p, d.block.as_deref().unwrap_or(&[]), &mut cfg)?;
            }
            _ => {}
        }
    }
    if !saw_http {
        return Err(p.err(toks.last().map(|t| t.1).unwrap_or(1), "no \"http\" block: nothing to proxy"));
    }
    Ok(cfg)
}

fn parse_http(p: &P, block: &[Directive], cfg: &mut Config) -> Result<(), ConfError> {
    for d in block {
        p.check(d, Ctx::Http)?;
        if p.proxy(d, &mut cfg.proxy)? {
            continue;
        }
        match d.name.as_str() {
            "upstream" => {
                p.nargs(d, 1, 1)?;
                if cfg.upstreams.iter().any(|u| u.name == d.args[0]) {
                    return Err(p.err(d.line, format!("duplicate upstream \"{}\"", d.args[0])));
                }
                cfg.upstreams.push(parse_upstream(p, d)?);
            }
            "server" => cfg.servers.push(parse_server(p, d)?),
            "log_format" => {
                if d.args.len() < 2 {
                    return Err(p.err(d.line, "invalid number of arguments in \"log_format\" directive"));
                }
                cfg.log_formats.push((d.args[0].clone(), d.args[1..].concat()));
            }
            "access_log" => cfg.access_log = Some(p.access_log(d)?),
            "error_log" => cfg.error_log = d.args.first().cloned(),
            _ => {}
        }
    }
    Ok(())
}

fn parse_upstream(p: &P, d: &Directive) -> Result<Upstream, ConfError> {
    let mut u = Upstream {
        name: d.args[0].clone(),
        servers: Vec::new(),
        keepalive: None,
        keepalive_timeout: None,
        keepalive_requests: None,
        keepalive_time: None,
    };
    for s in d.block.as_deref().unwrap_or(&[]) {
        // Inside upstream{}, keepalive_timeout is the upstream one.
        if s.name != "keepalive_timeout" {
            p.check(s, Ctx::Upstream)?;
        }
        match s.name.as_str() {
            "server" => {
                if s.args.is_empty() {
                    return Err(p.err(s.line, "invalid number of arguments in \"server\" directive"));
                }
                let srv = UpstreamServer::with_params(s.args[0].clone(), &s.args[1..])
                    .map_err(|bad| p.err(s.line, bad.to_string()))?;
                u.servers.push(srv);
            }
            "keepalive" => u.keepalive = Some(p.number(s)?),
            "keepalive_timeout" => u.keepalive_timeout = Some(p.time(s)?),
            "keepalive_requests" => u.keepalive_requests = Some(p.number(s)?),
            "keepalive_time" => u.keepalive_time = Some(p.time(s)?),
            _ => {}
        }
    }
    if u.servers.is_empty() {
        return Err(p.err(d.line, format!("no servers are inside upstream \"{}\"", u.name)));
    }
    Ok(u)
}

fn parse_server(p: &P, d: &Directive) -> Result<Server, ConfError> {
    let mut srv = Server::default();
    for s in d.block.as_deref().unwrap_or(&[]) {
        p.check(s, Ctx::Server)?;
        if p.proxy(s, &mut srv.proxy)? {
            continue;
        }
        match s.name.as_str() {
            "listen" => {
                p.nargs(s, 1, 8)?;
                srv.listen.push(s.args[0].clone());
            }
            "server_name" => srv.server_name = s.args.first().cloned(),
            "access_log" => srv.access_log = Some(p.access_log(s)?),
            "location" => srv.locations.push(parse_location(p, s)?),
            _ => {}
        }
    }
    Ok(srv)
}

fn parse_location(p: &P, d: &Directive) -> Result<Location, ConfError> {
    let (modifier, path) = match d.args.as_slice() {
        [path] => (String::new(), path.clone()),
        [m, path] if m == "=" => (m.clone(), path.clone()),
        _ => return Err(p.err(d.line, "invalid number of arguments in \"location\" directive")),
    };
    let mut loc = Location { modifier, path, proxy: ProxyDirectives::default() };
    for s in d.block.as_deref().unwrap_or(&[]) {
        p.check(s, Ctx::Location)?;
        if s.name == "location" {
            return Err(p.err(s.line, "nested locations are not supported by this emulation"));
        }
        p.proxy(s, &mut loc.proxy)?;
    }
    Ok(loc)
}

// ---- rendering ---------------------------------------------------------------

fn q(s: &str) -> String {
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == ';' || c == '{' || c == '}' || c == '"' || c == '\'' || c == '$') {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    } else {
        s.to_string()
    }
}

fn render_proxy(out: &mut String, p: &ProxyDirectives, indent: &str) {
    let mut line = |s: String| {
        out.push_str(indent);
        out.push_str(&s);
        out.push_str(";\n");
    };
    if let Some(v) = &p.pass {
        line(format!("proxy_pass {v}"));
    }
    if let Some(v) = &p.http_version {
        line(format!("proxy_http_version {v}"));
    }
    for (k, v) in p.set_header.iter().flatten() {
        line(format!("proxy_set_header {} {}", q(k), q(v)));
    }
    if let Some(v) = p.connect_timeout {
        line(format!("proxy_connect_timeout {}", time::format(v)));
    }
    if let Some(v) = p.send_timeout {
        line(format!("proxy_send_timeout {}", time::format(v)));
    }
    if let Some(v) = p.read_timeout {
        line(format!("proxy_read_timeout {}", time::format(v)));
    }
    if let Some(v) = p.next_upstream {
        line(format!("proxy_next_upstream {}", v.keywords().join(" ")));
    }
    if let Some(v) = p.next_upstream_tries {
        line(format!("proxy_next_upstream_tries {v}"));
    }
    if let Some(v) = p.next_upstream_timeout {
        line(format!("proxy_next_upstream_timeout {}", time::format(v)));
    }
    if let Some(v) = p.request_buffering {
        line(format!("proxy_request_buffering {}", if v { "on" } else { "off" }));
    }
    if let Some(v) = p.buffer_size {
        line(format!("proxy_buffer_size {v}"));
    }
    if let Some(v) = p.client_max_body_size {
        line(format!("client_max_body_size {v}"));
    }
    if let Some(v) = p.client_body_buffer_size {
        line(format!("client_body_buffer_size {v}"));
    }
    if let Some(v) = p.server_tokens {
        line(format!("server_tokens {}", if v { "on" } else { "off" }));
    }
}

impl Config {
    /// Renders a complete nginx.conf that real nginx runs with
    /// `nginx -p PREFIX -c FILE`: pid and temp paths are prefix-relative.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# Rendered by badgateway-lab; read by real nginx and by the built-in proxy.\n");
        s.push_str("worker_processes 1;\npid nginx.pid;\n");
        if let Some(e) = &self.error_log {
            s.push_str(&format!("error_log {} info;\n", q(e)));
        }
        s.push_str("events {\n    worker_connections 1024;\n}\n\nhttp {\n");
        for t in ["client_body_temp_path", "proxy_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"] {
            s.push_str(&format!("    {t} {};\n", t.trim_end_matches("_path")));
        }
        for (name, fmt) in &self.log_formats {
            s.push_str(&format!("    log_format {name} {};\n", q(fmt)));
        }
        if let Some(a) = &self.access_log {
            s.push_str(&format!("    access_log {};\n", render_access(a)));
        }
        render_proxy(&mut s, &self.proxy, "    ");
        for u in &self.upstreams {
            s.push_str(&format!("\n    upstream {} {{\n", u.name));
            for srv in &u.servers {
                let mut l = format!("        server {}", srv.addr);
                if srv.weight != 1 {
                    l.push_str(&format!(" weight={}", srv.weight));
                }
                if srv.max_fails != 1 {
                    l.push_str(&format!(" max_fails={}", srv.max_fails));
                }
                if srv.fail_timeout != crate::resolve::defaults::FAIL_TIMEOUT {
                    l.push_str(&format!(" fail_timeout={}", time::format(srv.fail_timeout)));
                }
                if srv.down {
                    l.push_str(" down");
                }
                if srv.backup {
                    l.push_str(" backup");
                }
                s.push_str(&l);
                s.push_str(";\n");
            }
            if let Some(k) = u.keepalive {
                s.push_str(&format!("        keepalive {k};\n"));
            }
            if let Some(t) = u.keepalive_timeout {
                s.push_str(&format!("        keepalive_timeout {};\n", time::format(t)));
            }
            if let Some(r) = u.keepalive_requests {
                s.push_str(&format!("        keepalive_requests {r};\n"));
            }
            if let Some(t) = u.keepalive_time {
                s.push_str(&format!("        keepalive_time {};\n", time::format(t)));
            }
            s.push_str("    }\n");
        }
        for srv in &self.servers {
            s.push_str("\n    server {\n");
            for l in &srv.listen {
                s.push_str(&format!("        listen {l};\n"));
            }
            if let Some(n) = &srv.server_name {
                s.push_str(&format!("        server_name {n};\n"));
            }
            if let Some(a) = &srv.access_log {
                s.push_str(&format!("        access_log {};\n", render_access(a)));
            }
            render_proxy(&mut s, &srv.proxy, "        ");
            for loc in &srv.locations {
                let m = if loc.modifier.is_empty() { String::new() } else { format!("{} ", loc.modifier) };
                s.push_str(&format!("        location {m}{} {{\n", loc.path));
                render_proxy(&mut s, &loc.proxy, "            ");
                s.push_str("        }\n");
            }
            s.push_str("    }\n");
        }
        s.push_str("}\n");
        s
    }
}

fn render_access(a: &AccessLog) -> String {
    match &a.path {
        None => "off".into(),
        Some(p) => format!("{} {}", q(p), a.format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(src: &str) -> String {
        parse(src, "t.conf").unwrap_err().to_string()
    }

    #[test]
    fn nginx_style_errors() {
        assert_eq!(err("http {\n  bogus 1;\n}"), "unknown directive \"bogus\" in t.conf:2");
        assert_eq!(err("http {\n server {\n  proxy_pass http://x;\n }\n}"), "\"proxy_pass\" directive is not allowed here in t.conf:3");
        assert_eq!(err("http {\n upstream u {\n  keepalive;\n  server a:1;\n }\n}"), "invalid number of arguments in \"keepalive\" directive in t.conf:3");
        assert_eq!(err("http {\n proxy_read_timeout 5x;\n}"), "\"proxy_read_timeout\" directive invalid value in t.conf:2");
        assert_eq!(err("http {\n proxy_next_upstream error sometimes;\n}"), "invalid value \"sometimes\" in t.conf:2");
        assert_eq!(err("http {\n server {\n"), "unexpected end of file, expecting \"}\" in t.conf:2");
        assert_eq!(err("http { }\n}"), "unexpected \"}\" in t.conf:2");
        assert_eq!(err("http {\n upstream u {\n }\n}"), "no servers are inside upstream \"u\" in t.conf:2");
        assert_eq!(err("http {\n upstream u {\n  server a:1 wieght=2;\n }\n}"), "invalid parameter \"wieght=2\" in t.conf:3");
    }

    #[test]
    fn fixture_parses() {
        let src = include_str!("../../../fixtures/nginx.conf");
        let cfg = parse(src, "fixtures/nginx.conf").unwrap();
        assert_eq!(cfg.upstreams[0].keepalive, Some(16));
        assert_eq!(cfg.servers[0].locations[0].proxy.pass.as_deref(), Some("http://go_upstream"));
    }

    #[test]
    fn render_round_trips() {
        let src = include_str!("../../../fixtures/nginx.conf");
        let cfg = parse(src, "fixtures/nginx.conf").unwrap();
        let again = parse(&cfg.render(), "rendered").unwrap();
        assert_eq!(cfg, again);
    }
}
