//! The pure rule functions and the config reader: these run once per
//! attempt or per start, and should stay far below a microsecond / millisecond.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use nginx_model::retry::{next_upstream, FailedAttempt, Ft, RetryContext};
use std::time::Duration;

fn rules(c: &mut Criterion) {
    let ctx = RetryContext { method: "GET".into(), mask: Ft::DEFAULT_MASK, request_buffering: true, next_upstream_timeout: None, single_peer: true };
    let a = FailedAttempt { ft: Ft::ERROR, cached: true, request_sent: true, peer_picked: true, client_gone: false };
    c.bench_function("retry::next_upstream", |b| b.iter(|| next_upstream(black_box(1), black_box(a), &ctx, Duration::ZERO)));

    let go = go_model::ServerConfig { read_timeout: Duration::from_secs(5), ..Default::default() };
    c.bench_function("rules::effective_idle_limit", |b| b.iter(|| go_model::rules::effective_idle_limit(black_box(&go))));
    c.bench_function("bufio::plan_write", |b| b.iter(|| go_model::bufio::plan_write(black_box(100), 4096, black_box(65536))));

    let src = include_str!("../../fixtures/nginx.conf");
    c.bench_function("conf::parse fixture", |b| b.iter(|| nginx_model::conf::parse(black_box(src), "fixture").unwrap()));
}

criterion_group!(benches, rules);
criterion_main!(benches);
