//! The per-scenario timeline: client, proxy and upstream events on one
//! clock, rendered like an annotated tcpdump with FIN/RST marked.

use proxy::events::{ProxyEvent, ProxyEventKind};
use serde::Serialize;
use std::collections::HashMap;
use std::time::Duration;
use upstream_sim::{CloseKind, ConnEvent, EventKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    Client,
    Proxy,
    Upstream,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub at_ms: f64,
    pub lane: Lane,
    pub text: String,
}

impl TimelineEntry {
    pub fn new(at: Duration, lane: Lane, text: String) -> Self {
        TimelineEntry { at_ms: at.as_secs_f64() * 1e3, lane, text }
    }
}

pub fn from_proxy(events: &[ProxyEvent]) -> Vec<TimelineEntry> {
    events
        .iter()
        .filter_map(|e| {
            let text = match &e.kind {
                ProxyEventKind::UpstreamConn { local_port, cached, .. } => {
                    format!(":{local_port} {}", if *cached { "from keepalive cache" } else { "new connection" })
                }
                ProxyEventKind::RequestSent { local_port, .. } => format!("request ──► :{local_port}"),
                ProxyEventKind::HeaderReceived { local_port, status } => format!("◄── {status} header :{local_port}"),
                ProxyEventKind::AttemptFailed { class, log, .. } => match log {
                    Some(l) => format!("✗ {class}: {l}"),
                    None => format!("✗ {class}"),
                },
                ProxyEventKind::Retry { tries_left } => format!("retry (tries left {tries_left})"),
                ProxyEventKind::GiveUp { status } => format!("give up → {status}"),
                ProxyEventKind::BodyFailed { class, .. } => format!("✗ {class} after the header: truncate"),
                ProxyEventKind::KeepaliveStored { local_port } => format!("keepalive cache ← :{local_port}"),
                ProxyEventKind::KeepaliveClosed { local_port, why } => format!("cache drops :{local_port} ({why})"),
                ProxyEventKind::ClientRequest { .. } | ProxyEventKind::ClientResponse { .. } | ProxyEventKind::ConnectFailed { .. } => {
                    return None
                }
            };
            Some(TimelineEntry::new(e.at, Lane::Proxy, text))
        })
        .collect()
}

pub fn from_upstream(events: &[ConnEvent], server: usize, servers: usize) -> Vec<TimelineEntry> {
    let tag = if servers > 1 { format!("[go{}] ", server + 1) } else { String::new() };
    let mut port: HashMap<u64, u16> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let p = |port: &HashMap<u64, u16>| port.get(&e.conn).map(|p| format!(":{p}")).unwrap_or_else(|| format!("#{}", e.conn));
        let text = match &e.kind {
            EventKind::Accepted { peer } => {
                port.insert(e.conn, peer.port());
                format!("accept :{}", peer.port())
            }
            EventKind::HeadRead { method, target, .. } => format!("{} {method} {target}", p(&port)),
            EventKind::WriteDeadlineArmed { after_ms } => format!("{} WriteTimeout armed (+{after_ms:.0} ms)", p(&port)),
            EventKind::HandlerStart { path } => format!("{} handler {path} starts", p(&port)),
            EventKind::HandlerEnd { outcome } => format!("{} handler ends ({outcome})", p(&port)),
            EventKind::ResponseHead { status, framing } => format!("{} ◄── {status} ({framing})", p(&port)),
            EventKind::WriteFailed { error } => format!("{} write failed: {error}", p(&port)),
            EventKind::IdleWait { limit_ms } => match limit_ms {
                Some(l) => format!("{} idle (closes after {l:.0} ms)", p(&port)),
                None => format!("{} idle (no limit)", p(&port)),
            },
            EventKind::Closed { how, reason } => {
                let mark = match how {
                    CloseKind::Fin => "FIN",
                    CloseKind::Rst => "RST",
                    CloseKind::FinThenWait => "FIN (close in 500 ms)",
                };
                format!("{} ◄══ {mark} ({reason:?})", p(&port))
            }
            EventKind::ShutdownStarted => "Shutdown()".into(),
            EventKind::ListenerClosed => "listener closed".into(),
            EventKind::IdleSwept => "Shutdown closes idle connections".into(),
            EventKind::AcceptPaused => "accept() paused (lab knob)".into(),
            EventKind::ReadDeadlineArmed { .. } | EventKind::Wrote { .. } => continue,
        };
        out.push(TimelineEntry::new(e.at, Lane::Upstream, format!("{tag}{text}")));
    }
    out
}

/// Real Go's log (fixtures/go-upstream: "HH:MM:SS.micros CONN addr state",
/// "... HANDLER n=.. path=.."), placed on the run's clock. `epoch_wall` is
/// the wall-clock time (UTC seconds of the day) of the run's epoch.
pub fn from_go_log(lines: &[String], epoch_wall_secs_of_day: f64, server: usize, servers: usize) -> Vec<TimelineEntry> {
    let tag = if servers > 1 { format!("[go{}] ", server + 1) } else { String::new() };
    // The harness's own /mark connections are not part of the story.
    let mark_ports: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(" MARK "))
        .filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("remote=")).and_then(|a| a.rsplit(':').next()))
        .collect();
    lines
        .iter()
        .filter(|l| !(l.contains(" CONN ") && mark_ports.iter().any(|p| l.contains(&format!(":{p} ")))))
        .filter_map(|l| {
            let (ts, rest) = l.split_once(' ')?;
            let mut parts = ts.split(':');
            let (h, m, sec) = (parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?);
            let at_ms = (h * 3600.0 + m * 60.0 + sec - epoch_wall_secs_of_day) * 1e3;
            let text = if let Some(c) = rest.strip_prefix("CONN ") {
                let (addr, state) = c.rsplit_once(' ')?;
                let port = addr.rsplit(':').next().unwrap_or(addr);
                match state {
                    "closed" => format!(":{port} ◄══ closed (ConnState)"),
                    s => format!(":{port} {s}"),
                }
            } else if let Some(h) = rest.strip_prefix("HANDLER ") {
                let path = h.split_whitespace().find_map(|f| f.strip_prefix("path=")).unwrap_or("?");
                let port = h.split_whitespace().find_map(|f| f.strip_prefix("remote=")).and_then(|a| a.rsplit(':').next()).unwrap_or("?");
                format!(":{port} handler {path} starts")
            } else if rest.starts_with("MARK") || rest.starts_with("LISTEN") {
                return None;
            } else {
                rest.to_string()
            };
            (at_ms >= 0.0).then(|| TimelineEntry { at_ms, lane: Lane::Upstream, text: format!("{tag}{text}") })
        })
        .collect()
}

/// Renders the entries as a three-lane sequence diagram.
pub fn render(entries: &[TimelineEntry], proxy_name: &str, upstream_name: &str) -> String {
    const CLIENT: usize = 0;
    const PROXY: usize = 24;
    const UPSTREAM: usize = 64;
    let mut s = format!("{:>9}  {:<PROXY$}{:<w$}{}\n", "ms", "client", proxy_name, upstream_name, w = UPSTREAM - PROXY);
    s.push_str(&format!("{:>9}  {}\n", "", "─".repeat(UPSTREAM + 24)));
    for e in entries {
        let col = match e.lane {
            Lane::Client => CLIENT,
            Lane::Proxy => PROXY,
            Lane::Upstream => UPSTREAM,
        };
        s.push_str(&format!("{:>9.2}  {}{}\n", e.at_ms, " ".repeat(col), e.text));
    }
    s
}
