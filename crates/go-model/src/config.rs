//! The `http.Server` fields the emulator honours, under Go's own names.

use std::time::Duration;

/// Which Go release's connection loop to emulate. The difference that
/// matters here is the idle wait (golang/go#54784, fixed in Go 1.20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoVersion {
    /// Go ≤ 1.19 (Debian 12 ships 1.19.8): with IdleTimeout and ReadTimeout
    /// both 0, ReadHeaderTimeout bounds the idle wait.
    #[default]
    Go119,
    /// Go ≥ 1.20: ReadHeaderTimeout starts only when the next request's bytes arrive.
    Go120,
}

/// How the lab forces the idle race deterministically: instead of waiting for
/// a timer to fire within a fraction of a millisecond of the proxy's reuse,
/// the idle deadline is held until the next request arrives; if by then the
/// connection has been idle for at least the idle limit, the server behaves
/// as if the deadline fired at that very instant and closes. A request that
/// comes earlier is served as usual, and a peer that closes first (nginx's
/// keepalive_timeout) avoids the race, exactly as in the natural race. Not a
/// Go setting; a lab knob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdleRace {
    /// The request bytes were already consumed by the time of close: the peer sees FIN.
    Fin,
    /// The request bytes sit unread in the receive buffer at close: the peer sees RST.
    Rst,
}

/// Not a Go release the emulator knows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown Go version {0:?}: use 1.19 (Debian 12's go1.19.8, the default) or 1.20 (any later release)")]
pub struct UnknownGoVersion(pub String);

impl std::str::FromStr for GoVersion {
    type Err = UnknownGoVersion;
    fn from_str(s: &str) -> Result<GoVersion, UnknownGoVersion> {
        match s {
            "1.19" | "go1.19" => Ok(GoVersion::Go119),
            "1.20" | "go1.20" => Ok(GoVersion::Go120),
            _ => Err(UnknownGoVersion(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ServerConfig {
    /// `ReadTimeout`: whole request (header and body), from the start of `readRequest`.
    pub read_timeout: Duration,
    /// `ReadHeaderTimeout`: the header, from the start of `readRequest` (0 → ReadTimeout).
    pub read_header_timeout: Duration,
    /// `WriteTimeout`: armed when the request header has been read.
    pub write_timeout: Duration,
    /// `IdleTimeout`: keep-alive wait between requests (0 → ReadTimeout).
    pub idle_timeout: Duration,
    /// `MaxHeaderBytes` (Go adds 4096 bytes of slack when enforcing it).
    pub max_header_bytes: usize,
    /// `SetKeepAlivesEnabled`.
    pub keep_alives: bool,
    pub go_version: GoVersion,
    /// `listen(2)` backlog. Go uses the kernel's somaxconn; a small value lets
    /// the lab overflow the accept queue.
    pub backlog: u32,
    /// Lab knob: stop calling accept(), so the kernel accept queue fills.
    pub accept_paused: bool,
    /// Lab knob: see [`IdleRace`].
    pub idle_race: Option<IdleRace>,
    /// Lab knob: Shutdown's idle sweep closes each idle connection exactly
    /// as its next request arrives (the race between `closeIdleConns` and a
    /// request the proxy is just sending), instead of at once.
    pub shutdown_race: Option<IdleRace>,
    /// Set SO_REUSEPORT, so a new server can take over the port (listener
    /// handoff) before the old one stops.
    pub reuse_port: bool,
    /// The process's `RLIMIT_NOFILE` (`ulimit -n`, systemd's `LimitNOFILE`,
    /// `prlimit --nofile`): descriptors it may hold at once. `None`: no
    /// limit the lab reaches. Not a Go setting but the process's; real Go
    /// runs it (the harness sets the limit before exec).
    pub fd_limit: Option<u32>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            read_timeout: Duration::ZERO,
            read_header_timeout: Duration::ZERO,
            write_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            keep_alives: true,
            go_version: GoVersion::Go119,
            backlog: 4096,
            accept_paused: false,
            idle_race: None,
            shutdown_race: None,
            reuse_port: false,
            fd_limit: None,
        }
    }
}

/// `http.DefaultMaxHeaderBytes`.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 1 << 20;
