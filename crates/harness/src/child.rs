//! Child processes the harness starts, handled one way everywhere: a
//! command run to completion within a time limit ([`run_bounded`]), output
//! read line by line with an event when every pipe has ended
//! ([`read_lines`]), a wait until a port accepts connections
//! ([`wait_accepting`]). Every wait is bounded. A process group we created
//! is killed while its leader is still unreaped ([`peek_exit`] sees an exit
//! without reaping), so its group ID cannot have been reused.

use parking_lot::Mutex;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;

/// Whether child `pid` has exited, and how, without reaping it (waitid(2)
/// with `WNOWAIT`): until it is reaped its PID, and the ID of a group it
/// leads, stay ours. `block` waits for the exit.
pub(crate) fn peek_exit(pid: u32, block: bool) -> io::Result<Option<ExitStatus>> {
    let flags = libc::WEXITED | libc::WNOWAIT | if block { 0 } else { libc::WNOHANG };
    loop {
        // SAFETY: an all-zero siginfo_t is valid (plain integers and unions of them).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(2) on one PID writes only into `info`.
        if unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) } == -1 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid filled `info` for a child (si_pid 0: no exit yet, WNOHANG).
        let (who, status) = unsafe { (info.si_pid(), info.si_status()) };
        if who == 0 {
            return Ok(None);
        }
        // As wait(2) encodes it: an exit code in the second byte, a signal
        // in the low bits (0x80: it dumped core).
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_DUMPED => status | 0x80,
            _ => status,
        };
        return Ok(Some(ExitStatus::from_raw(raw)));
    }
}

/// SIGKILL to process group `pgid`, one we created (`process_group(0)`)
/// and whose leader we have not reaped.
pub(crate) fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        if pgid > 0 {
            // SAFETY: kill(2) on a group we created; its unreaped leader
            // keeps the ID from being reused.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// Why [`run_bounded`] has no output to give.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Spawn(io::Error),
    #[error("it did not exit within {} s (its process group was killed)", .0.as_secs_f64())]
    TimedOut(Duration),
    #[error("cannot wait for it: {0}")]
    Wait(io::Error),
}

/// After the group is killed, how long its pipes may take to end (a member
/// that left the group could hold them; its output is then cut short).
const PIPES_AFTER_KILL: Duration = Duration::from_secs(2);

/// Runs `cmd` in a process group of its own, stdin empty, both outputs read
/// on threads as they come (so a chatty child never blocks on a full pipe;
/// the first `keep` bytes of each are kept). When it exits, or at `limit`,
/// whatever is left of its group (a background process holding the pipes)
/// is killed, then it is reaped. Every wait is bounded.
pub fn run_bounded(mut cmd: Command, limit: Duration, keep: usize) -> Result<Output, RunError> {
    let deadline = Instant::now() + limit;
    let mut child = cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().map_err(RunError::Spawn)?;
    let pid = child.id();
    let stdout = child.stdout.take().map(|p| collect(p, keep));
    let stderr = child.stderr.take().map(|p| collect(p, keep));
    // The exit, seen without reaping, on a thread: the wait is an event.
    let (tx, exit) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(peek_exit(pid, true));
    });
    let seen = exit.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    if let Ok(Err(e)) = seen {
        return Err(RunError::Wait(e));
    }
    // The leader is unreaped either way: its group is still ours to kill.
    kill_group(pid);
    let timed_out = seen.is_err();
    if timed_out && exit.recv_timeout(PIPES_AFTER_KILL).is_err() {
        // Not dead even after SIGKILL (stuck in the kernel): left unreaped.
        return Err(RunError::TimedOut(limit));
    }
    let status = child.wait().map_err(RunError::Wait)?;
    if timed_out {
        return Err(RunError::TimedOut(limit));
    }
    let after_kill = Instant::now() + PIPES_AFTER_KILL;
    let take = |pipe: Option<Collected>| pipe.map(|c| c.finish(after_kill)).unwrap_or_default();
    Ok(Output { status, stdout: take(stdout), stderr: take(stderr) })
}

/// One output pipe being read on a thread.
struct Collected {
    bytes: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
}

impl Collected {
    /// What was read, once the pipe has ended or at `deadline`.
    fn finish(self, deadline: Instant) -> Vec<u8> {
        let _ = self.done.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        std::mem::take(&mut *self.bytes.lock())
    }
}

/// Reads `pipe` to its end on a thread, keeping the first `keep` bytes.
fn collect(mut pipe: impl Read + Send + 'static, keep: usize) -> Collected {
    let bytes = Arc::new(Mutex::new(Vec::new()));
    let (tx, done) = mpsc::channel();
    let kept = bytes.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    let mut b = kept.lock();
                    let room = keep.saturating_sub(b.len()).min(n);
                    b.extend_from_slice(&chunk[..room]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send(());
    });
    Collected { bytes, done }
}

/// What [`read_lines`] has read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Lines read, all pipes together.
    pub lines: u64,
    /// Pipes not yet at EOF: 0 once the process and everything that shared
    /// its output have exited and all they wrote has been read.
    pub open: usize,
}

/// Reads each pipe line by line on a task, handing every line (bytes read
/// as bytes, lossily UTF-8, without its newline) to `on_line`; a pipe left
/// unread would block or kill the writer (SIGPIPE). The receiver changes
/// after each line has been handed over and at each pipe's EOF.
pub(crate) fn read_lines<F>(pipes: Vec<Box<dyn AsyncRead + Unpin + Send>>, on_line: F) -> watch::Receiver<Progress>
where
    F: Fn(String) + Clone + Send + 'static,
{
    let (tx, rx) = watch::channel(Progress { lines: 0, open: pipes.len() });
    for pipe in pipes {
        let tx = tx.clone();
        let on_line = on_line.clone();
        tokio::spawn(async move {
            let mut rd = BufReader::new(pipe);
            let mut raw = Vec::new();
            while matches!(rd.read_until(b'\n', &mut raw).await, Ok(n) if n > 0) {
                on_line(String::from_utf8_lossy(raw.strip_suffix(b"\n").unwrap_or(&raw)).into_owned());
                raw.clear();
                tx.send_modify(|p| p.lines += 1);
            }
            tx.send_modify(|p| p.open -= 1);
        });
    }
    rx
}

/// Waits (bounded by `timeout`) until every pipe of `rx` has ended.
pub(crate) async fn wait_pipes_closed(rx: &mut watch::Receiver<Progress>, timeout: Duration) -> bool {
    matches!(tokio::time::timeout(timeout, rx.wait_for(|p| p.open == 0)).await, Ok(Ok(_)))
}

/// Why [`wait_accepting`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotAccepting {
    /// The process exited first.
    Exited(ExitStatus),
    /// The deadline passed.
    TimedOut,
}

/// How long one connection attempt may take.
const CONNECT_ATTEMPT: Duration = Duration::from_millis(100);
/// Between attempts: a refused connection returns at once.
const RETRY: Duration = Duration::from_millis(10);

/// Until `addr` accepts a connection, the only readiness signal nginx or a
/// user's server gives, so the port is tried every few milliseconds. Ends
/// at once when `exited` reports an exit, and at `deadline`.
pub(crate) async fn wait_accepting(addr: SocketAddr, deadline: Instant, mut exited: impl FnMut() -> Option<ExitStatus>) -> Result<(), NotAccepting> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if let Ok(Ok(_)) = tokio::time::timeout(CONNECT_ATTEMPT.min(left), tokio::net::TcpStream::connect(addr)).await {
            return Ok(());
        }
        if let Some(status) = exited() {
            return Err(NotAccepting::Exited(status));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NotAccepting::TimedOut);
        }
        tokio::time::sleep(RETRY.min(left)).await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// PIDs in process group `pgid` that are not zombies (/proc/PID/stat:
    /// "pid (comm) state ppid pgrp …").
    pub(crate) fn live_members(pgid: i32) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
        dir.filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            (fields.first() != Some(&"Z") && fields.get(2)?.parse::<i32>().ok()? == pgid).then_some(pid)
        })
        .collect()
    }

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn exits_are_seen_without_reaping() {
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let status = peek_exit(child.id(), true).unwrap().unwrap();
        assert_eq!(status.code(), Some(3));
        assert_eq!(peek_exit(child.id(), false).unwrap(), Some(status), "still unreaped: seen again");
        assert_eq!(child.wait().unwrap().code(), Some(3), "reaped here");
        let mut killed = Command::new("sleep").arg("30").spawn().unwrap();
        assert_eq!(peek_exit(killed.id(), false).unwrap(), None, "running");
        killed.kill().unwrap();
        assert_eq!(peek_exit(killed.id(), true).unwrap().unwrap().signal(), Some(libc::SIGKILL));
        killed.wait().unwrap();
    }

    #[test]
    fn output_beyond_a_pipe_buffer_and_a_background_holder_do_not_hang() {
        // 200 KiB on stdout (more than a pipe holds), a line on stderr, and a
        // background process that keeps both pipes open after the shell exits.
        let started = Instant::now();
        let out = run_bounded(sh("head -c 204800 /dev/zero; echo done >&2; sleep 30 & exit 4"), Duration::from_secs(20), 64 * 1024).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
        assert_eq!((out.status.code(), out.stdout.len(), out.stderr.as_slice()), (Some(4), 64 * 1024, &b"done\n"[..]));
    }

    #[test]
    fn a_command_past_its_limit_is_killed_with_its_group() {
        let pidfile = std::env::temp_dir().join(format!("badgateway-lab-run-bounded-{}", std::process::id()));
        let started = Instant::now();
        let cmd = sh(&format!("echo $$ > {}; sleep 30 & wait", pidfile.display()));
        let err = run_bounded(cmd, Duration::from_millis(300), 1024).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(err.to_string(), "it did not exit within 0.3 s (its process group was killed)");
        // The group's ID is the shell's PID.
        let pgid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let _ = std::fs::remove_file(&pidfile);
        // The killed sleep, no child of ours, dies when next scheduled:
        // bounded, there is no event for it.
        let until = Instant::now() + Duration::from_secs(2);
        while !live_members(pgid).is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(live_members(pgid), Vec::<u32>::new(), "the shell and its sleep were killed");
    }
}
