//! # proxy: nginx's upstream module, emulated
pub mod balancer;
pub mod conf;
pub mod retry;
pub mod time;
pub mod events;
pub mod failure;
pub mod keepalive;
pub mod logs;
pub mod nginx;
pub mod profile;
pub mod server;
pub mod upstream;

pub use server::{check_config, Profile, Proxy, ProxyOptions, StartError};
