//! What the proxy module puts on the wire, as pure functions: the upstream
//! request (`ngx_http_proxy_create_request`), the response headers passed
//! to the client (`ngx_http_proxy_hide_headers` and the upstream module's
//! hop-by-hop filter), and nginx's own error pages
//! (`ngx_http_special_response_handler`).

use crate::resolve::ResolvedLocation;
use labkit::wire::ResponseHead;

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

/// Response headers the upstream module does not pass on (it writes its own
/// `Server`, `Date`, framing and `Connection`).
pub const NOT_PASSED: [&str; 6] = ["connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"];

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
    let mut s = format!("{method} {uri} HTTP/1.{}\r\n", u8::from(loc.http11));
    for (k, v) in &loc.headers {
        let v = substitute(v, loc, vars);
        if !v.is_empty() {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH") {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in client_headers {
        let lower = k.to_ascii_lowercase();
        if NOT_FORWARDED.contains(&lower.as_str()) || loc.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
            continue;
        }
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// The upstream's response headers as they go to the client, names as the
/// upstream wrote them, plus its `Content-Length` when it had one.
pub fn response_headers(head: &ResponseHead) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        head.headers.iter().filter(|(k, _)| !NOT_PASSED.contains(&k.to_ascii_lowercase().as_str())).cloned().collect();
    if let Some(n) = head.content_length {
        out.push(("Content-Length".into(), n.to_string()));
    }
    out
}

/// nginx's reason phrase for the statuses it answers itself.
pub fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        _ => "",
    }
}

/// nginx's built-in error page for `status`.
pub fn error_page(status: u16) -> String {
    let t = format!("{status} {}", reason(status));
    format!("<html>\r\n<head><title>{t}</title></head>\r\n<body>\r\n<center><h1>{t}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
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

    #[test]
    fn response_headers_keep_names_and_drop_hop_by_hop() {
        let (head, _) = ResponseHead::parse(b"HTTP/1.1 200 OK\r\nX-Connection: a\r\nConnection: close\r\nDate: x\r\nContent-Length: 3\r\n\r\n").unwrap().unwrap();
        assert_eq!(response_headers(&head), vec![("X-Connection".to_string(), "a".to_string()), ("Content-Length".into(), "3".into())]);
        assert!(error_page(502).contains("<title>502 Bad Gateway</title>"));
    }
}
