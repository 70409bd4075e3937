//! One upstream attempt's I/O, phase by phase (connecting, sending request,
//! reading response header, reading upstream), each mapped to the `Failure`
//! nginx would classify it as. The bytes are read with `labkit::wire`; the
//! framing is ours rather than a client library's, because nginx's
//! classification needs to know which syscall failed and how.

use bytes::{Buf, Bytes, BytesMut};
use labkit::wire::{BodyDecoder, BodyFraming, ResponseHead, Step};
use nginx_model::failure::{errno_of, BodyFailure, Failure};
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

/// Reads until the header is complete, `proxy_read_timeout` bounding each
/// read, within `proxy_buffer_size`. Returns the head and any body bytes
/// that came with it.
pub async fn read_head(stream: &mut TcpStream, read_timeout: Duration, buffer_size: usize) -> Result<(ResponseHead, BytesMut), Failure> {
    let mut buf = BytesMut::with_capacity(buffer_size);
    loop {
        if !buf.is_empty() {
            if let Some((head, n)) = ResponseHead::parse(&buf).map_err(|_| Failure::InvalidHeader)? {
                buf.advance(n);
                return Ok((head, buf));
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

/// Reads an upstream body by its framing ("reading upstream").
pub struct BodyReader {
    buf: BytesMut,
    decoder: BodyDecoder,
    read_timeout: Duration,
}

impl BodyReader {
    pub fn new(framing: BodyFraming, leftover: BytesMut, read_timeout: Duration) -> BodyReader {
        BodyReader { buf: leftover, decoder: BodyDecoder::new(framing), read_timeout }
    }

    /// The body ended by its framing (or, close-delimited, by EOF).
    pub fn is_done(&self) -> bool {
        self.decoder.is_done()
    }

    /// Whether the body has a known end (length or chunked) rather than EOF.
    pub fn delimited(&self) -> bool {
        self.decoder.delimited()
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
            // A malformed chunk is treated like a cut body.
            match self.decoder.step(&self.buf).map_err(|_| BodyFailure::PrematureClose)? {
                Step::Skip(n) => {
                    self.buf.advance(n);
                    continue;
                }
                Step::Data(n) => return Ok(Some(self.buf.split_to(n).freeze())),
                Step::Done(n) => {
                    self.buf.advance(n);
                    return Ok(None);
                }
                Step::NeedMore => {}
            }
            if self.fill(stream).await? == 0 {
                return match self.decoder.eof() {
                    Ok(()) => Ok(None),
                    Err(_) => Err(BodyFailure::PrematureClose),
                };
            }
        }
    }
}
