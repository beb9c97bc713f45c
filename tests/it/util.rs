//! Shared helpers: start a gateway in-process on 127.0.0.1:0, and a small FIX test client that
//! speaks real TCP and checks what comes back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use portcullis::clock::Clock;
use portcullis::config::Config;
use portcullis::fix::{frame, Frame, Message, TimePrecision, Writer};
use portcullis::gateway::Running;

/// Permissive pre-trade risk for tests about other things: accounts ACC1, ACC2, ACC42 and the
/// symbols the tests trade, with fixed reference prices and limits far above what they send.
/// [`config`] adds it unless the test configures its own `[[account]]`s.
pub fn permissive_risk() -> String {
    portcullis::config::risk::permissive_toml(
        &["ACC1", "ACC2", "ACC42"],
        &["AAPL", "MSFT", "VOD", "IBM"],
    )
}

/// A gateway config: one listener on an ephemeral port, blocking mode, the given sessions and
/// venues appended as TOML (plus [`permissive_risk`] when `extra` has no `[[account]]`).
pub fn config(data_dir: &Path, extra: &str) -> Config {
    let text = config_text(data_dir, extra);
    Config::parse(&text, "test.toml").unwrap_or_else(|e| panic!("test config: {e}"))
}

/// The TOML text [`config`] parses (for tests that hand a file to the CLI).
pub fn config_text(data_dir: &Path, extra: &str) -> String {
    let risk = if extra.contains("[[account]]") {
        String::new()
    } else {
        permissive_risk()
    };
    format!(
        "[gateway]\nbusy_poll = false\nlogon_timeout_ms = 1500\nsegment_bytes = 4194304\nmax_orders = 4096\nmax_message_bytes = 4096\nrecv_buffer_bytes = 16384\nsend_buffer_bytes = 1048576\nflush_interval_ms = 0\ndata_dir = {:?}\n\n[[listener]]\naddress = \"127.0.0.1:0\"\n\n{}\n{}",
        data_dir.display().to_string(),
        extra,
        risk
    )
}

/// Sessions used by most tests: CLIENT1/CLIENT2 on FIX.4.4, CLIENT42 on FIX.4.2.
pub const SESSIONS: &str = r#"
[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT1"
default_account = "ACC1"

[[session]]
begin_string = "FIX.4.4"
our_comp_id = "GW"
their_comp_id = "CLIENT2"
default_account = "ACC2"
cancel_on_disconnect = true

[[session]]
begin_string = "FIX.4.2"
our_comp_id = "GW"
their_comp_id = "CLIENT42"
default_account = "ACC42"
"#;

pub fn sim(behaviour: &str) -> String {
    format!("[[venue]]\nname = \"SIM\"\nkind = \"sim\"\nbehaviour = \"{behaviour}\"\n")
}

/// A gateway running in this process.
pub struct Gw {
    /// Held for its Drop, which stops the gateway.
    #[allow(dead_code)]
    pub running: Running,
    pub addr: SocketAddr,
    /// Held for its Drop, which deletes the data folder.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
}

pub fn start(extra: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    start_in(dir, extra)
}

pub fn start_in(dir: tempfile::TempDir, extra: &str) -> Gw {
    let cfg = config(dir.path(), extra);
    let running =
        portcullis::gateway::start(&cfg, Clock::fast()).unwrap_or_else(|e| panic!("start: {e}"));
    let addr = running.handle.listen_addrs[0];
    Gw { running, addr, dir }
}

/// A byte stream the test client speaks FIX over: a `TcpStream`, or TLS over one.
pub trait Duplex: Read + Write + Send {}
impl<T: Read + Write + Send> Duplex for T {}

/// A FIX client over a real socket. Tracks its own sequence numbers.
pub struct Client {
    pub stream: Box<dyn Duplex>,
    pub begin: &'static str,
    pub sender: String,
    pub target: String,
    pub seq: u64,
    buf: Vec<u8>,
    pub received: Vec<Vec<u8>>,
}

pub fn now_utc() -> portcullis::model::Nanos {
    portcullis::clock::system_utc()
}

impl Client {
    pub fn connect(addr: SocketAddr, begin: &'static str, sender: &str, target: &str) -> Client {
        Client::from_stream(TcpStream::connect(addr).unwrap(), begin, sender, target)
    }

    /// Builds a message with a standard header and `fields` (`tag=value` separated by `|`).
    pub fn build(&mut self, msg_type: &str, fields: &str) -> Vec<u8> {
        let mut buf = vec![0u8; 8192];
        let mut w = Writer::new(&mut buf, self.begin.as_bytes(), msg_type.as_bytes());
        w.uint(34, self.seq)
            .str(49, self.sender.as_bytes())
            .timestamp(52, now_utc(), TimePrecision::Millis)
            .str(56, self.target.as_bytes());
        for f in fields.split('|').filter(|f| !f.is_empty()) {
            let (t, v) = f.split_once('=').unwrap();
            w.str(t.parse().unwrap(), v.as_bytes());
        }
        let r = w.finish().unwrap();
        self.seq += 1;
        buf[r].to_vec()
    }

    pub fn send(&mut self, msg_type: &str, fields: &str) {
        let m = self.build(msg_type, fields);
        self.send_raw(&m);
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn logon(&mut self, heartbeat_secs: u32) -> Vec<u8> {
        self.send("A", &format!("98=0|108={heartbeat_secs}"));
        self.expect("A")
    }

    /// Next message from the gateway, or `None` after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            match frame(&self.buf, 1 << 20) {
                Frame::Message {
                    len,
                    body_length_ok,
                    checksum_ok,
                } => {
                    assert!(
                        body_length_ok && checksum_ok,
                        "gateway sent a malformed message: {}",
                        show(&self.buf[..len])
                    );
                    let m: Vec<u8> = self.buf.drain(..len).collect();
                    self.received.push(m.clone());
                    return Some(m);
                }
                Frame::Skip { len } => panic!("gateway sent garbage: {}", show(&self.buf[..len])),
                Frame::TooLarge => panic!("gateway sent an oversized message"),
                Frame::Incomplete => {}
            }
            if Instant::now() >= deadline {
                return None;
            }
            let mut tmp = [0u8; 65536];
            match self.stream.read(&mut tmp) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next message, which must be of `msg_type`; skips heartbeats unless asked for.
    pub fn expect(&mut self, msg_type: &str) -> Vec<u8> {
        loop {
            let m = self
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("no {msg_type} within 5 s"));
            let t = field(&m, 35).unwrap();
            if t == "0" && msg_type != "0" {
                continue;
            }
            assert_eq!(t, msg_type, "expected 35={msg_type}, got {}", show(&m));
            return m;
        }
    }

    /// True when the gateway closed the connection within `timeout`.
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut tmp = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut tmp) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return true,
            }
        }
        false
    }

    pub fn logout(&mut self) {
        self.send("5", "");
        self.expect("5");
        assert!(self.closed_within(Duration::from_secs(5)));
    }
}

/// The value of `tag` in a raw message.
pub fn field(msg: &[u8], tag: i32) -> Option<String> {
    let m = Message::decode(msg).ok()?;
    m.get(tag).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A message with SOH shown as `|`.
pub fn show(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg).replace('\x01', "|")
}

/// A NewOrderSingle body.
pub fn nos(cl: &str, symbol: &str, side: &str, qty: &str, price: Option<&str>) -> String {
    let mut s = format!("11={cl}|55={symbol}|54={side}|38={qty}|60=20240101-00:00:00");
    match price {
        Some(p) => s.push_str(&format!("|40=2|44={p}")),
        None => s.push_str("|40=1"),
    }
    s
}

impl Client {
    /// The next non-heartbeat message, which must be one of `types`.
    pub fn expect_any(&mut self, types: &[&str]) -> Vec<u8> {
        loop {
            let m = self
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("no {types:?} within 5 s"));
            let t = field(&m, 35).unwrap();
            if t == "0" && !types.contains(&"0") {
                continue;
            }
            assert!(
                types.contains(&t.as_str()),
                "expected one of {types:?}, got {}",
                show(&m)
            );
            return m;
        }
    }
}

impl Client {
    /// Wraps a connection the test accepted (the test plays a venue).
    pub fn from_stream(
        stream: TcpStream,
        begin: &'static str,
        sender: &str,
        target: &str,
    ) -> Client {
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Client::over(Box::new(stream), begin, sender, target)
    }

    /// A client over any stream (TLS tests wrap the socket); the socket must already have a
    /// short read timeout.
    pub fn over(
        stream: Box<dyn Duplex>,
        begin: &'static str,
        sender: &str,
        target: &str,
    ) -> Client {
        Client {
            stream,
            begin,
            sender: sender.into(),
            target: target.into(),
            seq: 1,
            buf: Vec::new(),
            received: Vec::new(),
        }
    }
}

/// Like [`start_in`], with the gateway reading time from `clock` (e.g. a manual clock).
pub fn start_with_clock(dir: tempfile::TempDir, extra: &str, clock: Clock) -> Gw {
    let cfg = config(dir.path(), extra);
    let running = portcullis::gateway::start(&cfg, clock).unwrap_or_else(|e| panic!("start: {e}"));
    let addr = running.handle.listen_addrs[0];
    Gw { running, addr, dir }
}

impl Client {
    /// A Logon signed with key `key_id` and `secret` (fix-specs/SIGNED-LOGON.md), SendingTime
    /// `at`, with ResetSeqNumFlag=Y (every test connection starts again at 1).
    pub fn signed_logon_bytes(
        &mut self,
        key_id: &str,
        secret: &[u8],
        at: portcullis::model::Nanos,
    ) -> Vec<u8> {
        let mut ts = [0u8; 32];
        let n = portcullis::fix::encode::write_timestamp(&mut ts, at, TimePrecision::Millis);
        let seq = self.seq.to_string();
        let pre = portcullis::auth::logon::prehash(
            &ts[..n],
            b"A",
            seq.as_bytes(),
            self.sender.as_bytes(),
            self.target.as_bytes(),
            key_id.as_bytes(),
        );
        let sig = portcullis::auth::logon::sign(secret, &pre);
        let mut buf = vec![0u8; 1024];
        let mut w = Writer::new(&mut buf, self.begin.as_bytes(), b"A");
        w.uint(34, self.seq)
            .str(49, self.sender.as_bytes())
            .timestamp(52, at, TimePrecision::Millis)
            .str(56, self.target.as_bytes())
            .uint(98, 0)
            .uint(108, 30)
            .str(141, b"Y")
            .str(553, key_id.as_bytes())
            .uint(95, sig.len() as u64)
            .str(96, sig.as_bytes());
        let r = w.finish().unwrap();
        self.seq += 1;
        buf[r].to_vec()
    }

    /// Sends a signed Logon now and expects the Logon answer.
    pub fn signed_logon(&mut self, key_id: &str, secret: &[u8]) -> Vec<u8> {
        let m = self.signed_logon_bytes(key_id, secret, now_utc());
        self.send_raw(&m);
        self.expect("A")
    }
}

/// Spawns `portcullis run` (`cmd` holds its arguments) with stdout piped and reads the first
/// line, which ends with the listener's address: the child, the rest of its stdout, the address.
pub fn spawn_run(
    cmd: &mut std::process::Command,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    SocketAddr,
) {
    use std::io::BufRead;
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr: SocketAddr = first.rsplit(' ').next().unwrap().parse().unwrap();
    (child, lines, addr)
}

/// The event log of the data folder `dir` (empty before the journal thread wrote it).
pub fn events(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("events.log")).unwrap_or_default()
}

/// Waits (at most 5 s) until events.log contains `needle`: the journal thread writes it
/// behind the gateway thread.
pub fn wait_event(dir: &Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if events(dir).contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no event {needle:?} in:\n{}", events(dir));
}

/// Base64 text (a secret file's) to bytes.
pub fn b64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap()
}

/// A data folder and a config file with `[auth]` required (file master key and key store in
/// the data folder, applied within 50 ms), keys managed through the real `portcullis keys`
/// CLI. Secrets and the config live in `secrets`, outside the data folder, so the CLI and a
/// restarted gateway share them.
pub struct KeyEnv {
    pub dir: tempfile::TempDir,
    pub secrets: tempfile::TempDir,
    pub cfg_path: std::path::PathBuf,
    pub extra: String,
}

impl KeyEnv {
    /// `before` (sessions, venues) and `after` (e.g. `[[account]]`s) go around `[auth]`.
    pub fn new(before: &str, after: &str) -> KeyEnv {
        let dir = tempfile::tempdir().unwrap();
        let secrets = tempfile::tempdir().unwrap();
        let extra = format!(
            "{before}[auth]\nkey_store = \"keys.store\"\nmaster_key = {{ provider = \"file\", path = \"master.key\" }}\nrequired = true\npoll_ms = 50\n\n{after}"
        );
        let cfg_path = secrets.path().join("portcullis.toml");
        std::fs::write(&cfg_path, config_text(dir.path(), &extra)).unwrap();
        KeyEnv {
            dir,
            secrets,
            cfg_path,
            extra,
        }
    }

    /// Runs `portcullis keys ARGS --config ...`.
    pub fn keys_raw(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&self.cfg_path)
            .output()
            .unwrap()
    }

    /// [`KeyEnv::keys_raw`] that must succeed; its stdout.
    pub fn keys(&self, args: &[&str]) -> String {
        let out = self.keys_raw(args);
        assert!(
            out.status.success(),
            "keys {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Adds key `id` bound to `comp_id`, allowed from 127.0.0.1, with `args`; its secret.
    pub fn add(&self, id: &str, comp_id: &str, args: &[&str]) -> Vec<u8> {
        let path = self.secrets.path().join(format!("{id}.secret"));
        let mut all = vec![
            "add",
            id,
            "--comp-id",
            comp_id,
            "--allow",
            "127.0.0.1",
            "--secret-out",
            path.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        self.keys(&all);
        b64(&std::fs::read_to_string(&path).unwrap())
    }

    /// Starts the gateway in this process; the key CLI keeps working through `self`.
    pub fn start(&mut self) -> Gw {
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        start_in(dir, &self.extra)
    }
}

/// Drives a rustls handshake (either side) over the blocking `tcp` (with a short read timeout)
/// until it completes, fails (rustls's error) or `timeout` passes.
pub fn complete_handshake<D>(
    conn: &mut rustls::ConnectionCommon<D>,
    tcp: &mut TcpStream,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        match conn.complete_io(tcp) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
        if Instant::now() > deadline {
            return Err("handshake timed out".into());
        }
    }
    Ok(())
}

/// Sends `signal` (`"HUP"`, `"TERM"`, …) to `child` with kill(1); panics if it cannot.
pub fn signal(child: &std::process::Child, signal: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{signal} {} failed", child.id());
}

/// The audit trail's records under `data_dir/audit`, read while the gateway runs: polled until
/// `done(records)` or 10 s (the trail thread writes within milliseconds and flushes each pass;
/// a line still being written is skipped).
pub fn trail_records(
    data_dir: &std::path::Path,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(data_dir.join("audit"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        let all: Vec<serde_json::Value> = files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect::<Vec<_>>()
            })
            .collect();
        if done(&all) || std::time::Instant::now() > deadline {
            return all;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
