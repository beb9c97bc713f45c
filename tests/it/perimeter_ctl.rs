//! Issue 13, the control socket and card numbers: attacks on `<data_dir>/control.sock` sent
//! the way an attacker would (a peer not allowed, a client that never sends, a line that never
//! ends, a client that never reads, an over-long line), each checked for its refusal *and* that
//! a legitimate `portcullis ctl kill` and the FIX clients still work; and card numbers in free
//! text (a ctl `--reason`, a NewOrderSingle's Text(58), a venue's reject reason) found nowhere
//! in the data folder unmasked.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis::monitor::Counter;
use serde_json::Value;

use crate::util::*;

const SYMBOLS: [&str; 4] = ["AAPL", "MSFT", "VOD", "IBM"];
/// An account long enough for its mask to be visible: `*********5432`.
const LONG_ACCOUNT: &str = "ACCT-98765432";
/// A Visa test card number (Luhn-valid).
const PAN: &str = "4111111111111111";

/// SESSIONS, the ack simulator, permissive accounts (LONG_ACCOUNT too) and `control`.
fn gateway(control: &str) -> Gw {
    let risk = portcullis::config::risk::permissive_toml(
        &["ACC1", "ACC2", "ACC42", LONG_ACCOUNT],
        &SYMBOLS,
    );
    start(&format!("{SESSIONS}{}\n{risk}\n{control}", sim("ack")))
}

/// Our own uid, as the kernel sees it (the owner of a file we create).
fn own_uid(dir: &Path) -> u32 {
    let f = dir.join("uid-probe");
    std::fs::write(&f, b"").unwrap();
    let uid = std::fs::metadata(&f).unwrap().uid();
    std::fs::remove_file(&f).unwrap();
    uid
}

/// Runs `portcullis ctl --data-dir <gw> args…`: exit code, JSON answer, the ctl process id.
fn ctl(gw: &Gw, args: &[&str]) -> (i32, Value, u32) {
    let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("ctl")
        .arg("--data-dir")
        .arg(gw.dir.path())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(&stdout).unwrap_or_else(|_| {
        Value::String(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    });
    (out.status.code().unwrap_or(-1), v, pid)
}

fn kill_account(gw: &Gw, account: &str, reason: &str) -> (i32, Value, u32) {
    ctl(
        gw,
        &[
            "kill",
            "--account",
            account,
            "--by",
            "alice",
            "--reason",
            reason,
        ],
    )
}

fn audit_lines(gw: &Gw) -> Vec<Value> {
    std::fs::read_to_string(gw.dir.path().join("control-audit.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn socket(gw: &Gw) -> UnixStream {
    UnixStream::connect(gw.dir.path().join("control.sock")).unwrap()
}

/// The next answer line on a raw control connection (None: closed or nothing within 5 s).
fn answer(s: &mut UnixStream) -> Option<Value> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = s.read(&mut b) {
        if b[0] == b'\n' {
            return serde_json::from_slice(&line).ok();
        }
        line.push(b[0]);
    }
    None
}

/// Logs `who` on and sends one order for its default account: the ExecutionReport's OrdStatus.
fn trade(gw: &Gw, who: &str, cl: &str, text: Option<&str>) -> String {
    let mut c = Client::connect(gw.addr, "FIX.4.4", who, "GW");
    c.logon(30);
    let mut body = nos(cl, "AAPL", "1", "10", Some("100"));
    if let Some(t) = text {
        body.push_str(&format!("|58={t}"));
    }
    c.send("D", &body);
    let er = c.expect("8");
    c.logout();
    field(&er, 39).unwrap()
}

/// Every file under `dir` (binary ones too) that contains `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(files_containing(&p, needle));
        } else if let Ok(bytes) = std::fs::read(&p) {
            if bytes.windows(needle.len()).any(|w| w == needle) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

/// Waits until `records/` holds a line containing `needle` (the journal thread writes them).
fn record_with(gw: &Gw, needle: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dir = gw.dir.path().join("records");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.contains(needle)) {
                return serde_json::from_str(l).unwrap();
            }
        }
        assert!(Instant::now() < deadline, "no record with {needle:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_silent_client_an_endless_line_and_a_non_reader_do_not_hold_up_a_kill() {
    // Deadlines far longer than the test: only concurrency (and making room) can let the kill
    // through in time, not a bad client's deadline expiring.
    let gw = gateway(
        "[control]\nmax_clients = 3\nidle_timeout_ms = 60000\nio_timeout_ms = 60000\nmax_line_bytes = 16384\n",
    );
    // 1. Connects and never sends.
    let mut silent = socket(&gw);
    std::thread::sleep(Duration::from_millis(50));
    // 2. Sends most of a line, no newline, and stalls.
    let mut endless = socket(&gw);
    endless.write_all(&[b' '; 10_000]).unwrap();
    // 3. Sends many requests and never reads an answer: its thread ends up blocked writing.
    let mut deaf = socket(&gw);
    let req = "{\"op\":\"risk-show\",\"account\":\"ACC1\"}\n".repeat(2000);
    deaf.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    deaf.write_all(req.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // The operator's kill: all 3 slots are taken, the oldest idle client makes room.
    let t = Instant::now();
    let (code, v, _) = kill_account(&gw, "ACC2", "runaway algo");
    let took = t.elapsed();
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["killed"], true, "{v}");
    assert_eq!(v["persisted"], true, "{v}");
    assert!(
        took < Duration::from_secs(30),
        "the kill waited {took:?}: a bad client held it up"
    );
    // The silent one was closed to make room, and told why.
    let why = answer(&mut silent).expect("an answer before the close");
    assert!(
        why["error"].as_str().unwrap().contains("make room"),
        "{why}"
    );
    assert!(gw.running.handle.counters.get(Counter::ControlClosed) >= 1);
    // Applied: ACC2's orders are refused, ACC1 still trades.
    assert_eq!(trade(&gw, "CLIENT2", "K1", None), "8");
    assert_eq!(trade(&gw, "CLIENT1", "T1", None), "0");
    // And the kill is in the audit.
    let audit = audit_lines(&gw);
    assert!(
        audit.iter().any(|l| l["request"]["op"] == "kill"),
        "{audit:?}"
    );
    drop(endless);
    drop(deaf);
}

#[test]
fn stalled_clients_are_closed_at_their_deadlines_with_a_reason() {
    let gw = gateway("[control]\nidle_timeout_ms = 300\nio_timeout_ms = 300\n");
    let mut silent = socket(&gw);
    let mut slow = socket(&gw);
    slow.write_all(b"{\"op\":\"risk-show\",").unwrap();
    // Never reads: once its answers fill the socket, the server gives up on it.
    let mut deaf = socket(&gw);
    let req = "{\"op\":\"risk-show\",\"account\":\"ACC1\"}\n".repeat(2000);
    deaf.write_all(req.as_bytes()).unwrap();
    let why = answer(&mut silent).expect("an answer before the close");
    assert!(
        why["error"]
            .as_str()
            .unwrap()
            .contains("control.idle_timeout_ms"),
        "{why}"
    );
    let why = answer(&mut slow).expect("an answer before the close");
    assert!(
        why["error"]
            .as_str()
            .unwrap()
            .contains("control.io_timeout_ms"),
        "{why}"
    );
    assert!(answer(&mut silent).is_none(), "closed after the answer");
    // Reading at last: what was written before the write deadline, then the end.
    std::thread::sleep(Duration::from_millis(1500));
    deaf.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answers = 0;
    let mut chunk = [0u8; 4096];
    loop {
        match deaf.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answers += chunk[..n].iter().filter(|&&b| b == b'\n').count(),
            // Closed with requests of ours still unread on its side.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the server did not close it: {e}"),
        }
    }
    assert!(
        answers < 2000,
        "all {answers} answered: the writer never gave up"
    );
    assert!(gw.running.handle.counters.get(Counter::ControlClosed) >= 3);
    let (code, v, _) = kill_account(&gw, "ACC2", "after the stalls");
    assert_eq!(code, 0, "{v}");
    assert_eq!(trade(&gw, "CLIENT1", "T1", None), "0");
}

#[test]
fn a_peer_whose_uid_is_not_allowed_is_refused_and_audited_with_uid_and_pid() {
    let probe = tempfile::tempdir().unwrap();
    let me = own_uid(probe.path());
    // The test runs as root: a list without our uid shuts root out too (only listed uids).
    let gw = gateway(&format!("[control]\nallowed_uids = [{}]\n", me + 1));
    let (code, v, pid) = kill_account(&gw, "ACC2", "should not pass");
    assert_eq!(code, 1, "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains(&format!("uid {me} may not use the control socket"))
            && err.contains("control.allowed_uids"),
        "{v}"
    );
    let audit = audit_lines(&gw);
    let refusal = audit
        .iter()
        .find(|l| l["refused"] == "peer")
        .unwrap_or_else(|| panic!("no refusal audited: {audit:?}"));
    assert_eq!(refusal["peer"]["uid"], me, "{refusal}");
    assert_eq!(refusal["peer"]["pid"], pid, "{refusal}");
    assert!(
        audit.iter().all(|l| l.get("request").is_none()),
        "{audit:?}"
    );
    assert_eq!(gw.running.handle.counters.get(Counter::ControlClosed), 1);
    // Nothing was applied: both clients trade.
    assert_eq!(trade(&gw, "CLIENT2", "K1", None), "0");
    assert_eq!(trade(&gw, "CLIENT1", "T1", None), "0");
}

#[test]
fn an_over_long_request_line_is_refused_unread_with_a_clear_error() {
    let gw = gateway("[control]\nmax_line_bytes = 1024\n");
    // A line of exactly the limit is served.
    let mut s = socket(&gw);
    let req = "{\"op\":\"risk-show\",\"account\":\"ACC1\"}";
    let padded = format!("{req}{}\n", " ".repeat(1024 - req.len()));
    s.write_all(padded.as_bytes()).unwrap();
    assert_eq!(answer(&mut s).unwrap()["ok"], true);
    // 1 MiB without a newline: refused after max_line_bytes + 1, the connection closed.
    let mut flood = socket(&gw);
    let mut w = flood.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = [b'x'; 4096];
        let mut sent = 0;
        while sent < 1 << 20 {
            match w.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        sent
    });
    let v = answer(&mut flood).expect("an error answer");
    assert_eq!(v["ok"], false);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("longer than 1024 bytes (control.max_line_bytes)"),
        "{v}"
    );
    assert!(answer(&mut flood).is_none(), "closed after the answer");
    let sent = writer.join().unwrap();
    assert!(
        sent < 1 << 20,
        "the server kept reading: {sent} bytes taken"
    );
    // The operator still gets through.
    let (code, v, _) = kill_account(&gw, "ACC2", "after the flood");
    assert_eq!(code, 0, "{v}");
    assert_eq!(trade(&gw, "CLIENT2", "K1", None), "8");
    assert_eq!(trade(&gw, "CLIENT1", "T1", None), "0");
}

#[test]
fn the_control_audit_records_the_peer_and_masks_accounts_and_card_numbers() {
    let gw = gateway("");
    let me = own_uid(gw.dir.path());
    let grouped = "4111 1111 1111 1111";
    let (code, v, pid) = kill_account(
        &gw,
        LONG_ACCOUNT,
        &format!("client read card {grouped} on the phone"),
    );
    assert_eq!(code, 0, "{v}");
    let (code, v, _) = ctl(
        &gw,
        &[
            "enable-account",
            LONG_ACCOUNT,
            "--by",
            &format!("bob {PAN}"),
            "--reason",
            "reviewed",
        ],
    );
    assert_eq!(code, 0, "{v}");
    let raw = std::fs::read_to_string(gw.dir.path().join("control-audit.log")).unwrap();
    for secret in [LONG_ACCOUNT, grouped, PAN] {
        assert!(!raw.contains(secret), "{secret:?} in the audit: {raw}");
    }
    let audit = audit_lines(&gw);
    let kill = &audit[0];
    assert_eq!(kill["by"], "alice");
    assert_eq!(
        kill["reason"],
        "client read card **** **** **** 1111 on the phone"
    );
    assert_eq!(kill["request"]["name"], "*********5432");
    assert_eq!(kill["result"]["scope"], "account:*********5432");
    // Who, as the kernel says: the ctl process and its uid, beside the self-declared `by`.
    assert_eq!(kill["peer"]["uid"], me, "{kill}");
    assert_eq!(kill["peer"]["pid"], pid, "{kill}");
    let enable = &audit[1];
    assert_eq!(enable["by"], "bob ************1111");
    assert_eq!(enable["request"]["account"], "*********5432");
    assert_eq!(enable["result"]["account"], "*********5432");
    // A card number in a client's Text(58): the order trades and no file keeps the number.
    assert_eq!(
        trade(&gw, "CLIENT1", "T1", Some(&format!("pay with {PAN}"))),
        "0"
    );
    record_with(&gw, "\"cl_ord_id\":\"T1\"");
    assert_eq!(
        files_containing(gw.dir.path(), PAN.as_bytes()),
        Vec::<String>::new()
    );
    assert_eq!(
        files_containing(gw.dir.path(), LONG_ACCOUNT.as_bytes())
            .iter()
            .filter(|f| f.ends_with("events.log") || f.ends_with("control-audit.log"))
            .count(),
        0
    );
}

#[test]
fn a_card_number_in_a_venue_reject_reason_is_masked_for_the_client_the_store_and_the_records() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let venue = format!(
        "[[venue]]\nname = \"XVEN\"\nkind = \"fix\"\naddress = \"127.0.0.1:{}\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"VENUE\"\nheartbeat_secs = 30\nreconnect_ms = 200\n",
        l.local_addr().unwrap().port()
    );
    let gw = start(&format!("{SESSIONS}{venue}"));
    let (s, _) = l.accept().unwrap();
    let mut v = Client::from_stream(s, "FIX.4.4", "VENUE", "GW");
    v.expect("A");
    v.send("A", "98=0|108=30");
    let mut c = Client::connect(gw.addr, "FIX.4.4", "CLIENT1", "GW");
    c.logon(30);
    // Wait for the venue session to be up: the first orders may be refused while it is not.
    let mut routed = None;
    for i in 0..50 {
        c.send("D", &nos(&format!("R{i}"), "AAPL", "1", "10", Some("100")));
        if field(&c.expect("8"), 150).as_deref() == Some("A") {
            routed = Some(v.expect("D"));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = routed.expect("the venue never came up");
    // The venue rejects with a card number in its reason (grouped, as people write them).
    v.send(
        "8",
        &format!(
            "37=V1|11={}|17=E1|150=8|39=8|55=AAPL|54=1|38=10|151=0|14=0|6=0|58=card 4111-1111-1111-1111 declined",
            field(&d, 11).unwrap()
        ),
    );
    let er = c.expect("8");
    assert_eq!(field(&er, 39).as_deref(), Some("8"));
    assert_eq!(
        field(&er, 58).as_deref(),
        Some("rejected by the venue: card ****-****-****-1111 declined"),
        "{}",
        show(&er)
    );
    let rec = record_with(&gw, "venue-rejected");
    assert_eq!(
        rec["text"], "rejected by the venue: card ****-****-****-1111 declined",
        "{rec}"
    );
    // Not in the session store (the ExecutionReport as sent, kept for resend), the journal,
    // the records or the event log.
    assert_eq!(
        files_containing(gw.dir.path(), b"4111-1111-1111-1111"),
        Vec::<String>::new()
    );
    // A resend repeats exactly what was sent: masked.
    let sent_seq: u64 = field(&er, 34).unwrap().parse().unwrap();
    c.send("2", &format!("7={sent_seq}|16={sent_seq}"));
    let again = c.expect("8");
    assert_eq!(field(&again, 43).as_deref(), Some("Y"), "{}", show(&again));
    assert_eq!(field(&again, 58), field(&er, 58));
    // The client keeps trading through the venue.
    c.send("D", &nos("N1", "AAPL", "1", "10", Some("100")));
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("A"));
    let d = v.expect("D");
    v.send(
        "8",
        &format!(
            "37=V2|11={}|17=E2|150=0|39=0|55=AAPL|54=1|38=10|151=10|14=0|6=0",
            field(&d, 11).unwrap()
        ),
    );
    assert_eq!(field(&c.expect("8"), 150).as_deref(), Some("0"));
}
