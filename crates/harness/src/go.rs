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

/// A real Go server process started by us, stopped by PID.
pub struct GoServer {
    child: tokio::process::Child,
    pub addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    version: watch::Receiver<u64>,
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
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, version) = watch::channel(0u64);
        for pipe in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let lines = lines.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut rd = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = rd.next_line().await {
                    lines.lock().push(line);
                    tx.send_modify(|v| *v += 1);
                }
            });
        }
        let mut server = GoServer { child, addr, lines, version };
        if !server.wait_line(Duration::from_secs(10), |l| l.contains("LISTEN")).await {
            let _ = server.child.start_kill();
            let log = server.lines().join("\n");
            return Err(io::Error::other(format!("go-upstream did not start listening on {addr}: {log}")));
        }
        Ok(server)
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().clone()
    }

    /// Waits (event-driven, bounded) for a log line matching `pred`.
    pub async fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.version.borrow_and_update();
            if self.lines().iter().any(|l| pred(l)) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.version.changed()).await {
                Ok(Ok(())) => continue,
                _ => return false,
            }
        }
    }

    /// Makes the log current: requests `/mark?n=K` and waits (bounded) for
    /// its "MARK n=K" line. stdout is ordered, so every HANDLER line written
    /// before is then read. A server that no longer accepts is left as is.
    pub async fn sync_log(&mut self, timeout: Duration) -> bool {
        static MARK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let k = MARK.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Ok(Ok(mut c)) = tokio::time::timeout(timeout, WireClient::connect(self.addr)).await else { return false };
        if c.send(format!("GET /mark?n={k} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").as_bytes()).await.is_err() {
            return false;
        }
        let needle = format!("MARK n={k} ");
        self.wait_line(timeout, |l| l.contains(&needle)).await
    }

    pub fn handler_runs(&self, path: &str) -> u64 {
        let needle = format!("path={path} ");
        self.lines().iter().filter(|l| l.contains(" HANDLER ") && l.contains(&needle)).count() as u64
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
