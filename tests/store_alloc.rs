//! Proof that the store's steady-state write path does not allocate (STYLE §2): a counting global
//! allocator, armed per thread around 100k appends after warm-up.

// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use portcullis::store::{AppendLog, SessionStore, SessionStoreConfig};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // const-initialised and Drop-free, so touching it never allocates.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if ARMED.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call unchanged to `System`; counting touches no allocator state.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: caller upholds `GlobalAlloc::alloc`'s contract, which we pass on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` via `alloc`/`realloc` above, with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr`/`layout` came from `System` via this allocator; caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

const WARM_UP: u64 = 1_000;
const MEASURED: u64 = 100_000;
/// 64 MiB: 101k records of ≤ 232 bytes fit without a roll (a roll is allowed to allocate).
const SEGMENT_BYTES: usize = 64 << 20;

/// A ~200-byte ExecutionReport-like message with its MsgSeqNum patched in place.
fn patch_seq(msg: &mut [u8; 200], seq: u64) {
    let mut n = seq;
    for b in msg[20..30].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

#[test]
fn session_store_outbound_path_does_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let config = SessionStoreConfig {
        segment_bytes: SEGMENT_BYTES,
        index_capacity: 1 << 20,
    };
    let mut store = SessionStore::open_with(dir.path(), "FIX.4.4-GW-C1", &config, 1).unwrap();
    let mut msg = [b'x'; 200];
    for seq in 1..=WARM_UP {
        patch_seq(&mut msg, seq);
        store.store_outbound(seq, &msg).unwrap();
    }
    let mut failures = 0u64;
    let allocations = allocations_during(|| {
        for seq in WARM_UP + 1..=WARM_UP + MEASURED {
            patch_seq(&mut msg, seq);
            failures += u64::from(store.store_outbound(seq, &msg).is_err());
            store.set_next_target_seq(seq);
            failures += u64::from(store.outbound(seq).is_none());
        }
    });
    assert_eq!(failures, 0);
    assert_eq!(allocations, 0);
    assert_eq!((store.segment_rolls(), store.index_grows()), (0, 0));
    assert_eq!(store.next_sender_seq(), WARM_UP + MEASURED + 1);
}

#[test]
fn append_log_append_does_not_allocate() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AppendLog::open(dir.path(), "journal", SEGMENT_BYTES).unwrap();
    let payload = [7u8; 200];
    for i in 0..WARM_UP {
        log.append(2, i, &payload).unwrap();
    }
    let mut failures = 0u64;
    let allocations = allocations_during(|| {
        for i in WARM_UP..WARM_UP + MEASURED {
            failures += u64::from(log.append(2, i, &payload).is_err());
        }
    });
    assert_eq!(failures, 0);
    assert_eq!(allocations, 0);
    assert_eq!(log.segment_rolls(), 0);
}

#[test]
fn counting_allocator_sees_allocations() {
    // Guards the two tests above against a counter that silently counts nothing.
    let allocations = allocations_during(|| drop(std::hint::black_box(vec![1u8; 64])));
    assert!(allocations >= 1);
}
