//! upstream-sim against real Go 1.19 under hostile clients: one named trial
//! per case (`hostile::<case>`). Each case sends the same bytes, with the
//! same pauses, to the emulator (in-process) and to real Go
//! (fixtures/go-upstream), reads until FIN, RST or a bounded quiet time
//! ("open"), and compares what came back (the bytes, with the `Date` value
//! normalised, so status line, header names, values, order and body) and
//! how the connection ended. Nothing about the real-Go side is hard-coded:
//! the suite only compares the two.
//!
//! The emulator side always runs: it must answer and stay alive (a `GET
//! /ok` on a fresh connection after every case). Without Go the comparison
//! is reported as ignored with the reason; with BADGATEWAY_REQUIRE_GO=1 it
//! fails instead. The cases are the table of §4 of
//! research/reliability-2026-11-23.md, and a few more.
//!
//! `cargo test -p harness --test hostile_clients -- chunked` runs the cases
//! whose name contains `chunked`.

use harness::go::GoServer;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use upstream_sim::{ServerConfig, UpstreamSim};

/// Cases mostly wait on the servers and on quiet times, so more run at once
/// than there are cores.
const DEFAULT_THREADS: usize = 16;
/// How long a connection must stay silent after the last byte sent (and the
/// last byte received) to count as "open".
const QUIET: Duration = Duration::from_millis(400);
/// No case reads for longer than this.
const CASE_LIMIT: Duration = Duration::from_secs(8);
/// The read-header-timeout server pair's ReadHeaderTimeout.
const RHT: Duration = Duration::from_millis(500);

/// Which server pair a case runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pair {
    /// `IdleTimeout` 5 s, nothing else set.
    Plain,
    /// `ReadHeaderTimeout` [`RHT`] as well.
    HeaderTimeout,
}

impl Pair {
    /// The quiet time that means "open": past the header timeout, if any.
    fn quiet(self) -> Duration {
        match self {
            Pair::Plain => QUIET,
            Pair::HeaderTimeout => RHT + QUIET,
        }
    }

    fn cfg(self) -> ServerConfig {
        let base = ServerConfig { idle_timeout: Duration::from_secs(5), ..ServerConfig::default() };
        match self {
            Pair::Plain => base,
            Pair::HeaderTimeout => ServerConfig { read_header_timeout: RHT, ..base },
        }
    }
}

/// What the client does, in order.
#[derive(Clone, Debug)]
enum Act {
    Send(Vec<u8>),
    /// The client pauses (it does not wait for anything).
    Pause(Duration),
    /// `shutdown(SHUT_WR)`: the client is done sending.
    HalfClose,
}

#[derive(Clone, Debug)]
struct Case {
    name: String,
    pair: Pair,
    acts: Vec<Act>,
}

fn send(b: impl AsRef<[u8]>) -> Act {
    Act::Send(b.as_ref().to_vec())
}

fn pause(ms: u64) -> Act {
    Act::Pause(Duration::from_millis(ms))
}

fn case(name: &str, acts: Vec<Act>) -> Case {
    Case { name: name.to_string(), pair: Pair::Plain, acts }
}

fn case_rht(name: &str, acts: Vec<Act>) -> Case {
    Case { name: name.to_string(), pair: Pair::HeaderTimeout, acts }
}

fn get(target: &str) -> String {
    format!("GET {target} HTTP/1.1\r\nHost: lab\r\n\r\n")
}

/// Deterministic bytes (xorshift64*), so a failing case can be replayed.
fn random_bytes(seed: u64, n: usize, keep: impl Fn(u8) -> bool) -> Vec<u8> {
    let mut x = seed;
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let b = (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8;
        if keep(b) {
            out.push(b);
        }
    }
    out
}

fn cases() -> Vec<Case> {
    const MAX_HEADER_BYTES: usize = 1 << 20;
    let header_of = |n: usize| format!("GET /ok HTTP/1.1\r\nHost: lab\r\nX-Big: {}\r\n\r\n", "h".repeat(n));
    let many_headers = |n: usize| {
        let mut s = "GET /ok HTTP/1.1\r\nHost: lab\r\n".to_string();
        for i in 0..n {
            s.push_str(&format!("X-H{i}: v\r\n"));
        }
        s + "\r\n"
    };
    let post = |target: &str, body: &[u8]| {
        let mut v = format!("POST {target} HTTP/1.1\r\nHost: lab\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        v.extend_from_slice(body);
        v
    };
    let with_head = |head: &str| format!("GET /ok HTTP/1.1\r\nHost: lab\r\n{head}\r\n");
    let chunked_post = |version: &str, te: &str, body: &str| {
        format!("POST /ok HTTP/{version}\r\nHost: lab\r\n{te}\r\n{body}")
    };
    let req_line = |line: &str| format!("{line}\r\nHost: lab\r\n\r\n");
    vec![
        case("baseline_get_ok", vec![send(get("/ok"))]),
        case("random_64_bytes_without_newline", vec![send(random_bytes(0x5eed, 64, |b| b != b'\n'))]),
        case("random_4096_bytes", vec![send(random_bytes(0xbad, 4096, |_| true))]),
        case("printable_200_then_crlfcrlf", vec![send([random_bytes(7, 200, |b| (0x21..0x7f).contains(&b)), b"\r\n\r\n".to_vec()].concat())]),
        case("sixteen_nul_bytes", vec![send([0u8; 16])]),
        case("tls_client_hello", vec![send(tls_client_hello())]),
        case("header_at_max_header_bytes", vec![send(header_of(MAX_HEADER_BYTES - 64))]),
        case("header_just_under_the_read_limit", vec![send(header_of(MAX_HEADER_BYTES + 4096 - 64))]),
        case("header_max_header_bytes_plus_4_kib_plus_1", vec![send(header_of(MAX_HEADER_BYTES + 4096 + 1))]),
        case("header_2_mib", vec![send(header_of(2 << 20))]),
        case("url_1_1_mib", vec![send(get(&format!("/ok?{}", "q".repeat(1100 << 10))))]),
        case("headers_100", vec![send(many_headers(98))]),
        case("headers_101", vec![send(many_headers(100))]),
        case("headers_1000", vec![send(many_headers(1000))]),
        case("pipelined_3_get_ok", vec![send(get("/ok").repeat(3))]),
        case("pipelined_50_get_ok", vec![send(get("/ok").repeat(50))]),
        case("post_with_body_then_get", vec![send([post("/ok", b"hello"), get("/ok").into_bytes()].concat())]),
        case("pipelined_ok_panic_ok", vec![send([get("/ok"), get("/panic"), get("/ok")].concat())]),
        case("chunked_request_body", vec![send(chunked_post("1.1", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"))]),
        case(
            "chunked_request_body_then_get",
            vec![send(chunked_post("1.1", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n") + &get("/ok"))],
        ),
        case("chunked_bad_chunk_size", vec![send(chunked_post("1.1", "Transfer-Encoding: chunked\r\n", "zz\r\nhello\r\n0\r\n\r\n"))]),
        case(
            "content_length_then_transfer_encoding",
            vec![send(chunked_post("1.1", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"))],
        ),
        case(
            "transfer_encoding_then_content_length",
            vec![send(chunked_post("1.1", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", "5\r\nhello\r\n0\r\n\r\n"))],
        ),
        case("te_gzip", vec![send(chunked_post("1.1", "Transfer-Encoding: gzip\r\n", "hello"))]),
        case("te_gzip_chunked", vec![send(chunked_post("1.1", "Transfer-Encoding: gzip, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"))]),
        case("te_identity", vec![send(chunked_post("1.1", "Transfer-Encoding: identity\r\n", ""))]),
        case("te_two_headers", vec![send(chunked_post("1.1", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"))]),
        case("te_chunked_mixed_case", vec![send(chunked_post("1.1", "Transfer-Encoding:  Chunked \r\n", "0\r\n\r\n"))]),
        case("te_chunked_on_http_1_0", vec![send(chunked_post("1.0", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"))]),
        case("two_different_content_lengths", vec![send(chunked_post("1.1", "Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"))]),
        case("two_equal_content_lengths", vec![send(chunked_post("1.1", "Content-Length: 5\r\nContent-Length: 5\r\n", "hello"))]),
        case("content_length_plus_5", vec![send(chunked_post("1.1", "Content-Length: +5\r\n", "hello"))]),
        case("content_length_minus_1", vec![send(chunked_post("1.1", "Content-Length: -1\r\n", ""))]),
        case("content_length_5_comma_5", vec![send(chunked_post("1.1", "Content-Length: 5,5\r\n", "hello"))]),
        case("content_length_2_pow_64", vec![send(chunked_post("1.1", "Content-Length: 18446744073709551616\r\n", ""))]),
        case("content_length_2_pow_63", vec![send(chunked_post("1.1", "Content-Length: 9223372036854775808\r\n", ""))]),
        case("content_length_2_pow_63_minus_1_no_body", vec![send(chunked_post("1.1", "Content-Length: 9223372036854775807\r\n", ""))]),
        case("content_length_empty", vec![send(chunked_post("1.1", "Content-Length: \r\n", ""))]),
        case(
            "content_length_10_with_5_bytes_then_half_close",
            vec![send(chunked_post("1.1", "Content-Length: 10\r\n", "hello")), Act::HalfClose],
        ),
        case("method_g_at_t", vec![send(req_line("G@T /ok HTTP/1.1"))]),
        case("method_empty", vec![send(req_line(" /ok HTTP/1.1"))]),
        case("method_lowercase_get", vec![send(req_line("get /ok HTTP/1.1"))]),
        case("method_foo", vec![send(req_line("FOO /ok HTTP/1.1"))]),
        case("method_connect", vec![send(req_line("CONNECT lab:80 HTTP/1.1"))]),
        case("head_ok", vec![send(req_line("HEAD /ok HTTP/1.1"))]),
        case("head_big", vec![send(req_line("HEAD /big HTTP/1.1"))]),
        case("head_big_then_get", vec![send(req_line("HEAD /big HTTP/1.1") + &get("/ok"))]),
        case("options_star", vec![send(req_line("OPTIONS * HTTP/1.1"))]),
        case("absolute_form_target", vec![send(req_line("GET http://x/ok HTTP/1.1"))]),
        case("absolute_form_without_host_header", vec![send("GET http://x/ok HTTP/1.1\r\n\r\n")]),
        case("target_without_leading_slash", vec![send(req_line("GET ok HTTP/1.1"))]),
        case("target_double_slash", vec![send(req_line("GET //ok HTTP/1.1"))]),
        case("space_in_target", vec![send(req_line("GET /o k HTTP/1.1"))]),
        case("http_1_0_get", vec![send("GET /ok HTTP/1.0\r\n\r\n")]),
        case("http_1_0_keep_alive", vec![send("GET /ok HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")]),
        case("http_1_0_keep_alive_big", vec![send("GET /big HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")]),
        case("http_0_9_get", vec![send("GET /ok\r\n")]),
        case("http_0_9_get_blank_line", vec![send("GET /ok\r\n\r\n")]),
        case("http_0_9_version", vec![send(req_line("GET /ok HTTP/0.9"))]),
        case("http_1_2", vec![send(req_line("GET /ok HTTP/1.2"))]),
        case("http_2_0_request_line", vec![send(req_line("GET /ok HTTP/2.0"))]),
        case("http_3_0_request_line", vec![send(req_line("GET /ok HTTP/3.0"))]),
        case("h2_preface", vec![send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")]),
        case("lowercase_version", vec![send(req_line("GET /ok http/1.1"))]),
        case("missing_host_on_1_1", vec![send("GET /ok HTTP/1.1\r\n\r\n")]),
        case("two_host_headers", vec![send("GET /ok HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")]),
        case("malformed_host", vec![send("GET /ok HTTP/1.1\r\nHost: a b\"\r\n\r\n")]),
        case("bare_lf_line_endings", vec![send("GET /ok HTTP/1.1\nHost: lab\n\n")]),
        case("mixed_lf_and_crlf", vec![send("GET /ok HTTP/1.1\r\nHost: lab\n\r\n")]),
        case("bare_cr_line_endings", vec![send("GET /ok HTTP/1.1\rHost: lab\r\r")]),
        case("leading_crlf", vec![send(format!("\r\n{}", get("/ok")))]),
        case("leading_crlf_after_post", vec![send([post("/ok", b"hello"), b"\r\n".to_vec(), get("/ok").into_bytes()].concat())]),
        case("empty_request", vec![send("\r\n\r\n")]),
        case("obs_fold_header", vec![send(with_head("X-A: a\r\n  b\r\n"))]),
        case("obs_fold_first_header", vec![send("GET /ok HTTP/1.1\r\n X-A: a\r\nHost: lab\r\n\r\n")]),
        case("empty_header_name", vec![send(with_head(": v\r\n"))]),
        case("space_before_colon", vec![send(with_head("X-A : v\r\n"))]),
        case("nul_in_value", vec![send(with_head("X-A: a\0b\r\n"))]),
        case("ctl_0x01_in_value", vec![send(with_head("X-A: a\x01b\r\n"))]),
        case("tab_in_value", vec![send(with_head("X-A: a\tb\r\n"))]),
        case("header_without_colon", vec![send(with_head("X-A v\r\n"))]),
        case("utf8_in_value", vec![send(with_head("X-A: grüße\r\n"))]),
        case("byte_0xff_in_value", vec![send([b"GET /ok HTTP/1.1\r\nHost: lab\r\nX-A: \xff\r\n\r\n".as_slice()].concat())]),
        case("byte_0xff_in_target", vec![send(b"GET /\xff HTTP/1.1\r\nHost: lab\r\n\r\n")]),
        case("percent_encoded_path", vec![send(get("/%6Fk"))]),
        case("bad_percent_escape", vec![send(get("/%zz"))]),
        case("control_byte_in_target", vec![send(b"GET /o\x01k HTTP/1.1\r\nHost: lab\r\n\r\n")]),
        case(
            "expect_100_continue_body_later",
            vec![send("POST /ok HTTP/1.1\r\nHost: lab\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"), pause(300), send("hello")],
        ),
        case("expect_100_continue_no_body", vec![send("GET /ok HTTP/1.1\r\nHost: lab\r\nExpect: 100-continue\r\n\r\n")]),
        case("expect_bogus", vec![send(with_head("Expect: bogus\r\n"))]),
        case("connection_close", vec![send(with_head("Connection: close\r\n"))]),
        case("post_panic_300_kib_unread_body", vec![send(post("/panic", &vec![b'b'; 300 << 10]))]),
        case("nosuch", vec![send(get("/nosuch"))]),
        case("sleep_ms_abc", vec![send(get("/sleep?ms=abc"))]),
        case("sleep_ms_minus_1", vec![send(get("/sleep?ms=-1"))]),
        case("sleep_ms_2_pow_66", vec![send(get("/sleep?ms=73786976294838206464"))]),
        case("sleep_ms_plus_5", vec![send(get("/sleep?ms=+5"))]),
        case("sleep_ms_percent_encoded", vec![send(get("/sleep?ms=%31"))]),
        case("big_bytes_abc", vec![send(get("/big?bytes=abc"))]),
        case("big_bytes_10", vec![send(get("/big?bytes=10"))]),
        case("big_bytes_empty", vec![send(get("/big?bytes="))]),
        case("big_bytes_i64_max", vec![send(get("/big?bytes=9223372036854775807"))]),
        case("big_bytes_i64_max_then_get", vec![send(get("/big?bytes=9223372036854775807") + &get("/ok"))]),
        case("big_bytes_2_pow_63", vec![send(get("/big?bytes=9223372036854775808"))]),
        case("big_bytes_2_pow_48_plus_1", vec![send(get("/big?bytes=281474976710657"))]),
        case("partial_bytes_i64_max_with_cl", vec![send(get("/partial?bytes=9223372036854775807&cl=1"))]),
        case("partial_bytes_2_pow_62_with_cl", vec![send(get("/partial?bytes=4611686018427387904&cl=1"))]),
        case("panic_after_flush_huge_bytes", vec![send(get("/panic-after-flush?bytes=9223372036854775807&ms=0"))]),
        case("timeout_handler_huge_limit", vec![send(get("/timeout-handler?ms=0&limit=9223372036854775807"))]),
        case(
            "slowloris_no_timeouts",
            std::iter::once(send("GET /ok HTTP/1.1\r\n")).chain((0..8).flat_map(|i| [pause(250), send(format!("X-S{i}: v\r\n"))])).collect(),
        ),
        case("byte_by_byte_request", get("/ok").bytes().flat_map(|b| [send([b]), pause(1)]).collect()),
        // Lines every 200 ms: the 500 ms deadline falls 100 ms from the
        // lines on either side of it (a line at the deadline itself would
        // race the close: unread bytes turn its FIN into a RST).
        case_rht(
            "slowloris_with_read_header_timeout",
            std::iter::once(send("GET /ok HTTP/1.1\r\n")).chain((0..6).flat_map(|i| [pause(200), send(format!("X-S{i}: v\r\n"))])).collect(),
        ),
        case_rht("idle_with_read_header_timeout", vec![]),
        case_rht("partial_request_line_then_stall_with_read_header_timeout", vec![send("GET /ok HT")]),
        case_rht("partial_header_line_then_stall_with_read_header_timeout", vec![send("GET /ok HTTP/1.1\r\nHos")]),
        case_rht("whole_header_lines_then_stall_with_read_header_timeout", vec![send("GET /ok HTTP/1.1\r\nHost: lab\r\n")]),
        case("partial_request_line_then_half_close", vec![send("GET /ok HT"), Act::HalfClose]),
        case("partial_header_then_half_close", vec![send("GET /ok HTTP/1.1\r\nHost: lab\r\n"), Act::HalfClose]),
        case("request_then_half_close", vec![send(get("/ok")), Act::HalfClose]),
    ]
}

/// A TLS 1.2 ClientHello record, as a TLS client's first bytes.
fn tls_client_hello() -> Vec<u8> {
    let mut hello = vec![0x03, 0x03];
    hello.extend(random_bytes(42, 32, |_| true));
    hello.extend([0x00, 0x00, 0x04, 0x13, 0x01, 0xc0, 0x2f, 0x01, 0x00, 0x00, 0x00]);
    let mut hs = vec![0x01, 0x00, (hello.len() >> 8) as u8, hello.len() as u8];
    hs.extend(hello);
    let mut rec = vec![0x16, 0x03, 0x01, (hs.len() >> 8) as u8, hs.len() as u8];
    rec.extend(hs);
    rec
}

/// How the connection ended, as the client saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Fin,
    Rst,
    Open,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    /// Everything received, the `Date` values replaced.
    bytes: Vec<u8>,
    end: End,
}

impl std::fmt::Display for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const SHOW: usize = 600;
        let shown = String::from_utf8_lossy(&self.bytes[..self.bytes.len().min(SHOW)]).escape_debug().to_string();
        let more = if self.bytes.len() > SHOW { format!("… ({} bytes)", self.bytes.len()) } else { String::new() };
        write!(f, "{:?} after \"{shown}\"{more}", self.end)
    }
}

/// Replaces each `Date:` header value (Go's 29-byte HTTP date).
fn normalise_dates(mut b: Vec<u8>) -> Vec<u8> {
    const KEY: &[u8] = b"\r\nDate: ";
    let mut i = 0;
    while let Some(at) = b[i..].windows(KEY.len()).position(|w| w == KEY) {
        let start = i + at + KEY.len();
        let end = (start + 29).min(b.len());
        b.splice(start..end, b"<date>".iter().copied());
        i = start;
    }
    b
}

/// Plays the case against `addr` and reads what comes back.
async fn play(addr: SocketAddr, acts: &[Act], quiet: Duration) -> Result<Seen, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect {addr}: {e}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let (done_tx, mut done_rx) = watch::channel(false);
    let acts = acts.to_vec();
    let writer = tokio::spawn(async move {
        for act in acts {
            // A server that already closed makes writes fail: the client
            // stops sending and keeps reading, as any client would.
            let ok = match act {
                Act::Send(b) => matches!(tokio::time::timeout(Duration::from_secs(3), wr.write_all(&b)).await, Ok(Ok(()))),
                Act::Pause(d) => {
                    tokio::time::sleep(d).await;
                    true
                }
                Act::HalfClose => wr.shutdown().await.is_ok(),
            };
            if !ok {
                break;
            }
        }
        let _ = done_tx.send(true);
        // Keep the write half (and so the socket) open until the reader is done.
        wr
    });
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut last = Instant::now();
    let end = loop {
        let quiet_at = if *done_rx.borrow() { Some(last.max(started) + quiet) } else { None };
        let limit = started + CASE_LIMIT;
        let wake = quiet_at.map_or(limit, |q| q.min(limit));
        tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => break End::Fin,
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    last = Instant::now();
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break End::Rst,
                Err(e) => return Err(format!("read: {e}")),
            },
            _ = done_rx.changed(), if !*done_rx.borrow() => last = last.max(Instant::now()),
            _ = tokio::time::sleep_until(wake) => {
                if quiet_at.is_none() {
                    return Err(format!("the client was still sending after {CASE_LIMIT:?}"));
                }
                break End::Open;
            }
        }
    };
    writer.abort();
    Ok(Seen { bytes: normalise_dates(got), end })
}

/// The process-wide runtime and servers: one emulator and one real Go per
/// pair, started on first use.
struct World {
    rt: tokio::runtime::Runtime,
    sims: Vec<(Pair, UpstreamSim)>,
    go: OnceLock<Result<Vec<(Pair, SocketAddr)>, String>>,
    go_servers: parking_lot::Mutex<Vec<GoServer>>,
}

const PAIRS: [Pair; 2] = [Pair::Plain, Pair::HeaderTimeout];

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime");
        let sims = rt.block_on(async {
            let mut v = Vec::new();
            for p in PAIRS {
                let sim = UpstreamSim::start(p.cfg(), ([127, 0, 0, 1], 0).into()).await.expect("start upstream-sim");
                v.push((p, sim));
            }
            v
        });
        World { rt, sims, go: OnceLock::new(), go_servers: parking_lot::Mutex::new(Vec::new()) }
    })
}

impl World {
    fn sim(&self, p: Pair) -> SocketAddr {
        self.sims.iter().find(|(q, _)| *q == p).map(|(_, s)| s.local_addr()).expect("a server per pair")
    }

    fn go(&self, bin: &Path, p: Pair) -> Result<SocketAddr, String> {
        let addrs = self.go.get_or_init(|| {
            self.rt.block_on(async {
                let mut v = Vec::new();
                for q in PAIRS {
                    let mut last = String::new();
                    let mut started = None;
                    for _ in 0..3 {
                        let port = harness::free_port().map_err(|e| format!("free port: {e}"))?;
                        match GoServer::start(bin, &q.cfg(), port).await {
                            Ok(g) => {
                                started = Some(g);
                                break;
                            }
                            Err(e) => last = e.to_string(),
                        }
                    }
                    let g = started.ok_or(format!("start go-upstream: {last}"))?;
                    v.push((q, g.addr));
                    self.go_servers.lock().push(g);
                }
                Ok(v)
            })
        });
        let addrs = addrs.as_ref().map_err(Clone::clone)?;
        addrs.iter().find(|(q, _)| *q == p).map(|(_, a)| *a).ok_or_else(|| "no Go server for the pair".to_string())
    }
}

impl World {
    /// The last lines real Go wrote, for a failure message.
    fn go_log_tail(&self) -> String {
        let lines: Vec<String> = self.go_servers.lock().iter().flat_map(|g| g.lines()).collect();
        lines[lines.len().saturating_sub(8)..].join("\n    ")
    }
}

/// A fresh `GET /ok` answers 200: the server survived the case.
async fn alive(addr: SocketAddr) -> Result<(), String> {
    let seen = tokio::time::timeout(Duration::from_secs(3), play(addr, &[send(get("/ok")), Act::HalfClose], QUIET))
        .await
        .map_err(|_| "no answer to GET /ok within 3 s".to_string())??;
    if seen.bytes.starts_with(b"HTTP/1.1 200 OK\r\n") {
        Ok(())
    } else {
        Err(format!("GET /ok afterwards: {seen}"))
    }
}

fn run_case(c: &Case) -> Result<Completion, Failed> {
    let w = world();
    let sim_addr = w.sim(c.pair);
    let go = harness::require::go();
    let go_addr = match &go {
        Ok(bin) => Some(w.go(bin, c.pair)?),
        Err(_) => None,
    };
    let (sim, real) = w.rt.block_on(async {
        let real = async {
            match go_addr {
                Some(a) => Some(play(a, &c.acts, c.pair.quiet()).await),
                None => None,
            }
        };
        tokio::join!(play(sim_addr, &c.acts, c.pair.quiet()), real)
    });
    let sim = sim.map_err(|e| format!("emulator: {e}"))?;
    w.rt.block_on(alive(sim_addr)).map_err(|e| format!("the emulator did not survive: {e}"))?;
    let Some(real) = real else {
        let missing = go.expect_err("no Go address without a missing Go");
        return harness::require::trial_outcome(missing);
    };
    let real = real.map_err(|e| format!("real Go: {e}"))?;
    if let Some(a) = go_addr {
        w.rt.block_on(alive(a)).map_err(|e| format!("real Go did not survive: {e}; its log ends: {}", w.go_log_tail()))?;
    }
    if std::env::var_os("HOSTILE_SHOW").is_some() {
        // Both observations, for a reader checking what the cases exercise.
        eprintln!("{}:\n  real Go:  {real}\n  emulator: {sim}", c.name);
    }
    if sim == real {
        Ok(Completion::Completed)
    } else {
        Err(format!("real Go and the emulator differ\n  real Go:  {real}\n  emulator: {sim}").into())
    }
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = args.test_threads.or(Some(DEFAULT_THREADS));
    let trials = cases().into_iter().map(|c| Trial::ignorable_test(format!("hostile::{}", c.name), move || run_case(&c))).collect();
    let conclusion = libtest_mimic::run(&args, trials);
    // Real Go processes are stopped here, by their PID (kill_on_drop would
    // not run: statics are not dropped).
    let w = world();
    let servers: Vec<GoServer> = std::mem::take(&mut *w.go_servers.lock());
    w.rt.block_on(async {
        for mut g in servers {
            g.kill().await;
        }
    });
    conclusion.exit();
}
