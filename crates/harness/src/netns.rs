//! A network namespace of the calling thread's own: a loopback interface
//! and kernel settings (`ip_local_port_range`) that no other program on
//! the machine shares. Linux keeps the namespace per thread: sockets the
//! thread opens and processes it spawns are inside; other threads are not.
//! It goes away with the last of them. Creating one needs CAP_SYS_ADMIN
//! (root); without it, [`enter`] says so and the caller skips.

use std::io;

/// Moves the calling thread into a new network namespace and brings its
/// loopback interface up (a new namespace's `lo` is down).
pub fn enter() -> io::Result<()> {
    // SAFETY: unshare(2) with a flag only changes the calling thread's
    // namespace membership.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("unshare(CLONE_NEWNET): {e}")));
    }
    loopback_up()
}

/// `ip link set lo up`, as SIOCSIFFLAGS on a datagram socket.
fn loopback_up() -> io::Result<()> {
    // SAFETY: a socket we own and close; `ifreq` is plain data, zeroed,
    // with a NUL-terminated name; the ioctls read and write only it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut r = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if r == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            r = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        let e = io::Error::last_os_error();
        libc::close(fd);
        if r != 0 {
            return Err(io::Error::new(e.kind(), format!("bringing lo up: {e}")));
        }
    }
    Ok(())
}

/// Sets `net.ipv4.ip_local_port_range` in the calling thread's namespace
/// (the ports `connect()` picks from; /proc/sys/net is the opener's
/// namespace's).
pub fn set_local_port_range(low: u16, high: u16) -> io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_local_port_range", format!("{low} {high}\n"))
        .map_err(|e| io::Error::new(e.kind(), format!("setting ip_local_port_range to {low} {high}: {e}")))
}

/// The calling thread's `ip_local_port_range`.
pub fn local_port_range() -> io::Result<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) => Ok((lo, hi)),
        _ => Err(io::Error::other(format!("ip_local_port_range: {text:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a namespace of its own, a thread has a loopback that works and a
    /// port range the machine does not see; skipped (said so) without root.
    #[test]
    fn a_thread_gets_its_own_loopback_and_port_range() {
        let outside = local_port_range().unwrap();
        let inside = std::thread::spawn(|| -> io::Result<Option<(u16, u16, u16)>> {
            if let Err(e) = enter() {
                if crate::require::netns_required() {
                    panic!("{e}");
                }
                eprintln!("skipped: {e}");
                return Ok(None);
            }
            set_local_port_range(61000, 61001)?;
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            let c = std::net::TcpStream::connect(l.local_addr()?)?;
            let (lo, hi) = local_port_range()?;
            let local = c.local_addr()?.port();
            assert!((lo..=hi).contains(&local), "connect() picked {local} from {lo}–{hi}");
            Ok(Some((lo, hi, local)))
        })
        .join()
        .unwrap()
        .unwrap();
        if let Some((lo, hi, _)) = inside {
            assert_eq!((lo, hi), (61000, 61001));
            assert_eq!(local_port_range().unwrap(), outside, "the machine's range is untouched");
        }
    }
}
