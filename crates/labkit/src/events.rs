//! A timestamped, shareable event log that can be waited on. Both emulators
//! record into it (each with its own event kind), and the harness and tests
//! wait on it (`wait_for`, always bounded) instead of sleeping.

use parking_lot::Mutex;
use std::collections::VecDeque;
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


/// How many events a recorder keeps in memory. Every event also goes to
/// `tracing`; what is kept is for readers in the same process (the harness,
/// tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Keep nothing: a long-running server whose memory must stay flat.
    Off,
    /// Keep the most recent `n` events.
    Last(usize),
}

impl Retention {
    /// What a lab run keeps: far more than any scenario produces, and a
    /// bound all the same.
    pub const LAB: Retention = Retention::Last(1 << 16);
}

/// A shareable event log that can be waited on, bounded by its
/// [`Retention`]. The proxy records its own event kinds with the same
/// recorder.
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
    retention: Retention,
    events: Mutex<VecDeque<Event<K>>>,
    version: watch::Sender<u64>,
}

impl<K: Clone + std::fmt::Debug> Recorder<K> {
    pub fn new(epoch: Instant, retention: Retention) -> Self {
        Recorder {
            inner: Arc::new(Inner { epoch, retention, events: Mutex::new(VecDeque::new()), version: watch::channel(0).0 }),
        }
    }

    pub fn epoch(&self) -> Instant {
        self.inner.epoch
    }

    /// Whether a pushed event goes anywhere: kept, or wanted by `tracing`
    /// at debug level. A server that keeps nothing skips the clock read
    /// and the event's construction ([`Recorder::push_with`]).
    pub fn is_recording(&self) -> bool {
        self.inner.retention != Retention::Off || tracing::enabled!(tracing::Level::DEBUG)
    }

    /// [`Recorder::push`], building the event only when it is recorded
    /// (one that owns strings costs their copies).
    pub fn push_with(&self, conn: u64, kind: impl FnOnce() -> K) {
        if self.is_recording() {
            self.push(conn, kind());
        }
    }

    pub fn push(&self, conn: u64, kind: K) {
        if !self.is_recording() {
            return;
        }
        let at = self.inner.epoch.elapsed();
        tracing::debug!(conn, at_ms = at.as_secs_f64() * 1e3, ?kind);
        let Retention::Last(n) = self.inner.retention else { return };
        {
            let mut events = self.inner.events.lock();
            if events.len() >= n {
                events.pop_front();
            }
            events.push_back(Event { at, conn, kind });
        }
        self.inner.version.send_modify(|v| *v += 1);
    }

    /// The events kept, oldest first.
    pub fn snapshot(&self) -> Vec<Event<K>> {
        self.inner.events.lock().iter().cloned().collect()
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


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_bounds_what_is_kept() {
        let r = Recorder::new(Instant::now(), Retention::Last(3));
        for i in 0..10u32 {
            r.push(0, i);
        }
        assert_eq!(r.snapshot().iter().map(|e| e.kind).collect::<Vec<_>>(), vec![7, 8, 9]);
        let off = Recorder::new(Instant::now(), Retention::Off);
        off.push(0, 1u32);
        let mut built = false;
        off.push_with(0, || {
            built = true;
            2u32
        });
        assert!(off.snapshot().is_empty());
        assert!(!off.is_recording() && !built, "nothing listens: the event is not even built");
        r.push_with(0, || 10);
        assert_eq!(r.snapshot().last().map(|e| e.kind), Some(10));
    }
}
