//! nginx time syntax (`ngx_parse_time`): "300ms", "5s", "1m30s", "1h",
//! a bare number means seconds.

use std::time::Duration;

pub fn parse(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let value: u64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else {
            match rest.chars().next() {
                None => (1000, 0),
                Some('s') => (1000, 1),
                Some('m') => (60_000, 1),
                Some('h') => (3_600_000, 1),
                Some('d') => (86_400_000, 1),
                Some('w') => (604_800_000, 1),
                Some('M') => (2_592_000_000, 1),
                Some('y') => (31_536_000_000, 1),
                _ => return None,
            }
        };
        total = total.checked_add(value.checked_mul(unit_ms)?)?;
        rest = &rest[len..];
    }
    Some(Duration::from_millis(total))
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

    #[test]
    fn nginx_time_table() {
        let ms = Duration::from_millis;
        for (s, want) in [("300ms", Some(ms(300))), ("5s", Some(ms(5000))), ("5", Some(ms(5000))),
            ("1m30s", Some(ms(90_000))), ("1h", Some(ms(3_600_000))), ("", None), ("5x", None), ("ms", None), ("1.5s", None)] {
            assert_eq!(parse(s), want, "{s}");
        }
        assert_eq!(format(ms(300)), "300ms");
        assert_eq!(format(ms(60_000)), "60s");
    }
}
