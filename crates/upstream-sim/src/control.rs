//! The lab's control endpoint (`upstream-sim --control ADDR`): a small HTTP
//! server beside the emulated Go server, so that a driver outside the
//! process (the docker-compose lab's `scenarios lab`) can do what the
//! scenario runner does through the library: choose the Go settings and lab
//! knobs of a run (the deterministic idle race among them) and read how many
//! times each handler ran.
//!
//! * `GET /config`: the running server's settings, as the command-line
//!   flags that start it (`--idle-timeout=5s --idle-race=fin ...`).
//! * `PUT /config` (or `POST`), body: flags as `upstream-sim` takes them,
//!   separated by white space. The server restarts with exactly those
//!   settings (flags not given take their defaults, not the old values) on
//!   the same address, as a restarted process would: the listener and every
//!   connection close first (idle ones with a FIN, so a proxy drops them
//!   from its keepalive cache), and the handler counters start at 0. Replies
//!   with the new settings, or 400 and the reason (nothing restarted).
//! * `GET /handler-runs`: `{"/ok": 3, ...}`, handler starts per path since
//!   the last (re)start.
//!
//! One request per connection (`Connection: close`), bodies up to 64 KiB.
//! It has no authentication: bind it where only the lab reaches it (the
//! compose file publishes it on 127.0.0.1).

use crate::server::UpstreamSim;
use crate::events::EventKind;
use go_model::{godur, GoVersion, IdleRace, ServerConfig};
use labkit::events::Retention;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Reads a whitespace-separated flag list into the settings it asks for
/// (the binary passes its own command-line parser).
pub type FlagParser = dyn Fn(&[String]) -> Result<ServerConfig, String> + Send + Sync;

/// The events a controlled server keeps: enough to see its listener close
/// when it is restarted or shut down, and a bound all the same.
const RETENTION: Retention = Retention::Last(4096);
/// How long a restart waits for the old listener to close.
const CLOSE_LIMIT: Duration = Duration::from_secs(5);
/// The largest request the endpoint reads.
const MAX_REQUEST: usize = 64 * 1024;
/// How long a control client may take to send its request.
const READ_LIMIT: Duration = Duration::from_secs(5);

/// The emulated server under control: restartable with new settings.
pub struct Controlled {
    addr: SocketAddr,
    parse: Box<FlagParser>,
    sim: tokio::sync::Mutex<UpstreamSim>,
}

/// Why `PUT /config` changed nothing (400) or left no server (500).
#[derive(Debug, thiserror::Error)]
pub enum ReconfigureError {
    #[error("{0}")]
    BadFlags(String),
    #[error("the old server's listener did not close within {} s", CLOSE_LIMIT.as_secs())]
    NotClosed,
    #[error("cannot listen on {addr} again: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
}

impl Controlled {
    /// Starts the server on `bind`; `parse` reads the flags of `PUT /config`.
    pub async fn start(cfg: ServerConfig, bind: SocketAddr, parse: Box<FlagParser>) -> io::Result<Arc<Controlled>> {
        let sim = UpstreamSim::start_with_epoch(cfg, bind, Instant::now(), RETENTION).await?;
        Ok(Arc::new(Controlled { addr: sim.local_addr(), parse, sim: tokio::sync::Mutex::new(sim) }))
    }

    /// Where the Go server listens (not the control endpoint).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub async fn config(&self) -> ServerConfig {
        self.sim.lock().await.config().clone()
    }

    pub async fn handler_runs(&self) -> BTreeMap<String, u64> {
        self.sim.lock().await.handler_runs()
    }

    /// Restarts the server with the settings `words` ask for.
    pub async fn reconfigure(&self, words: &[String]) -> Result<ServerConfig, ReconfigureError> {
        let cfg = (self.parse)(words).map_err(ReconfigureError::BadFlags)?;
        let mut sim = self.sim.lock().await;
        sim.crash();
        let (closed, _) = sim
            .events()
            .wait_for(CLOSE_LIMIT, |ev| ev.iter().any(|e| matches!(e.kind, EventKind::ListenerClosed)))
            .await;
        if !closed {
            return Err(ReconfigureError::NotClosed);
        }
        let new = UpstreamSim::start_with_epoch(cfg.clone(), self.addr, Instant::now(), RETENTION)
            .await
            .map_err(|source| ReconfigureError::Listen { addr: self.addr, source })?;
        tracing::info!(target: "upstream_sim", flags = %flags(&cfg).join(" "), "restarted by the control endpoint");
        *sim = new;
        Ok(cfg)
    }

    /// `Shutdown` of the running server; see [`UpstreamSim::shutdown`].
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.sim.lock().await.shutdown(grace).await
    }
}

/// Settings as the command-line flags that ask for them: every Go setting,
/// the release, the backlog and the idle-race knob when it is on.
pub fn flags(cfg: &ServerConfig) -> Vec<String> {
    let mut f = vec![
        format!("--read-timeout={}", godur::format(cfg.read_timeout)),
        format!("--read-header-timeout={}", godur::format(cfg.read_header_timeout)),
        format!("--write-timeout={}", godur::format(cfg.write_timeout)),
        format!("--idle-timeout={}", godur::format(cfg.idle_timeout)),
        format!("--max-header-bytes={}", cfg.max_header_bytes),
        format!("--keepalives={}", cfg.keep_alives),
        format!("--go-version={}", go_version_word(cfg.go_version)),
        format!("--backlog={}", cfg.backlog),
    ];
    if let Some(r) = cfg.idle_race {
        f.push(format!("--idle-race={}", race_word(r)));
    }
    f
}

pub fn go_version_word(v: GoVersion) -> &'static str {
    match v {
        GoVersion::Go119 => "1.19",
        GoVersion::Go120 => "1.20",
    }
}

pub fn race_word(r: IdleRace) -> &'static str {
    match r {
        IdleRace::Fin => "fin",
        IdleRace::Rst => "rst",
    }
}

/// `--idle-race`'s values.
pub fn parse_race(s: &str) -> Result<IdleRace, String> {
    match s {
        "fin" => Ok(IdleRace::Fin),
        "rst" => Ok(IdleRace::Rst),
        _ => Err(format!("{s:?}: the idle race closes with \"fin\" or \"rst\"")),
    }
}

/// Serves the control endpoint on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, ctl: Arc<Controlled>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let ctl = ctl.clone();
        tokio::spawn(async move {
            if let Err(e) = handle(stream, &ctl).await {
                tracing::debug!(target: "upstream_sim", "control connection: {e}");
            }
        });
    }
}

const HELP: &str = "upstream-sim control endpoint
  GET  /config         the running settings, as upstream-sim flags
  PUT  /config         body: upstream-sim flags; restarts the server with them
  GET  /handler-runs   handler starts per path since the last (re)start (JSON)
";

async fn handle(mut stream: TcpStream, ctl: &Controlled) -> io::Result<()> {
    let (method, path, body) = match tokio::time::timeout(READ_LIMIT, read_request(&mut stream)).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => return respond(&mut stream, 400, "text/plain", "bad request\n").await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return respond(&mut stream, 408, "text/plain", "request timed out\n").await,
    };
    let path = path.split('?').next().unwrap_or_default().to_string();
    match (method.as_str(), path.as_str()) {
        ("GET", "/") => respond(&mut stream, 200, "text/plain", HELP).await,
        ("GET", "/config") => {
            let line = flags(&ctl.config().await).join(" ");
            respond(&mut stream, 200, "text/plain", &format!("{line}\n")).await
        }
        ("PUT" | "POST", "/config") => {
            let words: Vec<String> = String::from_utf8_lossy(&body).split_whitespace().map(String::from).collect();
            match ctl.reconfigure(&words).await {
                Ok(cfg) => respond(&mut stream, 200, "text/plain", &format!("{}\n", flags(&cfg).join(" "))).await,
                Err(e @ ReconfigureError::BadFlags(_)) => respond(&mut stream, 400, "text/plain", &format!("{e}\n")).await,
                Err(e) => respond(&mut stream, 500, "text/plain", &format!("{e}\n")).await,
            }
        }
        ("GET", "/handler-runs") => {
            let json = serde_json::to_string(&ctl.handler_runs().await).unwrap_or_else(|_| "{}".into());
            respond(&mut stream, 200, "application/json", &format!("{json}\n")).await
        }
        (_, "/" | "/config" | "/handler-runs") => respond(&mut stream, 405, "text/plain", HELP).await,
        _ => respond(&mut stream, 404, "text/plain", HELP).await,
    }
}

/// One request: method, target and body (Content-Length), or `None` when
/// it is not HTTP/1 or too large.
async fn read_request(stream: &mut TcpStream) -> io::Result<Option<(String, String, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(head)) => {
                let len = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                // A client-chosen length: no overflow on the way to the bound.
                if head.saturating_add(len) > MAX_REQUEST {
                    return Ok(None);
                }
                let (method, path) = (req.method.unwrap_or_default().to_string(), req.path.unwrap_or_default().to_string());
                while buf.len() < head + len {
                    let n = stream.read(&mut chunk).await?;
                    if n == 0 {
                        return Ok(None);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Ok(Some((method, path, buf[head..head + len].to_vec())));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => {}
            _ => return Ok(None),
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn respond(stream: &mut TcpStream, status: u16, ctype: &str, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        _ => "Internal Server Error",
    };
    let head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
