//! The whole in-process order path, no sockets on the measured path: NewOrderSingle bytes are
//! injected into a connection's receive buffer and run through framing, decoding, the session
//! layer (sequence checks, validation), the order table, the journal (mmap), the simulated
//! venue, and the encoding and storing of the two ExecutionReports (New, Fill) per order.
//!
//! Run: `cargo bench --bench order_path`. Reports time per batch of 1,000 orders and
//! orders/second (criterion "elem/s").
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::Cell;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::fix::encode::write_u64;
use portcullis::fix::{TimePrecision, Writer};

const BATCH: u64 = 1000;

fn encode_batch(seq: &Cell<u64>, out: &mut Vec<u8>, now: portcullis::model::Nanos) {
    out.clear();
    let mut buf = [0u8; 512];
    for _ in 0..BATCH {
        let s = seq.get();
        seq.set(s + 1);
        let mut w = Writer::new(&mut buf, b"FIX.4.4", b"D");
        w.uint(34, s)
            .str(49, b"BENCH")
            .timestamp(52, now, TimePrecision::Millis)
            .str(56, b"GW");
        let mut cl = [0u8; 20];
        let n = write_u64(&mut cl, s);
        w.str(11, &cl[..n])
            .str(55, b"AAPL")
            .char(54, b'1')
            .str(38, b"100")
            .char(40, b'2')
            .str(44, b"10.25")
            .str(60, b"20240101-00:00:00.000");
        let r = w.finish().unwrap();
        out.extend_from_slice(&buf[r]);
    }
}

fn order_path(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nbusy_poll = false\ndata_dir = {:?}\nmax_orders = 65536\nrecv_buffer_bytes = 1048576\nsegment_bytes = 67108864\nflush_interval_ms = 0\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"BENCH\"\ndefault_account = \"ACC\"\ncheck_sending_time = false\n\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"fill\"\n\n[[account]]\nname = \"ACC\"\nmax_order_qty = 1000\nmax_order_notional = 100000\ncollar_bps = 500\ncollar_ticks = 100\nreference_max_age_ms = 3600000\ncredit_limit = 1000000000000\nmax_long = 1000000000\nmax_short = 1000000000\nmax_open_orders = 1000\nord_types = [\"limit\"]\ntime_in_force = [\"day\"]\nduplicate_window_ms = 0\nmax_msgs = 1000000000\nrate_period_ms = 1000\n\n[[symbol]]\nsymbol = \"AAPL\"\ntick_size = \"0.01\"\nreference_price = \"10.25\"\n",
        dir.path().display().to_string()
    );
    let cfg = Config::parse(&text, "bench.toml").unwrap();
    let clock = Clock::fast();
    let (mut engine, handle) = portcullis::build::engine(&cfg, clock.clone()).unwrap();
    let _client = std::net::TcpStream::connect(handle.listen_addrs[0]).unwrap();
    while engine.last_connection().is_none() {
        engine.do_work();
    }
    let conn = engine.last_connection().unwrap();
    let seq = Cell::new(1u64);
    let mut logon = [0u8; 256];
    let mut w = Writer::new(&mut logon, b"FIX.4.4", b"A");
    w.uint(34, 1)
        .str(49, b"BENCH")
        .timestamp(52, clock.now(), TimePrecision::Millis)
        .str(56, b"GW")
        .str(98, b"0")
        .str(108, b"30");
    let r = w.finish().unwrap();
    assert!(engine.inject(conn, &logon[r], clock.now()));
    seq.set(2);
    let mut out_bytes = 0usize;
    engine.take_output(conn, |b| out_bytes += b.len());
    assert!(out_bytes > 0, "logon answered");

    let mut g = c.benchmark_group("order_path");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(30);
    g.measurement_time(std::time::Duration::from_secs(4));
    g.bench_function("nos_to_fill_1000", |b| {
        b.iter_batched_ref(
            || {
                // The journal thread's part, off the measured path: drain the order records.
                while handle.records.pop().is_some() {}
                let mut v = Vec::with_capacity(200 * BATCH as usize);
                encode_batch(&seq, &mut v, clock.now());
                v
            },
            |batch| {
                let now = clock.now();
                // Feed in slices the receive buffer can hold, draining output as a socket would.
                for chunk in batch.chunks(256 * 1024) {
                    // chunks may split a message; the framer keeps the partial tail.
                    assert!(engine.inject(conn, chunk, now));
                    engine.take_output(conn, |b| {
                        std::hint::black_box(b);
                    });
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
    assert!(
        engine
            .counters()
            .get(portcullis::monitor::Counter::OrdersRejected)
            == 0,
        "no order was rejected"
    );
}

criterion_group!(benches, order_path);
criterion_main!(benches);
