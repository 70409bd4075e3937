//! # upstream-sim: Go's `http.Server`, connection by connection
//!
//! An emulation of Go 1.19's `net/http` server connection loop, built to
//! reproduce the details that make nginx return 502: where each deadline is
//! armed, that WriteTimeout never interrupts a handler, the idle wait and its
//! fallbacks, Go's two response buffers, the unread-body rules, and whether a
//! close reaches the peer as FIN or RST. The decisions are `go_model`'s; this
//! crate is the I/O around them.
//!
//! * `conn`: the per-connection loop.
//! * [`server::UpstreamSim`]: listener, Shutdown, keep-alives switch, crash.
//! * [`events`]: timestamped connection events, readable while running.
//! * [`control`]: the lab's control endpoint (`--control ADDR`): settings
//!   and knobs from outside the process, handler-run counters.

mod conn;
pub mod control;
pub mod events;
pub mod server;

pub use events::{CloseReason, ConnEvent, EventKind, EventLog};
pub use go_model::{rules, CloseKind, GoVersion, IdleRace, ServerConfig};
pub use server::UpstreamSim;
