//! Go closes sockets inside the call that decides it: `closeIdleConns`
//! (`c.rwc.Close()`) within `Shutdown`, and the kernel at a process's exit.
//! Here each connection's task closes its own socket, so `shutdown` and
//! `crash_and_wait` return only once those closes are done: a client that
//! checks right after sees the FIN (or RST) already there, however loaded
//! the machine. Checked on a runtime with one worker kept busy, so a
//! connection task that is not waited for runs late.

use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use upstream_sim::{ServerConfig, UpstreamSim};

/// Opens `n` keep-alive connections, each with one answered request.
async fn idle_clients(sim: &UpstreamSim, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut c = TcpStream::connect(sim.local_addr()).await.expect("connect");
        c.write_all(b"GET /ok HTTP/1.1\r\nHost: lab\r\n\r\n").await.expect("write");
        let mut buf = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.ends_with(b"ok\n") && !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let k = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await.expect("answer in 2 s").expect("read");
            assert!(k > 0, "closed before answering");
            got.extend_from_slice(&buf[..k]);
        }
        out.push(c);
    }
    sim.wait_all_idle(Duration::from_secs(2)).await;
    out
}

/// Whether the peer's close is already readable: a non-blocking read.
fn sees_close(c: &TcpStream) -> bool {
    let mut b = [0u8; 64];
    loop {
        match c.try_read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue, // the rest of the answer
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true, // RST
        }
    }
}

/// A task that keeps the runtime's other work late: it yields only every
/// few hundred microseconds.
fn hog(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(5);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(300) {
                std::hint::spin_loop();
            }
            tokio::task::yield_now().await;
        }
    })
}

#[tokio::test(flavor = "current_thread")]
async fn shutdown_returns_after_the_idle_connections_are_closed() {
    let sim = UpstreamSim::start(ServerConfig::default(), ([127, 0, 0, 1], 0).into()).await.expect("start");
    let clients = idle_clients(&sim, 8).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = hog(stop.clone());
    assert!(sim.shutdown(Duration::from_secs(2)).await, "quiescent within the grace");
    let open: Vec<usize> = (0..clients.len()).filter(|&i| !sees_close(&clients[i])).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = h.await;
    assert!(open.is_empty(), "connections {open:?} were still open when Shutdown returned");
}

#[tokio::test(flavor = "current_thread")]
async fn a_crash_has_closed_every_socket_when_it_returns() {
    let sim = UpstreamSim::start(ServerConfig::default(), ([127, 0, 0, 1], 0).into()).await.expect("start");
    let clients = idle_clients(&sim, 8).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let h = hog(stop.clone());
    assert!(sim.crash_and_wait(Duration::from_secs(2)).await, "every socket closed within 2 s");
    let open: Vec<usize> = (0..clients.len()).filter(|&i| !sees_close(&clients[i])).collect();
    let refused = TcpStream::connect(sim.local_addr()).await.is_err();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = h.await;
    assert!(open.is_empty(), "connections {open:?} were still open after the crash");
    assert!(refused, "the listener is closed");
}
