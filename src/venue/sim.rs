//! HOT — the embedded simulated venue: a sans-IO, allocation-free matching engine.
//!
//! Owns every order the gateway routed to the simulator (a preallocated slab indexed through a
//! fixed-capacity key map), one [`Book`] per symbol, the last trade price per symbol and the
//! venue order id / exec id counters. Runs on the gateway thread, driven by the engine.
//!
//! Must never: allocate after [`SimVenue::new`] (exhaustion is a `Rejected` with a reason, never
//! a grow), do I/O, read the clock (callers pass `now`), use floating point, or panic on any
//! sequence of calls.
//!
//! # Behaviours
//!
//! Every order is answered by one `Accepted` first, unless it is `Rejected`. Then:
//!
//! - [`SimBehaviour::AckOnly`]: nothing more; the order rests until cancelled or replaced.
//! - [`SimBehaviour::FillImmediately`]: one `Fill` for the whole quantity.
//! - [`SimBehaviour::PartialFills`]: `slices` fills of equal size, the last one taking the
//!   remainder (never more fills than quantity units, so no fill is empty).
//! - [`SimBehaviour::Book`]: price-time priority matching per symbol. Trades happen at the
//!   resting order's price and produce one `Fill` for each side (aggressor first), each with its
//!   own exec id. A Limit Day/GTC remainder rests; an IOC or Market remainder is `Canceled`; a
//!   FOK order is filled completely or `Canceled` untouched. SellShort trades as Sell. Orders of
//!   different gateway clients may trade with each other.
//!
//! In the fill modes a Limit order fills at its limit price and a Market order at the symbol's
//! last trade price, else at [`SimConfig::default_fill_price`].
//!
//! # Capacity
//!
//! - `max_orders`: orders open at once (slab slots and key map entries). Fully filled keys are
//!   also remembered, for the last `max_orders` of them, so that a late cancel is answered
//!   "order already filled" rather than "unknown order".
//! - `max_symbols`: symbols ever seen; symbols are never forgotten.
//! - `max_orders_per_symbol`: resting orders in one book, both sides together. A Limit Day/GTC
//!   order that meets a full book is rejected unless it can trade in full on arrival.
//!
//! # Keys
//!
//! `OrderKey` is not assumed dense or bounded: keys map to slots through `FixedMap`, an
//! open-addressing table sized at construction to twice its capacity, with backward-shift
//! deletion (no tombstones), so it never rehashes or grows however keys churn. (std `HashMap`
//! was rejected: under removals its tombstones can force a resize even below capacity.)
//! A key is unique among open orders; it may be reused once its order is done.

use super::book::{Book, BookSide, Resting};
use super::{VenueEvent, VenueOrder};
use crate::model::{Nanos, OrdType, OrderKey, Price, Qty, Side, Symbol, TimeInForce};

/// How the simulator answers orders; see the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimBehaviour {
    AckOnly,
    FillImmediately,
    PartialFills { slices: u32 },
    Book,
}

/// Sizes and behaviour, fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimConfig {
    pub behaviour: SimBehaviour,
    /// Orders open at once; at most `u32::MAX` are used.
    pub max_orders: usize,
    /// Distinct symbols over the venue's life.
    pub max_symbols: usize,
    /// Resting orders per symbol book, both sides together (Book mode only).
    pub max_orders_per_symbol: usize,
    /// Fill price of a Market order in the fill modes when the symbol has no last price.
    pub default_fill_price: Price,
}

/// The `reason` strings of `Rejected`, `CancelRejected` and `ReplaceRejected`.
pub mod reason {
    pub const QTY_NOT_POSITIVE: &str = "qty not positive";
    pub const LIMIT_WITHOUT_PRICE: &str = "limit order without price";
    pub const DUPLICATE_KEY: &str = "duplicate order key";
    pub const ORDER_TABLE_FULL: &str = "order table full";
    pub const SYMBOL_TABLE_FULL: &str = "symbol table full";
    pub const BOOK_FULL: &str = "symbol book full";
    pub const UNKNOWN_ORDER: &str = "unknown order";
    pub const ALREADY_FILLED: &str = "order already filled";
    pub const QTY_NOT_ABOVE_FILLED: &str = "qty not above filled qty";
}

/// The simulated venue. See the module doc for behaviour, capacity and key rules.
#[derive(Debug)]
pub struct SimVenue {
    behaviour: SimBehaviour,
    default_fill_price: Price,
    /// Order slab; a slot is either in `free` or the value of exactly one `live` entry.
    orders: Vec<SimOrder>,
    /// Free slot stack, reserved to `orders.len()`.
    free: Vec<u32>,
    /// Open order key → slot.
    live: FixedMap<OrderKey, u32>,
    /// Recently fully filled key → generation of its `filled_ring` entry.
    filled: FixedMap<OrderKey, u64>,
    /// FIFO of remembered filled keys; the oldest is forgotten when its entry is overwritten.
    filled_ring: Vec<(OrderKey, u64)>,
    filled_head: usize,
    filled_generation: u64,
    /// Symbol → index into `books` and `last_trade`.
    symbols: FixedMap<Symbol, u32>,
    max_symbols: usize,
    books: Vec<Book>,
    last_trade: Vec<Option<Price>>,
    next_venue_order_id: u64,
    next_exec_id: u64,
}

impl SimVenue {
    /// Allocates everything the venue will ever use.
    pub fn new(cfg: SimConfig) -> SimVenue {
        let max_orders = cfg.max_orders.min(u32::MAX as usize);
        let max_symbols = cfg.max_symbols.min(u32::MAX as usize);
        let book_capacity = match cfg.behaviour {
            SimBehaviour::Book => cfg.max_orders_per_symbol,
            _ => 0,
        };
        // Popped from the end: slot 0 is used first.
        let free: Vec<u32> = (0..max_orders as u32).rev().collect();
        SimVenue {
            behaviour: cfg.behaviour,
            default_fill_price: cfg.default_fill_price,
            orders: vec![SimOrder::EMPTY; max_orders],
            free,
            live: FixedMap::with_capacity(max_orders),
            filled: FixedMap::with_capacity(max_orders),
            filled_ring: vec![(OrderKey(0), NO_GENERATION); max_orders],
            filled_head: 0,
            filled_generation: NO_GENERATION,
            symbols: FixedMap::with_capacity(max_symbols),
            max_symbols,
            books: (0..max_symbols)
                .map(|_| Book::with_capacity(book_capacity))
                .collect(),
            last_trade: vec![None; max_symbols],
            next_venue_order_id: 1,
            next_exec_id: 1,
        }
    }

    /// Accepts or rejects `o`, then answers it according to the behaviour.
    pub fn new_order(&mut self, o: &VenueOrder, _now: Nanos, out: &mut impl FnMut(VenueEvent)) {
        if o.qty.0 <= 0 {
            return reject(out, o.key, reason::QTY_NOT_POSITIVE);
        }
        let price = match o.ord_type {
            OrdType::Limit => match o.price {
                Some(p) => Some(p),
                None => return reject(out, o.key, reason::LIMIT_WITHOUT_PRICE),
            },
            // A price on a market order means nothing here.
            OrdType::Market => None,
        };
        if self.live.get(&o.key).is_some() {
            return reject(out, o.key, reason::DUPLICATE_KEY);
        }
        if self.free.is_empty() {
            return reject(out, o.key, reason::ORDER_TABLE_FULL);
        }
        let Some(symbol) = self.symbol_index(&o.symbol) else {
            return reject(out, o.key, reason::SYMBOL_TABLE_FULL);
        };
        if self.behaviour == SimBehaviour::Book
            && price.is_some()
            && rests(o.tif)
            && self.books.get(symbol as usize).is_none_or(|b| {
                b.is_full() && b.available(BookSide::of(o.side), price, o.qty) < o.qty
            })
        {
            return reject(out, o.key, reason::BOOK_FULL);
        }
        let Some(slot) = self.free.pop() else {
            return reject(out, o.key, reason::ORDER_TABLE_FULL);
        };
        if self.live.insert(o.key, slot).is_err() {
            // Unreachable: `live` has room for every slot. Keep the slot, refuse the order.
            self.free.push(slot);
            return reject(out, o.key, reason::ORDER_TABLE_FULL);
        }
        self.forget_filled(o.key);
        let venue_order_id = self.next_venue_order_id;
        self.next_venue_order_id += 1;
        if let Some(entry) = self.orders.get_mut(slot as usize) {
            *entry = SimOrder {
                key: o.key,
                symbol,
                side: o.side,
                ord_type: o.ord_type,
                tif: o.tif,
                qty: o.qty,
                filled: Qty::ZERO,
                price,
            };
        }
        out(VenueEvent::Accepted {
            key: o.key,
            venue_order_id: crate::model::VenueOrderId::from_u64(venue_order_id),
        });
        let slot = slot as usize;
        match self.behaviour {
            SimBehaviour::AckOnly => {}
            SimBehaviour::FillImmediately => self.fill_in_slices(slot, 1, out),
            SimBehaviour::PartialFills { slices } => self.fill_in_slices(slot, slices, out),
            SimBehaviour::Book => self.run_book(slot, out),
        }
    }

    /// Cancels the open order `key`: `Canceled` with its open quantity, else `CancelRejected`.
    pub fn cancel(&mut self, key: OrderKey, _now: Nanos, out: &mut impl FnMut(VenueEvent)) {
        let Some(slot) = self.live.get(&key) else {
            return self.reject_cancel(key, out);
        };
        let slot = slot as usize;
        let Some(o) = self.orders.get(slot).copied() else {
            return self.reject_cancel(key, out);
        };
        if let (Some(price), Some(book)) = (o.price, self.books.get_mut(o.symbol as usize)) {
            // Not found in AckOnly mode, where nothing rests in a book.
            book.remove(BookSide::of(o.side), price, slot as u32);
        }
        out(VenueEvent::Canceled {
            key,
            canceled_qty: o.leaves(),
        });
        self.release(slot);
    }

    /// Cancel/replace: the open order `key` becomes `new_key` with total quantity `qty` and
    /// `price` (required for a Limit order, ignored for a Market one).
    ///
    /// # Priority
    ///
    /// The order keeps its place in the queue only if the price is unchanged and the quantity
    /// not increased; otherwise it goes to the back of its (new) price level, trading first if
    /// the new price crosses the book. `qty` not above the filled quantity is refused.
    pub fn replace(
        &mut self,
        key: OrderKey,
        new_key: OrderKey,
        qty: Qty,
        price: Option<Price>,
        _now: Nanos,
        out: &mut impl FnMut(VenueEvent),
    ) {
        let Some(slot) = self.live.get(&key) else {
            return self.reject_replace(key, new_key, None, out);
        };
        if new_key != key && self.live.get(&new_key).is_some() {
            return self.reject_replace(key, new_key, Some(reason::DUPLICATE_KEY), out);
        }
        let Some(o) = self.orders.get(slot as usize).copied() else {
            return self.reject_replace(key, new_key, None, out);
        };
        let new_price = match o.ord_type {
            OrdType::Limit => match price {
                Some(p) => Some(p),
                None => {
                    return self.reject_replace(
                        key,
                        new_key,
                        Some(reason::LIMIT_WITHOUT_PRICE),
                        out,
                    )
                }
            },
            OrdType::Market => None,
        };
        if qty <= o.filled {
            return self.reject_replace(key, new_key, Some(reason::QTY_NOT_ABOVE_FILLED), out);
        }
        // Re-key before touching the book, so that a refusal leaves everything as it was.
        // `key` leaves the map before `new_key` joins: the map never needs room for both.
        self.live.remove(&key);
        if self.live.insert(new_key, slot).is_err() {
            // Unreachable: an entry was just removed. `key` fits back for the same reason.
            let _ = self.live.insert(key, slot);
            return self.reject_replace(key, new_key, Some(reason::ORDER_TABLE_FULL), out);
        }
        self.forget_filled(new_key);

        let leaves = Qty(qty.0 - o.filled.0);
        let keep_priority = new_price == o.price && qty <= o.qty;
        let side = BookSide::of(o.side);
        if let (Some(old_price), Some(book)) = (o.price, self.books.get_mut(o.symbol as usize)) {
            // Neither finds the order in AckOnly mode, where nothing rests in a book.
            if keep_priority {
                book.reduce(side, old_price, slot, leaves);
            } else {
                book.remove(side, old_price, slot);
            }
        }
        if let Some(entry) = self.orders.get_mut(slot as usize) {
            entry.key = new_key;
            entry.qty = qty;
            entry.price = new_price;
        }
        out(VenueEvent::Replaced {
            key,
            new_key,
            qty,
            price: new_price,
            leaves,
        });
        if self.behaviour == SimBehaviour::Book && !keep_priority {
            self.match_aggressor(slot as usize, out);
            self.rest_or_cancel(slot as usize, out);
        }
    }

    /// The symbol's last trade price, else the mid of its best bid and ask, else `None`.
    pub fn last_price(&self, symbol: &Symbol) -> Option<Price> {
        let i = self.symbols.get(symbol)? as usize;
        self.last_trade
            .get(i)
            .copied()
            .flatten()
            .or_else(|| self.books.get(i).and_then(Book::mid))
    }

    /// Orders open at the venue (resting, or acknowledged in AckOnly mode).
    pub fn open_orders(&self) -> usize {
        self.live.len()
    }

    /// Index of `symbol`, registering it if new; `None` when the symbol table is full.
    fn symbol_index(&mut self, symbol: &Symbol) -> Option<u32> {
        if let Some(i) = self.symbols.get(symbol) {
            return Some(i);
        }
        let next = self.symbols.len();
        if next >= self.max_symbols {
            return None;
        }
        // `next < max_symbols ≤ u32::MAX`.
        let i = next as u32;
        self.symbols.insert(*symbol, i).ok()?;
        Some(i)
    }

    /// Fill modes: `slices` fills at the limit price (Market: last price, else the default).
    fn fill_in_slices(&mut self, slot: usize, slices: u32, out: &mut impl FnMut(VenueEvent)) {
        let Some(o) = self.orders.get(slot).copied() else {
            return;
        };
        let price = match o.price {
            Some(p) => p,
            None => self
                .last_trade
                .get(o.symbol as usize)
                .copied()
                .flatten()
                .unwrap_or(self.default_fill_price),
        };
        // No more slices than quantity units, so every fill is positive (`qty > 0` here).
        let n = i64::from(slices.max(1)).min(o.qty.0).max(1);
        let base = o.qty.0 / n;
        for i in 1..=n {
            let qty = if i == n {
                self.orders.get(slot).map_or(Qty::ZERO, SimOrder::leaves)
            } else {
                Qty(base)
            };
            self.fill(slot, qty, price, out);
        }
        self.finish_filled(slot);
    }

    /// Book mode: FOK check, matching, then the remainder rests or is cancelled.
    fn run_book(&mut self, slot: usize, out: &mut impl FnMut(VenueEvent)) {
        let Some(o) = self.orders.get(slot).copied() else {
            return;
        };
        if o.tif == TimeInForce::FillOrKill {
            let available = self.books.get(o.symbol as usize).map_or(Qty::ZERO, |b| {
                b.available(BookSide::of(o.side), o.price, o.leaves())
            });
            if available < o.leaves() {
                return self.cancel_remainder(slot, out);
            }
        }
        self.match_aggressor(slot, out);
        self.rest_or_cancel(slot, out);
    }

    /// Trades the order in `slot` against its book's opposite side while it crosses.
    fn match_aggressor(&mut self, slot: usize, out: &mut impl FnMut(VenueEvent)) {
        loop {
            let Some(o) = self.orders.get(slot).copied() else {
                return;
            };
            let Some(book) = self.books.get_mut(o.symbol as usize) else {
                return;
            };
            let Some(m) = book.match_one(BookSide::of(o.side), o.price, o.leaves()) else {
                return;
            };
            self.fill(slot, m.qty, m.price, out);
            let passive = m.passive_slot as usize;
            self.fill(passive, m.qty, m.price, out);
            debug_assert_eq!(
                self.orders.get(passive).map(SimOrder::leaves),
                Some(m.passive_leaves),
                "book and slab disagree on a resting order's leaves"
            );
            if m.passive_leaves.0 <= 0 {
                self.finish_filled(passive);
            }
        }
    }

    /// After matching: done if filled, rests if Limit Day/GTC, else the remainder is cancelled.
    fn rest_or_cancel(&mut self, slot: usize, out: &mut impl FnMut(VenueEvent)) {
        let Some(o) = self.orders.get(slot).copied() else {
            return;
        };
        let leaves = o.leaves();
        if leaves.0 <= 0 {
            return self.finish_filled(slot);
        }
        if let (Some(price), true) = (o.price, rests(o.tif)) {
            if let Some(book) = self.books.get_mut(o.symbol as usize) {
                let r = Resting {
                    price,
                    leaves,
                    slot: slot as u32,
                };
                // Fails only if admission let in an order the book has no room for; then the
                // remainder is cancelled below rather than lost.
                if book.insert(BookSide::of(o.side), r).is_ok() {
                    return;
                }
            }
        }
        self.cancel_remainder(slot, out);
    }

    /// `Canceled` for the open quantity of a non-resting order, then its slot is freed.
    fn cancel_remainder(&mut self, slot: usize, out: &mut impl FnMut(VenueEvent)) {
        if let Some(o) = self.orders.get(slot) {
            out(VenueEvent::Canceled {
                key: o.key,
                canceled_qty: o.leaves(),
            });
        }
        self.release(slot);
    }

    /// Books an execution of `qty` at `price` on the order in `slot` and emits its `Fill`.
    fn fill(&mut self, slot: usize, qty: Qty, price: Price, out: &mut impl FnMut(VenueEvent)) {
        let exec_id = self.next_exec_id;
        self.next_exec_id += 1;
        let Some(o) = self.orders.get_mut(slot) else {
            return;
        };
        o.filled = Qty(o.filled.0 + qty.0);
        out(VenueEvent::Fill {
            key: o.key,
            qty,
            price,
            exec_id,
            leaves: o.leaves(),
        });
        if let Some(last) = self.last_trade.get_mut(o.symbol as usize) {
            *last = Some(price);
        }
    }

    /// Frees a fully filled order's slot and remembers its key as filled.
    fn finish_filled(&mut self, slot: usize) {
        if let Some(key) = self.release(slot) {
            self.remember_filled(key);
        }
    }

    /// Frees `slot` if it is open, returning its key. Idempotent.
    fn release(&mut self, slot: usize) -> Option<OrderKey> {
        let key = self.orders.get(slot)?.key;
        if self.live.get(&key) != Some(slot as u32) {
            return None;
        }
        self.live.remove(&key);
        // Every slot is either open or free, so `free` (reserved to all slots) has room.
        self.free.push(slot as u32);
        Some(key)
    }

    fn remember_filled(&mut self, key: OrderKey) {
        let Some(&(oldest, generation)) = self.filled_ring.get(self.filled_head) else {
            return; // max_orders == 0
        };
        if generation != NO_GENERATION && self.filled.get(&oldest) == Some(generation) {
            self.filled.remove(&oldest);
        }
        self.filled_generation += 1;
        let generation = self.filled_generation;
        if let Some(entry) = self.filled_ring.get_mut(self.filled_head) {
            *entry = (key, generation);
        }
        self.filled_head = (self.filled_head + 1) % self.filled_ring.len();
        // Every `filled` entry owns a distinct ring entry and the overwritten one was evicted
        // above, so `filled` holds fewer than `max_orders` keys here: the insert has room.
        let _ = self.filled.insert(key, generation);
    }

    /// A key that becomes open again is no longer "already filled".
    fn forget_filled(&mut self, key: OrderKey) {
        self.filled.remove(&key);
    }

    #[cold]
    #[inline(never)]
    fn reject_cancel(&self, key: OrderKey, out: &mut impl FnMut(VenueEvent)) {
        out(VenueEvent::CancelRejected {
            key,
            reason: self.unknown_reason(key),
        });
    }

    /// `reason: None` means the order is not open: unknown or already filled.
    #[cold]
    #[inline(never)]
    fn reject_replace(
        &self,
        key: OrderKey,
        new_key: OrderKey,
        reason: Option<&'static str>,
        out: &mut impl FnMut(VenueEvent),
    ) {
        out(VenueEvent::ReplaceRejected {
            key,
            new_key,
            reason: reason.unwrap_or_else(|| self.unknown_reason(key)),
        });
    }

    #[cold]
    fn unknown_reason(&self, key: OrderKey) -> &'static str {
        if self.filled.get(&key).is_some() {
            reason::ALREADY_FILLED
        } else {
            reason::UNKNOWN_ORDER
        }
    }
}

#[cold]
#[inline(never)]
fn reject(out: &mut impl FnMut(VenueEvent), key: OrderKey, reason: &'static str) {
    out(VenueEvent::Rejected { key, reason });
}

/// Time in force of orders whose unfilled remainder rests in the book.
fn rests(tif: TimeInForce) -> bool {
    matches!(tif, TimeInForce::Day | TimeInForce::GoodTillCancel)
}

/// Marks an unused `filled_ring` entry; real generations start at 1.
const NO_GENERATION: u64 = 0;

/// One order as the venue sees it.
#[derive(Clone, Copy, Debug)]
struct SimOrder {
    key: OrderKey,
    symbol: u32,
    side: Side,
    ord_type: OrdType,
    tif: TimeInForce,
    /// Total quantity; `filled ≤ qty` always.
    qty: Qty,
    filled: Qty,
    /// `Some` exactly for Limit orders.
    price: Option<Price>,
}

impl SimOrder {
    const EMPTY: SimOrder = SimOrder {
        key: OrderKey(0),
        symbol: 0,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Day,
        qty: Qty::ZERO,
        filled: Qty::ZERO,
        price: None,
    };

    fn leaves(&self) -> Qty {
        Qty(self.qty.0 - self.filled.0)
    }
}

/// Keys [`FixedMap`] can hold: a 64-bit hash that need not be well mixed.
trait MapKey: Copy + Eq {
    fn hash64(&self) -> u64;
}

impl MapKey for OrderKey {
    fn hash64(&self) -> u64 {
        u64::from(self.0)
    }
}

impl MapKey for Symbol {
    /// FNV-1a over the symbol's bytes.
    fn hash64(&self) -> u64 {
        self.as_bytes().iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    }
}

/// The map is at capacity: nothing was inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct MapFull;

/// A fixed-capacity hash map: open addressing, linear probing, backward-shift deletion.
///
/// Holds at most `capacity` entries in `2 × capacity` buckets (rounded up to a power of two),
/// so probe chains stay short and there is always an empty bucket to end a probe. It never
/// allocates after construction and, having no tombstones, never needs to rehash.
#[derive(Debug)]
struct FixedMap<K, V> {
    buckets: Vec<Option<(K, V)>>,
    /// `64 - log2(buckets.len())`: Fibonacci hashing keeps the top bits.
    shift: u32,
    len: usize,
    capacity: usize,
}

impl<K: MapKey, V: Copy + Eq> FixedMap<K, V> {
    fn with_capacity(capacity: usize) -> Self {
        let buckets = capacity
            .saturating_mul(2)
            .max(2)
            .checked_next_power_of_two()
            .unwrap_or(1 << (usize::BITS - 1));
        FixedMap {
            buckets: vec![None; buckets],
            shift: 64 - buckets.trailing_zeros(),
            len: 0,
            capacity: capacity.min(buckets - 1),
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn home(&self, key: &K) -> usize {
        // The result is below `buckets.len()`, which is a usize.
        (key.hash64().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    fn find(&self, key: &K) -> Option<usize> {
        let mask = self.mask();
        let mut i = self.home(key);
        // Bounded even if the always-an-empty-bucket invariant were broken.
        for _ in 0..self.buckets.len() {
            match self.buckets.get(i)? {
                Some((k, _)) if k == key => return Some(i),
                Some(_) => i = (i + 1) & mask,
                None => return None,
            }
        }
        None
    }

    fn get(&self, key: &K) -> Option<V> {
        let i = self.find(key)?;
        self.buckets.get(i).copied().flatten().map(|(_, v)| v)
    }

    /// Inserts or overwrites.
    fn insert(&mut self, key: K, value: V) -> Result<(), MapFull> {
        if let Some(i) = self.find(&key) {
            if let Some(b) = self.buckets.get_mut(i) {
                *b = Some((key, value));
            }
            return Ok(());
        }
        if self.len >= self.capacity {
            return Err(MapFull);
        }
        let mask = self.mask();
        let mut i = self.home(&key);
        for _ in 0..self.buckets.len() {
            match self.buckets.get_mut(i) {
                Some(b @ None) => {
                    *b = Some((key, value));
                    self.len += 1;
                    return Ok(());
                }
                Some(Some(_)) => i = (i + 1) & mask,
                None => break,
            }
        }
        Err(MapFull)
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let mut hole = self.find(key)?;
        let (_, value) = self.buckets.get_mut(hole)?.take()?;
        self.len -= 1;
        // Backward shift: pull later members of the probe run into the hole when their home
        // bucket lies cyclically at or before it, so no lookup ever crosses an empty bucket.
        let mask = self.mask();
        let mut j = hole;
        for _ in 0..self.buckets.len() {
            j = (j + 1) & mask;
            let Some(Some((k, _))) = self.buckets.get(j) else {
                break;
            };
            let home = self.home(k);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                let moved = self.buckets.get_mut(j).and_then(Option::take);
                if let Some(b) = self.buckets.get_mut(hole) {
                    *b = moved;
                }
                hole = j;
            }
        }
        Some(value)
    }
}

#[cfg(test)]
// A failed unwrap is a failed test.
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::model::{OrdType::*, Side::*, TimeInForce::*};
    use VenueEvent::*;

    const T: Nanos = Nanos(0);

    fn sym(s: &str) -> Symbol {
        Symbol::new(s.as_bytes()).unwrap()
    }

    fn cfg(behaviour: SimBehaviour) -> SimConfig {
        SimConfig {
            behaviour,
            max_orders: 16,
            max_symbols: 4,
            max_orders_per_symbol: 8,
            default_fill_price: Price(777),
        }
    }

    fn venue(behaviour: SimBehaviour) -> SimVenue {
        SimVenue::new(cfg(behaviour))
    }

    fn limit(key: u32, side: Side, qty: i64, price: i64) -> VenueOrder {
        VenueOrder {
            key: OrderKey(key),
            symbol: sym("ACME"),
            side,
            ord_type: Limit,
            tif: Day,
            qty: Qty(qty),
            price: Some(Price(price)),
        }
    }

    fn market(key: u32, side: Side, qty: i64) -> VenueOrder {
        VenueOrder {
            ord_type: Market,
            price: None,
            ..limit(key, side, qty, 0)
        }
    }

    fn with_tif(o: VenueOrder, tif: TimeInForce) -> VenueOrder {
        VenueOrder { tif, ..o }
    }

    fn send(v: &mut SimVenue, o: VenueOrder) -> Vec<VenueEvent> {
        let mut ev = Vec::new();
        v.new_order(&o, T, &mut |e| ev.push(e));
        ev
    }

    fn cancel(v: &mut SimVenue, key: u32) -> Vec<VenueEvent> {
        let mut ev = Vec::new();
        v.cancel(OrderKey(key), T, &mut |e| ev.push(e));
        ev
    }

    fn replace(v: &mut SimVenue, key: u32, new_key: u32, qty: i64, px: i64) -> Vec<VenueEvent> {
        let mut ev = Vec::new();
        v.replace(
            OrderKey(key),
            OrderKey(new_key),
            Qty(qty),
            Some(Price(px)),
            T,
            &mut |e| ev.push(e),
        );
        ev
    }

    /// (key, qty, price, leaves) of each fill, ignoring exec ids.
    fn fills(ev: &[VenueEvent]) -> Vec<(u32, i64, i64, i64)> {
        ev.iter()
            .filter_map(|e| match *e {
                Fill {
                    key,
                    qty,
                    price,
                    leaves,
                    ..
                } => Some((key.0, qty.0, price.0, leaves.0)),
                _ => None,
            })
            .collect()
    }

    fn accepted(ev: &[VenueEvent]) -> bool {
        matches!(ev.first(), Some(Accepted { .. }))
    }

    fn rejected(key: u32, reason: &'static str) -> Vec<VenueEvent> {
        vec![Rejected {
            key: OrderKey(key),
            reason,
        }]
    }

    fn canceled(key: u32, qty: i64) -> VenueEvent {
        Canceled {
            key: OrderKey(key),
            canceled_qty: Qty(qty),
        }
    }

    // ---- behaviours -----------------------------------------------------------------------

    #[test]
    fn ack_only_accepts_and_rests_until_canceled() {
        let mut v = venue(SimBehaviour::AckOnly);
        let ev = send(&mut v, limit(1, Buy, 10, 100));
        assert_eq!(
            ev,
            vec![Accepted {
                key: OrderKey(1),
                venue_order_id: crate::model::VenueOrderId::from_u64(1)
            }]
        );
        // A crossing order does not trade: there is no book in this mode.
        assert_eq!(send(&mut v, limit(2, Sell, 10, 90)).len(), 1);
        assert_eq!(v.open_orders(), 2);
        assert_eq!(cancel(&mut v, 1), vec![canceled(1, 10)]);
        assert_eq!(v.open_orders(), 1);
        assert_eq!(v.last_price(&sym("ACME")), None);
    }

    #[test]
    fn ack_only_replace_rekeys_and_changes_qty_and_price() {
        let mut v = venue(SimBehaviour::AckOnly);
        send(&mut v, limit(1, Buy, 10, 100));
        let ev = replace(&mut v, 1, 2, 15, 101);
        assert_eq!(
            ev,
            vec![Replaced {
                key: OrderKey(1),
                new_key: OrderKey(2),
                qty: Qty(15),
                price: Some(Price(101)),
                leaves: Qty(15)
            }]
        );
        assert_eq!(
            cancel(&mut v, 1),
            vec![CancelRejected {
                key: OrderKey(1),
                reason: reason::UNKNOWN_ORDER
            }]
        );
        assert_eq!(cancel(&mut v, 2), vec![canceled(2, 15)]);
    }

    #[test]
    fn fill_immediately_fills_whole_qty_at_limit_price() {
        let mut v = venue(SimBehaviour::FillImmediately);
        let ev = send(&mut v, limit(1, Sell, 10, 100));
        assert!(accepted(&ev));
        assert_eq!(fills(&ev), vec![(1, 10, 100, 0)]);
        assert_eq!(ev.len(), 2);
        assert_eq!(v.open_orders(), 0);
        assert_eq!(v.last_price(&sym("ACME")), Some(Price(100)));
    }

    #[test]
    fn fill_immediately_market_uses_default_then_last_price() {
        let mut v = venue(SimBehaviour::FillImmediately);
        assert_eq!(
            fills(&send(&mut v, market(1, Buy, 5))),
            vec![(1, 5, 777, 0)]
        );
        send(&mut v, limit(2, Buy, 5, 120));
        assert_eq!(
            fills(&send(&mut v, market(3, Sell, 5))),
            vec![(3, 5, 120, 0)]
        );
    }

    #[test]
    fn partial_fills_split_evenly_and_last_takes_remainder() {
        let mut v = venue(SimBehaviour::PartialFills { slices: 3 });
        let ev = send(&mut v, limit(1, Buy, 10, 100));
        assert!(accepted(&ev));
        assert_eq!(
            fills(&ev),
            vec![(1, 3, 100, 7), (1, 3, 100, 4), (1, 4, 100, 0)]
        );
        assert_eq!(v.open_orders(), 0);
    }

    #[test]
    fn partial_fills_never_emit_empty_fills() {
        let mut v = venue(SimBehaviour::PartialFills { slices: 5 });
        assert_eq!(
            fills(&send(&mut v, limit(1, Buy, 2, 100))),
            vec![(1, 1, 100, 1), (1, 1, 100, 0)]
        );
        let mut v = venue(SimBehaviour::PartialFills { slices: 0 });
        assert_eq!(
            fills(&send(&mut v, limit(1, Buy, 2, 100))),
            vec![(1, 2, 100, 0)]
        );
    }

    #[test]
    fn exec_ids_and_venue_order_ids_increase() {
        let mut v = venue(SimBehaviour::PartialFills { slices: 2 });
        let mut ev = send(&mut v, limit(1, Buy, 4, 100));
        ev.extend(send(&mut v, limit(2, Buy, 4, 100)));
        let ids: Vec<&str> = ev
            .iter()
            .filter_map(|e| match e {
                Accepted { venue_order_id, .. } => Some(venue_order_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec!["1", "2"]);
        let execs: Vec<u64> = ev
            .iter()
            .filter_map(|e| match e {
                Fill { exec_id, .. } => Some(*exec_id),
                _ => None,
            })
            .collect();
        assert_eq!(execs, vec![1, 2, 3, 4]);
    }

    // ---- admission ------------------------------------------------------------------------

    #[test]
    fn rejects_non_positive_qty_limit_without_price_and_duplicate_key() {
        let mut v = venue(SimBehaviour::Book);
        assert_eq!(
            send(&mut v, limit(1, Buy, 0, 100)),
            rejected(1, reason::QTY_NOT_POSITIVE)
        );
        assert_eq!(
            send(&mut v, limit(1, Buy, -5, 100)),
            rejected(1, reason::QTY_NOT_POSITIVE)
        );
        let no_price = VenueOrder {
            price: None,
            ..limit(1, Buy, 5, 0)
        };
        assert_eq!(
            send(&mut v, no_price),
            rejected(1, reason::LIMIT_WITHOUT_PRICE)
        );
        assert!(accepted(&send(&mut v, limit(1, Buy, 5, 100))));
        assert_eq!(
            send(&mut v, limit(1, Buy, 5, 100)),
            rejected(1, reason::DUPLICATE_KEY)
        );
        assert_eq!(v.open_orders(), 1);
    }

    #[test]
    fn order_table_exhaustion_rejects_and_cancel_frees_capacity() {
        let mut v = SimVenue::new(SimConfig {
            max_orders: 3,
            ..cfg(SimBehaviour::AckOnly)
        });
        for k in 0..3 {
            assert!(accepted(&send(&mut v, limit(k, Buy, 1, 100))));
        }
        assert_eq!(
            send(&mut v, limit(9, Buy, 1, 100)),
            rejected(9, reason::ORDER_TABLE_FULL)
        );
        cancel(&mut v, 1);
        assert!(accepted(&send(&mut v, limit(9, Buy, 1, 100))));
        assert_eq!(v.open_orders(), 3);
    }

    #[test]
    fn symbol_table_exhaustion_rejects_new_symbols_only() {
        let mut v = SimVenue::new(SimConfig {
            max_symbols: 1,
            ..cfg(SimBehaviour::AckOnly)
        });
        assert!(accepted(&send(&mut v, limit(1, Buy, 1, 100))));
        let other = VenueOrder {
            symbol: sym("OTHER"),
            ..limit(2, Buy, 1, 100)
        };
        assert_eq!(send(&mut v, other), rejected(2, reason::SYMBOL_TABLE_FULL));
        assert!(accepted(&send(&mut v, limit(3, Buy, 1, 100))));
    }

    #[test]
    fn full_book_rejects_resting_orders_but_not_those_that_trade_in_full() {
        let mut v = SimVenue::new(SimConfig {
            max_orders_per_symbol: 2,
            ..cfg(SimBehaviour::Book)
        });
        send(&mut v, limit(1, Buy, 5, 100));
        send(&mut v, limit(2, Sell, 5, 101));
        assert_eq!(
            send(&mut v, limit(3, Buy, 5, 99)),
            rejected(3, reason::BOOK_FULL)
        );
        // IOC never rests, and a Day order that trades in full does not need room.
        assert!(accepted(&send(
            &mut v,
            with_tif(limit(4, Buy, 1, 99), ImmediateOrCancel)
        )));
        assert_eq!(fills(&send(&mut v, limit(5, Sell, 2, 100))).len(), 2);
        cancel(&mut v, 2);
        assert!(accepted(&send(&mut v, limit(3, Buy, 5, 99))));
    }

    #[test]
    fn zero_capacity_venue_rejects_without_panicking() {
        let mut v = SimVenue::new(SimConfig {
            max_orders: 0,
            max_symbols: 0,
            max_orders_per_symbol: 0,
            ..cfg(SimBehaviour::Book)
        });
        assert_eq!(
            send(&mut v, limit(1, Buy, 1, 1)),
            rejected(1, reason::ORDER_TABLE_FULL)
        );
        assert_eq!(cancel(&mut v, 1).len(), 1);
        assert_eq!(replace(&mut v, 1, 2, 1, 1).len(), 1);
        assert_eq!(v.last_price(&sym("ACME")), None);
    }

    // ---- book matching --------------------------------------------------------------------

    #[test]
    fn same_price_bids_fill_in_arrival_order() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 5, 100));
        send(&mut v, limit(2, Buy, 5, 100));
        let ev = send(&mut v, limit(3, Sell, 7, 100));
        assert_eq!(
            fills(&ev),
            vec![
                (3, 5, 100, 2),
                (1, 5, 100, 0),
                (3, 2, 100, 0),
                (2, 2, 100, 3)
            ]
        );
    }

    #[test]
    fn better_price_fills_first_at_resting_price() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Sell, 5, 102));
        send(&mut v, limit(2, Sell, 5, 101));
        let ev = send(&mut v, limit(3, Buy, 6, 105));
        assert_eq!(
            fills(&ev),
            vec![
                (3, 5, 101, 1),
                (2, 5, 101, 0),
                (3, 1, 102, 0),
                (1, 1, 102, 4)
            ]
        );
        assert_eq!(v.last_price(&sym("ACME")), Some(Price(102)));
    }

    #[test]
    fn both_sides_get_fills_with_distinct_exec_ids() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Sell, 5, 100));
        let ev = send(&mut v, limit(2, Buy, 5, 100));
        let ids: Vec<(u32, u64)> = ev
            .iter()
            .filter_map(|e| match e {
                Fill { key, exec_id, .. } => Some((key.0, *exec_id)),
                _ => None,
            })
            .collect();
        assert_eq!(ids, vec![(2, 1), (1, 2)]);
        assert_eq!(v.open_orders(), 0);
    }

    #[test]
    fn partial_match_leaves_remainder_resting() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Sell, 4, 100));
        let ev = send(&mut v, limit(2, Buy, 10, 100));
        assert_eq!(fills(&ev), vec![(2, 4, 100, 6), (1, 4, 100, 0)]);
        assert_eq!(v.open_orders(), 1);
        // The remainder now rests as the best bid and trades with the next seller.
        assert_eq!(
            fills(&send(&mut v, limit(3, Sell, 6, 99))),
            vec![(3, 6, 100, 0), (2, 6, 100, 0)]
        );
        assert_eq!(v.open_orders(), 0);
    }

    #[test]
    fn non_crossing_orders_rest_and_set_mid() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 4, 100));
        assert_eq!(v.last_price(&sym("ACME")), None);
        assert_eq!(send(&mut v, limit(2, Sell, 4, 104)).len(), 1);
        assert_eq!(v.last_price(&sym("ACME")), Some(Price(102)));
        assert_eq!(v.last_price(&sym("NONE")), None);
    }

    #[test]
    fn ioc_remainder_is_canceled() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Sell, 4, 100));
        let ev = send(&mut v, with_tif(limit(2, Buy, 10, 100), ImmediateOrCancel));
        assert_eq!(fills(&ev), vec![(2, 4, 100, 6), (1, 4, 100, 0)]);
        assert_eq!(ev.last(), Some(&canceled(2, 6)));
        assert_eq!(v.open_orders(), 0);
    }

    #[test]
    fn fok_without_enough_liquidity_is_canceled_untouched() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Sell, 4, 100));
        send(&mut v, limit(2, Sell, 4, 102));
        let ev = send(&mut v, with_tif(limit(3, Buy, 6, 101), FillOrKill));
        assert_eq!(ev.len(), 2);
        assert_eq!(ev.get(1), Some(&canceled(3, 6)));
        assert_eq!(v.open_orders(), 2);
        let ev = send(&mut v, with_tif(limit(4, Buy, 6, 102), FillOrKill));
        assert_eq!(
            fills(&ev),
            vec![
                (4, 4, 100, 2),
                (1, 4, 100, 0),
                (4, 2, 102, 0),
                (2, 2, 102, 2)
            ]
        );
    }

    #[test]
    fn market_order_on_empty_side_is_canceled_after_accept() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 4, 100));
        let ev = send(&mut v, market(2, Buy, 3));
        assert_eq!(ev.len(), 2);
        assert!(accepted(&ev));
        assert_eq!(ev.get(1), Some(&canceled(2, 3)));
    }

    #[test]
    fn market_order_sweeps_levels_and_cancels_remainder() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 2, 100));
        send(&mut v, limit(2, Buy, 2, 90));
        let ev = send(&mut v, market(3, Sell, 5));
        assert_eq!(
            fills(&ev),
            vec![(3, 2, 100, 3), (1, 2, 100, 0), (3, 2, 90, 1), (2, 2, 90, 0)]
        );
        assert_eq!(ev.last(), Some(&canceled(3, 1)));
    }

    #[test]
    fn sell_short_trades_like_sell() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, SellShort, 3, 100));
        assert_eq!(
            fills(&send(&mut v, limit(2, Buy, 3, 100))),
            vec![(2, 3, 100, 0), (1, 3, 100, 0)]
        );
        // Two sells never trade with each other.
        send(&mut v, limit(3, SellShort, 3, 100));
        assert_eq!(send(&mut v, limit(4, Sell, 3, 90)).len(), 1);
    }

    // ---- cancel / replace -----------------------------------------------------------------

    #[test]
    fn cancel_of_filled_order_is_too_late() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Sell, 4, 100));
        send(&mut v, limit(2, Buy, 4, 100));
        for k in [1, 2] {
            assert_eq!(
                cancel(&mut v, k),
                vec![CancelRejected {
                    key: OrderKey(k),
                    reason: reason::ALREADY_FILLED
                }]
            );
        }
        assert_eq!(
            replace(&mut v, 1, 5, 9, 100),
            vec![ReplaceRejected {
                key: OrderKey(1),
                new_key: OrderKey(5),
                reason: reason::ALREADY_FILLED
            }]
        );
    }

    #[test]
    fn cancel_and_replace_of_unknown_key_are_rejected() {
        let mut v = venue(SimBehaviour::Book);
        assert_eq!(
            cancel(&mut v, 7),
            vec![CancelRejected {
                key: OrderKey(7),
                reason: reason::UNKNOWN_ORDER
            }]
        );
        assert_eq!(
            replace(&mut v, 7, 8, 1, 1),
            vec![ReplaceRejected {
                key: OrderKey(7),
                new_key: OrderKey(8),
                reason: reason::UNKNOWN_ORDER
            }]
        );
        // A cancelled order is gone, not filled.
        send(&mut v, limit(1, Buy, 4, 100));
        cancel(&mut v, 1);
        assert_eq!(
            cancel(&mut v, 1),
            vec![CancelRejected {
                key: OrderKey(1),
                reason: reason::UNKNOWN_ORDER
            }]
        );
    }

    #[test]
    fn filled_keys_are_forgotten_after_max_orders_more_fills_or_reuse() {
        let mut v = SimVenue::new(SimConfig {
            max_orders: 2,
            ..cfg(SimBehaviour::FillImmediately)
        });
        send(&mut v, limit(1, Buy, 1, 100));
        send(&mut v, limit(2, Buy, 1, 100));
        assert_eq!(
            cancel(&mut v, 1).first(),
            Some(&CancelRejected {
                key: OrderKey(1),
                reason: reason::ALREADY_FILLED
            })
        );
        send(&mut v, limit(3, Buy, 1, 100));
        assert_eq!(
            cancel(&mut v, 1).first(),
            Some(&CancelRejected {
                key: OrderKey(1),
                reason: reason::UNKNOWN_ORDER
            })
        );
        assert_eq!(
            cancel(&mut v, 2).first(),
            Some(&CancelRejected {
                key: OrderKey(2),
                reason: reason::ALREADY_FILLED
            })
        );
        // Reusing a filled key makes it an open order again.
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 1, 100));
        send(&mut v, limit(2, Sell, 1, 100));
        send(&mut v, limit(1, Buy, 1, 99));
        assert_eq!(cancel(&mut v, 1), vec![canceled(1, 1)]);
    }

    #[test]
    fn replace_reducing_qty_keeps_priority() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 5, 100));
        send(&mut v, limit(2, Buy, 5, 100));
        let ev = replace(&mut v, 1, 11, 3, 100);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            fills(&send(&mut v, limit(3, Sell, 3, 100))),
            vec![(3, 3, 100, 0), (11, 3, 100, 0)]
        );
    }

    #[test]
    fn replace_with_same_qty_and_price_keeps_priority() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 5, 100));
        send(&mut v, limit(2, Buy, 5, 100));
        replace(&mut v, 1, 11, 5, 100);
        assert_eq!(
            fills(&send(&mut v, limit(3, Sell, 1, 100))),
            vec![(3, 1, 100, 0), (11, 1, 100, 4)]
        );
    }

    #[test]
    fn replace_increasing_qty_loses_priority() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 5, 100));
        send(&mut v, limit(2, Buy, 5, 100));
        replace(&mut v, 1, 11, 6, 100);
        assert_eq!(
            fills(&send(&mut v, limit(3, Sell, 5, 100))),
            vec![(3, 5, 100, 0), (2, 5, 100, 0)]
        );
    }

    #[test]
    fn replace_changing_price_loses_priority() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 5, 100));
        send(&mut v, limit(2, Buy, 5, 100));
        replace(&mut v, 1, 11, 5, 99);
        replace(&mut v, 11, 12, 5, 100);
        assert_eq!(
            fills(&send(&mut v, limit(3, Sell, 5, 100))),
            vec![(3, 5, 100, 0), (2, 5, 100, 0)]
        );
    }

    #[test]
    fn replace_to_crossing_price_trades_as_aggressor() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Sell, 3, 101));
        send(&mut v, limit(2, Buy, 5, 100));
        let ev = replace(&mut v, 2, 12, 5, 101);
        assert!(matches!(ev.first(), Some(Replaced { leaves: Qty(5), .. })));
        assert_eq!(fills(&ev), vec![(12, 3, 101, 2), (1, 3, 101, 0)]);
        assert_eq!(v.open_orders(), 1);
        assert_eq!(cancel(&mut v, 12), vec![canceled(12, 2)]);
    }

    #[test]
    fn replace_qty_not_above_filled_is_rejected() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 10, 100));
        send(&mut v, limit(2, Sell, 4, 100));
        for qty in [4, 3, 0] {
            assert_eq!(
                replace(&mut v, 1, 11, qty, 100),
                vec![ReplaceRejected {
                    key: OrderKey(1),
                    new_key: OrderKey(11),
                    reason: reason::QTY_NOT_ABOVE_FILLED
                }]
            );
        }
        let ev = replace(&mut v, 1, 11, 5, 100);
        assert!(matches!(
            ev.first(),
            Some(Replaced {
                qty: Qty(5),
                leaves: Qty(1),
                ..
            })
        ));
        assert_eq!(cancel(&mut v, 11), vec![canceled(11, 1)]);
    }

    #[test]
    fn replace_refuses_missing_price_and_taken_new_key() {
        let mut v = venue(SimBehaviour::Book);
        send(&mut v, limit(1, Buy, 10, 100));
        send(&mut v, limit(2, Buy, 10, 100));
        let mut ev = Vec::new();
        v.replace(OrderKey(1), OrderKey(11), Qty(5), None, T, &mut |e| {
            ev.push(e)
        });
        assert_eq!(
            ev,
            vec![ReplaceRejected {
                key: OrderKey(1),
                new_key: OrderKey(11),
                reason: reason::LIMIT_WITHOUT_PRICE
            }]
        );
        assert_eq!(
            replace(&mut v, 1, 2, 5, 100),
            vec![ReplaceRejected {
                key: OrderKey(1),
                new_key: OrderKey(2),
                reason: reason::DUPLICATE_KEY
            }]
        );
        assert_eq!(v.open_orders(), 2);
        assert_eq!(cancel(&mut v, 1), vec![canceled(1, 10)]);
    }

    // ---- fixed map ------------------------------------------------------------------------

    #[test]
    fn fixed_map_survives_churn_with_colliding_keys() {
        let mut m: FixedMap<OrderKey, u32> = FixedMap::with_capacity(64);
        let mut model = std::collections::HashMap::new();
        let mut x: u32 = 1;
        for step in 0..20_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            // Multiples of 128 share low bits and stress probe runs.
            let k = OrderKey((x % 200) * 128);
            if x % 3 == 0 {
                assert_eq!(m.remove(&k), model.remove(&k));
            } else {
                let r = m.insert(k, step);
                if model.len() < 64 || model.contains_key(&k) {
                    assert_eq!(r, Ok(()));
                    model.insert(k, step);
                } else {
                    assert_eq!(r, Err(MapFull));
                }
            }
            assert_eq!(m.len(), model.len());
        }
        for k in 0..200 {
            let k = OrderKey(k * 128);
            assert_eq!(m.get(&k), model.get(&k).copied());
        }
    }

    #[test]
    fn fixed_map_of_zero_capacity_holds_nothing() {
        let mut m: FixedMap<Symbol, u32> = FixedMap::with_capacity(0);
        assert_eq!(m.insert(sym("A"), 1), Err(MapFull));
        assert_eq!(m.get(&sym("A")), None);
        assert_eq!(m.remove(&sym("A")), None);
    }

    // ---- properties -----------------------------------------------------------------------

    mod props {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        #[derive(Clone, Debug)]
        enum Op {
            New(VenueOrder),
            Cancel(u32),
            Replace(u32, u32, i64, i64),
        }

        fn order() -> impl Strategy<Value = VenueOrder> {
            (
                0u32..48,
                prop::sample::select(vec!["AAA", "BBB", "CCC"]),
                prop::sample::select(vec![Buy, Sell, SellShort]),
                prop::sample::select(vec![Limit, Limit, Limit, Market]),
                prop::sample::select(vec![Day, GoodTillCancel, ImmediateOrCancel, FillOrKill]),
                -1i64..30,
                95i64..106,
                any::<bool>(),
            )
                .prop_map(|(k, s, side, ord_type, tif, qty, px, priced)| VenueOrder {
                    key: OrderKey(k),
                    symbol: sym(s),
                    side,
                    ord_type,
                    tif,
                    qty: Qty(qty),
                    // Occasionally a limit without price, or a market with one.
                    price: (priced || ord_type == Limit && px != 95).then_some(Price(px)),
                })
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                6 => order().prop_map(Op::New),
                2 => (0u32..48).prop_map(Op::Cancel),
                2 => (0u32..48, 0u32..48, -1i64..30, 95i64..106)
                    .prop_map(|(k, n, q, p)| Op::Replace(k, n, q, p)),
            ]
        }

        fn behaviour() -> impl Strategy<Value = SimBehaviour> {
            prop_oneof![
                Just(SimBehaviour::AckOnly),
                Just(SimBehaviour::FillImmediately),
                (0u32..5).prop_map(|slices| SimBehaviour::PartialFills { slices }),
                Just(SimBehaviour::Book),
                Just(SimBehaviour::Book),
            ]
        }

        /// What the events say about one open order: total qty, filled, buy side.
        #[derive(Debug)]
        struct Seen {
            qty: i64,
            filled: i64,
            buy: bool,
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]

            #[test]
            fn random_streams_keep_the_venue_consistent(
                behaviour in behaviour(),
                max_orders in 0usize..24,
                per_symbol in 0usize..8,
                ops in prop::collection::vec(op(), 1..200),
            ) {
                let mut v = SimVenue::new(SimConfig {
                    behaviour,
                    max_orders,
                    max_symbols: 2,
                    max_orders_per_symbol: per_symbol,
                    default_fill_price: Price(100),
                });
                let mut seen: HashMap<u32, Seen> = HashMap::new();
                let (mut bought, mut sold) = (0i64, 0i64);
                let mut last_exec = 0u64;
                for op in ops {
                    let mut ev = Vec::new();
                    let mut sink = |e| ev.push(e);
                    let side_of_new = match &op {
                        Op::New(o) => {
                            v.new_order(o, T, &mut sink);
                            Some((o.qty.0, o.side.is_buy()))
                        }
                        Op::Cancel(k) => {
                            v.cancel(OrderKey(*k), T, &mut sink);
                            None
                        }
                        Op::Replace(k, n, q, p) => {
                            let (k, n) = (OrderKey(*k), OrderKey(*n));
                            v.replace(k, n, Qty(*q), Some(Price(*p)), T, &mut sink);
                            None
                        }
                    };
                    for e in ev {
                        match e {
                            Accepted { key, .. } => {
                                let (qty, buy) = side_of_new.unwrap();
                                prop_assert!(qty > 0);
                                let fresh = Seen { qty, filled: 0, buy };
                                prop_assert!(seen.insert(key.0, fresh).is_none(),
                                    "accepted a key that is still open");
                            }
                            Fill { key, qty, exec_id, leaves, .. } => {
                                prop_assert!(exec_id > last_exec);
                                last_exec = exec_id;
                                prop_assert!(qty.0 > 0);
                                let s = seen.get_mut(&key.0).unwrap();
                                s.filled += qty.0;
                                prop_assert!(s.filled <= s.qty, "overfilled {s:?}");
                                prop_assert_eq!(leaves.0, s.qty - s.filled);
                                if s.buy { bought += qty.0 } else { sold += qty.0 }
                                if leaves.0 == 0 {
                                    seen.remove(&key.0);
                                }
                            }
                            Canceled { key, canceled_qty } => {
                                let s = seen.remove(&key.0).unwrap();
                                prop_assert_eq!(canceled_qty.0, s.qty - s.filled);
                            }
                            Replaced { key, new_key, qty, leaves, .. } => {
                                let mut s = seen.remove(&key.0).unwrap();
                                prop_assert!(qty.0 > s.filled);
                                s.qty = qty.0;
                                prop_assert_eq!(leaves.0, s.qty - s.filled);
                                prop_assert!(seen.insert(new_key.0, s).is_none());
                            }
                            Rejected { .. } | CancelRejected { .. } | ReplaceRejected { .. } => {}
                        }
                    }
                    prop_assert_eq!(v.open_orders(), seen.len());
                    prop_assert!(v.open_orders() <= max_orders);
                    if behaviour == SimBehaviour::Book {
                        prop_assert_eq!(bought, sold);
                        let resting: usize = v.books.iter().map(Book::len).sum();
                        prop_assert_eq!(resting, v.open_orders());
                        for b in &v.books {
                            prop_assert!(b.len() <= per_symbol);
                            if let (Some(bid), Some(ask)) =
                                (b.best_price(BookSide::Bid), b.best_price(BookSide::Ask))
                            {
                                prop_assert!(bid < ask, "crossed book {bid:?} >= {ask:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}
