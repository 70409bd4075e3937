//! # go-model: Go's `net/http` server as pure functions
//!
//! The decisions of Go 1.19's `(*conn).serve` loop that make nginx return
//! 502, with no I/O: upstream-sim (`crates/upstream-sim`) runs them over
//! sockets; the oracle (`scenarios::oracle`) runs the same code in virtual
//! time through [`serve`].
//!
//! * [`config`]: the `http.Server` fields, under Go's names, plus lab knobs.
//! * [`rules`]: deadlines, the idle wait, framing, unread bodies,
//!   connection reuse, FIN vs RST.
//! * [`bufio`]: where Go's `bufio.Writer` spills to the next layer.
//! * [`handlers`]: the handler behaviours, by request path, as scripts of
//!   [`handlers::Op`]s.
//! * [`response`]: Go's response writer (`response.w` → `chunkWriter` →
//!   `conn.bufw` → socket): the exact bytes of each `write(2)`.
//! * [`exchange`]: the script interpreter: one request from handler start
//!   to the connection's fate, driven by the emulator or by [`serve`].
//! * [`serve`]: one request on one connection in virtual time.
//! * [`godur`]: Go's duration syntax.

pub mod bufio;
pub mod config;
pub mod exchange;
pub mod godur;
pub mod handlers;
pub mod request;
pub mod response;
pub mod rules;
pub mod serve;

pub use config::{GoVersion, IdleRace, ServerConfig};
pub use rules::CloseKind;
