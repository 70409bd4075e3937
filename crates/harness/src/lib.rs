//! # harness: the programs under test
//!
//! * [`client`]: a raw HTTP/1 client that reports what a peer sees on the
//!   wire (status, framing, body bytes, FIN/RST).
//! * [`nginx`]: real nginx in a private prefix on loopback.
//! * [`go`]: the real Go reference server (`fixtures/go-upstream`).
//! * [`require`]: whether a real-program check runs, is ignored (with its
//!   reason) or fails, decided in one place.
//!
//! Real programs are started by us, on loopback, and stopped by the PID we
//! spawned.

pub mod client;
pub mod go;
pub mod nginx;
pub mod require;

/// A free loopback port (bound, then released) for programs that need a port
/// number up front.
pub fn free_port() -> std::io::Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr().map(|a| a.port())
}
