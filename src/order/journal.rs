//! HOT (append) / COLD (replay) — the order journal: a snapshot of an order after every change,
//! appended to an mmap'd [`AppendLog`] *before* the order is routed and before any
//! ExecutionReport about the change is sent. Replaying the journal (last snapshot per key wins)
//! rebuilds the order table after a crash.
//!
//! Snapshot layout (little endian), `SNAPSHOT_BYTES` long:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | session tag (FNV-1a of `begin|our|their`), stable across config reordering |
//! | 8 | 41 | ClOrdID (len + 40) |
//! | 49 | 41 | OrigClOrdID |
//! | 90 | 8 | OrderID |
//! | 98 | 25 | Account (len + 24) |
//! | 123 | 25 | Symbol |
//! | 148 | 1 | Side (FIX char) |
//! | 149 | 1 | OrdType |
//! | 150 | 1 | TimeInForce |
//! | 151 | 1 | has price |
//! | 152 | 8 | price |
//! | 160 | 8 | qty |
//! | 168 | 8 | cum qty |
//! | 176 | 16 | filled notional (i128) |
//! | 192 | 1 | OrdStatus |
//! | 193 | 2 | venue |
//! | 195 | 8 | venue order id as a number (snapshots shorter than 396 bytes; now 0) |
//! | 203 | 8 | received at (ns) |
//! | 211 | 4 | exec seq |
//! | 215 | 4 | venue live request number |
//! | 219 | 4 | venue last request number |
//! | 223 | 8 | reserved price (risk) |
//! | 231 | 32 | times: instruction, decision, sent, venue answer (ns each) |
//! | 263 | 25 | trader id (len + 24) |
//! | 288 | 25 | decision maker id |
//! | 313 | 25 | SecurityID |
//! | 338 | 1 | SecurityIDSource (0 = none) |
//! | 339 | 4 | Currency (len + 3) |
//! | 343 | 17 | ExecInst (len + 16) |
//! | 360 | 1 | route reason: 0 none, 1 rule, 2 ExDestination, 3 default |
//! | 361 | 2 | route rule index |
//! | 363 | 33 | venue order id as the venue sent it (len + 32) |
//!
//! Snapshots written before the reserved price existed (223 bytes) replay with the limit price
//! as the reserved price; snapshots written before the timestamps and details existed (223 or
//! 231 bytes long) replay with those fields zero; snapshots written before venue order ids were
//! kept as text (223, 231 or 363 bytes) replay the numeric one at 195.

use std::io;
use std::path::Path;

use super::{Order, OrderDetail, OrderTimes, Pending};
use crate::model::{
    Account, InlineStr, Nanos, OrdStatus, OrdType, OrderIdStr, OrderKey, Price, Qty, SessionId,
    Side, Symbol, TimeInForce,
};
use crate::route::RouteReason;
use crate::store::AppendLog;

/// Record kind of an order snapshot.
pub const KIND_SNAPSHOT: u16 = 1;
/// Bytes in one snapshot.
pub const SNAPSHOT_BYTES: usize = 396;
/// Bytes in a snapshot written before timestamps and record details were journaled.
const SNAPSHOT_V1_BYTES: usize = 223;
/// Bytes in a snapshot written before timestamps and record details, with the reserved price.
const SNAPSHOT_V2_BYTES: usize = 231;
/// Bytes in a snapshot written before venue order ids were kept as text.
const SNAPSHOT_V3_BYTES: usize = 363;

/// The order journal.
pub struct Journal {
    log: AppendLog,
}

/// A stable tag for a session, from its identity.
pub fn session_tag(begin: &[u8], our: &[u8], their: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [begin, b"|", our, b"|", their] {
        for b in part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

impl Journal {
    pub fn open(dir: &Path, segment_bytes: usize) -> io::Result<Journal> {
        Ok(Journal {
            log: AppendLog::open(dir, "orders", segment_bytes)?,
        })
    }

    /// Appends the current state of `order` (no allocation, no syscall in steady state).
    #[inline]
    pub fn record(&mut self, key: OrderKey, order: &Order, session_tag: u64) -> io::Result<()> {
        let mut buf = [0u8; SNAPSHOT_BYTES];
        encode(order, session_tag, &mut buf);
        self.log
            .append(KIND_SNAPSHOT, u64::from(key.0), &buf)
            .map(|_| ())
    }

    /// Every snapshot in order: `(key, session tag, order)`.
    pub fn replay(&self) -> impl Iterator<Item = (OrderKey, u64, Order)> + '_ {
        self.log
            .iter()
            .filter(|r| r.kind == KIND_SNAPSHOT)
            .filter_map(|r| {
                let (tag, o) = decode(r.payload)?;
                Some((OrderKey(r.user as u32), tag, o))
            })
    }

    pub fn flush(&self) -> io::Result<()> {
        self.log.flush()
    }
}

fn put_str<const N: usize>(buf: &mut [u8], at: usize, s: &InlineStr<N>) {
    buf[at] = s.len() as u8;
    buf[at + 1..at + 1 + s.len()].copy_from_slice(s.as_bytes());
}

fn get_str<const N: usize>(buf: &[u8], at: usize) -> Option<InlineStr<N>> {
    let len = usize::from(*buf.get(at)?);
    InlineStr::new(buf.get(at + 1..at + 1 + len)?)
}

pub(crate) fn encode(o: &Order, tag: u64, buf: &mut [u8; SNAPSHOT_BYTES]) {
    buf[0..8].copy_from_slice(&tag.to_le_bytes());
    put_str(buf, 8, &o.cl_ord_id);
    put_str(buf, 49, &o.orig_cl_ord_id);
    buf[90..98].copy_from_slice(&o.order_id.to_le_bytes());
    put_str(buf, 98, &o.account);
    put_str(buf, 123, &o.symbol);
    buf[148] = o.side.to_fix();
    buf[149] = o.ord_type.to_fix();
    buf[150] = o.tif.to_fix();
    buf[151] = u8::from(o.price.is_some());
    buf[152..160].copy_from_slice(&o.price.map_or(0, |p| p.0).to_le_bytes());
    buf[160..168].copy_from_slice(&o.qty.0.to_le_bytes());
    buf[168..176].copy_from_slice(&o.cum_qty.0.to_le_bytes());
    buf[176..192].copy_from_slice(&o.filled_notional.to_le_bytes());
    buf[192] = o.status.to_fix();
    buf[193..195].copy_from_slice(&o.venue.0.to_le_bytes());
    buf[195..203].copy_from_slice(&0u64.to_le_bytes());
    put_str(buf, 363, &o.venue_order_id);
    buf[203..211].copy_from_slice(&o.received_at.0.to_le_bytes());
    buf[211..215].copy_from_slice(&o.exec_seq.to_le_bytes());
    buf[215..219].copy_from_slice(&o.venue_live.to_le_bytes());
    buf[219..223].copy_from_slice(&o.venue_req.to_le_bytes());
    buf[223..231].copy_from_slice(&o.reserved_price.0.to_le_bytes());
    let t = &o.times;
    for (i, v) in [t.instruction, t.decision, t.sent, t.venue]
        .into_iter()
        .enumerate()
    {
        buf[231 + 8 * i..239 + 8 * i].copy_from_slice(&v.0.to_le_bytes());
    }
    let d = &o.detail;
    put_str(buf, 263, &d.trader);
    put_str(buf, 288, &d.decision_maker);
    put_str(buf, 313, &d.security_id);
    buf[338] = d.security_id_source;
    put_str(buf, 339, &d.currency);
    put_str(buf, 343, &d.exec_inst);
    let (kind, rule) = match d.route {
        None => (0, 0),
        Some(RouteReason::Rule(r)) => (1, r),
        Some(RouteReason::ExDestination) => (2, 0),
        Some(RouteReason::Default) => (3, 0),
    };
    buf[360] = kind;
    buf[361..363].copy_from_slice(&rule.to_le_bytes());
}

/// The timestamps and record details of a current-format snapshot (zero for old ones).
fn decode_extra(buf: &[u8]) -> Option<(OrderTimes, OrderDetail)> {
    if buf.len() < SNAPSHOT_V3_BYTES {
        return Some((OrderTimes::default(), OrderDetail::default()));
    }
    let t = |i: usize| -> Option<Nanos> {
        Some(Nanos(u64::from_le_bytes(
            buf.get(231 + 8 * i..239 + 8 * i)?.try_into().ok()?,
        )))
    };
    let times = OrderTimes {
        instruction: t(0)?,
        decision: t(1)?,
        sent: t(2)?,
        venue: t(3)?,
    };
    let rule = u16::from_le_bytes([*buf.get(361)?, *buf.get(362)?]);
    let detail = OrderDetail {
        trader: get_str(buf, 263)?,
        decision_maker: get_str(buf, 288)?,
        security_id: get_str(buf, 313)?,
        security_id_source: *buf.get(338)?,
        currency: get_str(buf, 339)?,
        exec_inst: get_str(buf, 343)?,
        route: match buf.get(360)? {
            1 => Some(RouteReason::Rule(rule)),
            2 => Some(RouteReason::ExDestination),
            3 => Some(RouteReason::Default),
            _ => None,
        },
    };
    Some((times, detail))
}

fn decode(buf: &[u8]) -> Option<(u64, Order)> {
    if buf.len() < SNAPSHOT_V1_BYTES {
        return None;
    }
    let (times, detail) = decode_extra(buf)?;
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_le_bytes(buf.get(at..at + 8)?.try_into().ok()?))
    };
    let i64_at = |at: usize| u64_at(at).map(|v| v as i64);
    let tag = u64_at(0)?;
    let cl_ord_id: OrderIdStr = get_str(buf, 8)?;
    let orig_cl_ord_id: OrderIdStr = get_str(buf, 49)?;
    let account: Account = get_str(buf, 98)?;
    let symbol: Symbol = get_str(buf, 123)?;
    let mut order = Order {
        session: SessionId(u32::MAX),
        cl_ord_id,
        orig_cl_ord_id,
        order_id: u64_at(90)?,
        account,
        symbol,
        side: Side::from_fix(buf[148])?,
        ord_type: OrdType::from_fix(buf[149])?,
        tif: TimeInForce::from_fix(buf[150])?,
        price: (buf[151] == 1).then(|| i64_at(152).map(Price)).flatten(),
        qty: Qty(i64_at(160)?),
        cum_qty: Qty(i64_at(168)?),
        filled_notional: i128::from_le_bytes(buf.get(176..192)?.try_into().ok()?),
        status: OrdStatus::from_fix(buf[192])?,
        venue: crate::model::VenueId(u16::from_le_bytes([buf[193], buf[194]])),
        venue_order_id: if buf.len() >= SNAPSHOT_BYTES {
            get_str(buf, 363)?
        } else {
            match u64_at(195)? {
                0 => crate::model::VenueOrderId::EMPTY,
                v => crate::model::VenueOrderId::from_u64(v),
            }
        },
        pending: Pending::None,
        received_at: Nanos(u64_at(203)?),
        exec_seq: u32::from_le_bytes(buf.get(211..215)?.try_into().ok()?),
        venue_live: u32::from_le_bytes(buf.get(215..219)?.try_into().ok()?),
        venue_req: u32::from_le_bytes(buf.get(219..223)?.try_into().ok()?),
        reserved_price: Price(0),
        live: true,
        times,
        detail,
    };
    order.reserved_price = match i64_at(223) {
        Some(p) if buf.len() >= SNAPSHOT_V2_BYTES => Price(p),
        _ => order.price.unwrap_or(Price(0)),
    };
    Some((tag, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_round_trip_and_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path(), 1 << 20).unwrap();
        let mut o = Order {
            session: SessionId(3),
            cl_ord_id: OrderIdStr::new(b"C-1").unwrap(),
            orig_cl_ord_id: OrderIdStr::EMPTY,
            order_id: 42,
            account: Account::new(b"ACC").unwrap(),
            symbol: Symbol::new(b"MSFT").unwrap(),
            side: Side::Sell,
            ord_type: OrdType::Limit,
            tif: TimeInForce::GoodTillCancel,
            price: Some(Price(12_345_000_000)),
            qty: Qty::from_units(10),
            cum_qty: Qty::ZERO,
            filled_notional: 0,
            status: OrdStatus::PendingNew,
            venue: crate::model::VenueId(2),
            venue_order_id: crate::model::VenueOrderId::new(b"XV-7Q2").unwrap(),
            pending: Pending::None,
            received_at: Nanos(99),
            exec_seq: 0,
            venue_live: 0,
            venue_req: 0,
            reserved_price: Price(12_345_000_000),
            live: true,
            times: OrderTimes {
                instruction: Nanos(99),
                decision: Nanos(100),
                sent: Nanos(101),
                venue: Nanos(102),
            },
            detail: OrderDetail {
                trader: InlineStr::new(b"TRADER-7").unwrap(),
                security_id: InlineStr::new(b"US5949181045").unwrap(),
                security_id_source: b'4',
                currency: InlineStr::new(b"USD").unwrap(),
                exec_inst: InlineStr::new(b"6").unwrap(),
                route: Some(RouteReason::Rule(3)),
                ..OrderDetail::default()
            },
        };
        j.record(OrderKey(7), &o, 5).unwrap();
        o.apply_fill(Qty::from_units(4), Price(12_300_000_000));
        o.exec_seq = 2;
        j.record(OrderKey(7), &o, 5).unwrap();
        drop(j);
        let j = Journal::open(dir.path(), 1 << 20).unwrap();
        let all: Vec<_> = j.replay().collect();
        assert_eq!(all.len(), 2);
        let (k, tag, got) = all[1];
        assert_eq!((k, tag), (OrderKey(7), 5));
        assert_eq!(got.cum_qty, o.cum_qty);
        assert_eq!(got.filled_notional, o.filled_notional);
        assert_eq!(got.status, OrdStatus::PartiallyFilled);
        assert_eq!(got.price, o.price);
        assert_eq!(got.exec_seq, 2);
        assert_eq!(got.reserved_price, o.reserved_price);
        assert_eq!(got.cl_ord_id, o.cl_ord_id);
        assert_eq!(got.venue_order_id, o.venue_order_id);
        assert_eq!(got.times, o.times);
        assert_eq!(got.detail, o.detail);
    }

    #[test]
    fn snapshots_of_the_first_format_still_replay() {
        let o = Order {
            cl_ord_id: OrderIdStr::new(b"OLD").unwrap(),
            symbol: Symbol::new(b"X").unwrap(),
            times: OrderTimes {
                decision: Nanos(5),
                ..OrderTimes::default()
            },
            ..Order::blank(SessionId(0), Account::EMPTY)
        };
        let mut buf = [0u8; SNAPSHOT_BYTES];
        encode(&o, 9, &mut buf);
        for len in [SNAPSHOT_V1_BYTES, SNAPSHOT_V2_BYTES] {
            let (tag, got) = decode(&buf[..len]).unwrap();
            assert_eq!(tag, 9);
            assert_eq!(got.cl_ord_id, o.cl_ord_id);
            assert_eq!(got.times, OrderTimes::default());
        }
        assert_eq!(decode(&buf).unwrap().1.times.decision, Nanos(5));
        // Before venue order ids were text: the times are there, the id is the number at 195.
        buf[195..203].copy_from_slice(&42u64.to_le_bytes());
        let (_, got) = decode(&buf[..SNAPSHOT_V3_BYTES]).unwrap();
        assert_eq!(got.times.decision, Nanos(5));
        assert_eq!(got.venue_order_id.as_bytes(), b"42");
    }
}
