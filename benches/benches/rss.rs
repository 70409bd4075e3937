//! Memory under load: the proxy in front of upstream-sim, both set up as
//! their binaries set themselves up (nothing kept in memory, logs to files),
//! driven by 16 keep-alive clients through RSS_REQUESTS requests (default
//! 1 000 000; 1 in 10 hits /panic, so the error path and error.log run too).
//! Prints the process's RSS after 50 000 requests and at the end, and their
//! ratio. Not a timed test: run it with `cargo bench -p benches --bench rss`.
//!
//! Bounded: it stops at the request count or after RSS_SECONDS (default 900).

use harness::client::WireClient;
use labkit::events::Retention;
use proxy::{conf, Proxy, ProxyOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use upstream_sim::{ServerConfig, UpstreamSim};

const CLIENTS: u64 = 16;
const FIRST_SAMPLE: u64 = 50_000;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either way: honour only our own variables.
    let total = env("RSS_REQUESTS", 1_000_000);
    let limit = Duration::from_secs(env("RSS_SECONDS", 900));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    rt.block_on(run(total, limit));
}

async fn run(total: u64, limit: Duration) {
    let dir = std::env::temp_dir().join(format!("badgateway-rss-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("work dir");
    let epoch = Instant::now();
    let sim = UpstreamSim::start_with_epoch(ServerConfig::default(), ([127, 0, 0, 1], 0).into(), epoch, Retention::Off).await.expect("upstream-sim");
    let src = format!(
        "error_log error.log;\nevents {{}}\nhttp {{\n access_log access.log;\n upstream u {{ server {}; keepalive 16; }}\n server {{\n  listen 127.0.0.1:0;\n  location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n }}\n}}\n",
        sim.local_addr()
    );
    let cfg = conf::parse(&src, "rss.conf").expect("config");
    let opts = ProxyOptions { prefix: dir.clone(), epoch, retention: Retention::Off, ..ProxyOptions::default() };
    let proxy = Proxy::start(&cfg, opts).await.expect("proxy");
    let addr = proxy.addr();
    let done = Arc::new(AtomicU64::new(0));
    let first = Arc::new(AtomicU64::new(0));
    let deadline = tokio::time::Instant::now() + limit;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (done, first) = (done.clone(), first.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = WireClient::connect(addr).await.ok()?;
            while tokio::time::Instant::now() < deadline {
                let n = done.fetch_add(1, Ordering::SeqCst) + 1;
                if n > total {
                    break;
                }
                let path = if n % 10 == 0 { "/panic" } else { "/ok" };
                let reconnect = c.get(path).await.is_err() || {
                    let ex = c.read_response(Duration::from_secs(5)).await;
                    ex.end.is_some() || ex.response.is_none_or(|r| r.connection_close || !r.complete)
                };
                if n == FIRST_SAMPLE {
                    first.store(rss_kib(), Ordering::SeqCst);
                }
                if reconnect {
                    c = WireClient::connect(addr).await.ok()?;
                }
            }
            Some(())
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let served = done.load(Ordering::SeqCst).min(total);
    let last = rss_kib();
    let first = first.load(Ordering::SeqCst);
    let secs = start.elapsed().as_secs_f64();
    println!("requests: {served} in {secs:.1} s ({:.0}/s)", served as f64 / secs);
    println!("RSS after {FIRST_SAMPLE}: {first} KiB");
    println!("RSS after {served}: {last} KiB");
    if first > 0 {
        println!("ratio: {:.3} (must be <= 1.2)", last as f64 / first as f64);
    }
    proxy.stop();
    drop(sim);
    let _ = std::fs::remove_dir_all(&dir);
}
