//! A scenario is a small declarative TOML file in `catalogue/`: Go server
//! settings, nginx settings, a workload, the expected outcome per request
//! group, and the mechanism and fix in prose. Durations are written at the
//! articles' scale ("WriteTimeout 3s, handler 5s"); the runner multiplies
//! them by `--scale` (default 0.02: 3s runs as 60ms).

use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub title: String,
    /// The scenario whose 502s this one removes (remedy twins), if any.
    #[serde(default)]
    pub remedy_of: Option<String>,
    pub mechanism: String,
    pub fix: String,
    #[serde(default)]
    pub go: GoSettings,
    #[serde(default)]
    pub nginx: NginxSettings,
    #[serde(default)]
    pub workload: Workload,
    #[serde(rename = "request")]
    pub requests: Vec<RequestGroup>,
}

/// The Go server (`http.Server` fields and handler-independent lab knobs).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoSettings {
    #[serde(default)]
    pub read_timeout: Option<String>,
    #[serde(default)]
    pub read_header_timeout: Option<String>,
    #[serde(default)]
    pub write_timeout: Option<String>,
    #[serde(default)]
    pub idle_timeout: Option<String>,
    #[serde(default = "yes")]
    pub keepalives: bool,
    /// "fin" or "rst": the deterministic idle race (emulator only).
    #[serde(default)]
    pub idle_race: Option<String>,
    /// "fin" or "rst": Shutdown closes idle conns as requests arrive (emulator only).
    #[serde(default)]
    pub shutdown_race: Option<String>,
    /// listen(2) backlog.
    #[serde(default)]
    pub backlog: Option<u32>,
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
            idle_race: None,
            shutdown_race: None,
            backlog: None,
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

/// nginx settings, rendered into nginx.conf for both proxies.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NginxSettings {
    /// `keepalive N` in the upstream block.
    #[serde(default)]
    pub keepalive: Option<u32>,
    #[serde(default)]
    pub keepalive_timeout: Option<String>,
    /// `proxy_http_version` (nginx 1.22 default: 1.0).
    #[serde(default)]
    pub http_version: Option<String>,
    /// `proxy_set_header Connection ""` (needed for upstream keepalive).
    #[serde(default)]
    pub clear_connection: bool,
    #[serde(default)]
    pub next_upstream: Option<String>,
    #[serde(default)]
    pub next_upstream_tries: Option<u32>,
    #[serde(default)]
    pub next_upstream_timeout: Option<String>,
    #[serde(default)]
    pub connect_timeout: Option<String>,
    #[serde(default)]
    pub read_timeout: Option<String>,
    /// Parameters of each upstream `server` line, in nginx syntax, by
    /// position (`["max_fails=2 fail_timeout=5s", "backup"]`); durations are
    /// at article scale.
    #[serde(default)]
    pub server_params: Vec<String>,
}

/// What the workload does to the upstream after the warm-up (TOML:
/// `action = "crash"`); the upstream backends perform it.
pub use labkit::action::Action;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workload {
    /// GET /ok requests sent first, one per upstream server, to fill
    /// nginx's keepalive cache. `warmup_concurrent` sends them at once so
    /// each opens its own connection.
    #[serde(default)]
    pub warmup: u32,
    #[serde(default)]
    pub warmup_concurrent: bool,
    /// Pause before each request (article scale).
    #[serde(default)]
    pub gap: Option<String>,
    /// Natural race mode: sweep the gap linearly from `sweep_from` to `sweep_to`.
    #[serde(default)]
    pub sweep_from: Option<String>,
    #[serde(default)]
    pub sweep_to: Option<String>,
    #[serde(default)]
    pub action: Action,
}

impl Default for Workload {
    fn default() -> Self {
        Workload { warmup: 0, warmup_concurrent: false, gap: None, sweep_from: None, sweep_to: None, action: Action::None }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestGroup {
    #[serde(default = "get")]
    pub method: String,
    /// Handler path; `ms=` query values are at article scale and get scaled.
    pub path: String,
    /// Request body bytes.
    #[serde(default)]
    pub body: usize,
    #[serde(default = "one_u32")]
    pub count: u32,
    pub expect: Expect,
}

fn get() -> String {
    "GET".into()
}
fn one_u32() -> u32 {
    1
}

/// What every request of a group must show. Unset fields are not checked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub status: Option<u16>,
    /// Any of these statuses (natural races).
    #[serde(default)]
    pub status_in: Option<Vec<u16>>,
    /// `$upstream_status` as a list, e.g. [502, 200].
    #[serde(default)]
    pub upstream_status: Option<Vec<u16>>,
    /// Error-log classes of this request's lines, in order.
    #[serde(default)]
    pub errors: Option<Vec<String>>,
    /// Each error line's class must be one of these (RST vs FIN races).
    #[serde(default)]
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
    /// Client latency at least this many handler-times (article scale).
    #[serde(default)]
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
        .map(|kv| match kv.strip_prefix("ms=").and_then(|v| v.parse::<u64>().ok()) {
            Some(ms) => format!("ms={}", scale(Duration::from_millis(ms), factor).as_millis()),
            None => kv.to_string(),
        })
        .collect();
    format!("{p}?{}", q.join("&"))
}

/// A scenario file that does not parse or validate: the file and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {msg}")]
pub struct Invalid {
    pub file: String,
    pub msg: String,
}

impl Scenario {
    pub fn from_toml(src: &str, file: &str) -> Result<Scenario, Invalid> {
        let invalid = |msg: String| Invalid { file: file.to_string(), msg };
        let s: Scenario = toml::from_str(src).map_err(|e| invalid(e.to_string()))?;
        s.validate().map_err(invalid)?;
        Ok(s)
    }

    /// What is wrong with the values serde accepted, as a message.
    fn validate(&self) -> Result<(), String> {
        let g = &self.go;
        for d in [&g.read_timeout, &g.read_header_timeout, &g.write_timeout, &g.idle_timeout].into_iter().flatten() {
            parse_duration(d).map_err(|e| e.to_string())?;
        }
        let n = &self.nginx;
        for d in [&n.keepalive_timeout, &n.next_upstream_timeout, &n.connect_timeout, &n.read_timeout].into_iter().flatten() {
            nginx_model::time::parse(d).ok_or_else(|| format!("bad nginx time {d:?}"))?;
        }
        if let Some(m) = &n.next_upstream {
            let words: Vec<String> = m.split_whitespace().map(String::from).collect();
            nginx_model::retry::Ft::parse_mask(&words).map_err(|bad| format!("next_upstream: invalid value {:?}", bad.0))?;
        }
        for params in &n.server_params {
            let words: Vec<String> = params.split_whitespace().map(String::from).collect();
            nginx_model::conf::UpstreamServer::with_params("x", &words).map_err(|e| format!("server_params: {e}"))?;
        }
        if n.server_params.len() > g.servers.max(1) {
            return Err(format!("server_params has {} entries for {} servers", n.server_params.len(), g.servers.max(1)));
        }
        if let Some(v) = &n.http_version {
            if v != "1.0" && v != "1.1" {
                return Err(format!("http_version must be \"1.0\" or \"1.1\", not {v:?}"));
            }
        }
        for race in [&g.idle_race, &g.shutdown_race].into_iter().flatten() {
            if race != "fin" && race != "rst" {
                return Err(format!("race must be \"fin\" or \"rst\", not {race:?}"));
            }
        }
        if self.requests.is_empty() {
            return Err("no [[request]]".into());
        }
        Ok(())
    }

    /// Natural-race mode: gaps swept, rates reported.
    pub fn natural(&self) -> bool {
        self.workload.sweep_from.is_some()
    }

    pub fn is_remedy(&self) -> bool {
        self.remedy_of.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_errors_with_the_file_name() {
        let base = "name='x'\ntitle='t'\nmechanism='m'\nfix='f'\n";
        let req = "[[request]]\npath='/ok'\n[request.expect]\n";
        for (extra, want) in [
            ("[nginx]\nnext_upstream='error sometimes'\n", "next_upstream: invalid value \"sometimes\""),
            ("[nginx]\nhttp_version='2'\n", "http_version"),
            ("[go]\nwrite_timeout='3x'\n", "invalid duration"),
            ("[go]\nidle_race='maybe'\n", "race must be"),
            ("[go]\nbogus=1\n", "unknown field"),
        ] {
            let err = Scenario::from_toml(&format!("{base}{extra}{req}"), "f.toml").unwrap_err().to_string();
            assert!(err.starts_with("f.toml: ") && err.contains(want), "{err}");
        }
    }

    #[test]
    fn an_absent_go_table_means_go_defaults() {
        let s: Scenario = toml::from_str("name='x'\ntitle='t'\nmechanism='m'\nfix='f'\n[[request]]\npath='/ok'\n[request.expect]\n").unwrap();
        assert!(s.go.keepalives);
        assert_eq!(s.go.servers, 1);
        let t: Scenario = toml::from_str("name='x'\ntitle='t'\nmechanism='m'\nfix='f'\n[go]\nwrite_timeout='3s'\n[[request]]\npath='/ok'\n[request.expect]\n").unwrap();
        assert!(t.go.keepalives);
        assert_eq!(t.go.servers, 1);
    }
}
