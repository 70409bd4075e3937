//! Go's `time.ParseDuration` syntax ("300ms", "1.5s", "1m30s", "0"), so the
//! flags read exactly as a Go engineer would write them in a `http.Server{}`.

use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurationError {
    pub input: String,
    pub reason: &'static str,
}

impl fmt::Display for ParseDurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid duration {:?}: {} (Go syntax: \"300ms\", \"1.5s\", \"1m30s\", \"0\")",
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseDurationError {}

/// Parses a non-negative Go duration. Negative durations are valid Go but have
/// version-dependent meanings for IdleTimeout, so the emulator rejects them.
pub fn parse(s: &str) -> Result<Duration, ParseDurationError> {
    let err = |reason| ParseDurationError { input: s.to_string(), reason };
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.starts_with('-') {
        return Err(err("negative durations are not supported"));
    }
    let mut rest = t.strip_prefix('+').unwrap_or(t);
    if rest.is_empty() {
        return Err(err("empty"));
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(err("expected a number"));
        }
        let value: f64 = rest[..num_len].parse().map_err(|_| err("bad number"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(err("missing unit")),
            _ => return Err(err("unknown unit")),
        };
        total_ns += value * scale;
    }
    Ok(Duration::from_nanos(total_ns.round() as u64))
}

/// Formats like Go's `Duration.String()` for the common cases ("300ms", "1.5s", "0s").
pub fn format(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        "0s".into()
    } else if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        trim(ns as f64 / 1e3, "µs")
    } else if ns < 1_000_000_000 {
        trim(ns as f64 / 1e6, "ms")
    } else {
        trim(ns as f64 / 1e9, "s")
    }
}

fn trim(v: f64, unit: &str) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_syntax() {
        let ms = Duration::from_millis;
        for (input, want) in [
            ("0", Duration::ZERO),
            ("300ms", ms(300)),
            ("1.5s", ms(1500)),
            ("1m30s", ms(90_000)),
            ("250us", Duration::from_micros(250)),
            ("2h", Duration::from_secs(7200)),
            ("+5s", ms(5000)),
        ] {
            assert_eq!(parse(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn rejects_what_go_rejects_or_we_do_not_model() {
        for input in ["", "300", "5x", "ms", "-1s", "1..2s"] {
            assert!(parse(input).is_err(), "{input} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for d in ["300ms", "1.5s", "0s", "250µs"] {
            assert_eq!(format(parse(d).unwrap()), d);
        }
    }
}
