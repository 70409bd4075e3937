//! The model's per-request functions, each called N times on the inputs of
//! one proxied `GET /ok` (Go's response, nginx's `combined` access line, the
//! keepalive location's upstream request), for counting instructions per
//! call: `cargo build --release --example hot -p nginx-model`, then run
//! `target/release/examples/hot` under an instruction counter and divide
//! each function's inclusive count by N. It prints what the functions made.
use nginx_model::http::{encode_request_head, RequestVars};
use nginx_model::logs::{render_access_escaped, AccessEntry, LogEscape, UpstreamState, COMBINED};
use nginx_model::response::{client_head, parse_head, ClientSide, HeadParse};
use std::hint::black_box;
use std::time::Duration;

const GO_RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain; charset=utf-8\r\nDate: Mon, 23 Nov 2026 20:30:00 GMT\r\n\r\nok\n";
const N: usize = 10000;

fn main() {
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
    let src = "events {}\nhttp {\n upstream u { server 127.0.0.1:1; keepalive 16; }\n server {\n  listen 1;\n  location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }\n }\n}\n";
    let r = nginx_model::resolve::resolve(&nginx_model::conf::parse(src, "t.conf").unwrap(), nginx_model::profile::Profile::Legacy).unwrap();
    let loc = r.servers[0].locations[0].clone();
    let client = vec![("Host".to_string(), "bench".to_string())];
    let vars = RequestVars { http_host: "bench".into(), remote_addr: "127.0.0.1".into(), uri: "/ok".into(), request_uri: "/ok".into(), method: "GET".into(), headers: client.clone(), ..Default::default() };
    let side = ClientSide { http11: true, keepalive: true, head_request: false, server_tokens: true, keepalive_header: None };
    let HeadParse::Done(up, _) = parse_head(GO_RESPONSE) else { panic!() };
    let mut total = 0usize;
    for _ in 0..N {
        match parse_head(black_box(GO_RESPONSE)) {
            HeadParse::Done(h, n) => total += n + h.headers().len(),
            _ => panic!(),
        }
    }
    for _ in 0..N {
        total += client_head(black_box(&up), side, black_box("Mon, 23 Nov 2026 20:30:00 GMT")).bytes.len();
    }
    for _ in 0..N {
        total += encode_request_head(black_box(&loc), "GET", "/ok", black_box(&client), 0, &vars).len();
    }
    for _ in 0..N {
        total += render_access_escaped(black_box(COMBINED), black_box(&entry), LogEscape::Default).len();
    }
    println!("{total}");
    println!("{}", String::from_utf8_lossy(&client_head(&up, side, "D").bytes));
    println!("{}", String::from_utf8_lossy(&encode_request_head(&loc, "GET", "/ok", &client, 0, &vars)));
    println!("{}", render_access_escaped(COMBINED, &entry, LogEscape::Default));
}
