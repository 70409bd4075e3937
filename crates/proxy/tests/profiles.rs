//! The nginx version profiles change what goes on the wire (`ngx_http_proxy_merge_loc_conf` defaults):
//! legacy (≤ 1.29.6) sends HTTP/1.0 with `Connection: close` and keeps no
//! upstream connection; modern (≥ 1.29.7) sends HTTP/1.1 without a Connection
//! header and caches 32 connections per explicit upstream block by default.

use proxy::{conf, Profile, Proxy, ProxyOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A one-shot upstream that records the request head it gets and answers 200
/// with keep-alive framing.
async fn upstream() -> (TcpListener, std::net::SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

async fn request_head_seen(profile: Profile) -> (String, usize) {
    let (l, addr) = upstream().await;
    let src = format!(
        "events {{}}\nhttp {{\n upstream up {{ server {addr}; }}\n server {{\n  location / {{ proxy_pass http://up; }}\n }}\n}}\n"
    );
    let cfg = conf::parse(&src, "profile.conf").unwrap();
    let p = Proxy::start(&cfg, ProxyOptions { profile, listen_override: Some(([127, 0, 0, 1], 0).into()), ..ProxyOptions::default() }).await.unwrap();
    let paddr = p.addr();
    let client = tokio::spawn(async move {
        let mut c = tokio::net::TcpStream::connect(paddr).await.unwrap();
        c.write_all(b"GET /x HTTP/1.1\r\nHost: lab\r\n\r\n").await.unwrap();
        let mut buf = vec![0u8; 1024];
        let _ = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await;
    });
    let (mut s, _) = tokio::time::timeout(Duration::from_secs(5), l.accept()).await.unwrap().unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await.unwrap();
    client.await.unwrap();
    // Wait (bounded, on events) for the response to finish and the cache to decide.
    p.events()
        .wait_for(Duration::from_secs(5), |ev| ev.iter().any(|e| matches!(e.kind, proxy::events::ProxyEventKind::ClientResponse { .. })))
        .await;
    (head, p.cached_connections("up"))
}

#[tokio::test]
async fn legacy_sends_http10_close_and_caches_nothing() {
    let (head, cached) = request_head_seen(Profile::Legacy).await;
    assert!(head.starts_with("GET /x HTTP/1.0\r\n"), "{head}");
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert!(head.contains("\r\nHost: up\r\n"), "{head}");
    assert_eq!(cached, 0);
}

#[tokio::test]
async fn modern_sends_http11_without_connection_and_caches() {
    let (head, cached) = request_head_seen(Profile::Modern).await;
    assert!(head.starts_with("GET /x HTTP/1.1\r\n"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("connection:"), "{head}");
    assert_eq!(cached, 1, "keepalive 32 is the modern default for an explicit upstream block");
}
