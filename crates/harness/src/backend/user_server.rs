//! The user's own server (`--upstream-cmd 'CMD {addr}'`): a shell command
//! per server the scenario needs, each on its own loopback port, ready once
//! its port accepts connections, stopped by killing the process group we
//! created. The lab sees nothing inside it: no handler runs, no connection
//! events, none of the emulator's knobs. What it can be told is what the
//! command line carries (the placeholders in [`PLACEHOLDERS`]); a scenario
//! that needs more is a skip with the reason.

use super::real_go::{action_knob, config_knob};
use crate::child::{self, NotAccepting, Progress};
use crate::go::GO_SETTINGS;
use super::{BackendError, Unsupported, UpstreamBackend, UpstreamUnderTest};
use crate::timeline::{server_tag, EntryKind, Lane, TimelineEntry};
use crate::Action;
use async_trait::async_trait;
use go_model::ServerConfig;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a command may take to listen (a `go run` compiles first).
pub const READY_WAIT: Duration = Duration::from_secs(30);

/// How many of its last output lines an error quotes.
const TAIL_LINES: usize = 10;

/// After it has exited, or been killed, how long what it wrote may take
/// to be read (its pipes' EOF).
const OUTPUT_WAIT: Duration = Duration::from_secs(2);

/// The placeholders that say where to listen (one of them is required).
/// The others are the Go settings, [`GO_SETTINGS`]' placeholders.
pub const ADDR_PLACEHOLDERS: [(&str, &str); 2] = [("addr", "127.0.0.1:PORT to listen on (required, or {port})"), ("port", "PORT alone")];

/// Every placeholder `--upstream-cmd` expands: [`ADDR_PLACEHOLDERS`], then
/// [`GO_SETTINGS`]'. A scenario that sets a Go server setting runs only if
/// the command passes it on (its placeholder is in the command).
pub const PLACEHOLDERS: [&str; ADDR_PLACEHOLDERS.len() + GO_SETTINGS.len()] = {
    let mut all = [""; ADDR_PLACEHOLDERS.len() + GO_SETTINGS.len()];
    let mut i = 0;
    while i < all.len() {
        all[i] = if i < ADDR_PLACEHOLDERS.len() { ADDR_PLACEHOLDERS[i].0 } else { GO_SETTINGS[i - ADDR_PLACEHOLDERS.len()].placeholder };
        i += 1;
    }
    all
};

/// `scenarios --help` for `--upstream-cmd`: what the command gets (the
/// placeholders, from [`ADDR_PLACEHOLDERS`] and [`GO_SETTINGS`]; the wait,
/// from [`READY_WAIT`]) and what the server must serve (the paths the
/// catalogue requests, as `fixtures/go-upstream/main.go` and
/// `go_model::handlers` define them; `scenarios/tests/catalogue_files.rs`
/// checks that every path the catalogue requests is listed). Assembled at
/// compile time: clap's `long_help` in scenarios' main.rs takes it as a
/// `&'static str`.
pub const UPSTREAM_CMD_HELP: &str = match std::str::from_utf8(HELP.text()) {
    Ok(text) => text,
    Err(_) => panic!("the help is UTF-8"),
};

const HELP_HEAD: &str = "\
Run your own HTTP server as the upstream (instead of --upstream builtin|go).
CMD runs under `sh -c`, once per server the scenario needs, each on its own
free loopback port, after these placeholders are replaced:
";

const HELP_TAIL: &str = " s for the port to accept connections and, at the end,
kills the process group it started.

Your server must answer, for any method, as the reference server
(fixtures/go-upstream/main.go) does:
  /ok                      200 \"ok\\n\"
  /sleep?ms=N              sleep N ms, then 200 \"slept\\n\"
  /panic                   panic in the handler (net/http closes the connection)
  /recover-panic           panic caught by a recover middleware: 500
  /unauthorized            401 \"Unauthorized\\n\" at once, the request body left unread
  /partial?bytes=N&ms=M    write N bytes, flush, sleep M ms, write N more
  /big-header?bytes=N      a Set-Cookie header of \"session=\" and N bytes, 200 \"ok\\n\"
  /sse?events=N&ms=M&every=H
                           text/event-stream: N events \"data: i\\n\\n\", each flushed,
                           M ms apart, a \": ping\\n\\n\" comment every H ms between
  /content-length?bytes=M&declared=N
                           Content-Length: N set by hand (when declared is given), then
                           M bytes (fewer than N: Go closes after them)
  /big?bytes=N             N bytes in one write, no flush
  /panic-after-flush?bytes=N&ms=M, /abort,
  /timeout-handler?ms=N&limit=M   (see main.go; no catalogue scenario needs them)

Skipped, with the reason: scenarios that need an emulator knob (the
deterministic races, a listener handoff, a full backlog), a Go setting the
command does not pass on, or a graceful Shutdown. Handler runs inside your
server are not visible: those checks show \"?\" and are not applied.
Example: --upstream-cmd './my-server -addr {addr} -write-timeout {write_timeout}'";

/// The help, written into a buffer at compile time.
const HELP: HelpText<4096> = {
    let mut h = HelpText::new();
    h.push(HELP_HEAD);
    let mut i = 0;
    while i < ADDR_PLACEHOLDERS.len() + GO_SETTINGS.len() {
        let (name, what) = if i < ADDR_PLACEHOLDERS.len() {
            ADDR_PLACEHOLDERS[i]
        } else {
            (GO_SETTINGS[i - ADDR_PLACEHOLDERS.len()].placeholder, GO_SETTINGS[i - ADDR_PLACEHOLDERS.len()].help)
        };
        h.push("  {");
        h.push(name);
        h.push("}");
        h.pad(2 + "{read_header_timeout}".len() + 2);
        h.push(what);
        h.push("\n");
        i += 1;
    }
    h.push("The lab waits up to ");
    h.push_number(READY_WAIT.as_secs());
    h.push(HELP_TAIL);
    h
};

/// Text built in a const context.
struct HelpText<const N: usize> {
    buf: [u8; N],
    len: usize,
    line_start: usize,
}

impl<const N: usize> HelpText<N> {
    const fn new() -> Self {
        HelpText { buf: [0; N], len: 0, line_start: 0 }
    }

    const fn text(&self) -> &[u8] {
        self.buf.split_at(self.len).0
    }

    const fn push(&mut self, s: &str) {
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            self.buf[self.len] = b[i];
            self.len += 1;
            if b[i] == b'\n' {
                self.line_start = self.len;
            }
            i += 1;
        }
    }

    /// Spaces up to column `col` (at least two).
    const fn pad(&mut self, col: usize) {
        self.push("  ");
        while self.len - self.line_start < col {
            self.push(" ");
        }
    }

    const fn push_number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut k = 0;
        loop {
            digits[k] = b'0' + (n % 10) as u8;
            k += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        while k > 0 {
            k -= 1;
            self.buf[self.len] = digits[k];
            self.len += 1;
        }
    }
}

/// A part of a command template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// One of [`PLACEHOLDERS`].
    Slot(&'static str),
}

/// A `--upstream-cmd` that is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the command is empty")]
    Empty,
    #[error("{0:?} has no {{addr}} (or {{port}}): the lab picks a free loopback port per server and must tell your server to listen there, e.g. 'my-server -addr {{addr}}'")]
    NoAddr(String),
    #[error("unknown placeholder {{{name}}} (known: {known})")]
    Unknown { name: String, known: String },
}

/// `--upstream-cmd`, parsed: shell text with `{name}` placeholders. `${VAR}`
/// and braces around anything but a lowercase name are the shell's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdTemplate {
    source: String,
    pieces: Vec<Piece>,
}

impl std::str::FromStr for CmdTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<CmdTemplate, TemplateError> {
        CmdTemplate::parse(s)
    }
}

impl CmdTemplate {
    pub fn parse(source: &str) -> Result<CmdTemplate, TemplateError> {
        if source.trim().is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            let (before, after) = rest.split_at(open);
            text.push_str(before);
            let name = after[1..].find('}').map(|close| &after[1..1 + close]);
            let shell_var = before.ends_with('$');
            match name {
                Some(name) if !shell_var && !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {
                    let slot = PLACEHOLDERS.iter().find(|n| **n == name).copied().ok_or_else(|| TemplateError::Unknown {
                        name: name.to_string(),
                        known: PLACEHOLDERS.iter().map(|n| format!("{{{n}}}")).collect::<Vec<_>>().join(" "),
                    })?;
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                    pieces.push(Piece::Slot(slot));
                    rest = &after[name.len() + 2..];
                }
                _ => {
                    text.push('{');
                    rest = &after[1..];
                }
            }
        }
        text.push_str(rest);
        pieces.push(Piece::Text(text));
        pieces.retain(|p| *p != Piece::Text(String::new()));
        let t = CmdTemplate { source: source.to_string(), pieces };
        if !t.uses("addr") && !t.uses("port") {
            return Err(TemplateError::NoAddr(source.to_string()));
        }
        Ok(t)
    }

    /// Whether the command carries placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Slot(n) if *n == name))
    }

    /// The command as given.
    pub fn describe(&self) -> String {
        format!("`{}`", self.source)
    }

    /// The command line for one server listening on `addr` with `cfg`.
    pub fn expand(&self, addr: SocketAddr, cfg: &ServerConfig) -> String {
        self.pieces
            .iter()
            .map(|p| match p {
                Piece::Text(t) => t.clone(),
                Piece::Slot("addr") => addr.to_string(),
                Piece::Slot("port") => addr.port().to_string(),
                Piece::Slot(name) => match GO_SETTINGS.iter().find(|s| s.placeholder == *name) {
                    Some(s) => (s.value)(cfg),
                    None => format!("{{{name}}}"),
                },
            })
            .collect()
    }

    /// The first Go setting `cfg` changes from `http.Server`'s zero value
    /// (its value as passed on differs) that the command does not pass on:
    /// the scenario would run against the user's own setting instead, so
    /// it cannot run.
    pub fn missing_setting(&self, cfg: &ServerConfig) -> Option<&'static str> {
        let d = ServerConfig::default();
        GO_SETTINGS.iter().find(|s| (s.value)(cfg) != (s.value)(&d) && !self.uses(s.placeholder)).map(|s| s.placeholder)
    }
}

const BACKEND: &str = "your server";

/// Local port and peer port of every ESTABLISHED socket in a
/// `/proc/net/tcp` table whose local port is `port`: the peers connected
/// to a server listening there.
#[cfg(test)]
fn peers_of(table: &str, port: u16) -> Vec<u16> {
    established_peers(crate::sockets::rows(table), port)
}

fn established_peers(rows: impl Iterator<Item = crate::sockets::Row>, port: u16) -> Vec<u16> {
    rows.filter(|r| r.state == crate::sockets::ESTABLISHED && r.local_port == port).map(|r| r.remote_port).collect()
}

/// The proxy-side ports of the connections a server on `port` holds now.
fn peers_now(port: u16) -> Vec<u16> {
    established_peers(crate::sockets::now().into_iter(), port)
}

/// One started command: its process group and the last lines it wrote.
struct Proc {
    child: tokio::process::Child,
    /// The group we created for it (its PID): the shell and whatever it
    /// started. Taken when the group is killed.
    pgid: Option<u32>,
    addr: SocketAddr,
    tail: Arc<Mutex<VecDeque<String>>>,
    /// Changes as its output is read; every pipe ended: all it wrote is in `tail`.
    output: watch::Receiver<Progress>,
    /// Its connections' peer ports, read just before it was killed.
    peers_at_kill: Option<Vec<u16>>,
}

impl Proc {
    /// SIGKILL to the group we created, then reap the shell (bounded).
    /// Nothing reaps the shell before this ([`wait_ready`] sees its exit
    /// without reaping it), so the group ID cannot have been reused.
    async fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            child::kill_group(pgid);
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    /// Whether the shell has exited, seen without reaping it.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.pgid.and_then(|pid| child::peek_exit(pid, false).ok().flatten())
    }

    fn tail_text(&self) -> String {
        let tail = self.tail.lock();
        if tail.is_empty() {
            "(it wrote nothing)".into()
        } else {
            format!("its last lines:\n  {}", tail.iter().cloned().collect::<Vec<_>>().join("\n  "))
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            // As in `kill`; the leader is reaped by tokio after this.
            child::kill_group(pgid);
        }
    }
}

/// The user's servers, one process group each.
pub struct UserServer {
    procs: Vec<Proc>,
    template: CmdTemplate,
    started: Vec<(Duration, String)>,
}

impl UserServer {
    /// Only what a plain process allows: no lab knobs, no Go setting the
    /// command does not pass on, and of the actions only a crash (SIGKILL).
    pub fn supports(t: &CmdTemplate, cfg: &ServerConfig, action: Action) -> Result<(), Unsupported> {
        if let Some(what) = config_knob(cfg).or_else(|| action_knob(action)) {
            return Err(Unsupported::knob(BACKEND, what));
        }
        if let Some(name) = t.missing_setting(cfg) {
            let why = "the scenario sets it; pass it on with this placeholder in --upstream-cmd";
            return Err(Unsupported { backend: BACKEND, what: format!("{{{name}}}"), why });
        }
        if matches!(action, Action::ReuseportHandoffQueued | Action::FdHandoffQueued) {
            let why = "the lab can neither pause your server's accept loop nor hand its listener over; the reference server (--upstream go) does (SIGUSR1, SIGUSR2)";
            return Err(Unsupported { backend: BACKEND, what: "a listener handoff with a connection queued".into(), why });
        }
        if action == Action::HoldConnections || cfg.fd_limit.is_some() {
            let why = "the lab neither sets your command's RLIMIT_NOFILE nor reads Go's accept error from its output; the reference server (--upstream go) runs it";
            return Err(Unsupported { backend: BACKEND, what: "an fd limit or held connections (fd_limit, hold-connections)".into(), why });
        }
        if action == Action::Shutdown {
            let why = "SIGTERM need not run http.Server.Shutdown in your server; the reference server (--upstream go) does";
            return Err(Unsupported { backend: BACKEND, what: "a graceful Shutdown".into(), why });
        }
        Ok(())
    }

    /// Starts `servers` commands, each on a free loopback port, and waits
    /// until each accepts connections (bounded by [`READY_WAIT`]).
    pub async fn start(t: &CmdTemplate, cfg: &ServerConfig, servers: usize, epoch: Instant) -> Result<UserServer, BackendError> {
        let mut us = UserServer { procs: Vec::new(), template: t.clone(), started: Vec::new() };
        for i in 0..servers.max(1) {
            let port = crate::free_port().map_err(BackendError::FreePort)?;
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let line = t.expand(addr, cfg);
            let proc = spawn(&line, addr)?;
            us.procs.push(proc);
            let p = us.procs.last_mut().expect("just pushed");
            if let Err(e) = wait_ready(p, &line, READY_WAIT).await {
                us.stop_all().await;
                return Err(e);
            }
            us.started.push((epoch.elapsed(), format!("{}listening: {line}", server_tag(i, servers.max(1)))));
        }
        Ok(us)
    }

    async fn stop_all(&mut self) {
        for p in &mut self.procs {
            p.kill().await;
        }
    }
}

/// `sh -c LINE` in a new process group, its output read line by line (a
/// pipe left unread would block or kill it), the last lines kept.
fn spawn(line: &str, addr: SocketAddr) -> Result<Proc, BackendError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(line)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BackendError::UserServer(format!("cannot run sh -c {line:?}: {e}")))?;
    let pgid = child.id();
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let pipes: Vec<Box<dyn tokio::io::AsyncRead + Unpin + Send>> =
        [child.stdout.take().map(|p| Box::new(p) as _), child.stderr.take().map(|p| Box::new(p) as _)].into_iter().flatten().collect();
    let sink = tail.clone();
    let output = child::read_lines(pipes, move |l| {
        let mut t = sink.lock();
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(l);
    });
    Ok(Proc { child, pgid, addr, tail, output, peers_at_kill: None })
}

/// Until the port accepts a connection: a server announces readiness no
/// other way the lab can rely on. Bounded; an exit ends the wait at once.
/// Either way out, the group is killed (what is left of it) and its output
/// read to the end (bounded) before it is quoted.
async fn wait_ready(p: &mut Proc, line: &str, limit: Duration) -> Result<(), BackendError> {
    let waited = child::wait_accepting(p.addr, Instant::now() + limit, || p.exited()).await;
    let text = match waited {
        Ok(()) => return Ok(()),
        Err(NotAccepting::Exited(status)) => format!("{line:?} exited ({status}) before listening on {}", p.addr),
        Err(NotAccepting::TimedOut) => format!("{line:?} did not listen on {} within {:.1} s", p.addr, limit.as_secs_f64()),
    };
    p.kill().await;
    child::wait_pipes_closed(&mut p.output, OUTPUT_WAIT).await;
    Err(BackendError::UserServer(format!("{text}; {}", p.tail_text())))
}

#[async_trait]
impl UpstreamUnderTest for UserServer {
    fn backend(&self) -> UpstreamBackend {
        UpstreamBackend::Cmd
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.procs.iter().map(|p| p.addr).collect()
    }

    /// The lab cannot see inside the user's server.
    async fn handler_runs(&mut self, _path: &str) -> Option<u64> {
        None
    }

    /// From the kernel's socket table (a crashed server's as it was just
    /// before the kill).
    fn accepted_ports(&self, server: usize) -> Vec<u16> {
        self.procs.get(server).map(|p| p.peers_at_kill.clone().unwrap_or_else(|| peers_now(p.addr.port()))).unwrap_or_default()
    }

    fn timeline(&self) -> Vec<TimelineEntry> {
        self.started.iter().map(|(at, text)| TimelineEntry::new(*at, Lane::Upstream, EntryKind::Server, text.clone())).collect()
    }

    fn program(&self) -> Option<String> {
        Some(self.template.describe())
    }

    async fn act(&mut self, action: Action) -> Result<(), BackendError> {
        match action {
            Action::None => Ok(()),
            Action::Crash => {
                let first = &mut self.procs[0];
                first.peers_at_kill = Some(peers_now(first.addr.port()));
                first.kill().await;
                Ok(())
            }
            other => {
                let what = action_knob(other).unwrap_or("a graceful Shutdown");
                Err(Unsupported::knob(BACKEND, what).into())
            }
        }
    }

    async fn stop(mut self: Box<Self>) {
        self.stop_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::child::tests::live_members;
    use go_model::IdleRace;

    fn t(s: &str) -> Result<CmdTemplate, TemplateError> {
        CmdTemplate::parse(s)
    }

    #[test]
    fn templates_expand_placeholders_and_leave_the_shell_alone() {
        let addr: SocketAddr = ([127, 0, 0, 1], 40123).into();
        let cfg = ServerConfig { write_timeout: Duration::from_millis(60), ..ServerConfig::default() };
        let cases = [
            ("./srv -addr {addr}", "./srv -addr 127.0.0.1:40123"),
            ("PORT={port} ./srv", "PORT=40123 ./srv"),
            ("srv --addr={addr} --write-timeout={write_timeout} --keepalives={keepalives}", "srv --addr=127.0.0.1:40123 --write-timeout=60ms --keepalives=true"),
            ("cd ${HOME}/x && srv {addr} '{}' '{A}' {addr", "cd ${HOME}/x && srv 127.0.0.1:40123 '{}' '{A}' {addr"),
            ("srv -idle {idle_timeout} -h {max_header_bytes} {addr}", "srv -idle 0s -h 1048576 127.0.0.1:40123"),
        ];
        for (src, want) in cases {
            assert_eq!(t(src).unwrap().expand(addr, &cfg), want, "{src}");
        }
    }

    #[test]
    fn the_help_lists_every_placeholder_and_the_wait() {
        for name in PLACEHOLDERS {
            let line = UPSTREAM_CMD_HELP.lines().find(|l| l.starts_with(&format!("  {{{name}}} "))).unwrap_or_else(|| panic!("{{{name}}} not listed"));
            assert!(line.len() > 25 && line[..25].ends_with("  ") && !line[25..].starts_with(' '), "aligned at column 25: {line:?}");
        }
        assert!(UPSTREAM_CMD_HELP.contains(&format!("waits up to {} s for the port", READY_WAIT.as_secs())), "{UPSTREAM_CMD_HELP}");
        assert!(UPSTREAM_CMD_HELP.ends_with("-write-timeout {write_timeout}'"), "the whole text");
    }

    #[test]
    fn bad_templates_say_why() {
        assert_eq!(t("  "), Err(TemplateError::Empty));
        assert!(matches!(t("./srv -addr :8080"), Err(TemplateError::NoAddr(_))));
        assert!(matches!(t("./srv ${addr}"), Err(TemplateError::NoAddr(_))), "a shell variable is not a placeholder");
        let e = t("./srv {addr} {write_timout}").unwrap_err();
        assert!(matches!(&e, TemplateError::Unknown { name, .. } if name == "write_timout"), "{e}");
        assert!(e.to_string().contains("{write_timeout}"), "lists the known names: {e}");
        assert!(t("./srv -addr {addr}").is_ok());
    }

    #[test]
    fn only_what_a_command_line_can_carry() {
        let plain = t("srv {addr}").unwrap();
        let passes = t("srv {addr} -w {write_timeout}").unwrap();
        let default = ServerConfig::default();
        assert_eq!(UserServer::supports(&plain, &default, Action::None), Ok(()));
        assert_eq!(UserServer::supports(&plain, &default, Action::Crash), Ok(()));
        let wt = ServerConfig { write_timeout: Duration::from_millis(60), ..default.clone() };
        let err = UserServer::supports(&plain, &wt, Action::None).unwrap_err();
        assert_eq!(err.to_string(), "your server cannot run {write_timeout} (the scenario sets it; pass it on with this placeholder in --upstream-cmd)");
        assert_eq!(UserServer::supports(&passes, &wt, Action::None), Ok(()));
        let race = ServerConfig { idle_race: Some(IdleRace::Fin), ..default.clone() };
        assert_eq!(UserServer::supports(&plain, &race, Action::None).unwrap_err().why, "an emulator-only knob");
        assert!(UserServer::supports(&plain, &default, Action::Shutdown).unwrap_err().to_string().contains("graceful Shutdown"));
        assert!(UserServer::supports(&plain, &default, Action::FillBacklog).is_err());
        assert!(UserServer::supports(&plain, &default, Action::FdHandoffQueued).is_err());
        assert!(UserServer::supports(&plain, &default, Action::HoldConnections).is_err());
    }

    /// A command that never listens: the wait ends at its limit, quotes
    /// what it wrote, and the process group is gone afterwards.
    #[tokio::test]
    async fn a_command_that_never_listens_is_stopped_with_its_output() {
        // Free on 127.0.0.1 when picked, but another test may take that port
        // there before the wait ends (it then "listens"): 127.0.0.3, where no
        // test binds, stays silent.
        let port = crate::free_port().unwrap();
        let addr: SocketAddr = ([127, 0, 0, 3], port).into();
        let line = "echo warming up; sleep 30 & wait";
        let mut p = spawn(line, addr).unwrap();
        let pgid = p.pgid.unwrap() as i32;
        let started = Instant::now();
        let err = wait_ready(&mut p, line, Duration::from_millis(300)).await.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(err.contains("did not listen on 127.0.0.3:") && err.contains("within 0.3 s") && err.contains("warming up"), "{err}");
        // Killed members may linger as zombies until their new parent
        // reaps them: count the members that are not.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !live_members(pgid).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(live_members(pgid), Vec::<u32>::new(), "the group (the shell and its sleep) was killed");
    }

    #[tokio::test]
    async fn a_command_that_exits_says_how() {
        let addr: SocketAddr = ([127, 0, 0, 1], crate::free_port().unwrap()).into();
        let line = "echo 'flag provided but not defined: -addr' >&2; exit 2";
        let mut p = spawn(line, addr).unwrap();
        let err = wait_ready(&mut p, line, Duration::from_secs(10)).await.unwrap_err().to_string();
        assert!(err.contains("exited (exit status: 2) before listening") && err.contains("flag provided but not defined"), "{err}");
    }

    #[test]
    fn peers_from_the_socket_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:9C40 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:9C40 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:D431 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 20 4 30 10 -1\n\
   3: 0100007F:9C40 0100007F:D432 08 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 20 4 30 10 -1\n";
        assert_eq!(peers_of(table, 0x9C40), [0xD431], "established server-side sockets only");
        assert_eq!(peers_of(table, 1), Vec::<u16>::new());
    }
}
