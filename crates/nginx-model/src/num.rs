//! nginx's number syntax, byte for byte: `ngx_atoi` (`ngx_string.c`),
//! `ngx_parse_size` and `ngx_parse_offset` (`ngx_parse.c`). No sign, no
//! spaces, no hex; overflow past `NGX_MAX_INT_T_VALUE` (i64::MAX) is an error.

/// `ngx_atoi`: decimal digits only (no '+', no '-'), at least one.
pub fn atoi(s: &[u8]) -> Option<i64> {
    if s.is_empty() {
        return None;
    }
    let mut v: i64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(v)
}

fn scaled(s: &[u8], units: &[(u8, i64)]) -> Option<i64> {
    let (&last, rest) = s.split_last()?;
    let (digits, scale) = match units.iter().find(|(u, _)| last.to_ascii_lowercase() == *u) {
        Some(&(_, scale)) => (rest, scale),
        None => (s, 1),
    };
    let n = atoi(digits)?;
    (n <= i64::MAX / scale).then(|| n * scale)
}

/// `ngx_parse_size`: `N`, `Nk`/`NK`, `Nm`/`NM` (size_t slots).
pub fn parse_size(s: &[u8]) -> Option<i64> {
    scaled(s, &[(b'k', 1024), (b'm', 1024 * 1024)])
}

/// `ngx_parse_offset`: as [`parse_size`], plus `Ng`/`NG` (off_t slots such
/// as `client_max_body_size`).
pub fn parse_offset(s: &[u8]) -> Option<i64> {
    scaled(s, &[(b'k', 1024), (b'm', 1024 * 1024), (b'g', 1024 * 1024 * 1024)])
}

/// `n` in decimal, in `buf`'s tail (`ngx_sprintf`'s `%uL`, without the
/// formatting machinery: the hot paths write a few numbers per request).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// `n` in decimal, appended to `out`.
pub(crate) fn push_decimal(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0; 20]));
}

/// `n` in decimal, at least `width` (up to 20) digits, zeros in front,
/// appended to `out`.
pub(crate) fn push_decimal_str(out: &mut String, n: u64, width: usize) {
    // The buffer starts as zeros: the padding is the bytes before the digits.
    let mut buf = [b'0'; 20];
    let len = decimal(n, &mut buf).len();
    out.extend(buf[20 - len.max(width.min(20))..].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_as_format_writes_them() {
        for n in (0..1100).chain([9999, 10_000, 65535, 1 << 40, u64::MAX]) {
            let mut v = Vec::new();
            push_decimal(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), n.to_string());
            for width in [0, 1, 2, 3, 4, 20] {
                let mut s = String::from("x");
                push_decimal_str(&mut s, n, width);
                assert_eq!(s, format!("x{n:0width$}"));
            }
        }
    }

    // Each row checked against nginx 1.22.1 (`worker_connections`,
    // `client_body_buffer_size`, `client_max_body_size` under `nginx -t`).
    #[test]
    fn atoi_table() {
        for (s, want) in [
            ("0", Some(0)), ("5", Some(5)), ("+5", None), ("-1", None), ("", None), (" 5", None), ("0x10", None),
            ("9223372036854775807", Some(i64::MAX)), ("9223372036854775808", None), ("18446744073709551616", None),
            ("5000000000", Some(5_000_000_000)), ("007", Some(7)),
        ] {
            assert_eq!(atoi(s.as_bytes()), want, "{s:?}");
        }
    }

    #[test]
    fn size_and_offset_table() {
        for (s, size, off) in [
            ("4k", Some(4096), Some(4096)), ("4K", Some(4096), Some(4096)), ("1m", Some(1 << 20), Some(1 << 20)),
            ("1g", None, Some(1 << 30)), ("1G", None, Some(1 << 30)), ("k", None, None), ("", None, None),
            ("1kb", None, None), ("+1k", None, None), ("1.5k", None, None), ("8796093022207k", Some(8796093022207 * 1024), Some(8796093022207 * 1024)),
            ("9007199254740992k", None, None), ("18014398509481984k", None, None), ("8589934591g", None, Some(8589934591 << 30)),
        ] {
            assert_eq!(parse_size(s.as_bytes()), size, "size {s:?}");
            assert_eq!(parse_offset(s.as_bytes()), off, "offset {s:?}");
        }
    }
}
