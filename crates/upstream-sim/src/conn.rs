//! One connection, served the way Go 1.19's `(*conn).serve` serves it.
//!
//! The loop: `readRequest` (header deadline, then whole-request deadline,
//! both from its start; the write deadline armed as it returns), the handler
//! (never interrupted by a deadline), `finishRequest` (flush the buffers, close
//! the body), then either close or the idle wait (`Peek(4)` under IdleTimeout,
//! or Go 1.19's straight-to-readRequest when no idle timeout applies).
//! Every close is a plain `close()`, so the kernel picks FIN or RST, except
//! `closeWriteAndWait`. The rules come from `rules.rs`; this file is the I/O.

use go_model::bufio::{plan_write, BufOp};
use crate::events::{CloseReason, EventKind};
use go_model::handlers::{Handler, FILL, TIMEOUT_HANDLER_BODY};
use go_model::rules::{self, BodyAtHeaderWrite, CloseKind, IdleWait, RequestFacts};
use crate::server::{ConnState, Shared};
use std::io;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
enum ReadErr {
    Timeout,
    Eof,
    Reset,
    Shutdown,
    Other(#[allow(dead_code)] io::Error),
}

impl ReadErr {
    fn close_reason(&self) -> CloseReason {
        match self {
            ReadErr::Timeout => CloseReason::ReadTimeout,
            ReadErr::Shutdown => CloseReason::Shutdown,
            _ => CloseReason::PeerClosed,
        }
    }
}

struct Head {
    method: String,
    target: String,
    facts: RequestFacts,
    body_len: u64,
    chunked_body: bool,
}

enum HeadResult {
    Head(Head),
    TooLarge,
    Bad,
}

pub(crate) struct Conn {
    pub id: u64,
    stream: Option<TcpStream>,
    /// Go's `bufio.Reader`: bytes read from the socket, not yet consumed.
    rbuf: Vec<u8>,
    /// Go's `conn.bufw`.
    bufw: Vec<u8>,
    bufw_err: bool,
    write_deadline: Option<Instant>,
    /// `c.werr`: a socket write failed.
    werr: bool,
    /// Unread bytes of the current request body.
    body_remaining: u64,
    body_deadline: Option<Instant>,
    /// `body.Close()` left more than 256 KiB unread.
    closed_body_early: bool,
    /// The current request closes the connection after its reply (`t.Close`).
    req_closing: bool,
    closed: bool,
    shared: Arc<Shared>,
    ctl: CancellationToken,
}

/// How the handler ended, for the serve loop.
enum Outcome {
    Returned,
    Panicked { abort: bool },
}

impl Conn {
    pub(crate) fn new(id: u64, stream: TcpStream, shared: Arc<Shared>, ctl: CancellationToken) -> Conn {
        Conn {
            id,
            stream: Some(stream),
            rbuf: Vec::with_capacity(rules::CONN_BUFFER),
            bufw: Vec::with_capacity(rules::CONN_BUFFER),
            bufw_err: false,
            write_deadline: None,
            werr: false,
            body_remaining: 0,
            body_deadline: None,
            closed_body_early: false,
            req_closing: false,
            closed: false,
            shared,
            ctl,
        }
    }

    fn event(&self, kind: EventKind) {
        self.shared.events.push(self.id, kind);
    }

    pub(crate) async fn serve(mut self) {
        let cfg = self.shared.cfg.clone();
        loop {
            // readRequest: both read deadlines count from here.
            let t0 = Instant::now();
            let hdr_deadline = rules::header_timeout(&cfg).map(|d| {
                self.event(EventKind::ReadDeadlineArmed { what: "header", after_ms: ms(d) });
                t0 + d
            });
            let head = match self.read_head(hdr_deadline, rules::header_limit(&cfg)).await {
                Ok(HeadResult::Head(h)) => h,
                Ok(HeadResult::TooLarge) => {
                    self.write_error_response(431, "Request Header Fields Too Large").await;
                    return self.close_write_and_wait(CloseReason::HeaderTooLarge).await;
                }
                Ok(HeadResult::Bad) => {
                    self.write_error_response(400, "Bad Request").await;
                    return self.close(CloseReason::BadRequest);
                }
                Err(ReadErr::Shutdown) => {
                    let reason = self.shutdown_close().await;
                    return self.close(reason);
                }
                Err(e) => return self.close(e.close_reason()),
            };
            self.shared.set_state(self.id, ConnState::Active);
            self.body_remaining = head.body_len;
            self.closed_body_early = false;
            self.req_closing = head.facts.closing();
            self.body_deadline = rules::request_timeout(&cfg).map(|d| t0 + d);
            if let Some(d) = rules::write_timeout(&cfg) {
                // `defer c.rwc.SetWriteDeadline(...)` in readRequest: armed
                // once the header is read, covering body, handler and write.
                self.write_deadline = Some(Instant::now() + d);
                self.event(EventKind::WriteDeadlineArmed { after_ms: ms(d) });
            }
            self.event(EventKind::HeadRead {
                method: head.method.clone(),
                target: head.target.clone(),
                http11: head.facts.http11,
                body_len: head.body_len,
            });
            if head.chunked_body {
                // nginx always sends buffered request bodies with a length.
                self.write_error_response(501, "Not Implemented").await;
                return self.close(CloseReason::BadRequest);
            }

            let path = head.target.split('?').next().unwrap_or("").to_string();
            self.shared.count_handler_run(&path);
            self.event(EventKind::HandlerStart { path });
            let mut w = Response::new(&mut self, head.facts);
            let outcome = match Handler::from_target(&head.target) {
                Ok(h) => run_handler(&h, &mut w).await,
                Err(bad) => {
                    w.error(400, &bad.0).await;
                    Outcome::Returned
                }
            };
            match outcome {
                Outcome::Panicked { abort } => {
                    drop(w);
                    self.event(EventKind::HandlerEnd { outcome: if abort { "abort-handler" } else { "panic" } });
                    if !abort {
                        tracing::warn!(target: "upstream_sim", "http: panic serving conn {}: boom", self.id);
                    }
                    // The deferred recover in conn.serve: reqBody.Close(),
                    // then c.close() = finalFlush (conn.bufw only) + Close.
                    self.close_body().await;
                    let _ = self.bufw_flush().await;
                    return self.close(CloseReason::Panic);
                }
                Outcome::Returned => {
                    let reuse = w.finish().await;
                    self.event(EventKind::HandlerEnd { outcome: "returned" });
                    if let Some(limit_hit) = reuse {
                        if limit_hit || self.closed_body_early {
                            return self.close_write_and_wait(CloseReason::CloseAfterReply).await;
                        }
                        let reason = if self.werr { CloseReason::WriteFailed } else { CloseReason::CloseAfterReply };
                        return self.close(reason);
                    }
                }
            }

            self.shared.set_state(self.id, ConnState::Idle);
            if !self.shared.do_keep_alives() {
                return self.close(CloseReason::KeepAlivesDisabled);
            }
            match rules::idle_wait(&cfg) {
                IdleWait::Peek(limit) => {
                    self.event(EventKind::IdleWait { limit_ms: limit.map(ms) });
                    if let Err(reason) = self.idle_peek(limit.map(|d| Instant::now() + d)).await {
                        return self.close(reason);
                    }
                }
                IdleWait::StraightToReadRequest => {
                    self.event(EventKind::IdleWait { limit_ms: rules::header_timeout(&cfg).map(ms) });
                }
            }
        }
    }

    // ---- reading -------------------------------------------------------

    /// One `read(2)` into the bufio buffer, under a deadline. Shutdown's idle
    /// sweep can interrupt it while the connection is not active.
    async fn fill(&mut self, deadline: Option<Instant>) -> Result<usize, ReadErr> {
        let want = if self.rbuf.len() < rules::CONN_BUFFER { rules::CONN_BUFFER - self.rbuf.len() } else { rules::CONN_BUFFER };
        let stream = self.stream.as_ref().ok_or(ReadErr::Eof)?;
        let ctl = self.ctl.clone();
        loop {
            let ready = async {
                tokio::select! {
                    biased;
                    _ = ctl.cancelled() => Err(ReadErr::Shutdown),
                    r = stream.readable() => r.map_err(ReadErr::Other),
                }
            };
            match deadline {
                Some(d) => timeout_at(d, ready).await.map_err(|_| ReadErr::Timeout)??,
                None => ready.await?,
            }
            let old = self.rbuf.len();
            self.rbuf.resize(old + want, 0);
            let r = stream.try_read(&mut self.rbuf[old..]);
            self.rbuf.truncate(old + *r.as_ref().unwrap_or(&0));
            match r {
                Ok(0) => return Err(ReadErr::Eof),
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Err(ReadErr::Reset),
                Err(e) => return Err(ReadErr::Other(e)),
            }
        }
    }

    async fn read_head(&mut self, deadline: Option<Instant>, limit: usize) -> Result<HeadResult, ReadErr> {
        loop {
            if !self.rbuf.is_empty() {
                let mut headers = [httparse::EMPTY_HEADER; 100];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(&self.rbuf) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = head_from(&req);
                        self.rbuf.drain(..n);
                        return Ok(head);
                    }
                    Ok(httparse::Status::Partial) => {}
                    Err(_) => return Ok(HeadResult::Bad),
                }
            }
            if self.rbuf.len() >= limit {
                return Ok(HeadResult::TooLarge);
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads and discards up to `max` body bytes under the request deadline.
    /// Returns how many were discarded.
    async fn discard_body(&mut self, max: u64) -> Result<u64, ReadErr> {
        let mut done = 0;
        while done < max && self.body_remaining > 0 {
            if self.rbuf.is_empty() {
                self.fill(self.body_deadline).await?;
            }
            let n = (self.rbuf.len() as u64).min(self.body_remaining).min(max - done) as usize;
            self.rbuf.drain(..n);
            self.body_remaining -= n as u64;
            done += n as u64;
        }
        Ok(done)
    }

    /// `body.Close()` (R32 and the closing-request case before it).
    async fn close_body(&mut self) {
        match rules::body_on_close(self.body_remaining, self.req_closing) {
            rules::BodyOnClose::LeaveForClose => {}
            rules::BodyOnClose::EarlyClose => self.closed_body_early = true,
            rules::BodyOnClose::Drain(n) => {
                if n > 0 && self.discard_body(n).await.is_err() {
                    self.closed_body_early = true;
                }
            }
        }
    }

    /// `bufr.Peek(4)` under the idle deadline.
    async fn idle_peek(&mut self, deadline: Option<Instant>) -> Result<(), CloseReason> {
        let race = self.shared.cfg.idle_race;
        while self.rbuf.len() < 4 {
            if let (Some(race), Some(limit)) = (race, deadline) {
                // Lab knob: hold the deadline until the request arrives.
                self.await_readable().await?;
                if Instant::now() >= limit {
                    return Err(self.race_close(race).await);
                }
                match self.fill(None).await {
                    Ok(_) => continue,
                    Err(e) => return Err(e.close_reason()),
                }
            }
            match self.fill(deadline).await {
                Ok(_) => {}
                Err(ReadErr::Timeout) => return Err(CloseReason::IdleTimeout),
                Err(ReadErr::Shutdown) => return Err(self.shutdown_close().await),
                Err(e) => return Err(e.close_reason()),
            }
        }
        Ok(())
    }

    /// Waits until bytes (or EOF) are really there; Shutdown's sweep
    /// interrupts. (`readable()` alone may report stale readiness left by
    /// the previous successful read; a peek needs actual data.)
    async fn await_readable(&mut self) -> Result<(), CloseReason> {
        let stream = self.stream.as_ref().ok_or(CloseReason::PeerClosed)?;
        let mut one = [0u8; 1];
        let r = tokio::select! {
            biased;
            _ = self.ctl.cancelled() => Err(()),
            r = stream.peek(&mut one) => r.map(|_| ()).map_err(|_| ()),
        };
        match r {
            Ok(()) => Ok(()),
            Err(()) if self.ctl.is_cancelled() => Err(self.shutdown_close().await),
            Err(()) => Err(CloseReason::PeerClosed),
        }
    }

    /// The close of a lab race: FIN if the arrived bytes are consumed first,
    /// RST if they are left in the receive buffer.
    async fn race_close(&mut self, race: go_model::config::IdleRace) -> CloseReason {
        if race == go_model::config::IdleRace::Fin {
            // The bytes are known to be there (peeked): drain them directly,
            // not through `fill`, which a cancelled Shutdown token would stop.
            if let Some(s) = self.stream.as_ref() {
                // Bounded: a request head is small; a peer that keeps
                // streaming gets the RST it would get from Go anyway.
                let mut scratch = vec![0u8; 64 * 1024];
                for _ in 0..16 {
                    if !matches!(s.try_read(&mut scratch), Ok(n) if n > 0) {
                        break;
                    }
                }
            }
            self.rbuf.clear();
        }
        CloseReason::IdleRace
    }

    /// Shutdown's idle sweep reached this connection.
    async fn shutdown_close(&mut self) -> CloseReason {
        if let (Some(race), true) = (self.shared.cfg.shutdown_race, self.shared.in_shutdown()) {
            // Lab knob: Shutdown's sweep closes exactly as the next request
            // arrives (SetKeepAlivesEnabled(false) alone closes at once).
            if let Some(stream) = self.stream.as_ref() {
                let mut one = [0u8; 1];
                let _ = stream.peek(&mut one).await;
            }
            self.race_close(race).await;
        }
        CloseReason::Shutdown
    }

    // ---- writing -------------------------------------------------------

    /// One socket write under the write deadline (`checkConnErrorWriter`).
    async fn sock_write(&mut self, p: &[u8]) -> Result<(), ()> {
        if self.werr || p.is_empty() {
            return if self.werr { Err(()) } else { Ok(()) };
        }
        let Some(stream) = self.stream.as_mut() else {
            self.werr = true;
            return Err(());
        };
        let res = match self.write_deadline {
            Some(d) if Instant::now() >= d => Err("i/o timeout".to_string()),
            Some(d) => match timeout_at(d, stream.write_all(p)).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err("i/o timeout".to_string()),
            },
            None => stream.write_all(p).await.map_err(|e| e.to_string()),
        };
        match res {
            Ok(()) => {
                self.event(EventKind::Wrote { bytes: p.len() });
                Ok(())
            }
            Err(error) => {
                self.werr = true;
                self.event(EventKind::WriteFailed { error });
                Err(())
            }
        }
    }

    async fn bufw_write(&mut self, p: &[u8]) -> Result<(), ()> {
        if self.bufw_err {
            return Err(());
        }
        for op in plan_write(self.bufw.len(), rules::CONN_BUFFER, p.len()) {
            let r = match op {
                BufOp::WriteDirect(r) => self.sock_write(&p[r]).await,
                BufOp::FillAndFlush(r) => {
                    self.bufw.extend_from_slice(&p[r]);
                    self.bufw_flush().await
                }
                BufOp::Buffer(r) => {
                    self.bufw.extend_from_slice(&p[r]);
                    Ok(())
                }
            };
            if r.is_err() {
                self.bufw_err = true;
                return Err(());
            }
        }
        Ok(())
    }

    async fn bufw_flush(&mut self) -> Result<(), ()> {
        if self.bufw_err {
            return Err(());
        }
        let buf = std::mem::take(&mut self.bufw);
        let r = self.sock_write(&buf).await;
        self.bufw = buf;
        self.bufw.clear();
        if r.is_err() {
            self.bufw_err = true;
        }
        r
    }

    /// A bare error response straight from the connection loop (400/431/501).
    async fn write_error_response(&mut self, status: u16, text: &str) {
        let resp = format!(
            "HTTP/1.1 {status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n{status} {text}"
        );
        let _ = self.bufw_write(resp.as_bytes()).await;
        let _ = self.bufw_flush().await;
    }

    // ---- closing -------------------------------------------------------

    /// A plain `close()`: FIN, or RST if unread bytes sit in the kernel.
    fn close(mut self, reason: CloseReason) {
        self.close_now(reason);
    }

    fn close_now(&mut self, reason: CloseReason) {
        if self.closed {
            return;
        }
        self.closed = true;
        let how = match self.stream.take() {
            Some(s) => {
                let how = rules::close_kind(has_unread(&s));
                drop(s);
                how
            }
            None => CloseKind::Fin,
        };
        self.shared.forget(self.id);
        self.event(EventKind::Closed { how, reason });
    }

    /// `closeWriteAndWait`: FIN now, full close after `rstAvoidanceDelay`.
    async fn close_write_and_wait(mut self, reason: CloseReason) {
        let _ = self.bufw_flush().await;
        if let Some(s) = self.stream.as_mut() {
            let _ = s.shutdown().await;
        }
        self.event(EventKind::Closed { how: CloseKind::FinThenWait, reason });
        self.closed = true;
        self.shared.forget(self.id);
        tokio::time::sleep(rules::RST_AVOIDANCE_DELAY).await;
        drop(self.stream.take());
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Crash: the task was dropped mid-flight; the kernel closes the socket.
        if !self.closed && self.stream.is_some() {
            self.close_now(CloseReason::Crash);
        }
    }
}

fn has_unread(s: &TcpStream) -> bool {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    let sock = socket2::SockRef::from(s);
    matches!(sock.peek(&mut buf), Ok(n) if n > 0)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn head_from(req: &httparse::Request) -> HeadResult {
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return HeadResult::Bad;
    };
    let mut body_len = 0;
    let mut chunked_body = false;
    let mut connection = String::new();
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            match value.trim().parse() {
                Ok(n) => body_len = n,
                Err(_) => return HeadResult::Bad,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked_body = value.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection = value.to_ascii_lowercase();
        }
    }
    let http11 = version >= 1;
    let has = |tok: &str| connection.split(',').any(|t| t.trim() == tok);
    HeadResult::Head(Head {
        method: method.to_string(),
        target: target.to_string(),
        facts: RequestFacts {
            http11,
            wants_close: http11 && has("close"),
            wants_10_keep_alive: !http11 && has("keep-alive"),
            head: method == "HEAD",
        },
        body_len,
        chunked_body,
    })
}

/// Go's `response` + `chunkWriter`: what a handler writes to.
struct Response<'a> {
    conn: &'a mut Conn,
    req: RequestFacts,
    headers: Vec<(String, String)>,
    status: Option<u16>,
    handler_content_length: Option<u64>,
    written: u64,
    /// `response.w`, the 2 KiB buffer in front of the chunkWriter.
    w: Vec<u8>,
    w_err: bool,
    wrote_header: bool,
    chunking: bool,
    close_after_reply: bool,
    body_limit_hit: bool,
    handler_done: bool,
}

impl<'a> Response<'a> {
    fn new(conn: &'a mut Conn, req: RequestFacts) -> Self {
        Response {
            conn,
            req,
            headers: Vec::new(),
            status: None,
            handler_content_length: None,
            written: 0,
            w: Vec::with_capacity(rules::RESPONSE_BUFFER),
            w_err: false,
            wrote_header: false,
            chunking: false,
            close_after_reply: false,
            body_limit_hit: false,
            handler_done: false,
        }
    }

    fn set_header(&mut self, name: &str, value: &str) {
        if name.eq_ignore_ascii_case("content-length") {
            self.handler_content_length = value.parse().ok();
        }
        self.headers.push((name.to_string(), value.to_string()));
    }

    fn write_header(&mut self, status: u16) {
        if self.status.is_none() {
            self.status = Some(status);
        }
    }

    /// `response.Write`.
    async fn write(&mut self, p: &[u8]) -> Result<(), ()> {
        self.write_header(200);
        if p.is_empty() {
            return Ok(());
        }
        self.written += p.len() as u64;
        if self.w_err {
            return Err(());
        }
        for op in plan_write(self.w.len(), rules::RESPONSE_BUFFER, p.len()) {
            let r = match op {
                BufOp::WriteDirect(r) => self.cw_write(&p[r]).await,
                BufOp::FillAndFlush(r) => {
                    self.w.extend_from_slice(&p[r]);
                    self.w_flush().await
                }
                BufOp::Buffer(r) => {
                    self.w.extend_from_slice(&p[r]);
                    Ok(())
                }
            };
            if r.is_err() {
                self.w_err = true;
                return Err(());
            }
        }
        Ok(())
    }

    async fn w_flush(&mut self) -> Result<(), ()> {
        if self.w.is_empty() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.w);
        let r = self.cw_write(&buf).await;
        self.w = buf;
        self.w.clear();
        r
    }

    /// `http.Flusher.Flush`.
    async fn flush(&mut self) {
        self.write_header(200);
        let _ = self.w_flush().await;
        if !self.wrote_header {
            let _ = self.cw_write_header(&[]).await;
        }
        let _ = self.conn.bufw_flush().await;
    }

    /// `chunkWriter.Write`: on a write error Go closes the socket at once.
    async fn cw_write(&mut self, p: &[u8]) -> Result<(), ()> {
        if !self.wrote_header {
            self.cw_write_header(p).await?;
        }
        let mut r = Ok(());
        if self.chunking {
            r = self.conn.bufw_write(format!("{:x}\r\n", p.len()).as_bytes()).await;
        }
        if r.is_ok() {
            r = self.conn.bufw_write(p).await;
        }
        if r.is_ok() && self.chunking {
            r = self.conn.bufw_write(b"\r\n").await;
        }
        if r.is_err() {
            self.conn.close_now(CloseReason::WriteFailed);
        }
        r
    }

    /// `chunkWriter.writeHeader(p)`: pick the framing, deal with the unread
    /// request body, and put the header into `conn.bufw`.
    async fn cw_write_header(&mut self, first: &[u8]) -> Result<(), ()> {
        self.wrote_header = true;
        let status = self.status.unwrap_or(200);
        let keep_alives = self.conn.shared.do_keep_alives();
        let body_allowed = rules::body_allowed_for_status(status);
        let (mut close, mut connection) =
            rules::close_before_body_check(&self.req, self.handler_content_length, body_allowed, keep_alives);
        match rules::body_at_header_write(self.conn.body_remaining, close) {
            BodyAtHeaderWrite::Nothing => {}
            BodyAtHeaderWrite::Discard => {
                match self.conn.discard_body(rules::MAX_POST_HANDLER_READ_BYTES + 1).await {
                    Ok(_) if self.conn.body_remaining == 0 => {}
                    Ok(_) => self.body_limit_hit = true,
                    Err(_) => close = true,
                }
            }
            BodyAtHeaderWrite::TooBig => self.body_limit_hit = true,
        }
        if self.body_limit_hit {
            close = true;
            connection = Some("close");
        }
        let done_len = self.handler_done.then_some(first.len());
        let f = rules::response_framing(&self.req, status, self.handler_content_length, done_len, close, connection);
        self.chunking = f.chunked;
        self.close_after_reply = f.close_after_reply;

        let mut head = format!(
            "HTTP/1.{} {} {}\r\n",
            if f.http11_status_line { 1 } else { 0 },
            status,
            status_text(status)
        );
        let mut headers = self.headers.clone();
        headers.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(c) = f.connection {
            head.push_str(&format!("Connection: {c}\r\n"));
        }
        if f.chunked {
            head.push_str("Transfer-Encoding: chunked\r\n");
        }
        head.push_str(&format!("Date: {}\r\n", httpdate::fmt_http_date(std::time::SystemTime::now())));
        if self.handler_content_length.is_none() {
            if let Some(n) = f.content_length {
                head.push_str(&format!("Content-Length: {n}\r\n"));
            }
        }
        head.push_str("\r\n");
        let framing = match (f.chunked, f.content_length) {
            (true, _) => "chunked".to_string(),
            (false, Some(n)) => format!("content-length {n}"),
            (false, None) => "close-delimited".to_string(),
        };
        self.conn.event(EventKind::ResponseHead { status, framing });
        self.conn.bufw_write(head.as_bytes()).await
    }

    async fn error(&mut self, status: u16, msg: &str) {
        self.set_header("Content-Type", "text/plain; charset=utf-8");
        self.set_header("X-Content-Type-Options", "nosniff");
        self.write_header(status);
        let _ = self.write(format!("{msg}\n").as_bytes()).await;
    }

    /// `finishRequest` plus `shouldReuseConnection`. Returns `None` when the
    /// connection may be reused, else `Some(request_body_limit_hit)`.
    async fn finish(mut self) -> Option<bool> {
        self.handler_done = true;
        self.write_header(200);
        let _ = self.w_flush().await;
        if !self.wrote_header {
            let _ = self.cw_write_header(&[]).await;
        }
        if self.chunking {
            let _ = self.conn.bufw_write(b"0\r\n\r\n").await;
        }
        let _ = self.conn.bufw_flush().await;
        self.conn.close_body().await;
        let short = self.handler_content_length.is_some_and(|cl| cl != self.written) && !self.req.head;
        let reuse = !(self.close_after_reply || self.conn.werr || short || self.conn.closed_body_early);
        if reuse {
            None
        } else {
            Some(self.body_limit_hit)
        }
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Handler::sleep(ms)).await;
}

async fn run_handler(h: &Handler, w: &mut Response<'_>) -> Outcome {
    match *h {
        Handler::Ok => {
            w.set_header("Content-Type", TEXT);
            let _ = w.write(b"ok\n").await;
        }
        Handler::Sleep { ms } => {
            sleep_ms(ms).await;
            w.set_header("Content-Type", TEXT);
            let _ = w.write(b"slept\n").await;
        }
        Handler::Panic => return Outcome::Panicked { abort: false },
        Handler::Abort => return Outcome::Panicked { abort: true },
        Handler::PanicAfterFlush { bytes, ms, cl } => {
            w.set_header("Content-Type", TEXT);
            if cl {
                w.set_header("Content-Length", &(2 * bytes).to_string());
            }
            w.write_header(200);
            let _ = w.write(&vec![FILL; bytes]).await;
            w.flush().await;
            sleep_ms(ms).await;
            return Outcome::Panicked { abort: false };
        }
        Handler::Partial { bytes, ms, cl } => {
            w.set_header("Content-Type", TEXT);
            if cl {
                w.set_header("Content-Length", &(2 * bytes).to_string());
            }
            let _ = w.write(&vec![FILL; bytes]).await;
            w.flush().await;
            sleep_ms(ms).await;
            let _ = w.write(&vec![FILL; bytes]).await;
        }
        Handler::Big { bytes } => {
            w.set_header("Content-Type", TEXT);
            let _ = w.write(&vec![FILL; bytes]).await;
        }
        Handler::RecoverPanic => {
            tracing::warn!(target: "upstream_sim", "recovered panic: boom");
            w.error(500, "Internal Server Error").await;
        }
        Handler::TimeoutHandler { ms, limit } => {
            if ms > limit {
                sleep_ms(limit).await;
                w.set_header("Content-Type", TEXT);
                w.write_header(503);
                let _ = w.write(TIMEOUT_HANDLER_BODY.as_bytes()).await;
            } else {
                sleep_ms(ms).await;
                w.set_header("Content-Type", TEXT);
                let _ = w.write(b"slept\n").await;
            }
        }
        Handler::NotFound => w.error(404, "404 page not found").await,
    }
    Outcome::Returned
}
