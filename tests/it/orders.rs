//! Order flow through a real FIX session: new, fill, cancel, replace, status, mass cancel,
//! ownership, book matching, cancel-on-disconnect, FIX 4.2.

use std::time::Duration;

use crate::util::*;

fn logged_on(gw: &Gw, who: &str) -> Client {
    let mut c = Client::connect(gw.addr, "FIX.4.4", who, "GW");
    c.logon(30);
    c
}

#[test]
fn order_is_acknowledged_then_filled() {
    let gw = start(&format!("{SESSIONS}{}", sim("fill")));
    let mut c = logged_on(&gw, "CLIENT1");
    c.send("D", &nos("O-1", "AAPL", "1", "100", Some("10.5")));
    let new = c.expect("8");
    assert_eq!(field(&new, 150).as_deref(), Some("0"), "{}", show(&new));
    assert_eq!(field(&new, 39).as_deref(), Some("0"));
    assert_eq!(field(&new, 11).as_deref(), Some("O-1"));
    assert_eq!(
        field(&new, 1).as_deref(),
        Some("ACC1"),
        "default account applies"
    );
    let fill = c.expect("8");
    assert_eq!(field(&fill, 150).as_deref(), Some("F"), "{}", show(&fill));
    assert_eq!(field(&fill, 39).as_deref(), Some("2"));
    assert_eq!(field(&fill, 14).as_deref(), Some("100"));
    assert_eq!(field(&fill, 151).as_deref(), Some("0"));
    assert_eq!(field(&fill, 32).as_deref(), Some("100"));
    assert_eq!(field(&fill, 31).as_deref(), Some("10.5"));
    assert_eq!(field(&fill, 6).as_deref(), Some("10.5"));
    assert_eq!(
        field(&new, 37),
        field(&fill, 37),
        "one OrderID for the order"
    );
    assert_ne!(field(&new, 17), field(&fill, 17), "distinct ExecIDs");
    c.logout();
}

#[test]
fn cancel_and_replace_follow_the_clordid_chain() {
    let gw = start(&format!("{SESSIONS}{}", sim("ack")));
    let mut c = logged_on(&gw, "CLIENT1");
    c.send("D", &nos("A", "MSFT", "2", "50", Some("300")));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("0"));
    c.send(
        "G",
        "11=B|41=A|55=MSFT|54=2|38=80|40=2|44=301.25|60=20240101-00:00:00",
    );
    let rep = c.expect("8");
    assert_eq!(field(&rep, 150).as_deref(), Some("5"), "{}", show(&rep));
    assert_eq!(field(&rep, 11).as_deref(), Some("B"));
    assert_eq!(field(&rep, 41).as_deref(), Some("A"));
    assert_eq!(field(&rep, 38).as_deref(), Some("80"));
    assert_eq!(field(&rep, 44).as_deref(), Some("301.25"));
    assert_eq!(field(&rep, 151).as_deref(), Some("80"));
    c.send("H", "11=B|55=MSFT|54=2");
    let st = c.expect("8");
    assert_eq!(field(&st, 150).as_deref(), Some("I"));
    assert_eq!(field(&st, 39).as_deref(), Some("0"));
    c.send("F", "11=C|41=B|55=MSFT|54=2|60=20240101-00:00:00");
    let can = c.expect("8");
    assert_eq!(field(&can, 150).as_deref(), Some("4"), "{}", show(&can));
    assert_eq!(field(&can, 39).as_deref(), Some("4"));
    assert_eq!(field(&can, 11).as_deref(), Some("C"));
    assert_eq!(field(&can, 41).as_deref(), Some("B"));
    assert_eq!(field(&can, 151).as_deref(), Some("0"));
    // The order is finished: a second cancel is too late.
    c.send("F", "11=D|41=C|55=MSFT|54=2|60=20240101-00:00:00");
    let rej = c.expect("9");
    assert_eq!(field(&rej, 434).as_deref(), Some("1"));
    assert_eq!(field(&rej, 102).as_deref(), Some("0"), "{}", show(&rej));
}

#[test]
fn refusals_name_the_problem() {
    let gw = start(&format!("{SESSIONS}{}", sim("ack")));
    let mut c = logged_on(&gw, "CLIENT1");
    c.send("D", &nos("X1", "AAPL", "1", "10", Some("1")));
    c.expect("8");
    c.send("D", &nos("X1", "AAPL", "1", "10", Some("1")));
    let dup = c.expect("8");
    assert_eq!(field(&dup, 39).as_deref(), Some("8"));
    assert_eq!(field(&dup, 103).as_deref(), Some("6"), "{}", show(&dup));
    assert!(field(&dup, 58).unwrap().contains("duplicate"));
    c.send("D", "11=X2|55=AAPL|54=1|38=10|40=2|60=20240101-00:00:00");
    let noprice = c.expect_any(&["8", "3", "j"]);
    assert!(
        show(&noprice).contains("44"),
        "limit without price is refused naming Price(44): {}",
        show(&noprice)
    );
    c.send(
        "D",
        &format!("{}|100=NOWHERE", nos("X3", "AAPL", "1", "10", Some("1"))),
    );
    let dest = c.expect("8");
    assert_eq!(field(&dest, 39).as_deref(), Some("8"));
    assert_ne!(
        field(&dest, 17),
        field(&dup, 17),
        "refusals have distinct ExecIDs"
    );
    assert!(field(&dest, 58).unwrap().contains("ExDestination"));
    c.send("D", "11=X5|55=AAPL|54=1|40=2|44=1|60=20240101-00:00:00");
    let noqty = c.expect("8");
    assert_eq!(field(&noqty, 39).as_deref(), Some("8"));
    assert!(
        field(&noqty, 58).unwrap().contains("38"),
        "{}",
        show(&noqty)
    );
    c.send("F", "11=X4|41=NOPE|55=AAPL|54=1|60=20240101-00:00:00");
    let unk = c.expect("9");
    assert_eq!(field(&unk, 102).as_deref(), Some("1"));
}

#[test]
fn a_client_cannot_touch_another_clients_order() {
    let gw = start(&format!("{SESSIONS}{}", sim("ack")));
    let mut a = logged_on(&gw, "CLIENT1");
    let mut b = logged_on(&gw, "CLIENT2");
    a.send("D", &nos("MINE", "AAPL", "1", "10", Some("1")));
    a.expect("8");
    b.send("F", "11=THEIRS|41=MINE|55=AAPL|54=1|60=20240101-00:00:00");
    let rej = b.expect("9");
    assert_eq!(
        field(&rej, 102).as_deref(),
        Some("1"),
        "unknown to CLIENT2: {}",
        show(&rej)
    );
    a.send("H", "11=MINE|55=AAPL|54=1");
    assert_eq!(
        field(&a.expect("8"), 39).as_deref(),
        Some("0"),
        "still open"
    );
}

#[test]
fn crossing_orders_of_two_clients_match_in_the_book() {
    let gw = start(&format!("{SESSIONS}{}", sim("book")));
    let mut a = logged_on(&gw, "CLIENT1");
    let mut b = logged_on(&gw, "CLIENT2");
    a.send("D", &nos("BUY", "VOD", "1", "100", Some("10")));
    assert_eq!(field(&a.expect("8"), 150).as_deref(), Some("0"));
    b.send("D", &nos("SELL", "VOD", "2", "60", Some("9.5")));
    assert_eq!(field(&b.expect("8"), 150).as_deref(), Some("0"));
    let bf = b.expect("8");
    assert_eq!(field(&bf, 39).as_deref(), Some("2"), "{}", show(&bf));
    assert_eq!(
        field(&bf, 31).as_deref(),
        Some("10"),
        "trades at the resting price"
    );
    let af = a.expect("8");
    assert_eq!(field(&af, 39).as_deref(), Some("1"));
    assert_eq!(field(&af, 14).as_deref(), Some("60"));
    assert_eq!(field(&af, 151).as_deref(), Some("40"));
}

#[test]
fn mass_cancel_cancels_every_open_order_of_the_session() {
    let gw = start(&format!("{SESSIONS}{}", sim("ack")));
    let mut c = logged_on(&gw, "CLIENT1");
    for i in 0..3 {
        c.send(
            "D",
            &nos(
                &format!("M{i}"),
                if i == 2 { "IBM" } else { "AAPL" },
                "1",
                "10",
                Some("1"),
            ),
        );
        c.expect("8");
    }
    c.send("q", "11=MC1|530=1|55=AAPL|60=20240101-00:00:00");
    let rep = c.expect("r");
    assert_eq!(field(&rep, 531).as_deref(), Some("1"));
    assert_eq!(field(&rep, 533).as_deref(), Some("2"));
    for _ in 0..2 {
        assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    }
    c.send("q", "11=MC2|530=7|60=20240101-00:00:00");
    assert_eq!(field(&c.expect("r"), 533).as_deref(), Some("1"));
    assert_eq!(field(&c.expect("8"), 11).as_deref(), Some("M2"));
}

#[test]
fn disconnect_cancels_open_orders_and_the_reports_are_resent_on_request() {
    let gw = start(&format!("{SESSIONS}{}", sim("ack")));
    let mut c = logged_on(&gw, "CLIENT2");
    c.send("D", &nos("COD", "AAPL", "1", "10", Some("1")));
    c.expect("8");
    let next_seq = c.seq;
    drop(c);
    std::thread::sleep(Duration::from_millis(300));
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c.seq = next_seq;
    c.send("A", "98=0|108=30");
    let logon = c.expect("A");
    assert_eq!(
        field(&logon, 34).as_deref(),
        Some("4"),
        "logon after the stored cancel report: {}",
        show(&logon)
    );
    c.send("2", "7=3|16=0");
    let resent = c.expect("8");
    assert_eq!(
        field(&resent, 43).as_deref(),
        Some("Y"),
        "{}",
        show(&resent)
    );
    assert_eq!(
        field(&resent, 150).as_deref(),
        Some("4"),
        "{}",
        show(&resent)
    );
    assert_eq!(field(&resent, 11).as_deref(), Some("COD"));
}

#[test]
fn fix42_session_gets_fix42_execution_reports() {
    let gw = start(&format!("{SESSIONS}{}", sim("fill")));
    let mut c = Client::connect(gw.addr, "FIX.4.2", "CLIENT42", "GW");
    c.logon(30);
    c.send(
        "D",
        "11=Z|21=1|55=IBM|54=1|38=5|40=2|44=100|60=20240101-00:00:00",
    );
    let new = c.expect("8");
    assert!(show(&new).starts_with("8=FIX.4.2|"));
    assert_eq!(field(&new, 20).as_deref(), Some("0"));
    assert_eq!(field(&new, 150).as_deref(), Some("0"));
    let fill = c.expect("8");
    assert_eq!(
        field(&fill, 150).as_deref(),
        Some("2"),
        "FIX 4.2 ExecType Fill: {}",
        show(&fill)
    );
    assert_eq!(field(&fill, 39).as_deref(), Some("2"));
    c.logout();
}

#[test]
fn silent_client_is_tested_then_disconnected_and_its_orders_cancelled() {
    let gw = start(&format!("{SESSIONS}{}", sim("ack")));
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c.logon(1);
    c.send("D", &nos("HB1", "AAPL", "1", "10", Some("1")));
    c.expect("8");
    // Say nothing more: after ~1.2 s a TestRequest, after ~2.4 s the gateway gives up.
    let tr = c.expect_any(&["1"]);
    assert!(field(&tr, 112).is_some());
    assert!(
        c.closed_within(Duration::from_secs(5)),
        "silent session disconnected"
    );
    let next = c.seq;
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c.seq = next;
    c.send("A", "98=0|108=30");
    c.expect("A");
    c.send("H", "11=HB1|55=AAPL|54=1");
    let st = loop {
        let m = c.expect_any(&["8", "2"]);
        if field(&m, 35).as_deref() == Some("2") {
            continue;
        }
        if field(&m, 150).as_deref() == Some("I") {
            break m;
        }
    };
    assert_eq!(
        field(&st, 39).as_deref(),
        Some("4"),
        "cancelled on heartbeat loss: {}",
        show(&st)
    );
}
