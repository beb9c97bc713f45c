//! `[[route]]` rules through a real FIX session: the first matching rule picks the venue (by
//! account, symbol or ExDestination alias), before an ExDestination naming a venue and before
//! the default; an ExDestination that names nothing is refused; and the order record keeps why
//! each venue was chosen (best-execution evidence), read back with `portcullis report orders`.

use std::collections::HashMap;
use std::process::Command;

use crate::util::*;

const VENUES_AND_ROUTES: &str = r#"
[[venue]]
name = "ACKV"
kind = "sim"
behaviour = "ack"

[[venue]]
name = "FILLV"
kind = "sim"
behaviour = "fill"

# Account ACC2 always goes to FILLV.
[[route]]
account = "ACC2"
venue = "FILLV"

# So does VOD, whoever sends it.
[[route]]
symbol = "VOD"
venue = "FILLV"

# "LIT" is an alias clients may put in ExDestination(100): it means ACKV.
[[route]]
ex_destination = "LIT"
venue = "ACKV"
"#;

/// Sends a NewOrderSingle (`dest`: its ExDestination) and returns the ExecType(150) of the
/// first report and whether a fill followed.
fn place(c: &mut Client, cl: &str, symbol: &str, dest: Option<&str>) -> (String, bool) {
    let mut body = nos(cl, symbol, "1", "10", Some("100"));
    if let Some(d) = dest {
        body.push_str(&format!("|100={d}"));
    }
    c.send("D", &body);
    let first = c.expect("8");
    let exec_type = field(&first, 150).unwrap_or_default();
    let filled = if exec_type == "0" {
        field(&c.expect_any(&["8"]), 39).as_deref() == Some("2")
            || field(&first, 39).as_deref() == Some("2")
    } else {
        false
    };
    (exec_type, filled)
}

#[test]
fn route_rules_pick_the_venue_before_ex_destination_and_the_default_and_the_record_says_why() {
    let t0 = now_utc();
    let gw = start(&format!("{SESSIONS}{VENUES_AND_ROUTES}"));
    let mut c1 = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c1.logon(30);
    let mut c2 = Client::connect(gw.addr, "FIX.4.4", "CLIENT2", "GW");
    c2.logon(30);

    // CLIENT1 (ACC1), AAPL, no ExDestination: no rule matches → the first venue (ack only).
    c1.send("D", &nos("R1", "AAPL", "1", "10", Some("100")));
    assert_eq!(field(&c1.expect("8"), 150).as_deref(), Some("0"));
    // CLIENT2 trades ACC2: rule 0 sends it to FILLV (new, then filled).
    assert_eq!(place(&mut c2, "R2", "AAPL", None), ("0".into(), true));
    // VOD from CLIENT1: rule 1.
    assert_eq!(place(&mut c1, "R3", "VOD", None), ("0".into(), true));
    // ExDestination LIT is no venue's name; rule 2 maps it to ACKV.
    c1.send(
        "D",
        &format!("{}|100=LIT", nos("R4", "AAPL", "1", "10", Some("100"))),
    );
    assert_eq!(field(&c1.expect("8"), 150).as_deref(), Some("0"));
    // An ExDestination naming a venue goes there when no rule matches first.
    assert_eq!(
        place(&mut c1, "R5", "AAPL", Some("FILLV")),
        ("0".into(), true)
    );
    // A rule beats an explicit ExDestination: ACC2 asks for ACKV and still goes to FILLV.
    assert_eq!(
        place(&mut c2, "R6", "AAPL", Some("ACKV")),
        ("0".into(), true)
    );
    // An ExDestination that names nothing and that no rule maps is refused.
    c1.send(
        "D",
        &format!("{}|100=DARK", nos("R7", "AAPL", "1", "10", Some("100"))),
    );
    let rej = c1.expect("8");
    assert_eq!(field(&rej, 39).as_deref(), Some("8"));
    assert_eq!(field(&rej, 103).as_deref(), Some("0"));
    assert_eq!(
        field(&rej, 58).as_deref(),
        Some("unknown ExDestination(100)")
    );
    c1.logout();
    c2.logout();

    let Gw { running, dir, .. } = gw;
    running.stop();
    let from = portcullis::audit::records::rfc3339(t0)[..10].to_string();
    let to = portcullis::audit::records::rfc3339(portcullis::model::Nanos(
        now_utc().0 + 86_400_000_000_000,
    ))[..10]
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["report", "orders", "--data-dir"])
        .arg(dir.path())
        .args(["--from", &from, "--to", &to, "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<HashMap<String, String>> = serde_json::from_slice(&out.stdout).unwrap();
    let why = |cl: &str| -> (String, String) {
        let r = rows
            .iter()
            .find(|r| r["cl_ord_id"] == cl && r["event"] == "new")
            .unwrap_or_else(|| panic!("no `new` record of {cl}"));
        (r["venue"].clone(), r["routing_decision"].clone())
    };
    assert_eq!(
        why("R1"),
        ("ACKV".into(), "default: first venue ACKV".into())
    );
    assert_eq!(why("R2").0, "FILLV");
    assert!(why("R2").1.starts_with("route[0]"), "{:?}", why("R2"));
    assert!(why("R3").1.starts_with("route[1]"), "{:?}", why("R3"));
    assert_eq!(why("R4").0, "ACKV");
    assert!(why("R4").1.starts_with("route[2]"), "{:?}", why("R4"));
    assert_eq!(
        why("R5"),
        ("FILLV".into(), "ExDestination(100)=FILLV".into())
    );
    assert!(why("R6").1.starts_with("route[0]"), "{:?}", why("R6"));
    let refused = rows
        .iter()
        .find(|r| r["cl_ord_id"] == "R7")
        .expect("the refusal is recorded");
    assert_eq!(refused["event"], "rejected");
}
