//! `proxy -c nginx.conf`: run the nginx upstream-module emulator.

use clap::Parser;
use proxy::{conf, Profile, Proxy, ProxyOptions};
use nginx_model::logs::Level;
use nginx_model::signal::Command;
use std::path::PathBuf;
use std::time::SystemTime;
use tokio::signal::unix::{signal, Signal, SignalKind};
use std::process::ExitCode;

/// Emulates nginx's upstream module (keepalive cache, proxy_next_upstream
/// retries, error-log lines) from a real nginx.conf.
///
/// Reads the subset of nginx.conf that decides 502s: upstream { server
/// weight= max_fails= fail_timeout= down backup; least_conn; keepalive; keepalive_timeout;
/// keepalive_requests; keepalive_time }, server { listen; server_name },
/// location { proxy_pass; proxy_http_version; proxy_set_header;
/// proxy_connect/send/read_timeout; proxy_next_upstream;
/// proxy_next_upstream_tries; proxy_next_upstream_timeout;
/// proxy_request_buffering; proxy_buffer_size; return; add_header;
/// error_page and proxy_intercept_errors (pages answered by a return location); auth_request
/// (the subrequest through a proxied location); WebSocket upgrades
/// with proxy_set_header Upgrade $http_upgrade }, log_format, access_log,
/// error_log. Unknown directives are errors, reported as nginx does.
///
/// Signals as nginx's master: SIGHUP reloads the configuration (a bad one
/// is logged as [emerg] and the old one kept), SIGQUIT shuts down
/// gracefully (requests in flight finish), SIGTERM/SIGINT exit at once,
/// SIGUSR1 reopens the log files. The pid file (`pid`, default
/// logs/nginx.pid under the prefix) is written at start, removed at exit.
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
    /// Send a signal to the running proxy (as nginx -s): stop, quit,
    /// reopen, reload. The pid is read from the pid file: the `pid`
    /// directive, else logs/nginx.pid under the prefix.
    #[arg(short = 's', value_name = "SIGNAL")]
    signal: Option<String>,
}

/// The proxy allocates a few dozen small strings per request (the head,
/// the log context, the access line); glibc's malloc and free were a
/// quarter of its user time at 32 connections (perf), mimalloc's are a
/// fraction of that.
#[global_allocator]
static ALLOC: Mi = Mi;

/// mimalloc, through its plain entry points where the alignment asked for
/// is one every mimalloc block has (word alignment): `mimalloc::MiMalloc`
/// always takes the aligned path, about twice the instructions of
/// `mi_malloc` for the small strings this program allocates.
struct Mi;

/// An alignment every mimalloc block has (a word's).
fn plain(layout: std::alloc::Layout) -> bool {
    layout.align() <= std::mem::size_of::<usize>()
}

// SAFETY: every path is mimalloc's; a pointer from either entry point is
// freed by `mi_free` and resized by `mi_realloc` (which keeps word
// alignment), as mimalloc documents; stricter alignments go to its
// aligned functions, as `mimalloc::MiMalloc` does for all.
unsafe impl std::alloc::GlobalAlloc for Mi {
    #[inline]
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if plain(layout) {
            libmimalloc_sys::mi_malloc(layout.size()).cast()
        } else {
            mimalloc::MiMalloc.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if plain(layout) {
            libmimalloc_sys::mi_zalloc(layout.size()).cast()
        } else {
            mimalloc::MiMalloc.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: std::alloc::Layout) {
        libmimalloc_sys::mi_free(ptr.cast());
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if plain(layout) {
            libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast()
        } else {
            mimalloc::MiMalloc.realloc(ptr, layout, new_size)
        }
    }
}

fn main() -> ExitCode {
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
    // One nginx worker is one event loop on one thread: `worker_processes
    // 1` (nginx's default) runs on a current-thread runtime, as nginx's
    // single worker does; N or auto on N worker threads.
    let mut builder = match proxy::worker_threads(cfg.worker_processes) {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("proxy: [emerg] cannot start the event loop: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args, cfg, name, prefix))
}

async fn run(args: Args, cfg: nginx_model::conf::Config, name: String, prefix: PathBuf) -> ExitCode {
    let profile = args.profile;
    let pid_file = {
        let (p, explicit) = match nginx_model::signal::pid_path(&cfg) {
            Some(p) => (nginx_model::conf::c_str(p).to_string(), true),
            None => (nginx_model::signal::DEFAULT_PID_PATH.to_string(), false),
        };
        let p = PathBuf::from(p);
        (if p.is_absolute() { p } else { prefix.join(p) }, explicit)
    };
    if let Some(name) = &args.signal {
        return send_signal(name, &pid_file.0);
    }
    // A long-running proxy keeps nothing in memory: its logs go to files.
    let opts = ProxyOptions { profile, prefix, retention: labkit::events::Retention::Off, default_access_log: true, ..ProxyOptions::default() };
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
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("proxy: [emerg] cannot handle signals: {e}");
            return ExitCode::FAILURE;
        }
    };
    let proxy = match Proxy::start(&cfg, opts.clone()).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("proxy: [emerg] {e}");
            return ExitCode::FAILURE;
        }
    };
    // ngx_create_pidfile: an explicit `pid` that cannot be written is fatal;
    // the default one is skipped when its directory is missing (nginx
    // would stop: its prefix always has logs/).
    let pid_written = match std::fs::write(&pid_file.0, nginx_model::signal::pid_file_content(std::process::id())) {
        Ok(()) => true,
        Err(e) if pid_file.1 => {
            eprintln!("proxy: [emerg] open() \"{}\" failed ({})", pid_file.0.display(), nginx_model::include::errno_text(&e));
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("proxy: no pid file: open() \"{}\" failed ({}); -s cannot find this process", pid_file.0.display(), nginx_model::include::errno_text(&e));
            false
        }
    };
    for l in proxy::files::not_emulated_lines(&cfg, &conf_notes(&cfg, profile)) {
        eprintln!("proxy: {l}");
    }
    eprintln!(
        "proxy: listening on {} ({profile:?} nginx profile)",
        proxy.addr()
    );
    let notice = |proxy: &Proxy, level: Level, text: &str| {
        proxy.log_error(nginx_model::logs::process_line(SystemTime::now(), std::process::id(), level, text));
    };
    loop {
        let (cmd, signo) = signals.next().await;
        notice(&proxy, Level::Notice, &cmd.received_notice(signo));
        match cmd {
            Command::Reload => {
                // ngx_init_cycle: a configuration that fails keeps the old cycle.
                let result = match proxy::files::read_conf(&args.conf, &opts.prefix) {
                    Ok(new) => proxy.reload(&new).await.map_err(|e| e.to_string()).map(|()| new),
                    Err(e) => Err(e.to_string()),
                };
                match result {
                    Ok(_) => notice(&proxy, Level::Notice, "start worker processes"),
                    Err(e) => {
                        eprintln!("proxy: [emerg] {e}");
                        notice(&proxy, Level::Emerg, &e);
                    }
                }
            }
            Command::Reopen => {
                if let Err(e) = proxy.reopen_logs() {
                    notice(&proxy, Level::Alert, &e.to_string());
                }
            }
            Command::Quit => {
                notice(&proxy, Level::Notice, "gracefully shutting down");
                proxy.quit().await;
                notice(&proxy, Level::Notice, "exit");
                break;
            }
            Command::Stop => {
                proxy.stop();
                notice(&proxy, Level::Notice, "exit");
                break;
            }
        }
    }
    // ngx_delete_pidfile.
    if pid_written {
        let _ = std::fs::remove_file(&pid_file.0);
    }
    ExitCode::SUCCESS
}

/// `nginx -s NAME` (`ngx_signal_process`): the pid file's pid gets the signal.
fn send_signal(name: &str, pid_file: &std::path::Path) -> ExitCode {
    let Some(cmd) = Command::from_s_arg(name) else {
        eprintln!("proxy: invalid option: \"-s {name}\"");
        return ExitCode::FAILURE;
    };
    let path = pid_file.display().to_string();
    let content = match std::fs::read(pid_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("proxy: [error] open() \"{path}\" failed ({})", nginx_model::include::errno_text(&e));
            return ExitCode::FAILURE;
        }
    };
    let pid = match nginx_model::signal::parse_pid(&content, &path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("proxy: [error] {e}");
            return ExitCode::FAILURE;
        }
    };
    // SAFETY: kill(2) with a pid and a signal number; no memory is shared.
    if unsafe { libc::kill(pid, cmd.signal_number()) } == -1 {
        let e = std::io::Error::last_os_error();
        eprintln!("proxy: [alert] kill({pid}, {}) failed ({})", cmd.signal_number(), nginx_model::include::errno_text(&e));
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The signals nginx's master handles.
struct Signals {
    hup: Signal,
    quit: Signal,
    term: Signal,
    int: Signal,
    usr1: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            quit: signal(SignalKind::quit())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }

    async fn next(&mut self) -> (Command, i32) {
        tokio::select! {
            _ = self.hup.recv() => (Command::Reload, 1),
            _ = self.quit.recv() => (Command::Quit, 3),
            _ = self.term.recv() => (Command::Stop, 15),
            _ = self.int.recv() => (Command::Stop, 2),
            _ = self.usr1.recv() => (Command::Reopen, 10),
        }
    }
}

/// What the resolved configuration leaves out (empty if it does not resolve).
fn conf_notes(cfg: &conf::Config, profile: Profile) -> Vec<(String, conf::Pos)> {
    nginx_model::resolve::resolve(cfg, profile)
        .map(|r| r.notes)
        .unwrap_or_default()
}
