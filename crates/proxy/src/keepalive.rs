//! The keepalive cache's live side. `nginx_model::keepalive` decides (LIFO
//! checkout, LRU eviction, admission, the timeout); here each idle
//! connection is owned by a watcher task, the analogue of nginx arming
//! `ngx_http_upstream_keepalive_close_handler` on its read event and a timer
//! for `keepalive_timeout`. Checkout asks the watcher to hand the socket
//! over; a watcher that already saw the connection die refuses, and checkout
//! tries the next one.

use crate::events::{CacheClose, ProxyEventKind, ProxyEvents};
use nginx_model::keepalive::{KeepaliveCache, KeepaliveSettings, Stored};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
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

/// A checkout's request to the watcher: the connection goes to `reply`.
struct Handoff {
    /// When the event-loop pass that wants the connection began (see
    /// [`watch_idle`]).
    pass: Instant,
    reply: oneshot::Sender<UpstreamConn>,
}
/// What the cache holds for an idle connection: send a handoff to take it
/// over; drop it to close the connection.
type Take = oneshot::Sender<Handoff>;

/// How long a watcher that saw its connection close keeps it for a pass
/// that began before (bounded: such a pass reaches checkout within
/// microseconds).
const PASS_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

#[derive(Clone)]
pub struct Keepalive {
    policy: Arc<Mutex<KeepaliveCache<SocketAddr, Take>>>,
    events: ProxyEvents,
}

impl Keepalive {
    pub fn new(settings: KeepaliveSettings, events: ProxyEvents) -> Self {
        Keepalive { policy: Arc::new(Mutex::new(KeepaliveCache::new(settings))), events }
    }

    pub fn settings(&self) -> KeepaliveSettings {
        self.policy.lock().settings()
    }

    pub fn len(&self) -> usize {
        self.policy.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `ngx_http_upstream_get_keepalive_peer`: the most recently stored
    /// connection to `peer` not known closed when the event-loop pass that
    /// asks began (`pass`: when the client's request, or the failure a
    /// retry follows, was read).
    pub async fn checkout(&self, peer: SocketAddr, pass: Instant) -> Option<UpstreamConn> {
        loop {
            let item = self.policy.lock().checkout(&peer)?;
            let (tx, rx) = oneshot::channel();
            if item.conn.send(Handoff { pass, reply: tx }).is_err() {
                continue;
            }
            if let Ok(conn) = rx.await {
                return Some(conn);
            }
        }
    }

    /// `ngx_http_upstream_free_keepalive_peer` for a connection whose
    /// response allows keeping it (`response_keeps_connection`).
    pub fn store(&self, conn: UpstreamConn) {
        let now = Instant::now();
        if !self.settings().admits(conn.requests, now - conn.created) {
            return;
        }
        let (take, take_rx) = oneshot::channel();
        let (id, deadline) = {
            let mut policy = self.policy.lock();
            match policy.store(conn.peer, take, now) {
                // The evicted connection's watcher sees its sender dropped.
                Stored::Kept { id, evicted } => {
                    drop(evicted);
                    (id, policy.deadline(now))
                }
                Stored::NoCache(_) => return,
            }
        };
        self.events.push(0, ProxyEventKind::KeepaliveStored { local_port: conn.local_port });
        tokio::spawn(watch_idle(conn, take_rx, self.clone(), id, deadline));
    }
}

/// The close handler and timer of one idle connection.
async fn watch_idle(conn: UpstreamConn, mut take: oneshot::Receiver<Handoff>, cache: Keepalive, id: u64, deadline: Instant) {
    let port = conn.local_port;
    let mut buf = [0u8; 1];
    let why = tokio::select! {
        // Biased: an event that already arrived (FIN, RST) is seen before
        // a checkout that comes after it.
        biased;
        r = conn.stream.peek(&mut buf) => match r {
            Ok(0) => CacheClose::Fin,
            Ok(_) => CacheClose::StrayData,
            Err(_) => CacheClose::Rst,
        },
        _ = tokio::time::sleep_until(deadline.into()) => CacheClose::Timeout,
        msg = &mut take => match msg {
            Ok(handoff) => {
                // If the receiver gave up, the connection is simply dropped.
                let _ = handoff.reply.send(conn);
                return;
            }
            Err(_) => CacheClose::Evicted,
        },
    };
    if why != CacheClose::Evicted {
        // nginx learns of the close from its read event, which
        // `ngx_http_upstream_keepalive_close_handler` handles in the event
        // loop's next pass: a pass already under way when the close
        // arrived (reading a client's request, or the failure before a
        // retry) still takes the connection from the cache, sends on it and
        // meets the close on its first read. The idle race's window is that
        // wide on nginx's side.
        let seen = Instant::now();
        let linger = tokio::time::sleep(PASS_LINGER);
        tokio::pin!(linger);
        tokio::select! {
            biased;
            msg = &mut take => {
                if let Ok(handoff) = msg {
                    if handoff.pass < seen {
                        let _ = handoff.reply.send(conn);
                        return;
                    }
                }
            }
            _ = &mut linger => {}
        }
    }
    cache.policy.lock().remove(id);
    drop(conn);
    cache.events.push(0, ProxyEventKind::KeepaliveClosed { local_port: port, why });
}
