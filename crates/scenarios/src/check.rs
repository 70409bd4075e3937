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

use crate::oracle::predict_at;
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
            // The process's, not http.Server's: systemd's name for RLIMIT_NOFILE.
            "LimitNOFILE" => {
                let n: u32 = v.parse().map_err(|_| format!("{k}: a number of descriptors, not {v:?}"))?;
                if n <= go_model::rules::STARTUP_FDS {
                    return Err(format!("{k}: {n}: Go holds {} descriptors before its first connection", go_model::rules::STARTUP_FDS));
                }
                g.fd_limit = Some(n);
            }
            "KeepAlivesEnabled" | "SetKeepAlivesEnabled" => {
                g.keepalives = v.parse().map_err(|_| format!("{k}: true or false, not {v:?}"))?;
            }
            _ => {
                return Err(format!(
                    "unknown Go setting {k:?}: IdleTimeout, ReadTimeout, WriteTimeout, ReadHeaderTimeout, KeepAlivesEnabled, LimitNOFILE"
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
    /// The location `auth_request` sends its subrequest to, when it
    /// proxies (`None` without `auth_request`).
    pub auth: Option<AuthTarget>,
}

/// An `auth_request` subrequest's destination.
#[derive(Debug, Clone)]
pub enum AuthTarget {
    /// A proxying location, and its upstream.
    Proxied { uri: String, loc: Box<ResolvedLocation>, up: Box<ResolvedUpstream> },
    /// A location that answers itself (`return`), or none (404).
    Answered { uri: String },
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
            let auth = l.auth_request.as_ref().map(|uri| match s.route(uri.split('?').next().unwrap_or(uri)) {
                Some(nginx_model::resolve::Route::Proxy(a)) if a.pass_script.is_none() => match r.upstreams.get(a.upstream) {
                    Some(au) => AuthTarget::Proxied { uri: uri.clone(), loc: Box::new(a.clone()), up: Box::new(au.clone()) },
                    None => AuthTarget::Answered { uri: uri.clone() },
                },
                _ => AuthTarget::Answered { uri: uri.clone() },
            });
            if let Some(up) = r.upstreams.get(l.upstream) {
                out.push(Target { server: label.clone(), location: l.path.clone(), loc: l.clone(), up: up.clone(), auth });
            }
        }
    }
    out
}

// ---- findings ---------------------------------------------------------------

/// What sets a mechanism off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Ordinary traffic, given these settings (a connection reused at Go's
    /// idle limit, a handler between WriteTimeout and proxy_read_timeout):
    /// the settings are the cause, and the CI gate fails on it.
    Settings,
    /// Your handlers (a panic, a handler slower than proxy_read_timeout).
    Code,
    /// A deploy or a crash of the Go process.
    Deploy,
    /// More connections than Go accepts (a full accept queue).
    Load,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Ordinary traffic gives clients a 502, 504 or a cut response.
    Applies,
    /// When the code, a deploy or load sets it off, clients get a 502, 504
    /// or a cut response (`--strict` fails the gate on these too).
    Exposed,
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
            Verdict::Exposed => "exposed",
            Verdict::Retried => "retried",
            Verdict::Safe => "safe",
            Verdict::CannotHappen => "n/a",
        }
    }
}

/// What one request of a probe gets.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Outcome {
    pub method: String,
    pub status: u16,
    pub upstream_status: Vec<u16>,
    pub handler_runs: u64,
    /// The client gets less body than the handler wrote, whether or not
    /// the response's framing shows it.
    pub truncated: bool,
    /// Cut, and the response still ends as if complete (HTTP/1.0 upstream:
    /// the close is the end of the body), with nothing in error.log.
    pub silently: bool,
    /// How long the client waits for it, in seconds (the model's clock).
    pub latency_s: f64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Finding {
    /// The catalogue scenario that shows the mechanism (`scenarios explain`).
    pub mechanism: &'static str,
    /// Its mechanism id, as `diagnose` names it.
    pub mechanism_id: String,
    pub trigger: Trigger,
    pub verdict: Verdict,
    /// The trigger, in the user's numbers.
    pub when: String,
    /// Why it is safe, or cannot happen; what it costs when it applies.
    pub detail: String,
    pub outcomes: Vec<Outcome>,
    /// Concrete changes, one per side ("nginx: ...", "Go: ...").
    pub fix: Vec<String>,
    /// The scenarios that were predicted, one per request (and `--run`
    /// runs them).
    #[serde(skip)]
    pub probes: Vec<Scenario>,
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
        // The short key writes proxy_buffer_size alone, which nginx refuses
        // past 14k with the default proxy_buffers: a larger one stays at the
        // default in the probes (the too-big-header probe's cookie is the
        // user's buffer size, too big either way).
        buffer_size: (2 * l.buffer_size.max(4096) <= 7 * 4096).then(|| l.buffer_size.to_string()),
        server_params,
        ..NginxSettings::default()
    }
}

/// One request of a probe.
struct Req {
    method: &'static str,
    path: String,
    body: usize,
    /// The body the handler writes in full, when a cut is to be looked for.
    full: Option<u64>,
}

fn get(path: impl Into<String>) -> Req {
    Req { method: "GET", path: path.into(), body: 0, full: None }
}

fn post(path: impl Into<String>, body: usize) -> Req {
    Req { method: "POST", path: path.into(), body, full: None }
}

struct Probe {
    mechanism: &'static str,
    trigger: Trigger,
    when: String,
    warmup: u32,
    warmup_concurrent: bool,
    gap: Option<Duration>,
    action: labkit::action::Action,
    requests: Vec<Req>,
    /// Requests sent first, in the same trial, whose outcome is not the
    /// finding's (the errors that mark servers down before the probe).
    before: Vec<Req>,
    idle_race: bool,
    shutdown_race: bool,
    backlog: Option<u32>,
    /// The upstream's `localhost` as nginx expands it ([::1], then 127.0.0.1).
    localhost: bool,
    /// nginx's host's `ip_local_port_range` for the probe.
    port_range: Option<String>,
    /// `[nginx] auth_request` and `auth_clear_length` for the probe.
    auth: Option<(String, bool)>,
}

impl Probe {
    fn new(mechanism: &'static str, trigger: Trigger, when: String, requests: Vec<Req>) -> Probe {
        Probe {
            mechanism,
            trigger,
            when,
            warmup: 0,
            warmup_concurrent: false,
            gap: None,
            action: labkit::action::Action::None,
            requests,
            before: Vec::new(),
            idle_race: false,
            shutdown_race: false,
            backlog: None,
            localhost: false,
            port_range: None,
            auth: None,
        }
    }
}

/// The catalogue scenario's mechanism id (the scenario's own name if the
/// catalogue cannot be read, which its tests rule out).
fn mechanism_id(name: &str) -> String {
    catalogued(name).map_or_else(|| name.to_string(), |s| s.mechanism.clone())
}

/// The built-in catalogue's scenario of that name (read once).
fn catalogued(name: &str) -> Option<&'static Scenario> {
    static ALL: std::sync::OnceLock<Vec<Scenario>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| crate::catalogue::all().unwrap_or_default()).iter().find(|s| s.name == name)
}

/// The probe for one request: each request of a finding is its own trial,
/// from a fresh start (one request's failures would otherwise mark servers
/// down, `max_fails`, for the next).
fn probe_scenario(t: &Target, g: &GoSettings, p: &Probe, r: &Req) -> Scenario {
    let mut go = g.clone();
    go.servers = t.up.peers.len().max(1);
    go.idle_race = p.idle_race.then(|| "fin".to_string());
    go.shutdown_race = p.shutdown_race.then(|| "fin".to_string());
    go.backlog = p.backlog;
    if p.action == labkit::action::Action::HoldConnections {
        // The probe's premise: the held connections fill the limit.
        go.fd_limit = Some(go_model::rules::STARTUP_FDS + labkit::action::HELD_CONNECTIONS as u32);
    }
    let text = catalogued(p.mechanism);
    Scenario {
        name: format!("check-{}-{}", p.mechanism, r.method.to_lowercase()),
        title: format!("{} ({}) on {} {}", p.mechanism, r.method, t.server, t.location),
        remedy_of: None,
        mechanism: text.as_ref().map(|s| s.mechanism.clone()).unwrap_or_else(|| p.mechanism.to_string()),
        explanation: text.as_ref().map(|s| s.explanation.clone()).unwrap_or_default(),
        fix: text.as_ref().map(|s| s.fix.clone()).unwrap_or_default(),
        go,
        nginx: NginxSettings {
            localhost: p.localhost,
            ip_local_port_range: p.port_range.clone(),
            auth_request: p.auth.as_ref().map(|(path, _)| path.clone()),
            auth_clear_length: p.auth.as_ref().is_some_and(|(_, cleared)| *cleared),
            ..nginx_settings(t)
        },
        workload: Workload { warmup: p.warmup, warmup_concurrent: p.warmup_concurrent, gap: p.gap.map(go_fmt), action: p.action, ..Workload::default() },
        requests: p.before.iter().chain(std::iter::once(r)).map(|r| RequestGroup { method: r.method.to_string(), path: r.path.clone(), body: r.body, count: 1, client_pause: None, expect: Expect::default() }).collect(),
    }
}

/// The probe with the oracle's prediction as its expectation (what `--run`
/// checks), and the outcome.
fn predicted(mut s: Scenario, r: &Req) -> (Scenario, Vec<Outcome>) {
    // The probed request is the last (after the probe's `before`).
    let Some(p) = predict_at(&s, 1.0).and_then(|v| v.into_iter().last()) else { return (s, Vec::new()) };
    let Some(g) = s.requests.last_mut() else { return (s, Vec::new()) };
    if let Some(alt) = p.alt.as_deref() {
        // Go's reset races nginx's upload: either outcome may come.
        g.expect = Expect { status_in: Some(vec![p.status, alt.status]), handler_runs: Some(p.handler_runs), ..Expect::default() };
        let outcome = |q: &crate::oracle::Prediction| Outcome {
            method: r.method.to_string(),
            status: q.status,
            upstream_status: q.upstream_status.clone(),
            handler_runs: q.handler_runs,
            truncated: false,
            silently: false,
            latency_s: q.latency.as_secs_f64(),
        };
        return (s, vec![outcome(&p), outcome(alt)]);
    }
    let framed_cut = p.body.iter().any(|b| b.truncated);
    let short = r.full.is_some_and(|full| p.status == 200 && p.body.iter().any(|b| *b.bytes.end() < full));
    g.expect = Expect {
        status: Some(p.status),
        upstream_status: Some(p.upstream_status.clone()),
        handler_runs: Some(p.handler_runs),
        truncated: (p.body.len() == 1).then_some(framed_cut),
        ..Expect::default()
    };
    let o = Outcome {
        method: g.method.clone(),
        status: p.status,
        upstream_status: p.upstream_status.clone(),
        handler_runs: p.handler_runs,
        truncated: framed_cut || short,
        silently: short && !framed_cut,
        latency_s: p.latency.as_secs_f64(),
    };
    (s, vec![o])
}

fn verdict_of(outcomes: &[Outcome], trigger: Trigger) -> Verdict {
    if outcomes.iter().any(|o| o.status >= 500 || o.truncated) {
        if trigger == Trigger::Settings {
            Verdict::Applies
        } else {
            Verdict::Exposed
        }
    } else if outcomes.iter().any(|o| o.upstream_status.len() > 1 || o.handler_runs > 1) {
        Verdict::Retried
    } else {
        Verdict::Safe
    }
}

/// Predicts the probe; the fix is kept unless the outcome is harmless.
fn finding(t: &Target, g: &GoSettings, p: Probe, fix: Vec<String>, safe_detail: String) -> Finding {
    let (probes, outcomes): (Vec<Scenario>, Vec<Vec<Outcome>>) =
        p.requests.iter().map(|r| predicted(probe_scenario(t, g, &p, r), r)).filter(|(_, o)| !o.is_empty()).unzip();
    let outcomes: Vec<Outcome> = outcomes.into_iter().flatten().collect();
    let verdict = verdict_of(&outcomes, p.trigger);
    let detail = match verdict {
        Verdict::Safe => safe_detail,
        _ => outcomes.iter().map(describe).collect::<Vec<_>>().join("; "),
    };
    let fix = if verdict == Verdict::Safe { Vec::new() } else { fix };
    Finding { mechanism: p.mechanism, mechanism_id: mechanism_id(p.mechanism), trigger: p.trigger, verdict, when: p.when, detail, outcomes, fix, probes }
}

fn describe(o: &Outcome) -> String {
    let ups: Vec<String> = o.upstream_status.iter().map(u16::to_string).collect();
    let cut = match (o.truncated, o.silently) {
        (true, true) => " cut short, ending as if complete",
        (true, false) => " cut short",
        _ => "",
    };
    let wait = if o.latency_s < 0.001 { "at once".to_string() } else { format!("after {}", go_fmt(Duration::from_secs_f64(o.latency_s))) };
    format!("{} → {}{cut} {wait} (\"{}\", handler ran {}×)", o.method, o.status, ups.join(", "), o.handler_runs)
}

fn not_possible(mechanism: &'static str, trigger: Trigger, verdict: Verdict, when: String, why: String) -> Finding {
    Finding { mechanism, mechanism_id: mechanism_id(mechanism), trigger, verdict, when, detail: why, outcomes: Vec::new(), fix: Vec::new(), probes: Vec::new() }
}

fn cannot(mechanism: &'static str, trigger: Trigger, when: String, why: String) -> Finding {
    not_possible(mechanism, trigger, Verdict::CannotHappen, when, why)
}

/// The body bytes a handler writes in full, read off its script (the
/// fixture's rule, in go-model), up to a panic.
fn body_written(target: &str) -> u64 {
    use go_model::handlers::Op;
    let mut n = 0;
    for op in go_model::handlers::script_for_target(target) {
        match op {
            Op::Write(b) => n += b.len() as u64,
            Op::Fill(k) => n += k,
            Op::Panic(_) => break,
            _ => {}
        }
    }
    n
}

/// A margin below or above a limit: 10 %, at least one second.
fn margin(d: Duration) -> Duration {
    (d / 10).max(Duration::from_secs(1))
}

/// What a location and Go's settings share, for the mechanisms below.
struct Ctx<'a> {
    t: &'a Target,
    g: &'a GoSettings,
    go: ServerConfig,
    /// nginx keeps connections to this upstream and Go keeps them open.
    reuse: bool,
    peers: u32,
}

/// Every catalogue mechanism, for one location: settings-driven ones
/// (`Applies` fails the gate), then those your code, deploys or load set
/// off (`Exposed`).
pub fn check(t: &Target, g: &GoSettings) -> Vec<Finding> {
    let go = go_server(g);
    let reuse = t.loc.reuse_possible(&t.up) && go.keep_alives;
    let c = Ctx { t, g, go, reuse, peers: t.up.peers.len().max(1) as u32 };
    let mut out = vec![idle_race(&c)];
    out.extend(write_timeout(&c));
    out.push(slow_client(&c));
    out.push(read_timeout(&c));
    out.push(timeout_retried(&c));
    out.push(stream_idle(&c));
    out.push(big_header(&c));
    out.push(short_body(&c));
    out.extend(panics(&c));
    out.push(max_fails(&c));
    out.push(localhost(&c));
    out.push(port_exhaustion(&c));
    out.push(auth_request(&c));
    out.extend(deploys(&c));
    out
}

/// `auth_request` to a proxied location that passes the client's
/// Content-Length without the body: over HTTP/1.1 Go discards the unread
/// body before answering and waits for bytes that never come; the
/// subrequest's proxy_read_timeout gives 504, the client 500 (observed on
/// nginx 1.22.1 + Go 1.19.8). Probed with the auth location's own settings
/// (its upstream, protocol, timeouts, headers) and a handler that answers
/// without reading the body.
fn auth_request(c: &Ctx) -> Finding {
    let t = c.t;
    let when = "a request with a body (a POST) goes through auth_request, whose subrequest carries its Content-Length but no body".to_string();
    let (uri, loc, up) = match &t.auth {
        None => return cannot("auth-request-body", Trigger::Settings, when, format!("no auth_request in location {}", t.location)),
        Some(AuthTarget::Answered { uri }) => return cannot("auth-request-body", Trigger::Settings, when, format!("auth_request {uri} does not reach an upstream")),
        Some(AuthTarget::Proxied { uri, loc, up }) => (uri, loc, up),
    };
    let cleared = loc.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-length") && v.is_empty());
    let auth_target = Target { server: t.server.clone(), location: loc.path.clone(), loc: (**loc).clone(), up: (**up).clone(), auth: None };
    // The auth handler: one that answers without reading the body, as
    // auth handlers do (a probe path both Go servers have).
    let mut p = Probe::new("auth-request-body", Trigger::Settings, when, vec![post("/big?bytes=1024", 1024)]);
    p.auth = Some(("/ok".to_string(), cleared));
    let fix = vec![
        format!("nginx: proxy_set_header Content-Length \"\"; in location {} (proxy_pass_request_body off alone still sends the length), repeating the other proxy_set_header lines it needs", loc.path),
        "Go: a ReadTimeout bounds the wait (every request with a body then waits that long for its auth)".to_string(),
    ];
    let safe = if cleared {
        format!("location {} clears Content-Length", loc.path)
    } else if !loc.http11 {
        format!("location {} speaks HTTP/1.0 to Go, which answers and closes without waiting for the body (a handler that reads the body would still wait)", loc.path)
    } else {
        String::new()
    };
    let mut f = finding(&auth_target, c.g, p, fix, safe);
    f.when = format!("{} ({uri})", f.when);
    // Safe from 5xx but slow: Go's ReadTimeout ends each wait.
    if f.verdict == Verdict::Safe {
        if let Some(o) = f.outcomes.iter().find(|o| o.latency_s >= 1.0) {
            f.detail = format!("no 5xx, but the subrequest waits {} (Go's ReadTimeout) for the body on every request with one", go_fmt(Duration::from_secs_f64(o.latency_s)));
        }
    }
    f
}

/// The idle race: nginx reuses a connection as Go's idle limit closes it.
fn idle_race(c: &Ctx) -> Finding {
    let (t, g, u) = (c.t, c.g, &c.t.up);
    let limit = rules::effective_idle_limit(&c.go);
    let when = match limit {
        // The probe keeps one connection per server, all idle as long.
        Some(d) if c.peers > 1 => format!("a request reuses a connection idle for Go's {} limit, and so does its retry on the next server", go_fmt(d)),
        Some(d) => format!("a request reuses a connection idle for Go's {} limit", go_fmt(d)),
        None => "a request reuses a connection Go has closed as idle".into(),
    };
    // The catalogue scenario that shows this configuration's variant.
    let name = if c.go.idle_timeout.is_zero() && c.go.read_timeout.is_zero() && limit.is_some() {
        // Go ≤ 1.19: ReadHeaderTimeout alone bounds the idle wait.
        "read-header-timeout-idle"
    } else if g.idle_timeout.is_none() && limit.is_some() {
        "idle-fallback"
    } else if !t.loc.next_upstream.contains(nginx_model::retry::Ft::ERROR) {
        "idle-race-no-retry"
    } else if u.keepalive_by_default {
        // No keepalive line: the cache is nginx ≥ 1.29.7's default.
        "idle-race-upgrade"
    } else {
        "idle-race"
    };
    let (limit, true) = (limit, c.reuse) else {
        let why = if c.go.keep_alives {
            format!("nginx does not keep connections to upstream {} (keepalive, proxy_http_version 1.1 and proxy_set_header Connection \"\" are all needed)", u.name)
        } else {
            "Go's keep-alives are off: every connection closes after one response".into()
        };
        return cannot(name, Trigger::Settings, when, why);
    };
    let Some(limit) = limit else {
        let why = if c.go.go_version == GoVersion::Go120 && !c.go.read_header_timeout.is_zero() {
            "Go ≥ 1.20 never closes an idle connection when IdleTimeout and ReadTimeout are 0 (ReadHeaderTimeout starts with the next request's first byte)"
        } else {
            "Go never closes an idle connection (IdleTimeout, ReadTimeout and ReadHeaderTimeout are 0)"
        };
        return cannot(name, Trigger::Settings, when, why.into());
    };
    let kt = u.keepalive.timeout;
    let mut fix = vec![
        format!("nginx: keepalive_timeout {}; in upstream {} (below Go's {})", ngx_fmt(limit.saturating_sub(margin(limit)).max(Duration::from_secs(1))), u.name, go_fmt(limit)),
        format!("Go: IdleTimeout: {} (above nginx's keepalive_timeout {})", go_fmt(kt + margin(kt)), ngx_fmt(kt)),
    ];
    if name == "idle-race-no-retry" {
        fix.push(format!("nginx: proxy_next_upstream error timeout; in location {} (a dead cached connection is then retried)", t.location));
    }
    let safe = format!("nginx's keepalive_timeout {} closes idle connections before Go's {}", ngx_fmt(kt), go_fmt(limit));
    let mut p = Probe::new(name, Trigger::Settings, when, vec![get("/ok"), post("/ok", 100)]);
    (p.warmup, p.gap, p.idle_race) = (c.peers, Some(limit), true);
    finding(t, g, p, fix, safe)
}

/// WriteTimeout: Go cuts a slow handler's reply, and what nginx makes of it.
fn write_timeout(c: &Ctx) -> Vec<Finding> {
    const NAMES: [&str; 4] = ["write-timeout", "write-timeout-keepalive", "stale-cached-connections", "partial-write"];
    let (t, g, u) = (c.t, c.g, &c.t.up);
    let partial_name = if t.loc.http11 { "partial-write" } else { "partial-write-http10" };
    let names = NAMES.map(|n| if n == "partial-write" { partial_name } else { n });
    let (w, r) = (c.go.write_timeout, t.loc.read_timeout);
    if w.is_zero() {
        return names.iter().map(|m| cannot(m, Trigger::Settings, "a handler outlives WriteTimeout".into(), "WriteTimeout is 0: Go never cuts a reply".into())).collect();
    }
    if w >= r {
        let why = format!("proxy_read_timeout {} ≤ WriteTimeout {}: nginx gives up first, with a 504 it names (\"upstream timed out\")", ngx_fmt(r), go_fmt(w));
        return names.iter().map(|m| not_possible(m, Trigger::Settings, Verdict::Safe, format!("a handler outlives WriteTimeout {}", go_fmt(w)), why.clone())).collect();
    }
    // A handler between the two limits: Go cuts it before nginx would.
    let handler = w + (r - w) / 2;
    let ms = handler.as_millis();
    let when = format!("a handler runs longer than WriteTimeout {} ({} here)", go_fmt(w), go_fmt(handler));
    let fix = vec![
        format!("Go: WriteTimeout: {} (above proxy_read_timeout {}: nginx then answers a slow handler with 504)", go_fmt(r + margin(r)), ngx_fmt(r)),
        format!("nginx: proxy_read_timeout {}; in location {} (below Go's WriteTimeout)", ngx_fmt(w.saturating_sub(margin(w)).max(Duration::from_secs(1))), t.location),
    ];
    let safe = format!("proxy_read_timeout {} ends the wait first: a 504 nginx names (\"upstream timed out\")", ngx_fmt(r));
    let slow = || vec![get(format!("/sleep?ms={ms}"))];
    let mut out = vec![finding(t, g, Probe::new("write-timeout", Trigger::Settings, when.clone(), slow()), fix.clone(), safe.clone())];
    let reused = format!("{when}, on a reused connection");
    if c.reuse {
        let mut p = Probe::new("write-timeout-keepalive", Trigger::Settings, reused.clone(), slow());
        p.warmup = c.peers;
        out.push(finding(t, g, p, fix.clone(), safe.clone()));
    } else {
        out.push(cannot("write-timeout-keepalive", Trigger::Settings, reused.clone(), "nginx does not reuse upstream connections here".into()));
    }
    // Several idle connections: each failed cached try is given back.
    let stale_when = format!("{when}, with several idle connections cached");
    if c.reuse && u.keepalive.capacity >= 2 {
        let mut p = Probe::new("stale-cached-connections", Trigger::Settings, stale_when, slow());
        (p.warmup, p.warmup_concurrent) = (2 * c.peers, true);
        let mut fix = fix.clone();
        fix.push(format!("nginx: proxy_next_upstream_timeout {}; in location {} (bounds the cached retries; proxy_next_upstream_tries does not)", ngx_fmt(handler), t.location));
        out.push(finding(t, g, p, fix, safe.clone()));
    } else {
        out.push(cannot("stale-cached-connections", Trigger::Settings, stale_when, "nginx caches at most one idle connection here".into()));
    }
    let mut fix = fix;
    if !t.loc.http11 {
        fix.push(format!("nginx: proxy_http_version 1.1; in location {} (chunked framing makes a cut visible)", t.location));
    }
    let path = format!("/partial?bytes=1024&ms={ms}");
    let full = Req { full: Some(body_written(&path)), ..get(path) };
    let p = Probe::new(partial_name, Trigger::Settings, format!("a streaming handler pauses past WriteTimeout {}", go_fmt(w)), vec![full]);
    out.push(finding(t, g, p, fix, safe));
    out
}

/// A handler slower than proxy_read_timeout: nginx's own 504.
fn read_timeout(c: &Ctx) -> Finding {
    let (t, g) = (c.t, c.g);
    let (w, r) = (c.go.write_timeout, t.loc.read_timeout);
    let when = format!("a handler runs longer than proxy_read_timeout {}", ngx_fmt(r));
    if !w.is_zero() && w < r {
        return cannot("proxy-read-timeout", Trigger::Code, when, format!("Go's WriteTimeout {} cuts the handler first (write-timeout above)", go_fmt(w)));
    }
    let ms = (r + r / 2).as_millis();
    let fix = vec![
        format!("nginx: proxy_read_timeout above your slowest handler in location {} (now {})", t.location, ngx_fmt(r)),
        "Go: make the handler answer sooner (http.TimeoutHandler answers 503 itself)".to_string(),
    ];
    let p = Probe::new("proxy-read-timeout", Trigger::Code, when, vec![get(format!("/sleep?ms={ms}")), post(format!("/sleep?ms={ms}"), 100)]);
    finding(t, g, p, fix, String::new())
}

/// A read timeout retried on the next server: the handler runs on each.
fn timeout_retried(c: &Ctx) -> Finding {
    let (t, g, l) = (c.t, c.g, &c.t.loc);
    let (w, r) = (c.go.write_timeout, l.read_timeout);
    let name = "read-timeout-retried";
    let when = format!("a handler runs longer than proxy_read_timeout {} and nginx retries the timeout on the next server", ngx_fmt(r));
    if c.peers < 2 {
        return cannot(name, Trigger::Code, when, format!("upstream {} has a single server: a timeout has nowhere else to go", t.up.name));
    }
    if !l.next_upstream.contains(nginx_model::retry::Ft::TIMEOUT) {
        return cannot(name, Trigger::Code, when, format!("proxy_next_upstream {} does not retry timeouts", l.next_upstream.keywords().join(" ")));
    }
    if l.next_upstream_tries == 1 {
        return cannot(name, Trigger::Code, when, "proxy_next_upstream_tries 1: one attempt per request".into());
    }
    if !w.is_zero() && w < r {
        return cannot(name, Trigger::Code, when, format!("Go's WriteTimeout {} cuts the handler first (write-timeout above)", go_fmt(w)));
    }
    let ms = (r + r / 2).as_millis();
    let fix = vec![
        format!("nginx: proxy_next_upstream error; (without timeout) in location {}, or proxy_next_upstream_tries 1 where a handler must not run twice", t.location),
        format!("nginx: proxy_next_upstream_timeout to bound the client's wait, and proxy_read_timeout above the slowest handler (now {})", ngx_fmt(r)),
    ];
    let p = Probe::new(name, Trigger::Code, when, vec![get(format!("/sleep?ms={ms}")), post(format!("/sleep?ms={ms}"), 100)]);
    finding(t, g, p, fix, String::new())
}

/// A stream (SSE, long poll) silent longer than proxy_read_timeout after
/// its header: nginx's timeout cuts a 200.
fn stream_idle(c: &Ctx) -> Finding {
    let (t, g) = (c.t, c.g);
    let (w, r) = (c.go.write_timeout, t.loc.read_timeout);
    let when = format!("a stream (SSE, long poll) sends nothing for longer than proxy_read_timeout {} after its header", ngx_fmt(r));
    if !w.is_zero() && w < r {
        return cannot("sse-idle", Trigger::Code, when, format!("Go's WriteTimeout {} ends any stream first (partial-write above)", go_fmt(w)));
    }
    let gap = r + r / 2;
    let fix = vec![
        format!("Go: a heartbeat (an SSE comment, \": ping\") more often than proxy_read_timeout {}, e.g. every {}", ngx_fmt(r), go_fmt(r / 4)),
        format!("nginx: a streaming location with proxy_read_timeout above the longest silence (now {}) and proxy_buffering off", ngx_fmt(r)),
    ];
    // Two 9-byte events, the second after the silence.
    let req = Req { full: Some(18), ..get(format!("/sse?events=2&ms={}", gap.as_millis())) };
    let p = Probe::new("sse-idle", Trigger::Code, when, vec![req]);
    finding(t, g, p, fix, String::new())
}

/// A response header larger than proxy_buffer_size: nginx's 502, never retried.
fn big_header(c: &Ctx) -> Finding {
    let (t, g) = (c.t, c.g);
    let b = t.loc.buffer_size;
    let when = format!("a handler sends a response header larger than proxy_buffer_size {} (a large cookie or JWT)", size_fmt(b));
    // A cookie as large as the buffer: the header around it cannot fit.
    let bytes = (b as u64).min(go_model::handlers::MAX_HEADER_FILL);
    let bigger = (2 * b).max(8 << 10);
    let mut fix = vec![format!("nginx: proxy_buffer_size {}; in location {} (above your largest response header)", size_fmt(bigger), t.location)];
    if 2 * bigger > 7 * 4096 {
        fix[0].push_str(&format!(", with proxy_buffers 8 {} (nginx refuses a buffer size past 14k with the default proxy_buffers 8 4k)", size_fmt(bigger)));
    }
    fix.push("Go: keep large state out of headers (a session id in the cookie, the session server-side)".into());
    let p = Probe::new("too-big-header", Trigger::Code, when, vec![get(format!("/big-header?bytes={bytes}"))]);
    finding(t, g, p, fix, format!("proxy_buffer_size {} holds a {bytes}-byte cookie", size_fmt(b)))
}

/// A hand-set Content-Length above the body written: Go closes after the
/// short body, nginx has passed the header, the client's 200 is cut.
fn short_body(c: &Ctx) -> Finding {
    let fix = vec![
        "Go: do not set Content-Length by hand where a middleware may change the body; a compression middleware deletes it before writing".to_string(),
    ];
    let when = "a handler or middleware declares a Content-Length larger than the body it writes (compression keeping the uncompressed length)".to_string();
    let p = Probe::new("content-length-short", Trigger::Code, when, vec![get("/content-length?bytes=1024&declared=4096")]);
    finding(c.t, c.g, p, fix, String::new())
}

/// A size as nginx.conf writes it: `12k` when a whole number of KiB.
fn size_fmt(b: usize) -> String {
    if b >= 1024 && b.is_multiple_of(1024) {
        format!("{}k", b / 1024)
    } else {
        b.to_string()
    }
}

/// A handler panic: Go recovers and closes the connection.
fn panics(c: &Ctx) -> Vec<Finding> {
    let (t, g) = (c.t, c.g);
    let fix = vec!["Go: a recover middleware that answers 500 (the connection stays usable, the client sees the error)".to_string()];
    let p = Probe::new("panic", Trigger::Code, "a handler panics".into(), vec![get("/panic"), post("/panic", 100)]);
    let mut out = vec![finding(t, g, p, fix.clone(), String::new())];
    // A body Go has not read is still in the socket when it closes: RST.
    let limit = t.loc.client_max_body_size;
    let when = "a handler panics without reading a large request body".to_string();
    let body = if limit == 0 { 1 << 20 } else { limit.min(1 << 20) } as usize;
    if body <= 64 << 10 {
        out.push(cannot("panic-unread-body", Trigger::Code, when, format!("client_max_body_size {limit} keeps bodies small enough for Go's buffers")));
    } else {
        let mut fix = fix;
        fix.push("Go: http.MaxBytesReader on request bodies".into());
        let p = Probe::new("panic-unread-body", Trigger::Code, when, vec![post("/panic", body)]);
        out.push(finding(t, g, p, fix, String::new()));
    }
    out.push(early_answer(c));
    out
}

/// An early answer (401, 413) over a large body the handler never read: on
/// a closing request Go neither drains nor lingers, and its RST races
/// nginx's upload (`writev() failed (104)`, 502).
fn early_answer(c: &Ctx) -> Finding {
    let (t, g) = (c.t, c.g);
    let limit = t.loc.client_max_body_size;
    let when = "a handler answers (401, 413) without reading a large request body".to_string();
    let body = if limit == 0 { 1 << 20 } else { limit.min(1 << 20) } as usize;
    if body <= crate::oracle::UPLOAD_IN_FLIGHT {
        return cannot("early-answer-unread-body", Trigger::Code, when, format!("client_max_body_size {limit} keeps bodies small enough to be sent whole"));
    }
    let fix = vec![
        "nginx: proxy_http_version 1.1; proxy_set_header Connection \"\"; (Go then half-closes and lingers instead of resetting)".to_string(),
        "Go: read and discard the body up to a bound before answering (io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, n)))".to_string(),
    ];
    let p = Probe::new("early-answer-unread-body", Trigger::Code, when, vec![post("/unauthorized", body)]);
    finding(t, g, p, fix, "Go lingers after answering (HTTP/1.1 upstream requests): nginx reads the answer".to_string())
}

/// A slow client: with `proxy_buffering off` nginx reads from Go at the
/// client's pace, so a large body holds Go's write past WriteTimeout (a
/// deadline for the whole response) and the response is cut. Not probed:
/// how much the socket buffers hold is the kernel's (about 6 MB on
/// loopback, observed on nginx 1.22.1 + Go 1.19).
fn slow_client(c: &Ctx) -> Finding {
    let (t, w) = (c.t, c.go.write_timeout);
    let when = format!("a client reads a large response slower than WriteTimeout {} allows", go_fmt(w));
    if w.is_zero() {
        return cannot("slow-client", Trigger::Load, when, "WriteTimeout is 0: Go never cuts a reply".into());
    }
    if t.loc.buffering {
        return not_possible("slow-client", Trigger::Load, Verdict::Safe, when, "proxy_buffering on: nginx reads the whole response from Go (into a temporary file past its buffers) whatever the client's pace".into());
    }
    let silent = if t.loc.http11 { "" } else { "; with the HTTP/1.0 upstream request the cut is silent (a \"complete\" 200, nothing in error.log)" };
    let detail = format!("proxy_buffering off in {}: a body larger than the socket buffers (about 6 MB on loopback) that the client takes longer than {} to read is cut: 200, \"upstream prematurely closed connection\"{silent}", t.location, go_fmt(w));
    let mut f = not_possible("slow-client", Trigger::Load, Verdict::Exposed, when, detail);
    f.fix = vec![
        format!("nginx: proxy_buffering on; in location {} (the default: nginx absorbs the response)", t.location),
        "Go: WriteTimeout above the slowest client's download time for the largest response".into(),
    ];
    f
}

/// A server named `localhost`: nginx makes a peer of each of its addresses,
/// [::1] first where /etc/hosts maps it to both (observed on nginx 1.22.1);
/// a Go server on 127.0.0.1 only refuses the [::1] connect (111), which
/// nginx retries, or answers with 502 when it may not.
fn localhost(c: &Ctx) -> Finding {
    let (t, g) = (c.t, c.g);
    let named = t.up.peers.iter().filter(|p| p.addr.rsplit_once(':').map_or(p.addr.as_str(), |(h, _)| h).eq_ignore_ascii_case("localhost")).count();
    let when = "the upstream is localhost, /etc/hosts maps it to ::1 too, and Go listens on 127.0.0.1 only".to_string();
    if named == 0 {
        return cannot("localhost-ipv6", Trigger::Settings, when, "the upstream names its addresses, not localhost".into());
    }
    let mut p = Probe::new("localhost-ipv6", Trigger::Settings, when, vec![get("/ok"), post("/ok", 100)]);
    p.localhost = true;
    let fix = vec![format!("nginx: name the address Go listens on (`server 127.0.0.1:PORT;` for the {named} localhost server line(s) of upstream {}), or have Go listen on both (`Addr: \":PORT\"`)", t.up.name)];
    finding(t, g, p, fix, "nginx retries the refused [::1] connect on 127.0.0.1".into())
}

/// Connections nginx closes first hold their local port for TIME_WAIT
/// (60 s): without a keepalive cache, one per request. The probe narrows
/// `ip_local_port_range` to [`PROBE_PORTS`] ports and sends one request
/// more than that.
fn port_exhaustion(c: &Ctx) -> Finding {
    let (t, g, u) = (c.t, c.g, &c.t.up);
    let when = format!(
        "more new connections per second to one server of upstream {} than ip_local_port_range's ports / 60 s (TIME_WAIT): about {}/s with Linux's default 32768–60999",
        u.name,
        DEFAULT_EPHEMERAL_PORTS / 60
    );
    let mut p = Probe::new("port-exhaustion", Trigger::Load, when, vec![get("/ok")]);
    p.port_range = Some(format!("{} {}", PROBE_PORT_LOW, PROBE_PORT_LOW + PROBE_PORTS - 1));
    p.warmup = PROBE_PORTS;
    let fix = vec![
        format!("nginx: `keepalive 16;` in upstream {}, with `proxy_http_version 1.1;` and `proxy_set_header Connection \"\";` in the location: requests reuse connections, ports stop churning", u.name),
        "host: a wider net.ipv4.ip_local_port_range, or more upstream addresses (each has its own ports), raise the limit".to_string(),
    ];
    let safe = if c.reuse {
        format!("nginx reuses its connections to upstream {} (keepalive {}): new connections, and their ports, only as the cache turns over", u.name, u.keepalive.capacity)
    } else {
        "Go closes each connection first (nginx sends Connection: close), so the TIME_WAIT is mostly Go's and nginx's port is free again; nginx still closes first when it reads the whole response before Go's FIN (1 of 8 on loopback, nginx 1.22.1): at high rates a keepalive cache is the fix".to_string()
    };
    finding(t, g, p, fix, safe)
}

/// Ports in Linux's default `ip_local_port_range` (32768–60999).
const DEFAULT_EPHEMERAL_PORTS: u32 = 60999 - 32768 + 1;
/// The probe's range: above the default one, where the lab's listeners' ports are.
const PROBE_PORT_LOW: u32 = 61000;
const PROBE_PORTS: u32 = 4;

/// One error per server within fail_timeout marks every server down: nginx's
/// own "no live upstreams" 502 for healthy requests too.
fn max_fails(c: &Ctx) -> Finding {
    let (t, g, u) = (c.t, c.g, &c.t.up);
    let counted: Vec<_> = u.peers.iter().filter(|p| !p.down && p.max_fails > 0).collect();
    let when = match counted.iter().map(|p| (p.max_fails, p.fail_timeout)).min() {
        Some((n, ft)) => format!("every server of upstream {} fails {n}× within fail_timeout {} (a panic retried on each, timeouts, a restart)", u.name, ngx_fmt(ft)),
        None => format!("every server of upstream {} fails within fail_timeout", u.name),
    };
    if u.peers.len() < 2 {
        return cannot("max-fails-cascade", Trigger::Code, when, format!("upstream {} has a single server, which nginx never marks down: max_fails does not apply", u.name));
    }
    if counted.is_empty() {
        return cannot("max-fails-cascade", Trigger::Code, when, format!("max_fails=0 on every server of upstream {}: errors never take a server out", u.name));
    }
    let fix = vec![
        format!("nginx: max_fails=0 on the server lines of upstream {} (or a larger max_fails with a shorter fail_timeout)", u.name),
        "Go: fix what fails on every server (a recover middleware for panics)".to_string(),
    ];
    // Enough failing requests to reach max_fails on every server with or
    // without retries, then a healthy GET.
    let n = counted.iter().map(|p| p.max_fails).max().unwrap_or(1) * c.peers;
    let mut p = Probe::new("max-fails-cascade", Trigger::Code, when, vec![get("/ok")]);
    p.before = (0..n.min(64)).map(|_| get("/panic")).collect();
    finding(t, g, p, fix, String::new())
}

/// The Go process goes away: a crash, a Shutdown, a full accept queue.
fn deploys(c: &Ctx) -> Vec<Finding> {
    let (t, g, u) = (c.t, c.g, &c.t.up);
    let one = u.peers.iter().filter(|p| !p.down).count() <= 1;
    let second = format!("nginx: a second server in upstream {} (a refused connect() is retried there, even for POST)", u.name);
    let mut out = Vec::new();

    let mut fix = vec!["Go: hand the listening socket to the new process (systemd socket activation, tableflip)".to_string()];
    if one {
        fix.push(second.clone());
    }
    let mut p = Probe::new("crash", Trigger::Deploy, "the Go process exits (crash, OOM kill, a restart with a gap)".into(), vec![get("/ok"), post("/ok", 100)]);
    (p.warmup, p.action) = (c.peers, labkit::action::Action::Crash);
    out.push(finding(t, g, p, fix, "the other servers answer".into()));

    let when = "a restart hands the port over with SO_REUSEPORT while new connections wait in the old listener's accept queue".to_string();
    let fix = vec![
        "Go: pass the listening socket itself to the new process (systemd socket activation, tableflip), not a second SO_REUSEPORT socket".to_string(),
        "Linux ≥ 5.14: sysctl net.ipv4.tcp_migrate_req=1 moves the closing listener's queue to the new one".to_string(),
    ];
    let mut p = Probe::new("reuseport-handoff", Trigger::Deploy, when, vec![get("/ok"), post("/ok", 100)]);
    p.action = labkit::action::Action::ReuseportHandoffQueued;
    out.push(finding(t, g, p, fix, String::new()));

    let when = "Go's Shutdown runs while nginx holds idle connections to it (a deploy)".to_string();
    if c.reuse {
        let fix = vec![
            "Go: SetKeepAlivesEnabled(false), wait past nginx's keepalive_timeout, then Shutdown".to_string(),
            format!("nginx: take the server out of upstream {} (and reload) before stopping it", u.name),
        ];
        let mut p = Probe::new("graceful-shutdown", Trigger::Deploy, when, vec![post("/ok", 100)]);
        (p.warmup, p.action, p.shutdown_race) = (c.peers, labkit::action::Action::Shutdown, true);
        out.push(finding(t, g, p, fix, String::new()));
    } else {
        out.push(cannot("graceful-shutdown", Trigger::Deploy, when, format!("nginx keeps no idle connections to upstream {}; after Shutdown, connect() is refused as in crash", u.name)));
    }

    let mut fix = vec!["Go: a longer listen backlog (net.core.somaxconn) and an accept loop that never blocks".to_string()];
    if one {
        fix.push(format!("nginx: a second server in upstream {} and a short proxy_connect_timeout (now {})", u.name, ngx_fmt(t.loc.connect_timeout)));
    }
    let mut p = Probe::new("backlog-overflow", Trigger::Load, "Go's accept queue is full (more new connections than it accepts)".into(), vec![get("/ok")]);
    (p.action, p.backlog) = (labkit::action::Action::FillBacklog, Some(1));
    out.push(finding(t, g, p, fix, String::new()));

    let limit = g.fd_limit.map_or_else(|| "its fd limit".to_string(), |n| format!("LimitNOFILE={n} ({} connections)", n - go_model::rules::STARTUP_FDS));
    let when = format!("the Go process holds as many descriptors as {limit}: a connection leak or a burst; accept() fails (EMFILE) and backs off");
    let fix = vec![
        "Go: a higher LimitNOFILE (the hard limit: Go raises its soft limit to it) and no leaked connections (IdleTimeout, ReadTimeout, bodies closed)".to_string(),
        format!("nginx: bound its own connections to upstream {}: max_conns on the server lines, a keepalive cache no larger than needed", u.name),
    ];
    let mut p = Probe::new("fd-limit", Trigger::Load, when, vec![get("/ok")]);
    p.action = labkit::action::Action::HoldConnections;
    out.push(finding(t, g, p, fix, String::new()));
    out
}

/// Whether any finding should fail a CI gate: settings-driven ones, and
/// with `strict` those your code, deploys or load set off.
pub fn gate_fails(findings: &[Finding], strict: bool) -> bool {
    findings.iter().any(|f| f.verdict == Verdict::Applies || (strict && f.verdict == Verdict::Exposed))
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

    fn modern_target(conf_text: &str) -> Target {
        let cfg = conf::parse(conf_text, "t.conf").unwrap();
        targets(&resolve(&cfg, Profile::Modern).unwrap(), None, None).remove(0)
    }

    #[test]
    fn an_upgrade_to_modern_defaults_names_the_upgrade_variant() {
        // A bare upstream block: safe on 1.22, the idle race on ≥ 1.29.7.
        let bare = "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n";
        let go = parse_go("IdleTimeout=5s").unwrap();
        assert_eq!(find(&check(&target(bare), &go), "idle-race").verdict, Verdict::CannotHappen);
        let f = check(&modern_target(bare), &go);
        let race = find(&f, "idle-race-upgrade");
        assert_eq!(race.verdict, Verdict::Applies, "{race:#?}");
        // An explicit keepalive line is the plain idle race on either profile.
        let explicit = bare.replace("server 127.0.0.1:9000;", "server 127.0.0.1:9000; keepalive 32;");
        assert_eq!(find(&check(&modern_target(&explicit), &go), "idle-race").verdict, Verdict::Applies);
    }

    const KEEPALIVE: &str = "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; keepalive 16; KT }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; RT } }\n}\n";

    fn conf_with(kt: &str, rt: &str) -> String {
        KEEPALIVE.replace("KT", kt).replace("RT", rt)
    }

    fn find<'a>(f: &'a [Finding], m: &str) -> &'a Finding {
        f.iter().find(|x| x.mechanism == m).unwrap_or_else(|| panic!("no {m} in {f:#?}"))
    }

    #[test]
    fn auth_request_passing_the_length_without_the_body_is_a_500() {
        let conf = |auth: &str| {
            format!("events {{}}\nhttp {{\n upstream app {{ server 127.0.0.1:9000; keepalive 16; }}\n server {{ listen 127.0.0.1:8080;\n  location / {{ auth_request /auth; proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  location = /auth {{ internal; proxy_pass http://app/verify; proxy_pass_request_body off; proxy_read_timeout 10s; {auth} }}\n }}\n}}\n")
        };
        let go = parse_go("IdleTimeout=30s").unwrap();
        // The common setup: HTTP/1.1 to Go, the length left in.
        let f = check(&target(&conf("proxy_http_version 1.1; proxy_set_header Connection \"\";")), &go);
        let a = find(&f, "auth-request-body");
        assert_eq!((a.verdict, a.mechanism_id.as_str()), (Verdict::Applies, "auth-request-body"), "{a:#?}");
        let o = &a.outcomes[0];
        // The auth location's proxy_read_timeout, then 500; the upload's handler never runs.
        assert_eq!((o.status, o.latency_s, o.handler_runs, o.upstream_status.len()), (500, 10.0, 0, 0), "{o:#?}");
        assert!(a.fix[0].contains("proxy_set_header Content-Length \"\"; in location /auth"), "{:?}", a.fix);
        assert!(gate_fails(&f, false));
        // The remedy: the length cleared.
        let f = check(&target(&conf("proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Content-Length \"\";")), &go);
        let a = find(&f, "auth-request-body");
        assert_eq!(a.verdict, Verdict::Safe, "{a:#?}");
        assert!(a.detail.contains("clears Content-Length"), "{a:#?}");
        // nginx 1.22's default HTTP/1.0 request: Go answers and closes.
        let a = find(&check(&target(&conf("")), &go), "auth-request-body").clone();
        assert_eq!(a.verdict, Verdict::Safe, "{a:#?}");
        assert!(a.detail.contains("HTTP/1.0"), "{a:#?}");
        // Go's ReadTimeout ends the wait: 200, late.
        let f = check(&target(&conf("proxy_http_version 1.1; proxy_set_header Connection \"\";")), &parse_go("ReadTimeout=3s").unwrap());
        let a = find(&f, "auth-request-body");
        assert_eq!((a.verdict, a.outcomes[0].status), (Verdict::Safe, 200), "{a:#?}");
        assert!(a.detail.contains("waits 3s"), "{a:#?}");
        // No auth_request, or one that does not proxy.
        let plain = "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n";
        assert_eq!(find(&check(&target(plain), &go), "auth-request-body").verdict, Verdict::CannotHappen);
        let answered = "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; }\n server { listen 127.0.0.1:8080; location / { auth_request /auth; proxy_pass http://app; } location = /auth { return 204; } }\n}\n";
        assert_eq!(find(&check(&target(answered), &go), "auth-request-body").verdict, Verdict::CannotHappen);
    }

    #[test]
    fn an_early_answer_over_an_unread_body_is_a_401_or_a_502_unless_go_lingers() {
        let g = parse_go("IdleTimeout=90s").unwrap();
        // nginx 1.22's default HTTP/1.0 upstream request: Go resets, the upload may fail.
        let plain = |loc: &str| format!("events {{}}\nhttp {{\n upstream app {{ server 127.0.0.1:9000; }}\n server {{ listen 127.0.0.1:8080; location / {{ proxy_pass http://app; {loc} }} }}\n}}\n");
        let f = check(&target(&plain("")), &g);
        let e = find(&f, "early-answer-unread-body");
        let statuses: Vec<u16> = e.outcomes.iter().map(|o| o.status).collect();
        assert_eq!((e.verdict, statuses.as_slice()), (Verdict::Exposed, &[401, 502][..]), "{e:#?}");
        assert_eq!(e.mechanism_id, "early-answer-unread-body");
        assert!(e.probes[0].requests[0].expect.status_in.is_some(), "{e:#?}");
        // HTTP/1.1 with Connection cleared: Go half-closes and lingers, nginx reads the 401.
        let f = check(&target(&conf_with("", "")), &g);
        let e = find(&f, "early-answer-unread-body");
        assert_eq!((e.verdict, e.outcomes.len()), (Verdict::Safe, 1), "{e:#?}");
        // A small client_max_body_size: the body is sent whole before Go answers.
        let f = check(&target(&plain("client_max_body_size 16k;")), &g);
        assert_eq!(find(&f, "early-answer-unread-body").verdict, Verdict::CannotHappen);
    }

    #[test]
    fn localhost_is_two_peers_and_the_refused_one_is_retried() {
        let g = parse_go("IdleTimeout=90s").unwrap();
        let conf = |server: &str, loc: &str| format!("events {{}}\nhttp {{\n upstream app {{ server {server}; }}\n server {{ listen 127.0.0.1:8080; location / {{ proxy_pass http://app; {loc} }} }}\n}}\n");
        let f = check(&target(&conf("localhost:9000", "")), &g);
        let l = find(&f, "localhost-ipv6");
        assert_eq!(l.verdict, Verdict::Retried, "{l:#?}");
        assert!(l.outcomes.iter().all(|o| o.status == 200 && o.upstream_status == [502, 200]), "{l:#?}");
        assert!(l.fix[0].contains("127.0.0.1"), "{:?}", l.fix);
        // Without retries the refused connect is the client's 502.
        let f = check(&target(&conf("localhost:9000", "proxy_next_upstream off;")), &g);
        let l = find(&f, "localhost-ipv6");
        assert_eq!((l.verdict, l.outcomes[0].status), (Verdict::Applies, 502), "{l:#?}");
        // An address: nothing to expand.
        assert_eq!(find(&check(&target(&conf("127.0.0.1:9000", "")), &g), "localhost-ipv6").verdict, Verdict::CannotHappen);
    }

    #[test]
    fn a_slow_client_is_cut_only_with_proxy_buffering_off() {
        let conf = |loc: &str| format!("events {{}}\nhttp {{\n upstream app {{ server 127.0.0.1:9000; }}\n server {{ listen 127.0.0.1:8080; location / {{ proxy_pass http://app; {loc} }} }}\n}}\n");
        let g = parse_go("WriteTimeout=10s").unwrap();
        let f = check(&target(&conf("proxy_buffering off;")), &g);
        let s = find(&f, "slow-client");
        assert_eq!((s.verdict, s.mechanism_id.as_str()), (Verdict::Exposed, "write-timeout"), "{s:#?}");
        assert!(s.detail.contains("silent") && s.fix[0].contains("proxy_buffering on"), "{s:#?}");
        assert_eq!(find(&check(&target(&conf("")), &g), "slow-client").verdict, Verdict::Safe);
        assert_eq!(find(&check(&target(&conf("proxy_buffering off;")), &parse_go("IdleTimeout=5s").unwrap()), "slow-client").verdict, Verdict::CannotHappen);
    }

    #[test]
    fn go_settings_parse_by_go_names() {
        let g = parse_go("IdleTimeout=5s, WriteTimeout=30s\nReadHeaderTimeout=0 # none\n").unwrap();
        assert_eq!((g.idle_timeout.as_deref(), g.write_timeout.as_deref(), g.read_header_timeout.as_deref()), (Some("5s"), Some("30s"), Some("0")));
        assert!(parse_go("IdleTimeout=5").unwrap_err().contains("IdleTimeout"));
        assert!(parse_go("Idle=5s").unwrap_err().contains("unknown Go setting"));
        assert!(parse_go("IdleTimeout").unwrap_err().contains("Field=value"));
        assert_eq!(parse_go("LimitNOFILE=1024").unwrap().fd_limit, Some(1024));
        assert!(parse_go("LimitNOFILE=7").unwrap_err().contains("7 descriptors"));
        assert!(parse_go("LimitNOFILE=lots").unwrap_err().contains("LimitNOFILE"));
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
        assert!(gate_fails(&f, false));
        // keepalive_timeout below IdleTimeout: safe, and the gate passes.
        let f = check(&target(&conf_with("keepalive_timeout 4s;", "")), &g);
        let race = find(&f, "idle-race");
        assert_eq!(race.verdict, Verdict::Safe, "{race:#?}");
        assert!(race.detail.contains("4s") && race.fix.is_empty());
        assert!(!gate_fails(&f, false), "{f:#?}");
    }

    #[test]
    fn without_upstream_keepalive_the_idle_race_cannot_happen() {
        let t = target("events {}\nhttp {\n upstream app { server 127.0.0.1:9000; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n");
        let f = check(&t, &parse_go("IdleTimeout=5s").unwrap());
        assert_eq!(find(&f, "idle-race").verdict, Verdict::CannotHappen);
        assert!(!gate_fails(&f, false));
    }

    /// Every problem scenario of the catalogue is a mechanism `check` names
    /// for some configuration: a new scenario without a probe fails here.
    #[test]
    fn check_names_every_problem_scenario_of_the_catalogue() {
        // idle-race-natural is idle-race at natural timing: the same probe.
        const SAME_PROBE: [&str; 1] = ["idle-race-natural"];
        let confs = [
            conf_with("", "proxy_read_timeout 30s;"),
            conf_with("", "proxy_read_timeout 30s; proxy_next_upstream off;"),
            "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n".to_string(),
            "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; server 127.0.0.1:9001; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n".to_string(),
        ];
        let gos = ["IdleTimeout=5s,WriteTimeout=10s", "ReadTimeout=5s,WriteTimeout=10s", "IdleTimeout=5s", "ReadHeaderTimeout=5s"];
        let mut named = std::collections::BTreeSet::new();
        for c in &confs {
            for g in gos {
                named.extend(check(&target(c), &parse_go(g).unwrap()).into_iter().map(|f| f.mechanism));
            }
        }
        // The upgrade's variant needs nginx ≥ 1.29.7's defaults.
        named.extend(check(&modern_target(&confs[2]), &parse_go(gos[2]).unwrap()).into_iter().map(|f| f.mechanism));
        for s in crate::catalogue::all().unwrap().iter().filter(|s| !s.is_remedy() && !SAME_PROBE.contains(&s.name.as_str())) {
            assert!(named.contains(s.name.as_str()), "check never names {}: {named:?}", s.name);
        }
        // And each finding carries its scenario's mechanism id.
        let f = check(&target(&confs[0]), &parse_go(gos[0]).unwrap());
        assert_eq!(find(&f, "stale-cached-connections").mechanism_id, "write-timeout");
        assert_eq!(find(&f, "panic").mechanism_id, "handler-panic");
    }

    #[test]
    fn an_http10_upstream_cuts_a_stream_silently() {
        let t = target("events {}\nhttp {\n upstream app { server 127.0.0.1:9000; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n");
        let f = check(&t, &parse_go("WriteTimeout=10s").unwrap());
        let p = find(&f, "partial-write-http10");
        assert_eq!(p.verdict, Verdict::Applies, "{p:#?}");
        assert!(p.outcomes[0].truncated && p.outcomes[0].silently && p.outcomes[0].status == 200, "{p:#?}");
        assert!(p.fix.iter().any(|l| l.contains("proxy_http_version 1.1")), "{:?}", p.fix);
        assert!(p.detail.contains("ending as if complete"), "{}", p.detail);
    }

    #[test]
    fn without_retries_the_idle_race_fails_a_get_too() {
        let f = check(&target(&conf_with("", "proxy_next_upstream off;")), &parse_go("IdleTimeout=5s").unwrap());
        let race = find(&f, "idle-race-no-retry");
        assert_eq!((race.verdict, race.outcomes[0].status, race.outcomes[0].upstream_status.as_slice()), (Verdict::Applies, 502, &[502][..]), "{race:#?}");
        assert!(race.fix.iter().any(|l| l.contains("proxy_next_upstream error timeout")), "{:?}", race.fix);
    }

    #[test]
    fn deploys_and_code_are_exposed_not_gated_unless_strict() {
        let one = "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; keepalive 16; keepalive_timeout 4s; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }\n}\n";
        let g = parse_go("IdleTimeout=5s").unwrap();
        let f = check(&target(one), &g);
        for m in ["crash", "reuseport-handoff", "graceful-shutdown", "backlog-overflow", "fd-limit", "panic", "panic-unread-body", "proxy-read-timeout"] {
            assert_eq!(find(&f, m).verdict, Verdict::Exposed, "{m}: {:#?}", find(&f, m));
        }
        let slow = &find(&f, "proxy-read-timeout").outcomes[0];
        // The client waits proxy_read_timeout (60s by default) for its 504.
        assert_eq!((slow.status, slow.latency_s), (504, 60.0), "{slow:#?}");
        assert_eq!(find(&f, "backlog-overflow").outcomes[0].status, 504);
        // At the fd limit the connect succeeds and the handler never runs:
        // a 504 after proxy_read_timeout (60s), not a connect timeout.
        // A queued connection reset by the old listener's close: a 502 at once.
        let handoff = &find(&f, "reuseport-handoff").outcomes;
        assert!(handoff.iter().all(|o| (o.status, o.upstream_status.as_slice(), o.handler_runs) == (502, &[502][..], 0)), "{handoff:#?}");
        let stalled = &find(&f, "fd-limit").outcomes[0];
        assert_eq!((stalled.status, stalled.latency_s, stalled.handler_runs), (504, 60.0, 0), "{stalled:#?}");
        assert!(!gate_fails(&f, false) && gate_fails(&f, true));
        // A second server: a refused connect() is retried there, POST too.
        let two = one.replace("server 127.0.0.1:9000;", "server 127.0.0.1:9000; server 127.0.0.1:9001;");
        let f = check(&target(&two), &g);
        let crash = find(&f, "crash");
        assert_eq!(crash.verdict, Verdict::Retried, "{crash:#?}");
        assert!(crash.outcomes.iter().all(|o| o.status == 200 && o.upstream_status == [502, 200]), "{crash:#?}");
        // A reset after the request was sent: the GET is retried on the
        // other server, the POST is not (non-idempotent).
        let handoff = find(&f, "reuseport-handoff");
        let got: Vec<(u16, &[u16])> = handoff.outcomes.iter().map(|o| (o.status, o.upstream_status.as_slice())).collect();
        assert_eq!(got, [(200, &[502, 200][..]), (502, &[502][..])], "{handoff:#?}");
        // Each request is its own trial: the GET's failures do not mark
        // servers down for the POST (max_fails).
        let panic = find(&f, "panic");
        assert_eq!((panic.outcomes[0].handler_runs, panic.outcomes[1].handler_runs), (2, 1), "{panic:#?}");
    }

    #[test]
    fn go_119_read_header_timeout_alone_is_the_idle_limit() {
        let g = parse_go("ReadHeaderTimeout=5s").unwrap();
        let f = check(&target(&conf_with("", "")), &g);
        let race = find(&f, "read-header-timeout-idle");
        assert_eq!((race.verdict, race.mechanism_id.as_str()), (Verdict::Applies, "idle-race"), "{race:#?}");
        assert_eq!(race.outcomes[0].upstream_status, vec![502, 200]);
        assert!(race.when.contains("5s"), "{}", race.when);
        // Go 1.20: ReadHeaderTimeout no longer bounds the idle wait.
        let g = GoSettings { go_version: Some("1.20".into()), ..g };
        let race = check(&target(&conf_with("", "")), &g).into_iter().find(|f| f.mechanism_id == "idle-race").unwrap();
        assert_eq!(race.verdict, Verdict::CannotHappen, "{race:#?}");
        assert!(race.detail.contains("Go ≥ 1.20"), "{}", race.detail);
    }

    #[test]
    fn a_header_past_proxy_buffer_size_is_a_502_never_retried() {
        let g = parse_go("IdleTimeout=90s").unwrap();
        let f = check(&target(&conf_with("", "")), &g);
        let big = find(&f, "too-big-header");
        assert_eq!(big.verdict, Verdict::Exposed, "{big:#?}");
        let o = &big.outcomes[0];
        // FT_INVALID_HEADER is not in the default proxy_next_upstream.
        assert_eq!((o.status, o.upstream_status.as_slice(), o.handler_runs), (502, &[502][..], 1), "{big:#?}");
        assert!(big.when.contains("proxy_buffer_size 4k"), "{}", big.when);
        // The probe carries the user's buffer size, and the fix doubles it.
        let f = check(&target(&conf_with("", "proxy_buffer_size 12k;")), &g);
        let big = find(&f, "too-big-header");
        assert!(big.when.contains("proxy_buffer_size 12k") && big.probes[0].requests[0].path == "/big-header?bytes=12288", "{big:#?}");
        assert!(big.fix[0].contains("proxy_buffer_size 24k") && big.fix[0].contains("proxy_buffers 8 24k"), "{:?}", big.fix);
        // That fix is a configuration nginx (and check) accepts.
        let f = check(&target(&conf_with("", "proxy_buffer_size 24k; proxy_buffers 8 24k;")), &g);
        let big = find(&f, "too-big-header");
        assert!(big.when.contains("proxy_buffer_size 24k") && big.probes[0].requests[0].path == "/big-header?bytes=24576", "{big:#?}");
        assert_eq!((big.verdict, big.outcomes[0].status), (Verdict::Exposed, 502), "{big:#?}");
    }

    #[test]
    fn a_silent_stream_is_cut_by_proxy_read_timeout() {
        let f = check(&target(&conf_with("", "proxy_read_timeout 30s;")), &parse_go("IdleTimeout=90s").unwrap());
        let sse = find(&f, "sse-idle");
        let o = &sse.outcomes[0];
        assert_eq!((sse.verdict, o.status, o.truncated), (Verdict::Exposed, 200, true), "{sse:#?}");
        assert!(sse.fix.iter().any(|l| l.contains("heartbeat") && l.contains("30s")), "{:?}", sse.fix);
        // WriteTimeout below proxy_read_timeout: Go ends the stream first.
        let f = check(&target(&conf_with("", "proxy_read_timeout 30s;")), &parse_go("WriteTimeout=10s").unwrap());
        assert_eq!(find(&f, "sse-idle").verdict, Verdict::CannotHappen);
    }

    #[test]
    fn a_short_body_under_its_content_length_is_a_cut_200() {
        let f = check(&target(&conf_with("", "")), &parse_go("IdleTimeout=90s").unwrap());
        let m = find(&f, "content-length-short");
        let o = &m.outcomes[0];
        assert_eq!((m.verdict, o.status, o.truncated, o.silently, o.handler_runs), (Verdict::Exposed, 200, true, false, 1), "{m:#?}");
    }

    #[test]
    fn a_timeout_is_retried_on_every_server_for_a_get_only() {
        let two = "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; server 127.0.0.1:9001; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; proxy_read_timeout 2s; NU } }\n}\n";
        let g = parse_go("IdleTimeout=90s").unwrap();
        let f = check(&target(&two.replace("NU", "")), &g);
        let m = find(&f, "read-timeout-retried");
        let (get, post) = (&m.outcomes[0], &m.outcomes[1]);
        assert_eq!((m.verdict, get.status, get.upstream_status.as_slice(), get.handler_runs, get.latency_s), (Verdict::Exposed, 504, &[504, 504][..], 2, 4.0), "{m:#?}");
        // A POST is not retried (nginx 1.9.13 and later).
        assert_eq!((post.upstream_status.as_slice(), post.handler_runs), (&[504][..], 1), "{m:#?}");
        assert!(m.fix[0].contains("proxy_next_upstream error;"), "{:?}", m.fix);
        for nu in ["proxy_next_upstream error;", "proxy_next_upstream_tries 1;"] {
            assert_eq!(find(&check(&target(&two.replace("NU", nu)), &g), "read-timeout-retried").verdict, Verdict::CannotHappen, "{nu}");
        }
        assert_eq!(find(&check(&target(&conf_with("", "")), &g), "read-timeout-retried").verdict, Verdict::CannotHappen);
    }

    #[test]
    fn one_error_per_server_leaves_no_live_upstreams() {
        let two = "events {}\nhttp {\n upstream app { server 127.0.0.1:9000; server 127.0.0.1:9001 P; }\n server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } }\n}\n";
        let g = parse_go("IdleTimeout=90s").unwrap();
        let f = check(&target(&two.replace(" P", "")), &g);
        let m = find(&f, "max-fails-cascade");
        let o = &m.outcomes[0];
        // The healthy GET after the panics: nginx's own 502, no server contacted.
        assert_eq!((m.verdict, o.status, o.upstream_status.as_slice(), o.handler_runs), (Verdict::Exposed, 502, &[502][..], 0), "{m:#?}");
        assert!(m.when.contains("fail_timeout 10s") && m.fix[0].contains("max_fails=0"), "{m:#?}");
        // A `down` entry still makes two server lines: no single-server exemption.
        assert_eq!(find(&check(&target(&two.replace(" P", " down")), &g), "max-fails-cascade").outcomes[0].status, 502);
        // max_fails=0 on the live server: the healthy GET is answered.
        let safe = check(&target(&two.replace("9000;", "9000 max_fails=0;").replace(" P", " max_fails=0")), &g);
        assert_eq!(find(&safe, "max-fails-cascade").verdict, Verdict::CannotHappen);
        let single = check(&target(&conf_with("", "")), &g);
        assert_eq!(find(&single, "max-fails-cascade").verdict, Verdict::CannotHappen);
    }

    #[test]
    fn a_small_client_max_body_size_rules_out_the_unread_body_reset() {
        let f = check(&target(&conf_with("", "client_max_body_size 16k;")), &parse_go("IdleTimeout=90s").unwrap());
        assert_eq!(find(&f, "panic-unread-body").verdict, Verdict::CannotHappen);
    }

    #[test]
    fn write_timeout_below_proxy_read_timeout_gives_502_and_above_it_504() {
        let g = parse_go("IdleTimeout=90s,WriteTimeout=10s").unwrap();
        let f = check(&target(&conf_with("keepalive_timeout 60s;", "proxy_read_timeout 30s;")), &g);
        let wt = find(&f, "write-timeout");
        assert_eq!((wt.verdict, wt.outcomes[0].status), (Verdict::Applies, 502), "{wt:#?}");
        // The probe's handler runs 20s (between 10s and 30s); the 502 comes when it ends.
        assert_eq!(wt.outcomes[0].latency_s, 20.0, "{wt:#?}");
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
    // What happens in full; what does not, one entry per reason.
    let quiet = |f: &&Finding| matches!(f.verdict, Verdict::Safe | Verdict::CannotHappen);
    for f in findings.iter().filter(|f| !quiet(f)) {
        s.push_str(&format!("\n  {:<8}{}\n", f.verdict.word(), f.mechanism));
        s.push_str(&wrap(&format!("when: {}", f.when), 10));
        s.push_str(&wrap(&f.detail, 10));
        for line in &f.fix {
            s.push_str(&wrap(&format!("fix {line}"), 10));
        }
    }
    let mut groups: Vec<(Verdict, &str, Vec<&str>)> = Vec::new();
    for f in findings.iter().filter(quiet) {
        match groups.iter_mut().find(|(v, d, _)| *v == f.verdict && *d == f.detail) {
            Some((_, _, names)) => names.push(f.mechanism),
            None => groups.push((f.verdict, &f.detail, vec![f.mechanism])),
        }
    }
    if !groups.is_empty() {
        s.push('\n');
    }
    for (v, detail, names) in groups {
        let mut first = wrap(&names.join(", "), 10);
        first.replace_range(..10, &format!("  {:<8}", v.word()));
        s.push_str(&first);
        s.push_str(&wrap(&format!("({detail})"), 10));
    }
    s
}

/// One `--run` result under its finding, within 80 columns: what the
/// programs did, and whether it is what the oracle predicted.
pub fn run_line(mechanism: &str, r: &crate::runner::RunResult) -> String {
    let what = match (&r.skipped, r.observations.first()) {
        (Some(why), _) => format!("skipped: {why}"),
        (None, Some(o)) => {
            let ups: Vec<String> = o.upstream_status.iter().map(u16::to_string).collect();
            let status = o.status.map_or("no response".to_string(), |s| s.to_string());
            format!("{} → {status} (\"{}\") {:.0} ms", o.method, ups.join(", "), o.latency_ms)
        }
        (None, None) => "no request ran".into(),
    };
    let word = if r.skipped.is_some() { "SKIP".to_string() } else { crate::report::pass_word(r.passed) };
    let text = format!("{mechanism}: {what}");
    let mut out = wrap(&text, 16);
    out.replace_range(..16, &format!("  run {word}      ")[..]);
    out
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
