//! The `scenarios` binary away from this checkout: copied into an empty
//! directory and run from there, as an installed binary is. It must build
//! the Go reference server from the sources it carries (into a cache
//! directory of its own here), run the user's own programs (`--nginx`,
//! `--upstream-cmd`), and say clearly what is wrong with a program it
//! cannot use.
//!
//! Trials that need Go or nginx are ignored with the reason where they are
//! missing, and fail where BADGATEWAY_REQUIRE_GO / _NGINX=1 (`.ci/run`).

use harness::require::{self, Tool};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output};
use std::time::Duration;

/// How long one run of the copied binary may take: it may build the Go
/// reference server (bounded by 5 min itself) before running a scenario.
const RUN_LIMIT: Duration = Duration::from_secs(420);

fn main() -> ExitCode {
    let trials = vec![
        Trial::ignorable_test("installed::copied_binary_builds_and_runs_real_go", || copied_binary_runs(&[Tool::Go], &["--upstream", "go"])),
        Trial::ignorable_test("installed::copied_binary_runs_real_nginx_and_real_go", || {
            copied_binary_runs(&[Tool::Nginx, Tool::Go], &["--proxy", "nginx", "--upstream", "go"])
        }),
        Trial::ignorable_test("installed::upstream_cmd_runs_the_users_server", upstream_cmd_runs_the_users_server),
        Trial::test("installed::too_old_nginx_names_the_directive", too_old_nginx_names_the_directive),
        Trial::test("installed::not_nginx_and_bad_commands_are_usage_errors", bad_programs_are_usage_errors),
    ];
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// An empty directory for one trial, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("badgateway-lab-installed-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("scratch dir");
        Scratch(p)
    }

    /// The binary under test, copied here (nothing of the checkout around it).
    fn binary(&self) -> PathBuf {
        let to = self.0.join("scenarios");
        std::fs::copy(env!("CARGO_BIN_EXE_scenarios"), &to).expect("copy the scenarios binary");
        to
    }

    /// Runs the copied binary from this directory, its cache in here too:
    /// in a process group of its own, killed at [`RUN_LIMIT`].
    ///
    /// A copy made while another trial forks is briefly held open for
    /// writing by that child, until it execs: exec fails with ETXTBSY
    /// ("Text file busy") meanwhile, so that error is waited out.
    fn run(&self, bin: &Path, args: &[&str]) -> Output {
        let mut tries = 0;
        loop {
            let mut cmd = Command::new(bin);
            cmd.args(args).current_dir(&self.0).env("BADGATEWAY_CACHE_DIR", self.0.join("cache")).env("NO_COLOR", "1");
            match harness::child::run_bounded(cmd, RUN_LIMIT, 16 << 20) {
                Err(harness::child::RunError::Spawn(e)) if e.raw_os_error() == Some(26) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                r => return r.unwrap_or_else(|e| panic!("the copied binary {args:?}: {e}")),
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The first missing tool as a trial outcome (ignored, or failed where required).
fn needs(tools: &[Tool]) -> Option<Result<Completion, Failed>> {
    tools.iter().map(|t| require::tool(*t)).find_map(Result::err).map(require::trial_outcome)
}

/// The one run of a `--json -` report.
fn the_run(out: &Output) -> Result<serde_json::Value, Failed> {
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("not JSON ({e}): {text}\nstderr: {}", String::from_utf8_lossy(&out.stderr)))?;
    Ok(v["runs"][0].clone())
}

fn copied_binary_runs(tools: &[Tool], backends: &[&str]) -> Result<Completion, Failed> {
    if let Some(outcome) = needs(tools) {
        return outcome;
    }
    let dir = Scratch::new(&backends.join("-").replace("--", ""));
    let bin = dir.binary();
    let mut args = vec!["write-timeout", "--json", "-"];
    args.extend_from_slice(backends);
    let out = dir.run(&bin, &args);
    let run = the_run(&out)?;
    if !out.status.success() || run["skipped"] != serde_json::Value::Null || run["passed"] != true {
        return Err(format!("exit {:?}, run {run:#}\nstderr: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)).into());
    }
    assert_eq!(run["upstream"], "go");
    let program = run["upstream_program"].as_str().unwrap_or_default();
    assert!(program.contains(&dir.0.join("cache").display().to_string()), "built into the cache it was given: {program}");
    // `.go` holds go's own build cache and GOPATH where there is no HOME.
    let entries: Vec<String> =
        std::fs::read_dir(dir.0.join("cache")).expect("cache").map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).filter(|n| n != ".go").collect();
    assert!(entries.len() == 1 && entries[0].starts_with("go-upstream-"), "one finished entry, no build leftovers: {entries:?}");
    if backends.contains(&"nginx") {
        assert!(run["proxy_program"].as_str().unwrap_or_default().contains("nginx/"), "{run:#}");
    }
    Ok(Completion::Completed)
}

fn upstream_cmd_runs_the_users_server() -> Result<Completion, Failed> {
    // The reference server, built as any user's Go server would be, stands
    // in for the user's own.
    let server = match require::go() {
        Ok(bin) => bin,
        Err(m) => return require::trial_outcome(m),
    };
    let dir = Scratch::new("upstream-cmd");
    let bin = dir.binary();
    let cmd = format!("{} --addr={{addr}} --write-timeout={{write_timeout}}", server.display());
    let out = dir.run(&bin, &["write-timeout", "--upstream-cmd", &cmd, "--json", "-"]);
    let run = the_run(&out)?;
    if !out.status.success() || run["skipped"] != serde_json::Value::Null || run["passed"] != true {
        return Err(format!("exit {:?}, run {run:#}\nstderr: {}", out.status.code(), String::from_utf8_lossy(&out.stderr)).into());
    }
    assert_eq!(run["upstream"], "cmd");
    assert_eq!(run["observations"][0]["status"], 502, "WriteTimeout passed on: the write fails, nginx sees EOF");
    assert_eq!(run["observations"][0]["handler_runs"], serde_json::Value::Null, "not observable in a user's server");
    // Without the placeholder the scenario's WriteTimeout would not reach
    // the server: a skip that says so, never a pass.
    let plain = format!("{} --addr={{addr}}", server.display());
    let out = dir.run(&bin, &["write-timeout", "--upstream-cmd", &plain, "--json", "-"]);
    let run = the_run(&out)?;
    let why = run["skipped"].as_str().unwrap_or_default();
    assert!(why.contains("{write_timeout}") && run["passed"] == false, "{run:#}");
    let out = dir.run(&bin, &["idle-race", "--upstream-cmd", &plain, "--json", "-"]);
    assert!(the_run(&out)?["skipped"].as_str().unwrap_or_default().contains("emulator-only knob"));
    Ok(Completion::Completed)
}

/// A script that answers `-V` as nginx 1.14.2 would (and nothing else).
fn fake_nginx(dir: &Path, version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(format!("nginx-{version}"));
    std::fs::write(&p, format!("#!/bin/sh\necho 'nginx version: nginx/{version}' >&2\necho 'configure arguments: --prefix=/opt/nginx' >&2\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn too_old_nginx_names_the_directive() -> Result<(), Failed> {
    let dir = Scratch::new("old-nginx");
    let bin = dir.binary();
    let old = fake_nginx(&dir.0, "1.14.2");
    // idle-race-remedy sets the upstream keepalive_timeout (nginx 1.15.3).
    let out = dir.run(&bin, &["idle-race-remedy", "--nginx", old.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("nginx 1.14.2 is too old") && err.contains("keepalive_timeout (upstream) needs nginx ≥ 1.15.3"), "{err}");
    Ok(())
}

fn bad_programs_are_usage_errors() -> Result<(), Failed> {
    let dir = Scratch::new("bad-programs");
    let bin = dir.binary();
    let cases: [(&[&str], &str); 5] = [
        (&["panic", "--nginx", "/bin/true"], "is not nginx"),
        (&["panic", "--nginx", "/nonexistent/nginx"], "does not exist"),
        (&["panic", "--go", "/nonexistent/go"], "no Go toolchain"),
        (&["panic", "--upstream-cmd", "./my-server -addr :8080"], "has no {addr}"),
        (&["panic", "--upstream-cmd", "echo not a server; exit 1 # {addr}"], "exited (exit status: 1) before listening"),
    ];
    for (args, want) in cases {
        let out = dir.run(&bin, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want) && !err.contains("panicked"), "{args:?}: {err}");
    }
    Ok(())
}
