//! HOT — the desk's side of pre-trade risk: the checks of new orders and replaces, the
//! accounting of every venue answer (fills, cancels, rejects, replace rejects), reference
//! prices from venues, reconciliation, and the control requests (kill, unkill, enable, limits,
//! show) applied between messages.
//!
//! The per-order functions neither allocate nor lock; control requests are cold.

use std::mem;

use super::{OrderDesk, Outbox};
use crate::handoff::{ControlCall, ControlReply, ControlRequest, Event, KillTarget};
use crate::model::{Nanos, OrdType, Price, Qty, SessionId, Symbol};
use crate::monitor::Counter;
use crate::order::{Order, Pending};
use crate::risk::{
    BuildError, Fill, KillScope, LimitName, LimitsSpec, NewOrderView, Reason, ReplaceView,
    Reserved, RiskLimits,
};

/// The open quantity the risk core holds reserved for `o`: a pending replace reserved its new
/// quantity at once.
fn reserved_open(o: &Order) -> Qty {
    let qty = match o.pending {
        Pending::Replace { qty, .. } => qty,
        _ => o.qty,
    };
    Qty((qty.0 - o.cum_qty.0).max(0))
}

/// `changes` laid over `base`: each limit set in `changes` replaces the base's.
fn overlay(base: &RiskLimits, changes: &LimitsSpec) -> Result<RiskLimits, LimitName> {
    let b = LimitsSpec::from(*base);
    let collar_changed = changes.collar_bps.is_some() || changes.collar_ticks.is_some();
    let merged = LimitsSpec {
        max_order_qty: changes.max_order_qty.or(b.max_order_qty),
        max_order_notional: changes.max_order_notional.or(b.max_order_notional),
        // A collar is set as a whole: one part given replaces both.
        collar_bps: if collar_changed {
            changes.collar_bps
        } else {
            b.collar_bps
        },
        collar_ticks: if collar_changed {
            changes.collar_ticks
        } else {
            b.collar_ticks
        },
        reference_max_age: changes.reference_max_age.or(b.reference_max_age),
        credit_limit: changes.credit_limit.or(b.credit_limit),
        max_long: changes.max_long.or(b.max_long),
        max_short: changes.max_short.or(b.max_short),
        max_open_orders: changes.max_open_orders.or(b.max_open_orders),
        ord_types: changes.ord_types.or(b.ord_types),
        tifs: changes.tifs.or(b.tifs),
        duplicate_window: changes.duplicate_window.or(b.duplicate_window),
        max_msgs: changes.max_msgs.or(b.max_msgs),
        rate_period: changes.rate_period.or(b.rate_period),
    };
    // Every field is set (the base had them all): build() only validates.
    merged
        .build(crate::model::Account::EMPTY)
        .map_err(|e| match e {
            BuildError::MissingLimit { limit, .. } | BuildError::InvalidLimit { limit, .. } => {
                limit
            }
            _ => LimitName::MaxOrderQty,
        })
}

/// The refusal of a limit change that would set `l` to a value that cannot be meant.
fn invalid_limit(l: LimitName) -> &'static str {
    match l {
        LimitName::MaxOrderQty => "invalid max_order_qty: must be > 0",
        LimitName::MaxOrderNotional => "invalid max_order_notional: must be > 0",
        LimitName::Collar => "invalid collar: collar_bps or collar_ticks needed",
        LimitName::ReferenceMaxAge => "invalid reference_max_age_ms: must be > 0",
        LimitName::CreditLimit => "invalid credit_limit: must be >= 0",
        LimitName::MaxLong => "invalid max_long: must be >= 0",
        LimitName::MaxShort => "invalid max_short: must be >= 0",
        LimitName::MaxOpenOrders => "invalid max_open_orders",
        LimitName::OrdTypes => "invalid ord_types",
        LimitName::Tifs => "invalid time_in_force",
        LimitName::DuplicateWindow => "invalid duplicate_window_ms",
        LimitName::MaxMsgs => "invalid max_msgs: must be > 0",
        LimitName::RatePeriod => "invalid rate_period_ms: must be > 0",
    }
}

impl OrderDesk {
    /// The first check of every new order and replace: the kill switch of the key whose session
    /// sends it (the account, symbol and global switches are the risk core's).
    #[inline]
    fn key_alive(&self, order: &Order) -> Result<(), Reason> {
        match self.sessions.get(order.session.index()) {
            Some(slot) if slot.killed => Err(Reason::KilledKey),
            _ => Ok(()),
        }
    }

    /// Checks a new order against the kill switch of its key and the risk core; on accept the
    /// order carries the price its notional was reserved at.
    #[inline]
    pub(crate) fn admit_new(&mut self, order: &mut Order, now: Nanos) -> Result<(), Reason> {
        self.key_alive(order)?;
        let view = NewOrderView {
            key: order.session.0,
            symbol: order.symbol,
            side: order.side,
            ord_type: order.ord_type,
            tif: order.tif,
            qty: order.qty,
            price: order.price,
        };
        let r = self.risk.admit_new(&order.account, &view, now)?;
        order.reserved_price = r.price;
        Ok(())
    }

    /// Checks a replace of `order` to `qty` at `price`; on accept the new terms are reserved
    /// and the new reserved price is returned.
    pub(crate) fn admit_replace(
        &mut self,
        order: &Order,
        qty: Qty,
        price: Option<Price>,
        now: Nanos,
    ) -> Result<Price, Reason> {
        self.key_alive(order)?;
        let view = ReplaceView {
            key: order.session.0,
            symbol: order.symbol,
            side: order.side,
            ord_type: order.ord_type,
            tif: order.tif,
            new_order_qty: qty,
            new_open_qty: Qty(qty.0 - order.cum_qty.0),
            new_price: price,
            old: Reserved {
                open_qty: reserved_open(order),
                price: order.reserved_price,
            },
        };
        self.risk
            .admit_replace(&order.account, &view, now)
            .map(|r| r.price)
    }

    /// `o` (its state before the change) is no longer open: cancelled, expired or rejected.
    #[inline]
    pub(crate) fn risk_release(&mut self, o: &Order) {
        let _ = self.risk.on_cancel(
            &o.account,
            &o.symbol,
            o.side,
            reserved_open(o),
            o.reserved_price,
        );
    }

    /// A fill of `qty` at `price`; `after` is the order with the fill applied. The fill price
    /// is the symbol's newest reference price.
    #[inline]
    pub(crate) fn risk_fill(&mut self, after: &Order, qty: Qty, price: Price, now: Nanos) {
        let f = Fill {
            symbol: after.symbol,
            side: after.side,
            qty,
            price,
            reserved_price: after.reserved_price,
            done: !after.is_open(),
        };
        let _ = self.risk.on_fill(&after.account, &f);
        let _ = self.risk.set_reference(&after.symbol, price, now);
    }

    /// The venue refused a replace the risk core had accepted: the old terms are reserved
    /// again. `before` is the order with the replace still pending.
    pub(crate) fn risk_undo_replace(&mut self, before: &Order) {
        let Pending::Replace {
            reserved_before, ..
        } = before.pending
        else {
            return;
        };
        let from = Reserved {
            open_qty: reserved_open(before),
            price: before.reserved_price,
        };
        let to = Reserved {
            open_qty: Qty((before.qty.0 - before.cum_qty.0).max(0)),
            price: reserved_before,
        };
        let _ = self
            .risk
            .undo_replace(&before.account, &before.symbol, before.side, from, to);
    }

    /// The simulated venue's last trade (or book mid) for `symbol` becomes the reference when
    /// it changed: an unchanged price is no new information and must not look fresh (fills
    /// refresh it in [`OrderDesk::risk_fill`]).
    #[inline]
    pub(crate) fn reference_from_sim(&mut self, symbol: &Symbol, price: Option<Price>, now: Nanos) {
        if let Some(p) = price {
            if self.risk.reference(symbol).map(|r| r.0) != Some(p) {
                let _ = self.risk.set_reference(symbol, p, now);
            }
        }
    }

    /// A new order of `o` went to its venue. A mismatch with what was accepted from clients
    /// trips the account's kill switch.
    #[inline]
    pub(crate) fn reconcile_sent(&mut self, out: &mut dyn Outbox, o: &Order, now: Nanos) {
        let price = match (o.ord_type, o.price) {
            (OrdType::Limit, Some(p)) => p,
            _ => o.reserved_price,
        };
        if !self.risk.note_sent(&o.account, o.leaves(), price) {
            self.reconciliation_mismatch(
                out,
                o.account,
                o.venue,
                "order sent to a venue without a matching client order",
                now,
            );
        }
    }

    /// Reconciliation failed for `account`: its kill switch is on (set by the risk core);
    /// alert and cancel its open orders.
    #[cold]
    #[inline(never)]
    pub(crate) fn reconciliation_mismatch(
        &mut self,
        out: &mut dyn Outbox,
        account: crate::model::Account,
        venue: crate::model::VenueId,
        what: &'static str,
        now: Nanos,
    ) {
        self.counters.inc(Counter::ReconciliationMismatches);
        self.emit(Event::ReconciliationMismatch {
            account,
            venue,
            what,
            at: now,
        });
        let orders = self.cancel_scope(out, KillTarget::Account(account), now);
        self.emit(Event::Kill {
            target: KillTarget::Account(account),
            on: true,
            orders,
            seq: 0,
            at: now,
        });
    }

    /// Sends a venue cancel for every open order in `target`; returns how many.
    #[cold]
    pub(crate) fn cancel_scope(
        &mut self,
        out: &mut dyn Outbox,
        target: KillTarget,
        now: Nanos,
    ) -> u32 {
        let mut keys = mem::take(&mut self.keys);
        self.orders.open_orders(&mut keys, |o| match target {
            KillTarget::Global => true,
            KillTarget::Account(a) => o.account == a,
            KillTarget::Symbol(s) => o.symbol == s,
            KillTarget::Session(i) => o.session == SessionId(i),
        });
        let n = keys.len() as u32;
        for &key in &keys {
            self.venue_request(out, key, super::venue::VenueRequest::Cancel, now);
        }
        self.keys = keys;
        self.counters.add(Counter::KillCancels, u64::from(n));
        n
    }

    /// Expired temporary raises were reverted by the risk core: audit them.
    #[cold]
    pub(crate) fn drain_limit_reverts(&mut self, now: Nanos) {
        self.risk.expire_raises(now);
        let ring = &self.ring;
        let counters = &self.counters;
        self.risk.drain_limit_changes(|c| {
            let e = Event::LimitsChanged {
                account: c.account,
                change: c.seq,
                temporary: false,
                expired: true,
                seq: 0,
                at: now,
            };
            if !ring.push(e) {
                counters.inc(Counter::EventRingFull);
            }
        });
    }

    /// Applies a control request and answers it. Cold: runs between messages.
    #[cold]
    #[inline(never)]
    pub fn on_control(&mut self, out: &mut dyn Outbox, call: ControlCall, now: Nanos) {
        self.counters.inc(Counter::ControlRequests);
        let seq = call.seq;
        let reply = match call.request {
            ControlRequest::Kill(t) | ControlRequest::Unkill(t) => {
                let on = matches!(call.request, ControlRequest::Kill(_));
                self.set_kill(out, t, on, seq, now)
            }
            ControlRequest::EnableAccount(a) => {
                let was_disabled = self.risk.is_disabled(&a);
                match self.risk.enable_account(&a) {
                    Ok(()) => {
                        self.emit(Event::AccountEnabled {
                            account: a,
                            seq,
                            at: now,
                        });
                        ControlReply::Enabled {
                            account: a,
                            was_disabled,
                        }
                    }
                    Err(_) => ControlReply::Refused("unknown account"),
                }
            }
            ControlRequest::SetLimits {
                account,
                changes,
                for_ns,
            } => match self.risk.account_view(&account) {
                None => ControlReply::Refused("unknown account"),
                Some(view) => {
                    // A temporary change is laid over the current limits; a permanent one over
                    // the base (a running raise ends).
                    let base = if for_ns.is_some() {
                        view.limits
                    } else {
                        view.base
                    };
                    let limits = match overlay(&base, &changes) {
                        Ok(l) => l,
                        Err(l) => {
                            let _ = call.reply.try_send(ControlReply::Refused(invalid_limit(l)));
                            return;
                        }
                    };
                    let r = match for_ns {
                        Some(d) => self.risk.raise_limits_until(
                            &account,
                            limits,
                            now.add(Nanos(d)),
                            "control request",
                            now,
                        ),
                        None => self
                            .risk
                            .set_limits(&account, limits, "control request", now),
                    };
                    match r {
                        Ok(change) => {
                            self.emit(Event::LimitsChanged {
                                account,
                                change: change.seq,
                                temporary: for_ns.is_some(),
                                expired: false,
                                seq,
                                at: now,
                            });
                            ControlReply::Limits(change)
                        }
                        Err(crate::risk::RiskError::InvalidLimit(l)) => {
                            ControlReply::Refused(invalid_limit(l))
                        }
                        Err(_) => ControlReply::Refused("unknown account"),
                    }
                }
            },
            ControlRequest::Venue(v) => match self.venues.get(v.index()) {
                Some(slot) => {
                    let mut open = 0u32;
                    for k in 0..self.orders.capacity() as u32 {
                        if self
                            .orders
                            .get(crate::model::OrderKey(k))
                            .is_some_and(|o| o.venue == v && o.is_open())
                        {
                            open += 1;
                        }
                    }
                    ControlReply::Venue(crate::handoff::VenueView {
                        index: v.0,
                        name: slot.name,
                        up: slot.up,
                        external: slot.sim.is_none(),
                        open_orders: open,
                    })
                }
                None => ControlReply::Refused("unknown venue"),
            },
            // The shell answers for its sessions before the desk sees the request.
            ControlRequest::Session(_) => ControlReply::Refused("unknown session"),
            ControlRequest::Show { account, symbol } => {
                // An expired raise reverts on the next check; show the state as it stands.
                match self.risk.account_view(&account) {
                    None => ControlReply::Refused("unknown account"),
                    Some(view) => ControlReply::Show {
                        view,
                        global_kill: self.risk.is_global_killed(),
                        position: symbol.and_then(|s| self.risk.position(&account, &s)),
                        now,
                    },
                }
            }
        };
        let _ = call.reply.try_send(reply);
    }

    #[cold]
    fn set_kill(
        &mut self,
        out: &mut dyn Outbox,
        t: KillTarget,
        on: bool,
        seq: u64,
        now: Nanos,
    ) -> ControlReply {
        let scope = match t {
            KillTarget::Global => Some(KillScope::Global),
            KillTarget::Account(a) => Some(KillScope::Account(a)),
            KillTarget::Symbol(s) => Some(KillScope::Symbol(s)),
            KillTarget::Session(_) => None,
        };
        let was_on = match t {
            KillTarget::Global => self.risk.is_global_killed(),
            KillTarget::Account(a) => self.risk.account_view(&a).is_some_and(|v| v.killed),
            KillTarget::Symbol(s) => self.risk.is_symbol_killed(&s) == Some(true),
            KillTarget::Session(i) => self.sessions.get(i as usize).is_some_and(|s| s.killed),
        };
        let applied = match (scope, t) {
            (Some(scope), _) => {
                let r = if on {
                    self.risk.kill(scope)
                } else {
                    self.risk.unkill(scope)
                };
                r.map_err(|e| match e {
                    crate::risk::RiskError::UnknownSymbol => "unknown symbol",
                    _ => "unknown account",
                })
            }
            (None, KillTarget::Session(i)) => match self.sessions.get_mut(i as usize) {
                Some(slot) => {
                    slot.killed = on;
                    Ok(())
                }
                None => Err("unknown session"),
            },
            (None, _) => Err("unknown scope"),
        };
        if let Err(why) = applied {
            return ControlReply::Refused(why);
        }
        let orders = if on {
            self.cancel_scope(out, t, now)
        } else {
            0
        };
        self.emit(Event::Kill {
            target: t,
            on,
            orders,
            seq,
            at: now,
        });
        ControlReply::Kill {
            target: t,
            on,
            was_on,
            orders_canceled: orders,
        }
    }

    /// Recovery: rebuilds the risk state from the journal — executions of every order in it
    /// (`executions`: account, symbol, side, cum qty, filled notional) and the reservations of
    /// the orders still open.
    #[cold]
    pub(crate) fn restore_risk(&mut self, executions: &[(Order, i128)]) {
        for (o, filled) in executions {
            if o.cum_qty.0 > 0 {
                let _ = self.risk.restore_executed(
                    &o.account,
                    &o.symbol,
                    o.side,
                    o.cum_qty,
                    crate::risk::Notional(*filled),
                );
            }
        }
        for k in 0..self.orders.capacity() as u32 {
            let Some(o) = self.orders.get(crate::model::OrderKey(k)).copied() else {
                continue;
            };
            if o.is_open() {
                let price = if o.reserved_price.0 > 0 {
                    o.reserved_price
                } else {
                    o.price.unwrap_or(Price(0))
                };
                let _ = self.risk.restore_open(
                    &o.account,
                    &o.symbol,
                    o.side,
                    Reserved {
                        open_qty: reserved_open(&o),
                        price,
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::{Collar, Notional, OrdTypeSet, TifSet};

    #[test]
    fn overlay_changes_only_what_is_given_and_the_collar_whole() {
        let base = RiskLimits {
            max_order_qty: Qty(100),
            max_order_notional: Notional(1000),
            collar: Collar {
                bps: Some(100),
                ticks: Some(5),
            },
            reference_max_age: Nanos(1),
            credit_limit: Notional(5000),
            max_long: Qty(10),
            max_short: Qty(10),
            max_open_orders: 3,
            ord_types: OrdTypeSet::ALL,
            tifs: TifSet::ALL,
            duplicate_window: Nanos(0),
            max_msgs: 9,
            rate_period: Nanos(1),
        };
        let l = overlay(
            &base,
            &LimitsSpec {
                max_order_qty: Some(Qty(500)),
                collar_bps: Some(50),
                ..LimitsSpec::default()
            },
        )
        .unwrap();
        assert_eq!(l.max_order_qty, Qty(500));
        assert_eq!(l.credit_limit, Notional(5000));
        assert_eq!(
            l.collar,
            Collar {
                bps: Some(50),
                ticks: None
            }
        );
        let bad = LimitsSpec {
            max_msgs: Some(0),
            ..LimitsSpec::default()
        };
        assert_eq!(overlay(&base, &bad), Err(LimitName::MaxMsgs));
    }
}
