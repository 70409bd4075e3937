//! Real nginx and the proxy side by side: the same nginx.conf file (upstream
//! keepalive on), in front of the same upstream-sim process, each started as
//! its own process on the same loopback port in turn. A load generator in
//! this process measures req/s with 32 keep-alive clients and latency with
//! one, over several rounds that alternate nginx, proxy, nginx, proxy, ...
//! so that a noisy neighbour on the machine hits both alike.
//!
//! Run: `cargo build --release -p proxy -p upstream-sim` first (the bench
//! runs those binaries; cargo does not build a package's binaries for
//! another package's bench), then `cargo bench -p benches --bench side_by_side`.
//!
//! Knobs: SIDE_BY_SIDE_SECS (per measurement, default 3), SIDE_BY_SIDE_ROUNDS
//! (default 3), BENCH_QUICK=1 or `--quick` (1 round of 0.5 s, for CI),
//! SIDE_BY_SIDE_WORKERS (`worker_processes` in the shared nginx.conf,
//! default 1: nginx runs that many worker processes, the proxy that many
//! event-loop threads, a current-thread runtime for 1), SIDE_BY_SIDE_PIN=0
//! (the server under test is not given a CPU of its own; see `Pinning`),
//! SIDE_BY_SIDE_PROXY / SIDE_BY_SIDE_UPSTREAM
//! (binary paths; default next to this bench in target/release).
//!
//! Bounded: every measurement stops after its seconds (and after
//! MAX_REQUESTS_PER_CLIENT), every request after REQUEST_LIMIT; the servers
//! are started by this process and killed by their PID.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const NGINX: &str = "/usr/sbin/nginx";
const THROUGHPUT_CLIENTS: usize = 32;
const MAX_REQUESTS_PER_CLIENT: u64 = 10_000_000;
const REQUEST_LIMIT: Duration = Duration::from_secs(5);
const REQUEST: &[u8] = b"GET /ok HTTP/1.1\r\nHost: bench\r\n\r\n";

struct Settings {
    secs: f64,
    rounds: usize,
    workers: usize,
    /// The server under test on the last CPU alone, the generator and the
    /// upstream on the others (see `Pinning`; SIDE_BY_SIDE_PIN=0: not).
    pin: bool,
}

fn settings() -> Settings {
    let quick = std::env::args().any(|a| a == "--quick") || std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<f64>().ok()).filter(|v| *v > 0.0);
    let workers = var("SIDE_BY_SIDE_WORKERS").map_or(1, |v| v as usize);
    // Pinned unless SIDE_BY_SIDE_PIN=0, or with one CPU only.
    let pin = std::env::var("SIDE_BY_SIDE_PIN").map_or(true, |v| v != "0") && allowed_cpus().len() >= 2;
    if quick {
        return Settings { secs: 0.5, rounds: 1, workers, pin };
    }
    Settings { secs: var("SIDE_BY_SIDE_SECS").unwrap_or(3.0), rounds: var("SIDE_BY_SIDE_ROUNDS").map_or(3, |v| v as usize), workers, pin }
}

/// The bench binary is target/release/deps/side_by_side-HASH: the
/// workspace's binaries are one directory up.
fn sibling_binary(var: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    exe.parent().and_then(Path::parent).map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name))
}

/// The newest modification time of the files under `dir`.
fn newest(dir: &Path) -> Option<std::time::SystemTime> {
    let mut out = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let t = if e.path().is_dir() { newest(&e.path()) } else { e.metadata().and_then(|m| m.modified()).ok() };
        out = out.max(t);
    }
    out
}

/// cargo rebuilds the libraries this bench links, not the binaries it
/// runs: say so when a binary is older than the sources it is built from.
fn warn_if_stale(bin: &Path, crates: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok();
    let sources = crates.iter().filter_map(|c| newest(&root.join("crates").join(c).join("src"))).max();
    if let (Some(built), Some(sources)) = (built, sources) {
        if sources > built {
            println!("warning: {} is older than its sources: run `cargo build --release -p proxy -p upstream-sim`", bin.display());
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// The one nginx.conf both read. Temp paths and the pid file are relative
/// to each one's prefix, so nginx touches nothing outside its temp dir.
fn nginx_conf(listen: SocketAddr, upstream: SocketAddr, workers: usize) -> String {
    format!(
        "worker_processes {workers};
pid nginx.pid;
error_log error.log;
events {{ worker_connections 1024; }}
http {{
    access_log access.log;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    upstream u {{
        server {upstream};
        keepalive 16;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://u;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    )
}

/// A child process killed (by its PID, which we spawned) when dropped.
struct Server {
    name: &'static str,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most 10 s) until `addr` accepts, or the child exits.
fn wait_accepting(server: &mut Server, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("{} exited: {status} (see its error.log / stderr)", server.name));
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("{} did not accept on {addr} within 10 s", server.name))
}

/// The CPUs this process may run on.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect()
}

/// Restricts the calling thread (and what it spawns after) to `cpus`.
fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    // SAFETY: CPU_SET on a zeroed set with indices below CPU_SETSIZE.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Pinned (the default with two CPUs or more): the server under test gets
/// the last allowed CPU to itself (nginx's one worker, the proxy's one
/// event-loop thread), this generator and the upstream the others. Then the
/// server's own cost per request sets req/s. Unpinned, the scheduler's
/// placement of three busy processes on two cores moved single rounds by
/// ±12 % and decided more than either server did.
struct Pinning {
    server: usize,
    rest: Vec<usize>,
}

fn pinning() -> Result<Pinning, String> {
    let mut cpus = allowed_cpus();
    let server = cpus.pop().filter(|_| !cpus.is_empty()).ok_or("pinning needs at least 2 CPUs")?;
    Ok(Pinning { server, rest: cpus })
}

fn start(kind: Kind, bins: &Bins, conf: &Path, work: &Path, listen: SocketAddr, pin: Option<usize>) -> Result<Server, String> {
    let prefix = work.join(kind.name());
    std::fs::create_dir_all(prefix.join("tmp")).map_err(|e| e.to_string())?;
    let mut cmd = match kind {
        Kind::Nginx => {
            let mut c = Command::new(NGINX);
            c.arg("-p").arg(format!("{}/", prefix.display())).args(["-e", "error.log", "-c"]).arg(conf).args(["-g", "daemon off; master_process off;"]);
            c
        }
        Kind::Proxy => {
            let mut c = Command::new(&bins.proxy);
            c.arg("-c").arg(conf).arg("-p").arg(&prefix);
            c
        }
    };
    if let Some(cpu) = pin {
        use std::os::unix::process::CommandExt;
        // SAFETY: only sched_setaffinity (async-signal-safe) between fork and exec.
        unsafe { cmd.pre_exec(move || set_affinity(&[cpu])) };
    }
    let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("cannot run {}: {e}", kind.name()))?;
    let mut server = Server { name: kind.name(), child };
    wait_accepting(&mut server, listen)?;
    Ok(server)
}

struct Bins {
    proxy: PathBuf,
    upstream: PathBuf,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Nginx,
    Proxy,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Proxy => "proxy",
        }
    }
}

/// What one client connection saw.
#[derive(Default)]
struct ClientRun {
    /// Per-request latency of the 200s, in nanoseconds.
    latencies: Vec<u64>,
    /// Non-200 answers, and failed connections (then reconnected).
    errors: u64,
    /// Answers with `Connection: close` (nginx's `keepalive_requests 1000`
    /// on the client side): counted, then reconnected.
    closes: u64,
    /// connect() calls made.
    connects: u64,
}

/// One request/response on a keep-alive connection: the status, and
/// whether the server closes the connection after it.
async fn exchange(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<(u16, bool)> {
    s.write_all(REQUEST).await?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| std::io::Error::other("non-UTF-8 head"))?;
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other("bad status line"))?;
    let mut length = None;
    let mut close = false;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
            close = true;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // /ok and nginx's error pages carry a length; anything else is a surprise.
            return Err(std::io::Error::other("chunked response not expected"));
        }
    }
    let length = length.ok_or_else(|| std::io::Error::other("no Content-Length"))?;
    while buf.len() < head_end + length {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok((status, close))
}

async fn client(addr: SocketAddr, until: Instant) -> ClientRun {
    let mut run = ClientRun::default();
    let mut buf = Vec::with_capacity(4096);
    let mut conn: Option<TcpStream> = None;
    for _ in 0..MAX_REQUESTS_PER_CLIENT {
        if Instant::now() >= until {
            break;
        }
        let s = match conn.as_mut() {
            Some(s) => s,
            None => {
                run.connects += 1;
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        conn.insert(s)
                    }
                    Err(_) => {
                        run.errors += 1;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                }
            }
        };
        let t0 = Instant::now();
        match tokio::time::timeout(REQUEST_LIMIT, exchange(s, &mut buf)).await {
            Ok(Ok((status, close))) => {
                if status == 200 {
                    run.latencies.push(t0.elapsed().as_nanos() as u64);
                } else {
                    run.errors += 1;
                }
                if close {
                    run.closes += 1;
                    conn = None;
                }
            }
            Ok(Err(_)) | Err(_) => {
                run.errors += 1;
                conn = None;
            }
        }
    }
    run
}

struct Measured {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    errors: u64,
    closes: u64,
    connects: u64,
}

async fn measure(addr: SocketAddr, clients: usize, secs: f64) -> Measured {
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..clients).map(|_| tokio::spawn(client(addr, until))).collect();
    let mut latencies = Vec::new();
    let (mut errors, mut closes, mut connects) = (0, 0, 0);
    for t in tasks {
        let r = t.await.expect("client task");
        latencies.extend(r.latencies);
        errors += r.errors;
        closes += r.closes;
        connects += r.connects;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| if latencies.is_empty() { f64::NAN } else { latencies[((latencies.len() - 1) as f64 * p) as usize] as f64 / 1000.0 };
    Measured { rps: latencies.len() as f64 / elapsed, p50_us: pct(0.50), p99_us: pct(0.99), errors, closes, connects }
}

/// The system's TCP ActiveOpens counter (/proc/net/snmp). Less the
/// generator's own connects, it counts the upstream connections the server
/// under test opened: a check that upstream keepalive works. A loopback
/// port is reused out of TIME_WAIT (tcp_tw_reuse), so counting sockets
/// would miss them; other programs on the machine add a little noise.
fn active_opens() -> u64 {
    let text = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut tcp = text.lines().filter(|l| l.starts_with("Tcp:"));
    let (Some(names), Some(values)) = (tcp.next(), tcp.next()) else { return 0 };
    names.split_whitespace().zip(values.split_whitespace()).find(|(n, _)| *n == "ActiveOpens").and_then(|(_, v)| v.parse().ok()).unwrap_or(0)
}

struct Round {
    kind: Kind,
    c32: Measured,
    c1: Measured,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile(&v, 0.5)
}

/// The `q` quantile of sorted `v`, interpolated between neighbours.
fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let at = (v.len() - 1) as f64 * q;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (at - lo as f64)
}

fn main() {
    if !Path::new(NGINX).is_file() {
        println!("skipped: no nginx at {NGINX}");
        return;
    }
    let s = settings();
    let bins = Bins { proxy: sibling_binary("SIDE_BY_SIDE_PROXY", "proxy"), upstream: sibling_binary("SIDE_BY_SIDE_UPSTREAM", "upstream-sim") };
    for b in [&bins.proxy, &bins.upstream] {
        if !b.is_file() {
            eprintln!("error: {} not found: run `cargo build --release -p proxy -p upstream-sim` first", b.display());
            std::process::exit(1);
        }
    }
    let models = ["labkit", "nginx-model", "go-model"];
    warn_if_stale(&bins.proxy, &[&["proxy"][..], &models].concat());
    warn_if_stale(&bins.upstream, &[&["upstream-sim"][..], &models].concat());
    // The generator gets one thread: the box is small, and the servers
    // under test need the rest.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let work = std::env::temp_dir().join(format!("badgateway-side-by-side-{}", std::process::id()));
    std::fs::create_dir_all(&work).expect("work dir");
    let result = run(&rt, &s, &bins, &work);
    // Logs are kept when something failed, for a look.
    match result {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&work);
        }
        Err(e) => {
            eprintln!("error: {e} (files kept in {})", work.display());
            std::process::exit(1);
        }
    }
}

fn run(rt: &tokio::runtime::Runtime, s: &Settings, bins: &Bins, work: &Path) -> Result<(), String> {
    let pin = if s.pin { Some(pinning()?) } else { None };
    if let Some(p) = &pin {
        // Before the upstream is spawned: it inherits the mask.
        set_affinity(&p.rest).map_err(|e| format!("sched_setaffinity: {e}"))?;
    }
    let up_addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let listen: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let upstream = Command::new(&bins.upstream)
        .args(["--addr", &up_addr.to_string(), "--log-level", "error"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", bins.upstream.display()))?;
    let mut upstream = Server { name: "upstream-sim", child: upstream };
    wait_accepting(&mut upstream, up_addr)?;
    let conf = work.join("nginx.conf");
    std::fs::write(&conf, nginx_conf(listen, up_addr, s.workers)).map_err(|e| e.to_string())?;

    println!(
        "side by side: {NGINX} vs {}, one nginx.conf (worker_processes {}, keepalive 16), upstream-sim {}",
        bins.proxy.display(),
        s.workers,
        bins.upstream.display()
    );
    println!("{} round(s) of {} s per measurement; GET /ok; C={THROUGHPUT_CLIENTS} for req/s, C=1 for latency; listen {listen}, upstream {up_addr}", s.rounds, s.secs);
    match &pin {
        Some(p) => println!("server under test on CPU {}; this generator and the upstream on CPU {:?}", p.server, p.rest),
        None => println!("not pinned: the scheduler places the server, the generator and the upstream"),
    }
    println!("{:>5}  {:<6} {:>11} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7} {:>12}", "round", "server", "C=32 req/s", "C=32 p50", "C=1 req/s", "C=1 p50", "C=1 p99", "errors", "closes", "up opens");
    let warmup = (s.secs / 5.0).clamp(0.1, 0.5);
    let mut rounds = Vec::new();
    for r in 1..=s.rounds {
        for kind in [Kind::Nginx, Kind::Proxy] {
            let server = start(kind, bins, &conf, work, listen, pin.as_ref().map(|p| p.server))?;
            // Connections and the upstream keepalive cache warm up unmeasured.
            rt.block_on(measure(listen, THROUGHPUT_CLIENTS, warmup));
            let before = active_opens();
            let c32 = rt.block_on(measure(listen, THROUGHPUT_CLIENTS, s.secs));
            let mid = active_opens();
            let c1 = rt.block_on(measure(listen, 1, s.secs));
            let after = active_opens();
            let opens32 = (mid - before).saturating_sub(c32.connects);
            let opens1 = (after - mid).saturating_sub(c1.connects);
            drop(server);
            println!(
                "{r:>5}  {:<6} {:>11.0} {:>8.0}µs {:>10.0} {:>8.1}µs {:>8.1}µs {:>7} {:>7} {:>5}+{:<6}",
                kind.name(),
                c32.rps,
                c32.p50_us,
                c1.rps,
                c1.p50_us,
                c1.p99_us,
                c32.errors + c1.errors,
                c32.closes + c1.closes,
                opens32,
                opens1
            );
            rounds.push(Round { kind, c32, c1 });
        }
    }
    let errors: u64 = rounds.iter().map(|r| r.c32.errors + r.c1.errors).sum();
    println!("errors: non-200 answers and failed connections; closes: answers with Connection: close (the client reconnects);");
    println!("up opens: ~upstream connections the server opened during C=32 + C=1 (keepalive 16 keeps at most 16 idle).");
    println!("load average now: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    println!();
    println!("median of {} round(s)       {:>10} {:>10} {:>12} {:>13}   min-max over rounds", s.rounds, "nginx", "proxy", "proxy/nginx", "paired ratio");
    let of = |kind: Kind, f: fn(&Round) -> f64| -> Vec<f64> { rounds.iter().filter(|r| r.kind == kind).map(f).collect() };
    let range = |v: &[f64]| (v.iter().copied().fold(f64::INFINITY, f64::min), v.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    let summary = |label: &str, f: fn(&Round) -> f64, digits: usize| {
        let (n, p) = (of(Kind::Nginx, f), of(Kind::Proxy, f));
        // Round r's nginx and proxy ran back to back: the median of their
        // ratios is less exposed to load that drifts over the run.
        let paired = median(n.iter().zip(&p).map(|(n, p)| p / n).collect());
        let ((nlo, nhi), (plo, phi)) = (range(&n), range(&p));
        let (n, p) = (median(n), median(p));
        println!(
            "{label:<26} {n:>10.digits$} {p:>10.digits$} {:>12.2} {paired:>13.2}   nginx {nlo:.digits$}-{nhi:.digits$}, proxy {plo:.digits$}-{phi:.digits$}",
            p / n
        );
    };
    summary(&format!("req/s at C={THROUGHPUT_CLIENTS}"), |r| r.c32.rps, 0);
    summary("p50 latency at C=1 (µs)", |r| r.c1.p50_us, 1);
    // How far one round's ratio is to be trusted: the spread of the paired
    // ratios, and in how many rounds the proxy was the faster of the two.
    println!();
    println!("proxy/nginx by round         median  middle half  proxy faster in");
    let spread = |label: &str, f: fn(&Round) -> f64, faster: fn(f64) -> bool| {
        let (n, p) = (of(Kind::Nginx, f), of(Kind::Proxy, f));
        let mut ratios: Vec<f64> = n.iter().zip(&p).map(|(n, p)| p / n).collect();
        ratios.sort_by(f64::total_cmp);
        let ahead = ratios.iter().filter(|r| faster(**r)).count();
        println!(
            "{label:<28} {:>6.2}  {:>4.2}-{:<4.2}    {ahead:>3} of {} rounds",
            quantile(&ratios, 0.5),
            quantile(&ratios, 0.25),
            quantile(&ratios, 0.75),
            ratios.len()
        );
    };
    spread(&format!("req/s at C={THROUGHPUT_CLIENTS}"), |r| r.c32.rps, |r| r > 1.0);
    spread("p50 latency at C=1", |r| r.c1.p50_us, |r| r < 1.0);
    if errors > 0 {
        println!("non-200 answers or failed connections: {errors} (they are not counted in req/s)");
    }
    Ok(())
}
