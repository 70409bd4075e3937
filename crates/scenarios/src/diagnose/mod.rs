//! `scenarios diagnose`: a user's error.log and access.log → each 502, 504,
//! 499, cut response and hidden retry attributed to a mechanism of the
//! catalogue, with the evidence and the fix.
//!
//! * [`signature`]: what each mechanism looks like, derived from the
//!   catalogue's problem scenarios through the oracle.
//! * [`classify`]: one request's evidence against those shapes (pure).
//! * [`input`]: plain or gzip files, line by line.
//! * this module: the streaming join of the two logs and the tallies;
//!   [`render`]: the report as text (80 columns) and JSON.
//!
//! The join streams both files once, in time order: error.log lines of the
//! upstream path wait in a bounded window (`Options::window`, at most
//! `Options::max_pending` lines) for the access line of their request
//! (same method and path, same `*conn` when the format has `$connection`,
//! within the request's time); what the window lets go unmatched is
//! classified from error.log alone. Per-endpoint and per-server state is
//! kept as hashes, capped, so memory does not grow with the input.

pub mod classify;
mod input;
pub mod render;
pub mod signature;

pub use input::Lines;

use classify::{candidates, complete, decide, Attempt, Candidate, Confidence, Context, Evidence, Outcome};
use nginx_model::failure::Class;
use nginx_model::logparse::{self, parse_error_line, AccessFormat, ErrorText, Var};
use signature::Mechanism;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::{Hash, Hasher};

/// Bounds of the join.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// How long (seconds of log time) an error line waits for its access line.
    pub window: i64,
    /// At most this many error lines wait; beyond, the oldest is let go.
    pub max_pending: usize,
    /// At most this many endpoints, servers×minutes and tie groups are tracked.
    pub max_tracked: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { window: 300, max_pending: 100_000, max_tracked: 200_000 }
    }
}

/// One input's counts.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct InputStats {
    pub name: String,
    pub lines: u64,
    pub bytes: u64,
    pub gzip: bool,
    pub malformed: u64,
    /// The first malformed lines: (line number, why).
    pub malformed_examples: Vec<(u64, String)>,
}

impl InputStats {
    fn malformed(&mut self, line: u64, why: &str) {
        self.malformed += 1;
        if self.malformed_examples.len() < 5 {
            self.malformed_examples.push((line, why.to_string()));
        }
    }
}

/// What a group of requests showed.
#[derive(Debug, Clone, Default, serde::Serialize, schemars::JsonSchema)]
pub struct Tally {
    pub requests: u64,
    /// By what the client got ("502", "504", "499", "cut", "retried", "log-only").
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Error classes of the failed attempts.
    pub classes: BTreeMap<Class, u64>,
    /// `METHOD "upstream_status"`, the most frequent first in the report.
    pub shapes: BTreeMap<String, u64>,
    /// `$upstream_response_time` of the failed attempts.
    pub times: TimeStats,
    /// The catalogue scenario each request looked most like.
    pub scenarios: BTreeMap<String, u64>,
    pub confidence: BTreeMap<Confidence, u64>,
    /// Mechanisms some requests fitted as well, by id.
    pub lookalikes: BTreeMap<String, u64>,
    /// What broke ties, by rule.
    pub tie_rules: BTreeMap<&'static str, u64>,
    /// Where to look: `file:line` of the first requests.
    pub examples: Vec<String>,
}

/// Min, max and mean of some durations.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, schemars::JsonSchema)]
pub struct TimeStats {
    pub n: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
}

impl TimeStats {
    fn add(&mut self, t: f64) {
        if self.n == 0 || t < self.min {
            self.min = t;
        }
        if self.n == 0 || t > self.max {
            self.max = t;
        }
        self.n += 1;
        self.sum += t;
    }

    fn merge(&mut self, o: &TimeStats) {
        if o.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *o;
            return;
        }
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
        self.n += o.n;
        self.sum += o.sum;
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum / self.n as f64
        }
    }
}

const MAX_SHAPES: usize = 12;

impl Tally {
    fn add(&mut self, e: &Evidence, outcome: Outcome, example: &str) {
        self.requests += 1;
        *self.outcomes.entry(outcome.label()).or_default() += 1;
        for a in &e.attempts {
            if let Some(c) = a.class {
                *self.classes.entry(c).or_default() += 1;
            }
            if a.class.is_some() || matches!(a.status, Some(502 | 504)) {
                if let Some(t) = a.time {
                    self.times.add(t);
                }
            }
        }
        if let Some(c) = e.body {
            *self.classes.entry(c).or_default() += 1;
        }
        let shape = shape_label(e);
        if self.shapes.len() < MAX_SHAPES || self.shapes.contains_key(&shape) {
            *self.shapes.entry(shape).or_default() += 1;
        } else {
            *self.shapes.entry("(other)".into()).or_default() += 1;
        }
        if self.examples.len() < 3 {
            self.examples.push(example.to_string());
        }
    }

    fn merge(&mut self, o: &Tally) {
        self.requests += o.requests;
        fn add<K: Ord + Clone>(a: &mut BTreeMap<K, u64>, b: &BTreeMap<K, u64>) {
            for (k, v) in b {
                *a.entry(k.clone()).or_default() += v;
            }
        }
        add(&mut self.outcomes, &o.outcomes);
        add(&mut self.classes, &o.classes);
        add(&mut self.shapes, &o.shapes);
        add(&mut self.scenarios, &o.scenarios);
        add(&mut self.confidence, &o.confidence);
        add(&mut self.lookalikes, &o.lookalikes);
        add(&mut self.tie_rules, &o.tie_rules);
        self.times.merge(&o.times);
        for x in &o.examples {
            if self.examples.len() < 3 {
                self.examples.push(x.clone());
            }
        }
    }

    /// Requests the client saw fail (not retried away).
    pub fn visible(&self) -> u64 {
        self.requests - self.outcomes.get("retried").copied().unwrap_or(0)
    }
}

/// `GET "502, 200"` (or `GET 502` without `$upstream_status`).
fn shape_label(e: &Evidence) -> String {
    if e.statuses_known {
        let list: Vec<String> = e.attempts.iter().map(|a| a.status.map_or("-".into(), |s| s.to_string())).collect();
        format!("{} \"{}\"", e.method, list.join(", "))
    } else {
        format!("{} {}", e.method, e.status.map_or("?".into(), |s| s.to_string()))
    }
}

/// One mechanism's findings.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub mechanism: String,
    pub title: String,
    pub tally: Tally,
    /// The scenario whose fix is shown (the one most requests looked like).
    pub fix_from: String,
    pub fix: String,
}

/// Requests no mechanism explains, by reason.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Unexplained {
    pub reason: String,
    pub tally: Tally,
    /// The error text of the first one, if it had a line.
    pub text: Option<String>,
}

/// Failures of one class close together in time.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Burst {
    /// Wall clock of the logs, `YYYY/MM/DD HH:MM:SS`.
    pub from: String,
    pub to: String,
    pub class: Class,
    pub count: u64,
    /// The server most of them went to.
    pub upstream: Option<String>,
    /// The mechanism most requests of this class were put down to.
    pub mechanism: Option<String>,
}

/// The whole diagnosis.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Report {
    pub error_log: Option<InputStats>,
    pub access_log: Option<InputStats>,
    /// The access log's format.
    pub log_format: Option<String>,
    /// First and last time seen (logs' wall clock).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Requests explained, by mechanism, most client-visible failures first.
    pub findings: Vec<Finding>,
    pub unexplained: Vec<Unexplained>,
    pub bursts: Vec<Burst>,
    /// What the logs lack to decide better.
    pub missing: Vec<String>,
    /// Other counts worth knowing (temp-file buffering, disabled servers, bounds hit).
    pub notes: Vec<String>,
}

impl Report {
    /// Requests explained or not, as (client-visible, retried).
    pub fn totals(&self) -> (u64, u64) {
        let all = self.findings.iter().map(|f| &f.tally).chain(self.unexplained.iter().map(|u| &u.tally));
        all.fold((0, 0), |(v, r), t| (v + t.visible(), r + t.requests - t.visible()))
    }

    /// The finding for a mechanism id.
    pub fn finding(&self, id: &str) -> Option<&Finding> {
        self.findings.iter().find(|f| f.mechanism == id)
    }
}

// ---- the join ----

/// What an error line says about its request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ErrKind {
    Failure(Class),
    ClientClosed,
}

/// An upstream-path error line waiting for its access line.
#[derive(Debug, Clone)]
struct ErrEvent {
    wall: i64,
    line: u64,
    conn: Option<u64>,
    key: u64,
    endpoint: u64,
    server: u64,
    method: Box<str>,
    kind: ErrKind,
    text: Box<str>,
    taken: bool,
    /// Its upstream is `[::1]:PORT`.
    v6_loopback: bool,
    /// An `auth_request` subrequest's line (`subrequest: "URI"`).
    subrequest: bool,
}

fn hash_of(parts: &[&[u8]]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        h.write(p);
        h.write_u8(0xff);
    }
    h.finish()
}

/// The endpoint of a path: without the query, all-digit segments as one.
fn endpoint_of(path: &str) -> u64 {
    let path = path.split('?').next().unwrap_or(path);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for seg in path.split('/') {
        if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
            h.write(b"{n}");
        } else {
            h.write(seg.as_bytes());
        }
        h.write_u8(b'/');
    }
    h.finish()
}

/// `[::1]:PORT`, the IPv6 loopback.
fn v6_loopback(addr: &str) -> bool {
    addr.trim().starts_with("[::1]:")
}

/// `host:port` of `http://host:port/uri`.
fn server_of(upstream_url: &str) -> &str {
    let rest = upstream_url.split_once("://").map_or(upstream_url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// Method and path of a request line (`GET /x?y HTTP/1.1`).
fn split_request(line: &str) -> (&str, &str) {
    let mut it = line.split(' ');
    let method = it.next().unwrap_or("");
    let target = it.next().unwrap_or("");
    (method, target.split('?').next().unwrap_or(target))
}

#[derive(Debug, Clone, Copy, Default)]
struct EndpointStat {
    answered: u64,
    failed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TieKey {
    mechs: Vec<usize>,
    endpoint: u64,
    server: u64,
    minute: i64,
    outcome: Outcome,
    complete: bool,
}

/// The diagnosis in progress: feed it lines, then [`Diagnosis::finish`].
pub struct Diagnosis<'m> {
    ms: &'m [Mechanism],
    opts: Options,
    format: Option<AccessFormat>,
    /// What the access format lets us join on.
    key_method: bool,
    key_path: bool,
    /// Seconds to add to `$msec` to get the logs' wall clock.
    msec_offset: Option<i64>,
    pub error_stats: Option<InputStats>,
    pub access_stats: Option<InputStats>,
    pending: VecDeque<ErrEvent>,
    pending_keys: HashMap<u64, u32>,
    endpoints: HashMap<u64, EndpointStat>,
    /// (second, class, server) → count, for bursts and companions.
    seconds: HashMap<(i64, Class, u64), u64>,
    servers: HashMap<u64, String>,
    tallies: Vec<Tally>,
    unexplained: BTreeMap<String, (Tally, Option<String>)>,
    ties: HashMap<TieKey, (Vec<Candidate>, Tally)>,
    class_mech: HashMap<(Class, usize), u64>,
    first: Option<i64>,
    last: Option<i64>,
    now: i64,
    client_closed_lines: u64,
    disabled: u64,
    buffered: u64,
    evicted_early: u64,
    untracked: u64,
    access_failures_without_line: u64,
    access_failures: u64,
    /// error.log, read ahead of the access log by one line.
    errors: Option<Lines>,
    err_next: Option<i64>,
    io_error: Option<std::io::Error>,
}

impl<'m> Diagnosis<'m> {
    /// The access format has a time to merge on.
    fn timed(&self) -> bool {
        self.format.as_ref().is_some_and(|f| f.has(Var::Msec) || f.has(Var::TimeLocal) || f.has(Var::TimeIso8601))
    }

    /// Feeds error lines until one is later than `upto` (that one is fed
    /// too: the read-ahead). With only error.log, each line moves the window.
    fn pull_errors(&mut self, upto: i64) -> std::io::Result<()> {
        if self.err_next.is_some_and(|t| t > upto) {
            return Ok(());
        }
        while let Some(lines) = self.errors.as_mut() {
            let Some((no, b)) = lines.next_line()? else {
                self.errors = None;
                self.err_next = None;
                break;
            };
            let text = String::from_utf8_lossy(b).into_owned();
            if let Some(w) = self.error_line(no, &text) {
                self.err_next = Some(w);
                if self.access_stats.is_none() {
                    self.advance(w);
                }
                if w > upto {
                    break;
                }
            }
        }
        Ok(())
    }

    /// `format`: the access log's `log_format`, if an access log is read.
    pub fn new(ms: &'m [Mechanism], format: Option<AccessFormat>, opts: Options) -> Diagnosis<'m> {
        let has = |v| format.as_ref().is_some_and(|f| f.has(v));
        let key_method = format.is_none() || has(Var::RequestMethod) || has(Var::Request);
        let key_path = format.is_none() || has(Var::Uri) || has(Var::RequestUri) || has(Var::Request);
        Diagnosis {
            ms,
            opts,
            format,
            key_method,
            key_path,
            msec_offset: None,
            error_stats: None,
            access_stats: None,
            pending: VecDeque::new(),
            pending_keys: HashMap::new(),
            endpoints: HashMap::new(),
            seconds: HashMap::new(),
            servers: HashMap::new(),
            tallies: vec![Tally::default(); ms.len()],
            unexplained: BTreeMap::new(),
            ties: HashMap::new(),
            class_mech: HashMap::new(),
            first: None,
            last: None,
            now: i64::MIN,
            client_closed_lines: 0,
            disabled: 0,
            buffered: 0,
            evicted_early: 0,
            untracked: 0,
            access_failures_without_line: 0,
            access_failures: 0,
            errors: None,
            err_next: None,
            io_error: None,
        }
    }

    fn key(&self, method: &str, path: &str) -> u64 {
        hash_of(&[if self.key_method { method.as_bytes() } else { b"" }, if self.key_path { path.as_bytes() } else { b"" }])
    }

    fn seen(&mut self, wall: i64) {
        self.first = Some(self.first.map_or(wall, |f| f.min(wall)));
        self.last = Some(self.last.map_or(wall, |l| l.max(wall)));
    }

    fn server_id(&mut self, server: &str) -> u64 {
        if server.is_empty() {
            return 0;
        }
        let id = hash_of(&[server.as_bytes()]);
        if self.servers.len() < 1000 {
            self.servers.entry(id).or_insert_with(|| server.to_string());
        }
        id
    }

    /// One error.log line (the file's line number `no`).
    pub fn error_line(&mut self, no: u64, line: &str) -> Option<i64> {
        let stats = self.error_stats.get_or_insert_with(InputStats::default);
        stats.lines += 1;
        stats.bytes += line.len() as u64 + 1;
        let l = match parse_error_line(line) {
            Ok(l) => l,
            Err(e) => {
                if !line.trim().is_empty() {
                    stats.malformed(no, e.0);
                }
                return None;
            }
        };
        let wall = logparse::parse_error_time(l.time)?;
        self.seen(wall);
        let kind = match ErrorText::of(l.text) {
            ErrorText::Failure(Class::Status) | ErrorText::Other => return Some(wall),
            ErrorText::Failure(c) => ErrKind::Failure(c),
            ErrorText::ClientClosed => {
                self.client_closed_lines += 1;
                ErrKind::ClientClosed
            }
            ErrorText::ServerDisabled => {
                self.disabled += 1;
                return Some(wall);
            }
            ErrorText::Buffered => {
                self.buffered += 1;
                return Some(wall);
            }
        };
        let (method, path) = split_request(l.request.unwrap_or(""));
        let server = self.server_id(l.upstream.map(server_of).unwrap_or(""));
        if let ErrKind::Failure(c) = kind {
            if self.seconds.len() < self.opts.max_tracked {
                *self.seconds.entry((wall, c, server)).or_default() += 1;
            } else {
                self.untracked += 1;
            }
        }
        let ev = ErrEvent {
            wall,
            line: no,
            conn: l.conn,
            key: self.key(method, path),
            endpoint: endpoint_of(path),
            server,
            method: method.into(),
            kind,
            text: l.text.into(),
            taken: false,
            v6_loopback: l.upstream.is_some_and(|u| v6_loopback(server_of(u))),
            subrequest: l.subrequest.is_some(),
        };
        *self.pending_keys.entry(ev.key).or_default() += 1;
        self.pending.push_back(ev);
        if self.pending.len() > self.opts.max_pending {
            self.evicted_early += 1;
            self.let_go_oldest();
        }
        Some(wall)
    }

    /// The wall time of an access line, if the format has one.
    fn access_wall(&mut self, l: &logparse::AccessLine<'_>) -> Option<f64> {
        let local = l.get(Var::TimeLocal).and_then(logparse::parse_time_local).or_else(|| l.get(Var::TimeIso8601).and_then(logparse::parse_time_iso8601));
        if let Some((_, off)) = local {
            self.msec_offset.get_or_insert(i64::from(off));
        }
        match l.get(Var::Msec).and_then(logparse::parse_secs) {
            Some(m) => Some(m + self.msec_offset.unwrap_or(0) as f64),
            None => local.map(|(w, _)| w as f64),
        }
    }

    /// Lets error lines older than the window go (classified alone).
    pub fn advance(&mut self, now: i64) {
        self.now = self.now.max(now);
        while self.pending.front().is_some_and(|e| e.taken || e.wall < self.now - self.opts.window) {
            self.let_go_oldest();
        }
    }

    /// The oldest waiting line, with the lines of the same request
    /// (same key and connection, within a minute), as a request seen by
    /// error.log only.
    fn let_go_oldest(&mut self) {
        let Some(first) = self.pending.pop_front() else { return };
        if first.taken {
            return;
        }
        self.unpend(first.key);
        let mut group = vec![first];
        let (key, conn, wall) = (group[0].key, group[0].conn, group[0].wall);
        for e in self.pending.iter_mut().filter(|e| !e.taken && e.key == key && e.conn == conn && e.wall <= wall + 60) {
            e.taken = true;
            group.push(e.clone());
        }
        for _ in 1..group.len() {
            self.unpend(key);
        }
        let mut ev = Evidence { method: group[0].method.to_string(), ..Evidence::default() };
        apply_errors(&mut ev, &group);
        let example = format!("{}:{}", self.error_name(), group[0].line);
        let (endpoint, server) = (group[0].endpoint, group[0].server);
        let text = group.iter().find(|e| matches!(e.kind, ErrKind::Failure(_))).or(group.first()).map(|e| e.text.to_string());
        if let Some(outcome) = classify::outcome(&ev) {
            self.record(&ev, outcome, endpoint, server, wall, &example, text);
        }
    }

    fn unpend(&mut self, key: u64) {
        if let Some(n) = self.pending_keys.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.pending_keys.remove(&key);
            }
        }
    }

    fn error_name(&self) -> &str {
        self.error_stats.as_ref().map_or("error.log", |s| s.name.as_str())
    }

    fn access_name(&self) -> &str {
        self.access_stats.as_ref().map_or("access.log", |s| s.name.as_str())
    }

    /// One access.log line; returns its wall time (for the merge).
    pub fn access_line(&mut self, no: u64, line: &str) -> Option<i64> {
        let stats = self.access_stats.get_or_insert_with(InputStats::default);
        stats.lines += 1;
        stats.bytes += line.len() as u64 + 1;
        let format = self.format.as_ref()?;
        let l = match format.parse(line) {
            Ok(l) => l,
            Err(e) => {
                if !line.trim().is_empty() {
                    stats.malformed(no, e.0);
                }
                return None;
            }
        };
        let Some(status) = l.get(Var::Status).and_then(|s| s.parse::<u16>().ok()) else {
            stats.malformed(no, "no $status");
            return None;
        };
        let request = l.get(Var::Request).map(split_request);
        let method = l.get(Var::RequestMethod).or(request.map(|r| r.0)).unwrap_or("");
        let path = l.get(Var::Uri).or(l.get(Var::RequestUri).map(|u| u.split('?').next().unwrap_or(u))).or(request.map(|r| r.1)).unwrap_or("");
        let wall_f = self.access_wall(&l);
        let wall = wall_f.map(|w| w.floor() as i64);
        if let Some(w) = wall {
            self.seen(w);
            if let Err(e) = self.pull_errors(w) {
                self.io_error.get_or_insert(e);
            }
            self.advance(w);
        }
        let endpoint = endpoint_of(path);
        let upstream_status = l.get(Var::UpstreamStatus);
        let failed_entry = upstream_status.is_some_and(|s| s.contains("502") || s.contains("504"));
        let interesting = matches!(status, 499 | 502 | 504) || failed_entry;
        let key = if self.pending_keys.is_empty() { 0 } else { self.key(method, path) };
        let waiting = !self.pending_keys.is_empty() && self.pending_keys.contains_key(&key);
        if !interesting && !waiting {
            self.endpoint_answered(endpoint, status);
            return wall;
        }
        // The error lines of this request: same key, same connection as the
        // first (or as $connection), logged within its request time.
        let request_time = l.get(Var::RequestTime).and_then(logparse::parse_secs).unwrap_or(self.opts.window as f64);
        let conn = l.get(Var::Connection).and_then(|c| c.parse::<u64>().ok());
        let mut group: Vec<ErrEvent> = Vec::new();
        if waiting {
            let (lo, hi) = match wall {
                Some(w) => (w - request_time.ceil() as i64 - 2, w + 1),
                None => (i64::MIN, i64::MAX),
            };
            // As many header failures as $upstream_status has failed
            // attempts (one without it), one cut body, one client close:
            // the next request on the same connection has its own.
            let mut header = match upstream_status {
                Some(us) => logparse::upstream_entries(us).filter(|s| matches!(*s, "502" | "504")).count(),
                None => 1,
            };
            let (mut body, mut closed) = (1, 1);
            // An auth_request refusal: its one line, and its subrequest's
            // failures (as many as the subrequest's tries: bounded here).
            let (mut auth, mut sub) = (1, 8);
            for e in self.pending.iter_mut() {
                if e.taken || e.key != key || e.wall < lo || e.wall > hi {
                    continue;
                }
                let want = conn.or(group.first().and_then(|g| g.conn));
                if want.is_some() && e.conn.is_some() && want != e.conn {
                    continue;
                }
                let room = match e.kind {
                    ErrKind::Failure(_) if e.subrequest => &mut sub,
                    ErrKind::Failure(Class::AuthStatus) => &mut auth,
                    ErrKind::ClientClosed => &mut closed,
                    ErrKind::Failure(Class::PrematureCloseBody | Class::ResetBody | Class::ReadTimeoutBody) => &mut body,
                    ErrKind::Failure(_) => &mut header,
                };
                if *room == 0 {
                    continue;
                }
                *room -= 1;
                e.taken = true;
                group.push(e.clone());
            }
            for _ in 0..group.len() {
                self.unpend(key);
            }
        }
        let mut ev = Evidence { method: method.to_string(), status: Some(status), ..Evidence::default() };
        if let Some(us) = upstream_status {
            ev.statuses_known = true;
            let mut times = l.get(Var::UpstreamResponseTime).map(logparse::upstream_entries);
            let mut addrs = l.get(Var::UpstreamAddr).map(logparse::upstream_entries);
            for s in logparse::upstream_entries(us) {
                let time = times.as_mut().and_then(|t| t.next()).and_then(logparse::parse_secs);
                let addr = addrs.as_mut().and_then(|a| a.next());
                let status = s.parse().ok();
                ev.v6_loopback |= matches!(status, Some(502)) && addr.is_some_and(v6_loopback);
                ev.attempts.push(Attempt { status, time, class: None });
            }
            if ev.attempts.iter().all(|a| a.status.is_none()) && us.trim() == "-" {
                ev.attempts.clear();
            }
        }
        apply_errors(&mut ev, &group);
        if !ev.statuses_known && !matches!(status, 499 | 502 | 504) && ev.attempts.iter().any(|a| a.class.is_some()) {
            // Without $upstream_status: the attempt that answered after them.
            ev.attempts.push(Attempt::default());
        }
        let server = match l.get(Var::UpstreamAddr).and_then(|a| logparse::upstream_entries(a).next()) {
            Some(a) if a != "-" => self.server_id(a),
            _ => group.first().map_or(0, |g| g.server),
        };
        match classify::outcome(&ev) {
            Some(outcome) => {
                if outcome.visible() && outcome != Outcome::ClientClosed {
                    self.access_failures += 1;
                    if group.is_empty() {
                        self.access_failures_without_line += 1;
                    }
                }
                let example = format!("{}:{no}", self.access_name());
                let text = group.iter().find(|e| matches!(e.kind, ErrKind::Failure(_))).map(|e| e.text.to_string());
                let answered = !matches!(outcome, Outcome::Status502 | Outcome::Status504 | Outcome::Status500 | Outcome::ClientClosed | Outcome::Truncated);
                self.endpoint_counts(endpoint, answered);
                self.record(&ev, outcome, endpoint, server, wall.unwrap_or(0), &example, text);
            }
            None => self.endpoint_answered(endpoint, status),
        }
        wall
    }

    fn endpoint_answered(&mut self, endpoint: u64, status: u16) {
        self.endpoint_counts(endpoint, !matches!(status, 499 | 502 | 504));
    }

    fn endpoint_counts(&mut self, endpoint: u64, answered: bool) {
        let n = self.endpoints.len();
        let cap = self.opts.max_tracked;
        let e = match self.endpoints.get_mut(&endpoint) {
            Some(e) => e,
            None if n < cap => self.endpoints.entry(endpoint).or_default(),
            None => {
                self.untracked += 1;
                return;
            }
        };
        if answered {
            e.answered += 1;
        } else {
            e.failed += 1;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(&mut self, ev: &Evidence, outcome: Outcome, endpoint: u64, server: u64, wall: i64, example: &str, text: Option<String>) {
        let cands = candidates(ev, self.ms);
        if cands.is_empty() {
            let reason = unexplained_reason(ev, outcome, self.ms);
            let entry = self.unexplained.entry(reason).or_insert_with(|| (Tally::default(), text.clone()));
            entry.0.add(ev, outcome, example);
            return;
        }
        let tied = cands.iter().take_while(|c| c.score == cands[0].score).count();
        let complete = complete(ev);
        if tied == 1 {
            let d = decide(&cands, self.ms, &Context::default(), complete).expect("a candidate");
            self.tally(ev, outcome, example, d.mech, &d.scenario, d.confidence, &[], None);
            return;
        }
        let key = TieKey { mechs: cands[..tied].iter().map(|c| c.mech).collect(), endpoint, server, minute: wall.div_euclid(60), outcome, complete };
        if self.ties.len() >= self.opts.max_tracked && !self.ties.contains_key(&key) {
            // Too many groups to keep: decide with what is known now.
            self.untracked += 1;
            let ctx = self.context(endpoint, server, key.minute);
            let d = decide(&cands, self.ms, &ctx, complete).expect("a candidate");
            self.tally(ev, outcome, example, d.mech, &d.scenario, d.confidence, &d.lookalikes, d.rule);
            return;
        }
        let entry = self.ties.entry(key).or_insert_with(|| (cands[..tied].to_vec(), Tally::default()));
        entry.1.add(ev, outcome, example);
    }

    #[allow(clippy::too_many_arguments)]
    fn tally(&mut self, ev: &Evidence, outcome: Outcome, example: &str, mech: usize, scenario: &str, confidence: Confidence, lookalikes: &[usize], rule: Option<&'static str>) {
        let mut t = Tally::default();
        t.add(ev, outcome, example);
        self.merge_into(mech, t, scenario, confidence, lookalikes, rule);
    }

    fn merge_into(&mut self, mech: usize, mut t: Tally, scenario: &str, confidence: Confidence, lookalikes: &[usize], rule: Option<&'static str>) {
        let n = t.requests;
        t.scenarios.insert(scenario.to_string(), n);
        t.confidence.insert(confidence, n);
        for &l in lookalikes {
            t.lookalikes.insert(self.ms[l].id.clone(), n);
        }
        if let Some(r) = rule {
            t.tie_rules.insert(r, n);
        }
        for (&c, &k) in &t.classes {
            *self.class_mech.entry((c, mech)).or_default() += k;
        }
        self.tallies[mech].merge(&t);
    }

    /// What surrounds a request: does its endpoint answer, which classes
    /// went to its server within two minutes.
    fn context(&self, endpoint: u64, server: u64, minute: i64) -> Context {
        let endpoint_answered = self.endpoints.get(&endpoint).is_none_or(|e| e.answered > 0);
        let (lo, hi) = ((minute - 2) * 60, (minute + 3) * 60);
        let nearby = self.seconds.keys().filter(|(s, _, srv)| *srv == server && *s >= lo && *s < hi).map(|(_, c, _)| *c).collect();
        Context { endpoint_answered, nearby }
    }

    /// Ends the input: lets every waiting line go, breaks the ties, and
    /// builds the report.
    pub fn finish(mut self) -> Report {
        while !self.pending.is_empty() {
            self.let_go_oldest();
        }
        let ties: Vec<(TieKey, (Vec<Candidate>, Tally))> = std::mem::take(&mut self.ties).into_iter().collect();
        let mut ties = ties;
        ties.sort_by_key(|(k, _)| (k.minute, k.endpoint, k.server));
        for (k, (cands, t)) in ties {
            let ctx = self.context(k.endpoint, k.server, k.minute);
            let d = decide(&cands, self.ms, &ctx, k.complete).expect("a candidate");
            self.merge_into(d.mech, t, &d.scenario, d.confidence, &d.lookalikes, d.rule);
        }
        let mut findings: Vec<Finding> = self
            .tallies
            .iter()
            .enumerate()
            .filter(|(_, t)| t.requests > 0)
            .map(|(i, t)| {
                let m = &self.ms[i];
                let fix_from = t.scenarios.iter().max_by_key(|(_, n)| **n).map_or(m.scenario.clone(), |(s, _)| s.clone());
                Finding { mechanism: m.id.clone(), title: m.title.clone(), tally: t.clone(), fix: m.fix_of(&fix_from).to_string(), fix_from }
            })
            .collect();
        findings.sort_by(|a, b| b.tally.visible().cmp(&a.tally.visible()).then(b.tally.requests.cmp(&a.tally.requests)));
        let mut unexplained: Vec<Unexplained> = std::mem::take(&mut self.unexplained).into_iter().map(|(reason, (tally, text))| Unexplained { reason, tally, text }).collect();
        unexplained.sort_by_key(|u| std::cmp::Reverse(u.tally.requests));
        let bursts = self.bursts();
        let missing = self.missing(&findings, &unexplained);
        let mut notes = Vec::new();
        if self.buffered > 0 {
            notes.push(format!("{} [warn] \"buffered to a temporary file\" lines (harmless; proxy_buffers or client_body_buffer_size too small for those bodies)", self.buffered));
        }
        if self.disabled > 0 {
            notes.push(format!("{} [warn] \"upstream server temporarily disabled\" lines: max_fails reached on a multi-server upstream", self.disabled));
        }
        if self.evicted_early > 0 {
            notes.push(format!("{} error lines left the join window early (more than {} waiting)", self.evicted_early, self.opts.max_pending));
        }
        if self.untracked > 0 {
            notes.push(format!("{} events beyond the tracking limit ({} endpoints, seconds, groups) were decided with less context", self.untracked, self.opts.max_tracked));
        }
        let when = |w: Option<i64>| w.map(wall_text);
        Report {
            error_log: self.error_stats.take(),
            access_log: self.access_stats.take(),
            log_format: self.format.as_ref().map(|f| f.text().to_string()),
            from: when(self.first),
            to: when(self.last),
            findings,
            unexplained,
            bursts,
            missing,
            notes,
        }
    }

    /// Runs of failures of one class with at most 2 s between them, at
    /// least 3 strong: the ten largest, in time order.
    fn bursts(&self) -> Vec<Burst> {
        let mut by_class: BTreeMap<(Class, i64), (u64, HashMap<u64, u64>)> = BTreeMap::new();
        for (&(s, c, srv), &n) in &self.seconds {
            let e = by_class.entry((c, s)).or_default();
            e.0 += n;
            *e.1.entry(srv).or_default() += n;
        }
        // (class, first second, last second, count, count by server)
        type Run = (Class, i64, i64, u64, HashMap<u64, u64>);
        let mut runs: Vec<Run> = Vec::new();
        for ((c, s), (n, srv)) in by_class {
            match runs.last_mut() {
                Some(r) if r.0 == c && s - r.2 <= 2 => {
                    r.2 = s;
                    r.3 += n;
                    for (k, v) in srv {
                        *r.4.entry(k).or_default() += v;
                    }
                }
                _ => runs.push((c, s, s, n, srv)),
            }
        }
        runs.retain(|r| r.3 >= 3);
        runs.sort_by(|a, b| b.3.cmp(&a.3).then(a.1.cmp(&b.1)));
        runs.truncate(10);
        runs.sort_by_key(|r| r.1);
        runs.into_iter()
            .map(|(class, from, to, count, srv)| {
                let upstream = srv.into_iter().max_by_key(|(_, n)| *n).and_then(|(id, _)| self.servers.get(&id).cloned());
                let mechanism = self.class_mech.iter().filter(|((c, _), _)| *c == class).max_by_key(|(_, n)| **n).map(|((_, m), _)| self.ms[*m].id.clone());
                Burst { from: wall_text(from), to: wall_text(to), class, count, upstream, mechanism }
            })
            .collect()
    }

    fn missing(&self, findings: &[Finding], unexplained: &[Unexplained]) -> Vec<String> {
        let mut out = Vec::new();
        let any = findings.iter().map(|f| f.tally.requests).chain(unexplained.iter().map(|u| u.tally.requests)).sum::<u64>() > 0;
        let has = |v| self.format.as_ref().is_some_and(|f| f.has(v));
        match (&self.error_stats, &self.access_stats) {
            (None, Some(_)) => out.push("--error-log: nginx's error line names the failure (premature close, reset, timeout, refused); without it the access log's numbers only narrow it down".into()),
            (Some(_), None) => out.push("--access-log: the client's status, $upstream_status (\"502, 200\" = retried) and $upstream_response_time tell look-alikes apart".into()),
            _ => {}
        }
        if self.access_stats.is_some() {
            if !has(Var::UpstreamStatus) {
                out.push("add \"$upstream_status\" to your log_format: it shows every attempt (\"502, 200\" is a failure nginx retried)".into());
            }
            if !has(Var::UpstreamResponseTime) {
                out.push("add \"$upstream_response_time\" to your log_format: ~0 s for a connection race, the handler's time for WriteTimeout, proxy_read_timeout for a 504".into());
            }
            if !(has(Var::Msec) || has(Var::TimeLocal) || has(Var::TimeIso8601)) {
                out.push("add \"$msec\" (or $time_local) to your log_format: error lines are joined to requests by time".into());
            }
            if !(self.key_method && self.key_path) {
                out.push("add \"$request\" (or $request_method and $uri) to your log_format: error lines are joined to requests by method and path".into());
            }
            if self.error_stats.is_some() && self.access_failures > 0 && self.access_failures_without_line * 2 > self.access_failures {
                let utc = if has(Var::Msec) && !(has(Var::TimeLocal) || has(Var::TimeIso8601)) {
                    " The join took $msec (UTC) as error.log's local time: if the server is not on UTC, add $time_local to the log_format."
                } else {
                    ""
                };
                out.push(format!("{} of {} failed requests have no error line: are both logs from the same nginx and period, and is error_log's level error or lower?{utc}", self.access_failures_without_line, self.access_failures));
            }
        }
        let n499: u64 = findings.iter().chain(std::iter::empty()).map(|f| f.tally.outcomes.get("499").copied().unwrap_or(0)).sum::<u64>()
            + unexplained.iter().map(|u| u.tally.outcomes.get("499").copied().unwrap_or(0)).sum::<u64>();
        if n499 > 0 && self.client_closed_lines == 0 && self.error_stats.is_some() {
            out.push("499s but no [info] \"client prematurely closed connection\" lines: `error_log FILE info;` shows where nginx was when the client left".into());
        }
        if !any {
            out.clear();
        }
        out
    }
}

/// Copies the failure classes of error lines onto a request's attempts:
/// header failures onto the failed `$upstream_status` entries in order
/// (or as attempts of their own when the access log has none), the body's
/// onto `body`, a client close onto `client_closed`.
fn apply_errors(ev: &mut Evidence, lines: &[ErrEvent]) {
    let mut failed = (0..ev.attempts.len()).filter(|&i| matches!(ev.attempts[i].status, Some(502 | 504))).collect::<Vec<_>>().into_iter();
    for e in lines {
        match e.kind {
            ErrKind::Failure(c) if e.subrequest => ev.subrequest.push(c),
            ErrKind::Failure(Class::AuthStatus) => {
                ev.auth_status = nginx_model::auth::unexpected_status(&e.text).or(Some(0));
            }
            ErrKind::ClientClosed => ev.client_closed = true,
            ErrKind::Failure(c) if matches!(c, Class::PrematureCloseBody | Class::ResetBody | Class::ReadTimeoutBody) => {
                ev.body.get_or_insert(c);
            }
            ErrKind::Failure(c) => {
                ev.v6_loopback |= e.v6_loopback && c == Class::ConnectRefused;
                if ev.statuses_known {
                    if let Some(i) = failed.next() {
                        ev.attempts[i].class = Some(c);
                    }
                } else {
                    ev.attempts.push(Attempt { status: None, time: None, class: Some(c) });
                }
            }
        }
    }
}

/// Why no mechanism explains a request.
fn unexplained_reason(ev: &Evidence, outcome: Outcome, ms: &[Mechanism]) -> String {
    let classes: BTreeSet<Class> = ev.attempts.iter().filter_map(|a| a.class).chain(ev.body).collect();
    let known: BTreeSet<Class> = ms.iter().flat_map(|m| m.shapes.iter().map(|s| s.class)).collect();
    if let Some(c) = classes.iter().find(|c| !known.contains(c)) {
        return format!("{c}: no catalogue scenario shows it");
    }
    if classes.is_empty() {
        return match outcome {
            Outcome::ClientClosed => "499: the client closed first (no catalogue scenario ends in 499)".into(),
            _ if ev.attempts.is_empty() || ev.attempts.iter().all(|a| a.status.is_none()) => format!("{}: no upstream attempt logged", outcome.label()),
            _ => format!("{} with no error line", outcome.label()),
        };
    }
    let names: Vec<String> = classes.iter().map(|c| c.to_string()).collect();
    format!("{}: timing or retry shape fits no catalogue scenario", names.join(" + "))
}

/// `YYYY/MM/DD HH:MM:SS` of wall-clock seconds.
pub fn wall_text(wall: i64) -> String {
    nginx_model::logs::log_time(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(wall.max(0) as u64))
}

/// Reads both logs, merged in time order (error lines of a second before
/// the access lines of that second), and diagnoses them.
pub fn run(ms: &[Mechanism], error: Option<(String, Lines)>, access: Option<(String, Lines, AccessFormat)>, opts: Options) -> std::io::Result<Report> {
    let (access, format) = match access {
        Some((name, lines, f)) => (Some((name, lines)), Some(f)),
        None => (None, None),
    };
    let mut d = Diagnosis::new(ms, format, opts);
    if let Some((name, lines)) = error {
        d.error_stats = Some(InputStats { name, gzip: lines.gzip, ..InputStats::default() });
        d.errors = Some(lines);
    }
    match access {
        Some((name, mut lines)) => {
            d.access_stats = Some(InputStats { name, gzip: lines.gzip, ..InputStats::default() });
            if d.timed() {
                d.pull_errors(i64::MIN)?;
            } else {
                // No time to merge on: error.log first, then the access log.
                d.pull_errors(i64::MAX)?;
            }
            while let Some((no, b)) = lines.next_line()? {
                d.access_line(no, &String::from_utf8_lossy(b));
                if let Some(e) = d.io_error.take() {
                    return Err(e);
                }
            }
            d.pull_errors(i64::MAX)?;
        }
        None => d.pull_errors(i64::MAX)?,
    }
    Ok(d.finish())
}

/// Where the access log's format comes from.
#[derive(Debug, Clone)]
pub enum FormatFrom {
    /// `log_format` text as written after the name.
    Text(String),
    /// The `log_format` the `access_log` of this nginx.conf names.
    NginxConf(std::path::PathBuf),
    /// nginx's predefined `combined`.
    Combined,
}

/// The access log's format text.
pub fn format_text(from: &FormatFrom) -> Result<String, crate::Error> {
    use crate::Error;
    Ok(match from {
        FormatFrom::Text(t) => t.clone(),
        FormatFrom::Combined => nginx_model::logs::COMBINED.to_string(),
        FormatFrom::NginxConf(path) => {
            let prefix = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let cfg = harness::read_nginx_conf(path, prefix).map_err(|e| Error::Usage(format!("nginx.conf: {e}")))?;
            // The http-level access_log, else the first server's; nginx's
            // default is logs/access.log in `combined`.
            let log = cfg.access_log.first().cloned().or_else(|| cfg.servers.iter().find_map(|s| s.access_log.first().cloned()));
            let name = match log {
                Some(a) if a.path.is_none() => return Err(Error::Usage(format!("{}: access_log is off", path.display()))),
                Some(a) => a.format,
                None => "combined".into(),
            };
            match cfg.log_formats.iter().find(|(n, _)| *n == name) {
                Some((_, f)) => f.clone(),
                None if name == "combined" => nginx_model::logs::COMBINED.to_string(),
                None => return Err(Error::Usage(format!("{}: no log_format named {name:?}", path.display()))),
            }
        }
    })
}

/// Opens the logs, reads them with the catalogue's mechanisms, and returns
/// the diagnosis: the library side of `scenarios diagnose`.
pub fn run_files(error_log: Option<&std::path::Path>, access_log: Option<&std::path::Path>, format: &FormatFrom, opts: Options) -> Result<Report, crate::Error> {
    use crate::Error;
    if error_log.is_none() && access_log.is_none() {
        return Err(Error::Usage("diagnose needs --error-log FILE, --access-log FILE, or both".into()));
    }
    let open = |p: &std::path::Path| Lines::open(p).map_err(|source| Error::Read { path: p.to_path_buf(), source });
    let name = |p: &std::path::Path| p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned());
    let error = error_log.map(|p| open(p).map(|l| (name(p), l))).transpose()?;
    let access = match access_log {
        Some(p) => {
            let text = format_text(format)?;
            let f = AccessFormat::compile(&text).map_err(|e| Error::Usage(format!("log format {text:?}: {e}")))?;
            if !f.has(Var::Status) {
                return Err(Error::Usage(format!("log format {text:?} has no $status: nothing to diagnose")));
            }
            Some((name(p), open(p)?, f))
        }
        None => None,
    };
    let ms = signature::mechanisms(&crate::catalogue::all()?);
    let path = access_log.or(error_log).expect("one log").to_path_buf();
    run(&ms, error, access, opts).map_err(|source| Error::Read { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nginx 1.22.1's lines for a POST refused by auth_request after its
    /// subrequest timed out (measured), and a subrequest whose upstream
    /// refused the connect (auth service down: not this mechanism).
    #[test]
    fn an_auth_subrequest_timeout_is_auth_request_body() {
        let ms = signature::mechanisms(&crate::catalogue::all().unwrap());
        let fmt = AccessFormat::compile("$time_local \"$request\" $status $request_time \"$upstream_status\" $connection").unwrap();
        let diag = |errors: &[&str], access: &str| {
            let mut d = Diagnosis::new(&ms, Some(fmt.clone()), Options::default());
            for (i, l) in errors.iter().enumerate() {
                d.error_line(i as u64 + 1, l);
            }
            d.access_line(1, access);
            d.finish()
        };
        let timeout = r#"2026/11/24 02:05:24 [error] 20240#20240: *4 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 127.0.0.1, server: , request: "POST /up11 HTTP/1.1", subrequest: "/auth11", upstream: "http://127.0.0.1:38182/ok", host: "127.0.0.1:38181""#;
        let refused = r#"2026/11/24 02:05:24 [error] 20240#20240: *4 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: , request: "POST /up11 HTTP/1.1", subrequest: "/auth11", upstream: "http://127.0.0.1:38182/ok", host: "127.0.0.1:38181""#;
        let status = |n: u16| format!(r#"2026/11/24 02:05:24 [error] 20240#20240: *4 auth request unexpected status: {n} while sending to client, client: 127.0.0.1, server: , request: "POST /up11 HTTP/1.1", host: "127.0.0.1:38181""#);
        let access = r#"24/Nov/2026:02:05:24 +0000 "POST /up11 HTTP/1.1" 500 1.007 "-" 4"#;
        let r = diag(&[timeout, &status(504)], access);
        let f = r.finding("auth-request-body").unwrap_or_else(|| panic!("{r:#?}"));
        assert_eq!((f.tally.requests, f.tally.visible(), r.findings.len()), (1, 1, 1), "{r:#?}");
        assert!(r.unexplained.is_empty(), "{r:#?}");
        // The auth service down: a refused connect is not a missing body.
        let r = diag(&[refused, &status(502)], access);
        assert!(r.finding("auth-request-body").is_none(), "{r:#?}");
        // A 500 of nginx's own without the auth line is not explained here.
        let r = diag(&[], access);
        assert!(r.findings.is_empty() && r.unexplained.is_empty(), "{r:#?}");
    }
}
