//! The backends under test, behind two traits: a proxy ([`ProxyUnderTest`]:
//! the built-in nginx emulator or real nginx) in front of upstream Go
//! servers ([`UpstreamUnderTest`]: the built-in Go emulator or the real Go
//! reference server). One file per implementation; the selection enums
//! ([`ProxyBackend`], [`UpstreamBackend`]) are mapped to them here, and
//! only here.
//!
//! A backend says itself what it cannot do ([`Unsupported`]): real Go has
//! none of the emulator's lab knobs. Callers report that as a skip with
//! its reason, never as a pass.

mod builtin_go;
mod builtin_proxy;
mod real_go;
mod real_nginx;
mod user_server;

pub use builtin_go::BuiltinGo;
use nginx_model::Profile;
pub use builtin_proxy::BuiltinProxy;
pub use real_go::RealGo;
pub use real_nginx::NginxProxy;
pub use user_server::{CmdTemplate, TemplateError, UserServer, PLACEHOLDERS, READY_WAIT, UPSTREAM_CMD_HELP};

use crate::go::GoUnavailable;
use crate::nginx::{NginxStartError, NginxUnavailable};
use crate::require::Tool;
use crate::timeline::TimelineEntry;
use crate::Action;
use async_trait::async_trait;
use go_model::ServerConfig;
use nginx_model::conf::{Config, ConfError};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which proxy runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxyBackend {
    /// The built-in nginx emulator (crates/proxy).
    Builtin,
    /// Real nginx (Debian nginx-light), private prefix, loopback.
    Nginx,
}

/// Which upstream runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamBackend {
    /// The built-in Go emulator (crates/upstream-sim).
    Builtin,
    /// A real Go server (fixtures/go-upstream, built with the local `go`).
    Go,
    /// The user's own server, started with `--upstream-cmd`.
    #[value(skip)]
    Cmd,
}

/// Which real programs to run, where the CLI or the environment names
/// them; `Default` finds them (nginx on PATH, `go` on PATH).
#[derive(Debug, Clone, Default)]
pub struct Programs {
    /// `--nginx PATH` (else `BADGATEWAY_NGINX`, else a search).
    pub nginx: Option<PathBuf>,
    /// `--go PATH` (else `BADGATEWAY_GO`, else `go` on PATH).
    pub go: Option<PathBuf>,
    /// `--upstream-cmd` for [`UpstreamBackend::Cmd`].
    pub upstream_cmd: Option<CmdTemplate>,
}

impl ProxyBackend {
    /// The short name (a timeline lane's header).
    pub fn name(self) -> &'static str {
        match self {
            ProxyBackend::Builtin => "nginx (emulated)",
            ProxyBackend::Nginx => "nginx (real)",
        }
    }

    /// What it is (a verdict's header).
    pub fn description(self) -> &'static str {
        match self {
            ProxyBackend::Builtin => "built-in proxy (nginx 1.22 semantics)",
            ProxyBackend::Nginx => "real nginx",
        }
    }

    /// The real program it needs, if any.
    pub fn needs(self) -> Option<Tool> {
        match self {
            ProxyBackend::Builtin => None,
            ProxyBackend::Nginx => Some(Tool::Nginx),
        }
    }

    /// Whether it can run here; for real nginx, which binary and release.
    pub fn available(self, programs: &Programs) -> Result<Option<String>, BackendError> {
        match self {
            ProxyBackend::Builtin => Ok(None),
            ProxyBackend::Nginx => crate::nginx::locate(programs.nginx.as_deref()).map(|p| Some(p.describe())).map_err(BackendError::from),
        }
    }

    /// Starts the proxy with `cfg` on a loopback port (its listen address
    /// is the backend's choice), with a private work directory named after
    /// `label`, its events on the clock of `epoch`. `profile`: whose
    /// defaults `cfg` means (nginx ≤ 1.29.6's, or ≥ 1.29.7's); real nginx
    /// of the other profile is pinned to the old ones where it can be, and
    /// cannot run the new ones.
    pub async fn start(self, cfg: Config, profile: Profile, label: &str, epoch: Instant, programs: &Programs) -> Result<Box<dyn ProxyUnderTest>, BackendError> {
        Ok(match self {
            ProxyBackend::Builtin => Box::new(BuiltinProxy::start(cfg, profile, label, epoch).await?),
            ProxyBackend::Nginx => Box::new(NginxProxy::start(cfg, profile, label, epoch, programs.nginx.as_deref()).await?),
        })
    }
}

impl UpstreamBackend {
    /// The short name (a timeline lane's header).
    pub fn name(self) -> &'static str {
        match self {
            UpstreamBackend::Builtin => "Go (emulated)",
            UpstreamBackend::Go => "Go (real)",
            UpstreamBackend::Cmd => "your server",
        }
    }

    /// What it is (a verdict's header).
    pub fn description(self) -> &'static str {
        match self {
            UpstreamBackend::Builtin => "built-in upstream (Go 1.19 semantics)",
            UpstreamBackend::Go => "real Go",
            UpstreamBackend::Cmd => "your server (--upstream-cmd)",
        }
    }

    /// The real program it needs, if any.
    pub fn needs(self) -> Option<Tool> {
        match self {
            UpstreamBackend::Builtin => None,
            UpstreamBackend::Go => Some(Tool::Go),
            // The user's own program: nothing the lab installs.
            UpstreamBackend::Cmd => None,
        }
    }

    /// Whether it can run here (for real Go: builds the reference server);
    /// what it runs, for a report.
    pub fn available(self, programs: &Programs) -> Result<Option<String>, BackendError> {
        match self {
            UpstreamBackend::Builtin => Ok(None),
            UpstreamBackend::Go => crate::go::build_go_upstream_with(programs.go.as_deref()).map(|b| Some(b.describe())).map_err(BackendError::from),
            UpstreamBackend::Cmd => programs.upstream_cmd.as_ref().map(|t| Some(t.describe())).ok_or(BackendError::NoUpstreamCmd),
        }
    }

    /// Whether this backend can run `cfg` and then `action`, asked before
    /// anything starts.
    pub fn supports(self, cfg: &ServerConfig, action: Action, programs: &Programs) -> Result<(), Unsupported> {
        match self {
            UpstreamBackend::Builtin => BuiltinGo::supports(cfg, action),
            UpstreamBackend::Go => RealGo::supports(cfg, action),
            UpstreamBackend::Cmd => match &programs.upstream_cmd {
                Some(t) => UserServer::supports(t, cfg, action),
                // Reported when starting (BackendError::NoUpstreamCmd).
                None => Ok(()),
            },
        }
    }

    /// Starts `servers` Go servers with `cfg` on loopback ports, their
    /// events on the clock of `epoch`.
    pub async fn start(self, cfg: &ServerConfig, servers: usize, epoch: Instant, programs: &Programs) -> Result<Box<dyn UpstreamUnderTest>, BackendError> {
        self.supports(cfg, Action::None, programs)?;
        Ok(match self {
            UpstreamBackend::Builtin => Box::new(BuiltinGo::start(cfg, servers, epoch).await?),
            UpstreamBackend::Go => Box::new(RealGo::start(cfg, servers, epoch, programs.go.as_deref()).await?),
            UpstreamBackend::Cmd => {
                let t = programs.upstream_cmd.as_ref().ok_or(BackendError::NoUpstreamCmd)?;
                Box::new(UserServer::start(t, cfg, servers, epoch).await?)
            }
        })
    }
}

/// `$upstream_status` and `$upstream_response_time` of one access-log
/// entry: one element per upstream attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AccessRecord {
    pub upstream_status: Vec<u16>,
    /// Seconds.
    pub upstream_response_time: Vec<f64>,
}

/// A running proxy in front of the upstream servers. Dropping it stops it.
#[async_trait]
pub trait ProxyUnderTest: Send + Sync {
    fn backend(&self) -> ProxyBackend;

    fn name(&self) -> &'static str {
        self.backend().name()
    }

    /// Where clients connect.
    fn addr(&self) -> SocketAddr;

    /// The `[error]` and `[warn]` lines of its error log so far.
    fn error_lines(&self) -> Vec<String>;

    /// Its access log so far, one record per client request.
    fn access_entries(&self) -> Vec<AccessRecord>;

    /// Waits (bounded) until the access log has `n` entries.
    async fn wait_access(&self, n: usize, limit: Duration) -> bool;

    /// Waits (bounded) until the proxy no longer holds any of the upstream
    /// connections on `ports` (its local ports) that the upstream closed.
    async fn wait_dropped(&self, ports: &[u16], limit: Duration) -> bool;

    /// What it recorded, on the run's clock.
    fn timeline(&self) -> Vec<TimelineEntry>;

    /// Which program runs, for a run's header and report ("nginx/1.22.1
    /// (/usr/sbin/nginx)"); `None` for the built-in emulator.
    fn program(&self) -> Option<String> {
        None
    }

    /// Its error.log and access.log files (the lab's format,
    /// [`crate::nginx::LAB_FORMAT`]), for readers of the raw logs
    /// (`scenarios diagnose`'s tests); `None` if it writes none.
    fn log_files(&self) -> Option<(PathBuf, PathBuf)> {
        None
    }

    /// Timeline entries for error-log lines read at `read_at`, for a proxy
    /// whose [`timeline`](Self::timeline) does not already hold them.
    fn error_timeline(&self, _lines: &[String], _read_at: Duration) -> Vec<TimelineEntry> {
        Vec::new()
    }
}

/// Running upstream Go servers (one or more, each its own server).
#[async_trait]
pub trait UpstreamUnderTest: Send + Sync {
    fn backend(&self) -> UpstreamBackend;

    fn name(&self) -> &'static str {
        self.backend().name()
    }

    /// Each server's address, in start order.
    fn addrs(&self) -> Vec<SocketAddr>;

    /// How many times the handler for `path` has started, on all servers
    /// (real Go: after making its log current); `None` where the backend
    /// cannot see its handlers (a user's own server).
    async fn handler_runs(&mut self, path: &str) -> Option<u64>;

    /// Which program runs, for a run's header and report; `None` for the
    /// built-in emulator.
    fn program(&self) -> Option<String> {
        None
    }

    /// The peer (proxy-side) ports of every connection server `server` has
    /// accepted.
    fn accepted_ports(&self, server: usize) -> Vec<u16>;

    /// What the servers recorded, on the run's clock.
    fn timeline(&self) -> Vec<TimelineEntry>;

    /// Performs `action` and returns once it has taken effect; an action the
    /// backend cannot perform is [`BackendError::Unsupported`].
    async fn act(&mut self, action: Action) -> Result<(), BackendError>;

    /// Stops every server.
    async fn stop(self: Box<Self>);
}

/// A backend cannot run a configuration or an action: a skip, with this
/// reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{backend} cannot run {what} ({why})")]
pub struct Unsupported {
    pub backend: &'static str,
    pub what: String,
    pub why: &'static str,
}

impl Unsupported {
    /// nginx ≥ 1.29.7's defaults on an older nginx.
    pub fn modern_defaults(program: String) -> Unsupported {
        Unsupported { backend: "nginx", what: format!("nginx ≥ 1.29.7's upstream defaults with {program}"), why: "its defaults are the old ones: the built-in proxy emulates the new" }
    }

    /// A lab knob of the emulator that `backend` does not have.
    pub fn knob(backend: &'static str, what: &str) -> Unsupported {
        Unsupported { backend, what: what.to_string(), why: "an emulator-only knob" }
    }
}

/// A backend that did not start or failed while running.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error(transparent)]
    NginxUnavailable(#[from] NginxUnavailable),
    #[error(transparent)]
    Nginx(#[from] NginxStartError),
    #[error(transparent)]
    GoUnavailable(#[from] GoUnavailable),
    #[error("{0}")]
    GoStart(std::io::Error),
    #[error("--upstream-cmd: {0}")]
    UserServer(String),
    #[error("the upstream `cmd` needs --upstream-cmd 'CMD {{addr}}'")]
    NoUpstreamCmd,
    #[error("upstream-sim: {0}")]
    UpstreamSim(std::io::Error),
    #[error("{0}")]
    ProxyConfig(#[from] ConfError),
    #[error("{0}")]
    ProxyStart(#[from] proxy::StartError),
    #[error("no free loopback port: {0}")]
    FreePort(std::io::Error),
    #[error("cannot create {path}: {source}")]
    WorkDir { path: PathBuf, source: std::io::Error },
}

/// A private directory for one run's files (nginx's prefix, logs), removed
/// when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(label: &str) -> Result<WorkDir, BackendError> {
        static RUN_NO: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = RUN_NO.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("badgateway-lab-{}-{n}-{label}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|source| BackendError::WorkDir { path: path.clone(), source })?;
        Ok(WorkDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `127.0.0.1:0`: any free loopback port.
pub const LOOPBACK_ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);
