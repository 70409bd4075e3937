//! # scenarios: the catalogue of nginx → Go 502s
//!
//! * [`scenario`]: the declarative scenario format (TOML in `catalogue/`).
//! * [`catalogue`]: the scenarios, compiled in.
//! * [`setup`]: a scenario's Go and nginx configurations at run scale.
//! * [`runner`]: runs one on any pair of backends (`harness`'s
//!   `ProxyUnderTest` and `UpstreamUnderTest`: built-in emulators or real
//!   nginx / Go), and judges what it saw.
//! * [`oracle`]: predicts each request's outcome from the configuration by
//!   driving `nginx_model`'s and `go_model`'s state machines, the same ones
//!   the emulators run.
//! * [`verdict`]: observations checked against expectations.
//!
//! `oracle`, `verdict`, `setup` and `scenario` are pure: they import the
//! models, labkit and each other only (tests/architecture.rs checks it).
//! * [`timeline`], [`report`], [`html`]: what the user reads (the HTML report:
//!   verdict tables, SVG timelines, matrix heatmaps).
//! * [`document`]: the one JSON document shape of every command's `--json`,
//!   and its JSON Schema (`scenarios schema report`).
//! * [`diagnose`]: a user's error.log and access.log → mechanisms and fixes.
//! * [`lab`]: the docker-compose lab's driver (`scenarios lab`).
//! * [`matrix`]: sweeps of Go IdleTimeout × nginx keepalive_timeout × method.
//! * [`Error`]: what stops a command before a verdict, and exit statuses.

pub mod catalogue;
pub mod check;
pub mod html;
pub mod diagnose;
pub mod document;
mod error;
pub mod lab;
pub mod matrix;
pub mod oracle;
pub mod rate;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod setup;
pub mod timeline;
pub mod verdict;

pub use error::{exit, Error};
