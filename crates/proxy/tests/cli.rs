//! The `proxy` binary: `-t` like `nginx -t`, errors with file:line, no panics.

use std::process::Command;

fn proxy(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_proxy")).args(args).output().expect("run proxy");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A scratch directory holding `name` with `text`, removed when dropped
/// (also when an assertion fails).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn with_conf(tag: &str, name: &str, text: &[u8]) -> (Scratch, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("proxy-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(name);
        std::fs::write(&f, text).unwrap();
        (Scratch(dir), f)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[test]
fn test_mode_accepts_the_fixture() {
    // -t creates what nginx creates (temp directories, logs) in the prefix:
    // a scratch one, not fixtures/.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/nginx.conf");
    let prefix = std::env::temp_dir().join(format!("proxy-cli0-{}", std::process::id()));
    std::fs::create_dir_all(&prefix).unwrap();
    let (ok, err) = proxy(&["-t", "-c", fixture, "-p", prefix.to_str().unwrap()]);
    std::fs::remove_dir_all(&prefix).ok();
    assert!(ok, "{err}");
    assert!(err.contains("test is successful"), "{err}");
}

#[test]
fn bad_directive_is_reported_with_file_and_line() {
    let (dir, f) = Scratch::with_conf("cli", "bad.conf", b"events {}\nhttp {\n  server {\n    listen 127.0.0.1:8080;\n    location / { proxy_pas http://x; }\n  }\n}\n");
    let (ok, err) = proxy(&["-t", "-c", f.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains(&format!("unknown directive \"proxy_pas\" in {}:5", f.display())), "{err}");
    let (ok, err) = proxy(&["-t", "-c", dir.0.join("missing.conf").to_str().unwrap()]);
    assert!(!ok && err.contains("failed"), "{err}");
}

#[test]
fn semantic_errors_fail_the_test_mode() {
    let (_dir, f) = Scratch::with_conf("cli2", "nohost.conf", b"events {}\nhttp {\n  server {\n    listen 127.0.0.1:8080;\n    location / { proxy_pass http://up/; }\n  }\n}\n");
    let (ok, err) = proxy(&["-t", "-c", f.to_str().unwrap()]);
    // The URI part is not emulated, but the host is resolved as nginx does.
    assert!(
        !ok && err.contains(&format!(
            "host not found in upstream \"up:80\" in {}:5",
            f.display()
        )),
        "{err}"
    );
}

#[test]
fn dev_zero_reads_as_an_empty_file() {
    // nginx reads a config by its stat size: /dev/zero is empty, and an
    // empty configuration has no events section (nginx's wording, no line).
    let (ok, err) = proxy(&["-t", "-c", "/dev/zero"]);
    assert!(!ok);
    assert!(err.contains("proxy: [emerg] no \"events\" section in configuration\n"), "{err}");
}

#[test]
fn non_utf8_bytes_inside_tokens_are_accepted() {
    let (dir, f) = Scratch::with_conf("cli3", "latin1.conf", b"# caf\xe9\nevents {}\nhttp {\n  server {\n    listen 127.0.0.1:18199;\n    server_name caf\xe9;\n    location / { proxy_pass http://127.0.0.1:18198; }\n  }\n}\n");
    // No access_log: nginx's default one, logs/access.log in the prefix.
    std::fs::create_dir_all(dir.0.join("logs")).unwrap();
    let (ok, err) = proxy(&["-t", "-c", f.to_str().unwrap(), "-p", dir.0.to_str().unwrap()]);
    assert!(ok, "{err}");
}

#[test]
fn without_access_log_nginx_default_log_is_opened_and_written() {
    // ngx_http_log_merge_loc_conf: no access_log anywhere is logs/access.log
    // (relative to the prefix) in the combined format; -t opens it too.
    let (dir, f) = Scratch::with_conf("cli4", "nginx.conf", b"events {}\nhttp {\n  server {\n    listen 127.0.0.1:18197;\n    location / { return 200 \"ok\"; }\n  }\n}\n");
    let (ok, err) = proxy(&["-t", "-c", f.to_str().unwrap(), "-p", dir.0.to_str().unwrap()]);
    assert!(!ok && err.contains(&format!("open() \"{}\" failed", dir.0.join("logs/access.log").display())), "{err}");
    std::fs::create_dir_all(dir.0.join("logs")).unwrap();
    let (ok, err) = proxy(&["-t", "-c", f.to_str().unwrap(), "-p", dir.0.to_str().unwrap()]);
    assert!(ok, "{err}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_proxy")).args(["-c", f.to_str().unwrap(), "-p", dir.0.to_str().unwrap()]).stderr(std::process::Stdio::null()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let got = loop {
        use std::io::{Read, Write};
        if let Ok(mut s) = std::net::TcpStream::connect("127.0.0.1:18197") {
            s.write_all(b"GET /a?b=1 HTTP/1.1\r\nHost: lab\r\nUser-Agent: t/1\r\nReferer: http://r/\r\nConnection: close\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "the proxy did not come up");
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
    let log = loop {
        let log = std::fs::read_to_string(dir.0.join("logs/access.log")).unwrap_or_default();
        if !log.is_empty() || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    // $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
    let (head, tail) = log.split_once(" [").expect(&log);
    assert_eq!(head, "127.0.0.1 - -");
    let tail = tail.split_once("] ").expect(&log).1;
    assert_eq!(tail, "\"GET /a?b=1 HTTP/1.1\" 200 2 \"http://r/\" \"t/1\"\n");
}
