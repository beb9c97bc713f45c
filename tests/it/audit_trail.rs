//! The audit trail through the real binary: `portcullis run` with `[auth]` and a small
//! rotation size, orders placed, replaced and canceled, a refused logon and a control action;
//! after the stop `portcullis audit verify` passes; then each kind of tampering (a flipped
//! byte, a deleted, inserted or swapped line, a truncated file, a removed middle file) is named
//! with its file, line and seq and fails the verification; `portcullis audit trail --order`
//! rebuilds the order's lifecycle exactly as the REG-1 records have it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::util::{field, nos, sim, spawn_run, Client, KeyEnv, SESSIONS};

/// Stops the gateway if the test fails before it does.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn trail_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    v.sort();
    v
}

fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for f in trail_files(from) {
        std::fs::copy(&f, to.path().join(f.file_name().unwrap())).unwrap();
    }
    to
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn seq_of(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

/// Runs `audit verify` on a changed copy of the trail; it must fail and say `expect` (each a
/// piece of the output that must be there).
fn tampered(
    dir: &Path,
    key: &str,
    change: impl FnOnce(&[PathBuf]) -> Vec<String>,
) -> (Vec<String>, String) {
    let copy = copy_dir(dir);
    let files = trail_files(copy.path());
    let expect = change(&files);
    let out = portcullis(&[
        "audit",
        "verify",
        copy.path().to_str().unwrap(),
        "--public-key",
        key,
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    for e in &expect {
        assert!(said.contains(e.as_str()), "expected {e:?} in:\n{said}");
    }
    (expect, said)
}

#[test]
fn the_trail_verifies_names_every_tampering_and_rebuilds_an_order() {
    let mut env = KeyEnv::new(
        &format!("{SESSIONS}{}", sim("ack")),
        "[audit]\nrotate_bytes = 4096\ncheckpoint_every = 5\n\n",
    );
    let secret = env.add("k1", "CLIENT1", &[]);
    let _ = &mut env;
    let (child, lines_out, addr) = spawn_run(
        Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["run", "--config"])
            .arg(&env.cfg_path),
    );
    let mut child = KillOnDrop(Some(child));
    // The start-up lines name the checkpoint key.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in lines_out.map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let key_line = (0..50)
        .filter_map(|_| rx.recv_timeout(Duration::from_millis(100)).ok())
        .find(|l| l.contains("audit trail:"))
        .expect("the start-up output names the audit trail");
    let key = key_line
        .split("checkpoint key ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .unwrap()
        .to_string();
    assert_eq!(key.len(), 64, "{key_line}");

    // Orders: A1 placed, replaced (A2), canceled (A3); others around it.
    let mut c = Client::connect(addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    for i in 0..3 {
        c.send("D", &nos(&format!("X{i}"), "MSFT", "2", "10", Some("20")));
        assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    }
    c.send("D", &nos("A1", "AAPL", "1", "100", Some("10.25")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    c.send(
        "G",
        "41=A1|11=A2|55=AAPL|54=1|38=200|40=2|44=11|60=20240101-00:00:00",
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("5"));
    c.send("F", "41=A2|11=A3|55=AAPL|54=1|38=200|60=20240101-00:00:00");
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("4"));
    for i in 0..3 {
        c.send("D", &nos(&format!("Y{i}"), "IBM", "1", "5", Some("30")));
        assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
    }
    // A refused logon: unsigned, while every logon must be signed.
    let mut bad = Client::connect(addr, "FIX.4.4", "CLIENT2", "GW");
    bad.send("A", "98=0|108=30");
    assert!(bad.closed_within(Duration::from_secs(5)));
    // A control action.
    let data = env.dir.path().to_str().unwrap().to_string();
    let kill = portcullis(&[
        "ctl",
        "--data-dir",
        &data,
        "kill",
        "--account",
        "ACC1",
        "--by",
        "alice",
        "--reason",
        "drill",
    ]);
    assert!(kill.status.success(), "{}", text(&kill));
    // The kill canceled the open orders: their reports arrive before the stop.
    drop(c);
    let mut gw = child.0.take().unwrap();
    crate::util::signal(&gw, "TERM");
    assert!(gw.wait().unwrap().success());

    let audit = env.dir.path().join("audit");
    let files = trail_files(&audit);
    assert!(files.len() >= 3, "rotation at 4 KiB: {files:?}");
    let ok = portcullis(&[
        "audit",
        "verify",
        audit.to_str().unwrap(),
        "--public-key",
        &key,
    ]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("verified:"), "{}", text(&ok));
    // With the config alone (key found beside the trail, said in a note) it verifies too.
    let cfg = env.cfg_path.to_str().unwrap().to_string();
    let ok = portcullis(&["audit", "verify", audit.to_str().unwrap(), "--config", &cfg]);
    assert!(ok.status.success(), "{}", text(&ok));

    // What the trail holds: start and stop, the refused logon with its address and cause,
    // the control action with its operator, and no clear account ids beyond the last 4.
    let all: Vec<Value> = files
        .iter()
        .flat_map(|f| lines(f))
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect();
    let kinds: Vec<&str> = all.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "gateway-start").count(), 1);
    assert_eq!(kinds.iter().filter(|k| **k == "gateway-stop").count(), 1);
    let refused = all
        .iter()
        .find(|r| {
            matches!(r["kind"].as_str(), Some("auth-failed" | "logon-refused"))
                && r["subject"]["address"] == "127.0.0.1"
        })
        .unwrap_or_else(|| panic!("no refused logon in {kinds:?}"));
    assert!(!refused["detail"]["text"].as_str().unwrap().is_empty());
    let control = all
        .iter()
        .find(|r| r["kind"] == "control-kill")
        .unwrap_or_else(|| panic!("no control action in {kinds:?}"));
    let actor = control["actor"].as_str().unwrap();
    assert!(
        actor.starts_with("operator:uid=") && actor.ends_with("by=alice"),
        "{actor}"
    );
    assert!(all.iter().any(|r| r["kind"] == "kill"), "{kinds:?}");
    let seqs: Vec<u64> = all.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());

    // The order's lifecycle, exactly as the REG-1 records have it.
    let report = portcullis(&[
        "report",
        "orders",
        "--data-dir",
        &data,
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--format",
        "json",
    ]);
    assert!(report.status.success(), "{}", text(&report));
    let rows: Vec<Value> = serde_json::from_slice(&report.stdout).unwrap();
    let order_id = rows
        .iter()
        .find(|r| r["cl_ord_id"] == "A1")
        .map(|r| r["order_id"].as_str().unwrap().to_string())
        .unwrap();
    let expected: Vec<(String, String)> = rows
        .iter()
        .filter(|r| r["order_id"] == order_id.as_str())
        .map(|r| {
            (
                format!("order-{}", r["event"].as_str().unwrap()),
                r["cl_ord_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(expected.len() >= 5, "{expected:?}");
    let timeline = portcullis(&[
        "audit",
        "trail",
        "--config",
        &cfg,
        "--public-key",
        &key,
        "--order",
        "A1",
        "--json",
    ]);
    assert!(timeline.status.success(), "{}", text(&timeline));
    let v: Value = serde_json::from_slice(&timeline.stdout).unwrap();
    assert_eq!(v["verified"], true);
    let records = v["records"].as_array().unwrap();
    let got: Vec<(String, String)> = records
        .iter()
        .filter(|r| r["kind"].as_str().unwrap().starts_with("order-"))
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["subject"]["cl_ord_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, expected);
    // Every message in and out about the order, in the order they went, under its session.
    let messages: Vec<(&str, &str, &str)> = records
        .iter()
        .filter(|r| r["kind"].as_str().unwrap().starts_with("fix-"))
        .map(|r| {
            assert_eq!(r["subject"]["session"], "FIX.4.4:CLIENT1->GW", "{r}");
            (
                r["kind"].as_str().unwrap(),
                r["detail"]["msg_type"].as_str().unwrap(),
                r["subject"]["cl_ord_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        messages,
        [
            ("fix-in", "D", "A1"),
            ("fix-out", "8", "A1"),
            ("fix-in", "G", "A2"),
            ("fix-out", "8", "A2"),
            ("fix-in", "F", "A3"),
            ("fix-out", "8", "A3"),
        ]
    );
    let nos = &records.iter().find(|r| r["kind"] == "fix-in").unwrap()["detail"]["message"];
    let nos = nos.as_str().unwrap();
    assert!(
        nos.contains("|35=D|") && nos.contains("|11=A1|") && nos.contains("|44=10.25|"),
        "the NewOrderSingle as sent: {nos}"
    );
    // The logons: the signed one with its key and its signature masked; the refused one under
    // its address, with what it claimed to be.
    let logon = all
        .iter()
        .find(|r| r["kind"] == "fix-in" && r["subject"]["key"] == "k1")
        .unwrap_or_else(|| panic!("no signed logon message in {kinds:?}"));
    let text_of = |r: &Value| r["detail"]["message"].as_str().unwrap().to_string();
    assert!(text_of(logon).contains("|96=***|"), "{logon}");
    assert_eq!(logon["actor"], "address:127.0.0.1");
    assert!(
        all.iter().any(|r| r["kind"] == "fix-in"
            && r["detail"]["msg_type"] == "A"
            && text_of(r).contains("|49=CLIENT2|")),
        "the refused logon's message is in the trail"
    );
    // The same by the replace's ClOrdID; and as text.
    let by_a3 = portcullis(&[
        "audit",
        "trail",
        "--config",
        &cfg,
        "--public-key",
        &key,
        "--order",
        "A3",
    ]);
    let t = text(&by_a3);
    assert!(by_a3.status.success(), "{t}");
    assert!(
        t.contains(&format!("{} record(s)", expected.len() + messages.len())),
        "{t}"
    );
    assert!(
        t.contains("order-replaced") && t.contains("order-canceled"),
        "{t}"
    );
    // Everything from the refused logon's address.
    let by_addr = portcullis(&[
        "audit",
        "trail",
        "--config",
        &cfg,
        "--public-key",
        &key,
        "--address",
        "127.0.0.1",
    ]);
    assert!(text(&by_addr).contains(refused["kind"].as_str().unwrap()));

    // Tampering, each on a fresh copy: named with file, line and seq; exit 1.
    let middle = files[1].clone();
    let m = lines(&middle);
    let mname = name(&middle);
    tampered(&audit, &key, |f| {
        let mut l = lines(&f[1]);
        // Flip one byte of the actor of line 3.
        l[2] = l[2].replacen("\"actor\":\"", "\"actor\":\"X", 1);
        std::fs::write(&f[1], l.join("\n") + "\n").unwrap();
        vec![format!("{mname}:3 seq {}: modified", seq_of(&m[2]))]
    });
    tampered(&audit, &key, |f| {
        let mut l = lines(&f[1]);
        l.remove(2);
        std::fs::write(&f[1], l.join("\n") + "\n").unwrap();
        vec![
            format!("{mname}:3 seq {}", seq_of(&m[3])),
            format!("records removed: seq {0}..{0}", seq_of(&m[2])),
        ]
    });
    tampered(&audit, &key, |f| {
        let mut l = lines(&f[1]);
        l.insert(4, l[1].clone());
        std::fs::write(&f[1], l.join("\n") + "\n").unwrap();
        vec![format!(
            "{mname}:5 seq {}: duplicate seq {} (a record inserted)",
            seq_of(&m[1]),
            seq_of(&m[1])
        )]
    });
    tampered(&audit, &key, |f| {
        let mut l = lines(&f[1]);
        l.swap(2, 3);
        std::fs::write(&f[1], l.join("\n") + "\n").unwrap();
        vec![
            format!("{mname}:3 seq {}: ", seq_of(&m[3])),
            "out of order".to_string(),
            format!("{mname}:4 seq {}: ", seq_of(&m[2])),
        ]
    });
    let last = files.last().unwrap().clone();
    let lname = name(&last);
    tampered(&audit, &key, |f| {
        let p = f.last().unwrap();
        let bytes = std::fs::read(p).unwrap();
        std::fs::write(p, &bytes[..bytes.len() - 40]).unwrap();
        vec![
            format!("{lname}:"),
            "truncated: the file ends mid-line".into(),
        ]
    });
    tampered(&audit, &key, |f| {
        let p = f.last().unwrap();
        let mut l = lines(p);
        l.truncate(l.len() - 2);
        std::fs::write(p, l.join("\n") + "\n").unwrap();
        vec![format!("{lname}:"), "truncated tail".into()]
    });
    tampered(&audit, &key, |f| {
        std::fs::remove_file(&f[1]).unwrap();
        vec![format!("missing file: it continues {mname}")]
    });
    // A single file given alone that ends cut short is caught too.
    let copy = copy_dir(&audit);
    let p = trail_files(copy.path()).pop().unwrap();
    let mut l = lines(&p);
    l.truncate(l.len() - 1);
    std::fs::write(&p, l.join("\n") + "\n").unwrap();
    let out = portcullis(&["audit", "verify", p.to_str().unwrap(), "--public-key", &key]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // `audit trail` refuses a trail that does not verify, unless told otherwise.
    let refused_out = portcullis(&[
        "audit",
        "trail",
        "--dir",
        copy.path().to_str().unwrap(),
        "--public-key",
        &key,
        "--order",
        "A1",
    ]);
    assert_eq!(refused_out.status.code(), Some(1));
    assert!(
        text(&refused_out).contains("refused"),
        "{}",
        text(&refused_out)
    );
    let anyway = portcullis(&[
        "audit",
        "trail",
        "--dir",
        copy.path().to_str().unwrap(),
        "--public-key",
        &key,
        "--order",
        "A1",
        "--unverified",
    ]);
    assert!(anyway.status.success(), "{}", text(&anyway));
    assert!(text(&anyway).contains("UNVERIFIED TRAIL"));
    // Another key does not verify the untouched trail.
    let other = "11".repeat(32);
    let out = portcullis(&[
        "audit",
        "verify",
        audit.to_str().unwrap(),
        "--public-key",
        &other,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("signature does not verify"));
}

/// The trail under a flood (issue 15): a gateway under the production policy `on_full =
/// "fail_closed"`, recording every message (the default), flooded with orders through its
/// socket, 64 in flight, as fast as it fills them. Whether the trail keeps up with that is a
/// matter of build and machine (a debug build's trail does not; release figures in `tuning.md`),
/// so it is printed (`-- --nocapture`), not asserted. What must hold either way is the policy:
/// an order is refused only with the trail's reason; every order accepted has its
/// NewOrderSingle in the trail (nothing is traded that the trail could not record); every
/// record lost is counted and the loss is on record; and once the flood ends, orders are taken
/// again.
#[test]
fn a_fail_closed_gateway_flooded_through_a_socket_trades_nothing_the_trail_did_not_record() {
    use portcullis::monitor::Counter;
    use std::collections::HashSet;
    const ORDERS: usize = 20_000;
    const WINDOW: usize = 64;
    let gw = crate::util::start(&format!(
        "{SESSIONS}{}\n[audit]\non_full = \"fail_closed\"\n",
        sim("fill")
    ));
    let counters = gw.running.handle.counters.clone();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    let t0 = std::time::Instant::now();
    let (mut sent, mut done) = (0usize, 0usize);
    let mut accepted: HashSet<String> = HashSet::new();
    let mut refused = 0usize;
    let take = |m: &[u8], accepted: &mut HashSet<String>, refused: &mut usize| -> bool {
        if field(m, 35).as_deref() != Some("8") {
            return false;
        }
        match field(m, 39).as_deref() {
            Some("8") => {
                let text = field(m, 58).unwrap_or_default();
                assert!(
                    text.starts_with("audit trail unavailable"),
                    "refused for another reason: {}",
                    crate::util::show(m)
                );
                *refused += 1;
                true
            }
            Some("0") => {
                accepted.insert(field(m, 11).unwrap_or_default());
                false
            }
            Some("2") => true,
            _ => false,
        }
    };
    while done < ORDERS {
        while sent < ORDERS && sent - done < WINDOW {
            c.send(
                "D",
                &nos(&format!("F{sent}"), "AAPL", "1", "10", Some("100")),
            );
            sent += 1;
        }
        let m = c
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no report within 10 s ({done} of {ORDERS} answered)"));
        done += usize::from(take(&m, &mut accepted, &mut refused));
        // Reports are not kept: 20k of them would only grow the client's memory.
        c.received.clear();
    }
    let took = t0.elapsed();
    // The flood is over: the trail catches up and new orders are taken again.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    loop {
        let id = format!("L{n}");
        c.send("D", &nos(&id, "AAPL", "1", "10", Some("100")));
        let mut answered = false;
        while !answered {
            let m = c
                .recv_timeout(Duration::from_secs(10))
                .expect("an answer to the order after the flood");
            if field(&m, 35).as_deref() == Some("8") && field(&m, 11).as_deref() == Some(&id) {
                answered = true;
                let before = refused;
                take(&m, &mut accepted, &mut refused);
                if refused == before {
                    break;
                }
            }
        }
        if accepted.contains(&id) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orders still refused 60 s after the flood"
        );
        std::thread::sleep(Duration::from_millis(100));
        n += 1;
    }
    eprintln!(
        "trail under flood: {ORDERS} orders answered in {:.2} s ({:.0} orders/s); {} accepted, \
         {refused} refused by the trail; {} trail records; {} lost (AuditRingFull)",
        took.as_secs_f64(),
        ORDERS as f64 / took.as_secs_f64(),
        accepted.len(),
        counters.get(Counter::AuditRecords),
        counters.get(Counter::AuditRingFull),
    );
    assert_eq!(counters.get(Counter::AuditWriteErrors), 0);
    drop(c);
    let dir = gw.dir.path().join("audit");
    let mut running = gw.running;
    running
        .handle
        .stop
        .store(true, std::sync::atomic::Ordering::Relaxed);
    running.join();
    running.stop_trail();
    let lost_counted = counters.get(Counter::AuditRingFull);
    let mut in_trail: HashSet<String> = HashSet::new();
    let mut lost_on_record = 0u64;
    for l in trail_files(&dir).iter().flat_map(|f| lines(f)) {
        let v: Value = serde_json::from_str(&l).unwrap();
        match v["kind"].as_str().unwrap() {
            "fix-in" if v["detail"]["msg_type"] == "D" => {
                in_trail.insert(v["subject"]["cl_ord_id"].as_str().unwrap().to_string());
            }
            "audit-records-lost" => {
                lost_on_record += v["detail"]["count"]
                    .as_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
            }
            _ => {}
        }
    }
    let missing: Vec<&String> = accepted.difference(&in_trail).take(5).collect();
    assert!(
        missing.is_empty(),
        "accepted orders whose NewOrderSingle is not in the trail: {missing:?}"
    );
    assert_eq!(
        lost_on_record, lost_counted,
        "every loss counted is on record"
    );
}

/// What someone without a key can make the message trail do to the sessions (issue 15): a
/// flood of large unsigned Logons from many connections, at a gateway under the production
/// policy (`fail_closed`) with a small message ring (16 KiB: a few of their Logons fill half).
/// The strangers' messages are recorded only up to `audit.prelogon_messages_per_second`, they
/// may fill half the ring at most, and a ring too full for one of theirs never lowers the
/// trail's healthy flag: every order of the signed-in client is accepted while the flood runs,
/// every one of its messages is in the trail, and the trail says how many of the strangers' it
/// did not record.
#[test]
fn a_logon_flood_from_strangers_cannot_make_the_trail_refuse_a_sessions_orders() {
    use portcullis::monitor::Counter;
    let mut env = KeyEnv::new(
        &format!("{SESSIONS}{}", sim("ack")),
        "[audit]\non_full = \"fail_closed\"\nmessage_ring_bytes = 16384\n\
         prelogon_messages_per_second = 20\n\n",
    );
    let secret = env.add("k1", "CLIENT1", &[]);
    let gw = env.start();
    let counters = gw.running.handle.counters.clone();
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.signed_logon("k1", &secret);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flood = {
        let (addr, stop) = (gw.addr, stop.clone());
        std::thread::spawn(move || {
            let junk = "x".repeat(3500);
            let mut sent = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(mut a) = std::net::TcpStream::connect(addr) else {
                    continue;
                };
                let mut w = Client::from_stream(
                    a.try_clone().unwrap(),
                    "FIX.4.4",
                    &format!("EVIL{}", sent % 50),
                    "GW",
                );
                w.send("A", &format!("98=0|108=30|58={junk}"));
                let _ = std::io::Read::read(&mut a, &mut [0u8; 16]);
                sent += 1;
            }
            sent
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..200 {
        c.send("D", &nos(&format!("K{i}"), "AAPL", "1", "10", Some("100")));
        let er = c.expect("8");
        assert_eq!(
            field(&er, 39).as_deref(),
            Some("0"),
            "order {i} during the flood: {}",
            crate::util::show(&er)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let logons = flood.join().unwrap();
    let unrecorded = counters.get(Counter::AuditPrelogonUnrecorded);
    eprintln!(
        "{logons} stranger logons; {unrecorded} of their messages not recorded; {} records \
         lost to a full ring",
        counters.get(Counter::AuditRingFull)
    );
    assert!(unrecorded > 0, "the budget was reached ({logons} logons)");
    assert_eq!(counters.get(Counter::AuditHaltRejects), 0);
    // The trail says so, and holds every message of the session.
    let records = crate::util::trail_records(gw.dir.path(), |all| {
        all.iter().any(|r| r["kind"] == "audit-messages-unrecorded")
            && all
                .iter()
                .filter(|r| r["kind"] == "fix-in" && r["detail"]["msg_type"] == "D")
                .count()
                >= 200
    });
    assert!(records
        .iter()
        .any(|r| r["kind"] == "audit-messages-unrecorded"));
    let orders = records
        .iter()
        .filter(|r| r["kind"] == "fix-in" && r["detail"]["msg_type"] == "D")
        .count();
    assert_eq!(orders, 200);
}
