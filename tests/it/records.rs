//! REG-1: every order lifecycle event sent through a real FIX session is recorded by the journal
//! thread and comes back out of `portcullis report orders` (the real binary) in CSV and JSON,
//! with its fields and its timestamps in order.

use std::collections::HashMap;
use std::process::Command;

use crate::util::*;

type Row = HashMap<String, String>;

/// Minimal RFC 4180 reader: quoted fields may hold commas and doubled quotes.
fn parse_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut lines = text.lines();
    let split = |line: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(ch) = chars.next() {
            match (ch, quoted) {
                ('"', true) if chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                ('"', _) => quoted = !quoted,
                (',', false) => out.push(std::mem::take(&mut cur)),
                _ => cur.push(ch),
            }
        }
        out.push(cur);
        out
    };
    let header = split(lines.next().unwrap_or(""));
    (header, lines.map(split).collect())
}

fn report(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["report", "orders", "--data-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn date(t: portcullis::model::Nanos) -> String {
    portcullis::audit::records::rfc3339(t)[..10].to_string()
}

#[test]
fn order_lifecycle_round_trips_through_report_orders_in_csv_and_json() {
    let t0 = now_utc();
    let gw = start(&format!(
        "{SESSIONS}{}[[venue]]\nname = \"SIMF\"\nkind = \"sim\"\nbehaviour = \"partial\"\npartial_slices = 2\n",
        sim("ack")
    ));
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    let parties = "453=2|448=TR1|447=D|452=12|448=DM1|447=D|452=122";
    let instrument = "48=US0378331005|22=4|15=USD|18=6";
    c.send(
        "D",
        &format!(
            "50=DESK|{}|{parties}|{instrument}",
            nos("A1", "AAPL", "1", "100", Some("10.25"))
        ),
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    c.send(
        "G",
        "41=A1|11=A2|55=AAPL|54=1|38=200|40=2|44=11|60=20240101-00:00:00",
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("5"));
    c.send("F", "41=A2|11=A3|55=AAPL|54=1|38=200|60=20240101-00:00:00");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    c.send(
        "G",
        "41=A3|11=A4|55=AAPL|54=1|38=300|40=2|44=11|60=20240101-00:00:00",
    );
    assert_eq!(field(&c.expect("9"), 434).as_deref(), Some("2"));
    c.send(
        "D",
        &format!("{}|100=SIMF", nos("B1", "MSFT", "2", "100", Some("20"))),
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("1"));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("2"));
    c.send("D", &nos("C1", "AAPL", "1", "0", Some("10")));
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("8"));
    c.logout();
    let Gw { running, dir, .. } = gw;
    running.stop(); // the journal thread drains the record ring and syncs
    let t1 = now_utc();
    let from = date(t0);
    let to = date(portcullis::model::Nanos(t1.0 + 86_400_000_000_000));

    let json = report(
        dir.path(),
        &["--from", &from, "--to", &to, "--format", "json"],
    );
    assert!(json.status.success(), "{json:?}");
    let rows: Vec<Row> = serde_json::from_slice(&json.stdout).unwrap();
    let csv = report(
        dir.path(),
        &["--from", &from, "--to", &to, "--format", "csv"],
    );
    assert!(csv.status.success(), "{csv:?}");
    let (header, lines) = parse_csv(&String::from_utf8_lossy(&csv.stdout));
    assert_eq!(header, portcullis::audit::records::RecordRow::COLUMNS);
    assert_eq!(
        lines.len(),
        rows.len(),
        "CSV and JSON export the same records"
    );
    for (line, row) in lines.iter().zip(&rows) {
        for (k, v) in header.iter().zip(line) {
            assert_eq!(&row[k], v, "column {k}");
        }
    }

    let events = |prefix: &str| -> Vec<&Row> {
        rows.iter()
            .filter(|r| r["cl_ord_id"].starts_with(prefix))
            .collect()
    };
    let names = |rs: &[&Row]| rs.iter().map(|r| r["event"].clone()).collect::<Vec<_>>();
    let a = events("A");
    assert_eq!(
        names(&a),
        [
            "new",
            "accepted",
            "replace-requested",
            "replaced",
            "cancel-requested",
            "canceled",
            "replace-rejected"
        ]
    );
    for r in &a {
        assert_eq!(r["account"], "ACC1");
        assert_eq!(r["session"], "FIX.4.4:CLIENT1->GW");
        assert_eq!(r["client_comp_id"], "CLIENT1");
        assert_eq!(r["api_key_id"], "", "unauthenticated logon: no key");
        assert_eq!(r["trader_id"], "TR1", "PartyRole 12 wins over SenderSubID");
        assert_eq!(r["decision_maker_id"], "DM1");
        assert_eq!(r["symbol"], "AAPL");
        assert_eq!(r["security_id"], "US0378331005");
        assert_eq!(r["security_id_source"], "4");
        assert_eq!(r["currency"], "USD");
        assert_eq!(r["exec_inst"], "6");
        assert_eq!(r["side"], "buy");
        assert_eq!(r["venue"], "SIM");
        assert_eq!(r["routing_decision"], "default: first venue SIM");
        assert_eq!(r["order_id"], a[0]["order_id"]);
        assert!(!r["order_id"].is_empty());
    }
    assert_eq!(
        (a[0]["price"].as_str(), a[0]["order_qty"].as_str()),
        ("10.25", "100")
    );
    assert_eq!(a[0]["cl_ord_id"], "A1");
    assert!(!a[1]["venue_order_id"].is_empty(), "the venue's id");
    assert_eq!(
        (
            a[2]["request_cl_ord_id"].as_str(),
            a[2]["requested_qty"].as_str(),
            a[2]["requested_price"].as_str()
        ),
        ("A2", "200", "11")
    );
    assert_eq!(
        (
            a[3]["cl_ord_id"].as_str(),
            a[3]["orig_cl_ord_id"].as_str(),
            a[3]["order_qty"].as_str(),
            a[3]["price"].as_str()
        ),
        ("A2", "A1", "200", "11")
    );
    assert_eq!(a[4]["request_cl_ord_id"], "A3");
    assert_eq!(
        (a[5]["cl_ord_id"].as_str(), a[5]["orig_cl_ord_id"].as_str()),
        ("A3", "A2")
    );
    assert_eq!(a[5]["ord_status"], "4");
    assert_eq!(a[6]["request_cl_ord_id"], "A4");
    assert!(!a[6]["text"].is_empty() && !a[6]["reject_code"].is_empty());

    let b = events("B");
    assert_eq!(names(&b), ["new", "accepted", "partial-fill", "fill"]);
    assert_eq!(b[0]["venue"], "SIMF");
    assert_eq!(b[0]["routing_decision"], "ExDestination(100)=SIMF");
    assert_eq!(b[0]["side"], "sell");
    assert_eq!(b[0]["trader_id"], "", "no party, no SenderSubID");
    assert_eq!(
        (b[2]["last_qty"].as_str(), b[2]["last_px"].as_str()),
        ("50", "20")
    );
    assert_eq!(
        (b[3]["cum_qty"].as_str(), b[3]["leaves_qty"].as_str()),
        ("100", "0")
    );
    assert_eq!(b[3]["avg_px"], "20");

    let c1 = events("C");
    assert_eq!(names(&c1), ["rejected"]);
    assert_eq!(c1[0]["reject_code"], "13");
    assert!(c1[0]["text"].contains("OrderQty(38)"), "{:?}", c1[0]);
    assert_eq!(c1[0]["order_id"], "");

    // Timestamps: inside the test's window, in order within each record and across records.
    let (lo, hi) = (
        portcullis::audit::records::rfc3339(t0),
        portcullis::audit::records::rfc3339(t1),
    );
    let mut prev = String::new();
    for r in &rows {
        let t = &r["event_time"];
        assert!(*t >= lo && *t <= hi, "{t} outside {lo}..{hi}");
        assert!(*t >= prev, "records out of order: {prev} then {t}");
        prev = t.clone();
        let chain: Vec<&String> = [
            "instruction_received_time",
            "decision_time",
            "sent_to_venue_time",
            "venue_answer_time",
            "sent_to_client_time",
        ]
        .iter()
        .map(|k| &r[*k])
        .filter(|v| !v.is_empty())
        .collect();
        assert!(
            chain.windows(2).all(|w| w[0] <= w[1]),
            "timestamps out of order in {r:?}"
        );
        assert!(r["decision_time"] >= r["order_received_time"]);
        assert_eq!(
            r["event_time"].len(),
            30,
            "ns precision: {}",
            r["event_time"]
        );
    }
    for r in [a[1], a[3], a[5], b[1], b[2], b[3]] {
        for k in [
            "decision_time",
            "sent_to_venue_time",
            "venue_answer_time",
            "sent_to_client_time",
        ] {
            assert!(!r[k].is_empty(), "{k} missing in {r:?}");
        }
    }
    assert!(a[0]["sent_to_client_time"].is_empty(), "new has no report");

    // A range before the orders is empty; bad arguments are named.
    let none = report(dir.path(), &["--from", "2000-01-01", "--to", "2000-01-02"]);
    assert!(none.status.success());
    assert_eq!(String::from_utf8_lossy(&none.stdout).lines().count(), 1);
    let bad = report(dir.path(), &["--from", "yesterday", "--to", &to]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--from"));
    let empty = tempfile::tempdir().unwrap();
    let missing = report(empty.path(), &["--from", &from, "--to", &to]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("records"));
}

#[test]
fn a_full_record_ring_is_counted_and_reported_never_silent() {
    // A one-slot ring and a burst of orders in one read: the journal thread cannot keep up.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &format!("{SESSIONS}{}", sim("fill")));
    cfg.gateway.record_ring = 1;
    let running = portcullis::gateway::start(&cfg, portcullis::clock::Clock::fast()).unwrap();
    let mut c = Client::connect(running.handle.listen_addrs[0], "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    let mut burst = Vec::new();
    for i in 0..50 {
        burst.extend(c.build("D", &nos(&format!("R{i}"), "AAPL", "1", "1", Some("10"))));
    }
    c.send_raw(&burst);
    for _ in 0..100 {
        c.expect("8");
    }
    c.logout();
    let lost = running
        .handle
        .counters
        .get(portcullis::monitor::Counter::RecordRingFull);
    running.stop();
    assert!(lost > 0, "150 records through a 1-slot ring in one cycle");
    let log = std::fs::read_to_string(dir.path().join("events.log")).unwrap();
    let reported: u64 = log
        .lines()
        .filter_map(|l| l.split("order-records-dropped count=").nth(1))
        .map(|n| n.trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(reported, lost, "every lost record is reported:\n{log}");
    let out = report(dir.path(), &["--from", "2000-01-01", "--to", "2100-01-01"]);
    assert!(out.status.success(), "{out:?}");
    let written = String::from_utf8_lossy(&out.stdout).lines().count() as u64 - 1;
    assert_eq!(written + lost, 150, "written + lost = every event");
}

#[test]
fn an_external_venue_s_round_trip_shows_in_the_sent_and_answer_times() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let gw = start(&format!(
        "{SESSIONS}[[venue]]\nname = \"XVEN\"\nkind = \"fix\"\naddress = \"127.0.0.1:{port}\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"VENUE\"\nheartbeat_secs = 30\nreconnect_ms = 200\n"
    ));
    let (s, _) = l.accept().unwrap();
    let mut v = Client::from_stream(s, "FIX.4.4", "VENUE", "GW");
    v.expect("A");
    v.send("A", "98=0|108=30");
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    c.send("D", &nos("X1", "AAPL", "1", "100", Some("10")));
    let d = v.expect("D");
    assert_eq!(
        field(&c.expect("8"), 150).as_deref(),
        Some("A"),
        "PendingNew"
    );
    // The venue takes its time: the records must show it between sent and answer.
    std::thread::sleep(std::time::Duration::from_millis(30));
    let vcl = field(&d, 11).unwrap();
    v.send(
        "8",
        &format!("37=XP-98765a|11={vcl}|17=E1|150=0|39=0|55=AAPL|54=1|38=100|151=100|14=0|6=0"),
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    v.send(
        "8",
        &format!(
            "37=XP-98765a|11={vcl}|17=E2|150=F|39=1|55=AAPL|54=1|38=100|32=40|31=10|151=60|14=40|6=10"
        ),
    );
    assert_eq!(field(&c.expect("8"), 39).as_deref(), Some("1"));
    c.logout();
    let Gw { running, dir, .. } = gw;
    running.stop();
    let out = report(
        dir.path(),
        &[
            "--from",
            "2000-01-01",
            "--to",
            "2100-01-01",
            "--format",
            "json",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Row> = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["event"].as_str()).collect();
    assert_eq!(
        names,
        ["new", "accepted", "partial-fill"],
        "pending reports are not events"
    );
    let ns = |t: &str| portcullis::report::parse_time(t).unwrap().0;
    let acc = &rows[1];
    assert_eq!(acc["venue"], "XVEN");
    assert_eq!(
        acc["venue_order_id"], "XP-98765a",
        "the venue's OrderID(37), letters kept"
    );
    let waited = ns(&acc["venue_answer_time"]) - ns(&acc["sent_to_venue_time"]);
    assert!(
        waited >= 30_000_000,
        "sent → answer {waited} ns, the venue waited 30 ms"
    );
    assert!(ns(&acc["sent_to_client_time"]) >= ns(&acc["venue_answer_time"]));
    assert_eq!(rows[2]["last_qty"], "40");
    assert_eq!(
        rows[0]["sent_to_venue_time"], "",
        "new is recorded before routing"
    );
}
