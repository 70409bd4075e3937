//! Per-connection, timestamped events. Every event also goes to `tracing`;
//! the in-memory log is what the scenario runner and the tests read. Waiting
//! is event-driven (`wait_for`), never sleep-and-poll.

use crate::rules::CloseKind;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum CloseReason {
    /// IdleTimeout (or its fallback) fired while waiting for the next request.
    IdleTimeout,
    /// ReadHeaderTimeout / ReadTimeout fired while reading a request.
    ReadTimeout,
    /// The peer closed or reset the connection.
    PeerClosed,
    /// A socket write failed (WriteTimeout, broken pipe): `chunkWriter` closes at once.
    WriteFailed,
    /// The handler panicked (or panicked with `http.ErrAbortHandler`).
    Panic,
    /// The response said `Connection: close` or the request could not be reused.
    CloseAfterReply,
    /// Keep-alives disabled (`SetKeepAlivesEnabled(false)` or Shutdown).
    KeepAlivesDisabled,
    /// `Shutdown` closed an idle connection.
    Shutdown,
    /// The process "crashed": every socket closed at once.
    Crash,
    /// The request header was too large (431).
    HeaderTooLarge,
    /// The request could not be parsed (400).
    BadRequest,
    /// Lab knob: the deterministic idle race.
    IdleRace,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    Accepted { peer: SocketAddr },
    /// A read deadline was set (`what`: "header", "request" or "idle").
    ReadDeadlineArmed { what: &'static str, after_ms: f64 },
    HeadRead { method: String, target: String, http11: bool, body_len: u64 },
    WriteDeadlineArmed { after_ms: f64 },
    HandlerStart { path: String },
    HandlerEnd { outcome: &'static str },
    ResponseHead { status: u16, framing: String },
    /// Bytes handed to the kernel (one `write(2)`).
    Wrote { bytes: usize },
    WriteFailed { error: String },
    IdleWait { limit_ms: Option<f64> },
    Closed { how: CloseKind, reason: CloseReason },
    ShutdownStarted,
    ListenerClosed,
    /// The accept loop has stopped calling accept() (lab knob).
    AcceptPaused,
}

/// One timestamped event of kind `K`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Event<K> {
    /// Time since the recorder's epoch.
    pub at: Duration,
    /// Connection (or request) number, 0 for server-level events.
    pub conn: u64,
    #[serde(flatten)]
    pub kind: K,
}

pub type ConnEvent = Event<EventKind>;
pub type EventLog = Recorder<EventKind>;

/// An append-only, shareable event log that can be waited on. The proxy
/// records its own event kinds with the same recorder.
pub struct Recorder<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for Recorder<K> {
    fn clone(&self) -> Self {
        Recorder { inner: self.inner.clone() }
    }
}

struct Inner<K> {
    epoch: Instant,
    events: Mutex<Vec<Event<K>>>,
    version: watch::Sender<u64>,
}

impl<K: Clone + std::fmt::Debug> Recorder<K> {
    pub fn new(epoch: Instant) -> Self {
        Recorder {
            inner: Arc::new(Inner { epoch, events: Mutex::new(Vec::new()), version: watch::channel(0).0 }),
        }
    }

    pub fn epoch(&self) -> Instant {
        self.inner.epoch
    }

    pub fn push(&self, conn: u64, kind: K) {
        let at = self.inner.epoch.elapsed();
        tracing::debug!(conn, at_ms = at.as_secs_f64() * 1e3, ?kind);
        self.inner.events.lock().unwrap().push(Event { at, conn, kind });
        self.inner.version.send_modify(|v| *v += 1);
    }

    pub fn snapshot(&self) -> Vec<Event<K>> {
        self.inner.events.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the log, or `timeout` passes. Returns the
    /// snapshot either way, and whether the predicate held.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&[Event<K>]) -> bool,
    ) -> (bool, Vec<Event<K>>) {
        let mut rx = self.inner.version.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            let snap = self.snapshot();
            if pred(&snap) {
                return (true, snap);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return (false, self.snapshot()),
            }
        }
    }
}

/// The close event of a connection, if it has closed.
pub fn closed_event(events: &[ConnEvent], conn: u64) -> Option<&ConnEvent> {
    events.iter().find(|e| e.conn == conn && matches!(e.kind, EventKind::Closed { .. }))
}
