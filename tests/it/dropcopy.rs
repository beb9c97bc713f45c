//! Drop copy under `[auth]` (RISK-3, AUTH-6): a drop-copy session gets copies only while its
//! signed-on key has `orders:read`, only for the accounts the key allows (intersected with
//! `drop_copy_accounts`); a drop-copy logon whose key cannot read any of them is refused with
//! the generic Logout and an audit cause; a key change applies to the live session. Real
//! sockets, real signed logons, keys managed through the real `portcullis keys` CLI.

use std::time::Duration;

use crate::util::*;

const DROP: &str = "[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"DROP\"\ndrop_copy_accounts = [\"ACC1\", \"ACC2\"]\n";

/// Sessions CLIENT1 (ACC1), CLIENT2 (ACC2) and the drop copy DROP (ACC1, ACC2), `[auth]`
/// required, the simulated venue filling every order.
fn env() -> KeyEnv {
    KeyEnv::new(&format!("{SESSIONS}{DROP}{}", sim("fill")), "")
}

fn signed(gw: &Gw, who: &str, key: &str, secret: &[u8]) -> Client {
    let mut c = Client::connect(gw.addr, "FIX.4.4", who, "GW");
    c.signed_logon(key, secret);
    c
}

/// An order that the simulated venue fills: its ack, then its fill.
fn trade(c: &mut Client, cl: &str) {
    c.send("D", &nos(cl, "AAPL", "1", "10", Some("10")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("2"));
}

/// The ClOrdIDs of the ExecutionReports `d` receives until it is quiet for `quiet`.
fn copies(d: &mut Client, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = d.recv_timeout(quiet) {
        if field(&m, 35).as_deref() == Some("8") {
            out.push(field(&m, 11).unwrap_or_default());
        }
    }
    out
}

#[test]
fn a_drop_copy_key_gets_copies_only_for_its_readable_accounts_and_loses_them_live() {
    let mut env = env();
    let t1 = env.add("t1", "CLIENT1", &["--role", "trader"]);
    let t2 = env.add("t2", "CLIENT2", &["--role", "trader"]);
    // orders:read restricted to ACC1: of DROP's ACC1 and ACC2 it may read ACC1 only.
    let dc = env.add(
        "dc",
        "DROP",
        &["--scope", "orders:read", "--account", "ACC1"],
    );
    let gw = env.start();
    let mut d = signed(&gw, "DROP", "dc", &dc);
    let mut c1 = signed(&gw, "CLIENT1", "t1", &t1);
    let mut c2 = signed(&gw, "CLIENT2", "t2", &t2);
    trade(&mut c1, "A1");
    trade(&mut c2, "B1");
    trade(&mut c1, "A2");
    assert_eq!(
        copies(&mut d, Duration::from_millis(500)),
        ["A1", "A1", "A2", "A2"],
        "ack and fill of each ACC1 order, nothing of ACC2"
    );

    // Widen the key to any account: ACC2's copies flow too, on the live session.
    env.keys(&["set", "dc", "--any-account"]);
    std::thread::sleep(Duration::from_millis(500));
    trade(&mut c2, "B2");
    assert_eq!(copies(&mut d, Duration::from_millis(500)), ["B2", "B2"]);

    // Remove orders:read: the drop copy is logged out at once and gets nothing more.
    env.keys(&["set", "dc", "--scope", "orders:cancel"]);
    let m = d.expect("5");
    assert_eq!(
        field(&m, 58).as_deref(),
        Some("credential no longer permits drop copy")
    );
    wait_event(gw.dir.path(), "credential no longer permits drop copy");
    let next = d.seq;
    drop(d);
    trade(&mut c1, "A3");
    // It cannot come back with that key, and no copy of A3 was kept for a resend.
    let mut again = Client::connect(gw.addr, "FIX.4.4", "DROP", "GW");
    again.seq = next;
    let m = again.signed_logon_bytes("dc", &dc, now_utc());
    again.send_raw(&m);
    crate::perimeter_logon::assert_closed_silently(&mut again);
    wait_event(
        gw.dir.path(),
        "cause=\"drop copy needs the orders:read scope\"",
    );

    // Give orders:read back: a new logon asking for a resend of everything gets no copy made
    // while the key could not read (A3), only what follows.
    env.keys(&["set", "dc", "--scope", "orders:read"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut d = Client::connect(gw.addr, "FIX.4.4", "DROP", "GW");
    d.seq = next;
    d.signed_logon("dc", &dc);
    d.send("2", "7=1|16=0");
    trade(&mut c1, "A4");
    let got = copies(&mut d, Duration::from_millis(800));
    assert!(!got.iter().any(|c| c == "A3"), "{got:?}");
    assert!(got.iter().filter(|c| *c == "A4").count() == 2, "{got:?}");
}

#[test]
fn a_drop_copy_logon_whose_key_cannot_read_its_accounts_is_refused() {
    let mut env = env();
    let t1 = env.add("t1", "CLIENT1", &["--role", "trader"]);
    let no_read = env.add(
        "noread",
        "DROP",
        &["--scope", "orders:new", "--scope", "orders:cancel"],
    );
    let elsewhere = env.add(
        "elsewhere",
        "DROP",
        &["--scope", "orders:read", "--account", "ACC42"],
    );
    let gw = env.start();
    let mut c1 = signed(&gw, "CLIENT1", "t1", &t1);
    for (key, secret, cause) in [
        ("noread", &no_read, "drop copy needs the orders:read scope"),
        (
            "elsewhere",
            &elsewhere,
            "drop copy: the key allows none of the session's accounts",
        ),
    ] {
        let mut d = Client::connect(gw.addr, "FIX.4.4", "DROP", "GW");
        let m = d.signed_logon_bytes(key, secret, now_utc());
        d.send_raw(&m);
        crate::perimeter_logon::assert_closed_silently(&mut d);
        wait_event(gw.dir.path(), &format!("cause=\"{cause}\""));
    }
    // The trading session is unaffected; a viewer key granted the account (orders:read; a
    // key without an account grant has only its session's default_account, which a drop copy
    // has not) gets copies.
    let viewer = env.add("viewer", "DROP", &["--role", "viewer", "--account", "ACC1"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut d = signed(&gw, "DROP", "viewer", &viewer);
    trade(&mut c1, "V1");
    assert_eq!(copies(&mut d, Duration::from_millis(500)), ["V1", "V1"]);
}

/// The attack: CLIENT2's key, which may not use ACC1, sends orders naming ACC1. Each is refused
/// to the attacker, and ACC1's drop copy sees none of them (the orders were never ACC1's),
/// while it still gets ACC1's real orders.
#[test]
fn orders_refused_for_an_account_the_key_lacks_never_reach_that_accounts_drop_copy() {
    let mut env = env();
    let t1 = env.add("t1", "CLIENT1", &["--role", "trader"]);
    let t2 = env.add("t2", "CLIENT2", &["--role", "trader"]);
    let dc = env.add(
        "dc",
        "DROP",
        &["--scope", "orders:read", "--account", "ACC1"],
    );
    let gw = env.start();
    let mut d = signed(&gw, "DROP", "dc", &dc);
    let mut c1 = signed(&gw, "CLIENT1", "t1", &t1);
    let mut c2 = signed(&gw, "CLIENT2", "t2", &t2);
    for i in 0..5 {
        let cl = format!("EVIL{i}");
        c2.send(
            "D",
            &format!("1=ACC1|{}", nos(&cl, "AAPL", "1", "10", Some("10"))),
        );
        let m = c2.expect("8");
        assert_eq!(field(&m, 39).as_deref(), Some("8"), "{}", show(&m));
        assert_eq!(field(&m, 58).as_deref(), Some("not permitted: account"));
    }
    trade(&mut c1, "A1");
    assert_eq!(
        copies(&mut d, Duration::from_millis(500)),
        ["A1", "A1"],
        "only ACC1's own order, none of the refused foreign ones"
    );
}
