//! A raw TCP HTTP/1.x client that reports what a peer sees on the wire
//! (status, framing, body bytes, and whether the connection ended with FIN,
//! RST or not at all), and a harness that runs either the emulator or the
//! real Go server (`fixtures/go-upstream`) behind the same interface.

use crate::chunked::Step;
use crate::ServerConfig;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// How a connection ended, as its peer saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum ConnEnd {
    /// read() returned 0.
    Fin,
    /// read() failed with ECONNRESET.
    Rst,
    /// Still open when we stopped waiting.
    Open,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum BodyFraming {
    ContentLength(u64),
    Chunked,
    CloseDelimited,
}

/// One response as read off the wire.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WireResponse {
    pub status: u16,
    pub http11: bool,
    pub framing: BodyFraming,
    pub connection_close: bool,
    pub body_len: usize,
    /// The framing said the body was complete.
    pub complete: bool,
}

/// What one exchange produced: a response (or none), and how the connection
/// ended if it did while we were reading.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exchange {
    pub response: Option<WireResponse>,
    /// Set when the connection ended during the read (EOF/RST).
    pub end: Option<ConnEnd>,
    pub elapsed: Duration,
}

pub struct WireClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl WireClient {
    pub async fn connect(addr: SocketAddr) -> io::Result<WireClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(WireClient { stream, buf: Vec::new() })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// Sends bytes; a failure (the peer already reset) is reported, not fatal.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// `GET path HTTP/1.1` with a Host header.
    pub async fn get(&mut self, path: &str) -> io::Result<()> {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: lab\r\n\r\n").as_bytes()).await
    }

    /// `POST path` with `body_len` bytes of body.
    pub async fn post(&mut self, path: &str, body_len: usize) -> io::Result<()> {
        let mut req = format!("POST {path} HTTP/1.1\r\nHost: lab\r\nContent-Length: {body_len}\r\n\r\n").into_bytes();
        req.resize(req.len() + body_len, b'p');
        self.send(&req).await
    }

    async fn read_more(&mut self, deadline: Instant) -> Result<usize, Option<ConnEnd>> {
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(None),
            Ok(Ok(0)) => Err(Some(ConnEnd::Fin)),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => Err(Some(ConnEnd::Rst)),
            Ok(Err(_)) => Err(Some(ConnEnd::Rst)),
        }
    }

    /// Reads one response within `timeout`, following its framing.
    pub async fn read_response(&mut self, timeout: Duration) -> Exchange {
        let start = Instant::now();
        let deadline = start + timeout;
        let done = |response, end| Exchange { response, end, elapsed: start.elapsed() };
        // Head.
        let (mut resp, head_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(n)) = r.parse(&self.buf) {
                let mut framing = BodyFraming::CloseDelimited;
                let mut connection_close = false;
                for h in r.headers.iter() {
                    let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
                    if h.name.eq_ignore_ascii_case("content-length") {
                        framing = BodyFraming::ContentLength(v.trim().parse().unwrap_or(0));
                    } else if h.name.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked") {
                        framing = BodyFraming::Chunked;
                    } else if h.name.eq_ignore_ascii_case("connection") && v.contains("close") {
                        connection_close = true;
                    }
                }
                let resp = WireResponse {
                    status: r.code.unwrap_or(0),
                    http11: r.version == Some(1),
                    framing,
                    connection_close,
                    body_len: 0,
                    complete: false,
                };
                break (resp, n);
            }
            if let Err(end) = self.read_more(deadline).await {
                return done(None, end);
            }
        };
        self.buf.drain(..head_len);
        // Body.
        let mut end = None;
        match resp.framing.clone() {
            BodyFraming::ContentLength(n) => {
                while (self.buf.len() as u64) < n {
                    if let Err(e) = self.read_more(deadline).await {
                        end = e;
                        break;
                    }
                }
                let take = (self.buf.len() as u64).min(n) as usize;
                resp.body_len = take;
                resp.complete = take as u64 == n;
                self.buf.drain(..take);
            }
            BodyFraming::CloseDelimited => loop {
                if let Err(e) = self.read_more(deadline).await {
                    end = e;
                    resp.body_len = self.buf.len();
                    resp.complete = e == Some(ConnEnd::Fin);
                    self.buf.clear();
                    break;
                }
            },
            BodyFraming::Chunked => {
                let mut d = crate::chunked::Decoder::default();
                loop {
                    match d.step(&self.buf) {
                        Ok(Step::Skip(n)) => drop(self.buf.drain(..n)),
                        Ok(Step::Data(n)) => {
                            resp.body_len += n;
                            self.buf.drain(..n);
                        }
                        Ok(Step::Done(n)) => {
                            resp.complete = true;
                            self.buf.drain(..n);
                            break;
                        }
                        // A malformed chunk: report what arrived, incomplete.
                        Err(_) => break,
                        Ok(Step::NeedMore) => {
                            if let Err(e) = self.read_more(deadline).await {
                                end = e;
                                break;
                            }
                        }
                    }
                }
            }
        }
        done(Some(resp), end)
    }

    /// Waits for the connection to end (FIN or RST) without sending.
    pub async fn wait_end(&mut self, timeout: Duration) -> (ConnEnd, Duration) {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            match self.read_more(deadline).await {
                Ok(_) => continue,
                Err(Some(end)) => return (end, start.elapsed()),
                Err(None) => return (ConnEnd::Open, start.elapsed()),
            }
        }
    }
}

// ---- backends ------------------------------------------------------------

/// Where the Go reference server's source lives.
pub fn go_fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/go-upstream")
}

/// Builds `fixtures/go-upstream` with the `go` on PATH. `Err` says why not
/// (no Go toolchain, or a build failure) so callers can print a skip reason.
pub fn build_go_upstream() -> Result<PathBuf, String> {
    static BUILT: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/go-upstream");
            std::fs::create_dir_all(&out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
            let out = out_dir.join(format!("go-upstream-{}", std::process::id()));
            let status = std::process::Command::new("go")
                .args(["build", "-o"])
                .arg(&out)
                .arg(".")
                .current_dir(go_fixture_dir())
                .env("GOFLAGS", "-mod=mod")
                .env("GOTOOLCHAIN", "local")
                .stdout(Stdio::null())
                .status()
                .map_err(|e| format!("no Go toolchain (`go` not runnable: {e}); install golang-go"))?;
            if !status.success() {
                return Err(format!("go build of {} failed: {status}", go_fixture_dir().display()));
            }
            let stable = out_dir.join("go-upstream");
            std::fs::rename(&out, &stable).map_err(|e| e.to_string())?;
            Ok(stable)
        })
        .clone()
}

/// Go-style flags for a config (shared by the Go server and upstream-sim's CLI).
pub fn go_flags(cfg: &ServerConfig) -> Vec<String> {
    use crate::godur::format;
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
                    lines.lock().unwrap().push(line);
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
        self.lines.lock().unwrap().clone()
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

/// A free loopback port (bound, then released) for programs that need a port
/// number up front.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}
