//! A relay that puts distance between the proxy and the upstream.
//!
//! netem is not available on these kernels, so the delay is a userspace
//! hop: every byte, FIN and RST that arrives on one side leaves on the other
//! `one_way` later, in order. The idle race depends on what crosses first
//! (Go's FIN towards nginx, nginx's request towards Go), so closes travel
//! like data: a FIN is a `shutdown(SHUT_WR)` after the bytes before it, a
//! reset is answered with a reset (SO_LINGER 0) on the other side.

use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A listening relay to one upstream address; dropped, it stops accepting
/// and cuts its connections.
pub struct Relay {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and relays each connection to
    /// `upstream`, each direction `one_way` late.
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> io::Result<Relay> {
        let listener = TcpListener::bind((upstream.ip(), 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((down, _)) = listener.accept().await {
                conns.spawn(relay_one(down, upstream, one_way));
                // Reap the finished ones so a long run keeps no garbage.
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Relay { addr, task })
    }

    /// Where the proxy connects instead of the upstream.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        // The JoinSet inside is dropped with the task: every pump aborts.
        self.task.abort();
    }
}

/// Reads (up to 64 KiB each) queued per direction before the reader waits.
const IN_FLIGHT: usize = 64;

/// What crosses the relay, in order.
enum Segment {
    Data(Bytes),
    Fin,
    Rst,
}

/// One proxied connection. The upstream side connects only when the proxy
/// side does (a refused connect becomes a reset towards the proxy, after
/// the delay, as a refused SYN would arrive).
async fn relay_one(down: TcpStream, upstream: SocketAddr, one_way: Duration) {
    let _ = down.set_nodelay(true);
    tokio::time::sleep(one_way).await;
    let up = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(_) => {
            tokio::time::sleep(one_way).await;
            reset(&down);
            drop(down);
            return;
        }
    };
    let _ = up.set_nodelay(true);
    let (down, up) = (Arc::new(down), Arc::new(up));
    // A reset ends both directions at once, so both sockets close now.
    let cut = CancellationToken::new();
    let guarded = |from: Arc<TcpStream>, to: Arc<TcpStream>| {
        let cut = cut.clone();
        async move {
            tokio::select! {
                _ = cut.cancelled() => {}
                () = pump(from, to, one_way, cut.clone()) => {}
            }
        }
    };
    tokio::join!(guarded(down.clone(), up.clone()), guarded(up, down));
}

/// Carries `from`'s bytes and closes to `to`, each `delay` after it arrived.
async fn pump(from: Arc<TcpStream>, to: Arc<TcpStream>, delay: Duration, cut: CancellationToken) {
    // Bounded: a side that stops reading holds the other back, as TCP would,
    // instead of the relay queueing without end.
    let (tx, mut rx) = mpsc::channel::<(Instant, Segment)>(IN_FLIGHT);
    let reader = {
        let from = from.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                if from.readable().await.is_err() {
                    let _ = tx.send((Instant::now() + delay, Segment::Rst)).await;
                    return;
                }
                match from.try_read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send((Instant::now() + delay, Segment::Fin)).await;
                        return;
                    }
                    Ok(n) => {
                        if tx.send((Instant::now() + delay, Segment::Data(Bytes::copy_from_slice(&buf[..n])))).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => {
                        let _ = tx.send((Instant::now() + delay, Segment::Rst)).await;
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((at, seg)) = rx.recv().await {
            labkit::clock::sleep_until(at).await;
            match seg {
                Segment::Data(b) => {
                    if write_all(&to, &b).await.is_err() {
                        reset(&from);
                        cut.cancel();
                        return;
                    }
                }
                Segment::Fin => {
                    let _ = socket2::SockRef::from(&*to).shutdown(std::net::Shutdown::Write);
                }
                Segment::Rst => {
                    reset(&to);
                    cut.cancel();
                    return;
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

async fn write_all(to: &TcpStream, mut b: &[u8]) -> io::Result<()> {
    while !b.is_empty() {
        to.writable().await?;
        match to.try_write(b) {
            Ok(n) => b = &b[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Makes the socket's close a reset (SO_LINGER 0): the caller then drops
/// every handle, and the kernel sends an RST instead of a FIN.
fn reset(s: &TcpStream) {
    let _ = socket2::SockRef::from(s).set_linger(Some(Duration::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bytes_and_the_fin_arrive_one_delay_later() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay::start(server.local_addr().unwrap(), Duration::from_millis(5)).await.unwrap();
        let mut client = TcpStream::connect(relay.addr()).await.unwrap();
        let (mut upstream, _) = tokio::time::timeout(Duration::from_secs(5), server.accept()).await.unwrap().unwrap();
        let sent = Instant::now();
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), upstream.read_exact(&mut got)).await.unwrap().unwrap();
        assert_eq!(&got, b"ping");
        assert!(sent.elapsed() >= Duration::from_millis(5), "arrived after {:?}", sent.elapsed());
        let closed = Instant::now();
        drop(upstream);
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut rest)).await.unwrap().unwrap();
        assert_eq!(n, 0, "the upstream's FIN, no bytes");
        assert!(closed.elapsed() >= Duration::from_millis(5), "FIN after {:?}", closed.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_connect_reaches_the_client_as_a_reset() {
        let gone = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = gone.local_addr().unwrap();
        drop(gone);
        let relay = Relay::start(addr, Duration::from_millis(1)).await.unwrap();
        let mut client = TcpStream::connect(relay.addr()).await.unwrap();
        let mut buf = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf)).await.unwrap();
        assert!(matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionReset), "{r:?}");
    }
}
