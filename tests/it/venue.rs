//! Routing to an external venue over a FIX 4.4 initiator session. The test plays the venue on a
//! real socket: it accepts the gateway's connection, answers its Logon and its orders.

use std::net::TcpListener;
use std::time::Duration;

use crate::util::*;

fn venue_config(port: u16) -> String {
    format!(
        r#"{SESSIONS}
[[venue]]
name = "XVEN"
kind = "fix"
address = "127.0.0.1:{port}"
our_comp_id = "GW"
their_comp_id = "VENUE"
heartbeat_secs = 30
reconnect_ms = 200
"#
    )
}

/// Accepts the gateway's connection and completes its Logon.
fn accept_gateway(l: &TcpListener) -> Client {
    let (s, _) = l.accept().unwrap();
    let mut v = Client::from_stream(s, "FIX.4.4", "VENUE", "GW");
    let logon = v.expect("A");
    let seq: u64 = field(&logon, 34).unwrap().parse().unwrap();
    assert!(seq >= 1);
    v.send("A", "98=0|108=30");
    v
}

fn report(v: &mut Client, order: &[u8], exec_type: &str, status: &str, extra: &str) {
    let cl = field(order, 11).unwrap();
    let body = format!(
        "37=V1|11={cl}|17=E{}|150={exec_type}|39={status}|55={}|54={}|38={}|{extra}",
        v.seq,
        field(order, 55).unwrap(),
        field(order, 54).unwrap(),
        field(order, 38).unwrap_or_else(|| "0".into()),
    );
    v.send("8", &body);
}

#[test]
fn orders_route_to_a_fix_venue_and_its_reports_come_back() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let gw = start(&venue_config(l.local_addr().unwrap().port()));
    let mut v = accept_gateway(&l);
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);

    c.send("D", &nos("C1", "AAPL", "1", "100", Some("10")));
    let d = v.expect("D");
    let pending = c.expect("8");
    assert_eq!(
        field(&pending, 150).as_deref(),
        Some("A"),
        "PendingNew while the venue decides: {}",
        show(&pending)
    );
    assert_eq!(field(&pending, 39).as_deref(), Some("A"));
    assert_ne!(
        field(&d, 11).as_deref(),
        Some("C1"),
        "the venue sees the gateway's ClOrdID"
    );
    assert_eq!(field(&d, 38).as_deref(), Some("100"));
    report(&mut v, &d, "0", "0", "151=100|14=0|6=0");
    let new = c.expect("8");
    assert_eq!(field(&new, 150).as_deref(), Some("0"));
    assert_eq!(field(&new, 11).as_deref(), Some("C1"));
    report(&mut v, &d, "F", "1", "32=40|31=10|151=60|14=40|6=10");
    let fill = c.expect("8");
    assert_eq!(field(&fill, 39).as_deref(), Some("1"), "{}", show(&fill));
    assert_eq!(field(&fill, 14).as_deref(), Some("40"));

    // A venue reject keeps the venue's reason.
    c.send("D", &nos("C9", "AAPL", "1", "5", Some("10")));
    let d9 = v.expect("D");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("A"));
    report(&mut v, &d9, "8", "8", "151=0|14=0|6=0|58=symbol halted");
    let rej = c.expect("8");
    assert_eq!(field(&rej, 39).as_deref(), Some("8"));
    assert_eq!(
        field(&rej, 58).as_deref(),
        Some("rejected by the venue: symbol halted"),
        "{}",
        show(&rej)
    );

    c.send("F", "11=C2|41=C1|55=AAPL|54=1|60=20240101-00:00:00");
    let f = v.expect("F");
    assert_eq!(
        field(&f, 41),
        field(&d, 11),
        "cancel names the live venue order"
    );
    let pc = c.expect("8");
    assert_eq!(
        field(&pc, 150).as_deref(),
        Some("6"),
        "PendingCancel: {}",
        show(&pc)
    );
    assert_eq!(field(&pc, 11).as_deref(), Some("C2"));
    assert_eq!(field(&pc, 41).as_deref(), Some("C1"));
    assert_ne!(
        field(&pc, 17),
        field(&new, 17),
        "every report has its own ExecID"
    );
    let cl = field(&f, 11).unwrap();
    v.send(
        "8",
        &format!(
            "37=V1|11={cl}|41={}|17=E9|150=4|39=4|55=AAPL|54=1|38=100|151=0|14=40|6=10",
            field(&d, 11).unwrap()
        ),
    );
    let can = c.expect("8");
    assert_eq!(field(&can, 150).as_deref(), Some("4"), "{}", show(&can));
    assert_eq!(field(&can, 11).as_deref(), Some("C2"));
    assert_eq!(field(&can, 41).as_deref(), Some("C1"));

    // Both sides of the order are in the audit trail (issue 15), under the gateway's OrderID:
    // what went to the venue and what the venue answered, beside the client's messages.
    let order_id = field(&new, 37).unwrap();
    let venue_cl = field(&d, 11).unwrap();
    let of_order = |r: &serde_json::Value| r["subject"]["order_id"] == order_id.as_str();
    let records = trail_records(gw.dir.path(), |all| {
        all.iter()
            .filter(|r| r["actor"] == "venue:XVEN" && of_order(r))
            .count()
            >= 3
    });
    let to_venue: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["kind"] == "fix-out" && r["subject"]["venue"] == "XVEN" && of_order(r))
        .collect();
    let types: Vec<&str> = to_venue
        .iter()
        .map(|r| r["detail"]["msg_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["D", "F"], "the order and its cancel, to the venue");
    assert_eq!(to_venue[0]["detail"]["venue_cl_ord_id"], venue_cl.as_str());
    assert_eq!(to_venue[0]["actor"], "gateway");
    let from_venue = records
        .iter()
        .filter(|r| r["kind"] == "fix-in" && r["actor"] == "venue:XVEN" && of_order(r))
        .count();
    assert_eq!(
        from_venue, 3,
        "the New, the partial fill and the Canceled, from the venue"
    );
    assert!(
        records.iter().any(|r| r["kind"] == "fix-in"
            && r["subject"]["session"] == "FIX.4.4:CLIENT1->GW"
            && r["subject"]["cl_ord_id"] == "C1"),
        "the client's NewOrderSingle"
    );
}

#[test]
fn venue_down_refuses_new_orders_and_reconnect_reconciles_open_ones() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let gw = start(&venue_config(l.local_addr().unwrap().port()));
    let mut v = accept_gateway(&l);
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.send("D", &nos("R1", "MSFT", "2", "50", Some("300")));
    let d = v.expect("D");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("A"));
    report(&mut v, &d, "0", "0", "151=50|14=0|6=0");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));

    // The venue goes away: new orders are refused with a clear reason.
    drop(v);
    std::thread::sleep(Duration::from_millis(100));
    c.send("D", &nos("R2", "MSFT", "2", "1", Some("300")));
    let rej = c.expect("8");
    assert_eq!(field(&rej, 39).as_deref(), Some("8"));
    assert!(
        field(&rej, 58).unwrap().contains("venue is down"),
        "{}",
        show(&rej)
    );

    // It comes back; the gateway reconnects by itself and asks for the state of open orders.
    let (s, _) = l.accept().unwrap();
    let mut v = Client::from_stream(s, "FIX.4.4", "VENUE", "GW");
    v.seq = 3; // our logon and one report were 1 and 2
    let logon = v.expect("A");
    assert!(
        field(&logon, 34).unwrap().parse::<u64>().unwrap() > 1,
        "gateway's venue session continues its sequence"
    );
    v.send("A", "98=0|108=30");
    let h = v.expect("H");
    assert_eq!(field(&h, 11), field(&d, 11));
    // While we were apart the order was fully filled.
    report(&mut v, &d, "I", "2", "32=50|31=300|151=0|14=50|6=300");
    let fill = c.expect("8");
    assert_eq!(
        field(&fill, 39).as_deref(),
        Some("2"),
        "reconciled: {}",
        show(&fill)
    );
    assert_eq!(field(&fill, 14).as_deref(), Some("50"));
    c.send("D", &nos("R3", "MSFT", "2", "1", Some("300")));
    assert_eq!(
        field(&v.expect("D"), 38).as_deref(),
        Some("1"),
        "routing resumed"
    );
}
