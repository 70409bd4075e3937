//! One connection, served the way Go 1.19's `(*conn).serve` serves it.
//!
//! The loop: `readRequest` (header deadline, then whole-request deadline,
//! both from its start; the write deadline armed as it returns), the
//! handler and its reply, then either a close or the idle wait (`Peek(4)`
//! under IdleTimeout, or Go 1.19's straight-to-readRequest when no idle
//! timeout applies). Every close is a plain `close()`, so the kernel picks
//! FIN or RST, except `closeWriteAndWait`.
//!
//! The handler and its reply are [`go_model::exchange::Exchange`]: the
//! handler's script, Go's response writer and the reuse rules, without I/O.
//! This file is the I/O: [`Conn::run_exchange`] does what the exchange asks
//! (sleep, write, read the body away, close) on the real socket.

use crate::events::{CloseReason, EventKind};
use crate::server::{ConnState, Shared};
use go_model::exchange::{Ended, Exchange, HandlerEnd, Step};
use go_model::handlers::{self, PanicKind};
use go_model::request::{self, ReadEnd, ReadFailure, ReadInput, ReadRequest, Request, RequestBody};
use go_model::response::{BodyRead, HeaderInputs, WriteFailed};
use go_model::rules::{self, CloseKind, IdleWait, RequestFacts, Reuse};
use labkit::chunked;
use labkit::wire::BodyFraming;
use std::io;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use labkit::clock::timeout_at;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
enum ReadErr {
    Timeout,
    Eof,
    Reset,
    Shutdown,
    Other(#[allow(dead_code)] io::Error),
    /// `readRequest` failed on what it read.
    Failed(ReadFailure),
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

/// The request body still to be read.
#[derive(Debug, Clone, Copy)]
enum BodyLeft {
    Length(u64),
    Chunked(chunked::Decoder),
}

pub(crate) struct Conn {
    pub id: u64,
    /// The peer as Go's `c.remoteAddr` spells it ("127.0.0.1:54321"), for
    /// the log.
    remote_addr: String,
    stream: Option<TcpStream>,
    /// Go's `bufio.Reader`: bytes read from the socket, not yet consumed.
    rbuf: Vec<u8>,
    write_deadline: Option<Instant>,
    /// The unread part of the current request body.
    body: BodyLeft,
    /// The previous request was a POST (`c.lastMethod`).
    after_post: bool,
    body_deadline: Option<Instant>,
    closed: bool,
    /// Why the last head read ended, if it did.
    read_end: Option<ReadEnd>,
    shared: Arc<Shared>,
    ctl: CancellationToken,
}

impl Conn {
    pub(crate) fn new(id: u64, stream: TcpStream, shared: Arc<Shared>, ctl: CancellationToken) -> Conn {
        let remote_addr = stream.peer_addr().map_or_else(|_| "unknown".to_string(), |a| a.to_string());
        Conn {
            id,
            remote_addr,
            stream: Some(stream),
            rbuf: Vec::with_capacity(rules::CONN_BUFFER),
            write_deadline: None,
            body: BodyLeft::Length(0),
            after_post: false,
            body_deadline: None,
            closed: false,
            read_end: None,
            shared,
            ctl,
        }
    }

    fn event(&self, kind: EventKind) {
        self.shared.events.push(self.id, kind);
    }

    pub(crate) async fn serve(mut self) {
        let cfg = self.shared.cfg.clone();
        // When the lab's idle race held Go ≤ 1.19's header read back, the
        // instant that read really began (the connection went idle).
        let mut started: Option<Instant> = None;
        loop {
            // readRequest: both read deadlines count from here.
            let t0 = started.take().unwrap_or_else(Instant::now);
            let hdr_deadline = rules::header_timeout(&cfg).map(|d| {
                self.event(EventKind::ReadDeadlineArmed { what: "header", after_ms: ms(d) });
                t0 + d
            });
            let req = match self.read_head(hdr_deadline, rules::header_limit(&cfg)).await {
                Ok(req) => req,
                Err(ReadErr::Shutdown) => {
                    let reason = self.shutdown_close().await;
                    return self.close(reason);
                }
                Err(ReadErr::Failed(failure)) => {
                    // (*conn).serve's replies to readRequest errors go
                    // straight to the socket, then the connection closes.
                    if let Some(reply) = failure.reply() {
                        let _ = self.sock_write(&reply).await;
                    }
                    return match failure {
                        ReadFailure::TooLarge => self.close_write_and_wait(CloseReason::HeaderTooLarge).await,
                        ReadFailure::Quiet => {
                            let reason = self.quiet_reason();
                            self.close(reason)
                        }
                        _ => self.close(CloseReason::BadRequest),
                    };
                }
                Err(e) => return self.close(e.close_reason()),
            };
            self.shared.set_state(self.id, ConnState::Active);
            self.after_post = req.method == "POST";
            let body_len = match req.body {
                RequestBody::Length(n) => n,
                _ => 0,
            };
            self.body = match req.body {
                RequestBody::Chunked => BodyLeft::Chunked(chunked::Decoder::default()),
                _ => BodyLeft::Length(body_len),
            };
            self.body_deadline = rules::request_timeout(&cfg).map(|d| t0 + d);
            if let Some(d) = rules::write_timeout(&cfg) {
                // `defer c.rwc.SetWriteDeadline(...)` in readRequest: armed
                // once the header is read, covering body, handler and write.
                self.write_deadline = Some(Instant::now() + d);
                self.event(EventKind::WriteDeadlineArmed { after_ms: ms(d) });
            }
            self.event(EventKind::HeadRead {
                method: req.method.clone(),
                target: req.request_uri.clone(),
                http11: req.at_least_11(),
                body_len,
            });

            let path = req.path.clone();
            self.shared.count_handler_run(&path);
            self.event(EventKind::HandlerStart { path });
            let script = handlers::script_for_request(&req);
            let facts = RequestFacts::from_request(&req);
            let exchange = match req.body {
                RequestBody::Chunked => Exchange::with_chunked_body(script, facts),
                _ => Exchange::new(script, facts, body_len),
            };
            let ended = self.run_exchange(exchange).await;
            let outcome = match ended.handler {
                HandlerEnd::Returned => "returned",
                HandlerEnd::Panicked(PanicKind::AbortHandler) => "abort-handler",
                HandlerEnd::Panicked(_) => "panic",
            };
            self.event(EventKind::HandlerEnd { outcome });
            if let HandlerEnd::Panicked(kind) = ended.handler {
                // conn.serve's deferred recover: `http: panic serving %v: %v\n%s`
                // with c.remoteAddr and the panic value; the Go stack that
                // follows has no counterpart here, so it is left out.
                if let Some(msg) = kind.message() {
                    tracing::error!(target: "upstream_sim", conn = self.id, "http: panic serving {}: {msg}", self.remote_addr);
                }
            }
            if req.expectation() == request::Expectation::Failed {
                // sendExpectationFailed, then `return`: a plain close.
                return self.close(CloseReason::CloseAfterReply);
            }
            match (ended.handler, ended.reuse) {
                (HandlerEnd::Panicked(_), _) => return self.close(CloseReason::Panic),
                (_, Reuse::CloseWriteAndWait) => return self.close_write_and_wait(CloseReason::CloseAfterReply).await,
                (_, Reuse::Close) => {
                    let reason = if ended.write_failed { CloseReason::WriteFailed } else { CloseReason::CloseAfterReply };
                    return self.close(reason);
                }
                (_, Reuse::Keep) => {}
            }

            self.shared.set_state(self.id, ConnState::Idle);
            if !self.shared.do_keep_alives() {
                // "We're in shutdown mode. We might've replied to the user
                // without "Connection: close" ..., but such is life."
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
                    if let rules::IdleClose::AtNextRequest(limit, race) = rules::idle_close(&cfg) {
                        // Lab knob: readRequest's header deadline, armed
                        // now, is held until the next request arrives.
                        let idle_from = Instant::now();
                        if let Err(reason) = self.await_readable().await {
                            return self.close(reason);
                        }
                        if Instant::now() >= idle_from + limit {
                            let reason = self.race_close(race).await;
                            return self.close(reason);
                        }
                        started = Some(idle_from);
                    }
                }
            }
        }
    }

    /// Runs one request's handler and reply: does on the socket whatever
    /// the exchange asks, for any script.
    async fn run_exchange(&mut self, mut ex: Exchange) -> Ended {
        loop {
            match ex.step() {
                Step::Sleep(d) => labkit::clock::sleep(d).await,
                Step::Header => ex.header(HeaderInputs {
                    keep_alives: self.shared.do_keep_alives(),
                    date: httpdate::fmt_http_date(std::time::SystemTime::now()),
                }),
                Step::HeadDecided { status, framing } => {
                    let framing = match framing {
                        BodyFraming::Chunked => "chunked".to_string(),
                        BodyFraming::Length(n) => format!("content-length {n}"),
                        BodyFraming::CloseDelimited => "close-delimited".to_string(),
                    };
                    self.event(EventKind::ResponseHead { status, framing });
                }
                Step::DiscardBody { max } => {
                    let read = self.discard_body(max).await;
                    ex.body_read(read);
                }
                Step::Write(bytes) => {
                    let r = self.sock_write(&bytes).await;
                    ex.wrote(r);
                }
                Step::CloseSocket => self.close_now(CloseReason::WriteFailed),
                Step::Done(ended) => return ended,
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
                Some(d) => timeout_at(go_notices(d), ready).await.map_err(|_| ReadErr::Timeout)??,
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

    /// `readRequest`: reads until [`request::read_request`] decides. It
    /// is asked again only where Go decides: after a line end, at the
    /// first bytes, at the read limit, or when reading ended.
    async fn read_head(&mut self, deadline: Option<Instant>, limit: usize) -> Result<Request, ReadErr> {
        let mut ended = None;
        let mut ask = true;
        loop {
            if ask {
                let input = ReadInput { ended, limit, after_post: self.after_post };
                match request::read_request(&self.rbuf, input) {
                    ReadRequest::NeedMore => {}
                    ReadRequest::Request(req, n) => {
                        self.rbuf.drain(..n);
                        return Ok(req);
                    }
                    ReadRequest::Failed(f) => {
                        self.read_end = ended;
                        return Err(ReadErr::Failed(f));
                    }
                }
                if ended.is_some() || self.rbuf.len() >= limit {
                    // read_request decides once reading ended; this is a guard.
                    return Err(ReadErr::Failed(ReadFailure::Quiet));
                }
            }
            let before = self.rbuf.len();
            match self.fill(deadline).await {
                Ok(_) => {
                    let fresh = &self.rbuf[before.saturating_sub(1)..];
                    ask = before < 8 || fresh.contains(&b'\n') || self.rbuf.len() >= limit;
                }
                Err(ReadErr::Shutdown) => return Err(ReadErr::Shutdown),
                Err(e) => {
                    ended = Some(match e {
                        ReadErr::Eof => ReadEnd::Eof,
                        ReadErr::Timeout => ReadEnd::Timeout,
                        _ => ReadEnd::Error,
                    });
                    ask = true;
                }
            }
        }
    }

    /// Why a quiet `readRequest` failure closes.
    fn quiet_reason(&self) -> CloseReason {
        match self.read_end {
            Some(ReadEnd::Timeout) => CloseReason::ReadTimeout,
            _ => CloseReason::PeerClosed,
        }
    }

    /// Reads and discards up to `max` body bytes under the request
    /// deadline (`io.CopyN(io.Discard, body, max)`).
    async fn discard_body(&mut self, max: u64) -> BodyRead {
        let mut done = 0;
        loop {
            let eof = match &mut self.body {
                BodyLeft::Length(left) => {
                    if *left == 0 {
                        return BodyRead { bytes: done, failed: false, eof: true };
                    }
                    if done == max {
                        return BodyRead { bytes: done, failed: false, eof: false };
                    }
                    let n = (self.rbuf.len() as u64).min(*left).min(max - done) as usize;
                    self.rbuf.drain(..n);
                    *left -= n as u64;
                    done += n as u64;
                    n == 0
                }
                // Go's chunkedReader under the body: sizes and CRLFs are
                // framing, only data counts toward `max`.
                BodyLeft::Chunked(d) => {
                    let mut probe = *d;
                    let step = probe.step(&self.rbuf);
                    match step {
                        Ok(chunked::Step::Data(n)) if n as u64 > max - done => {
                            if done == max {
                                return BodyRead { bytes: done, failed: false, eof: false };
                            }
                            // Only up to `max`: in its data state the decoder
                            // takes what it is shown.
                            let take = (max - done) as usize;
                            let _ = d.step(&self.rbuf[..take]);
                            self.rbuf.drain(..take);
                            done += take as u64;
                            false
                        }
                        _ => {
                            *d = probe;
                            match step {
                                Err(chunked::Malformed) => return BodyRead { bytes: done, failed: true, eof: false },
                                Ok(chunked::Step::Done(n)) => {
                                    self.rbuf.drain(..n);
                                    return BodyRead { bytes: done, failed: false, eof: true };
                                }
                                Ok(chunked::Step::Skip(n)) | Ok(chunked::Step::Data(n)) => {
                                    if matches!(step, Ok(chunked::Step::Data(_))) {
                                        done += n as u64;
                                    }
                                    self.rbuf.drain(..n);
                                    false
                                }
                                Ok(chunked::Step::NeedMore) => true,
                            }
                        }
                    }
                }
            };
            if eof && self.fill(self.body_deadline).await.is_err() {
                return BodyRead { bytes: done, failed: true, eof: false };
            }
        }
    }

    /// `bufr.Peek(4)` under the idle deadline.
    async fn idle_peek(&mut self, deadline: Option<Instant>) -> Result<(), CloseReason> {
        let race = match rules::idle_close(&self.shared.cfg) {
            rules::IdleClose::AtNextRequest(_, race) => Some(race),
            _ => None,
        };
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

    /// One socket write under the write deadline (`checkConnErrorWriter`),
    /// all or nothing as far as the model is concerned.
    async fn sock_write(&mut self, p: &[u8]) -> Result<(), WriteFailed> {
        if p.is_empty() {
            return Ok(());
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(WriteFailed);
        };
        let res = match self.write_deadline {
            // The poller fails a write whose deadline has passed before trying it.
            Some(d) if Instant::now() >= d => Err("i/o timeout".to_string()),
            Some(d) => match timeout_at(go_notices(d), stream.write_all(p)).await {
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
                self.event(EventKind::WriteFailed { error });
                Err(WriteFailed)
            }
        }
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
    /// (Its `finalFlush` has nothing left to write: the reply flushed
    /// `conn.bufw`, and the 431 went straight to the socket.)
    async fn close_write_and_wait(mut self, reason: CloseReason) {
        if self.closed {
            return;
        }
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

/// When Go's timed-out reader runs if its goroutine parks now (see
/// [`rules::deadline_fires`]).
fn go_notices(deadline: Instant) -> Instant {
    let now = Instant::now();
    now + rules::deadline_fires(deadline.saturating_duration_since(now))
}

fn has_unread(s: &TcpStream) -> bool {
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    let sock = socket2::SockRef::from(s);
    matches!(sock.peek(&mut buf), Ok(n) if n > 0)
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
