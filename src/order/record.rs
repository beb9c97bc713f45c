//! HOT (build) — order records (REG-1): one fixed-size [`OrderRecord`] per order lifecycle
//! event, built on the gateway thread from the order's state and pushed through the record ring
//! ([`crate::handoff::RecordRing`]) to the journal thread, which writes them to
//! `<data_dir>/records/` (`audit::records`). Field meanings: `fix-specs/ORDER-RECORDS.md`.
//!
//! Building a record copies the order and a few values: no allocation, no formatting.

use super::{Order, Pending};
use crate::model::{InlineStr, Nanos, OrderIdStr, Price, Qty};

/// What happened to the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifecycle {
    /// NewOrderSingle accepted by the gateway's checks, journaled, about to be routed.
    New,
    /// The venue acknowledged the order (ExecutionReport 150=0).
    Accepted,
    /// The gateway refused the order before routing (validation, clock halt, risk, throttle
    /// refusal of a parsed order, duplicate, venue down, table full).
    Rejected,
    /// The venue refused the order.
    VenueRejected,
    /// OrderCancelReplaceRequest accepted by the gateway, sent to the venue.
    ReplaceRequested,
    Replaced,
    /// The replace was refused (by the gateway or the venue): OrderCancelReject 434=2.
    ReplaceRejected,
    /// OrderCancelRequest accepted by the gateway, sent to the venue.
    CancelRequested,
    /// Cancelled at the client's OrderCancelRequest.
    Canceled,
    /// The cancel was refused (by the gateway or the venue): OrderCancelReject 434=1.
    CancelRejected,
    PartialFill,
    Fill,
    /// Cancelled without a cancel request of its own: IOC/FOK/market remainder, venue expiry,
    /// cancel-on-disconnect, mass cancel, kill switch.
    Expired,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 13] = [
        Lifecycle::New,
        Lifecycle::Accepted,
        Lifecycle::Rejected,
        Lifecycle::VenueRejected,
        Lifecycle::ReplaceRequested,
        Lifecycle::Replaced,
        Lifecycle::ReplaceRejected,
        Lifecycle::CancelRequested,
        Lifecycle::Canceled,
        Lifecycle::CancelRejected,
        Lifecycle::PartialFill,
        Lifecycle::Fill,
        Lifecycle::Expired,
    ];

    /// The name used in the records files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::New => "new",
            Lifecycle::Accepted => "accepted",
            Lifecycle::Rejected => "rejected",
            Lifecycle::VenueRejected => "venue-rejected",
            Lifecycle::ReplaceRequested => "replace-requested",
            Lifecycle::Replaced => "replaced",
            Lifecycle::ReplaceRejected => "replace-rejected",
            Lifecycle::CancelRequested => "cancel-requested",
            Lifecycle::Canceled => "canceled",
            Lifecycle::CancelRejected => "cancel-rejected",
            Lifecycle::PartialFill => "partial-fill",
            Lifecycle::Fill => "fill",
            Lifecycle::Expired => "expired",
        }
    }
}

/// Text <58> of a refusal, as recorded.
pub type RecordText = InlineStr<128>;

/// One order lifecycle event with everything REG-1 keeps about it.
#[derive(Clone, Copy, Debug)]
pub struct OrderRecord {
    pub event: Lifecycle,
    /// When the event happened (UTC): the decision for gateway events, the venue answer's
    /// processing for venue events.
    pub at: Nanos,
    /// The order after the event (its `times` hold the instruction/decision/sent/venue
    /// timestamps).
    pub order: Order,
    /// ExecutionReport / OrderCancelReject written for the client about this event; zero when
    /// the event has no report of its own (new, requests).
    pub reported_at: Nanos,
    /// ClOrdID <11> of the cancel or replace request this event is about (empty otherwise).
    pub request_cl_ord_id: OrderIdStr,
    /// Replace requests: the requested OrderQty <38> and Price <44>.
    pub requested: Option<(Qty, Option<Price>)>,
    /// Fills: LastQty <32>, LastPx <31>.
    pub last: Option<(Qty, Price)>,
    /// OrdRejReason <103> or CxlRejReason <102> of a refusal.
    pub reject_code: Option<u32>,
    /// Text <58> of a refusal (first 128 bytes).
    pub text: RecordText,
    /// The API key the order's session logged on with (Username <553>); empty when logons are
    /// not authenticated.
    pub key_id: InlineStr<32>,
}

impl OrderRecord {
    /// A record of `order` after `event` at `at`.
    #[inline]
    pub fn new(event: Lifecycle, order: &Order, at: Nanos) -> OrderRecord {
        let (request_cl_ord_id, requested) = match order.pending {
            Pending::Cancel { cl_ord_id } if event == Lifecycle::CancelRequested => {
                (cl_ord_id, None)
            }
            Pending::Replace {
                cl_ord_id,
                qty,
                price,
                ..
            } if event == Lifecycle::ReplaceRequested => (cl_ord_id, Some((qty, price))),
            _ => (OrderIdStr::EMPTY, None),
        };
        OrderRecord {
            event,
            at,
            order: *order,
            reported_at: Nanos::ZERO,
            request_cl_ord_id,
            requested,
            last: None,
            reject_code: None,
            text: RecordText::EMPTY,
            key_id: InlineStr::EMPTY,
        }
    }

    /// Sets the refusal text, cut at 128 bytes.
    #[inline]
    pub fn with_text(mut self, text: &[u8]) -> OrderRecord {
        let n = text.len().min(128);
        self.text = text.get(..n).and_then(RecordText::new).unwrap_or_default();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Account, SessionId};

    #[test]
    fn requests_carry_their_own_cl_ord_id_and_terms() {
        let mut o = Order::blank(SessionId(1), Account::EMPTY);
        o.cl_ord_id = OrderIdStr::new(b"A").unwrap();
        o.pending = Pending::Replace {
            cl_ord_id: OrderIdStr::new(b"A2").unwrap(),
            qty: Qty::from_units(5),
            price: Some(Price::from_units(2)),
            reserved_before: Price(0),
        };
        let r = OrderRecord::new(Lifecycle::ReplaceRequested, &o, Nanos(3));
        assert_eq!(r.request_cl_ord_id.as_bytes(), b"A2");
        assert_eq!(
            r.requested,
            Some((Qty::from_units(5), Some(Price::from_units(2))))
        );
        // Any other event about the same order does not claim the pending request.
        let r = OrderRecord::new(Lifecycle::PartialFill, &o, Nanos(3));
        assert!(r.request_cl_ord_id.is_empty() && r.requested.is_none());
        let long = [b'x'; 200];
        assert_eq!(r.with_text(&long).text.len(), 128);
        // The record ring preallocates this per slot (gateway.record_ring).
        assert!(
            std::mem::size_of::<OrderRecord>() <= 768,
            "{}",
            std::mem::size_of::<OrderRecord>()
        );
        let names: std::collections::HashSet<_> =
            Lifecycle::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(names.len(), Lifecycle::ALL.len());
    }
}
