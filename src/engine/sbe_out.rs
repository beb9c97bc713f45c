//! HOT — encoders of the SBE application messages the gateway sends (fix-specs/sbe/LAYOUT.md):
//! the ExecutionReport variants, OrderCancelReject, OrderMassCancelReport and
//! BusinessMessageReject, written straight into the FIXP session's scratch buffer at fixed
//! offsets (no copy, no allocation, no formatting). Each returns the frame's length, or `None`
//! when the buffer is too small (never: the session's scratch holds the largest message).
//!
//! Text fields longer than the schema's 64 bytes are cut at 64; ClOrdIDs are the client's own
//! (at most 20 bytes on an SBE session, so never cut).

use crate::desk::{CancelRejectTo, Exec, MassCancelReport};
use crate::model::{ExecType, Nanos, OrdStatus, Qty};
use crate::order::Order;
use crate::sbe::generated::{
    BooleanFlag, BusinessMessageRejectEncoder, CxlRejResponseTo, ExecutionReportCanceledEncoder,
    ExecutionReportNewEncoder, ExecutionReportRejectedEncoder, ExecutionReportReplacedEncoder,
    ExecutionReportStatusEncoder, ExecutionReportTradeEncoder, MassCancelRequestType,
    MassCancelResponse, OrderCancelRejectEncoder, OrderMassCancelReportEncoder,
};

/// The longest Text(58) the schema carries.
const TEXT_MAX: usize = 64;

#[inline]
fn text(t: &[u8]) -> &[u8] {
    t.get(..TEXT_MAX).unwrap_or(t)
}

/// The fields every ExecutionReport variant starts with, and the order's terms.
macro_rules! report_head {
    ($e:expr, $seq:expr, $now:expr, $o:expr, $exec_id:expr, $leaves:expr) => {
        $e.set_seq_num($seq)
            .set_sending_time($now.0)
            .set_poss_retrans(BooleanFlag::False)
            .set_order_id($o.order_id)
            .set_exec_id($exec_id)
            .set_transact_time($now.0)
            .set_order_qty($o.qty.0)
            .set_price($o.price.map(|p| p.0))
            .set_leaves_qty($leaves.0)
            .set_cum_qty($o.cum_qty.0)
            .set_avg_px($o.avg_px().0)
            .set_side($o.side.into())
            .set_ord_type($o.ord_type.into())
            .set_time_in_force($o.tif.into())
    };
}

/// An ExecutionReport about `o` answering `e`, as the variant its ExecType has: New, Trade,
/// Canceled, Replaced, Rejected, or Status (OrderStatus, Pending*, Expired).
#[inline]
pub fn execution_report(
    buf: &mut [u8],
    seq: u64,
    now: Nanos,
    o: &Order,
    e: &Exec<'_>,
    exec_id: u64,
) -> Option<usize> {
    let leaves = if e.status.is_terminal() || e.status == OrdStatus::Rejected {
        Qty::ZERO
    } else {
        o.leaves()
    };
    let status = e.status.into();
    let (account, symbol) = (o.account.as_bytes(), o.symbol.as_bytes());
    let orig = e.orig_cl_ord_id.unwrap_or(b"");
    let why = text(e.text.unwrap_or(b""));
    match e.exec_type {
        ExecType::New => {
            let mut m = ExecutionReportNewEncoder::frame(buf).ok()?;
            report_head!(m, seq, now, o, exec_id, leaves).set_ord_status(status);
            m.set_cl_ord_id(e.cl_ord_id).ok()?;
            m.set_account(account).ok()?;
            m.set_symbol(symbol).ok()?;
            Some(ExecutionReportNewEncoder::FRAME_LENGTH)
        }
        ExecType::Trade => {
            let mut m = ExecutionReportTradeEncoder::frame(buf).ok()?;
            let (lq, lp) = e.last.map_or((0, 0), |(q, p)| (q.0, p.0));
            report_head!(m, seq, now, o, exec_id, leaves)
                .set_ord_status(status)
                .set_last_qty(lq)
                .set_last_px(lp);
            m.set_cl_ord_id(e.cl_ord_id).ok()?;
            m.set_account(account).ok()?;
            m.set_symbol(symbol).ok()?;
            Some(ExecutionReportTradeEncoder::FRAME_LENGTH)
        }
        ExecType::Canceled => {
            let mut m = ExecutionReportCanceledEncoder::frame(buf).ok()?;
            report_head!(m, seq, now, o, exec_id, leaves).set_ord_status(status);
            m.set_cl_ord_id(e.cl_ord_id).ok()?;
            m.set_orig_cl_ord_id(orig).ok()?;
            m.set_text(why).ok()?;
            m.set_account(account).ok()?;
            m.set_symbol(symbol).ok()?;
            Some(ExecutionReportCanceledEncoder::FRAME_LENGTH)
        }
        ExecType::Replaced => {
            let mut m = ExecutionReportReplacedEncoder::frame(buf).ok()?;
            report_head!(m, seq, now, o, exec_id, leaves).set_ord_status(status);
            m.set_cl_ord_id(e.cl_ord_id).ok()?;
            m.set_orig_cl_ord_id(orig).ok()?;
            m.set_account(account).ok()?;
            m.set_symbol(symbol).ok()?;
            Some(ExecutionReportReplacedEncoder::FRAME_LENGTH)
        }
        ExecType::Rejected => {
            let mut m = ExecutionReportRejectedEncoder::frame(buf).ok()?;
            report_head!(m, seq, now, o, exec_id, leaves)
                .set_ord_status(status)
                .set_ord_rej_reason(e.rej_reason.unwrap_or(99).min(u32::from(u16::MAX)) as u16);
            m.set_cl_ord_id(e.cl_ord_id).ok()?;
            m.set_text(why).ok()?;
            m.set_account(account).ok()?;
            m.set_symbol(symbol).ok()?;
            Some(ExecutionReportRejectedEncoder::FRAME_LENGTH)
        }
        ExecType::OrderStatus
        | ExecType::PendingNew
        | ExecType::PendingCancel
        | ExecType::PendingReplace
        | ExecType::Expired => {
            let mut m = ExecutionReportStatusEncoder::frame(buf).ok()?;
            report_head!(m, seq, now, o, exec_id, leaves)
                .set_ord_status(status)
                .set_exec_type(e.exec_type.into())
                .set_ord_rej_reason(e.rej_reason.map(|r| r.min(u32::from(u16::MAX - 1)) as u16));
            m.set_cl_ord_id(e.cl_ord_id).ok()?;
            m.set_orig_cl_ord_id(orig).ok()?;
            m.set_text(why).ok()?;
            m.set_account(account).ok()?;
            m.set_symbol(symbol).ok()?;
            Some(ExecutionReportStatusEncoder::FRAME_LENGTH)
        }
    }
}

/// An OrderCancelReject; `order` is `None` when the order is unknown (or not the session's
/// to see): OrderID 0, OrdStatus Rejected, no account.
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn order_cancel_reject(
    buf: &mut [u8],
    seq: u64,
    now: Nanos,
    order: Option<&Order>,
    cl: &[u8],
    orig: &[u8],
    to: CancelRejectTo,
    reason: u32,
    why: &[u8],
) -> Option<usize> {
    let mut m = OrderCancelRejectEncoder::frame(buf).ok()?;
    let status = order.map_or(OrdStatus::Rejected, |o| {
        if o.status.is_terminal() {
            o.status
        } else {
            o.working_status()
        }
    });
    m.set_seq_num(seq)
        .set_sending_time(now.0)
        .set_poss_retrans(BooleanFlag::False)
        .set_order_id(order.map_or(0, |o| o.order_id))
        .set_transact_time(now.0)
        .set_cxl_rej_reason(reason.min(u32::from(u16::MAX)) as u16)
        .set_ord_status(status.into())
        .set_cxl_rej_response_to(match to {
            CancelRejectTo::Cancel => CxlRejResponseTo::Cancel,
            CancelRejectTo::Replace => CxlRejResponseTo::Replace,
        });
    // ClOrdIDs as the request carried them (≤ 20 bytes on an SBE session).
    m.set_cl_ord_id(cl.get(..20).unwrap_or(cl)).ok()?;
    m.set_orig_cl_ord_id(orig.get(..20).unwrap_or(orig)).ok()?;
    m.set_account(order.map_or(b"".as_slice(), |o| o.account.as_bytes()))
        .ok()?;
    m.set_text(text(why)).ok()?;
    Some(OrderCancelRejectEncoder::FRAME_LENGTH)
}

/// The answer to an OrderMassCancelRequest.
#[inline]
pub fn mass_cancel_report(
    buf: &mut [u8],
    seq: u64,
    now: Nanos,
    r: &MassCancelReport<'_>,
) -> Option<usize> {
    let mut m = OrderMassCancelReportEncoder::frame(buf).ok()?;
    let request =
        MassCancelRequestType::from_u8(r.request_type).unwrap_or(MassCancelRequestType::AllOrders);
    let response = match (r.accepted, request) {
        (false, _) => MassCancelResponse::Rejected,
        (true, MassCancelRequestType::BySymbol) => MassCancelResponse::BySymbol,
        (true, MassCancelRequestType::AllOrders) => MassCancelResponse::AllOrders,
    };
    m.set_seq_num(seq)
        .set_sending_time(now.0)
        .set_poss_retrans(BooleanFlag::False)
        .set_mass_action_report_id(r.report_id)
        .set_transact_time(now.0)
        .set_total_affected_orders(r.affected.min(u64::from(u32::MAX)) as u32)
        .set_mass_cancel_reject_reason((!r.accepted).then_some(99))
        .set_mass_cancel_request_type(request)
        .set_mass_cancel_response(response);
    m.set_cl_ord_id(r.cl_ord_id.get(..20).unwrap_or(r.cl_ord_id))
        .ok()?;
    m.set_text(text(r.text.unwrap_or(b""))).ok()?;
    Some(OrderMassCancelReportEncoder::FRAME_LENGTH)
}

/// A BusinessMessageReject of the message `ref_seq` (template `ref_template`).
#[allow(clippy::too_many_arguments)]
#[inline]
pub fn business_reject(
    buf: &mut [u8],
    seq: u64,
    now: Nanos,
    ref_seq: u64,
    ref_template: u16,
    ref_id: &[u8],
    reason: u32,
    why: &[u8],
    retry_after_ms: Option<u64>,
) -> Option<usize> {
    let mut m = BusinessMessageRejectEncoder::frame(buf).ok()?;
    m.set_seq_num(seq)
        .set_sending_time(now.0)
        .set_poss_retrans(BooleanFlag::False)
        .set_ref_seq_num(ref_seq)
        .set_retry_after_ms(retry_after_ms.map(|ms| ms.min(u64::from(u32::MAX - 1)) as u32))
        .set_ref_template_id(ref_template)
        .set_business_reject_reason(reason.min(u32::from(u16::MAX)) as u16);
    m.set_business_reject_ref_id(ref_id.get(..20).unwrap_or(ref_id))
        .ok()?;
    m.set_text(text(why)).ok()?;
    Some(BusinessMessageRejectEncoder::FRAME_LENGTH)
}
