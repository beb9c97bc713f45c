//! Binary order entry through a real socket: `portcullis::fixp::client` against the gateway's
//! `protocol = "sbe"` listener — each FIXP session step and reject path of
//! fix-specs/FIXP-SESSION.md, with signed Negotiate/Establish checked by the real key store.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use portcullis::config::Protocol;
use portcullis::fixp::client::{
    Client, ClientError, ClientEvent, ClientSession, ClientState, Credentials, ExecReport,
    OrderSpec, Report, Resume,
};
use portcullis::fixp::msg::NotApplied;
use portcullis::fixp::SessionMsg;
use portcullis::model::{Price, Qty, Side};
use zeroize::Zeroizing;

use crate::util::*;

const T: Duration = Duration::from_secs(5);

/// FIXP sessions BIN1 and BIN2 (accounts ACC1, ACC2), keys `bin1` and `bin2` bound to them, a
/// short keep-alive floor so lapses take milliseconds, and a simulated venue of `behaviour`.
struct SbeGw {
    #[allow(dead_code)] // held for its Drop, which stops the gateway
    gw: Gw,
    addr: SocketAddr,
    bin1: Vec<u8>,
    bin2: Vec<u8>,
}

fn start_sbe(behaviour: &str) -> SbeGw {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[listener]]\naddress = \"127.0.0.1:0\"\nprotocol = \"sbe\"\n\n\
         [[session]]\nprotocol = \"sbe\"\ntheir_comp_id = \"BIN1\"\ndefault_account = \"ACC1\"\n\n\
         [[session]]\nprotocol = \"sbe\"\ntheir_comp_id = \"BIN2\"\ndefault_account = \"ACC2\"\n\n\
         [fixp]\nkeep_alive_min_ms = 100\n\n\
         [auth]\nkey_store = \"keys.store\"\nmaster_key = {{ provider = \"file\", path = \"master.key\" }}\nrequired = true\n\n{}",
        sim(behaviour)
    );
    let cfg = config(dir.path(), &extra);
    let key = |id: &str, session: &str| {
        let spec = portcullis::auth::admin::KeySpec {
            comp_ids: vec![session.to_string()],
            role: "trader".into(),
            allow: vec!["127.0.0.1/32".into()],
            ..Default::default()
        };
        let secret = portcullis::auth::admin::add(&cfg, id, &spec, now_utc().0 / 1_000_000)
            .unwrap_or_else(|e| panic!("key {id}: {e}"));
        b64(&secret)
    };
    let bin1 = key("bin1", "BIN1");
    let bin2 = key("bin2", "BIN2");
    let sbe_index = cfg
        .listeners
        .iter()
        .position(|l| l.protocol == Protocol::Sbe)
        .unwrap();
    let gw = start_in(dir, &extra);
    let addr = gw.running.handle.listen_addrs[sbe_index];
    SbeGw {
        gw,
        addr,
        bin1,
        bin2,
    }
}

impl SbeGw {
    fn creds(&self, session: &str, key: &str) -> Credentials {
        let secret = if key == "bin2" {
            &self.bin2
        } else {
            &self.bin1
        };
        Credentials::new(session, key, Zeroizing::new(secret.clone())).unwrap()
    }
    fn stream(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        Client::tcp(&s).unwrap();
        s
    }
    fn connect(&self, uuid: u64) -> Client<TcpStream> {
        let (c, ack) = Client::connect(self.stream(), self.creds("BIN1", "bin1"), uuid, T)
            .unwrap_or_else(|e| panic!("connect: {e}"));
        assert_eq!(ack.uuid, uuid);
        c
    }
    /// The first answer to a Negotiate with these credentials, which must be a refusal.
    fn refused(&self, creds: Credentials, uuid: u64) -> SessionMsg {
        match Client::connect(self.stream(), creds, uuid, T) {
            Err(ClientError::Rejected(m)) => *m,
            Err(e) => panic!("expected a reject, got {e}"),
            Ok(_) => panic!("expected a reject, got an EstablishmentAck"),
        }
    }
}

fn uuid() -> u64 {
    now_utc().0
}

fn order(cl: &str) -> OrderSpec<'_> {
    OrderSpec::limit(
        cl,
        "AAPL",
        Side::Buy,
        Qty::from_units(100),
        Price::from_units(10),
    )
}

fn exec(r: Option<Report>) -> ExecReport {
    match r {
        Some(Report::Exec(e)) => e,
        other => panic!("expected an ExecutionReport, got {other:?}"),
    }
}

/// Reports until one for `cl` with `exec_type` (others are skipped).
fn report_for(c: &mut Client<TcpStream>, cl: &str, exec_type: u8) -> ExecReport {
    loop {
        let e = exec(c.next_report(T).unwrap());
        if e.cl_ord_id.as_str() == cl && e.exec_type == exec_type {
            return e;
        }
    }
}

#[test]
fn negotiate_establish_and_an_order_gets_new_then_filled() {
    let g = start_sbe("fill");
    let mut c = g.connect(uuid());
    assert_eq!(c.send_new_order(&order("F1")).unwrap(), 1);
    let new = exec(c.next_report(T).unwrap());
    assert_eq!((new.exec_type, new.ord_status), (b'0', b'0'), "{new:?}");
    assert_eq!(new.cl_ord_id.as_str(), "F1");
    assert_eq!(
        new.account.as_str(),
        "ACC1",
        "the session's default account"
    );
    assert!(new.order_id > 0);
    assert_eq!(new.seq_num, 1);
    let fill = exec(c.next_report(T).unwrap());
    assert_eq!((fill.exec_type, fill.ord_status), (b'F', b'2'), "{fill:?}");
    assert_eq!(fill.order_id, new.order_id);
    assert_eq!(fill.cum_qty, Qty::from_units(100));
    assert_eq!(fill.last_qty, Qty::from_units(100));
    assert_eq!(fill.seq_num, 2);
    assert_eq!(c.terminate(T).unwrap(), Some(0));
}

#[test]
fn wrong_signature_unknown_session_and_a_foreign_key_get_the_same_reject_100() {
    let g = start_sbe("ack");
    let wrong_secret = Credentials::new("BIN1", "bin1", Zeroizing::new(vec![9u8; 32])).unwrap();
    let answers = [
        g.refused(wrong_secret, uuid()),
        g.refused(g.creds("NOSUCH", "bin1"), uuid()),
        // bin2 is bound to BIN2, not BIN1.
        g.refused(g.creds("BIN1", "bin2"), uuid()),
        g.refused(
            Credentials::new("BIN1", "nokey", Zeroizing::new(g.bin1.clone())).unwrap(),
            uuid(),
        ),
    ];
    for a in &answers {
        let SessionMsg::NegotiationReject(r) = a else {
            panic!("{a:?}");
        };
        assert_eq!(r.error_code, 100, "{a:?}");
        assert_eq!(r.reason.as_str(), "authentication failed");
    }
    // Nothing else tells the causes apart: the same code and text for every one.
    let texts: Vec<_> = answers
        .iter()
        .map(|a| (a.error_code(), format!("{:?}", a.name())))
        .collect();
    assert!(texts.windows(2).all(|w| w[0] == w[1]), "{texts:?}");
}

#[test]
fn a_second_connection_while_bound_is_refused_in_use_and_the_first_goes_on() {
    let g = start_sbe("ack");
    let mut first = g.connect(uuid());
    let second = g.refused(g.creds("BIN1", "bin1"), uuid() + 1);
    let SessionMsg::NegotiationReject(r) = second else {
        panic!("{second:?}");
    };
    assert_eq!(r.error_code, 106);
    // The first session is unaffected.
    first.send_new_order(&order("U1")).unwrap();
    let e = exec(first.next_report(T).unwrap());
    assert_eq!((e.cl_ord_id.as_str(), e.exec_type), ("U1", b'0'));
}

#[test]
fn establish_without_negotiate_is_refused_with_200() {
    let g = start_sbe("ack");
    let at = Resume {
        uuid: uuid(),
        next_seq_no: 1,
        next_inbound: 1,
    };
    let mut c = Client::new(
        g.stream(),
        ClientSession::resume(g.creds("BIN1", "bin1"), at),
    );
    let Err(ClientError::Rejected(m)) = c.open(T) else {
        panic!("expected a reject");
    };
    let SessionMsg::EstablishmentReject(r) = *m else {
        panic!("{m:?}");
    };
    assert_eq!(r.error_code, 200);
    assert!(
        matches!(c.next_event(T), Err(ClientError::Closed)),
        "the gateway closes after the reject"
    );
}

#[test]
fn a_sequence_gap_is_answered_with_not_applied_and_the_order_still_goes() {
    let g = start_sbe("ack");
    let mut c = g.connect(uuid());
    c.send_new_order(&order("G1")).unwrap();
    c.session_mut().set_next_seq(5);
    assert_eq!(c.send_new_order(&order("G5")).unwrap(), 5);
    let mut not_applied = None;
    let mut news = Vec::new();
    while news.len() < 2 {
        match c.next_event(T).unwrap().expect("an event") {
            ClientEvent::Session(SessionMsg::NotApplied(n)) => not_applied = Some(n),
            ClientEvent::Report(Report::Exec(e)) => news.push(e.cl_ord_id.as_str().to_string()),
            other => panic!("{other:?}"),
        }
    }
    let uuid = c.session().uuid();
    assert_eq!(
        not_applied,
        Some(NotApplied {
            uuid,
            from_seq_no: 2,
            msg_count: 3
        })
    );
    assert_eq!(news, ["G1", "G5"]);
}

#[test]
fn retransmit_request_replays_reports_with_poss_retrans() {
    let g = start_sbe("ack");
    let mut c = g.connect(uuid());
    for cl in ["R1", "R2", "R3"] {
        c.send_new_order(&order(cl)).unwrap();
        report_for(&mut c, cl, b'0');
    }
    let next = c.session().next_inbound();
    assert_eq!(next, 4);
    c.retransmit(0, 2, 2).unwrap();
    let mut replayed = Vec::new();
    loop {
        match c.next_event(T).unwrap().expect("an event") {
            ClientEvent::Session(SessionMsg::Retransmission(r)) => {
                assert_eq!((r.from_seq_no, r.msg_count), (2, 2));
            }
            ClientEvent::Report(r) => {
                assert!(r.poss_retrans(), "{r}");
                replayed.push((r.seq_num(), r.cl_ord_id().to_string()));
            }
            ClientEvent::Session(SessionMsg::Sequence(q)) => {
                assert_eq!(q.next_seq_no, 4, "the real-time flow resumes where it was");
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(replayed, [(2, "R2".to_string()), (3, "R3".to_string())]);
}

#[test]
fn reconnect_with_establish_on_the_same_uuid_keeps_sequence_numbers() {
    let g = start_sbe("ack");
    let id = uuid();
    let mut c = g.connect(id);
    for cl in ["S1", "S2"] {
        c.send_new_order(&order(cl)).unwrap();
        report_for(&mut c, cl, b'0');
    }
    assert_eq!(c.terminate(T).unwrap(), Some(0));
    assert_eq!(c.session().state(), ClientState::Closed);
    let (mut c, ack) = c.reconnect(g.stream(), T).unwrap();
    assert_eq!(ack.uuid, id, "Establish alone, no Negotiate");
    assert_eq!(ack.next_seq_no, 3, "the gateway's numbers continue");
    assert_eq!(c.session().negotiation(), None);
    assert_eq!(c.send_new_order(&order("S3")).unwrap(), 3, "and ours");
    let e = report_for(&mut c, "S3", b'0');
    assert_eq!(e.seq_num, 3);
    // No NotApplied came: the gateway expected 3.
    assert_eq!(c.session().gaps(), 0);
}

#[test]
fn a_lapsed_keep_alive_ends_with_terminate_300() {
    let g = start_sbe("ack");
    let stream = g.stream();
    let mut cs = ClientSession::new(g.creds("BIN1", "bin1"), uuid());
    cs.set_keep_alive_ms(100);
    let mut c = Client::new(stream, cs);
    c.open(T).unwrap();
    // Silence: read the socket directly, so that the client sends no keep-alive.
    let mut seen = Vec::new();
    let mut buf = Vec::new();
    let deadline = std::time::Instant::now() + T;
    let code = 'read: loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no Terminate; saw {seen:?}"
        );
        let mut chunk = [0u8; 4096];
        match std::io::Read::read(c.stream_mut(), &mut chunk) {
            Ok(0) => panic!("closed without Terminate; saw {seen:?}"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue, // the read timeout
        }
        while let portcullis::sbe::Frame::Complete(n) =
            portcullis::sbe::frame(&buf, portcullis::sbe::DEFAULT_MAX_FRAME)
        {
            let frame: Vec<u8> = buf.drain(..n).collect();
            let msg = portcullis::sbe::decode(&frame).unwrap();
            let m = portcullis::fixp::wire::session_msg(&msg).expect("a session message");
            if let SessionMsg::Terminate(t) = m {
                break 'read t.error_code;
            }
            seen.push(m);
        }
    };
    assert_eq!(code, 300, "saw {seen:?}");
    assert!(
        seen.iter()
            .any(|m| matches!(m, SessionMsg::Sequence(q) if q.keep_alive_interval_lapsed)),
        "a lapse warning came first: {seen:?}"
    );
}

#[test]
fn a_garbage_frame_gets_terminate_307_and_the_connection_closes() {
    let g = start_sbe("ack");
    let mut c = g.connect(uuid());
    // A SOFH with the wrong encoding type (0x50EB: little-endian by mistake).
    c.send_raw(&[
        0, 0, 0, 20, 0x50, 0xEB, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ])
    .unwrap();
    let code = loop {
        match c.next_event(T) {
            Ok(Some(ClientEvent::Session(SessionMsg::Terminate(t)))) => break t.error_code,
            Ok(Some(_)) => {}
            other => panic!("expected Terminate, got {other:?}"),
        }
    };
    assert_eq!(code, 307);
    let end = loop {
        match c.next_event(T) {
            Ok(Some(_)) => {}
            other => break other,
        }
    };
    assert!(matches!(end, Err(ClientError::Closed)), "{end:?}");
}
