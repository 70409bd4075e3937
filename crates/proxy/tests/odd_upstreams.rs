//! Upstreams that misbehave at the byte level: the proxy answers as nginx
//! does and never panics.

use proxy::{conf, Proxy, ProxyOptions};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Serves one connection with `reply`, returns the client's status line and
/// the proxy's error log.
async fn through_proxy(reply: &'static [u8]) -> (String, Vec<String>) {
    let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = up.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = up.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await;
        let _ = s.write_all(reply).await;
        // Keep the connection until the proxy is done with it.
        let _ = s.read(&mut buf).await;
    });
    let src = format!("events {{}}\nhttp {{\n server {{\n  location / {{ proxy_pass http://{addr}; }}\n }}\n}}\n");
    let p = Proxy::start(&conf::parse(&src, "odd.conf").unwrap(), ProxyOptions { listen_override: Some(([127, 0, 0, 1], 0).into()), ..ProxyOptions::default() }).await.unwrap();
    let mut c = TcpStream::connect(p.addr()).await.unwrap();
    c.write_all(b"GET /x HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    (text.lines().next().unwrap_or("").to_string(), p.error_log())
}

#[tokio::test]
async fn a_non_ascii_header_value_passes_through() {
    let (status, errors) = through_proxy(b"HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 2\r\n\r\nok").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test]
async fn garbage_instead_of_a_header_is_an_invalid_header_502() {
    let (status, errors) = through_proxy(b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 502 Bad Gateway");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(r#"upstream sent invalid header: "Bad\x20..." while reading response header from upstream"#), "{}", errors[0]);
}

#[tokio::test]
async fn a_header_larger_than_proxy_buffer_size_is_too_big() {
    static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let big = BIG.get_or_init(|| {
        let mut v = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
        v.extend(std::iter::repeat_n(b'a', 8192));
        v.extend_from_slice(b"\r\n\r\n");
        v
    });
    let (status, errors) = through_proxy(big).await;
    assert_eq!(status, "HTTP/1.1 502 Bad Gateway");
    assert!(errors.iter().any(|e| e.contains("upstream sent too big header")), "{errors:?}");
}
