//! The built-in Go emulator (crates/upstream-sim), in-process: every lab
//! knob and action is available, and its events are waited on.

use super::{BackendError, Unsupported, UpstreamBackend, UpstreamUnderTest, LOOPBACK_ANY};
use crate::timeline::{server_tag, Lane, TimelineEntry};
use crate::Action;
use async_trait::async_trait;
use go_model::ServerConfig;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use upstream_sim::{CloseKind, ConnEvent, EventKind, UpstreamSim};

/// Where a handoff puts the server that takes over.
type Slot = Arc<Mutex<Option<UpstreamSim>>>;

pub struct BuiltinGo {
    /// The servers started, then any that took over a listener (handoff).
    servers: Vec<UpstreamSim>,
    /// How many were started (the rest are replacements).
    started: usize,
    epoch: Instant,
    /// Connections that hold a paused server's accept queue full, or a
    /// server's descriptors (`hold-connections`).
    fillers: Vec<TcpStream>,
    /// A handoff waiting for a connection in the old server's queue, and
    /// the slot where it puts the server that takes over (before the old
    /// one shuts down).
    handoff: Option<(tokio::task::JoinHandle<()>, Slot)>,
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
        Ok(BuiltinGo { started: v.len(), servers: v, epoch, fillers: Vec::new(), handoff: None })
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

    /// The first server stops accepting; a task waits (bounded) until a
    /// connection sits in its accept queue, then starts the next server,
    /// on the same port (SO_REUSEPORT, `fd_passing` false) or on the old
    /// listening socket itself (a duplicate of its descriptor), and shuts
    /// the old one down.
    async fn hand_off_queued(&mut self, fd_passing: bool) -> Result<(), BackendError> {
        let old = &self.servers[0];
        old.pause_accept(true).await;
        // A listening socket is readable when its accept queue holds a
        // connection: a duplicate of its descriptor is watched for that.
        let watch = old.listener_dup().map_err(BackendError::UpstreamSim)?;
        let (control, cfg, addr, epoch) = (old.control(), old.config().clone(), old.local_addr(), self.epoch);
        let slot: Slot = Arc::new(Mutex::new(None));
        let put = slot.clone();
        let task = tokio::spawn(async move {
            let watch = wait_queued(watch, Duration::from_secs(5)).await;
            let retention = labkit::events::Retention::LAB;
            let next = match (fd_passing, watch) {
                (true, Some(listener)) => UpstreamSim::start_on_listener(cfg, listener, epoch, retention).await,
                // The duplicate is closed first: the old process's close is the last.
                _ => UpstreamSim::start_with_epoch(cfg, addr, epoch, retention).await,
            };
            match next {
                Ok(next) => *put.lock().unwrap_or_else(|p| p.into_inner()) = Some(next),
                Err(e) => tracing::warn!("handoff: the new server did not start: {e}"),
            }
            control.shutdown(Duration::from_secs(2)).await;
        });
        self.handoff = Some((task, slot));
        Ok(())
    }

    /// The handoff's new server joins the others once it has started.
    fn settle_handoff(&mut self) {
        if let Some((_, slot)) = &self.handoff {
            if let Some(next) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                self.servers.push(next);
            }
        }
    }

    /// Once every earlier connection of the first server has closed (the
    /// warm-up's), opens [`labkit::action::HELD_CONNECTIONS`] connections
    /// to it, each accepted (or its accept failed at the fd limit) before
    /// the next, and keeps them open.
    async fn hold_connections(&mut self) {
        let sim = &self.servers[0];
        let count = |ev: &[ConnEvent], pred: fn(&EventKind) -> bool| ev.iter().filter(|e| pred(&e.kind)).count();
        let accepted = |ev: &[ConnEvent]| count(ev, |k| matches!(k, EventKind::Accepted { .. }));
        let failures = |ev: &[ConnEvent]| count(ev, |k| matches!(k, EventKind::AcceptError { .. }));
        sim.events().wait_for(Duration::from_secs(2), |ev| count(ev, |k| matches!(k, EventKind::Closed { .. })) >= accepted(ev)).await;
        for _ in 0..labkit::action::HELD_CONNECTIONS {
            let ev = sim.events().snapshot();
            let (before, failed) = (accepted(&ev), failures(&ev));
            match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(sim.local_addr())).await {
                Ok(Ok(c)) => self.fillers.push(c),
                _ => return,
            }
            sim.events().wait_for(Duration::from_secs(2), |ev| accepted(ev) > before || failures(ev) > failed).await;
        }
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
        self.settle_handoff();
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
            Action::HoldConnections => self.hold_connections().await,
            Action::ReuseportHandoffQueued => self.hand_off_queued(false).await?,
            Action::FdHandoffQueued => self.hand_off_queued(true).await?,
        }
        Ok(())
    }

    async fn stop(self: Box<Self>) {
        if let Some((task, slot)) = &self.handoff {
            task.abort();
            if let Some(next) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
                next.crash();
            }
        }
        self.servers.iter().for_each(UpstreamSim::crash);
    }
}

/// Waits (bounded) until `listener` (a duplicate descriptor of a listening
/// socket nobody accepts on) has a connection in its accept queue: poll(2)
/// reports a listening socket readable then. Returns the descriptor.
async fn wait_queued(listener: std::net::TcpListener, limit: Duration) -> Option<std::net::TcpListener> {
    use std::os::fd::AsRawFd;
    let ms = i32::try_from(limit.as_millis()).unwrap_or(i32::MAX);
    let waited = tokio::task::spawn_blocking(move || {
        let mut p = libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd, owned by `listener`, which outlives the call.
        unsafe { libc::poll(&mut p, 1, ms) };
        // Then until the client's first bytes are in the queued socket (its
        // `rx_queue` in /proc/net/tcp): a reset before the client has
        // written would fail its connect() instead of its read.
        let port = listener.local_addr().map_or(0, |a| a.port());
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            // No event says when bytes reach a socket nobody accepted: the
            // table is polled, bounded by `limit`.
            if crate::sockets::now().iter().any(|r| queued_with_bytes(r, port)) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        listener
    });
    waited.await.ok()
}

/// Whether a `/proc/net/tcp` table has an ESTABLISHED (01) socket on local
/// `port` with bytes received and not read (`rx_queue`): a connection
/// queued on a listener there, its request written.
#[cfg(test)]
fn unread_bytes(table: &str, port: u16) -> bool {
    crate::sockets::rows(table).any(|r| queued_with_bytes(&r, port))
}

fn queued_with_bytes(r: &crate::sockets::Row, port: u16) -> bool {
    r.local_port == port && r.state == crate::sockets::ESTABLISHED && r.rx_queue > 0
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
            EventKind::AcceptError { line, .. } => (K::Error, line.clone()),
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

#[cfg(test)]
mod tests {
    use super::unread_bytes;

    #[test]
    fn a_queued_connection_with_its_request_from_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:47F9 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:47F9 0100007F:D2F0 01 00000000:0000004B 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1\n\
   2: 0100007F:D2F0 0100007F:47F9 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n\
   3: 0100007F:1F90 0100007F:D2F4 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1\n";
        assert!(unread_bytes(table, 0x47F9));
        // The client's side, a connection with nothing unread, the listener itself.
        assert!(!unread_bytes(table, 0xD2F0));
        assert!(!unread_bytes(table, 0x1F90));
        assert!(!unread_bytes("garbage\n1: x y 01 z", 1));
    }
}
