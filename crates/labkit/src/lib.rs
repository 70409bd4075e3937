//! # labkit: what the lab's crates share
//!
//! * [`action`]: the workload actions a scenario can take on the upstream.
//! * [`wire`]: HTTP/1 heads, body framing and a body decoder (pure).
//! * [`chunked`]: an incremental HTTP/1.1 chunked-body decoder (pure).
//! * [`events`]: a timestamped event log that can be waited on (feature
//!   `events`, on by default; it needs tokio, so the pure models turn it off).
//! * [`clock`]: waits at sub-millisecond precision, for Go's deadlines and
//!   the runner's request gaps (feature `clock`).
//!
//! Neither emulator owns these: the nginx emulator, the Go emulator, the
//! oracle and the harness all use them, and none links another for them.

pub mod action;
pub mod chunked;
pub mod wire;
#[cfg(feature = "events")]
pub mod events;
#[cfg(feature = "clock")]
pub mod clock;
