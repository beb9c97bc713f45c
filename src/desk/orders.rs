//! HOT — client instructions on the desk: new orders, cancels, replaces, status and mass-cancel
//! requests, cancel-on-disconnect; and the venue answers that move an order's state. Every
//! refusal answers at once through the [`Outbox`] with a reason code and a text naming the
//! problem; nothing here allocates (texts are static or composed in stack buffers).

use std::mem;

use super::report::{cxl_rej_reason, ord_rej_reason, CancelRejectTo, Exec};
use super::venue::VenueRequest;
use super::{MassCancelReport, OrderDesk, Outbox};
use crate::handoff::Event;
use crate::model::{
    Account, ExecType, Nanos, OrdStatus, OrdType, OrderIdStr, OrderKey, Price, Qty, SessionId,
    Side, Symbol,
};
use crate::monitor::Counter;
use crate::order::{Order, Pending, TableError};
use crate::risk::Reason as RiskReason;
use crate::venue::VenueEvent;

/// A replace's new terms, as read from the client's message. The fields that may not change
/// are given as sent (`None`: absent), so the desk can say which one differs.
#[derive(Clone, Copy, Debug)]
pub struct ReplaceIntent<'a> {
    /// The replace's own ClOrdID, as sent.
    pub cl: &'a [u8],
    /// The order it replaces, as sent.
    pub orig: &'a [u8],
    /// New total quantity (positive).
    pub qty: Qty,
    /// New limit price (`None`: unchanged).
    pub price: Option<Price>,
    /// Side as sent: `Some(None)` for a value that names no side.
    pub side: Option<Option<Side>>,
    /// OrdType as sent: `Some(None)` for a value that names no type.
    pub ord_type: Option<Option<OrdType>>,
    pub symbol: Option<&'a [u8]>,
    pub account: Option<&'a [u8]>,
}

/// The session may not see or touch the order it asked about (its account is not granted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Denied;

/// A blank order of session `s`, to be filled from a message.
pub fn blank_order(s: SessionId, default_account: Account) -> Order {
    Order {
        live: true,
        ..Order::blank(s, default_account)
    }
}

impl OrderDesk {
    /// Sends an ExecutionReport about `order` to its session (and the drop copies of its
    /// account) and records it.
    pub(crate) fn send_exec(
        &mut self,
        out: &mut dyn Outbox,
        order: &Order,
        e: &Exec<'_>,
        now: Nanos,
    ) {
        self.send_exec_copy(out, order, e, true, now);
    }

    /// [`OrderDesk::send_exec`]; the drop copy of the order's account only when `copy`.
    #[inline]
    fn send_exec_copy(
        &mut self,
        out: &mut dyn Outbox,
        order: &Order,
        e: &Exec<'_>,
        copy: bool,
        now: Nanos,
    ) {
        if self.sessions.get(order.session.index()).is_none() {
            return; // a recovered order of a session no longer configured: no one to tell
        }
        out.exec(&self.orders, &self.sessions, order, e, copy, now);
        self.record_report(order, e, now);
    }

    /// An order refused before it entered the table (a bad field, a permission): audited as
    /// `OrderRejected`, answered with an ExecutionReport Rejected carrying `code` and `text`.
    /// The drop copy of the order's account sees it only when `copy` (false: the order named an
    /// account its key may not use, so that account's drop copy must not see it).
    #[cold]
    pub fn refuse(
        &mut self,
        out: &mut dyn Outbox,
        order: &Order,
        code: u32,
        text: &[u8],
        copy: bool,
        now: Nanos,
    ) {
        self.emit(Event::OrderRejected {
            session: order.session,
            reason: "order refused before routing",
            at: now,
        });
        self.reject_unrouted(out, order, code, text, copy, now);
    }

    /// A pre-trade risk refusal: ExecutionReport 39=8 with the check's OrdRejReason(103) and a
    /// Text naming the check, the limit and the value; an audit event.
    #[cold]
    #[inline(never)]
    pub(crate) fn reject_risk(
        &mut self,
        out: &mut dyn Outbox,
        order: &Order,
        reason: RiskReason,
        now: Nanos,
    ) {
        self.counters.inc(Counter::RiskRejects);
        self.emit(Event::RiskRejected {
            session: order.session,
            account: order.account,
            reason,
            at: now,
        });
        let mut text = [0u8; 128];
        let n = reason.write_text(&mut text);
        self.reject_unrouted(out, order, reason.ord_rej_reason(), &text[..n], true, now);
    }

    /// ExecutionReport Rejected for an order that never entered the table.
    fn reject_unrouted(
        &mut self,
        out: &mut dyn Outbox,
        order: &Order,
        code: u32,
        text: &[u8],
        copy: bool,
        now: Nanos,
    ) {
        self.counters.inc(Counter::OrdersRejected);
        let mut o = *order;
        o.status = OrdStatus::Rejected;
        // Not in the table: no OrderID. ExecID `NONE.<n>` stays unique through this counter.
        self.refusals += 1;
        o.exec_seq = self.refusals as u32;
        o.order_id = 0;
        let cl = o.cl_ord_id;
        let e = Exec {
            rej_reason: Some(code),
            text: Some(text),
            ..Exec::report(
                ExecType::Rejected,
                OrdStatus::Rejected,
                if cl.is_empty() {
                    b"NONE"
                } else {
                    cl.as_bytes()
                },
            )
        };
        self.send_exec_copy(out, &o, &e, copy, now);
    }

    /// A refusal of the desk's own (static text).
    #[cold]
    fn refuse_static(
        &mut self,
        out: &mut dyn Outbox,
        order: &Order,
        code: u32,
        text: &'static [u8],
        now: Nanos,
    ) {
        self.refuse(out, order, code, text, true, now);
    }

    /// A new order, read whole into `order` (its session, ClOrdID, account — the session's
    /// default when the message named none — and terms); `ex_destination` is the venue the
    /// client asked for, if any. Checks the clock, routes, checks for a duplicate ClOrdID and
    /// pre-trade risk, journals the order and sends it to its venue.
    pub fn new_order(
        &mut self,
        out: &mut dyn Outbox,
        mut order: Order,
        ex_destination: Option<&[u8]>,
        now: Nanos,
    ) {
        let s = order.session;
        let Some(slot) = self.sessions.get(s.index()) else {
            return;
        };
        let tag = slot.tag;
        let owner = slot.grants.key_id;
        order.received_at = now;
        if let Some(text) = self.clock_halted() {
            return self.refuse_static(out, &order, ord_rej_reason::OTHER, text, now);
        }
        if let Some(text) = self.audit_halted() {
            return self.refuse_static(out, &order, ord_rej_reason::OTHER, text, now);
        }
        let venue = match self
            .router
            .route(ex_destination, &order.symbol, &order.account)
        {
            Ok((v, reason)) => {
                order.detail.route = Some(reason);
                v
            }
            Err(_) => {
                return self.refuse_static(
                    out,
                    &order,
                    ord_rej_reason::BROKER_OPTION,
                    b"unknown ExDestination(100)",
                    now,
                )
            }
        };
        order.venue = venue;
        if !self.venues.get(venue.index()).is_some_and(|v| v.up) {
            self.counters.inc(Counter::VenueDownRejects);
            return self.refuse_static(
                out,
                &order,
                ord_rej_reason::EXCHANGE_CLOSED,
                b"venue is down: order not routed",
                now,
            );
        }
        if self.orders.contains(order.session, &order.cl_ord_id) {
            return self.refuse_static(
                out,
                &order,
                ord_rej_reason::DUPLICATE_ORDER,
                b"duplicate ClOrdID(11) on this session",
                now,
            );
        }
        // Pre-trade risk (15c3-5 / RTS 6): the last check before the order is stored and sent.
        if let Err(reason) = self.admit_new(&mut order, now) {
            return self.reject_risk(out, &order, reason, now);
        }
        self.stamp_decision(&mut order, now);
        order.order_id = self.orders.next_order_id();
        let key = match self.orders.insert(order) {
            Ok(k) => {
                self.orders.set_extras(k, owner, out.context());
                k
            }
            Err(TableError::DuplicateClOrdId) => {
                self.risk_release(&order);
                return self.refuse_static(
                    out,
                    &order,
                    ord_rej_reason::DUPLICATE_ORDER,
                    b"duplicate ClOrdID(11) on this session",
                    now,
                );
            }
            Err(TableError::Full) => {
                self.counters.inc(Counter::OrderTableFull);
                self.risk_release(&order);
                return self.refuse_static(
                    out,
                    &order,
                    ord_rej_reason::OTHER,
                    b"gateway order table full",
                    now,
                );
            }
        };
        // Journaled before routing: after a crash, every order a venue may hold is known.
        if self.journal.record(key, &order, tag).is_err() {
            self.counters.inc(Counter::JournalErrors);
            self.emit(Event::JournalError { key, at: now });
            if let Some(o) = self.orders.get_mut(key) {
                o.status = OrdStatus::Rejected;
            }
            self.risk_release(&order);
            self.orders.finish(key);
            return self.refuse_static(
                out,
                &order,
                ord_rej_reason::OTHER,
                b"gateway journal unavailable: order not routed",
                now,
            );
        }
        self.counters.inc(Counter::OrdersAccepted);
        self.record_new(key);
        self.submit(out, key, now);
    }

    /// Sends order `key` to its venue and applies what the venue answers.
    fn submit(&mut self, out: &mut dyn Outbox, key: OrderKey, now: Nanos) {
        self.venue_request(out, key, VenueRequest::New, now);
    }

    /// Recovery: an open order goes back to its in-process venue (whose book died with the
    /// process). Venues across a network keep their own state and are reconciled by status.
    pub(crate) fn rearm_at_venue(&mut self, out: &mut dyn Outbox, key: OrderKey, now: Nanos) {
        let Some(o) = self.orders.get(key) else {
            return;
        };
        if self
            .venues
            .get(o.venue.index())
            .is_some_and(|v| v.sim.is_some())
        {
            self.submit(out, key, now);
        }
    }

    pub(crate) fn venue_cancel(&mut self, out: &mut dyn Outbox, key: OrderKey, now: Nanos) {
        self.venue_request(out, key, VenueRequest::Cancel, now);
    }

    /// The venue refused order `key`: ExecutionReport Rejected with the venue's reason.
    pub fn rejected_at_venue(
        &mut self,
        out: &mut dyn Outbox,
        key: OrderKey,
        text: &[u8],
        now: Nanos,
    ) {
        let Some(o) = self.orders.get_mut(key) else {
            return;
        };
        let before = *o;
        o.status = OrdStatus::Rejected;
        o.exec_seq += 1;
        let snapshot = *o;
        if before.is_open() {
            self.risk_release(&before);
        }
        self.orders.finish(key);
        self.journal_later(key);
        self.counters.inc(Counter::OrdersRejected);
        let cl = snapshot.cl_ord_id;
        self.send_exec(
            out,
            &snapshot,
            &Exec {
                rej_reason: Some(ord_rej_reason::BROKER_OPTION),
                text: Some(text),
                ..Exec::report(ExecType::Rejected, OrdStatus::Rejected, cl.as_bytes())
            },
            now,
        );
    }

    fn journal(&mut self, key: OrderKey, now: Nanos) {
        let Some(o) = self.orders.get(key) else {
            return;
        };
        let tag = self.sessions.get(o.session.index()).map_or(0, |s| s.tag);
        if self.journal.record(key, o, tag).is_err() {
            self.counters.inc(Counter::JournalErrors);
            self.emit(Event::JournalError { key, at: now });
        }
    }

    /// Notes that `key` changed; its snapshot is journaled at the end of the event batch.
    pub(crate) fn journal_later(&mut self, key: OrderKey) {
        if !self.journal_keys.contains(&key)
            && self.journal_keys.len() < self.journal_keys.capacity()
        {
            self.journal_keys.push(key);
        } else if !self.journal_keys.contains(&key) {
            self.journal(key, Nanos::ZERO); // batch list full: write through
        }
    }

    /// Applies venue answers in order, then journals one snapshot per order they changed.
    ///
    /// # Ordering
    /// The reports are handed to the outbox while the events are applied, but nothing reaches
    /// a socket before the shell flushes at the end of the duty cycle — after this function
    /// journaled every change. So no client ever sees a report whose order state a crash could
    /// lose, and an order accepted and filled in one venue answer costs one snapshot, not two.
    pub fn apply_venue_events(&mut self, out: &mut dyn Outbox, evs: &[VenueEvent], now: Nanos) {
        for e in evs {
            self.apply_venue_event(out, *e, now);
        }
        self.journal_pending(now);
    }

    /// Journals the orders noted by [`OrderDesk::journal_later`], one snapshot each.
    pub(crate) fn journal_pending(&mut self, now: Nanos) {
        let mut keys = std::mem::take(&mut self.journal_keys);
        for &key in &keys {
            self.journal(key, now);
        }
        keys.clear();
        self.journal_keys = keys;
    }

    fn apply_venue_event(&mut self, out: &mut dyn Outbox, ev: VenueEvent, now: Nanos) {
        self.stamp_venue(&ev);
        match ev {
            VenueEvent::Accepted {
                key,
                venue_order_id,
            } => {
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                o.venue_order_id = venue_order_id;
                if o.status != OrdStatus::PendingNew {
                    return; // re-armed after recovery: the client already knows
                }
                o.status = OrdStatus::New;
                o.exec_seq += 1;
                let snapshot = *o;
                self.journal_later(key);
                let cl = snapshot.cl_ord_id;
                self.send_exec(
                    out,
                    &snapshot,
                    &Exec::report(ExecType::New, OrdStatus::New, cl.as_bytes()),
                    now,
                );
            }
            VenueEvent::Rejected { key, reason } => {
                self.rejected_at_venue(out, key, reason.as_bytes(), now)
            }
            VenueEvent::Fill {
                key, qty, price, ..
            } => {
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                if o.status == OrdStatus::PendingNew {
                    o.status = OrdStatus::New;
                }
                let was_open = o.is_open();
                o.apply_fill(qty, price);
                o.exec_seq += 1;
                let snapshot = *o;
                if was_open {
                    self.risk_fill(&snapshot, qty, price, now);
                }
                if snapshot.status == OrdStatus::Filled {
                    self.orders.finish(key);
                }
                self.journal_later(key);
                self.counters.inc(Counter::Fills);
                let cl = snapshot.cl_ord_id;
                self.send_exec(
                    out,
                    &snapshot,
                    &Exec {
                        last: Some((qty, price)),
                        ..Exec::report(ExecType::Trade, snapshot.status, cl.as_bytes())
                    },
                    now,
                );
            }
            VenueEvent::Canceled { key, .. } => {
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                let before = *o;
                let pending = mem::replace(&mut o.pending, Pending::None);
                o.status = OrdStatus::Canceled;
                o.exec_seq += 1;
                let (report_cl, orig) = match pending {
                    Pending::Cancel { cl_ord_id } => {
                        o.orig_cl_ord_id = o.cl_ord_id;
                        o.cl_ord_id = cl_ord_id;
                        (cl_ord_id, Some(o.orig_cl_ord_id))
                    }
                    _ => (o.cl_ord_id, None),
                };
                let snapshot = *o;
                if before.is_open() {
                    self.risk_release(&before);
                }
                self.orders.finish(key);
                self.journal_later(key);
                let orig_bytes = orig.as_ref().map(|x| x.as_bytes());
                self.send_exec(
                    out,
                    &snapshot,
                    &Exec {
                        orig_cl_ord_id: orig_bytes,
                        ..Exec::report(
                            ExecType::Canceled,
                            OrdStatus::Canceled,
                            report_cl.as_bytes(),
                        )
                    },
                    now,
                );
            }
            VenueEvent::Replaced {
                key, qty, price, ..
            } => {
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                let Pending::Replace { cl_ord_id, .. } =
                    mem::replace(&mut o.pending, Pending::None)
                else {
                    return;
                };
                o.orig_cl_ord_id = o.cl_ord_id;
                o.cl_ord_id = cl_ord_id;
                o.qty = qty;
                o.price = price;
                o.status = o.working_status();
                o.exec_seq += 1;
                let snapshot = *o;
                if snapshot.status == OrdStatus::Filled {
                    // Replaced down to what was already filled: nothing is open any more.
                    self.risk_release(&snapshot);
                    self.orders.finish(key);
                }
                self.journal_later(key);
                let orig = snapshot.orig_cl_ord_id;
                self.send_exec(
                    out,
                    &snapshot,
                    &Exec {
                        orig_cl_ord_id: Some(orig.as_bytes()),
                        ..Exec::report(ExecType::Replaced, snapshot.status, cl_ord_id.as_bytes())
                    },
                    now,
                );
            }
            VenueEvent::CancelRejected { key, reason }
            | VenueEvent::ReplaceRejected { key, reason, .. } => {
                let to = if matches!(ev, VenueEvent::CancelRejected { .. }) {
                    CancelRejectTo::Cancel
                } else {
                    CancelRejectTo::Replace
                };
                let Some(o) = self.orders.get_mut(key) else {
                    return;
                };
                let before = *o;
                let cl = match mem::replace(&mut o.pending, Pending::None) {
                    Pending::Cancel { cl_ord_id } | Pending::Replace { cl_ord_id, .. } => cl_ord_id,
                    Pending::None => return,
                };
                if let Pending::Replace {
                    reserved_before, ..
                } = before.pending
                {
                    o.reserved_price = reserved_before;
                    self.risk_undo_replace(&before);
                    self.journal_later(key);
                }
                let Some(o) = self.orders.get(key) else {
                    return;
                };
                let snapshot = *o;
                let code = if snapshot.status.is_terminal() {
                    cxl_rej_reason::TOO_LATE_TO_CANCEL
                } else {
                    cxl_rej_reason::OTHER
                };
                self.cancel_reject(
                    out,
                    snapshot.session,
                    Some(&snapshot),
                    cl.as_bytes(),
                    snapshot.cl_ord_id.as_bytes(),
                    to,
                    code,
                    reason.as_bytes(),
                    now,
                );
            }
        }
    }

    /// An OrderCancelReject to session `s`, counted and (about a known order) recorded.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub fn cancel_reject(
        &mut self,
        out: &mut dyn Outbox,
        session: SessionId,
        order: Option<&Order>,
        cl: &[u8],
        orig: &[u8],
        to: CancelRejectTo,
        reason: u32,
        text: &[u8],
        now: Nanos,
    ) {
        self.counters.inc(Counter::CancelRejects);
        out.cancel_reject(
            &self.orders,
            session,
            order,
            cl,
            orig,
            to,
            reason,
            text,
            now,
        );
        if let Some(o) = order {
            self.record_cancel_reject(o, cl, to, reason, text);
        }
    }

    /// Common checks of a cancel or replace: the target order exists on this session, the
    /// session may manage it, it is open and has nothing pending; the new ClOrdID is fresh.
    /// Returns the key, or answers with an OrderCancelReject and returns `None`.
    fn target_order(
        &mut self,
        out: &mut dyn Outbox,
        s: SessionId,
        cl_raw: &[u8],
        orig_raw: &[u8],
        to: CancelRejectTo,
        now: Nanos,
    ) -> Option<(OrderKey, OrderIdStr)> {
        let session = s;
        let (Some(cl), Some(orig)) = (
            OrderIdStr::new(cl_raw).filter(|c| !c.is_empty()),
            OrderIdStr::new(orig_raw).filter(|c| !c.is_empty()),
        ) else {
            self.cancel_reject(
                out,
                session,
                None,
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::OTHER,
                b"ClOrdID(11) and OrigClOrdID(41) are required (at most 40 characters)",
                now,
            );
            return None;
        };
        let Some(key) = self.orders.lookup(session, &orig) else {
            self.cancel_reject(
                out,
                session,
                None,
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::UNKNOWN_ORDER,
                b"unknown order",
                now,
            );
            return None;
        };
        let order = *self.orders.get(key)?;
        // Checked against the account the order was accepted under, not the message's: a
        // cancel needs the account granted or the order to be this key's own (a key that lost
        // the account may still pull its orders); a replace needs the account granted.
        let owner = self
            .orders
            .extras(key)
            .map_or(crate::auth::KeyId::EMPTY, |e| e.owner);
        let permitted = self.sessions.get(s.index()).is_some_and(|slot| match to {
            CancelRejectTo::Cancel => slot.grants.may_manage(&order.account, &owner),
            CancelRejectTo::Replace => slot.grants.allows_account(order.account.as_bytes()),
        });
        if !permitted {
            self.account_denied(out, s, cl_raw, orig_raw, to, now);
            return None;
        }
        if !order.is_open() {
            self.cancel_reject(
                out,
                session,
                Some(&order),
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::TOO_LATE_TO_CANCEL,
                b"order is no longer open",
                now,
            );
            return None;
        }
        if order.pending != Pending::None {
            self.cancel_reject(
                out,
                session,
                Some(&order),
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::ALREADY_PENDING,
                b"a cancel or replace is already pending",
                now,
            );
            return None;
        }
        if self.orders.alias(session, cl, key).is_err() {
            self.cancel_reject(
                out,
                session,
                Some(&order),
                cl_raw,
                orig_raw,
                to,
                cxl_rej_reason::DUPLICATE_CL_ORD_ID,
                b"duplicate ClOrdID(11) on this session",
                now,
            );
            return None;
        }
        Some((key, cl))
    }

    /// A cancel or replace of an order in an account the key may not use: OrderCancelReject
    /// `not permitted: account` without the order's details; audited as `PermissionDenied`.
    #[cold]
    fn account_denied(
        &mut self,
        out: &mut dyn Outbox,
        s: SessionId,
        cl: &[u8],
        orig: &[u8],
        to: CancelRejectTo,
        now: Nanos,
    ) {
        self.counters.inc(Counter::PermissionDenied);
        self.counters.inc(Counter::AccountDenied);
        self.emit(Event::PermissionDenied {
            session: s,
            permission: "account",
            at: now,
        });
        self.cancel_reject(
            out,
            s,
            None,
            cl,
            orig,
            to,
            cxl_rej_reason::OTHER,
            b"not permitted: account",
            now,
        );
    }

    /// A cancel of the order `orig` (the session's ClOrdID for it) under the new ClOrdID `cl`.
    pub fn cancel(
        &mut self,
        out: &mut dyn Outbox,
        s: SessionId,
        cl: &[u8],
        orig: &[u8],
        now: Nanos,
    ) {
        self.counters.inc(Counter::CancelsReceived);
        let Some((key, cl)) = self.target_order(out, s, cl, orig, CancelRejectTo::Cancel, now)
        else {
            return;
        };
        if let Some(o) = self.orders.get_mut(key) {
            o.pending = Pending::Cancel { cl_ord_id: cl };
        }
        self.orders.set_routing(key, out.context());
        self.record_request(key, now);
        self.venue_cancel(out, key, now);
    }

    /// A replace (the new terms already read; the shell refused malformed quantities and
    /// prices with [`OrderDesk::cancel_reject`]).
    pub fn replace(
        &mut self,
        out: &mut dyn Outbox,
        s: SessionId,
        r: &ReplaceIntent<'_>,
        now: Nanos,
    ) {
        let session = s;
        let Some((key, cl)) = self.target_order(out, s, r.cl, r.orig, CancelRejectTo::Replace, now)
        else {
            return;
        };
        let Some(order) = self.orders.get(key).copied() else {
            return;
        };
        let side_ok = r.side.is_none_or(|v| v == Some(order.side));
        let type_ok = r.ord_type.is_none_or(|v| v == Some(order.ord_type));
        let symbol_ok = r.symbol.is_none_or(|v| v == order.symbol.as_bytes());
        let account_ok = r.account.is_none_or(|v| v == order.account.as_bytes());
        let qty = r.qty;
        let price = if order.ord_type == OrdType::Limit {
            r.price.or(order.price)
        } else {
            None
        };
        let problem: Option<&[u8]> = if !side_ok {
            Some(b"Side(54) cannot change on a replace")
        } else if !type_ok {
            Some(b"OrdType(40) cannot change on a replace")
        } else if !symbol_ok {
            Some(b"Symbol(55) cannot change on a replace")
        } else if !account_ok {
            Some(b"Account(1) cannot change on a replace")
        } else if price.is_some_and(|p| p.0 <= 0) {
            Some(b"Price(44) must be positive")
        } else if qty.0 <= order.cum_qty.0 {
            Some(b"OrderQty(38) must exceed the quantity already filled")
        } else {
            // A well-formed replace still waits while the audit trail fails closed.
            self.audit_halted()
        };
        if let Some(text) = problem {
            return self.cancel_reject(
                out,
                session,
                Some(&order),
                cl.as_bytes(),
                r.orig,
                CancelRejectTo::Replace,
                cxl_rej_reason::OTHER,
                text,
                now,
            );
        }
        let reserved_before = order.reserved_price;
        let reserved = match self.admit_replace(&order, qty, price, now) {
            Ok(p) => p,
            Err(reason) => {
                self.counters.inc(Counter::RiskRejects);
                self.emit(Event::RiskRejected {
                    session: order.session,
                    account: order.account,
                    reason,
                    at: now,
                });
                let mut text = [0u8; 128];
                let n = reason.write_text(&mut text);
                return self.cancel_reject(
                    out,
                    session,
                    Some(&order),
                    cl.as_bytes(),
                    r.orig,
                    CancelRejectTo::Replace,
                    cxl_rej_reason::OTHER,
                    &text[..n],
                    now,
                );
            }
        };
        self.orders.set_routing(key, out.context());
        if let Some(o) = self.orders.get_mut(key) {
            o.reserved_price = reserved;
            o.pending = Pending::Replace {
                cl_ord_id: cl,
                qty,
                price,
                reserved_before,
            };
        }
        self.record_request(key, now);
        self.venue_request(out, key, VenueRequest::Replace { qty, price }, now);
    }

    /// A status request for the session's order `cl`. An unknown order is answered with a
    /// status report Rejected built on `asked` (the request's own fields). `Err(Denied)`: the
    /// order exists but in an account the session may not see; the shell answers that.
    pub fn status(
        &mut self,
        out: &mut dyn Outbox,
        s: SessionId,
        cl: &[u8],
        asked: &Order,
        now: Nanos,
    ) -> Result<(), Denied> {
        let session = s;
        let key = OrderIdStr::new(cl).and_then(|c| self.orders.lookup(session, &c));
        let found = key.and_then(|k| self.orders.get(k).copied());
        let owner = key
            .and_then(|k| self.orders.extras(k))
            .map_or(crate::auth::KeyId::EMPTY, |e| e.owner);
        match found {
            Some(o) => {
                let permitted = self
                    .sessions
                    .get(s.index())
                    .is_some_and(|slot| slot.grants.may_manage(&o.account, &owner));
                if !permitted {
                    return Err(Denied);
                }
                let cl = o.cl_ord_id;
                self.send_exec(
                    out,
                    &o,
                    &Exec::report(ExecType::OrderStatus, o.status, cl.as_bytes()),
                    now,
                );
            }
            None => {
                let mut o = *asked;
                o.status = OrdStatus::Rejected;
                let cl = if cl.is_empty() {
                    b"NONE".as_slice()
                } else {
                    cl
                };
                self.send_exec(
                    out,
                    &o,
                    &Exec {
                        rej_reason: Some(ord_rej_reason::UNKNOWN_ORDER),
                        text: Some(b"unknown order"),
                        ..Exec::report(ExecType::OrderStatus, OrdStatus::Rejected, cl)
                    },
                    now,
                );
            }
        }
        Ok(())
    }

    /// A mass cancel: `request_type` 7 cancels every open order of the session the key may
    /// manage, 1 those in `symbol`; anything else is refused in the report.
    pub fn mass_cancel(
        &mut self,
        out: &mut dyn Outbox,
        s: SessionId,
        cl: &[u8],
        request_type: u8,
        symbol: Option<Symbol>,
        now: Nanos,
    ) {
        self.counters.inc(Counter::MassCancels);
        let session = s;
        let accepted = match request_type {
            b'7' => true,
            b'1' => symbol.is_some(),
            _ => false,
        };
        let mut keys = mem::take(&mut self.keys);
        // Only orders the key may manage (their account granted, or its own): a key that shares
        // a session with another key's orders reaches them only through a grant.
        let grants = self.sessions.get(s.index()).map(|slot| &slot.grants);
        let orders = &self.orders;
        if let (true, Some(g)) = (accepted, grants) {
            orders.open_orders(&mut keys, |o| {
                o.session == session
                    && (request_type == b'7' || Some(o.symbol) == symbol)
                    && g.may_manage(
                        &o.account,
                        &orders
                            .extras_of(o)
                            .map_or(crate::auth::KeyId::EMPTY, |e| e.owner),
                    )
            });
        } else {
            keys.clear();
        }
        self.mass_report_id += 1;
        let text: Option<&[u8]> = if accepted {
            None
        } else {
            Some(b"MassCancelRequestType(530) must be 1 (by Symbol, with Symbol(55)) or 7 (all orders)")
        };
        let report = MassCancelReport {
            cl_ord_id: cl,
            report_id: self.mass_report_id,
            request_type,
            accepted,
            affected: keys.len() as u64,
            text,
        };
        out.mass_cancel_report(session, &report, now);
        for &key in &keys {
            self.venue_cancel(out, key, now);
        }
        self.keys = keys;
    }

    /// Cancel-on-disconnect: every open order of session `s` is cancelled at its venue. The
    /// reports go to the session's store and are resent when it logs on again.
    #[cold]
    pub fn cancel_session_orders(&mut self, out: &mut dyn Outbox, s: SessionId, now: Nanos) {
        let session = s;
        let mut keys = mem::take(&mut self.keys);
        self.orders.open_orders(&mut keys, |o| {
            o.session == session && o.pending == Pending::None
        });
        let n = keys.len();
        for &key in &keys {
            self.venue_cancel(out, key, now);
        }
        self.keys = keys;
        if n > 0 {
            self.counters.add(Counter::CancelOnDisconnect, n as u64);
            self.emit(Event::CanceledOnDisconnect {
                session,
                orders: n as u32,
                at: now,
            });
        }
    }

    /// Rebuilds the order table and the risk state from the journal and re-arms open orders at
    /// in-process venues (whose books died with the process). Cold: runs once at start.
    pub fn recover(&mut self, out: &mut dyn Outbox, now: Nanos) {
        let tags: Vec<u64> = self.sessions.iter().map(|s| s.tag).collect();
        let mut restored = Vec::new();
        // The newest snapshot of every order ever journaled: executed notional and positions.
        let mut executions: std::collections::HashMap<u64, (Order, i128)> =
            std::collections::HashMap::new();
        for (key, tag, mut order) in self.journal.replay() {
            order.session = match tags.iter().position(|t| *t == tag) {
                Some(i) => SessionId::of(i),
                None => SessionId::NONE, // session no longer configured: kept for the record
            };
            executions.insert(order.order_id, (order, order.filled_notional));
            restored.push((key, order));
        }
        for (key, order) in restored {
            self.orders.restore(key, order);
        }
        self.orders.finish_restore();
        let executions: Vec<_> = executions.into_values().collect();
        self.restore_risk(&executions);
        let mut keys = Vec::new();
        for k in 0..self.orders.capacity() as u32 {
            if let Some(o) = self.orders.get(OrderKey(k)) {
                if o.is_open() {
                    keys.push(OrderKey(k));
                }
            }
        }
        for key in keys {
            self.rearm_at_venue(out, key, now);
        }
    }
}
