//! Several threads hammer one key's limits for about a second of real time; whatever the
//! interleaving, admissions never exceed `burst + rate × elapsed`, any 10-slot window's limit,
//! or the daily quota.
//!
//! Run: `cargo test --test throttle_stress` (add `--release` for more pressure per second).
// Real time drives this test on purpose: it is the one place where threads race for real.
#![allow(clippy::disallowed_methods)]
// Helpers outside #[test] fns unwrap too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use portcullis::model::Nanos;
use portcullis::throttle::{KeyLimits, KeySlot, Limits, MsgClass, ThrottleTable, UNLIMITED};

const THREADS: usize = 3;
const KEY: KeySlot = KeySlot(7);
/// 2024-01-01T00:00:00Z, so the run does not straddle a quota day.
const BASE_NS: u64 = 1_704_067_200_000_000_000;

/// Per thread and class: the `now` of every admission, and how many checks were made.
struct Run {
    admitted: Vec<Vec<u64>>,
    checks: u64,
    first_ns: u64,
    last_ns: u64,
}

fn hammer(table: &Arc<ThrottleTable>, classes: &'static [MsgClass], run_for: Duration) -> Run {
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let table = Arc::clone(table);
            thread::spawn(move || {
                let mut admitted = vec![Vec::with_capacity(1 << 20); classes.len()];
                let (mut checks, mut first, mut last) = (0u64, u64::MAX, 0u64);
                loop {
                    let elapsed = start.elapsed();
                    if elapsed >= run_for {
                        break;
                    }
                    let now = BASE_NS + elapsed.as_nanos() as u64;
                    first = first.min(now);
                    last = last.max(now);
                    let c = (checks as usize + t) % classes.len();
                    if table.check(KEY, classes[c], Nanos(now)).is_admit() {
                        admitted[c].push(now);
                    }
                    checks += 1;
                }
                (admitted, checks, first, last)
            })
        })
        .collect();
    let mut run = Run {
        admitted: vec![Vec::new(); classes.len()],
        checks: 0,
        first_ns: u64::MAX,
        last_ns: 0,
    };
    for w in workers {
        let (admitted, checks, first, last) = w.join().unwrap();
        for (all, mine) in run.admitted.iter_mut().zip(admitted) {
            all.extend(mine);
        }
        run.checks += checks;
        run.first_ns = run.first_ns.min(first);
        run.last_ns = run.last_ns.max(last);
    }
    for a in &mut run.admitted {
        a.sort_unstable();
    }
    run
}

/// For every interval `[t_i, t_j]` of admission times: `j - i + 1 <= burst + rate × (t_j - t_i)`.
/// With `f(k) = k × 1e9 − rate × t_k` that is `f(j) − f(i) <= (burst − 1) × 1e9`: one pass.
fn assert_bucket(times: &[u64], l: &Limits) {
    let rate = i128::from(l.per_second);
    let slack = (i128::from(l.burst) - 1) * 1_000_000_000;
    let mut min_f = i128::MAX;
    for (k, &t) in times.iter().enumerate() {
        let f = k as i128 * 1_000_000_000 - rate * i128::from(t - BASE_NS);
        min_f = min_f.min(f);
        assert!(
            f - min_f <= slack,
            "bucket exceeded: admission {k} at {t} is {} ns-tokens over",
            f - min_f - slack
        );
    }
}

/// No 10 consecutive slots hold more than `limit` admissions.
fn assert_window(times: &[u64], limit: u32, slot_ns: u64) {
    if limit == UNLIMITED {
        return;
    }
    let epochs: Vec<u64> = times.iter().map(|t| t / slot_ns).collect();
    let mut lo = 0;
    for hi in 0..epochs.len() {
        while epochs[lo] + 10 <= epochs[hi] {
            lo += 1;
        }
        assert!(
            hi - lo < limit as usize,
            "window of {slot_ns} ns slots: {} admitted in 10 slots, limit {limit}",
            hi - lo + 1
        );
    }
}

fn assert_limits(times: &[u64], l: &Limits) {
    assert_bucket(times, l);
    assert_window(times, l.window_1s, 100_000_000);
    assert_window(times, l.window_10s, 1_000_000_000);
    if l.per_day != UNLIMITED {
        assert!(times.len() <= l.per_day as usize, "daily quota exceeded");
    }
}

#[test]
fn concurrent_checks_on_one_key_never_exceed_any_limit() {
    // Phase 1: the bucket alone binds (rate 100k/s, burst 500).
    let bucket_only = Limits {
        per_second: 100_000,
        burst: 500,
        ..Limits::UNLIMITED
    };
    // Phase 2: orders bound by the 1 s window, cancels by their daily quota.
    let windowed = Limits {
        per_second: 200_000,
        burst: 2_000,
        per_day: 1_000_000,
        window_1s: 15_000,
        window_10s: 40_000,
    };
    let daily = Limits {
        per_second: 200_000,
        burst: 2_000,
        per_day: 5_000,
        ..Limits::UNLIMITED
    };
    let table = Arc::new(ThrottleTable::with_capacity(16));
    let all = |order: Limits, cancel: Limits| KeyLimits {
        order,
        cancel,
        other: Limits::BLOCKED,
        day_reset_s: 0,
    };

    table
        .set_key_limits(KEY, &all(bucket_only, bucket_only), Nanos(BASE_NS))
        .unwrap();
    let run = hammer(&table, &[MsgClass::Order], Duration::from_millis(500));
    let n = run.admitted[0].len();
    let elapsed = run.last_ns - run.first_ns;
    eprintln!(
        "bucket: {} checks by {THREADS} threads in {elapsed} ns, {n} admitted, bound {}",
        run.checks,
        500 + 100_000 * elapsed / 1_000_000_000
    );
    assert!(n as u64 <= 500 + 100_000 * (run.last_ns - BASE_NS) / 1_000_000_000);
    assert!(n >= 500, "the burst itself was not admitted: {n}");
    assert_limits(&run.admitted[0], &bucket_only);

    let table = Arc::new(ThrottleTable::with_capacity(16));
    table
        .set_key_limits(KEY, &all(windowed, daily), Nanos(BASE_NS))
        .unwrap();
    let run = hammer(
        &table,
        &[MsgClass::Order, MsgClass::Cancel],
        Duration::from_millis(500),
    );
    eprintln!(
        "windows/day: {} checks, {} orders and {} cancels admitted",
        run.checks,
        run.admitted[0].len(),
        run.admitted[1].len()
    );
    assert_limits(&run.admitted[0], &windowed);
    assert_limits(&run.admitted[1], &daily);
    let used = table.daily_state(KEY).unwrap();
    assert_eq!(used.order.used as usize, run.admitted[0].len());
    assert_eq!(used.cancel.used as usize, run.admitted[1].len());
}

// ---------------------------------------------------------------------------------------------
// Zero allocation on the check path (STYLE §2), counted on this test's own thread only, so the
// concurrently running stress test does not disturb the count.
// ---------------------------------------------------------------------------------------------

struct CountingAlloc;

thread_local! {
    static ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the thread-local counter is
// const-initialised, so touching it cannot allocate or recurse.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: `ptr` came from `System.alloc` above with this `layout`.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn checks_never_allocate() {
    let l = Limits {
        per_second: 1_000,
        burst: 100,
        per_day: 50_000,
        window_1s: 500,
        window_10s: 2_000,
    };
    let limits = KeyLimits {
        order: l,
        cancel: l,
        other: l,
        day_reset_s: 0,
    };
    let table = ThrottleTable::with_limits(1_000, &limits);
    let before = ALLOCS.with(|c| c.get());
    let (mut admitted, mut refused) = (0u32, 0u32);
    for i in 0..100_000u64 {
        let key = KeySlot((i % 1_013) as u32); // includes unknown slots
        let class = [MsgClass::Order, MsgClass::Cancel, MsgClass::Other][(i % 3) as usize];
        match table.check(key, class, Nanos(BASE_NS + i * 50_000)) {
            portcullis::throttle::Verdict::Admit => admitted += 1,
            portcullis::throttle::Verdict::Reject { .. } => refused += 1,
        }
    }
    table
        .set_key_limits(KeySlot(3), &limits, Nanos(BASE_NS))
        .unwrap();
    let _ = table.daily_state(KeySlot(3));
    assert_eq!(ALLOCS.with(|c| c.get()), before, "a check allocated");
    assert!(
        admitted > 0 && refused > 0,
        "{admitted} admitted, {refused} refused"
    );
}
