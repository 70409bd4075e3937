//! The binary's log: a handler panic logged as Go's net/http logs it
//! (`http: panic serving 127.0.0.1:54321: boom`, the client's address), and
//! `--log-level` against RUST_LOG (the flag wins; RUST_LOG when no flag).
//! Each case makes its requests, reads each reply to EOF (the line is
//! logged before the connection closes), then kills the server and reads
//! its stderr to the end: everything it wrote, no waiting on time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs upstream-sim with `args` and `rust_log`, sends each path in
/// `paths` on its own connection, and returns the client ports and the
/// whole of stderr.
fn session(args: &[&str], rust_log: Option<&str>, paths: &[&str]) -> (Vec<u16>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_upstream-sim"));
    cmd.args(["--addr", "127.0.0.1:0"]).args(args).stderr(Stdio::piped()).stdout(Stdio::null());
    match rust_log {
        Some(v) => cmd.env("RUST_LOG", v),
        None => cmd.env_remove("RUST_LOG"),
    };
    let mut child = cmd.spawn().expect("start upstream-sim");
    let mut stderr = child.stderr.take().unwrap();
    // Up to the address line (tracing's own "listening" may come first),
    // byte by byte so that nothing after it is consumed here.
    let mut text = String::new();
    let addr: SocketAddr = loop {
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while !line.ends_with(b"\n") {
            assert_eq!(stderr.read(&mut b).expect("read stderr"), 1, "upstream-sim exited: {text}");
            line.push(b[0]);
        }
        let line = String::from_utf8_lossy(&line).into_owned();
        text.push_str(&line);
        if let Some(a) = line.strip_prefix("upstream-sim: listening on ") {
            break a.trim().parse().expect("an address");
        }
    };
    let mut ports = Vec::new();
    for path in paths {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        ports.push(s.local_addr().unwrap().port());
        write!(s, "GET {path} HTTP/1.1\r\nHost: lab\r\n\r\n").unwrap();
        let mut reply = Vec::new();
        // To EOF: the panic closes the connection, after logging.
        let _ = s.read_to_end(&mut reply);
    }
    let _ = child.kill();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let _ = child.wait();
    (ports, text + &rest)
}

#[test]
fn a_panic_is_logged_with_the_clients_address_as_go_does() {
    let (ports, log) = session(&["--log-level", "error"], None, &["/panic"]);
    let want = format!("http: panic serving 127.0.0.1:{}: boom", ports[0]);
    assert!(log.contains(&want), "no {want:?} in:\n{log}");
    // error only: tracing's info line "listening" is not there.
    assert!(!log.lines().any(|l| l.contains("INFO")), "{log}");
}

#[test]
fn the_flag_wins_over_rust_log_and_rust_log_applies_without_it() {
    // RUST_LOG=off silences the panic line, unless --log-level says otherwise.
    let (_, quiet) = session(&[], Some("off"), &["/panic"]);
    assert!(!quiet.contains("http: panic serving"), "{quiet}");
    let (ports, flagged) = session(&["--log-level", "warn"], Some("off"), &["/panic"]);
    assert!(flagged.contains(&format!("http: panic serving 127.0.0.1:{}: boom", ports[0])), "{flagged}");
    // debug shows the connection events too; info does not.
    let (_, debug) = session(&["--log-level", "debug"], None, &["/panic"]);
    let (_, info) = session(&[], None, &["/panic"]);
    // (Events logged before the panic line; the close may be logged after the client saw it.)
    assert!(debug.contains("Accepted") && debug.contains("HandlerStart"), "{debug}");
    assert!(!info.contains("Accepted") && info.contains("http: panic serving"), "{info}");
}
