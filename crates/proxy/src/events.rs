//! Proxy-side events for the timeline (client request numbers in `conn`,
//! 0 for keepalive-cache events), recorded with labkit's `Recorder`.

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
    AttemptFailed { local_port: u16, class: String, log: Option<String> },
    Retry { tries_left: u32 },
    GiveUp { status: u16 },
    BodyFailed { local_port: u16, class: String },
    ClientResponse { status: u16, body_bytes: u64, truncated: bool },
    KeepaliveStored { local_port: u16 },
    /// The cache closed an idle connection ("keepalive_timeout", "FIN",
    /// "RST", "stray data", "evicted").
    KeepaliveClosed { local_port: u16, why: String },
}

pub type ProxyEvents = labkit::events::Recorder<ProxyEventKind>;
pub type ProxyEvent = labkit::events::Event<ProxyEventKind>;
