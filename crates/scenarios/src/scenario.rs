//! A scenario is a small declarative TOML file in `catalogue/`: Go server
//! settings, nginx settings, a workload, the expected outcome per request
//! group, and the mechanism and fix in prose. Durations are written at the
//! articles' scale ("WriteTimeout 3s, handler 5s"); the runner multiplies
//! them by `--scale` (default 0.02: 3s runs as 60ms).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use std::time::Duration;
use toml::Spanned;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The scenario's name: what `scenarios run NAME` takes.
    pub name: String,
    /// One line: what goes wrong.
    pub title: String,
    /// The scenario whose 502s this one removes (remedy twins), if any.
    #[serde(default)]
    pub remedy_of: Option<String>,
    /// The mechanism's id ("idle-race", "write-timeout"): the catalogue's
    /// vocabulary, shared by a problem, its variants and its remedy twins,
    /// and what `diagnose` and `check` name.
    #[serde(deserialize_with = "mechanism_id")]
    #[schemars(regex(pattern = "^[a-z0-9]+(-[a-z0-9]+)*$"))]
    pub mechanism: String,
    /// A paragraph on the mechanism: what each program does, in order.
    pub explanation: String,
    /// A paragraph on the fix, with the settings to change.
    pub fix: String,
    #[serde(default)]
    pub go: GoSettings,
    #[serde(default)]
    pub nginx: NginxSettings,
    #[serde(default)]
    pub workload: Workload,
    /// The requests, in order, each group with its expectation.
    #[serde(rename = "request")]
    pub requests: Vec<RequestGroup>,
}

/// The Go server (`http.Server` fields and handler-independent lab knobs).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GoSettings {
    /// `http.Server.ReadTimeout`, in Go's syntax ("10s", "1m30s"); unset = 0.
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub read_timeout: Option<String>,
    /// `http.Server.ReadHeaderTimeout`.
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub read_header_timeout: Option<String>,
    /// `http.Server.WriteTimeout`.
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub write_timeout: Option<String>,
    /// `http.Server.IdleTimeout` (0: ReadTimeout, then Go 1.19's
    /// ReadHeaderTimeout, stand in).
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub idle_timeout: Option<String>,
    /// Which Go's connection loop: "1.19" (the default; Debian 12's) or
    /// "1.20" (any later release: ReadHeaderTimeout no longer bounds the idle wait).
    #[serde(default, deserialize_with = "go_version")]
    #[schemars(regex(pattern = "^(go)?1\\.(19|20)$"))]
    pub go_version: Option<String>,
    /// `SetKeepAlivesEnabled` (Go's default: true).
    #[serde(default = "yes")]
    pub keepalives: bool,
    /// "fin" or "rst": the deterministic idle race (emulator only).
    #[serde(default, deserialize_with = "race")]
    #[schemars(regex(pattern = "^(fin|rst)$"))]
    pub idle_race: Option<String>,
    /// "fin" or "rst": Shutdown closes idle conns as requests arrive (emulator only).
    #[serde(default, deserialize_with = "race")]
    #[schemars(regex(pattern = "^(fin|rst)$"))]
    pub shutdown_race: Option<String>,
    /// listen(2) backlog.
    #[serde(default)]
    pub backlog: Option<u32>,
    /// The process's fd limit (RLIMIT_NOFILE: `ulimit -n`, systemd's
    /// `LimitNOFILE`); unset: the lab's own. Go 1.19 holds 7 descriptors
    /// before its first connection, so at least 8.
    #[serde(default)]
    #[schemars(range(min = 8))]
    pub fd_limit: Option<u32>,
    /// Number of upstream servers (each its own Go server).
    #[serde(default = "one")]
    pub servers: usize,
}

/// Go's defaults (keep-alives on) and one server: the same values serde
/// fills in for a `[go]` table that omits them.
impl Default for GoSettings {
    fn default() -> Self {
        GoSettings {
            read_timeout: None,
            read_header_timeout: None,
            write_timeout: None,
            idle_timeout: None,
            keepalives: true,
            go_version: None,
            idle_race: None,
            shutdown_race: None,
            backlog: None,
            fd_limit: None,
            servers: 1,
        }
    }
}

fn yes() -> bool {
    true
}
fn one() -> usize {
    1
}

/// nginx settings, rendered into nginx.conf for both proxies: the short
/// keys, or real nginx.conf text (`upstream_conf`, `location_conf`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NginxSettings {
    /// `keepalive N` in the upstream block.
    #[serde(default)]
    pub keepalive: Option<u32>,
    /// `keepalive_timeout` in the upstream block, in nginx's syntax ("60s", "1m 30s").
    #[serde(default, deserialize_with = "nginx_time")]
    pub keepalive_timeout: Option<String>,
    /// `proxy_http_version`: "1.0" (nginx 1.22's default) or "1.1".
    #[serde(default, deserialize_with = "http_version")]
    #[schemars(regex(pattern = "^1\\.[01]$"))]
    pub http_version: Option<String>,
    /// `proxy_set_header Connection ""` (needed for upstream keepalive).
    #[serde(default)]
    pub clear_connection: bool,
    /// `proxy_next_upstream`'s words ("error timeout http_502").
    #[serde(default, deserialize_with = "next_upstream")]
    pub next_upstream: Option<String>,
    /// `proxy_next_upstream_tries`.
    #[serde(default)]
    pub next_upstream_tries: Option<u32>,
    /// `proxy_next_upstream_timeout`.
    #[serde(default, deserialize_with = "nginx_time")]
    pub next_upstream_timeout: Option<String>,
    /// `proxy_connect_timeout`.
    #[serde(default, deserialize_with = "nginx_time")]
    pub connect_timeout: Option<String>,
    /// `proxy_read_timeout`.
    #[serde(default, deserialize_with = "nginx_time")]
    pub read_timeout: Option<String>,
    /// `proxy_buffer_size`, in nginx's size syntax ("4k", "12k"): the
    /// buffer the response header must fit in. Above 14k nginx 1.22 also
    /// needs larger `proxy_buffers`, which the lab does not write.
    #[serde(default, deserialize_with = "nginx_buffer_size")]
    pub buffer_size: Option<String>,
    /// Parameters of each upstream `server` line, in nginx syntax, by
    /// position (`["max_fails=2 fail_timeout=5s", "backup"]`); durations are
    /// at article scale.
    #[serde(default, deserialize_with = "server_params")]
    pub server_params: Vec<String>,
    /// The upstream is named `localhost`, and /etc/hosts maps it to both
    /// `::1` and `127.0.0.1`: nginx resolves the name when it reads the
    /// configuration and makes a peer of each address, `[::1]:P` first
    /// (`ngx_parse_url`, `ngx_http_upstream_init_round_robin`). The lab
    /// writes those two `server` lines for each Go server (its parameters
    /// on both); Go listens on `127.0.0.1:P` only.
    #[serde(default)]
    pub localhost: bool,
    /// `net.ipv4.ip_local_port_range` of nginx's host, "LOW HIGH": the
    /// ports `connect()` gives nginx's upstream connections. A connection
    /// holds its port while open and, when nginx closed it first, for
    /// TIME_WAIT (60 s) after; with none left for the server's address,
    /// `connect()` fails at once with 99 (EADDRNOTAVAIL). The scenario runs
    /// in a network namespace of its own (root only; skipped, saying so,
    /// elsewhere), where the range is set once the lab's listeners are up.
    /// A range above 60999 stays clear of their ports.
    #[serde(default, deserialize_with = "port_range")]
    #[schemars(regex(pattern = "^[0-9]+ [0-9]+$"))]
    pub ip_local_port_range: Option<String>,
    /// `auth_request`: the Go handler path an auth subrequest goes to
    /// (`"/ok"`). The lab writes `auth_request /auth;` in `location /` and
    /// `location = /auth { proxy_pass http://go_upstream/PATH; ... }` with
    /// the same proxy settings as `location /` (the short keys' or
    /// `location_conf`'s). The subrequest is a GET that carries the client
    /// request's headers, its Content-Length too, and no body.
    #[serde(default)]
    pub auth_request: Option<String>,
    /// `proxy_set_header Content-Length "";` in the auth location (with
    /// the location's other `proxy_set_header` lines, which it would
    /// otherwise no longer inherit).
    #[serde(default)]
    pub auth_clear_length: bool,
    /// nginx.conf text for the inside of the `upstream` block, after the
    /// lab's `server` lines (`keepalive 16; keepalive_timeout 60s;`).
    /// Instead of the short upstream keys.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub upstream_conf: Option<Spanned<String>>,
    /// nginx.conf text for the inside of `location /`, after the lab's
    /// `proxy_pass` (`proxy_http_version 1.1; proxy_set_header Connection "";`).
    /// Instead of the short location keys.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub location_conf: Option<Spanned<String>>,
    /// The nginx release whose defaults the configuration means: 1.22's
    /// when unset (upstream HTTP/1.0, `Connection: close`, no keepalive
    /// cache), or "1.29.7" and later (HTTP/1.1, no Connection header,
    /// `keepalive 32` in an `upstream` block). Only the built-in proxy runs
    /// the new defaults; an older real nginx skips the scenario, saying why.
    #[serde(default, deserialize_with = "nginx_version")]
    pub version: Option<String>,
    /// `upstream_conf` read from a file (a path relative to the scenario
    /// file): the text you include in your own `upstream` block.
    #[serde(default)]
    pub upstream_conf_file: Option<String>,
    /// `location_conf` read from a file (relative to the scenario file).
    #[serde(default)]
    pub location_conf_file: Option<String>,
}

/// What the workload does to the upstream after the warm-up (TOML:
/// `action = "crash"`); the upstream backends perform it.
pub use labkit::action::Action;


#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// GET /ok requests sent first, one per upstream server, to fill
    /// nginx's keepalive cache. `warmup_concurrent` sends them at once so
    /// each opens its own connection.
    #[serde(default)]
    pub warmup: u32,
    #[serde(default)]
    pub warmup_concurrent: bool,
    /// Pause before each request (article scale, Go's syntax).
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub gap: Option<String>,
    /// Natural race mode: sweep the gap linearly from `sweep_from` to `sweep_to`.
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub sweep_from: Option<String>,
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub sweep_to: Option<String>,
    /// How the swept gaps spread: "linear" (evenly, in order), "uniform"
    /// (independent draws, reproducible from `seed`) or "poisson"
    /// (exponential with mean `sweep_from`, at most `sweep_to`).
    #[serde(default)]
    pub sweep: Sweep,
    /// The seed of a uniform sweep.
    #[serde(default)]
    pub seed: u64,
    /// What happens to the upstream after the warm-up: "none", "crash",
    /// "shutdown", "keepalives-off-then-shutdown", "restart-handoff",
    /// "fill-backlog", "hold-connections", "reuseport-handoff-queued",
    /// "fd-handoff-queued".
    #[serde(default)]
    pub action: Action,
}

impl Default for Workload {
    fn default() -> Self {
        Workload { warmup: 0, warmup_concurrent: false, gap: None, sweep_from: None, sweep_to: None, sweep: Sweep::Linear, seed: 0, action: Action::None }
    }
}

/// The order and spread of a natural-race sweep's gaps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Sweep {
    #[default]
    Linear,
    Uniform,
    /// The gaps of a Poisson arrival process: exponential with mean
    /// `sweep_from`, cut at `sweep_to` (`scenarios rate`'s check run).
    Poisson,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestGroup {
    /// The request method (default GET).
    #[serde(default = "get")]
    pub method: String,
    /// Handler path; `ms=` query values are at article scale and get scaled.
    pub path: String,
    /// Request body bytes.
    #[serde(default)]
    pub body: usize,
    /// How many such requests, one after the other.
    #[serde(default = "one_u32")]
    pub count: u32,
    /// A slow client: once the response head has arrived, the client stops
    /// reading for this long (article scale, Go's syntax), then reads the
    /// rest. The body backs up through the socket buffers (nginx's, with
    /// `proxy_buffering off`) into Go's writes. Not predicted by the oracle:
    /// how much the buffers hold is the kernel's.
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub client_pause: Option<String>,
    pub expect: Expect,
}

fn get() -> String {
    "GET".into()
}
fn one_u32() -> u32 {
    1
}

/// What every request of a group must show. Unset fields are not checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The status the client gets.
    #[serde(default)]
    pub status: Option<u16>,
    /// Any of these statuses (natural races).
    #[serde(default)]
    pub status_in: Option<Vec<u16>>,
    /// `$upstream_status` as a list, e.g. [502, 200].
    #[serde(default)]
    pub upstream_status: Option<Vec<u16>>,
    /// Error-log classes of this request's lines, in order
    /// ("premature-close", "reset", "connect-refused", ...).
    #[serde(default, deserialize_with = "classes")]
    pub errors: Option<Vec<String>>,
    /// Each error line's class must be one of these (RST vs FIN races).
    #[serde(default, deserialize_with = "classes")]
    pub errors_in: Option<Vec<String>>,
    /// How many times the upstream handler ran for this request.
    #[serde(default)]
    pub handler_runs: Option<u64>,
    /// Body bytes the client received.
    #[serde(default)]
    pub body_bytes: Option<u64>,
    /// The response was cut off (framing incomplete).
    #[serde(default)]
    pub truncated: Option<bool>,
    /// Client latency at least this (article scale, Go's syntax).
    #[serde(default, deserialize_with = "go_duration")]
    #[schemars(regex(pattern = GO_DURATION))]
    pub min_latency: Option<String>,
}

/// A duration in Go's syntax ("300ms", "1.5s").
/// The default run scale: 3s in an article runs as 60 ms.
pub const DEFAULT_SCALE: f64 = 0.02;

pub fn parse_duration(s: &str) -> Result<Duration, go_model::godur::ParseDurationError> {
    go_model::godur::parse(s)
}

/// Scales a duration; the result is rounded to whole milliseconds (nginx's
/// granularity), at least 1 ms when the input is non-zero.
pub fn scale(d: Duration, factor: f64) -> Duration {
    if d.is_zero() {
        return d;
    }
    Duration::from_millis(((d.as_secs_f64() * factor * 1000.0).round() as u64).max(1))
}

/// Scales every `ms=N` query value of a handler path.
pub fn scale_path(path: &str, factor: f64) -> String {
    let Some((p, q)) = path.split_once('?') else { return path.to_string() };
    let q: Vec<String> = q
        .split('&')
        .map(|kv| {
            // Milliseconds: a handler's sleep (`ms=`) and `/sse`'s heartbeat interval (`every=`).
            let key = ["ms=", "every="].into_iter().find(|k| kv.starts_with(k));
            match key.and_then(|k| Some((k, kv[k.len()..].parse::<u64>().ok()?))) {
                Some((k, ms)) => format!("{k}{}", scale(Duration::from_millis(ms), factor).as_millis()),
                None => kv.to_string(),
            }
        })
        .collect();
    format!("{p}?{}", q.join("&"))
}

// ---- typed values: checked while the file is read, so an error points at the value

/// Go's `time.ParseDuration` syntax, for the schema.
/// What [`parse_duration`] accepts (trimmed): "0", or an optional `+` and
/// number-unit pairs; checked against it in the tests.
const GO_DURATION: &str = r"^(0|\+?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";

fn checked<'de, D, T>(d: D, check: impl Fn(&T) -> Result<(), String>) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let v = T::deserialize(d)?;
    check(&v).map_err(serde::de::Error::custom)?;
    Ok(Some(v))
}

fn go_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| parse_duration(v).map(drop).map_err(|e| format!("not a Go duration: {e}")))
}

fn nginx_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| nginx_model::time::parse(v).map(drop).ok_or_else(|| format!("{v:?} is not an nginx time (ngx_parse_time: \"60s\", \"1m 30s\", \"500ms\")")))
}

fn nginx_buffer_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| match nginx_model::num::parse_size(v.as_bytes()) {
        None => Err(format!("{v:?} is not an nginx size (ngx_parse_size: \"4k\", \"12k\", \"8192\")")),
        // ngx_http_proxy_merge_loc_conf with the default proxy_buffers 8 4k.
        Some(b) if 2 * b.max(4096) > 7 * 4096 => {
            Err(format!("{v:?}: above 14k nginx also needs larger proxy_buffers (\"proxy_busy_buffers_size\" must be less than the size of all \"proxy_buffers\" minus one buffer)"))
        }
        Some(_) => Ok(()),
    })
}

fn port_range<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| parse_port_range(v).map(drop))
}

/// "LOW HIGH", as the sysctl is written: 1024 ≤ LOW ≤ HIGH ≤ 65535.
pub fn parse_port_range(v: &str) -> Result<(u16, u16), String> {
    let bad = || format!("ip_local_port_range is \"LOW HIGH\" (\"61000 61003\"), 1024 ≤ LOW ≤ HIGH ≤ 65535, not {v:?}");
    let mut it = v.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi)), None) if (1024..=hi).contains(&lo) => Ok((lo, hi)),
        _ => Err(bad()),
    }
}

fn http_version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| if v == "1.0" || v == "1.1" { Ok(()) } else { Err(format!("must be \"1.0\" or \"1.1\", not {v:?}")) })
}

fn go_version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| v.parse::<go_model::GoVersion>().map(drop).map_err(|e| e.to_string()))
}

fn nginx_version<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| parse_nginx_version(v).map(drop))
}

/// "1.29.7" or "1.22" (patch 0).
fn parse_nginx_version(v: &str) -> Result<nginx_model::version::Version, String> {
    let n: Vec<u32> = v.split('.').map(str::parse).collect::<Result<_, _>>().map_err(|_| format!("an nginx version is MAJOR.MINOR[.PATCH] (\"1.29.7\"), not {v:?}"))?;
    match n[..] {
        [a, b] => Ok(nginx_model::version::Version(a, b, 0)),
        [a, b, c] => Ok(nginx_model::version::Version(a, b, c)),
        _ => Err(format!("an nginx version is MAJOR.MINOR[.PATCH] (\"1.29.7\"), not {v:?}")),
    }
}

fn mechanism_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let v = String::deserialize(d)?;
    let kebab = !v.is_empty() && v.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    if kebab {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!("a mechanism id is lowercase words joined by '-' (\"idle-race\"), not {v:?}")))
    }
}

fn race<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| if v == "fin" || v == "rst" { Ok(()) } else { Err(format!("race must be \"fin\" or \"rst\", not {v:?}")) })
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn next_upstream<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, |v: &String| nginx_model::retry::Ft::parse_mask(&words(v)).map(drop).map_err(|bad| format!("invalid value {:?}", bad.0)))
}

fn server_params<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v = checked(d, |v: &Vec<String>| {
        v.iter().try_for_each(|p| nginx_model::conf::UpstreamServer::with_params("x", &words(p)).map(drop).map_err(|e| e.to_string()))
    })?;
    Ok(v.unwrap_or_default())
}

fn classes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    use nginx_model::failure::Class;
    checked(d, |v: &Vec<String>| {
        v.iter().try_for_each(|c| {
            c.parse::<Class>().map(drop).map_err(|_| {
                let known: Vec<&str> = Class::ALL.iter().map(|c| c.as_str()).collect();
                format!("unknown error class {c:?}; one of {}", known.join(", "))
            })
        })
    })
}

/// A scenario file that does not parse or validate: where, which field, what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {}{msg}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct Invalid {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// The field, as a dotted path (`go.write_timeout`, `request[2].expect.status`).
    pub field: Option<String>,
    pub msg: String,
}

/// Line and column (1-based, in characters) of a byte offset.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let mut end = offset;
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    let before = &src[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// The dotted field path of the key on `line` (1-based): the nearest table
/// header above it (`[[request]]` headers counted, so groups have an index)
/// and the key before `=`.
fn field_at(src: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = src.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let header = |l: &str| -> Option<(String, bool)> {
        let l = l.trim();
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            return Some((name.trim().to_string(), true));
        }
        l.strip_prefix('[').and_then(|r| r.split(']').next()).map(|n| (n.trim().to_string(), false))
    };
    let indexed = |upto: usize, name: &str| {
        // `request.expect` belongs to the latest `[[request]]`.
        let root = name.split('.').next().unwrap_or(name);
        let n = lines[..upto].iter().filter(|l| header(l).is_some_and(|(h, arr)| arr && h == root)).count();
        if n == 0 {
            name.to_string()
        } else {
            format!("{root}[{n}]{}", &name[root.len()..])
        }
    };
    if let Some((name, _)) = header(here) {
        return Some(indexed(line, &name));
    }
    let key = here.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('#') {
        return None;
    }
    let table = (0..line - 1).rev().find_map(|i| header(lines[i]).map(|(h, _)| (i, h)));
    Some(match table {
        Some((i, h)) => format!("{}.{key}", indexed(i + 1, &h)),
        None => key.to_string(),
    })
}

/// The first line that sets `key` (in `[table]` if given), for errors about
/// a value that is valid alone but not with the others.
fn key_offset(src: &str, table: Option<&str>, key: &str) -> Option<usize> {
    let mut in_table = table.is_none();
    let mut offset = 0;
    for l in src.split_inclusive('\n') {
        let t = l.trim();
        if t.starts_with('[') {
            in_table = table.is_some_and(|want| t.trim_matches(|c| c == '[' || c == ']').trim() == want);
        } else if in_table && t.split('=').next().is_some_and(|k| k.trim() == key) && t.contains('=') {
            return Some(offset + (l.len() - l.trim_start().len()));
        }
        offset += l.len();
    }
    None
}

/// The byte offset in `src` of line `line` (1-based) of the string value
/// that starts at `value_start` (its opening quote). A multi-line string
/// starts on the next line (TOML drops the newline after `"""`).
fn snippet_line_offset(src: &str, value_start: usize, line: usize) -> usize {
    let rest = &src[value_start.min(src.len())..];
    let mut at = value_start;
    let triple = rest.starts_with("\"\"\"") || rest.starts_with("'''");
    if triple {
        at += 3;
        if src[at..].starts_with('\n') {
            at += 1;
        } else if src[at..].starts_with("\r\n") {
            at += 2;
        }
    } else {
        at += 1;
    }
    for _ in 1..line {
        match src[at..].find('\n') {
            Some(i) => at += i + 1,
            None => break,
        }
    }
    at
}

/// Cross-field errors, located at the key they are about.
struct Problem {
    table: Option<&'static str>,
    key: &'static str,
    /// Byte offset in the file, when known more precisely than the key.
    at: Option<usize>,
    msg: String,
}

impl Problem {
    fn at_key(table: &'static str, key: &'static str, msg: String) -> Problem {
        Problem { table: Some(table), key, at: None, msg }
    }
}

impl Scenario {
    /// A scenario from its TOML text; `file` names it in errors, and
    /// `*_conf_file` paths are relative to its directory.
    pub fn from_toml(src: &str, file: &str) -> Result<Scenario, Invalid> {
        let mut s: Scenario = toml::from_str(src).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |r| line_col(src, r.start));
            Invalid { file: file.to_string(), line, column, field: field_at(src, line), msg: e.message().trim().to_string() }
        })?;
        let at_key = |key: &str, msg: String| {
            let (line, column) = line_col(src, key_offset(src, Some("nginx"), key).unwrap_or(0));
            Invalid { file: file.to_string(), line, column, field: Some(format!("nginx.{key}")), msg }
        };
        // Snippets from files: read here, checked below like inline text,
        // errors named at their own file and line.
        let mut from_files = Vec::new();
        let dir = std::path::Path::new(file).parent().unwrap_or(std::path::Path::new(""));
        let n = &mut s.nginx;
        for (key, path, text) in [
            ("upstream_conf_file", &n.upstream_conf_file, &mut n.upstream_conf),
            ("location_conf_file", &n.location_conf_file, &mut n.location_conf),
        ] {
            let Some(path) = path else { continue };
            if text.is_some() {
                return Err(at_key(key, format!("set {} or {key}, not both", key.trim_end_matches("_file"))));
            }
            let full = dir.join(path);
            let body = std::fs::read_to_string(&full).map_err(|e| at_key(key, format!("cannot read {}: {e}", full.display())))?;
            *text = Some(Spanned::new(0..0, body));
            from_files.push((key.trim_end_matches("_file"), key, full));
        }
        if !from_files.is_empty() {
            if let Err(e) = crate::setup::nginx_snippets(&s.nginx) {
                if let Some((_, key, full)) = from_files.iter().find(|(k, _, _)| *k == e.place.0) {
                    return Err(Invalid { file: full.display().to_string(), line: e.place.1, column: 1, field: Some(format!("nginx.{key}")), msg: e.msg });
                }
            }
        }
        s.validate(src).map_err(|p| {
            let at = p.at.or_else(|| key_offset(src, p.table, p.key)).unwrap_or(0);
            let (line, column) = line_col(src, at);
            let field = Some(match p.table {
                Some(t) => format!("{t}.{}", p.key),
                None => p.key.to_string(),
            });
            Invalid { file: file.to_string(), line, column, field, msg: p.msg }
        })?;
        Ok(s)
    }

    /// What is wrong with values that are valid one by one.
    fn validate(&self, src: &str) -> Result<(), Problem> {
        let (g, n) = (&self.go, &self.nginx);
        if n.server_params.len() > g.servers.max(1) {
            return Err(Problem::at_key("nginx", "server_params", format!("{} entries for {} servers ([go] servers)", n.server_params.len(), g.servers.max(1))));
        }
        if n.localhost && self.workload.action != Action::None {
            let action = serde_json::to_value(self.workload.action).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            return Err(Problem::at_key("nginx", "localhost", format!("not with a workload action (\"{action}\"): the [::1] peers are no Go server's")));
        }
        if let Some(p) = n.auth_request.as_deref().filter(|p| !p.starts_with('/') || p.contains(|c: char| c.is_whitespace() || c == ';' || c == '{' || c == '}' || c == '"' || c == '\'' || c == '$')) {
            return Err(Problem::at_key("nginx", "auth_request", format!("{p:?}: a Go handler path (\"/ok\"), without spaces, quotes, ';', braces or '$'")));
        }
        if n.auth_clear_length && n.auth_request.is_none() {
            return Err(Problem::at_key("nginx", "auth_clear_length", "without auth_request: there is no auth location".to_string()));
        }
        if let Some(limit) = g.fd_limit.filter(|&l| l <= go_model::rules::STARTUP_FDS) {
            return Err(Problem::at_key("go", "fd_limit", format!("{limit}: Go holds {} descriptors before its first connection", go_model::rules::STARTUP_FDS)));
        }
        if self.requests.is_empty() {
            return Err(Problem { table: None, key: "request", at: Some(0), msg: "no [[request]]: a scenario sends at least one request".into() });
        }
        let sugar_upstream = [("keepalive", n.keepalive.is_some()), ("keepalive_timeout", n.keepalive_timeout.is_some())];
        let sugar_location = [
            ("http_version", n.http_version.is_some()),
            ("clear_connection", n.clear_connection),
            ("next_upstream", n.next_upstream.is_some()),
            ("next_upstream_tries", n.next_upstream_tries.is_some()),
            ("next_upstream_timeout", n.next_upstream_timeout.is_some()),
            ("connect_timeout", n.connect_timeout.is_some()),
            ("read_timeout", n.read_timeout.is_some()),
            ("buffer_size", n.buffer_size.is_some()),
        ];
        for (text, sugar, name) in [(&n.upstream_conf, &sugar_upstream[..], "upstream_conf"), (&n.location_conf, &sugar_location[..], "location_conf")] {
            if text.is_some() {
                if let Some((key, _)) = sugar.iter().find(|(_, set)| *set) {
                    return Err(Problem::at_key("nginx", key, format!("set in {name} or here, not both")));
                }
            }
        }
        if let Err(e) = crate::setup::nginx_snippets(n) {
            let (which, line) = e.place;
            let text = if which == "upstream_conf" { &n.upstream_conf } else { &n.location_conf };
            let at = text.as_ref().map(|t| snippet_line_offset(src, t.span().start, line));
            return Err(Problem { table: Some("nginx"), key: which, at, msg: e.msg });
        }
        Ok(())
    }

    /// Natural-race mode: gaps swept, rates reported.
    /// Whose defaults the scenario's nginx configuration means.
    pub fn nginx_profile(&self) -> nginx_model::Profile {
        self.nginx.version.as_deref().and_then(|v| parse_nginx_version(v).ok()).map_or(nginx_model::Profile::Legacy, |v| v.profile())
    }

    pub fn natural(&self) -> bool {
        self.workload.sweep_from.is_some()
    }

    /// nginx's host's `ip_local_port_range`, when the scenario sets one
    /// (checked when the file was read).
    pub fn local_port_range(&self) -> Option<(u16, u16)> {
        self.nginx.ip_local_port_range.as_deref().and_then(|v| parse_port_range(v).ok())
    }

    pub fn is_remedy(&self) -> bool {
        self.remedy_of.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_errors_at_their_line_column_and_field() {
        let base = "name='x'\ntitle='t'\nmechanism='m'\nexplanation='e'\nfix='f'\n";
        let req = "[[request]]\npath='/ok'\n[request.expect]\n";
        for (extra, want) in [
            ("[nginx]\nnext_upstream='error sometimes'\n", "f.toml:7:15: nginx.next_upstream: invalid value \"sometimes\""),
            ("[nginx]\nhttp_version='2'\n", "f.toml:7:14: nginx.http_version: must be \"1.0\" or \"1.1\""),
            ("[go]\nwrite_timeout='3x'\n", "f.toml:7:15: go.write_timeout: not a Go duration"),
            ("[go]\nidle_race='maybe'\n", "f.toml:7:11: go.idle_race: race must be"),
            ("[go]\nbogus=1\n", "f.toml:7:1: go.bogus: unknown field `bogus`"),
            ("[nginx]\nkeepalive_timeout='5x'\n", "f.toml:7:19: nginx.keepalive_timeout: \"5x\" is not an nginx time"),
            ("[nginx]\nserver_params=['wieght=2']\n", "f.toml:7:15: nginx.server_params: invalid parameter \"wieght=2\""),
            ("[nginx]\nserver_params=['', '']\n", "f.toml:7:1: nginx.server_params: 2 entries for 1 servers"),
            ("[nginx]\nkeepalive=2\nupstream_conf='keepalive 4;'\n", "f.toml:7:1: nginx.keepalive: set in upstream_conf or here, not both"),
            ("[nginx]\nlocation_conf=\"\"\"\nproxy_http_version 1.1;\nproxy_read_timeout 5x;\n\"\"\"\n", "f.toml:9:1: nginx.location_conf: \"proxy_read_timeout\" directive invalid value"),
            ("[nginx]\nupstream_conf='keepalive;'\n", "f.toml:7:16: nginx.upstream_conf: invalid number of arguments in \"keepalive\" directive"),
            ("[nginx]\nupstream_conf='server 127.0.0.1:2;'\n", "nginx.upstream_conf: the servers are the lab's"),
            ("[nginx]\nlocalhost=true\n[workload]\naction='crash'\n", "f.toml:7:1: nginx.localhost: not with a workload action (\"crash\")"),
            ("[go]\nfd_limit=7\n", "go.fd_limit: 7: Go holds 7 descriptors"),
            ("[workload]\naction='exhaust-everything'\n", "workload.action: unknown variant"),
        ] {
            let err = Scenario::from_toml(&format!("{base}{extra}{req}"), "f.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{extra:?}:\n got  {err}\n want {want}");
        }
        let no_requests = Scenario::from_toml(base, "f.toml").unwrap_err().to_string();
        assert!(no_requests.starts_with("f.toml:1:1: "), "{no_requests}");
        let bad_expect = Scenario::from_toml(&format!("{base}{req}status=200\n[[request]]\npath='/ok'\n[request.expect]\nerrors=['nope']\n"), "f.toml").unwrap_err();
        assert_eq!((bad_expect.line, bad_expect.field.as_deref()), (13, Some("request[2].expect.errors")), "{bad_expect}");
        let bad_pause = Scenario::from_toml(&format!("{base}[[request]]\npath='/ok'\nclient_pause='-1s'\n[request.expect]\n"), "f.toml").unwrap_err();
        assert_eq!((bad_pause.line, bad_pause.field.as_deref()), (8, Some("request[1].client_pause")), "{bad_pause}");
    }

    #[test]
    fn the_schema_pattern_for_go_durations_is_what_the_reader_accepts() {
        let re = regex::Regex::new(GO_DURATION).unwrap();
        for d in ["0", "5s", "+5s", "1m30s", "1.5s", ".5s", "5.s", "300ms", "1h2m3.5s", "10µs", "10us", "5", "3x", "s", "", "-3s", "1..5s", ".s", "5s5"] {
            assert_eq!(re.is_match(d), parse_duration(d).is_ok(), "{d:?}");
        }
    }

    #[test]
    fn nginx_conf_text_means_what_the_short_keys_mean() {
        let head = "name='x'\ntitle='t'\nmechanism='m'\nexplanation='e'\nfix='f'\n";
        let req = "[[request]]\npath='/ok'\n[request.expect]\n";
        let sugar = Scenario::from_toml(&format!("{head}[nginx]\nkeepalive=16\nkeepalive_timeout='60s'\nhttp_version='1.1'\nclear_connection=true\nread_timeout='3s'\nnext_upstream='error timeout'\n{req}"), "a.toml").unwrap();
        let text = Scenario::from_toml(
            &format!("{head}[nginx]\nupstream_conf='''\nkeepalive 16;\nkeepalive_timeout 60s;\n'''\nlocation_conf='''\nproxy_http_version 1.1;\nproxy_set_header Connection \"\";\nproxy_read_timeout 3s;\nproxy_next_upstream error timeout;\n'''\n{req}"),
            "b.toml",
        )
        .unwrap();
        let addrs = ["127.0.0.1:9".parse().unwrap()];
        let listen = "127.0.0.1:8".parse().unwrap();
        // What the model runs (positions in the file aside).
        let resolved = |c: &nginx_model::conf::Config| {
            let r = nginx_model::resolve::resolve(c, nginx_model::Profile::Legacy).unwrap();
            (r.upstreams[0].keepalive, r.servers[0].locations.clone())
        };
        for scale in [1.0, 0.02] {
            let (a, b) = (crate::setup::nginx_config(&sugar, &addrs, listen, scale), crate::setup::nginx_config(&text, &addrs, listen, scale));
            // The same settings, for the oracle and for the proxy, which
            // reads the rendered file as nginx does.
            assert_eq!(resolved(&a), resolved(&b), "scale {scale}");
            let back = nginx_model::conf::parse(&b.render(), "rendered").unwrap();
            assert_eq!(resolved(&back), resolved(&b), "scale {scale}");
        }
        // nginx gets the text as written, times at run scale.
        let r = crate::setup::nginx_config(&text, &addrs, listen, 0.02).render();
        assert!(r.contains("keepalive 16;\nkeepalive_timeout 1200ms;\n"), "{r}");
        assert!(r.contains("proxy_http_version 1.1;\nproxy_set_header Connection \"\";\nproxy_read_timeout 60ms;\nproxy_next_upstream error timeout;\n"), "{r}");
    }

    #[test]
    fn an_absent_go_table_means_go_defaults() {
        let s: Scenario = toml::from_str("name='x'\ntitle='t'\nmechanism='m'\nexplanation='e'\nfix='f'\n[[request]]\npath='/ok'\n[request.expect]\n").unwrap();
        assert!(s.go.keepalives);
        assert_eq!(s.go.servers, 1);
        let t: Scenario = toml::from_str("name='x'\ntitle='t'\nmechanism='m'\nexplanation='e'\nfix='f'\n[go]\nwrite_timeout='3s'\n[[request]]\npath='/ok'\n[request.expect]\n").unwrap();
        assert!(t.go.keepalives);
        assert_eq!(t.go.servers, 1);
    }
}
