//! Binary order entry end to end (issue 16 part 2, BIN-1): SBE over FIXP on a real socket into
//! the same order desk as FIX — an order placed and filled, one account's credit shared by a
//! FIX and an SBE session, the uniform refusals an attacker gets, the session held by one
//! connection, and a logical session that survives a gateway restart with its sequence
//! numbers and reports (RetransmitRequest).
//!
//! The small client here builds frames with the generated encoders and `fixp::wire`; the
//! full client library (`fixp::client`) and its own tests live beside `fixclient --sbe`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use portcullis::fixp::msg::{Establish, Name, Negotiate, RetransmitRequest, SessionMsg};
use portcullis::fixp::sign::{sign_establish, sign_negotiate};
use portcullis::sbe::generated::{
    BooleanFlag, NewOrderSingleEncoder, OrdType, OrderCancelRequestEncoder, Side, TimeInForce,
};
use portcullis::sbe::{self, Message};

use super::util::{self, now_utc, Client, KeyEnv};

/// Sessions for these tests: FIX CLIENT1 and SBE BIN1 both trade ACC1; SBE BIN2 trades ACC2.
const SESSIONS: &str = r#"
[[listener]]
address = "127.0.0.1:0"
protocol = "sbe"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT1"
default_account = "ACC1"

[[session]]
protocol = "sbe"
their_comp_id = "BIN1"
default_account = "ACC1"

[[session]]
protocol = "sbe"
their_comp_id = "BIN2"
default_account = "ACC2"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "DROP"
drop_copy_accounts = ["ACC1"]
"#;

/// ACC1 with a credit limit of 15,000 (one 100 @ 100 order fits, two do not), ACC2 roomy.
fn accounts() -> String {
    let acc = |name: &str, credit: &str| {
        format!(
            "[[account]]\nname = \"{name}\"\nmax_order_qty = 1000000\nmax_order_notional = 100000000\n\
             collar_bps = 100000000\nreference_max_age_ms = 3600000\ncredit_limit = {credit}\n\
             max_long = 1000000\nmax_short = 1000000\nmax_open_orders = 1000\n\
             ord_types = [\"market\", \"limit\"]\ntime_in_force = [\"day\", \"gtc\", \"ioc\", \"fok\"]\n\
             duplicate_window_ms = 0\nmax_msgs = 1000000\nrate_period_ms = 1000\n\n"
        )
    };
    format!(
        "{}{}{}",
        acc("ACC1", "15000"),
        acc("ACC2", "100000000"),
        portcullis::config::risk::permissive_toml(&[], &["AAPL"])
    )
}

/// A minimal SBE/FIXP client over a real socket.
struct Sbe {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Our next application sequence number.
    seq: u64,
    uuid: u64,
}

impl Sbe {
    fn connect(addr: SocketAddr, uuid: u64) -> Sbe {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Sbe {
            stream,
            buf: Vec::new(),
            seq: 1,
            uuid,
        }
    }

    fn send(&mut self, frame: &[u8]) {
        self.stream.write_all(frame).unwrap();
    }

    fn send_session(&mut self, m: &SessionMsg) {
        let mut b = [0u8; 256];
        let n = portcullis::fixp::wire::encode_session(m, &mut b).unwrap();
        self.send(&b[..n]);
    }

    fn negotiate(&mut self, session: &str, key: &str, secret: &[u8]) {
        let mut m = Negotiate {
            uuid: self.uuid,
            request_timestamp: now_utc().0,
            session: Name::new(session.as_bytes()).unwrap(),
            access_key_id: Name::new(key.as_bytes()).unwrap(),
            hmac_signature: [0; 32],
        };
        sign_negotiate(secret, &mut m);
        self.send_session(&SessionMsg::Negotiate(m));
    }

    fn establish(&mut self, session: &str, key: &str, secret: &[u8]) {
        let mut m = Establish {
            uuid: self.uuid,
            request_timestamp: now_utc().0,
            session: Name::new(session.as_bytes()).unwrap(),
            access_key_id: Name::new(key.as_bytes()).unwrap(),
            next_seq_no: self.seq,
            keep_alive_interval: 30_000,
            hmac_signature: [0; 32],
        };
        sign_establish(secret, &mut m);
        self.send_session(&SessionMsg::Establish(m));
    }

    /// Negotiate and Establish, both answered positively.
    fn open(&mut self, session: &str, key: &str, secret: &[u8]) {
        self.negotiate(session, key, secret);
        let r = self.expect_session("NegotiationResponse");
        let SessionMsg::NegotiationResponse(r) = r else {
            unreachable!()
        };
        assert_eq!(r.uuid, self.uuid);
        self.establish(session, key, secret);
        self.expect_session("EstablishmentAck");
    }

    fn order(&mut self, cl: &str, side: Side, qty: i64, price: i64) {
        let mut b = [0u8; 512];
        let mut e = NewOrderSingleEncoder::frame(&mut b).unwrap();
        e.set_seq_num(self.seq)
            .set_sending_time(now_utc().0)
            .set_poss_retrans(BooleanFlag::False)
            .set_order_qty(qty * 10_000)
            .set_price(Some(price * 100_000_000))
            .set_transact_time(now_utc().0)
            .set_side(side)
            .set_ord_type(OrdType::Limit)
            .set_time_in_force(TimeInForce::Day);
        e.set_cl_ord_id(cl.as_bytes()).unwrap();
        e.set_symbol(b"AAPL").unwrap();
        self.seq += 1;
        self.send(&b[..NewOrderSingleEncoder::FRAME_LENGTH]);
    }

    fn cancel(&mut self, cl: &str, orig: &str, side: Side) {
        let mut b = [0u8; 512];
        let mut e = OrderCancelRequestEncoder::frame(&mut b).unwrap();
        e.set_seq_num(self.seq)
            .set_sending_time(now_utc().0)
            .set_poss_retrans(BooleanFlag::False)
            .set_transact_time(now_utc().0)
            .set_side(side);
        e.set_cl_ord_id(cl.as_bytes()).unwrap();
        e.set_orig_cl_ord_id(orig.as_bytes()).unwrap();
        self.seq += 1;
        self.send(&b[..OrderCancelRequestEncoder::FRAME_LENGTH]);
    }

    /// The next whole frame, or `None` after `timeout` or when the gateway closed.
    fn recv(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let sbe::Frame::Complete(n) = sbe::frame(&self.buf, 1 << 16) {
                return Some(self.buf.drain(..n).collect());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return None,
            }
        }
    }

    fn next(&mut self) -> Vec<u8> {
        self.recv(Duration::from_secs(5))
            .expect("a frame from the gateway within 5 s")
    }

    /// The next application frame (Sequence heartbeats and announcements are skipped).
    fn next_app(&mut self) -> Vec<u8> {
        loop {
            let f = self.next();
            if !matches!(sbe::decode(&f), Ok(Message::Sequence(_))) {
                return f;
            }
        }
    }

    /// The next frame must be session message `name`.
    fn expect_session(&mut self, name: &str) -> SessionMsg {
        let f = self.next();
        let m = sbe::decode(&f).unwrap();
        let s = portcullis::fixp::wire::session_msg(&m)
            .unwrap_or_else(|| panic!("expected {name}, got an application message {m:?}"));
        assert_eq!(s.name(), name, "{s:?}");
        s
    }

    /// Whether the gateway closed the connection within `timeout` (bytes before the close are
    /// returned).
    fn closed_within(&mut self, timeout: Duration) -> (bool, Vec<Vec<u8>>) {
        let mut got = Vec::new();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.recv(Duration::from_millis(100)) {
                Some(f) => got.push(f),
                None => {
                    let mut b = [0u8; 1];
                    self.stream
                        .set_read_timeout(Some(Duration::from_millis(50)))
                        .unwrap();
                    match self.stream.read(&mut b) {
                        Ok(0) => return (true, got),
                        Ok(_) => self.buf.push(b[0]),
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => return (true, got),
                    }
                }
            }
        }
        (false, got)
    }
}

fn sbe_addr(gw: &util::Gw) -> SocketAddr {
    gw.running.handle.listen_addrs[1]
}

/// Keys: `bin1` bound to BIN1 (ACC1), `bin2` bound to BIN2 (ACC2), `client1` bound to CLIENT1
/// (ACC1).
fn env() -> (KeyEnv, Vec<u8>, Vec<u8>, Vec<u8>) {
    let env = KeyEnv::new(&format!("{SESSIONS}{}", util::sim("ack")), &accounts());
    let bin1 = env.add("bin1", "BIN1", &["--account", "ACC1"]);
    let bin2 = env.add("bin2", "BIN2", &["--account", "ACC2"]);
    let client1 = env.add("client1", "CLIENT1", &["--account", "ACC1"]);
    (env, bin1, bin2, client1)
}

fn decode(f: &[u8]) -> Message<'_> {
    sbe::decode(f).unwrap()
}

/// The ClOrdIDs of the FIX ExecutionReports `d` receives until it is quiet for `quiet`.
fn copies(d: &mut Client, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = d.recv_timeout(quiet) {
        if util::field(&m, 35).as_deref() == Some("8") {
            out.push(util::field(&m, 11).unwrap_or_default());
        }
    }
    out
}

/// The order records (REG-1) of the data folder, once they hold every one of `cls`.
fn records_with(dir: &std::path::Path, cls: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut all = String::new();
        if let Ok(rd) = std::fs::read_dir(dir.join("records")) {
            for e in rd.flatten() {
                all.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
        if cls.iter().all(|c| all.contains(&format!("\"{c}\""))) || Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_sbe_order_and_a_fix_order_share_one_accounts_credit_records_and_drop_copy() {
    let (env, bin1, _bin2, client1) = env();
    let dc = env.add(
        "dc",
        "DROP",
        &["--scope", "orders:read", "--account", "ACC1"],
    );
    let mut env = env;
    let gw = env.start();
    let mut d = Client::connect(gw.addr, "FIX.4.4", "DROP", "GW");
    d.signed_logon("dc", &dc);
    let mut b = Sbe::connect(sbe_addr(&gw), 0x5EED_0001);
    b.open("BIN1", "bin1", &bin1);
    b.order("B-1", Side::Buy, 100, 100);
    let f = b.next();
    let Message::ExecutionReportNew(er) = decode(&f) else {
        panic!("expected ExecutionReportNew, got {:?}", decode(&f));
    };
    assert_eq!(er.cl_ord_id(), b"B-1");
    assert_eq!(er.account(), b"ACC1");
    assert_eq!(er.seq_num(), 1, "the gateway's first application message");
    assert_eq!(er.leaves_qty(), 100 * 10_000);
    assert!(er.order_id() > 0);

    // The FIX session of the same account: 10,000 of 15,000 credit is used by the SBE order.
    let mut f = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    f.signed_logon("client1", &client1);
    f.send("D", &util::nos("F-1", "AAPL", "1", "100", Some("100")));
    let er = f.expect("8");
    assert_eq!(
        util::field(&er, 39).as_deref(),
        Some("8"),
        "{}",
        util::show(&er)
    );
    let text = util::field(&er, 58).unwrap_or_default();
    assert!(text.contains("credit limit exceeded"), "{text}");

    // The SBE order canceled over SBE frees the credit for the FIX order.
    b.cancel("B-2", "B-1", Side::Buy);
    let f2 = b.next();
    let Message::ExecutionReportCanceled(c) = decode(&f2) else {
        panic!("expected ExecutionReportCanceled, got {:?}", decode(&f2));
    };
    assert_eq!(c.orig_cl_ord_id(), b"B-1");
    assert_eq!(c.seq_num(), 2);
    f.send("D", &util::nos("F-2", "AAPL", "1", "100", Some("100")));
    let er = f.expect("8");
    assert_eq!(
        util::field(&er, 39).as_deref(),
        Some("0"),
        "{}",
        util::show(&er)
    );

    // The FIX drop copy of ACC1 saw both protocols' reports, in order.
    let seen = copies(&mut d, Duration::from_millis(500));
    assert_eq!(seen, ["B-1", "F-1", "B-2", "F-2"], "drop copy");
    // And the order records hold both protocols' orders under the one account.
    let recs = records_with(gw.dir.path(), &["B-1", "F-1", "F-2"]);
    for cl in ["B-1", "F-1", "F-2"] {
        let line = recs
            .lines()
            .find(|l| l.contains(&format!("\"{cl}\"")))
            .unwrap_or_else(|| panic!("no record of {cl}: {recs}"));
        assert!(line.contains("ACC1"), "{line}");
    }
}

#[test]
fn an_sbe_order_is_filled_by_the_simulated_venue() {
    let env = KeyEnv::new(&format!("{SESSIONS}{}", util::sim("fill")), &accounts());
    let bin2 = env.add("bin2", "BIN2", &["--account", "ACC2"]);
    let mut env = env;
    let gw = env.start();
    let mut b = Sbe::connect(sbe_addr(&gw), 77);
    b.open("BIN2", "bin2", &bin2);
    b.order("X1", Side::Sell, 5, 100);
    let first = b.next();
    assert!(matches!(decode(&first), Message::ExecutionReportNew(_)));
    let second = b.next();
    let Message::ExecutionReportTrade(t) = decode(&second) else {
        panic!("expected a fill, got {:?}", decode(&second));
    };
    assert_eq!(t.last_qty(), 5 * 10_000);
    assert_eq!(t.cum_qty(), 5 * 10_000);
    assert_eq!(t.leaves_qty(), 0);
    assert_eq!(t.account(), b"ACC2");

    // Every SBE message in and out is in the audit trail (issue 15): the Negotiate under the
    // connection's address with its key and no signature, the order under its session, both
    // reports with the order's ids.
    let is_report =
        |r: &serde_json::Value| r["kind"] == "sbe-out" && r["subject"]["cl_ord_id"] == "X1";
    let records = util::trail_records(gw.dir.path(), |all| {
        all.iter().filter(|r| is_report(r)).count() >= 2
    });
    let find = |kind: &str, msg_type: &str| {
        records
            .iter()
            .find(|r| r["kind"] == kind && r["detail"]["msg_type"] == msg_type)
            .unwrap_or_else(|| panic!("no {kind} {msg_type} in the trail"))
    };
    let negotiate = find("sbe-in", "Negotiate");
    assert_eq!(negotiate["actor"], "address:127.0.0.1");
    assert_eq!(negotiate["subject"]["key"], "bin2");
    let text = negotiate["detail"]["message"].as_str().unwrap();
    assert!(text.contains("signature=***"), "{text}");
    let nos = find("sbe-in", "NewOrderSingle");
    assert_eq!(nos["actor"], "session:SBE:BIN2");
    assert_eq!(nos["subject"]["cl_ord_id"], "X1");
    assert_eq!(nos["subject"]["session"], "SBE:BIN2");
    let reports: Vec<&serde_json::Value> = records.iter().filter(|r| is_report(r)).collect();
    assert_eq!(reports.len(), 2, "the New and the Trade report");
    for r in reports {
        assert_eq!(r["actor"], "gateway");
        assert!(
            r["subject"]["order_id"].as_str().is_some_and(|o| o != "0"),
            "{r}"
        );
    }
}

#[test]
fn every_refused_negotiate_gets_the_same_answer_and_the_session_is_unaffected() {
    let (mut env, bin1, bin2, _client1) = env();
    let gw = env.start();
    let addr = sbe_addr(&gw);
    let refused = |session: &str, key: &str, secret: &[u8]| -> SessionMsg {
        let mut a = Sbe::connect(addr, 9);
        a.negotiate(session, key, secret);
        let r = a.expect_session("NegotiationReject");
        let (closed, _) = a.closed_within(Duration::from_secs(3));
        assert!(closed, "closed after the reject ({session}, {key})");
        r
    };
    let wrong_secret = refused("BIN1", "bin1", b"not the secret");
    let unknown_session = refused("NOPE", "bin1", &bin1);
    let other_sessions_key = refused("BIN1", "bin2", &bin2);
    let unknown_key = refused("BIN1", "ghost", &bin1);
    for r in [&unknown_session, &other_sessions_key, &unknown_key] {
        let (SessionMsg::NegotiationReject(a), SessionMsg::NegotiationReject(b)) =
            (&wrong_secret, r)
        else {
            unreachable!()
        };
        assert_eq!(a.error_code, 100);
        assert_eq!(
            (a.error_code, a.reason),
            (b.error_code, b.reason),
            "an attacker cannot tell the causes apart"
        );
    }
    // The legitimate client negotiates, establishes and trades.
    let mut b = Sbe::connect(addr, 1234);
    b.open("BIN1", "bin1", &bin1);
    b.order("OK-1", Side::Buy, 10, 100);
    assert!(matches!(decode(&b.next()), Message::ExecutionReportNew(_)));
    // The causes are in the event log, not on the wire.
    let log = util::events(gw.dir.path());
    assert!(log.contains("auth-failed"), "{log}");
}

#[test]
fn a_second_connection_cannot_take_an_established_session() {
    let (mut env, bin1, _bin2, _client1) = env();
    let gw = env.start();
    let addr = sbe_addr(&gw);
    let mut b = Sbe::connect(addr, 500);
    b.open("BIN1", "bin1", &bin1);
    // Without the secret: the credentials answer, nothing about the session being in use.
    let mut x = Sbe::connect(addr, 501);
    x.negotiate("BIN1", "bin1", b"guess");
    let SessionMsg::NegotiationReject(r) = x.expect_session("NegotiationReject") else {
        unreachable!()
    };
    assert_eq!(r.error_code, 100);
    // With it: "in use", and the first connection keeps the session.
    let mut y = Sbe::connect(addr, 502);
    y.negotiate("BIN1", "bin1", &bin1);
    let SessionMsg::NegotiationReject(r) = y.expect_session("NegotiationReject") else {
        unreachable!()
    };
    assert_eq!(r.error_code, 106);
    b.order("STILL-1", Side::Buy, 10, 100);
    assert!(matches!(decode(&b.next()), Message::ExecutionReportNew(_)));
}

#[test]
fn garbage_before_negotiate_closes_silently_and_a_bad_frame_after_terminates() {
    let (mut env, bin1, _bin2, _client1) = env();
    let gw = env.start();
    let addr = sbe_addr(&gw);
    let mut g = Sbe::connect(addr, 1);
    g.send(b"8=FIX.4.4\x019=5\x0135=A\x01");
    let (closed, got) = g.closed_within(Duration::from_secs(3));
    assert!(closed && got.is_empty(), "closed without a byte: {got:?}");

    let mut b = Sbe::connect(addr, 2);
    b.open("BIN1", "bin1", &bin1);
    // A SOFH with a foreign encoding type: the stream cannot be resynchronised.
    b.send(&[
        0, 0, 0, 20, 0x50, 0xEB, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    let m = b.expect_session("Terminate");
    assert_eq!(m.error_code(), Some(307));
    let (closed, _) = b.closed_within(Duration::from_secs(3));
    assert!(closed);
}

#[test]
fn a_session_survives_a_restart_with_its_sequence_numbers_and_reports() {
    let (mut env, bin1, _bin2, _client1) = env();
    let gw = env.start();
    let mut b = Sbe::connect(sbe_addr(&gw), 0xABCD);
    b.open("BIN1", "bin1", &bin1);
    b.order("R-1", Side::Buy, 10, 100);
    assert!(matches!(decode(&b.next()), Message::ExecutionReportNew(_)));
    b.order("R-2", Side::Buy, 10, 100);
    assert!(matches!(decode(&b.next()), Message::ExecutionReportNew(_)));
    drop(b);
    // Restart on the same data folder.
    let util::Gw { running, dir, .. } = gw;
    drop(running);
    env.dir = dir;
    let gw = env.start();
    let mut b = Sbe::connect(sbe_addr(&gw), 0xABCD);
    b.seq = 3;
    b.establish("BIN1", "bin1", &bin1);
    let SessionMsg::EstablishmentAck(ack) = b.expect_session("EstablishmentAck") else {
        unreachable!()
    };
    assert_eq!(
        ack.next_seq_no, 3,
        "the gateway's next sequence number survived"
    );
    b.send_session(&SessionMsg::RetransmitRequest(RetransmitRequest {
        uuid: 0xABCD,
        last_uuid: 0,
        request_timestamp: now_utc().0,
        from_seq_no: 1,
        msg_count: 2,
    }));
    b.expect_session("Retransmission");
    for (seq, cl) in [(1, b"R-1"), (2, b"R-2")] {
        let f = b.next_app();
        let Message::ExecutionReportNew(er) = decode(&f) else {
            panic!("expected a resent ExecutionReportNew, got {:?}", decode(&f));
        };
        assert_eq!((er.seq_num(), er.cl_ord_id()), (seq, cl.as_slice()));
        assert_eq!(
            er.poss_retrans_raw(),
            1,
            "retransmissions carry PossRetrans"
        );
    }
    // And trading goes on with the next numbers on both sides.
    b.order("R-3", Side::Buy, 10, 100);
    let f = b.next_app();
    let Message::ExecutionReportNew(er) = decode(&f) else {
        panic!("{:?}", decode(&f));
    };
    assert_eq!(er.seq_num(), 3);
}

/// A frame with a valid SOFH (unless `encoding` says otherwise) around a message header and
/// `block` zero bytes.
fn raw_frame(
    encoding: u16,
    block_length: u16,
    template: u16,
    schema: u16,
    version: u16,
    block: usize,
) -> Vec<u8> {
    let len = 6 + 8 + block;
    let mut f = (len as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&encoding.to_be_bytes());
    for v in [block_length, template, schema, version] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.resize(len, 0);
    f
}

#[test]
fn every_kind_of_bad_frame_gets_a_terminate_naming_it_and_the_session_resumes() {
    let (mut env, bin1, _bin2, _client1) = env();
    let gw = env.start();
    let addr = sbe_addr(&gw);
    let mut short = 10u32.to_be_bytes().to_vec();
    short.extend_from_slice(&0xEB50u16.to_be_bytes());
    let mut oversize = 100_000u32.to_be_bytes().to_vec();
    oversize.extend_from_slice(&0xEB50u16.to_be_bytes());
    let cases: [(&str, Vec<u8>, u16); 7] = [
        ("short frame", short, 307),
        (
            "wrong encoding type",
            raw_frame(0x5BE0, 232, 1, 73, 1, 232),
            307,
        ),
        ("oversize length", oversize, 307),
        ("unknown template", raw_frame(0xEB50, 8, 99, 73, 1, 8), 311),
        (
            "wrong blockLength",
            raw_frame(0xEB50, 100, 1, 73, 1, 100),
            313,
        ),
        (
            "newer schema version",
            raw_frame(0xEB50, 232, 1, 73, 99, 232),
            312,
        ),
        ("other schema", raw_frame(0xEB50, 232, 1, 7, 1, 232), 312),
    ];
    let mut b = Sbe::connect(addr, 42);
    b.open("BIN1", "bin1", &bin1);
    for (what, frame, code) in cases {
        b.send(&frame);
        let m = b.expect_session("Terminate");
        assert_eq!(m.error_code(), Some(code), "{what}: {m:?}");
        let SessionMsg::Terminate(t) = m else {
            unreachable!()
        };
        assert!(!t.reason.is_empty(), "{what}: a reason");
        let (closed, _) = b.closed_within(Duration::from_secs(3));
        assert!(closed, "{what}: closed after the Terminate");
        // The logical session resumes on a new connection with an Establish alone.
        let seq = b.seq;
        b = Sbe::connect(addr, 42);
        b.seq = seq;
        b.establish("BIN1", "bin1", &bin1);
        b.expect_session("EstablishmentAck");
    }
    b.order("AFTER", Side::Buy, 1, 100);
    assert!(matches!(
        decode(&b.next_app()),
        Message::ExecutionReportNew(_)
    ));
}
