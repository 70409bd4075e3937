//! `auth_request` (ngx_http_auth_request_module): what the subrequest's
//! status means for the main request. Pure; the proxy runs the subrequest
//! through its usual upstream path and asks [`verdict`] what to do.
//!
//! The subrequest itself (`ngx_http_auth_request_handler` →
//! `ngx_http_subrequest`) is a GET to the location the URI names, run in the
//! access phase, before the main request's body is read; it has an empty
//! request body (`sr->request_body` zeroed, "true body discarding is not yet
//! implemented") and is `header_only`. It shares the main request's
//! `headers_in`, so `ngx_http_proxy_create_request` sends the main request's
//! Content-Length with no body behind it, whatever `proxy_pass_request_body`
//! says (observed on nginx 1.22.1), unless the auth location clears it with
//! `proxy_set_header Content-Length "";`.

/// What the main request does after the auth subrequest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A 2xx: the request goes on to its content handler (`NGX_OK`).
    Allow,
    /// 401 or 403: that status goes to the client; for 401 the
    /// subrequest's `WWW-Authenticate` headers are copied to the response.
    Deny { status: u16, www_authenticate: bool },
    /// Anything else: an [error] line with `text` and a 500.
    Error { text: String },
}

/// `ngx_http_auth_request_handler` once the subrequest is done
/// (`ctx->status` is the subrequest's `headers_out.status`, set by
/// `ngx_http_auth_request_done`: the upstream's status, or nginx's own
/// error status, e.g. 504 after `proxy_read_timeout`).
pub fn verdict(status: u16) -> Verdict {
    match status {
        403 => Verdict::Deny { status, www_authenticate: false },
        401 => Verdict::Deny { status, www_authenticate: true },
        // NGX_HTTP_OK <= status < NGX_HTTP_SPECIAL_RESPONSE (300).
        200..=299 => Verdict::Allow,
        _ => Verdict::Error { text: unexpected_status_text(status) },
    }
}

/// The [error] text of an unexpected status, as `ngx_log_error` writes it
/// ("auth request unexpected status: %ui"); nginx appends the main
/// request's action, " while sending to client" once the subrequest ended.
pub fn unexpected_status_text(status: u16) -> String {
    format!("{UNEXPECTED_STATUS}{status} while sending to client")
}

/// The start of [`unexpected_status_text`], for reading logs back.
pub const UNEXPECTED_STATUS: &str = "auth request unexpected status: ";

/// The status an [`unexpected_status_text`] names, from an error.log text.
pub fn unexpected_status(text: &str) -> Option<u16> {
    let rest = text.strip_prefix(UNEXPECTED_STATUS)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_subrequest_status_means() {
        let error = |s: u16| Verdict::Error { text: format!("auth request unexpected status: {s} while sending to client") };
        for (status, want) in [
            (200, Verdict::Allow),
            (204, Verdict::Allow),
            (206, Verdict::Allow),
            (299, Verdict::Allow),
            (401, Verdict::Deny { status: 401, www_authenticate: true }),
            (403, Verdict::Deny { status: 403, www_authenticate: false }),
            // Redirects are not "allowed": NGX_HTTP_SPECIAL_RESPONSE is 300.
            (300, error(300)),
            (302, error(302)),
            (404, error(404)),
            (500, error(500)),
            (502, error(502)),
            // proxy_read_timeout on the subrequest (observed on nginx 1.22.1).
            (504, error(504)),
            (100, error(100)),
        ] {
            assert_eq!(verdict(status), want, "{status}");
        }
    }

    #[test]
    fn a_denial_is_nginx_s_own_page() {
        // Observed on nginx 1.22.1 for an auth subrequest answered 401.
        let page = crate::response::error_page(401, true);
        assert!(page.contains("<title>401 Authorization Required</title>"), "{page}");
        assert_eq!(page.len(), 179);
        assert_eq!(crate::response::error_page(403, true).len(), 153);
    }

    #[test]
    fn the_error_text_reads_back() {
        let line = r#"2026/11/24 02:05:24 [error] 20240#20240: *4 auth request unexpected status: 504 while sending to client, client: 127.0.0.1, server: , request: "POST /up11 HTTP/1.1", host: "127.0.0.1:38181""#;
        assert_eq!(crate::failure::class_of_log_line(line), Some(crate::failure::Class::AuthStatus));
        let sub = r#"2026/11/24 02:05:24 [error] 20240#20240: *4 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 127.0.0.1, server: , request: "POST /up11 HTTP/1.1", subrequest: "/auth11", upstream: "http://127.0.0.1:38182/ok", host: "127.0.0.1:38181""#;
        let l = crate::logparse::parse_error_line(sub).unwrap();
        assert_eq!((l.subrequest, l.upstream), (Some("/auth11"), Some("http://127.0.0.1:38182/ok")));
        assert_eq!(crate::failure::class_of_log_line(sub), Some(crate::failure::Class::ReadTimeout));
        assert_eq!(unexpected_status("auth request unexpected status: 504 while sending to client"), Some(504));
        assert_eq!(unexpected_status(&unexpected_status_text(502)), Some(502));
        assert_eq!(unexpected_status("upstream timed out (110: Connection timed out)"), None);
        assert_eq!(unexpected_status("auth request unexpected status: "), None);
    }

    #[test]
    fn the_directive_is_inherited_and_turned_off() {
        use crate::{conf, resolve, Profile};
        let src = "events {}\nhttp {\n upstream u { server 127.0.0.1:1; }\n server {\n  listen 1;\n  auth_request /auth;\n  location / { proxy_pass http://u; }\n  location /open { proxy_pass http://u; auth_request off; }\n  location = /auth { proxy_pass http://u/ok; }\n }\n}\n";
        let r = resolve::resolve(&conf::parse(src, "t.conf").unwrap(), Profile::Legacy).unwrap();
        let at = |p: &str| r.servers[0].location_for(p).and_then(|l| l.auth_request.clone());
        assert_eq!(at("/x"), Some("/auth".to_string()));
        assert_eq!(at("/open/x"), None);
        // Rendered for real nginx and read back, `off` included.
        let again = resolve::resolve(&conf::parse(&conf::parse(src, "t.conf").unwrap().render(), "t.conf").unwrap(), Profile::Legacy).unwrap();
        assert_eq!(again.servers[0].location_for("/open/x").map(|l| l.auth_request.clone()), Some(None));
        assert_eq!(again.servers[0].location_for("/x").and_then(|l| l.auth_request.clone()), Some("/auth".to_string()));
        let dup = "events {}\nhttp {\n server {\n  listen 1;\n  location / { auth_request /a; auth_request /b; }\n }\n}\n";
        assert_eq!(conf::parse(dup, "t.conf").unwrap_err().to_string(), "\"auth_request\" directive is duplicate in t.conf:5");
    }
}
