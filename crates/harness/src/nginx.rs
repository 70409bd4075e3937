//! Real nginx, for differential tests and `--proxy nginx` scenario runs:
//! a private prefix directory, loopback ports, `daemon off`, stopped by the
//! PID we spawned. The config is rendered from the same [`Config`] model the
//! emulator reads.

use nginx_model::conf::Config;
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

/// Why real nginx cannot be used (a skip reason, or a failure where real
/// programs are required).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no nginx binary in /usr/sbin, /usr/local/sbin or /usr/bin (install nginx-light)")]
pub struct NginxUnavailable;

/// The nginx binary to run.
pub fn available() -> Result<PathBuf, NginxUnavailable> {
    ["/usr/sbin", "/usr/local/sbin", "/usr/bin"].iter().map(|d| Path::new(d).join("nginx")).find(|p| p.exists()).ok_or(NginxUnavailable)
}

/// Why real nginx did not start.
#[derive(Debug, thiserror::Error)]
pub enum NginxStartError {
    #[error(transparent)]
    Unavailable(#[from] NginxUnavailable),
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
pub fn lab_config(mut cfg: Config, listen: SocketAddr) -> Config {
    cfg.error_log = Some("error.log".into());
    cfg.log_formats.retain(|(n, _)| n != "lab");
    cfg.log_formats.push(("lab".into(), LAB_FORMAT.into()));
    cfg.access_log = Some(nginx_model::conf::AccessLog { path: Some("access.log".into()), format: "lab".into(), pos: Default::default() });
    for s in &mut cfg.servers {
        s.listen = vec![listen.to_string()];
        s.access_log = None;
    }
    cfg
}

impl RealNginx {
    /// Starts nginx with `cfg` (see [`lab_config`]) in a fresh prefix under
    /// `work`, and waits (bounded) until it accepts connections. nginx signals
    /// readiness no other way, so the port is tried every few milliseconds.
    pub async fn start(cfg: &Config, work: &Path) -> Result<RealNginx, NginxStartError> {
        let bin = available()?;
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
        loop {
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), tokio::net::TcpStream::connect(addr)).await {
                return Ok(n);
            }
            if let Ok(Some(status)) = n.child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = n.child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                return Err(NginxStartError::Exited { status, stderr: err });
            }
            if std::time::Instant::now() > deadline {
                n.stop();
                return Err(NginxStartError::NotListening);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `[error]`/`[warn]` lines of error.log.
    pub fn error_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.prefix.join("error.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("[error]") || l.contains("[warn]"))
            .map(String::from)
            .collect()
    }

    /// access.log lines (LAB_FORMAT).
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.prefix.join("access.log")).unwrap_or_default().lines().map(String::from).collect()
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
    #[test]
    fn parses_observed_access_lines() {
        let l = "11.148 GET /ok 200 0.001 \"502, 200\" \"0.000, 0.001\" \"0.000, 0.000\" \"127.0.0.1:18080, 127.0.0.1:18080\" 671 2 \"-\"";
        let a = super::parse_lab_access(l).unwrap();
        assert_eq!((a.status, a.upstream_status.clone(), a.body_bytes_sent), (200, vec![502, 200], 2));
        let l = "1.0 POST /ok 502 0.000 \"502\" \"0.000\" \"-\" \"127.0.0.1:18080\" 231 157 \"-\"";
        assert_eq!(super::parse_lab_access(l).unwrap().upstream_status, vec![502]);
    }
}
