//! BOUNDARY — the value types every stage shares: time, sequence numbers, fixed-point prices and
//! quantities, and the FIX enumerations of the order model.
//!
//! Everything here is `Copy`, heap-free and has no behaviour beyond conversions, so both the hot
//! thread and the cold threads may use it. Prices and quantities are fixed-point integers: there
//! is no `f64` on the order path.

use core::fmt;

/// Nanoseconds since the Unix epoch, UTC. The clock module is the only producer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nanos(pub u64);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);
    pub const fn from_millis(ms: u64) -> Nanos {
        Nanos(ms * 1_000_000)
    }
    pub const fn from_secs(s: u64) -> Nanos {
        Nanos(s * 1_000_000_000)
    }
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }
    pub const fn saturating_sub(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_sub(other.0))
    }
    pub const fn add(self, other: Nanos) -> Nanos {
        Nanos(self.0.saturating_add(other.0))
    }
}

/// MsgSeqNum <34>.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqNum(pub u64);

/// Index of a session in the engine's preallocated session table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct SessionId(pub u32);

impl SessionId {
    /// No configured session (an event about a Logon that matched none).
    pub const NONE: SessionId = SessionId(u32::MAX);

    /// The session at index `i` of the session table (tables hold far fewer than 2^32).
    #[inline]
    pub const fn of(i: usize) -> SessionId {
        SessionId(i as u32)
    }

    /// Its index in the session table.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A connection slot in the engine's preallocated connection slab; it is also the connection's
/// mio `Token` (`engine::conns`). Slabs hold at most 65 536 slots (`gateway.max_connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct ConnId(pub u32);

impl ConnId {
    /// The slot at index `i` of the connection slab (slabs hold far fewer than 2^32).
    #[inline]
    pub const fn of(i: usize) -> ConnId {
        ConnId(i as u32)
    }

    /// Its index in the connection slab.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A venue: its index in the configured `[[venue]]` list (at most 65 536, the width of the
/// order record's venue field).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct VenueId(pub u16);

impl VenueId {
    /// The venue at index `i` of the venue list; `None` beyond what a `u16` holds.
    #[inline]
    pub fn of(i: usize) -> Option<VenueId> {
        u16::try_from(i).ok().map(VenueId)
    }

    /// Its index in the venue list.
    #[inline]
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// Decimal places carried by [`Price`]: 1 unit = 10^-8.
pub const PRICE_SCALE: i64 = 100_000_000;
/// Decimal places carried by [`Qty`]: 1 unit = 10^-4 (fractional shares, crypto lots).
pub const QTY_SCALE: i64 = 10_000;
/// Number of decimal digits behind [`PRICE_SCALE`].
pub const PRICE_DECIMALS: u32 = 8;
/// Number of decimal digits behind [`QTY_SCALE`].
pub const QTY_DECIMALS: u32 = 4;

/// A price in units of 10^-8.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Price(pub i64);

/// A quantity in units of 10^-4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Qty(pub i64);

impl Qty {
    pub const ZERO: Qty = Qty(0);
    pub const fn from_units(u: i64) -> Qty {
        Qty(u * QTY_SCALE)
    }
}

impl Price {
    pub const fn from_units(u: i64) -> Price {
        Price(u * PRICE_SCALE)
    }
}

/// Notional value of `qty` at `px` in units of 10^-8 of the currency, exact in `i128`.
pub fn notional(px: Price, qty: Qty) -> i128 {
    (px.0 as i128) * (qty.0 as i128) / (QTY_SCALE as i128)
}

/// Side <54>.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
    SellShort,
}

impl Side {
    pub fn from_fix(b: u8) -> Option<Side> {
        match b {
            b'1' => Some(Side::Buy),
            b'2' => Some(Side::Sell),
            b'5' => Some(Side::SellShort),
            _ => None,
        }
    }
    pub fn to_fix(self) -> u8 {
        match self {
            Side::Buy => b'1',
            Side::Sell => b'2',
            Side::SellShort => b'5',
        }
    }
    pub fn is_buy(self) -> bool {
        matches!(self, Side::Buy)
    }
}

/// OrdType <40>.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrdType {
    Market,
    Limit,
}

impl OrdType {
    pub fn from_fix(b: u8) -> Option<OrdType> {
        match b {
            b'1' => Some(OrdType::Market),
            b'2' => Some(OrdType::Limit),
            _ => None,
        }
    }
    pub fn to_fix(self) -> u8 {
        match self {
            OrdType::Market => b'1',
            OrdType::Limit => b'2',
        }
    }
}

/// TimeInForce <59>.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum TimeInForce {
    #[default]
    Day,
    GoodTillCancel,
    ImmediateOrCancel,
    FillOrKill,
}

impl TimeInForce {
    pub fn from_fix(b: u8) -> Option<TimeInForce> {
        match b {
            b'0' => Some(TimeInForce::Day),
            b'1' => Some(TimeInForce::GoodTillCancel),
            b'3' => Some(TimeInForce::ImmediateOrCancel),
            b'4' => Some(TimeInForce::FillOrKill),
            _ => None,
        }
    }
    pub fn to_fix(self) -> u8 {
        match self {
            TimeInForce::Day => b'0',
            TimeInForce::GoodTillCancel => b'1',
            TimeInForce::ImmediateOrCancel => b'3',
            TimeInForce::FillOrKill => b'4',
        }
    }
}

/// OrdStatus <39>.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrdStatus {
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    Replaced,
    PendingCancel,
    Rejected,
    PendingNew,
    Expired,
    PendingReplace,
}

impl OrdStatus {
    pub fn to_fix(self) -> u8 {
        match self {
            OrdStatus::New => b'0',
            OrdStatus::PartiallyFilled => b'1',
            OrdStatus::Filled => b'2',
            OrdStatus::Canceled => b'4',
            OrdStatus::Replaced => b'5',
            OrdStatus::PendingCancel => b'6',
            OrdStatus::Rejected => b'8',
            OrdStatus::PendingNew => b'A',
            OrdStatus::Expired => b'C',
            OrdStatus::PendingReplace => b'E',
        }
    }
    pub fn from_fix(b: u8) -> Option<OrdStatus> {
        Some(match b {
            b'0' => OrdStatus::New,
            b'1' => OrdStatus::PartiallyFilled,
            b'2' => OrdStatus::Filled,
            b'4' => OrdStatus::Canceled,
            b'5' => OrdStatus::Replaced,
            b'6' => OrdStatus::PendingCancel,
            b'8' => OrdStatus::Rejected,
            b'A' => OrdStatus::PendingNew,
            b'C' => OrdStatus::Expired,
            b'E' => OrdStatus::PendingReplace,
            _ => return None,
        })
    }
    /// Filled, Canceled, Rejected, Expired and Replaced orders take no more executions.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            OrdStatus::Filled
                | OrdStatus::Canceled
                | OrdStatus::Rejected
                | OrdStatus::Expired
                | OrdStatus::Replaced
        )
    }
}

/// ExecType <150> (FIX 4.4 values; FIX 4.2 partial/fill map to '1'/'2' on the way out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExecType {
    New,
    Canceled,
    Replaced,
    PendingCancel,
    Rejected,
    PendingNew,
    Expired,
    Trade,
    PendingReplace,
    OrderStatus,
}

impl ExecType {
    pub fn to_fix(self) -> u8 {
        match self {
            ExecType::New => b'0',
            ExecType::Canceled => b'4',
            ExecType::Replaced => b'5',
            ExecType::PendingCancel => b'6',
            ExecType::Rejected => b'8',
            ExecType::PendingNew => b'A',
            ExecType::Expired => b'C',
            ExecType::Trade => b'F',
            ExecType::PendingReplace => b'E',
            ExecType::OrderStatus => b'I',
        }
    }
}

impl fmt::Display for Nanos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

/// A short identifier held inline (no heap): symbols, ClOrdIDs, accounts, CompIDs.
///
/// Longer input is refused by [`InlineStr::new`], so callers answer it as an out-of-range value
/// instead of silently truncating.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InlineStr<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineStr<N> {
    pub const EMPTY: Self = InlineStr {
        len: 0,
        bytes: [0; N],
    };

    /// `None` when `s` is longer than `N` bytes (N ≤ 255).
    pub fn new(s: &[u8]) -> Option<Self> {
        if s.len() > N || N > 255 {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..s.len()].copy_from_slice(s);
        Some(InlineStr {
            len: s.len() as u8,
            bytes,
        })
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("?")
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn len(&self) -> usize {
        self.len as usize
    }
    /// `v` in decimal (empty when it does not fit in `N`).
    pub fn from_u64(v: u64) -> Self {
        let mut b = [0u8; 20];
        let n = crate::fix::encode::write_u64(&mut b, v);
        b.get(..n).and_then(Self::new).unwrap_or(Self::EMPTY)
    }
}

impl<const N: usize> Default for InlineStr<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl<const N: usize> fmt::Display for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// Symbol <55>.
pub type Symbol = InlineStr<24>;
/// ClOrdID <11> / OrigClOrdID <41> / OrderID <37> / ExecID <17>.
pub type OrderIdStr = InlineStr<40>;
/// A venue's OrderID <37> for our order, as the venue sent it (venues use letters too).
pub type VenueOrderId = InlineStr<32>;
/// Account <1>.
pub type Account = InlineStr<24>;
/// SenderCompID <49> / TargetCompID <56>.
pub type CompId = InlineStr<32>;

/// Index of an order in the engine's preallocated order table; also the key venues use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderKey(pub u32);
