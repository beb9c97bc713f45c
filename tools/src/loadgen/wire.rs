//! COLD (a measuring tool) — what goes on the wire: a minimal FIX 4.4 initiator for N sessions
//! and the echo floor's fixed-size messages, behind one [`Wire`] trait, and the single-threaded
//! busy-polling driver ([`run`]) that sends on schedule and reads answers on the same thread.
//!
//! Entry `i` of the load goes to session `i mod N`. Everything about entry `i` lives at index
//! `i` of vectors sized before the run; per-session state (header, sequence numbers, the ring of
//! open orders that cancels and replaces pick from) is sized at start too, so the measuring loop
//! does not allocate.
//!
//! Nothing here panics on bytes from the peer: a message that does not parse is skipped, an
//! answer naming an order we never sent is ignored, a closed socket ends the run.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use portcullis::fix::decode::parse_uint;
use portcullis::fix::{frame, tags, Frame, Message, TimePrecision, Writer};
use portcullis::model::{Nanos, Price, Qty};

use super::{intended_ns, Answer, Mix, Op, Recorder, NS_PER_S};

/// Largest message accepted from the gateway.
const MAX_MESSAGE: usize = 16 << 10;

/// Open orders remembered per session for cancels and replaces (the oldest is forgotten when
/// more are open).
const LIVE_PER_SESSION: usize = 1024;

/// One protocol spoken by the load client, over `sessions()` connections. `s` names the
/// session (connection) a call is about.
pub trait Wire {
    /// Connections this wire speaks over.
    fn sessions(&self) -> usize;
    /// Appends what opens the conversation (a Logon) to `out`.
    fn start(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>);
    /// The conversation is open: orders may go.
    fn ready(&self, s: usize) -> bool;
    /// Appends entry `i` to `out`, of kind `op` if it can (a cancel or a replace needs an open
    /// order); returns the kind sent.
    fn order(&mut self, s: usize, i: usize, op: Op, now_ns: u64, out: &mut Vec<u8>) -> Op;
    /// Handles the complete messages at the front of `rx`; returns the bytes consumed.
    fn incoming(
        &mut self,
        s: usize,
        rx: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
        rec: &mut Recorder,
    ) -> usize;
    /// Timers (heartbeats).
    fn idle(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>);
    /// Appends what closes the conversation (a Logout) to `out`.
    fn stop(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>);
    /// The close was answered.
    fn stopped(&self, s: usize) -> bool;
    /// The peer ended the conversation on its own (a Logout we did not ask for), with why.
    fn ended(&self, s: usize) -> Option<&str>;
    /// What the run should report besides the latencies (e.g. gaps the peer had to fill).
    fn notes(&self) -> Option<String> {
        None
    }
}

// ------------------------------------------------------------------------------ FIX

/// What the FIX initiator is told.
#[derive(Clone, Debug)]
pub struct FixConfig {
    /// SenderCompID of each session; one session per entry.
    pub senders: Vec<String>,
    pub target: String,
    pub heartbeat_s: u32,
    /// ResetSeqNumFlag=Y in the Logon.
    pub reset: bool,
    /// Used in turn (by the order's index); AAPL if empty.
    pub symbols: Vec<String>,
    /// Account <1>, used in turn; none (the session's default) if empty.
    pub accounts: Vec<String>,
    /// UTC at the driver clock's zero, for SendingTime/TransactTime without another clock read.
    pub utc0: u64,
    /// Makes ClOrdIDs unique across runs.
    pub run_id: u64,
    /// Signed Logons (fix-specs/SIGNED-LOGON.md): none (unsigned), one key for every session,
    /// or one per session (entry `s` signs session `s`).
    pub signers: Vec<Signer>,
}

/// An API key a session signs its Logon with.
#[derive(Clone)]
pub struct Signer {
    /// Username(553).
    pub key_id: String,
    /// The decoded secret.
    pub secret: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}, secret hidden)", self.key_id)
    }
}

/// The standard header and the outbound sequence number of one session.
struct Header {
    sender: Vec<u8>,
    next_seq: u64,
    last_sent_ns: u64,
}

/// The open orders of one session, oldest first: (entry whose ClOrdID names the order now,
/// the entry that created it — its symbol, side and account).
pub(crate) struct Live {
    ring: Vec<(u32, u32)>,
    head: usize,
    len: usize,
}

impl Live {
    pub(crate) fn new() -> Live {
        Live {
            ring: vec![(0, 0); LIVE_PER_SESSION],
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, cur: usize, orig: usize) {
        let (Ok(cur), Ok(orig)) = (u32::try_from(cur), u32::try_from(orig)) else {
            return;
        };
        let cap = self.ring.len();
        if self.len == cap {
            // Forget the oldest.
            self.head = (self.head + 1) % cap;
            self.len -= 1;
        }
        if let Some(slot) = self.ring.get_mut((self.head + self.len) % cap) {
            *slot = (cur, orig);
            self.len += 1;
        }
    }

    pub(crate) fn pop(&mut self) -> Option<(usize, usize)> {
        if self.len == 0 {
            return None;
        }
        let v = self.ring.get(self.head).copied()?;
        self.head = (self.head + 1) % self.ring.len();
        self.len -= 1;
        Some((v.0 as usize, v.1 as usize))
    }
}

/// One session's state.
struct Session {
    hdr: Header,
    live: Live,
    /// Entries sent on this session (entry `s + k·N` is its k-th).
    sent: usize,
    /// The next MsgSeqNum expected from the peer (0 before its Logon).
    next_in: u64,
    logged_on: bool,
    logout_sent: bool,
    logout_answered: bool,
    ended: Option<String>,
}

/// FIX 4.4 initiator for N sessions: header, sequence numbers, Logon/Logout, Heartbeat answers
/// to TestRequest, gap fills for ResendRequest; NewOrderSingle, OrderCancelRequest and
/// OrderCancelReplaceRequest. No message store: a resend request is answered by a gap fill.
pub struct Fix {
    target: Vec<u8>,
    heartbeat_s: u32,
    reset: bool,
    utc0: u64,
    /// ClOrdID = prefix + decimal entry index.
    prefix: Vec<u8>,
    symbols: Vec<Vec<u8>>,
    accounts: Vec<Vec<u8>>,
    sessions: Vec<Session>,
    /// MsgSeqNum of entry `i`, to map a session Reject (RefSeqNum) back to its entry.
    entry_seq: Vec<u64>,
    /// The entry that created the order entry `i` cancels or replaces (itself for a new one).
    entry_orig: Vec<u32>,
    /// Where messages are built.
    scratch: Vec<u8>,
    signers: Vec<Signer>,
    /// Gaps in the peer's sequence numbers, and the messages they spanned: a peer that drops
    /// output for a slow reader (the gateway, past `send_buffer_bytes`) resends on request.
    gaps: u64,
    gap_messages: u64,
}

impl Fix {
    /// Room for `capacity` entries.
    pub fn new(c: FixConfig, capacity: usize) -> Fix {
        let sessions = c
            .senders
            .into_iter()
            .map(|sender| Session {
                hdr: Header {
                    sender: sender.into_bytes(),
                    next_seq: 1,
                    last_sent_ns: 0,
                },
                live: Live::new(),
                sent: 0,
                next_in: 0,
                logged_on: false,
                logout_sent: false,
                logout_answered: false,
                ended: None,
            })
            .collect();
        Fix {
            target: c.target.into_bytes(),
            heartbeat_s: c.heartbeat_s.max(1),
            reset: c.reset,
            utc0: c.utc0,
            prefix: format!("L{}-", c.run_id).into_bytes(),
            symbols: c.symbols.into_iter().map(String::into_bytes).collect(),
            accounts: c.accounts.into_iter().map(String::into_bytes).collect(),
            sessions,
            entry_seq: vec![u64::MAX; capacity],
            entry_orig: vec![0; capacity],
            scratch: vec![0u8; 4096],
            signers: c.signers,
            gaps: 0,
            gap_messages: 0,
        }
    }

    fn order_index(&self, cl: &[u8]) -> Option<usize> {
        let digits = cl.strip_prefix(self.prefix.as_slice())?;
        usize::try_from(parse_uint(digits)?).ok()
    }

    /// Builds one message on session `s` (header here, body by `body`), appends it to `out`;
    /// returns its MsgSeqNum (0 if `s` is not a session).
    fn send(
        &mut self,
        s: usize,
        msg_type: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
        body: impl FnOnce(&mut Writer),
    ) -> u64 {
        let Some(sess) = self.sessions.get_mut(s) else {
            return 0;
        };
        let hdr = &mut sess.hdr;
        let seq = hdr.next_seq;
        let t = Nanos(self.utc0 + now_ns);
        let mut w = Writer::new(&mut self.scratch, b"FIX.4.4", msg_type);
        w.str(tags::SENDER_COMP_ID, &hdr.sender);
        w.str(tags::TARGET_COMP_ID, &self.target);
        w.uint(tags::MSG_SEQ_NUM, seq);
        w.timestamp(tags::SENDING_TIME, t, TimePrecision::Micros);
        body(&mut w);
        // The scratch buffer is far larger than any message built here.
        if let Ok(range) = w.finish() {
            if let Some(bytes) = self.scratch.get(range) {
                out.extend_from_slice(bytes);
                hdr.next_seq += 1;
                hdr.last_sent_ns = now_ns;
            }
        }
        seq
    }

    /// The entry of session `s` sent with MsgSeqNum `seq`: its entries' sequence numbers grow
    /// with their index, so a binary search over `s, s+N, s+2N, …`.
    fn entry_of_seq(&self, s: usize, seq: u64) -> Option<usize> {
        let n = self.sessions.len().max(1);
        let sent = self.sessions.get(s)?.sent;
        let (mut lo, mut hi) = (0usize, sent);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let i = s + mid * n;
            let v = *self.entry_seq.get(i)?;
            match v.cmp(&seq) {
                std::cmp::Ordering::Equal => return Some(i),
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
            }
        }
        None
    }

    /// The first answer to entry `i` was positive: the order it names is open now.
    fn opened(&mut self, s: usize, i: usize, rec: &Recorder) {
        let orig = match rec.op(i) {
            Some(Op::New) => i,
            Some(Op::Replace) => self.entry_orig.get(i).map_or(i, |o| *o as usize),
            _ => return,
        };
        if let Some(sess) = self.sessions.get_mut(s) {
            sess.live.push(i, orig);
        }
    }

    /// Sequence numbers from the peer: a gap is asked for again (ResendRequest of exactly the
    /// missing range); every message, in order or resent, is then handled as it comes — answers
    /// count once, timed from their intended send time whenever they arrive.
    fn check_seq(&mut self, s: usize, m: &Message, now_ns: u64, out: &mut Vec<u8>) {
        let Some(seq) = m.seq_num() else { return };
        let Some(sess) = self.sessions.get_mut(s) else {
            return;
        };
        let msg_type = m.msg_type_bytes();
        if msg_type == b"A" {
            sess.next_in = seq + 1;
            return;
        }
        if msg_type == b"4" && m.get(tags::GAP_FILL_FLAG) != Some(b"Y") {
            // SequenceReset-Reset: the peer's numbers jump.
            if let Ok(Some(new_seq)) = m.uint(tags::NEW_SEQ_NO) {
                sess.next_in = new_seq;
            }
            return;
        }
        if sess.next_in == 0 || seq < sess.next_in {
            return;
        }
        if seq > sess.next_in {
            let (begin, end) = (sess.next_in, seq - 1);
            self.gaps += 1;
            self.gap_messages += end - begin + 1;
            if let Some(sess) = self.sessions.get_mut(s) {
                sess.next_in = seq + 1;
            }
            self.send(s, b"2", now_ns, out, |w| {
                w.uint(tags::BEGIN_SEQ_NO, begin);
                w.uint(tags::END_SEQ_NO, end);
            });
        } else {
            sess.next_in = seq + 1;
        }
    }

    fn on_message(
        &mut self,
        s: usize,
        m: &Message,
        now_ns: u64,
        out: &mut Vec<u8>,
        rec: &mut Recorder,
    ) {
        self.check_seq(s, m, now_ns, out);
        match m.msg_type_bytes() {
            b"8" => {
                let Some(i) = m.get(tags::CL_ORD_ID).and_then(|c| self.order_index(c)) else {
                    return;
                };
                let ok = m.get(tags::ORD_STATUS) != Some(b"8");
                if rec.answer(i, now_ns, ok) == Answer::First && ok {
                    self.opened(s, i, rec);
                }
            }
            b"9" => {
                // OrderCancelReject: the cancel or replace named by ClOrdID was refused.
                if let Some(i) = m.get(tags::CL_ORD_ID).and_then(|c| self.order_index(c)) {
                    rec.answer(i, now_ns, false);
                }
            }
            b"j" => {
                if let Some(i) = m
                    .get(tags::BUSINESS_REJECT_REF_ID)
                    .and_then(|c| self.order_index(c))
                {
                    rec.answer(i, now_ns, false);
                }
            }
            b"3" => {
                let Ok(Some(seq)) = m.uint(tags::REF_SEQ_NUM) else {
                    return;
                };
                if let Some(i) = self.entry_of_seq(s, seq) {
                    if rec.answer(i, now_ns, false) == Answer::Unknown {
                        eprintln!("loadgen: session Reject of order {i} not in flight");
                    }
                } else {
                    let text = m.get(tags::TEXT).unwrap_or_default();
                    eprintln!(
                        "loadgen: session {s}: Reject of message {seq}: {}",
                        String::from_utf8_lossy(text)
                    );
                }
            }
            b"1" => {
                let id = m.get(tags::TEST_REQ_ID).unwrap_or_default().to_vec();
                self.send(s, b"0", now_ns, out, |w| {
                    w.str(tags::TEST_REQ_ID, &id);
                });
            }
            b"2" => {
                let begin = m.uint(tags::BEGIN_SEQ_NO).ok().flatten().unwrap_or(1);
                let Some(sess) = self.sessions.get_mut(s) else {
                    return;
                };
                let new_seq = sess.hdr.next_seq;
                // A gap fill carries the sequence number of the first message it replaces.
                sess.hdr.next_seq = begin;
                let t = Nanos(self.utc0 + now_ns);
                self.send(s, b"4", now_ns, out, |w| {
                    w.char(tags::POSS_DUP_FLAG, b'Y');
                    w.timestamp(tags::ORIG_SENDING_TIME, t, TimePrecision::Micros);
                    w.char(tags::GAP_FILL_FLAG, b'Y');
                    w.uint(tags::NEW_SEQ_NO, new_seq);
                });
                if let Some(sess) = self.sessions.get_mut(s) {
                    sess.hdr.next_seq = new_seq;
                }
            }
            b"A" => {
                if let Some(sess) = self.sessions.get_mut(s) {
                    sess.logged_on = true;
                }
            }
            b"5" => {
                let Some(sess) = self.sessions.get_mut(s) else {
                    return;
                };
                if sess.logout_sent {
                    sess.logout_answered = true;
                } else {
                    let text = m.get(tags::TEXT).unwrap_or_default();
                    sess.ended = Some(format!(
                        "Logout from the gateway: {}",
                        String::from_utf8_lossy(text)
                    ));
                    // Answer it, as a session should.
                    self.send(s, b"5", now_ns, out, |_| {});
                }
            }
            _ => {}
        }
    }

    fn symbol(&self, orig: usize) -> &[u8] {
        match self.symbols.len() {
            0 => b"AAPL",
            k => self.symbols.get(orig % k).map_or(b"AAPL", Vec::as_slice),
        }
    }

    fn account(&self, orig: usize) -> Option<&[u8]> {
        match self.accounts.len() {
            0 => None,
            k => self.accounts.get(orig % k).map(Vec::as_slice),
        }
    }
}

/// ClOrdID `prefix` + `i` into `buf`; returns its length.
fn cl_ord_id(buf: &mut [u8; 64], prefix: &[u8], i: usize) -> usize {
    let mut n = 0;
    for (d, s) in buf.iter_mut().zip(prefix.iter()) {
        *d = *s;
        n += 1;
    }
    n + portcullis::fix::encode::write_u64(buf.get_mut(n..).unwrap_or_default(), i as u64)
}

impl Wire for Fix {
    fn sessions(&self) -> usize {
        self.sessions.len()
    }

    fn start(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>) {
        let (hb, reset) = (self.heartbeat_s, self.reset);
        // Signed Logon: HMAC over the header fields this message carries (the same SendingTime
        // bytes `send` writes). Cold: once per session.
        let signer = match self.signers.len() {
            0 => None,
            1 => self.signers.first(),
            _ => self.signers.get(s),
        };
        let signed = match (signer, self.sessions.get(s)) {
            (Some(k), Some(sess)) => {
                let mut ts = [0u8; 32];
                let t = Nanos(self.utc0 + now_ns);
                let n = portcullis::fix::encode::write_timestamp(&mut ts, t, TimePrecision::Micros);
                let seq = sess.hdr.next_seq.to_string();
                let pre = portcullis::auth::logon::prehash(
                    ts.get(..n).unwrap_or_default(),
                    b"A",
                    seq.as_bytes(),
                    &sess.hdr.sender,
                    &self.target,
                    k.key_id.as_bytes(),
                );
                Some((
                    k.key_id.clone(),
                    portcullis::auth::logon::sign(&k.secret, &pre),
                ))
            }
            _ => None,
        };
        self.send(s, b"A", now_ns, out, |w| {
            w.char(tags::ENCRYPT_METHOD, b'0');
            w.uint(tags::HEART_BT_INT, u64::from(hb));
            if reset {
                w.char(tags::RESET_SEQ_NUM_FLAG, b'Y');
            }
            if let Some((key_id, sig)) = &signed {
                w.str(portcullis::auth::logon::USERNAME, key_id.as_bytes());
                w.uint(portcullis::auth::logon::RAW_DATA_LENGTH, sig.len() as u64);
                w.str(portcullis::auth::logon::RAW_DATA, sig.as_bytes());
            }
        });
    }

    fn ready(&self, s: usize) -> bool {
        self.sessions.get(s).is_some_and(|x| x.logged_on)
    }

    fn order(&mut self, s: usize, i: usize, op: Op, now_ns: u64, out: &mut Vec<u8>) -> Op {
        // A cancel or replace takes the session's oldest open order; with none, a new order.
        let target = match op {
            Op::New => None,
            Op::Cancel | Op::Replace => self.sessions.get_mut(s).and_then(|x| x.live.pop()),
        };
        let (op, orig) = match target {
            Some((cur, orig)) => (op, Some((cur, orig))),
            None => (Op::New, None),
        };
        let base = orig.map_or(i, |(_, o)| o);
        let mut id = [0u8; 64];
        let n = cl_ord_id(&mut id, &self.prefix, i);
        let mut orig_id = [0u8; 64];
        let orig_n = orig.map_or(0, |(cur, _)| cl_ord_id(&mut orig_id, &self.prefix, cur));
        // Copies: `send` borrows self mutably.
        let mut symbol = [0u8; 32];
        let sym = self.symbol(base);
        let sym_n = sym.len().min(symbol.len());
        symbol
            .get_mut(..sym_n)
            .unwrap_or_default()
            .copy_from_slice(sym.get(..sym_n).unwrap_or_default());
        let mut account = [0u8; 32];
        let acc_n = match self.account(base) {
            Some(a) => {
                let k = a.len().min(account.len());
                account
                    .get_mut(..k)
                    .unwrap_or_default()
                    .copy_from_slice(a.get(..k).unwrap_or_default());
                k
            }
            None => 0,
        };
        let side = if base.is_multiple_of(2) { b'1' } else { b'2' };
        let t = Nanos(self.utc0 + now_ns);
        let cl = id.get(..n).unwrap_or_default();
        let orig_cl = orig_id.get(..orig_n).unwrap_or_default();
        let symbol = symbol.get(..sym_n).unwrap_or_default();
        let account = account.get(..acc_n).unwrap_or_default();
        let (msg_type, qty): (&[u8], u64) = match op {
            Op::New => (b"D", 100),
            Op::Cancel => (b"F", 100),
            // Alternate 150 / 200 so every replace changes the quantity.
            Op::Replace => (b"G", 150 + 50 * (i as u64 % 2)),
        };
        let seq = self.send(s, msg_type, now_ns, out, |w| {
            if op != Op::New {
                w.str(tags::ORIG_CL_ORD_ID, orig_cl);
            }
            w.str(tags::CL_ORD_ID, cl);
            if !account.is_empty() {
                w.str(tags::ACCOUNT, account);
            }
            if op != Op::Cancel {
                w.char(tags::HANDL_INST, b'1');
            }
            w.str(tags::SYMBOL, symbol);
            w.char(tags::SIDE, side);
            w.timestamp(tags::TRANSACT_TIME, t, TimePrecision::Millis);
            w.qty(tags::ORDER_QTY, Qty::from_units(qty as i64));
            if op != Op::Cancel {
                w.char(tags::ORD_TYPE, b'2');
                w.price(tags::PRICE, Price::from_units(10));
                w.char(tags::TIME_IN_FORCE, b'0');
            }
        });
        if let Some(x) = self.entry_seq.get_mut(i) {
            *x = seq;
        }
        if let Some(x) = self.entry_orig.get_mut(i) {
            *x = u32::try_from(base).unwrap_or(u32::MAX);
        }
        if let Some(sess) = self.sessions.get_mut(s) {
            sess.sent += 1;
        }
        op
    }

    fn incoming(
        &mut self,
        s: usize,
        rx: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
        rec: &mut Recorder,
    ) -> usize {
        let mut pos = 0;
        loop {
            let rest = rx.get(pos..).unwrap_or_default();
            match frame(rest, MAX_MESSAGE) {
                Frame::Incomplete => return pos,
                Frame::Skip { len } => pos += len.max(1),
                Frame::TooLarge => {
                    if let Some(sess) = self.sessions.get_mut(s) {
                        sess.ended = Some("the gateway sent an oversized message".to_string());
                    }
                    return rx.len();
                }
                Frame::Message {
                    len,
                    body_length_ok,
                    checksum_ok,
                } => {
                    let bytes = rest.get(..len).unwrap_or_default();
                    pos += len.max(1);
                    if !(body_length_ok && checksum_ok) {
                        continue;
                    }
                    if let Ok(m) = Message::decode(bytes) {
                        self.on_message(s, &m, now_ns, out, rec);
                    }
                }
            }
        }
    }

    fn idle(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>) {
        let hb = u64::from(self.heartbeat_s) * NS_PER_S;
        if self
            .sessions
            .get(s)
            .is_some_and(|x| x.logged_on && now_ns.saturating_sub(x.hdr.last_sent_ns) >= hb)
        {
            self.send(s, b"0", now_ns, out, |_| {});
        }
    }

    fn stop(&mut self, s: usize, now_ns: u64, out: &mut Vec<u8>) {
        let Some(sess) = self.sessions.get_mut(s) else {
            return;
        };
        if sess.ended.is_none() {
            sess.logout_sent = true;
            self.send(s, b"5", now_ns, out, |_| {});
        }
    }

    fn stopped(&self, s: usize) -> bool {
        self.sessions
            .get(s)
            .is_none_or(|x| x.logout_answered || x.ended.is_some())
    }

    fn ended(&self, s: usize) -> Option<&str> {
        self.sessions.get(s).and_then(|x| x.ended.as_deref())
    }

    fn notes(&self) -> Option<String> {
        (self.gaps > 0).then(|| {
            format!(
                "the peer skipped {} message(s) in {} gap(s), asked for again (ResendRequest): \
                 it dropped output while this client was not reading fast enough",
                self.gap_messages, self.gaps
            )
        })
    }
}

// ------------------------------------------------------------------------------ echo

/// Fixed-size messages over one connection: the entry index (8 bytes, little endian), then
/// filler.
pub struct Echo {
    size: usize,
}

impl Echo {
    /// `size` is at least 8 (the index).
    pub fn new(size: usize) -> Echo {
        Echo { size: size.max(8) }
    }
}

impl Wire for Echo {
    fn sessions(&self) -> usize {
        1
    }
    fn start(&mut self, _: usize, _: u64, _: &mut Vec<u8>) {}
    fn ready(&self, _: usize) -> bool {
        true
    }
    fn order(&mut self, _: usize, i: usize, _: Op, _: u64, out: &mut Vec<u8>) -> Op {
        out.extend_from_slice(&(i as u64).to_le_bytes());
        out.resize(out.len() + self.size - 8, b'x');
        Op::New
    }
    fn incoming(
        &mut self,
        _: usize,
        rx: &[u8],
        now_ns: u64,
        _: &mut Vec<u8>,
        rec: &mut Recorder,
    ) -> usize {
        let mut pos = 0;
        while let Some(msg) = rx.get(pos..pos + self.size) {
            let mut idx = [0u8; 8];
            idx.copy_from_slice(msg.get(..8).unwrap_or(&[0; 8]));
            if let Ok(i) = usize::try_from(u64::from_le_bytes(idx)) {
                rec.answer(i, now_ns, true);
            }
            pos += self.size;
        }
        pos
    }
    fn idle(&mut self, _: usize, _: u64, _: &mut Vec<u8>) {}
    fn stop(&mut self, _: usize, _: u64, _: &mut Vec<u8>) {}
    fn stopped(&self, _: usize) -> bool {
        true
    }
    fn ended(&self, _: usize) -> Option<&str> {
        None
    }
}

// ------------------------------------------------------------------------------ driver

/// How orders are offered.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// Order `i` is due at `i/rate` s; latency is measured from that time.
    Open { rate: u64 },
    /// At most `window` orders in flight; each is timed from when it was sent.
    Closed { window: u64 },
}

/// How the driver finds the connections with something to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polling {
    /// A non-blocking `read` of every connection in turn: no readiness syscall, the lowest
    /// latency for a few connections; costs one syscall per connection per round.
    Spin,
    /// `epoll` (mio) with a zero timeout, then reads of the ready connections only: one syscall
    /// per round however many connections there are.
    Mio,
}

impl Polling {
    /// Spin for up to 8 connections, mio above.
    pub fn auto(sessions: usize) -> Polling {
        if sessions <= 8 {
            Polling::Spin
        } else {
            Polling::Mio
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub load: Load,
    /// Warm-up plus measured time, ns.
    pub total_ns: u64,
    /// Orders to send (open loop) or at most (closed loop).
    pub orders: usize,
    /// How long to wait for the last answers after the last order, ns.
    pub drain_ns: u64,
    /// How long the Logon and Logout (of every session) may take, ns.
    pub handshake_ns: u64,
    /// Kinds of entries.
    pub mix: Mix,
    pub polling: Polling,
}

/// The driver's clock: ns since it was made.
pub struct Clock(Instant);

impl Clock {
    #[allow(clippy::disallowed_methods)] // a measuring tool: monotonic time, read directly
    pub fn start() -> Clock {
        Clock(Instant::now())
    }
    #[inline]
    pub fn ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// A non-blocking TCP_NODELAY socket and its two buffers; with TLS, the client's rustls state
/// (its handshake already done) between them.
struct Conn {
    stream: mio::net::TcpStream,
    tls: Option<Box<rustls::ClientConnection>>,
    rx: Vec<u8>,
    rx_len: usize,
    out: Vec<u8>,
    out_pos: usize,
    /// Why the connection ended; the fixed reasons borrow a static string (a run's ordinary
    /// end allocates nothing).
    closed: Option<Cow<'static, str>>,
}

impl Conn {
    /// Writes what is pending; true if something is still pending (the socket is full).
    fn flush(&mut self) -> bool {
        if self.tls.is_some() {
            return self.flush_tls();
        }
        while self.out_pos < self.out.len() && self.closed.is_none() {
            match self
                .stream
                .write(self.out.get(self.out_pos..).unwrap_or_default())
            {
                Ok(0) => self.closed = Some("connection closed (write returned 0)".into()),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) => self.closed = Some(format!("write failed: {e}").into()),
            }
        }
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        false
    }

    /// TLS: plaintext into rustls (as much as it takes), records out to the socket.
    #[cold]
    fn flush_tls(&mut self) -> bool {
        let Some(t) = self.tls.as_deref_mut() else {
            return false;
        };
        while self.closed.is_none() {
            if self.out_pos < self.out.len() {
                match t
                    .writer()
                    .write(self.out.get(self.out_pos..).unwrap_or_default())
                {
                    Ok(n) => self.out_pos += n,
                    Err(e) => self.closed = Some(format!("TLS write failed: {e}").into()),
                }
            }
            if !t.wants_write() {
                if self.out_pos >= self.out.len() {
                    break;
                }
                continue;
            }
            match t.write_tls(&mut self.stream) {
                Ok(0) => self.closed = Some("connection closed (write returned 0)".into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) => self.closed = Some(format!("write failed: {e}").into()),
            }
        }
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        false
    }

    /// TLS: records from the socket until it would block, taking the plaintext they carried
    /// after each read (rustls refuses more records once 16 KiB of plaintext wait unread,
    /// "received plaintext buffer full", which a burst after a gateway stall reaches); true if
    /// plaintext arrived. Reads the socket dry: epoll is edge-triggered.
    #[cold]
    fn read_tls(&mut self) -> bool {
        let mut got = false;
        loop {
            let Some(t) = self.tls.as_deref_mut() else {
                return false;
            };
            match t.read_tls(&mut self.stream) {
                Ok(0) => {
                    self.closed = Some("connection closed by the peer".into());
                    break;
                }
                Ok(_) => {
                    if let Err(e) = t.process_new_packets() {
                        self.closed = Some(format!("TLS: {e}").into());
                        return false;
                    }
                    got |= self.take_plaintext();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.closed = Some(format!("read failed: {e}").into());
                    break;
                }
            }
        }
        got |= self.take_plaintext();
        // Records the peer's messages asked for (key updates) go out with the next flush.
        got
    }

    /// TLS: moves the plaintext rustls holds into `rx`; true if there was any.
    fn take_plaintext(&mut self) -> bool {
        let Some(t) = self.tls.as_deref_mut() else {
            return false;
        };
        let mut got = false;
        loop {
            if self.rx_len == self.rx.len() {
                self.rx.resize(self.rx.len() * 2, 0);
            }
            match t
                .reader()
                .read(self.rx.get_mut(self.rx_len..).unwrap_or_default())
            {
                Ok(0) => {
                    self.closed
                        .get_or_insert_with(|| "TLS close_notify from the peer".into());
                    break;
                }
                Ok(n) => {
                    self.rx_len += n;
                    got = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.closed
                        .get_or_insert_with(|| format!("TLS read failed: {e}").into());
                    break;
                }
            }
        }
        got
    }

    /// One non-blocking read; true if bytes arrived.
    fn read(&mut self) -> bool {
        if self.closed.is_some() {
            return false;
        }
        if self.tls.is_some() {
            return self.read_tls();
        }
        if self.rx_len == self.rx.len() {
            // Full of an incomplete message: grow (the wire caps messages at MAX_MESSAGE).
            self.rx.resize(self.rx.len() * 2, 0);
        }
        match self
            .stream
            .read(self.rx.get_mut(self.rx_len..).unwrap_or_default())
        {
            Ok(0) => {
                self.closed = Some("connection closed by the peer".into());
                false
            }
            Ok(n) => {
                self.rx_len += n;
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) =>
            {
                false
            }
            Err(e) => {
                self.closed = Some(format!("read failed: {e}").into());
                false
            }
        }
    }

    /// Hands the complete messages received to the wire, then writes what it answered.
    fn deliver(&mut self, s: usize, wire: &mut impl Wire, now: u64, rec: &mut Recorder) {
        let used = wire.incoming(
            s,
            self.rx.get(..self.rx_len).unwrap_or_default(),
            now,
            &mut self.out,
            rec,
        );
        let used = used.min(self.rx_len);
        self.rx.copy_within(used..self.rx_len, 0);
        self.rx_len -= used;
        self.flush();
    }
}

/// Every connection of a run and how they are polled.
struct Conns {
    conns: Vec<Conn>,
    poll: Option<(mio::Poll, mio::Events)>,
    /// Connections whose output the socket did not take in full.
    pending: usize,
}

impl Conns {
    fn new(
        streams: Vec<TcpStream>,
        mut tls: Vec<Option<rustls::ClientConnection>>,
        polling: Polling,
    ) -> Result<Conns, String> {
        tls.resize_with(streams.len(), || None);
        let n = streams.len().max(1);
        // 4 MiB of output room over all connections, at least 64 KiB each.
        let out_cap = ((4 << 20) / n).max(64 << 10);
        let rx_cap = if n == 1 { 1 << 20 } else { 64 << 10 };
        let mut poll = match polling {
            Polling::Spin => None,
            Polling::Mio => {
                let p = mio::Poll::new().map_err(|e| format!("epoll: {e}"))?;
                Some((p, mio::Events::with_capacity(1024)))
            }
        };
        let mut conns = Vec::with_capacity(n);
        for (s, (stream, tls)) in streams.into_iter().zip(tls).enumerate() {
            stream
                .set_nodelay(true)
                .and_then(|()| stream.set_nonblocking(true))
                .map_err(|e| format!("socket setup: {e}"))?;
            let mut stream = mio::net::TcpStream::from_std(stream);
            if let Some((p, _)) = &mut poll {
                p.registry()
                    .register(&mut stream, mio::Token(s), mio::Interest::READABLE)
                    .map_err(|e| format!("epoll register: {e}"))?;
            }
            conns.push(Conn {
                stream,
                tls: tls.map(Box::new),
                rx: vec![0u8; rx_cap],
                rx_len: 0,
                out: Vec::with_capacity(out_cap),
                out_pos: 0,
                closed: None,
            });
        }
        Ok(Conns {
            conns,
            poll,
            pending: 0,
        })
    }

    /// Writes what is pending on connection `s` (after an order was appended to it).
    fn flush(&mut self, s: usize) {
        if let Some(c) = self.conns.get_mut(s) {
            if c.flush() {
                self.pending += 1;
            }
        }
    }

    /// One round: pending output, then whatever arrived, handed to the wire.
    fn pump(&mut self, wire: &mut impl Wire, clock: &Clock, rec: &mut Recorder) {
        if self.pending > 0 {
            self.pending = 0;
            for c in &mut self.conns {
                if c.flush() {
                    self.pending += 1;
                }
            }
        }
        match &mut self.poll {
            None => {
                for (s, c) in self.conns.iter_mut().enumerate() {
                    if c.read() {
                        let now = clock.ns();
                        c.deliver(s, wire, now, rec);
                    }
                }
            }
            Some((poll, events)) => {
                if let Err(e) = poll.poll(events, Some(Duration::ZERO)) {
                    if e.kind() != io::ErrorKind::Interrupted {
                        for c in &mut self.conns {
                            c.closed.get_or_insert_with(|| format!("epoll: {e}").into());
                        }
                    }
                    return;
                }
                for ev in events.iter() {
                    let s = ev.token().0;
                    let Some(c) = self.conns.get_mut(s) else {
                        continue;
                    };
                    // Edge-triggered: read until the socket is empty.
                    while c.read() {
                        let now = clock.ns();
                        c.deliver(s, wire, now, rec);
                    }
                }
            }
        }
    }

    /// The first connection that closed, and why.
    fn closed(&self) -> Option<(usize, &str)> {
        self.conns
            .iter()
            .enumerate()
            .find_map(|(s, c)| c.closed.as_deref().map(|e| (s, e)))
    }
}

/// How a run ended.
pub struct Outcome {
    /// Why it ended before its time, if it did (exit code 1).
    pub ended: Option<String>,
    /// The run's zero on the driver's clock (after the Logons).
    pub start_ns: u64,
}

/// The first session the peer ended, and why.
fn wire_ended(wire: &impl Wire) -> Option<(usize, String)> {
    (0..wire.sessions()).find_map(|s| wire.ended(s).map(|e| (s, e.to_string())))
}

/// Opens the conversation on every connection (`streams[s]` carries session `s`), offers the
/// load (entry `i` on session `i mod N`), waits for the last answers, closes. Errors only when
/// a conversation could not be opened (no Logon answer).
pub fn run(
    streams: Vec<TcpStream>,
    wire: &mut impl Wire,
    plan: &Plan,
    clock: &Clock,
    rec: &mut Recorder,
) -> Result<Outcome, String> {
    run_tls(streams, Vec::new(), wire, plan, clock, rec)
}

/// [`run`] where connection `s` speaks TLS through `tls[s]` when it is `Some` (a client
/// connection whose handshake is done, e.g. by `crate::tls::handshake`).
pub fn run_tls(
    streams: Vec<TcpStream>,
    tls: Vec<Option<rustls::ClientConnection>>,
    wire: &mut impl Wire,
    plan: &Plan,
    clock: &Clock,
    rec: &mut Recorder,
) -> Result<Outcome, String> {
    let n = wire.sessions();
    if streams.len() != n || n == 0 {
        return Err(format!(
            "{} connection(s) for {n} session(s)",
            streams.len()
        ));
    }
    let mut c = Conns::new(streams, tls, plan.polling)?;
    // Opening.
    let t = clock.ns();
    for (s, conn) in c.conns.iter_mut().enumerate() {
        wire.start(s, t, &mut conn.out);
    }
    for s in 0..n {
        c.flush(s);
    }
    while !(0..n).all(|s| wire.ready(s)) {
        c.pump(wire, clock, rec);
        if let Some((s, e)) = wire_ended(wire) {
            return Err(format!("logon failed (session {s}): {e}"));
        }
        if let Some((s, e)) = c.closed() {
            return Err(format!("logon failed (session {s}): {e}"));
        }
        if clock.ns() - t > plan.handshake_ns {
            let waiting = (0..n).filter(|s| !wire.ready(*s)).count();
            return Err(format!(
                "no Logon answer in time ({waiting} of {n} session(s) not logged on)"
            ));
        }
    }
    // The load. Times given to the recorder are relative to `start`.
    let start = clock.ns();
    rec.origin_ns = start;
    let mut next = 0usize;
    let mut drain_until: Option<u64> = None;
    let mut ended = None;
    let mut idle_rr = 0usize;
    loop {
        let now = clock.ns() - start;
        match plan.load {
            Load::Open { rate } => {
                while next < plan.orders {
                    let due = intended_ns(next as u64, rate);
                    if due > now {
                        break;
                    }
                    if !send_entry(&mut c, wire, rec, plan, next, due, start + now) {
                        break;
                    }
                    next += 1;
                }
            }
            Load::Closed { window } => {
                while next < plan.orders && now < plan.total_ns && rec.in_flight() < window {
                    if !send_entry(&mut c, wire, rec, plan, next, now, start + now) {
                        break;
                    }
                    next += 1;
                }
            }
        }
        let done_sending = match plan.load {
            Load::Open { .. } => next >= plan.orders,
            Load::Closed { .. } => next >= plan.orders || now >= plan.total_ns,
        };
        if done_sending {
            let until = *drain_until.get_or_insert(now + plan.drain_ns);
            if rec.in_flight() == 0 || now > until {
                break;
            }
        }
        c.pump(wire, clock, rec);
        if let Some((s, e)) = wire_ended(wire) {
            ended = Some(if n > 1 {
                format!("session {s}: {e}")
            } else {
                e
            });
            break;
        }
        if let Some((s, e)) = c.closed() {
            ended = Some(if n > 1 {
                format!("session {s}: {e}")
            } else {
                e.to_string()
            });
            break;
        }
        // Heartbeat timers: one session per round.
        idle_rr = (idle_rr + 1) % n;
        if let Some(conn) = c.conns.get_mut(idle_rr) {
            let before = conn.out.len();
            wire.idle(idle_rr, clock.ns(), &mut conn.out);
            if conn.out.len() != before {
                c.flush(idle_rr);
            }
        }
    }
    // Closing.
    if ended.is_none() {
        let t = clock.ns();
        for (s, conn) in c.conns.iter_mut().enumerate() {
            wire.stop(s, t, &mut conn.out);
        }
        for s in 0..n {
            c.flush(s);
        }
        while !(0..n).all(|s| wire.stopped(s))
            && c.closed().is_none()
            && clock.ns() - t < plan.handshake_ns
        {
            c.pump(wire, clock, rec);
        }
    }
    for conn in &mut c.conns {
        conn.flush();
        if let Some(t) = conn.tls.as_deref_mut() {
            t.send_close_notify();
            let _ = t.write_tls(&mut conn.stream);
        }
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
    }
    Ok(Outcome {
        ended,
        start_ns: start,
    })
}

/// Sends entry `i` (intended at `intended` after the start) on its session; false past the
/// recorder's capacity.
fn send_entry(
    c: &mut Conns,
    wire: &mut impl Wire,
    rec: &mut Recorder,
    plan: &Plan,
    i: usize,
    intended: u64,
    now_abs: u64,
) -> bool {
    if i >= rec.capacity() {
        return false;
    }
    let n = c.conns.len().max(1);
    let s = i % n;
    let Some(conn) = c.conns.get_mut(s) else {
        return false;
    };
    let op = wire.order(s, i, plan.mix.op(i as u64), now_abs, &mut conn.out);
    let recorded = rec.sent_op(i, intended, op);
    c.flush(s);
    recorded
}
