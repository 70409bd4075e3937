//! The keepalive cache's live side. `nginx_model::keepalive` decides (LIFO
//! checkout, LRU eviction, admission, the timeout); here each idle
//! connection is watched by a task, the analogue of nginx arming
//! `ngx_http_upstream_keepalive_close_handler` on its read event and a timer
//! for `keepalive_timeout`. Checkout takes the socket from the cache at
//! once (no round trip through the watcher's task); a connection the
//! watcher already saw die is closed instead, and checkout tries the next
//! one. A connection keeps its watcher for its life: the next store re-arms
//! it (a wake, not a new task), and closing the connection ends it.

use crate::events::{CacheClose, ProxyEventKind, ProxyEvents};
use nginx_model::keepalive::{KeepaliveCache, KeepaliveSettings, Stored};
use parking_lot::Mutex;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use std::future::Future;
use std::task::{Poll, Waker};
use tokio::net::TcpStream;

/// An upstream connection the proxy owns.
#[derive(Debug)]
pub struct UpstreamConn {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    pub local_port: u16,
    /// Requests sent on it so far (`c->requests`).
    pub requests: u32,
    pub created: Instant,
    /// Its watcher's slot, from its first stay in the cache on.
    watch: Option<Slot>,
}

impl UpstreamConn {
    /// A connection just made, not yet cached.
    pub fn new(stream: TcpStream, peer: SocketAddr, local_port: u16) -> UpstreamConn {
        UpstreamConn { stream, peer, local_port, requests: 0, created: Instant::now(), watch: None }
    }
}

impl Drop for UpstreamConn {
    /// Closing the connection ends its watcher. Never dropped under its
    /// slot's lock: every path takes it out of the slot first.
    fn drop(&mut self) {
        if let Some(slot) = self.watch.take() {
            let waker = {
                let mut idle = slot.lock();
                idle.gone = true;
                idle.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

/// A connection's place in the cache: shared by the cache (which takes the
/// connection out at checkout, without waiting for another task) and the
/// connection's watcher task (which closes it when the upstream does, or
/// at `keepalive_timeout`).
struct Idle {
    /// The connection while idle; `None` while in use, or once closed.
    conn: Option<UpstreamConn>,
    /// The cache's id for this stay (to remove it when its watcher closes it).
    id: u64,
    /// This stay's `keepalive_timeout` deadline.
    deadline: Instant,
    /// Counts the stays, so that the watcher re-arms for a new one.
    stay: u64,
    /// When the watcher saw the close, and what it was (see [`PASS_LINGER`]).
    closed: Option<(Instant, CacheClose)>,
    /// The watcher's waker: a store wakes it to watch the new stay.
    waker: Option<Waker>,
    /// The connection was closed: the watcher ends.
    gone: bool,
    /// The watcher ended: a later stay needs a new one.
    ended: bool,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle").field("id", &self.id).field("stay", &self.stay).field("idle", &self.conn.is_some()).finish()
    }
}

type Slot = Arc<Mutex<Idle>>;

/// How long a watcher that saw its connection close keeps it for a pass
/// that began before (bounded: such a pass reaches checkout within
/// microseconds).
const PASS_LINGER: std::time::Duration = std::time::Duration::from_millis(5);

#[derive(Clone)]
pub struct Keepalive {
    policy: Arc<Mutex<KeepaliveCache<SocketAddr, Slot>>>,
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
    /// retry follows, was read). A close the watcher has not seen yet is
    /// not known: as on nginx, whose close handler has not run yet, the
    /// connection is taken and the close met on it.
    pub async fn checkout(&self, peer: SocketAddr, pass: Instant) -> Option<UpstreamConn> {
        loop {
            let item = self.policy.lock().checkout(&peer)?;
            let mut idle = item.conn.lock();
            let closed = idle.closed;
            let Some(conn) = idle.conn.take() else { continue };
            drop(idle);
            match closed {
                // Seen closed before this pass began: the close handler ran
                // first, and the connection is closed now.
                Some((seen, why)) if pass >= seen => self.closed(conn, why),
                _ => return Some(conn),
            }
        }
    }

    /// `ngx_http_upstream_free_keepalive_peer` for a connection whose
    /// response allows keeping it (`response_keeps_connection`).
    pub fn store(&self, mut conn: UpstreamConn) {
        let now = Instant::now();
        if !self.settings().admits(conn.requests, now - conn.created) {
            return;
        }
        let port = conn.local_port;
        let peer = conn.peer;
        // The watcher of the connection's last stay watches this one too,
        // unless it ended.
        let reused = conn.watch.clone().filter(|s| !s.lock().ended);
        let fresh = reused.is_none();
        let slot = reused.unwrap_or_else(|| {
            Arc::new(Mutex::new(Idle { conn: None, id: 0, deadline: now, stay: 0, closed: None, waker: None, gone: false, ended: false }))
        });
        conn.watch = Some(slot.clone());
        // The connection goes into its slot before the cache can hand the
        // slot out (a checkout on another worker thread finds it there).
        let mut idle = slot.lock();
        debug_assert!(idle.conn.is_none(), "a connection has one stay at a time");
        idle.conn = Some(conn);
        let (id, deadline, evicted) = {
            let mut policy = self.policy.lock();
            match policy.store(peer, slot.clone(), now) {
                Stored::Kept { id, evicted } => (id, policy.deadline(now), evicted),
                Stored::NoCache(_) => {
                    // Closed (out of the slot first: its drop locks the slot).
                    let conn = idle.conn.take();
                    drop(idle);
                    drop(conn);
                    return;
                }
            }
        };
        idle.id = id;
        idle.deadline = deadline;
        idle.stay += 1;
        self.events.push(0, ProxyEventKind::KeepaliveStored { local_port: port });
        let waker = idle.waker.clone();
        drop(idle);
        if fresh {
            tokio::spawn(watch_idle(slot, self.clone()));
        } else if let Some(w) = waker {
            w.wake();
        }
        // The oldest connection made room (after the newer one's event,
        // as its watcher reported it before); one that was already seen
        // closed keeps that reason.
        if let Some(old) = evicted {
            let mut old = old.lock();
            let why = old.closed.map_or(CacheClose::Evicted, |(_, why)| why);
            if let Some(conn) = old.conn.take() {
                drop(old);
                self.closed(conn, why);
            }
        }
    }

    /// Closes a connection the cache gave up, and says why.
    fn closed(&self, conn: UpstreamConn, why: CacheClose) {
        let port = conn.local_port;
        drop(conn);
        self.events.push(0, ProxyEventKind::KeepaliveClosed { local_port: port, why });
    }
}

/// Ends the watcher's part: marks the slot (a later stay gets a new
/// watcher), and closes the connection if the task is dropped with it
/// still idle (the runtime shut down).
struct WatchGuard {
    slot: Slot,
    cache: Keepalive,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let (conn, id) = {
            let mut idle = self.slot.lock();
            idle.ended = true;
            idle.waker = None;
            (idle.conn.take(), idle.id)
        };
        if conn.is_some() {
            self.cache.policy.lock().remove(id);
        }
    }
}

/// The close handler and timer of one connection, for each of its stays
/// in the cache; it sleeps while the connection is in use.
async fn watch_idle(slot: Slot, cache: Keepalive) {
    let guard = WatchGuard { slot, cache };
    let slot = &guard.slot;
    let sleep = tokio::time::sleep_until(Instant::now().into());
    tokio::pin!(sleep);
    let mut armed = 0;
    // Polled under the slot's lock, never held across an await. The read
    // event first: an event that already arrived (FIN, RST) is seen before
    // the timer.
    let why = std::future::poll_fn(|cx| {
        let mut idle = slot.lock();
        if idle.gone {
            return Poll::Ready(None);
        }
        if !idle.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            idle.waker = Some(cx.waker().clone());
        }
        // In use: a store wakes this task for the next stay (the
        // connection's reads took the read interest; the timer may still
        // fire at the last stay's deadline, and finds it in use).
        let Some(conn) = idle.conn.as_ref() else { return Poll::Pending };
        if armed != idle.stay {
            armed = idle.stay;
            sleep.as_mut().reset(idle.deadline.into());
        }
        let mut one = [std::mem::MaybeUninit::<u8>::uninit(); 1];
        let mut buf = tokio::io::ReadBuf::uninit(&mut one);
        match conn.stream.poll_peek(cx, &mut buf) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Some(CacheClose::Fin)),
            Poll::Ready(Ok(_)) => return Poll::Ready(Some(CacheClose::StrayData)),
            Poll::Ready(Err(_)) => return Poll::Ready(Some(CacheClose::Rst)),
            Poll::Pending => {}
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(CacheClose::Timeout)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await;
    let Some(why) = why else { return };
    // nginx learns of the close from its read event, which
    // `ngx_http_upstream_keepalive_close_handler` handles in the event
    // loop's next pass: a pass already under way when the close arrived
    // (reading a client's request, or the failure before a retry) still
    // takes the connection from the cache, sends on it and meets the close
    // on its first read. The idle race's window is that wide on nginx's
    // side: checkout hands the connection to such a pass until the linger
    // ends, and closes it for a later one.
    {
        let mut idle = slot.lock();
        if idle.conn.is_none() {
            return;
        }
        idle.closed = Some((Instant::now(), why));
    }
    tokio::time::sleep(PASS_LINGER).await;
    let (conn, id) = {
        let mut idle = slot.lock();
        (idle.conn.take(), idle.id)
    };
    let Some(conn) = conn else { return };
    guard.cache.policy.lock().remove(id);
    guard.cache.closed(conn, why);
}
