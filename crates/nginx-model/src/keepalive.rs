//! The upstream keepalive cache's policy
//! (`ngx_http_upstream_keepalive_module.c`), generic over what a cached
//! connection is: the proxy stores handles to live sockets, the oracle stores
//! modelled connections.
//!
//! * One cache per upstream block, at most `keepalive N` idle connections to
//!   any of its servers.
//! * Checkout (`ngx_http_upstream_get_keepalive_peer`) takes the most
//!   recently stored connection to the chosen server: LIFO.
//! * Storing into a full cache (`ngx_http_upstream_free_keepalive_peer`)
//!   closes the least recently used connection first: LRU eviction.
//! * A connection is only stored if it has served fewer than
//!   `keepalive_requests` requests and is younger than `keepalive_time`; an
//!   idle one is closed after `keepalive_timeout`.
//!
//! What the response must look like to be cached at all is
//! [`keeps_connection`] (called on an upstream head as
//! `response::UpstreamHead::keeps_connection`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The keepalive directives of an upstream block, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveSettings {
    /// `keepalive N` (0: no cache).
    pub capacity: usize,
    /// `keepalive_timeout`.
    pub timeout: Duration,
    /// `keepalive_requests`.
    pub requests: u32,
    /// `keepalive_time`.
    pub time: Duration,
}

impl KeepaliveSettings {
    /// The connection-dependent checks of `ngx_http_upstream_free_keepalive_peer`:
    /// a cache exists, `c->requests < keepalive_requests`, and the connection
    /// is not older than `keepalive_time`.
    pub fn admits(&self, requests: u32, age: Duration) -> bool {
        self.capacity > 0 && requests < self.requests && age <= self.time
    }
}

/// Whether nginx may keep an upstream connection after this response
/// (`u->keepalive` in `ngx_http_proxy_module.c`): an HTTP/1.1 status line
/// (`ngx_http_proxy_process_status_line` marks every HTTP/1.0 response
/// `connection_close`, even with `Connection: keep-alive`), no
/// `Connection: close`, and a body that ended by its framing (length or
/// chunked, never by the connection's close) and was read whole.
pub fn keeps_connection(http11: bool, connection_close: bool, body_complete: bool, delimited: bool) -> bool {
    http11 && !connection_close && body_complete && delimited
}

/// One idle connection in the cache.
#[derive(Debug, Clone)]
pub struct Cached<P, C> {
    pub id: u64,
    pub peer: P,
    pub conn: C,
    pub stored_at: Instant,
}

/// The cache: `P` names the server, `C` is what is kept.
#[derive(Debug, Clone)]
pub struct KeepaliveCache<P, C> {
    settings: KeepaliveSettings,
    /// Most recently stored first (nginx's `cache` queue, head insertion).
    items: VecDeque<Cached<P, C>>,
    next_id: u64,
}

/// What storing did.
#[derive(Debug)]
pub enum Stored<C> {
    /// Cached under this id; `evicted` is the least recently used connection
    /// the cache closed to make room.
    Kept { id: u64, evicted: Option<C> },
    /// No cache (`keepalive 0`): the connection is handed back to be closed.
    NoCache(C),
}

impl<P: PartialEq, C> KeepaliveCache<P, C> {
    pub fn new(settings: KeepaliveSettings) -> Self {
        KeepaliveCache { settings, items: VecDeque::new(), next_id: 0 }
    }

    pub fn settings(&self) -> KeepaliveSettings {
        self.settings
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Stores an idle connection (the caller checked `admits` and
    /// `response_keeps_connection`).
    pub fn store(&mut self, peer: P, conn: C, now: Instant) -> Stored<C> {
        if self.settings.capacity == 0 {
            return Stored::NoCache(conn);
        }
        let evicted = if self.items.len() >= self.settings.capacity { self.items.pop_back().map(|c| c.conn) } else { None };
        self.next_id += 1;
        let id = self.next_id;
        self.items.push_front(Cached { id, peer, conn, stored_at: now });
        Stored::Kept { id, evicted }
    }

    /// The most recently stored connection to `peer`, taken out of the cache.
    pub fn checkout(&mut self, peer: &P) -> Option<Cached<P, C>> {
        let pos = self.items.iter().position(|c| &c.peer == peer)?;
        self.items.remove(pos)
    }

    /// Takes out one connection (its close handler fired: the peer closed it,
    /// sent stray bytes, or `keepalive_timeout` passed).
    pub fn remove(&mut self, id: u64) -> Option<Cached<P, C>> {
        let pos = self.items.iter().position(|c| c.id == id)?;
        self.items.remove(pos)
    }

    /// When an idle connection stored at `stored_at` is closed by nginx.
    pub fn deadline(&self, stored_at: Instant) -> Instant {
        stored_at + self.settings.timeout
    }

    /// Closes every connection whose `keepalive_timeout` has passed by `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Cached<P, C>> {
        let timeout = self.settings.timeout;
        let (gone, kept): (Vec<_>, Vec<_>) = self.items.drain(..).partition(|c| now >= c.stored_at + timeout);
        self.items = kept.into();
        gone
    }

    /// Keeps only the connections `keep` accepts (a model's way of letting
    /// the other side close some); returns the others.
    pub fn retain_mut(&mut self, mut keep: impl FnMut(&mut Cached<P, C>) -> bool) -> Vec<Cached<P, C>> {
        let mut gone = Vec::new();
        let mut kept = VecDeque::new();
        for mut c in self.items.drain(..) {
            if keep(&mut c) {
                kept.push_back(c);
            } else {
                gone.push(c);
            }
        }
        self.items = kept;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(capacity: usize) -> KeepaliveSettings {
        KeepaliveSettings { capacity, timeout: Duration::from_secs(60), requests: 1000, time: Duration::from_secs(3600) }
    }

    #[test]
    fn checkout_is_lifo_per_peer() {
        let now = Instant::now();
        let mut c = KeepaliveCache::new(settings(4));
        for (peer, conn) in [(1, "a"), (2, "b"), (1, "c")] {
            assert!(matches!(c.store(peer, conn, now), Stored::Kept { evicted: None, .. }));
        }
        assert_eq!(c.checkout(&1).map(|x| x.conn), Some("c"));
        assert_eq!(c.checkout(&1).map(|x| x.conn), Some("a"));
        assert!(c.checkout(&1).is_none());
        assert_eq!(c.checkout(&2).map(|x| x.conn), Some("b"));
    }

    #[test]
    fn a_full_cache_closes_the_least_recently_used() {
        let now = Instant::now();
        let mut c = KeepaliveCache::new(settings(1));
        c.store(1, "old", now);
        match c.store(1, "new", now) {
            Stored::Kept { evicted, .. } => assert_eq!(evicted, Some("old")),
            Stored::NoCache(_) => panic!("capacity 1 caches"),
        }
        assert_eq!(c.len(), 1);
        assert!(matches!(KeepaliveCache::new(settings(0)).store(1, "x", now), Stored::NoCache("x")));
    }

    #[test]
    fn admission_and_expiry() {
        let s = KeepaliveSettings { capacity: 2, timeout: Duration::from_secs(5), requests: 3, time: Duration::from_secs(10) };
        assert!(s.admits(2, Duration::from_secs(10)));
        assert!(!s.admits(3, Duration::ZERO), "keepalive_requests reached");
        assert!(!s.admits(1, Duration::from_secs(11)), "older than keepalive_time");
        let t0 = Instant::now();
        let mut c = KeepaliveCache::new(s);
        c.store(1, "a", t0);
        c.store(1, "b", t0 + Duration::from_secs(3));
        let gone: Vec<_> = c.expire(t0 + Duration::from_secs(5)).into_iter().map(|x| x.conn).collect();
        assert_eq!(gone, vec!["a"]);
        assert_eq!(c.deadline(t0), t0 + Duration::from_secs(5));
    }

    #[test]
    fn only_delimited_complete_http11_responses_keep_the_connection() {
        let head = |s: &str| match crate::response::parse_head(s.as_bytes()) {
            crate::response::HeadParse::Done(h, _) => h,
            other => panic!("{other:?}"),
        };
        let ok = head("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert!(ok.keeps_connection(true, true));
        assert!(!ok.keeps_connection(false, true), "cut short");
        assert!(!ok.keeps_connection(true, false), "ended by close");
        assert!(!head("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n").keeps_connection(true, true));
        assert!(!head("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").keeps_connection(true, true));
    }
}
