//! The built-in Go emulator (crates/upstream-sim), in-process: every lab
//! knob and action is available, and its events are waited on.

use super::{BackendError, Unsupported, UpstreamBackend, UpstreamUnderTest, LOOPBACK_ANY};
use crate::timeline::{server_tag, Lane, TimelineEntry};
use crate::Action;
use async_trait::async_trait;
use go_model::ServerConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use upstream_sim::{CloseKind, ConnEvent, EventKind, UpstreamSim};

pub struct BuiltinGo {
    /// The servers started, then any that took over a listener (handoff).
    servers: Vec<UpstreamSim>,
    /// How many were started (the rest are replacements).
    started: usize,
    epoch: Instant,
    /// Connections that hold a paused server's accept queue full.
    fillers: Vec<TcpStream>,
}

impl BuiltinGo {
    /// It runs every configuration and action.
    pub fn supports(_cfg: &ServerConfig, _action: Action) -> Result<(), Unsupported> {
        Ok(())
    }

    pub async fn start(cfg: &ServerConfig, servers: usize, epoch: Instant) -> Result<BuiltinGo, BackendError> {
        let mut v = Vec::new();
        for _ in 0..servers.max(1) {
            v.push(UpstreamSim::start_with_epoch(cfg.clone(), LOOPBACK_ANY, epoch, labkit::events::Retention::LAB).await.map_err(BackendError::UpstreamSim)?);
        }
        Ok(BuiltinGo { started: v.len(), servers: v, epoch, fillers: Vec::new() })
    }

    /// The emulated servers (the first `addrs().len()` are the ones started).
    pub fn servers(&self) -> &[UpstreamSim] {
        &self.servers
    }

    async fn crash_first(&self) {
        self.servers[0].crash_and_wait(Duration::from_secs(2)).await;
    }

    /// A new server takes over the first one's port (SO_REUSEPORT), then the
    /// old one shuts down.
    async fn hand_off(&mut self) -> Result<(), BackendError> {
        let old = &self.servers[0];
        let next = UpstreamSim::start_with_epoch(old.config().clone(), old.local_addr(), self.epoch, labkit::events::Retention::LAB).await.map_err(BackendError::UpstreamSim)?;
        old.shutdown(Duration::from_secs(2)).await;
        self.servers.push(next);
        Ok(())
    }

    async fn shut_down_first(&self) {
        let first = &self.servers[0];
        // The scenario's premise: nginx's cached connections are idle in Go
        // when Shutdown starts. A connection still finishing the warm-up's
        // request would be skipped by the sweep and closed later (with
        // KeepAlivesDisabled, or with the request unread: a reset).
        first.wait_all_idle(Duration::from_secs(2)).await;
        // Shutdown waits for the idle connections the race knob holds
        // open, so it runs in its own task (bounded by its grace).
        let control = first.control();
        tokio::spawn(async move { control.shutdown(Duration::from_secs(3)).await });
        // Not just the listener: the idle sweep must have reached the
        // cached connections before the next request is sent.
        first.events().wait_for(Duration::from_secs(2), |ev| ev.iter().any(|e| matches!(e.kind, EventKind::IdleSwept))).await;
    }

    async fn keepalives_off_then_shut_down_first(&self) {
        let first = &self.servers[0];
        let count = |ev: &[upstream_sim::ConnEvent], pred: fn(&EventKind) -> bool| ev.iter().filter(|e| pred(&e.kind)).count();
        let accepted = count(&first.events().snapshot(), |k| matches!(k, EventKind::Accepted { .. }));
        first.set_keep_alives_enabled(false);
        // Every connection of that server has closed before it shuts down.
        first.events().wait_for(Duration::from_secs(2), |ev| count(ev, |k| matches!(k, EventKind::Closed { .. })) >= accepted).await;
        first.shutdown(Duration::from_secs(2)).await;
    }

    /// Stops accepting on every server and opens connections until one
    /// hangs in SYN_SENT: the accept queue is full.
    async fn fill_backlogs(&mut self) {
        for sim in &self.servers {
            sim.pause_accept(true).await;
            for _ in 0..64 {
                match tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(sim.local_addr())).await {
                    Ok(Ok(c)) => self.fillers.push(c),
                    _ => break,
                }
            }
        }
    }
}

#[async_trait]
impl UpstreamUnderTest for BuiltinGo {
    fn backend(&self) -> UpstreamBackend {
        UpstreamBackend::Builtin
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.servers[..self.started].iter().map(UpstreamSim::local_addr).collect()
    }

    async fn handler_runs(&mut self, path: &str) -> Option<u64> {
        Some(self.servers.iter().map(|s| s.handler_runs_for(path)).sum())
    }

    fn accepted_ports(&self, server: usize) -> Vec<u16> {
        let Some(sim) = self.servers.get(server) else { return Vec::new() };
        sim.events()
            .snapshot()
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Accepted { peer } => Some(peer.port()),
                _ => None,
            })
            .collect()
    }

    fn timeline(&self) -> Vec<TimelineEntry> {
        let n = self.servers.len();
        self.servers.iter().enumerate().flat_map(|(i, sim)| timeline_of(&sim.events().snapshot(), i, n)).collect()
    }

    async fn act(&mut self, action: Action) -> Result<(), BackendError> {
        match action {
            Action::None => {}
            Action::Crash => self.crash_first().await,
            Action::RestartHandoff => self.hand_off().await?,
            Action::Shutdown => self.shut_down_first().await,
            Action::KeepalivesOffThenShutdown => self.keepalives_off_then_shut_down_first().await,
            Action::FillBacklog => self.fill_backlogs().await,
        }
        Ok(())
    }

    async fn stop(self: Box<Self>) {
        self.servers.iter().for_each(UpstreamSim::crash);
    }
}

/// One Go emulator's events; `server` of `servers` tags the lines when
/// there are several.
fn timeline_of(events: &[ConnEvent], server: usize, servers: usize) -> Vec<TimelineEntry> {
    use crate::timeline::{CloseHow, EntryKind as K};
    let tag = server_tag(server, servers);
    let mut port: HashMap<u64, u16> = HashMap::new();
    let mut out = Vec::new();
    for e in events {
        if let EventKind::Accepted { peer } = &e.kind {
            port.insert(e.conn, peer.port());
        }
        let p = port.get(&e.conn).map_or_else(|| format!("#{}", e.conn), |p| format!(":{p}"));
        let (kind, text) = match &e.kind {
            EventKind::Accepted { peer } => (K::Accept, format!("accept :{}", peer.port())),
            EventKind::HeadRead { method, target, .. } => (K::Request, format!("{p} {method} {target}")),
            EventKind::WriteDeadlineArmed { after_ms } => (K::Deadline, format!("{p} WriteTimeout armed (+{after_ms:.0} ms)")),
            EventKind::HandlerStart { path } => (K::HandlerStart, format!("{p} handler {path} starts")),
            EventKind::HandlerEnd { outcome } => (K::HandlerEnd, format!("{p} handler ends ({outcome})")),
            EventKind::ResponseHead { status, framing } => (K::Response, format!("{p} ◄── {status} ({framing})")),
            EventKind::WriteFailed { error } => (K::Error, format!("{p} write failed: {error}")),
            EventKind::IdleWait { limit_ms } => match limit_ms {
                Some(l) => (K::Idle, format!("{p} idle (closes after {l:.0} ms)")),
                None => (K::Idle, format!("{p} idle (no limit)")),
            },
            EventKind::Closed { how, reason } => (
                K::Close,
                match how {
                    CloseKind::Fin => format!("{p} ◄══ FIN ({reason:?})"),
                    CloseKind::Rst => format!("{p} ◄══ RST ({reason:?})"),
                    CloseKind::FinThenWait => format!("{p} ◄══ FIN (close in 500 ms) ({reason:?})"),
                },
            ),
            EventKind::ShutdownStarted => (K::Server, "Shutdown()".into()),
            EventKind::ListenerClosed => (K::Server, "listener closed".into()),
            EventKind::IdleSwept => (K::Server, "Shutdown closes idle connections".into()),
            EventKind::AcceptPaused => (K::Server, "accept() paused (lab knob)".into()),
            EventKind::ReadDeadlineArmed { .. } | EventKind::Wrote { .. } => continue,
        };
        let mut entry = TimelineEntry::new(e.at, Lane::Upstream, kind, format!("{tag}{text}"));
        if e.conn != 0 {
            entry = entry.conn(e.conn).port(port.get(&e.conn).copied());
        }
        match &e.kind {
            EventKind::ResponseHead { status, .. } => entry = entry.status(*status),
            // closeWriteAndWait sends its FIN first: on the wire, a FIN.
            EventKind::Closed { how: CloseKind::Fin | CloseKind::FinThenWait, .. } => entry = entry.close(CloseHow::Fin),
            EventKind::Closed { how: CloseKind::Rst, .. } => entry = entry.close(CloseHow::Rst),
            _ => {}
        }
        out.push(entry);
    }
    out
}
