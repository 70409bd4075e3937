//! The diagnosis as text, 80 columns wide.

use super::{Report, Tally};
use std::fmt::Write;

const WIDTH: usize = 80;

/// Words of `text` wrapped to [`WIDTH`]: the first line after `first`, the
/// others indented by `indent` spaces.
fn wrap(out: &mut String, first: &str, indent: usize, text: &str) {
    let mut line = first.to_string();
    let mut fresh = true;
    for word in text.split_whitespace() {
        let len = line.chars().count();
        if !fresh && len + 1 + word.chars().count() > WIDTH {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
            fresh = true;
        }
        if !fresh {
            line.push(' ');
        }
        line.push_str(word);
        fresh = false;
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn counts<K: std::fmt::Display>(items: impl IntoIterator<Item = (K, u64)>, limit: usize) -> String {
    let mut v: Vec<(String, u64)> = items.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let more = v.len().saturating_sub(limit);
    let mut parts: Vec<String> = v.into_iter().take(limit).map(|(k, n)| format!("{k} ×{n}")).collect();
    if more > 0 {
        parts.push(format!("{more} more"));
    }
    parts.join(", ")
}

fn outcomes(t: &Tally) -> String {
    let visible: Vec<String> = t.outcomes.iter().filter(|(k, _)| **k != "retried").map(|(k, n)| format!("{n} × {k}")).collect();
    let retried = t.outcomes.get("retried").copied().unwrap_or(0);
    let mut s = if visible.is_empty() { "none failed".to_string() } else { visible.join(", ") };
    if retried > 0 {
        write!(s, "; {retried} retried").unwrap();
    }
    s
}

fn times(t: &Tally) -> Option<String> {
    (t.times.n > 0).then(|| {
        if t.times.max - t.times.min < 0.0005 {
            format!("failed attempts after {:.3} s", t.times.min)
        } else {
            format!("failed attempts after {:.3}–{:.3} s (mean {:.3})", t.times.min, t.times.max, t.times.mean())
        }
    })
}

fn evidence(t: &Tally) -> String {
    let mut parts = vec![counts(t.classes.iter().map(|(c, n)| (c, *n)), 4)];
    parts.extend(times(t));
    parts.push(counts(t.shapes.iter().map(|(s, n)| (s, *n)), 4));
    parts.retain(|p| !p.is_empty());
    parts.join("; ")
}

/// The report as text.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    match (&r.from, &r.to) {
        (Some(a), Some(b)) => writeln!(out, "scenarios diagnose: {a} to {b}").unwrap(),
        _ => writeln!(out, "scenarios diagnose").unwrap(),
    }
    for s in [&r.error_log, &r.access_log].into_iter().flatten() {
        let mut line = format!("{:<12} {} lines{}, {} malformed", s.name, thousands(s.lines), if s.gzip { " (gzip)" } else { "" }, thousands(s.malformed));
        if !s.malformed_examples.is_empty() {
            let at: Vec<String> = s.malformed_examples.iter().map(|(n, _)| n.to_string()).collect();
            write!(line, " (line {}{})", at.join(", "), if s.malformed > at.len() as u64 { ", ..." } else { "" }).unwrap();
        }
        wrap(&mut out, "  ", 4, &line);
        if let Some((n, why)) = s.malformed_examples.first() {
            wrap(&mut out, "    ", 6, &format!("line {n}: {why}"));
        }
    }
    let (visible, retried) = r.totals();
    writeln!(out).unwrap();
    if visible + retried == 0 {
        wrap(&mut out, "", 0, "No 502, 504, 499, cut response or retried upstream failure in these logs.");
    } else {
        let all = r.findings.iter().map(|f| &f.tally).chain(r.unexplained.iter().map(|u| &u.tally));
        let alone: u64 = all.map(|t| t.outcomes.get("log-only").copied().unwrap_or(0)).sum();
        let mut s = format!("{} failed request(s), {} more failed attempt(s) retried by nginx.", thousands(visible), thousands(retried));
        if alone > 0 {
            s.push_str(&format!(" {} known from error.log alone (\"log-only\": what the client got is not logged there).", thousands(alone)));
        }
        wrap(&mut out, "", 0, &s);
    }
    for f in &r.findings {
        let t = &f.tally;
        writeln!(out).unwrap();
        let conf = counts(t.confidence.iter().rev().map(|(c, n)| (format!("{c:?}").to_lowercase(), *n)), 3);
        wrap(&mut out, "", 2, &format!("{}  {} — confidence: {}", f.mechanism, outcomes(t), conf.replace(" ×", " ")));
        wrap(&mut out, "  ", 2, &f.title);
        wrap(&mut out, "  evidence: ", 12, &evidence(t));
        let looks = counts(t.scenarios.iter().map(|(s, n)| (s, *n)), 3);
        wrap(&mut out, "  like scenario: ", 16, &looks);
        if !t.lookalikes.is_empty() {
            let rules = t.tie_rules.keys().copied().collect::<Vec<_>>().join("; ");
            wrap(&mut out, "  also fits: ", 13, &format!("{} (decided by: {rules})", counts(t.lookalikes.iter().map(|(s, n)| (s, *n)), 3)));
        }
        wrap(&mut out, "  fix: ", 7, &f.fix);
        wrap(&mut out, "  see: ", 7, &t.examples.join(", "));
    }
    if !r.unexplained.is_empty() {
        writeln!(out).unwrap();
        let n: u64 = r.unexplained.iter().map(|u| u.tally.requests).sum();
        writeln!(out, "Not explained by the catalogue ({}):", thousands(n)).unwrap();
        for u in &r.unexplained {
            wrap(&mut out, "  ", 4, &format!("{} — {}", u.reason, outcomes(&u.tally)));
            if let Some(t) = &u.text {
                wrap(&mut out, "    \"", 5, &format!("{t}\""));
            }
            wrap(&mut out, "    see: ", 9, &u.tally.examples.join(", "));
        }
    }
    if !r.bursts.is_empty() {
        writeln!(out).unwrap();
        writeln!(out, "Bursts:").unwrap();
        for b in &r.bursts {
            let to = if b.to[..10] == b.from[..10] { &b.to[11..] } else { &b.to[..] };
            let what = format!(
                "{} – {}  {} ×{}{}{}",
                b.from,
                to,
                b.class,
                b.count,
                b.upstream.as_ref().map(|u| format!("  {u}")).unwrap_or_default(),
                b.mechanism.as_ref().map(|m| format!("  ({m})")).unwrap_or_default()
            );
            wrap(&mut out, "  ", 4, &what);
        }
    }
    if !r.missing.is_empty() {
        writeln!(out).unwrap();
        writeln!(out, "To decide better:").unwrap();
        for m in &r.missing {
            wrap(&mut out, "  - ", 4, m);
        }
    }
    if !r.notes.is_empty() {
        writeln!(out).unwrap();
        writeln!(out, "Notes:").unwrap();
        for n in &r.notes {
            wrap(&mut out, "  - ", 4, n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_80_columns() {
        let mut out = String::new();
        wrap(&mut out, "  fix: ", 7, &"word ".repeat(60));
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        assert!(out.lines().skip(1).all(|l| l.starts_with("       w")), "{out}");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(thousands(12), "12");
    }
}
