//! Proof that the simulated venue never allocates after construction (STYLE §2): a counting
//! global allocator watches 100k mixed orders, cancels and replaces in Book mode.
//!
//! The allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System` and counts, and
//! lives in this test binary alone, never in the library.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

use portcullis::model::{Nanos, OrdType, OrderKey, Price, Qty, Side, Symbol, TimeInForce};
use portcullis::venue::sim::{SimBehaviour, SimConfig, SimVenue};
use portcullis::venue::{VenueEvent, VenueOrder};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the measuring thread counts: the harness's own threads may allocate meanwhile.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches only an atomic and a const-initialised thread local,
// neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's duties for `alloc` are passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` and `layout` come from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// xorshift64: deterministic, allocation-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Default)]
struct Tally {
    accepted: u64,
    rejected: u64,
    fills: u64,
    canceled: u64,
    replaced: u64,
    refused: u64,
}

#[test]
fn book_mode_does_not_allocate_after_construction() {
    let symbols: [Symbol; 4] = [b"AAA".as_slice(), b"BBB", b"CCC", b"DDDD.EXAMPLE"]
        .map(|s| Symbol::new(s).unwrap_or_default());
    let mut venue = SimVenue::new(SimConfig {
        behaviour: SimBehaviour::Book,
        max_orders: 1024,
        max_symbols: 4,
        max_orders_per_symbol: 256,
        default_fill_price: Price::from_units(100),
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tally = Tally::default();
    let mut sink = |e: VenueEvent| match e {
        VenueEvent::Accepted { .. } => tally.accepted += 1,
        VenueEvent::Rejected { .. } => tally.rejected += 1,
        VenueEvent::Fill { .. } => tally.fills += 1,
        VenueEvent::Canceled { .. } => tally.canceled += 1,
        VenueEvent::Replaced { .. } => tally.replaced += 1,
        VenueEvent::CancelRejected { .. } | VenueEvent::ReplaceRejected { .. } => {
            tally.refused += 1
        }
    };

    COUNTING.with(|c| c.set(true));
    for i in 0..100_000u64 {
        let now = Nanos(i);
        // Keys from a space wider than the order table: duplicates, reuse, unknown cancels.
        let key = OrderKey(rng.below(4096) as u32);
        match rng.below(10) {
            0..=5 => {
                let ord_type = if rng.below(10) == 0 {
                    OrdType::Market
                } else {
                    OrdType::Limit
                };
                let tif = match rng.below(8) {
                    0 => TimeInForce::ImmediateOrCancel,
                    1 => TimeInForce::FillOrKill,
                    2 => TimeInForce::GoodTillCancel,
                    _ => TimeInForce::Day,
                };
                let side = match rng.below(3) {
                    0 => Side::Buy,
                    1 => Side::Sell,
                    _ => Side::SellShort,
                };
                let o = VenueOrder {
                    key,
                    symbol: symbols[rng.below(4) as usize],
                    side,
                    ord_type,
                    tif,
                    qty: Qty::from_units(1 + rng.below(20) as i64),
                    price: Some(Price::from_units(95 + rng.below(11) as i64)),
                };
                venue.new_order(&o, now, &mut sink);
            }
            6..=8 => venue.cancel(key, now, &mut sink),
            _ => {
                let new_key = OrderKey(rng.below(4096) as u32);
                let qty = Qty::from_units(1 + rng.below(20) as i64);
                let price = Some(Price::from_units(95 + rng.below(11) as i64));
                venue.replace(key, new_key, qty, price, now, &mut sink);
            }
        }
    }
    let _ = venue.last_price(&symbols[0]);
    COUNTING.with(|c| c.set(false));

    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    assert_eq!(allocations, 0, "the venue allocated {allocations} times");
    // The stream must have exercised every path, or the proof is hollow.
    assert!(tally.accepted > 10_000, "accepted {}", tally.accepted);
    assert!(tally.fills > 10_000, "fills {}", tally.fills);
    assert!(tally.rejected > 0 && tally.canceled > 0 && tally.replaced > 0 && tally.refused > 0);
}
