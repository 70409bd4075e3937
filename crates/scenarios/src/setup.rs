//! A scenario's settings as the programs' own configurations, at run scale:
//! the Go `ServerConfig` and the nginx `Config` (rendered for real nginx,
//! read back by the built-in proxy). The runner starts backends with these;
//! the oracle resolves the same ones.

use crate::scenario::{parse_duration, scale, Action, Scenario};
use go_model::{IdleRace, ServerConfig};
use nginx_model::conf::{Config, Location, ProxyDirectives, Server, Upstream, UpstreamServer};
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
    let g = &s.go;
    ServerConfig {
        read_timeout: dur(&g.read_timeout, factor),
        read_header_timeout: dur(&g.read_header_timeout, factor),
        write_timeout: dur(&g.write_timeout, factor),
        idle_timeout: dur(&g.idle_timeout, factor),
        keep_alives: g.keepalives,
        backlog: g.backlog.unwrap_or(4096),
        idle_race: race(&g.idle_race),
        shutdown_race: race(&g.shutdown_race),
        reuse_port: s.workload.action == Action::RestartHandoff,
        ..ServerConfig::default()
    }
}

/// The nginx configuration of a scenario, at run scale.
pub fn nginx_config(s: &Scenario, upstreams: &[SocketAddr], listen: SocketAddr, factor: f64) -> Config {
    let n = &s.nginx;
    // Validated when the scenario was read; an invalid mask cannot get here.
    let mask = n.next_upstream.as_deref().and_then(|m| nginx_model::retry::Ft::parse_mask(&m.split_whitespace().map(String::from).collect::<Vec<_>>()).ok());
    let proxy = ProxyDirectives {
        pass: Some("http://go_upstream".into()),
        http_version: n.http_version.clone(),
        set_header: n.clear_connection.then(|| vec![("Connection".to_string(), String::new())]),
        connect_timeout: nginx_dur(&n.connect_timeout, factor),
        read_timeout: nginx_dur(&n.read_timeout, factor),
        next_upstream: mask,
        next_upstream_tries: n.next_upstream_tries,
        next_upstream_timeout: nginx_dur(&n.next_upstream_timeout, factor),
        ..ProxyDirectives::default()
    };
    Config {
        upstreams: vec![Upstream {
            name: "go_upstream".into(),
            servers: upstreams.iter().enumerate().map(|(i, a)| upstream_server(n.server_params.get(i), *a, factor)).collect(),
            keepalive: n.keepalive,
            keepalive_timeout: nginx_dur(&n.keepalive_timeout, factor),
            keepalive_requests: None,
            keepalive_time: None,
            pos: Default::default(),
        }],
        servers: vec![Server {
            listen: vec![listen.to_string()],
            locations: vec![Location { modifier: String::new(), path: "/".into(), proxy, pos: Default::default() }],
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
