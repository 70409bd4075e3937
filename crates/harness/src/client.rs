//! A raw TCP HTTP/1.x client that reports what a peer sees on the wire:
//! status, framing, body bytes, and whether the connection ended with FIN,
//! RST or not at all. Scenario runs and wire probes use it against any
//! backend. Responses are read with `labkit::wire` (the head parser and
//! body decoder the emulators use), requests are built by [`Request`].

use labkit::wire::{BodyDecoder, ResponseHead, Step};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

pub use labkit::wire::BodyFraming;

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

/// One request, as bytes on the wire: `METHOD path HTTP/1.x`, a Host
/// header, and, when it has a body, `Content-Length` and that many bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// `HTTP/1.0` instead of `HTTP/1.1`.
    pub http10: bool,
    /// Body bytes; `None` sends no `Content-Length`.
    pub body: Option<usize>,
    /// Adds `Connection: close`.
    pub close: bool,
}

impl Request {
    /// `method path` without a body.
    pub fn new(method: &str, path: &str) -> Request {
        Request { method: method.to_string(), path: path.to_string(), http10: false, body: None, close: false }
    }

    pub fn get(path: &str) -> Request {
        Request::new("GET", path)
    }

    /// `POST path` with `body_len` bytes of body.
    pub fn post(path: &str, body_len: usize) -> Request {
        Request::new("POST", path).with_body(body_len)
    }

    pub fn with_body(self, body_len: usize) -> Request {
        Request { body: Some(body_len), ..self }
    }

    pub fn http10(self) -> Request {
        Request { http10: true, ..self }
    }

    pub fn close(self) -> Request {
        Request { close: true, ..self }
    }

    pub fn encode(&self) -> Vec<u8> {
        let version = if self.http10 { "HTTP/1.0" } else { "HTTP/1.1" };
        let mut head = format!("{} {} {version}\r\nHost: lab\r\n", self.method, self.path);
        if self.close {
            head.push_str("Connection: close\r\n");
        }
        if let Some(n) = self.body {
            head.push_str(&format!("Content-Length: {n}\r\n"));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.resize(bytes.len() + self.body.unwrap_or(0), b'p');
        bytes
    }
}

/// One response as read off the wire.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WireResponse {
    pub status: u16,
    pub http11: bool,
    pub framing: BodyFraming,
    /// The response carried `Connection: close`.
    pub connection_close: bool,
    pub body_len: usize,
    /// The framing said the body was complete.
    pub complete: bool,
}

/// What one exchange produced: a response (or none), and how the connection
/// ended if it did while we were reading.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Exchange {
    /// `None` when no complete head arrived, or it was not HTTP/1.
    pub response: Option<WireResponse>,
    /// Set when the connection ended during the read (EOF/RST).
    pub end: Option<ConnEnd>,
    pub elapsed: Duration,
}

pub struct WireClient {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The last request sent with [`WireClient::send_request`] was HEAD: its
    /// response has no body whatever its head says.
    head_request: bool,
}

impl WireClient {
    pub async fn connect(addr: SocketAddr) -> io::Result<WireClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(WireClient { stream, buf: Vec::new(), head_request: false })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Sends bytes; a failure (the peer already reset) is reported, not fatal.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub async fn send_request(&mut self, r: &Request) -> io::Result<()> {
        self.head_request = r.method == "HEAD";
        self.send(&r.encode()).await
    }

    /// `GET path HTTP/1.1` with a Host header.
    pub async fn get(&mut self, path: &str) -> io::Result<()> {
        self.send_request(&Request::get(path)).await
    }

    /// `POST path` with `body_len` bytes of body.
    pub async fn post(&mut self, path: &str, body_len: usize) -> io::Result<()> {
        self.send_request(&Request::post(path, body_len)).await
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
            // ECONNRESET, and any other read error, ends the connection abruptly.
            Ok(Err(_)) => Err(Some(ConnEnd::Rst)),
        }
    }

    /// Reads one response within `timeout`, following its framing.
    pub async fn read_response(&mut self, timeout: Duration) -> Exchange {
        self.read_response_paused(timeout, Duration::ZERO).await
    }

    /// Like [`read_response`](Self::read_response), but once the head has
    /// arrived the client stops reading for `pause` (a slow client): what
    /// follows backs up through the socket buffers to the sender's writes.
    /// The pause counts within `timeout`.
    pub async fn read_response_paused(&mut self, timeout: Duration, pause: Duration) -> Exchange {
        let start = Instant::now();
        let deadline = start + timeout;
        let done = |response, end| Exchange { response, end, elapsed: start.elapsed() };
        let head = loop {
            match ResponseHead::parse(&self.buf) {
                Ok(Some((head, n))) => {
                    self.buf.drain(..n);
                    break head;
                }
                // Not HTTP/1: nothing to follow.
                Err(_) => return done(None, None),
                Ok(None) => {
                    if let Err(end) = self.read_more(deadline).await {
                        return done(None, end);
                    }
                }
            }
        };
        let framing = head.framing(self.head_request);
        if !pause.is_zero() {
            tokio::time::sleep_until(deadline.min(Instant::now() + pause)).await;
        }
        let (body_len, complete, end) = self.read_body(framing, deadline).await;
        let connection_close =
            head.headers.iter().any(|(n, v)| n.eq_ignore_ascii_case("connection") && v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")));
        let resp = WireResponse { status: head.status, http11: head.http11, framing, connection_close, body_len, complete };
        done(Some(resp), end)
    }

    /// Reads a body by its framing: (body bytes, whether it was complete,
    /// how the connection ended if it did).
    async fn read_body(&mut self, framing: BodyFraming, deadline: Instant) -> (usize, bool, Option<ConnEnd>) {
        let mut d = BodyDecoder::new(framing);
        let mut body_len = 0;
        loop {
            match d.step(&self.buf) {
                Ok(Step::Skip(n)) => drop(self.buf.drain(..n)),
                Ok(Step::Data(n)) => {
                    body_len += n;
                    self.buf.drain(..n);
                }
                Ok(Step::Done(n)) => {
                    self.buf.drain(..n);
                    return (body_len, true, None);
                }
                // A malformed chunk: report what arrived, incomplete.
                Err(_) => return (body_len, false, None),
                Ok(Step::NeedMore) => {
                    if let Err(end) = self.read_more(deadline).await {
                        // Only a FIN ends a close-delimited body; an RST or
                        // the deadline leaves any body incomplete.
                        let complete = end == Some(ConnEnd::Fin) && d.eof().is_ok();
                        return (body_len, complete, end);
                    }
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::Request;

    #[test]
    fn requests_on_the_wire() {
        assert_eq!(Request::get("/ok").encode(), b"GET /ok HTTP/1.1\r\nHost: lab\r\n\r\n");
        assert_eq!(Request::post("/x", 3).encode(), b"POST /x HTTP/1.1\r\nHost: lab\r\nContent-Length: 3\r\n\r\nppp");
        assert_eq!(Request::new("DELETE", "/x").with_body(0).http10().encode(), b"DELETE /x HTTP/1.0\r\nHost: lab\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(Request::get("/mark?n=1").close().encode(), b"GET /mark?n=1 HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
    }
}
