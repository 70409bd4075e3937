//! HTTP/1 heads and body framing, parsed once (httparse underneath). The
//! proxy reads upstream responses with these, the Go emulator reads
//! requests, the harness's client reads the proxy's responses, and the
//! oracle reads the bytes the Go model writes: one reading of the wire.

use crate::chunked::{self, Malformed};

/// The most header lines a head may carry (nginx's and Go's limits are by
/// size, not count; this only bounds httparse's array).
pub const MAX_HEADERS: usize = 100;

/// A head that is not HTTP/1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid HTTP/1 head")]
pub struct InvalidHead;

/// How a message body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BodyFraming {
    /// `Content-Length: n` (also 0 for bodiless responses).
    Length(u64),
    Chunked,
    /// Ends when the connection closes (a response without a length).
    CloseDelimited,
}

impl BodyFraming {
    /// Whether the end of the body is known before the connection closes,
    /// so a cut is visible to the reader.
    pub fn delimited(self) -> bool {
        self != BodyFraming::CloseDelimited
    }
}

/// Whether a response with this status may carry a body (RFC 9110 §6.4.1:
/// never for 1xx, 204 and 304).
pub fn body_allowed(status: u16) -> bool {
    !((100..200).contains(&status) || status == 204 || status == 304)
}

/// The parts of a head that decide framing and connection reuse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Framing {
    content_length: Option<u64>,
    chunked: bool,
    /// Tokens of the `Connection` header, lowercased.
    connection: Vec<String>,
}

fn framing_of(headers: &[httparse::Header<'_>]) -> Result<Framing, InvalidHead> {
    let mut f = Framing::default();
    for h in headers {
        let v = String::from_utf8_lossy(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            f.content_length = Some(v.trim().parse().map_err(|_| InvalidHead)?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            f.chunked = v.to_ascii_lowercase().split(',').any(|t| t.trim() == "chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            f.connection.extend(v.to_ascii_lowercase().split(',').map(|t| t.trim().to_string()));
        }
    }
    Ok(f)
}

fn owned(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers.iter().map(|h| (h.name.to_string(), String::from_utf8_lossy(h.value).into_owned())).collect()
}

/// A response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// `HTTP/1.1` status line (else HTTP/1.0).
    pub http11: bool,
    /// Names as the peer sent them.
    pub headers: Vec<(String, String)>,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// `Connection: close`, or an HTTP/1.0 status line without keep-alive:
    /// the peer will not keep the connection.
    pub connection_close: bool,
}

impl ResponseHead {
    /// Parses the head at the start of `buf`: `Ok(None)` until it is
    /// complete, else the head and its length in bytes.
    pub fn parse(buf: &[u8]) -> Result<Option<(ResponseHead, usize)>, InvalidHead> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut headers);
        let n = match r.parse(buf).map_err(|_| InvalidHead)? {
            httparse::Status::Partial => return Ok(None),
            httparse::Status::Complete(n) => n,
        };
        let status = r.code.ok_or(InvalidHead)?;
        let http11 = r.version == Some(1);
        let f = framing_of(r.headers)?;
        let has = |t: &str| f.connection.iter().any(|c| c == t);
        let head = ResponseHead {
            status,
            http11,
            headers: owned(r.headers),
            content_length: if f.chunked { None } else { f.content_length },
            chunked: f.chunked,
            connection_close: has("close") || (!http11 && !has("keep-alive")),
        };
        Ok(Some((head, n)))
    }

    /// How this response's body ends (RFC 9112 §6.3, in its order): no body
    /// for HEAD, 1xx, 204 and 304; then chunked; then Content-Length; else
    /// the connection's close.
    pub fn framing(&self, request_was_head: bool) -> BodyFraming {
        if request_was_head || !body_allowed(self.status) {
            BodyFraming::Length(0)
        } else if self.chunked {
            BodyFraming::Chunked
        } else if let Some(n) = self.content_length {
            BodyFraming::Length(n)
        } else {
            BodyFraming::CloseDelimited
        }
    }
}

/// A request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub target: String,
    /// `HTTP/1.1` request line (else HTTP/1.0).
    pub http11: bool,
    pub headers: Vec<(String, String)>,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// `Connection` tokens, lowercased.
    pub connection: Vec<String>,
}

impl RequestHead {
    /// Parses the head at the start of `buf`: `Ok(None)` until it is
    /// complete, else the head and its length in bytes.
    pub fn parse(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, InvalidHead> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Request::new(&mut headers);
        let n = match r.parse(buf).map_err(|_| InvalidHead)? {
            httparse::Status::Partial => return Ok(None),
            httparse::Status::Complete(n) => n,
        };
        let (Some(method), Some(target), Some(version)) = (r.method, r.path, r.version) else {
            return Err(InvalidHead);
        };
        let f = framing_of(r.headers)?;
        let head = RequestHead {
            method: method.to_string(),
            target: target.to_string(),
            http11: version >= 1,
            headers: owned(r.headers),
            content_length: f.content_length,
            chunked: f.chunked,
            connection: f.connection,
        };
        Ok(Some((head, n)))
    }

    /// Whether the `Connection` header lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.connection.iter().any(|c| c == token)
    }
}

/// What the next bytes of a body are (the caller consumes as told): the
/// chunked decoder's steps, for every framing.
pub use crate::chunked::Step;

/// The connection closed before a delimited body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection closed before the body ended")]
pub struct Incomplete;

/// Reads a body by its framing, without I/O: feed it the unconsumed bytes,
/// and tell it when the connection closed.
#[derive(Debug, Clone)]
pub struct BodyDecoder {
    kind: Kind,
    done: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Length(u64),
    Chunked(chunked::Decoder),
    UntilClose,
}

impl BodyDecoder {
    pub fn new(framing: BodyFraming) -> BodyDecoder {
        let kind = match framing {
            BodyFraming::Length(n) => Kind::Length(n),
            BodyFraming::Chunked => Kind::Chunked(chunked::Decoder::default()),
            BodyFraming::CloseDelimited => Kind::UntilClose,
        };
        BodyDecoder { done: matches!(kind, Kind::Length(0)), kind }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the body has a known end (length or chunked) rather than EOF.
    pub fn delimited(&self) -> bool {
        !matches!(self.kind, Kind::UntilClose)
    }

    /// Looks at the start of `buf` (the bytes not yet consumed).
    pub fn step(&mut self, buf: &[u8]) -> Result<Step, Malformed> {
        if self.done {
            return Ok(Step::Done(0));
        }
        match &mut self.kind {
            Kind::Length(left) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (buf.len() as u64).min(*left);
                *left -= n;
                self.done = *left == 0;
                Ok(Step::Data(n as usize))
            }
            Kind::UntilClose => Ok(if buf.is_empty() { Step::NeedMore } else { Step::Data(buf.len()) }),
            Kind::Chunked(d) => {
                let s = d.step(buf)?;
                self.done = matches!(s, Step::Done(_));
                Ok(s)
            }
        }
    }

    /// The peer closed the connection: that ends a close-delimited body, and
    /// cuts any other one short.
    pub fn eof(&mut self) -> Result<(), Incomplete> {
        match self.kind {
            _ if self.done => Ok(()),
            Kind::UntilClose => {
                self.done = true;
                Ok(())
            }
            _ => Err(Incomplete),
        }
    }
}

/// Decodes a whole buffer: the body bytes, and whether the body ended
/// (`eof` says the connection closed after `buf`).
pub fn decode_all(framing: BodyFraming, buf: &[u8], eof: bool) -> (usize, Result<bool, Malformed>) {
    let mut d = BodyDecoder::new(framing);
    let (mut at, mut body) = (0, 0);
    loop {
        match d.step(&buf[at..]) {
            Err(e) => return (body, Err(e)),
            Ok(Step::Skip(n)) => at += n,
            Ok(Step::Data(n)) => {
                at += n;
                body += n;
            }
            Ok(Step::Done(_)) => return (body, Ok(true)),
            Ok(Step::NeedMore) => return (body, Ok(eof && d.eof().is_ok())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_framing_follows_rfc_9112_order() {
        let parse = |s: &str| ResponseHead::parse(s.as_bytes()).unwrap().unwrap().0;
        let h = parse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(h.framing(false), BodyFraming::Chunked, "chunked wins over a length");
        assert_eq!(h.framing(true), BodyFraming::Length(0), "HEAD has no body");
        assert_eq!(parse("HTTP/1.1 204 No Content\r\n\r\n").framing(false), BodyFraming::Length(0));
        assert_eq!(parse("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n").framing(false), BodyFraming::Length(7));
        let h10 = parse("HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(h10.framing(false), BodyFraming::CloseDelimited);
        assert!(h10.connection_close && !h10.http11);
        assert!(!parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n").connection_close);
        assert!(parse("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n").connection_close);
        assert_eq!(ResponseHead::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"), Ok(None));
        assert_eq!(ResponseHead::parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"), Err(InvalidHead));
        assert_eq!(ResponseHead::parse(b"HTTP/1.1 200 OK\r\nBad Header Line\r\n\r\n"), Err(InvalidHead));
    }

    #[test]
    fn request_heads() {
        let head = "POST /x?a=1 HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\n";
        let (h, n) = RequestHead::parse(format!("{head}hello").as_bytes()).unwrap().unwrap();
        assert_eq!((h.method.as_str(), h.target.as_str(), h.http11, h.content_length, n), ("POST", "/x?a=1", false, Some(5), head.len()));
        assert!(h.connection_has("keep-alive"));
    }

    #[test]
    fn bodies_by_framing() {
        assert_eq!(decode_all(BodyFraming::Length(5), b"hel", true), (3, Ok(false)));
        assert_eq!(decode_all(BodyFraming::Length(3), b"hello", false), (3, Ok(true)));
        assert_eq!(decode_all(BodyFraming::CloseDelimited, b"hello", false), (5, Ok(false)));
        assert_eq!(decode_all(BodyFraming::CloseDelimited, b"hello", true), (5, Ok(true)));
        assert_eq!(decode_all(BodyFraming::Chunked, b"3\r\nabc\r\n0\r\n\r\n", false), (3, Ok(true)));
        assert_eq!(decode_all(BodyFraming::Chunked, b"3\r\nabc\r\n", true), (3, Ok(false)));
        assert_eq!(decode_all(BodyFraming::Chunked, b"zz\r\n", true).1, Err(Malformed));
    }
}
