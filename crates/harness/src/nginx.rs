//! Real nginx, for differential tests and `--proxy nginx` scenario runs:
//! a private prefix directory, loopback ports, `daemon off`, stopped by the
//! PID we spawned. The config is rendered from the same [`Config`] model the
//! emulator reads.
//!
//! Which nginx: `--nginx PATH`, else `BADGATEWAY_NGINX`, else `PATH` and the
//! usual package directories ([`locate`]). Its `nginx -V` says which release
//! it is; a configuration is checked against that release (a directive it
//! does not have is an error naming both) and pinned to nginx 1.22's
//! defaults, which the catalogue's expectations assume
//! ([`nginx_model::version`]).

use crate::child::NotAccepting;
use nginx_model::conf::Config;
use nginx_model::version::{parse_nginx_v, NginxV, TooOld, Unpinnable, Version};
use nginx_model::Profile;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The access-log format both nginx and the emulator write in lab runs
/// (the one used for the reference observations).
pub const LAB_FORMAT: &str = "$msec $request_method $uri $status $request_time \"$upstream_status\" \"$upstream_response_time\" \"$upstream_connect_time\" \"$upstream_addr\" $connection_requests $body_bytes_sent \"$args\"";

pub struct RealNginx {
    child: std::process::Child,
    pub prefix: PathBuf,
    pub addr: SocketAddr,
}

/// Where the lab looks for nginx when it is not told (after `PATH`): the
/// usual package locations, which a non-root `PATH` often lacks (`/usr/sbin`).
pub const FIXED_DIRS: [&str; 3] = ["/usr/sbin", "/usr/local/sbin", "/usr/bin"];

/// The variable that names the nginx binary when `--nginx` is not given.
pub const NGINX_VAR: &str = "BADGATEWAY_NGINX";

/// How the binary was chosen (for messages: which setting to fix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--nginx PATH`.
    Flag,
    /// `BADGATEWAY_NGINX`.
    Env,
    /// Found on `PATH` or in [`FIXED_DIRS`].
    Search,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Flag => "--nginx",
            Source::Env => NGINX_VAR,
            Source::Search => "found on PATH",
        })
    }
}

/// Where to look for nginx, in order: the flag's path alone, else the
/// variable's alone (an explicit choice is never replaced by another
/// binary), else `nginx` in each `PATH` directory, then [`FIXED_DIRS`]. A
/// name without a slash (`--nginx nginx-1.25`) is looked up on `PATH`.
pub fn candidates(flag: Option<&Path>, env: Option<&std::ffi::OsStr>, path_var: Option<&std::ffi::OsStr>) -> Vec<(PathBuf, Source)> {
    let dirs: Vec<PathBuf> = path_var.map(|p| std::env::split_paths(p).filter(|d| d.is_absolute()).collect()).unwrap_or_default();
    let named = |name: &Path, source| -> Vec<(PathBuf, Source)> {
        if name.components().count() == 1 && !name.as_os_str().is_empty() && !name.to_string_lossy().starts_with('.') {
            dirs.iter().map(|d| (d.join(name), source)).collect()
        } else {
            vec![(name.to_path_buf(), source)]
        }
    };
    if let Some(f) = flag {
        return named(f, Source::Flag);
    }
    if let Some(e) = env.filter(|e| !e.is_empty()) {
        return named(Path::new(e), Source::Env);
    }
    let mut out: Vec<(PathBuf, Source)> = dirs.iter().map(|d| (d.join("nginx"), Source::Search)).collect();
    for d in FIXED_DIRS {
        let p = Path::new(d).join("nginx");
        if !out.iter().any(|(q, _)| *q == p) {
            out.push((p, Source::Search));
        }
    }
    out
}

/// An nginx binary the lab can run: where it is, how it was chosen, and
/// what its `nginx -V` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxProgram {
    pub path: PathBuf,
    pub from: Source,
    pub v: NginxV,
}

impl NginxProgram {
    pub fn version(&self) -> Version {
        self.v.version
    }

    /// The defaults this binary runs with.
    pub fn profile(&self) -> Profile {
        self.v.version.profile()
    }

    /// "nginx/1.22.1 (/usr/sbin/nginx)" for a run's header.
    pub fn describe(&self) -> String {
        format!("{}/{} ({})", self.v.product, self.v.version, self.path.display())
    }
}

/// Why real nginx cannot be used (a skip reason, or a failure where real
/// programs are required, or a usage error for a path given explicitly).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NginxUnavailable {
    #[error("no nginx binary on PATH or in /usr/sbin, /usr/local/sbin, /usr/bin (install nginx-light, or give one with --nginx PATH or {NGINX_VAR})")]
    NotFound,
    #[error("nginx {path} (from {from}) does not exist")]
    Missing { path: PathBuf, from: Source },
    #[error("nginx {path} (from {from}) is not an executable file")]
    NotExecutable { path: PathBuf, from: Source },
    #[error("cannot run `{path} -V` (from {from}): {reason}")]
    NotRunnable { path: PathBuf, from: Source, reason: String },
    #[error("{path} (from {from}) is not nginx: `-V` printed no \"nginx version: NAME/X.Y.Z\" line (it printed {excerpt:?})")]
    NotNginx { path: PathBuf, from: Source, excerpt: String },
}

/// How long `nginx -V` may take.
const DASH_V_LIMIT: Duration = Duration::from_secs(5);

/// Runs `nginx -V` (bounded: a binary that is not nginx may wait on
/// something, or leave a process behind that holds its output; see
/// [`crate::child::run_bounded`]) and returns what it printed on stderr,
/// then stdout (the first 64 KiB of each).
fn run_dash_v(path: &Path, limit: Duration) -> Result<String, String> {
    let mut cmd = std::process::Command::new(path);
    cmd.arg("-V");
    let out = crate::child::run_bounded(cmd, limit, 64 * 1024).map_err(|e| e.to_string())?;
    Ok(format!("{}{}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout)))
}

/// Asks one candidate what it is.
fn probe(path: &Path, from: Source) -> Result<NginxProgram, NginxUnavailable> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|_| NginxUnavailable::Missing { path: path.to_path_buf(), from })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(NginxUnavailable::NotExecutable { path: path.to_path_buf(), from });
    }
    let text = run_dash_v(path, DASH_V_LIMIT).map_err(|reason| NginxUnavailable::NotRunnable { path: path.to_path_buf(), from, reason })?;
    let v = parse_nginx_v(&text).ok_or_else(|| NginxUnavailable::NotNginx {
        path: path.to_path_buf(),
        from,
        excerpt: text.lines().next().unwrap_or("").chars().take(80).collect(),
    })?;
    Ok(NginxProgram { path: path.to_path_buf(), from, v })
}

/// Finds the nginx to run: `flag` (`--nginx`), else [`NGINX_VAR`], else a
/// search (see [`candidates`]), and reads its version. An explicit choice
/// that is not a runnable nginx is an error, never replaced by another
/// binary. Remembered per `flag` for the life of the process.
pub fn locate(flag: Option<&Path>) -> Result<NginxProgram, NginxUnavailable> {
    /// Per `--nginx` value: the binary found (or why there is none).
    type Found = Vec<(Option<PathBuf>, Result<NginxProgram, NginxUnavailable>)>;
    static FOUND: std::sync::OnceLock<parking_lot::Mutex<Found>> = std::sync::OnceLock::new();
    let cache = FOUND.get_or_init(Default::default);
    let key = flag.map(Path::to_path_buf);
    if let Some((_, r)) = cache.lock().iter().find(|(k, _)| *k == key) {
        return r.clone();
    }
    let found = find(flag);
    cache.lock().push((key, found.clone()));
    found
}

fn find(flag: Option<&Path>) -> Result<NginxProgram, NginxUnavailable> {
    let env = std::env::var_os(NGINX_VAR);
    let path_var = std::env::var_os("PATH");
    let all = candidates(flag, env.as_deref(), path_var.as_deref());
    let explicit = all.first().is_some_and(|(_, s)| *s != Source::Search);
    if explicit {
        // A bare name looked up on PATH: the first directory that has it.
        let chosen = all.iter().find(|(p, _)| p.exists()).or(all.first());
        return match chosen {
            Some((p, s)) => probe(p, *s),
            None => Err(NginxUnavailable::NotFound),
        };
    }
    let (p, s) = all.iter().find(|(p, _)| p.is_file()).ok_or(NginxUnavailable::NotFound)?;
    probe(p, *s)
}

/// The nginx binary to run (found as [`locate`] finds it without a flag).
pub fn available() -> Result<PathBuf, NginxUnavailable> {
    locate(None).map(|p| p.path)
}

/// Why real nginx did not start.
#[derive(Debug, thiserror::Error)]
pub enum NginxStartError {
    #[error(transparent)]
    Unavailable(#[from] NginxUnavailable),
    #[error("{program}: {err}")]
    TooOld { program: String, err: TooOld },
    #[error("{program}: {err}")]
    Unpinnable { program: String, err: Unpinnable },
    #[error("the configuration has no listen address")]
    NoListen,
    #[error("listen {0} is not an address")]
    BadListen(String),
    #[error("cannot write {path}: {source}")]
    Prefix { path: PathBuf, source: std::io::Error },
    #[error("cannot run nginx: {0}")]
    Spawn(std::io::Error),
    #[error("nginx exited ({status}): {stderr}")]
    Exited { status: std::process::ExitStatus, stderr: String },
    #[error("nginx did not start listening within 10 s")]
    NotListening,
}

/// Adds the lab's error/access logs to a config and points it at `listen`.
pub fn lab_config(cfg: Config, listen: SocketAddr) -> Config {
    let mut cfg = lab_logs(cfg);
    for s in &mut cfg.servers {
        s.listen = vec![listen.to_string()];
    }
    cfg
}

/// The lab's logs: `error.log` and `access.log` (format [`LAB_FORMAT`]) in
/// the prefix, for real nginx and the emulator alike.
pub fn lab_logs(mut cfg: Config) -> Config {
    cfg.error_log = Some(ERROR_LOG.into());
    cfg.log_formats.retain(|(n, _)| n != "lab");
    cfg.log_formats.push(("lab".into(), LAB_FORMAT.into()));
    cfg.access_log = vec![nginx_model::conf::AccessLog { path: Some(ACCESS_LOG.into()), format: "lab".into(), pos: Default::default() }];
    // Every request in the lab's one access log.
    for s in &mut cfg.servers {
        s.access_log.clear();
        for l in &mut s.locations {
            l.access_log.clear();
        }
    }
    cfg
}

/// The lab's log files, relative to the prefix.
pub const ERROR_LOG: &str = "error.log";
pub const ACCESS_LOG: &str = "access.log";

impl RealNginx {
    /// Starts `program` with `cfg` (see [`lab_config`]) in a fresh prefix
    /// under `work`, and waits (bounded) until it accepts connections. nginx
    /// signals readiness no other way, so the port is tried every few
    /// milliseconds. `cfg` is checked against the binary's release and
    /// pinned to nginx 1.22's defaults first.
    pub async fn start(program: &NginxProgram, cfg: &Config, work: &Path) -> Result<RealNginx, NginxStartError> {
        nginx_model::version::check(cfg, program.version()).map_err(|err| NginxStartError::TooOld { program: program.describe(), err })?;
        let mut pinned = cfg.clone();
        nginx_model::version::pin_legacy_defaults(&mut pinned, program.profile())
            .map_err(|err| NginxStartError::Unpinnable { program: program.describe(), err })?;
        let cfg = &pinned;
        let bin = &program.path;
        let listen = cfg.servers.first().and_then(|s| s.listen.first()).ok_or(NginxStartError::NoListen)?;
        let addr: SocketAddr = listen.parse().map_err(|_| NginxStartError::BadListen(listen.clone()))?;
        let conf = work.join("nginx.conf");
        let prefix_err = |source| NginxStartError::Prefix { path: conf.clone(), source };
        std::fs::create_dir_all(work).map_err(prefix_err)?;
        std::fs::write(&conf, cfg.render()).map_err(prefix_err)?;
        let prefix = format!("{}/", work.display());
        let child = std::process::Command::new(bin)
            .args(["-p", &prefix, "-e", "error.log", "-c"])
            .arg(&conf)
            .args(["-g", "daemon off; master_process off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(NginxStartError::Spawn)?;
        let mut n = RealNginx { child, prefix: work.to_path_buf(), addr };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        match crate::child::wait_accepting(addr, deadline, || n.child.try_wait().ok().flatten()).await {
            Ok(()) => Ok(n),
            Err(NotAccepting::Exited(status)) => {
                // daemon off, master_process off: nginx alone holds the
                // pipe, and it has exited; a wrapper could have left a
                // process holding it, so the read is bounded.
                let stderr = n.child.stderr.take();
                let read = tokio::task::spawn_blocking(move || {
                    use std::io::Read;
                    let mut err = Vec::new();
                    if let Some(e) = stderr {
                        let _ = e.take(64 * 1024).read_to_end(&mut err);
                    }
                    String::from_utf8_lossy(&err).into_owned()
                });
                let stderr = tokio::time::timeout(Duration::from_secs(2), read).await.ok().and_then(Result::ok).unwrap_or_default();
                Err(NginxStartError::Exited { status, stderr })
            }
            Err(NotAccepting::TimedOut) => {
                n.stop();
                Err(NginxStartError::NotListening)
            }
        }
    }

    /// The failure lines (`[crit]`, `[error]`) and `[warn]` lines of error.log.
    pub fn error_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.prefix.join(ERROR_LOG))
            .unwrap_or_default()
            .lines()
            .filter(|l| nginx_model::logs::Level::line_is_failure(l) || l.contains("[warn]"))
            .map(String::from)
            .collect()
    }

    /// access.log lines (LAB_FORMAT).
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.prefix.join(ACCESS_LOG)).unwrap_or_default().lines().map(String::from).collect()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RealNginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The fields of a LAB_FORMAT access line the lab compares.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LabAccess {
    pub method: String,
    pub uri: String,
    pub status: u16,
    pub upstream_status: Vec<u16>,
    pub upstream_response_time: Vec<f64>,
    pub body_bytes_sent: u64,
}

/// Parses one LAB_FORMAT line.
pub fn parse_lab_access(line: &str) -> Option<LabAccess> {
    // Fields: msec method uri status request_time "us" "urt" "uct" "ua" conn_req bytes "args"
    let mut quoted = Vec::new();
    let mut plain = Vec::new();
    let mut rest = line;
    while !rest.is_empty() {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"')?;
            quoted.push(&r[..end]);
            plain.push("\u{0}");
            rest = &r[end + 1..];
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            plain.push(&rest[..end]);
            rest = &rest[end..];
        }
    }
    let list = |s: &str| -> Vec<String> { s.split(", ").filter(|x| *x != "-").map(String::from).collect() };
    Some(LabAccess {
        method: plain.get(1)?.to_string(),
        uri: plain.get(2)?.to_string(),
        status: plain.get(3)?.parse().ok()?,
        upstream_status: list(quoted.first()?).iter().filter_map(|s| s.parse().ok()).collect(),
        upstream_response_time: list(quoted.get(1)?).iter().filter_map(|s| s.parse().ok()).collect(),
        body_bytes_sent: plain.get(10)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn explicit_choices_are_never_replaced() {
        let path = Some(OsStr::new("/opt/bin:relative/dir:/usr/sbin"));
        let flag = candidates(Some(Path::new("/opt/nginx/sbin/nginx")), Some(OsStr::new("/env/nginx")), path);
        assert_eq!(flag, [(PathBuf::from("/opt/nginx/sbin/nginx"), Source::Flag)]);
        let env = candidates(None, Some(OsStr::new("/env/nginx")), path);
        assert_eq!(env, [(PathBuf::from("/env/nginx"), Source::Env)]);
        // A bare name is looked up on PATH (relative PATH entries are not trusted).
        let named: Vec<PathBuf> = candidates(Some(Path::new("nginx-1.25")), None, path).into_iter().map(|(p, _)| p).collect();
        assert_eq!(named, [PathBuf::from("/opt/bin/nginx-1.25"), PathBuf::from("/usr/sbin/nginx-1.25")]);
        assert_eq!(candidates(Some(Path::new("./nginx")), None, path), [(PathBuf::from("./nginx"), Source::Flag)]);
        let searched: Vec<PathBuf> = candidates(None, Some(OsStr::new("")), path).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            searched,
            ["/opt/bin/nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"].map(PathBuf::from),
            "PATH first, then the fixed directories, each once"
        );
    }

    /// A script standing in for an nginx binary.
    fn fake(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn probes_say_what_is_wrong_with_a_binary() {
        let dir = std::env::temp_dir().join(format!("badgateway-lab-nginx-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = fake(&dir, "nginx-old", "echo 'nginx version: nginx/1.14.2' >&2; echo 'configure arguments: --prefix=/opt' >&2");
        let p = probe(&old, Source::Flag).unwrap();
        assert_eq!((p.version(), p.profile(), p.v.configure_arguments.as_str()), (Version(1, 14, 2), Profile::Legacy, "--prefix=/opt"));
        assert_eq!(p.describe(), format!("nginx/1.14.2 ({})", old.display()));
        let not = fake(&dir, "python", "echo 'Python 3.11.2'");
        let err = probe(&not, Source::Env).unwrap_err().to_string();
        assert!(err.contains("is not nginx") && err.contains("Python 3.11.2") && err.contains(NGINX_VAR), "{err}");
        let plain = dir.join("plain");
        std::fs::write(&plain, "not a program").unwrap();
        assert!(matches!(probe(&plain, Source::Flag), Err(NginxUnavailable::NotExecutable { .. })));
        assert!(matches!(probe(&dir.join("absent"), Source::Flag), Err(NginxUnavailable::Missing { .. })));
        assert!(matches!(probe(&dir, Source::Flag), Err(NginxUnavailable::NotExecutable { .. })), "a directory");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `-V` through a wrapper: more output than a pipe holds, a process left
    /// behind holding the pipes, a binary that never exits.
    #[test]
    fn dash_v_is_bounded_whatever_the_binary_does() {
        let dir = std::env::temp_dir().join(format!("badgateway-lab-nginx-dash-v-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let started = std::time::Instant::now();
        let chatty = fake(&dir, "chatty", "head -c 100000 /dev/zero | tr '\\0' x; echo 'nginx version: nginx/1.22.1' >&2; sleep 30 &");
        assert_eq!(probe(&chatty, Source::Flag).map(|p| p.version()), Ok(Version(1, 22, 1)));
        assert!(started.elapsed() < DASH_V_LIMIT, "it exited at once: {:?}", started.elapsed());
        let stuck = fake(&dir, "stuck", "sleep 30 & wait");
        let started = std::time::Instant::now();
        assert_eq!(run_dash_v(&stuck, Duration::from_millis(300)), Err("it did not exit within 0.3 s (its process group was killed)".into()));
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn parses_observed_access_lines() {
        let l = "11.148 GET /ok 200 0.001 \"502, 200\" \"0.000, 0.001\" \"0.000, 0.000\" \"127.0.0.1:18080, 127.0.0.1:18080\" 671 2 \"-\"";
        let a = super::parse_lab_access(l).unwrap();
        assert_eq!((a.status, a.upstream_status.clone(), a.body_bytes_sent), (200, vec![502, 200], 2));
        let l = "1.0 POST /ok 502 0.000 \"502\" \"0.000\" \"-\" \"127.0.0.1:18080\" 231 157 \"-\"";
        assert_eq!(super::parse_lab_access(l).unwrap().upstream_status, vec![502]);
    }
}
