//! HOT — the outcome of a pre-trade check: [`Verdict`], the [`Reason`] for a reject with the limit
//! and the value that broke it, the human Text <58> written without `format!`, and the
//! OrdRejReason <103> code.

use crate::model::{
    Nanos, OrdType, Price, Qty, TimeInForce, PRICE_DECIMALS, QTY_DECIMALS, QTY_SCALE,
};

/// A notional amount in units of 10^-8 of the account currency (the scale of
/// [`crate::model::notional`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Notional(pub i128);

impl Notional {
    pub const ZERO: Notional = Notional(0);
    pub const fn from_units(u: i64) -> Notional {
        Notional(u as i128 * crate::model::PRICE_SCALE as i128)
    }
    /// The same amount in the exact internal scale (price units × quantity units, 10^-12).
    pub(crate) const fn raw(self) -> i128 {
        self.0.saturating_mul(QTY_SCALE as i128)
    }
    /// From the internal scale, rounded up, so a reported breach never prints as equal.
    pub(crate) const fn from_raw_ceil(raw: i128) -> Notional {
        let q = raw.div_euclid(QTY_SCALE as i128);
        if raw.rem_euclid(QTY_SCALE as i128) == 0 {
            Notional(q)
        } else {
            Notional(q + 1)
        }
    }
    /// From the internal scale, truncated (for reports of state, not of breaches).
    pub(crate) const fn from_raw(raw: i128) -> Notional {
        // i64 division when the value fits (every realistic order): a 128-bit division is a
        // library call of ~100 instructions. Both truncate toward zero.
        if raw >= i64::MIN as i128 && raw <= i64::MAX as i128 {
            Notional(((raw as i64) / QTY_SCALE) as i128)
        } else {
            Notional(raw / QTY_SCALE as i128)
        }
    }
}

/// The answer of a pre-trade check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject(Reason),
}

/// Which check refused an order, with the limit and the offending value where there are numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The account is not in the risk table (unknown accounts are never traded).
    UnknownAccount,
    /// The symbol has no reference data entry.
    UnknownSymbol,
    /// The message rate limit tripped earlier; only `enable_account` re-enables.
    AccountDisabled,
    /// The global kill switch is on.
    KilledGlobal,
    /// The account's kill switch is on.
    KilledAccount,
    /// The symbol's kill switch is on.
    KilledSymbol,
    /// The kill switch of the key (session) the order came in on is on.
    KilledKey,
    /// The symbol is on the restricted list.
    RestrictedSymbol,
    /// OrdType <40> not in the account's allowed set.
    OrdTypeNotAllowed {
        ord_type: OrdType,
    },
    /// TimeInForce <59> not in the account's allowed set.
    TifNotAllowed {
        tif: TimeInForce,
    },
    /// OrderQty <38> is zero or negative.
    InvalidQty {
        value: Qty,
    },
    /// A limit order without a positive Price <44>.
    InvalidPrice,
    MaxOrderQty {
        limit: Qty,
        value: Qty,
    },
    /// The per-key cap, tighter than the account's.
    KeyMaxOrderQty {
        limit: Qty,
        value: Qty,
    },
    MaxOrderNotional {
        limit: Notional,
        value: Notional,
    },
    KeyMaxOrderNotional {
        limit: Notional,
        value: Notional,
    },
    /// No reference price has been received for the symbol (fail closed).
    ReferenceMissing,
    /// The reference price is older than the account allows.
    ReferenceStale {
        max_age: Nanos,
        age: Nanos,
    },
    /// The limit price is outside `[low, high]` around the reference price.
    PriceCollar {
        low: Price,
        high: Price,
        value: Price,
    },
    /// Open + executed + this order's notional would exceed the credit limit.
    CreditLimit {
        limit: Notional,
        value: Notional,
    },
    /// Executed + working buys would exceed the long limit.
    LongPositionLimit {
        limit: Qty,
        value: Qty,
    },
    /// Executed + working sells would exceed the short limit (value is the short size).
    ShortPositionLimit {
        limit: Qty,
        value: Qty,
    },
    MaxOpenOrders {
        limit: u32,
        value: u32,
    },
    /// The same account/side/symbol/qty/price was accepted `age` ago, inside `window`.
    DuplicateOrder {
        window: Nanos,
        age: Nanos,
    },
    /// More than `limit` messages in `period`: the account is now disabled.
    RateLimit {
        limit: u32,
        period: Nanos,
    },
    /// The per-account per-symbol position table is full.
    PositionTableFull {
        capacity: u32,
    },
}

/// OrdRejReason <103> values (FIX 4.2/4.4; the 5.0 "price band" code 16 is not used so that 4.x
/// counterparties accept it).
pub mod ord_rej_reason {
    pub const BROKER_OPTION: u32 = 0;
    pub const UNKNOWN_SYMBOL: u32 = 1;
    pub const ORDER_EXCEEDS_LIMIT: u32 = 3;
    pub const DUPLICATE_ORDER: u32 = 6;
    pub const UNSUPPORTED_ORDER_CHARACTERISTIC: u32 = 11;
    pub const INCORRECT_QUANTITY: u32 = 13;
    pub const UNKNOWN_ACCOUNT: u32 = 15;
    pub const OTHER: u32 = 99;
}

impl Reason {
    /// OrdRejReason <103> to send with this reject.
    pub fn ord_rej_reason(&self) -> u32 {
        use ord_rej_reason::*;
        match self {
            Reason::UnknownAccount => UNKNOWN_ACCOUNT,
            Reason::UnknownSymbol => UNKNOWN_SYMBOL,
            Reason::AccountDisabled
            | Reason::KilledGlobal
            | Reason::KilledAccount
            | Reason::KilledSymbol
            | Reason::KilledKey
            | Reason::RestrictedSymbol
            | Reason::ReferenceMissing
            | Reason::ReferenceStale { .. }
            | Reason::PriceCollar { .. } => BROKER_OPTION,
            Reason::OrdTypeNotAllowed { .. } | Reason::TifNotAllowed { .. } => {
                UNSUPPORTED_ORDER_CHARACTERISTIC
            }
            Reason::InvalidQty { .. } => INCORRECT_QUANTITY,
            Reason::InvalidPrice | Reason::PositionTableFull { .. } => OTHER,
            Reason::MaxOrderQty { .. }
            | Reason::KeyMaxOrderQty { .. }
            | Reason::MaxOrderNotional { .. }
            | Reason::KeyMaxOrderNotional { .. }
            | Reason::CreditLimit { .. }
            | Reason::LongPositionLimit { .. }
            | Reason::ShortPositionLimit { .. }
            | Reason::MaxOpenOrders { .. }
            | Reason::RateLimit { .. } => ORDER_EXCEEDS_LIMIT,
            Reason::DuplicateOrder { .. } => DUPLICATE_ORDER,
        }
    }

    /// Writes the Text <58> for this reject into `out` and returns the length written. A short
    /// buffer truncates the text; 128 bytes always hold it whole.
    #[cold]
    #[inline(never)]
    pub fn write_text(&self, out: &mut [u8]) -> usize {
        let mut w = Cursor { buf: out, len: 0 };
        match *self {
            Reason::UnknownAccount => w.s(b"unknown account"),
            Reason::UnknownSymbol => w.s(b"unknown symbol"),
            Reason::AccountDisabled => w.s(b"account disabled by message rate limit"),
            Reason::KilledGlobal => w.s(b"kill switch: all trading halted"),
            Reason::KilledAccount => w.s(b"kill switch: account halted"),
            Reason::KilledSymbol => w.s(b"kill switch: symbol halted"),
            Reason::KilledKey => w.s(b"kill switch: key halted"),
            Reason::RestrictedSymbol => w.s(b"restricted symbol"),
            Reason::OrdTypeNotAllowed { ord_type } => {
                w.s(b"OrdType(40) not allowed for account: ");
                w.s(&[ord_type.to_fix()]);
            }
            Reason::TifNotAllowed { tif } => {
                w.s(b"TimeInForce(59) not allowed for account: ");
                w.s(&[tif.to_fix()]);
            }
            Reason::InvalidQty { value } => {
                w.s(b"order quantity must be positive: ");
                w.qty(value);
            }
            Reason::InvalidPrice => w.s(b"limit price missing or not positive"),
            Reason::MaxOrderQty { limit, value } => {
                w.s(b"max order quantity exceeded: ");
                w.qty(value);
                w.s(b" > ");
                w.qty(limit);
            }
            Reason::KeyMaxOrderQty { limit, value } => {
                w.s(b"key max order quantity exceeded: ");
                w.qty(value);
                w.s(b" > ");
                w.qty(limit);
            }
            Reason::MaxOrderNotional { limit, value } => {
                w.s(b"max order notional exceeded: ");
                w.notional(value);
                w.s(b" > ");
                w.notional(limit);
            }
            Reason::KeyMaxOrderNotional { limit, value } => {
                w.s(b"key max order notional exceeded: ");
                w.notional(value);
                w.s(b" > ");
                w.notional(limit);
            }
            Reason::ReferenceMissing => w.s(b"no reference price for symbol"),
            Reason::ReferenceStale { max_age, age } => {
                w.s(b"reference price stale: ");
                w.ms(age);
                w.s(b" > ");
                w.ms(max_age);
            }
            Reason::PriceCollar { low, high, value } => {
                w.s(b"price outside collar: ");
                w.price(value);
                w.s(b" not in [");
                w.price(low);
                w.s(b", ");
                w.price(high);
                w.s(b"]");
            }
            Reason::CreditLimit { limit, value } => {
                w.s(b"credit limit exceeded: ");
                w.notional(value);
                w.s(b" > ");
                w.notional(limit);
            }
            Reason::LongPositionLimit { limit, value } => {
                w.s(b"long position limit exceeded: ");
                w.qty(value);
                w.s(b" > ");
                w.qty(limit);
            }
            Reason::ShortPositionLimit { limit, value } => {
                w.s(b"short position limit exceeded: ");
                w.qty(value);
                w.s(b" > ");
                w.qty(limit);
            }
            Reason::MaxOpenOrders { limit, value } => {
                w.s(b"max open orders exceeded: ");
                w.fixed(i128::from(value), 0, 0);
                w.s(b" > ");
                w.fixed(i128::from(limit), 0, 0);
            }
            Reason::DuplicateOrder { window, age } => {
                w.s(b"duplicate order: same order accepted ");
                w.ms(age);
                w.s(b" ago, window ");
                w.ms(window);
            }
            Reason::RateLimit { limit, period } => {
                w.s(b"message rate limit exceeded: more than ");
                w.fixed(i128::from(limit), 0, 0);
                w.s(b" per ");
                w.ms(period);
                w.s(b"; account disabled");
            }
            Reason::PositionTableFull { capacity } => {
                w.s(b"risk position table full: ");
                w.fixed(i128::from(capacity), 0, 0);
                w.s(b" positions");
            }
        }
        w.len
    }
}

/// A truncating writer into a caller's buffer.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Cursor<'_> {
    fn s(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }
    fn qty(&mut self, q: Qty) {
        self.fixed(i128::from(q.0), QTY_DECIMALS, 0);
    }
    fn price(&mut self, p: Price) {
        self.fixed(i128::from(p.0), PRICE_DECIMALS, 2);
    }
    fn notional(&mut self, n: Notional) {
        self.fixed(n.0, PRICE_DECIMALS, 2);
    }
    /// Nanoseconds as milliseconds, up to 6 decimals.
    fn ms(&mut self, t: Nanos) {
        self.fixed(i128::from(t.0), 6, 0);
        self.s(b"ms");
    }
    /// `v / 10^decimals` in decimal, with trailing fraction zeros trimmed down to `min_frac`.
    fn fixed(&mut self, v: i128, decimals: u32, min_frac: u32) {
        if v < 0 {
            self.s(b"-");
        }
        let abs = v.unsigned_abs();
        let scale = 10u128.pow(decimals);
        self.digits(abs / scale, 1);
        let mut frac = abs % scale;
        let mut n = decimals;
        while n > min_frac && frac % 10 == 0 {
            frac /= 10;
            n -= 1;
        }
        if n > 0 {
            self.s(b".");
            self.digits(frac, n);
        }
    }
    /// `v` in decimal, zero-padded to at least `width` digits.
    fn digits(&mut self, mut v: u128, width: u32) {
        let mut tmp = [0u8; 40];
        let mut i = tmp.len();
        let mut written = 0;
        while (v > 0 || written < width) && i > 0 {
            i -= 1;
            if let Some(d) = tmp.get_mut(i) {
                *d = b'0' + (v % 10) as u8;
            }
            v /= 10;
            written += 1;
        }
        if let Some(t) = tmp.get(i..) {
            self.s(t);
        }
    }
}
