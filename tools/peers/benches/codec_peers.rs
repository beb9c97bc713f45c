//! Codec peers side by side (PERF-2): the same FIX 4.4 NewOrderSingle parsed and the same
//! ExecutionReport encoded by our codec (`portcullis::fix`) and by `fefix` 0.7.
//!
//! Same bytes, same work:
//! - parse = check the frame (BodyLength, CheckSum), split the fields, read the nine fields the
//!   gateway reads (ClOrdID, Account, Symbol, Side, OrderQty, OrdType, Price, TimeInForce,
//!   TransactTime) into each library's own types (ours: fixed-point `Qty`/`Price`, `Nanos`;
//!   fefix: `f64`, `Timestamp`). `ours/nos_parse_validate` adds our dictionary validation, which
//!   fefix does not do.
//! - encode = the same 19-field ExecutionReport with BodyLength and CheckSum. fefix is given its
//!   decimals pre-formatted (its `f64` path allocates a String per value), which favours it.
//!
//! `cd tools/peers && cargo bench --bench codec_peers` (tools/peers/compare.sh --codec runs it).
//! Instruction counts, which a busy machine does not blur: run the bench binary under
//! `valgrind --tool=callgrind … --bench --profile-time 2` and divide each `#[inline(never)]`
//! function's inclusive cost by its calls.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use fefix::fix_values::Timestamp;
use fefix::prelude::*;
use fefix::tagvalue::{Config, Decoder, Encoder, FvWrite};
use portcullis::fix::testing::with_trailer;
use portcullis::fix::validate::validate;
use portcullis::fix::{frame, tags, BeginString, Frame, Message, TimePrecision, Writer};
use portcullis::model::{Nanos, Price, Qty};

const MAX_MSG_LEN: usize = 8192;

/// The NewOrderSingle of `benches/codec.rs` (164 bytes).
fn new_order_single() -> Vec<u8> {
    with_trailer(
        b"8=FIX.4.4\x019=0\x0135=D\x0134=1042\x0149=CLI01\x0152=20240229-14:30:00.123\x01\
56=PCUL\x0111=ORD000042\x011=ACC-7\x0155=AAPL\x0154=1\x0138=100\x0140=2\x01\
44=187.25\x0159=0\x0160=20240229-14:30:00.122\x01",
    )
}

/// The fields read, in our types.
#[derive(Debug, PartialEq)]
struct Ours<'a> {
    cl_ord_id: &'a [u8],
    account: Option<&'a [u8]>,
    symbol: &'a [u8],
    side: u8,
    qty: Qty,
    ord_type: u8,
    price: Option<Price>,
    tif: Option<u8>,
    transact_time: Nanos,
}

/// Our parse without dictionary validation (the work fefix does).
#[inline(never)]
fn ours_parse(buf: &[u8]) -> Option<Ours<'_>> {
    ours_read(buf, false)
}

/// Our parse as the gateway does it: with dictionary validation.
#[inline(never)]
fn ours_parse_validated(buf: &[u8]) -> Option<Ours<'_>> {
    ours_read(buf, true)
}

#[inline(always)]
fn ours_read(buf: &[u8], validated: bool) -> Option<Ours<'_>> {
    let Frame::Message {
        len,
        body_length_ok: true,
        checksum_ok: true,
    } = frame(buf, MAX_MSG_LEN)
    else {
        return None;
    };
    let m = Message::decode(buf.get(..len)?).ok()?;
    if validated {
        validate(&m, BeginString::Fix44).ok()?;
    }
    Some(Ours {
        cl_ord_id: m.require(tags::CL_ORD_ID).ok()?,
        account: m.get(tags::ACCOUNT),
        symbol: m.require(tags::SYMBOL).ok()?,
        side: m.char(tags::SIDE).ok()??,
        qty: m.qty(tags::ORDER_QTY).ok()??,
        ord_type: m.char(tags::ORD_TYPE).ok()??,
        price: m.price(tags::PRICE).ok()?,
        tif: m.char(tags::TIME_IN_FORCE).ok()?,
        transact_time: m.timestamp(tags::TRANSACT_TIME).ok()??,
    })
}

/// The fields read, in fefix's types.
#[derive(Debug)]
struct Theirs<'a> {
    cl_ord_id: &'a [u8],
    account: Option<&'a [u8]>,
    symbol: &'a [u8],
    side: u8,
    qty: f64,
    ord_type: u8,
    price: Option<f64>,
    tif: Option<u8>,
    transact_time: Timestamp,
}

fn first(v: &[u8]) -> Option<u8> {
    v.first().copied()
}

/// fefix's fields borrow its decoded message, which lives in this call: `f` sees them.
#[inline(never)]
fn fefix_parse<R>(
    d: &mut Decoder<Config>,
    buf: &[u8],
    f: impl FnOnce(&Theirs<'_>) -> R,
) -> Option<R> {
    let m = d.decode(buf).ok()?;
    let raw = |t: u32| m.fv_raw(&t);
    let t = Theirs {
        cl_ord_id: raw(11)?,
        account: raw(1),
        symbol: raw(55)?,
        side: first(raw(54)?)?,
        qty: m.fv::<f64>(&38u32).ok()?,
        ord_type: first(raw(40)?)?,
        price: m.fv_opt::<f64>(&44u32).and_then(Result::ok),
        tif: raw(59).and_then(first),
        transact_time: m.fv::<Timestamp>(&60u32).ok()?,
    };
    Some(f(&t))
}

/// The ExecutionReport of `benches/codec.rs`, ours.
#[inline(never)]
fn ours_encode(buf: &mut [u8], seq: u64, now: Nanos) -> usize {
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

/// The same ExecutionReport, fefix.
#[inline(never)]
fn fefix_encode(e: &mut Encoder<Config>, buf: &mut Vec<u8>, seq: u64, now: &Timestamp) -> usize {
    buf.clear();
    let mut m = e.start_message(b"FIX.4.4", buf, b"8");
    m.set_fv(&34u32, seq);
    m.set_fv(&49u32, b"PCUL" as &[u8]);
    m.set_fv(&52u32, now.clone());
    m.set_fv(&56u32, b"CLI01" as &[u8]);
    m.set_fv(&37u32, b"O-000000042" as &[u8]);
    m.set_fv(&11u32, b"ORD000042" as &[u8]);
    m.set_fv(&17u32, b"E-000000097" as &[u8]);
    m.set_fv(&150u32, b"F" as &[u8]);
    m.set_fv(&39u32, b"2" as &[u8]);
    m.set_fv(&55u32, b"AAPL" as &[u8]);
    m.set_fv(&54u32, b"1" as &[u8]);
    m.set_fv(&38u32, b"100" as &[u8]);
    m.set_fv(&44u32, b"187.25" as &[u8]);
    m.set_fv(&32u32, b"100" as &[u8]);
    m.set_fv(&31u32, b"187.25" as &[u8]);
    m.set_fv(&151u32, b"0" as &[u8]);
    m.set_fv(&14u32, b"100" as &[u8]);
    m.set_fv(&6u32, b"187.25" as &[u8]);
    m.set_fv(&60u32, now.clone());
    m.wrap().len()
}

fn peers(c: &mut Criterion) {
    let nos = new_order_single();
    // Both read the same values from the same bytes.
    let Some(o) = ours_parse_validated(&nos) else {
        panic!("our codec does not parse the sample");
    };
    let mut dec = Decoder::<Config>::new(Dictionary::fix44());
    let same = fefix_parse(&mut dec, &nos, |t| {
        assert_eq!(
            (o.cl_ord_id, o.account, o.symbol, o.side, o.ord_type, o.tif),
            (t.cl_ord_id, t.account, t.symbol, t.side, t.ord_type, t.tif)
        );
        assert_eq!(o.qty, Qty::from_units(t.qty as i64));
        assert_eq!(
            o.price.map(|p| p.0),
            t.price.map(|p| (p * 1e8).round() as i64)
        );
        assert_eq!(
            (
                t.transact_time.date().year(),
                t.transact_time.time().milli()
            ),
            (2024, 122)
        );
    });
    assert!(same.is_some(), "fefix does not parse the sample");
    assert_eq!(o.transact_time, Nanos(1_709_217_000_122_000_000));

    let mut g = c.benchmark_group("nos_parse");
    g.bench_function("ours", |b| b.iter(|| ours_parse(black_box(&nos))));
    g.bench_function("ours_validated", |b| {
        b.iter(|| ours_parse_validated(black_box(&nos)))
    });
    g.bench_function("fefix", |b| {
        b.iter(|| fefix_parse(&mut dec, black_box(&nos), |t| black_box(t).qty))
    });
    g.finish();

    // Same bytes out, except for the timestamps' sub-second digits.
    let now = Nanos(1_709_217_000_123_456_000);
    // fefix's timestamps stop at milliseconds.
    let their_now = Timestamp::parse(b"20240229-14:30:00.123");
    let Some(their_now) = their_now else {
        panic!("fefix does not parse the timestamp");
    };
    let mut buf = [0u8; 512];
    let n = ours_encode(&mut buf, 1043, now);
    let mut enc = Encoder::<Config>::default();
    let mut vbuf = Vec::with_capacity(512);
    let k = fefix_encode(&mut enc, &mut vbuf, 1043, &their_now);
    eprintln!("ExecutionReport: ours {n} bytes, fefix {k} bytes (BodyLength zero-padded)");
    assert!(n > 0 && k > 0);
    let mut g = c.benchmark_group("exec_report_encode");
    g.bench_function("ours", |b| {
        b.iter(|| ours_encode(black_box(&mut buf), black_box(1043), black_box(now)))
    });
    g.bench_function("fefix", |b| {
        b.iter(|| {
            fefix_encode(
                &mut enc,
                black_box(&mut vbuf),
                black_box(1043),
                black_box(&their_now),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, peers);
criterion_main!(benches);
