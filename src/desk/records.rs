//! HOT — regulatory duties of the gateway thread: the clock halt (CLOCK-2), the timestamps of
//! every order event (CLOCK-1, RTS 25 Art 4) and the order records (REG-1, RTS 24 / Delegated
//! Regulation 2017/565 Annex IV). `orders.rs` calls one helper per lifecycle point.
//!
//! # Timestamps
//! The duty cycle's `now` (read once after the poll returns) is the time an instruction was
//! read. The decision, the request to the venue, the venue answer and the report to the client
//! each read the fast clock again where they happen (a TSC read, ~10–20 ns, no syscall), so the
//! recorded times of one order are in order: instruction ≤ decision ≤ sent ≤ venue ≤ reported.
//! tuning.md ("Timestamps") lists the exact code points.
//!
//! Nothing here allocates: records are fixed-size copies pushed to a lock-free ring; a full ring
//! is counted (`RecordRingFull`), never waited on.

use super::report::{CancelRejectTo, Exec};
use super::venue::VenueRequest;
use super::OrderDesk;
use crate::model::{ExecType, InlineStr, Nanos, OrdStatus, OrderKey};
use crate::monitor::Counter;
use crate::order::record::{Lifecycle, OrderRecord};
use crate::order::{Order, Pending};
use crate::venue::VenueEvent;

/// The Text <58> of the clock-halt refusal for a limit of `max_us` µs. Composed once per engine
/// at start (cold) and kept for the process's life, so the refusal itself formats nothing.
pub fn clock_halt_text(max_us: u64) -> &'static [u8] {
    let text = format!("clock not synchronised to UTC within {max_us} us");
    Box::leak(text.into_boxed_str()).as_bytes()
}

impl OrderDesk {
    /// CLOCK-2 halt: the refusal text while new orders are halted, else `None`. One relaxed
    /// load per order.
    #[inline]
    pub(crate) fn clock_halted(&self) -> Option<&'static [u8]> {
        if self.clock_status.halted() {
            self.counters.inc(Counter::ClockHaltRejects);
            Some(self.clock_halt_text)
        } else {
            None
        }
    }

    /// A new order passed every check: the instruction was read at `now`, decided now.
    #[inline]
    pub(crate) fn stamp_decision(&self, order: &mut Order, now: Nanos) {
        order.times.instruction = now;
        order.times.decision = self.clock.now();
    }

    /// Pushes `r` with the API key its session logged on with (empty without `[auth]`).
    #[inline]
    fn push_record(&self, mut r: OrderRecord) {
        if let Some(slot) = self.sessions.get(r.order.session.index()) {
            r.key_id = slot.grants.key_id;
        }
        if !self.records.push(r) {
            self.counters.inc(Counter::RecordRingFull);
        }
    }

    /// REG-1 `new`: order `key` was accepted by the gateway and is about to be routed.
    #[inline]
    pub(crate) fn record_new(&self, key: OrderKey) {
        if let Some(o) = self.orders.get(key) {
            self.push_record(OrderRecord::new(Lifecycle::New, o, o.times.decision));
        }
    }

    /// A cancel or replace request for `key` passed the checks (its `pending` is set): stamps
    /// instruction and decision and records `cancel-requested` / `replace-requested`.
    pub(crate) fn record_request(&mut self, key: OrderKey, now: Nanos) {
        let t = self.clock.now();
        let Some(o) = self.orders.get_mut(key) else {
            return;
        };
        // A new instruction: its request and answer are still to come.
        o.times = crate::order::OrderTimes {
            instruction: now,
            decision: t,
            sent: Nanos::ZERO,
            venue: Nanos::ZERO,
        };
        let event = match o.pending {
            Pending::Cancel { .. } => Lifecycle::CancelRequested,
            Pending::Replace { .. } => Lifecycle::ReplaceRequested,
            Pending::None => return,
        };
        let r = OrderRecord::new(event, o, t);
        self.push_record(r);
    }

    /// A request about `key` is being written for its venue.
    #[inline]
    pub(crate) fn stamp_sent(&mut self, key: OrderKey, req: VenueRequest) {
        if req == VenueRequest::Status {
            return;
        }
        let t = self.clock.now();
        let Some(o) = self.orders.get_mut(key) else {
            return;
        };
        // A venue that is down gets nothing: the refusal that follows is the gateway's.
        if self.venues.get(o.venue.index()).is_some_and(|v| v.up) {
            o.times.sent = t;
        }
    }

    /// A venue answer about an order is being applied.
    #[inline]
    pub(crate) fn stamp_venue(&mut self, ev: &VenueEvent) {
        let key = match *ev {
            VenueEvent::Accepted { key, .. }
            | VenueEvent::Rejected { key, .. }
            | VenueEvent::Fill { key, .. }
            | VenueEvent::Canceled { key, .. }
            | VenueEvent::Replaced { key, .. }
            | VenueEvent::CancelRejected { key, .. }
            | VenueEvent::ReplaceRejected { key, .. } => key,
        };
        let t = self.clock.now();
        if let Some(o) = self.orders.get_mut(key) {
            o.times.venue = t;
        }
    }

    /// An ExecutionReport about `order` was written for the client: records the lifecycle event
    /// it reports (pending and status reports are not events of their own). `now` is the duty
    /// cycle's time, used as the instruction time of an order refused before it had one.
    #[inline]
    pub(crate) fn record_report(&self, order: &Order, e: &Exec<'_>, now: Nanos) {
        let event = match e.exec_type {
            ExecType::New => Lifecycle::Accepted,
            ExecType::Rejected if order.order_id == 0 => Lifecycle::Rejected,
            ExecType::Rejected => Lifecycle::VenueRejected,
            ExecType::Trade if e.status == OrdStatus::Filled => Lifecycle::Fill,
            ExecType::Trade => Lifecycle::PartialFill,
            ExecType::Canceled if e.orig_cl_ord_id.is_some() => Lifecycle::Canceled,
            ExecType::Canceled | ExecType::Expired => Lifecycle::Expired,
            ExecType::Replaced => Lifecycle::Replaced,
            ExecType::PendingNew
            | ExecType::PendingCancel
            | ExecType::PendingReplace
            | ExecType::OrderStatus => return,
        };
        let t = self.clock.now();
        let mut r = OrderRecord::new(event, order, t);
        if event == Lifecycle::Rejected {
            // Refused before routing: decided now, on an instruction read this cycle.
            if r.order.times.instruction == Nanos::ZERO {
                r.order.times.instruction = now;
            }
            if r.order.times.decision == Nanos::ZERO {
                r.order.times.decision = t;
            }
        } else if r.order.times.venue != Nanos::ZERO {
            r.at = r.order.times.venue;
        }
        r.reported_at = t;
        r.last = e.last;
        r.reject_code = e.rej_reason;
        if let Some(text) = e.text {
            r = r.with_text(text);
        }
        self.push_record(r);
    }

    /// An OrderCancelReject about `order` was written for the client.
    #[cold]
    pub(crate) fn record_cancel_reject(
        &self,
        order: &Order,
        cl: &[u8],
        to: CancelRejectTo,
        code: u32,
        text: &[u8],
    ) {
        let event = match to {
            CancelRejectTo::Cancel => Lifecycle::CancelRejected,
            CancelRejectTo::Replace => Lifecycle::ReplaceRejected,
        };
        let t = self.clock.now();
        let mut r = OrderRecord::new(event, order, t).with_text(text);
        r.request_cl_ord_id = InlineStr::new(cl).unwrap_or_default();
        r.reject_code = Some(code);
        r.reported_at = t;
        self.push_record(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halt_text_names_the_limit() {
        assert_eq!(
            clock_halt_text(100),
            b"clock not synchronised to UTC within 100 us"
        );
    }
}
