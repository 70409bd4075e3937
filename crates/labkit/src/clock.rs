//! Waits at sub-millisecond precision.
//!
//! tokio's timer wheel works in whole milliseconds: a deadline is rounded up
//! to the next tick and the driver wakes on `epoll_wait`'s millisecond
//! timeout, so every wait ends 0–2 ms late. The races this lab reproduces
//! live in windows a few hundred microseconds wide (Go's idle deadline
//! against nginx's next request), so the emulators and the runner's gaps
//! wait here instead: the long stretch on tokio's wheel, the last
//! [`COARSE_MARGIN`] on a `timerfd` registered with tokio's reactor. A
//! timerfd is an hrtimer with no slack (`timerfd_settime` arms it with a
//! zero range), so the wake-up comes when the reactor's thread is scheduled,
//! typically within tens of microseconds.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;

/// How long before a deadline the wait leaves tokio's wheel (which fires up
/// to about 1 ms late) for a timerfd.
pub const COARSE_MARGIN: Duration = Duration::from_millis(3);

/// Sleeps until `deadline`, waking within tens of microseconds of it.
pub async fn sleep_until(deadline: Instant) {
    let now = Instant::now();
    if deadline > now + COARSE_MARGIN {
        tokio::time::sleep_until((deadline - COARSE_MARGIN).into()).await;
    }
    let now = Instant::now();
    if deadline <= now {
        return;
    }
    match TimerFd::arm(deadline - now) {
        Ok(t) => t.expired().await,
        // No timerfd (fd limit): tokio's wheel, late but still bounded.
        Err(_) => tokio::time::sleep_until(deadline.into()).await,
    }
}

/// How long before a paced deadline [`pace_until`] stops sleeping and spins.
pub const SPIN: Duration = Duration::from_micros(250);

/// Like [`sleep_until`], but spins through the last [`SPIN`]: waking an
/// idle CPU (a VM's halted vCPU especially) takes 50–200 µs, which a
/// client's request gap cannot afford and a server's deadline (whose
/// real counterpart pays the same wake-up) must not be spared. It holds
/// its worker thread for at most [`SPIN`] plus the sleep's own lateness.
pub async fn pace_until(deadline: Instant) {
    if let Some(early) = deadline.checked_sub(SPIN) {
        sleep_until(early).await;
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// Sleeps for `d` (see [`sleep_until`]).
pub async fn sleep(d: Duration) {
    sleep_until(Instant::now() + d).await
}

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// `fut`, unless `deadline` comes first. Like `tokio::time::timeout_at`,
/// a future that is ready when polled wins over a deadline that passed.
pub async fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Result<F::Output, Elapsed> {
    tokio::select! {
        biased;
        out = fut => Ok(out),
        _ = sleep_until(deadline) => Err(Elapsed),
    }
}

/// A one-shot CLOCK_MONOTONIC timerfd (std's `Instant` is CLOCK_MONOTONIC).
struct TimerFd(AsyncFd<OwnedFd>);

impl TimerFd {
    fn arm(after: Duration) -> io::Result<TimerFd> {
        // SAFETY: plain syscalls on a descriptor this function owns.
        unsafe {
            let fd = libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(fd);
            // A zero it_value disarms: wait at least a nanosecond.
            let after = after.max(Duration::from_nanos(1));
            let spec = libc::itimerspec {
                it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
                it_value: libc::timespec { tv_sec: after.as_secs() as libc::time_t, tv_nsec: after.subsec_nanos() as libc::c_long },
            };
            if libc::timerfd_settime(fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) < 0 {
                return Err(io::Error::last_os_error());
            }
            // The OwnedFd stays open and the same for the AsyncFd's life.
            AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE).map(TimerFd).map_err(|e| e.into_parts().1)
        }
    }

    async fn expired(self) {
        loop {
            let Ok(mut guard) = self.0.readable().await else { return };
            let mut n = [0u8; 8];
            // SAFETY: reads 8 bytes into a local buffer from an owned fd.
            let r = unsafe { libc::read(self.0.get_ref().as_raw_fd(), n.as_mut_ptr().cast(), 8) };
            if r == 8 {
                return;
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::WouldBlock {
                return;
            }
            guard.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lateness of `n` sleeps of `d`, sorted.
    async fn lateness(d: Duration, n: usize) -> Vec<Duration> {
        let mut late = Vec::new();
        for _ in 0..n {
            let t = Instant::now() + d;
            sleep_until(t).await;
            late.push(Instant::now() - t);
        }
        late.sort();
        late
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wakes_after_the_deadline_never_before() {
        for d in [Duration::ZERO, Duration::from_micros(300), Duration::from_millis(5)] {
            let t = Instant::now() + d;
            sleep_until(t).await;
            assert!(Instant::now() >= t, "woke before a {d:?} deadline");
            let t = Instant::now() + d;
            pace_until(t).await;
            assert!(Instant::now() >= t, "paced past a {d:?} deadline early");
        }
    }

    /// tokio's wheel alone is 0–2 ms late; the median here is far below a
    /// millisecond even on a loaded machine (the bound is loose: speed is
    /// measured in benches, this only catches a fall back to the wheel).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_median_wait_ends_well_under_a_millisecond_late() {
        let late = lateness(Duration::from_micros(4500), 21).await;
        assert!(late[late.len() / 2] < Duration::from_micros(500), "median lateness {:?}", late[late.len() / 2]);
    }

    #[tokio::test]
    async fn timeout_at_prefers_a_ready_future_and_else_elapses() {
        let past = Instant::now();
        assert_eq!(timeout_at(past, async { 7 }).await, Ok(7));
        let soon = Instant::now() + Duration::from_micros(200);
        assert_eq!(timeout_at(soon, std::future::pending::<()>()).await, Err(Elapsed));
        assert!(Instant::now() >= soon);
    }
}
