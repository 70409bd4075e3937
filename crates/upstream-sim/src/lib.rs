//! # upstream-sim: Go's `http.Server`, connection by connection
//!
//! An emulation of Go 1.19's `net/http` server connection loop, built to
//! reproduce the details that make nginx return 502: where each deadline is
//! armed, that WriteTimeout never interrupts a handler, the idle wait and its
//! fallbacks, Go's two response buffers, the unread-body rules, and whether a
//! close reaches the peer as FIN or RST.
//!
//! * [`rules`]: the Go rules as pure functions (shared with the scenario oracle).
//! * `conn`: the per-connection loop (I/O around the rules).
//! * [`server::UpstreamSim`]: listener, Shutdown, keep-alives switch, crash.
//! * [`events`]: timestamped connection events, readable while running.
//! * [`handlers`]: the handler behaviours, by request path.

pub mod bufio;
pub mod chunked;
pub mod config;
mod conn;
pub mod events;
pub mod godur;
pub mod handlers;
pub mod httpdate;
pub mod rules;
pub mod probe;
pub mod server;

pub use config::{GoVersion, IdleRace, ServerConfig};
pub use events::{CloseReason, ConnEvent, Event, EventKind, EventLog, Recorder};
pub use rules::CloseKind;
pub use server::UpstreamSim;
