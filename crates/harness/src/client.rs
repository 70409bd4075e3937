//! A raw TCP HTTP/1.x client that reports what a peer sees on the wire:
//! status, framing, body bytes, and whether the connection ended with FIN,
//! RST or not at all. Scenario runs and wire probes use it against any
//! backend.

use labkit::chunked::Step;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
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
                let mut d = labkit::chunked::Decoder::default();
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

