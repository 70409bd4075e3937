//! `proxy_buffering on` (the default): the upstream's part of a response
//! ends at the upstream's pace, and its connection goes back to the
//! keepalive cache then, while the client has not read a byte
//! (`ngx_http_upstream_process_request` finalizes the upstream side at
//! `p->upstream_done`). The bytes the client sees are compared with real
//! nginx in harness/tests/hostile_upstreams.rs (`buffering::*`).

use proxy::events::ProxyEventKind;
use proxy::{conf, Proxy, ProxyOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BODY: usize = 8 * 1024 * 1024;

#[tokio::test]
async fn the_upstream_connection_is_cached_before_a_paused_client_reads() {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = up.local_addr().unwrap();
    let (written_tx, written_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = up.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = s.read(&mut buf).await;
        let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {BODY}\r\n\r\n").into_bytes();
        reply.resize(reply.len() + BODY, b'z');
        let _ = s.write_all(&reply).await;
        let _ = written_tx.send(());
        // Kept open: a cached connection.
        let _ = s.read(&mut buf).await;
    });
    let prefix = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("buffering-{}", std::process::id()));
    std::fs::create_dir_all(&prefix).unwrap();
    let src = format!(
        "events {{}}\nhttp {{\n upstream u {{ server {addr}; keepalive 2; }}\n server {{\n  location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_temp_path t; }}\n }}\n}}\n"
    );
    let p = Proxy::start(&conf::parse(&src, "b.conf").unwrap(), ProxyOptions { prefix: prefix.clone(), listen_override: Some(([127, 0, 0, 1], 0).into()), ..ProxyOptions::default() }).await.unwrap();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(b"GET /x HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").await.unwrap();
    // The client reads nothing: the upstream still finishes, and its
    // connection is cached before the client's response is done.
    tokio::time::timeout(Duration::from_secs(10), written_rx).await.expect("the upstream's write never completed").unwrap();
    let (stored, events) = p.events().wait_for(Duration::from_secs(5), |ev| ev.iter().any(|e| matches!(e.kind, ProxyEventKind::KeepaliveStored { .. }))).await;
    assert!(stored, "{events:#?}");
    assert!(!events.iter().any(|e| matches!(e.kind, ProxyEventKind::ClientResponse { .. })), "{events:#?}");
    let errors = p.error_log();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("[warn] ") && errors[0].contains(&format!("an upstream response is buffered to a temporary file {}/t/0000000001 while reading upstream", prefix.display())), "{}", errors[0]);
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), c.read_to_end(&mut got)).await.expect("the client's read never ended").unwrap();
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    assert_eq!(got.len() - head_end, BODY);
    assert!(got[head_end..].iter().all(|b| *b == b'z'));
    let (done, events) = p.events().wait_for(Duration::from_secs(5), |ev| ev.iter().any(|e| matches!(e.kind, ProxyEventKind::ClientResponse { .. }))).await;
    assert!(done, "{events:#?}");
    let _ = std::fs::remove_dir_all(&prefix);
}
