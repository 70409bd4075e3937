//! One upstream attempt's I/O, phase by phase (connecting, sending request,
//! reading response header, reading upstream), each mapped to the
//! `Failure` nginx would classify it as. The framing is ours, with httparse
//! for the header: nginx's classification needs to know which syscall failed
//! and how, which a client library hides.

use nginx_model::failure::{errno_of, BodyFailure, Failure};
use bytes::{Buf, Bytes, BytesMut};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

pub async fn connect(peer: SocketAddr, limit: Duration) -> Result<TcpStream, Failure> {
    match timeout(limit, TcpStream::connect(peer)).await {
        Err(_) => Err(Failure::ConnectTimeout),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err(Failure::ConnectRefused),
        Ok(Err(e)) => Err(Failure::ConnectFailed(errno_of(&e))),
        Ok(Ok(s)) => {
            let _ = s.set_nodelay(true);
            Ok(s)
        }
    }
}

/// Writes the whole request under `proxy_send_timeout`.
pub async fn send(stream: &mut TcpStream, req: &[u8], limit: Duration) -> Result<(), Failure> {
    match timeout(limit, stream.write_all(req)).await {
        Err(_) => Err(Failure::SendTimeout),
        Ok(Err(e)) => Err(Failure::SendFailed(errno_of(&e))),
        Ok(Ok(())) => Ok(()),
    }
}

#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub http11: bool,
    pub headers: Vec<(String, String)>,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// `Connection: close`, or an HTTP/1.0 status line (never kept alive).
    pub connection_close: bool,
}

/// Reads until the header is complete, `proxy_read_timeout` bounding each
/// read, within `proxy_buffer_size`. Returns the head and any body bytes
/// that came with it.
pub async fn read_head(stream: &mut TcpStream, read_timeout: Duration, buffer_size: usize) -> Result<(ResponseHead, BytesMut), Failure> {
    let mut buf = BytesMut::with_capacity(buffer_size);
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; 100];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let head = head_from(&r)?;
                    buf.advance(n);
                    return Ok((head, buf));
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(Failure::InvalidHeader),
            }
        }
        if buf.len() >= buffer_size {
            return Err(Failure::TooBigHeader);
        }
        let mut chunk = vec![0u8; buffer_size - buf.len()];
        match timeout(read_timeout, stream.read(&mut chunk)).await {
            Err(_) => return Err(Failure::ReadTimeout),
            Ok(Ok(0)) => return Err(Failure::PrematureClose),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => return Err(Failure::RecvFailed(errno_of(&e))),
        }
    }
}

fn head_from(r: &httparse::Response) -> Result<ResponseHead, Failure> {
    let status = r.code.ok_or(Failure::InvalidHeader)?;
    let http11 = r.version == Some(1);
    let mut head = ResponseHead { status, http11, headers: Vec::new(), content_length: None, chunked: false, connection_close: !http11 };
    for h in r.headers.iter() {
        let v = String::from_utf8_lossy(h.value).to_string();
        let lower = v.to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            head.content_length = Some(v.trim().parse().map_err(|_| Failure::InvalidHeader)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = lower.contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") && lower.contains("close") {
            head.connection_close = true;
        }
        head.headers.push((h.name.to_string(), v));
    }
    if head.chunked {
        head.content_length = None;
    }
    Ok(head)
}

/// Reads an upstream body by its framing ("reading upstream").
pub struct BodyReader {
    buf: BytesMut,
    framing: Framing,
    read_timeout: Duration,
    pub done: bool,
}

enum Framing {
    Length(u64),
    Chunked(labkit::chunked::Decoder),
    UntilClose,
}

impl BodyReader {
    pub fn new(head: &ResponseHead, leftover: BytesMut, read_timeout: Duration, no_body: bool) -> BodyReader {
        let framing = if no_body {
            Framing::Length(0)
        } else if head.chunked {
            Framing::Chunked(labkit::chunked::Decoder::default())
        } else if let Some(n) = head.content_length {
            Framing::Length(n)
        } else {
            Framing::UntilClose
        };
        let done = matches!(framing, Framing::Length(0));
        BodyReader { buf: leftover, framing, read_timeout, done }
    }

    /// Whether the body has a known end (length or chunked) rather than EOF.
    pub fn delimited(&self) -> bool {
        !matches!(self.framing, Framing::UntilClose)
    }

    async fn fill(&mut self, stream: &mut TcpStream) -> Result<usize, BodyFailure> {
        let mut chunk = [0u8; 16384];
        match timeout(self.read_timeout, stream.read(&mut chunk)).await {
            Err(_) => Err(BodyFailure::ReadTimeout),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Ok(Err(e)) => Err(BodyFailure::RecvFailed(errno_of(&e))),
        }
    }

    /// The next piece of body, `None` at the end. An EOF before a delimited
    /// body's end is `PrematureClose`; EOF ends a close-delimited body.
    pub async fn next(&mut self, stream: &mut TcpStream) -> Result<Option<Bytes>, BodyFailure> {
        loop {
            if self.done {
                return Ok(None);
            }
            match &mut self.framing {
                Framing::Length(left) => {
                    if !self.buf.is_empty() {
                        let n = (self.buf.len() as u64).min(*left) as usize;
                        *left -= n as u64;
                        self.done = *left == 0;
                        return Ok(Some(self.buf.split_to(n).freeze()));
                    }
                }
                Framing::UntilClose => {
                    if !self.buf.is_empty() {
                        return Ok(Some(self.buf.split().freeze()));
                    }
                }
                Framing::Chunked(decoder) => {
                    use labkit::chunked::Step;
                    // A malformed chunk is treated like a cut body.
                    match decoder.step(&self.buf).map_err(|_| BodyFailure::PrematureClose)? {
                        Step::Skip(n) => {
                            self.buf.advance(n);
                            continue;
                        }
                        Step::Data(n) => return Ok(Some(self.buf.split_to(n).freeze())),
                        Step::Done(n) => {
                            self.buf.advance(n);
                            self.done = true;
                            continue;
                        }
                        Step::NeedMore => {}
                    }
                }
            }
            if self.fill(stream).await? == 0 {
                return match self.framing {
                    Framing::UntilClose => {
                        self.done = true;
                        Ok(None)
                    }
                    _ => Err(BodyFailure::PrematureClose),
                };
            }
        }
    }
}
