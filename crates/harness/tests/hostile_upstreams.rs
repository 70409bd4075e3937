//! Hostile upstreams behind the proxy and behind real nginx: one named
//! trial per mode (`upstream::<mode>`), and the client-side cases
//! (`client::<case>`: aborts, bodies past the limits, resets while sending).
//!
//! Each trial starts a raw-TCP upstream that answers every connection with
//! the mode's bytes and ends it with FIN or RST, then sends the same client
//! request through real nginx 1.22 and through the proxy, each with the same
//! nginx.conf text in its own prefix. Compared: every byte the client gets
//! (the `Date:` value masked), how the connection ends (FIN, RST, open), the
//! error.log lines (timestamp, pid and connection number masked) and the
//! access-log lines of every file the case names (`access_log` in a
//! location, a server, several, `off`). The expected values are not written here: real nginx
//! is the reference, run in the same trial.
//!
//! `buffering::*` pause the client (it reads nothing until the upstream has
//! written its whole reply, or a bounded time) and compare whether the
//! upstream finished meanwhile: nginx's read-ahead (`proxy_buffering`).
//!
//! An RST sent right behind the upstream's last bytes races real nginx's
//! own first read of the body (seen both ways on nginx 1.22.1), so the
//! resets here come 100 ms after the bytes, when nginx has read them.
//!
//! Without nginx the trials are reported as ignored, with the reason; with
//! BADGATEWAY_REQUIRE_NGINX=1 (CI) they fail instead.

use harness::require;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use nginx_model::conf;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the upstream ends a connection after its reply.
#[derive(Clone, Copy, Debug)]
enum End {
    Fin,
    /// SO_LINGER 0: the close sends an RST.
    Rst,
    /// Keep the connection open this long, then FIN.
    HoldThenFin(u64),
    /// Keep it open this long, then RST: nginx has read what came before.
    HoldThenRst(u64),
    /// Read nothing more until nginx has stopped writing (the request
    /// waits in the socket buffers), then RST.
    RstWhenBlocked,
}

/// The client ends its side on an event, never after a guessed time.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ClientClose {
    /// Closes once the upstream has the request (nginx waits for the header).
    AbortWhenReceived,
    /// The same with an RST.
    ResetWhenReceived,
    /// Closes once the upstream has written its reply (nginx reads the body).
    AbortWhenReplied,
    /// Half-closes after reading a whole response (a keepalive client leaving).
    HalfCloseAfterResponse,
    /// Reads a whole response, then sends more bytes and reads to the end:
    /// a server in a lingering close reads and drops them (FIN), one that
    /// has closed answers them with an RST.
    SendAfterResponse,
}

/// What the upstream has done, for the client to wait on.
#[derive(Default)]
struct UpstreamEvents {
    received: tokio::sync::Notify,
    replied: tokio::sync::Notify,
    /// Replies written whole so far, and a wake-up for every waiter at each.
    replies: std::sync::atomic::AtomicUsize,
    replied_all: tokio::sync::Notify,
    /// The request line of each request the upstream got.
    request_lines: parking_lot::Mutex<Vec<String>>,
}

/// When the upstream replies.
#[derive(Clone, Copy, Debug)]
enum Reply {
    /// After the request head.
    AfterHead,
    /// After the request head and this many body bytes.
    AfterBody(usize),
}

#[derive(Clone)]
struct Case {
    name: String,
    /// The upstream's reply bytes.
    reply: Vec<u8>,
    when: Reply,
    end: End,
    /// The client's request bytes.
    request: Vec<u8>,
    /// When and how the client ends its side.
    client_close: Option<ClientClose>,
    /// The upstream waits this long after the request before it replies.
    reply_delay_ms: u64,
    /// Extra directives in the location.
    location: String,
    /// Extra directives (and locations) in the server, before `location /`.
    server: String,
    /// `location /`'s proxy_pass.
    pass: String,
    /// The access log files compared (relative to the prefix).
    access_logs: Vec<&'static str>,
    /// Access lines to wait for (all files together): nginx writes a
    /// pipelined connection's last line after its lingering close, once the
    /// client has closed too (`ngx_http_set_lingering_close`).
    access_lines: usize,
    /// No access line is expected: the logs are complete once error.log
    /// has a line (the client's keepalive close).
    settled_by_error_log: bool,
    /// The reset comes while nginx may be writing or waiting to write: nginx
    /// itself logs either line, so both count as one.
    reset_while_writing: bool,
    /// After its reply the upstream echoes what it reads (a WebSocket
    /// tunnel's far end) until EOF or 5 s of silence, then ends as `end`.
    echo: bool,
    /// The reply's body is the request head the upstream got (what nginx
    /// forwarded): `reply` is only the status line.
    echo_head: bool,
    /// The upstream notes each request's source address (`proxy_bind`).
    show_peer: bool,
    /// The client reads nothing after sending its request until the
    /// upstream has written its whole reply, or at most this long; whether
    /// the upstream finished meanwhile is compared (`proxy_buffering`).
    client_pause_ms: Option<u64>,
}

const GET: &[u8] = b"GET /x HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n";

fn case(name: &str, reply: &[u8], end: End) -> Case {
    Case {
        name: name.into(),
        reply: reply.to_vec(),
        when: Reply::AfterHead,
        end,
        request: GET.to_vec(),
        client_close: None,
        reply_delay_ms: 0,
        location: String::new(),
        server: String::new(),
        pass: "http://u".into(),
        access_logs: vec!["access.log"],
        access_lines: 1,
        settled_by_error_log: false,
        reset_while_writing: false,
        echo: false,
        echo_head: false,
        show_peer: false,
        client_pause_ms: None,
    }
}

/// A request for `target` through `location / { proxy_pass PASS; }` and
/// the `server` text's locations: the upstream's request line is compared.
fn uri_case(name: &str, pass: &str, server: &str, target: &str, reply: &[u8]) -> Case {
    let mut c = case(name, reply, End::Fin);
    c.pass = pass.into();
    c.server = server.into();
    c.request = format!("GET {target} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").into_bytes();
    c
}

/// A case whose access lines go to `location` and `server` directives' logs.
fn logged(name: &str, server: &str, location: &str, logs: &[&'static str]) -> Case {
    let mut c = case(name, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", End::Fin);
    c.server = server.into();
    c.location = location.into();
    c.access_logs = logs.to_vec();
    c
}

fn with_headers(n: usize) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..n {
        r.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
    }
    r.extend_from_slice(b"Content-Length: 2\r\n\r\nok");
    r
}

fn big_header(size: usize) -> Vec<u8> {
    let mut r = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    r.extend(std::iter::repeat_n(b'a', size));
    r.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\nok");
    r
}

fn post(len: usize) -> Vec<u8> {
    let mut r = format!("POST /x HTTP/1.1\r\nHost: lab\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n").into_bytes();
    r.extend(std::iter::repeat_n(b'p', len));
    r
}

fn cases() -> Vec<Case> {
    use End::*;
    let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
    let mut v = vec![
        case("valid_200", ok, Fin),
        case("valid_200_rst_later", ok, HoldThenRst(100)),
        case("binary_garbage", b"\x00\xff\xfegarbage bytes\r\n\r\n", Fin),
        case("text_without_status_line", b"hello, this is not http\r\nat all\r\n", Fin),
        case("headers_without_status_line", b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("garbage_lf", b"garbage\n", Fin),
        case("header_5k", &big_header(5 * 1024), Fin),
        case("header_9k", &big_header(9 * 1024), Fin),
        case("headers_150", &with_headers(150), Fin),
        case("chunked_bad_size", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", Fin),
        case("chunked_bad_size_after_good_chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n0\r\n\r\n", Fin),
        case("chunked_missing_crlf_after_data", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX5\r\nhello\r\n0\r\n\r\n", Fin),
        case("chunked_size_overflow", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n", Fin),
        case("chunked_eof_inside_chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", Fin),
        case("chunked_valid", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", Fin),
        case("continue_then_200", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("early_hints_only", b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", Fin),
        case("switching_protocols", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n", Fin),
        case("close_inside_status_line", b"HTTP/1.1 20", Fin),
        case("close_inside_header", b"HTTP/1.1 200 OK\r\nX-A: b", Fin),
        case("rst_inside_header", b"HTTP/1.1 200 OK\r\nX-A: b", Rst),
        case("close_no_bytes", b"", Fin),
        case("rst_no_bytes", b"", Rst),
        case("content_length_abc", b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok", Fin),
        case("two_content_lengths", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nok", Fin),
        case("content_length_minus_1", b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok", Fin),
        case("body_shorter_than_length", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", Fin),
        case("body_longer_than_length", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA", Fin),
        case("status_999_weird", b"HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("status_two_digits", b"HTTP/1.1 20 OK\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("status_without_reason", b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("custom_reason", b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("http2_status_line", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("http10_status_line", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("http10_close_delimited", b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end", Fin),
        case("bare_lf_response", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", Fin),
        case("header_without_colon", b"HTTP/1.1 200 OK\r\nX-Bad header line\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("nul_in_header", b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("space_before_colon", b"HTTP/1.1 200 OK\r\nX-Bad : a\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("obs_fold", b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("no_content_with_body", b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\nsurprise", Fin),
        case("not_modified", b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", Fin),
        case("header_case_kept", b"HTTP/1.1 200 OK\r\nX-Connection: kept\r\nx-lower: v\r\nSET-COOKIE: a=b\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("hop_by_hop_headers", b"HTTP/1.1 200 OK\r\nConnection: close\r\nKeep-Alive: timeout=5\r\nServer: go\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nX-Pad: p\r\nX-Accel-Buffering: no\r\nContent-Length: 2\r\n\r\nok", Fin),
        case("status_line_then_silence", b"HTTP/1.1 200 OK\r\n", HoldThenFin(300)),
        case("upstream_500", b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom", Fin),
        case("upstream_502", b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad", Fin),
        case("rst_inside_chunked_body_later", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", HoldThenRst(100)),
        // An RST right behind the bytes races nginx's first read of the
        // body; 100 ms later it does not.
        case("close_delimited_rst_later", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil", HoldThenRst(100)),
        case("rst_inside_body_later", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", HoldThenRst(100)),
        case("last_modified_and_location", b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nLast-Modified: Mon, 01 Jan 2001 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n", Fin),
    ];
    let mut slow = case("read_timeout_inside_body", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nok", HoldThenFin(1500));
    slow.location = "proxy_read_timeout 300ms;".into();
    v.push(slow);
    let mut body_1000 = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n".to_vec();
    body_1000.extend(std::iter::repeat_n(b'c', 1000));
    body_1000.extend_from_slice(b"\r\n0\r\n\r\n");
    v.push(case("chunked_1000", &body_1000, Fin));

    let mut head_req = case("head_request", ok, Fin);
    head_req.request = b"HEAD /x HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".to_vec();
    v.push(head_req);
    let mut http10 = case("client_http10", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", Fin);
    http10.request = b"GET /x HTTP/1.0\r\nHost: lab\r\n\r\n".to_vec();
    v.push(http10);
    let mut keep = case("client_keepalive_then_close", ok, Fin);
    keep.request = b"GET /x HTTP/1.1\r\nHost: lab\r\n\r\n".to_vec();
    keep.client_close = Some(ClientClose::HalfCloseAfterResponse);
    v.push(keep);

    // Header names as Go writes them (canonical), as the client gets them.
    v.push(case(
        "go_canonical_headers",
        b"HTTP/1.1 200 OK\r\nX-Connection: kept\r\nX-Request-Id: 7\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 01 Jan 2001 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok",
        Fin,
    ));
    // A body cut short after several reads: what came is passed, then FIN.
    let mut cut = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec();
    cut.extend(std::iter::repeat_n(b'b', 60000));
    v.push(case("body_cut_after_many_reads", &cut, Fin));
    v.push(case("body_cut_after_pause", &cut, HoldThenFin(100)));
    v.push(case("chunked_cut_between_chunks", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n", HoldThenFin(100)));
    // HTTP/1.0 clients get an HTTP/1.1 status line.
    let mut http10_length = case("client_http10_length", ok, Fin);
    http10_length.request = b"GET /x HTTP/1.0\r\nHost: lab\r\n\r\n".to_vec();
    v.push(http10_length);
    let mut http10_keep = case("client_http10_keepalive", ok, Fin);
    http10_keep.request = b"GET /x HTTP/1.0\r\nHost: lab\r\nConnection: keep-alive\r\n\r\n".to_vec();
    http10_keep.client_close = Some(ClientClose::HalfCloseAfterResponse);
    v.push(http10_keep);

    // access_log in a location and in a server: which files get the line.
    v.push(logged("access_log_in_location", "", "access_log loc.log t;", &["access.log", "loc.log"]));
    v.push(logged("access_log_in_server", "access_log srv.log t;", "", &["access.log", "srv.log"]));
    v.push(logged("access_log_server_and_location", "access_log srv.log t;", "access_log loc.log u;", &["access.log", "srv.log", "loc.log"]));
    v.push(logged("access_log_two_in_location", "", "access_log loc.log t; access_log loc2.log u;", &["access.log", "loc.log", "loc2.log"]));
    v.push(logged("access_log_shared_file", "access_log access.log u;", "access_log access.log t; access_log loc.log t;", &["access.log", "loc.log"]));
    v.push(logged("access_log_other_location", "location /other { proxy_pass http://u; access_log other.log t; }", "", &["access.log", "other.log"]));
    v.push(logged("access_log_exact_location", "location = /x { proxy_pass http://u; access_log exact.log u; }", "", &["access.log", "exact.log"]));
    for (name, location) in [("access_log_off_in_location", "access_log off;"), ("access_log_off_with_a_file", "access_log off; access_log loc.log t;")] {
        let mut off = logged(name, "access_log srv.log t;", location, &["access.log", "srv.log", "loc.log"]);
        off.request = b"GET /x HTTP/1.1\r\nHost: lab\r\n\r\n".to_vec();
        off.client_close = Some(ClientClose::HalfCloseAfterResponse);
        off.settled_by_error_log = true;
        v.push(off);
    }

    // proxy_pass with a URI part: what replaces the location's prefix.
    let api = "location /api/ { proxy_pass http://u/v1/; }";
    for (name, pass, server, target) in [
        ("no_uri_part_passes_the_request_as_sent", "http://u", "", "/a//b/../c?x=1"),
        ("slash_uri_part", "http://u/", "", "/a//b/../c?x=1"),
        ("slash_uri_part_escaped", "http://u/", "", "/a%20b/%7Eu/%2e%2e/c%3F?q=%20"),
        ("slash_uri_part_dot_segments", "http://u/", "", "/a/./b/.."),
        ("prefix_replaced", "http://u", api, "/api/users?id=2"),
        ("prefix_replaced_encoded_slash", "http://u", api, "/api/a%2Fb"),
        ("prefix_without_slash", "http://u", "location /api { proxy_pass http://u/v1; }", "/apix/y"),
        ("exact_location", "http://u", "location = /x { proxy_pass http://u/y; }", "/x?z"),
        ("uri_part_with_args", "http://u", "location /q/ { proxy_pass http://u/p?k=v; }", "/q/r?a=b"),
        ("location_matched_after_normalising", "http://u", api, "/x/../api//users"),
    ] {
        v.push(uri_case(&format!("uri_{name}"), pass, server, target, ok));
    }
    // The error.log line names the upstream request's URI.
    v.push(uri_case("uri_in_error_log", "http://u", api, "/api/gone?id=1", b""));
    // A path nginx cannot normalise: 400.
    for (name, target) in [("uri_above_root", "/../x"), ("uri_bad_escape", "/a%zz"), ("uri_nul_escape", "/a%00b")] {
        v.push(uri_case(name, "http://u/", "", target, ok));
    }

    // Connection: Upgrade (ngx_http_upstream_upgrade): a 101 tunnels bytes
    // both ways when the client asked for an upgrade; proxy_read_timeout
    // is the tunnel's idle limit. Without the three directives nginx does
    // not forward Upgrade (hop-by-hop).
    let ws = "proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";";
    let ws_request = b"GET /x HTTP/1.1\r\nHost: lab\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    let mut echo = case("websocket_echo_until_read_timeout", switching, Fin);
    echo.echo = true;
    echo.location = format!("{ws} proxy_read_timeout 300ms;");
    echo.request = [&ws_request[..], b"hello"].concat();
    v.push(echo);
    let mut bye = case("websocket_upstream_closes", &[&switching[..], b"bye"].concat(), Fin);
    bye.location = ws.into();
    bye.request = ws_request.to_vec();
    v.push(bye);
    let mut bye_rst = case("websocket_upstream_resets", &[&switching[..], b"bye"].concat(), HoldThenRst(100));
    bye_rst.location = ws.into();
    bye_rst.request = ws_request.to_vec();
    v.push(bye_rst);
    for (name, location) in [("upgrade_headers_forwarded_with_directives", ws), ("upgrade_not_forwarded_without_directives", "")] {
        let mut c = case(name, b"HTTP/1.1 200 OK", Fin);
        c.echo_head = true;
        c.location = location.into();
        c.request = ws_request.to_vec();
        // Connection: Upgrade keeps an HTTP/1.1 client's connection open.
        c.client_close = Some(ClientClose::HalfCloseAfterResponse);
        c.settled_by_error_log = true;
        v.push(c);
    }
    let mut plain_101 = case("switching_protocols_to_an_upgrade_request_without_directives", switching, Fin);
    plain_101.echo = true;
    plain_101.location = "proxy_read_timeout 300ms;".into();
    plain_101.request = [&ws_request[..], b"hello"].concat();
    v.push(plain_101);

    // return (ngx_http_rewrite_return): the upstream is never asked.
    for (name, server, target) in [
        ("return_200_text", "location /r { return 200 \"hello\"; }", "/r"),
        ("return_200_text_html_uri", "location /r { return 200 \"<b>hi</b>\"; }", "/r/a.html"),
        ("return_200_no_text", "location /r { return 200; }", "/r"),
        ("return_204", "location /r { return 204; }", "/r"),
        ("return_299_unknown_code", "location /r { return 299 \"odd\"; }", "/r"),
        ("return_403_text", "location /r { return 403 \"go away\"; }", "/r"),
        ("return_404_error_page", "location /r { return 404; }", "/r"),
        ("return_410_no_page", "location /r { return 410; }", "/r"),
        ("return_503_error_page", "location /r { return 503; }", "/r"),
        ("return_301_absolute", "location /r { return 301 https://example.com/new; }", "/r"),
        ("return_302_relative", "location /r { return 302 /elsewhere; }", "/r"),
        ("return_307_relative", "location /r { return 307 /elsewhere; }", "/r"),
        ("return_308_absolute", "location /r { return 308 http://e.example/; }", "/r"),
        ("return_url_only", "location /r { return http://e.example/x; }", "/r"),
        ("return_wins_over_proxy_pass", "location /r { proxy_pass http://u; return 200 \"first\"; }", "/r"),
        ("return_first_of_two", "location /r { return 200 \"one\"; return 200 \"two\"; }", "/r"),
        ("return_exact_location", "location = /r { return 200 \"exact\"; }", "/r"),
        ("return_not_this_location", "location = /r { return 200 \"exact\"; }", "/r/x"),
        ("return_with_access_log", "location /r { return 200 \"logged\"; access_log ret.log u; }", "/r"),
    ] {
        let mut c = uri_case(name, "http://u", server, target, ok);
        c.name = format!("return::{name}");
        if name == "return_with_access_log" {
            c.access_logs = vec!["access.log", "ret.log"];
        }
        v.push(c);
    }
    // return at server level: the server rewrite phase, before any
    // location (a proxied one, an exact one, a location's own return).
    for (name, server, target) in [
        ("return_at_server_level", "return 200 \"srv $uri\";", "/x"),
        ("return_at_server_level_wins_over_exact", "location = /r { return 200 \"loc\"; } return 403;", "/r"),
        ("return_at_server_level_redirect", "add_header X-Srv s; return 301 /moved$request_uri; location /r { add_header X-Loc l; }", "/r?a=1"),
        ("return_at_server_level_first_wins", "return 404; return 200 \"second\";", "/x"),
        ("return_at_server_level_with_server_log", "access_log srv.log u; return 200 \"logged\";", "/x"),
    ] {
        let mut c = uri_case(name, "http://u", server, target, ok);
        c.name = format!("return::{name}");
        if name.ends_with("server_log") {
            c.access_logs = vec!["access.log", "srv.log"];
        }
        v.push(c);
    }
    // The client side's keepalive directives (ngx_http_update_location_config,
    // ngx_http_header_filter): two pipelined requests on one connection.
    let two = |first: &str, second: &str| format!("GET {first} HTTP/1.1\r\nHost: lab\r\n\r\nGET {second} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n");
    for (name, server, request) in [
        // The 2nd request on the connection is its last: Connection: close.
        ("keepalive_requests_2", "location /r { keepalive_requests 2; return 200 \"r\"; }".to_string(), two("/r", "/r").replace("Connection: close\r\n", "")),
        ("keepalive_requests_1", "location /r { keepalive_requests 1; return 200 \"r\"; }".to_string(), two("/r", "/r")),
        ("keepalive_requests_server_level", "keepalive_requests 2; location /r { return 200 \"r\"; }".to_string(), two("/r", "/r").replace("Connection: close\r\n", "")),
        ("keepalive_timeout_header", "location /r { keepalive_timeout 5 3; return 200 \"r\"; }".to_string(), two("/r", "/r")),
        ("keepalive_timeout_header_on_404", "keepalive_timeout 5s 7s; location /r { return 200 \"r\"; }".to_string(), two("/none", "/r")),
        ("keepalive_timeout_0", "location /r { keepalive_timeout 0; return 200 \"r\"; }".to_string(), two("/r", "/r")),
        ("keepalive_requests_proxied", "keepalive_requests 1;".to_string(), "GET /x HTTP/1.1\r\nHost: lab\r\n\r\n".to_string()),
        // A `return`'s request body is discarded: the next request follows it.
        ("return_discards_the_body", "location /r { return 200 \"r\"; }".to_string(), "POST /r HTTP/1.1\r\nHost: lab\r\nContent-Length: 5\r\n\r\nhelloGET /r HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".to_string()),
        // So is the body of a request no location takes (404).
        ("not_found_discards_the_body", "location /r { return 200 \"r\"; }".to_string(), "POST /none HTTP/1.1\r\nHost: lab\r\nContent-Length: 5\r\n\r\nhelloGET /r HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".to_string()),
    ] {
        let mut c = uri_case(name, "http://u", &server, "/r", ok);
        // Both requests are answered unless the first one closes.
        c.access_lines = if name.ends_with("_1") || name.ends_with("_0") || name.ends_with("proxied") { 1 } else { 2 };
        c.request = request.into_bytes();
        c.name = format!("client_keepalive::{name}");
        v.push(c);
    }
    let mut head_ret = uri_case("return_head_request", "http://u", "location /r { return 200 \"hello\"; }", "/r", ok);
    head_ret.request = b"HEAD /r HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".to_vec();
    head_ret.name = "return::return_head_request".into();
    v.push(head_ret);
    let mut keep_ret = uri_case("return_keepalive", "http://u", "location /r { return 200 \"hello\"; }", "/r", ok);
    keep_ret.request = b"GET /r HTTP/1.1\r\nHost: lab\r\n\r\n".to_vec();
    keep_ret.client_close = Some(ClientClose::HalfCloseAfterResponse);
    keep_ret.settled_by_error_log = true;
    keep_ret.name = "return::return_keepalive".into();
    v.push(keep_ret);

    // add_header (ngx_http_headers_filter): which statuses get it, always,
    // inheritance (only a level without any inherits).
    let added = |name: &str, reply: &[u8], server: &str, location: &str, end: End| {
        let mut c = case(&format!("add_header::{name}"), reply, end);
        c.server = server.into();
        c.location = location.into();
        c
    };
    let a = "add_header X-A 1; add_header X-B 2 always; add_header X-Empty '';";
    for (name, reply) in [
        ("on_200", &ok[..]),
        ("on_204", &b"HTTP/1.1 204 No Content\r\n\r\n"[..]),
        ("on_304", &b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n"[..]),
        ("on_302", &b"HTTP/1.1 302 Found\r\nLocation: /y\r\nContent-Length: 0\r\n\r\n"[..]),
        ("on_202", &b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"[..]),
        ("on_upstream_404", &b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"[..]),
        ("on_upstream_500", &b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom"[..]),
    ] {
        v.push(added(name, reply, "", a, Fin));
    }
    v.push(added("on_nginx_502", b"", "", a, Fin));
    v.push(added("on_return_200", b"", "location /x { return 200 \"r\"; add_header X-R r; add_header X-S s always; }", "", Fin));
    v.push(added("on_return_404", b"", "location /x { return 404; add_header X-R r; add_header X-S s always; }", "", Fin));
    v.push(added("inherited_from_server", ok, "add_header X-Srv s;", "", Fin));
    v.push(added("not_inherited_when_the_location_has_one", ok, "add_header X-Srv s;", "add_header X-Loc l;", Fin));
    v.push(added("inherited_into_a_return_location", b"", "add_header X-Srv s always; location /x { return 403; }", "", Fin));
    let mut none = added("server_level_on_404", ok, "add_header X-Srv s always; location = /other { proxy_pass http://u; }", "", Fin);
    none.pass = "http://u".into();
    none.request = b"GET /x HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n".to_vec();
    v.push(none);

    // proxy_intercept_errors + error_page (ngx_http_upstream_intercept_errors,
    // ngx_http_send_error_page): the upstream's error replaced by the page's
    // location (here a `return`); nginx's own 502 takes error_page anyway.
    let page = "location = /oops { return 200 \"sorry\"; access_log oops.log u; }";
    let upstream_500 = &b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom"[..];
    for (name, reply, location) in [
        ("intercepted_500", upstream_500, "proxy_intercept_errors on; error_page 500 /oops;"),
        ("intercepted_500_as_200", upstream_500, "proxy_intercept_errors on; error_page 500 =200 /oops;"),
        ("intercepted_500_as_target_status", upstream_500, "proxy_intercept_errors on; error_page 500 = /oops;"),
        ("intercept_off_passes_500", upstream_500, "error_page 500 /oops;"),
        ("intercept_on_without_page_for_it", upstream_500, "proxy_intercept_errors on; error_page 502 /oops;"),
        ("intercepted_404_as_301_status", &b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"[..], "proxy_intercept_errors on; error_page 404 =301 /oops;"),
        ("intercepted_302", &b"HTTP/1.1 302 Found\r\nLocation: /y\r\nContent-Length: 0\r\n\r\n"[..], "proxy_intercept_errors on; error_page 302 /oops;"),
        ("not_intercepted_200", ok, "proxy_intercept_errors on; error_page 500 /oops;"),
        ("nginx_502_takes_error_page", b"", "error_page 502 /oops;"),
    ] {
        let mut c = case(&format!("error_page::{name}"), reply, Fin);
        c.server = page.into();
        c.location = location.into();
        c.access_logs = vec!["access.log", "oops.log"];
        v.push(c);
    }

    // error_page to a location that proxies again, or to a named location
    // (ngx_http_internal_redirect, ngx_http_named_location): the upstream's
    // reply under the error's status (or `=`'s), `$upstream_status` as
    // "502 : 200", the final location's access log, `$uri` the page's
    // (a named location keeps the request's, and its upstream URI).
    let refused = "http://127.0.0.1:9";
    let fallback = "location /fb { proxy_pass http://u; access_log oops.log u; add_header X-F f; add_header X-A a always; }";
    let named = "location @fb { proxy_pass http://u; access_log oops.log u; add_header X-F f; }";
    for (name, pass, reply, server, location) in [
        ("proxied_502_keeps_its_status", refused, &ok[..], fallback, "error_page 502 /fb;"),
        ("proxied_502_as_target_status", refused, ok, fallback, "error_page 502 = /fb?a=1;"),
        ("proxied_502_as_201", refused, ok, fallback, "error_page 502 =201 /fb;"),
        ("named_502", refused, ok, named, "error_page 502 @fb;"),
        ("named_502_as_target_status", refused, ok, named, "error_page 502 = @fb;"),
        ("named_return", refused, ok, "location @fb { return 200 \"named\"; access_log oops.log u; }", "error_page 502 @fb;"),
        ("intercepted_500_to_proxied", "http://u", upstream_500, fallback, "proxy_intercept_errors on; error_page 500 /fb;"),
        ("intercepted_404_to_named", "http://u", &b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"[..], named, "proxy_intercept_errors on; error_page 404 @fb;"),
        ("proxied_fallback_fails_too", refused, ok, "location /fb { proxy_pass http://127.0.0.1:9; access_log oops.log u; }", "error_page 502 /fb;"),
        ("named_location_not_found", refused, ok, named, "error_page 502 @other;"),
        // A URL: a redirect as `return` sends one (ngx_http_send_error_page).
        ("uri_with_variables", refused, ok, fallback, "error_page 502 /fb?code=$status&u=${uri}&h=$host;"),
        ("url_is_a_302", refused, ok, "", "error_page 502 http://e.example/down?from=$uri; add_header X-A a; add_header X-B b always;"),
        ("url_as_301", refused, ok, "", "error_page 502 =301 https://e.example/;"),
        ("url_with_200_is_still_302", refused, ok, "", "error_page 502 =200 https://e.example/;"),
        ("intercepted_500_to_url", "http://u", upstream_500, "", "proxy_intercept_errors on; error_page 500 503 https://e.example/sorry;"),
    ] {
        let mut c = uri_case(&format!("error_page::{name}"), pass, server, "/x?q=1", reply);
        c.location = location.into();
        c.access_logs = vec!["access.log", "oops.log"];
        v.push(c);
    }
    // The redirect's method: GET for a URI (the body still sent), HEAD
    // kept; a named location keeps POST. The upstream echoes what it got.
    for (name, method, location) in [("post_becomes_get", "POST", "error_page 502 /fb;"), ("post_kept_by_named", "POST", "error_page 502 @fb;"), ("head_stays_head", "HEAD", "error_page 502 /fb;")] {
        let mut c = uri_case(&format!("error_page::{name}"), refused, "location /fb { proxy_pass http://u; access_log oops.log u; } location @fb { proxy_pass http://u; access_log oops.log u; }", "/x", b"HTTP/1.1 200 OK");
        c.location = location.into();
        c.access_logs = vec!["access.log", "oops.log"];
        c.echo_head = true;
        let body = if method == "POST" { "abc" } else { "" };
        c.request = format!("{method} /x HTTP/1.1\r\nHost: lab\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes();
        c.when = Reply::AfterBody(body.len());
        v.push(c);
    }

    // Variables in `return` and `add_header` (complex values, expanded per
    // request: ngx_http_script_compile, `${name}` too) and in proxy_set_header.
    for (name, server, location, target, reply) in [
        ("return_text", "location /r { return 200 \"$uri|${request_uri}|$host|$remote_addr|$args|$is_args|$request_method|$status|[$upstream_status]|$http_x_t|${uri}x|$nginx_version\"; }", "", "/r/a?b=1", &ok[..]),
        ("return_redirect_url", "location /r { return 302 /new$uri?from=$host; }", "", "/r/a", &ok[..]),
        ("return_404_text", "location /r { return 404 \"no $uri\"; }", "", "/r", &ok[..]),
        ("add_header_on_return", "location /r { return 200 \"x\"; add_header X-U \"$uri-${host}\" always; add_header X-S $status; add_header X-Empty $http_x_none; }", "", "/r?z=1", &ok[..]),
        ("add_header_on_proxied", "", "add_header X-U \"$uri $args\"; add_header X-S \"$status/$upstream_status\";", "/x?q=1", &ok[..]),
        ("add_header_on_nginx_502", "", "add_header X-S \"$status/$upstream_status\" always;", "/x", &b""[..]),
        ("proxy_set_header_braces", "", "proxy_set_header X-U \"${uri}!${host}$remote_addr $request_uri $http_x_t\";", "/x?q=1", &b"HTTP/1.1 200"[..]),
    ] {
        let mut c = uri_case(&format!("variables::{name}"), "http://u", server, target, reply);
        c.location = location.into();
        c.request = format!("GET {target} HTTP/1.1\r\nHost: LAB:8080\r\nX-T: tv\r\nConnection: close\r\n\r\n").into_bytes();
        c.echo_head = name == "proxy_set_header_braces";
        v.push(c);
    }

    // Access-log escaping (ngx_http_log_escape): `"`, `\\`, control bytes
    // and bytes from 0x7f up as \xXX, in the request line, $uri and headers.
    for (name, target, headers) in [
        ("quote_and_backslash_in_path", "/x\"a\\b?q=\"1\"", "User-Agent: ua\r\n"),
        ("utf8_in_path_and_header", "/x/\u{e9}t\u{e9}?q=\u{fc}", "User-Agent: caf\u{e9} \"quoted\" back\\slash\r\n"),
        ("tab_and_quotes_in_headers", "/x", "User-Agent: a\tb\r\nReferer: \"http://r/\"\r\nX-T: \\\"\r\n"),
        ("percent_encoded_quote_in_path", "/x%22y%09z", "User-Agent: ua\r\n"),
    ] {
        let mut c = case(&format!("access_log_escape::{name}"), ok, Fin);
        c.location = "access_log h.log h; access_log j.log j; access_log n.log n;".into();
        c.access_logs = vec!["h.log", "j.log", "n.log"];
        c.request = format!("GET {target} HTTP/1.1\r\nHost: lab\r\n{headers}Connection: close\r\n\r\n").into_bytes();
        v.push(c);
    }
    // No upstream, no args, no referer: "-" by default, empty in json and none.
    let mut no_up = uri_case("access_log_escape::values_not_found", "http://u", "location /r { return 200; access_log h.log h; access_log j.log j; access_log n.log n; }", "/r", ok);
    no_up.access_logs = vec!["h.log", "j.log", "n.log"];
    v.push(no_up);

    // proxy_pass with variables (ngx_http_proxy_eval,
    // ngx_http_upstream_init_request): an upstream block's name (any case),
    // an IP:port literal (UP: the upstream's address), a name that would
    // need a resolver, no value at all, a URI part.
    for (name, pass, backend) in [
        ("upstream_name", "http://$http_x_backend", "u"),
        ("upstream_name_other_case", "http://$http_x_backend", "U"),
        ("upstream_name_with_port_needs_resolver", "http://$http_x_backend", "u:80"),
        ("ip_literal", "http://$http_x_backend", "UP"),
        ("host_name_needs_resolver", "http://$http_x_backend", "localhost:1"),
        ("empty_value", "http://$http_x_backend", ""),
        ("uri_part", "http://$http_x_backend/p${uri}", "u"),
        ("braces_and_ip_literal", "http://${http_x_backend}", "UP"),
    ] {
        let mut c = case(&format!("proxy_pass_variables::{name}"), ok, Fin);
        c.pass = pass.into();
        c.request = format!("GET /x?q=1 HTTP/1.1\r\nHost: lab\r\nX-Backend: {backend}\r\nConnection: close\r\n\r\n").into_bytes();
        v.push(c);
    }

    // proxy_bind (ngx_event_connect_peer binds the upstream socket first):
    // the upstream sees the bound address; `off` and inheritance.
    for (name, server, location) in [
        ("bind_loopback_address", "", "proxy_bind 127.0.0.2;"),
        ("bind_inherited_from_server", "proxy_bind 127.0.0.3;", ""),
        ("bind_off_in_location", "proxy_bind 127.0.0.3;", "proxy_bind off;"),
        ("bind_another_loopback_address", "", "proxy_bind 127.0.0.4;"),
        // TEST-NET-1: no interface has it, bind() fails (99), nginx answers 500.
        ("bind_unassigned_address", "", "proxy_bind 192.0.2.1;"),
    ] {
        let mut c = case(&format!("proxy_bind::{name}"), ok, Fin);
        c.server = server.into();
        c.location = location.into();
        c.show_peer = true;
        v.push(c);
    }

    // auth_request (ngx_http_auth_request_module): the upstream answers the
    // subrequest (a GET to /auth carrying the POST's Content-Length, no
    // body) and the main request alike. 2xx passes the POST on; 401 (its
    // WWW-Authenticate copied) and 403 go to the client; any other status
    // is "auth request unexpected status: N" and 500. Replying only after
    // body bytes that never come: the subrequest's proxy_read_timeout, 504,
    // then 500 (issue 12, item 13). `auth_request off` in the auth location
    // is inherited elsewhere.
    let auth_server = "location = /auth { proxy_pass http://u/auth; proxy_pass_request_body off; proxy_read_timeout 300ms; }";
    for (name, reply, when, location) in [
        ("auth_request::allowed", &ok[..], Reply::AfterHead, "auth_request /auth;"),
        ("auth_request::allowed_204", b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n", Reply::AfterHead, "auth_request /auth;"),
        ("auth_request::unauthorized", b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"lab\"\r\nContent-Length: 0\r\n\r\n", Reply::AfterHead, "auth_request /auth;"),
        ("auth_request::forbidden", b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", Reply::AfterHead, "auth_request /auth;"),
        ("auth_request::server_error", b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n", Reply::AfterHead, "auth_request /auth;"),
        ("auth_request::redirect", b"HTTP/1.1 302 Found\r\nLocation: /login\r\nContent-Length: 0\r\n\r\n", Reply::AfterHead, "auth_request /auth;"),
        ("auth_request::length_without_body", &ok[..], Reply::AfterBody(5), "auth_request /auth;"),
        ("auth_request::off", &ok[..], Reply::AfterHead, "auth_request off;"),
    ] {
        let mut c = case(name, reply, Fin);
        c.when = when;
        c.request = post(5);
        c.server = format!("auth_request /auth; {auth_server}");
        c.location = location.into();
        v.push(c);
    }
    // A bodiless answer leaves the subrequest's connection in the cache
    // (header_only; u->keepalive from the response): the POST goes out on
    // it, this upstream answers once per connection and closes, and nginx
    // does not retry a POST on a cached connection that closed: 502.
    let mut cached = case("auth_request::cached_after_204", b"HTTP/1.1 204 No Content\r\n\r\n", HoldThenFin(300));
    cached.request = post(5);
    cached.server = format!("auth_request /auth; {auth_server}");
    cached.location = "auth_request /auth;".into();
    v.push(cached);

    // A request line nginx cannot parse: 400, the [info] line, and an
    // access line whose $request is the raw line.
    for (name, request) in [
        ("bad_request_line_garbage", &b"GARBAGE\r\n\r\n"[..]),
        ("bad_request_line_extra_token", b"GET /x HTTP/1.1 junk\r\nHost: lab\r\n\r\n"),
        ("bad_request_line_lowercase_method", b"get /x HTTP/1.1\r\nHost: lab\r\n\r\n"),
    ] {
        let mut c = case(name, ok, Fin);
        c.request = request.to_vec();
        v.push(c);
    }

    // Client-side cases.
    let mut abort = case("client_abort_before_header", ok, Fin);
    abort.reply_delay_ms = 500;
    abort.client_close = Some(ClientClose::AbortWhenReceived);
    v.push(abort);
    let mut abort_rst = case("client_abort_rst_before_header", ok, Fin);
    abort_rst.reply_delay_ms = 500;
    abort_rst.client_close = Some(ClientClose::ResetWhenReceived);
    v.push(abort_rst);
    let mut abort_body = case("client_abort_during_body", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nstart", HoldThenFin(1500));
    abort_body.client_close = Some(ClientClose::AbortWhenReplied);
    v.push(abort_body);
    // A request that does not keep its connection: with a body, or bytes
    // behind it, nginx closes lingering (its FIN, then it reads and drops
    // what comes: ngx_http_set_lingering_close); without, it closes at once
    // and more bytes from the client meet an RST.
    let mut linger_body = case("close_lingers_after_a_body", ok, Fin);
    linger_body.request = post(1000);
    linger_body.when = Reply::AfterBody(1000);
    linger_body.client_close = Some(ClientClose::SendAfterResponse);
    v.push(linger_body);
    let mut linger_pipelined = case("close_lingers_with_a_pipelined_request", ok, Fin);
    linger_pipelined.request = [GET, b"GET /y HTTP/1.1\r\nHost: lab\r\n\r\n"].concat();
    linger_pipelined.client_close = Some(ClientClose::SendAfterResponse);
    v.push(linger_pipelined);
    let mut no_linger = case("client_close_without_a_body_does_not_linger", ok, Fin);
    no_linger.client_close = Some(ClientClose::SendAfterResponse);
    v.push(no_linger);
    let mut too_big = case("body_over_client_max_body_size", ok, Fin);
    too_big.request = post(2 * 1024 * 1024);
    v.push(too_big);
    let mut declared = case("declared_length_over_limit", ok, Fin);
    declared.request = b"POST /x HTTP/1.1\r\nHost: lab\r\nContent-Length: 5000000\r\n\r\nabc".to_vec();
    v.push(declared);
    let mut spooled = case("body_spooled_to_temp_file", ok, Fin);
    spooled.request = post(100 * 1024);
    spooled.when = Reply::AfterBody(100 * 1024);
    v.push(spooled);
    let mut in_buffer = case("body_in_buffer", ok, Fin);
    in_buffer.request = post(1000);
    in_buffer.when = Reply::AfterBody(1000);
    v.push(in_buffer);
    let mut unlimited = case("client_max_body_size_0", ok, Fin);
    unlimited.request = post(2 * 1024 * 1024);
    unlimited.when = Reply::AfterBody(2 * 1024 * 1024);
    unlimited.location = "client_max_body_size 0;".into();
    v.push(unlimited);
    // A reset as soon as the head is read: nginx is usually still in its
    // write loop (writev() fails), but on a loaded machine it may already
    // wait for the socket, and then its read handler runs first (recv()).
    let mut reset_while_sending = case("reset_while_sending_request", b"", Rst);
    reset_while_sending.request = post(8 * 1024 * 1024);
    reset_while_sending.location = "client_max_body_size 10m;".into();
    reset_while_sending.reset_while_writing = true;
    v.push(reset_while_sending);
    // A reset once nginx has filled the socket buffers and waits to write:
    // always the read handler's recv().
    let mut reset_while_blocked = case("reset_while_waiting_to_send_request", b"", RstWhenBlocked);
    reset_while_blocked.request = post(8 * 1024 * 1024);
    reset_while_blocked.location = "client_max_body_size 10m;".into();
    v.push(reset_while_blocked);
    v.extend(buffering_cases());
    v
}

/// `proxy_buffering` seen by a client that reads nothing until the upstream
/// has written its whole reply (at most 3 s): with buffering on nginx reads
/// the 32 MiB body ahead into its buffers and a temporary file, so the
/// upstream finishes while the client waits (and the `[warn]` names the
/// file); with buffering off, `X-Accel-Buffering: no` or
/// `proxy_max_temp_file_size 0` the upstream's write waits for the client
/// (32 MiB is more than the socket buffers between them hold).
fn buffering_cases() -> Vec<Case> {
    const BIG: usize = 32 * 1024 * 1024;
    let body = |extra: &str| {
        let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n{extra}\r\n").into_bytes();
        // Each 8 bytes name their place: bytes out of order show.
        for i in 0..BIG / 8 {
            r.extend_from_slice(format!("{i:07x}\n").as_bytes());
        }
        r
    };
    let mk = |name: &str, extra: &str, location: &str, pause: u64| {
        let mut c = case(&format!("buffering::{name}"), &body(extra), End::Fin);
        c.location = location.into();
        c.client_pause_ms = Some(pause);
        c
    };
    vec![
        mk("on_temp_file_levels", "", "proxy_temp_path proxy_temp 1 2;", 10_000),
        mk("on_temp_file", "", "proxy_temp_path proxy_temp;", 10_000),
        mk("off", "", "proxy_buffering off;", 1_500),
        mk("x_accel_buffering_no", "X-Accel-Buffering: no\r\n", "proxy_temp_path proxy_temp;", 1_500),
        mk("max_temp_file_size_0", "", "proxy_temp_path proxy_temp; proxy_max_temp_file_size 0;", 1_500),
        mk("on_x_accel_buffering_no_ignored", "X-Accel-Buffering: no\r\n", "proxy_temp_path proxy_temp; proxy_ignore_headers X-Accel-Buffering;", 10_000),
        mk("on_by_x_accel_buffering_yes", "X-Accel-Buffering: yes\r\n", "proxy_temp_path proxy_temp; proxy_buffering off;", 10_000),
        {
            // The body is cut short: the upstream ends while the client waits.
            let mut c = mk("on_cut", "", "proxy_temp_path proxy_temp;", 10_000);
            c.reply = String::from_utf8_lossy(&c.reply).replacen(&format!("Content-Length: {BIG}"), &format!("Content-Length: {}", BIG + 1000), 1).into_bytes();
            c
        },
    ]
}

fn main() {
    let mut args = Arguments::from_args();
    args.test_threads = args.test_threads.or(Some(2));
    let trials = cases()
        .into_iter()
        .map(|c| {
            let prefix = if c.name.starts_with("buffering::") || c.name.starts_with("return::") || c.name.starts_with("add_header::") || c.name.starts_with("error_page::") || c.name.starts_with("variables::") || c.name.starts_with("access_log_escape::") || c.name.starts_with("proxy_pass_variables::") || c.name.starts_with("proxy_bind::") {
                ""
            } else if c.name.starts_with("uri") {
                "uri"
            } else if c.name.starts_with("client") || c.request != GET {
                "client"
            } else {
                "upstream"
            };
            let name = if prefix.is_empty() { c.name.clone() } else { format!("{prefix}::{}", c.name) };
            Trial::ignorable_test(name, move || run(&c))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}

/// What a client saw and the proxy logged.
#[derive(Debug, PartialEq)]
struct Seen {
    response: String,
    end: &'static str,
    error_log: Vec<String>,
    access_log: Vec<String>,
    /// The request lines the upstream got.
    upstream_got: Vec<String>,
    /// With a client pause: the upstream wrote its whole reply before the
    /// client read a byte.
    upstream_done_while_paused: Option<bool>,
}

fn run(c: &Case) -> Result<Completion, Failed> {
    let nginx = match require::nginx() {
        Ok(b) => b,
        Err(m) => return require::trial_outcome(m),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        // One upstream for both: the same address in both logs.
        let events = Arc::new(UpstreamEvents::default());
        let up = upstream(c, events.clone()).await?;
        let real = with_free_port(c, up, &events, Some(&nginx)).await?;
        let emulated = with_free_port(c, up, &events, None).await?;
        if std::env::var_os("HOSTILE_SHOW").is_some() {
            eprintln!("real nginx:\n{}", show(&real));
        }
        let (real, emulated) = if c.reset_while_writing { (one_reset_line(real), one_reset_line(emulated)) } else { (real, emulated) };
        // The premise: real nginx reads ahead exactly when buffering is on.
        if c.name.starts_with("buffering::") && real.upstream_done_while_paused != Some(c.name.contains("::on")) {
            return Err(format!("real nginx did not behave as the case assumes:\n{}", show(&real)).into());
        }
        if real == emulated {
            Ok(Completion::Completed)
        } else {
            Err(format!("real nginx:\n{}\nemulated proxy:\n{}", show(&real), show(&emulated)).into())
        }
    })
}

/// nginx's two lines for a reset while the request is being sent: its next
/// `writev()` fails, or (waiting for the socket) its read handler's `recv()`.
fn one_reset_line(mut s: Seen) -> Seen {
    const WRITING: &str = "writev() failed (104: Connection reset by peer) while sending request to upstream";
    const WAITING: &str = "recv() failed (104: Connection reset by peer) while reading response header from upstream";
    for line in &mut s.error_log {
        *line = line.replace(WAITING, WRITING);
    }
    s
}

fn show(s: &Seen) -> String {
    format!(
        "  upstream got: {:?}\n  upstream done while the client paused: {:?}\n  client got ({}, {} bytes): {:?}\n  error.log: {:#?}\n  access.log: {:?}",
        s.upstream_got,
        s.upstream_done_while_paused,
        s.end,
        s.response.len(),
        s.response.chars().take(600).collect::<String>(),
        s.error_log,
        s.access_log
    )
}

/// The upstream: every connection gets the case's reply. It listens on
/// 127.0.0.4, apart from the servers under test (127.0.0.1): a port picked
/// free for one case's nginx cannot be taken meanwhile by another case's
/// upstream, whose reply the client would then read as nginx's.
async fn upstream(c: &Case, events: Arc<UpstreamEvents>) -> std::io::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.4:0").await?;
    let addr = l.local_addr()?;
    let (reply, when, end, delay, echo, echo_head, show_peer) = (c.reply.clone(), c.when, c.end, c.reply_delay_ms, c.echo, c.echo_head, c.show_peer);
    tokio::spawn(async move {
        while let Ok((mut s, from)) = l.accept().await {
            let reply = reply.clone();
            let events = events.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 65536];
                let want_body = match when {
                    Reply::AfterHead => 0,
                    Reply::AfterBody(n) => n,
                };
                loop {
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        if got.len() >= end + 4 + want_body {
                            break;
                        }
                    }
                    match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let line = got.split(|&b| b == b'\n').next().unwrap_or_default();
                let line = String::from_utf8_lossy(line).trim_end().to_string();
                events.request_lines.lock().push(if show_peer { format!("{line} from {}", from.ip()) } else { line });
                events.received.notify_one();
                if delay > 0 {
                    // The upstream's own pace (a slow handler), not a wait for the test.
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                let reply = if echo_head {
                    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(got.len());
                    let head = &got[..head_end];
                    [&reply[..], format!("\r\nContent-Length: {}\r\n\r\n", head.len()).as_bytes(), head].concat()
                } else {
                    reply
                };
                let _ = s.write_all(&reply).await;
                events.replied.notify_one();
                events.replies.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                events.replied_all.notify_waiters();
                if echo {
                    // Bytes behind the head came early; then what the tunnel carries.
                    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4).unwrap_or(got.len());
                    let _ = s.write_all(&got[head_end..]).await;
                    loop {
                        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                            Ok(Ok(n)) if n > 0 => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                            _ => break,
                        }
                    }
                }
                match end {
                    End::Fin => {}
                    End::Rst => {
                        // SO_LINGER 0 on a socket about to be dropped: the
                        // close sends an RST and does not block.
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    }
                    End::HoldThenFin(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    End::RstWhenBlocked => {
                        wait_until_sender_blocked(&s).await;
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    }
                    End::HoldThenRst(ms) => {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
                    }
                }
                drop(s);
            });
        }
    });
    Ok(addr)
}

/// Waits (at most 5 s) until the bytes waiting in the receive queue have
/// not grown for 300 ms: the sender has filled the buffers and sleeps in
/// its event loop (a runnable sender on a busy machine gets the CPU well
/// within that).
async fn wait_until_sender_blocked(s: &tokio::net::TcpStream) {
    use std::os::fd::AsRawFd;
    let queued = || {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one c_int through the pointer.
        unsafe { libc::ioctl(s.as_raw_fd(), libc::FIONREAD, &mut n) };
        n
    };
    let (mut last, mut still) = (queued(), 0);
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = queued();
        still = if now == last && now > 0 { still + 1 } else { 0 };
        last = now;
        if still >= 30 {
            return;
        }
    }
}

fn config_text(listen: SocketAddr, up: SocketAddr, c: &Case) -> String {
    let read_timeout = if c.location.contains("proxy_read_timeout") { "" } else { "proxy_read_timeout 5s;" };
    format!(
        "error_log error.log info;\nevents {{ }}\nhttp {{\n log_format t '$status $body_bytes_sent \"$request\" \"$upstream_status\" \"$uri\" \"$args\"';\n log_format u '$request_method $uri $status';\n log_format h '\"$request\" \"$uri\" \"$args\" \"$http_user_agent\" \"$http_referer\" \"$http_x_t\" $status';\n log_format j escape=json '{{\"r\":\"$request\",\"a\":\"$args\",\"ua\":\"$http_user_agent\",\"ref\":\"$http_referer\",\"us\":\"$upstream_status\",\"s\":$status}}';\n log_format n escape=none '\"$request\" \"$args\" \"$http_user_agent\" \"$http_referer\" $status';\n access_log access.log t;\n client_body_temp_path client_body_temp;\n upstream u {{ server {up}; keepalive 4; }}\n server {{\n  listen {listen};\n  {}\n  location / {{\n   proxy_pass {};\n   proxy_http_version 1.1;\n   proxy_set_header Connection \"\";\n   {read_timeout}\n   {}\n  }}\n }}\n}}\n",
        c.server, c.pass, c.location
    )
}

/// The listen port is picked before the server binds it, and another test
/// may take it in between: a bind failure is retried on a new port (bounded).
async fn with_free_port(c: &Case, up: SocketAddr, events: &UpstreamEvents, nginx: Option<&Path>) -> Result<Seen, Failed> {
    let mut last = None;
    for _ in 0..5 {
        match through(c, up, events, nginx).await {
            Err(e) if e.message().is_some_and(|m| m.contains("Address already in use")) => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| "no free port".into()))
}

/// Sends the case's request through real nginx (`Some(bin)`) or the proxy.
async fn through(c: &Case, up: SocketAddr, events: &UpstreamEvents, nginx: Option<&Path>) -> Result<Seen, Failed> {
    let dir = tempdir(&c.name, nginx.is_some())?;
    for d in ["client_body_temp", "proxy_temp", "fastcgi_temp", "uwsgi_temp", "scgi_temp", "logs"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let listen: SocketAddr = ([127, 0, 0, 1], harness::free_port()?).into();
    let text = config_text(listen, up, c);
    std::fs::write(dir.join("nginx.conf"), &text)?;
    let mut child = None;
    let _proxy;
    match nginx {
        Some(bin) => {
            child = Some(
                std::process::Command::new(bin)
                    .arg("-p")
                    .arg(format!("{}/", dir.display()))
                    .args(["-e", "error.log", "-c", "nginx.conf", "-g", "daemon off; master_process off;"])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()?,
            );
        }
        None => {
            let cfg = conf::parse(&text, "nginx.conf").map_err(|e| format!("{e}"))?;
            let opts = proxy::ProxyOptions { prefix: dir.clone(), ..Default::default() };
            _proxy = proxy::Proxy::start(&cfg, opts).await.map_err(|e| format!("{e}"))?;
        }
    }
    events.request_lines.lock().clear();
    // `X-Backend: UP` names the upstream's address.
    let mut c_up = c.clone();
    c_up.request = String::from_utf8_lossy(&c.request).replace("X-Backend: UP\r\n", &format!("X-Backend: {up}\r\n")).into_bytes();
    let result = client(&c_up, listen, events, &dir.join(c.access_logs.first().copied().unwrap_or("access.log"))).await;
    let paused = result.as_ref().ok().and_then(|r| r.2);
    let result = result.map(|(b, e, _)| (b, e));
    if let (Err(_), Some(ch)) = (&result, child.as_mut()) {
        // nginx exits when it cannot bind (the port was taken meanwhile).
        if let Ok(Some(_)) = ch.try_wait() {
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("nginx exited: {log}").into());
        }
    }
    // Log lines are written as the request ends; give a bounded wait for
    // the access line (or, where none is expected, the error line after it).
    let access_lines = || -> Vec<String> {
        c.access_logs.iter().flat_map(|f| read_lines(&dir.join(f)).into_iter().map(move |l| format!("{f}: {l}"))).collect()
    };
    let settled = || if c.settled_by_error_log { read_lines(&dir.join("error.log")).iter().any(|l| mask_error_line(l).is_some()) } else { access_lines().len() >= c.access_lines };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !settled() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if let Some(mut ch) = child {
        let _ = ch.kill();
        let _ = ch.wait();
    }
    let (response, end) = result?;
    let seen = Seen {
        // The listen ports differ (a redirect's Location names it).
        response: mask_date(&response).replace(&format!(":{}", listen.port()), ":PORT"),
        end,
        // The prefixes differ (temp file paths name them).
        error_log: read_lines(&dir.join("error.log"))
            .iter()
            .filter_map(|l| mask_error_line(l))
            .map(|l| l.replace(&dir.display().to_string(), "PREFIX"))
            .collect(),
        access_log: access_lines(),
        upstream_got: std::mem::take(&mut *events.request_lines.lock()),
        upstream_done_while_paused: paused,
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(seen)
}

fn tempdir(name: &str, real: bool) -> std::io::Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("hostile-up-{}-{}-{name}", std::process::id(), if real { "nginx" } else { "proxy" }));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Connects (bounded retries while the server comes up), sends, reads to the end.
async fn client(c: &Case, addr: SocketAddr, events: &UpstreamEvents, access_log: &Path) -> Result<(Vec<u8>, &'static str, Option<bool>), Failed> {
    let (got, end) = client_inner(c, addr, events, access_log).await?;
    Ok((got.0, end, got.1))
}

/// Waits (bounded) until the upstream has written more replies than `before`.
async fn wait_replied(events: &UpstreamEvents, before: usize, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let woken = events.replied_all.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if events.replies.load(std::sync::atomic::Ordering::SeqCst) > before {
            return true;
        }
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            return false;
        }
    }
}

type ClientGot = (Vec<u8>, Option<bool>);

async fn client_inner(c: &Case, addr: SocketAddr, events: &UpstreamEvents, access_log: &Path) -> Result<(ClientGot, &'static str), Failed> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut s = loop {
        match TcpStream::connect(addr).await {
            Ok(s) => break s,
            Err(e) if tokio::time::Instant::now() > deadline => return Err(format!("connect {addr}: {e}").into()),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    };
    let before = events.replies.load(std::sync::atomic::Ordering::SeqCst);
    // A reset while writing is the server's answer, not the test's failure.
    let _ = s.write_all(&c.request).await;
    if let Some(ms) = c.client_pause_ms {
        let done = wait_replied(events, before, Duration::from_millis(ms)).await;
        let (got, end) = read_to_end(&mut s).await?;
        return Ok(((got, Some(done)), end));
    }
    let wait = |n: &'static str| format!("the upstream never {n} the request (5 s)");
    match c.client_close {
        Some(ClientClose::AbortWhenReceived | ClientClose::ResetWhenReceived) => {
            tokio::time::timeout(Duration::from_secs(5), events.received.notified()).await.map_err(|_| wait("received"))?;
            if c.client_close == Some(ClientClose::ResetWhenReceived) {
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
            }
            drop(s);
            return Ok(((Vec::new(), None), "client closed"));
        }
        Some(ClientClose::AbortWhenReplied) => {
            tokio::time::timeout(Duration::from_secs(5), events.replied.notified()).await.map_err(|_| wait("answered"))?;
            drop(s);
            return Ok(((Vec::new(), None), "client closed"));
        }
        Some(ClientClose::SendAfterResponse) => {
            let mut got = read_response(&mut s).await?;
            // A lingering close writes the access line only once the client
            // has closed (or after lingering_timeout, 5 s): within half a
            // second of the response it is there only if the server closed
            // at once.
            let logged = wait_line(access_log, Duration::from_millis(500)).await;
            let _ = s.write_all(&[b'x'; 100]).await;
            let (mut rest, end) = read_to_end(&mut s).await?;
            got.append(&mut rest);
            let end = match (end, logged) {
                ("FIN", true) => "FIN, access line while the client was open",
                ("FIN", false) => "FIN, access line after the client closed",
                ("RST", true) => "RST, access line while the client was open",
                ("RST", false) => "RST, access line after the client closed",
                (other, _) => other,
            };
            return Ok(((got, None), end));
        }
        Some(ClientClose::HalfCloseAfterResponse) => {
            let got = read_response(&mut s).await?;
            let _ = s.shutdown().await;
            let (mut rest, end) = read_to_end(&mut s).await?;
            let mut all = got;
            all.append(&mut rest);
            return Ok(((all, None), end));
        }
        None => {}
    }
    let (got, end) = read_to_end(&mut s).await?;
    Ok(((got, None), end))
}

/// Whether `path` has a line within `limit` (polled every 5 ms).
async fn wait_line(path: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if !read_lines(path).is_empty() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads one response with a Content-Length (bounded by a 5 s quiet time).
async fn read_response(s: &mut TcpStream) -> Result<Vec<u8>, Failed> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
            if out.len() >= end + 4 + len {
                return Ok(out);
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ => return Err(format!("no whole response: {:?}", String::from_utf8_lossy(&out)).into()),
        }
    }
}

/// Reads until FIN, RST, or 1 s without a byte ("open").
async fn read_to_end(s: &mut TcpStream) -> Result<(Vec<u8>, &'static str), Failed> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await {
            Err(_) => break "open",
            Ok(Ok(0)) => break "FIN",
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => break "RST",
            Ok(Err(e)) => return Err(format!("read: {e}").into()),
        }
    };
    Ok((out, end))
}

fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read(p).map(|b| String::from_utf8_lossy(&b).lines().map(String::from).collect()).unwrap_or_default()
}

fn mask_date(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b).into_owned();
    s.split("\r\n")
        .map(|l| if l.starts_with("Date: ") { "Date: *" } else { l })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// `2026/11/23 10:00:00 [error] 123#123: *5 text` → `[error] *N text`; the
/// lines nginx writes at start and stop (no connection) are dropped.
fn mask_error_line(l: &str) -> Option<String> {
    let rest = l.get(20..)?;
    let (level, rest) = rest.split_once(' ')?;
    let (_pid, rest) = rest.split_once(": ")?;
    let rest = rest.strip_prefix('*')?;
    let (_conn, text) = rest.split_once(' ')?;
    Some(format!("{level} *N {text}"))
}
