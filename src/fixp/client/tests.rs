//! The client against the gateway's own sans-IO FIXP session, in process: a [`GatewayPipe`] is
//! a `Read + Write` stream whose far end is a real `fixp::Session` (its writes are framed,
//! decoded and handed to the session; what the session sends comes back on reads), with a
//! verifier that checks the HMAC as the gateway does and an order desk that answers every
//! NewOrderSingle with an ExecutionReport New.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use super::*;
use crate::fixp::msg::NotApplied;
use crate::fixp::{
    Action, FixpConfig, Outbox, Session, SignedRequest, Verifier as SessionVerifier,
};
use crate::sbe::generated::{ExecutionReportNewEncoder, OrdStatus};
use crate::session::MemoryStore;

const SECRET: [u8; 32] = [5u8; 32];
const T: Duration = Duration::from_secs(5);

/// Accepts key "k1" with [`SECRET`] for session "BIN1", as the gateway's `KeyVerifier` would.
struct Verifier;

impl SessionVerifier for Verifier {
    fn verify(&mut self, req: &SignedRequest<'_>, _now: Nanos) -> bool {
        req.access_key_id == b"k1"
            && req.session == b"BIN1"
            && crate::auth::logon::mac(&SECRET, req.canonical) == req.signature
    }
    fn accepted(&mut self, _req: &SignedRequest<'_>, _now: Nanos) {}
}

/// What the gateway session wrote, as frames for the client.
#[derive(Default)]
struct Wire {
    bytes: VecDeque<u8>,
}

impl Outbox for Wire {
    fn session(&mut self, msg: &SessionMsg) {
        let mut b = [0u8; 256];
        let n = encode_session(msg, &mut b).unwrap();
        self.bytes.extend(&b[..n]);
    }
    fn application(&mut self, _seq: u64, bytes: &[u8], poss_retrans: bool) {
        let mut copy = bytes.to_vec();
        if poss_retrans {
            // possRetrans: block offset 16, after SOFH (6) and header (8).
            copy[6 + 8 + 16] = 1;
        }
        self.bytes.extend(&copy);
    }
    fn event(&mut self, _event: crate::fixp::Event) {}
}

type Gateway = Rc<RefCell<Session<MemoryStore>>>;

fn gateway() -> Gateway {
    let cfg = FixpConfig::new(Name::new(b"BIN1").unwrap());
    Rc::new(RefCell::new(Session::new(
        cfg,
        MemoryStore::new(),
        MemoryStore::new(),
    )))
}

/// One connection to the in-process gateway session.
struct GatewayPipe {
    gw: Gateway,
    from_client: Vec<u8>,
    to_client: Wire,
    connected: bool,
    closed: bool,
    /// Application messages the gateway processed (seq numbers).
    processed: Rc<RefCell<Vec<u64>>>,
}

impl GatewayPipe {
    fn new(gw: &Gateway) -> GatewayPipe {
        GatewayPipe {
            gw: gw.clone(),
            from_client: Vec::new(),
            to_client: Wire::default(),
            connected: false,
            closed: false,
            processed: Rc::default(),
        }
    }

    fn deliver(&mut self) {
        let now = utc();
        let mut gw = self.gw.borrow_mut();
        if !self.connected {
            assert!(gw.on_connect(now), "one connection at a time");
            self.connected = true;
        }
        while let Frame::Complete(n) = sbe::frame(&self.from_client, MAX_FRAME) {
            let frame: Vec<u8> = self.from_client.drain(..n).collect();
            if self.closed {
                continue;
            }
            let action = match sbe::decode(&frame) {
                Err(e) => gw.terminate(
                    ErrorCode::ALL
                        .into_iter()
                        .find(|c| c.code() == e.error_code() as u16)
                        .unwrap_or(ErrorCode::MalformedMessage),
                    now,
                    &mut self.to_client,
                ),
                Ok(msg) => match session_msg(&msg) {
                    Some(m) => gw.on_message(&m, &mut Verifier, now, &mut self.to_client),
                    None => {
                        let (seq, poss) = match &msg {
                            Message::NewOrderSingle(m) => (m.seq_num(), m.poss_retrans_raw() == 1),
                            Message::OrderCancelRequest(m) => {
                                (m.seq_num(), m.poss_retrans_raw() == 1)
                            }
                            _ => (0, false),
                        };
                        let a = gw.on_application(seq, poss, now, &mut self.to_client);
                        if a == Action::Process {
                            self.processed.borrow_mut().push(seq);
                            if let Message::NewOrderSingle(o) = &msg {
                                let cl = o.cl_ord_id().to_vec();
                                let qty = o.order_qty();
                                let px = o.price();
                                gw.send_application(now, &mut self.to_client, |seq, buf| {
                                    let mut e = ExecutionReportNewEncoder::frame(buf).ok()?;
                                    e.set_seq_num(seq)
                                        .set_sending_time(now.0)
                                        .set_order_id(1000 + seq)
                                        .set_exec_id(1)
                                        .set_order_qty(qty)
                                        .set_price(px)
                                        .set_leaves_qty(qty)
                                        .set_ord_status(OrdStatus::New)
                                        .set_side(crate::sbe::generated::Side::Buy);
                                    e.set_cl_ord_id(&cl).ok()?.set_symbol(b"AAPL").ok()?;
                                    Some(ExecutionReportNewEncoder::FRAME_LENGTH)
                                })
                                .unwrap();
                            }
                        }
                        a
                    }
                },
            };
            if action == Action::Close {
                self.closed = true;
            }
        }
    }
}

impl Write for GatewayPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.from_client.extend_from_slice(buf);
        self.deliver();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for GatewayPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.to_client.bytes.is_empty() {
            if self.closed {
                return Ok(0);
            }
            // The gateway's timers run while the client waits (keep-alive, timeouts).
            let now = utc();
            let a = self.gw.borrow_mut().on_timer(now, &mut self.to_client);
            if a == Action::Close {
                self.closed = true;
            }
            if self.to_client.bytes.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        let n = buf.len().min(self.to_client.bytes.len());
        for (d, s) in buf.iter_mut().zip(self.to_client.bytes.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }
}

impl Drop for GatewayPipe {
    fn drop(&mut self) {
        // The transport goes away: the gateway session unbinds.
        self.gw.borrow_mut().on_disconnect(&mut Wire::default());
    }
}

fn creds() -> Credentials {
    Credentials::new("BIN1", "k1", Zeroizing::new(SECRET.to_vec())).unwrap()
}

fn order(cl: &str) -> OrderSpec<'_> {
    OrderSpec::limit(
        cl,
        "AAPL",
        Side::Buy,
        Qty::from_units(100),
        Price(10_125_000_000),
    )
}

fn exec(r: Option<Report>) -> ExecReport {
    match r {
        Some(Report::Exec(e)) => e,
        other => panic!("expected an ExecutionReport, got {other:?}"),
    }
}

// ---- tests ----

#[test]
fn negotiates_establishes_and_gets_a_report_for_an_order() {
    let gw = gateway();
    let (mut c, ack) = Client::connect(GatewayPipe::new(&gw), creds(), 77, T).unwrap();
    assert_eq!(ack.uuid, 77);
    assert_eq!(ack.next_seq_no, 1);
    assert_eq!(ack.keep_alive_interval, DEFAULT_KEEP_ALIVE_MS);
    assert!(gw.borrow().is_established());
    assert_eq!(c.send_new_order(&order("ORD-1")).unwrap(), 1);
    assert_eq!(c.send_new_order(&order("ORD-2")).unwrap(), 2);
    let r = exec(c.next_report(T).unwrap());
    assert_eq!((r.seq_num, r.exec_type, r.ord_status), (1, b'0', b'0'));
    assert_eq!(r.cl_ord_id.as_str(), "ORD-1");
    assert_eq!(r.price, Some(Price(10_125_000_000)));
    assert_eq!(r.order_qty, Qty::from_units(100));
    assert!(!r.poss_retrans);
    assert_eq!(exec(c.next_report(T).unwrap()).cl_ord_id.as_str(), "ORD-2");
    assert_eq!(c.session().next_inbound(), 3);
    assert_eq!(c.session().gaps(), 0);
    assert_eq!(*c.stream().processed.borrow(), vec![1, 2]);
    assert_eq!(gw.borrow().next_inbound_seq(), 3);
}

#[test]
fn a_wrong_secret_is_refused_with_code_100_and_nothing_else() {
    let gw = gateway();
    let bad = Credentials::new("BIN1", "k1", Zeroizing::new(vec![6u8; 32])).unwrap();
    let err = Client::connect(GatewayPipe::new(&gw), bad, 77, T)
        .err()
        .expect("refused");
    let ClientError::Rejected(m) = err else {
        panic!("{err}");
    };
    let SessionMsg::NegotiationReject(r) = *m else {
        panic!("{m:?}");
    };
    assert_eq!(r.error_code, 100);
    assert_eq!(r.reason.as_str(), "authentication failed");
    assert!(!gw.borrow().is_bound(), "the gateway closed the connection");
}

#[test]
fn establish_without_negotiate_is_refused_with_200() {
    let gw = gateway();
    let at = Resume {
        uuid: 99,
        next_seq_no: 1,
        next_inbound: 1,
    };
    let mut c = Client::new(GatewayPipe::new(&gw), ClientSession::resume(creds(), at));
    let Err(ClientError::Rejected(m)) = c.open(T) else {
        panic!("expected a reject");
    };
    let SessionMsg::EstablishmentReject(r) = *m else {
        panic!("{m:?}");
    };
    assert_eq!(r.error_code, 200);
    assert_eq!(c.session().state(), ClientState::Closed);
}

#[test]
fn reconnect_establishes_the_same_uuid_and_sequence_numbers_continue() {
    let gw = gateway();
    let (mut c, _) = Client::connect(GatewayPipe::new(&gw), creds(), 5, T).unwrap();
    for cl in ["A1", "A2"] {
        c.send_new_order(&order(cl)).unwrap();
        c.next_report(T).unwrap().unwrap();
    }
    assert_eq!(c.terminate(T).unwrap(), Some(0));
    assert_eq!(c.session().state(), ClientState::Closed);
    let (mut c, ack) = c.reconnect(GatewayPipe::new(&gw), T).unwrap();
    assert_eq!(ack.uuid, 5);
    assert_eq!(ack.next_seq_no, 3, "the gateway's flow continues");
    assert_eq!(c.session().next_seq(), 3, "and ours");
    assert_eq!(c.send_new_order(&order("A3")).unwrap(), 3);
    let r = exec(c.next_report(T).unwrap());
    assert_eq!((r.seq_num, r.cl_ord_id.as_str()), (3, "A3"));
    assert_eq!(
        *c.stream().processed.borrow(),
        vec![3],
        "no gap, no NotApplied"
    );
}

#[test]
fn renegotiating_a_new_uuid_starts_both_flows_at_one() {
    let gw = gateway();
    let (mut c, _) = Client::connect(GatewayPipe::new(&gw), creds(), 5, T).unwrap();
    c.send_new_order(&order("A1")).unwrap();
    c.next_report(T).unwrap().unwrap();
    c.terminate(T).unwrap();
    let (mut c, ack) = c.renegotiate(GatewayPipe::new(&gw), 6, T).unwrap();
    assert_eq!((ack.uuid, ack.next_seq_no, ack.previous_uuid), (6, 1, 5));
    assert_eq!(ack.previous_seq_no, 1);
    assert_eq!(c.send_new_order(&order("B1")).unwrap(), 1);
    assert_eq!(exec(c.next_report(T).unwrap()).seq_num, 1);
}

#[test]
fn skipped_sequence_numbers_come_back_as_not_applied() {
    let gw = gateway();
    let (mut c, _) = Client::connect(GatewayPipe::new(&gw), creds(), 8, T).unwrap();
    c.send_new_order(&order("G1")).unwrap();
    c.session_mut().set_next_seq(5);
    assert_eq!(c.send_new_order(&order("G5")).unwrap(), 5);
    let mut not_applied = None;
    let mut reports = 0;
    while reports < 2 {
        match c.next_event(T).unwrap().expect("an event") {
            ClientEvent::Session(SessionMsg::NotApplied(n)) => not_applied = Some(n),
            ClientEvent::Report(_) => reports += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        not_applied,
        Some(NotApplied {
            uuid: 8,
            from_seq_no: 2,
            msg_count: 3
        })
    );
    assert_eq!(c.session().next_seq(), 6);
}

#[test]
fn retransmit_request_replays_reports_with_poss_retrans() {
    let gw = gateway();
    let (mut c, _) = Client::connect(GatewayPipe::new(&gw), creds(), 9, T).unwrap();
    for cl in ["R1", "R2", "R3"] {
        c.send_new_order(&order(cl)).unwrap();
        c.next_report(T).unwrap().unwrap();
    }
    c.retransmit(0, 2, 2).unwrap();
    let mut seen = Vec::new();
    loop {
        match c.next_event(T).unwrap().expect("an event") {
            ClientEvent::Session(SessionMsg::Retransmission(r)) => {
                assert_eq!((r.from_seq_no, r.msg_count), (2, 2));
            }
            ClientEvent::Report(r) => {
                assert!(r.poss_retrans());
                seen.push((r.seq_num(), r.cl_ord_id().to_string()));
            }
            ClientEvent::Session(SessionMsg::Sequence(q)) => {
                assert_eq!(q.next_seq_no, 4);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(seen, vec![(2, "R2".to_string()), (3, "R3".to_string())]);
    assert_eq!(
        c.session().next_inbound(),
        4,
        "replays do not move the flow"
    );
    assert_eq!(c.session().gaps(), 0);
}

#[test]
fn the_gateways_terminate_is_answered_and_closes() {
    let gw = gateway();
    let (mut c, _) = Client::connect(GatewayPipe::new(&gw), creds(), 10, T).unwrap();
    gw.borrow_mut().terminate(
        ErrorCode::Administrative,
        utc(),
        &mut c.stream_mut().to_client,
    );
    let ev = c.next_event(T).unwrap();
    let Some(ClientEvent::Session(SessionMsg::Terminate(t))) = ev else {
        panic!("{ev:?}");
    };
    assert_eq!(t.error_code, 1);
    assert_eq!(c.session().state(), ClientState::Closed);
    // Our answer reached the gateway session, which closed.
    assert!(c.stream().closed);
    assert!(!gw.borrow().is_established());
}

// ---- sans-IO ----

fn frames(out: &[u8]) -> Vec<SessionMsg> {
    let mut v = Vec::new();
    let mut rest = out;
    while let Frame::Complete(n) = sbe::frame(rest, MAX_FRAME) {
        v.push(session_msg(&sbe::decode(&rest[..n]).unwrap()).unwrap());
        rest = &rest[n..];
    }
    assert!(rest.is_empty());
    v
}

fn established_session() -> (ClientSession, Vec<u8>) {
    let mut s = ClientSession::new(creds(), 3);
    let mut out = Vec::new();
    s.open(Nanos(1), &mut out);
    let mut b = [0u8; 256];
    let ack = SessionMsg::EstablishmentAck(EstablishmentAck {
        uuid: 3,
        request_timestamp: 1,
        next_seq_no: 1,
        previous_seq_no: 0,
        previous_uuid: 0,
        keep_alive_interval: 1000,
    });
    let n = encode_session(&ack, &mut b).unwrap();
    s.on_frame(&b[..n], Nanos(2), &mut out).unwrap();
    assert!(s.is_established());
    out.clear();
    (s, out)
}

#[test]
fn a_lapsed_keep_alive_is_answered_at_once_and_silence_sends_a_sequence() {
    let (mut s, mut out) = established_session();
    s.set_keep_alive_ms(1000);
    let mut b = [0u8; 64];
    let lapsed = SessionMsg::Sequence(Sequence {
        uuid: 3,
        next_seq_no: 1,
        keep_alive_interval_lapsed: true,
    });
    let n = encode_session(&lapsed, &mut b).unwrap();
    s.on_frame(&b[..n], Nanos(10), &mut out).unwrap();
    let sent = frames(&out);
    assert!(
        matches!(sent.as_slice(), [SessionMsg::Sequence(q)] if q.next_seq_no == 1 && !q.keep_alive_interval_lapsed),
        "{sent:?}"
    );
    out.clear();
    s.on_timer(Nanos(10 + 999_999_999), &mut out);
    assert!(out.is_empty(), "not silent for a whole interval yet");
    s.on_timer(Nanos(10 + 1_000_000_000), &mut out);
    assert_eq!(frames(&out).len(), 1);
}

#[test]
fn a_value_too_long_for_its_field_is_refused_and_uses_no_sequence_number() {
    let (mut s, mut out) = established_session();
    let long = "X".repeat(21);
    let err = s.new_order(&order(&long), Nanos(5), &mut out).unwrap_err();
    assert!(matches!(err, ClientError::BadValue(_)), "{err}");
    assert!(out.is_empty());
    assert_eq!(s.next_seq(), 1);
    assert_eq!(s.new_order(&order("OK"), Nanos(5), &mut out).unwrap(), 1);
    assert_eq!(out.len(), NewOrderSingleEncoder::FRAME_LENGTH);
}

#[test]
fn orders_before_establish_are_refused() {
    let mut s = ClientSession::new(creds(), 3);
    let mut out = Vec::new();
    assert!(matches!(
        s.new_order(&order("A"), Nanos(1), &mut out),
        Err(ClientError::NotEstablished)
    ));
    assert!(out.is_empty());
}

#[test]
fn no_bytes_from_the_gateway_make_the_client_panic() {
    let (mut s, mut out) = established_session();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut valid = [0u8; 256];
    let n = encode_session(
        &SessionMsg::Sequence(Sequence {
            uuid: 3,
            next_seq_no: 1,
            keep_alive_interval_lapsed: false,
        }),
        &mut valid,
    )
    .unwrap();
    for round in 0..20_000u32 {
        let mut frame = valid[..n].to_vec();
        // Corrupt a few bytes, sometimes the length too.
        for _ in 0..(round % 4 + 1) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = (x as usize) % frame.len();
            frame[at] = (x >> 32) as u8;
        }
        frame.truncate(n - (round as usize % 3));
        let _ = s.on_frame(&frame, Nanos(3), &mut out);
        let _ = describe(&frame);
    }
}

#[test]
fn descriptions_hide_signatures_and_show_prices_as_decimals() {
    let mut s = ClientSession::new(creds(), 3);
    let mut out = Vec::new();
    s.open(Nanos(1), &mut out);
    let d = describe(&out);
    assert!(d.starts_with("Negotiate uuid=3 session=BIN1 key=k1"), "{d}");
    assert!(d.contains("signature=***"), "{d}");
    let (mut s, mut out) = established_session();
    s.new_order(&order("P1"), Nanos(5), &mut out).unwrap();
    let d = describe(&out);
    assert!(d.contains("Price=101.25"), "{d}");
    assert!(d.contains("OrderQty=100"), "{d}");
    assert!(d.contains("ClOrdID=P1"), "{d}");
}
