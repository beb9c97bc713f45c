//! The counting allocator shared by the allocation tests (`#[path]`-included): counts
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
