//! Go's response writer without I/O: the exact bytes of each `write(2)`.
//!
//! A handler's `Write` goes through three layers before the socket, as in
//! Go 1.19's `server.go`:
//!
//! 1. `response.w`, a 2 KiB `bufio.Writer` (`bufferBeforeChunkingSize`);
//! 2. the `chunkWriter`: on its first write (or on `Flush`, or when the
//!    handler returns) `chunkWriter.writeHeader` decides the framing and the
//!    connection's fate ([`rules::close_before_body_check`],
//!    [`rules::body_at_header_write`], [`rules::response_framing`]) and puts
//!    the head into the next layer; then it frames chunks;
//! 3. `conn.bufw`, a 4 KiB `bufio.Writer` over `checkConnErrorWriter`,
//!    which records the first socket error in `c.werr`.
//!
//! Errors are sticky as in Go: a `bufio.Writer` that failed once writes
//! nothing more, so after a failed socket write no byte reaches the socket;
//! a failed `chunkWriter.Write` closes the socket at once
//! (`cw.res.conn.rwc.Close()`).
//!
//! The writer asks its caller, through [`Io`], for everything outside it:
//! the outcome of each socket write, `doKeepAlives()` and the Date when the
//! head is written, and the reading of unread request body bytes (which Go
//! does at header time and in `(*body).Close`). A caller that cannot answer
//! yet returns [`Suspended`]; [`crate::exchange`] replays the call once the
//! answer is in, which is exact because the writer is deterministic.

use crate::bufio::{plan_write, plan_write_string, BufOp};
use crate::rules::{self, BodyAtHeaderWrite, BodyOnClose, ReplyState, RequestFacts, MAX_POST_HANDLER_READ_BYTES};
use labkit::wire::BodyFraming;
use std::fmt::Write as _;

/// A socket write failed: the write deadline passed, or the peer is gone.
/// Go records the first one in `c.werr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("socket write failed")]
pub struct WriteFailed;

/// What `(*response).Write` returns to the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// A socket write failed, now or before (the buffers' errors are sticky).
    #[error("write failed")]
    Failed,
    /// `http.ErrContentLength`: more bytes than the declared Content-Length.
    #[error("http: wrote more than the declared Content-Length")]
    ContentLength,
    /// `http.ErrBodyNotAllowed`: the status has no body (1xx, 204, 304).
    #[error("http: request method or response status code does not allow body")]
    BodyNotAllowed,
}

/// The caller cannot answer yet: the call stops and is replayed later with
/// the answer (see [`crate::exchange`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspended;

/// What `chunkWriter.writeHeader` reads from outside when it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInputs {
    /// `w.conn.server.doKeepAlives()`: false once keep-alives are disabled
    /// or Shutdown began.
    pub keep_alives: bool,
    /// `time.Now()` as an HTTP date (29 bytes, e.g. `httpdate::fmt_http_date`).
    pub date: String,
}

/// How a read-and-discard of request body bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyRead {
    /// Body bytes read and discarded.
    pub bytes: u64,
    /// A read failed (read deadline, reset, EOF before the body's end, a
    /// malformed chunk).
    pub failed: bool,
    /// The body's end was reached (for a length, implied by the bytes; a
    /// chunked body says so with its last chunk).
    pub eof: bool,
}

/// Everything the writer needs from the connection, asked at the moment Go
/// would do it.
pub trait Io {
    /// `chunkWriter.writeHeader` starts.
    fn header_inputs(&mut self) -> Result<HeaderInputs, Suspended>;
    /// The head is decided; its bytes go into `conn.bufw` next.
    fn head_decided(&mut self, status: u16, framing: BodyFraming) -> Result<(), Suspended>;
    /// Read and discard up to `max` request body bytes (never past the
    /// body's end): `io.CopyN(io.Discard, body, max)`.
    fn discard_body(&mut self, max: u64) -> Result<BodyRead, Suspended>;
    /// One `write(2)` of these bytes, all or nothing.
    fn write(&mut self, bytes: &[u8]) -> Result<Result<(), WriteFailed>, Suspended>;
    /// `rwc.Close()`: a `chunkWriter` write failed.
    fn close(&mut self) -> Result<(), Suspended>;
}

type Sus<T> = Result<T, Suspended>;
type Wrote = Result<(), WriteFailed>;

/// A `bufio.Writer`: `size` bytes, and a sticky error.
#[derive(Debug, Clone)]
struct Buf {
    size: usize,
    data: Vec<u8>,
    failed: bool,
}

impl Buf {
    fn new(size: usize) -> Buf {
        Buf { size, data: Vec::with_capacity(size), failed: false }
    }

    /// `bufio.Writer.Write` (`string: false`) or `WriteString` (`true`).
    fn write(&mut self, p: &[u8], string: bool, next: &mut dyn FnMut(&[u8]) -> Sus<Wrote>) -> Sus<Wrote> {
        if self.failed {
            return Ok(Err(WriteFailed));
        }
        let plan = if string { plan_write_string } else { plan_write }(self.data.len(), self.size, p.len());
        for op in plan {
            match op {
                BufOp::WriteDirect(r) => {
                    if next(&p[r])?.is_err() {
                        self.failed = true;
                        return Ok(Err(WriteFailed));
                    }
                }
                BufOp::FillAndFlush(r) => {
                    self.data.extend_from_slice(&p[r]);
                    if self.flush(next)?.is_err() {
                        return Ok(Err(WriteFailed));
                    }
                }
                BufOp::Buffer(r) => self.data.extend_from_slice(&p[r]),
            }
        }
        Ok(Ok(()))
    }

    /// `bufio.Writer.Flush`: on failure the bytes stay and the error sticks.
    fn flush(&mut self, next: &mut dyn FnMut(&[u8]) -> Sus<Wrote>) -> Sus<Wrote> {
        if self.failed {
            return Ok(Err(WriteFailed));
        }
        if self.data.is_empty() {
            return Ok(Ok(()));
        }
        if next(&self.data)?.is_err() {
            self.failed = true;
            return Ok(Err(WriteFailed));
        }
        self.data.clear();
        Ok(Ok(()))
    }
}

/// The request body as the response sees it (`w.reqBody`, a `*body` over
/// an `io.LimitedReader`).
#[derive(Debug, Clone, Copy)]
struct Body {
    /// `lr.N`: declared bytes not yet read through the body (bytes already
    /// in Go's `bufio.Reader` count as unread).
    unread: u64,
    /// Chunked (`unreadDataSizeLocked` is -1): `unread` is 1 until the
    /// last chunk was read, then 0.
    chunked: bool,
    /// `t.Close`: the request closes the connection after its reply.
    closing: bool,
    /// `b.closed`.
    closed: bool,
    /// `b.earlyClose`.
    early_close: bool,
}

/// The handler-side state of `response`.
#[derive(Debug, Clone)]
struct Res {
    req: RequestFacts,
    /// `handlerHeader`, canonical keys, one value each (`Header.Set`).
    header: Vec<(String, String)>,
    /// `w.status`, set by `WriteHeader` (`w.wroteHeader` is `is_some()`).
    status: Option<u16>,
    /// `w.contentLength`: declared, or set by `writeHeader`.
    content_length: Option<u64>,
    /// `w.written`.
    written: u64,
    /// `w.handlerDone`.
    handler_done: bool,
    /// `w.closeAfterReply`.
    close_after_reply: bool,
    /// `w.requestBodyLimitHit`.
    request_body_limit_hit: bool,
    body: Body,
}

/// `chunkWriter` and the connection's side: everything below `response.w`.
#[derive(Debug, Clone)]
struct Below {
    res: Res,
    /// `cw.wroteHeader`.
    wrote_header: bool,
    /// `cw.chunking`.
    chunking: bool,
    /// `conn.bufw`.
    bufw: Buf,
    /// `c.werr` is set.
    werr: bool,
    /// `rwc.Close()` ran.
    rwc_closed: bool,
}

/// Go's `response` with its `chunkWriter` and the connection's `bufw`.
#[derive(Debug, Clone)]
pub struct ResponseWriter {
    /// `response.w`.
    w: Buf,
    below: Below,
}

impl ResponseWriter {
    /// A response to a request with these facts and `body_len` declared
    /// request body bytes, none read yet.
    pub fn new(req: RequestFacts, body_len: u64) -> ResponseWriter {
        let res = Res {
            req,
            header: Vec::new(),
            status: None,
            content_length: None,
            written: 0,
            handler_done: false,
            close_after_reply: false,
            request_body_limit_hit: false,
            body: Body { unread: body_len, chunked: false, closing: req.closing(), closed: false, early_close: false },
        };
        ResponseWriter {
            w: Buf::new(rules::RESPONSE_BUFFER),
            below: Below {
                res,
                wrote_header: false,
                chunking: false,
                bufw: Buf::new(rules::CONN_BUFFER),
                werr: false,
                rwc_closed: false,
            },
        }
    }

    /// A response to a request with a chunked body, none read yet.
    pub fn with_chunked_body(req: RequestFacts) -> ResponseWriter {
        let mut w = ResponseWriter::new(req, 1);
        w.below.res.body.chunked = true;
        w
    }

    /// `w.Header().Set(name, value)`. Go snapshots the header at
    /// `WriteHeader`, so later calls change nothing on the wire.
    pub fn set_header(&mut self, name: &str, value: &str) {
        let res = &mut self.below.res;
        if res.status.is_some() {
            return;
        }
        let key = canonical_key(name);
        match res.header.iter_mut().find(|(k, _)| *k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => res.header.push((key, value.to_string())),
        }
    }

    /// `(*response).WriteHeader`: the first call wins; it reads a declared
    /// Content-Length (an invalid one is dropped, as Go does).
    pub fn write_header(&mut self, status: u16) {
        let res = &mut self.below.res;
        if res.status.is_some() {
            return;
        }
        res.status = Some(status);
        if let Some(i) = res.header.iter().position(|(k, _)| k == "Content-Length") {
            match res.header[i].1.trim().parse() {
                Ok(n) => res.content_length = Some(n),
                Err(_) => drop(res.header.remove(i)),
            }
        }
    }

    /// `(*response).Write`.
    pub fn write(&mut self, io: &mut dyn Io, p: &[u8]) -> Result<Result<(), WriteError>, Suspended> {
        self.write_header(200);
        let res = &mut self.below.res;
        if p.is_empty() {
            return Ok(Ok(()));
        }
        if !rules::body_allowed_for_status(res.status.unwrap_or(200)) {
            return Ok(Err(WriteError::BodyNotAllowed));
        }
        res.written += p.len() as u64;
        if res.content_length.is_some_and(|cl| res.written > cl) {
            return Ok(Err(WriteError::ContentLength));
        }
        let below = &mut self.below;
        Ok(self.w.write(p, false, &mut |chunk| below.cw_write(io, chunk))?.map_err(|_| WriteError::Failed))
    }

    /// `(*response).Flush` (`http.Flusher`): `response.w`, then the head
    /// if not yet written, then `conn.bufw`. Errors are not reported.
    pub fn flush(&mut self, io: &mut dyn Io) -> Result<(), Suspended> {
        self.write_header(200);
        let below = &mut self.below;
        let _ = self.w.flush(&mut |chunk| below.cw_write(io, chunk))?;
        // chunkWriter.flush
        below.write_header_once(io, &[])?;
        let _ = below.bufw_flush(io)?;
        Ok(())
    }

    /// `(*response).finishRequest` after the handler returned: flush
    /// `response.w` (with the handler done, a body that fits in it gets a
    /// Content-Length), `chunkWriter.close` (the terminating chunk),
    /// flush `conn.bufw`, then `(*body).Close`.
    pub fn finish_request(&mut self, io: &mut dyn Io) -> Result<(), Suspended> {
        self.below.res.handler_done = true;
        self.write_header(200);
        let below = &mut self.below;
        let _ = self.w.flush(&mut |chunk| below.cw_write(io, chunk))?;
        // chunkWriter.close
        below.write_header_once(io, &[])?;
        if below.chunking {
            let _ = below.bufw_write(io, b"0\r\n", true)?;
            let _ = below.bufw_write(io, b"\r\n", true)?;
        }
        let _ = below.bufw_flush(io)?;
        self.close_body(io)
    }

    /// `(*body).Close`: from `finishRequest`, and from the deferred recover
    /// in `(*conn).serve` after a panic.
    pub fn close_body(&mut self, io: &mut dyn Io) -> Result<(), Suspended> {
        let body = &mut self.below.res.body;
        if body.closed {
            return Ok(());
        }
        let rule = if body.chunked { rules::chunked_body_on_close(body.unread == 0) } else { rules::body_on_close(body.unread, body.closing) };
        match rule {
            BodyOnClose::LeaveForClose | BodyOnClose::Drain(0) => {}
            BodyOnClose::EarlyClose => body.early_close = true,
            BodyOnClose::Drain(_) => {
                let r = io.discard_body(MAX_POST_HANDLER_READ_BYTES)?;
                body.unread = if body.chunked { u64::from(!r.eof) } else { body.unread - r.bytes.min(body.unread) };
                // A failed read returns an error nobody checks; earlyClose
                // is set only when the whole limit was read.
                body.early_close = !r.failed && rules::drain_closes_early(r.bytes);
            }
        }
        body.closed = true;
        Ok(())
    }

    /// `(*conn).finalFlush`, in `(*conn).close` and `closeWriteAndWait`:
    /// `conn.bufw` only; after a panic `response.w` is lost.
    pub fn final_flush(&mut self, io: &mut dyn Io) -> Result<(), Suspended> {
        let _ = self.below.bufw_flush(io)?;
        Ok(())
    }

    /// The head was written (`cw.wroteHeader`).
    pub fn wrote_header(&self) -> bool {
        self.below.wrote_header
    }

    /// A socket write failed (`c.werr`).
    pub fn write_failed(&self) -> bool {
        self.below.werr
    }

    /// The `chunkWriter` closed the socket after a failed write.
    pub fn socket_closed(&self) -> bool {
        self.below.rwc_closed
    }

    /// What `shouldReuseConnection` looks at (meaningful after
    /// [`finish_request`](Self::finish_request)).
    pub fn reply_state(&self) -> ReplyState {
        let res = &self.below.res;
        ReplyState {
            close_after_reply: res.close_after_reply,
            head: res.req.head,
            content_length: res.content_length,
            written: res.written,
            body_allowed: rules::body_allowed_for_status(res.status.unwrap_or(200)),
            write_failed: self.below.werr,
            request_body_limit_hit: res.request_body_limit_hit,
            closed_request_body_early: res.body.early_close,
        }
    }
}

impl Below {
    /// `checkConnErrorWriter.Write`: one socket write; the first error is
    /// kept in `c.werr`. A socket the chunkWriter closed fails at once.
    fn sock_write(werr: &mut bool, rwc_closed: bool, io: &mut dyn Io, p: &[u8]) -> Sus<Wrote> {
        let r = if rwc_closed { Err(WriteFailed) } else { io.write(p)? };
        if r.is_err() {
            *werr = true;
        }
        Ok(r)
    }

    fn bufw_write(&mut self, io: &mut dyn Io, p: &[u8], string: bool) -> Sus<Wrote> {
        let (werr, closed) = (&mut self.werr, self.rwc_closed);
        self.bufw.write(p, string, &mut |b| Self::sock_write(werr, closed, io, b))
    }

    fn bufw_flush(&mut self, io: &mut dyn Io) -> Sus<Wrote> {
        let (werr, closed) = (&mut self.werr, self.rwc_closed);
        self.bufw.flush(&mut |b| Self::sock_write(werr, closed, io, b))
    }

    /// `cw.res.conn.rwc.Close()`.
    fn close_rwc(&mut self, io: &mut dyn Io) -> Sus<()> {
        if !self.rwc_closed {
            self.rwc_closed = true;
            io.close()?;
        }
        Ok(())
    }

    /// `chunkWriter.Write`.
    fn cw_write(&mut self, io: &mut dyn Io, p: &[u8]) -> Sus<Wrote> {
        self.write_header_once(io, p)?;
        if self.res.req.head {
            // "Eat writes."
            return Ok(Ok(()));
        }
        let mut r = Ok(());
        if self.chunking {
            r = self.bufw_write(io, format!("{:x}\r\n", p.len()).as_bytes(), false)?;
        }
        if r.is_ok() {
            r = self.bufw_write(io, p, false)?;
        }
        if r.is_ok() && self.chunking {
            r = self.bufw_write(io, b"\r\n", false)?;
        }
        if r.is_err() {
            self.close_rwc(io)?;
        }
        Ok(r)
    }

    /// `chunkWriter.writeHeader(p)`: `p` is the first chunk (empty from
    /// `flush` and `close`).
    fn write_header_once(&mut self, io: &mut dyn Io, p: &[u8]) -> Sus<()> {
        if self.wrote_header {
            return Ok(());
        }
        self.wrote_header = true;
        let HeaderInputs { keep_alives, date } = io.header_inputs()?;
        let res = &mut self.res;
        let req = res.req;
        let status = res.status.unwrap_or(200);
        let body_allowed = rules::body_allowed_for_status(status);
        let auto_length = rules::auto_content_length(&req, status, res.content_length, res.handler_done.then_some(p.len()));
        if auto_length.is_some() {
            res.content_length = auto_length;
        }
        let (mut close, mut connection) =
            rules::close_before_body_check(&req, res.content_length, body_allowed, keep_alives);
        // `header.get("Connection") == "close"` set by the handler.
        let handler_close = res.header.iter().any(|(k, v)| k == "Connection" && v == "close");
        // An expectContinueReader that never saw EOF (golang/go#11549).
        close |= handler_close || req.unread_expect_continue;
        let mut too_big = false;
        let at_header = if res.body.chunked {
            rules::chunked_body_at_header_write(res.body.unread == 0, close)
        } else {
            rules::body_at_header_write(res.body.unread, close)
        };
        match at_header {
            BodyAtHeaderWrite::Nothing => {}
            BodyAtHeaderWrite::TooBig => too_big = true,
            BodyAtHeaderWrite::Discard => {
                let max = MAX_POST_HANDLER_READ_BYTES + 1;
                let r = io.discard_body(max)?;
                res.body.unread =
                    if res.body.chunked { u64::from(!r.eof) } else { res.body.unread - r.bytes.min(res.body.unread) };
                if r.failed || (r.bytes < max && res.body.unread > 0) {
                    // A read error or timeout: what is left on the wire must
                    // not be parsed as another request.
                    close = true;
                } else if r.bytes == max {
                    // io.CopyN returned nil: even more data left over.
                    too_big = true;
                } else {
                    // io.EOF: the body was read to its end and is closed.
                    res.body.closed = true;
                }
            }
        }
        if too_big {
            // requestTooLarge(), and "Connection: close".
            res.request_body_limit_hit = true;
            close = true;
            connection = Some("close");
        }
        let mut f = rules::response_framing(&req, status, res.content_length, None, close, connection);
        if handler_close {
            // delConnectionHeader is false: the handler's "close" stays, once.
            f.connection = None;
        }
        res.close_after_reply = f.close_after_reply;
        self.chunking = f.chunked;
        let framing = if f.chunked {
            BodyFraming::Chunked
        } else if let Some(n) = f.content_length {
            BodyFraming::Length(n)
        } else if req.head || !body_allowed || status == 204 {
            BodyFraming::Length(0)
        } else {
            BodyFraming::CloseDelimited
        };
        let head = head_bytes(res, status, &f, auto_length, &date);
        io.head_decided(status, framing)?;
        // writeStatusLine, Header.WriteSubset and extraHeader.Write are all
        // small WriteString-like writes into conn.bufw; one WriteString of
        // the whole head spills at the same byte offsets.
        let _ = self.bufw_write(io, &head, true)?;
        Ok(())
    }
}

/// The head as `chunkWriter.writeHeader` writes it: the status line, the
/// handler's header sorted by key (`Header.WriteSubset`), then Go's own
/// (`extraHeader.Write`: Date, Content-Length, Connection,
/// Transfer-Encoding), then the blank line.
fn head_bytes(res: &Res, status: u16, f: &rules::Framing, auto_length: Option<u64>, date: &str) -> Vec<u8> {
    let mut s = String::with_capacity(256);
    s.push_str(if f.http11_status_line { "HTTP/1.1 " } else { "HTTP/1.0 " });
    match status_text(status) {
        Some(text) => {
            let _ = write!(s, "{status} {text}\r\n");
        }
        None => {
            let _ = write!(s, "{status:03} status code {status}\r\n");
        }
    }
    let suppressed = suppressed_headers(status);
    let mut header: Vec<_> = res.header.iter().filter(|(k, _)| !suppressed.contains(&k.as_str())).collect();
    header.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in header {
        let _ = write!(s, "{k}: {v}\r\n");
    }
    let _ = write!(s, "Date: {date}\r\n");
    if let Some(n) = auto_length {
        let _ = write!(s, "Content-Length: {n}\r\n");
    }
    if let Some(c) = f.connection {
        let _ = write!(s, "Connection: {c}\r\n");
    }
    if f.chunked {
        s.push_str("Transfer-Encoding: chunked\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// Go's `suppressedHeaders`.
fn suppressed_headers(status: u16) -> &'static [&'static str] {
    match status {
        304 => &["Content-Type", "Content-Length", "Transfer-Encoding"],
        s if (100..200).contains(&s) || s == 204 => &["Content-Length", "Transfer-Encoding"],
        _ => &[],
    }
}

/// `textproto.CanonicalMIMEHeaderKey` for plain ASCII keys.
fn canonical_key(name: &str) -> String {
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == '-';
            out
        })
        .collect()
}

/// Go's `StatusText`, for the statuses a lab handler or the connection loop
/// can produce (others get Go's "status code N" line).
pub fn status_text(status: u16) -> Option<&'static str> {
    Some(match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => return None,
    })
}

/// The reply `(*conn).serve` writes straight to the socket (one
/// `fmt.Fprintf(c.rwc, ...)`, no buffers) when `readRequest` fails: 431 for
/// a header over the limit, 501 for an unsupported Transfer-Encoding,
/// otherwise 400.
pub fn conn_error_response(status: u16) -> Vec<u8> {
    const ERROR_HEADERS: &str = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";
    let text = status_text(status).unwrap_or("");
    let body = match status {
        501 => "Unsupported transfer encoding".to_string(),
        _ => format!("{status} {text}"),
    };
    format!("HTTP/1.1 {status} {text}{ERROR_HEADERS}{body}").into_bytes()
}

/// The reply `(*conn).serve` writes for a `statusError` from
/// `readRequest` (`badRequestError`, the 505): the text in the status line
/// and the body.
pub fn status_error_response(status: u16, text: &str) -> Vec<u8> {
    const ERROR_HEADERS: &str = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n";
    let status_text = status_text(status).unwrap_or("");
    format!("HTTP/1.1 {status} {status_text}: {text}{ERROR_HEADERS}{status} {status_text}: {text}").into_bytes()
}

/// A fixed HTTP date, for callers without a clock (29 bytes, like any).
pub const EPOCH_DATE: &str = "Thu, 01 Jan 1970 00:00:00 GMT";

#[cfg(test)]
mod tests {
    use super::*;

    const GET11: RequestFacts = RequestFacts { http11: true, wants_close: false, wants_10_keep_alive: false, head: false, unread_expect_continue: false };
    const GET10: RequestFacts = RequestFacts { http11: false, ..GET11 };

    /// A synchronous connection: socket writes succeed until `fail_from`
    /// (0-based), the body reads as much as asked from `body`.
    struct Sock {
        writes: Vec<Vec<u8>>,
        attempts: usize,
        fail_from: usize,
        body: u64,
        keep_alives: bool,
        closed_after: Option<usize>,
        heads: Vec<(u16, BodyFraming)>,
    }

    impl Sock {
        fn new() -> Sock {
            Sock { writes: vec![], attempts: 0, fail_from: usize::MAX, body: 0, keep_alives: true, closed_after: None, heads: vec![] }
        }
        fn failing_from(n: usize) -> Sock {
            Sock { fail_from: n, ..Sock::new() }
        }
        fn sizes(&self) -> Vec<usize> {
            self.writes.iter().map(Vec::len).collect()
        }
        fn wire(&self) -> String {
            String::from_utf8_lossy(&self.writes.concat()).into_owned()
        }
    }

    impl Io for Sock {
        fn header_inputs(&mut self) -> Result<HeaderInputs, Suspended> {
            Ok(HeaderInputs { keep_alives: self.keep_alives, date: EPOCH_DATE.into() })
        }
        fn head_decided(&mut self, status: u16, framing: BodyFraming) -> Result<(), Suspended> {
            self.heads.push((status, framing));
            Ok(())
        }
        fn discard_body(&mut self, max: u64) -> Result<BodyRead, Suspended> {
            let n = max.min(self.body);
            self.body -= n;
            Ok(BodyRead { bytes: n, failed: false, eof: self.body == 0 })
        }
        fn write(&mut self, bytes: &[u8]) -> Result<Result<(), WriteFailed>, Suspended> {
            self.attempts += 1;
            if self.attempts > self.fail_from {
                return Ok(Err(WriteFailed));
            }
            self.writes.push(bytes.to_vec());
            Ok(Ok(()))
        }
        fn close(&mut self) -> Result<(), Suspended> {
            self.closed_after = Some(self.writes.len());
            Ok(())
        }
    }

    fn text(w: &mut ResponseWriter) {
        w.set_header("content-type", "text/plain; charset=utf-8");
    }

    #[test]
    fn small_body_gets_a_length_and_one_write_at_the_end() {
        let mut s = Sock::new();
        let mut w = ResponseWriter::new(GET11, 0);
        text(&mut w);
        w.write(&mut s, b"ok\n").unwrap().unwrap();
        assert!(s.writes.is_empty() && !w.wrote_header(), "held in response.w");
        w.finish_request(&mut s).unwrap();
        assert_eq!(
            s.wire(),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: 3\r\n\r\nok\n"
        );
        assert_eq!(s.writes.len(), 1);
        assert_eq!(s.heads, vec![(200, BodyFraming::Length(3))]);
        assert_eq!(rules::after_reply(&w.reply_state()), rules::Reuse::Keep);
    }

    #[test]
    fn response_w_spills_past_2_kib_into_a_chunked_head() {
        // 2048 bytes fit in response.w: still a Content-Length.
        let mut s = Sock::new();
        let mut w = ResponseWriter::new(GET11, 0);
        w.write(&mut s, &[b'x'; 2048]).unwrap().unwrap();
        assert!(s.writes.is_empty());
        w.finish_request(&mut s).unwrap();
        assert!(s.wire().contains("Content-Length: 2048\r\n"));
        // One byte more spills the buffer while the handler runs: chunked.
        let mut s = Sock::new();
        let mut w = ResponseWriter::new(GET11, 0);
        w.write(&mut s, &[b'x'; 2000]).unwrap().unwrap();
        w.write(&mut s, &[b'x'; 49]).unwrap().unwrap();
        assert!(w.wrote_header() && s.writes.is_empty(), "the head and the 2048-byte chunk sit in conn.bufw");
        w.finish_request(&mut s).unwrap();
        let wire = s.wire();
        assert!(wire.contains("Transfer-Encoding: chunked\r\n\r\n800\r\n"), "{wire}");
        assert!(wire.ends_with(&format!("{}\r\n1\r\nx\r\n0\r\n\r\n", "x".repeat(2048))));
        assert_eq!(s.heads, vec![(200, BodyFraming::Chunked)]);
    }

    #[test]
    fn conn_bufw_spills_at_4_kib_and_large_writes_go_straight_through() {
        let mut s = Sock::new();
        let mut w = ResponseWriter::new(GET11, 0);
        text(&mut w);
        w.write(&mut s, &[b'x'; 10_000]).unwrap().unwrap();
        let head_len = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n".len();
        // response.w is empty and 10000 > 2048: straight to the chunkWriter,
        // which puts head + "2710\r\n" into conn.bufw, tops it up to 4096,
        // flushes, and writes the rest of the chunk straight through.
        assert_eq!(s.sizes(), vec![4096, 10_000 - (4096 - head_len - 6)]);
        w.finish_request(&mut s).unwrap();
        assert_eq!(s.writes.last().unwrap(), b"\r\n0\r\n\r\n");
        assert_eq!(s.writes.len(), 3);
    }

    #[test]
    fn flush_sends_the_head_and_what_is_buffered() {
        let mut s = Sock::new();
        let mut w = ResponseWriter::new(GET11, 0);
        w.write_header(200);
        w.flush(&mut s).unwrap();
        assert_eq!(s.writes.len(), 1);
        assert!(s.wire().ends_with("Transfer-Encoding: chunked\r\n\r\n"));
        w.write(&mut s, b"abc").unwrap().unwrap();
        w.flush(&mut s).unwrap();
        assert_eq!(s.writes[1], b"3\r\nabc\r\n");
    }

    #[test]
    fn http10_is_close_delimited_and_closes() {
        let mut s = Sock::new();
        let mut w = ResponseWriter::new(GET10, 0);
        w.write(&mut s, &[b'x'; 5000]).unwrap().unwrap();
        w.finish_request(&mut s).unwrap();
        let wire = s.wire();
        assert!(wire.starts_with("HTTP/1.0 200 OK\r\n") && !wire.contains("Connection") && !wire.contains("Content-Length"));
        assert_eq!(s.heads, vec![(200, BodyFraming::CloseDelimited)]);
        assert_eq!(rules::after_reply(&w.reply_state()), rules::Reuse::Close);
    }

    #[test]
    fn keep_alives_off_says_connection_close() {
        let mut s = Sock { keep_alives: false, ..Sock::new() };
        let mut w = ResponseWriter::new(GET11, 0);
        w.write(&mut s, b"ok\n").unwrap().unwrap();
        w.finish_request(&mut s).unwrap();
        assert!(s.wire().contains("Content-Length: 3\r\nConnection: close\r\n\r\n"));
        assert_eq!(rules::after_reply(&w.reply_state()), rules::Reuse::Close);
    }

    #[test]
    fn failure_is_sticky_and_a_failed_chunk_write_closes_the_socket() {
        // /partial: 64 KiB, Flush, then 64 KiB more whose first socket write fails.
        let mut s = Sock::failing_from(3);
        let mut w = ResponseWriter::new(GET11, 0);
        w.write(&mut s, &[b'x'; 65536]).unwrap().unwrap();
        w.flush(&mut s).unwrap();
        assert_eq!((s.writes.len(), s.closed_after), (3, None));
        assert_eq!(w.write(&mut s, &[b'x'; 65536]).unwrap(), Err(WriteError::Failed));
        assert_eq!(s.closed_after, Some(3), "rwc.Close() at the failed chunk write");
        assert_eq!(s.attempts, 4, "one failed attempt, nothing after it");
        w.finish_request(&mut s).unwrap();
        assert_eq!(s.attempts, 4, "finishRequest writes nothing more");
        assert!(w.write_failed() && w.socket_closed());
        assert_eq!(rules::after_reply(&w.reply_state()), rules::Reuse::Close);
    }

    #[test]
    fn a_failed_flush_does_not_close_at_once() {
        // /sleep past WriteTimeout: the only socket write is finishRequest's.
        let mut s = Sock::failing_from(0);
        let mut w = ResponseWriter::new(GET11, 0);
        w.write(&mut s, b"slept\n").unwrap().unwrap();
        w.finish_request(&mut s).unwrap();
        assert_eq!((s.writes.len(), s.attempts, s.closed_after), (0, 1, None));
        assert_eq!(rules::after_reply(&w.reply_state()), rules::Reuse::Close);
    }

    #[test]
    fn declared_length_and_short_bodies() {
        let mut s = Sock::new();
        let mut w = ResponseWriter::new(GET11, 0);
        w.set_header("Content-Length", "4");
        w.write(&mut s, b"ab").unwrap().unwrap();
        assert_eq!(w.write(&mut s, b"abc").unwrap(), Err(WriteError::ContentLength));
        w.finish_request(&mut s).unwrap();
        let wire = s.wire();
        assert!(wire.contains("Content-Length: 4\r\nDate:") && wire.ends_with("\r\n\r\nab"), "{wire}");
        assert_eq!(rules::after_reply(&w.reply_state()), rules::Reuse::Close, "short body");
    }

    #[test]
    fn unread_body_at_header_time() {
        // Under 256 KiB: read away, reusable.
        let mut s = Sock { body: 1000, ..Sock::new() };
        let mut w = ResponseWriter::new(GET11, 1000);
        w.write(&mut s, b"ok\n").unwrap().unwrap();
        w.finish_request(&mut s).unwrap();
        assert_eq!((s.body, rules::after_reply(&w.reply_state())), (0, rules::Reuse::Keep));
        // 300 KiB: not read, Connection: close, closeWriteAndWait.
        let mut s = Sock { body: 300 << 10, ..Sock::new() };
        let mut w = ResponseWriter::new(GET11, 300 << 10);
        w.write(&mut s, b"ok\n").unwrap().unwrap();
        w.finish_request(&mut s).unwrap();
        assert!(s.wire().contains("Connection: close\r\n"));
        assert_eq!((s.body, rules::after_reply(&w.reply_state())), (300 << 10, rules::Reuse::CloseWriteAndWait));
        // HTTP/1.0: the reply closes anyway; nothing is read (an RST follows).
        let mut s = Sock { body: 1000, ..Sock::new() };
        let mut w = ResponseWriter::new(GET10, 1000);
        w.finish_request(&mut s).unwrap();
        assert_eq!((s.body, rules::after_reply(&w.reply_state())), (1000, rules::Reuse::Close));
    }

    #[test]
    fn statuses_without_a_body() {
        let mut s = Sock::new();
        let mut w = ResponseWriter::new(GET11, 0);
        w.set_header("Content-Length", "5");
        w.write_header(304);
        assert_eq!(w.write(&mut s, b"hello").unwrap(), Err(WriteError::BodyNotAllowed));
        w.finish_request(&mut s).unwrap();
        assert_eq!(s.wire(), "HTTP/1.1 304 Not Modified\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n");
        assert_eq!(s.heads, vec![(304, BodyFraming::Length(0))]);
    }

    #[test]
    fn connection_errors_are_gos_bytes() {
        assert_eq!(
            String::from_utf8(conn_error_response(431)).unwrap(),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large"
        );
        assert!(String::from_utf8(conn_error_response(400)).unwrap().ends_with("\r\n\r\n400 Bad Request"));
    }
}
