//! COLD (a measuring tool) — what goes on the wire: a minimal FIX 4.4 initiator and the echo
//! floor's fixed-size messages, behind one [`Wire`] trait, and the single-threaded busy-polling
//! driver ([`run`]) that sends on schedule and reads answers on the same thread.
//!
//! Nothing here panics on bytes from the peer: a message that does not parse is skipped, an
//! answer naming an order we never sent is ignored, a closed socket ends the run.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use portcullis::fix::decode::parse_uint;
use portcullis::fix::{frame, tags, Frame, Message, TimePrecision, Writer};
use portcullis::model::{Nanos, Price, Qty};

use super::{intended_ns, Answer, Recorder, NS_PER_S};

/// Largest message accepted from the gateway.
const MAX_MESSAGE: usize = 16 << 10;

/// One protocol spoken by the load client.
pub trait Wire {
    /// Appends what opens the conversation (a Logon) to `out`.
    fn start(&mut self, now_ns: u64, out: &mut Vec<u8>);
    /// The conversation is open: orders may go.
    fn ready(&self) -> bool;
    /// Appends order `i` to `out`.
    fn order(&mut self, i: usize, now_ns: u64, out: &mut Vec<u8>);
    /// Handles the complete messages at the front of `rx`; returns the bytes consumed.
    fn incoming(&mut self, rx: &[u8], now_ns: u64, out: &mut Vec<u8>, rec: &mut Recorder) -> usize;
    /// Timers (heartbeats).
    fn idle(&mut self, now_ns: u64, out: &mut Vec<u8>);
    /// Appends what closes the conversation (a Logout) to `out`.
    fn stop(&mut self, now_ns: u64, out: &mut Vec<u8>);
    /// The close was answered.
    fn stopped(&self) -> bool;
    /// The peer ended the conversation on its own (a Logout we did not ask for), with why.
    fn ended(&self) -> Option<&str>;
}

// ------------------------------------------------------------------------------ FIX

/// FIX 4.4 initiator: header, sequence numbers, Logon/Logout, Heartbeat answers to TestRequest,
/// gap fills for ResendRequest. No message store: a resend request is answered by a gap fill.
pub struct Fix {
    hdr: Header,
    heartbeat_s: u32,
    reset: bool,
    /// ClOrdID = prefix + decimal order index.
    prefix: Vec<u8>,
    symbols: Vec<Vec<u8>>,
    account: Option<Vec<u8>>,
    /// MsgSeqNum of order `i`, to map a session Reject (RefSeqNum) back to its order.
    order_seq: Vec<u64>,
    logged_on: bool,
    logout_sent: bool,
    logout_answered: bool,
    ended: Option<String>,
}

/// What the FIX initiator is told.
#[derive(Clone, Debug)]
pub struct FixConfig {
    pub sender: String,
    pub target: String,
    pub heartbeat_s: u32,
    /// ResetSeqNumFlag=Y in the Logon.
    pub reset: bool,
    /// Used in turn; AAPL if empty.
    pub symbols: Vec<String>,
    pub account: Option<String>,
    /// UTC at the driver clock's zero, for SendingTime/TransactTime without another clock read.
    pub utc0: u64,
    /// Makes ClOrdIDs unique across runs.
    pub run_id: u64,
}

/// The standard header and the outbound sequence number.
struct Header {
    sender: Vec<u8>,
    target: Vec<u8>,
    next_seq: u64,
    utc0: u64,
    scratch: Vec<u8>,
    last_sent_ns: u64,
}

impl Header {
    /// Builds one message (header written here, body by `body`) and appends it to `out`;
    /// returns its MsgSeqNum.
    fn send(
        &mut self,
        msg_type: &[u8],
        now_ns: u64,
        out: &mut Vec<u8>,
        body: impl FnOnce(&mut Writer),
    ) -> u64 {
        let seq = self.next_seq;
        let t = Nanos(self.utc0 + now_ns);
        let mut w = Writer::new(&mut self.scratch, b"FIX.4.4", msg_type);
        w.str(tags::SENDER_COMP_ID as u32, &self.sender);
        w.str(tags::TARGET_COMP_ID as u32, &self.target);
        w.uint(tags::MSG_SEQ_NUM as u32, seq);
        w.timestamp(tags::SENDING_TIME as u32, t, TimePrecision::Micros);
        body(&mut w);
        // The scratch buffer is far larger than any message built here.
        if let Ok(range) = w.finish() {
            if let Some(bytes) = self.scratch.get(range) {
                out.extend_from_slice(bytes);
                self.next_seq += 1;
                self.last_sent_ns = now_ns;
            }
        }
        seq
    }
}

impl Fix {
    /// Room for `capacity` orders.
    pub fn new(c: FixConfig, capacity: usize) -> Fix {
        Fix {
            hdr: Header {
                sender: c.sender.into_bytes(),
                target: c.target.into_bytes(),
                next_seq: 1,
                utc0: c.utc0,
                scratch: vec![0u8; 4096],
                last_sent_ns: 0,
            },
            heartbeat_s: c.heartbeat_s.max(1),
            reset: c.reset,
            prefix: format!("L{}-", c.run_id).into_bytes(),
            symbols: c.symbols.into_iter().map(String::into_bytes).collect(),
            account: c.account.map(String::into_bytes),
            order_seq: vec![u64::MAX; capacity],
            logged_on: false,
            logout_sent: false,
            logout_answered: false,
            ended: None,
        }
    }

    fn order_index(&self, cl: &[u8]) -> Option<usize> {
        let digits = cl.strip_prefix(self.prefix.as_slice())?;
        usize::try_from(parse_uint(digits)?).ok()
    }

    fn on_message(&mut self, m: &Message, now_ns: u64, out: &mut Vec<u8>, rec: &mut Recorder) {
        match m.msg_type_bytes() {
            b"8" => {
                let Some(i) = m.get(tags::CL_ORD_ID).and_then(|c| self.order_index(c)) else {
                    return;
                };
                let ok = m.get(tags::ORD_STATUS) != Some(b"8");
                rec.answer(i, now_ns, ok);
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
                // Sequence numbers of orders increase with the index: binary search the sent ones.
                let sent = self
                    .order_seq
                    .get(..usize::try_from(rec.sent).unwrap_or(usize::MAX))
                    .unwrap_or(&self.order_seq);
                if let Ok(i) = sent.binary_search(&seq) {
                    if rec.answer(i, now_ns, false) == Answer::Unknown {
                        eprintln!("loadgen: session Reject of order {i} not in flight");
                    }
                } else {
                    let text = m.get(tags::TEXT).unwrap_or_default();
                    eprintln!(
                        "loadgen: session Reject of message {seq}: {}",
                        String::from_utf8_lossy(text)
                    );
                }
            }
            b"1" => {
                let id = m.get(tags::TEST_REQ_ID).unwrap_or_default().to_vec();
                self.hdr.send(b"0", now_ns, out, |w| {
                    w.str(tags::TEST_REQ_ID as u32, &id);
                });
            }
            b"2" => {
                let begin = m.uint(tags::BEGIN_SEQ_NO).ok().flatten().unwrap_or(1);
                let new_seq = self.hdr.next_seq;
                // A gap fill carries the sequence number of the first message it replaces.
                let saved = self.hdr.next_seq;
                self.hdr.next_seq = begin;
                let t = Nanos(self.hdr.utc0 + now_ns);
                self.hdr.send(b"4", now_ns, out, |w| {
                    w.char(tags::POSS_DUP_FLAG as u32, b'Y');
                    w.timestamp(tags::ORIG_SENDING_TIME as u32, t, TimePrecision::Micros);
                    w.char(tags::GAP_FILL_FLAG as u32, b'Y');
                    w.uint(tags::NEW_SEQ_NO as u32, new_seq);
                });
                self.hdr.next_seq = saved;
            }
            b"A" => self.logged_on = true,
            b"5" => {
                if self.logout_sent {
                    self.logout_answered = true;
                } else {
                    let text = m.get(tags::TEXT).unwrap_or_default();
                    self.ended = Some(format!(
                        "Logout from the gateway: {}",
                        String::from_utf8_lossy(text)
                    ));
                    // Answer it, as a session should.
                    self.hdr.send(b"5", now_ns, out, |_| {});
                }
            }
            _ => {}
        }
    }
}

impl Wire for Fix {
    fn start(&mut self, now_ns: u64, out: &mut Vec<u8>) {
        let (hb, reset) = (self.heartbeat_s, self.reset);
        self.hdr.send(b"A", now_ns, out, |w| {
            w.char(tags::ENCRYPT_METHOD as u32, b'0');
            w.uint(tags::HEART_BT_INT as u32, u64::from(hb));
            if reset {
                w.char(tags::RESET_SEQ_NUM_FLAG as u32, b'Y');
            }
        });
    }

    fn ready(&self) -> bool {
        self.logged_on
    }

    fn order(&mut self, i: usize, now_ns: u64, out: &mut Vec<u8>) {
        let mut id = [0u8; 64];
        let mut n = 0;
        for (d, s) in id.iter_mut().zip(self.prefix.iter()) {
            *d = *s;
            n += 1;
        }
        n += portcullis::fix::encode::write_u64(id.get_mut(n..).unwrap_or_default(), i as u64);
        let symbol: &[u8] = match self.symbols.len() {
            0 => b"AAPL",
            k => self.symbols.get(i % k).map_or(b"AAPL", Vec::as_slice),
        };
        let side = if i.is_multiple_of(2) { b'1' } else { b'2' };
        let t = Nanos(self.hdr.utc0 + now_ns);
        let account = self.account.as_deref();
        let seq = self.hdr.send(b"D", now_ns, out, |w| {
            w.str(tags::CL_ORD_ID as u32, id.get(..n).unwrap_or_default());
            if let Some(a) = account {
                w.str(tags::ACCOUNT as u32, a);
            }
            w.char(tags::HANDL_INST as u32, b'1');
            w.str(tags::SYMBOL as u32, symbol);
            w.char(tags::SIDE as u32, side);
            w.timestamp(tags::TRANSACT_TIME as u32, t, TimePrecision::Millis);
            w.qty(tags::ORDER_QTY as u32, Qty::from_units(100));
            w.char(tags::ORD_TYPE as u32, b'2');
            w.price(tags::PRICE as u32, Price::from_units(10));
            w.char(tags::TIME_IN_FORCE as u32, b'0');
        });
        if let Some(s) = self.order_seq.get_mut(i) {
            *s = seq;
        }
    }

    fn incoming(&mut self, rx: &[u8], now_ns: u64, out: &mut Vec<u8>, rec: &mut Recorder) -> usize {
        let mut pos = 0;
        loop {
            let rest = rx.get(pos..).unwrap_or_default();
            match frame(rest, MAX_MESSAGE) {
                Frame::Incomplete => return pos,
                Frame::Skip { len } => pos += len.max(1),
                Frame::TooLarge => {
                    self.ended = Some("the gateway sent an oversized message".to_string());
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
                        self.on_message(&m, now_ns, out, rec);
                    }
                }
            }
        }
    }

    fn idle(&mut self, now_ns: u64, out: &mut Vec<u8>) {
        if self.logged_on
            && now_ns.saturating_sub(self.hdr.last_sent_ns)
                >= u64::from(self.heartbeat_s) * NS_PER_S
        {
            self.hdr.send(b"0", now_ns, out, |_| {});
        }
    }

    fn stop(&mut self, now_ns: u64, out: &mut Vec<u8>) {
        if self.ended.is_none() {
            self.logout_sent = true;
            self.hdr.send(b"5", now_ns, out, |_| {});
        }
    }

    fn stopped(&self) -> bool {
        self.logout_answered || self.ended.is_some()
    }

    fn ended(&self) -> Option<&str> {
        self.ended.as_deref()
    }
}

// ------------------------------------------------------------------------------ echo

/// Fixed-size messages: the order index (8 bytes, little endian), then filler.
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
    fn start(&mut self, _: u64, _: &mut Vec<u8>) {}
    fn ready(&self) -> bool {
        true
    }
    fn order(&mut self, i: usize, _: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&(i as u64).to_le_bytes());
        out.resize(out.len() + self.size - 8, b'x');
    }
    fn incoming(&mut self, rx: &[u8], now_ns: u64, _: &mut Vec<u8>, rec: &mut Recorder) -> usize {
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
    fn idle(&mut self, _: u64, _: &mut Vec<u8>) {}
    fn stop(&mut self, _: u64, _: &mut Vec<u8>) {}
    fn stopped(&self) -> bool {
        true
    }
    fn ended(&self) -> Option<&str> {
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

#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub load: Load,
    /// Warm-up plus measured time, ns.
    pub total_ns: u64,
    /// Orders to send (open loop) or at most (closed loop).
    pub orders: usize,
    /// How long to wait for the last answers after the last order, ns.
    pub drain_ns: u64,
    /// How long the Logon and Logout may take, ns.
    pub handshake_ns: u64,
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

/// A non-blocking TCP_NODELAY socket and its two buffers.
struct Conn {
    stream: TcpStream,
    /// TLS over `stream`, handshake done (`--tls`).
    tls: Option<Box<rustls::ClientConnection>>,
    rx: Vec<u8>,
    rx_len: usize,
    out: Vec<u8>,
    out_pos: usize,
    closed: Option<String>,
}

impl Conn {
    fn flush(&mut self) {
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => self.closed = Some(format!("write failed: {e}")),
            }
        }
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// TLS: hands everything pending to rustls, then writes records until the socket blocks.
    fn flush_tls(&mut self) {
        let Some(tls) = self.tls.as_deref_mut() else {
            return;
        };
        if self.out_pos < self.out.len() && self.closed.is_none() {
            match tls
                .writer()
                .write(self.out.get(self.out_pos..).unwrap_or_default())
            {
                Ok(n) => self.out_pos += n,
                Err(e) => self.closed = Some(format!("TLS write failed: {e}")),
            }
        }
        while tls.wants_write() && self.closed.is_none() {
            match tls.write_tls(&mut self.stream) {
                Ok(0) => self.closed = Some("connection closed (write returned 0)".into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => self.closed = Some(format!("write failed: {e}")),
            }
        }
        if self.out_pos >= self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// TLS: one non-blocking pass: plaintext rustls holds, else records from the socket.
    fn read_tls(&mut self) -> bool {
        let Some(tls) = self.tls.as_deref_mut() else {
            return false;
        };
        loop {
            let spare = self.rx.get_mut(self.rx_len..).unwrap_or_default();
            match tls.reader().read(spare) {
                Ok(0) if !spare.is_empty() => {
                    self.closed = Some("connection closed by the peer (TLS close_notify)".into());
                    return false;
                }
                Ok(n) => {
                    self.rx_len += n;
                    return n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    self.closed = Some(format!("TLS read failed: {e}"));
                    return false;
                }
            }
            match tls.read_tls(&mut self.stream) {
                Ok(0) => {
                    self.closed = Some("connection closed by the peer".into());
                    return false;
                }
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
                        self.closed = Some(format!("TLS error: {e}"));
                        return false;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) => {
                    self.closed = Some(format!("read failed: {e}"));
                    return false;
                }
            }
        }
    }

    /// One non-blocking read; true if bytes arrived.
    fn read(&mut self) -> bool {
        if self.closed.is_some() {
            return false;
        }
        if self.rx_len == self.rx.len() {
            // Full of an incomplete message: grow (the wire caps messages at MAX_MESSAGE).
            self.rx.resize(self.rx.len() * 2, 0);
        }
        if self.tls.is_some() {
            return self.read_tls();
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
                self.closed = Some(format!("read failed: {e}"));
                false
            }
        }
    }

    /// Reads once and hands complete messages to the wire.
    fn pump(&mut self, wire: &mut impl Wire, clock: &Clock, rec: &mut Recorder) {
        self.flush();
        if self.read() {
            let now = clock.ns();
            let used = wire.incoming(
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
}

/// How a run ended.
pub struct Outcome {
    /// Why it ended before its time, if it did (exit code 1).
    pub ended: Option<String>,
    /// The run's zero on the driver's clock (after the Logon).
    pub start_ns: u64,
}

/// Opens the conversation, offers the load, waits for the last answers, closes. Errors only
/// when the conversation could not be opened (no Logon answer).
pub fn run(
    stream: TcpStream,
    wire: &mut impl Wire,
    plan: &Plan,
    clock: &Clock,
    rec: &mut Recorder,
) -> Result<Outcome, String> {
    run_over(stream, None, wire, plan, clock, rec)
}

/// [`run`] over TLS when `tls` is given (a client connection whose handshake on `stream` is
/// done; see `crate::tls::handshake`).
pub fn run_over(
    stream: TcpStream,
    tls: Option<rustls::ClientConnection>,
    wire: &mut impl Wire,
    plan: &Plan,
    clock: &Clock,
    rec: &mut Recorder,
) -> Result<Outcome, String> {
    stream
        .set_nodelay(true)
        .and_then(|()| stream.set_nonblocking(true))
        .map_err(|e| format!("socket setup: {e}"))?;
    let mut c = Conn {
        stream,
        tls: tls.map(|mut t| {
            t.set_buffer_limit(None); // `out` is handed over whole; the socket paces it
            Box::new(t)
        }),
        rx: vec![0u8; 1 << 20],
        rx_len: 0,
        out: Vec::with_capacity(4 << 20),
        out_pos: 0,
        closed: None,
    };
    // Opening.
    let t = clock.ns();
    wire.start(t, &mut c.out);
    while !wire.ready() {
        c.pump(wire, clock, rec);
        if let Some(e) = wire.ended().map(str::to_string).or(c.closed.clone()) {
            return Err(format!("logon failed: {e}"));
        }
        if clock.ns() - t > plan.handshake_ns {
            return Err("no Logon answer in time".into());
        }
    }
    // The load. Times given to the recorder are relative to `start`.
    let start = clock.ns();
    rec.origin_ns = start;
    let mut next = 0usize;
    let mut drain_until: Option<u64> = None;
    let mut ended = None;
    loop {
        let now = clock.ns() - start;
        match plan.load {
            Load::Open { rate } => {
                while next < plan.orders {
                    let due = intended_ns(next as u64, rate);
                    if due > now {
                        break;
                    }
                    if !rec.sent(next, due) {
                        break;
                    }
                    wire.order(next, start + now, &mut c.out);
                    next += 1;
                }
            }
            Load::Closed { window } => {
                while next < plan.orders && now < plan.total_ns && rec.in_flight() < window {
                    if !rec.sent(next, now) {
                        break;
                    }
                    wire.order(next, start + now, &mut c.out);
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
        if let Some(e) = wire.ended() {
            ended = Some(e.to_string());
            break;
        }
        if let Some(e) = &c.closed {
            ended = Some(e.clone());
            break;
        }
        wire.idle(clock.ns(), &mut c.out);
    }
    // Closing.
    if ended.is_none() {
        let t = clock.ns();
        wire.stop(t, &mut c.out);
        while !wire.stopped() && c.closed.is_none() && clock.ns() - t < plan.handshake_ns {
            c.pump(wire, clock, rec);
        }
    }
    c.flush();
    if let Some(tls) = c.tls.as_deref_mut() {
        tls.send_close_notify();
        let _ = tls.write_tls(&mut c.stream);
    }
    let _ = c.stream.shutdown(std::net::Shutdown::Write);
    Ok(Outcome {
        ended,
        start_ns: start,
    })
}
