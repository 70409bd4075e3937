//! # scenarios: the catalogue of nginx → Go 502s
//!
//! * [`scenario`]: the declarative scenario format (TOML in `catalogue/`).
//! * [`catalogue`]: the scenarios, compiled in.
//! * [`setup`]: a scenario's Go and nginx configurations at run scale.
//! * [`runner`]: runs one on any pair of backends (`harness`'s
//!   `ProxyUnderTest` and `UpstreamUnderTest`: built-in emulators or real
//!   nginx / Go), and judges what it saw.
//! * [`oracle`]: predicts each request's outcome from the configuration,
//!   with the same rule functions the emulators use.
//! * [`timeline`], [`report`]: what the user reads.
//! * [`matrix`]: sweeps of Go IdleTimeout × nginx keepalive_timeout × method.
//! * [`Error`]: what stops a command before a verdict, and exit statuses.

pub mod catalogue;
mod error;
pub mod matrix;
pub mod oracle;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod setup;
pub mod timeline;

pub use error::{exit, Error};
