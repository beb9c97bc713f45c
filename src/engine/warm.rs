//! HOT (idle duty cycles) — cache warming. While the spinning loop waits for the next order,
//! its own syscalls (a `read` that finds nothing, `epoll_wait`) run through enough kernel code
//! and data to push the order path out of the core's L1 and L2 caches: at 10k orders/s each
//! order found its code cold and took 6–10 µs more than the echo floor, against ≈ 2.5 µs more
//! when orders came back to back (`tuning.md`, *Where an order's time goes*). Every
//! `gateway.warm_every_us` of idleness the loop runs the side-effect-free part of the order
//! path once over a canned NewOrderSingle: framing, decoding, dictionary validation, reading
//! the order's fields, encoding its journal snapshot and its order record, encoding an
//! ExecutionReport and checksumming it as the store would.
//!
//! Nothing it does is visible: no session, order, sequence number, journal or counter is
//! touched, and its buffers are allocated once at start. An order that arrives during a warm
//! pass waits for it (≈ 1–2 µs), which is why passes are spaced out.

use crate::fix::decode::Message;
use crate::fix::frame::{frame, Frame};
use crate::fix::validate::validate;
use crate::fix::{BeginString, TimePrecision, Writer};
use crate::model::{Account, ExecType, Nanos, OrdStatus, SessionId};
use crate::order::Order;

use super::exec::execution_report;
use crate::desk::Exec;

/// The canned order and the scratch space of the warm pass.
pub struct Warmer {
    /// `gateway.warm_every_us` in ns; 0 = off.
    every_ns: u64,
    last: Nanos,
    nos: Box<[u8]>,
    /// Where the canned message lies in `nos`.
    nos_at: std::ops::Range<usize>,
    out: Box<[u8]>,
}

impl Warmer {
    /// A warmer that runs at most once every `every_us` µs (0: never).
    pub fn new(every_us: u64) -> Warmer {
        let mut nos = vec![0u8; 512].into_boxed_slice();
        let mut w = Writer::new(&mut nos, b"FIX.4.4", b"D");
        w.uint(34, 2)
            .str(49, b"WARM")
            .timestamp(52, Nanos(1_764_000_000_000_000_000), TimePrecision::Millis)
            .str(56, b"GATEWAY")
            .str(11, b"WARM-1")
            .str(1, b"ACC-WARM")
            .str(55, b"AAPL")
            .char(54, b'1')
            .str(38, b"100")
            .char(40, b'2')
            .str(44, b"10.25")
            .char(59, b'0')
            .str(60, b"20251124-16:00:00.000");
        let nos_at = w.finish().unwrap_or(0..0);
        Warmer {
            every_ns: every_us.saturating_mul(1000),
            last: Nanos::ZERO,
            nos,
            nos_at,
            out: vec![0u8; 1024].into_boxed_slice(),
        }
    }

    /// Whether a pass is due at `now`.
    #[inline]
    pub fn due(&self, now: Nanos) -> bool {
        self.every_ns != 0 && now.0.saturating_sub(self.last.0) >= self.every_ns
    }

    /// One pass over the canned order; returns a value that depends on every step (so the
    /// optimiser keeps them), 0 if a step failed (it never should: a unit test checks).
    pub fn run(&mut self, now: Nanos) -> u64 {
        self.last = now;
        let Some(bytes) = self.nos.get(self.nos_at.clone()) else {
            return 0;
        };
        let Frame::Message {
            len,
            body_length_ok: true,
            checksum_ok: true,
        } = frame(bytes, bytes.len())
        else {
            return 0;
        };
        let Ok(m) = Message::decode(bytes.get(..len).unwrap_or_default()) else {
            return 0;
        };
        if validate(&m, BeginString::Fix44).is_err() {
            return 0;
        }
        let mut o = Order::blank(SessionId(0), Account::EMPTY);
        if super::app::parse_new_order(&m, &mut o).is_err() {
            return 0;
        }
        o.order_id = 1;
        let mut snapshot = [0u8; crate::order::journal::SNAPSHOT_BYTES];
        crate::order::journal::encode(&o, 0, &mut snapshot);
        let record =
            crate::order::record::OrderRecord::new(crate::order::record::Lifecycle::New, &o, now);
        std::hint::black_box(&record);
        let cl = o.cl_ord_id;
        let e = Exec::report(ExecType::New, OrdStatus::New, cl.as_bytes());
        let mut w = Writer::new(&mut self.out, b"FIX.4.4", b"8");
        execution_report(&mut w, BeginString::Fix44, &o, &e, 1, now);
        let Ok(r) = w.finish() else {
            return 0;
        };
        let report = self.out.get(r).unwrap_or_default();
        let crc = crate::store::crc::crc32c(report) ^ crate::store::crc::crc32c(&snapshot);
        std::hint::black_box(u64::from(crc) + o.qty.0.unsigned_abs() + report.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_runs_every_step_and_is_spaced_out() {
        let mut w = Warmer::new(20);
        assert!(w.due(Nanos(1_000_000)));
        let now = Nanos(1_764_000_000_000_000_000);
        assert_ne!(
            w.run(now),
            0,
            "decode, validate, parse, encode all succeeded"
        );
        assert!(!w.due(Nanos(now.0 + 19_999)));
        assert!(w.due(Nanos(now.0 + 20_000)));
        assert!(!Warmer::new(0).due(now), "0 turns it off");
        // The same every time: nothing accumulates between passes.
        assert_eq!(w.run(now), w.run(now));
    }
}
