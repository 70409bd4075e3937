//! The real Go server (`fixtures/go-upstream`, built with the `go` on PATH):
//! a child process on a loopback port, its log read line by line, stopped
//! by the PID we spawned.

use crate::client::WireClient;
use go_model::ServerConfig;
use parking_lot::Mutex;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::watch;
use tokio::time::Instant;

/// The reference server's sources, compiled into the harness so that an
/// installed binary builds it without this checkout.
const MAIN_GO: &str = include_str!("../../../fixtures/go-upstream/main.go");
const GO_MOD: &str = include_str!("../../../fixtures/go-upstream/go.mod");

/// Why the real Go server cannot be used (a skip reason, or a failure where
/// real programs are required).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoUnavailable {
    #[error("no Go toolchain (`go` not runnable: {0}); install golang-go")]
    NoToolchain(String),
    #[error("go build of the reference server in {dir} failed: {status}")]
    BuildFailed { dir: PathBuf, status: String },
    #[error("cannot prepare {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// Builds the reference Go server once per source version (in a directory
/// keyed by a hash of its sources under the system temp dir) with the `go`
/// on PATH, and returns the binary.
pub fn build_go_upstream() -> Result<PathBuf, GoUnavailable> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, GoUnavailable>> = std::sync::OnceLock::new();
    BUILT.get_or_init(build).clone()
}

fn build() -> Result<PathBuf, GoUnavailable> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (MAIN_GO, GO_MOD).hash(&mut h);
    let dir = std::env::temp_dir().join(format!("badgateway-lab-go-upstream-{:016x}", h.finish()));
    let bin = dir.join("go-upstream");
    if bin.exists() {
        return Ok(bin);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: io::Error| GoUnavailable::Io { path, reason: e.to_string() }
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    std::fs::write(dir.join("main.go"), MAIN_GO).map_err(io(&dir))?;
    std::fs::write(dir.join("go.mod"), GO_MOD).map_err(io(&dir))?;
    // Build under a private name, then rename: concurrent test processes
    // never run a half-written binary.
    let tmp = dir.join(format!("go-upstream.{}", std::process::id()));
    let status = std::process::Command::new("go")
        .args(["build", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&dir)
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .stdout(Stdio::null())
        .status()
        .map_err(|e| GoUnavailable::NoToolchain(e.to_string()))?;
    if !status.success() {
        return Err(GoUnavailable::BuildFailed { dir, status: status.to_string() });
    }
    std::fs::rename(&tmp, &bin).map_err(io(&bin))?;
    Ok(bin)
}

/// The reference server's flags for a config (Go's field names, kebab case).
pub fn go_flags(cfg: &ServerConfig) -> Vec<String> {
    use go_model::godur::format;
    vec![
        format!("--read-timeout={}", format(cfg.read_timeout)),
        format!("--read-header-timeout={}", format(cfg.read_header_timeout)),
        format!("--write-timeout={}", format(cfg.write_timeout)),
        format!("--idle-timeout={}", format(cfg.idle_timeout)),
        format!("--max-header-bytes={}", cfg.max_header_bytes),
        format!("--keepalives={}", cfg.keep_alives),
    ]
}

/// One line of the reference server's log: a wall-clock timestamp
/// (`15:04:05.000000`, UTC) and what happened. Lines without a timestamp
/// (Go's own panic traces on stderr) are not `LogLine`s.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine<'a> {
    /// Seconds since midnight.
    pub secs_of_day: f64,
    pub what: What<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum What<'a> {
    /// `CONN 127.0.0.1:PORT new|active|idle|hijacked|closed` (ConnState).
    Conn { remote: &'a str, state: &'a str },
    /// `HANDLER n=3 path=/ok remote=127.0.0.1:PORT`: a handler started.
    Handler { path: &'a str, remote: &'a str },
    /// `MARK n=K remote=...`: the harness's sync point, not a handler run.
    Mark { n: &'a str, remote: &'a str },
    /// `LISTEN addr`.
    Listen,
    /// Anything else (`SHUTDOWN begin`, `SLEEP-DONE ...`, `RECOVERED ...`).
    Other(&'a str),
}

impl<'a> LogLine<'a> {
    pub fn parse(line: &'a str) -> Option<LogLine<'a>> {
        let (ts, rest) = line.split_once(' ')?;
        let mut hms = ts.split(':');
        let mut next = || hms.next()?.parse::<f64>().ok();
        let secs_of_day = next()? * 3600.0 + next()? * 60.0 + next()?;
        let field = |name: &str| rest.split_whitespace().find_map(|f| f.strip_prefix(name));
        let what = if let Some(c) = rest.strip_prefix("CONN ") {
            let (remote, state) = c.rsplit_once(' ')?;
            What::Conn { remote, state }
        } else if rest.starts_with("HANDLER ") {
            What::Handler { path: field("path=").unwrap_or("?"), remote: field("remote=").unwrap_or("?") }
        } else if rest.starts_with("MARK") {
            What::Mark { n: field("n=").unwrap_or(""), remote: field("remote=").unwrap_or("") }
        } else if rest.starts_with("LISTEN") {
            What::Listen
        } else {
            What::Other(rest)
        };
        Some(LogLine { secs_of_day, what })
    }

    /// The client port of a `/mark` request (so its connection can be told
    /// apart from the proxy's).
    pub fn mark_port(&self) -> Option<u16> {
        match self.what {
            What::Mark { remote, .. } => port_of(remote),
            _ => None,
        }
    }
}

/// The port of `host:port`.
pub fn port_of(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

/// A real Go server process started by us, stopped by PID.
pub struct GoServer {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    version: watch::Receiver<u64>,
}

/// What the process has written so far.
#[derive(Default)]
struct Log {
    lines: Vec<String>,
    /// Output pipes that have reached EOF (stdout and stderr: 2 when the
    /// process has exited and everything it wrote has been read).
    closed_pipes: usize,
}

impl GoServer {
    pub async fn start(binary: &Path, cfg: &ServerConfig, port: u16) -> io::Result<GoServer> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut child = tokio::process::Command::new(binary)
            .arg(format!("--addr={addr}"))
            .args(go_flags(cfg))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let log = Arc::new(Mutex::new(Log::default()));
        let (tx, version) = watch::channel(0u64);
        let not_piped = || io::Error::other("go-upstream: output not piped");
        let stdout = child.stdout.take().ok_or_else(not_piped)?;
        let stderr = child.stderr.take().ok_or_else(not_piped)?;
        for pipe in [Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, Box::new(stderr)] {
            let log = log.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                // Lines are read as bytes: the fixture logs request paths
                // as sent, and a pipe left unread would kill it (SIGPIPE).
                let mut rd = BufReader::new(pipe);
                let mut raw = Vec::new();
                while matches!(rd.read_until(b'\n', &mut raw).await, Ok(n) if n > 0) {
                    let line = String::from_utf8_lossy(raw.strip_suffix(b"\n").unwrap_or(&raw)).into_owned();
                    raw.clear();
                    log.lock().lines.push(line);
                    tx.send_modify(|v| *v += 1);
                }
                log.lock().closed_pipes += 1;
                tx.send_modify(|v| *v += 1);
            });
        }
        let mut server = GoServer { child, addr, log, version };
        if !server.wait_line(Duration::from_secs(10), |l| l.contains("LISTEN")).await {
            let _ = server.child.start_kill();
            let log = server.lines().join("\n");
            return Err(io::Error::other(format!("go-upstream did not start listening on {addr}: {log}")));
        }
        Ok(server)
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().lines.clone()
    }

    /// Waits (event-driven, bounded) until `pred` holds for the log.
    async fn wait_log(&mut self, timeout: Duration, pred: impl Fn(&Log) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.version.borrow_and_update();
            if pred(&self.log.lock()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.version.changed()).await {
                Ok(Ok(())) => continue,
                _ => return false,
            }
        }
    }

    /// Waits (event-driven, bounded) for a log line matching `pred`.
    pub async fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        self.wait_log(timeout, |log| log.lines.iter().any(|l| pred(l))).await
    }

    /// Makes the log current: requests `/mark?n=K` and waits (bounded) for
    /// its "MARK n=K" line. stdout is ordered, so every HANDLER line written
    /// before is then read. A server that no longer accepts (shut down,
    /// killed) is exiting: then its log is current when its output has
    /// ended, which is waited for instead (bounded).
    pub async fn sync_log(&mut self, timeout: Duration) -> bool {
        static MARK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let k = MARK.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Ok(Ok(mut c)) = tokio::time::timeout(timeout, WireClient::connect(self.addr)).await else {
            return self.wait_log(timeout, |log| log.closed_pipes == 2).await;
        };
        let mark = crate::client::Request::get(&format!("/mark?n={k}")).close();
        if c.send_request(&mark).await.is_err() {
            return self.wait_log(timeout, |log| log.closed_pipes == 2).await;
        }
        let needle = format!("MARK n={k} ");
        self.wait_line(timeout, |l| l.contains(&needle)).await
    }

    /// Handler runs for `path` in the log so far.
    pub fn handler_runs(&self, path: &str) -> u64 {
        let log = self.log.lock();
        log.lines.iter().filter_map(|l| LogLine::parse(l)).filter(|l| matches!(l.what, What::Handler { path: p, .. } if p == path)).count() as u64
    }

    /// The client ports of every connection the server accepted (ConnState
    /// `new`), except the harness's own `/mark` connections.
    pub fn accepted_ports(&self) -> Vec<u16> {
        let log = self.log.lock();
        let parsed: Vec<LogLine<'_>> = log.lines.iter().filter_map(|l| LogLine::parse(l)).collect();
        let marks: Vec<u16> = parsed.iter().filter_map(LogLine::mark_port).collect();
        parsed
            .iter()
            .filter_map(|l| match l.what {
                What::Conn { remote, state: "new" } => port_of(remote),
                _ => None,
            })
            .filter(|p| !marks.contains(p))
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM: the fixture runs `Shutdown`.
    pub fn terminate(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the PID of a child we spawned and still own.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
        }
    }

    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fixture_log() {
        let l = LogLine::parse("10:00:01.500000 HANDLER n=2 path=/sleep remote=127.0.0.1:40000").unwrap();
        assert_eq!(l.secs_of_day, 36001.5);
        assert_eq!(l.what, What::Handler { path: "/sleep", remote: "127.0.0.1:40000" });
        assert_eq!(LogLine::parse("00:00:00.000001 CONN 127.0.0.1:5 new").unwrap().what, What::Conn { remote: "127.0.0.1:5", state: "new" });
        assert_eq!(LogLine::parse("00:00:00.000001 MARK n=7 remote=127.0.0.1:9").unwrap().mark_port(), Some(9));
        assert_eq!(LogLine::parse("00:00:00.000001 SHUTDOWN begin").unwrap().what, What::Other("SHUTDOWN begin"));
        assert_eq!(LogLine::parse("2022/11/10 23:00:00 http: panic serving 127.0.0.1:5: boom"), None);
    }
}
