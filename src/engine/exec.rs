//! HOT — encodes the application messages the gateway sends: ExecutionReport <8>,
//! OrderCancelReject <9>, OrderMassCancelReport <r>. Writes into the session's [`Writer`];
//! the session layer adds the header and stores the message for resend.

use crate::desk::{CancelRejectTo, Exec};
use crate::fix::encode::write_u64;
use crate::fix::{tags, BeginString, TimePrecision, Writer};
use crate::model::{ExecType, Nanos, OrdStatus, OrdType, Price, Qty, Side, TimeInForce};
use crate::order::Order;

/// OrderID <37> text.
fn order_id_text(o: &Order, buf: &mut [u8; 20]) -> usize {
    write_u64(buf, o.order_id)
}

/// Writes the body of an ExecutionReport.
pub fn execution_report(
    w: &mut Writer<'_>,
    v: BeginString,
    o: &Order,
    e: &Exec<'_>,
    exec_id: u64,
    now: Nanos,
) {
    let mut id = [0u8; 20];
    let n = order_id_text(o, &mut id);
    if o.order_id == 0 {
        w.str(tags::ORDER_ID, b"NONE");
    } else {
        w.str(tags::ORDER_ID, &id[..n]);
    }
    w.str(tags::CL_ORD_ID, e.cl_ord_id);
    if let Some(orig) = e.orig_cl_ord_id {
        w.str(tags::ORIG_CL_ORD_ID, orig);
    }
    // ExecID <17>: OrderID.n — unique because OrderIDs are and n only grows per order.
    let mut eid = [0u8; 48];
    let mut k = if o.order_id == 0 {
        eid[..4].copy_from_slice(b"NONE");
        4
    } else {
        eid[..n].copy_from_slice(&id[..n]);
        n
    };
    eid[k] = b'.';
    k += 1;
    k += write_u64(&mut eid[k..], exec_id);
    w.str(tags::EXEC_ID, &eid[..k]);
    let exec_type = match (v, e.exec_type) {
        (BeginString::Fix42, ExecType::Trade) => {
            if e.status == OrdStatus::Filled {
                b'2'
            } else {
                b'1'
            }
        }
        (BeginString::Fix42, ExecType::OrderStatus) => e.status.to_fix(),
        (_, t) => t.to_fix(),
    };
    if v == BeginString::Fix42 {
        let trans = if e.exec_type == ExecType::OrderStatus {
            b'3'
        } else {
            b'0'
        };
        w.char(tags::EXEC_TRANS_TYPE, trans);
    }
    w.char(tags::EXEC_TYPE, exec_type);
    w.char(tags::ORD_STATUS, e.status.to_fix());
    if let Some(r) = e.rej_reason {
        w.uint(tags::ORD_REJ_REASON, u64::from(r));
    }
    let leaves = if e.status.is_terminal() || e.status == OrdStatus::Rejected {
        Qty::ZERO
    } else {
        o.leaves()
    };
    order_fields(
        w,
        &OrderFields {
            account: o.account.as_bytes(),
            symbol: o.symbol.as_bytes(),
            side: o.side,
            qty: o.qty,
            ord_type: o.ord_type,
            price: o.price,
            tif: o.tif,
            last: e.last,
            leaves,
            cum: o.cum_qty,
            avg_px: o.avg_px(),
            transact_time: now,
            precision: TimePrecision::Micros,
            text: e.text,
        },
    );
}

/// The order part of an ExecutionReport, after its ids, ExecType and OrdStatus: what the gateway
/// sends its clients and what the test venue (`tools/src/bin/venue.rs`) sends the gateway.
#[derive(Clone, Copy, Debug)]
pub struct OrderFields<'a> {
    /// Account <1>; empty: not sent.
    pub account: &'a [u8],
    /// Symbol <55>; empty: `[N/A]` (the field is required).
    pub symbol: &'a [u8],
    pub side: Side,
    pub qty: Qty,
    pub ord_type: OrdType,
    pub price: Option<Price>,
    pub tif: TimeInForce,
    /// LastQty <32> / LastPx <31> of a fill.
    pub last: Option<(Qty, Price)>,
    pub leaves: Qty,
    pub cum: Qty,
    pub avg_px: Price,
    pub transact_time: Nanos,
    pub precision: TimePrecision,
    pub text: Option<&'a [u8]>,
}

/// Writes [`OrderFields`], in the order of the FIX 4.4 ExecutionReport.
#[inline]
pub fn order_fields(w: &mut Writer<'_>, f: &OrderFields<'_>) {
    if !f.account.is_empty() {
        w.str(tags::ACCOUNT, f.account);
    }
    w.str(
        tags::SYMBOL,
        if f.symbol.is_empty() {
            b"[N/A]"
        } else {
            f.symbol
        },
    );
    w.char(tags::SIDE, f.side.to_fix());
    w.qty(tags::ORDER_QTY, f.qty);
    w.char(tags::ORD_TYPE, f.ord_type.to_fix());
    if let Some(p) = f.price {
        w.price(tags::PRICE, p);
    }
    w.char(tags::TIME_IN_FORCE, f.tif.to_fix());
    if let Some((q, p)) = f.last {
        w.qty(tags::LAST_QTY, q);
        w.price(tags::LAST_PX, p);
    }
    w.qty(tags::LEAVES_QTY, f.leaves);
    w.qty(tags::CUM_QTY, f.cum);
    w.price(tags::AVG_PX, f.avg_px);
    w.timestamp(tags::TRANSACT_TIME, f.transact_time, f.precision);
    if let Some(t) = f.text {
        w.str(tags::TEXT, t);
    }
}

/// Writes the body of an OrderCancelReject. `order` is `None` for an unknown order.
#[allow(clippy::too_many_arguments)]
pub fn order_cancel_reject(
    w: &mut Writer<'_>,
    v: BeginString,
    order: Option<&Order>,
    cl_ord_id: &[u8],
    orig_cl_ord_id: &[u8],
    to: CancelRejectTo,
    reason: u32,
    text: &[u8],
) {
    match order {
        Some(o) if o.order_id != 0 => {
            let mut id = [0u8; 20];
            let n = order_id_text(o, &mut id);
            w.str(tags::ORDER_ID, &id[..n]);
        }
        _ => {
            w.str(tags::ORDER_ID, b"NONE");
        }
    }
    w.str(tags::CL_ORD_ID, cl_ord_id);
    w.str(tags::ORIG_CL_ORD_ID, orig_cl_ord_id);
    let status = order.map_or(OrdStatus::Rejected, |o| {
        if o.status.is_terminal() {
            o.status
        } else {
            o.working_status()
        }
    });
    w.char(tags::ORD_STATUS, status.to_fix());
    if let Some(o) = order {
        if v == BeginString::Fix44 && !o.account.is_empty() {
            w.str(tags::ACCOUNT, o.account.as_bytes());
        }
    }
    w.char(
        tags::CXL_REJ_RESPONSE_TO,
        if to == CancelRejectTo::Cancel {
            b'1'
        } else {
            b'2'
        },
    );
    w.uint(tags::CXL_REJ_REASON, u64::from(reason));
    w.str(tags::TEXT, text);
}

/// Writes the body of an OrderMassCancelReport <r>.
pub fn mass_cancel_report(
    w: &mut Writer<'_>,
    cl_ord_id: &[u8],
    report_id: u64,
    request_type: u8,
    accepted: bool,
    affected: u64,
    text: Option<&[u8]>,
) {
    w.str(tags::CL_ORD_ID, cl_ord_id);
    let mut id = [0u8; 21];
    id[0] = b'M';
    let n = write_u64(&mut id[1..], report_id);
    w.str(tags::ORDER_ID, &id[..n + 1]);
    w.char(tags::MASS_CANCEL_REQUEST_TYPE, request_type);
    w.char(
        tags::MASS_CANCEL_RESPONSE,
        if accepted { request_type } else { b'0' },
    );
    if !accepted {
        w.uint(tags::MASS_CANCEL_REJECT_REASON, 99);
    }
    w.uint(tags::TOTAL_AFFECTED_ORDERS, affected);
    if let Some(t) = text {
        w.str(tags::TEXT, t);
    }
}
