//! # go-model: Go's `net/http` server as pure functions
//!
//! The decisions of Go 1.19's `(*conn).serve` loop that make nginx return
//! 502, with no I/O: upstream-sim (`crates/upstream-sim`) runs them over
//! sockets; the oracle (`scenarios::oracle`) runs the same functions over a
//! model of nginx.
//!
//! * [`config`]: the `http.Server` fields, under Go's names, plus lab knobs.
//! * [`rules`]: deadlines, the idle wait, framing, unread bodies, FIN vs RST.
//! * [`bufio`]: where Go's `bufio.Writer` spills to the next layer.
//! * [`handlers`]: the handler behaviours, by request path.
//! * [`godur`]: Go's duration syntax.

pub mod bufio;
pub mod config;
pub mod godur;
pub mod handlers;
pub mod rules;

pub use config::{GoVersion, IdleRace, ServerConfig};
pub use rules::CloseKind;
