//! FIX codec micro-benchmarks: parse of a FIX 4.4 NewOrderSingle (frame, decode, validate, read the
//! order fields) and encode of a FIX 4.4 ExecutionReport.
//!
//! `cargo bench --bench codec`; the target on the project's 2-core machines is a NewOrderSingle
//! parse+validate median ≤ 120 ns.

use std::hint::black_box;

use criterion::{criterion_group, Criterion};
use portcullis::fix::testing::with_trailer;
use portcullis::fix::validate::validate;
use portcullis::fix::{frame, tags, BeginString, Frame, Message, TimePrecision, Writer};
use portcullis::model::{Nanos, Price, Qty};

const MAX_MSG_LEN: usize = 8192;

/// A realistic NewOrderSingle as a client sends it (164 bytes).
fn new_order_single() -> Vec<u8> {
    with_trailer(
        b"8=FIX.4.4\x019=0\x0135=D\x0134=1042\x0149=CLI01\x0152=20240229-14:30:00.123\x01\
56=PCUL\x0111=ORD000042\x011=ACC-7\x0155=AAPL\x0154=1\x0138=100\x0140=2\x01\
44=187.25\x0159=0\x0160=20240229-14:30:00.122\x01",
    )
}

/// The order fields the gateway reads from a NewOrderSingle.
#[derive(Debug)]
struct Order<'a> {
    cl_ord_id: &'a [u8],
    symbol: &'a [u8],
    side: u8,
    qty: Qty,
    ord_type: u8,
    price: Option<Price>,
    tif: Option<u8>,
    account: Option<&'a [u8]>,
    transact_time: Nanos,
}

/// Frame, decode, validate and read the order fields; `None` on any failure.
#[inline(never)]
fn parse_nos(buf: &[u8]) -> Option<Order<'_>> {
    let Frame::Message {
        len,
        body_length_ok: true,
        checksum_ok: true,
    } = frame(buf, MAX_MSG_LEN)
    else {
        return None;
    };
    let m = Message::decode(buf.get(..len)?).ok()?;
    validate(&m, BeginString::Fix44).ok()?;
    Some(Order {
        cl_ord_id: m.require(tags::CL_ORD_ID).ok()?,
        symbol: m.require(tags::SYMBOL).ok()?,
        side: m.char(tags::SIDE).ok()??,
        qty: m.qty(tags::ORDER_QTY).ok()??,
        ord_type: m.char(tags::ORD_TYPE).ok()??,
        price: m.price(tags::PRICE).ok()?,
        tif: m.char(tags::TIME_IN_FORCE).ok()?,
        account: m.get(tags::ACCOUNT),
        transact_time: m.timestamp(tags::TRANSACT_TIME).ok()??,
    })
}

/// Writes a fill ExecutionReport into `buf`; returns its length.
#[inline(never)]
fn encode_exec_report(buf: &mut [u8], seq: u64, now: Nanos) -> usize {
    let mut w = Writer::new(buf, b"FIX.4.4", b"8");
    w.uint(34, seq)
        .str(49, b"PCUL")
        .timestamp(52, now, TimePrecision::Micros)
        .str(56, b"CLI01")
        .str(37, b"O-000000042")
        .str(11, b"ORD000042")
        .str(17, b"E-000000097")
        .char(150, b'F')
        .char(39, b'2')
        .str(55, b"AAPL")
        .char(54, b'1')
        .qty(38, Qty::from_units(100))
        .price(44, Price(18_725_000_000))
        .qty(32, Qty::from_units(100))
        .price(31, Price(18_725_000_000))
        .qty(151, Qty::ZERO)
        .qty(14, Qty::from_units(100))
        .price(6, Price(18_725_000_000))
        .timestamp(60, now, TimePrecision::Micros);
    w.finish().map_or(0, |r| r.len())
}

fn codec(c: &mut Criterion) {
    let nos = new_order_single();
    let Some(o) = parse_nos(&nos) else {
        panic!("the sample NewOrderSingle does not parse");
    };
    assert_eq!(
        (o.cl_ord_id, o.symbol, o.side, o.ord_type, o.tif, o.account),
        (
            &b"ORD000042"[..],
            &b"AAPL"[..],
            b'1',
            b'2',
            Some(b'0'),
            Some(&b"ACC-7"[..])
        )
    );
    assert_eq!(
        (o.qty, o.price),
        (Qty::from_units(100), Some(Price(18_725_000_000)))
    );
    assert_eq!(o.transact_time, Nanos(1_709_217_000_122_000_000));
    let mut g = c.benchmark_group("fix44");
    g.bench_function("nos_frame", |b| {
        b.iter(|| frame(black_box(&nos), MAX_MSG_LEN))
    });
    g.bench_function("nos_decode", |b| {
        b.iter(|| Message::decode(black_box(&nos)).map(|m| m.fields().len()))
    });
    g.bench_function("nos_parse_validate", |b| {
        b.iter(|| parse_nos(black_box(&nos)))
    });

    let mut buf = [0u8; 512];
    let now = Nanos(1_709_217_000_123_456_000);
    let n = encode_exec_report(&mut buf, 1, now);
    assert!(n > 0, "the ExecutionReport fits");
    eprintln!(
        "NewOrderSingle: {} bytes; ExecutionReport: {n} bytes",
        nos.len()
    );
    g.bench_function("exec_report_encode", |b| {
        b.iter(|| encode_exec_report(black_box(&mut buf), black_box(1043), black_box(now)))
    });
    g.finish();
}

criterion_group!(benches, codec);

/// With `CODEC_COUNT=N` set, calls each measured function N times on the same input and exits:
/// what `tools/perf/instructions.sh` runs under callgrind, where instructions per call are the
/// function's inclusive count over its calls, the same on every run (criterion's own loop runs
/// a number of iterations that depends on the clock). Otherwise the criterion benchmarks.
fn main() {
    if let Some(n) = std::env::var("CODEC_COUNT")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let nos = new_order_single();
        let mut buf = [0u8; 512];
        let now = Nanos(1_709_217_000_123_456_000);
        for _ in 0..n {
            black_box(parse_nos(black_box(&nos)));
            black_box(encode_exec_report(
                black_box(&mut buf),
                black_box(1043),
                black_box(now),
            ));
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
