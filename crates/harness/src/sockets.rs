//! The kernel's TCP socket tables (`/proc/net/tcp` and `tcp6`), read once
//! here for every backend that needs to see a connection's state: real
//! nginx's CLOSE_WAIT sockets, a queued connection with its request unread,
//! the peers a user's server holds.

/// One row of a table: ports, state (`01` ESTABLISHED, `08` CLOSE_WAIT,
/// ...) and the bytes received and not yet read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
    pub rx_queue: u32,
}

pub const ESTABLISHED: u8 = 0x01;
pub const CLOSE_WAIT: u8 = 0x08;

/// The rows of one table's text (its header line skipped; malformed lines
/// left out).
pub fn rows(table: &str) -> impl Iterator<Item = Row> + '_ {
    let hex_port = |field: &str| field.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    table.lines().skip(1).filter_map(move |line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        Some(Row {
            local_port: hex_port(cols.get(1)?)?,
            remote_port: hex_port(cols.get(2)?)?,
            state: u8::from_str_radix(cols.get(3)?, 16).ok()?,
            rx_queue: cols.get(4)?.split(':').nth(1).and_then(|r| u32::from_str_radix(r, 16).ok())?,
        })
    })
}

/// Every row of this network namespace's IPv4 and IPv6 tables; an
/// unreadable table counts as empty. The calling thread's namespace
/// (`thread-self`): a scenario that runs in a namespace of its own
/// ([`crate::netns`]) runs on one thread, while `/proc/net` is the
/// process's main thread's.
pub fn now() -> Vec<Row> {
    ["/proc/thread-self/net/tcp", "/proc/thread-self/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|t| rows(&t).collect::<Vec<_>>())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:47F9 00000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:47F9 0100007F:D2F0 01 00000000:0000004B 00:00000000 00000000     0        0 0 1 0 20 4 30 10 -1\n\
   2: garbage\n";
        let r: Vec<Row> = rows(table).collect();
        assert_eq!(r, vec![
            Row { local_port: 0x47F9, remote_port: 0, state: 0x0A, rx_queue: 1 },
            Row { local_port: 0x47F9, remote_port: 0xD2F0, state: ESTABLISHED, rx_queue: 0x4B },
        ]);
    }
}
