//! One upstream attempt's I/O, phase by phase (connecting, sending request,
//! reading response header, reading upstream), each mapped to the `Failure`
//! nginx would classify it as. The head is read with nginx's own parser
//! (`nginx_model::response`), the body by nginx's framing rules, because
//! nginx's classification needs to know which syscall failed and how.

use crate::client::RequestBody;
use bytes::{Buf, BufMut, BytesMut};
use labkit::wire::{BodyDecoder, Step};
use nginx_model::failure::{errno_of, BodyFailure, Failure};
use nginx_model::response::{self, HeadParse, UpstreamBody, UpstreamHead};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A socket for `peer` bound to `local` (`proxy_bind`: `ngx_event_connect_peer`
/// binds before `connect()`); the error is bind()'s.
pub fn bound_socket(peer: SocketAddr, local: SocketAddr) -> io::Result<tokio::net::TcpSocket> {
    let socket = if peer.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.bind(local)?;
    Ok(socket)
}

/// Connects to `peer` within `limit`, from `socket` when one was bound.
pub async fn connect(peer: SocketAddr, limit: Duration, socket: Option<tokio::net::TcpSocket>) -> Result<TcpStream, Failure> {
    let attempt = async {
        match socket {
            Some(s) => s.connect(peer).await,
            None => TcpStream::connect(peer).await,
        }
    };
    match timeout(limit, attempt).await {
        Err(_) => Err(Failure::ConnectTimeout),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err(Failure::ConnectRefused),
        Ok(Err(e)) => Err(Failure::ConnectFailed(errno_of(&e))),
        // No TCP_NODELAY: nginx sets it on a client connection that turns
        // keep-alive (`tcp_nodelay`) and on an upgraded tunnel, never on a
        // plain upstream connection (strace of nginx 1.22.1: no setsockopt
        // on upstream sockets), so a body's later pieces meet Nagle as
        // nginx's do.
        Ok(Ok(s)) => Ok(s),
    }
}

/// Writes the request as nginx's output chain does: the head with the
/// first `piece` bytes of the body, then the rest `piece` bytes at a time
/// (`u->output.bufs` is one `client_body_buffer_size` buffer, refilled from
/// the temp file), each write under `proxy_send_timeout`. A reset in the
/// middle is a `writev()` failure while sending, as nginx logs it.
pub async fn send(stream: &mut TcpStream, head: &[u8], body: &mut RequestBody, limit: Duration, piece: usize) -> Result<usize, Failure> {
    let piece = piece.max(1);
    let mut early = false;
    // A request without a body goes out as its head, uncopied.
    if body.len() == 0 && matches!(body, RequestBody::Memory(_)) {
        write_piece(stream, head, limit, &mut early).await?;
        return Ok(head.len());
    }
    let mut out = head.to_vec();
    match body {
        RequestBody::Memory(b) => {
            let n = b.len().min(piece);
            out.extend_from_slice(&b[..n]);
            write_piece(stream, &out, limit, &mut early).await?;
            for chunk in b[n..].chunks(piece) {
                write_piece(stream, chunk, limit, &mut early).await?;
            }
        }
        RequestBody::File { file, len, .. } => {
            // An I/O error on our own temp file: the lab treats it as a failed send.
            let io_fail = |_| Failure::SendFailed(5);
            file.seek(io::SeekFrom::Start(0)).await.map_err(io_fail)?;
            let mut buf = vec![0u8; piece];
            let mut left = *len;
            while left > 0 {
                let want = (left as usize).min(piece);
                file.read_exact(&mut buf[..want]).await.map_err(io_fail)?;
                left -= want as u64;
                out.extend_from_slice(&buf[..want]);
                write_piece(stream, &out, limit, &mut early).await?;
                out.clear();
            }
            if !out.is_empty() {
                write_piece(stream, &out, limit, &mut early).await?;
            }
        }
    }
    Ok(head.len() + body.len() as usize)
}

/// Writes one piece as `ngx_output_chain` does: `writev()` until it would
/// block, then wait for the socket under `proxy_send_timeout`. While
/// waiting, nginx's read handler runs before its write handler
/// (`ngx_epoll_process_events` calls `rev->handler` first, and an error or
/// hang-up sets both EPOLLIN and EPOLLOUT): a reset that comes while nginx
/// waits is found by `recv()` in `ngx_http_upstream_process_header`, "while
/// reading response header"; one that comes while it is writing fails the
/// next `writev()`. Bytes the upstream sends early are left for the head
/// reader (`early` remembers them, so they do not wake this wait again).
async fn write_piece(stream: &TcpStream, mut buf: &[u8], limit: Duration, early: &mut bool) -> Result<(), Failure> {
    while !buf.is_empty() {
        match stream.try_write(buf) {
            Ok(n) => {
                buf = &buf[n..];
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Failure::SendFailed(errno_of(&e))),
        }
        let waited = timeout(limit, async {
            loop {
                tokio::select! {
                    biased;
                    r = stream.readable(), if !*early => {
                        r.map_err(|e| Failure::RecvFailed(errno_of(&e)))?;
                        let mut one = [std::mem::MaybeUninit::<u8>::uninit(); 1];
                        let peeked = stream.try_io(tokio::io::Interest::READABLE, || socket2::SockRef::from(stream).peek(&mut one));
                        match peeked {
                            Ok(0) => return Err(Failure::PrematureClose),
                            Ok(_) => *early = true,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                            Err(e) => return Err(Failure::RecvFailed(errno_of(&e))),
                        }
                    }
                    r = stream.writable() => return r.map_err(|e| Failure::SendFailed(errno_of(&e))),
                }
            }
        })
        .await;
        match waited {
            Err(_) => return Err(Failure::SendTimeout),
            Ok(r) => r?,
        }
    }
    Ok(())
}

/// The upstream's head, or HTTP/0.9 (no valid status line).
pub enum Head {
    Http(UpstreamHead),
    Http09,
}

/// Reads until the header is complete, `proxy_read_timeout` bounding each
/// read, within `proxy_buffer_size`. Returns the head and the bytes after
/// it (for HTTP/0.9: every byte read, which the client gets as they are).
pub async fn read_head(stream: &mut TcpStream, read_timeout: Duration, buffer_size: usize) -> Result<(Head, BytesMut), Failure> {
    let chunk = buffer_size.min(64 * 1024);
    let mut buf = BytesMut::with_capacity(chunk);
    loop {
        if !buf.is_empty() {
            match response::parse_head(&buf) {
                HeadParse::Again => {}
                HeadParse::Http09 => return Ok((Head::Http09, buf)),
                HeadParse::Invalid(excerpt) => return Err(Failure::InvalidHeaderLine(excerpt)),
                HeadParse::Done(h, n) => {
                    buf.advance(n);
                    return Ok((Head::Http(h), buf));
                }
            }
        }
        if buf.len() >= buffer_size {
            return Err(Failure::TooBigHeader);
        }
        // One read of at most `room` bytes, straight into the buffer's
        // spare room (no zeroed chunk to copy from).
        let room = (buffer_size - buf.len()).min(chunk);
        buf.reserve(room);
        match timeout(read_timeout, stream.read_buf(&mut (&mut buf).limit(room))).await {
            Err(_) => return Err(Failure::ReadTimeout),
            Ok(Ok(0)) => return Err(Failure::PrematureClose),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(Failure::RecvFailed(errno_of(&e))),
        }
    }
}

/// Reads an upstream body by nginx's framing ("reading upstream"), one
/// buffer at a time: the data decoded from one read goes out as one piece,
/// as nginx's event pipe passes one buffer chain per read.
pub struct BodyReader {
    buf: BytesMut,
    decoder: BodyDecoder,
    read_timeout: Duration,
    /// Bytes that came after a length-delimited body (nginx warns).
    pub extra: bool,
}

impl BodyReader {
    pub fn new(body: UpstreamBody, leftover: BytesMut, read_timeout: Duration) -> BodyReader {
        BodyReader { buf: leftover, decoder: BodyDecoder::new(body.framing()), read_timeout, extra: false }
    }

    /// Whether the body has a known end (length or chunked) rather than EOF.
    pub fn delimited(&self) -> bool {
        self.decoder.delimited()
    }

    /// Decodes what is buffered: the data, and whether the body is done.
    pub fn decode(&mut self) -> Result<(Vec<u8>, bool), BodyFailure> {
        let mut out = Vec::new();
        loop {
            match self.decoder.step(&self.buf).map_err(|_| BodyFailure::InvalidChunked)? {
                Step::Skip(n) => self.buf.advance(n),
                Step::Data(n) => {
                    out.extend_from_slice(&self.buf[..n]);
                    self.buf.advance(n);
                }
                Step::Done(n) => {
                    self.buf.advance(n);
                    self.extra = !self.buf.is_empty() && self.decoder.delimited();
                    return Ok((out, true));
                }
                // A line that never ends is not waited for.
                Step::NeedMore if self.buf.len() > response::MAX_CHUNK_LINE => return Err(BodyFailure::InvalidChunked),
                Step::NeedMore => return Ok((out, false)),
            }
        }
    }

    /// One read from the upstream; `Ok(false)` at EOF (an error if the body
    /// was not complete).
    pub async fn fill(&mut self, stream: &mut TcpStream) -> Result<bool, BodyFailure> {
        // One read of at most 16 KiB into the buffer's spare room.
        self.buf.reserve(16384);
        match timeout(self.read_timeout, stream.read_buf(&mut (&mut self.buf).limit(16384))).await {
            Err(_) => Err(BodyFailure::ReadTimeout),
            Ok(Ok(0)) => match self.decoder.eof() {
                Ok(()) => Ok(false),
                Err(_) => Err(BodyFailure::PrematureClose),
            },
            Ok(Ok(_)) => Ok(true),
            Ok(Err(e)) => Err(BodyFailure::RecvFailed(errno_of(&e))),
        }
    }

    /// Raw bytes (HTTP/0.9): what is buffered.
    pub fn take_raw(&mut self) -> Vec<u8> {
        self.buf.split().to_vec()
    }
}
