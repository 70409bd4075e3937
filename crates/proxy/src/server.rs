//! The proxy's run time: the configuration resolved into upstreams (balancer
//! and keepalive cache each), servers and logs; the listeners. Client
//! connections are served by [`crate::client`], the attempt loop is
//! [`crate::pass`].

use crate::events::ProxyEvents;
use crate::keepalive::Keepalive;
use crate::logs::Logs;
use labkit::events::Retention;
use nginx_model::balancer::{Peer, RoundRobin};
use nginx_model::conf::{self, Config, Pos};
use nginx_model::logs::AccessEntry;
use nginx_model::resolve::{self, ResolveError, Resolved, ResolvedServer, ResolvedUpstream};
use nginx_model::Profile;
use parking_lot::Mutex;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why the proxy cannot start (what nginx reports as `[emerg]`), naming
/// the nginx.conf line where nginx would.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ResolveError),
    /// `ngx_http_upstream_server` (explicit upstreams: the server line) and
    /// `ngx_http_upstream_init_round_robin` (implicit ones: the proxy_pass line).
    #[error("host not found in upstream \"{host}\"{pos}")]
    HostNotFound { host: String, pos: Pos },
    /// `ngx_http_core_listen`.
    #[error("host not found in \"{addr}\" of the \"listen\" directive{pos}")]
    ListenNotFound { addr: String, pos: Pos },
    #[error("bind() to {addr} failed ({source})")]
    Bind { addr: SocketAddr, source: io::Error },
    /// nginx's wording: `(2: No such file or directory)`.
    #[error("open() \"{}\" failed ({})", path.display(), nginx_model::include::errno_text(source))]
    LogFile { path: PathBuf, source: io::Error },
    /// nginx could not allocate what a directive asks for.
    #[error("malloc({bytes}) failed (12: Cannot allocate memory)")]
    Alloc { bytes: u64 },
    /// A file nginx creates at -t too (temp directories, the pid file).
    #[error("{op}() \"{}\" failed ({source})", path.display())]
    NginxFile { op: &'static str, path: PathBuf, source: io::Error },
    /// nginx -t accepts a configuration without servers; there is nothing to run.
    #[error("no \"server\" block in \"http\": nothing to listen on")]
    NoServer,
}

fn resolve_addr(s: &str) -> Option<SocketAddr> {
    s.to_socket_addrs().ok()?.next()
}

/// Every address of `host:port` (an address stands for itself), in
/// getaddrinfo's order, each once.
fn resolve_all(s: &str) -> Vec<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return vec![a];
    }
    let mut out: Vec<SocketAddr> = Vec::new();
    for a in s.to_socket_addrs().into_iter().flatten() {
        if !out.contains(&a) {
            out.push(a);
        }
    }
    out
}

use nginx_model::conf::c_str;

/// RAM + swap (`/proc/meminfo`): the largest allocation Linux's heuristic
/// overcommit grants.
fn memory_limit() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = |key: &str| info.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap_or(0);
    let total = (kb("MemTotal:") + kb("SwapTotal:")) * 1024;
    if total == 0 {
        u64::MAX
    } else {
        total
    }
}

/// The resolver nginx uses while parsing (`getaddrinfo`), for
/// `conf::parse_with`.
pub fn dns(host: &str, port: u16) -> bool {
    (host, port).to_socket_addrs().is_ok_and(|mut a| a.next().is_some())
}

/// A `listen` address as the parser normalised it (`host:port`, `*` as
/// 0.0.0.0); empty means nginx's default, `*:80` for root, else `*:8000`
/// (`ngx_http_core_merge_srv_conf`).
fn listen_addr(s: &str) -> Option<SocketAddr> {
    s.parse().ok().or_else(|| resolve_addr(s))
}

fn default_listen() -> SocketAddr {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
    SocketAddr::from(([0, 0, 0, 0], if root { 80 } else { 8000 }))
}

/// Options that are not in nginx.conf.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    pub profile: Profile,
    /// `nginx -p`: where relative log paths point.
    pub prefix: PathBuf,
    /// Event timestamps are relative to this.
    pub epoch: Instant,
    /// What is kept in memory of events and log lines (the files get
    /// everything): the harness reads a bounded window; the `proxy` binary
    /// keeps nothing, so its memory stays flat.
    pub retention: Retention,
    /// Bind every server here instead of its `listen` addresses (tests ask
    /// for `127.0.0.1:0`, an ephemeral port, which nginx.conf cannot say:
    /// nginx rejects port 0).
    pub listen_override: Option<SocketAddr>,
    /// Write nginx's default access log (logs/access.log under the prefix,
    /// combined) where no access_log applies, as nginx does: the `proxy`
    /// binary does; an embedded proxy (the harness) writes only the files
    /// its configuration names, and keeps the lines in memory.
    pub default_access_log: bool,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions { profile: Profile::Legacy, prefix: PathBuf::from("."), epoch: Instant::now(), retention: Retention::LAB, listen_override: None, default_access_log: false }
    }
}

/// A peer's address with its text made once: every attempt names its peer
/// (`$upstream_addr`, error.log's `upstream:`), and formatting a
/// `SocketAddr` each time cost more than the rest of choosing the peer.
#[derive(Debug, Clone)]
pub(crate) struct PeerAddr {
    pub(crate) addr: SocketAddr,
    text: String,
}

impl PeerAddr {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        PeerAddr { addr, text: addr.to_string() }
    }
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.text)
    }
}

/// An upstream block at run time: its balancer and its keepalive cache.
pub(crate) struct UpstreamRt {
    pub(crate) name: String,
    pub(crate) conf: ResolvedUpstream,
    pub(crate) rr: Mutex<RoundRobin<PeerAddr>>,
    pub(crate) cache: Keepalive,
}

pub(crate) struct ServerRt {
    pub(crate) listen: SocketAddr,
    pub(crate) conf: ResolvedServer,
}

pub(crate) struct Runtime {
    pub(crate) servers: Vec<ServerRt>,
    pub(crate) upstreams: Vec<Arc<UpstreamRt>>,
    pub(crate) logs: Logs,
    pub(crate) events: ProxyEvents,
    pub(crate) next_conn: AtomicU64,
    pub(crate) next_request: AtomicU64,
    /// `client_body_temp_path`'s directory (under the prefix).
    pub(crate) body_temp: PathBuf,
    /// The prefix (`proxy_temp_path` is relative to it).
    pub(crate) prefix: PathBuf,
    /// The temp file counter (`ngx_next_temp_number`).
    pub(crate) next_temp: AtomicU64,
    /// Cancelled when this run time is replaced (reload) or the proxy
    /// quits gracefully: its keepalive connections close once idle.
    pub(crate) retire: CancellationToken,
}

impl UpstreamRt {
    /// The upstream of one request whose `proxy_pass` script named an IP
    /// address (`ngx_http_upstream_create_round_robin_peer`): one peer with
    /// nginx's defaults, no keepalive cache, gone with the request.
    pub(crate) fn for_peer(addr: SocketAddr, events: &ProxyEvents) -> Arc<UpstreamRt> {
        use nginx_model::resolve::defaults;
        let conf = ResolvedUpstream {
            name: addr.to_string(),
            peers: vec![nginx_model::conf::UpstreamServer::new(addr.to_string())],
            keepalive: nginx_model::keepalive::KeepaliveSettings { capacity: 0, timeout: defaults::KEEPALIVE_TIMEOUT, requests: defaults::KEEPALIVE_REQUESTS, time: defaults::KEEPALIVE_TIME },
            keepalive_by_default: false,
            least_conn: false,
        };
        let peer = Peer::new(PeerAddr::new(addr), defaults::WEIGHT, defaults::MAX_FAILS, defaults::FAIL_TIMEOUT, false);
        Arc::new(UpstreamRt { name: conf.name.clone(), rr: Mutex::new(RoundRobin::new(vec![peer], Vec::new())), cache: Keepalive::new(conf.keepalive, events.clone()), conf })
    }
}

/// The run-time model of a resolved configuration: host names resolved,
/// log files opened. Binds nothing.
type Built = (Vec<ServerRt>, Vec<Arc<UpstreamRt>>, Logs);

fn build_runtime(r: &Resolved, opts: &ProxyOptions, events: &ProxyEvents) -> Result<Built, StartError> {
    let mut upstreams = Vec::new();
    for u in &r.upstreams {
        // ngx_http_upstream_init_keepalive allocates the whole cache at
        // start (and at -t): N items of 152 bytes on x86-64 nginx 1.22.
        // What the kernel refuses (heuristic overcommit: more than RAM +
        // swap) fails as in nginx.
        let bytes = (u.keepalive.capacity as u64).wrapping_mul(152);
        if bytes > memory_limit() {
            return Err(StartError::Alloc { bytes });
        }
        let (mut primary, mut backup) = (Vec::new(), Vec::new());
        for p in &u.peers {
            // A name is a peer per address, in getaddrinfo's order, each with
            // the line's parameters (ngx_parse_url → u->addrs, one peer each in
            // ngx_http_upstream_init_round_robin): `localhost` mapped to ::1
            // and 127.0.0.1 is two peers, [::1] first (observed on nginx 1.22.1).
            let addrs = resolve_all(&p.addr);
            if addrs.is_empty() {
                return Err(StartError::HostNotFound { host: p.addr.clone(), pos: p.pos.clone() });
            }
            for addr in addrs {
                let peer = Peer::new(PeerAddr::new(addr), p.weight, p.max_fails, p.fail_timeout, p.down);
                if p.backup {
                    backup.push(peer);
                } else {
                    primary.push(peer);
                }
            }
        }
        upstreams.push(Arc::new(UpstreamRt {
            name: u.name.clone(),
            conf: u.clone(),
            rr: Mutex::new(RoundRobin { least_conn: u.least_conn, ..RoundRobin::new(primary, backup) }),
            cache: Keepalive::new(u.keepalive, events.clone()),
        }));
    }
    let mut servers = Vec::new();
    for s in &r.servers {
        let mut listens = Vec::new();
        for (i, l) in s.listen.iter().enumerate() {
            let pos = s.listen_pos.get(i).cloned().unwrap_or_else(|| s.pos.clone());
            listens.push(listen_addr(l).ok_or_else(|| StartError::ListenNotFound { addr: l.clone(), pos })?);
        }
        if listens.is_empty() {
            listens.push(default_listen());
        }
        if let Some(o) = opts.listen_override {
            listens = vec![o];
        }
        for listen in listens {
            servers.push(ServerRt { listen, conf: s.clone() });
        }
    }
    let in_prefix = |p: &str| -> PathBuf {
        let p = Path::new(c_str(p));
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            opts.prefix.join(p)
        }
    };
    let error_path = r.error_log.as_deref().map(in_prefix);
    let access: Vec<(String, PathBuf)> = r.access_logs.iter().filter(|a| !a.implicit || opts.default_access_log).map(|a| (a.path.clone(), in_prefix(&a.path))).collect();
    // nginx opens every log file at -t too; name the one that failed.
    for path in error_path.iter().chain(access.iter().map(|a| &a.1)) {
        std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|source| StartError::LogFile { path: path.clone(), source })?;
    }
    let logs = Logs::new(error_path.clone(), access.clone(), opts.retention).map_err(|source| StartError::LogFile {
        path: error_path.or(access.into_iter().next().map(|a| a.1)).unwrap_or_default(),
        source,
    })?;
    if servers.is_empty() {
        return Err(StartError::NoServer);
    }
    Ok((servers, upstreams, logs))
}

/// Checks a configuration the way `nginx -t` would, without binding ports:
/// host names resolved, log files opened. A configuration without servers
/// passes, as in nginx.
pub fn check_config(cfg: &Config, opts: &ProxyOptions) -> Result<(), StartError> {
    let r = resolve::resolve(cfg, opts.profile)?;
    // What nginx creates at -t: temp directories (created, as nginx does)
    // and the pid file (only its name is tried here: the running binary writes it).
    for f in &cfg.nginx_files.0 {
        let (op, path, result) = match f {
            conf::NginxFile::TempDir(p) => {
                let path = opts.prefix.join(c_str(p));
                let r = std::fs::create_dir_all(&path);
                ("mkdir", path, r)
            }
            conf::NginxFile::Pid(p) => {
                let path = opts.prefix.join(c_str(p));
                let r = if path.exists() {
                    Ok(())
                } else {
                    std::fs::File::create(&path).and_then(|_| std::fs::remove_file(&path))
                };
                ("open", path, r)
            }
            conf::NginxFile::Log(p) => {
                let path = opts.prefix.join(c_str(p));
                let r = std::fs::OpenOptions::new().create(true).append(true).open(&path).map(drop);
                ("open", path, r)
            }
        };
        result.map_err(|source| StartError::NginxFile { op, path, source })?;
    }
    let servers = match build_runtime(&r, opts, &ProxyEvents::new(opts.epoch, Retention::Off)) {
        Ok((servers, _, _)) => servers,
        Err(StartError::NoServer) => return Ok(()),
        Err(e) => return Err(e),
    };
    // nginx -t binds its listening sockets too: an address that is not this
    // host's fails; one already in use does not (ngx_open_listening_sockets).
    for s in &servers {
        if let Err(source) = std::net::TcpListener::bind(s.listen) {
            if source.kind() == io::ErrorKind::AddrNotAvailable {
                return Err(StartError::Bind { addr: s.listen, source });
            }
        }
    }
    Ok(())
}

/// A running proxy: its listeners and the current run time. A reload
/// (SIGHUP) swaps the run time for new connections; a graceful quit
/// (SIGQUIT) stops accepting and waits for the connections in flight.
pub struct Proxy {
    state: Arc<Mutex<State>>,
    /// Fast stop (SIGTERM, SIGINT): every task ends at once.
    stop: CancellationToken,
    conns: Arc<ConnCount>,
    opts: ProxyOptions,
}

/// What the accept loops read for each new connection.
struct State {
    rt: Arc<Runtime>,
    listeners: Vec<ListenerRt>,
}

struct ListenerRt {
    /// The address the configuration asked for (or the override).
    requested: SocketAddr,
    local: SocketAddr,
    /// This listener's server in `State::rt.servers`.
    server: usize,
    /// Closes this listener (its accept loop ends and drops the socket).
    close: CancellationToken,
    id: u64,
}

/// Client connections in flight, for a graceful quit to wait on.
#[derive(Default)]
struct ConnCount {
    n: std::sync::atomic::AtomicUsize,
    zero: tokio::sync::Notify,
    /// The connections' tasks, ended at once by a fast stop (an abort per
    /// connection, instead of a stop signal polled at every wake).
    tasks: Mutex<std::collections::HashMap<u64, tokio::task::AbortHandle>>,
    next: AtomicU64,
}

impl ConnCount {
    /// Runs a connection's task, counted and stoppable.
    fn spawn(self: &Arc<Self>, stop: &CancellationToken, task: impl std::future::Future<Output = ()> + Send + 'static) {
        // Checked under the lock `abort_all` takes: no task starts after it.
        let mut tasks = self.tasks.lock();
        if stop.is_cancelled() {
            return;
        }
        self.n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let guard = ConnGuard(self.clone(), self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        let key = guard.1;
        // Held across spawn and insert: a task that ends at once on another
        // worker thread removes its handle only after it is in.
        let handle = tokio::spawn(async move {
            let _guard = guard;
            task.await
        });
        tasks.insert(key, handle.abort_handle());
    }

    /// The fast stop: every connection's task ends.
    fn abort_all(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks.into_values() {
            t.abort();
        }
    }
}

struct ConnGuard(Arc<ConnCount>, u64);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.tasks.lock().remove(&self.1);
        if self.0.n.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.0.zero.notify_waiters();
        }
    }
}

static NEXT_LISTENER: AtomicU64 = AtomicU64::new(1);

fn new_runtime(servers: Vec<ServerRt>, upstreams: Vec<Arc<UpstreamRt>>, logs: Logs, events: ProxyEvents, opts: &ProxyOptions) -> Runtime {
    Runtime {
        servers,
        upstreams,
        logs,
        events,
        next_conn: AtomicU64::new(1),
        next_request: AtomicU64::new(1),
        body_temp: opts.prefix.join("client_body_temp"),
        prefix: opts.prefix.clone(),
        next_temp: AtomicU64::new(1),
        retire: CancellationToken::new(),
    }
}

impl Proxy {
    pub async fn start(cfg: &Config, opts: ProxyOptions) -> Result<Proxy, StartError> {
        let r = resolve::resolve(cfg, opts.profile)?;
        let events = ProxyEvents::new(opts.epoch, opts.retention);
        let (servers, upstreams, logs) = build_runtime(&r, &opts, &events)?;
        let mut bound = Vec::new();
        for s in &servers {
            let l = TcpListener::bind(s.listen).await.map_err(|source| StartError::Bind { addr: s.listen, source })?;
            bound.push(l);
        }
        let rt = Arc::new(new_runtime(servers, upstreams, logs, events, &opts));
        let state = Arc::new(Mutex::new(State { rt, listeners: Vec::new() }));
        let proxy = Proxy { state, stop: CancellationToken::new(), conns: Arc::default(), opts };
        for (i, l) in bound.into_iter().enumerate() {
            let requested = proxy.state.lock().rt.servers[i].listen;
            proxy.listen(l, requested, i)?;
        }
        Ok(proxy)
    }

    /// Registers a bound listener for server `server` and starts its accept loop.
    fn listen(&self, l: TcpListener, requested: SocketAddr, server: usize) -> Result<(), StartError> {
        let local = l.local_addr().map_err(|source| StartError::Bind { addr: requested, source })?;
        let id = NEXT_LISTENER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let close = self.stop.child_token();
        self.state.lock().listeners.push(ListenerRt { requested, local, server, close: close.clone(), id });
        tokio::spawn(accept_loop(l, id, self.state.clone(), close, self.stop.clone(), self.conns.clone()));
        Ok(())
    }

    /// Reload (SIGHUP, `ngx_signal_handler` → `ngx_master_process_cycle`'s
    /// reconfigure): a new run time from `cfg`; new connections use it,
    /// the connections of the old one finish their request and close (as
    /// nginx's old workers shut down gracefully). Listeners whose address
    /// stays are kept; new addresses are bound, gone ones closed. On error
    /// nothing changes (nginx keeps the old cycle).
    pub async fn reload(&self, cfg: &Config) -> Result<(), StartError> {
        let r = resolve::resolve(cfg, self.opts.profile)?;
        let events = self.state.lock().rt.events.clone();
        let (servers, upstreams, logs) = build_runtime(&r, &self.opts, &events)?;
        // Which old listener each new server keeps; the others are bound now.
        let mut keep: Vec<Option<u64>> = Vec::new();
        let mut fresh = Vec::new();
        {
            let g = self.state.lock();
            let mut claimed = Vec::new();
            for s in &servers {
                let found = g.listeners.iter().find(|l| l.requested == s.listen && !claimed.contains(&l.id)).map(|l| l.id);
                if let Some(id) = found {
                    claimed.push(id);
                }
                keep.push(found);
            }
        }
        for (i, s) in servers.iter().enumerate() {
            if keep[i].is_none() {
                let l = TcpListener::bind(s.listen).await.map_err(|source| StartError::Bind { addr: s.listen, source })?;
                fresh.push((i, s.listen, l));
            }
        }
        let rt = Arc::new(new_runtime(servers, upstreams, logs, events, &self.opts));
        let old = {
            let mut g = self.state.lock();
            let old = std::mem::replace(&mut g.rt, rt);
            let kept: Vec<(usize, u64)> = keep.iter().enumerate().filter_map(|(i, k)| k.map(|id| (i, id))).collect();
            g.listeners.retain_mut(|l| match kept.iter().find(|(_, id)| *id == l.id) {
                Some((i, _)) => {
                    l.server = *i;
                    true
                }
                None => {
                    l.close.cancel();
                    false
                }
            });
            old
        };
        for (i, requested, l) in fresh {
            self.listen(l, requested, i)?;
        }
        // The old run time's connections close once their request is done.
        old.retire.cancel();
        Ok(())
    }

    /// Graceful quit (SIGQUIT, `ngx_worker_process_cycle` with ngx_quit):
    /// the listeners close, idle keepalive connections close, the requests
    /// in flight finish; returns when the last connection has ended.
    pub async fn quit(&self) {
        {
            let g = self.state.lock();
            for l in &g.listeners {
                l.close.cancel();
            }
            g.rt.retire.cancel();
        }
        loop {
            let zero = self.conns.zero.notified();
            tokio::pin!(zero);
            zero.as_mut().enable();
            if self.conns.n.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            zero.await;
        }
    }

    /// Client connections in flight.
    pub fn connections(&self) -> usize {
        self.conns.n.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The first listener's address (an ephemeral port if the config said `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.state.lock().listeners[0].local
    }

    fn rt(&self) -> Arc<Runtime> {
        self.state.lock().rt.clone()
    }

    /// Writes a line to the current error log (the binary's signal notices).
    pub fn log_error(&self, line: String) {
        self.rt().logs.error(line);
    }

    /// Reopens the current run time's log files (SIGUSR1).
    pub fn reopen_logs(&self) -> std::io::Result<()> {
        self.rt().logs.reopen()
    }

    pub fn error_log(&self) -> Vec<String> {
        self.rt().logs.errors()
    }

    pub fn access_log(&self) -> Vec<AccessEntry> {
        self.rt().logs.access_entries()
    }

    /// Waits (bounded) until `n` access lines have been written by the
    /// current run time (a reload starts its logs afresh, as
    /// [`Proxy::access_log`] shows).
    pub async fn wait_access(&self, n: usize, limit: std::time::Duration) -> bool {
        let logs = self.rt().logs.clone();
        logs.wait_access(n, limit).await
    }

    pub fn events(&self) -> ProxyEvents {
        self.rt().events.clone()
    }

    /// Idle connections in an upstream's keepalive cache.
    pub fn cached_connections(&self, upstream: &str) -> usize {
        self.rt().upstreams.iter().find(|u| u.name == upstream).map(|u| u.cache.len()).unwrap_or(0)
    }

    pub fn stop(&self) {
        self.stop.cancel();
        self.conns.abort_all();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.conns.abort_all();
    }
}

async fn accept_loop(l: TcpListener, id: u64, state: Arc<Mutex<State>>, close: CancellationToken, stop: CancellationToken, conns: Arc<ConnCount>) {
    loop {
        let (stream, client) = tokio::select! {
            _ = close.cancelled() => return,
            r = l.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        // The run time current when the connection came: it keeps it.
        let (rt, server) = {
            let g = state.lock();
            let Some(server) = g.listeners.iter().find(|x| x.id == id).map(|x| x.server) else { return };
            (g.rt.clone(), server)
        };
        let conn_no = rt.next_conn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        conns.spawn(&stop, crate::client::serve(rt, server, stream, client, conn_no));
    }
}

/// The event loops the proxy binary runs for `worker_processes`: N, or one
/// per CPU for `auto` (`ngx_ncpu`); at least one (nginx with 0 workers
/// would serve nothing). A reload keeps the count the proxy started with.
pub fn worker_threads(w: nginx_model::conf::WorkerProcesses) -> usize {
    match w {
        nginx_model::conf::WorkerProcesses::Count(n) => (n as usize).max(1),
        nginx_model::conf::WorkerProcesses::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

#[cfg(test)]
mod worker_tests {
    use super::worker_threads;
    use nginx_model::conf::WorkerProcesses;

    #[test]
    fn one_thread_per_worker_process() {
        assert_eq!(worker_threads(WorkerProcesses::Count(1)), 1);
        assert_eq!(worker_threads(WorkerProcesses::Count(3)), 3);
        assert_eq!(worker_threads(WorkerProcesses::Count(0)), 1, "at least one event loop");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(worker_threads(WorkerProcesses::Auto), cpus);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_a_peer_per_address_an_address_itself() {
        assert_eq!(resolve_all("127.0.0.1:80"), vec![SocketAddr::from(([127, 0, 0, 1], 80))]);
        assert_eq!(resolve_all("[::1]:80"), vec![SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 80))]);
        // localhost: whatever getaddrinfo gives here, each address once, in its order.
        let mut want: Vec<SocketAddr> = Vec::new();
        for a in ("localhost", 80).to_socket_addrs().unwrap() {
            if !want.contains(&a) {
                want.push(a);
            }
        }
        assert!(!want.is_empty());
        assert_eq!(resolve_all("localhost:80"), want);
        assert!(resolve_all("no-such-host.invalid:80").is_empty());
        assert!(resolve_all("not an address").is_empty());
    }
}
