//! SBE codec micro-benchmarks: frame + decode a NewOrderSingle reading every field into the
//! order's values, and encode an ExecutionReport New (SOFH, header, every field).
//!
//! `cargo bench --bench sbe`; the target (issue 16) is decode + encode ≤ 40 ns together
//! (`sbe/nos_decode_and_exec_new_encode`). The FIX counterparts are in `benches/codec.rs`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis::model::{Nanos, Price, Qty};
use portcullis::sbe::generated::*;
use portcullis::sbe::{decode, frame, Frame, DEFAULT_MAX_FRAME};

/// Every field of a NewOrderSingle, as the gateway takes it.
#[derive(Debug, Clone, Copy)]
struct Order<'a> {
    seq_num: u64,
    sending_time: Nanos,
    poss_retrans: bool,
    qty: Qty,
    price: Option<Price>,
    transact_time: Nanos,
    side: Side,
    ord_type: OrdType,
    tif: TimeInForce,
    security_id_source: u8,
    cl_ord_id: &'a [u8],
    account: &'a [u8],
    symbol: &'a [u8],
    ex_destination: &'a [u8],
    trader_id: &'a [u8],
    decision_maker_id: &'a [u8],
    security_id: &'a [u8],
    currency: &'a [u8],
    exec_inst: &'a [u8],
}

/// A NewOrderSingle as a client sends it (246 bytes).
fn new_order_single(out: &mut [u8]) -> usize {
    let mut e = NewOrderSingleEncoder::frame(out).unwrap_or_else(|e| panic!("{e}"));
    e.set_seq_num(1042)
        .set_sending_time(1_709_217_000_123_000_000)
        .set_order_qty(Qty::from_units(100).0)
        .set_price(Some(18_725_000_000))
        .set_transact_time(1_709_217_000_122_000_000)
        .set_side(Side::Buy)
        .set_ord_type(OrdType::Limit)
        .set_time_in_force(TimeInForce::Day)
        .set_poss_retrans(BooleanFlag::False);
    for r in [
        e.set_cl_ord_id(b"ORD000042").map(drop),
        e.set_account(b"ACC-7").map(drop),
        e.set_symbol(b"AAPL").map(drop),
        e.set_trader_id(b"TRADER7").map(drop),
        e.set_currency(b"USD").map(drop),
    ] {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
    NewOrderSingleEncoder::FRAME_LENGTH
}

/// Frame, decode and read every field; `None` on any failure.
#[inline(never)]
fn parse_nos(buf: &[u8]) -> Option<Order<'_>> {
    let Frame::Complete(len) = frame(buf, DEFAULT_MAX_FRAME) else {
        return None;
    };
    let Ok(Message::NewOrderSingle(d)) = decode(buf.get(..len)?) else {
        return None;
    };
    Some(Order {
        seq_num: d.seq_num(),
        sending_time: Nanos(d.sending_time()),
        poss_retrans: d.poss_retrans()? == BooleanFlag::True,
        qty: Qty(d.order_qty()),
        price: d.price().map(Price),
        transact_time: Nanos(d.transact_time()),
        side: d.side()?,
        ord_type: d.ord_type()?,
        tif: d.time_in_force()?,
        security_id_source: d.security_id_source(),
        cl_ord_id: d.cl_ord_id(),
        account: d.account(),
        symbol: d.symbol(),
        ex_destination: d.ex_destination(),
        trader_id: d.trader_id(),
        decision_maker_id: d.decision_maker_id(),
        security_id: d.security_id(),
        currency: d.currency(),
        exec_inst: d.exec_inst(),
    })
}

/// Writes the ExecutionReport New answering `o` into `buf`; returns its length (0: too small).
#[inline(never)]
fn encode_exec_new(buf: &mut [u8], o: &Order<'_>, seq: u64, now: Nanos) -> usize {
    let Ok(mut e) = ExecutionReportNewEncoder::frame(buf) else {
        return 0;
    };
    e.set_seq_num(seq)
        .set_sending_time(now.0)
        .set_poss_retrans(BooleanFlag::False)
        .set_order_id(42)
        .set_exec_id(1)
        .set_transact_time(now.0)
        .set_order_qty(o.qty.0)
        .set_price(o.price.map(|p| p.0))
        .set_leaves_qty(o.qty.0)
        .set_cum_qty(0)
        .set_avg_px(0)
        .set_ord_status(OrdStatus::New)
        .set_side(o.side)
        .set_ord_type(o.ord_type)
        .set_time_in_force(o.tif);
    if e.set_cl_ord_id(o.cl_ord_id).is_err()
        || e.set_account(o.account).is_err()
        || e.set_symbol(o.symbol).is_err()
    {
        return 0;
    }
    ExecutionReportNewEncoder::FRAME_LENGTH
}

fn sbe(c: &mut Criterion) {
    let mut nos = [0u8; 512];
    let n = new_order_single(&mut nos);
    let nos = &nos[..n];
    let Some(o) = parse_nos(nos) else {
        panic!("the sample NewOrderSingle does not decode");
    };
    assert_eq!(
        (o.cl_ord_id, o.account, o.symbol, o.side, o.ord_type, o.tif),
        (
            &b"ORD000042"[..],
            &b"ACC-7"[..],
            &b"AAPL"[..],
            Side::Buy,
            OrdType::Limit,
            TimeInForce::Day
        )
    );
    assert_eq!(
        (o.qty, o.price),
        (Qty::from_units(100), Some(Price(18_725_000_000)))
    );
    assert_eq!(
        (o.seq_num, o.sending_time, o.transact_time, o.poss_retrans),
        (
            1042,
            Nanos(1_709_217_000_123_000_000),
            Nanos(1_709_217_000_122_000_000),
            false
        )
    );
    assert_eq!(
        (o.trader_id, o.currency, o.security_id_source),
        (&b"TRADER7"[..], &b"USD"[..], 0)
    );
    let empty: [&[u8]; 4] = [
        o.ex_destination,
        o.decision_maker_id,
        o.security_id,
        o.exec_inst,
    ];
    assert!(empty.iter().all(|f| f.is_empty()));
    let mut out = [0u8; 512];
    let now = Nanos(1_709_217_000_123_456_000);
    let m = encode_exec_new(&mut out, &o, 1, now);
    assert!(m > 0, "the ExecutionReport fits");
    eprintln!("NewOrderSingle: {n} bytes; ExecutionReport New: {m} bytes");

    let mut g = c.benchmark_group("sbe");
    g.bench_function("nos_frame_decode_all_fields", |b| {
        b.iter(|| parse_nos(black_box(nos)).map(|o| o.seq_num))
    });
    g.bench_function("exec_new_encode", |b| {
        b.iter(|| encode_exec_new(black_box(&mut out), black_box(&o), black_box(2), now))
    });
    g.bench_function("nos_decode_and_exec_new_encode", |b| {
        b.iter(|| match parse_nos(black_box(nos)) {
            Some(o) => encode_exec_new(black_box(&mut out), &o, o.seq_num, now),
            None => 0,
        })
    });
    g.finish();
}

criterion_group!(benches, sbe);
criterion_main!(benches);
