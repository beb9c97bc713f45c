//! Proof that the SBE codec does not allocate (STYLE §2): a counting global allocator, armed on
//! this thread around 100k rounds of framing, decoding (every field read) and encoding.

// A failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use portcullis::sbe::generated::*;
use portcullis::sbe::{decode, frame, Frame, SbeError, DEFAULT_MAX_FRAME};

#[path = "common/this_thread.rs"]
mod this_thread;
use this_thread::allocations_during;

const ROUNDS: u64 = 100_000;

/// A NewOrderSingle frame as a client sends it.
fn new_order(out: &mut [u8], seq: u64) -> usize {
    let mut e = NewOrderSingleEncoder::frame(out).unwrap();
    e.set_seq_num(seq)
        .set_sending_time(1_700_000_000_000_000_000 + seq)
        .set_order_qty(1_000_000)
        .set_price(Some(10_125_000_000))
        .set_side(Side::Buy)
        .set_ord_type(OrdType::Limit)
        .set_time_in_force(TimeInForce::Day);
    e.set_cl_ord_id(b"ORD-0001").unwrap();
    e.set_account(b"ACC1").unwrap();
    e.set_symbol(b"AAPL").unwrap();
    NewOrderSingleEncoder::FRAME_LENGTH
}

/// Frames and decodes `buf`, reading every field; encodes the ExecutionReport New answer.
fn round(buf: &[u8], out: &mut [u8]) -> Result<u64, SbeError> {
    let Frame::Complete(len) = frame(buf, DEFAULT_MAX_FRAME) else {
        return Err(SbeError::Short {
            len: buf.len(),
            need: 0,
        });
    };
    let m = decode(&buf[..len])?;
    let h = m.read_all_fields();
    let Message::NewOrderSingle(d) = m else {
        return Err(SbeError::UnknownTemplate {
            found: m.template_id(),
        });
    };
    let mut e = ExecutionReportNewEncoder::frame(out)?;
    e.set_seq_num(d.seq_num())
        .set_order_id(42)
        .set_exec_id(1)
        .set_order_qty(d.order_qty())
        .set_price(d.price())
        .set_leaves_qty(d.order_qty())
        .set_ord_status(OrdStatus::New);
    e.set_cl_ord_id(d.cl_ord_id())?;
    e.set_account(d.account())?;
    e.set_symbol(d.symbol())?;
    Ok(h)
}

#[test]
fn framing_decoding_and_encoding_do_not_allocate() {
    let mut inbound = [0u8; 512];
    let mut outbound = [0u8; 512];
    let mut failures = 0u64;
    // Warm-up (first-call lazy statics, if any, are not the codec's steady state).
    new_order(&mut inbound, 0);
    round(&inbound, &mut outbound).unwrap();
    let allocations = allocations_during(|| {
        for seq in 1..=ROUNDS {
            let n = new_order(&mut inbound, seq);
            failures += u64::from(black_box(round(&inbound[..n], &mut outbound)).is_err());
            // Refusals too: an unknown template, a wrong encoding type.
            inbound[8] = 0xff;
            failures += u64::from(decode(&inbound[..n]).is_ok());
            inbound[4] = 0;
            failures += u64::from(frame(&inbound[..n], DEFAULT_MAX_FRAME) == Frame::Complete(n));
        }
    });
    assert_eq!(failures, 0);
    assert_eq!(allocations, 0, "the SBE codec allocated");
}
