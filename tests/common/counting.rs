//! The counting allocator and order driver shared by the allocation tests (`#[path]`-included): counts
//! allocations made on the gateway thread (`portcullis-hot`) while `ARMED` is set.
#![allow(unsafe_code)] // a global allocator is unsafe by definition; it only forwards to System

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

struct Counting;

pub static ARMED: AtomicBool = AtomicBool::new(false);
pub static HOT_ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// 0 = not yet known, 1 = the gateway thread, 2 = any other thread.
    static IS_HOT: Cell<u8> = const { Cell::new(0) };
}

fn on_hot_thread() -> bool {
    IS_HOT.with(|h| match h.get() {
        0 => {
            h.set(2); // anything `current()` allocates below is not counted
            let hot = std::thread::current().name() == Some("portcullis-hot");
            h.set(if hot { 1 } else { 2 });
            hot
        }
        v => v == 1,
    })
}

// SAFETY: forwards every call to the system allocator unchanged; the bookkeeping only touches
// atomics and a const-initialised thread local, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) && on_hot_thread() {
            HOT_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if ARMED.load(Ordering::Relaxed) && on_hot_thread() {
            HOT_ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The NewOrderSingle body the FIX allocation tests send: ClOrdID `id`, 100 AAPL at 10.25.
#[allow(dead_code)] // not every including test speaks FIX
pub fn new_order(w: &mut portcullis::fix::Writer, id: usize) {
    let mut cl = [0u8; 20];
    let n = portcullis::fix::encode::write_u64(&mut cl, id as u64);
    w.str(11, &cl[..n])
        .str(55, b"AAPL")
        .char(54, b'1')
        .str(38, b"100")
        .char(40, b'2')
        .str(44, b"10.25")
        .str(60, b"20240101-00:00:00");
}

/// Sends `warmup` then `measured` orders with at most `window` unanswered, counting the gateway
/// thread's allocations during the measured phase only. `send_order(s, id)` writes order `id`;
/// `read_some(s, fills)` reads what came and counts the answered orders. Returns the fills and
/// the allocations.
pub fn drive<S>(
    s: &mut S,
    (warmup, measured, window): (usize, usize, usize),
    mut send_order: impl FnMut(&mut S, usize),
    mut read_some: impl FnMut(&mut S, &mut usize),
) -> (usize, u64) {
    let (mut sent, mut fills) = (0usize, 0usize);
    for phase in [warmup, measured] {
        if phase == measured {
            HOT_ALLOCS.store(0, Ordering::Relaxed);
            ARMED.store(true, Ordering::Relaxed);
        }
        let target = sent + phase;
        while fills < target {
            while sent < target && sent - fills < window {
                send_order(s, sent);
                sent += 1;
            }
            read_some(s, &mut fills);
        }
    }
    ARMED.store(false, Ordering::Relaxed);
    (fills, HOT_ALLOCS.load(Ordering::Relaxed))
}
