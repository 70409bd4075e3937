//! # nginx-model: nginx's upstream module as pure functions
//!
//! Everything here is a decision, never I/O: no sockets, no runtime, no clock
//! reads. The proxy (`crates/proxy`) runs these over sockets; the oracle
//! (`scenarios::oracle`) runs the same functions over a model of the upstream.
//!
//! * [`conf`]: nginx.conf parsing and rendering (nginx's own error messages).
//! * [`directive`]: nginx 1.22.1's directive table (generated from nginx's
//!   source) and `ngx_conf_handler`'s checks; [`include`]: `include` files and globs.
//! * [`time`]: nginx's time syntax (`ngx_parse_time`).
//! * [`num`]: nginx's number syntax (`ngx_atoi`, `ngx_parse_size`, `ngx_parse_offset`).
//! * [`profile`]: version-dependent defaults (nginx ≤ 1.29.6 vs ≥ 1.29.7).
//! * [`retry`]: `ngx_http_upstream_next` and `ngx_http_upstream_test_next`.
//! * [`balancer`]: round robin, `tried`, `max_fails`/`fail_timeout`, backups.
//! * [`failure`]: failure classes, `ft_type`, and the exact error.log text.
//! * [`logs`]: error.log and access.log formats; [`logparse`]: reading them back.
//! * [`http`]: the upstream request, the headers passed on, error pages.
//! * [`response`]: the upstream's head as nginx parses it, the client's head
//!   as nginx writes it, error pages.
//! * [`resolve`]: the effective configuration, with nginx's defaults.
//! * [`keepalive`]: the keepalive cache policy (LIFO checkout, LRU eviction).
//! * [`attempt`]: one request's upstream attempts, as a state machine.
//! * [`auth`]: `auth_request`: what the subrequest's status means.
//! * [`signal`]: `nginx -s`, the signals the master handles, the pid file.
//! * [`version`]: `nginx -V`, the profile a release runs, directives an older
//!   release lacks, and configurations pinned to nginx 1.22's defaults.

pub mod auth;
pub mod balancer;
pub mod buffering;
pub mod attempt;
pub mod conf;
pub mod directive;
#[rustfmt::skip]
mod directives;
pub mod include;
pub mod num;
pub mod failure;
pub mod http;
pub mod keepalive;
pub mod logs;
pub mod logparse;
pub mod profile;
pub mod resolve;
pub mod response;
pub mod retry;
pub mod signal;
pub mod time;
pub mod version;

pub use profile::Profile;
