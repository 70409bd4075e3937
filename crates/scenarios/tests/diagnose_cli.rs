//! `scenarios diagnose` on the fixture logs (`fixtures/logs/`): nginx 1.22
//! lines of an API behind nginx with a custom log_format (gzip access log,
//! malformed lines, a deploy's refused connects, the idle race, a
//! WriteTimeout, a 504, a 499, a too-big header), and the same failures in
//! nginx's `combined` format. Bad input is exit status 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scenarios(args: &[&str]) -> Output {
    // A UTF-8 locale, whatever the environment: the output's arrows are asserted.
    Command::new(env!("CARGO_BIN_EXE_scenarios")).args(args).env("LC_ALL", "C.UTF-8").output().expect("run scenarios")
}

fn logs(rel: &str) -> String {
    let p: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/logs").join(rel);
    p.to_str().unwrap().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn custom(extra: &[&str]) -> Output {
    let (e, a, c) = (logs("custom/error.log"), logs("custom/access.log.gz"), logs("custom/nginx.conf"));
    let mut args = vec!["diagnose", "--error-log", &e, "--access-log", &a, "--nginx-conf", &c];
    args.extend_from_slice(extra);
    scenarios(&args)
}

/// The text with its line wrapping undone.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The mechanism block of the text report (from its heading to the next
/// blank line), its wrapping undone.
fn block(out: &str, id: &str) -> String {
    let start = out.find(&format!("\n{id} ")).unwrap_or_else(|| panic!("no {id} in:\n{out}"));
    let rest = &out[start + 1..];
    flat(&rest[..rest.find("\n\n").unwrap_or(rest.len())])
}

#[test]
fn the_custom_format_names_each_mechanism_with_its_evidence_and_fix() {
    let o = custom(&[]);
    let wide = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{wide}{}", String::from_utf8_lossy(&o.stderr));
    assert!(wide.lines().all(|l| l.chars().count() <= 80), "wider than 80 columns:\n{wide}");
    // The fixture: 12 refused connects in a deploy, 5 retried GETs and 3 POST
    // 502s at 0.000 s, two GETs whose handler outlived WriteTimeout on a
    // cached connection (31 s twice), a 60 s read timeout.
    let down = block(&wide, "upstream-down");
    let out = flat(&wide);
    assert!(down.contains("12 × 502") && down.contains("connect-refused ×12"), "{down}");
    let idle = block(&wide, "idle-race");
    assert!(idle.contains("3 × 502; 5 retried") && idle.contains("GET \"502, 200\" ×5") && idle.contains("POST \"502\" ×3"), "{idle}");
    assert!(idle.contains("fix: Make nginx give up idle connections first"), "the catalogue's fix text: {idle}");
    assert!(idle.contains("handler-panic") && idle.contains("the endpoint answers at other times"), "the look-alikes and the rule: {idle}");
    let wt = block(&wide, "write-timeout");
    assert!(wt.contains("2 × 502") && wt.contains("31.001–31.002 s") && wt.contains("write-timeout-keepalive"), "{wt}");
    assert!(block(&wide, "proxy-read-timeout").contains("1 × 504"), "{out}");
    // The too-big header is the catalogue's too-big-header (one attempt, not retried).
    let big = block(&wide, "too-big-header");
    assert!(big.contains("1 × 502") && big.contains("GET \"502\" ×1") && big.contains("fix: Give nginx a header buffer"), "{big}");
    // Never dropped: the 499, shown with its line.
    assert!(out.contains("499: the client closed first") && !out.contains("no catalogue scenario shows it"), "{out}");
    assert!(out.contains("see: access.log.gz:"), "{out}");
    // A deploy's burst, and the malformed lines with their numbers.
    assert!(out.contains("2026/11/23 10:42:10 – 10:42:13 connect-refused ×12 10.0.3.21:8080 (upstream-down)"), "{out}");
    assert!(out.contains("access.log.gz 628 lines (gzip), 2 malformed (line 101, 401)"), "{out}");
    assert!(out.contains("error.log 30 lines, 1 malformed (line 6)"), "{out}");
    assert!(out.contains("buffered to a temporary file"), "{out}");
    assert!(!out.contains("To decide better"), "this format has what it takes:\n{out}");
}

#[test]
fn json_on_stdout_has_the_same_findings() {
    let o = custom(&["--json", "-"]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("only JSON on stdout");
    let count = |id: &str, outcome: &str| {
        v["findings"].as_array().unwrap().iter().find(|f| f["mechanism"] == id).map_or(0, |f| f["tally"]["outcomes"][outcome].as_u64().unwrap_or(0))
    };
    assert_eq!((count("upstream-down", "502"), count("idle-race", "502"), count("idle-race", "retried"), count("write-timeout", "502"), count("proxy-read-timeout", "504")), (12, 3, 5, 2, 1));
    assert_eq!(v["access_log"]["malformed_examples"][0][0], 101);
    assert_eq!(v["bursts"][0]["class"], "connect-refused");
    assert_eq!(count("too-big-header", "502"), 1);
    assert_eq!(v["unexplained"].as_array().unwrap().len(), 1);
}

#[test]
fn the_combined_format_says_what_is_missing() {
    let o = scenarios(&["diagnose", "--error-log", &logs("combined/error.log"), "--access-log", &logs("combined/access.log")]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(block(&out, "idle-race").contains("1 × 502; 1 retried"), "{out}");
    let out = flat(&out);
    assert!(out.contains("add \"$upstream_status\"") && out.contains("add \"$upstream_response_time\""), "{out}");
}

#[test]
fn one_log_alone_is_read_and_the_other_is_asked_for() {
    let o = scenarios(&["diagnose", "--error-log", &logs("custom/error.log")]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(block(&out, "upstream-down").contains("12 × log-only"), "{out}");
    assert!(flat(&out).contains("--access-log: the client's status"), "{out}");
    let o = scenarios(&["diagnose", "--access-log", &logs("custom/access.log.gz"), "--nginx-conf", &logs("custom/nginx.conf")]);
    let out = stdout(&o);
    assert!(block(&out, "idle-race").contains("5 retried"), "{out}");
    assert!(flat(&out).contains("--error-log: nginx's error line names the failure"), "{out}");
}

#[test]
fn bad_input_is_exit_2() {
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    let o = scenarios(&["diagnose"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("needs --error-log FILE, --access-log FILE, or both"), "{}", err(&o));
    let o = scenarios(&["diagnose", "--error-log", "/nonexistent/error.log"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("/nonexistent/error.log"), "{}", err(&o));
    let o = scenarios(&["diagnose", "--access-log", &logs("custom/access.log.gz"), "--log-format", "$status$body_bytes_sent"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no text between them"), "{}", err(&o));
    let o = scenarios(&["diagnose", "--access-log", &logs("custom/access.log.gz"), "--log-format", "$remote_addr $request_time"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("no $status"), "{}", err(&o));
}
