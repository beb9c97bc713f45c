//! HOT — pre-trade risk (RISK-1 SEC 15c3-5, RISK-2 MiFID II RTS 6): one function per check, a
//! [`Verdict`] per order, and the exposure state the checks read (open and executed notional,
//! positions with working orders, open-order counts, message rates, kill switches).
//!
//! Owned and run by the gateway thread. Sans-IO: never reads the clock (callers pass
//! `now: Nanos`), never allocates after [`RiskCore::new`] (every table is sized from config;
//! exhaustion is a reject), takes no locks, and uses fixed-point integers only. It fails closed:
//! a missing limit is a construction error, an unknown account or symbol is rejected, and an
//! order that needs a reference price is rejected when that price is missing or stale.
//!
//! # Calling contract (engine)
//! - New order: [`RiskCore::admit_new`] (or [`RiskCore::check_new`]) before routing. On accept
//!   the order's notional is reserved at [`Reservation::price`]: the limit price, or for a market
//!   order the reference price at acceptance. The engine keeps that price with the order and
//!   passes it back as `reserved_price` on every later call about the order.
//! - Venue reject or cancel (including IOC/FOK remainder expiry): [`RiskCore::on_reject`] /
//!   [`RiskCore::on_cancel`] with the open (leaves) quantity and the reserved price.
//! - Fill: [`RiskCore::on_fill`]; `done` when the order has no leaves left.
//! - Replace request: [`RiskCore::check_replace`] with old and new open quantities; on accept the
//!   new terms are reserved at once (an increase reserved, a decrease released). If the venue
//!   rejects the replace, [`RiskCore::undo_replace`] moves the reservation back.
//! - Cancel requests are never checked: cancels are allowed even while killed.
//! - Kill ([`RiskCore::kill`]) only blocks new orders and replaces; the engine cancels the open
//!   orders of the scope itself (RTS 6 Art 12).
//! - Limit changes: [`RiskCore::set_limits`] / [`RiskCore::raise_limits_until`] return a
//!   [`LimitChange`] for audit; reverts of expired raises happen lazily in the next check of the
//!   account and are collected with [`RiskCore::drain_limit_changes`].

pub mod limits;
mod prefetch;
pub mod reason;
mod tables;

pub use limits::{
    BuildError, Collar, KeyCaps, LimitChange, LimitName, LimitsSpec, OrdTypeSet, RiskError,
    RiskLimits, SymbolSpec, TifSet,
};
pub use reason::{ord_rej_reason, Notional, Reason, Verdict};
pub use tables::Position;

use arrayvec::ArrayVec;

use crate::model::{Account, Nanos, OrdType, Price, Qty, Side, Symbol, TimeInForce, QTY_SCALE};
use crate::order::FastMap;
use prefetch::prefetch;
use tables::{find_duplicate, NameIndex, PositionTable, RecentOrder};

/// The terms of a NewOrderSingle <D> the checks need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOrderView {
    /// The authenticated key (session) the order came in on, for [`KeyCaps`].
    pub key: u32,
    pub symbol: Symbol,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    /// OrderQty <38>.
    pub qty: Qty,
    /// Price <44>; `None` for market orders.
    pub price: Option<Price>,
}

/// Open quantity reserved at a price.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub open_qty: Qty,
    pub price: Price,
}

/// The terms of an OrderCancelReplaceRequest <G> against the order's current reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaceView {
    pub key: u32,
    pub symbol: Symbol,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    /// The new OrderQty <38> (checked against the max order quantity and notional).
    pub new_order_qty: Qty,
    /// The new open quantity: new OrderQty − CumQty.
    pub new_open_qty: Qty,
    /// The new Price <44>; `None` for a market order (keeps its reserved price).
    pub new_price: Option<Price>,
    /// The open quantity and reserved price now.
    pub old: Reserved,
}

/// An execution against an accepted order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fill {
    pub symbol: Symbol,
    pub side: Side,
    /// LastQty <32>.
    pub qty: Qty,
    /// LastPx <31>.
    pub price: Price,
    /// The price the order's notional was reserved at ([`Reservation::price`]).
    pub reserved_price: Price,
    /// The order has no leaves left after this fill.
    pub done: bool,
}

/// What an accepted order reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// Limit price, or the reference price for a market order.
    pub price: Price,
    pub notional: Notional,
}

/// What a kill switch covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KillScope {
    Global,
    Account(Account),
    Symbol(Symbol),
}

/// An account's exposure, for ops and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exposure {
    pub open: Notional,
    pub executed: Notional,
    pub open_orders: u32,
}

/// An account's limits and state, for ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccountView {
    pub limits: RiskLimits,
    /// What a temporary raise reverts to (equal to `limits` without one).
    pub base: RiskLimits,
    pub raise_until: Option<Nanos>,
    pub exposure: Exposure,
    pub killed: bool,
    pub disabled: bool,
    pub reconciliation: Reconciliation,
}

/// Sizes and static data for [`RiskCore::new`].
#[derive(Clone, Copy, Debug)]
pub struct RiskConfig<'a> {
    pub accounts: &'a [(Account, LimitsSpec)],
    pub symbols: &'a [SymbolSpec],
    pub key_caps: &'a [(u32, KeyCaps)],
    /// Distinct (account, symbol) positions held at once.
    pub max_positions: u32,
    /// Recent orders remembered per account for duplicate detection; an order older than the
    /// newest `duplicate_slots` is no longer compared.
    pub duplicate_slots: u32,
}

/// Limit-change records (expired raises) kept until drained; older ones beyond this are
/// dropped and counted.
const CHANGE_LOG: usize = 64;

/// The hot state of one account: everything a new-order check reads or writes, and the name
/// the lookup compares, in one 64-byte-aligned block of four cache lines (fetched together);
/// what only ops and the cold paths read is in [`AccountCold`].
#[repr(align(64))]
struct AccountState {
    account: Account,
    limits: RiskLimits,
    raise_until: Option<Nanos>,
    /// Σ price × open qty of accepted orders, in 10^-12 (exact; see `Notional::raw`).
    open_raw: i128,
    /// Σ price × qty of fills, both sides, in 10^-12.
    executed_raw: i128,
    open_orders: u32,
    killed: bool,
    disabled: bool,
    rate_window_start: Nanos,
    rate_count: u32,
    recent_next: u32,
    /// [`Reconciliation::accepted_orders`] and `accepted_raw` (moved on every accept).
    accepted_orders: u64,
    accepted_raw: i128,
}

/// The cold state of one account (same index as its [`AccountState`]).
struct AccountCold {
    /// What a temporary raise reverts to.
    base: RiskLimits,
    /// The sent side of reconciliation (the accepted side is in [`AccountState`]).
    recon: Reconciliation,
}

/// Reconciliation counters of one account: orders accepted from clients against orders sent
/// to venues (count and notional), and venue reports about orders the gateway never sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reconciliation {
    pub accepted_orders: u64,
    /// Σ price × qty of accepted orders, in 10^-12.
    pub accepted_raw: i128,
    pub sent_orders: u64,
    pub sent_raw: i128,
    /// Venue reports for orders of this account the gateway has no record of.
    pub venue_unmatched: u32,
}

struct SymbolState {
    symbol: Symbol,
    tick_size: Price,
    reference: Price,
    reference_at: Nanos,
    has_reference: bool,
    /// Reference fixed by configuration: never ages, venue prices do not replace it.
    pinned: bool,
    restricted: bool,
    killed: bool,
}

/// The pre-trade risk state of every configured account.
pub struct RiskCore {
    /// Account name → index into `states` (the name is compared in the state itself).
    accounts: NameIndex,
    states: Vec<AccountState>,
    cold: Vec<AccountCold>,
    /// Symbol name → index into `syms`.
    symbols: NameIndex,
    syms: Vec<SymbolState>,
    keys: FastMap<u32, KeyCaps>,
    positions: PositionTable,
    recent: Vec<RecentOrder>,
    recent_slots: u32,
    global_kill: bool,
    changes: ArrayVec<LimitChange, CHANGE_LOG>,
    changes_dropped: u64,
    change_seq: u64,
    anomalies: u64,
    /// The earliest end of a temporary raise (`None`: no raise running), so that
    /// [`RiskCore::expire_raises`] scans only when one is due.
    next_expiry: Option<Nanos>,
}

/// The cache lines a check is about to touch, for [`prefetch`].
struct Lines {
    state: *const u8,
    ring: *const u8,
    ring_bytes: usize,
    position: Option<*const u8>,
}

impl Lines {
    /// Starts loading them all (a hint: no effect on semantics), so the misses overlap.
    #[inline]
    fn issue(&self) {
        for line in 1..core::mem::size_of::<AccountState>() / 64 {
            prefetch(self.state.wrapping_add(line * 64));
        }
        // Every line of the ring, the last one included (a ring need not start on a line).
        let mut off = 0;
        while off < self.ring_bytes {
            prefetch(self.ring.wrapping_add(off));
            off += 64;
        }
        prefetch(self.ring.wrapping_add(self.ring_bytes.saturating_sub(1)));
        if let Some(p) = self.position {
            prefetch(p);
        }
    }
}

/// Reject paths are cold: the accept path is the one that must be fast.
#[cold]
#[inline(never)]
fn refuse<T>(r: Reason) -> Result<T, Reason> {
    Err(r)
}

/// Price × quantity in the exact internal scale (10^-12).
#[inline]
fn raw_notional(px: Price, qty: Qty) -> i128 {
    i128::from(px.0) * i128::from(qty.0)
}

fn clamp_qty(v: i128) -> Qty {
    Qty(v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

impl RiskCore {
    /// Builds the tables. Fails on the first missing or invalid limit (naming the account and
    /// the limit), a duplicate account or symbol, or a zero capacity.
    pub fn new(cfg: &RiskConfig<'_>) -> Result<RiskCore, BuildError> {
        if cfg.max_positions == 0 || cfg.duplicate_slots == 0 {
            return Err(BuildError::InvalidCapacity);
        }
        let n = cfg.accounts.len();
        if n >= tables::NAME_INDEX_MAX || cfg.symbols.len() >= tables::NAME_INDEX_MAX {
            return Err(BuildError::InvalidCapacity);
        }
        let mut accounts = NameIndex::new(n);
        let mut states: Vec<AccountState> = prefetch::with_capacity_huge(n);
        let mut cold = Vec::with_capacity(n);
        for (i, (account, spec)) in cfg.accounts.iter().enumerate() {
            let limits = spec.build(*account)?;
            let h = NameIndex::hash(account);
            if accounts
                .find(h, |j| {
                    states
                        .get(j as usize)
                        .is_some_and(|s| s.account == *account)
                })
                .is_some()
            {
                return Err(BuildError::DuplicateAccount(*account));
            }
            accounts.insert(h, i as u32);
            cold.push(AccountCold {
                base: limits,
                recon: Reconciliation::default(),
            });
            states.push(AccountState {
                account: *account,
                limits,
                raise_until: None,
                open_raw: 0,
                executed_raw: 0,
                open_orders: 0,
                killed: false,
                disabled: false,
                rate_window_start: Nanos::ZERO,
                rate_count: 0,
                recent_next: 0,
                accepted_orders: 0,
                accepted_raw: 0,
            });
        }
        let m = cfg.symbols.len();
        let mut symbols = NameIndex::new(m);
        let mut syms: Vec<SymbolState> = Vec::with_capacity(m);
        for (i, s) in cfg.symbols.iter().enumerate() {
            if s.tick_size.0 <= 0 {
                return Err(BuildError::InvalidTickSize(s.symbol));
            }
            let h = NameIndex::hash(&s.symbol);
            if symbols
                .find(h, |j| {
                    syms.get(j as usize).is_some_and(|x| x.symbol == s.symbol)
                })
                .is_some()
            {
                return Err(BuildError::DuplicateSymbol(s.symbol));
            }
            symbols.insert(h, i as u32);
            syms.push(SymbolState {
                symbol: s.symbol,
                tick_size: s.tick_size,
                reference: Price(0),
                reference_at: Nanos::ZERO,
                has_reference: false,
                pinned: false,
                restricted: s.restricted,
                killed: false,
            });
        }
        let mut keys = FastMap::with_capacity_and_hasher(cfg.key_caps.len(), Default::default());
        keys.extend(cfg.key_caps.iter().copied());
        let slots = (cfg.duplicate_slots as usize)
            .checked_mul(n)
            .ok_or(BuildError::InvalidCapacity)?;
        Ok(RiskCore {
            accounts,
            states,
            cold,
            symbols,
            syms,
            keys,
            positions: PositionTable::new(cfg.max_positions),
            recent: prefetch::with_huge_pages(slots, RecentOrder::EMPTY),
            recent_slots: cfg.duplicate_slots,
            global_kill: false,
            changes: ArrayVec::new(),
            changes_dropped: 0,
            change_seq: 0,
            anomalies: 0,
            next_expiry: None,
        })
    }

    // ---- checks -------------------------------------------------------------------------------

    /// Checks a new order and, on accept, reserves its notional, position and open-order slot.
    pub fn check_new(&mut self, acct: &Account, order: &NewOrderView, now: Nanos) -> Verdict {
        match self.admit_new(acct, order, now) {
            Ok(_) => Verdict::Accept,
            Err(r) => Verdict::Reject(r),
        }
    }

    /// The checks a new order and a replace open with, in this order: the account is known,
    /// an expired temporary raise is reverted, the account is enabled and within its message
    /// rate, no kill switch covers it, the symbol is known and neither killed nor restricted,
    /// and the account allows the order type and time in force. Returns the account's and the
    /// symbol's indices.
    #[inline(always)]
    fn admit_opening(
        &mut self,
        acct: &Account,
        symbol: &Symbol,
        ord_type: OrdType,
        tif: TimeInForce,
        now: Nanos,
    ) -> Result<(u32, u32), Reason> {
        let Some(ai) = self.account_index(acct) else {
            return refuse(Reason::UnknownAccount);
        };
        // Looked up here, refused if unknown after the account's own checks.
        let si = self.symbol_index(symbol);
        let lines = self.lines_of(ai, si);
        let Some(st) = self.states.get_mut(ai as usize) else {
            return refuse(Reason::UnknownAccount);
        };
        if st.raise_until.is_some_and(|t| now >= t) {
            let base = self.cold.get(ai as usize).map_or(st.limits, |c| c.base);
            revert_raise(
                st,
                &base,
                now,
                &mut self.changes,
                &mut self.changes_dropped,
                &mut self.change_seq,
            );
        }
        check_enabled_and_rate(st, now)?;
        check_kills(self.global_kill, st)?;
        lines.issue();
        let Some(si) = si else {
            return refuse(Reason::UnknownSymbol);
        };
        let Some(sym) = self.syms.get(si as usize) else {
            return refuse(Reason::UnknownSymbol);
        };
        check_symbol(sym)?;
        check_order_kind(&st.limits, ord_type, tif)?;
        Ok((ai, si))
    }

    /// [`RiskCore::check_new`], returning what was reserved (the engine needs the price for
    /// market orders).
    pub fn admit_new(
        &mut self,
        acct: &Account,
        o: &NewOrderView,
        now: Nanos,
    ) -> Result<Reservation, Reason> {
        let (ai, si) = self.admit_opening(acct, &o.symbol, o.ord_type, o.tif, now)?;
        let (Some(st), Some(sym)) = (self.states.get_mut(ai as usize), self.syms.get(si as usize))
        else {
            return refuse(Reason::UnknownAccount);
        };
        let lim = &st.limits;
        if o.qty.0 <= 0 {
            return refuse(Reason::InvalidQty { value: o.qty });
        }
        let key_caps = if self.keys.is_empty() {
            None
        } else {
            self.keys.get(&o.key)
        };
        check_order_qty(lim, key_caps, o.qty)?;
        let price = valuation_price(lim, sym, o.ord_type, o.price, now)?;
        let raw = raw_notional(price, o.qty);
        check_order_notional(lim, key_caps, raw)?;
        check_open_orders(lim, st.open_orders)?;
        let ring_start = ai as usize * self.recent_slots as usize;
        let ring = self
            .recent
            .get_mut(ring_start..ring_start + self.recent_slots as usize)
            .unwrap_or_default();
        let recent = RecentOrder {
            symbol: si,
            side: o.side,
            qty: o.qty.0,
            price: o.price.map_or(i64::MIN, |p| p.0),
            at: now,
        };
        check_duplicate(lim, ring, &recent)?;
        check_credit(lim, st.open_raw, st.executed_raw, raw)?;
        let probe = self.positions.probe(ai, si);
        check_position(lim, &self.positions.at(&probe), o.side, i128::from(o.qty.0))?;

        // Accepted: commit. The position slot first, the only step that can still fail.
        let capacity = self.positions.capacity();
        let Some(pos) = self.positions.claim(ai, si, probe) else {
            return refuse(Reason::PositionTableFull { capacity });
        };
        add_open(pos, o.side, o.qty.0);
        st.open_raw = st.open_raw.saturating_add(raw);
        st.open_orders = st.open_orders.saturating_add(1);
        st.accepted_orders += 1;
        st.accepted_raw = st.accepted_raw.saturating_add(raw);
        // The ring is written only while duplicate detection is on (a window set later
        // compares the orders accepted from then on).
        if lim.duplicate_window.0 != 0 && !ring.is_empty() {
            // `recent_next` stays below the ring length: no division.
            let slot = st.recent_next as usize;
            if let Some(r) = ring.get_mut(slot) {
                *r = recent;
            }
            st.recent_next = if slot + 1 >= ring.len() {
                0
            } else {
                st.recent_next + 1
            };
        }
        Ok(Reservation {
            price,
            notional: Notional::from_raw(raw),
        })
    }

    /// Checks a replace and, on accept, moves the reservation to the new terms: only an
    /// increase is checked against credit and position limits; a decrease is released.
    pub fn check_replace(&mut self, acct: &Account, r: &ReplaceView, now: Nanos) -> Verdict {
        match self.admit_replace(acct, r, now) {
            Ok(_) => Verdict::Accept,
            Err(reason) => Verdict::Reject(reason),
        }
    }

    /// [`RiskCore::check_replace`], returning the new reservation.
    pub fn admit_replace(
        &mut self,
        acct: &Account,
        r: &ReplaceView,
        now: Nanos,
    ) -> Result<Reservation, Reason> {
        let (ai, si) = self.admit_opening(acct, &r.symbol, r.ord_type, r.tif, now)?;
        let (Some(st), Some(sym)) = (self.states.get_mut(ai as usize), self.syms.get(si as usize))
        else {
            return refuse(Reason::UnknownAccount);
        };
        let lim = &st.limits;
        if r.new_order_qty.0 <= 0 {
            return refuse(Reason::InvalidQty {
                value: r.new_order_qty,
            });
        }
        if r.new_open_qty.0 < 0 || r.new_open_qty.0 > r.new_order_qty.0 {
            return refuse(Reason::InvalidQty {
                value: r.new_open_qty,
            });
        }
        let key_caps = self.keys.get(&r.key);
        check_order_qty(lim, key_caps, r.new_order_qty)?;
        let price = match (r.ord_type, r.new_price) {
            // A market order keeps the price it was valued at.
            (OrdType::Market, _) => r.old.price,
            (OrdType::Limit, p) => valuation_price(lim, sym, OrdType::Limit, p, now)?,
        };
        check_order_notional(lim, key_caps, raw_notional(price, r.new_order_qty))?;
        let old_raw = raw_notional(r.old.price, r.old.open_qty);
        let new_raw = raw_notional(price, r.new_open_qty);
        let delta_raw = new_raw.saturating_sub(old_raw);
        if delta_raw > 0 {
            check_credit(lim, st.open_raw, st.executed_raw, delta_raw)?;
        }
        let delta_qty = i128::from(r.new_open_qty.0) - i128::from(r.old.open_qty.0);
        let probe = self.positions.probe(ai, si);
        if delta_qty > 0 {
            check_position(lim, &self.positions.at(&probe), r.side, delta_qty)?;
        }
        let capacity = self.positions.capacity();
        let Some(pos) = self.positions.claim(ai, si, probe) else {
            return refuse(Reason::PositionTableFull { capacity });
        };
        add_open(pos, r.side, clamp_qty(delta_qty).0);
        st.open_raw = st.open_raw.saturating_add(delta_raw);
        Ok(Reservation {
            price,
            notional: Notional::from_raw(raw_notional(price, r.new_order_qty)),
        })
    }

    // ---- state transitions --------------------------------------------------------------------

    /// The venue (or the gateway after acceptance) rejected the order: its open quantity at the
    /// reserved price is released and it no longer counts as open.
    pub fn on_reject(
        &mut self,
        acct: &Account,
        symbol: &Symbol,
        side: Side,
        open_qty: Qty,
        reserved_price: Price,
    ) -> Result<(), RiskError> {
        self.on_cancel(acct, symbol, side, open_qty, reserved_price)
    }

    /// The order was cancelled or expired: its open quantity at the reserved price is released
    /// and it no longer counts as open. Executed notional is unchanged.
    pub fn on_cancel(
        &mut self,
        acct: &Account,
        symbol: &Symbol,
        side: Side,
        open_qty: Qty,
        reserved_price: Price,
    ) -> Result<(), RiskError> {
        let (ai, si) = self.indices(acct, symbol)?;
        let Some(st) = self.states.get_mut(ai as usize) else {
            return Err(RiskError::UnknownAccount);
        };
        let raw = raw_notional(reserved_price, open_qty);
        st.open_raw = st.open_raw.saturating_sub(raw);
        if st.open_raw < 0 {
            st.open_raw = 0;
            self.anomalies += 1;
        }
        if st.open_orders == 0 {
            self.anomalies += 1;
        }
        st.open_orders = st.open_orders.saturating_sub(1);
        let pos = self
            .positions
            .get_mut(ai, si)
            .ok_or(RiskError::PositionTableFull)?;
        if !release_open(pos, side, open_qty.0) {
            self.anomalies += 1;
        }
        Ok(())
    }

    /// A fill: its quantity moves from open (at the reserved price) to executed (at the fill
    /// price), and the executed position moves.
    pub fn on_fill(&mut self, acct: &Account, f: &Fill) -> Result<(), RiskError> {
        let (ai, si) = self.indices(acct, &f.symbol)?;
        let Some(st) = self.states.get_mut(ai as usize) else {
            return Err(RiskError::UnknownAccount);
        };
        st.open_raw = st
            .open_raw
            .saturating_sub(raw_notional(f.reserved_price, f.qty));
        if st.open_raw < 0 {
            st.open_raw = 0;
            self.anomalies += 1;
        }
        st.executed_raw = st
            .executed_raw
            .saturating_add(raw_notional(f.price, f.qty).abs());
        if f.done {
            if st.open_orders == 0 {
                self.anomalies += 1;
            }
            st.open_orders = st.open_orders.saturating_sub(1);
        }
        let pos = self
            .positions
            .get_mut(ai, si)
            .ok_or(RiskError::PositionTableFull)?;
        if !release_open(pos, f.side, f.qty.0) {
            self.anomalies += 1;
        }
        pos.net = if f.side.is_buy() {
            pos.net.saturating_add(f.qty.0)
        } else {
            pos.net.saturating_sub(f.qty.0)
        };
        Ok(())
    }

    /// The venue rejected a replace that [`RiskCore::check_replace`] accepted: the reservation
    /// moves from `from` (the new terms, with the open quantity now) back to `to` (the old
    /// terms). Never refused by limits: it restores what was accepted before.
    pub fn undo_replace(
        &mut self,
        acct: &Account,
        symbol: &Symbol,
        side: Side,
        from: Reserved,
        to: Reserved,
    ) -> Result<(), RiskError> {
        let (ai, si) = self.indices(acct, symbol)?;
        let Some(st) = self.states.get_mut(ai as usize) else {
            return Err(RiskError::UnknownAccount);
        };
        st.open_raw = st.open_raw.saturating_add(
            raw_notional(to.price, to.open_qty)
                .saturating_sub(raw_notional(from.price, from.open_qty)),
        );
        if st.open_raw < 0 {
            st.open_raw = 0;
            self.anomalies += 1;
        }
        let pos = self
            .positions
            .get_mut(ai, si)
            .ok_or(RiskError::PositionTableFull)?;
        add_open(pos, side, to.open_qty.0.saturating_sub(from.open_qty.0));
        Ok(())
    }

    /// Where the lines a check of account `ai` (in symbol `si`) touches are: the rest of its
    /// state, its duplicate ring and the position slot. Computed up front (no borrow held),
    /// issued once the account's own checks passed, so a rejected order does not pull them.
    #[inline]
    fn lines_of(&self, ai: u32, si: Option<u32>) -> Lines {
        Lines {
            state: self.states.as_ptr().wrapping_add(ai as usize).cast(),
            ring: self
                .recent
                .as_ptr()
                .wrapping_add(ai as usize * self.recent_slots as usize)
                .cast(),
            ring_bytes: self.recent_slots as usize * core::mem::size_of::<RecentOrder>(),
            position: si.map(|si| self.positions.slot_ptr(ai, si)),
        }
    }

    /// The dense index of `acct` (one probe of a small table, then the name compared in the
    /// account's own state, which the check reads next anyway).
    #[inline]
    fn account_index(&self, acct: &Account) -> Option<u32> {
        let states = &self.states;
        self.accounts.find(NameIndex::hash(acct), |i| {
            states.get(i as usize).is_some_and(|s| s.account == *acct)
        })
    }

    #[inline]
    fn symbol_index(&self, symbol: &Symbol) -> Option<u32> {
        let syms = &self.syms;
        self.symbols.find(NameIndex::hash(symbol), |i| {
            syms.get(i as usize).is_some_and(|s| s.symbol == *symbol)
        })
    }

    fn indices(&self, acct: &Account, symbol: &Symbol) -> Result<(u32, u32), RiskError> {
        let ai = self.account_index(acct).ok_or(RiskError::UnknownAccount)?;
        let si = self.symbol_index(symbol).ok_or(RiskError::UnknownSymbol)?;
        Ok((ai, si))
    }

    fn state_mut(&mut self, acct: &Account) -> Result<&mut AccountState, RiskError> {
        let ai = self.account_index(acct).ok_or(RiskError::UnknownAccount)?;
        self.states
            .get_mut(ai as usize)
            .ok_or(RiskError::UnknownAccount)
    }

    fn symbol_mut(&mut self, symbol: &Symbol) -> Result<&mut SymbolState, RiskError> {
        let si = self.symbol_index(symbol).ok_or(RiskError::UnknownSymbol)?;
        self.syms
            .get_mut(si as usize)
            .ok_or(RiskError::UnknownSymbol)
    }

    // ---- reference data, kills, limits ------------------------------------------------------

    /// A new reference price (last trade, mid, or venue reference) for `symbol` as of `now`.
    pub fn set_reference(
        &mut self,
        symbol: &Symbol,
        price: Price,
        now: Nanos,
    ) -> Result<(), RiskError> {
        if price.0 <= 0 {
            return Err(RiskError::InvalidPrice);
        }
        let s = self.symbol_mut(symbol)?;
        if s.pinned {
            return Err(RiskError::ReferencePinned);
        }
        s.reference = price;
        s.reference_at = now;
        s.has_reference = true;
        Ok(())
    }

    /// Fixes `symbol`'s reference price (configuration, not a venue): it never goes stale and
    /// [`RiskCore::set_reference`] no longer moves it.
    pub fn pin_reference(&mut self, symbol: &Symbol, price: Price) -> Result<(), RiskError> {
        if price.0 <= 0 {
            return Err(RiskError::InvalidPrice);
        }
        let s = self.symbol_mut(symbol)?;
        s.reference = price;
        s.has_reference = true;
        s.pinned = true;
        Ok(())
    }

    /// The reference price of `symbol` and when it was set (`None`: none yet).
    pub fn reference(&self, symbol: &Symbol) -> Option<(Price, Nanos, bool)> {
        let i = self.symbol_index(symbol)?;
        let s = self.syms.get(i as usize)?;
        s.has_reference
            .then_some((s.reference, s.reference_at, s.pinned))
    }

    pub fn set_restricted(&mut self, symbol: &Symbol, restricted: bool) -> Result<(), RiskError> {
        self.symbol_mut(symbol)?.restricted = restricted;
        Ok(())
    }

    /// Blocks new orders and replaces in `scope`. Cancels stay allowed.
    pub fn kill(&mut self, scope: KillScope) -> Result<(), RiskError> {
        self.set_kill(scope, true)
    }

    pub fn unkill(&mut self, scope: KillScope) -> Result<(), RiskError> {
        self.set_kill(scope, false)
    }

    fn set_kill(&mut self, scope: KillScope, on: bool) -> Result<(), RiskError> {
        match scope {
            KillScope::Global => self.global_kill = on,
            KillScope::Account(a) => self.state_mut(&a)?.killed = on,
            KillScope::Symbol(s) => self.symbol_mut(&s)?.killed = on,
        }
        Ok(())
    }

    /// True when a kill switch covers new orders of `acct` in `symbol`. Unknown accounts and
    /// symbols count as killed (fail closed).
    pub fn is_killed(&self, acct: &Account, symbol: &Symbol) -> bool {
        let account_killed = self
            .account_index(acct)
            .and_then(|i| self.states.get(i as usize))
            .is_none_or(|s| s.killed);
        let symbol_killed = self
            .symbol_index(symbol)
            .and_then(|i| self.syms.get(i as usize))
            .is_none_or(|s| s.killed);
        self.global_kill || account_killed || symbol_killed
    }

    /// Disables an account as a message-rate trip does (recovery of a trip before a restart);
    /// only [`RiskCore::enable_account`] re-enables it.
    pub fn disable_account(&mut self, acct: &Account) -> Result<(), RiskError> {
        self.state_mut(acct)?.disabled = true;
        Ok(())
    }

    /// Re-enables an account the message rate limit disabled, with a fresh rate window.
    pub fn enable_account(&mut self, acct: &Account) -> Result<(), RiskError> {
        let st = self.state_mut(acct)?;
        st.disabled = false;
        st.rate_count = 0;
        st.rate_window_start = Nanos::ZERO;
        Ok(())
    }

    pub fn is_disabled(&self, acct: &Account) -> bool {
        self.account_index(acct)
            .and_then(|i| self.states.get(i as usize))
            .is_none_or(|s| s.disabled)
    }

    /// Replaces the account's limits whole (and ends any temporary raise).
    pub fn set_limits(
        &mut self,
        acct: &Account,
        limits: RiskLimits,
        reason: &'static str,
        now: Nanos,
    ) -> Result<LimitChange, RiskError> {
        self.apply_limits(acct, limits, reason, now, None)
    }

    /// Raises (or otherwise changes) the account's limits until `until`; the next check of the
    /// account at or after `until` reverts them to what they were before the first raise.
    pub fn raise_limits_until(
        &mut self,
        acct: &Account,
        limits: RiskLimits,
        until: Nanos,
        reason: &'static str,
        now: Nanos,
    ) -> Result<LimitChange, RiskError> {
        self.apply_limits(acct, limits, reason, now, Some(until))
    }

    fn apply_limits(
        &mut self,
        acct: &Account,
        limits: RiskLimits,
        reason: &'static str,
        now: Nanos,
        until: Option<Nanos>,
    ) -> Result<LimitChange, RiskError> {
        limits.validate().map_err(RiskError::InvalidLimit)?;
        self.change_seq += 1;
        let seq = self.change_seq;
        let (st, cold) = self.account_mut(acct).ok_or(RiskError::UnknownAccount)?;
        let before = st.limits;
        st.limits = limits;
        match until {
            // A raise on top of a raise keeps the original base.
            Some(t) => st.raise_until = Some(t),
            None => {
                cold.base = limits;
                st.raise_until = None;
            }
        }
        let change = LimitChange {
            seq,
            account: st.account,
            before,
            after: limits,
            reason,
            at: now,
            expires_at: until,
        };
        if let Some(t) = until {
            self.next_expiry = Some(self.next_expiry.map_or(t, |n| n.min(t)));
        }
        Ok(change)
    }

    /// Reverts every temporary raise that ended by `now`, even for accounts that send nothing
    /// (the next check of an account would revert it too). Cheap when none is due: call it
    /// from a timer. The reverts are collected with [`RiskCore::drain_limit_changes`].
    pub fn expire_raises(&mut self, now: Nanos) {
        if self.next_expiry.is_none_or(|t| now < t) {
            return;
        }
        let mut next: Option<Nanos> = None;
        for (st, cold) in self.states.iter_mut().zip(&self.cold) {
            match st.raise_until {
                Some(t) if now >= t => revert_raise(
                    st,
                    &cold.base,
                    now,
                    &mut self.changes,
                    &mut self.changes_dropped,
                    &mut self.change_seq,
                ),
                Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
                None => {}
            }
        }
        self.next_expiry = next;
    }

    /// Hands every pending limit-change record (expired raises) to `f`, oldest first. The
    /// returned count is how many were dropped since the last drain because the log was full.
    pub fn drain_limit_changes(&mut self, mut f: impl FnMut(&LimitChange)) -> u64 {
        for c in self.changes.drain(..) {
            f(&c);
        }
        core::mem::take(&mut self.changes_dropped)
    }

    /// The hot and cold state of `acct`, if it is configured.
    fn account_mut(&mut self, acct: &Account) -> Option<(&mut AccountState, &mut AccountCold)> {
        let ai = self.account_index(acct)? as usize;
        Some((self.states.get_mut(ai)?, self.cold.get_mut(ai)?))
    }

    // ---- reconciliation -----------------------------------------------------------------------

    /// An order of `acct` for `qty` valued at `price` went to a venue. Returns false — and
    /// turns the account's kill switch on — when more orders or more notional have now been
    /// sent than were accepted from clients.
    pub fn note_sent(&mut self, acct: &Account, qty: Qty, price: Price) -> bool {
        let Some((st, cold)) = self.account_mut(acct) else {
            return false;
        };
        let recon = &mut cold.recon;
        recon.sent_orders += 1;
        recon.sent_raw = recon.sent_raw.saturating_add(raw_notional(price, qty));
        if recon.sent_orders > st.accepted_orders || recon.sent_raw > st.accepted_raw {
            st.killed = true;
            return false;
        }
        true
    }

    /// A venue reported an order of `acct` that the gateway never sent: the account's kill
    /// switch goes on. False when the account is unknown.
    pub fn note_venue_unmatched(&mut self, acct: &Account) -> bool {
        let Some((st, cold)) = self.account_mut(acct) else {
            return false;
        };
        cold.recon.venue_unmatched = cold.recon.venue_unmatched.saturating_add(1);
        st.killed = true;
        true
    }

    // ---- recovery ---------------------------------------------------------------------------

    /// Recovery: an order accepted before the restart is still open with `open` at its
    /// reserved price. Reserved without any check (the limits were checked when it was
    /// accepted; a limit lowered since then must not strand it).
    pub fn restore_open(
        &mut self,
        acct: &Account,
        symbol: &Symbol,
        side: Side,
        open: Reserved,
    ) -> Result<(), RiskError> {
        let (ai, si) = self.indices(acct, symbol)?;
        let Some(st) = self.states.get_mut(ai as usize) else {
            return Err(RiskError::UnknownAccount);
        };
        let raw = raw_notional(open.price, open.open_qty);
        st.open_raw = st.open_raw.saturating_add(raw);
        st.open_orders = st.open_orders.saturating_add(1);
        st.accepted_orders += 1;
        st.accepted_raw = st.accepted_raw.saturating_add(raw);
        let probe = self.positions.probe(ai, si);
        let pos = self
            .positions
            .claim(ai, si, probe)
            .ok_or(RiskError::PositionTableFull)?;
        add_open(pos, side, open.open_qty.0);
        Ok(())
    }

    /// Recovery: executions before the restart (`qty` on `side`, worth `notional`, which is
    /// [`crate::order::Order::filled_notional`]) move executed notional and the net position.
    pub fn restore_executed(
        &mut self,
        acct: &Account,
        symbol: &Symbol,
        side: Side,
        qty: Qty,
        notional: Notional,
    ) -> Result<(), RiskError> {
        let (ai, si) = self.indices(acct, symbol)?;
        let Some(st) = self.states.get_mut(ai as usize) else {
            return Err(RiskError::UnknownAccount);
        };
        st.executed_raw = st.executed_raw.saturating_add(notional.raw().abs());
        let probe = self.positions.probe(ai, si);
        let pos = self
            .positions
            .claim(ai, si, probe)
            .ok_or(RiskError::PositionTableFull)?;
        pos.net = if side.is_buy() {
            pos.net.saturating_add(qty.0)
        } else {
            pos.net.saturating_sub(qty.0)
        };
        Ok(())
    }

    // ---- queries ----------------------------------------------------------------------------

    pub fn limits(&self, acct: &Account) -> Option<&RiskLimits> {
        let i = self.account_index(acct)?;
        self.states.get(i as usize).map(|s| &s.limits)
    }

    /// Everything ops shows about an account (cold).
    pub fn account_view(&self, acct: &Account) -> Option<AccountView> {
        let i = self.account_index(acct)?;
        let cold = self.cold.get(i as usize)?;
        self.states.get(i as usize).map(|s| AccountView {
            limits: s.limits,
            base: cold.base,
            raise_until: s.raise_until,
            exposure: Exposure {
                open: Notional::from_raw(s.open_raw),
                executed: Notional::from_raw(s.executed_raw),
                open_orders: s.open_orders,
            },
            killed: s.killed,
            disabled: s.disabled,
            reconciliation: Reconciliation {
                accepted_orders: s.accepted_orders,
                accepted_raw: s.accepted_raw,
                ..cold.recon
            },
        })
    }

    pub fn is_global_killed(&self) -> bool {
        self.global_kill
    }

    /// True when the symbol's own kill switch is on (`None`: unknown symbol).
    pub fn is_symbol_killed(&self, symbol: &Symbol) -> Option<bool> {
        let i = self.symbol_index(symbol)?;
        self.syms.get(i as usize).map(|s| s.killed)
    }

    pub fn exposure(&self, acct: &Account) -> Option<Exposure> {
        let i = self.account_index(acct)?;
        self.states.get(i as usize).map(|s| Exposure {
            open: Notional::from_raw(s.open_raw),
            executed: Notional::from_raw(s.executed_raw),
            open_orders: s.open_orders,
        })
    }

    pub fn position(&self, acct: &Account, symbol: &Symbol) -> Option<Position> {
        let (ai, si) = self.indices(acct, symbol).ok()?;
        Some(self.positions.get(ai, si).unwrap_or_default())
    }

    /// Releases that did not match a reservation (more released than reserved): each one is an
    /// engine bookkeeping bug; the state was clamped at zero.
    pub fn anomalies(&self) -> u64 {
        self.anomalies
    }
}

// ---- one function per check ---------------------------------------------------------------------

#[inline]
fn check_enabled_and_rate(st: &mut AccountState, now: Nanos) -> Result<(), Reason> {
    if st.disabled {
        return refuse(Reason::AccountDisabled);
    }
    let lim = &st.limits;
    if now.saturating_sub(st.rate_window_start) >= lim.rate_period || now < st.rate_window_start {
        st.rate_window_start = now;
        st.rate_count = 0;
    }
    st.rate_count = st.rate_count.saturating_add(1);
    if st.rate_count > lim.max_msgs {
        return trip_rate_limit(st);
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn trip_rate_limit(st: &mut AccountState) -> Result<(), Reason> {
    st.disabled = true;
    Err(Reason::RateLimit {
        limit: st.limits.max_msgs,
        period: st.limits.rate_period,
    })
}

#[inline]
fn check_kills(global: bool, st: &AccountState) -> Result<(), Reason> {
    if global {
        return refuse(Reason::KilledGlobal);
    }
    if st.killed {
        return refuse(Reason::KilledAccount);
    }
    Ok(())
}

#[inline]
fn check_symbol(sym: &SymbolState) -> Result<(), Reason> {
    if sym.killed {
        return refuse(Reason::KilledSymbol);
    }
    if sym.restricted {
        return refuse(Reason::RestrictedSymbol);
    }
    Ok(())
}

#[inline]
fn check_order_kind(lim: &RiskLimits, ord_type: OrdType, tif: TimeInForce) -> Result<(), Reason> {
    if !lim.ord_types.contains(ord_type) {
        return refuse(Reason::OrdTypeNotAllowed { ord_type });
    }
    if !lim.tifs.contains(tif) {
        return refuse(Reason::TifNotAllowed { tif });
    }
    Ok(())
}

#[inline]
fn check_order_qty(lim: &RiskLimits, key: Option<&KeyCaps>, qty: Qty) -> Result<(), Reason> {
    if qty > lim.max_order_qty {
        return refuse(Reason::MaxOrderQty {
            limit: lim.max_order_qty,
            value: qty,
        });
    }
    if let Some(k) = key {
        if qty > k.max_order_qty {
            return refuse(Reason::KeyMaxOrderQty {
                limit: k.max_order_qty,
                value: qty,
            });
        }
    }
    Ok(())
}

/// The price the order is valued at: its limit price (inside the collar) or, for a market
/// order, the reference price. Both need a fresh reference price.
#[inline]
fn valuation_price(
    lim: &RiskLimits,
    sym: &SymbolState,
    ord_type: OrdType,
    price: Option<Price>,
    now: Nanos,
) -> Result<Price, Reason> {
    if !sym.has_reference {
        return refuse(Reason::ReferenceMissing);
    }
    let age = now.saturating_sub(sym.reference_at);
    if age > lim.reference_max_age && !sym.pinned {
        return refuse(Reason::ReferenceStale {
            max_age: lim.reference_max_age,
            age,
        });
    }
    let reference = sym.reference;
    match ord_type {
        OrdType::Market => Ok(reference),
        OrdType::Limit => {
            let Some(px) = price.filter(|p| p.0 > 0) else {
                return refuse(Reason::InvalidPrice);
            };
            check_collar(&lim.collar, reference, sym.tick_size, px)?;
            Ok(px)
        }
    }
}

#[inline]
fn check_collar(c: &Collar, reference: Price, tick: Price, px: Price) -> Result<(), Reason> {
    let r = i128::from(reference.0);
    // i64 when the product fits (every realistic price): no 128-bit division on the hot path.
    let by_bps = c.bps.map(|b| match reference.0.checked_mul(i64::from(b)) {
        Some(v) => i128::from(v / 10_000),
        None => r * i128::from(b) / 10_000,
    });
    let by_ticks = c.ticks.map(|t| i128::from(tick.0) * i128::from(t));
    // validate() guarantees one is set; with neither, the band is zero (fail closed).
    let band = match (by_bps, by_ticks) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => 0,
    };
    let low = r - band;
    let high = r + band;
    let p = i128::from(px.0);
    if p < low || p > high {
        return refuse(Reason::PriceCollar {
            low: Price(low.clamp(0, i128::from(i64::MAX)) as i64),
            high: Price(high.min(i128::from(i64::MAX)) as i64),
            value: px,
        });
    }
    Ok(())
}

#[inline]
fn check_order_notional(lim: &RiskLimits, key: Option<&KeyCaps>, raw: i128) -> Result<(), Reason> {
    if raw > lim.max_order_notional.raw() {
        return refuse(Reason::MaxOrderNotional {
            limit: lim.max_order_notional,
            value: Notional::from_raw_ceil(raw),
        });
    }
    if let Some(k) = key {
        if raw > k.max_order_notional.raw() {
            return refuse(Reason::KeyMaxOrderNotional {
                limit: k.max_order_notional,
                value: Notional::from_raw_ceil(raw),
            });
        }
    }
    Ok(())
}

#[inline]
fn check_open_orders(lim: &RiskLimits, open: u32) -> Result<(), Reason> {
    if open >= lim.max_open_orders {
        return refuse(Reason::MaxOpenOrders {
            limit: lim.max_open_orders,
            value: open.saturating_add(1),
        });
    }
    Ok(())
}

#[inline]
fn check_duplicate(lim: &RiskLimits, ring: &[RecentOrder], o: &RecentOrder) -> Result<(), Reason> {
    if lim.duplicate_window.0 == 0 {
        return Ok(());
    }
    if let Some(age) = find_duplicate(ring, o, lim.duplicate_window) {
        return refuse(Reason::DuplicateOrder {
            window: lim.duplicate_window,
            age,
        });
    }
    Ok(())
}

#[inline]
fn check_credit(lim: &RiskLimits, open: i128, executed: i128, add: i128) -> Result<(), Reason> {
    let total = open.saturating_add(executed).saturating_add(add);
    if total > lim.credit_limit.raw() {
        return refuse(Reason::CreditLimit {
            limit: lim.credit_limit,
            value: Notional::from_raw_ceil(total),
        });
    }
    Ok(())
}

/// Long: executed + working buys + this; short: working sells − executed + this.
#[inline]
fn check_position(lim: &RiskLimits, pos: &Position, side: Side, add: i128) -> Result<(), Reason> {
    let net = i128::from(pos.net);
    if side.is_buy() {
        let long = net + i128::from(pos.open_buy) + add;
        if long > i128::from(lim.max_long.0) {
            return refuse(Reason::LongPositionLimit {
                limit: lim.max_long,
                value: clamp_qty(long),
            });
        }
    } else {
        let short = i128::from(pos.open_sell) - net + add;
        if short > i128::from(lim.max_short.0) {
            return refuse(Reason::ShortPositionLimit {
                limit: lim.max_short,
                value: clamp_qty(short),
            });
        }
    }
    Ok(())
}

fn add_open(pos: &mut Position, side: Side, qty: i64) {
    if side.is_buy() {
        pos.open_buy = pos.open_buy.saturating_add(qty);
    } else {
        pos.open_sell = pos.open_sell.saturating_add(qty);
    }
}

/// Takes `qty` off the side's working quantity; false (and clamped at zero) if it was less.
fn release_open(pos: &mut Position, side: Side, qty: i64) -> bool {
    let open = if side.is_buy() {
        &mut pos.open_buy
    } else {
        &mut pos.open_sell
    };
    *open = open.saturating_sub(qty);
    if *open < 0 {
        *open = 0;
        return false;
    }
    true
}

#[cold]
#[inline(never)]
fn revert_raise(
    st: &mut AccountState,
    base: &RiskLimits,
    now: Nanos,
    log: &mut ArrayVec<LimitChange, CHANGE_LOG>,
    dropped: &mut u64,
    seq: &mut u64,
) {
    let before = st.limits;
    st.limits = *base;
    st.raise_until = None;
    *seq += 1;
    let change = LimitChange {
        seq: *seq,
        account: st.account,
        before,
        after: *base,
        reason: "temporary raise expired",
        at: now,
        expires_at: None,
    };
    if log.is_full() {
        log.remove(0);
        *dropped += 1;
    }
    log.push(change);
}

/// The hot state of an account stays within four cache lines.
const _: () = assert!(core::mem::size_of::<AccountState>() <= 256);

/// QTY_SCALE is what turns a 10^-12 raw notional into the 10^-8 [`Notional`] scale.
const _: () = assert!(QTY_SCALE == 10_000);

#[cfg(test)]
mod tests;
