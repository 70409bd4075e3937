//! A reader that goes away (`scenarios list | head -1`) ends the command
//! quietly with exit 0: no panic message, no exit 101.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scenarios")).args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start scenarios");
    // Close the read end before anything is written: the first write fails.
    drop(child.stdout.take());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("scenarios {args:?} still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    (status.code(), err)
}

#[test]
fn a_closed_stdout_is_exit_0_without_a_panic() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/nginx.conf");
    for args in [
        &["list"][..],
        &["explain", "idle-race"],
        &["schema"],
        &["check", "--nginx-conf", conf, "--go", "IdleTimeout=5s"],
        &["panic", "--no-timeline"],
        &["all", "--jobs", "2", "--catalogue", concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/scenarios")],
    ] {
        let (code, err) = closed_stdout(args);
        assert_eq!(code, Some(0), "scenarios {args:?}: {err}");
        assert!(!err.contains("panicked"), "scenarios {args:?}: {err}");
    }
}

/// On a terminal the progress bar (stderr) and the results (stdout) share
/// the screen: each result line is written on a cleared line, never glued
/// behind the bar. Run under a pseudo-terminal (`script`, util-linux).
#[test]
fn on_a_terminal_results_never_follow_the_progress_bar_on_one_line() {
    let bin = env!("CARGO_BIN_EXE_scenarios");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/scenarios");
    let cmd = format!("{bin} all --jobs 1 --catalogue {examples}");
    let o = Command::new("script").args(["-qec", &cmd, "/dev/null"]).stdin(Stdio::null()).output().expect("script(1) from util-linux");
    let screen = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{screen}");
    assert!(screen.contains("[##"), "no progress bar drawn on the terminal: {screen:?}");
    let results: Vec<&str> = screen.split('\n').filter(|l| l.contains("my-idle-race")).filter(|l| l.contains("PASS")).collect();
    assert_eq!(results.len(), 2, "{screen:?}");
    for line in results {
        // What the terminal shows: the text after the last carriage return
        // or line clear.
        let shown = line.rsplit(['\r']).find(|s| !s.is_empty()).unwrap_or(line);
        let shown = shown.rsplit("\x1b[2K").next().unwrap_or(shown);
        assert!(shown.starts_with("  "), "a result glued to the bar: {shown:?} in {line:?}");
    }
}

/// `--color`, NO_COLOR and CLICOLOR_FORCE (stdout is a pipe here, so
/// `auto` alone means no colour).
#[test]
fn colour_follows_the_flag_and_the_environment() {
    let coloured = |args: &[&str], env: &[(&str, &str)]| {
        let o = Command::new(env!("CARGO_BIN_EXE_scenarios")).args(args).envs(env.iter().copied()).env_remove("NO_COLOR").env_remove("CLICOLOR_FORCE").envs(env.iter().copied()).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).contains("\x1b[32mPASS")
    };
    let run = ["panic", "--no-timeline"];
    assert!(!coloured(&run, &[]), "auto on a pipe");
    assert!(coloured(&[&run[..], &["--color", "always"]].concat(), &[]));
    assert!(coloured(&["--color", "always", "panic", "--no-timeline"], &[]), "the flag before the scenario");
    assert!(coloured(&run, &[("CLICOLOR_FORCE", "1")]));
    assert!(!coloured(&run, &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]));
    assert!(!coloured(&[&run[..], &["--color", "never"]].concat(), &[("CLICOLOR_FORCE", "1")]));
}

/// Output fits the width it is given: $COLUMNS when stdout is not a
/// terminal (80 by default), the terminal's otherwise.
#[test]
fn output_fits_80_and_uses_200_columns() {
    let widest = |columns: &str, args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_scenarios")).args(args).env("COLUMNS", columns).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).lines().map(|l| l.chars().count()).max().unwrap_or(0)
    };
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/scenarios");
    for args in [&["idle-race"][..], &["explain", "idle-race"], &["all", "--catalogue", examples], &["write-timeout-keepalive"]] {
        let narrow = widest("80", args);
        assert!(narrow <= 80, "{args:?}: {narrow} columns at COLUMNS=80");
        let wide = widest("200", args);
        assert!(wide <= 200, "{args:?}: {wide} columns at COLUMNS=200");
    }
    // The room is used: the timeline's lanes widen.
    assert!(widest("200", &["idle-race"]) > 80);
}

/// A skip is reported, and with --fail-on-skip it fails the command.
#[test]
fn fail_on_skip_turns_a_skip_into_exit_1() {
    let run = |extra: &[&str]| {
        let args = [&["idle-race", "--no-timeline", "--upstream-cmd", "true {addr}"][..], extra].concat();
        Command::new(env!("CARGO_BIN_EXE_scenarios")).args(&args).output().unwrap()
    };
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).contains("SKIP: your server cannot run the deterministic idle race"));
    let o = run(&["--fail-on-skip"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--fail-on-skip"));
}

/// Outside a UTF-8 locale the arrows, box lines and signs are ASCII.
#[test]
fn a_non_utf8_locale_gets_ascii() {
    let run = |locale: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_scenarios")).args(["idle-race"]).env("LC_ALL", locale).output().unwrap();
        assert!(o.status.success());
        String::from_utf8(o.stdout).unwrap()
    };
    let ascii = run("C");
    assert!(ascii.is_ascii(), "{}", ascii.lines().find(|l| !l.is_ascii()).unwrap_or(""));
    assert!(ascii.contains("built-in proxy (nginx 1.22 semantics) ->") && ascii.contains("request -->"), "{ascii}");
    let utf8 = run("C.UTF-8");
    assert!(utf8.contains("──►") && utf8.contains(" → "), "{utf8}");
}

/// The emulated Go's own log ("http: panic serving ...") belongs to the
/// scenario's timeline, not to this program's stderr.
#[test]
fn the_emulators_own_logs_stay_off_stderr() {
    let o = Command::new(env!("CARGO_BIN_EXE_scenarios")).args(["panic", "--no-timeline"]).env_remove("RUST_LOG").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "", "stderr");
    // RUST_LOG still brings it back when asked for.
    let o = Command::new(env!("CARGO_BIN_EXE_scenarios")).args(["panic", "--no-timeline"]).env("RUST_LOG", "upstream_sim=error").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("http: panic serving 127.0.0.1:"), "{}", String::from_utf8_lossy(&o.stderr));
}
