//! Proxy-side events for the timeline (client request numbers in `conn`,
//! 0 for keepalive-cache events), recorded with labkit's `Recorder`.

use nginx_model::failure::Class;
use std::fmt;
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ProxyEventKind {
    ClientRequest { method: String, uri: String },
    /// A connection for this attempt: from the keepalive cache or new.
    /// `local_port` is the proxy's side, so it matches the upstream's peer port.
    UpstreamConn { peer: SocketAddr, local_port: u16, cached: bool },
    ConnectFailed { peer: SocketAddr },
    RequestSent { local_port: u16, bytes: usize },
    HeaderReceived { local_port: u16, status: u16 },
    AttemptFailed { local_port: u16, class: Class, log: Option<String> },
    Retry { tries_left: u32 },
    GiveUp { status: u16 },
    BodyFailed { local_port: u16, class: Class },
    ClientResponse { status: u16, body_bytes: u64, truncated: bool },
    KeepaliveStored { local_port: u16 },
    /// The cache closed an idle connection.
    KeepaliveClosed { local_port: u16, why: CacheClose },
}

/// Why the keepalive cache closed an idle connection
/// (`ngx_http_upstream_keepalive_close_handler`, its timer, or eviction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheClose {
    /// `keepalive_timeout` passed.
    Timeout,
    /// The upstream closed it (read returned 0).
    Fin,
    /// The upstream reset it.
    Rst,
    /// Bytes arrived on an idle connection.
    StrayData,
    /// A full cache made room for a newer connection.
    Evicted,
}

impl fmt::Display for CacheClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheClose::Timeout => "keepalive_timeout",
            CacheClose::Fin => "FIN",
            CacheClose::Rst => "RST",
            CacheClose::StrayData => "stray data",
            CacheClose::Evicted => "evicted",
        })
    }
}

pub type ProxyEvents = labkit::events::Recorder<ProxyEventKind>;
pub type ProxyEvent = labkit::events::Event<ProxyEventKind>;
