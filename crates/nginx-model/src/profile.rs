//! nginx's version-dependent defaults, as pure functions: the resolved
//! configuration (`resolve`) asks these, for the proxy and the oracle alike.

/// Which nginx release's defaults to emulate: 1.29.7 changed the upstream
/// protocol defaults (`ngx_http_proxy_merge_loc_conf`) and gave every explicit
/// `upstream{}` block a keepalive cache of 32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// nginx ≤ 1.29.6 (Debian 12's 1.22.1): upstream HTTP/1.0 with
    /// `Connection: close`, no upstream keepalive unless configured.
    #[default]
    Legacy,
    /// nginx ≥ 1.29.7: HTTP/1.1, no Connection header, `keepalive 32` for
    /// every explicit upstream block.
    Modern,
}

/// `proxy_http_version` when not configured: 1.0 before 1.29.7, 1.1 after.
pub fn http11(profile: Profile, configured: Option<&str>) -> bool {
    match configured {
        Some(v) => v == "1.1",
        None => profile == Profile::Modern,
    }
}

/// The request headers nginx sets before `proxy_set_header` overrides:
/// `Host: $proxy_host`, and `Connection: close` before 1.29.7.
pub fn default_request_headers(profile: Profile) -> Vec<(String, String)> {
    let mut h = vec![("Host".to_string(), "$proxy_host".to_string())];
    if profile == Profile::Legacy {
        h.push(("Connection".into(), "close".into()));
    }
    h
}

/// The request headers after applying `proxy_set_header` lines (a line
/// replaces a default of the same name and comes before the defaults;
/// empty values are not sent).
pub fn request_headers(profile: Profile, set_header: &[(String, String)]) -> Vec<(String, String)> {
    // ngx_http_proxy_init_headers: the proxy_set_header lines in their
    // order (each one, repeats too), then the defaults none of them names.
    let mut headers = set_header.to_vec();
    for (k, v) in default_request_headers(profile) {
        if !set_header.iter().any(|(n, _)| n.eq_ignore_ascii_case(&k)) {
            headers.push((k, v));
        }
    }
    headers
}

/// The keepalive cache size of an upstream block: `keepalive N`, else 0
/// before 1.29.7 and 32 after (explicit `upstream{}` blocks only).
pub fn keepalive_capacity(profile: Profile, configured: Option<u32>, explicit_upstream: bool) -> usize {
    match (configured, profile) {
        (Some(n), _) => n as usize,
        (None, Profile::Modern) if explicit_upstream => 32,
        _ => 0,
    }
}

/// Whether the upstream request carries `Connection: close`.
pub fn sends_connection_close(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("connection") && v.to_ascii_lowercase().contains("close"))
}

/// Whether upstream connections can be reused at all: a cache, an
/// HTTP/1.1 request, and no `Connection: close` sent with it.
pub fn upstream_reuse_possible(capacity: usize, http11: bool, headers: &[(String, String)]) -> bool {
    capacity > 0 && http11 && !sends_connection_close(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_needs_three_settings_for_reuse() {
        let clear = [("Connection".to_string(), String::new())];
        let cases = [
            // (profile, keepalive, http_version, clear Connection) -> reuse
            (Profile::Legacy, None, None, false, false),
            (Profile::Legacy, Some(16), None, true, false),
            (Profile::Legacy, Some(16), Some("1.1"), false, false),
            (Profile::Legacy, Some(16), Some("1.1"), true, true),
            (Profile::Modern, None, None, false, true),
            (Profile::Modern, Some(0), None, false, false),
        ];
        for (p, k, v, c, want) in cases {
            let headers = request_headers(p, if c { &clear[..] } else { &[] });
            let got = upstream_reuse_possible(keepalive_capacity(p, k, true), http11(p, v), &headers);
            assert_eq!(got, want, "{p:?} keepalive={k:?} version={v:?} clear={c}");
        }
        assert_eq!(keepalive_capacity(Profile::Modern, None, false), 0, "implicit upstreams get no default cache");
    }
}
