//! `upstream-sim --control`: the settings and the idle-race knob from
//! outside the process, as the docker-compose lab's driver uses them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The binary with its two addresses (read from its stderr, bounded).
struct Sim {
    child: Child,
    addr: SocketAddr,
    control: SocketAddr,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_upstream-sim"))
        .args(["--addr", "127.0.0.1:0", "--control", "127.0.0.1:0"])
        .args(extra)
        .env("RUST_LOG", "off")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start upstream-sim");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut addr, mut control) = (None, None);
    while addr.is_none() || control.is_none() {
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("upstream-sim prints its addresses");
        if let Some(a) = line.strip_prefix("upstream-sim: listening on ") {
            addr = a.parse().ok();
        } else if let Some(a) = line.strip_prefix("upstream-sim: control endpoint on ") {
            control = a.parse().ok();
        }
    }
    Sim { child, addr: addr.unwrap(), control: control.unwrap() }
}

/// One request on its own connection: (status, body).
fn call(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// Reads one `GET /ok` reply ("ok\n", Content-Length 3) off a keep-alive connection.
fn read_ok(s: &mut TcpStream) {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.ends_with(b"\r\n\r\nok\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the reply: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn config_round_trips_and_bad_flags_change_nothing() {
    let sim = start(&["--idle-timeout", "5s", "--idle-race", "fin"]);
    let (status, body) = call(sim.control, "GET", "/config", "");
    assert_eq!(status, 200);
    let initial = body.trim().to_string();
    assert!(initial.contains("--idle-timeout=5s") && initial.ends_with("--idle-race=fin"), "{initial}");

    let wanted = "--read-timeout=2s --read-header-timeout=0s --write-timeout=300ms --idle-timeout=0s --max-header-bytes=4096 --keepalives=false --go-version=1.20 --backlog=16";
    assert_eq!(call(sim.control, "PUT", "/config", wanted), (200, format!("{wanted}\n")), "flags not given take their defaults: no idle race");
    assert_eq!(call(sim.control, "GET", "/config", "").1.trim(), wanted);

    let (status, body) = call(sim.control, "PUT", "/config", "--no-such-flag");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("--no-such-flag"), "{body}");
    let (status, body) = call(sim.control, "PUT", "/config", "--addr=127.0.0.1:1");
    assert_eq!(status, 400);
    assert!(body.contains("only the command line"), "{body}");
    assert_eq!(call(sim.control, "GET", "/config", "").1.trim(), wanted, "a refused PUT restarts nothing");
    assert_eq!(call(sim.control, "GET", "/nowhere", "").0, 404);
    assert_eq!(call(sim.control, "DELETE", "/config", "").0, 405);
}

#[test]
fn the_idle_race_armed_from_outside_closes_the_reused_connection() {
    let sim = start(&[]);
    assert_eq!(call(sim.control, "PUT", "/config", "--idle-timeout=100ms --idle-race=fin").0, 200);
    let mut c = TcpStream::connect(sim.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: lab\r\n\r\n").unwrap();
    read_ok(&mut c);
    // The workload's gap: the connection stays idle past IdleTimeout. With
    // the knob, Go's idle deadline is held until the next request arrives.
    std::thread::sleep(Duration::from_millis(250));
    c.write_all(b"GET /ok HTTP/1.1\r\nHost: lab\r\n\r\n").unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(c.read(&mut buf).unwrap(), 0, "closed (FIN) as the request arrived, no reply");
    assert_eq!(call(sim.control, "GET", "/handler-runs", ""), (200, "{\"/ok\":1}\n".to_string()), "the racing request never reached the handler");

    // Restarting closes idle connections and resets the counters.
    let mut idle = TcpStream::connect(sim.addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    idle.write_all(b"GET /ok HTTP/1.1\r\nHost: lab\r\n\r\n").unwrap();
    read_ok(&mut idle);
    assert_eq!(call(sim.control, "PUT", "/config", "--idle-timeout=5s").0, 200);
    assert_eq!(idle.read(&mut buf).unwrap(), 0, "the restart closed the idle connection");
    assert_eq!(call(sim.control, "GET", "/handler-runs", "").1, "{}\n");
    assert_eq!(call(sim.addr, "GET", "/ok", "").1, "ok\n", "the new server answers on the same address");
}

/// A Content-Length at usize::MAX is refused (400), not added up past the
/// bound; the endpoint goes on serving.
#[test]
fn a_huge_content_length_is_a_400_and_the_endpoint_lives_on() {
    let sim = start(&[]);
    let mut s = TcpStream::connect(sim.control).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "PUT /config HTTP/1.1\r\nHost: lab\r\nContent-Length: {}\r\n\r\n", usize::MAX).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out:?}");
    assert_eq!(call(sim.control, "GET", "/config", "").0, 200);
}
