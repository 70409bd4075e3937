//! Timeline entries: what a backend saw, on the run's clock, in one of three
//! lanes. Each backend turns its own record (the emulators' events, real
//! Go's log, real nginx's error.log) into entries, in its own file under
//! `backend/`; `scenarios::timeline` renders them.
//!
//! An entry is typed (`kind`, the connection it is about, FIN or RST for a
//! close) so that readers (the JSON report's consumers, the HTML diagram)
//! never parse `text`, which is for humans. The typed fields are set where
//! the entry is made, from the backend's own typed record.

use serde::Serialize;
use std::time::Duration;

/// The side an entry happened on: the client (the workload), the proxy
/// (nginx) or the upstream (Go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    Client,
    Proxy,
    Upstream,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A request sent to the lane on the right (client → nginx, nginx → Go),
    /// or read by the upstream.
    Request,
    /// A response (its header) sent to, or received from, the lane on the left.
    Response,
    /// nginx got a connection to the upstream: new (`cached` false) or from
    /// its keepalive cache.
    Connect,
    /// Go accepted a connection.
    Accept,
    /// A connection closed (`close` says FIN or RST where known).
    Close,
    /// nginx tries the next upstream.
    Retry,
    /// nginx gives up and answers the client itself (`status`).
    GiveUp,
    /// A failure: nginx's error.log line or failed attempt, Go's failed write.
    Error,
    HandlerStart,
    HandlerEnd,
    /// A deadline armed (Go's WriteTimeout).
    Deadline,
    /// Go waits for the next request on a keep-alive connection.
    Idle,
    /// nginx stored a connection in its keepalive cache.
    KeepaliveStore,
    /// A server-level event (Shutdown, listener closed, a process started).
    Server,
    /// A lab action the scenario takes (crash, shutdown, ...).
    Action,
    /// Anything else worth a line.
    Note,
}

/// How a connection closed on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum CloseHow {
    /// An orderly close: the peer reads EOF.
    #[serde(rename = "FIN")]
    Fin,
    /// A reset: the peer's next read or write fails with ECONNRESET.
    #[serde(rename = "RST")]
    Rst,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TimelineEntry {
    /// Milliseconds since the run's start.
    pub at_ms: f64,
    /// The side: client, proxy (nginx) or upstream (Go).
    pub lane: Lane,
    pub kind: EntryKind,
    /// The proxy↔upstream connection, by the proxy's local port (which is
    /// the upstream's peer port, so both lanes name it alike), where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The backend's own connection number (Go emulator), where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn: Option<u64>,
    /// For `close`: FIN or RST, where the backend knows (real Go's log
    /// only says "closed").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close: Option<CloseHow>,
    /// An HTTP status, for `response` and `give_up`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The line for humans (the terminal timeline, the HTML tooltip).
    pub text: String,
}

impl TimelineEntry {
    pub fn new(at: Duration, lane: Lane, kind: EntryKind, text: String) -> Self {
        Self::at_ms(at.as_secs_f64() * 1e3, lane, kind, text)
    }

    pub fn at_ms(at_ms: f64, lane: Lane, kind: EntryKind, text: String) -> Self {
        TimelineEntry { at_ms, lane, kind, port: None, conn: None, close: None, status: None, text }
    }

    pub fn port(self, port: Option<u16>) -> Self {
        TimelineEntry { port, ..self }
    }

    pub fn conn(self, conn: u64) -> Self {
        TimelineEntry { conn: Some(conn), ..self }
    }

    pub fn close(self, how: CloseHow) -> Self {
        TimelineEntry { close: Some(how), ..self }
    }

    pub fn status(self, status: u16) -> Self {
        TimelineEntry { status: Some(status), ..self }
    }
}

/// `[go2] `: which server a line is from, when there are several.
pub fn server_tag(server: usize, servers: usize) -> String {
    if servers > 1 {
        format!("[go{}] ", server + 1)
    } else {
        String::new()
    }
}
