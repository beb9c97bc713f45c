//! Issue 13, least privilege for accounts and two session-layer behaviours, as an attacker and
//! as a client would meet them through real sockets, the real `portcullis keys`, `ctl` and
//! `run`: a key trades only the accounts it is granted (its session's default_account without
//! a grant, every account only with an explicit `'*'`), cancels/replaces/status requests are
//! checked against the order's account, narrowing a key applies to its live session, a
//! PossResend duplicate gets no second report, and replies swap the routing fields back.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use portcullis::monitor::Counter;
use serde_json::Value;

use crate::util::*;

/// Sessions CLIENT1 (ACC1), CLIENT2 (ACC2), CLIENT42 (ACC42), `[auth]` required, the
/// acknowledging venue; `risk` replaces the permissive `[[account]]`s when given.
fn env(risk: Option<String>) -> KeyEnv {
    KeyEnv::new(
        &format!("{SESSIONS}{}", sim("ack")),
        &risk.unwrap_or_default(),
    )
}

fn signed(addr: std::net::SocketAddr, who: &str, target: &str, key: &str, secret: &[u8]) -> Client {
    let mut c = Client::connect(addr, "FIX.4.4", who, target);
    c.signed_logon(key, secret);
    c
}

/// `portcullis ctl --data-dir DIR risk show --account A --symbol AAPL`.
fn risk_show(dir: &Path, account: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("ctl")
        .arg("--data-dir")
        .arg(dir)
        .args(["risk", "show", "--account", account, "--symbol", "AAPL"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctl risk show: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The next message after `c` sends a TestRequest: proves nothing else was sent before it.
fn nothing_before_heartbeat(c: &mut Client, id: &str) {
    c.send("1", &format!("112={id}"));
    let m = c.expect_any(&["0", "8", "9", "j", "3", "r"]);
    assert_eq!(
        field(&m, 35).as_deref(),
        Some("0"),
        "no report expected before the Heartbeat: {}",
        show(&m)
    );
    assert_eq!(field(&m, 112).as_deref(), Some(id), "{}", show(&m));
}

fn accepted(c: &mut Client) -> Vec<u8> {
    let m = c.expect("8");
    assert_eq!(field(&m, 150).as_deref(), Some("0"), "{}", show(&m));
    m
}

fn refused_account(c: &mut Client, msg_type: &str) -> Vec<u8> {
    let m = c.expect(msg_type);
    assert_eq!(
        field(&m, 58).as_deref(),
        Some("not permitted: account"),
        "{}",
        show(&m)
    );
    m
}

#[test]
fn embedded_default_another_keys_order_for_a_foreign_account_is_refused_and_leaves_it_untouched() {
    // The attack as reported: the embedded default, CLIENT2's development key names
    // 1=ACC-CLIENT1.
    let dir = tempfile::tempdir().unwrap();
    let (mut child, lines, addr) = spawn_run(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--blocking", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path()),
    );
    std::thread::spawn(move || for _ in lines {});
    let secret = |id: &str| {
        portcullis::auth::admin::read_secret_file(
            &dir.path().join("secrets").join(format!("{id}.secret")),
        )
        .unwrap()
    };
    let before = risk_show(dir.path(), "ACC-CLIENT1");
    let mut attacker = signed(
        addr,
        "CLIENT2",
        "PORTCULLIS",
        "client2-dev",
        &secret("client2-dev"),
    );
    attacker.send(
        "D",
        &format!(
            "1=ACC-CLIENT1|{}",
            nos("X1", "AAPL", "1", "100", Some("10.5"))
        ),
    );
    let r = refused_account(&mut attacker, "8");
    assert_eq!(field(&r, 39).as_deref(), Some("8"), "{}", show(&r));
    // ACC-CLIENT1 saw nothing: no open order, no notional.
    let after = risk_show(dir.path(), "ACC-CLIENT1");
    assert_eq!(before["exposure"], after["exposure"], "{before} / {after}");
    assert_eq!(after["disabled"], false);
    // CLIENT2's own account still trades; CLIENT1 trades its account.
    attacker.send("D", &nos("X2", "AAPL", "1", "100", Some("10.5")));
    let m = accepted(&mut attacker);
    assert_eq!(field(&m, 1).as_deref(), Some("ACC-CLIENT2"));
    let mut victim = signed(
        addr,
        "CLIENT1",
        "PORTCULLIS",
        "client1-dev",
        &secret("client1-dev"),
    );
    victim.send("D", &nos("V1", "AAPL", "1", "100", Some("10.5")));
    let m = accepted(&mut victim);
    assert_eq!(field(&m, 1).as_deref(), Some("ACC-CLIENT1"));
    // The development keys are granted their own session's account only.
    let shown = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["keys", "show", "client2-dev", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("accounts:  ACC-CLIENT2"), "{shown}");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
}

/// ACC1 with a message-rate limit of 5 per minute (the limit that disables the account).
fn tight_rate_risk() -> String {
    let acc1 = portcullis::config::risk::permissive_toml(&["ACC1"], &[]).replace(
        "max_msgs = 1000000000\nrate_period_ms = 1000",
        "max_msgs = 5\nrate_period_ms = 60000",
    );
    assert!(acc1.contains("max_msgs = 5"));
    format!(
        "{acc1}{}",
        portcullis::config::risk::permissive_toml(
            &["ACC2", "ACC42"],
            &["AAPL", "MSFT", "VOD", "IBM"]
        )
    )
}

#[test]
fn a_flood_of_orders_for_a_foreign_account_cannot_trip_its_message_rate_limit() {
    let mut env = env(Some(tight_rate_risk()));
    let k1 = env.add("k1", "CLIENT1", &[]);
    let k2 = env.add("k2", "CLIENT2", &[]);
    let gw = env.start();
    let mut attacker = signed(gw.addr, "CLIENT2", "GW", "k2", &k2);
    // Four times ACC1's limit, bounded; each is refused naming the permission.
    for i in 0..20 {
        attacker.send(
            "D",
            &format!(
                "1=ACC1|{}",
                nos(&format!("F{i}"), "AAPL", "1", "1", Some("100"))
            ),
        );
    }
    for _ in 0..20 {
        refused_account(&mut attacker, "8");
    }
    let v = risk_show(gw.dir.path(), "ACC1");
    assert_eq!(v["disabled"], false, "{v}");
    assert_eq!(v["exposure"]["open_orders"], 0, "{v}");
    assert_eq!(
        gw.running.handle.counters.get(Counter::AccountDenied),
        20,
        "each refusal counted"
    );
    wait_event(
        gw.dir.path(),
        "permission-denied session=FIX.4.4:CLIENT2->GW missing=account",
    );
    // The real client of ACC1 trades up to its own limit, which is untouched.
    let mut victim = signed(gw.addr, "CLIENT1", "GW", "k1", &k1);
    for i in 0..5 {
        victim.send("D", &nos(&format!("V{i}"), "AAPL", "1", "1", Some("100")));
        accepted(&mut victim);
    }
    assert_eq!(risk_show(gw.dir.path(), "ACC1")["disabled"], false);
}

#[test]
fn cancel_replace_and_status_of_another_keys_order_need_a_grant_of_its_account() {
    let mut env = env(None);
    // Two keys for the same session CLIENT1 (its orders outlive a logon: no cancel on
    // disconnect): a trades ACC1 (its default), b is granted ACC2 only, c is granted ACC1.
    let a = env.add("a", "CLIENT1", &["--account", "ACC1", "--account", "ACC2"]);
    let b = env.add("b", "CLIENT1", &["--account", "ACC2"]);
    let c = env.add("c", "CLIENT1", &["--account", "ACC1"]);
    let gw = env.start();
    let mut ca = signed(gw.addr, "CLIENT1", "GW", "a", &a);
    ca.send("D", &nos("A1", "AAPL", "1", "100", Some("10")));
    accepted(&mut ca);
    ca.logout();

    let mut cb = signed(gw.addr, "CLIENT1", "GW", "b", &b);
    // The attacker names its own granted account on the message: the order's is what counts.
    cb.send(
        "F",
        "1=ACC2|11=B-C1|41=A1|55=AAPL|54=1|60=20240101-00:00:00",
    );
    let r = refused_account(&mut cb, "9");
    assert_eq!(field(&r, 434).as_deref(), Some("1"));
    assert_eq!(
        field(&r, 37).as_deref(),
        Some("NONE"),
        "no details of the order"
    );
    cb.send(
        "G",
        "1=ACC2|11=B-R1|41=A1|55=AAPL|54=1|38=50|40=2|44=10|60=20240101-00:00:00",
    );
    let r = refused_account(&mut cb, "9");
    assert_eq!(field(&r, 434).as_deref(), Some("2"));
    cb.send("H", "11=A1|55=AAPL|54=1");
    let r = refused_account(&mut cb, "j");
    assert_eq!(field(&r, 380).as_deref(), Some("6"));
    cb.send("q", "11=B-MC|530=7|60=20240101-00:00:00");
    let r = cb.expect("r");
    assert_eq!(field(&r, 533).as_deref(), Some("0"), "{}", show(&r));
    // b's own order in ACC2 may not be moved into ACC1 by a replace.
    cb.send(
        "D",
        &format!("1=ACC2|{}", nos("B1", "AAPL", "1", "100", Some("10"))),
    );
    accepted(&mut cb);
    cb.send(
        "G",
        "1=ACC1|11=B1-R|41=B1|55=AAPL|54=1|38=50|40=2|44=10|60=20240101-00:00:00",
    );
    let r = refused_account(&mut cb, "9");
    assert_eq!(field(&r, 434).as_deref(), Some("2"));
    cb.logout();

    // Key a (granted both) may not move it either: the account of an order never changes.
    let mut ca = signed(gw.addr, "CLIENT1", "GW", "a", &a);
    ca.send(
        "G",
        "1=ACC1|11=B1-R2|41=B1|55=AAPL|54=1|38=50|40=2|44=10|60=20240101-00:00:00",
    );
    let r = ca.expect("9");
    assert_eq!(
        field(&r, 58).as_deref(),
        Some("Account(1) cannot change on a replace"),
        "{}",
        show(&r)
    );
    ca.logout();

    // A grant of the order's account is what lets another key manage it.
    let mut cc = signed(gw.addr, "CLIENT1", "GW", "c", &c);
    cc.send("H", "11=A1|55=AAPL|54=1");
    let r = cc.expect("8");
    assert_eq!(field(&r, 39).as_deref(), Some("0"), "{}", show(&r));
    cc.send("F", "11=C-C1|41=A1|55=AAPL|54=1|60=20240101-00:00:00");
    assert_eq!(field(&cc.expect("8"), 150).as_deref(), Some("4"));
    cc.logout();
    wait_event(
        gw.dir.path(),
        "permission-denied session=FIX.4.4:CLIENT1->GW missing=account",
    );
}

#[test]
fn an_any_account_grant_is_explicit_trades_every_account_and_is_shown() {
    let mut env = env(None);
    let star = env.add("star", "CLIENT1", &["--account", "*"]);
    let plain = env.add("plain", "CLIENT2", &[]);
    // '*' is a grant of its own, never mixed with names.
    let bad = env.keys_raw(&[
        "add",
        "mixed",
        "--comp-id",
        "CLIENT1",
        "--allow",
        "127.0.0.1",
        "--account",
        "*",
        "--account",
        "ACC1",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("accounts") && err.contains("mixed"), "{err}");

    let shown = env.keys(&["show", "star"]);
    assert!(shown.contains("accounts:  * (ANY account"), "{shown}");
    let shown = env.keys(&["show", "plain"]);
    assert!(
        shown.contains("accounts:  (the session's default_account only)"),
        "{shown}"
    );
    let list = env.keys(&["list"]);
    let warn = list
        .lines()
        .find(|l| l.contains("any-account grant"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(warn.contains("star") && !warn.contains("plain"), "{warn}");

    // `portcullis run` names the key on start.
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--blocking", "--config"])
        .arg(&env.cfg_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("listening"), "{first}");
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let _ = child.wait();
    let line = err
        .lines()
        .find(|l| l.contains("any-account grant"))
        .unwrap_or_else(|| panic!("run names the any-account keys: {err}"));
    assert!(line.contains("WARNING") && line.contains("star"), "{line}");

    let gw = env.start();
    let mut s = signed(gw.addr, "CLIENT1", "GW", "star", &star);
    for (cl, acc) in [("S1", "ACC1"), ("S2", "ACC2"), ("S3", "ACC42")] {
        s.send(
            "D",
            &format!("1={acc}|{}", nos(cl, "AAPL", "1", "10", Some("10"))),
        );
        let m = accepted(&mut s);
        assert_eq!(field(&m, 1).as_deref(), Some(acc));
    }
    let mut p = signed(gw.addr, "CLIENT2", "GW", "plain", &plain);
    p.send(
        "D",
        &format!("1=ACC1|{}", nos("P1", "AAPL", "1", "10", Some("10"))),
    );
    refused_account(&mut p, "8");
    p.send("D", &nos("P2", "AAPL", "1", "10", Some("10")));
    accepted(&mut p);
}

#[test]
fn narrowing_a_key_live_leaves_only_cancels_in_the_lost_account_and_a_lost_address_logs_out() {
    let mut env = env(None);
    let k = env.add("k", "CLIENT1", &["--account", "ACC1", "--account", "ACC2"]);
    let other = env.add("other", "CLIENT2", &[]);
    let gw = env.start();
    let mut c = signed(gw.addr, "CLIENT1", "GW", "k", &k);
    let mut o = signed(gw.addr, "CLIENT2", "GW", "other", &other);
    for (cl, acc) in [("N1", "ACC2"), ("N2", "ACC2"), ("N3", "ACC1")] {
        c.send(
            "D",
            &format!("1={acc}|{}", nos(cl, "AAPL", "1", "10", Some("10"))),
        );
        accepted(&mut c);
    }
    env.keys(&["set", "k", "--account", "ACC1"]);
    std::thread::sleep(Duration::from_millis(500));
    c.send(
        "D",
        &format!("1=ACC2|{}", nos("N4", "AAPL", "1", "10", Some("10"))),
    );
    refused_account(&mut c, "8");
    c.send(
        "G",
        "11=N1-R|41=N1|55=AAPL|54=1|38=20|40=2|44=10|60=20240101-00:00:00",
    );
    refused_account(&mut c, "9");
    // Its own order in the lost account: a cancel still pulls it, alone or by mass cancel.
    c.send("F", "11=N1-C|41=N1|55=AAPL|54=1|60=20240101-00:00:00");
    let r = c.expect("8");
    assert_eq!(field(&r, 150).as_deref(), Some("4"), "{}", show(&r));
    c.send("q", "11=N-MC|530=7|60=20240101-00:00:00");
    let r = c.expect("r");
    assert_eq!(
        field(&r, 533).as_deref(),
        Some("2"),
        "N2 and N3: {}",
        show(&r)
    );
    // Still granted: ACC1 trades.
    c.send("D", &nos("N5", "AAPL", "1", "10", Some("10")));
    let mut got_n5 = false;
    for _ in 0..3 {
        let m = c.expect("8");
        got_n5 |= field(&m, 11).as_deref() == Some("N5") && field(&m, 150).as_deref() == Some("0");
    }
    assert!(got_n5);

    // The allowlist loses the session's address: Logout with the reason, event with the cause.
    env.keys(&["set", "k", "--allow", "10.0.0.0/8"]);
    let m = c.expect("5");
    assert_eq!(
        field(&m, 58).as_deref(),
        Some("source address no longer allowed for this credential"),
        "{}",
        show(&m)
    );
    wait_event(
        gw.dir.path(),
        "credential-logout session=FIX.4.4:CLIENT1->GW key=\"k\" cause=\"source address no longer allowed for this credential\"",
    );
    // The other client is untouched and trades.
    o.send("D", &nos("O1", "AAPL", "1", "10", Some("10")));
    accepted(&mut o);
}

#[test]
fn a_possresend_duplicate_gets_no_second_report_and_a_new_possresend_is_processed() {
    let gw = start(&format!("{SESSIONS}{}", sim("ack")));
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.send("D", &nos("P1", "AAPL", "1", "10", Some("10")));
    accepted(&mut c);
    // The same instruction again, marked as a possible resend: not processed, no report.
    c.send(
        "D",
        &format!("97=Y|{}", nos("P1", "AAPL", "1", "10", Some("10"))),
    );
    nothing_before_heartbeat(&mut c, "T1");
    // A refused instruction (not in the order table) is not answered twice either.
    c.send("D", &nos("P2", "AAPL", "1", "-5", Some("10")));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("8"));
    c.send(
        "D",
        &format!("97=Y|{}", nos("P2", "AAPL", "1", "-5", Some("10"))),
    );
    nothing_before_heartbeat(&mut c, "T2");
    // A cancel resent after it was processed.
    c.send("F", "11=P1-C|41=P1|55=AAPL|54=1|60=20240101-00:00:00");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    c.send("F", "97=Y|11=P1-C|41=P1|55=AAPL|54=1|60=20240101-00:00:00");
    nothing_before_heartbeat(&mut c, "T3");
    // PossResend with a ClOrdID never seen: processed like any order.
    c.send(
        "D",
        &format!("97=Y|{}", nos("P3", "AAPL", "1", "10", Some("10"))),
    );
    accepted(&mut c);
    assert_eq!(
        gw.running
            .handle
            .counters
            .get(Counter::PossResendDuplicates),
        3
    );
}

/// Routing fields a client sends and the ones the answer must carry.
const ROUTED: &str = "115=FIRM|116=DESK|144=LDN|128=BROKER";

fn assert_swapped(m: &[u8]) {
    assert_eq!(field(m, 128).as_deref(), Some("FIRM"), "{}", show(m));
    assert_eq!(field(m, 129).as_deref(), Some("DESK"), "{}", show(m));
    assert_eq!(field(m, 145).as_deref(), Some("LDN"), "{}", show(m));
    assert_eq!(field(m, 115).as_deref(), Some("BROKER"), "{}", show(m));
    assert_eq!(field(m, 116), None, "{}", show(m));
    assert_eq!(field(m, 144), None, "{}", show(m));
}

#[test]
fn replies_swap_the_routing_fields_back_on_reports_rejects_and_later_reports() {
    let gw = start(&format!("{SESSIONS}{}", sim("ack")));
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    // ExecutionReport.
    c.send(
        "D",
        &format!("{ROUTED}|{}", nos("R1", "AAPL", "1", "10", Some("10"))),
    );
    assert_swapped(&accepted(&mut c));
    // An answer without routing fields has none.
    c.send("D", &nos("R2", "AAPL", "1", "10", Some("10")));
    let m = accepted(&mut c);
    assert_eq!(
        (field(&m, 128), field(&m, 115)),
        (None, None),
        "{}",
        show(&m)
    );
    // OrderCancelReject.
    c.send(
        "F",
        &format!("{ROUTED}|11=R9-C|41=R9|55=AAPL|54=1|60=20240101-00:00:00"),
    );
    let m = c.expect("9");
    assert_swapped(&m);
    // BusinessMessageReject: an application message type the gateway does not take.
    c.send("E", &format!("{ROUTED}|66=L1|394=3|73=0"));
    let m = c.expect_any(&["j", "3"]);
    assert_eq!(field(&m, 35).as_deref(), Some("j"), "{}", show(&m));
    assert_swapped(&m);
    // Session Reject: a field that is not defined.
    c.send(
        "D",
        &format!(
            "{ROUTED}|9999=x|{}",
            nos("R3", "AAPL", "1", "10", Some("10"))
        ),
    );
    let m = c.expect_any(&["3", "8"]);
    assert_eq!(field(&m, 35).as_deref(), Some("3"), "{}", show(&m));
    assert_swapped(&m);
    // A later report (the kill switch cancels R1): the order kept its routing.
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("ctl")
        .arg("--data-dir")
        .arg(gw.dir.path())
        .args([
            "kill",
            "--account",
            "ACC1",
            "--by",
            "ops",
            "--reason",
            "test",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut r1 = None;
    for _ in 0..2 {
        let m = c.expect("8");
        if field(&m, 11).as_deref() == Some("R1") || field(&m, 41).as_deref() == Some("R1") {
            r1 = Some(m);
        } else {
            assert_eq!(
                field(&m, 128),
                None,
                "R2 came without routing: {}",
                show(&m)
            );
        }
    }
    let m = r1.expect("R1's cancel");
    assert_eq!(field(&m, 150).as_deref(), Some("4"), "{}", show(&m));
    assert_swapped(&m);
}

#[test]
fn an_unauthenticated_dev_session_trades_its_default_account_and_its_dev_accounts_only() {
    let sessions = SESSIONS.replacen(
        "default_account = \"ACC2\"",
        "default_account = \"ACC2\"\ndev_accounts = [\"ACC42\"]",
        1,
    );
    let gw = start(&format!("{sessions}{}", sim("ack")));
    let mut c1 = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c1.logon(30);
    c1.send(
        "D",
        &format!("1=ACC2|{}", nos("D1", "AAPL", "1", "10", Some("10"))),
    );
    refused_account(&mut c1, "8");
    c1.send("D", &nos("D2", "AAPL", "1", "10", Some("10")));
    assert_eq!(field(&accepted(&mut c1), 1).as_deref(), Some("ACC1"));
    let mut c2 = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c2.logon(30);
    for (cl, acc) in [("E1", "ACC2"), ("E2", "ACC42")] {
        c2.send(
            "D",
            &format!("1={acc}|{}", nos(cl, "AAPL", "1", "10", Some("10"))),
        );
        assert_eq!(field(&accepted(&mut c2), 1).as_deref(), Some(acc));
    }
    c2.send(
        "D",
        &format!("1=ACC1|{}", nos("E3", "AAPL", "1", "10", Some("10"))),
    );
    refused_account(&mut c2, "8");
}
