//! Wire probes shared by `wire.rs` (emulator only, explicit expectations) and
//! `go_conformance.rs` (the same probes against real Go; both must meet the
//! expectation and agree with each other). A probe runs on any upstream
//! backend (`harness::UpstreamUnderTest`); each is one named trial.
#![allow(dead_code)]

use harness::client::{BodyFraming, ConnEnd, Request, WireClient};
use harness::{Action, UpstreamBackend};
use std::time::{Duration, Instant};
use upstream_sim::ServerConfig;

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Clone, Copy, Debug)]
pub enum Script {
    /// One request; read the response; wait for the connection to end.
    Get(&'static str),
    /// GET with HTTP/1.0.
    Get10(&'static str),
    /// POST with a body of N bytes.
    Post(&'static str, usize),
    /// HTTP/1.0 POST with a body of N bytes.
    Post10(&'static str, usize),
    /// Part of a request header, then silence.
    PartialHeader,
    /// POST declaring N body bytes, sending only half of them.
    SlowBody(&'static str, usize),
    /// A request header larger than the limit.
    HugeHeader(usize),
    /// GET on a keep-alive connection, then Shutdown while it is idle.
    ShutdownIdle(&'static str),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    None,
    /// status, framing ("cl", "chunked", "close"), body bytes, complete
    Resp(u16, &'static str, usize, bool),
}

#[derive(Clone, Debug)]
pub struct Probe {
    pub name: &'static str,
    pub cfg: ServerConfig,
    pub script: Script,
    pub body: Body,
    /// How the connection ends, and the window (ms since the request was
    /// sent) in which it must end. `Open` means still open after the window.
    pub end: ConnEnd,
    pub window: (u64, u64),
    pub connection_close: bool,
    pub handler_runs: (&'static str, u64),
}

fn cfg() -> ServerConfig {
    ServerConfig::default()
}

pub fn probes() -> Vec<Probe> {
    use Body::*;
    use ConnEnd::*;
    use Script::*;
    let p = |name, cfg, script, body, end, window, runs| Probe {
        name,
        cfg,
        script,
        body,
        end,
        window,
        connection_close: false,
        handler_runs: runs,
    };
    vec![
        p("ok keeps the connection open", cfg(), Get("/ok"), Resp(200, "cl", 3, true), Open, (0, 300), ("/ok", 1)),
        p("IdleTimeout closes an idle connection with FIN", ServerConfig { idle_timeout: ms(100), ..cfg() },
            Get("/ok"), Resp(200, "cl", 3, true), Fin, (90, 400), ("/ok", 1)),
        p("IdleTimeout 0 falls back to ReadTimeout", ServerConfig { read_timeout: ms(100), ..cfg() },
            Get("/ok"), Resp(200, "cl", 3, true), Fin, (90, 400), ("/ok", 1)),
        p("Go 1.19: ReadHeaderTimeout bounds the idle wait when Idle and Read are 0",
            ServerConfig { read_header_timeout: ms(100), ..cfg() },
            Get("/ok"), Resp(200, "cl", 3, true), Fin, (90, 400), ("/ok", 1)),
        p("WriteTimeout: the handler finishes, then a bare close", ServerConfig { write_timeout: ms(100), ..cfg() },
            Get("/sleep?ms=250"), None, Fin, (240, 600), ("/sleep", 1)),
        p("WriteTimeout not reached", ServerConfig { write_timeout: ms(300), ..cfg() },
            Get("/sleep?ms=50"), Resp(200, "cl", 6, true), Open, (40, 300), ("/sleep", 1)),
        p("panic closes without a response", cfg(), Get("/panic"), None, Fin, (0, 200), ("/panic", 1)),
        p("ErrAbortHandler closes like panic", cfg(), Get("/abort"), None, Fin, (0, 200), ("/abort", 1)),
        p("panic with a small unread POST body: FIN", cfg(), Post("/panic", 100), None, Fin, (0, 200), ("/panic", 1)),
        p("panic with 1 MiB unread POST body: RST", cfg(), Post("/panic", 1 << 20), None, Rst, (0, 1000), ("/panic", 1)),
        p("panic after flush: chunked body without terminator", cfg(), Get("/panic-after-flush?bytes=1000"),
            Resp(200, "chunked", 1000, false), Fin, (40, 500), ("/panic-after-flush", 1)),
        p("panic after flush with Content-Length: short body", cfg(), Get("/panic-after-flush?bytes=1000&cl=1"),
            Resp(200, "cl", 1000, false), Fin, (40, 500), ("/panic-after-flush", 1)),
        p("partial write past WriteTimeout: first 64 KiB, then close", ServerConfig { write_timeout: ms(100), ..cfg() },
            Get("/partial?bytes=65536&ms=200"), Resp(200, "chunked", 65536, false), Fin, (190, 600), ("/partial", 1)),
        p("HTTP/1.0 request: HTTP/1.0 response, then close", cfg(), Get10("/ok"), Resp(200, "cl", 3, true), Fin, (0, 200), ("/ok", 1)),
        p("HTTP/1.0 large body: close-delimited", cfg(), Get10("/big?bytes=5000"), Resp(200, "close", 5000, true), Fin, (0, 300), ("/big", 1)),
        p("large body on HTTP/1.1: chunked, stays open", cfg(), Get("/big?bytes=10000"), Resp(200, "chunked", 10000, true), Open, (0, 300), ("/big", 1)),
        Probe { connection_close: true, ..p("keep-alives disabled: Connection: close, then FIN", ServerConfig { keep_alives: false, ..cfg() },
            Get("/ok"), Resp(200, "cl", 3, true), Fin, (0, 200), ("/ok", 1)) },
        p("ReadHeaderTimeout on a half-sent header: close, no response", ServerConfig { read_header_timeout: ms(100), ..cfg() },
            PartialHeader, None, Fin, (90, 400), ("/ok", 0)),
        Probe { connection_close: true, ..p("unread body over 256 KiB: Connection: close and FIN", cfg(), Post("/ok", 300 << 10),
            Resp(200, "cl", 3, true), Fin, (0, 400), ("/ok", 1)) },
        p("HTTP/1.0 (closing) request: unread body is not drained, plain close resets",
            cfg(), Post10("/ok", 100 << 10), Resp(200, "cl", 3, true), Rst, (0, 300), ("/ok", 1)),
        Probe { connection_close: true, ..p("ReadTimeout bounds the unread body Go drains before answering: Connection: close",
            ServerConfig { read_timeout: ms(100), ..cfg() }, SlowBody("/ok", 100), Resp(200, "cl", 3, true), Fin, (90, 400), ("/ok", 1)) },
        p("recover middleware turns a panic into 500", cfg(), Get("/recover-panic"), Resp(500, "cl", 22, true), Open, (0, 300), ("/recover-panic", 1)),
        p("TimeoutHandler answers 503 at its limit", cfg(), Get("/timeout-handler?ms=300&limit=50"),
            Resp(503, "cl", 8, true), Open, (40, 280), ("/timeout-handler", 1)),
        p("unknown path: 404", cfg(), Get("/nope"), Resp(404, "cl", 19, true), Open, (0, 300), ("/nope", 1)),
        Probe { connection_close: true, ..p("header over MaxHeaderBytes+4096: 431 and FIN", ServerConfig { max_header_bytes: 1024, ..cfg() },
            HugeHeader(8192), Resp(431, "close", 35, true), Fin, (0, 300), ("/ok", 0)) },
        p("Shutdown closes an idle keep-alive connection at once", cfg(), ShutdownIdle("/ok"),
            Resp(200, "cl", 3, true), Fin, (0, 300), ("/ok", 1)),
    ]
}

/// What a probe observed.
#[derive(Clone, Debug)]
pub struct Observed {
    pub body: Body,
    pub end: ConnEnd,
    pub end_ms: f64,
    pub connection_close: bool,
    pub handler_runs: u64,
    /// Shutdown probe only: a new connect after Shutdown was refused.
    pub refused_after: Option<bool>,
}

/// Starts the probe's server on `backend`, runs its script with a raw
/// client, and reads what the client and the server saw.
pub async fn run_probe(probe: Probe, backend: UpstreamBackend) -> Observed {
    let mut server = backend.start(&probe.cfg, 1, Instant::now()).await.unwrap_or_else(|e| panic!("start {}: {e}", backend.name()));
    let addr = server.addrs()[0];
    let mut c = WireClient::connect(addr).await.unwrap();
    let start = tokio::time::Instant::now();
    let window = ms(probe.window.1);
    let mut refused_after = None;
    match probe.script {
        Script::Get(path) | Script::ShutdownIdle(path) => c.get(path).await.unwrap(),
        Script::Get10(path) => c.send_request(&Request::get(path).http10()).await.unwrap(),
        Script::Post(path, n) => {
            // The server may reset before the whole body is sent.
            let _ = tokio::time::timeout(ms(2000), c.post(path, n)).await;
        }
        Script::Post10(path, n) => {
            let _ = tokio::time::timeout(ms(2000), c.send_request(&Request::post(path, n).http10())).await;
        }
        Script::PartialHeader => c.send(b"GET /ok HTTP/1.1\r\nHost: la").await.unwrap(),
        Script::SlowBody(path, n) => {
            // The head and only the first half of the body.
            let mut req = Request::post(path, n).encode();
            req.truncate(req.len() - (n - n / 2));
            c.send(&req).await.unwrap();
        }
        Script::HugeHeader(n) => {
            let req = format!("GET /ok HTTP/1.1\r\nHost: lab\r\nX-Big: {}\r\n\r\n", "h".repeat(n));
            let _ = c.send(req.as_bytes()).await;
        }
    }
    let ex = c.read_response(window).await;
    let body = match &ex.response {
        None => Body::None,
        Some(r) => Body::Resp(
            r.status,
            match r.framing {
                BodyFraming::Length(_) => "cl",
                BodyFraming::Chunked => "chunked",
                BodyFraming::CloseDelimited => "close",
            },
            r.body_len,
            r.complete,
        ),
    };
    let connection_close = ex.response.as_ref().is_some_and(|r| r.connection_close);
    if let Script::ShutdownIdle(_) = probe.script {
        server.act(Action::Shutdown).await.unwrap();
    }
    let (end, end_ms) = match ex.end {
        Some(end) => (end, start.elapsed().as_secs_f64() * 1e3),
        None => {
            let left = window.saturating_sub(start.elapsed());
            let (end, _) = c.wait_end(left).await;
            (end, start.elapsed().as_secs_f64() * 1e3)
        }
    };
    if let Script::ShutdownIdle(_) = probe.script {
        refused_after = Some(tokio::net::TcpStream::connect(addr).await.is_err());
    }
    let handler_runs = server.handler_runs(probe.handler_runs.0).await;
    server.stop().await;
    Observed { body, end, end_ms, connection_close, handler_runs, refused_after }
}

/// Checks an observation against the probe's expectation; returns the
/// mismatches (empty when it meets it).
pub fn check(probe: &Probe, o: &Observed) -> Vec<String> {
    let mut bad = Vec::new();
    if o.body != probe.body {
        bad.push(format!("response {:?}, expected {:?}", o.body, probe.body));
    }
    if o.end != probe.end {
        bad.push(format!("connection ended {:?}, expected {:?}", o.end, probe.end));
    }
    let (lo, hi) = probe.window;
    if probe.end != ConnEnd::Open && !(o.end_ms >= lo as f64 && o.end_ms <= hi as f64) {
        bad.push(format!("ended after {:.1} ms, expected within {lo}..{hi} ms", o.end_ms));
    }
    if o.connection_close != probe.connection_close {
        bad.push(format!("Connection: close = {}, expected {}", o.connection_close, probe.connection_close));
    }
    if o.handler_runs != probe.handler_runs.1 {
        bad.push(format!("{} handler ran {} times, expected {}", probe.handler_runs.0, o.handler_runs, probe.handler_runs.1));
    }
    if o.refused_after == Some(false) {
        bad.push("a new connect after Shutdown was accepted".into());
    }
    bad
}

/// A probe's trial name: its description in snake case
/// ("IdleTimeout 0 falls back" → `idle_timeout_0_falls_back`).
pub fn trial_name(probe: &Probe) -> String {
    let chars: Vec<char> = probe.name.chars().collect();
    let mut name = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            // A word boundary inside CamelCase: "eT" in "IdleTimeout".
            let camel = c.is_ascii_uppercase()
                && i > 0
                && chars[i - 1].is_ascii_lowercase()
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if camel {
                name.push('_');
            }
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('_') {
            name.push('_');
        }
    }
    name.trim_end_matches('_').to_string()
}

/// The command line, with `threads` test threads unless the user chose.
pub fn arguments(threads: usize) -> libtest_mimic::Arguments {
    let mut args = libtest_mimic::Arguments::from_args();
    if args.test_threads.is_none() {
        args.test_threads = Some(std::env::var("RUST_TEST_THREADS").ok().and_then(|n| n.parse().ok()).unwrap_or(threads));
    }
    args
}

/// Runs a probe's future on a runtime of its own.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime").block_on(f)
}
