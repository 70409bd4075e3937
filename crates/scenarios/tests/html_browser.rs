//! The HTML report in a real browser: `scenarios all --html --json` on the
//! built-in emulators, the page rendered by headless Chromium (Debian's
//! `chromium`), and its DOM, as the browser built it, checked against the
//! JSON report of the same run: one timeline diagram per run that ran, and
//! in each diagram one FIN/RST arrow per FIN/RST event of that run's
//! timeline. A screenshot of the page is kept as `target/report.png`.
//!
//! Without Chromium the trial is ignored with the reason; where
//! BADGATEWAY_REQUIRE_CHROMIUM=1 (`.ci/run`) it fails instead, as
//! `harness::require` does for nginx and Go.

mod tools;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

const REQUIRE: &str = "BADGATEWAY_REQUIRE_CHROMIUM";
/// `scenarios all` on the emulators takes seconds; the bound is for a stuck run.
const RUN_LIMIT: Duration = Duration::from_secs(300);
const BROWSER_LIMIT: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let trials = vec![Trial::ignorable_test("html_browser::chromium_renders_one_diagram_per_run_and_every_fin_rst", renders_in_chromium)];
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// $BADGATEWAY_CHROMIUM, else chromium on PATH or in /usr/bin.
fn chromium() -> Result<PathBuf, String> {
    tools::find("BADGATEWAY_CHROMIUM", &["chromium", "chromium-browser"], "Debian: apt-get install chromium")
}

fn missing(why: String) -> Result<Completion, Failed> {
    tools::missing(REQUIRE, why)
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Headless Chromium with the flags that work on a closed network, a
/// fresh profile, bounded.
fn browser(bin: &Path, profile: &Path, args: &[String]) -> Result<std::process::Output, Failed> {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args);
    harness::child::run_bounded(cmd, BROWSER_LIMIT, 64 << 20).map_err(|e| format!("chromium {args:?}: {e}").into())
}

fn renders_in_chromium() -> Result<Completion, Failed> {
    let bin = match chromium() {
        Ok(b) => b,
        Err(why) => return missing(why),
    };
    let dir = Scratch(std::env::temp_dir().join(format!("badgateway-lab-html-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0)?;
    // Does this browser start here at all? If not, say why (never a pass).
    let version = browser(&bin, &dir.0.join("profile-v"), &["--version".into()]);
    match &version {
        Ok(o) if o.status.success() => {}
        Ok(o) => return missing(format!("{} cannot run: {:?} {}", bin.display(), o.status, String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) => return missing(format!("{} cannot run: {}", bin.display(), e.message().unwrap_or("?"))),
    }

    let (html, json) = (dir.0.join("report.html"), dir.0.join("report.json"));

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scenarios"));
    cmd.arg("all").arg("--html").arg(&html).arg("--json").arg(&json).env("NO_COLOR", "1");
    let out = harness::child::run_bounded(cmd, RUN_LIMIT, 16 << 20).map_err(|e| format!("scenarios all: {e}"))?;
    // 1: a verdict failed (shown in the report); 2 or a signal: no report.
    if !matches!(out.status.code(), Some(0 | 1)) {
        return Err(format!("scenarios all: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr)).into());
    }
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json)?)?;

    let url = format!("file://{}", html.display());
    let dump = browser(&bin, &dir.0.join("profile-dom"), &["--dump-dom".into(), url.clone()])?;
    let dom = String::from_utf8_lossy(&dump.stdout).into_owned();
    if !dump.status.success() || !dom.contains("</html>") {
        return Err(format!("chromium --dump-dom: {:?}, {} bytes\nstderr: {}", dump.status, dom.len(), String::from_utf8_lossy(&dump.stderr)).into());
    }

    // The runs as the JSON tells them, and FIN/RST events from their
    // timelines' typed fields (`kind` close, `close` FIN|RST), as a CI
    // consumer reads them (not by the renderer's code); the text for humans
    // must say the same.
    let fin_rst = regex::Regex::new(r"◄══\s*(FIN|RST)").unwrap();
    let runs = report["runs"].as_array().ok_or("the JSON report has no runs")?;
    let mut expected = Vec::new();
    let mut problems = Vec::new();
    for r in runs {
        let ran = r["skipped"].is_null();
        let name = r["scenario"].as_str().unwrap_or_default().to_string();
        let timeline = r["timeline"].as_array().map_or(&[][..], Vec::as_slice);
        let typed: Vec<&str> = timeline
            .iter()
            .filter(|e| e["kind"] == "close")
            .filter_map(|e| e["close"].as_str())
            .filter(|c| matches!(*c, "FIN" | "RST"))
            .collect();
        let worded: Vec<&str> =
            timeline.iter().filter_map(|e| fin_rst.captures(e["text"].as_str()?)).map(|c| c.get(1).map_or("", |m| m.as_str())).collect();
        if typed != worded {
            problems.push(format!("{name}: typed closes {typed:?}, the text says {worded:?}"));
        }
        expected.push((name, ran, typed.len()));
    }
    let total: usize = expected.iter().map(|e| e.2).sum();
    if total == 0 {
        return Err("no FIN or RST event in the whole catalogue's timelines: nothing to check".into());
    }

    // The DOM, section by section (one per run, in report order).
    let svg = regex::Regex::new(r#"<svg[^>]*\bclass="timeline""#).unwrap();
    let close = regex::Regex::new(r#"\bdata-close="(FIN|RST)""#).unwrap();
    let sections: Vec<&str> = dom.split("<section class=\"run").skip(1).collect();
    if sections.len() != expected.len() {
        return Err(format!("{} run sections in the DOM, {} runs in the JSON", sections.len(), expected.len()).into());
    }
    let (mut diagrams, mut arrows) = (0, 0);
    for (sec, (name, ran, closes)) in sections.iter().zip(&expected) {
        if !sec.contains(&format!("data-scenario=\"{name}\"")) {
            problems.push(format!("section out of order: expected {name}"));
        }
        let d = svg.find_iter(sec).count();
        let a = close.find_iter(sec).count();
        diagrams += d;
        arrows += a;
        if d != usize::from(*ran) {
            problems.push(format!("{name}: {d} diagrams, expected {}", usize::from(*ran)));
        }
        if a != *closes {
            problems.push(format!("{name}: {a} FIN/RST arrows in the DOM, {closes} FIN/RST events in the JSON"));
        }
    }
    if dom.contains("<script") {
        problems.push("the page has a script".into());
    }

    // The artefact: a screenshot of the top of the page.
    let png = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap_or(Path::new(".")).join("report.png");
    let _ = std::fs::remove_file(&png);
    let shot = browser(&bin, &dir.0.join("profile-png"), &[format!("--screenshot={}", png.display()), "--window-size=1400,2400".into(), url])?;
    let bytes = std::fs::read(&png).unwrap_or_default();
    if !bytes.starts_with(b"\x89PNG") || bytes.len() < 10_000 {
        problems.push(format!("no screenshot at {} ({} bytes; chromium {:?}: {})", png.display(), bytes.len(), shot.status, String::from_utf8_lossy(&shot.stderr).trim()));
    }

    if !problems.is_empty() {
        return Err(problems.join("\n").into());
    }
    eprintln!(
        "html_browser: {} runs, {diagrams} diagrams, {arrows} FIN/RST arrows in the DOM = {total} events in the JSON; screenshot {} ({} bytes)",
        expected.len(),
        png.display(),
        bytes.len()
    );
    Ok(Completion::Completed)
}
