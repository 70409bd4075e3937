//! What a scenario does to the upstream between the warm-up and the
//! requests. Each of the harness's upstream backends performs it (or says
//! it cannot); scenarios name it in TOML (`action = "crash"`); the oracle
//! models it.

use serde::{Deserialize, Serialize};

/// How many connections `hold-connections` keeps open.
pub const HELD_CONNECTIONS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Nothing happens to the upstream.
    #[default]
    None,
    /// Kill the (first) upstream server after the warm-up.
    Crash,
    /// Start a new server on the same port (SO_REUSEPORT), then gracefully
    /// shut the old one down: the listener is handed over.
    RestartHandoff,
    /// Graceful Shutdown of the first server after the warm-up.
    Shutdown,
    /// SetKeepAlivesEnabled(false), then Shutdown, of the first server.
    KeepalivesOffThenShutdown,
    /// Stop accepting on every upstream and fill its accept queue.
    FillBacklog,
    /// Open [`HELD_CONNECTIONS`] connections to the first server, each
    /// accepted (or refused by Go's accept at its fd limit, `fd_limit`)
    /// before the next, and keep them open: clients that leak connections.
    HoldConnections,
    /// The first server stops accepting; once a connection waits in its
    /// accept queue, a new server binds the port (SO_REUSEPORT) and the old
    /// one shuts down: closing its listener resets the queued connection.
    ReuseportHandoffQueued,
    /// As `ReuseportHandoffQueued`, but the new server takes the old one's
    /// listening socket itself (fd passing): nothing is closed, the queued
    /// connection is accepted by the new server.
    FdHandoffQueued,
}

impl Action {
    /// The action closes the first server's connections, so the proxy's
    /// cached ones to it are dead once it is done. (The queued handoffs
    /// close them later, when a new connection has been queued.)
    pub fn closes_connections(self) -> bool {
        matches!(self, Action::Crash | Action::RestartHandoff | Action::KeepalivesOffThenShutdown)
    }
}
