//! The wire probes: a request pattern sent to a Go server (the emulator or
//! the real fixtures/go-upstream), and what a peer must see: the response,
//! how and when the connection ends, how often the handler ran.

use harness::client::{ConnEnd, WireClient};
use harness::free_port;
use harness::go::GoServer;
use labkit::wire::BodyFraming;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use upstream_sim::{ServerConfig, UpstreamSim};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the client sends.
#[derive(Clone, Copy, Debug)]
pub enum Request {
    /// `GET path HTTP/1.1`.
    Get(&'static str),
    /// `GET path HTTP/1.0`.
    Get10(&'static str),
    /// `POST path HTTP/1.1` with a body.
    Post { path: &'static str, body_len: usize },
    /// `POST path HTTP/1.0` with a body.
    Post10 { path: &'static str, body_len: usize },
    /// Part of a request header, then silence.
    PartialHeader,
    /// POST declaring `body_len` body bytes, sending only half of them.
    SlowBody { path: &'static str, body_len: usize },
    /// A request header with an `X-Big` value of `value_len` bytes.
    HugeHeader { value_len: usize },
    /// `GET /ok` on a keep-alive connection, then Shutdown while it is idle.
    GetThenShutdown,
}

/// A response as the peer reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub framing: BodyFraming,
    pub body_len: usize,
    /// The framing said the body was complete.
    pub complete: bool,
}

impl Reply {
    pub fn complete(status: u16, framing: BodyFraming, body_len: usize) -> Option<Reply> {
        Some(Reply { status, framing, body_len, complete: true })
    }

    pub fn cut(status: u16, framing: BodyFraming, body_len: usize) -> Option<Reply> {
        Some(Reply { status, framing, body_len, complete: false })
    }
}

/// What a peer must see.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The response, or `None`: the connection ended without one.
    pub response: Option<Reply>,
    /// The response said `Connection: close`.
    pub connection_close: bool,
    /// How the connection ends.
    pub end: ConnEnd,
    /// When it ends, in ms since the request was sent; for `Open`, how long
    /// it must stay open.
    pub within_ms: (u64, u64),
    /// The handler whose runs are counted (by path), and how many.
    pub handler: &'static str,
    pub runs: u64,
}

#[derive(Clone, Debug)]
pub struct Probe {
    /// The test's name: `emulator::<name>` and `real_go::<name>`.
    pub name: &'static str,
    pub cfg: ServerConfig,
    pub request: Request,
    pub expect: Expect,
}

fn cfg() -> ServerConfig {
    ServerConfig::default()
}

pub fn probes() -> Vec<Probe> {
    use BodyFraming::*;
    use ConnEnd::*;
    use Request::*;
    let ok3 = Reply::complete(200, Length(3), 3);
    vec![
        Probe {
            name: "ok_keeps_the_connection_open",
            cfg: cfg(),
            request: Get("/ok"),
            expect: Expect { response: ok3, connection_close: false, end: Open, within_ms: (0, 300), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "idle_timeout_closes_an_idle_connection_with_fin",
            cfg: ServerConfig { idle_timeout: ms(100), ..cfg() },
            request: Get("/ok"),
            expect: Expect { response: ok3, connection_close: false, end: Fin, within_ms: (90, 400), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "idle_timeout_0_falls_back_to_read_timeout",
            cfg: ServerConfig { read_timeout: ms(100), ..cfg() },
            request: Get("/ok"),
            expect: Expect { response: ok3, connection_close: false, end: Fin, within_ms: (90, 400), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "go119_read_header_timeout_bounds_the_idle_wait_when_idle_and_read_timeouts_are_0",
            cfg: ServerConfig { read_header_timeout: ms(100), ..cfg() },
            request: Get("/ok"),
            expect: Expect { response: ok3, connection_close: false, end: Fin, within_ms: (90, 400), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "write_timeout_the_handler_finishes_then_a_bare_close",
            cfg: ServerConfig { write_timeout: ms(100), ..cfg() },
            request: Get("/sleep?ms=250"),
            expect: Expect { response: None, connection_close: false, end: Fin, within_ms: (240, 600), handler: "/sleep", runs: 1 },
        },
        Probe {
            name: "write_timeout_not_reached",
            cfg: ServerConfig { write_timeout: ms(300), ..cfg() },
            request: Get("/sleep?ms=50"),
            expect: Expect {
                response: Reply::complete(200, Length(6), 6),
                connection_close: false,
                end: Open,
                within_ms: (40, 300),
                handler: "/sleep",
                runs: 1,
            },
        },
        Probe {
            name: "panic_closes_without_a_response",
            cfg: cfg(),
            request: Get("/panic"),
            expect: Expect { response: None, connection_close: false, end: Fin, within_ms: (0, 200), handler: "/panic", runs: 1 },
        },
        Probe {
            name: "err_abort_handler_closes_like_panic",
            cfg: cfg(),
            request: Get("/abort"),
            expect: Expect { response: None, connection_close: false, end: Fin, within_ms: (0, 200), handler: "/abort", runs: 1 },
        },
        Probe {
            name: "panic_with_a_small_unread_post_body_fin",
            cfg: cfg(),
            request: Post { path: "/panic", body_len: 100 },
            expect: Expect { response: None, connection_close: false, end: Fin, within_ms: (0, 200), handler: "/panic", runs: 1 },
        },
        Probe {
            name: "panic_with_1_mib_unread_post_body_rst",
            cfg: cfg(),
            request: Post { path: "/panic", body_len: 1 << 20 },
            expect: Expect { response: None, connection_close: false, end: Rst, within_ms: (0, 1000), handler: "/panic", runs: 1 },
        },
        Probe {
            name: "panic_after_flush_chunked_body_without_terminator",
            cfg: cfg(),
            request: Get("/panic-after-flush?bytes=1000"),
            expect: Expect {
                response: Reply::cut(200, Chunked, 1000),
                connection_close: false,
                end: Fin,
                within_ms: (40, 500),
                handler: "/panic-after-flush",
                runs: 1,
            },
        },
        Probe {
            name: "panic_after_flush_with_content_length_short_body",
            cfg: cfg(),
            request: Get("/panic-after-flush?bytes=1000&cl=1"),
            expect: Expect {
                response: Reply::cut(200, Length(2000), 1000),
                connection_close: false,
                end: Fin,
                within_ms: (40, 500),
                handler: "/panic-after-flush",
                runs: 1,
            },
        },
        Probe {
            name: "partial_write_past_write_timeout_first_64_kib_then_close",
            cfg: ServerConfig { write_timeout: ms(100), ..cfg() },
            request: Get("/partial?bytes=65536&ms=200"),
            expect: Expect {
                response: Reply::cut(200, Chunked, 65536),
                connection_close: false,
                end: Fin,
                within_ms: (190, 600),
                handler: "/partial",
                runs: 1,
            },
        },
        Probe {
            name: "http10_request_http10_response_then_close",
            cfg: cfg(),
            request: Get10("/ok"),
            expect: Expect { response: ok3, connection_close: false, end: Fin, within_ms: (0, 200), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "http10_large_body_close_delimited",
            cfg: cfg(),
            request: Get10("/big?bytes=5000"),
            expect: Expect {
                response: Reply::complete(200, CloseDelimited, 5000),
                connection_close: false,
                end: Fin,
                within_ms: (0, 300),
                handler: "/big",
                runs: 1,
            },
        },
        Probe {
            name: "large_body_on_http11_chunked_stays_open",
            cfg: cfg(),
            request: Get("/big?bytes=10000"),
            expect: Expect {
                response: Reply::complete(200, Chunked, 10000),
                connection_close: false,
                end: Open,
                within_ms: (0, 300),
                handler: "/big",
                runs: 1,
            },
        },
        Probe {
            name: "keep_alives_disabled_connection_close_then_fin",
            cfg: ServerConfig { keep_alives: false, ..cfg() },
            request: Get("/ok"),
            expect: Expect { response: ok3, connection_close: true, end: Fin, within_ms: (0, 200), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "read_header_timeout_on_a_half_sent_header_close_no_response",
            cfg: ServerConfig { read_header_timeout: ms(100), ..cfg() },
            request: PartialHeader,
            expect: Expect { response: None, connection_close: false, end: Fin, within_ms: (90, 400), handler: "/ok", runs: 0 },
        },
        Probe {
            name: "unread_body_over_256_kib_connection_close_and_fin",
            cfg: cfg(),
            request: Post { path: "/ok", body_len: 300 << 10 },
            expect: Expect { response: ok3, connection_close: true, end: Fin, within_ms: (0, 400), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "early_401_over_an_unread_post_body_http10_resets",
            cfg: cfg(),
            request: Post10 { path: "/unauthorized", body_len: 100 << 10 },
            expect: Expect {
                response: Reply::complete(401, Length(13), 13),
                connection_close: false,
                end: Rst,
                within_ms: (0, 1000),
                handler: "/unauthorized",
                runs: 1,
            },
        },
        Probe {
            name: "http10_closing_request_unread_body_is_not_drained_plain_close_resets",
            cfg: cfg(),
            request: Post10 { path: "/ok", body_len: 100 << 10 },
            expect: Expect { response: ok3, connection_close: false, end: Rst, within_ms: (0, 300), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "read_timeout_bounds_the_unread_body_go_drains_before_answering",
            cfg: ServerConfig { read_timeout: ms(100), ..cfg() },
            request: SlowBody { path: "/ok", body_len: 100 },
            expect: Expect { response: ok3, connection_close: true, end: Fin, within_ms: (90, 400), handler: "/ok", runs: 1 },
        },
        Probe {
            name: "recover_middleware_turns_a_panic_into_500",
            cfg: cfg(),
            request: Get("/recover-panic"),
            expect: Expect {
                response: Reply::complete(500, Length(22), 22),
                connection_close: false,
                end: Open,
                within_ms: (0, 300),
                handler: "/recover-panic",
                runs: 1,
            },
        },
        Probe {
            name: "timeout_handler_answers_503_at_its_limit",
            cfg: cfg(),
            request: Get("/timeout-handler?ms=300&limit=50"),
            expect: Expect {
                response: Reply::complete(503, Length(8), 8),
                connection_close: false,
                end: Open,
                within_ms: (40, 280),
                handler: "/timeout-handler",
                runs: 1,
            },
        },
        Probe {
            name: "big_header_sends_an_8k_cookie_go_does_not_limit",
            cfg: cfg(),
            request: Get("/big-header?bytes=8192"),
            expect: Expect {
                response: Reply::complete(200, Length(3), 3),
                connection_close: false,
                end: Open,
                within_ms: (0, 300),
                handler: "/big-header",
                runs: 1,
            },
        },
        Probe {
            // Three 9-byte events 60 ms apart, two 8-byte heartbeats in each gap.
            name: "sse_streams_events_and_heartbeats_chunked",
            cfg: cfg(),
            request: Get("/sse?events=3&ms=60&every=25"),
            expect: Expect {
                response: Reply::complete(200, Chunked, 3 * 9 + 2 * 2 * 8),
                connection_close: false,
                end: Open,
                within_ms: (110, 400),
                handler: "/sse",
                runs: 1,
            },
        },
        Probe {
            // Content-Length 4096 set by hand, 1024 bytes written: Go closes
            // after the short body.
            name: "content_length_above_the_body_written_short_body_then_close",
            cfg: cfg(),
            request: Get("/content-length?bytes=1024&declared=4096"),
            expect: Expect {
                response: Reply::cut(200, Length(4096), 1024),
                connection_close: false,
                end: Fin,
                within_ms: (0, 300),
                handler: "/content-length",
                runs: 1,
            },
        },
        Probe {
            name: "content_length_left_to_go_complete_and_open",
            cfg: cfg(),
            request: Get("/content-length?bytes=1024"),
            expect: Expect {
                response: Reply::complete(200, Length(1024), 1024),
                connection_close: false,
                end: Open,
                within_ms: (0, 300),
                handler: "/content-length",
                runs: 1,
            },
        },
        Probe {
            name: "unknown_path_404",
            cfg: cfg(),
            request: Get("/nope"),
            expect: Expect {
                response: Reply::complete(404, Length(19), 19),
                connection_close: false,
                end: Open,
                within_ms: (0, 300),
                handler: "/nope",
                runs: 1,
            },
        },
        Probe {
            name: "header_over_max_header_bytes_plus_4096_431_and_fin",
            cfg: ServerConfig { max_header_bytes: 1024, ..cfg() },
            request: HugeHeader { value_len: 8192 },
            expect: Expect {
                response: Reply::complete(431, CloseDelimited, 35),
                connection_close: true,
                end: Fin,
                within_ms: (0, 300),
                handler: "/ok",
                runs: 0,
            },
        },
        Probe {
            name: "shutdown_closes_an_idle_keep_alive_connection_at_once",
            cfg: cfg(),
            request: GetThenShutdown,
            expect: Expect { response: ok3, connection_close: false, end: Fin, within_ms: (0, 300), handler: "/ok", runs: 1 },
        },
    ]
}

/// What a probe observed.
#[derive(Clone, Debug)]
pub struct Observed {
    pub response: Option<Reply>,
    pub connection_close: bool,
    pub end: ConnEnd,
    pub end_ms: f64,
    pub runs: u64,
    /// Shutdown probe only: a new connect after Shutdown was refused.
    pub refused_after: Option<bool>,
}

impl Observed {
    /// What both servers must agree on (not the timing).
    pub fn agrees_with(&self, other: &Observed) -> bool {
        self.response == other.response
            && self.end == other.end
            && self.connection_close == other.connection_close
            && self.runs == other.runs
    }
}

/// The server a probe runs against.
pub enum Server {
    Emulator(UpstreamSim),
    RealGo(Box<GoServer>),
}

impl Server {
    /// The emulator, or the real Go binary, configured by `cfg`.
    pub async fn start(go: Option<&Path>, cfg: &ServerConfig) -> Result<Server, String> {
        match go {
            None => UpstreamSim::start(cfg.clone(), ([127, 0, 0, 1], 0).into())
                .await
                .map(Server::Emulator)
                .map_err(|e| format!("start the emulator: {e}")),
            Some(bin) => {
                // The port is picked free, then bound by Go: in the rare case
                // another socket took it meanwhile, pick again.
                let mut last = String::new();
                for _ in 0..3 {
                    let port = free_port().map_err(|e| format!("free port: {e}"))?;
                    match GoServer::start(bin, cfg, port).await {
                        Ok(g) => return Ok(Server::RealGo(Box::new(g))),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(format!("start go-upstream: {last}"))
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        match self {
            Server::Emulator(s) => s.local_addr(),
            Server::RealGo(g) => g.addr,
        }
    }

    async fn handler_runs(&mut self, path: &str, expect: u64) -> u64 {
        match self {
            Server::Emulator(s) => s.handler_runs_for(path),
            Server::RealGo(g) => {
                // The HANDLER line travels through a pipe: make the log current.
                if !g.sync_log(ms(2000)).await && expect > 0 {
                    // No longer accepting (Shutdown): wait for the line itself.
                    let needle = format!("path={path} ");
                    g.wait_line(ms(2000), |l| l.contains(&needle)).await;
                }
                g.handler_runs(path)
            }
        }
    }

    async fn shutdown(&mut self) {
        match self {
            Server::Emulator(s) => {
                s.shutdown(ms(2000)).await;
            }
            Server::RealGo(g) => g.terminate(),
        }
    }

    async fn stop(self) {
        match self {
            Server::Emulator(s) => s.crash(),
            Server::RealGo(mut g) => g.kill().await,
        }
    }
}

fn with_body(head: String, body_len: usize) -> Vec<u8> {
    let mut req = head.into_bytes();
    req.resize(req.len() + body_len, b'p');
    req
}

/// Runs `probe` against the emulator (`go: None`) or the real Go binary.
pub async fn run_probe(probe: &Probe, go: Option<&Path>) -> Result<Observed, String> {
    let mut server = Server::start(go, &probe.cfg).await?;
    let mut c = WireClient::connect(server.addr()).await.map_err(|e| format!("connect: {e}"))?;
    let start = tokio::time::Instant::now();
    let window = ms(probe.expect.within_ms.1);
    let sent = match probe.request {
        Request::Get(path) | Request::Get10(path) => {
            let version = if matches!(probe.request, Request::Get(_)) { "1.1" } else { "1.0" };
            c.send(format!("GET {path} HTTP/{version}\r\nHost: lab\r\n\r\n").as_bytes()).await
        }
        Request::GetThenShutdown => c.get("/ok").await,
        // The server may reset before the whole body is sent (bounded).
        Request::Post { path, body_len } => {
            let req = with_body(format!("POST {path} HTTP/1.1\r\nHost: lab\r\nContent-Length: {body_len}\r\n\r\n"), body_len);
            let _ = tokio::time::timeout(ms(2000), c.send(&req)).await;
            Ok(())
        }
        Request::Post10 { path, body_len } => {
            let req = with_body(format!("POST {path} HTTP/1.0\r\nHost: lab\r\nContent-Length: {body_len}\r\n\r\n"), body_len);
            let _ = tokio::time::timeout(ms(2000), c.send(&req)).await;
            Ok(())
        }
        Request::PartialHeader => c.send(b"GET /ok HTTP/1.1\r\nHost: la").await,
        Request::SlowBody { path, body_len } => {
            c.send(&with_body(format!("POST {path} HTTP/1.1\r\nHost: lab\r\nContent-Length: {body_len}\r\n\r\n"), body_len / 2))
                .await
        }
        Request::HugeHeader { value_len } => {
            let req = format!("GET /ok HTTP/1.1\r\nHost: lab\r\nX-Big: {}\r\n\r\n", "h".repeat(value_len));
            let _ = c.send(req.as_bytes()).await;
            Ok(())
        }
    };
    sent.map_err(|e| format!("send: {e}"))?;
    let ex = c.read_response(window).await;
    let response = ex.response.as_ref().map(|r| Reply {
        status: r.status,
        framing: r.framing,
        body_len: r.body_len,
        complete: r.complete,
    });
    let connection_close = ex.response.as_ref().is_some_and(|r| r.connection_close);
    let shutdown = matches!(probe.request, Request::GetThenShutdown);
    if shutdown {
        server.shutdown().await;
    }
    let end = match ex.end {
        Some(end) => end,
        None => c.wait_end(window.saturating_sub(start.elapsed())).await.0,
    };
    let end_ms = start.elapsed().as_secs_f64() * 1e3;
    let refused_after = if shutdown { Some(tokio::net::TcpStream::connect(server.addr()).await.is_err()) } else { None };
    let runs = server.handler_runs(probe.expect.handler, probe.expect.runs).await;
    server.stop().await;
    Ok(Observed { response, connection_close, end, end_ms, runs, refused_after })
}

/// The ways an observation misses the probe's expectation (empty: it meets it).
pub fn check(probe: &Probe, o: &Observed) -> Vec<String> {
    let e = &probe.expect;
    let mut bad = Vec::new();
    if o.response != e.response {
        bad.push(format!("response {:?}, expected {:?}", o.response, e.response));
    }
    if o.end != e.end {
        bad.push(format!("connection ended {:?}, expected {:?}", o.end, e.end));
    }
    let (lo, hi) = e.within_ms;
    if e.end != ConnEnd::Open && !(o.end_ms >= lo as f64 && o.end_ms <= hi as f64) {
        bad.push(format!("ended after {:.1} ms, expected within {lo}..{hi} ms", o.end_ms));
    }
    if o.connection_close != e.connection_close {
        bad.push(format!("Connection: close = {}, expected {}", o.connection_close, e.connection_close));
    }
    if o.runs != e.runs {
        bad.push(format!("{} handler ran {} times, expected {}", e.handler, o.runs, e.runs));
    }
    if o.refused_after == Some(false) {
        bad.push("a new connect after Shutdown was accepted".into());
    }
    bad
}
