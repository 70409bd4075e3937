//! `scenarios check`: a user's nginx.conf and Go settings → which catalogue
//! mechanisms can give their clients a 502, 504 or a cut response, and the
//! line to change.
//!
//! Nothing here re-derives a rule. For each `upstream`/`location` pair and
//! each mechanism, a *probe* is built: a scenario with the user's exact
//! settings (nginx's resolved values, Go's timeouts) and the trigger of the
//! mechanism (a connection reused as Go's idle limit passes, a handler that
//! outlives WriteTimeout, ...). The oracle predicts the probe, as it
//! predicts every catalogue scenario, from nginx-model and go-model; the
//! verdict is read off the prediction. `--run` runs the same probes on the
//! emulators or the real programs, with the predictions as expectations.

use crate::oracle::{predict_at, Prediction};
use crate::scenario::{Expect, GoSettings, NginxSettings, RequestGroup, Scenario, Workload};
use go_model::{rules, GoVersion, ServerConfig};
use nginx_model::profile::sends_connection_close;
use nginx_model::resolve::{Resolved, ResolvedLocation, ResolvedUpstream};
use serde::Serialize;
use std::time::Duration;

// ---- Go settings -----------------------------------------------------------

/// `--go 'IdleTimeout=5s,WriteTimeout=30s'`: `http.Server` fields by their Go
/// names, values in Go's duration syntax; commas or newlines between them,
/// `#` starts a comment (so a `--go-config` file holds the same text).
pub fn parse_go(spec: &str) -> Result<GoSettings, String> {
    let mut g = GoSettings::default();
    for item in spec.lines().map(|l| l.split('#').next().unwrap_or("")).flat_map(|l| l.split(',')) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        let (k, v) = item.split_once('=').ok_or_else(|| format!("{item:?}: expected Field=value (IdleTimeout=5s)"))?;
        let (k, v) = (k.trim(), v.trim());
        let dur = || crate::scenario::parse_duration(v).map(|_| Some(v.to_string())).map_err(|e| format!("{k}: {e}"));
        match k {
            "IdleTimeout" => g.idle_timeout = dur()?,
            "ReadTimeout" => g.read_timeout = dur()?,
            "WriteTimeout" => g.write_timeout = dur()?,
            "ReadHeaderTimeout" => g.read_header_timeout = dur()?,
            "KeepAlivesEnabled" | "SetKeepAlivesEnabled" => {
                g.keepalives = v.parse().map_err(|_| format!("{k}: true or false, not {v:?}"))?;
            }
            _ => {
                return Err(format!(
                    "unknown Go setting {k:?}: IdleTimeout, ReadTimeout, WriteTimeout, ReadHeaderTimeout, KeepAlivesEnabled"
                ))
            }
        }
    }
    Ok(g)
}

// ---- what the configuration holds ------------------------------------------

/// One `location` that proxies to an upstream, as nginx resolved it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `server_name`, or the listen address when there is none.
    pub server: String,
    pub location: String,
    pub loc: ResolvedLocation,
    pub up: ResolvedUpstream,
}

/// Every proxying location, optionally only those of one server (its
/// `server_name` or a listen address) and one location path.
pub fn targets(r: &Resolved, server: Option<&str>, location: Option<&str>) -> Vec<Target> {
    let mut out = Vec::new();
    for s in &r.servers {
        let label = if s.name.is_empty() { s.listen.first().cloned().unwrap_or_else(|| "*:80".into()) } else { s.name.clone() };
        if server.is_some_and(|want| want != s.name && !s.listen.iter().any(|l| l == want)) {
            continue;
        }
        for l in &s.locations {
            if location.is_some_and(|want| want != l.path) {
                continue;
            }
            if let Some(up) = r.upstreams.get(l.upstream) {
                out.push(Target { server: label.clone(), location: l.path.clone(), loc: l.clone(), up: up.clone() });
            }
        }
    }
    out
}

// ---- findings ---------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Clients get a 502, 504 or a cut response.
    Applies,
    /// It happens, but nginx retries it away (the access log shows it).
    Retried,
    /// The trigger can happen and does no harm with these settings.
    Safe,
    /// The settings rule the trigger out.
    CannotHappen,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Applies => "FAILS",
            Verdict::Retried => "retried",
            Verdict::Safe => "safe",
            Verdict::CannotHappen => "n/a",
        }
    }
}

/// What one request of a probe gets.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub method: String,
    pub status: u16,
    pub upstream_status: Vec<u16>,
    pub handler_runs: u64,
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// The catalogue scenario that shows the mechanism (`scenarios explain`).
    pub mechanism: &'static str,
    pub verdict: Verdict,
    /// The trigger, in the user's numbers.
    pub when: String,
    /// Why it is safe, or cannot happen; what it costs when it applies.
    pub detail: String,
    pub outcomes: Vec<Outcome>,
    /// Concrete changes, one per side ("nginx: ...", "Go: ...").
    pub fix: Vec<String>,
    /// The scenario that was predicted (and `--run` runs).
    #[serde(skip)]
    pub probe: Option<Scenario>,
}

fn go_fmt(d: Duration) -> String {
    go_model::godur::format(d)
}

fn ngx_fmt(d: Duration) -> String {
    nginx_model::time::format(d)
}

/// The Go server as the user wrote it (article scale: no scaling).
fn go_server(g: &GoSettings) -> ServerConfig {
    crate::setup::go_settings_config(g, 1.0)
}

/// The user's resolved location and upstream as scenario settings: every
/// value explicit, so the lab's default profile resolves them back to the
/// same (a `--profile modern` default written out as what it means).
fn nginx_settings(t: &Target) -> NginxSettings {
    let (l, u) = (&t.loc, &t.up);
    let server_params = u
        .peers
        .iter()
        .map(|p| {
            let mut w = vec![format!("weight={}", p.weight), format!("max_fails={}", p.max_fails), format!("fail_timeout={}s", p.fail_timeout.as_secs())];
            if p.backup {
                w.push("backup".into());
            }
            if p.down {
                w.push("down".into());
            }
            w.join(" ")
        })
        .collect();
    NginxSettings {
        keepalive: (u.keepalive.capacity > 0).then_some(u.keepalive.capacity as u32),
        keepalive_timeout: Some(ngx_fmt(u.keepalive.timeout)),
        http_version: Some(if l.http11 { "1.1" } else { "1.0" }.into()),
        clear_connection: !sends_connection_close(&l.headers),
        next_upstream: Some(l.next_upstream.keywords().join(" ")),
        next_upstream_tries: Some(l.next_upstream_tries),
        next_upstream_timeout: l.next_upstream_timeout.map(ngx_fmt),
        connect_timeout: Some(ngx_fmt(l.connect_timeout)),
        read_timeout: Some(ngx_fmt(l.read_timeout)),
        server_params,
        upstream_conf: None,
        location_conf: None,
    }
}

struct Probe {
    mechanism: &'static str,
    when: String,
    warmup: u32,
    gap: Option<Duration>,
    requests: Vec<(&'static str, String, usize)>,
    idle_race: bool,
}

fn probe_scenario(t: &Target, g: &GoSettings, p: &Probe) -> Scenario {
    let mut go = g.clone();
    go.servers = t.up.peers.len().max(1);
    go.idle_race = p.idle_race.then(|| "fin".to_string());
    let text = crate::catalogue::find(p.mechanism).ok();
    Scenario {
        name: format!("check-{}", p.mechanism),
        title: format!("{} on {} {}", p.mechanism, t.server, t.location),
        remedy_of: None,
        mechanism: text.as_ref().map(|s| s.mechanism.clone()).unwrap_or_else(|| p.mechanism.to_string()),
        explanation: text.as_ref().map(|s| s.explanation.clone()).unwrap_or_default(),
        fix: text.as_ref().map(|s| s.fix.clone()).unwrap_or_default(),
        go,
        nginx: nginx_settings(t),
        workload: Workload { warmup: p.warmup, gap: p.gap.map(go_fmt), ..Workload::default() },
        requests: p
            .requests
            .iter()
            .map(|(m, path, body)| RequestGroup { method: m.to_string(), path: path.clone(), body: *body, count: 1, expect: Expect::default() })
            .collect(),
    }
}

/// The probe with the oracle's predictions as its expectations (what
/// `--run` checks), and the outcomes.
fn predicted(mut s: Scenario) -> (Scenario, Vec<Outcome>) {
    let preds: Vec<Prediction> = predict_at(&s, 1.0).unwrap_or_default();
    let mut outcomes = Vec::new();
    for (g, p) in s.requests.iter_mut().zip(&preds) {
        let truncated = p.body.iter().any(|b| b.truncated);
        g.expect = Expect {
            status: Some(p.status),
            upstream_status: Some(p.upstream_status.clone()),
            handler_runs: Some(p.handler_runs),
            truncated: (p.body.len() == 1).then_some(truncated),
            ..Expect::default()
        };
        outcomes.push(Outcome { method: g.method.clone(), status: p.status, upstream_status: p.upstream_status.clone(), handler_runs: p.handler_runs, truncated });
    }
    (s, outcomes)
}

fn verdict_of(outcomes: &[Outcome]) -> Verdict {
    if outcomes.iter().any(|o| o.status >= 500 || o.truncated) {
        Verdict::Applies
    } else if outcomes.iter().any(|o| o.upstream_status.len() > 1 || o.handler_runs > 1) {
        Verdict::Retried
    } else {
        Verdict::Safe
    }
}

fn finding(t: &Target, g: &GoSettings, p: Probe, fix: Vec<String>, safe_detail: String) -> Finding {
    let (probe, outcomes) = predicted(probe_scenario(t, g, &p));
    let verdict = verdict_of(&outcomes);
    let detail = match verdict {
        Verdict::Safe => safe_detail,
        _ => outcomes.iter().map(describe).collect::<Vec<_>>().join("; "),
    };
    let fix = if verdict == Verdict::Safe { Vec::new() } else { fix };
    Finding { mechanism: p.mechanism, verdict, when: p.when, detail, outcomes, fix, probe: Some(probe) }
}

fn describe(o: &Outcome) -> String {
    let ups: Vec<String> = o.upstream_status.iter().map(u16::to_string).collect();
    let cut = if o.truncated { " cut short" } else { "" };
    format!("{} → {}{cut} (\"{}\", handler ran {}×)", o.method, o.status, ups.join(", "), o.handler_runs)
}

fn cannot(mechanism: &'static str, when: String, why: String) -> Finding {
    Finding { mechanism, verdict: Verdict::CannotHappen, when, detail: why, outcomes: Vec::new(), fix: Vec::new(), probe: None }
}

/// A margin below or above a limit: 10 %, at least one second.
fn margin(d: Duration) -> Duration {
    (d / 10).max(Duration::from_secs(1))
}

/// Every mechanism the settings decide, for one location.
pub fn check(t: &Target, g: &GoSettings) -> Vec<Finding> {
    let go = go_server(g);
    let (l, u) = (&t.loc, &t.up);
    let reuse = l.reuse_possible(u) && go.keep_alives;
    let peers = u.peers.len().max(1) as u32;
    let mut out = Vec::new();

    // The idle race: nginx reuses a connection as Go's idle limit closes it.
    let limit = rules::effective_idle_limit(&go);
    let when = match limit {
        Some(d) => format!("a request reuses a connection idle for Go's {} limit", go_fmt(d)),
        None => "a request reuses a connection Go has closed as idle".into(),
    };
    out.push(match (limit, reuse) {
        (None, _) => cannot("idle-race", when, "Go never closes an idle connection (IdleTimeout, ReadTimeout and ReadHeaderTimeout are 0)".into()),
        (_, false) => cannot("idle-race", when, format!("nginx does not keep connections to upstream {} (keepalive, proxy_http_version 1.1 and proxy_set_header Connection \"\" are all needed)", u.name)),
        (Some(limit), true) => {
            let kt = u.keepalive.timeout;
            let fix = vec![
                format!("nginx: keepalive_timeout {}; in upstream {} (below Go's {})", ngx_fmt(limit.saturating_sub(margin(limit)).max(Duration::from_secs(1))), u.name, go_fmt(limit)),
                format!("Go: IdleTimeout: {} (above nginx's keepalive_timeout {})", go_fmt(kt + margin(kt)), ngx_fmt(kt)),
            ];
            let safe = format!("nginx's keepalive_timeout {} closes idle connections before Go's {}", ngx_fmt(kt), go_fmt(limit));
            let p = Probe {
                mechanism: if g.idle_timeout.is_none() { "idle-fallback" } else { "idle-race" },
                when,
                warmup: peers,
                gap: Some(limit),
                requests: vec![("GET", "/ok".into(), 0), ("POST", "/ok".into(), 100)],
                idle_race: true,
            };
            finding(t, g, p, fix, safe)
        }
    });

    // WriteTimeout: Go cuts a slow handler's reply.
    let w = go.write_timeout;
    let r = l.read_timeout;
    if w.is_zero() {
        for m in ["write-timeout", "write-timeout-keepalive", "partial-write"] {
            out.push(cannot(m, "a handler outlives WriteTimeout".into(), "WriteTimeout is 0: Go never cuts a reply".into()));
        }
    } else if w >= r {
        let why = format!("proxy_read_timeout {} ≤ WriteTimeout {}: nginx gives up first, with a 504 it names (\"upstream timed out\")", ngx_fmt(r), go_fmt(w));
        for m in ["write-timeout", "write-timeout-keepalive", "partial-write"] {
            let f = Finding { mechanism: m, verdict: Verdict::Safe, when: format!("a handler outlives WriteTimeout {}", go_fmt(w)), detail: why.clone(), outcomes: Vec::new(), fix: Vec::new(), probe: None };
            out.push(f);
        }
    } else {
        // A handler between the two limits: Go cuts it before nginx would.
        let handler = w + (r - w) / 2;
        let ms = handler.as_millis();
        let when = format!("a handler runs longer than WriteTimeout {} ({} here)", go_fmt(w), go_fmt(handler));
        let fix = vec![
            format!("Go: WriteTimeout: {} (above proxy_read_timeout {}: nginx then answers a slow handler with 504)", go_fmt(r + margin(r)), ngx_fmt(r)),
            format!("nginx: proxy_read_timeout {}; in location {} (below Go's WriteTimeout)", ngx_fmt(w.saturating_sub(margin(w)).max(Duration::from_secs(1))), t.location),
        ];
        let safe = format!("proxy_read_timeout {} ends the wait first: a 504 nginx names (\"upstream timed out\")", ngx_fmt(r));
        let fresh = Probe { mechanism: "write-timeout", when: when.clone(), warmup: 0, gap: None, requests: vec![("GET", format!("/sleep?ms={ms}"), 0)], idle_race: false };
        out.push(finding(t, g, fresh, fix.clone(), safe.clone()));
        if reuse {
            let cached = Probe {
                mechanism: "write-timeout-keepalive",
                when: format!("{when}, on a reused connection"),
                warmup: peers,
                gap: None,
                requests: vec![("GET", format!("/sleep?ms={ms}"), 0)],
                idle_race: false,
            };
            out.push(finding(t, g, cached, fix.clone(), safe.clone()));
        } else {
            out.push(cannot("write-timeout-keepalive", format!("{when}, on a reused connection"), "nginx does not reuse upstream connections here".into()));
        }
        let partial = Probe {
            mechanism: "partial-write",
            when: format!("a streaming handler pauses past WriteTimeout {}", go_fmt(w)),
            warmup: 0,
            gap: None,
            requests: vec![("GET", format!("/partial?bytes=1024&ms={ms}"), 0)],
            idle_race: false,
        };
        out.push(finding(t, g, partial, fix, safe));
    }
    out
}

/// Whether any finding should fail a CI gate.
pub fn gate_fails(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.verdict == Verdict::Applies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nginx_model::{conf, resolve::resolve, Profile};

    fn target(conf_text: &str) -> Target {
        let cfg = conf::parse(conf_text, "t.conf").unwrap();
        let r = resolve(&cfg, Profile::Legacy).unwrap();
        targets(&r, None, None).remove(0)
    }

    const KEEPALIVE: &str = "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; keepalive 16; KT }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; RT } }\n}\n";

    fn conf_with(kt: &str, rt: &str) -> String {
        KEEPALIVE.replace("KT", kt).replace("RT", rt)
    }

    fn find<'a>(f: &'a [Finding], m: &str) -> &'a Finding {
        f.iter().find(|x| x.mechanism == m).unwrap_or_else(|| panic!("no {m} in {f:#?}"))
    }

    #[test]
    fn go_settings_parse_by_go_names() {
        let g = parse_go("IdleTimeout=5s, WriteTimeout=30s\nReadHeaderTimeout=0 # none\n").unwrap();
        assert_eq!((g.idle_timeout.as_deref(), g.write_timeout.as_deref(), g.read_header_timeout.as_deref()), (Some("5s"), Some("30s"), Some("0")));
        assert!(parse_go("IdleTimeout=5").unwrap_err().contains("IdleTimeout"));
        assert!(parse_go("Idle=5s").unwrap_err().contains("unknown Go setting"));
        assert!(parse_go("IdleTimeout").unwrap_err().contains("Field=value"));
    }

    #[test]
    fn the_idle_race_applies_when_nginx_keeps_connections_longer_than_go() {
        let g = parse_go("IdleTimeout=5s").unwrap();
        let f = check(&target(&conf_with("", "")), &g);
        let race = find(&f, "idle-race");
        assert_eq!(race.verdict, Verdict::Applies, "{race:#?}");
        // GET retried (the client sees 200), POST 502.
        assert_eq!(race.outcomes[0].upstream_status, vec![502, 200]);
        assert_eq!((race.outcomes[1].status, race.outcomes[1].handler_runs), (502, 0));
        assert!(race.fix.iter().any(|l| l.contains("keepalive_timeout 4s") && l.contains("upstream app")), "{:?}", race.fix);
        assert!(gate_fails(&f));
        // keepalive_timeout below IdleTimeout: safe, and the gate passes.
        let f = check(&target(&conf_with("keepalive_timeout 4s;", "")), &g);
        let race = find(&f, "idle-race");
        assert_eq!(race.verdict, Verdict::Safe, "{race:#?}");
        assert!(race.detail.contains("4s") && race.fix.is_empty());
        assert!(!gate_fails(&f), "{f:#?}");
    }

    #[test]
    fn without_upstream_keepalive_the_idle_race_cannot_happen() {
        let t = target("events {}\nhttp {\n upstream app { server 127.0.0.1:9000; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n");
        let f = check(&t, &parse_go("IdleTimeout=5s").unwrap());
        assert_eq!(find(&f, "idle-race").verdict, Verdict::CannotHappen);
        assert!(!gate_fails(&f));
    }

    #[test]
    fn write_timeout_below_proxy_read_timeout_gives_502_and_above_it_504() {
        let g = parse_go("IdleTimeout=90s,WriteTimeout=10s").unwrap();
        let f = check(&target(&conf_with("keepalive_timeout 60s;", "proxy_read_timeout 30s;")), &g);
        let wt = find(&f, "write-timeout");
        assert_eq!((wt.verdict, wt.outcomes[0].status), (Verdict::Applies, 502), "{wt:#?}");
        let ka = find(&f, "write-timeout-keepalive");
        assert_eq!(ka.outcomes[0].handler_runs, 2, "{ka:#?}");
        assert!(find(&f, "partial-write").outcomes[0].truncated);
        // WriteTimeout past proxy_read_timeout: nginx's own 504 comes first.
        let g = parse_go("IdleTimeout=90s,WriteTimeout=60s").unwrap();
        let f = check(&target(&conf_with("keepalive_timeout 60s;", "proxy_read_timeout 30s;")), &g);
        let wt = find(&f, "write-timeout");
        assert_eq!(wt.verdict, Verdict::Safe, "{wt:#?}");
        assert!(wt.detail.contains("proxy_read_timeout 30s"), "{wt:#?}");
        let g = parse_go("IdleTimeout=90s").unwrap();
        assert_eq!(find(&check(&target(&conf_with("", "")), &g), "write-timeout").verdict, Verdict::CannotHappen);
    }
}

// ---- report -------------------------------------------------------------------

/// One location's findings as text for an 80-column terminal.
pub fn render(t: &Target, g: &GoSettings, findings: &[Finding]) -> String {
    let mut s = String::new();
    let peers = t.up.peers.len();
    s.push_str(&format!("{} location {} → upstream {} ({} server{})\n", t.server, t.location, t.up.name, peers, if peers == 1 { "" } else { "s" }));
    let go = go_server(g);
    let mut gs = vec![format!("IdleTimeout={}", go_fmt(go.idle_timeout)), format!("ReadTimeout={}", go_fmt(go.read_timeout))];
    gs.push(format!("WriteTimeout={}", go_fmt(go.write_timeout)));
    gs.push(format!("ReadHeaderTimeout={}", go_fmt(go.read_header_timeout)));
    s.push_str(&wrap(&format!("Go {}: {}", if go.go_version == GoVersion::Go120 { "≥ 1.20" } else { "1.19" }, gs.join(" ")), 2));
    let (l, u) = (&t.loc, &t.up);
    s.push_str(&wrap(&format!(
        "nginx: keepalive {} (timeout {}), proxy_http_version {}, proxy_read_timeout {}",
        u.keepalive.capacity,
        ngx_fmt(u.keepalive.timeout),
        if l.http11 { "1.1" } else { "1.0" },
        ngx_fmt(l.read_timeout)
    ), 2));
    for f in findings {
        s.push_str(&format!("\n  {:<8}{}\n", f.verdict.word(), f.mechanism));
        s.push_str(&wrap(&format!("when: {}", f.when), 10));
        s.push_str(&wrap(&f.detail, 10));
        for line in &f.fix {
            s.push_str(&wrap(&format!("fix {line}"), 10));
        }
    }
    s
}

/// Words wrapped to 80 columns, each line indented by `indent`.
fn wrap(text: &str, indent: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && indent + line.chars().count() + 1 + w.chars().count() > 80 {
            out.push_str(&format!("{}{line}\n", " ".repeat(indent)));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push_str(&format!("{}{line}\n", " ".repeat(indent)));
    }
    out
}

#[cfg(test)]
mod render_tests {
    use super::*;

    #[test]
    fn the_report_fits_80_columns() {
        let cfg = nginx_model::conf::parse("events {}\nhttp {\n upstream app { server 127.0.0.1:9000; keepalive 16; }\n server { listen 127.0.0.1:8080; location /api/ { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_read_timeout 30s; } }\n}\n", "t.conf").unwrap();
        let r = nginx_model::resolve::resolve(&cfg, nginx_model::Profile::Legacy).unwrap();
        let t = targets(&r, None, Some("/api/")).remove(0);
        let g = parse_go("IdleTimeout=5s,WriteTimeout=10s").unwrap();
        let text = render(&t, &g, &check(&t, &g));
        for l in text.lines() {
            assert!(l.chars().count() <= 80, "{} columns: {l}", l.chars().count());
        }
        assert!(text.contains("FAILS   idle-race") && text.contains("FAILS   write-timeout"), "{text}");
    }
}
