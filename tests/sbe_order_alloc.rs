//! PERF-3 for binary order entry: zero heap allocations per order on the gateway thread in
//! steady state, SBE over FIXP through a real socket — framing, decode, the FIXP session's
//! sequencing, the shell's checks (scope, account and symbol grants, throttle), risk, the
//! simulated venue, and the SBE reports numbered and stored by the session. The same counting
//! allocator and driver as `tests/alloc.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code
#![allow(unsafe_code)] // a global allocator is unsafe by definition; it only forwards to System

#[path = "common/counting.rs"]
mod counting;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::fixp::msg::{Establish, Name, Negotiate, SessionMsg};
use portcullis::sbe::generated::{BooleanFlag, NewOrderSingleEncoder, OrdType, Side, TimeInForce};
use portcullis::sbe::Message;

const WARMUP: usize = 20_000;
const MEASURED: usize = 100_000;
const WINDOW: usize = 64;

#[test]
fn steady_state_sbe_orders_allocate_nothing_on_the_gateway_thread() {
    run(false);
    run(true);
}

fn session_frame(m: &SessionMsg) -> Vec<u8> {
    let mut b = [0u8; 256];
    let n = portcullis::fixp::wire::encode_session(m, &mut b).unwrap();
    b[..n].to_vec()
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
protocol = "sbe"

[[session]]
protocol = "sbe"
their_comp_id = "LOAD"
default_account = "ACC"

[[venue]]
name = "SIM"
kind = "sim"
behaviour = "fill"

# The test floods ~120k orders as fast as the gateway takes them, faster than the audit trail's
# disk writer keeps up: its queue may fill. The hot thread's allocations are measured here, so
# a full trail drops records (counted) instead of refusing orders (fail_closed, the default with
# [auth]).
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
    let cfg = Config::parse(&text, "sbe_alloc.toml").unwrap();
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
    let name = Name::new(b"LOAD").unwrap();
    let key = Name::new(b"load").unwrap();
    let now = portcullis::clock::system_utc().0;
    let mut n = Negotiate {
        uuid: 7,
        request_timestamp: now,
        session: name,
        access_key_id: key,
        hmac_signature: [0; 32],
    };
    portcullis::fixp::sign::sign_negotiate(&secret, &mut n);
    let mut e = Establish {
        uuid: 7,
        request_timestamp: now + 1,
        session: name,
        access_key_id: key,
        next_seq_no: 1,
        keep_alive_interval: 30_000,
        hmac_signature: [0; 32],
    };
    portcullis::fixp::sign::sign_establish(&secret, &mut e);
    s.write_all(&session_frame(&SessionMsg::Negotiate(n)))
        .unwrap();
    s.write_all(&session_frame(&SessionMsg::Establish(e)))
        .unwrap();
    let mut out = [0u8; 512];
    let send = |s: &mut TcpStream, id: usize| {
        let mut cl = [0u8; 20];
        let len = portcullis::fix::encode::write_u64(&mut cl, id as u64);
        let mut o = NewOrderSingleEncoder::frame(&mut out).unwrap();
        o.set_seq_num(id as u64 + 1)
            .set_sending_time(1)
            .set_poss_retrans(BooleanFlag::False)
            .set_order_qty(100 * 10_000)
            .set_price(Some(1_025_000_000))
            .set_transact_time(1)
            .set_side(Side::Buy)
            .set_ord_type(OrdType::Limit)
            .set_time_in_force(TimeInForce::Day);
        o.set_cl_ord_id(&cl[..len]).unwrap();
        o.set_account(b"ACC").unwrap();
        o.set_symbol(b"AAPL").unwrap();
        s.write_all(&out[..NewOrderSingleEncoder::FRAME_LENGTH])
            .unwrap();
    };
    let mut inbuf = Vec::with_capacity(1 << 20);
    let mut established = false;
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
        while let portcullis::sbe::Frame::Complete(len) =
            portcullis::sbe::frame(&inbuf[at..], 1 << 16)
        {
            match portcullis::sbe::decode(&inbuf[at..at + len]).unwrap() {
                Message::ExecutionReportTrade(t) if t.leaves_qty() == 0 => *fills += 1,
                Message::ExecutionReportNew(_) | Message::ExecutionReportTrade(_) => {}
                Message::EstablishmentAck(_) => established = true,
                Message::NegotiationResponse(_) | Message::Sequence(_) => {}
                other => panic!("unexpected answer: {other:?}"),
            }
            at += len;
        }
        inbuf.drain(..at);
    };
    let (fills, allocs) = counting::drive(&mut s, (WARMUP, MEASURED, WINDOW), send, &mut read_some);
    running.stop();
    assert!(established);
    assert_eq!(fills, WARMUP + MEASURED);
    assert_eq!(
        allocs, 0,
        "{allocs} allocations on the gateway thread over {MEASURED} SBE orders (busy_poll = {busy})"
    );
}

/// Unix milliseconds now: keys are created "now".
fn now_ms() -> u64 {
    portcullis::clock::system_utc().0 / 1_000_000
}
