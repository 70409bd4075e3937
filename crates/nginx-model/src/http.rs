//! The upstream request nginx's proxy module writes
//! (`ngx_http_proxy_create_request`), as pure functions. The response side
//! is [`crate::response`].

use crate::resolve::ResolvedLocation;

/// The values of the variables a `proxy_set_header` template may use.
#[derive(Debug, Clone, Default)]
pub struct RequestVars {
    /// The client's `Host` header (`$http_host`).
    pub http_host: String,
    /// `$remote_addr`.
    pub remote_addr: String,
}

/// Client request headers nginx never forwards: hop-by-hop and framing
/// headers, which it sets itself (`ngx_http_proxy_headers`).
pub const NOT_FORWARDED: [&str; 8] = ["host", "connection", "keep-alive", "content-length", "transfer-encoding", "te", "upgrade", "expect"];

fn substitute(template: &str, loc: &ResolvedLocation, vars: &RequestVars) -> String {
    let host = vars.http_host.split(':').next().unwrap_or("");
    template
        .replace("$proxy_host", &loc.proxy_host)
        .replace("$http_host", &vars.http_host)
        .replace("$host", host)
        .replace("$remote_addr", &vars.remote_addr)
}

/// The upstream request: the request line in the location's protocol, the
/// headers nginx sets (empty values are not sent), a `Content-Length` for a
/// body (always for POST, PUT and PATCH, even when empty), the client's
/// other headers, then the body (`proxy_request_buffering on`: all of it).
pub fn encode_request(loc: &ResolvedLocation, method: &str, uri: &str, client_headers: &[(String, String)], body: &[u8], vars: &RequestVars) -> Vec<u8> {
    let mut out = encode_request_head(loc, method, uri, client_headers, body.len() as u64, vars);
    out.extend_from_slice(body);
    out
}

/// The upstream request's head for a body of `body_len` bytes.
pub fn encode_request_head(loc: &ResolvedLocation, method: &str, uri: &str, client_headers: &[(String, String)], body_len: u64, vars: &RequestVars) -> Vec<u8> {
    let mut s = format!("{method} {uri} HTTP/1.{}\r\n", u8::from(loc.http11));
    for (k, v) in &loc.headers {
        let v = substitute(v, loc, vars);
        if !v.is_empty() {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if body_len > 0 || matches!(method, "POST" | "PUT" | "PATCH") {
        s.push_str(&format!("Content-Length: {body_len}\r\n"));
    }
    for (k, v) in client_headers {
        let lower = k.to_ascii_lowercase();
        if NOT_FORWARDED.contains(&lower.as_str()) || loc.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
            continue;
        }
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// nginx's reason phrase for the statuses it answers itself.
pub fn reason(status: u16) -> &'static str {
    crate::response::reason(status)
}

/// nginx 1.22.1's built-in error page for `status` (`server_tokens on`).
pub fn error_page(status: u16) -> String {
    crate::response::error_page(status, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conf;
    use crate::profile::Profile;
    use crate::resolve::resolve;

    fn location(profile: Profile, location_body: &str) -> ResolvedLocation {
        let src = format!("events {{}}\nhttp {{\n upstream u {{ server 127.0.0.1:1; }}\n server {{\n  listen 1;\n  location / {{ proxy_pass http://u; {location_body} }}\n }}\n}}\n");
        resolve(&conf::parse(&src, "t.conf").unwrap(), profile).unwrap().servers[0].locations[0].clone()
    }

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn requests_by_profile_and_directives() {
        let vars = RequestVars { http_host: "lab:8080".into(), remote_addr: "10.1.1.1".into() };
        let client = vec![("Host".to_string(), "lab:8080".to_string()), ("Connection".into(), "keep-alive".into()), ("X-Trace".into(), "1".into())];
        let table = [
            ("legacy default", Profile::Legacy, "", "GET", &b""[..], "GET /a HTTP/1.0\r\nHost: u\r\nConnection: close\r\nX-Trace: 1\r\n\r\n"),
            ("keepalive triple", Profile::Legacy, "proxy_http_version 1.1; proxy_set_header Connection \"\";", "GET", b"", "GET /a HTTP/1.1\r\nHost: u\r\nX-Trace: 1\r\n\r\n"),
            ("modern default", Profile::Modern, "", "GET", b"", "GET /a HTTP/1.1\r\nHost: u\r\nX-Trace: 1\r\n\r\n"),
            ("POST carries a length even when empty", Profile::Modern, "", "POST", b"", "POST /a HTTP/1.1\r\nHost: u\r\nContent-Length: 0\r\nX-Trace: 1\r\n\r\n"),
            ("variables", Profile::Modern, "proxy_set_header Host $host; proxy_set_header X-Real-IP $remote_addr;", "PUT", b"hi", "PUT /a HTTP/1.1\r\nHost: lab\r\nX-Real-IP: 10.1.1.1\r\nContent-Length: 2\r\nX-Trace: 1\r\n\r\nhi"),
        ];
        for (name, profile, directives, method, body, want) in table {
            assert_eq!(text(encode_request(&location(profile, directives), method, "/a", &client, body, &vars)), want, "{name}");
        }
    }

}
