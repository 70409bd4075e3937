//! The proxy's run time: the configuration resolved into upstreams (balancer
//! and keepalive cache each), servers and logs; the listeners. Client
//! connections are served by [`crate::client`], the attempt loop is
//! [`crate::pass`].

use crate::events::ProxyEvents;
use crate::keepalive::Keepalive;
use crate::logs::Logs;
use labkit::events::Retention;
use nginx_model::balancer::{Peer, RoundRobin};
use nginx_model::conf::Config;
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

/// Why the proxy cannot start (what nginx reports as `[emerg]`).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ResolveError),
    #[error("host not found in \"{host}\" of upstream \"{upstream}\"")]
    HostNotFound { host: String, upstream: String },
    #[error("host not found in \"{0}\" of the \"listen\" directive")]
    ListenNotFound(String),
    #[error("bind() to {addr} failed ({source})")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot open log file {path}: {source}")]
    LogFile { path: PathBuf, source: io::Error },
}

fn resolve_addr(s: &str) -> Option<SocketAddr> {
    s.to_socket_addrs().ok()?.next()
}

fn listen_addr(s: &str) -> Option<SocketAddr> {
    match s.parse::<u16>() {
        Ok(port) => Some(SocketAddr::from(([0, 0, 0, 0], port))),
        Err(_) => resolve_addr(s),
    }
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
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions { profile: Profile::Legacy, prefix: PathBuf::from("."), epoch: Instant::now(), retention: Retention::LAB }
    }
}

/// An upstream block at run time: its balancer and its keepalive cache.
pub(crate) struct UpstreamRt {
    pub(crate) name: String,
    pub(crate) conf: ResolvedUpstream,
    pub(crate) rr: Mutex<RoundRobin<SocketAddr>>,
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
    /// The temp file counter (`ngx_next_temp_number`).
    pub(crate) next_temp: AtomicU64,
}

/// The run-time model of a resolved configuration: host names resolved,
/// log files opened. Binds nothing.
type Built = (Vec<ServerRt>, Vec<Arc<UpstreamRt>>, Logs);

fn build_runtime(r: &Resolved, opts: &ProxyOptions, events: &ProxyEvents) -> Result<Built, StartError> {
    let mut upstreams = Vec::new();
    for u in &r.upstreams {
        let (mut primary, mut backup) = (Vec::new(), Vec::new());
        for p in &u.peers {
            let addr = resolve_addr(&p.addr).ok_or_else(|| StartError::HostNotFound { host: p.addr.clone(), upstream: u.name.clone() })?;
            let peer = Peer::new(addr, p.weight, p.max_fails, p.fail_timeout, p.down);
            if p.backup {
                backup.push(peer);
            } else {
                primary.push(peer);
            }
        }
        upstreams.push(Arc::new(UpstreamRt {
            name: u.name.clone(),
            conf: u.clone(),
            rr: Mutex::new(RoundRobin::new(primary, backup)),
            cache: Keepalive::new(u.keepalive, events.clone()),
        }));
    }
    let mut servers = Vec::new();
    for s in &r.servers {
        for l in &s.listen {
            let listen = listen_addr(l).ok_or_else(|| StartError::ListenNotFound(l.clone()))?;
            servers.push(ServerRt { listen, conf: s.clone() });
        }
    }
    let in_prefix = |p: &str| -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            opts.prefix.join(p)
        }
    };
    let error_path = r.error_log.as_deref().map(in_prefix);
    let access = r.access_log.as_ref().map(|a| (in_prefix(&a.path), a.format.clone()));
    let logs = Logs::new(error_path.clone(), access.clone(), opts.retention).map_err(|source| StartError::LogFile {
        path: error_path.or(access.map(|a| a.0)).unwrap_or_default(),
        source,
    })?;
    Ok((servers, upstreams, logs))
}

/// Checks a configuration the way `nginx -t` would, without binding ports.
pub fn check_config(cfg: &Config, opts: &ProxyOptions) -> Result<(), StartError> {
    let r = resolve::resolve(cfg, opts.profile)?;
    build_runtime(&r, opts, &ProxyEvents::new(opts.epoch, Retention::Off)).map(|_| ())
}

/// A running proxy.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    rt: Arc<Runtime>,
    stop: CancellationToken,
}

impl Proxy {
    pub async fn start(cfg: &Config, opts: ProxyOptions) -> Result<Proxy, StartError> {
        let r = resolve::resolve(cfg, opts.profile)?;
        let events = ProxyEvents::new(opts.epoch, opts.retention);
        let (servers, upstreams, logs) = build_runtime(&r, &opts, &events)?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for s in &servers {
            let l = TcpListener::bind(s.listen).await.map_err(|source| StartError::Bind { addr: s.listen, source })?;
            addrs.push(l.local_addr().map_err(|source| StartError::Bind { addr: s.listen, source })?);
            listeners.push(l);
        }
        let body_temp = opts.prefix.join("client_body_temp");
        let rt = Arc::new(Runtime {
            servers,
            upstreams,
            logs,
            events,
            next_conn: AtomicU64::new(1),
            next_request: AtomicU64::new(1),
            body_temp,
            next_temp: AtomicU64::new(1),
        });
        let stop = CancellationToken::new();
        for (i, l) in listeners.into_iter().enumerate() {
            tokio::spawn(accept_loop(l, i, rt.clone(), stop.clone()));
        }
        Ok(Proxy { addrs, rt, stop })
    }

    /// The first listener's address (an ephemeral port if the config said `:0`).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn error_log(&self) -> Vec<String> {
        self.rt.logs.errors()
    }

    pub fn access_log(&self) -> Vec<AccessEntry> {
        self.rt.logs.access_entries()
    }

    pub fn events(&self) -> &ProxyEvents {
        &self.rt.events
    }

    /// Idle connections in an upstream's keepalive cache.
    pub fn cached_connections(&self, upstream: &str) -> usize {
        self.rt.upstreams.iter().find(|u| u.name == upstream).map(|u| u.cache.len()).unwrap_or(0)
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept_loop(l: TcpListener, server: usize, rt: Arc<Runtime>, stop: CancellationToken) {
    loop {
        let (stream, client) = tokio::select! {
            _ = stop.cancelled() => return,
            r = l.accept() => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        let conn_no = rt.next_conn.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let rt = rt.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = crate::client::serve(rt, server, stream, client, conn_no) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}
