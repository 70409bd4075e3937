//! Real nginx (see [`crate::nginx`]): a child process in a private prefix.
//! It gives no events, so its logs are read (the access log polled,
//! bounded) and the kernel is asked about its upstream connections.

use super::{AccessRecord, BackendError, ProxyBackend, ProxyUnderTest, Unsupported, WorkDir};
use crate::nginx::{self, RealNginx};
use crate::timeline::{EntryKind, Lane, TimelineEntry};
use async_trait::async_trait;
use nginx_model::conf::Config;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct NginxProxy {
    // Dropped in this order: nginx stops before its prefix is removed.
    nginx: RealNginx,
    _dir: WorkDir,
    program: nginx::NginxProgram,
}

impl NginxProxy {
    /// Starts real nginx (`--nginx`, else found: see [`nginx::locate`])
    /// with `cfg` and the lab's logs (see [`nginx::lab_config`]) on a free
    /// loopback port.
    pub async fn start(cfg: Config, profile: nginx_model::Profile, label: &str, _epoch: Instant, nginx_flag: Option<&std::path::Path>) -> Result<NginxProxy, BackendError> {
        let program = nginx::locate(nginx_flag)?;
        if profile == nginx_model::Profile::Modern && program.profile() == nginx_model::Profile::Legacy {
            return Err(Unsupported::modern_defaults(program.describe()).into());
        }
        let dir = WorkDir::new(label)?;
        let listen: SocketAddr = ([127, 0, 0, 1], crate::free_port().map_err(BackendError::FreePort)?).into();
        let nginx = RealNginx::start(&program, &nginx::lab_config(cfg, listen), dir.path()).await?;
        Ok(NginxProxy { nginx, _dir: dir, program })
    }
}

#[async_trait]
impl ProxyUnderTest for NginxProxy {
    fn backend(&self) -> ProxyBackend {
        ProxyBackend::Nginx
    }

    fn addr(&self) -> SocketAddr {
        self.nginx.addr
    }

    fn program(&self) -> Option<String> {
        // The profile says which defaults the rendered configuration was
        // pinned against (see nginx_model::version::pin_legacy_defaults).
        let defaults = match self.program.profile() {
            nginx_model::Profile::Legacy => "nginx ≤ 1.29.6 defaults",
            nginx_model::Profile::Modern => "nginx ≥ 1.29.7 defaults, pinned to 1.22's",
        };
        Some(format!("{}, {defaults}", self.program.describe()))
    }

    fn error_lines(&self) -> Vec<String> {
        self.nginx.error_log()
    }

    fn log_files(&self) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        Some((self.nginx.prefix.join(nginx::ERROR_LOG), self.nginx.prefix.join(nginx::ACCESS_LOG)))
    }

    fn access_entries(&self) -> Vec<AccessRecord> {
        self.nginx
            .access_log()
            .iter()
            .map(|l| {
                nginx::parse_lab_access(l)
                    .map(|a| AccessRecord { upstream_status: a.upstream_status, upstream_response_time: a.upstream_response_time })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// nginx writes access.log unbuffered, right after the response; there
    /// is no event to wait on, so the file is polled, bounded.
    async fn wait_access(&self, n: usize, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.nginx.access_log().len() >= n {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// nginx gives no event when its keepalive close handler has dropped a
    /// connection, but the kernel does: none of them is left in CLOSE_WAIT
    /// on nginx's side.
    async fn wait_dropped(&self, ports: &[u16], limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let waiting = close_wait_ports();
            if !ports.iter().any(|p| waiting.contains(p)) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Its error.log lines are placed when they were read (see
    /// [`ProxyUnderTest::error_timeline`]).
    fn timeline(&self) -> Vec<TimelineEntry> {
        Vec::new()
    }

    /// nginx logs to the second: its lines are placed when they were read.
    fn error_timeline(&self, lines: &[String], read_at: Duration) -> Vec<TimelineEntry> {
        errors_read_at(lines, read_at)
    }
}

/// Local ports in CLOSE_WAIT (TCP state 08) per /proc/net/tcp{,6}.
fn close_wait_ports() -> Vec<u16> {
    crate::sockets::now().into_iter().filter(|r| r.state == crate::sockets::CLOSE_WAIT).map(|r| r.local_port).collect()
}

/// Real nginx's error.log lines, placed when they were read (nginx logs to
/// the second): the message without the pid/connection prefix and the
/// client/upstream suffix.
fn errors_read_at(lines: &[String], read_at: Duration) -> Vec<TimelineEntry> {
    lines
        .iter()
        .map(|l| {
            let msg = l.split_once(": *").and_then(|(_, r)| r.split_once(' ')).map_or(l.as_str(), |(_, m)| m);
            let msg = msg.split(", client:").next().unwrap_or(msg);
            TimelineEntry::new(read_at, Lane::Proxy, EntryKind::Error, format!("error.log: {msg}"))
        })
        .collect()
}
