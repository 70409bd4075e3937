//! Reading a request head the way Go 1.19 does, without I/O: the request
//! line (`http.readRequest`, `parseRequestLine`, `ParseHTTPVersion`,
//! `url.ParseRequestURI`), the header lines
//! (`textproto.Reader.ReadMIMEHeader`, over `bufio.Reader.ReadLine`), the
//! body's framing (`http.readTransfer`: `parseTransferEncoding`,
//! `fixLength`), then the checks of `(*conn).readRequest` (the read limit,
//! `http1ServerSupportsRequest`, Host, header names and values), and what
//! `(*conn).serve` writes for each failure.
//!
//! [`read_request`] is given every byte buffered so far and whether the
//! reading has ended (EOF, a deadline, an error); it answers "need more",
//! a request and how many bytes its head took, or a failure. Go decides at
//! line ends, so calling it again with more bytes is always safe.

use crate::handlers::percent_decode;

/// Why the socket gave no more bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// `read(2)` returned 0 (`io.EOF`).
    Eof,
    /// The read deadline passed (a `net.Error` with `Timeout()`).
    Timeout,
    /// Any other read error (`*net.OpError` with Op "read", e.g. a reset).
    Error,
}

/// How a request's body is framed (`readTransfer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// No body (`NoBody`): no Content-Length, or 0; a request never reads to EOF.
    None,
    Length(u64),
    Chunked,
}

/// A request as Go's handler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// `RequestURI`: the target as sent.
    pub request_uri: String,
    /// `URL.Path`, decoded (invalid UTF-8 replaced).
    pub path: String,
    pub raw_query: String,
    pub proto_major: u8,
    pub proto_minor: u8,
    /// Canonical names, in arrival order, repeated names kept.
    pub header: Vec<(String, String)>,
    pub body: RequestBody,
    /// `req.Close` (`shouldClose`, and true for an h2 upgrade).
    pub close: bool,
    /// `PRI * HTTP/2.0` with no header (`isH2Upgrade`).
    pub h2_upgrade: bool,
}

impl Request {
    /// `req.ProtoAtLeast(1, 1)`.
    pub fn at_least_11(&self) -> bool {
        (self.proto_major, self.proto_minor) >= (1, 1)
    }

    /// `Header.Get(name)`: the first value.
    pub fn header_get(&self, name: &str) -> Option<&str> {
        self.header.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `Header.Values(name)`.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.header.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `req.wantsHttp10KeepAlive()`.
    pub fn wants_10_keep_alive(&self) -> bool {
        (self.proto_major, self.proto_minor) == (1, 0) && has_token(self.header_get("Connection").unwrap_or(""), "keep-alive")
    }

    /// `req.wantsClose()`.
    pub fn wants_close(&self) -> bool {
        self.close || has_token(self.header_get("Connection").unwrap_or(""), "close")
    }

    /// `req.expectsContinue()`.
    pub fn expects_continue(&self) -> bool {
        has_token(self.header_get("Expect").unwrap_or(""), "100-continue")
    }

    /// What `(*conn).serve` does before calling the handler.
    pub fn expectation(&self) -> Expectation {
        if self.expects_continue() {
            if self.at_least_11() && self.body != RequestBody::None {
                Expectation::Continue
            } else {
                Expectation::None
            }
        } else if self.header_get("Expect").is_some_and(|v| !v.is_empty()) {
            Expectation::Failed
        } else {
            Expectation::None
        }
    }
}

/// The request's `Expect`, as `(*conn).serve` treats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    None,
    /// `100-continue` on HTTP/1.1 with a body: the body is wrapped in an
    /// `expectContinueReader`; a handler that never reads it leaves the
    /// connection closing after the reply.
    Continue,
    /// Anything else: `sendExpectationFailed` (417, `Connection: close`),
    /// the handler does not run.
    Failed,
}

/// Why reading a request failed, and what `(*conn).serve` does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadFailure {
    /// `isCommonNetReadError`: close without a reply.
    Quiet,
    /// `errTooLarge` (the read limit was hit): 431, then `closeWriteAndWait`.
    TooLarge,
    /// `unsupportedTEError`: 501 "Unsupported transfer encoding", then close.
    UnsupportedTransferEncoding,
    /// A `statusError` (`badRequestError` and the 505): its text is shown.
    Status(u16, &'static str),
    /// Any other error: a plain 400.
    BadRequest,
}

impl ReadFailure {
    /// The reply `(*conn).serve` writes straight to the socket, if any.
    pub fn reply(&self) -> Option<Vec<u8>> {
        use crate::response::{conn_error_response, status_error_response};
        match self {
            ReadFailure::Quiet => None,
            ReadFailure::TooLarge => Some(conn_error_response(431)),
            ReadFailure::UnsupportedTransferEncoding => Some(conn_error_response(501)),
            ReadFailure::Status(code, text) => Some(status_error_response(*code, text)),
            ReadFailure::BadRequest => Some(conn_error_response(400)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRequest {
    /// Go would still be reading.
    NeedMore,
    /// The request, and the bytes its head took (leading CR/LF included).
    Request(Request, usize),
    Failed(ReadFailure),
}

/// What else [`read_request`] needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadInput {
    /// Why no more bytes will come, if so.
    pub ended: Option<ReadEnd>,
    /// `initialReadLimitSize`: MaxHeaderBytes + 4096 ([`crate::rules::header_limit`]).
    pub limit: usize,
    /// The previous request on the connection was a POST: up to 4 leading
    /// CR/LF bytes are skipped (`c.lastMethod == "POST"`).
    pub after_post: bool,
}

/// Where a line read stopped.
enum Line<'a> {
    Full(&'a [u8]),
    NeedMore,
    /// No bytes at all, and the read ended.
    End(ReadEnd),
}

/// `bufio.Reader` over the bytes seen, as `textproto.Reader` uses it.
struct Lines<'a> {
    buf: &'a [u8],
    pos: usize,
    ended: Option<ReadEnd>,
}

impl<'a> Lines<'a> {
    /// `ReadLine` (through `readLineSlice`): up to `\n`, without `\r\n` or
    /// `\n`. When the read ends mid-line, that part is returned as a line
    /// and the error comes with the next read (`bufio.Reader.ReadLine`
    /// returns the data and drops the error).
    fn line(&mut self) -> Line<'a> {
        let rest = &self.buf[self.pos..];
        if let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.pos += i + 1;
            let l = &rest[..i];
            return Line::Full(l.strip_suffix(b"\r").unwrap_or(l));
        }
        match self.ended {
            None => Line::NeedMore,
            Some(end) if rest.is_empty() => Line::End(end),
            Some(_) => {
                self.pos = self.buf.len();
                Line::Full(rest)
            }
        }
    }

    /// The next byte, if it has arrived; `Err(())` when Go would block.
    fn peek(&self) -> Result<Option<u8>, ()> {
        match self.buf.get(self.pos) {
            Some(&b) => Ok(Some(b)),
            None if self.ended.is_some() => Ok(None),
            None => Err(()),
        }
    }
}

/// Reads one request head from `buf` (the bytes not yet consumed).
pub fn read_request(buf: &[u8], input: ReadInput) -> ReadRequest {
    // The connReader returns EOF once `limit` bytes were read; any error
    // then is errTooLarge (`c.r.hitReadLimit()`).
    let (buf, ended) = if buf.len() >= input.limit { (&buf[..input.limit], Some(ReadEnd::Eof)) } else { (buf, input.ended) };
    let hit_limit = buf.len() >= input.limit;
    match read(buf, ended, input.after_post) {
        ReadRequest::Failed(_) if hit_limit => ReadRequest::Failed(ReadFailure::TooLarge),
        r => r,
    }
}

fn read(buf: &[u8], ended: Option<ReadEnd>, after_post: bool) -> ReadRequest {
    use ReadFailure::*;
    let mut skip = 0;
    if after_post {
        // bufr.Peek(4) waits for 4 bytes (or an error).
        if buf.len() < 4 && ended.is_none() {
            return ReadRequest::NeedMore;
        }
        skip = buf.iter().take(4).take_while(|&&b| b == b'\r' || b == b'\n').count();
    }
    let mut r = Lines { buf, pos: skip, ended };
    // The first line: a read error here is returned as is (EOF included).
    let line = match r.line() {
        Line::NeedMore => return ReadRequest::NeedMore,
        Line::End(_) => return ReadRequest::Failed(Quiet),
        Line::Full(l) => l,
    };
    // From here on, EOF becomes io.ErrUnexpectedEOF: a 400.
    let at_end = |e: ReadEnd| ReadRequest::Failed(if e == ReadEnd::Eof { BadRequest } else { Quiet });
    let Some(mut req) = request_line(line) else { return ReadRequest::Failed(BadRequest) };

    // ReadMIMEHeader: the first line cannot start with a space.
    match r.peek() {
        Err(()) => return ReadRequest::NeedMore,
        Ok(Some(b' ' | b'\t')) => {
            return match r.line() {
                Line::NeedMore => ReadRequest::NeedMore,
                Line::End(e) => at_end(e),
                Line::Full(_) => ReadRequest::Failed(BadRequest),
            }
        }
        Ok(_) => {}
    }
    loop {
        // readContinuedLineSlice(mustHaveFieldNameColon)
        let first = match r.line() {
            Line::NeedMore => return ReadRequest::NeedMore,
            Line::End(e) => return at_end(e),
            Line::Full(l) => l,
        };
        if first.is_empty() {
            break;
        }
        if !first.contains(&b':') {
            return ReadRequest::Failed(BadRequest);
        }
        let mut kv = trim(first).to_vec();
        // Continuation lines (obs-fold): each joined with one space. A
        // read error while reading one ends the header line quietly.
        loop {
            let mut spaces = 0;
            loop {
                match r.peek() {
                    Err(()) => return ReadRequest::NeedMore,
                    Ok(Some(b' ' | b'\t')) => {
                        r.pos += 1;
                        spaces += 1;
                    }
                    Ok(_) => break,
                }
            }
            if spaces == 0 {
                break;
            }
            match r.line() {
                Line::NeedMore => return ReadRequest::NeedMore,
                Line::End(_) => break,
                Line::Full(l) => {
                    kv.push(b' ');
                    kv.extend_from_slice(trim(l));
                }
            }
        }
        let colon = kv.iter().position(|&b| b == b':').expect("checked above");
        let key = canonical_mime_header_key(&kv[..colon]);
        if key.is_empty() {
            // "if we get an empty key, skip it"
            continue;
        }
        let value = &kv[colon + 1..];
        let value = &value[value.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(value.len())..];
        req.header.push((key, latin(value)));
    }
    let consumed = r.pos;
    match finish(req) {
        Ok(req) => ReadRequest::Request(req, consumed),
        Err(f) => ReadRequest::Failed(f),
    }
}

/// The bytes as a Rust string, one char per byte for non-UTF-8 (header
/// values are compared and re-sent as bytes only by Go's checks below).
fn latin(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b.iter().map(|&c| c as char).collect(),
    }
}

/// `parseRequestLine`, `validMethod`, `ParseHTTPVersion`, and the URL.
fn request_line(line: &[u8]) -> Option<Request> {
    let cut = |b: &'_ [u8]| b.iter().position(|&c| c == b' ').map(|i| (b[..i].to_vec(), b[i + 1..].to_vec()));
    let (method, rest) = cut(line)?;
    let (uri, proto) = cut(&rest)?;
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return None;
    }
    let (major, minor) = parse_http_version(std::str::from_utf8(&proto).ok()?)?;
    let method = latin(&method);
    // CONNECT's authority form is parsed as "http://" + authority.
    let just_authority = method == "CONNECT" && !uri.starts_with(b"/");
    let raw = if just_authority { [b"http://".as_slice(), &uri].concat() } else { uri.clone() };
    let url = parse_request_uri(raw)?;
    Some(Request {
        method,
        request_uri: latin(&uri),
        path: String::from_utf8_lossy(&url.path).into_owned(),
        raw_query: url.raw_query,
        proto_major: major,
        proto_minor: minor,
        header: Vec::new(),
        body: RequestBody::None,
        close: false,
        h2_upgrade: false,
    })
}

/// `http.ParseHTTPVersion` (Go 1.19): "HTTP/X.Y" with one digit each.
pub fn parse_http_version(v: &str) -> Option<(u8, u8)> {
    match v {
        "HTTP/1.1" => return Some((1, 1)),
        "HTTP/1.0" => return Some((1, 0)),
        _ => {}
    }
    let b = v.as_bytes();
    if !v.starts_with("HTTP/") || b.len() != 8 || b[6] != b'.' || !b[5].is_ascii_digit() || !b[7].is_ascii_digit() {
        return None;
    }
    Some((b[5] - b'0', b[7] - b'0'))
}

struct Url {
    path: Vec<u8>,
    raw_query: String,
}

/// `url.ParseRequestURI`.
fn parse_request_uri(raw: Vec<u8>) -> Option<Url> {
    if raw.iter().any(|&b| b < 0x20 || b == 0x7f) || raw.is_empty() {
        return None;
    }
    if raw == b"*" {
        return Some(Url { path: b"*".to_vec(), raw_query: String::new() });
    }
    // getScheme: letters first, then letters, digits, "+-."; up to ':'.
    let mut scheme = &raw[..0];
    let mut rest = &raw[..];
    for (i, &c) in raw.iter().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => {
                scheme = &raw[..i];
                rest = &raw[i + 1..];
                break;
            }
            _ => break,
        }
    }
    let (rest, raw_query) = if rest.ends_with(b"?") && rest.iter().filter(|&&b| b == b'?').count() == 1 {
        (&rest[..rest.len() - 1], String::new())
    } else {
        match rest.iter().position(|&b| b == b'?') {
            Some(i) => (&rest[..i], latin(&rest[i + 1..])),
            None => (rest, String::new()),
        }
    };
    if !rest.starts_with(b"/") {
        // A scheme with a rootless rest is opaque (no path); without a
        // scheme, "invalid URI for request".
        return (!scheme.is_empty()).then(|| Url { path: Vec::new(), raw_query });
    }
    let mut path = rest;
    if !scheme.is_empty() && rest.starts_with(b"//") {
        let authority_and_path = &rest[2..];
        let slash = authority_and_path.iter().position(|&b| b == b'/').unwrap_or(authority_and_path.len());
        if !valid_authority(&authority_and_path[..slash]) {
            return None;
        }
        path = &authority_and_path[slash..];
    }
    // setPath: an invalid escape fails the request.
    let path = percent_decode(path, false)?;
    Some(Url { path, raw_query })
}

/// `parseAuthority` / `parseHost`, as far as they refuse bytes.
fn valid_authority(a: &[u8]) -> bool {
    let host = match a.iter().rposition(|&b| b == b'@') {
        Some(i) => &a[i + 1..],
        None => a,
    };
    let port_ok = |p: &[u8]| p.is_empty() || (p[0] == b':' && p[1..].iter().all(u8::is_ascii_digit));
    let host_ok = |h: &[u8]| {
        percent_decode(h, false).is_some()
            && h.iter().all(|&c| c >= 0x80 || c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]<>\"%".contains(&c))
    };
    if host.starts_with(b"[") {
        match host.iter().position(|&b| b == b']') {
            Some(i) => port_ok(&host[i + 1..]) && host_ok(&host[..i]),
            None => false,
        }
    } else {
        let port = host.iter().rposition(|&b| b == b':').map_or(&host[host.len()..], |i| &host[i..]);
        port_ok(port) && host_ok(host)
    }
}

/// The end of `http.readRequest` and the checks of `(*conn).readRequest`.
fn finish(mut req: Request) -> Result<Request, ReadFailure> {
    use ReadFailure::*;
    let hosts = req.header_values("Host").count();
    if hosts > 1 {
        // fmt.Errorf("too many Host headers"): not a statusError.
        return Err(BadRequest);
    }
    req.close = should_close(&req);
    // readTransfer: parseTransferEncoding, then fixLength.
    let te: Vec<String> = req.header_values("Transfer-Encoding").map(str::to_string).collect();
    let mut chunked = false;
    if !te.is_empty() && req.at_least_11() {
        if te.len() != 1 || !trim_string(&te[0]).eq_ignore_ascii_case("chunked") {
            return Err(UnsupportedTransferEncoding);
        }
        chunked = true;
    }
    let lengths: Vec<String> =
        if chunked { Vec::new() } else { req.header_values("Content-Length").map(|v| trim_string(v).to_string()).collect() };
    if lengths.iter().any(|l| *l != lengths[0]) {
        // "http: message cannot contain multiple Content-Length headers"
        return Err(BadRequest);
    }
    req.body = if chunked {
        RequestBody::Chunked
    } else {
        match lengths.first().map(String::as_str) {
            None | Some("") => RequestBody::None,
            Some(cl) => match parse_content_length(cl) {
                Some(0) => RequestBody::None,
                Some(n) => RequestBody::Length(n),
                None => return Err(BadRequest),
            },
        }
    };
    if chunked {
        // fixTrailer: these may not be announced as trailers.
        for v in req.header_values("Trailer") {
            for key in v.split(',').map(|k| canonical_mime_header_key(trim_string(k).as_bytes())) {
                if matches!(key.as_str(), "Transfer-Encoding" | "Trailer" | "Content-Length") {
                    return Err(BadRequest);
                }
            }
        }
    }
    req.h2_upgrade = req.method == "PRI" && req.header.is_empty() && req.path == "*" && (req.proto_major, req.proto_minor) == (2, 0);
    if req.h2_upgrade {
        req.close = true;
    }
    // (*conn).readRequest
    let supported = req.proto_major == 1 || (req.proto_major, req.proto_minor) == (2, 0) && req.method == "PRI" && req.request_uri == "*";
    if !supported {
        return Err(Status(505, "unsupported protocol version"));
    }
    if req.at_least_11() && hosts == 0 && !req.h2_upgrade && req.method != "CONNECT" {
        return Err(Status(400, "missing required Host header"));
    }
    if hosts == 1 && !req.header_get("Host").unwrap_or("").bytes().all(valid_host_byte) {
        return Err(Status(400, "malformed Host header"));
    }
    // Go ranges over a map here: with both kinds of fault the reported one
    // varies; names are checked first in this order.
    if req.header.iter().any(|(k, _)| k.is_empty() || !k.bytes().all(is_token_byte)) {
        return Err(Status(400, "invalid header name"));
    }
    // (latin keeps each byte below 0x80 as the same char)
    if req.header.iter().any(|(_, v)| v.chars().any(|c| (c < ' ' && c != '\t') || c == '\x7f')) {
        return Err(Status(400, "invalid header value"));
    }
    Ok(req)
}

/// `shouldClose` for a request.
fn should_close(req: &Request) -> bool {
    if req.proto_major < 1 {
        return true;
    }
    let has = |t: &str| req.header_values("Connection").any(|v| has_token(v, t));
    if (req.proto_major, req.proto_minor) == (1, 0) {
        return has("close") || !has("keep-alive");
    }
    has("close")
}

/// `parseContentLength`: `strconv.ParseUint(cl, 10, 63)`: digits only, no sign.
pub fn parse_content_length(cl: &str) -> Option<u64> {
    if cl.is_empty() || !cl.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    cl.parse::<u64>().ok().filter(|&n| n < 1 << 63)
}

/// `httpguts` token search, as `hasToken` and `HeaderValuesContainsToken`
/// use it: comma-separated, case-insensitive.
pub fn has_token(v: &str, token: &str) -> bool {
    v.split(',').any(|t| trim_string(t).eq_ignore_ascii_case(token))
}

/// `textproto.TrimString`: ASCII space, tab, CR, LF on both ends.
fn trim_string(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r', '\n'])
}

fn trim(b: &[u8]) -> &[u8] {
    let is_space = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let start = b.iter().position(|c| !is_space(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !is_space(c)).map_or(start, |i| i + 1);
    &b[start..end]
}

/// RFC 7230 token bytes (`isTokenTable`).
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `httpguts.validHostByte`.
fn valid_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!$%&'()*+,-.:;=[]_~".contains(&b)
}

/// `textproto.canonicalMIMEHeaderKey`: keys that are not all token bytes
/// are kept as sent.
fn canonical_mime_header_key(k: &[u8]) -> String {
    if !k.iter().all(|&b| is_token_byte(b)) {
        return latin(k);
    }
    let mut upper = true;
    k.iter()
        .map(|&c| {
            let c = if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() };
            upper = c == b'-';
            c as char
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = (1 << 20) + 4096;

    fn read(s: &[u8], ended: Option<ReadEnd>) -> ReadRequest {
        read_request(s, ReadInput { ended, limit: LIMIT, after_post: false })
    }

    fn failure(s: &str) -> Option<ReadFailure> {
        match read(s.as_bytes(), None) {
            ReadRequest::Failed(f) => Some(f),
            _ => None,
        }
    }

    fn request(s: &str) -> Request {
        match read(s.as_bytes(), None) {
            ReadRequest::Request(r, n) => {
                assert_eq!(n, s.len(), "the head is all of {s:?}");
                r
            }
            other => panic!("{s:?}: {other:?}"),
        }
    }

    #[test]
    fn request_lines() {
        use ReadFailure::*;
        let r = request("GET /%6Fk?a=1 HTTP/1.2\r\nhost: x\r\n\r\n");
        assert_eq!((r.path.as_str(), r.raw_query.as_str(), r.proto_minor), ("/ok", "a=1", 2));
        assert_eq!(request("GET http://x/ok HTTP/1.1\r\nHost: y\r\n\r\n").path, "/ok");
        assert_eq!(request("OPTIONS * HTTP/1.1\r\nHost: y\r\n\r\n").path, "*");
        assert_eq!(failure("GET ok HTTP/1.1\r\n"), Some(BadRequest), "no leading slash");
        assert_eq!(failure("GET /%zz HTTP/1.1\r\n"), Some(BadRequest));
        assert_eq!(failure("G@T / HTTP/1.1\r\n"), Some(BadRequest));
        assert_eq!(failure("GET / http/1.1\r\n"), Some(BadRequest));
        assert_eq!(failure("GET /ok\r\n"), Some(BadRequest), "HTTP/0.9");
        assert_eq!(failure("\r\n"), Some(BadRequest), "a leading CRLF");
        assert_eq!(failure("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), Some(Status(505, "unsupported protocol version")));
        let h2 = request("PRI * HTTP/2.0\r\n\r\n");
        assert!(h2.h2_upgrade && h2.close);
    }

    #[test]
    fn header_lines() {
        use ReadFailure::*;
        assert_eq!(failure("GET / HTTP/1.1\r\n\r\n"), Some(Status(400, "missing required Host header")));
        assert_eq!(failure("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), Some(BadRequest));
        assert_eq!(failure("GET / HTTP/1.1\r\nHost: x\r\nX-A : v\r\n\r\n"), Some(Status(400, "invalid header name")));
        assert_eq!(failure("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01\r\n\r\n"), Some(Status(400, "invalid header value")));
        assert_eq!(failure("GET / HTTP/1.1\r\nHost: x\r\nX-A v\r\n"), Some(BadRequest), "no colon");
        assert_eq!(failure("GET / HTTP/1.1\r\n X: a\r\n"), Some(BadRequest), "a continuation first");
        let folded = request("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n: empty\r\n\r\n");
        assert_eq!(folded.header, vec![("Host".into(), "x".into()), ("X-A".into(), "a b".into())]);
        assert_eq!(request("GET / HTTP/1.1\nHost: x\n\n").header.len(), 1, "bare LF");
        assert_eq!(read(b"GET / HTTP/1.1\rHost: x\r\r", None), ReadRequest::NeedMore, "bare CR is no line end");
        assert_eq!(read(b"GET / HTTP/1.1\r\nHost: x\r\n", None), ReadRequest::NeedMore);
    }

    #[test]
    fn body_framing() {
        use ReadFailure::*;
        let with = |h: &str| format!("POST / HTTP/1.1\r\nHost: x\r\n{h}\r\n");
        assert_eq!(request(&with("Content-Length: 5\r\nContent-Length: 5\r\n")).body, RequestBody::Length(5));
        assert_eq!(failure(&with("Content-Length: 5\r\nContent-Length: 6\r\n")), Some(BadRequest));
        for bad in ["+5", "-1", "5,5", "18446744073709551616", "9223372036854775808"] {
            assert_eq!(failure(&with(&format!("Content-Length: {bad}\r\n"))), Some(BadRequest), "{bad}");
        }
        assert_eq!(request(&with("Content-Length: 9223372036854775807\r\n")).body, RequestBody::Length((1 << 63) - 1));
        assert_eq!(request(&with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n")).body, RequestBody::Chunked);
        for te in ["gzip", "gzip, chunked", "identity"] {
            assert_eq!(failure(&with(&format!("Transfer-Encoding: {te}\r\n"))), Some(UnsupportedTransferEncoding), "{te}");
        }
        let r10 = request("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!((r10.body, r10.close), (RequestBody::None, true), "TE is ignored on HTTP/1.0");
        assert!(!request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").close);
    }

    #[test]
    fn ends_and_limits() {
        use ReadFailure::*;
        assert_eq!(read(b"", Some(ReadEnd::Eof)), ReadRequest::Failed(Quiet));
        assert_eq!(read(b"GET /ok HT", Some(ReadEnd::Timeout)), ReadRequest::Failed(BadRequest), "the partial line is parsed");
        assert_eq!(read(b"GET /ok HTTP/1.1\r\nHost: x\r\n", Some(ReadEnd::Eof)), ReadRequest::Failed(BadRequest));
        assert_eq!(read(b"GET /ok HTTP/1.1\r\nHost: x\r\n", Some(ReadEnd::Timeout)), ReadRequest::Failed(Quiet));
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "h".repeat(LIMIT));
        assert_eq!(read(big.as_bytes(), None), ReadRequest::Failed(TooLarge));
        let fits = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n", "h".repeat(LIMIT - 40));
        assert!(matches!(read(fits.as_bytes(), None), ReadRequest::Request(..)));
        let after_post = ReadInput { ended: None, limit: LIMIT, after_post: true };
        assert!(matches!(read_request(b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", after_post), ReadRequest::Request(_, 29)));
    }
}
