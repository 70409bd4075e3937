//! The listener and the server-wide state Go keeps in `http.Server`:
//! tracked connections and their states (for Shutdown's idle sweep),
//! `inShutdown`, `disableKeepAlives`, plus the lab's handler-run counters.

use go_model::config::ServerConfig;
use crate::conn::Conn;
use crate::events::{EventKind, EventLog};
use labkit::events::Retention;
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    New,
    Active,
    Idle,
}

struct Tracked {
    state: ConnState,
    since: Instant,
    close: CancellationToken,
}

/// How many distinct paths get their own handler-run counter.
pub const MAX_COUNTED_PATHS: usize = 256;
/// The counter for every path past those.
pub const OTHER_PATHS: &str = "(other paths)";

pub(crate) struct Shared {
    pub cfg: ServerConfig,
    pub events: EventLog,
    keep_alives: AtomicBool,
    in_shutdown: AtomicBool,
    handler_runs: Mutex<BTreeMap<String, u64>>,
    conns: Mutex<HashMap<u64, Tracked>>,
}

impl Shared {
    /// Go's `doKeepAlives()`.
    pub fn do_keep_alives(&self) -> bool {
        self.keep_alives.load(Ordering::SeqCst) && !self.in_shutdown.load(Ordering::SeqCst)
    }

    pub fn in_shutdown(&self) -> bool {
        self.in_shutdown.load(Ordering::SeqCst)
    }

    pub fn set_state(&self, id: u64, state: ConnState) {
        if let Some(t) = self.conns.lock().get_mut(&id) {
            t.state = state;
            t.since = Instant::now();
        }
    }

    pub fn forget(&self, id: u64) {
        self.conns.lock().remove(&id);
    }

    /// Counts a handler start. Paths are the client's to choose, so only the
    /// first `MAX_COUNTED_PATHS` get their own counter.
    pub fn count_handler_run(&self, path: &str) {
        let mut runs = self.handler_runs.lock();
        let key = if runs.contains_key(path) || runs.len() < MAX_COUNTED_PATHS { path } else { OTHER_PATHS };
        *runs.entry(key.to_string()).or_default() += 1;
    }

    /// Every open connection is in `StateIdle` (none mid-request).
    fn all_idle(&self) -> bool {
        self.conns.lock().values().all(|t| t.state == ConnState::Idle)
    }

    /// `closeIdleConns`: close idle connections, and new ones older than 5 s
    /// (golang/go#22682). Returns whether no connection is left, and the
    /// connections this sweep told to close.
    fn close_idle_conns(&self) -> (bool, Vec<u64>) {
        let conns = self.conns.lock();
        let mut quiescent = true;
        let mut swept = Vec::new();
        for (id, t) in conns.iter() {
            let idle = t.state == ConnState::Idle
                || (t.state == ConnState::New && t.since.elapsed() > Duration::from_secs(5));
            if idle {
                if !t.close.is_cancelled() {
                    swept.push(*id);
                }
                t.close.cancel();
            } else {
                quiescent = false;
            }
        }
        (quiescent && conns.values().all(|t| t.close.is_cancelled()), swept)
    }
}

/// A running emulated Go server.
pub struct UpstreamSim {
    addr: SocketAddr,
    shared: Arc<Shared>,
    control: Control,
    accept_paused: watch::Sender<bool>,
    /// The listening socket while the accept loop holds it (for fd passing).
    listener: std::sync::Weak<TcpListener>,
}

/// A cloneable handle for the server-wide operations (Shutdown, crash), so
/// they can run in another task while the server keeps serving.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
    stop_accepting: CancellationToken,
    crash: CancellationToken,
}

impl Control {
    /// `Shutdown(ctx)`: close the listener, then close idle connections on a
    /// 1 ms → 500 ms backoff until none is left or `grace` passes. Returns
    /// whether the server became quiescent in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.shared.in_shutdown.store(true, Ordering::SeqCst);
        self.shared.events.push(0, EventKind::ShutdownStarted);
        let deadline = tokio::time::Instant::now() + grace;
        // Go closes the listeners synchronously, first.
        self.stop_accepting.cancel();
        self.shared
            .events
            .wait_for(grace, |ev| ev.iter().any(|e| matches!(e.kind, EventKind::ListenerClosed)))
            .await;
        let mut interval = Duration::from_millis(1);
        let mut first = true;
        loop {
            let (quiescent, swept) = self.shared.close_idle_conns();
            // Go's closeIdleConns closes each socket itself (`c.rwc.Close()`)
            // before Shutdown goes on; here each connection's own task closes
            // it, so wait (within the grace) until those closes are done, or
            // a loaded machine lets a request reach a socket Go had closed.
            // Not under the shutdown-race knob: its closes wait for that
            // request on purpose.
            if !swept.is_empty() && self.shared.cfg.shutdown_race.is_none() {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let closed = |ev: &[crate::ConnEvent]| {
                    swept.iter().all(|id| crate::events::closed_event(ev, *id).is_some())
                };
                self.shared.events.wait_for(left, closed).await;
            }
            if first {
                // Every connection idle at this moment now closes (or, with
                // the race knob, will close as its next request arrives).
                self.shared.events.push(0, EventKind::IdleSwept);
                first = false;
            }
            if quiescent {
                return true;
            }
            if tokio::time::Instant::now() + interval > deadline {
                return false;
            }
            tokio::time::sleep(interval).await;
            interval = (interval * 2).min(Duration::from_millis(500));
        }
    }

    /// An abrupt exit: the listener and every connection close at once, as
    /// the kernel closes a dead process's sockets.
    pub fn crash(&self) {
        self.stop_accepting.cancel();
        self.crash.cancel();
    }
}

impl UpstreamSim {
    /// Binds (with `cfg.backlog`) and starts serving. Bind `127.0.0.1:0` for
    /// an ephemeral port.
    pub async fn start(cfg: ServerConfig, bind: SocketAddr) -> io::Result<UpstreamSim> {
        Self::start_with_epoch(cfg, bind, Instant::now(), Retention::LAB).await
    }

    /// Like `start`, with event timestamps relative to `epoch` (so the
    /// scenario runner can put client, proxy and upstream on one clock).
    /// `retention` bounds the events kept in memory (the `upstream-sim`
    /// binary keeps none).
    pub async fn start_with_epoch(cfg: ServerConfig, bind: SocketAddr, epoch: Instant, retention: Retention) -> io::Result<UpstreamSim> {
        let listener = listen(bind, cfg.backlog, cfg.reuse_port)?;
        Self::serve_listener(cfg, listener, epoch, retention)
    }

    /// A server on a listening socket another one passed on (fd passing:
    /// systemd socket activation, tableflip): a duplicate of its descriptor,
    /// see [`listener_dup`](Self::listener_dup). The queue is the same
    /// socket's, so connections waiting in it are accepted here.
    pub async fn start_on_listener(cfg: ServerConfig, listener: std::net::TcpListener, epoch: Instant, retention: Retention) -> io::Result<UpstreamSim> {
        listener.set_nonblocking(true)?;
        Self::serve_listener(cfg, TcpListener::from_std(listener)?, epoch, retention)
    }

    /// A duplicate of the listening socket's descriptor (`dup(2)`), while it
    /// is open: the socket stays open, with its accept queue, as long as
    /// either descriptor does.
    pub fn listener_dup(&self) -> io::Result<std::net::TcpListener> {
        use std::os::fd::AsFd;
        let l = self.listener.upgrade().ok_or_else(|| io::Error::other("the listener is closed"))?;
        let fd = l.as_fd().try_clone_to_owned()?;
        Ok(std::net::TcpListener::from(fd))
    }

    fn serve_listener(cfg: ServerConfig, listener: TcpListener, epoch: Instant, retention: Retention) -> io::Result<UpstreamSim> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            keep_alives: AtomicBool::new(cfg.keep_alives),
            in_shutdown: AtomicBool::new(false),
            events: EventLog::new(epoch, retention),
            handler_runs: Mutex::new(BTreeMap::new()),
            conns: Mutex::new(HashMap::new()),
            cfg: cfg.clone(),
        });
        let stop_accepting = CancellationToken::new();
        let crash = CancellationToken::new();
        let (accept_paused, paused_rx) = watch::channel(cfg.accept_paused);
        let listener = Arc::new(listener);
        let weak = Arc::downgrade(&listener);
        tokio::spawn(accept_loop(listener, shared.clone(), stop_accepting.clone(), crash.clone(), paused_rx));
        tracing::info!(target: "upstream_sim", %addr, ?cfg, "listening");
        let control = Control { shared: shared.clone(), stop_accepting, crash };
        Ok(UpstreamSim { addr, shared, control, accept_paused, listener: weak })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn events(&self) -> &EventLog {
        &self.shared.events
    }

    pub fn config(&self) -> &ServerConfig {
        &self.shared.cfg
    }

    /// How many times each path's handler has started.
    pub fn handler_runs(&self) -> BTreeMap<String, u64> {
        self.shared.handler_runs.lock().clone()
    }

    pub fn handler_runs_for(&self, path: &str) -> u64 {
        self.handler_runs().get(path).copied().unwrap_or(0)
    }

    /// Waits (at most `limit`) until every open connection is idle: the
    /// reply that ended a request reaches the client before Go marks the
    /// connection `StateIdle` (`c.setState(c.rwc, StateIdle, ...)` in
    /// `conn.serve`), so a client that saw the response cannot know it.
    /// The state is set before the `IdleWait` event, which wakes this.
    pub async fn wait_all_idle(&self, limit: Duration) -> bool {
        let shared = self.shared.clone();
        self.shared.events.wait_for(limit, move |_| shared.all_idle()).await.0
    }

    /// `SetKeepAlivesEnabled`: disabling also closes idle connections once.
    pub fn set_keep_alives_enabled(&self, on: bool) {
        self.shared.keep_alives.store(on, Ordering::SeqCst);
        if !on {
            self.shared.close_idle_conns();
        }
    }

    /// Lab knob: stop (or resume) calling accept(). Pausing returns once the
    /// accept loop has really stopped (its `AcceptPaused` event), so nothing
    /// is taken off the accept queue afterwards.
    pub async fn pause_accept(&self, paused: bool) {
        if *self.accept_paused.borrow() == paused {
            return;
        }
        let before = self.paused_events();
        let _ = self.accept_paused.send(paused);
        if paused {
            self.shared
                .events
                .wait_for(Duration::from_secs(5), |ev| ev.iter().filter(|e| matches!(e.kind, EventKind::AcceptPaused)).count() > before)
                .await;
        }
    }

    fn paused_events(&self) -> usize {
        self.shared.events.snapshot().iter().filter(|e| matches!(e.kind, EventKind::AcceptPaused)).count()
    }

    /// `Shutdown(ctx)`; see [`Control::shutdown`].
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.control.shutdown(grace).await
    }

    /// An abrupt exit; see [`Control::crash`].
    pub fn crash(&self) {
        self.control.crash();
    }

    /// [`crash`](Self::crash), returning once the listener and every
    /// connection are closed (at most `limit`): a dead process's sockets
    /// are closed by the kernel when it exits, all at once, while here each
    /// connection's task closes its own and a loaded machine may run it
    /// late. Returns whether all closed in time.
    pub async fn crash_and_wait(&self, limit: Duration) -> bool {
        self.crash();
        let all_closed = |ev: &[crate::ConnEvent]| {
            ev.iter().any(|e| matches!(e.kind, EventKind::ListenerClosed))
                && ev
                    .iter()
                    .filter(|e| matches!(e.kind, EventKind::Accepted { .. }))
                    .all(|a| crate::events::closed_event(ev, a.conn).is_some())
        };
        self.shared.events.wait_for(limit, all_closed).await.0
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }
}

impl Drop for UpstreamSim {
    fn drop(&mut self) {
        self.crash();
    }
}

fn listen(bind: SocketAddr, backlog: u32, reuse_port: bool) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(bind), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&bind.into())?;
    sock.listen(backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(sock.into())
}

async fn accept_loop(
    listener: Arc<TcpListener>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    crash: CancellationToken,
    mut paused: watch::Receiver<bool>,
) {
    let next_id = AtomicU64::new(1);
    let local = listener.local_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
    // `tempDelay` of `(*Server).Serve`.
    let mut temp_delay = Duration::ZERO;
    'serve: loop {
        if *paused.borrow_and_update() {
            shared.events.push(0, EventKind::AcceptPaused);
            while *paused.borrow_and_update() {
                tokio::select! {
                    _ = stop.cancelled() => break 'serve,
                    r = paused.changed() => if r.is_err() { break 'serve },
                }
            }
        }
        // At the fd limit accept4 fails before it dequeues anything: the
        // connections stay in the kernel's queue, handshakes completed.
        if go_model::rules::accept_fails(shared.cfg.fd_limit, shared.conns.lock().len()) {
            temp_delay = go_model::rules::accept_backoff(temp_delay);
            let line = go_model::rules::accept_error_line(&local, temp_delay);
            tracing::warn!(target: "upstream_sim", "{line}");
            shared.events.push(0, EventKind::AcceptError { delay_ms: temp_delay.as_secs_f64() * 1e3, line });
            tokio::select! {
                _ = stop.cancelled() => break 'serve,
                _ = tokio::time::sleep(temp_delay) => {}
            }
            continue;
        }
        let accepted = tokio::select! {
            // Biased: a pause or stop already signalled wins over a
            // connection waiting in the queue.
            biased;
            _ = stop.cancelled() => break 'serve,
            _ = paused.changed() => continue,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: "upstream_sim", "accept: {e}");
                continue;
            }
        };
        temp_delay = Duration::ZERO;
        let id = next_id.fetch_add(1, Ordering::SeqCst);
        spawn_conn(id, stream, peer, shared.clone(), crash.clone());
    }
    // The socket is closed before the event says so: from then on connects are refused.
    drop(listener);
    shared.events.push(0, EventKind::ListenerClosed);
}

fn spawn_conn(id: u64, stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, crash: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let close = CancellationToken::new();
    shared
        .conns
        .lock()
        .insert(id, Tracked { state: ConnState::New, since: Instant::now(), close: close.clone() });
    shared.events.push(id, EventKind::Accepted { peer });
    let conn = Conn::new(id, stream, shared, close);
    tokio::spawn(async move {
        tokio::select! {
            _ = conn.serve() => {}
            // Dropping the serve future drops the socket: Conn's Drop records it.
            _ = crash.cancelled() => {}
        }
    });
}
