//! Crash safety: the real binary is killed with SIGKILL in the middle of a stream of orders and
//! restarted on the same data folder. Every order that got an ExecutionReport is known after
//! the restart, sequence numbers continue, and a ResendRequest over the whole day is answered.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::*;

const CONFIG: &str = r#"
[gateway]
busy_poll = false
segment_bytes = 4194304
max_orders = 65536
flush_interval_ms = 0

[[listener]]
address = "127.0.0.1:0"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT1"
default_account = "ACC1"

[[venue]]
name = "SIM"
kind = "sim"
behaviour = "ack"
"#;

fn spawn(cfg: &std::path::Path, data: &std::path::Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(["run", "--config"])
        .arg(cfg)
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{first}: {e}"));
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// Answers a ResendRequest from the gateway with a gap fill up to our next seq.
fn answer_resend_requests(c: &mut Client, m: &[u8]) {
    if field(m, 35).as_deref() == Some("2") {
        let begin = field(m, 7).unwrap();
        let next = c.seq;
        let msg = {
            let saved = c.seq;
            c.seq = begin.parse().unwrap();
            let m = c.build("4", &format!("43=Y|122=20240101-00:00:00|123=Y|36={next}"));
            c.seq = saved;
            m
        };
        c.send_raw(&msg);
    }
}

#[test]
fn kill_dash_nine_loses_no_acknowledged_order_and_no_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portcullis.toml");
    std::fs::write(&cfg, format!("{CONFIG}{}", permissive_risk())).unwrap();
    let data = dir.path().join("data");

    let (mut gw, addr) = spawn(&cfg, &data);
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    let mut acked = BTreeSet::new();
    let mut last_seq_seen = 1u64;
    // Stream orders without waiting; kill the gateway while they are in flight.
    let mut killed = false;
    for i in 0..3000 {
        c.send("D", &nos(&format!("K{i}"), "AAPL", "1", "1", Some("1")));
        if i == 1000 {
            // Make sure the gateway has answered some before pulling the plug mid-stream.
            while acked.len() < 100 {
                let m = c
                    .recv_timeout(Duration::from_secs(10))
                    .expect("reports before the kill");
                last_seq_seen = field(&m, 34).unwrap().parse().unwrap();
                if field(&m, 35).as_deref() == Some("8") {
                    acked.insert(field(&m, 11).unwrap());
                }
            }
        }
        if i == 1500 {
            gw.kill().unwrap();
            killed = true;
        }
        while let Some(m) = c.recv_timeout(Duration::from_millis(0)) {
            last_seq_seen = field(&m, 34).unwrap().parse().unwrap();
            if field(&m, 35).as_deref() == Some("8") {
                acked.insert(field(&m, 11).unwrap());
            }
        }
        if killed && c.closed_within(Duration::from_millis(1)) {
            break;
        }
    }
    while let Some(m) = c.recv_timeout(Duration::from_millis(200)) {
        last_seq_seen = field(&m, 34).unwrap().parse().unwrap();
        if field(&m, 35).as_deref() == Some("8") {
            acked.insert(field(&m, 11).unwrap());
        }
    }
    let _ = gw.wait();
    assert!(
        acked.len() > 10,
        "some orders were acknowledged before the kill ({})",
        acked.len()
    );

    let (mut gw, addr) = spawn(&cfg, &data);
    let next_client_seq = c.seq;
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.seq = next_client_seq;
    c.send("A", "98=0|108=30");
    let logon = c.expect("A");
    let gw_seq: u64 = field(&logon, 34).unwrap().parse().unwrap();
    assert!(
        gw_seq > last_seq_seen,
        "gateway seq continues: logon {gw_seq} after {last_seq_seen}"
    );
    // Resend everything from 1: every report we saw must come back, in order, as PossDup.
    c.send("2", "7=1|16=0");
    let mut resent = BTreeSet::new();
    let mut expected_seq = 1u64;
    while let Some(m) = c.recv_timeout(Duration::from_secs(3)) {
        answer_resend_requests(&mut c, &m);
        let t = field(&m, 35).unwrap();
        let seq: u64 = field(&m, 34).unwrap().parse().unwrap();
        if t == "2" || t == "0" || t == "1" {
            continue;
        }
        assert_eq!(seq, expected_seq, "resend is contiguous: {}", show(&m));
        match t.as_str() {
            "4" => expected_seq = field(&m, 36).unwrap().parse().unwrap(),
            "8" => {
                assert_eq!(field(&m, 43).as_deref(), Some("Y"));
                resent.insert(field(&m, 11).unwrap());
                expected_seq = seq + 1;
            }
            other => panic!("unexpected {other} in resend: {}", show(&m)),
        }
        if expected_seq >= gw_seq {
            break;
        }
    }
    eprintln!(
        "recovery: {} acked before kill, {} resent, gateway seq {gw_seq}",
        acked.len(),
        resent.len()
    );
    let missing: Vec<_> = acked.difference(&resent).collect();
    assert!(missing.is_empty(), "reports lost in the crash: {missing:?}");
    // And every acknowledged order is still known to the gateway.
    for cl in acked.iter().take(50) {
        c.send("H", &format!("11={cl}|55=AAPL|54=1"));
        let st = loop {
            let m = c.expect_any(&["8", "2", "4"]);
            answer_resend_requests(&mut c, &m);
            if field(&m, 35).as_deref() == Some("8") && field(&m, 43).is_none() {
                break m;
            }
        };
        assert_eq!(field(&st, 11).as_deref(), Some(cl.as_str()));
        assert_eq!(
            field(&st, 39).as_deref(),
            Some("0"),
            "order {cl} known and open after restart: {}",
            show(&st)
        );
    }
    gw.kill().unwrap();
    let _ = gw.wait();
}

#[test]
fn sigterm_logs_sessions_out_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("portcullis.toml");
    std::fs::write(&cfg, format!("{CONFIG}{}", permissive_risk())).unwrap();
    let (mut gw, addr) = spawn(&cfg, &dir.path().join("data"));
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(gw.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let lo = c.expect("5");
    assert!(
        field(&lo, 58).unwrap().contains("shutting down"),
        "{}",
        show(&lo)
    );
    c.send("5", "");
    assert!(c.closed_within(Duration::from_secs(5)));
    let exit = gw.wait().unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");
    let events = std::fs::read_to_string(dir.path().join("data/events.log")).unwrap();
    assert!(
        events.contains("logon session=FIX.4.4:CLIENT1->GW"),
        "{events}"
    );
}
