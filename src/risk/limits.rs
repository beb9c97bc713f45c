//! HOT (data) — the limits one account trades under, the spec they are built from (every limit
//! required: a missing one is a construction error, never "unlimited"), per-key caps, and the
//! before/after record a limit change leaves for audit.

use core::fmt;

use super::reason::Notional;
use crate::model::{Account, Nanos, OrdType, Price, Qty, Symbol, TimeInForce};

/// Price collar around the reference price. With both parts set the tighter band applies; at
/// least one must be set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Collar {
    /// Half-width in basis points of the reference price (100 = 1 %).
    pub bps: Option<u32>,
    /// Half-width in ticks of the symbol's tick size.
    pub ticks: Option<u32>,
}

/// A set of OrdType <40> values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrdTypeSet(u8);

impl OrdTypeSet {
    pub const NONE: OrdTypeSet = OrdTypeSet(0);
    pub const ALL: OrdTypeSet = OrdTypeSet(0b11);
    const fn bit(t: OrdType) -> u8 {
        match t {
            OrdType::Market => 1,
            OrdType::Limit => 2,
        }
    }
    pub const fn with(self, t: OrdType) -> OrdTypeSet {
        OrdTypeSet(self.0 | Self::bit(t))
    }
    pub const fn contains(self, t: OrdType) -> bool {
        self.0 & Self::bit(t) != 0
    }
}

/// A set of TimeInForce <59> values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TifSet(u8);

impl TifSet {
    pub const NONE: TifSet = TifSet(0);
    pub const ALL: TifSet = TifSet(0b1111);
    const fn bit(t: TimeInForce) -> u8 {
        match t {
            TimeInForce::Day => 1,
            TimeInForce::GoodTillCancel => 2,
            TimeInForce::ImmediateOrCancel => 4,
            TimeInForce::FillOrKill => 8,
        }
    }
    pub const fn with(self, t: TimeInForce) -> TifSet {
        TifSet(self.0 | Self::bit(t))
    }
    pub const fn contains(self, t: TimeInForce) -> bool {
        self.0 & Self::bit(t) != 0
    }
}

/// Every limit of one account. All fields are required; [`RiskLimits::validate`] refuses
/// values that cannot be meant (zero periods, negative sizes, a collar with no band).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskLimits {
    /// Largest OrderQty <38> of one order.
    pub max_order_qty: Qty,
    /// Largest price × quantity of one order (market orders at the reference price).
    pub max_order_notional: Notional,
    pub collar: Collar,
    /// Oldest reference price an order may be checked against.
    pub reference_max_age: Nanos,
    /// Open-order notional + executed notional, buys and sells both counted.
    pub credit_limit: Notional,
    /// Per symbol: executed position + working buys may not exceed this.
    pub max_long: Qty,
    /// Per symbol: working sells − executed position may not exceed this.
    pub max_short: Qty,
    pub max_open_orders: u32,
    pub ord_types: OrdTypeSet,
    pub tifs: TifSet,
    /// Same account/side/symbol/qty/price inside this window is a duplicate; 0 turns it off.
    pub duplicate_window: Nanos,
    /// More than `max_msgs` new/replace messages in `rate_period` disables the account
    /// (RTS 6 Art 15(1)(a)).
    pub max_msgs: u32,
    pub rate_period: Nanos,
}

/// Names of the limits, as config keys: error messages and audit use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitName {
    MaxOrderQty,
    MaxOrderNotional,
    Collar,
    ReferenceMaxAge,
    CreditLimit,
    MaxLong,
    MaxShort,
    MaxOpenOrders,
    OrdTypes,
    Tifs,
    DuplicateWindow,
    MaxMsgs,
    RatePeriod,
}

impl LimitName {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitName::MaxOrderQty => "max_order_qty",
            LimitName::MaxOrderNotional => "max_order_notional",
            LimitName::Collar => "collar_bps/collar_ticks",
            LimitName::ReferenceMaxAge => "reference_max_age_ms",
            LimitName::CreditLimit => "credit_limit",
            LimitName::MaxLong => "max_long",
            LimitName::MaxShort => "max_short",
            LimitName::MaxOpenOrders => "max_open_orders",
            LimitName::OrdTypes => "ord_types",
            LimitName::Tifs => "time_in_force",
            LimitName::DuplicateWindow => "duplicate_window_ms",
            LimitName::MaxMsgs => "max_msgs",
            LimitName::RatePeriod => "rate_period_ms",
        }
    }
}

impl RiskLimits {
    /// The first limit whose value cannot be meant, if any.
    pub fn validate(&self) -> Result<(), LimitName> {
        let c = &self.collar;
        let checks = [
            (self.max_order_qty.0 > 0, LimitName::MaxOrderQty),
            (self.max_order_notional.0 > 0, LimitName::MaxOrderNotional),
            (c.bps.is_some() || c.ticks.is_some(), LimitName::Collar),
            (self.reference_max_age.0 > 0, LimitName::ReferenceMaxAge),
            (self.credit_limit.0 >= 0, LimitName::CreditLimit),
            (self.max_long.0 >= 0, LimitName::MaxLong),
            (self.max_short.0 >= 0, LimitName::MaxShort),
            (self.max_msgs > 0, LimitName::MaxMsgs),
            (self.rate_period.0 > 0, LimitName::RatePeriod),
        ];
        for (ok, name) in checks {
            if !ok {
                return Err(name);
            }
        }
        Ok(())
    }
}

/// Limits as read from config: each `None` is a missing limit, which [`LimitsSpec::build`]
/// refuses. `duplicate_window: Some(Nanos::ZERO)` is how a config turns that check off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimitsSpec {
    pub max_order_qty: Option<Qty>,
    pub max_order_notional: Option<Notional>,
    pub collar_bps: Option<u32>,
    pub collar_ticks: Option<u32>,
    pub reference_max_age: Option<Nanos>,
    pub credit_limit: Option<Notional>,
    pub max_long: Option<Qty>,
    pub max_short: Option<Qty>,
    pub max_open_orders: Option<u32>,
    pub ord_types: Option<OrdTypeSet>,
    pub tifs: Option<TifSet>,
    pub duplicate_window: Option<Nanos>,
    pub max_msgs: Option<u32>,
    pub rate_period: Option<Nanos>,
}

impl LimitsSpec {
    /// Every limit present and valid, or the first missing/invalid one named with `account`.
    pub fn build(&self, account: Account) -> Result<RiskLimits, BuildError> {
        let miss = |limit| BuildError::MissingLimit { account, limit };
        if self.collar_bps.is_none() && self.collar_ticks.is_none() {
            return Err(miss(LimitName::Collar));
        }
        let limits = RiskLimits {
            max_order_qty: self.max_order_qty.ok_or(miss(LimitName::MaxOrderQty))?,
            max_order_notional: self
                .max_order_notional
                .ok_or(miss(LimitName::MaxOrderNotional))?,
            collar: Collar {
                bps: self.collar_bps,
                ticks: self.collar_ticks,
            },
            reference_max_age: self
                .reference_max_age
                .ok_or(miss(LimitName::ReferenceMaxAge))?,
            credit_limit: self.credit_limit.ok_or(miss(LimitName::CreditLimit))?,
            max_long: self.max_long.ok_or(miss(LimitName::MaxLong))?,
            max_short: self.max_short.ok_or(miss(LimitName::MaxShort))?,
            max_open_orders: self.max_open_orders.ok_or(miss(LimitName::MaxOpenOrders))?,
            ord_types: self.ord_types.ok_or(miss(LimitName::OrdTypes))?,
            tifs: self.tifs.ok_or(miss(LimitName::Tifs))?,
            duplicate_window: self
                .duplicate_window
                .ok_or(miss(LimitName::DuplicateWindow))?,
            max_msgs: self.max_msgs.ok_or(miss(LimitName::MaxMsgs))?,
            rate_period: self.rate_period.ok_or(miss(LimitName::RatePeriod))?,
        };
        limits
            .validate()
            .map_err(|limit| BuildError::InvalidLimit { account, limit })?;
        Ok(limits)
    }
}

impl From<RiskLimits> for LimitsSpec {
    fn from(l: RiskLimits) -> LimitsSpec {
        LimitsSpec {
            max_order_qty: Some(l.max_order_qty),
            max_order_notional: Some(l.max_order_notional),
            collar_bps: l.collar.bps,
            collar_ticks: l.collar.ticks,
            reference_max_age: Some(l.reference_max_age),
            credit_limit: Some(l.credit_limit),
            max_long: Some(l.max_long),
            max_short: Some(l.max_short),
            max_open_orders: Some(l.max_open_orders),
            ord_types: Some(l.ord_types),
            tifs: Some(l.tifs),
            duplicate_window: Some(l.duplicate_window),
            max_msgs: Some(l.max_msgs),
            rate_period: Some(l.rate_period),
        }
    }
}

/// Optional caps for one authenticated key (session), checked in addition to the account's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyCaps {
    pub max_order_qty: Qty,
    pub max_order_notional: Notional,
}

/// One tradable symbol: its tick size (for tick collars) and whether it starts restricted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymbolSpec {
    pub symbol: Symbol,
    pub tick_size: Price,
    pub restricted: bool,
}

/// A before/after record of a limit change, for the audit journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitChange {
    /// Monotonic per risk core; reverts get their own number.
    pub seq: u64,
    pub account: Account,
    pub before: RiskLimits,
    pub after: RiskLimits,
    /// Caller's reason (ticket, operator action), or "temporary raise expired".
    pub reason: &'static str,
    /// When the change was applied (`now` of the call or of the check that reverted it).
    pub at: Nanos,
    /// For a temporary raise: when it reverts to `before`.
    pub expires_at: Option<Nanos>,
}

/// Why a risk core could not be built (fail closed: no partial table is ever returned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildError {
    MissingLimit {
        account: Account,
        limit: LimitName,
    },
    InvalidLimit {
        account: Account,
        limit: LimitName,
    },
    DuplicateAccount(Account),
    DuplicateSymbol(Symbol),
    /// Tick size zero or negative.
    InvalidTickSize(Symbol),
    /// `max_positions` or `duplicate_slots` is zero, or a table would not fit u32 indices.
    InvalidCapacity,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::MissingLimit { account, limit } => {
                write!(
                    f,
                    "risk: account {account}: limit {} missing",
                    limit.as_str()
                )
            }
            BuildError::InvalidLimit { account, limit } => {
                write!(
                    f,
                    "risk: account {account}: limit {} invalid",
                    limit.as_str()
                )
            }
            BuildError::DuplicateAccount(a) => write!(f, "risk: account {a} configured twice"),
            BuildError::DuplicateSymbol(s) => write!(f, "risk: symbol {s} configured twice"),
            BuildError::InvalidTickSize(s) => write!(f, "risk: symbol {s}: tick size must be > 0"),
            BuildError::InvalidCapacity => write!(f, "risk: table capacities must be > 0"),
        }
    }
}

impl std::error::Error for BuildError {}

/// Why a state transition or an ops call was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RiskError {
    UnknownAccount,
    UnknownSymbol,
    InvalidLimit(LimitName),
    /// A reference price must be positive.
    InvalidPrice,
    /// The symbol's reference price is fixed by configuration; venue prices do not move it.
    ReferencePinned,
    /// A fill needed a new position slot and the table is full (the fill is still counted in
    /// credit; the position is not).
    PositionTableFull,
}
