//! One request's handler run and reply, without I/O: the script
//! interpreter that the emulator (`upstream-sim`'s connection loop) and
//! [`crate::serve`] both drive.
//!
//! It covers what `(*conn).serve` does from `serverHandler.ServeHTTP` to the
//! decision about the connection: the handler's calls ([`Op`]) on a
//! [`ResponseWriter`], then either `(*response).finishRequest` and
//! `shouldReuseConnection`, or, after a panic, the deferred recover's
//! `reqBody.Close()` and `finalFlush`. The driver asks [`Exchange::step`]
//! what to do next, does it, and answers where an answer is needed:
//!
//! ```
//! use go_model::exchange::{Exchange, Step};
//! use go_model::response::{BodyRead, HeaderInputs, EPOCH_DATE};
//! use go_model::rules::{RequestFacts, Reuse};
//!
//! let req = RequestFacts { http11: true, wants_close: false, wants_10_keep_alive: false, head: false, unread_expect_continue: false };
//! let mut ex = Exchange::new(go_model::handlers::script_for_target("/ok"), req, 0);
//! let mut wire = Vec::new();
//! let ended = loop {
//!     match ex.step() {
//!         Step::Sleep(_) | Step::HeadDecided { .. } | Step::CloseSocket => {}
//!         Step::Header => ex.header(HeaderInputs { keep_alives: true, date: EPOCH_DATE.into() }),
//!         Step::DiscardBody { .. } => ex.body_read(BodyRead { bytes: 0, failed: false, eof: true }),
//!         Step::Write(bytes) => {
//!             wire.extend(bytes);
//!             ex.wrote(Ok(()));
//!         }
//!         Step::Done(ended) => break ended,
//!     }
//! };
//! assert_eq!(ended.reuse, Reuse::Keep);
//! assert!(wire.ends_with(b"Content-Length: 3\r\n\r\nok\n"));
//! ```
//!
//! Internally each handler call runs against a snapshot of the writer with
//! the answers given so far; a question not yet answered stops it
//! ([`Suspended`]) and the call is run again from the snapshot once the
//! answer is in. The writer is deterministic, so the replay takes exactly
//! the path Go takes, and a failed socket write leaves exactly Go's state.

use crate::handlers::{Op, PanicKind, FILL, FILL_PIECE};
use crate::response::{BodyRead, HeaderInputs, Io, ResponseWriter, Suspended, WriteFailed};
use crate::rules::{self, RequestFacts, Reuse};
use labkit::wire::BodyFraming;
use std::time::Duration;

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The handler sleeps (`time.Sleep`); nothing to answer.
    Sleep(Duration),
    /// `chunkWriter.writeHeader` starts: answer with [`Exchange::header`].
    Header,
    /// The head is decided (its bytes follow); nothing to answer.
    HeadDecided { status: u16, framing: BodyFraming },
    /// Read and discard up to `max` request body bytes (never past the
    /// body's end): answer with [`Exchange::body_read`].
    DiscardBody { max: u64 },
    /// One `write(2)` of these bytes: answer with [`Exchange::wrote`].
    Write(Vec<u8>),
    /// `rwc.Close()` now: a `chunkWriter` write failed. Nothing to answer.
    CloseSocket,
    /// The handler is over and the connection's fate decided.
    Done(Ended),
}

/// How the handler ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HandlerEnd {
    Returned,
    Panicked(PanicKind),
}

/// The end of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub handler: HandlerEnd,
    /// After a panic: [`Reuse::Close`] (the deferred recover closes).
    pub reuse: Reuse,
    /// A socket write failed (`c.werr`).
    pub write_failed: bool,
}

#[derive(Debug, Clone)]
enum Answer {
    Ack,
    Header(HeaderInputs),
    Body(BodyRead),
    Wrote(Result<(), WriteFailed>),
}

/// Where the interpreter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Running script op `n`.
    Op(usize),
    /// Script op `op`, an [`Op::Fill`], with `done` bytes written.
    Fill { op: usize, done: u64 },
    /// The script ran out: `finishRequest`.
    Finish,
    /// The deferred recover after a panic.
    Recover(PanicKind),
    Done(Ended),
}

/// One request's handler run and reply; see the module docs.
#[derive(Debug, Clone)]
pub struct Exchange {
    script: Vec<Op>,
    phase: Phase,
    /// The writer as it was when the current phase started.
    writer: ResponseWriter,
    /// The answers given during the current phase, in order.
    tape: Vec<Answer>,
}

impl Exchange {
    /// An exchange for a request with these facts and `body_len` declared
    /// body bytes, whose handler makes the calls of `script`.
    pub fn new(script: Vec<Op>, req: RequestFacts, body_len: u64) -> Exchange {
        Exchange { script, phase: Phase::Op(0), writer: ResponseWriter::new(req, body_len), tape: Vec::new() }
    }

    /// An exchange for a request with a chunked body (its length unknown).
    pub fn with_chunked_body(script: Vec<Op>, req: RequestFacts) -> Exchange {
        Exchange { script, phase: Phase::Op(0), writer: ResponseWriter::with_chunked_body(req), tape: Vec::new() }
    }

    /// What to do next. Asking again without answering returns the same step.
    pub fn step(&mut self) -> Step {
        loop {
            if let Phase::Done(ended) = self.phase {
                return Step::Done(ended);
            }
            let mut w = self.writer.clone();
            let mut tape = Tape { answers: &self.tape, pos: 0, need: None };
            match run_phase(self.phase, &self.script, &mut w, &mut tape) {
                Ok(next) => {
                    self.writer = w;
                    self.tape.clear();
                    self.phase = next;
                }
                Err(Suspended) => {
                    let need = tape.need.take().expect("a suspended phase says what it needs");
                    if matches!(need, Step::Sleep(_) | Step::HeadDecided { .. } | Step::CloseSocket) {
                        // Notifications are done once reported.
                        self.tape.push(Answer::Ack);
                    }
                    return need;
                }
            }
        }
    }

    /// The answer to [`Step::Header`].
    pub fn header(&mut self, inputs: HeaderInputs) {
        self.tape.push(Answer::Header(inputs));
    }

    /// The answer to [`Step::DiscardBody`].
    pub fn body_read(&mut self, read: BodyRead) {
        self.tape.push(Answer::Body(read));
    }

    /// The answer to [`Step::Write`].
    pub fn wrote(&mut self, result: Result<(), WriteFailed>) {
        self.tape.push(Answer::Wrote(result));
    }
}

/// Runs one phase to its end, or until an answer is missing.
fn run_phase(phase: Phase, script: &[Op], w: &mut ResponseWriter, io: &mut Tape) -> Result<Phase, Suspended> {
    Ok(match phase {
        Phase::Op(n) => {
            let Some(op) = script.get(n) else { return Ok(Phase::Finish) };
            match op {
                Op::SetHeader(name, value) => w.set_header(name, value),
                Op::WriteHeader(status) => w.write_header(*status),
                // The handler ignores Write's error, as the fixture does.
                Op::Write(bytes) => drop(w.write(io, bytes)?),
                Op::Fill(_) => return Ok(Phase::Fill { op: n, done: 0 }),
                Op::Flush => w.flush(io)?,
                Op::Sleep(d) => io.ask(Step::Sleep(*d)).map(drop)?,
                Op::Panic(kind) => return Ok(Phase::Recover(*kind)),
            }
            Phase::Op(n + 1)
        }
        Phase::Fill { op, done } => {
            let total = match script.get(op) {
                Some(Op::Fill(total)) => *total,
                other => panic!("Phase::Fill at {other:?}"),
            };
            // One bounded piece per phase, so a replay rebuilds at most one.
            let piece = (total - done).min(FILL_PIECE);
            if piece > 0 {
                let _ = w.write(io, &vec![FILL; piece as usize])?;
            }
            if done + piece < total {
                Phase::Fill { op, done: done + piece }
            } else {
                Phase::Op(op + 1)
            }
        }
        Phase::Finish => {
            w.finish_request(io)?;
            let state = w.reply_state();
            Phase::Done(Ended { handler: HandlerEnd::Returned, reuse: rules::after_reply(&state), write_failed: state.write_failed })
        }
        Phase::Recover(kind) => {
            // The deferred func in (*conn).serve: reqBody.Close(), then
            // c.close() = finalFlush (conn.bufw only; response.w and the
            // terminating chunk are lost) and rwc.Close().
            w.close_body(io)?;
            w.final_flush(io)?;
            Phase::Done(Ended { handler: HandlerEnd::Panicked(kind), reuse: Reuse::Close, write_failed: w.write_failed() })
        }
        Phase::Done(ended) => Phase::Done(ended),
    })
}

/// The answers of the current phase, replayed in order; the first
/// question past them suspends the phase.
struct Tape<'a> {
    answers: &'a [Answer],
    pos: usize,
    need: Option<Step>,
}

impl Tape<'_> {
    fn ask(&mut self, need: Step) -> Result<Answer, Suspended> {
        match self.answers.get(self.pos) {
            Some(a) => {
                self.pos += 1;
                Ok(a.clone())
            }
            None => {
                self.need = Some(need);
                Err(Suspended)
            }
        }
    }
}

/// The driver answered a step with the wrong kind of answer: a bug in the
/// driver, not a condition of the connection.
fn mismatch(asked: &str, got: &Answer) -> ! {
    panic!("exchange driver answered {asked} with {got:?}")
}

impl Io for Tape<'_> {
    fn header_inputs(&mut self) -> Result<HeaderInputs, Suspended> {
        match self.ask(Step::Header)? {
            Answer::Header(h) => Ok(h),
            a => mismatch("Step::Header", &a),
        }
    }

    fn head_decided(&mut self, status: u16, framing: BodyFraming) -> Result<(), Suspended> {
        self.ask(Step::HeadDecided { status, framing }).map(drop)
    }

    fn discard_body(&mut self, max: u64) -> Result<BodyRead, Suspended> {
        match self.ask(Step::DiscardBody { max })? {
            Answer::Body(r) => Ok(r),
            a => mismatch("Step::DiscardBody", &a),
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<Result<(), WriteFailed>, Suspended> {
        // Only the missing answer needs the bytes; replayed writes skip the copy.
        if let Some(a) = self.answers.get(self.pos) {
            self.pos += 1;
            return match a {
                Answer::Wrote(r) => Ok(*r),
                a => mismatch("Step::Write", a),
            };
        }
        self.need = Some(Step::Write(bytes.to_vec()));
        Err(Suspended)
    }

    fn close(&mut self) -> Result<(), Suspended> {
        self.ask(Step::CloseSocket).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::script_for_target;
    use crate::response::EPOCH_DATE;

    const GET11: RequestFacts = RequestFacts { http11: true, wants_close: false, wants_10_keep_alive: false, head: false, unread_expect_continue: false };

    /// Drives an exchange; socket writes fail from the `fail_from`th on.
    fn drive(target: &str, fail_from: usize) -> (Vec<Step>, Ended) {
        let mut ex = Exchange::new(script_for_target(target), GET11, 0);
        let mut steps = Vec::new();
        let mut writes = 0;
        loop {
            let s = ex.step();
            match &s {
                Step::Header => ex.header(HeaderInputs { keep_alives: true, date: EPOCH_DATE.into() }),
                Step::DiscardBody { .. } => ex.body_read(BodyRead { bytes: 0, failed: false, eof: true }),
                Step::Write(_) => {
                    writes += 1;
                    ex.wrote(if writes > fail_from { Err(WriteFailed) } else { Ok(()) });
                }
                Step::Done(e) => return (steps, *e),
                _ => {}
            }
            steps.push(s);
        }
    }

    fn kinds(steps: &[Step]) -> Vec<String> {
        steps
            .iter()
            .map(|s| match s {
                Step::Write(b) => format!("write {}", b.len()),
                Step::Sleep(d) => format!("sleep {}", d.as_millis()),
                Step::HeadDecided { status, .. } => format!("head {status}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_same_question_until_answered() {
        let mut ex = Exchange::new(script_for_target("/ok"), GET11, 0);
        assert_eq!(ex.step(), Step::Header);
        assert_eq!(ex.step(), Step::Header);
    }

    #[test]
    fn partial_with_the_second_write_failing() {
        // The head is 125 bytes; with "10000\r\n" it leaves 3964 bytes of
        // conn.bufw for the chunk, the other 61572 go straight through.
        let (steps, ended) = drive("/partial?bytes=65536&ms=200", 3);
        assert_eq!(
            kinds(&steps),
            ["Header", "head 200", "write 4096", "write 61572", "write 2", "sleep 200", "write 4096", "CloseSocket"]
        );
        assert_eq!(ended, Ended { handler: HandlerEnd::Returned, reuse: Reuse::Close, write_failed: true });
    }

    #[test]
    fn panic_after_flush_flushes_conn_bufw_only() {
        // Flush: head (125) + "3e8\r\n" + 1000 bytes + "\r\n" in one write;
        // after the panic nothing more (no terminating chunk).
        let (steps, ended) = drive("/panic-after-flush?bytes=1000&ms=5", usize::MAX);
        assert_eq!(kinds(&steps), ["Header", "head 200", "write 1132", "sleep 5"]);
        assert_eq!(ended.handler, HandlerEnd::Panicked(PanicKind::Value));
        assert_eq!(ended.reuse, Reuse::Close);
    }
}
