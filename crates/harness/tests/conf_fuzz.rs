//! Differential fuzzing of nginx.conf against real `nginx -t`: seeded
//! mutants of fixtures/nginx.conf and of a few seed configs (claimed
//! directives only) are checked by real nginx and by the proxy's `-t` path
//! (`nginx_model::conf::parse_bytes` + `proxy::check_config`). Every
//! accept/reject must agree; every proxy rejection names FILE:LINE where
//! nginx does, and the line must be nginx's. What nginx accepts but the
//! emulation refuses on purpose (a directive it does not claim, a construct
//! it does not run) is counted as "outside the emulated subset", with its
//! reason, never as agreement.
//!
//! `BADGATEWAY_CONF_FUZZ_SEED` and `BADGATEWAY_CONF_FUZZ_COUNT` override the
//! fixed seed and the count (default 2400). Without nginx the trial is
//! ignored with the reason; with BADGATEWAY_REQUIRE_NGINX=1 it fails.

use harness::require;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use nginx_model::conf::{self, ConfError};
use proxy::{ProxyOptions, StartError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DEFAULT_SEED: u64 = 0x6e67_696e_7820_7400; // "nginx t"
const DEFAULT_COUNT: usize = 2400;
const NGINX_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let trials = vec![Trial::ignorable_test("conf_mutants_agree_with_real_nginx_t", run)];
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

// ---- a small seeded PRNG (splitmix64) ---------------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

// ---- seeds ---------------------------------------------------------------------

const TEMP: &str = "    client_body_temp_path client_body_temp;\n    proxy_temp_path proxy_temp;\n    fastcgi_temp_path fastcgi_temp;\n    uwsgi_temp_path uwsgi_temp;\n    scgi_temp_path scgi_temp;\n";

fn seeds() -> Vec<(&'static str, String)> {
    let fixture = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nginx.conf")).expect("fixtures/nginx.conf");
    vec![
        ("fixture", fixture),
        (
            "multi",
            format!(
                "worker_processes 1;\npid nginx.pid;\nerror_log error.log warn;\n\nevents {{\n    worker_connections 512;\n    multi_accept off;\n}}\n\nhttp {{\n{TEMP}    default_type application/octet-stream;\n    sendfile on;\n    tcp_nodelay on;\n    keepalive_timeout 65s;\n    proxy_connect_timeout 5s;\n    proxy_read_timeout 30s;\n    proxy_next_upstream error timeout http_502;\n    proxy_next_upstream_tries 3;\n    proxy_next_upstream_timeout 10s;\n    log_format main '$remote_addr $status $upstream_status';\n    access_log access.log main;\n\n    upstream pool {{\n        server 127.0.0.1:18080 weight=2 max_fails=3 fail_timeout=30s;\n        server 127.0.0.1:18082 max_fails=0;\n        server 127.0.0.1:18083 backup;\n        server 127.0.0.1:18084 down;\n        keepalive 8;\n        keepalive_timeout 50ms;\n        keepalive_requests 100;\n        keepalive_time 1h;\n    }}\n\n    server {{\n        listen 127.0.0.1:18091;\n        server_name lab.example;\n        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n\n        location / {{\n            proxy_pass http://pool;\n            proxy_send_timeout 15s;\n            proxy_request_buffering off;\n        }}\n\n        location = /exact {{\n            proxy_pass http://pool;\n            proxy_buffer_size 8k;\n            client_max_body_size 10m;\n            client_body_buffer_size 16k;\n        }}\n    }}\n}}\n"
            ),
        ),
        (
            "implicit",
            format!(
                "pid nginx.pid;\ndaemon off;\nmaster_process off;\nerror_log error.log;\n\nevents {{\n}}\n\nhttp {{\n{TEMP}    server_tokens off;\n    proxy_buffering on;\n\n    server {{\n        listen 18092;\n        listen 127.0.0.2:18093 backlog=64;\n        server_name a b;\n        access_log off;\n        keepalive_requests 50;\n        keepalive_time 10m;\n\n        location /api/ {{\n            proxy_pass http://127.0.0.1:18080;\n            proxy_next_upstream off;\n            proxy_set_header Host $host;\n        }}\n\n        location ^~ /static/ {{\n            proxy_pass http://localhost:18081;\n        }}\n    }}\n\n    server {{\n        listen 127.0.0.1:18094 default_server;\n        location / {{\n            proxy_pass http://127.0.0.1:18080;\n        }}\n    }}\n}}\n"
            ),
        ),
        ("minimal", format!("events {{}}\nhttp {{\n{TEMP}    server {{\n        listen 127.0.0.1:18095;\n        location / {{ proxy_pass http://127.0.0.1:18080; }}\n    }}\n}}\n")),
    ]
}

// ---- mutation ------------------------------------------------------------------

/// Pieces of a seed: words (quoted or not), `;` `{` `}`, spaces, comments.
fn pieces(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        match b[i] {
            b';' | b'{' | b'}' => i += 1,
            c if c.is_ascii_whitespace() => {
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                i = (i + 1).min(b.len());
            }
            _ => {
                while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b';' | b'{') {
                    i += 1;
                }
            }
        }
        out.push(src[start..i].to_string());
    }
    out
}

fn is_word(p: &str) -> bool {
    !p.is_empty() && !matches!(p, ";" | "{" | "}") && !p.starts_with('#') && !p.bytes().all(|c| c.is_ascii_whitespace())
}

/// The innermost block of each line of a well-formed seed.
fn line_contexts(src: &str) -> Vec<String> {
    let mut stack: Vec<String> = vec!["main".into()];
    let mut out = Vec::new();
    for line in src.lines() {
        out.push(stack.last().cloned().unwrap_or_default());
        let t = line.trim();
        if t.ends_with('{') || t.contains('{') {
            let name = t.split_whitespace().next().unwrap_or("").to_string();
            stack.push(name);
        }
        for _ in t.matches('}') {
            stack.pop();
        }
        if t.contains('{') && t.contains('}') {
            // `location / { ... }` on one line: opened and closed.
        }
        if let Some(l) = out.last_mut() {
            if l.is_empty() {
                *l = "main".into();
            }
        }
    }
    out
}

const BAD_NUMBERS: &[&str] = &[
    "5x", "1s1m", "5ms3s", "+5", "-1", "0x10", "18446744073709551616", "9223372036854775807", "9223372036854775808", "1y", "1M", "\"1m 30s\"", "1.5", "0",
    "5000000000", "1h1m1s1ms", "ms", "\"\"", "1k", "1g", "16k", "14k", "15k", "8796093022207k", "18014398509481984k", "300ms", "1s1s", "\" 30\"", "1w", "007",
];

/// (directive, context, valid values, invalid values)
const CLAIMED: &[(&str, &str, &[&str], &[&str])] = &[
    ("proxy_read_timeout", "location", &["5s", "1m30s", "300ms", "0"], &["5x", "1y", "5ms3s", "-1", "1 2"]),
    ("proxy_connect_timeout", "server", &["2s", "\"1m 30s\""], &["1s1s", "+5"]),
    ("proxy_send_timeout", "http", &["10s"], &["1M", ""]),
    ("proxy_next_upstream_timeout", "location", &["0", "5s"], &["5q"]),
    ("proxy_next_upstream_tries", "location", &["3", "0", "5000000000"], &["+2", "-1", "3x", "18446744073709551616"]),
    ("proxy_next_upstream", "location", &["error", "error timeout http_503", "off", "OFF", "non_idempotent", "updating"], &["sometimes", "error bogus"]),
    ("proxy_http_version", "location", &["1.0", "1.1"], &["2.0", "1.1 1.0"]),
    ("proxy_set_header", "location", &["Connection \"\"", "X-A b"], &["Connection", "a b c"]),
    ("proxy_request_buffering", "location", &["on", "off", "OFF", "On"], &["maybe", "1"]),
    ("proxy_buffer_size", "location", &["4k", "8k", "14k", "1024"], &["16k", "1m", "4x", "18014398509481984k", "-4k"]),
    ("proxy_buffering", "http", &["on", "off"], &["yes"]),
    ("client_max_body_size", "server", &["1m", "0", "2g", "100"], &["1t", "x"]),
    ("client_body_buffer_size", "location", &["16k", "1m"], &["1g", "+1k"]),
    ("server_tokens", "http", &["on", "off", "build", "OFF"], &["none"]),
    ("keepalive", "upstream", &["1", "32", "5000000000"], &["0", "+5", "-1", "x"]),
    ("keepalive_timeout", "upstream", &["50ms", "60s", "0"], &["1y", "60s 30s"]),
    ("keepalive_requests", "upstream", &["100", "0", "5000000000"], &["+1", "1k"]),
    ("keepalive_time", "upstream", &["1h", "10m"], &["1y", "5x"]),
    ("keepalive_timeout", "server", &["65s", "65s 60s", "0"], &["1y", "65s 60ms"]),
    ("keepalive_requests", "location", &["1000"], &["-5"]),
    ("keepalive_time", "http", &["1h"], &["1M"]),
    ("server", "upstream", &["127.0.0.1:18099", "127.0.0.1", "localhost:18099", "127.0.0.1:18099 weight=5 max_fails=2 fail_timeout=5s", "127.0.0.1:18099 fail_timeout=1y", "127.0.0.1:18099 backup", "127.0.0.1:18099 down"],
        &["127.0.0.1:0", "127.0.0.1:18099 weight=+2", "127.0.0.1:18099 weight=0", "127.0.0.1:18099 fail_timeout=300ms", "127.0.0.1:18099 max_fails=-1", "127.0.0.1:99999", "127.0.0.1:18099 slow_start=5s", ":80", "127.0.0.1:18099/x", "no.such.host.invalid:80"]),
    ("listen", "server", &["18097", "127.0.0.1", "*:18097", "127.0.0.1:18098 default_server", "127.0.0.1:18096 backlog=16 rcvbuf=8k", "127.0.0.3:18097 reuseport", "localhost:18099"],
        &["0", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:18097 bogus", "127.0.0.1:18097 backlog=abc", "127.0.0.1:18097 backlog=0", "/x", "no.such.host.invalid:80"]),
    ("server_name", "server", &["a", "a b c", "\"\"", "*.example.com"], &[""]),
    ("error_log", "main", &["e.log", "e.log info", "e.log debug", "e.log debug_http", "stderr warn"], &["e.log loud", "e.log info warn", "e.log debug_http info", ""]),
    ("error_log", "server", &["e2.log notice"], &["e2.log Info"]),
    ("access_log", "server", &["off", "a.log", "a.log combined", "a.log combined buffer=32k flush=5s", "a.log COMBINED"],
        &["a.log nope", "off combined", "a.log combined flush=5s", "a.log combined buffer=0", "a.log combined bogus=1", "a.log combined buffer=1x"]),
    ("log_format", "http", &["fresh '$status'", "fresh escape=json '$status'", "fresh '$status' ' $request'"], &["combined '$status'", "fresh escape=xml '$status'", "fresh"]),
    ("worker_processes", "main", &["auto", "2"], &["x", "-1"]),
    ("worker_connections", "events", &["128"], &["x", "+1"]),
    ("multi_accept", "events", &["on"], &["sometimes"]),
    ("daemon", "main", &["off"], &["no"]),
    ("pid", "main", &["other.pid"], &["a b"]),
    ("default_type", "location", &["text/plain"], &["a b"]),
    ("sendfile", "server", &["off"], &["x"]),
    ("tcp_nodelay", "location", &["off"], &["x"]),
    ("client_body_temp_path", "server", &["cbt 1 2"], &["cbt 3", "cbt 1 2 2 2"]),
    ("location", "server", &["/new { proxy_pass http://127.0.0.1:18080; }", "= /new { proxy_pass http://127.0.0.1:18080; }", "^~ /new { proxy_pass http://127.0.0.1:18080; }"],
        &["/ { proxy_pass http://127.0.0.1:18080; }", "/new { }", "~ ^/r { proxy_pass http://127.0.0.1:18080; }", "@named { proxy_pass http://127.0.0.1:18080; }", "/a /b { }", "!! /x { }"]),
    ("proxy_pass", "location", &[], &["http://127.0.0.1:18080", "http://127.0.0.1:0", "ftp://x", "http://:80", "HTTP://127.0.0.1:18080", "http://127.0.0.1:18080/x"]),
    ("upstream", "http", &["extra { server 127.0.0.1:18080; }"], &["extra { }", "pool { server 127.0.0.1:1; }", "go_upstream { server 127.0.0.1:1; }"]),
    ("http", "main", &[], &["{ }"]),
    ("events", "main", &[], &["{ }"]),
];

const UNKNOWN: &[&str] = &["gzip on;", "proxy_redirect off;", "client_header_timeout 5s;", "bogus_directive 1;", "proxy_cache_valid 200 1m;", "if ($x) { }", "types { text/html html; }", "user nobody;", "resolver 127.0.0.1;"];

const CONTEXTS: &[&str] = &["main", "events", "http", "upstream", "server", "location"];

/// One mutant: its family and its bytes.
fn mutate(rng: &mut Rng, seed: &str) -> (&'static str, Vec<u8>) {
    let ps = pieces(seed);
    let words: Vec<usize> = (0..ps.len()).filter(|&i| is_word(&ps[i])).collect();
    let join = |ps: &[String]| ps.concat().into_bytes();
    let lines: Vec<&str> = seed.lines().collect();
    let ctxs = line_contexts(seed);
    let insert_line = |rng: &mut Rng, ctx: &str, text: &str| -> Vec<u8> {
        let candidates: Vec<usize> = (0..lines.len()).filter(|&i| ctxs[i] == ctx && !lines[i].trim().is_empty()).collect();
        let at = if candidates.is_empty() { rng.below(lines.len() + 1) } else { *rng.pick(&candidates) + 1 };
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        out.insert(at.min(out.len()), format!("    {text}"));
        (out.join("\n") + "\n").into_bytes()
    };
    match rng.below(15) {
        0 => {
            let mut ps = ps.clone();
            ps.remove(*rng.pick(&words));
            ("drop", join(&ps))
        }
        1 => {
            let mut ps = ps.clone();
            let i = *rng.pick(&words);
            let w = ps[i].clone();
            ps.insert(i, format!("{w} "));
            ("dup", join(&ps))
        }
        2 => {
            let mut ps = ps.clone();
            let k = rng.below(words.len().saturating_sub(1));
            let (a, b) = (words[k], words[(k + 1).min(words.len() - 1)]);
            ps.swap(a, b);
            ("swap", join(&ps))
        }
        3 => {
            let numeric: Vec<usize> = words.iter().copied().filter(|&i| ps[i].bytes().any(|c| c.is_ascii_digit())).collect();
            let mut ps = ps.clone();
            let i = *rng.pick(&numeric);
            let bad = rng.pick(BAD_NUMBERS).to_string();
            ps[i] = match ps[i].find('=') {
                Some(eq) if rng.chance(50) => format!("{}{bad}", &ps[i][..=eq]),
                _ => match ps[i].rfind(':') {
                    Some(c) if rng.chance(50) && !ps[i].contains("//") => format!("{}{bad}", &ps[i][..=c]),
                    _ => bad,
                },
            };
            ("badnum", join(&ps))
        }
        4 => {
            let marks: Vec<usize> = (0..ps.len()).filter(|&i| matches!(ps[i].as_str(), ";" | "{" | "}")).collect();
            let mut ps = ps.clone();
            let i = *rng.pick(&marks);
            if rng.chance(50) {
                ps.remove(i);
            } else {
                ps.insert(*rng.pick(&marks), rng.pick(&[";", "{", "}", " ;", "{}"]).to_string());
            }
            ("semi_brace", join(&ps))
        }
        5 => {
            let ctx = *rng.pick(CONTEXTS);
            let text = *rng.pick(UNKNOWN);
            ("unknown", insert_line(rng, ctx, text))
        }
        6 | 7 => {
            let (name, own, good, bad) = *rng.pick(CLAIMED);
            let all: Vec<&str> = good.iter().chain(bad.iter()).copied().collect();
            let v = *rng.pick(&all);
            let text = if v.ends_with('}') { format!("{name} {v}") } else { format!("{name} {v};") };
            if rng.chance(75) {
                ("claimed_own_ctx", insert_line(rng, own, &text))
            } else {
                let ctx = *rng.pick(CONTEXTS);
                ("claimed_any_ctx", insert_line(rng, ctx, &text))
            }
        }
        8 => {
            let mut ps = ps.clone();
            let i = *rng.pick(&words);
            let w = ps[i].clone();
            ps[i] = match rng.below(7) {
                0 => format!("\"{w}\""),
                1 => format!("'{w}'"),
                2 => format!("\"{w}"),
                3 => format!("{w}\\;"),
                4 => format!("\"{w}\\\"\\t\\d\""),
                5 => format!("\\{w}"),
                _ => format!("{w}\"x\""),
            };
            ("quote_escape", join(&ps))
        }
        9 => {
            let mut ps = ps.clone();
            let i = *rng.pick(&words);
            let n = *rng.pick(&[4000, 4085, 4090, 4095, 4096, 4097, 5000, 70000]);
            ps[i] = format!("{}{}", ps[i], "a".repeat(n));
            ("huge_token", join(&ps))
        }
        10 => {
            let mut b = seed.as_bytes().to_vec();
            let at = rng.below(b.len());
            let byte = *rng.pick(&[0xe9u8, 0xff, 0x80, 0x00, 0xc3]);
            b.insert(at, byte);
            if rng.chance(30) {
                // in a comment
                let mut c = b"# caf\xe9 \x00\n".to_vec();
                c.extend_from_slice(seed.as_bytes());
                b = c;
            }
            ("non_utf8_nul", b)
        }
        11 => {
            let v = match rng.below(9) {
                0 => Vec::new(),
                1 => b"# only a comment\n".to_vec(),
                2 => [b"\xef\xbb\xbf".as_slice(), seed.as_bytes()].concat(),
                3 => seed.replace('\n', "\r\n").into_bytes(),
                4 => seed.replace('\n', "\r").into_bytes(),
                5 => {
                    let depth = *rng.pick(&[10, 50, 200]);
                    let mut s = format!("events {{}}\nhttp {{\n{TEMP} server {{\n listen 127.0.0.1:18096;\n");
                    s += &"location /a {\n".repeat(depth);
                    s += "proxy_pass http://127.0.0.1:18080;\n";
                    s += &"}\n".repeat(depth);
                    s += "}\n}\n";
                    s.into_bytes()
                }
                6 => b"events {}\n".to_vec(),
                7 => format!("events {{}}\nhttp {{\n{TEMP}}}\n").into_bytes(),
                _ => format!("events {{}}\nhttp {{\n{TEMP} server {{\n  location / {{ proxy_pass http://127.0.0.1:18080; }}\n }}\n}}\n").into_bytes(),
            };
            ("special_file", v)
        }
        12 => {
            // duplicate a whole directive line
            let directive_lines: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].trim_end().ends_with(';')).collect();
            let i = *rng.pick(&directive_lines);
            let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            out.insert(i + 1, lines[i].to_string());
            ("dup_directive", (out.join("\n") + "\n").into_bytes())
        }
        13 => {
            // a second http / events block, or a block closed early
            let v = match rng.below(3) {
                0 => format!("{seed}\nhttp {{\n}}\n"),
                1 => format!("{seed}\nevents {{\n}}\n"),
                _ => seed.replacen("http {", "http {\n}\nhttp {", 1),
            };
            ("second_block", v.into_bytes())
        }
        _ => {
            // multi-line directive: split a directive over lines
            let mut ps = ps.clone();
            let spaces: Vec<usize> = (1..ps.len()).filter(|&i| ps[i] == " " && is_word(&ps[i - 1])).collect();
            if let Some(&i) = spaces.get(rng.below(spaces.len())) {
                ps[i] = rng.pick(&["\n", "\n\n", "\n  # c\n "]).to_string();
            }
            let j = *rng.pick(&words);
            ps.insert(j, rng.pick(&["", "bogus\n", "proxy_read_timeout\n5x;\n"]).to_string());
            ("multiline", join(&ps))
        }
    }
}

// ---- running both ----------------------------------------------------------------

#[derive(Debug, Clone)]
struct Rejection {
    /// The message without "nginx: [emerg] " and the place.
    msg: String,
    line: Option<usize>,
}

fn split_place(s: &str, file: &str) -> Rejection {
    let suffix = format!(" in {file}:");
    match s.rfind(&suffix) {
        Some(i) => Rejection { msg: s[..i].to_string(), line: s[i + suffix.len()..].trim().parse().ok() },
        None => Rejection { msg: s.to_string(), line: None },
    }
}

/// `nginx -t` on `file`: `Ok(())` or its first `[emerg]` line; `Err` if it
/// could not be run or timed out.
fn nginx_t(bin: &Path, file: &Path, prefix: &Path) -> Result<Option<Rejection>, String> {
    let child = Command::new(bin)
        .args(["-t", "-q", "-p"])
        .arg(format!("{}/", prefix.display()))
        .args(["-e", "error.log", "-c"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nginx: {e}"))?;
    // Exit and stderr awaited together on a thread (a full pipe cannot
    // stall nginx), the answer bounded by the channel's timeout.
    let pid = child.id() as libc::pid_t;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(NGINX_TIMEOUT) {
        Ok(r) => r.map_err(|e| e.to_string())?,
        Err(_) => {
            // Our child, not yet reaped (the thread is still in wait()).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            return Err(format!("nginx -t did not finish within {NGINX_TIMEOUT:?}"));
        }
    };
    let (status, err) = (out.status, String::from_utf8_lossy(&out.stderr).into_owned());
    if status.success() {
        return Ok(None);
    }
    let first = err.lines().find(|l| l.contains("[emerg]")).or_else(|| err.lines().next()).unwrap_or("").to_string();
    let msg = first.split_once("[emerg] ").map(|x| x.1).unwrap_or(&first).to_string();
    Ok(Some(split_place(&msg, &file.display().to_string())))
}

/// The directive of "unknown directive \"x\"" if the emulation does not claim it.
fn unclaimed(msg: &str) -> Option<String> {
    let name = msg.strip_prefix("unknown directive \"")?.strip_suffix('"')?;
    let shown: String = name.chars().take(40).collect();
    let more = if shown.len() < name.len() { "..." } else { "" };
    (!conf::claimed().any(|(n, _)| n == name)).then(|| format!("directive \"{shown}{more}\" not claimed"))
}

enum ProxyVerdict {
    Accept,
    Reject(Rejection),
    /// nginx accepts; the emulation refuses on purpose, for this reason.
    Outside(String),
}

fn proxy_t(bytes: &[u8], file: &str, prefix: &Path, nginx_accepts: bool) -> ProxyVerdict {
    let claimed: Vec<&str> = conf::claimed().map(|(n, _)| n).collect();
    let cfg = match proxy::files::parse(bytes, file, prefix) {
        Ok(c) => c,
        Err(ConfError { msg, line, .. }) => {
            if nginx_accepts {
                if let Some(name) = msg.strip_prefix("unknown directive \"").and_then(|m| m.strip_suffix('"')) {
                    if !claimed.contains(&name) {
                        return ProxyVerdict::Outside(format!("directive \"{name}\" not claimed"));
                    }
                }
            }
            return ProxyVerdict::Reject(Rejection { msg, line: (line > 0).then_some(line) });
        }
    };
    let opts = ProxyOptions { prefix: prefix.to_path_buf(), ..ProxyOptions::default() };
    match proxy::check_config(&cfg, &opts) {
        Ok(()) => ProxyVerdict::Accept,
        Err(e) => {
            use nginx_model::resolve::ResolveError as R;
            let outside = match &e {
                StartError::Config(R::Unsupported { what, .. }) => Some(what.clone()),
                StartError::Config(R::NoProxyPass { .. }) => Some("a location without proxy_pass".into()),
                StartError::Config(R::NotHttp { .. }) => Some("a non-http proxy_pass".into()),
                StartError::Config(R::LogFormat { .. }) => Some("a log_format variable not emulated".into()),
                _ => None,
            };
            match outside {
                Some(why) if nginx_accepts => ProxyVerdict::Outside(why),
                _ => ProxyVerdict::Reject(split_place(&e.to_string(), file)),
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    /// family → outcome → count
    table: BTreeMap<String, BTreeMap<&'static str, usize>>,
    outside: BTreeMap<String, usize>,
    disagreements: Vec<String>,
    no_line: Vec<String>,
    both_reject: usize,
    nginx_no_line: usize,
    same_line: usize,
    same_msg: usize,
    line_diffs: Vec<String>,
}

fn run() -> Result<Completion, Failed> {
    let bin = match require::nginx() {
        Ok(b) => b,
        Err(m) => return require::trial_outcome(m),
    };
    let seed: u64 = std::env::var("BADGATEWAY_CONF_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_SEED);
    let count: usize = std::env::var("BADGATEWAY_CONF_FUZZ_COUNT").ok().and_then(|s| s.parse().ok()).unwrap_or(DEFAULT_COUNT);
    println!("conf fuzz: seed {seed} (BADGATEWAY_CONF_FUZZ_SEED), {count} mutants (BADGATEWAY_CONF_FUZZ_COUNT)");
    let started = Instant::now();
    let seeds = seeds();
    let work: PathBuf = std::env::temp_dir().join(format!("conf-fuzz-{}-{seed}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    // Every seed itself must pass both.
    let mut rng = Rng(seed);
    let mut mutants: Vec<(String, &'static str, Vec<u8>)> = Vec::new();
    for (name, s) in &seeds {
        mutants.push((format!("seed:{name}"), "seed", s.clone().into_bytes()));
    }
    for i in 0..count {
        let (sname, s) = &seeds[rng.below(seeds.len())];
        let (family, bytes) = mutate(&mut rng, s);
        mutants.push((format!("{i}:{sname}"), family, bytes));
    }
    let tally = Mutex::new(Tally::default());
    let next = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::<String>::new());
    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(2, 4);
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((id, family, bytes)) = mutants.get(i) else { return };
                let dir = work.join(format!("m{i}"));
                let (np, pp) = (dir.join("nginx"), dir.join("proxy"));
                if std::fs::create_dir_all(&np).and_then(|_| std::fs::create_dir_all(&pp)).is_err() {
                    errors.lock().unwrap().push(format!("{id}: cannot create {}", dir.display()));
                    return;
                }
                let file = dir.join("nginx.conf");
                if let Err(e) = std::fs::write(&file, bytes) {
                    errors.lock().unwrap().push(format!("{id}: {e}"));
                    return;
                }
                let fname = file.display().to_string();
                let ng = match nginx_t(&bin, &file, &np) {
                    Ok(v) => v,
                    Err(e) => {
                        errors.lock().unwrap().push(format!("{id}: {e}"));
                        continue;
                    }
                };
                let pv = proxy_t(bytes, &fname, &pp, ng.is_none());
                let mut t = tally.lock().unwrap();
                let keep = |_: &mut Tally, what: &str| {
                    let kept = work.join(format!("kept-{i}.conf"));
                    let _ = std::fs::write(&kept, bytes);
                    format!("{id} [{family}] {what} ({})", kept.display())
                };
                let outcome = match (&ng, &pv) {
                    (None, ProxyVerdict::Accept) => "both_accept",
                    (Some(n), ProxyVerdict::Reject(p)) if unclaimed(&p.msg).is_some() && n.msg != p.msg => {
                        // Both reject, but the proxy stopped at a directive it
                        // does not claim; nginx failed elsewhere.
                        *t.outside.entry(format!("{} (nginx rejects for another reason)", unclaimed(&p.msg).unwrap_or_default())).or_default() += 1;
                        "both_reject_unclaimed"
                    }
                    (Some(n), ProxyVerdict::Reject(p)) => {
                        t.both_reject += 1;
                        if n.line == p.line {
                            t.same_line += 1;
                        } else if n.line.is_none() {
                            // nginx names no place (a later phase: unknown
                            // variables, binding); the proxy does.
                            t.nginx_no_line += 1;
                        } else {
                            let d = keep(&mut t, &format!("line: nginx {:?} \"{}\" / proxy {:?} \"{}\"", n.line, n.msg, p.line, p.msg));
                            t.line_diffs.push(d);
                        }
                        if n.msg == p.msg {
                            t.same_msg += 1;
                        }
                        if p.line.is_none() && n.line.is_some() {
                            let d = keep(&mut t, &format!("proxy names no line: \"{}\" (nginx: \"{}\" line {:?})", p.msg, n.msg, n.line));
                            t.no_line.push(d);
                        }
                        "both_reject"
                    }
                    (None, ProxyVerdict::Outside(why)) => {
                        *t.outside.entry(why.clone()).or_default() += 1;
                        "outside_subset"
                    }
                    (Some(n), ProxyVerdict::Outside(why)) => unreachable!("outside only when nginx accepts: {n:?} {why}"),
                    (None, ProxyVerdict::Reject(p)) => {
                        let d = keep(&mut t, &format!("proxy rejects, nginx accepts: \"{}\" line {:?}", p.msg, p.line));
                        t.disagreements.push(d);
                        "DISAGREE_proxy_rejects"
                    }
                    (Some(n), ProxyVerdict::Accept) => {
                        let d = keep(&mut t, &format!("proxy accepts, nginx rejects: \"{}\" line {:?}", n.msg, n.line));
                        t.disagreements.push(d);
                        "DISAGREE_proxy_accepts"
                    }
                };
                *t.table.entry(family.to_string()).or_default().entry(outcome).or_default() += 1;
                drop(t);
                let _ = std::fs::remove_dir_all(&dir);
            });
        }
    });
    let t = tally.into_inner().unwrap();
    let errors = errors.into_inner().unwrap();
    let elapsed = started.elapsed();
    // The summary table: family × outcome.
    let outcomes = ["both_accept", "both_reject", "both_reject_unclaimed", "outside_subset", "DISAGREE_proxy_accepts", "DISAGREE_proxy_rejects"];
    println!("\n{:<18}{}", "family", outcomes.iter().map(|o| format!("{o:>24}")).collect::<String>());
    let mut totals = [0usize; 6];
    for (family, row) in &t.table {
        let cells: Vec<usize> = outcomes.iter().map(|o| row.get(o).copied().unwrap_or(0)).collect();
        for (k, c) in cells.iter().enumerate() {
            totals[k] += c;
        }
        println!("{family:<18}{}", cells.iter().map(|c| format!("{c:>24}")).collect::<String>());
    }
    println!("{:<18}{}", "total", totals.iter().map(|c| format!("{c:>24}")).collect::<String>());
    println!("\noutside the emulated subset (the emulation refuses on purpose; nginx accepts, or rejects for another reason):");
    for (why, n) in &t.outside {
        println!("  {n:>5}  {why}");
    }
    println!(
        "\nboth reject: {}; same line {} ({:.1} %); nginx names no line {}; same message {} ({:.1} %)",
        t.both_reject,
        t.same_line,
        100.0 * t.same_line as f64 / t.both_reject.max(1) as f64,
        t.nginx_no_line,
        t.same_msg,
        100.0 * t.same_msg as f64 / t.both_reject.max(1) as f64
    );
    println!("wall time {:.1} s with {workers} workers; work dir {}", elapsed.as_secs_f64(), work.display());
    for d in t.disagreements.iter().take(40) {
        println!("DISAGREE {d}");
    }
    for d in t.no_line.iter().take(20) {
        println!("NO LINE {d}");
    }
    for d in t.line_diffs.iter().take(40) {
        println!("LINE {d}");
    }
    for e in errors.iter().take(20) {
        println!("ERROR {e}");
    }
    let mut failures = Vec::new();
    if !errors.is_empty() {
        failures.push(format!("{} mutants could not be checked", errors.len()));
    }
    if !t.disagreements.is_empty() {
        failures.push(format!("{} accept/reject disagreements", t.disagreements.len()));
    }
    if !t.no_line.is_empty() {
        failures.push(format!("{} proxy rejections without FILE:LINE where nginx names one", t.no_line.len()));
    }
    if !t.line_diffs.is_empty() {
        failures.push(format!("{} rejections on a different line than nginx's", t.line_diffs.len()));
    }
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&work);
        Ok(Completion::Completed)
    } else {
        Err(failures.join("; ").into())
    }
}
