//! Pre-trade risk (RISK-1/2/3) and the kill switch (CORE-6) through real FIX sessions and the
//! real `portcullis ctl` binary against a running gateway: every check trips with its own
//! reject (39=8, OrdRejReason(103), Text naming limit and value), credit accounting is exact
//! across new → partial fill → replace → cancel, kills cancel at the venue and block, temporary
//! raises revert, reconciliation mismatches kill, and reservations survive a restart.

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// An `[[account]]` with test defaults; `overrides` replace single keys.
fn account(name: &str, overrides: &[(&str, &str)]) -> String {
    let defaults = [
        ("max_order_qty", "1000"),
        ("max_order_notional", "50000"),
        ("collar_bps", "500"),
        ("reference_max_age_ms", "60000"),
        ("credit_limit", "1000000"),
        ("max_long", "100000"),
        ("max_short", "100000"),
        ("max_open_orders", "100"),
        ("ord_types", "[\"market\", \"limit\"]"),
        ("time_in_force", "[\"day\", \"ioc\"]"),
        ("duplicate_window_ms", "0"),
        ("max_msgs", "100000"),
        ("rate_period_ms", "60000"),
    ];
    let mut s = format!("[[account]]\nname = \"{name}\"\n");
    for (k, v) in defaults {
        let v = overrides
            .iter()
            .find(|(o, _)| *o == k)
            .map_or(v, |(_, o)| *o);
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

const SYMBOLS: &str = r#"
[[symbol]]
symbol = "AAPL"
tick_size = "0.01"
reference_price = 100
reference_source = "config"

[[symbol]]
symbol = "RESTR"
tick_size = "0.01"
reference_price = 100
reference_source = "config"
restricted = true

[[symbol]]
symbol = "NOREF"
tick_size = "0.01"

[[symbol]]
symbol = "STALE"
tick_size = "0.01"
reference_price = 50
"#;

const RISK_SESSIONS: &str = r#"
[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT1"
default_account = "R1"
# These tests trade other accounts (and unknown ones) from CLIENT1 on purpose: an explicit
# grant, since an unauthenticated session trades only its default_account otherwise.
dev_accounts = ["*"]

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT2"
default_account = "R2"
"#;

fn gateway(venues: &str, accounts: &[String]) -> Gw {
    start(&format!(
        "{RISK_SESSIONS}{venues}\n{}\n{SYMBOLS}",
        accounts.join("\n")
    ))
}

fn client(gw: &Gw, who: &str) -> Client {
    let mut c = Client::connect(gw.addr, "FIX.4.4", who, "GW");
    c.logon(30);
    c
}

/// Runs `portcullis ctl --data-dir <gw> args…`; returns the exit code and the JSON answer.
fn ctl(gw: &Gw, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("ctl")
        .arg("--data-dir")
        .arg(gw.dir.path())
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        Value::String(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    });
    (out.status.code().unwrap_or(-1), v)
}

fn show(gw: &Gw, account: &str) -> Value {
    let (code, v) = ctl(
        gw,
        &["risk", "show", "--account", account, "--symbol", "AAPL"],
    );
    assert_eq!(code, 0, "{v}");
    v
}

fn exposure(gw: &Gw, account: &str) -> (String, String, u64) {
    let v = show(gw, account);
    let e = &v["exposure"];
    (
        e["open_notional"].as_str().unwrap().to_string(),
        e["executed_notional"].as_str().unwrap().to_string(),
        e["open_orders"].as_u64().unwrap(),
    )
}

/// Sends a NewOrderSingle and returns the first ExecutionReport about it.
fn order(c: &mut Client, body: &str) -> Vec<u8> {
    c.send("D", body);
    c.expect("8")
}

fn assert_rejected(er: &[u8], code: &str, text: &str) {
    assert_eq!(field(er, 39).as_deref(), Some("8"), "{}", show_msg(er));
    assert_eq!(field(er, 150).as_deref(), Some("8"), "{}", show_msg(er));
    assert_eq!(field(er, 103).as_deref(), Some(code), "{}", show_msg(er));
    let t = field(er, 58).unwrap_or_default();
    assert!(t.contains(text), "Text {t:?} should contain {text:?}");
}

fn assert_accepted(er: &[u8]) {
    assert_eq!(field(er, 150).as_deref(), Some("0"), "{}", show_msg(er));
}

fn show_msg(m: &[u8]) -> String {
    crate::util::show(m)
}

fn events(gw: &Gw) -> String {
    // The journal thread writes within a few ms; wait for it.
    std::thread::sleep(Duration::from_millis(150));
    std::fs::read_to_string(gw.dir.path().join("events.log")).unwrap_or_default()
}

#[test]
fn every_check_trips_with_its_own_reject() {
    let gw = gateway(
        &sim("ack"),
        &[
            account("R1", &[]),
            account(
                "R2",
                &[
                    ("ord_types", "[\"limit\"]"),
                    ("duplicate_window_ms", "60000"),
                ],
            ),
            // 4 s: the first order must come within it of the gateway's start even on a loaded
            // machine (at 1 s it failed at load average 18).
            account("R3", &[("reference_max_age_ms", "4000")]),
        ],
    );
    let mut c = client(&gw, "CLIENT1");
    // A venue-sourced reference (seeded from config at start) goes stale after the account's
    // max age (no trade in STALE refreshes it).
    let fresh = order(
        &mut c,
        &format!("{}|1=R3", nos("S1", "STALE", "1", "1", Some("50"))),
    );
    assert_accepted(&fresh);
    std::thread::sleep(Duration::from_millis(4100));
    let stale = order(
        &mut c,
        &format!("{}|1=R3", nos("S2", "STALE", "1", "1", Some("50"))),
    );
    assert_rejected(&stale, "0", "reference price stale: ");
    assert_accepted(&order(&mut c, &nos("OK1", "AAPL", "1", "10", Some("100"))));
    let cases: &[(&str, String, &str, &str)] = &[
        (
            "unknown account",
            format!("{}|1=NOPE", nos("U1", "AAPL", "1", "1", Some("100"))),
            "15",
            "unknown account",
        ),
        (
            "unknown symbol",
            nos("U2", "ZZZ", "1", "1", Some("100")),
            "1",
            "unknown symbol",
        ),
        (
            "restricted",
            nos("U3", "RESTR", "1", "1", Some("100")),
            "0",
            "restricted symbol",
        ),
        (
            "ord type",
            format!("{}|1=R2", nos("U4", "AAPL", "1", "1", None)),
            "11",
            "OrdType(40) not allowed for account: 1",
        ),
        (
            "tif",
            format!("{}|59=1", nos("U5", "AAPL", "1", "1", Some("100"))),
            "11",
            "TimeInForce(59) not allowed for account: 1",
        ),
        (
            "max qty",
            nos("U6", "AAPL", "1", "1001", Some("100")),
            "3",
            "max order quantity exceeded: 1001 > 1000",
        ),
        (
            "max notional",
            nos("U7", "AAPL", "1", "600", Some("100")),
            "3",
            "max order notional exceeded: 60000.00 > 50000.00",
        ),
        (
            "collar",
            nos("U8", "AAPL", "1", "1", Some("106")),
            "0",
            "price outside collar: 106.00 not in [95.00, 105.00]",
        ),
        (
            "no reference",
            nos("U9", "NOREF", "1", "1", Some("100")),
            "0",
            "no reference price for symbol",
        ),
        (
            "market order without reference",
            nos("U10", "NOREF", "1", "1", None),
            "0",
            "no reference price for symbol",
        ),
    ];
    for (what, body, code, text) in cases {
        let er = order(&mut c, body);
        assert_eq!(
            field(&er, 39).as_deref(),
            Some("8"),
            "{what}: {}",
            show_msg(&er)
        );
        assert_rejected(&er, code, text);
    }
    // Duplicate order (same side/symbol/qty/price inside the window) and duplicate ClOrdID.
    assert_accepted(&order(
        &mut c,
        &format!("{}|1=R2", nos("D1", "AAPL", "1", "7", Some("100"))),
    ));
    let dup = order(
        &mut c,
        &format!("{}|1=R2", nos("D2", "AAPL", "1", "7", Some("100"))),
    );
    assert_rejected(&dup, "6", "duplicate order: same order accepted ");
    let dup_id = order(
        &mut c,
        &format!("{}|1=R2", nos("D1", "AAPL", "1", "8", Some("100"))),
    );
    assert_rejected(&dup_id, "6", "duplicate ClOrdID");
    // Each risk reject is an audit event with the check's text.
    let log = events(&gw);
    assert!(
        log.contains("risk-reject")
            && log.contains("max order notional exceeded: 60000.00 > 50000.00"),
        "{log}"
    );
}

#[test]
fn credit_open_orders_and_position_limits_count_working_orders() {
    let gw = gateway(
        &sim("ack"),
        &[
            account("R1", &[("credit_limit", "25000"), ("max_open_orders", "3")]),
            account("R2", &[("max_long", "150"), ("max_short", "80")]),
        ],
    );
    let mut c = client(&gw, "CLIENT1");
    assert_accepted(&order(&mut c, &nos("A1", "AAPL", "1", "100", Some("100"))));
    assert_accepted(&order(&mut c, &nos("A2", "AAPL", "2", "100", Some("100"))));
    // Buys and sells both use credit: 20000 open + 10000 > 25000.
    let er = order(&mut c, &nos("A3", "AAPL", "1", "100", Some("100")));
    assert_rejected(&er, "3", "credit limit exceeded: 30000.00 > 25000.00");
    assert_accepted(&order(&mut c, &nos("A4", "AAPL", "1", "40", Some("100"))));
    let er = order(&mut c, &nos("A5", "AAPL", "1", "1", Some("100")));
    assert_rejected(&er, "3", "max open orders exceeded: 4 > 3");
    assert_eq!(exposure(&gw, "R1"), ("24000".into(), "0".into(), 3));
    // A cancel releases at once.
    c.send("F", "11=A1C|41=A1|55=AAPL|54=1|60=20240101-00:00:00");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    assert_accepted(&order(&mut c, &nos("A6", "AAPL", "1", "1", Some("100"))));
    assert_eq!(exposure(&gw, "R1"), ("14100".into(), "0".into(), 3));

    let mut c2 = client(&gw, "CLIENT2");
    assert_accepted(&order(&mut c2, &nos("P1", "AAPL", "1", "100", Some("100"))));
    let er = order(&mut c2, &nos("P2", "AAPL", "1", "60", Some("100")));
    assert_rejected(&er, "3", "long position limit exceeded: 160 > 150");
    let er = order(&mut c2, &nos("P3", "AAPL", "2", "81", Some("100")));
    assert_rejected(&er, "3", "short position limit exceeded: 81 > 80");
    let pos = &show(&gw, "R2")["position"];
    assert_eq!(pos["open_buy"], "100");
}

#[test]
fn the_rate_limit_disables_the_account_until_enabled_by_ctl() {
    let gw = gateway(&sim("ack"), &[account("R1", &[("max_msgs", "3")])]);
    let mut c = client(&gw, "CLIENT1");
    for i in 0..3 {
        assert_accepted(&order(
            &mut c,
            &nos(&format!("M{i}"), "AAPL", "1", "1", Some("100")),
        ));
    }
    let er = order(&mut c, &nos("M3", "AAPL", "1", "1", Some("100")));
    assert_rejected(
        &er,
        "3",
        "message rate limit exceeded: more than 3 per 60000ms; account disabled",
    );
    let er = order(&mut c, &nos("M4", "AAPL", "1", "1", Some("100")));
    assert_rejected(&er, "0", "account disabled by message rate limit");
    assert_eq!(show(&gw, "R1")["disabled"], true);
    let (code, v) = ctl(
        &gw,
        &[
            "enable-account",
            "R1",
            "--by",
            "risk-officer",
            "--reason",
            "checked with desk",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["before"]["disabled"], true);
    assert_accepted(&order(&mut c, &nos("M5", "AAPL", "1", "1", Some("100"))));
    let (code, v) = ctl(
        &gw,
        &["enable-account", "NOPE", "--by", "x", "--reason", "y"],
    );
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"], "unknown account");
}

#[test]
fn credit_accounting_is_exact_across_new_partial_fill_replace_and_cancel() {
    let gw = gateway(&sim("book"), &[account("R1", &[]), account("R2", &[])]);
    let mut buyer = client(&gw, "CLIENT1");
    let mut seller = client(&gw, "CLIENT2");
    assert_accepted(&order(
        &mut buyer,
        &nos("B1", "AAPL", "1", "100", Some("100")),
    ));
    assert_eq!(exposure(&gw, "R1"), ("10000".into(), "0".into(), 1));
    // Partial fill: 40 at 100 move from open to executed.
    assert_accepted(&order(
        &mut seller,
        &nos("S1", "AAPL", "2", "40", Some("100")),
    ));
    assert_eq!(field(&seller.expect("8"), 39).as_deref(), Some("2"));
    assert_eq!(field(&buyer.expect("8"), 39).as_deref(), Some("1"));
    assert_eq!(exposure(&gw, "R1"), ("6000".into(), "4000".into(), 1));
    assert_eq!(exposure(&gw, "R2"), ("0".into(), "4000".into(), 0));
    // Replace up to 150 at 101: open = (150 − 40) × 101.
    buyer.send(
        "G",
        "11=B2|41=B1|55=AAPL|54=1|38=150|40=2|44=101|60=20240101-00:00:00",
    );
    assert_eq!(field(&buyer.expect("8"), 150).as_deref(), Some("5"));
    assert_eq!(exposure(&gw, "R1"), ("11110".into(), "4000".into(), 1));
    // A replace over the limit is refused and changes nothing.
    buyer.send(
        "G",
        "11=B3|41=B2|55=AAPL|54=1|38=600|40=2|44=101|60=20240101-00:00:00",
    );
    let rej = buyer.expect("9");
    let t = field(&rej, 58).unwrap();
    assert!(t.contains("max order notional exceeded"), "{t}");
    assert_eq!(exposure(&gw, "R1"), ("11110".into(), "4000".into(), 1));
    // Cancel: nothing open, the execution stays.
    buyer.send("F", "11=B4|41=B2|55=AAPL|54=1|60=20240101-00:00:00");
    assert_eq!(field(&buyer.expect("8"), 150).as_deref(), Some("4"));
    assert_eq!(exposure(&gw, "R1"), ("0".into(), "4000".into(), 0));
    assert_eq!(show(&gw, "R1")["position"]["net"], "40");
    assert_eq!(show(&gw, "R2")["position"]["net"], "-40");
}

#[test]
fn kill_cancels_every_open_order_in_scope_and_blocks_until_unkill() {
    let gw = gateway(&sim("ack"), &[account("R1", &[]), account("R2", &[])]);
    let mut c1 = client(&gw, "CLIENT1");
    let mut c2 = client(&gw, "CLIENT2");
    for i in 0..3 {
        assert_accepted(&order(
            &mut c1,
            &nos(&format!("K{i}"), "AAPL", "1", "1", Some("100")),
        ));
    }
    assert_accepted(&order(
        &mut c2,
        &nos("OTHER", "AAPL", "1", "1", Some("100")),
    ));
    let (code, v) = ctl(
        &gw,
        &[
            "kill",
            "--account",
            "R1",
            "--by",
            "alice",
            "--reason",
            "runaway algo",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["orders_canceled"], 3);
    assert_eq!(v["before"]["killed"], false);
    let mut canceled = Vec::new();
    for _ in 0..3 {
        let er = c1.expect("8");
        assert_eq!(field(&er, 150).as_deref(), Some("4"), "{}", show_msg(&er));
        canceled.push(field(&er, 11).unwrap());
    }
    canceled.sort();
    assert_eq!(canceled, ["K0", "K1", "K2"]);
    assert_eq!(exposure(&gw, "R1"), ("0".into(), "0".into(), 0));
    let er = order(&mut c1, &nos("K3", "AAPL", "1", "1", Some("100")));
    assert_rejected(&er, "0", "kill switch: account halted");
    assert_accepted(&order(
        &mut c2,
        &nos("OTHER2", "AAPL", "1", "1", Some("100")),
    ));
    // Cancels stay allowed under a kill.
    let (code, _) = ctl(
        &gw,
        &[
            "kill", "--symbol", "AAPL", "--by", "alice", "--reason", "halt",
        ],
    );
    assert_eq!(code, 0);
    for _ in 0..2 {
        assert_eq!(field(&c2.expect("8"), 150).as_deref(), Some("4"));
    }
    let er = order(&mut c2, &nos("OTHER3", "AAPL", "1", "1", Some("100")));
    assert_rejected(&er, "0", "kill switch: symbol halted");
    for args in [
        ["unkill", "--symbol", "AAPL"],
        ["unkill", "--account", "R1"],
    ] {
        let mut a = args.to_vec();
        a.extend(["--by", "alice", "--reason", "resolved"]);
        let (code, v) = ctl(&gw, &a);
        assert_eq!(code, 0, "{v}");
    }
    assert_accepted(&order(&mut c1, &nos("K4", "AAPL", "1", "1", Some("100"))));
    // Session (key) and global scopes.
    let (code, v) = ctl(
        &gw,
        &[
            "kill",
            "--session",
            "CLIENT1",
            "--by",
            "bob",
            "--reason",
            "key leak",
        ],
    );
    assert_eq!((code, v["orders_canceled"].as_u64()), (0, Some(1)), "{v}");
    assert_eq!(field(&c1.expect("8"), 150).as_deref(), Some("4"));
    assert_rejected(
        &order(&mut c1, &nos("K5", "AAPL", "1", "1", Some("100"))),
        "0",
        "kill switch: key halted",
    );
    let (code, _) = ctl(
        &gw,
        &["kill", "--global", "--by", "bob", "--reason", "market halt"],
    );
    assert_eq!(code, 0);
    assert_rejected(
        &order(&mut c2, &nos("G1", "AAPL", "1", "1", Some("100"))),
        "0",
        "kill switch: all trading halted",
    );
    // Bad requests name the problem.
    let (code, v) = ctl(
        &gw,
        &["kill", "--account", "NOPE", "--by", "bob", "--reason", "x"],
    );
    assert_eq!((code, v["error"].as_str()), (1, Some("unknown account")));
    let (code, v) = ctl(
        &gw,
        &[
            "kill",
            "--session",
            "NOBODY",
            "--by",
            "bob",
            "--reason",
            "x",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        v["error"].as_str().unwrap().contains("unknown session"),
        "{v}"
    );
    let (code, _) = ctl(
        &gw,
        &["kill", "--account", "R1", "--by", "", "--reason", "x"],
    );
    assert_eq!(code, 1);
    // Every action is audited: who, why, before/after; events.log has the kill lines.
    let audit = std::fs::read_to_string(gw.dir.path().join("control-audit.log")).unwrap();
    let first: Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(first["by"], "alice");
    assert_eq!(first["reason"], "runaway algo");
    assert_eq!(first["result"]["after"]["killed"], true);
    let log = events(&gw);
    assert!(
        log.contains("kill scope=account:R1 orders-canceled=3"),
        "{log}"
    );
    assert!(log.contains("unkill scope=symbol:AAPL"), "{log}");
}

#[test]
fn a_temporary_raise_reverts_by_itself_and_bad_limits_are_refused() {
    let gw = gateway(&sim("ack"), &[account("R1", &[("max_order_qty", "100")])]);
    let mut c = client(&gw, "CLIENT1");
    assert_rejected(
        &order(&mut c, &nos("T0", "AAPL", "1", "300", Some("100"))),
        "3",
        "max order quantity exceeded: 300 > 100",
    );
    let (code, v) = ctl(
        &gw,
        &[
            "limits",
            "set",
            "--account",
            "R1",
            "--max-qty",
            "500",
            "--until",
            "1s",
            "--by",
            "carol",
            "--reason",
            "block trade",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["before"]["max_order_qty"], "100");
    assert_eq!(v["after"]["max_order_qty"], "500");
    assert_eq!(
        v["after"]["credit_limit"], "1000000",
        "limits not named stay"
    );
    assert_accepted(&order(&mut c, &nos("T1", "AAPL", "1", "300", Some("100"))));
    std::thread::sleep(Duration::from_millis(1300));
    assert_rejected(
        &order(&mut c, &nos("T2", "AAPL", "1", "300", Some("100"))),
        "3",
        "max order quantity exceeded: 300 > 100",
    );
    assert!(events(&gw).contains("temporary-raise-expired"));
    // A permanent change; an invalid one is refused whole.
    let (code, v) = ctl(
        &gw,
        &[
            "limits",
            "set",
            "--account",
            "R1",
            "--max-qty",
            "400",
            "--by",
            "carol",
            "--reason",
            "new desk limit",
        ],
    );
    assert_eq!(code, 0, "{v}");
    assert_accepted(&order(&mut c, &nos("T3", "AAPL", "1", "301", Some("100"))));
    let (code, v) = ctl(
        &gw,
        &[
            "limits",
            "set",
            "--account",
            "R1",
            "--max-qty",
            "0",
            "--max-msgs",
            "5",
            "--by",
            "carol",
            "--reason",
            "typo",
        ],
    );
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_order_qty"),
        "{v}"
    );
    assert_eq!(
        show(&gw, "R1")["limits"]["max_msgs"],
        100000,
        "nothing half-applied"
    );
    let (code, v) = ctl(
        &gw,
        &[
            "limits",
            "set",
            "--account",
            "R1",
            "--max-qty",
            "1.23456",
            "--by",
            "c",
            "--reason",
            "r",
        ],
    );
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("max_order_qty"),
        "{v}"
    );
}

#[test]
fn a_venue_report_for_an_order_never_sent_kills_the_account() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let venue = format!(
        "[[venue]]\nname = \"XVEN\"\nkind = \"fix\"\naddress = \"127.0.0.1:{}\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"VENUE\"\nreconnect_ms = 200\n",
        l.local_addr().unwrap().port()
    );
    let gw = gateway(&venue, &[account("R1", &[]), account("R2", &[])]);
    let (s, _) = l.accept().unwrap();
    let mut v = Client::from_stream(s, "FIX.4.4", "VENUE", "GW");
    v.expect("A");
    v.send("A", "98=0|108=30");
    let mut c = client(&gw, "CLIENT1");
    // Wait until the venue is up: an order reaches it.
    let mut up = false;
    for i in 0..50 {
        c.send("D", &nos(&format!("W{i}"), "AAPL", "1", "1", Some("100")));
        let er = c.expect("8");
        if field(&er, 150).as_deref() == Some("A") {
            v.expect("D");
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(up, "venue never came up");
    // The venue reports a live order of R1 the gateway never sent.
    v.send(
        "8",
        "37=V9|11=FOREIGN-1|17=E9|150=0|39=0|1=R1|55=AAPL|54=1|38=500|151=500|14=0|6=0",
    );
    std::thread::sleep(Duration::from_millis(200));
    let st = show(&gw, "R1");
    assert_eq!(st["killed"], true, "{st}");
    assert_eq!(st["reconciliation"]["venue_unmatched"], 1);
    assert_eq!(st["reconciliation"]["sent_orders"], 1);
    assert_eq!(st["reconciliation"]["accepted_orders"], 1);
    // The account's open order got a cancel at the venue, new orders are refused, R2 trades.
    let f = v.expect("F");
    assert_eq!(field(&f, 55).as_deref(), Some("AAPL"));
    assert_rejected(
        &order(&mut c, &nos("X1", "AAPL", "1", "1", Some("100"))),
        "0",
        "kill switch: account halted",
    );
    assert_eq!(show(&gw, "R2")["killed"], false);
    let log = events(&gw);
    assert!(
        log.contains("ALERT reconciliation-mismatch account=\"R1\""),
        "{log}"
    );
}

#[test]
fn reservations_and_executions_survive_a_restart() {
    let venues = "[[venue]]\nname = \"ACK\"\nkind = \"sim\"\nbehaviour = \"ack\"\n\n[[venue]]\nname = \"FILL\"\nkind = \"sim\"\nbehaviour = \"fill\"\n";
    let cfg = format!("{RISK_SESSIONS}{venues}\n{}\n{SYMBOLS}", account("R1", &[]));
    let gw = start(&cfg);
    let mut c = client(&gw, "CLIENT1");
    assert_accepted(&order(&mut c, &nos("R1", "AAPL", "1", "100", Some("100"))));
    assert_accepted(&order(&mut c, &nos("R2", "AAPL", "2", "50", Some("101"))));
    assert_accepted(&order(
        &mut c,
        &format!("{}|100=FILL", nos("R3", "AAPL", "1", "10", Some("99"))),
    ));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("2"));
    let before = exposure(&gw, "R1");
    assert_eq!(before, ("15050".into(), "990".into(), 2));
    let next_seq = c.seq;
    drop(c);
    let Gw { running, dir, .. } = gw;
    running.stop();
    let gw = start_in(dir, &cfg);
    assert_eq!(exposure(&gw, "R1"), before);
    assert_eq!(show(&gw, "R1")["position"]["net"], "10");
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.seq = next_seq;
    c.logon(30);
    c.send("F", "11=R1C|41=R1|55=AAPL|54=1|60=20240101-00:00:00");
    loop {
        let er = c.expect("8");
        if field(&er, 150).as_deref() == Some("4") {
            break;
        }
    }
    assert_eq!(exposure(&gw, "R1"), ("5050".into(), "990".into(), 1));
}

#[test]
fn venue_trades_move_the_reference_price_and_a_quiet_symbol_goes_stale() {
    let gw = gateway(
        &sim("book"),
        &[
            account("R1", &[("reference_max_age_ms", "1500")]),
            account("R2", &[("reference_max_age_ms", "1500")]),
        ],
    );
    let mut c1 = client(&gw, "CLIENT1");
    let mut c2 = client(&gw, "CLIENT2");
    // Collar ±5 % around the configured starting reference 50: 54.5 is outside.
    assert_rejected(
        &order(&mut c1, &nos("F0", "STALE", "1", "1", Some("54.5"))),
        "0",
        "price outside collar: 54.50 not in [47.50, 52.50]",
    );
    assert_accepted(&order(&mut c1, &nos("F1", "STALE", "1", "1", Some("52"))));
    assert_accepted(&order(&mut c2, &nos("F2", "STALE", "2", "1", Some("52"))));
    assert_eq!(field(&c2.expect("8"), 39).as_deref(), Some("2"));
    assert_eq!(field(&c1.expect("8"), 39).as_deref(), Some("2"));
    // The trade at 52 is the reference now: 54.5 is inside ±5 %.
    assert_accepted(&order(&mut c1, &nos("F3", "STALE", "1", "1", Some("54.5"))));
    // No trade since: the reference ages out and orders needing it are refused.
    std::thread::sleep(Duration::from_millis(1600));
    assert_rejected(
        &order(&mut c1, &nos("F4", "STALE", "1", "1", Some("52"))),
        "0",
        "reference price stale: ",
    );
}

#[test]
fn a_drop_copy_session_gets_every_report_of_its_accounts_and_cannot_trade() {
    let dc = "[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"DROP\"\ndrop_copy_accounts = [\"R1\"]\n";
    let gw = start(&format!(
        "{RISK_SESSIONS}{dc}{}\n{}\n{}\n{SYMBOLS}",
        sim("fill"),
        account("R1", &[]),
        account("R2", &[])
    ));
    let mut d = client(&gw, "DROP");
    let mut c1 = client(&gw, "CLIENT1");
    let mut c2 = client(&gw, "CLIENT2");
    assert_accepted(&order(&mut c1, &nos("DC1", "AAPL", "1", "5", Some("100"))));
    c1.expect("8");
    assert_accepted(&order(&mut c2, &nos("DC2", "AAPL", "1", "5", Some("100"))));
    c2.expect("8");
    assert_rejected(
        &order(&mut c1, &nos("DC3", "AAPL", "1", "5000", Some("100"))),
        "3",
        "max order quantity exceeded",
    );
    let copies: Vec<(String, String)> = (0..3)
        .map(|_| {
            let m = d.expect("8");
            assert_eq!(field(&m, 1).as_deref(), Some("R1"), "{}", show_msg(&m));
            (field(&m, 11).unwrap(), field(&m, 39).unwrap())
        })
        .collect();
    assert_eq!(
        copies,
        [
            ("DC1".to_string(), "0".to_string()),
            ("DC1".into(), "2".into()),
            ("DC3".into(), "8".into())
        ]
    );
    // Nothing of R2's.
    while let Some(m) = d.recv_timeout(Duration::from_millis(300)) {
        assert_ne!(field(&m, 35).as_deref(), Some("8"), "{}", show_msg(&m));
    }
    // Read-only: an order is refused with a BusinessMessageReject.
    d.send("D", &nos("NO", "AAPL", "1", "1", Some("100")));
    let j = d.expect("j");
    assert_eq!(field(&j, 380).as_deref(), Some("4"));
    assert_eq!(
        field(&j, 58).as_deref(),
        Some("drop copy session is read-only")
    );
    // Copies made while the drop copy is away are stored and resent.
    let next = d.seq;
    drop(d);
    std::thread::sleep(Duration::from_millis(200));
    assert_accepted(&order(&mut c1, &nos("DC4", "AAPL", "1", "5", Some("100"))));
    let mut d = Client::connect(gw.addr, "FIX.4.4", "DROP", "GW");
    d.seq = next;
    d.logon(30);
    d.send("2", "7=1|16=0");
    let mut resent = false;
    while let Some(m) = d.recv_timeout(Duration::from_secs(2)) {
        if field(&m, 35).as_deref() == Some("8") && field(&m, 11).as_deref() == Some("DC4") {
            assert_eq!(field(&m, 43).as_deref(), Some("Y"));
            resent = true;
            break;
        }
    }
    assert!(resent, "the copy of DC4 was not resent");
}

#[test]
fn kill_switches_and_rate_trips_survive_a_restart() {
    let cfg = format!(
        "{RISK_SESSIONS}{}\n{}\n{}\n{SYMBOLS}",
        sim("ack"),
        account("R1", &[]),
        account("R2", &[("max_msgs", "1")])
    );
    let gw = start(&cfg);
    let mut c2 = client(&gw, "CLIENT2");
    assert_accepted(&order(&mut c2, &nos("Q1", "AAPL", "1", "1", Some("100"))));
    assert_rejected(
        &order(&mut c2, &nos("Q2", "AAPL", "1", "1", Some("100"))),
        "3",
        "message rate limit exceeded",
    );
    for (args, line) in [
        (["kill", "--account", "R1"], "account R1"),
        (["kill", "--symbol", "STALE"], "symbol STALE"),
        (
            ["kill", "--session", "CLIENT1"],
            "session FIX.4.4-GW-CLIENT1",
        ),
    ] {
        let mut a = args.to_vec();
        a.extend(["--by", "alice", "--reason", "incident 7"]);
        let (code, v) = ctl(&gw, &a);
        assert_eq!(code, 0, "{v}");
        // The answer comes only once the switch is on disk: a crash right after it keeps it.
        assert_eq!(v["persisted"], true, "{v}");
        let state = std::fs::read_to_string(gw.dir.path().join("risk-switches.state")).unwrap();
        assert!(state.lines().any(|l| l == line), "{line} in {state}");
    }
    let s1 = c2.seq;
    drop(c2);
    let Gw { running, dir, .. } = gw;
    running.stop();
    let gw = start_in(dir, &cfg);
    let st = show(&gw, "R1");
    assert_eq!(st["killed"], true, "{st}");
    assert_eq!(show(&gw, "R2")["disabled"], true);
    let log = std::fs::read_to_string(gw.dir.path().join("risk-switches.state")).unwrap();
    assert!(
        log.contains("symbol STALE") && log.contains("session FIX.4.4-GW-CLIENT1"),
        "{log}"
    );
    let mut c2 = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c2.seq = s1;
    c2.logon(30);
    assert_rejected(
        &order(&mut c2, &nos("Q3", "AAPL", "1", "1", Some("100"))),
        "0",
        "account disabled by message rate limit",
    );
    let (code, v) = ctl(
        &gw,
        &[
            "unkill",
            "--session",
            "CLIENT1",
            "--by",
            "alice",
            "--reason",
            "done",
        ],
    );
    assert_eq!(
        (code, v["before"]["killed"].as_bool()),
        (0, Some(true)),
        "{v}"
    );
    let (code, v) = ctl(
        &gw,
        &[
            "unkill",
            "--session",
            "CLIENT1",
            "--by",
            "alice",
            "--reason",
            "again",
        ],
    );
    assert_eq!(
        (code, v["before"]["killed"].as_bool()),
        (0, Some(false)),
        "{v}"
    );
}

#[test]
fn per_key_caps_apply_besides_the_account_limits() {
    let sessions = RISK_SESSIONS.replace(
        "default_account = \"R2\"",
        "default_account = \"R2\"\nkey_max_order_qty = 50\nkey_max_order_notional = \"2000\"",
    );
    let gw = start(&format!(
        "{sessions}{}\n{}\n{}\n{SYMBOLS}",
        sim("ack"),
        account("R1", &[]),
        account("R2", &[])
    ));
    let mut c2 = client(&gw, "CLIENT2");
    assert_rejected(
        &order(&mut c2, &nos("K1", "AAPL", "1", "60", Some("100"))),
        "3",
        "key max order quantity exceeded: 60 > 50",
    );
    assert_rejected(
        &order(&mut c2, &nos("K2", "AAPL", "1", "30", Some("100"))),
        "3",
        "key max order notional exceeded: 3000.00 > 2000.00",
    );
    assert_accepted(&order(&mut c2, &nos("K3", "AAPL", "1", "20", Some("100"))));
    // The same account through another key is held only to the account's limits.
    let mut c1 = client(&gw, "CLIENT1");
    assert_accepted(&order(
        &mut c1,
        &format!("{}|1=R2", nos("K4", "AAPL", "1", "60", Some("100"))),
    ));
}

#[test]
fn the_control_socket_answers_bad_requests_and_ctl_names_its_problems() {
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::fs::PermissionsExt;
    let gw = gateway(&sim("ack"), &[account("R1", &[]), account("R2", &[])]);
    let sock = gw.dir.path().join("control.sock");
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "only the gateway's user may steer it");
    let s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let mut ask = |line: &str| -> Value {
        writeln!(w, "{line}").unwrap();
        let mut a = String::new();
        r.read_line(&mut a).unwrap();
        serde_json::from_str(&a).unwrap()
    };
    for (req, problem) in [
        ("not json", "bad request"),
        (r#"{"op":"launch"}"#, "bad request"),
        (
            r#"{"op":"risk-show","account":"R1","bogus":1}"#,
            "bad request",
        ),
        (
            r#"{"op":"kill","scope":"planet","name":"x","by":"a","reason":"b"}"#,
            "scope \"planet\"",
        ),
        (
            r#"{"op":"kill","scope":"account","by":"a","reason":"b"}"#,
            "needs a account name",
        ),
        (
            r#"{"op":"kill","scope":"global","by":"a","reason":" "}"#,
            "`reason` (why) is required",
        ),
        (
            r#"{"op":"limits-set","account":"R1","limits":{},"by":"a","reason":"b"}"#,
            "no limit to change",
        ),
        (
            r#"{"op":"limits-set","account":"R1","limits":{"max_msgs":5},"for_ms":0,"by":"a","reason":"b"}"#,
            "for_ms must be > 0",
        ),
        (r#"{"op":"risk-show","account":"NOPE"}"#, "unknown account"),
    ] {
        let v = ask(req);
        assert_eq!(v["ok"], false, "{req}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(problem), "{req}: {e}");
    }
    // The same connection keeps working.
    assert_eq!(ask(r#"{"op":"risk-show","account":"R1"}"#)["ok"], true);
    // The CLI: an unreachable gateway and a missing flag are exit code 2 with a reason.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args([
            "ctl",
            "--data-dir",
            "/nonexistent-portcullis",
            "risk",
            "show",
            "--account",
            "R1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the gateway"));
    let (code, v) = ctl(&gw, &["kill", "--account", "R1", "--reason", "no who"]);
    assert_eq!(code, 2, "{v}");
    assert!(v.to_string().contains("--by"), "{v}");
    let (code, v) = ctl(
        &gw,
        &[
            "limits",
            "set",
            "--account",
            "R1",
            "--max-qty",
            "5",
            "--until",
            "5 weeks",
            "--by",
            "a",
            "--reason",
            "b",
        ],
    );
    assert_eq!(code, 2, "{v}");
}

#[test]
fn a_replace_the_venue_refuses_gives_the_reservation_back() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let venue = format!(
        "[[venue]]\nname = \"XVEN\"\nkind = \"fix\"\naddress = \"127.0.0.1:{}\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"VENUE\"\nreconnect_ms = 200\n",
        l.local_addr().unwrap().port()
    );
    let gw = gateway(&venue, &[account("R1", &[]), account("R2", &[])]);
    let (s, _) = l.accept().unwrap();
    let mut v = Client::from_stream(s, "FIX.4.4", "VENUE", "GW");
    v.expect("A");
    v.send("A", "98=0|108=30");
    let mut c = client(&gw, "CLIENT1");
    let mut d = None;
    for i in 0..50 {
        c.send("D", &nos(&format!("V{i}"), "AAPL", "1", "10", Some("100")));
        if field(&c.expect("8"), 150).as_deref() == Some("A") {
            d = Some((format!("V{i}"), v.expect("D")));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let (cl, d) = d.expect("venue never came up");
    let vcl = field(&d, 11).unwrap();
    v.send(
        "8",
        &format!("37=V1|11={vcl}|17=E1|150=0|39=0|55=AAPL|54=1|38=10|151=10|14=0|6=0"),
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(exposure(&gw, "R1"), ("1000".into(), "0".into(), 1));
    // The increase is reserved as soon as the gateway accepts the replace.
    c.send(
        "G",
        &format!("11=VR|41={cl}|55=AAPL|54=1|38=20|40=2|44=101|60=20240101-00:00:00"),
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("E"));
    let g = v.expect("G");
    assert_eq!(exposure(&gw, "R1"), ("2020".into(), "0".into(), 1));
    v.send(
        "9",
        &format!(
            "37=V1|11={}|41={}|39=0|434=2|102=0|58=too late",
            field(&g, 11).unwrap(),
            field(&g, 41).unwrap()
        ),
    );
    assert_eq!(field(&c.expect("9"), 434).as_deref(), Some("2"));
    assert_eq!(exposure(&gw, "R1"), ("1000".into(), "0".into(), 1));
}

#[test]
fn ctl_sessions_and_venues_list_what_the_gateway_thread_sees() {
    let gw = gateway(&sim("ack"), &[account("R1", &[]), account("R2", &[])]);
    let mut c = client(&gw, "CLIENT2");
    c.send("D", &nos("V1", "AAPL", "1", "1", Some("100")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    let (code, v) = ctl(&gw, &["sessions"]);
    assert_eq!(code, 0, "{v}");
    let sessions = v.as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(sessions.len(), 2, "{v}");
    assert_eq!(sessions[0]["logged_on"], false, "{v}");
    assert_eq!(sessions[1]["sender_comp_id"], "CLIENT2", "{v}");
    assert_eq!(sessions[1]["logged_on"], true, "{v}");
    assert_eq!(
        sessions[1]["next_target_seq"], 3,
        "logon and one order: {v}"
    );
    let (code, v) = ctl(&gw, &["venues"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v[0]["name"], "SIM", "{v}");
    assert_eq!(v[0]["up"], true, "{v}");
    assert_eq!(v[0]["open_orders"], 1, "the acknowledged order: {v}");
    c.logout();
}
