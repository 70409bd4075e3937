//! `go_model::serve` (virtual time, for the oracle) against the live
//! emulator: for each case the emulator's `write(2)`s (its `Wrote` events)
//! have the sizes of serve's transmits, the bytes the client reads are
//! serve's bytes (the Date value aside), and the connection ends the same
//! way, no earlier than serve says.

use go_model::response::EPOCH_DATE;
use go_model::serve::{serve, End, RequestSpec};
use go_model::CloseKind;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use upstream_sim::{EventKind, ServerConfig, UpstreamSim};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The request's bytes, and its spec with the head length they have.
fn request(method: &str, target: &str, http11: bool, body_len: u64) -> (Vec<u8>, RequestSpec) {
    let version = if http11 { "1.1" } else { "1.0" };
    let mut head = format!("{method} {target} HTTP/{version}\r\nHost: lab\r\n");
    if body_len > 0 {
        head.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    head.push_str("\r\n");
    let spec = RequestSpec {
        method: method.into(),
        target: target.into(),
        http11,
        connection_close: false,
        head_len: head.len(),
        body_len,
        body_withheld: 0,
    };
    let mut bytes = head.into_bytes();
    bytes.resize(bytes.len() + body_len as usize, b'p');
    (bytes, spec)
}

/// What the emulator did with one request.
struct Live {
    writes: Vec<usize>,
    read: Vec<u8>,
    /// `None`: waiting for the next request.
    closed: Option<CloseKind>,
    /// From the head read to the close or the idle wait.
    end_after: Duration,
}

async fn on_emulator(cfg: &ServerConfig, req: Vec<u8>) -> Live {
    let sim = UpstreamSim::start(cfg.clone(), ([127, 0, 0, 1], 0).into()).await.expect("start the emulator");
    let stream = TcpStream::connect(sim.local_addr()).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    // The write half stays open (no FIN) until the end; a server that
    // stops reading and resets ends the write.
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&req).await;
        wr
    });
    let (ended, events) = sim
        .events()
        .wait_for(Duration::from_secs(3), |ev| {
            ev.iter().any(|e| e.conn == 1 && matches!(e.kind, EventKind::Closed { .. } | EventKind::IdleWait { .. }))
        })
        .await;
    assert!(ended, "the emulator neither closed nor went idle: {events:?}");
    let mine: Vec<_> = events.iter().filter(|e| e.conn == 1).collect();
    let writes: Vec<usize> = mine.iter().filter_map(|e| if let EventKind::Wrote { bytes } = e.kind { Some(bytes) } else { None }).collect();
    let head_read = mine.iter().find(|e| matches!(e.kind, EventKind::HeadRead { .. })).expect("HeadRead").at;
    let end = mine.iter().find(|e| matches!(e.kind, EventKind::Closed { .. } | EventKind::IdleWait { .. })).expect("end");
    let closed = match end.kind {
        EventKind::Closed { how, .. } => Some(how),
        _ => None,
    };
    // Everything written is in the client's receive buffer by now.
    let total: usize = writes.iter().sum();
    let mut read = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    while read.len() < total {
        match tokio::time::timeout(Duration::from_secs(2), rd.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => read.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    writer.abort();
    sim.crash();
    Live { writes, read, closed, end_after: end.at.saturating_sub(head_read) }
}

/// The emulator's Date value, replaced by serve's fixed one.
fn without_date(mut bytes: Vec<u8>) -> Vec<u8> {
    if let Some(i) = bytes.windows(6).position(|w| w == b"Date: ") {
        bytes[i + 6..i + 6 + EPOCH_DATE.len()].copy_from_slice(EPOCH_DATE.as_bytes());
    }
    bytes
}

async fn agree(cfg: ServerConfig, method: &str, target: &str, http11: bool, body_len: u64) {
    let (bytes, spec) = request(method, target, http11, body_len);
    let served = serve(&cfg, cfg.keep_alives, &spec);
    let live = on_emulator(&cfg, bytes).await;
    let what = format!("{method} {target} (HTTP/1.{}, body {body_len})", u8::from(http11));
    let sizes: Vec<usize> = served.wire.iter().map(|t| t.bytes.len()).collect();
    assert_eq!(live.writes, sizes, "{what}: write(2) sizes");
    let wire: Vec<u8> = served.wire.iter().flat_map(|t| t.bytes.iter().copied()).collect();
    assert!(without_date(live.read) == wire, "{what}: the bytes differ");
    let (closed, at) = match served.end {
        End::KeepAlive { at } => (None, at),
        End::Close { at, how } => (Some(how), at),
    };
    assert_eq!(live.closed, closed, "{what}: the end (None = kept alive)");
    // Virtual time is a lower bound; the slack covers a loaded machine.
    assert!(
        live.end_after >= at && live.end_after < at + ms(250),
        "{what}: ended {:?} after the head, serve says {at:?}",
        live.end_after
    );
}

fn wt(n: u64) -> ServerConfig {
    ServerConfig { write_timeout: ms(n), ..ServerConfig::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_matches_the_emulator() {
    let go = ServerConfig::default;
    // Each case starts its own emulator; run them side by side.
    let cases = vec![
        tokio::spawn(agree(go(), "GET", "/ok", true, 0)),
        tokio::spawn(agree(go(), "GET", "/big?bytes=10000", true, 0)),
        tokio::spawn(agree(go(), "GET", "/big?bytes=5000", false, 0)),
        tokio::spawn(agree(go(), "GET", "/ok", false, 0)),
        tokio::spawn(agree(wt(50), "GET", "/sleep?ms=100", true, 0)),
        tokio::spawn(agree(wt(50), "GET", "/partial?bytes=65536&ms=100", true, 0)),
        tokio::spawn(agree(go(), "GET", "/panic-after-flush?bytes=1000&ms=20", true, 0)),
        tokio::spawn(agree(go(), "GET", "/panic-after-flush?bytes=3000&ms=20&cl=1", true, 0)),
        tokio::spawn(agree(go(), "POST", "/panic", true, 1 << 20)),
        tokio::spawn(agree(go(), "POST", "/ok", true, 100 << 10)),
        tokio::spawn(agree(go(), "POST", "/ok", true, 300 << 10)),
        tokio::spawn(agree(go(), "GET", "/timeout-handler?ms=300&limit=30", true, 0)),
        tokio::spawn(agree(go(), "GET", "/recover-panic", true, 0)),
        tokio::spawn(agree(go(), "GET", "/big-header?bytes=8192", true, 0)),
        tokio::spawn(agree(go(), "GET", "/sse?events=3&ms=40&every=15", true, 0)),
        tokio::spawn(agree(go(), "GET", "/sse?events=2&ms=30", false, 0)),
        tokio::spawn(agree(go(), "GET", "/content-length?bytes=1024&declared=4096", true, 0)),
        tokio::spawn(agree(go(), "GET", "/content-length?bytes=1024", true, 0)),
        tokio::spawn(agree(ServerConfig { keep_alives: false, ..go() }, "GET", "/ok", true, 0)),
    ];
    for case in cases {
        case.await.expect("case");
    }
}
