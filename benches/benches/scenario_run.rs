//! Whole scenario runs on the built-in emulators (wall time per run, which
//! includes the scenario's own scaled timers: panic has none, so it measures
//! the harness; write-timeout waits for its 100 ms handler).

use criterion::{criterion_group, criterion_main, Criterion};
use scenarios::runner::{run, RunOptions};

fn scenario_runs(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut g = c.benchmark_group("scenario");
    g.sample_size(10);
    for name in ["panic", "crash", "idle-race"] {
        let s = scenarios::catalogue::find(name).unwrap();
        g.bench_function(name, |b| b.iter(|| rt.block_on(run(&s, &RunOptions::default())).unwrap()));
    }
    g.finish();
}

criterion_group!(benches, scenario_runs);
criterion_main!(benches);
