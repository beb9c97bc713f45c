//! HOT — the gateway's book of client orders: a preallocated table, the ClOrdID index and the
//! FIX order state machine (PendingNew → New → PartiallyFilled → Filled / Canceled / Replaced /
//! Rejected).
//!
//! Owned by the gateway thread. Never allocates after construction: the table and the index are
//! sized from config; a full table first recycles the oldest finished order, and only when every
//! slot holds a live order does it refuse (a counted reject, never a grow).

pub mod journal;
pub mod record;
pub mod seen;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::model::{
    notional, Account, InlineStr, Nanos, OrdStatus, OrdType, OrderIdStr, OrderKey, Price, Qty,
    SessionId, Side, Symbol, TimeInForce, QTY_SCALE,
};
use crate::route::RouteReason;

/// UTC timestamps of an order's latest instruction and what followed it (CLOCK-1, RTS 25 Art 4;
/// where each is taken: tuning.md "Timestamps"). Zero = not yet. The fifth timestamp, the
/// ExecutionReport written for the client, belongs to each report and is in its
/// [`record::OrderRecord`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderTimes {
    /// The latest client instruction about the order (new, cancel, replace) was read.
    pub instruction: Nanos,
    /// The gateway decided on it (every check passed, or the refusal).
    pub decision: Nanos,
    /// The latest request about the order was written for its venue.
    pub sent: Nanos,
    /// The latest venue answer about the order was processed.
    pub venue: Nanos,
}

/// Fields kept only for the order records (REG-1): who, what instrument, which instructions,
/// and why the venue was chosen. Fixed size, no heap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrderDetail {
    /// Executing trader: PartyID <448> with PartyRole <452> 12 (or 11, order origination
    /// trader), else SenderSubID <50>.
    pub trader: InlineStr<24>,
    /// Investment decision maker: PartyID <448> with PartyRole <452> 122.
    pub decision_maker: InlineStr<24>,
    /// SecurityID <48>.
    pub security_id: InlineStr<24>,
    /// SecurityIDSource <22> (IDSource on 4.2), 0 when absent.
    pub security_id_source: u8,
    /// Currency <15>.
    pub currency: InlineStr<3>,
    /// ExecInst <18>.
    pub exec_inst: InlineStr<16>,
    /// Why the venue was chosen (best-execution evidence).
    pub route: Option<RouteReason>,
}

/// A cancel or replace waiting for the venue's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    None,
    Cancel {
        cl_ord_id: OrderIdStr,
    },
    Replace {
        cl_ord_id: OrderIdStr,
        qty: Qty,
        price: Option<Price>,
        /// The order's reserved price before the replace (risk reserved the new terms at
        /// once; a venue reject of the replace moves the reservation back).
        reserved_before: Price,
    },
}

/// One client order.
#[derive(Clone, Copy, Debug)]
pub struct Order {
    pub session: SessionId,
    /// ClOrdID <11> of the latest accepted instruction (changes on Replaced).
    pub cl_ord_id: OrderIdStr,
    /// OrigClOrdID <41>: the ClOrdID the latest replace replaced.
    pub orig_cl_ord_id: OrderIdStr,
    /// OrderID <37>, ours, unique across restarts (recovered from the journal).
    pub order_id: u64,
    pub account: Account,
    pub symbol: Symbol,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    pub price: Option<Price>,
    pub qty: Qty,
    pub cum_qty: Qty,
    /// Σ price × qty of fills, in price units × qty units / QTY_SCALE (for AvgPx <6>).
    pub filled_notional: i128,
    pub status: OrdStatus,
    pub venue: crate::model::VenueId,
    /// The venue's OrderID <37> (empty until the venue acknowledged).
    pub venue_order_id: crate::model::VenueOrderId,
    pub pending: Pending,
    pub received_at: Nanos,
    /// Executions reported so far; ExecID <17> is `OrderID.exec_seq`, unique across restarts.
    pub exec_seq: u32,
    /// External venues: request number of the venue ClOrdID that is live there now.
    pub venue_live: u32,
    /// External venues: request number of the last request sent about this order.
    pub venue_req: u32,
    /// The price risk reserved the order's notional at (limit price, or the reference price
    /// of a market order at acceptance); `Price(0)` before the risk check.
    pub reserved_price: Price,
    pub live: bool,
    pub times: OrderTimes,
    pub detail: OrderDetail,
}

/// What the table keeps about an order beside it, not in [`Order`] (which is copied whole into
/// snapshots, journal writes and order records): who placed it and the routing of its
/// reports. Not journaled: a recovered order has neither.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderExtras {
    /// The order these belong to (a recycled slot's old extras never match a new order).
    pub order_id: u64,
    /// The key whose session placed the order (empty: an unauthenticated session). That key
    /// may still cancel the order after losing its account
    /// ([`crate::auth::Grants::may_manage`]).
    pub owner: InlineStr<32>,
    /// Routing header fields for the order's reports: the latest accepted instruction's
    /// OnBehalfOf*/DeliverTo*, swapped.
    pub routing: crate::fix::ReplyRouting,
}

impl OrderExtras {
    pub const NONE: OrderExtras = OrderExtras {
        order_id: 0,
        owner: InlineStr::EMPTY,
        routing: crate::fix::ReplyRouting::NONE,
    };

    /// Keeps `routing` for later reports; the 200-byte block is written only when there is
    /// routing to keep or old routing to clear.
    #[inline]
    fn keep_routing(&mut self, routing: Option<crate::fix::ReplyRouting>) {
        match routing {
            Some(r) => self.routing = r,
            None if !self.routing.is_empty() => self.routing = crate::fix::ReplyRouting::NONE,
            None => {}
        }
    }
}

impl Order {
    /// An empty order of `session` (status PendingNew, not live), to be filled in.
    pub const fn blank(session: SessionId, account: Account) -> Order {
        Order {
            session,
            cl_ord_id: OrderIdStr::EMPTY,
            orig_cl_ord_id: OrderIdStr::EMPTY,
            order_id: 0,
            account,
            symbol: Symbol::EMPTY,
            side: Side::Buy,
            ord_type: OrdType::Limit,
            tif: TimeInForce::Day,
            price: None,
            qty: Qty::ZERO,
            cum_qty: Qty::ZERO,
            filled_notional: 0,
            status: OrdStatus::PendingNew,
            venue: crate::model::VenueId(0),
            venue_order_id: crate::model::VenueOrderId::EMPTY,
            pending: Pending::None,
            received_at: Nanos::ZERO,
            exec_seq: 0,
            venue_live: 0,
            venue_req: 0,
            reserved_price: Price(0),
            live: false,
            times: OrderTimes {
                instruction: Nanos::ZERO,
                decision: Nanos::ZERO,
                sent: Nanos::ZERO,
                venue: Nanos::ZERO,
            },
            detail: OrderDetail {
                trader: InlineStr::EMPTY,
                decision_maker: InlineStr::EMPTY,
                security_id: InlineStr::EMPTY,
                security_id_source: 0,
                currency: InlineStr::EMPTY,
                exec_inst: InlineStr::EMPTY,
                route: None,
            },
        }
    }

    pub fn leaves(&self) -> Qty {
        if self.status.is_terminal() {
            Qty::ZERO
        } else {
            Qty((self.qty.0 - self.cum_qty.0).max(0))
        }
    }
    /// AvgPx <6>.
    pub fn avg_px(&self) -> Price {
        if self.cum_qty.0 == 0 {
            return Price(0);
        }
        Price((self.filled_notional * QTY_SCALE as i128 / self.cum_qty.0 as i128) as i64)
    }
    /// Records a fill and moves the status on.
    pub fn apply_fill(&mut self, qty: Qty, px: Price) {
        self.cum_qty = Qty(self.cum_qty.0 + qty.0);
        self.filled_notional += notional(px, qty);
        self.status = if self.cum_qty.0 >= self.qty.0 {
            OrdStatus::Filled
        } else {
            OrdStatus::PartiallyFilled
        };
    }
    /// Status to report while a cancel/replace is pending or after it fails.
    pub fn working_status(&self) -> OrdStatus {
        if self.cum_qty.0 == 0 {
            OrdStatus::New
        } else if self.cum_qty.0 >= self.qty.0 {
            OrdStatus::Filled
        } else {
            OrdStatus::PartiallyFilled
        }
    }
    pub fn is_open(&self) -> bool {
        self.live && !self.status.is_terminal() && self.status != OrdStatus::Rejected
    }
}

/// FxHash-style hasher: keys here are fixed-size and not attacker-chosen in a way that matters
/// (a client can only collide within its own session's ClOrdIDs, bounded by the table size).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(i)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.0 = (self.0.rotate_left(5) ^ i as u64).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Why an order could not be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The ClOrdID is already in use on this session.
    DuplicateClOrdId,
    /// Every slot holds a live order.
    Full,
}

/// The table of orders and the (session, ClOrdID) index.
pub struct OrderTable {
    orders: Vec<Order>,
    /// Slots never used yet, popped from the end.
    free: Vec<u32>,
    /// Finished orders in the order they finished: recycled oldest first when `free` is empty.
    finished: std::collections::VecDeque<u32>,
    index: FastMap<(SessionId, OrderIdStr), OrderKey>,
    /// Every ClOrdID in `index`, as a list per slot (`heads`), so recycling a slot removes
    /// exactly its entries. Fixed arena: twice as many ids as orders (each order plus, on
    /// average, one cancel or replace).
    ids: Vec<IdNode>,
    free_ids: Vec<u32>,
    heads: Vec<u32>,
    /// Per slot: owner key and report routing ([`OrderExtras`]).
    extras: Vec<OrderExtras>,
    next_order_id: u64,
    capacity: usize,
}

/// One ClOrdID of an order, linked to the next one of the same order.
#[derive(Clone, Copy)]
struct IdNode {
    session: SessionId,
    id: OrderIdStr,
    next: u32,
}

const NO_NODE: u32 = u32::MAX;

impl OrderTable {
    /// Preallocates room for `capacity` orders (and twice as many ClOrdIDs: replaces add one).
    pub fn new(capacity: usize) -> OrderTable {
        let blank = Order::blank(SessionId(0), Account::EMPTY);
        let mut t = OrderTable {
            orders: vec![blank; capacity],
            free: (0..capacity as u32).rev().collect(),
            finished: std::collections::VecDeque::with_capacity(capacity),
            // Twice the most ids that can be live: a hashbrown table then always rehashes in
            // place (never reallocates) when removals leave tombstones.
            index: FastMap::with_capacity_and_hasher(capacity * 4, Default::default()),
            ids: vec![
                IdNode {
                    session: SessionId(0),
                    id: OrderIdStr::EMPTY,
                    next: NO_NODE
                };
                capacity * 2
            ],
            free_ids: (0..(capacity * 2) as u32).rev().collect(),
            heads: vec![NO_NODE; capacity],
            extras: vec![OrderExtras::NONE; capacity],
            next_order_id: 1,
            capacity,
        };
        t.prefault_index();
        t
    }

    /// Touches every page of the (session, ClOrdID) index now, at start: the allocator hands
    /// it out untouched, and hashing spreads inserts over all of it, so otherwise the first
    /// insert into each of its pages takes a page fault on the gateway thread — `perf record -e
    /// page-faults` on `portcullis-hot` put 99 % of its ~13k faults per 120k orders here. Fills
    /// the table with dummy ids (session `u32::MAX`, never a configured one), then clears it;
    /// the memory stays.
    #[cold]
    fn prefault_index(&mut self) {
        let n = self.index.capacity();
        for i in 0..n {
            let mut buf = [0u8; 20];
            let len = crate::fix::encode::write_u64(&mut buf, i as u64);
            if let Some(id) = buf.get(..len).and_then(OrderIdStr::new) {
                self.index.insert((SessionId(u32::MAX), id), OrderKey(0));
            }
        }
        self.index.clear();
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Next OrderID <37> value; recovery moves it past every id in the journal.
    pub fn next_order_id(&mut self) -> u64 {
        let id = self.next_order_id;
        self.next_order_id += 1;
        id
    }
    pub fn bump_order_id(&mut self, seen: u64) {
        self.next_order_id = self.next_order_id.max(seen + 1);
    }

    pub fn lookup(&self, session: SessionId, cl_ord_id: &OrderIdStr) -> Option<OrderKey> {
        self.index.get(&(session, *cl_ord_id)).copied()
    }

    /// True when `cl_ord_id` is already used on `session`.
    pub fn contains(&self, session: SessionId, cl_ord_id: &OrderIdStr) -> bool {
        self.index.contains_key(&(session, *cl_ord_id))
    }

    /// Stores a new order under its ClOrdID.
    pub fn insert(&mut self, order: Order) -> Result<OrderKey, TableError> {
        if self.contains(order.session, &order.cl_ord_id) {
            return Err(TableError::DuplicateClOrdId);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => self.recycle()?,
        };
        let key = OrderKey(slot);
        if self.free_ids.is_empty() {
            self.free.push(slot);
            return Err(TableError::Full);
        }
        if let Some(o) = self.orders.get_mut(slot as usize) {
            *o = order;
            o.live = true;
        }
        if let Some(e) = self.extras.get_mut(slot as usize) {
            *e = OrderExtras {
                order_id: order.order_id,
                ..OrderExtras::NONE
            };
        }
        self.add_id(order.session, order.cl_ord_id, key);
        Ok(key)
    }

    /// The owner and routing of the live order at `key` (none for a recovered order).
    #[inline]
    pub fn extras(&self, key: OrderKey) -> Option<&OrderExtras> {
        let o = self.get(key)?;
        self.extras
            .get(key.0 as usize)
            .filter(|e| e.order_id != 0 && e.order_id == o.order_id)
    }

    /// The extras of `order` (a copy of a table entry), found by its ClOrdID.
    #[inline]
    pub fn extras_of(&self, order: &Order) -> Option<&OrderExtras> {
        if order.order_id == 0 {
            return None;
        }
        let key = self.lookup(order.session, &order.cl_ord_id)?;
        self.extras(key).filter(|e| e.order_id == order.order_id)
    }

    /// Sets who placed order `key` and the routing of its reports.
    pub fn set_extras(
        &mut self,
        key: OrderKey,
        owner: InlineStr<32>,
        routing: Option<crate::fix::ReplyRouting>,
    ) {
        let Some(order_id) = self.get(key).map(|o| o.order_id) else {
            return;
        };
        if let Some(e) = self.extras.get_mut(key.0 as usize) {
            e.order_id = order_id;
            e.owner = owner;
            e.keep_routing(routing);
        }
    }

    /// The routing of the latest accepted instruction about order `key`.
    pub fn set_routing(&mut self, key: OrderKey, routing: Option<crate::fix::ReplyRouting>) {
        let Some(order_id) = self.get(key).map(|o| o.order_id) else {
            return;
        };
        if let Some(e) = self
            .extras
            .get_mut(key.0 as usize)
            .filter(|e| e.order_id == order_id)
        {
            e.keep_routing(routing);
        }
    }

    /// Indexes `id` for `key` and links it to the slot's list. Caller checked a node is free.
    fn add_id(&mut self, session: SessionId, id: OrderIdStr, key: OrderKey) -> bool {
        if self.index.get(&(session, id)) == Some(&key) {
            return true;
        }
        let Some(n) = self.free_ids.pop() else {
            return false;
        };
        let head = self.heads.get(key.0 as usize).copied().unwrap_or(NO_NODE);
        if let Some(node) = self.ids.get_mut(n as usize) {
            *node = IdNode {
                session,
                id,
                next: head,
            };
        }
        if let Some(h) = self.heads.get_mut(key.0 as usize) {
            *h = n;
        }
        self.index.insert((session, id), key);
        true
    }

    /// Removes every id of slot `key` from the index.
    fn drop_ids(&mut self, key: OrderKey) {
        let mut n = self.heads.get(key.0 as usize).copied().unwrap_or(NO_NODE);
        while let Some(node) = self.ids.get(n as usize).copied() {
            if self.index.get(&(node.session, node.id)) == Some(&key) {
                self.index.remove(&(node.session, node.id));
            }
            self.free_ids.push(n);
            n = node.next;
        }
        if let Some(h) = self.heads.get_mut(key.0 as usize) {
            *h = NO_NODE;
        }
    }

    /// Adds another ClOrdID (of a cancel or replace request) pointing at `key`.
    pub fn alias(
        &mut self,
        session: SessionId,
        cl_ord_id: OrderIdStr,
        key: OrderKey,
    ) -> Result<(), TableError> {
        if self.contains(session, &cl_ord_id) {
            return Err(TableError::DuplicateClOrdId);
        }
        if self.add_id(session, cl_ord_id, key) {
            Ok(())
        } else {
            Err(TableError::Full)
        }
    }

    #[cold]
    fn recycle(&mut self) -> Result<u32, TableError> {
        while let Some(slot) = self.finished.pop_front() {
            let Some(o) = self.orders.get_mut(slot as usize) else {
                continue;
            };
            if o.is_open() {
                continue; // reopened? never: finished orders stay finished; defensive
            }
            o.live = false;
            // Drop every ClOrdID of the slot (the chain of replaces and cancels).
            self.drop_ids(OrderKey(slot));
            return Ok(slot);
        }
        Err(TableError::Full)
    }

    /// Marks `key` finished so its slot can be recycled later.
    pub fn finish(&mut self, key: OrderKey) {
        if self.finished.len() < self.capacity {
            self.finished.push_back(key.0);
        }
    }

    pub fn get(&self, key: OrderKey) -> Option<&Order> {
        self.orders.get(key.0 as usize).filter(|o| o.live)
    }
    pub fn get_mut(&mut self, key: OrderKey) -> Option<&mut Order> {
        self.orders.get_mut(key.0 as usize).filter(|o| o.live)
    }

    /// Keys of open orders matching `filter`, written into `out` (cleared first).
    pub fn open_orders(&self, out: &mut Vec<OrderKey>, filter: impl Fn(&Order) -> bool) {
        out.clear();
        for (i, o) in self.orders.iter().enumerate() {
            if o.is_open() && filter(o) && out.len() < out.capacity() {
                out.push(OrderKey(i as u32));
            }
        }
    }

    /// Recovery: puts `order` back at `key` (its slot before the restart), replacing any older
    /// snapshot there. Call [`OrderTable::finish_restore`] once all are in.
    pub fn restore(&mut self, key: OrderKey, mut order: Order) {
        let Some(slot) = self.orders.get_mut(key.0 as usize) else {
            return;
        };
        let reused = slot.live && slot.order_id != order.order_id;
        order.live = true;
        *slot = order;
        if reused {
            // The slot was recycled for a newer order: the old order's ids go.
            self.drop_ids(key);
        }
        self.add_id(order.session, order.cl_ord_id, key);
        if !order.orig_cl_ord_id.is_empty() {
            self.add_id(order.session, order.orig_cl_ord_id, key);
        }
        self.bump_order_id(order.order_id);
    }

    /// Recovery: rebuilds the free list and the finished queue from the restored slots.
    pub fn finish_restore(&mut self) {
        self.free.clear();
        self.finished.clear();
        for (i, o) in self.orders.iter().enumerate().rev() {
            if !o.live {
                self.free.push(i as u32);
            }
        }
        for (i, o) in self.orders.iter().enumerate() {
            if o.live && !o.is_open() {
                self.finished.push_back(i as u32);
            }
        }
    }

    pub fn open_count(&self) -> usize {
        self.orders.iter().filter(|o| o.is_open()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extras_follow_the_order_and_never_a_recycled_slot() {
        let mut t = OrderTable::new(1);
        let mut a = order(0, "A");
        a.order_id = 7;
        let ka = t.insert(a).unwrap();
        assert_eq!(
            t.extras(ka).map(|e| e.owner),
            Some(InlineStr::EMPTY),
            "nothing set yet"
        );
        let owner = InlineStr::new(b"key-a").unwrap();
        t.set_extras(ka, owner, None);
        assert_eq!(t.extras(ka).map(|e| e.owner), Some(owner));
        assert_eq!(t.extras_of(&a).map(|e| e.owner), Some(owner));
        // Finished and recycled for another order: the old owner does not carry over.
        if let Some(o) = t.get_mut(ka) {
            o.status = OrdStatus::Canceled;
        }
        t.finish(ka);
        let mut b = order(0, "B");
        b.order_id = 8;
        let kb = t.insert(b).unwrap();
        assert_eq!(kb, ka);
        assert_eq!(t.extras(kb).map(|e| e.owner), Some(InlineStr::EMPTY));
        assert_eq!(t.extras_of(&a), None);
        // A recovered order has none either.
        let mut r = OrderTable::new(1);
        r.restore(OrderKey(0), b);
        r.finish_restore();
        assert_eq!(r.extras(OrderKey(0)), None);
    }

    fn order(session: u32, id: &str) -> Order {
        Order {
            cl_ord_id: OrderIdStr::new(id.as_bytes()).unwrap(),
            order_id: 1,
            symbol: Symbol::new(b"AAPL").unwrap(),
            price: Some(Price::from_units(10)),
            qty: Qty::from_units(100),
            live: true,
            ..Order::blank(SessionId(session), Account::EMPTY)
        }
    }

    #[test]
    fn rejects_duplicate_cl_ord_id_per_session_only() {
        let mut t = OrderTable::new(4);
        t.insert(order(1, "A")).unwrap();
        assert_eq!(t.insert(order(1, "A")), Err(TableError::DuplicateClOrdId));
        assert!(t.insert(order(2, "A")).is_ok());
    }

    #[test]
    fn fills_update_cum_qty_and_avg_px() {
        let mut o = order(1, "A");
        o.apply_fill(Qty::from_units(40), Price::from_units(10));
        assert_eq!(o.status, OrdStatus::PartiallyFilled);
        assert_eq!(o.leaves(), Qty::from_units(60));
        o.apply_fill(Qty::from_units(60), Price::from_units(11));
        assert_eq!(o.status, OrdStatus::Filled);
        assert_eq!(o.avg_px(), Price(1_060_000_000));
        assert_eq!(o.leaves(), Qty::ZERO);
    }

    #[test]
    fn recycling_frees_every_alias_of_the_slot() {
        let mut t = OrderTable::new(1);
        let a = t.insert(order(1, "A")).unwrap();
        t.alias(SessionId(1), OrderIdStr::new(b"A2").unwrap(), a)
            .unwrap();
        assert_eq!(
            t.lookup(SessionId(1), &OrderIdStr::new(b"A2").unwrap()),
            Some(a)
        );
        t.get_mut(a).unwrap().status = OrdStatus::Canceled;
        t.finish(a);
        for i in 0..10_000 {
            let k = t.insert(order(1, &format!("N{i}"))).unwrap();
            assert!(t
                .lookup(SessionId(1), &OrderIdStr::new(b"A2").unwrap())
                .is_none());
            t.get_mut(k).unwrap().status = OrdStatus::Filled;
            t.finish(k);
        }
        assert!(t.index.len() <= 2);
    }

    #[test]
    fn full_table_recycles_finished_orders_then_refuses() {
        let mut t = OrderTable::new(2);
        let a = t.insert(order(1, "A")).unwrap();
        t.insert(order(1, "B")).unwrap();
        assert_eq!(t.insert(order(1, "C")), Err(TableError::Full));
        t.get_mut(a).unwrap().status = OrdStatus::Filled;
        t.finish(a);
        let c = t.insert(order(1, "C")).unwrap();
        assert_eq!(c, a);
        assert!(t
            .lookup(SessionId(1), &OrderIdStr::new(b"A").unwrap())
            .is_none());
    }
}
