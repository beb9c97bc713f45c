//! CLOCK-1: the cost of reading UTC on the hot path (`Clock::now`: a TSC read, a scale and an
//! offset load) — target ≤ 25 ns — next to CLOCK_REALTIME through the vDSO for comparison, and
//! the per-order halt check (`ClockStatus::halted`: one relaxed load).
//!
//! Run: `cargo bench --bench clock -- --warm-up-time 1 --measurement-time 3`. Criterion reports
//! time per call (median and confidence interval). On a shared box prefer the instruction
//! count: `valgrind --tool=callgrind target/release/deps/clock-* --bench --profile-time 1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis::clock::{system_utc, Clock, ClockStatus, Policy};
use portcullis::config::ClockCfg;

fn bench(c: &mut Criterion) {
    let clock = Clock::fast();
    c.bench_function("clock_now_fast", |b| b.iter(|| black_box(&clock).now()));
    c.bench_function("clock_realtime_vdso", |b| b.iter(system_utc));
    let status = ClockStatus::new(Policy::from_config(&ClockCfg::default()));
    c.bench_function("clock_halt_check", |b| {
        b.iter(|| black_box(&status).halted())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
