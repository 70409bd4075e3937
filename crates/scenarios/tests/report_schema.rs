//! `scenarios schema report` against the real reports: the JSON that `all`,
//! `run`, `matrix`, `check` and `diagnose` write with `--json` validates
//! against the published schema (the `jsonschema` crate, draft 2020-12),
//! every document carries `schema_version`, the tool's version and `report`,
//! and a document that breaks the schema is refused (the check can fail).
//! One trial runs real nginx in front of real Go (their timelines are typed
//! from their logs); without them it is ignored with the reason, unless
//! BADGATEWAY_REQUIRE_NGINX/GO=1 make that a failure (`harness::require`).

use harness::require;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};

fn main() -> ExitCode {
    let plain = |name: &str, f: fn()| {
        Trial::test(format!("report_schema::{name}"), move || {
            f();
            Ok(())
        })
    };
    let trials = vec![
        plain("the_catalogue_run_report_validates_and_its_timelines_are_typed", the_catalogue_run_report_validates_and_its_timelines_are_typed),
        plain("the_matrix_report_validates", the_matrix_report_validates),
        plain("the_check_report_validates", the_check_report_validates),
        plain("the_diagnose_report_validates", the_diagnose_report_validates),
        plain("a_document_that_breaks_the_schema_is_refused", a_document_that_breaks_the_schema_is_refused),
        Trial::ignorable_test("report_schema::real_nginx_and_go_run_report_validates", real_nginx_and_go),
    ];
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

fn scenarios(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scenarios")).args(args).env("NO_COLOR", "1").output().expect("run scenarios")
}

fn fixtures(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(rel).to_str().unwrap().to_string()
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("badgateway-schema-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
    fn file(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn published() -> jsonschema::Validator {
    let o = scenarios(&["schema", "report"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let schema: Value = serde_json::from_slice(&o.stdout).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the published schema compiles")
}

/// Runs `args` (which write `--json` to `json`), accepting exit `codes`,
/// and returns the document after checking it against the schema.
fn document(args: &[&str], json: &str, codes: &[i32], report: &str) -> Value {
    let o = scenarios(args);
    assert!(o.status.code().is_some_and(|c| codes.contains(&c)), "{args:?}: {:?}\n{}", o.status, String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(json).expect("the report was written")).expect("the report is JSON");
    let errors: Vec<String> = published().iter_errors(&doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "{args:?}: the report breaks the published schema:\n{}", errors.join("\n"));
    assert_eq!(doc["report"], report, "{args:?}");
    assert!(doc["schema_version"].as_u64().is_some_and(|v| v >= 2), "{args:?}");
    assert_eq!(doc["tool"]["version"], env!("CARGO_PKG_VERSION"), "{args:?}");
    doc
}

fn the_catalogue_run_report_validates_and_its_timelines_are_typed() {
    let d = Scratch::new("all");
    let json = d.file("all.json");
    // 1: a verdict failed, still a report.
    let doc = document(&["all", "--jobs", "2", "--json", &json], &json, &[0, 1], "runs");
    let entries: Vec<&Value> = doc["runs"].as_array().unwrap().iter().flat_map(|r| r["timeline"].as_array().unwrap()).collect();
    // The catalogue's runs show every side, and closes both ways.
    for lane in ["client", "proxy", "upstream"] {
        assert!(entries.iter().any(|e| e["lane"] == lane), "no {lane} entry");
    }
    for how in ["FIN", "RST"] {
        assert!(entries.iter().any(|e| e["kind"] == "close" && e["close"] == how), "no typed {how} close");
    }
    // Proxy and upstream name a connection alike: some port is in both lanes.
    let ports = |lane: &str| entries.iter().filter(|e| e["lane"] == lane).filter_map(|e| e["port"].as_u64()).collect::<std::collections::BTreeSet<_>>();
    assert!(!ports("proxy").is_disjoint(&ports("upstream")), "no connection named in both the proxy and upstream lanes");
}

fn the_matrix_report_validates() {
    let d = Scratch::new("matrix");
    let json = d.file("matrix.json");
    let args = ["matrix", "--idle-timeouts", "2s", "--keepalive-timeouts", "1s,3s", "--methods", "GET", "--count", "3", "--json", &json];
    let doc = document(&args, &json, &[0, 1], "matrix");
    assert_eq!(doc["cells"].as_array().map(Vec::len), Some(2));
}

fn the_check_report_validates() {
    let d = Scratch::new("check");
    let json = d.file("check.json");
    let conf = fixtures("nginx.conf");
    // 1: the idle race applies with these settings.
    let doc = document(&["check", "--nginx-conf", &conf, "--go", "IdleTimeout=5s,ReadTimeout=10s", "--json", &json], &json, &[1], "check");
    assert!(doc["locations"].as_array().is_some_and(|l| !l.is_empty()));
}

fn the_diagnose_report_validates() {
    let d = Scratch::new("diagnose");
    let json = d.file("diagnose.json");
    let (e, a, c) = (fixtures("logs/custom/error.log"), fixtures("logs/custom/access.log.gz"), fixtures("logs/custom/nginx.conf"));
    let doc = document(&["diagnose", "--error-log", &e, "--access-log", &a, "--nginx-conf", &c, "--json", &json], &json, &[0], "diagnose");
    assert!(doc["findings"].as_array().is_some_and(|f| !f.is_empty()));
}

fn a_document_that_breaks_the_schema_is_refused() {
    let d = Scratch::new("bad");
    let json = d.file("run.json");
    let doc = document(&["run", "idle-race", "--no-timeline", "--json", &json], &json, &[0, 1], "runs");
    let schema = published();
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut bad = doc.clone();
        f(&mut bad);
        bad
    };
    let first_close = |v: &mut Value| -> Option<usize> { v["runs"][0]["timeline"].as_array()?.iter().position(|e| e["kind"] == "close") };
    let cases: Vec<(&str, Value)> = vec![
        ("no schema_version", broken(&|v| drop(v.as_object_mut().unwrap().remove("schema_version")))),
        ("an unknown report", broken(&|v| v["report"] = "bogus".into())),
        ("a close neither FIN nor RST", broken(&|v| {
            let i = first_close(v).expect("idle-race's timeline has a close");
            v["runs"][0]["timeline"][i]["close"] = "fin".into();
        })),
        ("a lane that is no side", broken(&|v| v["runs"][0]["timeline"][0]["lane"] = "nginx".into())),
        ("a run without its verdicts", broken(&|v| drop(v["runs"][0].as_object_mut().unwrap().remove("verdicts")))),
    ];
    for (what, bad) in cases {
        assert!(!schema.is_valid(&bad), "{what}: accepted");
    }
}

/// Real nginx → real Go: the upstream lane typed from Go's ConnState log
/// (accept and close by port, a close neither FIN nor RST: the log does not
/// say), nginx's error.log lines as errors.
fn real_nginx_and_go() -> Result<Completion, Failed> {
    if let Some(m) = [require::nginx(), require::go()].into_iter().find_map(Result::err) {
        return require::trial_outcome(m);
    }
    let d = Scratch::new("real");
    let json = d.file("run.json");
    let doc = document(&["run", "panic", "--proxy", "nginx", "--upstream", "go", "--no-timeline", "--json", &json], &json, &[0, 1], "runs");
    let run = &doc["runs"][0];
    if !run["skipped"].is_null() {
        return Err(format!("panic skipped on real nginx and Go: {}", run["skipped"]).into());
    }
    let entries = run["timeline"].as_array().ok_or("no timeline")?;
    let upstream = |kind: &str| entries.iter().filter(|e| e["lane"] == "upstream" && e["kind"] == kind).collect::<Vec<_>>();
    let (accepts, closes) = (upstream("accept"), upstream("close"));
    if accepts.is_empty() || closes.is_empty() {
        return Err(format!("no typed accept or close from real Go's log: {entries:#?}").into());
    }
    if let Some(e) = accepts.iter().chain(&closes).find(|e| e["port"].as_u64().is_none()) {
        return Err(format!("a real Go entry without its connection's port: {e}").into());
    }
    if let Some(e) = closes.iter().find(|e| !e["close"].is_null()) {
        return Err(format!("real Go's log does not say FIN or RST, yet: {e}").into());
    }
    if !entries.iter().any(|e| e["lane"] == "proxy" && e["kind"] == "error") {
        return Err("no error.log line typed as an error".into());
    }
    Ok(Completion::Completed)
}
