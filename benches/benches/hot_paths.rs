//! What the proxy and upstream-sim do on every request: parse heads, take a
//! connection from the keepalive cache and put it back, drive the attempt
//! state machine, format the access-log line. Quick enough for CI:
//! `cargo bench -p benches --bench hot_paths -- --quick`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use go_model::request::{read_request, ReadInput, ReadRequest};
use labkit::wire::{RequestHead, ResponseHead};
use nginx_model::attempt::{Attempts, Step};
use nginx_model::balancer::{Peer, RoundRobin};
use nginx_model::failure::Failure;
use nginx_model::keepalive::{KeepaliveCache, KeepaliveSettings};
use nginx_model::logs::{render_access, AccessEntry, UpstreamState, COMBINED};
use nginx_model::response::{parse_head, HeadParse};
use nginx_model::retry::{Ft, RetryContext};
use std::time::{Duration, Instant};

/// What upstream-sim (as Go would) answers to `GET /ok`.
const GO_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 23 Nov 2026 20:30:00 GMT\r\n\r\nok\n";

/// What nginx sends upstream with `proxy_http_version 1.1;
/// proxy_set_header Connection "";`.
const UPSTREAM_REQUEST: &[u8] = b"GET /ok HTTP/1.1\r\nHost: u\r\n\r\n";

/// A browser-like client request, as the proxy reads it from a client.
const CLIENT_REQUEST: &[u8] = b"GET /api/items?page=2 HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\nAccept: application/json\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\nReferer: https://app.example.com/items\r\nCookie: session=0123456789abcdef0123456789abcdef\r\nConnection: keep-alive\r\n\r\n";

fn heads(c: &mut Criterion) {
    // The proxy's reader of the upstream's head (ngx_http_parse_status_line and friends).
    c.bench_function("head: nginx_model::response::parse_head (Go /ok response)", |b| {
        b.iter(|| match parse_head(black_box(GO_RESPONSE)) {
            HeadParse::Again | HeadParse::Http09 | HeadParse::Invalid(_) => panic!("not a complete head"),
            h => h,
        })
    });
    c.bench_function("head: labkit::wire::ResponseHead::parse (Go /ok response)", |b| {
        b.iter(|| ResponseHead::parse(black_box(GO_RESPONSE)).unwrap().unwrap())
    });
    c.bench_function("head: labkit::wire::RequestHead::parse (browser request)", |b| {
        b.iter(|| RequestHead::parse(black_box(CLIENT_REQUEST)).unwrap().unwrap())
    });
    // upstream-sim's reader (Go's readRequest), with Go's default limit.
    let input = ReadInput { ended: None, limit: go_model::rules::header_limit(&go_model::ServerConfig::default()), after_post: false };
    for (name, req) in [("nginx's upstream request", UPSTREAM_REQUEST), ("browser request", CLIENT_REQUEST)] {
        c.bench_function(&format!("head: go_model::request::read_request ({name})"), |b| {
            b.iter(|| match read_request(black_box(req), input) {
                r @ ReadRequest::Request(..) => r,
                other => panic!("{other:?}"),
            })
        });
    }
}

fn keepalive(c: &mut Criterion) {
    let settings = KeepaliveSettings { capacity: 16, timeout: Duration::from_secs(60), requests: 1000, time: Duration::from_secs(3600) };
    let now = Instant::now();
    // A full cache (`keepalive 16`) to one server: the checkout finds the
    // first entry, the store fills the slot it left.
    let mut one: KeepaliveCache<u32, u64> = KeepaliveCache::new(settings);
    for conn in 0..16 {
        one.store(0, conn, now);
    }
    c.bench_function("keepalive: checkout+store, 16 cached, 1 server", |b| {
        b.iter(|| {
            let got = one.checkout(black_box(&0)).expect("cached");
            one.store(got.peer, got.conn, now)
        })
    });
    // Four servers with 4 each, asked for in turn: the wanted server's
    // newest connection sits behind the other three's (a longer search).
    let mut four: KeepaliveCache<u32, u64> = KeepaliveCache::new(settings);
    for conn in 0..16u64 {
        four.store((conn % 4) as u32, conn, now);
    }
    let mut peer = 0u32;
    c.bench_function("keepalive: checkout+store, 16 cached, 4 servers round robin", |b| {
        b.iter(|| {
            peer = (peer + 1) % 4;
            let got = four.checkout(black_box(&peer)).expect("cached");
            four.store(got.peer, got.conn, now)
        })
    });
}

fn attempts(c: &mut Criterion) {
    let now = Instant::now();
    let peers = |n: usize| -> RoundRobin<String> {
        RoundRobin::new((0..n).map(|i| Peer::new(format!("127.0.0.1:{}", 8080 + i), 1, 0, Duration::from_secs(10), false)).collect(), vec![])
    };
    let ctx = |rr: &RoundRobin<String>| RetryContext { method: "GET".into(), mask: Ft::DEFAULT_MASK, request_buffering: true, next_upstream_timeout: None, single_peer: rr.single() };

    // The common request: a cached connection, 200, passed whole.
    let mut rr = peers(1);
    let cx = ctx(&rr);
    c.bench_function("attempt: start→connected(cached)→sent→header 200→finished", |b| {
        b.iter(|| {
            let mut a = Attempts::new(cx.clone(), "u", rr.tries(), 0, now);
            assert!(matches!(a.start(&mut rr, now), Step::Connect(_)));
            a.connected(true, now);
            a.sent();
            let Step::Pass { status } = a.header(&mut rr, black_box(200), now) else { panic!("not passed") };
            a.finished(&mut rr, status, Ok(()), now);
            a.into_states()
        })
    });

    // The race the lab is about: the cached connection was closed by Go
    // (premature close), nginx retries on the other server, which answers.
    let mut rr = peers(2);
    let cx = ctx(&rr);
    c.bench_function("attempt: cached conn closed → retry on 2nd server → 200", |b| {
        b.iter(|| {
            let mut a = Attempts::new(cx.clone(), "u", rr.tries(), 0, now);
            a.start(&mut rr, now);
            a.connected(true, now);
            a.sent();
            assert!(matches!(a.failed(&mut rr, Failure::PrematureClose, now), Step::Connect(_)));
            a.connected(false, now);
            a.sent();
            let Step::Pass { status } = a.header(&mut rr, 200, now) else { panic!("not passed") };
            a.finished(&mut rr, status, Ok(()), now);
            (a.take_log(), a.into_states())
        })
    });
}

fn access_log(c: &mut Criterion) {
    let ms = Duration::from_millis;
    let entry = AccessEntry {
        msec: 1_795_984_200.123,
        remote_addr: "127.0.0.1".into(),
        method: "GET".into(),
        uri: "/ok".into(),
        args: String::new(),
        request_line: "GET /ok HTTP/1.1".into(),
        host: "bench".into(),
        status: 200,
        request_time: ms(1),
        upstream: vec![UpstreamState { status: 200, response_time: ms(1), connect_time: Some(ms(0)), addr: "127.0.0.1:8080".into(), cached: true }],
        body_bytes_sent: 3,
        connection_requests: 7,
        referer: None,
        user_agent: Some("bench/1.0".into()),
        redirects: Vec::new(),
        headers: Vec::new(),
    };
    // `combined` is what the proxy writes by default; the lab's format adds the $upstream_* lists.
    c.bench_function("access log: render_access combined", |b| b.iter(|| render_access(black_box(COMBINED), black_box(&entry))));
    c.bench_function("access log: render_access lab format", |b| b.iter(|| render_access(black_box(harness::nginx::LAB_FORMAT), black_box(&entry))));
}

// Short warm-up and measurement (these are ns–µs functions) and no plots
// (rendering them took 4 s per bench here): CI runs the file with --quick.
fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(1)).without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = heads, keepalive, attempts, access_log
}
criterion_main!(benches);
