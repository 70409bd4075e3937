//! # harness: the programs under test
//!
//! * [`backend`]: the backends behind two traits, [`ProxyUnderTest`] (the
//!   built-in nginx emulator, real nginx) and [`UpstreamUnderTest`] (the
//!   built-in Go emulator, the real Go reference server), one file per
//!   implementation, chosen by [`ProxyBackend`] / [`UpstreamBackend`].
//! * [`action`]: what a scenario does to the upstream mid-run.
//! * [`timeline`]: what each backend saw, on one clock.
//! * [`client`]: a raw HTTP/1 client that reports what a peer sees on the
//!   wire (status, framing, body bytes, FIN/RST).
//! * [`child`]: child processes run, read and waited on, bounded, one way.
//! * [`nginx`]: real nginx in a private prefix on loopback.
//! * [`go`]: the real Go reference server (`fixtures/go-upstream`) and its log.
//! * [`require`]: whether a real-program check runs, is ignored (with its
//!   reason) or fails, decided in one place.
//!
//! Real programs are started by us, on loopback, and stopped by the PID we
//! spawned.

pub mod backend;
pub mod child;
pub mod client;
pub mod go;
pub mod netns;
pub mod nginx;
pub mod relay;
pub mod require;
pub mod sockets;
pub mod timeline;

pub use labkit::action::Action;
pub use backend::{AccessRecord, BackendError, ProxyBackend, ProxyUnderTest, Unsupported, UpstreamBackend, UpstreamUnderTest};

/// A free loopback port (bound, then released) for programs that need a port
/// number up front.
pub fn free_port() -> std::io::Result<u16> {
    // Never the same port twice in one process: two servers started side by
    // side (tests, `--jobs`) would otherwise both be told a port that only
    // one of them can bind, and a client could reach the other one's.
    // The most recent ports only (bounded: a long matrix run starts a real
    // nginx per cell), which is as far back as a collision can come from.
    const REMEMBERED: usize = 1024;
    static GIVEN: std::sync::Mutex<std::collections::VecDeque<u16>> = std::sync::Mutex::new(std::collections::VecDeque::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = 0;
    for _ in 0..64 {
        last = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        if !given.contains(&last) {
            break;
        }
    }
    if given.len() == REMEMBERED {
        given.pop_front();
    }
    given.push_back(last);
    Ok(last)
}

/// nginx.conf read from the file system as `nginx -t` reads it (includes,
/// globs, the conf prefix): the proxy's reader, for the CLI's `check`.
pub use proxy::files::read_conf as read_nginx_conf;

#[cfg(test)]
mod tests {
    #[test]
    fn free_port_never_repeats_a_port_in_a_process() {
        let ports: Vec<u16> = (0..300).map(|_| super::free_port().expect("a free port")).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "a port was handed out twice");
    }
}
