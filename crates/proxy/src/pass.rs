//! `ngx_http_upstream_init_request` to the response header: executes the
//! steps of `nginx_model::attempt::Attempts` (connect, send, read header,
//! retry or not) and hands the chosen response to the client side. What to
//! connect to, whether to retry and what to answer are decided there.

use crate::client::{client_closed, ClientRequest, RequestBody};
use crate::events::ProxyEventKind;
use crate::keepalive::UpstreamConn;
use crate::server::{Runtime, UpstreamRt};
use crate::upstream::{self, Head};
use bytes::BytesMut;
use nginx_model::attempt::{Attempts, Step};
use nginx_model::failure::Failure;
use nginx_model::attempt::LogLine;
use nginx_model::logs::Level;
use nginx_model::resolve::ResolvedLocation;
use nginx_model::response::{UpstreamHead, NO_VALID_HEADER};
use std::sync::Arc;
use std::time::Instant;

/// What the attempts came to.
// Returned once per request and moved straight into a match: boxing the
// large variant would cost an allocation per response.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Answer {
    /// nginx answers with its own error page.
    Error { status: u16, attempts: Attempts },
    /// The client closed while nginx waited on the upstream: 499.
    ClientClosed { attempts: Attempts },
    /// The upstream's response goes to the client.
    Pass { status: u16, attempts: Attempts, conn: UpstreamConn, head: Option<UpstreamHead>, buf: BytesMut },
}

/// Writes the lines an attempt step produced, with the request's context.
pub(crate) fn write_log(rt: &Runtime, creq: &ClientRequest, lines: Vec<nginx_model::attempt::LogLine>) {
    for l in lines {
        creq.log(rt, l.level, &l.text, Some(&l.upstream));
    }
}

pub(crate) async fn proxy_pass(
    rt: &Arc<Runtime>,
    loc: &ResolvedLocation,
    up: &Arc<UpstreamRt>,
    creq: &ClientRequest,
    head: &[u8],
    body: &mut RequestBody,
    client: &tokio::net::TcpStream,
) -> Answer {
    let ctx = loc.retry_context(creq.method(), &up.conf);
    let live = up.rr.lock().tries();
    let mut attempts = Attempts::new(ctx, up.name.clone(), live, loc.next_upstream_tries, Instant::now());
    let mut conn: Option<UpstreamConn> = None;
    // The attempt's peer, for its failure's line (nginx names it when
    // connect() fails at once).
    let mut last_peer: Option<std::net::SocketAddr> = None;
    let mut got: Option<(Option<UpstreamHead>, BytesMut)> = None;
    let mut step = attempts.start(&mut up.rr.lock(), Instant::now());
    // When the event-loop pass that asks for a connection began: the
    // client's request for the first try, each failure for a retry.
    let mut pass = creq.start;
    loop {
        write_log(rt, creq, attempts.take_log());
        let outcome: Result<Step, Failure> = match step {
            Step::Connect(pid) => {
                let peer = up.rr.lock().peer(pid).addr.addr;
                last_peer = Some(peer);
                let cached = up.cache.checkout(peer, pass).await;
                let mut socket = None;
                if let (None, Some(local)) = (&cached, loc.bind) {
                    match upstream::bound_socket(peer, local) {
                        Ok(s) => socket = Some(s),
                        Err(e) => {
                            let errno = nginx_model::failure::errno_of(&e);
                            let name = if local.port() == 0 { local.ip().to_string() } else { local.to_string() };
                            let text = format!("bind({name}) failed ({errno}: {})", nginx_model::failure::strerror(errno));
                            step = attempts.local_error(&mut up.rr.lock(), text, Instant::now());
                            continue;
                        }
                    }
                }
                let c = match cached {
                    Some(c) => Ok((c, true)),
                    None => upstream::connect(peer, loc.connect_timeout, socket).await.map(|stream| {
                        // The local port names the connection on the timeline
                        // only: no getsockname() when nothing is recorded.
                        let local_port = if rt.events.is_recording() { stream.local_addr().map(|a| a.port()).unwrap_or(0) } else { 0 };
                        (UpstreamConn::new(stream, peer, local_port), false)
                    }),
                };
                match c {
                    Ok((mut c, cached)) => {
                        c.requests += 1;
                        rt.events.push(creq.no, ProxyEventKind::UpstreamConn { peer, local_port: c.local_port, cached });
                        conn = Some(c);
                        Ok(attempts.connected(cached, Instant::now()))
                    }
                    Err(f) => {
                        rt.events.push(creq.no, ProxyEventKind::ConnectFailed { peer });
                        Err(f)
                    }
                }
            }
            Step::Send => {
                let Some(c) = conn.as_mut() else { return Answer::Error { status: 502, attempts } };
                let sent = tokio::select! {
                    biased;
                    r = upstream::send(&mut c.stream, head, body, loc.send_timeout, loc.client_body_buffer_size) => r,
                    e = client_closed(client) => return client_gone(rt, up, creq, attempts, e, &c.peer.to_string()),
                };
                match sent {
                    Ok(n) => {
                        rt.events.push(creq.no, ProxyEventKind::RequestSent { local_port: c.local_port, bytes: n });
                        Ok(attempts.sent())
                    }
                    Err(f) => Err(f),
                }
            }
            Step::ReadHeader => {
                let Some(c) = conn.as_mut() else { return Answer::Error { status: 502, attempts } };
                let read = tokio::select! {
                    biased;
                    r = upstream::read_head(&mut c.stream, loc.read_timeout, loc.buffer_size) => r,
                    e = client_closed(client) => return client_gone(rt, up, creq, attempts, e, &c.peer.to_string()),
                };
                match read {
                    Ok((h, buf)) => {
                        // HTTP/0.9: logged, then passed as a 200 (`$upstream_status`).
                        let status = match &h {
                            Head::Http09 => {
                                creq.log(rt, Level::Error, &format!("{NO_VALID_HEADER} while reading response header from upstream"), Some(&c.peer.to_string()));
                                200
                            }
                            Head::Http(h) => h.status,
                        };
                        rt.events.push(creq.no, ProxyEventKind::HeaderReceived { local_port: c.local_port, status });
                        let next = attempts.header(&mut up.rr.lock(), status, Instant::now());
                        if matches!(next, Step::Pass { .. }) {
                            got = Some((match h { Head::Http(h) => Some(h), Head::Http09 => None }, buf));
                        } else {
                            // A status listed in proxy_next_upstream: that attempt failed.
                            failed_event(rt, creq, conn.take(), Failure::Status(status), last_peer, &attempts, next);
                        }
                        Ok(next)
                    }
                    Err(f) => Err(f),
                }
            }
            Step::Pass { status } => {
                let (Some(c), Some((head, buf))) = (conn.take(), got.take()) else {
                    return Answer::Error { status: 502, attempts };
                };
                return Answer::Pass { status, attempts, conn: c, head, buf };
            }
            Step::Finalize { status } => return Answer::Error { status, attempts },
        };
        step = match outcome {
            Ok(next) => next,
            Err(f) => {
                pass = Instant::now();
                let next = attempts.failed(&mut up.rr.lock(), f.clone(), Instant::now());
                failed_event(rt, creq, conn.take(), f, last_peer, &attempts, next);
                next
            }
        };
    }
}

/// The client left while the request was sent or its answer awaited. nginx
/// is still "sending request to upstream" until the first byte of the
/// header arrives, so that is the action its `[info]` line names.
fn client_gone(rt: &Runtime, up: &UpstreamRt, creq: &ClientRequest, mut attempts: Attempts, errno: Option<i32>, peer: &str) -> Answer {
    creq.log(rt, Level::Info, &nginx_model::logs::client_closed_text(errno, "sending request to upstream"), Some(peer));
    attempts.client_closed(&mut up.rr.lock(), Instant::now());
    Answer::ClientClosed { attempts }
}

/// Timeline events for a failed attempt; dropping `conn` closes it.
fn failed_event(rt: &Runtime, creq: &ClientRequest, conn: Option<UpstreamConn>, f: Failure, peer: Option<std::net::SocketAddr>, attempts: &Attempts, next: Step) {
    let local_port = conn.map(|c| c.local_port).unwrap_or(0);
    rt.events.push_with(creq.no, || ProxyEventKind::AttemptFailed { local_port, class: f.class(), log: f.log_line(&peer.map(|p| p.to_string()).unwrap_or_default()).map(|(_, text)| text) });
    if let Step::Connect(_) = next {
        rt.events.push(creq.no, ProxyEventKind::Retry { tries_left: attempts.tries() });
    }
}

/// Lines the pump adds after the attempts (the body's failure, a warning).
pub(crate) fn body_line(level: Level, text: String, upstream: &str) -> LogLine {
    LogLine { level, text, upstream: upstream.to_string() }
}
