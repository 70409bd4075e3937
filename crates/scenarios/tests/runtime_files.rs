//! Scenario files read at run time: `scenarios run FILE.toml`,
//! `scenarios all --catalogue DIR`, `scenarios schema`, and the errors a
//! user sees for a bad file (file:line:column, the field, exit status 2).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn scenarios(args: &[&str]) -> Output {
    // A UTF-8 locale, whatever the environment: the output's arrows are asserted.
    Command::new(env!("CARGO_BIN_EXE_scenarios")).args(args).env("LC_ALL", "C.UTF-8").output().expect("run scenarios")
}

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/scenarios")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn a_file_runs_and_a_directory_is_a_catalogue() {
    let file = examples().join("my-idle-race.toml");
    let o = scenarios(&["run", file.to_str().unwrap(), "--no-timeline"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("my-idle-race — "), "{}", text(&o));
    let o = scenarios(&["all", "--catalogue", examples().to_str().unwrap()]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // The problem, then its remedy; both ran.
    let (a, b) = (out.find("my-idle-race ").expect(&out), out.find("my-idle-race-fixed").expect(&out));
    assert!(a < b && out.contains("2 scenarios, 2 passed"), "{out}");
}

#[test]
fn a_bad_file_names_its_line_column_and_field_and_exits_2() {
    let dir = tempdir("bad");
    let f = dir.join("bad.toml");
    std::fs::write(&f, "name='x'\ntitle='t'\nmechanism='m'\nexplanation='e'\nfix='f'\n[go]\nwrite_timeout = '3q'\n[[request]]\npath='/ok'\n[request.expect]\n").unwrap();
    let o = scenarios(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let want = format!("{}:7:17: go.write_timeout: not a Go duration", f.display());
    assert!(text(&o).contains(&want), "{}\nwant {want}", text(&o));
    // In a directory: the same error; a remedy of nothing is one too.
    std::fs::write(dir.join("bad.toml"), "name='x'\ntitle='t'\nremedy_of='y'\nmechanism='m'\nexplanation='e'\nfix='f'\n[[request]]\npath='/ok'\n[request.expect]\n").unwrap();
    let o = scenarios(&["all", "--catalogue", dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("remedy_of \"y\": no scenario of that name"), "{}", text(&o));
    let o = scenarios(&["run", dir.join("absent.toml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("cannot read"), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_schema_describes_every_catalogue_field() {
    let o = scenarios(&["schema"]);
    assert!(o.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let defs = &schema["$defs"];
    for (def, field) in [("GoSettings", "idle_timeout"), ("NginxSettings", "location_conf"), ("NginxSettings", "upstream_conf"), ("Expect", "upstream_status"), ("Workload", "action")] {
        assert!(defs[def]["properties"][field].is_object(), "{def}.{field} missing from the schema");
    }
    assert!(schema["properties"]["request"].is_object());
    // Unknown keys are errors in files, so the schema says so too.
    assert_eq!(defs["GoSettings"]["additionalProperties"], serde_json::Value::Bool(false));
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("badgateway-scenario-files-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The nginx side as files: the text reaches nginx as written (times at
/// run scale), and an error in it names the snippet file and its line.
#[test]
fn nginx_conf_files_reach_nginx_as_written() {
    let file = examples().join("my-idle-race-fixed.toml");
    let s = scenarios::catalogue::load_file(&file).unwrap();
    let listen = "127.0.0.1:8".parse().unwrap();
    let rendered = scenarios::setup::nginx_config(&s, &["127.0.0.1:9".parse().unwrap()], listen, 0.02).render();
    let location = std::fs::read_to_string(examples().join("conf/location.conf")).unwrap();
    // Every byte as written but the times, at scale 0.02.
    assert!(rendered.contains(&location.replace("proxy_read_timeout 30s;", "proxy_read_timeout 600ms;")), "{rendered}");
    let upstream = std::fs::read_to_string(examples().join("conf/upstream-fixed.conf")).unwrap();
    assert!(rendered.contains(&upstream.replace("keepalive_timeout 4s;", "keepalive_timeout 80ms;")), "{rendered}");

    let dir = tempdir("conf-file");
    std::fs::write(dir.join("u.conf"), "keepalive 16;\n# fine so far\nkeepalive_timeout 5x;\n").unwrap();
    let head = "name='x'\ntitle='t'\nmechanism='m'\nexplanation='e'\nfix='f'\n[nginx]\n";
    let req = "[[request]]\npath='/ok'\n[request.expect]\n";
    let f = dir.join("x.toml");
    std::fs::write(&f, format!("{head}upstream_conf_file='u.conf'\n{req}")).unwrap();
    let o = scenarios(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let want = format!("{}:3:1: nginx.upstream_conf_file: \"keepalive_timeout\" directive invalid value", dir.join("u.conf").display());
    assert!(text(&o).contains(&want), "{}\nwant {want}", text(&o));
    for (extra, want) in [
        ("upstream_conf_file='absent.conf'\n", "x.toml:7:1: nginx.upstream_conf_file: cannot read"),
        ("upstream_conf='keepalive 2;'\nupstream_conf_file='u.conf'\n", "x.toml:8:1: nginx.upstream_conf_file: set upstream_conf or upstream_conf_file, not both"),
    ] {
        std::fs::write(&f, format!("{head}{extra}{req}")).unwrap();
        let o = scenarios(&["run", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains(want), "{}\nwant {want}", text(&o));
    }
}

/// JUnit for CI: properties, timestamp and host per backend pair; a failed
/// run carries its verdict and timeline; a skip is `<skipped>` with the
/// reason, never a pass. The JSON report says its schema version and scales.
#[test]
fn reports_carry_context_and_never_count_a_skip_as_a_pass() {
    let dir = tempdir("reports");
    let wrong = std::fs::read_to_string(examples().join("my-idle-race.toml")).unwrap().replace("status = 502", "status = 201");
    std::fs::write(dir.join("wrong.toml"), wrong.replace("name = \"my-idle-race\"", "name = \"wrong\"")).unwrap();
    let junit = dir.join("r.xml");
    let json = dir.join("r.json");
    let o = scenarios(&["run", dir.join("wrong.toml").to_str().unwrap(), "--junit", junit.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let x = std::fs::read_to_string(&junit).unwrap();
    for want in ["<property name=\"scale\" value=\"0.02\"/>", "<property name=\"proxy\"", "timestamp=\"", "hostname=\"", "<failure message=\"POST /ok: request 1: status 502, expected 201\"", "<system-out>", "premature-close", "client"] {
        assert!(x.contains(want), "{want} missing from\n{x}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((v["schema_version"].as_u64(), v["passed"].as_bool(), v["ran"].as_u64()), (Some(2), Some(false), Some(1)), "{v}");
    assert!(v["scales"].as_str().unwrap().contains("article scale"));

    let o = scenarios(&["run", examples().join("my-idle-race.toml").to_str().unwrap(), "--upstream-cmd", "true {addr}", "--junit", junit.to_str().unwrap(), "--json", json.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let x = std::fs::read_to_string(&junit).unwrap();
    assert!(x.contains("skipped=\"1\"") && x.contains("<skipped message=\"your server cannot run"), "{x}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((v["ran"].as_u64(), v["skipped"].as_u64()), (Some(0), Some(1)), "{v}");
}

/// `matrix --json -` prints only JSON, and `--junit` writes one case per cell.
#[test]
fn matrix_reports_are_written_and_json_on_stdout_is_only_json() {
    let junit = tempdir("matrix").join("m.xml");
    let o = scenarios(&["matrix", "--count", "2", "--idle-timeouts", "2s", "--keepalive-timeouts", "1s,3s", "--methods", "GET", "--json", "-", "--junit", junit.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is one JSON document");
    assert_eq!(v["cells"].as_array().map(Vec::len), Some(2), "{v}");
    let x = std::fs::read_to_string(&junit).unwrap();
    assert_eq!(x.matches("<testcase ").count(), 2, "{x}");
    assert!(x.contains("IdleTimeout=2s keepalive_timeout=1s GET"), "{x}");
}
