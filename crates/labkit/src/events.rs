//! A timestamped, shareable event log that can be waited on. Both emulators
//! record into it (each with its own event kind), and the harness and tests
//! wait on it (`wait_for`, always bounded) instead of sleeping.

use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

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
        self.inner.events.lock().push(Event { at, conn, kind });
        self.inner.version.send_modify(|v| *v += 1);
    }

    pub fn snapshot(&self) -> Vec<Event<K>> {
        self.inner.events.lock().clone()
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

