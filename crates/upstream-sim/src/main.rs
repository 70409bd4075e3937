//! `upstream-sim`: run the Go `http.Server` emulator on a port.

use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;
use go_model::{godur, handlers::HANDLER_HELP};
use upstream_sim::{GoVersion, ServerConfig, UpstreamSim};


/// Emulates a Go 1.19 net/http server, connection by connection.
///
/// Timeouts take Go duration syntax (300ms, 1.5s, 1m30s; 0 = unset) and mean
/// what the http.Server fields of the same name mean: ReadTimeout and
/// ReadHeaderTimeout from the start of reading a request, WriteTimeout armed
/// once the request header is read (it never interrupts a handler: the next
/// socket write fails), IdleTimeout falling back to ReadTimeout.
#[derive(Parser, Debug)]
#[command(name = "upstream-sim", version, after_help = HANDLER_HELP)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18080")]
    addr: SocketAddr,
    /// http.Server.ReadTimeout.
    #[arg(long, value_parser = godur::parse, default_value = "0")]
    read_timeout: Duration,
    /// http.Server.ReadHeaderTimeout.
    #[arg(long, value_parser = godur::parse, default_value = "0")]
    read_header_timeout: Duration,
    /// http.Server.WriteTimeout.
    #[arg(long, value_parser = godur::parse, default_value = "0")]
    write_timeout: Duration,
    /// http.Server.IdleTimeout.
    #[arg(long, value_parser = godur::parse, default_value = "0")]
    idle_timeout: Duration,
    /// http.Server.MaxHeaderBytes.
    #[arg(long, default_value_t = go_model::config::DEFAULT_MAX_HEADER_BYTES)]
    max_header_bytes: usize,
    /// SetKeepAlivesEnabled.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    keepalives: bool,
    /// Which Go release's idle-wait rule to emulate.
    #[arg(long, value_parser = str::parse::<GoVersion>, default_value = "1.19")]
    go_version: GoVersion,
    /// listen(2) backlog.
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
    /// How long Shutdown waits for active requests after SIGTERM / Ctrl-C.
    #[arg(long, value_parser = godur::parse, default_value = "5s")]
    shutdown_grace: Duration,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "upstream_sim=debug".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = ServerConfig {
        read_timeout: args.read_timeout,
        read_header_timeout: args.read_header_timeout,
        write_timeout: args.write_timeout,
        idle_timeout: args.idle_timeout,
        max_header_bytes: args.max_header_bytes,
        keep_alives: args.keepalives,
        go_version: args.go_version,
        backlog: args.backlog,
        ..ServerConfig::default()
    };
    // A long-running server keeps no events in memory (they go to the log).
    let sim = match UpstreamSim::start_with_epoch(cfg, args.addr, std::time::Instant::now(), labkit::events::Retention::Off).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("upstream-sim: cannot listen on {}: {e}", args.addr);
            std::process::exit(1);
        }
    };
    eprintln!("upstream-sim: listening on {}", sim.local_addr());
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("upstream-sim: cannot handle SIGTERM: {e}");
            std::process::exit(1);
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let quiet = sim.shutdown(args.shutdown_grace).await;
    eprintln!("upstream-sim: shutdown {}", if quiet { "complete" } else { "timed out with active connections" });
}
