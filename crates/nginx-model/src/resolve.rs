//! The effective configuration: nginx.conf as parsed ([`Config`]) plus the
//! version profile, resolved once into what the upstream module runs with.
//! Inheritance (`ngx_http_proxy_merge_loc_conf`), the defaults nginx fills
//! in, the keepalive settings of each upstream, implicit upstreams for
//! `proxy_pass http://host:port`, and the access-log format. The proxy binds
//! and resolves host names from this; the oracle reads the same values.

use crate::conf::{self, AccessLog, Config, Location, PassTarget, Pos, ProxyDirectives, UpstreamServer};
use crate::keepalive::KeepaliveSettings;
use crate::logs;
use crate::profile::{self, Profile};
use crate::retry::{Ft, RetryContext};
use std::time::Duration;

/// nginx's defaults, where the module source sets them.
pub mod defaults {
    use crate::retry::Ft;
    use std::time::Duration;

    /// `proxy_connect_timeout`, `proxy_send_timeout`, `proxy_read_timeout`
    /// (`ngx_http_proxy_merge_loc_conf`).
    pub const PROXY_TIMEOUT: Duration = Duration::from_secs(60);
    /// `proxy_next_upstream error timeout`.
    pub const NEXT_UPSTREAM: Ft = Ft::DEFAULT_MASK;
    /// `proxy_next_upstream_tries 0` (no cap).
    pub const NEXT_UPSTREAM_TRIES: u32 = 0;
    /// `proxy_buffer_size`: one memory page.
    pub const BUFFER_SIZE: usize = 4096;
    /// `client_max_body_size` (ngx_http_core_module): 1m; 0 = no limit.
    pub const CLIENT_MAX_BODY_SIZE: u64 = 1024 * 1024;
    /// `client_body_buffer_size`: two memory pages, 8k on x86-64.
    pub const CLIENT_BODY_BUFFER_SIZE: usize = 8 * 1024;
    /// Upstream `keepalive_timeout` (`ngx_http_upstream_keepalive_init_upstream`).
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
    /// `keepalive_requests` (1000 since nginx 1.19.10).
    pub const KEEPALIVE_REQUESTS: u32 = 1000;
    /// `keepalive_time`.
    pub const KEEPALIVE_TIME: Duration = Duration::from_secs(3600);
    /// `server ... weight=1 max_fails=1 fail_timeout=10s` (`ngx_http_upstream_server`).
    pub const WEIGHT: u32 = 1;
    pub const MAX_FAILS: u32 = 1;
    pub const FAIL_TIMEOUT: Duration = Duration::from_secs(10);
}

/// `http://`'s default port.
const HTTP_PORT: u16 = 80;

/// Why a configuration cannot be resolved, naming where nginx.conf says it
/// (` in FILE:LINE`, as nginx's messages do). [`resolve`] returns only
/// `UnknownLogFormat` (a configuration built in code): what the emulation
/// does not run is listed in [`Resolved::notes`] and left out instead. The
/// other variants are kept for callers that match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{what} is not supported by this emulation{pos}")]
    Unsupported { what: String, pos: Pos },
    #[error("location \"{path}\" has no \"proxy_pass\" (static files are not emulated){pos}")]
    NoProxyPass { path: String, pos: Pos },
    #[error("invalid URL prefix in \"{pass}\" (only http:// upstreams are emulated){pos}")]
    NotHttp { pass: String, pos: Pos },
    #[error("unknown log format \"{name}\"{pos}")]
    UnknownLogFormat { name: String, pos: Pos },
    #[error("{source} (in the log_format used by access_log){pos}")]
    LogFormat { source: logs::FormatError, pos: Pos },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedUpstream {
    pub name: String,
    /// The `server` lines (their defaults are filled in by the parser).
    pub peers: Vec<UpstreamServer>,
    pub keepalive: KeepaliveSettings,
    /// The cache comes from nginx ≥ 1.29.7's default (`keepalive 32` in an
    /// `upstream` block without a `keepalive` line), not from the text.
    pub keepalive_by_default: bool,
    /// `least_conn`: the balancer picks the fewest connections per weight.
    pub least_conn: bool,
}

impl ResolvedUpstream {
    /// `peers->single`: one primary server and no backup
    /// (`ngx_http_upstream_init_round_robin`).
    pub fn single(&self) -> bool {
        self.peers.iter().filter(|p| !p.backup).count() == 1 && !self.peers.iter().any(|p| p.backup)
    }
}

/// How a location matches a URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match {
    /// `location = /path`.
    Exact,
    /// `location /path`.
    Prefix,
    /// `location @name`: reached only by name (`ngx_http_named_location`,
    /// from `error_page @name`), never by a URI.
    Named,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLocation {
    pub matcher: Match,
    pub path: String,
    /// Index into [`Resolved::upstreams`].
    pub upstream: usize,
    /// `$proxy_host`.
    pub proxy_host: String,
    /// The URI part of `proxy_pass` (`http://u/v1/` → `/v1/`), which takes
    /// the place of the location's prefix ([`crate::http::upstream_uri`]).
    pub pass_uri: Option<String>,
    /// The upstream request line says HTTP/1.1.
    pub http11: bool,
    /// Request headers nginx sets (name, value template); empty values are not sent.
    pub headers: Vec<(String, String)>,
    pub connect_timeout: Duration,
    pub send_timeout: Duration,
    pub read_timeout: Duration,
    pub next_upstream: Ft,
    pub next_upstream_tries: u32,
    /// `proxy_next_upstream_timeout` (`None`: 0, unbounded).
    pub next_upstream_timeout: Option<Duration>,
    pub request_buffering: bool,
    /// `proxy_buffering` (on by default).
    pub buffering: bool,
    pub buffer_size: usize,
    /// `proxy_buffers N size` (default 8 of one page).
    pub buffers: (usize, usize),
    /// `proxy_max_temp_file_size` (default 1024m; 0: no temporary file).
    pub max_temp_file_size: u64,
    /// `proxy_ignore_headers X-Accel-Buffering`.
    pub ignore_accel_buffering: bool,
    /// `proxy_temp_path` and its levels; unset, the proxy's default
    /// (`proxy_temp` under the prefix, levels 1 2), which is what
    /// `Config::render` writes for real nginx too. Always `Some` once
    /// resolved.
    pub temp_path: Option<(String, [usize; 3])>,
    /// `client_max_body_size`; 0 = no limit (413 past it).
    pub client_max_body_size: u64,
    /// `client_body_buffer_size`: a larger body is spooled to a temp file.
    pub client_body_buffer_size: usize,
    /// `server_tokens`: `Server: nginx/1.22.1` or `Server: nginx`.
    pub server_tokens: bool,
    /// The client connection's keepalive directives here.
    pub client_keepalive: crate::response::ClientKeepalive,
    /// `add_header` lines that apply here.
    pub add_headers: Vec<conf::AddHeader>,
    /// `error_page` lines that apply here.
    pub error_pages: Vec<conf::ErrorPage>,
    /// `proxy_intercept_errors on`.
    pub intercept_errors: bool,
    /// The access logs a request here is written to ([`merge_access_logs`]).
    pub access_log: std::sync::Arc<[AccessLogSpec]>,
    /// `proxy_pass` with variables: the script, evaluated per request
    /// ([`dynamic_pass`]); `upstream`, `proxy_host` and `pass_uri` are then
    /// unused. Such locations are in [`ResolvedServer::dynamic`] only.
    pub pass_script: Option<String>,
    /// `proxy_bind`: the local address upstream sockets are bound to
    /// before connecting (`ngx_event_connect_peer`); `None`: off.
    pub bind: Option<std::net::SocketAddr>,
    /// `auth_request URI`: the subrequest run before the request is passed
    /// (`ngx_http_auth_request_handler`, [`crate::auth`]); `None`: unset or
    /// `auth_request off`.
    pub auth_request: Option<String>,
}

impl ResolvedLocation {
    /// What `ngx_http_upstream_next` needs to know about a request here.
    pub fn retry_context(&self, method: &str, upstream: &ResolvedUpstream) -> RetryContext {
        RetryContext {
            method: method.to_string(),
            mask: self.next_upstream,
            request_buffering: self.request_buffering,
            next_upstream_timeout: self.next_upstream_timeout,
            single_peer: upstream.single(),
        }
    }

    /// Whether upstream connections from here can be reused at all.
    pub fn reuse_possible(&self, upstream: &ResolvedUpstream) -> bool {
        profile::upstream_reuse_possible(upstream.keepalive.capacity, self.http11, &self.headers)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedServer {
    /// `host:port` per `listen`; empty: nginx's default (`*:80`, `*:8000` if not root).
    pub listen: Vec<String>,
    /// Where each `listen` was read.
    pub listen_pos: Vec<Pos>,
    /// Where the server block was read.
    pub pos: Pos,
    pub name: String,
    pub locations: Vec<ResolvedLocation>,
    /// The access logs of a request no location takes (the server's
    /// own, else the http level's).
    pub access_log: std::sync::Arc<[AccessLogSpec]>,
    /// Locations that answer with `return` (it runs before `proxy_pass`).
    pub returns: Vec<ReturnLocation>,
    /// The `add_header` lines of a request no location takes.
    pub add_headers: Vec<conf::AddHeader>,
    /// The client keepalive directives of a request no location takes.
    pub client_keepalive: crate::response::ClientKeepalive,
    /// Locations whose `proxy_pass` has variables (not in `locations`: they
    /// have no upstream of their own).
    pub dynamic: Vec<ResolvedLocation>,
    /// A server-level `return` (`ngx_http_rewrite_handler` in the server
    /// rewrite phase, before `ngx_http_core_find_location`): it answers
    /// every request, with the server level's logs and headers.
    pub ret: Option<ReturnLocation>,
}

/// A location whose `return` answers every request it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct ReturnLocation {
    pub matcher: Match,
    pub path: String,
    pub ret: conf::Return,
    pub access_log: std::sync::Arc<[AccessLogSpec]>,
    pub server_tokens: bool,
    pub client_keepalive: crate::response::ClientKeepalive,
    pub add_headers: Vec<conf::AddHeader>,
}

/// Which location takes a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Route<'a> {
    Proxy(&'a ResolvedLocation),
    Return(&'a ReturnLocation),
}

impl ResolvedServer {
    /// The location for a URI path among the proxied and the `return`
    /// ones: an exact match, else the longest prefix
    /// (`ngx_http_core_find_location`, without regex locations); a
    /// server-level `return` first, whatever the path (the server rewrite
    /// phase runs before the location is found).
    pub fn route(&self, path: &str) -> Option<Route<'_>> {
        if let Some(r) = &self.ret {
            return Some(Route::Return(r));
        }
        let fits = |m: Match, p: &str| match m {
            Match::Exact => path == p,
            Match::Prefix => path.starts_with(p),
            Match::Named => false,
        };
        let key = |m: Match, p: &str| (m == Match::Exact, p.len());
        let proxied = self.locations.iter().chain(&self.dynamic).filter(|l| fits(l.matcher, &l.path)).map(|l| (key(l.matcher, &l.path), Route::Proxy(l)));
        let returns = self.returns.iter().filter(|l| fits(l.matcher, &l.path)).map(|l| (key(l.matcher, &l.path), Route::Return(l)));
        proxied.chain(returns).max_by_key(|(k, _)| *k).map(|(_, r)| r)
    }

    /// The named location `@name` (`ngx_http_named_location`: an exact,
    /// case-sensitive match of the name).
    pub fn named(&self, name: &str) -> Option<Route<'_>> {
        let proxied = self.locations.iter().chain(&self.dynamic).find(|l| l.matcher == Match::Named && l.path == name).map(Route::Proxy);
        proxied.or_else(|| self.returns.iter().find(|l| l.matcher == Match::Named && l.path == name).map(Route::Return))
    }

    /// The location for a URI path: an exact match, else the longest prefix
    /// (`ngx_http_core_find_location`, without regex locations).
    pub fn location_for(&self, path: &str) -> Option<&ResolvedLocation> {
        self.locations
            .iter()
            .filter(|l| match l.matcher {
                Match::Exact => path == l.path,
                Match::Prefix => path.starts_with(&l.path),
                Match::Named => false,
            })
            .max_by_key(|l| (l.matcher == Match::Exact, l.path.len()))
    }
}

/// One `access_log` that applies: a path (as written) and a format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogSpec {
    pub path: String,
    pub format: String,
    /// The format's `escape=`.
    pub escape: logs::LogEscape,
    /// nginx's default log: no `access_log` at this level or above
    /// ([`DEFAULT_ACCESS_LOG`], combined).
    pub implicit: bool,
}

/// `NGX_HTTP_LOG_PATH` as nginx's source sets it (relative to the prefix;
/// Debian's build says /var/log/nginx/access.log).
pub const DEFAULT_ACCESS_LOG: &str = "logs/access.log";

#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub profile: Profile,
    pub upstreams: Vec<ResolvedUpstream>,
    pub servers: Vec<ResolvedServer>,
    pub error_log: Option<String>,
    /// Every access log file some request may be written to, each once.
    pub access_logs: Vec<AccessLogSpec>,
    /// What nginx would run and the emulation runs without (regex, named
    /// and nested locations, locations that do not proxy, ...), each with
    /// where it was read: `proxy -t` and the proxy's start list them.
    pub notes: Vec<(String, Pos)>,
}

/// Resolves a parsed configuration for one nginx profile.
pub fn resolve(cfg: &Config, profile: Profile) -> Result<Resolved, ResolveError> {
    let mut upstreams: Vec<ResolvedUpstream> = cfg
        .upstreams
        .iter()
        .map(|u| ResolvedUpstream {
            least_conn: u.least_conn,
            name: u.name.clone(),
            peers: u.servers.clone(),
            keepalive_by_default: u.keepalive.is_none() && profile::keepalive_capacity(profile, None, true) > 0,
            keepalive: KeepaliveSettings {
                capacity: profile::keepalive_capacity(profile, u.keepalive, true),
                timeout: u.keepalive_timeout.unwrap_or(defaults::KEEPALIVE_TIMEOUT),
                requests: u.keepalive_requests.unwrap_or(defaults::KEEPALIVE_REQUESTS),
                time: u.keepalive_time.unwrap_or(defaults::KEEPALIVE_TIME),
            },
        })
        .collect();
    // What nginx runs and the emulation does not is left out, not refused:
    // the configuration is nginx's, the 502 model is what it can tell.
    let mut notes: Vec<(String, Pos)> = cfg.unsupported.clone();
    let mut servers = Vec::new();
    let mut access_logs: Vec<AccessLogSpec> = Vec::new();
    let mut specs = |lines: &[AccessLog], notes: &mut Vec<(String, Pos)>| -> Result<std::sync::Arc<[AccessLogSpec]>, ResolveError> {
        let mut out = Vec::new();
        // ngx_http_log_merge_loc_conf: no access_log here nor above (not
        // even `off`) is nginx's default log, in the combined format.
        let default = [AccessLog { path: Some(DEFAULT_ACCESS_LOG.into()), format: "combined".into(), pos: Pos::default() }];
        let implicit = lines.is_empty();
        let lines = if implicit { &default[..] } else { lines };
        for a in merge_access_logs(lines) {
            if let Some(mut spec) = access_spec(cfg, a, notes)? {
                spec.implicit = implicit;
                if !access_logs.contains(&spec) {
                    access_logs.push(spec.clone());
                }
                out.push(spec);
            }
        }
        // Shared by every request that logs here (one count, no copy).
        Ok(out.into())
    };
    for srv in &cfg.servers {
        let server_proxy = srv.proxy.merged_over(&cfg.proxy);
        let server_logs: &[AccessLog] = if srv.access_log.is_empty() { &cfg.access_log } else { &srv.access_log };
        let mut locations = Vec::new();
        let mut dynamic = Vec::new();
        let mut returns = Vec::new();
        for loc in srv.locations.iter().chain(&srv.named) {
            let scripts = loc.ret.iter().filter_map(|r| r.text.as_deref().and_then(|t| script_note("return", t, &loc.pos)));
            let added = loc.proxy.add_header.iter().flatten().filter_map(|h| script_note("add_header", &h.value, &loc.pos));
            for note in scripts.chain(added).collect::<Vec<_>>() {
                if !notes.contains(&note) {
                    notes.push(note);
                }
            }
            if let Some(ret) = &loc.ret {
                let p = loc.proxy.merged_over(&server_proxy);
                returns.push(ReturnLocation {
                    matcher: matcher(loc),
                    path: loc.path.clone(),
                    ret: ret.clone(),
                    access_log: specs(if loc.access_log.is_empty() { server_logs } else { &loc.access_log }, &mut notes)?,
                    server_tokens: p.server_tokens.unwrap_or(true),
                    client_keepalive: client_keepalive(&p),
                    add_headers: p.add_header.clone().unwrap_or_default(),
                });
                continue;
            }
            match location(loc, &loc.proxy.merged_over(&server_proxy), &mut upstreams, profile) {
                Ok(mut l) => {
                    l.access_log = specs(if loc.access_log.is_empty() { server_logs } else { &loc.access_log }, &mut notes)?;
                    if l.pass_script.is_some() {
                        let note = ("proxy_pass with variables under a \"resolver\": a host name that names no upstream is not resolved here (answered 502)".to_string(), loc.proxy.pass_pos.clone());
                        if cfg.resolver && !notes.contains(&note) {
                            notes.push(note);
                        }
                        dynamic.push(l);
                    } else {
                        locations.push(l);
                    }
                }
                Err(Some(note)) => notes.push(note),
                Err(None) => {}
            }
        }
        let access_log = specs(server_logs, &mut notes)?;
        let add_headers = server_proxy.add_header.clone().unwrap_or_default();
        let scripts = srv.ret.iter().filter_map(|r| r.text.as_deref().and_then(|t| script_note("return", t, &srv.pos)));
        let added = add_headers.iter().filter_map(|h| script_note("add_header", &h.value, &srv.pos));
        for note in scripts.chain(added).collect::<Vec<_>>() {
            if !notes.contains(&note) {
                notes.push(note);
            }
        }
        let ret = srv.ret.as_ref().map(|ret| ReturnLocation {
            matcher: Match::Prefix,
            path: String::new(),
            ret: ret.clone(),
            access_log: access_log.clone(),
            server_tokens: server_proxy.server_tokens.unwrap_or(true),
            client_keepalive: client_keepalive(&server_proxy),
            add_headers: add_headers.clone(),
        });
        servers.push(ResolvedServer { listen: srv.listen.clone(), listen_pos: srv.listen_pos.0.clone(), pos: srv.pos.clone(), name: srv.server_name.clone().unwrap_or_default(), locations, dynamic, access_log, returns, add_headers, ret, client_keepalive: client_keepalive(&server_proxy) });
    }
    Ok(Resolved {
        profile,
        upstreams,
        servers,
        error_log: cfg.error_log.clone(),
        access_logs,
        notes,
    })
}

/// The `access_log` lines of the level that applies, as
/// `ngx_http_log_merge_loc_conf` inherits them: the nearest level with any
/// (the caller picks it), all of them written; `access_log off` among them
/// writes none (`ngx_http_log_handler` returns on `lcf->off`).
pub fn merge_access_logs(lines: &[AccessLog]) -> Vec<&AccessLog> {
    if lines.iter().any(|a| a.path.is_none()) {
        return Vec::new();
    }
    lines.iter().collect()
}

/// One `access_log` line with its format text; `None` (noted) when the
/// emulated log cannot write the format.
fn access_spec(cfg: &Config, a: &AccessLog, notes: &mut Vec<(String, Pos)>) -> Result<Option<AccessLogSpec>, ResolveError> {
    let Some(path) = &a.path else { return Ok(None) };
    let not_written = if path.contains('$') {
        Some("an access_log path with variables (not written here)")
    } else if path.starts_with("syslog:") {
        Some("an access_log to syslog (not written here)")
    } else {
        None
    };
    if let Some(what) = not_written {
        let note = (what.to_string(), a.pos.clone());
        if !notes.contains(&note) {
            notes.push(note);
        }
        return Ok(None);
    }
    let format = if a.format == "combined" {
        logs::COMBINED.to_string()
    } else {
        cfg.log_formats
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&a.format))
            .map(|(_, f)| f.clone())
            .ok_or_else(|| ResolveError::UnknownLogFormat { name: a.format.clone(), pos: a.pos.clone() })?
    };
    match logs::check_format(&format) {
        Ok(()) => {
            let escape = cfg.log_escapes.iter().find(|(n, _)| n.eq_ignore_ascii_case(&a.format)).map(|(_, e)| *e).unwrap_or_default();
            Ok(Some(AccessLogSpec { path: path.clone(), format, implicit: false, escape }))
        }
        Err(e) => {
            let note = (format!("the access_log (its log_format: {e})"), a.pos.clone());
            if !notes.contains(&note) {
                notes.push(note);
            }
            Ok(None)
        }
    }
}

/// A note for a `return` or `add_header` script naming a variable the
/// emulation has no value for ([`crate::http::RequestVars::value`]): it is
/// sent as written.
fn script_note(what: &str, script: &str, pos: &Pos) -> Option<(String, Pos)> {
    let vars = crate::http::RequestVars::default();
    let v = logs::variable_names(script).into_iter().find(|v| vars.value(v, "").is_none())?;
    Some((format!("{what} with the variable \"${v}\", which is not emulated (sent as written)"), pos.clone()))
}

/// How a location is found (`ngx_http_core_location`'s modifiers).
fn matcher(loc: &Location) -> Match {
    if loc.modifier == "=" {
        Match::Exact
    } else if loc.modifier.is_empty() && loc.path.starts_with('@') {
        Match::Named
    } else {
        Match::Prefix
    }
}

/// A location as the upstream module runs it, or left out (answering 404):
/// `Err` carries the note to list, `None` when the parser listed it already.
fn location(loc: &Location, p: &ProxyDirectives, upstreams: &mut Vec<ResolvedUpstream>, profile: Profile) -> Result<ResolvedLocation, Option<(String, Pos)>> {
    let Some(pass) = p.pass.as_deref() else {
        return Err(Some((format!("location \"{}\" without proxy_pass (answered 404 here)", loc.path), loc.pos.clone())));
    };
    // What the parser decided (and noted) for this proxy_pass; one built in
    // code (not read from a file) has no note yet.
    let built = p.pass_pos.line == 0;
    let (u, pass_script) = match conf::pass_target(pass.as_bytes()) {
        Ok(PassTarget::Http(u)) => (u, None),
        // Evaluated per request; the upstream fields are placeholders.
        Ok(PassTarget::Variables) => {
            // A variable the emulation has no value for (`set`, `map`, ...):
            // the location is left out rather than run with the name as written.
            let vars = crate::http::RequestVars::default();
            if let Some(v) = logs::variable_names(pass).into_iter().find(|v| vars.value(v, "").is_none()) {
                return Err(Some((format!("proxy_pass with the variable \"${v}\", which is not emulated (its location answers 404 here)"), p.pass_pos.clone())));
            }
            (conf::PassUrl { host: String::new(), port: None, uri: None }, Some(pass.to_string()))
        }
        Ok(t) => return Err(built.then(|| (t.not_emulated().unwrap_or_default().to_string(), p.pass_pos.clone()))),
        Err(e) => return Err(built.then(|| (format!("{e} (its location answers 404 here)"), p.pass_pos.clone()))),
    };
    let name = u.authority();
    let upstream = match upstreams.iter().position(|up| up.name.eq_ignore_ascii_case(&name)) {
        Some(i) => i,
        None if pass_script.is_some() => 0,
        None => {
            // `proxy_pass http://host:port` without an upstream block: an
            // implicit upstream of one server, never a keepalive cache.
            upstreams.push(ResolvedUpstream {
                least_conn: false,
                keepalive_by_default: false,
                name,
                peers: vec![UpstreamServer { pos: p.pass_pos.clone(), ..UpstreamServer::new(u.addr(HTTP_PORT)) }],
                keepalive: KeepaliveSettings {
                    capacity: profile::keepalive_capacity(profile, None, false),
                    timeout: defaults::KEEPALIVE_TIMEOUT,
                    requests: defaults::KEEPALIVE_REQUESTS,
                    time: defaults::KEEPALIVE_TIME,
                },
            });
            upstreams.len() - 1
        }
    };
    Ok(ResolvedLocation {
        matcher: matcher(loc),
        path: loc.path.clone(),
        upstream,
        proxy_host: u.proxy_host(HTTP_PORT),
        pass_uri: u.uri.clone(),
        http11: profile::http11(profile, p.http_version.as_deref()),
        headers: profile::request_headers(profile, p.set_header.as_deref().unwrap_or(&[])),
        connect_timeout: p.connect_timeout.unwrap_or(defaults::PROXY_TIMEOUT),
        send_timeout: p.send_timeout.unwrap_or(defaults::PROXY_TIMEOUT),
        read_timeout: p.read_timeout.unwrap_or(defaults::PROXY_TIMEOUT),
        next_upstream: p.next_upstream.unwrap_or(defaults::NEXT_UPSTREAM),
        next_upstream_tries: p.next_upstream_tries.unwrap_or(defaults::NEXT_UPSTREAM_TRIES),
        next_upstream_timeout: p.next_upstream_timeout.filter(|t| !t.is_zero()),
        request_buffering: p.request_buffering.unwrap_or(true),
        buffering: p.buffering.unwrap_or(true),
        buffer_size: p.buffer_size.unwrap_or(defaults::BUFFER_SIZE),
        buffers: p.buffers.unwrap_or(crate::buffering::BUFFERS),
        max_temp_file_size: p.max_temp_file_size.unwrap_or(crate::buffering::MAX_TEMP_FILE_SIZE),
        ignore_accel_buffering: p.ignore_accel_buffering.unwrap_or(false),
        temp_path: p.temp_path.clone().or_else(|| Some(("proxy_temp".into(), crate::buffering::DEFAULT_LEVELS))),
        client_max_body_size: p.client_max_body_size.unwrap_or(defaults::CLIENT_MAX_BODY_SIZE),
        client_body_buffer_size: p.client_body_buffer_size.unwrap_or(defaults::CLIENT_BODY_BUFFER_SIZE),
        server_tokens: p.server_tokens.unwrap_or(true),
        client_keepalive: client_keepalive(p),
        add_headers: p.add_header.clone().unwrap_or_default(),
        error_pages: p.error_pages.clone().unwrap_or_default(),
        intercept_errors: p.intercept_errors.unwrap_or(false),
        access_log: std::sync::Arc::from([]),
        pass_script,
        bind: p.bind.clone().flatten().and_then(|v| conf::bind_addr(&v)),
        auth_request: p.auth_request.clone().filter(|u| !u.is_empty()),
    })
}

/// Where `proxy_pass` with variables goes for one request, its script's
/// value being `url` (`ngx_http_proxy_eval`, `ngx_http_upstream_init_request`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DynamicPass {
    /// An `upstream` block (or an implicit upstream) of that name: without
    /// a port, a block's name (any case); with one, `host:port`.
    Upstream { index: usize, proxy_host: String, uri: Option<String> },
    /// An IP address (port 80 if none): a peer of its own, no cache.
    Peer { addr: String, proxy_host: String, uri: Option<String> },
    /// nginx's answer without an upstream: the status and the [error] text.
    Fail { status: u16, text: String },
}

/// [`DynamicPass`] for a script's value. A host name that names no
/// upstream needs a `resolver`: without one nginx answers 502 ("no
/// resolver defined"); with one it queries it (not emulated: the same 502).
/// A URI part is the whole upstream URI (no arguments added).
pub fn dynamic_pass(url: &str, upstreams: &[ResolvedUpstream]) -> DynamicPass {
    let fail = |status: u16, text: String| DynamicPass::Fail { status, text };
    // ngx_http_proxy_eval: "http://" and something after it.
    let lower = url.to_ascii_lowercase();
    let http = url.len() > 7 && lower.starts_with("http://");
    let https = url.len() > 8 && lower.starts_with("https://");
    if !(http || https) {
        return fail(500, conf::PassError::Prefix(url.to_string()).to_string());
    }
    let u = match conf::pass_url(url.as_bytes()) {
        Ok(PassTarget::Http(u)) => u,
        Ok(PassTarget::Https(_)) => return fail(502, format!("an https upstream is not emulated: \"{url}\"")),
        Ok(_) => return fail(502, format!("a unix socket upstream is not emulated: \"{url}\"")),
        Err(e) => return fail(500, e.to_string()),
    };
    let proxy_host = u.proxy_host(HTTP_PORT);
    let uri = u.uri.clone();
    if let Some(index) = upstreams.iter().position(|up| up.name.eq_ignore_ascii_case(&u.authority())) {
        return DynamicPass::Upstream { index, proxy_host, uri };
    }
    if u.host.parse::<std::net::IpAddr>().is_ok() {
        return DynamicPass::Peer { addr: u.addr(HTTP_PORT), proxy_host, uri };
    }
    fail(502, format!("no resolver defined to resolve {}", u.host))
}

/// The client side's keepalive directives at a level, nginx's defaults
/// where unset (`ngx_http_core_merge_loc_conf`).
fn client_keepalive(p: &ProxyDirectives) -> crate::response::ClientKeepalive {
    let d = crate::response::ClientKeepalive::default();
    crate::response::ClientKeepalive {
        timeout: p.keepalive_timeout.map_or(d.timeout, |(t, _)| t),
        header: p.keepalive_timeout.and_then(|(_, h)| h),
        requests: p.keepalive_requests.unwrap_or(d.requests),
        time: p.keepalive_time.unwrap_or(d.time),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(src: &str, profile: Profile) -> Resolved {
        resolve(&conf::parse(src, "t.conf").unwrap(), profile).unwrap()
    }

    #[test]
    fn defaults_and_inheritance() {
        let r = resolved(
            "events {}\nhttp {\n proxy_read_timeout 5s;\n upstream u { server 127.0.0.1:1; server 127.0.0.1:2 backup; keepalive 4; }\n server {\n  listen 127.0.0.1:8080;\n  location / { proxy_pass http://u; }\n  location = /x { proxy_pass http://127.0.0.1:9; proxy_read_timeout 1s; }\n }\n}\n",
            Profile::Legacy,
        );
        let u = &r.upstreams[0];
        assert_eq!(u.keepalive, KeepaliveSettings { capacity: 4, timeout: defaults::KEEPALIVE_TIMEOUT, requests: 1000, time: defaults::KEEPALIVE_TIME });
        assert!(!u.single(), "a backup makes it not single");
        let s = &r.servers[0];
        let root = s.location_for("/ok").unwrap();
        assert_eq!((root.read_timeout, root.connect_timeout, root.next_upstream), (Duration::from_secs(5), defaults::PROXY_TIMEOUT, Ft::DEFAULT_MASK));
        assert!(!root.http11, "legacy nginx speaks HTTP/1.0 upstream");
        assert!(!root.reuse_possible(u), "legacy also sends Connection: close");
        let exact = s.location_for("/x").unwrap();
        assert_eq!((exact.matcher, exact.read_timeout), (Match::Exact, Duration::from_secs(1)));
        assert_eq!(r.upstreams[exact.upstream].keepalive.capacity, 0, "implicit upstream: no cache");
        assert_eq!(s.location_for("/xy").unwrap().path, "/", "= /x does not match /xy");
    }

    #[test]
    fn modern_profile_caches_by_default() {
        let r = resolved("events {}\nhttp {\n upstream u { server 127.0.0.1:1; }\n server {\n  listen 127.0.0.1:8080;\n  location / { proxy_pass http://u; }\n }\n}\n", Profile::Modern);
        let loc = &r.servers[0].locations[0];
        assert_eq!(r.upstreams[0].keepalive.capacity, 32);
        assert!(loc.http11 && loc.reuse_possible(&r.upstreams[0]));
    }

    #[test]
    fn what_cannot_run_is_noted_and_left_out() {
        let notes = |src: &str| {
            let r = resolve(&conf::parse(src, "t.conf").unwrap(), Profile::Legacy).unwrap();
            (
                r.notes
                    .iter()
                    .map(|(w, p)| format!("{w}{p}"))
                    .collect::<Vec<_>>(),
                r.servers[0].locations.len(),
            )
        };
        assert_eq!(notes("events {}\nhttp {\n server {\n  listen 1;\n  location / { proxy_pass http://u/x; }\n }\n}\n"), (vec![], 1), "the URI part is run");
        assert_eq!(notes("events {}\nhttp {\n server {\n  listen 1;\n  location / { proxy_read_timeout 1s; }\n }\n}\n"), (vec!["location \"/\" without proxy_pass (answered 404 here) in t.conf:5".to_string()], 0));
        assert_eq!(notes("events {}\nhttp {\n server {\n  location ~ ^/x { proxy_pass http://u; }\n  location /y { proxy_pass http://u; }\n }\n}\n"), (vec!["a regex location in t.conf:4".to_string()], 1));
    }

    /// Each proxy_pass the emulation does not run is noted once, by the
    /// parser, and its location is left out (it answers 404): an https one
    /// is not run as plain http.
    #[test]
    fn a_pass_not_run_is_noted_once_and_left_out() {
        let run = |pass: &str| {
            let src = format!("events {{}}\nhttp {{\n server {{\n  listen 1;\n  location / {{ proxy_pass {pass}; }}\n  location /ok {{ proxy_pass http://127.0.0.1:9; }}\n }}\n}}\n");
            let r = resolve(&conf::parse(&src, "t.conf").unwrap(), Profile::Legacy).unwrap();
            let notes: Vec<String> = r.notes.iter().map(|(w, p)| format!("{w}{p}")).collect();
            let paths: Vec<&str> = r.servers[0].locations.iter().map(|l| l.path.as_str()).collect();
            (notes, paths.join(" "))
        };
        let left_out = |note: &str| (vec![format!("{note} (its location answers 404 here) in t.conf:5")], "/ok".to_string());
        assert_eq!(run("http://$host"), (vec![], "/ok".to_string()), "run per request, from ResolvedServer::dynamic");
        assert_eq!(run("http://$upstream_name").0, ["proxy_pass with the variable \"$upstream_name\", which is not emulated (its location answers 404 here) in t.conf:5"]);
        assert_eq!(run("http://unix:/tmp/s.sock"), left_out("a unix socket upstream"));
        assert_eq!(run("HTTPS://127.0.0.1:1"), left_out("an https upstream"));
        assert_eq!(run("https://u/x"), left_out("an https upstream"));
        assert_eq!(run("HTTP://127.0.0.1:9"), (vec![], "/ /ok".to_string()), "the scheme in any case");
        // Built in code (no place read): resolve notes it itself.
        let mut cfg = conf::parse("events {}\nhttp {\n server {\n  listen 1;\n  location / { proxy_pass http://127.0.0.1:1; }\n }\n}\n", "t.conf").unwrap();
        cfg.servers[0].locations[0].proxy.pass = Some("https://x".into());
        cfg.servers[0].locations[0].proxy.pass_pos = Pos::default();
        let r = resolve(&cfg, Profile::Legacy).unwrap();
        assert_eq!((r.notes.len(), r.servers[0].locations.len()), (1, 0));
    }

    /// `ngx_http_log_merge_loc_conf`: the nearest level with access_log
    /// lines wins, each of its lines is written, `off` among them writes
    /// none; a request no location takes gets its server's.
    #[test]
    fn access_logs_per_level() {
        let r = resolved(
            "events {}\nhttp {\n log_format short '$status';\n access_log h.log;\n server {\n  listen 1;\n  location /a { proxy_pass http://127.0.0.1:9; access_log a.log short; access_log a2.log; }\n  location /b { proxy_pass http://127.0.0.1:9; access_log off; }\n  location /c { proxy_pass http://127.0.0.1:9; }\n  location /d { proxy_pass http://127.0.0.1:9; access_log off; access_log d.log; }\n }\n server {\n  listen 2;\n  access_log s.log short;\n  location /e { proxy_pass http://127.0.0.1:9; }\n  location /f { proxy_pass http://127.0.0.1:9; access_log h.log; }\n }\n}\n",
            Profile::Legacy,
        );
        let files = |logs: &[AccessLogSpec]| logs.iter().map(|a| format!("{} {}", a.path, if a.format == "$status" { "short" } else { "combined" })).collect::<Vec<_>>().join(", ");
        let at = |srv: usize, path: &str| files(&r.servers[srv].location_for(path).unwrap().access_log);
        for (srv, path, want) in [
            (0, "/a", "a.log short, a2.log combined"),
            (0, "/b", ""),
            (0, "/c", "h.log combined"),
            (0, "/d", ""),
            (1, "/e", "s.log short"),
            (1, "/f", "h.log combined"),
        ] {
            assert_eq!(at(srv, path), want, "server {srv} location {path}");
        }
        assert_eq!((files(&r.servers[0].access_log), files(&r.servers[1].access_log)), ("h.log combined".into(), "s.log short".into()));
        assert_eq!(files(&r.access_logs), "a.log short, a2.log combined, h.log combined, s.log short", "each file once");
        let r = resolved("events {}\nhttp {\n server {\n  listen 1;\n  location / { proxy_pass http://127.0.0.1:9; access_log logs/$host.log; access_log syslog:server=127.0.0.1; }\n }\n}\n", Profile::Legacy);
        // The server itself has none: its requests go to nginx's default log.
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        assert_eq!(r.access_logs.iter().map(|a| (a.path.as_str(), a.implicit)).collect::<Vec<_>>(), [(DEFAULT_ACCESS_LOG, true)]);
    }

    /// `ngx_http_log_merge_loc_conf`: with no access_log at a level nor
    /// above it, nginx writes logs/access.log in the combined format;
    /// `off` anywhere above is not "none".
    #[test]
    fn default_access_log() {
        let combined = AccessLogSpec { path: DEFAULT_ACCESS_LOG.into(), format: logs::COMBINED.into(), implicit: true, escape: logs::LogEscape::Default };
        let r = resolved("events {}\nhttp {\n server {\n  listen 1;\n  location / { proxy_pass http://127.0.0.1:9; }\n }\n}\n", Profile::Legacy);
        assert_eq!(*r.servers[0].location_for("/").unwrap().access_log, *std::slice::from_ref(&combined));
        assert_eq!(*r.servers[0].access_log, *std::slice::from_ref(&combined));
        assert_eq!(r.access_logs, std::slice::from_ref(&combined));
        let r = resolved("events {}\nhttp {\n access_log off;\n server {\n  listen 1;\n  location / { proxy_pass http://127.0.0.1:9; }\n }\n}\n", Profile::Legacy);
        assert!(r.access_logs.is_empty());
        let r = resolved("events {}\nhttp {\n server {\n  listen 1;\n  location / { proxy_pass http://127.0.0.1:9; access_log a.log; }\n }\n server {\n  listen 2;\n  location / { proxy_pass http://127.0.0.1:9; }\n }\n}\n", Profile::Legacy);
        assert_eq!(*r.servers[1].location_for("/").unwrap().access_log, *std::slice::from_ref(&combined));
        assert_eq!(*r.servers[0].access_log, [combined]);
        assert!(!r.servers[0].location_for("/").unwrap().access_log[0].implicit);
    }

    /// `location @name` is found by name only (`ngx_http_named_location`),
    /// never by a URI (`ngx_http_core_find_location`), proxied or `return`.
    #[test]
    fn named_locations() {
        let r = resolved("events {}\nhttp {\n server {\n  listen 1;\n  location / { proxy_pass http://127.0.0.1:9; error_page 502 @fb; }\n  location @fb { proxy_pass http://127.0.0.1:8; }\n  location @r { return 200 \"r\"; }\n }\n}\n", Profile::Legacy);
        let s = &r.servers[0];
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        assert!(matches!(s.named("@fb"), Some(Route::Proxy(l)) if l.matcher == Match::Named && r.upstreams[l.upstream].peers[0].addr == "127.0.0.1:8"));
        assert!(matches!(s.named("@r"), Some(Route::Return(l)) if l.matcher == Match::Named));
        assert!(s.named("@FB").is_none() && s.named("@other").is_none());
        assert!(matches!(s.route("/@fb"), Some(Route::Proxy(l)) if l.path == "/"));
        assert!(s.route("@fb").is_none() && s.location_for("@fb").is_none(), "a URI never reaches a named location");
    }

    /// `proxy_pass` with variables: the value names an upstream block (any
    /// case, no port), an implicit upstream (`host:port`), an IP literal,
    /// or a name nginx would need a resolver for (observed on nginx 1.22.1).
    #[test]
    fn dynamic_pass_targets() {
        let r = resolved("events {}\nhttp {\n upstream bk { server 127.0.0.1:1; }\n server {\n  listen 1;\n  location /v { proxy_pass http://$http_x_backend; }\n  location /i { proxy_pass http://127.0.0.1:9; }\n }\n}\n", Profile::Legacy);
        assert!(matches!(r.servers[0].route("/v/a"), Some(Route::Proxy(l)) if l.pass_script.as_deref() == Some("http://$http_x_backend")));
        assert!(r.servers[0].locations.iter().all(|l| l.pass_script.is_none()));
        assert!(r.notes.is_empty(), "{:?}", r.notes);
        let with_resolver = resolved("events {}\nhttp {\n resolver 127.0.0.53;\n server {\n  listen 1;\n  location /v { proxy_pass http://$http_x_backend; }\n }\n}\n", Profile::Legacy);
        assert_eq!(with_resolver.notes.iter().map(|(w, p)| format!("{w}{p}")).collect::<Vec<_>>(), ["proxy_pass with variables under a \"resolver\": a host name that names no upstream is not resolved here (answered 502) in t.conf:6"]);
        let up = |index: usize, host: &str, uri: Option<&str>| DynamicPass::Upstream { index, proxy_host: host.into(), uri: uri.map(str::to_string) };
        let fail = |status: u16, text: &str| DynamicPass::Fail { status, text: text.into() };
        for (url, want) in [
            ("http://bk", up(0, "bk", None)),
            ("HTTP://BK/p/x", up(0, "BK", Some("/p/x"))),
            ("http://127.0.0.1:9", up(1, "127.0.0.1:9", None)),
            ("http://127.0.0.1:18771", DynamicPass::Peer { addr: "127.0.0.1:18771".into(), proxy_host: "127.0.0.1:18771".into(), uri: None }),
            ("http://127.0.0.1", DynamicPass::Peer { addr: "127.0.0.1:80".into(), proxy_host: "127.0.0.1".into(), uri: None }),
            ("http://bk:80", fail(502, "no resolver defined to resolve bk")),
            ("http://localhost:1", fail(502, "no resolver defined to resolve localhost")),
            ("http://", fail(500, "invalid URL prefix in \"http://\"")),
            ("ftp://x", fail(500, "invalid URL prefix in \"ftp://x\"")),
        ] {
            assert_eq!(dynamic_pass(url, &r.upstreams), want, "{url}");
        }
    }

    /// A server-level `return` answers every path, before any location.
    #[test]
    fn scripts_with_variables_not_emulated_are_listed() {
        let r = resolved("events {}\nhttp {\n server {\n  listen 1;\n  location /a { return 200 \"$uri $hostname\"; }\n  location /b { proxy_pass http://127.0.0.1:9; add_header X-P $server_port; add_header X-U $uri; }\n  location /c { return 200 \"$uri\"; }\n }\n}\n", Profile::Legacy);
        let notes: Vec<String> = r.notes.iter().map(|(w, p)| format!("{w}{p}")).collect();
        assert_eq!(notes, [
            "return with the variable \"$hostname\", which is not emulated (sent as written) in t.conf:5",
            "add_header with the variable \"$server_port\", which is not emulated (sent as written) in t.conf:6",
        ]);
    }

    #[test]
    fn server_return_wins() {
        let r = resolved("events {}\nhttp {\n server {\n  listen 1;\n  location = /r { return 200 \"loc\"; }\n  location / { proxy_pass http://127.0.0.1:9; }\n  return 403;\n  return 200;\n }\n server {\n  listen 2;\n  location / { proxy_pass http://127.0.0.1:9; }\n }\n}\n", Profile::Legacy);
        for path in ["/r", "/x", "/"] {
            assert!(matches!(r.servers[0].route(path), Some(Route::Return(l)) if l.ret.code == 403), "{path}");
        }
        assert!(matches!(r.servers[1].route("/x"), Some(Route::Proxy(_))));
        let listed = |src: &str| conf::parse(src, "t.conf").unwrap().not_emulated.0.into_iter().collect::<Vec<_>>();
        assert!(listed("events {}\nhttp {\n server {\n  listen 1;\n  return 403;\n }\n}\n").is_empty(), "a server's return is run");
        assert_eq!(listed("events {}\nhttp {\n server {\n  listen 1;\n  if ($uri) { return 404; }\n }\n}\n"), ["if", "return"], "one inside if is not");
    }

    /// An IPv6 proxy_pass keeps its brackets: nginx's port 80 when none is
    /// given, `$proxy_host` as nginx sets it.
    #[test]
    fn ipv6_proxy_pass() {
        let r = resolved("events {}\nhttp {\n server {\n  listen 1;\n  location /a { proxy_pass http://[::1]; }\n  location /b { proxy_pass http://[::1]:8080/x; }\n  location /c { proxy_pass http://127.0.0.1:80; }\n }\n}\n", Profile::Legacy);
        let peer = |path: &str| {
            let l = r.servers[0].location_for(path).unwrap();
            (r.upstreams[l.upstream].peers[0].addr.clone(), l.proxy_host.clone())
        };
        assert_eq!(peer("/a"), ("[::1]:80".to_string(), "[::1]".to_string()));
        assert_eq!(peer("/b"), ("[::1]:8080".to_string(), "[::1]:8080".to_string()));
        assert_eq!(peer("/c"), ("127.0.0.1:80".to_string(), "127.0.0.1".to_string()));
    }
}
