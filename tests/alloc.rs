//! PERF-3: zero heap allocations per order on the hot path, in steady state, through a real
//! socket. A counting global allocator counts only allocations made on the gateway thread
//! (named `portcullis-hot`) while armed; a client thread drives 100k orders after warm-up.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
#![allow(unsafe_code)] // a global allocator is unsafe by definition; it only forwards to System

#[path = "common/counting.rs"]
mod counting;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::fix::{frame, Frame, Message, TimePrecision, Writer};

const WARMUP: usize = 20_000;
const MEASURED: usize = 100_000;
const WINDOW: usize = 64;

#[test]
fn steady_state_orders_allocate_nothing_on_the_gateway_thread() {
    // Blocking epoll, then busy-poll with the hot set (direct reads, epoll every 16 cycles).
    // One after the other: the counter counts every thread named `portcullis-hot`.
    run(false);
    run(true);
}

fn run(busy: bool) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[gateway]
busy_poll = {busy}
spin_read_conns = 8
spin_poll_every = 16
data_dir = {:?}
max_orders = 8192
segment_bytes = 268435456
# small session segments: the measured phase rolls several (proves rolls allocate nothing)
session_segment_bytes = 4194304
flush_interval_ms = 0

[[listener]]
address = "127.0.0.1:0"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "LOAD"
default_account = "ACC"

[[venue]]
name = "SIM"
kind = "sim"
behaviour = "fill"

# The trail records every message (the default): the gateway thread copies each one into the
# message ring, and that copy is counted here like the rest. Whether the trail thread keeps up
# with a flood is not this test's question (a debug build's does not, with every message and
# order record to chain; release figures in tuning.md `[audit]`): `drop` lets a full ring lose
# records, counted, instead of refusing the flood's orders as `fail_closed` would
# (tests/it/audit_trail.rs floods a fail-closed gateway and checks the policy).
[audit]
on_full = "drop"

# A signed session whose key is restricted to an account and a symbol: the per-message
# permission checks run on every order.
[auth]
key_store = "keys.store"
master_key = {{ provider = "file", path = "master.key" }}

# Risk on: every order passes every check; the reference price comes from the fills.
[[account]]
name = "ACC"
max_order_qty = 1000
max_order_notional = 100000
collar_bps = 500
collar_ticks = 100
reference_max_age_ms = 60000
credit_limit = 1000000000000
max_long = 1000000000
max_short = 1000000000
max_open_orders = 1000
ord_types = ["limit"]
time_in_force = ["day"]
duplicate_window_ms = 0
max_msgs = 1000000000
rate_period_ms = 1000

[[symbol]]
symbol = "AAPL"
tick_size = "0.01"
reference_price = "10.25"
"#,
        dir.path().display().to_string()
    );
    let cfg = Config::parse(&text, "alloc.toml").unwrap();
    let spec = portcullis::auth::admin::KeySpec {
        comp_ids: vec!["LOAD".into()],
        role: "trader".into(),
        accounts: vec!["OTHER".into(), "ACC".into()],
        symbols: vec!["MSFT".into(), "AAPL".into()],
        allow: vec!["127.0.0.1".into()],
        ..Default::default()
    };
    let secret = portcullis::auth::admin::add(&cfg, "load", &spec, now_ms()).unwrap();
    let secret = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(secret.as_bytes())
            .unwrap()
    };
    let running = portcullis::gateway::start(&cfg, Clock::fast()).unwrap();
    let mut s = TcpStream::connect(running.handle.listen_addrs[0]).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut seq: u64;
    let mut out = vec![0u8; 512];
    // The signed Logon (fix-specs/SIGNED-LOGON.md), built by hand.
    {
        let now = portcullis::clock::system_utc();
        let mut ts = [0u8; 32];
        let n = portcullis::fix::encode::write_timestamp(&mut ts, now, TimePrecision::Millis);
        let pre = portcullis::auth::logon::prehash(&ts[..n], b"A", b"1", b"LOAD", b"GW", b"load");
        let sig = portcullis::auth::logon::sign(&secret, &pre);
        let mut w = Writer::new(&mut out, b"FIX.4.4", b"A");
        w.uint(34, 1)
            .str(49, b"LOAD")
            .timestamp(52, now, TimePrecision::Millis)
            .str(56, b"GW")
            .str(98, b"0")
            .str(108, b"30")
            .str(553, b"load")
            .uint(95, sig.len() as u64)
            .str(96, sig.as_bytes());
        let r = w.finish().unwrap();
        s.write_all(&out[r]).unwrap();
        seq = 2;
    }
    let mut send = |s: &mut TcpStream, msg_type: &[u8], body: &dyn Fn(&mut Writer)| {
        let mut w = Writer::new(&mut out, b"FIX.4.4", msg_type);
        w.uint(34, seq)
            .str(49, b"LOAD")
            .timestamp(52, portcullis::clock::system_utc(), TimePrecision::Millis)
            .str(56, b"GW");
        body(&mut w);
        let r = w.finish().unwrap();
        seq += 1;
        s.write_all(&out[r]).unwrap();
    };
    let mut inbuf = Vec::with_capacity(1 << 20);
    let mut read_some = |s: &mut TcpStream, fills: &mut usize| {
        let mut tmp = [0u8; 65536];
        // A stop and continue of the test process (a job-control signal) interrupts the read.
        let n = loop {
            match s.read(&mut tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => break r.unwrap(),
            }
        };
        assert!(n > 0, "gateway closed the connection");
        inbuf.extend_from_slice(&tmp[..n]);
        let mut at = 0;
        while let Frame::Message { len, .. } = frame(&inbuf[at..], 1 << 16) {
            let m = Message::decode(&inbuf[at..at + len]).unwrap();
            if m.get(39) == Some(b"2") {
                *fills += 1;
            }
            assert_ne!(
                m.get(39),
                Some(&b"8"[..]),
                "order rejected: {:?}",
                String::from_utf8_lossy(m.bytes())
            );
            at += len;
        }
        inbuf.drain(..at);
    };
    let (fills, allocs) = counting::drive(
        &mut s,
        (WARMUP, MEASURED, WINDOW),
        // Every order carries routing fields: the reports swap them back (kept inline on the
        // order, no allocation).
        |s, id| {
            send(s, b"D", &|w| {
                w.str(115, b"FIRM").str(128, b"BROKER");
                counting::new_order(w, id)
            })
        },
        &mut read_some,
    );
    running.stop();
    assert_eq!(fills, WARMUP + MEASURED);
    assert_eq!(
        allocs, 0,
        "{allocs} allocations on the gateway thread over {MEASURED} orders (busy_poll = {busy})"
    );
}

/// Unix milliseconds now: keys are created "now" (a key created at 0 would be past
/// `auth.max_key_age_days` and refused).
fn now_ms() -> u64 {
    portcullis::clock::system_utc().0 / 1_000_000
}
