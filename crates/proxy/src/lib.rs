//! # proxy: nginx's upstream module, emulated
pub mod balancer;
pub mod conf;
pub mod retry;
pub mod time;
