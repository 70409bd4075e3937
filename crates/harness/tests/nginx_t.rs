//! fixtures/nginx.conf is a real nginx config: `nginx -t` accepts it.
//! Without nginx the trial is reported as ignored, with the reason; with
//! BADGATEWAY_REQUIRE_NGINX=1 it fails instead.

use harness::require;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::process::ExitCode;

fn main() -> ExitCode {
    let trials = vec![Trial::ignorable_test("fixture_passes_real_nginx_t", fixture_passes_real_nginx_t)];
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

fn fixture_passes_real_nginx_t() -> Result<Completion, Failed> {
    let bin = match require::nginx() {
        Ok(b) => b,
        Err(m) => return require::trial_outcome(m),
    };
    let prefix = std::env::temp_dir().join(format!("nginx-t-{}", std::process::id()));
    std::fs::create_dir_all(&prefix)?;
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/nginx.conf");
    let out = std::process::Command::new(bin)
        .args(["-t", "-p"])
        .arg(format!("{}/", prefix.display()))
        .args(["-e", "error.log", "-c"])
        .arg(&fixture)
        .output();
    std::fs::remove_dir_all(&prefix).ok();
    let out = out?;
    let err = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("nginx -t rejected the fixture: {err}").into());
    }
    if !err.contains("test is successful") {
        return Err(format!("nginx -t did not say the test is successful: {err}").into());
    }
    Ok(Completion::Completed)
}
