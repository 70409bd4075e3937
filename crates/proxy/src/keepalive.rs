//! nginx's upstream keepalive cache (`ngx_http_upstream_keepalive_module.c`,
//! semantics.md §3, R19–R22): per upstream, at most N idle connections;
//! checkout takes the most recently stored one (LIFO); storing into a full
//! cache closes the least recently used; an idle connection that becomes
//! readable (FIN, RST or stray bytes: a 1-byte MSG_PEEK that is not EAGAIN)
//! or outlives `keepalive_timeout` is closed silently.
//!
//! Each idle connection is owned by a small watcher task, the analogue of
//! nginx arming `ngx_http_upstream_keepalive_close_handler` on its read
//! event. Checkout asks the watcher to hand the socket over; a watcher that
//! already saw the connection die refuses, and checkout tries the next one.

use crate::events::{ProxyEventKind, ProxyEvents};
use std::collections::VecDeque;
use std::net::SocketAddr;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// An upstream connection the proxy owns.
#[derive(Debug)]
pub struct UpstreamConn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub local_port: u16,
    /// Requests sent on it so far (`c->requests`).
    pub requests: u32,
    pub created: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeepaliveSettings {
    /// `keepalive N` (0 = no cache).
    pub capacity: usize,
    pub timeout: Duration,
    pub requests: u32,
    pub time: Duration,
}

type Handoff = oneshot::Sender<UpstreamConn>;

struct Item {
    id: u64,
    peer: SocketAddr,
    /// Send a reply channel to take the connection; drop to close it.
    take: oneshot::Sender<Handoff>,
}

#[derive(Clone)]
pub struct KeepaliveCache {
    settings: KeepaliveSettings,
    items: Arc<Mutex<(u64, VecDeque<Item>)>>,
    events: ProxyEvents,
}

impl KeepaliveCache {
    pub fn new(settings: KeepaliveSettings, events: ProxyEvents) -> Self {
        KeepaliveCache { settings, items: Arc::new(Mutex::new((0, VecDeque::new()))), events }
    }

    pub fn settings(&self) -> KeepaliveSettings {
        self.settings
    }

    pub fn len(&self) -> usize {
        self.items.lock().1.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `ngx_http_upstream_get_keepalive_peer`: the most recently stored
    /// live connection to `peer`, if any.
    pub async fn checkout(&self, peer: SocketAddr) -> Option<UpstreamConn> {
        loop {
            let item = {
                let mut g = self.items.lock();
                let pos = g.1.iter().position(|i| i.peer == peer)?;
                g.1.remove(pos)?
            };
            let (tx, rx) = oneshot::channel();
            if item.take.send(tx).is_err() {
                continue;
            }
            if let Ok(conn) = rx.await {
                return Some(conn);
            }
        }
    }

    /// Whether a finished connection may be cached (R21, the parts that
    /// depend on the connection rather than the response).
    pub fn admits(&self, conn: &UpstreamConn) -> bool {
        self.settings.capacity > 0
            && conn.requests < self.settings.requests
            && conn.created.elapsed() <= self.settings.time
    }

    /// `ngx_http_upstream_free_keepalive_peer` for a reusable connection.
    pub fn store(&self, conn: UpstreamConn) {
        if !self.admits(&conn) {
            return;
        }
        let (take_tx, take_rx) = oneshot::channel();
        let id = {
            let mut g = self.items.lock();
            g.0 += 1;
            let id = g.0;
            if g.1.len() >= self.settings.capacity {
                // Full: the least recently used one is closed (its watcher
                // sees the dropped sender).
                g.1.pop_back();
            }
            g.1.push_front(Item { id, peer: conn.peer, take: take_tx });
            id
        };
        self.events.push(0, ProxyEventKind::KeepaliveStored { local_port: conn.local_port });
        tokio::spawn(watch_idle(conn, take_rx, self.clone(), id));
    }

    fn forget(&self, id: u64) {
        let mut g = self.items.lock();
        if let Some(pos) = g.1.iter().position(|i| i.id == id) {
            g.1.remove(pos);
        }
    }
}

/// The close handler of one idle connection.
async fn watch_idle(conn: UpstreamConn, mut take: oneshot::Receiver<Handoff>, cache: KeepaliveCache, id: u64) {
    let port = conn.local_port;
    let mut buf = [0u8; 1];
    let why = tokio::select! {
        // Biased: an event that already arrived (FIN, RST) is handled before
        // a checkout that comes after it, as nginx's event loop would.
        biased;
        r = conn.stream.peek(&mut buf) => match r {
            Ok(0) => "FIN",
            Ok(_) => "stray data",
            Err(_) => "RST",
        },
        _ = tokio::time::sleep(cache.settings.timeout) => "keepalive_timeout",
        msg = &mut take => match msg {
            Ok(handoff) => {
                // If the receiver gave up, the connection is simply dropped.
                let _ = handoff.send(conn);
                return;
            }
            Err(_) => "evicted",
        },
    };
    cache.forget(id);
    drop(conn);
    cache.events.push(0, ProxyEventKind::KeepaliveClosed { local_port: port, why: why.into() });
}
