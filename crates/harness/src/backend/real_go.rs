//! The real Go reference server (see [`crate::go`]): child processes, read
//! through their logs. It has none of the emulator's lab knobs; its own
//! handoffs (SIGUSR1, SIGUSR2) and an fd limit (setrlimit) it runs.

use super::{BackendError, Unsupported, UpstreamBackend, UpstreamUnderTest};
use crate::go::{self, port_of, GoServer, LogLine, What};
use crate::timeline::{server_tag, EntryKind, Lane, TimelineEntry};
use crate::Action;
use async_trait::async_trait;
use go_model::{rules, GoVersion, ServerConfig};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

pub struct RealGo {
    servers: Vec<GoServer>,
    /// The wall-clock time of the run's epoch (UTC seconds of the day): the
    /// log's timestamps are wall-clock.
    epoch_secs_of_day: f64,
    build: go::GoBuild,
    /// Connections held open to exhaust the first server's descriptors.
    fillers: Vec<tokio::net::TcpStream>,
    /// The servers' fd limit (`setrlimit` before exec).
    fd_limit: Option<u32>,
}

impl RealGo {
    /// Everything but the emulator's lab knobs.
    pub fn supports(cfg: &ServerConfig, action: Action) -> Result<(), Unsupported> {
        // The fixture listens with SO_REUSEPORT itself (--reuseport, for its
        // SIGUSR1 handoff); the emulator's own handoff is an action knob.
        let cfg = &ServerConfig { reuse_port: false, ..cfg.clone() };
        match config_knob(cfg).or_else(|| action_knob(action)) {
            Some(what) => Err(Unsupported::knob("real Go", what)),
            None => Ok(()),
        }
    }

    /// Builds the reference server (once, with the `go` that `go_flag` or
    /// the environment names) and starts `servers` of them.
    pub async fn start(cfg: &ServerConfig, servers: usize, epoch: Instant, go_flag: Option<&std::path::Path>) -> Result<RealGo, BackendError> {
        // `go version` and `go build` block (bounded): off the async workers.
        let flag = go_flag.map(std::path::Path::to_path_buf);
        let build = match tokio::task::spawn_blocking(move || go::build_go_upstream_with(flag.as_deref())).await {
            Ok(built) => built?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(BackendError::GoStart(std::io::Error::other(format!("building the reference server: {e}")))),
        };
        if let Some(u) = release_differs(cfg, &build.go_version) {
            return Err(u.into());
        }
        let bin = build.binary.clone();
        let mut v = Vec::new();
        for _ in 0..servers.max(1) {
            let port = crate::free_port().map_err(BackendError::FreePort)?;
            v.push(GoServer::start(&bin, cfg, port).await.map_err(BackendError::GoStart)?);
        }
        let epoch_wall = SystemTime::now() - epoch.elapsed();
        let epoch_secs_of_day = epoch_wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() % 86_400.0);
        Ok(RealGo { servers: v, epoch_secs_of_day, build, fillers: Vec::new(), fd_limit: cfg.fd_limit })
    }

    pub fn servers(&self) -> &[GoServer] {
        &self.servers
    }
}

impl RealGo {
    /// Once every earlier connection of the first server has closed (the
    /// warm-up's, its ConnState `closed` line), opens
    /// [`labkit::action::HELD_CONNECTIONS`] connections to it, each
    /// accepted (`CONN ... new`) or refused by Go's accept (`http: Accept
    /// error:`, its process at `fd_limit`) before the next, and keeps them open.
    async fn hold_connections(&mut self) -> Result<(), BackendError> {
        let first = &mut self.servers[0];
        let count = |log: &[String], what: &str| log.iter().filter(|l| l.contains(what)).count();
        let news = |log: &[String]| log.iter().filter(|l| l.contains(" CONN ") && l.ends_with(" new")).count();
        let closed = |log: &[String]| log.iter().filter(|l| l.contains(" CONN ") && l.ends_with(" closed")).count();
        first.wait_log(Duration::from_secs(2), |log| closed(log) >= news(log)).await;
        for _ in 0..labkit::action::HELD_CONNECTIONS {
            let log = first.lines();
            let (before, failed) = (news(&log), count(&log, ACCEPT_ERROR));
            let c = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(first.addr)).await;
            let Ok(Ok(c)) = c else { return Err(BackendError::GoStart(std::io::Error::other("connecting to hold a connection"))) };
            self.fillers.push(c);
            first.wait_log(Duration::from_secs(2), |log| news(log) > before || count(log, ACCEPT_ERROR) > failed).await;
        }
        // At the limit, Go's next accept fails at once: its line is read
        // before the action ends (the log then says the server is stalled).
        if go_model::rules::accept_fails(self.fd_limit, labkit::action::HELD_CONNECTIONS) {
            first.wait_line(Duration::from_secs(2), |l| l.contains(ACCEPT_ERROR)).await;
        }
        Ok(())
    }
}

/// What `(*Server).Serve` logs when accept fails (`http: Accept error: ...; retrying in 5ms`).
const ACCEPT_ERROR: &str = "http: Accept error:";

#[async_trait]
impl UpstreamUnderTest for RealGo {
    fn backend(&self) -> UpstreamBackend {
        UpstreamBackend::Go
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|g| g.addr).collect()
    }

    /// The HANDLER lines travel through a pipe: each log is made current
    /// first (see [`GoServer::sync_log`]).
    async fn handler_runs(&mut self, path: &str) -> Option<u64> {
        let mut runs = 0;
        for g in &mut self.servers {
            g.sync_log(Duration::from_secs(2)).await;
            runs += g.handler_runs(path);
        }
        Some(runs)
    }

    fn program(&self) -> Option<String> {
        Some(self.build.describe())
    }

    fn accepted_ports(&self, server: usize) -> Vec<u16> {
        self.servers.get(server).map(GoServer::accepted_ports).unwrap_or_default()
    }

    fn timeline(&self) -> Vec<TimelineEntry> {
        let n = self.servers.len();
        self.servers.iter().enumerate().flat_map(|(i, g)| timeline_of(&g.lines(), self.epoch_secs_of_day, i, n)).collect()
    }

    async fn act(&mut self, action: Action) -> Result<(), BackendError> {
        match action {
            Action::None => {}
            Action::Crash => self.servers[0].kill().await,
            Action::Shutdown => {
                // SIGTERM: the fixture runs Shutdown and logs when it returns.
                let first = &mut self.servers[0];
                first.terminate();
                first.wait_line(Duration::from_secs(5), |l| l.contains("SHUTDOWN end")).await;
            }
            Action::HoldConnections => self.hold_connections().await?,
            Action::ReuseportHandoffQueued | Action::FdHandoffQueued => {
                // The fixture pauses its accept loop, then (in the background)
                // waits for a connection queued with its request and hands
                // the listener over (handOff in main.go).
                let first = &mut self.servers[0];
                first.signal(if action == Action::FdHandoffQueued { libc::SIGUSR2 } else { libc::SIGUSR1 });
                if !first.wait_line(Duration::from_secs(5), |l| l.contains("HANDOFF paused")).await {
                    return Err(BackendError::GoStart(std::io::Error::other("the reference server did not pause for the handoff")));
                }
            }
            Action::RestartHandoff | Action::KeepalivesOffThenShutdown | Action::FillBacklog => {
                let what = action_knob(action).unwrap_or("this action");
                return Err(Unsupported::knob("real Go", what).into());
            }
        }
        Ok(())
    }

    async fn stop(self: Box<Self>) {
        for mut g in self.servers {
            g.kill().await;
        }
    }
}

/// The first lab knob `cfg` sets, which no real Go server has.
pub(super) fn config_knob(cfg: &ServerConfig) -> Option<&'static str> {
    let knobs = [
        (cfg.idle_race.is_some(), "the deterministic idle race"),
        (cfg.shutdown_race.is_some(), "the deterministic Shutdown race"),
        (cfg.accept_paused, "a paused accept loop"),
        (cfg.reuse_port, "a listener handoff"),
    ];
    knobs.iter().find(|(needed, _)| *needed).map(|(_, what)| *what)
}

/// The reference server runs the installed Go's `net/http`: a scenario
/// whose `go_version` would make its connection loop wait differently
/// (Go 1.19's ReadHeaderTimeout as the idle limit, golang/go#54784) cannot
/// run on it. `installed` is `go version`'s word ("go1.19.8").
pub(super) fn release_differs(cfg: &ServerConfig, installed: &str) -> Option<Unsupported> {
    let minor: u32 = installed.strip_prefix("go1.")?.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()?;
    let real = if minor >= 20 { GoVersion::Go120 } else { GoVersion::Go119 };
    let as_installed = ServerConfig { go_version: real, ..cfg.clone() };
    (rules::effective_idle_limit(cfg) != rules::effective_idle_limit(&as_installed)).then(|| Unsupported {
        backend: "real Go",
        what: format!("go_version {} with these timeouts (the installed go is {installed})", if cfg.go_version == GoVersion::Go120 { "1.20" } else { "1.19" }),
        why: "the reference server is built with the installed go, whose idle wait differs here",
    })
}

/// The actions that need a lab knob the reference server does not have.
pub(super) fn action_knob(action: Action) -> Option<&'static str> {
    match action {
        Action::FillBacklog => Some("a paused accept loop"),
        Action::RestartHandoff => Some("a listener handoff"),
        Action::KeepalivesOffThenShutdown => Some("SetKeepAlivesEnabled(false) while serving"),
        Action::None | Action::Crash | Action::Shutdown | Action::HoldConnections | Action::ReuseportHandoffQueued | Action::FdHandoffQueued => None,
    }
}

/// Real Go's log (see [`LogLine`]), placed on the run's clock.
/// `epoch_secs_of_day` is the wall-clock time (UTC seconds of the day) of
/// the run's epoch.
fn timeline_of(lines: &[String], epoch_secs_of_day: f64, server: usize, servers: usize) -> Vec<TimelineEntry> {
    let tag = server_tag(server, servers);
    let parsed: Vec<LogLine<'_>> = lines.iter().filter_map(|l| LogLine::parse(l)).collect();
    parsed
        .iter()
        .filter_map(|l| {
            let port = |remote: &str| port_of(remote);
            let (kind, port, text) = match l.what {
                // ConnState says closed, not how: neither FIN nor RST.
                What::Conn { remote, state: "closed" } => (EntryKind::Close, port(remote), format!(":{} ◄══ closed (ConnState)", port_text(remote))),
                What::Conn { remote, state: "new" } => (EntryKind::Accept, port(remote), format!(":{} new", port_text(remote))),
                What::Conn { remote, state } => (EntryKind::Note, port(remote), format!(":{} {state}", port_text(remote))),
                What::Handler { path, remote } => (EntryKind::HandlerStart, port(remote), format!(":{} handler {path} starts", port_text(remote))),
                What::Mark { .. } | What::Listen => return None,
                What::Other(text) => (EntryKind::Note, None, text.to_string()),
            };
            let at_ms = (l.secs_of_day - epoch_secs_of_day) * 1e3;
            (at_ms >= 0.0).then(|| TimelineEntry::at_ms(at_ms, Lane::Upstream, kind, format!("{tag}{text}")).port(port))
        })
        .collect()
}

fn port_text(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap_or(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use go_model::IdleRace;

    #[test]
    fn lab_knobs_are_unsupported_with_a_reason() {
        let plain = ServerConfig::default();
        assert_eq!(RealGo::supports(&plain, Action::None), Ok(()));
        assert_eq!(RealGo::supports(&plain, Action::Crash), Ok(()));
        assert_eq!(RealGo::supports(&plain, Action::Shutdown), Ok(()));
        let race = ServerConfig { idle_race: Some(IdleRace::Fin), ..ServerConfig::default() };
        let err = RealGo::supports(&race, Action::None).unwrap_err();
        assert_eq!(err.to_string(), "real Go cannot run the deterministic idle race (an emulator-only knob)");
        assert_eq!(RealGo::supports(&plain, Action::HoldConnections), Ok(()));
        // The fixture's own handoffs (SIGUSR1 with SO_REUSEPORT, SIGUSR2 passing the fd).
        let reuse = ServerConfig { reuse_port: true, ..ServerConfig::default() };
        assert_eq!(RealGo::supports(&reuse, Action::ReuseportHandoffQueued), Ok(()));
        assert_eq!(RealGo::supports(&plain, Action::FdHandoffQueued), Ok(()));
        for action in [Action::FillBacklog, Action::RestartHandoff, Action::KeepalivesOffThenShutdown] {
            assert!(RealGo::supports(&plain, action).is_err(), "{action:?}");
        }
        let handoff = ServerConfig { reuse_port: true, ..ServerConfig::default() };
        assert_eq!(RealGo::supports(&handoff, Action::None), Ok(()));
        assert_eq!(RealGo::supports(&handoff, Action::RestartHandoff).unwrap_err().what, "a listener handoff");
    }

    #[test]
    fn a_go_release_whose_idle_wait_differs_is_unsupported() {
        let rht = ServerConfig { read_header_timeout: Duration::from_secs(5), ..ServerConfig::default() };
        let go120 = ServerConfig { go_version: GoVersion::Go120, ..rht.clone() };
        assert_eq!(release_differs(&rht, "go1.19.8"), None);
        let u = release_differs(&go120, "go1.19.8").expect("1.20 loop on go1.19");
        assert_eq!(u.what, "go_version 1.20 with these timeouts (the installed go is go1.19.8)");
        assert!(release_differs(&rht, "go1.22.1").is_some());
        // With an IdleTimeout both releases wait alike: no reason to skip.
        let idle = ServerConfig { idle_timeout: Duration::from_secs(5), ..go120 };
        assert_eq!(release_differs(&idle, "go1.19.8"), None);
        assert_eq!(release_differs(&ServerConfig { go_version: GoVersion::Go120, ..ServerConfig::default() }, "go1.19.8"), None);
    }

    #[test]
    fn the_log_on_the_run_clock_without_marks() {
        let lines: Vec<String> = [
            "10:00:00.000000 LISTEN 127.0.0.1:8080",
            "10:00:00.010000 CONN 127.0.0.1:40000 new",
            "10:00:00.011000 HANDLER n=1 path=/ok remote=127.0.0.1:40000",
            "10:00:00.021000 MARK n=0",
            "10:00:00.030000 CONN 127.0.0.1:40000 closed",
        ]
        .map(String::from)
        .into();
        let texts: Vec<(f64, String)> = timeline_of(&lines, 36_000.0, 0, 1).into_iter().map(|e| ((e.at_ms * 10.0).round() / 10.0, e.text)).collect();
        assert_eq!(
            texts,
            [(10.0, ":40000 new".to_string()), (11.0, ":40000 handler /ok starts".into()), (30.0, ":40000 ◄══ closed (ConnState)".into())]
        );
    }
}
