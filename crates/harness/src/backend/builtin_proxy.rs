//! The built-in nginx emulator (crates/proxy), in-process.

use super::{AccessRecord, BackendError, ProxyBackend, ProxyUnderTest, WorkDir};
use crate::timeline::{EntryKind, Lane, TimelineEntry};
use async_trait::async_trait;
use nginx_model::conf::{self, Config};
use proxy::events::{ProxyEvent, ProxyEventKind};
use proxy::{Proxy, ProxyOptions};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub struct BuiltinProxy {
    // Dropped in this order: the proxy stops before its prefix is removed.
    proxy: Proxy,
    _dir: WorkDir,
    profile: nginx_model::Profile,
}

impl BuiltinProxy {
    /// Starts on the listen address of `cfg`'s first server (port 0 for an
    /// ephemeral one, which nginx.conf cannot say: it is passed beside the
    /// config, and the rendered text keeps nginx's default listen).
    pub async fn start(mut cfg: Config, profile: nginx_model::Profile, label: &str, epoch: Instant) -> Result<BuiltinProxy, BackendError> {
        let dir = WorkDir::new(label)?;
        let listen_override = cfg.servers.first().and_then(|s| s.listen.first()).and_then(|l| l.parse::<SocketAddr>().ok());
        if listen_override.is_some() {
            for s in &mut cfg.servers {
                s.listen.clear();
            }
        }
        // Read back the same text real nginx would get, with the same logs.
        let mut parsed = conf::parse(&crate::nginx::lab_logs(cfg.clone()).render(), &format!("{label}.conf"))?;
        // Scaled runs use sub-second fail_timeouts, which nginx.conf cannot
        // state (seconds only; rendered rounded up): keep the lab's value.
        for (pu, u) in parsed.upstreams.iter_mut().zip(&cfg.upstreams) {
            for (ps, s) in pu.servers.iter_mut().zip(&u.servers) {
                ps.fail_timeout = s.fail_timeout;
            }
        }
        let opts = ProxyOptions { profile, prefix: dir.path().to_path_buf(), epoch, listen_override, ..ProxyOptions::default() };
        let proxy = Proxy::start(&parsed, opts).await?;
        Ok(BuiltinProxy { proxy, _dir: dir, profile })
    }

    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }
}

#[async_trait]
impl ProxyUnderTest for BuiltinProxy {
    fn program(&self) -> Option<String> {
        // Its description says 1.22: say so when it runs the new defaults.
        (self.profile == nginx_model::Profile::Modern).then(|| "running nginx ≥ 1.29.7's defaults".to_string())
    }

    fn backend(&self) -> ProxyBackend {
        ProxyBackend::Builtin
    }

    fn addr(&self) -> SocketAddr {
        self.proxy.addr()
    }

    fn error_lines(&self) -> Vec<String> {
        self.proxy.error_log()
    }

    fn access_entries(&self) -> Vec<AccessRecord> {
        self.proxy
            .access_log()
            .iter()
            .map(|e| AccessRecord {
                upstream_status: e.upstream.iter().map(|u| u.status).collect(),
                upstream_response_time: e.upstream.iter().map(|u| u.response_time.as_secs_f64()).collect(),
            })
            .collect()
    }

    async fn wait_access(&self, n: usize, limit: Duration) -> bool {
        self.proxy.wait_access(n, limit).await
    }

    /// Every one of them that the cache stored has left it since (closed, or
    /// checked out again).
    async fn wait_dropped(&self, ports: &[u16], limit: Duration) -> bool {
        self.proxy.events().wait_for(limit, |ev| ports.iter().all(|&port| left_cache(ev, port))).await.0
    }

    fn timeline(&self) -> Vec<TimelineEntry> {
        timeline_of(&self.proxy.events().snapshot())
    }

    fn log_files(&self) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        Some((self._dir.path().join(crate::nginx::ERROR_LOG), self._dir.path().join(crate::nginx::ACCESS_LOG)))
    }
}

/// The connection on local port `port` is not in the keepalive cache: it
/// was never stored, or it was closed or checked out after its last store.
fn left_cache(ev: &[ProxyEvent], port: u16) -> bool {
    let last = |pred: &dyn Fn(&ProxyEventKind) -> bool| ev.iter().rposition(|e| pred(&e.kind));
    let Some(stored) = last(&|k| matches!(k, ProxyEventKind::KeepaliveStored { local_port } if *local_port == port)) else {
        return true;
    };
    let left = last(&|k| matches!(k, ProxyEventKind::KeepaliveClosed { local_port, .. } if *local_port == port))
        .or_else(|| last(&|k| matches!(k, ProxyEventKind::UpstreamConn { local_port, cached: true, .. } if *local_port == port)));
    left.is_some_and(|l| l > stored)
}

/// The proxy's events as timeline entries.
fn timeline_of(events: &[ProxyEvent]) -> Vec<TimelineEntry> {
    events
        .iter()
        .filter_map(|e| {
            let entry = |kind, port: Option<u16>, text: String| TimelineEntry::new(e.at, Lane::Proxy, kind, text).port(port);
            Some(match &e.kind {
                ProxyEventKind::UpstreamConn { local_port, cached, .. } => entry(
                    EntryKind::Connect,
                    Some(*local_port),
                    format!(":{local_port} {}", if *cached { "from keepalive cache" } else { "new connection" }),
                ),
                ProxyEventKind::RequestSent { local_port, .. } => entry(EntryKind::Request, Some(*local_port), format!("request ──► :{local_port}")),
                ProxyEventKind::HeaderReceived { local_port, status } => {
                    entry(EntryKind::Response, Some(*local_port), format!("◄── {status} header :{local_port}")).status(*status)
                }
                ProxyEventKind::AttemptFailed { local_port, class, log } => entry(
                    EntryKind::Error,
                    // 0: no connection was made.
                    (*local_port != 0).then_some(*local_port),
                    match log {
                        Some(l) => format!("✗ {class}: {l}"),
                        None => format!("✗ {class}"),
                    },
                ),
                ProxyEventKind::Retry { tries_left } => entry(EntryKind::Retry, None, format!("retry (tries left {tries_left})")),
                ProxyEventKind::GiveUp { status } => entry(EntryKind::GiveUp, None, format!("give up → {status}")).status(*status),
                ProxyEventKind::BodyFailed { local_port, class } => {
                    entry(EntryKind::Error, Some(*local_port), format!("✗ {class} after the header: truncate"))
                }
                ProxyEventKind::KeepaliveStored { local_port } => {
                    entry(EntryKind::KeepaliveStore, Some(*local_port), format!("keepalive cache ← :{local_port}"))
                }
                // The cache closing an idle connection: nginx's own close,
                // or its noticing the upstream's FIN/RST; not a close
                // arrow of the upstream's (that one is in the Go lane).
                ProxyEventKind::KeepaliveClosed { local_port, why } => {
                    entry(EntryKind::Note, Some(*local_port), format!("cache drops :{local_port} ({why})"))
                }
                ProxyEventKind::ClientRequest { .. } | ProxyEventKind::ClientResponse { .. } | ProxyEventKind::ConnectFailed { .. } => {
                    return None
                }
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use labkit::events::Event;

    fn ev(kind: ProxyEventKind) -> ProxyEvent {
        Event { at: Duration::ZERO, conn: 0, kind }
    }

    #[test]
    fn a_connection_leaves_the_cache_when_closed_or_checked_out_after_its_last_store() {
        let stored = ev(ProxyEventKind::KeepaliveStored { local_port: 7 });
        let closed = ev(ProxyEventKind::KeepaliveClosed { local_port: 7, why: proxy::events::CacheClose::Fin });
        let reused = ev(ProxyEventKind::UpstreamConn { peer: ([127, 0, 0, 1], 80).into(), local_port: 7, cached: true });
        assert!(left_cache(&[], 7), "never stored");
        assert!(!left_cache(std::slice::from_ref(&stored), 7));
        assert!(left_cache(&[stored.clone(), closed.clone()], 7));
        assert!(left_cache(&[stored.clone(), reused.clone()], 7));
        assert!(!left_cache(&[stored.clone(), closed, stored.clone()], 7), "stored again");
        assert!(left_cache(&[stored], 8), "another port");
    }
}
