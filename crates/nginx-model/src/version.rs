//! Which nginx a binary is, and what that means for a configuration: the
//! version `nginx -V` prints, the [`Profile`] of defaults it runs, the
//! directives a configuration uses that an older nginx does not have, and a
//! configuration pinned so that it means on any nginx what it means on
//! nginx 1.22 (the release the catalogue's expectations were written for).
//! All pure: the harness runs `nginx -V` and feeds the text in.

use crate::conf::Config;
use crate::profile::{self, Profile};
use crate::retry::Ft;
use std::fmt;

/// An nginx release, `major.minor.patch` (forks such as OpenResty add a
/// fourth number, which the lab ignores: their nginx core is the first three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
pub struct Version(pub u32, pub u32, pub u32);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The first release with the ≥ 1.29.7 defaults (see [`Profile`]).
pub const MODERN_SINCE: Version = Version(1, 29, 7);

impl Version {
    /// The defaults this release runs with.
    pub fn profile(self) -> Profile {
        if self >= MODERN_SINCE {
            Profile::Modern
        } else {
            Profile::Legacy
        }
    }
}

/// What `nginx -V` says about a binary.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NginxV {
    /// The product before the slash: `nginx`, `openresty`, `freenginx`, …
    pub product: String,
    pub version: Version,
    /// The text after "configure arguments:" (empty when not printed).
    pub configure_arguments: String,
}

/// Reads the output of `nginx -V` (nginx prints it on stderr):
/// `nginx version: nginx/1.22.1` (possibly followed by ` (Ubuntu)`), other
/// lines, and `configure arguments: …`. `None` when the text is not nginx's.
pub fn parse_nginx_v(text: &str) -> Option<NginxV> {
    let line = text.lines().find_map(|l| l.trim().strip_prefix("nginx version:"))?;
    let (product, rest) = line.trim().split_once('/')?;
    let number = rest.split(|c: char| !(c.is_ascii_digit() || c == '.')).next()?;
    let mut parts = number.split('.').map(|p| p.parse::<u32>().ok());
    let version = Version(parts.next()??, parts.next()??, parts.next().flatten().unwrap_or(0));
    let configure_arguments = text.lines().find_map(|l| l.trim().strip_prefix("configure arguments:")).unwrap_or("").trim().to_string();
    Some(NginxV { product: product.trim().to_string(), version, configure_arguments })
}

/// A directive (or a parameter of one) and the first release that has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// As nginx's documentation names it, with its context where that
    /// matters (`keepalive_timeout` also exists outside `upstream{}`, since 0.1).
    pub what: &'static str,
    pub since: Version,
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} needs nginx ≥ {}", self.what, self.since)
    }
}

/// What the lab itself writes into every rendered configuration: its
/// access-log format uses `$upstream_connect_time` (nginx 1.9.1).
pub const LAB_FORMAT_NEEDS: Requirement = Requirement { what: "the lab's access-log format ($upstream_connect_time)", since: Version(1, 9, 1) };

/// Every version-dependent directive `cfg` uses, with the release that
/// introduced it (from nginx's documentation: "This directive appeared in
/// version …"). Directives every supported release has are not listed.
pub fn requirements(cfg: &Config) -> Vec<Requirement> {
    let mut out = Vec::new();
    let mut need = |used: bool, what: &'static str, since: Version| {
        if used && !out.iter().any(|r: &Requirement| r.what == what) {
            out.push(Requirement { what, since });
        }
    };
    for u in &cfg.upstreams {
        need(u.keepalive.is_some(), "keepalive (upstream)", Version(1, 1, 4));
        need(u.keepalive_requests.is_some(), "keepalive_requests (upstream)", Version(1, 15, 3));
        need(u.keepalive_timeout.is_some(), "keepalive_timeout (upstream)", Version(1, 15, 3));
        need(u.keepalive_time.is_some(), "keepalive_time (upstream)", Version(1, 19, 10));
    }
    let servers = cfg.servers.iter().map(|s| &s.proxy);
    let locations = cfg.servers.iter().flat_map(|s| s.locations.iter().map(|l| &l.proxy));
    for p in std::iter::once(&cfg.proxy).chain(servers).chain(locations) {
        need(p.http_version.is_some(), "proxy_http_version", Version(1, 1, 4));
        need(p.next_upstream_tries.is_some(), "proxy_next_upstream_tries", Version(1, 7, 5));
        need(p.next_upstream_timeout.is_some(), "proxy_next_upstream_timeout", Version(1, 7, 5));
        need(p.request_buffering.is_some(), "proxy_request_buffering", Version(1, 7, 11));
        let mask = p.next_upstream.unwrap_or(Ft(0));
        need(mask.0 & Ft::NON_IDEMPOTENT.0 != 0, "proxy_next_upstream non_idempotent", Version(1, 9, 13));
        need(mask.0 & Ft::HTTP_429.0 != 0, "proxy_next_upstream http_429", Version(1, 11, 13));
    }
    out
}

/// A binary too old for what a configuration uses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("nginx {version} is too old for this configuration: {}", .missing.iter().map(|r| r.to_string()).collect::<Vec<_>>().join("; "))]
pub struct TooOld {
    pub version: Version,
    pub missing: Vec<Requirement>,
}

/// Whether `version` has every directive `cfg` uses (and the lab's log format).
pub fn check(cfg: &Config, version: Version) -> Result<(), TooOld> {
    let missing: Vec<Requirement> = std::iter::once(LAB_FORMAT_NEEDS).chain(requirements(cfg)).filter(|r| version < r.since).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(TooOld { version, missing })
    }
}

/// A configuration whose meaning depends on the defaults of nginx ≤ 1.29.6
/// in a way no directive can restore on a later nginx.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upstream {upstream}: HTTP/1.1 without `Connection: close` and no `keepalive`: nginx ≥ 1.29.7 caches 32 connections here, nginx ≤ 1.29.6 none (set `keepalive` explicitly)")]
pub struct Unpinnable {
    pub upstream: String,
}

/// Rewrites `cfg` so that nginx running `profile` treats it as nginx 1.22
/// (`Profile::Legacy`, the catalogue's reference) does: where a location
/// leaves `proxy_http_version` or the `Connection` header to the default,
/// the legacy default is written out (HTTP/1.0, `Connection: close`). An
/// upstream block left without `keepalive` gets 32 cached connections from
/// a modern nginx; that only matters when connections can be reused, which
/// the two pinned defaults rule out unless the configuration asked for
/// HTTP/1.1 without `Connection: close` itself: then [`Unpinnable`].
pub fn pin_legacy_defaults(cfg: &mut Config, profile: Profile) -> Result<(), Unpinnable> {
    if profile == Profile::Legacy {
        return Ok(());
    }
    // The legacy defaults, from the profile rules themselves.
    let legacy_version = if profile::http11(Profile::Legacy, None) { "1.1" } else { "1.0" };
    let legacy_connection: Vec<(String, String)> =
        profile::default_request_headers(Profile::Legacy).into_iter().filter(|(k, _)| k.eq_ignore_ascii_case("connection")).collect();
    let http = cfg.proxy.clone();
    for srv in &mut cfg.servers {
        let server = srv.proxy.merged_over(&http);
        for loc in &mut srv.locations {
            let eff = loc.proxy.merged_over(&server);
            let mut headers = eff.set_header.clone().unwrap_or_default();
            let connection_set = headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("connection"));
            if !connection_set {
                headers.extend(legacy_connection.iter().cloned());
            }
            // Text rendered as written (a scenario's location_conf): the
            // pins are lines after it, the text itself untouched.
            if let Some(text) = &mut loc.verbatim {
                let mut add = String::new();
                if loc.proxy.http_version.is_none() {
                    add.push_str(&format!("proxy_http_version {};\n", eff.http_version.clone().unwrap_or_else(|| legacy_version.into())));
                }
                // Headers set here replace every inherited one.
                let lines = if loc.proxy.set_header.is_none() { headers.clone() } else if connection_set { Vec::new() } else { legacy_connection.clone() };
                for (k, v) in lines {
                    add.push_str(&format!("proxy_set_header {k} \"{v}\";\n"));
                }
                if !add.is_empty() {
                    if !text.ends_with('\n') {
                        text.push('\n');
                    }
                    text.push_str("# pinned to nginx 1.22's defaults by badgateway-lab\n");
                    text.push_str(&add);
                }
            }
            loc.proxy.http_version = Some(eff.http_version.clone().unwrap_or_else(|| legacy_version.into()));
            loc.proxy.set_header = Some(headers);
        }
    }
    // Where connections can still be reused, a modern nginx caches 32 of
    // them for an upstream without `keepalive`, nginx 1.22 none: resolve
    // (which finds each location's upstream as nginx does) says where.
    let Ok(r) = crate::resolve::resolve(cfg, profile) else { return Ok(()) };
    for loc in r.servers.iter().flat_map(|s| &s.locations) {
        let Some(up) = r.upstreams.get(loc.upstream) else { continue };
        let explicit = cfg.upstreams.iter().find(|u| u.name.eq_ignore_ascii_case(&up.name)).map(|u| u.keepalive.is_some());
        if loc.reuse_possible(up) && explicit == Some(false) {
            return Err(Unpinnable { upstream: up.name.clone() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf;
    use crate::resolve::resolve;

    #[test]
    fn reads_nginx_v() {
        let debian = "nginx version: nginx/1.22.1\nbuilt with OpenSSL 3.0.9 30 May 2023\nTLS SNI support enabled\nconfigure arguments: --with-cc-opt='-g -O2' --prefix=/usr/share/nginx\n";
        let v = parse_nginx_v(debian).unwrap();
        assert_eq!((v.product.as_str(), v.version), ("nginx", Version(1, 22, 1)));
        assert_eq!(v.configure_arguments, "--with-cc-opt='-g -O2' --prefix=/usr/share/nginx");
        let table = [
            ("nginx version: nginx/1.18.0 (Ubuntu)\n", Some(("nginx", Version(1, 18, 0)))),
            ("nginx version: openresty/1.21.4.1\n", Some(("openresty", Version(1, 21, 4)))),
            ("nginx version: freenginx/1.27.2\n", Some(("freenginx", Version(1, 27, 2)))),
            ("nginx version: nginx/1.29.7\n", Some(("nginx", Version(1, 29, 7)))),
            ("Python 3.11.2\n", None),
            ("nginx version: nginx\n", None),
            ("", None),
        ];
        for (text, want) in table {
            let got = parse_nginx_v(text).map(|v| (v.product.clone(), v.version));
            assert_eq!(got, want.map(|(p, v)| (p.to_string(), v)), "{text:?}");
        }
    }

    #[test]
    fn profile_by_release() {
        assert_eq!(Version(1, 22, 1).profile(), Profile::Legacy);
        assert_eq!(Version(1, 29, 6).profile(), Profile::Legacy);
        assert_eq!(Version(1, 29, 7).profile(), Profile::Modern);
        assert_eq!(Version(1, 30, 0).profile(), Profile::Modern);
        assert_eq!(Version(2, 0, 0).profile(), Profile::Modern);
    }

    const LAB: &str = "events {}\nhttp {\n upstream u { server 127.0.0.1:1; keepalive 16; keepalive_timeout 4s; keepalive_time 1h; }\n server {\n  listen 127.0.0.1:8080;\n  location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_next_upstream error timeout non_idempotent; }\n }\n}\n";

    #[test]
    fn too_old_names_each_directive_and_release() {
        let cfg = conf::parse(LAB, "t.conf").unwrap();
        assert_eq!(check(&cfg, Version(1, 22, 1)), Ok(()));
        assert_eq!(check(&cfg, Version(1, 19, 10)), Ok(()));
        let err = check(&cfg, Version(1, 14, 2)).unwrap_err();
        let whats: Vec<&str> = err.missing.iter().map(|r| r.what).collect();
        assert_eq!(whats, ["keepalive_timeout (upstream)", "keepalive_time (upstream)"]);
        assert_eq!(
            err.to_string(),
            "nginx 1.14.2 is too old for this configuration: keepalive_timeout (upstream) needs nginx ≥ 1.15.3; keepalive_time (upstream) needs nginx ≥ 1.19.10"
        );
        let err = check(&cfg, Version(1, 8, 0)).unwrap_err();
        assert_eq!(err.missing[0], LAB_FORMAT_NEEDS, "the lab's own log format comes first");
        assert!(err.missing.iter().any(|r| r.what == "proxy_next_upstream non_idempotent"));
    }

    /// Whether a location can reuse upstream connections, as `resolve` sees it.
    fn reuse(src: &Config, profile: Profile) -> bool {
        let r = resolve(src, profile).unwrap();
        let loc = &r.servers[0].locations[0];
        loc.reuse_possible(&r.upstreams[loc.upstream])
    }

    #[test]
    fn pinned_configs_mean_on_modern_nginx_what_they_mean_on_1_22() {
        let cases = [
            // (location directives, upstream keepalive) -> pinnable
            ("", "", true),
            ("", "keepalive 16;", true),
            ("proxy_http_version 1.1;", "keepalive 16;", true),
            ("proxy_http_version 1.1; proxy_set_header Connection \"\";", "keepalive 16;", true),
            ("proxy_http_version 1.0;", "", true),
            ("proxy_http_version 1.1; proxy_set_header Connection \"\";", "", false),
        ];
        let sorted = |h: &[(String, String)]| {
            let mut h = h.to_vec();
            h.sort();
            h
        };
        // nginx finds the upstream by name without regard to case.
        for (loc, keepalive, pinnable, pass) in cases.iter().map(|&(l, k, p)| (l, k, p, "http://u")).chain([("proxy_http_version 1.1; proxy_set_header Connection \"\";", "", false, "HTTP://U")]) {
            let src = format!("events {{}}\nhttp {{\n upstream u {{ server 127.0.0.1:1; {keepalive} }}\n server {{\n  listen 127.0.0.1:8080;\n  location / {{ proxy_pass {pass}; {loc} }}\n }}\n}}\n");
            let cfg = conf::parse(&src, "t.conf").unwrap();
            let mut pinned = cfg.clone();
            let res = pin_legacy_defaults(&mut pinned, Profile::Modern);
            assert_eq!(res.is_ok(), pinnable, "{loc} {keepalive}");
            if pinnable {
                assert_eq!(reuse(&pinned, Profile::Modern), reuse(&cfg, Profile::Legacy), "{loc} {keepalive}");
                let (a, b) = (resolve(&pinned, Profile::Modern).unwrap(), resolve(&cfg, Profile::Legacy).unwrap());
                let (la, lb) = (&a.servers[0].locations[0], &b.servers[0].locations[0]);
                // The same headers; a pinned `proxy_set_header` comes
                // before the defaults (ngx_http_proxy_init_headers), so
                // only the order may differ.
                assert_eq!((la.http11, sorted(&la.headers)), (lb.http11, sorted(&lb.headers)), "{loc} {keepalive}");
            }
            let mut same = cfg.clone();
            pin_legacy_defaults(&mut same, Profile::Legacy).unwrap();
            assert_eq!(same, cfg, "a legacy nginx gets the configuration as written");
            // The location as text rendered verbatim: the pins follow it,
            // and the file nginx reads means the same.
            if pinnable {
                let mut text = cfg.clone();
                text.servers[0].locations[0].verbatim = Some(loc.to_string());
                pin_legacy_defaults(&mut text, Profile::Modern).unwrap();
                let rendered = text.render();
                assert!(rendered.contains(loc), "{rendered}");
                let back = resolve(&conf::parse(&rendered, "r.conf").unwrap(), Profile::Modern).unwrap();
                let b = resolve(&cfg, Profile::Legacy).unwrap();
                let (la, lb) = (&back.servers[0].locations[0], &b.servers[0].locations[0]);
                assert_eq!((la.http11, sorted(&la.headers)), (lb.http11, sorted(&lb.headers)), "verbatim {loc} {keepalive}\n{rendered}");
            }
        }
    }
}
