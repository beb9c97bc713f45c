//! The `venue` binary on 127.0.0.1:0, driven by `fixclient` and by a raw FIX client written here.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::disallowed_methods)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis::fix::{frame, Frame, Message, TimePrecision, Writer};

/// A running venue process; killed on drop. Its stdout is collected in `log`.
struct Venue {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Venue {
    fn start(args: &[&str]) -> Venue {
        let mut child = Command::new(env!("CARGO_BIN_EXE_venue"))
            .args(["--listen", "127.0.0.1:0", "--comp-id", "VENUE"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr = first
            .strip_prefix("venue listening on ")
            .unwrap_or_else(|| panic!("first line: {first}"))
            .parse()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Venue { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds every one of `needles` (the venue prints a line after it acted;
    /// the thread that collects its output may not have it yet), or as it is after 5 s.
    fn log_with(&self, needles: &[&str]) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let log = self.log();
            if needles.iter().all(|n| log.contains(n)) || std::time::Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Venue {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn fixclient_cmd(addr: SocketAddr, sender: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fixclient"));
    c.args(["--connect", &addr.to_string(), "--sender", sender])
        .args(["--target", "VENUE", "--timeout-ms", "3000"])
        .args(args);
    c
}

fn fixclient(addr: SocketAddr, sender: &str, args: &[&str]) -> (i32, String) {
    let out = fixclient_cmd(addr, sender, args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!(
        "--- {sender} stdout\n{stdout}--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

fn position(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("`{needle}` not in output:\n{hay}"))
}

#[test]
fn ack_venue_acknowledges_replaces_and_cancels() {
    let v = Venue::start(&["--behaviour", "ack"]);
    let (code, out) = fixclient(
        v.addr,
        "GW1",
        &[
            "order", "--symbol", "AAPL", "--side", "buy", "--qty", "100", "--price", "10", "--id",
            "O1", "replace", "--qty", "50", "--price", "10.5", "cancel", "status",
        ],
    );
    assert_eq!(code, 0);
    let a = position(&out, "<- ExecutionReport 11=O1 150=0(New) 39=0(New)");
    let b = position(
        &out,
        "41=O1 150=5(Replaced) 39=0(New) 55=AAPL 54=1 38=50 44=10.5",
    );
    let c = position(&out, "150=4(Canceled) 39=4(Canceled)");
    let d = position(&out, "150=I(OrderStatus) 39=4(Canceled)");
    assert!(a < b && b < c && c < d);
    let log = v.log_with(&["session GW1 logged on", "order GW1 O1: new, venue order 1"]);
    position(&log, "session GW1 logged on");
    position(&log, "order GW1 O1: new, venue order 1");
}

#[test]
fn fill_venue_fills_and_partial_venue_fills_in_slices() {
    let v = Venue::start(&["--behaviour", "fill"]);
    let (code, out) = fixclient(
        v.addr,
        "GW1",
        &[
            "order", "--symbol", "AAPL", "--side", "sell", "--qty", "10", "--price", "3",
        ],
    );
    assert_eq!(code, 0);
    position(
        &out,
        "150=F(Trade) 39=2(Filled) 55=AAPL 54=2 38=10 44=3 32=10 31=3 14=10 151=0 6=3",
    );

    let v = Venue::start(&["--behaviour", "partial", "--partial-slices", "3"]);
    let (code, out) = fixclient(
        v.addr,
        "GW1",
        &[
            "order", "--symbol", "AAPL", "--side", "buy", "--qty", "9", "--price", "3",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(out.matches("150=F(Trade)").count(), 3);
    position(&out, "39=2(Filled)");
}

#[test]
fn delayed_fills_arrive_after_the_new() {
    let v = Venue::start(&["--behaviour", "fill", "--fill-delay-ms", "1000"]);
    let started = Instant::now();
    let (code, out) = fixclient(
        v.addr,
        "GW1",
        &[
            "order", "--symbol", "AAPL", "--side", "buy", "--qty", "1", "--price", "3", "sleep",
            "2000",
        ],
    );
    assert_eq!(code, 0);
    let new = position(&out, "150=0(New)");
    let fill = position(&out, "150=F(Trade)");
    assert!(new < fill);
    assert!(started.elapsed() >= Duration::from_millis(2000));
    // Without waiting, the client logs out before the fill.
    let (_, out) = fixclient(
        v.addr,
        "GW2",
        &[
            "order", "--symbol", "AAPL", "--side", "buy", "--qty", "1", "--price", "3",
        ],
    );
    position(&out, "150=0(New)");
    assert!(!out.contains("150=F"), "{out}");
}

#[test]
fn two_sessions_cross_in_book_mode() {
    let v = Venue::start(&["--behaviour", "book"]);
    let buyer = fixclient_cmd(
        v.addr,
        "GW1",
        &[
            "order", "--symbol", "AAPL", "--side", "buy", "--qty", "100", "--price", "10", "--id",
            "B1", "sleep", "2500",
        ],
    )
    .stdout(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the buy order rests.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !v.log().contains("order GW1 B1: new") {
        assert!(Instant::now() < deadline, "buy order never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (code, out) = fixclient(
        v.addr,
        "GW2",
        &[
            "order", "--symbol", "AAPL", "--side", "sell", "--qty", "60", "--price", "9", "--id",
            "S1",
        ],
    );
    assert_eq!(code, 0);
    position(
        &out,
        "11=S1 150=F(Trade) 39=2(Filled) 55=AAPL 54=2 38=60 44=9 32=60 31=10",
    );
    let b = buyer.wait_with_output().unwrap();
    let bout = String::from_utf8_lossy(&b.stdout);
    println!("--- GW1\n{bout}");
    assert_eq!(b.status.code(), Some(0));
    position(&bout, "11=B1 150=F(Trade) 39=1(PartiallyFilled)");
    position(&bout, "32=60 31=10 14=60 151=40");
}

/// A FIX 4.4 client with its own sequence numbers, for what fixclient does not do.
struct Raw {
    stream: TcpStream,
    sender: String,
    seq: u64,
    buf: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr, sender: &str, seq: u64) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Raw {
            stream,
            sender: sender.into(),
            seq,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, msg_type: &str, fields: &str) {
        let mut buf = vec![0u8; 4096];
        let mut w = Writer::new(&mut buf, b"FIX.4.4", msg_type.as_bytes());
        w.uint(34, self.seq)
            .str(49, self.sender.as_bytes())
            .timestamp(52, portcullis::clock::system_utc(), TimePrecision::Millis)
            .str(56, b"VENUE");
        for f in fields.split('|').filter(|f| !f.is_empty()) {
            let (t, v) = f.split_once('=').unwrap();
            w.str(t.parse().unwrap(), v.as_bytes());
        }
        let r = w.finish().unwrap();
        self.stream.write_all(&buf[r]).unwrap();
        self.seq += 1;
    }

    /// The next message that is not a Heartbeat.
    fn recv(&mut self) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Frame::Message { len, .. } = frame(&self.buf, 1 << 20) {
                let m: Vec<u8> = self.buf.drain(..len).collect();
                if field(&m, 35) != "0" {
                    return m;
                }
                continue;
            }
            assert!(
                Instant::now() < deadline,
                "nothing from the venue within 5 s"
            );
            let mut tmp = [0u8; 8192];
            match self.stream.read(&mut tmp) {
                Ok(0) => panic!("venue closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(_) => {}
            }
        }
    }
}

fn field(msg: &[u8], tag: i32) -> String {
    let m = Message::decode(msg).unwrap();
    String::from_utf8_lossy(m.get(tag).unwrap_or_default()).into_owned()
}

fn start_in(dir: &Path) -> Venue {
    Venue::start(&["--behaviour", "fill", "--data-dir", dir.to_str().unwrap()])
}

#[test]
fn resend_request_is_served_after_a_restart_with_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let v = start_in(dir.path());
    let mut c = Raw::connect(v.addr, "GW1", 1);
    c.send("A", "98=0|108=30|141=Y");
    assert_eq!(field(&c.recv(), 35), "A");
    c.send(
        "D",
        "11=R1|21=1|55=AAPL|54=1|60=20240101-00:00:00|38=5|40=2|44=7",
    );
    let new = c.recv();
    assert_eq!(
        (field(&new, 150).as_str(), field(&new, 34).as_str()),
        ("0", "2")
    );
    let fill = c.recv();
    assert_eq!(
        (field(&fill, 150).as_str(), field(&fill, 34).as_str()),
        ("F", "3")
    );
    drop(c);
    drop(v); // SIGKILL: no Logout, nothing flushed by the venue itself

    let v = start_in(dir.path());
    let mut c = Raw::connect(v.addr, "GW1", 3);
    c.send("A", "98=0|108=30");
    let logon = c.recv();
    assert_eq!(
        (field(&logon, 35).as_str(), field(&logon, 34).as_str()),
        ("A", "4")
    );
    c.send("2", "7=1|16=0");
    let gap = c.recv();
    assert_eq!(
        (field(&gap, 35).as_str(), field(&gap, 123).as_str()),
        ("4", "Y")
    );
    for (seq, exec_type) in [("2", "0"), ("3", "F")] {
        let m = c.recv();
        assert_eq!(field(&m, 35), "8");
        assert_eq!(field(&m, 34), seq);
        assert_eq!(field(&m, 43), "Y");
        assert_eq!(field(&m, 11), "R1");
        assert_eq!(field(&m, 150), exec_type);
    }
    let log = v.log_with(&["session GW1 logged on from", "(next in 4, next out 5"]);
    position(&log, "session GW1 logged on from");
    position(&log, "(next in 4, next out 5");
}

#[test]
fn wrong_target_comp_id_is_refused() {
    let v = Venue::start(&[]);
    let out = Command::new(env!("CARGO_BIN_EXE_fixclient"))
        .args(["--connect", &v.addr.to_string(), "--sender", "GW1"])
        .args(["--target", "ELSEWHERE", "--timeout-ms", "3000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let deadline = Instant::now() + Duration::from_secs(2);
    while !v.log().contains("TargetCompID is not ours") {
        assert!(Instant::now() < deadline, "{}", v.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_logs_sessions_out() {
    let mut v = Venue::start(&["--behaviour", "ack"]);
    let client = fixclient_cmd(v.addr, "GW1", &["sleep", "5000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !v.log().contains("session GW1 logged on") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = v.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = v.child.wait().unwrap();
    assert!(status.success());
    let out = client.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}{stderr}");
    position(&stdout, "<- Logout 58=venue shutting down");
    assert_eq!(out.status.code(), Some(2));
    position(&stderr, "logged out by VENUE: venue shutting down");
}

/// The whole chain with real processes and sockets: fixclient → gateway → FIX session → venue.
#[test]
fn gateway_routes_to_the_venue_tool_over_fix() {
    let venue = Venue::start(&["--behaviour", "fill"]);
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[gateway]\nbusy_poll = false\ndata_dir = {:?}\nsegment_bytes = 4194304\nmax_orders = 4096\nflush_interval_ms = 0\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n[[session]]\nbegin_string = \"FIX.4.4\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"CLIENT1\"\ndefault_account = \"ACC1\"\n\n[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"ack\"\n\n[[venue]]\nname = \"XVEN\"\nkind = \"fix\"\naddress = \"{}\"\nour_comp_id = \"GW\"\ntheir_comp_id = \"VENUE\"\nreconnect_ms = 100\n{}",
        dir.path().display().to_string(),
        venue.addr,
        portcullis::config::risk::permissive_toml(&["ACC1"], &["AAPL", "MSFT", "IBM"])
    );
    let cfg = portcullis::config::Config::parse(&text, "test.toml").unwrap();
    let running = portcullis::gateway::start(&cfg, portcullis::clock::Clock::fast()).unwrap();
    let gw = running.handle.listen_addrs[0];
    // The gateway logs on to the venue by itself.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !venue.log().contains("logged on") {
        assert!(
            std::time::Instant::now() < deadline,
            "gateway never logged on to the venue: {}",
            venue.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_fixclient"))
        .args([
            "--connect",
            &gw.to_string(),
            "--sender",
            "CLIENT1",
            "--target",
            "GW",
            "--timeout-ms",
            "5000",
        ])
        .args([
            "order", "--symbol", "IBM", "--side", "buy", "--qty", "7", "--price", "120", "--dest",
            "XVEN",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("150=0(New)"), "{stdout}");
    assert!(stdout.contains("39=2(Filled)"), "{stdout}");
    assert!(
        venue.log().contains("fill 7 @ 120"),
        "the order reached the venue: {}",
        venue.log()
    );
    running.stop();
}
