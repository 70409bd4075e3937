//! `scenarios check` on a real nginx.conf: the idle race reported with its
//! fix when Go's IdleTimeout is shorter than keepalive_timeout, safe when it
//! is not; `--run` agrees with the prediction; bad input is exit 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scenarios(args: &[&str]) -> Output {
    // A UTF-8 locale, whatever the environment: the output's arrows are asserted.
    Command::new(env!("CARGO_BIN_EXE_scenarios")).args(args).env("LC_ALL", "C.UTF-8").output().expect("run scenarios")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nginx.conf")
}

fn scratch(name: &str, text: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("badgateway-check-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    let p = d.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_fixture_with_idle_timeout_5s_has_the_idle_race_and_its_fix() {
    let o = scenarios(&["check", "--nginx-conf", fixture().to_str().unwrap(), "--go", "IdleTimeout=5s,ReadTimeout=10s,ReadHeaderTimeout=0"]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("FAILS   idle-race"), "{out}");
    assert!(out.contains("keepalive_timeout 4s; in upstream go_upstream"), "{out}");
    assert!(out.contains("POST → 502"), "{out}");
    for l in out.lines() {
        assert!(l.chars().count() <= 80, "wider than 80 columns: {l}");
    }
}

#[test]
fn keepalive_timeout_below_idle_timeout_is_safe_and_exits_0() {
    let conf = std::fs::read_to_string(fixture()).unwrap().replace("keepalive 16;", "keepalive 16;\n        keepalive_timeout 4s;");
    let f = scratch("safe.conf", &conf);
    let o = scenarios(&["check", "--nginx-conf", f.to_str().unwrap(), "--go", "IdleTimeout=5s", "--json", "-"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let findings = v["locations"][0]["findings"].as_array().unwrap();
    let race = findings.iter().find(|f| f["mechanism"] == "idle-race").unwrap();
    assert_eq!(race["verdict"], "safe", "{race}");
    assert!(race["detail"].as_str().unwrap().contains("keepalive_timeout 4s"), "{race}");
}

#[test]
fn run_replays_the_prediction_on_the_emulators() {
    let o = scenarios(&["check", "--nginx-conf", fixture().to_str().unwrap(), "--go", "IdleTimeout=5s", "--run", "--json", "-"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let runs = v["locations"][0]["runs"].as_array().unwrap();
    assert!(runs.iter().any(|r| r["mechanism"] == "idle-race"), "{v}");
    for r in runs {
        // port-exhaustion's probe needs a network namespace: skipped, with
        // the reason, where none can be made (not root) and none is required.
        if r["mechanism"] == "port-exhaustion" && r["skipped"].is_string() && !harness::require::netns_required() {
            continue;
        }
        assert_eq!(r["passed"], true, "the emulators disagree with the prediction: {r}");
    }
}

#[test]
fn bad_input_is_exit_2_with_the_place() {
    let f = scratch("bad.conf", "events {}\nhttp {\n  upstream u { server 127.0.0.1:1; keepalive; }\n}\n");
    let o = scenarios(&["check", "--nginx-conf", f.to_str().unwrap(), "--go", "IdleTimeout=5s"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.conf:3"), "{}", text(&o));
    let o = scenarios(&["check", "--nginx-conf", fixture().to_str().unwrap(), "--go", "IdleTimout=5s"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown Go setting \"IdleTimout\""), "{}", text(&o));
    let o = scenarios(&["check", "--nginx-conf", fixture().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "--go is required: {}", text(&o));
}

/// `--profile auto` reads the version of the nginx it is given: a modern
/// nginx caches connections to every explicit upstream (keepalive 32), so
/// the idle race applies there and not on 1.22.
#[test]
fn profile_auto_follows_the_nginx_binary() {
    let conf = scratch("nokeepalive.conf", "events {}\nhttp {\n  upstream app { server 127.0.0.1:9000; }\n  server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n");
    let fake = |version: &str| {
        let p = scratch(&format!("nginx-{version}"), &format!("#!/bin/sh\necho 'nginx version: nginx/{version}' >&2\necho 'configure arguments: --prefix=/opt' >&2\n"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    // On 1.29.8 the cache is the new default: check names the upgrade's variant.
    for (version, mechanism, want, code) in [("1.29.8", "idle-race-upgrade", "applies", 1), ("1.22.1", "idle-race", "cannot-happen", 0)] {
        let nginx = fake(version);
        let o = scenarios(&["check", "--nginx-conf", conf.to_str().unwrap(), "--go", "IdleTimeout=5s", "--profile", "auto", "--nginx", nginx.to_str().unwrap(), "--json", "-"]);
        assert_eq!(o.status.code(), Some(code), "{version}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
        let race = v["locations"][0]["findings"].as_array().unwrap().iter().find(|f| f["mechanism"] == mechanism).cloned().unwrap();
        assert_eq!(race["verdict"], want, "{version}: {race}");
        assert!(v["profile_from"].as_str().unwrap().contains(version), "{v}");
    }
    let o = scenarios(&["check", "--nginx-conf", conf.to_str().unwrap(), "--go", "IdleTimeout=5s", "--profile", "auto", "--nginx", "/bin/true"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--profile auto needs an nginx binary"), "{}", text(&o));
}

/// What your code or deploys set off is listed, with its trigger, and
/// fails the gate only with --strict.
#[test]
fn exposed_mechanisms_gate_only_with_strict() {
    let conf = std::fs::read_to_string(fixture()).unwrap().replace("keepalive 16;", "keepalive 16;\n        keepalive_timeout 4s;");
    let f = scratch("strict.conf", &conf);
    let args = ["check", "--nginx-conf", f.to_str().unwrap(), "--go", "IdleTimeout=5s", "--json", "-"];
    let o = scenarios(&args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let findings = v["locations"][0]["findings"].as_array().unwrap();
    let panic = findings.iter().find(|f| f["mechanism"] == "panic").unwrap();
    assert_eq!((&panic["verdict"], &panic["trigger"], &panic["mechanism_id"]), (&"exposed".into(), &"code".into(), &"handler-panic".into()), "{panic}");
    let o = scenarios(&[&args[..], &["--strict"]].concat());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}
