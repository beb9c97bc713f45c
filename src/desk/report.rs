//! HOT — what the order desk answers, protocol-neutral: the content of an execution report
//! ([`Exec`]) and of a cancel/replace refusal ([`CancelRejectTo`] and its reason codes). The
//! codes are FIX's enumerations (OrdRejReason <103>, CxlRejReason <102>), which the SBE schema
//! shares; each protocol's shell encodes them in its own wire format.

use crate::model::{ExecType, OrdStatus, Price, Qty};

/// What an ExecutionReport reports, beyond the order's own state.
#[derive(Clone, Copy, Debug)]
pub struct Exec<'a> {
    pub exec_type: ExecType,
    /// OrdStatus <39> to report (the order's, or Rejected for a refused instruction).
    pub status: OrdStatus,
    /// ClOrdID <11> to report: the instruction this report answers.
    pub cl_ord_id: &'a [u8],
    /// OrigClOrdID <41> for cancel/replace answers.
    pub orig_cl_ord_id: Option<&'a [u8]>,
    /// LastQty <32> / LastPx <31> of a fill.
    pub last: Option<(Qty, Price)>,
    /// OrdRejReason <103>.
    pub rej_reason: Option<u32>,
    pub text: Option<&'a [u8]>,
}

impl<'a> Exec<'a> {
    /// A report of `exec_type` with `status` answering `cl_ord_id`, nothing else set.
    pub const fn report(exec_type: ExecType, status: OrdStatus, cl_ord_id: &'a [u8]) -> Exec<'a> {
        Exec {
            exec_type,
            status,
            cl_ord_id,
            orig_cl_ord_id: None,
            last: None,
            rej_reason: None,
            text: None,
        }
    }
}

/// CxlRejResponseTo <434>.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelRejectTo {
    Cancel,
    Replace,
}

/// CxlRejReason <102> values.
pub mod cxl_rej_reason {
    pub const TOO_LATE_TO_CANCEL: u32 = 0;
    pub const UNKNOWN_ORDER: u32 = 1;
    pub const BROKER_OPTION: u32 = 2;
    pub const ALREADY_PENDING: u32 = 3;
    pub const DUPLICATE_CL_ORD_ID: u32 = 6;
    pub const OTHER: u32 = 99;
}

/// OrdRejReason <103> values we use.
pub mod ord_rej_reason {
    pub const BROKER_OPTION: u32 = 0;
    pub const UNKNOWN_SYMBOL: u32 = 1;
    pub const EXCHANGE_CLOSED: u32 = 2;
    pub const UNKNOWN_ORDER: u32 = 5;
    pub const DUPLICATE_ORDER: u32 = 6;
    pub const UNSUPPORTED_ORDER_CHARACTERISTIC: u32 = 11;
    pub const INCORRECT_QUANTITY: u32 = 13;
    pub const OTHER: u32 = 99;
}
