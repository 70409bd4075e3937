//! nginx's process control: `nginx -s NAME` and the signals the master
//! handles (`ngx_signal_handler`, `ngx_signal_process`), the pid file.
//! Decisions only: the proxy binary sends and handles the signals.

use crate::conf::{Config, NginxFile};

/// What a signal asks of nginx (`ngx_signals[]` in os/unix/ngx_process.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// SIGQUIT (`-s quit`): stop accepting, finish the requests in flight, exit.
    Quit,
    /// SIGTERM and SIGINT (`-s stop`): exit now.
    Stop,
    /// SIGHUP (`-s reload`): re-read the configuration.
    Reload,
    /// SIGUSR1 (`-s reopen`): reopen the log files.
    Reopen,
}

impl Command {
    /// `nginx -s NAME` (`ngx_get_options`: stop, quit, reopen, reload only).
    pub fn from_s_arg(name: &str) -> Option<Command> {
        match name {
            "stop" => Some(Command::Stop),
            "quit" => Some(Command::Quit),
            "reopen" => Some(Command::Reopen),
            "reload" => Some(Command::Reload),
            _ => None,
        }
    }

    /// The signal `-s` sends (`ngx_os_signal_process`).
    pub fn signal_number(self) -> i32 {
        match self {
            Command::Stop => 15,   // SIGTERM
            Command::Quit => 3,    // SIGQUIT
            Command::Reload => 1,  // SIGHUP
            Command::Reopen => 10, // SIGUSR1
        }
    }

    /// `ngx_signal_handler`'s notice when the signal comes: `signal 1
    /// (SIGHUP) received, reconfiguring` (nginx adds `from PID` when the
    /// kernel says who sent it).
    pub fn received_notice(self, signo: i32) -> String {
        let (name, action) = match (self, signo) {
            (Command::Reload, _) => ("SIGHUP", ", reconfiguring"),
            (Command::Quit, _) => ("SIGQUIT", ", shutting down"),
            (Command::Reopen, _) => ("SIGUSR1", ", reopening"),
            (Command::Stop, 2) => ("SIGINT", ", exiting"),
            (Command::Stop, _) => ("SIGTERM", ", exiting"),
        };
        format!("signal {signo} ({name}) received{action}")
    }
}

/// nginx's compiled-in pid path (`NGX_PID_PATH`, `--pid-path`): relative
/// to the prefix. nginx's source default; Debian builds say /run/nginx.pid.
pub const DEFAULT_PID_PATH: &str = "logs/nginx.pid";

/// The pid file's path as the configuration names it (the last `pid`
/// directive), or `None` for nginx's default (`ngx_core_module_init_conf`).
pub fn pid_path(cfg: &Config) -> Option<&str> {
    cfg.nginx_files.0.iter().rev().find_map(|f| match f {
        NginxFile::Pid(p) => Some(p.as_str()),
        _ => None,
    })
}

/// Why `-s` cannot read a pid file's content (`ngx_signal_process`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid PID number \"{0}\" in \"{1}\"")]
pub struct InvalidPid(pub String, pub String);

/// `ngx_signal_process`: the file's bytes up to the first CR or LF, read
/// with `ngx_atoi` (digits only, no sign, no spaces).
pub fn parse_pid(content: &[u8], path: &str) -> Result<i32, InvalidPid> {
    let end = content.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(content.len());
    let text = &content[..end];
    let bad = || InvalidPid(String::from_utf8_lossy(text).into_owned(), path.to_string());
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(text).ok().and_then(|t| t.parse::<i32>().ok()).filter(|&p| p > 0).ok_or_else(bad)
}

/// The pid file's content as nginx writes it (`ngx_create_pidfile`): the
/// pid and a newline.
pub fn pid_file_content(pid: u32) -> String {
    format!("{pid}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s_arguments_and_their_signals() {
        for (arg, cmd, sig) in [("stop", Command::Stop, 15), ("quit", Command::Quit, 3), ("reload", Command::Reload, 1), ("reopen", Command::Reopen, 10)] {
            assert_eq!(Command::from_s_arg(arg), Some(cmd), "{arg}");
            assert_eq!(cmd.signal_number(), sig, "{arg}");
        }
        for bad in ["restart", "QUIT", "", "term"] {
            assert_eq!(Command::from_s_arg(bad), None, "{bad}");
        }
    }

    #[test]
    fn pid_file_contents() {
        let p = "logs/nginx.pid";
        assert_eq!(parse_pid(b"1234\n", p), Ok(1234));
        assert_eq!(parse_pid(b"1234\r\n", p), Ok(1234));
        assert_eq!(parse_pid(b"1234", p), Ok(1234));
        assert_eq!(parse_pid(pid_file_content(77).as_bytes(), p), Ok(77));
        for bad in [&b""[..], b"\n", b" 12\n", b"12 \n", b"-1\n", b"0\n", b"abc\n", b"99999999999\n"] {
            assert!(parse_pid(bad, p).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert_eq!(parse_pid(b"x1\n", p).unwrap_err().to_string(), "invalid PID number \"x1\" in \"logs/nginx.pid\"");
    }

    #[test]
    fn received_notices() {
        assert_eq!(Command::Reload.received_notice(1), "signal 1 (SIGHUP) received, reconfiguring");
        assert_eq!(Command::Quit.received_notice(3), "signal 3 (SIGQUIT) received, shutting down");
        assert_eq!(Command::Stop.received_notice(15), "signal 15 (SIGTERM) received, exiting");
        assert_eq!(Command::Stop.received_notice(2), "signal 2 (SIGINT) received, exiting");
        assert_eq!(Command::Reopen.received_notice(10), "signal 10 (SIGUSR1) received, reopening");
    }

    #[test]
    fn the_last_pid_directive_names_the_file() {
        let cfg = crate::conf::parse("pid a.pid;\nevents {}\n", "t.conf").unwrap();
        assert_eq!(pid_path(&cfg), Some("a.pid"));
        let cfg = crate::conf::parse("events {}\n", "t.conf").unwrap();
        assert_eq!(pid_path(&cfg), None);
    }
}
