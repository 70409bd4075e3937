//! What each mechanism looks like in the logs, derived from the catalogue:
//! every problem scenario's predicted requests (the oracle; for a
//! natural-race scenario, which the oracle does not predict, its
//! expectations) give the *shapes* of its failed attempts: the error class,
//! whether the handler ran, what `$upstream_response_time` should be (near
//! 0, a handler's time, a timeout), what came next (a retry that worked, a
//! retry that failed the same way, nothing), the method's idempotency and
//! the client's status. Nothing here is written per mechanism: a new
//! scenario file teaches `diagnose` a new shape.

use crate::oracle;
use crate::scenario::Scenario;
use nginx_model::failure::Class;
use nginx_model::retry::non_idempotent;
use std::collections::BTreeSet;

/// What the failed attempt's `$upstream_response_time` should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// The failure came right after the request was sent: no handler time.
    NearZero,
    /// The handler's time (the handler ran, then the connection died).
    Handler,
    /// `proxy_read_timeout`.
    ReadTimeout,
    /// `proxy_connect_timeout`.
    ConnectTimeout,
    /// However long a new connection waited in a listener's accept queue
    /// before the listener closed (a handoff): any time.
    Queued,
}

/// A failure within this many seconds of the attempt's start had no handler
/// time in it: the idle race and an immediate panic take microseconds to a
/// few milliseconds on loopback (shared/reference/observed.md: 0.000 s, p50
/// 1.3 ms), a WriteTimeout at least the WriteTimeout.
pub const NEAR_ZERO: f64 = 0.010;

impl Timing {
    /// Whether an observed `$upstream_response_time` fits.
    pub fn fits(self, secs: f64) -> bool {
        match self {
            Timing::NearZero => secs <= NEAR_ZERO,
            Timing::Handler => secs > NEAR_ZERO,
            Timing::ReadTimeout | Timing::ConnectTimeout | Timing::Queued => true,
        }
    }
}

/// What happened after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Next {
    /// Retried, and the retry answered.
    RetryAnswered,
    /// Retried, and the retry failed too.
    RetryFailed,
    /// The last attempt: nginx gave up (or the body was cut).
    Final,
}

/// One failed attempt as a catalogue scenario shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema)]
pub struct Shape {
    pub class: Class,
    /// Whether the handler ran on the failed attempt (`None`: not known,
    /// a natural-race scenario).
    pub handler_ran: Option<bool>,
    pub timing: Timing,
    pub next: Next,
    /// The failed attempt was itself a retry (`None`: not known, a
    /// natural-race scenario).
    pub retry: Option<bool>,
    pub idempotent: bool,
    /// The client's status.
    pub status: u16,
    /// A failure of an `auth_request` subrequest (its lines name it), which
    /// the client gets as 500.
    pub subrequest: bool,
    /// The scenario it comes from.
    pub scenario: String,
}

/// A mechanism of the catalogue, as `diagnose` recognises it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct Mechanism {
    pub id: String,
    /// The first problem scenario naming it (whose fix is the default).
    pub scenario: String,
    pub title: String,
    #[serde(skip)]
    pub scenarios: Vec<(String, String)>,
    pub shapes: Vec<Shape>,
    /// Classes its other scenarios (remedies included) show beside its
    /// failures: evidence to look for nearby (a graceful shutdown's refused
    /// connects once the listener is gone).
    pub companions: BTreeSet<Class>,
    /// Its scenarios reach Go through `[::1]` (`[nginx] localhost`): only
    /// requests whose failed attempt went there fit it.
    #[serde(skip)]
    pub v6_loopback: bool,
}

impl Mechanism {
    /// The fix text of `scenario` (one of this mechanism's), else the first.
    pub fn fix_of(&self, scenario: &str) -> &str {
        self.scenarios.iter().find(|(n, _)| n == scenario).or(self.scenarios.first()).map_or("", |(_, f)| f.as_str())
    }
}

/// `ms=N` in a handler path: the handler's own time (0 if none).
fn handler_ms(path: &str) -> u64 {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    query.split('&').filter_map(|kv| kv.strip_prefix("ms=")).filter_map(|v| v.parse().ok()).next().unwrap_or(0)
}

fn timing(class: Class, ran: bool, path: &str, queued: bool) -> Timing {
    match class {
        // The failure came when the listener closed, not from the handler.
        Class::Reset | Class::PrematureClose | Class::ConnectFailed if queued && !ran => Timing::Queued,
        Class::ReadTimeout | Class::ReadTimeoutBody => Timing::ReadTimeout,
        Class::ConnectTimeout => Timing::ConnectTimeout,
        _ if ran && handler_ms(path) > 0 => Timing::Handler,
        _ => Timing::NearZero,
    }
}

fn is_failure(status: u16) -> bool {
    matches!(status, 502 | 504)
}

/// The shapes one scenario's requests show.
fn shapes_of(s: &Scenario) -> Vec<Shape> {
    let mut out = Vec::new();
    // A new connection is reset in the accept queue of a closing listener.
    let queued = s.workload.action == labkit::action::Action::ReuseportHandoffQueued;
    let push = |out: &mut Vec<Shape>, class, handler_ran, timing, next, retry, method: &str, status| {
        out.push(Shape { class, handler_ran, timing, next, retry, idempotent: !non_idempotent(method), status, subrequest: false, scenario: s.name.clone() });
    };
    match oracle::predict(s) {
        Some(preds) => {
            let mut preds = preds.into_iter();
            for g in &s.requests {
                for _ in 0..g.count {
                    let Some(first) = preds.next() else { break };
                    // Go's reset racing nginx's upload: the other outcome has its own shape.
                    for p in std::iter::once(&first).chain(first.alt.as_deref()) {
                        // Refused by auth_request: the errors before its
                        // "unexpected status" line are the subrequest's.
                        if let Some(at) = p.errors.iter().position(|alts| alts.contains(&Class::AuthStatus)) {
                            for &class in p.errors[..at].iter().flatten() {
                                let timing = timing(class, p.handler_runs > 0, &g.path, queued);
                                out.push(Shape { class, handler_ran: None, timing, next: Next::Final, retry: Some(false), idempotent: !non_idempotent(&g.method), status: p.status, subrequest: true, scenario: s.name.clone() });
                            }
                            continue;
                        }
                        let failed: Vec<usize> = (0..p.upstream_status.len()).filter(|&i| is_failure(p.upstream_status[i])).collect();
                        let answered = p.upstream_status.len() - failed.len();
                        let ran_failed = p.handler_runs.saturating_sub(answered as u64) as usize;
                        let ran = if ran_failed == failed.len() {
                            Some(true)
                        } else if ran_failed == 0 {
                            Some(false)
                        } else {
                            None
                        };
                        for (&i, alts) in failed.iter().zip(&p.errors) {
                            let next = match p.upstream_status.get(i + 1) {
                                None => Next::Final,
                                Some(&st) if is_failure(st) => Next::RetryFailed,
                                Some(_) => Next::RetryAnswered,
                            };
                            for &class in alts {
                                push(&mut out, class, ran, timing(class, ran.unwrap_or(false), &g.path, queued), next, Some(i > 0), &g.method, p.status);
                            }
                        }
                        for b in &p.body {
                            if let Some(class) = b.error {
                                push(&mut out, class, Some(true), timing(class, true, &g.path, queued), Next::Final, Some(p.upstream_status.len() > 1), &g.method, p.status);
                            }
                        }
                    }
                }
            }
        }
        // A natural race: the expectations say which classes and statuses.
        None => {
            for g in &s.requests {
                let classes = g.expect.errors_in.iter().chain(g.expect.errors.iter()).flatten().filter_map(|c| c.parse::<Class>().ok());
                let statuses: Vec<u16> = g.expect.status.into_iter().chain(g.expect.status_in.iter().flatten().copied()).collect();
                for class in classes {
                    // A body failure (a slow client's cut) ends the response the
                    // handler began, after the handler's time; a header failure
                    // with a 2xx is one nginx retried.
                    let body = matches!(class, Class::PrematureCloseBody | Class::ResetBody | Class::ReadTimeoutBody);
                    for &st in &statuses {
                        let next = if body || is_failure(st) { Next::Final } else { Next::RetryAnswered };
                        let (ran, when) = match class {
                            Class::ReadTimeoutBody => (Some(true), Timing::ReadTimeout),
                            _ if body => (Some(true), Timing::Handler),
                            _ => (None, timing(class, false, &g.path, queued)),
                        };
                        push(&mut out, class, ran, when, next, None, &g.method, st);
                    }
                }
            }
        }
    }
    out
}

/// Every classes a scenario's requests show (predicted or expected).
fn classes_of(s: &Scenario) -> BTreeSet<Class> {
    let mut out: BTreeSet<Class> = s.requests.iter().flat_map(|g| g.expect.errors.iter().chain(g.expect.errors_in.iter()).flatten()).filter_map(|c| c.parse().ok()).collect();
    if let Some(preds) = oracle::predict(s) {
        let all = preds.iter().flat_map(|p| std::iter::once(p).chain(p.alt.as_deref()));
        out.extend(all.flat_map(|p| p.errors.iter().flatten().copied().chain(p.body.iter().filter_map(|b| b.error))));
    }
    out
}

/// The mechanisms of a catalogue, in catalogue order, each with the shapes
/// of its problem scenarios (remedy twins show what the fix leaves, not the
/// mechanism) and the companion classes of all its scenarios.
pub fn mechanisms(catalogue: &[Scenario]) -> Vec<Mechanism> {
    let mut out: Vec<Mechanism> = Vec::new();
    for s in catalogue.iter().filter(|s| !s.is_remedy()) {
        let i = match out.iter().position(|m| m.id == s.mechanism) {
            Some(i) => i,
            None => {
                out.push(Mechanism {
                    id: s.mechanism.clone(),
                    scenario: s.name.clone(),
                    title: s.title.clone(),
                    scenarios: Vec::new(),
                    shapes: Vec::new(),
                    companions: BTreeSet::new(),
                    v6_loopback: false,
                });
                out.len() - 1
            }
        };
        let m = &mut out[i];
        m.scenarios.push((s.name.clone(), s.fix.trim().to_string()));
        m.v6_loopback |= s.nginx.localhost;
        for shape in shapes_of(s) {
            if !m.shapes.iter().any(|x| (x.class, x.handler_ran, x.timing, x.next, x.retry, x.idempotent, x.status, x.subrequest) == (shape.class, shape.handler_ran, shape.timing, shape.next, shape.retry, shape.idempotent, shape.status, shape.subrequest)) {
                m.shapes.push(shape);
            }
        }
    }
    for m in &mut out {
        let own: BTreeSet<Class> = m.shapes.iter().map(|s| s.class).collect();
        m.companions = catalogue.iter().filter(|s| s.mechanism == m.id).flat_map(classes_of).filter(|c| !own.contains(c)).collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_id<'a>(ms: &'a [Mechanism], id: &str) -> &'a Mechanism {
        ms.iter().find(|m| m.id == id).unwrap_or_else(|| panic!("no mechanism {id}"))
    }

    /// The derived signatures say what the articles say, read off the
    /// catalogue rather than written here.
    #[test]
    fn signatures_come_from_the_catalogue() {
        let ms = mechanisms(&crate::catalogue::all().unwrap());
        let ids: Vec<&str> = ms.iter().map(|m| m.id.as_str()).collect();
        for id in ["idle-race", "write-timeout", "proxy-read-timeout", "handler-panic", "upstream-down", "graceful-shutdown", "backlog-overflow"] {
            assert!(ids.contains(&id), "{id} in {ids:?}");
        }
        let idle = by_id(&ms, "idle-race");
        assert!(idle.shapes.iter().any(|s| s.class == Class::PrematureClose && s.next == Next::RetryAnswered && s.idempotent && s.handler_ran == Some(false) && s.timing == Timing::NearZero));
        assert!(idle.shapes.iter().any(|s| s.class == Class::PrematureClose && s.next == Next::Final && !s.idempotent && s.status == 502));
        assert!(idle.shapes.iter().any(|s| s.class == Class::Reset), "the RST variant, from idle-race-natural's expectations");
        // An early answer over an unread body: the 502 when the upload meets Go's RST,
        // the answer with a reset under it otherwise.
        let early = by_id(&ms, "early-answer-unread-body");
        assert!(early.shapes.iter().any(|s| s.class == Class::SendFailed && s.status == 502 && !s.idempotent && s.handler_ran == Some(true)), "{:?}", early.shapes);
        assert!(early.shapes.iter().any(|s| s.class == Class::ResetBody && s.status == 401), "{:?}", early.shapes);
        // localhost's refused [::1] attempt, retried: only through [::1].
        let lh = by_id(&ms, "localhost-ipv6");
        assert!(lh.v6_loopback && lh.shapes.iter().any(|s| s.class == Class::ConnectRefused && s.next == Next::RetryAnswered && s.handler_ran == Some(false)), "{:?}", lh.shapes);
        assert!(ms.iter().filter(|m| m.v6_loopback).count() == 1);
        let wt = by_id(&ms, "write-timeout");
        // A slow client's cut (not predicted: from its expectations) ends the handler's response.
        assert!(wt.shapes.iter().any(|s| s.scenario == "slow-client" && s.class == Class::PrematureCloseBody && s.next == Next::Final && s.timing == Timing::Handler), "{:?}", wt.shapes);
        assert!(wt.shapes.iter().all(|s| s.timing == Timing::Handler && s.handler_ran == Some(true)), "{:?}", wt.shapes);
        assert!(wt.shapes.iter().any(|s| s.next == Next::RetryFailed), "the cached retry runs the handler again");
        assert!(wt.shapes.iter().any(|s| s.class == Class::PrematureCloseBody), "partial-write's cut body");
        assert!(by_id(&ms, "proxy-read-timeout").shapes.iter().all(|s| s.class == Class::ReadTimeout && s.status == 504));
        assert!(by_id(&ms, "backlog-overflow").shapes.iter().all(|s| s.class == Class::ConnectTimeout && s.status == 504));
        assert!(by_id(&ms, "upstream-down").shapes.iter().all(|s| s.class == Class::ConnectRefused));
        assert!(by_id(&ms, "handler-panic").shapes.iter().all(|s| s.handler_ran == Some(true) && s.timing == Timing::NearZero));
        let gs = by_id(&ms, "graceful-shutdown");
        assert!(gs.companions.contains(&Class::ConnectRefused), "its remedy shows the refused connects after Shutdown");
        assert!(idle.companions.is_empty() && by_id(&ms, "handler-panic").companions.is_empty());
        assert!(!wt.fix_of("partial-write").is_empty() && wt.fix_of("partial-write") != wt.fix_of("write-timeout"));
    }

    #[test]
    fn handler_time_comes_from_the_path() {
        assert_eq!(handler_ms("/sleep?ms=5000"), 5000);
        assert_eq!(handler_ms("/partial?bytes=65536&ms=5000"), 5000);
        assert_eq!(handler_ms("/panic"), 0);
    }
}
