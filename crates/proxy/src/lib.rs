//! # proxy: nginx's upstream module, emulated
//!
//! The imperative shell around `nginx_model`: it binds sockets, talks HTTP/1
//! to clients and to upstreams by hand (nginx passes status lines, header
//! names and even HTTP/0.9 bytes through as they came, and its log lines
//! name the syscall that failed), and keeps the keepalive cache's
//! connections alive in watcher tasks. Every decision is asked of
//! `nginx_model`.
//!
//! * [`server`]: the run time built from the configuration, the listeners.
//! * `client`: one client connection: request, body limits, the response
//!   as nginx writes it.
//! * `pass`: the attempt loop (`Attempts` over sockets).
//! * [`upstream`]: one attempt's I/O, phase by phase.
//! * [`keepalive`]: the idle connections and their close handlers.
//! * [`logs`]: the error.log / access.log sink.
//! * [`events`]: the proxy's timeline events.

mod client;
pub mod events;
pub mod files;
pub mod keepalive;
pub mod logs;
mod pass;
pub mod server;
pub mod upstream;

pub use nginx_model::{conf, Profile};
pub use server::{check_config, worker_threads, Proxy, ProxyOptions, StartError};
