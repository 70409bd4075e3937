//! `upstream-sim`: run the Go `http.Server` emulator on a port.

use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;
use go_model::{godur, handlers::HANDLER_HELP};
use upstream_sim::control::{self, Controlled};
use upstream_sim::{GoVersion, IdleRace, ServerConfig};


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
    /// Lab knob, not a Go setting: the deterministic idle race. The idle
    /// deadline is held until the next request arrives; if the connection
    /// was idle for the idle limit by then, it closes at that moment, with
    /// a FIN ("fin": the request was read) or an RST ("rst": it was not).
    #[arg(long, value_name = "fin|rst", value_parser = control::parse_race)]
    idle_race: Option<IdleRace>,
    /// Serve the lab's control endpoint on this address: GET/PUT /config
    /// (restart with other flags), GET /handler-runs. No authentication:
    /// bind it where only the lab reaches it.
    #[arg(long, value_name = "ADDR")]
    control: Option<SocketAddr>,
    /// What goes to stderr: error (a handler panic, as Go's net/http logs
    /// it: `http: panic serving 127.0.0.1:54321: boom`), warn (also accept
    /// errors), info (the default: also listening, restarts), debug (also
    /// every connection event: accept, deadlines, writes, FIN/RST), trace.
    /// Precedence: this flag, else RUST_LOG (tracing's EnvFilter syntax,
    /// e.g. `upstream_sim=debug`), else info.
    #[arg(long, value_enum, value_name = "LEVEL")]
    log_level: Option<LogLevel>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The server's own lines and its connection events (recorded through
    /// labkit's event log, at debug).
    fn directive(self) -> String {
        let level = match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        };
        format!("upstream_sim={level},labkit::events={level}")
    }
}

/// The log filter: `--log-level`, else RUST_LOG, else info.
fn log_filter(level: Option<LogLevel>) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    match level {
        Some(l) => EnvFilter::new(l.directive()),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(LogLevel::Info.directive())),
    }
}

/// The flags that only the command line may set (`PUT /config` takes the rest).
const PROCESS_FLAGS: [&str; 4] = ["--addr", "--control", "--shutdown-grace", "--log-level"];

impl Args {
    fn config(&self) -> ServerConfig {
        ServerConfig {
            read_timeout: self.read_timeout,
            read_header_timeout: self.read_header_timeout,
            write_timeout: self.write_timeout,
            idle_timeout: self.idle_timeout,
            max_header_bytes: self.max_header_bytes,
            keep_alives: self.keepalives,
            go_version: self.go_version,
            backlog: self.backlog,
            idle_race: self.idle_race,
            ..ServerConfig::default()
        }
    }
}

/// `PUT /config`'s flags, read by the same parser as the command line.
fn parse_flags(words: &[String]) -> Result<ServerConfig, String> {
    if let Some(w) = words.iter().find(|w| PROCESS_FLAGS.iter().any(|f| w.split('=').next() == Some(*f))) {
        return Err(format!("{w}: only the command line sets {}", PROCESS_FLAGS.join(", ")));
    }
    let argv = std::iter::once("upstream-sim").chain(words.iter().map(String::as_str));
    Args::try_parse_from(argv).map(|a| a.config()).map_err(|e| e.render().to_string().trim_end().to_string())
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(args.log_level))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = args.config();
    // A long-running server keeps a bounded number of events in memory (they go to the log).
    let sim = match Controlled::start(cfg, args.addr, Box::new(parse_flags)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("upstream-sim: cannot listen on {}: {e}", args.addr);
            std::process::exit(1);
        }
    };
    eprintln!("upstream-sim: listening on {}", sim.local_addr());
    if let Some(addr) = args.control {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("upstream-sim: cannot listen on {addr} (--control): {e}");
                std::process::exit(1);
            }
        };
        eprintln!("upstream-sim: control endpoint on {}", listener.local_addr().map_or(addr, |a| a));
        tokio::spawn(control::serve(listener, sim.clone()));
    }
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
