//! # scenarios: the catalogue of nginx → Go 502s
//!
//! * [`scenario`]: the declarative scenario format (TOML in `catalogue/`).
//! * [`catalogue`]: the scenarios, compiled in.
//! * [`runner`]: runs one on built-in emulators or real nginx / Go.
//! * [`oracle`]: predicts each request's outcome from the configuration,
//!   with the same rule functions the emulators use.
//! * [`timeline`], [`report`]: what the user reads.
//! * [`matrix`]: sweeps of Go IdleTimeout × nginx keepalive_timeout × method.

pub mod catalogue;
pub mod matrix;
pub mod oracle;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod setup;
pub mod timeline;
