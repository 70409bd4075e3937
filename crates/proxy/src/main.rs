//! `proxy -c nginx.conf`: run the nginx upstream-module emulator.

use clap::Parser;
use proxy::{conf, Profile, Proxy, ProxyOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// Emulates nginx's upstream module (keepalive cache, proxy_next_upstream
/// retries, error-log lines) from a real nginx.conf.
///
/// Reads the subset of nginx.conf that decides 502s: upstream { server
/// weight= max_fails= fail_timeout= down backup; keepalive; keepalive_timeout;
/// keepalive_requests; keepalive_time }, server { listen; server_name },
/// location { proxy_pass; proxy_http_version; proxy_set_header;
/// proxy_connect/send/read_timeout; proxy_next_upstream;
/// proxy_next_upstream_tries; proxy_next_upstream_timeout;
/// proxy_request_buffering; proxy_buffer_size }, log_format, access_log,
/// error_log. Unknown directives are errors, reported as nginx does.
#[derive(Parser, Debug)]
#[command(name = "proxy", version)]
struct Args {
    /// Configuration file (as nginx -c).
    #[arg(short = 'c', long = "conf", default_value = "fixtures/nginx.conf")]
    conf: PathBuf,
    /// Test the configuration and exit (as nginx -t).
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Prefix for relative log paths (as nginx -p). Default: the config's directory.
    #[arg(short = 'p', long = "prefix")]
    prefix: Option<PathBuf>,
    /// nginx defaults to emulate: legacy (≤1.29.6, e.g. Debian's 1.22) or modern (≥1.29.7).
    #[arg(long, value_enum, default_value = "legacy")]
    profile: Profile,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "proxy=info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let name = args.conf.display().to_string();
    let prefix = args.prefix.clone().unwrap_or_else(|| {
        args.conf
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default()
    });
    let cfg = match proxy::files::read_conf(&args.conf, &prefix) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("proxy: [emerg] {e}");
            if args.test {
                eprintln!("proxy: configuration file {name} test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    let profile = args.profile;
    // A long-running proxy keeps nothing in memory: its logs go to files.
    let opts = ProxyOptions { profile, prefix, retention: labkit::events::Retention::Off, ..ProxyOptions::default() };
    if args.test {
        return match proxy::check_config(&cfg, &opts) {
            Ok(()) => {
                eprintln!("proxy: the configuration file {name} syntax is ok");
                eprintln!("proxy: configuration file {name} test is successful");
                let notes = conf_notes(&cfg, profile);
                for l in proxy::files::not_emulated_lines(&cfg, &notes) {
                    eprintln!("proxy: {l}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("proxy: [emerg] {e}");
                eprintln!("proxy: configuration file {name} test failed");
                ExitCode::FAILURE
            }
        };
    }
    let proxy = match Proxy::start(&cfg, opts).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("proxy: [emerg] {e}");
            return ExitCode::FAILURE;
        }
    };
    for l in proxy::files::not_emulated_lines(&cfg, &conf_notes(&cfg, profile)) {
        eprintln!("proxy: {l}");
    }
    eprintln!(
        "proxy: listening on {} ({profile:?} nginx profile)",
        proxy.addr()
    );
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("proxy: [emerg] cannot handle SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    proxy.stop();
    ExitCode::SUCCESS
}

/// What the resolved configuration leaves out (empty if it does not resolve).
fn conf_notes(cfg: &conf::Config, profile: Profile) -> Vec<(String, conf::Pos)> {
    nginx_model::resolve::resolve(cfg, profile)
        .map(|r| r.notes)
        .unwrap_or_default()
}
