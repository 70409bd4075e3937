//! An incremental HTTP/1.1 chunked-body decoder, as a pure state machine.
//! The proxy reads upstream bodies with it, the oracle reads the bytes the Go
//! model writes with it, and the harness's wire client reads responses with
//! it: one parser for all three.

/// What the next bytes of the buffer are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Not enough bytes to decide; read more.
    NeedMore,
    /// The first `n` bytes are framing (size line, CRLF, trailer): drop them.
    Skip(usize),
    /// The first `n` bytes are body data.
    Data(usize),
    /// The first `n` bytes end the body (last chunk and trailers).
    Done(usize),
}

/// The bytes are not chunked encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct Malformed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Decoder {
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

impl Decoder {
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Looks at the start of `buf` (the bytes not yet consumed). The caller
    /// consumes what the step says, then calls again.
    pub fn step(&mut self, buf: &[u8]) -> Result<Step, Malformed> {
        let line = || buf.windows(2).position(|w| w == b"\r\n");
        Ok(match self.state {
            State::Done => Step::Done(0),
            State::Data(left) => {
                if buf.is_empty() {
                    return Ok(Step::NeedMore);
                }
                let n = (buf.len() as u64).min(left);
                self.state = if n == left { State::DataEnd } else { State::Data(left - n) };
                Step::Data(n as usize)
            }
            // The size line ("1a;ext=v\r\n") is httparse's, as hyper's decoder uses it.
            State::Size => match httparse::parse_chunk_size(buf).map_err(|_| Malformed)? {
                httparse::Status::Partial => Step::NeedMore,
                httparse::Status::Complete((n, size)) => {
                    self.state = if size == 0 { State::Trailers } else { State::Data(size) };
                    Step::Skip(n)
                }
            },
            State::DataEnd => match line() {
                None => Step::NeedMore,
                Some(0) => {
                    self.state = State::Size;
                    Step::Skip(2)
                }
                Some(_) => return Err(Malformed),
            },
            State::Trailers => match line() {
                None => Step::NeedMore,
                Some(0) => {
                    self.state = State::Done;
                    Step::Done(2)
                }
                Some(eol) => Step::Skip(eol + 2),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces of `piece` bytes; returns (body, done).
    fn decode(input: &[u8], piece: usize) -> (Vec<u8>, bool) {
        let mut d = Decoder::default();
        let (mut buf, mut body, mut fed) = (Vec::new(), Vec::new(), 0);
        loop {
            match d.step(&buf).expect("well-formed") {
                Step::NeedMore if fed >= input.len() => return (body, false),
                Step::NeedMore => {
                    let end = (fed + piece).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
                Step::Skip(n) => drop(buf.drain(..n)),
                Step::Data(n) => body.extend(buf.drain(..n)),
                Step::Done(n) => {
                    buf.drain(..n);
                    return (body, true);
                }
            }
        }
    }

    #[test]
    fn decodes_in_any_piece_size() {
        let wire = b"3\r\nabc\r\na;ext=1\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
        for piece in [1, 2, 5, 100] {
            assert_eq!(decode(wire, piece), (b"abc0123456789".to_vec(), true), "piece {piece}");
        }
    }

    #[test]
    fn a_cut_body_is_not_done() {
        assert_eq!(decode(b"3\r\nabc\r\n4\r\nde", 3), (b"abcde".to_vec(), false));
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(Decoder::default().step(b"zz\r\n"), Err(Malformed));
        let mut d = Decoder::default();
        assert_eq!(d.step(b"1\r\n"), Ok(Step::Skip(3)));
        assert_eq!(d.step(b"a"), Ok(Step::Data(1)));
        assert_eq!(d.step(b"XY"), Ok(Step::NeedMore), "no line end yet");
        assert_eq!(d.step(b"XY\r\n"), Err(Malformed), "data must end with CRLF");
    }
}
