//! `scenarios diagnose` throughput: writes a log pair of DIAGNOSE_MB
//! megabytes (default 1024) into a temp dir — an access log in a custom
//! log_format with $msec, $upstream_status and $upstream_response_time, 1 %
//! of its requests failing or retried, each with its error.log line — runs
//! the diagnose core over it and prints MB/s, lines/s and the peak RSS.
//! Not a timed test: `cargo bench -p benches --bench diagnose_throughput`
//! (DIAGNOSE_MB=64 for a quick run; DIAGNOSE_GZIP=1 gzips the access log).

use scenarios::diagnose::{self, signature, Lines};
use std::io::Write;
use std::time::Instant;

const FORMAT: &str = "$remote_addr - [$time_local] $msec \"$request\" $status $body_bytes_sent rt=$request_time us=\"$upstream_status\" urt=\"$upstream_response_time\" ua=\"$upstream_addr\" \"$http_user_agent\"";

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// xorshift: the same log every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn wall(t: u64) -> (String, String) {
    let (h, m, s) = ((t / 3600) % 24, (t / 60) % 60, t % 60);
    let day = 1 + (t / 86_400) % 28;
    (format!("{day:02}/Nov/2026:{h:02}:{m:02}:{s:02} +0000"), format!("2026/11/{day:02} {h:02}:{m:02}:{s:02}"))
}

fn generate(dir: &std::path::Path, target: u64, gzip: bool) -> std::io::Result<(u64, u64)> {
    let access_path = dir.join(if gzip { "access.log.gz" } else { "access.log" });
    let raw = std::fs::File::create(&access_path)?;
    let mut access: Box<dyn Write> = if gzip {
        Box::new(std::io::BufWriter::new(flate2::write::GzEncoder::new(raw, flate2::Compression::fast())))
    } else {
        Box::new(std::io::BufWriter::with_capacity(1 << 20, raw))
    };
    let mut error = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("error.log"))?);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut written, mut requests) = (0u64, 0u64);
    let start = 1_795_392_000u64; // 2026-11-23 00:00:00 UTC
    let paths = ["/api/orders", "/api/orders/1234", "/api/users/42/profile", "/healthz", "/api/search", "/api/report"];
    while written < target {
        requests += 1;
        let ms = start * 1000 + requests * 3; // ~333 requests per second
        let t = ms / 1000;
        let (tl, et) = wall(t);
        let conn = requests;
        let r = rng.next();
        let path = paths[(r % paths.len() as u64) as usize];
        let method = if r.is_multiple_of(7) { "POST" } else { "GET" };
        let (status, us, urt) = match r % 100 {
            0 => {
                // the idle race: retried GET, or a POST 502
                writeln!(error, "{et} [error] 2417#2417: *{conn} upstream prematurely closed connection while reading response header from upstream, client: 10.0.0.{}, server: api, request: \"{method} {path} HTTP/1.1\", upstream: \"http://10.0.3.21:8080{path}\", host: \"api\"", conn % 250)?;
                if method == "POST" { (502, "502", "0.000".to_string()) } else { (200, "502, 200", "0.000, 0.004".to_string()) }
            }
            _ => (200, "200", format!("0.{:03}", r % 300)),
        };
        let line = format!(
            "10.0.0.{} - [{tl}] {}.{:03} \"{method} {path}?page={} HTTP/1.1\" {status} {} rt=0.{:03} us=\"{us}\" urt=\"{urt}\" ua=\"10.0.3.21:8080\" \"Mozilla/5.0 (X11; Linux x86_64) bench/1.0\"\n",
            conn % 250,
            ms / 1000,
            ms % 1000,
            r % 50,
            (r >> 8) % 20000,
            r % 300
        );
        access.write_all(line.as_bytes())?;
        written += line.len() as u64;
    }
    access.flush()?;
    error.flush()?;
    Ok((requests, std::fs::metadata(dir.join("error.log"))?.len()))
}

fn main() -> std::io::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let mb = env("DIAGNOSE_MB", 1024);
    let gzip = env("DIAGNOSE_GZIP", 0) == 1;
    let dir = std::env::temp_dir().join(format!("badgateway-diagnose-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = (|| -> std::io::Result<()> {
        let t = Instant::now();
        let (requests, error_bytes) = generate(&dir, mb << 20, gzip)?;
        println!("generated {requests} requests ({mb} MB access log{}, {} KB error.log) in {:.1} s", if gzip { " before gzip" } else { "" }, error_bytes / 1024, t.elapsed().as_secs_f64());
        let ms = signature::mechanisms(&scenarios::catalogue::all().expect("catalogue"));
        let format = nginx_model::logparse::AccessFormat::compile(FORMAT).expect("format");
        let access_name = if gzip { "access.log.gz" } else { "access.log" };
        let error = Lines::open(&dir.join("error.log"))?;
        let access = Lines::open(&dir.join(access_name))?;
        let t = Instant::now();
        let report = diagnose::run(&ms, Some(("error.log".into(), error)), Some((access_name.into(), access, format)), diagnose::Options::default())?;
        let secs = t.elapsed().as_secs_f64();
        let bytes = report.access_log.as_ref().map_or(0, |s| s.bytes) + report.error_log.as_ref().map_or(0, |s| s.bytes);
        let lines = report.access_log.as_ref().map_or(0, |s| s.lines) + report.error_log.as_ref().map_or(0, |s| s.lines);
        let (visible, retried) = report.totals();
        println!(
            "diagnose: {:.1} MB in {secs:.2} s = {:.0} MB/s, {:.2} M lines/s; {visible} failed + {retried} retried requests; peak RSS {} MB",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / secs,
            lines as f64 / 1e6 / secs,
            peak_rss_kib() / 1024
        );
        for f in &report.findings {
            println!("  {:<20} {:>8} requests", f.mechanism, f.tally.requests);
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
