//! The response as nginx 1.22 reads it from the upstream and writes it to
//! the client, as pure functions:
//!
//! * the upstream's head: `ngx_http_parse_status_line` (a line it cannot
//!   parse makes the response HTTP/0.9, passed through raw),
//!   `ngx_http_parse_header_line` (with its "invalid header" excerpt) and
//!   `ngx_http_proxy_process_header`; the `ngx_http_upstream_headers_in`
//!   handlers (Content-Length by `ngx_atoof`, the last one wins;
//!   Transfer-Encoding containing "chunked"; `Connection: close`);
//! * which upstream headers reach the client (`ngx_http_proxy_hide_headers`
//!   and the handlers that do not copy);
//! * the client's head, byte for byte as `ngx_http_header_filter` lays it
//!   out, with the chunked filter's and the special-response handler's
//!   decisions on framing and keepalive.

use std::time::Duration;

/// What a client gets on the wire from nginx for the version it runs.
pub const NGINX_VERSION: &str = "nginx/1.22.1";

/// `ngx_http_write_filter`: output smaller than this waits for more, unless
/// it is the last or a flush.
pub const POSTPONE_OUTPUT: usize = 1460;

/// The upstream's response head, as nginx keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHead {
    pub status: u16,
    /// major * 1000 + minor.
    pub http_version: u32,
    /// The head's bytes, one copy: the status line and the header lines
    /// are ranges of it ([`UpstreamHead::status_line`],
    /// [`UpstreamHead::headers`]), as nginx's are pointers into its buffer.
    raw: Vec<u8>,
    line: (usize, usize),
    /// Each header line's name and value: `[name_start, name_end,
    /// value_start, value_end]` in `raw`.
    fields: Vec<[usize; 4]>,
    /// `ngx_atoof` of the last Content-Length: -1 when absent or invalid.
    pub content_length: i64,
    pub chunked: bool,
    /// `Connection: close`, or an HTTP/1.0 (or older) status line.
    pub connection_close: bool,
}

/// How the upstream's body is delimited (`ngx_http_proxy_input_filter_init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamBody {
    /// No body is read (HEAD, 204, 304, or `Content-Length: 0`).
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes.
    Close,
}

impl UpstreamBody {
    /// The wire framing the body decoder reads.
    pub fn framing(self) -> labkit::wire::BodyFraming {
        use labkit::wire::BodyFraming;
        match self {
            UpstreamBody::Empty => BodyFraming::Length(0),
            UpstreamBody::Length(n) => BodyFraming::Length(n),
            UpstreamBody::Chunked => BodyFraming::Chunked,
            UpstreamBody::Close => BodyFraming::CloseDelimited,
        }
    }
}

/// A chunked body's size line, chunk end or trailer longer than this is
/// not waited for: it is an invalid body (bounds what a peer can make the
/// reader buffer).
pub const MAX_CHUNK_LINE: usize = 64 * 1024;

/// One step of reading the upstream's head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadParse {
    /// More bytes are needed.
    Again,
    /// No valid status line: "upstream sent no valid HTTP/1.0 header", and
    /// the bytes go to the client as they are (status 009 in the access
    /// log, `$upstream_status` 200).
    Http09,
    /// "upstream sent invalid header: \"<excerpt>\\xNN...\"".
    Invalid(String),
    /// The head and its length in the buffer.
    Done(UpstreamHead, usize),
}

/// The `[error]` text for an HTTP/0.9 response.
pub const NO_VALID_HEADER: &str = "upstream sent no valid HTTP/1.0 header";

/// `ngx_http_parse_status_line`: `Ok(Some((code, status_line's range, version, len)))`,
/// `Ok(None)` for more bytes, `Err(())` for an invalid line.
#[allow(clippy::type_complexity)]
fn status_line(buf: &[u8]) -> Result<Option<(u16, (usize, usize), u32, usize)>, ()> {
    let prefix = b"HTTP/";
    for (i, &c) in buf.iter().take(prefix.len()).enumerate() {
        if c != prefix[i] {
            return Err(());
        }
    }
    let mut p = prefix.len();
    let digits = |p: &mut usize, first_min: u8| -> Result<Option<u32>, ()> {
        let start = *p;
        let mut v: u32 = 0;
        loop {
            let Some(&c) = buf.get(*p) else { return Ok(None) };
            if *p == start {
                if !(first_min..=b'9').contains(&c) {
                    return Err(());
                }
            } else if !c.is_ascii_digit() {
                return Ok(Some(v));
            } else if v > 99 {
                return Err(());
            }
            v = v * 10 + u32::from(c - b'0');
            *p += 1;
        }
    };
    let Some(major) = digits(&mut p, b'1')? else { return Ok(None) };
    match buf.get(p) {
        None => return Ok(None),
        Some(b'.') => p += 1,
        Some(_) => return Err(()),
    }
    let Some(minor) = digits(&mut p, b'0')? else { return Ok(None) };
    match buf.get(p) {
        None => return Ok(None),
        Some(b' ') => p += 1,
        Some(_) => return Err(()),
    }
    while buf.get(p) == Some(&b' ') {
        p += 1;
    }
    let start = p;
    let mut code: u16 = 0;
    for _ in 0..3 {
        match buf.get(p) {
            None => return Ok(None),
            Some(c) if c.is_ascii_digit() => code = code * 10 + u16::from(c - b'0'),
            Some(_) => return Err(()),
        }
        p += 1;
    }
    // Space (or IIS's "403.1" dot), CR or LF after the three digits.
    match buf.get(p) {
        None => return Ok(None),
        Some(b' ' | b'.' | b'\r' | b'\n') => {}
        Some(_) => return Err(()),
    }
    let Some(eol) = buf[p..].iter().position(|&c| c == b'\n' || c == b'\r').map(|i| p + i) else { return Ok(None) };
    let (end, len) = if buf[eol] == b'\n' {
        (eol, eol + 1)
    } else {
        match buf.get(eol + 1) {
            None => return Ok(None),
            Some(b'\n') => (eol, eol + 2),
            Some(_) => return Err(()),
        }
    };
    Ok(Some((code, (start, end), major * 1000 + minor, len)))
}

/// One header line, as offsets into the line's bytes: nothing is copied
/// until the head keeps it.
enum Line {
    Again,
    End(usize),
    /// The name is `[..name]`, the value `[value.0..value.1]`, the line
    /// `len` bytes; a `name` of 0 is a line to skip.
    Header { name: usize, value: (usize, usize), len: usize },
    Invalid(String),
}

/// Bytes that end or question a header name: `:`, CR, LF, `/` (the IIS
/// status line), controls, space and DEL.
const NAME_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = c <= 0x20 || c == 0x7f || c == b':' as usize || c == b'/' as usize;
        c += 1;
    }
    t
};

/// The first byte of `s` in [`NAME_STOP`].
fn name_stop(s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| NAME_STOP[usize::from(c)])
}

/// "invalid header" with the excerpt nginx logs: the line up to `at`
/// (bytes as Latin-1), then the byte at `at` in hex.
#[cold]
fn invalid(buf: &[u8], at: usize) -> Line {
    let mut s = String::with_capacity(at + 8);
    for &c in &buf[..at] {
        s.push(char::from(c));
    }
    Line::Invalid(format!("{s}\\x{:02x}...", buf[at]))
}

/// `ngx_http_parse_header_line` for one line at `buf[0..]` (underscores allowed).
fn header_line(buf: &[u8]) -> Line {
    match buf.first() {
        None => return Line::Again,
        Some(b'\n') => return Line::End(1),
        Some(b'\r') => {
            return match buf.get(1) {
                None => Line::Again,
                Some(b'\n') => Line::End(2),
                // "\r" then anything: nginx's sw_header_almost_done fails
                // with header_end at the CR.
                Some(_) => Line::Invalid("\\x0d...".into()),
            };
        }
        Some(&c) if c <= 0x20 || c == 0x7f || c == b':' => return invalid(buf, 0),
        _ => {}
    }
    let mut p = 1;
    // Name: ordinary bytes are skipped eight at a time, then by one table
    // lookup each.
    let name_end = loop {
        let Some(i) = name_stop(&buf[p..]) else { return Line::Again };
        p += i;
        match buf[p] {
            b':' => break p,
            // A name with no colon ends the line: a header with an empty value.
            b'\r' | b'\n' => return finish(buf, p, p, p, p),
            b'/' => {
                if p == 4 && &buf[..4] == b"HTTP" {
                    // IIS may send a duplicate status line: ignored.
                    return match memchr::memchr(b'\n', &buf[p..]) {
                        None => Line::Again,
                        Some(i) => Line::Header { name: 0, value: (0, 0), len: p + i + 1 },
                    };
                }
                p += 1;
            }
            // Other odd bytes only mark the header invalid, which the
            // proxy module ignores; controls and spaces end the parse.
            _ => return invalid(buf, p),
        }
    };
    p += 1;
    // Spaces before the value.
    loop {
        match buf.get(p) {
            None => return Line::Again,
            Some(b' ') => p += 1,
            Some(0) => return invalid(buf, p),
            _ => break,
        }
    }
    let value_start = p;
    // The value runs to the first CR or LF; a NUL before it is invalid.
    let Some(i) = memchr::memchr3(b'\r', b'\n', 0, &buf[p..]) else { return Line::Again };
    let eol = p + i;
    if buf[eol] == 0 {
        return invalid(buf, eol);
    }
    // Trailing spaces are not the value's.
    let mut value_end = eol;
    while value_end > value_start && buf[value_end - 1] == b' ' {
        value_end -= 1;
    }
    // The usual CRLF at once; anything else by the rules of `finish`.
    if buf.get(eol..eol + 2) == Some(b"\r\n") && value_end > value_start {
        return Line::Header { name: name_end, value: (value_start, value_end), len: eol + 2 };
    }
    finish(buf, eol, name_end, value_start, value_end)
}

/// The line ends at `eol` (CR or LF): CR must be followed by LF (more CRs
/// are skipped, as nginx's sw_almost_done does).
fn finish(buf: &[u8], eol: usize, name: usize, vs: usize, ve: usize) -> Line {
    let mut p = eol;
    loop {
        match buf.get(p) {
            None => return Line::Again,
            Some(b'\n') => {
                let value = if ve > vs { (vs, ve) } else { (0, 0) };
                return Line::Header { name, value, len: p + 1 };
            }
            Some(b'\r') => p += 1,
            Some(_) => {
                // nginx: NGX_HTTP_PARSE_INVALID_HEADER with header_end where
                // the value ended (or at the CR for an empty value).
                let he = if ve > vs { ve } else { eol };
                return Line::Invalid(format!("{}\\x{:02x}...", String::from_utf8_lossy(&buf[..he]), buf[he]));
            }
        }
    }
}

/// `ngx_atoof`: decimal digits only; anything else (a sign, a space, an
/// overflow) is -1.
pub fn atoof(v: &[u8]) -> i64 {
    if v.is_empty() {
        return -1;
    }
    let mut n: i64 = 0;
    for &c in v {
        if !c.is_ascii_digit() {
            return -1;
        }
        n = match n.checked_mul(10).and_then(|n| n.checked_add(i64::from(c - b'0'))) {
            Some(n) => n,
            None => return -1,
        };
    }
    n
}

/// Reads the upstream's head from the start of `buf`.
pub fn parse_head(buf: &[u8]) -> HeadParse {
    let (status, line, version, mut p) = match status_line(buf) {
        Err(()) => return HeadParse::Http09,
        Ok(None) => return HeadParse::Again,
        Ok(Some(s)) => s,
    };
    let mut head = UpstreamHead {
        status,
        http_version: version,
        raw: Vec::new(),
        line,
        // Room for a typical response's headers without regrowing.
        fields: Vec::with_capacity(8),
        content_length: -1,
        chunked: false,
        connection_close: version < 1001,
    };
    loop {
        match header_line(&buf[p..]) {
            Line::Again => return HeadParse::Again,
            Line::Invalid(excerpt) => return HeadParse::Invalid(excerpt),
            Line::End(n) => {
                if head.chunked {
                    head.content_length = -1;
                }
                head.raw = buf[..p].to_vec();
                return HeadParse::Done(head, p + n);
            }
            Line::Header { name, value: (vs, ve), len } => {
                let line = &buf[p..];
                p += len;
                if name == 0 {
                    continue;
                }
                let (name, value) = (&line[..name], &line[vs..ve]);
                // The ngx_http_upstream_headers_in handlers this emulates.
                if name.eq_ignore_ascii_case(b"content-length") {
                    head.content_length = atoof(value);
                } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                    head.chunked |= contains_ci(value, b"chunked");
                } else if name.eq_ignore_ascii_case(b"connection") {
                    head.connection_close |= contains_ci(value, b"close");
                }
                head.fields.push([p - len, p - len + name.len(), p - len + vs, p - len + ve]);
            }
        }
    }
}

/// Whether `hay` holds `needle` (not empty), ASCII case aside.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && (0..=hay.len() - needle.len()).any(|i| hay[i..i + needle.len()].eq_ignore_ascii_case(needle))
}

impl UpstreamHead {
    /// What nginx makes of a response with no valid status line: a 200
    /// read until the upstream closes.
    pub fn http09() -> UpstreamHead {
        UpstreamHead { status: 200, http_version: 900, raw: Vec::new(), line: (0, 0), fields: Vec::new(), content_length: -1, chunked: false, connection_close: true }
    }

    /// Whether the connection may be cached after this response
    /// (`keepalive::keeps_connection`).
    pub fn keeps_connection(&self, body_complete: bool, delimited: bool) -> bool {
        crate::keepalive::keeps_connection(self.http_version >= 1001, self.connection_close, body_complete, delimited)
    }

    /// How the body is read (`ngx_http_proxy_input_filter_init`).
    pub fn body(&self, head_request: bool) -> UpstreamBody {
        if self.status == 204 || self.status == 304 || head_request {
            UpstreamBody::Empty
        } else if self.chunked {
            UpstreamBody::Chunked
        } else if self.content_length == 0 {
            UpstreamBody::Empty
        } else if self.content_length > 0 {
            UpstreamBody::Length(self.content_length as u64)
        } else {
            UpstreamBody::Close
        }
    }

    /// The status line after the version ("200 OK", "999 Weird", "200"):
    /// nginx sends it to the client as it came.
    pub fn status_line(&self) -> &[u8] {
        &self.raw[self.line.0..self.line.1]
    }

    /// Every header line, name and value as sent (the value trimmed of
    /// spaces), in order.
    pub fn headers(&self) -> impl DoubleEndedIterator<Item = (&[u8], &[u8])> + ExactSizeIterator + Clone {
        self.fields.iter().map(|f| (&self.raw[f[0]..f[1]], &self.raw[f[2]..f[3]]))
    }

    /// The `Content-Type` value, passed on in its own slot of the header.
    pub fn content_type(&self) -> Option<&[u8]> {
        self.headers().rev().find(|(k, _)| k.eq_ignore_ascii_case(b"content-type")).map(|(_, v)| v)
    }

    /// The headers the client gets after nginx's own, in the upstream's
    /// order and spelling: not hidden (`ngx_http_proxy_hide_headers`), not
    /// handled by nginx itself (framing, Connection, Keep-Alive,
    /// Content-Type and Content-Length, which have their own slots).
    pub fn passed_headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        const NOT_PASSED: [&[u8]; 13] = [
            b"date",
            b"server",
            b"x-pad",
            b"x-accel-expires",
            b"x-accel-redirect",
            b"x-accel-limit-rate",
            b"x-accel-buffering",
            b"x-accel-charset",
            b"content-length",
            b"content-type",
            b"connection",
            b"keep-alive",
            b"transfer-encoding",
        ];
        self.headers().filter(|(k, _)| !NOT_PASSED.iter().any(|n| k.eq_ignore_ascii_case(n)))
    }
}

/// The client's side of one request, as far as the head depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientSide {
    /// The request was HTTP/1.1 (or later).
    pub http11: bool,
    /// `r->keepalive`: the client asked for a persistent connection and
    /// [`ClientKeepalive::keeps`] allowed it.
    pub keepalive: bool,
    pub head_request: bool,
    /// `server_tokens on`.
    pub server_tokens: bool,
    /// `keepalive_timeout`'s second parameter: `Keep-Alive: timeout=N`
    /// (seconds) after `Connection: keep-alive`.
    pub keepalive_header: Option<u64>,
}

/// The client connection's keepalive directives (`ngx_http_core_module`):
/// `keepalive_timeout T [H]`, `keepalive_requests`, `keepalive_time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKeepalive {
    /// How long a connection may wait for its next request (75 s; 0 turns
    /// keepalive off).
    pub timeout: Duration,
    /// The `Keep-Alive: timeout=N` header's N, in seconds (none by default).
    pub header: Option<u64>,
    /// Requests per connection (1000 since nginx 1.19.10).
    pub requests: u64,
    /// The longest a connection may be kept (1 h).
    pub time: Duration,
}

impl Default for ClientKeepalive {
    fn default() -> Self {
        ClientKeepalive { timeout: Duration::from_secs(75), header: None, requests: 1000, time: Duration::from_secs(3600) }
    }
}

impl ClientKeepalive {
    /// `ngx_http_update_location_config`: the request keeps its connection
    /// if the client asked, `keepalive_timeout` is not 0, this is not the
    /// connection's `keepalive_requests`-th request (`requests` counts this
    /// one: `c->requests` from 1), and the connection is not older than
    /// `keepalive_time`. Otherwise nginx answers `Connection: close`.
    pub fn keeps(&self, asked: bool, requests: u64, age: Duration) -> bool {
        asked && !self.timeout.is_zero() && requests < self.requests && age <= self.time
    }
}

/// What a request that does not keep its connection still has coming from
/// the client, as `ngx_http_finalize_connection` sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClosingRequest {
    /// The request declared a body: a Content-Length above 0, or chunked
    /// (`r->lingering_close`, set in `ngx_http_handler`). Reading the body
    /// does not clear it; discarding it does, but the discarding read that
    /// took the body's last bytes asked for exactly those, so `read->ready`
    /// stays set (`ngx_unix_recv` clears it only on a short read) and the
    /// close lingers all the same.
    pub declared_body: bool,
    /// Bytes read but not parsed, or waiting in the socket
    /// (`header_in->pos < header_in->last`, `read->ready`).
    pub bytes_waiting: bool,
    /// A pipelined request came earlier on this connection (`c->pipeline`).
    pub pipelined: bool,
    /// The client has closed its side already (`read->eof`): nothing to
    /// wait for.
    pub client_closed: bool,
}

/// `ngx_http_finalize_connection` with `lingering_close on` (the default):
/// whether nginx ends a connection it does not keep with a lingering close
/// (`ngx_http_set_lingering_close`): it shuts down its side, reads and
/// drops what the client still sends until the client closes, nothing
/// comes for `lingering_timeout` (5 s) or `lingering_time` (30 s) passes,
/// and only then frees the request, writing its access line. Otherwise it
/// closes at once.
pub fn lingers(r: ClosingRequest) -> bool {
    !r.client_closed && (r.declared_body || r.bytes_waiting || r.pipelined)
}

/// `ngx_http_header_filter`'s connection lines: `Connection: keep-alive`
/// (and `Keep-Alive: timeout=N` with `keepalive_timeout`'s header
/// parameter), or `Connection: close`.
fn connection_lines(keepalive: bool, header: Option<u64>) -> String {
    let mut out = Vec::with_capacity(64);
    push_connection_lines(&mut out, keepalive, header);
    String::from_utf8(out).expect("ASCII")
}

/// [`connection_lines`] appended to `out`.
fn push_connection_lines(out: &mut Vec<u8>, keepalive: bool, header: Option<u64>) {
    if !keepalive {
        out.extend_from_slice(b"Connection: close\r\n");
        return;
    }
    out.extend_from_slice(b"Connection: keep-alive\r\n");
    if let Some(n) = header {
        out.extend_from_slice(b"Keep-Alive: timeout=");
        crate::num::push_decimal(out, n);
        out.extend_from_slice(b"\r\n");
    }
}

/// What the client's response looks like on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHead {
    pub bytes: Vec<u8>,
    /// The body goes in chunked framing (`ngx_http_chunked_header_filter`).
    pub chunked: bool,
    /// The connection stays open after the response.
    pub keepalive: bool,
    /// A body is sent at all.
    pub body: bool,
}

fn server_line(tokens: bool) -> String {
    format!("Server: {}\r\n", if tokens { NGINX_VERSION } else { "nginx" })
}

/// `ngx_http_header_filter` (and `ngx_http_chunked_header_filter`) for an
/// upstream's response: the status line as the upstream wrote it, nginx's
/// Server and Date, Content-Type, Content-Length, Transfer-Encoding,
/// Connection, then the upstream's other headers.
pub fn client_head(up: &UpstreamHead, client: ClientSide, date: &str) -> ClientHead {
    let mut keepalive = client.keepalive;
    let no_body_status = up.status == 204 || up.status == 304;
    let mut chunked = false;
    if !(no_body_status || up.status < 200 || client.head_request) && up.content_length == -1 {
        if client.http11 {
            chunked = true;
        } else {
            keepalive = false;
        }
    }
    if up.status == 101 {
        keepalive = false;
    }
    // Sized for the whole head: the fixed lines take under 160 bytes.
    let room = 160 + up.raw.len() + date.len();
    let mut h = Vec::with_capacity(room);
    h.extend_from_slice(b"HTTP/1.1 ");
    h.extend_from_slice(up.status_line());
    // Pushed piece by piece, not format!: this runs for every response.
    h.extend_from_slice(if client.server_tokens { b"\r\nServer: nginx/1.22.1\r\nDate: " } else { b"\r\nServer: nginx\r\nDate: " });
    h.extend_from_slice(date.as_bytes());
    h.extend_from_slice(b"\r\n");
    if let Some(ct) = up.content_type() {
        h.extend_from_slice(b"Content-Type: ");
        h.extend_from_slice(ct);
        h.extend_from_slice(b"\r\n");
    }
    if up.content_length >= 0 {
        h.extend_from_slice(b"Content-Length: ");
        crate::num::push_decimal(&mut h, up.content_length as u64);
        h.extend_from_slice(b"\r\n");
    }
    if chunked {
        h.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if up.status == 101 {
        h.extend_from_slice(b"Connection: upgrade\r\n");
    } else {
        push_connection_lines(&mut h, keepalive, client.keepalive_header);
    }
    for (k, v) in up.passed_headers() {
        h.extend_from_slice(k);
        h.extend_from_slice(b": ");
        h.extend_from_slice(v);
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    ClientHead { bytes: h, chunked, keepalive, body: !client.head_request && !no_body_status }
}

/// nginx's reason phrase for the statuses it answers itself
/// (`ngx_http_status_lines`).
pub fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Large",
        415 => "Unsupported Media Type",
        416 => "Requested Range Not Satisfiable",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        494 => "Request Header Or Cookie Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Temporarily Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "",
    }
}

/// nginx's built-in error page (`ngx_http_special_response_handler`).
pub fn error_page(status: u16, server_tokens: bool) -> String {
    // ngx_http_error_401_page's title is not the status line's reason
    // (observed on nginx 1.22.1: "401 Unauthorized" on the status line,
    // "401 Authorization Required" on the page, 179 bytes).
    let t = match status {
        401 => "401 Authorization Required".to_string(),
        _ => format!("{status} {}", reason(status)),
    };
    let tail = if server_tokens { NGINX_VERSION } else { "nginx" };
    format!("<html>\r\n<head><title>{t}</title></head>\r\n<body>\r\n<center><h1>{t}</h1></center>\r\n<hr><center>{tail}</center>\r\n</body>\r\n</html>\r\n")
}

/// Whether an error page keeps the client connection open: nginx drops
/// keepalive for these (`ngx_http_special_response_handler`).
pub fn error_keeps_connection(status: u16, keepalive: bool) -> bool {
    keepalive && !matches!(status, 400 | 413 | 414 | 494 | 500 | 501)
}

/// An error page with its head, for a client that asked for `keepalive`.
pub fn error_response(status: u16, client: ClientSide, date: &str) -> (Vec<u8>, bool) {
    let page = error_page(status, client.server_tokens);
    let keep = error_keeps_connection(status, client.keepalive);
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\n{}Date: {date}\r\nContent-Type: text/html\r\nContent-Length: {}\r\n{}\r\n",
        reason(status),
        server_line(client.server_tokens),
        page.len(),
        connection_lines(keep, client.keepalive_header)
    )
    .into_bytes();
    if !client.head_request {
        out.extend_from_slice(page.as_bytes());
    }
    (out, keep)
}

/// The status line nginx writes for a status it sets itself
/// (`ngx_http_status_lines` in `ngx_http_header_filter`): the code and the
/// reason, or the code and a space for a code the table lacks.
pub fn own_status_line(status: u16) -> String {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        s => reason(s),
    };
    if reason.is_empty() {
        format!("{status} ")
    } else {
        format!("{status} {reason}")
    }
}

/// A redirect status: `return CODE URL` sets Location (`ngx_http_send_response`).
pub fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The title of nginx's page for a redirect (`ngx_http_error_30x_page`:
/// 302's page says "Found" though its status line says "Moved Temporarily").
fn redirect_title(status: u16) -> &'static str {
    match status {
        301 => "301 Moved Permanently",
        302 => "302 Found",
        303 => "303 See Other",
        307 => "307 Temporary Redirect",
        _ => "308 Permanent Redirect",
    }
}

/// `Content-Type` for a response nginx makes from a URI
/// (`ngx_http_set_content_type`): without a `types` block, nginx's
/// built-in types (html, gif, jpg), else `default_type` (text/plain).
pub fn content_type_for(uri_path: &str) -> &'static str {
    let ext = uri_path.rsplit('/').next().and_then(|f| f.rsplit_once('.')).map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html") => "text/html",
        Some("gif") => "image/gif",
        Some("jpg") => "image/jpeg",
        _ => "text/plain",
    }
}

/// What a `return` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnAnswer {
    pub bytes: Vec<u8>,
    pub status: u16,
    pub keepalive: bool,
    /// `$body_bytes_sent`.
    pub body_bytes: u64,
}

/// `ngx_http_script_return_code` → `ngx_http_send_response`, or the
/// special response (`ngx_http_special_response_handler`):
/// * a code under 400, or any code with text: the text as the body with
///   `Content-Type` from the URI, except
/// * 301, 302, 303, 307, 308: the text is the Location (a path made
///   absolute against `base`, `http://host[:port]`: `absolute_redirect
///   on`) and the body is nginx's page for the code;
/// * a code of 400 or more without text: nginx's error page.
pub fn return_response(code: u16, text: Option<&str>, uri_path: &str, base: &str, client: ClientSide, date: &str) -> ReturnAnswer {
    if code >= 400 && text.is_none() {
        let (bytes, keepalive) = error_response(code, client, date);
        let body_bytes = if client.head_request { 0 } else { error_page(code, client.server_tokens).len() as u64 };
        return ReturnAnswer { bytes, status: code, keepalive, body_bytes };
    }
    let (content_type, location, body) = if is_redirect(code) {
        let t = redirect_title(code);
        let tail = if client.server_tokens { NGINX_VERSION } else { "nginx" };
        let page = format!("<html>\r\n<head><title>{t}</title></head>\r\n<body>\r\n<center><h1>{t}</h1></center>\r\n<hr><center>{tail}</center>\r\n</body>\r\n</html>\r\n");
        let to = text.unwrap_or("");
        let location = if to.starts_with('/') { format!("{base}{to}") } else { to.to_string() };
        ("text/html", Some(location), page)
    } else {
        (content_type_for(uri_path), None, text.unwrap_or("").to_string())
    };
    let keepalive = if code >= 400 { error_keeps_connection(code, client.keepalive) } else { client.keepalive };
    // ngx_http_header_filter: a 204 has no Content-Type, no length, no body.
    let no_content = code == 204;
    let mut h = format!("HTTP/1.1 {}\r\n{}Date: {date}\r\n", own_status_line(code), server_line(client.server_tokens));
    if !no_content {
        h.push_str(&format!("Content-Type: {content_type}\r\nContent-Length: {}\r\n", body.len()));
    }
    // A path is made absolute and written before Connection; a URL is
    // one of the response's other headers, written after it.
    let (relative, absolute) = match location {
        Some(l) if text.is_some_and(|t| t.starts_with('/')) => (Some(l), None),
        other => (None, other),
    };
    if let Some(l) = relative {
        h.push_str(&format!("Location: {l}\r\n"));
    }
    h.push_str(&connection_lines(keepalive, client.keepalive_header));
    if let Some(l) = absolute {
        h.push_str(&format!("Location: {l}\r\n"));
    }
    h.push_str("\r\n");
    let mut bytes = h.into_bytes();
    let mut body_bytes = 0;
    if !client.head_request && !no_content {
        bytes.extend_from_slice(body.as_bytes());
        body_bytes = body.len() as u64;
    }
    ReturnAnswer { bytes, status: code, keepalive, body_bytes }
}

/// A `return`'s text (a body or a URL) as sent: a script
/// (`ngx_http_rewrite_return` compiles it as a complex value), expanded
/// with `$status` already the return's code (`ngx_http_send_response` sets
/// it first).
pub fn return_text(ret: &crate::conf::Return, vars: &crate::http::RequestVars) -> Option<String> {
    let vars = crate::http::RequestVars { status: Some(ret.code), ..vars.clone() };
    ret.text.as_deref().map(|t| vars.expand(t, ""))
}

/// The `error_page` line for a status (`ngx_http_special_response_handler`:
/// the first that lists it).
pub fn error_page_for(status: u16, pages: &[crate::conf::ErrorPage]) -> Option<&crate::conf::ErrorPage> {
    pages.iter().find(|p| p.codes.contains(&status))
}

/// The page's URI as `ngx_http_send_error_page` evaluates it (a complex
/// value), `$status` being the error's (`r->err_status`).
pub fn error_page_uri(page: &crate::conf::ErrorPage, error: u16, vars: &crate::http::RequestVars) -> String {
    crate::http::RequestVars { status: Some(error), ..vars.clone() }.expand(&page.uri, "")
}

/// `ngx_http_send_error_page` for a page that is neither a URI nor
/// `@name`: a redirect to it, answered as `return` answers one (Location
/// and nginx's page), with `=CODE` when that is 301, 302, 303, 307 or 308,
/// else 302; the error's status is not sent (`$upstream_status` keeps it).
pub fn error_page_redirect(page: &crate::conf::ErrorPage) -> Option<crate::conf::Return> {
    if page.uri.starts_with('/') || page.uri.starts_with('@') {
        return None;
    }
    let code = page.overwrite.filter(|c| matches!(c, 301 | 302 | 303 | 307 | 308)).unwrap_or(302);
    Some(crate::conf::Return { code, text: Some(page.uri.clone()) })
}

/// `ngx_http_upstream_intercept_errors`: an upstream's status of 300 or
/// more is replaced by nginx's handling (its error_page) only with
/// `proxy_intercept_errors on` and an `error_page` for that status.
pub fn intercepts(status: u16, intercept_errors: bool, pages: &[crate::conf::ErrorPage]) -> bool {
    status >= 300 && intercept_errors && error_page_for(status, pages).is_some()
}

/// The status an error page is sent with (`ngx_http_send_error_page`,
/// `r->err_status`): the error's, `=CODE`'s, or with `=` the target's.
pub fn error_page_status(error: u16, page: &crate::conf::ErrorPage, target: u16) -> u16 {
    match page.overwrite {
        None => error,
        Some(0) => target,
        Some(n) => n,
    }
}

/// A response with its status line replaced (`ngx_http_header_filter`
/// writes `r->err_status` when set).
pub fn with_status(mut bytes: Vec<u8>, status: u16) -> Vec<u8> {
    if let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") {
        let line = format!("HTTP/1.1 {}", own_status_line(status));
        bytes.splice(..end, line.into_bytes());
    }
    bytes
}

/// `ngx_http_headers_filter`: the `add_header` lines for a response of
/// `status`, as header lines. Without `always` a line is added only for
/// 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308; an empty value
/// adds nothing (`ngx_http_add_header`).
///
/// Values are scripts, expanded with the request's variables at header
/// time (`$status` the status being sent); an empty result adds nothing.
pub fn added_headers(status: u16, lines: &[crate::conf::AddHeader], vars: &crate::http::RequestVars) -> Vec<u8> {
    let safe = matches!(status, 200 | 201 | 204 | 206 | 301 | 302 | 303 | 304 | 307 | 308);
    if !lines.iter().any(|h| safe || h.always) {
        return Vec::new();
    }
    let vars = crate::http::RequestVars { status: Some(status), ..vars.clone() };
    let mut out = Vec::new();
    for h in lines.iter().filter(|h| safe || h.always) {
        let value = vars.expand(&h.value, "");
        if !value.is_empty() {
            out.extend_from_slice(format!("{}: {}\r\n", h.name, value).as_bytes());
        }
    }
    out
}

/// A response's bytes with `extra` header lines at the end of its head
/// (the headers list is written last by `ngx_http_header_filter`).
pub fn insert_headers(mut bytes: Vec<u8>, extra: &[u8]) -> Vec<u8> {
    if extra.is_empty() {
        return bytes;
    }
    if let Some(p) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        bytes.splice(p + 2..p + 2, extra.iter().copied());
    }
    bytes
}

/// One chunk of `ngx_http_chunked_body_filter`: hex size, CRLF, data, CRLF.
pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The last chunk.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    #[test]
    fn client_keepalive_is_kept_until_the_requests_the_time_or_a_zero_timeout() {
        let d = ClientKeepalive::default();
        let s = Duration::from_secs;
        // (settings, asked, this request's number on the connection, age) → kept
        let table = [
            (d, true, 1, s(0), true),
            (d, false, 1, s(0), false),
            (d, true, 999, s(0), true),
            (d, true, 1000, s(0), false), // keepalive_requests 1000: the 1000th closes
            (ClientKeepalive { requests: 2, ..d }, true, 2, s(0), false),
            (ClientKeepalive { requests: 2, ..d }, true, 1, s(0), true),
            (ClientKeepalive { timeout: Duration::ZERO, ..d }, true, 1, s(0), false),
            (ClientKeepalive { time: s(10), ..d }, true, 1, s(10), true),
            (ClientKeepalive { time: s(10), ..d }, true, 1, s(11), false),
        ];
        for (ck, asked, n, age, kept) in table {
            assert_eq!(ck.keeps(asked, n, age), kept, "{ck:?} asked {asked} request {n} age {age:?}");
        }
        assert_eq!(connection_lines(true, Some(5)), "Connection: keep-alive\r\nKeep-Alive: timeout=5\r\n");
        assert_eq!(connection_lines(false, Some(5)), "Connection: close\r\n");
        assert_eq!(connection_lines(true, None), "Connection: keep-alive\r\n");
    }

    use super::*;

    #[test]
    fn lingering_close_table() {
        let r = ClosingRequest::default();
        // (what is still coming, lingers): ngx_http_finalize_connection.
        let cases = [
            (r, false),
            (ClosingRequest { declared_body: true, ..r }, true),
            (ClosingRequest { bytes_waiting: true, ..r }, true),
            (ClosingRequest { pipelined: true, ..r }, true),
            // read->eof is checked first: a closed client is not waited for.
            (ClosingRequest { declared_body: true, bytes_waiting: true, pipelined: true, client_closed: true }, false),
        ];
        for (req, want) in cases {
            assert_eq!(lingers(req), want, "{req:?}");
        }
    }

    fn done(b: &[u8]) -> UpstreamHead {
        match parse_head(b) {
            HeadParse::Done(h, _) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn return_answers() {
        let c = ClientSide { http11: true, keepalive: true, head_request: false, server_tokens: true, keepalive_header: None };
        let d = "D";
        let text = |a: ReturnAnswer| String::from_utf8(a.bytes).unwrap();
        let s = "Server: nginx/1.22.1\r\nDate: D\r\n";
        let table: [(u16, Option<&str>, &str, String); 6] = [
            (200, Some("hello"), "/x", format!("HTTP/1.1 200 OK\r\n{s}Content-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello")),
            (200, Some("<b>"), "/a.html", format!("HTTP/1.1 200 OK\r\n{s}Content-Type: text/html\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\n<b>")),
            (299, None, "/x", format!("HTTP/1.1 299 \r\n{s}Content-Type: text/plain\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n")),
            (403, Some("no"), "/x", format!("HTTP/1.1 403 Forbidden\r\n{s}Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nno")),
            (302, Some("/new"), "/x", format!("HTTP/1.1 302 Moved Temporarily\r\n{s}Content-Type: text/html\r\nContent-Length: 145\r\nLocation: http://lab:8080/new\r\nConnection: keep-alive\r\n\r\n<html>\r\n<head><title>302 Found</title></head>\r\n<body>\r\n<center><h1>302 Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n</html>\r\n")),
            (404, None, "/x", text_of(error_response(404, c, d).0)),
        ];
        for (code, t, uri, want) in table {
            assert_eq!(text(return_response(code, t, uri, "http://lab:8080", c, d)), want, "{code} {t:?}");
        }
        let a = return_response(301, Some("https://e.example/"), "/x", "http://lab", c, d);
        assert!(text(a.clone()).contains("\r\nLocation: https://e.example/\r\n"), "{}", text(a));
        assert!(!return_response(400, None, "/x", "", c, d).keepalive);
        let head = ClientSide { head_request: true, ..c };
        assert_eq!(return_response(200, Some("hello"), "/x", "", head, d).body_bytes, 0);
    }

    #[test]
    fn error_page_to_a_url_is_a_redirect() {
        use crate::conf::{ErrorPage, Return};
        let page = |overwrite: Option<u16>, uri: &str| ErrorPage { codes: vec![502], overwrite, uri: uri.into() };
        let to = |code: u16, url: &str| Some(Return { code, text: Some(url.into()) });
        assert_eq!(error_page_redirect(&page(None, "http://e.example/x")), to(302, "http://e.example/x"));
        assert_eq!(error_page_redirect(&page(Some(301), "https://e.example/")), to(301, "https://e.example/"));
        assert_eq!(error_page_redirect(&page(Some(200), "https://e.example/")), to(302, "https://e.example/"), "observed on nginx 1.22.1");
        assert_eq!(error_page_redirect(&page(Some(0), "https://e.example/")), to(302, "https://e.example/"));
        assert_eq!((error_page_redirect(&page(None, "/x")), error_page_redirect(&page(None, "@x"))), (None, None));
        let vars = crate::http::RequestVars { uri: "/a".into(), status: Some(200), ..Default::default() };
        assert_eq!(error_page_uri(&page(None, "/fb?s=$status&u=${uri}"), 502, &vars), "/fb?s=502&u=/a");
    }

    #[test]
    fn add_header_by_status() {
        use crate::conf::AddHeader;
        let h = |name: &str, value: &str, always: bool| AddHeader { name: name.into(), value: value.into(), always };
        let lines = [h("X-A", "1", false), h("X-B", "2", true), h("X-Empty", "", true)];
        for (status, want) in [(200, "X-A: 1\r\nX-B: 2\r\n"), (204, "X-A: 1\r\nX-B: 2\r\n"), (304, "X-A: 1\r\nX-B: 2\r\n"), (308, "X-A: 1\r\nX-B: 2\r\n"), (202, "X-B: 2\r\n"), (404, "X-B: 2\r\n"), (502, "X-B: 2\r\n"), (101, "X-B: 2\r\n")] {
            assert_eq!(String::from_utf8(added_headers(status, &lines, &crate::http::RequestVars::default())).unwrap(), want, "{status}");
        }
        // Values are scripts: `$status` is the status sent, an empty result adds nothing.
        let vars = crate::http::RequestVars { uri: "/r".into(), http_host: "Lab:8080".into(), ..Default::default() };
        let lines = [h("X-U", "${uri}-$host-$status", true), h("X-No", "$upstream_status", true)];
        assert_eq!(String::from_utf8(added_headers(502, &lines, &vars)).unwrap(), "X-U: /r-lab-502\r\n");
        let ret = crate::conf::Return { code: 200, text: Some("$uri|$request_method|$status|$upstream_status|$nginx_version|$hostname".into()) };
        assert_eq!(return_text(&ret, &crate::http::RequestVars { method: "GET".into(), ..vars }).as_deref(), Some("/r|GET|200||1.22.1|$hostname"));
        assert_eq!(insert_headers(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nbody\r\n\r\n".to_vec(), b"X: y\r\n"), b"HTTP/1.1 200 OK\r\nA: b\r\nX: y\r\n\r\nbody\r\n\r\n".to_vec());
        assert_eq!(insert_headers(b"H\r\n\r\n".to_vec(), b""), b"H\r\n\r\n".to_vec());
    }

    #[test]
    fn error_pages_and_interception() {
        use crate::conf::ErrorPage;
        let page = |codes: &[u16], overwrite, uri: &str| ErrorPage { codes: codes.to_vec(), overwrite, uri: uri.into() };
        let pages = [page(&[502, 504], None, "/down"), page(&[404], Some(200), "/nf"), page(&[500], Some(0), "/x"), page(&[502], Some(503), "/never")];
        assert_eq!(error_page_for(502, &pages).unwrap().uri, "/down", "the first that lists it");
        assert!(error_page_for(503, &pages).is_none());
        for (status, on, want) in [(502, true, true), (502, false, false), (503, true, false), (404, true, true), (200, true, false)] {
            assert_eq!(intercepts(status, on, &pages), want, "{status} {on}");
        }
        assert_eq!(error_page_status(502, &pages[0], 200), 502);
        assert_eq!(error_page_status(404, &pages[1], 403), 200);
        assert_eq!(error_page_status(500, &pages[2], 201), 201);
        assert_eq!(with_status(b"HTTP/1.1 200 OK\r\nA: b\r\n\r\nx".to_vec(), 502), b"HTTP/1.1 502 Bad Gateway\r\nA: b\r\n\r\nx".to_vec());
    }

    fn text_of(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn status_lines_as_nginx_parses_them() {
        for (input, want) in [
            (&b"HTTP/1.1 200 OK\r\n\r\n"[..], Some(("200 OK", 1001))),
            (b"HTTP/1.1 200\r\n\r\n", Some(("200", 1001))),
            (b"HTTP/2.0 200 OK\r\n\r\n", Some(("200 OK", 2000))),
            (b"HTTP/1.0 999 Weird\n\n", Some(("999 Weird", 1000))),
            (b"HTTP/1.1 403.1 Nope\r\n\r\n", Some(("403.1 Nope", 1001))),
        ] {
            let h = done(input);
            assert_eq!((String::from_utf8_lossy(h.status_line()).as_ref(), h.http_version), want.unwrap(), "{input:?}");
        }
        for bad in [&b"garbage\n"[..], b"HTTP/1.1 20 OK\r\n", b"\x00\xff", b"HTTP/0.9 200 OK\r\n", b"Content-Type: x\r\n", b"HTTP/1.1 2000 OK\r\n"] {
            assert_eq!(parse_head(bad), HeadParse::Http09, "{bad:?}");
        }
        for partial in [&b"HTTP/1.1 20"[..], b"HTT", b"", b"HTTP/1.1 200 OK\r"] {
            assert_eq!(parse_head(partial), HeadParse::Again, "{partial:?}");
        }
    }

    #[test]
    fn header_lines_and_invalid_excerpts() {
        let h = done(b"HTTP/1.1 200 OK\r\nX-A:  spaced value  \r\nContent-Length: 3\r\nContent-Length: 4\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert_eq!(h.headers().next(), Some((&b"X-A"[..], &b"spaced value"[..])));
        assert!(h.chunked);
        assert_eq!(h.content_length, -1, "chunked clears the length");
        assert_eq!(done(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").content_length, 4, "the last wins in 1.22");
        for (cl, want) in [("abc", -1), ("-1", -1), ("+5", -1), ("007", 7), ("99999999999999999999", -1)] {
            assert_eq!(done(format!("HTTP/1.1 200 OK\r\nContent-Length: {cl}\r\n\r\n").as_bytes()).content_length, want, "{cl}");
        }
        for (input, excerpt) in [
            (&b"HTTP/1.1 200 OK\r\nX-Bad header line\r\n\r\n"[..], "X-Bad\\x20..."),
            (b"HTTP/1.1 200 OK\r\nX-Bad: a\x00b\r\n\r\n", "X-Bad: a\\x00..."),
            (b"HTTP/1.1 200 OK\r\nX-Bad : a\r\n\r\n", "X-Bad\\x20..."),
            (b"HTTP/1.1 200 OK\r\nX-A: a\r\n folded\r\n\r\n", "\\x20..."),
        ] {
            assert_eq!(parse_head(input), HeadParse::Invalid(excerpt.into()), "{input:?}");
        }
        assert!(done(b"HTTP/1.0 200 OK\r\n\r\n").connection_close);
        assert!(done(b"HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n").connection_close);
    }

    #[test]
    fn client_heads_in_header_filter_order() {
        let up = done(b"HTTP/1.1 200 Fine\r\nX-One: 1\r\nServer: go\r\nContent-Type: text/plain\r\nDate: x\r\nKeep-Alive: t\r\nContent-Length: 2\r\n\r\n");
        let client = ClientSide { http11: true, keepalive: true, head_request: false, server_tokens: true, keepalive_header: None };
        let h = client_head(&up, client, "D");
        assert_eq!(
            String::from_utf8(h.bytes).unwrap(),
            "HTTP/1.1 200 Fine\r\nServer: nginx/1.22.1\r\nDate: D\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\nX-One: 1\r\n\r\n"
        );
        let up = done(b"HTTP/1.0 200 OK\r\n\r\n");
        assert!(client_head(&up, client, "D").chunked, "unknown length to an HTTP/1.1 client: chunked");
        let h10 = client_head(&up, ClientSide { http11: false, ..client }, "D");
        assert!(!h10.chunked && !h10.keepalive, "to HTTP/1.0: raw, then close");
    }

    #[test]
    fn the_server_line_names_nginx_version() {
        let up = done(b"HTTP/1.1 200 OK\r\n\r\n");
        let client = ClientSide { http11: true, keepalive: true, head_request: false, server_tokens: true, keepalive_header: None };
        for tokens in [true, false] {
            let h = client_head(&up, ClientSide { server_tokens: tokens, ..client }, "D");
            assert!(String::from_utf8(h.bytes).unwrap().starts_with(&format!("HTTP/1.1 200 OK\r\n{}Date: D\r\n", server_line(tokens))));
        }
    }

    #[test]
    fn error_pages_are_nginx_1_22_1s() {
        assert_eq!(error_page(502, true).len(), 157);
        assert_eq!(error_page(413, true).len(), 183);
        assert_eq!(error_page(502, false).len(), 150);
        assert!(error_keeps_connection(502, true) && !error_keeps_connection(413, true));
    }
}
