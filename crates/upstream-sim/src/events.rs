//! Per-connection, timestamped events. Every event also goes to `tracing`;
//! the in-memory log is what the scenario runner and the tests read. Waiting
//! is event-driven (`wait_for`), never sleep-and-poll.

use go_model::rules::CloseKind;
use std::net::SocketAddr;
pub use labkit::events::{Event, Recorder};

pub type ConnEvent = Event<EventKind>;
pub type EventLog = Recorder<EventKind>;

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
    /// Shutdown's first sweep over idle connections has run (`closeIdleConns`).
    IdleSwept,
    /// The accept loop has stopped calling accept() (lab knob).
    AcceptPaused,
    /// accept() failed at the process's fd limit (EMFILE); Serve logs
    /// `line` and sleeps `delay_ms` before trying again.
    AcceptError { delay_ms: f64, line: String },
}

/// The close event of a connection, if it has closed.
pub fn closed_event(events: &[ConnEvent], conn: u64) -> Option<&ConnEvent> {
    events.iter().find(|e| e.conn == conn && matches!(e.kind, EventKind::Closed { .. }))
}
