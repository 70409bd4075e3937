//! The upstream request nginx's proxy module writes
//! (`ngx_http_proxy_create_request`), as pure functions. The response side
//! is [`crate::response`].

use crate::resolve::ResolvedLocation;

/// The request's variables, for every script the emulation expands
/// (`proxy_set_header`, `return`, `add_header`; `log_format` has the
/// access entry's own, [`crate::logs::AccessEntry::variable`]). One reading
/// of `$name` and `${name}` ([`crate::logs::pieces`], as
/// `ngx_http_script_compile`), one table of values ([`RequestVars::value`]).
#[derive(Debug, Clone, Default)]
pub struct RequestVars {
    /// The client's `Host` header (`$http_host`).
    pub http_host: String,
    /// `$remote_addr`.
    pub remote_addr: String,
    /// `$uri`: the normalised path (after an internal redirect, the new one).
    pub uri: String,
    /// `$request_uri`: the target as the client sent it.
    pub request_uri: String,
    /// `$args`.
    pub args: String,
    /// `$request_method`.
    pub method: String,
    /// `$server_name`: the server's first name (`$host` without a Host header).
    pub server_name: String,
    /// `$status`: the response's, once nginx has one (`return`, a header filter).
    pub status: Option<u16>,
    /// `$upstream_status` as the log lists it; `None`: no upstream (the
    /// variable is not found and expands to nothing).
    pub upstream_status: Option<String>,
    /// The client's headers (`$http_NAME`).
    pub headers: Vec<(String, String)>,
}

impl RequestVars {
    /// The value of `$name`; `None` for a variable the emulation does not
    /// know (the script keeps it as written). A known variable with no
    /// value is empty, as nginx's `not_found` is in a script.
    pub fn value(&self, name: &str, proxy_host: &str) -> Option<String> {
        let mut v = String::new();
        self.push_value(name, proxy_host, &self.headers, &mut v).then_some(v)
    }

    /// [`RequestVars::value`] appended to `out`, `$http_NAME` read from
    /// `headers`; false (nothing appended) for a variable not known.
    fn push_value(&self, name: &str, proxy_host: &str, headers: &[(String, String)], out: &mut String) -> bool {
        // Names are nearly always written in lowercase: no copy then.
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        let v = match name {
            "proxy_host" => proxy_host,
            "http_host" => &self.http_host,
            // ngx_http_variable_host: the Host header's name, lowercased,
            // without its port; else the server's name.
            "host" => {
                let h = host_name(&self.http_host);
                if h.is_empty() {
                    out.push_str(&self.server_name);
                } else {
                    let at = out.len();
                    out.push_str(h);
                    out[at..].make_ascii_lowercase();
                }
                return true;
            }
            "remote_addr" => &self.remote_addr,
            "uri" | "document_uri" => &self.uri,
            "request_uri" => &self.request_uri,
            "args" | "query_string" => &self.args,
            "is_args" => if self.args.is_empty() { "" } else { "?" },
            "request_method" => &self.method,
            "scheme" => "http",
            "nginx_version" => crate::response::NGINX_VERSION.trim_start_matches("nginx/"),
            "server_name" => &self.server_name,
            "status" => {
                if let Some(s) = self.status {
                    crate::num::push_decimal_str(out, u64::from(s), 3);
                }
                return true;
            }
            "upstream_status" => self.upstream_status.as_deref().unwrap_or_default(),
            n => match n.strip_prefix("http_") {
                // ngx_http_variable_unknown_header: the client's header whose
                // name, lowercased with `-` as `_`, is NAME; empty when absent.
                Some(h) => header_variable(headers, h).unwrap_or_default(),
                None => return false,
            },
        };
        out.push_str(v);
        true
    }

    /// A script's text with its variables' values (`ngx_http_script_run`).
    pub fn expand(&self, template: &str, proxy_host: &str) -> String {
        let mut out = String::with_capacity(template.len());
        self.expand_into(&mut out, template, proxy_host, &self.headers);
        out
    }

    /// [`RequestVars::expand`] appended to `out`, `$http_NAME` read from `headers`.
    fn expand_into(&self, out: &mut String, template: &str, proxy_host: &str, headers: &[(String, String)]) {
        crate::logs::expand_into(out, template, |name, out| self.push_value(name, proxy_host, headers, out));
    }
}

/// `$http_NAME` (`ngx_http_variable_unknown_header`): the client's first
/// header whose name, lowercased with `-` as `_`, is NAME.
pub fn header_variable<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.len() == name.len() && k.bytes().zip(name.bytes()).all(|(a, b)| (if a == b'-' { b'_' } else { a.to_ascii_lowercase() }) == b))
        .map(|(_, v)| v.as_str())
}

/// A Host header's name without its port (`[v6]:port` keeps the brackets).
fn host_name(h: &str) -> &str {
    if h.starts_with('[') {
        return h.find(']').map_or(h, |e| &h[..=e]);
    }
    h.split(':').next().unwrap_or("")
}

/// Client request headers nginx never forwards: hop-by-hop and framing
/// headers, which it sets itself (`ngx_http_proxy_headers`).
pub const NOT_FORWARDED: [&str; 8] = ["host", "connection", "keep-alive", "content-length", "transfer-encoding", "te", "upgrade", "expect"];

/// Whether a client header is one of [`NOT_FORWARDED`].
fn not_forwarded(name: &str) -> bool {
    NOT_FORWARDED.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// `ngx_http_client_errors[]`: the [info] texts for a request line nginx
/// cannot parse.
pub const INVALID_METHOD: &str = "client sent invalid method";
pub const INVALID_REQUEST: &str = "client sent invalid request";

/// `ngx_http_parse_request_line`'s first states: CR and LF before the line
/// are skipped, then every byte of the method up to the first space must be
/// `A`-`Z`, `_` or `-`, else "invalid method" at once (lowercase methods
/// too). `None`: nothing wrong with the method so far.
pub fn invalid_method(buf: &[u8]) -> Option<&'static str> {
    let start = buf.iter().position(|&b| b != b'\r' && b != b'\n')?;
    for &b in &buf[start..] {
        if b == b' ' {
            return None;
        }
        if !(b.is_ascii_uppercase() || b == b'_' || b == b'-') {
            return Some(INVALID_METHOD);
        }
    }
    None
}

/// `ngx_http_proxy_process_header`: a 101 from the upstream becomes a
/// tunnel (`u->upgrade`, `ngx_http_upstream_upgrade`) only when the client
/// asked for an upgrade (`r->headers_in.upgrade`); otherwise it is passed
/// as a response without a body and the connection closes.
pub fn upgrades(status: u16, client_headers: &[(String, String)]) -> bool {
    status == 101 && client_headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("upgrade"))
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
    // Built with pushes, not format!: this runs for every proxied request.
    let mut s = String::with_capacity(256);
    for part in [method, " ", uri, if loc.http11 { " HTTP/1.1\r\n" } else { " HTTP/1.0\r\n" }] {
        s.push_str(part);
    }
    let line = |s: &mut String, k: &str, v: &str| {
        for part in [k, ": ", v, "\r\n"] {
            s.push_str(part);
        }
    };
    // `$http_NAME` reads the client's headers when the variables carry none.
    let headers = if vars.headers.is_empty() { client_headers } else { &vars.headers[..] };
    let mut overridden = false;
    for (k, v) in &loc.headers {
        overridden |= k.eq_ignore_ascii_case("content-length");
        // The value is written in place; an empty one takes its line back.
        let start = s.len();
        s.push_str(k);
        s.push_str(": ");
        let at = s.len();
        if v == "$proxy_host" {
            // nginx's default `Host` (profile::default_headers), the one
            // script nearly every request runs.
            s.push_str(&loc.proxy_host);
        } else if v.contains('$') {
            vars.expand_into(&mut s, v, &loc.proxy_host, headers);
        } else {
            // A value without `$` is itself: no script to run.
            s.push_str(v);
        }
        if s.len() == at {
            s.truncate(start);
        } else {
            s.push_str("\r\n");
        }
    }
    // $proxy_internal_body_length: the body's length whenever the client
    // declared one (`r->headers_in.content_length_n >= 0`, a HEAD or GET
    // with `Content-Length: 0` too; observed on nginx 1.22.1).
    // `proxy_set_header Content-Length ...` replaces that default entry
    // (`ngx_http_proxy_init_headers`): its value was written above, and
    // `""` sends none (the `auth_request` remedy).
    if !overridden && (body_len > 0 || matches!(method, "POST" | "PUT" | "PATCH") || client_headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-length"))) {
        s.push_str("Content-Length: ");
        crate::num::push_decimal_str(&mut s, body_len, 0);
        s.push_str("\r\n");
    }
    for (k, v) in client_headers {
        if not_forwarded(k) || loc.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(k)) {
            continue;
        }
        line(&mut s, k, v);
    }
    s.push_str("\r\n");
    s.into_bytes()
}

/// `ngx_http_parse_complex_uri` for a request path (before `?`): `%XX`
/// decoded, `//` merged (`merge_slashes on`), `.` and `..` segments
/// resolved. `None` where nginx answers 400 (a bad `%` escape, a decoded
/// NUL, `..` above the root). A path with none of `%`, `//`, `/.` is
/// returned as it is (nginx does not run the complex parser for it).
pub fn normalize_uri(raw: &[u8]) -> Option<Vec<u8>> {
    // Only an origin-form path (absolute-form and `*` are not emulated).
    if raw.first() != Some(&b'/') {
        return Some(raw.to_vec());
    }
    let complex = raw.contains(&b'%') || raw.windows(2).any(|w| w == b"//" || w == b"/.");
    if !complex {
        return Some(raw.to_vec());
    }
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut decoded = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex)?;
            let lo = raw.get(i + 2).copied().and_then(hex)?;
            let c = (hi << 4) | lo;
            if c == 0 {
                return None;
            }
            decoded.push(c);
            i += 3;
        } else {
            decoded.push(raw[i]);
            i += 1;
        }
    }
    // Segments: merged slashes, `.` dropped, `..` pops (400 above the root).
    let trailing = decoded.ends_with(b"/") || decoded.ends_with(b"/.") || decoded.ends_with(b"/..") || decoded == b"." || decoded == b"..";
    let mut out: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            s => out.push(s),
        }
    }
    let mut uri = Vec::with_capacity(decoded.len());
    for seg in &out {
        uri.push(b'/');
        uri.extend_from_slice(seg);
    }
    if uri.is_empty() || trailing {
        uri.push(b'/');
    }
    Some(uri)
}

/// `ngx_escape_uri(.., NGX_ESCAPE_URI)`: controls, space, `#`, `%`, `?`,
/// DEL and bytes past ASCII as `%XX` (upper-case hex).
pub fn escape_uri(uri: &[u8]) -> String {
    let mut out = String::with_capacity(uri.len());
    for &c in uri {
        if c <= 0x20 || matches!(c, b'#' | b'%' | b'?') || c >= 0x7f {
            out.push_str(&format!("%{c:02X}"));
        } else {
            out.push(char::from(c));
        }
    }
    out
}

/// The URI of the upstream request line (`ngx_http_proxy_create_request`):
/// without a URI part in `proxy_pass`, the client's as it sent it
/// (`unparsed`, arguments included); with one, that part in place of the
/// location's prefix of the normalised `uri` (re-escaped if the client's
/// had a `%`: `r->quoted_uri`), then `?` and the arguments.
pub fn upstream_uri(loc: &ResolvedLocation, unparsed: &str, uri: &[u8], args: &str, quoted: bool) -> String {
    let Some(part) = &loc.pass_uri else { return unparsed.to_string() };
    let rest = uri.get(loc.path.len().min(uri.len())..).unwrap_or_default();
    let mut out = part.clone();
    if quoted {
        out.push_str(&escape_uri(rest));
    } else {
        out.push_str(&String::from_utf8_lossy(rest));
    }
    if !args.is_empty() {
        out.push('?');
        out.push_str(args);
    }
    out
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

    #[test]
    fn complex_uris_as_nginx_normalises_them() {
        for (raw, want) in [
            ("/a/b", Some("/a/b")),
            ("/a//b", Some("/a/b")),
            ("//a", Some("/a")),
            ("/a/./b", Some("/a/b")),
            ("/a/../b", Some("/b")),
            ("/a/b/..", Some("/a/")),
            ("/a/.", Some("/a/")),
            ("/a/", Some("/a/")),
            ("/.well-known/x", Some("/.well-known/x")),
            ("/a%20b", Some("/a b")),
            ("/a%2Fb", Some("/a/b")),
            ("/a%2f..%2fb", Some("/b")),
            ("/%7Euser", Some("/~user")),
            ("/a%2", None),
            ("/a%zz", None),
            ("/a%00", None),
            ("/..", None),
            ("/a/../..", None),
            ("*", Some("*")),
        ] {
            assert_eq!(normalize_uri(raw.as_bytes()).map(|u| String::from_utf8(u).unwrap()), want.map(String::from), "{raw}");
        }
        assert_eq!(escape_uri(b"/a b#c%d?e~f\x7f\xc3\xa9"), "/a%20b%23c%25d%3Fe~f%7F%C3%A9");
    }

    #[test]
    fn proxy_pass_uri_part_replaces_the_location_prefix() {
        let at = |path: &str, pass: &str, target: &str| {
            let src = format!("events {{}}\nhttp {{\n server {{\n  listen 1;\n  location {path} {{ proxy_pass {pass}; }}\n }}\n}}\n");
            let r = resolve(&conf::parse(&src, "t.conf").unwrap(), Profile::Legacy).unwrap();
            let loc = &r.servers[0].locations[0];
            let (p, args) = target.split_once('?').unwrap_or((target, ""));
            let uri = normalize_uri(p.as_bytes()).unwrap();
            upstream_uri(loc, target, &uri, args, p.contains('%'))
        };
        for (path, pass, target, want) in [
            ("/", "http://127.0.0.1:9", "/a//b?x=1", "/a//b?x=1"),
            ("/", "http://127.0.0.1:9/", "/a//b?x=1", "/a/b?x=1"),
            ("/api/", "http://127.0.0.1:9/", "/api/users", "/users"),
            ("/api/", "http://127.0.0.1:9/v1/", "/api/users?id=2", "/v1/users?id=2"),
            ("/api", "http://127.0.0.1:9/v1", "/apix", "/v1x"),
            ("= /x", "http://127.0.0.1:9/y", "/x", "/y"),
            ("/api/", "http://127.0.0.1:9/", "/api/a%20b", "/a%20b"),
            ("/api/", "http://127.0.0.1:9/", "/api/%7Eu", "/~u"),
            ("/api/", "http://127.0.0.1:9/q?k=v", "/api/z?a=b", "/q?k=vz?a=b"),
            ("/", "http://[::1]:9/p/", "/x", "/p/x"),
        ] {
            assert_eq!(at(path, pass, target), want, "location {path} proxy_pass {pass} {target}");
        }
    }

    fn location(profile: Profile, location_body: &str) -> ResolvedLocation {
        let src = format!("events {{}}\nhttp {{\n upstream u {{ server 127.0.0.1:1; }}\n server {{\n  listen 1;\n  location / {{ proxy_pass http://u; {location_body} }}\n }}\n}}\n");
        resolve(&conf::parse(&src, "t.conf").unwrap(), profile).unwrap().servers[0].locations[0].clone()
    }

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn requests_by_profile_and_directives() {
        let vars = RequestVars { http_host: "lab:8080".into(), remote_addr: "10.1.1.1".into(), ..Default::default() };
        let client = vec![("Host".to_string(), "lab:8080".to_string()), ("Connection".into(), "keep-alive".into()), ("X-Trace".into(), "1".into())];
        let table = [
            ("legacy default", Profile::Legacy, "", "GET", &b""[..], "GET /a HTTP/1.0\r\nHost: u\r\nConnection: close\r\nX-Trace: 1\r\n\r\n"),
            ("keepalive triple", Profile::Legacy, "proxy_http_version 1.1; proxy_set_header Connection \"\";", "GET", b"", "GET /a HTTP/1.1\r\nHost: u\r\nX-Trace: 1\r\n\r\n"),
            ("modern default", Profile::Modern, "", "GET", b"", "GET /a HTTP/1.1\r\nHost: u\r\nX-Trace: 1\r\n\r\n"),
            ("POST carries a length even when empty", Profile::Modern, "", "POST", b"", "POST /a HTTP/1.1\r\nHost: u\r\nContent-Length: 0\r\nX-Trace: 1\r\n\r\n"),
            ("variables", Profile::Modern, "proxy_set_header Host $host; proxy_set_header X-Real-IP $remote_addr;", "PUT", b"hi", "PUT /a HTTP/1.1\r\nHost: lab\r\nX-Real-IP: 10.1.1.1\r\nContent-Length: 2\r\nX-Trace: 1\r\n\r\nhi"),
            ("$http_NAME: a header the client sent", Profile::Modern, "proxy_set_header X-T $http_x_trace;", "GET", b"", "GET /a HTTP/1.1\r\nX-T: 1\r\nHost: u\r\nX-Trace: 1\r\n\r\n"),
            ("$http_NAME: absent, so not sent", Profile::Modern, "proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";", "GET", b"", "GET /a HTTP/1.1\r\nConnection: upgrade\r\nHost: u\r\nX-Trace: 1\r\n\r\n"),
        ];
        for (name, profile, directives, method, body, want) in table {
            assert_eq!(text(encode_request(&location(profile, directives), method, "/a", &client, body, &vars)), want, "{name}");
        }
        // A declared length is forwarded for any method, 0 too.
        let declared = vec![("Content-Length".to_string(), "0".to_string())];
        assert_eq!(text(encode_request(&location(Profile::Modern, ""), "HEAD", "/a", &declared, b"", &vars)), "HEAD /a HTTP/1.1\r\nHost: u\r\nContent-Length: 0\r\n\r\n");
        // An auth_request subrequest (GET, no body) carries the main
        // request's Content-Length (ngx_http_proxy_create_request:
        // `internal_body_length = r->headers_in.content_length_n`; observed
        // on nginx 1.22.1: "GET /ok HTTP/1.1 ... Content-Length: 11", no
        // body); `proxy_set_header Content-Length ""` replaces it with none.
        let posted = vec![("Host".to_string(), "lab".to_string()), ("Content-Length".into(), "11".into())];
        let auth = location(Profile::Legacy, "proxy_http_version 1.1; proxy_set_header Connection \"\";");
        assert_eq!(text(encode_request_head(&auth, "GET", "/ok", &posted, 11, &vars)), "GET /ok HTTP/1.1\r\nHost: u\r\nContent-Length: 11\r\n\r\n");
        let cleared = location(Profile::Legacy, "proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Content-Length \"\";");
        assert_eq!(text(encode_request_head(&cleared, "GET", "/ok", &posted, 11, &vars)), "GET /ok HTTP/1.1\r\nHost: u\r\n\r\n");
        // ${name} and names that only start like a known one.
        let l = location(Profile::Modern, "proxy_set_header X-H \"${host}x $hostname\";");
        assert_eq!(text(encode_request(&l, "GET", "/a", &[], b"", &vars)), "GET /a HTTP/1.1\r\nX-H: labx $hostname\r\nHost: u\r\n\r\n");
    }

    #[test]
    fn invalid_methods() {
        for (buf, want) in [
            (&b"GET / HTTP/1.1\r\n"[..], None),
            (b"\r\nGET / HTTP/1.1\r\n", None),
            (b"M-SEARCH * HTTP/1.1\r\n", None),
            (b"GE", None),
            (b"", None),
            (b"get / HTTP/1.1\r\n", Some(INVALID_METHOD)),
            (b"GARBAGE\r\n", Some(INVALID_METHOD)),
            (b"G3T / HTTP/1.1\r\n", Some(INVALID_METHOD)),
            (b"\x16\x03\x01", Some(INVALID_METHOD)),
            (b" GET /", None),
        ] {
            assert_eq!(invalid_method(buf), want, "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn websocket_headers_and_the_upgrade_decision() {
        let vars = RequestVars { http_host: "lab".into(), remote_addr: "10.1.1.1".into(), ..Default::default() };
        let client = vec![("Host".to_string(), "lab".to_string()), ("Connection".into(), "Upgrade".into()), ("Upgrade".into(), "websocket".into())];
        let ws = "proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\";";
        assert_eq!(text(encode_request(&location(Profile::Legacy, ws), "GET", "/a", &client, b"", &vars)), "GET /a HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\nHost: u\r\n\r\n");
        // Without the directives Upgrade is hop-by-hop: not forwarded.
        assert_eq!(text(encode_request(&location(Profile::Legacy, ""), "GET", "/a", &client, b"", &vars)), "GET /a HTTP/1.0\r\nHost: u\r\nConnection: close\r\n\r\n");
        for (status, headers, want) in [(101, &client[..], true), (101, &client[..2], false), (200, &client[..], false), (100, &client[..], false)] {
            assert_eq!(upgrades(status, headers), want, "{status} {headers:?}");
        }
    }

}
