//! HOT — the FIX 4.4 venue protocol, sans-IO: what the gateway writes to an external venue
//! (NewOrderSingle, OrderCancelRequest, OrderCancelReplaceRequest, OrderStatusRequest) and how
//! the venue's ExecutionReports and OrderCancelRejects map back to gateway orders.
//!
//! The ClOrdIDs the gateway sends a venue are its own: `<slot>.<OrderID>.<n>`, where `slot` is
//! the order's [`OrderKey`], `OrderID` tells a recycled slot's old answers from the new order's,
//! and `n` numbers the requests about the order (0 = the order itself). Answers therefore need no
//! lookup table. The session (sequence numbers, resend) is the ordinary session layer in the
//! initiator role; the engine owns the socket.

use crate::fix::encode::write_u64;
use crate::fix::{tags, Message, MsgType, TimePrecision, Writer};
use crate::model::{Nanos, OrdStatus, OrderKey, Price, Qty};
use crate::order::Order;

/// Longest venue ClOrdID: three u64/u32 numbers and two dots.
pub const VENUE_ID_BYTES: usize = 48;

/// Writes `<slot>.<order_id>.<n>`; returns its length.
pub fn venue_cl_ord_id(
    key: OrderKey,
    order_id: u64,
    n: u32,
    out: &mut [u8; VENUE_ID_BYTES],
) -> usize {
    let mut k = write_u64(out, u64::from(key.0));
    out[k] = b'.';
    k += 1;
    k += write_u64(&mut out[k..], order_id);
    out[k] = b'.';
    k += 1;
    k + write_u64(&mut out[k..], u64::from(n))
}

/// Reads a ClOrdID written by [`venue_cl_ord_id`].
pub fn parse_venue_cl_ord_id(v: &[u8]) -> Option<(OrderKey, u64, u32)> {
    let mut parts = v.split(|b| *b == b'.');
    let key = crate::fix::decode::parse_uint(parts.next()?)?;
    let order_id = crate::fix::decode::parse_uint(parts.next()?)?;
    let n = crate::fix::decode::parse_uint(parts.next()?)?;
    if parts.next().is_some() || key > u64::from(u32::MAX) || n > u64::from(u32::MAX) {
        return None;
    }
    Some((OrderKey(key as u32), order_id, n as u32))
}

fn order_fields(w: &mut Writer<'_>, o: &Order) {
    if !o.account.is_empty() {
        w.str(tags::ACCOUNT, o.account.as_bytes());
    }
    w.str(tags::SYMBOL, o.symbol.as_bytes());
    w.char(tags::SIDE, o.side.to_fix());
}

/// Body of a NewOrderSingle for order `o` (request 0).
pub fn new_order(w: &mut Writer<'_>, key: OrderKey, o: &Order, now: Nanos) {
    let mut id = [0u8; VENUE_ID_BYTES];
    let n = venue_cl_ord_id(key, o.order_id, 0, &mut id);
    w.str(tags::CL_ORD_ID, &id[..n]);
    w.char(tags::HANDL_INST, b'1');
    order_fields(w, o);
    w.timestamp(tags::TRANSACT_TIME, now, TimePrecision::Micros);
    w.qty(tags::ORDER_QTY, o.qty);
    w.char(tags::ORD_TYPE, o.ord_type.to_fix());
    if let Some(p) = o.price {
        w.price(tags::PRICE, p);
    }
    w.char(tags::TIME_IN_FORCE, o.tif.to_fix());
}

/// Body of an OrderCancelRequest: request `req` about the live venue order `live`.
pub fn cancel(w: &mut Writer<'_>, key: OrderKey, o: &Order, req: u32, live: u32, now: Nanos) {
    let mut id = [0u8; VENUE_ID_BYTES];
    let n = venue_cl_ord_id(key, o.order_id, live, &mut id);
    w.str(tags::ORIG_CL_ORD_ID, &id[..n]);
    let n = venue_cl_ord_id(key, o.order_id, req, &mut id);
    w.str(tags::CL_ORD_ID, &id[..n]);
    order_fields(w, o);
    w.timestamp(tags::TRANSACT_TIME, now, TimePrecision::Micros);
    w.qty(tags::ORDER_QTY, o.qty);
}

/// Body of an OrderCancelReplaceRequest.
#[allow(clippy::too_many_arguments)]
pub fn replace(
    w: &mut Writer<'_>,
    key: OrderKey,
    o: &Order,
    req: u32,
    live: u32,
    qty: Qty,
    price: Option<Price>,
    now: Nanos,
) {
    let mut id = [0u8; VENUE_ID_BYTES];
    let n = venue_cl_ord_id(key, o.order_id, live, &mut id);
    w.str(tags::ORIG_CL_ORD_ID, &id[..n]);
    let n = venue_cl_ord_id(key, o.order_id, req, &mut id);
    w.str(tags::CL_ORD_ID, &id[..n]);
    w.char(tags::HANDL_INST, b'1');
    order_fields(w, o);
    w.timestamp(tags::TRANSACT_TIME, now, TimePrecision::Micros);
    w.qty(tags::ORDER_QTY, qty);
    w.char(tags::ORD_TYPE, o.ord_type.to_fix());
    if let Some(p) = price {
        w.price(tags::PRICE, p);
    }
    w.char(tags::TIME_IN_FORCE, o.tif.to_fix());
}

/// Body of an OrderStatusRequest about the live venue order.
pub fn status(w: &mut Writer<'_>, key: OrderKey, o: &Order, live: u32) {
    let mut id = [0u8; VENUE_ID_BYTES];
    let n = venue_cl_ord_id(key, o.order_id, live, &mut id);
    w.str(tags::CL_ORD_ID, &id[..n]);
    order_fields(w, o);
}

/// A venue's answer about one of our orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub key: OrderKey,
    pub order_id: u64,
    /// Request number of the ClOrdID the answer carries.
    pub n: u32,
    pub kind: AnswerKind,
}

/// What the venue said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// ExecutionReport.
    Report {
        exec_type: u8,
        status: OrdStatus,
        venue_order_id: crate::model::VenueOrderId,
        qty: Option<Qty>,
        price: Option<Price>,
        last: Option<(Qty, Price)>,
        cum: Qty,
        leaves: Qty,
    },
    /// OrderCancelReject; `replace` when it answers a replace.
    CancelReject { replace: bool },
}

/// Reads an application message from a venue. `None`: not about an order of ours (ignored and
/// counted by the caller).
pub fn parse_answer(msg: &Message<'_>) -> Option<Answer> {
    let (key, order_id, n) = parse_venue_cl_ord_id(msg.get(tags::CL_ORD_ID)?)?;
    let kind = match msg.msg_type() {
        MsgType::EXECUTION_REPORT => {
            let status = OrdStatus::from_fix(msg.char(tags::ORD_STATUS).ok()??)?;
            let exec_type = msg.char(tags::EXEC_TYPE).ok()??;
            let last = match (
                msg.qty(tags::LAST_QTY).ok()?,
                msg.price(tags::LAST_PX).ok()?,
            ) {
                (Some(q), Some(p)) if q.0 > 0 => Some((q, p)),
                _ => None,
            };
            AnswerKind::Report {
                exec_type,
                status,
                // Kept as sent; "NONE" (FIX's "no order id yet") and an id over 32 bytes
                // read as empty.
                venue_order_id: msg
                    .get(tags::ORDER_ID)
                    .filter(|v| *v != b"NONE")
                    .and_then(crate::model::VenueOrderId::new)
                    .unwrap_or_default(),
                qty: msg.qty(tags::ORDER_QTY).ok()?,
                price: msg.price(tags::PRICE).ok()?,
                last,
                cum: msg.qty(tags::CUM_QTY).ok()?.unwrap_or(Qty::ZERO),
                leaves: msg.qty(tags::LEAVES_QTY).ok()?.unwrap_or(Qty::ZERO),
            }
        }
        MsgType::ORDER_CANCEL_REJECT => AnswerKind::CancelReject {
            replace: msg.char(tags::CXL_REJ_RESPONSE_TO).ok()? == Some(b'2'),
        },
        _ => return None,
    };
    Some(Answer {
        key,
        order_id,
        n,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn venue_ids_round_trip() {
        let mut b = [0u8; VENUE_ID_BYTES];
        let n = venue_cl_ord_id(
            OrderKey(u32::MAX),
            999_999_999_999_999_999,
            u32::MAX,
            &mut b,
        );
        assert_eq!(
            parse_venue_cl_ord_id(&b[..n]),
            Some((OrderKey(u32::MAX), 999_999_999_999_999_999, u32::MAX))
        );
        assert_eq!(parse_venue_cl_ord_id(b"1.2"), None);
        assert_eq!(parse_venue_cl_ord_id(b"1.2.3.4"), None);
        assert_eq!(parse_venue_cl_ord_id(b"a.2.3"), None);
    }
}
