//! The per-scenario timeline: client, proxy and upstream events on one
//! clock, rendered like an annotated tcpdump with FIN/RST marked. The
//! entries come from the backends (`harness::timeline`).

pub use harness::timeline::{CloseHow, EntryKind, Lane, TimelineEntry};

/// The time column: "   120.47  ".
const TIME: usize = 11;

/// Renders the entries as a three-lane sequence diagram `width` columns
/// wide (at least 60): the client lane narrow, the proxy and upstream
/// lanes sharing the rest; a text longer than its room wraps under itself.
pub fn render(entries: &[TimelineEntry], proxy_name: &str, upstream_name: &str, width: usize) -> String {
    let width = width.max(60);
    let client_w = 14;
    let proxy_col = client_w;
    let upstream_col = proxy_col + (width - TIME - client_w) / 2;
    let lanes = width - TIME;
    let head = |name: &str, w: usize| crate::report::fit(name, w.saturating_sub(1));
    let mut s = format!(
        "{:>9}  {:<cw$}{:<pw$}{}\n",
        "ms",
        head("client", client_w),
        head(proxy_name, upstream_col - proxy_col),
        head(upstream_name, lanes - upstream_col),
        cw = client_w,
        pw = upstream_col - proxy_col
    );
    s.push_str(&format!("{:>9}  {}\n", "", "─".repeat(lanes)));
    for e in entries {
        let col = match e.lane {
            Lane::Client => 0,
            Lane::Proxy => proxy_col,
            Lane::Upstream => upstream_col,
        };
        for (i, line) in crate::report::wrap_words(&e.text, lanes - col).into_iter().enumerate() {
            let at = if i == 0 { format!("{:>9.2}", e.at_ms) } else { String::new() };
            s.push_str(&format!("{at:>9}  {}{line}\n", " ".repeat(col)));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_fits_its_width() {
        let e = |lane, text: &str| TimelineEntry::at_ms(120.47, lane, EntryKind::Note, text.into());
        let entries = [
            e(Lane::Client, "GET /ok"),
            e(Lane::Proxy, "✗ premature-close: upstream prematurely closed connection while reading response header from upstream"),
            e(Lane::Upstream, ":55906 ◄══ FIN (IdleRace)"),
        ];
        for width in [80, 200] {
            let text = render(&entries, "nginx (emulated)", "Go (emulated)", width);
            for l in text.lines() {
                assert!(l.chars().count() <= width, "{} > {width}: {l}", l.chars().count());
            }
            // Nothing is lost: the long line wraps.
            let words: String = text.split_whitespace().collect();
            assert!(words.contains("readingresponseheaderfromupstream"), "{text}");
        }
        let narrow = render(&entries, "nginx (emulated)", "Go (emulated)", 80);
        assert!(narrow.lines().count() > render(&entries, "nginx (emulated)", "Go (emulated)", 200).lines().count());
    }
}
