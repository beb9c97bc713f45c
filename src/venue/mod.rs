//! HOT — venues: where accepted orders go and what comes back, as plain values.
//!
//! Owns the venue-neutral vocabulary ([`VenueOrder`] in, [`VenueEvent`] out) that the gateway
//! engine speaks to every venue kind, and the embedded simulator ([`sim`], over [`book`]).
//! Runs on the gateway thread. Must never allocate after construction, block, do I/O or read
//! the clock: callers pass `now: Nanos` and a sink for events.

use crate::model::{OrdType, OrderKey, Price, Qty, Side, Symbol, TimeInForce};

pub mod book;
pub mod fix;
pub mod sim;

/// What the gateway asks a venue to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VenueOrder {
    pub key: OrderKey,
    pub symbol: Symbol,
    pub side: Side,
    pub ord_type: OrdType,
    pub tif: TimeInForce,
    pub qty: Qty,
    pub price: Option<Price>,
}

/// What a venue answers, about the gateway's order `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VenueEvent {
    Accepted {
        key: OrderKey,
        /// OrderID <37> at the venue, as sent (empty if it sent none, or one over 32 bytes).
        venue_order_id: crate::model::VenueOrderId,
    },
    Rejected {
        key: OrderKey,
        reason: &'static str,
    },
    /// `leaves` = remaining open qty at the venue after this fill.
    Fill {
        key: OrderKey,
        qty: Qty,
        price: Price,
        exec_id: u64,
        leaves: Qty,
    },
    /// Also used for an IOC/market remainder, an unfillable FOK and expiry.
    Canceled {
        key: OrderKey,
        canceled_qty: Qty,
    },
    Replaced {
        key: OrderKey,
        new_key: OrderKey,
        qty: Qty,
        price: Option<Price>,
        leaves: Qty,
    },
    CancelRejected {
        key: OrderKey,
        reason: &'static str,
    },
    ReplaceRejected {
        key: OrderKey,
        new_key: OrderKey,
        reason: &'static str,
    },
}
