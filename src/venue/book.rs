//! HOT — one symbol's price-time priority limit order book, in storage sized at construction.
//!
//! Owns the resting queue of each side: price, open quantity and the caller's slot index per
//! resting order. It knows nothing of keys, events or behaviours; `sim` drives it. Must never
//! allocate after [`Book::with_capacity`] (a full book answers [`BookFull`], it never grows),
//! never read the clock and never panic on any sequence of calls.
//!
//! # Layout
//!
//! Each side is a `Vec<Resting>` reserved to the book's capacity and kept sorted from the lowest
//! priority (index 0) to the best (last index): worse price first, and within one price the
//! newest first. The best order is therefore `last()`, so a fully filled order leaves with
//! `pop()` in O(1); joining a queue or leaving from the middle shifts entries (O(depth), no
//! allocation), which is fine for a simulator.

use crate::model::{Price, Qty, Side};

/// Which half of the book an order rests on or takes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BookSide {
    Bid,
    Ask,
}

impl BookSide {
    /// The side an order of `side` rests on; SellShort rests with the sells.
    pub fn of(side: Side) -> BookSide {
        match side {
            Side::Buy => BookSide::Bid,
            Side::Sell | Side::SellShort => BookSide::Ask,
        }
    }

    pub fn opposite(self) -> BookSide {
        match self {
            BookSide::Bid => BookSide::Ask,
            BookSide::Ask => BookSide::Bid,
        }
    }

    /// True when `a` is a strictly worse price than `b` for a resting order on this side.
    fn worse(self, a: Price, b: Price) -> bool {
        match self {
            BookSide::Bid => a < b,
            BookSide::Ask => a > b,
        }
    }
}

/// One resting order: its price, its open (leaves) quantity, and the owner's slot index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resting {
    pub price: Price,
    pub leaves: Qty,
    pub slot: u32,
}

/// One execution between an aggressor and the best resting order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Slot of the resting (passive) order.
    pub passive_slot: u32,
    pub qty: Qty,
    /// Always the resting order's price.
    pub price: Price,
    /// Open quantity of the resting order after this match; zero means it left the book.
    pub passive_leaves: Qty,
}

/// The book is at capacity: the order was not inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BookFull;

/// A price-time priority book for one symbol, holding at most `capacity` resting orders in all.
#[derive(Debug)]
pub struct Book {
    bids: Vec<Resting>,
    asks: Vec<Resting>,
    capacity: usize,
}

impl Book {
    /// Reserves room for `capacity` resting orders on each side, so either side can hold them
    /// all; the total across both sides is also capped at `capacity`.
    pub fn with_capacity(capacity: usize) -> Book {
        Book {
            bids: Vec::with_capacity(capacity),
            asks: Vec::with_capacity(capacity),
            capacity,
        }
    }

    /// Resting orders on both sides.
    pub fn len(&self) -> usize {
        self.bids.len() + self.asks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }

    /// No further order can rest.
    pub fn is_full(&self) -> bool {
        self.len() >= self.capacity
    }

    /// The order with the best priority on `side`.
    pub fn best(&self, side: BookSide) -> Option<&Resting> {
        self.side(side).last()
    }

    pub fn best_price(&self, side: BookSide) -> Option<Price> {
        self.best(side).map(|r| r.price)
    }

    /// Midpoint of the best bid and best ask, rounded toward negative infinity; `None` unless
    /// both sides have an order.
    pub fn mid(&self) -> Option<Price> {
        let bid = self.best_price(BookSide::Bid)?;
        let ask = self.best_price(BookSide::Ask)?;
        // i128 so that the sum of two extreme i64 prices cannot overflow; the mean of two i64
        // values always fits back into i64.
        let mid = (i128::from(bid.0) + i128::from(ask.0)).div_euclid(2);
        i64::try_from(mid).ok().map(Price)
    }

    /// Resting orders of `side`, best priority first.
    pub fn iter(&self, side: BookSide) -> impl Iterator<Item = &Resting> {
        self.side(side).iter().rev()
    }

    /// Joins the back of the queue at `r.price` on `side` (lowest time priority at that price).
    pub fn insert(&mut self, side: BookSide, r: Resting) -> Result<(), BookFull> {
        if self.is_full() {
            return Err(BookFull);
        }
        let queue = self.side_mut(side);
        // Second guard so that `Vec::insert` can never reallocate, whatever `capacity` says.
        if queue.len() >= queue.capacity() {
            return Err(BookFull);
        }
        // Entries strictly worse than the new price come first; the new order goes in front of
        // the older ones at its own price, i.e. behind them in priority.
        let at = queue.partition_point(|e| side.worse(e.price, r.price));
        // `partition_point` returns at most `len`, which `Vec::insert` accepts.
        queue.insert(at, r);
        Ok(())
    }

    /// Takes the order `slot` resting at `price` off `side`; `None` when it is not there.
    pub fn remove(&mut self, side: BookSide, price: Price, slot: u32) -> Option<Resting> {
        let at = self.position(side, price, slot)?;
        // `position` returned an index below `len`, which `Vec::remove` accepts.
        Some(self.side_mut(side).remove(at))
    }

    /// Lowers the open quantity of the order `slot` at `price` in place, keeping its time
    /// priority. Returns false when the order is not there or `leaves` is not positive.
    pub fn reduce(&mut self, side: BookSide, price: Price, slot: u32, leaves: Qty) -> bool {
        if leaves.0 <= 0 {
            return false;
        }
        let Some(at) = self.position(side, price, slot) else {
            return false;
        };
        match self.side_mut(side).get_mut(at) {
            Some(e) => {
                e.leaves = leaves;
                true
            }
            None => false,
        }
    }

    /// How much of `want` an aggressor on `aggressor` could take right now at prices no worse
    /// than `limit` (`None`: any price). Used to decide fill-or-kill before touching the book.
    pub fn available(&self, aggressor: BookSide, limit: Option<Price>, want: Qty) -> Qty {
        let mut got = Qty::ZERO;
        for r in self.iter(aggressor.opposite()) {
            if got >= want || !crosses(aggressor, limit, r.price) {
                break;
            }
            got = Qty(got.0.saturating_add(r.leaves.0));
        }
        Qty(got.0.min(want.0))
    }

    /// Executes up to `want` of an aggressor on `aggressor` against the best opposite order, if
    /// its price is no worse than `limit` (`None`: any price). One call is one execution; call
    /// again while it returns `Some` and quantity remains.
    pub fn match_one(
        &mut self,
        aggressor: BookSide,
        limit: Option<Price>,
        want: Qty,
    ) -> Option<Match> {
        if want.0 <= 0 {
            return None;
        }
        let queue = self.side_mut(aggressor.opposite());
        let best = queue.last_mut()?;
        if !crosses(aggressor, limit, best.price) {
            return None;
        }
        let qty = Qty(want.0.min(best.leaves.0));
        best.leaves = Qty(best.leaves.0 - qty.0);
        let m = Match {
            passive_slot: best.slot,
            qty,
            price: best.price,
            passive_leaves: best.leaves,
        };
        if best.leaves.0 <= 0 {
            queue.pop();
        }
        Some(m)
    }

    fn side(&self, side: BookSide) -> &Vec<Resting> {
        match side {
            BookSide::Bid => &self.bids,
            BookSide::Ask => &self.asks,
        }
    }

    fn side_mut(&mut self, side: BookSide) -> &mut Vec<Resting> {
        match side {
            BookSide::Bid => &mut self.bids,
            BookSide::Ask => &mut self.asks,
        }
    }

    /// Index of the order `slot` at `price`: binary search for the price level, then a scan
    /// within the level only.
    fn position(&self, side: BookSide, price: Price, slot: u32) -> Option<usize> {
        let queue = self.side(side);
        let start = queue.partition_point(|e| side.worse(e.price, price));
        let level = queue.get(start..)?;
        level
            .iter()
            .take_while(|e| e.price == price)
            .position(|e| e.slot == slot)
            .map(|i| start + i)
    }
}

/// True when an aggressor on `aggressor` with `limit` may trade against a resting `price`.
fn crosses(aggressor: BookSide, limit: Option<Price>, price: Price) -> bool {
    match (aggressor, limit) {
        (_, None) => true,
        (BookSide::Bid, Some(l)) => price <= l,
        (BookSide::Ask, Some(l)) => price >= l,
    }
}

#[cfg(test)]
// A failed unwrap is a failed test.
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn r(price: i64, leaves: i64, slot: u32) -> Resting {
        Resting {
            price: Price(price),
            leaves: Qty(leaves),
            slot,
        }
    }

    fn slots(b: &Book, side: BookSide) -> Vec<u32> {
        b.iter(side).map(|r| r.slot).collect()
    }

    #[test]
    fn bids_order_by_price_then_arrival() {
        let mut b = Book::with_capacity(8);
        b.insert(BookSide::Bid, r(100, 1, 1)).unwrap();
        b.insert(BookSide::Bid, r(101, 1, 2)).unwrap();
        b.insert(BookSide::Bid, r(100, 1, 3)).unwrap();
        b.insert(BookSide::Bid, r(99, 1, 4)).unwrap();
        assert_eq!(slots(&b, BookSide::Bid), vec![2, 1, 3, 4]);
        assert_eq!(b.best_price(BookSide::Bid), Some(Price(101)));
    }

    #[test]
    fn asks_order_by_price_then_arrival() {
        let mut b = Book::with_capacity(8);
        b.insert(BookSide::Ask, r(100, 1, 1)).unwrap();
        b.insert(BookSide::Ask, r(99, 1, 2)).unwrap();
        b.insert(BookSide::Ask, r(100, 1, 3)).unwrap();
        b.insert(BookSide::Ask, r(101, 1, 4)).unwrap();
        assert_eq!(slots(&b, BookSide::Ask), vec![2, 1, 3, 4]);
    }

    #[test]
    fn insert_refuses_beyond_capacity_across_both_sides() {
        let mut b = Book::with_capacity(2);
        b.insert(BookSide::Bid, r(1, 1, 1)).unwrap();
        b.insert(BookSide::Ask, r(5, 1, 2)).unwrap();
        assert_eq!(b.insert(BookSide::Bid, r(1, 1, 3)), Err(BookFull));
        assert!(b.remove(BookSide::Bid, Price(1), 1).is_some());
        assert_eq!(b.insert(BookSide::Bid, r(1, 1, 3)), Ok(()));
    }

    #[test]
    fn zero_capacity_book_refuses_everything() {
        let mut b = Book::with_capacity(0);
        assert_eq!(b.insert(BookSide::Bid, r(1, 1, 1)), Err(BookFull));
        assert!(b.match_one(BookSide::Bid, None, Qty(1)).is_none());
        assert_eq!(b.mid(), None);
    }

    #[test]
    fn remove_finds_order_within_its_level_only() {
        let mut b = Book::with_capacity(8);
        b.insert(BookSide::Bid, r(100, 1, 1)).unwrap();
        b.insert(BookSide::Bid, r(100, 1, 2)).unwrap();
        b.insert(BookSide::Bid, r(101, 1, 3)).unwrap();
        assert_eq!(b.remove(BookSide::Bid, Price(101), 1), None);
        assert_eq!(b.remove(BookSide::Ask, Price(100), 1), None);
        assert_eq!(b.remove(BookSide::Bid, Price(100), 1), Some(r(100, 1, 1)));
        assert_eq!(slots(&b, BookSide::Bid), vec![3, 2]);
    }

    #[test]
    fn reduce_keeps_place_in_queue() {
        let mut b = Book::with_capacity(8);
        b.insert(BookSide::Ask, r(100, 5, 1)).unwrap();
        b.insert(BookSide::Ask, r(100, 5, 2)).unwrap();
        assert!(b.reduce(BookSide::Ask, Price(100), 1, Qty(2)));
        assert!(!b.reduce(BookSide::Ask, Price(100), 1, Qty(0)));
        assert!(!b.reduce(BookSide::Ask, Price(100), 9, Qty(1)));
        assert_eq!(b.best(BookSide::Ask), Some(&r(100, 2, 1)));
    }

    #[test]
    fn match_one_takes_best_at_resting_price_and_respects_limit() {
        let mut b = Book::with_capacity(8);
        b.insert(BookSide::Ask, r(101, 5, 1)).unwrap();
        b.insert(BookSide::Ask, r(100, 3, 2)).unwrap();
        let m = b
            .match_one(BookSide::Bid, Some(Price(105)), Qty(4))
            .unwrap();
        assert_eq!(
            m,
            Match {
                passive_slot: 2,
                qty: Qty(3),
                price: Price(100),
                passive_leaves: Qty(0)
            }
        );
        let m = b
            .match_one(BookSide::Bid, Some(Price(105)), Qty(1))
            .unwrap();
        assert_eq!(
            m,
            Match {
                passive_slot: 1,
                qty: Qty(1),
                price: Price(101),
                passive_leaves: Qty(4)
            }
        );
        assert!(b
            .match_one(BookSide::Bid, Some(Price(100)), Qty(1))
            .is_none());
        assert!(b.match_one(BookSide::Bid, None, Qty(0)).is_none());
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn available_sums_crossing_liquidity_capped_at_want() {
        let mut b = Book::with_capacity(8);
        b.insert(BookSide::Bid, r(100, 3, 1)).unwrap();
        b.insert(BookSide::Bid, r(99, 3, 2)).unwrap();
        b.insert(BookSide::Bid, r(98, 3, 3)).unwrap();
        assert_eq!(
            b.available(BookSide::Ask, Some(Price(99)), Qty(100)),
            Qty(6)
        );
        assert_eq!(b.available(BookSide::Ask, None, Qty(7)), Qty(7));
        assert_eq!(b.available(BookSide::Ask, Some(Price(101)), Qty(7)), Qty(0));
    }

    #[test]
    fn mid_rounds_down_and_survives_extreme_prices() {
        let mut b = Book::with_capacity(4);
        b.insert(BookSide::Bid, r(100, 1, 1)).unwrap();
        assert_eq!(b.mid(), None);
        b.insert(BookSide::Ask, r(103, 1, 2)).unwrap();
        assert_eq!(b.mid(), Some(Price(101)));
        let mut b = Book::with_capacity(4);
        b.insert(BookSide::Bid, r(i64::MAX - 1, 1, 1)).unwrap();
        b.insert(BookSide::Ask, r(i64::MAX, 1, 2)).unwrap();
        assert_eq!(b.mid(), Some(Price(i64::MAX - 1)));
    }
}
