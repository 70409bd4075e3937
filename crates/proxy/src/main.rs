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

/// Reads the file as nginx does (`ngx_conf_parse`): as many bytes as its
/// size said when opened (`ngx_fd_info`), so `/dev/zero` reads as empty and
/// nothing grows without bound.
fn read_conf(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)?;
    let meta = f.metadata()?;
    if meta.is_dir() {
        return Err(std::io::Error::from_raw_os_error(21));
    }
    let mut buf = Vec::with_capacity(meta.len().min(1 << 20) as usize);
    f.take(meta.len()).read_to_end(&mut buf)?;
    Ok(buf)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "proxy=info".into()))
        .with_writer(std::io::stderr)
        .init();
    let name = args.conf.display().to_string();
    let src = match read_conf(&args.conf) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("proxy: [emerg] open() \"{name}\" failed ({e})");
            return ExitCode::FAILURE;
        }
    };
    let cfg = match conf::parse_with(&src, &name, &proxy::server::dns) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("proxy: [emerg] {e}");
            if args.test {
                eprintln!("proxy: configuration file {name} test failed");
            }
            return ExitCode::FAILURE;
        }
    };
    let prefix = args.prefix.unwrap_or_else(|| args.conf.parent().map(|p| p.to_path_buf()).unwrap_or_default());
    let profile = args.profile;
    // A long-running proxy keeps nothing in memory: its logs go to files.
    let opts = ProxyOptions { profile, prefix, retention: labkit::events::Retention::Off, ..ProxyOptions::default() };
    if args.test {
        return match proxy::check_config(&cfg, &opts) {
            Ok(()) => {
                eprintln!("proxy: the configuration file {name} syntax is ok");
                eprintln!("proxy: configuration file {name} test is successful");
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
    eprintln!("proxy: listening on {} ({profile:?} nginx profile)", proxy.addr());
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
