//! nginx time syntax (`ngx_parse_time` in `ngx_parse.c`), exactly: units in
//! the order y M w d h m s ms, each at most once, spaces after a unit, a bare
//! number at the end in seconds. Millisecond slots (`proxy_read_timeout`)
//! start at `M`-and-below (so `1y` and `1M` are invalid there) and allow
//! `ms`; second slots (`fail_timeout=`) allow `y`/`M` but not `ms`.

use std::time::Duration;

/// `ngx_parse_time(line, is_sec)`: milliseconds (`is_sec == false`) or
/// seconds (`is_sec == true`); `None` for NGX_ERROR.
pub fn ngx_parse_time(s: &[u8], is_sec: bool) -> Option<i64> {
    // step order as in nginx: start < year < month < week < day < hour < min < sec < msec < last
    const START: u8 = 0;
    const YEAR: u8 = 1;
    const MONTH: u8 = 2;
    const WEEK: u8 = 3;
    const DAY: u8 = 4;
    const HOUR: u8 = 5;
    const MIN: u8 = 6;
    const SEC: u8 = 7;
    const MSEC: u8 = 8;
    const LAST: u8 = 9;
    const MAX: i64 = i64::MAX;
    let (mut valid, mut value, mut total): (bool, i64, i64) = (false, 0, 0);
    let mut step = if is_sec { START } else { MONTH };
    let mut p = 0;
    while p < s.len() {
        let c = s[p];
        p += 1;
        if c.is_ascii_digit() {
            value = value.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
            valid = true;
            continue;
        }
        let (mut max, mut scale): (i64, i64);
        match c {
            b'y' => {
                if step > START {
                    return None;
                }
                (step, max, scale) = (YEAR, MAX / (60 * 60 * 24 * 365), 60 * 60 * 24 * 365);
            }
            b'M' => {
                if step >= MONTH {
                    return None;
                }
                (step, max, scale) = (MONTH, MAX / (60 * 60 * 24 * 30), 60 * 60 * 24 * 30);
            }
            b'w' => {
                if step >= WEEK {
                    return None;
                }
                (step, max, scale) = (WEEK, MAX / (60 * 60 * 24 * 7), 60 * 60 * 24 * 7);
            }
            b'd' => {
                if step >= DAY {
                    return None;
                }
                (step, max, scale) = (DAY, MAX / (60 * 60 * 24), 60 * 60 * 24);
            }
            b'h' => {
                if step >= HOUR {
                    return None;
                }
                (step, max, scale) = (HOUR, MAX / (60 * 60), 60 * 60);
            }
            b'm' if s.get(p) == Some(&b's') => {
                if is_sec || step >= MSEC {
                    return None;
                }
                p += 1;
                (step, max, scale) = (MSEC, MAX, 1);
            }
            b'm' => {
                if step >= MIN {
                    return None;
                }
                (step, max, scale) = (MIN, MAX / 60, 60);
            }
            b's' => {
                if step >= SEC {
                    return None;
                }
                (step, max, scale) = (SEC, MAX, 1);
            }
            b' ' => {
                if step >= SEC {
                    return None;
                }
                (step, max, scale) = (LAST, MAX, 1);
            }
            _ => return None,
        }
        if step != MSEC && !is_sec {
            scale *= 1000;
            max /= 1000;
        }
        if value > max {
            return None;
        }
        value *= scale;
        if total > MAX - value {
            return None;
        }
        total += value;
        value = 0;
        while s.get(p) == Some(&b' ') {
            p += 1;
        }
    }
    if !valid {
        return None;
    }
    if !is_sec {
        if value > MAX / 1000 {
            return None;
        }
        value *= 1000;
    }
    if total > MAX - value {
        return None;
    }
    Some(total + value)
}

/// A millisecond slot (`ngx_conf_set_msec_slot`): "300ms", "5s", "1m30s", "5".
pub fn parse(s: &str) -> Option<Duration> {
    parse_bytes(s.as_bytes())
}

/// [`parse`] on the raw bytes of a token.
pub fn parse_bytes(s: &[u8]) -> Option<Duration> {
    ngx_parse_time(s, false).map(|ms| Duration::from_millis(ms as u64))
}

/// A second slot (`ngx_parse_time(.., 1)`: `fail_timeout=`).
pub fn parse_sec(s: &[u8]) -> Option<Duration> {
    ngx_parse_time(s, true).map(|sec| Duration::from_secs(sec as u64))
}

/// The shortest nginx spelling of a duration ("300ms", "5s").
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each row checked against nginx 1.22.1: `proxy_read_timeout V` (msec)
    // and `server 127.0.0.1:1 fail_timeout=V` (sec) under `nginx -t`.
    #[test]
    fn nginx_time_table() {
        let ms = |v: i64| Some(v);
        for (s, msec, sec) in [
            ("300ms", ms(300), None), ("5s", ms(5000), Some(5)), ("5", ms(5000), Some(5)), ("1m30s", ms(90_000), Some(90)),
            ("1m30", ms(90_000), Some(90)), ("1h", ms(3_600_000), Some(3600)), ("", None, None), ("5x", None, None),
            ("ms", None, None), ("s", None, None), ("1.5s", None, None), ("1s1m", None, None), ("5ms3s", None, None),
            ("1s1s", None, None), ("+5", None, None), ("-5", None, None), ("0x10", None, None), ("1y", None, Some(31_536_000)),
            ("1M", None, Some(2_592_000)), ("1w", ms(604_800_000), Some(604_800)), ("1d", ms(86_400_000), Some(86_400)),
            ("1m 30s", ms(90_000), Some(90)), ("30 ", ms(30_000), Some(30)), (" 30", ms(30_000), Some(30)), ("1m  30s", ms(90_000), Some(90)),
            ("30s ", ms(30_000), Some(30)), ("1s 5", ms(6000), Some(6)), ("5 5", ms(10_000), Some(10)),
            ("18446744073709551616", None, None), ("9223372036854775", ms(9_223_372_036_854_775_000), Some(9_223_372_036_854_775)),
            ("9223372036854776", None, Some(9_223_372_036_854_776)), ("0", ms(0), Some(0)), ("1h1m1s1ms", ms(3_661_001), None), ("1h30", ms(3_630_000), Some(3630)),
        ] {
            assert_eq!(ngx_parse_time(s.as_bytes(), false), msec, "msec {s:?}");
            assert_eq!(ngx_parse_time(s.as_bytes(), true), sec, "sec {s:?}");
        }
        assert_eq!(format(Duration::from_millis(300)), "300ms");
        assert_eq!(format(Duration::from_millis(60_000)), "60s");
    }
}
