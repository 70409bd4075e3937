//! How late `labkit::clock` waits end on this machine (percentiles), next
//! to tokio's own timer: `cargo run --release -p labkit --features clock --example clock_lateness`.
use std::time::{Duration, Instant};

fn pct(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e6;
    format!("p50 {:7.1} µs  p90 {:7.1} µs  p99 {:7.1} µs  max {:7.1} µs", at(0.5), at(0.9), at(0.99), at(1.0))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = 200;
    for (name, d) in [("5 ms", Duration::from_millis(5)), ("20 ms", Duration::from_millis(20))] {
        let (mut clock, mut pace, mut wheel) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..n {
            let t = Instant::now() + d;
            labkit::clock::sleep_until(t).await;
            clock.push(Instant::now() - t);
            let t = Instant::now() + d;
            labkit::clock::pace_until(t).await;
            pace.push(Instant::now() - t);
            let t = Instant::now() + d;
            tokio::time::sleep_until(t.into()).await;
            wheel.push(Instant::now() - t);
        }
        println!("{name} sleep_until  {}", pct(clock));
        println!("{name} pace_until   {}", pct(pace));
        println!("{name} tokio        {}", pct(wheel));
    }
}
