//! One request on one connection in virtual time, for the scenario oracle:
//! what Go 1.19 puts on the wire and how the connection ends.
//!
//! It drives the same [`Exchange`] (script interpreter, [response
//! writer](crate::response), [`rules`]) the emulator drives over
//! real sockets, with a virtual clock and a kernel model instead of I/O:
//!
//! * Time starts when the request head has been read and advances only with
//!   the handler's sleeps.
//! * A socket write at time `t` fails iff WriteTimeout is set and
//!   `t >= WriteTimeout`: `readRequest` arms the write deadline once the
//!   head is read, and the poller's check is `now >= deadline`. Writes are
//!   all or nothing.
//! * The whole request (`head_len + body_len` bytes) is in the receive
//!   buffer when Go reads. Go's `bufio.Reader` takes at most 4096 bytes per
//!   `read(2)`, so reading the head takes the head's 4 KiB blocks; body
//!   reads take what they need past that. A body read that needs the socket
//!   fails iff ReadTimeout is set and `t >= ReadTimeout` (measured, like the
//!   write deadline, from the moment the head was read).
//! * Bytes Go never read stay in the kernel, so a plain close is an RST
//!   ([`rules::close_kind`]), as the emulator's `MSG_PEEK` sees it;
//!   `closeWriteAndWait` is [`CloseKind::FinThenWait`].
//!
//! The `Date` header is [`EPOCH_DATE`]: every date has the same length, so
//! the write boundaries are those of any other.

use crate::config::ServerConfig;
use crate::exchange::{Exchange, Step};
use crate::handlers::script_for_target;
use crate::response::{conn_error_response, BodyRead, HeaderInputs, WriteFailed, EPOCH_DATE};
use crate::rules::{self, CloseKind, RequestFacts, Reuse};
use std::time::Duration;

/// The request, as far as Go's connection loop cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSpec {
    pub method: String,
    pub target: String,
    /// `HTTP/1.1` request line (else HTTP/1.0).
    pub http11: bool,
    /// `Connection: close` on the request.
    pub connection_close: bool,
    /// Bytes of the request head, blank line included.
    pub head_len: usize,
    /// `Content-Length` of the request body.
    pub body_len: u64,
    /// Body bytes declared but never sent: the last `body_withheld` bytes
    /// of `body_len` do not come (nginx's `auth_request` subrequest carries
    /// the main request's Content-Length without a body). 0: all sent.
    pub body_withheld: u64,
}

/// The time of a read that has no deadline and whose bytes never come: Go
/// waits until the peer goes away, later than any timeout of the peer's,
/// so nothing written after it reaches the peer.
pub const NEVER: Duration = Duration::MAX;

/// One successful `write(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Since the request head was read.
    pub at: Duration,
    pub bytes: Vec<u8>,
}

/// How the connection ends for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Go waits for the next request from `at` on (for how long:
    /// [`rules::effective_idle_limit`]).
    KeepAlive { at: Duration },
    /// Go closes at `at`.
    Close { at: Duration, how: CloseKind },
}

/// What one request does on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// 1, or 0 when the connection loop answered without a handler (431).
    pub handler_runs: u64,
    /// The socket writes that succeeded, in order.
    pub wire: Vec<Transmit>,
    pub end: End,
}

/// Serves `req` on a fresh connection of a server configured by `cfg`,
/// with `doKeepAlives()` equal to `keep_alives` throughout.
pub fn serve(cfg: &ServerConfig, keep_alives: bool, req: &RequestSpec) -> Served {
    let mut kernel = Kernel::new(req.head_len as u64, req.body_len, req.body_withheld);
    if req.head_len > rules::header_limit(cfg) {
        // (*conn).serve on errTooLarge: 431 straight to the socket (at
        // time 0 the write deadline is still ahead), then closeWriteAndWait.
        let wire = vec![Transmit { at: Duration::ZERO, bytes: conn_error_response(431) }];
        return Served { handler_runs: 0, wire, end: End::Close { at: Duration::ZERO, how: CloseKind::FinThenWait } };
    }
    let facts = RequestFacts {
        http11: req.http11,
        wants_close: req.http11 && req.connection_close,
        wants_10_keep_alive: false,
        head: req.method == "HEAD",
        unread_expect_continue: false,
    };
    let write_deadline = rules::write_timeout(cfg);
    let read_deadline = rules::request_timeout(cfg);
    let mut ex = Exchange::new(script_for_target(&req.target), facts, req.body_len);
    let mut now = Duration::ZERO;
    let mut wire = Vec::new();
    let mut closed = None;
    let ended = loop {
        match ex.step() {
            Step::Sleep(d) => now = now.saturating_add(d),
            Step::Header => ex.header(HeaderInputs { keep_alives, date: EPOCH_DATE.into() }),
            Step::HeadDecided { .. } => {}
            Step::DiscardBody { max } => ex.body_read(kernel.discard(max, &mut now, read_deadline)),
            Step::Write(bytes) => {
                if closed.is_some() || write_deadline.is_some_and(|d| now >= d) {
                    ex.wrote(Err(WriteFailed));
                } else {
                    wire.push(Transmit { at: now, bytes });
                    ex.wrote(Ok(()));
                }
            }
            Step::CloseSocket => {
                closed.get_or_insert(End::Close { at: now, how: rules::close_kind(kernel.unread()) });
            }
            Step::Done(ended) => break ended,
        }
    };
    let plain_close = End::Close { at: now, how: rules::close_kind(kernel.unread()) };
    let end = closed.unwrap_or(match ended.reuse {
        Reuse::Keep if keep_alives => End::KeepAlive { at: now },
        // `if !w.conn.server.doKeepAlives() { return }` after the reply.
        Reuse::Keep | Reuse::Close => plain_close,
        Reuse::CloseWriteAndWait => End::Close { at: now, how: CloseKind::FinThenWait },
    });
    Served { handler_runs: 1, wire, end }
}

/// The receive buffer and Go's `bufio.Reader` over it.
struct Kernel {
    head: u64,
    /// Head and body as declared.
    total: u64,
    /// What ever arrives (`total` less the withheld bytes)
    arrives: u64,
    /// Bytes Go has taken from the kernel.
    taken: u64,
    /// Body bytes read through the body.
    body_read: u64,
}

impl Kernel {
    fn new(head: u64, body: u64, withheld: u64) -> Kernel {
        let total = head + body;
        let arrives = total - withheld.min(body);
        let block = rules::CONN_BUFFER as u64;
        // readRequest's reads fill the 4 KiB bufio.Reader (exact for heads
        // up to 4 KiB; longer heads take whole blocks too, as a model).
        Kernel { head, total, arrives, taken: head.div_ceil(block).max(1).saturating_mul(block).min(arrives), body_read: 0 }
    }

    fn unread(&self) -> bool {
        self.taken < self.arrives
    }

    /// `io.CopyN(io.Discard, body, max)` at time `now`: first what the
    /// bufio.Reader holds, then the socket, which fails past the read
    /// deadline (bufio hands out buffered bytes whatever the deadline).
    ///
    /// Bytes that never arrive (withheld) block the read: until the read
    /// deadline (ReadTimeout), then it fails; without one until the peer
    /// goes away ([`NEVER`]). Either way `now` moves to that moment: the
    /// discard in `chunkWriter.writeHeader` comes before the response is
    /// written (observed on Go 1.19.8 behind nginx's `auth_request`: the
    /// handler ran, nothing was written until nginx closed).
    fn discard(&mut self, max: u64, now: &mut Duration, deadline: Option<Duration>) -> BodyRead {
        let body = self.total - self.head;
        let want = max.min(body - self.body_read);
        let buffered = self.taken - self.head - self.body_read;
        let from_buffer = want.min(buffered);
        if want > from_buffer && deadline.is_some_and(|d| *now >= d) {
            self.body_read += from_buffer;
            return BodyRead { bytes: from_buffer, failed: true, eof: false };
        }
        let in_socket = self.arrives - self.taken;
        if want - from_buffer > in_socket {
            self.taken = self.arrives;
            self.body_read += from_buffer + in_socket;
            *now = deadline.map_or(NEVER, |d| d.max(*now));
            return BodyRead { bytes: from_buffer + in_socket, failed: true, eof: false };
        }
        self.taken += want - from_buffer;
        self.body_read += want;
        BodyRead { bytes: want, failed: false, eof: self.body_read == body }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::FILL;
    use labkit::wire::{BodyFraming, ResponseHead};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn get(target: &str) -> RequestSpec {
        RequestSpec {
            method: "GET".into(),
            target: target.into(),
            http11: true,
            connection_close: false,
            head_len: 40 + target.len(),
            body_len: 0,
            body_withheld: 0,
        }
    }

    fn post(target: &str, body_len: u64) -> RequestSpec {
        RequestSpec { method: "POST".into(), head_len: 70 + target.len(), body_len, ..get(target) }
    }

    fn http10(spec: RequestSpec) -> RequestSpec {
        RequestSpec { http11: false, ..spec }
    }

    fn wt(n: u64) -> ServerConfig {
        ServerConfig { write_timeout: ms(n), ..ServerConfig::default() }
    }

    /// The response on the wire: head, framing, body bytes, body complete.
    fn read(s: &Served, closes: bool) -> Option<(ResponseHead, BodyFraming, usize, bool)> {
        let bytes: Vec<u8> = s.wire.iter().flat_map(|t| t.bytes.clone()).collect();
        let (head, n) = ResponseHead::parse(&bytes).unwrap()?;
        let framing = head.framing(false);
        let (body, done) = labkit::wire::decode_all(framing, &bytes[n..], closes);
        Some((head, framing, body, done.unwrap()))
    }

    #[test]
    fn ok_keeps_alive_with_one_write() {
        let s = serve(&ServerConfig::default(), true, &get("/ok"));
        assert_eq!(s.handler_runs, 1);
        assert_eq!(s.wire.len(), 1);
        assert_eq!(s.end, End::KeepAlive { at: Duration::ZERO });
        let (head, framing, body, done) = read(&s, false).unwrap();
        assert_eq!((head.status, framing, body, done), (200, BodyFraming::Length(3), 3, true));
    }

    #[test]
    fn sleep_past_write_timeout_sends_nothing_then_fin() {
        let s = serve(&wt(50), true, &get("/sleep?ms=100"));
        assert!(s.wire.is_empty());
        assert_eq!(s.end, End::Close { at: ms(100), how: CloseKind::Fin });
        // Not reached: the reply goes out at 100 ms, and the connection stays.
        let s = serve(&wt(300), true, &get("/sleep?ms=100"));
        assert_eq!(s.wire.iter().map(|t| t.at).collect::<Vec<_>>(), [ms(100)]);
        assert_eq!(s.end, End::KeepAlive { at: ms(100) });
    }

    #[test]
    fn panics_close_fin_or_rst_by_what_is_unread() {
        for target in ["/panic", "/abort"] {
            let s = serve(&ServerConfig::default(), true, &get(target));
            assert_eq!((s.wire.len(), s.end), (0, End::Close { at: Duration::ZERO, how: CloseKind::Fin }), "{target}");
        }
        // 100 bytes of body came with the head's read: FIN.
        let s = serve(&ServerConfig::default(), true, &post("/panic", 100));
        assert_eq!(s.end, End::Close { at: Duration::ZERO, how: CloseKind::Fin });
        // 1 MiB: (*body).Close gives up (over 256 KiB), the close resets.
        let s = serve(&ServerConfig::default(), true, &post("/panic", 1 << 20));
        assert_eq!(s.end, End::Close { at: Duration::ZERO, how: CloseKind::Rst });
        // 100 KiB: (*body).Close reads it away first, so FIN.
        let s = serve(&ServerConfig::default(), true, &post("/panic", 100 << 10));
        assert_eq!(s.end, End::Close { at: Duration::ZERO, how: CloseKind::Fin });
    }

    #[test]
    fn a_declared_body_that_never_comes_holds_the_answer() {
        // nginx's auth_request subrequest: GET with the main request's
        // Content-Length, no body. /ok does not read it; over HTTP/1.1 Go
        // discards it before writing its head and waits (observed on Go
        // 1.19.8: the handler ran, nothing came until nginx closed).
        let auth = RequestSpec { body_len: 11, body_withheld: 11, ..get("/ok") };
        let s = serve(&ServerConfig::default(), true, &auth);
        assert_eq!(s.handler_runs, 1);
        assert_eq!(s.wire.iter().map(|t| t.at).collect::<Vec<_>>(), [NEVER]);
        // ReadTimeout ends the wait: the discard fails, Go answers and closes.
        let rt = ServerConfig { read_timeout: ms(300), ..ServerConfig::default() };
        let s = serve(&rt, true, &auth);
        assert_eq!(s.wire.iter().map(|t| t.at).collect::<Vec<_>>(), [ms(300)]);
        assert_eq!(s.end, End::Close { at: ms(300), how: CloseKind::Fin });
        assert_eq!(read(&s, true).unwrap().0.status, 200);
        // HTTP/1.0 (nginx's default upstream request) closes after the reply:
        // no discard, the answer at once (observed: 200 through auth_request).
        let s = serve(&ServerConfig::default(), true, &http10(auth.clone()));
        assert_eq!(s.wire.iter().map(|t| t.at).collect::<Vec<_>>(), [Duration::ZERO]);
        // Nothing withheld: the body is read away, kept alive.
        let s = serve(&ServerConfig::default(), true, &RequestSpec { body_withheld: 0, ..auth });
        assert_eq!(s.end, End::KeepAlive { at: Duration::ZERO });
    }

    #[test]
    fn panic_after_flush_leaves_a_cut_body() {
        let s = serve(&ServerConfig::default(), true, &get("/panic-after-flush?bytes=1000&ms=50"));
        assert_eq!(s.end, End::Close { at: ms(50), how: CloseKind::Fin });
        let (head, framing, body, done) = read(&s, true).unwrap();
        assert_eq!((head.status, framing, body, done), (200, BodyFraming::Chunked, 1000, false));
        let s = serve(&ServerConfig::default(), true, &get("/panic-after-flush?bytes=1000&cl=1"));
        let (_, framing, body, done) = read(&s, true).unwrap();
        assert_eq!((framing, body, done), (BodyFraming::Length(2000), 1000, false));
    }

    #[test]
    fn partial_past_write_timeout_sends_the_first_half_then_closes() {
        let s = serve(&wt(100), true, &get("/partial?bytes=65536&ms=200"));
        assert!(s.wire.iter().all(|t| t.at == Duration::ZERO), "only the writes before the sleep succeed");
        assert_eq!(s.end, End::Close { at: ms(200), how: CloseKind::Fin });
        let (_, framing, body, done) = read(&s, true).unwrap();
        assert_eq!((framing, body, done), (BodyFraming::Chunked, 65536, false));
        // Without the timeout: all of it, chunked, kept alive.
        let s = serve(&ServerConfig::default(), true, &get("/partial?bytes=65536&ms=200"));
        assert_eq!(s.end, End::KeepAlive { at: ms(200) });
        assert_eq!(read(&s, false).unwrap().2, 131072);
    }

    #[test]
    fn http10_closes_after_the_reply() {
        let s = serve(&ServerConfig::default(), true, &http10(get("/ok")));
        assert_eq!(s.end, End::Close { at: Duration::ZERO, how: CloseKind::Fin });
        let (head, framing, ..) = read(&s, true).unwrap();
        assert!(!head.http11 && head.connection_close);
        assert_eq!(framing, BodyFraming::Length(3));
        let s = serve(&ServerConfig::default(), true, &http10(get("/big?bytes=5000")));
        assert_eq!(read(&s, true).unwrap().1, BodyFraming::CloseDelimited);
        // A closing request's body is left unread: the close resets.
        let s = serve(&ServerConfig::default(), true, &http10(post("/ok", 100 << 10)));
        assert_eq!(s.end, End::Close { at: Duration::ZERO, how: CloseKind::Rst });
    }

    #[test]
    fn big_on_http11_is_chunked_and_kept_alive() {
        let s = serve(&ServerConfig::default(), true, &get("/big?bytes=10000"));
        assert_eq!(s.end, End::KeepAlive { at: Duration::ZERO });
        assert_eq!(s.wire.len(), 3, "the 4 KiB spill, the rest of the chunk, then the terminator");
        let (_, framing, body, done) = read(&s, false).unwrap();
        assert_eq!((framing, body, done), (BodyFraming::Chunked, 10000, true));
        assert!(s.wire.concat_bytes().ends_with(&[FILL, b'\r', b'\n', b'0', b'\r', b'\n', b'\r', b'\n']));
    }

    #[test]
    fn keep_alives_off_closes_after_saying_so() {
        let s = serve(&ServerConfig::default(), false, &get("/ok"));
        assert_eq!(s.end, End::Close { at: Duration::ZERO, how: CloseKind::Fin });
        assert!(read(&s, true).unwrap().0.connection_close);
    }

    #[test]
    fn unread_bodies() {
        // Under 256 KiB: read away before the head, kept alive.
        let s = serve(&ServerConfig::default(), true, &post("/ok", 100 << 10));
        assert_eq!(s.end, End::KeepAlive { at: Duration::ZERO });
        // Over: Connection: close, then closeWriteAndWait.
        let s = serve(&ServerConfig::default(), true, &post("/ok", 300 << 10));
        assert_eq!(s.end, End::Close { at: Duration::ZERO, how: CloseKind::FinThenWait });
        assert!(read(&s, true).unwrap().0.connection_close);
        // ReadTimeout passed before the head is written: the discard fails
        // (only the bufio.Reader's bytes come), Connection: close, plain close.
        let cfg = ServerConfig { read_timeout: ms(100), ..ServerConfig::default() };
        let s = serve(&cfg, true, &post("/sleep?ms=150", 100 << 10));
        assert!(read(&s, true).unwrap().0.connection_close);
        assert_eq!(s.end, End::Close { at: ms(150), how: CloseKind::Rst });
        // A body that came whole with the head needs no socket read.
        let s = serve(&cfg, true, &post("/sleep?ms=150", 100));
        assert_eq!(s.end, End::KeepAlive { at: ms(150) });
    }

    #[test]
    fn every_handler() {
        let cases: [(&str, u16, End); 6] = [
            ("/recover-panic", 500, End::KeepAlive { at: Duration::ZERO }),
            ("/timeout-handler?ms=300&limit=50", 503, End::KeepAlive { at: ms(50) }),
            ("/timeout-handler?ms=20&limit=50", 200, End::KeepAlive { at: ms(20) }),
            ("/nope", 404, End::KeepAlive { at: Duration::ZERO }),
            ("/sleep?ms=abc", 400, End::KeepAlive { at: Duration::ZERO }),
            ("/big?bytes=100", 200, End::KeepAlive { at: Duration::ZERO }),
        ];
        for (target, status, end) in cases {
            let s = serve(&ServerConfig::default(), true, &get(target));
            assert_eq!((read(&s, false).unwrap().0.status, s.end), (status, end), "{target}");
        }
    }

    #[test]
    fn header_over_the_limit_gets_431_without_a_handler() {
        let cfg = ServerConfig { max_header_bytes: 1024, ..ServerConfig::default() };
        let s = serve(&cfg, true, &RequestSpec { head_len: 8192, ..get("/ok") });
        assert_eq!((s.handler_runs, s.end), (0, End::Close { at: Duration::ZERO, how: CloseKind::FinThenWait }));
        assert_eq!(read(&s, true).unwrap().0.status, 431);
    }

    trait Concat {
        fn concat_bytes(&self) -> Vec<u8>;
    }

    impl Concat for Vec<Transmit> {
        fn concat_bytes(&self) -> Vec<u8> {
            self.iter().flat_map(|t| t.bytes.iter().copied()).collect()
        }
    }
}
