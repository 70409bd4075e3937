//! One request's evidence against the mechanisms' shapes: pure, no I/O.
//!
//! [`candidates`] scores every mechanism whose shapes explain each failed
//! attempt of the request (the class must match; a `$upstream_response_time`
//! that contradicts the shape's timing rules it out; what came next, the
//! method's idempotency and the client's status add to the score).
//! [`decide`] breaks a tie between equally good candidates with evidence
//! beyond the request, in this order: a mechanism's companion classes seen
//! nearby (refused connects to the same server around a shutdown race),
//! then whether the endpoint answers at other times (a connection race hits
//! endpoints that otherwise work; a handler that dies does so every time),
//! then catalogue order (low confidence, the others named as look-alikes).

use super::signature::{Mechanism, Next, Shape};
use nginx_model::failure::Class;
use nginx_model::retry::non_idempotent;
use std::collections::BTreeSet;

/// One upstream attempt of a request, as the logs show it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attempt {
    /// Its `$upstream_status` entry (`None`: not logged, or "-").
    pub status: Option<u16>,
    /// Its `$upstream_response_time` entry, seconds.
    pub time: Option<f64>,
    /// The class of its error.log line, if it has one.
    pub class: Option<Class>,
}

impl Attempt {
    fn failed(&self) -> bool {
        self.class.is_some() || matches!(self.status, Some(502 | 504))
    }
}

/// What the logs say about one request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub method: String,
    /// The client's status; `None` when only error.log speaks of it.
    pub status: Option<u16>,
    pub attempts: Vec<Attempt>,
    /// `$upstream_status` was logged for it (so the attempts are complete).
    pub statuses_known: bool,
    /// The error line of a response cut after its header.
    pub body: Option<Class>,
    /// nginx logged that the client went away first.
    pub client_closed: bool,
    /// A failed attempt went to `[::1]` (its error line's upstream, or
    /// `$upstream_addr`): what tells `localhost` expanded to both
    /// loopbacks apart from a server that is down.
    pub v6_loopback: bool,
    /// The failure classes of an `auth_request` subrequest's lines (logged
    /// with `subrequest: "URI"`).
    pub subrequest: Vec<Class>,
    /// "auth request unexpected status: N": the subrequest's status; the
    /// client got 500.
    pub auth_status: Option<u16>,
}

/// What the client got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// nginx answered 502 or 504 (or passed on a failed upstream's 5xx).
    Status502,
    Status504,
    /// 500 after an `auth_request` subrequest that failed
    /// ("auth request unexpected status").
    Status500,
    /// 499: the client closed first.
    ClientClosed,
    /// A response cut after its header (status 200 or other).
    Truncated,
    /// A failed attempt nginx retried: the client never saw it.
    Retried,
    /// An error line with no access line to say what the client got.
    LoggedOnly,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Status502 => "502",
            Outcome::Status504 => "504",
            Outcome::Status500 => "500",
            Outcome::ClientClosed => "499",
            Outcome::Truncated => "cut",
            Outcome::Retried => "retried",
            Outcome::LoggedOnly => "log-only",
        }
    }

    /// The client saw the failure.
    pub fn visible(self) -> bool {
        !matches!(self, Outcome::Retried)
    }
}

/// Whether the request is one diagnose explains, and what the client got.
pub fn outcome(e: &Evidence) -> Option<Outcome> {
    match e.status {
        Some(502) => Some(Outcome::Status502),
        Some(504) => Some(Outcome::Status504),
        Some(499) => Some(Outcome::ClientClosed),
        Some(500) if e.auth_status.is_some() => Some(Outcome::Status500),
        None if e.auth_status.is_some() => Some(Outcome::LoggedOnly),
        _ if e.body.is_some() && e.status.is_some() => Some(Outcome::Truncated),
        Some(_) if e.attempts.iter().any(Attempt::failed) => Some(Outcome::Retried),
        Some(_) => None,
        // Only the [info] line: nginx logs 499 for it.
        None if e.client_closed && e.body.is_none() && !e.attempts.iter().any(Attempt::failed) => Some(Outcome::ClientClosed),
        None if e.body.is_some() || e.attempts.iter().any(Attempt::failed) || e.client_closed => Some(Outcome::LoggedOnly),
        None => None,
    }
}

/// One failure to explain: an attempt that failed, or the cut body.
#[derive(Debug, Clone, Copy)]
struct Failure {
    class: Option<Class>,
    /// `None` for a 502/504 entry with no error line: any class nginx gives
    /// that status for.
    status: Option<u16>,
    time: Option<f64>,
    next: Option<Next>,
    /// Another attempt of the request came before it (it is a retry).
    retry: bool,
    /// An `auth_request` subrequest's failure.
    subrequest: bool,
}

fn failures(e: &Evidence) -> Vec<Failure> {
    let mut out = Vec::new();
    let n = e.attempts.len();
    for (i, a) in e.attempts.iter().enumerate() {
        if !a.failed() || a.class == Some(Class::Status) {
            continue;
        }
        let next = match e.attempts.get(i + 1) {
            Some(b) if b.failed() => Some(Next::RetryFailed),
            Some(_) => Some(Next::RetryAnswered),
            None if e.statuses_known || e.status.is_some_and(|s| s != 499) => Some(Next::Final),
            None => None,
        };
        debug_assert!(i < n);
        out.push(Failure { class: a.class, status: a.status, time: a.time, next, retry: i > 0, subrequest: false });
    }
    if let Some(c) = e.body {
        out.push(Failure { class: Some(c), status: None, time: e.attempts.last().and_then(|a| a.time), next: Some(Next::Final), retry: n > 1, subrequest: false });
    }
    // ngx_http_auth_request_handler's 500: the subrequest's failures (its
    // own upstream's, not in the main request's $upstream_status), or the
    // status line alone when they were not logged.
    if e.auth_status.is_some() {
        let classes = if e.subrequest.is_empty() { vec![Class::AuthStatus] } else { e.subrequest.clone() };
        for c in classes {
            out.push(Failure { class: Some(c), status: None, time: None, next: Some(Next::Final), retry: false, subrequest: true });
        }
    }
    out
}

/// How much of what a candidate rests on the logs showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// A mechanism that explains every failure of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Index into the mechanisms.
    pub mech: usize,
    pub score: u32,
    /// The catalogue scenario of its best shape.
    pub scenario: String,
    /// Its best shape says the handler ran on the failed attempt.
    pub handler_ran: bool,
}

fn shape_score(shape: &Shape, f: &Failure, e: &Evidence) -> Option<u32> {
    if shape.subrequest != f.subrequest {
        return None;
    }
    let mut score = 0;
    match (f.class, f.status) {
        (Some(c), _) if c == shape.class => score += 3,
        (Some(_), _) => return None,
        // No error line: any class nginx answers that status for.
        (None, Some(st)) if shape.status == st || (st == 502) == !matches!(shape.class, Class::ConnectTimeout | Class::SendTimeout | Class::ReadTimeout) => {}
        (None, _) => return None,
    }
    if let Some(t) = f.time {
        if !shape.timing.fits(t) {
            return None;
        }
        score += 1;
    }
    if f.next == Some(shape.next) {
        score += 1;
    }
    // Not known (a natural race's expectations) fits either way.
    if shape.retry.is_none_or(|r| r == f.retry) {
        score += 1;
    }
    if !e.method.is_empty() && shape.idempotent != non_idempotent(&e.method) {
        score += 1;
    }
    if e.status == Some(shape.status) {
        score += 1;
    }
    Some(score)
}

/// The mechanisms that explain every failure of the request, best first
/// (equal scores in catalogue order). Empty when none does (or there is
/// no failure to explain, as for a 499 with no failed attempt).
pub fn candidates(e: &Evidence, ms: &[Mechanism]) -> Vec<Candidate> {
    let fs = failures(e);
    if fs.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    'mech: for (mi, m) in ms.iter().enumerate() {
        // A mechanism shown through [::1] (`localhost`) needs the address in
        // the logs, and is the better fit where it is.
        if m.v6_loopback && !e.v6_loopback {
            continue;
        }
        let mut total = if m.v6_loopback { 2 } else { 0 };
        let mut first: Option<&Shape> = None;
        for f in &fs {
            let best = m.shapes.iter().filter_map(|s| shape_score(s, f, e).map(|sc| (sc, s))).fold(None, |acc: Option<(u32, &Shape)>, x| match acc {
                Some(a) if a.0 >= x.0 => Some(a),
                _ => Some(x),
            });
            let Some((sc, shape)) = best else { continue 'mech };
            total += sc;
            first.get_or_insert(shape);
        }
        let shape = first.expect("at least one failure");
        out.push(Candidate { mech: mi, score: total, scenario: shape.scenario.clone(), handler_ran: shape.handler_ran.unwrap_or(false) });
    }
    out.sort_by(|a, b| b.score.cmp(&a.score).then(a.mech.cmp(&b.mech)));
    out
}

/// How complete the request's own evidence is: every failure with its
/// class, a time and what came next.
pub fn complete(e: &Evidence) -> bool {
    let fs = failures(e);
    !fs.is_empty() && fs.iter().all(|f| f.class.is_some() && f.time.is_some() && f.next.is_some())
}

/// Evidence around the request that decides between look-alikes.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The endpoint answered other requests (not 502/504/499).
    pub endpoint_answered: bool,
    /// Classes logged for the same upstream server near the request.
    pub nearby: BTreeSet<Class>,
}

/// The verdict on one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub mech: usize,
    pub scenario: String,
    pub confidence: Confidence,
    /// Other mechanisms the request's own evidence fits as well.
    pub lookalikes: Vec<usize>,
    /// What broke the tie, if there was one.
    pub rule: Option<&'static str>,
}

/// Picks among the best-scoring candidates (see the module's rules).
/// `complete`: the request's own evidence was complete (see [`complete`]).
pub fn decide(cands: &[Candidate], ms: &[Mechanism], ctx: &Context, complete: bool) -> Option<Decision> {
    let top_score = cands.first()?.score;
    let top: Vec<&Candidate> = cands.iter().take_while(|c| c.score == top_score).collect();
    let base = if complete { Confidence::High } else { Confidence::Medium };
    if top.len() == 1 {
        return Some(Decision { mech: top[0].mech, scenario: top[0].scenario.clone(), confidence: base, lookalikes: vec![], rule: None });
    }
    let mut keep = top.clone();
    let mut rule = None;
    let with: Vec<&Candidate> = keep.iter().copied().filter(|c| !ms[c.mech].companions.is_disjoint(&ctx.nearby)).collect();
    if !with.is_empty() {
        keep = with;
        rule = Some("companion lines nearby");
    } else {
        let without: Vec<&Candidate> = keep.iter().copied().filter(|c| ms[c.mech].companions.is_empty()).collect();
        if !without.is_empty() && without.len() < keep.len() {
            keep = without;
            rule = Some("no companion lines nearby");
        }
    }
    if keep.iter().any(|c| c.handler_ran) && keep.iter().any(|c| !c.handler_ran) {
        keep.retain(|c| c.handler_ran != ctx.endpoint_answered);
        rule = Some(if ctx.endpoint_answered { "the endpoint answers at other times" } else { "the endpoint never answers" });
    }
    let pick = keep[0];
    let confidence = if keep.len() > 1 { Confidence::Low } else { base.min(Confidence::Medium) };
    let lookalikes = top.iter().filter(|c| c.mech != pick.mech).map(|c| c.mech).collect();
    Some(Decision { mech: pick.mech, scenario: pick.scenario.clone(), confidence, lookalikes, rule: if keep.len() > 1 { Some("catalogue order") } else { rule } })
}

#[cfg(test)]
mod tests {
    use super::super::signature::mechanisms;
    use super::*;

    fn ms() -> Vec<Mechanism> {
        mechanisms(&crate::catalogue::all().unwrap())
    }

    fn id(ms: &[Mechanism], d: &Option<Decision>) -> String {
        d.as_ref().map_or("-".into(), |d| ms[d.mech].id.clone())
    }

    fn ev(method: &str, status: u16, attempts: &[(u16, f64, Option<Class>)]) -> Evidence {
        Evidence {
            method: method.into(),
            status: Some(status),
            attempts: attempts.iter().map(|&(s, t, c)| Attempt { status: Some(s), time: Some(t), class: c }).collect(),
            statuses_known: true,
            body: None,
            client_closed: false,
            v6_loopback: false,
            subrequest: Vec::new(),
            auth_status: None,
        }
    }

    const PC: Option<Class> = Some(Class::PrematureClose);

    /// Requests as nginx logs them, and the mechanism they name.
    #[test]
    fn requests_name_their_mechanism() {
        let ms = ms();
        let answered = Context { endpoint_answered: true, ..Context::default() };
        let never = Context::default();
        let refused = Context { endpoint_answered: true, nearby: [Class::ConnectRefused].into() };
        let cut = Evidence { body: Some(Class::PrematureCloseBody), ..ev("GET", 200, &[(200, 0.1, None)]) };
        let table: Vec<(Evidence, &Context, &str, Confidence)> = vec![
            // The idle race: GET retried "502, 200", the failed attempt at ~0.
            (ev("GET", 200, &[(502, 0.0, PC), (200, 0.001, None)]), &answered, "idle-race", Confidence::High),
            (ev("GET", 200, &[(502, 0.0, Some(Class::Reset)), (200, 0.001, None)]), &answered, "idle-race", Confidence::High),
            // A POST 502 at ~0: the race, a panic or a shutdown race.
            (ev("POST", 502, &[(502, 0.0, PC)]), &answered, "idle-race", Confidence::Medium),
            (ev("POST", 502, &[(502, 0.001, PC)]), &never, "handler-panic", Confidence::Medium),
            (ev("POST", 502, &[(502, 0.0, PC)]), &refused, "graceful-shutdown", Confidence::Medium),
            // WriteTimeout: a handler's time, once or on every cached retry.
            (ev("GET", 502, &[(502, 5.0, PC)]), &answered, "write-timeout", Confidence::High),
            (ev("GET", 502, &[(502, 5.0, PC), (502, 5.0, PC)]), &answered, "write-timeout", Confidence::High),
            (cut, &answered, "write-timeout", Confidence::High),
            // A read timeout with the handler run (a slow endpoint, never
            // answering) or never run (Go's accept stalled at its fd limit,
            // an endpoint that answers at other times): the same lines.
            (ev("GET", 504, &[(504, 2.0, Some(Class::ReadTimeout))]), &never, "proxy-read-timeout", Confidence::Medium),
            (ev("GET", 504, &[(504, 2.0, Some(Class::ReadTimeout))]), &answered, "fd-limit", Confidence::Medium),
            (ev("GET", 504, &[(504, 2.0, Some(Class::ConnectTimeout))]), &answered, "backlog-overflow", Confidence::High),
            (ev("GET", 502, &[(502, 0.0, Some(Class::ConnectRefused))]), &answered, "upstream-down", Confidence::High),
            // A reset, not retried, after a wait no handler explains: a new
            // connection reset in a closing listener's accept queue.
            (ev("GET", 502, &[(502, 0.05, Some(Class::Reset))]), &answered, "listener-close-queued", Confidence::High),
            (ev("GET", 502, &[(502, 0.0, Some(Class::TooBigHeader))]), &answered, "too-big-header", Confidence::High),
            // A timeout retried on the next server, which times out too.
            (ev("GET", 504, &[(504, 2.0, Some(Class::ReadTimeout)), (504, 2.0, Some(Class::ReadTimeout))]), &answered, "read-timeout-retried", Confidence::High),
            // Every server marked down: nginx's own 502, no server contacted.
            (ev("GET", 502, &[(502, 0.0, Some(Class::NoLiveUpstreams))]), &answered, "max-fails-cascade", Confidence::High),
            // A stream cut by proxy_read_timeout after its header: a 200 whose body timed out.
            (Evidence { body: Some(Class::ReadTimeoutBody), ..ev("GET", 200, &[(200, 60.0, None)]) }, &answered, "sse-idle", Confidence::High),
            // No error.log: the access log alone, less sure.
            (ev("GET", 200, &[(502, 0.0, None), (200, 0.001, None)]), &answered, "idle-race", Confidence::Medium),
            // A refused connect to [::1] retried on 127.0.0.1: localhost expanded to both.
            (Evidence { v6_loopback: true, ..ev("GET", 200, &[(502, 0.0, Some(Class::ConnectRefused)), (200, 0.001, None)]) }, &answered, "localhost-ipv6", Confidence::High),
            // The same without the address: a server that is down.
            (ev("GET", 200, &[(502, 0.0, Some(Class::ConnectRefused)), (200, 0.001, None)]), &answered, "upstream-down", Confidence::High),
        ];
        for (e, ctx, want, conf) in table {
            let d = decide(&candidates(&e, &ms), &ms, ctx, complete(&e));
            assert_eq!(id(&ms, &d), want, "{e:?}");
            assert_eq!(d.unwrap().confidence, conf, "{e:?}");
        }
        // Each of the two read-timeout mechanisms names the other.
        for ctx in [&answered, &never] {
            let e = ev("GET", 504, &[(504, 2.0, Some(Class::ReadTimeout))]);
            let d = decide(&candidates(&e, &ms), &ms, ctx, complete(&e)).unwrap();
            let looks: Vec<&str> = d.lookalikes.iter().map(|&m| ms[m].id.as_str()).collect();
            let other = if ms[d.mech].id == "fd-limit" { "proxy-read-timeout" } else { "fd-limit" };
            assert!(looks.contains(&other), "{looks:?}");
        }
    }

    #[test]
    fn what_no_scenario_shows_is_not_named() {
        let ms = ms();
        // A refused connect takes no time: 3 s contradicts every shape of it.
        let e = ev("GET", 502, &[(502, 3.0, Some(Class::ConnectRefused))]);
        assert_eq!(candidates(&e, &ms), vec![], "{e:?}");
        let no_failure = Evidence { client_closed: true, ..ev("GET", 499, &[]) };
        assert_eq!(outcome(&no_failure), Some(Outcome::ClientClosed));
        assert!(candidates(&no_failure, &ms).is_empty());
        assert_eq!(outcome(&ev("GET", 200, &[(200, 0.0, None)])), None);
        assert_eq!(outcome(&ev("GET", 200, &[(502, 0.0, PC), (200, 0.0, None)])), Some(Outcome::Retried));
    }

    #[test]
    fn ties_name_their_lookalikes() {
        let ms = ms();
        let e = ev("POST", 502, &[(502, 0.0, PC)]);
        let d = decide(&candidates(&e, &ms), &ms, &Context { endpoint_answered: true, ..Context::default() }, true).unwrap();
        let looks: Vec<&str> = d.lookalikes.iter().map(|&i| ms[i].id.as_str()).collect();
        assert!(looks.contains(&"graceful-shutdown") && looks.contains(&"handler-panic"), "{looks:?}");
    }
}
