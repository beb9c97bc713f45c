//! CLOCK-1: the cost of reading UTC on the hot path (`Clock::now`: a TSC read, the calibrated
//! line under a sequence lock) — target ≤ 25 ns — next to quanta's bare TSC read and
//! CLOCK_REALTIME through the vDSO, and the per-order halt check (`ClockStatus::halted`: one
//! relaxed load).
//!
//! Run: `cargo bench --bench clock -- --warm-up-time 1 --measurement-time 3`. Criterion reports
//! time per call (median and confidence interval). On a shared box count instructions instead:
//! `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='clock::read_*'
//!  target/release/deps/clock-* --bench --profile-time 1`, then Ir ÷ calls per function.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use portcullis::clock::{system_utc, Clock, ClockStatus, Policy};
use portcullis::config::ClockCfg;
use portcullis::model::Nanos;

#[inline(never)]
fn read_fast(c: &Clock) -> Nanos {
    c.now()
}

#[inline(never)]
fn read_quanta(c: &quanta::Clock) -> quanta::Instant {
    c.now()
}

#[inline(never)]
fn read_realtime() -> Nanos {
    system_utc()
}

#[inline(never)]
fn read_halt(s: &ClockStatus) -> bool {
    s.halted()
}

fn bench(c: &mut Criterion) {
    let clock = Clock::fast();
    // A second calibration sets a measured rate, as in a running gateway.
    std::thread::sleep(std::time::Duration::from_millis(20));
    clock.calibrate();
    c.bench_function("clock_now_fast", |b| {
        b.iter(|| read_fast(black_box(&clock)))
    });
    let q = quanta::Clock::new();
    c.bench_function("quanta_now_bare", |b| b.iter(|| read_quanta(black_box(&q))));
    c.bench_function("clock_realtime_vdso", |b| b.iter(read_realtime));
    let status = ClockStatus::new(Policy::from_config(&ClockCfg::default()));
    c.bench_function("clock_halt_check", |b| {
        b.iter(|| read_halt(black_box(&status)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
