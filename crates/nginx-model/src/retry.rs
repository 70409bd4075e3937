//! `ngx_http_upstream_next()`: whether a failed attempt is retried, and the
//! status a request finally gets; and `ngx_http_upstream_test_next()`, which
//! treats an upstream status listed in `proxy_next_upstream` as a failure.
//!
//! One pure function, [`next_upstream`], with the steps in nginx's order. The
//! order matters: the cached-connection try is given back *before* the
//! non-idempotent bit is added, and the `proxy_next_upstream_tries` cap is
//! applied once at request start, so it does not bound cached retries.

use std::time::Duration;

/// `NGX_HTTP_UPSTREAM_FT_*` bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Ft(pub u32);

impl Ft {
    pub const ERROR: Ft = Ft(0x2);
    pub const TIMEOUT: Ft = Ft(0x4);
    pub const INVALID_HEADER: Ft = Ft(0x8);
    pub const HTTP_500: Ft = Ft(0x10);
    pub const HTTP_502: Ft = Ft(0x20);
    pub const HTTP_503: Ft = Ft(0x40);
    pub const HTTP_504: Ft = Ft(0x80);
    pub const HTTP_403: Ft = Ft(0x100);
    pub const HTTP_404: Ft = Ft(0x200);
    pub const HTTP_429: Ft = Ft(0x400);
    pub const NON_IDEMPOTENT: Ft = Ft(0x4000);
    pub const NOLIVE: Ft = Ft(0x4000_0000);
    pub const OFF: Ft = Ft(0x8000_0000);

    pub fn contains(self, other: Ft) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn union(self, other: Ft) -> Ft {
        Ft(self.0 | other.0)
    }

    /// Keywords of `proxy_next_upstream` (`ngx_http_proxy_next_upstream_masks`).
    pub const KEYWORDS: [(&'static str, Ft); 12] = [
        ("error", Ft::ERROR),
        ("timeout", Ft::TIMEOUT),
        ("invalid_header", Ft::INVALID_HEADER),
        ("non_idempotent", Ft::NON_IDEMPOTENT),
        ("http_500", Ft::HTTP_500),
        ("http_502", Ft::HTTP_502),
        ("http_503", Ft::HTTP_503),
        ("http_504", Ft::HTTP_504),
        ("http_403", Ft::HTTP_403),
        ("http_404", Ft::HTTP_404),
        ("http_429", Ft::HTTP_429),
        ("off", Ft::OFF),
    ];

    /// The default `proxy_next_upstream error timeout`.
    pub const DEFAULT_MASK: Ft = Ft(0x2 | 0x4);

    /// Parses `proxy_next_upstream` arguments; `Err` names the bad keyword.
    pub fn parse_mask(args: &[String]) -> Result<Ft, UnknownKeyword> {
        let mut mask = Ft(0);
        for a in args {
            let (_, bit) = Ft::KEYWORDS.iter().find(|(k, _)| k == a).ok_or_else(|| UnknownKeyword(a.clone()))?;
            mask = if *bit == Ft::OFF { Ft::OFF } else { mask.union(*bit) };
        }
        Ok(mask)
    }

    /// The keywords of a mask, for rendering a config.
    pub fn keywords(self) -> Vec<&'static str> {
        if self == Ft::OFF {
            return vec!["off"];
        }
        Ft::KEYWORDS.iter().filter(|(k, b)| *k != "off" && self.contains(*b)).map(|(k, _)| *k).collect()
    }

    /// The status an attempt failing with this type gives (step 4).
    pub fn status(self) -> u16 {
        match self {
            Ft::TIMEOUT | Ft::HTTP_504 => 504,
            Ft::HTTP_500 => 500,
            Ft::HTTP_503 => 503,
            Ft::HTTP_403 => 403,
            Ft::HTTP_404 => 404,
            Ft::HTTP_429 => 429,
            _ => 502,
        }
    }

    /// The `proxy_next_upstream http_xxx` bit for an upstream status, if any.
    pub fn for_status(status: u16) -> Option<Ft> {
        Some(match status {
            500 => Ft::HTTP_500,
            502 => Ft::HTTP_502,
            503 => Ft::HTTP_503,
            504 => Ft::HTTP_504,
            403 => Ft::HTTP_403,
            404 => Ft::HTTP_404,
            429 => Ft::HTTP_429,
            _ => return None,
        })
    }
}

/// Not a `proxy_next_upstream` keyword.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value \"{0}\"")]
pub struct UnknownKeyword(pub String);

/// The request-level facts the decision needs.
#[derive(Debug, Clone)]
pub struct RetryContext {
    pub method: String,
    /// `proxy_next_upstream`.
    pub mask: Ft,
    /// `proxy_request_buffering` (on by default).
    pub request_buffering: bool,
    /// `proxy_next_upstream_timeout` (None = 0 = off).
    pub next_upstream_timeout: Option<Duration>,
    /// The upstream has exactly one primary address and no backup.
    pub single_peer: bool,
}

/// One failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailedAttempt {
    pub ft: Ft,
    /// The connection came from the keepalive cache (`u->peer.cached`).
    pub cached: bool,
    /// `u->request_sent`: set just before the first write
    /// (`ngx_http_upstream_send_request`).
    pub request_sent: bool,
    /// A peer had been picked (false for "no live upstreams").
    pub peer_picked: bool,
    /// The client connection already failed.
    pub client_gone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Decision {
    /// Pick a peer again; `tries` is what is left.
    Retry { tries: u32 },
    /// Finalize the request with this status.
    GiveUp { status: u16 },
}

/// Is this method non-idempotent for nginx (POST, LOCK, PATCH)?
pub fn non_idempotent(method: &str) -> bool {
    matches!(method, "POST" | "LOCK" | "PATCH")
}

/// `ngx_http_upstream_next`. `tries` is `u->peer.tries` before the attempt's
/// release; `elapsed` is time since the client request started. Returns the
/// decision and the status recorded for the failed attempt in
/// `$upstream_status`.
pub fn next_upstream(mut tries: u32, a: FailedAttempt, ctx: &RetryContext, elapsed: Duration) -> (Decision, u16) {
    // 1. Release the peer (round-robin free): single peer → 0, else −1.
    if a.peer_picked {
        tries = if ctx.single_peer { 0 } else { tries.saturating_sub(1) };
    }
    // 3. Cached-connection exception: an error (not timeout) gives the try back.
    if a.cached && a.ft == Ft::ERROR {
        tries += 1;
    }
    // 4. Status mapping.
    let status = a.ft.status();
    // 5. Client already gone.
    if a.client_gone {
        return (Decision::GiveUp { status: 499 }, status);
    }
    // 7. Non-idempotent requests that were (partly) sent; 8. give up?
    if tries == 0 || !may_retry(a.ft, a.request_sent, ctx, elapsed) {
        return (Decision::GiveUp { status }, status);
    }
    (Decision::Retry { tries }, status)
}

/// `ngx_http_upstream_test_next`: should an upstream *response* status be
/// treated as a failure and retried? Only while `tries > 1`.
/// A response status means the request was sent.
pub fn retry_on_status(status: u16, tries: u32, ctx: &RetryContext, elapsed: Duration) -> Option<Ft> {
    let bit = Ft::for_status(status)?;
    (tries > 1 && may_retry(bit, true, ctx, elapsed)).then_some(bit)
}

/// The checks `ngx_http_upstream_next` and `ngx_http_upstream_test_next`
/// share: a sent non-idempotent request needs `non_idempotent` in the mask,
/// an unbuffered body that was sent cannot be sent again, and
/// `proxy_next_upstream_timeout` bounds the whole retry sequence.
fn may_retry(ft: Ft, request_sent: bool, ctx: &RetryContext, elapsed: Duration) -> bool {
    let ft = if request_sent && non_idempotent(&ctx.method) { ft.union(Ft::NON_IDEMPOTENT) } else { ft };
    let timed_out = ctx.next_upstream_timeout.is_some_and(|t| !t.is_zero() && elapsed >= t);
    let may_resend = ctx.request_buffering || !request_sent;
    ctx.mask.contains(ft) && may_resend && !timed_out
}

/// Initial `peer.tries` (`ngx_http_upstream_init_round_robin_peer`): non-down primaries (+ backups), capped once by
/// `proxy_next_upstream_tries`.
pub fn initial_tries(live_peers: u32, next_upstream_tries: u32) -> u32 {
    if next_upstream_tries > 0 && next_upstream_tries < live_peers {
        next_upstream_tries
    } else {
        live_peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(method: &str, mask: Ft, single: bool) -> RetryContext {
        RetryContext { method: method.into(), mask, request_buffering: true, next_upstream_timeout: None, single_peer: single }
    }

    fn fail(ft: Ft, cached: bool, sent: bool) -> FailedAttempt {
        FailedAttempt { ft, cached, request_sent: sent, peer_picked: true, client_gone: false }
    }

    const Z: Duration = Duration::ZERO;
    const NI: Ft = Ft(0x2 | 0x4 | 0x4000);

    #[test]
    fn retry_table() {
        use Decision::*;
        let d = Ft::DEFAULT_MASK;
        // (name, tries before, attempt, ctx, want decision, want recorded status)
        let table: Vec<(&str, u32, FailedAttempt, RetryContext, Decision, u16)> = vec![
            ("GET on a stale cached conn, one server: retried", 1, fail(Ft::ERROR, true, true), ctx("GET", d, true), Retry { tries: 1 }, 502),
            ("fresh conn failure, one server: never retried", 1, fail(Ft::ERROR, false, true), ctx("GET", d, true), GiveUp { status: 502 }, 502),
            ("POST on a stale cached conn: 502", 1, fail(Ft::ERROR, true, true), ctx("POST", d, true), GiveUp { status: 502 }, 502),
            ("POST with non_idempotent: retried", 1, fail(Ft::ERROR, true, true), ctx("POST", NI, true), Retry { tries: 1 }, 502),
            ("PATCH and LOCK are non-idempotent too", 1, fail(Ft::ERROR, true, true), ctx("PATCH", d, true), GiveUp { status: 502 }, 502),
            ("POST connect failure (nothing sent): retried on another server", 2, fail(Ft::ERROR, false, false), ctx("POST", d, false), Retry { tries: 1 }, 502),
            ("proxy_next_upstream off: cached GET not retried", 1, fail(Ft::ERROR, true, true), ctx("GET", Ft::OFF, true), GiveUp { status: 502 }, 502),
            ("timeout on a cached conn gets no extra try", 1, fail(Ft::TIMEOUT, true, true), ctx("GET", d, true), GiveUp { status: 504 }, 504),
            ("invalid header on a cached conn gets no extra try", 1, fail(Ft::INVALID_HEADER, true, true), ctx("GET", Ft(0xe), true), GiveUp { status: 502 }, 502),
            ("invalid_header not in mask: 502", 2, fail(Ft::INVALID_HEADER, false, true), ctx("GET", d, false), GiveUp { status: 502 }, 502),
            ("timeout, two servers: retried", 2, fail(Ft::TIMEOUT, false, true), ctx("GET", d, false), Retry { tries: 1 }, 504),
            ("two servers, both failed fresh: 502", 1, fail(Ft::ERROR, false, true), ctx("GET", d, false), GiveUp { status: 502 }, 502),
            ("no live upstreams: never retried", 1, FailedAttempt { ft: Ft::NOLIVE, cached: false, request_sent: false, peer_picked: false, client_gone: false }, ctx("GET", d, false), GiveUp { status: 502 }, 502),
            ("client gone: 499", 1, FailedAttempt { client_gone: true, ..fail(Ft::ERROR, true, true) }, ctx("GET", d, true), GiveUp { status: 499 }, 502),
        ];
        for (name, tries, a, c, want, want_status) in table {
            assert_eq!(next_upstream(tries, a, &c, Z), (want, want_status), "{name}");
        }
    }

    #[test]
    fn request_buffering_off_never_resends() {
        let mut c = ctx("GET", Ft::DEFAULT_MASK, true);
        c.request_buffering = false;
        assert_eq!(next_upstream(1, fail(Ft::ERROR, true, true), &c, Z).0, Decision::GiveUp { status: 502 });
        assert_eq!(next_upstream(1, fail(Ft::ERROR, true, false), &c, Z).0, Decision::Retry { tries: 1 });
    }

    #[test]
    fn next_upstream_timeout_bounds_cached_retries() {
        let mut c = ctx("GET", Ft::DEFAULT_MASK, true);
        c.next_upstream_timeout = Some(Duration::from_millis(700));
        assert!(matches!(next_upstream(1, fail(Ft::ERROR, true, true), &c, Duration::from_millis(500)).0, Decision::Retry { .. }));
        assert_eq!(next_upstream(1, fail(Ft::ERROR, true, true), &c, Duration::from_millis(1000)).0, Decision::GiveUp { status: 502 });
    }

    #[test]
    fn tries_cap_does_not_bound_cached_retries() {
        // S2f: 3 cached conns, proxy_next_upstream_tries 2 → still 4 attempts.
        let c = ctx("GET", Ft::DEFAULT_MASK, true);
        let mut tries = initial_tries(1, 2);
        let mut attempts = 0;
        for cached in [true, true, true, false] {
            attempts += 1;
            match next_upstream(tries, fail(Ft::ERROR, cached, true), &c, Z).0 {
                Decision::Retry { tries: t } => tries = t,
                Decision::GiveUp { .. } => break,
            }
        }
        assert_eq!(attempts, 4);
    }

    #[test]
    fn status_retry_needs_two_tries() {
        let mut c = ctx("GET", Ft(Ft::DEFAULT_MASK.0 | Ft::HTTP_503.0), false);
        assert_eq!(retry_on_status(503, 2, &c, Z), Some(Ft::HTTP_503));
        assert_eq!(retry_on_status(503, 1, &c, Z), None);
        assert_eq!(retry_on_status(500, 2, &c, Z), None);
        c.method = "POST".into();
        assert_eq!(retry_on_status(503, 2, &c, Z), None);
    }

    #[test]
    fn mask_parsing() {
        let a = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(Ft::parse_mask(&a("error timeout")), Ok(Ft::DEFAULT_MASK));
        assert_eq!(Ft::parse_mask(&a("off")), Ok(Ft::OFF));
        assert_eq!(Ft::parse_mask(&a("error bogus")), Err(UnknownKeyword("bogus".into())));
        assert_eq!(Ft::parse_mask(&a("error timeout non_idempotent")).unwrap().keywords(), vec!["error", "timeout", "non_idempotent"]);
    }
}
