//! The real Go server (`fixtures/go-upstream`, embedded in the binary and
//! built into the lab's cache directory with the `go` on PATH, `--go` or
//! `BADGATEWAY_GO`): a child process on a loopback port, its log read line
//! by line, stopped by the PID we spawned.

use crate::child::{self, Progress, RunError};
use go_model::ServerConfig;
use parking_lot::Mutex;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The reference server's sources, compiled into the harness so that an
/// installed binary builds it without this checkout.
const MAIN_GO: &str = include_str!("../../../fixtures/go-upstream/main.go");
const GO_MOD: &str = include_str!("../../../fixtures/go-upstream/go.mod");

/// The variable that names the `go` command when `--go` is not given.
pub const GO_VAR: &str = "BADGATEWAY_GO";
/// The variable that replaces the cache directory.
pub const CACHE_VAR: &str = "BADGATEWAY_CACHE_DIR";

/// Why the real Go server cannot be used (a skip reason, or a failure where
/// real programs are required).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoUnavailable {
    #[error("no Go toolchain (`{go} version` failed: {reason}); install golang-go, or give one with --go PATH or {GO_VAR}")]
    NoToolchain { go: PathBuf, reason: String },
    #[error("go build of the reference server in {dir} failed ({status}): {stderr}")]
    BuildFailed { dir: PathBuf, status: String, stderr: String },
    #[error("go build of the reference server in {dir} did not finish within {} s; its process group was killed", BUILD_LIMIT.as_secs())]
    BuildTimedOut { dir: PathBuf },
    #[error("cannot prepare {path}: {reason}")]
    Io { path: PathBuf, reason: String },
}

/// The reference server, built: the binary and the toolchain that built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoBuild {
    pub binary: PathBuf,
    /// `go version`'s word for it: "go1.19.8".
    pub go_version: String,
}

impl GoBuild {
    /// "go1.19.8 (reference server, ~/.cache/…/go-upstream)" for a run's header.
    pub fn describe(&self) -> String {
        format!("{} (reference server {})", self.go_version, self.binary.display())
    }
}

/// The lab's cache directory: `BADGATEWAY_CACHE_DIR` as given, else
/// `$XDG_CACHE_HOME/badgateway-lab`, else `$HOME/.cache/badgateway-lab`
/// (the XDG base-directory rule). `env` reads a variable.
pub fn cache_root(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty()).map(PathBuf::from).filter(|p| p.is_absolute());
    set(CACHE_VAR)
        .or_else(|| set("XDG_CACHE_HOME").map(|d| d.join("badgateway-lab")))
        .or_else(|| set("HOME").map(|d| d.join(".cache").join("badgateway-lab")))
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases, so
/// every build of the lab finds the same cache entry for the same sources.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// The cache entry for these sources built by this toolchain.
pub fn build_dir_name(go_version: &str) -> String {
    format!("go-upstream-{:016x}", fnv1a(&[MAIN_GO, GO_MOD, go_version]))
}

/// The `go` command to run: `flag` (`--go`), else `BADGATEWAY_GO`, else
/// `go` on PATH.
pub fn go_command(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(GO_VAR).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("go"))
}

/// How long `go version` may take.
const VERSION_LIMIT: Duration = Duration::from_secs(10);
/// How long `go build` may take (a cold build cache compiles the standard
/// library first).
const BUILD_LIMIT: Duration = Duration::from_secs(300);
/// How much of a `go` command's output is kept.
const GO_OUTPUT: usize = 256 * 1024;

/// `go version` → "go1.19.8" (the third word of "go version go1.19.8 linux/amd64").
pub fn parse_go_version(text: &str) -> Option<&str> {
    let mut words = text.split_whitespace();
    (words.next()? == "go" && words.next()? == "version").then_some(())?;
    words.next().filter(|w| w.starts_with("go"))
}

/// Builds the reference Go server once per source version and toolchain
/// into the cache directory (see [`cache_root`]), with the `go` that
/// [`go_command`] names, and returns the binary. Remembered per `go_flag`
/// for the life of the process. Blocking, bounded (`go version` by 10 s,
/// `go build` by 5 min): async code calls it through
/// `tokio::task::spawn_blocking`.
pub fn build_go_upstream_with(go_flag: Option<&Path>) -> Result<GoBuild, GoUnavailable> {
    /// Per `--go` value: its build (or why there is none).
    type Builds = Vec<(Option<PathBuf>, Result<GoBuild, GoUnavailable>)>;
    static BUILT: std::sync::OnceLock<Mutex<Builds>> = std::sync::OnceLock::new();
    let cache = BUILT.get_or_init(Default::default);
    // Held while building: this process's threads wait for one build.
    let mut done = cache.lock();
    let key = go_flag.map(Path::to_path_buf);
    if let Some((_, r)) = done.iter().find(|(k, _)| *k == key) {
        return r.clone();
    }
    let r = build(&go_command(go_flag));
    done.push((key, r.clone()));
    r
}

/// [`build_go_upstream_with`] the `go` from `BADGATEWAY_GO` or PATH.
pub fn build_go_upstream() -> Result<PathBuf, GoUnavailable> {
    build_go_upstream_with(None).map(|b| b.binary)
}

fn build(go: &Path) -> Result<GoBuild, GoUnavailable> {
    let no_toolchain = |reason: String| GoUnavailable::NoToolchain { go: go.to_path_buf(), reason };
    let mut version = Command::new(go);
    version.arg("version").env("GOTOOLCHAIN", "local");
    let out = child::run_bounded(version, VERSION_LIMIT, GO_OUTPUT).map_err(|e| no_toolchain(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let go_version = parse_go_version(&text).ok_or_else(|| no_toolchain(format!("it printed {:?}", text.trim())))?.to_string();
    // Without HOME (a bare container, a service unit): a per-user directory
    // under the system's temp dir.
    // SAFETY: getuid(2) cannot fail and touches no memory.
    let uid = unsafe { libc::getuid() };
    let root = cache_root(|k| std::env::var_os(k)).unwrap_or_else(|| std::env::temp_dir().join(format!("badgateway-lab-cache-{uid}")));
    remove_stale_builds(&root);
    let dir = root.join(build_dir_name(&go_version));
    let bin = dir.join("go-upstream");
    if bin.is_file() {
        return Ok(GoBuild { binary: bin, go_version });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: io::Error| GoUnavailable::Io { path, reason: e.to_string() }
    };
    // Other processes (parallel test binaries) may build the same entry at
    // the same time: each builds in its own directory, complete with the
    // sources, and renames it into place. A rename onto an entry another
    // process finished first fails, and theirs is used.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = root.join(format!(".{}{TMP_MARK}{}-{n}", build_dir_name(&go_version), std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let result = build_in(go, &root, &tmp);
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if std::fs::rename(&tmp, &dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
        if !bin.is_file() {
            return Err(GoUnavailable::Io { path: dir, reason: "another build left this entry without a binary; remove it".into() });
        }
    }
    Ok(GoBuild { binary: bin, go_version })
}

/// What marks a build directory in progress: `.go-upstream-HASH.tmp-PID-N`.
const TMP_MARK: &str = ".tmp-";

/// The PID in a build directory's name (see [`TMP_MARK`]).
fn tmp_build_pid(name: &str) -> Option<u32> {
    let (_, pid_n) = name.strip_prefix(".go-upstream-")?.split_once(TMP_MARK)?;
    pid_n.split_once('-')?.0.parse().ok()
}

/// Removes the build directories of processes that died mid-build (their
/// PID no longer exists). One whose PID is alive, maybe reused by another
/// process, is left alone.
fn remove_stale_builds(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(tmp_build_pid) else { continue };
        let Ok(pid) = i32::try_from(pid) else { continue };
        // SAFETY: kill(2) with signal 0 sends nothing; it asks whether the PID exists.
        let gone = pid > 0 && unsafe { libc::kill(pid, 0) } == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Writes the sources into `dir` and runs `go build` there.
fn build_in(go: &Path, root: &Path, dir: &Path) -> Result<(), GoUnavailable> {
    let io = |e: io::Error| GoUnavailable::Io { path: dir.to_path_buf(), reason: e.to_string() };
    std::fs::write(dir.join("main.go"), MAIN_GO).map_err(io)?;
    std::fs::write(dir.join("go.mod"), GO_MOD).map_err(io)?;
    let mut cmd = Command::new(go);
    cmd.args(["build", "-trimpath", "-o", "go-upstream", "."])
        .current_dir(dir)
        // The module has no dependencies; never fetch a toolchain.
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local");
    // go needs a build cache and a GOPATH, which it finds under $HOME; a
    // HOME-less environment (CI containers, systemd units) gets them in
    // `.go/` inside the lab's cache, apart from its entries.
    if std::env::var_os("HOME").is_none() {
        if std::env::var_os("GOCACHE").is_none() && std::env::var_os("XDG_CACHE_HOME").is_none() {
            cmd.env("GOCACHE", root.join(".go").join("cache"));
        }
        if std::env::var_os("GOPATH").is_none() {
            cmd.env("GOPATH", root.join(".go").join("path"));
        }
    }
    let out = child::run_bounded(cmd, BUILD_LIMIT, GO_OUTPUT).map_err(|e| match e {
        RunError::TimedOut(_) => GoUnavailable::BuildTimedOut { dir: dir.to_path_buf() },
        e => GoUnavailable::NoToolchain { go: go.to_path_buf(), reason: e.to_string() },
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        return Err(GoUnavailable::BuildFailed {
            dir: dir.to_path_buf(),
            status: out.status.to_string(),
            stderr: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        });
    }
    Ok(())
}

/// One `http.Server` setting a Go server is given on its command line.
pub struct GoSetting {
    /// Its `--upstream-cmd` placeholder: `{read_timeout}`.
    pub placeholder: &'static str,
    /// The reference server's flag (Go's field name, kebab case).
    pub flag: &'static str,
    /// Its value for a config, as Go reads it ("60ms", "true").
    pub value: fn(&ServerConfig) -> String,
    /// What it is, for `--help`.
    pub help: &'static str,
}

/// The Go settings the lab passes on: the reference server's flags
/// ([`go_flags`]), a user's placeholders, and their help, from this one list.
pub const GO_SETTINGS: [GoSetting; 6] = {
    use go_model::godur::format;
    [
        GoSetting { placeholder: "read_timeout", flag: "read-timeout", value: |c| format(c.read_timeout), help: "http.Server.ReadTimeout, a Go duration (\"60ms\")" },
        GoSetting { placeholder: "read_header_timeout", flag: "read-header-timeout", value: |c| format(c.read_header_timeout), help: "http.Server.ReadHeaderTimeout" },
        GoSetting { placeholder: "write_timeout", flag: "write-timeout", value: |c| format(c.write_timeout), help: "http.Server.WriteTimeout" },
        GoSetting { placeholder: "idle_timeout", flag: "idle-timeout", value: |c| format(c.idle_timeout), help: "http.Server.IdleTimeout" },
        GoSetting { placeholder: "max_header_bytes", flag: "max-header-bytes", value: |c| c.max_header_bytes.to_string(), help: "http.Server.MaxHeaderBytes" },
        GoSetting { placeholder: "keepalives", flag: "keepalives", value: |c| c.keep_alives.to_string(), help: "SetKeepAlivesEnabled (true/false)" },
    ]
};

/// The reference server's flags for a config.
pub fn go_flags(cfg: &ServerConfig) -> Vec<String> {
    GO_SETTINGS.iter().map(|s| format!("--{}={}", s.flag, (s.value)(cfg))).collect()
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
    /// `MARK n=K`: the harness's sync point (see [`GoServer::sync_log`]).
    Mark { n: &'a str },
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
            What::Mark { n: field("n=").unwrap_or("") }
        } else if rest.starts_with("LISTEN") {
            What::Listen
        } else {
            What::Other(rest)
        };
        Some(LogLine { secs_of_day, what })
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
    /// What the process has written so far (stdout and stderr).
    log: Arc<Mutex<Vec<String>>>,
    /// Changes after each line is in `log`, and at each pipe's EOF.
    progress: watch::Receiver<Progress>,
    /// The fixture's stdin: "mark K" lines (see [`GoServer::sync_log`]).
    marks: tokio::process::ChildStdin,
}

impl GoServer {
    pub async fn start(binary: &Path, cfg: &ServerConfig, port: u16) -> io::Result<GoServer> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = tokio::process::Command::new(binary);
        command
            .arg(format!("--addr={addr}"))
            .args(go_flags(cfg))
            .args(cfg.reuse_port.then_some("--reuseport"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(limit) = cfg.fd_limit {
            let lim = libc::rlimit { rlim_cur: libc::rlim_t::from(limit), rlim_max: libc::rlim_t::from(limit) };
            // SAFETY: setrlimit is async-signal-safe and touches only the child.
            unsafe {
                command.pre_exec(move || if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 { Ok(()) } else { Err(io::Error::last_os_error()) });
            }
        }
        let mut child = command.spawn()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let not_piped = || io::Error::other("go-upstream: output not piped");
        let stdout = child.stdout.take().ok_or_else(not_piped)?;
        let stderr = child.stderr.take().ok_or_else(not_piped)?;
        let marks = child.stdin.take().ok_or_else(not_piped)?;
        // Read as bytes: the fixture logs request paths as sent.
        let sink = log.clone();
        let progress = child::read_lines(vec![Box::new(stdout), Box::new(stderr)], move |line| sink.lock().push(line));
        let mut server = GoServer { child, addr, log, progress, marks };
        if !server.wait_line(Duration::from_secs(10), |l| l.contains("LISTEN")).await {
            let _ = server.child.start_kill();
            let log = server.lines().join("\n");
            return Err(io::Error::other(format!("go-upstream did not start listening on {addr}: {log}")));
        }
        Ok(server)
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().clone()
    }

    /// Waits (event-driven, bounded) for a log line matching `pred`.
    pub async fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        self.wait_log(timeout, |log| log.iter().any(|l| pred(l))).await
    }

    /// Waits (event-driven, bounded) until the whole log so far satisfies `pred`.
    pub async fn wait_log(&mut self, timeout: Duration, pred: impl Fn(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            self.progress.borrow_and_update();
            if pred(&self.log.lock()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.progress.changed()).await {
                Ok(Ok(())) => continue,
                _ => return false,
            }
        }
    }

    /// Makes the log current: writes "mark K" to the fixture's stdin and
    /// waits (bounded) for its "MARK n=K" line. stdout is ordered, so every
    /// HANDLER line written before is then read. Not a request: the
    /// listener's queue stays as the scenario left it (a paused accept loop,
    /// a handoff waiting for a queued connection, an fd limit). A process
    /// that has exited (killed, shut down) cannot answer: then its log is
    /// current when its output has ended, which is waited for instead.
    pub async fn sync_log(&mut self, timeout: Duration) -> bool {
        use tokio::io::AsyncWriteExt;
        static MARK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let k = MARK.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let sent = tokio::time::timeout(timeout, async {
            self.marks.write_all(format!("mark {k}\n").as_bytes()).await?;
            self.marks.flush().await
        })
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            return child::wait_pipes_closed(&mut self.progress, timeout).await;
        }
        let k = k.to_string();
        self.wait_line(timeout, |l| LogLine::parse(l).is_some_and(|l| l.what == What::Mark { n: &k })).await
    }

    /// Handler runs for `path` in the log so far.
    pub fn handler_runs(&self, path: &str) -> u64 {
        let log = self.log.lock();
        log.iter().filter_map(|l| LogLine::parse(l)).filter(|l| matches!(l.what, What::Handler { path: p, .. } if p == path)).count() as u64
    }

    /// The client ports of every connection the server accepted (ConnState
    /// `new`).
    pub fn accepted_ports(&self) -> Vec<u16> {
        let log = self.log.lock();
        log.iter()
            .filter_map(|l| LogLine::parse(l))
            .filter_map(|l| match l.what {
                What::Conn { remote, state: "new" } => port_of(remote),
                _ => None,
            })
            .collect()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGTERM: the fixture runs `Shutdown`.
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `sig` to the process (SIGUSR1/SIGUSR2: the fixture's handoffs).
    pub fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill(2) on the PID of a child we spawned and still own.
            unsafe {
                libc::kill(pid as i32, sig);
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
    use std::ffi::OsString;

    #[test]
    fn the_cache_follows_xdg_and_the_override() {
        let env = |pairs: &'static [(&'static str, &'static str)]| move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| OsString::from(v));
        assert_eq!(cache_root(env(&[("HOME", "/home/u")])), Some(PathBuf::from("/home/u/.cache/badgateway-lab")));
        assert_eq!(cache_root(env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")])), Some(PathBuf::from("/xdg/badgateway-lab")));
        assert_eq!(cache_root(env(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg"), (CACHE_VAR, "/tmp/c")])), Some(PathBuf::from("/tmp/c")));
        assert_eq!(cache_root(env(&[("XDG_CACHE_HOME", "relative"), ("HOME", "")])), None, "relative or empty values are ignored (XDG)");
        assert_eq!(cache_root(env(&[])), None);
    }

    #[test]
    fn build_entries_are_keyed_by_sources_and_toolchain() {
        let a = build_dir_name("go1.19.8");
        assert!(a.starts_with("go-upstream-") && a.len() == "go-upstream-".len() + 16, "{a}");
        assert_eq!(a, build_dir_name("go1.19.8"));
        assert_ne!(a, build_dir_name("go1.22.0"));
        assert_eq!(fnv1a(&[""]), 0xaf63_bd4c_8601_b7df, "FNV-1a of one NUL byte (stable across Rust releases)");
        assert_eq!(parse_go_version("go version go1.19.8 linux/amd64\n"), Some("go1.19.8"));
        assert_eq!(parse_go_version("go version devel go1.23-abc linux/amd64"), None);
        assert_eq!(parse_go_version("bash: go: not found"), None);
    }

    #[test]
    fn the_reference_servers_flags_come_from_the_settings_table() {
        assert_eq!(
            go_flags(&ServerConfig { write_timeout: Duration::from_millis(60), ..ServerConfig::default() }),
            ["--read-timeout=0s", "--read-header-timeout=0s", "--write-timeout=60ms", "--idle-timeout=0s", "--max-header-bytes=1048576", "--keepalives=true"],
            "fixtures/go-upstream/main.go's flag names"
        );
    }

    #[test]
    fn build_dirs_of_dead_processes_are_removed() {
        let root = std::env::temp_dir().join(format!("badgateway-lab-stale-builds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // A PID that no longer exists: a child of ours, exited and reaped.
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        gone.wait().unwrap();
        let name = build_dir_name("go1.19.8");
        let dead = root.join(format!(".{name}{TMP_MARK}{}-0", gone.id()));
        let live = root.join(format!(".{name}{TMP_MARK}{}-1", std::process::id()));
        for d in [&dead, &live, &root.join(&name), &root.join(".go")] {
            std::fs::create_dir_all(d).unwrap();
        }
        assert_eq!(tmp_build_pid(&format!(".{name}{TMP_MARK}42-7")), Some(42));
        assert_eq!(tmp_build_pid(&name), None);
        remove_stale_builds(&root);
        let mut left: Vec<String> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        let _ = std::fs::remove_dir_all(&root);
        let mut want = vec![".go".to_string(), live.file_name().unwrap().to_string_lossy().into_owned(), name];
        want.sort();
        assert_eq!(left, want, "the dead process's build dir is gone, the rest stays");
    }

    #[test]
    fn reads_the_fixture_log() {
        let l = LogLine::parse("10:00:01.500000 HANDLER n=2 path=/sleep remote=127.0.0.1:40000").unwrap();
        assert_eq!(l.secs_of_day, 36001.5);
        assert_eq!(l.what, What::Handler { path: "/sleep", remote: "127.0.0.1:40000" });
        assert_eq!(LogLine::parse("00:00:00.000001 CONN 127.0.0.1:5 new").unwrap().what, What::Conn { remote: "127.0.0.1:5", state: "new" });
        assert_eq!(LogLine::parse("00:00:00.000001 MARK n=7").unwrap().what, What::Mark { n: "7" });
        assert_eq!(LogLine::parse("00:00:00.000001 SHUTDOWN begin").unwrap().what, What::Other("SHUTDOWN begin"));
        assert_eq!(LogLine::parse("2022/11/10 23:00:00 http: panic serving 127.0.0.1:5: boom"), None);
    }
}
