//! The JUnit reports against the common JUnit schema (Jenkins xUnit's
//! junit-10.xsd, `tests/data/junit-10.xsd`), checked by `xmllint --noout
//! --schema` (Debian: libxml2-utils): `scenarios all --jobs --junit` on a
//! few scenarios, one of them failing; `scenarios matrix --junit`; skipped
//! and failed runs; and a report the schema must refuse, so the check can
//! fail.
//!
//! Without xmllint each trial is ignored with the reason; where
//! BADGATEWAY_REQUIRE_XMLLINT=1 (`.ci/run`) it fails instead, as
//! tests/html_browser.rs does for Chromium.

mod tools;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

const REQUIRE: &str = "BADGATEWAY_REQUIRE_XMLLINT";
/// A few scenarios on the emulators take seconds; the bound is for a stuck run.
const RUN_LIMIT: Duration = Duration::from_secs(300);
const XMLLINT_LIMIT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let trials = vec![
        Trial::ignorable_test("junit_xsd::all_with_jobs_and_a_failure_validates", all_validates),
        Trial::ignorable_test("junit_xsd::matrix_validates", matrix_validates),
        Trial::ignorable_test("junit_xsd::skipped_and_failed_runs_validate", skipped_validates),
        Trial::ignorable_test("junit_xsd::the_schema_refuses_what_it_does_not_allow", refuses),
    ];
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

fn xsd() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/junit-10.xsd")
}

/// $BADGATEWAY_XMLLINT, else xmllint on PATH or in /usr/bin.
fn xmllint() -> Result<PathBuf, String> {
    tools::find("BADGATEWAY_XMLLINT", &["xmllint"], "Debian: apt-get install libxml2-utils")
}

fn missing(why: String) -> Result<Completion, Failed> {
    tools::missing(REQUIRE, why)
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch, Failed> {
        let d = std::env::temp_dir().join(format!("badgateway-junit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d)?;
        Ok(Scratch(d))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `xmllint --noout --schema junit-10.xsd FILE`: Ok(None) when valid,
/// Ok(Some(why)) when not.
fn lint(bin: &Path, file: &Path) -> Result<Option<String>, Failed> {
    let mut cmd = Command::new(bin);
    cmd.arg("--noout").arg("--schema").arg(xsd()).arg(file);
    let o = harness::child::run_bounded(cmd, XMLLINT_LIMIT, 1 << 20).map_err(|e| format!("xmllint: {e}"))?;
    Ok((!o.status.success()).then(|| String::from_utf8_lossy(&o.stderr).into_owned()))
}

fn must_validate(bin: &Path, file: &Path) -> Result<(), Failed> {
    match lint(bin, file)? {
        None => Ok(()),
        Some(why) => Err(format!("{} does not validate against junit-10.xsd:\n{why}", file.display()).into()),
    }
}

/// Runs `scenarios args`, accepting exit `codes`.
fn scenarios(args: &[&str], codes: &[i32]) -> Result<(), Failed> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scenarios"));
    cmd.args(args).env("NO_COLOR", "1");
    let o = harness::child::run_bounded(cmd, RUN_LIMIT, 16 << 20).map_err(|e| format!("scenarios {args:?}: {e}"))?;
    if !o.status.code().is_some_and(|c| codes.contains(&c)) {
        return Err(format!("scenarios {args:?}: {:?}\n{}", o.status, String::from_utf8_lossy(&o.stderr)).into());
    }
    Ok(())
}

/// Three catalogue scenarios and one whose expectation is wrong (a failure
/// with its message and timeline), run at once, as JUnit.
fn all_report(dir: &Path) -> Result<PathBuf, Failed> {
    let catalogue = Path::new(env!("CARGO_MANIFEST_DIR")).join("catalogue");
    let cases = dir.join("cases");
    std::fs::create_dir_all(&cases)?;
    for name in ["idle-race", "panic", "write-timeout"] {
        std::fs::copy(catalogue.join(format!("{name}.toml")), cases.join(format!("{name}.toml")))?;
    }
    let panic = std::fs::read_to_string(catalogue.join("panic.toml"))?;
    let wrong = panic.replacen("name = \"panic\"", "name = \"panic-expected-200\"", 1).replacen("status = 502", "status = 200", 1);
    if wrong == panic {
        return Err("catalogue/panic.toml changed: the wrong expectation could not be written".into());
    }
    std::fs::write(cases.join("panic-expected-200.toml"), wrong)?;
    let junit = dir.join("all.xml");
    // 1: the wrong expectation fails.
    scenarios(&["all", "--catalogue", cases.to_str().unwrap(), "--jobs", "4", "--junit", junit.to_str().unwrap()], &[1])?;
    Ok(junit)
}

fn all_validates() -> Result<Completion, Failed> {
    let bin = match xmllint() {
        Ok(b) => b,
        Err(why) => return missing(why),
    };
    let dir = Scratch::new("all")?;
    let junit = all_report(&dir.0)?;
    let xml = std::fs::read_to_string(&junit)?;
    if xml.matches("<testcase ").count() != 4 || xml.matches("<failure").count() != 1 {
        return Err(format!("expected 4 test cases, 1 failed:\n{xml}").into());
    }
    must_validate(&bin, &junit)?;
    Ok(Completion::Completed)
}

fn matrix_validates() -> Result<Completion, Failed> {
    let bin = match xmllint() {
        Ok(b) => b,
        Err(why) => return missing(why),
    };
    let dir = Scratch::new("matrix")?;
    let junit = dir.0.join("matrix.xml");
    let args = ["matrix", "--idle-timeouts", "2s", "--keepalive-timeouts", "1s,3s", "--methods", "GET,POST", "--count", "3", "--junit", junit.to_str().unwrap()];
    scenarios(&args, &[0, 1])?;
    let xml = std::fs::read_to_string(&junit)?;
    if xml.matches("<testcase ").count() != 4 {
        return Err(format!("expected 4 cells:\n{xml}").into());
    }
    must_validate(&bin, &junit)?;
    Ok(Completion::Completed)
}

/// `report::junit` on a skipped run and a failed one (the CLI's emulators
/// skip nothing, so these are made here).
fn skipped_validates() -> Result<Completion, Failed> {
    use harness::{ProxyBackend, UpstreamBackend};
    use scenarios::runner::RunResult;
    let bin = match xmllint() {
        Ok(b) => b,
        Err(why) => return missing(why),
    };
    let run = |name: &str, skipped: Option<&str>, passed: bool| RunResult {
        scenario: name.into(),
        title: "t".into(),
        proxy: ProxyBackend::Nginx,
        upstream: UpstreamBackend::Go,
        proxy_program: Some("nginx/1.22.1 (/usr/sbin/nginx)".into()),
        upstream_program: None,
        scale: 0.02,
        skipped: skipped.map(str::to_string),
        passed,
        verdicts: vec![],
        observations: vec![],
        timeline: vec![],
        wall_ms: 1234.5,
    };
    let xml = scenarios::report::junit(&[run("needs-a-knob", Some("real Go has no lab knob <pause>"), false), run("failed", None, false)], "scenarios all");
    if !xml.contains("<skipped") || !xml.contains("<failure") {
        return Err(format!("expected a skipped and a failed case:\n{xml}").into());
    }
    let dir = Scratch::new("skipped")?;
    let file = dir.0.join("skipped.xml");
    std::fs::write(&file, xml)?;
    must_validate(&bin, &file)?;
    Ok(Completion::Completed)
}

/// What the schema does not allow is refused: the root's `skipped` count
/// (which quick-junit writes and the report drops) and an unknown
/// attribute on a test case.
fn refuses() -> Result<Completion, Failed> {
    let bin = match xmllint() {
        Ok(b) => b,
        Err(why) => return missing(why),
    };
    let dir = Scratch::new("refuses")?;
    let good = std::fs::read_to_string(all_report(&dir.0)?)?;
    let broken = [
        ("the root's skipped count", good.replacen("<testsuites ", "<testsuites skipped=\"0\" ", 1)),
        ("an unknown test case attribute", good.replacen("<testcase ", "<testcase flaky=\"no\" ", 1)),
        ("a test case without a name", good.replacen("<testcase name=", "<testcase title=", 1)),
    ];
    for (what, xml) in broken {
        if xml == good {
            return Err(format!("{what}: the report did not have the shape to break").into());
        }
        let file = dir.0.join("broken.xml");
        std::fs::write(&file, &xml)?;
        if lint(&bin, &file)?.is_none() {
            return Err(format!("{what}: xmllint accepted it").into());
        }
    }
    Ok(Completion::Completed)
}
