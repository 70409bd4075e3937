//! # proxy: nginx's upstream module, emulated
//!
//! The imperative shell around `nginx_model`: it binds sockets, talks HTTP/1
//! to clients (hyper) and to upstreams (its own framing, so it can tell which
//! syscall failed, as nginx's log lines do), and keeps the keepalive cache's
//! connections alive in watcher tasks. Every decision is asked of
//! `nginx_model`.
//!
//! * [`server`]: listeners, the client side, the attempt loop, the response pump.
//! * [`upstream`]: one attempt's I/O, phase by phase.
//! * [`keepalive`]: the idle connections and their close handlers.
//! * [`logs`]: the error.log / access.log sink.
//! * [`events`]: the proxy's timeline events.

pub mod events;
pub mod keepalive;
pub mod logs;
pub mod server;
pub mod upstream;

pub use nginx_model::{conf, Profile};
pub use server::{check_config, Proxy, ProxyOptions, StartError};
