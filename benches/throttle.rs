//! Cost of one admitted `ThrottleTable::check` (bucket + daily quota + 1 s and 10 s windows):
//! uncontended on one key, with a second thread hammering the same key, and spread at random
//! over a 100,000-key table (cache misses dominate there).
//!
//! Run: `cargo bench --bench throttle -- --warm-up-time 1 --measurement-time 3`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis::model::Nanos;
use portcullis::throttle::{KeyLimits, KeySlot, Limits, MsgClass, ThrottleTable};

/// 2024-01-01T00:00:00Z.
const T0: u64 = 1_704_067_200_000_000_000;
/// Simulated time per check: 2 µs, i.e. 500k checks/s on a key.
const STEP_NS: u64 = 2_000;

/// Every limit active, none binding at 500k/s per thread (so each check admits and writes).
fn limits() -> KeyLimits {
    let l = Limits {
        per_second: 2_000_000,
        burst: 10_000,
        per_day: 4_000_000_000,
        window_1s: 2_000_000,
        window_10s: 8_000_000,
    };
    KeyLimits {
        order: l,
        cancel: l,
        other: l,
        day_reset_s: 0,
    }
}

fn uncontended(c: &mut Criterion) {
    let table = ThrottleTable::with_limits(1, &limits());
    let mut now = T0;
    c.bench_function("throttle/check_uncontended", |b| {
        b.iter(|| {
            now += STEP_NS;
            black_box(table.check(KeySlot(0), MsgClass::Order, Nanos(black_box(now))))
        })
    });
    assert!(table
        .check(KeySlot(0), MsgClass::Order, Nanos(now + STEP_NS))
        .is_admit());
}

fn contended(c: &mut Criterion) {
    let table = Arc::new(ThrottleTable::with_limits(1, &limits()));
    let stop = Arc::new(AtomicBool::new(false));
    let rival = {
        let (table, stop) = (Arc::clone(&table), Arc::clone(&stop));
        thread::spawn(move || {
            let mut now = T0;
            while !stop.load(Ordering::Relaxed) {
                now += STEP_NS;
                black_box(table.check(KeySlot(0), MsgClass::Order, Nanos(now)));
            }
        })
    };
    let mut now = T0;
    c.bench_function("throttle/check_2_threads_one_key", |b| {
        b.iter(|| {
            now += STEP_NS;
            black_box(table.check(KeySlot(0), MsgClass::Order, Nanos(black_box(now))))
        })
    });
    stop.store(true, Ordering::Relaxed);
    rival.join().unwrap();
}

fn many_keys(c: &mut Criterion) {
    const KEYS: u32 = 100_000;
    let table = ThrottleTable::with_limits(KEYS as usize, &limits());
    // xorshift key sequence, precomputed so the generator is not measured.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let keys: Vec<KeySlot> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            KeySlot((x % u64::from(KEYS)) as u32)
        })
        .collect();
    let (mut i, mut now) = (0usize, T0);
    c.bench_function("throttle/check_100k_keys_random", |b| {
        b.iter(|| {
            now += STEP_NS;
            i = (i + 1) & ((1 << 20) - 1);
            let key = keys.get(i).copied().unwrap_or_default();
            black_box(table.check(key, MsgClass::Order, Nanos(black_box(now))))
        })
    });
}

fn refused(c: &mut Criterion) {
    // The cold path: a spent bucket, every limit peeked to compute the retry time.
    let mut l = limits();
    l.order.burst = 1;
    l.order.per_second = 1;
    let table = ThrottleTable::with_limits(1, &l);
    assert!(table
        .check(KeySlot(0), MsgClass::Order, Nanos(T0))
        .is_admit());
    c.bench_function("throttle/check_refused", |b| {
        b.iter(|| black_box(table.check(KeySlot(0), MsgClass::Order, Nanos(black_box(T0)))))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = uncontended, contended, many_keys, refused
}
criterion_main!(benches);
