//! loom model of the throttle CAS loops: the very primitives of `cell.rs`, instantiated over
//! loom's atomics, explored over every interleaving of two threads (bounded preemption).
//!
//! Part of the ordinary `cargo test` (it takes well under a second):
//! `cargo test --lib throttle::loom_model`. Set `LOOM_MAX_PREEMPTIONS` to widen the search.

use std::sync::Arc as StdArc;

use loom::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use super::cell::{self, Bucket, Cell, RING, WINDOW_1S};

/// loom's atomic as a [`Cell`] (a local newtype: both the trait and loom's type are foreign to
/// any other place this could live).
struct L(AtomicU64);

impl L {
    fn new(v: u64) -> L {
        L(AtomicU64::new(v))
    }
}

impl Cell for L {
    // The same orderings as the std instantiation in cell.rs, plus one thing: loom models a
    // `SeqCst` access as `AcqRel` (loom README, "Unsupported features"), so it would report the
    // store-buffer outcome that C++20/Rust `SeqCst` forbids (the window check: RMW one slot, then
    // load the others). loom does model `fence(SeqCst)`; issuing one after each successful RMW
    // restores the single total order the std code gets from `SeqCst`. Without the fence,
    // `window_never_over_admits_across_a_slot_boundary` fails: that is the interleaving the
    // ordering choice in cell.rs exists for.
    fn get(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
    fn set(&self, v: u64) {
        self.0.store(v, Ordering::SeqCst);
    }
    fn cas(&self, current: u64, new: u64) -> Result<u64, u64> {
        let r = self
            .0
            .compare_exchange_weak(current, new, Ordering::SeqCst, Ordering::SeqCst);
        if r.is_ok() {
            fence(Ordering::SeqCst);
        }
        r
    }
}

const NOW: u64 = 1_000_000_000;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    b.check(f);
}

fn small_bucket(burst: u32) -> Bucket {
    cell::bucket_decode(cell::bucket_word(10, burst))
}

/// Two threads, two takes each, burst 3: exactly three admitted, and `tat` records exactly
/// three tokens.
#[test]
fn bucket_never_admits_beyond_burst() {
    model(|| {
        let tat = Arc::new(L::new(0));
        let admitted = Arc::new(AtomicUsize::new(0));
        let b = small_bucket(3);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (tat, admitted) = (tat.clone(), admitted.clone());
                thread::spawn(move || {
                    for _ in 0..2 {
                        if cell::bucket_take(&*tat, b, NOW).is_ok() {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(admitted.load(Ordering::Relaxed), 3);
        assert_eq!(tat.get(), NOW + 3 * 100_000_000);
    });
}

/// A take that is given back (refused by a later limit) races a taker: the giver never leaks a
/// token, the taker never exceeds the burst, and the final state holds exactly the taker's.
#[test]
fn bucket_give_back_composes_with_concurrent_takes() {
    model(|| {
        let tat = Arc::new(L::new(0));
        let b = small_bucket(1);
        let giver = {
            let tat = tat.clone();
            thread::spawn(move || {
                if cell::bucket_take(&*tat, b, NOW).is_ok() {
                    cell::bucket_untake(&*tat, b);
                }
            })
        };
        let taker = {
            let tat = tat.clone();
            thread::spawn(move || {
                (0..2)
                    .filter(|_| cell::bucket_take(&*tat, b, NOW).is_ok())
                    .count()
            })
        };
        giver.join().unwrap();
        let taken = taker.join().unwrap();
        assert!(taken <= 1);
        // After both: passes now iff the taker took nothing.
        assert_eq!(cell::bucket_peek(&*tat, b, NOW).is_none(), taken == 0);
    });
}

/// Daily quota of 1 shared by two threads: exactly one admitted, counted once.
#[test]
fn daily_quota_is_exact() {
    model(|| {
        let day = Arc::new(L::new(0));
        let limits = cell::daily_word(1, 0);
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let day = day.clone();
                thread::spawn(move || cell::daily_take(&*day, limits, NOW).is_ok())
            })
            .collect();
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(admitted, 1);
        assert_eq!(day.get() & 0xFFFF_FFFF, 1);
    });
}

/// Window limit 1; the two threads' clocks are in adjacent slots, the case where each sums a
/// window the other's slot may or may not be in: at most one admitted, and a refused
/// increment is always undone.
#[test]
fn window_never_over_admits_across_a_slot_boundary() {
    model(|| {
        let ring: StdArc<[L; RING]> = StdArc::new(std::array::from_fn(|_| L::new(0)));
        let threads: Vec<_> = [NOW, NOW + WINDOW_1S.slot_ns]
            .into_iter()
            .map(|now| {
                let ring = ring.clone();
                thread::spawn(move || cell::window_take(&ring, WINDOW_1S, 1, now).is_ok())
            })
            .collect();
        let admitted = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert!(admitted <= 1);
        let total: u64 = ring.iter().map(|w| w.get() & 0xFF_FFFF).sum();
        assert_eq!(total, admitted as u64);
    });
}
