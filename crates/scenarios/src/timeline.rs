//! The per-scenario timeline: client, proxy and upstream events on one
//! clock, rendered like an annotated tcpdump with FIN/RST marked. The
//! entries come from the backends (`harness::timeline`).

pub use harness::timeline::{Lane, TimelineEntry};

/// Renders the entries as a three-lane sequence diagram.
pub fn render(entries: &[TimelineEntry], proxy_name: &str, upstream_name: &str) -> String {
    const CLIENT: usize = 0;
    const PROXY: usize = 24;
    const UPSTREAM: usize = 64;
    let mut s = format!("{:>9}  {:<PROXY$}{:<w$}{}\n", "ms", "client", proxy_name, upstream_name, w = UPSTREAM - PROXY);
    s.push_str(&format!("{:>9}  {}\n", "", "─".repeat(UPSTREAM + 24)));
    for e in entries {
        let col = match e.lane {
            Lane::Client => CLIENT,
            Lane::Proxy => PROXY,
            Lane::Upstream => UPSTREAM,
        };
        s.push_str(&format!("{:>9.2}  {}{}\n", e.at_ms, " ".repeat(col), e.text));
    }
    s
}
