//! The `proxy` binary under signals, as nginx's master (`ngx_signal_handler`,
//! `ngx_master_process_cycle`): `-s reload` while a client keeps sending,
//! `-s quit` while a request is in flight. And what needs requests held
//! open on several backends: `least_conn`. Each test runs the same steps on
//! the proxy and, when it is installed, on real nginx (the reference arm:
//! the same configuration text, master and one worker).
//!
//! Real nginx is found as the harness finds it: $BADGATEWAY_NGINX, else
//! /usr/sbin/nginx or nginx on PATH. Without it only the proxy arm runs
//! (and says so); with BADGATEWAY_REQUIRE_NGINX=1 a missing nginx fails.
//!
//! Every wait is bounded and waits on something observable (a connection
//! refused, a log line, a channel), never on a guessed time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
enum Kind {
    Proxy,
    Nginx(PathBuf),
}

fn nginx() -> Option<PathBuf> {
    let found = std::env::var_os("BADGATEWAY_NGINX")
        .map(PathBuf::from)
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .chain(std::env::var_os("PATH").iter().flat_map(std::env::split_paths).map(|d| d.join("nginx")).collect::<Vec<_>>())
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(std::env::var("BADGATEWAY_REQUIRE_NGINX").as_deref() != Ok("1"), "nginx is required here (BADGATEWAY_REQUIRE_NGINX=1) and was not found");
        eprintln!("real nginx not found: the reference arm is skipped");
    }
    found
}

fn arms() -> Vec<Kind> {
    let mut v = vec![Kind::Proxy];
    v.extend(nginx().map(Kind::Nginx));
    v
}

/// A backend that answers each request with `body` (Connection: close). A
/// request for `/slow` first reports itself on `received` and waits for
/// `release`.
struct Backend {
    addr: SocketAddr,
}

fn backend(body: &'static str, slow: Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>) -> Backend {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let slow = std::sync::Arc::new(std::sync::Mutex::new(slow));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let slow = slow.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(WAIT));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                if got.starts_with(b"GET /slow ") {
                    if let Some((received, release)) = slow.lock().unwrap().as_ref() {
                        let _ = received.send(());
                        let _ = release.recv_timeout(WAIT);
                    }
                }
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            });
        }
    });
    Backend { addr }
}

/// A backend that reports each request's arrival (its name) on `arrived`
/// and answers once `release` is set.
fn holding_backend(name: &'static str, arrived: mpsc::Sender<&'static str>, release: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let (arrived, release) = (arrived.clone(), release.clone());
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(WAIT));
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                }
                let _ = arrived.send(name);
                let (lock, cv) = &*release;
                let released = cv.wait_timeout_while(lock.lock().unwrap(), WAIT, |r| !*r).unwrap();
                drop(released);
                let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n{name}");
            });
        }
    });
    addr
}

struct Server {
    kind: Kind,
    dir: PathBuf,
    listen: SocketAddr,
    child: Child,
}

fn conf_text(listen: SocketAddr, up: SocketAddr) -> String {
    conf_with_upstream(listen, &format!("server {up};"))
}

fn conf_with_upstream(listen: SocketAddr, upstream: &str) -> String {
    format!(
        "pid nginx.pid;\nerror_log error.log notice;\nevents {{ }}\nhttp {{\n access_log access.log;\n client_body_temp_path client_body_temp;\n upstream u {{ {upstream} }}\n server {{\n  listen {listen};\n  location / {{ proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n }}\n}}\n"
    )
}

impl Server {
    fn start(kind: &Kind, tag: &str, up: SocketAddr) -> Server {
        Self::start_with(kind, tag, &format!("server {up};"))
    }

    fn start_with(kind: &Kind, tag: &str, upstream: &str) -> Server {
        let dir = std::env::temp_dir().join(format!("proxy-signals-{}-{tag}-{}", std::process::id(), if matches!(kind, Kind::Proxy) { "proxy" } else { "nginx" }));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("client_body_temp")).unwrap();
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen: SocketAddr = ([127, 0, 0, 1], port).into();
        std::fs::write(dir.join("nginx.conf"), conf_with_upstream(listen, upstream)).unwrap();
        let child = Self::command(kind, &dir).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut s = Server { kind: kind.clone(), dir, listen, child };
        // Up once it accepts and the pid file is there (for -s).
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(listen).is_err() || !s.dir.join("nginx.pid").exists() {
            assert!(Instant::now() < deadline, "{kind:?} did not come up: {}", s.error_log());
            assert!(s.child.try_wait().unwrap().is_none(), "{kind:?} exited: {}", s.error_log());
            std::thread::sleep(Duration::from_millis(10));
        }
        s
    }

    fn command(kind: &Kind, dir: &Path) -> Command {
        match kind {
            Kind::Proxy => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_proxy"));
                c.arg("-p").arg(dir).arg("-c").arg(dir.join("nginx.conf"));
                c
            }
            Kind::Nginx(bin) => {
                let mut c = Command::new(bin);
                c.arg("-p").arg(format!("{}/", dir.display())).args(["-e", "error.log", "-c", "nginx.conf", "-g", "daemon off; worker_processes 1;"]);
                c
            }
        }
    }

    /// `-s NAME`, as nginx's own: the pid comes from the pid file.
    fn signal(&self, name: &str) {
        let mut c = Self::command(&self.kind, &self.dir);
        if let Kind::Nginx(bin) = &self.kind {
            // -g would be applied to the -s run too; it needs none.
            c = Command::new(bin);
            c.arg("-p").arg(format!("{}/", self.dir.display())).args(["-e", "error.log", "-c", "nginx.conf"]);
        }
        let out = c.args(["-s", name]).output().unwrap();
        assert!(out.status.success(), "{:?} -s {name}: {}", self.kind, String::from_utf8_lossy(&out.stderr));
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    fn rewrite(&self, up: SocketAddr) {
        std::fs::write(self.dir.join("nginx.conf"), conf_text(self.listen, up)).unwrap();
    }

    /// Waits (bounded) for the process to exit; its status.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "{:?} did not exit: {}", self.kind, self.error_log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM: nginx's master takes its workers with it.
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.wait_exit_quietly();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    fn wait_exit_quietly(&mut self) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

/// One request on a new connection; the whole response (to FIN).
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(WAIT))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\n\r\n")?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn body(r: &str) -> &str {
    r.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("")
}

#[test]
fn reload_switches_the_upstream_under_load_without_a_failed_request() {
    let (a, b) = (backend("A", None), backend("B", None));
    for kind in arms() {
        let mut s = Server::start(&kind, "reload", a.addr);
        let (tx, rx) = mpsc::channel();
        let listen = s.listen;
        let load = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for i in 0..200 {
                seen.push(get(listen, "/").map_err(|e| e.to_string()));
                if i == 50 {
                    let _ = tx.send(());
                }
            }
            seen
        });
        rx.recv_timeout(WAIT).expect("50 requests");
        s.rewrite(b.addr);
        s.signal("reload");
        let seen = load.join().unwrap();
        let failed: Vec<_> = seen.iter().enumerate().filter(|(_, r)| !r.as_deref().is_ok_and(|r| r.starts_with("HTTP/1.1 200 OK\r\n"))).collect();
        assert!(failed.is_empty(), "{kind:?}: failed requests: {failed:?}\n{}", s.error_log());
        let bodies: String = seen.iter().map(|r| body(r.as_ref().unwrap())).collect();
        assert!(bodies.starts_with(&"A".repeat(51)), "{kind:?}: {bodies}");
        // The new configuration takes over (nginx: once the old worker has
        // closed its listener; bounded).
        let deadline = Instant::now() + WAIT;
        while body(&get(listen, "/").unwrap()) != "B" {
            assert!(Instant::now() < deadline, "{kind:?}: never reached B after the reload: {}", s.error_log());
            std::thread::sleep(Duration::from_millis(10));
        }
        if matches!(kind, Kind::Proxy) {
            // The proxy swaps in one step: no A once a B has answered.
            assert!(!bodies.trim_start_matches('A').contains('A'), "{bodies}");
        }
        let log = s.error_log();
        assert!(log.contains("signal 1 (SIGHUP) received"), "{kind:?}: {log}");
        s.signal("quit");
        assert!(s.wait_exit().success(), "{kind:?}: {}", s.error_log());
        assert!(!s.dir.join("nginx.pid").exists(), "{kind:?}: the pid file stays");
    }
}

#[test]
fn a_bad_configuration_on_reload_keeps_the_old_one() {
    let a = backend("A", None);
    for kind in arms() {
        let s = Server::start(&kind, "badreload", a.addr);
        std::fs::write(s.dir.join("nginx.conf"), "events { }\nhttp { server { listen 127.0.0.1:1; location / { proxy_pas http://u; } } }\n").unwrap();
        let before = s.error_log().matches("[emerg]").count();
        // `-s reload` would read the bad file itself and stop there: the
        // signal goes straight to the (master) process, as `kill -HUP`.
        // SAFETY: kill(2) on our own child.
        assert_eq!(unsafe { libc::kill(s.child.id() as i32, libc::SIGHUP) }, 0);
        let deadline = Instant::now() + WAIT;
        while s.error_log().matches("[emerg]").count() == before {
            assert!(Instant::now() < deadline, "{kind:?}: no [emerg] line: {}", s.error_log());
            std::thread::sleep(Duration::from_millis(10));
        }
        let log = s.error_log();
        let line = log.lines().find(|l| l.contains("[emerg]")).unwrap();
        assert!(line.ends_with(&format!("unknown directive \"proxy_pas\" in {}:2", s.dir.join("nginx.conf").display())), "{kind:?}: {line}");
        assert_eq!(body(&get(s.listen, "/").unwrap()), "A", "{kind:?}");
    }
}

#[test]
fn graceful_quit_finishes_the_request_in_flight_then_exits() {
    let (received_tx, received) = mpsc::channel();
    let (release, release_rx) = mpsc::channel();
    let slow = backend("slow", Some((received_tx, release_rx)));
    for kind in arms() {
        let mut s = Server::start(&kind, "quit", slow.addr);
        // An idle keepalive connection: closed at the quit.
        let mut idle = TcpStream::connect(s.listen).unwrap();
        idle.set_read_timeout(Some(WAIT)).unwrap();
        idle.write_all(b"GET /fast HTTP/1.1\r\nHost: lab\r\n\r\n").unwrap();
        let mut first = vec![0u8; 4096];
        let mut got = Vec::new();
        while !got.ends_with(b"slow") {
            let n = idle.read(&mut first).unwrap();
            assert!(n > 0, "{kind:?}: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&first[..n]);
        }
        let listen = s.listen;
        let client = std::thread::spawn(move || get(listen, "/slow"));
        received.recv_timeout(WAIT).expect("the slow request reaches the backend");
        s.signal("quit");
        // New connections are refused once the listener is closed.
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(listen).is_ok() {
            assert!(Instant::now() < deadline, "{kind:?}: still accepting after quit");
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut rest = Vec::new();
        let idle_end = idle.read_to_end(&mut rest).map(|_| rest.len());
        assert!(matches!(idle_end, Ok(0)), "{kind:?}: the idle keepalive connection: {idle_end:?}");
        // Still in flight: the process waits for it.
        assert!(s.child.try_wait().unwrap().is_none(), "{kind:?} exited with a request in flight");
        release.send(()).unwrap();
        let r = client.join().unwrap().unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n") && r.ends_with("\r\n\r\nslow"), "{kind:?}: {r:?}");
        assert!(s.wait_exit().success(), "{kind:?}: {}", s.error_log());
        assert!(TcpStream::connect(listen).is_err(), "{kind:?}");
        let log = s.error_log();
        assert!(log.contains("signal 3 (SIGQUIT) received"), "{kind:?}: {log}");
    }
}

#[test]
fn stop_exits_at_once_and_s_without_a_process_fails_as_nginx() {
    let a = backend("A", None);
    let mut s = Server::start(&Kind::Proxy, "stop", a.addr);
    s.signal("stop");
    assert!(s.wait_exit().success(), "{}", s.error_log());
    assert!(!s.dir.join("nginx.pid").exists());
    let out = Server::command(&Kind::Proxy, &s.dir).args(["-s", "reload"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("[error] open() \"{}\" failed (2: No such file or directory)", s.dir.join("nginx.pid").display())), "{err}");
    let out = Server::command(&Kind::Proxy, &s.dir).args(["-s", "restart"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("invalid option: \"-s restart\""));
}

/// `least_conn` (`ngx_http_upstream_get_least_conn_peer`): six requests
/// held open on three servers, one after another; which server each
/// reaches, on the proxy and on nginx (one worker, so one set of counters).
#[test]
fn least_conn_sends_each_request_where_fewest_are_open() {
    let orders = std::sync::Mutex::new(Vec::new());
    for kind in arms() {
        let (tx, arrived) = mpsc::channel();
        let release = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let names = ["a", "b", "c"];
        let addrs: Vec<SocketAddr> = names.iter().map(|n| holding_backend(n, tx.clone(), release.clone())).collect();
        let upstream = format!("least_conn; server {}; server {}; server {} weight=2;", addrs[0], addrs[1], addrs[2]);
        let s = Server::start_with(&kind, "leastconn", &upstream);
        let listen = s.listen;
        let mut order = Vec::new();
        let mut clients = Vec::new();
        for _ in 0..8 {
            clients.push(std::thread::spawn(move || get(listen, "/")));
            order.push(arrived.recv_timeout(WAIT).expect("the request reaches a backend"));
        }
        {
            let (lock, cv) = &*release;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
        for c in clients {
            let r = c.join().unwrap().unwrap();
            assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{kind:?}: {r}");
        }
        orders.lock().unwrap().push((format!("{kind:?}").split('(').next().unwrap_or("").to_string(), order));
    }
    let orders = orders.lock().unwrap();
    // nginx 1.22.1's order with one worker (c has weight 2: a tie at no
    // connections goes to it by weighted round robin, and it takes two
    // for the others' one).
    assert_eq!(orders[0].1, ["c", "a", "b", "c", "b", "a", "c", "c"], "proxy");
    if let Some((_, real)) = orders.get(1) {
        assert_eq!(&orders[0].1, real, "proxy vs real nginx");
    }
}
