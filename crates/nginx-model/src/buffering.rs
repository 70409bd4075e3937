//! `proxy_buffering`: whether a response is read ahead of the client, how
//! much of it fits in memory, when it goes to a temporary file, and the
//! `[warn]` line that names the file (`ngx_http_upstream_send_response`,
//! `ngx_http_upstream_process_buffering`, `ngx_event_pipe_read_upstream`,
//! `ngx_create_temp_file`).

use crate::logs::RESPONSE_BUFFERED;

/// `proxy_max_temp_file_size` (`ngx_http_proxy_merge_loc_conf`): 1024m.
pub const MAX_TEMP_FILE_SIZE: u64 = 1024 * 1024 * 1024;
/// `proxy_buffers`: 8 of one memory page.
pub const BUFFERS: (usize, usize) = (8, 4096);
/// `proxy_temp_path`'s levels when no directive names the path
/// (`ngx_http_proxy_temp_path`: `NGX_HTTP_PROXY_TEMP_PATH`, levels 1 2).
pub const DEFAULT_LEVELS: [usize; 3] = [1, 2, 0];

/// Whether this response is buffered: `proxy_buffering`, changed by the
/// upstream's `X-Accel-Buffering` (`ngx_http_upstream_process_buffering`:
/// `ngx_strncasecmp` of the value's first 3 bytes with "yes" turns it on,
/// of its first 2 with "no" off; anything else leaves it), unless
/// `proxy_ignore_headers X-Accel-Buffering`.
pub fn buffered(proxy_buffering: bool, x_accel_buffering: Option<&str>, ignore_header: bool) -> bool {
    let Some(v) = x_accel_buffering.filter(|_| !ignore_header) else {
        return proxy_buffering;
    };
    let starts = |p: &str| v.len() >= p.len() && v.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes());
    if starts("yes") {
        true
    } else if starts("no") {
        false
    } else {
        proxy_buffering
    }
}

/// The read-ahead limits of one buffered response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Body bytes held in memory: `proxy_buffers` (the pipe's `bufs`) plus
    /// the `proxy_buffer_size` buffer the header was read into (the
    /// pipe's `preread_bufs`).
    pub memory: usize,
    /// `proxy_max_temp_file_size`; 0: no file, the read waits for the client.
    pub max_temp_file: u64,
}

impl Limits {
    pub fn new(buffers: (usize, usize), buffer_size: usize, max_temp_file: u64) -> Limits {
        Limits { memory: buffers.0.saturating_mul(buffers.1).saturating_add(buffer_size), max_temp_file }
    }
}

/// Where the next bytes read from the upstream go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// A free memory buffer.
    Memory,
    /// The temporary file (`ngx_event_pipe_write_chain_to_temp_file`).
    File,
    /// Nothing is read until the client takes some (`ngx_event_pipe_read_upstream`
    /// with all buffers busy and no file, or the file at its limit).
    Wait,
}

/// `ngx_event_pipe_read_upstream`: memory while a buffer is free and no
/// earlier bytes wait in the file (the body's order is kept); else the file
/// while it is under `max_temp_file_size` (the file's offset: all written
/// to it, sent or not); else wait. `in_memory` counts the bytes read and
/// not yet sent, `file_pending` whether the file holds unsent bytes.
pub fn next(l: Limits, in_memory: usize, file_pending: bool, file_written: u64) -> Next {
    if !file_pending && in_memory < l.memory {
        Next::Memory
    } else if l.max_temp_file > 0 && file_written < l.max_temp_file {
        Next::File
    } else {
        Next::Wait
    }
}

/// `ngx_create_hashed_filename`: the temp file's path, its number as ten
/// digits, each level a directory named by the name's trailing digits
/// (levels `1 2`, number 1: `DIR/1/00/0000000001`).
pub fn temp_file_path(dir: &str, levels: [usize; 3], number: u64) -> String {
    let name = format!("{number:010}");
    let mut path = dir.trim_end_matches('/').to_string();
    let mut end = name.len();
    for l in levels.into_iter().take_while(|l| *l > 0) {
        let start = end.saturating_sub(l);
        path.push('/');
        path.push_str(&name[start..end]);
        end = start;
    }
    path.push('/');
    path.push_str(&name);
    path
}

/// The warn line's text, once per response (`ngx_event_pipe_write_chain_to_temp_file`
/// → `ngx_write_chain_to_temp_file` → `ngx_create_temp_file` with the pipe's
/// `warn` text), before " while reading upstream".
pub fn warn_text(path: &str) -> String {
    format!("{RESPONSE_BUFFERED} {path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_accel_buffering() {
        for (on, header, ignore, want) in [
            (true, None, false, true),
            (false, None, false, false),
            (true, Some("no"), false, false),
            (true, Some("No"), false, false),
            (true, Some("nope"), false, false),
            (false, Some("yes"), false, true),
            (false, Some("YES please"), false, true),
            (true, Some("maybe"), false, true),
            (false, Some("n"), false, false),
            (true, Some(""), false, true),
            (true, Some("no"), true, true),
            (false, Some("yes"), true, false),
        ] {
            assert_eq!(buffered(on, header, ignore), want, "{on} {header:?} {ignore}");
        }
    }

    #[test]
    fn where_bytes_go() {
        let l = Limits::new(BUFFERS, 4096, MAX_TEMP_FILE_SIZE);
        assert_eq!(l.memory, 36864);
        let no_file = Limits { max_temp_file: 0, ..l };
        for (lim, mem, pending, written, want) in [
            (l, 0, false, 0, Next::Memory),
            (l, 36863, false, 0, Next::Memory),
            (l, 36864, false, 0, Next::File),
            (l, 100, true, 5, Next::File),
            (l, 0, false, 5, Next::Memory),
            (l, 36864, true, MAX_TEMP_FILE_SIZE, Next::Wait),
            (l, 0, true, MAX_TEMP_FILE_SIZE, Next::Wait),
            (no_file, 0, false, 0, Next::Memory),
            (no_file, 36864, false, 0, Next::Wait),
            (Limits { max_temp_file: 10, ..l }, 36864, false, 10, Next::Wait),
        ] {
            assert_eq!(next(lim, mem, pending, written), want, "{lim:?} {mem} {pending} {written}");
        }
    }

    #[test]
    fn paths() {
        for (dir, levels, n, want) in [
            ("/p/proxy_temp", [1, 2, 0], 1, "/p/proxy_temp/1/00/0000000001"),
            ("/p/proxy_temp/", [0, 0, 0], 1, "/p/proxy_temp/0000000001"),
            ("t", [2, 0, 0], 123, "t/23/0000000123"),
            ("t", [1, 2, 2], 9876543210, "t/0/21/43/9876543210"),
        ] {
            assert_eq!(temp_file_path(dir, levels, n), want);
        }
        assert_eq!(warn_text("/x/1"), "an upstream response is buffered to a temporary file /x/1");
    }
}
