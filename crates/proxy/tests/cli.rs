//! The `proxy` binary: `-t` like `nginx -t`, errors with file:line, no panics.

use std::process::Command;

fn proxy(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_proxy")).args(args).output().expect("run proxy");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn test_mode_accepts_the_fixture() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/nginx.conf");
    let (ok, err) = proxy(&["-t", "-c", fixture]);
    assert!(ok, "{err}");
    assert!(err.contains("test is successful"), "{err}");
}

#[test]
fn bad_directive_is_reported_with_file_and_line() {
    let dir = std::env::temp_dir().join(format!("proxy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.conf");
    std::fs::write(&f, "events {}\nhttp {\n  server {\n    listen 127.0.0.1:8080;\n    location / { proxy_pas http://x; }\n  }\n}\n").unwrap();
    let (ok, err) = proxy(&["-t", "-c", f.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains(&format!("unknown directive \"proxy_pas\" in {}:5", f.display())), "{err}");
    let (ok, err) = proxy(&["-t", "-c", dir.join("missing.conf").to_str().unwrap()]);
    assert!(!ok && err.contains("failed"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn semantic_errors_fail_the_test_mode() {
    let dir = std::env::temp_dir().join(format!("proxy-cli2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("nohost.conf");
    std::fs::write(&f, "events {}\nhttp {\n  server {\n    listen 127.0.0.1:8080;\n    location / { proxy_pass http://up/; }\n  }\n}\n").unwrap();
    let (ok, err) = proxy(&["-t", "-c", f.to_str().unwrap()]);
    assert!(!ok && err.contains(&format!("a URI part in proxy_pass is not supported by this emulation in {}:5", f.display())), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
