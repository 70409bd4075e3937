//! A scenario's settings as the programs' own configurations, at run scale:
//! the Go `ServerConfig` and the nginx `Config` (rendered for real nginx,
//! read back by the built-in proxy). The runner starts backends with these;
//! the oracle resolves the same ones.

use crate::scenario::{parse_duration, scale, Action, GoSettings, NginxSettings, Scenario};
use go_model::{IdleRace, ServerConfig};
use nginx_model::conf::{Config, Ctx, Location, ProxyDirectives, Server, Upstream, UpstreamServer};
use std::net::SocketAddr;
use std::time::Duration;

pub(crate) fn dur(s: &Option<String>, factor: f64) -> Duration {
    s.as_deref().and_then(|d| parse_duration(d).ok()).map(|d| scale(d, factor)).unwrap_or_default()
}

fn nginx_dur(s: &Option<String>, factor: f64) -> Option<Duration> {
    s.as_deref().and_then(nginx_model::time::parse).map(|d| scale(d, factor))
}

fn race(s: &Option<String>) -> Option<IdleRace> {
    match s.as_deref() {
        Some("fin") => Some(IdleRace::Fin),
        Some("rst") => Some(IdleRace::Rst),
        _ => None,
    }
}

/// The Go server configuration of a scenario, at run scale.
pub fn go_config(s: &Scenario, factor: f64) -> ServerConfig {
    ServerConfig { reuse_port: matches!(s.workload.action, Action::RestartHandoff | Action::ReuseportHandoffQueued), ..go_settings_config(&s.go, factor) }
}

/// `[go]` settings as the `http.Server` they describe, at run scale (1.0:
/// as written, what `check` reasons about).
pub fn go_settings_config(g: &GoSettings, factor: f64) -> ServerConfig {
    ServerConfig {
        read_timeout: dur(&g.read_timeout, factor),
        read_header_timeout: dur(&g.read_header_timeout, factor),
        write_timeout: dur(&g.write_timeout, factor),
        idle_timeout: dur(&g.idle_timeout, factor),
        keep_alives: g.keepalives,
        go_version: g.go_version.as_deref().and_then(|v| v.parse().ok()).unwrap_or_default(),
        backlog: g.backlog.unwrap_or(4096),
        idle_race: race(&g.idle_race),
        shutdown_race: race(&g.shutdown_race),
        fd_limit: g.fd_limit,
        ..ServerConfig::default()
    }
}

/// What a scenario's nginx.conf text says, read by the proxy's reader.
#[derive(Debug, Default)]
pub struct Snippets {
    /// The `upstream` block with `upstream_conf` inside (one lab server).
    pub upstream: Option<Upstream>,
    /// `location /` with `location_conf` inside.
    pub location: Option<ProxyDirectives>,
}

/// An error in a scenario's nginx.conf text: which key, the line in its
/// text, and nginx's message.
#[derive(Debug)]
pub struct SnippetError {
    pub place: (&'static str, usize),
    pub msg: String,
}

/// Reads `upstream_conf` and `location_conf` inside the blocks the lab
/// writes around them, with the same reader (and messages) as `proxy -t`.
/// Times stay at article scale here; [`nginx_config`] scales them.
pub fn nginx_snippets(n: &NginxSettings) -> Result<Snippets, SnippetError> {
    let up = n.upstream_conf.as_ref().map(|t| t.get_ref().as_str());
    let loc = n.location_conf.as_ref().map(|t| t.get_ref().as_str());
    if up.is_none() && loc.is_none() {
        return Ok(Snippets::default());
    }
    let head_up = "events {}\nhttp {\nupstream go_upstream {\nserver 127.0.0.1:1;\n";
    let mid = "\n}\nserver {\nlisten 127.0.0.1:1;\nlocation / {\nproxy_pass http://go_upstream;\n";
    let text = format!("{head_up}{}{mid}{}\n}}\n}}\n}}\n", up.unwrap_or(""), loc.unwrap_or(""));
    let up_first = head_up.lines().count() + 1;
    let up_lines = up.unwrap_or("").split('\n').count();
    let loc_first = up_first + up_lines + mid.lines().count() - 1;
    let place = |line: usize| {
        if line >= loc_first {
            ("location_conf", line - loc_first + 1)
        } else {
            ("upstream_conf", line.saturating_sub(up_first) + 1)
        }
    };
    let cfg = nginx_model::conf::parse(&text, "scenario").map_err(|e| SnippetError { place: place(e.line), msg: e.msg.clone() })?;
    let upstream = cfg.upstreams.into_iter().next();
    if let Some(u) = &upstream {
        if u.servers.len() > 1 {
            let line = u.servers[1].pos.line;
            return Err(SnippetError { place: place(line), msg: "the servers are the lab's ([go] servers; parameters in server_params)".into() });
        }
    }
    let location = cfg.servers.into_iter().next().and_then(|s| s.locations.into_iter().next()).map(|l| l.proxy);
    Ok(Snippets { upstream: up.and(upstream), location: loc.and(location) })
}

/// The URI of the auth location the lab writes for `[nginx] auth_request`.
pub const AUTH_LOCATION: &str = "/auth";

/// The nginx configuration of a scenario, at run scale.
pub fn nginx_config(s: &Scenario, upstreams: &[SocketAddr], listen: SocketAddr, factor: f64) -> Config {
    let n = &s.nginx;
    // Validated when the scenario was read; an invalid mask cannot get here.
    let mask = n.next_upstream.as_deref().and_then(|m| nginx_model::retry::Ft::parse_mask(&m.split_whitespace().map(String::from).collect::<Vec<_>>()).ok());
    // Read when the scenario was; an error cannot get here.
    let snippets = nginx_snippets(n).unwrap_or_default();
    let scaled = |d: Option<Duration>| d.map(|d| scale(d, factor));
    // The text itself goes to nginx (and back to the proxy through the
    // rendered file), its times rewritten at run scale.
    let verbatim = |text: &Option<toml::Spanned<String>>, key: &str, ctx: Ctx| {
        text.as_ref().and_then(|t| nginx_model::conf::rescale_times(t.get_ref(), key, ctx, |d| scale(d, factor)).ok())
    };
    let proxy = match snippets.location {
        Some(p) => ProxyDirectives {
            pass: Some("http://go_upstream".into()),
            connect_timeout: scaled(p.connect_timeout),
            send_timeout: scaled(p.send_timeout),
            read_timeout: scaled(p.read_timeout),
            next_upstream_timeout: scaled(p.next_upstream_timeout),
            ..p
        },
        None => ProxyDirectives {
            pass: Some("http://go_upstream".into()),
            http_version: n.http_version.clone(),
            set_header: n.clear_connection.then(|| vec![("Connection".to_string(), String::new())]),
            connect_timeout: nginx_dur(&n.connect_timeout, factor),
            read_timeout: nginx_dur(&n.read_timeout, factor),
            buffer_size: n.buffer_size.as_deref().and_then(|b| nginx_model::num::parse_size(b.as_bytes())).map(|b| b as usize),
            next_upstream: mask,
            next_upstream_tries: n.next_upstream_tries,
            next_upstream_timeout: nginx_dur(&n.next_upstream_timeout, factor),
            ..ProxyDirectives::default()
        },
    };
    // `localhost` → [::1]:P, then 127.0.0.1:P, as nginx expands the name.
    let addrs = |a: SocketAddr| if n.localhost { vec![SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, a.port())), a] } else { vec![a] };
    let servers = upstreams.iter().enumerate().flat_map(|(i, a)| addrs(*a).into_iter().map(move |a| (i, a))).map(|(i, a)| upstream_server(n.server_params.get(i), a, factor)).collect();
    let upstream = match snippets.upstream {
        Some(u) => Upstream {
            name: "go_upstream".into(),
            servers,
            keepalive_timeout: scaled(u.keepalive_timeout),
            keepalive_time: scaled(u.keepalive_time),
            verbatim: verbatim(&n.upstream_conf, "upstream_conf", Ctx::Upstream),
            pos: Default::default(),
            ..u
        },
        None => Upstream {
            name: "go_upstream".into(),
            servers,
            keepalive: n.keepalive,
            keepalive_timeout: nginx_dur(&n.keepalive_timeout, factor),
            keepalive_requests: None,
            keepalive_time: None,
            least_conn: false,
            verbatim: None,
            pos: Default::default(),
        },
    };
    // `auth_request`: the subrequest's location has the same proxy
    // settings, structured (nginx does not inherit proxy_pass, and a
    // location's proxy_set_header lines replace the level above's).
    let mut locations = Vec::new();
    let mut proxy = proxy;
    if let Some(path) = &n.auth_request {
        let mut set_header = proxy.set_header.clone().unwrap_or_default();
        if n.auth_clear_length {
            set_header.push(("Content-Length".into(), String::new()));
        }
        let auth = ProxyDirectives {
            pass: Some(format!("http://go_upstream{path}")),
            set_header: (!set_header.is_empty()).then_some(set_header),
            auth_request: None,
            ..proxy.clone()
        };
        locations.push(Location { modifier: "=".into(), path: AUTH_LOCATION.into(), proxy: auth, access_log: Vec::new(), verbatim: None, ret: None, pos: Default::default() });
        proxy.auth_request = Some(AUTH_LOCATION.into());
    }
    let main_verbatim = verbatim(&n.location_conf, "location_conf", Ctx::Location).map(|t| match &proxy.auth_request {
        Some(uri) => format!("{t}\nauth_request {uri};\n"),
        None => t,
    });
    locations.insert(0, Location { modifier: String::new(), path: "/".into(), proxy, access_log: Vec::new(), verbatim: main_verbatim, ret: None, pos: Default::default() });
    Config {
        upstreams: vec![upstream],
        servers: vec![Server {
            listen: vec![listen.to_string()],
            locations,
            ..Server::default()
        }],
        ..Config::default()
    }
}


/// One `server` line: the scenario's parameters for it, with an explicit
/// `fail_timeout` scaled like every other duration.
fn upstream_server(params: Option<&String>, addr: SocketAddr, factor: f64) -> UpstreamServer {
    let words: Vec<String> = params.map(|p| p.split_whitespace().map(String::from).collect()).unwrap_or_default();
    // Validated when the scenario was read.
    let mut srv = UpstreamServer::with_params(addr.to_string(), &words).unwrap_or_else(|_| UpstreamServer::new(addr.to_string()));
    if words.iter().any(|w| w.starts_with("fail_timeout=")) {
        srv.fail_timeout = scale(srv.fail_timeout, factor);
    }
    srv
}
