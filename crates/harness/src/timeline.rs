//! Timeline entries: what a backend saw, on the run's clock, in one of three
//! lanes. Each backend turns its own record (the emulators' events, real
//! Go's log, real nginx's error.log) into entries, in its own file under
//! `backend/`; `scenarios::timeline` renders them.

use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    Client,
    Proxy,
    Upstream,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub at_ms: f64,
    pub lane: Lane,
    pub text: String,
}

impl TimelineEntry {
    pub fn new(at: Duration, lane: Lane, text: String) -> Self {
        TimelineEntry { at_ms: at.as_secs_f64() * 1e3, lane, text }
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
