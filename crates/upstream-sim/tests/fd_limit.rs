//! The accept loop at the process's fd limit (`ServerConfig::fd_limit`), as
//! measured on go1.19.8 under `prlimit --nofile`: accept fails before it
//! takes anything off the queue, `Serve` logs its line and backs off (5 ms,
//! doubling), a queued connection's request waits unread, and once a
//! descriptor is free the next try accepts it and its handler runs.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use upstream_sim::{EventKind, ServerConfig, UpstreamSim};

#[tokio::test]
async fn a_full_fd_table_leaves_connections_queued_until_one_closes() {
    // Go holds 7 descriptors before its first connection: room for one.
    let cfg = ServerConfig { fd_limit: Some(go_model::rules::STARTUP_FDS + 1), ..ServerConfig::default() };
    let sim = UpstreamSim::start(cfg, "127.0.0.1:0".parse().unwrap()).await.expect("start");
    let held = TcpStream::connect(sim.local_addr()).await.expect("connect");
    let errors = |ev: &[upstream_sim::ConnEvent]| ev.iter().filter(|e| matches!(e.kind, EventKind::AcceptError { .. })).count();
    let (ok, _) = sim.events().wait_for(Duration::from_secs(2), |ev| errors(ev) >= 3).await;
    assert!(ok, "no accept errors at the limit");
    let lines: Vec<(f64, String)> = sim
        .events()
        .snapshot()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AcceptError { delay_ms, line } => Some((*delay_ms, line.clone())),
            _ => None,
        })
        .take(3)
        .collect();
    assert_eq!(lines.iter().map(|l| l.0).collect::<Vec<_>>(), [5.0, 10.0, 20.0]);
    let want = format!("http: Accept error: accept tcp {}: accept4: too many open files; retrying in 5ms", sim.local_addr());
    assert_eq!(lines[0].1, want);

    // The kernel completes the handshake; the request waits unread.
    let mut queued = TcpStream::connect(sim.local_addr()).await.expect("connect completes at the limit");
    queued.write_all(b"GET /ok HTTP/1.1\r\nHost: lab\r\n\r\n").await.expect("write");
    let mut buf = [0u8; 256];
    assert!(tokio::time::timeout(Duration::from_millis(200), queued.read(&mut buf)).await.is_err(), "answered at the fd limit");
    assert_eq!(sim.handler_runs_for("/ok"), 0);

    // A descriptor freed: a later try accepts the queued connection.
    drop(held);
    let n = tokio::time::timeout(Duration::from_secs(3), queued.read(&mut buf)).await.expect("answered once a descriptor is free").expect("read");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&buf[..n]));
    assert_eq!(sim.handler_runs_for("/ok"), 1);
}
