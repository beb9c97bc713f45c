//! Hostile and broken input through real sockets: nothing panics or stalls the loop, each gets
//! the FIX-specified answer or a disconnect, and other sessions keep trading.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::util::*;

fn gateway() -> Gw {
    start(&format!("{SESSIONS}{}", sim("fill")))
}

/// Proves the gateway still serves: a fresh session logs on and trades.
fn still_serves(gw: &Gw) {
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c.send("A", "98=0|108=30|141=Y");
    c.expect("A");
    c.send("D", &nos("ALIVE", "AAPL", "1", "1", Some("1")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("F"));
    c.logout();
}

#[test]
fn garbage_before_logon_is_dropped() {
    let gw = gateway();
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.write_all(&[0xff; 5000]).unwrap();
    s.write_all(b"hello\r\n\x01\x01=====").unwrap();
    drop(s);
    still_serves(&gw);
}

#[test]
fn connection_without_logon_is_closed_after_the_logon_timeout() {
    let gw = gateway();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    assert!(
        c.closed_within(Duration::from_secs(6)),
        "slowloris connection must be closed"
    );
    still_serves(&gw);
}

#[test]
fn first_message_not_a_logon_closes_the_connection() {
    let gw = gateway();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.send("D", &nos("NOPE", "AAPL", "1", "1", Some("1")));
    assert!(c.closed_within(Duration::from_secs(3)));
    assert!(c.received.is_empty());
    still_serves(&gw);
}

#[test]
fn unknown_comp_ids_are_closed_without_an_answer() {
    let gw = gateway();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "STRANGER", "GW");
    c.send("A", "98=0|108=30");
    assert!(c.closed_within(Duration::from_secs(3)));
    assert!(c.received.is_empty());
    let mut c = Client::connect(gw.addr, "FIX.4.2", "CLIENT1", "GW");
    c.send("A", "98=0|108=30");
    assert!(
        c.closed_within(Duration::from_secs(3)),
        "wrong BeginString for the session"
    );
    still_serves(&gw);
}

#[test]
fn second_logon_for_a_connected_session_is_refused_and_the_first_keeps_working() {
    let gw = gateway();
    let mut first = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    first.logon(30);
    let mut second = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    second.send("A", "98=0|108=30");
    assert!(second.closed_within(Duration::from_secs(3)));
    first.send("D", &nos("STILL", "AAPL", "1", "1", Some("1")));
    assert_eq!(field(&first.expect("8"), 11).as_deref(), Some("STILL"));
}

#[test]
fn oversized_message_ends_the_session() {
    let gw = gateway();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.send_raw(b"8=FIX.4.4\x019=999999\x0135=D\x01");
    let lo = c.expect("5");
    assert!(
        field(&lo, 58).unwrap().contains("maximum message size"),
        "{}",
        show(&lo)
    );
    assert!(c.closed_within(Duration::from_secs(3)));
    still_serves(&gw);
}

#[test]
fn garbled_messages_are_ignored_and_the_session_continues() {
    let gw = gateway();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    // Bad checksum: ignored, sequence number not consumed.
    let mut m = c.build("1", "112=BAD");
    let n = m.len();
    m[n - 2] = if m[n - 2] == b'0' { b'1' } else { b'0' };
    c.send_raw(&m);
    c.seq -= 1;
    // Non-numeric tag: garbled, ignored.
    let bad = portcullis::fix::testing::with_trailer(
        format!(
            "8=FIX.4.4\x019=0\x0135=1\x0134={}\x01x9=TW\x0152=20240101-00:00:00\x0156=GW\x01",
            c.seq
        )
        .as_bytes(),
    );
    c.send_raw(&bad);
    c.send("1", "112=GOOD");
    let hb = c.expect("0");
    assert_eq!(field(&hb, 112).as_deref(), Some("GOOD"), "{}", show(&hb));
}

#[test]
fn bad_field_values_get_a_reject_not_a_crash() {
    let gw = gateway();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.send(
        "D",
        "11=N1|55=AAPL|54=1|38=abc|40=2|44=1|60=20240101-00:00:00",
    );
    let r = c.expect_any(&["3", "8"]);
    assert!(show(&r).contains("38"), "names OrderQty: {}", show(&r));
    c.send(
        "D",
        "11=N2|55=AAPL|54=1|38=1|38=2|40=2|44=1|60=20240101-00:00:00",
    );
    let r = c.expect_any(&["3", "8"]);
    assert!(
        field(&r, 35).as_deref() == Some("3") || field(&r, 39).as_deref() == Some("8"),
        "duplicate tag refused: {}",
        show(&r)
    );
    c.send(
        "D",
        "11=N3|55=AAPL|54=1|38=99999999999999999999999|40=2|44=1|60=20240101-00:00:00",
    );
    let r = c.expect_any(&["3", "8"]);
    assert!(
        field(&r, 35).as_deref() == Some("3") || field(&r, 39).as_deref() == Some("8"),
        "overflowing qty refused: {}",
        show(&r)
    );
    c.send("D", &nos("N4", "AAPL", "1", "1", Some("1")));
    let ok = c.expect("8");
    assert_eq!(field(&ok, 11).as_deref(), Some("N4"));
    assert_eq!(field(&ok, 150).as_deref(), Some("0"), "{}", show(&ok));
}
