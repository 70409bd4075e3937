//! `--html FILE`: one self-contained page (inline CSS and SVG, no script, no
//! network) with, per run, the verdict table and the timeline as an SVG
//! sequence diagram; for `matrix`, heatmaps of the 502 rate. Pure functions
//! from results to text; everything a scenario or a backend wrote is escaped.
//!
//! The diagram reads the timeline's typed fields, never its text: a
//! `request` is an arrow to the lane on the right, a `response` one to the
//! left, a `close` a connection closed by the lane it is in (FIN or RST
//! from its `close` field), an `error` a cross, a `retry` a retry.
//! Each FIN or RST is one `<g data-close="FIN|RST">` element, so a checker
//! can count them against the JSON report's timeline ([`close_mark`]).

use crate::matrix::Cell;
use crate::report;
use crate::runner::RunResult;
use crate::timeline::{CloseHow, EntryKind, Lane, TimelineEntry};
use std::fmt::Write;

/// `s` safe in HTML text and in a quoted attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// How a connection ended, from the entry's typed `close`: "FIN", "RST",
/// or "close" for a close whose kind the backend does not know (real Go's
/// ConnState log), which is drawn but is neither.
pub fn close_mark(e: &TimelineEntry) -> Option<&'static str> {
    (e.kind == EntryKind::Close).then_some(match e.close {
        Some(CloseHow::Fin) => "FIN",
        Some(CloseHow::Rst) => "RST",
        None => "close",
    })
}

/// What one timeline entry is, for the diagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// An arrow from one lane to another.
    Request(Lane, Lane),
    Response(Lane, Lane),
    /// A connection closed by the first lane, seen by the second.
    Close(Lane, Lane, &'static str),
    Error(Lane),
    Retry(Lane),
    Note(Lane),
}

fn left_of(l: Lane) -> Option<Lane> {
    match l {
        Lane::Client => None,
        Lane::Proxy => Some(Lane::Client),
        Lane::Upstream => Some(Lane::Proxy),
    }
}

fn right_of(l: Lane) -> Option<Lane> {
    match l {
        Lane::Client => Some(Lane::Proxy),
        Lane::Proxy => Some(Lane::Upstream),
        Lane::Upstream => None,
    }
}

/// An entry's shape, from its typed `kind` and `lane` alone (see the
/// module's doc).
pub fn shape(e: &TimelineEntry) -> Shape {
    let arrow = |to: Option<Lane>, make: fn(Lane, Lane) -> Shape| to.map_or(Shape::Note(e.lane), |to| make(e.lane, to));
    match e.kind {
        EntryKind::Close => match (left_of(e.lane), close_mark(e)) {
            (Some(to), Some(mark)) => Shape::Close(e.lane, to, mark),
            _ => Shape::Note(e.lane),
        },
        EntryKind::Error => Shape::Error(e.lane),
        EntryKind::Retry => Shape::Retry(e.lane),
        // The client's request goes to nginx, nginx's to Go; Go's entry is
        // the request read, drawn as a dot in its lane.
        EntryKind::Request => arrow(right_of(e.lane), Shape::Request),
        // A response travels leftwards into the lane that receives it:
        // the client's from nginx; nginx's and Go's between Go and nginx.
        EntryKind::Response => match e.lane {
            Lane::Client => Shape::Response(Lane::Proxy, Lane::Client),
            Lane::Proxy | Lane::Upstream => Shape::Response(Lane::Upstream, Lane::Proxy),
        },
        _ => Shape::Note(e.lane),
    }
}

const LANE_X: [f64; 3] = [110.0, 270.0, 430.0];
const TEXT_X: f64 = 470.0;
const ROW: f64 = 20.0;
const TOP: f64 = 44.0;
/// Characters of an entry shown (the whole text is in its tooltip).
const TEXT_CHARS: usize = 120;

fn x(l: Lane) -> f64 {
    LANE_X[match l {
        Lane::Client => 0,
        Lane::Proxy => 1,
        Lane::Upstream => 2,
    }]
}

fn lane_class(l: Lane) -> &'static str {
    match l {
        Lane::Client => "client",
        Lane::Proxy => "proxy",
        Lane::Upstream => "upstream",
    }
}

/// A gap this long between two entries is marked (an idle wait).
fn is_gap(ms: f64, span: f64) -> bool {
    ms >= 5.0 && ms >= span * 0.05
}

/// The timeline of `r` as an SVG sequence diagram; `id` makes its marker
/// ids unique in the page.
pub fn diagram(r: &RunResult, id: &str) -> String {
    diagram_of(&r.timeline, r.proxy.name(), r.upstream.name(), id)
}

pub fn diagram_of(entries: &[TimelineEntry], proxy_name: &str, upstream_name: &str, id: &str) -> String {
    let mut entries: Vec<&TimelineEntry> = entries.iter().collect();
    entries.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    let span = entries.last().map_or(0.0, |e| e.at_ms) - entries.first().map_or(0.0, |e| e.at_ms);
    let longest = entries.iter().map(|e| e.text.chars().count().min(TEXT_CHARS)).max().unwrap_or(0);
    let width = (TEXT_X + 7.3 * longest as f64 + 16.0).max(760.0).ceil();
    let id = escape(id);
    let mut rows = String::new();
    let mut y = TOP;
    let mut prev: Option<f64> = None;
    for e in &entries {
        if let Some(p) = prev {
            if is_gap(e.at_ms - p, span) {
                y += ROW * 0.9;
                let _ = writeln!(rows, r#"<text class="gap" x="{TEXT_X}" y="{:.1}">⋮ +{:.1} ms</text>"#, y - 2.0, e.at_ms - p);
            }
        }
        prev = Some(e.at_ms);
        y += ROW;
        let s = shape(e);
        let (row_class, text_class) = match s {
            Shape::Error(_) => (" err", "err"),
            Shape::Retry(_) => (" retry", "retry"),
            Shape::Close(_, _, "RST") => ("", "rst"),
            _ => ("", lane_class(e.lane)),
        };
        let _ = writeln!(rows, r#"<g class="event{row_class}" data-lane="{}">"#, lane_class(e.lane));
        if !row_class.is_empty() {
            let _ = writeln!(rows, r#"<rect class="band" x="0" y="{:.1}" width="{width}" height="{ROW}"/>"#, y - 14.0);
        }
        let _ = writeln!(rows, r#"<text class="t" x="64" y="{y:.1}" text-anchor="end">{:.2}</text>"#, e.at_ms);
        let ay = y - 4.0;
        match s {
            Shape::Request(from, to) | Shape::Response(from, to) => {
                let kind = if matches!(s, Shape::Request(..)) { "req" } else { "resp" };
                let _ = writeln!(
                    rows,
                    r#"<line class="arrow {kind}" x1="{}" y1="{ay:.1}" x2="{}" y2="{ay:.1}" marker-end="url(#{id}-{kind})"/>"#,
                    x(from),
                    shorten(x(from), x(to))
                );
            }
            Shape::Close(from, to, mark) => {
                let class = match mark {
                    "FIN" => "fin",
                    "RST" => "rst",
                    _ => "closed",
                };
                let (x1, x2) = (x(from), shorten(x(from), x(to)));
                let _ = writeln!(rows, r#"<g class="close {class}" data-close="{mark}">"#);
                if mark == "FIN" {
                    // A double line, as the text's ══.
                    for dy in [-2.0, 2.0] {
                        let _ = writeln!(rows, r#"<line x1="{x1}" y1="{:.1}" x2="{x2}" y2="{:.1}"/>"#, ay + dy, ay + dy);
                    }
                    let _ = writeln!(rows, r#"<line class="head" x1="{x1}" y1="{ay:.1}" x2="{x2}" y2="{ay:.1}" marker-end="url(#{id}-fin)"/>"#);
                } else {
                    let _ = writeln!(rows, r#"<line x1="{x1}" y1="{ay:.1}" x2="{x2}" y2="{ay:.1}" marker-end="url(#{id}-{class})"/>"#);
                }
                let _ = writeln!(rows, r#"<text class="mark" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#, (x1 + x2) / 2.0, ay - 5.0, escape(mark));
                rows.push_str("</g>\n");
            }
            Shape::Error(l) => {
                let _ = writeln!(rows, r#"<text class="cross" x="{}" y="{:.1}" text-anchor="middle">✗</text>"#, x(l), y);
            }
            Shape::Retry(l) => {
                let _ = writeln!(rows, r#"<text class="again" x="{}" y="{:.1}" text-anchor="middle">↻</text>"#, x(l), y);
            }
            Shape::Note(l) => {
                let _ = writeln!(rows, r#"<circle class="dot {}" cx="{}" cy="{ay:.1}" r="3.5"/>"#, lane_class(l), x(l));
            }
        }
        let shown = report::fit(&e.text, TEXT_CHARS);
        let _ = writeln!(rows, r#"<text class="label {text_class}" x="{TEXT_X}" y="{y:.1}"><title>{}</title>{}</text>"#, escape(&e.text), escape(&shown));
        rows.push_str("</g>\n");
    }
    let height = y + ROW * 0.75;
    let mut s = format!(
        r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height:.0}" viewBox="0 0 {width} {height:.0}" role="img" aria-label="timeline">
<defs>
<marker id="{id}-req" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="m-req"/></marker>
<marker id="{id}-resp" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="m-resp"/></marker>
<marker id="{id}-fin" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="8" markerHeight="8" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="m-fin"/></marker>
<marker id="{id}-rst" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="9" markerHeight="9" orient="auto"><path d="M1,1 L9,9 M9,1 L1,9" class="m-rst"/></marker>
<marker id="{id}-closed" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" class="m-closed"/></marker>
</defs>
<text class="t" x="64" y="18" text-anchor="end">ms</text>
"#
    );
    for (l, name) in [(Lane::Client, "client"), (Lane::Proxy, proxy_name), (Lane::Upstream, upstream_name)] {
        let _ = writeln!(
            s,
            r#"<text class="lane-name {}" x="{}" y="18" text-anchor="middle">{}</text><line class="lane" x1="{}" y1="26" x2="{}" y2="{:.1}"/>"#,
            lane_class(l),
            x(l),
            escape(&report::fit(name, 22)),
            x(l),
            x(l),
            height - 4.0
        );
    }
    s.push_str(&rows);
    s.push_str("</svg>\n");
    s
}

/// The end of an arrow from `from` to `to`, short of the lane line.
fn shorten(from: f64, to: f64) -> f64 {
    if to > from {
        to - 3.0
    } else {
        to + 3.0
    }
}

/// The verdict table of one run: per request group, the expectation, what
/// happened, and pass or fail.
pub fn verdict_table(r: &RunResult) -> String {
    let mut s = String::from("<table class=\"verdicts\"><thead><tr><th>requests</th><th>expected</th><th>what happened</th><th>result</th></tr></thead><tbody>\n");
    for v in &r.verdicts {
        let mut got = format!("<code>{}</code>", escape(&report::got_text(r, v)));
        if !v.mismatches.is_empty() || !v.unchecked.is_empty() {
            got.push_str("<ul>");
            for m in &v.mismatches {
                let _ = write!(got, "<li class=\"mismatch\">✗ {}</li>", escape(m));
            }
            for u in &v.unchecked {
                let _ = write!(got, "<li class=\"unchecked\">not checked: {}</li>", escape(u));
            }
            got.push_str("</ul>");
        }
        let _ = writeln!(
            s,
            "<tr class=\"{}\"><td><code>{} {}</code> ×{}</td><td><code>{}</code></td><td>{got}</td><td>{}</td></tr>",
            if v.passed { "pass" } else { "fail" },
            escape(&v.method),
            escape(&v.path),
            v.count,
            escape(&report::expect_text(&v.expect)),
            badge(if v.passed { "pass" } else { "fail" }),
        );
    }
    s.push_str("</tbody></table>\n");
    s
}

fn badge(result: &str) -> String {
    format!("<span class=\"badge {result}\">{}</span>", result.to_uppercase())
}

fn result_of(r: &RunResult) -> &'static str {
    if r.skipped.is_some() {
        "skip"
    } else if r.passed {
        "pass"
    } else {
        "fail"
    }
}

const CSS: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1a202c; margin: 24px auto; max-width: 1400px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 0 0 4px; }
.meta, .backends { color: #4a5568; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12.5px; }
section.run { border: 1px solid #e2e8f0; border-radius: 6px; padding: 14px 16px; margin: 18px 0; }
section.run.fail { border-left: 5px solid #c53030; } section.run.pass { border-left: 5px solid #2f855a; } section.run.skip { border-left: 5px solid #a0aec0; }
table { border-collapse: collapse; margin: 10px 0; }
th, td { border: 1px solid #e2e8f0; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f7fafc; font-weight: 600; }
tr.fail td { background: #fff5f5; }
ul { margin: 4px 0 0; padding-left: 18px; } li.mismatch { color: #c53030; } li.unchecked { color: #975a16; }
.badge { display: inline-block; padding: 0 6px; border-radius: 3px; font-weight: 700; font-size: 12px; color: #fff; }
.badge.pass { background: #2f855a; } .badge.fail { background: #c53030; } .badge.skip { background: #718096; }
.toc { columns: 3 260px; padding-left: 0; list-style: none; } .toc li { margin: 2px 0; }
.diagram { overflow-x: auto; }
.legend { color: #4a5568; font-size: 13px; }
svg.timeline { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 12px; background: #fff; }
svg .lane { stroke: #cbd5e0; stroke-width: 1.5; }
svg .lane-name { font-weight: 700; font-family: system-ui, sans-serif; font-size: 13px; }
svg .t, svg .gap { fill: #718096; } svg .gap { font-style: italic; }
svg .client { fill: #2b6cb0; } svg .proxy { fill: #276749; } svg .upstream { fill: #0b7285; }
svg .arrow { stroke-width: 1.5; } svg .arrow.req { stroke: #2b6cb0; } svg .arrow.resp { stroke: #4a5568; stroke-dasharray: 5 3; }
svg .m-req { fill: #2b6cb0; } svg .m-resp { fill: #4a5568; } svg .m-fin { fill: #b7791f; } svg .m-closed { fill: #718096; }
svg .m-rst { stroke: #c53030; stroke-width: 2.2; fill: none; }
svg .close.fin line { stroke: #b7791f; stroke-width: 1.5; } svg .close.fin line.head { stroke: none; }
svg .close.rst line { stroke: #c53030; stroke-width: 2.5; stroke-dasharray: 2 2; }
svg .close.closed line { stroke: #718096; stroke-width: 1.5; }
svg .mark { font-weight: 700; font-size: 10px; } svg .fin .mark { fill: #b7791f; } svg .rst .mark, svg .label.rst { fill: #c53030; } svg .closed .mark { fill: #718096; }
svg .err .band { fill: #fed7d7; } svg .retry .band { fill: #feebc8; }
svg .label.err, svg .cross { fill: #c53030; font-weight: 700; } svg .label.retry, svg .again { fill: #c05621; font-weight: 700; }
svg .cross, svg .again { font-size: 15px; }
.heatmap td.cell { text-align: center; min-width: 88px; font-family: ui-monospace, monospace; }
.heatmap td.cell small { display: block; font-size: 11px; opacity: .85; }
.heatmap td.safe { outline: 2px dashed #2f855a; outline-offset: -3px; }
"#;

const LEGEND: &str = "<p class=\"legend\">Diagram: <span style=\"color:#2b6cb0\">──► request</span> · <span style=\"color:#4a5568\">◄┄┄ response</span> · <span style=\"color:#b7791f\">◄══ FIN</span> (orderly close) · <span style=\"color:#c53030\">◄┅┅✕ RST</span> (reset) · <span style=\"color:#c53030\">✗ error</span> (red band) · <span style=\"color:#c05621\">↻ retry</span> (orange band) · <i>⋮ +N ms</i> an idle gap. Times are at run scale; hover a line for its full text.</p>\n";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{CSS}</style></head>\n<body>\n{body}</body></html>\n",
        escape(title)
    )
}

/// The report of runs (`scenarios NAME`, `all`, `conformance`): a summary,
/// then per run its verdict table and its timeline diagram.
pub fn runs_page(results: &[RunResult], suite: &str) -> String {
    let count = |k: &str| results.iter().filter(|r| result_of(r) == k).count();
    let (pass, fail, skip) = (count("pass"), count("fail"), count("skip"));
    let mut body = format!(
        "<h1>{}</h1>\n<p class=\"meta\">badgateway-lab scenarios {} · {} run(s): {pass} passed, {fail} failed, {skip} skipped</p>\n",
        escape(suite),
        env!("CARGO_PKG_VERSION"),
        results.len()
    );
    body.push_str("<ul class=\"toc\">\n");
    for (i, r) in results.iter().enumerate() {
        let _ = writeln!(body, "<li>{} <a href=\"#run-{i}\">{}</a></li>", badge(result_of(r)), escape(&r.scenario));
    }
    body.push_str("</ul>\n");
    body.push_str(LEGEND);
    for (i, r) in results.iter().enumerate() {
        let _ = writeln!(body, "<section class=\"run {}\" id=\"run-{i}\" data-scenario=\"{}\">", result_of(r), escape(&r.scenario));
        let _ = writeln!(body, "<h2>{} <code>{}</code> — {}</h2>", badge(result_of(r)), escape(&r.scenario), escape(&r.title));
        let _ = writeln!(body, "<p class=\"backends\">{}</p>", escape(&report::backends(r)));
        if let Some(why) = &r.skipped {
            let _ = writeln!(body, "<p>Skipped: {}</p>", escape(why));
        } else {
            let _ = writeln!(
                body,
                "<p>{} requests, {} × 502 at the client, {:.0} ms</p>",
                r.observations.len(),
                r.count_status(502),
                r.wall_ms
            );
            body.push_str(&verdict_table(r));
            body.push_str("<div class=\"diagram\">\n");
            body.push_str(&diagram(r, &format!("run{i}")));
            body.push_str("</div>\n");
        }
        body.push_str("</section>\n");
    }
    page(suite, &body)
}

/// A cell's background: pale green at 0 %, pale to deep red as the rate
/// rises; and a text colour that reads on it.
fn heat(rate: f64) -> (String, &'static str) {
    if rate <= 0.0 {
        return ("#e6f4ea".into(), "#1a202c");
    }
    let l = 92.0 - 52.0 * rate.clamp(0.0, 1.0);
    (format!("hsl(0, 70%, {l:.0}%)"), if l < 60.0 { "#fff" } else { "#1a202c" })
}

/// The `matrix` report: per method, a heatmap of the client 502 rate over
/// IdleTimeout (rows) × keepalive_timeout (columns); `about` says how it
/// was measured (backends, scale).
pub fn matrix_page(cells: &[Cell], about: &str) -> String {
    let distinct = |f: fn(&Cell) -> &String| {
        let mut v: Vec<&str> = Vec::new();
        for c in cells {
            if !v.contains(&f(c).as_str()) {
                v.push(f(c));
            }
        }
        v
    };
    let (idles, keeps, methods) = (distinct(|c| &c.idle_timeout), distinct(|c| &c.keepalive_timeout), distinct(|c| &c.method));
    let mut body = format!("<h1>scenarios matrix</h1>\n<p class=\"meta\">{} · {} cells</p>\n", escape(about), cells.len());
    body.push_str("<p class=\"legend\">Client 502 rate per cell (requests swept ±1% around IdleTimeout); the second line is the share nginx retried. A dashed green outline: the rules say the race cannot happen there (nginx drops idle connections before Go does).</p>\n");
    for m in methods {
        let _ = writeln!(body, "<section class=\"heatmap-method\"><h2>{}</h2>", escape(m));
        body.push_str("<table class=\"heatmap\"><thead><tr><th>IdleTimeout ↓ / keepalive_timeout →</th>");
        for k in &keeps {
            let _ = write!(body, "<th>{}</th>", escape(k));
        }
        body.push_str("</tr></thead><tbody>\n");
        for i in &idles {
            let _ = write!(body, "<tr><th>{}</th>", escape(i));
            for k in &keeps {
                match cells.iter().find(|c| c.method == m && c.idle_timeout == *i && c.keepalive_timeout == *k) {
                    Some(c) => {
                        let rate = if c.requests == 0 { 0.0 } else { c.client_502 as f64 / c.requests as f64 };
                        let retried = if c.requests == 0 { 0.0 } else { c.retried as f64 / c.requests as f64 };
                        let (bg, fg) = heat(rate);
                        let _ = write!(
                            body,
                            "<td class=\"cell{}\" data-rate=\"{rate:.4}\" style=\"background:{bg};color:{fg}\" title=\"{} × 502 of {} requests; {} retried; {}\">{:.1} %<small>retried {:.1} %</small></td>",
                            if c.race_possible { "" } else { " safe" },
                            c.client_502,
                            c.requests,
                            c.retried,
                            if c.race_possible { "race possible" } else { "safe: nginx lets go first" },
                            rate * 100.0,
                            retried * 100.0
                        );
                    }
                    None => body.push_str("<td class=\"cell\">—</td>"),
                }
            }
            body.push_str("</tr>\n");
        }
        body.push_str("</tbody></table></section>\n");
    }
    page("scenarios matrix", &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use harness::{ProxyBackend, UpstreamBackend};

    fn e(at_ms: f64, lane: Lane, kind: EntryKind, text: &str) -> TimelineEntry {
        TimelineEntry::at_ms(at_ms, lane, kind, text.into())
    }

    fn run(timeline: Vec<TimelineEntry>) -> RunResult {
        RunResult {
            scenario: "idle-<race>".into(),
            title: "A \"title\" & <b>tags</b>".into(),
            proxy: ProxyBackend::Builtin,
            upstream: UpstreamBackend::Builtin,
            proxy_program: None,
            upstream_program: None,
            scale: 0.02,
            skipped: None,
            passed: false,
            verdicts: crate::verdict::judge(
                &[crate::scenario::RequestGroup { method: "GET".into(), path: "/ok?<x>".into(), body: 0, count: 2, client_pause: None, expect: crate::scenario::Expect { status: Some(200), ..Default::default() } }],
                &[],
                1.0,
            ),
            observations: vec![],
            timeline,
            wall_ms: 12.0,
        }
    }

    fn idle_race() -> Vec<TimelineEntry> {
        use EntryKind::*;
        vec![
            e(0.5, Lane::Client, Request, "GET /ok"),
            e(0.7, Lane::Proxy, Connect, ":55906 new connection"),
            e(0.8, Lane::Proxy, Request, "request ──► :55906"),
            e(1.0, Lane::Upstream, Response, ":55906 ◄── 200 (content-length)"),
            e(1.1, Lane::Proxy, Response, "◄── 200 header :55906"),
            e(1.2, Lane::Client, Response, "◄ 200 (2 B)"),
            e(100.0, Lane::Upstream, Close, ":55906 ◄══ FIN (IdleTimeout)").close(CloseHow::Fin),
            e(100.1, Lane::Proxy, Error, "✗ premature-close: upstream prematurely closed connection <while> reading"),
            e(100.2, Lane::Proxy, Retry, "retry (tries left 1)"),
            e(100.3, Lane::Upstream, Close, "[go2] :55907 ◄══ RST (BodyUnread)").close(CloseHow::Rst),
            e(100.4, Lane::Upstream, Close, ":55908 ◄══ closed (ConnState)"),
            e(100.5, Lane::Upstream, Close, ":55909 ◄══ FIN (close in 500 ms) (Shutdown)").close(CloseHow::Fin),
        ]
    }

    #[test]
    fn the_typed_kind_decides_each_shape_never_the_text() {
        let shapes: Vec<Shape> = idle_race().iter().map(shape).collect();
        use Lane::*;
        assert_eq!(
            shapes,
            [
                Shape::Request(Client, Proxy),
                Shape::Note(Proxy),
                Shape::Request(Proxy, Upstream),
                Shape::Response(Upstream, Proxy),
                Shape::Response(Upstream, Proxy),
                Shape::Response(Proxy, Client),
                Shape::Close(Upstream, Proxy, "FIN"),
                Shape::Error(Proxy),
                Shape::Retry(Proxy),
                Shape::Close(Upstream, Proxy, "RST"),
                Shape::Close(Upstream, Proxy, "close"),
                Shape::Close(Upstream, Proxy, "FIN"),
            ]
        );
        assert_eq!(shape(&e(0.0, Client, EntryKind::Note, "warm-up done (2 × GET /ok)")), Shape::Note(Client));
        assert_eq!(shape(&e(0.0, Proxy, EntryKind::Error, "error.log: upstream timed out")), Shape::Error(Proxy));
        // Text that looks like a close but is typed otherwise is not one,
        // and a close's FIN/RST comes from its field, not its words.
        assert_eq!(shape(&e(0.0, Upstream, EntryKind::Note, ":1 ◄══ RST (lookalike)")), Shape::Note(Upstream));
        assert_eq!(shape(&e(0.0, Upstream, EntryKind::Close, ":1 ◄══ FIN").close(CloseHow::Rst)), Shape::Close(Upstream, Proxy, "RST"));
        // Go's request read is a dot in its own lane (nothing to its right).
        assert_eq!(shape(&e(0.0, Upstream, EntryKind::Request, ":1 GET /ok")), Shape::Note(Upstream));
    }

    #[test]
    fn one_close_element_per_fin_and_rst_and_one_arrow_per_request_and_response() {
        let svg = diagram(&run(idle_race()), "d0");
        assert_eq!(svg.matches(r#"data-close="FIN""#).count(), 2, "{svg}");
        assert_eq!(svg.matches(r#"data-close="RST""#).count(), 1);
        assert_eq!(svg.matches(r#"data-close="close""#).count(), 1);
        assert_eq!(svg.matches(r#"class="arrow req""#).count(), 2);
        assert_eq!(svg.matches(r#"class="arrow resp""#).count(), 3);
        assert_eq!(svg.matches(r#"class="event err""#).count(), 1);
        assert_eq!(svg.matches(r#"class="event retry""#).count(), 1);
        // The idle wait between 1.2 and 100 ms is marked.
        assert!(svg.contains("⋮ +98.8 ms"), "{svg}");
        // The lanes carry the backends' names.
        assert!(svg.contains(&escape(ProxyBackend::Builtin.name())) && svg.contains(&escape(UpstreamBackend::Builtin.name())));
        // Markers are per diagram.
        assert!(svg.contains(r#"id="d0-fin""#) && svg.contains("url(#d0-rst)"));
        // Every start tag is closed: the SVG is well formed enough to count on.
        assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
        assert_eq!(svg.matches("<svg").count(), 1);
    }

    #[test]
    fn everything_from_scenario_text_is_escaped() {
        let mut r = run(vec![e(1.0, Lane::Proxy, EntryKind::Error, "✗ x: <script>alert('x')</script> & \"q\"")]);
        r.verdicts[0].mismatches.push("request 1: status <none>".into());
        let page = runs_page(&[r], "suite <&>");
        assert!(!page.contains("<script>") && !page.contains("<b>tags") && !page.contains("idle-<race>") && !page.contains("/ok?<x>"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"));
        assert!(page.contains("idle-&lt;race&gt;") && page.contains("suite &lt;&amp;&gt;") && page.contains("status &lt;none&gt;"));
        assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn the_page_is_self_contained_with_one_diagram_and_table_per_run() {
        let mut skipped = run(vec![]);
        skipped.skipped = Some("needs real Go".into());
        let page = runs_page(&[run(idle_race()), run(idle_race()), skipped], "scenarios all");
        assert_eq!(page.matches("<svg class=\"timeline\"").count(), 2);
        assert_eq!(page.matches("<table class=\"verdicts\"").count(), 2);
        assert_eq!(page.matches("<section class=\"run").count(), 3);
        assert!(page.contains("Skipped: needs real Go"));
        assert!(page.contains("3 run(s): 0 passed, 2 failed, 1 skipped"), "{page}");
        // Marker ids differ between diagrams.
        assert!(page.contains(r#"id="run0-fin""#) && page.contains(r#"id="run1-fin""#));
        // No script, nothing fetched.
        for banned in ["<script", "http://", "https://", "src=", "@import", "url(http"] {
            let hits: Vec<_> = page.match_indices(banned).map(|(i, _)| &page[i..(i + 60).min(page.len())]).filter(|s| !s.starts_with("http://www.w3.org/2000/svg")).collect();
            assert!(hits.is_empty(), "{banned}: {hits:?}");
        }
        // The verdict row: expectation, what happened, and FAIL (0 of 2 ran).
        assert!(page.contains("<code>200</code>") && page.contains("0 of 2 requests ran") && page.contains("badge fail"));
    }

    #[test]
    fn the_matrix_is_a_heatmap_per_method() {
        let cell = |idle: &str, keep: &str, m: &str, bad: usize, race| Cell {
            idle_timeout: idle.into(),
            keepalive_timeout: keep.into(),
            method: m.into(),
            requests: 20,
            client_502: bad,
            retried: 0,
            client_502_ci: crate::matrix::wilson(bad, 20),
            retried_ci: crate::matrix::wilson(0, 20),
            race_possible: race,
            buckets: vec![],
            bucket_ms: crate::matrix::BUCKET_MS,
            window_ms: None,
            centre_gap_ms: None,
            errors: Default::default(),
            gap_error_mean_ms: 0.0,
            gap_error_p99_ms: 0.0,
            off_plan: 0,
            gap_error_max_ms: 0.0,
        };
        let cells = [cell("2s", "1s", "GET", 0, false), cell("2s", "3s", "GET", 0, true), cell("2s", "1s", "POST", 0, false), cell("2s", "3s", "POST", 5, true)];
        let page = matrix_page(&cells, "built-in → built-in, scale 0.02");
        assert_eq!(page.matches("<table class=\"heatmap\"").count(), 2);
        assert_eq!(page.matches("<td class=\"cell").count(), 4);
        assert!(page.contains(r#"data-rate="0.2500""#) && page.contains("25.0 %"));
        assert_eq!(page.matches("cell safe").count(), 2);
        assert_ne!(heat(0.0).0, heat(0.25).0);
        assert_ne!(heat(0.25).0, heat(1.0).0);
    }
}
