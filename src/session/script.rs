//! Test-only: a scenario interpreter in the spirit of QuickFIX's acceptance `.def` files, driving
//! a [`Session`] exactly as the engine does (framing with `fix::frame`, decoding, `on_garbled`,
//! `take_queued` draining, a manual clock and `on_timer`).
//!
//! One command per line; `|` stands for SOH; `#` starts a comment line.
//!
//! | line | meaning |
//! |---|---|
//! | `CONNECT` | a new connection (implicit at the start): its first message goes through `check_first_message` |
//! | `I<fields>` | the client sends a message; 9 and 10 are filled in unless given (a given 9/10 is kept, for garbling) |
//! | `RAW<bytes>` | the client sends bytes as written (no filling) |
//! | `I2<fields>` | first message of a *second* connection for the same session: it must be refused |
//! | `E<fields>` | the next message we send; every tag=value must match except 9, 10 (ignored) and 52, 122 (format only); `<ANY>` matches any value. Waits (advancing the clock, running `on_timer`) up to 120 s if nothing is pending |
//! | `T+<ms>` | advance the clock, calling `on_timer` every 10 ms |
//! | `NOTHING` | nothing pending and still connected |
//! | `DISCONNECT [Reason]` | we closed the connection (waits like `E`); optionally the `DisconnectReason` |
//! | `IDISCONNECT` | the client closes the connection |
//! | `SEND<35=X|fields>` | the engine sends an application message through `send_app` |
//! | `SEQ <sender> <target>` | next outbound / expected inbound MsgSeqNum |
//! | `LOGON` / `LOGOUT` | the engine calls `start_logon` / `logout` |
//! | `ECHO on/off` | the test application echoes application messages (default on) |
//!
//! In `E` lines any `<TIME…>` value matches any UTCTimestamp.
//! `<TIME>`, `<TIME+n>`, `<TIME-n>` expand to the clock ± n seconds as a UTCTimestamp.
//! The test application answers every application message by echoing its body through
//! `send_app` (like QuickFIX's test server), except a PossResend <97>=Y message whose ClOrdID
//! <11> it has seen (19a).

use std::collections::VecDeque;

use super::{DisconnectReason, Inbound, MemoryStore, OutBuf, Session, SessionConfig};
use crate::fix::encode::write_timestamp;
use crate::fix::frame::{frame, Frame};
use crate::fix::testing::{fix_message, with_trailer};
use crate::fix::{Message, TimePrecision};
use crate::model::{CompId, Nanos};

/// 2024-03-01 12:00:00 UTC.
pub(crate) const START: Nanos = Nanos::from_secs(1_709_294_400);
const MAX_MSG: usize = 64 << 10;
const STEP_MS: u64 = 10;
const WAIT_MS: u64 = 120_000;

/// The acceptor the QuickFIX scripts talk to: we are ISLD, the client is TW.
pub(crate) fn acceptor(begin_string: crate::fix::BeginString) -> SessionConfig {
    SessionConfig {
        begin_string,
        our_comp_id: CompId::new(b"ISLD").unwrap(),
        their_comp_id: CompId::new(b"TW").unwrap(),
        // QuickFIX's acceptance server starts every connection from sequence number 1.
        reset_on_disconnect: true,
        queue_bytes: 64 << 10,
        scratch_bytes: 8 << 10,
        ..SessionConfig::default()
    }
}

pub(crate) struct Runner {
    pub(crate) session: Session<MemoryStore>,
    pub(crate) now: Nanos,
    out: OutBuf,
    rx: Vec<u8>,
    outbox: VecDeque<Vec<u8>>,
    disconnected: Option<DisconnectReason>,
    first_message: bool,
    echo: bool,
    seen_cl_ord_ids: Vec<Vec<u8>>,
    line: usize,
    text: String,
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\x01', "|")
}

impl Runner {
    pub(crate) fn new(cfg: SessionConfig, out_bytes: usize) -> Runner {
        Runner {
            session: Session::new(cfg, MemoryStore::new()),
            now: START,
            out: OutBuf::with_capacity(out_bytes),
            rx: Vec::new(),
            outbox: VecDeque::new(),
            disconnected: None,
            first_message: true,
            echo: true,
            seen_cl_ord_ids: Vec::new(),
            line: 0,
            text: String::new(),
        }
    }

    #[track_caller]
    fn fail(&self, what: String) -> ! {
        panic!("script line {}: `{}`: {what}", self.line, self.text)
    }

    pub(crate) fn run(&mut self, script: &str) {
        for (i, raw) in script.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            self.line = i + 1;
            self.text = l.to_string();
            self.step(l);
        }
    }

    fn step(&mut self, l: &str) {
        if l == "CONNECT" {
            if self.disconnected.is_none() && !self.first_message {
                self.fail("CONNECT while still connected".into());
            }
            self.rx.clear();
            self.outbox.clear();
            self.disconnected = None;
            self.first_message = true;
        } else if l == "NOTHING" {
            self.collect();
            if let Some(m) = self.outbox.front() {
                self.fail(format!("expected nothing, we sent {}", show(m)));
            }
            if let Some(r) = self.disconnected {
                self.fail(format!("expected nothing, we disconnected: {r:?}"));
            }
        } else if let Some(rest) = l.strip_prefix("DISCONNECT") {
            self.wait(|r| r.disconnected.is_some() || !r.outbox.is_empty());
            if let Some(m) = self.outbox.front() {
                self.fail(format!("expected disconnect, we sent {}", show(m)));
            }
            let Some(reason) = self.disconnected else {
                self.fail("still connected".into());
            };
            let want = rest.trim();
            if !want.is_empty() && format!("{reason:?}") != want {
                self.fail(format!("disconnect reason {reason:?}"));
            }
            self.session.on_disconnect(self.now);
        } else if l == "IDISCONNECT" {
            self.session.on_disconnect(self.now);
            self.disconnected = Some(DisconnectReason::LogoutReceived);
            self.outbox.clear();
        } else if let Some(ms) = l.strip_prefix("T+") {
            let ms: u64 = ms
                .trim()
                .parse()
                .unwrap_or_else(|_| self.fail("bad T+".into()));
            self.advance(ms);
        } else if let Some(rest) = l.strip_prefix("SEQ ") {
            let v: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            let got = (
                self.session.next_sender_seq(),
                self.session.next_target_seq(),
            );
            if got != (v[0], v[1]) {
                self.fail(format!("sequence numbers (sender, target) = {got:?}"));
            }
        } else if l == "LOGON" {
            self.first_message = false;
            self.session.start_logon(self.now, &mut self.out);
            self.collect();
        } else if l == "LOGOUT" {
            self.session.logout(b"bye", self.now, &mut self.out);
            self.collect();
        } else if let Some(rest) = l.strip_prefix("ECHO ") {
            self.echo = rest.trim() == "on";
        } else if let Some(rest) = l.strip_prefix("SEND") {
            let fields = self.expand(rest);
            let (ty, body) = fields
                .strip_prefix("35=")
                .and_then(|t| t.split_once('|'))
                .unwrap_or_else(|| self.fail("SEND needs 35=X|...".into()));
            let body = body.to_string();
            let r = self
                .session
                .send_app(ty.as_bytes(), self.now, &mut self.out, |w| {
                    for f in body.split('|').filter(|f| !f.is_empty()) {
                        let (t, v) = f.split_once('=').unwrap();
                        w.str(t.parse().unwrap(), v.as_bytes());
                    }
                });
            if r.is_err() {
                self.fail(format!("send_app: {r:?}"));
            }
            self.collect();
        } else if let Some(rest) = l.strip_prefix("I2") {
            let bytes = self.fill(rest);
            let m = Message::decode(&bytes).unwrap();
            let state = self.session.state();
            if self.session.check_first_message(&m).is_ok() {
                self.fail("second connection was accepted".into());
            }
            assert_eq!(self.session.state(), state);
        } else if let Some(rest) = l.strip_prefix("RAW") {
            let bytes = self.expand(rest).replace('|', "\x01").into_bytes();
            self.receive(&bytes);
        } else if let Some(rest) = l.strip_prefix('I') {
            let bytes = self.fill(rest);
            self.receive(&bytes);
        } else if let Some(rest) = l.strip_prefix('E') {
            self.expect(rest);
        } else {
            self.fail("unknown command".into());
        }
    }

    fn expand(&self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(p) = rest.find("<TIME") {
            out.push_str(&rest[..p]);
            let end = rest[p..].find('>').unwrap() + p;
            let offset: i64 = match &rest[p + 5..end] {
                "" => 0,
                o => o.trim_start_matches('+').parse().unwrap(),
            };
            let t = Nanos((self.now.0 as i64 + offset * 1_000_000_000) as u64);
            let mut buf = [0u8; 27];
            let n = write_timestamp(&mut buf, t, TimePrecision::Millis);
            out.push_str(std::str::from_utf8(&buf[..n]).unwrap());
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Expands placeholders and fills BodyLength <9> / CheckSum <10> unless the line gives them.
    fn fill(&self, s: &str) -> Vec<u8> {
        let s = self.expand(s);
        let mut fields: Vec<&str> = s.split('|').filter(|f| !f.is_empty()).collect();
        let has =
            |fields: &[&str], tag: &str| fields.iter().any(|f| f.split('=').next() == Some(tag));
        let has_9 = has(&fields, "9");
        let has_10 = has(&fields, "10");
        if !has_9 {
            fields.insert(1.min(fields.len()), "9=0");
        }
        let mut msg = fields.join("\x01");
        msg.push('\x01');
        match (has_9, has_10) {
            (_, true) => msg.into_bytes(),
            (false, false) => with_trailer(msg.as_bytes()),
            (true, false) => fix_message(msg.as_bytes(), false),
        }
    }

    /// Bytes from the client, through the framer as the engine reads them.
    fn receive(&mut self, bytes: &[u8]) {
        if let Some(r) = self.disconnected {
            self.fail(format!("client sends on a connection we closed ({r:?})"));
        }
        self.rx.extend_from_slice(bytes);
        loop {
            match frame(&self.rx, MAX_MSG) {
                Frame::Incomplete => break,
                Frame::Skip { len } => {
                    self.rx.drain(..len);
                }
                Frame::TooLarge => {
                    self.rx.clear();
                    self.disconnected = Some(DisconnectReason::InvalidLogon);
                    break;
                }
                Frame::Message {
                    len,
                    body_length_ok,
                    checksum_ok,
                } => {
                    let m: Vec<u8> = self.rx.drain(..len).collect();
                    let decoded = if body_length_ok && checksum_ok {
                        Message::decode(&m).ok()
                    } else {
                        None
                    };
                    match decoded {
                        Some(msg) => self.deliver(&msg),
                        None if self.first_message => {
                            // Engine: an unreadable first frame cannot be routed to a session.
                            self.disconnected = Some(DisconnectReason::InvalidLogon);
                        }
                        None => self.session.on_garbled(),
                    }
                    if self.disconnected.is_some() {
                        break;
                    }
                }
            }
        }
        self.collect();
    }

    fn deliver(&mut self, msg: &Message<'_>) {
        if self.first_message {
            self.first_message = false;
            if let Err(r) = self.session.check_first_message(msg) {
                self.disconnected = Some(r);
                return;
            }
        }
        let r = self.session.on_message(msg, self.now, &mut self.out);
        self.handle(r, msg);
        // Engine: drain what the message put back in sequence.
        let mut scratch = vec![0u8; MAX_MSG];
        while self.disconnected.is_none() {
            let Some(n) = self.session.take_queued(&mut scratch) else {
                break;
            };
            let bytes = scratch[..n].to_vec();
            let m = Message::decode(&bytes).unwrap();
            let r = self.session.on_message(&m, self.now, &mut self.out);
            self.handle(r, &m);
        }
    }

    fn handle(&mut self, r: Inbound, msg: &Message<'_>) {
        match r {
            Inbound::Handled | Inbound::LoggedOn => {}
            Inbound::Disconnect(reason) => self.disconnected = Some(reason),
            Inbound::Application => self.application(msg),
        }
    }

    /// The test application: echo, deduplicating PossResend by ClOrdID.
    fn application(&mut self, msg: &Message<'_>) {
        if !self.echo {
            return;
        }
        if let Some(id) = msg.get(11) {
            let seen = self.seen_cl_ord_ids.iter().any(|s| s == id);
            if seen && msg.get(97) == Some(b"Y") {
                return;
            }
            self.seen_cl_ord_ids.push(id.to_vec());
        }
        let fields: Vec<(i32, Vec<u8>)> = msg
            .fields()
            .iter()
            .filter(|f| ![8, 9, 35, 34, 49, 52, 56, 43, 122, 10].contains(&f.tag) && f.tag > 0)
            .map(|f| (f.tag, msg.value(f).to_vec()))
            .collect();
        let r = self
            .session
            .send_app(msg.msg_type_bytes(), self.now, &mut self.out, |w| {
                for (t, v) in &fields {
                    w.str(*t, v);
                }
            });
        assert!(r.is_ok(), "echo failed: {r:?}");
    }

    /// Moves what the session wrote into the outbox, one message per entry.
    fn collect(&mut self) {
        let mut pending = self.out.pending();
        while !pending.is_empty() {
            match frame(pending, MAX_MSG) {
                Frame::Message {
                    len,
                    body_length_ok: true,
                    checksum_ok: true,
                } => {
                    self.outbox.push_back(pending[..len].to_vec());
                    pending = &pending[len..];
                }
                other => panic!("we wrote a bad frame ({other:?}): {}", show(pending)),
            }
        }
        self.out.clear();
    }

    fn tick(&mut self, ms: u64) {
        self.now = self.now.add(Nanos::from_millis(ms));
        if self.disconnected.is_none() {
            if let Some(r) = self.session.on_timer(self.now, &mut self.out) {
                self.disconnected = Some(r);
            }
        }
        self.collect();
    }

    fn advance(&mut self, ms: u64) {
        let mut left = ms;
        while left > 0 {
            let s = left.min(STEP_MS);
            self.tick(s);
            left -= s;
        }
    }

    fn wait(&mut self, done: impl Fn(&Runner) -> bool) {
        self.collect();
        let mut waited = 0;
        while !done(self) && waited < WAIT_MS {
            self.tick(STEP_MS);
            waited += STEP_MS;
        }
    }

    fn expect(&mut self, fields: &str) {
        self.wait(|r| !r.outbox.is_empty() || r.disconnected.is_some());
        let Some(actual) = self.outbox.pop_front() else {
            self.fail(format!(
                "nothing sent (disconnected: {:?})",
                self.disconnected
            ));
        };
        let m = Message::decode(&actual).unwrap();
        let mut got: Vec<(String, String)> = m
            .fields()
            .iter()
            .filter(|f| f.tag != 9 && f.tag != 10)
            .map(|f| {
                (
                    f.tag.to_string(),
                    String::from_utf8_lossy(m.value(f)).into_owned(),
                )
            })
            .collect();
        for f in fields.split('|').filter(|f| !f.is_empty()) {
            let (tag, want) = f
                .split_once('=')
                .unwrap_or_else(|| self.fail(format!("bad field {f}")));
            if tag == "9" || tag == "10" {
                continue;
            }
            let Some(i) = got.iter().position(|(t, _)| t == tag) else {
                self.fail(format!("tag {tag} missing in {}", show(&actual)));
            };
            let (_, value) = got.remove(i);
            let ok = match tag {
                "52" | "122" => crate::fix::decode::parse_timestamp(value.as_bytes()).is_some(),
                _ if want.starts_with("<TIME") => {
                    crate::fix::decode::parse_timestamp(value.as_bytes()).is_some()
                }
                _ => want == "<ANY>" || want == value,
            };
            if !ok {
                self.fail(format!(
                    "tag {tag} = {value}, want {want}, in {}",
                    show(&actual)
                ));
            }
        }
        if !got.is_empty() {
            self.fail(format!("unexpected fields {got:?} in {}", show(&actual)));
        }
    }
}

/// Runs `script` against a fresh acceptor session with `cfg`.
pub(crate) fn run(cfg: SessionConfig, script: &str) -> Runner {
    let mut r = Runner::new(cfg, 64 << 10);
    r.run(script);
    r
}
