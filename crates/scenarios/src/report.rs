//! Output: verdict tables for a terminal, JSON and JUnit for CI.

use crate::runner::RunResult;
use crate::verdict::GroupVerdict;
use crate::scenario::Expect;
use std::fmt::Write;
use std::io::IsTerminal;

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

static COLOR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Decides, for the rest of the run, whether output is coloured.
pub fn set_color(choice: Color) {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0");
    let on = match choice {
        Color::Always => true,
        Color::Never => false,
        // https://no-color.org and the CLICOLOR convention.
        Color::Auto => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && (set("CLICOLOR_FORCE") || std::io::stdout().is_terminal()),
    };
    COLOR.store(on, std::sync::atomic::Ordering::Relaxed);
}

static WIDTH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(80);

/// The columns text output fits: the terminal's when stdout is one, else
/// $COLUMNS, else 80.
pub fn detect_width() -> usize {
    if std::io::stdout().is_terminal() {
        if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
            return usize::from(w).max(60);
        }
    }
    std::env::var("COLUMNS").ok().and_then(|c| c.trim().parse().ok()).filter(|&w: &usize| w >= 60).unwrap_or(80)
}

/// Sets the width [`verdict`], [`summary_line`] and [`timeline`] fit.
pub fn set_width(w: usize) {
    WIDTH.store(w.max(60), std::sync::atomic::Ordering::Relaxed);
}

pub fn width() -> usize {
    WIDTH.load(std::sync::atomic::Ordering::Relaxed)
}

/// `s` in at most `w` characters, cut with "…".
pub fn fit(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(w.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Words in lines of at most `w` characters (a word longer than a line
/// is cut into pieces).
pub fn wrap_words(text: &str, w: usize) -> Vec<String> {
    let w = w.max(8);
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > w {
            if !line.is_empty() {
                lines.push(std::mem::take(&mut line));
            }
            let head: String = word.chars().take(w).collect();
            word = word.chars().skip(w).collect();
            lines.push(head);
        }
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > w {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// `text` wrapped to the output width, every line indented by `indent`
/// and the first one starting with `first` (e.g. "expect ").
fn block(first: &str, text: &str, indent: usize) -> String {
    let room = width().saturating_sub(indent + first.chars().count());
    let mut out = String::new();
    for (i, l) in wrap_words(text, room).into_iter().enumerate() {
        let lead = if i == 0 { first.to_string() } else { " ".repeat(first.chars().count()) };
        let _ = writeln!(out, "{}{lead}{l}", " ".repeat(indent));
    }
    out
}

static ASCII: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the locale cannot show the arrows and box lines: the first of
/// LC_ALL, LC_CTYPE, LANG that is set does not name UTF-8 (unset: the C
/// locale, ASCII).
pub fn locale_is_ascii() -> bool {
    let set = ["LC_ALL", "LC_CTYPE", "LANG"].iter().find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
    !set.is_some_and(|l| {
        let l = l.to_ascii_lowercase();
        l.contains("utf-8") || l.contains("utf8")
    })
}

/// Sets whether output is written in ASCII only (see [`glyphs`]).
pub fn set_ascii(on: bool) {
    ASCII.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// The output's arrows, box lines and signs in ASCII when the locale is
/// not UTF-8 (`set_ascii`); as they are otherwise.
pub fn glyphs(s: &str) -> String {
    if !ASCII.load(std::sync::atomic::Ordering::Relaxed) {
        return s.to_string();
    }
    const MAP: [(&str, &str); 21] = [
        ("◄══", "<=="), ("══►", "==>"), ("◄──", "<--"), ("──►", "-->"), ("◄", "<"), ("►", ">"), ("→", "->"), ("←", "<-"),
        ("─", "-"), ("═", "="), ("✗", "x"), ("×", "x"), ("…", "..."), ("≤", "<="), ("≥", ">="), ("±", "+-"), ("≈", "~"),
        ("—", "-"), ("–", "-"), ("µ", "u"), ("·", "."),
    ];
    let mut out = s.to_string();
    for (from, to) in MAP {
        out = out.replace(from, to);
    }
    // Anything else outside ASCII (names in a user's files stay readable
    // as '?' rather than as mojibake).
    out.chars().map(|c| if c.is_ascii() { c } else { '?' }).collect()
}

/// A scenario's prose (explanation, fix) under a label, wrapped to the
/// output width.
pub fn paragraph(label: &str, text: &str) -> String {
    glyphs(&block(label, text, 0))
}

fn paint(ok: bool, s: &str) -> String {
    if COLOR.load(std::sync::atomic::Ordering::Relaxed) {
        format!("\x1b[{}m{s}\x1b[0m", if ok { "32" } else { "1;31" })
    } else {
        s.to_string()
    }
}

pub fn pass_word(ok: bool) -> String {
    paint(ok, if ok { "PASS" } else { "FAIL" })
}

/// An expectation in a few words: `200 "502, 200" handler×1 [premature-close]`.
pub fn expect_text(e: &Expect) -> String {
    let mut parts = Vec::new();
    if let Some(s) = e.status {
        parts.push(s.to_string());
    }
    if let Some(s) = &e.status_in {
        parts.push(format!("{s:?}"));
    }
    if let Some(u) = &e.upstream_status {
        parts.push(format!("\"{}\"", u.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")));
    }
    if let Some(h) = e.handler_runs {
        parts.push(format!("handler×{h}"));
    }
    if let Some(errors) = e.errors.as_ref().filter(|v| !v.is_empty()) {
        parts.push(format!("[{}]", errors.join(",")));
    }
    if let Some(b) = e.body_bytes {
        parts.push(format!("{b} B"));
    }
    if e.truncated == Some(true) {
        parts.push("truncated".into());
    }
    if let Some(l) = &e.min_latency {
        parts.push(format!("≥ {l}"));
    }
    parts.join(" ")
}

/// What a request group got, in the words of [`expect_text`]:
/// `18×200 2×502 "502" handler×1 [premature-close] retried×2`.
pub fn got_text(r: &RunResult, v: &GroupVerdict) -> String {
    let obs: Vec<_> = r.observations.iter().filter(|o| o.group == v.group).collect();
    let statuses = v.statuses.iter().map(|(s, n)| format!("{n}×{s}")).collect::<Vec<_>>().join(" ");
    let upstream = obs.first().map(|o| o.upstream_status.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")).unwrap_or_default();
    let errors = obs.first().map(|o| o.errors.join(",")).unwrap_or_default();
    // Per request, collapsed when every request saw the same.
    let mut runs: Vec<Option<u64>> = obs.iter().map(|o| o.handler_runs).collect();
    runs.dedup();
    // "?": the upstream cannot tell (a user's own server); not checked.
    let show = |r: &Option<u64>| r.map_or("?".to_string(), |n| n.to_string());
    let runs = if runs.len() == 1 { show(&runs[0]) } else { format!("[{}]", runs.iter().map(show).collect::<Vec<_>>().join(", ")) };
    format!(
        "{statuses} \"{upstream}\" handler×{runs}{}{}",
        if errors.is_empty() { String::new() } else { format!(" [{errors}]") },
        if v.retried > 0 { format!(" retried×{}", v.retried) } else { String::new() },
    )
}

fn group_line(r: &RunResult, v: &GroupVerdict) -> String {
    let got = got_text(r, v);
    let target = fit(&v.path, width().saturating_sub(22));
    let mut line = format!("  {}  {:<5}{target} ×{}\n", pass_word(v.passed), v.method, v.count);
    line.push_str(&block("expect ", &expect_text(&v.expect), 8));
    line.push_str(&block("got    ", &got, 8));
    for m in v.mismatches.iter().take(5) {
        line.push_str(&block("✗ ", m, 8));
    }
    if v.mismatches.len() > 5 {
        let _ = writeln!(line, "        … {} more", v.mismatches.len() - 5);
    }
    for u in &v.unchecked {
        line.push_str(&block("not checked: ", u, 8));
    }
    line.trim_end_matches('\n').to_string()
}

/// Expectations no group of the run could check.
fn unchecked(r: &RunResult) -> usize {
    r.verdicts.iter().map(|v| v.unchecked.len()).sum()
}

/// "built-in proxy (nginx 1.22 semantics) → real Go, scale 0.02", with the
/// programs that ran ("real nginx nginx/1.22.1 (/usr/sbin/nginx), …").
pub fn backends(r: &RunResult) -> String {
    let with = |desc: &str, program: &Option<String>| match program {
        Some(p) => format!("{desc} {p}"),
        None => desc.to_string(),
    };
    format!("{} → {}, scale {}", with(r.proxy.description(), &r.proxy_program), with(r.upstream.description(), &r.upstream_program), r.scale)
}

/// A run's timeline, with its backends' names over the lanes.
pub fn timeline(r: &RunResult) -> String {
    glyphs(&crate::timeline::render(&r.timeline, r.proxy.name(), r.upstream.name(), width()))
}

/// The verdict block of one run.
pub fn verdict(r: &RunResult) -> String {
    let mut s = block("", &format!("{} — {}", r.scenario, r.title), 0);
    s.push_str(&block("", &backends(r), 2));
    if let Some(why) = &r.skipped {
        let _ = writeln!(s, "  SKIP: {why}");
        return glyphs(&s);
    }
    for v in &r.verdicts {
        let _ = writeln!(s, "{}", group_line(r, v));
    }
    let n = r.observations.len();
    let e502 = r.count_status(502);
    let _ = writeln!(s, "  {}  {n} requests, {e502} × 502 at the client, {:.0} ms", pass_word(r.passed), r.wall_ms);
    glyphs(&s)
}

/// One line per run, for `all`.
pub fn summary_line(r: &RunResult) -> String {
    if let Some(why) = &r.skipped {
        let head = format!("  SKIP  {:<32} ", r.scenario);
        let room = width().saturating_sub(head.chars().count());
        return glyphs(&format!("{head}{}", fit(why, room)));
    }
    let n = r.observations.len();
    let u = unchecked(r);
    let head = format!("  {}  {:<32} {:>3} req  {:>3} × 502  {:>6.0} ms  ", "PASS", r.scenario, n, r.count_status(502), r.wall_ms);
    let room = width().saturating_sub(head.chars().count());
    let title = format!("{}{}", r.title, if u > 0 { format!(" ({u} expectation(s) not checked)") } else { String::new() });
    // The words are measured before the colour codes go in.
    glyphs(&(head.replacen("PASS", &pass_word(r.passed), 1) + &fit(&title, room)))
}

pub use crate::document::SCHEMA_VERSION;

/// The JSON report of runs (`run`, `all`, `conformance`).
pub fn json(results: &[RunResult], wall_ms: f64) -> serde_json::Result<String> {
    use crate::document::{Body, Document, Runs};
    Document::new(Body::Runs(Runs::new(results, wall_ms))).to_json()
}

/// This machine's name, for JUnit's `hostname` (empty when unknown).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// A JUnit XML report: one `<testsuite>` per backend pair, the backends,
/// programs, scale and tool version as properties, a timestamp and the
/// host; a failed run's verdict and timeline in its `<system-out>`, a
/// skip as `<skipped>` with the reason (never a pass).
pub fn junit(results: &[RunResult], suite: &str) -> String {
    use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
    let now = chrono::Local::now().fixed_offset();
    // The timestamp goes on each <testsuite>: junit-10.xsd has none on the root.
    let mut report = Report::new(suite);
    let mut pairs: Vec<(String, Vec<&RunResult>)> = Vec::new();
    for r in results {
        let pair = format!("{}→{}", r.proxy.name(), r.upstream.name());
        match pairs.iter_mut().find(|(p, _)| *p == pair) {
            Some((_, v)) => v.push(r),
            None => pairs.push((pair, vec![r])),
        }
    }
    let host = hostname();
    for (pair, runs) in pairs {
        let mut ts = TestSuite::new(format!("{suite}: {pair}"));
        ts.set_timestamp(now);
        ts.set_time(std::time::Duration::from_secs_f64(runs.iter().map(|r| r.wall_ms).sum::<f64>() / 1e3));
        if !host.is_empty() {
            ts.extra.insert("hostname".into(), host.clone().into());
        }
        let first = runs[0];
        let programs = |p: &Option<String>, fallback: &str| p.clone().unwrap_or_else(|| fallback.to_string());
        ts.add_properties([
            Property::new("tool.version", env!("CARGO_PKG_VERSION")),
            Property::new("scale", first.scale.to_string()),
            Property::new("proxy", first.proxy.description()),
            Property::new("upstream", first.upstream.description()),
            Property::new("proxy.program", programs(&first.proxy_program, "built-in")),
            Property::new("upstream.program", programs(&first.upstream_program, "built-in")),
        ]);
        for r in runs {
            let status = if let Some(why) = &r.skipped {
                let mut s = TestCaseStatus::skipped();
                s.set_message(why.as_str());
                s
            } else if r.passed {
                TestCaseStatus::success()
            } else {
                let msg: Vec<String> = r.verdicts.iter().flat_map(|v| v.mismatches.iter().map(move |m| format!("{} {}: {m}", v.method, v.path))).collect();
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(msg.first().cloned().unwrap_or_else(|| "failed".into()));
                s.set_type("expectation");
                s.set_description(msg.join("\n"));
                s
            };
            let mut tc = TestCase::new(r.scenario.as_str(), status);
            tc.set_classname(format!("{:?}-{:?}", r.proxy, r.upstream).to_lowercase());
            tc.set_time(std::time::Duration::from_secs_f64(r.wall_ms / 1e3));
            if r.failed() {
                tc.set_system_out(format!("{}\n{}", verdict(r), timeline(r)));
            } else if unchecked(r) > 0 {
                let notes: Vec<String> = r.verdicts.iter().flat_map(|v| v.unchecked.iter().map(move |u| format!("{} {}: not checked: {u}", v.method, v.path))).collect();
                tc.set_system_out(notes.join("\n"));
            }
            ts.add_test_case(tc);
        }
        report.add_test_suite(ts);
    }
    junit_text(&report)
}

/// A JUnit report as text that the common JUnit schema (Jenkins xUnit's
/// junit-10.xsd, tests/data/) accepts. quick-junit always writes a
/// `skipped` count on the root `<testsuites>`, which that schema does not
/// allow there; each `<testsuite>` keeps its own `skipped` count, so the
/// root's is dropped.
pub(crate) fn junit_text(report: &quick_junit::Report) -> String {
    match report.to_string() {
        Ok(xml) => drop_root_skipped(&xml),
        Err(e) => format!("<!-- cannot write the JUnit report: {e} -->\n"),
    }
}

/// `xml` without the `skipped="N"` attribute of its `<testsuites>` tag.
fn drop_root_skipped(xml: &str) -> String {
    let Some(start) = xml.find("<testsuites") else { return xml.to_string() };
    let end = start + xml[start..].find('>').unwrap_or(xml.len() - start);
    let tag = &xml[start..end];
    let Some(at) = tag.find(" skipped=\"") else { return xml.to_string() };
    let value_end = tag[at + 10..].find('"').map_or(tag.len(), |i| at + 10 + i + 1);
    format!("{}{}{}", &xml[..start + at], &tag[value_end..], &xml[end..])
}

/// A Go duration as Go source: `5 * time.Second`, `300 * time.Millisecond`.
fn go_expr(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(60_000) && ms >= 60_000 {
        format!("{} * time.Minute", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} * time.Second", ms / 1000)
    } else {
        format!("{ms} * time.Millisecond")
    }
}

/// A scenario's Go side as the `http.Server` it describes (article scale).
pub fn go_snippet(s: &crate::scenario::Scenario) -> String {
    let c = crate::setup::go_settings_config(&s.go, 1.0);
    let fields = [("ReadTimeout", c.read_timeout), ("ReadHeaderTimeout", c.read_header_timeout), ("WriteTimeout", c.write_timeout), ("IdleTimeout", c.idle_timeout)];
    let set: Vec<_> = fields.iter().filter(|(_, d)| !d.is_zero()).collect();
    let mut out = String::new();
    if set.is_empty() {
        out.push_str("srv := &http.Server{Handler: mux} // no timeouts: Go's defaults\n");
    } else {
        // Aligned as gofmt aligns a composite literal's values.
        let w = set.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max("Handler".len()) + 2;
        out.push_str("srv := &http.Server{\n");
        let _ = writeln!(out, "    {:<w$}mux,", "Handler:");
        for (name, d) in set {
            let _ = writeln!(out, "    {:<w$}{},", format!("{name}:"), go_expr(*d));
        }
        out.push_str("}\n");
    }
    if !c.keep_alives {
        out.push_str("srv.SetKeepAlivesEnabled(false)\n");
    }
    let _ = writeln!(out, "// {}", if c.go_version == go_model::GoVersion::Go120 { "Go 1.20 or later" } else { "Go 1.19" });
    out
}

/// A scenario's nginx side as the nginx.conf lines both proxies run
/// (article scale; the lab's addresses).
pub fn nginx_snippet(s: &crate::scenario::Scenario) -> String {
    let addrs: Vec<std::net::SocketAddr> = (0..s.go.servers.max(1)).map(|i| std::net::SocketAddr::from(([127, 0, 0, 1], 8080 + i as u16))).collect();
    let cfg = crate::setup::nginx_config(s, &addrs, ([127, 0, 0, 1], 80).into(), 1.0);
    let text = cfg.render();
    // From the upstream block on, without the http block's braces.
    let from = text.find("    upstream ").unwrap_or(0);
    let body = text[from..].trim_end().trim_end_matches('}');
    body.lines().map(|l| l.strip_prefix("    ").unwrap_or(l)).collect::<Vec<_>>().join("\n").trim_end().to_string() + "\n"
}

/// The settings that make a scenario, in a few words: "IdleTimeout 5s,
/// keepalive 16, HTTP/1.1".
pub fn key_settings(s: &crate::scenario::Scenario) -> String {
    let c = crate::setup::go_settings_config(&s.go, 1.0);
    let mut parts = Vec::new();
    for (name, d) in [("ReadTimeout", c.read_timeout), ("ReadHeaderTimeout", c.read_header_timeout), ("WriteTimeout", c.write_timeout), ("IdleTimeout", c.idle_timeout)] {
        if !d.is_zero() {
            parts.push(format!("{name} {}", go_model::godur::format(d)));
        }
    }
    if !c.keep_alives {
        parts.push("keep-alives off".into());
    }
    if let Some(b) = s.go.backlog {
        parts.push(format!("listen backlog {b}"));
    }
    if let Some(n) = s.go.fd_limit {
        parts.push(format!("fd limit {n}"));
    }
    if let Some(v) = &s.nginx.version {
        parts.push(format!("nginx {v} defaults"));
    }
    if s.nginx.localhost {
        parts.push("upstream localhost ([::1], 127.0.0.1)".into());
    }
    if let Some((lo, hi)) = s.local_port_range() {
        parts.push(format!("{} local ports", u32::from(hi - lo) + 1));
    }
    if s.nginx.auth_request.is_some() {
        parts.push(format!("auth_request (length {})", if s.nginx.auth_clear_length { "cleared" } else { "kept" }));
    }
    let r = nginx_model::resolve::resolve(&crate::setup::nginx_config(s, &[([127, 0, 0, 1], 8080).into()], ([127, 0, 0, 1], 80).into(), 1.0), s.nginx_profile());
    if let Ok(r) = r {
        let u = &r.upstreams[0];
        if u.keepalive.capacity > 0 {
            parts.push(format!("keepalive {}/{}", u.keepalive.capacity, nginx_model::time::format(u.keepalive.timeout)));
        }
        if let Some(l) = r.servers.first().and_then(|s| s.locations.first()) {
            use nginx_model::resolve::defaults;
            if l.connect_timeout != defaults::PROXY_TIMEOUT {
                parts.push(format!("proxy_connect_timeout {}", nginx_model::time::format(l.connect_timeout)));
            }
            if l.read_timeout != defaults::PROXY_TIMEOUT {
                parts.push(format!("proxy_read_timeout {}", nginx_model::time::format(l.read_timeout)));
            }
            if l.next_upstream != defaults::NEXT_UPSTREAM {
                parts.push(format!("next_upstream {}", l.next_upstream.keywords().join(" ")));
            }
        }
    }
    if s.workload.action != labkit::action::Action::None {
        let action = serde_json::to_value(s.workload.action).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        parts.push(format!("action {action}"));
    }
    // The handlers, when they are the point (not the plain /ok).
    let mut paths: Vec<String> = s.requests.iter().filter(|r| r.path != "/ok").map(|r| format!("{} {}", r.method, r.path)).collect();
    paths.dedup();
    parts.extend(paths);
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_roots_skipped_count_is_dropped() {
        let xml = "<?xml version=\"1.0\"?>\n<testsuites name=\"s\" tests=\"2\" skipped=\"1\" failures=\"0\">\n<testsuite name=\"t\" skipped=\"1\">\n";
        assert_eq!(drop_root_skipped(xml), "<?xml version=\"1.0\"?>\n<testsuites name=\"s\" tests=\"2\" failures=\"0\">\n<testsuite name=\"t\" skipped=\"1\">\n");
        // Nothing to drop: unchanged.
        let plain = "<testsuites name=\"s\">\n<testsuite skipped=\"3\">";
        assert_eq!(drop_root_skipped(plain), plain);
    }
}
